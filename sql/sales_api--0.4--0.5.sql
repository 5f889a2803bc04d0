/* sales_api--0.4--0.5.sql: cheaper capture, and a Mapal slot marked dirty by
 * a transaction that commits after the worker claimed it is never lost */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION sales_api UPDATE TO '0.5'" to load this file. \quit

-------------------------------------------------------------------------------
-- The foreign keys to sales_api.capture go.  Each one cost every captured
-- sale a queued RI trigger event, an SPI query and a FOR KEY SHARE lock on
-- the same capture row; with two POS sessions inserting at once, that lock
-- became a new MultiXact per sale.  Capture ids come only from attach(),
-- capture rows are never deleted by sales_api (detach() keeps them so that
-- queued work drains), and deleting one by hand still cascades, here.
-------------------------------------------------------------------------------
ALTER TABLE sales_api.outbox DROP CONSTRAINT outbox_capture_id_fkey;
ALTER TABLE sales_api.connecteam_sent DROP CONSTRAINT connecteam_sent_capture_id_fkey;

CREATE FUNCTION sales_api._capture_deleted()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM sales_api.outbox WHERE capture_id = OLD.id;
    DELETE FROM sales_api.connecteam_sent WHERE capture_id = OLD.id;
    RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION sales_api._capture_deleted() FROM PUBLIC;
CREATE TRIGGER capture_deleted AFTER DELETE ON sales_api.capture
    FOR EACH ROW EXECUTE FUNCTION sales_api._capture_deleted();

-------------------------------------------------------------------------------
-- Mapal dirty markers.  Up to 0.4 a sale whose slot already had a pending
-- marker did nothing (ON CONFLICT DO NOTHING).  If its transaction committed
-- after the worker had claimed that marker and read the slot's totals, the
-- sale was in no total sent and in no marker left: Mapal kept a stale slot.
-- Now the sale's transaction locks the pending marker (DO UPDATE ... WHERE
-- false locks the row and writes nothing), and the worker's claim (FOR
-- UPDATE SKIP LOCKED) leaves a locked marker for a later cycle, after the
-- sale has committed.  A marker already claimed is no longer pending, so the
-- sale inserts a new one.  Rows are inserted in key order, so two POS
-- transactions lock markers in the same order.  (_capture_install, below,
-- builds that statement; the upgrade re-creates the triggers of attached
-- tables with it.)
-------------------------------------------------------------------------------

-------------------------------------------------------------------------------
-- The capture trigger in C (src/capture.c): one function for every capture,
-- its statements passed as trigger arguments, their plans kept per backend.
-- Up to 0.4 each capture had three PL/pgSQL SECURITY DEFINER functions.
-------------------------------------------------------------------------------
CREATE FUNCTION sales_api.capture_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'sales_api_capture_trigger'
LANGUAGE C;
COMMENT ON FUNCTION sales_api.capture_trigger() IS
'the statement trigger attach() installs: runs its arguments (statements over the transition tables) as a superuser';
REVOKE ALL ON FUNCTION sales_api.capture_trigger() FROM PUBLIC;

