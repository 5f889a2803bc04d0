/*-------------------------------------------------------------------------
 *
 * outbox_connecteam.c
 *		Connecteam's part of a worker cycle: claim posts, deletes and window
 *		repairs; send them; record the transactionIds the vendor holds.
 *
 * Design note.  Connecteam has no idempotency key, so a post that may have
 * been stored (the request was sent, then the connection broke or timed
 * out, or a worker died with it in flight) is never simply sent again.
 * Under the replace_window policy the worker deletes that location's time
 * window at the vendor and posts every local sale of the window again,
 * recording the new transactionIds; the vendor then holds exactly the local
 * sales.  Both steps are safe to repeat, so a failure leaves the items
 * ambiguous for a later cycle.  Under park the items become unknown, for an
 * operator (outbox_decide()).
 *
 * sales_api.connecteam_sent keeps, per sale, the transactionId of the
 * version the vendor holds: what an UPDATE or DELETE of the sale deletes
 * there.  A delete is claimed only once no earlier post of its sale is
 * waiting, and removes the version the vendor held when it was first
 * claimed.
 *
 * A lane's staged sales go into flight under a lease, not as items: the
 * claim sets lease_until on the staged rows (stage_lease_stmt) and the
 * record deletes them and inserts each sale's item in its final state
 * (lease_record_stmt in outbox.c), so a sale sent at its first try is
 * written once in the outbox where an item made in flight was written twice
 * (inserted, then updated, neither a HOT update).  The rows stay in
 * outbox_stage meanwhile, so a crash loses nothing: a lease that runs out
 * is made items in flight that expire as any item in flight does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "outbox_connecteam.h"
#include "outbox_stage.h"
#include "ratelimit.h"
#include "server.h"
#include "vendor.h"
#include "worker.h"

#define WAITING_POST \
	" p.kind = " OUTBOX_SQL(OUTBOX_CT_POST) " AND p.state IN (" OUTBOX_SQL(OUTBOX_PENDING) ", " \
	OUTBOX_SQL(OUTBOX_FAILED) ", " OUTBOX_SQL(OUTBOX_IN_FLIGHT) ")"

/*
 * A sale of capture cap with key k is in flight in a staged row this worker
 * leased: the arrays c and ks (captures and keys) are the sales of its
 * leases in flight and of this claim's (outbox_leased_keys()); a lane's
 * leases are its worker's, as the lane is.  A semi- or anti-join.  (A
 * stopped worker's leases, until they run out, are not seen: an UPDATE or
 * DELETE makes a leased sale an item, which is; a key staged again by a
 * second INSERT is another sale to the vendor anyway.)
 */
#define LEASED_SALE(c, ks, cap, k) \
	"EXISTS (SELECT 1 FROM unnest(" c "::int4[], " ks "::text[]) AS lk(c, k) WHERE lk.c = " cap " AND lk.k = " k ")"

/* transactionIds recorded per statement (remember_flush()) */
#define REMEMBER_CHUNK 500

/* Items a lane claims per statement (outbox_ct_claim()) */
#define CT_CLAIM_CHUNK 500

static uint64 ct_claim_chunk(OutboxCycle *c, Datum *cap, Datum *lim, Datum *extra, int k);
static int	ct_claim_staged(OutboxCycle *c, Datum cap, int want, Datum extra);
static uint64 ct_claimed_items(OutboxCycle *c, bool leased);

/*
 * posts, repairs, and deletes whose earlier post is settled, lane by lane:
 * $1 lease in ms; per lane, $2 its capture, $3 how many items at most, $4
 * plain posts only (its second job).  Each lane's due items come from its
 * own part of outbox_lane_todo_idx, so a lane that waits costs nothing.
 */
static OutboxStmt claim_stmt = {
	.sql = "WITH l AS (SELECT u.cap, u.lim, u.extra"
	"   FROM unnest($2::int4[], $3::int4[], $4::bool[]) AS u(cap, lim, extra)"
	"   JOIN sales_api.capture c ON c.id = u.cap"
	"   LEFT JOIN sales_api.server_state s ON s.server_id = c.server_id"
	"  WHERE NOT coalesce(s.paused, false)),"
	" c AS (SELECT x.id FROM l CROSS JOIN LATERAL (SELECT o.id FROM sales_api.outbox o"
	"   WHERE o.capture_id = l.cap AND o.state IN (" OUTBOX_SQL(OUTBOX_PENDING) ", " OUTBOX_SQL(OUTBOX_FAILED) ")"
	"   AND coalesce(o.next_attempt_at, '-infinity') <= now()"
	"   AND o.kind IN (" OUTBOX_SQL(OUTBOX_CT_POST) ", " OUTBOX_SQL(OUTBOX_CT_DELETE) ", "
	OUTBOX_SQL(OUTBOX_CT_WINDOW) ")"
	"   AND (o.kind = " OUTBOX_SQL(OUTBOX_CT_POST) " OR NOT EXISTS (SELECT 1 FROM sales_api.outbox p"
	"        WHERE p.capture_id = o.capture_id AND p.sale_key = o.sale_key AND" WAITING_POST
	"        AND p.id < o.id))"
	/* a lane's second job: plain posts of sales with nothing else in flight */
	"   AND (NOT l.extra OR (o.kind = " OUTBOX_SQL(OUTBOX_CT_POST) " AND NOT o.ambiguous"
	"        AND NOT EXISTS (SELECT 1 FROM sales_api.outbox f WHERE f.capture_id = o.capture_id"
	"        AND f.sale_key = o.sale_key AND f.state = " OUTBOX_SQL(OUTBOX_IN_FLIGHT) ")"
	"        AND NOT " LEASED_SALE("$5", "$6", "o.capture_id", "o.sale_key") "))"
	"   ORDER BY o.id LIMIT l.lim FOR UPDATE OF o SKIP LOCKED) x)"
	" UPDATE sales_api.outbox o SET state = " OUTBOX_SQL(OUTBOX_IN_FLIGHT) ", attempts = o.attempts + 1,"
	"   lease_until = now() + $1 * interval '1 ms',"
	/* a delete removes the version the vendor held when it was first claimed */
	"   vendor_ref = CASE WHEN o.kind <> " OUTBOX_SQL(OUTBOX_CT_DELETE) " OR o.vendor_ref IS NOT NULL THEN o.vendor_ref"
	/* the post it undoes went out on its own: its transactionId; settled by a window: nothing left */
	"     WHEN o.target_post_id IS NOT NULL THEN (SELECT CASE WHEN p.ambiguous THEN NULL"
	/* a window posted a later version under the id it gave this one: not this version's */
	"       WHEN EXISTS (SELECT 1 FROM sales_api.outbox q WHERE q.capture_id = p.capture_id"
	"         AND q.sale_key = p.sale_key AND q.kind = " OUTBOX_SQL(OUTBOX_CT_POST) " AND q.id > p.id"
	"         AND q.vendor_ref = p.vendor_ref) THEN NULL"
	"       ELSE p.vendor_ref END"
	"       FROM sales_api.outbox p WHERE p.id = o.target_post_id)"
	"     ELSE (SELECT cs.transaction_id FROM sales_api.connecteam_sent cs"
	"       WHERE cs.capture_id = o.capture_id AND cs.sale_key = o.sale_key) END"
	" FROM c WHERE o.id = c.id"
	" RETURNING o.id, o.capture_id, o.kind, o.attempts, o.ambiguous, o.sale_key, o.location_id,"
	"   o.sale_type, o.created_at, o.final_sale_amount, o.tax_amount, o.currency,"
	"   o.vendor_ref,"
	"   extract(epoch FROM o.window_start)::bigint, extract(epoch FROM o.window_end)::bigint",
	.nargs = 6, .types = {INT4OID, INT4ARRAYOID, INT4ARRAYOID, BOOLARRAYOID, INT4ARRAYOID, TEXTARRAYOID},
	.generic = true
};

