--
-- 40_outbox: attach/detach checks, what the triggers enqueue, privileges.
-- The worker drains another database (sales_api.database), so what is
-- enqueued here stays visible.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS sales_api;
RESET client_min_messages;
-- PL/pgSQL line numbers are not part of the contract
\set SHOW_CONTEXT never
CREATE SERVER o_ct FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam');
CREATE SERVER o_mapal FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', timezone 'Europe/Madrid', slot_minutes '30');
CREATE TABLE pos (id serial PRIMARY KEY, shop int, at timestamptz, total numeric(10,2), vat numeric(10,2), kind text DEFAULT 'SALE', channel text DEFAULT 'TAKE');
CREATE UNLOGGED TABLE pos_unlogged (id serial PRIMARY KEY, shop int);
CREATE TABLE pos_nokey (shop int, at timestamptz, total numeric);
-- bad attach calls
SELECT sales_api.attach('pos', 'no_such_server', '{}');
SELECT sales_api.attach('pos', 'o_ct', NULL);
SELECT sales_api.attach('pos', 'o_ct', '[1]');
SELECT sales_api.attach('pos_unlogged', 'o_ct', '{"location_id": "shop"}');
SELECT sales_api.attach('pos_nokey', 'o_ct', '{"location_id": "shop"}');
SELECT sales_api.attach('pos', 'o_ct', '{"location_id": "shop", "bogus": "1"}');
SELECT sales_api.attach('pos', 'o_ct', '{"location_id": "shop", "sale_type": "kind", "created_at": "at"}');
SELECT sales_api.attach('pos', 'o_ct', '{"location_id": "shop; DROP TABLE pos", "sale_type": "kind", "created_at": "at", "final_sale_amount": "total"}');
SELECT sales_api.attach('pos', 'o_ct', '{"location_id": "no_such_column", "sale_type": "kind", "created_at": "at", "final_sale_amount": "total"}');
SELECT count(*) AS captures_after_errors FROM sales_api.capture;
-- good ones
SELECT sales_api.attach('pos', 'o_ct', '{"location_id": "shop", "sale_type": "kind", "created_at": "at",
  "final_sale_amount": "total - vat", "tax_amount": "vat", "currency": "''EUR''"}') AS ct_capture;
SELECT sales_api.attach('pos', 'o_mapal', '{"unit_id": "shop", "sold_at": "at", "currency_id": "''EUR''",
  "sales_type_id": "channel", "net_sales": "total - vat", "gross_sales": "total"}') AS mapal_capture;
SELECT sales_api.attach('pos', 'o_ct', '{"location_id": "shop", "sale_type": "kind", "created_at": "at", "final_sale_amount": "total"}');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'pos'::regclass ORDER BY 1;
-- one statement, many rows: one dirty slot per Mapal slot; the Connecteam
-- sales are staged (a row per sale below sales_api.stage_min_rows rows)
INSERT INTO pos (shop, at, total, vat, kind, channel)
SELECT 1 + i % 2, timestamptz '2026-11-20 11:50+01' + i * interval '7 min', 10 + i, 1, 'SALE', 'TAKE'
  FROM generate_series(0, 9) i;
SELECT count(*) AS staged_rows, sum(coalesce(cardinality(sale_keys), 1)) AS staged_sales FROM sales_api.outbox_stage;
SELECT server_name, state, items FROM sales_api.outbox_status WHERE state = 'staged';
-- what the worker does at the start of a cycle: staged sales become items, in order
SELECT sales_api._stage_expand(NULL, false) AS items_made;
SELECT count(*) AS staged_rows_left FROM sales_api.outbox_stage;
SELECT kind, count(*) FROM sales_api.outbox GROUP BY 1 ORDER BY 1;
SELECT unit_id, business_day, slot_start, count(*) FROM sales_api.outbox WHERE kind = 'mapal_slot'
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT sale_key, location_id, sale_type, final_sale_amount, tax_amount, currency FROM sales_api.outbox
 WHERE kind = 'ct_post' ORDER BY id LIMIT 3;
-- a statement of sales_api.stage_min_rows rows or more: one staged row of arrays
SET sales_api.stage_min_rows = 3;
INSERT INTO pos (shop, at, total, vat) SELECT 2, '2026-11-20 14:00+01', 20 + i, 2 FROM generate_series(1, 4) i;
RESET sales_api.stage_min_rows;
SELECT cardinality(sale_keys) AS sales, location_ids, final_sale_amounts, tax_amounts, currencies FROM sales_api.outbox_stage;
SELECT sales_api._stage_expand(NULL, false) AS items_made;
SELECT sale_key, final_sale_amount FROM sales_api.outbox WHERE kind = 'ct_post' ORDER BY id DESC LIMIT 4;
-- a rolled-back statement enqueues nothing
BEGIN;
INSERT INTO pos (shop, at, total, vat) VALUES (1, '2026-11-20 15:00+01', 5, 0);
ROLLBACK;
SELECT (SELECT count(*) FROM sales_api.outbox WHERE kind = 'ct_post') AS items,
       (SELECT count(*) FROM sales_api.outbox_stage) AS staged;
