--
-- 31_connecteam_ratelimit: pacing by the account's x-ratelimit-* budget,
-- waiting instead of a 429, backing off after a 429, giving up clearly
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS sales_api;
RESET client_min_messages;
\getenv mock_url MOCK_URL
\set ct_url :mock_url/connecteam
\! mockctl reset
\! mockctl ct-add-location 'Store Centre' --id 1
CREATE SERVER rl FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER rl OPTIONS (api_key 'ct-key-123');
CREATE TEMP TABLE sales AS
SELECT g AS n, 1::bigint AS location_id, 'SALE'::text AS sale_type,
       timestamptz '2026-11-20 08:00:00+00' + g * interval '1 second' AS created_at,
       1.00 AS final_sale_amount, NULL::numeric AS tax_amount, NULL::text AS currency,
       'S-' || g AS reference
  FROM generate_series(1, 1200) g;

--
-- A 429 is answered by a backoff and the same request sent again
--
-- without Retry-After (the headers say there is budget left): exponential backoff
\! mockctl fault status --status 429 --count 2 --path /transactions$
SELECT count(*) AS rows, count(*) FILTER (WHERE ok) AS ok, count(DISTINCT transaction_id) AS ids
  FROM sales_api.connecteam_post_transactions('rl', 'SELECT * FROM sales WHERE n <= 100');
\! mockctl log --path /transactions --fields method,status,fault
\! mockctl ct-transactions | wc -l
-- with Retry-After
\! mockctl mark
\! mockctl fault status --status 429 --count 1 --path /locations$ --header 'Retry-After: 1'
SELECT clock_timestamp() AS t0 \gset
SELECT * FROM sales_api.connecteam_locations('rl');
SELECT clock_timestamp() - :'t0'::timestamptz >= interval '1 s' AS waited_retry_after;
\! mockctl log --since-mark --fields method,status,fault
-- Retry-After: 0 (or a date already past) is no hint: two 429s with it are
-- waited out by the backoff, not sent again at once (until 0.8.0 they were,
-- and a vendor answering so without end was posted to in a loop)
\! mockctl mark
\! mockctl fault status --status 429 --count 2 --path /locations$ --header 'Retry-After: 0'
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) >= 0 AS answered FROM sales_api.connecteam_locations('rl');
SELECT clock_timestamp() - :'t0'::timestamptz >= interval '1 s' AS backed_off;
\! mockctl log --since-mark --fields method,status,fault
-- the 429s of one wave are one step of the backoff, not one each: four
-- requests answered 429 together wait 0.5-1 s, not 4-8 s
\! mockctl mark
\! mockctl fault status --status 429 --count 4 --path /transactions$
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) AS rows, count(*) FILTER (WHERE ok) AS ok, count(DISTINCT transaction_id) AS ids
  FROM sales_api.connecteam_post_transactions('rl', 'SELECT * FROM sales WHERE n > 100 AND n <= 500');
SELECT clock_timestamp() - :'t0'::timestamptz < interval '3 s' AS one_backoff_step;
\! mockctl log --since-mark --method POST --fields status | sort | uniq -c | sed 's/^ *//'

--
-- A limit of 5 requests per (shortened, 3 s) window: 12 requests go out in
-- waves the budget allows, waiting for each reset, never meeting a 429
--
\! mockctl config connecteam_minute_limit=5 connecteam_window_seconds=3
-- a second server has no state yet: its first request learns the budget
CREATE SERVER rl5 FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER rl5 OPTIONS (api_key 'ct-key-123');
SET sales_api.rate_limit_max_wait = '10s';
\! mockctl mark
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) AS rows, count(*) FILTER (WHERE ok) AS ok, count(DISTINCT transaction_id) AS ids,
       count(DISTINCT http_status) AS statuses, count(error) AS errors
  FROM sales_api.connecteam_post_transactions('rl5', 'sales');
