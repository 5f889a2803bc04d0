/*-------------------------------------------------------------------------
 *
 * cashrec.c
 *		Mapal Cashrec: cashrec_fetch() returns the cash-sheet (till shift)
 *		records of a period and a list of centres as typed rows, each with
 *		the whole record as jsonb.
 *
 * Design note.  Cashrec answers GET /api/v1/cashSheet?startDate&endDate&
 * centersList with a JSON array of records whose schema is not public.
 * The typed columns follow api-contracts.md; a missing or null field gives
 * a NULL column, a field of the wrong type is an error (SA502) rather than
 * a silent NULL, and the jsonb column keeps every field, including those
 * the vendor adds later.
 *
 * A long period is cut into windows of cashrec_max_days days and a long
 * centre list into chunks of cashrec_max_centers; every (window, chunk)
 * pair is one request, sent through ratelimit_perform_all() at most
 * sales_api.max_concurrency at a time: the requests are idempotent GETs,
 * so a timeout, a 5xx (after its Retry-After, when the vendor gives one) or
 * a 429 is sent again rather than failing the whole call.  Windows are consecutive and
 * inclusive to the second (the vendor's format has no fractions), so none
 * overlaps; records are still de-duplicated on (centerId, cashSheetId) in
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
#include "mapal.h"
#include "miscadmin.h"
#include "ratelimit.h"
#include "rows.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "vendor.h"

PG_FUNCTION_INFO_V1(sales_api_cashrec_fetch);

/* Most requests one call may need before the caller must narrow it. */
#define CASHREC_MAX_REQUESTS 1000

typedef enum FieldKind
{
	FK_INT8,
	FK_INT4,
	FK_TEXT,
	FK_ID,						/* text, but an integer id is accepted too */
	FK_DATE,
	FK_TIMESTAMP,
	FK_NUMERIC,
	FK_ARRAY					/* kept as jsonb */
} FieldKind;

typedef struct CashField
{
	const char *key;			/* the vendor's field */
	FieldKind	kind;
} CashField;

/* Result columns 0..14 in this order, then the record itself (15). */
static const CashField cash_fields[] = {
	{"centerId", FK_INT8},
	{"cashSheetId", FK_ID},
	{"businessDay", FK_DATE},
	{"shiftId", FK_INT4},
	{"tillId", FK_ID},
	{"openedAt", FK_TIMESTAMP},
	{"closedAt", FK_TIMESTAMP},
	{"currencyId", FK_TEXT},
	{"netSales", FK_NUMERIC},
	{"grossSales", FK_NUMERIC},
	{"numChecks", FK_INT4},
	{"expectedCash", FK_NUMERIC},
	{"countedCash", FK_NUMERIC},
	{"difference", FK_NUMERIC},
	{"tenders", FK_ARRAY},
};

#define NUM_CASH_FIELDS lengthof(cash_fields)
#define CASH_COLS (NUM_CASH_FIELDS + 1)
#define CF_CENTER 0
#define CF_SHEET 1
#define CF_OPENED 5

typedef struct CashRow
{
	Datum		values[CASH_COLS];
	bool		nulls[CASH_COLS];
	char	   *sheet_id;		/* for ordering and de-duplication */
	int			seq;			/* arrival order, the last tie-breaker */
	bool		dup;
} CashRow;

/* One request and what it asked for, for messages. */
typedef struct CashRequest
{
	HttpRequest *req;
	char	   *centers;		/* "101,102" */
	char	   *start;			/* yyyy-MM-ddTHH:mm:ss */
	char	   *end;
} CashRequest;

/* ------------------------------------------------------------------------
 * Vendor date-times
 * ------------------------------------------------------------------------
 */

/*
 * A vendor date-time as local time: written without an offset it already
 * is (the contract); with one, the instant is shown in tz.
 */
static bool
vendor_timestamp(const char *s, pg_tz *tz, Timestamp *out)
{
	struct pg_tm tm;
	fsec_t		fsec;
	bool		has_offset;
	int			offset;
	Timestamp	t;

	if (!sa_parse_datetime(s, &tm, &fsec, &has_offset, &offset))
		return false;
	if (tm2timestamp(&tm, fsec, NULL, &t) != 0)
		return false;
	if (has_offset)
	{
		int			tzoff;

		t -= (int64) offset * USECS_PER_SEC;
		if (timestamp2tm(t, &tzoff, &tm, &fsec, NULL, tz) != 0 ||
			tm2timestamp(&tm, fsec, NULL, &t) != 0)
			return false;
	}
	*out = t;
	return true;
}

/* ------------------------------------------------------------------------
 * Records
 * ------------------------------------------------------------------------
 */

