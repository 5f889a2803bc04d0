/*-------------------------------------------------------------------------
 *
 * mapping.c
 *		A capture's mapping: the SQL expressions, written by whoever attached
 *		a POS table, that turn its rows into a vendor's fields; the
 *		statements the extension builds from them; and the one way those
 *		statements are run, with the table owner's rights.
 *
 * Design note.  A mapping expression is code its author wrote, and it may
 * reach any function, operator, cast or type input the table owner can
 * reach.  PostgreSQL runs such code, in index expressions and materialized
 * views, as the owner of the table and under SECURITY_RESTRICTED_OPERATION
 * (ExecRefreshMatView, vacuum_rel); sales_api does the same on every path
 * that evaluates a mapping: the capture trigger, the worker's Mapal totals
 * and Connecteam windows, the reconciliations and repairs.  No statement
 * built from a mapping ever runs with the extension's rights, and the
 * extension's own bookkeeping (mapping_enter_extension) only ever runs fixed
 * statements whose inputs are values.
 *
 * An expression is checked to be exactly one expression: the parser must
 * see "SELECT (expr)" as a SELECT of a single target with no other clause.
 * It is placed in statements as that same "(expr)", so an unbalanced
 * parenthesis or a comment running to the end of the line, which would
 * change the statement around it, has already failed that check.
 * Everything it could still do, it does with the owner's rights.
 *
 * The slot of a Mapal sale is computed with date_bin() in the worker's
 * statements, which run as the capture's run_as role: it needs no right on
 * schema sales_api.  The trigger's statements return the sale's time, and
 * the trigger computes the same slot in C (SlotClock, mapal_wire.c), which
 * runs no SQL.  Slot lengths divide a day and 2000-01-01 00:00 is a
 * midnight, so for a zone name this is the slot sales_api.time_slot()
 * gives; a name that is also an abbreviation (CET, EST) is the
 * abbreviation, as AT TIME ZONE takes it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rls.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "lanes.h"
#include "mapping.h"
#include "worker.h"
#include "server.h"

typedef struct FieldSpec
{
	const char *name;
	const char *cast;
	const char *dflt;			/* NULL: required */
} FieldSpec;

static const FieldSpec ct_fields[CTF_N] = {
	{"location_id", "bigint", NULL},
	{"sale_type", "text", NULL},
	{"created_at", "timestamptz", NULL},
	{"final_sale_amount", "numeric", NULL},
	{"tax_amount", "numeric", "NULL"},
	{"currency", "text", "NULL"},
};

static const FieldSpec mapal_fields[MF_N] = {
	{"unit_id", "bigint", NULL},
	{"sold_at", "timestamptz", NULL},
	{"business_day", "date", "NULL"},
	{"currency_id", "text", NULL},
	{"sales_type_id", "text", NULL},
	{"net_sales", "numeric", NULL},
	{"gross_sales", "numeric", NULL},
	{"num_checks", "numeric", "1"},
	{"num_guests", "numeric", "0"},
};

static const FieldSpec *
fields_of(SalesApiVendor vendor)
{
	return vendor == VENDOR_MAPAL ? mapal_fields : ct_fields;
}

int
mapping_nfields(SalesApiVendor vendor)
{
	return vendor == VENDOR_MAPAL ? MF_N : CTF_N;
}

/*
 * Is expr exactly one SQL expression?  It is parsed as the only target of a
 * SELECT, between parentheses (as it is placed in the statements), and the
 * SELECT must have nothing else: no FROM, no WHERE, no
 * second target, no set operation.  A syntax error is the parser's own.
 */
void
mapping_check_expr(const char *what, const char *expr)
{
	List	   *stmts;
	RawStmt    *raw;
	SelectStmt *sel;

	if (strchr(expr, ';') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the expression for \"%s\" contains a semicolon", what),
				 errhint("Give one SQL expression, not a statement.")));
	stmts = raw_parser(psprintf("SELECT (%s)", expr), RAW_PARSE_DEFAULT);
	raw = list_length(stmts) == 1 ? linitial_node(RawStmt, stmts) : NULL;
	sel = (raw && IsA(raw->stmt, SelectStmt)) ? (SelectStmt *) raw->stmt : NULL;
	if (sel == NULL || sel->op != SETOP_NONE || list_length(sel->targetList) != 1 ||
		sel->fromClause != NIL || sel->whereClause != NULL || sel->groupClause != NIL ||
		sel->havingClause != NULL || sel->windowClause != NIL || sel->valuesLists != NIL ||
		sel->sortClause != NIL || sel->limitCount != NULL || sel->limitOffset != NULL ||
		sel->lockingClause != NIL || sel->withClause != NULL || sel->distinctClause != NIL ||
		sel->intoClause != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the expression for \"%s\" is not a single SQL expression", what),
				 errhint("Give one expression over the table's columns, as in a SELECT list; a subquery goes in parentheses.")));
}