/*
 * A lane's staged sales straight into flight (ct_claim_staged()): $1 its
 * capture, $2 how many sales.  Its oldest staged rows, at most $2 of them
 * (each holds a sale at least), none that a POS transaction holds (it is
 * making items of them itself), none while the lane's server is paused;
 * of those, the rows that start within the first $2 sales.  Rows locked
 * and not taken stay staged, for the lane's next claim.
 */
static OutboxStmt stage_take_stmt = {
	.sql = "WITH l AS (SELECT x.ctid AS c, x.staged_at AS t, coalesce(cardinality(x.sale_keys), 1) AS n"
	"   FROM sales_api.outbox_stage x"
	"  WHERE x.capture_id = $1 AND x.lease_until IS NULL AND NOT EXISTS (SELECT 1 FROM sales_api.capture c"
	"        JOIN sales_api.server_state s ON s.server_id = c.server_id WHERE c.id = $1 AND s.paused)"
	"  ORDER BY x.staged_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
	" SELECT array_agg(w.c ORDER BY w.t), sum(w.n)::int8 FROM (SELECT l.c, l.t, l.n,"
	"   sum(l.n) OVER (ORDER BY l.t ROWS UNBOUNDED PRECEDING) - l.n AS before FROM l) w"
	" WHERE w.before < $2",
	.nargs = 2, .types = {INT4OID, INT4OID}
};

/*
 * ... made items, as outbox_stage.c's stage_move, in the order the POS
 * inserted them: the first $2 in flight, as claim_stmt leaves them (a
 * lane's second job: not a sale with a post in flight), the rest pending.
 * $1 the rows, $3 lease in ms, $4 plain posts only.  Returns claim_stmt's
 * columns (and the state) of the items in flight.
 */
static OutboxStmt stage_claim_stmt = {
	.sql = "WITH s AS (DELETE FROM sales_api.outbox_stage st WHERE st.ctid = ANY ($1) RETURNING st.*),"
	" u AS (SELECT s.capture_id, s.staged_at, x.k, x.loc, x.stype, x.ts, x.amt, x.tax, x.cur,"
	"              row_number() OVER (ORDER BY s.staged_at, x.ord) AS n"
	"   FROM s, " STAGE_SALES_OF_S("x") "),"
	" f AS (SELECT u.*, u.n <= $2 AND (NOT $4 OR (NOT EXISTS (SELECT 1 FROM sales_api.outbox p"
	"         WHERE p.capture_id = u.capture_id AND p.sale_key = u.k"
	"           AND p.state = " OUTBOX_SQL(OUTBOX_IN_FLIGHT) ")"
	"         AND NOT " LEASED_SALE("$5", "$6", "u.capture_id", "u.k") ")) AS go FROM u),"
	" i AS (INSERT INTO sales_api.outbox AS o (capture_id, kind, sale_key, location_id, sale_type, created_at,"
	"                               final_sale_amount, tax_amount, currency, enqueued_at, next_attempt_at,"
	"                               state, attempts, lease_until)"
	" SELECT f.capture_id, " OUTBOX_SQL(OUTBOX_CT_POST) ", f.k, f.loc, f.stype, f.ts, f.amt, f.tax, f.cur,"
	"        f.staged_at, f.staged_at,"
	"        CASE WHEN f.go THEN " OUTBOX_SQL(OUTBOX_IN_FLIGHT) " ELSE " OUTBOX_SQL(OUTBOX_PENDING) " END,"
	"        CASE WHEN f.go THEN 1 ELSE 0 END, CASE WHEN f.go THEN now() + $3 * interval '1 ms' END"
	"   FROM f ORDER BY f.n"
	" RETURNING o.id, o.capture_id, o.kind, o.attempts, o.ambiguous, o.sale_key, o.location_id,"
	"   o.sale_type, o.created_at, o.final_sale_amount, o.tax_amount, o.currency,"
	"   o.vendor_ref, NULL::bigint, NULL::bigint, o.state)"
	" SELECT * FROM i WHERE i.state = " OUTBOX_SQL(OUTBOX_IN_FLIGHT) " ORDER BY i.id",
	.nargs = 6, .types = {TIDARRAYOID, INT4OID, INT4OID, BOOLOID, INT4ARRAYOID, TEXTARRAYOID}, .generic = true
};

/*
 * ... or leased, when the rows hold at most the sales the lane asked for
 * and it is not a second job: the rows stay staged, with a lease, and their
 * sales go into flight as they are, with no outbox item, until the record
 * (outbox.c) deletes the rows and inserts their items in their final state.
 * $1 the rows, $2 lease in ms.  Returns claim_stmt's columns, no id, and
 * the row (as leased), the sale's place in it and the lease.
 */
static OutboxStmt stage_lease_stmt;

/*
 * A second job leases rows only if none of their sales has a post in
 * flight (an item, or a sale of a leased row): $1 the rows, $2 and $3 as
 * LEASED_SALE's
 */
static OutboxStmt stage_in_flight_stmt = {
	.sql = "SELECT EXISTS (SELECT 1 FROM sales_api.outbox_stage st,"
	"   unnest(coalesce(st.sale_keys, ARRAY[st.sale_key])) AS sk(k)"
	"  WHERE st.ctid = ANY ($1) AND (EXISTS (SELECT 1 FROM sales_api.outbox p"
	"         WHERE p.capture_id = st.capture_id AND p.sale_key = sk.k AND p.state = " OUTBOX_SQL(OUTBOX_IN_FLIGHT) ")"
	"       OR " LEASED_SALE("$2", "$3", "st.capture_id", "sk.k") "))",
	.nargs = 3, .types = {TIDARRAYOID, INT4ARRAYOID, TEXTARRAYOID}, .generic = true
};

static OutboxStmt stage_lease_stmt = {
	.sql = "WITH s AS (UPDATE sales_api.outbox_stage st SET lease_until = now() + $2 * interval '1 ms'"
	"   WHERE st.ctid = ANY ($1) RETURNING st.ctid AS tid, st.*)"
	" SELECT NULL::bigint, s.capture_id, " OUTBOX_SQL(OUTBOX_CT_POST) "::text, 1, false, x.k, x.loc, x.stype,"
	"        x.ts, x.amt, x.tax, x.cur, NULL::text, NULL::bigint, NULL::bigint, s.tid, x.ord::int4, s.lease_until"
	"   FROM s, " STAGE_SALES_OF_S("x")
	"  ORDER BY s.staged_at, x.ord",
	.nargs = 2, .types = {TIDARRAYOID, INT4OID}, .generic = true
};

