--
-- 30_connecteam: locations, transactions in requests of 100, deletions,
-- daily sales and projections against the mock; validation before sending;
-- the vendor's 422 and domain errors; non-idempotent POSTs never resent blindly
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS sales_api;
RESET client_min_messages;
\getenv mock_url MOCK_URL
\set ct_url :mock_url/connecteam
\! mockctl reset
CREATE SERVER ct FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER ct OPTIONS (api_key 'ct-key-123');
-- before any call nothing is known about the account's budget
SELECT * FROM sales_api.connecteam_rate_limit('ct');

--
-- Locations
--
SELECT * FROM sales_api.connecteam_create_location('ct', 'Store Centre');
SELECT * FROM sales_api.connecteam_create_location('ct', 'Store Nord & Süd/2', false);
SELECT * FROM sales_api.connecteam_create_location('ct', 'Store West', NULL);
\! mockctl log --path locations --method POST --fields body
SELECT * FROM sales_api.connecteam_locations('ct') ORDER BY id;
SELECT * FROM sales_api.connecteam_locations('ct', location_ids => '{1,3}') ORDER BY id;
SELECT * FROM sales_api.connecteam_locations('ct', names => ARRAY['Store Nord & Süd/2']);
SELECT * FROM sales_api.connecteam_locations('ct', is_active => true) ORDER BY id;
SELECT * FROM sales_api.connecteam_locations('ct', location_ids => '{}');
\! mockctl log --path locations --method GET --fields query,status
-- a long location_ids list is sent in requests of 100 ids (sorted, duplicates
-- dropped), so no URL grows without bound
\! mockctl mark
SELECT count(*), count(DISTINCT id) FROM sales_api.connecteam_locations('ct',
  location_ids => (SELECT array_agg(1 + g % 250) FROM generate_series(0, 499) g));
\! mockctl log --since-mark --fields method,query | python3 -c "import sys; [print(l.split('\t')[0], l.count('locationIds='), l.split('locationIds=')[1].split('&')[0]) for l in sys.stdin]"
-- a names list that would make the URL too long is refused
SELECT * FROM sales_api.connecteam_locations('ct', names => (SELECT array_agg('Store ' || g) FROM generate_series(1, 101) g));
SELECT * FROM sales_api.connecteam_locations('ct', names => ARRAY[repeat('ü', 700)]);
-- paging: 1000 per page until a short page (1003 locations: two pages)
\! python3 -c "import json,os,ssl,urllib.request as u; u.urlopen(u.Request(os.environ['MOCK_URL']+'/_mock/connecteam/locations', data=json.dumps({'locations':[{'name':'Bulk %d' % i} for i in range(1000)]}).encode(), headers={'Content-Type':'application/json'}), context=ssl.create_default_context(cafile=os.environ['MOCK_CA'])).read()"
\! mockctl mark
SELECT count(*), count(DISTINCT id), min(id), max(id) FROM sales_api.connecteam_locations('ct');
\! mockctl log --since-mark --fields method,query,status
-- a rate-limit state is known after the first call (values vary, so only their presence)
SELECT minute_limit > 0 AS minute_limit, minute_remaining >= 0 AS minute_remaining,
       minute_reset > now() - interval '1 min' AS minute_reset, day_limit > 0 AS day_limit,
       day_remaining >= 0 AS day_remaining, day_reset > now() AS day_reset,
       observed_at <= now() + interval '1 s' AS observed_at
  FROM sales_api.connecteam_rate_limit('ct');

