/*-------------------------------------------------------------------------
 *
 * vendor.h
 *		Authenticated calls to a vendor (auth.c, vendor.c): token caching,
 *		the one retry after a 401, and turning a vendor's answer into an
 *		ereport or a one-line message.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_VENDOR_H
#define SALES_API_VENDOR_H

#include "http.h"
#include "sales_api.h"

/* auth.c */
typedef struct AuthResult
{
	bool		ok;
	long		http_status;	/* of the token request, 0 when none was sent */
	double		latency_ms;
	TimestampTz expires_at;		/* 0 when the credential does not expire */
	char	   *message;		/* why not ok */
	/* what auth_report_error() needs to raise a failure later */
	const char *server_name;
	SalesApiVendor vendor;
	HttpRequest *token_req;		/* the failed token request, secrets wiped */
} AuthResult;

extern bool auth_uses_token(const SalesApiServer *srv);
extern AuthResult *auth_obtain(SalesApiServer *srv);
extern void auth_set_header(SalesApiServer *srv, HttpRequest *req);
extern void auth_report_error(const AuthResult *r, int elevel);
extern void auth_apply(SalesApiServer *srv, HttpRequest *req, bool force_new);
extern void auth_invalidate(const SalesApiServer *srv);
extern AuthResult auth_try_fetch(SalesApiServer *srv);
extern bool auth_ready(SalesApiServer *srv, char **message);
extern TimestampTz auth_cached_expiry(const SalesApiServer *srv);

/* vendor.c */
extern void vendor_perform_all(SalesApiServer *srv, HttpRequest **reqs, int n,
							   int concurrency);
extern void vendor_perform(SalesApiServer *srv, HttpRequest *req);
extern bool vendor_ok(const HttpRequest *req);
extern char *vendor_error_message(const HttpRequest *req);
extern char *vendor_token_error_message(const HttpRequest *req);
extern void vendor_report_error(const HttpRequest *req, int elevel, const char *what,
								const char *hint_override);
extern void vendor_check(const HttpRequest *req, const char *what);

#endif							/* SALES_API_VENDOR_H */
