/*-------------------------------------------------------------------------
 *
 * pgshim.c
 *		Just enough of the PostgreSQL backend for the fuzz harness to link
 *		sales_api's response parsing (src/json_util.c, src/dates.c,
 *		src/vendor.c) outside a server.
 *
 * Memory: palloc and friends allocate from one fake memory context whose
 * chunks (and reset callbacks, where json_util.c ties parsed json-c trees)
 * are released by shim_reset() after every input, as PostgreSQL releases a
 * per-call context; AddressSanitizer then reports any leak or use after
 * free in the code under test.  ereport(ERROR) long-jumps to the harness
 * through PG_exception_stack, as in the backend.  Conversions: the database
 * encoding is UTF8; numeric_in and jsonb_in are strict validators (what
 * the server's would refuse, these refuse).  Functions the harness never
 * reaches (the network side of vendor.c) abort if called.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "sa_json.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "nodes/memnodes.h"
#include "utils/datetime.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "pgshim.h"

/*
 * port.h maps the printf family to PostgreSQL's own implementation (in the
 * server binary); libc's does the same job here.
 */
#undef vsnprintf
#undef snprintf
#undef fprintf
#undef vfprintf

int
pg_vsnprintf(char *str, size_t count, const char *fmt, va_list args)
{
	return vsnprintf(str, count, fmt, args);
}

int
pg_snprintf(char *str, size_t count, const char *fmt,...)
{
	va_list		args;
	int			n;

	va_start(args, fmt);
	n = vsnprintf(str, count, fmt, args);
	va_end(args);
	return n;
}

int
pg_fprintf(FILE *stream, const char *fmt,...)
{
	va_list		args;
	int			n;

	va_start(args, fmt);
	n = vfprintf(stream, fmt, args);
	va_end(args);
	return n;
}

/* ------------------------------------------------------------------------
 * memory
 * ------------------------------------------------------------------------
 */
typedef struct Chunk
{
	struct Chunk *prev;
	struct Chunk *next;
	size_t		size;
	/* the caller's bytes follow, maximally aligned */
	max_align_t data[];
} Chunk;

static MemoryContextData shim_context;
MemoryContext CurrentMemoryContext = &shim_context;
static Chunk chunks = {&chunks, &chunks, 0};	/* list head */
static MemoryContextCallback *callbacks = NULL;

static void *
shim_alloc(size_t size, bool zero)
{
	Chunk	   *c = malloc(sizeof(Chunk) + (size ? size : 1));

	if (c == NULL)
		abort();
	c->size = size;
	c->next = chunks.next;
	c->prev = &chunks;
	chunks.next->prev = c;
	chunks.next = c;
	if (zero)
		memset(c->data, 0, size);
	return c->data;
}

static Chunk *
chunk_of(void *p)
{
	return (Chunk *) ((char *) p - offsetof(Chunk, data));
}

/* really freed, so that AddressSanitizer sees any use after pfree */
static void
chunk_free(Chunk *c)
{
	c->prev->next = c->next;
	c->next->prev = c->prev;
	free(c);
}

