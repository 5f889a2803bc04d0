/* sales_api--0.6--0.7.0.sql: mapping expressions run as the table's owner,
 * capture triggers carry only the capture id, attach() and detach() in C */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION sales_api UPDATE TO '0.7.0'" to load this file. \quit

-------------------------------------------------------------------------------
-- Security fix.  Up to 0.6 the statements built from a capture's mapping ran
-- as the bootstrap superuser: in the capture trigger, in the worker's Mapal
-- totals and Connecteam windows, and in the reconciliation and repair
-- functions.  A function, operator or cast the mapping reached ran with
-- superuser rights, so the owner of a captured table could become a
-- superuser.  From 0.7.0 a mapping runs only as the table's owner, under
-- SECURITY_RESTRICTED_OPERATION (src/mapping.c), the triggers' argument is
-- the capture id instead of SQL text, and no statement built from a mapping
-- is stored in a table.
-------------------------------------------------------------------------------

-- The library must be this version's: an older one would run the new
-- triggers' argument (a capture id) as SQL and fail every sale.
DO $$
BEGIN
    IF string_to_array(split_part(sales_api.version(), '-', 1), '.')::int[] < ARRAY[0, 7] THEN
        RAISE EXCEPTION 'the sales_api library loaded in this server is version %; this update needs 0.7.0 or later',
                        sales_api.version()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Install the new sales_api, restart PostgreSQL (the library is preloaded), then run ALTER EXTENSION sales_api UPDATE again.';
    END IF;
END;
$$;

-------------------------------------------------------------------------------
-- Captures keep their zone and slot length instead of statements
-------------------------------------------------------------------------------
ALTER TABLE sales_api.capture
    ADD COLUMN slot_minutes integer,
    ADD COLUMN timezone text;
COMMENT ON COLUMN sales_api.capture.slot_minutes IS 'Mapal: the slot length, from the server when attached';
COMMENT ON COLUMN sales_api.capture.timezone IS 'Mapal: the units'' time zone, the server''s or else the attaching session''s';
COMMENT ON COLUMN sales_api.capture.mapping IS 'field -> SQL expression over the table''s columns, evaluated as the table''s owner';
COMMENT ON COLUMN sales_api.capture.run_as IS 'whose user mapping the worker sends with';

