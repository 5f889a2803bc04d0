--
-- 06_encoding: vendor text (always UTF-8) into and out of the database
-- encoding; what cannot be database text is SA502, never a silent change
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS sales_api;
RESET client_min_messages;
\getenv mock_url MOCK_URL
\! mockctl reset
\set token_url :mock_url/connect/token
\set cashrec_url :mock_url/cashrec
\set ct_url :mock_url/connecteam
\set SHOW_CONTEXT never
CREATE SERVER regress_enc_mapal FOREIGN DATA WRAPPER sales_api
  OPTIONS (vendor 'mapal', token_url :'token_url', cashrec_url :'cashrec_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER regress_enc_mapal
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE SERVER regress_enc_ct FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER regress_enc_ct OPTIONS (api_key 'ct-key-123');

--
-- UTF8 database: non-ASCII text arrives intact
--
\! mockctl fault status --path cashSheet --status 200 --body '[{"centerId":101,"cashSheetId":"CS-é","tillId":"Caja Ñ","currencyId":"EUR","cashierName":"Zoë \u6771\u4eac"}]'
SELECT cash_sheet_id, till_id, record->>'cashierName' AS cashier
  FROM sales_api.cashrec_fetch('regress_enc_mapal', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
-- bytes that are not UTF-8: the parser refuses the answer
\! mockctl fault status --path cashSheet --status 200 --body-b64 "$(printf '[{"centerId":101,"cashSheetId":"CS-\377"}]' | base64 -w0)"
SELECT count(*) FROM sales_api.cashrec_fetch('regress_enc_mapal', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
-- a NUL (\u0000) in a text column, and in a field only the jsonb record keeps
\! mockctl fault status --path cashSheet --status 200 --body '[{"centerId":101,"cashSheetId":"CS-1","currencyId":"E\u0000R"}]'
SELECT count(*) FROM sales_api.cashrec_fetch('regress_enc_mapal', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
\! mockctl fault status --path cashSheet --status 200 --body '[{"centerId":101,"cashSheetId":"CS-2","note":{"text":"a\u0000b"}}]'
SELECT count(*) FROM sales_api.cashrec_fetch('regress_enc_mapal', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
-- ... and in a location name from Connecteam
\! mockctl fault status --path /locations$ --status 200 --body '{"data":{"locations":[{"id":7,"name":"N\u0000l","isActive":true}]}}'
SELECT * FROM sales_api.connecteam_locations('regress_enc_ct');
\echo :LAST_ERROR_SQLSTATE
-- a vendor's error message is cleaned, never an encoding error: bytes that
-- are not UTF-8 become '?', and a long message is cut on a character boundary
\! mockctl fault status --path cashSheet --status 400 --body-b64 "$(printf '{"code":100,"message":"bad \377\376 value"}' | base64 -w0)"
SELECT count(*) FROM sales_api.cashrec_fetch('regress_enc_mapal', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\! mockctl fault status --path cashSheet --status 400 --body "$(python3 -c 'import json; print(json.dumps({"code": 100, "message": "a" * 299 + "é tail"}))')"
DO $$
BEGIN
    PERFORM sales_api.cashrec_fetch('regress_enc_mapal', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
EXCEPTION WHEN OTHERS THEN
    DECLARE det text;
    BEGIN
        GET STACKED DIAGNOSTICS det = PG_EXCEPTION_DETAIL;
        RAISE NOTICE 'detail ends with %, % characters of message', right(det, 5),
            length(substring(det FROM 'code 100: (.*)$'));
    END;
END $$;
\! mockctl faults-clear

--
-- A LATIN1 database: text is converted both ways; a character LATIN1 lacks
-- is SA502 in data and '?' in a message
--
CREATE DATABASE regress_sales_api_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\set orig_db :DBNAME
\c regress_sales_api_latin1
\encoding UTF8
SET client_min_messages = warning;
CREATE EXTENSION sales_api;
RESET client_min_messages;
SHOW server_encoding;
CREATE SERVER regress_enc_mapal FOREIGN DATA WRAPPER sales_api
  OPTIONS (vendor 'mapal', token_url :'token_url', cashrec_url :'cashrec_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER regress_enc_mapal
  OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE SERVER regress_enc_ct FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER regress_enc_ct OPTIONS (api_key 'ct-key-123');
-- out: the body and the query string carry UTF-8
\! mockctl mark
SELECT name FROM sales_api.connecteam_create_location('regress_enc_ct', 'Zürich Süd');
SELECT id, name FROM sales_api.connecteam_locations('regress_enc_ct', names => ARRAY['Zürich Süd']);
\! mockctl log --since-mark --fields method,query,body
-- in: text LATIN1 can hold is converted, text it cannot hold is refused
\! mockctl fault status --path cashSheet --status 200 --body '[{"centerId":101,"cashSheetId":"CS-ü","tillId":"Caja Ñ"}]'
SELECT cash_sheet_id, till_id, record->>'cashSheetId' AS id_in_record
  FROM sales_api.cashrec_fetch('regress_enc_mapal', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\! mockctl fault status --path cashSheet --status 200 --body '[{"centerId":101,"cashSheetId":"CS-東京"}]'
SELECT count(*) FROM sales_api.cashrec_fetch('regress_enc_mapal', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
\! mockctl fault status --path cashSheet --status 200 --body '[{"centerId":101,"cashSheetId":"CS-3","cashierName":"東京"}]'
SELECT count(*) FROM sales_api.cashrec_fetch('regress_enc_mapal', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\echo :LAST_ERROR_SQLSTATE
\! mockctl ct-add-location '東京' --id 9 > /dev/null
SELECT * FROM sales_api.connecteam_locations('regress_enc_ct', location_ids => '{9}');
\echo :LAST_ERROR_SQLSTATE
\! mockctl fault status --path cashSheet --status 400 --body '{"code":100,"message":"Zentrum Süd in 東京 unknown"}'
SELECT count(*) FROM sales_api.cashrec_fetch('regress_enc_mapal', '2026-11-20 00:00', '2026-11-20 23:59:59', '{101}');
\! mockctl faults-clear
\c :orig_db
DROP DATABASE regress_sales_api_latin1;
DROP SERVER regress_enc_mapal, regress_enc_ct CASCADE;
