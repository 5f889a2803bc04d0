#!/usr/bin/env bash
# Two races of a window replacement, each made to happen on purpose (the
# fault suite met them by chance, one run in ten, under valgrind):
#
#  A. A sale's post is ambiguous and waits for its own window when another
#     ambiguous post's window carries it, and the sale is updated while that
#     window is in flight.  The window posted the old version; the update's
#     delete waits for the ambiguous post.  (Before 0.8.0 the window settled
#     the post as "covered by a replaced time window" but left it ambiguous,
#     and the delete then removed nothing.)  The window now finds the change
#     at its record and is replaced again.
#  B. A window is deleted at the vendor but its repost's answer is lost (the
#     vendor stored it).  The vendor now holds the window's sales under ids
#     nobody knows; the window's ambiguous posts, claimed apart, each make a
#     window of their own second only.  The whole window must be replaced
#     again, and a sale of it updated meanwhile must not leave its old copy.
#
#  C. An ambiguous post's sale is updated in its tax only, and the new
#     version is posted; the window then reposts the new version.  The old
#     version's post must not take that copy's transactionId (versions are
#     told apart by everything a post sends), or the old version's delete
#     removes the sale.
#  D. A sale already sent is updated while a window that read it is in
#     flight: the window reposts the old version.  At its record the window
#     reads its sales again, finds the change, and is replaced again.
#  E. The worker is killed while a window's repost is at the vendor: the
#     window's guard item replaces the whole window again.
#
# The order of claims is set by moving next_attempt_at (the worker claims
# what is due), never by sleeping.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
fs_set ambiguous_settle_time 1h lease_time 6s
trap 'q -c "ALTER SYSTEM RESET sales_api.ambiguous_settle_time" -c "ALTER SYSTEM RESET sales_api.lease_time" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true' EXIT

POSTS='/connecteam/sales/v1/transactions$'
# the latest post of a sale, by its net amount.  A sale staged and leased
# has no outbox item until the worker records its post: wait for one.
post_of() {
    wait_for "SELECT EXISTS (SELECT 1 FROM sales_api.outbox o WHERE o.kind = 'ct_post' AND o.final_sale_amount = $1)" 60 \
        "an outbox item for the post of the sale of $1" || return 1
    q -c "SELECT o.id FROM sales_api.outbox o WHERE o.kind = 'ct_post' AND o.final_sale_amount = $1 ORDER BY o.id DESC LIMIT 1"
}
ambiguous() { echo "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE id = $1 AND state = 'failed' AND ambiguous)"; }
due_now()   { q -c "UPDATE sales_api.outbox SET next_attempt_at = now() WHERE id IN ($1)" -c "SELECT sales_api.wake_worker()" >/dev/null; }
everything_due() {
    q -c "UPDATE sales_api.outbox SET next_attempt_at = now() WHERE state IN ('pending', 'failed')" -c "SELECT sales_api.wake_worker()" >/dev/null
}
outbox()    { qs -c "SELECT id, kind, state, ambiguous, attempts, http_status, final_sale_amount AS amount, left(last_error, 60) AS last_error FROM sales_api.outbox ORDER BY id"; }
# how many copies of an amount (final_sale_amount is net) the vendor holds at a location
held() { mockctl ct-transactions --location "$1" | grep -c "$2" || true; }

# three_sales STORE HOUR A S B: sales at HOUR:00:00 (amount A) and HOUR:01:00 (B)
# whose posts are ambiguous (stored, answer lost), and one at HOUR:00:30 (S)
# sent in between; sets x1, s, x2 to their posts
three_sales() {
    local store=$1 h=$2
    mockctl fault drop_after --path "$POSTS" --method POST --count 1
    q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES ($store, '2026-11-20 $h:00:00+00', 'SALE', $3, 1.00)"
    x1=$(post_of "$3")
    wait_for "$(ambiguous "$x1")" 60 "the first post to be ambiguous"
    q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES ($store, '2026-11-20 $h:00:30+00', 'SALE', $4, 1.00)"
    s=$(post_of "$4")
    wait_for "SELECT state = 'sent' FROM sales_api.outbox WHERE id = $s" 60 "the sale in the middle to be sent"
    mockctl fault drop_after --path "$POSTS" --method POST --count 1
    q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES ($store, '2026-11-20 $h:01:00+00', 'SALE', $5, 1.00)"
    x2=$(post_of "$5")
    wait_for "$(ambiguous "$x2")" 60 "the last post to be ambiguous"
}

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
wait_for "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'ct_window' AND last_error LIKE 'replaces again%changed%')" 60 \
    "the window to find the change at its record"
everything_due
wait_for "$(drained)" 60 "the update"
outbox
mockctl ct-transactions --location 1
expect_eq "$(held 1 ' 25.00 ')" 1 "A: the vendor holds the new version once"
expect_eq "$(held 1 ' 20.00 ')" 0 "A: the vendor no longer holds the old version the window posted"
expect_eq "$(held 1 ' 10.00 ')" 1 "A: the first sale once"

