/*
 * sales_api.sql: the whole schema of the current version of sales_api.
 *
 * The build installs this file as sales_api--<default_version>.sql (see the
 * Makefile): CREATE EXTENSION sales_api runs it.  A database of an earlier
 * version reaches the same schema through the released upgrade scripts
 * (sales_api--0.1.sql, then sales_api--X--Y.sql); those are history and stay
 * as released.  A change of the schema is written twice: here, as the object
 * now is, and in the next upgrade script, as the step from the last release.
 * test/scenarios/05_schema_fresh_vs_upgraded.sh installs both ways and
 * compares every object of the extension (test/lib/schema_snapshot.sql).
 * Function bodies are compared character for character: they are stored as
 * written, comments and blanks included.
 *
 * The objects follow the path of a sale:
 *   1. the wrapper and servers: where the vendors are, and the credentials
 *   2. the direct API: SQL functions that call a vendor in the caller's
 *      transaction (src/mapal.c, src/cashrec.c, src/connecteam.c)
 *   3. capture: POS tables attached to a server, their triggers
 *   4. staging: Connecteam sales a POS statement wrote, until the worker
 *      makes them outbox items
 *   5. the outbox: one row per unit of work for the worker (src/outbox.c)
 *   6. operating the worker: pause, resume, retry, purge, monitor
 *   7. reconciliation and repair
 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION sales_api" to load this file. \quit

-- Nothing in this schema is for PUBLIC: an administrator grants USAGE on the
-- schema and EXECUTE on the functions a role needs (see README, Security).
-- The functions without a REVOKE read no table and call no vendor (version,
-- mapal_slot, time_slot), or read a captured table only for a caller that may
-- SELECT it, and sales_api's tables with the caller's own rights
-- (_local_connecteam_totals, _local_mapal_sales, _mapal_slot_totals,
-- _reconcile_connecteam).
REVOKE ALL ON SCHEMA sales_api FROM PUBLIC;

-------------------------------------------------------------------------------
-- 1. The wrapper and servers (src/server.c, src/auth.c)
-------------------------------------------------------------------------------
CREATE FUNCTION sales_api.fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'sales_api_fdw_validator'
LANGUAGE C STRICT;

COMMENT ON FUNCTION sales_api.fdw_validator(text[], oid) IS
'validates the options of sales_api servers and user mappings';
REVOKE ALL ON FUNCTION sales_api.fdw_validator(text[], oid) FROM PUBLIC;

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

-------------------------------------------------------------------------------
-- 2. The direct API.  Each call sends or fetches in the caller's session,
-- with the caller's user mapping; a vendor's refusal is a result row, not an
-- error, unless the function says otherwise.
-------------------------------------------------------------------------------

-- Mapal: real-time sales (src/mapal.c) and Cashrec (src/cashrec.c)

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

-- Connecteam: the Sales Data API (src/connecteam.c)

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
'the rate-limit budget of the server''s Connecteam account as the whole cluster last saw it, in shared memory (NULLs before any call)';

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

-------------------------------------------------------------------------------
-- 3. Capture.  sales_api.attach() records which POS table feeds which server
-- through which expressions (a capture row), and installs statement triggers
-- on the table; their work is written in the POS's own transaction, so a sale
-- is queued exactly when it commits.  The worker sends it later.
--
-- A mapping's expressions are code their author wrote: every statement built
-- from them runs as the table's owner, under SECURITY_RESTRICTED_OPERATION
-- (src/mapping.c), in the trigger, the worker and the reconciliations alike.
-- No statement built from a mapping is stored here, and none runs with the
-- extension's rights.
-------------------------------------------------------------------------------

-- A capture row is never deleted by sales_api: detach() drops the triggers
-- and sets detached_at, and work already queued for it still drains.
CREATE TABLE sales_api.capture (
    id          serial PRIMARY KEY,
    relid       regclass NOT NULL,
    server_id   oid NOT NULL,
    server_name name NOT NULL,
    vendor      text NOT NULL CHECK (vendor IN ('mapal', 'connecteam')),
    run_as      regrole NOT NULL,          -- whose user mapping the worker uses
    mapping     jsonb NOT NULL,            -- field -> SQL expression over the table's columns
    key_expr    text NOT NULL,             -- identity of a sale (Connecteam reference)
    attached_at timestamptz NOT NULL DEFAULT now(),
    detached_at timestamptz,
    slot_minutes integer,
    timezone    text
);
-- one live capture per table and server; a detached one keeps draining
CREATE UNIQUE INDEX capture_live_idx ON sales_api.capture (relid, server_id) WHERE detached_at IS NULL;
COMMENT ON TABLE sales_api.capture IS 'POS tables attached to a vendor server by sales_api.attach()';
COMMENT ON COLUMN sales_api.capture.slot_minutes IS 'Mapal: the slot length, from the server when attached';
COMMENT ON COLUMN sales_api.capture.timezone IS 'Mapal: the units'' time zone, the server''s or else the attaching session''s';
COMMENT ON COLUMN sales_api.capture.mapping IS 'field -> SQL expression over the table''s columns, evaluated as the table''s owner';
COMMENT ON COLUMN sales_api.capture.run_as IS 'whose user mapping the worker sends with';
REVOKE ALL ON sales_api.capture FROM PUBLIC;
-- pg_dump keeps the captures and the queued work (pg_cron's pattern)
SELECT pg_catalog.pg_extension_config_dump('sales_api.capture', '');
SELECT pg_catalog.pg_extension_config_dump('sales_api.capture_id_seq', '');

-- No foreign key refers to sales_api.capture.  One would cost every captured
-- sale a queued RI trigger event, an SPI query and a FOR KEY SHARE lock on the
-- same capture row, which with two POS sessions inserting at once becomes a
-- new MultiXact per sale.  Capture ids come only from attach(); deleting a
-- capture row by hand still takes its work with it, through this trigger.
CREATE FUNCTION sales_api._capture_deleted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM sales_api.outbox WHERE capture_id = OLD.id;
    DELETE FROM sales_api.outbox_stage WHERE capture_id = OLD.id;
    DELETE FROM sales_api.outbox_lease_items WHERE capture_id = OLD.id;
    DELETE FROM sales_api.mapal_stage WHERE capture_id = OLD.id;
    DELETE FROM sales_api.connecteam_sent WHERE capture_id = OLD.id;
    RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION sales_api._capture_deleted() FROM PUBLIC;
CREATE TRIGGER capture_deleted AFTER DELETE ON sales_api.capture
    FOR EACH ROW EXECUTE FUNCTION sales_api._capture_deleted();

-- Queued work wakes the worker when its transaction commits, not at the
-- worker's next naptime.  The capture trigger does it in C; the SQL functions
-- that queue work (resume, retry_dead, repair_*) call this.
CREATE FUNCTION sales_api.wake_worker_on_commit()
RETURNS void
AS 'MODULE_PATHNAME', 'sales_api_wake_worker_on_commit'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api.wake_worker_on_commit() IS
'sets the worker''s latch when the current transaction commits (called by the functions that queue work)';
REVOKE ALL ON FUNCTION sales_api.wake_worker_on_commit() FROM PUBLIC;

-- The capture trigger (src/capture.c): one C function for every capture.
-- Its one argument is the capture id; it refuses a trigger whose name,
-- argument, transition tables (sales_api_new, sales_api_old) or table do not
-- match a live capture.  Per POS statement it runs the statement built from
-- the mapping as the table's owner, then writes what that returned with fixed
-- statements as the extension, so the POS roles need no privilege on
-- sales_api.  Connecteam: an INSERT stages its sales (section 4), an UPDATE
-- or DELETE first makes the staged rows holding its sales outbox items, then
-- cancels the old versions not sent yet and queues a delete at the vendor of
-- those it holds or may hold.  Mapal: a statement marks the slots it touched
-- dirty (one outbox item per slot); the worker recomputes their totals.
CREATE FUNCTION sales_api.capture_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'sales_api_capture_trigger'
LANGUAGE C;
COMMENT ON FUNCTION sales_api.capture_trigger() IS
'the statement trigger attach() installs; its one argument is the capture id';
REVOKE ALL ON FUNCTION sales_api.capture_trigger() FROM PUBLIC;

-- attach() and detach() (src/attach.c).  The table's owner, with USAGE on
-- the server, may attach it; run_as, whose user mapping the worker sends
-- with, must be a role the caller can act as, with USAGE on the server and
-- SELECT on the table.  The capture's statements are run over an empty copy
-- of the table as its owner, so a bad mapping fails attach(), not a sale.
CREATE FUNCTION sales_api.attach(sales_table regclass, server name, mapping jsonb,
                                            sale_key text DEFAULT NULL, run_as regrole DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'sales_api_attach'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api.attach(regclass, name, jsonb, text, regrole) IS
'captures the sales of a POS table for a vendor server; the mapping runs as the table''s owner';
REVOKE ALL ON FUNCTION sales_api.attach(regclass, name, jsonb, text, regrole) FROM PUBLIC;

CREATE FUNCTION sales_api.detach(sales_table regclass, server name)
RETURNS void
AS 'MODULE_PATHNAME', 'sales_api_detach'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api.detach(regclass, name) IS
'stops capturing a POS table; work already in the outbox still drains';
REVOKE ALL ON FUNCTION sales_api.detach(regclass, name) FROM PUBLIC;

-------------------------------------------------------------------------------
-- 4. Staging.  A Connecteam capture writes its sales here, not to the outbox:
-- an outbox item per sale in the POS's transaction would cost it a sequence
-- value, three B-tree entries, two CHECK constraints (whose expressions the
-- executor reads and plans again for every statement) and five partial-index
-- predicates per sale.  A POS statement of fewer rows than
-- sales_api.stage_min_rows writes a row per sale, a larger one rows of arrays
-- of 500 sales, in the order it inserted them.  A Connecteam lane the worker
-- claims for takes its staged sales straight into flight under a lease (see
-- outbox_lease_items below; a paused server's become pending items at every
-- cycle); whoever makes staged sales items deletes the rows and inserts
-- their items in one transaction: a staged sale is in exactly one of the two
-- places at every commit.  Staged rows are written, WAL-logged and committed
-- with the sales, so a crash loses none.  Mapal captures stage the slots a
-- statement touched in sales_api.mapal_stage, below.
-------------------------------------------------------------------------------

CREATE TABLE sales_api.outbox_stage (
    capture_id        integer NOT NULL,
    staged_at         timestamptz NOT NULL,
    -- one sale (a POS statement of fewer rows than sales_api.stage_min_rows)
    sale_key          text,
    location_id       bigint,
    sale_type         text,
    created_at        timestamptz,
    final_sale_amount numeric,
    tax_amount        numeric,
    currency          text,
    -- or every sale of a larger statement, in the order it inserted them
    sale_keys          text[],
    location_ids       bigint[],
    sale_types         text[],
    created_ats        timestamptz[],
    final_sale_amounts numeric[],
    tax_amounts        numeric[],
    currencies         text[],
    -- taken by the worker, its sales in flight until then (NULL: waiting)
    lease_until        timestamptz
);
-- No key, no index, no CHECK: a single-row POS statement pays one heap
-- tuple here and nothing else.  Rows live for a worker cycle; the worker
-- finds them by a sequential scan of a table that stays small, and deletes
-- them by ctid.  A large statement's sales come in rows of at most 500, a
-- microsecond apart in staged_at, in the order it inserted them: a
-- Connecteam lane the worker is claiming for takes them straight into
-- flight, a claim's worth at a time, so a 100,000-sale statement is never
-- made items in one transaction (src/outbox_connecteam.c).
COMMENT ON TABLE sales_api.outbox_stage IS
'Connecteam sales captured by POS statements until the worker makes them outbox items: a row per sale, or rows of arrays of at most 500 sales for a large statement';
REVOKE ALL ON sales_api.outbox_stage FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sales_api.outbox_stage', '');

-- A Connecteam lane's staged sales go into flight without becoming items:
-- the worker's claim sets lease_until on the rows it takes, and its record
-- deletes them and inserts their sales' items in their final states (sent,
-- failed, ...), so a sale sent at the first try is written once in the
-- outbox.  outbox_status counts leased rows' sales as in_flight.  A POS
-- UPDATE or DELETE of a sale whose row is leased makes that row's sales
-- items in flight (its delete waits for, and undoes, the post), and leaves
-- here which items they became, for the worker's record; a lease that runs
-- out (its worker stopped) is made items the same way, which then expire as
-- any item in flight does (src/outbox_stage.c).
CREATE TABLE sales_api.outbox_lease_items (
    capture_id  integer NOT NULL,
    lease_until timestamptz NOT NULL,
    stage_tid   tid NOT NULL,           -- the leased row, as the worker's claim saw it
    item_ids    bigint[] NOT NULL       -- its sales' items, in the row's order
);
COMMENT ON TABLE sales_api.outbox_lease_items IS
'leased staged rows made items while their sales were in flight: which items, for the worker''s record';
REVOKE ALL ON sales_api.outbox_lease_items FROM PUBLIC;

-- A Mapal capture stages the slots a POS statement touched: one row of arrays
-- per statement, no marker, index or lock in the POS's transaction, so two
-- tills selling in the same slot never wait for each other.  At the start of
-- every cycle the worker deletes the rows it takes and inserts a pending dirty
-- marker per slot (a slot that already has one needs no second), in one
-- transaction; it recomputes a slot's totals from the POS table after its
-- claim, so every sale whose row it took is in them, and a sale that commits
-- later is staged, taken and sent in a later cycle (src/outbox_stage.c).
CREATE TABLE sales_api.mapal_stage (
    capture_id     integer NOT NULL,
    staged_at      timestamptz NOT NULL,
    unit_ids       bigint[] NOT NULL,
    business_days  date[] NOT NULL,
    currency_ids   text[] NOT NULL,
    sales_type_ids text[] NOT NULL,
    slot_starts    timestamp[] NOT NULL
);
COMMENT ON TABLE sales_api.mapal_stage IS
'Mapal slots touched by POS statements until the worker makes them dirty markers: one row of arrays per statement';
REVOKE ALL ON sales_api.mapal_stage FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sales_api.mapal_stage', '');

-- lz4 is several times faster than pglz at the same ratio on the arrays,
-- where the server has it (Debian's PostgreSQL is built with it)
DO $$
BEGIN
    ALTER TABLE sales_api.outbox_stage
        ALTER COLUMN sale_keys SET COMPRESSION lz4, ALTER COLUMN location_ids SET COMPRESSION lz4,
        ALTER COLUMN sale_types SET COMPRESSION lz4, ALTER COLUMN created_ats SET COMPRESSION lz4,
        ALTER COLUMN final_sale_amounts SET COMPRESSION lz4, ALTER COLUMN tax_amounts SET COMPRESSION lz4,
        ALTER COLUMN currencies SET COMPRESSION lz4;
    ALTER TABLE sales_api.mapal_stage
        ALTER COLUMN unit_ids SET COMPRESSION lz4, ALTER COLUMN business_days SET COMPRESSION lz4,
        ALTER COLUMN currency_ids SET COMPRESSION lz4, ALTER COLUMN sales_type_ids SET COMPRESSION lz4,
        ALTER COLUMN slot_starts SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END;
$$;

-- Staged rows become outbox items (ct_post), oldest statement first, a large
-- statement's sales in the order of its arrays (src/outbox_stage.c, which the
-- worker and the capture trigger call directly).  The worker takes a paused
-- server's with wait = false, skipping rows a POS transaction is expanding,
-- and at most max_rows staged rows per claim (a backlog after a long stop is
-- taken in steps, not in one huge transaction; a lane that is not paused
-- takes its own straight into flight); an UPDATE or DELETE of captured sales
-- first takes, with wait = true, the staged rows that hold its sales, so that
-- it finds the posts of those sales.  The keys are matched through hashed
-- subplans: a DELETE of 100,000 sales while a 100,000-sale row is staged
-- costs two hash tables, not 10^10 comparisons.
CREATE FUNCTION sales_api._stage_expand(capture_id integer, wait boolean, sale_keys text[] DEFAULT NULL,
                                        max_rows integer DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'sales_api_stage_expand'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api._stage_expand(integer, boolean, text[], integer) IS
'makes staged sales (sales_api.outbox_stage) pending outbox items, as the worker does for a paused server';
REVOKE ALL ON FUNCTION sales_api._stage_expand(integer, boolean, text[], integer) FROM PUBLIC;

-------------------------------------------------------------------------------
-- 5. The outbox: one row per unit of work for the worker (src/outbox.c).
-- Kinds: ct_post (a Connecteam sale to create), ct_delete (a version of a
-- sale the vendor holds or may hold, to delete), ct_window (replace a
-- location's time window at the vendor: repair_connecteam), mapal_slot (a
-- dirty Mapal slot whose totals to send).  States:
--   pending     waiting to be sent (next_attempt_at)
--   in_flight   claimed by the worker until lease_until; an expired lease is taken again
--   sent        done; http_status and vendor_ref (Connecteam transactionId) kept
--   failed      failed for now: attempts, next_attempt_at and last_error say when and why
--   dead        permanent vendor refusal or max attempts reached; retry_dead() requeues
--   unknown     ambiguous outcome parked for an operator (ambiguous_policy = 'park')
--   superseded  replaced by a later version of the same sale before it was sent
-- The worker claims items in one transaction (pending -> in_flight with a
-- lease; a Connecteam lane's staged sales are leased where they are staged,
-- and become items only when recorded), sends them with no transaction open,
-- and records every outcome in another.  The names of the states and kinds are defined once, in C
-- (src/outbox_states.h, returned by _outbox_states()); the regression test
-- 41_outbox_states holds the constraints, indexes, views and functions of
-- this schema to them.
-------------------------------------------------------------------------------
CREATE TABLE sales_api.outbox (
    id              bigserial PRIMARY KEY,
    capture_id      integer NOT NULL,      -- no foreign key: see _capture_deleted
    kind            text NOT NULL CHECK (kind IN ('ct_post', 'ct_delete', 'ct_window', 'mapal_slot')),
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'in_flight', 'sent', 'failed', 'dead', 'unknown', 'superseded')),
    sale_key        text,
    -- Connecteam transaction
    location_id     bigint,
    sale_type       text,                  -- checked when sent: a bad value must not fail the sale
    created_at      timestamptz,
    final_sale_amount numeric,
    tax_amount      numeric,
    currency        text,
    -- Mapal slot (totals are recomputed from the POS table when sent)
    unit_id         bigint,
    business_day    date,
    currency_id     text,
    sales_type_id   text,
    slot_start      timestamp,
    -- delivery
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    lease_until     timestamptz,
    enqueued_at     timestamptz NOT NULL DEFAULT statement_timestamp(),
    sent_at         timestamptz,
    http_status     integer,
    vendor_ref      text,
    ambiguous       boolean NOT NULL DEFAULT false,  -- a post that may have been stored
    target_post_id  bigint,                -- ct_delete: the in-flight or ambiguous post it undoes
    window_start    timestamptz,           -- ct_window: replace this location's window at the vendor
    window_end      timestamptz,
    last_error      text
);
COMMENT ON TABLE sales_api.outbox IS 'work for the vendors: Mapal slots marked by capture triggers, Connecteam sales made items from the stage by the worker, deletes and windows';

-- the worker's claims walk this in id order; it holds only unfinished work,
-- so a long history of sent items costs the claim nothing
CREATE INDEX outbox_todo_idx ON sales_api.outbox (id)
    WHERE state IN ('pending', 'failed', 'in_flight');
-- a lane's due work, for the worker's claim of that lane alone
CREATE INDEX outbox_lane_todo_idx ON sales_api.outbox (capture_id, id)
    WHERE state IN ('pending', 'failed');
-- at most one pending marker per Mapal slot: the arbiter of the capture's
-- ON CONFLICT (see src/capture.c)
CREATE UNIQUE INDEX outbox_mapal_dirty_idx ON sales_api.outbox
    (capture_id, unit_id, business_day, currency_id, sales_type_id, slot_start)
    WHERE kind = 'mapal_slot' AND state = 'pending';
-- the posts of a sale, for its UPDATE or DELETE
CREATE INDEX outbox_sale_key_idx ON sales_api.outbox (capture_id, sale_key) WHERE sale_key IS NOT NULL;
-- the worker's purge of old history (sales_api.sent_retention)
CREATE INDEX outbox_sent_idx ON sales_api.outbox (sent_at) WHERE state = 'sent';
CREATE INDEX outbox_superseded_idx ON sales_api.outbox (enqueued_at) WHERE state = 'superseded';
REVOKE ALL ON sales_api.outbox FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sales_api.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('sales_api.outbox_id_seq', '');

-- The states and kinds as the C code defines them (src/outbox_states.c):
-- the regression test 41_outbox_states holds the CHECK constraints, partial
-- indexes, views and functions of this schema to them.
CREATE FUNCTION sales_api._outbox_states()
RETURNS TABLE (category text, name text, meaning text)
AS 'MODULE_PATHNAME', 'sales_api_outbox_states'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION sales_api._outbox_states() IS
'the outbox item states and kinds the C code defines, and the pseudo-state of outbox_status';
REVOKE ALL ON FUNCTION sales_api._outbox_states() FROM PUBLIC;

-- Connecteam: the vendor's transactionId of the version of each sale it
-- holds, what an UPDATE or DELETE of the sale deletes there
CREATE TABLE sales_api.connecteam_sent (
    capture_id     integer NOT NULL,       -- no foreign key: see _capture_deleted
    sale_key       text NOT NULL,
    transaction_id text NOT NULL,
    location_id    bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    final_sale_amount numeric NOT NULL,
    sent_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (capture_id, sale_key)
);
REVOKE ALL ON sales_api.connecteam_sent FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sales_api.connecteam_sent', '');

-------------------------------------------------------------------------------
-- 6. Operating the worker: pause, resume, retry, purge, monitor
-------------------------------------------------------------------------------

-- Per server: paused by an operator?  The worker claims nothing for a paused
-- server; its work waits in the outbox.
CREATE TABLE sales_api.server_state (
    server_id oid PRIMARY KEY,
    paused    boolean NOT NULL DEFAULT false,
    paused_at timestamptz,
    -- the server's name when the row was written: a restore gives servers
    -- new OIDs, and the worker moves the row to the server of this name
    server_name name
);
REVOKE ALL ON sales_api.server_state FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sales_api.server_state', '');

-- The worker's figures live in shared memory (src/worker.c), not in a table.
CREATE FUNCTION sales_api.wake_worker()
RETURNS boolean
AS 'MODULE_PATHNAME', 'sales_api_wake_worker'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api.wake_worker() IS 'wakes the background worker now; false if it is not running';
REVOKE ALL ON FUNCTION sales_api.wake_worker() FROM PUBLIC;

CREATE FUNCTION sales_api.worker_stats(
    OUT running boolean, OUT pid integer, OUT started_at timestamptz,
    OUT last_cycle_at timestamptz, OUT last_success_at timestamptz,
    OUT cycles bigint, OUT requests bigint, OUT items_sent bigint, OUT items_failed bigint,
    OUT items_dead bigint, OUT retries bigint, OUT rate_limited bigint, OUT ambiguous bigint,
    OUT rate_waits bigint, OUT latency_p50_ms double precision, OUT latency_p99_ms double precision,
    OUT note text)
RETURNS record
AS 'MODULE_PATHNAME', 'sales_api_worker_stats'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api.worker_stats() IS
'this database''s worker: its live figures from shared memory since it started (latencies over the last 1024 requests), and whether it serves this database, or why not';
REVOKE ALL ON FUNCTION sales_api.worker_stats() FROM PUBLIC;

-- The shared rate-limit budget of every Connecteam lane (a capture's server
-- and run_as, i.e. one vendor account) of this database, for monitoring: the
-- caller needs neither the vendor's credentials nor USAGE on the server; it
-- reads sales_api.capture with its own rights (src/lane_budgets.c).
CREATE FUNCTION sales_api.lane_budgets()
RETURNS TABLE (server_name name, run_as regrole,
               minute_limit bigint, minute_remaining bigint, minute_reset timestamptz,
               day_limit bigint, day_remaining bigint, day_reset timestamptz,
               observed_at timestamptz)
AS 'MODULE_PATHNAME', 'sales_api_lane_budgets'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION sales_api.lane_budgets() IS
'the shared rate-limit budget of each Connecteam lane (server and run_as) of this database, as connecteam_rate_limit() shows it to run_as (NULLs while unknown)';
REVOKE ALL ON FUNCTION sales_api.lane_budgets() FROM PUBLIC;

-- The lanes of this database as the worker keeps them in shared memory
-- (src/lanes.c): per lane, its circuit breaker, jobs and requests in flight,
-- request counters by outcome since the cluster started, the last error and
-- what the worker says it waits for.  A lane the worker has not sent to
-- since the cluster started has no row.  last_error is shown only to roles
-- with the privileges of pg_read_all_stats, as pg_stat_activity's query.
CREATE FUNCTION sales_api.lane_state()
RETURNS TABLE (server_id oid, server_name name, run_as regrole,
               circuit text, circuit_until timestamptz, consecutive_failures integer,
               opened bigint, probe_in_flight boolean,
               jobs_in_flight integer, requests_in_flight integer,
               jobs bigint, requests bigint, requests_ok bigint, transport_errors bigint,
               timeouts bigint, server_errors bigint, client_errors bigint, rate_limited bigint,
               last_http_status integer, last_error text, last_error_at timestamptz,
               last_success_at timestamptz, last_job_at timestamptz,
               waiting text, waiting_until timestamptz)
AS 'MODULE_PATHNAME', 'sales_api_lane_state'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION sales_api.lane_state() IS
'the lanes (server and run_as) of this database in shared memory: circuit breaker, in flight, request counters, last error, why the worker waits';
REVOKE ALL ON FUNCTION sales_api.lane_state() FROM PUBLIC;

-- Whether a worker serves this database: what worker_stats().note says in
-- words, as a boolean (src/launcher.c).
CREATE FUNCTION sales_api.worker_served()
RETURNS boolean
AS 'MODULE_PATHNAME', 'sales_api_worker_served'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api.worker_served() IS
'whether a worker serves this database (worker_stats().note says why not)';
REVOKE ALL ON FUNCTION sales_api.worker_served() FROM PUBLIC;

CREATE FUNCTION sales_api._server_oid(server name)
RETURNS oid LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    srv oid;
BEGIN
    SELECT f.oid INTO srv FROM pg_foreign_server f JOIN pg_foreign_data_wrapper w ON w.oid = f.srvfdw
     WHERE f.srvname = server AND w.fdwname = 'sales_api';
    IF srv IS NULL THEN
        RAISE EXCEPTION 'server "%" is not a sales_api server', server
              USING ERRCODE = CASE WHEN EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = server)
                                   THEN 'wrong_object_type' ELSE 'undefined_object' END,
                    HINT = 'The sales_api servers: SELECT srvname FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw WHERE w.fdwname = ''sales_api''.';
    END IF;
    RETURN srv;
END;
$$;
COMMENT ON FUNCTION sales_api._server_oid(name) IS 'the OID of a sales_api server, or an error naming what the name is';
-- EXECUTE stays with PUBLIC: pause() and resume() call it with their caller's
-- rights, and it reads only pg_foreign_server, which every role may read

CREATE FUNCTION sales_api.pause(server name)
RETURNS void LANGUAGE sql
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO sales_api.server_state (server_id, paused, paused_at, server_name)
    VALUES (sales_api._server_oid(server), true, now(), server)
    ON CONFLICT (server_id) DO UPDATE SET paused = true, paused_at = now(), server_name = server;
END;
COMMENT ON FUNCTION sales_api.pause(name) IS 'stops the worker sending to a server; items wait in the outbox';
REVOKE ALL ON FUNCTION sales_api.pause(name) FROM PUBLIC;

CREATE FUNCTION sales_api.resume(server name)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    srv oid := sales_api._server_oid(server);
BEGIN
    UPDATE sales_api.server_state SET paused = false, paused_at = NULL WHERE server_id = srv;
    PERFORM sales_api.wake_worker_on_commit();
END;
$$;
COMMENT ON FUNCTION sales_api.resume(name) IS 'lets the worker send to a paused server again';
REVOKE ALL ON FUNCTION sales_api.resume(name) FROM PUBLIC;

CREATE FUNCTION sales_api.retry_dead(server name DEFAULT NULL, include_unknown boolean DEFAULT false)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    UPDATE sales_api.outbox o SET state = 'pending', attempts = 0, next_attempt_at = now(),
           last_error = 'requeued by retry_dead(): ' || coalesce(o.last_error, '')
      FROM sales_api.capture c
     WHERE c.id = o.capture_id
       AND (o.state = 'dead' OR (include_unknown AND o.state = 'unknown'))
       AND (retry_dead.server IS NULL OR c.server_name = retry_dead.server);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM sales_api.wake_worker_on_commit();
    RETURN n;
END;
$$;
COMMENT ON FUNCTION sales_api.retry_dead(name, boolean) IS
'requeues dead items (and, if asked, items parked as unknown: they go through the ambiguous policy again)';
REVOKE ALL ON FUNCTION sales_api.retry_dead(name, boolean) FROM PUBLIC;

CREATE FUNCTION sales_api.purge_sent(older_than interval DEFAULT interval '7 days')
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM sales_api.outbox
     WHERE state IN ('sent', 'superseded') AND coalesce(sent_at, enqueued_at) < now() - older_than;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;
COMMENT ON FUNCTION sales_api.purge_sent(interval) IS 'deletes sent items older than the interval (the worker also does it, per sales_api.sent_retention)';
REVOKE ALL ON FUNCTION sales_api.purge_sent(interval) FROM PUBLIC;

-- What waits, per server and state; staged sales are work waiting too, in a
-- state of their own ('staged'), counted per sale.
CREATE VIEW sales_api.outbox_status AS
SELECT c.server_name,
       o.state,
       sum(o.n)::bigint AS items,
       min(o.enqueued_at) FILTER (WHERE o.state IN ('pending', 'failed', 'in_flight')) AS oldest_enqueued_at,
       now() - min(o.enqueued_at) FILTER (WHERE o.state IN ('pending', 'failed', 'in_flight')) AS oldest_pending_age,
       max(o.sent_at) AS last_success_at,
       (array_agg(o.last_error ORDER BY o.id DESC) FILTER (WHERE o.last_error IS NOT NULL AND o.state <> 'sent'))[1] AS last_error,
       bool_or(coalesce(s.paused, false)) AS paused
  FROM (SELECT x.capture_id, x.state, 1 AS n, x.enqueued_at, x.sent_at, x.last_error, x.id
          FROM sales_api.outbox x
        UNION ALL
        -- staged sales the worker has leased are in flight (src/outbox_connecteam.c)
        SELECT st.capture_id, 'in_flight', coalesce(cardinality(st.sale_keys), 1), st.staged_at,
               NULL::timestamptz, NULL::text, NULL::bigint
          FROM sales_api.outbox_stage st
         WHERE st.lease_until IS NOT NULL) o
  JOIN sales_api.capture c ON c.id = o.capture_id
  LEFT JOIN sales_api.server_state s ON s.server_id = c.server_id
 GROUP BY c.server_name, o.state
UNION ALL
SELECT c.server_name,
       'staged',
       sum(coalesce(cardinality(st.sale_keys), 1))::bigint,
       min(st.staged_at),
       now() - min(st.staged_at),
       NULL::timestamptz,
       NULL::text,
       bool_or(coalesce(s.paused, false))
  FROM sales_api.outbox_stage st
  JOIN sales_api.capture c ON c.id = st.capture_id
  LEFT JOIN sales_api.server_state s ON s.server_id = c.server_id
 WHERE st.lease_until IS NULL
 GROUP BY c.server_name
UNION ALL
SELECT c.server_name,
       'staged',
       sum(cardinality(ms.slot_starts))::bigint,
       min(ms.staged_at),
       now() - min(ms.staged_at),
       NULL::timestamptz,
       NULL::text,
       bool_or(coalesce(s.paused, false))
  FROM sales_api.mapal_stage ms
  JOIN sales_api.capture c ON c.id = ms.capture_id
  LEFT JOIN sales_api.server_state s ON s.server_id = c.server_id
 GROUP BY c.server_name;
COMMENT ON VIEW sales_api.outbox_status IS 'items per server and state, the oldest waiting, the last error and the last success';
REVOKE ALL ON sales_api.outbox_status FROM PUBLIC;

-- One row per lane: a capture's server and run_as, i.e. one vendor account
-- as this database's worker reaches it.  What waits (counted as in
-- outbox_status: staged sales and slots, pending, failed and in-flight
-- items), the account's rate-limit budget (lane_budgets()), the lane's
-- circuit and counters (lane_state(), zeros and 'closed' before the worker
-- has sent to it), and why its work waits now: waiting_for, a word for
-- machines (idle, not_served, paused, circuit_open, circuit_half_open,
-- rate_limit, sending, backoff, queued, or what the worker said), until
-- when, and waiting_reason, the same in words.
CREATE VIEW sales_api.lane_status AS
WITH lane AS (
    SELECT c.server_id, c.run_as, min(c.server_name) AS server_name, min(c.vendor) AS vendor,
           array_agg(c.id) AS ids
      FROM sales_api.capture c
     GROUP BY c.server_id, c.run_as
), l AS (
    SELECT coalesce(fs.srvname, lane.server_name) AS server_name, lane.run_as, lane.vendor,
           w.served, coalesce(ss.paused, false) AS paused,
           st.staged + ms.staged AS staged, o.pending, o.failed, o.in_flight + st.leased AS in_flight, o.due,
           least(o.oldest, st.oldest, ms.oldest) AS oldest_waiting_at, o.next_attempt_at,
           bud.remaining AS budget_remaining,
           CASE WHEN bud.reset > now() THEN bud.reset END AS budget_reset,
           ls.circuit, ls.circuit_until, ls.consecutive_failures,
           ls.requests, ls.requests_ok, ls.transport_errors, ls.timeouts, ls.server_errors,
           ls.client_errors, ls.rate_limited, ls.last_http_status, ls.last_error, ls.last_error_at,
           ls.last_success_at, ls.waiting, ls.waiting_until
      FROM lane
     CROSS JOIN sales_api.worker_served() AS w(served)
      LEFT JOIN pg_catalog.pg_foreign_server fs ON fs.oid = lane.server_id
      LEFT JOIN sales_api.server_state ss ON ss.server_id = lane.server_id
     CROSS JOIN LATERAL (
           SELECT count(*) FILTER (WHERE x.state = 'pending') AS pending,
                  count(*) FILTER (WHERE x.state = 'failed') AS failed,
                  count(*) FILTER (WHERE x.state = 'in_flight') AS in_flight,
                  count(*) FILTER (WHERE x.state IN ('pending', 'failed')
                                     AND coalesce(x.next_attempt_at, '-infinity') <= now()) AS due,
                  min(x.next_attempt_at) FILTER (WHERE x.state IN ('pending', 'failed')
                                                   AND x.next_attempt_at > now()) AS next_attempt_at,
                  min(x.enqueued_at) AS oldest
             FROM sales_api.outbox x
            WHERE x.capture_id = ANY (lane.ids) AND x.state IN ('pending', 'failed', 'in_flight')) o
     CROSS JOIN LATERAL (
           -- leased rows: sales the worker has in flight (src/outbox_connecteam.c)
           SELECT coalesce(sum(coalesce(cardinality(x.sale_keys), 1)) FILTER (WHERE x.lease_until IS NULL), 0)::bigint AS staged,
                  coalesce(sum(coalesce(cardinality(x.sale_keys), 1)) FILTER (WHERE x.lease_until IS NOT NULL), 0)::bigint AS leased,
                  min(x.staged_at) AS oldest
             FROM sales_api.outbox_stage x
            WHERE x.capture_id = ANY (lane.ids)) st
     CROSS JOIN LATERAL (
           SELECT coalesce(sum(cardinality(x.slot_starts)), 0)::bigint AS staged,
                  min(x.staged_at) AS oldest
             FROM sales_api.mapal_stage x
            WHERE x.capture_id = ANY (lane.ids)) ms
      LEFT JOIN sales_api.lane_budgets() b ON b.server_name = lane.server_name AND b.run_as = lane.run_as
      -- the tighter of the minute and day budgets, as the worker sees it:
      -- the whole limit once a window's reset has passed
      LEFT JOIN LATERAL (
           SELECT v.remaining, v.reset
             FROM (VALUES (CASE WHEN now() >= b.minute_reset THEN b.minute_limit ELSE b.minute_remaining END,
                           b.minute_reset),
                          (CASE WHEN now() >= b.day_reset THEN b.day_limit ELSE b.day_remaining END,
                           b.day_reset)) AS v(remaining, reset)
            WHERE v.remaining IS NOT NULL
            ORDER BY v.remaining, v.reset DESC
            LIMIT 1) bud ON true
      LEFT JOIN sales_api.lane_state() ls ON ls.server_id = lane.server_id AND ls.run_as = lane.run_as
)
SELECT l.server_name, l.run_as, l.vendor, l.served, l.paused,
       l.staged, l.pending, l.failed, l.in_flight,
       l.oldest_waiting_at, now() - l.oldest_waiting_at AS oldest_waiting_age, l.next_attempt_at,
       l.budget_remaining, l.budget_reset,
       coalesce(l.circuit, 'closed') AS circuit, l.circuit_until,
       coalesce(l.consecutive_failures, 0) AS consecutive_failures,
       coalesce(l.requests, 0) AS requests, coalesce(l.requests_ok, 0) AS requests_ok,
       coalesce(l.transport_errors, 0) AS transport_errors, coalesce(l.timeouts, 0) AS timeouts,
       coalesce(l.server_errors, 0) AS server_errors, coalesce(l.client_errors, 0) AS client_errors,
       coalesce(l.rate_limited, 0) AS rate_limited,
       l.last_http_status, l.last_error, l.last_error_at, l.last_success_at,
       r.waiting_for, r.waiting_until,
       CASE r.waiting_for
           WHEN 'not_served' THEN 'not served: no worker serves this database (worker_stats().note says why)'
           WHEN 'paused' THEN 'paused: sales_api.resume() lets it send'
           WHEN 'circuit_open' THEN 'circuit open'
           WHEN 'circuit_half_open' THEN 'circuit half-open: one probe job tries the vendor'
           WHEN 'rate_limit' THEN 'rate limit spent'
           WHEN 'backoff' THEN 'backing off'
           WHEN 'queued' THEN 'queued: due now, for the worker''s next cycle'
           ELSE r.waiting_for
       END || coalesce(' until ' || r.waiting_until, '') AS waiting_reason
  FROM l
  -- why the lane's work waits: the first reason that applies
 CROSS JOIN LATERAL (
       SELECT v.waiting_for, v.waiting_until
         FROM (VALUES (1, l.staged + l.pending + l.failed + l.in_flight = 0, 'idle', NULL::timestamptz),
                      (2, NOT l.served, 'not_served', NULL),
                      (3, l.paused, 'paused', NULL),
                      (4, l.circuit = 'open' AND l.circuit_until > now(), 'circuit_open', l.circuit_until),
                      (5, l.circuit IN ('open', 'half_open'), 'circuit_half_open', NULL),
                      -- what the worker says (src/lanes.h, LANE_WAIT_*)
                      (6, l.waiting IS NOT NULL AND (l.waiting_until IS NULL OR l.waiting_until > now()),
                       l.waiting, l.waiting_until),
                      (7, l.budget_remaining = 0 AND l.budget_reset IS NOT NULL, 'rate_limit', l.budget_reset),
                      (8, l.in_flight > 0, 'sending', NULL),
                      (9, l.staged = 0 AND l.due = 0 AND l.next_attempt_at IS NOT NULL, 'backoff', l.next_attempt_at),
                      (10, true, 'queued', NULL)) AS v(priority, applies, waiting_for, waiting_until)
        WHERE v.applies
        ORDER BY v.priority
        LIMIT 1) r;
COMMENT ON VIEW sales_api.lane_status IS
'per lane (server and run_as): waiting work, rate-limit budget, circuit, request counters, last error, and why it waits';
REVOKE ALL ON sales_api.lane_status FROM PUBLIC;

-------------------------------------------------------------------------------
-- 7. Reconciliation and repair.  Local POS totals, read through each
-- capture's own mapping, against the vendor's; work still waiting (staged,
-- pending, in flight, failed, unknown) makes a day 'pending', not a mismatch.
-- The repairs queue outbox work; the worker does the rest.
-------------------------------------------------------------------------------

-- Local figures of the captured tables, through their mappings, as their
-- owners (src/reconcile.c).  Each first checks that the caller may SELECT the
-- table, so it returns nothing the caller could not read itself.
CREATE FUNCTION sales_api._local_connecteam_totals(server name, start_date date, end_date date,
                                                   location_ids bigint[], day_tz text)
RETURNS TABLE (location_id bigint, sales_date date, total numeric, sales bigint)
AS 'MODULE_PATHNAME', 'sales_api_local_connecteam_totals'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api._local_connecteam_totals(name, date, date, bigint[], text) IS
'per capture, location and local day: the total and count of a Connecteam server''s captured sales';

CREATE FUNCTION sales_api._local_mapal_sales(server name, from_local timestamp, to_local timestamp)
RETURNS TABLE (unit_id bigint, sold_at timestamp, net numeric, gross numeric, checks numeric)
AS 'MODULE_PATHNAME', 'sales_api_local_mapal_sales'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api._local_mapal_sales(name, timestamp, timestamp) IS
'every captured sale of a Mapal server''s tables in [from_local, to_local), in the units'' local time';

CREATE FUNCTION sales_api._mapal_slot_totals(capture_id integer, unit_id bigint, business_day date)
RETURNS TABLE (currency_id text, sales_type_id text, slot_start timestamp,
               net numeric, gross numeric, checks bigint, guests bigint)
AS 'MODULE_PATHNAME', 'sales_api_mapal_slot_totals'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api._mapal_slot_totals(integer, bigint, date) IS
'the slot totals of a unit''s business day that the worker sends for a Mapal capture';

-- Connecteam: per location and day, against the vendor's daily totals.  One
-- fixed query, given the vendor's totals: reconcile_connecteam reads them with
-- the caller's user mapping, the worker with the capture's run_as mapping.
CREATE FUNCTION sales_api._reconcile_connecteam(server name, start_date date, end_date date,
                                                location_ids bigint[], day_tz text,
                                                vendor_locations bigint[], vendor_days date[],
                                                vendor_totals numeric[], vendor_projected numeric[])
RETURNS TABLE (location_id bigint, sales_date date, local_total numeric, vendor_total numeric,
               difference numeric, local_sales bigint, pending_items bigint, dead_items bigint,
               verdict text, projected_sales numeric, variance numeric)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $rc$
    WITH l AS (SELECT x.location_id AS loc, x.sales_date AS d, sum(x.total) AS total, sum(x.sales)::bigint AS n
                 FROM sales_api._local_connecteam_totals($1, $2, $3, $4, $5) x
                GROUP BY 1, 2),
         v AS (SELECT u.loc, u.d, u.total_sales, u.projected_sales
                 FROM unnest($6, $7, $8, $9) AS u(loc, d, total_sales, projected_sales)),
         w AS (SELECT o.location_id AS loc, (o.created_at AT TIME ZONE $5)::date AS d,
                      count(*) FILTER (WHERE o.state IN ('pending', 'in_flight', 'failed', 'unknown')) AS waiting,
                      count(*) FILTER (WHERE o.state = 'dead') AS dead
                 FROM sales_api.outbox o JOIN sales_api.capture c ON c.id = o.capture_id
                WHERE c.server_name = $1 AND o.kind IN ('ct_post', 'ct_delete')
                GROUP BY 1, 2
               UNION ALL
               SELECT o.location_id, g.d::date, count(*), 0
                 FROM sales_api.outbox o JOIN sales_api.capture c ON c.id = o.capture_id,
                      generate_series((o.window_start AT TIME ZONE $5)::date,
                                      (o.window_end AT TIME ZONE $5)::date, interval '1 day') AS g(d)
                WHERE c.server_name = $1 AND o.kind = 'ct_window'
                  AND o.state IN ('pending', 'in_flight', 'failed')
                GROUP BY 1, 2
               UNION ALL
               SELECT u.loc, (u.ts AT TIME ZONE $5)::date, count(*), 0
                 FROM sales_api.outbox_stage st JOIN sales_api.capture c ON c.id = st.capture_id,
                      unnest(coalesce(st.location_ids, ARRAY[st.location_id]),
                             coalesce(st.created_ats, ARRAY[st.created_at])) AS u(loc, ts)
                WHERE c.server_name = $1
                GROUP BY 1, 2),
         k AS (SELECT l.loc, l.d FROM l UNION SELECT v.loc, v.d FROM v)
    SELECT k.loc, k.d, coalesce(l.total, 0), coalesce(v.total_sales, 0),
           coalesce(v.total_sales, 0) - coalesce(l.total, 0), coalesce(l.n, 0),
           coalesce((SELECT sum(w.waiting) FROM w WHERE w.loc = k.loc AND w.d = k.d), 0)::bigint,
           coalesce((SELECT sum(w.dead) FROM w WHERE w.loc = k.loc AND w.d = k.d), 0)::bigint,
           CASE WHEN coalesce((SELECT sum(w.waiting) FROM w WHERE w.loc = k.loc AND w.d = k.d), 0) > 0 THEN 'pending'
                WHEN coalesce(l.total, 0) = coalesce(v.total_sales, 0) THEN 'match'
                ELSE 'mismatch' END,
           v.projected_sales,
           coalesce(v.total_sales, 0) - v.projected_sales
      FROM k LEFT JOIN l ON l.loc = k.loc AND l.d = k.d
             LEFT JOIN v ON v.loc = k.loc AND v.d = k.d
     ORDER BY 1, 2
$rc$;
COMMENT ON FUNCTION sales_api._reconcile_connecteam(name, date, date, bigint[], text, bigint[], date[], numeric[], numeric[]) IS
'reconcile_connecteam with the vendor''s totals given: the worker reads them with the capture''s run_as mapping';

CREATE FUNCTION sales_api.reconcile_connecteam(server name, start_date date, end_date date,
                                               location_ids bigint[] DEFAULT NULL,
                                               day_tz text DEFAULT 'UTC')
RETURNS TABLE (location_id bigint, sales_date date, local_total numeric, vendor_total numeric,
               difference numeric, local_sales bigint, pending_items bigint, dead_items bigint,
               verdict text, projected_sales numeric, variance numeric)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rc$
BEGIN
    IF server IS NULL OR start_date IS NULL OR end_date IS NULL OR day_tz IS NULL THEN
        RAISE EXCEPTION 'server, start_date, end_date and day_tz must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF end_date < start_date THEN
        RAISE EXCEPTION 'end_date must not be before start_date' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF end_date - start_date > 366 THEN
        RAISE EXCEPTION 'a reconciliation covers at most 366 days'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Reconcile a shorter period.';
    END IF;
    PERFORM pg_catalog.timezone(day_tz, now());     -- an unknown zone fails here, clearly
    RETURN QUERY
    SELECT r.*
      FROM (SELECT array_agg(ds.location_id) AS l, array_agg(ds.sales_date) AS d,
                   array_agg(ds.total_sales) AS t, array_agg(ds.projected_sales) AS p
              FROM sales_api.connecteam_daily_sales(server, start_date, end_date,
                                                    reconcile_connecteam.location_ids) ds) v,
           LATERAL sales_api._reconcile_connecteam(server, start_date, end_date,
                                                   reconcile_connecteam.location_ids, day_tz,
                                                   v.l, v.d, v.t, v.p) r
     ORDER BY 1, 2;
END;
$rc$;
COMMENT ON FUNCTION sales_api.reconcile_connecteam(name, date, date, bigint[], text) IS
'per location and day: local POS total (through the capture mapping) against Connecteam''s totalSales, outbox work still waiting, and a verdict';
REVOKE ALL ON FUNCTION sales_api.reconcile_connecteam(name, date, date, bigint[], text) FROM PUBLIC;

-- Mapal Cashrec: local figures per cash sheet (centre, business day, shift)
CREATE FUNCTION sales_api.reconcile_cashrec(server name, start_time timestamp, end_time timestamp,
                                            centers bigint[], unit_of_center jsonb DEFAULT NULL)
RETURNS TABLE (center_id bigint, unit_id bigint, business_day date, shift_id integer, cash_sheet_id text,
               till_id text, opened_at timestamp, closed_at timestamp,
               local_net numeric, vendor_net numeric, net_difference numeric,
               local_gross numeric, vendor_gross numeric, gross_difference numeric,
               local_checks bigint, vendor_checks integer, cash_difference numeric, verdict text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rm$
BEGIN
    IF server IS NULL OR start_time IS NULL OR end_time IS NULL OR centers IS NULL THEN
        RAISE EXCEPTION 'server, start_time, end_time and centers must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN QUERY
    WITH cs AS MATERIALIZED (
             SELECT * FROM sales_api.cashrec_fetch(server, start_time, end_time, centers)),
         b AS (SELECT min(cs.opened_at) AS lo, max(cs.closed_at) AS hi FROM cs),
         l AS MATERIALIZED (
             SELECT x.unit_id AS unit, x.sold_at AS at, x.net, x.gross, x.checks
               FROM b, sales_api._local_mapal_sales(server, b.lo, b.hi) x)
    SELECT cs.center_id, u.unit, cs.business_day, cs.shift_id, cs.cash_sheet_id, cs.till_id,
           cs.opened_at, cs.closed_at,
           coalesce(x.net, 0), cs.net_sales, cs.net_sales - coalesce(x.net, 0),
           coalesce(x.gross, 0), cs.gross_sales, cs.gross_sales - coalesce(x.gross, 0),
           coalesce(x.checks, 0)::bigint, cs.num_checks, cs.difference,
           CASE WHEN cs.net_sales IS NOT DISTINCT FROM coalesce(x.net, 0)
                 AND cs.gross_sales IS NOT DISTINCT FROM coalesce(x.gross, 0)
                 AND cs.num_checks IS NOT DISTINCT FROM coalesce(x.checks, 0)::integer
                THEN CASE WHEN coalesce(cs.difference, 0) <> 0 THEN 'match, till difference' ELSE 'match' END
                ELSE 'mismatch' END
      FROM cs
      CROSS JOIN LATERAL (SELECT coalesce((coalesce(unit_of_center, '{}'::jsonb) ->> cs.center_id::text)::bigint,
                                          cs.center_id) AS unit) u
      LEFT JOIN LATERAL (SELECT sum(l.net) AS net, sum(l.gross) AS gross, sum(l.checks) AS checks
                           FROM l
                          WHERE l.unit = u.unit AND l.at >= cs.opened_at AND l.at < cs.closed_at) x ON true
     ORDER BY 1, 3, 4, 5;
END;
$rm$;
COMMENT ON FUNCTION sales_api.reconcile_cashrec(name, timestamp, timestamp, bigint[], jsonb) IS
'per cash sheet: local net, gross and checks between the shift''s opening and closing against the sheet''s figures, and the till''s cash difference';
REVOKE ALL ON FUNCTION sales_api.reconcile_cashrec(name, timestamp, timestamp, bigint[], jsonb) FROM PUBLIC;

-- Repair: resynchronise a location's day (Connecteam) or a unit's day (Mapal)
CREATE FUNCTION sales_api.repair_connecteam(server name, location_id bigint, sales_date date,
                                            day_tz text DEFAULT 'UTC')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rp$
DECLARE
    n bigint := 0;
    c record;
    ws timestamptz;
    we timestamptz;
BEGIN
    IF server IS NULL OR location_id IS NULL OR sales_date IS NULL OR day_tz IS NULL THEN
        RAISE EXCEPTION 'server, location_id, sales_date and day_tz must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    ws := sales_date::timestamp AT TIME ZONE day_tz;
    we := (sales_date + 1)::timestamp AT TIME ZONE day_tz - interval '1 second';
    FOR c IN SELECT * FROM sales_api.capture
              WHERE capture.server_name = server AND vendor = 'connecteam' AND detached_at IS NULL LOOP
        -- the worker deletes the day's window at the vendor and posts every local sale of it again
        INSERT INTO sales_api.outbox (capture_id, kind, location_id, window_start, window_end, next_attempt_at)
        VALUES (c.id, 'ct_window', repair_connecteam.location_id, ws, we, now());
        n := n + 1;
    END LOOP;
    IF n = 0 THEN
        RAISE EXCEPTION 'no table is attached to server "%"', server
            USING ERRCODE = 'undefined_object', HINT = 'Attach the POS table with sales_api.attach() first.';
    END IF;
    PERFORM sales_api.wake_worker_on_commit();
    RETURN n;
END;
$rp$;
COMMENT ON FUNCTION sales_api.repair_connecteam(name, bigint, date, text) IS
'queues the replacement of a location''s day at Connecteam: delete the day''s window, post every local sale of it again';
REVOKE ALL ON FUNCTION sales_api.repair_connecteam(name, bigint, date, text) FROM PUBLIC;

CREATE FUNCTION sales_api.repair_mapal(server name, unit_id bigint, business_day date)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rp$
#variable_conflict use_column
DECLARE
    n bigint := 0;
    k bigint;
    c record;
BEGIN
    IF server IS NULL OR repair_mapal.unit_id IS NULL OR repair_mapal.business_day IS NULL THEN
        RAISE EXCEPTION 'server, unit_id and business_day must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    FOR c IN SELECT cap.id FROM sales_api.capture cap
              WHERE cap.server_name = repair_mapal.server AND cap.vendor = 'mapal' AND cap.detached_at IS NULL LOOP
        INSERT INTO sales_api.outbox (capture_id, kind, unit_id, business_day, currency_id, sales_type_id,
                                      slot_start, next_attempt_at)
        SELECT c.id, 'mapal_slot', repair_mapal.unit_id, repair_mapal.business_day, x.cur, x.typ, x.sl, now()
          FROM (SELECT t.currency_id AS cur, t.sales_type_id AS typ, t.slot_start AS sl
                  FROM sales_api._mapal_slot_totals(c.id, repair_mapal.unit_id, repair_mapal.business_day) t
                UNION
                SELECT o.currency_id, o.sales_type_id, o.slot_start FROM sales_api.outbox o
                 WHERE o.capture_id = c.id AND o.kind = 'mapal_slot'
                   AND o.unit_id = repair_mapal.unit_id AND o.business_day = repair_mapal.business_day) x
        ON CONFLICT (capture_id, unit_id, business_day, currency_id, sales_type_id, slot_start)
        WHERE kind = 'mapal_slot' AND state = 'pending' DO NOTHING;
        GET DIAGNOSTICS k = ROW_COUNT;
        n := n + k;
    END LOOP;
    PERFORM sales_api.wake_worker_on_commit();
    RETURN n;
END;
$rp$;
COMMENT ON FUNCTION sales_api.repair_mapal(name, bigint, date) IS
'queues every slot of a unit''s business day for sending again (totals recomputed from the POS table)';
REVOKE ALL ON FUNCTION sales_api.repair_mapal(name, bigint, date) FROM PUBLIC;

-- Scheduled reconciliation: the worker reconciles every Connecteam server with
-- a live capture each sales_api.reconcile_interval, records the results here
-- and logs a mismatch that outlasts sales_api.reconcile_grace.
CREATE TABLE sales_api.reconciliation (
    run_at        timestamptz NOT NULL,
    server_name   name NOT NULL,
    location_id   bigint NOT NULL,
    sales_date    date NOT NULL,
    local_total   numeric NOT NULL,
    vendor_total  numeric NOT NULL,
    difference    numeric NOT NULL,
    local_sales   bigint NOT NULL,
    pending_items bigint NOT NULL,
    dead_items    bigint NOT NULL,
    verdict       text NOT NULL,
    PRIMARY KEY (server_name, location_id, sales_date, run_at)
);
CREATE INDEX reconciliation_run_at_idx ON sales_api.reconciliation (run_at);
SELECT pg_catalog.pg_extension_config_dump('sales_api.reconciliation', '');
COMMENT ON TABLE sales_api.reconciliation IS 'results of the worker''s scheduled reconciliations (sales_api.reconcile_retention)';
REVOKE ALL ON sales_api.reconciliation FROM PUBLIC;

CREATE VIEW sales_api.reconciliation_latest AS
SELECT DISTINCT ON (server_name, location_id, sales_date)
       server_name, location_id, sales_date, run_at, local_total, vendor_total, difference,
       pending_items, dead_items, verdict
  FROM sales_api.reconciliation
 ORDER BY server_name, location_id, sales_date, run_at DESC;
COMMENT ON VIEW sales_api.reconciliation_latest IS 'the latest verdict per server, location and day';
REVOKE ALL ON sales_api.reconciliation_latest FROM PUBLIC;

-- What the worker records, given the vendor's totals; returns the days whose
-- mismatch has lasted longer than `grace`.
CREATE FUNCTION sales_api._record_reconciliation(server name, start_date date, end_date date, day_tz text,
                                                 grace interval, vendor_locations bigint[], vendor_days date[],
                                                 vendor_totals numeric[], vendor_projected numeric[])
RETURNS TABLE (location_id bigint, sales_date date, difference numeric, mismatch_since timestamptz)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rr$
#variable_conflict use_column
DECLARE
    t timestamptz := clock_timestamp();
BEGIN
    INSERT INTO sales_api.reconciliation
    SELECT t, server, r.location_id, r.sales_date, r.local_total, r.vendor_total, r.difference,
           r.local_sales, r.pending_items, r.dead_items, r.verdict
      FROM sales_api._reconcile_connecteam(server, start_date, end_date, NULL, day_tz, vendor_locations,
                                           vendor_days, vendor_totals, vendor_projected) r;
    RETURN QUERY
    SELECT cur.location_id, cur.sales_date, cur.difference, s.since
      FROM sales_api.reconciliation cur
     CROSS JOIN LATERAL (
           SELECT min(h.run_at) AS since FROM sales_api.reconciliation h
            WHERE h.server_name = cur.server_name AND h.location_id = cur.location_id
              AND h.sales_date = cur.sales_date AND h.verdict = 'mismatch'
              AND h.run_at > coalesce((SELECT max(g.run_at) FROM sales_api.reconciliation g
                                        WHERE g.server_name = cur.server_name AND g.location_id = cur.location_id
                                          AND g.sales_date = cur.sales_date AND g.verdict <> 'mismatch'),
                                      '-infinity')) s
     WHERE cur.server_name = _record_reconciliation.server AND cur.run_at = t AND cur.verdict = 'mismatch'
       AND s.since <= t - grace;
END;
$rr$;
COMMENT ON FUNCTION sales_api._record_reconciliation(name, date, date, text, interval, bigint[], date[], numeric[], numeric[]) IS
'records a reconciliation of one Connecteam server, given the vendor''s totals, and returns mismatches older than the grace period';
REVOKE ALL ON FUNCTION sales_api._record_reconciliation(name, date, date, text, interval, bigint[], date[], numeric[], numeric[]) FROM PUBLIC;

-- The same, for an operator: the vendor's totals with the caller's mapping
CREATE FUNCTION sales_api.record_reconciliation(server name, days integer, day_tz text, grace interval)
RETURNS TABLE (location_id bigint, sales_date date, difference numeric, mismatch_since timestamptz)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $rr$
DECLARE
    last_day  date := (clock_timestamp() AT TIME ZONE day_tz)::date;
    first_day date := last_day - (days - 1);
BEGIN
    RETURN QUERY
    SELECT r.*
      FROM (SELECT array_agg(ds.location_id) AS l, array_agg(ds.sales_date) AS d,
                   array_agg(ds.total_sales) AS t, array_agg(ds.projected_sales) AS p
              FROM sales_api.connecteam_daily_sales(server, first_day, last_day) ds) v,
           LATERAL sales_api._record_reconciliation(server, first_day, last_day, day_tz, grace,
                                                    v.l, v.d, v.t, v.p) r;
END;
$rr$;
COMMENT ON FUNCTION sales_api.record_reconciliation(name, integer, text, interval) IS
'records a reconciliation of one Connecteam server and returns mismatches older than the grace period';
REVOKE ALL ON FUNCTION sales_api.record_reconciliation(name, integer, text, interval) FROM PUBLIC;

-- A database gets its worker when this transaction commits (src/launcher.c),
-- not at the launcher's next look for databases.
SELECT sales_api.wake_worker_on_commit();
