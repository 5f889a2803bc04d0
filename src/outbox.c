/*-------------------------------------------------------------------------
 *
 * outbox.c
 *		The background worker's delivery over sales_api.outbox: claim, send,
 *		record, lane by lane.  The vendors' parts are outbox_connecteam.c and
 *		outbox_mapal.c; outbox_states.c decides each item's next state.
 *
 * Design note.  Each capture is a lane (its server and run_as: one vendor
 * account) with at most one job in flight, and a lane that must wait never
 * holds back another:
 *
 *   1. claim (for every lane neither busy nor waiting; claim_jobs()), in
 *      three transactions: the Connecteam pass (expired leases of idle
 *      lanes are taken back; a batch of due items is moved to in_flight
 *      with a lease, FOR UPDATE SKIP LOCKED, so an operator's manual
 *      statements or a second worker never block on it, and a lane's
 *      staged sales are made items in flight, outbox_connecteam.c; a
 *      paused server's become pending items, outbox_stage.c; the windows
 *      to replace are read), whose jobs then start; staged Mapal slots
 *      made markers (outbox_stage.c); the Mapal pass (a batch of dirty
 *      slots in flight, their totals recomputed from the POS table).  The
 *      captures' credentials are resolved as their run_as roles, and the
 *      items of a pass grouped into one job per capture.
 *   2. send (no transaction): a job is a sequence of phases (a window's
 *      delete, then its reposts; deletes; posts; Mapal's requests), each
 *      run by the rate-limit engine (ratelimit.c) without ever waiting for a
 *      budget.  outbox_step() steps every job's run; the transfers of all
 *      jobs are in flight together on the HTTP core's multi handle, and
 *      the worker waits in outbox_wait() for whichever finishes first, or
 *      for its latch.  Every item gets an OutboxOutcome.
 *   3. record (one short transaction for the jobs finished together):
 *      outbox_decide() makes each outcome the item's next state, written in
 *      one statement; the vendor's transactionIds are kept.  A job whose
 *      budget ran out leaves its lane waiting until the budget is back
 *      (its items wait with next_attempt_at), and the lane claims again.
 *
 * The worker is one process: while it runs SQL, no answer is read and no
 * request started.  So claims and records go in statements of at most a
 * few hundred items, and between two statements jobs_progress() reads the
 * answers in and starts the requests they make room for; and a lane's
 * second job takes the first one's place when that ends, so that the lane
 * claims its next job while one is still sending (every LANE_CHAIN_MAX
 * times in a row the lane looks for an item only an idle lane's claim takes,
 * a delete, window or retry, and goes idle once if it has one).
 *
 * The fixed statements are prepared on first use and kept for the
 * worker's life (outbox_execute()); only the statements built from a
 * capture's mapping are planned per run, as the table's owner (mapping.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "lanes.h"
#include "outbox.h"
#include "outbox_connecteam.h"
#include "outbox_mapal.h"
#include "outbox_stage.h"
#include "server.h"
#include "vendor.h"
#include "worker.h"

/* Staged rows made items per claim: a backlog after a long stop goes in steps */
#define STAGE_ROWS_PER_CLAIM 20000

/* Items recorded per statement, so that jobs_progress() runs between them */
#define RECORD_CHUNK 500

/* A record that waits for a POS transaction holding a leased row is tried again this often */
#define RECORD_RETRY_MS 20

static bool warned_missing = false;

static void jobs_progress(void);
static bool mark_staged_slots(MemoryContext cycle_cxt);

/* an error went through jobs_progress() (see claim_jobs()) */
static bool jobs_failed = false;

/* the outbox as this library knows it (0.8.0: outbox_lease_items exists) */
static OutboxStmt installed_stmt = {
	.sql = "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('sales_api.server_state')"
	"                AND attname = 'server_name' AND NOT attisdropped)"
	" FROM pg_extension WHERE extname = 'sales_api'"
	" AND to_regclass('sales_api.outbox_lease_items') IS NOT NULL",
	.nargs = 0
};

/* server_state keeps its servers' names (installed_stmt) */
static bool state_names = true;

/*
 * The statements the worker runs while it sends are prepared
 * (warm_statements()); the last pass found the extension in its current
 * schema, and a Mapal capture
 */
static bool warmed = false;
static bool warmed_mapal = false;
static bool found_current = false;
static bool found_mapal = false;

/*
 * The sales_api servers, for the captures' binding below: a capture keeps
 * its server's OID and name, and the two agree unless the server was
 * renamed, or the database restored (new OIDs).
 */
#define SA_SERVERS \
	"(SELECT f.oid, f.srvname FROM pg_catalog.pg_foreign_server f" \
	"   JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = f.srvfdw AND w.fdwname = 'sales_api')"

/*
 * The captures; how each is bound to its server (ok; renamed: its OID's
 * server has another name, none has its own; moved: its OID names no server,
 * one has its name; ambiguous: its OID names one server, its name another,
 * or moving it would make two live captures of a table and server; gone);
 * the other tables captured for its server; and whether a pause row names a
 * server that its OID does not (bind_pauses()).
 */
#define CAPTURES_SELECT \
	"SELECT c.id, c.server_id, c.run_as, c.vendor," \
	" CASE WHEN EXISTS (SELECT 1 FROM " SA_SERVERS " f WHERE f.oid = c.server_id AND f.srvname = c.server_name) THEN 'ok'" \
	"      WHEN EXISTS (SELECT 1 FROM " SA_SERVERS " f WHERE f.oid = c.server_id)" \
	"      THEN CASE WHEN EXISTS (SELECT 1 FROM " SA_SERVERS " f WHERE f.srvname = c.server_name) THEN 'ambiguous'" \
	"                ELSE 'renamed' END" \
	"      WHEN EXISTS (SELECT 1 FROM " SA_SERVERS " f WHERE f.srvname = c.server_name)" \
	"      THEN CASE WHEN c.detached_at IS NULL AND EXISTS (SELECT 1 FROM sales_api.capture o, " SA_SERVERS " f" \
	"                 WHERE f.srvname = c.server_name AND o.server_id = f.oid AND o.relid = c.relid" \
	"                   AND o.detached_at IS NULL AND o.id <> c.id) THEN 'ambiguous' ELSE 'moved' END" \
	"      ELSE 'gone' END," \
	" (SELECT string_agg(DISTINCT o.relid::text, ', ') FROM sales_api.capture o" \
	"   WHERE o.server_id = c.server_id AND o.relid <> c.relid)," \
	" (SELECT f.srvname FROM " SA_SERVERS " f WHERE f.oid = c.server_id), c.server_name,"

static OutboxStmt captures_stmt = {
	.sql = CAPTURES_SELECT
	" EXISTS (SELECT 1 FROM sales_api.server_state s WHERE s.server_name IS NOT NULL"
	"   AND (EXISTS (SELECT 1 FROM " SA_SERVERS " f WHERE f.srvname = s.server_name AND f.oid <> s.server_id)"
	"        OR (EXISTS (SELECT 1 FROM " SA_SERVERS " f WHERE f.oid = s.server_id AND f.srvname <> s.server_name)"
	"            AND NOT EXISTS (SELECT 1 FROM " SA_SERVERS " g WHERE g.srvname = s.server_name))))"
	" FROM sales_api.capture c",
	.nargs = 0
};

/*
 * The same for a schema of an earlier build of 0.8.0, whose server_state
 * has no server_name (an extension keeps its version across builds of it):
 * its pauses are not moved after a restore
 */
static OutboxStmt captures_nonames_stmt = {
	.sql = CAPTURES_SELECT " false FROM sales_api.capture c",
	.nargs = 0
};

/* expired leases, by kind: $1 kinds, $2 states, $3 ambiguous, $4 delays in ms, $5 errors */
static OutboxStmt expire_stmt = {
	.sql = "UPDATE sales_api.outbox o SET lease_until = NULL,"
	" state = ($2::text[])[array_position($1, o.kind)],"
	" ambiguous = ($3::boolean[])[array_position($1, o.kind)],"
	" next_attempt_at = now() + ($4::bigint[])[array_position($1, o.kind)] * interval '1 ms',"
	" last_error = ($5::text[])[array_position($1, o.kind)]"
	" WHERE o.state = " OUTBOX_SQL(OUTBOX_IN_FLIGHT) " AND o.lease_until < now()"
	" AND o.capture_id <> ALL($6)",
	.nargs = 6, .types = {TEXTARRAYOID, TEXTARRAYOID, BOOLARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
	INT4ARRAYOID}
};

/* old history, $1 its age in ms; both halves use a partial index, no scan of the history */
static OutboxStmt purge_stmt = {
	.sql = "DELETE FROM sales_api.outbox WHERE id IN ("
	" (SELECT id FROM sales_api.outbox WHERE state = " OUTBOX_SQL(OUTBOX_SENT)
	"   AND sent_at < now() - $1 * interval '1 ms' LIMIT 10000)"
	" UNION ALL"
	" (SELECT id FROM sales_api.outbox WHERE state = " OUTBOX_SQL(OUTBOX_SUPERSEDED)
	"   AND enqueued_at < now() - $1 * interval '1 ms' LIMIT 10000))",
	.nargs = 1, .types = {INT4OID}
};

/* every item's next state, from arrays */
static OutboxStmt record_stmt = {
	.sql = "UPDATE sales_api.outbox o SET state = u.state, lease_until = NULL,"
	"  http_status = coalesce(u.http_status, o.http_status),"
	"  vendor_ref = coalesce(u.vendor_ref, o.vendor_ref), last_error = u.err,"
	"  attempts = o.attempts - u.giveback, ambiguous = u.ambiguous,"
	"  sent_at = CASE WHEN u.state = " OUTBOX_SQL(OUTBOX_SENT) " THEN now() END,"
	"  next_attempt_at = CASE WHEN u.state = " OUTBOX_SQL(OUTBOX_FAILED) " THEN now() + u.delay * interval '1 ms' END"
	" FROM unnest($1, $2, $3, $4, $5, $6, $7, $8)"
	"   AS u(id, state, http_status, vendor_ref, err, delay, giveback, ambiguous)"
	" WHERE o.id = u.id",
	.nargs = 8, .types = {INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, INT8ARRAYOID, INT4ARRAYOID, BOOLARRAYOID}
};

/*
 * Leased staged rows (outbox_connecteam.c): $1 the rows, $2 their lease.
 * How many are still there, and those of them this transaction could lock,
 * each with its capture and first sale: a POS transaction making one items
 * (an UPDATE or DELETE of its sales) holds it, and the record waits for it
 * to end rather than block.  A row is known by its ctid from the claim to
 * the record, which a rewrite of the table (VACUUM FULL) changes: a row
 * found there is the lease's only if it holds the lease's first sale.
 */
static OutboxStmt lease_lock_stmt = {
	.sql = "SELECT (SELECT count(*) FROM sales_api.outbox_stage x WHERE x.ctid = ANY ($1) AND x.lease_until = $2),"
	" z.tids, z.caps, z.keys FROM (SELECT array_agg(y.ctid) AS tids, array_agg(y.capture_id) AS caps,"
	"   array_agg(coalesce(y.sale_keys[1], y.sale_key)) AS keys FROM (SELECT w.ctid, w.capture_id, w.sale_keys, w.sale_key"
	"   FROM sales_api.outbox_stage w WHERE w.ctid = ANY ($1) AND w.lease_until = $2 FOR UPDATE SKIP LOCKED) y) z",
	.nargs = 2, .types = {TIDARRAYOID, TIMESTAMPTZOID}
};

/*
 * ... recorded: the rows still there are deleted and their sales inserted
 * as items in their next state, from arrays ($1 row and $3 place of each
 * sale, then as record_stmt; $2 the lease).  A sale with no outcome given
 * stays in flight under the lease (never, as a job records all it
 * claimed).  Returns the rows deleted.
 */
