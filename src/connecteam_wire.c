/*-------------------------------------------------------------------------
 *
 * connecteam_wire.c
 *		The Connecteam Sales Data API on the wire: what a transaction's values
 *		must be, the requests (built to validate against Connecteam's OpenAPI
 *		document), the call with its error rules, and the parsing of answers.
 *		Used by the SQL functions (connecteam.c), the worker
 *		(outbox_connecteam.c) and the reconciliation (reconcile.c).
 *
 * Design note.  Requests carry camelCase field names only, integers (ids,
 * Unix seconds) as JSON integers, money as exact JSON numbers from numeric,
 * sale types from the documented enum, optional fields left out rather than
 * sent as null, and 1 to 100 items per transactions request.  One set of
 * rules decides whether Connecteam would take a transaction's values
 * (ct_check_tx): the SQL functions raise what it finds, naming the row, and
 * the worker dead-letters the item with it.
 *
 * Row values that end up in a URL are percent-encoded; path segments
 * encode '.' as well, so a transaction id such as ".." cannot become a
 * dot-segment that changes the path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sa_json.h"

#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "connecteam_wire.h"
#include "dates.h"
#include "json_util.h"
#include "ratelimit.h"
#include "server.h"
#include "vendor.h"

/* createdAt / startTime / endTime: Unix seconds in [1970-01-01, 2100-01-01) */
#define CT_MIN_EPOCH		INT64CONST(0)
#define CT_MAX_EPOCH		INT64CONST(4102444800)

/* location ids go into the query string, this many per request */
#define CT_IDS_PER_REQUEST	100

#define CT_NSALE_TYPES 12
static const char *const ct_sale_types[CT_NSALE_TYPES] = {
	"SALE", "VOID", "RECALL", "REFUND", "SPLIT", "UPDATE", "TRANSFER",
	"FLOAT", "TRANSITORY", "CROSS_BL", "CANCEL", "MANUAL"
};

#define CT_HINT_SALE_TYPES "Use one of SALE, VOID, RECALL, REFUND, SPLIT, UPDATE, TRANSFER, FLOAT, TRANSITORY, CROSS_BL, CANCEL, MANUAL (upper case)."

/* ------------------------------------------------------------------------
 * A transaction's values
 * ------------------------------------------------------------------------
 */

/* Unix seconds (floor) of a timestamptz, false when out of our range */
bool
ct_unix_seconds(TimestampTz ts, int64 *secs)
{
	const int64 epoch_off = (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;

	if (TIMESTAMP_NOT_FINITE(ts))
		return false;
	if (ts < (CT_MIN_EPOCH - epoch_off) * USECS_PER_SEC ||
		ts >= (CT_MAX_EPOCH - epoch_off) * USECS_PER_SEC)
		return false;
	*secs = (ts + epoch_off * USECS_PER_SEC) / USECS_PER_SEC;
	return true;
}

static Datum
ct_amount_limit(void)
{
	return DirectFunctionCall3(numeric_in, CStringGetDatum(CT_AMOUNT_LIMIT),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

/* NULL when fine, else why (for an errmsg) */
const char *
ct_amount_problem(Datum num)
{
	if (!json_numeric_finite(num))
		return "is not a finite number";
	if (DatumGetBool(DirectFunctionCall2(numeric_ge,
										 DirectFunctionCall1(numeric_abs, num),
										 ct_amount_limit())))
		return "is out of range";
	return NULL;
}

char *
ct_numeric_str(Datum num)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out, num));
}

static bool
ct_problem(CtProblem *p, int sqlstate, char *text, char *detail, const char *hint)
{
	p->sqlstate = sqlstate;
	p->text = text;
	p->detail = detail;
	p->hint = hint;
	return false;
}

static bool
ct_check_amount(CtProblem *p, const char *name, Datum amount)
{
	const char *problem = ct_amount_problem(amount);

	if (problem == NULL)
		return true;
	return ct_problem(p, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
					  psprintf("%s %s", name, problem),
					  psprintf("%s is %s; amounts must be finite and less than %s in absolute value.",
							   name, ct_numeric_str(amount), CT_AMOUNT_LIMIT),
					  NULL);
}

/*
 * Check one transaction's values and fill *tx (whose reference the caller
 * sets); false with *p saying why when Connecteam would never take it.
 */
