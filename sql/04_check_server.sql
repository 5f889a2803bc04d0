--
-- 04_check_server: the whole path for each vendor and each credential kind
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS sales_api;
RESET client_min_messages;
\getenv mock_url MOCK_URL
\set token_url :mock_url/connect/token
\set ct_url :mock_url/connecteam
\! mockctl reset
CREATE SERVER c_mapal FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url :'token_url');
CREATE SERVER c_ct FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE SERVER c_ct_oauth FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url', scope 'sales_data.read');
CREATE USER MAPPING FOR CURRENT_USER SERVER c_mapal
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE USER MAPPING FOR CURRENT_USER SERVER c_ct OPTIONS (api_key 'ct-key-123');
CREATE USER MAPPING FOR CURRENT_USER SERVER c_ct_oauth OPTIONS (client_id 'ct-client', client_secret 'ct-secret');
-- Mapal: password grant; the token's expiry is reported
SELECT server_name, vendor, auth_ok, http_status, latency_ms > 0 AS timed,
       token_expires_at BETWEEN now() + interval '59 min' AND now() + interval '61 min' AS expiry_in_an_hour,
       message
  FROM sales_api.check_server('c_mapal');
-- a second check uses the refresh token (grant types as the mock received them)
SELECT auth_ok, http_status FROM sales_api.check_server('c_mapal');
\! mockctl log --path /connect/token --fields body | sed -E 's/.*grant_type=([a-z_]+).*/\1/'
-- Connecteam with an API key: one authenticated GET, no expiry
SELECT server_name, vendor, auth_ok, http_status, token_expires_at, message FROM sales_api.check_server('c_ct');
-- Connecteam with OAuth client credentials
SELECT server_name, vendor, auth_ok, http_status, token_expires_at > now() AS has_expiry, message
  FROM sales_api.check_server('c_ct_oauth');
\! mockctl log --path /connecteam --fields method,path,query,status,auth
-- every request says who it is (version digits masked)
\! mockctl log --fields h:user-agent | sed -E 's/[0-9]+/N/g' | sort -u
-- wrong credentials are reported, not raised, and no secret is echoed
ALTER USER MAPPING FOR CURRENT_USER SERVER c_mapal OPTIONS (SET password 'wrong-password');
SELECT auth_ok, http_status, message FROM sales_api.check_server('c_mapal');
ALTER USER MAPPING FOR CURRENT_USER SERVER c_ct OPTIONS (SET api_key 'wrong-key');
SELECT auth_ok, http_status, message FROM sales_api.check_server('c_ct');
ALTER USER MAPPING FOR CURRENT_USER SERVER c_ct_oauth OPTIONS (SET client_secret 'wrong-secret');
SELECT auth_ok, http_status, message FROM sales_api.check_server('c_ct_oauth');
ALTER USER MAPPING FOR CURRENT_USER SERVER c_mapal OPTIONS (SET password 'pos-pass');
-- any 2xx answer of a token endpoint carries the token
\! mockctl fault status --path /connect/token --status 201 --body '{"access_token":"tok-201","token_type":"Bearer","expires_in":3600}'
SELECT auth_ok, http_status, message FROM sales_api.check_server('c_mapal');
-- (that answer had no refresh token, and the ALTERs above dropped the one
-- held before: a check from the mock brings one, so that the refusals
-- below meet both the refresh grant and the password grant)
SELECT auth_ok, http_status FROM sales_api.check_server('c_mapal');
-- a refusal is described by its OAuth error fields only, never by the body,
-- which could hold a token whatever the status says
\! mockctl fault status --path /connect/token --status 400 --count 2 --body '{"access_token":"leaked-secret-token","error":"invalid_grant","error_description":"The user is locked."}'
SELECT auth_ok, http_status, message, message LIKE '%leaked%' AS leaked FROM sales_api.check_server('c_mapal');
\! mockctl fault status --path /connect/token --status 502 --content-type text/plain --body 'access_token=leaked-secret-token'
SELECT auth_ok, http_status, message, message LIKE '%leaked%' AS leaked FROM sales_api.check_server('c_mapal');
\! mockctl fault status --path /connect/token --status 403 --body '{"access_token":"leaked-secret-token"}'
SELECT auth_ok, http_status, message, message LIKE '%leaked%' AS leaked FROM sales_api.check_server('c_mapal');
DROP SERVER c_mapal, c_ct, c_ct_oauth CASCADE;
