#!/usr/bin/env bash
# sales_api.lane_status: one row per lane (a capture's server and run_as),
# what waits and why.
#
# Part a (the work and the reasons; runs on any worker):
#   three lanes (Connecteam as postgres, Connecteam as a second role, Mapal
#   as postgres) in sa_worker, and two in a database no worker serves; at
#   every step lane_status, summed over run_as, equals outbox_status (staged,
#   pending, failed, in flight, the oldest waiting, paused), its budget equals
#   lane_budgets(), and waiting_for and waiting_reason say why: idle, paused,
#   backing off until the next attempt, sending (the vendor holds the post),
#   rate limit spent until the window's reset, not served.
#
# Part b (the circuit breaker, which the worker applies):
#   Connecteam answers 503 to every request.  The Connecteam lane's circuit
#   opens, with the vendor's error and status, and waiting_reason says it is
#   open until when; the Mapal lane goes on delivering meanwhile.  Once the
#   fault is cleared the circuit closes and every sale is delivered, none
#   lost or duplicated, and the lane's request counter equals what the mock
#   received.
#
# SA_LANE_STATUS_PARTS chooses the parts: "a b" (the default), "a" or "b".
. "$(dirname "$0")/../lib/scenario.sh"
PARTS=${SA_LANE_STATUS_PARTS:-a b}
DB_B=sa_lanes_b
POS2=sa_lanes_pos2