--
-- Transactions: 250 rows go out as exactly 3 requests (100, 100, 50)
--
CREATE TEMP TABLE pos_sales AS
SELECT g AS n, 'T-' || g AS reference, 1::bigint AS location_id,
       (CASE WHEN g % 50 = 0 THEN 'REFUND' ELSE 'SALE' END)::sales_api.connecteam_sale_type AS sale_type,
       timestamptz '2026-11-20 08:00:00+00' + g * interval '1 minute' AS created_at,
       CASE WHEN g % 50 = 0 THEN -5.00 ELSE 10.10 END AS final_sale_amount,
       CASE WHEN g % 2 = 0 THEN 2.12 END AS tax_amount,
       CASE WHEN g % 3 = 0 THEN 'EUR' END AS currency
  FROM generate_series(1, 250) g;
\! mockctl mark
CREATE TEMP TABLE posted AS
SELECT r.*
  FROM sales_api.connecteam_post_transactions('ct',
         (SELECT array_agg(ROW(location_id, sale_type, created_at, final_sale_amount,
                               tax_amount, currency, reference)::sales_api.connecteam_transaction
                           ORDER BY n)
            FROM pos_sales)) WITH ORDINALITY AS r(reference, transaction_id, location_id,
                                                   http_status, ok, error, ord);
-- one row per input row, in input order, each with its own vendor id
SELECT count(*) AS rows, count(*) FILTER (WHERE ok) AS ok, count(DISTINCT transaction_id) AS ids,
       bool_and(reference = 'T-' || ord) AS input_order, bool_and(http_status = 200) AS all_200,
       bool_and(location_id = 1) AS location, count(error) AS errors
  FROM posted;
\! mockctl log --since-mark --fields method,path,status
-- items per request (sent concurrently, so sorted)
\! mockctl log --since-mark --method POST --fields body | python3 -c "import sys, json; [print(len(json.loads(l)['transactionsCreateRequest'])) for l in sys.stdin]" | sort -n
\! mockctl ct-transactions --location 1 | wc -l
-- 100 rows, from a query with the documented column names: exactly 1 request
\! mockctl mark
SELECT count(*) AS rows, count(*) FILTER (WHERE ok) AS ok, count(DISTINCT transaction_id) AS ids
  FROM sales_api.connecteam_post_transactions('ct', $$
    SELECT 2 AS location_id, 'SALE' AS sale_type, timestamptz '2026-11-21 12:00:00+00' AS created_at,
           1.50 AS final_sale_amount, NULL::numeric AS tax_amount, NULL AS currency,
           'Q-' || g AS reference
      FROM generate_series(1, 100) g$$);
\! mockctl log --since-mark --fields method,path,status
-- a relation name works as well; the exact body: integers, exact decimals, no nulls
CREATE TEMP VIEW two_sales AS
SELECT 3::bigint AS location_id, 'MANUAL'::text AS sale_type,
       timestamptz '2026-11-21 23:59:59.9+00' AS created_at, 12.30 AS final_sale_amount,
       0.00 AS tax_amount, 'EUR' AS currency, 'R-1' AS reference, 'ignored' AS extra
UNION ALL
SELECT 3, 'CROSS_BL', timestamptz '2026-11-22 00:00:00+00', -0.10, NULL, NULL, NULL, NULL;
SELECT reference, transaction_id IS NOT NULL AS has_id, location_id, http_status, ok, error
  FROM sales_api.connecteam_post_transactions('ct', 'two_sales');
\! mockctl body --path /transactions --method POST --index -1
-- no rows, no request
\! mockctl mark
SELECT * FROM sales_api.connecteam_post_transactions('ct', '{}'::sales_api.connecteam_transaction[]);
\! mockctl count --since-mark

--
-- Daily sales: totals read back (sum of final_sale_amount per location and day)
--
SELECT * FROM sales_api.connecteam_daily_sales('ct', '2026-11-19', '2026-11-23') ORDER BY location_id, sales_date;
SELECT sum(final_sale_amount) AS expected_total_location_1 FROM pos_sales;
SELECT * FROM sales_api.connecteam_daily_sales('ct', '2026-11-21', '2026-11-21', '{3}');
SELECT * FROM sales_api.connecteam_daily_sales('ct', '2026-11-21', '2026-11-21', '{}');
\! mockctl log --path daily-sales --fields method,query,status
-- many location ids: requests of 100 ids, one set of rows
\! mockctl mark
SELECT count(*), count(DISTINCT location_id), sum(total_sales) FROM sales_api.connecteam_daily_sales('ct', '2026-11-19', '2026-11-23',
  (SELECT array_agg(g) FROM generate_series(1, 230) g));