#define REMEMBERED_TYPES {INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, NUMERICARRAYOID}
/* ... and the rest of what a post sends, to tell a version from another */
#define VERSION_TYPES {INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID, NUMERICARRAYOID, \
	TEXTARRAYOID, NUMERICARRAYOID, TEXTARRAYOID}
/* a post of the very version the arrays give (u), compared by all it sends */
#define SAME_VERSION \
	" o.location_id = u.l AND date_trunc('second', o.created_at) = to_timestamp(u.ca)" \
	" AND o.final_sale_amount = u.a AND o.sale_type = u.st" \
	" AND o.tax_amount IS NOT DISTINCT FROM u.tax AND o.currency IS NOT DISTINCT FROM u.cur"

/* the transactionIds the vendor holds, from arrays: a sale given twice keeps its last */
static OutboxStmt remember_stmt = {
	.sql = "INSERT INTO sales_api.connecteam_sent AS s"
	" (capture_id, sale_key, transaction_id, location_id, created_at, final_sale_amount)"
	" SELECT DISTINCT ON (c, k) c, k, t, l, to_timestamp(ca), a"
	"   FROM unnest($1, $2, $3, $4, $5, $6) WITH ORDINALITY AS u(c, k, t, l, ca, a, ord)"
	"  ORDER BY c, k, ord DESC"
	" ON CONFLICT (capture_id, sale_key) DO UPDATE SET transaction_id = excluded.transaction_id,"
	" location_id = excluded.location_id, created_at = excluded.created_at,"
	" final_sale_amount = excluded.final_sale_amount, sent_at = now()",
	.nargs = 6, .types = REMEMBERED_TYPES
};

/*
 * a replaced window: the waiting posts of the very versions it carried are
 * done (Connecteam keeps Unix seconds: a local time is compared by its second).
 * Such a post may have been ambiguous itself: it now holds the window's
 * transactionId for its version, which a later delete of it must remove, so
 * it is ambiguous no more (see the claim of a delete).
 */
static OutboxStmt covered_stmt = {
	.sql = "UPDATE sales_api.outbox o SET state = " OUTBOX_SQL(OUTBOX_SENT) ", sent_at = now(), vendor_ref = u.t,"
	" ambiguous = false, last_error = 'covered by a replaced time window'"
	" FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9) AS u(c, k, t, l, ca, a, st, tax, cur)"
	" WHERE o.capture_id = u.c AND o.sale_key = u.k AND o.kind = " OUTBOX_SQL(OUTBOX_CT_POST)
	" AND o.state IN (" OUTBOX_SQL(OUTBOX_PENDING) ", " OUTBOX_SQL(OUTBOX_FAILED) ") AND" SAME_VERSION,
	.nargs = 9, .types = VERSION_TYPES
};

/*
 * a replaced window posted again versions already sent on their own: their
 * posts hold the new transactionId, which a later delete of them removes
 */
static OutboxStmt reposted_stmt = {
	.sql = "UPDATE sales_api.outbox o SET vendor_ref = u.t"
	" FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9) AS u(c, k, t, l, ca, a, st, tax, cur)"
	" WHERE o.capture_id = u.c AND o.sale_key = u.k AND o.kind = " OUTBOX_SQL(OUTBOX_CT_POST)
	" AND o.state = " OUTBOX_SQL(OUTBOX_SENT) " AND NOT o.ambiguous AND" SAME_VERSION
	" AND o.vendor_ref IS DISTINCT FROM u.t",
	.nargs = 9, .types = VERSION_TYPES
};

/* a deleted version is no longer held */
static OutboxStmt forget_stmt = {
	.sql = "DELETE FROM sales_api.connecteam_sent"
	" WHERE capture_id = $1 AND sale_key = $2 AND transaction_id = $3",
	.nargs = 3, .types = {INT4OID, TEXTOID, TEXTOID}
};

/* a replaced window holds none of the versions it held */
static OutboxStmt forget_window_stmt = {
	.sql = "DELETE FROM sales_api.connecteam_sent WHERE capture_id = $1 AND location_id = $2"
	" AND created_at BETWEEN to_timestamp($3) AND to_timestamp($4)",
	.nargs = 4, .types = {INT4OID, INT8OID, INT8OID, INT8OID}
};

/*
 * A window being replaced is guarded by a ct_window item of its own, written
 * with the claim: if the window fails, or the worker dies with it in flight,
 * the whole window is replaced again after the settle time (the vendor may
 * hold some of its sales under ids never recorded: a repost stored, its
 * answer lost; its ambiguous posts, claimed apart, would each replace their
 * own second only).  $1 capture, $2 location, $3 and $4 its first and last
 * second, $5 the delay in ms.
 */
static OutboxStmt guard_stmt = {
	.sql = "INSERT INTO sales_api.outbox (capture_id, kind, location_id, window_start, window_end,"
	" next_attempt_at, last_error)"
	" VALUES ($1, " OUTBOX_SQL(OUTBOX_CT_WINDOW) ", $2, to_timestamp($3), to_timestamp($4),"
	" now() + $5 * interval '1 ms', 'guards a window being replaced: replaces it again if that fails')"
	" RETURNING id",
	.nargs = 5, .types = {INT4OID, INT8OID, INT8OID, INT8OID, INT8OID}
};

/* the window replaced: its guard goes */
static OutboxStmt unguard_stmt = {
	.sql = "DELETE FROM sales_api.outbox WHERE id = $1",
	.nargs = 1, .types = {INT8OID}
};

/* the window failed: its guard replaces it again, $2 from now in ms, $3 why */
static OutboxStmt reguard_stmt = {
	.sql = "UPDATE sales_api.outbox SET next_attempt_at = now() + $2 * interval '1 ms', last_error = $3"
	" WHERE id = $1 AND state = " OUTBOX_SQL(OUTBOX_PENDING),
	.nargs = 3, .types = {INT8OID, INT8OID, TEXTOID}
};

/*
 * a sale of a replaced window still staged in a row a POS transaction is
 * making items of: its post is made later, and would not be found covered
 */
static OutboxStmt staged_keys_stmt = {
	.sql = "SELECT EXISTS (SELECT 1 FROM sales_api.outbox_stage x WHERE x.capture_id = $1"
	" AND x.lease_until IS NULL AND (x.sale_key = ANY ($2) OR x.sale_keys && $2))",
	.nargs = 2, .types = {INT4OID, TEXTARRAYOID}
};

/* ------------------------------------------------------------------------
 * Claim
 * ------------------------------------------------------------------------
 */

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
				ntax;
	int64		loc = outbox_spi_int64(tup, td, first, &nloc);
	char	   *sale_type = SPI_getvalue(tup, td, first + 1);
	Datum		created = SPI_getbinval(tup, td, first + 2, &ncreated);
	Datum		amount = SPI_getbinval(tup, td, first + 3, &namount);
	Datum		tax = SPI_getbinval(tup, td, first + 4, &ntax);
	char	   *currency = SPI_getvalue(tup, td, first + 5);
	char	   *err;

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

/*
 * Claim Connecteam work: posts, repairs, and deletes whose earlier post is
 * settled, for each lane in c->ct_lanes (capture, most items, plain posts
 * only).
 */
