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
-- transactions lock markers in the same order.
-------------------------------------------------------------------------------
CREATE FUNCTION sales_api._mapal_lock_markers(sql text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
RETURN replace(replace(sql,
    ' ON CONFLICT (capture_id, unit_id, business_day, currency_id, sales_type_id, slot_start)',
    ' ORDER BY 3, 4, 5, 6, 7 ON CONFLICT (capture_id, unit_id, business_day, currency_id, sales_type_id, slot_start)'),
    ' state = ''pending'' DO NOTHING',
    ' state = ''pending'' DO UPDATE SET state = ''pending'' WHERE false');
REVOKE ALL ON FUNCTION sales_api._mapal_lock_markers(text) FROM PUBLIC;

-- the capture functions of tables attached before this version
DO $$
DECLARE
    c record;
    f regprocedure;
BEGIN
    FOR c IN SELECT id FROM sales_api.capture WHERE vendor = 'mapal' AND detached_at IS NULL LOOP
        FOREACH f IN ARRAY ARRAY[format('sales_api.capture_%s_ins()', c.id)::regprocedure,
                                 format('sales_api.capture_%s_del()', c.id)::regprocedure,
                                 format('sales_api.capture_%s_upd()', c.id)::regprocedure] LOOP
            EXECUTE sales_api._mapal_lock_markers(pg_get_functiondef(f));
        END LOOP;
    END LOOP;
END;
$$;

-- and attach() builds them so from now on: its Mapal marker statement goes
-- through _mapal_lock_markers() (a one-line change to the 0.3 definition,
-- applied to it here rather than repeating its two hundred lines)
DO $$
DECLARE
    def text := pg_get_functiondef('sales_api.attach(regclass, name, jsonb, text, regrole)'::regprocedure);
    fixed text := replace(def, 'del_sql := ins_sql;',
                          'ins_sql := sales_api._mapal_lock_markers(ins_sql); del_sql := ins_sql;');
BEGIN
    IF fixed = def THEN
        RAISE EXCEPTION 'sales_api.attach() is not the 0.4 definition this upgrade expects';
    END IF;
    EXECUTE fixed;
END;
$$;
