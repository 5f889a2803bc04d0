/*-------------------------------------------------------------------------
 *
 * outbox_mapal.c
 *		Mapal's part of a worker cycle: claim dirty slots, recompute their
 *		totals from the POS table, send one request per (unit, business day).
 *
 * Design note.  A Mapal slot item is a marker, not a figure: its totals are
 * recomputed from the POS table when it is sent, so a resend is harmless and
 * an UPDATE or DELETE of sales needs no special case (the trigger marks the
 * slots dirty; the recomputed totals, zero when no sale is left, replace
 * what Mapal holds).  Slots are claimed by whole unit-days, so that each
 * goes out in one request.  A marker a POS transaction has locked (its sale
 * is not committed yet) is skipped and claimed in a later cycle, and the
 * totals are read with a snapshot taken after the claim, so a sale whose
 * marker was claimed is always in them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datum.h"
#include "utils/memutils.h"

#include "dates.h"
#include "outbox_mapal.h"
#include "vendor.h"
#include "worker.h"

/* what a claim returns: $1 batch size, $2 lease in ms */
#define MAPAL_CLAIMED \
	" UPDATE sales_api.outbox o SET state = " OUTBOX_SQL(OUTBOX_IN_FLIGHT) ", attempts = o.attempts + 1," \
	"   lease_until = now() + $2 * interval '1 ms'" \
	" FROM c WHERE o.id = c.id" \
	" RETURNING o.id, o.capture_id, o.attempts, o.unit_id, o.business_day, o.currency_id," \
	"   o.sales_type_id, o.slot_start"

/*
 * The first due slots in (capture, unit, day) order of the lanes $4, not
 * $3, of servers not paused.  The paused servers' captures are a hashed
 * subplan, read once: a join to sales_api.capture and server_state looked
 * both up for each of a day's 14,400 markers, two thirds of the time of a
 * claim of 2,000.
 */
static OutboxStmt claim_slots = {
	.sql = "WITH c AS (SELECT o.id FROM sales_api.outbox o"
	" WHERE o.kind = " OUTBOX_SQL(OUTBOX_MAPAL_SLOT)
	"   AND o.state IN (" OUTBOX_SQL(OUTBOX_PENDING) ", " OUTBOX_SQL(OUTBOX_FAILED) ")"
	"   AND coalesce(o.next_attempt_at, '-infinity') <= now()"
	"   AND o.capture_id = ANY($4) AND o.capture_id <> ALL($3)"
	"   AND o.capture_id NOT IN (SELECT c.id FROM sales_api.capture c"
	"        JOIN sales_api.server_state s ON s.server_id = c.server_id WHERE s.paused)"
	" ORDER BY o.capture_id, o.unit_id, o.business_day, o.id LIMIT $1 FOR UPDATE OF o SKIP LOCKED)"
	MAPAL_CLAIMED,
	.nargs = 4, .types = {INT4OID, INT4OID, INT4ARRAYOID, INT4ARRAYOID}
};

/*
 * Slots claimed per statement: a claimed slot is locked and updated (about
 * 16 microseconds), and outbox_execute() reads the answers of the requests
 * in flight and starts those that wait between two statements.
 */
#define MAPAL_CLAIM_CHUNK 500

/* the rest of a unit-day the batch cut: $3 capture, $4 unit, $5 day */
static OutboxStmt claim_rest = {
	.sql = "WITH c AS (SELECT o.id FROM sales_api.outbox o"
	" WHERE o.kind = " OUTBOX_SQL(OUTBOX_MAPAL_SLOT) " AND o.state = " OUTBOX_SQL(OUTBOX_PENDING)
	"   AND o.capture_id = $3 AND o.unit_id = $4 AND o.business_day = $5"
	"   AND coalesce(o.next_attempt_at, '-infinity') <= now()"
	" FOR UPDATE OF o SKIP LOCKED)"
	MAPAL_CLAIMED,
	.nargs = 5, .types = {INT4OID, INT4OID, INT4OID, INT8OID, DATEOID}
};

