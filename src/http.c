/*-------------------------------------------------------------------------
 *
 * http.c
 *		The HTTP core of sales_api: every byte that leaves the database goes
 *		through http_start() and http_pump(), or http_perform_all() for a
 *		caller that waits for its requests.
 *
 * Design note.  A backend keeps one libcurl multi handle for its whole life.
 * The multi handle owns the connection cache, so a connection opened by one
 * call is kept alive and reused by the next (TLS handshakes are the most
 * expensive part of a small REST call).  Each request gets a fresh easy
 * handle, added to the multi handle at most `concurrency` at a time; the
 * loop polls with a short timeout and runs CHECK_FOR_INTERRUPTS() between
 * polls, so pg_cancel_backend() and statement_timeout stop a transfer within
 * about 100 ms.  Everything libcurl allocates (easy handles, header lists,
 * the response buffer, which must grow inside a libcurl callback where an
 * ereport would longjmp across C code that does not expect it) is malloc'd,
 * and every transfer in flight is on one list: a caller releases its own in
 * PG_CATCH (http_cancel()), the worker all of them (http_abort_all()), so
 * an ERROR in the middle of a transfer leaks nothing.  The response is
 * copied into the request's memory context once complete, whichever caller
 * happened to pump the multi handle: the worker's lanes and a synchronous
 * call made meanwhile (a token fetch) share it.
 *
 * TLS peer and host verification are always on; the only knob is the CA
 * bundle (sales_api.ca_file, superuser-only).  Redirects are never followed:
 * a vendor that answers 3xx gets an error, so a response can never send a
 * request, with its credentials, to another host or to plain http.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

/* CURLOPT_PREREQFUNCTION (7.80): see http_prereq_cb() */
#if LIBCURL_VERSION_NUM < 0x075000
#error "sales_api needs libcurl 7.80 or later"
#endif
#include <stdlib.h>

#include "http.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "sales_api.h"
#include "server.h"
#include "utils/memutils.h"

static CURLM *http_multi = NULL;

/*
 * Per-transfer state, from http_start() until the transfer is finished or
 * cancelled.  Lives in TopMemoryContext (a transfer may outlive the
 * statement or worker step that started it); buf is malloc'd.
 */
typedef struct Transfer
{
	dlist_node	node;			/* in http_transfers */
	HttpRequest *req;
	CURL	   *easy;
	struct curl_slist *hdrs;
	char	   *buf;
	size_t		len;
	size_t		cap;
	size_t		limit;
	bool		too_large;
	char		errbuf[CURL_ERROR_SIZE];
	int			retry_after_s;
	int64		rl[6];
	char		content_type[128];
	int			sends;			/* times libcurl was about to send it */
	bool		resend_refused; /* ... and a second time was refused */
} Transfer;

/* every transfer added to http_multi and not yet released */
static dlist_head http_transfers = DLIST_STATIC_INIT(http_transfers);
static int	http_ntransfers = 0;

static const char *const rl_names[6] = {
	"x-ratelimit-minute-limit",
	"x-ratelimit-minute-remaining",
	"x-ratelimit-minute-reset",
	"x-ratelimit-day-limit",
	"x-ratelimit-day-remaining",
	"x-ratelimit-day-reset",
};

#define CURL_SETOPT(h, opt, val) \
	do { \
		CURLcode	_rc = curl_easy_setopt((h), (opt), (val)); \
		if (_rc != CURLE_OK) \
			elog(ERROR, "curl_easy_setopt(%s) failed: %s", #opt, curl_easy_strerror(_rc)); \
	} while (0)

HttpRequest *
http_request_new(const char *method, const char *url)
{
	HttpRequest *req = palloc0(sizeof(HttpRequest));

	req->method = method;
	req->url = pstrdup(url);
	http_request_reset_outcome(req);
	return req;
}

void
http_request_reset_outcome(HttpRequest *req)
{
	req->done = false;
	req->status = 0;
	req->resp = NULL;
	req->resp_len = 0;
	req->curl_code = 0;
	req->curl_error = NULL;
	req->too_large = false;
	req->maybe_processed = false;
	req->elapsed_ms = 0;
	req->content_type = NULL;
	req->retry_after_s = -1;
	req->rl_minute_limit = req->rl_minute_remaining = req->rl_minute_reset = -1;
	req->rl_day_limit = req->rl_day_remaining = req->rl_day_reset = -1;
	req->auth_error = NULL;
	req->auth_failure = NULL;
	req->completed = false;
}

static void http_add_header(HttpRequest *req, const char *fmt,...) pg_attribute_printf(2, 3);

static void
http_add_header(HttpRequest *req, const char *fmt,...)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	req->headers = lappend(req->headers, buf.data);
}