-- a 0.6 capture had them only inside its statements: the zone is the literal
-- of the last AT TIME ZONE of recompute_sql, the slot length the server's
UPDATE sales_api.capture c
   SET slot_minutes = coalesce((SELECT split_part(o, '=', 2)::int
                                  FROM pg_catalog.pg_foreign_server fs, unnest(fs.srvoptions) o
                                 WHERE fs.oid = c.server_id AND o LIKE 'slot_minutes=%'), 15),
       timezone = replace((regexp_match(c.recompute_sql,
                           'AT TIME ZONE ''((?:[^'']|'''')*)''\) x WHERE bd = \$2 GROUP BY c, t, sl$'))[1], '''''', '''')
 WHERE c.vendor = 'mapal';

ALTER TABLE sales_api.capture DROP COLUMN recompute_sql, DROP COLUMN window_sql;

-------------------------------------------------------------------------------
-- attach() and detach() in C (src/attach.c): the table's owner, with USAGE
-- on the server, may attach it; run_as must be a role the caller can act
-- as, with USAGE on the server and SELECT on the table.  The mapping is
-- checked by preparing its statements as the table's owner.
-------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION sales_api.attach(sales_table regclass, server name, mapping jsonb,
                                            sale_key text DEFAULT NULL, run_as regrole DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'sales_api_attach'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api.attach(regclass, name, jsonb, text, regrole) IS
'captures the sales of a POS table for a vendor server; the mapping runs as the table''s owner';

CREATE OR REPLACE FUNCTION sales_api.detach(sales_table regclass, server name)
RETURNS void
AS 'MODULE_PATHNAME', 'sales_api_detach'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION sales_api.wake_worker_on_commit() IS
'sets the worker''s latch when the current transaction commits (called by the functions that queue work)';
COMMENT ON TABLE sales_api.outbox IS 'work for the vendors: Mapal slots marked by capture triggers, Connecteam sales made items from the stage by the worker, deletes and windows';

COMMENT ON FUNCTION sales_api.capture_trigger() IS
'the statement trigger attach() installs; its one argument is the capture id';

DROP FUNCTION sales_api._capture_install(integer);
DROP FUNCTION sales_api._expr(jsonb, text, text);
DROP FUNCTION sales_api._depend_on_extension(regprocedure);

-- the triggers of attached tables: the capture id, no SQL
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT id, relid FROM sales_api.capture WHERE detached_at IS NULL ORDER BY id LOOP
        EXECUTE format('DROP TRIGGER sales_api_capture_%s_ins ON %s', c.id, c.relid);
        EXECUTE format('DROP TRIGGER sales_api_capture_%s_del ON %s', c.id, c.relid);
        EXECUTE format('DROP TRIGGER sales_api_capture_%s_upd ON %s', c.id, c.relid);
        EXECUTE format('CREATE TRIGGER sales_api_capture_%s_ins AFTER INSERT ON %s'
                       ' REFERENCING NEW TABLE AS sales_api_new'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION sales_api.capture_trigger(%L)', c.id, c.relid, c.id);
        EXECUTE format('CREATE TRIGGER sales_api_capture_%s_upd AFTER UPDATE ON %s'
                       ' REFERENCING OLD TABLE AS sales_api_old NEW TABLE AS sales_api_new'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION sales_api.capture_trigger(%L)', c.id, c.relid, c.id);
        EXECUTE format('CREATE TRIGGER sales_api_capture_%s_del AFTER DELETE ON %s'
                       ' REFERENCING OLD TABLE AS sales_api_old'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION sales_api.capture_trigger(%L)', c.id, c.relid, c.id);
    END LOOP;
END;
$$;

-------------------------------------------------------------------------------
-- Local figures of captured tables, through their mappings, as their owners
-- (src/reconcile.c).  Each checks that the caller may SELECT the table, so
-- it returns nothing a caller could not read itself: PUBLIC may execute them.
-------------------------------------------------------------------------------
CREATE FUNCTION sales_api._local_connecteam_totals(server name, start_date date, end_date date,
                                                   location_ids bigint[], day_tz text)
RETURNS TABLE (location_id bigint, sales_date date, total numeric, sales bigint)
AS 'MODULE_PATHNAME', 'sales_api_local_connecteam_totals'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api._local_connecteam_totals(name, date, date, bigint[], text) IS
'per capture, location and local day: the total and count of a Connecteam server''s captured sales';

CREATE FUNCTION sales_api._local_mapal_sales(server name, from_local timestamp, to_local timestamp)
RETURNS TABLE (unit_id bigint, sold_at timestamp, net numeric, gross numeric, checks numeric)
AS 'MODULE_PATHNAME', 'sales_api_local_mapal_sales'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api._local_mapal_sales(name, timestamp, timestamp) IS
'every captured sale of a Mapal server''s tables in [from_local, to_local), in the units'' local time';

CREATE FUNCTION sales_api._mapal_slot_totals(capture_id integer, unit_id bigint, business_day date)
RETURNS TABLE (currency_id text, sales_type_id text, slot_start timestamp,
               net numeric, gross numeric, checks bigint, guests bigint)
AS 'MODULE_PATHNAME', 'sales_api_mapal_slot_totals'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api._mapal_slot_totals(integer, bigint, date) IS
'the slot totals of a unit''s business day that the worker sends for a Mapal capture';

-------------------------------------------------------------------------------
-- Reconciliation: one fixed query, given the vendor's totals
-------------------------------------------------------------------------------
CREATE FUNCTION sales_api._reconcile_connecteam(server name, start_date date, end_date date,
                                                location_ids bigint[], day_tz text,
                                                vendor_locations bigint[], vendor_days date[],
                                                vendor_totals numeric[], vendor_projected numeric[])
RETURNS TABLE (location_id bigint, sales_date date, local_total numeric, vendor_total numeric,
               difference numeric, local_sales bigint, pending_items bigint, dead_items bigint,
               verdict text, projected_sales numeric, variance numeric)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $rc$
    WITH l AS (SELECT x.location_id AS loc, x.sales_date AS d, sum(x.total) AS total, sum(x.sales)::bigint AS n
                 FROM sales_api._local_connecteam_totals($1, $2, $3, $4, $5) x
                GROUP BY 1, 2),
         v AS (SELECT u.loc, u.d, u.total_sales, u.projected_sales
                 FROM unnest($6, $7, $8, $9) AS u(loc, d, total_sales, projected_sales)),
         w AS (SELECT o.location_id AS loc, (o.created_at AT TIME ZONE $5)::date AS d,
                      count(*) FILTER (WHERE o.state IN ('pending', 'in_flight', 'failed', 'unknown')) AS waiting,
                      count(*) FILTER (WHERE o.state = 'dead') AS dead
                 FROM sales_api.outbox o JOIN sales_api.capture c ON c.id = o.capture_id
                WHERE c.server_name = $1 AND o.kind IN ('ct_post', 'ct_delete')
                GROUP BY 1, 2
               UNION ALL
               SELECT o.location_id, g.d::date, count(*), 0
                 FROM sales_api.outbox o JOIN sales_api.capture c ON c.id = o.capture_id,
                      generate_series((o.window_start AT TIME ZONE $5)::date,
                                      (o.window_end AT TIME ZONE $5)::date, interval '1 day') AS g(d)
                WHERE c.server_name = $1 AND o.kind = 'ct_window'
                  AND o.state IN ('pending', 'in_flight', 'failed')
                GROUP BY 1, 2
               UNION ALL
               SELECT u.loc, (u.ts AT TIME ZONE $5)::date, count(*), 0
                 FROM sales_api.outbox_stage st JOIN sales_api.capture c ON c.id = st.capture_id,
                      unnest(coalesce(st.location_ids, ARRAY[st.location_id]),
                             coalesce(st.created_ats, ARRAY[st.created_at])) AS u(loc, ts)
                WHERE c.server_name = $1
                GROUP BY 1, 2),
         k AS (SELECT l.loc, l.d FROM l UNION SELECT v.loc, v.d FROM v)
    SELECT k.loc, k.d, coalesce(l.total, 0), coalesce(v.total_sales, 0),
           coalesce(v.total_sales, 0) - coalesce(l.total, 0), coalesce(l.n, 0),
           coalesce((SELECT sum(w.waiting) FROM w WHERE w.loc = k.loc AND w.d = k.d), 0)::bigint,
           coalesce((SELECT sum(w.dead) FROM w WHERE w.loc = k.loc AND w.d = k.d), 0)::bigint,
           CASE WHEN coalesce((SELECT sum(w.waiting) FROM w WHERE w.loc = k.loc AND w.d = k.d), 0) > 0 THEN 'pending'
                WHEN coalesce(l.total, 0) = coalesce(v.total_sales, 0) THEN 'match'
                ELSE 'mismatch' END,
           v.projected_sales,
           coalesce(v.total_sales, 0) - v.projected_sales
      FROM k LEFT JOIN l ON l.loc = k.loc AND l.d = k.d
             LEFT JOIN v ON v.loc = k.loc AND v.d = k.d
     ORDER BY 1, 2
$rc$;
COMMENT ON FUNCTION sales_api._reconcile_connecteam(name, date, date, bigint[], text, bigint[], date[], numeric[], numeric[]) IS
'reconcile_connecteam with the vendor''s totals given: the worker reads them with the capture''s run_as mapping';

CREATE OR REPLACE FUNCTION sales_api.reconcile_connecteam(server name, start_date date, end_date date,
                                               location_ids bigint[] DEFAULT NULL,
                                               day_tz text DEFAULT 'UTC')
RETURNS TABLE (location_id bigint, sales_date date, local_total numeric, vendor_total numeric,
               difference numeric, local_sales bigint, pending_items bigint, dead_items bigint,
               verdict text, projected_sales numeric, variance numeric)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rc$
BEGIN
    IF server IS NULL OR start_date IS NULL OR end_date IS NULL OR day_tz IS NULL THEN
        RAISE EXCEPTION 'server, start_date, end_date and day_tz must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF end_date < start_date THEN
        RAISE EXCEPTION 'end_date must not be before start_date' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF end_date - start_date > 366 THEN
        RAISE EXCEPTION 'a reconciliation covers at most 366 days'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Reconcile a shorter period.';
    END IF;
    PERFORM pg_catalog.timezone(day_tz, now());     -- an unknown zone fails here, clearly
    RETURN QUERY
    SELECT r.*
      FROM (SELECT array_agg(ds.location_id) AS l, array_agg(ds.sales_date) AS d,
                   array_agg(ds.total_sales) AS t, array_agg(ds.projected_sales) AS p
              FROM sales_api.connecteam_daily_sales(server, start_date, end_date,
                                                    reconcile_connecteam.location_ids) ds) v,
           LATERAL sales_api._reconcile_connecteam(server, start_date, end_date,
                                                   reconcile_connecteam.location_ids, day_tz,
                                                   v.l, v.d, v.t, v.p) r
     ORDER BY 1, 2;
END;
$rc$;

-- what the worker records, given the vendor's totals
CREATE FUNCTION sales_api._record_reconciliation(server name, start_date date, end_date date, day_tz text,
                                                 grace interval, vendor_locations bigint[], vendor_days date[],
                                                 vendor_totals numeric[], vendor_projected numeric[])
RETURNS TABLE (location_id bigint, sales_date date, difference numeric, mismatch_since timestamptz)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rr$
#variable_conflict use_column
DECLARE
    t timestamptz := clock_timestamp();
BEGIN
    INSERT INTO sales_api.reconciliation
    SELECT t, server, r.location_id, r.sales_date, r.local_total, r.vendor_total, r.difference,
           r.local_sales, r.pending_items, r.dead_items, r.verdict
      FROM sales_api._reconcile_connecteam(server, start_date, end_date, NULL, day_tz, vendor_locations,
                                           vendor_days, vendor_totals, vendor_projected) r;
    RETURN QUERY
    SELECT cur.location_id, cur.sales_date, cur.difference, s.since
      FROM sales_api.reconciliation cur
     CROSS JOIN LATERAL (
           SELECT min(h.run_at) AS since FROM sales_api.reconciliation h
            WHERE h.server_name = cur.server_name AND h.location_id = cur.location_id
              AND h.sales_date = cur.sales_date AND h.verdict = 'mismatch'
              AND h.run_at > coalesce((SELECT max(g.run_at) FROM sales_api.reconciliation g
                                        WHERE g.server_name = cur.server_name AND g.location_id = cur.location_id
                                          AND g.sales_date = cur.sales_date AND g.verdict <> 'mismatch'),
                                      '-infinity')) s
     WHERE cur.server_name = _record_reconciliation.server AND cur.run_at = t AND cur.verdict = 'mismatch'
       AND s.since <= t - grace;
END;
$rr$;
COMMENT ON FUNCTION sales_api._record_reconciliation(name, date, date, text, interval, bigint[], date[], numeric[], numeric[]) IS
'records a reconciliation of one Connecteam server, given the vendor''s totals, and returns mismatches older than the grace period';
REVOKE ALL ON FUNCTION sales_api._record_reconciliation(name, date, date, text, interval, bigint[], date[], numeric[], numeric[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION sales_api.record_reconciliation(server name, days integer, day_tz text, grace interval)
RETURNS TABLE (location_id bigint, sales_date date, difference numeric, mismatch_since timestamptz)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rr$
DECLARE
    last_day  date := (clock_timestamp() AT TIME ZONE day_tz)::date;
    first_day date := last_day - (days - 1);
BEGIN
    RETURN QUERY
    SELECT r.*
      FROM (SELECT array_agg(ds.location_id) AS l, array_agg(ds.sales_date) AS d,
                   array_agg(ds.total_sales) AS t, array_agg(ds.projected_sales) AS p
              FROM sales_api.connecteam_daily_sales(server, first_day, last_day) ds) v,
           LATERAL sales_api._record_reconciliation(server, first_day, last_day, day_tz, grace,
                                                    v.l, v.d, v.t, v.p) r;
END;
$rr$;

-------------------------------------------------------------------------------
-- Cash sheets against the local sales of the shift
-------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION sales_api.reconcile_cashrec(server name, start_time timestamp, end_time timestamp,
                                            centers bigint[], unit_of_center jsonb DEFAULT NULL)
RETURNS TABLE (center_id bigint, unit_id bigint, business_day date, shift_id integer, cash_sheet_id text,
               till_id text, opened_at timestamp, closed_at timestamp,
               local_net numeric, vendor_net numeric, net_difference numeric,
               local_gross numeric, vendor_gross numeric, gross_difference numeric,
               local_checks bigint, vendor_checks integer, cash_difference numeric, verdict text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rm$
BEGIN
    IF server IS NULL OR start_time IS NULL OR end_time IS NULL OR centers IS NULL THEN
        RAISE EXCEPTION 'server, start_time, end_time and centers must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN QUERY
    WITH cs AS MATERIALIZED (
             SELECT * FROM sales_api.cashrec_fetch(server, start_time, end_time, centers)),
         b AS (SELECT min(cs.opened_at) AS lo, max(cs.closed_at) AS hi FROM cs),
         l AS MATERIALIZED (
             SELECT x.unit_id AS unit, x.sold_at AS at, x.net, x.gross, x.checks
               FROM b, sales_api._local_mapal_sales(server, b.lo, b.hi) x)
    SELECT cs.center_id, u.unit, cs.business_day, cs.shift_id, cs.cash_sheet_id, cs.till_id,
           cs.opened_at, cs.closed_at,
           coalesce(x.net, 0), cs.net_sales, cs.net_sales - coalesce(x.net, 0),
           coalesce(x.gross, 0), cs.gross_sales, cs.gross_sales - coalesce(x.gross, 0),
           coalesce(x.checks, 0)::bigint, cs.num_checks, cs.difference,
           CASE WHEN cs.net_sales IS NOT DISTINCT FROM coalesce(x.net, 0)
                 AND cs.gross_sales IS NOT DISTINCT FROM coalesce(x.gross, 0)
                 AND cs.num_checks IS NOT DISTINCT FROM coalesce(x.checks, 0)::integer
                THEN CASE WHEN coalesce(cs.difference, 0) <> 0 THEN 'match, till difference' ELSE 'match' END
                ELSE 'mismatch' END
      FROM cs
      CROSS JOIN LATERAL (SELECT coalesce((coalesce(unit_of_center, '{}'::jsonb) ->> cs.center_id::text)::bigint,
                                          cs.center_id) AS unit) u
      LEFT JOIN LATERAL (SELECT sum(l.net) AS net, sum(l.gross) AS gross, sum(l.checks) AS checks
                           FROM l
                          WHERE l.unit = u.unit AND l.at >= cs.opened_at AND l.at < cs.closed_at) x ON true
     ORDER BY 1, 3, 4, 5;
END;
$rm$;

-------------------------------------------------------------------------------
-- Repair of a Mapal day: the slots with local sales, and every slot sent before
-------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION sales_api.repair_mapal(server name, unit_id bigint, business_day date)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rp$
#variable_conflict use_column
DECLARE
    n bigint := 0;
    k bigint;
    c record;
BEGIN
    IF server IS NULL OR repair_mapal.unit_id IS NULL OR repair_mapal.business_day IS NULL THEN
        RAISE EXCEPTION 'server, unit_id and business_day must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOR c IN SELECT cap.id FROM sales_api.capture cap
              WHERE cap.server_name = repair_mapal.server AND cap.vendor = 'mapal' AND cap.detached_at IS NULL LOOP
        INSERT INTO sales_api.outbox (capture_id, kind, unit_id, business_day, currency_id, sales_type_id,
                                      slot_start, next_attempt_at)
        SELECT c.id, 'mapal_slot', repair_mapal.unit_id, repair_mapal.business_day, x.cur, x.typ, x.sl, now()
          FROM (SELECT t.currency_id AS cur, t.sales_type_id AS typ, t.slot_start AS sl
                  FROM sales_api._mapal_slot_totals(c.id, repair_mapal.unit_id, repair_mapal.business_day) t
                UNION
                SELECT o.currency_id, o.sales_type_id, o.slot_start FROM sales_api.outbox o
                 WHERE o.capture_id = c.id AND o.kind = 'mapal_slot'
                   AND o.unit_id = repair_mapal.unit_id AND o.business_day = repair_mapal.business_day) x
        ON CONFLICT (capture_id, unit_id, business_day, currency_id, sales_type_id, slot_start)
        WHERE kind = 'mapal_slot' AND state = 'pending' DO NOTHING;
        GET DIAGNOSTICS k = ROW_COUNT;
        n := n + k;
    END LOOP;
    PERFORM sales_api.wake_worker_on_commit();
    RETURN n;
END;
$rp$;

-------------------------------------------------------------------------------
-- Every database is served: a launcher starts one worker per database where
-- sales_api is installed (src/launcher.c); worker_stats() is this database's
-- worker and says whether it is served, or why not.
-------------------------------------------------------------------------------
DROP FUNCTION sales_api.worker_stats();
CREATE FUNCTION sales_api.worker_stats(
    OUT running boolean, OUT pid integer, OUT started_at timestamptz,
    OUT last_cycle_at timestamptz, OUT last_success_at timestamptz,
    OUT cycles bigint, OUT requests bigint, OUT items_sent bigint, OUT items_failed bigint,
    OUT items_dead bigint, OUT retries bigint, OUT rate_limited bigint, OUT ambiguous bigint,
    OUT rate_waits bigint, OUT latency_p50_ms double precision, OUT latency_p99_ms double precision,
    OUT note text)
RETURNS record
AS 'MODULE_PATHNAME', 'sales_api_worker_stats'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api.worker_stats() IS
'this database''s worker: its live figures from shared memory since it started (latencies over the last 1024 requests), and whether it serves this database, or why not';
REVOKE ALL ON FUNCTION sales_api.worker_stats() FROM PUBLIC;

-- the budget of an account is shared by every backend and worker (src/ratelimit.c)
COMMENT ON FUNCTION sales_api.connecteam_rate_limit(name) IS
'the rate-limit budget of the server''s Connecteam account as the whole cluster last saw it, in shared memory (NULLs before any call)';

-- The shared rate-limit budget of every Connecteam lane (a capture's server
-- and run_as, i.e. one vendor account) of this database, for monitoring: the
-- caller needs neither the vendor's credentials nor USAGE on the server; it
-- reads sales_api.capture with its own rights (src/lane_budgets.c).
CREATE FUNCTION sales_api.lane_budgets()
RETURNS TABLE (server_name name, run_as regrole,
               minute_limit bigint, minute_remaining bigint, minute_reset timestamptz,
               day_limit bigint, day_remaining bigint, day_reset timestamptz,
               observed_at timestamptz)
AS 'MODULE_PATHNAME', 'sales_api_lane_budgets'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION sales_api.lane_budgets() IS
'the shared rate-limit budget of each Connecteam lane (server and run_as) of this database, as connecteam_rate_limit() shows it to run_as (NULLs while unknown)';
REVOKE ALL ON FUNCTION sales_api.lane_budgets() FROM PUBLIC;

-------------------------------------------------------------------------------
-- Staged sales are made outbox items in C (src/outbox_stage.c), with the
-- statements prepared once per backend
-------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION sales_api._stage_expand(capture_id integer, wait boolean, sale_keys text[] DEFAULT NULL,
                                                   max_rows integer DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'sales_api_stage_expand'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api._stage_expand(integer, boolean, text[], integer) IS
'makes staged sales (sales_api.outbox_stage) outbox items, as the worker does at the start of every cycle';

-- The states and kinds as the C code defines them (src/outbox_states.c):
-- the regression test 41_outbox_states holds the CHECK constraints, partial
-- indexes, views and functions of this schema to them.
CREATE FUNCTION sales_api._outbox_states()
RETURNS TABLE (category text, name text, meaning text)
AS 'MODULE_PATHNAME', 'sales_api_outbox_states'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION sales_api._outbox_states() IS
'the outbox item states and kinds the C code defines, and the pseudo-state of outbox_status';
REVOKE ALL ON FUNCTION sales_api._outbox_states() FROM PUBLIC;

-------------------------------------------------------------------------------
-- Mapal captures stage the slots a POS statement touched instead of locking
-- dirty markers in the POS's transaction; the worker makes them markers at
-- the start of every cycle (src/outbox_stage.c).
-------------------------------------------------------------------------------
CREATE TABLE sales_api.mapal_stage (
    capture_id     integer NOT NULL,
    staged_at      timestamptz NOT NULL,
    unit_ids       bigint[] NOT NULL,
    business_days  date[] NOT NULL,
    currency_ids   text[] NOT NULL,
    sales_type_ids text[] NOT NULL,
    slot_starts    timestamp[] NOT NULL
);
COMMENT ON TABLE sales_api.mapal_stage IS
'Mapal slots touched by POS statements until the worker makes them dirty markers: one row of arrays per statement';
REVOKE ALL ON sales_api.mapal_stage FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sales_api.mapal_stage', '');

CREATE OR REPLACE FUNCTION sales_api._capture_deleted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM sales_api.outbox WHERE capture_id = OLD.id;
    DELETE FROM sales_api.outbox_stage WHERE capture_id = OLD.id;
    DELETE FROM sales_api.mapal_stage WHERE capture_id = OLD.id;
    DELETE FROM sales_api.connecteam_sent WHERE capture_id = OLD.id;
    RETURN NULL;
END;
$$;


CREATE OR REPLACE VIEW sales_api.outbox_status AS
SELECT c.server_name,
       o.state,
       count(*) AS items,
       min(o.enqueued_at) FILTER (WHERE o.state IN ('pending', 'failed', 'in_flight')) AS oldest_enqueued_at,
       now() - min(o.enqueued_at) FILTER (WHERE o.state IN ('pending', 'failed', 'in_flight')) AS oldest_pending_age,
       max(o.sent_at) AS last_success_at,
       (array_agg(o.last_error ORDER BY o.id DESC) FILTER (WHERE o.last_error IS NOT NULL AND o.state <> 'sent'))[1] AS last_error,
       bool_or(coalesce(s.paused, false)) AS paused
  FROM sales_api.outbox o
  JOIN sales_api.capture c ON c.id = o.capture_id
  LEFT JOIN sales_api.server_state s ON s.server_id = c.server_id
 GROUP BY c.server_name, o.state
UNION ALL
SELECT c.server_name,
       'staged',
       sum(coalesce(cardinality(st.sale_keys), 1))::bigint,
       min(st.staged_at),
       now() - min(st.staged_at),
       NULL::timestamptz,
       NULL::text,
       bool_or(coalesce(s.paused, false))
  FROM sales_api.outbox_stage st
  JOIN sales_api.capture c ON c.id = st.capture_id
  LEFT JOIN sales_api.server_state s ON s.server_id = c.server_id
 GROUP BY c.server_name
UNION ALL
SELECT c.server_name,
       'staged',
       sum(cardinality(ms.slot_starts))::bigint,
       min(ms.staged_at),
       now() - min(ms.staged_at),
       NULL::timestamptz,
       NULL::text,
       bool_or(coalesce(s.paused, false))
  FROM sales_api.mapal_stage ms
  JOIN sales_api.capture c ON c.id = ms.capture_id
  LEFT JOIN sales_api.server_state s ON s.server_id = c.server_id
 GROUP BY c.server_name;

-- A database gets its worker when this transaction commits (src/launcher.c),
-- not at the launcher's next look for databases.
SELECT sales_api.wake_worker_on_commit();
