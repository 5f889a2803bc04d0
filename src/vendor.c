/*-------------------------------------------------------------------------
 *
 * vendor.c
 *		Authenticated requests and the mapping of a vendor's answer to a
 *		SQL error: SQLSTATE by HTTP status class, the vendor's own message in
 *		the detail (ProblemDetails, Cashrec's code/message, OAuth errors,
 *		Connecteam's 422 field list and domain errors), and a hint.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sa_json.h"

#include "common/base64.h"
#include "mb/pg_wchar.h"

#include "json_util.h"
#include "server.h"
#include "vendor.h"

bool
vendor_ok(const HttpRequest *req)
{
	return req->done && req->status >= 200 && req->status < 300;
}

/*
 * Percent-encode s (database text) as UTF-8, everything but RFC 3986
 * unreserved characters.  With path_segment, '.' is encoded as well, so
 * that no value can form a "." or ".." segment, which libcurl would
 * resolve and so change the path.
 */
char *
vendor_url_encode(const char *s, bool path_segment)
{
	StringInfoData buf;
	static const char hex[] = "0123456789ABCDEF";
	char	   *u = pg_server_to_any(s, strlen(s), PG_UTF8);

	initStringInfo(&buf);
	for (const unsigned char *p = (const unsigned char *) u; *p; p++)
	{
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '~' ||
			(*p == '.' && !path_segment))
			appendStringInfoChar(&buf, (char) *p);
		else
		{
			appendStringInfoChar(&buf, '%');
			appendStringInfoChar(&buf, hex[*p >> 4]);
			appendStringInfoChar(&buf, hex[*p & 15]);
		}
	}
	if (u != s)
	{
		/* it may be a secret (auth.c's form bodies) */
		explicit_bzero(u, strlen(u));
		pfree(u);
	}
	return buf.data;
}

/* Vendor text (UTF-8, any bytes) into a message: see json_text_for_message() */
static void
append_clean(StringInfo buf, const char *s, size_t len, int maxlen)
{
	appendStringInfoString(buf, json_text_for_message(s, len, maxlen));
}

static void
append_json_scalar(StringInfo buf, json_object *v)
{
	if (v == NULL)
		appendStringInfoString(buf, "null");
	else if (json_object_is_type(v, json_type_string))
		append_clean(buf, json_object_get_string(v), json_object_get_string_len(v), 300);
	else
	{
		const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);

		append_clean(buf, s, strlen(s), 300);
	}
}

/* Connecteam 422: detail[].loc joined with "." plus msg */
static void
describe_detail_list(StringInfo buf, json_object *detail)
{
	size_t		n = json_object_array_length(detail);

	for (size_t i = 0; i < n && i < 10; i++)
	{
		json_object *item = json_object_array_get_idx(detail, i);
		json_object *loc = json_get(item, "loc");

		if (i > 0)
			appendStringInfoString(buf, "; ");
		if (loc && json_object_is_type(loc, json_type_array))
		{
			for (size_t j = 0; j < json_object_array_length(loc); j++)
			{
				if (j > 0)
					appendStringInfoChar(buf, '.');
				append_json_scalar(buf, json_object_array_get_idx(loc, j));
			}
			appendStringInfoString(buf, ": ");
		}
		append_json_scalar(buf, json_get(item, "msg"));
	}
	if (n > 10)
		appendStringInfo(buf, "; and %zu more", n - 10);
}

static char *vendor_error_text(const HttpRequest *req);

/* ------------------------------------------------------------------------
 * Credentials out of vendor text
 * ------------------------------------------------------------------------
 */
#define CREDENTIAL_REMOVED "[credential removed]"

/* a credential this short would also match ordinary words: there is none such */
#define CREDENTIAL_MIN_LEN 6

/* the credentials of one request, each also as JSON may write it */
#define MAX_SECRETS 12
typedef struct Secrets
{
	int			n;
	char	   *s[MAX_SECRETS];
} Secrets;

static void
add_secret(Secrets *secrets, const char *value, size_t len)
{
	char	   *v;
	StringInfoData esc;

	if (len < CREDENTIAL_MIN_LEN || secrets->n >= MAX_SECRETS - 1)
		return;
	v = pnstrdup(value, len);
	secrets->s[secrets->n++] = v;
	/* as a JSON text may write it: json-c writes '/' as "\/" */
	if (strchr(v, '/') != NULL)
	{
		initStringInfo(&esc);
		for (const char *p = v; *p; p++)
		{
			if (*p == '/')
				appendStringInfoChar(&esc, '\\');
			appendStringInfoChar(&esc, *p);
		}
		secrets->s[secrets->n++] = esc.data;
	}
}

