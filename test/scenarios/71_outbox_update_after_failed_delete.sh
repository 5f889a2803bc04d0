#!/usr/bin/env bash
# An UPDATE of a sale Connecteam already holds enqueues a delete of the old
# version and a post of the new one.  When the delete fails for a while (500s) and
# the new version's post succeeds first, the retried delete must still remove
# the OLD version: the vendor must end up with the new amount only.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (1, '2026-11-20 10:00:00+00', 'SALE', 10.00, 1.00)"
wait_for "$(drained)" 90 "the first version"
expect_eq "$(mockctl ct-transactions | grep -c '10.00')" 1 "Connecteam holds the first version"
mockctl fault status --path '/connecteam/sales/v1/transactions/' --method DELETE --status 500 --count 3
q -c "UPDATE pos_sales SET net = 12.00"
wait_for "$(drained)" 90 "the update"
mockctl log --fields method,path,status | sed -E 's#/transactions/[^\t]+#/transactions/ID#'
qs -c "SELECT id, kind, state, attempts, http_status, final_sale_amount FROM sales_api.outbox ORDER BY id"
mockctl ct-transactions
expect_eq "$(mockctl ct-transactions | grep -c '12.00')" 1 "Connecteam holds the new version"
expect_eq "$(mockctl ct-transactions | grep -c '10.00')" 0 "Connecteam no longer holds the old version"
python3 "$(dirname "$0")/../lib/compare.py" update-after-failed-delete --no-mapal
