/*-------------------------------------------------------------------------
 *
 * connecteam.c
 *		The Connecteam Sales Data API from SQL: locations (list, create),
 *		transactions (create in requests of 100, delete one, delete a time
 *		range), daily sales (read totals and projections, set projections)
 *		and the account's rate-limit budget.
 *
 * Design note.  Every request goes through ratelimit_perform_all(), which
 * paces it by the account's x-ratelimit-* budget (ratelimit.c); requests are
 * built and answers parsed by connecteam_wire.c.  Everything a caller passes
 * is validated before the first request, so a bad row costs no call.
 *
 * POST /sales/v1/transactions has no idempotency key: a request resent after
 * the vendor acted on it creates every row twice.  So a transactions request
 * is resent only when the vendor certainly did not act on it (a 429, or a
 * transport failure before the whole request was written); after any other
 * failure the rows are reported with ok = false and an error that says
 * whether they were certainly not stored or may or may not exist.  The
 * function returns a row per input row instead of raising, so that one bad
 * request never hides the transaction ids of the requests that succeeded.
 *
 * The other functions raise, in the extension's usual style: vendor_check()
 * puts the HTTP status and the vendor's own message (the 422 field list or
 * the domain error) in the detail.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sa_json.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "json_util.h"
#include "miscadmin.h"
#include "connecteam_wire.h"
#include "dates.h"
#include "ratelimit.h"
#include "rows.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "server.h"
#include "vendor.h"

PG_FUNCTION_INFO_V1(sales_api_connecteam_post_transactions);
PG_FUNCTION_INFO_V1(sales_api_connecteam_post_transactions_query);
PG_FUNCTION_INFO_V1(sales_api_connecteam_locations);
PG_FUNCTION_INFO_V1(sales_api_connecteam_create_location);
PG_FUNCTION_INFO_V1(sales_api_connecteam_delete_transaction);
PG_FUNCTION_INFO_V1(sales_api_connecteam_delete_transactions);
PG_FUNCTION_INFO_V1(sales_api_connecteam_daily_sales);
PG_FUNCTION_INFO_V1(sales_api_connecteam_set_projected_sales);
PG_FUNCTION_INFO_V1(sales_api_connecteam_set_projected_sales_query);
PG_FUNCTION_INFO_V1(sales_api_connecteam_rate_limit);

/* documented: at most 1000 locations per page */
#define CT_PAGE_LIMIT		1000

/*
 * Location names go into the query string; they are refused beyond these
 * limits (a URL of more than a few kB is refused by many servers and
 * proxies).
 */
#define CT_MAX_NAMES		100
#define CT_MAX_NAMES_BYTES	4000

/* columns of sales_api.connecteam_transaction, and of a source query */
enum
{
	TX_LOCATION_ID,
	TX_SALE_TYPE,
	TX_CREATED_AT,
	TX_FINAL_SALE_AMOUNT,
	TX_TAX_AMOUNT,
	TX_CURRENCY,
	TX_REFERENCE,
	TX_NCOLS
};

/* sale_type is read as text from a query, as the enum from an array */
static const RowColumn ct_tx_cols[TX_NCOLS] = {
	{"location_id", "bigint"},
	{"sale_type", "text"},
	{"created_at", "timestamptz"},
	{"final_sale_amount", "numeric"},
	{"tax_amount", "numeric"},
	{"currency", "text"},
	{"reference", "text"},
};

static const RowColumn ct_projected_cols[2] = {
	{"sales_date", "date"},
	{"projected_sales", "numeric"},
};


/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------
 */

static SalesApiServer *
ct_server(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		server_name_null_error();
	return server_lookup(NameStr(*PG_GETARG_NAME(0)), VENDOR_CONNECTEAM);
}

static void
ct_require_arg(FunctionCallInfo fcinfo, int argno, const char *name, const char *hint)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name),
				 errhint("%s", hint)));
}

#define CT_HINT_TIME_RANGE "Both ends of the range are required and inclusive, to the second."
#define CT_HINT_DATE_RANGE "Both ends of the range are required and inclusive."
#define CT_HINT_TRANSACTION_ID "Pass an id from the transaction_id column of sales_api.connecteam_post_transactions()."

