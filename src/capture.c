/*-------------------------------------------------------------------------
 *
 * capture.c
 *		The capture trigger of attached POS tables.
 *
 * attach() installs three statement-level AFTER triggers per capture,
 * sales_api_capture_<id>_ins, _upd and _del, with transition tables
 * sales_api_new / sales_api_old, each calling sales_api.capture_trigger()
 * with one argument: the capture id.  The trigger carries no SQL.  It
 * checks that it is one of those three triggers, on the capture's own
 * table, for a live capture, and refuses to run otherwise; then it works
 * in two steps per POS statement:
 *
 *   1. as the table's owner (mapping.c: SECURITY_RESTRICTED_OPERATION,
 *      pg_catalog only on the search path), the statement built from the
 *      capture's mapping reads the transition table: a sale's fields, the
 *      keys of old versions, or the Mapal slots touched.  Its rows go
 *      straight into arrays, one per column (ArraysReceiver).  For a POS
 *      statement of few rows, the statement's planned expressions are
 *      evaluated on each row without an executor (owner_project());
 *   2. what step 1 returned is written to sales_api.outbox_stage
 *      (Connecteam sales) or sales_api.mapal_stage (the Mapal slots
 *      touched) by heap_insert() (stage_put()), or by a fixed statement
 *      run as the extension: into sales_api.outbox for supersedes and
 *      deletes of Connecteam sales changed or removed, and into a stage
 *      table that has gained an index or trigger.
 *
 * Step 1 is the only place the mapping runs, so a function it calls has
 * the owner's rights, never the inserting role's nor the extension's.
 * Step 2 runs no user-supplied SQL: the POS roles need no privilege on
 * sales_api's tables.
 *
 * Plans are prepared once per backend and kept (SPI_keepplan): the
 * mapping's statements per capture (owner_run()), the bookkeeping
 * statements once.  A capture's entry is checked again when its table's
 * relcache entry is invalidated, which CREATE/DROP TRIGGER, ALTER TABLE
 * and a change of owner all do; the plan cache itself replans after DDL.
 *
 * A POS statement of fewer rows than sales_api.stage_min_rows stages a row
 * per sale; a larger one a single row of arrays, which the worker expands
 * (outbox_stage.c).  Either costs the POS transaction far less
 * than an outbox item per sale with its index entries and CHECKs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "parser/parsetree.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "dates.h"
#include "mapal_wire.h"
#include "mapping.h"
#include "outbox_stage.h"
#include "outbox_states.h"
#include "server.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(sales_api_capture_trigger);

#define NEW_TABLE "sales_api_new"
#define OLD_TABLE "sales_api_old"

/* ------------------------------------------------------------------------
 * The bookkeeping statements: fixed, their inputs are parameters
 * ------------------------------------------------------------------------
 */
typedef enum BkStmt
{
	BK_CT_STAGE_ONE,
	BK_CT_STAGE_ROWS,
	BK_CT_STAGE_ARRAYS,
	BK_CT_SUPERSEDE,
	BK_MAPAL_STAGE,
	BK_N
} BkStmt;

#define STAGE_COLS "capture_id, staged_at, sale_key, location_id, sale_type, created_at," \
	" final_sale_amount, tax_amount, currency"
#define STAGE_ARRAY_COLS "capture_id, staged_at, sale_keys, location_ids, sale_types, created_ats," \
	" final_sale_amounts, tax_amounts, currencies"

static const char *const bk_sql[BK_N] = {
	/* BK_CT_STAGE_ONE: a row of one sale, only ever by stage_put() */
	NULL,
	/* BK_CT_STAGE_ROWS: a row per sale, in the statement's order */
	"INSERT INTO sales_api.outbox_stage (" STAGE_COLS ")"
	" SELECT $1, statement_timestamp(), u.k, u.loc, u.st, u.ca, u.amt, u.tax, u.cur"
	" FROM unnest($2, $3, $4, $5, $6, $7, $8) AS u(k, loc, st, ca, amt, tax, cur)",
	/* BK_CT_STAGE_ARRAYS: a row of arrays, a part of a large statement */
	"INSERT INTO sales_api.outbox_stage (" STAGE_ARRAY_COLS ")"
	" VALUES ($1, statement_timestamp() + $9 * interval '1 microsecond', $2, $3, $4, $5, $6, $7, $8)",
	/*
	 * BK_CT_SUPERSEDE: old versions.  A version certainly not at the vendor
	 * is cancelled; one the vendor holds, or may hold, is deleted: by its
	 * transactionId when known, else by the post whose outcome decides it
	 * (target_post_id).  A newer version in flight or ambiguous is the one
	 * to undo (an older, sent version has its own delete queued already).
	 */
	"WITH gone AS (SELECT DISTINCT g.k FROM unnest($2::text[]) AS g(k)),"
	" cancelled AS (UPDATE sales_api.outbox o SET state = " OUTBOX_SQL(OUTBOX_SUPERSEDED) ", lease_until = NULL"
	"   FROM gone WHERE o.capture_id = $1 AND o.kind = " OUTBOX_SQL(OUTBOX_CT_POST) " AND o.sale_key = gone.k"
	"   AND o.state IN (" OUTBOX_SQL(OUTBOX_PENDING) ", " OUTBOX_SQL(OUTBOX_FAILED) ") AND NOT o.ambiguous RETURNING o.id)"
	" INSERT INTO sales_api.outbox (capture_id, kind, sale_key, location_id, created_at, vendor_ref,"
	"                               target_post_id, next_attempt_at)"
	" SELECT $1, " OUTBOX_SQL(OUTBOX_CT_DELETE) ", gone.k, cs.location_id, cs.created_at,"
	"        CASE WHEN p.id IS NULL THEN cs.transaction_id END, p.id, statement_timestamp()"
	"   FROM gone"
	"   LEFT JOIN sales_api.connecteam_sent cs ON cs.capture_id = $1 AND cs.sale_key = gone.k"
	"   LEFT JOIN LATERAL (SELECT max(o.id) AS id FROM sales_api.outbox o"
	"                       WHERE o.capture_id = $1 AND o.kind = " OUTBOX_SQL(OUTBOX_CT_POST) " AND o.sale_key = gone.k"
	/* in flight, ambiguous, or claimed between this statement's snapshot and its lock */
	"                         AND o.state IN (" OUTBOX_SQL(OUTBOX_PENDING) ", " OUTBOX_SQL(OUTBOX_FAILED) ", "
	"                              " OUTBOX_SQL(OUTBOX_IN_FLIGHT) ", " OUTBOX_SQL(OUTBOX_UNKNOWN) ")"
	"                         AND o.id NOT IN (SELECT id FROM cancelled)) p ON true"
	"  WHERE cs.transaction_id IS NOT NULL OR p.id IS NOT NULL",
	/*
	 * BK_MAPAL_STAGE: the slots the statement touched, one row of arrays;
	 * the worker makes them dirty markers (outbox_stage.c).  Nothing is
	 * locked: two tills selling in one slot never wait for each other.
	 */
	"INSERT INTO sales_api.mapal_stage (capture_id, staged_at, unit_ids, business_days, currency_ids,"
	"                                   sales_type_ids, slot_starts)"
	" VALUES ($1, statement_timestamp(), $2, $3, $4, $5, $6)",
};

static const Oid ct_array_types[9] = {INT4OID, TEXTARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
TIMESTAMPTZARRAYOID, NUMERICARRAYOID, NUMERICARRAYOID, TEXTARRAYOID, INT4OID};
static const Oid ct_keys_types[2] = {INT4OID, TEXTARRAYOID};
static const Oid mapal_mark_types[6] = {INT4OID, INT8ARRAYOID, DATEARRAYOID, TEXTARRAYOID,
TEXTARRAYOID, TIMESTAMPARRAYOID};