-- 12 requests in at least two more windows (the first wave of 5 is free)
SELECT clock_timestamp() - :'t0'::timestamptz >= interval '4 s' AS waited_for_resets;
\! mockctl count --since-mark --method POST
\! mockctl count --since-mark --status 429
\! mockctl log --since-mark --method POST --fields body | python3 -c "import sys, json; print(sum(len(json.loads(l)['transactionsCreateRequest']) for l in sys.stdin))"
SELECT minute_limit, minute_remaining, minute_reset > now() - interval '5 s' AS minute_reset_recent,
       day_limit > 0 AS day_limit, day_remaining >= 0 AS day_remaining, observed_at IS NOT NULL AS observed
  FROM sales_api.connecteam_rate_limit('rl5');

--
-- A wait longer than sales_api.rate_limit_max_wait: what could be sent is
-- sent, the rest is reported as not sent (a WARNING and the rows' error)
--
\! mockctl config connecteam_minute_limit=2 connecteam_window_seconds=60
CREATE SERVER rl2 FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER rl2 OPTIONS (api_key 'ct-key-123');
SET sales_api.rate_limit_max_wait = '1s';
\! mockctl mark
\set VERBOSITY terse
SELECT ok, http_status, count(*) AS rows, count(transaction_id) AS ids,
       min(substr(reference, 3)::int) AS first, max(substr(reference, 3)::int) AS last, min(left(error, 35)) AS error
  FROM sales_api.connecteam_post_transactions('rl2', 'SELECT * FROM sales WHERE n <= 500 ORDER BY n')
 GROUP BY 1, 2 ORDER BY 1, 2;
\! mockctl count --since-mark --method POST
\! mockctl count --since-mark --status 429
-- nothing can be sent now: a plain error (the hint says when to retry)
SELECT count(*) FROM sales_api.connecteam_post_transactions('rl2', 'SELECT * FROM sales WHERE n <= 10');
SELECT count(*) FROM sales_api.connecteam_locations('rl2');
SELECT * FROM sales_api.connecteam_daily_sales('rl2', '2026-11-20', '2026-11-20');
\set VERBOSITY default
-- the SQLSTATE and the hint
DO $$
DECLARE
    st text; hint text;
BEGIN
    PERFORM sales_api.connecteam_locations('rl2');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, hint = PG_EXCEPTION_HINT;
    RAISE NOTICE 'SQLSTATE %: %', st, regexp_replace(hint, 'after .* or', 'after <reset time>, or');
END $$;
\! mockctl count --since-mark --status 429
SELECT minute_limit, minute_remaining, minute_reset > now() + interval '30 s' AS resets_later
  FROM sales_api.connecteam_rate_limit('rl2');
-- with no waiting allowed at all the same
SET sales_api.rate_limit_max_wait = 0;
\set VERBOSITY terse
SELECT count(*) FROM sales_api.connecteam_locations('rl2');
\set VERBOSITY default

-- the day budget works the same way; its reset (next midnight UTC) is
-- normally beyond any wait
\! mockctl config connecteam_minute_limit=100 connecteam_day_limit=2 connecteam_window_seconds=60
CREATE SERVER rld FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER rld OPTIONS (api_key 'ct-key-123');
SET sales_api.rate_limit_max_wait = '1s';
\set VERBOSITY terse
SELECT ok, count(*) AS rows, regexp_replace(error, ' until .*', '') AS error
  FROM sales_api.connecteam_post_transactions('rld', 'SELECT * FROM sales WHERE n <= 300')
 GROUP BY 1, 3 ORDER BY 1;
\set VERBOSITY default
SELECT day_limit, day_remaining FROM sales_api.connecteam_rate_limit('rld');
\! mockctl config connecteam_day_limit=1000000 connecteam_minute_limit=2

--
-- A wait can be cancelled
--
SET sales_api.rate_limit_max_wait = '5min';
\! (sleep 1; psql -XAtq -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'pg_regress%' AND pid <> pg_backend_pid() AND state = 'active'" >/dev/null 2>&1) &
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FROM sales_api.connecteam_locations('rl2');
SELECT clock_timestamp() - :'t0'::timestamptz < interval '10 s' AS cancelled_promptly;
-- the only 429s of this test are the nine injected above
\! mockctl count --status 429

--
-- Reset headers that are not plausible epoch seconds (garbage that would
-- overflow, or seconds relative to now) are ignored, not trusted
--
\! mockctl config connecteam_minute_limit=100000 connecteam_window_seconds=60
CREATE SERVER rlx FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER rlx OPTIONS (api_key 'ct-key-123');
\! mockctl fault status --path /locations$ --status 200 --body '{"data":{"locations":[]}}' --header 'x-ratelimit-minute-limit: 5' --header 'x-ratelimit-minute-remaining: 0' --header 'x-ratelimit-minute-reset: 99999999999999' --header 'x-ratelimit-day-limit: 100' --header 'x-ratelimit-day-remaining: 0' --header 'x-ratelimit-day-reset: 30'
SELECT count(*) FROM sales_api.connecteam_locations('rlx');
SELECT minute_limit, minute_remaining, minute_reset, day_limit, day_remaining, day_reset
  FROM sales_api.connecteam_rate_limit('rlx');
-- so the next call is neither blocked nor delayed
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FROM sales_api.connecteam_locations('rlx');
SELECT clock_timestamp() - :'t0'::timestamptz < interval '5 s' AS not_delayed;
SELECT minute_limit, minute_remaining >= 0 AS minute_remaining, minute_reset IS NOT NULL AS minute_reset
  FROM sales_api.connecteam_rate_limit('rlx');

--
-- Once a request has been answered, nothing raises: the ids of the rows
-- already stored must come back
--
-- a wait that would outlast statement_timeout is not started: the rest is
-- reported as not sent instead of the whole call being cancelled
\! mockctl config connecteam_minute_limit=1 connecteam_window_seconds=30
CREATE SERVER rlt FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER rlt OPTIONS (api_key 'ct-key-123');
SET sales_api.rate_limit_max_wait = '1min';
SET statement_timeout = '5s';
\set VERBOSITY terse
SELECT ok, count(*) AS rows, count(transaction_id) AS ids,
       min(substr(reference, 3)::int) AS first, max(substr(reference, 3)::int) AS last,
       regexp_replace(min(error), 'until .* for', 'until <reset> for') AS error
  FROM sales_api.connecteam_post_transactions('rlt', 'SELECT * FROM sales WHERE n <= 200')
 GROUP BY 1 ORDER BY 1;
\set VERBOSITY default
RESET statement_timeout;
-- a token that cannot be renewed between two waves: the rows of the first
-- wave keep their ids, the others are reported as not sent
\! mockctl config connecteam_minute_limit=1 connecteam_window_seconds=3 connecteam_token_ttl=4
CREATE SERVER rlo FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER rlo OPTIONS (client_id 'ct-client', client_secret 'ct-secret');
\! (sleep 1; mockctl fault status --path /oauth/v1/token --status 500 --count 5 >/dev/null) &
SELECT ok, http_status, count(*) AS rows, count(transaction_id) AS ids,
       min(substr(reference, 3)::int) AS first, max(substr(reference, 3)::int) AS last, min(error) AS error
  FROM sales_api.connecteam_post_transactions('rlo', 'SELECT * FROM sales WHERE n <= 200')
 GROUP BY 1, 2 ORDER BY 1, 2;
\! mockctl faults-clear
\! mockctl count --method POST --path /oauth/v1/token --status 500
\! mockctl config connecteam_token_ttl=3600

RESET sales_api.rate_limit_max_wait;
SET client_min_messages = warning;
DROP SERVER rl, rl5, rl2, rld, rlt, rlo, rlx CASCADE;
RESET client_min_messages;
