/*-------------------------------------------------------------------------
 *
 * mapal.c
 *		Mapal OS Real-time Sales from SQL: mapal_push_sales() in its two
 *		input forms (an array of sales_api.mapal_sale, or a relation or query
 *		with the same column names), and mapal_slot() and time_slot(), which
 *		turn raw sales timestamps into slot starts.  The request and the
 *		slots themselves are mapal_wire.c's.
 *
 * Design note.  A push runs in four steps, and nothing leaves the database
 * before the first three are done:
 *   1. read every row (rows.c, one code path for both forms);
 *   2. validate every row, naming the first offending one by its 1-based
 *      position and its values: the vendor answers a bad slot with a 400
 *      for the whole (unit, business day), so catching it here is cheaper
 *      and says more;
 *   3. sort the rows by (unit, business day, slot, currency, sales type),
 *      merge or refuse duplicated slots, and build one request per (unit,
 *      business day) carrying all of its slots;
 *   4. send the requests through vendor_perform_all(), at most
 *      sales_api.max_concurrency at a time, and report one row per request.
 * Slot figures are totals and the vendor replaces a slot on every
 * submission, so a push can always be repeated; the function therefore
 * never retries on its own (only the 401 retry of vendor.c happens) and
 * reports retryable failures in its result for the caller to re-run.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "json_util.h"
#include "mapal_wire.h"
#include "miscadmin.h"
#include "rows.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "server.h"
#include "ratelimit.h"
#include "vendor.h"

PG_FUNCTION_INFO_V1(sales_api_mapal_push_sales);
PG_FUNCTION_INFO_V1(sales_api_mapal_push_sales_query);
PG_FUNCTION_INFO_V1(sales_api_mapal_slot);
PG_FUNCTION_INFO_V1(sales_api_time_slot);

/* The documented columns, in the order of sales_api.mapal_sale. */
enum
{
	COL_UNIT,
	COL_DAY,
	COL_CURRENCY,
	COL_SALES_TYPE,
	COL_SLOT,
	COL_NET,
	COL_GROSS,
	COL_CHECKS,
	COL_GUESTS,
	NUM_SALE_COLS
};

static const RowColumn sale_cols[NUM_SALE_COLS] = {
	{"unit_id", "bigint"},
	{"business_day", "date"},
	{"currency_id", "text"},
	{"sales_type_id", "text"},
	{"slot_start", "timestamp"},
	{"net_sales", "numeric"},
	{"gross_sales", "numeric"},
	{"num_checks", "integer"},
	{"num_guests", "integer"},
};

/* One validated input row; after merging, one slot of a request. */

/* One (unit, business day): one request, one result row. */
typedef struct PushGroup
{
	int64		unit;
	DateADT		day;
	int			nslots;
	HttpRequest *req;
} PushGroup;

#define PUSH_RESULT_COLS 7

static void
check_slot_minutes(int32 slot_minutes)
{
	if (slot_minutes < 1 || slot_minutes > 1440 || 1440 % slot_minutes != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("slot_minutes must divide a day evenly"),
				 errdetail("%d minutes does not divide 1440.", slot_minutes),
				 errhint("Use 15, 30 or 60, as the business unit is configured in Mapal.")));
}

/* What mapal_slot() needs to know about a server, cached per call site. */
typedef struct SlotServerCache
{
	NameData	server;
	int			slot_minutes;
	pg_tz	   *tz;				/* NULL: the session's zone */
} SlotServerCache;

/*
 * Read a Mapal server's slot_minutes and timezone.  Server options hold no
 * secrets and are readable by everyone in pg_foreign_server, so, unlike the
 * functions that call the vendor, this needs neither USAGE on the server
 * nor a user mapping.
 */