static SPIPlanPtr bk_plans[BK_N];

static void
bk_run(BkStmt which, Datum *values, const char *nulls)
{
	OwnerScope	scope;
	int			ret;

	mapping_enter_extension(&scope);
	if (bk_plans[which] == NULL)
	{
		const Oid  *types;
		int			nargs;
		SPIPlanPtr	plan;

		switch (which)
		{
			case BK_CT_STAGE_ROWS:
				types = ct_array_types, nargs = 8;
				break;
			case BK_CT_STAGE_ARRAYS:
				types = ct_array_types, nargs = 9;
				break;
			case BK_CT_SUPERSEDE:
				types = ct_keys_types, nargs = 2;
				break;
			case BK_MAPAL_STAGE:
				types = mapal_mark_types, nargs = 6;
				break;
			default:
				elog(ERROR, "sales_api capture: no statement %d", (int) which);
		}
		plan = SPI_prepare(bk_sql[which], nargs, (Oid *) types);
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "sales_api capture: could not prepare a bookkeeping statement: %s",
				 SPI_result_code_string(SPI_result));
		bk_plans[which] = plan;
	}
	ret = SPI_execute_plan(bk_plans[which], values, nulls, false, 0);
	mapping_leave_extension(&scope);
	if (ret < 0)
		elog(ERROR, "sales_api capture: a bookkeeping statement failed: %s",
			 SPI_result_code_string(ret));
}

/*
 * The stage rows without the executor.  A POS statement of one sale pays
 * more for starting an INSERT (ModifyTable over the stage table's columns)
 * than for the row itself, and the stage tables are built for this: no
 * index, no trigger, no default, no CHECK.  So the row is formed here and
 * heap_insert()ed, as PostgreSQL writes its catalogs, with the lock the
 * INSERT would take.  That runs no code of anyone's, so it needs none of
 * the extension's rights either.  Should a table ever have any of these
 * (an administrator's index or trigger, a changed type, another access
 * method), stage_open() says no and the fixed statement runs instead.
 * Skipping the executor also skips its hooks: an auditing extension that
 * logs INSERTs into sales_api's tables (pgaudit's object audit) does not
 * see these rows, as it does not see the catalogs' own writes.
 */
#define STAGE_DIRECT_MAX 9

typedef struct StageTarget
{
	const char *relname;
	int			ncols;			/* capture_id, staged_at, then the values */
	const char *cols[STAGE_DIRECT_MAX];
	Oid			types[STAGE_DIRECT_MAX];
	/* cached for relid; reset by the relcache callback */
	Oid			relid;
	bool		checked;
	bool		ok;
	AttrNumber	attno[STAGE_DIRECT_MAX];
} StageTarget;

static StageTarget stage_targets[BK_N] = {
	[BK_CT_STAGE_ONE] = {"outbox_stage", 9,
		{"capture_id", "staged_at", "sale_key", "location_id", "sale_type", "created_at",
		"final_sale_amount", "tax_amount", "currency"},
		{INT4OID, TIMESTAMPTZOID, TEXTOID, INT8OID, TEXTOID, TIMESTAMPTZOID, NUMERICOID, NUMERICOID, TEXTOID}},
	[BK_CT_STAGE_ARRAYS] = {"outbox_stage", 9,
		{"capture_id", "staged_at", "sale_keys", "location_ids", "sale_types", "created_ats",
		"final_sale_amounts", "tax_amounts", "currencies"},
		{INT4OID, TIMESTAMPTZOID, TEXTARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID,
		NUMERICARRAYOID, NUMERICARRAYOID, TEXTARRAYOID}},
	[BK_MAPAL_STAGE] = {"mapal_stage", 7,
		{"capture_id", "staged_at", "unit_ids", "business_days", "currency_ids", "sales_type_ids",
		"slot_starts"},
		{INT4OID, TIMESTAMPTZOID, INT8ARRAYOID, DATEARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TIMESTAMPARRAYOID}},
};

/* whether rel is a plain table whose insert runs nothing but heap_insert */
static bool
stage_direct_check(StageTarget *t, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			found = 0;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relam != HEAP_TABLE_AM_OID ||
		rel->rd_rel->relispartition || rel->rd_rel->relhasindex ||
		rel->rd_rel->relhasrules || rel->rd_rel->relrowsecurity || rel->trigdesc != NULL ||
		(desc->constr != NULL && desc->constr->num_check > 0))
		return false;
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		int			c;

		if (att->attisdropped)
			continue;
		if (att->atthasdef || att->attgenerated || att->attidentity)
			return false;
		for (c = 0; c < t->ncols; c++)
			if (strcmp(NameStr(att->attname), t->cols[c]) == 0)
				break;
		if (c == t->ncols)
		{
			if (att->attnotnull)
				return false;	/* a column left NULL may not be */
			continue;
		}
		if (att->atttypid != t->types[c] || att->atttypmod != -1)
			return false;
		t->attno[c] = att->attnum;
		found++;
	}
	return found == t->ncols;
}

/*
 * The stage table of statement which (BK_CT_STAGE_ONE, BK_CT_STAGE_ARRAYS
 * or BK_MAPAL_STAGE), opened for stage_put(), or NULL when its rows need
 * the executor (bk_run()).  Checked once a statement: an index built
 * concurrently meanwhile waits for this transaction before it is used.
 */
static Relation
stage_open(BkStmt which)
{
	StageTarget *t = &stage_targets[which];
	Oid			relid = get_relname_relid(t->relname, get_namespace_oid("sales_api", false));
	Relation	rel;

	if (!OidIsValid(relid))
		return NULL;
	rel = table_open(relid, RowExclusiveLock);
	if (!t->checked || t->relid != relid)
	{
		t->ok = stage_direct_check(t, rel);
		t->relid = relid;
		t->checked = true;
	}
	if (!t->ok)
	{
		/* the lock is kept; the statement takes the same one */
		table_close(rel, NoLock);
		return NULL;
	}
	return rel;
}

/*
 * One stage row: values as bk_run() takes them, the capture id first;
 * staged_at is the statement's start, plus after_us microseconds.
 */
static void
stage_put(Relation rel, BkStmt which, Datum *vals, const char *nulls, int after_us)
{
	StageTarget *t = &stage_targets[which];
	TupleDesc	desc = RelationGetDescr(rel);
	Datum	   *values = palloc0(desc->natts * sizeof(Datum));
	bool	   *isnull = palloc(desc->natts * sizeof(bool));
	HeapTuple	tup;

	memset(isnull, true, desc->natts * sizeof(bool));
	for (int c = 0; c < t->ncols; c++)
	{
		int			a = t->attno[c] - 1;

		if (c == 1)
		{
			values[a] = TimestampTzGetDatum(GetCurrentStatementStartTimestamp() + after_us);
			isnull[a] = false;
		}
		else
		{
			int			v = c == 0 ? 0 : c - 1;

			values[a] = vals[v];
			isnull[a] = nulls[v] == 'n';
		}
		if (isnull[a] && TupleDescAttr(desc, a)->attnotnull)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("null value in column \"%s\" of relation \"%s\" violates not-null constraint",
							t->cols[c], RelationGetRelationName(rel)),
					 errdetail("A sales_api capture staged a sale whose mapped %s is null.", t->cols[c]),
					 errhint("Check the capture's mapping (sales_api.capture) for an expression that can be null."),
					 errtablecol(rel, t->attno[c])));
	}
	tup = heap_form_tuple(desc, values, isnull);
	simple_heap_insert(rel, tup);
	heap_freetuple(tup);
	pfree(values);
	pfree(isnull);
}

