--
-- 01_extension: install, upgrade path, privileges on the schema, GUCs
--
-- first version, then the upgrade path to the current one
CREATE EXTENSION sales_api VERSION '0.1';
SELECT extversion FROM pg_extension WHERE extname = 'sales_api';
ALTER EXTENSION sales_api UPDATE;
SELECT extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'sales_api') AS up_to_date
  FROM pg_extension WHERE extname = 'sales_api';
-- That the upgraded install defines the same objects as a fresh one is
-- test/scenarios/05_schema_fresh_vs_upgraded.sh: it compares every object,
-- definition and privilege.  The suites that follow use a fresh install, made
-- by the default version's own install script (built from sql/sales_api.sql).
DROP EXTENSION sales_api;
CREATE EXTENSION sales_api;
SELECT sales_api.version() = default_version AS version_matches
  FROM pg_available_extensions WHERE name = 'sales_api';
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
