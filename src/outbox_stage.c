/*-------------------------------------------------------------------------
 *
 * outbox_stage.c
 *		Staged work becomes outbox items: the rows a capture trigger wrote
 *		to sales_api.outbox_stage are deleted and their sales inserted into
 *		sales_api.outbox as ct_post items, and the rows of
 *		sales_api.mapal_stage become pending dirty markers, each row's in
 *		one statement (a row's delete and its markers' insert), so a staged
 *		sale or slot is in exactly one of the two tables at every commit.
 *
 * Leased rows (their sales in flight, see stage_lease_stmt in
 * outbox_connecteam.c) are made items only for the sales of an UPDATE or
 * DELETE, or once their lease ran out (outbox_stage_expire_leases()): their
 * sales become items in flight under the lease, and the ids they got are
 * left in sales_api.outbox_lease_items, where the worker's record of the
 * lease finds them (record_leases() in outbox.c).
 *
 * Two callers: the worker, at every claim (its captures of a paused server:
 * the others' lanes take their staged sales straight into flight, see
 * ct_claim_staged() in outbox_connecteam.c; rows a POS transaction holds
 * skipped, at most a batch of rows: a backlog after a long stop goes in
 * steps) and when it records a replaced window (every capture); and the
 * capture trigger, before an UPDATE or DELETE looks for the posts of its
 * sales (the staged rows holding those sales, waiting for a POS transaction
 * that is making items of them itself).  sales_api._stage_expand() is the
 * same from SQL.
 *
 * Design note.  The rows are locked first, in staging order (oldest
 * statement first), and their sales inserted in that order and, within a
 * row of arrays, in the order of the arrays, so item ids follow the order
 * the POS inserted its sales.  The keys of an UPDATE or DELETE are matched
 * through hashed subplans: a DELETE of 100,000 sales while a 100,000-sale
 * row is staged costs two hash tables, not 10^10 comparisons.  The
 * statements are fixed, prepared once per backend and kept; they run with
 * pg_catalog alone on the search path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "catalog/namespace.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

#include "outbox.h"
#include "outbox_stage.h"

PG_FUNCTION_INFO_V1(sales_api_stage_expand);

/*
 * $1 capture (NULL: every one), $2 sale keys (NULL: every sale), $3 most
 * rows (NULL: all), $4 the captures of the worker's claim (NULL: every
 * capture, every server): of those, only a paused server's rows, since
 * the others' lanes take their staged sales straight into flight when they
 * claim (ct_claim_staged() in outbox_connecteam.c).
 */
#define STAGE_LOCK_SQL(lock, leases) \
	"SELECT array_agg(c) FROM (SELECT x.ctid AS c FROM sales_api.outbox_stage x" \
	" WHERE ($1 IS NULL OR x.capture_id = $1)" \
	"   AND ($2 IS NULL OR x.sale_key IN (SELECT unnest($2))" \
	"        OR (x.sale_keys IS NOT NULL" \
	"            AND EXISTS (SELECT 1 FROM unnest(x.sale_keys) AS sk(v) WHERE sk.v IN (SELECT unnest($2)))))" \
	"   AND ($4 IS NULL OR (x.capture_id = ANY ($4) AND EXISTS (SELECT 1 FROM sales_api.capture c" \
	"        JOIN sales_api.server_state s ON s.server_id = c.server_id WHERE c.id = x.capture_id AND s.paused)))" \
	leases \
	" ORDER BY x.staged_at LIMIT $3 FOR UPDATE" lock ") l"

/* a leased row (its sales in flight) only for the sales of an UPDATE or DELETE */
#define STAGE_LEASED "   AND (x.lease_until IS NULL OR $2 IS NOT NULL)"

static OutboxStmt stage_lock_wait = {
	.sql = STAGE_LOCK_SQL("", STAGE_LEASED), .nargs = 4, .types = {INT4OID, TEXTARRAYOID, INT4OID, INT4ARRAYOID}
};
static OutboxStmt stage_lock_skip = {
	.sql = STAGE_LOCK_SQL(" SKIP LOCKED", STAGE_LEASED), .nargs = 4, .types = {INT4OID, TEXTARRAYOID, INT4OID, INT4ARRAYOID}
};

/*
 * The same for the schema of 0.7 (no lease: outbox_stage.lease_until and
 * outbox_lease_items come with 0.8.0), which a capture trigger of this
 * library meets between the server's restart with it and ALTER EXTENSION
 * sales_api UPDATE: a POS UPDATE or DELETE of captured sales must work
 * then too.  The worker waits for the update.
 */
