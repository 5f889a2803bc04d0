#!/usr/bin/env bash
# ALTER EXTENSION sales_api UPDATE on a database whose POS table is attached
# to both vendors with 0.4's PL/pgSQL capture functions, with work queued:
# the update swaps the triggers for the C capture trigger (0.5), drops the
# old functions, keeps the queued work, and every sale before and after the
# update reaches both vendors exactly once.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
# the same database, servers and table, with the extension at 0.4
q -c "DROP EXTENSION sales_api CASCADE" >/dev/null 2>&1
q -c "DROP SCHEMA IF EXISTS sales_api CASCADE" >/dev/null 2>&1
q -c "DROP TABLE pos_sales" >/dev/null
mockctl reset >/dev/null
mockctl config mapal_units="$(python3 -c 'import json; print(json.dumps({str(u): {"currencies": ["EUR"], "salesTypes": ["EAT_IN", "TAKE", "DELIVERY"]} for u in range(1001, 1011)}))')" >/dev/null
# scenario_setup's SQL, with the extension at 0.4
declare -f scenario_setup | sed -n '/^CREATE EXTENSION sales_api;/,/^SQL$/p' | sed '$d' \
    | sed "s/^CREATE EXTENSION sales_api;/CREATE EXTENSION sales_api VERSION '0.4';/" | q -v mock_url="$MOCK_URL" >/dev/null
make_locations 3
attach_connecteam
attach_mapal
expect_eq "$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'sales_api'")" "0.4" "the extension starts at 0.4"
expect_eq "$(q -c "SELECT count(*) FROM pg_proc WHERE proname ~ '^capture_[0-9]+_(ins|del|upd)$'")" 6 "0.4's capture functions"
# work queued while the servers are paused, then the update
q -c "SELECT sales_api.pause('mapal'), sales_api.pause('connecteam')" >/dev/null
fs_insert 0 300
q -c "ALTER EXTENSION sales_api UPDATE" >/dev/null
expect_eq "$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'sales_api'")" \
    "$(q -c "SELECT default_version FROM pg_available_extensions WHERE name = 'sales_api'")" "updated to the default version"
expect_eq "$(q -c "SELECT count(*) FROM pg_proc WHERE proname ~ '^capture_[0-9]+_(ins|del|upd)$'")" 0 "the old capture functions are gone"
expect_eq "$(q -c "SELECT string_agg(DISTINCT tgfoid::regproc::text, ',') FROM pg_trigger WHERE tgrelid = 'pos_sales'::regclass")" \
    "sales_api.capture_trigger" "every capture trigger is the C one"
expect_eq "$(q -c "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'pos_sales'::regclass")" 6 "three triggers per capture"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE kind = 'ct_post' AND state = 'pending'")" 300 "the queued posts are kept"
# sales after the update, updates and deletes of sales from before it
fs_mutate
fs_insert 300 300
q -c "SELECT sales_api.resume('mapal'), sales_api.resume('connecteam')" >/dev/null
wait_for "$(drained)" 90 "the outbox to drain"
python3 "$FAULTS_DIR/tally.py" upgrade_0.4_to_current 0
