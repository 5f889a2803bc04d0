#!/usr/bin/env bash
# A lane claims no second job while the rate limiter is still learning its
# account's budget.  Until the first answer says what the account allows,
# one request goes at a time (rl_acquire() in src/ratelimit.c), and every
# request of a second job claimed meanwhile was held for the budget: a
# drain on a new account (a new API key, or the first after a start) held
# its second 2,000 sales and sent them a second later.  Here: a new account
# whose first answer the mock delays by 1.5 s, and a backlog of 6,000
# sales (three jobs of sales_api.batch_size 2,000); no sale may be held.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
trap 'mockctl faults-clear >/dev/null 2>&1 || true' EXIT
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
# an account this cluster has never seen: the budget is learned again
key="ct-key-learn-$$-$RANDOM"
mockctl config connecteam_api_keys="[\"ct-key-123\", \"$key\"]" \
    connecteam_minute_limit=1000000000 connecteam_day_limit=1000000000 >/dev/null
q -c "ALTER USER MAPPING FOR CURRENT_USER SERVER connecteam OPTIONS (SET api_key '$key')" >/dev/null
q -c "SELECT sales_api.pause('connecteam')" >/dev/null
fs_insert 0 6000 6000
mockctl fault delay --path '^/connecteam/sales/v1/transactions$' --method POST --count 1 --delay-ms 1500 >/dev/null
waits0=$(q -c "SELECT rate_waits FROM sales_api.worker_stats()")
mockctl mark >/dev/null
q -c "SELECT sales_api.resume('connecteam')" >/dev/null
wait_for "$(drained)" 120 "the 6,000-sale backlog"
expect_eq "$(mockctl count --since-mark --path '^/connecteam/sales/v1/transactions$' --method POST)" 60 \
    "60 posts of 100"
expect_eq "$(q -c "SELECT rate_waits - $waits0 FROM sales_api.worker_stats()")" 0 \
    "no sale held for a budget that was being learned"
python3 "$(dirname "$0")/../lib/compare.py" budget-learning --no-mapal || fail "the vendor does not hold exactly the sales"
pass "the vendor holds exactly the sales"