void
http_set_json_body(HttpRequest *req, StringInfo body)
{
	req->body = body->data;
	req->body_len = body->len;
	http_add_header(req, "Content-Type: application/json");
}

void
http_set_form_body(HttpRequest *req, StringInfo body)
{
	req->body = body->data;
	req->body_len = body->len;
	http_add_header(req, "Content-Type: application/x-www-form-urlencoded");
}

/* libcurl write callback: bounded growth, never an ereport */
static size_t
http_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Transfer   *t = (Transfer *) userdata;
	size_t		n = size * nmemb;

	if (t->len + n > t->limit)
	{
		t->too_large = true;
		return 0;				/* makes libcurl fail with CURLE_WRITE_ERROR */
	}
	if (t->len + n + 1 > t->cap)
	{
		size_t		newcap = Max(t->cap * 2, t->len + n + 1);
		char	   *nb;

		newcap = Max(newcap, 4096);
		nb = realloc(t->buf, newcap);
		if (nb == NULL)
			return 0;
		t->buf = nb;
		t->cap = newcap;
	}
	memcpy(t->buf + t->len, ptr, n);
	t->len += n;
	t->buf[t->len] = '\0';
	return n;
}

/*
 * libcurl calls this each time it is about to send the request on a
 * connection, new or reused.  A second call for one transfer is libcurl's
 * own resend: the reused keep-alive connection it wrote the request on
 * closed without an answer.  The vendor may have acted on the first copy,
 * so a request marked no_resend is not sent again: the transfer fails, and
 * http_finish() reports it as possibly processed, as when a new
 * connection dies after the request was written.  This is what lets
 * non-idempotent POSTs reuse connections (no TCP and TLS handshake per
 * request) without ever being sent twice by the transport.
 */
static int
http_prereq_cb(void *userdata, char *conn_primary_ip pg_attribute_unused(),
			   char *conn_local_ip pg_attribute_unused(),
			   int conn_primary_port pg_attribute_unused(),
			   int conn_local_port pg_attribute_unused())
{
	Transfer   *t = (Transfer *) userdata;

	if (++t->sends > 1)
	{
		t->resend_refused = true;
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
}

static int64
parse_int64_header(const char *v)
{
	char	   *end;
	long long	val;

	errno = 0;
	val = strtoll(v, &end, 10);
	if (errno != 0 || end == v)
		return -1;
	return (int64) val;
}

/* libcurl header callback: pick out the few headers we act on */
static size_t
http_header_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
	Transfer   *t = (Transfer *) userdata;
	size_t		n = size * nitems;
	char		line[512];
	char	   *colon;
	char	   *value;
	size_t		vlen;

	if (n == 0 || n >= sizeof(line))
		return n;
	memcpy(line, buffer, n);
	line[n] = '\0';

	/* a new status line (after 1xx or a retried request) starts afresh */
	if (strncmp(line, "HTTP/", 5) == 0)
	{
		t->retry_after_s = -1;
		for (int i = 0; i < 6; i++)
			t->rl[i] = -1;
		t->content_type[0] = '\0';
		return n;
	}
	colon = strchr(line, ':');
	if (colon == NULL)
		return n;
	*colon = '\0';
	value = colon + 1;
	while (*value == ' ' || *value == '\t')
		value++;
	vlen = strlen(value);
	while (vlen > 0 && (value[vlen - 1] == '\r' || value[vlen - 1] == '\n' ||
						value[vlen - 1] == ' '))
		value[--vlen] = '\0';

	if (pg_strcasecmp(line, "retry-after") == 0)
	{
		if (value[0] >= '0' && value[0] <= '9')
		{
			int64		s = parse_int64_header(value);

			t->retry_after_s = (s < 0) ? -1 : (int) Min(s, 86400);
		}
		else
		{
			time_t		when = curl_getdate(value, NULL);

			if (when > 0)
			{
				time_t		now = time(NULL);

				t->retry_after_s = (when > now) ? (int) Min(when - now, 86400) : 0;
			}
		}
	}
	else if (pg_strcasecmp(line, "content-type") == 0)
		strlcpy(t->content_type, value, sizeof(t->content_type));
	else if (pg_strncasecmp(line, "x-ratelimit-", 12) == 0)
	{
		for (int i = 0; i < 6; i++)
			if (pg_strcasecmp(line, rl_names[i]) == 0)
				t->rl[i] = parse_int64_header(value);
	}
	return n;
}