# --- B: a window deleted whose repost's answer is lost
echo "== B"
three_sales 2 11 30.00 40.00 50.00
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
everything_due
wait_for "$(drained)" 60 "the rest"
outbox
mockctl ct-transactions --location 2
expect_eq "$(held 2 ' 45.00 ')" 1 "B: the vendor holds the new version once"
expect_eq "$(held 2 ' 40.00 ')" 0 "B: the vendor no longer holds the old version the lost repost stored"
expect_eq "$(held 2 ' 30.00 ')" 1 "B: the first sale once"
expect_eq "$(held 2 ' 50.00 ')" 1 "B: the last sale once"
# --- C: an ambiguous post's sale changed in its tax only
echo "== C"
mockctl fault drop_after --path "$POSTS" --method POST --count 1
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (3, '2026-11-20 12:00:00+00', 'SALE', 60.00, 6.00)"
p1=$(post_of 60.00)
wait_for "$(ambiguous "$p1")" 60 "the post to be ambiguous"
q -c "UPDATE pos_sales SET tax = 7.00 WHERE net = 60.00"
wait_for "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'ct_post' AND tax_amount = 7.00 AND state = 'sent')" 60 \
    "the new version to be posted"
due_now "$p1"
wait_for "SELECT state = 'sent' FROM sales_api.outbox WHERE id = $p1" 60 "the ambiguous post's window"
wait_for "$(drained)" 60 "the old version's delete"
outbox
mockctl ct-transactions --location 3
expect_eq "$(held 3 ' 60.00 7.00 ')" 1 "C: the vendor holds the new version once"
expect_eq "$(held 3 ' 60.00 6.00 ')" 0 "C: the vendor does not hold the old version"

# --- D: a sent sale changes while a window that read it is in flight
echo "== D"
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (3, '2026-11-20 13:00:30+00', 'SALE', 70.00, 7.00)"
s=$(post_of 70.00)
wait_for "SELECT state = 'sent' FROM sales_api.outbox WHERE id = $s" 60 "the sale to be sent"
mockctl fault drop_after --path "$POSTS" --method POST --count 1
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (3, '2026-11-20 13:00:00+00', 'SALE', 80.00, 8.00),
                                                                    (3, '2026-11-20 13:01:00+00', 'SALE', 81.00, 8.00)"
x=$(post_of 80.00)
wait_for "$(ambiguous "$x")" 60 "the posts to be ambiguous"
# the window [13:00:00, 13:01:00] reads the sale, deletes, and its repost is held
mockctl fault hold --path "$POSTS" --method POST --count 1
due_now "$(q -c "SELECT string_agg(id::text, ',') FROM sales_api.outbox WHERE state = 'failed' AND ambiguous")"
wait_until '[ "$(mockctl held)" = 1 ]' 60 "the window's repost to reach the vendor"
q -c "UPDATE pos_sales SET net = 75.00 WHERE net = 70.00"
mockctl release
wait_for "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'ct_window' AND last_error LIKE 'replaces again%changed%')" 60 \
    "the window to find the change at its record"
everything_due
wait_for "$(drained)" 60 "the rest"
outbox
mockctl ct-transactions --location 3
expect_eq "$(held 3 ' 75.00 ')" 1 "D: the vendor holds the new version once"
expect_eq "$(held 3 ' 70.00 ')" 0 "D: the vendor does not hold the version the window read"
expect_eq "$(held 3 ' 80.00 ')" 1 "D: the window's first sale once"
expect_eq "$(held 3 ' 81.00 ')" 1 "D: the window's last sale once"

# --- E: the worker dies while a window's repost is at the vendor
echo "== E"
three_sales 2 14 90.00 91.00 92.00
mockctl fault hold --path "$POSTS" --method POST --count 1
due_now "$x1, $x2"
wait_until '[ "$(mockctl held)" = 1 ]' 60 "the window's repost to reach the vendor"
pid=$(worker_pid)
kill -9 "$pid"
mockctl release
mock_idle
fs_wait_new_worker "$pid" 60
# the leases expire: the posts are ambiguous again; each alone replaces its own second
wait_for "SELECT bool_and(state = 'failed' AND ambiguous) FROM sales_api.outbox WHERE id IN ($x1, $x2)" 60 "the leases to expire"
due_now "$x1"
wait_for "SELECT state = 'sent' FROM sales_api.outbox WHERE id = $x1" 60 "the first post's window"
q -c "UPDATE pos_sales SET net = 95.00 WHERE net = 91.00"
due_now "$x2"
wait_for "SELECT state = 'sent' FROM sales_api.outbox WHERE id = $x2" 60 "the last post's window"
everything_due
wait_for "$(drained)" 60 "the rest"
outbox
mockctl ct-transactions --location 2
expect_eq "$(held 2 ' 95.00 ')" 1 "E: the vendor holds the new version once"
expect_eq "$(held 2 ' 91.00 ')" 0 "E: the vendor does not hold the old version the lost repost stored"
expect_eq "$(held 2 ' 90.00 ')" 1 "E: the first sale once"
expect_eq "$(held 2 ' 92.00 ')" 1 "E: the last sale once"
python3 "$(dirname "$0")/../lib/compare.py" window-races --no-mapal
