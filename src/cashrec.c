/*-------------------------------------------------------------------------
 *
 * cashrec.c
 *		Mapal Cashrec: cashrec_fetch() returns the cash-sheet (till shift)
 *		records of a period and a list of centres as typed rows, each with
 *		the whole record as jsonb.
 *
 * Design note.  Requests, record fields and parsing are cashrec_wire.c's.
 * A long period is cut into windows of cashrec_max_days days and a long
 * centre list into chunks of cashrec_max_centers; every (window, chunk)
 * pair is one request, sent through ratelimit_perform_all() at most
 * sales_api.max_concurrency at a time: the requests are idempotent GETs,
 * so a timeout, a 5xx (after its Retry-After, when the vendor gives one)
 * or a 429 is sent again rather than failing the whole call.  Windows are
 * consecutive and inclusive to the second (the vendor's format has no
 * fractions), so none overlaps; records are still de-duplicated on (centerId, cashSheetId) in
 * case a vendor selects by business day rather than by opening time.  The
 * rows come out in a fixed order: centre, opening time, cash-sheet id.
 *
 * The requests are sent and parsed in batches of sales_api.max_concurrency,
 * and each response is parsed in its own memory context, deleted once its
 * rows are extracted, with the body freed after it: at most one batch of
 * bodies and the json-c tree of one response are alive at a time, not a
 * thousand bodies of up to sales_api.max_response_size each.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sa_json.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "cashrec_wire.h"
#include "mapal_wire.h"
#include "miscadmin.h"
#include "ratelimit.h"
#include "rows.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "server.h"
#include "vendor.h"

PG_FUNCTION_INFO_V1(sales_api_cashrec_fetch);

/* ------------------------------------------------------------------------
 * The order of the rows
 * ------------------------------------------------------------------------
 */

static int
cmp_int64_nulls_last(const CashRow *a, const CashRow *b, int col)
{
	if (a->nulls[col] != b->nulls[col])
		return a->nulls[col] ? 1 : -1;
	if (a->nulls[col])
		return 0;
	if (DatumGetInt64(a->values[col]) != DatumGetInt64(b->values[col]))
		return DatumGetInt64(a->values[col]) < DatumGetInt64(b->values[col]) ? -1 : 1;
	return 0;
}

static int
cmp_sheet_id(const CashRow *a, const CashRow *b)
{
	if ((a->sheet_id == NULL) != (b->sheet_id == NULL))
		return a->sheet_id == NULL ? 1 : -1;
	if (a->sheet_id == NULL)
		return 0;
	return strcmp(a->sheet_id, b->sheet_id);
}

/* (centre, cash-sheet id, arrival): duplicates end up side by side */
static int
cash_dedup_cmp(const void *x, const void *y)
{
	const CashRow *a = *(CashRow *const *) x;
	const CashRow *b = *(CashRow *const *) y;
	int			c;

	if ((c = cmp_int64_nulls_last(a, b, CF_CENTER)) != 0)
		return c;
	if ((c = cmp_sheet_id(a, b)) != 0)
		return c;
	return a->seq - b->seq;
}

/* the result order: centre, opening time, cash-sheet id, arrival */
static int
cash_order_cmp(const void *x, const void *y)
{
	const CashRow *a = *(CashRow *const *) x;
	const CashRow *b = *(CashRow *const *) y;
	int			c;

	if ((c = cmp_int64_nulls_last(a, b, CF_CENTER)) != 0)
		return c;
	if ((c = cmp_int64_nulls_last(a, b, CF_OPENED)) != 0)	/* Timestamp is int64 */
		return c;
	if ((c = cmp_sheet_id(a, b)) != 0)
		return c;
	return a->seq - b->seq;
}

static void
check_period_bound(Timestamp t, const char *argname)
{
	if (!dates_timestamp_in_range(t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite timestamp between the years 1 and 9999", argname),
				 errdetail("%s is %s.", argname, dates_timestamp_str(t)),
				 errhint("Cashrec takes local times written yyyy-MM-ddTHH:mm:ss.")));
}

typedef struct CenterPos
{
	int64		id;
	int			pos;
} CenterPos;

static int
center_pos_cmp(const void *a, const void *b)
{
	const CenterPos *x = (const CenterPos *) a;
	const CenterPos *y = (const CenterPos *) b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->pos - y->pos;
}

/*
 * The centre ids: one-dimensional, no NULLs, positive; duplicates dropped
 * (sorted, not compared pairwise: the array can be long), first occurrences
 * kept in input order.
 */
