#!/usr/bin/env bash
# Outbox basics: a committed sale reaches both vendors with the exact payload;
# a rolled-back sale sends nothing; UPDATE and DELETE are reflected.
. "$(dirname "$0")/../lib/scenario.sh"
scenario_setup
make_locations 2
attach_connecteam
attach_mapal

# one committed sale
q -c "INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)
      VALUES (1, '2026-11-20 12:07:00+00', 'SALE', 'TAKE', 12.30, 1.10, 2)"
wait_for "$(drained)" 90 "the first sale to be delivered"
expect_eq "$(mockctl count --path /connecteam/sales/v1/transactions --method POST)" 1 "one Connecteam POST"
body=$(mockctl body --path /connecteam/sales/v1/transactions)
echo "$body"
echo "$body" | grep -q '"createdAt": 1795176420' || fail "createdAt is not Unix seconds of the sale"
echo "$body" | grep -q '"finalSaleAmount": 12.30' || fail "amount not sent as the exact decimal 12.30"
echo "$body" | grep -q '"taxAmount": 1.10' || fail "tax not sent exactly"
echo "$body" | grep -q '"saleType": "SALE"' || fail "sale type"
mapal=$(mockctl body --path /mapal-sales/api/v1/business-unit/1001/real-time-sales)
echo "$mapal"
echo "$mapal" | grep -q '"timeSlotStart": "2026-11-20T12:00:00"' || fail "Mapal slot start"
echo "$mapal" | grep -q '"grossSales": 13.40' || fail "Mapal gross total"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.connecteam_sent")" 1 "transactionId stored"

# rolled back: nothing enqueued, nothing sent
mockctl mark >/dev/null
q <<'SQL'
BEGIN;
INSERT INTO pos_sales (store, sold_at, net) VALUES (2, '2026-11-20 13:00:00+00', 99.99);
ROLLBACK;
SQL
worker_cycles 2   # the worker has had its chance to send something
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE state <> 'sent'")" 0 "rollback enqueues nothing"
expect_eq "$(mockctl log --since-mark | wc -l)" 0 "rollback sends nothing"

# update: Connecteam gets a delete of the old version and a post of the new one;
# Mapal gets the slot's new total
mockctl mark >/dev/null
q -c "UPDATE pos_sales SET net = 20.00 WHERE store = 1"
wait_for "$(drained)" 90 "the update to be delivered"
mockctl log --since-mark --fields method,path,status
expect_eq "$(mockctl count --path '/connecteam/sales/v1/transactions/' --method DELETE)" 1 "old version deleted by transactionId"
expect_eq "$(mockctl ct-transactions | wc -l)" 1 "one transaction at Connecteam"
mockctl ct-transactions | grep -q '20.00' || fail "new amount at Connecteam"
python3 "$(dirname "$0")/../lib/compare.py" basic-after-update

# delete: gone at Connecteam, Mapal slot back to zero
q -c "DELETE FROM pos_sales"
wait_for "$(drained)" 90 "the delete to be delivered"
expect_eq "$(mockctl ct-transactions | wc -l)" 0 "no transaction left at Connecteam"
mockctl mapal-sales
python3 "$(dirname "$0")/../lib/compare.py" basic-after-delete

# the roles that insert sales need no privilege on the outbox
q <<'SQL'
DROP ROLE IF EXISTS sa_till;
CREATE ROLE sa_till;
GRANT INSERT, UPDATE, DELETE, SELECT ON pos_sales TO sa_till;
GRANT USAGE ON SEQUENCE pos_sales_id_seq TO sa_till;
SQL
q -c "SET ROLE sa_till; INSERT INTO pos_sales (store, sold_at, net) VALUES (2, '2026-11-21 09:00:00+00', 5.00)"
q -c "SET ROLE sa_till; SELECT count(*) FROM sales_api.outbox" 2>/dev/null && fail "a till role can read the outbox"
wait_for "$(drained)" 90 "the till's sale"
python3 "$(dirname "$0")/../lib/compare.py" basic-till-role
q -c "DELETE FROM pos_sales; REASSIGN OWNED BY sa_till TO postgres; DROP OWNED BY sa_till; DROP ROLE sa_till"
echo "basic outbox scenario passed"