static void
slot_server_read(const char *name, SlotServerCache *c)
{
	ForeignServer *fs = GetForeignServerByName(name, false);
	ForeignDataWrapper *fdw = GetForeignDataWrapper(fs->fdwid);
	const char *vendor = NULL;
	const char *tzname = NULL;
	ListCell   *lc;

	if (strcmp(fdw->fdwname, "sales_api") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not a sales_api server", name),
				 errhint("Create it with CREATE SERVER ... FOREIGN DATA WRAPPER sales_api.")));
	c->slot_minutes = 15;
	foreach(lc, fs->options)
	{
		DefElem    *def = lfirst(lc);

		if (strcmp(def->defname, "vendor") == 0)
			vendor = defGetString(def);
		else if (strcmp(def->defname, "slot_minutes") == 0)
			c->slot_minutes = atoi(defGetString(def));
		else if (strcmp(def->defname, "timezone") == 0)
			tzname = defGetString(def);
	}
	if (vendor == NULL || strcmp(vendor, "mapal") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not a mapal server", name),
				 errhint("Pass a server created with OPTIONS (vendor 'mapal').")));
	check_slot_minutes(c->slot_minutes);
	c->tz = tzname ? mapal_timezone(tzname) : NULL;
	namestrcpy(&c->server, name);
}

/*
 * mapal_slot(server name, ts timestamptz) -> timestamp: the local start of
 * the server's slot holding ts, in the server's timezone (else the
 * session's TimeZone).
 */
Datum
sales_api_mapal_slot(PG_FUNCTION_ARGS)
{
	Name		server = PG_GETARG_NAME(0);
	TimestampTz ts = PG_GETARG_TIMESTAMPTZ(1);
	SlotServerCache *c = (SlotServerCache *) fcinfo->flinfo->fn_extra;

	if (c == NULL || strcmp(NameStr(c->server), NameStr(*server)) != 0)
	{
		SlotServerCache tmp;

		slot_server_read(NameStr(*server), &tmp);
		if (c == NULL)
			c = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(SlotServerCache));
		*c = tmp;
		fcinfo->flinfo->fn_extra = c;
	}
	PG_RETURN_TIMESTAMP(mapal_slot_start(ts, c->slot_minutes,
										 c->tz ? c->tz : session_timezone));
}

/*
 * time_slot(ts timestamptz, slot_minutes integer, tz text) -> timestamp:
 * the same computation with everything given, hence IMMUTABLE (usable in
 * indexes and generated columns).
 */
Datum
sales_api_time_slot(PG_FUNCTION_ARGS)
{
	TimestampTz ts = PG_GETARG_TIMESTAMPTZ(0);
	int32		slot_minutes = PG_GETARG_INT32(1);
	char	   *tzname = text_to_cstring(PG_GETARG_TEXT_PP(2));

	check_slot_minutes(slot_minutes);
	PG_RETURN_TIMESTAMP(mapal_slot_start(ts, slot_minutes, mapal_timezone(tzname)));
}

/* ------------------------------------------------------------------------
 * Validation
 * ------------------------------------------------------------------------
 */

static char *
sale_value_str(RowSet *rs, int r, int c)
{
	Datum		d = ROWSET_VALUE(rs, r, c);

	if (ROWSET_ISNULL(rs, r, c))
		return "NULL";
	switch (c)
	{
		case COL_UNIT:
			return psprintf(INT64_FORMAT, DatumGetInt64(d));
		case COL_DAY:
			return dates_date_str(DatumGetDateADT(d));
		case COL_CURRENCY:
		case COL_SALES_TYPE:
			{
				StringInfoData buf;

				initStringInfo(&buf);
				json_append_quoted(&buf, TextDatumGetCString(d));
				return buf.data;
			}
		case COL_SLOT:
			return dates_timestamp_str(DatumGetTimestamp(d));
		case COL_NET:
		case COL_GROSS:
			return DatumGetCString(DirectFunctionCall1(numeric_out, d));
		default:
			return psprintf("%d", DatumGetInt32(d));
	}
}

/* "unit_id 1001, business_day 2026-11-20, ..." for error details */
static char *
sale_row_str(RowSet *rs, int r)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int c = 0; c < NUM_SALE_COLS; c++)
		appendStringInfo(&buf, "%s%s %s", c ? ", " : "", sale_cols[c].name,
						 sale_value_str(rs, r, c));
	return buf.data;
}