/*
 * The expression of one field as it goes into a statement, or its default.
 * for_attach words the errors for the person calling attach(); a capture
 * row that fails later was changed by hand.
 */
char *
mapping_field_expr(SalesApiVendor vendor, Jsonb *mapping, int field, bool for_attach)
{
	const FieldSpec *f = &fields_of(vendor)[field];
	JsonbValue	v;
	char	   *expr = NULL;

	if (getKeyJsonValueFromContainer(&mapping->root, f->name, strlen(f->name), &v) != NULL)
	{
		if (v.type == jbvString)
			expr = pnstrdup(v.val.string.val, v.val.string.len);
		else if (v.type != jbvNull)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the expression for \"%s\" must be a JSON string", f->name),
					 errhint("Write the SQL expression as a string, for example \"%s\": \"total - vat\".",
							 f->name)));
	}
	if (expr == NULL || expr[strspn(expr, " \t\r\n")] == '\0')
	{
		if (f->dflt == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("mapping has no expression for \"%s\"", f->name),
					 for_attach ? errhint("Give every required field an SQL expression over the table's columns.")
					 : errhint("The capture row was changed by hand; detach and attach the table again.")));
		return pstrdup(f->dflt);
	}
	mapping_check_expr(f->name, expr);
	return psprintf("(%s)", expr);
}

/* Every key of the mapping must be a field of the vendor. */
void
mapping_check_fields(SalesApiVendor vendor, Jsonb *mapping)
{
	JsonbIterator *it = JsonbIteratorInit(&mapping->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	StringInfoData unknown;
	StringInfoData known;
	int			nf = mapping_nfields(vendor);

	initStringInfo(&unknown);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		bool		ok = false;

		if (tok != WJB_KEY)
			continue;
		for (int i = 0; i < nf; i++)
			if (strlen(fields_of(vendor)[i].name) == (size_t) v.val.string.len &&
				strncmp(fields_of(vendor)[i].name, v.val.string.val, v.val.string.len) == 0)
				ok = true;
		if (!ok)
			appendStringInfo(&unknown, "%s%.*s", unknown.len ? ", " : "",
							 v.val.string.len, v.val.string.val);
	}
	if (unknown.len == 0)
		return;
	initStringInfo(&known);
	for (int i = 0; i < nf; i++)
		appendStringInfo(&known, "%s%s", i ? ", " : "", fields_of(vendor)[i].name);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("mapping has unknown fields: %s", unknown.data),
			 errhint("Fields for a %s server: %s.", server_vendor_name(vendor), known.data)));
}

/* ------------------------------------------------------------------------
 * Whose rights
 * ------------------------------------------------------------------------
 */
/*
 * Push a search path of pg_catalog alone (no temporary schema), as every
 * statement the extension runs for itself or for a mapping sees, whatever
 * the session's or database's search_path: no function or operator a role
 * created in a schema of the path stands in for a built-in one.  Popped
 * with PopOverrideSearchPath(), or by an ERROR's abort.
 * (PushOverrideSearchPath() copies what it is given.)
 */
void
mapping_push_catalog_path(void)
{
	OverrideSearchPath path = {.schemas = NIL, .addCatalog = true, .addTemp = false};

	PushOverrideSearchPath(&path);
}

/*
 * Run what follows as the table owner, restricted (no SET ROLE, no
 * temporary objects, no cursors outliving it), with only pg_catalog on the
 * search path and every setting it changes undone at the end.  An ERROR
 * in between is cleaned up by the (sub)transaction abort it causes.
 */