-- a mapped value the vendor cannot take does not fail the sale: it is checked when sent
INSERT INTO pos (shop, at, total, vat, kind) VALUES (1, '2026-11-20 15:00+01', 5, 0, 'GIFT');
SELECT sale_type FROM sales_api.outbox_stage;
-- delete of an unsent sale, still staged: the DELETE makes its staged row an
-- item first, then supersedes it; nothing to delete at the vendor
DELETE FROM pos WHERE kind = 'GIFT';
SELECT count(*) AS staged_left FROM sales_api.outbox_stage;
SELECT sale_type, state FROM sales_api.outbox WHERE kind = 'ct_post' AND sale_type = 'GIFT';
SELECT kind, state, count(*) FROM sales_api.outbox WHERE kind <> 'mapal_slot' GROUP BY 1, 2 ORDER BY 1, 2;
-- the status view
SELECT server_name, state, items, paused FROM sales_api.outbox_status ORDER BY 1, 2;
SELECT sales_api.pause('o_ct');
SELECT server_name, state, items, paused FROM sales_api.outbox_status WHERE server_name = 'o_ct';
SELECT sales_api.resume('o_ct');
-- per lane (server and run_as): the counts of outbox_status, and why the work
-- waits; no worker serves this database, so no lane is in shared memory
SELECT server_name, run_as = current_user::regrole AS run_as_me, vendor, served, paused, staged, pending,
       failed, in_flight, oldest_waiting_at IS NOT NULL AS has_oldest, circuit, requests, waiting_reason
  FROM sales_api.lane_status ORDER BY 1;
SELECT sales_api.worker_served(), (SELECT count(*) FROM sales_api.lane_state()) AS lanes_in_shared_memory;
-- roles that insert sales need nothing on the outbox
CREATE ROLE regress_till;
GRANT INSERT, SELECT ON pos TO regress_till;
GRANT USAGE ON SEQUENCE pos_id_seq TO regress_till;
SET ROLE regress_till;
INSERT INTO pos (shop, at, total, vat) VALUES (2, '2026-11-20 16:00+01', 3, 0);
SELECT count(*) FROM sales_api.outbox;
SELECT count(*) FROM sales_api.outbox_stage;
SELECT sales_api._stage_expand(NULL, false);
SELECT sales_api.attach('pos', 'o_ct', '{}');
RESET ROLE;
SELECT sales_api._stage_expand(NULL, false) AS items_made;
SELECT count(*) AS till_sale_enqueued FROM sales_api.outbox WHERE kind = 'ct_post' AND final_sale_amount = 3;
-- every capture trigger is the C capture trigger; its one argument is the capture id
SELECT tgname, tgfoid::regproc, tgtype, tgnargs FROM pg_trigger
 WHERE tgrelid = 'pos'::regclass AND tgname LIKE 'sales\_api\_capture\_%' ORDER BY 1;
SELECT proname, prosecdef, provolatile FROM pg_proc WHERE pronamespace = 'sales_api'::regnamespace AND proname LIKE 'capture%' ORDER BY 1;
-- worker figures need shared_preload_libraries (loaded here)
SELECT count(*) FROM sales_api.worker_stats();
-- a % in a mapping expression (a modulo, a LIKE pattern) is plain SQL
CREATE TABLE pos_pct (id serial PRIMARY KEY, shop int, at timestamptz, total numeric(10,2), code text);
SELECT sales_api.attach('pos_pct', 'o_ct', '{"location_id": "shop % 100", "sale_type": "CASE WHEN code LIKE ''R%'' THEN ''REFUND'' ELSE ''SALE'' END",
  "created_at": "at", "final_sale_amount": "total"}') > 0 AS attached_pct;
SELECT sales_api.attach('pos_pct', 'o_mapal', '{"unit_id": "shop % 100", "sold_at": "at", "currency_id": "''EUR''",
  "sales_type_id": "CASE WHEN code LIKE ''T%'' THEN ''TAKE'' ELSE ''EAT_IN'' END", "net_sales": "total", "gross_sales": "total"}') > 0 AS attached_pct_mapal;
INSERT INTO pos_pct (shop, at, total, code) VALUES (105, '2026-11-20 12:00+01', 7, 'R1'), (205, '2026-11-20 12:05+01', 8, 'T2');
SELECT location_id, sale_type, final_sale_amount FROM sales_api.outbox_stage ORDER BY final_sale_amount;
SELECT unit_ids, sales_type_ids, slot_starts FROM sales_api.mapal_stage
 WHERE capture_id = (SELECT id FROM sales_api.capture WHERE relid = 'pos_pct'::regclass AND vendor = 'mapal');
SELECT sales_api._stage_expand(NULL, false) AS items_made;
-- a statement's Mapal slots, each once in the order first met: six rows, three slots
INSERT INTO pos_pct (shop, at, total, code) VALUES
  (105, '2026-11-20 12:01+01', 1, 'R3'), (305, '2026-11-20 12:14+01', 2, 'R4'), (105, '2026-11-20 12:15+01', 3, 'T5'),
  (6, '2026-11-20 12:02+01', 4, 'R6'), (105, '2026-11-20 12:29+01', 5, 'T7'), (106, '2026-11-20 12:03+01', 6, 'R8');