static const char *
field_kind_label(FieldKind k)
{
	switch (k)
	{
		case FK_INT8:
		case FK_INT4:
			return "an integer";
		case FK_TEXT:
			return "a string";
		case FK_ID:
			return "a string or an integer";
		case FK_DATE:
			return "a date string";
		case FK_TIMESTAMP:
			return "a date-time string";
		case FK_NUMERIC:
			return "a number";
		case FK_ARRAY:
			return "an array";
	}
	return "unknown";
}

/* Field `key`, or its case-insensitive spelling; NULL when absent or null. */
static json_object *
record_field(json_object *rec, const char *key)
{
	json_object *v = NULL;

	if (json_object_object_get_ex(rec, key, &v))
		return (v && !json_object_is_type(v, json_type_null)) ? v : NULL;
	{
		json_object_object_foreach(rec, k, val)
		{
			if (pg_strcasecmp(k, key) == 0)
				return (val && !json_object_is_type(val, json_type_null)) ? val : NULL;
		}
	}
	return NULL;
}

/* A vendor's value, quoted, for a message (never raises) */
static void
append_vendor_value(StringInfo buf, json_object *v)
{
	const char *s = json_object_get_string(v);
	size_t		len = json_object_is_type(v, json_type_string) ?
		(size_t) json_object_get_string_len(v) : strlen(s);

	/* json-c only kept a saturated value: do not show it as the vendor's */
	if (json_int_saturated(v))
		appendStringInfoString(buf, "(an integer of 64 bits or more)");
	else
		append_quoted(buf, vendor_text_for_message(s, len, 100));
}

static char *
record_where(const CashRequest *cr, int idx, json_object *rec)
{
	json_object *id = record_field(rec, "cashSheetId");
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "Record %d of the answer for centres %s from %s to %s",
					 idx + 1, cr->centers, cr->start, cr->end);
	if (id && (json_object_is_type(id, json_type_string) || json_object_is_type(id, json_type_int)))
	{
		appendStringInfoString(&buf, " (cashSheetId ");
		append_vendor_value(&buf, id);
		appendStringInfoChar(&buf, ')');
	}
	appendStringInfoChar(&buf, '.');
	return buf.data;
}

static void
bad_field_type(const CashRequest *cr, int idx, json_object *rec, const CashField *f,
			   json_object *v)
{
	ereport(ERROR,
			(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
			 errmsg("Mapal Cashrec returned a cash sheet whose \"%s\" is %s, not %s",
					f->key, json_kind(v), field_kind_label(f->kind)),
			 errdetail("%s", record_where(cr, idx, rec)),
			 errhint("The vendor's record format differs from the documented one; check the vendor's status or report it.")));
}

static void
bad_field_value(const CashRequest *cr, int idx, json_object *rec, const CashField *f,
				json_object *v, const char *why)
{
	StringInfoData val;

	initStringInfo(&val);
	append_vendor_value(&val, v);
	ereport(ERROR,
			(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
			 errmsg("Mapal Cashrec returned a cash sheet with an invalid \"%s\"", f->key),
			 errdetail("%s The value %s is not %s.", record_where(cr, idx, rec), val.data, why),
			 errhint("The vendor's record format differs from the documented one; check the vendor's status or report it.")));
}

/* A string field as database text; SA502 naming the record if it cannot be. */
static char *
field_text(const CashRequest *cr, int idx, json_object *rec, const CashField *f,
		   json_object *v)
{
	char	   *out;
	const char *why = json_text_problem(v, &out);

	if (why != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("Mapal Cashrec returned a cash sheet whose \"%s\" is not text the database can store",
						f->key),
				 errdetail("%s In the vendor's value, %s.", record_where(cr, idx, rec), why),
				 errhint("The vendor's answer is malformed, or uses characters the database encoding cannot represent (a UTF8 database takes every character).")));
	return out;
}