#define SALE_ERROR(rs, r, code, hint, ...) \
	ereport(ERROR, \
			(errcode(code), \
			 errmsg("invalid sale at row %d: %s", (r) + 1, psprintf(__VA_ARGS__)), \
			 errdetail("Row %d is %s.", (r) + 1, sale_row_str((rs), (r))), \
			 errhint("%s", (hint))))

static bool
is_blank(const char *s)
{
	for (; *s; s++)
		if (!isspace((unsigned char) *s))
			return false;
	return true;
}

static int
numeric_sign_of(Datum d)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, d,
											 NumericGetDatum(int64_to_numeric(0))));
}

/* Check row r and return it as a MapalSale; raises naming the row. */
static void
sale_validate(RowSet *rs, int r, int slot_minutes, MapalSale *s)
{
	struct pg_tm tm = {0};
	fsec_t		fsec = 0;
	int			y = 0,
				m = 0,
				d = 0;

	for (int c = 0; c < NUM_SALE_COLS; c++)
		if (ROWSET_ISNULL(rs, r, c))
			SALE_ERROR(rs, r, ERRCODE_NULL_VALUE_NOT_ALLOWED,
					   "Every column is required; use coalesce(..., 0) for slots without checks or guests.",
					   "%s is NULL", sale_cols[c].name);

	s->row = r + 1;
	s->unit = DatumGetInt64(ROWSET_VALUE(rs, r, COL_UNIT));
	s->day = DatumGetDateADT(ROWSET_VALUE(rs, r, COL_DAY));
	s->currency = TextDatumGetCString(ROWSET_VALUE(rs, r, COL_CURRENCY));
	s->sales_type = TextDatumGetCString(ROWSET_VALUE(rs, r, COL_SALES_TYPE));
	s->slot = DatumGetTimestamp(ROWSET_VALUE(rs, r, COL_SLOT));
	s->net = ROWSET_VALUE(rs, r, COL_NET);
	s->gross = ROWSET_VALUE(rs, r, COL_GROSS);
	s->checks = DatumGetInt32(ROWSET_VALUE(rs, r, COL_CHECKS));
	s->guests = DatumGetInt32(ROWSET_VALUE(rs, r, COL_GUESTS));

	if (s->unit <= 0)
		SALE_ERROR(rs, r, ERRCODE_INVALID_PARAMETER_VALUE,
				   "unit_id is the business unit's id in Mapal OS, a positive integer.",
				   "unit_id " INT64_FORMAT " is not a valid business unit id", s->unit);
	if (is_blank(s->currency))
		SALE_ERROR(rs, r, ERRCODE_INVALID_PARAMETER_VALUE,
				   "Give the currency id configured for the unit in Mapal OS, for example EUR.",
				   "currency_id is empty");
	if (is_blank(s->sales_type))
		SALE_ERROR(rs, r, ERRCODE_INVALID_PARAMETER_VALUE,
				   "Give a sales type id configured for the unit in Mapal OS.",
				   "sales_type_id is empty");

	if (!dates_date_in_range(s->day))
		SALE_ERROR(rs, r, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE,
				   "Business days are written yyyy-MM-dd, so they must lie between the years 1 and 9999.",
				   "business_day %s is out of range", dates_date_str(s->day));
	j2date(s->day + POSTGRES_EPOCH_JDATE, &y, &m, &d);
	if (TIMESTAMP_NOT_FINITE(s->slot))
		SALE_ERROR(rs, r, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE,
				   "A slot start is a finite local date-time of the business day.",
				   "slot_start %s is not a finite timestamp", dates_timestamp_str(s->slot));
	if (
		timestamp2tm(s->slot, NULL, &tm, &fsec, NULL, NULL) != 0 ||
		tm.tm_year != y || tm.tm_mon != m || tm.tm_mday != d)
		SALE_ERROR(rs, r, ERRCODE_INVALID_PARAMETER_VALUE,
				   "A slot belongs to the business day of its own date in the unit's local time; compute business_day as slot_start::date.",
				   "slot_start %s is outside business day %s",
				   dates_timestamp_str(s->slot), dates_date_str(s->day));
	if (fsec != 0 || tm.tm_sec != 0 || (tm.tm_hour * 60 + tm.tm_min) % slot_minutes != 0)
		SALE_ERROR(rs, r, ERRCODE_INVALID_PARAMETER_VALUE,
				   "Compute slot starts with sales_api.mapal_slot(server, sold_at), or set the server's slot_minutes to the unit's slot length in Mapal OS.",
				   "slot_start %s is not aligned to the server's %d-minute slots",
				   dates_timestamp_str(s->slot), slot_minutes);

	if (!json_numeric_finite(s->net))
		SALE_ERROR(rs, r, ERRCODE_INVALID_PARAMETER_VALUE,
				   "Amounts must be finite numbers.",
				   "net_sales is not a finite number");
	if (!json_numeric_finite(s->gross))
		SALE_ERROR(rs, r, ERRCODE_INVALID_PARAMETER_VALUE,
				   "Amounts must be finite numbers.",
				   "gross_sales is not a finite number");
	if (numeric_sign_of(s->net) >= 0 && numeric_sign_of(s->gross) >= 0 &&
		DatumGetBool(DirectFunctionCall2(numeric_gt, s->net, s->gross)))
		SALE_ERROR(rs, r, ERRCODE_INVALID_PARAMETER_VALUE,
				   "Net sales exclude tax, so they cannot exceed gross sales; check that the two columns are not swapped.",
				   "net_sales %s is greater than gross_sales %s",
				   sale_value_str(rs, r, COL_NET), sale_value_str(rs, r, COL_GROSS));
	if (s->checks < 0)
		SALE_ERROR(rs, r, ERRCODE_INVALID_PARAMETER_VALUE,
				   "Counts are totals for the slot and cannot be negative.",
				   "num_checks is negative");
	if (s->guests < 0)
		SALE_ERROR(rs, r, ERRCODE_INVALID_PARAMETER_VALUE,
				   "Counts are totals for the slot and cannot be negative.",
				   "num_guests is negative");
}

