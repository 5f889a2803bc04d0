/*-------------------------------------------------------------------------
 *
 * attach.c
 *		sales_api.attach() and sales_api.detach(): who may capture a POS
 *		table, the capture row, and the triggers.
 *
 * Design note.  A capture runs its mapping as the table's owner, sends
 * the table's sales with the user mapping of its run_as role, and keeps
 * its bookkeeping in sales_api's tables.  So attach() asks of its caller
 * what those imply, and nothing more:
 *
 *	- the caller owns the table (or is a superuser): the mapping is code
 *	  that will run with the owner's rights;
 *	- the caller may use the server (USAGE);
 *	- run_as is a role the caller can act as, may use the server, and can
 *	  read the table: whatever is sent with its credentials it can read
 *	  back from the vendor, so a capture must not give it a table it could
 *	  not SELECT.
 *
 * Then the rows and triggers are written with the extension's rights, by
 * fixed statements; the only identifiers in them are quoted by
 * quote_identifier and the only numbers are the capture id.  The mapping
 * is checked before anything is committed by running the trigger's
 * statements over an empty copy of the table and planning the others, as
 * the table owner (mapping.c): a column that does not exist, or a table
 * the owner may not read, fails attach(); even the constant folding of an
 * immutable function at plan time runs with the owner's rights.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "mapal_wire.h"
#include "mapping.h"
#include "worker.h"
#include "server.h"

PG_FUNCTION_INFO_V1(sales_api_attach);
PG_FUNCTION_INFO_V1(sales_api_detach);

static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

static const char *
role_name(Oid roleid)
{
	return GetUserNameFromId(roleid, false);
}

/* A statement of the extension's bookkeeping, with its arguments. */
static void
ext_exec(const char *sql, int nargs, Oid *types, Datum *values, int expect)
{
	OwnerScope	scope;
	int			ret;

	mapping_enter_extension(&scope);
	ret = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);
	mapping_leave_extension(&scope);
	if (ret != expect)
		elog(ERROR, "sales_api: \"%s\" failed: %s", sql, SPI_result_code_string(ret));
}

static SalesApiVendor
server_vendor(ForeignServer *fs)
{
	ListCell   *lc;

	foreach(lc, fs->options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, "vendor") == 0)
			return strcmp(defGetString(d), "mapal") == 0 ? VENDOR_MAPAL : VENDOR_CONNECTEAM;
	}
	return VENDOR_CONNECTEAM;
}

static char *
server_option(ForeignServer *fs, const char *name)
{
	ListCell   *lc;

	foreach(lc, fs->options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, name) == 0)
			return defGetString(d);
	}
	return NULL;
}

/*
 * Lock the caller's table as CREATE TRIGGER will (no concurrent DDL until
 * we commit), after checking that it is the caller's, and again once
 * locked (its owner may have changed meanwhile).  Checked first, as
 * PostgreSQL's own commands do in RangeVarGetRelidExtended()'s callback:
 * a role that may call attach() or detach() must not queue a lock request
 * on a table it does not own, pg_class say, that every later writer of
 * the table would wait behind.
 */
static void
lock_own_table(Oid relid, const char *hint)
{
	for (int locked = 0; locked < 2; locked++)
	{
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("table with OID %u does not exist", relid)));
		if (!pg_class_ownercheck(relid, GetUserId()))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be owner of table %s", qualified_name(relid)),
					 errdetail("A capture's mapping runs with the rights of the table's owner."),
					 errhint("%s", hint)));
		if (!locked)
			LockRelationOid(relid, ShareRowExclusiveLock);
	}
}

/* The table: it must exist, be logged, and be the caller's. */
static void
check_table(Oid relid)
{
	HeapTuple	tup;
	Form_pg_class cls;
	char		relkind;
	char		persistence;

	lock_own_table(relid, "Ask the owner of the table, or a superuser, to attach it.");
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table with OID %u does not exist", relid)));
	cls = (Form_pg_class) GETSTRUCT(tup);
	relkind = cls->relkind;
	persistence = cls->relpersistence;
	ReleaseSysCache(tup);
	if ((relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE) ||
		persistence != RELPERSISTENCE_PERMANENT)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is not a logged table", qualified_name(relid)),
				 errhint("Captured sales must be durable: attach a permanent (logged) table.")));
}