\! mockctl log --since-mark --fields method,query,status | python3 -c "import sys; [print(l.split('\t')[0], l.count('locationIds='), l.split('\t')[-1].strip()) for l in sys.stdin]"

--
-- Projected sales: set, returned as stored, read back
--
SELECT * FROM sales_api.connecteam_set_projected_sales('ct', 1,
    ARRAY[('2026-11-20', 2500.00), ('2026-11-25', 1999.99)]::sales_api.connecteam_projected_sale[]);
\! mockctl body --path daily-sales --method PUT --index -1
SELECT * FROM sales_api.connecteam_set_projected_sales('ct', 3,
    $$SELECT d::date AS sales_date, 100 + extract(day FROM d) AS projected_sales
        FROM generate_series(date '2026-11-21', date '2026-11-22', interval '1 day') d$$);
SELECT * FROM sales_api.connecteam_daily_sales('ct', '2026-11-20', '2026-11-30', '{1,3}') ORDER BY location_id, sales_date;
\! mockctl ct-projected
-- refused before sending: duplicate dates, no rows, NULLs, non-finite amounts
\! mockctl mark
SELECT * FROM sales_api.connecteam_set_projected_sales('ct', 1,
    ARRAY[('2026-11-20', 1), ('2026-11-21', 2), ('2026-11-20', 3)]::sales_api.connecteam_projected_sale[]);
SELECT * FROM sales_api.connecteam_set_projected_sales('ct', 1, '{}'::sales_api.connecteam_projected_sale[]);
SELECT * FROM sales_api.connecteam_set_projected_sales('ct', 1, NULL::sales_api.connecteam_projected_sale[]);
SELECT * FROM sales_api.connecteam_set_projected_sales('ct', 0, ARRAY[('2026-11-20', 1)]::sales_api.connecteam_projected_sale[]);
SELECT * FROM sales_api.connecteam_set_projected_sales('ct', 1, ARRAY[(NULL, 1)]::sales_api.connecteam_projected_sale[]);
SELECT * FROM sales_api.connecteam_set_projected_sales('ct', 1, ARRAY[('2026-11-20', 'NaN')]::sales_api.connecteam_projected_sale[]);
SELECT * FROM sales_api.connecteam_set_projected_sales('ct', NULL, ARRAY[('2026-11-20', 1)]::sales_api.connecteam_projected_sale[]);
SELECT * FROM sales_api.connecteam_daily_sales('ct', '2026-11-21', '2026-11-20');
SELECT * FROM sales_api.connecteam_daily_sales('ct', '2026-11-21', 'infinity');
\! mockctl count --since-mark

--
-- Deleting: a time range (both ends inclusive), then one transaction by id
--
-- T-1 .. T-60 were created 08:01 .. 09:00
SELECT sales_api.connecteam_delete_transactions('ct', 1, '2026-11-20 08:01:00+00', '2026-11-20 09:00:00+00');
\! mockctl log --path transactions --method DELETE --fields query,status
\! mockctl ct-transactions --location 1 | wc -l
SELECT sales_api.connecteam_delete_transaction('ct', (SELECT transaction_id FROM posted WHERE reference = 'T-61'));
\! mockctl ct-transactions --location 1 | wc -l
SELECT * FROM sales_api.connecteam_daily_sales('ct', '2026-11-20', '2026-11-20', '{1}');
SELECT sum(final_sale_amount) AS expected_total FROM pos_sales WHERE n > 61;
-- deleting it again: the vendor's 404 domain error, its message in the detail (id masked)
DO $$
DECLARE
    st text; msg text; det text;
