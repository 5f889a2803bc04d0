#!/usr/bin/env bash
# The worker's warm-up (outbox_warm(): its statements prepared and planned
# when it starts) is only a head start.  When it cannot take a lock in time
# (lock_timeout, here a session holding sales_api.connecteam_sent in
# EXCLUSIVE mode, which a Connecteam record's INSERT must wait for), the
# worker says so in its log and claims as before: the Mapal sales of
# another table go out while the lock is held, and once it is released the
# Connecteam sales too, each once.  Before, the failed warm-up was raised in
# every claim pass, and no lane claimed until the lock was gone.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q <<'SQL' >/dev/null
CREATE TABLE pos_mapal (LIKE pos_sales INCLUDING ALL);
SELECT sales_api.attach('pos_mapal', 'mapal', '{
  "unit_id": "1000 + store", "sold_at": "sold_at", "currency_id": "''EUR''",
  "sales_type_id": "channel", "net_sales": "net", "gross_sales": "net + tax",
  "num_guests": "guests"}');
SQL
cleanup_lock_timeout() { q -d postgres -c "ALTER SYSTEM RESET lock_timeout" >/dev/null 2>&1 || true; q -d postgres -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true; }
trap cleanup_lock_timeout EXIT
q -d postgres -c "ALTER SYSTEM SET lock_timeout = '300ms'" >/dev/null
reload_conf

session_open locker
session_run locker "BEGIN;" "LOCK sales_api.connecteam_sent IN EXCLUSIVE MODE;"
worker_cycles 1
old=$(worker_pid)
q -d postgres -c "SELECT pg_terminate_backend($old)" >/dev/null
fs_wait_new_worker "$old"
q -c "INSERT INTO pos_mapal (store, sold_at, net)
      SELECT 1 + i % 3, '2026-11-27 10:00+00'::timestamptz + i * interval '1 min', 2.00
        FROM generate_series(1, 40) i" >/dev/null
wait_for "SELECT NOT EXISTS (SELECT 1 FROM sales_api.mapal_stage)
          AND EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'mapal_slot' AND state = 'sent')
          AND NOT EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'mapal_slot'
                          AND state IN ('pending', 'in_flight', 'failed'))" 60 \
    "the Mapal slots to be sent while the lock is held"
wait_log "sales_api worker: could not prepare its statements at start" 30
grep "could not prepare its statements at start" "$SA_PGLOG" | tail -1
pass "the worker claims and sends while its warm-up could not take a lock"

session_run locker "COMMIT;"
session_close locker
cleanup_lock_timeout
reload_conf
fs_insert 1 300 100
wait_for "$(drained)" 120 "the Connecteam sales"
expect_eq "$(mockctl ct-transactions | wc -l | tr -d ' ')" 300 "Connecteam holds each sale once"