static int
sale_cmp(const void *a, const void *b)
{
	const MapalSale *x = *(MapalSale *const *) a;
	const MapalSale *y = *(MapalSale *const *) b;
	int			c;

	if (x->unit != y->unit)
		return x->unit < y->unit ? -1 : 1;
	if (x->day != y->day)
		return x->day < y->day ? -1 : 1;
	if (x->slot != y->slot)
		return x->slot < y->slot ? -1 : 1;
	if ((c = strcmp(x->currency, y->currency)) != 0)
		return c;
	if ((c = strcmp(x->sales_type, y->sales_type)) != 0)
		return c;
	return x->row - y->row;
}

static bool
same_group(const MapalSale *x, const MapalSale *y)
{
	return x->unit == y->unit && x->day == y->day;
}

static char *
slot_key_str(const MapalSale *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "unit " INT64_FORMAT ", business day ", s->unit);
	dates_append_date(&buf, s->day);
	appendStringInfoString(&buf, ", currency ");
	json_append_quoted(&buf, s->currency);
	appendStringInfoString(&buf, ", sales type ");
	json_append_quoted(&buf, s->sales_type);
	appendStringInfoString(&buf, ", slot ");
	dates_append_timestamp(&buf, s->slot);
	return buf.data;
}

/* The one-line reason for the result's error column. */
static char *
push_error_text(const SalesApiServer *srv, const HttpRequest *req)
{
	char	   *msg;

	if (!req->done)
		return pstrdup(http_transport_error(req));
	if (req->status >= 300 && req->status < 400)
		return psprintf("redirect (HTTP %ld) refused: sales_api never follows redirects",
						req->status);
	msg = vendor_error_message(req);
	if (req->status == 429 && req->retry_after_s >= 0)
		msg = psprintf("%s (retry after %d s)", msg, req->retry_after_s);

	/*
	 * vendor.c leaves the 401 as the outcome when the token endpoint refused
	 * a new token for the retry; the cache is then empty.
	 */
	if (req->status == 401 && auth_cached_expiry(srv) == 0)
		msg = psprintf("%s; a new access token could not be obtained, so the request was not retried",
					   msg);
	return msg;
}

