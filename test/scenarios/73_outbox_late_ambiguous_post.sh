#!/usr/bin/env bash
# A slow vendor: a post times out on our side (sales_api.request_timeout
# 1.5 s) but the vendor finishes it and stores the sale 4 s after it
# arrived.  The worker settles the unknown outcome by replacing the
# location's time window; the late original must not leave a second copy:
# the vendor must end up with the sale exactly once (README: "The vendor
# ends up with exactly the local sales, whatever happened").
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
fs_set request_timeout 1500ms
trap 'q -c "ALTER SYSTEM RESET sales_api.request_timeout" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true' EXIT
# the vendor holds the post; it lands only after the worker has given up on it
mockctl fault hold --path '/connecteam/sales/v1/transactions$' --method POST --count 1
# a time with a fraction of a second, as now() gives: Connecteam keeps 10:00:00,
# and the window replacement must read and repost it (up to 0.5 it did not)
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (1, '2026-11-20 10:00:00.5+00', 'SALE', 10.00, 1.00)"
wait_until '[ "$(mockctl held)" = 1 ]' 60 "the post to reach the vendor"
# the window replacement (after sales_api.ambiguous_settle_time) waits while
# the server is paused: the late original lands between our timeout and the
# replacement, as a slow vendor's does within the settle time
q -c "SELECT sales_api.pause('connecteam')" >/dev/null
wait_for "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'ct_post' AND state = 'failed' AND ambiguous)" 60 \
    "the post to time out on our side (outcome unknown)"
mockctl release
mock_idle
expect_eq "$(mockctl ct-transactions | grep -c '10.00')" 1 "the late original landed at the vendor"
q -c "SELECT sales_api.resume('connecteam')" >/dev/null
wait_for "$(drained)" 60 "the sale"
mockctl log --fields method,path,query,status,fault | sed -E 's#/transactions/[^\t]+#/transactions/ID#'
qs -c "SELECT id, kind, state, attempts, http_status, left(last_error, 70) AS last_error FROM sales_api.outbox ORDER BY id"
mockctl ct-transactions
expect_eq "$(mockctl ct-transactions | grep -c '10.00')" 1 "Connecteam holds the sale once"
python3 "$(dirname "$0")/../lib/compare.py" late-ambiguous-post --no-mapal