/* the lock is held to the end of the transaction, as an INSERT's */
static void
stage_close(Relation rel)
{
	table_close(rel, NoLock);
}

/* bk_run() of a statement staging one row of arrays, without the executor where it can */
static void
stage_row(BkStmt which, Datum *vals, const char *nulls)
{
	Relation	rel = stage_open(which);

	if (rel == NULL)
	{
		bk_run(which, vals, nulls);
		return;
	}
	stage_put(rel, which, vals, nulls, 0);
	stage_close(rel);
}

/*
 * Before an UPDATE or DELETE looks for the posts of its sales, the staged
 * rows holding them become items, waiting for a POS transaction that is
 * making items of them itself.  vals: the capture id and the sale keys.
 */
static void
stage_expand_keys(Datum *vals)
{
	OwnerScope	scope;
	Datum		args[4] = {vals[0], vals[1], 0, 0};

	mapping_enter_extension(&scope);
	(void) outbox_stage_expand(true, args, "  nn");
	mapping_leave_extension(&scope);
}

/* ------------------------------------------------------------------------
 * Captures known to this backend
 * ------------------------------------------------------------------------
 */

/* the statements of the mapping the trigger runs, by MappingStmt */
#define CAPTURE_NSTMTS (MS_MAPAL_OLD_ROW_SLOTS + 1)
#define MAPAL_STMT(k) ((k) == MS_MAPAL_NEW_SLOTS || (k) == MS_MAPAL_OLD_SLOTS || \
					   (k) == MS_MAPAL_NEW_ROW_SLOTS || (k) == MS_MAPAL_OLD_ROW_SLOTS)
#define OLD_STMT(k) ((k) == MS_CT_OLD_KEYS || (k) == MS_MAPAL_OLD_SLOTS || (k) == MS_MAPAL_OLD_ROW_SLOTS)

typedef struct CaptureEntry
{
	int			id;				/* hash key */
	bool		valid;			/* loaded, and no invalidation since */
	bool		exists;
	bool		live;
	bool		legacy;			/* the 0.6 schema (see mapping_load) */
	Oid			relid;
	SalesApiVendor vendor;
	char	   *sql[CAPTURE_NSTMTS];
	SPIPlanPtr	plan[CAPTURE_NSTMTS];	/* kept, for statements of few rows */
	bool		replan;			/* a role's memberships changed: plan again */
	SlotClock	clock;			/* Mapal: the units' slots */
} CaptureEntry;

static HTAB *capture_cache = NULL;
static MemoryContext capture_cxt = NULL;

/*
 * Kept plans and statement texts replaced while a call of the same capture
 * may still be running them (a mapping function writing to the captured
 * table): freed at the end of the top-level transaction, when none is.
 */
static List *retired_plans = NIL;
static List *retired_sql = NIL;

static void
capture_retire(CaptureEntry *e, int k, bool sql_too)
{
	MemoryContext old = MemoryContextSwitchTo(capture_cxt);

	if (e->plan[k] != NULL)
		retired_plans = lappend(retired_plans, e->plan[k]);
	if (sql_too && e->sql[k] != NULL)
		retired_sql = lappend(retired_sql, e->sql[k]);
	MemoryContextSwitchTo(old);
	e->plan[k] = NULL;
}

static void
capture_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	ListCell   *lc;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT && event != XACT_EVENT_PREPARE)
		return;
	foreach(lc, retired_plans)
		SPI_freeplan((SPIPlanPtr) lfirst(lc));
	foreach(lc, retired_sql)
		pfree(lfirst(lc));
	list_free(retired_plans);
	list_free(retired_sql);
	retired_plans = NIL;
	retired_sql = NIL;
}

/*
 * A kept plan inlined the SQL functions its owner could execute when it was
 * made; the plan cache does not replan when a role's memberships change
 * (REVOKE role FROM owner, ALTER ROLE ... NOINHERIT), so every kept plan is
 * made again, as the owner, at its next statement.
 */
static void
capture_role_callback(Datum arg pg_attribute_unused(), int cacheid pg_attribute_unused(),
					  uint32 hashvalue pg_attribute_unused())
{
	HASH_SEQ_STATUS status;
	CaptureEntry *e;

	if (capture_cache == NULL)
		return;
	hash_seq_init(&status, capture_cache);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		e->valid = false;
		e->replan = true;
	}
}

static void
capture_relcache_callback(Datum arg pg_attribute_unused(), Oid relid)
{
	HASH_SEQ_STATUS status;
	CaptureEntry *e;

	for (int i = 0; i < BK_N; i++)
		if (!OidIsValid(relid) || stage_targets[i].relid == relid)
			stage_targets[i].checked = false;
	if (capture_cache == NULL)
		return;
	hash_seq_init(&status, capture_cache);
	while ((e = hash_seq_search(&status)) != NULL)
		if (!OidIsValid(relid) || e->relid == relid)
			e->valid = false;
}

static void
capture_cache_init(void)
{
	HASHCTL		ctl;

	capture_cxt = AllocSetContextCreate(TopMemoryContext, "sales_api capture plans",
										ALLOCSET_SMALL_SIZES);
	ctl.keysize = sizeof(int);
	ctl.entrysize = sizeof(CaptureEntry);
	ctl.hcxt = capture_cxt;
	capture_cache = hash_create("sales_api captures", 16, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(capture_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, capture_role_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, capture_role_callback, (Datum) 0);
	RegisterXactCallback(capture_xact_callback, NULL);
}

/*
 * Load a capture's row and build its statements.  A statement whose text
 * is unchanged keeps its plan (unless a role's memberships changed); one
 * that changed (the row was edited by hand) gets a new plan, and the old
 * one is freed at the end of the top-level transaction rather than under a
 * caller that may still be running it (capture_retire()).
 */
static void
capture_load(CaptureEntry *e)
{
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "sales_api capture load",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(tmp);
	CaptureDef *def;
	bool		replan = e->replan;

	/* an invalidation while loading leaves it invalid for the next call */
	e->valid = true;
	e->replan = false;
	PG_TRY();
	{
		def = mapping_load(e->id, true);
		e->exists = (def != NULL);
		if (def != NULL)
		{
			e->live = def->live;
			e->legacy = def->legacy;
			e->relid = def->relid;
			e->vendor = def->vendor;
			if (def->vendor == VENDOR_MAPAL)
			{
				SlotClock	clock;

				slot_clock_init(&clock, def->timezone, def->slot_minutes);
				if (clock.name != NULL)
				{
					text	   *name = MemoryContextAlloc(capture_cxt, VARSIZE(clock.name));

					memcpy(name, clock.name, VARSIZE(clock.name));
					clock.name = name;
				}
				if (e->clock.name != NULL)
					pfree(e->clock.name);
				e->clock = clock;
			}
			for (int k = 0; k < CAPTURE_NSTMTS; k++)
			{
				char	   *sql;

				if ((def->vendor == VENDOR_MAPAL) != MAPAL_STMT(k))
					continue;
				sql = mapping_sql(def, (MappingStmt) k,
								  OLD_STMT(k) ? OLD_TABLE : NEW_TABLE);
				if (e->sql[k] != NULL && strcmp(e->sql[k], sql) == 0)
				{
					if (replan)
						capture_retire(e, k, false);
					continue;
				}
				capture_retire(e, k, true);
				e->sql[k] = MemoryContextStrdup(capture_cxt, sql);
			}
		}
	}
	PG_CATCH();
	{
		/* loaded again at the next call */
		e->valid = false;
		e->replan |= replan;
		MemoryContextSwitchTo(old);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
}

/* ------------------------------------------------------------------------
 * Which capture is this trigger?
 * ------------------------------------------------------------------------
 */
static void
refuse(TriggerData *td, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("trigger \"%s\" on table \"%s\" is not a valid sales_api capture trigger",
					td->tg_trigger->tgname, RelationGetRelationName(td->tg_relation)),
			 errdetail_internal("%s", why),
			 errhint("sales_api.attach() creates the capture triggers; drop this one.")));
}