void
mapping_enter_owner(Oid owner, OwnerScope *scope)
{
	GetUserIdAndSecContext(&scope->save_userid, &scope->save_sec);
	SetUserIdAndSecContext(owner, scope->save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	scope->save_nestlevel = NewGUCNestLevel();
	mapping_push_catalog_path();
}

void
mapping_leave_owner(OwnerScope *scope)
{
	PopOverrideSearchPath();
	AtEOXact_GUC(false, scope->save_nestlevel);
	SetUserIdAndSecContext(scope->save_userid, scope->save_sec);
}

/*
 * The extension's own bookkeeping: the bootstrap superuser, restricted
 * likewise; only fixed statements over sales_api's tables run in it.
 */
void
mapping_enter_extension(OwnerScope *scope)
{
	mapping_enter_owner(BOOTSTRAP_SUPERUSERID, scope);
}

void
mapping_leave_extension(OwnerScope *scope)
{
	mapping_leave_owner(scope);
}

Oid
mapping_table_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the table of a sales_api capture no longer exists"),
				 errdetail("Table OID %u.", relid),
				 errhint("Detach it with sales_api.detach(), or delete its row of sales_api.capture.")));
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* ------------------------------------------------------------------------
 * Loading a capture
 * ------------------------------------------------------------------------
 */

/*
 * The zone and slot length of a capture of the 0.6 schema, which kept them
 * only inside its generated statement: the zone is the literal of the last
 * AT TIME ZONE of recompute_sql, the slot length the server's option.
 */
#define LEGACY_SLOT_SQL \
	"coalesce((SELECT split_part(o, '=', 2)::int FROM pg_catalog.pg_foreign_server fs, unnest(fs.srvoptions) o" \
	" WHERE fs.oid = c.server_id AND o LIKE 'slot_minutes=%'), 15)"
#define LEGACY_TZ_SQL \
	"replace((regexp_match(c.recompute_sql, 'AT TIME ZONE ''((?:[^'']|'''')*)''\\) x WHERE bd = \\$2 GROUP BY c, t, sl$'))[1], '''''', '''')"

CaptureDef *
mapping_load(int capture_id, bool missing_ok)
{
	MemoryContext cxt = CurrentMemoryContext;
	CaptureDef *def;
	OwnerScope	scope;
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1];
	HeapTuple	tup;
	TupleDesc	td;
	bool		isnull;
	bool		legacy;
	char	   *vendor;
	Jsonb	   *mapping;

	args[0] = Int32GetDatum(capture_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "sales_api: SPI_connect failed");
	mapping_enter_extension(&scope);
	if (SPI_execute("SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute"
					" WHERE attrelid = 'sales_api.capture'::pg_catalog.regclass"
					" AND attname = 'timezone' AND NOT attisdropped)", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "sales_api: could not read the capture table's columns");
	legacy = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (SPI_execute_with_args(psprintf("SELECT c.relid::oid, c.vendor, c.key_expr, c.server_id,"
									   " c.server_name::text, c.run_as::oid, c.detached_at IS NULL,"
									   " c.mapping, %s, %s FROM sales_api.capture c WHERE c.id = $1",
									   legacy ? LEGACY_SLOT_SQL : "c.slot_minutes",
									   legacy ? LEGACY_TZ_SQL : "c.timezone"),
							  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "sales_api: could not read sales_api.capture");
	mapping_leave_extension(&scope);
	if (SPI_processed == 0)
	{
		SPI_finish();
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("sales_api capture %d does not exist", capture_id),
				 errhint("Captures are made by sales_api.attach().")));
	}
	tup = SPI_tuptable->vals[0];
	td = SPI_tuptable->tupdesc;

	MemoryContextSwitchTo(cxt);
	def = palloc0(sizeof(CaptureDef));
	def->id = capture_id;
	def->legacy = legacy;
	def->relid = DatumGetObjectId(SPI_getbinval(tup, td, 1, &isnull));
	vendor = SPI_getvalue(tup, td, 2);
	def->vendor = strcmp(vendor, "mapal") == 0 ? VENDOR_MAPAL : VENDOR_CONNECTEAM;
	def->key = pstrdup(SPI_getvalue(tup, td, 3));
	def->server_id = DatumGetObjectId(SPI_getbinval(tup, td, 4, &isnull));
	def->server_name = pstrdup(SPI_getvalue(tup, td, 5));
	def->run_as = DatumGetObjectId(SPI_getbinval(tup, td, 6, &isnull));
	def->live = DatumGetBool(SPI_getbinval(tup, td, 7, &isnull));
	mapping = DatumGetJsonbPCopy(SPI_getbinval(tup, td, 8, &isnull));
	def->slot_minutes = DatumGetInt32(SPI_getbinval(tup, td, 9, &isnull));
	if (isnull)
		def->slot_minutes = 15;
	def->timezone = SPI_getvalue(tup, td, 10);
	if (def->timezone)
		def->timezone = pstrdup(def->timezone);
	SPI_finish();

	mapping_check_expr("sale_key", def->key);
	for (int i = 0; i < mapping_nfields(def->vendor); i++)
		def->expr[i] = mapping_field_expr(def->vendor, mapping, i, false);
	if (def->vendor == VENDOR_MAPAL &&
		(def->timezone == NULL || def->slot_minutes < 1 || 1440 % def->slot_minutes != 0))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("sales_api capture %d has no usable time zone or slot length", capture_id),
				 errhint("Detach the table and attach it again.")));
	return def;
}