BEGIN
    PERFORM sales_api.connecteam_delete_transaction('ct', (SELECT transaction_id FROM posted WHERE reference = 'T-61'));
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RAISE NOTICE 'SQLSTATE %: %', st, msg;
    RAISE NOTICE '%', regexp_replace(det, '[0-9a-f]{8}-[0-9a-f-]{27}', '<id>');
END $$;
-- a row value never changes the path: ".." and "/" are percent-encoded
\! mockctl mark
SELECT sales_api.connecteam_delete_transaction('ct', '../../locations');
\! mockctl log --since-mark --fields method,path,status
-- refused before sending
\! mockctl mark
SELECT sales_api.connecteam_delete_transaction('ct', '');
SELECT sales_api.connecteam_delete_transactions('ct', 1, '2026-11-20', '2026-11-19');
SELECT sales_api.connecteam_delete_transactions('ct', 1, '1969-12-31 23:59:59+00', '2026-11-19');
SELECT sales_api.connecteam_delete_transactions('ct', 1, NULL, '2026-11-19');
SELECT sales_api.connecteam_delete_transactions('ct', 0, '2026-11-19', '2026-11-20');
\! mockctl count --since-mark

--
-- Validation before sending: the error names the row; no request goes out
--
\! mockctl mark
SELECT * FROM sales_api.connecteam_post_transactions('ct', $$
    SELECT 1 AS location_id, s AS sale_type, now() AS created_at, 1 AS final_sale_amount,
           NULL::numeric AS tax_amount, NULL AS currency, 'V-' || s AS reference
      FROM unnest(ARRAY['SALE', 'sale']) s$$);
SELECT * FROM sales_api.connecteam_post_transactions('ct', $$
    SELECT NULL::bigint AS location_id, 'SALE' AS sale_type, now() AS created_at, 1 AS final_sale_amount,
           NULL::numeric AS tax_amount, NULL AS currency, NULL AS reference$$);
SELECT * FROM sales_api.connecteam_post_transactions('ct',
    ARRAY[(1, 'SALE', now(), 1, NULL, NULL, 'ok'),
          (1, 'SALE', NULL, 1, NULL, NULL, 'V-3')]::sales_api.connecteam_transaction[]);
SELECT * FROM sales_api.connecteam_post_transactions('ct',
    ARRAY[(1, 'SALE', '1969-12-31 23:59:59+00', 1, NULL, NULL, 'V-4')]::sales_api.connecteam_transaction[]);
SELECT * FROM sales_api.connecteam_post_transactions('ct',
    ARRAY[(1, 'SALE', '2100-01-01 00:00:00+00', 1, NULL, NULL, 'V-5')]::sales_api.connecteam_transaction[]);
SELECT * FROM sales_api.connecteam_post_transactions('ct',
    ARRAY[(1, 'SALE', 'infinity', 1, NULL, NULL, 'V-6')]::sales_api.connecteam_transaction[]);
SELECT * FROM sales_api.connecteam_post_transactions('ct',
    ARRAY[(1, 'SALE', now(), 'NaN', NULL, NULL, 'V-7')]::sales_api.connecteam_transaction[]);
SELECT * FROM sales_api.connecteam_post_transactions('ct',
    ARRAY[(1, 'SALE', now(), 1, '-Infinity', NULL, 'V-8')]::sales_api.connecteam_transaction[]);
SELECT * FROM sales_api.connecteam_post_transactions('ct',
    ARRAY[(1, 'SALE', now(), 1e12, NULL, NULL, 'V-9')]::sales_api.connecteam_transaction[]);
SELECT * FROM sales_api.connecteam_post_transactions('ct',
    ARRAY[(1, 'SALE', now(), NULL, NULL, NULL, 'V-10')]::sales_api.connecteam_transaction[]);
