/*-------------------------------------------------------------------------
 *
 * harness.c
 *		libFuzzer harness over sales_api's response parsing: the code every
 *		vendor answer goes through before it becomes a row or a message.
 *
 * The first byte of an input picks the target, the rest is the vendor's
 * bytes:
 *
 *	 0  a response body: json_parse_ex() and json_parse_response(), then a
 *		walk of the tree doing what the row builders do with every value:
 *		json_get / json_get_str / json_require for each type, json_kind,
 *		json_to_numeric, json_to_int64, json_int64_value, json_text,
 *		json_text_problem, and json_to_jsonb of the whole document;
 *	 1  an error answer: vendor_error_message() and
 *		vendor_token_error_message() with a status and Content-Type taken
 *		from the next two bytes;
 *	 2  a vendor date or date-time: dates_parse_datetime(), dates_parse_date();
 *	 3  vendor text for messages and URLs: json_text_for_message() with a
 *		length limit from the next byte, vendor_url_encode() both ways.
 *
 * An ereport(ERROR) is an expected outcome (a clear error for a bad
 * answer); it must carry a SQLSTATE of ours or a standard one, never
 * XX000.  A crash, an AddressSanitizer or UndefinedBehaviorSanitizer
 * report, or a leak is a finding.  Everything palloc'd is released after
 * each input (pgshim.c), as the server resets a per-call memory context.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "sa_json.h"

#include "dates.h"
#include "http.h"
#include "json_util.h"
#include "sales_api.h"
#include "vendor.h"

#include "pgshim.h"

/*
 * Run `stmt`; an ereport(ERROR) inside it lands here.  Nothing the
 * statement changes is read after a jump, so no volatile is needed.
 */
#define TRY(stmt) \
	do { \
		sigjmp_buf	_jb; \
		sigjmp_buf *_save = PG_exception_stack; \
		if (sigsetjmp(_jb, 0) == 0) \
		{ \
			PG_exception_stack = &_jb; \
			stmt; \
		} \
		else \
			check_error(); \
		PG_exception_stack = _save; \
	} while (0)

static void
check_error(void)
{
	if (shim_last_sqlstate == ERRCODE_INTERNAL_ERROR)
	{
		fprintf(stderr, "internal error (XX000) raised for a vendor's answer: %s\n", shim_last_message);
		abort();
	}
}

static void
walk(json_object *v, int depth)
{
	static const int types[] = {json_type_int, json_type_double, json_type_string,
	json_type_array, json_type_object, json_type_boolean};

	if (v == NULL || depth > 80)
		return;
	(void) json_kind(v);
	switch (json_object_get_type(v))
	{
		case json_type_object:
			{
				json_object_object_foreach(v, key, val)
				{
					(void) json_get(v, key);
					(void) json_get_str(v, key);
					for (size_t t = 0; t < lengthof(types); t++)
						TRY((void) json_require(v, key, types[t], "a field"));
					walk(val, depth + 1);
				}
				break;
			}
		case json_type_array:
			{
				size_t		n = json_object_array_length(v);

				for (size_t i = 0; i < n; i++)
					walk(json_object_array_get_idx(v, i), depth + 1);
				break;
			}
		default:
			{
				int64		i64;
				char	   *text;

				TRY((void) json_to_numeric(v, "a number"));
				TRY((void) json_to_int64(v, "an integer"));
				(void) json_int64_value(v, &i64);
				if (json_object_is_type(v, json_type_string))
				{
					(void) json_text_problem(v, &text);
					TRY((void) json_text(v, "a string"));
				}
				break;
			}
	}
}

static void
fuzz_body(const char *d, size_t n)
{
	const char *why;
	json_object *obj = json_parse_ex(d, n, &why);

	if (obj != NULL)
	{
		walk(obj, 0);
		TRY((void) json_to_jsonb(obj, "the answer"));
	}
	TRY((void) json_parse_response(d, n, "the vendor"));
}

static void
fuzz_error_answer(const uint8_t *d, size_t n)
{
	static const long statuses[] = {200, 201, 204, 301, 302, 307, 400, 401, 403, 404, 409,
	422, 429, 500, 502, 503, 504};
	static const char *const ctypes[] = {NULL, "application/json", "text/html; charset=utf-8",
	"application/problem+json", "text/plain"};
	HttpRequest req;

	if (n < 2)
		return;
	memset(&req, 0, sizeof(req));
	req.done = true;
	req.status = statuses[d[0] % lengthof(statuses)];
	req.content_type = (char *) ctypes[d[1] % lengthof(ctypes)];
	req.resp_len = n - 2;
	req.resp = palloc(req.resp_len + 1);
	memcpy(req.resp, d + 2, req.resp_len);
	req.resp[req.resp_len] = '\0';
	req.retry_after_s = -1;
	TRY((void) vendor_error_message(&req));
	TRY((void) vendor_token_error_message(&req));
}

static void
fuzz_dates(const char *s)
{
	struct pg_tm tm;
	fsec_t		fsec;
	bool		has_offset;
	int			offset;
	DateADT		day;

	(void) dates_parse_datetime(s, &tm, &fsec, &has_offset, &offset);
	(void) dates_parse_date(s, true, &day);
	(void) dates_parse_date(s, false, &day);
}

static void
fuzz_text(const uint8_t *d, size_t n)
{
	char	   *s;

	if (n < 1)
		return;
	TRY((void) json_text_for_message((const char *) d + 1, n - 1, d[0]));
	s = pnstrdup((const char *) d + 1, n - 1);
	TRY((void) vendor_url_encode(s, true));
	TRY((void) vendor_url_encode(s, false));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *s;

	if (size < 1)
		return 0;
	switch (data[0] % 4)
	{
		case 0:
			fuzz_body((const char *) data + 1, size - 1);
			break;
		case 1:
			fuzz_error_answer(data + 1, size - 1);
			break;
		case 2:
			s = pnstrdup((const char *) data + 1, size - 1);
			fuzz_dates(s);
			break;
		case 3:
			fuzz_text(data + 1, size - 1);
			break;
	}
	shim_reset();
	return 0;
}
