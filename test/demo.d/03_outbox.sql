-- 3. the outbox: attach the POS table to both vendors, sell, and watch the worker deliver
SELECT sales_api.attach('pos_sales', 'connecteam', '{
  "location_id": "store", "sale_type": "''SALE''", "created_at": "sold_at",
  "final_sale_amount": "net", "tax_amount": "tax", "currency": "''EUR''"}') AS connecteam_capture;
SELECT sales_api.attach('pos_sales', 'mapal', '{
  "unit_id": "1000 + store", "sold_at": "sold_at", "currency_id": "''EUR''",
  "sales_type_id": "channel", "net_sales": "net", "gross_sales": "net + tax", "num_guests": "covers"}') AS mapal_capture;
-- an afternoon of sales, in one statement
INSERT INTO pos_sales (store, sold_at, channel, net, tax, covers)
SELECT 1 + i % 3, timestamptz '2026-11-20 15:00 Europe/Madrid' + i * interval '61 seconds',
       (ARRAY['EAT_IN', 'TAKE', 'DELIVERY'])[1 + i % 3], round((3 + (i * 53) % 3000 / 100.0)::numeric, 2),
       round(((3 + (i * 53) % 3000 / 100.0) * 0.10)::numeric, 2), 1 + i % 3
  FROM generate_series(0, 499) i;
-- a refund corrected afterwards, and a voided ticket
UPDATE pos_sales SET net = net - 1.00 WHERE id = 250;
DELETE FROM pos_sales WHERE id = 251;
-- wait for the worker (woken by the commits) to drain the outbox
DO $$
BEGIN
    FOR i IN 1..300 LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM sales_api.outbox WHERE state IN ('pending', 'in_flight', 'failed'))
              AND NOT EXISTS (SELECT 1 FROM sales_api.outbox_stage);
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT server_name, state, items, last_success_at IS NOT NULL AS delivered FROM sales_api.outbox_status ORDER BY 1, 2;
SELECT requests, items_sent, retries, rate_limited, round(latency_p50_ms::numeric, 1) AS p50_ms
  FROM sales_api.worker_stats();
-- Connecteam's daily totals now match the afternoon's local sales (plus the 30 posted by hand)
SELECT d.location_id, d.total_sales AS connecteam_total,
       (SELECT sum(net) FROM pos_sales s WHERE s.store = d.location_id
           AND (s.sold_at >= '2026-11-20 15:00 Europe/Madrid' OR s.id <= 30)) AS local_total
  FROM sales_api.connecteam_daily_sales('connecteam', '2026-11-20', '2026-11-20') d ORDER BY 1;