static OutboxStmt lease_record_stmt = {
	.sql = "WITH s AS (DELETE FROM sales_api.outbox_stage st WHERE st.ctid = ANY ($1) AND st.lease_until = $2"
	"   RETURNING st.ctid AS tid, st.*),"
	" u AS (SELECT * FROM unnest($1, $3, $4, $5, $6, $7, $8, $9, $10)"
	"   AS u(tid, ord, state, http_status, vendor_ref, err, delay, giveback, ambiguous)),"
	" i AS (INSERT INTO sales_api.outbox (capture_id, kind, sale_key, location_id, sale_type, created_at,"
	"        final_sale_amount, tax_amount, currency, enqueued_at, state, attempts, lease_until, http_status,"
	"        vendor_ref, last_error, ambiguous, sent_at, next_attempt_at)"
	"   SELECT s.capture_id, " OUTBOX_SQL(OUTBOX_CT_POST) ", x.k, x.loc, x.stype, x.ts, x.amt, x.tax, x.cur,"
	"          s.staged_at, coalesce(u.state, " OUTBOX_SQL(OUTBOX_IN_FLIGHT) "), 1 - coalesce(u.giveback, 0),"
	"          CASE WHEN u.state IS NULL THEN s.lease_until END, u.http_status, u.vendor_ref, u.err,"
	"          coalesce(u.ambiguous, false),"
	"          CASE WHEN u.state = " OUTBOX_SQL(OUTBOX_SENT) " THEN now() END,"
	"          CASE WHEN u.state = " OUTBOX_SQL(OUTBOX_FAILED) " THEN now() + u.delay * interval '1 ms' END"
	"     FROM s CROSS JOIN LATERAL " STAGE_SALES_OF_S("x")
	"     LEFT JOIN u ON u.tid = s.tid AND u.ord = x.ord"
	"    ORDER BY s.staged_at, x.ord)"
	" SELECT s.tid FROM s",
	.nargs = 10, .types = {TIDARRAYOID, TIMESTAMPTZOID, INT4ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, INT8ARRAYOID, INT4ARRAYOID, BOOLARRAYOID}
};

/*
 * ... rows made items while leased: the ids of their sales' items; $1 the
 * rows, $2 the lease, $3 and $4 each row's capture and first sale (its
 * first item must be that sale: see lease_lock_stmt)
 */
static OutboxStmt lease_items_stmt = {
	.sql = "DELETE FROM sales_api.outbox_lease_items m USING unnest($1, $3, $4) AS u(tid, cap, k)"
	" WHERE m.stage_tid = u.tid AND m.lease_until = $2 AND m.capture_id = u.cap"
	"   AND EXISTS (SELECT 1 FROM sales_api.outbox o WHERE o.id = m.item_ids[1] AND o.sale_key IS NOT DISTINCT FROM u.k)"
	" RETURNING m.stage_tid, m.item_ids",
	.nargs = 4, .types = {TIDARRAYOID, TIMESTAMPTZOID, INT4ARRAYOID, TEXTARRAYOID}
};

/*
 * the next item due of the captures that may claim, $1 (through
 * outbox_lane_todo_idx: a backlog of a lane in flight is not read)
 */
static OutboxStmt next_due_stmt = {
	.sql = "SELECT min(next_attempt_at) FROM sales_api.outbox"
	" WHERE state IN (" OUTBOX_SQL(OUTBOX_PENDING) ", " OUTBOX_SQL(OUTBOX_FAILED) ")"
	" AND capture_id = ANY($1)",
	.nargs = 1, .types = {INT4ARRAYOID}
};

/* has the lane of capture $1 an item due (through outbox_lane_todo_idx)? */
static OutboxStmt lane_due_stmt = {
	.sql = "SELECT EXISTS (SELECT 1 FROM sales_api.outbox"
	" WHERE state IN (" OUTBOX_SQL(OUTBOX_PENDING) ", " OUTBOX_SQL(OUTBOX_FAILED) ")"
	" AND capture_id = $1 AND coalesce(next_attempt_at, '-infinity') <= now())",
	.nargs = 1, .types = {INT4OID}
};

/* ------------------------------------------------------------------------
 * Helpers shared by the vendors' parts
 * ------------------------------------------------------------------------
 */

/*
 * Run a fixed statement, preparing it on its first run and keeping it
 * (SPI_keepplan) for the life of the backend: it is parsed and analysed
 * once, and the plan cache does so again after DDL.  The plan cache
 * chooses between a plan for each run's parameters and a generic plan kept
 * with the statement, as for any prepared statement (plan_cache_mode): the
 * claim's statements join several tables, and planning them for every claim
 * was half of the worker's time with one sale per claim (1 to 3 ms a claim;
 * test/bench: commit to the vendor).  It runs with pg_catalog alone on the
 * search path, whoever calls.  SPI must be connected.
 */
int
outbox_execute(OutboxStmt *stmt, Datum *values, const char *nulls, bool read_only, long count)
{
	int			ret;

	jobs_progress();
	mapping_push_catalog_path();
	if (stmt->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(stmt->sql, stmt->nargs, stmt->types,
											  stmt->generic ? CURSOR_OPT_GENERIC_PLAN : 0);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "sales_api: could not prepare an outbox statement: %s",
				 SPI_result_code_string(SPI_result));
		stmt->plan = plan;
	}
	ret = SPI_execute_plan(stmt->plan, values, nulls, read_only, count);
	PopOverrideSearchPath();
	if (ret < 0)
		elog(ERROR, "sales_api: an outbox statement failed: %s", SPI_result_code_string(ret));
	return ret;
}

/*
 * Prepare fixed statements now, each in a subtransaction of its own, and
 * make their generic plans.  The worker does this once, in a transaction of
 * its own, for the statements it runs while it sends (warm_statements());
 * one it has already run is skipped.  Made lazily, at a statement's first or
 * sixth run, they were a megabyte of the plan cache that the worker's
 * memory grew by during its first drain (test/bench: memory, issue 8's
 * target); now that memory is taken at the start.
 *
 A statement that always runs on its generic plan (OutboxStmt.generic), or
 * has no parameters, gets the plan its first run would make (on the tables
 * as they are now; an ANALYZE of them makes it again).  For the others the
 * plan cache chooses, from the sixth run on, between the generic plan and
 * one made for the run's parameters, by their costs.  A generic plan made
 * now would be costed on the tables as they are at the start, often empty,
 * and kept while it stays valid: so it is marked invalid at once, as an
 * invalidation of its tables would (plancache.c), and its cost unknown, as
 * before its first making: at the sixth run the plan cache makes it again,
 * on the tables as they are then, and chooses as it did before the
 * warm-up.  Until then its memory is held for it.
 *
 * A statement that cannot be prepared for a reason of the schema (SQLSTATE
 * class 42: an object or column missing, a schema not yet updated) is left
 * to its first run, which reports it; any other error (a cancel, a lock
 * timeout, a deadlock) is raised (warm_statements() then gives up).  The
 * requests in flight are read between two statements, as outbox_execute()
 * does.
 */
void
outbox_warm(OutboxStmt *const *stmts, int n)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	MemoryContext scratch = AllocSetContextCreate(cxt, "sales_api warm", ALLOCSET_DEFAULT_SIZES);

	for (int i = 0; i < n; i++)
	{
		OutboxStmt *stmt = stmts[i];

		if (stmt->plan != NULL)
			continue;
		jobs_progress();
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(scratch);
		PG_TRY();
		{
			SPIPlanPtr	plan;
			CachedPlan *cplan;

			mapping_push_catalog_path();
			plan = SPI_prepare_cursor(stmt->sql, stmt->nargs, stmt->types,
									  stmt->generic ? CURSOR_OPT_GENERIC_PLAN : 0);
			if (plan != NULL && SPI_keepplan(plan) == 0)
			{
				stmt->plan = plan;
				/* the planner's scratch memory is in scratch */
				MemoryContextSwitchTo(scratch);
				cplan = SPI_plan_get_cached_plan(plan);
				if (cplan != NULL)
				{
					if (!stmt->generic && stmt->nargs > 0)
					{
						CachedPlanSource *ps = linitial(SPI_plan_get_plan_sources(plan));

						cplan->is_valid = false;
						ps->generic_cost = -1;
					}
					ReleaseCachedPlan(cplan, CurrentResourceOwner);
				}
			}
			PopOverrideSearchPath();
			ReleaseCurrentSubTransaction();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
			if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION)
			{
				MemoryContextDelete(scratch);
				ReThrowError(edata);
			}
			elog(DEBUG1, "sales_api worker: a statement is left to its first run: %s", edata->message);
			FreeErrorData(edata);
		}
		PG_END_TRY();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		MemoryContextReset(scratch);
	}
	MemoryContextDelete(scratch);
}

/*
 * lappend() in the cycle's context.  Every SPI call leaves the SPI procedure
 * context current (_SPI_end_call), and that context dies with SPI_finish(),
 * so what must outlive the claim transaction is allocated explicitly.
 */
List *
outbox_append(MemoryContext cxt, List *list, void *datum)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);

	list = lappend(list, datum);
	MemoryContextSwitchTo(old);
	return list;
}

char *
outbox_spi_str(HeapTuple tup, TupleDesc td, int col, MemoryContext cxt)
{
	char	   *v = SPI_getvalue(tup, td, col);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

int64
outbox_spi_int64(HeapTuple tup, TupleDesc td, int col, bool *isnull)
{
	Datum		d = SPI_getbinval(tup, td, col, isnull);

	if (*isnull)
		return 0;
	switch (SPI_gettypeid(td, col))
	{
		case INT4OID:
			return DatumGetInt32(d);
		case INT2OID:
			return DatumGetInt16(d);
		default:
			return DatumGetInt64(d);
	}
}

OutboxCapture *
outbox_capture(OutboxCycle *c, int id)
{
	ListCell   *lc;

	foreach(lc, c->captures)
	{
		OutboxCapture *cap = lfirst(lc);

		if (cap->id == id)
			return cap;
	}
	return NULL;
}

/* OutboxJob *, in flight (a list in TopMemoryContext); their lanes are further down */
static List *jobs = NIL;

/* A one-dimensional array that may hold NULLs. */
Datum
outbox_array_with_nulls(Datum *elems, bool *nulls, int n, Oid type, int len, bool byval, char align)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, type, len, byval, align));
}

/*
 * The sales this worker has in flight under a lease, in its jobs and in the
 * claim c being made: their captures (int4[]) and keys (text[]), for the
 * claim of a lane's second job, which skips a sale with a post in flight.
 * Empty arrays when no second job claims (wanted false): the statement
 * does not read them then.
 */