bool
ct_check_tx(CtTx *tx, bool location_null, int64 location_id, const char *sale_type,
			bool created_null, TimestampTz created_at, bool amount_null, Datum amount,
			bool tax_null, Datum tax, const char *currency, CtProblem *p)
{
	if (location_null)
		return ct_problem(p, ERRCODE_NULL_VALUE_NOT_ALLOWED, "location_id is NULL", NULL,
						  "Every transaction needs the id of a Connecteam location; sales_api.connecteam_locations() lists them.");
	if (location_id <= 0)
		return ct_problem(p, ERRCODE_INVALID_PARAMETER_VALUE,
						  psprintf("location_id " INT64_FORMAT " is not positive", location_id),
						  NULL, CT_HINT_LOCATION);
	tx->location_id = location_id;

	if (sale_type == NULL)
		return ct_problem(p, ERRCODE_NULL_VALUE_NOT_ALLOWED, "sale_type is NULL", NULL,
						  CT_HINT_SALE_TYPES);
	tx->sale_type = NULL;
	for (int i = 0; i < CT_NSALE_TYPES; i++)
		if (strcmp(sale_type, ct_sale_types[i]) == 0)
			tx->sale_type = ct_sale_types[i];
	if (tx->sale_type == NULL)
	{
		StringInfoData q;

		initStringInfo(&q);
		json_append_quoted(&q, sale_type);
		return ct_problem(p, ERRCODE_INVALID_PARAMETER_VALUE,
						  psprintf("unknown sale_type %s", q.data), NULL, CT_HINT_SALE_TYPES);
	}

	if (created_null)
		return ct_problem(p, ERRCODE_NULL_VALUE_NOT_ALLOWED, "created_at is NULL", NULL,
						  "Every transaction needs the time of the sale; it is sent as Unix seconds.");
	if (!ct_unix_seconds(created_at, &tx->created_at))
		return ct_problem(p, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE,
						  "created_at is out of the range Connecteam can take",
						  psprintf("created_at is %s; it is sent as Unix seconds and must be from 1970-01-01 up to, not including, 2100-01-01 UTC.",
								   timestamptz_to_str(created_at)),
						  NULL);

	if (amount_null)
		return ct_problem(p, ERRCODE_NULL_VALUE_NOT_ALLOWED, "final_sale_amount is NULL", NULL,
						  "Every transaction needs its final amount; use 0 for a transaction without one.");
	if (!ct_check_amount(p, "final_sale_amount", amount))
		return false;
	tx->final_amount = amount;
	tx->has_tax = !tax_null;
	if (tx->has_tax)
	{
		if (!ct_check_amount(p, "tax_amount", tax))
			return false;
		tx->tax_amount = tax;
	}

	tx->currency = NULL;
	if (currency != NULL)
	{
		if (currency[0] == '\0')
			return ct_problem(p, ERRCODE_INVALID_PARAMETER_VALUE, "currency is empty", NULL,
							  "Use NULL to leave the currency out, or a currency code such as EUR.");
		tx->currency = pstrdup(currency);
	}
	return true;
}

/*
 * Fill *tx from an outbox row's values, applying the same rules as
 * connecteam_post_transactions(); returns NULL, or why the row can never be
 * sent (the worker dead-letters it with that message instead of raising).
 */
char *
ct_tx_from_outbox(CtTx *tx, bool location_null, int64 location_id, const char *sale_type,
				  bool created_null, TimestampTz created_at, bool amount_null, Datum amount,
				  bool tax_null, Datum tax, const char *currency, char *reference)
{
	CtProblem	p;

	memset(tx, 0, sizeof(CtTx));
	tx->reference = reference;
	if (ct_check_tx(tx, location_null, location_id, sale_type, created_null, created_at,
					amount_null, amount, tax_null, tax, currency, &p))
		return NULL;
	/* the worker keeps one line: the problem, then what to do about it */
	if (p.detail)
		return psprintf("%s: %s", p.text, p.detail);
	if (p.hint)
		return psprintf("%s: %s", p.text, p.hint);
	return p.text;
}

/* ------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------
 */

static void
ct_append_tx(StringInfo buf, const CtTx *tx)
{
	appendStringInfo(buf, "{\"locationId\":" INT64_FORMAT ",\"saleType\":", tx->location_id);
	json_append_string(buf, tx->sale_type);
	appendStringInfo(buf, ",\"createdAt\":" INT64_FORMAT ",\"finalSaleAmount\":", tx->created_at);
	json_append_numeric(buf, tx->final_amount, "final_sale_amount");
	if (tx->has_tax)
	{
		appendStringInfoString(buf, ",\"taxAmount\":");
		json_append_numeric(buf, tx->tax_amount, "tax_amount");
	}
	if (tx->currency != NULL)
	{
		appendStringInfoString(buf, ",\"currency\":");
		json_append_string(buf, tx->currency);
	}
	appendStringInfoChar(buf, '}');
}

/* POST /sales/v1/transactions with txs[0..n-1] (n <= CT_MAX_ITEMS) */
HttpRequest *
ct_build_post(SalesApiServer *srv, const CtTx *txs, int n)
{
	StringInfoData body;
	HttpRequest *req;

	Assert(n >= 1 && n <= CT_MAX_ITEMS);
	initStringInfo(&body);
	appendStringInfoString(&body, "{\"transactionsCreateRequest\":[");
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(&body, ',');
		ct_append_tx(&body, &txs[i]);
	}
	appendStringInfoString(&body, "]}");
	req = http_request_new("POST", psprintf("%s/sales/v1/transactions", srv->base_url));
	http_set_json_body(req, &body);
	return req;
}