static bool
parse_id(const char *s, int *id)
{
	char	   *end;
	long		v;

	if (s == NULL || *s < '1' || *s > '9')
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > PG_INT32_MAX)
		return false;
	*id = (int) v;
	return true;
}

/*
 * The capture this trigger belongs to, checked: the trigger's name is the
 * one attach() gives it for this event, its one argument is the capture
 * id, its transition tables have the names the statements read, and the
 * capture is live and captures this very table.  A trigger of the 0.6
 * schema (its arguments were statements, never run here) is known by its
 * name alone, and only while the schema is still 0.6.
 */
static CaptureEntry *
capture_identify(TriggerData *td, const char *suffix, bool wants_new, bool wants_old)
{
	Trigger    *tg = td->tg_trigger;
	int			name_id;
	int			arg_id = 0;
	bool		legacy_trigger = false;
	char		expected[NAMEDATALEN];
	const char *idpart;
	CaptureEntry *e;
	bool		found;

	if (strncmp(tg->tgname, "sales_api_capture_", 18) != 0)
		refuse(td, "Its name is not sales_api_capture_<id>_ins, _upd or _del.");
	idpart = tg->tgname + 18;
	name_id = atoi(idpart);
	snprintf(expected, sizeof(expected), "sales_api_capture_%d_%s", name_id, suffix);
	if (name_id <= 0 || strcmp(tg->tgname, expected) != 0)
		refuse(td, psprintf("Its name must be sales_api_capture_<id>_%s for this event.", suffix));
	if (tg->tgnargs == 1 && parse_id(tg->tgargs[0], &arg_id))
	{
		if (arg_id != name_id)
			refuse(td, "Its argument is not the capture id its name carries.");
	}
	else
		legacy_trigger = true;
	if ((wants_new && (tg->tgnewtable == NULL || strcmp(tg->tgnewtable, NEW_TABLE) != 0)) ||
		(!wants_new && tg->tgnewtable != NULL) ||
		(wants_old && (tg->tgoldtable == NULL || strcmp(tg->tgoldtable, OLD_TABLE) != 0)) ||
		(!wants_old && tg->tgoldtable != NULL))
		refuse(td, "Its transition tables are not the ones the capture reads.");

	if (capture_cache == NULL)
		capture_cache_init();
	e = hash_search(capture_cache, &name_id, HASH_ENTER, &found);
	if (!found)
	{
		memset(((char *) e) + sizeof(int), 0, sizeof(CaptureEntry) - sizeof(int));
		e->valid = false;
	}
	if (!e->valid)
		capture_load(e);
	if (!e->exists)
		refuse(td, psprintf("sales_api capture %d does not exist.", name_id));
	if (legacy_trigger && !e->legacy)
		refuse(td, "sales_api.capture_trigger() takes exactly one argument: the capture id.");
	if (!e->live)
		refuse(td, psprintf("sales_api capture %d is detached.", name_id));
	if (e->relid != RelationGetRelid(td->tg_relation))
		refuse(td, psprintf("sales_api capture %d captures another table.", name_id));
	return e;
}

/* ------------------------------------------------------------------------
 * Running it
 * ------------------------------------------------------------------------
 */

/*
 * Step 1: one of the capture's statements, as the table owner.
 *
 * A statement over a transition table is planned for the number of rows
 * it holds when the plan is made (the planner's estimate of an ephemeral
 * relation), and a kept plan with no parameters is never replanned for
 * another size.  So a plan is kept only for statements of fewer than
 * CAPTURE_REPLAN_ROWS rows; a larger statement plans its own, for its
 * size, which costs it a fraction of a millisecond: the slots of 100,000
 * sales are then found by hashing, not by sorting them on disk with a
 * plan made for a single-row INSERT.
 */
#define CAPTURE_REPLAN_ROWS 1000

/*
 * Step 1 of a statement of few rows, without the executor.
 *
 * Planned, a capture's statement over a transition table is a bare
 * projection: a NamedTuplestoreScan whose target list is the mapping's
 * expressions over the scanned row.  For a POS statement of one sale,
 * starting an executor for it (CreateExecutorState, InitPlan, the query
 * descriptor, the portal's snapshot bookkeeping) was the largest part of
 * the trigger.  Here the same target list of the same kept plan is
 * compiled into a projection (ExecBuildProjectionInfo, as the executor's
 * scan node would) and evaluated on each row of the transition table, as
 * PostgreSQL evaluates an index expression (FormIndexDatum) or PL/pgSQL a
 * simple expression, and each row goes to the same receiver.
 *
 * Nothing is evaluated with other rights than the executor would use:
 * the caller has entered the owner's (mapping_enter_owner()), the
 * projection is compiled there, so EXECUTE on each function is checked
 * for the owner (ExecInitFunc), and the plan is the one the plan cache
 * revalidates and, after DDL, replans as the owner.  The snapshot and
 * command counter are handled as SPI_execute_plan_extended() handles a
 * statement that is not read-only, so a function of the mapping that
 * reads a table sees what it saw through SPI.
 *
 * Only plans of that shape, over the transition table the caller reads,
 * and only expressions made of the node types listed in
 * direct_expr_refused(), are evaluated so; any other (a subquery, a
 * set-returning function, a parameter, a whole-row or system column
 * reference, a node type a later PostgreSQL adds) returns false before
 * evaluating anything, and the caller runs the statement through SPI.
 * What the projection allocates is in a context of its own, deleted before
 * the owner's rights are left, as the executor's query context is.
 */
static bool
direct_expr_refused(Node *node, void *context)
{
	if (node == NULL)
		return false;
	switch (nodeTag(node))
	{
		case T_Var:
			if (((Var *) node)->varattno <= 0 || ((Var *) node)->varlevelsup != 0)
				return true;
			break;
		case T_List:
		case T_Const:
		case T_FuncExpr:
		case T_OpExpr:
		case T_DistinctExpr:
		case T_NullIfExpr:
		case T_ScalarArrayOpExpr:
		case T_BoolExpr:
		case T_RelabelType:
		case T_CoerceViaIO:
		case T_ArrayCoerceExpr:
		case T_ConvertRowtypeExpr:
		case T_CollateExpr:
		case T_CaseExpr:
		case T_CaseWhen:
		case T_CaseTestExpr:
		case T_ArrayExpr:
		case T_RowExpr:
		case T_RowCompareExpr:
		case T_CoalesceExpr:
		case T_MinMaxExpr:
		case T_SQLValueFunction:
		case T_NullTest:
		case T_BooleanTest:
		case T_CoerceToDomain:
		case T_CoerceToDomainValue:
		case T_FieldSelect:
		case T_FieldStore:
		case T_SubscriptingRef:
			break;
		default:
			/* anything else (a subquery, a parameter, ...): through SPI */
			return true;
	}
	return expression_tree_walker(node, direct_expr_refused, context);
}

