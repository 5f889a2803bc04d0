--
-- 21_cashrec: cashrec_fetch (typed rows + jsonb, splitting, vendor errors)
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS sales_api;
RESET client_min_messages;
\getenv mock_url MOCK_URL
\! mockctl reset
\set token_url :mock_url/connect/token
\set cashrec_url :mock_url/cashrec
SET datestyle = 'ISO, YMD';
SET timezone = 'UTC';
\set SHOW_CONTEXT never
CREATE SERVER regress_cashrec FOREIGN DATA WRAPPER sales_api
  OPTIONS (vendor 'mapal', token_url :'token_url', cashrec_url :'cashrec_url',
           timezone 'Europe/Madrid', cashrec_max_days '1');
CREATE USER MAPPING FOR CURRENT_USER SERVER regress_cashrec
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');

--
-- 2 centres over 3 days, one day per request: 3 requests, one set of rows
--
SELECT center_id, cash_sheet_id, business_day, shift_id, till_id, opened_at, closed_at,
       currency_id, net_sales, gross_sales, num_checks, expected_cash, counted_cash, difference
  FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-22 23:59:59', '{101,102}');
\! mockctl log --path cashSheet --fields method,path,query,status | sort
-- tenders as jsonb, and the whole record with every number exact
SELECT cash_sheet_id, tenders FROM sales_api.cashrec_fetch('regress_cashrec',
  '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
SELECT jsonb_pretty(record) FROM sales_api.cashrec_fetch('regress_cashrec',
  '2026-11-20 00:00', '2026-11-20 10:00', '{102}');
SELECT count(*) AS sheets,
       bool_and(record->>'cashSheetId' = cash_sheet_id) AS ids_match,
       bool_and(record->>'netSales' = net_sales::text AND record->>'difference' = difference::text
                AND record->>'countedCash' = counted_cash::text) AS money_exact,
       bool_and(record->'tenders' = tenders) AS tenders_match,
       bool_and(gross_sales = (SELECT sum((t->>'amount')::numeric) FROM jsonb_array_elements(tenders) t))
         AS tenders_add_up
  FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-22 23:59:59', '{101,102}');

-- long centre lists are split too: 3 centres, at most 2 per request
ALTER SERVER regress_cashrec OPTIONS (SET cashrec_max_days '7', ADD cashrec_max_centers '2');
\! mockctl mark
SELECT center_id, count(*) AS sheets, min(business_day), max(business_day)
  FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-22 23:59:59', '{103,101,102,101}')
 GROUP BY center_id ORDER BY center_id;
\! mockctl log --since-mark --path cashSheet --fields query | sort
-- windows are inclusive to the second and never overlap: 10 days by 7
\! mockctl mark
SELECT count(*) AS sheets, count(DISTINCT cash_sheet_id) AS distinct_sheets
  FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-01 00:00', '2026-11-10 23:59:59.999', '{101}');
\! mockctl log --since-mark --path cashSheet --fields query | sort

-- the requests go out concurrently
ALTER SERVER regress_cashrec OPTIONS (SET cashrec_max_days '1');
\! mockctl fault delay --path cashSheet --delay-ms 1500 --count 3
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-22 23:59:59', '{101}');
SELECT clock_timestamp() - :'t0'::timestamptz < interval '3.5 s' AS concurrent;

--
-- An empty period is no rows, not an error
--
\! mockctl mark
SELECT * FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 23:00', '2026-11-20 23:59:59', '{101}');
SELECT * FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{999}');
-- no centres: no request at all
SELECT * FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{}');
\! mockctl log --since-mark --path cashSheet --fields query

--
-- Records as the vendor may send them: extra fields kept, missing ones NULL,
-- date-times with an offset shown in the server's time zone, integer ids
--
\! printf '%s' '[{"centerId":104,"cashSheetId":"CS-104-A","businessDay":"2026-11-19","shiftId":1,"openedAt":"2026-11-19T08:00:00","closedAt":"2026-11-19T15:00:00Z","currencyId":"EUR","netSales":100.10,"grossSales":110.11,"numChecks":5,"expectedCash":50.00,"countedCash":49.90,"difference":-0.10,"tenders":[{"paymentMethodId":"CASH","amount":50.00}],"cashierName":"Ana","safe":{"float":150.00}}, {"centerId":104,"cashSheetId":7001,"businessDay":"2026-11-19","shiftId":2,"TillId":"T9","openedAt":"2026-11-19T16:00:00","closedAt":null,"currencyId":"EUR","netSales":0,"grossSales":0,"numChecks":0}]' > "$MOCK_STATE_DIR/cashrec_seed.json"
\! mockctl seed-cashrec "$MOCK_STATE_DIR/cashrec_seed.json"
SELECT center_id, cash_sheet_id, business_day, shift_id, till_id, opened_at, closed_at, net_sales,
       gross_sales, num_checks, expected_cash, counted_cash, difference, tenders
  FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-19 00:00', '2026-11-19 23:59:59', '{104}');
SELECT cash_sheet_id, record->'cashierName' AS cashier, record->'safe' AS safe, record->'closedAt' AS closed
  FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-19 00:00', '2026-11-19 23:59:59', '{104}');

--
-- A present field of the wrong type is an error, not a silent NULL
--
\! printf '%s' '[{"centerId":105,"cashSheetId":"CS-105-X","businessDay":"2026-11-18","openedAt":"2026-11-18T08:00:00","netSales":"12.30"}, {"centerId":105,"cashSheetId":"CS-105-Y","businessDay":"2026-11-17","openedAt":"2026-11-17T08:00:00","closedAt":"2026-11-17T25:00:00"}, {"centerId":105,"cashSheetId":"CS-105-Z","businessDay":"2026-11-16","openedAt":"2026-11-16T08:00:00","shiftId":1.5}, {"centerId":105,"cashSheetId":"CS-105-W","businessDay":"2026-11-15","openedAt":"2026-11-15T08:00:00","tenders":{"CASH":1}}]' > "$MOCK_STATE_DIR/cashrec_bad.json"
\! mockctl seed-cashrec "$MOCK_STATE_DIR/cashrec_bad.json"
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-18 00:00', '2026-11-18 23:59:59', '{105}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-17 00:00', '2026-11-17 23:59:59', '{105}');
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-16 00:00', '2026-11-16 23:59:59', '{105}');
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-15 00:00', '2026-11-15 23:59:59', '{105}');
-- integers beyond 64 bits (json-c would silently saturate them) and beyond bigint
\! mockctl fault status --path cashSheet --status 200 --body '[{"centerId":105,"cashSheetId":"CS-B1","numChecks":99999999999999999999}]'
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
\! mockctl fault status --path cashSheet --status 200 --body '[{"centerId":18446744073709551614,"cashSheetId":"CS-B2"}]'
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\! mockctl fault status --path cashSheet --status 200 --body '[{"centerId":105,"cashSheetId":"CS-B3","netSales":-99999999999999999999}]'
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\! mockctl fault status --path cashSheet --status 200 --body '[{"centerId":105,"cashSheetId":99999999999999999999}]'
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\! mockctl fault status --path cashSheet --status 200 --body '[{"centerId":105,"cashSheetId":"CS-B5","loyalty":{"points":99999999999999999999}}]'
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
-- below the saturation, large values stay exact
\! mockctl fault status --path cashSheet --status 200 --body '[{"centerId":105,"cashSheetId":"CS-B6","netSales":18446744073709551614,"grossSales":1e30,"loyalty":{"points":-9223372036854775807}}]'
SELECT net_sales, gross_sales, record->'loyalty' AS loyalty
  FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
-- answers that are not a list of records
\! mockctl fault wrong_shape --path cashSheet
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\! mockctl fault status --path cashSheet --status 200 --body '[1, 2]'
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\! mockctl fault malformed --path cashSheet
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE

--
-- Vendor errors are SQL errors with the vendor's code and message, and a hint
--
-- 400 code 100: here because the tenant expects other parameter names
ALTER SERVER regress_cashrec OPTIONS (ADD cashrec_start_param 'from');
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
ALTER SERVER regress_cashrec OPTIONS (SET cashrec_start_param 'StartDate');
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\! mockctl log --path cashSheet --fields query,status | tail -2
ALTER SERVER regress_cashrec OPTIONS (DROP cashrec_start_param);
-- 404 code 0
\! mockctl fault status --path cashSheet --status 404
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
-- a 500 that persists: the GET is sent three times, then the call fails
\! mockctl mark
\! mockctl fault status --path cashSheet --status 500 --count 3
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
\! mockctl log --since-mark --path cashSheet --fields method,status
-- a passing 503 with Retry-After among several requests: that request is
-- sent again after the pause, and the call succeeds (one at a time, so that
-- the fault meets the first day)
SET sales_api.max_concurrency = 1;
\! mockctl mark
\! mockctl fault status --path cashSheet --status 503 --header 'Retry-After: 1'
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-22 23:59:59', '{101}');
SELECT clock_timestamp() - :'t0'::timestamptz >= interval '1 s' AS waited_retry_after;
\! mockctl log --since-mark --path cashSheet --fields query,status
-- a Retry-After beyond sales_api.rate_limit_max_wait is not waited for: the
-- 503 stands and fails the call (the requests go in batches of
-- sales_api.max_concurrency, so the later days are not even sent)
SET sales_api.rate_limit_max_wait = '10s';
\! mockctl mark
\! mockctl fault status --path cashSheet --status 503 --header 'Retry-After: 30'
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-22 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
\! mockctl count --since-mark --path cashSheet
RESET sales_api.rate_limit_max_wait;
RESET sales_api.max_concurrency;
-- a request that times out is sent again
SET sales_api.request_timeout = '500ms';
\! mockctl fault delay --path cashSheet --delay-ms 2000
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
RESET sales_api.request_timeout;
-- 401 after a failed token refresh: the token was revoked and the
-- password changed at the vendor
\! mockctl mark
\! mockctl tokens revoke --vendor mapal
\! mockctl config 'mapal_users={"pos-user": "changed"}'
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
\! mockctl log --since-mark --fields method,path,status
\! mockctl config 'mapal_users={"pos-user": "pos-pass"}'
-- a revoked token alone is replaced and the request sent again
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\! mockctl tokens revoke --vendor mapal
\! mockctl mark
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\! mockctl log --since-mark --fields method,path,status
-- a token that lives less than a minute is reused for half its life, not
-- fetched again for every request (a fresh server has no cached token)
\! mockctl config mapal_token_ttl=20
CREATE SERVER regress_cashrec_ttl FOREIGN DATA WRAPPER sales_api
  OPTIONS (vendor 'mapal', token_url :'token_url', cashrec_url :'cashrec_url',
           timezone 'Europe/Madrid', cashrec_max_days '1');
CREATE USER MAPPING FOR CURRENT_USER SERVER regress_cashrec_ttl
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
SET sales_api.max_concurrency = 1;
\! mockctl mark
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec_ttl', '2026-11-20 00:00', '2026-11-22 23:59:59', '{101}');
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec_ttl', '2026-11-20 00:00', '2026-11-22 23:59:59', '{101}');
\! mockctl log --since-mark --fields method,path,status | sort | uniq -c | sed 's/^ *//'
RESET sales_api.max_concurrency;
\! mockctl config mapal_token_ttl=3600
DROP SERVER regress_cashrec_ttl CASCADE;
-- a transport failure (libcurl itself resends a few times on reused connections)
\! mockctl fault drop_before --path cashSheet --count 10
\set VERBOSITY sqlstate
SELECT count(*) FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\set VERBOSITY default
\! mockctl faults-clear

--
-- Bad arguments, refused before anything is sent
--
\! mockctl mark
SELECT * FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-21 00:00', '2026-11-20 00:00', '{101}');
SELECT * FROM sales_api.cashrec_fetch('regress_cashrec', NULL, '2026-11-20 00:00', '{101}');
SELECT * FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', 'infinity', '{101}');
SELECT * FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', NULL);
SELECT * FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101,NULL}');
SELECT * FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101,-4}');
SELECT * FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{{101},{102}}');
SELECT * FROM sales_api.cashrec_fetch('regress_cashrec', '2020-01-01 00:00', '2026-11-20 23:59:59', '{101,102,103}');
-- a long list is de-duplicated by sorting (60000 distinct ids, each twice)
SELECT * FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59',
  (SELECT array_agg(1 + g % 60000) FROM generate_series(0, 119999) g));