void
outbox_leased_keys(OutboxCycle *c, bool wanted, Datum *captures, Datum *keys)
{
	int			max = c->nitems + 1;
	int			n = 0;
	Datum	   *cs;
	Datum	   *ks;
	ListCell   *lc;

	if (!wanted)
	{
		*captures = PointerGetDatum(construct_empty_array(INT4OID));
		*keys = PointerGetDatum(construct_empty_array(TEXTOID));
		return;
	}
	foreach(lc, jobs)
		max += ((OutboxJob *) lfirst(lc))->c->nitems;
	cs = palloc(sizeof(Datum) * max);
	ks = palloc(sizeof(Datum) * max);
	for (int pass = 0; pass <= list_length(jobs); pass++)
	{
		OutboxCycle *jc = (pass == 0) ? c : ((OutboxJob *) list_nth(jobs, pass - 1))->c;

		for (int i = 0; i < jc->nitems; i++)
		{
			OutboxItem *it = &jc->items[i];

			if (!it->leased || it->sale_key == NULL || it->cap == NULL)
				continue;
			cs[n] = Int32GetDatum(it->cap->id);
			ks[n] = CStringGetTextDatum(it->sale_key);
			n++;
		}
	}
	*captures = PointerGetDatum(construct_array(cs, n, INT4OID, 4, true, TYPALIGN_INT));
	*keys = PointerGetDatum(construct_array(ks, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* n more items at the end of the cycle's, zeroed, nothing tried yet */
OutboxItem *
outbox_add_items(OutboxCycle *c, uint64 n)
{
	OutboxItem *items;

	c->items = repalloc(c->items, sizeof(OutboxItem) * (c->nitems + n + 1));
	items = &c->items[c->nitems];
	memset(items, 0, sizeof(OutboxItem) * n);
	for (uint64 i = 0; i < n; i++)
		items[i].out.retry_after_s = -1;
	c->nitems += n;
	return items;
}

void
outbox_note_requests(HttpRequest **reqs, int n)
{
	for (int i = 0; i < n; i++)
		if (reqs[i]->done || reqs[i]->curl_code != 0)
			worker_note_request(reqs[i]->elapsed_ms, reqs[i]->status);
}

/*
 * Run one of a capture's mapping statements (as the table owner, see
 * mapping.c) in a subtransaction: a mapping that fails (a dropped column,
 * a right the owner lost, an error in its own function) becomes an error
 * on the items that needed it, not a failed cycle for every capture.
 * Returns false with *error (in the cycle's memory) set on failure; the
 * rows are in SPI_tuptable.
 */
bool
outbox_read_pos(OutboxCycle *c, OutboxCapture *cap, MappingStmt stmt, int nargs, Oid *types,
				Datum *values, char **error)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = true;

	/* as outbox_execute(): the requests in flight are read and refilled first */
	jobs_progress();
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		if (cap->def == NULL)
		{
			MemoryContextSwitchTo(c->cxt);
			cap->def = mapping_load(cap->id, false);
			MemoryContextSwitchTo(oldcxt);
		}
		mapping_execute(cap->def, stmt, nargs, types, values, NULL);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(c->cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		*error = psprintf("capture %d: %s", cap->id, edata->message);
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		ok = false;
		/* the items keep the error; the log shows it as it happens */
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("sales_api worker: could not read the POS table of capture %d: %s",
						cap->id, edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 errhint("The items that need it wait in the outbox and are tried again.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return ok;
}

/* ------------------------------------------------------------------------
 * Claim
 * ------------------------------------------------------------------------
 */

/*
 * Resolve a capture's server and credentials as its run_as role, inside a
 * subtransaction so that a dropped mapping or server becomes an error on
 * the items, not a failed cycle.
 */
static void
capture_resolve(OutboxCapture *cap, MemoryContext cxt)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	if (cap->bind_error != NULL)
	{
		cap->srv = NULL;
		cap->srv_error = cap->bind_error;
		return;
	}
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		cap->srv = server_lookup_by_oid(cap->server_id, cap->run_as, cap->vendor);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		cap->srv = NULL;
		cap->srv_error = MemoryContextStrdup(cxt, edata->message);
	}
	PG_END_TRY();
}

/*
 * A capture keeps its server's OID and name.  pg_dump restores a database
 * with new OIDs for its servers (so does pg_upgrade) while the capture rows
 * keep the old ones: such a capture ("moved") now names its server by its
 * name.  A server renamed in place keeps its OID: the capture takes the new
 * name ("renamed").  When the OID names one server and the name another,
 * nothing is guessed: the capture is not served until an operator sets its
 * server_id and server_name (outbox_claim: bind_error).
 */
static void
bind_captures(void)
{
	int			ret;

	mapping_push_catalog_path();
	ret = SPI_execute("WITH cur AS (SELECT c.id, c.server_id AS old_oid, c.server_name AS old_name,"
					  "   (SELECT f.oid FROM " SA_SERVERS " f WHERE f.srvname = c.server_name) AS by_name,"
					  "   (SELECT f.srvname FROM " SA_SERVERS " f WHERE f.oid = c.server_id) AS oid_name"
					  "   FROM sales_api.capture c)"
					  " UPDATE sales_api.capture c"
					  "    SET server_id = CASE WHEN cur.oid_name IS NULL THEN cur.by_name ELSE c.server_id END,"
					  "        server_name = coalesce(cur.oid_name, c.server_name)"
					  "   FROM cur"
					  "  WHERE c.id = cur.id"
					  /* moved: its OID names no server, one has its name, and no live twin */
					  "    AND ((cur.oid_name IS NULL AND cur.by_name IS NOT NULL"
					  "          AND NOT (c.detached_at IS NULL AND EXISTS (SELECT 1 FROM sales_api.capture o"
					  "                    WHERE o.server_id = cur.by_name AND o.relid = c.relid"
					  "                      AND o.detached_at IS NULL AND o.id <> c.id)))"
					  /* renamed: its OID's server has another name, and none has its own */
					  "      OR (cur.oid_name IS NOT NULL AND cur.oid_name <> c.server_name AND cur.by_name IS NULL))"
					  " RETURNING c.id, cur.old_oid, c.server_id, cur.old_name, c.server_name", false, 0);
	PopOverrideSearchPath();
	if (ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "sales_api: could not bind the captures to their servers: %s", SPI_result_code_string(ret));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;
		int			id = DatumGetInt32(SPI_getbinval(tup, td, 1, &isnull));
		Oid			old = DatumGetObjectId(SPI_getbinval(tup, td, 2, &isnull));
		Oid			new = DatumGetObjectId(SPI_getbinval(tup, td, 3, &isnull));

		if (old != new)
			ereport(LOG,
					(errmsg("sales_api: capture %d now uses server \"%s\" by its OID %u, not %u",
							id, SPI_getvalue(tup, td, 5), new, old),
					 errdetail("The server's OID changed, as after a restore from pg_dump or pg_upgrade.")));
		else
			ereport(LOG,
					(errmsg("sales_api: capture %d's server \"%s\" is now named \"%s\"",
							id, SPI_getvalue(tup, td, 4), SPI_getvalue(tup, td, 5))));
	}
}

/*
 * A pause row keeps its server's name too: after a restore it moves to the
 * server of its name (a pause in either row wins), after a rename it takes
 * the new name.  Rows whose server is gone are left.  The rows are read and
 * deleted before any is written, so that one OID may be old and new.
 */
static void
bind_pauses(void)
{
	int			ret;
	uint64		n;
	SPITupleTable *tt;

	mapping_push_catalog_path();
	ret = SPI_execute("WITH moved AS (DELETE FROM sales_api.server_state s USING " SA_SERVERS " f"
					  "   WHERE f.srvname = s.server_name AND f.oid <> s.server_id"
					  "   RETURNING f.oid, s.paused, s.paused_at, s.server_name)"
					  " SELECT oid, bool_or(paused), max(paused_at), min(server_name) FROM moved GROUP BY oid",
					  false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "sales_api: could not move the pauses of servers with new OIDs: %s", SPI_result_code_string(ret));
	n = SPI_processed;
	tt = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		Oid			types[4] = {OIDOID, BOOLOID, TIMESTAMPTZOID, NAMEOID};
		Datum		values[4];
		char		nulls[4] = {' ', ' ', ' ', ' '};
		bool		isnull;

		for (int j = 0; j < 4; j++)
		{
			values[j] = SPI_getbinval(tt->vals[i], tt->tupdesc, j + 1, &isnull);
			if (isnull)
				nulls[j] = 'n';
		}
		ret = SPI_execute_with_args("INSERT INTO sales_api.server_state AS s (server_id, paused, paused_at, server_name)"
									" VALUES ($1, $2, $3, $4) ON CONFLICT (server_id) DO UPDATE"
									" SET paused = s.paused OR excluded.paused,"
									"     paused_at = CASE WHEN s.paused THEN s.paused_at ELSE excluded.paused_at END,"
									"     server_name = excluded.server_name",
									4, types, values, nulls, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "sales_api: could not move a server's pause: %s", SPI_result_code_string(ret));
	}
	ret = SPI_execute("UPDATE sales_api.server_state s SET server_name = f.srvname FROM " SA_SERVERS " f"
					  " WHERE f.oid = s.server_id AND s.server_name IS NOT NULL AND f.srvname <> s.server_name"
					  "   AND NOT EXISTS (SELECT 1 FROM " SA_SERVERS " g WHERE g.srvname = s.server_name)",
					  false, 0);
	PopOverrideSearchPath();
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "sales_api: could not rename a server's pause: %s", SPI_result_code_string(ret));
}

static void
load_captures(OutboxCycle *c)
{
	bool		rebind = false;
	bool		pauses = false;
	OutboxStmt *stmt = state_names ? &captures_stmt : &captures_nonames_stmt;

	if (outbox_execute(stmt, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read sales_api.capture");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *state = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 5);
		bool		isnull;

		rebind |= strcmp(state, "renamed") == 0 || strcmp(state, "moved") == 0;
		pauses |= DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 9, &isnull));
	}
	if (rebind || pauses)
	{
		if (rebind)
			bind_captures();
		if (pauses)
			bind_pauses();
		/* read again, not read-only: a new snapshot, which sees what was just written */
		if (outbox_execute(stmt, NULL, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read sales_api.capture");
	}
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		OutboxCapture *cap = MemoryContextAllocZero(c->cxt, sizeof(OutboxCapture));
		bool		isnull;

		cap->id = (int) outbox_spi_int64(tup, td, 1, &isnull);
		cap->server_id = DatumGetObjectId(SPI_getbinval(tup, td, 2, &isnull));
		cap->run_as = DatumGetObjectId(SPI_getbinval(tup, td, 3, &isnull));
		cap->vendor = strcmp(SPI_getvalue(tup, td, 4), "mapal") == 0 ? VENDOR_MAPAL : VENDOR_CONNECTEAM;
		cap->shares_server = SPI_getvalue(tup, td, 6);
		if (cap->shares_server)
			cap->shares_server = MemoryContextStrdup(c->cxt, cap->shares_server);
		if (strcmp(SPI_getvalue(tup, td, 5), "ambiguous") == 0)
			cap->bind_error = MemoryContextStrdup(c->cxt,
												  psprintf("capture %d names server \"%s\", but its server_id %u names server \"%s\" (or another live capture of its table uses \"%s\"): "
														   "it is not served until sales_api.capture's server_id and server_name name the same server",
														   cap->id, SPI_getvalue(tup, td, 8), cap->server_id,
														   SPI_getvalue(tup, td, 7) ? SPI_getvalue(tup, td, 7) : "(none)",
														   SPI_getvalue(tup, td, 8)));
		c->mapal |= cap->vendor == VENDOR_MAPAL;
		c->captures = outbox_append(c->cxt, c->captures, cap);
	}
}

/*
 * Items whose lease ran out were claimed by a worker that stopped before
 * recording their outcome: outbox_decide() says what they become, per kind.
 */