static OutboxStmt stage_lock_wait_07 = {
	.sql = STAGE_LOCK_SQL("", ""), .nargs = 4, .types = {INT4OID, TEXTARRAYOID, INT4OID, INT4ARRAYOID}
};
static OutboxStmt stage_lock_skip_07 = {
	.sql = STAGE_LOCK_SQL(" SKIP LOCKED", ""), .nargs = 4, .types = {INT4OID, TEXTARRAYOID, INT4OID, INT4ARRAYOID}
};
static OutboxStmt stage_move_07 = {
	.sql = "WITH s AS (DELETE FROM sales_api.outbox_stage st WHERE st.ctid = ANY ($1) RETURNING st.*)"
	" INSERT INTO sales_api.outbox (capture_id, kind, sale_key, location_id, sale_type, created_at,"
	"                               final_sale_amount, tax_amount, currency, enqueued_at, next_attempt_at)"
	" SELECT s.capture_id, " OUTBOX_SQL(OUTBOX_CT_POST) ", u.k, u.loc, u.stype, u.ts, u.amt, u.tax, u.cur,"
	"        s.staged_at, s.staged_at"
	"   FROM s, " STAGE_SALES_OF_S("u")
	"  ORDER BY s.staged_at, u.ord",
	.nargs = 1, .types = {TIDARRAYOID}
};

/* Has the schema leases (0.8.0 or later)?  A catalog cache lookup, no query. */
bool
outbox_stage_has_leases(void)
{
	Oid			nsp = get_namespace_oid("sales_api", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("outbox_lease_items", nsp));
}

/*
 * $1 the locked rows.  A leased row's sales (in flight: the worker posts
 * them) become items in flight under its lease, and the ids they got are
 * left in outbox_lease_items for the worker's record, which finds the row
 * gone; ids are taken in staging order, so they follow the POS's order.
 */
static OutboxStmt stage_move = {
	.sql = "WITH s AS (DELETE FROM sales_api.outbox_stage st WHERE st.ctid = ANY ($1)"
	"   RETURNING st.ctid AS tid, st.*),"
	" u AS (SELECT q.*, nextval('sales_api.outbox_id_seq') AS id FROM (SELECT s.tid, s.capture_id, s.staged_at,"
	"          s.lease_until, x.k, x.loc, x.stype, x.ts, x.amt, x.tax, x.cur, x.ord"
	"     FROM s, " STAGE_SALES_OF_S("x") " ORDER BY s.staged_at, x.ord) q),"
	" m AS (INSERT INTO sales_api.outbox_lease_items (capture_id, lease_until, stage_tid, item_ids)"
	"   SELECT u.capture_id, u.lease_until, u.tid, array_agg(u.id ORDER BY u.ord) FROM u"
	"    WHERE u.lease_until IS NOT NULL GROUP BY u.capture_id, u.lease_until, u.tid)"
	" INSERT INTO sales_api.outbox (id, capture_id, kind, sale_key, location_id, sale_type, created_at,"
	"                               final_sale_amount, tax_amount, currency, enqueued_at, next_attempt_at,"
	"                               state, attempts, lease_until)"
	" SELECT u.id, u.capture_id, " OUTBOX_SQL(OUTBOX_CT_POST) ", u.k, u.loc, u.stype, u.ts, u.amt, u.tax, u.cur,"
	"        u.staged_at, u.staged_at,"
	"        CASE WHEN u.lease_until IS NULL THEN " OUTBOX_SQL(OUTBOX_PENDING) " ELSE " OUTBOX_SQL(OUTBOX_IN_FLIGHT) " END,"
	"        CASE WHEN u.lease_until IS NULL THEN 0 ELSE 1 END, u.lease_until"
	"   FROM u ORDER BY u.id",
	.nargs = 1, .types = {TIDARRAYOID}
};

/*
 * Leases run out (their worker stopped before its record) of captures no
 * lane of this worker has in flight, $1: rows to make items in flight.
 */
static OutboxStmt lease_expired_stmt = {
	.sql = "SELECT array_agg(c) FROM (SELECT x.ctid AS c FROM sales_api.outbox_stage x"
	" WHERE x.lease_until < now() AND x.capture_id <> ALL ($1)"
	" ORDER BY x.staged_at FOR UPDATE SKIP LOCKED) l",
	.nargs = 1, .types = {INT4ARRAYOID}
};

/*
 * ... and what no record will read, an hour on: a lease runs out only when
 * its worker stopped (a lane in flight is in every worker's busy list, so
 * its leases are never expired under it), and no worker then records it.
 */