/* %XX and '+' of a form value */
static char *
form_decode(const char *s, size_t len)
{
	StringInfoData out;

	initStringInfo(&out);
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] == '%' && i + 2 < len && isxdigit((unsigned char) s[i + 1]) &&
			isxdigit((unsigned char) s[i + 2]))
		{
			char		hex[3] = {s[i + 1], s[i + 2], '\0'};

			appendStringInfoChar(&out, (char) strtol(hex, NULL, 16));
			i += 2;
		}
		else
			appendStringInfoChar(&out, s[i] == '+' ? ' ' : s[i]);
	}
	return out.data;
}

static bool
sent_form(const HttpRequest *req)
{
	ListCell   *lc;

	foreach(lc, req->headers)
	{
		if (pg_strcasecmp((char *) lfirst(lc), "Content-Type: application/x-www-form-urlencoded") == 0)
			return true;
	}
	return false;
}

/*
 * The credentials a request carried: the API key or bearer token of its
 * header, the secret of HTTP Basic (client_id:client_secret), and the
 * password, client secret and refresh token of a token request's form.
 */
static void
request_secrets(const HttpRequest *req, Secrets *secrets)
{
	const char *v;

	secrets->n = 0;
	if (req->auth_header != NULL && (v = strchr(req->auth_header, ':')) != NULL)
	{
		v++;
		while (*v == ' ')
			v++;
		if (pg_strncasecmp(v, "Bearer ", 7) == 0)
			v += 7;
		else if (pg_strncasecmp(v, "Basic ", 6) == 0)
		{
			int			n = strlen(v + 6);
			int			maxlen = pg_b64_dec_len(n);
			char	   *dec = palloc(maxlen + 1);
			int			dlen = pg_b64_decode(v + 6, n, dec, maxlen);
			char	   *colon = NULL;

			if (dlen > 0)
			{
				dec[dlen] = '\0';
				colon = strchr(dec, ':');
			}
			if (colon != NULL)
				add_secret(secrets, colon + 1, strlen(colon + 1));
			explicit_bzero(dec, maxlen + 1);
			pfree(dec);
			v += 6;
		}
		add_secret(secrets, v, strlen(v));
	}
	if (req->body != NULL && sent_form(req))
	{
		const char *p = req->body;

		while (*p)
		{
			const char *amp = strchr(p, '&');
			const char *eq = strchr(p, '=');
			size_t		len = amp ? (size_t) (amp - p) : strlen(p);

			if (eq != NULL && eq < p + len &&
				((eq - p == 8 && strncmp(p, "password", 8) == 0) ||
				 (eq - p == 13 && strncmp(p, "client_secret", 13) == 0) ||
				 (eq - p == 13 && strncmp(p, "refresh_token", 13) == 0)))
			{
				char	   *val = form_decode(eq + 1, p + len - (eq + 1));

				add_secret(secrets, val, strlen(val));
				explicit_bzero(val, strlen(val));
				pfree(val);
			}
			p += len;
			if (*p == '&')
				p++;
		}
	}
}

/* text with every secret replaced; NULL when it holds none */
static char *
scrub(const char *text, size_t len, const Secrets *secrets)
{
	StringInfoData out;
	bool		hit = false;
	size_t		i = 0;

	initStringInfo(&out);
	while (i < len)
	{
		bool		matched = false;

		for (int k = 0; k < secrets->n; k++)
		{
			size_t		sl = strlen(secrets->s[k]);

			if (sl <= len - i && memcmp(text + i, secrets->s[k], sl) == 0)
			{
				appendStringInfoString(&out, CREDENTIAL_REMOVED);
				i += sl;
				matched = hit = true;
				break;
			}
		}
		if (!matched)
			appendStringInfoChar(&out, text[i++]);
	}
	if (hit)
		return out.data;
	pfree(out.data);
	return NULL;
}

static void
secrets_free(Secrets *secrets)
{
	for (int k = 0; k < secrets->n; k++)
	{
		explicit_bzero(secrets->s[k], strlen(secrets->s[k]));
		pfree(secrets->s[k]);
	}
	secrets->n = 0;
}

/*
 * The vendor's error, in one line, from whichever of the documented error
 * bodies it sent; a non-JSON body is described, not dumped.  A vendor or a
 * gateway in front of it may quote the credential it refused ("invalid key
 * ..."): the request's credentials are cut out of the body before it is
 * read (so that no cut at a length leaves a part of one) and out of the
 * text, which goes to error messages, the server log and the outbox's
 * last_error.
 */
char *
vendor_error_message(const HttpRequest *req)
{
	Secrets		secrets;
	HttpRequest scrubbed;
	char	   *body = NULL;
	char	   *msg;
	char	   *clean;

	request_secrets(req, &secrets);
	if (secrets.n == 0)
		return vendor_error_text(req);
	scrubbed = *req;
	if (req->resp != NULL && (body = scrub(req->resp, req->resp_len, &secrets)) != NULL)
	{
		scrubbed.resp = body;
		scrubbed.resp_len = strlen(body);
	}
	msg = vendor_error_text(&scrubbed);
	if ((clean = scrub(msg, strlen(msg), &secrets)) != NULL)
	{
		explicit_bzero(msg, strlen(msg));
		pfree(msg);
		msg = clean;
	}
	if (body != NULL)
		pfree(body);
	secrets_free(&secrets);
	return msg;
}