/* The slots of an UPDATE ... RETURNING MAPAL_CLAIMED, into the cycle. */
static void
take_slots(OutboxCycle *c, uint64 n)
{
	OutboxItem *items = outbox_add_items(c, n);

	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		OutboxItem *it = &items[i];
		bool		nu,
					nd,
					nc,
					nt,
					ns;
		Datum		d;

		it->kind = KIND_MAPAL_SLOT;
		it->id = outbox_spi_int64(tup, td, 1, &nu);
		it->cap = outbox_capture(c, (int) outbox_spi_int64(tup, td, 2, &nu));
		it->attempts = (int) outbox_spi_int64(tup, td, 3, &nu);
		it->slot.unit = outbox_spi_int64(tup, td, 4, &nu);
		d = SPI_getbinval(tup, td, 5, &nd);
		it->slot.day = nd ? 0 : DatumGetDateADT(d);
		it->slot.currency = outbox_spi_str(tup, td, 6, c->cxt);
		nc = (it->slot.currency == NULL);
		it->slot.sales_type = outbox_spi_str(tup, td, 7, c->cxt);
		nt = (it->slot.sales_type == NULL);
		d = SPI_getbinval(tup, td, 8, &ns);
		it->slot.slot = ns ? 0 : DatumGetTimestamp(d);
		if (nu || nd || nc || nt || ns)
		{
			it->out.result = OUTBOX_PERMANENT;
			it->out.error = "the capture mapping gave a NULL unit_id, business day, currency_id, sales_type_id or sold_at";
		}
		else if (it->slot.unit <= 0)
		{
			it->out.result = OUTBOX_PERMANENT;
			it->out.error = "unit_id must be a positive integer";
		}
		else if (dates_timestamp_date(it->slot.slot) != it->slot.day)
		{
			/*
			 * A business_day mapped apart from the slot (a night's sales
			 * kept on the day before): Mapal answers 400 for a slot outside
			 * its businessDay, and would refuse every slot of the request
			 * with it.  This one stays here with its error; the others go.
			 */
			MemoryContext old = MemoryContextSwitchTo(c->cxt);

			it->out.result = OUTBOX_PERMANENT;
			it->out.error = psprintf("slot %s is outside business day %s, which Mapal refuses; map business_day to the slot's local date, or leave it out of the mapping",
									 dates_timestamp_str(it->slot.slot), dates_date_str(it->slot.day));
			MemoryContextSwitchTo(old);
		}
		else
			it->slot_valid = true;
	}
}

/* A recomputed row of a day's totals, keyed for the search of its slots */
typedef struct TotalsRow
{
	int64		unit;
	const char *currency;
	const char *sales_type;
	Timestamp	slot;
	Datum		net;			/* numeric; 0: NULL */
	Datum		gross;
	int64		checks;
	int64		guests;
} TotalsRow;

/* The rows of a day's totals, from the statements of its pieces */
typedef struct TotalsRows
{
	TotalsRow  *rows;
	int			n;
	int			max;
} TotalsRows;

static int
totals_row_cmp(const void *a, const void *b)
{
	const TotalsRow *x = a;
	const TotalsRow *y = b;
	int			r;

	if (x->unit != y->unit)
		return x->unit < y->unit ? -1 : 1;
	if (x->slot != y->slot)
		return x->slot < y->slot ? -1 : 1;
	r = strcmp(x->currency, y->currency);
	return r != 0 ? r : strcmp(x->sales_type, y->sales_type);
}

static Datum
numeric_or_null(HeapTuple tup, TupleDesc td, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, td, col, &isnull);

	return isnull ? (Datum) 0 : datumCopy(d, false, -1);
}

/*
 * Add the rows of one piece of a day's totals (unit, currency, sales type,
 * slot, net, gross, checks, guests) to rows, their values copied into the
 * current memory context; rows with a NULL key match no slot.
 */