static void
expire_leases(Datum busy)
{
	Datum		kinds[KIND_N],
				states[KIND_N],
				ambiguous[KIND_N],
				delays[KIND_N],
				errors[KIND_N];
	OutboxOutcome expired = {.result = OUTBOX_LEASE_EXPIRED, .retry_after_s = -1};
	Datum		vals[6];

	for (int k = 0; k < KIND_N; k++)
	{
		OutboxNext next = outbox_decide((OutboxKind) k, 0, &expired);

		kinds[k] = CStringGetTextDatum(outbox_kind_names[k].name);
		states[k] = CStringGetTextDatum(outbox_state_names[next.state].name);
		ambiguous[k] = BoolGetDatum(next.ambiguous);
		delays[k] = Int64GetDatum(next.delay_ms);
		errors[k] = CStringGetTextDatum(next.error);
	}
	vals[0] = PointerGetDatum(construct_array(kinds, KIND_N, TEXTOID, -1, false, TYPALIGN_INT));
	vals[1] = PointerGetDatum(construct_array(states, KIND_N, TEXTOID, -1, false, TYPALIGN_INT));
	vals[2] = PointerGetDatum(construct_array(ambiguous, KIND_N, BOOLOID, 1, true, TYPALIGN_CHAR));
	vals[3] = PointerGetDatum(construct_array(delays, KIND_N, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	vals[4] = PointerGetDatum(construct_array(errors, KIND_N, TEXTOID, -1, false, TYPALIGN_INT));
	vals[5] = busy;
	/* leased staged rows first: their sales become items in flight, expired */
	(void) outbox_stage_expire_leases(busy);
	outbox_execute(&expire_stmt, vals, NULL, false, 0);
}

static void
purge_sent(void)
{
	Datum		age = Int32GetDatum(sales_api_sent_retention_ms);

	if (sales_api_sent_retention_ms > 0)
		outbox_execute(&purge_stmt, &age, NULL, false, 0);
}

/*
 * A claim is made in two passes, each in its own transaction, and the
 * first pass's jobs are in flight while the second claims (claim_jobs()).
 */
typedef enum ClaimPass
{
	CLAIM_CONNECTEAM,			/* Connecteam lanes, and the claim's upkeep */
	CLAIM_MAPAL					/* Mapal lanes: their slots' totals read */
} ClaimPass;

#define IN_PASS(cap, pass) (((cap)->vendor == VENDOR_MAPAL) == ((pass) == CLAIM_MAPAL))

static Datum lanes_take(OutboxCycle *c, ClaimPass pass);
static void claim_probes(OutboxCycle *c);
static bool lane_mine(int capture_id);

/*
 * Expired leases are looked for at the first claim and then at most every
 * EXPIRE_EVERY_MS: the statement reads every unfinished item, and a lease
 * runs out only when its worker stopped (sales_api.lease_time, seconds).
 */
#define EXPIRE_EVERY_MS 1000
static TimestampTz next_expire_at = 0;

/* (capture, claim position) order, so that each capture's items are contiguous */
static int
item_cmp(const void *a, const void *b)
{
	const OutboxItem *x = a;
	const OutboxItem *y = b;
	int			cx = x->cap ? x->cap->id : -1;
	int			cy = y->cap ? y->cap->id : -1;

	if (cx != cy)
		return (cx > cy) - (cx < cy);
	return (x->claim_pos > y->claim_pos) - (x->claim_pos < y->claim_pos);
}

/*
 * One pass of a claim (ClaimPass): the Connecteam pass also expires leases
 * and purges the sent history; the Mapal pass reads its slots' totals from
 * the POS tables, which is most of a Mapal claim's time.
 */
static void
claim(OutboxCycle *c, ClaimPass pass)
{
	ListCell   *lc;

	pgstat_report_activity(STATE_RUNNING, "sales_api worker: claiming outbox items");

	load_captures(c);
	c->skip = lanes_take(c, pass);
	c->items = MemoryContextAlloc(c->cxt, sizeof(OutboxItem));
	if (pass == CLAIM_CONNECTEAM)
	{
		Datum		args[4] = {0, 0, Int32GetDatum(STAGE_ROWS_PER_CLAIM), 0};
		Datum	   *mine = palloc(sizeof(Datum) * (list_length(c->captures) + 1));
		int			nmine = 0;
		int64		n;

		if (GetCurrentTimestamp() >= next_expire_at)
		{
			/* the claim statements never wait on it: at most once a second */
			expire_leases(c->busy);
			next_expire_at = GetCurrentTimestamp() + EXPIRE_EVERY_MS * 1000;
		}
		purge_sent();

		/*
		 * A Connecteam lane claimed here takes its due items, then its
		 * staged sales straight into flight, a claim statement's worth at a
		 * time; a lane that is busy or waiting takes its own when it claims
		 * next.  Only the staged sales of this worker's paused servers become
		 * pending items here (so that they are counted and handled as items
		 * while the server is paused), as many as the row limit: go again at
		 * once if it was met.  Another worker's captures are that worker's to
		 * take.
		 */
		outbox_ct_claim(c);
		foreach(lc, c->captures)
		{
			OutboxCapture *cap = lfirst(lc);

			if (cap->vendor == VENDOR_CONNECTEAM && lane_mine(cap->id))
				mine[nmine++] = Int32GetDatum(cap->id);
		}
		args[3] = PointerGetDatum(construct_array(mine, nmine, INT4OID, 4, true, TYPALIGN_INT));
		n = outbox_stage_expand(false, args, "nn  ");
		if (n >= STAGE_ROWS_PER_CLAIM)
			c->more = true;
		c->expanded += n;
	}
	else
		outbox_mapal_claim(c, sales_api_batch_size);
	claim_probes(c);

	/* each capture's items together, in claim order, before windows point into them */
	for (int i = 0; i < c->nitems; i++)
		c->items[i].claim_pos = i;
	qsort(c->items, c->nitems, sizeof(OutboxItem), item_cmp);

	/* credentials of the captures that have work */
	foreach(lc, c->captures)
	{
		OutboxCapture *cap = lfirst(lc);

		for (int i = 0; i < c->nitems; i++)
			if (c->items[i].cap == cap)
			{
				capture_resolve(cap, c->cxt);
				break;
			}
	}
	outbox_ct_plan_windows(c);
}

/* ------------------------------------------------------------------------
 * Jobs
 * ------------------------------------------------------------------------
 */

/* The memory of one claim, shared by its jobs: freed with the last one. */
typedef struct OutboxClaim
{
	MemoryContext cxt;
	int			njobs;
} OutboxClaim;

/*
 * What this worker knows of each capture it sends for: whether a job of
 * it is in flight, and until when it must wait (its account's budget is
 * spent).  One entry per capture, kept for the worker's life.
 */
typedef struct OutboxLane
{
	int			capture_id;
	bool		busy;			/* a job of its whole work is in flight */
	bool		exclusive;		/* ... which is more than plain posts, or Mapal's */
	bool		extra;			/* a second job, of plain posts only, is in flight */
	int			chain;			/* second jobs that took the first's place in a row */
	TimestampTz idle_due_at;	/* when a chain must end, for its lane's expired leases */
	TimestampTz ready_at;
	int64		budget_left;	/* its account's requests left at its last job's end, or: */
#define LANE_BUDGET_UNKNOWN (-1)	/* ... no answer seen yet */
#define LANE_BUDGET_NONE	(-2)	/* ... the vendor sends no limits */
	TimestampTz budget_reset;	/* ... until then */
} OutboxLane;

/*
 * A lane's second jobs take the first's place at most this many times in a
 * row before the lane looks for items due (deletes, windows, retries, posts
 * of sales with another in flight: what only a claim of the idle lane
 * takes), and goes idle once if it has some (advance_jobs()).
 */
#define LANE_CHAIN_MAX 8

static OutboxLane *lanes = NULL;
static int	nlanes = 0;
static int	maxlanes = 0;
static bool record_deferred = false;	/* a finished job waits for a POS transaction */
static bool claim_wanted = true;
static TimestampTz next_claim_at = 0;
static TimestampTz last_claim_at = 0;

static OutboxLane *
lane_of(int capture_id)
{
	for (int i = 0; i < nlanes; i++)
		if (lanes[i].capture_id == capture_id)
			return &lanes[i];
	if (nlanes == maxlanes)
	{
		maxlanes = Max(16, maxlanes * 2);
		lanes = lanes ? repalloc(lanes, sizeof(OutboxLane) * maxlanes)
			: MemoryContextAlloc(TopMemoryContext, sizeof(OutboxLane) * maxlanes);
	}
	lanes[nlanes].capture_id = capture_id;
	lanes[nlanes].busy = false;
	lanes[nlanes].exclusive = false;
	lanes[nlanes].extra = false;
	lanes[nlanes].chain = 0;
	lanes[nlanes].idle_due_at = 0;
	lanes[nlanes].ready_at = 0;
	lanes[nlanes].budget_left = LANE_BUDGET_UNKNOWN;
	lanes[nlanes].budget_reset = 0;
	return &lanes[nlanes++];
}

/*
 * A lane is sent by one worker at a time: its worker holds a session
 * advisory lock on (SALES_API_LANE_LOCK, capture id) from the claim until
 * its job is recorded.  With sales_api.workers_per_database = N, worker k
 * takes the captures whose id modulo N is k; the lock keeps a lane to one
 * worker while N changes.
 */
#define SALES_API_LANE_LOCK 0x5A1E5A1E

/*
 * The tag's fourth field is one no SQL function makes: pg_advisory_lock()
 * and its kin set 1 (a bigint key) or 2 (two int keys).  With 2, any role
 * that may connect took (x'5A1E5A1E', capture id) shared with
 * pg_advisory_lock_shared(int, int), and the lane was never claimed again
 * while its session stayed.  pg_locks shows the lock as an advisory one,
 * objsubid SALES_API_LANE_LOCK_KIND.
 */
#define SALES_API_LANE_LOCK_KIND 0x5A1E

static void
lane_locktag(LOCKTAG *tag, int capture_id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) SALES_API_LANE_LOCK, (uint32) capture_id,
						 SALES_API_LANE_LOCK_KIND);
}

static bool
lane_lock(int capture_id)
{
	LOCKTAG		tag;

	lane_locktag(&tag, capture_id);
	return LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
}

static void
lane_unlock(int capture_id)
{
	LOCKTAG		tag;

	lane_locktag(&tag, capture_id);
	LockRelease(&tag, ExclusiveLock, true);
}

static bool
lane_mine(int capture_id)
{
	int			n = sales_api_workers_per_database;
	int			member = worker_shared ? worker_shared->member : 0;

	return n <= 1 || capture_id % n == member;
}

/*
 * The captures this claim may take items of: this worker's, neither busy
 * nor waiting, admitted by their lane's circuit (lanes.c), whose lane lock
 * it got.  Returns the others, as the int4[] the claim statements skip.  A
 * lane whose circuit is open waits until it may probe; a probe is claimed
 * apart, a few items only (claim_probes()).
 */
/*
 * How many items a lane claims: a batch, or what its account's budget
 * allows until its window resets (whole posts of CT_MAX_ITEMS), so that
 * its posts go out full and nothing is claimed only to be held.
 */
static int
lane_limit(OutboxLane *lane, TimestampTz now)
{
	int			lim = sales_api_batch_size;

	if (lane->budget_left >= 0 && lane->budget_reset > now)
		lim = (int) Min((int64) lim, Max(lane->budget_left, 1) * CT_MAX_ITEMS);
	return Max(lim, 1);
}

static void
ct_lane_add(OutboxCycle *c, OutboxCapture *cap, int lim, bool extra)
{
	if (c->ct_lane_cap == NULL)
	{
		int			max = list_length(c->captures) + 1;

		c->ct_lane_cap = palloc(sizeof(Datum) * max);
		c->ct_lane_lim = palloc(sizeof(Datum) * max);
		c->ct_lane_extra = palloc(sizeof(Datum) * max);
	}
	c->ct_lane_cap[c->ct_nlanes] = Int32GetDatum(cap->id);
	c->ct_lane_lim[c->ct_nlanes] = Int32GetDatum(lim);
	c->ct_lane_extra[c->ct_nlanes] = BoolGetDatum(extra);
	c->ct_nlanes++;
}

/* Is the lane this worker's, with no job in flight and not waiting? */
static bool
lane_may_claim(OutboxLane *lane, TimestampTz now)
{
	return !(lane->busy || lane->extra || lane->ready_at > now || !lane_mine(lane->capture_id));
}

/*
 * Does the rate limiter know the budget of the account of the lane's job
 * in flight?  Until the first answer it lets one request go at a time
 * (rl_acquire()), and a second job's requests would all be held.
 */
static bool
lane_budget_known(int capture_id)
{
	ListCell   *lc;
	RateLimitState st;

	foreach(lc, jobs)
	{
		OutboxJob  *job = lfirst(lc);

		if (job->cap != NULL && job->cap->id == capture_id && job->cap->srv != NULL)
			return ratelimit_peek(job->cap->srv, &st);
	}
	return true;
}

static Datum
lanes_take(OutboxCycle *c, ClaimPass pass)
{
	TimestampTz now = GetCurrentTimestamp();
	Datum	   *ids = palloc(sizeof(Datum) * (list_length(c->captures) + 1));
	Datum	   *extra = palloc(sizeof(Datum) * (list_length(c->captures) + 1));
	Datum	   *busy = palloc(sizeof(Datum) * (list_length(c->captures) + 1));
	int			n = 0;
	int			nextra = 0;
	int			nbusy = 0;
	int			nbusy_ids;
	ListCell   *lc;

	/*
	 * The other pass's lanes are not claimed for here.  Those in flight, or
	 * another worker's, or waiting, are busy, as this pass's (the leases of
	 * a lane in flight are its job's, even past lease_until); an idle one's
	 * expired leases are expired by the Connecteam pass (expire_leases()).
	 */
	foreach(lc, c->captures)
	{
		OutboxCapture *cap = lfirst(lc);
		OutboxLane *lane;

		if (IN_PASS(cap, pass))
			continue;
		lane = lane_of(cap->id);
		if (!lane_may_claim(lane, now))
			busy[nbusy++] = Int32GetDatum(cap->id);
		ids[n++] = Int32GetDatum(cap->id);
	}
	nbusy_ids = n;
	foreach(lc, c->captures)
	{
		OutboxCapture *cap = lfirst(lc);
		OutboxLane *lane;
		bool		probe = false;
		TimestampTz until = 0;

		if (!IN_PASS(cap, pass))
			continue;
		lane = lane_of(cap->id);
		if (!lane_mine(cap->id) || lane->ready_at > now)
		{
			ids[n++] = Int32GetDatum(cap->id);
			continue;
		}
		if (lane->busy || lane->extra)
		{
			/*
			 * Pipelining: while a Connecteam lane's job of plain posts is in
			 * flight, a second job of plain posts (not ambiguous, of sales with
			 * nothing else in flight) is claimed and sent; deletes, windows
			 * and Mapal's slots wait for the lane to be idle, so their order
			 * holds.
			 */
			if (lane->busy && !lane->extra && !lane->exclusive &&
				cap->vendor == VENDOR_CONNECTEAM && lane_budget_known(cap->id) &&
				lanes_admit(cap->server_id, cap->run_as, now, &probe, &until) && !probe &&
				lane_lock(cap->id))
			{
				cap->locked = true;
				cap->extra = true;
				extra[nextra++] = Int32GetDatum(cap->id);
				ct_lane_add(c, cap, lane_limit(lane, now), true);
			}
			else
			{
				if (probe)
					lanes_probe_cancel(cap->server_id, cap->run_as);
				ids[n++] = Int32GetDatum(cap->id);
			}
			continue;
		}
		if (!lanes_admit(cap->server_id, cap->run_as, now, &probe, &until))
		{
			lane->ready_at = until;
			lanes_set_waiting(cap->server_id, cap->run_as, LANE_WAIT_CIRCUIT, until);
			ids[n++] = Int32GetDatum(cap->id);
			continue;
		}
		if (!lane_lock(cap->id))
		{
			if (probe)
				lanes_probe_cancel(cap->server_id, cap->run_as);
			ids[n++] = Int32GetDatum(cap->id);
			continue;
		}
		cap->locked = true;
		cap->probe = probe;

		/*
		 * An idle Connecteam lane's claim is where its expired leases come
		 * back (expire_leases(), below in this pass): at least once a
		 * lease_time, not at the once-a-second pace that may miss a lane
		 * idle for a moment (a chain ended for it, advance_jobs()).
		 */
		if (pass == CLAIM_CONNECTEAM && now >= lane->idle_due_at)
		{
			next_expire_at = 0;
			lane->idle_due_at = now + (int64) sales_api_lease_ms * 1000;
		}
		if (probe)
			ids[n++] = Int32GetDatum(cap->id);
		else if (cap->vendor == VENDOR_CONNECTEAM)
			ct_lane_add(c, cap, lane_limit(lane, now), false);
	}
	c->extra = PointerGetDatum(construct_array(extra, nextra, INT4OID, 4, true, TYPALIGN_INT));
	/* leases of lanes in flight here are theirs, even past lease_until */
	for (int i = 0; i < nextra; i++)
		busy[nbusy++] = extra[i];
	for (int i = nbusy_ids; i < n; i++)
		busy[nbusy++] = ids[i];
	c->busy = PointerGetDatum(construct_array(busy, nbusy, INT4OID, 4, true, TYPALIGN_INT));
	return PointerGetDatum(construct_array(ids, n, INT4OID, 4, true, TYPALIGN_INT));
}

