#!/usr/bin/env bash
# Mapal slot totals are recomputed from the POS table when the worker claims
# a dirty slot.  A slot whose sales commit while the worker is between the
# start of its claim transaction and the claim itself (here: held up by a
# lock on an old outbox row it purges) must still be sent with its real
# totals, never with the totals of an older snapshot (zeros for a new slot).
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'connecteam')" >/dev/null
trap 'q -c "ALTER SYSTEM RESET sales_api.sent_retention" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true' EXIT
q -c "INSERT INTO pos_sales (store, sold_at, channel, net, tax, guests) VALUES (1, '2026-11-20 10:05:00+00', 'TAKE', 10.00, 1.00, 2)"
wait_for "$(drained)" 30 "the first slot"
# a session holds the sent row, so that the worker's purge of it waits
(q -c "BEGIN" -c "SELECT count(*) FROM (SELECT id FROM sales_api.outbox WHERE state = 'sent' FOR UPDATE) x" \
   -c "SELECT pg_sleep(4)" -c "COMMIT" >/dev/null) &
# a till's transaction inserts a sale in a new slot and commits a little later
(q -c "BEGIN" -c "INSERT INTO pos_sales (store, sold_at, channel, net, tax, guests) VALUES (1, '2026-11-20 11:05:00+00', 'TAKE', 20.00, 2.00, 3)" \
   -c "SELECT pg_sleep(1.5)" -c "COMMIT" >/dev/null) &
sleep 0.5
# the worker starts a cycle (after the insert statement began) and waits on the lock
fs_set sent_retention 1ms
q -c "SELECT sales_api.wake_worker()" >/dev/null
wait_for "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'sales_api worker' AND wait_event_type = 'Lock')" 10 \
    "the worker to wait for the locked row"
wait     # the till commits, then the lock goes
wait_for "$(drained)" 30 "the second slot"
mockctl mapal-sales --unit 1001
expect_eq "$(mockctl mapal-sales --unit 1001 | grep -c '11:00:00 20.00 22.00 1 3')" 1 "the 11:00 slot reached Mapal with its sale's totals"
python3 "$(dirname "$0")/../lib/compare.py" mapal-totals-snapshot --no-connecteam
