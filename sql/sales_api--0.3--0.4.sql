/* sales_api--0.3--0.4.sql: reconciliation and repair */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION sales_api UPDATE TO '0.4'" to load this file. \quit

-------------------------------------------------------------------------------
-- Connecteam: local POS totals against the vendor's daily totals
-------------------------------------------------------------------------------
CREATE FUNCTION sales_api.reconcile_connecteam(server name, start_date date, end_date date,
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
COMMENT ON FUNCTION sales_api.reconcile_connecteam(name, date, date, bigint[], text) IS
'per location and day: local POS total (through the capture mapping) against Connecteam''s totalSales, outbox work still waiting, and a verdict';
REVOKE ALL ON FUNCTION sales_api.reconcile_connecteam(name, date, date, bigint[], text) FROM PUBLIC;

-------------------------------------------------------------------------------
-- Mapal Cashrec: local figures per cash sheet (centre, business day, shift)
-------------------------------------------------------------------------------
CREATE FUNCTION sales_api.reconcile_cashrec(server name, start_time timestamp, end_time timestamp,
                                            centers bigint[], unit_of_center jsonb DEFAULT NULL)
RETURNS TABLE (center_id bigint, unit_id bigint, business_day date, shift_id integer, cash_sheet_id text,
               till_id text, opened_at timestamp, closed_at timestamp,
               local_net numeric, vendor_net numeric, net_difference numeric,
               local_gross numeric, vendor_gross numeric, gross_difference numeric,
               local_checks bigint, vendor_checks integer, cash_difference numeric, verdict text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rm$
DECLARE
    c      record;
    tz     text;
    locals text := '';
BEGIN
    IF server IS NULL OR start_time IS NULL OR end_time IS NULL OR centers IS NULL THEN
        RAISE EXCEPTION 'server, start_time, end_time and centers must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    tz := coalesce((SELECT substr(o, 10) FROM pg_foreign_server s, unnest(s.srvoptions) o
                     WHERE s.srvname = server AND o LIKE 'timezone=%'), current_setting('TimeZone'));
    -- local sales of every Mapal capture of this server, in the units' local time
    FOR c IN SELECT * FROM sales_api.capture WHERE capture.server_name = server AND vendor = 'mapal' LOOP
        locals := locals || CASE WHEN locals = '' THEN '' ELSE ' UNION ALL ' END || format(
            'SELECT %s::bigint AS unit, (%s::timestamptz AT TIME ZONE %L) AS at, %s::numeric AS net,'
            ' %s::numeric AS gross, %s::numeric AS checks FROM %s AS s',
            sales_api._expr(c.mapping, 'unit_id'), sales_api._expr(c.mapping, 'sold_at'), tz,
            sales_api._expr(c.mapping, 'net_sales'), sales_api._expr(c.mapping, 'gross_sales'),
            sales_api._expr(c.mapping, 'num_checks', '1'), c.relid::text);
    END LOOP;
    IF locals = '' THEN
        locals := 'SELECT NULL::bigint AS unit, NULL::timestamp AS at, NULL::numeric AS net,'
                  ' NULL::numeric AS gross, NULL::numeric AS checks WHERE false';
    END IF;
    RETURN QUERY EXECUTE format($q$
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
          FROM sales_api.cashrec_fetch($1, $2, $3, $4) cs
          CROSS JOIN LATERAL (SELECT coalesce(($5 ->> cs.center_id::text)::bigint, cs.center_id) AS unit) u
          LEFT JOIN LATERAL (SELECT sum(l.net) AS net, sum(l.gross) AS gross, sum(l.checks) AS checks
                               FROM (%s) l
                              WHERE l.unit = u.unit AND l.at >= cs.opened_at AND l.at < cs.closed_at) x ON true
         ORDER BY 1, 3, 4, 5 $q$, locals)
    USING server, start_time, end_time, centers, coalesce(unit_of_center, '{}'::jsonb);
END;
$rm$;
COMMENT ON FUNCTION sales_api.reconcile_cashrec(name, timestamp, timestamp, bigint[], jsonb) IS
'per cash sheet: local net, gross and checks between the shift''s opening and closing against the sheet''s figures, and the till''s cash difference';
REVOKE ALL ON FUNCTION sales_api.reconcile_cashrec(name, timestamp, timestamp, bigint[], jsonb) FROM PUBLIC;

-------------------------------------------------------------------------------
-- Repair: resynchronise a location's day (Connecteam) or a unit's day (Mapal)
-------------------------------------------------------------------------------
CREATE FUNCTION sales_api.repair_connecteam(server name, location_id bigint, sales_date date,
                                            day_tz text DEFAULT 'UTC')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rp$