static void
http_global_init(void)
{
	if (http_multi != NULL)
		return;
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not initialise libcurl")));
	http_multi = curl_multi_init();
	if (http_multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	/* keep enough idle connections for one connection per parallel slot */
	curl_multi_setopt(http_multi, CURLMOPT_MAXCONNECTS, 32L);
}

/*
 * Start one request on the multi handle; http_pump() finishes it.  The
 * transfer is registered before anything can fail, so that
 * http_cancel()/http_abort_all() always find what to release.
 */
void
http_start(HttpRequest *req)
{
	Transfer   *t;
	CURL	   *h;
	ListCell   *lc;
	CURLMcode	mc;

	http_global_init();
	if (req->transfer != NULL)
		http_cancel(req);
	http_request_reset_outcome(req);
	server_check_url_scheme(req->url, "request URL");

	t = MemoryContextAllocZero(TopMemoryContext, sizeof(Transfer));
	t->req = req;
	req->transfer = t;
	dlist_push_tail(&http_transfers, &t->node);
	http_ntransfers++;
	t->easy = h = curl_easy_init();
	if (h == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	t->limit = (size_t) sales_api_max_response_kb * 1024;
	t->retry_after_s = -1;
	for (int i = 0; i < 6; i++)
		t->rl[i] = -1;

	CURL_SETOPT(h, CURLOPT_PRIVATE, (void *) t);
	CURL_SETOPT(h, CURLOPT_URL, req->url);
	CURL_SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	CURL_SETOPT(h, CURLOPT_ERRORBUFFER, t->errbuf);
	CURL_SETOPT(h, CURLOPT_USERAGENT, SALES_API_USER_AGENT);
	CURL_SETOPT(h, CURLOPT_PROTOCOLS_STR, sales_api_allow_http ? "http,https" : "https");
	CURL_SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
	CURL_SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
	CURL_SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
	CURL_SETOPT(h, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
	if (sales_api_ca_file != NULL && sales_api_ca_file[0] != '\0')
		CURL_SETOPT(h, CURLOPT_CAINFO, sales_api_ca_file);
	CURL_SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, (long) sales_api_connect_timeout_ms);
	CURL_SETOPT(h, CURLOPT_TIMEOUT_MS, (long) sales_api_request_timeout_ms);
	CURL_SETOPT(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) t->limit);
	CURL_SETOPT(h, CURLOPT_WRITEFUNCTION, http_write_cb);
	CURL_SETOPT(h, CURLOPT_WRITEDATA, (void *) t);
	CURL_SETOPT(h, CURLOPT_HEADERFUNCTION, http_header_cb);
	CURL_SETOPT(h, CURLOPT_HEADERDATA, (void *) t);
	CURL_SETOPT(h, CURLOPT_TCP_KEEPALIVE, 1L);
	CURL_SETOPT(h, CURLOPT_ACCEPT_ENCODING, "");
	if (req->no_resend)
	{
		CURL_SETOPT(h, CURLOPT_PREREQFUNCTION, http_prereq_cb);
		CURL_SETOPT(h, CURLOPT_PREREQDATA, (void *) t);
	}

	if (strcmp(req->method, "GET") == 0 && req->body == NULL)
		CURL_SETOPT(h, CURLOPT_HTTPGET, 1L);
	else
	{
		if (strcmp(req->method, "POST") != 0)
			CURL_SETOPT(h, CURLOPT_CUSTOMREQUEST, req->method);
		if (req->body != NULL)
		{
			CURL_SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
			CURL_SETOPT(h, CURLOPT_POSTFIELDS, req->body);
		}
		else if (strcmp(req->method, "POST") == 0)
		{
			CURL_SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) 0);
			CURL_SETOPT(h, CURLOPT_POSTFIELDS, "");
		}
	}

	/* curl_slist_append copies; the list is freed by http_release() */
#define SLIST_ADD(s) \
	do { \
		struct curl_slist *_n = curl_slist_append(t->hdrs, (s)); \
		if (_n == NULL) \
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory"))); \
		t->hdrs = _n; \
	} while (0)
	SLIST_ADD("Accept: application/json");
	SLIST_ADD("Expect:");
	foreach(lc, req->headers)
		SLIST_ADD((char *) lfirst(lc));
	if (req->auth_header != NULL)
		SLIST_ADD(req->auth_header);
#undef SLIST_ADD
	CURL_SETOPT(h, CURLOPT_HTTPHEADER, t->hdrs);

	mc = curl_multi_add_handle(http_multi, h);
	if (mc != CURLM_OK)
		elog(ERROR, "curl_multi_add_handle failed: %s", curl_multi_strerror(mc));
}

