/* sales_api--0.1--0.2.sql: Mapal (real-time sales, Cashrec) and Connecteam (Sales Data API) */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION sales_api UPDATE TO '0.2'" to load this file. \quit

-------------------------------------------------------------------------------
-- Mapal (src/mapal.c, src/cashrec.c)
-------------------------------------------------------------------------------

-- @@MAPAL-BEGIN@@

-- One time slot of one business unit's sales, as mapal_push_sales() takes it.
-- slot_start is local time of the unit; business_day is the slot's date.
CREATE TYPE sales_api.mapal_sale AS (
    unit_id       bigint,
    business_day  date,
    currency_id   text,
    sales_type_id text,
    slot_start    timestamp,
    net_sales     numeric,
    gross_sales   numeric,
    num_checks    integer,
    num_guests    integer
);

COMMENT ON TYPE sales_api.mapal_sale IS
'one Mapal real-time sales slot: unit, business day, currency, sales type, local slot start, totals';

CREATE FUNCTION sales_api.mapal_push_sales(
    server name,
    sales sales_api.mapal_sale[],
    on_duplicate text DEFAULT 'sum',
    raise_on_error boolean DEFAULT false)
RETURNS TABLE (
    unit_id bigint,
    business_day date,
    slots_sent integer,
    http_status integer,
    ok boolean,
    error text,
    duration_ms double precision)
AS 'MODULE_PATHNAME', 'sales_api_mapal_push_sales'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION sales_api.mapal_push_sales(name, sales_api.mapal_sale[], text, boolean) IS
'sends slot totals to Mapal Real-time Sales, one request per unit and business day; one result row per request';

-- Same, from a relation name or a query whose columns carry the names of
-- sales_api.mapal_sale.  An untyped literal ('my_table', $$SELECT ...$$)
-- resolves to this form, because PostgreSQL prefers the string category.
CREATE FUNCTION sales_api.mapal_push_sales(
    server name,
    source text,
    on_duplicate text DEFAULT 'sum',
    raise_on_error boolean DEFAULT false)
RETURNS TABLE (
    unit_id bigint,
    business_day date,
    slots_sent integer,
    http_status integer,
    ok boolean,
    error text,
    duration_ms double precision)
AS 'MODULE_PATHNAME', 'sales_api_mapal_push_sales_query'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION sales_api.mapal_push_sales(name, text, text, boolean) IS
'sends slot totals read from a relation or query (columns named as in sales_api.mapal_sale) to Mapal Real-time Sales';

CREATE FUNCTION sales_api.mapal_slot(server name, ts timestamptz)
RETURNS timestamp
AS 'MODULE_PATHNAME', 'sales_api_mapal_slot'
LANGUAGE C STABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION sales_api.mapal_slot(name, timestamptz) IS
'local start of the Mapal slot holding ts, for the server''s slot_minutes and timezone (else the session TimeZone)';

CREATE FUNCTION sales_api.time_slot(ts timestamptz, slot_minutes integer, tz text)
RETURNS timestamp
AS 'MODULE_PATHNAME', 'sales_api_time_slot'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION sales_api.time_slot(timestamptz, integer, text) IS
'local start, in time zone tz, of the slot of slot_minutes minutes holding ts';

CREATE FUNCTION sales_api.cashrec_fetch(
    server name,
    start_time timestamp,
    end_time timestamp,
    centers bigint[])
RETURNS TABLE (
    center_id bigint,
    cash_sheet_id text,
    business_day date,
    shift_id integer,
    till_id text,
    opened_at timestamp,
    closed_at timestamp,
    currency_id text,
    net_sales numeric,
    gross_sales numeric,
    num_checks integer,
    expected_cash numeric,
    counted_cash numeric,
    difference numeric,
    tenders jsonb,
    record jsonb)
AS 'MODULE_PATHNAME', 'sales_api_cashrec_fetch'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION sales_api.cashrec_fetch(name, timestamp, timestamp, bigint[]) IS
'cash-sheet records of Mapal Cashrec for a period (inclusive, local time) and centres, typed and as jsonb';

