/*-------------------------------------------------------------------------
 *
 * http.h
 *		The HTTP core: libcurl requests run through one long-lived multi
 *		handle per backend, with TLS verification, timeouts, a response size
 *		limit, bounded concurrency and cancellation.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_HTTP_H
#define SALES_API_HTTP_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

/*
 * One request and, after http_perform_all(), its outcome.  Build it with
 * http_request_new(); everything it points to is palloc'd in the caller's
 * memory context, libcurl's own allocations never outlive the call.
 */
typedef struct HttpRequest
{
	/* what to send */
	const char *method;			/* "GET", "POST", "PUT", "DELETE" */
	char	   *url;
	List	   *headers;		/* of char *, "Name: value" */
	char	   *body;			/* NULL for none */
	size_t		body_len;
	char	   *auth_header;	/* "Authorization: ..." or "X-API-KEY: ...",
								 * kept apart so it is never logged */
	bool		no_resend;		/* sent once at most: libcurl silently
								 * resends a request whose reused
								 * keep-alive connection closes without an
								 * answer, which a non-idempotent POST must
								 * never be (http.c: http_prereq_cb) */

	/* outcome */
	bool		done;			/* a response (any status) was received */
	long		status;			/* HTTP status, 0 when none */
	char	   *resp;			/* NUL-terminated body, palloc'd */
	size_t		resp_len;
	int			curl_code;		/* CURLcode, 0 = CURLE_OK */
	char	   *curl_error;		/* libcurl's message for curl_code */
	bool		too_large;		/* body exceeded sales_api.max_response_size */
	bool		maybe_processed;	/* request left us before the failure:
									 * the vendor may have acted on it */
	double		elapsed_ms;
	char	   *content_type;

	/* headers we act on; -1 when absent */
	int			retry_after_s;
	int64		rl_minute_limit;
	int64		rl_minute_remaining;
	int64		rl_minute_reset;
	int64		rl_day_limit;
	int64		rl_day_remaining;
	int64		rl_day_reset;

	/*
	 * Set by vendor_perform_all() when no credential could be obtained: the
	 * request was never sent (done is false, curl_code 0), auth_error says
	 * why and auth_failure (vendor.h) holds what is needed to raise it.
	 */
	char	   *auth_error;
	struct AuthResult *auth_failure;

	bool		completed;		/* finished (or failed): the outcome is final */
	void	   *transfer;		/* http.c's, while in flight */
	void	   *user;			/* caller's cookie */
} HttpRequest;

extern HttpRequest *http_request_new(const char *method, const char *url);
extern void http_set_json_body(HttpRequest *req, StringInfo body);
extern void http_set_form_body(HttpRequest *req, StringInfo body);
extern void http_request_reset_outcome(HttpRequest *req);

/*
 * Run every request, at most `concurrency` at a time, and return when all
 * have finished.  Transport failures are recorded in each request, not
 * raised; only cancellation (and out-of-memory) raise.
 */
extern void http_perform_all(HttpRequest **reqs, int nreqs, int concurrency);
extern void http_perform(HttpRequest *req);

/*
 * The same transfers one at a time, for callers that keep requests of
 * several destinations in flight (the worker's lanes): http_start() adds a
 * request to the backend's multi handle, http_pump() finishes what is done
 * (setting completed) and waits up to timeout_ms when nothing is.
 */
extern void http_start(HttpRequest *req);
extern int	http_pump(long timeout_ms);
extern int	http_in_flight(void);
extern void http_cancel(HttpRequest *req);
extern void http_abort_all(void);

extern bool http_status_retryable(long status);
extern const char *http_transport_error(const HttpRequest *req);
extern int	http_transport_sqlstate(const HttpRequest *req, const char **hint);
extern void http_report_transport_error(const HttpRequest *req, int elevel,
										const char *what);

#endif							/* SALES_API_HTTP_H */
