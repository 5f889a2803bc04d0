#!/usr/bin/env bash
# Two races of a window replacement, each made to happen on purpose (the
# fault suite met them by chance, one run in ten, under valgrind):
#
#  A. A sale's post is ambiguous and waits for its own window when another
#     ambiguous post's window carries it ("covered by a replaced time
#     window"), and the sale is updated while that window is in flight.  The
#     delete of the old version must remove the copy the window posted: the
#     post it waits for holds that copy's transactionId, and is no longer
#     ambiguous once covered.
#  B. A window is deleted at the vendor but its repost's answer is lost (the
#     vendor stored it).  The vendor now holds the window's sales under ids
#     nobody knows; the window's ambiguous posts, claimed apart, each make a
#     window of their own second only.  The whole window must be replaced
#     again, and a sale of it updated meanwhile must not leave its old copy.
#
# The order of claims is set by moving next_attempt_at (the worker claims
# what is due), never by sleeping.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
fs_set ambiguous_settle_time 1h
trap 'q -c "ALTER SYSTEM RESET sales_api.ambiguous_settle_time" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true' EXIT

POSTS='/connecteam/sales/v1/transactions$'
post_of() {   # the latest post of a sale, by its net amount
    q -c "SELECT o.id FROM sales_api.outbox o WHERE o.kind = 'ct_post' AND o.final_sale_amount = $1 ORDER BY o.id DESC LIMIT 1"
}
ambiguous() { echo "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE id = $1 AND state = 'failed' AND ambiguous)"; }
due_now()   { q -c "UPDATE sales_api.outbox SET next_attempt_at = now() WHERE id IN ($1)" -c "SELECT sales_api.wake_worker()" >/dev/null; }
outbox()    { qs -c "SELECT id, kind, state, ambiguous, attempts, http_status, final_sale_amount AS amount, left(last_error, 60) AS last_error FROM sales_api.outbox ORDER BY id"; }
# how many copies of an amount (final_sale_amount is net) the vendor holds at a location
held() { mockctl ct-transactions --location "$1" | grep -c "$2" || true; }

# --- A: an ambiguous post covered by another one's window, updated meanwhile
echo "== A"
mockctl fault drop_after --path "$POSTS" --method POST --count 1
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (1, '2026-11-20 10:00:00+00', 'SALE', 10.00, 1.00)"
x=$(post_of 10.00)
wait_for "$(ambiguous "$x")" 60 "the first sale's post to be ambiguous"
mockctl fault drop_after --path "$POSTS" --method POST --count 1
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (1, '2026-11-20 10:00:00+00', 'SALE', 20.00, 2.00)"
a=$(post_of 20.00)
wait_for "$(ambiguous "$a")" 60 "the second sale's post to be ambiguous"
# the first post's window goes first, and the vendor holds its delete
mockctl fault hold --path "$POSTS" --method DELETE --count 1
due_now "$x"
wait_until '[ "$(mockctl held)" = 1 ]' 60 "the first window's delete to reach the vendor"
# the second sale changes while its old version is carried by that window
q -c "UPDATE pos_sales SET net = 25.00 WHERE net = 20.00"
mockctl release
wait_for "SELECT state = 'sent' FROM sales_api.outbox WHERE id = $a" 60 "the window to cover the second sale's post"
wait_for "$(drained)" 60 "the update"
outbox
mockctl ct-transactions --location 1
expect_eq "$(held 1 ' 25.00 ')" 1 "A: the vendor holds the new version once"
expect_eq "$(held 1 ' 20.00 ')" 0 "A: the vendor no longer holds the old version the window posted"
expect_eq "$(held 1 ' 10.00 ')" 1 "A: the first sale once"

# --- B: a window deleted whose repost's answer is lost
echo "== B"
mockctl fault drop_after --path "$POSTS" --method POST --count 1
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (2, '2026-11-20 11:00:00+00', 'SALE', 30.00, 3.00)"
x1=$(post_of 30.00)
wait_for "$(ambiguous "$x1")" 60 "the first post to be ambiguous"
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (2, '2026-11-20 11:00:30+00', 'SALE', 40.00, 4.00)"
s=$(post_of 40.00)
wait_for "SELECT state = 'sent' FROM sales_api.outbox WHERE id = $s" 60 "the sale in the middle to be sent"
mockctl fault drop_after --path "$POSTS" --method POST --count 1
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (2, '2026-11-20 11:01:00+00', 'SALE', 50.00, 5.00)"
x2=$(post_of 50.00)
wait_for "$(ambiguous "$x2")" 60 "the last post to be ambiguous"
# one window [11:00:00, 11:01:00]: deleted, its repost stored, the answer lost
mockctl fault drop_after --path "$POSTS" --method POST --count 1
due_now "$x1, $x2"
wait_for "SELECT bool_and(state = 'failed' AND ambiguous AND attempts = 2) FROM sales_api.outbox WHERE id IN ($x1, $x2)" 60 \
    "the window's repost to be lost"
mockctl ct-transactions --location 2
# the first post alone: its window is its own second
due_now "$x1"
wait_for "SELECT state = 'sent' FROM sales_api.outbox WHERE id = $x1" 60 "the first post's window"
# the sale in the middle changes; then the last post's window
q -c "UPDATE pos_sales SET net = 45.00 WHERE net = 40.00"
due_now "$x2"
wait_for "SELECT state = 'sent' FROM sales_api.outbox WHERE id = $x2" 60 "the last post's window"
# whatever is left (a window to replace again waits for the settle time)
q -c "UPDATE sales_api.outbox SET next_attempt_at = now() WHERE state IN ('pending', 'failed')" -c "SELECT sales_api.wake_worker()" >/dev/null
wait_for "$(drained)" 60 "the rest"
outbox
mockctl ct-transactions --location 2
expect_eq "$(held 2 ' 45.00 ')" 1 "B: the vendor holds the new version once"
expect_eq "$(held 2 ' 40.00 ')" 0 "B: the vendor no longer holds the old version the lost repost stored"
expect_eq "$(held 2 ' 30.00 ')" 1 "B: the first sale once"
expect_eq "$(held 2 ' 50.00 ')" 1 "B: the last sale once"
python3 "$(dirname "$0")/../lib/compare.py" window-races --no-mapal
