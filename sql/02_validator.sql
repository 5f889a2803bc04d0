--
-- 02_validator: servers and user mappings are checked when they are created
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS sales_api;
RESET client_min_messages;
-- servers
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api;
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'sap');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', base_url 'https://api.connecteam.com');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', slot_minutes '15');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', password 'not-here');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', bogus 'x');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url 'ftp://login.example.com/token');
-- a malformed value is an invalid attribute value, not an invalid option name
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url 'login.example.com/token');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url 'https:///token');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url 'https://user:pw@login.example.com/token');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url 'https://login.example.com/token?x=1');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', sales_url 'https://api.example.com/sa les');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', sales_url E'https://api.example.com/\nx');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', cashrec_url 'http://cashrec.example.com');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url '');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', slot_minutes '7');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', slot_minutes '0');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', slot_minutes 'fifteen');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', timezone 'Mars/Olympus_Mons');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', sales_method 'PATCH');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', cashrec_max_days '400');
CREATE SERVER v_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', auth 'password');
-- good ones
CREATE SERVER v_mapal FOREIGN DATA WRAPPER sales_api
  OPTIONS (vendor 'mapal', timezone 'Europe/Madrid', slot_minutes '30', sales_method 'PUT');
CREATE SERVER v_ct FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url 'https://api.connecteam.com/');
ALTER SERVER v_mapal OPTIONS (ADD bogus 'x');
ALTER SERVER v_mapal OPTIONS (SET slot_minutes '45');
ALTER SERVER v_mapal OPTIONS (SET slot_minutes '60');
ALTER SERVER v_mapal OPTIONS (DROP vendor);
SELECT srvname, srvoptions FROM pg_foreign_server WHERE srvname LIKE 'v\_%' ORDER BY 1;
-- plain http only with the superuser-only test switch
SET sales_api.allow_http = on;
CREATE SERVER v_http FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url 'http://127.0.0.1:9');
RESET sales_api.allow_http;
-- user mappings: options must form exactly one complete credential set
CREATE USER MAPPING FOR CURRENT_USER SERVER v_mapal OPTIONS (username 'u');
CREATE USER MAPPING FOR CURRENT_USER SERVER v_mapal OPTIONS (username 'u', password 'p');
CREATE USER MAPPING FOR CURRENT_USER SERVER v_mapal OPTIONS (username 'u', password 'p', client_secret 's', api_key 'k');
CREATE USER MAPPING FOR CURRENT_USER SERVER v_mapal OPTIONS (username 'u', password 'p', client_secret 's', token_url 'https://x');
CREATE USER MAPPING FOR CURRENT_USER SERVER v_mapal OPTIONS (username 'u', password '', client_secret 's');
CREATE USER MAPPING FOR CURRENT_USER SERVER v_mapal OPTIONS (username E'u\tx', password 'p', client_secret 's');
CREATE USER MAPPING FOR CURRENT_USER SERVER v_ct OPTIONS (api_key 'k', client_secret 's');
CREATE USER MAPPING FOR CURRENT_USER SERVER v_ct OPTIONS (client_id 'c');
CREATE USER MAPPING FOR CURRENT_USER SERVER v_ct OPTIONS (secret 'k');
CREATE USER MAPPING FOR CURRENT_USER SERVER v_ct;
CREATE USER MAPPING FOR CURRENT_USER SERVER v_mapal OPTIONS (username 'u', password 'p', client_secret 's');
CREATE USER MAPPING FOR CURRENT_USER SERVER v_ct OPTIONS (api_key 'k');
ALTER USER MAPPING FOR CURRENT_USER SERVER v_ct OPTIONS (ADD client_id 'c');
-- a mapping of the wrong vendor passes the validator (it cannot see the server) but not a call
CREATE USER MAPPING FOR PUBLIC SERVER v_http OPTIONS (username 'u', password 'p', client_secret 's');
SELECT * FROM sales_api.check_server('v_http');
-- unknown servers, servers of another wrapper
SELECT * FROM sales_api.check_server('no_such_server');
SELECT * FROM sales_api.check_server(NULL);
CREATE FOREIGN DATA WRAPPER v_other_fdw;
CREATE SERVER v_other FOREIGN DATA WRAPPER v_other_fdw;
SELECT * FROM sales_api.check_server('v_other');
DROP SERVER v_other;
DROP FOREIGN DATA WRAPPER v_other_fdw;
DROP SERVER v_mapal, v_ct, v_http CASCADE;
