#!/usr/bin/env bash
# A draining Connecteam lane keeps a second job of plain posts in flight, and
# that job takes the first's place when it ends (a chain), so the lane never
# empties its requests for a claim.  Deletes, windows and retries are only
# taken by a claim of the idle lane: every few jobs (LANE_CHAIN_MAX) the lane
# looks for such an item due and goes idle once if it has one.  (Until 0.8.0
# it went idle every 8 jobs whether or not it had one: 40-60 ms without a
# request about once a second of a drain.)  Here a sale already sent is
# deleted while an 80,000-sale backlog drains (40 jobs): its delete must reach the
# vendor before the backlog's last post, not wait for the backlog to end.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
trap 'mockctl config answer_ms=0 >/dev/null 2>&1 || true' EXIT
# two jobs sent: the chain runs
fs_ct_draining 10 80000
q -c "DELETE FROM pos_sales WHERE sold_at = '2026-11-19 09:00+00'"
wait_for "$(drained)" 180 "the backlog and the delete"
order=$(mockctl log --since-mark --fields seq,method,path | awk -F'\t' '
    $2 == "POST" && $3 == "/connecteam/sales/v1/transactions" { last = $1 }
    $2 == "DELETE" && $3 ~ "^/connecteam/sales/v1/transactions" { del = $1 }
    END { print (del != "" && del < last) ? "before" : "after (" del " vs " last ")" }')
expect_eq "$order" before "the delete went out while the backlog drained"
python3 "$(dirname "$0")/../lib/compare.py" lane-chain-due --no-mapal || fail "the vendor does not hold exactly the sales"
pass "the vendor holds exactly the sales"