/* run_as: a role the caller can act as, that may use the server and read the table */
static void
check_run_as(Oid run_as, Oid relid, ForeignServer *fs)
{
	if (!has_privs_of_role(GetUserId(), run_as))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be able to act as role \"%s\" to make it a capture's run_as",
						role_name(run_as)),
				 errdetail("The worker sends the captured sales with that role's user mapping."),
				 errhint("Name a role you are a member of, or ask a superuser.")));
	if (pg_foreign_server_aclcheck(fs->serverid, run_as, ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" has no USAGE on server \"%s\"", role_name(run_as), fs->servername),
				 errhint("GRANT USAGE ON FOREIGN SERVER %s TO %s, or name another run_as role.",
						 quote_identifier(fs->servername), quote_identifier(role_name(run_as)))));
	if (pg_class_aclcheck(relid, run_as, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" cannot read table %s", role_name(run_as), qualified_name(relid)),
				 errdetail("What the worker sends with that role's credentials, the role can read back from the vendor."),
				 errhint("GRANT SELECT on the table to the role, or name another run_as role.")));
}

/* The sale's identity: the given expression, else the single-column primary key. */
static char *
sale_key_expr(Oid relid, text *sale_key)
{
	OwnerScope	scope;
	Oid			types[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	char	   *col;

	if (sale_key != NULL)
	{
		char	   *k = text_to_cstring(sale_key);

		mapping_check_expr("sale_key", k);
		return psprintf("(%s)", k);
	}
	mapping_enter_extension(&scope);
	if (SPI_execute_with_args("SELECT a.attname::text FROM pg_catalog.pg_index i"
							  " JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
							  " WHERE i.indrelid = $1 AND i.indisprimary AND i.indnatts = 1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "sales_api: could not read the primary key");
	mapping_leave_extension(&scope);
	col = SPI_processed == 1 ? SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : NULL;
	if (col == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s has no single-column primary key", qualified_name(relid)),
				 errhint("Pass sale_key => an expression that identifies a sale.")));
	return pstrdup(quote_identifier(col));
}

/* a subquery in a raw parse tree */
static bool
has_sublink(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, SubLink))
		return true;
	return raw_expression_tree_walker(node, has_sublink, context);
}

/* what key_check() found */
typedef enum KeyCheck
{
	KEY_INDEXED,				/* a unique index has the key as its key */
	KEY_NOT_INDEXED,
	KEY_SUBQUERY,				/* no index expression holds one */
	KEY_INHERITED,				/* an index covers none of the child tables' rows */
} KeyCheck;

/*
 * Whether a valid, non-partial unique index of the table has exactly the
 * key as its one key column: a column (indkey) or an expression equal()
 * to the key's parse tree, as CREATE INDEX stores it (transformExpr,
 * assign_expr_collations; nothing folded, so nothing of the user's runs).
 * A COLLATE or binary-compatible cast at the top is taken off the key
 * first, as CREATE INDEX takes a COLLATE into the index's collation: two
 * values unique under any collation are distinct texts.  *expr_sql is
 * the key as CREATE INDEX would take it (the table's columns unqualified).
 * The expression was checked by check_statements() before.
 */