static OutboxStmt lease_items_expired_stmt = {
	.sql = "DELETE FROM sales_api.outbox_lease_items WHERE lease_until < now() - interval '1 hour'",
	.nargs = 0
};

/*
 * Make the staged rows that args select outbox items; returns how many
 * items were made.  args are the capture id, the sale keys (text[]), the
 * most rows to take and the captures of a worker's claim (int4[], see
 * STAGE_LOCK_SQL), each NULL (nulls[i] = 'n') for no limit.  wait: wait
 * for rows another transaction holds, else skip them.  Connects to SPI
 * itself; runs as the current user.
 */
int64
outbox_stage_expand(bool wait, Datum *args, const char *nulls)
{
	int64		n = 0;
	bool		isnull;
	Datum		rows;

	bool		leases = outbox_stage_has_leases();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "sales_api: SPI_connect failed");
	if (outbox_execute(leases ? (wait ? &stage_lock_wait : &stage_lock_skip) :
					   (wait ? &stage_lock_wait_07 : &stage_lock_skip_07), args, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "sales_api: could not lock staged sales");
	rows = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		if (outbox_execute(leases ? &stage_move : &stage_move_07, &rows, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "sales_api: could not make staged sales outbox items");
		n = (int64) SPI_processed;
	}
	SPI_finish();
	return n;
}

/*
 * Leased rows whose lease ran out, of captures not in busy (int4[]), become
 * items in flight under their expired lease, which the caller then expires
 * as any item in flight (expire_leases() in outbox.c); returns how many
 * rows.  Connects to SPI itself.
 */