static void
record_to_row(const CashRequest *cr, int idx, json_object *rec, pg_tz *tz, CashRow *row)
{
	for (int c = 0; c < (int) NUM_CASH_FIELDS; c++)
	{
		const CashField *f = &cash_fields[c];
		json_object *v = record_field(rec, f->key);
		json_type	t;

		row->nulls[c] = (v == NULL);
		if (v == NULL)
			continue;
		t = json_object_get_type(v);
		switch (f->kind)
		{
			case FK_INT8:
			case FK_INT4:
				{
					int64		i;

					if (t != json_type_int)
						bad_field_type(cr, idx, rec, f, v);
					if (!json_int64_value(v, &i))
						bad_field_value(cr, idx, rec, f, v,
										f->kind == FK_INT4 ? "within the range of an integer" :
										"within the range of a bigint");
					if (f->kind == FK_INT4)
					{
						if (i < PG_INT32_MIN || i > PG_INT32_MAX)
							bad_field_value(cr, idx, rec, f, v, "within the range of an integer");
						row->values[c] = Int32GetDatum((int32) i);
					}
					else
						row->values[c] = Int64GetDatum(i);
					break;
				}
			case FK_ID:
				{
					char	   *id;

					if (t != json_type_string && t != json_type_int)
						bad_field_type(cr, idx, rec, f, v);
					if (json_int_saturated(v))
						bad_field_value(cr, idx, rec, f, v, "a number sales_api can read exactly");
					id = (t == json_type_string) ? field_text(cr, idx, rec, f, v) :
						pstrdup(json_object_get_string(v));
					row->values[c] = CStringGetTextDatum(id);
					if (c == CF_SHEET)
						row->sheet_id = id;
					break;
				}
			case FK_TEXT:
				if (t != json_type_string)
					bad_field_type(cr, idx, rec, f, v);
				row->values[c] = CStringGetTextDatum(field_text(cr, idx, rec, f, v));
				break;
			case FK_DATE:
				{
					DateADT		d;

					if (t != json_type_string)
						bad_field_type(cr, idx, rec, f, v);
					if (!sa_parse_date(json_object_get_string(v), false, &d))
						bad_field_value(cr, idx, rec, f, v, "a date in the format yyyy-MM-dd");
					row->values[c] = DateADTGetDatum(d);
					break;
				}
			case FK_TIMESTAMP:
				{
					Timestamp	ts;

					if (t != json_type_string)
						bad_field_type(cr, idx, rec, f, v);
					if (!vendor_timestamp(json_object_get_string(v), tz, &ts))
						bad_field_value(cr, idx, rec, f, v,
										"a date-time in the format yyyy-MM-ddTHH:mm:ss");
					row->values[c] = TimestampGetDatum(ts);
					break;
				}
			case FK_NUMERIC:
				if (t != json_type_int && t != json_type_double)
					bad_field_type(cr, idx, rec, f, v);
				if (json_int_saturated(v))
					bad_field_value(cr, idx, rec, f, v, "a number sales_api can read exactly");
				row->values[c] = json_to_numeric(v, f->key);
				break;
			case FK_ARRAY:
				if (t != json_type_array)
					bad_field_type(cr, idx, rec, f, v);
				row->values[c] = json_to_jsonb(v, psprintf("\"%s\" of a Mapal Cashrec cash sheet",
														   f->key));
				break;
		}
	}
	row->values[NUM_CASH_FIELDS] =
		json_to_jsonb(rec, psprintf("record %d of the Mapal Cashrec answer for centres %s from %s to %s",
									idx + 1, cr->centers, cr->start, cr->end));
	row->nulls[NUM_CASH_FIELDS] = false;
}

/* Rows of one successful response, appended to *rows. */
static void
response_rows(const CashRequest *cr, pg_tz *tz, CashRow ***rows, int *nrows, int *cap)
{
	HttpRequest *req = cr->req;
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext parsecxt;
	json_object *root;
	size_t		n;

	if (req->status == 204)
		return;
	parsecxt = AllocSetContextCreate(outer, "sales_api cashrec response",
									 ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(parsecxt);
	root = json_parse_response(req->resp, req->resp_len, "Mapal Cashrec");
	MemoryContextSwitchTo(outer);

	if (!json_object_is_type(root, json_type_array))
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("Mapal Cashrec returned a response that is not a JSON array"),
				 errdetail("The answer for centres %s from %s to %s is %s.",
						   cr->centers, cr->start, cr->end, json_kind(root)),
				 errhint("Check that cashrec_url points at the Cashrec API; the vendor's API may also have changed.")));
	n = json_object_array_length(root);
	for (size_t i = 0; i < n; i++)
	{
		json_object *rec = json_object_array_get_idx(root, i);
		CashRow    *row;

		if (rec == NULL || !json_object_is_type(rec, json_type_object))
			ereport(ERROR,
					(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
					 errmsg("Mapal Cashrec returned a cash-sheet record that is not a JSON object"),
					 errdetail("Record %d of the answer for centres %s from %s to %s is %s.",
							   (int) i + 1, cr->centers, cr->start, cr->end,
							   json_kind(rec)),
					 errhint("The vendor's API may have changed; check its status.")));
		if (*nrows >= *cap)
		{
			*cap = Max(*cap * 2, 64);
			*rows = repalloc(*rows, sizeof(CashRow *) * *cap);
		}
		row = palloc0(sizeof(CashRow));
		row->seq = *nrows;
		record_to_row(cr, (int) i, rec, tz, row);
		(*rows)[(*nrows)++] = row;
	}
	MemoryContextDelete(parsecxt);
}

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

/* ------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------
 */

