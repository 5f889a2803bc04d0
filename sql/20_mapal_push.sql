--
-- 20_mapal_push: mapal_push_sales (both input forms), the slot helpers,
-- validation, vendor errors, token expiry, concurrency and cancellation
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS sales_api;
RESET client_min_messages;
\getenv mock_url MOCK_URL
\! mockctl reset
\set token_url :mock_url/connect/token
\set sales_url :mock_url/mapal-sales
SET datestyle = 'ISO, YMD';
SET timezone = 'UTC';
\set SHOW_CONTEXT never
CREATE SERVER regress_mapal_push FOREIGN DATA WRAPPER sales_api
  OPTIONS (vendor 'mapal', token_url :'token_url', sales_url :'sales_url',
           timezone 'Europe/Madrid', slot_minutes '15');
CREATE USER MAPPING FOR CURRENT_USER SERVER regress_mapal_push
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');

--
-- Slot helpers
--
-- 11:07:59 UTC is 12:07:59 in Madrid: slot 12:00 local
SELECT sales_api.time_slot('2026-11-20 11:07:59+00', 15, 'Europe/Madrid');
SELECT sales_api.time_slot('2026-11-20 11:07:59+00', 60, 'America/New_York');
-- the server's timezone and slot_minutes; 23:59 UTC is the next local day
SELECT sales_api.mapal_slot('regress_mapal_push', '2026-11-20 22:59:59+00') AS late,
       sales_api.mapal_slot('regress_mapal_push', '2026-11-20 23:00:00+00') AS next_day;
-- the day clocks go forward (02:00 -> 03:00 local): no 02:xx slot exists
SELECT ts, sales_api.mapal_slot('regress_mapal_push', ts)
  FROM unnest('{2026-03-29 00:59:00+00, 2026-03-29 01:00:00+00}'::timestamptz[]) ts;
-- without a timezone option, the session's TimeZone
CREATE SERVER regress_mapal_notz FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', slot_minutes '30');
SET timezone = 'Asia/Kolkata';
SELECT sales_api.mapal_slot('regress_mapal_notz', '2026-11-20 11:07:59+00');
SET timezone = 'UTC';
SELECT sales_api.mapal_slot('regress_mapal_notz', '2026-11-20 11:07:59+00');
SELECT sales_api.mapal_slot('regress_mapal_notz', NULL);
-- bad arguments
SELECT sales_api.time_slot(now(), 7, 'UTC');
SELECT sales_api.time_slot(now(), 15, 'Mars/Olympus_Mons');
SELECT sales_api.mapal_slot('no_such_server', now());
CREATE SERVER regress_ct_push FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam');
SELECT sales_api.mapal_slot('regress_ct_push', now());

--
-- A realistic day: 3 units, 96 fifteen-minute slots, 2 sales types
--
CREATE TEMP TABLE pos_slots AS
SELECT u AS unit_id,
       date '2026-11-20' AS business_day,
       'EUR'::text AS currency_id,
       st AS sales_type_id,
       timestamp '2026-11-20 00:00' + s * interval '15 minutes' AS slot_start,
       round(((u - 1000) * 3 + s * 7 + length(st)) * 1.1, 2) AS net_sales,
       round(round(((u - 1000) * 3 + s * 7 + length(st)) * 1.1, 2) * 1.10, 2) AS gross_sales,
       (s % 9) + 1 AS num_checks,
       ((s % 9) + 1) * 2 - (s % 2) AS num_guests
  FROM unnest('{1001,1002,1003}'::bigint[]) u,
       generate_series(0, 95) s,
       unnest('{EAT_IN,TAKE}'::text[]) st;
SELECT count(*) AS rows, count(DISTINCT slot_start) AS slots, sum(net_sales), sum(gross_sales)
  FROM pos_slots;