SELECT * FROM sales_api.connecteam_post_transactions('ct',
    ARRAY[(1, 'SALE', now(), 1, NULL, '', 'V-11')]::sales_api.connecteam_transaction[]);
SELECT * FROM sales_api.connecteam_post_transactions('ct',
    ARRAY[(0, 'SALE', now(), 1, NULL, NULL, NULL)]::sales_api.connecteam_transaction[]);
-- a NULL array (what array_agg gives over no rows) is no rows, as for mapal_push_sales
SELECT * FROM sales_api.connecteam_post_transactions('ct', NULL::sales_api.connecteam_transaction[]);
SELECT * FROM sales_api.connecteam_post_transactions('ct', 'SELECT 1 AS location_id');
SELECT * FROM sales_api.connecteam_create_location('ct', '');
\! mockctl count --since-mark

--
-- The vendor's errors
--
-- domain error for one request: only its rows fail, the other request's rows are stored
\! mockctl mark
SELECT reference, transaction_id IS NOT NULL AS has_id, http_status, ok, error
  FROM sales_api.connecteam_post_transactions('ct', $$
    SELECT CASE WHEN g = 150 THEN 99999 ELSE 3 END AS location_id, 'SALE' AS sale_type,
           timestamptz '2026-11-23 10:00:00+00' AS created_at, 1 AS final_sale_amount,
           NULL::numeric AS tax_amount, NULL AS currency, 'D-' || g AS reference
      FROM generate_series(1, 150) g$$)
 WHERE reference IN ('D-1', 'D-100', 'D-101', 'D-150');
