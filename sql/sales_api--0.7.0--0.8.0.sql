/* sales_api--0.7.0--0.8.0.sql: lanes (a capture's server and run_as) in
 * shared memory with a circuit breaker each, lane_state(), worker_served()
 * and the lane_status view */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION sales_api UPDATE TO '0.8.0'" to load this file. \quit

-- The library must be this version's: lane_state() and worker_served() are
-- in it from 0.8.0.
DO $$
BEGIN
    IF string_to_array(split_part(sales_api.version(), '-', 1), '.')::int[] < ARRAY[0, 8] THEN
        RAISE EXCEPTION 'the sales_api library loaded in this server is version %; this update needs 0.8.0 or later',
                        sales_api.version()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Install the new sales_api, restart PostgreSQL (the library is preloaded), then run ALTER EXTENSION sales_api UPDATE again.';
    END IF;
END;
$$;

-- Connecteam sales in flight are leased staged rows (see the end of this file)
ALTER TABLE sales_api.outbox_stage ADD COLUMN lease_until timestamptz;


-- The lanes of this database as the worker keeps them in shared memory
-- (src/lanes.c): per lane, its circuit breaker, jobs and requests in flight,
-- request counters by outcome since the cluster started, the last error and
-- what the worker says it waits for.  A lane the worker has not sent to
-- since the cluster started has no row.  last_error is shown only to roles
-- with the privileges of pg_read_all_stats, as pg_stat_activity's query.
CREATE FUNCTION sales_api.lane_state()
RETURNS TABLE (server_id oid, server_name name, run_as regrole,
               circuit text, circuit_until timestamptz, consecutive_failures integer,
               opened bigint, probe_in_flight boolean,
               jobs_in_flight integer, requests_in_flight integer,
               jobs bigint, requests bigint, requests_ok bigint, transport_errors bigint,
               timeouts bigint, server_errors bigint, client_errors bigint, rate_limited bigint,
               last_http_status integer, last_error text, last_error_at timestamptz,
               last_success_at timestamptz, last_job_at timestamptz,
               waiting text, waiting_until timestamptz)
AS 'MODULE_PATHNAME', 'sales_api_lane_state'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION sales_api.lane_state() IS
'the lanes (server and run_as) of this database in shared memory: circuit breaker, in flight, request counters, last error, why the worker waits';
REVOKE ALL ON FUNCTION sales_api.lane_state() FROM PUBLIC;

-- Whether a worker serves this database: what worker_stats().note says in
-- words, as a boolean (src/launcher.c).
CREATE FUNCTION sales_api.worker_served()
RETURNS boolean
AS 'MODULE_PATHNAME', 'sales_api_worker_served'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api.worker_served() IS
'whether a worker serves this database (worker_stats().note says why not)';
REVOKE ALL ON FUNCTION sales_api.worker_served() FROM PUBLIC;

