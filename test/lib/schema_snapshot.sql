-- test/lib/schema_snapshot.sql: everything the extension sales_api defines in
-- the current database, as text that two databases can be diffed on.
--
--   psql -X -At -v ON_ERROR_STOP=1 -d DB -f test/lib/schema_snapshot.sql
--
-- Used by test/scenarios/05_schema_fresh_vs_upgraded.sh to show that a fresh
-- CREATE EXTENSION and the chain of upgrade scripts define the same objects.
-- Plain queries only: taking a snapshot creates nothing in the database.
--
-- What is compared: the extension (version, schema, configuration tables of
-- pg_dump), the schema, the wrapper, every relation, column, constraint,
-- index, trigger, policy, view, sequence, type and function of schema
-- sales_api with their owners and privileges, every comment, the extension's
-- members, every dependency of those objects, and their initial privileges
-- (pg_init_privs, what pg_dump compares privileges against).
--
-- Normalised, because it may differ without meaning anything: OIDs (objects
-- are named, through pg_describe_object, regclass, regprocedure, ...), the
-- position of a column among dropped ones (its rank among the live columns
-- is kept), the order of the items of an ACL and of pg_dump's configuration
-- tables (both are sets).  TOAST tables are named after their table, and
-- internal triggers (those of foreign keys, named by OID) are left to their
-- constraint.  This server keeps pg_attver=N, N a value of its own, in the
-- options of every column it creates: those entries are left out.
\pset format unaligned
\pset tuples_only on
\pset null '<null>'
-- every name outside pg_catalog is printed with its schema
SET search_path = pg_catalog;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 1;

-- the extension, and what pg_dump dumps the data of
SELECT 'extension ' || jsonb_build_object(
           'name', e.extname, 'version', e.extversion, 'schema', e.extnamespace::regnamespace::text,
           'owner', e.extowner::regrole::text, 'relocatable', e.extrelocatable)::text
  FROM pg_extension e WHERE e.extname = 'sales_api';
SELECT 'dump config ' || c.rel || ' where ' || quote_nullable(c.cond)
  FROM pg_extension e, unnest(e.extconfig::regclass[]::text[], e.extcondition) AS c(rel, cond)
 WHERE e.extname = 'sales_api'
 ORDER BY 1;

-- the schema
SELECT 'schema ' || jsonb_build_object(
           'name', n.nspname, 'owner', n.nspowner::regrole::text,
           'acl', CASE WHEN n.nspacl IS NOT NULL
                       THEN coalesce((SELECT array_agg(a::text ORDER BY a::text) FROM unnest(n.nspacl) a), '{}') END)::text
  FROM pg_namespace n WHERE n.nspname = 'sales_api';

-- the foreign-data wrapper
SELECT 'wrapper ' || jsonb_build_object(
           'name', w.fdwname, 'owner', w.fdwowner::regrole::text,
           'handler', nullif(w.fdwhandler, 0)::regprocedure::text,
           'validator', nullif(w.fdwvalidator, 0)::regprocedure::text,
           'options', w.fdwoptions,
           'acl', CASE WHEN w.fdwacl IS NOT NULL
                       THEN coalesce((SELECT array_agg(a::text ORDER BY a::text) FROM unnest(w.fdwacl) a), '{}') END)::text
  FROM pg_foreign_data_wrapper w WHERE w.fdwname = 'sales_api';