int64
outbox_stage_expire_leases(Datum busy)
{
	int64		n = 0;
	bool		isnull;
	Datum		rows;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "sales_api: SPI_connect failed");
	if (outbox_execute(&lease_expired_stmt, &busy, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "sales_api: could not lock expired leases of staged sales");
	rows = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		ArrayType  *a = DatumGetArrayTypeP(rows);

		n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
		if (outbox_execute(&stage_move, &rows, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "sales_api: could not make expired leases of staged sales outbox items");
	}
	if (outbox_execute(&lease_items_expired_stmt, NULL, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "sales_api: could not delete expired leases' items");
	SPI_finish();
	return n;
}

/*
 * Mapal: the slots of the staged rows become pending dirty markers, one per
 * slot (a slot that already has a pending marker keeps it: the totals are
 * recomputed when it is sent, after this claim, and hold every sale whose
 * row is taken here).  Rows a POS transaction still holds are not visible,
 * and are taken in a later cycle once it commits.
 */
/* $1 most rows (NULL: all); their row ids and slot counts, in staging order */
static OutboxStmt mapal_lock = {
	.sql = "SELECT array_agg(c), array_agg(n) FROM (SELECT x.ctid AS c, cardinality(x.slot_starts) AS n"
	" FROM sales_api.mapal_stage x ORDER BY x.staged_at LIMIT $1 FOR UPDATE SKIP LOCKED) l",
	.nargs = 1, .types = {INT4OID}
};

/* $1 the locked rows */
static OutboxStmt mapal_move = {
	.sql = "WITH s AS (DELETE FROM sales_api.mapal_stage st WHERE st.ctid = ANY ($1) RETURNING st.*),"
	" u AS (SELECT DISTINCT ON (s.capture_id, x.unit, x.day, x.cur, x.typ, x.slot)"
	"              s.capture_id, x.unit, x.day, x.cur, x.typ, x.slot, s.staged_at"
	"         FROM s, unnest(s.unit_ids, s.business_days, s.currency_ids, s.sales_type_ids, s.slot_starts)"
	"              AS x(unit, day, cur, typ, slot)"
	"        ORDER BY s.capture_id, x.unit, x.day, x.cur, x.typ, x.slot, s.staged_at)"
	" INSERT INTO sales_api.outbox (capture_id, kind, unit_id, business_day, currency_id, sales_type_id,"
	"                               slot_start, enqueued_at, next_attempt_at)"
	" SELECT u.capture_id, " OUTBOX_SQL(OUTBOX_MAPAL_SLOT) ", u.unit, u.day, u.cur, u.typ, u.slot,"
	"        u.staged_at, u.staged_at FROM u"
	" ON CONFLICT (capture_id, unit_id, business_day, currency_id, sales_type_id, slot_start)"
	" WHERE kind = " OUTBOX_SQL(OUTBOX_MAPAL_SLOT) " AND state = " OUTBOX_SQL(OUTBOX_PENDING) " DO NOTHING",
	.nargs = 1, .types = {TIDARRAYOID}
};

/*
 * Slots made markers per statement: the locked rows go in statements of
 * about this many slots (whole rows, at least one), so that the worker's
 * requests in flight are read and refilled between two (outbox_execute()).
 * A statement makes about a hundred markers a millisecond.
 */
#define MAPAL_MOVE_SLOTS 1000

/*
 * Make at most max_rows staged Mapal rows (0: all) dirty markers, and of
 * those, once max_slots slots are made (0: no limit), no more; returns how
 * many rows were taken, and *more whether rows may be left (the row limit
 * was met or the slot limit cut it: the worker goes on at its next step).
 * Connects to SPI itself.
 */
int64
outbox_stage_expand_mapal(int max_rows, int max_slots, bool *more)
{
	int64		n = 0;
	int64		made = 0;
	bool		isnull,
				nnull;
	Datum		arg = Int32GetDatum(max_rows);
	Datum		rows,
				counts;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "sales_api: SPI_connect failed");
	*more = false;
	if (outbox_execute(&mapal_lock, &arg, max_rows > 0 ? " " : "n", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "sales_api: could not lock staged Mapal slots");
	rows = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	counts = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &nnull);
	if (!isnull && !nnull)
	{
		Datum	   *tids;
		Datum	   *slots;
		bool	   *slot_nulls;
		int			ntids,
					nslots;

		deconstruct_array(DatumGetArrayTypeP(rows), TIDOID, sizeof(ItemPointerData), false,
						  TYPALIGN_SHORT, &tids, NULL, &ntids);
		deconstruct_array(DatumGetArrayTypeP(counts), INT4OID, 4, true, TYPALIGN_INT,
						  &slots, &slot_nulls, &nslots);
		Assert(nslots == ntids);
		*more = max_rows > 0 && ntids >= max_rows;
		for (int first = 0; first < ntids;)
		{
			int			last = first;
			int64		sum = 0;
			Datum		part;

			if (max_slots > 0 && made >= max_slots)
			{
				/* the rest stay staged, locked until this transaction ends */
				*more = true;
				break;
			}
			/* whole rows, at least one, up to about MAPAL_MOVE_SLOTS slots */
			do
			{
				sum += slot_nulls[last] ? 0 : DatumGetInt32(slots[last]);
				last++;
			} while (last < ntids && sum + (slot_nulls[last] ? 0 : DatumGetInt32(slots[last])) <= MAPAL_MOVE_SLOTS);
			part = PointerGetDatum(construct_array(tids + first, last - first, TIDOID,
												   sizeof(ItemPointerData), false, TYPALIGN_SHORT));
			if (outbox_execute(&mapal_move, &part, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "sales_api: could not make staged Mapal slots dirty markers");
			pfree(DatumGetPointer(part));
			n += last - first;
			made += sum;
			first = last;
		}
	}
	SPI_finish();
	return n;
}

/*
 * sales_api._stage_expand(capture_id integer, wait boolean,
 *                         sale_keys text[] DEFAULT NULL, max_rows integer DEFAULT NULL)
 */
Datum
sales_api_stage_expand(PG_FUNCTION_ARGS)
{
	Datum		args[4] = {0, 0, 0, 0};
	char		nulls[5] = "   n";

	for (int i = 0; i < 3; i++)
	{
		int			argno = (i == 0) ? 0 : i + 1;

		nulls[i] = PG_ARGISNULL(argno) ? 'n' : ' ';
		args[i] = PG_ARGISNULL(argno) ? (Datum) 0 : PG_GETARG_DATUM(argno);
	}
	/* every capture and sale, as the worker's claim: the Mapal slots too */
	if (PG_ARGISNULL(0) && PG_ARGISNULL(2))
	{
		bool		more;

		(void) outbox_stage_expand_mapal(PG_ARGISNULL(3) ? 0 : PG_GETARG_INT32(3), 0, &more);
	}
	PG_RETURN_INT64(outbox_stage_expand(!PG_ARGISNULL(1) && PG_GETARG_BOOL(1), args, nulls));
}

/*
 * The worker's statements here, prepared when it starts (outbox_warm());
 * not stage_lock_wait (the capture trigger's), nor those of 0.7's schema
 */
void
outbox_stage_warm(void)
{
	static OutboxStmt *const stmts[] = {
		&stage_lock_skip, &stage_move, &lease_expired_stmt, &lease_items_expired_stmt
	};

	outbox_warm(stmts, lengthof(stmts));
}

/* the same for the Mapal stage, once a Mapal capture exists */
void
outbox_stage_warm_mapal(void)
{
	static OutboxStmt *const stmts[] = {&mapal_lock, &mapal_move};

	outbox_warm(stmts, lengthof(stmts));
}