/* DELETE /sales/v1/transactions/{id} */
HttpRequest *
ct_build_delete(SalesApiServer *srv, const char *transaction_id)
{
	return http_request_new("DELETE", psprintf("%s/sales/v1/transactions/%s",
											   srv->base_url, vendor_url_encode(transaction_id, true)));
}

/* DELETE /sales/v1/transactions?locationId&startTime&endTime (inclusive) */
HttpRequest *
ct_build_delete_range(SalesApiServer *srv, int64 location_id, int64 start_s, int64 end_s)
{
	return http_request_new("DELETE",
							psprintf("%s/sales/v1/transactions?locationId=" INT64_FORMAT
									 "&startTime=" INT64_FORMAT "&endTime=" INT64_FORMAT,
									 srv->base_url, location_id, start_s, end_s));
}

/* ------------------------------------------------------------------------
 * Answers
 * ------------------------------------------------------------------------
 */

static bool
ct_json_int(json_object *obj, const char *key, int64 *out)
{
	return json_int64_value(json_get(obj, key), out);
}

/*
 * Fill in the results of one request's rows [first, first + count) from a
 * 2xx answer.  The rows are stored whatever the answer looks like, so they
 * are ok; an answer that cannot be matched leaves transaction_id NULL and
 * says why in error.
 */
void
ct_tx_success(const HttpRequest *req, const CtTx *txs, CtTxResult *res, int first, int count)
{
	const char *perr;
	char	   *why = NULL;
	json_object *root = json_parse_ex(req->resp, req->resp_len, &perr);
	json_object *list = NULL;

	if (root == NULL)
		why = (req->resp_len == 0) ? "the answer is empty" :
			psprintf("the answer is malformed JSON (%s)", perr);

	for (int i = 0; i < count; i++)
	{
		res[first + i].ok = true;
		res[first + i].http_status = (int) req->status;
	}
	if (root != NULL)
	{
		json_object *data = json_get(root, "data");

		list = json_get(data, "transactions");
		if (list == NULL || !json_object_is_type(list, json_type_array))
		{
			why = "the answer has no data.transactions array";
			list = NULL;
		}
		else if ((int) json_object_array_length(list) != count)
		{
			why = psprintf("the answer lists %d transactions for the %d sent",
						   (int) json_object_array_length(list), count);
			list = NULL;
		}
	}
	for (int i = 0; i < count; i++)
	{
		const CtTx *tx = &txs[first + i];
		json_object *item = list ? json_object_array_get_idx(list, i) : NULL;
		json_object *tidv = item ? json_get(item, "transactionId") : NULL;
		char	   *tid = NULL;
		const char *bad = NULL;
		int64		loc,
					created;

		if (tidv != NULL && json_object_is_type(tidv, json_type_string))
			bad = json_text_problem(tidv, &tid);
		if (list == NULL)
			res[first + i].error = psprintf("stored by Connecteam (HTTP %ld), but %s, so the transaction id is unknown",
											req->status, why);
		else if (bad != NULL)
			res[first + i].error = psprintf("stored by Connecteam (HTTP %ld), but in the transactionId of answer item %d %s, so the transaction id is unknown",
											req->status, i, bad);
		else if (tid == NULL || tid[0] == '\0' ||
				 !ct_json_int(item, "locationId", &loc) || loc != tx->location_id ||
				 !ct_json_int(item, "createdAt", &created) || created != tx->created_at)
			res[first + i].error = psprintf("stored by Connecteam (HTTP %ld), but answer item %d does not match this row, so the transaction id is unknown",
											req->status, i);
		else
			res[first + i].transaction_id = tid;
	}
}

const char *
ct_what(const char *method, const char *path)
{
	return psprintf("Connecteam %s %s", method, path);
}

/*
 * Send one request, paced by the rate limit, and return the "data" object
 * of its answer.  Raises for a spent budget, a failure and a malformed
 * answer.  A request that is not idempotent and may have been acted on
 * gets an error that says so, with `unknown_hint` telling how to check.
 */
