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
	HeapTuple	tup;
} TotalsRow;

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

/*
 * The rows of one day's totals for the claimed units (unit, currency, sales
 * type, slot, net, gross, checks, guests), each read once and sorted; rows
 * with a NULL key match no slot.  Each dirty slot then finds its row by
 * binary search: a unit-day of 300 slots compared every slot with every row,
 * through SPI_getvalue(), 90,000 times.
 */
static TotalsRow *
totals_rows(SPITupleTable *tt, uint64 nrows, int *n)
{
	TotalsRow  *rows = palloc(sizeof(TotalsRow) * (nrows + 1));
	int			k = 0;

	for (uint64 r = 0; r < nrows; r++)
	{
		HeapTuple	tup = tt->vals[r];
		bool		unull,
					snull;
		Datum		u = SPI_getbinval(tup, tt->tupdesc, 1, &unull);
		Datum		sl = SPI_getbinval(tup, tt->tupdesc, 4, &snull);

		if (unull || snull)
			continue;
		rows[k].currency = SPI_getvalue(tup, tt->tupdesc, 2);
		rows[k].sales_type = SPI_getvalue(tup, tt->tupdesc, 3);
		if (rows[k].currency == NULL || rows[k].sales_type == NULL)
			continue;
		rows[k].unit = DatumGetInt64(u);
		rows[k].slot = DatumGetTimestamp(sl);
		rows[k].tup = tup;
		k++;
	}
	qsort(rows, k, sizeof(TotalsRow), totals_row_cmp);
	*n = k;
	return rows;
}

/*
 * A dirty slot's totals from the recomputed rows of its day; a slot with no
 * sale left gets zeros, which replace what Mapal holds.
 */
static void
slot_set_totals(OutboxItem *it, MemoryContext cxt, TupleDesc td, TotalsRow *rows, int nrows)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	TotalsRow	key = {.unit = it->slot.unit, .currency = it->slot.currency,
	.sales_type = it->slot.sales_type, .slot = it->slot.slot};
	TotalsRow  *hit = bsearch(&key, rows, nrows, sizeof(TotalsRow), totals_row_cmp);

	it->slot.net = it->slot.gross = DirectFunctionCall1(int8_numeric, Int64GetDatum(0));
	it->slot.checks = it->slot.guests = 0;
	if (hit != NULL)
	{
		bool		isnull;
		Datum		d;

		d = SPI_getbinval(hit->tup, td, 5, &isnull);
		if (!isnull)
			it->slot.net = datumCopy(d, false, -1);
		d = SPI_getbinval(hit->tup, td, 6, &isnull);
		if (!isnull)
			it->slot.gross = datumCopy(d, false, -1);
		it->slot.checks = outbox_spi_int64(hit->tup, td, 7, &isnull);
		it->slot.guests = outbox_spi_int64(hit->tup, td, 8, &isnull);
	}
	MemoryContextSwitchTo(old);
}

/* Is o a slot of the same capture and business day as it, whose totals wait? */
#define SAME_DAY(o, it) \
	((o)->slot_valid && !(o)->totals_loaded && (o)->cap == (it)->cap && (o)->slot.day == (it)->slot.day)

/*
 * The totals of the claimed slots: one query per capture and business day,
 * over the units claimed for that day (one scan of the day's sales, where a
 * query per unit-day scanned it once for each unit).  Its rows are read in a
 * context of their own and its result freed after, so a claim of many days
 * does not keep them all until it ends.  A query that fails leaves the slots
 * of its day with the error, to be tried again.
 */
static void
load_totals(OutboxCycle *c, int first)
{
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "sales_api slot totals",
											  ALLOCSET_DEFAULT_SIZES);

	for (int i = first; i < c->nitems; i++)
	{
		OutboxItem *it = &c->items[i];
		Oid			types[2] = {INT8ARRAYOID, DATEOID};
		Datum		vals[2];
		bool		ok;
		char	   *error = NULL;
		TotalsRow  *rows = NULL;
		int			nrows = 0;
		int			nunits = 0;
		Datum	   *units;
		SPITupleTable *tt = NULL;
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
		/*
		 * A fresh snapshot (mapping_execute), taken after the claim, so every
		 * sale whose dirty marker was just claimed is in the totals.
		 */
		ok = outbox_read_pos(c, it->cap, MS_MAPAL_UNITS_TOTALS, 2, types, vals, &error);
		if (ok)
		{
			tt = SPI_tuptable;
			old = MemoryContextSwitchTo(tmp);
			rows = totals_rows(tt, SPI_processed, &nrows);
			MemoryContextSwitchTo(old);
		}
		for (int j = c->nitems - 1; j >= i; j--)
		{
			OutboxItem *o = &c->items[j];

			if (!SAME_DAY(o, it))
				continue;
			if (ok)
				slot_set_totals(o, c->cxt, tt->tupdesc, rows, nrows);
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
		if (tt != NULL)
			SPI_freetuptable(tt);
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
