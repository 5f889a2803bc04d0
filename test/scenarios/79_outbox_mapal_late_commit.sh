#!/usr/bin/env bash
# A till's sale falls in a Mapal slot that already has a pending dirty marker,
# and its transaction commits only after the worker's next cycle.  Up to 0.4
# the sale's trigger did nothing (ON CONFLICT DO NOTHING): the worker claimed
# the marker, sent the slot's totals without the uncommitted sale, and when
# the till committed no marker was left: Mapal kept a stale slot for good.
# The sale's transaction must hold the marker back (the worker skips it) and
# the slot must reach Mapal with both sales once the till commits.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'connecteam')" >/dev/null
# the first sale's marker waits while the server is paused
q -c "SELECT sales_api.pause('mapal')" >/dev/null
q -c "INSERT INTO pos_sales (store, sold_at, channel, net, tax, guests) VALUES (1, '2026-11-20 10:05:00+00', 'TAKE', 10.00, 1.00, 2)"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE state = 'pending'")" 1 "one pending marker for the 10:00 slot"
# a second till's sale in the same slot, in a transaction that stays open
# until the test commits it
session_open till
session_run till "BEGIN;" "INSERT INTO pos_sales (store, sold_at, channel, net, tax, guests) VALUES (1, '2026-11-20 10:07:00+00', 'TAKE', 5.00, 0.50, 1);"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE kind = 'mapal_slot'")" 1 "the open sale reused the pending marker"
q -c "SELECT sales_api.resume('mapal')" >/dev/null
worker_cycles 2   # whole worker cycles run, after the resume, while the till's transaction is open
echo "while the till's transaction is open:"
qs -c "SELECT id, state, attempts FROM sales_api.outbox ORDER BY id"
mockctl mapal-sales --unit 1001
expect_eq "$(mockctl mapal-sales --unit 1001 | grep -c '10:00:00')" 0 "the slot is not sent without the open sale"
expect_eq "$(q -c "SELECT state FROM sales_api.outbox WHERE kind = 'mapal_slot'")" pending "the marker waits for the open sale"
session_run till "COMMIT;"
session_close till
wait_for "$(drained)" 90 "the slot after the till committed"
mockctl mapal-sales --unit 1001
expect_eq "$(mockctl mapal-sales --unit 1001 | grep -c '10:00:00 15.00 16.50 2 3')" 1 "the 10:00 slot reached Mapal with both sales"
python3 "$(dirname "$0")/../lib/compare.py" mapal-late-commit --no-connecteam