static bool
direct_plan_ok(CachedPlan *cplan, const char *enrname)
{
	PlannedStmt *ps;
	Plan	   *p;
	ListCell   *lc;

	if (list_length(cplan->stmt_list) != 1)
		return false;
	ps = linitial_node(PlannedStmt, cplan->stmt_list);
	if (ps->commandType != CMD_SELECT || ps->utilityStmt != NULL || ps->hasModifyingCTE ||
		ps->subplans != NIL || ps->rowMarks != NIL || ps->paramExecTypes != NIL ||
		list_length(ps->rtable) != 1 || rt_fetch(1, ps->rtable)->rtekind != RTE_NAMEDTUPLESTORE)
		return false;
	p = ps->planTree;
	if (p == NULL || !IsA(p, NamedTuplestoreScan) || p->qual != NIL || p->initPlan != NIL ||
		p->lefttree != NULL || p->righttree != NULL ||
		strcmp(((NamedTuplestoreScan *) p)->enrname, enrname) != 0)
		return false;
	foreach(lc, p->targetlist)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);

		if (tle->resjunk || expression_returns_set((Node *) tle->expr) ||
			direct_expr_refused((Node *) tle->expr, NULL))
			return false;
	}
	return true;
}

static void
direct_error_context(void *arg)
{
	errcontext("SQL statement \"%s\"", (const char *) arg);
}

static bool
owner_project(CaptureEntry *e, MappingStmt k, SPIPlanPtr plan, Tuplestorestate *ts,
			  TupleDesc indesc, DestReceiver *dest)
{
	CachedPlan *cplan;
	List	   *tlist;
	ExprContext *econtext;
	TupleDesc	outdesc;
	TupleTableSlot *inslot,
			   *outslot;
	ProjectionInfo *proj;
	MemoryContext cxt,
				old;
	int			readptr;
	ErrorContextCallback errcb;

	/*
	 * As SPI runs a statement that is not read-only: its own snapshot first,
	 * so that a replan (constant folding of the mapping's functions) sees
	 * what it would see through SPI, not the POS statement's snapshot.
	 */
	PushActiveSnapshot(GetTransactionSnapshot());
	cplan = SPI_plan_get_cached_plan(plan);
	if (cplan == NULL)
	{
		PopActiveSnapshot();
		return false;
	}
	if (!direct_plan_ok(cplan, OLD_STMT(k) ? OLD_TABLE : NEW_TABLE))
	{
		ReleaseCachedPlan(cplan, CurrentResourceOwner);
		PopActiveSnapshot();
		return false;
	}
	tlist = linitial_node(PlannedStmt, cplan->stmt_list)->planTree->targetlist;

	errcb.callback = direct_error_context;
	errcb.arg = e->sql[k];
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	CommandCounterIncrement();
	UpdateActiveSnapshotCommandId();

	cxt = AllocSetContextCreate(CurrentMemoryContext, "sales_api capture projection",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	econtext = CreateStandaloneExprContext();
	outdesc = ExecTypeFromTL(tlist);
	inslot = MakeSingleTupleTableSlot(indesc, &TTSOpsMinimalTuple);
	outslot = MakeSingleTupleTableSlot(outdesc, &TTSOpsVirtual);
	econtext->ecxt_scantuple = inslot;
	proj = ExecBuildProjectionInfo(tlist, econtext, outslot, NULL, indesc);

	/* a read pointer of its own, as ExecInitNamedTuplestoreScan() takes */
	readptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(ts, readptr);
	tuplestore_rescan(ts);

	dest->rStartup(dest, CMD_SELECT, outdesc);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		tuplestore_select_read_pointer(ts, readptr);
		if (!tuplestore_gettupleslot(ts, true, false, inslot))
			break;
		ResetExprContext(econtext);
		dest->receiveSlot(ExecProject(proj), dest);
	}
	dest->rShutdown(dest);

	ExecDropSingleTupleTableSlot(inslot);
	ExecDropSingleTupleTableSlot(outslot);
	FreeExprContext(econtext, true);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);

	CommandCounterIncrement();
	PopActiveSnapshot();
	error_context_stack = errcb.previous;
	ReleaseCachedPlan(cplan, CurrentResourceOwner);
	return true;
}

static void
owner_run(CaptureEntry *e, MappingStmt k, Oid owner, int64 nrows, DestReceiver *dest,
		  Tuplestorestate *ts, TupleDesc indesc)
{
	SPIExecuteOptions opts;
	OwnerScope	scope;
	SPIPlanPtr	plan = e->plan[k];
	int			ret;

	mapping_enter_owner(owner, &scope);
	if (plan == NULL || nrows >= CAPTURE_REPLAN_ROWS)
	{
		plan = SPI_prepare(e->sql[k], 0, NULL);
		if (plan == NULL)
			elog(ERROR, "sales_api capture: could not prepare the statement of capture %d: %s",
				 e->id, SPI_result_code_string(SPI_result));
		if (nrows < CAPTURE_REPLAN_ROWS)
		{
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "sales_api capture: could not keep a plan");
			e->plan[k] = plan;
		}
	}
	/* few rows: plan is the kept one, its target list evaluated directly */
	if (nrows < CAPTURE_REPLAN_ROWS && dest != NULL && ts != NULL &&
		owner_project(e, k, plan, ts, indesc, dest))
	{
		mapping_leave_owner(&scope);
		return;
	}
	memset(&opts, 0, sizeof(opts));
	opts.dest = dest;
	ret = SPI_execute_plan_extended(plan, &opts);
	mapping_leave_owner(&scope);
	if (ret != (dest ? SPI_OK_UTILITY : SPI_OK_SELECT))
		elog(ERROR, "sales_api capture: the statement of capture %d failed: %s",
			 e->id, SPI_result_code_string(ret));
}

/*
 * The rows of a statement, straight into one array per column: the
 * executor hands each row to arrays_receive(), which appends its values,
 * so 100,000 sales cost neither a tuple table of copies nor an aggregate
 * per column.  The statement's columns are cast to the element types
 * (mapping.c), which arrays_startup() checks.
 */
#define ARRAYS_MAX_COLS 7

/*
 * A Mapal statement's row: the unit, the business day when one is mapped
 * (else NULL), currency, sales type and the sale's time; the receiver
 * makes the time its slot and a missing day the slot's date (SlotClock).
 */
#define MAPAL_NCOLS 5
#define MAPAL_COL_DAY 1
#define MAPAL_COL_SLOT 4
static const Oid mapal_stmt_types[MAPAL_NCOLS] = {INT8OID, DATEOID, TEXTOID, TEXTOID, TIMESTAMPTZOID};

/*
 * A row's values as bytes, for the distinct rows of the Mapal slots: each
 * column a null flag, then a pass-by-value datum as it is, a fixed-length
 * one's bytes, or a varlena's length and bytes.  Two rows are one slot
 * when their bytes are equal, which for these columns (bigint, date,
 * timestamp, and text compared by a deterministic collation) is SQL's
 * DISTINCT.  Under a nondeterministic collation (a case-insensitive ICU
 * one on the POS column, say) 'TAKE' and 'take' stay two slots here, as
 * they already did when two statements staged them: the worker's DISTINCT
 * ON (outbox_stage.c) compares the stage's text[] by the default
 * collation.
 */
typedef struct RowKey
{
	const char *bytes;
	uint32		len;
} RowKey;

typedef struct SeenRow
{
	RowKey		key;
	uint32		hash;
	char		status;
} SeenRow;

#define SH_PREFIX seen
#define SH_ELEMENT_TYPE SeenRow
#define SH_KEY_TYPE RowKey
#define SH_KEY key
#define SH_HASH_KEY(tb, k) hash_bytes((const unsigned char *) (k).bytes, (int) (k).len)
#define SH_EQUAL(tb, a, b) ((a).len == (b).len && memcmp((a).bytes, (b).bytes, (a).len) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