REVOKE ALL ON FUNCTION sales_api.mapal_push_sales(name, sales_api.mapal_sale[], text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION sales_api.mapal_push_sales(name, text, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION sales_api.cashrec_fetch(name, timestamp, timestamp, bigint[]) FROM PUBLIC;
-- @@MAPAL-END@@

-------------------------------------------------------------------------------
-- Connecteam (src/connecteam.c)
-------------------------------------------------------------------------------

-- @@CONNECTEAM-BEGIN@@

-- The sale types of Connecteam's OpenAPI document (schema SaleType).
CREATE TYPE sales_api.connecteam_sale_type AS ENUM (
    'SALE', 'VOID', 'RECALL', 'REFUND', 'SPLIT', 'UPDATE', 'TRANSFER',
    'FLOAT', 'TRANSITORY', 'CROSS_BL', 'CANCEL', 'MANUAL');

COMMENT ON TYPE sales_api.connecteam_sale_type IS
'Connecteam sale types (saleType of POST /sales/v1/transactions)';

-- One transaction to create.  reference is the caller's own key, returned
-- with the vendor's transactionId and never sent.
CREATE TYPE sales_api.connecteam_transaction AS (
    location_id bigint,
    sale_type sales_api.connecteam_sale_type,
    created_at timestamptz,
    final_sale_amount numeric,
    tax_amount numeric,
    currency text,
    reference text);

COMMENT ON TYPE sales_api.connecteam_transaction IS
'one Connecteam transaction for connecteam_post_transactions: tax_amount and currency may be NULL (left out of the request)';

-- One day's projected sales for connecteam_set_projected_sales.
CREATE TYPE sales_api.connecteam_projected_sale AS (
    sales_date date,
    projected_sales numeric);

COMMENT ON TYPE sales_api.connecteam_projected_sale IS
'one day''s projected sales for connecteam_set_projected_sales';

CREATE FUNCTION sales_api.connecteam_post_transactions(
    server name,
    transactions sales_api.connecteam_transaction[])
RETURNS TABLE (reference text, transaction_id text, location_id bigint,
               http_status integer, ok boolean, error text)
AS 'MODULE_PATHNAME', 'sales_api_connecteam_post_transactions'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION sales_api.connecteam_post_transactions(name, sales_api.connecteam_transaction[]) IS
'creates Connecteam transactions in requests of up to 100, paced by the rate limit; one result row per input row, in input order';

CREATE FUNCTION sales_api.connecteam_post_transactions(
    server name,
    source text)
RETURNS TABLE (reference text, transaction_id text, location_id bigint,
               http_status integer, ok boolean, error text)
AS 'MODULE_PATHNAME', 'sales_api_connecteam_post_transactions_query'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION sales_api.connecteam_post_transactions(name, text) IS
'as connecteam_post_transactions(name, connecteam_transaction[]), with the rows of a relation or query whose columns carry the attribute names of connecteam_transaction';

CREATE FUNCTION sales_api.connecteam_locations(
    server name,
    location_ids bigint[] DEFAULT NULL,
    names text[] DEFAULT NULL,
    is_active boolean DEFAULT NULL)
RETURNS TABLE (id bigint, name text, is_active boolean)
AS 'MODULE_PATHNAME', 'sales_api_connecteam_locations'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION sales_api.connecteam_locations(name, bigint[], text[], boolean) IS
'lists Connecteam locations (every page), optionally filtered by ids, names and active status';

CREATE FUNCTION sales_api.connecteam_create_location(
    server name,
    name text,
    is_active boolean DEFAULT true)
RETURNS TABLE (id bigint, name text, is_active boolean)
AS 'MODULE_PATHNAME', 'sales_api_connecteam_create_location'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION sales_api.connecteam_create_location(name, text, boolean) IS
'creates a Connecteam location and returns it with its id';

CREATE FUNCTION sales_api.connecteam_delete_transaction(
    server name,
    transaction_id text)
RETURNS void
AS 'MODULE_PATHNAME', 'sales_api_connecteam_delete_transaction'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION sales_api.connecteam_delete_transaction(name, text) IS
'deletes one Connecteam transaction by its transactionId';

CREATE FUNCTION sales_api.connecteam_delete_transactions(
    server name,
    location_id bigint,
    start_time timestamptz,
    end_time timestamptz)
RETURNS void
AS 'MODULE_PATHNAME', 'sales_api_connecteam_delete_transactions'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION sales_api.connecteam_delete_transactions(name, bigint, timestamptz, timestamptz) IS
'deletes a Connecteam location''s transactions created from start_time to end_time, both inclusive, to the second';

CREATE FUNCTION sales_api.connecteam_daily_sales(
    server name,
    start_date date,
    end_date date,
    location_ids bigint[] DEFAULT NULL)
RETURNS TABLE (location_id bigint, sales_date date, total_sales numeric, projected_sales numeric)
AS 'MODULE_PATHNAME', 'sales_api_connecteam_daily_sales'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION sales_api.connecteam_daily_sales(name, date, date, bigint[]) IS
'reads Connecteam daily totals and projected sales, one row per location and day with data (both dates inclusive)';

CREATE FUNCTION sales_api.connecteam_set_projected_sales(
    server name,
    location_id bigint,
    updates sales_api.connecteam_projected_sale[])
RETURNS TABLE (sales_date date, total_sales numeric, projected_sales numeric)
AS 'MODULE_PATHNAME', 'sales_api_connecteam_set_projected_sales'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION sales_api.connecteam_set_projected_sales(name, bigint, sales_api.connecteam_projected_sale[]) IS
'sets projected sales of one Connecteam location for the days given and returns those days as stored';

CREATE FUNCTION sales_api.connecteam_set_projected_sales(
    server name,
    location_id bigint,
    source text)
RETURNS TABLE (sales_date date, total_sales numeric, projected_sales numeric)
AS 'MODULE_PATHNAME', 'sales_api_connecteam_set_projected_sales_query'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION sales_api.connecteam_set_projected_sales(name, bigint, text) IS
'as connecteam_set_projected_sales(name, bigint, connecteam_projected_sale[]), with the rows of a relation or query with columns sales_date and projected_sales';

CREATE FUNCTION sales_api.connecteam_rate_limit(server name)
RETURNS TABLE (minute_limit bigint, minute_remaining bigint, minute_reset timestamptz,
               day_limit bigint, day_remaining bigint, day_reset timestamptz,
               observed_at timestamptz)
AS 'MODULE_PATHNAME', 'sales_api_connecteam_rate_limit'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION sales_api.connecteam_rate_limit(name) IS
'the rate-limit budget of the server''s Connecteam account as this backend last saw it (NULLs before any call)';

REVOKE ALL ON FUNCTION sales_api.connecteam_post_transactions(name, sales_api.connecteam_transaction[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION sales_api.connecteam_post_transactions(name, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION sales_api.connecteam_locations(name, bigint[], text[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION sales_api.connecteam_create_location(name, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION sales_api.connecteam_delete_transaction(name, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION sales_api.connecteam_delete_transactions(name, bigint, timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION sales_api.connecteam_daily_sales(name, date, date, bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION sales_api.connecteam_set_projected_sales(name, bigint, sales_api.connecteam_projected_sale[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION sales_api.connecteam_set_projected_sales(name, bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION sales_api.connecteam_rate_limit(name) FROM PUBLIC;
-- @@CONNECTEAM-END@@