/*
 * Raise the failure of one request: vendor.c's mapping, with Cashrec's own
 * hints for 400 and 404.
 */
static void
cashrec_report_error(const CashRequest *cr)
{
	const HttpRequest *req = cr->req;
	const char *hint = NULL;

	if (req->done && req->status == 400)
		hint = "Check the period and the centre ids; if the tenant spells the query parameters differently (StartDate rather than startDate), set the server's cashrec_start_param, cashrec_end_param and cashrec_centers_param.";
	else if (req->done && req->status == 404)
		hint = "Mapal found no tenant or Cashrec configuration for these credentials; check the server's cashrec_url and that Cashrec is enabled for the account.";
	vendor_report_error(req, ERROR,
						psprintf("Mapal Cashrec request for centres %s from %s to %s",
								 cr->centers, cr->start, cr->end),
						hint);
}

static Timestamp
floor_to_second(Timestamp t)
{
	int64		rem = t % USECS_PER_SEC;

	return rem < 0 ? t - rem - USECS_PER_SEC : t - rem;
}

static void
check_period_bound(Timestamp t, const char *argname)
{
	if (!sa_timestamp_in_range(t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite timestamp between the years 1 and 9999", argname),
				 errdetail("%s is %s.", argname, sa_timestamp_str(t)),
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
	int64		span;
	int64		ndates;
	int			nchunks;
	int			nreqs;
	CashRequest *crs;
	HttpRequest **reqs;
	int			batch;
	pg_tz	   *tz;
	CashRow   **rows;
	int			nrows = 0;
	int			cap = 64;
	int			k = 0;
	char	   *pstart;
	char	   *pend;
	char	   *pcenters;

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
						sa_timestamp_str(end), sa_timestamp_str(start)),
				 errhint("Both bounds are inclusive; for one day pass e.g. '2026-11-20 00:00:00' and '2026-11-20 23:59:59'.")));
	centers = centers_from_array(PG_GETARG_ARRAYTYPE_P(3), &ncenters);

	srv = server_lookup(NameStr(*PG_GETARG_NAME(0)), VENDOR_MAPAL);
	tz = mapal_timezone(srv->timezone);
	InitMaterializedSRF(fcinfo, 0);
	if (ncenters == 0)
		return (Datum) 0;

	/* the vendor's format has whole seconds; windows are inclusive */
	start = floor_to_second(start);
	end = floor_to_second(end);
	span = (int64) srv->cashrec_max_days * USECS_PER_DAY;
	ndates = (end - start) / span + 1;
	nchunks = (ncenters + srv->cashrec_max_centers - 1) / srv->cashrec_max_centers;
	if (ndates * nchunks > CASHREC_MAX_REQUESTS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("this period and centre list need " INT64_FORMAT " Cashrec requests, more than %d",
						ndates * nchunks, CASHREC_MAX_REQUESTS),
				 errdetail("Server \"%s\" has cashrec_max_days %d and cashrec_max_centers %d.",
						   srv->name, srv->cashrec_max_days, srv->cashrec_max_centers),
				 errhint("Fetch a shorter period, or raise the server's cashrec_max_days or cashrec_max_centers.")));
	nreqs = (int) (ndates * nchunks);

	pstart = url_encode(srv->cashrec_start_param, false);
	pend = url_encode(srv->cashrec_end_param, false);
	pcenters = url_encode(srv->cashrec_centers_param, false);
	crs = palloc0(sizeof(CashRequest) * nreqs);
	reqs = palloc0(sizeof(HttpRequest *) * nreqs);
	for (int ch = 0; ch < nchunks; ch++)
	{
		StringInfoData list;
		int			first = ch * srv->cashrec_max_centers;
		int			last = Min(first + srv->cashrec_max_centers, ncenters);

		initStringInfo(&list);
		for (int i = first; i < last; i++)
			appendStringInfo(&list, "%s" INT64_FORMAT, i > first ? "," : "", centers[i]);
		for (int64 w = 0; w < ndates; w++)
		{
			Timestamp	ws = start + w * span;
			Timestamp	we = (end - ws >= span) ? ws + span - USECS_PER_SEC : end;
			CashRequest *cr = &crs[k];

			cr->centers = list.data;
			cr->start = sa_timestamp_str(ws);
			cr->end = sa_timestamp_str(we);
			/* values are digits, '-', 'T', ':' and ',': all legal in a query */
			cr->req = http_request_new("GET",
									   psprintf("%s/api/v1/cashSheet?%s=%s&%s=%s&%s=%s",
												srv->cashrec_url, pstart, cr->start,
												pend, cr->end, pcenters, cr->centers));
			reqs[k++] = cr->req;
		}
	}

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
			response_rows(&crs[from + i], tz, &rows, &nrows, &cap);
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
