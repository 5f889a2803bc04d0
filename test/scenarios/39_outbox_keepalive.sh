#!/usr/bin/env bash
# The worker's Connecteam posts reuse a kept-alive connection (no TCP and TLS
# handshake per request), and libcurl's own silent resend is refused.
#
# libcurl sends a request again by itself, on a new connection, when a
# reused connection closes before any answer.  For a transactions POST that
# the vendor stored before the connection closed, that resend stores the
# sales twice, and the worker, seeing one 200, never knows.  The worker
# refuses that resend (src/http.c, http_prereq_cb): the post fails as
# "outcome unknown", and the ambiguous post is settled by replacing its
# window, so the vendor ends with each sale once.
#
# Part A: two posts one after the other use the same connection (the mock
# logs the client's port).  Part B: the vendor stores a post on that
# connection and closes it without an answer (fault drop_after): nothing is
# sent twice, and the vendor holds every sale once.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null

sale() {   # sale N: one sale in its own transaction, store 1, its own minute
    q -c "INSERT INTO pos_sales (store, sold_at, net) VALUES (1, timestamptz '2026-11-20 10:00+00' + $1 * interval '1 minute', $1.00)"
}
posts() { mockctl log --path '/connecteam/sales/v1/transactions$' --method POST --fields conn,status,dropped; }

# A: a kept-alive connection
sale 1
wait_for "$(drained)" 60 "the first sale"
sale 2
wait_for "$(drained)" 60 "the second sale"
expect_eq "$(posts | wc -l)" 2 "two posts"
expect_eq "$(posts | cut -f1 | sort -u | wc -l)" 1 "both posts on one connection"

# B: the vendor stores the next post and closes that connection unanswered
mockctl mark >/dev/null
mockctl fault drop_after --path '/connecteam/sales/v1/transactions$' --method POST --count 1
sale 3
wait_for "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'ct_post' AND ambiguous AND last_error LIKE '%reused connection closed without an answer%')" 60 \
    "the dropped post to be recorded as of unknown outcome"
qs -c "SELECT kind, state, ambiguous, left(last_error, 100) AS last_error FROM sales_api.outbox WHERE kind = 'ct_post' AND final_sale_amount = 3.00"
wait_for "$(drained)" 90 "the ambiguous post to be settled"
mockctl log --since-mark --fields method,path,status,dropped,conn | sed -E 's#/transactions/[^\t]+#/transactions/ID#'
first=$(posts | sed -n 1p | cut -f1)
dropped=$(posts | awk -F'\t' '$3 == "True" || $3 == "true" {print $1}')
expect_eq "$dropped" "$first" "the dropped post went out on the kept-alive connection"
mockctl ct-transactions
expect_eq "$(mockctl ct-transactions | grep -c '3.00')" 1 "the vendor holds the third sale once"
python3 "$(dirname "$0")/../lib/compare.py" keepalive --no-mapal