static KeyCheck
key_check(Oid relid, const char *key, char **expr_sql)
{
	Oid			owner = mapping_table_owner(relid);
	OwnerScope	scope;
	Relation	rel;
	ParseState *pstate;
	ParseNamespaceItem *nsitem;
	RawStmt    *raw;
	ResTarget  *rt;
	Node	   *expr;
	List	   *indexes;
	ListCell   *lc;
	KeyCheck	found = KEY_NOT_INDEXED;

	*expr_sql = NULL;
	raw = linitial_node(RawStmt, raw_parser(psprintf("SELECT %s", key), RAW_PARSE_DEFAULT));
	rt = linitial_node(ResTarget, castNode(SelectStmt, raw->stmt)->targetList);
	/* no index expression has a subquery, whose FROM might name what only a statement has */
	if (has_sublink(rt->val, NULL))
		return KEY_SUBQUERY;
	/* parsed as the trigger's statements are: the owner, search_path = pg_catalog */
	mapping_enter_owner(owner, &scope);
	rel = table_open(relid, AccessShareLock);
	pstate = make_parsestate(NULL);
	/* the table as the capture's statements name it, "s" */
	nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock, makeAlias("s", NIL), false, true);
	addNSItemToQuery(pstate, nsitem, false, true, true);
	expr = transformExpr(pstate, rt->val, EXPR_KIND_SELECT_TARGET);
	assign_expr_collations(pstate, expr);
	free_parsestate(pstate);
	mapping_leave_owner(&scope);
	for (;;)
	{
		if (IsA(expr, CollateExpr))
			expr = (Node *) ((CollateExpr *) expr)->arg;
		else if (IsA(expr, RelabelType))
			expr = (Node *) ((RelabelType *) expr)->arg;
		else
			break;
	}
	/* in the caller's search_path, where the hint's statement would run */
	*expr_sql = deparse_expression(expr, deparse_context_for(RelationGetRelationName(rel), relid),
								   false, false);

	/* relhassubclass stays set after the last child is dropped, until a VACUUM: ask pg_inherits */
	if (rel->rd_rel->relkind == RELKIND_RELATION && rel->rd_rel->relhassubclass &&
		find_inheritance_children(relid, NoLock) != NIL)
	{
		table_close(rel, AccessShareLock);
		return KEY_INHERITED;
	}
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index ix;
		bool		same = false;

		if (!HeapTupleIsValid(tup))
			continue;
		ix = (Form_pg_index) GETSTRUCT(tup);
		if (ix->indisunique && ix->indisvalid && ix->indnkeyatts == 1 &&
			heap_attisnull(tup, Anum_pg_index_indpred, NULL))
		{
			if (ix->indkey.values[0] != 0)
				same = IsA(expr, Var) && ((Var *) expr)->varno == 1 &&
					((Var *) expr)->varlevelsup == 0 &&
					((Var *) expr)->varattno == ix->indkey.values[0];
			else
			{
				bool		isnull;
				Datum		d = SysCacheGetAttr(INDEXRELID, tup, Anum_pg_index_indexprs, &isnull);

				same = !isnull &&
					equal(linitial((List *) stringToNode(TextDatumGetCString(d))), expr);
			}
		}
		ReleaseSysCache(tup);
		if (same)
		{
			found = KEY_INDEXED;
			break;
		}
	}
	list_free(indexes);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * A Connecteam sale is replaced and deleted at the vendor by its key: two
 * rows with one key would overwrite each other there.  A key no unique
 * index backs may still be unique (built from columns a wider index
 * covers), so this warns and does not refuse.
 */
static void
warn_if_key_not_unique(Oid relid, const char *key)
{
	char	   *expr_sql;
	KeyCheck	k = key_check(relid, key, &expr_sql);
	const char *why = "Connecteam replaces and deletes a sale by its key: two rows with the same key would overwrite each other there.";

	if (k == KEY_INDEXED)
		return;
	if (k == KEY_SUBQUERY)
		ereport(WARNING,
				(errmsg("no unique index of %s can have the sale_key %s as its key", qualified_name(relid), key),
				 errdetail("%s", why),
				 errhint("An index expression holds no subquery: make the key an expression of the row's own columns, with a unique index on it.")));
	else if (k == KEY_INHERITED)
		ereport(WARNING,
				(errmsg("%s has child tables: no unique index makes the sale_key %s unique across them",
						qualified_name(relid), key),
				 errdetail("%s The capture reads the child tables' rows with the table's; an index covers one table only.", why),
				 errhint("Keep the key unique across the table and its children, for example from one sequence they share.")));
	else
		ereport(WARNING,
				(errmsg("no unique index of %s has the sale_key %s as its key", qualified_name(relid), key),
				 errdetail("%s", why),
				 errhint("Make the key unique: CREATE UNIQUE INDEX ON %s ((%s));", qualified_name(relid), expr_sql)));
}

