/*-------------------------------------------------------------------------
 *
 * json_util.c
 *		json-c helpers: parsing vendor responses with their lifetime tied to a
 *		memory context, typed accessors that raise a clear error on a wrong
 *		shape, and exact writing of money.
 *
 * Money never passes through a C double.  Outgoing amounts are numeric
 * values printed with numeric_out(), so 12.30 is sent as 12.30.  Incoming
 * numbers with a fraction or an exponent are read back from the text json-c
 * keeps for them (json_object_get_string() returns the original
 * characters), integers from their 64-bit value, and converted with
 * numeric_in().  json-c saturates an integer beyond 64 bits without an
 * error, so the two saturated values are refused (json_int_saturated()).
 *
 * A parsed json-c tree is malloc'd by json-c.  json_parse_response()
 * registers a reset callback on the current memory context that drops the
 * tree, so an ERROR anywhere after parsing frees it with the context.
 *
 * Vendors speak UTF-8; the database may use another encoding.  Text crosses
 * that boundary only through the helpers at the end of this file: a vendor
 * string becomes database text with json_text() (SA502 when it cannot: a
 * NUL, bytes that are not UTF-8, a character the database encoding lacks),
 * or, for a message, with json_text_for_message(), which never raises;
 * outgoing text is converted to UTF-8 by json_append_string() (and, in a
 * URL, by vendor.c's vendor_url_encode()).  The parser itself is told to
 * refuse invalid UTF-8.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sa_json.h"
#include <math.h>

#include "catalog/namespace.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "json_util.h"
#include "sales_api.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#define JSON_MAX_DEPTH 64

static const char *utf8_to_server(const char *s, size_t len, char **out);

/* Append s (database text) as a JSON string, in UTF-8, for the wire. */
void
json_append_string(StringInfo buf, const char *s)
{
	char	   *u = pg_server_to_any(s, strlen(s), PG_UTF8);

	escape_json(buf, u);
	if (u != s)
		pfree(u);
}

/* Append s (database text) quoted as a JSON string, for a message. */
void
json_append_quoted(StringInfo buf, const char *s)
{
	escape_json(buf, s);
}

/* A numeric that JSON can carry: neither NaN nor an infinity. */
bool
json_numeric_finite(Datum numeric)
{
	Numeric		num = DatumGetNumeric(numeric);

	return !numeric_is_nan(num) && !numeric_is_inf(num);
}

/* Append a numeric as an exact JSON number; NaN and infinities refused. */
void
json_append_numeric(StringInfo buf, Datum numeric, const char *what)
{
	char	   *s;

	if (!json_numeric_finite(numeric))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite number", what),
				 errdetail("%s is %s.", what,
						   numeric_is_nan(DatumGetNumeric(numeric)) ? "NaN" : "infinite"),
				 errhint("JSON has no NaN or infinity; filter such rows out or replace them.")));
	s = DatumGetCString(DirectFunctionCall1(numeric_out, numeric));
	appendStringInfoString(buf, s);
	pfree(s);
}

static void
json_release_cb(void *arg)
{
	json_object_put((json_object *) arg);
}

/*
 * Parse a vendor's body strictly (RFC 8259, valid UTF-8, nothing but white
 * space after the value) without raising for the body: NULL and *why (a
 * phrase: "the body is empty", the parser's complaint) when it is not JSON.
 * The tree is tied to the current memory context, whose reset or deletion
 * drops it, so an ERROR anywhere later frees it as well; the callback is
 * allocated before json-c allocates anything, so no failure leaks the tree.
 */
json_object *
json_parse_ex(const char *body, size_t len, const char **why)
{
	json_tokener *tok;
	json_object *obj;
	enum json_tokener_error jerr;
	MemoryContextCallback *cb;

	*why = NULL;
	if (body == NULL || len == 0)
	{
		*why = "the body is empty";
		return NULL;
	}
	if (len > (size_t) PG_INT32_MAX)
	{
		*why = "the body is too large to parse";
		return NULL;
	}

	cb = MemoryContextAlloc(CurrentMemoryContext, sizeof(MemoryContextCallback));
	tok = json_tokener_new_ex(JSON_MAX_DEPTH);
	if (tok == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
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
	json_tokener_free(tok);
	if (obj == NULL || jerr != json_tokener_success)
	{
		if (obj != NULL)
			json_object_put(obj);
		pfree(cb);
		*why = (jerr == json_tokener_continue) ? "the document ends early" :
			json_tokener_error_desc(jerr);
		return NULL;
	}

	cb->func = json_release_cb;
	cb->arg = obj;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return obj;
}

/* The same, raising SA502 naming `what` when the body is not JSON. */
json_object *
json_parse_response(const char *body, size_t len, const char *what)
{
	const char *why;
	json_object *obj;

	if (body == NULL || len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s returned an empty body", what),
				 errdetail("A JSON document was expected."),
				 errhint("The vendor may be failing; try again later.")));
	obj = json_parse_ex(body, len, &why);
	if (obj == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s returned malformed JSON", what),
				 errdetail("JSON parser: %s.", why),
				 errhint("The vendor may be failing or an intermediary may have answered; try again later.")));
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

