/*-------------------------------------------------------------------------
 *
 * outbox.c
 *		One cycle of the background worker over sales_api.outbox.
 *
 * Design note.  A cycle is three steps, so that no lock is held and no
 * transaction is open while the network is slow:
 *
 *   1. claim (one transaction): expired leases are taken back; a batch of
 *      due items is moved to in_flight with a lease (FOR UPDATE SKIP
 *      LOCKED, so an operator's manual statements or a second worker never
 *      block on it); Mapal slot totals are recomputed from the POS table;
 *      the servers' credentials are resolved as the capture's run_as role.
 *   2. send (no transaction): Connecteam posts 100 per request, paced by
 *      the account's rate limits (ratelimit.c); deletes by transactionId;
 *      Mapal one request per (unit, business day) with every dirty slot;
 *      all over the HTTP core's multi interface.
 *   3. record (one transaction): each item's outcome: sent (with the
 *      vendor's transactionId), failed for now (attempts, next attempt with
 *      exponential backoff and jitter, Retry-After honoured), dead (a
 *      permanent 4xx or max attempts), unknown (ambiguous, park policy).
 *
 * Connecteam has no idempotency key, so a post that may have been stored
 * (the request was sent, then the connection broke or timed out, or the
 * worker died and its lease expired) is never simply sent again.  Under
 * the replace_window policy the worker deletes that location's time window
 * at the vendor and posts every local sale of the window again, recording
 * the new transactionIds; under park the items become "unknown" for an
 * operator.
 *
 * Mapal slots are totals recomputed from the POS table at send time, so a
 * resend is harmless and UPDATE/DELETE of sales need no special case: the
 * trigger marks the slots dirty, and the recomputed totals (zero when no
 * sale is left) replace what Mapal holds.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "connecteam.h"
#include "mapal.h"
#include "mapping.h"
#include "outbox.h"
#include "outbox_stage.h"
#include "ratelimit.h"
#include "vendor.h"
#include "worker.h"

typedef enum ItemKind
{
	K_CT_POST,
	K_CT_DELETE,
	K_CT_WINDOW,				/* repair: replace a location's window */
	K_MAPAL_SLOT
} ItemKind;

typedef enum Outcome
{
	O_NONE = 0,
	O_SENT,
	O_RETRY,
	O_NOT_SENT,					/* rate budget: retry, no attempt spent */
	O_DEAD,
	O_UNKNOWN,
	O_AMBIGUOUS					/* replace_window will settle it */
} Outcome;

typedef struct Capture
{
	int			id;
	Oid			server_id;
	Oid			run_as;
	SalesApiVendor vendor;
	CaptureDef *def;			/* its mapping, loaded when a statement needs it */
	SalesApiServer *srv;
	char	   *srv_error;
} Capture;

typedef struct OItem
{
	int64		id;
	ItemKind	kind;
	Capture    *cap;
	int			attempts;
	bool		ambiguous;
	char	   *sale_key;
	/* Connecteam */
	CtTx		txn;
	bool		txn_valid;
	char	   *transaction_id; /* for deletes: the version the vendor holds */
	int64		window_start;	/* K_CT_WINDOW: Unix seconds, inclusive */
	int64		window_end;
	/* Mapal */
	MapalSale	slot;
	bool		slot_valid;
	bool		totals_loaded;
	bool		settled_by_window;
	/* outcome */
	Outcome		outcome;
	int			http_status;
	char	   *vendor_ref;
	char	   *error;
	int			retry_after_s;
} OItem;

/* A location's window to replace (ambiguous Connecteam posts). */
typedef struct Window
{
	Capture    *cap;
	int64		location_id;
	int64		start_epoch;
	int64		end_epoch;
	List	   *items;			/* ambiguous OItem * settled by this window */
	int			nlocal;
	CtTx	   *local;			/* every local sale of the window */
	bool		ok;
	bool		unread;			/* its local sales could not be read: not sent */
	char	   *error;
	int			http_status;
	char	  **ids;			/* transactionIds of local[], once posted */
} Window;

typedef struct Cycle
{
	MemoryContext cxt;
	List	   *captures;
	OItem	   *items;
	int			nitems;
	List	   *windows;
	bool		more;			/* the claim was full: go again at once */
	TimestampTz next_due;
} Cycle;

static bool warned_missing = false;

/*
 * lappend() in the cycle's context.  Every SPI call leaves the SPI procedure
 * context current (_SPI_end_call), and that context dies with SPI_finish(),
 * so what must outlive the claim transaction is allocated explicitly.
 */
static List *
list_append_in(MemoryContext cxt, List *list, void *datum)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);

	list = lappend(list, datum);
	MemoryContextSwitchTo(old);
	return list;
}