typedef struct ArraysReceiver
{
	DestReceiver pub;
	int			ncols;
	const Oid  *types;			/* the arrays' element types */
	const Oid  *in_types;		/* the statement's column types (Mapal: its time) */
	ArrayBuildState *abs[ARRAYS_MAX_COLS];
	uint64		rows;
	MemoryContext cxt;
	seen_hash  *seen;			/* distinct rows only: those kept so far */
	int			key_of;			/* Connecteam sales: their capture; the key
								 * (column 1) must not be NULL */
	SlotClock  *clock;			/* Mapal rows: their time made a slot */
	StringInfoData key;			/* the row at hand as a RowKey */
	/*
	 * In parts (arrays_parts()): each part_size rows staged, then
	 * forgotten.  A column's values go straight into the bytes its array
	 * will hold (pdata: each element as construct_md_array() lays it out,
	 * a varlena with a 4-byte header, aligned), with a null flag each.
	 */
	Relation	part_rel;
	int			part_size;
	int			capture_id;
	int			parts;
	int			pn;				/* rows in the part so far */
	StringInfoData pdata[ARRAYS_MAX_COLS];
	bool	   *pnull[ARRAYS_MAX_COLS];
	bool		phasnull[ARRAYS_MAX_COLS];
	int16		typlen[ARRAYS_MAX_COLS];
	bool		typbyval[ARRAYS_MAX_COLS];
	char		typalign[ARRAYS_MAX_COLS];
} ArraysReceiver;

static void stage_put(Relation rel, BkStmt which, Datum *vals, const char *nulls, int after_us);
static void arrays_stage_part(ArraysReceiver *r);

static void
arrays_startup(DestReceiver *self, int operation pg_attribute_unused(), TupleDesc typeinfo)
{
	ArraysReceiver *r = (ArraysReceiver *) self;

	if (typeinfo->natts != r->ncols)
		elog(ERROR, "sales_api capture: a mapping statement returned %d columns, not %d",
			 typeinfo->natts, r->ncols);
	for (int c = 0; c < r->ncols; c++)
		if (TupleDescAttr(typeinfo, c)->atttypid != r->in_types[c])
			elog(ERROR, "sales_api capture: column %d of a mapping statement has type %u, not %u",
				 c + 1, TupleDescAttr(typeinfo, c)->atttypid, r->in_types[c]);
}

/* distinct rows: is this row's value new?  Keeps its bytes if so. */
static bool
arrays_first_seen(ArraysReceiver *r, const Datum *values, const bool *isnull)
{
	struct varlena *text[ARRAYS_MAX_COLS];
	uint32		len = 0;
	char	   *p;
	RowKey		k;
	SeenRow    *e;
	bool		found;

	for (int c = 0; c < r->ncols; c++)
	{
		len += 1;
		if (isnull[c])
			continue;
		if (r->abs[c]->typbyval)
			len += sizeof(Datum);
		else if (r->abs[c]->typlen > 0)
			len += r->abs[c]->typlen;	/* int8, timestamp where not by value */
		else
		{
			text[c] = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(values[c]));
			len += sizeof(uint32) + VARSIZE_ANY_EXHDR(text[c]);
		}
	}
	enlargeStringInfo(&r->key, (int) len);
	p = r->key.data;
	for (int c = 0; c < r->ncols; c++)
	{
		*p++ = isnull[c] ? 1 : 0;
		if (isnull[c])
			continue;
		if (r->abs[c]->typbyval)
		{
			memcpy(p, &values[c], sizeof(Datum));
			p += sizeof(Datum);
		}
		else if (r->abs[c]->typlen > 0)
		{
			memcpy(p, DatumGetPointer(values[c]), r->abs[c]->typlen);
			p += r->abs[c]->typlen;
		}
		else
		{
			uint32		n = VARSIZE_ANY_EXHDR(text[c]);

			memcpy(p, &n, sizeof(n));
			memcpy(p + sizeof(n), VARDATA_ANY(text[c]), n);
			p += sizeof(n) + n;
			if ((Pointer) text[c] != DatumGetPointer(values[c]))
				pfree(text[c]);
		}
	}
	k.bytes = r->key.data;
	k.len = len;
	e = seen_insert(r->seen, k, &found);
	if (found)
		return false;
	e->key.bytes = MemoryContextAlloc(r->cxt, len);
	memcpy((char *) e->key.bytes, k.bytes, len);
	return true;
}

/* parts: a row's values appended to their columns' element bytes */
static void
parts_add(ArraysReceiver *r, TupleTableSlot *slot)
{
	for (int c = 0; c < r->ncols; c++)
	{
		StringInfo	b = &r->pdata[c];
		int			end;

		r->pnull[c][r->pn] = slot->tts_isnull[c];
		if (slot->tts_isnull[c])
		{
			r->phasnull[c] = true;
			continue;
		}
		if (r->typbyval[c])
		{
			enlargeStringInfo(b, r->typlen[c] + MAXIMUM_ALIGNOF);
			store_att_byval(b->data + b->len, slot->tts_values[c], r->typlen[c]);
			b->len += r->typlen[c];
		}
		else if (r->typlen[c] > 0)
		{
			/* int8 and timestamptz where they are not by value */
			enlargeStringInfo(b, r->typlen[c] + MAXIMUM_ALIGNOF);
			memcpy(b->data + b->len, DatumGetPointer(slot->tts_values[c]), r->typlen[c]);
			b->len += r->typlen[c];
		}
		else
		{
			struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(slot->tts_values[c]));
			int			n = (int) VARSIZE_ANY_EXHDR(v);

			enlargeStringInfo(b, VARHDRSZ + n + MAXIMUM_ALIGNOF);
			SET_VARSIZE(b->data + b->len, VARHDRSZ + n);
			memcpy(b->data + b->len + VARHDRSZ, VARDATA_ANY(v), n);
			b->len += VARHDRSZ + n;
			if ((Pointer) v != DatumGetPointer(slot->tts_values[c]))
				pfree(v);
		}
		end = att_align_nominal(b->len, r->typalign[c]);
		memset(b->data + b->len, 0, end - b->len);
		b->len = end;
	}
	r->pn++;
	r->rows++;
	if (r->pn >= r->part_size)
		arrays_stage_part(r);
}

/* parts: column c of the part as an array, laid out as construct_md_array() does */
static Datum
parts_array(ArraysReceiver *r, int c)
{
	int			n = r->pn;
	int32		dataoffset = r->phasnull[c] ? ARR_OVERHEAD_WITHNULLS(1, n) : 0;
	Size		nbytes = (r->phasnull[c] ? (Size) dataoffset : ARR_OVERHEAD_NONULLS(1)) + r->pdata[c].len;
	ArrayType  *a;

	if (!AllocSizeIsValid(nbytes))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("array size exceeds the maximum allowed (%d)", (int) MaxAllocSize)));
	a = (ArrayType *) palloc0(nbytes);
	SET_VARSIZE(a, nbytes);
	a->ndim = 1;
	a->dataoffset = dataoffset;
	a->elemtype = r->types[c];
	ARR_DIMS(a)[0] = n;
	ARR_LBOUND(a)[0] = 1;
	memcpy(ARR_DATA_PTR(a), r->pdata[c].data, r->pdata[c].len);
	if (r->phasnull[c])
	{
		bits8	   *bitmap = ARR_NULLBITMAP(a);

		for (int i = 0; i < n; i++)
			if (!r->pnull[c][i])
				bitmap[i / 8] |= 1 << (i % 8);
	}
	return PointerGetDatum(a);
}