/*
 * The common body of both forms: validate, group, send, report.
 */
static void
push_sales(FunctionCallInfo fcinfo, SalesApiServer *srv, RowSet *rs,
		   bool sum_duplicates, bool raise_on_error)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MapalSale	   *sales;
	MapalSale	  **sorted;
	MapalSale	  **merged;
	int			nmerged = 0;
	PushGroup  *groups;
	int			ngroups = 0;
	HttpRequest **reqs;

	/* 1-2. every row valid before anything is sent */
	sales = palloc0(sizeof(MapalSale) * Max(rs->nrows, 1));
	sorted = palloc(sizeof(MapalSale *) * Max(rs->nrows, 1));
	for (int r = 0; r < rs->nrows; r++)
	{
		CHECK_FOR_INTERRUPTS();
		sale_validate(rs, r, srv->slot_minutes, &sales[r]);
		sorted[r] = &sales[r];
	}

	/* 3. sort, merge duplicated slots, cut into (unit, business day) groups */
	if (rs->nrows > 1)
		qsort(sorted, rs->nrows, sizeof(MapalSale *), sale_cmp);
	merged = palloc(sizeof(MapalSale *) * Max(rs->nrows, 1));
	for (int i = 0; i < rs->nrows; i++)
	{
		MapalSale	   *s = sorted[i];
		MapalSale	   *prev = nmerged > 0 ? merged[nmerged - 1] : NULL;

		if (prev == NULL || !mapal_same_slot(prev, s))
		{
			merged[nmerged++] = s;
			continue;
		}
		if (!sum_duplicates)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("rows %d and %d are the same slot", prev->row, s->row),
					 errdetail("Both are %s.", slot_key_str(s)),
					 errhint("Aggregate the rows with GROUP BY, or pass on_duplicate => 'sum' to add them up.")));
		prev->net = DirectFunctionCall2(numeric_add, prev->net, s->net);
		prev->gross = DirectFunctionCall2(numeric_add, prev->gross, s->gross);
		prev->checks += s->checks;
		prev->guests += s->guests;
		if (prev->checks > PG_INT32_MAX || prev->guests > PG_INT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("the sum of rows %d and %d is out of range", prev->row, s->row),
					 errdetail("num_checks and num_guests must fit in an integer for %s.",
							   slot_key_str(s))));
		/* a sum of two valid rows can still break the net <= gross rule */
		if (numeric_sign_of(prev->net) >= 0 && numeric_sign_of(prev->gross) >= 0 &&
			DatumGetBool(DirectFunctionCall2(numeric_gt, prev->net, prev->gross)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the sum of rows %d and %d has net_sales greater than gross_sales",
							prev->row, s->row),
					 errdetail("Summed, %s has net_sales %s and gross_sales %s.",
							   slot_key_str(s),
							   DatumGetCString(DirectFunctionCall1(numeric_out, prev->net)),
							   DatumGetCString(DirectFunctionCall1(numeric_out, prev->gross))),
					 errhint("Net sales exclude tax, so they cannot exceed gross sales.")));
	}

	groups = palloc0(sizeof(PushGroup) * Max(nmerged, 1));
	reqs = palloc0(sizeof(HttpRequest *) * Max(nmerged, 1));
	for (int i = 0; i < nmerged;)
	{
		int			j = i + 1;

		while (j < nmerged && same_group(merged[i], merged[j]))
			j++;
		groups[ngroups].unit = merged[i]->unit;
		groups[ngroups].day = merged[i]->day;
		groups[ngroups].nslots = j - i;
		groups[ngroups].req = mapal_build_request(srv, &merged[i], j - i);
		reqs[ngroups] = groups[ngroups].req;
		ngroups++;
		i = j;
	}

	/* 4. send, then report */
	if (ngroups > 0)
		vendor_perform_all(srv, reqs, ngroups, sales_api_max_concurrency);

	/* no credential, so nothing was sent: an error, whatever raise_on_error */
	if (ngroups > 0 && reqs[0]->auth_failure != NULL)
		vendor_report_error(reqs[0], ERROR, "Mapal real-time sales", NULL);

	if (raise_on_error)
	{
		for (int g = 0; g < ngroups; g++)
			if (!vendor_ok(groups[g].req))
				vendor_report_error(groups[g].req, ERROR,
									psprintf("Mapal real-time sales for unit " INT64_FORMAT ", business day %s",
											 groups[g].unit, dates_date_str(groups[g].day)),
									NULL);
	}

	for (int g = 0; g < ngroups; g++)
	{
		HttpRequest *req = groups[g].req;
		Datum		values[PUSH_RESULT_COLS];
		bool		nulls[PUSH_RESULT_COLS] = {0};
		bool		ok = vendor_ok(req);

		values[0] = Int64GetDatum(groups[g].unit);
		values[1] = DateADTGetDatum(groups[g].day);
		values[2] = Int32GetDatum(groups[g].nslots);
		if (req->status > 0)
			values[3] = Int32GetDatum((int32) req->status);
		else
			nulls[3] = true;
		values[4] = BoolGetDatum(ok);
		if (ok)
			nulls[5] = true;
		else
			values[5] = CStringGetTextDatum(push_error_text(srv, req));
		values[6] = Float8GetDatum(req->elapsed_ms);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* on_duplicate: 'sum' (default) or 'error' */
static bool
parse_on_duplicate(FunctionCallInfo fcinfo, int argno)
{
	char	   *s;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("on_duplicate must not be null"),
				 errhint("Pass 'sum' or 'error'.")));
	s = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (strcmp(s, "sum") == 0)
		return true;
	if (strcmp(s, "error") == 0)
		return false;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for on_duplicate: \"%s\"", s),
			 errhint("Pass 'sum' to add up rows of the same slot, or 'error' to refuse them.")));
	return false;				/* keep compiler quiet */
}

