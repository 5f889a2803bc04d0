--
-- 03_privileges: who can see a mapping's secrets and who can call a vendor
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS sales_api;
RESET client_min_messages;
\getenv mock_url MOCK_URL
\set token_url :mock_url/connect/token
\set ct_url :mock_url/connecteam
\! mockctl reset
CREATE ROLE regress_sa_clerk;
CREATE ROLE regress_sa_other;
CREATE ROLE regress_sa_nobody;
CREATE SERVER p_mapal FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url :'token_url');
CREATE SERVER p_ct FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR regress_sa_clerk SERVER p_mapal
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE USER MAPPING FOR regress_sa_clerk SERVER p_ct OPTIONS (api_key 'ct-key-123');
CREATE USER MAPPING FOR regress_sa_other SERVER p_ct OPTIONS (api_key 'other-key');
GRANT USAGE ON SCHEMA sales_api TO regress_sa_clerk, regress_sa_other;
GRANT EXECUTE ON FUNCTION sales_api.check_server(name) TO regress_sa_clerk, regress_sa_other;
GRANT USAGE ON FOREIGN SERVER p_mapal, p_ct TO regress_sa_clerk, regress_sa_other;
-- another role sees that mappings exist, never their options
SET ROLE regress_sa_other;
SELECT srvname, usename, umoptions FROM pg_user_mappings WHERE srvname LIKE 'p\_%' ORDER BY 1, 2;
SELECT count(*) FROM pg_user_mapping;
-- ... and cannot call the vendor with someone else's mapping
SELECT auth_ok, message FROM sales_api.check_server('p_mapal');
RESET ROLE;
-- the mapping's own role sees its own options
SET ROLE regress_sa_clerk;
SELECT srvname, usename, umoptions FROM pg_user_mappings WHERE srvname = 'p_mapal';
SELECT server_name, vendor, auth_ok, http_status, message FROM sales_api.check_server('p_mapal');
SELECT server_name, vendor, auth_ok, http_status, message FROM sales_api.check_server('p_ct');
RESET ROLE;
-- without USAGE on the server the mapping is useless
REVOKE USAGE ON FOREIGN SERVER p_mapal FROM regress_sa_clerk;
SET ROLE regress_sa_clerk;
SELECT srvname, usename, umoptions FROM pg_user_mappings WHERE srvname = 'p_mapal';
SELECT auth_ok FROM sales_api.check_server('p_mapal');
RESET ROLE;
-- a role with no grants at all cannot reach the functions
SET ROLE regress_sa_nobody;
SELECT * FROM sales_api.check_server('p_ct');
RESET ROLE;
-- a PUBLIC mapping serves every role with USAGE that has no mapping of its own
CREATE USER MAPPING FOR PUBLIC SERVER p_mapal
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
GRANT USAGE ON FOREIGN SERVER p_mapal TO regress_sa_other;
SET ROLE regress_sa_other;
SELECT auth_ok, http_status FROM sales_api.check_server('p_mapal');
SELECT srvname, usename, umoptions FROM pg_user_mappings WHERE srvname = 'p_mapal' ORDER BY usename;
RESET ROLE;
\! mockctl log --fields method,path,status,auth
DROP SERVER p_mapal, p_ct CASCADE;
DROP OWNED BY regress_sa_clerk, regress_sa_other, regress_sa_nobody;
DROP ROLE regress_sa_clerk, regress_sa_other, regress_sa_nobody;
