/*-------------------------------------------------------------------------
 *
 * json_util.c
 *		json-c helpers: parsing vendor responses with their lifetime tied to a
 *		memory context, typed accessors that raise a clear error on a wrong
 *		shape, and exact writing of money.
 *
 * Money never passes through a C double.  Outgoing amounts are numeric
 * values printed with numeric_out(), so 12.30 is sent as 12.30.  Incoming
 * numbers are read back from the text json-c keeps for every number it
 * parses (json_object_get_string() returns the original characters), and
 * converted with numeric_in().
 *
 * A parsed json-c tree is malloc'd by json-c.  json_parse_response()
 * registers a reset callback on the current memory context that drops the
 * tree, so an ERROR anywhere after parsing frees it with the context.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sa_json.h"
#include <math.h>

#include "fmgr.h"
#include "sales_api.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#define JSON_MAX_DEPTH 64

void
json_append_string(StringInfo buf, const char *s)
{
	escape_json(buf, s);
}

/* Append a numeric as an exact JSON number; NaN and infinities refused. */
void
json_append_numeric(StringInfo buf, Datum numeric, const char *what)
{
	Numeric		num = DatumGetNumeric(numeric);
	char	   *s;

	if (numeric_is_nan(num) || numeric_is_inf(num))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite number", what)));
	s = DatumGetCString(DirectFunctionCall1(numeric_out, numeric));
	appendStringInfoString(buf, s);
	pfree(s);
}

static void
json_release_cb(void *arg)
{
	json_object_put((json_object *) arg);
}

json_object *
json_parse_response(const char *body, size_t len, const char *what)
{
	json_tokener *tok;
	json_object *obj;
	enum json_tokener_error jerr;
	MemoryContextCallback *cb;

	if (body == NULL || len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s returned an empty body", what),
				 errdetail("A JSON document was expected."),
				 errhint("The vendor may be failing; try again later.")));

	cb = MemoryContextAlloc(CurrentMemoryContext, sizeof(MemoryContextCallback));
	tok = json_tokener_new_ex(JSON_MAX_DEPTH);
	if (tok == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, body, (int) len);
	jerr = json_tokener_get_error(tok);
	if (obj != NULL && jerr == json_tokener_success &&
		json_tokener_get_parse_end(tok) < len)
	{
		/* allow trailing white space only */
		for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
			if (!isspace((unsigned char) body[i]))
			{
				jerr = json_tokener_error_parse_unexpected;
				break;
			}
	}
	if (obj == NULL || jerr != json_tokener_success)
	{
		const char *desc = (jerr == json_tokener_continue) ?
			"the document ends early" : json_tokener_error_desc(jerr);

		if (obj != NULL)
			json_object_put(obj);
		json_tokener_free(tok);
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s returned malformed JSON", what),
				 errdetail("JSON parser: %s.", desc),
				 errhint("The vendor may be failing or an intermediary may have answered; try again later.")));
	}
	json_tokener_free(tok);

	cb->func = json_release_cb;
	cb->arg = obj;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return obj;
}

json_object *
json_get(json_object *obj, const char *key)
{
	json_object *val = NULL;

	if (obj == NULL || !json_object_is_type(obj, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(obj, key, &val))
		return NULL;
	if (val == NULL || json_object_is_type(val, json_type_null))
		return NULL;
	return val;
}

static const char *
json_type_label(int type)
{
	switch (type)
	{
		case json_type_null:
			return "null";
		case json_type_boolean:
			return "boolean";
		case json_type_double:
		case json_type_int:
			return "number";
		case json_type_object:
			return "object";
		case json_type_array:
			return "array";
		case json_type_string:
			return "string";
	}
	return "unknown";
}

/*
 * Field `key` of `obj`, which must exist and be of `type` (json_type_int
 * accepts only integers, json_type_double any number).  Raises a
 * bad-response error naming the field otherwise.
 */
json_object *
json_require(json_object *obj, const char *key, int type, const char *what)
{
	json_object *val = json_get(obj, key);
	json_type	actual;
	bool		ok;

	if (val == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s returned a response without \"%s\"", what, key),
				 errdetail("The field is missing or null."),
				 errhint("The vendor's API may have changed; check its status.")));
	actual = json_object_get_type(val);
	if (type == json_type_double)
		ok = (actual == json_type_double || actual == json_type_int);
	else
		ok = (actual == (json_type) type);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s returned a response where \"%s\" is a %s, not a %s",
						what, key, json_type_label(actual), json_type_label(type)),
				 errhint("The vendor's API may have changed; check its status.")));
	return val;
}

/* String value of a field, or NULL when absent or not a string. */
const char *
json_get_str(json_object *obj, const char *key)
{
	json_object *val = json_get(obj, key);

	if (val == NULL || !json_object_is_type(val, json_type_string))
		return NULL;
	return json_object_get_string(val);
}

/* A JSON number (kept exact, from its original text) as a numeric Datum. */
Datum
json_to_numeric(json_object *val, const char *what)
{
	const char *s;

	if (val == NULL ||
		!(json_object_is_type(val, json_type_int) ||
		  json_object_is_type(val, json_type_double)))
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s is not a number", what),
				 errhint("The vendor's API may have changed; check its status.")));
	s = json_object_get_string(val);
	return DirectFunctionCall3(numeric_in, CStringGetDatum(s),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

int64
json_to_int64(json_object *val, const char *what)
{
	if (val == NULL || !json_object_is_type(val, json_type_int))
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s is not an integer", what),
				 errhint("The vendor's API may have changed; check its status.")));
	return json_object_get_int64(val);
}

/* The whole value as jsonb, numbers exact. */
Datum
json_to_jsonb(json_object *val)
{
	const char *s = json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN |
												   JSON_C_TO_STRING_NOSLASHESCAPE);

	return DirectFunctionCall1(jsonb_in, CStringGetDatum(s));
}

/* Percent-encode everything but RFC 3986 unreserved characters. */
char *
url_encode(const char *s)
{
	StringInfoData buf;
	static const char hex[] = "0123456789ABCDEF";

	initStringInfo(&buf);
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~')
			appendStringInfoChar(&buf, (char) *p);
		else
		{
			appendStringInfoChar(&buf, '%');
			appendStringInfoChar(&buf, hex[*p >> 4]);
			appendStringInfoChar(&buf, hex[*p & 15]);
		}
	}
	return buf.data;
}