void
outbox_ct_claim(OutboxCycle *c)
{
	int			nlanes = c->ct_nlanes;
	Datum	   *cap;
	Datum	   *lim;
	Datum	   *extra;
	int		   *left;
	OutboxCapture **lane_cap;

	if (nlanes == 0)
		return;
	cap = palloc(sizeof(Datum) * nlanes);
	lim = palloc(sizeof(Datum) * nlanes);
	extra = palloc(sizeof(Datum) * nlanes);
	left = palloc(sizeof(int) * nlanes);
	lane_cap = palloc(sizeof(OutboxCapture *) * nlanes);
	for (int i = 0; i < nlanes; i++)
	{
		left[i] = DatumGetInt32(c->ct_lane_lim[i]);
		lane_cap[i] = outbox_capture(c, DatumGetInt32(c->ct_lane_cap[i]));
		Assert(lane_cap[i] != NULL);
	}

	/*
	 * In statements of at most CT_CLAIM_CHUNK items a lane, so that the
	 * worker's other jobs keep sending between them (outbox_execute() runs
	 * jobs_progress()): each statement takes a lane's oldest due items, as
	 * one statement would, since the items the one before took are
	 * in_flight now.  A lane that got fewer than it asked for takes its
	 * staged sales, oldest first, straight into flight: they come after its
	 * items (made later, their ids are higher), and a large statement's are
	 * staged in parts of what one statement takes, so they are never made
	 * pending items first only to be claimed by a second write.  A lane that
	 * still got fewer than it asked for has no more.
	 */
	for (;;)
	{
		int			k = 0;

		for (int i = 0; i < nlanes; i++)
		{
			if (left[i] <= 0)
				continue;
			cap[k] = c->ct_lane_cap[i];
			lim[k] = Int32GetDatum(Min(left[i], CT_CLAIM_CHUNK));
			extra[k] = c->ct_lane_extra[i];
			k++;
		}
		if (k == 0)
			break;
		for (int i = 0; i < nlanes; i++)
			lane_cap[i]->ct_claimed = 0;
		(void) ct_claim_chunk(c, cap, lim, extra, k);
		for (int i = 0; i < nlanes; i++)
		{
			int			asked = Min(left[i], CT_CLAIM_CHUNK);
			int			got = lane_cap[i]->ct_claimed;

			if (left[i] <= 0)
				continue;
			if (got < asked)
				got += ct_claim_staged(c, c->ct_lane_cap[i], asked - got, c->ct_lane_extra[i]);
			left[i] -= got;
			if (got < asked)
				left[i] = 0;	/* nothing more due now */
			else if (left[i] == 0)
				c->more = true; /* cut by its limit: claim again once its job is done */
		}
	}
}

