#!/usr/bin/env bash
# A business_day mapped apart from the sale's time (a day that ends at 04:00):
# a sale at 01:00 lands in a slot of the next date, which Mapal refuses for
# its business day with a 400 for the whole request.  That slot ends dead
# with its reason; the other slots of the unit and day are sent.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'connecteam')" >/dev/null
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
q <<'SQL' >/dev/null
SELECT sales_api.attach('pos_sales', 'mapal', '{
  "unit_id": "1000 + store", "sold_at": "sold_at", "currency_id": "''EUR''",
  "sales_type_id": "channel", "net_sales": "net", "gross_sales": "net + tax",
  "business_day": "((sold_at AT TIME ZONE ''UTC'') - interval ''4 hours'')::date"}');
SQL
q -c "INSERT INTO pos_sales (store, sold_at, channel, net, tax) VALUES
      (1, '2026-11-20 12:05+00', 'TAKE', 10.00, 1.00),
      (1, '2026-11-20 23:40+00', 'TAKE', 20.00, 2.00),
      (1, '2026-11-21 01:10+00', 'TAKE', 30.00, 3.00)"
wait_for "$(drained)" 60 "the slots of business day 2026-11-20"
qs -c "SELECT business_day, slot_start, state, left(last_error, 110) AS last_error FROM sales_api.outbox ORDER BY slot_start"
mockctl mapal-sales --unit 1001
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE state = 'sent'")" 2 "the two slots of the day's own date are sent"
expect_eq "$(q -c "SELECT slot_start FROM sales_api.outbox WHERE state = 'dead'")" "2026-11-21 01:00:00" \
    "the slot of the next date is dead"
q -c "SELECT last_error FROM sales_api.outbox WHERE state = 'dead'" | grep -q "is outside business day 2026-11-20" \
    || fail "the dead slot does not say why"
expect_eq "$(mockctl mapal-sales --unit 1001 | wc -l | tr -d ' ')" 2 "Mapal holds the two slots"