-- One row per lane: a capture's server and run_as, i.e. one vendor account
-- as this database's worker reaches it.  What waits (counted as in
-- outbox_status: staged sales and slots, pending, failed and in-flight
-- items), the account's rate-limit budget (lane_budgets()), the lane's
-- circuit and counters (lane_state(), zeros and 'closed' before the worker
-- has sent to it), and why its work waits now: waiting_for, a word for
-- machines (idle, not_served, paused, circuit_open, circuit_half_open,
-- rate_limit, sending, backoff, queued, or what the worker said), until
-- when, and waiting_reason, the same in words.
CREATE VIEW sales_api.lane_status AS
WITH lane AS (
    SELECT c.server_id, c.run_as, min(c.server_name) AS server_name, min(c.vendor) AS vendor,
           array_agg(c.id) AS ids
      FROM sales_api.capture c
     GROUP BY c.server_id, c.run_as
), l AS (
    SELECT coalesce(fs.srvname, lane.server_name) AS server_name, lane.run_as, lane.vendor,
           w.served, coalesce(ss.paused, false) AS paused,
           st.staged + ms.staged AS staged, o.pending, o.failed, o.in_flight + st.leased AS in_flight, o.due,
           least(o.oldest, st.oldest, ms.oldest) AS oldest_waiting_at, o.next_attempt_at,
           bud.remaining AS budget_remaining,
           CASE WHEN bud.reset > now() THEN bud.reset END AS budget_reset,
           ls.circuit, ls.circuit_until, ls.consecutive_failures,
           ls.requests, ls.requests_ok, ls.transport_errors, ls.timeouts, ls.server_errors,
           ls.client_errors, ls.rate_limited, ls.last_http_status, ls.last_error, ls.last_error_at,
           ls.last_success_at, ls.waiting, ls.waiting_until
      FROM lane
     CROSS JOIN sales_api.worker_served() AS w(served)
      LEFT JOIN pg_catalog.pg_foreign_server fs ON fs.oid = lane.server_id
      LEFT JOIN sales_api.server_state ss ON ss.server_id = lane.server_id
     CROSS JOIN LATERAL (
           SELECT count(*) FILTER (WHERE x.state = 'pending') AS pending,
                  count(*) FILTER (WHERE x.state = 'failed') AS failed,
                  count(*) FILTER (WHERE x.state = 'in_flight') AS in_flight,
                  count(*) FILTER (WHERE x.state IN ('pending', 'failed')
                                     AND coalesce(x.next_attempt_at, '-infinity') <= now()) AS due,
                  min(x.next_attempt_at) FILTER (WHERE x.state IN ('pending', 'failed')
                                                   AND x.next_attempt_at > now()) AS next_attempt_at,
                  min(x.enqueued_at) AS oldest
             FROM sales_api.outbox x
            WHERE x.capture_id = ANY (lane.ids) AND x.state IN ('pending', 'failed', 'in_flight')) o
     CROSS JOIN LATERAL (
           -- leased rows: sales the worker has in flight (src/outbox_connecteam.c)
           SELECT coalesce(sum(coalesce(cardinality(x.sale_keys), 1)) FILTER (WHERE x.lease_until IS NULL), 0)::bigint AS staged,
                  coalesce(sum(coalesce(cardinality(x.sale_keys), 1)) FILTER (WHERE x.lease_until IS NOT NULL), 0)::bigint AS leased,
                  min(x.staged_at) AS oldest
             FROM sales_api.outbox_stage x
            WHERE x.capture_id = ANY (lane.ids)) st
     CROSS JOIN LATERAL (
           SELECT coalesce(sum(cardinality(x.slot_starts)), 0)::bigint AS staged,
                  min(x.staged_at) AS oldest
             FROM sales_api.mapal_stage x
            WHERE x.capture_id = ANY (lane.ids)) ms
      LEFT JOIN sales_api.lane_budgets() b ON b.server_name = lane.server_name AND b.run_as = lane.run_as
      -- the tighter of the minute and day budgets, as the worker sees it:
      -- the whole limit once a window's reset has passed
      LEFT JOIN LATERAL (
           SELECT v.remaining, v.reset
             FROM (VALUES (CASE WHEN now() >= b.minute_reset THEN b.minute_limit ELSE b.minute_remaining END,
                           b.minute_reset),
                          (CASE WHEN now() >= b.day_reset THEN b.day_limit ELSE b.day_remaining END,
                           b.day_reset)) AS v(remaining, reset)
            WHERE v.remaining IS NOT NULL
            ORDER BY v.remaining, v.reset DESC
            LIMIT 1) bud ON true
      LEFT JOIN sales_api.lane_state() ls ON ls.server_id = lane.server_id AND ls.run_as = lane.run_as
)
SELECT l.server_name, l.run_as, l.vendor, l.served, l.paused,
       l.staged, l.pending, l.failed, l.in_flight,
       l.oldest_waiting_at, now() - l.oldest_waiting_at AS oldest_waiting_age, l.next_attempt_at,
       l.budget_remaining, l.budget_reset,
       coalesce(l.circuit, 'closed') AS circuit, l.circuit_until,
       coalesce(l.consecutive_failures, 0) AS consecutive_failures,
       coalesce(l.requests, 0) AS requests, coalesce(l.requests_ok, 0) AS requests_ok,
       coalesce(l.transport_errors, 0) AS transport_errors, coalesce(l.timeouts, 0) AS timeouts,
       coalesce(l.server_errors, 0) AS server_errors, coalesce(l.client_errors, 0) AS client_errors,
       coalesce(l.rate_limited, 0) AS rate_limited,
       l.last_http_status, l.last_error, l.last_error_at, l.last_success_at,
       r.waiting_for, r.waiting_until,
       CASE r.waiting_for
           WHEN 'not_served' THEN 'not served: no worker serves this database (worker_stats().note says why)'
           WHEN 'paused' THEN 'paused: sales_api.resume() lets it send'
           WHEN 'circuit_open' THEN 'circuit open'
           WHEN 'circuit_half_open' THEN 'circuit half-open: one probe job tries the vendor'
           WHEN 'rate_limit' THEN 'rate limit spent'
           WHEN 'backoff' THEN 'backing off'
           WHEN 'queued' THEN 'queued: due now, for the worker''s next cycle'
           ELSE r.waiting_for
       END || coalesce(' until ' || r.waiting_until, '') AS waiting_reason
  FROM l
  -- why the lane's work waits: the first reason that applies
 CROSS JOIN LATERAL (
       SELECT v.waiting_for, v.waiting_until
         FROM (VALUES (1, l.staged + l.pending + l.failed + l.in_flight = 0, 'idle', NULL::timestamptz),
                      (2, NOT l.served, 'not_served', NULL),
                      (3, l.paused, 'paused', NULL),
                      (4, l.circuit = 'open' AND l.circuit_until > now(), 'circuit_open', l.circuit_until),
                      (5, l.circuit IN ('open', 'half_open'), 'circuit_half_open', NULL),
                      -- what the worker says (src/lanes.h, LANE_WAIT_*)
                      (6, l.waiting IS NOT NULL AND (l.waiting_until IS NULL OR l.waiting_until > now()),
                       l.waiting, l.waiting_until),
                      (7, l.budget_remaining = 0 AND l.budget_reset IS NOT NULL, 'rate_limit', l.budget_reset),
                      (8, l.in_flight > 0, 'sending', NULL),
                      (9, l.staged = 0 AND l.due = 0 AND l.next_attempt_at IS NOT NULL, 'backoff', l.next_attempt_at),
                      (10, true, 'queued', NULL)) AS v(priority, applies, waiting_for, waiting_until)
        WHERE v.applies
        ORDER BY v.priority
        LIMIT 1) r;