-- the array form: one request per (unit, business day), carrying all 192 slots
SELECT unit_id, business_day, slots_sent, http_status, ok, error, duration_ms >= 0 AS timed
  FROM sales_api.mapal_push_sales('regress_mapal_push',
         (SELECT array_agg(ROW(unit_id, business_day, currency_id, sales_type_id, slot_start,
                               net_sales, gross_sales, num_checks, num_guests)::sales_api.mapal_sale)
            FROM pos_slots));
\! mockctl count --path real-time-sales
\! mockctl log --path 'real-time-sales|token' --fields method,path,status | sort
-- the body as sent: exact decimals, local slot starts without offset
\! mockctl log --path business-unit/1001/ --fields body | cut -c1-250
-- what the mock stored, read back into SQL
CREATE TEMP TABLE mock_slots (unit_id bigint, business_day date, currency_id text, sales_type_id text,
  slot_start text, net_sales text, gross_sales text, num_checks int, num_guests int, writes int);
\copy mock_slots FROM PROGRAM 'mockctl mapal-sales' WITH (DELIMITER ' ')
SELECT unit_id, count(*) AS slots, min(slot_start) AS first, max(slot_start) AS last,
       sum(net_sales::numeric) AS net, sum(gross_sales::numeric) AS gross,
       sum(num_checks) AS checks, sum(num_guests) AS guests, max(writes) AS writes
  FROM mock_slots GROUP BY unit_id ORDER BY unit_id;
-- every slot arrived exactly as computed, amounts written digit for digit
CREATE TEMP VIEW pos_as_sent AS
SELECT unit_id, business_day, currency_id, sales_type_id,
       to_char(slot_start, 'YYYY-MM-DD"T"HH24:MI:SS') AS slot_start,
       net_sales::text, gross_sales::text, num_checks, num_guests
  FROM pos_slots;
SELECT (SELECT count(*) FROM (TABLE pos_as_sent EXCEPT
          SELECT unit_id, business_day, currency_id, sales_type_id, slot_start, net_sales,
                 gross_sales, num_checks, num_guests FROM mock_slots) a) AS missing_at_mock,
       (SELECT count(*) FROM (SELECT unit_id, business_day, currency_id, sales_type_id, slot_start,
                 net_sales, gross_sales, num_checks, num_guests FROM mock_slots
          EXCEPT TABLE pos_as_sent) b) AS unexpected_at_mock;

-- the relation form (an untyped literal resolves to it, unambiguously):
-- totals are sent again, so the vendor replaces each slot with the same figures
SELECT unit_id, slots_sent, http_status, ok FROM sales_api.mapal_push_sales('regress_mapal_push', 'pos_slots');
TRUNCATE mock_slots;
\copy mock_slots FROM PROGRAM 'mockctl mapal-sales' WITH (DELIMITER ' ')
SELECT unit_id, count(*) AS slots, sum(net_sales::numeric) AS net, min(writes), max(writes)
  FROM mock_slots GROUP BY unit_id ORDER BY unit_id;
-- named arguments pick a form too
SELECT count(*) FROM sales_api.mapal_push_sales(server => 'regress_mapal_push',
  source => $$SELECT * FROM pos_slots WHERE unit_id = 1001 AND slot_start < '2026-11-20 01:00'$$);
-- the HTTP method is the server's sales_method (POST by default)
ALTER SERVER regress_mapal_push OPTIONS (ADD sales_method 'PUT');
SELECT ok FROM sales_api.mapal_push_sales('regress_mapal_push', 'SELECT * FROM pos_slots WHERE unit_id = 1003 LIMIT 1');
ALTER SERVER regress_mapal_push OPTIONS (SET sales_method 'GET');
SELECT ok FROM sales_api.mapal_push_sales('regress_mapal_push', 'SELECT * FROM pos_slots WHERE unit_id = 1003 LIMIT 1');
ALTER SERVER regress_mapal_push OPTIONS (DROP sales_method);
\! mockctl log --path business-unit/1003/ --fields method,path,status,h:content-type | tail -2