void *
palloc(Size size)
{
	if (!AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	return shim_alloc(size, false);
}

void *
palloc0(Size size)
{
	if (!AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	return shim_alloc(size, true);
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	(void) context;
	return palloc(size);
}

void *
MemoryContextAllocZero(MemoryContext context, Size size)
{
	(void) context;
	return palloc0(size);
}

void *
MemoryContextAllocHuge(MemoryContext context, Size size)
{
	(void) context;
	if (!AllocHugeSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	return shim_alloc(size, false);
}

void *
repalloc(void *pointer, Size size)
{
	Chunk	   *old = chunk_of(pointer);
	void	   *p = palloc(size);

	memcpy(p, pointer, Min(old->size, size));
	chunk_free(old);
	return p;
}

void
pfree(void *pointer)
{
	chunk_free(chunk_of(pointer));
}

char *
pstrdup(const char *in)
{
	return pnstrdup(in, strlen(in));
}

char *
pnstrdup(const char *in, Size len)
{
	char	   *out;

	len = strnlen(in, len);
	out = palloc(len + 1);
	memcpy(out, in, len);
	out[len] = '\0';
	return out;
}

char *
psprintf(const char *fmt,...)
{
	va_list		args;
	int			n;
	char	   *out;

	va_start(args, fmt);
	n = vsnprintf(NULL, 0, fmt, args);
	va_end(args);
	out = palloc(n + 1);
	va_start(args, fmt);
	vsnprintf(out, n + 1, fmt, args);
	va_end(args);
	return out;
}

void
MemoryContextRegisterResetCallback(MemoryContext context, MemoryContextCallback *cb)
{
	(void) context;
	cb->next = callbacks;
	callbacks = cb;
}

/* As a per-call memory context is reset: callbacks first, then the memory. */
void
shim_reset(void)
{
	while (callbacks != NULL)
	{
		MemoryContextCallback *cb = callbacks;

		callbacks = cb->next;
		cb->func(cb->arg);
	}
	while (chunks.next != &chunks)
		chunk_free(chunks.next);
}

/* ------------------------------------------------------------------------
 * StringInfo
 * ------------------------------------------------------------------------
 */
void
initStringInfo(StringInfo str)
{
	str->maxlen = 1024;
	str->data = palloc(str->maxlen);
	resetStringInfo(str);
}

void
resetStringInfo(StringInfo str)
{
	str->data[0] = '\0';
	str->len = 0;
	str->cursor = 0;
}

void
enlargeStringInfo(StringInfo str, int needed)
{
	int			newlen;

	if (needed < 0 || ((Size) needed) >= (MaxAllocSize - (Size) str->len))
		elog(ERROR, "out of memory: string buffer of %d bytes cannot grow by %d", str->len, needed);
	needed += str->len + 1;
	if (needed <= str->maxlen)
		return;
	newlen = 2 * str->maxlen;
	while (needed > newlen)
		newlen = 2 * newlen;
	if (newlen > (int) MaxAllocSize)
		newlen = (int) MaxAllocSize;
	str->data = repalloc(str->data, newlen);
	str->maxlen = newlen;
}

void
appendBinaryStringInfo(StringInfo str, const char *data, int datalen)
{
	enlargeStringInfo(str, datalen);
	memcpy(str->data + str->len, data, datalen);
	str->len += datalen;
	str->data[str->len] = '\0';
}

void
appendStringInfoString(StringInfo str, const char *s)
{
	appendBinaryStringInfo(str, s, strlen(s));
}

void
appendStringInfoChar(StringInfo str, char ch)
{
	appendBinaryStringInfo(str, &ch, 1);
}

int
appendStringInfoVA(StringInfo str, const char *fmt, va_list args)
{
	int			avail = str->maxlen - str->len;
	int			n = vsnprintf(str->data + str->len, avail, fmt, args);

	if (n < avail)
	{
		str->len += n;
		return 0;
	}
	str->data[str->len] = '\0';
	return n + 1;
}

void
appendStringInfo(StringInfo str, const char *fmt,...)
{
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(str, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(str, needed);
	}
}

/* ------------------------------------------------------------------------
 * errors: ereport(ERROR) long-jumps to the harness
 * ------------------------------------------------------------------------
 */
sigjmp_buf *PG_exception_stack = NULL;
ErrorContextCallback *error_context_stack = NULL;
static int	cur_elevel;
int			shim_last_sqlstate;
char		shim_last_message[1024];

bool
errstart(int elevel, const char *domain)
{
	(void) domain;
	cur_elevel = elevel;
	shim_last_sqlstate = (elevel >= ERROR) ? ERRCODE_INTERNAL_ERROR : 0;
	shim_last_message[0] = '\0';
	return elevel >= ERROR;		/* lower levels are not reported */
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	(void) filename;
	(void) lineno;
	(void) funcname;
	if (cur_elevel < ERROR)
		return;
	if (PG_exception_stack == NULL)
		abort();
	siglongjmp(*PG_exception_stack, 1);
}

int
errcode(int sqlerrcode)
{
	shim_last_sqlstate = sqlerrcode;
	return 0;
}

/* every message is formatted, so that a bad format or argument shows */
static void
format_into(char *buf, size_t size, const char *fmt, va_list args)
{
	vsnprintf(buf, size, fmt, args);
}

int
errmsg(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	format_into(shim_last_message, sizeof(shim_last_message), fmt, args);
	va_end(args);
	return 0;
}

int
errmsg_internal(const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	format_into(shim_last_message, sizeof(shim_last_message), fmt, args);
	va_end(args);
	return 0;
}

int
errdetail(const char *fmt,...)
{
	char		buf[4096];
	va_list		args;

	va_start(args, fmt);
	format_into(buf, sizeof(buf), fmt, args);
	va_end(args);
	return 0;
}

int
errhint(const char *fmt,...)
{
	char		buf[4096];
	va_list		args;

	va_start(args, fmt);
	format_into(buf, sizeof(buf), fmt, args);
	va_end(args);
	return 0;
}

void
check_stack_depth(void)
{
}

/* ------------------------------------------------------------------------
 * encodings: a UTF8 database
 * ------------------------------------------------------------------------
 */
int
GetDatabaseEncoding(void)
{
	return PG_UTF8;
}

const char *
GetDatabaseEncodingName(void)
{
	return "UTF8";
}

char *
pg_server_to_any(const char *s, int len, int encoding)
{
	(void) len;
	(void) encoding;
	return unconstify(char *, s);
}

/* PostgreSQL's src/common/wchar.c */
int
pg_utf_mblen(const unsigned char *s)
{
	if ((*s & 0x80) == 0)
		return 1;
	else if ((*s & 0xe0) == 0xc0)
		return 2;
	else if ((*s & 0xf0) == 0xe0)
		return 3;
	else if ((*s & 0xf8) == 0xf0)
		return 4;
	return 1;
}

bool
pg_utf8_islegal(const unsigned char *source, int length)
{
	unsigned char a;

	switch (length)
	{
		default:
			return false;
		case 4:
			a = source[3];
			if (a < 0x80 || a > 0xBF)
				return false;
			/* FALL THRU */
		case 3:
			a = source[2];
			if (a < 0x80 || a > 0xBF)
				return false;
			/* FALL THRU */
		case 2:
			a = source[1];
			switch (*source)
			{
				case 0xE0:
					if (a < 0xA0 || a > 0xBF)
						return false;
					break;
				case 0xED:
					if (a < 0x80 || a > 0x9F)
						return false;
					break;
				case 0xF0:
					if (a < 0x90 || a > 0xBF)
						return false;
					break;
				case 0xF4:
					if (a < 0x80 || a > 0x8F)
						return false;
					break;
				default:
					if (a < 0x80 || a > 0xBF)
						return false;
					break;
			}
			/* FALL THRU */
		case 1:
			a = *source;
			if (a >= 0x80 && a < 0xC2)
				return false;
			if (a > 0xF4)
				return false;
			break;
	}
	return true;
}

bool
pg_verify_mbstr(int encoding, const char *mbstr, int len, bool noError)
{
	const unsigned char *s = (const unsigned char *) mbstr;

	Assert(encoding == PG_UTF8);
	(void) encoding;
	while (len > 0)
	{
		int			l;

		if (*s == '\0')
			goto bad;
		l = pg_utf_mblen(s);
		if (l > len || !pg_utf8_islegal(s, l))
			goto bad;
		s += l;
		len -= l;
	}
	return true;
bad:
	if (noError)
		return false;
	ereport(ERROR, (errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE), errmsg("invalid byte sequence for encoding UTF8")));
	return false;
}

int
pg_mbcliplen(const char *mbstr, int len, int limit)
{
	int			clen = 0;

	while (len > 0 && *mbstr)
	{
		int			l = pg_utf_mblen((const unsigned char *) mbstr);

		if ((clen + l) > limit)
			break;
		clen += l;
		if (clen == limit)
			break;
		len -= l;
		mbstr += l;
	}
	return clen;
}

Oid
FindDefaultConversionProc(int32 for_encoding, int32 to_encoding)
{
	(void) for_encoding;
	(void) to_encoding;
	abort();					/* never: the database is UTF8 */
}

int
pg_do_encoding_conversion_buf(Oid proc, int src_encoding, int dest_encoding,
							  unsigned char *src, int srclen,
							  unsigned char *dest, int destlen, bool noError)
{
	(void) proc, (void) src_encoding, (void) dest_encoding, (void) src;
	(void) srclen, (void) dest, (void) destlen, (void) noError;
	abort();
}

int
pg_strncasecmp(const char *s1, const char *s2, size_t n)
{
	return strncasecmp(s1, s2, n);
}

int
pg_strcasecmp(const char *s1, const char *s2)
{
	return strcasecmp(s1, s2);
}

/* PostgreSQL's escape_json (utils/adt/json.c) */
void
escape_json(StringInfo buf, const char *str)
{
	appendStringInfoCharMacro(buf, '"');
	for (const char *p = str; *p; p++)
	{
		switch (*p)
		{
			case '\b':
				appendStringInfoString(buf, "\\b");
				break;
			case '\f':
				appendStringInfoString(buf, "\\f");
				break;
			case '\n':
				appendStringInfoString(buf, "\\n");
				break;
			case '\r':
				appendStringInfoString(buf, "\\r");
				break;
			case '\t':
				appendStringInfoString(buf, "\\t");
				break;
			case '"':
				appendStringInfoString(buf, "\\\"");
				break;
			case '\\':
				appendStringInfoString(buf, "\\\\");
				break;
			default:
				if ((unsigned char) *p < ' ')
					appendStringInfo(buf, "\\u%04x", (int) *p);
				else
					appendStringInfoCharMacro(buf, *p);
				break;
		}
	}
	appendStringInfoCharMacro(buf, '"');
}

/* ------------------------------------------------------------------------
 * numeric and jsonb input: strict validators
 * ------------------------------------------------------------------------
 */
static Datum
text_copy(const char *s)
{
	return PointerGetDatum(pstrdup(s));
}

/* numeric_in's grammar: [+-](digits[.digits]|.digits)[(e|E)[+-]digits], NaN, [+-]Infinity */
Datum
numeric_in(PG_FUNCTION_ARGS)
{
	const char *s = PG_GETARG_CSTRING(0);
	const char *p = s;
	int			digits = 0;

	while (isspace((unsigned char) *p))
		p++;
	if (pg_strcasecmp(p, "NaN") == 0)
		return text_copy(s);
	if (*p == '+' || *p == '-')
		p++;
	if (pg_strcasecmp(p, "Infinity") == 0 || pg_strcasecmp(p, "inf") == 0)
		return text_copy(s);
	for (; isdigit((unsigned char) *p); p++)
		digits++;
	if (*p == '.')
		for (p++; isdigit((unsigned char) *p); p++)
			digits++;
	if (digits == 0)
		goto bad;
	if (*p == 'e' || *p == 'E')
	{
		long		e = 0;

		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit((unsigned char) *p))
			goto bad;
		for (; isdigit((unsigned char) *p); p++)
			if (e < 100000000)
				e = e * 10 + (*p - '0');
		if (e > 1000 * 1000)	/* the server refuses such exponents */
			ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
							errmsg("invalid input syntax for type numeric: \"%s\"", s)));
	}
	while (isspace((unsigned char) *p))
		p++;
	if (*p != '\0')
		goto bad;
	return text_copy(s);