json_object *
ct_call(SalesApiServer *srv, HttpRequest *req, bool idempotent, const char *what,
		const char *unknown_hint)
{
	RateLimitRun *run = ratelimit_perform_all(srv, &req, 1, idempotent);
	json_object *root;

	if (run->nnot_sent > 0)
		ratelimit_report(srv, run, ERROR, what);
	if (!idempotent && !req->done && req->maybe_processed)
	{
		const char *hint;

		ereport(ERROR,
				(errcode(http_transport_sqlstate(req, &hint)),
				 errmsg("%s failed after the request was sent, so its outcome is unknown", what),
				 errdetail("%s", http_transport_error(req)),
				 errhint("%s", unknown_hint)));
	}
	if (!idempotent && req->done && req->status >= 500)
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_VENDOR_ERROR),
				 errmsg("%s failed with HTTP %ld, so its outcome is unknown", what, req->status),
				 errdetail("Vendor message: %s", vendor_error_message(req)),
				 errhint("%s", unknown_hint)));
	vendor_check(req, what);

	root = json_parse_response(req->resp, req->resp_len, what);
	if (!json_object_is_type(root, json_type_object))
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s returned a response that is not a JSON object", what),
				 errhint("The vendor's API may have changed; check its status.")));
	return json_require(root, "data", json_type_object, what);
}

static int
ct_int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * The location_ids filter as query strings of at most CT_IDS_PER_REQUEST
 * ids each, sorted and without duplicates, so that no URL grows without
 * bound and no location is in two requests.  NIL for no ids.
 */
List *
ct_location_id_chunks(int64 *ids, int n)
{
	List	   *chunks = NIL;
	int			k = 0;

	if (n > 1)
		qsort(ids, n, sizeof(int64), ct_int64_cmp);
	for (int i = 0; i < n; i++)
		if (k == 0 || ids[i] != ids[k - 1])
			ids[k++] = ids[i];
	for (int first = 0; first < k; first += CT_IDS_PER_REQUEST)
	{
		StringInfoData q;

		initStringInfo(&q);
		for (int i = first; i < Min(first + CT_IDS_PER_REQUEST, k); i++)
			appendStringInfo(&q, "%slocationIds=" INT64_FORMAT, i > first ? "&" : "", ids[i]);
		chunks = lappend(chunks, q.data);
	}
	return chunks;
}

/* an optional number of an answer entry */
Datum
ct_optional_numeric(json_object *obj, const char *key, bool *isnull, const char *what)
{
	json_object *v = json_get(obj, key);

	*isnull = (v == NULL);
	if (v == NULL)
		return (Datum) 0;
	return json_to_numeric(v, psprintf("\"%s\" in the answer of %s", key, what));
}

/* the "date" of an answer entry, YYYY-MM-DD */
DateADT
ct_entry_date(json_object *entry, const char *what)
{
	const char *s = json_object_get_string(json_require(entry, "date", json_type_string, what));
	DateADT		d;

	if (!dates_parse_date(s, true, &d))
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s returned a date that is not YYYY-MM-DD", what),
				 errhint("The vendor's API may have changed; check its status.")));
	return d;
}

/*
 * The vendor's daily totals of [start, end], of the given locations (NULL:
 * every one), as a list of CtDaily in the current memory context.  The
 * background worker calls it for its scheduled reconciliation with the
 * current user switched to the capture's run_as role.
 */
List *
ct_daily_sales_fetch(SalesApiServer *srv, DateADT start, DateADT end, int64 *ids, int nids)
{
	const char *what = ct_what("GET", "/sales/v1/daily-sales");
	List	   *id_chunks;
	List	   *out = NIL;
	ListCell   *lc;

	if (ids != NULL && nids == 0)
		return NIL;				/* no locations, no rows */
	id_chunks = ids != NULL ? ct_location_id_chunks(ids, nids) : list_make1("");

	/* one request per chunk of location ids; each location is in one chunk */
	foreach(lc, id_chunks)
	{
		const char *idq = lfirst(lc);
		HttpRequest *req;
		json_object *data;
		json_object *list;
		int			n;

		req = http_request_new("GET",
							   psprintf("%s/sales/v1/daily-sales?startDate=%s&endDate=%s%s%s",
										srv->base_url, dates_date_str(start), dates_date_str(end),
										idq[0] ? "&" : "", idq));
		data = ct_call(srv, req, true, what, NULL);
		list = json_require(data, "dailySales", json_type_array, what);
		n = (int) json_object_array_length(list);
		for (int i = 0; i < n; i++)
		{
			json_object *e = json_object_array_get_idx(list, i);
			CtDaily    *d = palloc0(sizeof(CtDaily));

			if (!json_object_is_type(e, json_type_object))
				ereport(ERROR,
						(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
						 errmsg("%s returned an entry that is not a JSON object", what),
						 errhint("The vendor's API may have changed; check its status.")));
			d->location_id = json_to_int64(json_require(e, "locationId", json_type_int, what),
										   "locationId");
			d->sales_date = ct_entry_date(e, what);
			d->total_sales = ct_optional_numeric(e, "totalSales", &d->total_null, what);
			d->projected_sales = ct_optional_numeric(e, "projectedSales", &d->projected_null, what);
			out = lappend(out, d);
		}
	}
	return out;
}
