#!/usr/bin/env bash
# A till's sale falls in a Mapal slot that already has a pending dirty marker,
# and its transaction commits only after the worker's next cycle.  Up to 0.4
# the sale's trigger did nothing (ON CONFLICT DO NOTHING): the worker claimed
# the marker, sent the slot's totals without the uncommitted sale, and when
# the till committed no marker was left: Mapal kept a stale slot for good.
# Now the sale stages its slot (sales_api.mapal_stage) and locks nothing:
# while the till's transaction is open the worker sends the slot as it stands
# (the committed sale), and once the till commits, the staged slot becomes a
# marker again and the slot reaches Mapal with both sales.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'connecteam')" >/dev/null
# the first sale's marker waits while the server is paused
q -c "SELECT sales_api.pause('mapal')" >/dev/null
q -c "INSERT INTO pos_sales (store, sold_at, channel, net, tax, guests) VALUES (1, '2026-11-20 10:05:00+00', 'TAKE', 10.00, 1.00, 2)"
wait_for "SELECT count(*) = 1 FROM sales_api.outbox WHERE state = 'pending' AND NOT EXISTS (SELECT 1 FROM sales_api.mapal_stage)" 30 "the staged slot made a marker"
pass "one pending marker for the 10:00 slot"
# a second till's sale in the same slot, in a transaction that stays open
# until the test commits it
session_open till
session_run till "BEGIN;" "INSERT INTO pos_sales (store, sold_at, channel, net, tax, guests) VALUES (1, '2026-11-20 10:07:00+00', 'TAKE', 5.00, 0.50, 1);"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE kind = 'mapal_slot'")" 1 "the open sale made no marker of its own"
expect_eq "$(q -c "SELECT count(*) FROM (SELECT id FROM sales_api.outbox WHERE kind = 'mapal_slot' FOR UPDATE NOWAIT) x")" 1 \
    "the open sale locks no marker (another till would not wait for it)"
q -c "SELECT sales_api.resume('mapal')" >/dev/null
# the worker sends the marker while the till's transaction is open (a cycle
# counts claims, not finished sends: wait for the marker itself)
wait_for "SELECT string_agg(state, ',') = 'sent' FROM sales_api.outbox WHERE kind = 'mapal_slot'" 60 \
    "the marker to be sent while the till's transaction is open"
echo "while the till's transaction is open:"
qs -c "SELECT id, state, attempts FROM sales_api.outbox ORDER BY id"
mockctl mapal-sales --unit 1001
expect_eq "$(mockctl mapal-sales --unit 1001 | grep -c '10:00:00 10.00 11.00 1 2')" 1 "the slot is sent as it stands: the committed sale only"
expect_eq "$(q -c "SELECT string_agg(state, ',') FROM sales_api.outbox WHERE kind = 'mapal_slot'")" sent "no marker is left while the till is open"
session_run till "COMMIT;"
session_close till
wait_for "$(drained)" 90 "the slot after the till committed"
mockctl mapal-sales --unit 1001
expect_eq "$(mockctl mapal-sales --unit 1001 | grep -c '10:00:00 15.00 16.50 2 3')" 1 "the 10:00 slot reached Mapal with both sales"
python3 "$(dirname "$0")/../lib/compare.py" mapal-late-commit --no-connecteam
