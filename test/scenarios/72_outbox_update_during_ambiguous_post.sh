#!/usr/bin/env bash
# A sale is updated while its first post is in flight, and the worker dies
# (SIGKILL) before the answer: after the lease expires the worker settles the
# unknown outcome by replacing the location's time window, which re-posts the
# sale's CURRENT version.  The delete enqueued for the old version must not
# then remove the new one: the vendor must end up with the new amount, once.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
fs_set lease_time 6s
trap 'q -c "ALTER SYSTEM RESET sales_api.lease_time" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true' EXIT
# the vendor holds the first post until the worker is dead
mockctl fault hold --path '/connecteam/sales/v1/transactions$' --method POST --count 1
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (1, '2026-11-20 10:00:00+00', 'SALE', 10.00, 1.00)"
wait_until '[ "$(mockctl held)" = 1 ]' 60 "the first post to reach the vendor"
q -c "UPDATE pos_sales SET net = 12.00"
pid=$(worker_pid)
kill -9 "$pid"
# the vendor stores the first post now, with the worker that sent it dead
# (its successor settles the post only after the lease and the settle time)
mockctl release
mock_idle
fs_wait_new_worker "$pid" 60
wait_for "$(drained)" 120 "the update"
mockctl log --fields method,path,query,status,fault | sed -E 's#/transactions/[^\t]+#/transactions/ID#'
qs -c "SELECT id, kind, state, attempts, http_status, final_sale_amount, left(last_error, 60) AS last_error FROM sales_api.outbox ORDER BY id"
mockctl ct-transactions
expect_eq "$(mockctl ct-transactions | grep -c '12.00')" 1 "Connecteam holds the new version once"
expect_eq "$(mockctl ct-transactions | grep -c '10.00')" 0 "Connecteam does not hold the old version"
python3 "$(dirname "$0")/../lib/compare.py" update-during-ambiguous-post --no-mapal