/* A location id argument: present and positive. */
static int64
ct_location_arg(FunctionCallInfo fcinfo, int argno)
{
	int64		id;

	ct_require_arg(fcinfo, argno, "location_id", CT_HINT_LOCATION);
	id = PG_GETARG_INT64(argno);
	if (id <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("location_id must be positive"),
				 errdetail("location_id is " INT64_FORMAT ".", id),
				 errhint(CT_HINT_LOCATION)));
	return id;
}

/* "row 3" or "row 3 (reference \"T-1\")" */
static char *
ct_row_label(int row, const char *reference)
{
	if (reference != NULL)
		return psprintf("row %d (reference \"%s\")", row, reference);
	return psprintf("row %d", row);
}

/* ------------------------------------------------------------------------
 * connecteam_post_transactions
 * ------------------------------------------------------------------------
 */

/* Check every row and turn it into a CtTx; raises naming the first bad row. */
static CtTx *
ct_validate_transactions(RowSet *rs, bool sale_type_is_enum)
{
	CtTx	   *txs = palloc0(sizeof(CtTx) * Max(rs->nrows, 1));

	for (int r = 0; r < rs->nrows; r++)
	{
		CtTx	   *tx = &txs[r];
		CtProblem	p;
		const char *sale_type = NULL;

		CHECK_FOR_INTERRUPTS();
		tx->reference = ROWSET_ISNULL(rs, r, TX_REFERENCE) ? NULL :
			TextDatumGetCString(ROWSET_VALUE(rs, r, TX_REFERENCE));
		if (!ROWSET_ISNULL(rs, r, TX_SALE_TYPE))
			sale_type = sale_type_is_enum ?
				DatumGetCString(DirectFunctionCall1(enum_out, ROWSET_VALUE(rs, r, TX_SALE_TYPE))) :
				TextDatumGetCString(ROWSET_VALUE(rs, r, TX_SALE_TYPE));
		if (!ct_check_tx(tx,
						 ROWSET_ISNULL(rs, r, TX_LOCATION_ID),
						 DatumGetInt64(ROWSET_VALUE(rs, r, TX_LOCATION_ID)),
						 sale_type,
						 ROWSET_ISNULL(rs, r, TX_CREATED_AT),
						 DatumGetTimestampTz(ROWSET_VALUE(rs, r, TX_CREATED_AT)),
						 ROWSET_ISNULL(rs, r, TX_FINAL_SALE_AMOUNT),
						 ROWSET_VALUE(rs, r, TX_FINAL_SALE_AMOUNT),
						 ROWSET_ISNULL(rs, r, TX_TAX_AMOUNT),
						 ROWSET_VALUE(rs, r, TX_TAX_AMOUNT),
						 ROWSET_ISNULL(rs, r, TX_CURRENCY) ? NULL :
						 TextDatumGetCString(ROWSET_VALUE(rs, r, TX_CURRENCY)),
						 &p))
			ereport(ERROR,
					(errcode(p.sqlstate),
					 errmsg("invalid transaction at %s: %s", ct_row_label(r + 1, tx->reference), p.text),
					 p.detail ? errdetail("%s", p.detail) : 0,
					 p.hint ? errhint("%s", p.hint) : 0));
	}
	return txs;
}

/* Results of rows [first, first + count) of a request that did not succeed. */
static void
ct_tx_failure(SalesApiServer *srv, const HttpRequest *req, const RateLimitRun *run, int reqno,
			  CtTxResult *res, int first, int count)
{
	char	   *err;
	char	   *rows = psprintf("rows %d-%d", first + 1, first + count);

	if (run->not_sent[reqno])
		err = psprintf("not sent, the rows were not stored. %s", ratelimit_describe(srv, run));
	else if (!req->done && req->maybe_processed)
		err = psprintf("outcome unknown: the request with %s failed after it was sent (%s); the rows may or may not exist at Connecteam, check with sales_api.connecteam_daily_sales() before sending them again",
					   rows, http_transport_error(req));
	else if (!req->done)
		err = psprintf("not sent, the rows were not stored: the request with %s failed before reaching Connecteam (%s); it is safe to send them again",
					   rows, http_transport_error(req));
	else if (req->status >= 500)
		err = psprintf("outcome unknown: HTTP %ld for the request with %s: %s; the rows may or may not exist at Connecteam, check with sales_api.connecteam_daily_sales() before sending them again",
					   req->status, rows, vendor_error_message(req));
	else
		err = psprintf("HTTP %ld for the request with %s, the rows were not stored: %s",
					   req->status, rows, vendor_error_message(req));

	for (int i = 0; i < count; i++)
	{
		res[first + i].ok = false;
		res[first + i].http_status = req->done ? (int) req->status : 0;
		res[first + i].error = err;
	}
}

