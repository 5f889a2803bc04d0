/*-------------------------------------------------------------------------
 *
 * auth.h
 *		Credentials of a call (auth.c): Mapal's and Connecteam's tokens,
 *		cached per server and user mapping, and the header that carries them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_AUTH_H
#define SALES_API_AUTH_H

#include "postgres.h"

#include "http.h"
#include "server.h"
#include "datatype/timestamp.h"

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
extern void auth_invalidate(const SalesApiServer *srv);
extern AuthResult auth_try_fetch(SalesApiServer *srv);
extern bool auth_token_needed(SalesApiServer *srv);

/* a token fetch that never waits, for the worker's lanes (ratelimit.c) */
typedef struct AuthFetch AuthFetch;
extern AuthFetch *auth_fetch_start(SalesApiServer *srv, bool may_follow);
extern bool auth_fetch_step(AuthFetch *f);
extern AuthResult *auth_fetch_result(AuthFetch *f);
extern void auth_fetch_cancel(AuthFetch *f);
extern bool auth_fetch_following(AuthFetch *f);
extern void auth_fetch_abort_all(void);
extern TimestampTz auth_cached_expiry(const SalesApiServer *srv);

#endif							/* SALES_API_AUTH_H */