/* ------------------------------------------------------------------------
 * The statements
 * ------------------------------------------------------------------------
 */
static char *
table_name(Oid relid)
{
	char	   *rel = get_rel_name(relid);
	Oid			nsp = get_rel_namespace(relid);

	if (rel == NULL)
		(void) mapping_table_owner(relid);	/* the error for a dropped table */
	return quote_qualified_identifier(get_namespace_name(nsp), rel);
}

/* field i cast to its type: "(expr)::type" */
static void
append_field(StringInfo buf, const CaptureDef *def, int i)
{
	appendStringInfo(buf, "%s::%s", def->expr[i], fields_of(def->vendor)[i].cast);
}

/* the local start of a Mapal sale's slot */
static void
append_slot(StringInfo buf, const CaptureDef *def)
{
	appendStringInfo(buf, "pg_catalog.date_bin('%d minutes'::interval, %s::timestamptz AT TIME ZONE %s,"
					 " '2000-01-01 00:00'::timestamp)",
					 def->slot_minutes, def->expr[MF_SOLD_AT], quote_literal_cstr(def->timezone));
}

/* the business day: the mapped one, else the slot's date */
static void
append_business_day(StringInfo buf, const CaptureDef *def)
{
	appendStringInfo(buf, "coalesce(%s::date, (", def->expr[MF_BUSINESS_DAY]);
	append_slot(buf, def);
	appendStringInfoString(buf, ")::date)");
}

static void
append_ct_fields(StringInfo buf, const CaptureDef *def)
{
	appendStringInfo(buf, "%s::text", def->key);
	for (int i = 0; i < CTF_N; i++)
	{
		appendStringInfoString(buf, ", ");
		append_field(buf, def, i);
	}
}

/*
 * The text of one statement over source (a transition table's name, for
 * the trigger's statements), or over the capture's table.
 */