static void
ct_post_transactions(FunctionCallInfo fcinfo, SalesApiServer *srv, RowSet *rs,
					 bool sale_type_is_enum)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const char *what = ct_what("POST", "/sales/v1/transactions");
	CtTx	   *txs;
	CtTxResult *res;
	HttpRequest **reqs;
	RateLimitRun *run;
	int			nreq;
	int			nauth = 0;
	int			first_auth = 0;

	txs = ct_validate_transactions(rs, sale_type_is_enum);
	if (rs->nrows == 0)
		return;

	/* full requests of 100, in input order: never a call more than needed */
	nreq = (rs->nrows + CT_MAX_ITEMS - 1) / CT_MAX_ITEMS;
	reqs = palloc(sizeof(HttpRequest *) * nreq);
	for (int q = 0; q < nreq; q++)
	{
		int			first = q * CT_MAX_ITEMS;

		reqs[q] = ct_build_post(srv, txs + first, Min(CT_MAX_ITEMS, rs->nrows - first));
	}

	run = ratelimit_perform_all(srv, reqs, nreq, false);

	/*
	 * Nothing reached the vendor: a plain error, as everywhere else.  Once
	 * something did, nothing may raise any more: the transaction ids of the
	 * rows stored are only in this function's memory.
	 */
	for (int q = 0; q < nreq; q++)
		if (reqs[q]->auth_failure != NULL)
		{
			if (nauth++ == 0)
				first_auth = q;
		}
	if (nauth > 0 && nauth + run->nnot_sent == nreq)
		vendor_report_error(reqs[first_auth], ERROR, what, NULL);
	if (run->nnot_sent == nreq)
		ratelimit_report(srv, run, ERROR, what);
	if (nauth > 0)
		vendor_report_error(reqs[first_auth], WARNING, what, NULL);
	if (run->nnot_sent > 0)
		ratelimit_report(srv, run, WARNING, what);

	res = palloc0(sizeof(CtTxResult) * rs->nrows);
	for (int q = 0; q < nreq; q++)
	{
		int			first = q * CT_MAX_ITEMS;
		int			count = Min(CT_MAX_ITEMS, rs->nrows - first);

		if (!run->not_sent[q] && vendor_ok(reqs[q]))
			ct_tx_success(reqs[q], txs, res, first, count);
		else
			ct_tx_failure(srv, reqs[q], run, q, res, first, count);
	}

	for (int r = 0; r < rs->nrows; r++)
	{
		Datum		values[6];
		bool		nulls[6] = {0};

		values[0] = txs[r].reference ? CStringGetTextDatum(txs[r].reference) : (Datum) 0;
		nulls[0] = txs[r].reference == NULL;
		values[1] = res[r].transaction_id ? CStringGetTextDatum(res[r].transaction_id) : (Datum) 0;
		nulls[1] = res[r].transaction_id == NULL;
		values[2] = Int64GetDatum(txs[r].location_id);
		values[3] = Int32GetDatum(res[r].http_status);
		nulls[3] = res[r].http_status == 0;
		values[4] = BoolGetDatum(res[r].ok);
		values[5] = res[r].error ? CStringGetTextDatum(res[r].error) : (Datum) 0;
		nulls[5] = res[r].error == NULL;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* connecteam_post_transactions(server name, transactions connecteam_transaction[]) */
Datum
sales_api_connecteam_post_transactions(PG_FUNCTION_ARGS)
{
	SalesApiServer *srv = ct_server(fcinfo);
	RowSet	   *rs;

	InitMaterializedSRF(fcinfo, 0);
	/* a NULL array (array_agg over no rows) is no rows, as everywhere */
	if (PG_ARGISNULL(1))
		return (Datum) 0;
	rs = rows_from_array(PG_GETARG_ARRAYTYPE_P(1), ct_tx_cols, TX_NCOLS, "transactions");
	ct_post_transactions(fcinfo, srv, rs, true);
	return (Datum) 0;
}

/* connecteam_post_transactions(server name, source text) */
Datum
sales_api_connecteam_post_transactions_query(PG_FUNCTION_ARGS)
{
	SalesApiServer *srv = ct_server(fcinfo);
	RowSet	   *rs;

	ct_require_arg(fcinfo, 1, "source",
				   "Pass a relation name or a query whose columns are named as in sales_api.connecteam_transaction.");
	rs = rows_from_query(text_to_cstring(PG_GETARG_TEXT_PP(1)), ct_tx_cols, TX_NCOLS, "source");
	InitMaterializedSRF(fcinfo, 0);
	ct_post_transactions(fcinfo, srv, rs, false);
	return (Datum) 0;
}

/* ------------------------------------------------------------------------
 * Locations
 * ------------------------------------------------------------------------
 */

static void
ct_put_location(ReturnSetInfo *rsinfo, json_object *loc, const char *what)
{
	Datum		values[3];
	bool		nulls[3] = {0};

	if (!json_object_is_type(loc, json_type_object))
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s returned a location that is not a JSON object", what),
				 errhint("The vendor's API may have changed; check its status.")));
	values[0] = Int64GetDatum(json_to_int64(json_require(loc, "id", json_type_int, what), "location id"));
	values[1] = CStringGetTextDatum(json_text(json_require(loc, "name", json_type_string, what),
											  psprintf("the name of a location in the answer of %s", what)));
	values[2] = BoolGetDatum(json_object_get_boolean(json_require(loc, "isActive", json_type_boolean, what)));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * connecteam_locations(server, location_ids bigint[], names text[],
 *						is_active boolean): every page
 */
