--
-- 05_transport: TLS verification, plain http, timeouts, cancellation,
-- response size limit, redirects, token expiry and the retry after a 401
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS sales_api;
RESET client_min_messages;
\getenv mock_url MOCK_URL
\getenv mock_ss_url MOCK_SS_URL
\getenv mock_http_url MOCK_HTTP_URL
\set token_url :mock_url/connect/token
\set ss_token_url :mock_ss_url/connect/token
\set http_token_url :mock_http_url/connect/token
\set ct_url :mock_url/connecteam
\! mockctl reset
CREATE SERVER t_mapal FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url :'token_url');
CREATE SERVER t_selfsigned FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url :'ss_token_url');
CREATE SERVER t_ct FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER t_mapal
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE USER MAPPING FOR CURRENT_USER SERVER t_selfsigned
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE USER MAPPING FOR CURRENT_USER SERVER t_ct OPTIONS (client_id 'ct-client', client_secret 'ct-secret');
-- the same mock behind a self-signed certificate is refused
SELECT auth_ok, http_status, message LIKE '%certificate%' AS certificate_refused FROM sales_api.check_server('t_selfsigned');
-- without the private CA the mock's certificate is not trusted either
SET sales_api.ca_file = '';
SELECT auth_ok, message LIKE '%certificate%' AS certificate_refused FROM sales_api.check_server('t_mapal');
RESET sales_api.ca_file;
SELECT auth_ok FROM sales_api.check_server('t_mapal');
-- plain http: refused unless the superuser-only switch is on
SET sales_api.allow_http = on;
CREATE SERVER t_http FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url :'http_token_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER t_http
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
SELECT auth_ok, http_status FROM sales_api.check_server('t_http');
RESET sales_api.allow_http;
SELECT auth_ok FROM sales_api.check_server('t_http');
DROP SERVER t_http CASCADE;
-- a slow vendor meets sales_api.request_timeout
\! mockctl fault delay --path /connect/token --delay-ms 3000 --count 1
SET sales_api.request_timeout = '500ms';
SELECT auth_ok, http_status, message LIKE '%timed out%' AS timed_out FROM sales_api.check_server('t_mapal');
RESET sales_api.request_timeout;
-- statement_timeout cancels a transfer in flight
\! mockctl fault delay --path /connect/token --delay-ms 5000 --count 1
SET statement_timeout = '400ms';
SELECT auth_ok FROM sales_api.check_server('t_mapal');
RESET statement_timeout;
-- and so does pg_cancel_backend from another session
\! mockctl fault delay --path /connect/token --delay-ms 8000 --count 1
\! (sleep 1; psql -XAtq -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'pg_regress%' AND pid <> pg_backend_pid() AND state = 'active'" >/dev/null 2>&1) &
SELECT auth_ok FROM sales_api.check_server('t_mapal');
-- the backend is fine afterwards
SELECT auth_ok FROM sales_api.check_server('t_mapal');
-- connections are kept alive: three calls of one backend arrive over one connection
\! mockctl mark
SELECT auth_ok FROM sales_api.check_server('t_mapal');
SELECT auth_ok FROM sales_api.check_server('t_mapal');
SELECT auth_ok FROM sales_api.check_server('t_mapal');
\! mockctl log --since-mark --fields conn | sort -u | wc -l
-- a response over sales_api.max_response_size is refused, not buffered
\! mockctl fault oversized --path /connect/token --size-bytes 300000 --count 1
SET sales_api.max_response_size = '64kB';
SELECT auth_ok, message FROM sales_api.check_server('t_mapal');
RESET sales_api.max_response_size;
-- the limit stays below what one palloc can hold (1 GB)
SET sales_api.max_response_size = '1GB';
SET sales_api.max_response_size = '1048574kB';
SHOW sales_api.max_response_size;
RESET sales_api.max_response_size;
-- a redirect is never followed
\! mockctl fault redirect --path /connect/token --location https://example.com/connect/token --count 1
SELECT auth_ok, http_status, message FROM sales_api.check_server('t_mapal');
-- a 401 from the API: a new token is fetched once and the call succeeds
SELECT auth_ok, http_status FROM sales_api.check_server('t_ct');
\! mockctl mark
\! mockctl fault status --path /sales/v1/locations --status 401 --count 1
SELECT auth_ok, http_status FROM sales_api.check_server('t_ct');
\! mockctl log --since-mark --fields method,path,status
-- an expired token: the API answers 401, a new token is fetched, the call succeeds
\! mockctl tokens expire --vendor connecteam
\! mockctl mark
SELECT auth_ok, http_status FROM sales_api.check_server('t_ct');
\! mockctl log --since-mark --fields method,path,status
-- a revoked token and refused credentials: the 401 comes back as the answer
\! mockctl tokens revoke --vendor connecteam
\! mockctl fault status --path /oauth/v1/token --status 401 --count 5 --body '{"error":"invalid_client"}'
SELECT auth_ok, http_status, message FROM sales_api.check_server('t_ct');
\! mockctl faults-clear
-- a token that cannot be had is raised with the SQLSTATE of its failure
\set cashrec_url :mock_url/cashrec
CREATE SERVER t_tok FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url :'token_url', cashrec_url :'cashrec_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER t_tok
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
\! mockctl fault delay --path /connect/token --delay-ms 2000
SET sales_api.request_timeout = '500ms';
\set VERBOSITY terse
SELECT count(*) FROM sales_api.cashrec_fetch('t_tok', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
RESET sales_api.request_timeout;
\! mockctl fault oversized --path /connect/token --size-bytes 300000
SET sales_api.max_response_size = '64kB';
SELECT count(*) FROM sales_api.cashrec_fetch('t_tok', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
RESET sales_api.max_response_size;
\! mockctl fault status --path /connect/token --status 429 --header 'Retry-After: 7'
SELECT count(*) FROM sales_api.cashrec_fetch('t_tok', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
\! mockctl fault status --path /connect/token --status 503
SELECT count(*) FROM sales_api.cashrec_fetch('t_tok', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
\! mockctl fault redirect --path /connect/token --location https://example.com/connect/token
SELECT count(*) FROM sales_api.cashrec_fetch('t_tok', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
ALTER USER MAPPING FOR CURRENT_USER SERVER t_tok OPTIONS (SET password 'wrong-password');
SELECT count(*) FROM sales_api.cashrec_fetch('t_tok', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
\! mockctl faults-clear
DROP SERVER t_tok CASCADE;
-- a dead vendor: connection refused is reported
CREATE SERVER t_dead FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url 'https://127.0.0.1:9/connect/token');
CREATE USER MAPPING FOR CURRENT_USER SERVER t_dead
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
SELECT auth_ok, http_status, message LIKE '%connect%' AS connect_failed FROM sales_api.check_server('t_dead');
DROP SERVER t_mapal, t_selfsigned, t_ct, t_dead CASCADE;
