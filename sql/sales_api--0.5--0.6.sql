/* sales_api--0.5--0.6.sql: Connecteam sales staged by the POS statement,
 * made outbox items by the worker, off the POS's path */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION sales_api UPDATE TO '0.6'" to load this file. \quit

-------------------------------------------------------------------------------
-- Up to 0.5 a Connecteam capture wrote one outbox item per sale in the
-- inserting transaction: per sale a sequence value, three B-tree entries, two
-- CHECK constraints (whose expressions the executor reads and plans again for
-- every statement) and five partial-index predicates.  A POS statement of
-- 100,000 rows took three times as long as without the capture; a single-row
-- INSERT paid about 15 microseconds more.  Now a POS statement writes its
-- sales to sales_api.outbox_stage: a row per sale (no index, no key) for a
-- statement of fewer rows than sales_api.stage_min_rows, else one row of
-- arrays for the whole statement, in the order it inserted them.  The worker
-- makes staged rows outbox items at the start of every cycle, in one
-- transaction that deletes the rows and inserts their items: a staged sale is
-- in exactly one of the two places at every commit.  The staged rows are
-- written, WAL-logged and committed with the sales: nothing is lost to a
-- crash.  Mapal captures still mark slots dirty directly (one marker per slot,
-- not per sale).
-------------------------------------------------------------------------------

-- The library must be this version's: a server still running the previous
-- one (sales_api is in shared_preload_libraries; a restart loads the new
-- one) would run every statement of the new triggers, markers ignored, and
-- stage each sale twice.
DO $$
BEGIN
    IF string_to_array(split_part(sales_api.version(), '-', 1), '.')::int[] < ARRAY[0, 6] THEN
        RAISE EXCEPTION 'the sales_api library loaded in this server is version %; this update needs 0.6 or later',
                        sales_api.version()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Install the new sales_api, restart PostgreSQL (the library is preloaded), then run ALTER EXTENSION sales_api UPDATE again.';
    END IF;
END;
$$;

CREATE TABLE sales_api.outbox_stage (
    capture_id        integer NOT NULL,
    staged_at         timestamptz NOT NULL,
    -- one sale (a POS statement of fewer rows than sales_api.stage_min_rows)
    sale_key          text,
    location_id       bigint,
    sale_type         text,
    created_at        timestamptz,
    final_sale_amount numeric,
    tax_amount        numeric,
    currency          text,
    -- or every sale of a larger statement, in the order it inserted them
    sale_keys          text[],
    location_ids       bigint[],
    sale_types         text[],
    created_ats        timestamptz[],
    final_sale_amounts numeric[],
    tax_amounts        numeric[],
    currencies         text[]
);
-- No key, no index, no CHECK: a single-row POS statement pays one heap
-- tuple here and nothing else.  Rows live for a worker cycle; the worker
-- finds them by a sequential scan of a table that stays small, and deletes
-- them by ctid.
COMMENT ON TABLE sales_api.outbox_stage IS
'Connecteam sales captured by POS statements until the worker makes them outbox items: a row per sale, or one row of arrays per large statement';
REVOKE ALL ON sales_api.outbox_stage FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sales_api.outbox_stage', '');