--
-- From raw sales to slots: GROUP BY one expression (the README's example)
--
CREATE TEMP TABLE raw_sales (store_id bigint, sold_at timestamptz, channel text,
                             net numeric(10,2), tax numeric(10,2), covers int);
INSERT INTO raw_sales VALUES
  (1002, '2026-11-21 11:01:10+00', 'EAT_IN', 20.00, 2.00, 2),   -- 12:01 Madrid
  (1002, '2026-11-21 11:14:59+00', 'EAT_IN', 10.50, 1.05, 1),   -- 12:14
  (1002, '2026-11-21 11:15:00+00', 'EAT_IN',  8.20, 0.82, 1),   -- 12:15
  (1002, '2026-11-21 11:20:00+00', 'TAKE',    5.00, 0.50, 0),   -- 12:20
  (1002, '2026-11-21 11:25:00+00', 'TAKE',   -5.00, -0.50, 0),  -- a refund
  (1002, '2026-11-21 23:05:00+00', 'TAKE',   12.30, 1.23, 1);   -- 00:05 on the 22nd
SELECT unit_id, business_day, slots_sent, http_status, ok
  FROM sales_api.mapal_push_sales('regress_mapal_push', $$
    SELECT store_id                                              AS unit_id,
           sales_api.mapal_slot('regress_mapal_push', sold_at)::date AS business_day,
           'EUR'                                                 AS currency_id,
           channel                                               AS sales_type_id,
           sales_api.mapal_slot('regress_mapal_push', sold_at)   AS slot_start,
           sum(net)                                              AS net_sales,
           sum(net + tax)                                        AS gross_sales,
           count(*) FILTER (WHERE net > 0)                       AS num_checks,
           sum(covers)                                           AS num_guests
      FROM raw_sales
     GROUP BY store_id, channel, sales_api.mapal_slot('regress_mapal_push', sold_at)
  $$);
\! mockctl mapal-sales --unit 1002 | grep -v 2026-11-20

--
-- Duplicated slots within a group: summed by default, or refused
--
\! mockctl mark
SELECT unit_id, slots_sent, ok FROM sales_api.mapal_push_sales('regress_mapal_push', ARRAY[
  ROW(1003, '2026-11-23', 'EUR', 'TAKE', '2026-11-23 09:00', 10.00, 11.00, 1, 1),
  ROW(1003, '2026-11-23', 'EUR', 'TAKE', '2026-11-23 09:00', 2.50, 2.75, 1, 2),
  ROW(1003, '2026-11-23', 'EUR', 'EAT_IN', '2026-11-23 09:00', 1.00, 1.10, 1, 1)
]::sales_api.mapal_sale[]);
\! mockctl mapal-sales --unit 1003 --day 2026-11-23
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', ARRAY[
  ROW(1003, '2026-11-23', 'EUR', 'TAKE', '2026-11-23 09:00', 10.00, 11.00, 1, 1),
  ROW(1003, '2026-11-23', 'EUR', 'EAT_IN', '2026-11-23 09:00', 1.00, 1.10, 1, 1),
  ROW(1003, '2026-11-23', 'EUR', 'TAKE', '2026-11-23 09:00', 2.50, 2.75, 1, 2)
]::sales_api.mapal_sale[], on_duplicate => 'error');
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', '{}'::sales_api.mapal_sale[], 'ignore');
-- a sum must still satisfy net <= gross
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', ARRAY[
  ROW(1003, '2026-11-23', 'EUR', 'TAKE', '2026-11-23 09:00', 10.00, 11.00, 1, 1),
  ROW(1003, '2026-11-23', 'EUR', 'TAKE', '2026-11-23 09:00', -1.00, -5.00, 0, 0)
]::sales_api.mapal_sale[]);
\! mockctl count --since-mark --path real-time-sales

--
-- Validation: nothing is sent, the error names the row
--
\! mockctl mark
CREATE FUNCTION pg_temp.bad(variadic s sales_api.mapal_sale[])
RETURNS TABLE (unit_id bigint, ok boolean) LANGUAGE sql AS $$
  SELECT unit_id, ok FROM sales_api.mapal_push_sales('regress_mapal_push', s) $$;