bad:
	ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					errmsg("invalid input syntax for type numeric: \"%s\"", s)));
	return (Datum) 0;
}

Datum
numeric_out(PG_FUNCTION_ARGS)
{
	return text_copy((const char *) PG_GETARG_POINTER(0));
}

bool
numeric_is_nan(Numeric num)
{
	return pg_strcasecmp((const char *) num, "NaN") == 0;
}

bool
numeric_is_inf(Numeric num)
{
	return strstr((const char *) num, "nf") != NULL;
}

struct varlena *
pg_detoast_datum(struct varlena *datum)
{
	return datum;
}

/* jsonb_in refuses what is not strict JSON, and \u0000 */
Datum
jsonb_in(PG_FUNCTION_ARGS)
{
	const char *s = PG_GETARG_CSTRING(0);
	json_tokener *tok = json_tokener_new_ex(64);
	json_object *obj;
	bool		ok;

	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, s, (int) strlen(s));
	ok = (obj != NULL && json_tokener_get_error(tok) == json_tokener_success) && strstr(s, "\\u0000") == NULL;
	json_tokener_free(tok);
	if (obj)
		json_object_put(obj);
	if (!ok)
		ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
						errmsg("invalid input syntax for type json")));
	return text_copy(s);
}

Datum
DirectFunctionCall1Coll(PGFunction func, Oid collation, Datum arg1)
{
	LOCAL_FCINFO(fcinfo, 1);

	InitFunctionCallInfoData(*fcinfo, NULL, 1, collation, NULL, NULL);
	fcinfo->args[0].value = arg1;
	fcinfo->args[0].isnull = false;
	return func(fcinfo);
}