static bool
arrays_receive(TupleTableSlot *slot, DestReceiver *self)
{
	ArraysReceiver *r = (ArraysReceiver *) self;
	Datum	   *values;
	bool	   *isnull;
	Datum		mv[MAPAL_NCOLS];
	bool		mn[MAPAL_NCOLS];

	slot_getallattrs(slot);
	if (r->key_of > 0 && slot->tts_isnull[0])
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("a sale captured by sales_api capture %d has a NULL sale_key", r->key_of),
				 errdetail("Connecteam sales are changed and deleted at the vendor by their key: a sale without one could be posted, but never updated or removed there."),
				 errhint("Give the row a key, or attach the table with a sale_key expression that is never NULL (its primary key, by default).")));
	if (r->part_rel != NULL)
	{
		parts_add(r, slot);
		return true;
	}
	values = slot->tts_values;
	isnull = slot->tts_isnull;
	if (r->clock != NULL)
	{
		/* a Mapal row: (unit, business day or NULL, currency, type, time) */
		memcpy(mv, values, sizeof(mv));
		memcpy(mn, isnull, sizeof(mn));
		if (!mn[MAPAL_COL_SLOT])
			mv[MAPAL_COL_SLOT] = TimestampGetDatum(slot_clock_slot(r->clock,
																   DatumGetTimestampTz(mv[MAPAL_COL_SLOT])));
		if (mn[MAPAL_COL_DAY] && !mn[MAPAL_COL_SLOT])
		{
			/* no business day mapped: the slot's date */
			mv[MAPAL_COL_DAY] = DateADTGetDatum(dates_timestamp_date(DatumGetTimestamp(mv[MAPAL_COL_SLOT])));
			mn[MAPAL_COL_DAY] = false;
		}
		values = mv;
		isnull = mn;
	}
	if (r->seen != NULL && !arrays_first_seen(r, values, isnull))
		return true;
	for (int c = 0; c < r->ncols; c++)
		r->abs[c] = accumArrayResult(r->abs[c], values[c], isnull[c], r->types[c], r->cxt);
	r->rows++;
	return true;
}

static void
arrays_noop(DestReceiver *self pg_attribute_unused())
{
}

static void
arrays_init(ArraysReceiver *r, int ncols, const Oid *types, bool distinct)
{
	Assert(ncols <= ARRAYS_MAX_COLS);
	memset(r, 0, sizeof(*r));
	r->pub.receiveSlot = arrays_receive;
	r->pub.rStartup = arrays_startup;
	r->pub.rShutdown = arrays_noop;
	r->pub.rDestroy = arrays_noop;
	r->pub.mydest = DestNone;
	r->ncols = ncols;
	r->types = types;
	r->in_types = types;
	r->cxt = CurrentMemoryContext;
	for (int c = 0; c < ncols; c++)
	{
		r->abs[c] = initArrayResult(types[c], r->cxt, false);
		if (!r->abs[c]->typbyval && r->abs[c]->typlen < 0 && r->abs[c]->typlen != -1)
			elog(ERROR, "sales_api capture: a column of type %u is neither fixed-length nor a varlena",
				 types[c]);
	}
	if (distinct)
	{
		r->seen = seen_create(r->cxt, 256, NULL);
		initStringInfo(&r->key);
	}
}

/*
 * Receive in parts: every part_size rows become a row of rel
 * (BK_CT_STAGE_ARRAYS) while the statement runs, and their arrays are
 * freed, so a statement of any size holds one part in memory, and its
 * values are copied once (not into arrays of the whole statement first,
 * then into each part's).  The rows are written by heap_insert() alone
 * (stage_put()), which runs no SQL and checks no privilege, so doing it
 * inside the owner's statement gives the owner nothing: the statement's
 * snapshot does not see them (same command id), and a function of the
 * mapping that takes snapshots of its own still may not read sales_api's
 * tables.  Such a function that also writes to a captured table fires
 * that capture inside this one, which then finds the parts staged so far
 * and not the rest; a mapping is meant to read its row, not to write.
 */
static void
arrays_parts(ArraysReceiver *r, Relation rel, int capture_id, int part_size)
{
	for (int c = 0; c < r->ncols; c++)
	{
		initStringInfo(&r->pdata[c]);
		r->pnull[c] = palloc(part_size * sizeof(bool));
		get_typlenbyvalalign(r->types[c], &r->typlen[c], &r->typbyval[c], &r->typalign[c]);
	}
	/* what staging a part allocates, freed after each */
	r->cxt = AllocSetContextCreate(CurrentMemoryContext, "sales_api capture part",
								   ALLOCSET_DEFAULT_SIZES);
	r->part_rel = rel;
	r->part_size = part_size;
	r->capture_id = capture_id;
}

/* the rows received since the last part, staged as one */
static void
arrays_stage_part(ArraysReceiver *r)
{
	Datum		vals[ARRAYS_MAX_COLS + 2];
	char		nulls[ARRAYS_MAX_COLS + 2];
	MemoryContext old;

	if (r->pn == 0)
		return;
	old = MemoryContextSwitchTo(r->cxt);
	memset(nulls, ' ', sizeof(nulls));
	vals[0] = Int32GetDatum(r->capture_id);
	for (int c = 0; c < r->ncols; c++)
		vals[c + 1] = parts_array(r, c);
	vals[r->ncols + 1] = Int32GetDatum(r->parts);
	stage_put(r->part_rel, BK_CT_STAGE_ARRAYS, vals, nulls, r->parts);
	r->parts++;
	MemoryContextSwitchTo(old);
	MemoryContextReset(r->cxt);
	for (int c = 0; c < r->ncols; c++)
	{
		resetStringInfo(&r->pdata[c]);
		r->phasnull[c] = false;
	}
	r->pn = 0;
}

/* column c of the rows received, as an array */
static Datum
arrays_result(ArraysReceiver *r, int c)
{
	return makeArrayResult(r->abs[c], r->cxt);
}

/* column c of n rows received from the first on, as an array */
static Datum
arrays_slice(ArraysReceiver *r, int c, uint64 first, int n)
{
	ArrayBuildState *a = r->abs[c];
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return PointerGetDatum(construct_md_array(a->dvalues + first, a->dnulls + first, 1, dims, lbs,
											  a->element_type, a->typlen, a->typbyval, a->typalign));
}

static const Oid ct_elem_types[7] = {TEXTOID, INT8OID, TEXTOID, TIMESTAMPTZOID, NUMERICOID,
NUMERICOID, TEXTOID};
static const Oid mapal_elem_types[MAPAL_NCOLS] = {INT8OID, DATEOID, TEXTOID, TEXTOID, TIMESTAMPOID};

