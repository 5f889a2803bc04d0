/* sales_api--0.1.sql: the foundation (credentials model, HTTP core, check_server) */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION sales_api" to load this file. \quit

-- Nothing in this schema is for PUBLIC: an administrator grants USAGE on the
-- schema and EXECUTE on the functions a role needs (see README, Security).
REVOKE ALL ON SCHEMA sales_api FROM PUBLIC;

CREATE FUNCTION sales_api.fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'sales_api_fdw_validator'
LANGUAGE C STRICT;

COMMENT ON FUNCTION sales_api.fdw_validator(text[], oid) IS
'validates the options of sales_api servers and user mappings';

-- A validator-only wrapper, as contrib/dblink's dblink_fdw: servers hold a
-- vendor's settings, user mappings hold the secrets (hidden from other roles
-- by pg_user_mappings).
CREATE FOREIGN DATA WRAPPER sales_api VALIDATOR sales_api.fdw_validator;

COMMENT ON FOREIGN DATA WRAPPER sales_api IS
'servers: vendor mapal or connecteam with their URLs; user mappings: the credentials';

CREATE FUNCTION sales_api.version()
RETURNS text
AS 'MODULE_PATHNAME', 'sales_api_version'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION sales_api.check_server(
    server name,
    OUT server_name name,
    OUT vendor text,
    OUT auth_ok boolean,
    OUT http_status integer,
    OUT latency_ms double precision,
    OUT token_expires_at timestamptz,
    OUT message text)
RETURNS record
AS 'MODULE_PATHNAME', 'sales_api_check_server'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION sales_api.check_server(name) IS
'authenticates against a sales_api server with the current user''s mapping and reports the outcome';

REVOKE ALL ON FUNCTION sales_api.check_server(name) FROM PUBLIC;
REVOKE ALL ON FUNCTION sales_api.fdw_validator(text[], oid) FROM PUBLIC;
