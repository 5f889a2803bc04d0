#!/usr/bin/env bash
# A table detached and attached again to the same server (the README's way
# to change a mapping): an UPDATE or DELETE of a sale the first capture sent
# must reach that sale at Connecteam, and the new capture may start only once
# the old one has nothing queued.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES
      (1, '2026-11-23 10:00+00', 'SALE', 11.00, 1.00), (2, '2026-11-23 11:00+00', 'SALE', 22.00, 2.00)"
wait_for "$(drained)" 60 "the two sales under the first capture"

# 1. refused while the old capture has work queued
q -c "SELECT sales_api.pause('connecteam')" >/dev/null
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (3, '2026-11-23 12:00+00', 'SALE', 33.00, 3.00)"
q -c "SELECT sales_api.detach('pos_sales', 'connecteam')" >/dev/null
out=$(attach_connecteam 2>&1) && fail "attach succeeded while the old capture still had a sale queued"
echo "$out"
echo "$out" | grep -q "still has work queued" || fail "attach refused for another reason: $out"
q -c "SELECT sales_api.resume('connecteam')" >/dev/null
wait_for "$(drained)" 60 "the old capture's last sale"

# 2. attached again: the update and the delete reach what the first capture sent
attach_connecteam
expect_eq "$(q -c "SELECT count(*) FROM sales_api.connecteam_sent s JOIN sales_api.capture c ON c.id = s.capture_id
                   WHERE c.detached_at IS NULL")" 3 "the new capture holds the three sent ids"
q -c "UPDATE pos_sales SET net = 11.50 WHERE store = 1"
q -c "DELETE FROM pos_sales WHERE store = 2"
wait_for "$(drained)" 60 "the update and the delete"
mockctl ct-transactions
expect_eq "$(mockctl ct-transactions | wc -l)" 2 "Connecteam holds two sales"
expect_eq "$(mockctl ct-transactions | grep -c '11.50')" 1 "the updated version"
expect_eq "$(mockctl ct-transactions | grep -c '11.00')" 0 "not the version the first capture sent"
expect_eq "$(mockctl ct-transactions | grep -c '22.00')" 0 "not the deleted sale"
python3 "$(dirname "$0")/../lib/compare.py" reattach --no-mapal