/*
 * Every statement of the capture, as the table owner: the trigger's run
 * over empty transition tables, the others planned.  An unknown column, a
 * type that does not cast, or a table or function the owner may not use
 * fails attach() now, not the first sale.
 */
static void
check_statements(const CaptureDef *def)
{
	char	   *tbl = qualified_name(def->relid);
	Oid			owner = mapping_table_owner(def->relid);
	OwnerScope	scope;
	static const MappingStmt trig_ct[] = {MS_CT_ROWS, MS_CT_OLD_KEYS};
	static const MappingStmt trig_mapal[] = {MS_MAPAL_NEW_SLOTS, MS_MAPAL_OLD_SLOTS,
	MS_MAPAL_NEW_ROW_SLOTS, MS_MAPAL_OLD_ROW_SLOTS};
	const MappingStmt *trig = def->vendor == VENDOR_MAPAL ? trig_mapal : trig_ct;
	int			ntrig = def->vendor == VENDOR_MAPAL ? lengthof(trig_mapal) : lengthof(trig_ct);
	Oid			ct_win[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Oid			ct_days[4] = {DATEOID, DATEOID, INT8ARRAYOID, TEXTOID};
	Oid			m_tot[2] = {INT8OID, DATEOID};
	Oid			m_sales[2] = {TIMESTAMPOID, TIMESTAMPOID};
	Oid			m_units[4] = {INT8ARRAYOID, DATEOID, INT4OID, INT4OID};

	mapping_enter_owner(owner, &scope);
	for (int i = 0; i < ntrig; i++)
	{
		int			ret;
		char	   *sql = psprintf("WITH sales_api_new AS (SELECT * FROM %s LIMIT 0),"
								   " sales_api_old AS (SELECT * FROM %s LIMIT 0) %s",
								   tbl, tbl, mapping_sql(def, trig[i], trig[i] == MS_CT_OLD_KEYS ||
														 trig[i] == MS_MAPAL_OLD_SLOTS ||
														 trig[i] == MS_MAPAL_OLD_ROW_SLOTS ?
														 "sales_api_old" : "sales_api_new"));

		/* run, not only planned: the owner's rights on every table it names are checked */
		ret = SPI_execute(sql, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "sales_api: could not run a capture statement: %s",
				 SPI_result_code_string(ret));
	}
	if (def->vendor == VENDOR_MAPAL)
	{
		if (SPI_prepare(mapping_sql(def, MS_MAPAL_TOTALS, tbl), 2, m_tot) == NULL ||
			SPI_prepare(mapping_sql(def, MS_MAPAL_UNITS_TOTALS, tbl), 4, m_units) == NULL ||
			SPI_prepare(mapping_sql(def, MS_MAPAL_SALES, tbl), 2, m_sales) == NULL)
			elog(ERROR, "sales_api: could not prepare a Mapal statement: %s",
				 SPI_result_code_string(SPI_result));
	}
	else if (SPI_prepare(mapping_sql(def, MS_CT_WINDOW, tbl), 3, ct_win) == NULL ||
			 SPI_prepare(mapping_sql(def, MS_CT_DAY_TOTALS, tbl), 4, ct_days) == NULL)
		elog(ERROR, "sales_api: could not prepare a Connecteam statement: %s",
			 SPI_result_code_string(SPI_result));
	mapping_leave_owner(&scope);
}

/*
 * A table attached again to a server it was detached from (to change its
 * mapping, say) must reach what its earlier captures sent: an UPDATE or
 * DELETE of a sale they posted queues the delete of that transactionId,
 * which connecteam_sent keeps per capture.  So the new capture inherits
 * their sent ids (inherit_sent()), and it may begin only once they have
 * no work left that would go out by itself (pending, failed or in flight,
 * or staged): their posts would be remembered under their own id after
 * that, and the two captures' versions of a sale sent in no set order.
 * Dead and parked items wait for an operator, who should retry_dead() them
 * before the attach.  Earlier captures with another run_as role sent with
 * other credentials, maybe to another account: they are left as they are.
 * Mapal captures inherit nothing: a slot's totals are recomputed from the
 * table whoever marked it.
 */
static void
check_predecessors(Oid relid, ForeignServer *fs, Oid run_as)
{
	Oid			types[3] = {OIDOID, OIDOID, OIDOID};
	Datum		values[3] = {ObjectIdGetDatum(relid), ObjectIdGetDatum(fs->serverid), ObjectIdGetDatum(run_as)};
	bool		isnull;

	ext_exec("SELECT c.id,"
			 " (SELECT count(*) FROM sales_api.outbox o WHERE o.capture_id = c.id"
			 "   AND o.state IN ('pending', 'failed', 'in_flight'))"
			 " + (SELECT count(*) FROM sales_api.outbox_stage s WHERE s.capture_id = c.id)"
			 " FROM sales_api.capture c"
			 " WHERE c.relid = $1 AND c.server_id = $2 AND c.run_as = $3 AND c.detached_at IS NOT NULL"
			 " ORDER BY 2 DESC, 1 LIMIT 1", 3, types, values, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		int			prev = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		int64		queued = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

		if (queued > 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("%s was captured for server \"%s\" before, and that capture still has work queued",
							qualified_name(relid), fs->servername),
					 errdetail("Detached capture %d has " INT64_FORMAT " items or staged rows pending, failed or in flight.",
							   prev, queued),
					 errhint("A new capture must reach what the old one sent, so it starts after the old one's queue is empty: "
							 "let the worker send it (sales_api.outbox_status), or delete those items from sales_api.outbox "
							 "and resend their days with repair_connecteam() after the attach.")));
	}
}