-- relations: tables, indexes, sequences, views, composite types
SELECT 'relation ' || c.oid::regclass::text || ' ' || jsonb_build_object(
           'kind', c.relkind, 'persistence', c.relpersistence, 'owner', c.relowner::regrole::text,
           'access_method', am.amname, 'tablespace', nullif(c.reltablespace, 0),
           'options', c.reloptions, 'row_security', c.relrowsecurity, 'force_row_security', c.relforcerowsecurity,
           'replica_identity', c.relreplident, 'partition', c.relispartition,
           'partition_bound', pg_get_expr(c.relpartbound, c.oid),
           'inherits', (SELECT array_agg(i.inhparent::regclass::text ORDER BY i.inhseqno)
                          FROM pg_inherits i WHERE i.inhrelid = c.oid),
           'has_toast', c.reltoastrelid <> 0,
           'acl', CASE WHEN c.relacl IS NOT NULL
                       THEN coalesce((SELECT array_agg(a::text ORDER BY a::text) FROM unnest(c.relacl) a), '{}') END)::text
  FROM pg_class c LEFT JOIN pg_am am ON am.oid = c.relam
 WHERE c.relnamespace = 'sales_api'::regnamespace
 ORDER BY 1;

-- columns, by their rank among the live columns
SELECT 'column ' || c.oid::regclass::text || ' ' ||
       row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) || ' ' || quote_ident(a.attname) || ' ' ||
       jsonb_build_object(
           'type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,
           'default', pg_get_expr(d.adbin, d.adrelid), 'identity', a.attidentity, 'generated', a.attgenerated,
           'compression', a.attcompression, 'storage', a.attstorage,
           'collation', CASE WHEN a.attcollation <> 0 THEN a.attcollation::regcollation::text END,
           'statistics', a.attstattarget, 'fdw_options', a.attfdwoptions,
           'options', (SELECT array_agg(o ORDER BY o) FROM unnest(a.attoptions) o WHERE o NOT LIKE 'pg\_attver=%'),
           'local', a.attislocal, 'inherited', a.attinhcount,
           'acl', CASE WHEN a.attacl IS NOT NULL
                       THEN coalesce((SELECT array_agg(x::text ORDER BY x::text) FROM unnest(a.attacl) x), '{}') END)::text
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'sales_api'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
 ORDER BY c.oid::regclass::text, a.attnum;

-- constraints of tables and domains
SELECT 'constraint ' || coalesce(nullif(k.conrelid, 0)::regclass::text, nullif(k.contypid, 0)::regtype::text) || ' ' ||
       quote_ident(k.conname) || ' ' || jsonb_build_object(
           'type', k.contype, 'definition', pg_get_constraintdef(k.oid),
           'deferrable', k.condeferrable, 'deferred', k.condeferred, 'validated', k.convalidated,
           'local', k.conislocal, 'no_inherit', k.connoinherit,
           'index', nullif(k.conindid, 0)::regclass::text)::text
  FROM pg_constraint k
 WHERE k.connamespace = 'sales_api'::regnamespace
 ORDER BY 1;

-- indexes
SELECT 'index ' || pg_get_indexdef(i.indexrelid) || ' ' || jsonb_build_object(
           'unique', i.indisunique, 'primary', i.indisprimary, 'exclusion', i.indisexclusion,
           'immediate', i.indimmediate, 'clustered', i.indisclustered, 'valid', i.indisvalid,
           'ready', i.indisready, 'live', i.indislive, 'replica_identity', i.indisreplident,
           'nulls_not_distinct', i.indnullsnotdistinct)::text
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
 WHERE c.relnamespace = 'sales_api'::regnamespace
 ORDER BY 1;

-- triggers (not the internal ones of foreign keys: their constraint stands for them)
SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' ' || jsonb_build_object('enabled', t.tgenabled)::text
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'sales_api'::regnamespace AND NOT t.tgisinternal
 ORDER BY 1;

-- row security policies
SELECT 'policy ' || p.polrelid::regclass::text || ' ' || quote_ident(p.polname) || ' ' || jsonb_build_object(
           'command', p.polcmd, 'permissive', p.polpermissive,
           'roles', (SELECT array_agg(CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END ORDER BY 1)
                       FROM unnest(p.polroles) r),
           'using', pg_get_expr(p.polqual, p.polrelid), 'with_check', pg_get_expr(p.polwithcheck, p.polrelid))::text
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
 WHERE c.relnamespace = 'sales_api'::regnamespace
 ORDER BY 1;