/* Record the outcome of a finished transfer into its request. */
static void
http_finish(Transfer *t, CURLcode result)
{
	HttpRequest *req = t->req;
	long		status = 0;
	curl_off_t	total_us = 0;
	curl_off_t	uploaded = 0;
	long		reqsize = 0;
	MemoryContext old;

	/* the outcome lives with the request, whoever pumps the multi handle */
	old = MemoryContextSwitchTo(GetMemoryChunkContext(req));

	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &total_us);
	curl_easy_getinfo(t->easy, CURLINFO_SIZE_UPLOAD_T, &uploaded);
	curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &reqsize);

	req->curl_code = (int) result;
	req->status = status;
	req->elapsed_ms = (double) total_us / 1000.0;
	req->too_large = t->too_large || result == CURLE_FILESIZE_EXCEEDED;
	req->done = (result == CURLE_OK);
	req->retry_after_s = t->retry_after_s;
	req->rl_minute_limit = t->rl[0];
	req->rl_minute_remaining = t->rl[1];
	req->rl_minute_reset = t->rl[2];
	req->rl_day_limit = t->rl[3];
	req->rl_day_remaining = t->rl[4];
	req->rl_day_reset = t->rl[5];
	if (t->content_type[0] != '\0')
		req->content_type = pstrdup(t->content_type);

	/*
	 * Once the whole request has been written, a failure is ambiguous: the
	 * vendor may have acted on it.  Callers with non-idempotent endpoints
	 * must treat such a request as possibly done.
	 */
	if (result != CURLE_OK)
	{
		req->maybe_processed = (reqsize > 0 &&
								(req->body == NULL || uploaded >= (curl_off_t) req->body_len));
		req->curl_error = pstrdup(t->errbuf[0] ? t->errbuf : curl_easy_strerror(result));
		if (t->resend_refused)
		{
			/* the first copy went out on a connection that then closed */
			req->maybe_processed = true;
			req->curl_error = pstrdup("the reused connection closed without an answer after the request was written; not sent again");
		}
	}

	req->resp_len = t->len;
	req->resp = palloc(t->len + 1);
	if (t->len > 0)
		memcpy(req->resp, t->buf, t->len);
	req->resp[t->len] = '\0';
	req->completed = true;
	MemoryContextSwitchTo(old);
}

static void
http_release(Transfer *t)
{
	if (t->req != NULL)
		t->req->transfer = NULL;
	dlist_delete(&t->node);
	http_ntransfers--;
	if (t->easy != NULL)
	{
		curl_multi_remove_handle(http_multi, t->easy);
		curl_easy_cleanup(t->easy);
		t->easy = NULL;
	}
	if (t->hdrs != NULL)
	{
		curl_slist_free_all(t->hdrs);
		t->hdrs = NULL;
	}
	if (t->buf != NULL)
	{
		/* an answer may hold a token: no copy of it is left in freed memory */
		explicit_bzero(t->buf, t->len);
		free(t->buf);
		t->buf = NULL;
	}
	pfree(t);
}

/*
 * Drive every transfer in flight: finish those that are done (their
 * requests get completed = true and their outcome), and when none is,
 * wait up to timeout_ms for the network.  Returns how many finished.
 * Whoever calls it finishes every transfer, its own or not: the worker's
 * lanes and a synchronous call share one multi handle.
 */
int
http_pump(long timeout_ms)
{
	int			finished = 0;

	for (int round = 0; round < 2; round++)
	{
		int			still_running = 0;
		CURLMcode	mc;
		CURLMsg    *msg;
		int			msgs_left;

		if (dlist_is_empty(&http_transfers))
			break;
		mc = curl_multi_perform(http_multi, &still_running);
		if (mc != CURLM_OK)
			elog(ERROR, "curl_multi_perform failed: %s", curl_multi_strerror(mc));
		while ((msg = curl_multi_info_read(http_multi, &msgs_left)) != NULL)
		{
			Transfer   *t = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
			if (t == NULL)
				continue;
			http_finish(t, msg->data.result);
			http_release(t);
			finished++;
		}
		if (finished > 0 || timeout_ms <= 0 || round == 1)
			break;
		mc = curl_multi_poll(http_multi, NULL, 0, (int) Min(timeout_ms, INT_MAX), NULL);
		if (mc != CURLM_OK)
			elog(ERROR, "curl_multi_poll failed: %s", curl_multi_strerror(mc));
	}
	return finished;
}

/* How many transfers are in flight, every caller's. */
int
http_in_flight(void)
{
	return http_ntransfers;
}

