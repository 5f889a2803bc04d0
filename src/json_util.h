/*-------------------------------------------------------------------------
 *
 * json_util.h
 *		json-c helpers (json_util.c): writing JSON, parsing vendors' answers,
 *		typed accessors, and vendor text in the database encoding.  A file
 *		that uses json-c itself includes sa_json.h first.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_JSON_UTIL_H
#define SALES_API_JSON_UTIL_H

#include "postgres.h"

#include "lib/stringinfo.h"

struct json_object;

extern void json_append_string(StringInfo buf, const char *s);
extern void json_append_quoted(StringInfo buf, const char *s);
extern bool json_numeric_finite(Datum numeric);
extern void json_append_numeric(StringInfo buf, Datum numeric, const char *what);
extern struct json_object *json_parse_ex(const char *body, size_t len, const char **why);
extern struct json_object *json_parse_response(const char *body, size_t len,
											   const char *what);
extern struct json_object *json_get(struct json_object *obj, const char *key);
extern struct json_object *json_require(struct json_object *obj,
										const char *key, int type,
										const char *what);
extern const char *json_get_str(struct json_object *obj, const char *key);
extern const char *json_kind(struct json_object *v);
extern Datum json_to_numeric(struct json_object *val, const char *what);
extern Datum json_to_jsonb(struct json_object *val, const char *what);
extern int64 json_to_int64(struct json_object *val, const char *what);
extern bool json_int_saturated(struct json_object *val);
extern bool json_int64_value(struct json_object *val, int64 *out);
extern char *json_text(struct json_object *v, const char *what);
extern const char *json_text_problem(struct json_object *v, char **out);
extern char *json_text_for_message(const char *s, size_t len, int maxlen);

#endif							/* SALES_API_JSON_UTIL_H */
