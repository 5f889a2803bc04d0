#!/usr/bin/env bash
# A sale is updated, and deleted while the post of its new version is still
# in flight: the vendor must end up holding neither version.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (1, '2026-11-20 10:00:00+00', 'SALE', 10.00, 1.00)"
wait_for "$(drained)" 90 "the first version"
# the vendor holds the new version's post until the DELETE has committed
mockctl fault hold --path '/connecteam/sales/v1/transactions$' --method POST --count 1
q -c "UPDATE pos_sales SET net = 12.00"
wait_until '[ "$(mockctl held)" = 1 ]' 60 "the new version's post to reach the vendor"
# in flight as a leased staged sale: no outbox item until the worker records it
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox_stage WHERE lease_until IS NOT NULL")" 1 "the post's staged row leased"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE state = 'in_flight' AND kind = 'ct_post'")" 0 "no post an item before the DELETE"
# outbox_status counts it in flight, with the old version's delete
expect_eq "$(q -c "SELECT sum(items) FROM sales_api.outbox_status WHERE state = 'in_flight'")" \
          "$(q -c "SELECT 1 + count(*) FROM sales_api.outbox WHERE state = 'in_flight'")" "the leased post counted in flight"
q -c "DELETE FROM pos_sales"
# the DELETE made the leased sale an item in flight, for its delete to wait for and undo,
# and left its id for the worker's record
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE state = 'in_flight' AND kind = 'ct_post'")" 1 "the post an item in flight"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox_lease_items l JOIN sales_api.outbox o ON o.id = l.item_ids[1] WHERE o.state = 'in_flight'")" 1 "its id left for the record"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE kind = 'ct_delete' AND target_post_id IS NOT NULL")" 1 "the delete waits for that post"
mockctl release
wait_for "$(drained)" 60 "the delete"
mockctl log --fields method,path,status,fault | sed -E 's#/transactions/[^\t]+#/transactions/ID#'
qs -c "SELECT id, kind, state, attempts, http_status, final_sale_amount, left(coalesce(vendor_ref, ''), 8) AS ref, left(last_error, 50) AS last_error FROM sales_api.outbox ORDER BY id"
mockctl ct-transactions
expect_eq "$(mockctl ct-transactions | wc -l)" 0 "Connecteam holds no version of the deleted sale"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox_lease_items")" 0 "the record read the lease's items"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE kind = 'ct_post' AND state = 'sent' AND vendor_ref IS NOT NULL AND attempts = 1")" 2 "both versions' posts recorded sent, once"
