/* sales_api--0.2--0.3.sql: the outbox, capture triggers and the background worker's SQL side */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION sales_api UPDATE TO '0.3'" to load this file. \quit

-------------------------------------------------------------------------------
-- Captures: which POS table feeds which server, through which expressions
-------------------------------------------------------------------------------
CREATE TABLE sales_api.capture (
    id          serial PRIMARY KEY,
    relid       regclass NOT NULL,
    server_id   oid NOT NULL,
    server_name name NOT NULL,
    vendor      text NOT NULL CHECK (vendor IN ('mapal', 'connecteam')),
    run_as      regrole NOT NULL,          -- whose user mapping the worker uses
    mapping     jsonb NOT NULL,            -- field -> SQL expression over the table's columns
    key_expr    text NOT NULL,             -- identity of a sale (Connecteam reference)
    recompute_sql text,                    -- Mapal: slot totals of a unit-day from the table
    window_sql  text,                      -- Connecteam: every local sale of a location in a time window
    attached_at timestamptz NOT NULL DEFAULT now(),
    detached_at timestamptz
);
-- one live capture per table and server; a detached one keeps draining
CREATE UNIQUE INDEX capture_live_idx ON sales_api.capture (relid, server_id) WHERE detached_at IS NULL;
COMMENT ON TABLE sales_api.capture IS 'POS tables attached to a vendor server by sales_api.attach()';

-- Per server: paused by an operator?
CREATE TABLE sales_api.server_state (
    server_id oid PRIMARY KEY,
    paused    boolean NOT NULL DEFAULT false,
    paused_at timestamptz
);