/* Drop a request's transfer, if it is in flight; it stays not completed. */
void
http_cancel(HttpRequest *req)
{
	if (req->transfer != NULL)
		http_release((Transfer *) req->transfer);
}

/* Drop every transfer in flight (after an ERROR in the worker). */
void
http_abort_all(void)
{
	while (!dlist_is_empty(&http_transfers))
		http_release(dlist_head_element(Transfer, node, &http_transfers));
}

/*
 * The transfer loop.  Kept out of http_perform_all() so that no variable it
 * changes lives in the function that calls sigsetjmp (PG_TRY).
 */
static pg_noinline void
http_run(HttpRequest **reqs, int nreqs, int concurrency)
{
	int			next = 0;

	for (;;)
	{
		int			active = 0;

		for (int i = 0; i < next; i++)
			if (!reqs[i]->completed)
				active++;
		while (active < concurrency && next < nreqs)
		{
			http_start(reqs[next++]);
			active++;
		}
		if (active == 0)
			break;
		(void) http_pump(100);
		CHECK_FOR_INTERRUPTS();
	}
}

void
http_perform_all(HttpRequest **reqs, int nreqs, int concurrency)
{
	if (nreqs <= 0)
		return;
	http_global_init();

	PG_TRY();
	{
		http_run(reqs, nreqs, Max(concurrency, 1));
	}
	PG_CATCH();
	{
		for (int i = 0; i < nreqs; i++)
			http_cancel(reqs[i]);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

void
http_perform(HttpRequest *req)
{
	http_perform_all(&req, 1, 1);
}

bool
http_status_retryable(long status)
{
	return status == 429 || status == 500 || status == 502 ||
		status == 503 || status == 504;
}

const char *
http_transport_error(const HttpRequest *req)
{
	if (req->auth_error != NULL)
		return req->auth_error;
	if (req->too_large)
		return psprintf("response body larger than sales_api.max_response_size (%d kB)",
						sales_api_max_response_kb);
	if (req->curl_code == CURLE_OPERATION_TIMEDOUT)
		return psprintf("timed out after %.0f ms: %s", req->elapsed_ms,
						req->curl_error ? req->curl_error : "timeout");
	return req->curl_error ? req->curl_error : curl_easy_strerror((CURLcode) req->curl_code);
}

/*
 * The SQLSTATE that says what kind of transport failure a request met, and
 * in *hint what to do about it: NULL when there is nothing more specific to
 * say than "check the URL" (which URL is the caller's to name).
 */
int
http_transport_sqlstate(const HttpRequest *req, const char **hint)
{
	CURLcode	code = (CURLcode) req->curl_code;

	*hint = NULL;
	if (req->too_large)
	{
		*hint = "Raise sales_api.max_response_size if the vendor really sends bodies this large.";
		return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
	}
	if (code == CURLE_OPERATION_TIMEDOUT)
	{
		*hint = "The vendor did not answer in time; raise sales_api.request_timeout or sales_api.connect_timeout, or try again later.";
		return ERRCODE_SALES_API_TIMEOUT;
	}
	if (code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE ||
		code == CURLE_SSL_CONNECT_ERROR || code == CURLE_SSL_CERTPROBLEM ||
		code == CURLE_SSL_ISSUER_ERROR)
	{
		*hint = "The vendor's TLS certificate could not be verified; if it is issued by a private CA, point sales_api.ca_file at that CA.";
		return ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION;
	}
	if (code == CURLE_COULDNT_RESOLVE_HOST || code == CURLE_COULDNT_CONNECT)
		return ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION;
	if (code == CURLE_UNSUPPORTED_PROTOCOL)
	{
		*hint = "Only https:// URLs are allowed.";
		return ERRCODE_INVALID_PARAMETER_VALUE;
	}
	return ERRCODE_CONNECTION_FAILURE;
}

/*
 * Raise (or log, at elevel) a transport failure with a SQLSTATE that says
 * what kind it was.  The URL is not printed: for Connecteam deletes it can
 * hold row values, and the host is already in libcurl's message.
 */
void
http_report_transport_error(const HttpRequest *req, int elevel, const char *what)
{
	const char *hint;
	int			sqlstate = http_transport_sqlstate(req, &hint);

	ereport(elevel,
			(errcode(sqlstate),
			 errmsg("%s failed: %s", what,
					req->too_large ? "response too large" :
					curl_easy_strerror((CURLcode) req->curl_code)),
			 errdetail("%s", http_transport_error(req)),
			 errhint("%s", hint ? hint :
					 "Check that the vendor's URL is right and reachable from the database server.")));
}
