#!/usr/bin/env bash
# Connecteam allows 5 requests per (shortened) 3-second window: the worker
# paces itself by the x-ratelimit-* headers, so a backlog of 2,000 sales goes
# out as 20 full requests with no 429 at all.
. "$(dirname "$0")/../lib/scenario.sh"
scenario_setup
make_locations 2
mockctl config connecteam_minute_limit=5 connecteam_window_seconds=3 >/dev/null
attach_connecteam
q -c "INSERT INTO pos_sales (store, sold_at, net, tax)
      SELECT 1 + i % 2, timestamptz '2026-11-22 09:00+00' + i * interval '13 seconds',
             round((2 + (i % 787) / 10.0)::numeric, 2), 0.20
        FROM generate_series(0, 1999) i"
# Requests the spent window holds are due when the budget allows again, the
# time their error names, to the millisecond (until 0.8.0 they waited whole
# seconds, at least one: the truncated wait or a second past it).
held="SELECT count(*) || ' ' || count(*) FILTER (WHERE abs(extract(epoch FROM next_attempt_at -
        substring(last_error FROM 'spent until (.*); these go then')::timestamptz)) >= 0.001)
        FROM sales_api.outbox WHERE state IN ('pending', 'failed') AND last_error LIKE '%these go then.'"
wait_until '[ "$(q -c "$held" | cut -d" " -f1)" != 0 ]' 60 "sales held for the budget"
read -r nheld nlate <<<"$(q -c "$held")"
expect_eq "$nlate" 0 "held sales due when the window's budget is back ($nheld held)"
wait_for "$(drained)" 120 "2,000 sales under a 5-per-3s rate limit"
expect_eq "$(mockctl count --path /connecteam/sales/v1/transactions --method POST)" 20 "full requests of 100"
expect_eq "$(mockctl count --path /connecteam --status 429)" 0 "429s received"
python3 "$(dirname "$0")/../lib/compare.py" rate-limited --no-mapal