static char *
vendor_error_text(const HttpRequest *req)
{
	StringInfoData buf;
	json_object *root = NULL;
	json_object *v;
	const char *perr;

	initStringInfo(&buf);
	if (req->status >= 300 && req->status < 400)
	{
		appendStringInfoString(&buf, "redirect refused: sales_api never follows redirects");
		return buf.data;
	}
	if (req->resp == NULL || req->resp_len == 0)
	{
		appendStringInfoString(&buf, "(empty body)");
		return buf.data;
	}
	root = json_parse_ex(req->resp, req->resp_len, &perr);
	if (root == NULL || !json_object_is_type(root, json_type_object))
	{
		if (req->content_type && strstr(req->content_type, "html"))
			appendStringInfo(&buf, "(HTML page of %zu bytes, not JSON)", req->resp_len);
		else
		{
			appendStringInfoString(&buf, "(non-JSON body) ");
			append_clean(&buf, req->resp, req->resp_len, 200);
		}
		return buf.data;
	}

	/* Connecteam domain error: {"error", "details": {"error_message", "error_code"}} */
	if ((v = json_get(root, "details")) && json_object_is_type(v, json_type_object))
	{
		append_json_scalar(&buf, json_get(v, "error_message") ? json_get(v, "error_message") : json_get(root, "error"));
		if (json_get(v, "error_code"))
		{
			appendStringInfoString(&buf, " (error_code ");
			append_json_scalar(&buf, json_get(v, "error_code"));
			appendStringInfoChar(&buf, ')');
		}
	}
	/* Connecteam 422 */
	else if ((v = json_get(root, "detail")) && json_object_is_type(v, json_type_array))
		describe_detail_list(&buf, v);
	/* Mapal ProblemDetails */
	else if (json_get(root, "title") || json_get(root, "errors"))
	{
		json_object *errors = json_get(root, "errors");

		append_json_scalar(&buf, json_get(root, "title"));
		/* "Validation failed.: field" reads badly: drop the title's full stop */
		if (errors && buf.len > 0 && buf.data[buf.len - 1] == '.')
			buf.data[--buf.len] = '\0';
		if (errors && json_object_is_type(errors, json_type_object))
		{
			int			k = 0;

			json_object_object_foreach(errors, key, msgs)
			{
				if (k++ >= 10)
				{
					appendStringInfoString(&buf, "; ...");
					break;
				}
				appendStringInfo(&buf, "%s", k == 1 ? ": " : "; ");
				append_clean(&buf, key, strlen(key), 100);
				appendStringInfoString(&buf, ": ");
				if (msgs && json_object_is_type(msgs, json_type_array))
				{
					for (size_t j = 0; j < json_object_array_length(msgs); j++)
					{
						if (j > 0)
							appendStringInfoString(&buf, ", ");
						append_json_scalar(&buf, json_object_array_get_idx(msgs, j));
					}
				}
				else
					append_json_scalar(&buf, msgs);
			}
		}
	}
	/* Cashrec: {"code", "message"} */
	else if (json_get(root, "message"))
	{
		if (json_get(root, "code"))
		{
			appendStringInfoString(&buf, "code ");
			append_json_scalar(&buf, json_get(root, "code"));
			appendStringInfoString(&buf, ": ");
		}
		append_json_scalar(&buf, json_get(root, "message"));
	}
	/* OAuth: {"error", "error_description"} */
	else if (json_get(root, "error"))
	{
		append_json_scalar(&buf, json_get(root, "error"));
		if (json_get(root, "error_description"))
		{
			appendStringInfoString(&buf, ": ");
			append_json_scalar(&buf, json_get(root, "error_description"));
		}
	}
	else if ((v = json_get(root, "detail")))
		append_json_scalar(&buf, v);
	else
	{
		appendStringInfoString(&buf, "(unrecognised error body) ");
		append_clean(&buf, req->resp, req->resp_len, 200);
	}
	return buf.data;
}

/*
 * The answer of a token endpoint that refused a grant, in one line, from
 * the OAuth "error" and "error_description" fields only.  Unlike
 * vendor_error_message() it never quotes the body itself: a token endpoint's
 * body can hold a token even when its status says otherwise.
 */