char *
mapping_sql(const CaptureDef *def, MappingStmt stmt, const char *source)
{
	StringInfoData b;
	const char *src = source ? source : table_name(def->relid);

	initStringInfo(&b);
	switch (stmt)
	{
		case MS_CT_ROWS:
			appendStringInfoString(&b, "SELECT ");
			append_ct_fields(&b, def);
			appendStringInfo(&b, " FROM %s AS s", src);
			break;
		case MS_CT_OLD_KEYS:
			appendStringInfo(&b, "SELECT array_agg(DISTINCT %s::text) FROM %s AS s", def->key, src);
			break;
		case MS_MAPAL_NEW_SLOTS:
		case MS_MAPAL_OLD_SLOTS:
		case MS_MAPAL_NEW_ROW_SLOTS:
		case MS_MAPAL_OLD_ROW_SLOTS:
			/*
			 * A row's unit, business day when one is mapped (else NULL),
			 * currency, sales type and time.  The trigger makes the time the
			 * slot and a missing day the slot's date in C (SlotClock,
			 * mapal_wire.c: what append_slot() computes, at a tenth of the
			 * cost), and keeps each slot once (capture.c,
			 * arrays_first_seen()): a DISTINCT here cost a bulk statement
			 * twice as much.  No ORDER BY: the worker sorts when it makes
			 * the markers (outbox_stage.c).
			 */
			appendStringInfoString(&b, "SELECT ");
			append_field(&b, def, MF_UNIT_ID);
			appendStringInfo(&b, ", %s::date, ", def->expr[MF_BUSINESS_DAY]);
			append_field(&b, def, MF_CURRENCY_ID);
			appendStringInfoString(&b, ", ");
			append_field(&b, def, MF_SALES_TYPE_ID);
			appendStringInfo(&b, ", %s::timestamptz FROM %s AS s", def->expr[MF_SOLD_AT], src);
			break;
		case MS_MAPAL_TOTALS:
		case MS_MAPAL_UNITS_TOTALS:
			{
				/*
				 * Totals of the slots of one unit and business day, or of
				 * several units of one business day (the worker: one scan of
				 * the day for a claim's units, with the unit first in each
				 * row).  The bounds of the scan are one-row subqueries,
				 * computed once: with a parameter in it, an expression of the
				 * WHERE clause is computed for every row, and timezone()
				 * looks the zone's name up each time.  (The planner then
				 * guesses their range, and a table partitioned on the sale's
				 * time is pruned when the statement runs, not when planned.)
				 */
				const char *u = stmt == MS_MAPAL_UNITS_TOTALS ? "u, " : "";
				const char *tz = quote_literal_cstr(def->timezone);

				appendStringInfo(&b, "SELECT %sc, t, sl, sum(net), sum(gross), sum(checks)::bigint,"
								 " sum(guests)::bigint FROM (SELECT ", u);
				if (stmt == MS_MAPAL_UNITS_TOTALS)
				{
					append_field(&b, def, MF_UNIT_ID);
					appendStringInfoString(&b, " AS u, ");
				}
				append_field(&b, def, MF_CURRENCY_ID);
				appendStringInfoString(&b, " AS c, ");
				append_field(&b, def, MF_SALES_TYPE_ID);
				appendStringInfoString(&b, " AS t, ");
				append_slot(&b, def);
				appendStringInfoString(&b, " AS sl, ");
				append_business_day(&b, def);
				appendStringInfoString(&b, " AS bd, ");
				append_field(&b, def, MF_NET_SALES);
				appendStringInfoString(&b, " AS net, ");
				append_field(&b, def, MF_GROSS_SALES);
				appendStringInfoString(&b, " AS gross, ");
				append_field(&b, def, MF_NUM_CHECKS);
				appendStringInfoString(&b, " AS checks, ");
				append_field(&b, def, MF_NUM_GUESTS);
				appendStringInfo(&b, " AS guests FROM %s AS s WHERE ", src);
				append_field(&b, def, MF_UNIT_ID);
				/*
				 * A business day's sales lie within a day of it, in local
				 * time; the worker reads that in pieces ($3, $4: hours from
				 * the day before's midnight), so that no one statement
				 * holds its requests in flight long (outbox_mapal.c).
				 */
				appendStringInfo(&b, " %s AND %s::timestamptz >= (SELECT ($2::timestamp - interval '1 day' + %s * interval '1 hour') AT TIME ZONE %s)"
								 " AND %s::timestamptz < (SELECT ($2::timestamp - interval '1 day' + %s * interval '1 hour') AT TIME ZONE %s))"
								 " x WHERE bd = $2 GROUP BY %sc, t, sl",
								 stmt == MS_MAPAL_UNITS_TOTALS ? "= ANY ($1)" : "= $1",
								 def->expr[MF_SOLD_AT], stmt == MS_MAPAL_UNITS_TOTALS ? "$3" : "0", tz,
								 def->expr[MF_SOLD_AT], stmt == MS_MAPAL_UNITS_TOTALS ? "$4" : "72", tz, u);
				break;
			}
		case MS_CT_WINDOW:
		case MS_CT_WINDOW_LOCK:
			/*
			 * A window is whole seconds [$2, $3): Connecteam keeps Unix
			 * seconds, so 10:00:00.5 is the vendor's 10:00:00.
			 */
			appendStringInfoString(&b, "SELECT ");
			append_ct_fields(&b, def);
			appendStringInfo(&b, " FROM %s AS s WHERE ", src);
			append_field(&b, def, CTF_LOCATION_ID);
			appendStringInfoString(&b, " = $1 AND ");
			append_field(&b, def, CTF_CREATED_AT);
			appendStringInfoString(&b, " >= $2 AND ");
			append_field(&b, def, CTF_CREATED_AT);
			appendStringInfoString(&b, " < $3");
			/*
			 * At the record of a replaced window: a sale changed since the
			 * window was read is seen, and one being changed is skipped; the
			 * rows read stay locked until the record commits, so a change
			 * after it finds the window's transactionIds.
			 */
			if (stmt == MS_CT_WINDOW_LOCK)
				appendStringInfoString(&b, " FOR SHARE OF s SKIP LOCKED");
			break;
		case MS_CT_DAY_TOTALS:
			appendStringInfoString(&b, "SELECT loc, d, sum(amt), count(*) FROM (SELECT ");
			append_field(&b, def, CTF_LOCATION_ID);
			appendStringInfoString(&b, " AS loc, (");
			append_field(&b, def, CTF_CREATED_AT);
			appendStringInfoString(&b, " AT TIME ZONE $4)::date AS d, ");
			append_field(&b, def, CTF_FINAL_SALE_AMOUNT);
			appendStringInfo(&b, " AS amt FROM %s AS s) x"
							 " WHERE d BETWEEN $1 AND $2 AND ($3::bigint[] IS NULL OR loc = ANY ($3))"
							 " GROUP BY 1, 2", src);
			break;
		case MS_MAPAL_SALES:
			appendStringInfoString(&b, "SELECT unit, at, net, gross, checks FROM (SELECT ");
			append_field(&b, def, MF_UNIT_ID);
			appendStringInfo(&b, " AS unit, %s::timestamptz AT TIME ZONE %s AS at, ",
							 def->expr[MF_SOLD_AT], quote_literal_cstr(def->timezone));
			append_field(&b, def, MF_NET_SALES);
			appendStringInfoString(&b, " AS net, ");
			append_field(&b, def, MF_GROSS_SALES);
			appendStringInfoString(&b, " AS gross, ");
			append_field(&b, def, MF_NUM_CHECKS);
			appendStringInfo(&b, " AS checks FROM %s AS s) x WHERE at >= $1 AND at < $2", src);
			break;
		case MS_N:
			elog(ERROR, "sales_api: no such mapping statement");
	}
	return b.data;
}