static int64 *
centers_from_array(ArrayType *arr, int *ncenters)
{
	int64	   *ids;
	int			n = rows_int8_array(arr, "centers", &ids);
	int64	   *out;
	CenterPos  *sorted;
	bool	   *keep;
	int			k = 0;

	sorted = palloc(sizeof(CenterPos) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		int64		c = ids[i];

		CHECK_FOR_INTERRUPTS();
		if (c <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("centers has an invalid centre id at position %d: " INT64_FORMAT,
							i + 1, c),
					 errhint("Centre ids are the positive integers Mapal OS gives business centres.")));
		sorted[i].id = c;
		sorted[i].pos = i;
	}
	qsort(sorted, n, sizeof(CenterPos), center_pos_cmp);
	keep = palloc0(sizeof(bool) * Max(n, 1));
	for (int i = 0; i < n; i++)
		if (i == 0 || sorted[i].id != sorted[i - 1].id)
			keep[sorted[i].pos] = true;
	out = palloc(sizeof(int64) * Max(n, 1));
	for (int i = 0; i < n; i++)
		if (keep[i])
			out[k++] = ids[i];
	pfree(sorted);
	pfree(keep);
	*ncenters = k;
	return out;
}

/*
 * cashrec_fetch(server name, start_time timestamp, end_time timestamp,
 *               centers bigint[]) -> setof cash-sheet rows
 */
Datum
sales_api_cashrec_fetch(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SalesApiServer *srv;
	Timestamp	start;
	Timestamp	end;
	int64	   *centers;
	int			ncenters;
	int			nreqs;
	CashRequest *crs;
	HttpRequest **reqs;
	int			batch;
	pg_tz	   *tz;
	CashRow   **rows;
	int			nrows = 0;
	int			cap = 64;

	if (PG_ARGISNULL(0))
		server_name_null_error();
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("start_time and end_time must not be null"),
				 errhint("Both bounds are required and inclusive; for one day pass e.g. '2026-11-20 00:00:00' and '2026-11-20 23:59:59'.")));
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("centers must not be null"),
				 errhint("Pass the centre ids as an array, for example ARRAY[101, 102].")));
	start = PG_GETARG_TIMESTAMP(1);
	end = PG_GETARG_TIMESTAMP(2);
	check_period_bound(start, "start_time");
	check_period_bound(end, "end_time");
	if (end < start)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("end_time %s is before start_time %s",
						dates_timestamp_str(end), dates_timestamp_str(start)),
				 errhint("Both bounds are inclusive; for one day pass e.g. '2026-11-20 00:00:00' and '2026-11-20 23:59:59'.")));
	centers = centers_from_array(PG_GETARG_ARRAYTYPE_P(3), &ncenters);

	srv = server_lookup(NameStr(*PG_GETARG_NAME(0)), VENDOR_MAPAL);
	tz = mapal_timezone(srv->timezone);
	InitMaterializedSRF(fcinfo, 0);
	if (ncenters == 0)
		return (Datum) 0;

	crs = cashrec_build_requests(srv, start, end, centers, ncenters, &reqs, &nreqs);

	/*
	 * Send and parse in batches of sales_api.max_concurrency, dropping each
	 * body once its rows are out: a body can be up to
	 * sales_api.max_response_size, and there can be 1000 requests.  GETs: a
	 * timeout, a 5xx or a 429 is sent again (ratelimit.c).
	 */
	rows = palloc(sizeof(CashRow *) * cap);
	batch = Max(sales_api_max_concurrency, 1);
	for (int from = 0; from < nreqs; from += batch)
	{
		int			n = Min(batch, nreqs - from);
		RateLimitRun *run = ratelimit_perform_all(srv, reqs + from, n, true);

		for (int i = 0; i < n; i++)
			if (!run->not_sent[i] && !vendor_ok(crs[from + i].req))
				cashrec_report_error(&crs[from + i]);
		if (run->nnot_sent > 0)
			ratelimit_report(srv, run, ERROR, "Mapal Cashrec");
		for (int i = 0; i < n; i++)
		{
			HttpRequest *req = crs[from + i].req;

			CHECK_FOR_INTERRUPTS();
			cashrec_response_rows(&crs[from + i], tz, &rows, &nrows, &cap);
			if (req->resp != NULL)
				pfree(req->resp);
			req->resp = NULL;
			req->resp_len = 0;
		}
	}

	/* drop repeated (centre, cash sheet) pairs, then order */
	if (nrows > 1)
	{
		int			kept = 0;

		qsort(rows, nrows, sizeof(CashRow *), cash_dedup_cmp);
		for (int i = 1; i < nrows; i++)
			if (rows[i]->sheet_id != NULL && !rows[i]->nulls[CF_CENTER] &&
				cmp_int64_nulls_last(rows[i], rows[i - 1], CF_CENTER) == 0 &&
				cmp_sheet_id(rows[i], rows[i - 1]) == 0)
				rows[i]->dup = true;
		for (int i = 0; i < nrows; i++)
			if (!rows[i]->dup)
				rows[kept++] = rows[i];
		nrows = kept;
		qsort(rows, nrows, sizeof(CashRow *), cash_order_cmp);
	}
	for (int i = 0; i < nrows; i++)
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 rows[i]->values, rows[i]->nulls);
	return (Datum) 0;
}