/* the sent ids of the earlier captures of the table, server and role, now the new one's */
static void
inherit_sent(int id, Oid relid, Oid serverid, Oid run_as)
{
	Oid			types[4] = {INT4OID, OIDOID, OIDOID, OIDOID};
	Datum		values[4] = {Int32GetDatum(id), ObjectIdGetDatum(relid), ObjectIdGetDatum(serverid),
	ObjectIdGetDatum(run_as)};

	ext_exec("WITH prev AS (SELECT c.id FROM sales_api.capture c"
			 "   WHERE c.relid = $2 AND c.server_id = $3 AND c.run_as = $4 AND c.detached_at IS NOT NULL),"
			 " moved AS (DELETE FROM sales_api.connecteam_sent s USING prev WHERE s.capture_id = prev.id"
			 "   RETURNING s.*)"
			 " INSERT INTO sales_api.connecteam_sent (capture_id, sale_key, transaction_id, location_id,"
			 "                                        created_at, final_sale_amount, sent_at)"
			 " SELECT DISTINCT ON (sale_key) $1, sale_key, transaction_id, location_id, created_at,"
			 "        final_sale_amount, sent_at"
			 "   FROM moved ORDER BY sale_key, sent_at DESC",
			 4, types, values, SPI_OK_INSERT);
}

static void
create_triggers(int id, Oid relid)
{
	char	   *tbl = qualified_name(relid);
	static const char *const tmpl[3] = {
		"CREATE TRIGGER sales_api_capture_%d_ins AFTER INSERT ON %s"
		" REFERENCING NEW TABLE AS sales_api_new"
		" FOR EACH STATEMENT EXECUTE FUNCTION sales_api.capture_trigger('%d')",
		"CREATE TRIGGER sales_api_capture_%d_upd AFTER UPDATE ON %s"
		" REFERENCING OLD TABLE AS sales_api_old NEW TABLE AS sales_api_new"
		" FOR EACH STATEMENT EXECUTE FUNCTION sales_api.capture_trigger('%d')",
		"CREATE TRIGGER sales_api_capture_%d_del AFTER DELETE ON %s"
		" REFERENCING OLD TABLE AS sales_api_old"
		" FOR EACH STATEMENT EXECUTE FUNCTION sales_api.capture_trigger('%d')",
	};

	for (int i = 0; i < 3; i++)
		ext_exec(psprintf(tmpl[i], id, tbl, id), 0, NULL, NULL, SPI_OK_UTILITY);
}