-------------------------------------------------------------------------------
-- The outbox: one row per unit of work, with a visible state
--   pending     waiting to be sent (next_attempt_at)
--   in_flight   claimed by the worker until lease_until; an expired lease is taken again
--   sent        done; http_status and vendor_ref (Connecteam transactionId) kept
--   failed      failed for now: attempts, next_attempt_at and last_error say when and why
--   dead        permanent vendor refusal or max attempts reached; retry_dead() requeues
--   unknown     ambiguous outcome parked for an operator (ambiguous_policy = 'park')
--   superseded  replaced by a later version of the same sale before it was sent
-------------------------------------------------------------------------------
CREATE TABLE sales_api.outbox (
    id              bigserial PRIMARY KEY,
    capture_id      integer NOT NULL REFERENCES sales_api.capture ON DELETE CASCADE,
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
COMMENT ON TABLE sales_api.outbox IS 'work for the vendors, enqueued by capture triggers in the inserting transaction';

-- the worker's claims walk this in id order; it holds only unfinished work,
-- so a long history of sent items costs the claim nothing
CREATE INDEX outbox_todo_idx ON sales_api.outbox (id)
    WHERE state IN ('pending', 'failed', 'in_flight');
CREATE UNIQUE INDEX outbox_mapal_dirty_idx ON sales_api.outbox
    (capture_id, unit_id, business_day, currency_id, sales_type_id, slot_start)
    WHERE kind = 'mapal_slot' AND state = 'pending';
CREATE INDEX outbox_sale_key_idx ON sales_api.outbox (capture_id, sale_key) WHERE sale_key IS NOT NULL;
CREATE INDEX outbox_sent_idx ON sales_api.outbox (sent_at) WHERE state = 'sent';
CREATE INDEX outbox_superseded_idx ON sales_api.outbox (enqueued_at) WHERE state = 'superseded';

-- Connecteam: the vendor's transactionId of the version of each sale it holds
CREATE TABLE sales_api.connecteam_sent (
    capture_id     integer NOT NULL REFERENCES sales_api.capture ON DELETE CASCADE,
    sale_key       text NOT NULL,
    transaction_id text NOT NULL,
    location_id    bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    final_sale_amount numeric NOT NULL,
    sent_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (capture_id, sale_key)
);

REVOKE ALL ON sales_api.capture, sales_api.server_state, sales_api.outbox, sales_api.connecteam_sent FROM PUBLIC;

-------------------------------------------------------------------------------
-- Waking the worker when a capturing transaction commits
-------------------------------------------------------------------------------
CREATE FUNCTION sales_api.wake_worker_on_commit()
RETURNS void
AS 'MODULE_PATHNAME', 'sales_api_wake_worker_on_commit'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api.wake_worker_on_commit() IS
'sets the worker''s latch when the current transaction commits (called by capture triggers)';
REVOKE ALL ON FUNCTION sales_api.wake_worker_on_commit() FROM PUBLIC;

CREATE FUNCTION sales_api._depend_on_extension(regprocedure)
RETURNS void
AS 'MODULE_PATHNAME', 'sales_api_depend_on_extension'
LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION sales_api._depend_on_extension(regprocedure) FROM PUBLIC;

-- pg_dump keeps the captures and the queued work (pg_cron's pattern)
SELECT pg_catalog.pg_extension_config_dump('sales_api.capture', '');
SELECT pg_catalog.pg_extension_config_dump('sales_api.capture_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sales_api.server_state', '');
SELECT pg_catalog.pg_extension_config_dump('sales_api.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('sales_api.outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sales_api.connecteam_sent', '');

-------------------------------------------------------------------------------
-- attach() / detach()
-------------------------------------------------------------------------------
CREATE FUNCTION sales_api._expr(mapping jsonb, field text, dflt text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e text := mapping ->> field;
BEGIN
    IF e IS NULL OR btrim(e) = '' THEN
        IF dflt IS NULL THEN
            RAISE EXCEPTION 'mapping has no expression for "%"', field
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Give every required field an SQL expression over the table''s columns.';
        END IF;
        RETURN dflt;
    END IF;
    IF e ~ ';' THEN
        RAISE EXCEPTION 'the expression for "%" contains a semicolon', field
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give one SQL expression, not a statement.';
    END IF;
    RETURN '(' || e || ')';
END;
$$;

CREATE FUNCTION sales_api.attach(sales_table regclass, server name, mapping jsonb,
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
    fn       text;
    ins_sql  text;
    del_sql  text;
    slot     text;
    bday     text;
    tz       text;
    slotmin  integer;
    rec_sql  text;
    win_sql  text;
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

    IF vendor = 'connecteam' THEN
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
        slotmin := coalesce((SELECT split_part(o, '=', 2)::int FROM unnest(srv.srvoptions) o WHERE o LIKE 'slot_minutes=%'), 15);
        tz := coalesce((SELECT substr(o, 10) FROM unnest(srv.srvoptions) o WHERE o LIKE 'timezone=%'),
                       current_setting('TimeZone'));
        slot := format('sales_api.time_slot(%s::timestamptz, %s, %L)', sales_api._expr(mapping, 'sold_at'), slotmin, tz);
        bday := coalesce(sales_api._expr(mapping, 'business_day', 'NULL') || '::date', 'NULL');
        ins_sql := format(
            'INSERT INTO sales_api.outbox (capture_id, kind, unit_id, business_day, currency_id, sales_type_id, slot_start, next_attempt_at)'
            ' SELECT DISTINCT %s, ''mapal_slot'', %s::bigint, coalesce(%s, (%s)::date), %s::text, %s::text, %s, statement_timestamp()'
            ' FROM %%s AS s'
            ' ON CONFLICT (capture_id, unit_id, business_day, currency_id, sales_type_id, slot_start)'
            ' WHERE kind = ''mapal_slot'' AND state = ''pending'' DO NOTHING',
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
    UPDATE sales_api.capture SET recompute_sql = rec_sql, window_sql = win_sql WHERE id = cid;

    -- statement-level triggers with transition tables: one INSERT ... SELECT per statement
    fn := format('sales_api.capture_%s', cid);
    EXECUTE format($f$
        CREATE FUNCTION %s_ins() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp AS $b$
        BEGIN
            %s;
            PERFORM sales_api.wake_worker_on_commit();
            RETURN NULL;
        END $b$$f$, fn, format(ins_sql, 'sales_api_new'));
    EXECUTE format($f$
        CREATE FUNCTION %s_del() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp AS $b$
        BEGIN
            %s;
            PERFORM sales_api.wake_worker_on_commit();
            RETURN NULL;
        END $b$$f$, fn, format(del_sql, 'sales_api_old'));
    EXECUTE format($f$
        CREATE FUNCTION %s_upd() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp AS $b$
        BEGIN
            %s;
            %s;
            PERFORM sales_api.wake_worker_on_commit();
            RETURN NULL;
        END $b$$f$, fn, format(del_sql, 'sales_api_old'), format(ins_sql, 'sales_api_new'));
    EXECUTE format('REVOKE ALL ON FUNCTION %s_ins(), %s_del(), %s_upd() FROM PUBLIC', fn, fn, fn);
    -- DROP EXTENSION must not leave triggers behind that would fail every sale
    PERFORM sales_api._depend_on_extension((fn || '_ins()')::regprocedure);
    PERFORM sales_api._depend_on_extension((fn || '_del()')::regprocedure);
    PERFORM sales_api._depend_on_extension((fn || '_upd()')::regprocedure);
    EXECUTE format('CREATE TRIGGER sales_api_capture_%s_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS sales_api_new'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION %s_ins()', cid, tbl, fn);
    EXECUTE format('CREATE TRIGGER sales_api_capture_%s_del AFTER DELETE ON %s REFERENCING OLD TABLE AS sales_api_old'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION %s_del()', cid, tbl, fn);
    EXECUTE format('CREATE TRIGGER sales_api_capture_%s_upd AFTER UPDATE ON %s'
                   ' REFERENCING OLD TABLE AS sales_api_old NEW TABLE AS sales_api_new'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION %s_upd()', cid, tbl, fn);
    RETURN cid;
END;
$attach$;
COMMENT ON FUNCTION sales_api.attach(regclass, name, jsonb, text, regrole) IS
'captures the sales of a POS table for a vendor server: statement triggers enqueue work in the inserting transaction';
REVOKE ALL ON FUNCTION sales_api.attach(regclass, name, jsonb, text, regrole) FROM PUBLIC;

CREATE FUNCTION sales_api.detach(sales_table regclass, server name)
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
    EXECUTE format('DROP FUNCTION sales_api.capture_%s_ins(), sales_api.capture_%s_del(), sales_api.capture_%s_upd()',
                   c.id, c.id, c.id);
    -- work already enqueued still drains
    UPDATE sales_api.capture SET detached_at = now() WHERE id = c.id;
END;
$$;
COMMENT ON FUNCTION sales_api.detach(regclass, name) IS
'stops capturing a POS table; work already in the outbox still drains';
REVOKE ALL ON FUNCTION sales_api.detach(regclass, name) FROM PUBLIC;

-------------------------------------------------------------------------------
-- Operating the worker: pause, resume, retry, purge, monitor
-------------------------------------------------------------------------------
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
    OUT rate_waits bigint, OUT latency_p50_ms double precision, OUT latency_p99_ms double precision)
RETURNS record
AS 'MODULE_PATHNAME', 'sales_api_worker_stats'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION sales_api.worker_stats() IS
'the worker''s live figures from shared memory since it started (latencies over the last 1024 requests)';
REVOKE ALL ON FUNCTION sales_api.worker_stats() FROM PUBLIC;

CREATE FUNCTION sales_api.pause(server name)
RETURNS void LANGUAGE sql
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO sales_api.server_state (server_id, paused, paused_at)
    SELECT oid, true, now() FROM pg_foreign_server WHERE srvname = server
    ON CONFLICT (server_id) DO UPDATE SET paused = true, paused_at = now();
END;
COMMENT ON FUNCTION sales_api.pause(name) IS 'stops the worker sending to a server; items wait in the outbox';
REVOKE ALL ON FUNCTION sales_api.pause(name) FROM PUBLIC;

CREATE FUNCTION sales_api.resume(server name)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE sales_api.server_state SET paused = false, paused_at = NULL
     WHERE server_id = (SELECT oid FROM pg_foreign_server WHERE srvname = server);
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

CREATE VIEW sales_api.outbox_status AS
SELECT c.server_name,
       o.state,
       count(*) AS items,
       min(o.enqueued_at) FILTER (WHERE o.state IN ('pending', 'failed', 'in_flight')) AS oldest_enqueued_at,
       now() - min(o.enqueued_at) FILTER (WHERE o.state IN ('pending', 'failed', 'in_flight')) AS oldest_pending_age,
       max(o.sent_at) AS last_success_at,
       (array_agg(o.last_error ORDER BY o.id DESC) FILTER (WHERE o.last_error IS NOT NULL AND o.state <> 'sent'))[1] AS last_error,
       bool_or(coalesce(s.paused, false)) AS paused
  FROM sales_api.outbox o
  JOIN sales_api.capture c ON c.id = o.capture_id
  LEFT JOIN sales_api.server_state s ON s.server_id = c.server_id
 GROUP BY c.server_name, o.state;
COMMENT ON VIEW sales_api.outbox_status IS 'items per server and state, the oldest waiting, the last error and the last success';
REVOKE ALL ON sales_api.outbox_status FROM PUBLIC;
