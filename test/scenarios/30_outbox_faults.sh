#!/usr/bin/env bash
# The vendors fail for a while (500s, 429s, a slow answer past the timeout,
# connections dropped before and after the vendor processed the request):
# every sale is delivered exactly once, and Mapal totals equal local totals.
. "$(dirname "$0")/../lib/scenario.sh"
scenario_setup
make_locations 3
attach_connecteam
attach_mapal
q -c "ALTER SYSTEM SET sales_api.request_timeout = '1500ms'" -c "SELECT pg_reload_conf()" >/dev/null
trap 'q -c "ALTER SYSTEM RESET sales_api.request_timeout" -c "SELECT pg_reload_conf()" >/dev/null' EXIT

# the faults wait for the first requests, in this order
mockctl fault status --path /connecteam/sales/v1/transactions --method POST --status 500 --count 2
mockctl fault status --path /connecteam/sales/v1/transactions --method POST --status 429 --count 2 --header 'Retry-After: 1'
mockctl fault drop_before --path /connecteam/sales/v1/transactions --method POST --count 2
mockctl fault drop_after --path /connecteam/sales/v1/transactions --method POST --count 2
mockctl fault delay --path /connecteam/sales/v1/transactions --method POST --delay-ms 3000 --count 1
mockctl fault status --path /real-time-sales --status 503 --count 3 --header 'Retry-After: 1'
mockctl fault drop_after --path /real-time-sales --count 2
mockctl fault status --path /connect/token --status 500 --count 1

# 3 stores, 1,500 sales over a day, committed in 15 transactions while the faults play out
for batch in $(seq 0 14); do
    q -c "INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)
          SELECT 1 + i % 3, timestamptz '2026-11-20 08:00+00' + (i * 31) * interval '1 second',
                 (ARRAY['SALE','SALE','REFUND','VOID'])[1 + i % 4], (ARRAY['EAT_IN','TAKE','DELIVERY'])[1 + i % 3],
                 round((1 + (i % 997) / 10.0)::numeric, 2), round(((i % 13) / 10.0)::numeric, 2), 1 + i % 4
            FROM generate_series($((batch * 100)), $((batch * 100 + 99))) i"
done
wait_for "$(drained)" 180 "every sale to be delivered despite the faults"
mockctl faults
echo "requests with a fault applied:"; mockctl log --fields method,path,status,fault | awk -F'\t' '$4 != "-"' | sort | uniq -c
qs -c "SELECT state, count(*), max(attempts) AS max_attempts FROM sales_api.outbox GROUP BY 1 ORDER BY 1"
qs -c "SELECT requests, items_sent, retries, rate_limited, ambiguous FROM sales_api.worker_stats()"
python3 "$(dirname "$0")/../lib/compare.py" vendor-faults