DECLARE
    n bigint := 0;
    c record;
    ws timestamptz;
    we timestamptz;
BEGIN
    IF server IS NULL OR location_id IS NULL OR sales_date IS NULL OR day_tz IS NULL THEN
        RAISE EXCEPTION 'server, location_id, sales_date and day_tz must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    ws := sales_date::timestamp AT TIME ZONE day_tz;
    we := (sales_date + 1)::timestamp AT TIME ZONE day_tz - interval '1 second';
    FOR c IN SELECT * FROM sales_api.capture
              WHERE capture.server_name = server AND vendor = 'connecteam' AND detached_at IS NULL LOOP
        -- the worker deletes the day's window at the vendor and posts every local sale of it again
        INSERT INTO sales_api.outbox (capture_id, kind, location_id, window_start, window_end, next_attempt_at)
        VALUES (c.id, 'ct_window', repair_connecteam.location_id, ws, we, now());
        n := n + 1;
    END LOOP;
    IF n = 0 THEN
        RAISE EXCEPTION 'no table is attached to server "%"', server
            USING ERRCODE = 'undefined_object', HINT = 'Attach the POS table with sales_api.attach() first.';
    END IF;
    PERFORM sales_api.wake_worker_on_commit();
    RETURN n;
END;
$rp$;
COMMENT ON FUNCTION sales_api.repair_connecteam(name, bigint, date, text) IS
'queues the replacement of a location''s day at Connecteam: delete the day''s window, post every local sale of it again';
REVOKE ALL ON FUNCTION sales_api.repair_connecteam(name, bigint, date, text) FROM PUBLIC;

CREATE FUNCTION sales_api.repair_mapal(server name, unit_id bigint, business_day date)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rp$
DECLARE
    n bigint := 0;
    k bigint;
    c record;
    tz text;
    slotmin integer;
    slot text;
BEGIN
    IF server IS NULL OR unit_id IS NULL OR business_day IS NULL THEN
        RAISE EXCEPTION 'server, unit_id and business_day must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    tz := coalesce((SELECT substr(o, 10) FROM pg_foreign_server s, unnest(s.srvoptions) o
                     WHERE s.srvname = server AND o LIKE 'timezone=%'), current_setting('TimeZone'));
    slotmin := coalesce((SELECT split_part(o, '=', 2)::int FROM pg_foreign_server s, unnest(s.srvoptions) o
                          WHERE s.srvname = server AND o LIKE 'slot_minutes=%'), 15);
    FOR c IN SELECT * FROM sales_api.capture
              WHERE capture.server_name = server AND vendor = 'mapal' AND detached_at IS NULL LOOP
        slot := format('sales_api.time_slot(%s::timestamptz, %s, %L)', sales_api._expr(c.mapping, 'sold_at'), slotmin, tz);
        -- every slot with local sales that day, and every slot sent before (it may need zeros now)
        EXECUTE format(
            'INSERT INTO sales_api.outbox (capture_id, kind, unit_id, business_day, currency_id, sales_type_id, slot_start, next_attempt_at)'
            ' SELECT %s, ''mapal_slot'', $1, $2, cur, typ, sl, now() FROM ('
            '   SELECT %s::text AS cur, %s::text AS typ, %s AS sl FROM %s AS s'
            '    WHERE %s::bigint = $1 AND coalesce(%s::date, (%s)::date) = $2'
            '   UNION SELECT currency_id, sales_type_id, slot_start FROM sales_api.outbox'
            '    WHERE capture_id = %s AND kind = ''mapal_slot'' AND unit_id = $1 AND business_day = $2) x'
            ' ON CONFLICT (capture_id, unit_id, business_day, currency_id, sales_type_id, slot_start)'
            ' WHERE kind = ''mapal_slot'' AND state = ''pending'' DO NOTHING',
            c.id, sales_api._expr(c.mapping, 'currency_id'), sales_api._expr(c.mapping, 'sales_type_id'), slot,
            c.relid::text, sales_api._expr(c.mapping, 'unit_id'),
            sales_api._expr(c.mapping, 'business_day', 'NULL'), slot, c.id)
        USING repair_mapal.unit_id, repair_mapal.business_day;
        GET DIAGNOSTICS k = ROW_COUNT;
        n := n + k;
    END LOOP;
    PERFORM sales_api.wake_worker_on_commit();
    RETURN n;