/* A JSON type for messages, with its article: "an integer", "a string", ... */
static const char *
json_kind_label(int type)
{
	switch ((json_type) type)
	{
		case json_type_null:
			return "null";
		case json_type_boolean:
			return "a boolean";
		case json_type_int:
			return "an integer";
		case json_type_double:
			return "a number with a fraction";
		case json_type_object:
			return "an object";
		case json_type_array:
			return "an array";
		case json_type_string:
			return "a string";
	}
	return "unknown";
}

/* What a value is, for messages; NULL (absent) is "null". */
const char *
json_kind(json_object *v)
{
	return v ? json_kind_label(json_object_get_type(v)) : "null";
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
				 errmsg("%s returned a response where \"%s\" is %s, not %s",
						what, key, json_kind_label(actual),
						type == json_type_double ? "a number" : json_kind_label(type)),
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

/*
 * json-c does not fail on an integer beyond 64 bits: it saturates it to
 * INT64_MIN or UINT64_MAX, and prints the saturated value back.  Those two
 * values may therefore stand for any larger magnitude, and are refused.
 */
bool
json_int_saturated(json_object *val)
{
	return json_object_is_type(val, json_type_int) &&
		(json_object_get_int64(val) == PG_INT64_MIN ||
		 json_object_get_uint64(val) == PG_UINT64_MAX);
}

/* An integer that fits a bigint into *out; false otherwise (never raises). */
bool
json_int64_value(json_object *val, int64 *out)
{
	if (val == NULL || !json_object_is_type(val, json_type_int) ||
		json_int_saturated(val) || json_object_get_uint64(val) > (uint64) PG_INT64_MAX)
		return false;
	*out = json_object_get_int64(val);
	return true;
}

/*
 * A JSON number as a numeric Datum, exact: from its original text for a
 * number with a fraction or an exponent, from its 64-bit value for an
 * integer (json-c does not keep an integer's text).
 */
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
	if (json_int_saturated(val))
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s is out of range", what),
				 errdetail("The vendor sent an integer of 64 bits or more, which cannot be read exactly."),
				 errhint("The vendor's answer is malformed; check its status.")));
	s = json_object_get_string(val);
	return DirectFunctionCall3(numeric_in, CStringGetDatum(s),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

int64
json_to_int64(json_object *val, const char *what)
{
	int64		v;

	if (val == NULL || !json_object_is_type(val, json_type_int))
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s is not an integer", what),
				 errhint("The vendor's API may have changed; check its status.")));
	if (!json_int64_value(val, &v))
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s is out of range", what),
				 errdetail("The vendor sent an integer that does not fit a bigint."),
				 errhint("The vendor's answer is malformed; check its status.")));
	return v;
}

/*
 * Why a parsed value cannot become jsonb, or NULL: a string holding a NUL
 * (json-c keeps it, jsonb refuses \u0000), or an integer json-c saturated.
 */
static const char *
json_tree_problem(json_object *val)
{
	switch (json_object_get_type(val))
	{
		case json_type_string:
			if (strlen(json_object_get_string(val)) != (size_t) json_object_get_string_len(val))
				return "a string holds a NUL character (\\u0000)";
			return NULL;
		case json_type_int:
			if (json_int_saturated(val))
				return "an integer of 64 bits or more cannot be read exactly";
			return NULL;
		case json_type_array:
			{
				size_t		n = json_object_array_length(val);

				for (size_t i = 0; i < n; i++)
				{
					json_object *item = json_object_array_get_idx(val, i);
					const char *why = item ? json_tree_problem(item) : NULL;

					if (why)
						return why;
				}
				return NULL;
			}
		case json_type_object:
			{
				json_object_object_foreach(val, key, item)
				{
					const char *why = item ? json_tree_problem(item) : NULL;

					(void) key;
					if (why)
						return why;
				}
				return NULL;
			}
		default:
			return NULL;
	}
}

/* The whole value as jsonb, numbers exact; `what` names it in an error. */
Datum
json_to_jsonb(json_object *val, const char *what)
{
	const char *s;
	const char *why;
	char	   *text;

	check_stack_depth();
	why = json_tree_problem(val);
	if (why == NULL)
	{
		s = json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN |
										   JSON_C_TO_STRING_NOSLASHESCAPE);
		why = utf8_to_server(s, strlen(s), &text);
	}
	if (why != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s cannot be stored as jsonb", what),
				 errdetail("In the vendor's value, %s.", why),
				 errhint("The vendor's answer is malformed, or uses characters the database encoding cannot represent (a UTF8 database takes every character).")));
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(text));
}