/*
 * A lane whose circuit was open sends a probe: one request's worth of its
 * items (Connecteam: one post of CT_MAX_ITEMS; Mapal: one unit-day), so a
 * vendor still down spends the attempts of few items.
 */
static void
claim_probes(OutboxCycle *c)
{
	Datum		skip = c->skip;
	ListCell   *lc;

	foreach(lc, c->captures)
	{
		OutboxCapture *cap = lfirst(lc);
		Datum	   *ids;
		int			n = 0;
		ListCell   *oc;

		if (!cap->probe)
			continue;
		ids = palloc(sizeof(Datum) * (list_length(c->captures) + 1));
		foreach(oc, c->captures)
			if (lfirst(oc) != cap)
				ids[n++] = Int32GetDatum(((OutboxCapture *) lfirst(oc))->id);
		c->skip = PointerGetDatum(construct_array(ids, n, INT4OID, 4, true, TYPALIGN_INT));
		if (cap->vendor == VENDOR_CONNECTEAM)
		{
			c->ct_nlanes = 0;
			ct_lane_add(c, cap, CT_MAX_ITEMS, false);
			outbox_ct_claim(c);
		}
		else
			outbox_mapal_claim(c, 1);
	}
	c->skip = skip;
}

/*
 * After a claim: the locks of lanes that got nothing go.  Returns the
 * captures that may claim next (neither busy, waiting, locked nor another
 * worker's) as int4[], or 0 when there is none.
 */
static Datum
lanes_settle(OutboxCycle *c, ClaimPass pass)
{
	Datum	   *ids = palloc(sizeof(Datum) * (list_length(c->captures) + 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, c->captures)
	{
		OutboxCapture *cap = lfirst(lc);
		bool		has = false;

		for (int i = 0; i < c->nitems && !has; i++)
			has = (c->items[i].cap == cap);
		if (cap->locked && !has)
		{
			lane_unlock(cap->id);
			cap->locked = false;
			cap->extra = false;
			if (cap->probe)
				lanes_probe_cancel(cap->server_id, cap->run_as);
			cap->probe = false;
		}
		/* the other pass's lanes are that pass's to settle */
		if (!cap->locked && IN_PASS(cap, pass))
		{
			OutboxLane *lane = lane_of(cap->id);

			if (lane_may_claim(lane, GetCurrentTimestamp()))
				ids[n++] = Int32GetDatum(cap->id);
		}
	}
	if (n == 0)
		return (Datum) 0;
	return PointerGetDatum(construct_array(ids, n, INT4OID, 4, true, TYPALIGN_INT));
}

/*
 * Add a phase to a job: at the end, or (next) right after the phase
 * running now, as a window's reposts follow its delete.
 */
void
outbox_job_add_phase(OutboxJob *job, bool next, HttpRequest **reqs, int n, int flags,
					 OutboxPhaseDone done, void *arg)
{
	MemoryContext old = MemoryContextSwitchTo(job->claim->cxt);
	OutboxPhase *ph = palloc0(sizeof(OutboxPhase));

	ph->reqs = reqs;
	ph->n = n;
	/*
	 * the worker never waits for a budget: what it does not allow is held;
	 * its runs, stepped together, share a token being fetched
	 */
	ph->flags = flags | RL_NOWAIT | RL_FOLLOW;
	ph->done = done;
	ph->arg = arg;
	if (next && job->next + 1 < list_length(job->phases))
		job->phases = list_insert_nth(job->phases, job->next + 1, ph);
	else
		job->phases = lappend(job->phases, ph);
	MemoryContextSwitchTo(old);
}

/* A job for each capture with items in the claim. */
static void
jobs_from_claim(OutboxCycle *c, OutboxClaim *cl)
{
	int			i = 0;

	while (i < c->nitems)
	{
		OutboxCapture *cap = c->items[i].cap;
		OutboxJob  *job = palloc0(sizeof(OutboxJob));
		OutboxCycle *jc = palloc0(sizeof(OutboxCycle));
		ListCell   *lc;
		int			j = i;

		while (j < c->nitems && c->items[j].cap == cap)
			j++;
		jc->cxt = cl->cxt;
		jc->items = &c->items[i];
		jc->nitems = j - i;
		if (cap != NULL)
			jc->captures = list_make1(cap);
		foreach(lc, c->windows)
			if (((OutboxWindow *) lfirst(lc))->cap == cap)
				jc->windows = lappend(jc->windows, lfirst(lc));
		job->c = jc;
		job->cap = cap;
		job->claim = cl;
		cl->njobs++;
		i = j;
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			jobs = lappend(jobs, job);
			MemoryContextSwitchTo(old);
		}
		if (cap == NULL)
			continue;
		job->extra = cap->extra;
		if (job->extra)
			lane_of(cap->id)->extra = true;
		else
		{
			OutboxLane *lane = lane_of(cap->id);

			lane->busy = true;
			lane->exclusive = (cap->vendor != VENDOR_CONNECTEAM || jc->windows != NIL);
			for (int k = 0; k < jc->nitems; k++)
				if (jc->items[k].kind != KIND_CT_POST || jc->items[k].ambiguous)
					lane->exclusive = true;
		}
		/*
		 * A token, when one is needed, is fetched by each phase's run
		 * without waiting (ratelimit.c): a slow token endpoint delays this
		 * lane only.
		 */
		if (cap->srv == NULL)
		{
			const char *msg = cap->srv_error;

			for (int k = 0; k < jc->nitems; k++)
			{
				OutboxOutcome *o = &jc->items[k].out;

				if (o->result == OUTBOX_NOT_TRIED || o->result == OUTBOX_IN_WINDOW)
				{
					o->result = OUTBOX_TRANSIENT;
					o->error = (char *) (msg ? msg : "server unavailable");
				}
			}
		}
		else if (cap->vendor == VENDOR_CONNECTEAM)
			outbox_ct_plan(job);
		else
			outbox_mapal_plan(job);
		{
			int			nreq = 0;

			foreach(lc, job->phases)
				nreq += ((OutboxPhase *) lfirst(lc))->n;
			lanes_job_start(cap->server_id, cap->run_as, nreq);
			lanes_set_waiting(cap->server_id, cap->run_as, LANE_WAIT_SENDING, 0);
		}
	}
}

/*
 * The requests in flight of the other jobs of a job's lane (its second job,
 * or its first): sales_api.max_concurrency holds for the lane, not for each
 * job (ratelimit.c's rl_wave_feed()).
 */
static int
lane_others_active(void *arg)
{
	OutboxJob  *job = arg;
	int			n = 0;
	ListCell   *lc;

	foreach(lc, jobs)
	{
		OutboxJob  *o = lfirst(lc);

		if (o != job && o->cap != NULL && o->cap->id == job->cap->id &&
			o->next < list_length(o->phases))
			n += ratelimit_run_active(((OutboxPhase *) list_nth(o->phases, o->next))->run);
	}
	return n;
}

/*
 * Move a job on: start its phase, settle it when answered, go to the next.
 * Returns true when its last phase is done.
 */
static bool
job_advance(OutboxJob *job)
{
	MemoryContext old = MemoryContextSwitchTo(job->claim->cxt);
	bool		finished = false;

	for (;;)
	{
		OutboxPhase *ph;

		if (job->next >= list_length(job->phases))
		{
			finished = true;
			break;
		}
		ph = list_nth(job->phases, job->next);
		if (ph->run == NULL)
		{
			ph->run = ratelimit_run_start(job->cap->srv, ph->reqs, ph->n, ph->flags);
			/* a lane's two jobs share its max_concurrency */
			ph->run->others_active = lane_others_active;
			ph->run->others_arg = job;
			/* a job that could not get a token asks once: its later phases go without */
			ph->run->auth_fail = job->auth_failed;
		}
		if (!ratelimit_run_step(ph->run))
			break;
		outbox_note_requests(ph->reqs, ph->n);
		if (ph->run->auth_failed != NULL)
			job->auth_failed = ph->run->auth_failed;
		ph->done(job, ph);
		job->next++;
	}
	MemoryContextSwitchTo(old);
	return finished;
}

/*
 * Between two statements of a claim or a record: collect the answers that
 * came in and start the requests they make room for, so that the lanes in
 * flight keep sending while this worker runs SQL (a claim or a record of
 * 2,000 items takes tens of ms, the vendor's answer about 20).  A job that
 * finishes here is recorded by the next advance_jobs().  It runs no SQL:
 * job_advance() only steps rate-limit runs and reads answers.
 */
static void
jobs_progress(void)
{
	static bool progressing = false;
	ListCell   *lc;

	if (jobs == NIL || progressing)
		return;
	progressing = true;
	PG_TRY();
	{
		(void) http_pump(0);
		foreach(lc, jobs)
			(void) job_advance(lfirst(lc));
		(void) http_pump(0);
	}
	PG_CATCH();
	{
		/* the jobs' state is not known now: no caller may go on with them */
		progressing = false;
		jobs_failed = true;
		PG_RE_THROW();
	}
	PG_END_TRY();
	progressing = false;
}

/* When must the job's run be stepped again though nothing of it is in flight? */
static TimestampTz
job_wakeup(OutboxJob *job)
{
	OutboxPhase *ph;

	if (job->next >= list_length(job->phases))
		return 0;
	ph = list_nth(job->phases, job->next);
	if (ph->run == NULL || ph->run->nwave > 0)
		return 0;
	return ph->run->wait_until;
}

/* A finished job frees its lane, which waits until its budget is back if a phase was held. */
static void
job_lane_done(OutboxJob *job)
{
	OutboxLane *lane;
	ListCell   *lc;
	LaneJobResult r = {0};

	if (job->cap == NULL)
		return;
	lane = lane_of(job->cap->id);
	if (job->extra)
		lane->extra = false;
	else
	{
		lane->busy = false;
		lane->exclusive = false;
		/*
		 * Its second job, of plain posts, still in flight takes its place,
		 * so that the lane claims the next one while it sends: two jobs
		 * claimed together also end together, and the lane would send
		 * nothing during their record and the claim after it.  At most
		 * LANE_CHAIN_MAX times in a row, unless the record found no item
		 * due (advance_jobs()): then the lane goes idle once, for a claim
		 * that takes deletes and windows too.
		 */
		if (lane->extra && lane->chain < LANE_CHAIN_MAX)
		{
			foreach(lc, jobs)
			{
				OutboxJob  *other = lfirst(lc);

				if (other != job && other->extra && other->cap != NULL &&
					other->cap->id == job->cap->id)
				{
					other->extra = false;
					lane->extra = false;
					lane->busy = true;
					lane->chain++;
					break;
				}
			}
		}
	}
	if (!lane->busy && !lane->extra)
		lane->chain = 0;
	foreach(lc, job->phases)
	{
		OutboxPhase *ph = lfirst(lc);
		RateLimitRun *run = ph->run;

		if (run == NULL)
			continue;
		if (run->nnot_sent > 0)
			lane->ready_at = Max(lane->ready_at, run->retry_at);
		r.nrequests += ph->n;
		r.nok += run->nok;
		r.ntransport += run->ntransport;
		r.ntimeout += run->ntimeout;
		r.n5xx += run->n5xx;
		r.n4xx += run->n4xx;
		r.n429 += run->n429;
		if (run->last_status != 0)
			r.last_status = run->last_status;
		if (run->last_error != NULL)
			r.last_error = run->last_error;
	}
	lanes_job_done(job->cap->server_id, job->cap->run_as, &r);
	if (job->cap->srv != NULL && job->cap->vendor == VENDOR_CONNECTEAM)
	{
		RateLimitState st;
		bool		seen;

		memset(&st, 0, sizeof(st));
		seen = ratelimit_peek(job->cap->srv, &st);
		if (seen && !st.has_headers)
			lane->budget_left = LANE_BUDGET_NONE;
		else if (seen && st.minute_remaining >= 0 && st.minute_reset != 0)
		{
			lane->budget_left = st.minute_remaining;
			lane->budget_reset = st.minute_reset;
		}
		else
			lane->budget_left = LANE_BUDGET_UNKNOWN;
	}
	if (lane->ready_at > GetCurrentTimestamp())
		lanes_set_waiting(job->cap->server_id, job->cap->run_as, LANE_WAIT_RATE_LIMIT, lane->ready_at);
	else
		lanes_set_waiting(job->cap->server_id, job->cap->run_as, NULL, 0);
}