char *
vendor_token_error_message(const HttpRequest *req)
{
	StringInfoData buf;
	json_object *root;
	json_object *err;
	const char *perr;

	initStringInfo(&buf);
	if (req->status >= 300 && req->status < 400)
	{
		appendStringInfoString(&buf, "redirect refused: sales_api never follows redirects");
		return buf.data;
	}
	if (req->resp == NULL || req->resp_len == 0)
	{
		appendStringInfoString(&buf, "(empty body)");
		return buf.data;
	}
	root = json_parse_ex(req->resp, req->resp_len, &perr);
	err = json_get(root, "error");
	if (err != NULL && json_object_is_type(err, json_type_string))
	{
		json_object *desc = json_get(root, "error_description");

		append_json_scalar(&buf, err);
		if (desc != NULL && json_object_is_type(desc, json_type_string))
		{
			appendStringInfoString(&buf, ": ");
			append_json_scalar(&buf, desc);
		}
	}
	else if (req->content_type && strstr(req->content_type, "html"))
		appendStringInfo(&buf, "(HTML page of %zu bytes, not JSON)", req->resp_len);
	else
		appendStringInfo(&buf, "(no OAuth error in the body of %zu bytes)", req->resp_len);
	{
		/* an error_description that quotes the secret it refused */
		Secrets		secrets;
		char	   *clean;

		request_secrets(req, &secrets);
		clean = secrets.n > 0 ? scrub(buf.data, buf.len, &secrets) : NULL;
		secrets_free(&secrets);
		if (clean != NULL)
		{
			explicit_bzero(buf.data, buf.len);
			pfree(buf.data);
			return clean;
		}
	}
	return buf.data;
}

/*
 * Raise (or log) the failure of a request: a transport failure, a redirect,
 * or a non-2xx status.  `what` names the call, e.g. "Mapal real-time sales
 * for unit 1001".  `hint_override`, when not NULL, replaces the usual hint
 * for an HTTP answer (an API's own advice for one status); transport and
 * credential failures keep theirs.
 */
void
vendor_report_error(const HttpRequest *req, int elevel, const char *what,
					const char *hint_override)
{
	int			sqlstate;
	const char *hint;

	if (req->auth_failure != NULL)
	{
		auth_report_error(req->auth_failure, elevel);
		return;
	}
	if (!req->done)
	{
		http_report_transport_error(req, elevel, what);
		return;
	}
	if (req->status >= 300 && req->status < 400)
	{
		ereport(elevel,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("%s answered with a redirect (HTTP %ld), which is refused", what, req->status),
				 errdetail("sales_api never follows redirects, so credentials cannot be sent to another host or over plain http."),
				 errhint("Configure the vendor's final https:// URL on the server.")));
		return;
	}

	switch (req->status)
	{
		case 401:
			sqlstate = ERRCODE_SALES_API_AUTH_FAILED;
			/* only a token is fetched afresh after a 401; an API key is what it is */
			if (req->auth_header != NULL && pg_strncasecmp(req->auth_header, "X-API-KEY:", 10) == 0)
				hint = "The vendor rejected the API key; check api_key in the user mapping.";
			else
				hint = "The vendor rejected the credentials even after a fresh token; check the user mapping.";
			break;
		case 403:
			sqlstate = ERRCODE_SALES_API_AUTH_FAILED;
			hint = "The credentials were accepted but may not do this; check the account's permissions and its token's scopes.";
			break;
		case 404:
			sqlstate = ERRCODE_SALES_API_NOT_FOUND;
			hint = "Check the ids passed and the server's URLs; for Mapal a 404 means the tenant or its configuration was not found.";
			break;
		case 422:
			sqlstate = ERRCODE_SALES_API_UNPROCESSABLE;
			hint = "The vendor's schema rejected a field; the detail names it.";
			break;
		case 429:
			sqlstate = ERRCODE_SALES_API_RATE_LIMITED;
			hint = "The account's rate limit is spent; wait for the window to reset, or lower the request rate.";
			break;
		default:
			if (req->status >= 500)
			{
				sqlstate = ERRCODE_SALES_API_VENDOR_ERROR;
				hint = "The vendor failed; this is usually temporary, try again later.";
			}
			else
			{
				sqlstate = ERRCODE_SALES_API_VENDOR_REJECTED;
				hint = "The vendor rejected the request; the detail gives its reason.";
			}
	}
	if (hint_override != NULL)
		hint = hint_override;
	else if ((req->status == 429 || req->status == 503) && req->retry_after_s >= 0)
		hint = psprintf("Retry after %d seconds.", req->retry_after_s);
	ereport(elevel,
			(errcode(sqlstate),
			 errmsg("%s failed with HTTP %ld", what, req->status),
			 errdetail("Vendor message: %s", vendor_error_message(req)),
			 errhint("%s", hint)));
}

/* Raise unless the request got a 2xx answer. */
void
vendor_check(const HttpRequest *req, const char *what)
{
	if (!vendor_ok(req))
		vendor_report_error(req, ERROR, what, NULL);
}