SELECT * FROM sales_api.cashrec_fetch(NULL, '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\! mockctl count --since-mark --path cashSheet

--
-- Reconciliation: local till totals against Mapal's cash sheets
--
CREATE TEMP TABLE till_closings AS
SELECT center_id, business_day, till_id, gross_sales, counted_cash AS cash_counted
  FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-22 23:59:59', '{101,102}');
UPDATE till_closings SET gross_sales = gross_sales + 12.30
 WHERE center_id = 102 AND business_day = '2026-11-21' AND till_id = 'T2';
DELETE FROM till_closings WHERE center_id = 101 AND business_day = '2026-11-22' AND till_id = 'T1';
WITH mapal AS (
  SELECT center_id, business_day, sum(gross_sales) AS gross, sum(counted_cash) AS counted
    FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-22 23:59:59',
                                 ARRAY[101, 102])
   GROUP BY center_id, business_day),
pos AS (
  SELECT center_id, business_day, sum(gross_sales) AS gross, sum(cash_counted) AS counted
    FROM till_closings
   WHERE business_day BETWEEN '2026-11-20' AND '2026-11-22' AND center_id IN (101, 102)
   GROUP BY center_id, business_day)
SELECT center_id, business_day, pos.gross AS pos_gross, mapal.gross AS mapal_gross,
       pos.gross - mapal.gross AS gross_diff, pos.counted - mapal.counted AS cash_diff
  FROM pos FULL JOIN mapal USING (center_id, business_day)
 WHERE pos.gross IS DISTINCT FROM mapal.gross OR pos.counted IS DISTINCT FROM mapal.counted
 ORDER BY center_id, business_day;

--
-- Privileges: EXECUTE is revoked from PUBLIC
--
CREATE ROLE regress_cashrec_user;
GRANT USAGE ON SCHEMA sales_api TO regress_cashrec_user;
SET ROLE regress_cashrec_user;
SELECT * FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
RESET ROLE;
GRANT EXECUTE ON FUNCTION sales_api.cashrec_fetch(name, timestamp, timestamp, bigint[]) TO regress_cashrec_user;
SET ROLE regress_cashrec_user;
SELECT * FROM sales_api.cashrec_fetch('regress_cashrec', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
RESET ROLE;

DROP SERVER regress_cashrec CASCADE;
REVOKE ALL ON SCHEMA sales_api FROM regress_cashrec_user;
REVOKE ALL ON FUNCTION sales_api.cashrec_fetch(name, timestamp, timestamp, bigint[]) FROM regress_cashrec_user;
DROP ROLE regress_cashrec_user;
