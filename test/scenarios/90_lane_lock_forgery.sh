#!/usr/bin/env bash
# A role with nothing but CONNECT cannot hold a lane back.  The worker's
# lane lock is an advisory lock whose fourth field no SQL function makes
# (pg_advisory_lock(bigint) sets 1, pg_advisory_lock(int, int) sets 2):
# a session that takes, shared, every (x'5A1E5A1E', id) advisory lock
# pg_advisory_lock_shared(int, int) can name, and keeps them, leaves the
# worker's lanes alone; a sale captured meanwhile is delivered.  (Up to
# 0.8.0's fix the lane lock was that very lock: the lanes it named were
# never claimed again while the session stayed, with nothing logged.)
. "$(dirname "$0")/../lib/scenario.sh"
restore() {
    session_close forger >/dev/null 2>&1 || true
    q -c "DROP ROLE IF EXISTS regress_forger" >/dev/null 2>&1 || true
}
trap restore EXIT
scenario_setup
make_locations 1
attach_connecteam
q -c "DROP ROLE IF EXISTS regress_forger" -c "CREATE ROLE regress_forger LOGIN" >/dev/null
cap=$(q -c "SELECT max(id) FROM sales_api.capture")

echo "--- a CONNECT-only role holds every advisory lock of the lane-lock key it can name"
PGUSER=regress_forger session_open forger
session_run forger "SELECT count(pg_advisory_lock_shared(x'5A1E5A1E'::int, id)) FROM generate_series(0, $((cap + 100))) id;"
expect_eq "$(q -c "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                   WHERE a.usename = 'regress_forger' AND l.locktype = 'advisory' AND l.classid = x'5A1E5A1E'::int::oid
                     AND l.objid = $cap")" 1 "the forger holds the advisory lock (x'5A1E5A1E', $cap)"

echo "--- a sale is captured while the forger keeps them: it is delivered"
q -c "INSERT INTO pos_sales (store, sold_at, net) VALUES (1, '2026-11-20 09:00+00', 12.50)"
wait_for "$(drained)" 30 "the sale delivered while the forger holds its locks"
expect_eq "$(mockctl ct-transactions | wc -l | tr -d ' ')" 1 "the vendor holds the sale"
expect_eq "$(q -c "SELECT count(*) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.classid = x'5A1E5A1E'::int::oid
                   AND l.objsubid NOT IN (1, 2)")" 0 "the worker holds no lane lock once its job is recorded"
pass "a CONNECT-only role holding advisory locks does not stop a lane"