cleanup() {  # every step may fail (nothing to clean yet): never the script's exit status
    mockctl faults-clear >/dev/null 2>&1 || true
    mockctl release >/dev/null 2>&1 || true
    mockctl config connecteam_minute_limit=100000 connecteam_window_seconds=60 >/dev/null 2>&1 || true
    q -c "ALTER SYSTEM RESET sales_api.circuit_open_time" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
    q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB_B WITH (FORCE)" >/dev/null 2>&1 || true
    q -c "SET client_min_messages = warning" -c "DROP EXTENSION IF EXISTS sales_api CASCADE" \
      -c "DROP TABLE IF EXISTS pos_sales2" >/dev/null 2>&1 || true
    q -c "SET client_min_messages = warning" -c "DROP OWNED BY $POS2" -c "DROP ROLE IF EXISTS $POS2" >/dev/null 2>&1 ||
        q -d postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS $POS2" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# three lanes in sa_worker: Connecteam as postgres and as $POS2, Mapal as postgres
setup() {
    cleanup
    scenario_setup
    make_locations 2
    attach_connecteam
    attach_mapal
    q <<SQL >/dev/null
CREATE ROLE $POS2;
GRANT USAGE ON FOREIGN SERVER connecteam TO $POS2;
CREATE USER MAPPING FOR $POS2 SERVER connecteam OPTIONS (api_key 'ct-key-123');
CREATE TABLE pos_sales2 (LIKE pos_sales INCLUDING DEFAULTS);
ALTER TABLE pos_sales2 ADD PRIMARY KEY (id);
GRANT SELECT ON pos_sales2 TO $POS2;
SET client_min_messages = warning;
SELECT sales_api.attach('pos_sales2', 'connecteam', '{
  "location_id": "store", "sale_type": "kind", "created_at": "sold_at",
  "final_sale_amount": "net", "tax_amount": "tax", "currency": "''EUR''"}', run_as => '$POS2');
SQL
}

# sale TABLE STORE MINUTE [ROWS]: ROWS sales (default 1) at 2026-11-20 10:MINUTE, ids from one sequence
sale() {
    q -c "INSERT INTO $1 (id, store, sold_at, net, tax)
          SELECT nextval('pos_sales_id_seq'), $2, '2026-11-20 10:00+00'::timestamptz + interval '$3 min' + i * interval '1 s',
                 10 + i, 1
            FROM generate_series(1, ${4:-1}) i"
}

L1="server_name = 'connecteam' AND run_as = 'postgres'::regrole"
L2="server_name = 'connecteam' AND run_as = '$POS2'::regrole"
LM="server_name = 'mapal'"

# lane_status against outbox_status and lane_budgets(), in one snapshot: one
# line per disagreement, nothing when they agree
AGREE_SQL="
WITH ls AS (
    SELECT server_name, sum(staged) AS staged, sum(pending) AS pending, sum(failed) AS failed,
           sum(in_flight) AS in_flight, min(oldest_waiting_at) AS oldest, bool_or(paused) AS paused,
           bool_and(oldest_waiting_age = now() - oldest_waiting_at) AS age_ok
      FROM sales_api.lane_status GROUP BY 1),
os AS (
    SELECT server_name,
           coalesce(sum(items) FILTER (WHERE state = 'staged'), 0) AS staged,
           coalesce(sum(items) FILTER (WHERE state = 'pending'), 0) AS pending,
           coalesce(sum(items) FILTER (WHERE state = 'failed'), 0) AS failed,
           coalesce(sum(items) FILTER (WHERE state = 'in_flight'), 0) AS in_flight,
           min(oldest_enqueued_at) FILTER (WHERE state IN ('staged', 'pending', 'failed', 'in_flight')) AS oldest,
           bool_or(paused) AS paused
      FROM sales_api.outbox_status GROUP BY 1)
SELECT format('%s: lane_status (staged, pending, failed, in_flight, oldest) %s, outbox_status %s',
              ls.server_name, (ls.staged, ls.pending, ls.failed, ls.in_flight, ls.oldest),
              (os.staged, os.pending, os.failed, os.in_flight, os.oldest))
  FROM ls LEFT JOIN os USING (server_name)
 WHERE (ls.staged, ls.pending, ls.failed, ls.in_flight, ls.oldest)
       IS DISTINCT FROM (coalesce(os.staged, 0), coalesce(os.pending, 0), coalesce(os.failed, 0),
                         coalesce(os.in_flight, 0), os.oldest)
UNION ALL
SELECT format('%s: paused %s in lane_status, %s in outbox_status', ls.server_name, ls.paused, os.paused)
  FROM ls JOIN os USING (server_name) WHERE ls.paused IS DISTINCT FROM os.paused
UNION ALL
SELECT format('%s: oldest_waiting_age is not now() - oldest_waiting_at', ls.server_name)
  FROM ls WHERE NOT coalesce(ls.age_ok, true)
UNION ALL
SELECT format('%s: outbox_status has work of a server lane_status does not show', os.server_name)
  FROM os WHERE os.server_name NOT IN (SELECT server_name FROM ls)
UNION ALL
SELECT format('%s/%s: budget %s until %s, lane_budgets() says %s', s.server_name, s.run_as,
              s.budget_remaining, s.budget_reset, (b.minute_remaining, b.minute_reset, b.day_remaining, b.day_reset))
  FROM sales_api.lane_status s
  LEFT JOIN sales_api.lane_budgets() b ON b.server_name = s.server_name AND b.run_as = s.run_as
 WHERE s.budget_remaining IS DISTINCT FROM
       least(CASE WHEN now() >= b.minute_reset THEN b.minute_limit ELSE b.minute_remaining END,
             CASE WHEN now() >= b.day_reset THEN b.day_limit ELSE b.day_remaining END)
UNION ALL
SELECT format('%s/%s: waiting_reason %s does not say waiting_for %s until %s', s.server_name, s.run_as,
              s.waiting_reason, s.waiting_for, s.waiting_until)
  FROM sales_api.lane_status s
 WHERE s.waiting_until IS NOT NULL AND s.waiting_reason NOT LIKE '% until ' || s.waiting_until"
# agree WHAT: lane_status agrees with outbox_status (and lane_budgets())
agree() {
    local d
    d=$(q -c "$AGREE_SQL")
    [ -z "$d" ] || { qs -c "SELECT * FROM sales_api.lane_status ORDER BY 1, 2"; qs -c "SELECT * FROM sales_api.outbox_status ORDER BY 1, 2"; fail "$1: $d"; }
    pass "$1: lane_status agrees with outbox_status and lane_budgets()"
}
# lane WHERE: the lane's waiting_for, waiting_until IS NOT NULL, and waiting_reason
lane() {
    q -c "SELECT waiting_for || ' ' || (waiting_until IS NOT NULL) || ' ' || waiting_reason FROM sales_api.lane_status WHERE $1"
}
show() {
    qs -c "SELECT server_name, run_as, vendor, served, paused, staged, pending, failed, in_flight, circuit,
                  requests, last_http_status, waiting_for, waiting_reason FROM sales_api.lane_status ORDER BY 1, 2"
}

part_a() {
    echo "=== part a: lane_status against outbox_status, and why the work waits"
    setup
    expect_eq "$(q -c "SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute
                        WHERE attrelid = 'sales_api.lane_status'::regclass AND attnum > 0")" \
        "server_name, run_as, vendor, served, paused, staged, pending, failed, in_flight, oldest_waiting_at, oldest_waiting_age, next_attempt_at, budget_remaining, budget_reset, circuit, circuit_until, consecutive_failures, requests, requests_ok, transport_errors, timeouts, server_errors, client_errors, rate_limited, last_http_status, last_error, last_error_at, last_success_at, waiting_for, waiting_until, waiting_reason" \
        "the columns of lane_status"
    expect_eq "$(q -c "SELECT string_agg(server_name || '/' || run_as::text || '/' || vendor || ':' || served || ',' || circuit
                                         || ',' || waiting_reason, ' ' ORDER BY server_name, run_as::text)
                         FROM sales_api.lane_status")" \
        "connecteam/postgres/connecteam:true,closed,idle connecteam/$POS2/connecteam:true,closed,idle mapal/postgres/mapal:true,closed,idle" \
        "a row per lane, idle, served, closed before any sale"
    expect_eq "$(q -c "SELECT acl FROM (SELECT unnest(relacl)::text AS acl FROM pg_class WHERE oid = 'sales_api.lane_status'::regclass) a
                        WHERE acl LIKE '=%'")" "" "PUBLIC may not read lane_status (as outbox_status)"
    expect_eq "$(q -c "SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a
                        WHERE p.oid IN ('sales_api.lane_state()'::regprocedure, 'sales_api.worker_served()'::regprocedure)
                          AND a.grantee = 0")" 0 "PUBLIC may not call lane_state() or worker_served() (as worker_stats())"

    # rate limit spent: one request per 10 s window, from the account's first
    # request (its budget is learnt from the answers: the cluster has seen
    # none for this new server); the lanes' account is one (both mappings
    # hold the same key), so both wait for the window's reset
    mockctl config connecteam_minute_limit=1 connecteam_window_seconds=10 >/dev/null
    sale pos_sales2 1 30 1
    wait_for "SELECT pending + failed + in_flight + staged = 0 FROM sales_api.lane_status WHERE $L2" 60 "the sale that spends the window"
    sale pos_sales2 2 31 1
    # (one look: the window resets moments later)
    wait_for "SELECT waiting_for = 'rate_limit' AND budget_remaining = 0 AND waiting_until >= budget_reset
                     AND waiting_reason LIKE 'rate limit spent until %'
                FROM sales_api.lane_status WHERE $L2" 15 "the second lane to wait for the budget" ||
        { show; qs -c "SELECT now(), * FROM sales_api.lane_budgets()"; fail "the lane does not say its budget is spent"; }
    pass "the lane's budget is spent until its reset, and it says so"
    agree "rate limited"
    wait_for "$(drained)" 60 "the sale after the window's reset"
    # the vendor lifts the limit; the next answer says so
    mockctl config connecteam_minute_limit=100000 connecteam_window_seconds=60 >/dev/null
    # delivered: idle again
    sale pos_sales 1 0 3
    sale pos_sales2 2 1 2
    wait_for "$(drained)" 60 "the first sales to be delivered"
    agree "delivered"
    expect_eq "$(q -c "SELECT string_agg(waiting_for, ',') FROM sales_api.lane_status")" "idle,idle,idle" "every lane idle"

    # paused: the staged sales become items, and wait
    q -c "SELECT sales_api.pause('connecteam'), sales_api.pause('mapal')" >/dev/null
    sale pos_sales 1 10 4
    sale pos_sales2 2 11 2
    wait_for "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox_stage) AND NOT EXISTS (SELECT 1 FROM sales_api.mapal_stage)" 60 \
        "the staged sales and slots to become items"
    agree "paused"
    show
    expect_eq "$(q -c "SELECT pending || ' ' || paused FROM sales_api.lane_status WHERE $L1")" "4 true" "the first lane waits with 4 items"
    expect_eq "$(lane "$L1")" "paused false paused: sales_api.resume() lets it send" "the paused lane's reason"
    expect_eq "$(lane "$LM")" "paused false paused: sales_api.resume() lets it send" "the paused Mapal lane's reason"

    # backing off: the first lane's items failed, their next attempt in an hour
    # (written as the worker would record a failure); the second lane sends
    q -c "UPDATE sales_api.outbox o SET state = 'failed', attempts = 1,
                 next_attempt_at = now() + interval '1 hour' + (o.id % 3) * interval '1 minute',
                 http_status = 503, last_error = 'HTTP 503: Service Unavailable'
            FROM sales_api.capture c
           WHERE c.id = o.capture_id AND c.relid = 'pos_sales'::regclass AND c.vendor = 'connecteam' AND o.state = 'pending'" >/dev/null
    q -c "SELECT sales_api.resume('connecteam')" >/dev/null
    wait_for "SELECT pending = 0 AND in_flight = 0 FROM sales_api.lane_status WHERE $L2" 60 "the second lane's sales"
    agree "backing off"
    show
    expect_eq "$(q -c "SELECT failed || ' ' || (waiting_until = next_attempt_at) || ' ' ||
                              (next_attempt_at = (SELECT min(next_attempt_at) FROM sales_api.outbox WHERE state = 'failed'))
                         FROM sales_api.lane_status WHERE $L1")" "4 true true" "the first lane backs off until its earliest next attempt"
    expect_eq "$(lane "$L1" | cut -d' ' -f1-5)" "backoff true backing off until" "its reason"
    expect_eq "$(lane "$L2")" "idle false idle" "the second lane is idle"
    # due now: sent
    q -c "UPDATE sales_api.outbox SET next_attempt_at = now() WHERE state = 'failed'" -c "SELECT sales_api.wake_worker()" >/dev/null
    wait_for "SELECT pending + failed + in_flight = 0 FROM sales_api.lane_status WHERE $L1" 60 "the first lane's retried sales"
    q -c "SELECT sales_api.resume('mapal')" >/dev/null
    wait_for "$(drained)" 60 "the Mapal lane's slots"

    # sending: the vendor holds the second lane's post
    mockctl fault hold --path /connecteam/sales/v1/transactions --method POST --count 1
    sale pos_sales2 1 20 1
    wait_until '[ "$(mockctl held)" = 1 ]' 60 "the post to reach the vendor"
    agree "sending"
    expect_eq "$(q -c "SELECT in_flight FROM sales_api.lane_status WHERE $L2")" 1 "the held post is in flight"
    expect_eq "$(lane "$L2")" "sending false sending" "the lane's reason while the vendor holds its post"
    mockctl release
    mock_idle
    wait_for "SELECT pending + failed + in_flight + staged = 0 FROM sales_api.lane_status WHERE $L2" 60 "the held post to be recorded"

    sale pos_sales 2 40 2
    wait_for "$(drained)" 60 "everything delivered"
    SA_COMPARE_CT_TABLES=pos_sales,pos_sales2 python3 "$(dirname "$0")/../lib/compare.py" lane-status-a
    agree "drained"

    # not served: a database no worker serves (sales_api.database = sa_worker),
    # work staged and queued by hand as the worker would
    q -d postgres -c "CREATE DATABASE $DB_B" >/dev/null
    SA_DB=$DB_B q -v mock_url="$MOCK_URL" <<'SQL' >/dev/null
SET client_min_messages = error;
CREATE EXTENSION sales_api;
\set ct_url :mock_url/connecteam
\set token_url :mock_url/connect/token
\set sales_url :mock_url/mapal-sales
CREATE SERVER ct_b FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER ct_b OPTIONS (api_key 'ct-key-123');
CREATE SERVER mapal_b FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url :'token_url', sales_url :'sales_url',
                                                                timezone 'UTC', slot_minutes '15');
CREATE USER MAPPING FOR CURRENT_USER SERVER mapal_b OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE TABLE till (id bigserial PRIMARY KEY, store int, sold_at timestamptz, net numeric);
SELECT sales_api.attach('till', 'ct_b', '{"location_id": "store", "created_at": "sold_at",
  "final_sale_amount": "net", "sale_type": "''SALE''", "currency": "''EUR''"}');
SELECT sales_api.attach('till', 'mapal_b', '{"unit_id": "1000 + store", "sold_at": "sold_at", "currency_id": "''EUR''",
  "sales_type_id": "''TAKE''", "net_sales": "net", "gross_sales": "net"}');
SET sales_api.stage_min_rows = 2;
INSERT INTO till (store, sold_at, net) VALUES (1, '2026-11-20 10:00+00', 5);
INSERT INTO till (store, sold_at, net) SELECT 1, '2026-11-20 11:00+00'::timestamptz + i * interval '20 min', i FROM generate_series(1, 4) i;
-- made items, as a worker would, then a few in each waiting state
SELECT sales_api._stage_expand(NULL, false);
UPDATE sales_api.outbox SET state = 'failed', attempts = 1, next_attempt_at = now() + interval '1 hour'
 WHERE id = (SELECT min(id) FROM sales_api.outbox WHERE kind = 'ct_post');
UPDATE sales_api.outbox SET state = 'in_flight', attempts = 1, lease_until = now() + interval '1 hour'
 WHERE id = (SELECT max(id) FROM sales_api.outbox WHERE kind = 'ct_post');
UPDATE sales_api.outbox SET state = 'dead', attempts = 25, last_error = 'HTTP 400'
 WHERE id = (SELECT max(id) FROM sales_api.outbox WHERE kind = 'mapal_slot');
-- and staged again: a row per sale, a row of arrays, and Mapal slots
INSERT INTO till (store, sold_at, net) VALUES (2, '2026-11-20 12:00+00', 6);
INSERT INTO till (store, sold_at, net) SELECT 2, '2026-11-20 13:00+00'::timestamptz + i * interval '20 min', i FROM generate_series(1, 3) i;
SQL
    SA_DB=$DB_B agree "not served, staged and queued"
    SA_DB=$DB_B show
    expect_eq "$(SA_DB=$DB_B q -c "SELECT string_agg(server_name || ':' || served || ',' || staged || ',' || pending || ',' || failed
                                                   || ',' || in_flight || ',' || waiting_for, ' ' ORDER BY server_name)
                                    FROM sales_api.lane_status")" \
        "ct_b:false,4,3,1,1,not_served mapal_b:false,4,4,0,0,not_served" "the lanes of a database no worker serves"
    expect_eq "$(SA_DB=$DB_B q -c "SELECT DISTINCT waiting_reason FROM sales_api.lane_status")" \
        "not served: no worker serves this database (worker_stats().note says why)" "their reason"
    expect_eq "$(SA_DB=$DB_B q -c "SELECT sales_api.worker_served()::text || ' ' || (note LIKE 'served by %') FROM sales_api.worker_stats()")" \
        "false false" "worker_served() agrees with worker_stats().note"
    expect_eq "$(q -c "SELECT sales_api.worker_served()::text || ' ' || (note LIKE 'served by %') FROM sales_api.worker_stats()")" \
        "true true" "... in the served database too"
    q -d postgres -c "DROP DATABASE $DB_B WITH (FORCE)" >/dev/null
    echo "lane_status part a passed"
}