-- NULLs
SELECT * FROM pg_temp.bad(ROW(1001, '2026-11-20', 'EUR', 'TAKE', '2026-11-20 12:00', 1, 1, 1, 1),
                          ROW(1001, '2026-11-20', 'EUR', 'TAKE', '2026-11-20 12:15', 1, 1, 1, NULL));
SELECT * FROM pg_temp.bad(ROW(NULL, '2026-11-20', 'EUR', 'TAKE', '2026-11-20 12:00', 1, 1, 1, 1));
-- a slot outside its business day, a misaligned slot
SELECT * FROM pg_temp.bad(ROW(1001, '2026-11-20', 'EUR', 'TAKE', '2026-11-21 00:00', 1, 1, 1, 1));
SELECT * FROM pg_temp.bad(ROW(1001, '2026-11-20', 'EUR', 'TAKE', '2026-11-20 12:07', 1, 1, 1, 1));
SELECT * FROM pg_temp.bad(ROW(1001, '2026-11-20', 'EUR', 'TAKE', '2026-11-20 12:15:30', 1, 1, 1, 1));
SELECT * FROM pg_temp.bad(ROW(1001, 'infinity', 'EUR', 'TAKE', 'infinity', 1, 1, 1, 1));
-- negative counts
SELECT * FROM pg_temp.bad(ROW(1001, '2026-11-20', 'EUR', 'TAKE', '2026-11-20 12:00', 1, 1, -1, 1));
SELECT * FROM pg_temp.bad(ROW(1001, '2026-11-20', 'EUR', 'TAKE', '2026-11-20 12:00', 1, 1, 1, -2));
-- empty ids, a bad unit id
SELECT * FROM pg_temp.bad(ROW(1001, '2026-11-20', '', 'TAKE', '2026-11-20 12:00', 1, 1, 1, 1));
SELECT * FROM pg_temp.bad(ROW(1001, '2026-11-20', 'EUR', '  ', '2026-11-20 12:00', 1, 1, 1, 1));
SELECT * FROM pg_temp.bad(ROW(0, '2026-11-20', 'EUR', 'TAKE', '2026-11-20 12:00', 1, 1, 1, 1));
-- net greater than gross, non-finite amounts
SELECT * FROM pg_temp.bad(ROW(1001, '2026-11-20', 'EUR', 'TAKE', '2026-11-20 12:00', 120.00, 100.00, 1, 1));
SELECT * FROM pg_temp.bad(ROW(1001, '2026-11-20', 'EUR', 'TAKE', '2026-11-20 12:00', 'NaN', 1, 1, 1));
SELECT * FROM pg_temp.bad(ROW(1001, '2026-11-20', 'EUR', 'TAKE', '2026-11-20 12:00', 1, 'Infinity', 1, 1));
-- the query form names rows in the query's order
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push',
  $$(SELECT * FROM pos_slots WHERE unit_id = 1002 ORDER BY slot_start, sales_type_id LIMIT 3)
    UNION ALL SELECT 1002, '2026-11-20', 'EUR', 'TAKE', '2026-11-20 13:00', 5, 4, 1, 1$$);
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', 'SELECT 1 AS unit_id');
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', 'no_such_table');
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', NULL::text);
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', ARRAY[NULL]::sales_api.mapal_sale[]);
SELECT * FROM sales_api.mapal_push_sales(NULL, '{}'::sales_api.mapal_sale[]);
SELECT * FROM sales_api.mapal_push_sales('regress_ct_push', '{}'::sales_api.mapal_sale[]);
-- nothing to push: no rows, no request (array_agg over no rows is NULL)
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', '{}'::sales_api.mapal_sale[]);
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', NULL::sales_api.mapal_sale[]);
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', 'SELECT * FROM pos_slots WHERE false');
-- amounts of returns may be negative, and then net is not bounded by gross
SELECT * FROM pg_temp.bad(ROW(1001, '2026-11-24', 'EUR', 'TAKE', '2026-11-24 12:00', -10.00, -11.00, 0, 0),
                          ROW(1001, '2026-11-24', 'EUR', 'EAT_IN', '2026-11-24 12:00', 0.01, -0.01, 1, 1));
