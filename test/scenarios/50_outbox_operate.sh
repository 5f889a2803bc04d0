#!/usr/bin/env bash
# Operating the outbox: a permanent 400 goes dead with the vendor's message
# and retry_dead() sends it once the cause is fixed; pause and resume per
# server; the park policy for ambiguous posts; purge; the status view and
# the worker's figures; SIGTERM stops the worker promptly and it comes back.
. "$(dirname "$0")/../lib/scenario.sh"
scenario_setup
make_locations 2
attach_connecteam
attach_mapal

# --- dead letters: Mapal does not know unit 1099 (store 99) -------------------
mockctl config mapal_units="$(python3 -c 'import json; print(json.dumps({str(u): {"currencies": ["EUR"], "salesTypes": ["EAT_IN", "TAKE", "DELIVERY"]} for u in (1001, 1002)}))')" >/dev/null
mockctl ct-add-location "store 3" >/dev/null    # Connecteam location 3 exists; Mapal unit 1003 does not
q -c "INSERT INTO pos_sales (store, sold_at, channel, net, tax) VALUES
      (1, '2026-11-22 10:05+00', 'TAKE', 10.00, 1.00), (3, '2026-11-22 10:06+00', 'TAKE', 7.50, 0.50)"
wait_for "$(drained)" 90 "the two sales"
qs -c "SELECT kind, unit_id, state, http_status, last_error FROM sales_api.outbox WHERE state = 'dead'"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE state = 'dead' AND kind = 'mapal_slot' AND unit_id = 1003 AND http_status = 400 AND last_error LIKE '%Business unit 1003 not found%'")" 1 "unknown unit dead-lettered with the vendor's message"
# the cause is fixed at the vendor, the operator retries
mockctl config mapal_units="$(python3 -c 'import json; print(json.dumps({str(u): {"currencies": ["EUR"], "salesTypes": ["EAT_IN", "TAKE", "DELIVERY"]} for u in (1001, 1002, 1003)}))')" >/dev/null
expect_eq "$(q -c "SELECT sales_api.retry_dead('mapal')")" 1 "retry_dead requeues the dead item"
wait_for "$(drained)" 90 "the retried item"
expect_eq "$(mockctl mapal-sales --unit 1003 | wc -l)" 1 "the retried slot reached Mapal"

# --- a sale whose mapping gives a bad sale type: dead at once, the POS insert still commits
q -c "INSERT INTO pos_sales (store, sold_at, kind, net) VALUES (1, '2026-11-22 11:00+00', 'GIFT', 3.00)"
wait_for "$(drained)" 90 "the bad sale type"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE state = 'dead' AND last_error LIKE 'unknown sale_type \"GIFT\"%'")" 1 "a bad sale type is dead-lettered, not lost"
q -c "DELETE FROM pos_sales WHERE kind = 'GIFT'"

# --- pause and resume ----------------------------------------------------------
q -c "SELECT sales_api.pause('connecteam')" >/dev/null
mockctl mark >/dev/null
q -c "INSERT INTO pos_sales (store, sold_at, net) VALUES (2, '2026-11-22 12:00+00', 4.40)"
# the worker makes the staged sale an item even for a paused server, then
# has had its chance to send it
wait_for "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox_stage)" 60 "the staged sale to become an outbox item"
worker_cycles 2
expect_eq "$(mockctl count --since-mark --path /connecteam/sales/v1/transactions)" 0 "nothing sent to a paused server"
expect_eq "$(q -c "SELECT paused FROM sales_api.outbox_status WHERE server_name = 'connecteam' AND state = 'pending'")" t "the status view shows the pause"
q -c "SELECT sales_api.resume('connecteam')" >/dev/null
wait_for "$(drained)" 90 "the paused sale after resume"
expect_eq "$(mockctl count --since-mark --path /connecteam/sales/v1/transactions --method POST)" 1 "sent after resume"

# --- park policy: an ambiguous post becomes 'unknown' for an operator ----------
q -c "ALTER SYSTEM SET sales_api.ambiguous_policy = 'park'" >/dev/null
trap 'q -c "ALTER SYSTEM RESET sales_api.ambiguous_policy" -c "ALTER SYSTEM RESET sales_api.lease_time" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true' EXIT
reload_conf
worker_cycles 2   # the worker runs with the park policy
mockctl fault drop_after --path /connecteam/sales/v1/transactions --method POST --count 1
q -c "INSERT INTO pos_sales (store, sold_at, net) VALUES (2, '2026-11-22 13:00+00', 8.80)"
wait_for "SELECT count(*) = 1 FROM sales_api.outbox WHERE state = 'unknown'" 90 "the ambiguous post to be parked"
qs -c "SELECT kind, state, last_error FROM sales_api.outbox WHERE state = 'unknown'"
expect_eq "$(mockctl ct-transactions --location 2 | grep -c 8.80)" 1 "the vendor did store the parked sale once"
q -c "ALTER SYSTEM RESET sales_api.ambiguous_policy" >/dev/null
reload_conf
worker_cycles 2

# --- observability -------------------------------------------------------------
qs -c "SELECT server_name, state, items, last_error IS NOT NULL AS has_error FROM sales_api.outbox_status ORDER BY 1, 2"
qs -c "SELECT running, pid IS NOT NULL AS has_pid, requests > 0 AS requests, items_sent > 0 AS sent, ambiguous > 0 AS ambiguous, latency_p50_ms <= latency_p99_ms AS percentiles FROM sales_api.worker_stats()"
expect_eq "$(q -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sales_api worker' AND application_name = 'sales_api worker'")" 1 "the worker is named in pg_stat_activity"

# --- purge ----------------------------------------------------------------------
before=$(q -c "SELECT count(*) FROM sales_api.outbox WHERE state = 'sent'")
expect_eq "$(q -c "SELECT sales_api.purge_sent(interval '0')")" "$before" "purge_sent removes every sent item"

# --- SIGTERM: the worker stops promptly, even mid-transfer, and comes back -----
# the vendor holds the post until the worker has stopped; a lease of 6 s, not
# 15 s, so that the restarted worker takes the interrupted post back sooner
q -c "ALTER SYSTEM SET sales_api.lease_time = '6s'" >/dev/null
reload_conf
worker_cycles 2
mockctl fault hold --path /connecteam/sales/v1/transactions --count 1
q -c "INSERT INTO pos_sales (store, sold_at, net) VALUES (1, '2026-11-22 14:00+00', 1.10)"
wait_until '[ "$(mockctl held)" = 1 ]' 60 "the post to reach the vendor"
pid=$(q -d postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'sales_api worker'")
q -d postgres -c "SELECT pg_terminate_backend($pid)" >/dev/null
wait_for "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)" 5 "the worker to stop on SIGTERM (within 5 s, while the vendor still holds the post)"
pass "the worker stopped on SIGTERM mid-transfer"
expect_eq "$(mockctl held)" 1 "the vendor was still holding the post"
# the slow vendor finishes the post the worker gave up on
mockctl release
mock_idle
wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sales_api worker'" 60 "the worker to be restarted"
# the interrupted post is settled (lease, then window replacement): nothing
# is left in flight for the next test
wait_for "$(drained)" 120 "the interrupted post to be settled"
python3 "$(dirname "$0")/../lib/compare.py" after-sigterm --no-mapal
expect_eq "$(mockctl ct-transactions --location 1 | grep -c ' 1.10 ')" 1 "the interrupted sale is at the vendor once"
echo "operate scenario passed"
