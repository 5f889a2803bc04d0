--
-- 07_credential_cache: tokens and rate-limit states are cached per server
-- and user mapping and dropped when either changes, as postgres_fdw drops
-- its connections: after ALTER USER MAPPING the next call of the same
-- session sends the new secret, after DROP USER MAPPING nothing cached is
-- used, ALTER SERVER invalidates too, a call in flight keeps the
-- credentials it started with, and ALTER cycles leave the cache's memory flat
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS sales_api;
RESET client_min_messages;
\getenv mock_url MOCK_URL
\set token_url :mock_url/connect/token
\set sales_url :mock_url/mapal-sales
\set ct_url :mock_url/connecteam
-- the same token endpoint under another host name (the mock's certificate has both)
SELECT replace(:'token_url', '127.0.0.1', 'localhost') AS token_url_alias \gset
\set SHOW_CONTEXT never
\! mockctl reset
CREATE ROLE regress_cc_user;
CREATE SERVER cc_mapal FOREIGN DATA WRAPPER sales_api
  OPTIONS (vendor 'mapal', token_url :'token_url', sales_url :'sales_url', timezone 'UTC');
CREATE SERVER cc_ct FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR regress_cc_user SERVER cc_mapal
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE USER MAPPING FOR regress_cc_user SERVER cc_ct OPTIONS (api_key 'ct-key-123');
GRANT USAGE ON SCHEMA sales_api TO regress_cc_user;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA sales_api TO regress_cc_user;
GRANT USAGE ON FOREIGN SERVER cc_mapal, cc_ct TO regress_cc_user;
-- one slot pushed to Mapal: a call that uses the cached token
CREATE FUNCTION cc_push() RETURNS TABLE (ok boolean, http_status int, error text)
LANGUAGE sql AS $$
  SELECT ok, http_status, error FROM sales_api.mapal_push_sales('cc_mapal',
    ARRAY[ROW(1001, date '2026-11-20', 'EUR', 'EAT_IN', timestamp '2026-11-20 10:00',
              1.00, 1.10, 1, 1)::sales_api.mapal_sale])
$$;
GRANT ALL ON FUNCTION cc_push() TO regress_cc_user;
SET ROLE regress_cc_user;
-- a token is fetched once, then reused (the log lines below: what the mock
-- received since the mark, a token request with its grant type and the
-- length of the password sent, since the mock logs only lengths)
\! mockctl mark
SELECT * FROM cc_push();
SELECT * FROM cc_push();
\! mockctl log --since-mark --fields method,path,status,body | sed -E 's/\t(grant_type=password)&username=[^&]*&(password=[^&]*).*/\t\1 \2/; s/\t(grant_type=refresh_token)&.*/\t\1/; s/\t[[{].*//; s/\t$//'

--
-- (1) ALTER USER MAPPING: the next call of the session sends the new secret
--
-- Mapal: the vendor now knows only the new password (16 characters, the old has 8)
\! mockctl config mapal_users='{"pos-user": "pos-pass-rotated"}'
ALTER USER MAPPING FOR CURRENT_USER SERVER cc_mapal OPTIONS (SET password 'pos-pass-rotated');
\! mockctl mark
SELECT * FROM cc_push();
\! mockctl log --since-mark --fields method,path,status,body | sed -E 's/\t(grant_type=password)&username=[^&]*&(password=[^&]*).*/\t\1 \2/; s/\t(grant_type=refresh_token)&.*/\t\1/; s/\t[[{].*//; s/\t$//'
-- and back: the token fetched with the old password before is not reused,
-- the old password is sent again
\! mockctl config mapal_users='{"pos-user": "pos-pass"}'
ALTER USER MAPPING FOR CURRENT_USER SERVER cc_mapal OPTIONS (SET password 'pos-pass');
\! mockctl mark
SELECT * FROM cc_push();
\! mockctl log --since-mark --fields method,path,status,body | sed -E 's/\t(grant_type=password)&username=[^&]*&(password=[^&]*).*/\t\1 \2/; s/\t(grant_type=refresh_token)&.*/\t\1/; s/\t[[{].*//; s/\t$//'
-- Connecteam: a new API key (18 characters, the old has 10), the only one the vendor accepts
SELECT count(*) FROM sales_api.connecteam_locations('cc_ct');
SELECT minute_limit IS NOT NULL AS budget_known FROM sales_api.connecteam_rate_limit('cc_ct');
\! mockctl config connecteam_api_keys='["ct-key-rotated-456"]'
ALTER USER MAPPING FOR CURRENT_USER SERVER cc_ct OPTIONS (SET api_key 'ct-key-rotated-456');
-- the rate-limit state went with the old mapping
SELECT minute_limit IS NOT NULL AS budget_known FROM sales_api.connecteam_rate_limit('cc_ct');
\! mockctl mark
SELECT count(*) FROM sales_api.connecteam_locations('cc_ct');
\! mockctl log --since-mark --fields method,path,status,h:x-api-key
-- and back to the first key: that account's budget is still known (it is the
-- cluster's, in shared memory, kept per server and credentials), its token is not
\! mockctl config connecteam_api_keys='["ct-key-123"]'
ALTER USER MAPPING FOR CURRENT_USER SERVER cc_ct OPTIONS (SET api_key 'ct-key-123');
SELECT minute_limit IS NOT NULL AS budget_known FROM sales_api.connecteam_rate_limit('cc_ct');
\! mockctl mark
SELECT count(*) FROM sales_api.connecteam_locations('cc_ct');
\! mockctl log --since-mark --fields method,path,status,h:x-api-key

--
-- (2) DROP USER MAPPING: the next call fails and sends nothing
--
RESET ROLE;
DROP USER MAPPING FOR regress_cc_user SERVER cc_mapal;
SET ROLE regress_cc_user;
\! mockctl mark
SELECT * FROM cc_push();
\! mockctl count --since-mark
-- the same options again are a new mapping: its token is fetched, the
-- dropped mapping's is not used
RESET ROLE;
CREATE USER MAPPING FOR regress_cc_user SERVER cc_mapal
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
SET ROLE regress_cc_user;
\! mockctl mark
SELECT * FROM cc_push();
\! mockctl log --since-mark --fields method,path,status,body | sed -E 's/\t(grant_type=password)&username=[^&]*&(password=[^&]*).*/\t\1 \2/; s/\t(grant_type=refresh_token)&.*/\t\1/; s/\t[[{].*//; s/\t$//'

--
-- The user's own mapping against the PUBLIC one
--
RESET ROLE;
DROP USER MAPPING FOR regress_cc_user SERVER cc_mapal;
CREATE USER MAPPING FOR PUBLIC SERVER cc_mapal
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
SET ROLE regress_cc_user;
\! mockctl mark
SELECT * FROM cc_push();
\! mockctl log --since-mark --fields method,path,status,body | sed -E 's/\t(grant_type=password)&username=[^&]*&(password=[^&]*).*/\t\1 \2/; s/\t(grant_type=refresh_token)&.*/\t\1/; s/\t[[{].*//; s/\t$//'
-- a mapping of its own, created after a token was cached for the PUBLIC
-- one, is used by the next call (its password is wrong: refused)
RESET ROLE;
CREATE USER MAPPING FOR regress_cc_user SERVER cc_mapal
  OPTIONS (username 'pos-user', password 'wrong-pass', client_secret 'mapal-secret');
SET ROLE regress_cc_user;
\! mockctl mark
SELECT * FROM cc_push();
\! mockctl log --since-mark --fields method,path,status,body | sed -E 's/\t(grant_type=password)&username=[^&]*&(password=[^&]*).*/\t\1 \2/; s/\t(grant_type=refresh_token)&.*/\t\1/; s/\t[[{].*//; s/\t$//'
-- without it, the PUBLIC mapping's token, still valid, serves again
RESET ROLE;
DROP USER MAPPING FOR regress_cc_user SERVER cc_mapal;
SET ROLE regress_cc_user;
\! mockctl mark
SELECT * FROM cc_push();
\! mockctl log --since-mark --fields method,path,status,body | sed -E 's/\t(grant_type=password)&username=[^&]*&(password=[^&]*).*/\t\1 \2/; s/\t(grant_type=refresh_token)&.*/\t\1/; s/\t[[{].*//; s/\t$//'
-- no mapping at all
RESET ROLE;
DROP USER MAPPING FOR PUBLIC SERVER cc_mapal;
SET ROLE regress_cc_user;
\! mockctl mark
SELECT * FROM cc_push();
\! mockctl count --since-mark
RESET ROLE;
CREATE USER MAPPING FOR regress_cc_user SERVER cc_mapal
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');

--
-- (4) ALTER SERVER invalidates too
--
SET ROLE regress_cc_user;
SELECT ok FROM cc_push();
RESET ROLE;
ALTER SERVER cc_mapal OPTIONS (SET token_url :'token_url_alias');
SET ROLE regress_cc_user;
\! mockctl mark
SELECT * FROM cc_push();
-- the token came from the new URL
\! mockctl log --since-mark --fields method,path,status,h:host | sed -E 's/:[0-9]+$//'
RESET ROLE;
ALTER SERVER cc_mapal OPTIONS (SET token_url :'token_url');
SET ROLE regress_cc_user;
\! mockctl mark
SELECT * FROM cc_push();
\! mockctl log --since-mark --fields method,path,status,h:host | sed -E 's/:[0-9]+$//'
-- Connecteam: an option that changes no credential keeps the account's shared budget
SELECT count(*) FROM sales_api.connecteam_locations('cc_ct');
SELECT minute_limit IS NOT NULL AS budget_known FROM sales_api.connecteam_rate_limit('cc_ct');
RESET ROLE;
ALTER SERVER cc_ct OPTIONS (ADD scope 'sales_data.read');
SET ROLE regress_cc_user;
SELECT minute_limit IS NOT NULL AS budget_known FROM sales_api.connecteam_rate_limit('cc_ct');

--
-- A mapping dropped while a call is in flight in the same backend: the
-- call finishes with the credentials it started with (the cached token
-- was wiped with the mapping, so it fetches one of its own), the next
-- call has no mapping
--
SELECT ok FROM cc_push();
RESET ROLE;
CREATE FUNCTION cc_sale_dropping_mapping() RETURNS SETOF sales_api.mapal_sale
LANGUAGE plpgsql AS $$
BEGIN
  DROP USER MAPPING FOR CURRENT_USER SERVER cc_mapal;
  RETURN NEXT ROW(1001, date '2026-11-20', 'EUR', 'EAT_IN', timestamp '2026-11-20 10:15',
                  1.00, 1.10, 1, 1)::sales_api.mapal_sale;
END
$$;
GRANT ALL ON FUNCTION cc_sale_dropping_mapping() TO regress_cc_user;
SET ROLE regress_cc_user;
\! mockctl mark
SELECT ok, http_status, error
  FROM sales_api.mapal_push_sales('cc_mapal', 'SELECT * FROM cc_sale_dropping_mapping()');
\! mockctl log --since-mark --fields method,path,status,body | sed -E 's/\t(grant_type=password)&username=[^&]*&(password=[^&]*).*/\t\1 \2/; s/\t(grant_type=refresh_token)&.*/\t\1/; s/\t[[{].*//; s/\t$//'
SELECT * FROM cc_push();
RESET ROLE;
CREATE USER MAPPING FOR regress_cc_user SERVER cc_mapal
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');

--
-- (3) 300 ALTER USER MAPPING + call cycles: the cache does not grow
--
\! mockctl config mapal_users="$(python3 -c 'import json; print(json.dumps({"pos-user-%03d" % i: "pos-pass" for i in range(301)}))')" connecteam_api_keys="$(python3 -c 'import json; print(json.dumps(["ct-key-%03d" % i for i in range(301)]))')"
CREATE TEMP TABLE cc_cycle AS
SELECT i, format('ALTER USER MAPPING FOR CURRENT_USER SERVER cc_mapal OPTIONS (SET username %L)',
                 'pos-user-' || lpad(i::text, 3, '0')) AS alter_mapal,
       'SELECT auth_ok FROM sales_api.check_server(''cc_mapal'')' AS call_mapal,
       format('ALTER USER MAPPING FOR CURRENT_USER SERVER cc_ct OPTIONS (SET api_key %L)',
              'ct-key-' || lpad(i::text, 3, '0')) AS alter_ct,
       'SELECT count(*) FROM sales_api.connecteam_locations(''cc_ct'')' AS call_ct
  FROM generate_series(0, 300) i;
GRANT SELECT ON cc_cycle TO regress_cc_user;
-- everything sales_api keeps in this backend's memory
CREATE VIEW cc_memory AS
SELECT coalesce(sum(total_bytes), 0) AS bytes FROM pg_backend_memory_contexts
 WHERE name LIKE 'sales_api%' OR ident LIKE 'sales_api%' OR parent LIKE 'sales_api%';
-- one cycle first, so that the cache exists and its free lists are warm
SET ROLE regress_cc_user;
\set ECHO none
\o /dev/null
SELECT alter_mapal, call_mapal, alter_ct, call_ct FROM cc_cycle WHERE i = 0 \gexec
\o
\set ECHO all
RESET ROLE;
SELECT name, ident, parent FROM pg_backend_memory_contexts
 WHERE name LIKE 'sales_api%' OR ident LIKE 'sales_api%' OR parent LIKE 'sales_api%'
 ORDER BY level, name;
SELECT bytes AS bytes_before FROM cc_memory \gset
SET ROLE regress_cc_user;
\! mockctl mark
\set ECHO none
\o /dev/null
SELECT alter_mapal, call_mapal, alter_ct, call_ct FROM cc_cycle WHERE i > 0 ORDER BY i \gexec
\o
\set ECHO all
RESET ROLE;
-- every cycle fetched a token, with that cycle's user name, and made its
-- Connecteam call (the mock knows every cycle's user name and key)
\! mockctl count --since-mark --path /connect/token --status 200
\! mockctl log --since-mark --path /connect/token --fields body | sed -E 's/.*username=([^&]*).*/\1/' | uniq | wc -l
\! mockctl count --since-mark --path /connecteam/sales/v1/locations --status 200
\! mockctl count --since-mark
SELECT bytes - :bytes_before AS growth_bytes FROM cc_memory;

RESET ROLE;
DROP VIEW cc_memory;
DROP FUNCTION cc_push(), cc_sale_dropping_mapping();
DROP SERVER cc_mapal, cc_ct CASCADE;
DROP OWNED BY regress_cc_user;
DROP ROLE regress_cc_user;