\! mockctl count --since-mark --path real-time-sales

--
-- Vendor errors: a row each, the other groups still go out
--
CREATE TEMP VIEW one_slot_per_unit AS
SELECT u AS unit_id, date '2026-11-25' AS business_day, c AS currency_id, 'TAKE' AS sales_type_id,
       timestamp '2026-11-25 10:00' AS slot_start, 10.00 AS net_sales, 11.00 AS gross_sales,
       1 AS num_checks, 1 AS num_guests
  FROM (VALUES (1001, 'EUR'), (1002, 'USD'), (1003, 'EUR'), (9999, 'EUR')) v(u, c);
-- the mock's own 400s: a currency not configured for the unit, an unknown unit
SELECT unit_id, business_day, slots_sent, http_status, ok, error
  FROM sales_api.mapal_push_sales('regress_mapal_push', 'one_slot_per_unit');
\! mockctl mapal-sales --day 2026-11-25
-- 404, 500, 429 with Retry-After, an HTML error page, a redirect
\! mockctl fault status --path business-unit/1001/ --status 404
\! mockctl fault status --path business-unit/1002/ --status 500
\! mockctl fault status --path business-unit/1003/ --status 429 --header 'Retry-After: 7'
\! mockctl fault html --path business-unit/9999/
SELECT unit_id, http_status, ok, error
  FROM sales_api.mapal_push_sales('regress_mapal_push', 'one_slot_per_unit');
\! mockctl fault redirect --path business-unit/1001/
\! mockctl fault status --path business-unit/1003/ --status 204
SELECT unit_id, http_status, ok, error
  FROM sales_api.mapal_push_sales('regress_mapal_push', 'SELECT * FROM one_slot_per_unit WHERE unit_id IN (1001, 1003)');
-- transport failures: no status, the error says what happened
-- (libcurl itself resends a few times when a reused connection was closed)
\! mockctl fault drop_before --path business-unit/1001/ --count 10
SELECT unit_id, http_status, ok, error IS NOT NULL AS has_error
  FROM sales_api.mapal_push_sales('regress_mapal_push', 'SELECT * FROM one_slot_per_unit WHERE unit_id IN (1001, 1003)');
\! mockctl faults-clear
SET sales_api.request_timeout = '1s';
\! mockctl fault delay --path business-unit/1003/ --delay-ms 3000
SELECT unit_id, http_status, ok, error LIKE 'timed out after%' AS timed_out
  FROM sales_api.mapal_push_sales('regress_mapal_push', 'SELECT * FROM one_slot_per_unit WHERE unit_id IN (1001, 1003)');
RESET sales_api.request_timeout;
-- 401 even after a fresh token: one retry, then reported
\! mockctl mark
\! mockctl fault status --path business-unit/1001/ --status 401 --count 2
SELECT unit_id, http_status, ok, error
  FROM sales_api.mapal_push_sales('regress_mapal_push', 'SELECT * FROM one_slot_per_unit WHERE unit_id = 1001');
\! mockctl log --since-mark --fields method,path,status
-- raise_on_error: the first failure (in unit, business day order) raises
\! mockctl fault status --path business-unit/1003/ --status 500
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', 'one_slot_per_unit', raise_on_error => true);
\echo :LAST_ERROR_SQLSTATE
\! mockctl fault status --path business-unit/1003/ --status 500
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', 'SELECT * FROM one_slot_per_unit WHERE unit_id IN (1001, 1003)', 'sum', true);
\echo :LAST_ERROR_SQLSTATE
\! mockctl faults-clear
-- a revoked token that cannot be replaced (the password changed at the
-- vendor): the 401s are the outcome; the next call cannot start at all
\! mockctl mark
\! mockctl tokens revoke --vendor mapal
\! mockctl config 'mapal_users={"pos-user": "changed"}'
SELECT unit_id, http_status, ok, error
  FROM sales_api.mapal_push_sales('regress_mapal_push', 'SELECT * FROM one_slot_per_unit WHERE unit_id IN (1001, 1003)');
