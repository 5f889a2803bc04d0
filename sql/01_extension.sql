--
-- 01_extension: install, upgrade path, privileges on the schema, GUCs
--
-- first version, then the upgrade path to the current one
CREATE EXTENSION sales_api VERSION '0.1';
SELECT extversion FROM pg_extension WHERE extname = 'sales_api';
ALTER EXTENSION sales_api UPDATE;
SELECT extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'sales_api') AS up_to_date
  FROM pg_extension WHERE extname = 'sales_api';
-- the objects of an upgraded install are those of a fresh one
CREATE TEMP TABLE upgraded AS
  SELECT pg_describe_object(classid, objid, 0) AS obj FROM pg_depend
   WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
     AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'sales_api');
DROP EXTENSION sales_api;
CREATE EXTENSION sales_api;
SELECT count(*) AS only_in_one_of_them FROM (
  (SELECT obj FROM upgraded EXCEPT
   SELECT pg_describe_object(classid, objid, 0) FROM pg_depend
    WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'sales_api'))
  UNION ALL
  (SELECT pg_describe_object(classid, objid, 0) FROM pg_depend
    WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'sales_api')
   EXCEPT SELECT obj FROM upgraded)) d;
DROP TABLE upgraded;
SELECT sales_api.version() = (SELECT default_version FROM pg_available_extensions WHERE name = 'sales_api') AS version_matches;
-- everything lives in schema sales_api; PUBLIC gets nothing that exposes data or calls a vendor
SELECT DISTINCT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'sales_api';
SELECT has_schema_privilege('public', 'sales_api', 'USAGE') AS public_schema_usage;
SELECT has_foreign_data_wrapper_privilege('public', 'sales_api', 'USAGE') AS public_fdw_usage;
SELECT has_function_privilege('public', 'sales_api.check_server(name)', 'EXECUTE') AS public_check_server;
-- the wrapper is validator-only
SELECT fdwname, fdwhandler = 0 AS no_handler, fdwvalidator::regproc FROM pg_foreign_data_wrapper WHERE fdwname = 'sales_api';
-- settings
SELECT name, boot_val, unit, context FROM pg_settings WHERE name LIKE 'sales\_api.%' ORDER BY name;
SET sales_api.no_such_setting = 1;
CREATE ROLE regress_sa_plain;
SET ROLE regress_sa_plain;
SET sales_api.ca_file = '/tmp/evil.pem';
SET sales_api.allow_http = on;
SET sales_api.max_response_size = '1GB';
SET sales_api.request_timeout = '2s';
RESET ROLE;
DROP ROLE regress_sa_plain;
