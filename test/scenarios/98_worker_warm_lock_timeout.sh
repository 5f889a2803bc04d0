#!/usr/bin/env bash
# The worker's warm-up (outbox_warm(): its statements prepared and planned
# when it starts) is only a head start, and waits 100 ms at most for a lock.
# With the server's default lock_timeout (0: no limit), a session holds
# sales_api.connecteam_sent in EXCLUSIVE mode (a Connecteam record's INSERT
# must wait for it) while a fresh worker starts: the worker says once in its
# log that it could not prepare ahead, and claims as before: the Mapal sales
# of another table go out while the lock is held, and once it is released
# the Connecteam sales too, each once.  Before, a failed warm-up was raised
# in every claim pass, or waited without limit, and no lane claimed until
# the lock was gone.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q <<'SQL' >/dev/null
DROP TABLE IF EXISTS pos_mapal;
CREATE TABLE pos_mapal (LIKE pos_sales INCLUDING ALL);
SELECT sales_api.attach('pos_mapal', 'mapal', '{
  "unit_id": "1000 + store", "sold_at": "sold_at", "currency_id": "''EUR''",
  "sales_type_id": "channel", "net_sales": "net", "gross_sales": "net + tax",
  "num_guests": "guests"}');
SQL
expect_eq "$(q -c "SHOW lock_timeout")" 0 "the server's lock_timeout"

worker_cycles 1
session_open locker
session_run locker "BEGIN;" "LOCK sales_api.connecteam_sent IN EXCLUSIVE MODE;"
old=$(worker_pid)
off=$(stat -c %s "$SA_PGLOG")
q -d postgres -c "SELECT pg_terminate_backend($old)" >/dev/null
fs_wait_new_worker "$old"
pid=$(worker_pid)
new_log() { tail -c +$((off + 1)) "$SA_PGLOG" | grep -F "[$pid]" || true; }

q -c "INSERT INTO pos_mapal (store, sold_at, net)
      SELECT 1 + i % 3, '2026-11-27 10:00+00'::timestamptz + i * interval '1 min', 2.00
        FROM generate_series(1, 40) i" >/dev/null
wait_for "SELECT NOT EXISTS (SELECT 1 FROM sales_api.mapal_stage)
          AND EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'mapal_slot' AND state = 'sent')
          AND NOT EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'mapal_slot'
                          AND state IN ('pending', 'in_flight', 'failed'))" 60 \
    "the Mapal slots to be sent while the lock is held"
worker_cycles 3
new_log | grep "could not prepare its statements ahead" || fail "the worker did not say it could not prepare ahead"
expect_eq "$(new_log | grep -c "could not prepare its statements ahead.*lock timeout")" 1 \
    "the worker tried once, and gave up on a lock timeout"
pass "the worker claims and sends while its warm-up could not take a lock"

session_run locker "COMMIT;"
session_close locker
fs_insert 1 300 100
wait_for "$(drained)" 120 "the Connecteam sales"
expect_eq "$(mockctl ct-transactions | wc -l | tr -d ' ')" 300 "Connecteam holds each sale once"
