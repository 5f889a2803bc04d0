#!/usr/bin/env bash
# 10,000 sales in one COPY: 100 Connecteam POSTs and one Mapal request per
# unit and business day.
. "$(dirname "$0")/../lib/scenario.sh"
scenario_setup
make_locations 4
attach_connecteam
attach_mapal
mockctl mark >/dev/null
# 4 stores x 2 days; unique (store, second, amount) per sale
# in one transaction, to see the staged row before the worker makes it items
q -c "BEGIN" -c "COPY pos_sales (store, sold_at, kind, channel, net, tax, guests) FROM PROGRAM \$\$python3 -c \"
import datetime
for i in range(10000):
    store = 1 + i % 4
    day = (i // 4) % 2
    t = datetime.datetime(2026, 11, 20 + day, 8, 0, 0) + datetime.timedelta(seconds=5 * (i // 8))
    kind = ['SALE', 'SALE', 'SALE', 'REFUND'][i % 4 if i % 7 else 3]
    ch = ['EAT_IN', 'TAKE', 'DELIVERY'][i % 3]
    print(f'{store}\t{t.isoformat()}+00\t{kind}\t{ch}\t{(i % 5000) / 100 + 1:.2f}\t{(i % 300) / 100:.2f}\t{1 + i % 3}')
\"\$\$" \
  -c "SELECT count(*), sum(coalesce(cardinality(sale_keys), 1)), string_agg(DISTINCT cardinality(sale_keys)::text, ','),
             count(DISTINCT staged_at), max(staged_at) - min(staged_at) FROM sales_api.outbox_stage" -c "COMMIT" > "$SA_WORK/bulk_stage.out"
expect_eq "$(cat "$SA_WORK/bulk_stage.out")" "20|10000|500|20|00:00:00.000019" \
    "the COPY's Connecteam sales staged before the commit, in 20 parts of 500 a microsecond apart"
wait_for "SELECT (SELECT count(*) FROM sales_api.outbox WHERE kind = 'ct_post') = 10000 AND NOT EXISTS (SELECT 1 FROM sales_api.outbox_stage)" 120 "the worker to make the staged sales outbox items"
expect_eq "$(q -c "SELECT count(DISTINCT sale_key) FROM sales_api.outbox WHERE kind = 'ct_post'")" 10000 "one outbox item per captured sale"
wait_for "$(drained)" 120 "10,000 sales to drain"
expect_eq "$(mockctl count --since-mark --path /connecteam/sales/v1/transactions --method POST)" 100 "Connecteam POSTs for 10,000 sales"
expect_eq "$(mockctl count --since-mark --path /real-time-sales)" 8 "Mapal requests (4 units x 2 days)"
python3 "$(dirname "$0")/../lib/compare.py" bulk-10000
qs -c "SELECT * FROM sales_api.outbox_status ORDER BY 1, 2"
qs -c "SELECT requests, items_sent, rate_limited, latency_p50_ms IS NOT NULL AS has_latency FROM sales_api.worker_stats()"