Datum
sales_api_connecteam_locations(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SalesApiServer *srv = ct_server(fcinfo);
	const char *what = ct_what("GET", "/sales/v1/locations");
	StringInfoData filters;
	MemoryContext pagecxt;
	List	   *id_chunks = NIL;
	ListCell   *lc;
	bool		empty = false;

	if (!PG_ARGISNULL(1))
	{
		int64	   *ids;
		int			n = rows_int8_array(PG_GETARG_ARRAYTYPE_P(1), "location_ids", &ids);

		empty |= (n == 0);
		id_chunks = ct_location_id_chunks(ids, n);
	}
	initStringInfo(&filters);
	if (!PG_ARGISNULL(2))
	{
		char	  **names;
		int			n = rows_text_array(PG_GETARG_ARRAYTYPE_P(2), "names", &names);

		empty |= (n == 0);
		for (int i = 0; i < n; i++)
			appendStringInfo(&filters, "&locationNames=%s", vendor_url_encode(names[i], false));
		if (n > CT_MAX_NAMES || filters.len > CT_MAX_NAMES_BYTES)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("names has too many names for one request"),
					 errdetail_plural("It has %d name, %d bytes once encoded; at most %d names of %d bytes in all are sent.",
									  "It has %d names, %d bytes once encoded; at most %d names of %d bytes in all are sent.",
									  n, n, filters.len, CT_MAX_NAMES, CT_MAX_NAMES_BYTES),
					 errhint("Filter by location_ids, or list every location and filter by name in SQL.")));
	}
	if (!PG_ARGISNULL(3))
		appendStringInfo(&filters, "&isActive=%s", PG_GETARG_BOOL(3) ? "true" : "false");

	InitMaterializedSRF(fcinfo, 0);
	if (empty)
		return (Datum) 0;		/* an empty filter list matches nothing */
	if (id_chunks == NIL)
		id_chunks = list_make1("");

	pagecxt = AllocSetContextCreate(CurrentMemoryContext, "connecteam locations page",
									ALLOCSET_DEFAULT_SIZES);
	foreach(lc, id_chunks)
	{
		const char *ids = lfirst(lc);
		int64		offset = 0;

		for (;;)
		{
			MemoryContext oldcxt = MemoryContextSwitchTo(pagecxt);
			StringInfoData q;
			HttpRequest *req;
			json_object *data;
			json_object *list;
			int			n;

			/* ids, names, isActive (filters starts with '&'), then paging */
			initStringInfo(&q);
			if (ids[0] != '\0')
				appendStringInfo(&q, "%s&", ids);
			if (filters.len > 0)
				appendStringInfo(&q, "%s&", filters.data + 1);
			appendStringInfo(&q, "limit=%d&offset=" INT64_FORMAT, CT_PAGE_LIMIT, offset);
			req = http_request_new("GET", psprintf("%s/sales/v1/locations?%s", srv->base_url, q.data));
			data = ct_call(srv, req, true, what, NULL);
			list = json_require(data, "locations", json_type_array, what);
			n = (int) json_object_array_length(list);
			for (int i = 0; i < n; i++)
				ct_put_location(rsinfo, json_object_array_get_idx(list, i), what);
			MemoryContextSwitchTo(oldcxt);
			MemoryContextReset(pagecxt);
			if (n < CT_PAGE_LIMIT)
				break;
			offset += n;
		}
	}
	MemoryContextDelete(pagecxt);
	return (Datum) 0;
}

