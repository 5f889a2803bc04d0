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
wait_for "$(drained)" 120 "2,000 sales under a 5-per-3s rate limit"
expect_eq "$(mockctl count --path /connecteam/sales/v1/transactions --method POST)" 20 "full requests of 100"
expect_eq "$(mockctl count --path /connecteam --status 429)" 0 "429s received"
python3 "$(dirname "$0")/../lib/compare.py" rate-limited --no-mapal