Datum
DirectFunctionCall3Coll(PGFunction func, Oid collation, Datum arg1, Datum arg2, Datum arg3)
{
	LOCAL_FCINFO(fcinfo, 3);

	InitFunctionCallInfoData(*fcinfo, NULL, 3, collation, NULL, NULL);
	fcinfo->args[0].value = arg1;
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = arg2;
	fcinfo->args[1].isnull = false;
	fcinfo->args[2].value = arg3;
	fcinfo->args[2].isnull = false;
	return func(fcinfo);
}

/* ------------------------------------------------------------------------
 * dates: PostgreSQL's utils/adt/datetime.c
 * ------------------------------------------------------------------------
 */
const int	day_tab[2][13] =
{
	{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 0},
	{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 0}
};

int
date2j(int y, int m, int d)
{
	int			julian;
	int			century;

	if (m > 2)
	{
		m += 1;
		y += 4800;
	}
	else
	{
		m += 13;
		y += 4799;
	}
	century = y / 100;
	julian = y * 365 - 32167;
	julian += y / 4 - century + century / 4;
	julian += 7834 * m / 256 + d;
	return julian;
}

void
j2date(int jd, int *year, int *month, int *day)
{
	unsigned int julian;
	unsigned int quad;
	unsigned int extra;
	int			y;

	julian = jd;
	julian += 32044;
	quad = julian / 146097;
	extra = (julian - quad * 146097) * 4 + 3;
	julian += 60 + quad * 3 + extra / 146097;
	quad = julian / 1461;
	julian -= quad * 1461;
	y = julian * 4 / 1461;
	julian = ((y != 0) ? ((julian + 305) % 365) : ((julian + 306) % 366)) + 123;
	y += quad * 4;
	*year = y - 4800;
	quad = julian * 2141 / 65536;
	*day = julian - 7834 * quad / 256;
	*month = (quad + 10) % MONTHS_PER_YEAR + 1;
}

int
timestamp2tm(Timestamp dt, int *tzp, struct pg_tm *tm, fsec_t *fsec, const char **tzn, pg_tz *attimezone)
{
	(void) dt, (void) tzp, (void) tm, (void) fsec, (void) tzn, (void) attimezone;
	abort();					/* only for writing dates, not reached */
}

/* ------------------------------------------------------------------------
 * the network side of vendor.c: never reached by the harness
 * ------------------------------------------------------------------------
 */
#define NOT_REACHED(name) void name(void); void name(void) { abort(); }
NOT_REACHED(auth_invalidate)
NOT_REACHED(auth_obtain)
NOT_REACHED(auth_report_error)
NOT_REACHED(auth_set_header)
NOT_REACHED(auth_uses_token)
NOT_REACHED(http_perform_all)
NOT_REACHED(http_report_transport_error)
NOT_REACHED(http_request_reset_outcome)
NOT_REACHED(server_vendor_name)