\! mockctl log --since-mark --fields method,path,status | sort
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', 'one_slot_per_unit');
\echo :LAST_ERROR_SQLSTATE
\! mockctl config 'mapal_users={"pos-user": "pos-pass"}'

--
-- A token that expires between two groups (one request at a time): the
-- groups answered 401 are sent again with a new token.  The vendor holds
-- the second group's request until the token has expired (a timed expiry
-- came too late on a loaded machine), then answers it.
--
SET sales_api.max_concurrency = 1;
SELECT ok FROM sales_api.mapal_push_sales('regress_mapal_push', 'SELECT * FROM pos_slots WHERE unit_id = 1001 LIMIT 1');
\! mockctl mark
\! mockctl fault hold --path business-unit/1002/
\! (for i in $(seq 600); do [ "$(mockctl held)" = 1 ] && break; sleep 0.1; done; mockctl tokens expire --vendor mapal; mockctl release) >/dev/null 2>&1 &
SELECT unit_id, slots_sent, http_status, ok, error FROM sales_api.mapal_push_sales('regress_mapal_push', 'pos_slots');
\! mockctl log --since-mark --fields method,path,status

--
-- Groups go out concurrently, at most sales_api.max_concurrency at a time
--
SET sales_api.max_concurrency = 3;
\! mockctl fault delay --path real-time-sales --delay-ms 1500 --count 3
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FILTER (WHERE ok) AS ok FROM sales_api.mapal_push_sales('regress_mapal_push', 'pos_slots');
SELECT clock_timestamp() - :'t0'::timestamptz < interval '3.5 s' AS concurrent;
RESET sales_api.max_concurrency;

--
-- Cancellation in the middle of a push
--
\! mockctl mark
\! mockctl fault delay --path business-unit/1002/ --delay-ms 8000
\! (sleep 1; psql -XAtq -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'pg_regress%' AND pid <> pg_backend_pid() AND state = 'active'" >/dev/null 2>&1) &
SELECT clock_timestamp() AS t0 \gset
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', 'pos_slots');
SELECT clock_timestamp() - :'t0'::timestamptz < interval '5 s' AS stopped_early;
\! mockctl faults-clear
-- the session is usable at once
SELECT unit_id, ok FROM sales_api.mapal_push_sales('regress_mapal_push', 'SELECT * FROM pos_slots WHERE slot_start = ''2026-11-20 12:00''');

--
-- Privileges: EXECUTE is revoked from PUBLIC; USAGE on the server is needed
--
CREATE ROLE regress_mapal_pos;
GRANT USAGE ON SCHEMA sales_api TO regress_mapal_pos;
CREATE USER MAPPING FOR regress_mapal_pos SERVER regress_mapal_push
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
SET ROLE regress_mapal_pos;
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', '{}'::sales_api.mapal_sale[]);
-- the slot helpers need no privilege on the server
SELECT sales_api.mapal_slot('regress_mapal_push', '2026-11-20 11:07:59+00');
RESET ROLE;
GRANT EXECUTE ON FUNCTION sales_api.mapal_push_sales(name, sales_api.mapal_sale[], text, boolean) TO regress_mapal_pos;
SET ROLE regress_mapal_pos;
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', '{}'::sales_api.mapal_sale[]);
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER regress_mapal_push TO regress_mapal_pos;
SET ROLE regress_mapal_pos;
SELECT * FROM sales_api.mapal_push_sales('regress_mapal_push', '{}'::sales_api.mapal_sale[]);
RESET ROLE;

DROP SERVER regress_mapal_push, regress_mapal_notz, regress_ct_push CASCADE;
REVOKE ALL ON SCHEMA sales_api FROM regress_mapal_pos;
REVOKE ALL ON FUNCTION sales_api.mapal_push_sales(name, sales_api.mapal_sale[], text, boolean) FROM regress_mapal_pos;
DROP ROLE regress_mapal_pos;
