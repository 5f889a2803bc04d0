#!/usr/bin/env bash
# Scale out within one database: sales_api.workers_per_database = 2 starts a
# second worker for the database (no restart), the two split the lanes (each
# capture is sent by one worker, which holds its lane lock while its job is
# in flight), no lane is starved, nothing is sent twice; back to 1, the
# second worker stops and the first serves every lane.
. "$(dirname "$0")/../lib/scenario.sh"
LANES=4
restore() {
    mockctl faults-clear >/dev/null 2>&1 || true
    mockctl release >/dev/null 2>&1 || true
    q -d postgres -c "ALTER SYSTEM RESET sales_api.workers_per_database" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
}
trap restore EXIT
scenario_setup
make_locations "$LANES"

# one table per lane (a capture each), all to the same Connecteam server
for l in $(seq 1 "$LANES"); do
    q <<SQL >/dev/null
DROP TABLE IF EXISTS pos_lane$l;
CREATE TABLE pos_lane$l (id bigserial PRIMARY KEY, sold_at timestamptz NOT NULL, net numeric(12,2) NOT NULL);
SELECT sales_api.attach('pos_lane$l', 'connecteam', '{"location_id": "$l", "sale_type": "''SALE''",
  "created_at": "sold_at", "final_sale_amount": "net"}');
SQL
done
workers="SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sales_api worker' AND datname = current_database())"
lane_locks="SELECT count(DISTINCT l.pid)::text || ' workers hold ' || count(*) || ' lane locks'
  FROM pg_locks l WHERE l.locktype = 'advisory' AND l.classid = x'5A1E5A1E'::int::oid
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"

echo "--- workers_per_database = 2: a second worker, no restart"
q -c "ALTER SYSTEM SET sales_api.workers_per_database = 2" >/dev/null
reload_conf
q -c "SELECT sales_api.wake_worker()" >/dev/null
wait_for "$workers = 2" 60 "two workers for the database"
pass "two workers serve the database"

# the account's budget is learnt by one request at a time in the cluster:
# one sale first, so that the lanes do not wait for a held learner
q -c "INSERT INTO pos_lane1 (sold_at, net) VALUES ('2026-11-20 09:00+00', 1)"
wait_for "$(drained)" 60 "the first sale, which learns the account's budget"

echo "--- each lane is sent by one of them: with the vendor holding every post, both hold lane locks"
mockctl fault hold --path '/connecteam/sales/v1/transactions$' --method POST --count 100000 >/dev/null
for l in $(seq 1 "$LANES"); do
    q -c "INSERT INTO pos_lane$l (sold_at, net) SELECT '2026-11-20 10:00+00'::timestamptz + i * interval '1 s', i FROM generate_series(1, 250) i"
done
wait_for "SELECT count(*) = $LANES FROM (SELECT capture_id FROM sales_api.outbox WHERE state = 'in_flight'
                                        UNION SELECT capture_id FROM sales_api.outbox_stage WHERE lease_until IS NOT NULL) s" 60 \
    "every lane has a job in flight"
expect_eq "$(q -c "$lane_locks")" "2 workers hold $LANES lane locks" "the lanes are split between the two workers"
expect_eq "$(q -c "SELECT count(*) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.classid = x'5A1E5A1E'::int::oid
                  GROUP BY l.objid HAVING count(*) > 1")" "" "no lane is held by two workers"
mockctl faults-clear >/dev/null
mockctl release >/dev/null
wait_for "$(drained)" 120 "every lane drained"
for l in $(seq 1 "$LANES"); do
    expect_eq "$(mockctl ct-transactions | awk -v l="$l" '$1 == l' | wc -l | tr -d ' ')" $((250 + (l == 1))) "lane $l: the vendor holds its sales, once each"
done

echo "--- back to 1: the second worker stops, the first serves every lane"
q -c "ALTER SYSTEM SET sales_api.workers_per_database = 1" >/dev/null
reload_conf
q -c "SELECT sales_api.wake_worker()" >/dev/null
wait_for "$workers = 1" 60 "one worker left"
for l in $(seq 1 "$LANES"); do
    q -c "INSERT INTO pos_lane$l (sold_at, net) SELECT '2026-11-20 11:00+00'::timestamptz + i * interval '1 s', i FROM generate_series(1, 50) i"
done
wait_for "$(drained)" 120 "every lane drained by one worker"
for l in $(seq 1 "$LANES"); do
    expect_eq "$(mockctl ct-transactions | awk -v l="$l" '$1 == l' | wc -l | tr -d ' ')" $((300 + (l == 1))) "lane $l: its sales at the vendor, none twice"
done
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE state NOT IN ('sent', 'superseded')")" 0 "nothing failed, dead or unknown"
echo "workers_per_database scenario passed"
