#!/usr/bin/env bash
# Under ambiguous_policy = park, a post whose answer was lost (the vendor did
# store it) is parked as 'unknown' for an operator.  retry_dead(server, true)
# must send it through the ambiguous policy again (replace the location's
# window), never as a plain post: the vendor ends with the sale exactly once.
# Up to the engine rework a post parked in a cycle lost its ambiguous flag,
# and the retry stored the sale a second time.
. "$(dirname "$0")/../lib/scenario.sh"
scenario_setup
make_locations 2
attach_connecteam
trap 'q -c "ALTER SYSTEM RESET sales_api.ambiguous_policy" -c "ALTER SYSTEM RESET sales_api.ambiguous_settle_time" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true' EXIT
q -c "ALTER SYSTEM SET sales_api.ambiguous_policy = 'park'" -c "ALTER SYSTEM SET sales_api.ambiguous_settle_time = '1s'" \
  -c "SELECT pg_reload_conf()" >/dev/null
wait_for "SELECT current_setting('sales_api.ambiguous_policy') = 'park'" 10 "the new policy"
mockctl fault drop_after --path /connecteam/sales/v1/transactions --method POST --count 1
q -c "INSERT INTO pos_sales (store, sold_at, net) VALUES (2, '2026-11-22 13:00+00', 8.80)"
wait_for "SELECT count(*) = 1 FROM sales_api.outbox WHERE state = 'unknown'" 60 "the ambiguous post to be parked"
expect_eq "$(mockctl ct-transactions --location 2 | grep -c 8.80)" 1 "the vendor did store the parked sale"
expect_eq "$(q -c "SELECT ambiguous FROM sales_api.outbox WHERE state = 'unknown'")" t "the parked post is still ambiguous"
q -c "ALTER SYSTEM RESET sales_api.ambiguous_policy" -c "SELECT pg_reload_conf()" >/dev/null
wait_for "SELECT current_setting('sales_api.ambiguous_policy') = 'replace_window'" 10 "the default policy again"
expect_eq "$(q -c "SELECT sales_api.retry_dead('connecteam', true)")" 1 "retry_dead requeues the parked post"
wait_for "$(drained)" 60 "the requeued post to be settled"
expect_eq "$(mockctl ct-transactions --location 2 | grep -c 8.80)" 1 "the vendor holds the sale once after the retry"
python3 "$(dirname "$0")/../lib/compare.py" parked-retry --no-mapal
echo "parked retry scenario passed"
