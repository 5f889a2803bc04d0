/*-------------------------------------------------------------------------
 *
 * cashrec_wire.c
 *		Mapal Cashrec on the wire: the requests of a period and a list of
 *		centres, the typed fields of a cash-sheet record and the parsing of
 *		an answer into rows, and the errors of a failed request; for
 *		cashrec_fetch() (cashrec.c).
 *
 * Design note.  Cashrec answers GET /api/v1/cashSheet?startDate&endDate&
 * centersList with a JSON array of records whose schema is not public.
 * The typed columns are the fields below; a missing or null field gives a
 * NULL column, a field of the wrong type is an error (SA502) rather than a
 * silent NULL, and the jsonb column keeps every field, including those the
 * vendor adds later.  Each response is parsed in its own memory context,
 * deleted once its rows are extracted.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sa_json.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "cashrec_wire.h"
#include "json_util.h"
#include "mapal_wire.h"
#include "server.h"
#include "vendor.h"

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

StaticAssertDecl(lengthof(cash_fields) == CASHREC_NFIELDS, "one result column per field");

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

	if (!dates_parse_datetime(s, &tm, &fsec, &has_offset, &offset))
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
		json_append_quoted(buf, json_text_for_message(s, len, 100));
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
	for (int c = 0; c < (int) CASHREC_NFIELDS; c++)
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
					if (!dates_parse_date(json_object_get_string(v), false, &d))
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
	row->values[CASHREC_NFIELDS] =
		json_to_jsonb(rec, psprintf("record %d of the Mapal Cashrec answer for centres %s from %s to %s",
									idx + 1, cr->centers, cr->start, cr->end));
	row->nulls[CASHREC_NFIELDS] = false;
}

/* Rows of one successful response, appended to *rows. */
void
cashrec_response_rows(const CashRequest *cr, pg_tz *tz, CashRow ***rows, int *nrows, int *cap)
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

/* ------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------
 */

static Timestamp
floor_to_second(Timestamp t)
{
	int64		rem = t % USECS_PER_SEC;

	return rem < 0 ? t - rem - USECS_PER_SEC : t - rem;
}

/*
 * The requests for [start, end] (inclusive, local time) and the centres:
 * windows of cashrec_max_days days times chunks of cashrec_max_centers
 * centres, one request per pair; *reqs are their HTTP requests.
 */
CashRequest *
cashrec_build_requests(SalesApiServer *srv, Timestamp start, Timestamp end,
					   int64 *centers, int ncenters, HttpRequest ***reqs, int *nreqs)
{
	int64		span;
	int64		ndates;
	int			nchunks;
	CashRequest *crs;
	int			k = 0;
	char	   *pstart;
	char	   *pend;
	char	   *pcenters;

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
	*nreqs = (int) (ndates * nchunks);

	pstart = vendor_url_encode(srv->cashrec_start_param, false);
	pend = vendor_url_encode(srv->cashrec_end_param, false);
	pcenters = vendor_url_encode(srv->cashrec_centers_param, false);
	crs = palloc0(sizeof(CashRequest) * *nreqs);
	*reqs = palloc0(sizeof(HttpRequest *) * *nreqs);
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
			cr->start = dates_timestamp_str(ws);
			cr->end = dates_timestamp_str(we);
			/* values are digits, '-', 'T', ':' and ',': all legal in a query */
			cr->req = http_request_new("GET",
									   psprintf("%s/api/v1/cashSheet?%s=%s&%s=%s&%s=%s",
												srv->cashrec_url, pstart, cr->start,
												pend, cr->end, pcenters, cr->centers));
			(*reqs)[k++] = cr->req;
		}
	}
	return crs;
}

/*
 * Raise the failure of one request: vendor.c's mapping, with Cashrec's own
 * hints for 400 and 404.
 */
void
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
