-- 2. a small POS sales table, pushed by hand: Mapal slots, Connecteam transactions, cash sheets back
CREATE TABLE pos_sales (
    id       bigserial PRIMARY KEY,
    store    integer NOT NULL,
    sold_at  timestamptz NOT NULL,
    channel  text NOT NULL,
    net      numeric(10,2) NOT NULL,
    tax      numeric(10,2) NOT NULL,
    covers   integer NOT NULL
);
-- a morning of sales at three stores (deterministic)
INSERT INTO pos_sales (store, sold_at, channel, net, tax, covers)
SELECT 1 + i % 3, timestamptz '2026-11-20 08:00 Europe/Madrid' + i * interval '97 seconds',
       (ARRAY['EAT_IN', 'TAKE', 'DELIVERY'])[1 + i % 3], round((4 + (i * 37) % 2500 / 100.0)::numeric, 2),
       round(((4 + (i * 37) % 2500 / 100.0) * 0.10)::numeric, 2), 1 + i % 4
  FROM generate_series(0, 199) i;
SELECT store, count(*) AS sales, sum(net) AS net FROM pos_sales GROUP BY 1 ORDER BY 1;

-- Mapal: one query from raw sales to pushed slots (units 1001-1003)
SELECT unit_id, business_day, slots_sent, http_status, ok
  FROM sales_api.mapal_push_sales('mapal', $$
    SELECT 1000 + store                              AS unit_id,
           sales_api.mapal_slot('mapal', sold_at)::date AS business_day,
           'EUR'                                     AS currency_id,
           channel                                   AS sales_type_id,
           sales_api.mapal_slot('mapal', sold_at)    AS slot_start,
           sum(net)                                  AS net_sales,
           sum(net + tax)                            AS gross_sales,
           count(*)                                  AS num_checks,
           sum(covers)                               AS num_guests
      FROM pos_sales
     GROUP BY store, channel, sales_api.mapal_slot('mapal', sold_at)
  $$);

-- Connecteam: locations for the stores, then the morning's first 30 sales as transactions
SELECT id, name FROM sales_api.connecteam_create_location('connecteam', 'Store 1')
UNION ALL SELECT id, name FROM sales_api.connecteam_create_location('connecteam', 'Store 2')
UNION ALL SELECT id, name FROM sales_api.connecteam_create_location('connecteam', 'Store 3');
SELECT count(*) AS rows, count(*) FILTER (WHERE ok) AS ok, count(DISTINCT transaction_id) AS transaction_ids
  FROM sales_api.connecteam_post_transactions('connecteam', $$
    SELECT store AS location_id, 'SALE' AS sale_type, sold_at AS created_at,
           net AS final_sale_amount, tax AS tax_amount, 'EUR' AS currency, id::text AS reference
      FROM pos_sales WHERE id <= 30 $$);
SELECT * FROM sales_api.connecteam_daily_sales('connecteam', '2026-11-20', '2026-11-20');
SELECT * FROM sales_api.connecteam_rate_limit('connecteam');

-- Cashrec: the cash sheets of two centres for that day come back as rows
SELECT center_id, cash_sheet_id, shift_id, till_id, opened_at, net_sales, gross_sales, difference
  FROM sales_api.cashrec_fetch('mapal', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101,102}');