/* connecteam_create_location(server, name text, is_active boolean) */
Datum
sales_api_connecteam_create_location(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SalesApiServer *srv = ct_server(fcinfo);
	const char *what = ct_what("POST", "/sales/v1/locations");
	char	   *name;
	StringInfoData body;
	HttpRequest *req;
	json_object *data;

	ct_require_arg(fcinfo, 1, "name", "Give the location's display name, for example the store's name.");
	name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("location name must not be empty"),
				 errhint("Give the location's display name, for example the store's name.")));

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"name\":");
	json_append_string(&body, name);
	if (!PG_ARGISNULL(2))
		appendStringInfo(&body, ",\"isActive\":%s", PG_GETARG_BOOL(2) ? "true" : "false");
	appendStringInfoChar(&body, '}');

	InitMaterializedSRF(fcinfo, 0);
	req = http_request_new("POST", psprintf("%s/sales/v1/locations", srv->base_url));
	http_set_json_body(req, &body);
	data = ct_call(srv, req, false, what,
				   "The location may have been created; check with sales_api.connecteam_locations() before creating it again.");
	ct_put_location(rsinfo, data, what);
	return (Datum) 0;
}

/* ------------------------------------------------------------------------
 * Deleting transactions
 * ------------------------------------------------------------------------
 */

/* connecteam_delete_transaction(server, transaction_id text) */
Datum
sales_api_connecteam_delete_transaction(PG_FUNCTION_ARGS)
{
	SalesApiServer *srv = ct_server(fcinfo);
	const char *what = ct_what("DELETE", "/sales/v1/transactions/{transactionId}");
	char	   *tid;
	HttpRequest *req;

	ct_require_arg(fcinfo, 1, "transaction_id", CT_HINT_TRANSACTION_ID);
	tid = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (tid[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transaction_id must not be empty"),
				 errhint(CT_HINT_TRANSACTION_ID)));
	req = ct_build_delete(srv, tid);
	(void) ct_call(srv, req, true, what, NULL);
	PG_RETURN_VOID();
}

static int64
ct_time_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
	TimestampTz ts;
	int64		secs;

	ct_require_arg(fcinfo, argno, name, CT_HINT_TIME_RANGE);
	ts = PG_GETARG_TIMESTAMPTZ(argno);
	if (!ct_unix_seconds(ts, &secs))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s is out of the range Connecteam can take", name),
				 errdetail("%s is %s; it is sent as Unix seconds and must be from 1970-01-01 up to, not including, 2100-01-01 UTC.",
						   name, timestamptz_to_str(ts)),
				 errhint("Pass a finite time within that range.")));
	return secs;
}

/*
 * connecteam_delete_transactions(server, location_id, start_time, end_time):
 * both ends inclusive, to the second
 */
Datum
sales_api_connecteam_delete_transactions(PG_FUNCTION_ARGS)
{
	SalesApiServer *srv = ct_server(fcinfo);
	const char *what = ct_what("DELETE", "/sales/v1/transactions");
	int64		location_id;
	int64		start_s;
	int64		end_s;
	HttpRequest *req;

	location_id = ct_location_arg(fcinfo, 1);
	start_s = ct_time_arg(fcinfo, 2, "start_time");
	end_s = ct_time_arg(fcinfo, 3, "end_time");
	if (end_s < start_s)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("end_time must not be before start_time"),
				 errdetail("start_time is %s and end_time %s.",
						   pstrdup(timestamptz_to_str(PG_GETARG_TIMESTAMPTZ(2))),
						   pstrdup(timestamptz_to_str(PG_GETARG_TIMESTAMPTZ(3)))),
				 errhint(CT_HINT_TIME_RANGE)));
	req = ct_build_delete_range(srv, location_id, start_s, end_s);
	(void) ct_call(srv, req, true, what, NULL);
	PG_RETURN_VOID();
}

