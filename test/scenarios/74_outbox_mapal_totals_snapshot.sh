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
wait_for "$(drained)" 90 "the first slot"
# a session holds the sent row, so that the worker's purge of it waits
session_open holder
session_run holder "BEGIN;" "SELECT count(*) FROM (SELECT id FROM sales_api.outbox WHERE state = 'sent' FOR UPDATE) x;"
# a till's transaction inserts a sale in a new slot, and commits later
session_open till
session_run till "BEGIN;" "INSERT INTO pos_sales (store, sold_at, channel, net, tax, guests) VALUES (1, '2026-11-20 11:05:00+00', 'TAKE', 20.00, 2.00, 3);"
# the worker starts a cycle (after the insert statement ran) and waits on the lock
q -c "ALTER SYSTEM SET sales_api.sent_retention = '1ms'" >/dev/null
reload_conf
q -c "SELECT sales_api.wake_worker()" >/dev/null
wait_for "$worker_waits_on_lock" 60 "the worker to wait for the locked row"
# the till commits while the worker waits, then the lock goes
session_run till "COMMIT;"
session_close till
session_run holder "COMMIT;"
session_close holder
wait_for "$(drained)" 90 "the second slot"
mockctl mapal-sales --unit 1001
expect_eq "$(mockctl mapal-sales --unit 1001 | grep -c '11:00:00 20.00 22.00 1 3')" 1 "the 11:00 slot reached Mapal with its sale's totals"
python3 "$(dirname "$0")/../lib/compare.py" mapal-totals-snapshot --no-connecteam