-- and an UPDATE's: the old rows' slots (one), then the new rows' (two)
UPDATE pos_pct SET at = at + CASE WHEN code = 'R4' THEN interval '1 hour' ELSE interval '0' END
 WHERE code IN ('R3', 'R4');
SELECT unit_ids, sales_type_ids, slot_starts FROM sales_api.mapal_stage
 WHERE capture_id = (SELECT id FROM sales_api.capture WHERE relid = 'pos_pct'::regclass AND vendor = 'mapal')
 ORDER BY staged_at, cardinality(unit_ids);
SELECT sales_api._stage_expand(NULL, false) > 0 AS items_made;
-- a statement of 1,200 rows, staged in parts of 500 as it runs: each part's
-- arrays equal array_agg() of the mapped values, nulls and long texts too
CREATE TABLE pos_parts (id int PRIMARY KEY, shop int, at timestamptz, total numeric(10,2), vat numeric, code text);
SELECT sales_api.attach('pos_parts', 'o_ct', '{"location_id": "shop", "sale_type": "code", "created_at": "at",
  "final_sale_amount": "total", "tax_amount": "vat", "currency": "CASE WHEN id % 3 = 0 THEN NULL ELSE ''EUR'' END"}') > 0 AS attached_parts;
INSERT INTO pos_parts SELECT i, i % 7, '2026-11-20 12:00+01'::timestamptz + i * interval '1 min', i / 100.0,
       CASE WHEN i % 5 = 0 THEN NULL ELSE i / 1000.0 END, CASE WHEN i % 11 = 0 THEN NULL ELSE repeat('S', i % 300) END
  FROM generate_series(1, 1200) i;
WITH p AS (SELECT s.*, row_number() OVER (ORDER BY s.staged_at) - 1 AS part FROM sales_api.outbox_stage s
            WHERE s.capture_id = (SELECT id FROM sales_api.capture WHERE relid = 'pos_parts'::regclass)),
     t AS (SELECT (id - 1) / 500 AS part, array_agg(id::text ORDER BY id) AS k, array_agg(shop::bigint ORDER BY id) AS l,
                  array_agg(code ORDER BY id) AS ty, array_agg(at ORDER BY id) AS ca, array_agg(total::numeric ORDER BY id) AS n,
                  array_agg(vat ORDER BY id) AS tx, array_agg(CASE WHEN id % 3 = 0 THEN NULL ELSE 'EUR' END ORDER BY id) AS cur
             FROM pos_parts GROUP BY 1)
SELECT p.part, cardinality(p.sale_keys) AS sales,
       array_send(p.sale_keys) = array_send(t.k) AND array_send(p.location_ids) = array_send(t.l)
       AND array_send(p.sale_types) = array_send(t.ty) AND array_send(p.created_ats) = array_send(t.ca)
       AND array_send(p.final_sale_amounts) = array_send(t.n) AND array_send(p.tax_amounts) = array_send(t.tx)
       AND array_send(p.currencies) = array_send(t.cur) AS equal
  FROM p JOIN t USING (part) ORDER BY p.part;
SELECT sales_api.detach('pos_parts', 'o_ct');
DROP TABLE pos_parts;
SELECT sales_api.detach('pos_pct', 'o_ct');
SELECT sales_api.detach('pos_pct', 'o_mapal');
DROP TABLE pos_pct;
-- detach: triggers gone, queued work kept
SELECT sales_api.detach('pos', 'o_ct');
SELECT sales_api.detach('pos', 'o_ct');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'pos'::regclass ORDER BY 1;
SELECT count(*) > 0 AS queued_work_kept FROM sales_api.outbox o JOIN sales_api.capture c ON c.id = o.capture_id
 WHERE c.server_name = 'o_ct';
-- attached again after a detach: refused while the detached capture has work queued
SELECT sales_api.attach('pos', 'o_ct', '{"location_id": "shop", "sale_type": "kind", "created_at": "at", "final_sale_amount": "total"}') > 0 AS reattached;
-- an operator gives that work up (no worker serves this database); the new capture then begins
DELETE FROM sales_api.outbox o USING sales_api.capture c
 WHERE c.id = o.capture_id AND c.relid = 'pos'::regclass AND c.server_name = 'o_ct' AND o.state NOT IN ('sent', 'superseded');
DELETE FROM sales_api.outbox_stage s USING sales_api.capture c
 WHERE c.id = s.capture_id AND c.relid = 'pos'::regclass AND c.server_name = 'o_ct';
SELECT sales_api.attach('pos', 'o_ct', '{"location_id": "shop", "sale_type": "kind", "created_at": "at", "final_sale_amount": "total"}') > 0 AS reattached;
SELECT sales_api.detach('pos', 'o_ct');
SELECT sales_api.detach('pos', 'o_mapal');
DROP TABLE pos, pos_unlogged, pos_nokey;
DROP OWNED BY regress_till;
DROP ROLE regress_till;
DELETE FROM sales_api.capture;
DROP SERVER o_ct, o_mapal;