part_b() {
    echo "=== part b: the circuit breaker the worker applies, through an outage"
    setup
    q -c "ALTER SYSTEM SET sales_api.circuit_open_time = '5s'" >/dev/null
    reload_conf
    worker_cycles 2
    expect_eq "$(q -c "SHOW sales_api.circuit_failures")" 3 "sales_api.circuit_failures"
    wait_for "$(drained)" 30 "nothing to send"
    requests0=$(q -c "SELECT coalesce(sum(requests), 0) FROM sales_api.lane_status WHERE server_name = 'connecteam'")
    mockctl mark >/dev/null
    # Connecteam is down: every request answered 503
    mockctl fault status --path /connecteam --status 503 --count 1000000
    for m in 0 1 2 3 4; do
        sale pos_sales 1 $((m * 3)) 4
        sale pos_sales2 2 $((m * 3 + 1)) 2
    done
    wait_for "SELECT circuit = 'open' AND last_http_status = 503 AND last_error IS NOT NULL
                     AND waiting_for = 'circuit_open' AND waiting_reason LIKE 'circuit open until %'
                FROM sales_api.lane_status WHERE $L1" 120 "the first Connecteam lane's circuit to open"
    show
    qs -c "SELECT server_name, run_as, circuit, circuit_until, consecutive_failures, opened, requests, server_errors, last_error
             FROM sales_api.lane_state() ORDER BY 1, 2"
    expect_eq "$(q -c "SELECT consecutive_failures >= 3 AND server_errors > 0 AND last_error LIKE '%503%'
                         FROM sales_api.lane_status WHERE $L1")" t "opened after 3 failed jobs, with the vendor's 503"
    expect_eq "$(q -c "SELECT opened > 0 FROM sales_api.lane_state() WHERE server_name = 'connecteam' AND run_as = 'postgres'::regrole")" t \
        "lane_state() counts the opening"
    # the other vendor's lane is not held up by Connecteam's outage
    wait_for "SELECT waiting_for = 'idle' AND circuit = 'closed' FROM sales_api.lane_status WHERE $LM" 60 \
        "the Mapal lane to deliver while Connecteam is down"
    expect_eq "$(q -c "SELECT count(*) FROM sales_api.lane_status WHERE server_name = 'connecteam' AND waiting_for = 'idle'")" 0 \
        "the Connecteam lanes still wait"
    # the vendor is back
    mockctl faults-clear
    wait_for "SELECT bool_and(circuit = 'closed' AND consecutive_failures = 0) FROM sales_api.lane_status" 120 \
        "every circuit to close"
    wait_for "$(drained)" 120 "every sale to be delivered after the outage"
    mock_idle
    show
    expect_eq "$(q -c "SELECT string_agg(waiting_for, ',') FROM sales_api.lane_status")" "idle,idle,idle" "every lane idle"
    expect_eq "$(q -c "SELECT count(*) FROM sales_api.lane_status WHERE last_success_at IS NULL")" 0 "every lane has succeeded since"
    expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE state IN ('dead', 'unknown')")" 0 "nothing dead or parked"
    SA_COMPARE_CT_TABLES=pos_sales,pos_sales2 python3 "$(dirname "$0")/../lib/compare.py" lane-circuit
    expect_eq "$(( $(q -c "SELECT sum(requests) FROM sales_api.lane_status WHERE server_name = 'connecteam'") - requests0 ))" \
        "$(mockctl count --since-mark --path /connecteam)" "the Connecteam lanes counted every request the vendor received"
    echo "lane_status part b passed"
}

for p in $PARTS; do
    case $p in
        a) part_a ;;
        b) part_b ;;
        *) fail "SA_LANE_STATUS_PARTS: unknown part $p (a, b)" ;;
    esac
done
echo "lane status scenario passed"