static char *
spi_str(HeapTuple tup, TupleDesc td, int col, MemoryContext cxt)
{
	char	   *v = SPI_getvalue(tup, td, col);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

static int64
spi_int64(HeapTuple tup, TupleDesc td, int col, bool *isnull)
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

/*
 * Run a fixed statement, preparing it on its first run and keeping the plan
 * (SPI_keepplan) for the life of the backend; the plan cache replans it
 * after DDL.  It runs with pg_catalog alone on the search path, whoever
 * calls.  SPI must be connected.
 */
int
outbox_execute(OutboxStmt *stmt, Datum *values, const char *nulls, bool read_only, long count)
{
	OverrideSearchPath path = {.schemas = NIL, .addCatalog = true, .addTemp = false};
	int			ret;

	PushOverrideSearchPath(&path);
	if (stmt->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(stmt->sql, stmt->nargs, stmt->types);

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

static Capture *
capture_find(Cycle *c, int id)
{
	ListCell   *lc;

	foreach(lc, c->captures)
	{
		Capture    *cap = lfirst(lc);

		if (cap->id == id)
			return cap;
	}
	return NULL;
}

/*
 * Resolve a capture's server and credentials as its run_as role, inside a
 * subtransaction so that a dropped mapping or server becomes an error on
 * the items, not a failed cycle.
 */
static void
capture_resolve(Capture *cap, MemoryContext cxt)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

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
 * Run one of a capture's mapping statements (as the table owner, see
 * mapping.c) in a subtransaction: a mapping that fails (a dropped column,
 * a right the owner lost, an error in its own function) becomes an error
 * on the items that needed it, not a failed cycle for every capture.
 * Returns false with *error set on failure; the rows are in SPI_tuptable.
 */
static bool
mapping_try(Cycle *c, Capture *cap, MappingStmt stmt, int nargs, Oid *types, Datum *values,
			char **error)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = true;

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
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		*error = psprintf("capture %d: %s", cap->id, edata->message);
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

static void
load_captures(Cycle *c)
{
	int			ret;

	ret = SPI_execute("SELECT c.id, c.server_id, c.run_as, c.vendor FROM sales_api.capture c", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read sales_api.capture");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		Capture    *cap = MemoryContextAllocZero(c->cxt, sizeof(Capture));
		bool		isnull;
		char	   *vendor;

		cap->id = (int) spi_int64(tup, td, 1, &isnull);
		cap->server_id = DatumGetObjectId(SPI_getbinval(tup, td, 2, &isnull));
		cap->run_as = DatumGetObjectId(SPI_getbinval(tup, td, 3, &isnull));
		vendor = SPI_getvalue(tup, td, 4);
		cap->vendor = strcmp(vendor, "mapal") == 0 ? VENDOR_MAPAL : VENDOR_CONNECTEAM;
		c->captures = list_append_in(c->cxt, c->captures, cap);
	}
}

/*
 * Items whose lease ran out were claimed by a worker that stopped before
 * recording their outcome.  A Connecteam post among them may have been
 * stored: it goes through the ambiguous-outcome policy.
 */
static void
expire_leases(void)
{
	SPI_execute(psprintf(
						 "UPDATE sales_api.outbox SET lease_until = NULL,"
						 " next_attempt_at = now() + CASE WHEN kind = 'ct_post' THEN interval '%d ms' ELSE interval '0' END,"
						 " state = CASE WHEN kind = 'ct_post' AND %d = %d THEN 'unknown' ELSE 'failed' END,"
						 " ambiguous = (kind = 'ct_post'),"
						 " last_error = 'lease expired: the worker stopped while sending; the outcome is unknown'"
						 " WHERE state = 'in_flight' AND lease_until < now()",
						 sales_api_ambiguous_settle_ms, sales_api_ambiguous_policy, AMBIGUOUS_PARK),
				false, 0);
}

static void
purge_sent(void)
{
	if (sales_api_sent_retention_ms <= 0)
		return;
	/* both halves use a partial index: no scan of the sent history */
	SPI_execute(psprintf("DELETE FROM sales_api.outbox WHERE id IN ("
						 " (SELECT id FROM sales_api.outbox WHERE state = 'sent'"
						 "   AND sent_at < now() - interval '%d ms' LIMIT 10000)"
						 " UNION ALL"
						 " (SELECT id FROM sales_api.outbox WHERE state = 'superseded'"
						 "   AND enqueued_at < now() - interval '%d ms' LIMIT 10000))",
						 sales_api_sent_retention_ms, sales_api_sent_retention_ms),
				false, 0);
}

#define CLAIM_COMMON \
	" FROM sales_api.outbox o JOIN sales_api.capture c ON c.id = o.capture_id" \
	" LEFT JOIN sales_api.server_state s ON s.server_id = c.server_id" \
	" WHERE o.state IN ('pending', 'failed') AND coalesce(o.next_attempt_at, '-infinity') <= now()" \
	" AND NOT coalesce(s.paused, false)"

/*
 * A Connecteam transaction from columns first..first+5 of an SPI row
 * (location_id bigint, sale_type text, created_at timestamptz,
 * final_sale_amount numeric, tax_amount numeric, currency text), copied
 * into the cycle's memory.  Returns why it can never be sent, or NULL.
 */
static char *
tx_from_spi(CtTx *tx, MemoryContext cxt, HeapTuple tup, TupleDesc td, int first, char *reference)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	bool		nloc,
				ncreated,
				namount,
				ntax,
				isnull;
	int64		loc = spi_int64(tup, td, first, &nloc);
	char	   *sale_type = SPI_getvalue(tup, td, first + 1);
	Datum		created = SPI_getbinval(tup, td, first + 2, &ncreated);
	Datum		amount = SPI_getbinval(tup, td, first + 3, &namount);
	Datum		tax = SPI_getbinval(tup, td, first + 4, &ntax);
	char	   *currency = SPI_getvalue(tup, td, first + 5);
	char	   *err;

	(void) isnull;
	if (!namount)
		amount = datumCopy(amount, false, -1);
	if (!ntax)
		tax = datumCopy(tax, false, -1);
	err = ct_tx_from_outbox(tx, nloc, loc, sale_type, ncreated,
							ncreated ? 0 : DatumGetTimestampTz(created),
							namount, amount, ntax, tax, currency, reference);
	if (err)
		err = pstrdup(err);
	MemoryContextSwitchTo(old);
	return err;
}

/* Claim Connecteam work: posts, and deletes whose earlier post is settled. */
static void
claim_connecteam(Cycle *c, int limit)
{
	const char *sql =
		"WITH c AS (SELECT o.id" CLAIM_COMMON
		" AND o.kind IN ('ct_post', 'ct_delete', 'ct_window')"
		" AND (o.kind = 'ct_post' OR NOT EXISTS (SELECT 1 FROM sales_api.outbox p"
		"      WHERE p.capture_id = o.capture_id AND p.sale_key = o.sale_key AND p.kind = 'ct_post'"
		"      AND p.id < o.id AND p.state IN ('pending', 'failed', 'in_flight')))"
		" ORDER BY o.id LIMIT $1 FOR UPDATE OF o SKIP LOCKED)"
		" UPDATE sales_api.outbox o SET state = 'in_flight', attempts = o.attempts + 1,"
		"   lease_until = now() + $2 * interval '1 ms',"
		/* a delete removes the version the vendor held when it was first claimed */
		"   vendor_ref = CASE WHEN o.kind <> 'ct_delete' OR o.vendor_ref IS NOT NULL THEN o.vendor_ref"
		/* the post it undoes went out on its own: its transactionId; settled by a window: nothing left */
		"     WHEN o.target_post_id IS NOT NULL THEN (SELECT CASE WHEN p.ambiguous THEN NULL ELSE p.vendor_ref END"
		"       FROM sales_api.outbox p WHERE p.id = o.target_post_id)"
		"     ELSE (SELECT cs.transaction_id FROM sales_api.connecteam_sent cs"
		"       WHERE cs.capture_id = o.capture_id AND cs.sale_key = o.sale_key) END"
		" FROM c WHERE o.id = c.id"
		" RETURNING o.id, o.capture_id, o.kind, o.attempts, o.ambiguous, o.sale_key, o.location_id,"
		"   o.sale_type, o.created_at, o.final_sale_amount, o.tax_amount, o.currency,"
		"   o.vendor_ref,"
		"   extract(epoch FROM o.window_start)::bigint, extract(epoch FROM o.window_end)::bigint";
	Oid			types[2] = {INT4OID, INT4OID};
	Datum		vals[2] = {Int32GetDatum(limit), Int32GetDatum(sales_api_lease_ms)};
	int			ret;
	uint64		n;

	ret = SPI_execute_with_args(sql, 2, types, vals, NULL, false, 0);
	if (ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim Connecteam outbox items");
	n = SPI_processed;
	if ((int) n >= limit)
		c->more = true;
	c->items = repalloc(c->items, sizeof(OItem) * (c->nitems + n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		OItem	   *it = &c->items[c->nitems++];
		bool		isnull;
		char	   *kind;

		memset(it, 0, sizeof(OItem));
		it->id = spi_int64(tup, td, 1, &isnull);
		it->cap = capture_find(c, (int) spi_int64(tup, td, 2, &isnull));
		kind = SPI_getvalue(tup, td, 3);
		it->kind = strcmp(kind, "ct_post") == 0 ? K_CT_POST :
			strcmp(kind, "ct_window") == 0 ? K_CT_WINDOW : K_CT_DELETE;
		it->attempts = (int) spi_int64(tup, td, 4, &isnull);
		it->ambiguous = DatumGetBool(SPI_getbinval(tup, td, 5, &isnull));
		it->sale_key = spi_str(tup, td, 6, c->cxt);
		it->transaction_id = spi_str(tup, td, 13, c->cxt);
		it->retry_after_s = -1;
		if (it->kind == K_CT_WINDOW)
		{
			bool		n1,
						n2,
						n3;

			it->txn.location_id = spi_int64(tup, td, 7, &n1);
			it->window_start = spi_int64(tup, td, 14, &n2);
			it->window_end = spi_int64(tup, td, 15, &n3);
			if (n1 || n2 || n3 || it->window_end < it->window_start)
			{
				it->outcome = O_DEAD;
				it->error = "a window repair needs a location_id and window_start <= window_end";
			}
		}
		else if (it->kind == K_CT_POST)
		{
			char	   *err = tx_from_spi(&it->txn, c->cxt, tup, td, 7, it->sale_key);

			if (err)
			{
				it->outcome = O_DEAD;
				it->error = err;
			}
			else
				it->txn_valid = true;
		}
	}
}

/*
 * A dirty slot's totals from the recomputed rows of its unit and day
 * (currency, sales type, slot, net, gross, checks, guests); a slot with no
 * sale left gets zeros, which replace what Mapal holds.
 */
static void
slot_set_totals(OItem *it, MemoryContext cxt, SPITupleTable *tt, uint64 nrows)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);

	it->slot.net = it->slot.gross = DirectFunctionCall1(int8_numeric, Int64GetDatum(0));
	it->slot.checks = it->slot.guests = 0;
	for (uint64 r = 0; r < nrows; r++)
	{
		HeapTuple	tup = tt->vals[r];
		bool		isnull;
		char	   *cur = SPI_getvalue(tup, tt->tupdesc, 1);
		char	   *typ = SPI_getvalue(tup, tt->tupdesc, 2);
		Datum		sl = SPI_getbinval(tup, tt->tupdesc, 3, &isnull);
		Datum		d;

		if (isnull || cur == NULL || typ == NULL ||
			strcmp(cur, it->slot.currency) != 0 || strcmp(typ, it->slot.sales_type) != 0 ||
			DatumGetTimestamp(sl) != it->slot.slot)
			continue;
		d = SPI_getbinval(tup, tt->tupdesc, 4, &isnull);
		if (!isnull)
			it->slot.net = datumCopy(d, false, -1);
		d = SPI_getbinval(tup, tt->tupdesc, 5, &isnull);
		if (!isnull)
			it->slot.gross = datumCopy(d, false, -1);
		it->slot.checks = spi_int64(tup, tt->tupdesc, 6, &isnull);
		it->slot.guests = spi_int64(tup, tt->tupdesc, 7, &isnull);
		break;
	}
	MemoryContextSwitchTo(old);
}

#define MAPAL_CLAIMED \
	" UPDATE sales_api.outbox o SET state = 'in_flight', attempts = o.attempts + 1," \
	"   lease_until = now() + $2 * interval '1 ms'" \
	" FROM c WHERE o.id = c.id" \
	" RETURNING o.id, o.capture_id, o.attempts, o.unit_id, o.business_day, o.currency_id," \
	"   o.sales_type_id, o.slot_start"

/* The Mapal items of an UPDATE ... RETURNING MAPAL_CLAIMED, into the cycle. */
static void
mapal_take(Cycle *c, uint64 n)
{
	c->items = repalloc(c->items, sizeof(OItem) * (c->nitems + n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		OItem	   *it = &c->items[c->nitems++];
		bool		nu,
					nd,
					nc,
					nt,
					ns;
		Datum		d;

		memset(it, 0, sizeof(OItem));
		it->kind = K_MAPAL_SLOT;
		it->id = spi_int64(tup, td, 1, &nu);
		it->cap = capture_find(c, (int) spi_int64(tup, td, 2, &nu));
		it->attempts = (int) spi_int64(tup, td, 3, &nu);
		it->retry_after_s = -1;
		it->slot.unit = spi_int64(tup, td, 4, &nu);
		d = SPI_getbinval(tup, td, 5, &nd);
		it->slot.day = nd ? 0 : DatumGetDateADT(d);
		it->slot.currency = spi_str(tup, td, 6, c->cxt);
		nc = (it->slot.currency == NULL);
		it->slot.sales_type = spi_str(tup, td, 7, c->cxt);
		nt = (it->slot.sales_type == NULL);
		d = SPI_getbinval(tup, td, 8, &ns);
		it->slot.slot = ns ? 0 : DatumGetTimestamp(d);
		if (nu || nd || nc || nt || ns)
		{
			it->outcome = O_DEAD;
			it->error = MemoryContextStrdup(c->cxt,
											"the capture mapping gave a NULL unit_id, business day, currency_id, sales_type_id or sold_at");
		}
		else if (it->slot.unit <= 0)
		{
			it->outcome = O_DEAD;
			it->error = MemoryContextStrdup(c->cxt, "unit_id must be a positive integer");
		}
		else
			it->slot_valid = true;
	}
}

/*
 * Claim Mapal dirty slots and recompute their totals from the POS table.
 *
 * Whole (unit, business day) groups, so that each goes out in one request:
 * the first batch_size slots in (capture, unit, day) order, then, when the
 * batch was cut, the rest of its last unit-day (pending markers, through
 * outbox_mapal_dirty_idx).  A marker locked by a POS transaction that has
 * not committed yet is skipped (SKIP LOCKED) and claimed in a later cycle.
 */
static void
claim_mapal(Cycle *c, int limit)
{
	const char *sql =
		"WITH c AS (SELECT o.id" CLAIM_COMMON
		" AND o.kind = 'mapal_slot'"
		" ORDER BY o.capture_id, o.unit_id, o.business_day, o.id LIMIT $1 FOR UPDATE OF o SKIP LOCKED)"
		MAPAL_CLAIMED;
	const char *rest_sql =
		"WITH c AS (SELECT o.id FROM sales_api.outbox o"
		" WHERE o.kind = 'mapal_slot' AND o.state = 'pending'"
		"   AND o.capture_id = $3 AND o.unit_id = $4 AND o.business_day = $5"
		"   AND coalesce(o.next_attempt_at, '-infinity') <= now()"
		" FOR UPDATE OF o SKIP LOCKED)"
		MAPAL_CLAIMED;
	Oid			types[5] = {INT4OID, INT4OID, INT4OID, INT8OID, DATEOID};
	Datum		vals[5] = {Int32GetDatum(limit), Int32GetDatum(sales_api_lease_ms), 0, 0, 0};
	int			ret;
	uint64		n;
	int			first;

	ret = SPI_execute_with_args(sql, 2, types, vals, NULL, false, 0);
	if (ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim Mapal outbox items");
	n = SPI_processed;
	first = c->nitems;
	mapal_take(c, n);
	if ((int) n >= limit)
	{
		OItem	   *last = NULL;

		c->more = true;
		/* the last unit-day in claim order: the batch may have cut it */
		for (int i = first; i < c->nitems; i++)
		{
			OItem	   *it = &c->items[i];

			if (!it->slot_valid)
				continue;
			if (last == NULL || it->cap->id > last->cap->id ||
				(it->cap->id == last->cap->id &&
				 (it->slot.unit > last->slot.unit ||
				  (it->slot.unit == last->slot.unit && it->slot.day > last->slot.day))))
				last = it;
		}
		if (last != NULL)
		{
			vals[2] = Int32GetDatum(last->cap->id);
			vals[3] = Int64GetDatum(last->slot.unit);
			vals[4] = DateADTGetDatum(last->slot.day);
			ret = SPI_execute_with_args(rest_sql, 5, types, vals, NULL, false, 0);
			if (ret != SPI_OK_UPDATE_RETURNING)
				elog(ERROR, "could not claim Mapal outbox items");
			mapal_take(c, SPI_processed);
		}
	}

	/* totals per (capture, unit, day): one query each */
	for (int i = first; i < c->nitems; i++)
	{
		OItem	   *it = &c->items[i];
		Oid			rtypes[2] = {INT8OID, DATEOID};
		Datum		rvals[2];
		bool		ok;
		char	   *error = NULL;

		if (!it->slot_valid || it->totals_loaded)
			continue;
		rvals[0] = Int64GetDatum(it->slot.unit);
		rvals[1] = DateADTGetDatum(it->slot.day);
		/*
		 * A fresh snapshot (mapping_execute), taken after the claim, so every
		 * sale whose dirty marker was just claimed is in the totals.
		 */
		ok = mapping_try(c, it->cap, MS_MAPAL_TOTALS, 2, rtypes, rvals, &error);
		for (int j = i; j < c->nitems; j++)
		{
			OItem	   *o = &c->items[j];

			if (!o->slot_valid || o->cap != it->cap || o->slot.unit != it->slot.unit ||
				o->slot.day != it->slot.day)
				continue;
			o->totals_loaded = true;
			if (ok)
				slot_set_totals(o, c->cxt, SPI_tuptable, SPI_processed);
			else
			{
				o->slot_valid = false;
				o->outcome = O_RETRY;
				o->error = psprintf("could not compute the slot totals from the POS table: %s", error);
			}
		}
	}
}

/*
 * Staged Connecteam sales become outbox items, in this transaction: claimed
 * in the same one (at most STAGE_ROWS_PER_CLAIM staged rows: a backlog after
 * a long stop is taken in steps), or, in the record transaction, every one a
 * replaced window may have carried.  Rows a POS transaction is expanding
 * itself (an UPDATE or DELETE of captured sales) are skipped, never waited
 * for.
 */
#define STAGE_ROWS_PER_CLAIM 20000

static void
stage_expand(Cycle *c, bool all)
{
	Datum		args[3] = {0, 0, Int32GetDatum(STAGE_ROWS_PER_CLAIM)};
	int64		n;

	n = outbox_stage_expand(false, args, all ? "nnn" : "nn ");

	/*
	 * As many items as the row limit: staged rows may be left (a row makes
	 * at least one item), so go again at once.  Rows skipped because a POS
	 * transaction holds them never make the worker spin.
	 */
	if (!all && n >= STAGE_ROWS_PER_CLAIM)
		c->more = true;
}

static void
claim(Cycle *c)
{
	ListCell   *lc;

	pgstat_report_activity(STATE_RUNNING, "sales_api worker: claiming outbox items");
	stage_expand(c, false);
	expire_leases();
	purge_sent();
	load_captures(c);
	c->items = MemoryContextAlloc(c->cxt, sizeof(OItem));
	claim_connecteam(c, sales_api_batch_size);
	claim_mapal(c, sales_api_batch_size);

	/* credentials of the captures that have work */
	foreach(lc, c->captures)
	{
		Capture    *cap = lfirst(lc);

		for (int i = 0; i < c->nitems; i++)
			if (c->items[i].cap == cap)
			{
				capture_resolve(cap, c->cxt);
				break;
			}
	}

	/* windows to replace: ambiguous posts (replace_window policy), repairs */
	for (int i = 0; i < c->nitems; i++)
	{
		OItem	   *it = &c->items[i];
		Window	   *w = NULL;
		ListCell   *wc;
		int64		start,
					end;

		if (it->outcome != O_NONE)
			continue;
		if (it->kind == K_CT_WINDOW)
		{
			/* an operator's repair: the window is given */
			start = it->window_start;
			end = it->window_end;
		}
		else if (it->kind == K_CT_POST && it->ambiguous)
			start = end = it->txn.created_at;
		else
			continue;
		if (it->kind == K_CT_POST && sales_api_ambiguous_policy == AMBIGUOUS_PARK)
		{
			it->outcome = O_UNKNOWN;
			it->error = "the vendor may or may not have stored this sale (ambiguous_policy = park)";
			continue;
		}
		foreach(wc, c->windows)
		{
			Window	   *x = lfirst(wc);

			if (x->cap == it->cap && x->location_id == it->txn.location_id)
				w = x;
		}
		if (w == NULL)
		{
			w = MemoryContextAllocZero(c->cxt, sizeof(Window));
			w->cap = it->cap;
			w->location_id = it->txn.location_id;
			w->start_epoch = start;
			w->end_epoch = end;
			c->windows = list_append_in(c->cxt, c->windows, w);
		}
		w->start_epoch = Min(w->start_epoch, start);
		w->end_epoch = Max(w->end_epoch, end);
		w->items = list_append_in(c->cxt, w->items, it);
		it->outcome = O_AMBIGUOUS;
	}
	/*
	 * A post claimed in this cycle whose sale falls in a window is carried by
	 * the window's repost; sending it as well would store it twice.
	 */
	for (int i = 0; i < c->nitems; i++)
	{
		OItem	   *it = &c->items[i];
		ListCell   *wc;

		if (it->kind != K_CT_POST || it->outcome != O_NONE || !it->txn_valid)
			continue;
		foreach(wc, c->windows)
		{
			Window	   *w = lfirst(wc);

			if (w->cap == it->cap && w->location_id == it->txn.location_id &&
				it->txn.created_at >= w->start_epoch && it->txn.created_at <= w->end_epoch)
			{
				w->items = list_append_in(c->cxt, w->items, it);
				it->outcome = O_AMBIGUOUS;
				break;
			}
		}
	}

	foreach(lc, c->windows)
	{
		Window	   *w = lfirst(lc);
		Oid			types[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
		Datum		vals[3];
		char	   *error = NULL;

		vals[0] = Int64GetDatum(w->location_id);
		vals[1] = TimestampTzGetDatum(time_t_to_timestamptz((pg_time_t) w->start_epoch));
		/*
		 * The window holds every sale whose Unix second (what Connecteam
		 * stores) is in [start, end]; the statement reads [$2, $3), so $3
		 * is the second after the end.
		 */
		vals[2] = TimestampTzGetDatum(time_t_to_timestamptz((pg_time_t) (w->end_epoch + 1)));
		if (!mapping_try(c, w->cap, MS_CT_WINDOW, 3, types, vals, &error))
		{
			/* nothing is deleted at the vendor: its items stay ambiguous */
			w->unread = true;
			w->ok = false;
			w->error = psprintf("could not read the window's local sales: %s", error);
			continue;
		}
		w->nlocal = 0;
		w->local = MemoryContextAllocZero(c->cxt, sizeof(CtTx) * (SPI_processed + 1));
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	td = SPI_tuptable->tupdesc;
			char	   *err = tx_from_spi(&w->local[w->nlocal], c->cxt, tup, td, 2,
										  spi_str(tup, td, 1, c->cxt));

			if (err == NULL)
				w->nlocal++;
		}
	}
}

/* ------------------------------------------------------------------------
 * Outcomes
 * ------------------------------------------------------------------------
 */
static void
set_outcome_from_request(OItem *it, const HttpRequest *req, bool non_idempotent)
{
	it->http_status = (int) req->status;
	if (vendor_ok(req))
	{
		it->outcome = O_SENT;
		return;
	}
	if (!req->done)
	{
		it->error = psprintf("%s", http_transport_error(req));
		if (non_idempotent && req->maybe_processed)
		{
			it->outcome = (sales_api_ambiguous_policy == AMBIGUOUS_PARK) ? O_UNKNOWN : O_AMBIGUOUS;
			if (it->outcome == O_UNKNOWN)
				it->error = psprintf("outcome unknown: the request failed after it was sent (%s); the vendor may or may not hold this sale; parked for an operator (sales_api.ambiguous_policy = park)",
									 http_transport_error(req));
			if (worker_shared)
			{
				SpinLockAcquire(&worker_shared->mutex);
				worker_shared->ambiguous++;
				SpinLockRelease(&worker_shared->mutex);
			}
		}
		else
			it->outcome = O_RETRY;
		return;
	}
	it->error = psprintf("HTTP %ld: %s", req->status, vendor_error_message(req));
	if (req->status >= 300 && req->status < 400)
		it->outcome = O_DEAD;
	else if (http_status_retryable(req->status) || req->status == 401 || req->status == 403 ||
			 req->status == 408)
	{
		it->outcome = O_RETRY;
		it->retry_after_s = req->retry_after_s;
		if (req->status == 429 && it->retry_after_s < 0 && req->rl_minute_reset > 0)
		{
			int64		s = req->rl_minute_reset - (int64) time(NULL);

			it->retry_after_s = (int) Max(Min(s, 3600), 0);
		}
	}
	else
		it->outcome = O_DEAD;
}

static void
note_requests(HttpRequest **reqs, int n)
{
	for (int i = 0; i < n; i++)
		if (reqs[i]->done || reqs[i]->curl_code != 0)
			worker_note_request(reqs[i]->elapsed_ms, reqs[i]->status);
}

/* ------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------
 */

/* Connecteam posts of one capture: full requests of 100, rate-paced. */
static void
send_ct_posts(Cycle *c, Capture *cap)
{
	OItem	  **batch = palloc(sizeof(OItem *) * c->nitems);
	int			nbatch = 0;
	HttpRequest **reqs;
	int			nreqs;
	RateLimitRun *run;
	CtTx	   *txs;
	CtTxResult *res;

	for (int i = 0; i < c->nitems; i++)
	{
		OItem	   *it = &c->items[i];

		if (it->cap == cap && it->kind == K_CT_POST && it->outcome == O_NONE)
			batch[nbatch++] = it;
	}
	if (nbatch == 0)
		return;
	nreqs = (nbatch + CT_MAX_ITEMS - 1) / CT_MAX_ITEMS;
	reqs = palloc(sizeof(HttpRequest *) * nreqs);
	txs = palloc(sizeof(CtTx) * nbatch);
	for (int k = 0; k < nbatch; k++)
		txs[k] = batch[k]->txn;
	for (int r = 0; r < nreqs; r++)
	{
		int			from = r * CT_MAX_ITEMS;

		reqs[r] = ct_build_post(cap->srv, txs + from, Min(CT_MAX_ITEMS, nbatch - from));
	}

	pgstat_report_activity(STATE_RUNNING, "sales_api worker: posting Connecteam transactions");
	run = ratelimit_perform_all(cap->srv, reqs, nreqs, false);
	note_requests(reqs, nreqs);
	res = palloc0(sizeof(CtTxResult) * nbatch);

	for (int r = 0; r < nreqs; r++)
	{
		int			from = r * CT_MAX_ITEMS;
		int			n = Min(CT_MAX_ITEMS, nbatch - from);

		if (run->not_sent[r])
		{
			for (int k = 0; k < n; k++)
			{
				batch[from + k]->outcome = O_NOT_SENT;
				batch[from + k]->error = ratelimit_describe(cap->srv, run);
				batch[from + k]->retry_after_s = (int) Max(0, (run->retry_at - GetCurrentTimestamp()) / USECS_PER_SEC);
			}
			continue;
		}
		if (vendor_ok(reqs[r]))
		{
			ct_tx_success(reqs[r], txs, res, from, n);
			for (int k = 0; k < n; k++)
			{
				batch[from + k]->outcome = O_SENT;
				batch[from + k]->http_status = (int) reqs[r]->status;
				batch[from + k]->vendor_ref = res[from + k].transaction_id;
				batch[from + k]->error = res[from + k].error;
			}
			continue;
		}
		for (int k = 0; k < n; k++)
			set_outcome_from_request(batch[from + k], reqs[r], true);
	}
}

/* Connecteam deletes of one capture, by the transactionId the vendor holds. */
static void
send_ct_deletes(Cycle *c, Capture *cap)
{
	OItem	  **todo = palloc(sizeof(OItem *) * c->nitems);
	HttpRequest **reqs = palloc(sizeof(HttpRequest *) * c->nitems);
	int			n = 0;
	RateLimitRun *run;

	for (int i = 0; i < c->nitems; i++)
	{
		OItem	   *it = &c->items[i];

		if (it->cap != cap || it->kind != K_CT_DELETE || it->outcome != O_NONE)
			continue;
		if (it->transaction_id == NULL)
		{
			/* the sale never reached the vendor, or was deleted by a window: nothing to do */
			it->outcome = O_SENT;
			it->error = "no transactionId is known for this sale: nothing to delete";
			continue;
		}
		todo[n] = it;
		reqs[n++] = ct_build_delete(cap->srv, it->transaction_id);
	}
	if (n == 0)
		return;
	pgstat_report_activity(STATE_RUNNING, "sales_api worker: deleting Connecteam transactions");
	run = ratelimit_perform_all(cap->srv, reqs, n, true);
	note_requests(reqs, n);
	for (int i = 0; i < n; i++)
	{
		if (run->not_sent[i])
		{
			todo[i]->outcome = O_NOT_SENT;
			todo[i]->error = ratelimit_describe(cap->srv, run);
			continue;
		}
		if (reqs[i]->done && reqs[i]->status == 404)
		{
			todo[i]->outcome = O_SENT;
			todo[i]->http_status = 404;
			todo[i]->error = "the vendor no longer had this transaction";
			continue;
		}
		set_outcome_from_request(todo[i], reqs[i], false);
		todo[i]->vendor_ref = todo[i]->transaction_id;
	}
}

/*
 * Settle ambiguous posts: delete the location's window at the vendor, then
 * post every local sale of the window again.  Both steps are safe to repeat,
 * so a failure leaves the items ambiguous for the next cycle.
 */
static void
send_ct_windows(Cycle *c, Capture *cap)
{
	ListCell   *lc;

	foreach(lc, c->windows)
	{
		Window	   *w = lfirst(lc);
		HttpRequest *del;
		HttpRequest **posts;
		RateLimitRun *run;
		int			nposts;
		CtTxResult *wres;

		if (w->cap != cap || w->unread)
			continue;
		pgstat_report_activity(STATE_RUNNING, "sales_api worker: replacing a Connecteam time window");
		del = ct_build_delete_range(cap->srv, w->location_id, w->start_epoch, w->end_epoch);
		run = ratelimit_perform_all(cap->srv, &del, 1, true);
		note_requests(&del, 1);
		if (run->not_sent[0] || !vendor_ok(del))
		{
			w->ok = false;
			w->http_status = (int) del->status;
			w->error = run->not_sent[0] ? ratelimit_describe(cap->srv, run) :
				(del->done ? psprintf("window delete: HTTP %ld: %s", del->status, vendor_error_message(del))
				 : psprintf("window delete: %s", http_transport_error(del)));
			continue;
		}
		nposts = (w->nlocal + CT_MAX_ITEMS - 1) / CT_MAX_ITEMS;
		posts = palloc(sizeof(HttpRequest *) * Max(nposts, 1));
		w->ids = palloc0(sizeof(char *) * (w->nlocal + 1));
		wres = palloc0(sizeof(CtTxResult) * (w->nlocal + 1));
		for (int r = 0; r < nposts; r++)
		{
			int			from = r * CT_MAX_ITEMS;

			posts[r] = ct_build_post(cap->srv, w->local + from, Min(CT_MAX_ITEMS, w->nlocal - from));
		}
		w->ok = true;
		if (nposts > 0)
		{
			run = ratelimit_perform_all(cap->srv, posts, nposts, false);
			note_requests(posts, nposts);
			for (int r = 0; r < nposts; r++)
			{
				int			from = r * CT_MAX_ITEMS;
				int			n = Min(CT_MAX_ITEMS, w->nlocal - from);

				if (!run->not_sent[r] && vendor_ok(posts[r]))
				{
					ct_tx_success(posts[r], w->local, wres, from, n);
					for (int k = 0; k < n; k++)
						w->ids[from + k] = wres[from + k].transaction_id;
				}
				else
				{
					w->ok = false;
					w->http_status = (int) posts[r]->status;
					w->error = run->not_sent[r] ? ratelimit_describe(cap->srv, run) :
						(posts[r]->done ? psprintf("window repost: HTTP %ld: %s", posts[r]->status,
												   vendor_error_message(posts[r]))
						 : psprintf("window repost: %s", http_transport_error(posts[r])));
				}
			}
		}
		if (worker_shared)
		{
			SpinLockAcquire(&worker_shared->mutex);
			worker_shared->retries++;
			SpinLockRelease(&worker_shared->mutex);
		}
	}
}

/* Mapal: one request per (unit, business day) with every dirty slot. */
static void
send_mapal(Cycle *c, Capture *cap)
{
	List	   *groups = NIL;	/* of List * of OItem * */
	HttpRequest **reqs;
	int			ngroups;
	int			g = 0;
	ListCell   *lc;

	for (int i = 0; i < c->nitems; i++)
	{
		OItem	   *it = &c->items[i];
		List	   *grp = NIL;

		if (it->cap != cap || it->kind != K_MAPAL_SLOT || it->outcome != O_NONE)
			continue;
		foreach(lc, groups)
		{
			OItem	   *head = linitial((List *) lfirst(lc));

			if (head->slot.unit == it->slot.unit && head->slot.day == it->slot.day)
			{
				grp = lfirst(lc);
				lfirst(lc) = lappend(grp, it);
				break;
			}
		}
		if (grp == NIL)
			groups = lappend(groups, list_make1(it));
	}
	ngroups = list_length(groups);
	if (ngroups == 0)
		return;
	reqs = palloc(sizeof(HttpRequest *) * ngroups);
	foreach(lc, groups)
	{
		List	   *grp = lfirst(lc);
		MapalSale **slots = palloc(sizeof(MapalSale *) * list_length(grp));
		int			n = 0;
		ListCell   *ic;

		/* a slot claimed twice (failed and pending markers) is sent once */
		foreach(ic, grp)
		{
			OItem	   *it = lfirst(ic);
			bool		dup = false;

			for (int k = 0; k < n; k++)
				if (mapal_same_slot(slots[k], &it->slot))
					dup = true;
			if (!dup)
				slots[n++] = &it->slot;
		}
		reqs[g++] = mapal_build_request(cap->srv, slots, n);
	}

	pgstat_report_activity(STATE_RUNNING, "sales_api worker: sending Mapal real-time sales");
	vendor_perform_all(cap->srv, reqs, ngroups, sales_api_max_concurrency);
	note_requests(reqs, ngroups);
	g = 0;
	foreach(lc, groups)
	{
		ListCell   *ic;

		foreach(ic, (List *) lfirst(lc))
			set_outcome_from_request((OItem *) lfirst(ic), reqs[g], false);
		g++;
	}
}

static void
send_all(Cycle *c)
{
	ListCell   *lc;

	foreach(lc, c->captures)
	{
		Capture    *cap = lfirst(lc);
		char	   *auth_error = NULL;

		if (cap->srv == NULL || !auth_ready(cap->srv, &auth_error))
		{
			const char *msg = cap->srv ? auth_error : cap->srv_error;

			for (int i = 0; i < c->nitems; i++)
				if (c->items[i].cap == cap &&
					(c->items[i].outcome == O_NONE || c->items[i].outcome == O_AMBIGUOUS))
				{
					c->items[i].outcome = O_RETRY;
					c->items[i].error = (char *) (msg ? msg : "server unavailable");
				}
			continue;
		}
		if (cap->vendor == VENDOR_CONNECTEAM)
		{
			/* an update's old version goes before its new one is posted */
			send_ct_windows(c, cap);
			send_ct_deletes(c, cap);
			send_ct_posts(c, cap);
		}
		else
			send_mapal(c, cap);
	}
}

/* ------------------------------------------------------------------------
 * Recording
 * ------------------------------------------------------------------------
 */
static int64
backoff_ms(int attempts, int retry_after_s)
{
	double		d = (double) sales_api_retry_base_ms * pow(2.0, Max(attempts - 1, 0));

	d = Min(d, (double) sales_api_retry_max_ms);
	d = d * (0.5 + 0.5 * pg_prng_double(&pg_global_prng_state));
	if (retry_after_s >= 0)
		d = Max(d, (double) retry_after_s * 1000.0);
	return (int64) d;
}

static const char *
outcome_state(OItem *it)
{
	switch (it->outcome)
	{
		case O_SENT:
			return "sent";
		case O_DEAD:
			return "dead";
		case O_UNKNOWN:
			return "unknown";
		case O_RETRY:
		case O_NOT_SENT:
		case O_AMBIGUOUS:
		case O_NONE:
			break;
	}
	return "failed";
}

/*
 * The transactionIds the vendor holds for sales (their latest versions),
 * gathered and then written to connecteam_sent in one INSERT ... SELECT FROM
 * unnest().  A sale given twice keeps its last id.
 */
typedef struct Remember
{
	int			n;
	Datum	   *caps;
	Datum	   *keys;
	Datum	   *tids;
	Datum	   *locs;
	Datum	   *times;
	Datum	   *amounts;
} Remember;

static void
remember_init(Remember *r, int max)
{
	r->n = 0;
	r->caps = palloc(sizeof(Datum) * (max + 1));
	r->keys = palloc(sizeof(Datum) * (max + 1));
	r->tids = palloc(sizeof(Datum) * (max + 1));
	r->locs = palloc(sizeof(Datum) * (max + 1));
	r->times = palloc(sizeof(Datum) * (max + 1));
	r->amounts = palloc(sizeof(Datum) * (max + 1));
}

static void
remember_add(Remember *r, int capture_id, const char *sale_key, const char *transaction_id,
			 const CtTx *tx)
{
	r->caps[r->n] = Int32GetDatum(capture_id);
	r->keys[r->n] = CStringGetTextDatum(sale_key);
	r->tids[r->n] = CStringGetTextDatum(transaction_id);
	r->locs[r->n] = Int64GetDatum(tx->location_id);
	r->times[r->n] = Int64GetDatum(tx->created_at);
	r->amounts[r->n] = tx->final_amount;
	r->n++;
}

/*
 * Write what was gathered: the transactionIds to connecteam_sent and, for a
 * replaced window (covered), the waiting posts of the very versions the
 * window carried marked sent.  One statement each, from the same arrays.
 */
static void
remember_flush(Remember *r, bool covered)
{
	Oid			types[6] = {INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, NUMERICARRAYOID};
	Datum		vals[6];

	if (r->n == 0)
		return;
	vals[0] = PointerGetDatum(construct_array(r->caps, r->n, INT4OID, 4, true, TYPALIGN_INT));
	vals[1] = PointerGetDatum(construct_array(r->keys, r->n, TEXTOID, -1, false, TYPALIGN_INT));
	vals[2] = PointerGetDatum(construct_array(r->tids, r->n, TEXTOID, -1, false, TYPALIGN_INT));
	vals[3] = PointerGetDatum(construct_array(r->locs, r->n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	vals[4] = PointerGetDatum(construct_array(r->times, r->n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	vals[5] = PointerGetDatum(construct_array(r->amounts, r->n, NUMERICOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_with_args("INSERT INTO sales_api.connecteam_sent AS s"
							  " (capture_id, sale_key, transaction_id, location_id, created_at, final_sale_amount)"
							  " SELECT DISTINCT ON (c, k) c, k, t, l, to_timestamp(ca), a"
							  "   FROM unnest($1, $2, $3, $4, $5, $6) WITH ORDINALITY AS u(c, k, t, l, ca, a, ord)"
							  "  ORDER BY c, k, ord DESC"
							  " ON CONFLICT (capture_id, sale_key) DO UPDATE SET transaction_id = excluded.transaction_id,"
							  " location_id = excluded.location_id, created_at = excluded.created_at,"
							  " final_sale_amount = excluded.final_sale_amount, sent_at = now()",
							  6, types, vals, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record Connecteam transactionIds");
	/* Connecteam keeps Unix seconds: a local time is compared by its second */
	if (covered &&
		SPI_execute_with_args("UPDATE sales_api.outbox o SET state = 'sent', sent_at = now(), vendor_ref = u.t,"
							  " last_error = 'covered by a replaced time window'"
							  " FROM unnest($1, $2, $3, $4, $5, $6) AS u(c, k, t, l, ca, a)"
							  " WHERE o.capture_id = u.c AND o.sale_key = u.k AND o.kind = 'ct_post'"
							  " AND o.state IN ('pending', 'failed') AND o.location_id = u.l"
							  " AND date_trunc('second', o.created_at) = to_timestamp(u.ca)"
							  " AND o.final_sale_amount = u.a",
							  6, types, vals, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the posts a replaced window carried");
	r->n = 0;
}

/* Every post of the cycle the vendor stored: one statement per cycle. */
static void
remember_posts(Cycle *c)
{
	Remember	r;

	remember_init(&r, c->nitems);
	for (int i = 0; i < c->nitems; i++)
	{
		OItem	   *it = &c->items[i];

		if (it->kind == K_CT_POST && it->outcome == O_SENT && it->vendor_ref && it->sale_key)
			remember_add(&r, it->cap->id, it->sale_key, it->vendor_ref, &it->txn);
	}
	remember_flush(&r, false);
}

static void
record(Cycle *c)
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
	Datum	   *attempt_back = palloc(sizeof(Datum) * (n + 1));
	Datum	   *ambig = palloc(sizeof(Datum) * (n + 1));
	uint64		nsent = 0,
				nfailed = 0,
				ndead = 0,
				nretry = 0;
	ListCell   *lc;

	pgstat_report_activity(STATE_RUNNING, "sales_api worker: recording outcomes");

	/*
	 * A window's local sales were read after the claim: a staged sale among
	 * them is made an item here, so that "covered by a replaced time window"
	 * below finds it and it is never posted a second time.
	 */
	if (c->windows != NIL)
		stage_expand(c, true);

	/* settle windows: their items are sent when the window went through */
	foreach(lc, c->windows)
	{
		Window	   *w = lfirst(lc);
		ListCell   *ic;

		foreach(ic, w->items)
		{
			OItem	   *it = lfirst(ic);

			if (w->ok)
			{
				/*
				 * Whatever this post stored is gone with the window; the sale's
				 * current version was reposted (connecteam_sent has its id).
				 * settled_by_window keeps "ambiguous" set, which tells a later
				 * delete of this version that there is nothing left to delete.
				 */
				it->outcome = O_SENT;
				it->settled_by_window = true;
				it->vendor_ref = NULL;
				it->error = "settled by replacing the location's time window at the vendor";
			}
			else
			{
				it->outcome = O_AMBIGUOUS;
				it->error = w->error;
				it->http_status = w->http_status;
			}
		}
	}

	for (int i = 0; i < n; i++)
	{
		OItem	   *it = &c->items[i];
		bool		give_up;

		if (it->outcome == O_NONE)
		{
			it->outcome = O_RETRY;
			it->error = "not sent in this cycle";
		}
		give_up = (it->outcome == O_RETRY && it->attempts >= sales_api_max_attempts);
		if (give_up)
		{
			it->outcome = O_DEAD;
			it->error = psprintf("gave up after %d attempts: %s", it->attempts,
								 it->error ? it->error : "unknown error");
		}
		ids[i] = Int64GetDatum(it->id);
		states[i] = CStringGetTextDatum(outcome_state(it));
		statuses[i] = Int32GetDatum(it->http_status);
		status_nulls[i] = (it->http_status == 0);
		refs[i] = it->vendor_ref ? CStringGetTextDatum(it->vendor_ref) : (Datum) 0;
		ref_nulls[i] = (it->vendor_ref == NULL);
		errors[i] = it->error ? CStringGetTextDatum(it->error) : (Datum) 0;
		error_nulls[i] = (it->error == NULL);
		/*
		 * An ambiguous post may still be on its way into the vendor (a slow
		 * vendor finishes what we gave up on): the window is replaced only
		 * after sales_api.ambiguous_settle_time, so a late original cannot
		 * land after the repost.
		 */
		delays[i] = Int64GetDatum((it->outcome == O_AMBIGUOUS) ? (int64) sales_api_ambiguous_settle_ms :
								  (it->outcome == O_NOT_SENT) ?
								  (int64) Max(it->retry_after_s, 1) * 1000 :
								  backoff_ms(it->attempts, it->retry_after_s));
		/* a request the rate budget kept back spent no attempt */
		attempt_back[i] = Int32GetDatum(it->outcome == O_NOT_SENT ? 1 : 0);
		ambig[i] = BoolGetDatum(it->outcome == O_AMBIGUOUS || it->settled_by_window);
		switch (it->outcome)
		{
			case O_SENT:
				nsent++;
				break;
			case O_DEAD:
				ndead++;
				break;
			case O_UNKNOWN:
				nfailed++;
				break;
			default:
				nretry++;
				break;
		}
	}

	if (n > 0)
	{
		const char *sql =
			"UPDATE sales_api.outbox o SET state = u.state, lease_until = NULL,"
			"  http_status = coalesce(u.http_status, o.http_status),"
			"  vendor_ref = coalesce(u.vendor_ref, o.vendor_ref), last_error = u.err,"
			"  attempts = o.attempts - u.giveback, ambiguous = u.ambiguous,"
			"  sent_at = CASE WHEN u.state = 'sent' THEN now() END,"
			"  next_attempt_at = CASE WHEN u.state = 'failed' THEN now() + u.delay * interval '1 ms' END"
			" FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[],"
			"             $7::int[], $8::boolean[])"
			"   AS u(id, state, http_status, vendor_ref, err, delay, giveback, ambiguous)"
			" WHERE o.id = u.id";
		Oid			types[8] = {INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, INT8ARRAYOID, INT4ARRAYOID, BOOLARRAYOID};
		Datum		vals[8];
		char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
		int			dims[1] = {n};
		int			lbs[1] = {1};

		vals[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		vals[1] = PointerGetDatum(construct_array(states, n, TEXTOID, -1, false, TYPALIGN_INT));
		vals[2] = PointerGetDatum(construct_md_array(statuses, status_nulls, 1, dims, lbs, INT4OID, 4, true, TYPALIGN_INT));
		vals[3] = PointerGetDatum(construct_md_array(refs, ref_nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
		vals[4] = PointerGetDatum(construct_md_array(errors, error_nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
		vals[5] = PointerGetDatum(construct_array(delays, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		vals[6] = PointerGetDatum(construct_array(attempt_back, n, INT4OID, 4, true, TYPALIGN_INT));
		vals[7] = PointerGetDatum(construct_array(ambig, n, BOOLOID, 1, true, TYPALIGN_CHAR));
		if (SPI_execute_with_args(sql, 8, types, vals, nulls, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not record outbox outcomes");
	}

	/*
	 * The transactionIds the vendor now holds: the posts' in one statement
	 * (the deletes remove an older id only, so their order against the posts'
	 * upsert does not matter).
	 */
	remember_posts(c);
	for (int i = 0; i < n; i++)
	{
		OItem	   *it = &c->items[i];
		Oid			types[6] = {INT4OID, TEXTOID, TEXTOID, INT8OID, INT8OID, TEXTOID};
		Datum		vals[6];

		if (it->kind == K_CT_DELETE && it->outcome == O_SENT && it->transaction_id)
		{
			vals[0] = Int32GetDatum(it->cap->id);
			vals[1] = CStringGetTextDatum(it->sale_key);
			vals[2] = CStringGetTextDatum(it->transaction_id);
			SPI_execute_with_args("DELETE FROM sales_api.connecteam_sent"
								  " WHERE capture_id = $1 AND sale_key = $2 AND transaction_id = $3",
								  3, types, vals, NULL, false, 0);
		}
	}

	/* a replaced window: the vendor holds exactly the local sales, with new ids */
	foreach(lc, c->windows)
	{
		Window	   *w = lfirst(lc);
		Oid			types[4] = {INT4OID, INT8OID, INT8OID, INT8OID};
		Datum		vals[4];
		Remember	r;

		if (!w->ok)
			continue;
		vals[0] = Int32GetDatum(w->cap->id);
		vals[1] = Int64GetDatum(w->location_id);
		vals[2] = Int64GetDatum(w->start_epoch);
		vals[3] = Int64GetDatum(w->end_epoch);
		SPI_execute_with_args("DELETE FROM sales_api.connecteam_sent WHERE capture_id = $1 AND location_id = $2"
							  " AND created_at BETWEEN to_timestamp($3) AND to_timestamp($4)",
							  4, types, vals, NULL, false, 0);
		remember_init(&r, w->nlocal);
		for (int k = 0; k < w->nlocal; k++)
			if (w->ids[k] != NULL && w->local[k].reference != NULL)
				remember_add(&r, w->cap->id, w->local[k].reference, w->ids[k], &w->local[k]);
		/* and a waiting post of the very version the window carried is done */
		remember_flush(&r, true);
	}

	/* when is the next item due? */
	if (SPI_execute("SELECT min(next_attempt_at) FROM sales_api.outbox"
					" WHERE state IN ('pending', 'failed')", true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			c->next_due = DatumGetTimestampTz(d);
	}

	if (worker_shared)
	{
		SpinLockAcquire(&worker_shared->mutex);
		worker_shared->items_sent += nsent;
		worker_shared->items_failed += nfailed + nretry;
		worker_shared->items_dead += ndead;
		worker_shared->retries += nretry;
		if (nsent > 0)
			worker_shared->last_success_at = GetCurrentTimestamp();
		SpinLockRelease(&worker_shared->mutex);
	}
}

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
 * One cycle: claim, send, record.  Returns true when there may be more work
 * right away; *wait_ms says how long to sleep otherwise.
 */
bool
outbox_cycle(MemoryContext cycle_cxt, long *wait_ms)
{
	Cycle	   *c = MemoryContextAllocZero(cycle_cxt, sizeof(Cycle));
	bool		installed;

	c->cxt = cycle_cxt;

	begin_txn(cycle_cxt, "sales_api worker: claiming");
	/* the outbox as this library knows it: 0.6 or later (outbox_stage) */
	installed = (SPI_execute("SELECT 1 FROM pg_extension WHERE extname = 'sales_api'"
							 " AND to_regclass('sales_api.outbox_stage') IS NOT NULL", true, 1) == SPI_OK_SELECT &&
				 SPI_processed == 1);
	if (!installed)
	{
		if (!warned_missing)
			ereport(LOG,
					(errmsg("sales_api worker: extension sales_api is not installed in database \"%s\", or is older than 0.6; waiting",
							sales_api_database),
					 errhint("CREATE EXTENSION sales_api, or ALTER EXTENSION sales_api UPDATE, in that database.")));
		warned_missing = true;
		end_txn();
		return false;
	}
	warned_missing = false;
	claim(c);
	end_txn();

	if (c->nitems > 0)
	{
		MemoryContextSwitchTo(cycle_cxt);
		send_all(c);
		begin_txn(cycle_cxt, "sales_api worker: recording");
		record(c);
		end_txn();
	}
	else
	{
		begin_txn(cycle_cxt, "sales_api worker: idle");
		record(c);
		end_txn();
	}
	MemoryContextSwitchTo(cycle_cxt);

	if (c->next_due != 0)
	{
		long		ms = (long) ((c->next_due - GetCurrentTimestamp()) / 1000);

		*wait_ms = Max(Min(*wait_ms, ms), 10);
	}
	return c->more;
}
