-- 1. install sales_api and describe the two back offices (secrets only in user mappings)
CREATE EXTENSION sales_api;
\set token_url :mock_url/connect/token
\set sales_url :mock_url/mapal-sales
\set cashrec_url :mock_url/cashrec
\set ct_url :mock_url/connecteam
CREATE SERVER mapal FOREIGN DATA WRAPPER sales_api OPTIONS (
    vendor 'mapal', token_url :'token_url', sales_url :'sales_url', cashrec_url :'cashrec_url',
    timezone 'Europe/Madrid', slot_minutes '15');
CREATE USER MAPPING FOR CURRENT_USER SERVER mapal
    OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE SERVER connecteam FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER connecteam OPTIONS (api_key 'ct-key-123');
SELECT server_name, vendor, auth_ok, http_status, round(latency_ms::numeric, 1) AS latency_ms, token_expires_at
  FROM sales_api.check_server('mapal')
UNION ALL
SELECT server_name, vendor, auth_ok, http_status, round(latency_ms::numeric, 1), token_expires_at
  FROM sales_api.check_server('connecteam');