-- what attach() generated inline up to 0.4, for a capture row: the
-- statements, the worker's queries, and the triggers
CREATE FUNCTION sales_api._capture_install(capture_id integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $install$
DECLARE
    c        record;
    mapping  jsonb;
    cid      integer := capture_id;
    tbl      text;
    k        text;
    ins_sql  text;
    del_sql  text;
    slot     text;
    bday     text;
    tz       text;
    slotmin  integer;
    rec_sql  text;
    win_sql  text;
BEGIN
    SELECT cap.*, s.srvoptions INTO c
      FROM sales_api.capture cap JOIN pg_foreign_server s ON s.oid = cap.server_id
     WHERE cap.id = capture_id;
    mapping := c.mapping;
    tbl := c.relid::text;
    k := c.key_expr;

    IF c.vendor = 'connecteam' THEN
        ins_sql := format(
            'INSERT INTO sales_api.outbox (capture_id, kind, sale_key, location_id, sale_type, created_at,'
            ' final_sale_amount, tax_amount, currency, next_attempt_at)'
            ' SELECT %s, ''ct_post'', %s::text, %s::bigint, %s::text, %s::timestamptz, %s::numeric, %s::numeric, %s::text,'
            ' statement_timestamp() FROM %%s AS s',
            cid, k, sales_api._expr(mapping, 'location_id'), sales_api._expr(mapping, 'sale_type'),
            sales_api._expr(mapping, 'created_at'), sales_api._expr(mapping, 'final_sale_amount'),
            sales_api._expr(mapping, 'tax_amount', 'NULL'), sales_api._expr(mapping, 'currency', 'NULL'));
        -- old versions: cancel what was not sent yet, delete at the vendor what was
        del_sql := format(
            'WITH gone AS (SELECT DISTINCT %1$s::text AS k FROM %%1$s AS s),'
            -- a version certainly not at the vendor is simply cancelled
            ' cancelled AS (UPDATE sales_api.outbox o SET state = ''superseded'', lease_until = NULL'
            '   FROM gone WHERE o.capture_id = %2$s AND o.kind = ''ct_post'' AND o.sale_key = gone.k'
            '   AND o.state IN (''pending'', ''failed'') AND NOT o.ambiguous RETURNING o.id)'
            -- a version the vendor holds, or may hold, is deleted: the transactionId
            -- when known, else the post whose outcome decides it (target_post_id)
            ' INSERT INTO sales_api.outbox (capture_id, kind, sale_key, location_id, created_at, vendor_ref,'
            '                               target_post_id, next_attempt_at)'
            -- a newer version in flight or ambiguous is the one to undo (an older,
            -- already sent version has its own delete queued before this one)
            ' SELECT %2$s, ''ct_delete'', gone.k, cs.location_id, cs.created_at,'
            '        CASE WHEN p.id IS NULL THEN cs.transaction_id END, p.id,'
            '        statement_timestamp()'
            '   FROM gone'
            '   LEFT JOIN sales_api.connecteam_sent cs ON cs.capture_id = %2$s AND cs.sale_key = gone.k'
            '   LEFT JOIN LATERAL (SELECT max(o.id) AS id FROM sales_api.outbox o'
            '                       WHERE o.capture_id = %2$s AND o.kind = ''ct_post'' AND o.sale_key = gone.k'
            -- any unfinished post the cancel did not catch: in flight, ambiguous, or
            -- claimed by the worker between this statement's snapshot and its lock
            '                         AND o.state IN (''pending'', ''failed'', ''in_flight'', ''unknown'')'
            '                         AND o.id NOT IN (SELECT id FROM cancelled)) p ON true'
            '  WHERE cs.transaction_id IS NOT NULL OR p.id IS NOT NULL',
            k, cid);
        win_sql := format(
            'SELECT %s::text, %s::bigint, %s::text, %s::timestamptz, %s::numeric, %s::numeric, %s::text FROM %s AS s'
            ' WHERE %s::bigint = $1 AND %s::timestamptz BETWEEN $2 AND $3',
            k, sales_api._expr(mapping, 'location_id'), sales_api._expr(mapping, 'sale_type'),
            sales_api._expr(mapping, 'created_at'), sales_api._expr(mapping, 'final_sale_amount'),
            sales_api._expr(mapping, 'tax_amount', 'NULL'), sales_api._expr(mapping, 'currency', 'NULL'),
            tbl, sales_api._expr(mapping, 'location_id'), sales_api._expr(mapping, 'created_at'));
    ELSE
        slotmin := coalesce((SELECT split_part(o, '=', 2)::int FROM unnest(c.srvoptions) o WHERE o LIKE 'slot_minutes=%'), 15);
        tz := coalesce((SELECT substr(o, 10) FROM unnest(c.srvoptions) o WHERE o LIKE 'timezone=%'),
                       current_setting('TimeZone'));
        slot := format('sales_api.time_slot(%s::timestamptz, %s, %L)', sales_api._expr(mapping, 'sold_at'), slotmin, tz);
        bday := coalesce(sales_api._expr(mapping, 'business_day', 'NULL') || '::date', 'NULL');
        ins_sql := format(
            'INSERT INTO sales_api.outbox (capture_id, kind, unit_id, business_day, currency_id, sales_type_id, slot_start, next_attempt_at)'
            ' SELECT DISTINCT %s, ''mapal_slot'', %s::bigint, coalesce(%s, (%s)::date), %s::text, %s::text, %s, statement_timestamp()'
            ' FROM %%s AS s ORDER BY 3, 4, 5, 6, 7'
            ' ON CONFLICT (capture_id, unit_id, business_day, currency_id, sales_type_id, slot_start)'
            ' WHERE kind = ''mapal_slot'' AND state = ''pending'' DO UPDATE SET state = ''pending'' WHERE false',
            cid, sales_api._expr(mapping, 'unit_id'), bday, slot,
            sales_api._expr(mapping, 'currency_id'), sales_api._expr(mapping, 'sales_type_id'), slot);
        del_sql := ins_sql;
        -- totals of the slots of one unit and business day, straight from the POS table
        rec_sql := format(
            'SELECT c, t, sl, sum(net), sum(gross), sum(checks)::bigint, sum(guests)::bigint FROM ('
            ' SELECT %s::text AS c, %s::text AS t, %s AS sl, coalesce(%s, (%s)::date) AS bd,'
            ' %s::numeric AS net, %s::numeric AS gross, %s::numeric AS checks, %s::numeric AS guests'
            ' FROM %s AS s WHERE %s::bigint = $1'
            ' AND %s::timestamptz >= ($2::timestamp - interval ''1 day'') AT TIME ZONE %L'
            ' AND %s::timestamptz < ($2::timestamp + interval ''2 days'') AT TIME ZONE %L) x'
            ' WHERE bd = $2 GROUP BY c, t, sl',
            sales_api._expr(mapping, 'currency_id'), sales_api._expr(mapping, 'sales_type_id'), slot, bday, slot,
            sales_api._expr(mapping, 'net_sales'), sales_api._expr(mapping, 'gross_sales'),
            sales_api._expr(mapping, 'num_checks', '1'), sales_api._expr(mapping, 'num_guests', '0'),
            tbl, sales_api._expr(mapping, 'unit_id'),
            sales_api._expr(mapping, 'sold_at'), tz, sales_api._expr(mapping, 'sold_at'), tz);
    END IF;

    -- check every expression against the table now, not at the first sale
    EXECUTE format(ins_sql, format('(SELECT * FROM %s LIMIT 0)', tbl)) ;
    IF rec_sql IS NOT NULL THEN
        EXECUTE 'EXPLAIN ' || rec_sql USING 0::bigint, current_date;
    END IF;
    IF win_sql IS NOT NULL THEN
        EXECUTE 'EXPLAIN ' || win_sql USING 0::bigint, now(), now();
    END IF;
    UPDATE sales_api.capture SET recompute_sql = rec_sql, window_sql = win_sql WHERE id = capture_id;

    -- statement-level triggers with transition tables: each runs its statements
    -- (one INSERT ... SELECT per statement) through the C trigger
    EXECUTE format('CREATE TRIGGER sales_api_capture_%s_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS sales_api_new'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION sales_api.capture_trigger(%L)',
                   cid, tbl, format(ins_sql, 'sales_api_new'));
    EXECUTE format('CREATE TRIGGER sales_api_capture_%s_del AFTER DELETE ON %s REFERENCING OLD TABLE AS sales_api_old'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION sales_api.capture_trigger(%L)',
                   cid, tbl, format(del_sql, 'sales_api_old'));
    EXECUTE format('CREATE TRIGGER sales_api_capture_%s_upd AFTER UPDATE ON %s'
                   ' REFERENCING OLD TABLE AS sales_api_old NEW TABLE AS sales_api_new'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION sales_api.capture_trigger(%L, %L)',
                   cid, tbl, format(del_sql, 'sales_api_old'), format(ins_sql, 'sales_api_new'));
END;
$install$;
REVOKE ALL ON FUNCTION sales_api._capture_install(integer) FROM PUBLIC;

CREATE OR REPLACE FUNCTION sales_api.attach(sales_table regclass, server name, mapping jsonb,
                                 sale_key text DEFAULT NULL, run_as regrole DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $attach$
DECLARE
    srv      record;
    vendor   text;
    cid      integer;
    tbl      text := sales_table::text;
    k        text;
    known    text[];
BEGIN
    IF sales_table IS NULL OR server IS NULL THEN
        RAISE EXCEPTION 'sales_table and server must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'only a superuser can attach sales_api to a table'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Ask the DBA to run sales_api.attach(); the POS roles need no privilege on the outbox.';
    END IF;
    IF mapping IS NULL OR jsonb_typeof(mapping) <> 'object' THEN
        RAISE EXCEPTION 'mapping must be a JSON object of field -> SQL expression'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT s.oid, s.srvname, s.srvoptions, w.fdwname INTO srv
      FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
     WHERE s.srvname = server;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'server "%" does not exist', server USING ERRCODE = 'undefined_object';
    END IF;
    IF srv.fdwname <> 'sales_api' THEN
        RAISE EXCEPTION 'server "%" is not a sales_api server', server USING ERRCODE = 'wrong_object_type';
    END IF;
    vendor := (SELECT split_part(o, '=', 2) FROM unnest(srv.srvoptions) o WHERE o LIKE 'vendor=%');
    IF (SELECT relpersistence FROM pg_class WHERE oid = sales_table) <> 'p'
       OR (SELECT relkind FROM pg_class WHERE oid = sales_table) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a logged table', tbl
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Captured sales must be durable: attach a permanent (logged) table.';
    END IF;
    run_as := coalesce(run_as, current_user::regrole);

    -- the sale's identity: explicit, else the single-column primary key
    IF sale_key IS NULL THEN
        SELECT quote_ident(a.attname) INTO k
          FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = sales_table AND i.indisprimary AND i.indnatts = 1;
        IF k IS NULL THEN
            RAISE EXCEPTION '% has no single-column primary key', tbl
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Pass sale_key => an expression that identifies a sale.';
        END IF;
    ELSE
        k := '(' || sale_key || ')';
    END IF;

    IF vendor = 'connecteam' THEN
        known := ARRAY['location_id', 'sale_type', 'created_at', 'final_sale_amount', 'tax_amount', 'currency'];
    ELSE
        known := ARRAY['unit_id', 'sold_at', 'business_day', 'currency_id', 'sales_type_id',
                       'net_sales', 'gross_sales', 'num_checks', 'num_guests'];
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_object_keys(mapping) f WHERE f <> ALL (known)) THEN
        RAISE EXCEPTION 'mapping has unknown fields: %',
            (SELECT string_agg(f, ', ') FROM jsonb_object_keys(mapping) f WHERE f <> ALL (known))
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Fields for a %s server: %s.', vendor, array_to_string(known, ', '));
    END IF;

    IF EXISTS (SELECT 1 FROM sales_api.capture c WHERE c.relid = sales_table AND c.server_id = srv.oid
               AND c.detached_at IS NULL) THEN
        RAISE EXCEPTION '% is already attached to server "%"', tbl, server
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Call sales_api.detach() first to change the mapping.';
    END IF;
    INSERT INTO sales_api.capture (relid, server_id, server_name, vendor, run_as, mapping, key_expr)
    VALUES (sales_table, srv.oid, srv.srvname, vendor, run_as, mapping, k)
    RETURNING id INTO cid;
    INSERT INTO sales_api.server_state (server_id) VALUES (srv.oid) ON CONFLICT DO NOTHING;
    PERFORM sales_api._capture_install(cid);
    RETURN cid;
END;
$attach$;
COMMENT ON FUNCTION sales_api.attach(regclass, name, jsonb, text, regrole) IS
'captures the sales of a POS table for a vendor server: statement triggers enqueue work in the inserting transaction';

CREATE OR REPLACE FUNCTION sales_api.detach(sales_table regclass, server name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c record;
BEGIN
    SELECT * INTO c FROM sales_api.capture
     WHERE relid = sales_table AND server_name = server AND detached_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% is not attached to server "%"', sales_table, server
            USING ERRCODE = 'undefined_object';
    END IF;
    EXECUTE format('DROP TRIGGER sales_api_capture_%s_ins ON %s', c.id, sales_table);
    EXECUTE format('DROP TRIGGER sales_api_capture_%s_del ON %s', c.id, sales_table);
    EXECUTE format('DROP TRIGGER sales_api_capture_%s_upd ON %s', c.id, sales_table);
    -- work already enqueued still drains
    UPDATE sales_api.capture SET detached_at = now() WHERE id = c.id;
END;
$$;

-- tables attached before this version: the C trigger replaces their functions
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT id, relid FROM sales_api.capture WHERE detached_at IS NULL ORDER BY id LOOP
        EXECUTE format('DROP TRIGGER sales_api_capture_%s_ins ON %s', c.id, c.relid);
        EXECUTE format('DROP TRIGGER sales_api_capture_%s_del ON %s', c.id, c.relid);
        EXECUTE format('DROP TRIGGER sales_api_capture_%s_upd ON %s', c.id, c.relid);
        EXECUTE format('DROP FUNCTION sales_api.capture_%s_ins(), sales_api.capture_%s_del(), sales_api.capture_%s_upd()',
                       c.id, c.id, c.id);
        PERFORM sales_api._capture_install(c.id);
    END LOOP;
END;
$$;