/*
 * Sales captured in a database no worker serves would wait for ever: say so
 * when the capture is made (not for a worker that is only starting).
 */
static void
warn_if_not_served(void)
{
	bool		served;
	char	   *note = launcher_served_note(MyDatabaseId, &served);

	if (!served && strncmp(note, "not served yet", 14) != 0)
		ereport(WARNING,
				(errmsg("no sales_api worker serves database \"%s\": captured sales will wait in the outbox",
						get_database_name(MyDatabaseId)),
				 errdetail("%s.", note),
				 errhint("Set sales_api.database to '*' or to this database, and load sales_api through shared_preload_libraries; sales_api.worker_stats() shows when it is served.")));
}

/*
 * attach(sales_table regclass, server name, mapping jsonb,
 *        sale_key text DEFAULT NULL, run_as regrole DEFAULT NULL) -> integer
 */
Datum
sales_api_attach(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *server;
	Jsonb	   *mapping;
	ForeignServer *fs;
	SalesApiVendor vendor;
	Oid			run_as;
	char	   *key;
	char	   *tz = NULL;
	int			slot_minutes = 15;
	int			id;
	CaptureDef *def;
	bool		isnull;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("sales_table and server must not be null")));
	relid = PG_GETARG_OID(0);
	server = NameStr(*PG_GETARG_NAME(1));
	mapping = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	if (mapping == NULL || !JB_ROOT_IS_OBJECT(mapping))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("mapping must be a JSON object of field -> SQL expression")));
	fs = GetForeignServerByName(server, true);
	if (fs == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" does not exist", server)));
	if (strcmp(GetForeignDataWrapper(fs->fdwid)->fdwname, "sales_api") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not a sales_api server", server)));
	vendor = server_vendor(fs);
	check_table(relid);
	if (pg_foreign_server_aclcheck(fs->serverid, GetUserId(), ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for foreign server %s", fs->servername),
				 errhint("A role needs USAGE on the server to attach a table to it.")));
	run_as = PG_ARGISNULL(4) ? GetUserId() : PG_GETARG_OID(4);
	check_run_as(run_as, relid, fs);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "sales_api: SPI_connect failed");
	key = sale_key_expr(relid, PG_ARGISNULL(3) ? NULL : PG_GETARG_TEXT_PP(3));
	mapping_check_fields(vendor, mapping);
	for (int i = 0; i < mapping_nfields(vendor); i++)
		(void) mapping_field_expr(vendor, mapping, i, true);
	if (vendor == VENDOR_MAPAL)
	{
		char	   *s = server_option(fs, "slot_minutes");

		slot_minutes = s ? atoi(s) : 15;
		/* the units' zone: the server's, else this session's, kept with the capture */
		tz = server_option(fs, "timezone");
		if (tz != NULL)
			mapal_check_timezone_name(tz, ERROR,
									  "Set the server's timezone option to a region name from pg_timezone_names,"
									  " such as Europe/Paris: ALTER SERVER ... OPTIONS (SET timezone 'Europe/Paris').");
		else
		{
			tz = pstrdup(GetConfigOption("TimeZone", false, false));
			mapal_check_timezone_name(tz, ERROR,
									  "The server has no timezone option, so this session's TimeZone was taken:"
									  " set the option to a region name, such as"
									  " ALTER SERVER ... OPTIONS (ADD timezone 'Europe/Paris').");
		}
	}

	{
		Oid			types[2] = {OIDOID, OIDOID};
		Datum		values[2] = {ObjectIdGetDatum(relid), ObjectIdGetDatum(fs->serverid)};

		ext_exec("SELECT 1 FROM sales_api.capture WHERE relid = $1 AND server_id = $2"
				 " AND detached_at IS NULL", 2, types, values, SPI_OK_SELECT);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("%s is already attached to server \"%s\"", qualified_name(relid), server),
					 errhint("Call sales_api.detach() first to change the mapping.")));
	}
	if (vendor == VENDOR_CONNECTEAM)
		check_predecessors(relid, fs, run_as);
	{
		Oid			types[9] = {OIDOID, OIDOID, NAMEOID, TEXTOID, OIDOID, JSONBOID, TEXTOID,
		INT4OID, TEXTOID};
		Datum		values[9];
		char		nulls[9] = "         ";
		OwnerScope	scope;
		int			ret;

		values[0] = ObjectIdGetDatum(relid);
		values[1] = ObjectIdGetDatum(fs->serverid);
		values[2] = DirectFunctionCall1(namein, CStringGetDatum(fs->servername));
		values[3] = CStringGetTextDatum(vendor == VENDOR_MAPAL ? "mapal" : "connecteam");
		values[4] = ObjectIdGetDatum(run_as);
		values[5] = JsonbPGetDatum(mapping);
		values[6] = CStringGetTextDatum(key);
		values[7] = Int32GetDatum(slot_minutes);
		values[8] = tz ? CStringGetTextDatum(tz) : (Datum) 0;
		if (vendor != VENDOR_MAPAL)
			nulls[7] = nulls[8] = 'n';
		mapping_enter_extension(&scope);
		ret = SPI_execute_with_args("INSERT INTO sales_api.capture (relid, server_id, server_name, vendor,"
									" run_as, mapping, key_expr, slot_minutes, timezone)"
									" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
									9, types, values, nulls, false, 1);
		mapping_leave_extension(&scope);
		if (ret != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "sales_api: could not record the capture");
		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		/* the server's name with it (0.8.0), for the worker after a restore */
		ext_exec("SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = 'sales_api.server_state'::pg_catalog.regclass"
				 " AND attname = 'server_name' AND NOT attisdropped", 0, NULL, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0)
			ext_exec("INSERT INTO sales_api.server_state (server_id, server_name) VALUES ($2, $3)"
					 " ON CONFLICT (server_id) DO UPDATE SET server_name = excluded.server_name",
					 3, types, values, SPI_OK_INSERT);
		else
			ext_exec("INSERT INTO sales_api.server_state (server_id) VALUES ($2) ON CONFLICT DO NOTHING",
					 2, types, values, SPI_OK_INSERT);
	}

	def = mapping_load(id, false);
	check_statements(def);
	if (vendor == VENDOR_CONNECTEAM && !PG_ARGISNULL(3))
		warn_if_key_not_unique(relid, key);
	inherit_sent(id, relid, fs->serverid, run_as);
	create_triggers(id, relid);
	SPI_finish();
	warn_if_not_served();
	PG_RETURN_INT32(id);
}