\! mockctl log --since-mark --fields method,status | sort
-- domain errors of the other endpoints are raised, the vendor's message in the detail
SELECT * FROM sales_api.connecteam_daily_sales('ct', '2026-11-20', '2026-11-20', '{99999}');
SELECT * FROM sales_api.connecteam_set_projected_sales('ct', 99999, ARRAY[('2026-11-20', 1)]::sales_api.connecteam_projected_sale[]);
SELECT sales_api.connecteam_delete_transactions('ct', 99999, '2026-11-20', '2026-11-21');
-- a 422 (the vendor's field list) for a transactions request and for a location
\! mockctl fault status --status 422 --path /transactions$ --body '{"detail":[{"loc":["body","transactionsCreateRequest",0,"saleType"],"msg":"Input should be SALE, VOID or REFUND","type":"enum"}]}'
SELECT reference, http_status, ok, error
  FROM sales_api.connecteam_post_transactions('ct',
    ARRAY[(1, 'TRANSITORY', '2026-11-23 10:00:00+00', 1, NULL, NULL, 'U-1')]::sales_api.connecteam_transaction[]);
\! mockctl fault status --status 422 --path /locations$ --body '{"detail":[{"loc":["body","name"],"msg":"String should have at most 64 characters","type":"string_too_long"}]}'
SELECT * FROM sales_api.connecteam_create_location('ct', 'A very long name');
-- a wrong API key
ALTER USER MAPPING FOR CURRENT_USER SERVER ct OPTIONS (SET api_key 'wrong-key');
SELECT * FROM sales_api.connecteam_locations('ct');
ALTER USER MAPPING FOR CURRENT_USER SERVER ct OPTIONS (SET api_key 'ct-key-123');

--
-- Failures and resending: a GET is resent, a transactions POST only when the
-- vendor certainly did not act on it
--
\! mockctl mark
\! mockctl fault status --status 503 --path /locations$ --method GET
SELECT count(*) FROM sales_api.connecteam_locations('ct', location_ids => '{1}');
\! mockctl log --since-mark --fields method,status
-- a 503 after a POST: the outcome is unknown, it is not sent again
\! mockctl mark
\! mockctl fault status --status 503 --path /transactions$
SELECT reference, transaction_id, http_status, ok, error
  FROM sales_api.connecteam_post_transactions('ct',
    ARRAY[(1, 'SALE', '2026-11-23 10:00:00+00', 1, NULL, NULL, 'F-1')]::sales_api.connecteam_transaction[]);
\! mockctl log --since-mark --fields method,status
-- the connection dropped after the request was sent (the mock stored the row): not sent again
\! mockctl mark
\! mockctl fault drop_after --path /transactions$
SELECT reference, transaction_id, http_status, ok,
       regexp_replace(error, '\(.*?\)', '(...)') AS error
  FROM sales_api.connecteam_post_transactions('ct',
    ARRAY[(1, 'SALE', '2026-11-23 11:00:00+00', 1, NULL, NULL, 'F-2')]::sales_api.connecteam_transaction[]);
\! mockctl log --since-mark --fields method,status,fault,dropped
\! mockctl ct-transactions --location 1 | grep -c 1795431600
-- the same for a location: an error that says it may exist.  The call before
-- leaves a kept-alive connection, which the POST reuses: libcurl's own resend
-- of it, after the vendor closed that connection unanswered, is refused
SELECT count(*) > 0 AS listed FROM sales_api.connecteam_locations('ct');
\! mockctl fault drop_after --path /locations$ --method POST
SELECT * FROM sales_api.connecteam_create_location('ct', 'Maybe');
\! mockctl ct-locations | grep -c Maybe
-- an answer of the wrong shape names the field, what it is and what was expected
\! mockctl fault status --path /locations$ --method GET --status 200 --body '{"data":{"locations":{"id":1}}}'
SELECT * FROM sales_api.connecteam_locations('ct');
\! mockctl fault status --path /daily-sales$ --status 200 --body '{"data":{"dailySales":[{"locationId":1.5,"date":"2026-11-20"}]}}'
SELECT * FROM sales_api.connecteam_daily_sales('ct', '2026-11-20', '2026-11-20');
-- an unreadable 200 answer: the rows are stored, only their ids are unknown
\! mockctl fault malformed --path /transactions$
SELECT reference, transaction_id, http_status, ok, error
  FROM sales_api.connecteam_post_transactions('ct',
    ARRAY[(1, 'SALE', '2026-11-23 12:00:00+00', 1, NULL, NULL, 'F-3')]::sales_api.connecteam_transaction[]);

-- a request that never reached the vendor (connection refused) is sent again, then
-- reported as not stored
CREATE SERVER ct_dead FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url 'https://127.0.0.1:1/connecteam');
CREATE USER MAPPING FOR CURRENT_USER SERVER ct_dead OPTIONS (api_key 'ct-key-123');
SELECT reference, transaction_id, http_status, ok, regexp_replace(error, '\(.*?\)', '(...)') AS error
  FROM sales_api.connecteam_post_transactions('ct_dead',
    ARRAY[(1, 'SALE', '2026-11-23 12:00:00+00', 1, NULL, NULL, 'F-4')]::sales_api.connecteam_transaction[]);
\set VERBOSITY terse
SELECT * FROM sales_api.connecteam_locations('ct_dead');
\set VERBOSITY default

--
-- OAuth client credentials work the same way
--
CREATE SERVER ct_oauth FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER ct_oauth OPTIONS (client_id 'ct-client', client_secret 'ct-secret');
\! mockctl mark
SELECT * FROM sales_api.connecteam_locations('ct_oauth', location_ids => '{1,2}') ORDER BY id;
\! mockctl log --since-mark --fields method,path,status,auth

--
-- Privileges: nothing for PUBLIC
--
SELECT p.oid::regprocedure AS function, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
  FROM pg_proc p WHERE p.pronamespace = 'sales_api'::regnamespace AND p.proname LIKE 'connecteam%'
 ORDER BY 1::text;
SET client_min_messages = warning;
DROP SERVER ct, ct_oauth, ct_dead CASCADE;
RESET client_min_messages;
