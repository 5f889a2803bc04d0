#!/usr/bin/env bash
# A large Mapal backlog goes in steps, and every slot still arrives with its
# exact totals, each unit-day in one request (0.8.0, issue 15):
#  - one statement of 6,000 sales stages its ~2,300 slots in parts of at
#    most 1,000 (capture.c), which the worker makes markers of over more
#    than one step (at most 2,000 slots a step, outbox.c) while Connecteam's
#    sales of the same statement are being sent;
#  - the Mapal claim takes 2,000 slots in statements of 500, then the rest
#    of its last unit-day: each (unit, business day) still goes out in one
#    request.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"

unit_days() {
    # distinct (unit, business day) pairs of the Mapal slots, local time $1
    q -c "SELECT count(DISTINCT (store, (date_bin('$2 min', sold_at AT TIME ZONE '$1', '2000-01-01'))::date))
            FROM pos_sales"
}

# both vendors, 15-minute slots in UTC: the backlog of one statement
fs_setup
q -c "SELECT sales_api.pause('connecteam')" -c "SELECT sales_api.pause('mapal')" >/dev/null
# the stage as the statement leaves it, read in its transaction (the worker
# makes markers of staged slots even for a paused server)
stage=$(q <<'SQL'
BEGIN;
INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)
SELECT 1 + i % 3, timestamptz '2026-11-20 06:00+00' + (i * 53) * interval '1 second',
       (ARRAY['SALE','SALE','REFUND','VOID'])[1 + (i / 3) % 4],
       (ARRAY['EAT_IN','TAKE','DELIVERY'])[1 + (i / 12) % 3],
       CASE WHEN (i / 3) % 4 = 2 THEN -1 ELSE 1 END * round((1 + (i % 997) / 10.0)::numeric, 2),
       round(((i % 13) / 10.0)::numeric, 2), 1 + i % 4
  FROM generate_series(0, 5999) i;
SELECT count(*) || ' ' || max(cardinality(slot_starts)) || ' ' || sum(cardinality(slot_starts))
  FROM sales_api.mapal_stage;
COMMIT;
SQL
)
read -r parts largest slots <<<"$stage"
expect_eq "$([ "$parts" -gt 2 ] && [ "$largest" -le 1000 ] && echo yes)" yes \
    "a statement's slots are staged in parts of at most 1,000 ($parts parts, the largest $largest)"
expect_eq "$([ "$slots" -gt 2000 ] && echo more)" more "more slots than one step marks ($slots)"
mockctl mark >/dev/null
q -c "SELECT sales_api.resume('connecteam')" -c "SELECT sales_api.resume('mapal')" >/dev/null
wait_for "$(drained)" 180 "the backlog of 6,000 sales for both vendors"
expect_eq "$(mockctl count --since-mark --path 'real-time-sales')" "$(unit_days UTC 15)" \
    "one Mapal request per unit and business day"
python3 "$(dirname "$0")/../lib/compare.py" mapal-large-claims \
    || fail "the vendors do not hold exactly the committed sales"
pass "both vendors hold exactly the committed sales, every slot's totals equal"