/* ------------------------------------------------------------------------
 * Record
 * ------------------------------------------------------------------------
 */

/*
 * Can the leased rows of the cycle's sales be recorded now?  Not while a
 * POS transaction holds one (it is making the row's sales items): the
 * record would wait for that transaction, and every lane with it.  The
 * rows it could lock stay locked until the record commits.
 */
static bool
leases_lockable(OutboxCycle *c)
{
	ItemPointerData *tids = palloc(sizeof(ItemPointerData) * (c->nitems + 1));
	Datum	   *d = palloc(sizeof(Datum) * (c->nitems + 1));
	bool	   *done = palloc0(sizeof(bool) * (c->nitems + 1));

	for (int i = 0; i < c->nitems; i++)
	{
		TimestampTz lease;
		int			n = 0;
		Datum		vals[2];
		bool		isnull;
		int64		there;
		Datum	   *rows = NULL,
				   *caps = NULL,
				   *keys = NULL;
		bool	   *keynulls = NULL;
		int			nrows = 0;

		if (!c->items[i].leased || done[i])
			continue;
		lease = c->items[i].lease_until;
		for (int j = i; j < c->nitems; j++)
			if (c->items[j].leased && !done[j] && c->items[j].lease_until == lease)
			{
				tids[n] = c->items[j].lease_tid;
				d[n] = OutboxTidGetDatum(&tids[n]);
				n++;
				done[j] = true;
			}
		vals[0] = PointerGetDatum(construct_array(d, n, TIDOID, sizeof(ItemPointerData), false, TYPALIGN_SHORT));
		vals[1] = TimestampTzGetDatum(lease);
		if (outbox_execute(&lease_lock_stmt, vals, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not lock leased staged sales");
		there = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		vals[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
		{
			deconstruct_array(DatumGetArrayTypeP(vals[0]), TIDOID, sizeof(ItemPointerData), false,
							  TYPALIGN_SHORT, &rows, NULL, &nrows);
			deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull)),
							  INT4OID, 4, true, TYPALIGN_INT, &caps, NULL, &nrows);
			deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull)),
							  TEXTOID, -1, false, TYPALIGN_INT, &keys, &keynulls, &nrows);
		}
		if (nrows < there)
			return false;

		/*
		 * A row at a leased ctid that does not hold the lease's first sale
		 * is another (the table was rewritten): the lease's sales are left
		 * to expire, whatever was answered (their posts may be stored), and
		 * that row is not touched.
		 */
		for (int r = 0; r < nrows; r++)
		{
			ItemPointer t = OutboxDatumGetTid(rows[r]);
			bool		same = false;

			for (int j = i; j < c->nitems; j++)
			{
				OutboxItem *it = &c->items[j];

				if (it->leased && it->lease_until == lease && it->lease_ord == 1 &&
					ItemPointerEquals(&it->lease_tid, t))
				{
					same = (it->cap != NULL && it->cap->id == DatumGetInt32(caps[r]) &&
							(keynulls[r] ? it->sale_key == NULL :
							 (it->sale_key != NULL && strcmp(it->sale_key, TextDatumGetCString(keys[r])) == 0)));
					break;
				}
			}
			if (same)
				continue;
			for (int j = i; j < c->nitems; j++)
			{
				OutboxItem *it = &c->items[j];

				if (it->leased && it->lease_until == lease && ItemPointerEquals(&it->lease_tid, t))
					it->lease_lost = true;
			}
			ereport(WARNING,
					(errmsg("sales_api worker: a staged row leased by this worker is no longer where its claim found it"),
					 errdetail("sales_api.outbox_stage was rewritten (VACUUM FULL?) while its sales were in flight."),
					 errhint("Its sales are made items when the lease runs out and settled as posts that may have been stored.")));
		}
		SPI_freetuptable(SPI_tuptable);
	}
	return true;
}

/*
 * One statement of record_leases(): the sales idx[0..n) of the lease,
 * whole rows.
 */