-- lz4 is several times faster than pglz at the same ratio on the arrays,
-- where the server has it (Debian's PostgreSQL is built with it)
DO $$
BEGIN
    ALTER TABLE sales_api.outbox_stage
        ALTER COLUMN sale_keys SET COMPRESSION lz4, ALTER COLUMN location_ids SET COMPRESSION lz4,
        ALTER COLUMN sale_types SET COMPRESSION lz4, ALTER COLUMN created_ats SET COMPRESSION lz4,
        ALTER COLUMN final_sale_amounts SET COMPRESSION lz4, ALTER COLUMN tax_amounts SET COMPRESSION lz4,
        ALTER COLUMN currencies SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END;
$$;

-- Staged rows become outbox items (ct_post), oldest statement first, a large
-- statement's sales in the order of its arrays.  The worker calls it with
-- wait = false, skipping rows a POS transaction is expanding, and at most
-- max_rows staged rows per claim (a backlog after a long stop is taken in
-- steps, not in one huge transaction); an UPDATE or DELETE of captured sales
-- first calls it with wait = true for the staged rows that hold its sales,
-- so that it finds their posts, as before 0.6.  The keys are matched through
-- hashed subplans: a DELETE of 100,000 sales while a 100,000-sale row is
-- staged costs two hash tables, not 10^10 comparisons.
CREATE FUNCTION sales_api._stage_expand(capture_id integer, wait boolean, sale_keys text[] DEFAULT NULL,
                                        max_rows integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n    bigint;
    rows tid[];
BEGIN
    -- lock the rows first, in staging order: waiting for a POS transaction
    -- that holds them (wait), or skipping them
    EXECUTE format(
        'SELECT array_agg(c) FROM (SELECT x.ctid AS c FROM sales_api.outbox_stage x'
        ' WHERE ($1 IS NULL OR x.capture_id = $1)'
        '   AND ($2 IS NULL OR x.sale_key IN (SELECT unnest($2))'
        '        OR (x.sale_keys IS NOT NULL'
        '            AND EXISTS (SELECT 1 FROM unnest(x.sale_keys) AS sk(v) WHERE sk.v IN (SELECT unnest($2)))))'
        ' ORDER BY x.staged_at LIMIT $3 FOR UPDATE %s) l',
        CASE WHEN wait THEN '' ELSE 'SKIP LOCKED' END)
        INTO rows USING capture_id, sale_keys, max_rows;
    IF rows IS NULL THEN
        RETURN 0;
    END IF;
    WITH s AS (DELETE FROM sales_api.outbox_stage st WHERE st.ctid = ANY (rows) RETURNING st.*)
    INSERT INTO sales_api.outbox (capture_id, kind, sale_key, location_id, sale_type, created_at,
                                  final_sale_amount, tax_amount, currency, enqueued_at, next_attempt_at)
    SELECT s.capture_id, 'ct_post', u.k, u.loc, u.stype, u.ts, u.amt, u.tax, u.cur, s.staged_at, s.staged_at
      FROM s, unnest(coalesce(s.sale_keys, ARRAY[s.sale_key]), coalesce(s.location_ids, ARRAY[s.location_id]),
                     coalesce(s.sale_types, ARRAY[s.sale_type]), coalesce(s.created_ats, ARRAY[s.created_at]),
                     coalesce(s.final_sale_amounts, ARRAY[s.final_sale_amount]),
                     coalesce(s.tax_amounts, ARRAY[s.tax_amount]), coalesce(s.currencies, ARRAY[s.currency]))
              WITH ORDINALITY AS u(k, loc, stype, ts, amt, tax, cur, ord)
     ORDER BY s.staged_at, u.ord;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION sales_api._stage_expand(integer, boolean, text[], integer) IS
'makes staged sales (sales_api.outbox_stage) outbox items; the worker calls it every cycle';
REVOKE ALL ON FUNCTION sales_api._stage_expand(integer, boolean, text[], integer) FROM PUBLIC;

-- deleting a capture row by hand still takes its work with it
CREATE OR REPLACE FUNCTION sales_api._capture_deleted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM sales_api.outbox WHERE capture_id = OLD.id;
    DELETE FROM sales_api.outbox_stage WHERE capture_id = OLD.id;
    DELETE FROM sales_api.connecteam_sent WHERE capture_id = OLD.id;
    RETURN NULL;
END;
$$;

-- staged sales are work waiting, like pending items
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
 GROUP BY c.server_name;

-------------------------------------------------------------------------------
-- Reconciliation counts staged sales as waiting
-------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION sales_api.reconcile_connecteam(server name, start_date date, end_date date,
                                               location_ids bigint[] DEFAULT NULL,
                                               day_tz text DEFAULT 'UTC')
RETURNS TABLE (location_id bigint, sales_date date, local_total numeric, vendor_total numeric,
               difference numeric, local_sales bigint, pending_items bigint, dead_items bigint,
               verdict text, projected_sales numeric, variance numeric)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rc$
DECLARE
    c      record;
    locals text := '';
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
    -- local sales of every capture of this server, through the capture's own mapping
    FOR c IN SELECT * FROM sales_api.capture WHERE capture.server_name = server AND vendor = 'connecteam' LOOP
        locals := locals || CASE WHEN locals = '' THEN '' ELSE ' UNION ALL ' END || format(
            'SELECT %s::bigint AS loc, (%s::timestamptz AT TIME ZONE %L)::date AS d, %s::numeric AS amt FROM %s AS s',
            sales_api._expr(c.mapping, 'location_id'), sales_api._expr(c.mapping, 'created_at'), day_tz,
            sales_api._expr(c.mapping, 'final_sale_amount'), c.relid::text);
    END LOOP;
    IF locals = '' THEN
        locals := 'SELECT NULL::bigint AS loc, NULL::date AS d, NULL::numeric AS amt WHERE false';
    END IF;
    RETURN QUERY EXECUTE format($q$
        WITH l AS (SELECT loc, d, sum(amt) AS total, count(*) AS n FROM (%s) x
                    WHERE d BETWEEN $1 AND $2 AND ($3 IS NULL OR loc = ANY ($3)) GROUP BY 1, 2),
             v AS (SELECT ds.location_id AS loc, ds.sales_date AS d, ds.total_sales, ds.projected_sales
                     FROM sales_api.connecteam_daily_sales($4, $1, $2, $3) ds),
             w AS (SELECT o.location_id AS loc, (o.created_at AT TIME ZONE $5)::date AS d,
                          count(*) FILTER (WHERE o.state IN ('pending', 'in_flight', 'failed', 'unknown')) AS waiting,
                          count(*) FILTER (WHERE o.state = 'dead') AS dead
                     FROM sales_api.outbox o JOIN sales_api.capture c ON c.id = o.capture_id
                    WHERE c.server_name = $4 AND o.kind IN ('ct_post', 'ct_delete')
                    GROUP BY 1, 2
                   UNION ALL
                   SELECT o.location_id, d::date, count(*), 0
                     FROM sales_api.outbox o JOIN sales_api.capture c ON c.id = o.capture_id,
                          generate_series((o.window_start AT TIME ZONE $5)::date, (o.window_end AT TIME ZONE $5)::date, interval '1 day') d
                    WHERE c.server_name = $4 AND o.kind = 'ct_window'
                      AND o.state IN ('pending', 'in_flight', 'failed')
                    GROUP BY 1, 2
                   UNION ALL
                   SELECT u.loc, (u.ts AT TIME ZONE $5)::date, count(*), 0
                     FROM sales_api.outbox_stage st JOIN sales_api.capture c ON c.id = st.capture_id,
                          unnest(coalesce(st.location_ids, ARRAY[st.location_id]),
                                 coalesce(st.created_ats, ARRAY[st.created_at])) AS u(loc, ts)
                    WHERE c.server_name = $4
                    GROUP BY 1, 2),
             k AS (SELECT loc, d FROM l UNION SELECT loc, d FROM v)
        SELECT k.loc, k.d, coalesce(l.total, 0), coalesce(v.total_sales, 0),
               coalesce(v.total_sales, 0) - coalesce(l.total, 0), coalesce(l.n, 0),
               coalesce((SELECT sum(waiting) FROM w WHERE w.loc = k.loc AND w.d = k.d), 0)::bigint,
               coalesce((SELECT sum(dead) FROM w WHERE w.loc = k.loc AND w.d = k.d), 0)::bigint,
               CASE WHEN coalesce((SELECT sum(waiting) FROM w WHERE w.loc = k.loc AND w.d = k.d), 0) > 0 THEN 'pending'
                    WHEN coalesce(l.total, 0) = coalesce(v.total_sales, 0) THEN 'match'
                    ELSE 'mismatch' END,
               v.projected_sales,
               coalesce(v.total_sales, 0) - v.projected_sales
          FROM k LEFT JOIN l ON l.loc = k.loc AND l.d = k.d
                 LEFT JOIN v ON v.loc = k.loc AND v.d = k.d
         ORDER BY 1, 2 $q$, locals)
    USING start_date, end_date, location_ids, server, day_tz;
END;
$rc$;

-------------------------------------------------------------------------------
-- attach(): a Connecteam capture stages statements of many rows
-------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION sales_api._capture_install(capture_id integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $install$
DECLARE
    c         record;
    mapping   jsonb;
    cid       integer := capture_id;
    tbl       text;
    k         text;
    cols      text[];
    ins_sql   text;
    del_sql   text;
    stage_sql text;
    ins_args  text[];
    del_args  text[];
    both_sql  text[];
    slot      text;
    bday      text;
    tz        text;
    slotmin   integer;
    rec_sql   text;
    win_sql   text;
BEGIN
    SELECT cap.*, s.srvoptions INTO c
      FROM sales_api.capture cap JOIN pg_foreign_server s ON s.oid = cap.server_id
     WHERE cap.id = capture_id;
    mapping := c.mapping;
    tbl := c.relid::text;
    k := c.key_expr;

    -- The statements read the transition tables by their fixed names
    -- (sales_api_new, sales_api_old); a mapping expression only ever passes
    -- through format() as an argument, so a % in it (a modulo, a LIKE
    -- pattern) is just SQL.
    IF c.vendor = 'connecteam' THEN
        -- a sale's fields, cast as the stage and the worker take them
        cols := ARRAY[k || '::text',
                      sales_api._expr(mapping, 'location_id') || '::bigint',
                      sales_api._expr(mapping, 'sale_type') || '::text',
                      sales_api._expr(mapping, 'created_at') || '::timestamptz',
                      sales_api._expr(mapping, 'final_sale_amount') || '::numeric',
                      sales_api._expr(mapping, 'tax_amount', 'NULL') || '::numeric',
                      sales_api._expr(mapping, 'currency', 'NULL') || '::text'];
        -- Every sale goes to sales_api.outbox_stage, which the worker makes
        -- outbox items (sales_api._stage_expand): a statement of fewer rows
        -- than sales_api.stage_min_rows writes a row per sale (no
        -- aggregation, no index), a larger one a single row of arrays.
        -- Either costs the POS's transaction far less than an outbox item
        -- per sale with its three index entries and CHECKs.
        ins_sql := format(
            'INSERT INTO sales_api.outbox_stage (capture_id, staged_at, sale_key, location_id, sale_type, created_at,'
            ' final_sale_amount, tax_amount, currency)'
            ' SELECT %s, statement_timestamp(), %s FROM sales_api_new AS s',
            cid, array_to_string(cols, ', '));
        stage_sql := format(
            'INSERT INTO sales_api.outbox_stage (capture_id, staged_at, sale_keys, location_ids, sale_types, created_ats,'
            ' final_sale_amounts, tax_amounts, currencies)'
            ' SELECT %s, statement_timestamp(), %s FROM sales_api_new AS s HAVING count(*) > 0',
            cid, (SELECT string_agg('array_agg(' || e || ')', ', ' ORDER BY n) FROM unnest(cols) WITH ORDINALITY AS x(e, n)));
        -- old versions: cancel what was not sent yet, delete at the vendor what was
        del_sql := format(
            'WITH gone AS (SELECT DISTINCT %1$s::text AS k FROM sales_api_old AS s),'
            -- a version certainly not at the vendor is simply cancelled
            ' cancelled AS (UPDATE sales_api.outbox o SET state = ''superseded'', lease_until = NULL'
            '   FROM gone WHERE o.capture_id = %2$s AND o.kind = ''ct_post'' AND o.sale_key = gone.k'
            '   AND o.state IN (''pending'', ''failed'') AND NOT o.ambiguous RETURNING o.id)'
            -- a version the vendor holds, or may hold, is deleted: the transactionId
            -- when known, else the post whose outcome decides it (target_post_id)
            ' INSERT INTO sales_api.outbox (capture_id, kind, sale_key, location_id, created_at, vendor_ref,'
            '                               target_post_id, next_attempt_at)'
            -- a newer version in flight or ambiguous is the one to undo (an older,
            -- already sent version has its own delete queued before this one)
            ' SELECT %2$s, ''ct_delete'', gone.k, cs.location_id, cs.created_at,'
            '        CASE WHEN p.id IS NULL THEN cs.transaction_id END, p.id,'
            '        statement_timestamp()'
            '   FROM gone'
            '   LEFT JOIN sales_api.connecteam_sent cs ON cs.capture_id = %2$s AND cs.sale_key = gone.k'
            '   LEFT JOIN LATERAL (SELECT max(o.id) AS id FROM sales_api.outbox o'
            '                       WHERE o.capture_id = %2$s AND o.kind = ''ct_post'' AND o.sale_key = gone.k'
            -- any unfinished post the cancel did not catch: in flight, ambiguous, or
            -- claimed by the worker between this statement's snapshot and its lock
            '                         AND o.state IN (''pending'', ''failed'', ''in_flight'', ''unknown'')'
            '                         AND o.id NOT IN (SELECT id FROM cancelled)) p ON true'
            '  WHERE cs.transaction_id IS NOT NULL OR p.id IS NOT NULL',
            k, cid);
        -- a statement of fewer rows stages a row per sale, a larger one a row of arrays
        ins_args := ARRAY['/*rows*/ ' || ins_sql, '/*bulk*/ ' || stage_sql];
        -- before an UPDATE or DELETE looks for the posts of its sales, the
        -- staged rows that hold those sales become items
        del_args := ARRAY[format('SELECT sales_api._stage_expand(%s, true, ARRAY(SELECT DISTINCT %s::text FROM sales_api_old AS s))',
                                 cid, k),
                          del_sql];
        win_sql := format(
            'SELECT %s FROM %s AS s'
            -- a window is whole seconds [$2, $3): Connecteam keeps Unix seconds, so
            -- 10:00:00.5 is the vendor's 10:00:00 and belongs to a window ending then
            ' WHERE %s::bigint = $1 AND %s::timestamptz >= $2 AND %s::timestamptz < $3',
            array_to_string(cols, ', '), tbl, sales_api._expr(mapping, 'location_id'),
            sales_api._expr(mapping, 'created_at'), sales_api._expr(mapping, 'created_at'));
    ELSE
        slotmin := coalesce((SELECT split_part(o, '=', 2)::int FROM unnest(c.srvoptions) o WHERE o LIKE 'slot_minutes=%'), 15);
        tz := coalesce((SELECT substr(o, 10) FROM unnest(c.srvoptions) o WHERE o LIKE 'timezone=%'),
                       current_setting('TimeZone'));
        slot := format('sales_api.time_slot(%s::timestamptz, %s, %L)', sales_api._expr(mapping, 'sold_at'), slotmin, tz);
        bday := coalesce(sales_api._expr(mapping, 'business_day', 'NULL') || '::date', 'NULL');
        -- the slots of the new rows, and (for UPDATE and DELETE) of the old ones
        SELECT array_agg(format(
            'INSERT INTO sales_api.outbox (capture_id, kind, unit_id, business_day, currency_id, sales_type_id, slot_start, next_attempt_at)'
            ' SELECT DISTINCT %s, ''mapal_slot'', %s::bigint, coalesce(%s, (%s)::date), %s::text, %s::text, %s, statement_timestamp()'
            ' FROM %s AS s ORDER BY 3, 4, 5, 6, 7'
            ' ON CONFLICT (capture_id, unit_id, business_day, currency_id, sales_type_id, slot_start)'
            ' WHERE kind = ''mapal_slot'' AND state = ''pending'' DO UPDATE SET state = ''pending'' WHERE false',
            cid, sales_api._expr(mapping, 'unit_id'), bday, slot,
            sales_api._expr(mapping, 'currency_id'), sales_api._expr(mapping, 'sales_type_id'), slot, src) ORDER BY n)
          INTO both_sql
          FROM unnest(ARRAY['sales_api_new', 'sales_api_old']) WITH ORDINALITY AS x(src, n);
        ins_sql := both_sql[1];
        del_sql := both_sql[2];
        ins_args := ARRAY[ins_sql];
        del_args := ARRAY[del_sql];
        -- totals of the slots of one unit and business day, straight from the POS table
        rec_sql := format(
            'SELECT c, t, sl, sum(net), sum(gross), sum(checks)::bigint, sum(guests)::bigint FROM ('
            ' SELECT %s::text AS c, %s::text AS t, %s AS sl, coalesce(%s, (%s)::date) AS bd,'
            ' %s::numeric AS net, %s::numeric AS gross, %s::numeric AS checks, %s::numeric AS guests'
            ' FROM %s AS s WHERE %s::bigint = $1'
            ' AND %s::timestamptz >= ($2::timestamp - interval ''1 day'') AT TIME ZONE %L'
            ' AND %s::timestamptz < ($2::timestamp + interval ''2 days'') AT TIME ZONE %L) x'
            ' WHERE bd = $2 GROUP BY c, t, sl',
            sales_api._expr(mapping, 'currency_id'), sales_api._expr(mapping, 'sales_type_id'), slot, bday, slot,
            sales_api._expr(mapping, 'net_sales'), sales_api._expr(mapping, 'gross_sales'),
            sales_api._expr(mapping, 'num_checks', '1'), sales_api._expr(mapping, 'num_guests', '0'),
            tbl, sales_api._expr(mapping, 'unit_id'),
            sales_api._expr(mapping, 'sold_at'), tz, sales_api._expr(mapping, 'sold_at'), tz);
    END IF;

    -- check every expression against the table now, not at the first sale
    EXECUTE format('WITH sales_api_new AS (SELECT * FROM %s LIMIT 0) ', tbl) || ins_sql;
    IF stage_sql IS NOT NULL THEN
        EXECUTE format('WITH sales_api_new AS (SELECT * FROM %s LIMIT 0) ', tbl) || stage_sql;
    END IF;
    IF rec_sql IS NOT NULL THEN
        EXECUTE 'EXPLAIN ' || rec_sql USING 0::bigint, current_date;
    END IF;
    IF win_sql IS NOT NULL THEN
        EXECUTE 'EXPLAIN ' || win_sql USING 0::bigint, now(), now();
    END IF;
    UPDATE sales_api.capture SET recompute_sql = rec_sql, window_sql = win_sql WHERE id = capture_id;

    -- statement-level triggers with transition tables: each runs its
    -- statements (trigger arguments) through the C trigger.  One marked
    -- /*rows*/ runs when the POS statement changed fewer rows than
    -- sales_api.stage_min_rows, one marked /*bulk*/ when it changed as many or more.
    EXECUTE format('CREATE TRIGGER sales_api_capture_%s_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS sales_api_new'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION sales_api.capture_trigger(%s)',
                   cid, tbl, (SELECT string_agg(quote_literal(a), ', ' ORDER BY n) FROM unnest(ins_args) WITH ORDINALITY AS x(a, n)));
    EXECUTE format('CREATE TRIGGER sales_api_capture_%s_del AFTER DELETE ON %s REFERENCING OLD TABLE AS sales_api_old'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION sales_api.capture_trigger(%s)',
                   cid, tbl, (SELECT string_agg(quote_literal(a), ', ' ORDER BY n) FROM unnest(del_args) WITH ORDINALITY AS x(a, n)));
    EXECUTE format('CREATE TRIGGER sales_api_capture_%s_upd AFTER UPDATE ON %s'
                   ' REFERENCING OLD TABLE AS sales_api_old NEW TABLE AS sales_api_new'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION sales_api.capture_trigger(%s)',
                   cid, tbl, (SELECT string_agg(quote_literal(a), ', ' ORDER BY n)
                                FROM unnest(del_args || ins_args) WITH ORDINALITY AS x(a, n)));
END;
$install$;

-- tables attached before this version get the new triggers
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT id, relid FROM sales_api.capture WHERE detached_at IS NULL ORDER BY id LOOP
        EXECUTE format('DROP TRIGGER sales_api_capture_%s_ins ON %s', c.id, c.relid);
        EXECUTE format('DROP TRIGGER sales_api_capture_%s_del ON %s', c.id, c.relid);
        EXECUTE format('DROP TRIGGER sales_api_capture_%s_upd ON %s', c.id, c.relid);
        PERFORM sales_api._capture_install(c.id);
    END LOOP;
END;
$$;
