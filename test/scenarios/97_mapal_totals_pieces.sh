#!/usr/bin/env bash
# The worker reads a claim's slot totals in pieces of 6 hours of local time
# (outbox_mapal.c: one statement over a 100,000-sale day held the requests in
# flight 35-50 ms) and adds up in C what two pieces hold of one slot.  With
# 8-hour slots in a zone at +5:45 every slot straddles a piece boundary, so
# each slot's sales come from two pieces; its totals must be exactly the sum
# of its sales, each unit-day in one request.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"

unit_days() {
    # distinct (unit, business day) pairs of the Mapal slots, local time $1
    q -c "SELECT count(DISTINCT (store, (date_bin('$2 min', sold_at AT TIME ZONE '$1', '2000-01-01'))::date))
            FROM pos_sales"
}

scenario_setup
q -c "ALTER SERVER mapal OPTIONS (SET slot_minutes '480', SET timezone 'Asia/Kathmandu')" >/dev/null
attach_mapal
q -c "SELECT sales_api.pause('mapal')" >/dev/null
fs_insert 0 3000 1000
mockctl mark >/dev/null
q -c "SELECT sales_api.resume('mapal')" >/dev/null
wait_for "$(drained)" 120 "the 8-hour slots"
expect_eq "$(mockctl count --since-mark --path 'real-time-sales')" "$(unit_days Asia/Kathmandu 480)" \
    "one Mapal request per unit and business day"
python3 "$(dirname "$0")/../lib/compare.py" mapal-pieces --no-connecteam --slot-minutes 480 --timezone Asia/Kathmandu \
    || fail "a slot's totals differ from its sales"
pass "every 8-hour slot's totals equal the sum of its sales"