/*
 * In a worker, a mapping that runs long (the owner's function sleeps, or
 * waits for a lock) must not hold up every other capture of the database:
 * it is cancelled like a statement after sales_api.worker_mapping_timeout,
 * and the items that needed it wait with the error.
 *
 * A cancel is an ERROR, which the owner's PL/pgSQL may catch (EXCEPTION
 * WHEN query_canceled) and go on.  MAPPING_STOP_GRACE_MS after the cancel
 * the worker is stopped as by pg_terminate_backend() (a FATAL, which no
 * exception block catches), and its exit callback opens the circuit of
 * the capture's lane, so that the worker the launcher starts again claims
 * nothing of it until the circuit lets a probe through (the open time
 * doubles at each stop).  The items in flight come back as a stopped
 * worker's do, when their lease runs out.
 */
#define MAPPING_STOP_GRACE_MS 2000

static TimeoutId mapping_stop_timeout = MAX_TIMEOUTS;
static volatile sig_atomic_t mapping_stopping = false;
static int	mapping_depth = 0;		/* a mapping's function may reach another's */
static int	running_capture = 0;
static Oid	running_server = InvalidOid;
static Oid	running_run_as = InvalidOid;

static void
mapping_stop_handler(void)
{
	mapping_stopping = true;
	ProcDiePending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

static void
mapping_stop_exit(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	char	   *why;

	if (!mapping_stopping || running_capture == 0)
		return;
	why = psprintf("the mapping of capture %d ran past sales_api.worker_mapping_timeout (%d ms) and went on "
				   "after its cancel: the worker was stopped, this lane waits",
				   running_capture, sales_api_mapping_timeout_ms);
	ereport(LOG,
			(errmsg("sales_api worker: %s", why),
			 errdetail("A function of the mapping caught the cancel (query_canceled) and did not end."),
			 errhint("Fix the mapping of capture %d or the functions it calls; the lane's circuit lets one probe "
					 "through after its open time (sales_api.lane_status).", running_capture)));
	lanes_quarantine(running_server, running_run_as, why);
}

static int
execute_with_timeout(const CaptureDef *def, const char *sql, int nargs, Oid *types, Datum *values,
					 const char *nulls)
{
	volatile int ret = 0;
	int64		stop_ms = (int64) sales_api_mapping_timeout_ms + MAPPING_STOP_GRACE_MS;

	/*
	 * A mapping's function that reaches another mapping (a _local_* reader
	 * of its own table, say) runs it under the outer statement's limits:
	 * the inner call must not disarm them when it ends, nor take the blame
	 * for the outer capture.
	 */
	if (mapping_depth > 0)
		return SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	if (mapping_stop_timeout == MAX_TIMEOUTS)
	{
		mapping_stop_timeout = RegisterTimeout(USER_TIMEOUT, mapping_stop_handler);
		on_shmem_exit(mapping_stop_exit, (Datum) 0);
	}
	running_capture = def->id;
	running_server = def->server_id;
	running_run_as = def->run_as;
	mapping_depth++;
	enable_timeout_after(STATEMENT_TIMEOUT, sales_api_mapping_timeout_ms);
	enable_timeout_after(mapping_stop_timeout, (int) Min(stop_ms, (int64) INT_MAX));
	PG_TRY();
	{
		ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	}
	PG_FINALLY();
	{
		disable_timeout(STATEMENT_TIMEOUT, false);
		disable_timeout(mapping_stop_timeout, false);
		mapping_depth--;
		if (!mapping_stopping)
			running_capture = 0;
	}
	PG_END_TRY();
	return ret;
}

/*
 * Run one of the statements over the capture's table as its owner; the
 * rows are in SPI_tuptable.  SPI must be connected.  read_only is false:
 * each run takes a fresh snapshot (the worker reads sales committed after
 * its claim).
 */
int
mapping_execute(const CaptureDef *def, MappingStmt stmt, int nargs, Oid *types,
				Datum *values, const char *nulls)
{
	char	   *sql = mapping_sql(def, stmt, NULL);
	OwnerScope	scope;
	int			ret;

	mapping_enter_owner(mapping_table_owner(def->relid), &scope);

	/*
	 * sales_api's own workers only (the worker, the scheduled
	 * reconciliation's): another extension's background worker that calls
	 * a reader (a job scheduler's, say) has its own limits, and must not be
	 * stopped, nor a lane held back, for it
	 */
	if (IsBackgroundWorker && MyBgworkerEntry != NULL &&
		strcmp(MyBgworkerEntry->bgw_library_name, "sales_api") == 0 &&
		sales_api_mapping_timeout_ms > 0)
		ret = execute_with_timeout(def, sql, nargs, types, values, nulls);
	else
		ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	mapping_leave_owner(&scope);
	if (ret < 0)
		elog(ERROR, "sales_api: a statement of capture %d failed: %s", def->id,
			 SPI_result_code_string(ret));
	return ret;
}

/*
 * A role shown figures computed from a captured table (a reconciliation)
 * must be allowed to read that table.
 */
void
mapping_check_reader(const CaptureDef *def)
{
	if (pg_class_aclcheck(def->relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", table_name(def->relid)),
				 errdetail("The reconciliation of server \"%s\" reads that table through capture %d.",
						   def->server_name, def->id),
				 errhint("Grant SELECT on the table to this role, or reconcile as a role that can read it.")));

	/*
	 * The mapping runs as the table's owner, whom the table's row-level
	 * security does not restrict (unless FORCE ROW LEVEL SECURITY): a caller
	 * whose SELECT the policies limit would get the figures of rows it may
	 * not see.  The owner itself, under FORCE, sees through the mapping
	 * what its policies let it see.
	 */
	if (check_enable_rls(def->relid, InvalidOid, true) == RLS_ENABLED &&
		!pg_class_ownercheck(def->relid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("row-level security of table %s applies to this role", table_name(def->relid)),
				 errdetail("The reconciliation of server \"%s\" reads every row of that table through capture %d, as its owner.",
						   def->server_name, def->id),
				 errhint("Reconcile as the table's owner or as a role with BYPASSRLS.")));
}