static void
check_common_args(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		server_name_null_error();
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("raise_on_error must not be null"),
				 errhint("Pass true to raise on the first failed request, or false to get every outcome as a row.")));
}

/*
 * mapal_push_sales(server name, sales sales_api.mapal_sale[],
 *                  on_duplicate text, raise_on_error boolean)
 * A NULL array (array_agg over no rows) pushes nothing.
 */
Datum
sales_api_mapal_push_sales(PG_FUNCTION_ARGS)
{
	SalesApiServer *srv;
	bool		sum_duplicates;
	RowSet	   *rs;

	check_common_args(fcinfo);
	sum_duplicates = parse_on_duplicate(fcinfo, 2);
	srv = server_lookup(NameStr(*PG_GETARG_NAME(0)), VENDOR_MAPAL);
	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(1))
		return (Datum) 0;
	rs = rows_from_array(PG_GETARG_ARRAYTYPE_P(1), sale_cols, NUM_SALE_COLS, "sales");
	push_sales(fcinfo, srv, rs, sum_duplicates, PG_GETARG_BOOL(3));
	return (Datum) 0;
}

/*
 * mapal_push_sales(server name, source text, on_duplicate text,
 *                  raise_on_error boolean): source is a relation name or a
 * query whose columns carry the names of sales_api.mapal_sale.
 */
Datum
sales_api_mapal_push_sales_query(PG_FUNCTION_ARGS)
{
	SalesApiServer *srv;
	bool		sum_duplicates;
	RowSet	   *rs;

	check_common_args(fcinfo);
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("source must not be null"),
				 errhint("Pass a relation name or a query whose columns are named as in sales_api.mapal_sale.")));
	sum_duplicates = parse_on_duplicate(fcinfo, 2);
	srv = server_lookup(NameStr(*PG_GETARG_NAME(0)), VENDOR_MAPAL);
	InitMaterializedSRF(fcinfo, 0);
	rs = rows_from_query(text_to_cstring(PG_GETARG_TEXT_PP(1)), sale_cols, NUM_SALE_COLS,
						 "source");
	push_sales(fcinfo, srv, rs, sum_duplicates, PG_GETARG_BOOL(3));
	return (Datum) 0;
}