COMMENT ON VIEW sales_api.lane_status IS
'per lane (server and run_as): waiting work, rate-limit budget, circuit, request counters, last error, and why it waits';
REVOKE ALL ON sales_api.lane_status FROM PUBLIC;

-- a lane's due work, for the worker's claim of that lane alone
CREATE INDEX outbox_lane_todo_idx ON sales_api.outbox (capture_id, id)
    WHERE state IN ('pending', 'failed');

-- The Mapal stage's arrays (the slots of a large statement) are compressed
-- with lz4 like the Connecteam stage's, where the server has it: a bulk POS
-- statement spent more in pglz than in writing them.
DO $$
BEGIN
    ALTER TABLE sales_api.mapal_stage
        ALTER COLUMN unit_ids SET COMPRESSION lz4, ALTER COLUMN business_days SET COMPRESSION lz4,
        ALTER COLUMN currency_ids SET COMPRESSION lz4, ALTER COLUMN sales_type_ids SET COMPRESSION lz4,
        ALTER COLUMN slot_starts SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END;
$$;

-- a large statement is staged in rows of at most 500 sales (src/capture.c)
COMMENT ON TABLE sales_api.outbox_stage IS
'Connecteam sales captured by POS statements until the worker makes them outbox items: a row per sale, or rows of arrays of at most 500 sales for a large statement';
COMMENT ON FUNCTION sales_api._stage_expand(integer, boolean, text[], integer) IS
'makes staged sales (sales_api.outbox_stage) pending outbox items, as the worker does for a paused server';

-- Connecteam sales go into flight as leased staged rows, not items: the
-- column, the table of rows made items while leased, and the views that
-- count leased sales as in flight (see sales_api.sql)
-- (outbox_stage.lease_until is added at the top: lane_status reads it)

-- A Connecteam lane's staged sales go into flight without becoming items:
-- the worker's claim sets lease_until on the rows it takes, and its record
-- deletes them and inserts their sales' items in their final states (sent,
-- failed, ...), so a sale sent at the first try is written once in the
-- outbox.  outbox_status counts leased rows' sales as in_flight.  A POS
-- UPDATE or DELETE of a sale whose row is leased makes that row's sales
-- items in flight (its delete waits for, and undoes, the post), and leaves
-- here which items they became, for the worker's record; a lease that runs
-- out (its worker stopped) is made items the same way, which then expire as
-- any item in flight does (src/outbox_stage.c).
CREATE TABLE sales_api.outbox_lease_items (
    capture_id  integer NOT NULL,
    lease_until timestamptz NOT NULL,
    stage_tid   tid NOT NULL,           -- the leased row, as the worker's claim saw it
    item_ids    bigint[] NOT NULL       -- its sales' items, in the row's order
);
COMMENT ON TABLE sales_api.outbox_lease_items IS
'leased staged rows made items while their sales were in flight: which items, for the worker''s record';
REVOKE ALL ON sales_api.outbox_lease_items FROM PUBLIC;