static void
record_lease_part(OutboxCycle *c, TimestampTz lease, int *idx, int n, Datum *ids, Datum *states,
				  Datum *statuses, bool *status_nulls, Datum *refs, bool *ref_nulls, Datum *errors,
				  bool *error_nulls, Datum *delays, Datum *giveback, Datum *ambig)
{
	ItemPointerData *tids = palloc(sizeof(ItemPointerData) * (n + 1));
	Datum	   *tidd = palloc(sizeof(Datum) * (n + 1));
	Datum	   *ords = palloc(sizeof(Datum) * (n + 1));
	Datum	   *a[7];
	bool	   *an[7];
	bool	   *gone = palloc0(sizeof(bool) * (n + 1));
	Datum		vals[10];
	int			m = 0;
	Datum	   *caps;
	Datum	   *keys;
	bool	   *keynulls;

	for (int k = 0; k < 7; k++)
	{
		a[k] = palloc(sizeof(Datum) * (n + 1));
		an[k] = palloc0(sizeof(bool) * (n + 1));
	}
	for (int k = 0; k < n; k++)
	{
		int			j = idx[k];

		tids[k] = c->items[j].lease_tid;
		tidd[k] = OutboxTidGetDatum(&tids[k]);
		ords[k] = Int32GetDatum(c->items[j].lease_ord);
		a[0][k] = states[j];
		a[1][k] = statuses[j];
		an[1][k] = status_nulls[j];
		a[2][k] = refs[j];
		an[2][k] = ref_nulls[j];
		a[3][k] = errors[j];
		an[3][k] = error_nulls[j];
		a[4][k] = delays[j];
		a[5][k] = giveback[j];
		a[6][k] = ambig[j];
	}
	vals[0] = PointerGetDatum(construct_array(tidd, n, TIDOID, sizeof(ItemPointerData), false, TYPALIGN_SHORT));
	vals[1] = TimestampTzGetDatum(lease);
	vals[2] = PointerGetDatum(construct_array(ords, n, INT4OID, 4, true, TYPALIGN_INT));
	vals[3] = PointerGetDatum(construct_array(a[0], n, TEXTOID, -1, false, TYPALIGN_INT));
	vals[4] = outbox_array_with_nulls(a[1], an[1], n, INT4OID, 4, true, TYPALIGN_INT);
	vals[5] = outbox_array_with_nulls(a[2], an[2], n, TEXTOID, -1, false, TYPALIGN_INT);
	vals[6] = outbox_array_with_nulls(a[3], an[3], n, TEXTOID, -1, false, TYPALIGN_INT);
	vals[7] = PointerGetDatum(construct_array(a[4], n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	vals[8] = PointerGetDatum(construct_array(a[5], n, INT4OID, 4, true, TYPALIGN_INT));
	vals[9] = PointerGetDatum(construct_array(a[6], n, BOOLOID, 1, true, TYPALIGN_CHAR));
	if (outbox_execute(&lease_record_stmt, vals, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record leased staged sales");

	/* the rows deleted: their sales are recorded */
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		ItemPointer t = OutboxDatumGetTid(SPI_getbinval(SPI_tuptable->vals[r],
														SPI_tuptable->tupdesc, 1, &isnull));

		for (int k = 0; k < n; k++)
			if (ItemPointerEquals(t, &tids[k]))
			{
				gone[k] = true;
				c->items[idx[k]].lease_done = true;
			}
	}
	SPI_freetuptable(SPI_tuptable);

	/* the others were made items while leased: their ids, a row by its first sale */
	caps = palloc(sizeof(Datum) * (n + 1));
	keys = palloc(sizeof(Datum) * (n + 1));
	keynulls = palloc(sizeof(bool) * (n + 1));
	for (int k = 0; k < n; k++)
	{
		OutboxItem *it = &c->items[idx[k]];

		if (gone[k] || it->lease_ord != 1)
			continue;
		tidd[m] = OutboxTidGetDatum(&tids[k]);
		caps[m] = Int32GetDatum(it->cap ? it->cap->id : 0);
		keynulls[m] = (it->sale_key == NULL);
		keys[m] = it->sale_key ? CStringGetTextDatum(it->sale_key) : (Datum) 0;
		m++;
	}
	if (m == 0)
		return;
	vals[0] = PointerGetDatum(construct_array(tidd, m, TIDOID, sizeof(ItemPointerData), false, TYPALIGN_SHORT));
	vals[2] = PointerGetDatum(construct_array(caps, m, INT4OID, 4, true, TYPALIGN_INT));
	vals[3] = outbox_array_with_nulls(keys, keynulls, m, TEXTOID, -1, false, TYPALIGN_INT);
	if (outbox_execute(&lease_items_stmt, vals, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "could not read the items of leased staged sales");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		bool		isnull;
		ItemPointer t = OutboxDatumGetTid(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		ArrayType  *arr = DatumGetArrayTypeP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		Datum	   *elems;
		int			nelems;

		deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, NULL, &nelems);
		for (int k = 0; k < n; k++)
		{
			OutboxItem *it = &c->items[idx[k]];

			if (!gone[k] && ItemPointerEquals(t, &tids[k]) &&
				it->lease_ord >= 1 && it->lease_ord <= nelems)
			{
				it->id = DatumGetInt64(elems[it->lease_ord - 1]);
				ids[idx[k]] = Int64GetDatum(it->id);
			}
		}
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * The leased sales' next states (ids[] and the rest as record_states()
 * made them): per lease, the rows still staged are deleted and their
 * items inserted; the items a POS transaction made of the others get
 * their ids, and ids[] with them, for record_stmt.  A sale neither way
 * (its row gone and nothing left of it: its capture deleted) is left.
 * In statements of about RECORD_CHUNK sales, whole rows each, so that
 * jobs_progress() starts the requests that wait between them.
 */
static void
record_leases(OutboxCycle *c, Datum *ids, Datum *states, Datum *statuses, bool *status_nulls,
			  Datum *refs, bool *ref_nulls, Datum *errors, bool *error_nulls, Datum *delays,
			  Datum *giveback, Datum *ambig)
{
	int			nn = c->nitems + 1;
	bool	   *done = palloc0(sizeof(bool) * nn);
	int		   *all = palloc(sizeof(int) * nn);

	for (int i = 0; i < c->nitems; i++)
	{
		TimestampTz lease;
		int			nall = 0;

		if (!c->items[i].leased || c->items[i].lease_lost || done[i])
			continue;
		lease = c->items[i].lease_until;
		for (int j = i; j < c->nitems; j++)
		{
			OutboxItem *it = &c->items[j];

			if (!it->leased || it->lease_lost || done[j] || it->lease_until != lease)
				continue;
			done[j] = true;
			all[nall++] = j;
		}
		for (int from = 0; from < nall;)
		{
			int			to = Min(from + RECORD_CHUNK, nall);

			/* whole rows: a row's sales are together in the claim's order */
			while (to < nall && ItemPointerEquals(&c->items[all[to]].lease_tid,
												   &c->items[all[to - 1]].lease_tid))
				to++;
			record_lease_part(c, lease, all + from, to - from, ids, states, statuses, status_nulls,
							  refs, ref_nulls, errors, error_nulls, delays, giveback, ambig);
			from = to;
		}
	}

	/* neither: the row gone with no items left of it */
	{
		int			lost = 0;

		for (int i = 0; i < c->nitems; i++)
			if (c->items[i].leased && !c->items[i].lease_lost && !c->items[i].lease_done && c->items[i].id == 0)
				lost++;
		if (lost > 0)
			ereport(WARNING,
					(errmsg("sales_api worker: %d sales in flight under a lease could not be recorded", lost),
					 errdetail("Their staged rows are no longer where the claim leased them, and no items were made of them: sales_api.outbox_stage was rewritten (VACUUM FULL?), or their capture was deleted."),
					 errhint("A row still staged is made items when its lease runs out, and its sales are settled as posts that may have been stored.")));
	}
}

/* Every item's next state, in one statement; the worker's figures. */
static void
record_states(OutboxCycle *c)
{
	int			n = c->nitems;
	Datum	   *ids = palloc(sizeof(Datum) * (n + 1));
	Datum	   *states = palloc(sizeof(Datum) * (n + 1));
	Datum	   *statuses = palloc(sizeof(Datum) * (n + 1));
	bool	   *status_nulls = palloc(sizeof(bool) * (n + 1));
	Datum	   *refs = palloc(sizeof(Datum) * (n + 1));
	bool	   *ref_nulls = palloc(sizeof(bool) * (n + 1));
	Datum	   *errors = palloc(sizeof(Datum) * (n + 1));
	bool	   *error_nulls = palloc(sizeof(bool) * (n + 1));
	Datum	   *delays = palloc(sizeof(Datum) * (n + 1));
	Datum	   *giveback = palloc(sizeof(Datum) * (n + 1));
	Datum	   *ambig = palloc(sizeof(Datum) * (n + 1));
	uint64		count[OS_N] = {0};
	uint64		held = 0;
	int			nleased = 0;
	Datum		vals[8];
	OutboxState *next_state = palloc(sizeof(OutboxState) * (n + 1));

	for (int i = 0; i < n; i++)
	{
		OutboxItem *it = &c->items[i];
		OutboxNext	next = outbox_decide(it->kind, it->attempts, &it->out);

		next_state[i] = next.state;
		ids[i] = Int64GetDatum(it->id);
		states[i] = CStringGetTextDatum(outbox_state_names[next.state].name);
		statuses[i] = Int32GetDatum(it->out.http_status);
		status_nulls[i] = (it->out.http_status == 0);
		refs[i] = it->out.vendor_ref ? CStringGetTextDatum(it->out.vendor_ref) : (Datum) 0;
		ref_nulls[i] = (it->out.vendor_ref == NULL);
		errors[i] = next.error ? CStringGetTextDatum(next.error) : (Datum) 0;
		error_nulls[i] = (next.error == NULL);
		delays[i] = Int64GetDatum(next.delay_ms);
		giveback[i] = Int32GetDatum(next.attempt_back ? 1 : 0);
		/*
		 * An ambiguous post stays so until something settles it (a window,
		 * an operator): a failure to even try (no token, no server) must
		 * not make it a plain post that could store the sale twice.
		 */
		ambig[i] = BoolGetDatum(next.ambiguous || (it->ambiguous && next.state != OS_SENT));
		if (it->leased)
			nleased++;
	}
	if (nleased > 0)
		/* leased sales: inserted as items, or given the ids a POS transaction made */
		record_leases(c, ids, states, statuses, status_nulls, refs, ref_nulls, errors, error_nulls,
					  delays, giveback, ambig);

	/*
	 * The worker's figures: every item recorded, not a leased sale left to
	 * expire (its row not found, nor its items)
	 */
	for (int i = 0; i < n; i++)
	{
		OutboxItem *it = &c->items[i];

		if (it->id == 0 && !it->lease_done)
			continue;
		if (it->out.result == OUTBOX_HELD)
			held++;				/* held for the budget: waiting, not failed */
		else
			count[next_state[i]]++;
	}
	if (nleased > 0)
	{
		int			m = 0;

		/* record_stmt updates the items that have an id */
		for (int i = 0; i < n; i++)
		{
			if (c->items[i].id == 0)
				continue;
			ids[m] = ids[i];
			states[m] = states[i];
			statuses[m] = statuses[i];
			status_nulls[m] = status_nulls[i];
			refs[m] = refs[i];
			ref_nulls[m] = ref_nulls[i];
			errors[m] = errors[i];
			error_nulls[m] = error_nulls[i];
			delays[m] = delays[i];
			giveback[m] = giveback[i];
			ambig[m] = ambig[i];
			m++;
		}
		n = m;
	}
	/* in statements of RECORD_CHUNK items: jobs_progress() runs between them */
	for (int from = 0; from < n; from += RECORD_CHUNK)
	{
		int			k = Min(RECORD_CHUNK, n - from);

		vals[0] = PointerGetDatum(construct_array(ids + from, k, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		vals[1] = PointerGetDatum(construct_array(states + from, k, TEXTOID, -1, false, TYPALIGN_INT));
		vals[2] = outbox_array_with_nulls(statuses + from, status_nulls + from, k, INT4OID, 4, true, TYPALIGN_INT);
		vals[3] = outbox_array_with_nulls(refs + from, ref_nulls + from, k, TEXTOID, -1, false, TYPALIGN_INT);
		vals[4] = outbox_array_with_nulls(errors + from, error_nulls + from, k, TEXTOID, -1, false, TYPALIGN_INT);
		vals[5] = PointerGetDatum(construct_array(delays + from, k, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		vals[6] = PointerGetDatum(construct_array(giveback + from, k, INT4OID, 4, true, TYPALIGN_INT));
		vals[7] = PointerGetDatum(construct_array(ambig + from, k, BOOLOID, 1, true, TYPALIGN_CHAR));
		if (outbox_execute(&record_stmt, vals, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not record outbox outcomes");
	}

	if (worker_shared)
	{
		SpinLockAcquire(&worker_shared->mutex);
		worker_shared->items_sent += count[OS_SENT];
		worker_shared->items_failed += count[OS_UNKNOWN] + count[OS_FAILED];
		worker_shared->items_dead += count[OS_DEAD];
		worker_shared->retries += count[OS_FAILED];
		worker_shared->rate_waits += held;
		if (count[OS_SENT] > 0)
			worker_shared->last_success_at = GetCurrentTimestamp();
		SpinLockRelease(&worker_shared->mutex);
	}
}

static bool
record(OutboxCycle *c)
{
	pgstat_report_activity(STATE_RUNNING, "sales_api worker: recording outcomes");

	/* a POS transaction holds a leased row: record the job at a later step */
	if (!leases_lockable(c))
		return false;

	/*
	 * A window's local sales were read after the claim: a staged sale among
	 * them is made an item here, so that "covered by a replaced time window"
	 * finds it and it is never posted a second time.
	 */
	if (c->windows != NIL)
	{
		Datum		args[4] = {0, 0, 0, 0};

		(void) outbox_stage_expand(false, args, "nnnn");
	}
	outbox_ct_settle_windows(c);
	record_states(c);
	outbox_ct_record(c);
	return true;
}

/* When is the next item due?  Earlier than `was` only (0: no bound). */
static TimestampTz
claim_next_due(TimestampTz was, Datum may_claim)
{
	TimestampTz next = was;

	if (may_claim == (Datum) 0)
		return next;
	if (outbox_execute(&next_due_stmt, &may_claim, NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull && (next == 0 || DatumGetTimestampTz(d) < next))
			next = DatumGetTimestampTz(d);
	}
	return next;
}

/* ------------------------------------------------------------------------
 * The worker's step
 * ------------------------------------------------------------------------
 */

/* Start a transaction with SPI connected and a snapshot. */
static void
begin_txn(MemoryContext cxt, const char *what)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_RUNNING, what);
}

static void
end_txn(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * The lanes a failed pass had locked (and the probes it had taken), for
 * claim_jobs() to free once it has aborted the pass's transaction; the
 * worker's handler frees every lane (outbox_abort()).
 */
typedef struct PassLock
{
	int			capture_id;
	bool		probe;
	Oid			server_id;
	Oid			run_as;
} PassLock;

static PassLock *pass_failed = NULL;
static int	npass_failed = 0;
static int	maxpass_failed = 0;

static void
pass_failed_remember(OutboxCycle *c)
{
	ListCell   *lc;

	npass_failed = 0;
	foreach(lc, c->captures)
	{
		OutboxCapture *cap = lfirst(lc);

		if (!cap->locked)
			continue;
		if (npass_failed == maxpass_failed)
		{
			maxpass_failed = Max(8, maxpass_failed * 2);
			pass_failed = pass_failed ? repalloc(pass_failed, sizeof(PassLock) * maxpass_failed)
				: MemoryContextAlloc(TopMemoryContext, sizeof(PassLock) * maxpass_failed);
		}
		pass_failed[npass_failed].capture_id = cap->id;
		pass_failed[npass_failed].probe = cap->probe;
		pass_failed[npass_failed].server_id = cap->server_id;
		pass_failed[npass_failed].run_as = cap->run_as;
		npass_failed++;
	}
}

static void
pass_failed_release(void)
{
	for (int i = 0; i < npass_failed; i++)
	{
		lane_unlock(pass_failed[i].capture_id);
		if (pass_failed[i].probe)
			lanes_probe_cancel(pass_failed[i].server_id, pass_failed[i].run_as);
	}
	npass_failed = 0;
}

/*
 * Prepare the statements the worker runs while it sends, and make their
 * plans (outbox_warm()): once the last pass found the extension in its
 * current schema, in a transaction of their own before the next claim, so
 * that the locks planning takes are held for that short transaction only;
 * the Mapal statements once a pass found a Mapal capture; the purge's when
 * sent items are purged.  It is only a head start: on an error (a lock
 * timeout, a cancel) the worker aborts that transaction, says so, and
 * leaves the statements to their first runs; the claims go on as before.
 * Its locks are waited for WARM_LOCK_TIMEOUT_MS at most (or the server's
 * lock_timeout, if shorter): a session holding a table of the outbox
 * (LOCK, DDL) must not hold every lane back while the worker prepares.
 * An error of a request in flight read meanwhile (jobs_progress()) goes to
 * the worker's handler, as any.
 */
#define WARM_LOCK_TIMEOUT_MS 100

static void
warm_statements(MemoryContext cycle_cxt)
{
	static OutboxStmt *const stmts[] = {
		&captures_stmt, &expire_stmt, &record_stmt, &lease_lock_stmt,
		&lease_record_stmt, &lease_items_stmt, &next_due_stmt, &lane_due_stmt
	};
	static OutboxStmt *const purge[] = {&purge_stmt};
	MemoryContext oldcxt = CurrentMemoryContext;
	bool		mapal = found_mapal;

	if (!found_current || (warmed && (warmed_mapal || !mapal)))
		return;
	jobs_failed = false;
	PG_TRY();
	{
		char		lt[32];

		begin_txn(cycle_cxt, "sales_api worker: preparing its statements");
		/* a lock held by another session makes this wait WARM_LOCK_TIMEOUT_MS at most */
		snprintf(lt, sizeof(lt), "%dms",
				 LockTimeout > 0 && LockTimeout < WARM_LOCK_TIMEOUT_MS ? LockTimeout : WARM_LOCK_TIMEOUT_MS);
		(void) set_config_option("lock_timeout", lt, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
		if (!warmed)
		{
			outbox_warm(stmts, lengthof(stmts));
			if (sales_api_sent_retention_ms > 0)
				outbox_warm(purge, lengthof(purge));
			outbox_ct_warm();
			outbox_stage_warm();
		}
		if (mapal)
		{
			outbox_stage_warm_mapal();
			outbox_mapal_warm();
		}
		end_txn();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		if (jobs_failed || !IsTransactionState())
			PG_RE_THROW();
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		MemoryContextSwitchTo(oldcxt);
		ereport(LOG,
				(errmsg("sales_api worker: could not prepare its statements ahead of their first runs: %s",
						edata->message),
				 errdetail("They are prepared at their first runs instead.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	warmed = true;
	warmed_mapal = warmed_mapal || mapal;
}

/*
 * One pass of a claim, in a transaction of its own, and a job for each
 * capture it claimed items of.  Returns false when the extension is not
 * (yet) there; *mapal says whether a Mapal capture exists.
 */
static bool
claim_pass(MemoryContext cycle_cxt, ClaimPass pass, bool *mapal)
{
	OutboxClaim *cl;
	OutboxCycle *c;
	bool		installed;

	cl = MemoryContextAllocZero(TopMemoryContext, sizeof(OutboxClaim));
	cl->cxt = AllocSetContextCreate(TopMemoryContext, "sales_api claim", ALLOCSET_DEFAULT_SIZES);
	c = MemoryContextAllocZero(cl->cxt, sizeof(OutboxCycle));
	c->cxt = cl->cxt;

	PG_TRY();
	{
		begin_txn(cycle_cxt, "sales_api worker: claiming");
		installed = (outbox_execute(&installed_stmt, NULL, NULL, true, 1) == SPI_OK_SELECT &&
					 SPI_processed == 1);
		if (installed)
		{
			bool		isnull;

			state_names = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		}
		found_current = installed && state_names;
		if (!installed)
			warmed = warmed_mapal = found_mapal = false;
		if (!installed)
		{
			if (!warned_missing)
				ereport(LOG,
						(errmsg("sales_api worker: extension sales_api is not installed in database \"%s\", or is older than 0.8.0; waiting",
								sales_api_database),
						 errhint("CREATE EXTENSION sales_api, or ALTER EXTENSION sales_api UPDATE, in that database.")));
			warned_missing = true;
		}
		else
		{
			warned_missing = false;
			MemoryContextSwitchTo(cl->cxt);
			claim(c, pass);
			/* the next item due of a lane that may claim: not one busy or skipped */
			next_claim_at = claim_next_due(next_claim_at, lanes_settle(c, pass));
		}
		end_txn();
	}
	PG_CATCH();
	{
		pass_failed_remember(c);
		MemoryContextDelete(cl->cxt);
		pfree(cl);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (c->more)
		claim_wanted = true;
	if (c->expanded > 0 && sales_api_workers_per_database > 1)
		worker_wake_others();
	*mapal = c->mapal;
	found_mapal = found_mapal || c->mapal;
	MemoryContextSwitchTo(cl->cxt);
	jobs_from_claim(c, cl);
	MemoryContextSwitchTo(cycle_cxt);
	if (cl->njobs == 0)
	{
		MemoryContextDelete(cl->cxt);
		pfree(cl);
	}
	return installed;
}

/*
 * Claim work for every capture that is neither busy nor waiting, and start
 * a job for each.
 *
 * The worker is one process, and while it runs a statement no answer is
 * read and no request started.  The Connecteam lanes are claimed first and
 * their jobs are in flight while the rest runs: the staged Mapal slots made
 * markers (about 130 ms for a day's 14,400 slots, in steps of at most
 * MARK_SLOTS_PER_STEP) and the Mapal claim, whose totals read the POS table
 * (30-50 ms for a claim's units of a 100,000-sale day, read in pieces).
 * Between their statements outbox_execute() reads the answers and starts
 * the requests that wait.  Until 0.8.0 one transaction did it all, and a
 * drain for both vendors started its first posts a quarter of a second late
 * and left Connecteam's requests waiting at every Mapal claim.
 *
 * The Connecteam pass's claim is committed and its requests may be out when
 * the Mapal half runs, so an error there must not drop those jobs, as the
 * worker's handler does (outbox_abort()): their sales would stay in flight
 * until their lease ran out, then be taken for ambiguous.  It aborts its own
 * transaction, frees the lanes it locked, is logged, and the Mapal half waits
 * MAPAL_RETRY_MS.  An error of a job stepped meanwhile (jobs_progress()), or
 * one after the Mapal claim committed, goes to the worker's handler.
 */
#define MARK_STEPS_BEFORE_CLAIM 32
#define MAPAL_RETRY_MS 5000

static TimestampTz mapal_not_before = 0;
static int	mark_steps = 0;

static void
claim_jobs(MemoryContext cycle_cxt)
{
	bool		mapal = false;
	MemoryContext oldcxt = CurrentMemoryContext;

	warm_statements(cycle_cxt);
	if (!claim_pass(cycle_cxt, CLAIM_CONNECTEAM, &mapal) || !mapal)
		return;
	if (GetCurrentTimestamp() < mapal_not_before)
	{
		if (next_claim_at == 0 || mapal_not_before < next_claim_at)
			next_claim_at = mapal_not_before;
		return;
	}
	jobs_failed = false;
	npass_failed = 0;
	PG_TRY();
	{
		/*
		 * A large stage goes a step at a time; the Mapal lanes claim once it
		 * is done, so that a unit-day's slots go out in one request, or every
		 * MARK_STEPS_BEFORE_CLAIM steps (about 64,000 slots) of a stage that
		 * keeps filling.  (At 4, a day's 14,400 slots went out in 1.26
		 * requests per unit-day.)
		 */
		if (!mark_staged_slots(cycle_cxt) || ++mark_steps >= MARK_STEPS_BEFORE_CLAIM)
		{
			mark_steps = 0;
			(void) claim_pass(cycle_cxt, CLAIM_MAPAL, &mapal);
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		if (jobs_failed || !IsTransactionState())
			PG_RE_THROW();
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(oldcxt);
		pass_failed_release();
		mapal_not_before = GetCurrentTimestamp() + (int64) MAPAL_RETRY_MS * 1000;
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("sales_api worker: could not claim for the Mapal lanes: %s", edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 errhint("The Connecteam lanes go on; the Mapal lanes are tried again in %d s.",
						 MAPAL_RETRY_MS / 1000)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/*
 * Staged Mapal slots, every capture's, become dirty markers, skipping rows
 * a POS transaction is making markers of itself, in a transaction of their
 * own before the Mapal claim, in statements of about MAPAL_MOVE_SLOTS slots
 * (outbox_stage.c), about MARK_SLOTS_PER_STEP slots a step (whole rows: at
 * most a part's 1,000 more): a day's
 * 14,400 slots took 130 ms, during which no finished job was recorded and
 * no lane claimed again.  Returns whether rows may be left; the worker then
 * goes on at its next step.
 */
#define MARK_SLOTS_PER_STEP 2000

static bool
mark_staged_slots(MemoryContext cycle_cxt)
{
	int64		n;
	bool		more;

	begin_txn(cycle_cxt, "sales_api worker: marking staged Mapal slots");
	/* a row holds a slot at least */
	n = outbox_stage_expand_mapal(MARK_SLOTS_PER_STEP, MARK_SLOTS_PER_STEP, &more);
	end_txn();
	MemoryContextSwitchTo(cycle_cxt);
	if (more)
		claim_wanted = true;
	if (n > 0 && sales_api_workers_per_database > 1)
		worker_wake_others();
	return more;
}

/* Move every job on; record those that are done, together, in one transaction. */
static void
advance_jobs(MemoryContext cycle_cxt)
{
	List	   *done = NIL;
	List	   *still = NIL;
	ListCell   *lc;
	MemoryContext old;
	bool		isnull;

	foreach(lc, jobs)
	{
		OutboxJob  *job = lfirst(lc);

		if (job_advance(job))
			done = lappend(done, job);
	}
	if (done == NIL)
		return;

	begin_txn(cycle_cxt, "sales_api worker: recording");
	record_deferred = false;
	foreach(lc, done)
	{
		OutboxJob  *job = lfirst(lc);

		if (!record(job->c))
		{
			/* it stays a job, its lane busy, and is recorded at a later step */
			done = foreach_delete_current(done, lc);
			record_deferred = true;
			continue;
		}
		if (!job->extra && job->cap != NULL)
		{
			OutboxLane *lane = lane_of(job->cap->id);
			Datum		cap = Int32GetDatum(job->cap->id);

			/*
			 * A chain at its length, of a lane with no item due: the
			 * claim of the idle lane would take what its second job
			 * takes, its staged sales, so the chain goes on.  Going idle
			 * every LANE_CHAIN_MAX jobs for nothing emptied a draining
			 * lane's requests for 40-60 ms about once a second.  But at
			 * least once a lease_time it goes idle: only a claim of the
			 * idle lane takes back the leases a dropped job left (a
			 * crash, an ERROR), which lane_due_stmt does not see, and a
			 * lane fed without end would keep their sales waiting.
			 */
			if (lane->extra && lane->chain >= LANE_CHAIN_MAX &&
				GetCurrentTimestamp() < lane->idle_due_at &&
				outbox_execute(&lane_due_stmt, &cap, NULL, true, 1) == SPI_OK_SELECT &&
				SPI_processed == 1 &&
				!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
				lane->chain = 0;
		}
		if (job->cap != NULL && job->cap->locked)
		{
			lane_unlock(job->cap->id);
			job->cap->locked = false;
		}
	}
	end_txn();
	MemoryContextSwitchTo(cycle_cxt);
	if (done == NIL)
		return;

	/* the recorded jobs leave; their lanes may claim again at once */
	old = MemoryContextSwitchTo(TopMemoryContext);
	foreach(lc, jobs)
		if (!list_member_ptr(done, lfirst(lc)))
			still = lappend(still, lfirst(lc));
	MemoryContextSwitchTo(old);
	list_free(jobs);
	jobs = still;
	foreach(lc, done)
	{
		OutboxJob  *job = lfirst(lc);
		OutboxClaim *cl = job->claim;

		job_lane_done(job);
		if (--cl->njobs <= 0)
		{
			MemoryContextDelete(cl->cxt);
			pfree(cl);
		}
	}
	claim_wanted = true;
}

/*
 * One step of the worker: move every job in flight on, record those that
 * are done, and claim for idle lanes when there may be work for them (a
 * wake-up, a lane freed, an item due).  Never waits.  Returns true when
 * there may be more work right away; *wait_ms says how long the worker may
 * wait otherwise (outbox_wait() while jobs are in flight).
 */
bool
outbox_step(MemoryContext cycle_cxt, long *wait_ms)
{
	TimestampTz now;
	TimestampTz wake = 0;
	ListCell   *lc;
	bool		more;

	advance_jobs(cycle_cxt);
	now = GetCurrentTimestamp();

	/*
	 * sales_api.worker_naptime is the safety net while lanes are sending
	 * too: a wake-up can be lost (any wait of the backend's own, a lock for
	 * one, resets the latch), and an item enqueued without one must not
	 * wait for every job in flight to end.
	 */
	if (claim_wanted || (next_claim_at != 0 && now >= next_claim_at) ||
		now >= last_claim_at + (int64) sales_api_worker_naptime_ms * 1000)
	{
		claim_wanted = false;
		next_claim_at = 0;
		last_claim_at = now;
		claim_jobs(cycle_cxt);
		advance_jobs(cycle_cxt);
		/* a cycle, as worker_stats() counts them, is a claim */
		if (worker_shared)
		{
			SpinLockAcquire(&worker_shared->mutex);
			worker_shared->cycles++;
			worker_shared->last_cycle_at = GetCurrentTimestamp();
			SpinLockRelease(&worker_shared->mutex);
		}
	}
	more = claim_wanted;

	/* the earliest of: a run's next wave, an item due, a lane's budget back */
	now = GetCurrentTimestamp();
	foreach(lc, jobs)
	{
		TimestampTz t = job_wakeup(lfirst(lc));

		if (t != 0 && (wake == 0 || t < wake))
			wake = t;
	}
	if (next_claim_at != 0 && (wake == 0 || next_claim_at < wake))
		wake = next_claim_at;
	/* a record waiting for a POS transaction: try again soon */
	if (record_deferred)
	{
		TimestampTz t = now + RECORD_RETRY_MS * 1000;

		if (wake == 0 || t < wake)
			wake = t;
	}
	if (wake == 0 || last_claim_at + (int64) sales_api_worker_naptime_ms * 1000 < wake)
		wake = last_claim_at + (int64) sales_api_worker_naptime_ms * 1000;
	for (int i = 0; i < nlanes; i++)
		if (!lanes[i].busy && !lanes[i].extra && lanes[i].ready_at > now &&
			(wake == 0 || lanes[i].ready_at < wake))
			wake = lanes[i].ready_at;
	if (wake != 0)
		*wait_ms = Max(Min(*wait_ms, (long) ((wake - now) / 1000)), 1);
	return more;
}

/* Are requests of some job in flight or waiting for their next wave? */
bool
outbox_sending(void)
{
	return jobs != NIL;
}

/*
 * Wait up to wait_ms for a transfer to finish or the latch to be set (a
 * sale committed): libcurl is polled in short slices, the latch looked at
 * between them.
 */
void
outbox_wait(long wait_ms)
{
	TimestampTz end = GetCurrentTimestamp() + (int64) wait_ms * 1000;

	for (;;)
	{
		long		left = (long) ((end - GetCurrentTimestamp()) / 1000);

		if (MyLatch->is_set)
		{
			ResetLatch(MyLatch);
			claim_wanted = true;
			return;
		}
		if (left <= 0)
			return;
		if (http_in_flight() == 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Max(left, 1), PG_WAIT_EXTENSION);
			continue;
		}
		if (http_pump(Min(left, 10)) > 0)
			return;
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
			return;
	}
}

/* A sale committed or an operator asked: claim at the next step. */
void
outbox_want_claim(void)
{
	claim_wanted = true;
}

/*
 * After an ERROR: drop every job and every transfer.  Their items stay
 * in_flight until their lease expires, as after a crash (outbox_decide()).
 */
void
outbox_abort(void)
{
	ListCell   *lc;
	List	   *claims = NIL;

	http_abort_all();
	auth_fetch_abort_all();
	record_deferred = false;
	/*
	 * A failed pass's lane locks go with LockReleaseSession() below; the
	 * probes it was admitted for are in shared memory, and would keep their
	 * half-open lanes waiting for LANES_PROBE_STALE_MS
	 */
	for (int i = 0; i < npass_failed; i++)
		if (pass_failed[i].probe)
			lanes_probe_cancel(pass_failed[i].server_id, pass_failed[i].run_as);
	npass_failed = 0;
	/* every lane lock this worker holds */
	LockReleaseSession(USER_LOCKMETHOD);
	foreach(lc, jobs)
	{
		OutboxJob  *job = lfirst(lc);

		if (job->cap != NULL)
		{
			LaneJobResult r = {0};
			OutboxLane *lane = lane_of(job->cap->id);

			lane->busy = lane->extra = lane->exclusive = false;
			lane->chain = 0;
			lanes_job_done(job->cap->server_id, job->cap->run_as, &r);
			lanes_set_waiting(job->cap->server_id, job->cap->run_as, NULL, 0);
		}
		claims = list_append_unique_ptr(claims, job->claim);
	}
	foreach(lc, claims)
	{
		OutboxClaim *cl = lfirst(lc);

		MemoryContextDelete(cl->cxt);
		pfree(cl);
	}
	list_free(claims);
	list_free(jobs);
	jobs = NIL;
	claim_wanted = true;
	next_expire_at = 0;
}