-- views
SELECT 'view ' || c.oid::regclass::text || E'\n' || pg_get_viewdef(c.oid)
  FROM pg_class c
 WHERE c.relnamespace = 'sales_api'::regnamespace AND c.relkind IN ('v', 'm')
 ORDER BY c.oid::regclass::text;

-- sequences, and the column each belongs to
SELECT 'sequence ' || c.oid::regclass::text || ' ' || jsonb_build_object(
           'type', s.seqtypid::regtype::text, 'start', s.seqstart, 'increment', s.seqincrement,
           'max', s.seqmax, 'min', s.seqmin, 'cache', s.seqcache, 'cycle', s.seqcycle,
           'owned_by', (SELECT pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) FROM pg_depend d
                         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                           AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))::text
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
 WHERE c.relnamespace = 'sales_api'::regnamespace
 ORDER BY 1;

-- types: composite (attributes above, as columns), enum (labels in order), domain, array
SELECT 'type ' || t.oid::regtype::text || ' ' || jsonb_build_object(
           'kind', t.typtype, 'category', t.typcategory, 'owner', t.typowner::regrole::text,
           'relation', nullif(t.typrelid, 0)::regclass::text, 'element', nullif(t.typelem, 0)::regtype::text,
           'base', CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
           'not_null', t.typnotnull, 'default', t.typdefault,
           'labels', (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid),
           'acl', CASE WHEN t.typacl IS NOT NULL
                       THEN coalesce((SELECT array_agg(a::text ORDER BY a::text) FROM unnest(t.typacl) a), '{}') END)::text
  FROM pg_type t
 WHERE t.typnamespace = 'sales_api'::regnamespace
 ORDER BY 1;

-- functions: properties, then the definition as pg_dump would write it
SELECT 'function ' || p.oid::regprocedure::text || ' ' || jsonb_build_object(
           'kind', p.prokind, 'language', l.lanname, 'owner', p.proowner::regrole::text,
           'security_definer', p.prosecdef, 'config', p.proconfig, 'volatility', p.provolatile,
           'parallel', p.proparallel, 'strict', p.proisstrict, 'leakproof', p.proleakproof,
           'cost', p.procost, 'rows', p.prorows, 'returns_set', p.proretset,
           'result', pg_get_function_result(p.oid), 'arguments', pg_get_function_arguments(p.oid),
           'acl', CASE WHEN p.proacl IS NOT NULL
                       THEN coalesce((SELECT array_agg(a::text ORDER BY a::text) FROM unnest(p.proacl) a), '{}') END)::text
       || CASE WHEN p.prokind IN ('f', 'p') THEN E'\n' || pg_get_functiondef(p.oid) ELSE '' END
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'sales_api'::regnamespace
 ORDER BY p.oid::regprocedure::text;