CREATE OR REPLACE FUNCTION sales_api._capture_deleted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM sales_api.outbox WHERE capture_id = OLD.id;
    DELETE FROM sales_api.outbox_stage WHERE capture_id = OLD.id;
    DELETE FROM sales_api.outbox_lease_items WHERE capture_id = OLD.id;
    DELETE FROM sales_api.mapal_stage WHERE capture_id = OLD.id;
    DELETE FROM sales_api.connecteam_sent WHERE capture_id = OLD.id;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE VIEW sales_api.outbox_status AS
SELECT c.server_name,
       o.state,
       sum(o.n)::bigint AS items,
       min(o.enqueued_at) FILTER (WHERE o.state IN ('pending', 'failed', 'in_flight')) AS oldest_enqueued_at,
       now() - min(o.enqueued_at) FILTER (WHERE o.state IN ('pending', 'failed', 'in_flight')) AS oldest_pending_age,
       max(o.sent_at) AS last_success_at,
       (array_agg(o.last_error ORDER BY o.id DESC) FILTER (WHERE o.last_error IS NOT NULL AND o.state <> 'sent'))[1] AS last_error,
       bool_or(coalesce(s.paused, false)) AS paused
  FROM (SELECT x.capture_id, x.state, 1 AS n, x.enqueued_at, x.sent_at, x.last_error, x.id
          FROM sales_api.outbox x
        UNION ALL
        -- staged sales the worker has leased are in flight (src/outbox_connecteam.c)
        SELECT st.capture_id, 'in_flight', coalesce(cardinality(st.sale_keys), 1), st.staged_at,
               NULL::timestamptz, NULL::text, NULL::bigint
          FROM sales_api.outbox_stage st
         WHERE st.lease_until IS NOT NULL) o
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
 WHERE st.lease_until IS NULL
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

-- a pause row keeps its server's name: a restore gives servers new OIDs, and
-- the worker moves the row to the server of that name
ALTER TABLE sales_api.server_state ADD COLUMN server_name name;
UPDATE sales_api.server_state s SET server_name = f.srvname FROM pg_catalog.pg_foreign_server f WHERE f.oid = s.server_id;

-- pause() and resume() of a name that is no sales_api server raise an error
-- (until 0.8.0 they did nothing, and a typo looked like a paused server)
CREATE FUNCTION sales_api._server_oid(server name)
RETURNS oid LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    srv oid;
BEGIN
    SELECT f.oid INTO srv FROM pg_foreign_server f JOIN pg_foreign_data_wrapper w ON w.oid = f.srvfdw
     WHERE f.srvname = server AND w.fdwname = 'sales_api';
    IF srv IS NULL THEN
        RAISE EXCEPTION 'server "%" is not a sales_api server', server
              USING ERRCODE = CASE WHEN EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = server)
                                   THEN 'wrong_object_type' ELSE 'undefined_object' END,
                    HINT = 'The sales_api servers: SELECT srvname FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw WHERE w.fdwname = ''sales_api''.';
    END IF;
    RETURN srv;
END;
$$;
COMMENT ON FUNCTION sales_api._server_oid(name) IS 'the OID of a sales_api server, or an error naming what the name is';
-- EXECUTE stays with PUBLIC: pause() and resume() call it with their caller's
-- rights, and it reads only pg_foreign_server, which every role may read

CREATE OR REPLACE FUNCTION sales_api.pause(server name)
RETURNS void LANGUAGE sql
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO sales_api.server_state (server_id, paused, paused_at, server_name)
    VALUES (sales_api._server_oid(server), true, now(), server)
    ON CONFLICT (server_id) DO UPDATE SET paused = true, paused_at = now(), server_name = server;
END;

CREATE OR REPLACE FUNCTION sales_api.resume(server name)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    srv oid := sales_api._server_oid(server);
BEGIN
    UPDATE sales_api.server_state SET paused = false, paused_at = NULL WHERE server_id = srv;
    PERFORM sales_api.wake_worker_on_commit();
END;
$$;