/* detach(sales_table regclass, server name) */
Datum
sales_api_detach(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *server;
	Oid			types[2] = {OIDOID, NAMEOID};
	Datum		values[2];
	bool		isnull;
	int			id;
	char	   *tbl;
	static const char *const suffix[3] = {"ins", "upd", "del"};

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("sales_table and server must not be null")));
	relid = PG_GETARG_OID(0);
	server = NameStr(*PG_GETARG_NAME(1));
	values[0] = ObjectIdGetDatum(relid);
	values[1] = PG_GETARG_DATUM(1);
	lock_own_table(relid, "Ask the owner of the table, or a superuser, to detach it.");
	tbl = qualified_name(relid);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "sales_api: SPI_connect failed");
	ext_exec("SELECT id FROM sales_api.capture WHERE relid = $1 AND server_name = $2"
			 " AND detached_at IS NULL FOR UPDATE", 2, types, values, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("%s is not attached to server \"%s\"", tbl, server)));
	id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	for (int i = 0; i < 3; i++)
		ext_exec(psprintf("DROP TRIGGER IF EXISTS sales_api_capture_%d_%s ON %s", id, suffix[i], tbl),
				 0, NULL, NULL, SPI_OK_UTILITY);
	/* work already enqueued still drains */
	{
		Oid			t[1] = {INT4OID};
		Datum		v[1] = {Int32GetDatum(id)};

		ext_exec("UPDATE sales_api.capture SET detached_at = now() WHERE id = $1", 1, t, v, SPI_OK_UPDATE);
	}
	SPI_finish();
	PG_RETURN_VOID();
}
