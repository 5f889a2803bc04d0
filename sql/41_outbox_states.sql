--
-- 41_outbox_states: the schema names exactly the outbox states and kinds the
-- C code defines (src/outbox_states.c), which sales_api._outbox_states()
-- returns.  Each query below lists disagreements only: no rows is a pass.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS sales_api;
RESET client_min_messages;
-- the definition
SELECT category, name FROM sales_api._outbox_states();
CREATE TEMP VIEW defined AS SELECT category, name FROM sales_api._outbox_states();
-- (column, literal) for every comparison of state or kind with literals in a
-- text: state = 'x', state <> 'x', state IN ('x', 'y'), and their deparsed
-- forms state = ANY (ARRAY['x'::text, 'y'::text]), state <> ALL (...)
CREATE TEMP VIEW compared AS
SELECT w.what, w.obj, m[1] AS col, l[1] AS name
  FROM (SELECT 'constraint' AS what, conname::text AS obj, pg_get_constraintdef(oid) AS def
          FROM pg_constraint WHERE conrelid = 'sales_api.outbox'::regclass AND contype = 'c'
        UNION ALL
        SELECT 'index', indexrelid::regclass::text, pg_get_expr(indpred, indrelid)
          FROM pg_index WHERE indrelid = 'sales_api.outbox'::regclass AND indpred IS NOT NULL
        UNION ALL
        SELECT 'view', c.oid::regclass::text, pg_get_viewdef(c.oid)
          FROM pg_class c WHERE c.relnamespace = 'sales_api'::regnamespace AND c.relkind = 'v'
        UNION ALL
        SELECT 'function', p.oid::regprocedure::text, p.prosrc
          FROM pg_proc p JOIN pg_language lang ON lang.oid = p.prolang
         WHERE p.pronamespace = 'sales_api'::regnamespace AND lang.lanname IN ('sql', 'plpgsql')) w,
       regexp_matches(w.def, '\m(state|kind)\s*(?:=|<>|IN)\s*(?:(?:ANY|ALL)\s*)?\(?\s*(?:ARRAY\[)?((?:''[^'']*''(?:::text)?\s*,?\s*)+)', 'g') m,
       regexp_matches(m[2], '''([^'']*)''', 'g') l;
-- the CHECK constraints allow exactly the defined states and kinds
SELECT coalesce(c.col, d.category) AS col, coalesce(c.name, d.name) AS name,
       CASE WHEN c.name IS NULL THEN 'defined in C, not allowed by the CHECK'
            ELSE 'allowed by the CHECK, not defined in C' END AS problem
  FROM (SELECT col, name FROM compared WHERE what = 'constraint') c
  FULL JOIN (SELECT category, name FROM defined WHERE category IN ('state', 'kind')) d
    ON d.category = c.col AND d.name = c.name
 WHERE c.name IS NULL OR d.name IS NULL
 ORDER BY 1, 2;
-- partial indexes, views and functions compare state and kind with defined
-- names only
SELECT c.what, c.obj, c.col, c.name AS undefined_name
  FROM compared c
 WHERE c.what <> 'constraint'
   AND NOT EXISTS (SELECT 1 FROM defined d WHERE d.category = c.col AND d.name = c.name)
 ORDER BY 1, 2, 3, 4;
-- the comparisons were found (a pattern that matched nothing would pass)
SELECT what, count(DISTINCT obj) AS objects, count(*) > 0 AS compared
  FROM compared GROUP BY 1 ORDER BY 1;
-- every literal of outbox_status is a defined state, and it shows the
-- pseudo-state of staged sales
SELECT l[1] AS undefined_name
  FROM regexp_matches(pg_get_viewdef('sales_api.outbox_status'::regclass), '''([^'']*)''', 'g') l
 WHERE l[1] NOT IN (SELECT name FROM defined WHERE category IN ('state', 'view state'));
SELECT name AS view_state, pg_get_viewdef('sales_api.outbox_status'::regclass) LIKE '%''' || name || '''::text%' AS shown
  FROM defined WHERE category = 'view state';