-- Generic: the extension's members, the dependencies, comments and initial
-- privileges of every object above (and of the extension's members, wherever
-- they live)
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'sales_api'),
ns AS (SELECT 'sales_api'::regnamespace::oid AS oid),
obj (classid, objid) AS (
    SELECT 'pg_extension'::regclass::oid, ext.oid FROM ext
    UNION SELECT 'pg_namespace'::regclass, ns.oid FROM ns
    UNION SELECT 'pg_foreign_data_wrapper'::regclass, w.oid FROM pg_foreign_data_wrapper w WHERE w.fdwname = 'sales_api'
    UNION SELECT d.classid, d.objid FROM pg_depend d, ext
           WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
    UNION SELECT 'pg_class'::regclass, c.oid FROM pg_class c, ns WHERE c.relnamespace = ns.oid
    UNION SELECT 'pg_proc'::regclass, p.oid FROM pg_proc p, ns WHERE p.pronamespace = ns.oid
    UNION SELECT 'pg_type'::regclass, t.oid FROM pg_type t, ns WHERE t.typnamespace = ns.oid
    UNION SELECT 'pg_constraint'::regclass, k.oid FROM pg_constraint k, ns WHERE k.connamespace = ns.oid
    UNION SELECT 'pg_trigger'::regclass, t.oid FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid, ns
           WHERE c.relnamespace = ns.oid AND NOT t.tgisinternal
    UNION SELECT 'pg_rewrite'::regclass, r.oid FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class, ns
           WHERE c.relnamespace = ns.oid
    UNION SELECT 'pg_attrdef'::regclass, a.oid FROM pg_attrdef a JOIN pg_class c ON c.oid = a.adrelid, ns
           WHERE c.relnamespace = ns.oid
    UNION SELECT 'pg_policy'::regclass, p.oid FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid, ns
           WHERE c.relnamespace = ns.oid
    UNION SELECT 'pg_statistic_ext'::regclass, s.oid FROM pg_statistic_ext s, ns WHERE s.stxnamespace = ns.oid
),
-- a TOAST table is named after its table (its own name holds an OID)
descr AS (
    SELECT o.classid, o.objid, o.objsubid,
           CASE WHEN o.classid = 'pg_class'::regclass AND o.objid IN (SELECT reltoastrelid FROM pg_class)
                THEN 'toast table of ' || (SELECT c.oid::regclass::text FROM pg_class c WHERE c.reltoastrelid = o.objid)
                ELSE pg_describe_object(o.classid, o.objid, o.objsubid) END AS d
      FROM (SELECT DISTINCT classid, objid, objsubid FROM pg_depend
            UNION SELECT refclassid, refobjid, refobjsubid FROM pg_depend
            UNION SELECT classoid, objoid, objsubid FROM pg_description
            UNION SELECT classoid, objoid, objsubid FROM pg_init_privs) o
     WHERE (o.classid, o.objid) IN (SELECT classid, objid FROM obj)
        OR o.classid = 'pg_class'::regclass AND o.objid IN (SELECT reltoastrelid FROM pg_class c, ns WHERE c.relnamespace = ns.oid)
        OR (o.classid, o.objid) IN (SELECT d.refclassid, d.refobjid FROM pg_depend d
                                      WHERE (d.classid, d.objid) IN (SELECT classid, objid FROM obj))
)
SELECT line FROM (
    SELECT 'member ' || x.d AS line
      FROM pg_depend d JOIN descr x ON (x.classid, x.objid, x.objsubid) = (d.classid, d.objid, d.objsubid), ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
    UNION ALL
    SELECT 'depend ' || x.d || ' -> ' || r.d || ' (' || d.deptype::text || ')'
      FROM pg_depend d
      JOIN descr x ON (x.classid, x.objid, x.objsubid) = (d.classid, d.objid, d.objsubid)
      JOIN descr r ON (r.classid, r.objid, r.objsubid) = (d.refclassid, d.refobjid, d.refobjsubid)
     WHERE (d.classid, d.objid) IN (SELECT classid, objid FROM obj) AND d.deptype <> 'e'
    UNION ALL
    SELECT 'comment ' || x.d || ': ' || c.description
      FROM pg_description c JOIN descr x ON (x.classid, x.objid, x.objsubid) = (c.classoid, c.objoid, c.objsubid)
     WHERE (c.classoid, c.objoid) IN (SELECT classid, objid FROM obj)
    UNION ALL
    SELECT 'initial privileges ' || x.d || ' (' || i.privtype::text || '): ' ||
           coalesce((SELECT array_agg(a::text ORDER BY a::text) FROM unnest(i.initprivs) a), '{}')::text
      FROM pg_init_privs i JOIN descr x ON (x.classid, x.objid, x.objsubid) = (i.classoid, i.objoid, i.objsubid)
     WHERE (i.classoid, i.objoid) IN (SELECT classid, objid FROM obj)
) l
ORDER BY line;