END;
$rp$;
COMMENT ON FUNCTION sales_api.repair_mapal(name, bigint, date) IS
'queues every slot of a unit''s business day for sending again (totals recomputed from the POS table)';
REVOKE ALL ON FUNCTION sales_api.repair_mapal(name, bigint, date) FROM PUBLIC;

-------------------------------------------------------------------------------
-- Scheduled reconciliation (the worker, sales_api.reconcile_interval)
-------------------------------------------------------------------------------
CREATE TABLE sales_api.reconciliation (
    run_at        timestamptz NOT NULL,
    server_name   name NOT NULL,
    location_id   bigint NOT NULL,
    sales_date    date NOT NULL,
    local_total   numeric NOT NULL,
    vendor_total  numeric NOT NULL,
    difference    numeric NOT NULL,
    local_sales   bigint NOT NULL,
    pending_items bigint NOT NULL,
    dead_items    bigint NOT NULL,
    verdict       text NOT NULL,
    PRIMARY KEY (server_name, location_id, sales_date, run_at)
);
CREATE INDEX reconciliation_run_at_idx ON sales_api.reconciliation (run_at);
SELECT pg_catalog.pg_extension_config_dump('sales_api.reconciliation', '');
COMMENT ON TABLE sales_api.reconciliation IS 'results of the worker''s scheduled reconciliations (sales_api.reconcile_retention)';
REVOKE ALL ON sales_api.reconciliation FROM PUBLIC;

CREATE VIEW sales_api.reconciliation_latest AS
SELECT DISTINCT ON (server_name, location_id, sales_date)
       server_name, location_id, sales_date, run_at, local_total, vendor_total, difference,
       pending_items, dead_items, verdict
  FROM sales_api.reconciliation
 ORDER BY server_name, location_id, sales_date, run_at DESC;
COMMENT ON VIEW sales_api.reconciliation_latest IS 'the latest verdict per server, location and day';
REVOKE ALL ON sales_api.reconciliation_latest FROM PUBLIC;

-- One server's reconciliation of the last `days` days, recorded; returns the
-- days whose mismatch has lasted longer than `grace`.  The worker calls it
-- with the capture's run_as credentials.
CREATE FUNCTION sales_api.record_reconciliation(server name, days integer, day_tz text, grace interval)
RETURNS TABLE (location_id bigint, sales_date date, difference numeric, mismatch_since timestamptz)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rr$
DECLARE
    t timestamptz := clock_timestamp();
BEGIN
    INSERT INTO sales_api.reconciliation
    SELECT t, server, r.location_id, r.sales_date, r.local_total, r.vendor_total, r.difference,
           r.local_sales, r.pending_items, r.dead_items, r.verdict
      FROM sales_api.reconcile_connecteam(server, (t AT TIME ZONE day_tz)::date - (days - 1),
                                          (t AT TIME ZONE day_tz)::date, NULL, day_tz) r;
    RETURN QUERY
    SELECT cur.location_id, cur.sales_date, cur.difference,
           (SELECT min(h.run_at) FROM sales_api.reconciliation h
             WHERE h.server_name = server AND h.location_id = cur.location_id AND h.sales_date = cur.sales_date
               AND h.verdict = 'mismatch'
               AND h.run_at > coalesce((SELECT max(g.run_at) FROM sales_api.reconciliation g
                                         WHERE g.server_name = server AND g.location_id = cur.location_id
                                           AND g.sales_date = cur.sales_date AND g.verdict <> 'mismatch'),
                                       '-infinity'))
      FROM sales_api.reconciliation cur
     WHERE cur.server_name = server AND cur.run_at = t AND cur.verdict = 'mismatch'
       AND (SELECT min(h.run_at) FROM sales_api.reconciliation h
             WHERE h.server_name = server AND h.location_id = cur.location_id AND h.sales_date = cur.sales_date
               AND h.verdict = 'mismatch'
               AND h.run_at > coalesce((SELECT max(g.run_at) FROM sales_api.reconciliation g
                                         WHERE g.server_name = server AND g.location_id = cur.location_id
                                           AND g.sales_date = cur.sales_date AND g.verdict <> 'mismatch'),
                                       '-infinity')) <= t - grace;
END;
$rr$;
COMMENT ON FUNCTION sales_api.record_reconciliation(name, integer, text, interval) IS
'records a reconciliation of one Connecteam server and returns mismatches older than the grace period';
REVOKE ALL ON FUNCTION sales_api.record_reconciliation(name, integer, text, interval) FROM PUBLIC;