/* ------------------------------------------------------------------------
 * Vendor text in the database encoding
 * ------------------------------------------------------------------------
 */

/*
 * UTF-8 bytes s[0..len) as database text in *out (palloc'd).  Returns why
 * that is impossible, or NULL; never raises for the input.
 */
static const char *
utf8_to_server(const char *s, size_t len, char **out)
{
	static Oid	proc = InvalidOid;
	int			dbenc = GetDatabaseEncoding();
	char	   *dest;
	size_t		destlen;
	int			converted;

	*out = NULL;
	if (memchr(s, '\0', len) != NULL)
		return "a string holds a NUL character (\\u0000)";
	if (len > (size_t) PG_INT32_MAX / MAX_CONVERSION_GROWTH - 1)
		return "a string is too long";
	if (!pg_verify_mbstr(PG_UTF8, s, (int) len, true))
		return "a string is not valid UTF-8";
	if (dbenc == PG_UTF8 || dbenc == PG_SQL_ASCII)
	{
		/* SQL_ASCII stores the bytes as they are, as pg_any_to_server() does */
		*out = pnstrdup(s, len);
		return NULL;
	}
	if (!OidIsValid(proc))
	{
		proc = FindDefaultConversionProc(PG_UTF8, dbenc);
		if (!OidIsValid(proc))
			return psprintf("there is no conversion from UTF8 to %s", GetDatabaseEncodingName());
	}
	destlen = len * MAX_CONVERSION_GROWTH + 1;
	dest = MemoryContextAllocHuge(CurrentMemoryContext, destlen);
	converted = pg_do_encoding_conversion_buf(proc, PG_UTF8, dbenc,
											  (unsigned char *) s, (int) len,
											  (unsigned char *) dest, (int) destlen, true);
	if (converted < (int) len)
	{
		pfree(dest);
		return psprintf("a string holds a character that the database encoding %s cannot represent",
						GetDatabaseEncodingName());
	}
	*out = dest;
	return NULL;
}

/*
 * Why a vendor's JSON string cannot be database text, or NULL with the
 * text in *out.  For callers that must not raise.
 */
const char *
json_text_problem(json_object *v, char **out)
{
	return utf8_to_server(json_object_get_string(v), json_object_get_string_len(v), out);
}

/* A vendor's JSON string as database text; SA502 naming `what` if it cannot be. */
char *
json_text(json_object *v, const char *what)
{
	char	   *out;
	const char *why = json_text_problem(v, &out);

	if (why != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s is not text the database can store", what),
				 errdetail("In the vendor's value, %s.", why),
				 errhint("The vendor's answer is malformed, or uses characters the database encoding cannot represent (a UTF8 database takes every character).")));
	return out;
}

/*
 * Vendor text s[0..len) for a message, never raising: in the database
 * encoding (a byte that is not UTF-8, or a character the encoding lacks,
 * becomes '?'), control characters as spaces, at most maxlen bytes cut on a
 * character boundary, with "..." when cut.
 */
char *
json_text_for_message(const char *s, size_t len, int maxlen)
{
	StringInfoData u;
	StringInfoData out;
	size_t		i = 0;
	bool		cut = false;
	char	   *conv;
	int			clip;

	initStringInfo(&u);
	while (i < len)
	{
		unsigned char c = (unsigned char) s[i];
		int			l;

		if (u.len >= maxlen * MAX_CONVERSION_GROWTH)
		{
			cut = true;
			break;
		}
		if (c < 0x80)
		{
			appendStringInfoChar(&u, (c < ' ' || c == 0x7f) ? ' ' : (char) c);
			i++;
			continue;
		}
		l = pg_utf_mblen((const unsigned char *) s + i);
		if (i + l <= len && pg_utf8_islegal((const unsigned char *) s + i, l))
		{
			appendBinaryStringInfo(&u, s + i, l);
			i += l;
		}
		else
		{
			appendStringInfoChar(&u, '?');
			i++;
		}
	}

	if (utf8_to_server(u.data, u.len, &conv) != NULL)
	{
		/* one character at a time, '?' for those the encoding lacks */
		initStringInfo(&out);
		for (int k = 0; k < u.len;)
		{
			int			l = pg_utf_mblen((const unsigned char *) u.data + k);
			char	   *one;

			if (utf8_to_server(u.data + k, l, &one) == NULL)
				appendStringInfoString(&out, one);
			else
				appendStringInfoChar(&out, '?');
			k += l;
		}
		conv = out.data;
	}

	clip = pg_mbcliplen(conv, strlen(conv), maxlen);
	if (clip < (int) strlen(conv))
		cut = true;
	initStringInfo(&out);
	appendBinaryStringInfo(&out, conv, clip);
	if (cut)
		appendStringInfoString(&out, "...");
	return out.data;
}