/* One claim statement for k lanes: their items are added to the cycle; returns how many. */
static uint64
ct_claim_chunk(OutboxCycle *c, Datum *cap, Datum *lim, Datum *extra, int k)
{
	Datum		vals[6];
	bool		any_extra = false;

	for (int i = 0; i < k; i++)
		any_extra |= DatumGetBool(extra[i]);
	outbox_leased_keys(c, any_extra, &vals[4], &vals[5]);
	vals[0] = Int32GetDatum(sales_api_lease_ms);
	vals[1] = PointerGetDatum(construct_array(cap, k, INT4OID, 4, true, TYPALIGN_INT));
	vals[2] = PointerGetDatum(construct_array(lim, k, INT4OID, 4, true, TYPALIGN_INT));
	vals[3] = PointerGetDatum(construct_array(extra, k, BOOLOID, 1, true, TYPALIGN_CHAR));
	if (outbox_execute(&claim_stmt, vals, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim Connecteam outbox items");
	return ct_claimed_items(c, false);
}

/*
 * A lane's staged sales, at most want of them, straight into flight (see
 * outbox_ct_claim()); returns how many were claimed.
 */
static int
ct_claim_staged(OutboxCycle *c, Datum cap, int want, Datum extra)
{
	Datum		vals[6];
	bool		isnull;
	int64		nsales;

	vals[0] = cap;
	vals[1] = Int32GetDatum(want);
	if (outbox_execute(&stage_take_stmt, vals, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not take staged Connecteam sales");
	vals[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return 0;
	nsales = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

	/*
	 * Leased when the rows hold no more than asked for (a large statement's
	 * rows hold what one claim statement takes), and, for a lane's second
	 * job, none of their sales has a post in flight: such a sale waits as a
	 * pending item (stage_claim_stmt), so that two versions of a sale are
	 * never posted at once.
	 */
	if (nsales <= want && DatumGetBool(extra))
	{
		outbox_leased_keys(c, true, &vals[1], &vals[2]);
		if (outbox_execute(&stage_in_flight_stmt, vals, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not look for staged Connecteam sales in flight");
		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
			nsales = INT64_MAX;
	}
	if (nsales <= want)
	{
		vals[1] = Int32GetDatum(sales_api_lease_ms);
		if (outbox_execute(&stage_lease_stmt, vals, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not lease staged Connecteam sales");
		return (int) ct_claimed_items(c, true);
	}
	vals[1] = Int32GetDatum(want);
	vals[2] = Int32GetDatum(sales_api_lease_ms);
	vals[3] = extra;
	outbox_leased_keys(c, DatumGetBool(extra), &vals[4], &vals[5]);
	if (outbox_execute(&stage_claim_stmt, vals, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not make staged Connecteam sales outbox items");
	return (int) ct_claimed_items(c, false);
}

/*
 * The items of the claim statement just run (SPI_tuptable), added to the
 * cycle; returns how many.  leased: staged sales under a lease, with no
 * item yet (stage_lease_stmt).
 */
static uint64
ct_claimed_items(OutboxCycle *c, bool leased)
{
	uint64		n = SPI_processed;
	OutboxItem *items = outbox_add_items(c, n);

	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		OutboxItem *it = &items[i];
		bool		isnull;

		it->id = outbox_spi_int64(tup, td, 1, &isnull);
		if (leased)
		{
			it->leased = true;
			it->lease_tid = *OutboxDatumGetTid(SPI_getbinval(tup, td, 16, &isnull));
			it->lease_ord = (int) outbox_spi_int64(tup, td, 17, &isnull);
			it->lease_until = DatumGetTimestampTz(SPI_getbinval(tup, td, 18, &isnull));
		}
		it->cap = outbox_capture(c, (int) outbox_spi_int64(tup, td, 2, &isnull));
		if (it->cap != NULL)
			it->cap->ct_claimed++;
		it->kind = outbox_kind_from_name(SPI_getvalue(tup, td, 3));
		it->attempts = (int) outbox_spi_int64(tup, td, 4, &isnull);
		it->ambiguous = DatumGetBool(SPI_getbinval(tup, td, 5, &isnull));
		it->sale_key = outbox_spi_str(tup, td, 6, c->cxt);
		it->transaction_id = outbox_spi_str(tup, td, 13, c->cxt);
		if (it->kind == KIND_CT_WINDOW)
		{
			bool		n1,
						n2,
						n3;

			it->txn.location_id = outbox_spi_int64(tup, td, 7, &n1);
			it->window_start = outbox_spi_int64(tup, td, 14, &n2);
			it->window_end = outbox_spi_int64(tup, td, 15, &n3);
			if (n1 || n2 || n3 || it->window_end < it->window_start)
			{
				it->out.result = OUTBOX_PERMANENT;
				it->out.error = "a window repair needs a location_id and window_start <= window_end";
			}
		}
		else if (it->kind == KIND_CT_POST)
		{
			char	   *err = tx_from_spi(&it->txn, c->cxt, tup, td, 7, it->sale_key);

			if (err)
			{
				it->out.result = OUTBOX_PERMANENT;
				it->out.error = err;
			}
			else
				it->txn_valid = true;
		}
	}
	/* everything is copied into the cycle: the rows go now, not at the claim's end */
	SPI_freetuptable(SPI_tuptable);
	return n;
}

/* The window of a capture's location, made when first asked for. */
static OutboxWindow *
window_for(OutboxCycle *c, OutboxCapture *cap, int64 location_id, int64 start, int64 end)
{
	OutboxWindow *w = NULL;
	ListCell   *wc;

	foreach(wc, c->windows)
	{
		OutboxWindow *x = lfirst(wc);

		if (x->cap == cap && x->location_id == location_id)
			w = x;
	}
	if (w == NULL)
	{
		w = MemoryContextAllocZero(c->cxt, sizeof(OutboxWindow));
		w->cap = cap;
		w->location_id = location_id;
		w->start_epoch = start;
		w->end_epoch = end;
		c->windows = outbox_append(c->cxt, c->windows, w);
	}
	w->start_epoch = Min(w->start_epoch, start);
	w->end_epoch = Max(w->end_epoch, end);
	return w;
}

/* Is one of a window's items a window item of the whole window, retried as it is? */
static bool
window_has_repair(OutboxWindow *w)
{
	ListCell   *lc;

	foreach(lc, w->items)
	{
		OutboxItem *it = lfirst(lc);

		if (it->kind == KIND_CT_WINDOW && it->window_start <= w->start_epoch &&
			it->window_end >= w->end_epoch)
			return true;
	}
	return false;
}

/*
 * Every local sale of a window [start, end], as the table's owner (stmt:
 * MS_CT_WINDOW, or MS_CT_WINDOW_LOCK at the record): into *local, *nlocal.
 * False, with *error, if the table could not be read.
 */
static bool
window_read(OutboxCycle *c, OutboxWindow *w, MappingStmt stmt, CtTx **local, int *nlocal, char **error)
{
	Oid			types[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		vals[3];

	vals[0] = Int64GetDatum(w->location_id);
	vals[1] = TimestampTzGetDatum(time_t_to_timestamptz((pg_time_t) w->start_epoch));
	/*
	 * The window holds every sale whose Unix second (what Connecteam stores)
	 * is in [start, end]; the statement reads [$2, $3), so $3 is the second
	 * after the end.
	 */
	vals[2] = TimestampTzGetDatum(time_t_to_timestamptz((pg_time_t) (w->end_epoch + 1)));
	if (!outbox_read_pos(c, w->cap, stmt, 3, types, vals, error))
		return false;
	*nlocal = 0;
	*local = MemoryContextAllocZero(c->cxt, sizeof(CtTx) * (SPI_processed + 1));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	td = SPI_tuptable->tupdesc;

		if (tx_from_spi(&(*local)[*nlocal], c->cxt, tup, td, 2,
						outbox_spi_str(tup, td, 1, c->cxt)) == NULL)
			(*nlocal)++;
	}
	return true;
}

/* A window's local sales, read with the claim; unreadable: not sent. */
static void
window_read_local(OutboxCycle *c, OutboxWindow *w)
{
	char	   *error = NULL;

	if (!window_read(c, w, MS_CT_WINDOW, &w->local, &w->nlocal, &error))
	{
		/* nothing is deleted at the vendor: its items stay ambiguous */
		w->unread = true;
		w->ok = false;
		w->error = MemoryContextStrdup(c->cxt, psprintf("could not read the window's local sales: %s", error));
	}
}

/*
 * The windows to replace: an operator's repairs, and the locations of
 * ambiguous posts (replace_window policy; under park those posts are not
 * sent).  A post claimed in this cycle whose sale falls in a window is
 * carried by the window's repost: sending it as well would store it twice.
 */
void
outbox_ct_plan_windows(OutboxCycle *c)
{
	ListCell   *lc;

	for (int i = 0; i < c->nitems; i++)
	{
		OutboxItem *it = &c->items[i];
		OutboxWindow *w;

		if (it->out.result != OUTBOX_NOT_TRIED ||
			!(it->kind == KIND_CT_WINDOW || (it->kind == KIND_CT_POST && it->ambiguous)))
			continue;
		if (it->kind == KIND_CT_POST && !outbox_replaces_windows())
		{
			it->out.result = OUTBOX_MAYBE_STORED;
			continue;
		}

		/*
		 * A window replacement deletes everything Connecteam holds for the
		 * location and time range, and posts again the sales of this
		 * capture's table only: another table captured for the same server
		 * (the same account) would lose its sales there.  Such a post is
		 * parked, and a repair refused.
		 */
		if (it->cap->shares_server != NULL)
		{
			char	   *why = psprintf("its server also receives the sales of %s, which replacing a time window would delete at Connecteam",
									   it->cap->shares_server);

			if (it->kind == KIND_CT_POST)
			{
				it->out.result = OUTBOX_MAYBE_STORED;
				it->out.park = MemoryContextStrdup(c->cxt, why);
			}
			else
			{
				it->out.result = OUTBOX_PERMANENT;
				it->out.error = MemoryContextStrdup(c->cxt, psprintf("window not replaced: %s", why));
			}
			continue;
		}
		if (it->kind == KIND_CT_WINDOW)
			w = window_for(c, it->cap, it->txn.location_id, it->window_start, it->window_end);
		else
			w = window_for(c, it->cap, it->txn.location_id, it->txn.created_at, it->txn.created_at);
		w->items = outbox_append(c->cxt, w->items, it);
		it->out.result = OUTBOX_IN_WINDOW;
	}
	for (int i = 0; i < c->nitems; i++)
	{
		OutboxItem *it = &c->items[i];

		if (it->kind != KIND_CT_POST || it->out.result != OUTBOX_NOT_TRIED || !it->txn_valid)
			continue;
		foreach(lc, c->windows)
		{
			OutboxWindow *w = lfirst(lc);

			if (w->cap == it->cap && w->location_id == it->txn.location_id &&
				it->txn.created_at >= w->start_epoch && it->txn.created_at <= w->end_epoch)
			{
				w->items = outbox_append(c->cxt, w->items, it);
				it->out.result = OUTBOX_IN_WINDOW;
				break;
			}
		}
	}
	foreach(lc, c->windows)
	{
		OutboxWindow *w = lfirst(lc);
		Datum		vals[5];
		bool		isnull;

		window_read_local(c, w);
		if (w->unread || window_has_repair(w))
			continue;
		vals[0] = Int32GetDatum(w->cap->id);
		vals[1] = Int64GetDatum(w->location_id);
		vals[2] = Int64GetDatum(w->start_epoch);
		vals[3] = Int64GetDatum(w->end_epoch);
		vals[4] = Int64GetDatum((int64) sales_api_ambiguous_settle_ms + sales_api_lease_ms);
		if (outbox_execute(&guard_stmt, vals, NULL, false, 1) != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
			elog(ERROR, "could not guard a window being replaced");
		w->guard_id = outbox_spi_int64(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	}
}

/* ------------------------------------------------------------------------
 * Send
 * ------------------------------------------------------------------------
 */

/* why a request of a window did not go through */
static char *
window_error(const char *step, SalesApiServer *srv, RateLimitRun *run, int r, HttpRequest *req)
{
	if (run->not_sent[r])
		return ratelimit_describe(srv, run);
	if (req->done)
		return psprintf("%s: HTTP %ld: %s", step, req->status, vendor_error_message(req));
	return psprintf("%s: %s", step, http_transport_error(req));
}

/* A window's reposts answered: the transactionIds of its local sales. */
static void
window_reposted(OutboxJob *job, OutboxPhase *ph)
{
	OutboxWindow *w = ph->arg;
	SalesApiServer *srv = job->cap->srv;
	CtTxResult *wres = palloc0(sizeof(CtTxResult) * (w->nlocal + 1));

	for (int r = 0; r < ph->n; r++)
	{
		int			from = r * CT_MAX_ITEMS;
		int			n = Min(CT_MAX_ITEMS, w->nlocal - from);

		if (!ph->run->not_sent[r] && vendor_ok(ph->reqs[r]))
		{
			ct_tx_success(ph->reqs[r], w->local, wres, from, n);
			for (int k = 0; k < n; k++)
			{
				w->ids[from + k] = wres[from + k].transaction_id;
				/* stored, but under an id the answer does not give */
				if (w->ids[from + k] == NULL)
				{
					w->ok = false;
					w->error = psprintf("window repost: the answer names no transactionId for a sale: %s",
										wres[from + k].error ? wres[from + k].error : "unknown");
				}
			}
		}
		else
		{
			w->ok = false;
			w->http_status = (int) ph->reqs[r]->status;
			w->error = window_error("window repost", srv, ph->run, r, ph->reqs[r]);
		}
	}
}

/* A window deleted at the vendor: post every local sale of it again, next. */
static void
window_deleted(OutboxJob *job, OutboxPhase *ph)
{
	OutboxWindow *w = ph->arg;
	SalesApiServer *srv = job->cap->srv;
	HttpRequest **posts;
	int			nposts;

	if (worker_shared)
	{
		SpinLockAcquire(&worker_shared->mutex);
		worker_shared->retries++;
		SpinLockRelease(&worker_shared->mutex);
	}
	if (ph->run->not_sent[0] || !vendor_ok(ph->reqs[0]))
	{
		w->ok = false;
		w->http_status = (int) ph->reqs[0]->status;
		w->error = window_error("window delete", srv, ph->run, 0, ph->reqs[0]);
		return;
	}
	w->ok = true;
	w->deleted = true;
	nposts = (w->nlocal + CT_MAX_ITEMS - 1) / CT_MAX_ITEMS;
	w->ids = palloc0(sizeof(char *) * (w->nlocal + 1));
	if (nposts == 0)
		return;
	posts = palloc(sizeof(HttpRequest *) * nposts);
	for (int r = 0; r < nposts; r++)
	{
		int			from = r * CT_MAX_ITEMS;

		posts[r] = ct_build_post(srv, w->local + from, Min(CT_MAX_ITEMS, w->nlocal - from));
	}
	outbox_job_add_phase(job, true, posts, nposts, 0, window_reposted, w);
}

/*
 * Replace a capture's windows: delete the location's window at the vendor,
 * then post every local sale of the window again.
 */
static void
plan_windows(OutboxJob *job)
{
	ListCell   *lc;

	foreach(lc, job->c->windows)
	{
		OutboxWindow *w = lfirst(lc);
		HttpRequest **del;

		if (w->cap != job->cap || w->unread)
			continue;
		del = palloc(sizeof(HttpRequest *));
		del[0] = ct_build_delete_range(job->cap->srv, w->location_id, w->start_epoch, w->end_epoch);
		outbox_job_add_phase(job, false, del, 1, RL_IDEMPOTENT, window_deleted, w);
	}
}

typedef struct ItemsSent
{
	OutboxItem **items;
	int			n;
	CtTx	   *txs;			/* posts */
} ItemsSent;

/* A capture's deletes answered. */
static void
deletes_done(OutboxJob *job, OutboxPhase *ph)
{
	ItemsSent  *d = ph->arg;

	for (int i = 0; i < d->n; i++)
	{
		OutboxOutcome *o = &d->items[i]->out;
		HttpRequest *req = ph->reqs[i];

		if (ph->run->not_sent[i])
		{
			o->result = OUTBOX_HELD;
			o->error = ratelimit_describe(job->cap->srv, ph->run);
			o->held_until = ph->run->retry_at;
			continue;
		}
		if (req->done && req->status == 404)
		{
			o->result = OUTBOX_DONE;
			o->http_status = 404;
			o->error = "the vendor no longer had this transaction";
			continue;
		}
		outbox_outcome_from_request(o, req, false);
		o->vendor_ref = d->items[i]->transaction_id;
	}
}

/* A capture's deletes, by the transactionId the vendor holds. */
static void
plan_deletes(OutboxJob *job)
{
	OutboxCycle *c = job->c;
	ItemsSent  *d = palloc0(sizeof(ItemsSent));
	HttpRequest **reqs = palloc(sizeof(HttpRequest *) * (c->nitems + 1));

	d->items = palloc(sizeof(OutboxItem *) * (c->nitems + 1));
	for (int i = 0; i < c->nitems; i++)
	{
		OutboxItem *it = &c->items[i];

		if (it->cap != job->cap || it->kind != KIND_CT_DELETE || it->out.result != OUTBOX_NOT_TRIED)
			continue;
		if (it->transaction_id == NULL)
		{
			/* the sale never reached the vendor, or was deleted by a window: nothing to do */
			it->out.result = OUTBOX_DONE;
			it->out.error = "no transactionId is known for this sale: nothing to delete";
			continue;
		}
		d->items[d->n] = it;
		reqs[d->n++] = ct_build_delete(job->cap->srv, it->transaction_id);
	}
	if (d->n > 0)
		outbox_job_add_phase(job, false, reqs, d->n, RL_IDEMPOTENT, deletes_done, d);
}

/* A capture's posts answered: each sale's transactionId, or why not. */
static void
posts_done(OutboxJob *job, OutboxPhase *ph)
{
	ItemsSent  *p = ph->arg;
	CtTxResult *res = palloc0(sizeof(CtTxResult) * p->n);

	for (int r = 0; r < ph->n; r++)
	{
		int			from = r * CT_MAX_ITEMS;
		int			n = Min(CT_MAX_ITEMS, p->n - from);

		if (!ph->run->not_sent[r] && vendor_ok(ph->reqs[r]))
			ct_tx_success(ph->reqs[r], p->txs, res, from, n);
		for (int k = 0; k < n; k++)
		{
			OutboxOutcome *o = &p->items[from + k]->out;

			if (ph->run->not_sent[r])
			{
				o->result = OUTBOX_HELD;
				o->error = ratelimit_describe(job->cap->srv, ph->run);
				o->held_until = ph->run->retry_at;
				continue;
			}
			outbox_outcome_from_request(o, ph->reqs[r], true);
			if (o->result == OUTBOX_DONE)
			{
				o->vendor_ref = res[from + k].transaction_id;
				o->error = res[from + k].error;

				/*
				 * Stored, but the answer does not say under which id: an
				 * update or delete of the sale could never reach it.  The
				 * ambiguous policy replaces the location's window (which
				 * reads the ids back) or parks the sale for an operator.
				 */
				if (o->vendor_ref == NULL)
					outbox_outcome_maybe_stored(o);
			}
		}
	}
}

/* A capture's posts: full requests of 100, rate-paced. */
static void
plan_posts(OutboxJob *job)
{
	OutboxCycle *c = job->c;
	ItemsSent  *p = palloc0(sizeof(ItemsSent));
	HttpRequest **reqs;
	int			nreqs;

	p->items = palloc(sizeof(OutboxItem *) * (c->nitems + 1));
	for (int i = 0; i < c->nitems; i++)
	{
		OutboxItem *it = &c->items[i];

		if (it->cap == job->cap && it->kind == KIND_CT_POST && it->out.result == OUTBOX_NOT_TRIED)
			p->items[p->n++] = it;
	}
	if (p->n == 0)
		return;
	nreqs = (p->n + CT_MAX_ITEMS - 1) / CT_MAX_ITEMS;
	reqs = palloc(sizeof(HttpRequest *) * nreqs);
	p->txs = palloc(sizeof(CtTx) * p->n);
	for (int k = 0; k < p->n; k++)
		p->txs[k] = p->items[k]->txn;
	for (int r = 0; r < nreqs; r++)
	{
		int			from = r * CT_MAX_ITEMS;

		reqs[r] = ct_build_post(job->cap->srv, p->txs + from, Min(CT_MAX_ITEMS, p->n - from));
	}
	outbox_job_add_phase(job, false, reqs, nreqs, 0, posts_done, p);
}

/*
 * A capture's Connecteam work as the job's phases, run one after the
 * other: windows (each a delete, then its reposts), deletes, posts; an
 * update's old version goes before its new one is posted.
 */
void
outbox_ct_plan(OutboxJob *job)
{
	plan_windows(job);
	plan_deletes(job);
	plan_posts(job);
}

/* ------------------------------------------------------------------------
 * Record
 * ------------------------------------------------------------------------
 */

/* Do two transactions carry the same values (the reference aside)? */
static bool
ct_tx_same(const CtTx *a, const CtTx *b)
{
	if (a->location_id != b->location_id || a->created_at != b->created_at ||
		strcmp(a->sale_type, b->sale_type) != 0 ||
		!DatumGetBool(DirectFunctionCall2(numeric_eq, a->final_amount, b->final_amount)) ||
		a->has_tax != b->has_tax || (a->currency == NULL) != (b->currency == NULL))
		return false;
	if (a->has_tax && !DatumGetBool(DirectFunctionCall2(numeric_eq, a->tax_amount, b->tax_amount)))
		return false;
	return a->currency == NULL || strcmp(a->currency, b->currency) == 0;
}

/* The transactionId a replaced window got for this very version of the item's sale, or NULL. */
static char *
window_posted_id(OutboxWindow *w, OutboxItem *it)
{
	if (it->kind != KIND_CT_POST || !it->txn_valid || it->sale_key == NULL || w->ids == NULL)
		return NULL;
	for (int k = 0; k < w->nlocal; k++)
	{
		CtTx	   *l = &w->local[k];

		if (l->reference == NULL || strcmp(l->reference, it->sale_key) != 0)
			continue;
		return ct_tx_same(l, &it->txn) ? w->ids[k] : NULL;
	}
	return NULL;
}

static int
tx_ref_cmp(const void *a, const void *b)
{
	const CtTx *x = *(const CtTx *const *) a;
	const CtTx *y = *(const CtTx *const *) b;

	return strcmp(x->reference, y->reference);
}

/* A window's sales that have a key, sorted by it. */
static CtTx **
txs_by_key(CtTx *txs, int n, int *nkeyed)
{
	CtTx	  **v = palloc(sizeof(CtTx *) * (n + 1));

	*nkeyed = 0;
	for (int k = 0; k < n; k++)
		if (txs[k].reference != NULL)
			v[(*nkeyed)++] = &txs[k];
	qsort(v, *nkeyed, sizeof(CtTx *), tx_ref_cmp);
	return v;
}

/*
 * Is what a replaced window posted still what the POS holds, now, at its
 * record?  The window read its local sales with the claim; a sale changed
 * or deleted since (its old version's delete queued with the ids of before
 * the window), or one still staged in a row a POS transaction is making
 * items of (its post, made later, would not be found covered), leaves the
 * window not replaced: its guard replaces it again.  The rows read now stay
 * locked until the record commits, so a change after it finds the window's
 * ids.
 */
static void
window_verify(OutboxCycle *c, OutboxWindow *w)
{
	CtTx	   *now_local;
	int			now_n;
	CtTx	  **was,
			  **is;
	int			nwas,
				nis,
				j = 0;
	char	   *error = NULL;
	Datum		vals[2];
	Datum	   *keys;
	bool		isnull;

	if (!w->ok || w->nlocal == 0)
		return;
	was = txs_by_key(w->local, w->nlocal, &nwas);
	keys = palloc(sizeof(Datum) * (nwas + 1));
	for (int k = 0; k < nwas; k++)
		keys[k] = CStringGetTextDatum(was[k]->reference);
	vals[0] = Int32GetDatum(w->cap->id);
	vals[1] = PointerGetDatum(construct_array(keys, nwas, TEXTOID, -1, false, TYPALIGN_INT));
	/*
	 * Not read-only: a read-only statement keeps the snapshot of the record's
	 * start and would not see the staged rows that record() made items just
	 * before (outbox_stage_expand()), which then looked still staged.
	 */
	if (outbox_execute(&staged_keys_stmt, vals, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not look for staged sales of a window");
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		w->ok = false;
		w->error = "a sale of the window is still staged by a POS transaction";
		return;
	}
	if (!window_read(c, w, MS_CT_WINDOW_LOCK, &now_local, &now_n, &error))
	{
		w->ok = false;
		w->error = psprintf("could not read the window's local sales again: %s", error);
		return;
	}
	is = txs_by_key(now_local, now_n, &nis);
	/* every sale posted is there, unchanged (a sale added since is posted on its own) */
	for (int k = 0; k < nwas; k++)
	{
		int			cmp = 1;

		while (j < nis && (cmp = strcmp(is[j]->reference, was[k]->reference)) < 0)
			j++;
		if (j >= nis || cmp != 0 || !ct_tx_same(was[k], is[j]))
		{
			w->ok = false;
			w->error = "a sale of the window changed while it was replaced";
			return;
		}
	}
}

/* The items of the cycle's windows: replaced, or still ambiguous. */
void
outbox_ct_settle_windows(OutboxCycle *c)
{
	ListCell   *lc;

	foreach(lc, c->windows)
		window_verify(c, lfirst(lc));
	foreach(lc, c->windows)
	{
		OutboxWindow *w = lfirst(lc);
		ListCell   *ic;

		foreach(ic, w->items)
		{
			OutboxItem *it = lfirst(ic);
			OutboxOutcome *o = &it->out;

			if (w->ok)
			{
				/*
				 * The window posted the sale's version as the POS held it
				 * when the window was read: if that is this item's version
				 * (the sale was not changed meanwhile), the item holds its
				 * transactionId, which a later delete of this version must
				 * remove; if the sale has changed since, the newer version
				 * was posted, and connecteam_sent has its id.
				 */
				o->result = OUTBOX_WINDOW_REPLACED;
				o->vendor_ref = window_posted_id(w, it);
				o->error = "settled by replacing the location's time window at the vendor";
			}
			else
			{
				o->result = OUTBOX_IN_WINDOW;
				o->error = w->error;
				o->http_status = w->http_status;
			}
		}
	}
}

/*
 * The transactionIds the vendor holds for sales (their latest versions),
 * gathered and then written to connecteam_sent in one INSERT ... SELECT FROM
 * unnest().
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
	/* the rest of each version, to tell it from another (covered, reposted) */
	Datum	   *types;
	Datum	   *taxes;
	bool	   *tax_nulls;
	Datum	   *currencies;
	bool	   *currency_nulls;
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
	r->types = palloc(sizeof(Datum) * (max + 1));
	r->taxes = palloc(sizeof(Datum) * (max + 1));
	r->tax_nulls = palloc(sizeof(bool) * (max + 1));
	r->currencies = palloc(sizeof(Datum) * (max + 1));
	r->currency_nulls = palloc(sizeof(bool) * (max + 1));
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
	r->types[r->n] = CStringGetTextDatum(tx->sale_type);
	r->taxes[r->n] = tx->has_tax ? tx->tax_amount : (Datum) 0;
	r->tax_nulls[r->n] = !tx->has_tax;
	r->currencies[r->n] = tx->currency ? CStringGetTextDatum(tx->currency) : (Datum) 0;
	r->currency_nulls[r->n] = (tx->currency == NULL);
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
	/*
	 * A post's ids in statements of REMEMBER_CHUNK, so that jobs_progress()
	 * starts the requests that wait between them; a key given again in a
	 * later statement keeps its last there too.  A window's in one.
	 */
	int			chunk = covered ? Max(r->n, 1) : REMEMBER_CHUNK;

	for (int from = 0; from < r->n; from += chunk)
	{
		int			k = Min(chunk, r->n - from);
		Datum		vals[9];

		vals[0] = PointerGetDatum(construct_array(r->caps + from, k, INT4OID, 4, true, TYPALIGN_INT));
		vals[1] = PointerGetDatum(construct_array(r->keys + from, k, TEXTOID, -1, false, TYPALIGN_INT));
		vals[2] = PointerGetDatum(construct_array(r->tids + from, k, TEXTOID, -1, false, TYPALIGN_INT));
		vals[3] = PointerGetDatum(construct_array(r->locs + from, k, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		vals[4] = PointerGetDatum(construct_array(r->times + from, k, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		vals[5] = PointerGetDatum(construct_array(r->amounts + from, k, NUMERICOID, -1, false, TYPALIGN_INT));
		vals[6] = PointerGetDatum(construct_array(r->types + from, k, TEXTOID, -1, false, TYPALIGN_INT));
		vals[7] = outbox_array_with_nulls(r->taxes + from, r->tax_nulls + from, k, NUMERICOID, -1, false, TYPALIGN_INT);
		vals[8] = outbox_array_with_nulls(r->currencies + from, r->currency_nulls + from, k, TEXTOID, -1, false,
								   TYPALIGN_INT);
		if (outbox_execute(&remember_stmt, vals, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record Connecteam transactionIds");
		if (covered && outbox_execute(&covered_stmt, vals, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not record the posts a replaced window carried");
		if (covered && outbox_execute(&reposted_stmt, vals, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not record the posts a replaced window posted again");
	}
	r->n = 0;
}

/*
 * The transactionIds the vendor now holds: the posts' in one statement (the
 * deletes remove an older id only, so their order against the posts' upsert
 * does not matter), then each replaced window's.
 */
void
outbox_ct_record(OutboxCycle *c)
{
	Remember	r;
	ListCell   *lc;

	remember_init(&r, c->nitems);
	for (int i = 0; i < c->nitems; i++)
	{
		OutboxItem *it = &c->items[i];

		if (it->kind == KIND_CT_POST && it->out.result == OUTBOX_DONE && it->out.vendor_ref && it->sale_key)
			remember_add(&r, it->cap->id, it->sale_key, it->out.vendor_ref, &it->txn);
	}
	remember_flush(&r, false);

	for (int i = 0; i < c->nitems; i++)
	{
		OutboxItem *it = &c->items[i];
		Datum		vals[3];

		if (it->kind == KIND_CT_DELETE && it->out.result == OUTBOX_DONE && it->transaction_id)
		{
			vals[0] = Int32GetDatum(it->cap->id);
			vals[1] = CStringGetTextDatum(it->sale_key);
			vals[2] = CStringGetTextDatum(it->transaction_id);
			outbox_execute(&forget_stmt, vals, NULL, false, 0);
		}
	}

	/*
	 * A replaced window: the vendor holds exactly the local sales, with new
	 * ids.  A window deleted whose reposts did not all go through holds none
	 * of its old ids and those of the reposts that did; it is replaced again,
	 * whole, by a window item of its own (its ambiguous posts, claimed apart,
	 * might each make a narrower one, leaving a stored repost behind).
	 */
	foreach(lc, c->windows)
	{
		OutboxWindow *w = lfirst(lc);
		Datum		vals[6];

		if (w->guard_id != 0)
		{
			vals[0] = Int64GetDatum(w->guard_id);
			if (w->ok)
				outbox_execute(&unguard_stmt, vals, NULL, false, 0);
			else
			{
				vals[1] = Int64GetDatum(sales_api_ambiguous_settle_ms);
				vals[2] = CStringGetTextDatum(psprintf("replaces again a window that failed: %s",
													   w->error ? w->error : "unknown error"));
				outbox_execute(&reguard_stmt, vals, NULL, false, 0);
			}
		}
		if (!w->deleted)
			continue;
		vals[0] = Int32GetDatum(w->cap->id);
		vals[1] = Int64GetDatum(w->location_id);
		vals[2] = Int64GetDatum(w->start_epoch);
		vals[3] = Int64GetDatum(w->end_epoch);
		outbox_execute(&forget_window_stmt, vals, NULL, false, 0);
		remember_init(&r, w->nlocal);
		for (int k = 0; k < w->nlocal; k++)
			if (w->ids[k] != NULL && w->local[k].reference != NULL)
				remember_add(&r, w->cap->id, w->local[k].reference, w->ids[k], &w->local[k]);
		/* and a waiting post of the very version the window carried is done */
		remember_flush(&r, w->ok);
	}
}

/*
 * The statements of posts and deletes, prepared when the worker starts
 * (outbox_warm()); not the window's, which an unknown outcome needs
 */
void
outbox_ct_warm(void)
{
	static OutboxStmt *const stmts[] = {
		&claim_stmt, &stage_take_stmt, &stage_claim_stmt, &stage_in_flight_stmt,
		&stage_lease_stmt, &remember_stmt, &forget_stmt
	};

	outbox_warm(stmts, lengthof(stmts));
}