/* The keys of the old versions: their staged rows expanded, then superseded. */
static void
ct_old_versions(CaptureEntry *e, Oid owner, int64 nrows)
{
	Datum		vals[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;

	owner_run(e, MS_CT_OLD_KEYS, owner, nrows, NULL, NULL, NULL);
	vals[1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return;
	vals[0] = Int32GetDatum(e->id);
	stage_expand_keys(vals);
	bk_run(BK_CT_SUPERSEDE, vals, nulls);
}

/*
 * The new versions, staged: a row per sale, or rows of arrays for a
 * statement of sales_api.stage_min_rows rows or more, each a part of at
 * most STAGE_PART_SALES sales.  A part is what one claim statement of a
 * lane takes (CT_CLAIM_CHUNK), straight into flight (outbox_connecteam.c),
 * so the worker never makes a 100,000-sale statement items in one
 * transaction while its requests wait.  Part k is staged k microseconds
 * after the statement's start, which orders a statement's parts without
 * another column.  The worker takes staged rows in staged_at order, which
 * is the order of a session's statements: the next one starts after this
 * one ended, and inserting a part's 500 rows takes far longer than a
 * microsecond.  Statements of concurrent sessions have no order to keep
 * (neither sees the other's sales before it commits); statements that share
 * a start (in a DO block or a procedure) were ordered by chance before, as
 * their single-sale rows still are.
 */
#define STAGE_PART_SALES 500

static void
ct_new_versions(CaptureEntry *e, TriggerData *td, Oid owner, int64 nrows)
{
	ArraysReceiver r;
	Datum		vals[9];
	char		nulls[9];
	Relation	rel = NULL;

	arrays_init(&r, 7, ct_elem_types, false);
	r.key_of = e->id;
	if (nrows >= sales_api_stage_min_rows && (rel = stage_open(BK_CT_STAGE_ARRAYS)) != NULL)
	{
		/* rows of arrays, a part at a time */
		arrays_parts(&r, rel, e->id, STAGE_PART_SALES);
		owner_run(e, MS_CT_ROWS, owner, nrows, &r.pub, td->tg_newtable,
				  RelationGetDescr(td->tg_relation));
		arrays_stage_part(&r);
		MemoryContextDelete(r.cxt);
		stage_close(rel);
		return;
	}
	owner_run(e, MS_CT_ROWS, owner, nrows, &r.pub, td->tg_newtable,
			  RelationGetDescr(td->tg_relation));
	if (r.rows == 0)
		return;
	memset(nulls, ' ', sizeof(nulls));
	vals[0] = Int32GetDatum(e->id);
	if (nrows < sales_api_stage_min_rows)
	{
		/* a row per sale, in the statement's order */
		rel = stage_open(BK_CT_STAGE_ONE);
		if (rel == NULL)
		{
			for (int c = 0; c < 7; c++)
				vals[c + 1] = arrays_result(&r, c);
			bk_run(BK_CT_STAGE_ROWS, vals, nulls);
			return;
		}
		for (uint64 i = 0; i < r.rows; i++)
		{
			for (int c = 0; c < 7; c++)
			{
				vals[c + 1] = r.abs[c]->dvalues[i];
				nulls[c + 1] = r.abs[c]->dnulls[i] ? 'n' : ' ';
			}
			stage_put(rel, BK_CT_STAGE_ONE, vals, nulls, 0);
		}
		stage_close(rel);
		return;
	}
	/* the stage has gained an index or a trigger: its statement, a part at a time */
	for (uint64 first = 0; first < r.rows; first += STAGE_PART_SALES)
	{
		int			n = (int) Min(r.rows - first, STAGE_PART_SALES);

		for (int c = 0; c < 7; c++)
			vals[c + 1] = arrays_slice(&r, c, first, n);
		vals[8] = Int32GetDatum((int) (first / STAGE_PART_SALES));
		bk_run(BK_CT_STAGE_ARRAYS, vals, nulls);
		for (int c = 0; c < 7; c++)
			pfree(DatumGetPointer(vals[c + 1]));
	}
}

/*
 * The Mapal slots of the new or old rows, each once, staged to be marked
 * dirty.  The mapping's statement returns a slot per row; the receiver
 * keeps each slot once (arrays_first_seen()), which costs a bulk
 * statement half what a DISTINCT in the statement did (a hash aggregate's
 * tuples and its per-column hashing and comparisons through fmgr).  A
 * statement of one row has one slot and skips even that.  A statement of
 * more than MAPAL_STAGE_PART_SLOTS slots stages them in parts of that many,
 * as the Connecteam sales: the worker makes markers of a part a statement,
 * and its requests in flight are read and refilled between two
 * (outbox_stage.c), where one statement for a day's 14,400 slots kept them
 * waiting 130 ms.
 */
#define MAPAL_STAGE_PART_SLOTS 1000

static void
mapal_slots(CaptureEntry *e, TriggerData *td, Oid owner, bool old, int64 nrows)
{
	MappingStmt k = nrows > 1 ?
		(old ? MS_MAPAL_OLD_SLOTS : MS_MAPAL_NEW_SLOTS) :
		(old ? MS_MAPAL_OLD_ROW_SLOTS : MS_MAPAL_NEW_ROW_SLOTS);
	ArraysReceiver r;
	Datum		vals[6];
	char		nulls[6];
	Relation	rel;

	arrays_init(&r, MAPAL_NCOLS, mapal_elem_types, nrows > 1);
	r.clock = &e->clock;
	r.in_types = mapal_stmt_types;
	owner_run(e, k, owner, nrows, &r.pub, old ? td->tg_oldtable : td->tg_newtable,
			  RelationGetDescr(td->tg_relation));
	if (r.rows == 0)
		return;
	memset(nulls, ' ', sizeof(nulls));
	vals[0] = Int32GetDatum(e->id);
	if (r.rows <= MAPAL_STAGE_PART_SLOTS)
	{
		for (int c = 0; c < MAPAL_NCOLS; c++)
			vals[c + 1] = arrays_result(&r, c);
		stage_row(BK_MAPAL_STAGE, vals, nulls);
		return;
	}
	/* parts of MAPAL_STAGE_PART_SLOTS slots, part k staged k microseconds on */
	rel = stage_open(BK_MAPAL_STAGE);
	for (uint64 first = 0; first < r.rows; first += MAPAL_STAGE_PART_SLOTS)
	{
		int			n = (int) Min(r.rows - first, MAPAL_STAGE_PART_SLOTS);
		int			part = (int) (first / MAPAL_STAGE_PART_SLOTS);

		for (int c = 0; c < MAPAL_NCOLS; c++)
			vals[c + 1] = arrays_slice(&r, c, first, n);
		if (rel != NULL)
			stage_put(rel, BK_MAPAL_STAGE, vals, nulls, part);
		else
			bk_run(BK_MAPAL_STAGE, vals, nulls);
		for (int c = 0; c < MAPAL_NCOLS; c++)
			pfree(DatumGetPointer(vals[c + 1]));
	}
	if (rel != NULL)
		stage_close(rel);
}

Datum
sales_api_capture_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	CaptureEntry *e;
	bool		ins,
				upd,
				del;
	Oid			owner;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("sales_api.capture_trigger() must be called as a trigger"),
				 errhint("sales_api.attach() installs it; it is not called directly.")));
	if (!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) || !TRIGGER_FIRED_AFTER(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("sales_api.capture_trigger() must be an AFTER ... FOR EACH STATEMENT trigger"),
				 errhint("Use sales_api.attach() to capture a table.")));
	ins = TRIGGER_FIRED_BY_INSERT(td->tg_event);
	upd = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
	del = TRIGGER_FIRED_BY_DELETE(td->tg_event);
	if (!ins && !upd && !del)
		refuse(td, "It fires for an event other than INSERT, UPDATE or DELETE.");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "sales_api capture: SPI_connect failed");
	e = capture_identify(td, ins ? "ins" : upd ? "upd" : "del", ins || upd, upd || del);
	if (SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "sales_api capture: could not register the transition tables");
	owner = td->tg_relation->rd_rel->relowner;

	if (e->vendor == VENDOR_CONNECTEAM)
	{
		if (upd || del)
			ct_old_versions(e, owner, tuplestore_tuple_count(td->tg_oldtable));
		if ((ins || upd) && tuplestore_tuple_count(td->tg_newtable) > 0)
			ct_new_versions(e, td, owner, tuplestore_tuple_count(td->tg_newtable));
	}
	else
	{
		if (upd || del)
			mapal_slots(e, td, owner, true, tuplestore_tuple_count(td->tg_oldtable));
		if (ins || upd)
			mapal_slots(e, td, owner, false, tuplestore_tuple_count(td->tg_newtable));
	}
	SPI_finish();

	worker_wake_on_commit();
	return PointerGetDatum(NULL);
}