static void
totals_rows_add(TotalsRows *rows, SPITupleTable *tt, uint64 nrows)
{
	if (rows->n + nrows > (uint64) rows->max)
	{
		rows->max = Max(rows->max * 2, rows->n + (int) nrows + 16);
		rows->rows = rows->rows ? repalloc(rows->rows, sizeof(TotalsRow) * rows->max)
			: palloc(sizeof(TotalsRow) * rows->max);
	}
	for (uint64 r = 0; r < nrows; r++)
	{
		HeapTuple	tup = tt->vals[r];
		TotalsRow  *row = &rows->rows[rows->n];
		bool		unull,
					snull,
					isnull;
		Datum		u = SPI_getbinval(tup, tt->tupdesc, 1, &unull);
		Datum		sl = SPI_getbinval(tup, tt->tupdesc, 4, &snull);

		if (unull || snull)
			continue;
		row->currency = SPI_getvalue(tup, tt->tupdesc, 2);
		row->sales_type = SPI_getvalue(tup, tt->tupdesc, 3);
		if (row->currency == NULL || row->sales_type == NULL)
			continue;
		row->unit = DatumGetInt64(u);
		row->slot = DatumGetTimestamp(sl);
		row->net = numeric_or_null(tup, tt->tupdesc, 5);
		row->gross = numeric_or_null(tup, tt->tupdesc, 6);
		row->checks = outbox_spi_int64(tup, tt->tupdesc, 7, &isnull);
		row->guests = outbox_spi_int64(tup, tt->tupdesc, 8, &isnull);
		rows->n++;
	}
}

static Datum
add_numeric_or_null(Datum a, Datum b)
{
	if (a == (Datum) 0)
		return b;
	if (b == (Datum) 0)
		return a;
	return DirectFunctionCall2(numeric_add, a, b);
}

/*
 * Sorted, each key once: a slot whose sales two pieces hold (the pieces
 * are cut at hours of local time, which a slot of the zone's offset may
 * straddle) has its figures added up, as the one statement's sum() did.
 * Each dirty slot then finds its row by binary search: a unit-day of 300
 * slots compared every slot with every row, through SPI_getvalue(), 90,000
 * times.
 */
static void
totals_rows_finish(TotalsRows *rows)
{
	int			k = 0;

	if (rows->n == 0)
		return;
	qsort(rows->rows, rows->n, sizeof(TotalsRow), totals_row_cmp);
	for (int i = 1; i < rows->n; i++)
	{
		TotalsRow  *a = &rows->rows[k];
		TotalsRow  *b = &rows->rows[i];

		if (totals_row_cmp(a, b) == 0)
		{
			a->net = add_numeric_or_null(a->net, b->net);
			a->gross = add_numeric_or_null(a->gross, b->gross);
			a->checks += b->checks;
			a->guests += b->guests;
		}
		else
			rows->rows[++k] = *b;
	}
	rows->n = k + 1;
}

/*
 * A dirty slot's totals from the recomputed rows of its day; a slot with no
 * sale left gets zeros, which replace what Mapal holds.
 */
static void
slot_set_totals(OutboxItem *it, MemoryContext cxt, TotalsRows *rows)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	TotalsRow	key = {.unit = it->slot.unit, .currency = it->slot.currency,
	.sales_type = it->slot.sales_type, .slot = it->slot.slot};
	TotalsRow  *hit = rows->n > 0 ?
		bsearch(&key, rows->rows, rows->n, sizeof(TotalsRow), totals_row_cmp) : NULL;

	it->slot.net = it->slot.gross = DirectFunctionCall1(int8_numeric, Int64GetDatum(0));
	it->slot.checks = it->slot.guests = 0;
	if (hit != NULL)
	{
		if (hit->net != (Datum) 0)
			it->slot.net = datumCopy(hit->net, false, -1);
		if (hit->gross != (Datum) 0)
			it->slot.gross = datumCopy(hit->gross, false, -1);
		it->slot.checks = hit->checks;
		it->slot.guests = hit->guests;
	}
	MemoryContextSwitchTo(old);
}

/* Is o a slot of the same capture and business day as it, whose totals wait? */
#define SAME_DAY(o, it) \
	((o)->slot_valid && !(o)->totals_loaded && (o)->cap == (it)->cap && (o)->slot.day == (it)->slot.day)

