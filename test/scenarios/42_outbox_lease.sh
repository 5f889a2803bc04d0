#!/usr/bin/env bash
# Connecteam sales go into flight as leased staged rows (0.8): the claim sets
# the rows' lease_until, and the record deletes them and inserts each sale's
# item in its final state.  What a lease meets besides a plain record:
#   1. a POS transaction holds a leased row (it updated a sale of it and
#      stays open) when the post's answer comes: the worker does not wait for
#      it (other lanes go on), and records the job once the transaction ends;
#   2. the worker is killed while a leased sale's post is at the vendor: the
#      lease runs out, the row's sale becomes an item in flight, which
#      expires as any item in flight does (its post may have been stored),
#      and the vendor ends with the sale once;
#   3. the stage is rewritten (VACUUM FULL) while a leased sale's post is at
#      the vendor: the record no longer finds the row where the claim leased
#      it, says so, and leaves the sale to its lease's expiry, as in 2.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
trap 'mockctl release >/dev/null 2>&1 || true; q -c "ALTER SYSTEM RESET sales_api.lease_time" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true' EXIT
POSTS='/connecteam/sales/v1/transactions$'

# a sale of store $1 at $2 with amount $3, its post held at the vendor; sets $sale
sale_held() {
    mockctl fault hold --path "$POSTS" --method POST --count 1 >/dev/null
    q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES ($1, '$2', 'SALE', $3, $3 / 10)"
    sale=$(q -c "SELECT max(id) FROM pos_sales")
    wait_until '[ "$(mockctl held)" = 1 ]' 60 "the post to reach the vendor"
}
# $sale's lease runs out: its sale becomes an item in flight, expired as such
# and settled as a post that may have been stored; $1 names the case
settled_after_expiry() {
    wait_for "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox_stage)
                AND EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'ct_post' AND sale_key = '$sale')" 60 \
        "the $1 lease's sale to become an item when the lease runs out"
    wait_for "$(drained)" 90 "the $1 lease's post to be settled"
    expect_eq "$(q -c "SELECT string_agg(state, ',') FROM sales_api.outbox WHERE kind = 'ct_post' AND sale_key = '$sale'")" \
        "sent" "the $1 lease's post settled sent (by the replaced window)"
}

# --- 1. a POS transaction holds the leased row when the answer comes
sale_held 1 '2026-11-20 10:00:00+00' 10.00
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox_stage WHERE lease_until IS NOT NULL")" 1 "the sale's staged row leased"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE kind = 'ct_post'")" 0 "no post item while it is in flight"
expect_eq "$(in_flight_count)" 1 "outbox_status counts it in flight"
expect_eq "$(q -c "SELECT in_flight || ' ' || staged FROM sales_api.lane_status WHERE server_name = 'connecteam'")" "1 0" \
    "lane_status too, not as staged"
# the UPDATE makes the leased sale an item in flight and stays open, its row locked
session_open holder
session_run holder "BEGIN;" "UPDATE pos_sales SET net = 11.00 WHERE id = $sale;"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE kind = 'ct_post'")" 0 "the open transaction's items are not seen"
mapal0=$(mockctl count --path /real-time-sales --method POST)
mockctl release >/dev/null
# the worker records nothing of that job yet, and is not blocked: it sends
# a later sale's Mapal totals while the transaction stays open
wait_until '[ "$(mockctl inflight)" = 0 ]' 60 "the held post to be answered"
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (2, '2026-11-20 11:00:00+00', 'SALE', 5.00, 0.50)"
wait_until '[ "$(mockctl count --path /real-time-sales --method POST)" -gt "$mapal0" ]' 60 \
    "the later sale's Mapal totals to be sent while the transaction is open"
expect_eq "$(q -c "SELECT wait_event_type IS DISTINCT FROM 'Lock' FROM pg_stat_activity WHERE backend_type = 'sales_api worker'")" t \
    "the worker waits on no lock"
expect_eq "$(q -c "SELECT state FROM pg_stat_activity WHERE application_name = 'sa_holder'")" "idle in transaction" \
    "the transaction holding the leased row is still open"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox_stage WHERE lease_until IS NOT NULL")" 1 "the job not recorded: its row still leased"
session_run holder "COMMIT;"
session_close holder
wait_for "$(drained)" 60 "the job's record and the update"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox_lease_items")" 0 "the record read the items the UPDATE made"
expect_eq "$(q -c "SELECT string_agg(kind || ':' || state || ':' || attempts || ':' || (vendor_ref IS NOT NULL), ',' ORDER BY id)
                     FROM sales_api.outbox WHERE kind LIKE 'ct%' AND sale_key = '$sale'")" \
    "ct_post:sent:1:true,ct_delete:sent:1:true,ct_post:sent:1:true" "the first post recorded sent once, then its delete and the new version"
python3 "$(dirname "$0")/../lib/compare.py" lease-held-by-pos

# --- 2. the worker killed while a leased sale's post is at the vendor
fs_set lease_time 6s
sale_held 3 '2026-11-20 12:00:00+00' 7.00
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox_stage WHERE lease_until IS NOT NULL")" 1 "the sale's staged row leased"
pid=$(worker_pid)
kill -9 "$pid"
fs_wait_new_worker "$pid" 60
# the vendor stores the post the killed worker never saw answered
mockctl release >/dev/null
settled_after_expiry expired
python3 "$(dirname "$0")/../lib/compare.py" lease-expired

# --- 3. the stage rewritten while a leased sale's post is at the vendor
sale_held 1 '2026-11-20 13:00:00+00' 8.00
tid0=$(q -c "SELECT ctid FROM sales_api.outbox_stage WHERE lease_until IS NOT NULL")
q -c "VACUUM FULL sales_api.outbox_stage"
tid1=$(q -c "SELECT ctid FROM sales_api.outbox_stage WHERE lease_until IS NOT NULL")
[ "$tid1" != "$tid0" ] || fail "the leased row did not move: $tid0"
pass "the leased row moved from $tid0 to $tid1"
log0=$(wc -c < "$SA_PGLOG")
mockctl release >/dev/null
wait_until 'tail -c +$((log0 + 1)) "$SA_PGLOG" | grep -q "sales in flight under a lease could not be recorded"' 60 \
    "the worker to say it could not record the moved lease"
settled_after_expiry moved
python3 "$(dirname "$0")/../lib/compare.py" lease-rewritten
echo "lease scenario passed"
