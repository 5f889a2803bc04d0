#!/usr/bin/env bash
# Posts whose outcome the answer does not settle.  (1) Connecteam stores a
# post, then answers 500, 502 or 504 (a failure after the write, a gateway's
# timeout): the transactions API has no idempotency key, and a plain resend
# would store those sales twice.  (A 503 says the vendor could not take the
# request: it is sent again, as a 429 is.)  (2) A 200 whose body lists no transaction
# ids: the sales may be stored, under ids nobody knows (an update or delete
# could never reach them), or, as here, not at all.  The worker treats both
# as an unknown outcome, as connecteam_push_transactions() does: the default
# policy replaces the location's time window, and under ambiguous_policy =
# park the items wait, marked, for an operator.  Either way Connecteam ends
# up holding each sale once.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
trap 'q -c "ALTER SYSTEM RESET sales_api.ambiguous_policy" -c "ALTER SYSTEM RESET sales_api.ambiguous_settle_time" \
       -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true' EXIT
fs_set ambiguous_settle_time 1s
amb0=$(q -c "SELECT ambiguous FROM sales_api.worker_stats()")

# 1. the default policy (replace the window): 600 sales, the first three
# posts stored and then answered with an error
mockctl fault status_after --path '/connecteam/sales/v1/transactions$' --method POST --status 500 --count 1
mockctl fault status_after --path '/connecteam/sales/v1/transactions$' --method POST --status 502 --count 1
mockctl fault status_after --path '/connecteam/sales/v1/transactions$' --method POST --status 504 --count 1
fs_insert 0 600
wait_for "$(drained)" 120 "the sales, with three posts stored and answered 5xx"
mockctl log --fields method,path,status,fault | sed -E 's#/transactions/[^\t]+#/transactions/ID#' | sort | uniq -c
qs -c "SELECT kind, state, ambiguous, count(*) FROM sales_api.outbox GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
expect_eq "$(mockctl log --fields fault | grep -c status_after)" 3 "three posts were stored and answered 5xx"
python3 "$(dirname "$0")/../lib/compare.py" 5xx-after-store --no-mapal
expect_eq "$(q -c "SELECT ambiguous - $amb0 > 0 FROM sales_api.worker_stats()")" t "the worker counted their items as unknown outcomes"

# 2. a 200 without the transactions (not stored), then an update of one of
# its sales: the window replacement stores them, and the update reaches the
# id it learned
mockctl fault wrong_shape --path '/connecteam/sales/v1/transactions$' --method POST --count 1
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax)
      SELECT 3, timestamptz '2026-11-22 09:00+00' + i * interval '1 minute', 'SALE', 10 + i, 1 FROM generate_series(1, 5) i"
wait_for "$(drained)" 120 "the sales answered 200 without their transactions"
q -c "UPDATE pos_sales SET net = 99.50 WHERE sold_at = '2026-11-22 09:01+00'"
wait_for "$(drained)" 120 "the update"
expect_eq "$(mockctl log --fields fault | grep -c wrong_shape)" 1 "one post was answered without its transactions"
expect_eq "$(mockctl ct-transactions | grep -c '99.50')" 1 "Connecteam holds the updated sale"
python3 "$(dirname "$0")/../lib/compare.py" 200-without-ids --no-mapal

# 3. park: the post answered 502 after it was stored waits for an operator,
# marked unknown, and is not posted again
q -c "ALTER SYSTEM SET sales_api.ambiguous_policy = 'park'" >/dev/null
fs_set ambiguous_settle_time 1s
mockctl fault status_after --path '/connecteam/sales/v1/transactions$' --method POST --status 502 --count 1
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (2, '2026-11-21 12:00:00+00', 'SALE', 77.77, 7.00)"
wait_for "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'ct_post' AND state = 'unknown' AND ambiguous)" 60 \
    "the post answered 502 after it was stored to be parked"
worker_cycles 3
qs -c "SELECT kind, state, ambiguous, http_status, left(last_error, 90) AS last_error FROM sales_api.outbox
        WHERE state <> 'sent' ORDER BY id"
expect_eq "$(mockctl ct-transactions | grep -c '77.77')" 1 "Connecteam holds the parked sale once"
expect_eq "$(q -c "SELECT http_status FROM sales_api.outbox WHERE state = 'unknown'")" 502 "the parked item keeps the 502"