/*
 * The hours of local time (from the business day's eve's midnight) that
 * one totals statement reads: its scan of 72 hours (a business day's sales
 * lie within a day of it) in twelve pieces.  A statement runs while the
 * requests in flight wait for it (outbox_execute()), and one over a claim's
 * units of a 100,000-sale day took 35-50 ms, which cost a Connecteam drain
 * beside it a tenth of its rate; a piece of such a day takes a quarter of
 * that, and an empty one an index probe.
 */
#define TOTALS_PIECE_HOURS 6
#define TOTALS_SCAN_HOURS 72

/*
 * The totals of the claimed slots: per capture and business day, over the
 * units claimed for that day (one scan of the day's sales, where a query
 * per unit-day scanned it once for each unit), in pieces of
 * TOTALS_PIECE_HOURS, each in a subtransaction as the capture's owner
 * (outbox_read_pos(), which reads the answers of the requests in flight
 * and starts those that wait before each).  The rows are read in a context
 * of their own and freed after, so a claim of many days does not keep them
 * all until it ends.  A piece that fails leaves the slots of its day with
 * the error, to be tried again.
 */
static void
load_totals(OutboxCycle *c, int first)
{
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "sales_api slot totals",
											  ALLOCSET_DEFAULT_SIZES);

	for (int i = first; i < c->nitems; i++)
	{
		OutboxItem *it = &c->items[i];
		Oid			types[4] = {INT8ARRAYOID, DATEOID, INT4OID, INT4OID};
		Datum		vals[4];
		bool		ok = true;
		char	   *error = NULL;
		TotalsRows	rows = {0};
		int			nunits = 0;
		Datum	   *units;
		MemoryContext old;

		if (!it->slot_valid || it->totals_loaded)
			continue;
		old = MemoryContextSwitchTo(tmp);
		units = palloc(sizeof(Datum) * (c->nitems - i));
		for (int j = i; j < c->nitems; j++)
		{
			OutboxItem *o = &c->items[j];
			bool		seen = false;

			if (!SAME_DAY(o, it))
				continue;
			for (int k = 0; k < nunits && !seen; k++)
				seen = DatumGetInt64(units[k]) == o->slot.unit;
			if (!seen)
				units[nunits++] = Int64GetDatum(o->slot.unit);
		}
		vals[0] = PointerGetDatum(construct_array(units, nunits, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		vals[1] = DateADTGetDatum(it->slot.day);
		MemoryContextSwitchTo(old);
		for (int h = 0; h < TOTALS_SCAN_HOURS && ok; h += TOTALS_PIECE_HOURS)
		{
			vals[2] = Int32GetDatum(h);
			vals[3] = Int32GetDatum(h + TOTALS_PIECE_HOURS);
			/*
			 * A fresh snapshot (mapping_execute), taken after the claim, so
			 * every sale whose dirty marker was just claimed is in the totals.
			 */
			ok = outbox_read_pos(c, it->cap, MS_MAPAL_UNITS_TOTALS, 4, types, vals, &error);
			if (ok)
			{
				SPITupleTable *tt = SPI_tuptable;

				old = MemoryContextSwitchTo(tmp);
				totals_rows_add(&rows, tt, SPI_processed);
				MemoryContextSwitchTo(old);
				SPI_freetuptable(tt);
			}
		}
		if (ok)
		{
			old = MemoryContextSwitchTo(tmp);
			totals_rows_finish(&rows);
			MemoryContextSwitchTo(old);
		}
		for (int j = c->nitems - 1; j >= i; j--)
		{
			OutboxItem *o = &c->items[j];

			if (!SAME_DAY(o, it))
				continue;
			if (ok)
				slot_set_totals(o, c->cxt, &rows);
			else
			{
				o->slot_valid = false;
				o->out.result = OUTBOX_TRANSIENT;
				o->out.error = MemoryContextStrdup(c->cxt,
												   psprintf("could not compute the slot totals from the POS table: %s",
															error));
			}
			o->totals_loaded = true;
		}
		MemoryContextReset(tmp);
	}
	MemoryContextDelete(tmp);
}

/*
 * Claim Mapal dirty slots and recompute their totals from the POS table:
 * the first `limit` slots in (capture, unit, day) order, then, when the
 * batch was cut, the rest of its last unit-day (pending markers, through
 * outbox_mapal_dirty_idx).
 */
void
outbox_mapal_claim(OutboxCycle *c, int limit)
{
	Datum		vals[5] = {0, Int32GetDatum(sales_api_lease_ms), c->skip, 0, 0};
	int			first = c->nitems;
	uint64		n;
	int			claimed = 0;
	int			ask;
	Datum	   *caps = palloc(sizeof(Datum) * (list_length(c->captures) + 1));
	int			ncaps = 0;
	ListCell   *lc;

	/*
	 * Only the Mapal lanes this claim took (lanes_take() locked them; the
	 * skipped ones, $3, leave out a probe's lane in the claim and every
	 * other in the probe's): the statement then reads their items through
	 * outbox_lane_todo_idx, never a Connecteam backlog.
	 */
	foreach(lc, c->captures)
	{
		OutboxCapture *cap = lfirst(lc);

		if (cap->vendor == VENDOR_MAPAL && cap->locked)
			caps[ncaps++] = Int32GetDatum(cap->id);
	}
	if (ncaps == 0)
		return;
	vals[3] = PointerGetDatum(construct_array(caps, ncaps, INT4OID, 4, true, TYPALIGN_INT));
	/* in statements of MAPAL_CLAIM_CHUNK slots, until the batch is full or none is left */
	do
	{
		ask = Min(limit - claimed, MAPAL_CLAIM_CHUNK);
		vals[0] = Int32GetDatum(ask);
		if (outbox_execute(&claim_slots, vals, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not claim Mapal outbox items");
		n = SPI_processed;
		take_slots(c, n);
		claimed += (int) n;
	} while ((int) n == ask && claimed < limit);
	if (claimed >= limit)
	{
		OutboxItem *last = NULL;

		c->more = true;
		/* the last unit-day in claim order: the batch may have cut it */
		for (int i = first; i < c->nitems; i++)
		{
			OutboxItem *it = &c->items[i];

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
			if (outbox_execute(&claim_rest, vals, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
				elog(ERROR, "could not claim Mapal outbox items");
			take_slots(c, SPI_processed);
		}
	}
	load_totals(c, first);
}

/* Mapal's answers: each slot's outcome is its request's. */
static void
slots_sent(OutboxJob *job pg_attribute_unused(), OutboxPhase *ph)
{
	List	   *groups = ph->arg;
	ListCell   *lc;
	int			g = 0;

	foreach(lc, groups)
	{
		ListCell   *ic;

		foreach(ic, (List *) lfirst(lc))
			outbox_outcome_from_request(&((OutboxItem *) lfirst(ic))->out, ph->reqs[g], false);
		g++;
	}
}

/* One request per (unit, business day) with every dirty slot of a capture. */
void
outbox_mapal_plan(OutboxJob *job)
{
	OutboxCycle *c = job->c;
	OutboxCapture *cap = job->cap;
	List	   *groups = NIL;	/* of List * of OutboxItem * */
	HttpRequest **reqs;
	int			ngroups;
	int			g = 0;
	ListCell   *lc;

	for (int i = 0; i < c->nitems; i++)
	{
		OutboxItem *it = &c->items[i];
		List	   *grp = NIL;

		if (it->cap != cap || it->kind != KIND_MAPAL_SLOT || it->out.result != OUTBOX_NOT_TRIED)
			continue;
		foreach(lc, groups)
		{
			OutboxItem *head = linitial((List *) lfirst(lc));

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
			OutboxItem *it = lfirst(ic);
			bool		dup = false;

			for (int k = 0; k < n; k++)
				if (mapal_same_slot(slots[k], &it->slot))
					dup = true;
			if (!dup)
				slots[n++] = &it->slot;
		}
		reqs[g++] = mapal_build_request(cap->srv, slots, n);
	}

	outbox_job_add_phase(job, false, reqs, ngroups, RL_UNPACED, slots_sent, groups);
}

/* the statements of a drain, prepared when the worker starts (outbox_warm()) */
void
outbox_mapal_warm(void)
{
	static OutboxStmt *const stmts[] = {&claim_slots, &claim_rest};

	outbox_warm(stmts, lengthof(stmts));
}