/* ------------------------------------------------------------------------
 * Daily sales
 * ------------------------------------------------------------------------
 */

static void
ct_check_date_range(FunctionCallInfo fcinfo, int argstart, int argend,
					DateADT *start, DateADT *end)
{
	ct_require_arg(fcinfo, argstart, "start_date", CT_HINT_DATE_RANGE);
	ct_require_arg(fcinfo, argend, "end_date", CT_HINT_DATE_RANGE);
	*start = PG_GETARG_DATEADT(argstart);
	*end = PG_GETARG_DATEADT(argend);
	if (!dates_date_in_range(*start) || !dates_date_in_range(*end))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("start_date and end_date must be dates between the years 1 and 9999"),
				 errdetail("start_date is %s and end_date %s.", dates_date_str(*start), dates_date_str(*end)),
				 errhint("Connecteam takes dates written YYYY-MM-DD.")));
	if (*end < *start)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("end_date must not be before start_date"),
				 errdetail("start_date is %s and end_date %s.", dates_date_str(*start), dates_date_str(*end)),
				 errhint(CT_HINT_DATE_RANGE)));
}

/* connecteam_daily_sales(server, start_date, end_date, location_ids bigint[]) */
Datum
sales_api_connecteam_daily_sales(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SalesApiServer *srv = ct_server(fcinfo);
	DateADT		start;
	DateADT		end;
	int64	   *ids = NULL;
	int			nids = 0;
	List	   *rows;
	ListCell   *lc;

	ct_check_date_range(fcinfo, 1, 2, &start, &end);
	if (!PG_ARGISNULL(3))
		nids = rows_int8_array(PG_GETARG_ARRAYTYPE_P(3), "location_ids", &ids);
	InitMaterializedSRF(fcinfo, 0);
	if (!PG_ARGISNULL(3) && ids == NULL)
		ids = palloc(sizeof(int64));	/* an empty list: no rows */
	rows = ct_daily_sales_fetch(srv, start, end, ids, nids);
	foreach(lc, rows)
	{
		CtDaily    *d = lfirst(lc);
		Datum		values[4];
		bool		nulls[4] = {false, false, d->total_null, d->projected_null};

		values[0] = Int64GetDatum(d->location_id);
		values[1] = DateADTGetDatum(d->sales_date);
		values[2] = d->total_sales;
		values[3] = d->projected_sales;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

typedef struct CtProjected
{
	DateADT		date;
	Datum		amount;
	int			row;
} CtProjected;

static int
ct_projected_cmp(const void *a, const void *b)
{
	const CtProjected *x = (const CtProjected *) a;
	const CtProjected *y = (const CtProjected *) b;

	if (x->date != y->date)
		return (x->date > y->date) ? 1 : -1;
	return x->row - y->row;
}

static void
ct_set_projected_sales(FunctionCallInfo fcinfo, SalesApiServer *srv, int64 location_id,
					   RowSet *rs)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const char *what = ct_what("PUT", "/sales/v1/locations/{locationId}/daily-sales");
	CtProjected *items;
	CtProjected *sorted;
	StringInfoData body;
	HttpRequest *req;
	json_object *data;
	json_object *list;
	int			n;

	if (rs->nrows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("updates must contain at least one row"),
				 errdetail("Connecteam takes one to any number of days per request, never none."),
				 errhint("Pass at least one (sales_date, projected_sales) row; a NULL array counts as none.")));

	items = palloc(sizeof(CtProjected) * rs->nrows);
	for (int r = 0; r < rs->nrows; r++)
	{
		const char *problem;

		items[r].row = r + 1;
		if (ROWSET_ISNULL(rs, r, 0))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("projected sales row %d has no sales_date", r + 1),
					 errhint("Every row needs the date it projects.")));
		items[r].date = DatumGetDateADT(ROWSET_VALUE(rs, r, 0));
		if (!dates_date_in_range(items[r].date))
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("projected sales row %d has a sales_date out of range", r + 1),
					 errdetail("Dates must be between the years 1 and 9999.")));
		if (ROWSET_ISNULL(rs, r, 1))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("projected sales row %d (%s) has no projected_sales", r + 1,
							dates_date_str(items[r].date)),
					 errhint("Every row needs an amount; use 0 for a day without projected sales.")));
		items[r].amount = ROWSET_VALUE(rs, r, 1);
		if ((problem = ct_amount_problem(items[r].amount)) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("projected_sales of row %d (%s) %s", r + 1,
							dates_date_str(items[r].date), problem),
					 errdetail("projected_sales is %s; amounts must be finite and less than %s in absolute value.",
							   ct_numeric_str(items[r].amount), CT_AMOUNT_LIMIT)));
	}
	sorted = palloc(sizeof(CtProjected) * rs->nrows);
	memcpy(sorted, items, sizeof(CtProjected) * rs->nrows);
	qsort(sorted, rs->nrows, sizeof(CtProjected), ct_projected_cmp);
	for (int i = 1; i < rs->nrows; i++)
		if (sorted[i].date == sorted[i - 1].date)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("projected sales rows %d and %d are both for %s",
							sorted[i - 1].row, sorted[i].row, dates_date_str(sorted[i].date)),
					 errdetail("Connecteam takes each date at most once per request.")));

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"updates\":[");
	for (int r = 0; r < rs->nrows; r++)
	{
		appendStringInfo(&body, "%s{\"date\":\"%s\",\"projectedSales\":", r ? "," : "",
						 dates_date_str(items[r].date));
		json_append_numeric(&body, items[r].amount, "projected_sales");
		appendStringInfoChar(&body, '}');
	}
	appendStringInfoString(&body, "]}");

	InitMaterializedSRF(fcinfo, 0);
	req = http_request_new("PUT",
						   psprintf("%s/sales/v1/locations/" INT64_FORMAT "/daily-sales",
									srv->base_url, location_id));
	http_set_json_body(req, &body);
	/* a PUT replaces the days' projections: sending it twice is harmless */
	data = ct_call(srv, req, true, what, NULL);
	list = json_require(data, "updatedDays", json_type_array, what);
	n = (int) json_object_array_length(list);
	for (int i = 0; i < n; i++)
	{
		json_object *e = json_object_array_get_idx(list, i);
		Datum		values[3];
		bool		nulls[3] = {0};

		if (!json_object_is_type(e, json_type_object))
			ereport(ERROR,
					(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
					 errmsg("%s returned an entry that is not a JSON object", what),
					 errhint("The vendor's API may have changed; check its status.")));
		values[0] = DateADTGetDatum(ct_entry_date(e, what));
		values[1] = ct_optional_numeric(e, "totalSales", &nulls[1], what);
		values[2] = ct_optional_numeric(e, "projectedSales", &nulls[2], what);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* connecteam_set_projected_sales(server, location_id, updates connecteam_projected_sale[]) */
Datum
sales_api_connecteam_set_projected_sales(PG_FUNCTION_ARGS)
{
	SalesApiServer *srv = ct_server(fcinfo);
	RowSet	   *rs;

	int64		location_id = ct_location_arg(fcinfo, 1);
	RowSet		none = {0, 2, ct_projected_cols, NULL, NULL};

	/* a NULL array is no rows, which this endpoint refuses */
	rs = PG_ARGISNULL(2) ? &none :
		rows_from_array(PG_GETARG_ARRAYTYPE_P(2), ct_projected_cols, 2, "updates");
	ct_set_projected_sales(fcinfo, srv, location_id, rs);
	return (Datum) 0;
}

/* connecteam_set_projected_sales(server, location_id, source text) */
Datum
sales_api_connecteam_set_projected_sales_query(PG_FUNCTION_ARGS)
{
	SalesApiServer *srv = ct_server(fcinfo);
	RowSet	   *rs;

	int64		location_id = ct_location_arg(fcinfo, 1);

	ct_require_arg(fcinfo, 2, "source",
				   "Pass a relation name or a query whose columns are named as in sales_api.connecteam_projected_sale.");
	rs = rows_from_query(text_to_cstring(PG_GETARG_TEXT_PP(2)), ct_projected_cols, 2, "source");
	ct_set_projected_sales(fcinfo, srv, location_id, rs);
	return (Datum) 0;
}

/* ------------------------------------------------------------------------
 * connecteam_rate_limit
 * ------------------------------------------------------------------------
 */
Datum
sales_api_connecteam_rate_limit(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SalesApiServer *srv = ct_server(fcinfo);
	RateLimitState st;
	Datum		values[7];
	bool		nulls[7];
	bool		known = ratelimit_get(srv, &st);

	InitMaterializedSRF(fcinfo, 0);
	ratelimit_datums(known ? &st : NULL, values, nulls);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}