/*-------------------------------------------------------------------------
 *
 * auth.c
 *		Credentials on the wire: Mapal's password-grant JWT, Connecteam's
 *		X-API-KEY or OAuth client-credentials token.
 *
 * Tokens are cached per backend (and per worker) in the credential cache
 * (credcache.c), per server and user mapping, and dropped as soon as either
 * changes, so an ALTER USER MAPPING takes effect on the next call.  A token
 * is reused until 60 s before it expires (so that none expires in flight),
 * or for half its life when it lives less than two minutes (else every
 * request would fetch a new one); then the refresh token is tried, and the
 * password grant if the refresh fails.  After a 401 from an API the caller
 * invalidates the token and fetches once more.
 *
 * Secrets are only ever written into request bodies and headers.  Error
 * messages name the option to check, never its value.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sa_json.h"

#include "common/base64.h"
#include "credcache.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "json_util.h"
#include "server.h"
#include "vendor.h"

#define TOKEN_EARLY_REFRESH_SECS 60

/*
 * The call's cached token.  Asked for again after anything that may
 * process invalidations (credcache.c), a request above all.
 */
static CachedToken *
token_of(const SalesApiServer *srv)
{
	return &credcache_entry(srv)->token;
}

static void
secret_free(char **p)
{
	if (*p != NULL)
	{
		explicit_bzero(*p, strlen(*p));
		pfree(*p);
		*p = NULL;
	}
}

static void
form_add(StringInfo buf, const char *name, const char *value)
{
	char	   *enc = vendor_url_encode(value, false);

	appendStringInfo(buf, "%s%s=%s", buf->len ? "&" : "", name, enc);
	explicit_bzero(enc, strlen(enc));
	pfree(enc);
}

bool
auth_uses_token(const SalesApiServer *srv)
{
	return srv->vendor == VENDOR_MAPAL || srv->use_oauth;
}

void
auth_invalidate(const SalesApiServer *srv)
{
	CachedToken *t = token_of(srv);

	secret_free(&t->access_token);
	t->expires_at = 0;
	t->refresh_at = 0;
}

TimestampTz
auth_cached_expiry(const SalesApiServer *srv)
{
	CachedToken *t = token_of(srv);

	return t->access_token ? t->expires_at : 0;
}

/* Build the token request: refresh grant if we hold a refresh token. */
static HttpRequest *
token_request(SalesApiServer *srv, const char *refresh_token)
{
	HttpRequest *req = http_request_new("POST", srv->token_url);
	StringInfoData body;

	initStringInfo(&body);
	if (srv->vendor == VENDOR_MAPAL)
	{
		if (refresh_token)
		{
			form_add(&body, "grant_type", "refresh_token");
			form_add(&body, "refresh_token", refresh_token);
		}
		else
		{
			form_add(&body, "grant_type", "password");
			form_add(&body, "username", srv->username);
			form_add(&body, "password", srv->password);
		}
		form_add(&body, "client_id", srv->client_id);
		form_add(&body, "client_secret", srv->client_secret);
	}
	else
	{
		/* Connecteam: HTTP Basic client_id:client_secret */
		char	   *pair = psprintf("%s:%s", srv->um_client_id, srv->client_secret);
		int			plen = strlen(pair);
		int			elen = pg_b64_enc_len(plen);
		char	   *enc = palloc(elen + 1);
		int			n = pg_b64_encode(pair, plen, enc, elen);

		if (n < 0)
			elog(ERROR, "base64 encoding failed");
		enc[n] = '\0';
		req->auth_header = psprintf("Authorization: Basic %s", enc);
		explicit_bzero(pair, plen);
		explicit_bzero(enc, n);
		form_add(&body, "grant_type", "client_credentials");
		if (srv->scope)
			form_add(&body, "scope", srv->scope);
	}
	http_set_form_body(req, &body);
	return req;
}

static void
token_request_free(HttpRequest *req)
{
	if (req->body)
		explicit_bzero(req->body, req->body_len);
	if (req->auth_header)
		explicit_bzero(req->auth_header, strlen(req->auth_header));
}

/* The answer holds the token: wipe it once it has been read. */
static void
token_response_wipe(HttpRequest *req)
{
	if (req->resp)
		explicit_bzero(req->resp, req->resp_len);
}

/* Wipe a string of a parsed token answer before json-c frees it. */
static void
token_json_wipe(json_object *root, const char *key)
{
	json_object *val = json_get(root, key);

	if (val != NULL && json_object_is_type(val, json_type_string))
		explicit_bzero((char *) json_object_get_string(val), json_object_get_string_len(val));
}

/*
 * Parse a successful token response into the call's cache entry.  Returns
 * NULL on success, or a message describing what was wrong with the response.
 */
static char *
token_store(const SalesApiServer *srv, HttpRequest *req)
{
	json_object *root;
	json_object *val;
	const char *access;
	const char *refresh;
	int64		expires_in = 3600;
	char	   *msg = NULL;
	const char *perr;
	MemoryContext cxt;
	MemoryContext oldcxt;
	CredCacheEntry *e;
	CachedToken *t;

	/* parsed in a context of its own, deleted (with the tree) right away */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "sales_api token answer",
								ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	root = json_parse_ex(req->resp, req->resp_len, &perr);
	MemoryContextSwitchTo(oldcxt);
	if (root == NULL || !json_object_is_type(root, json_type_object))
		msg = "the token endpoint's answer is not a JSON object";
	else if ((access = json_get_str(root, "access_token")) == NULL || access[0] == '\0')
		msg = "the token endpoint's answer has no access_token";
	else
	{
		val = json_get(root, "expires_in");
		if (!json_int64_value(val, &expires_in) || expires_in <= 0 ||
			expires_in > 366 * 86400)
			expires_in = 3600;
		refresh = json_get_str(root, "refresh_token");

		e = credcache_entry(srv);
		t = &e->token;
		secret_free(&t->access_token);
		t->access_token = MemoryContextStrdup(e->cxt, access);
		if (refresh && refresh[0])
		{
			secret_free(&t->refresh_token);
			t->refresh_token = MemoryContextStrdup(e->cxt, refresh);
		}
		t->expires_at = GetCurrentTimestamp() + expires_in * USECS_PER_SEC;
		/* a token that lives less than two minutes is kept for half its life */
		t->refresh_at = t->expires_at -
			Min((int64) TOKEN_EARLY_REFRESH_SECS, expires_in / 2) * USECS_PER_SEC;
	}
	if (root)
	{
		token_json_wipe(root, "access_token");
		token_json_wipe(root, "refresh_token");
	}
	MemoryContextDelete(cxt);
	return msg;
}

/* A cached token that is not about to expire */
static bool
token_usable(const CachedToken *t)
{
	return t->access_token != NULL && GetCurrentTimestamp() < t->refresh_at;
}

/*
 * A token fetch in flight: the refresh grant first when one is held (Mapal),
 * then the password (or client-credentials) grant, one request at a time on
 * the HTTP core's multi handle.  The worker's lanes step it without waiting
 * (ratelimit.c), so a slow token endpoint delays only the lanes that need
 * that token; token_fetch() steps it to its end.  Never raises for a
 * vendor's refusal: the outcome is in the result.  The cache entry is looked
 * up afresh after each step (see token_of()).
 *
 * Lanes sharing a token (captures of one server and user mapping) send one
 * request: the first fetch leads (the cache entry's fetching), the others
 * follow it and end with its outcome.  A leader dropped by an ERROR
 * (auth_fetch_abort_all()) or with its cache entry leaves the followers
 * free to lead.
 */
struct AuthFetch
{
	SalesApiServer *srv;
	HttpRequest *req;			/* the request in flight, or the last one */
	bool		follower;		/* waits for another fetch of the same token */
	uint32		ended_at_start; /* a follower's: the leaders that had ended */
	bool		refreshing;		/* it carries the refresh grant */
	bool		sent_password;	/* the password grant has been sent */
	bool		finished;
	AuthResult	r;
	MemoryContextCallback wipe;
};

/* epoch of the fetches in flight: a leader of an older one is gone */
static uint64 fetch_epoch = 1;

/* Send the next grant; its secrets are wiped if it cannot even start. */
static void
fetch_send(AuthFetch *f)
{
	const char *refresh_token = token_of(f->srv)->refresh_token;

	f->follower = false;
	f->refreshing = (!f->sent_password && !f->refreshing && refresh_token != NULL &&
					 f->srv->vendor == VENDOR_MAPAL);
	if (!f->refreshing)
		f->sent_password = true;
	/* the refresh token is copied into the request body */
	f->req = token_request(f->srv, f->refreshing ? refresh_token : NULL);
	PG_TRY();
	{
		http_start(f->req);
	}
	PG_CATCH();
	{
		http_cancel(f->req);
		token_request_free(f->req);
		PG_RE_THROW();
	}
	PG_END_TRY();
	token_of(f->srv)->fetching = fetch_epoch;
}

/*
 * The memory of a fetch goes (its caller's context is reset or deleted:
 * an ERROR, a job dropped): whatever secret its request or answer still
 * holds is wiped first.
 */
static void
fetch_wipe_callback(void *arg)
{
	AuthFetch  *f = arg;

	if (f->req != NULL)
	{
		token_request_free(f->req);
		token_response_wipe(f->req);
	}
}

/* A new fetch: a follower of one in flight for the same token, if it may. */
static AuthFetch *
fetch_new(SalesApiServer *srv, bool may_follow)
{
	AuthFetch  *f = palloc0(sizeof(AuthFetch));
	CachedToken *t = token_of(srv);

	f->srv = srv;
	f->r.server_name = srv->name;
	f->r.vendor = srv->vendor;
	f->wipe.func = fetch_wipe_callback;
	f->wipe.arg = f;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &f->wipe);
	if (may_follow && t->fetching == fetch_epoch)
	{
		f->follower = true;
		f->ended_at_start = t->fetches_ended;
	}
	else
		fetch_send(f);
	return f;
}

/*
 * Start fetching a new token for a server that uses one, without waiting;
 * may_follow: wait for a fetch of the same token already in flight instead.
 */
AuthFetch *
auth_fetch_start(SalesApiServer *srv, bool may_follow)
{
	return fetch_new(srv, may_follow);
}

/* A fetch no more in flight: its followers take its outcome. */
static void
fetch_lead_end(AuthFetch *f, const char *error)
{
	CachedToken *t = token_of(f->srv);

	if (f->follower || f->req == NULL)
		return;
	t->fetching = 0;
	t->fetches_ended++;
	if (t->fetch_error != NULL)
		pfree(t->fetch_error);
	t->fetch_error = error ? MemoryContextStrdup(credcache_entry(f->srv)->cxt, error) : NULL;
}

/*
 * A follower's step: done when its leader ended (with a token, or with the
 * leader's failure), or leading itself when the leader is gone.
 */
static bool
fetch_follow(AuthFetch *f)
{
	CachedToken *t = token_of(f->srv);

	if (token_usable(t))
	{
		f->r.ok = true;
		f->r.expires_at = t->expires_at;
		f->finished = true;
		return true;
	}
	if (t->fetches_ended != f->ended_at_start && t->fetch_error != NULL)
	{
		f->r.ok = false;
		f->r.message = pstrdup(t->fetch_error);
		f->finished = true;
		return true;
	}
	if (t->fetching != fetch_epoch)
		fetch_send(f);
	return false;
}

/* Is this fetch waiting for another one (nothing of its own in flight)? */
bool
auth_fetch_following(AuthFetch *f)
{
	return f->follower && !f->finished;
}

/* Every fetch in flight was dropped (the HTTP core's transfers were): none leads now. */
void
auth_fetch_abort_all(void)
{
	fetch_epoch++;
}

/* The fetch is over, with this outcome. */
static bool
fetch_end(AuthFetch *f, bool ok, char *message)
{
	fetch_lead_end(f, ok ? NULL : message);
	f->r.ok = ok;
	f->r.message = message;
	if (ok)
		f->r.expires_at = token_of(f->srv)->expires_at;
	f->finished = true;
	return true;
}

/*
 * Move a fetch on: true once it is over (auth_fetch_result() says how),
 * false while its request is in flight.  The caller pumps the HTTP core.
 */
bool
auth_fetch_step(AuthFetch *f)
{
	HttpRequest *req = f->req;
	char	   *bad;
	bool		retry_password;

	if (f->finished)
		return true;
	if (f->follower)
		return fetch_follow(f);
	if (!req->completed)
		return false;
	/* read before the request's credentials are wiped: it cuts them out of the answer */
	if (req->done && (req->status < 200 || req->status >= 300))
		f->r.message = psprintf("token endpoint answered HTTP %ld: %s", req->status,
								vendor_token_error_message(req));
	token_request_free(req);
	f->r.http_status = req->status;
	f->r.latency_ms += req->elapsed_ms;
	f->r.token_req = req;
	if (!req->done)
	{
		/* the endpoint is unreachable: another grant would fare no better */
		token_response_wipe(req);
		return fetch_end(f, false, psprintf("token request failed: %s", http_transport_error(req)));
	}
	/* any 2xx carries the token (some endpoints answer 201) */
	if (req->status < 200 || req->status >= 300)
	{
		token_response_wipe(req);
		/* a refresh token refused: forget it, use the password grant */
		retry_password = f->refreshing && (req->status == 400 || req->status == 401);
	}
	else
	{
		bad = token_store(f->srv, req);
		token_response_wipe(req);
		if (bad == NULL)
			return fetch_end(f, true, NULL);
		f->r.message = pstrdup(bad);
		retry_password = f->refreshing;
	}
	if (!retry_password)
		return fetch_end(f, false, f->r.message);
	secret_free(&token_of(f->srv)->refresh_token);
	fetch_send(f);
	return false;
}

/* A finished fetch's failure (palloc'd), or NULL when a token is cached now. */
AuthResult *
auth_fetch_result(AuthFetch *f)
{
	AuthResult *r;

	Assert(f->finished);
	if (f->r.ok)
		return NULL;
	r = palloc(sizeof(AuthResult));
	*r = f->r;
	return r;
}

/* Drop a fetch (its caller is going away): its secrets are wiped. */
void
auth_fetch_cancel(AuthFetch *f)
{
	if (f->finished)
		return;
	if (!f->follower && f->req != NULL)
	{
		/* its followers lead instead */
		token_of(f->srv)->fetching = 0;
		if (!f->req->completed)
			http_cancel(f->req);
		token_request_free(f->req);
		token_response_wipe(f->req);
	}
	f->finished = true;
}

/* Fetch a new token into the cache, waiting for it. */
static AuthResult
token_fetch(SalesApiServer *srv)
{
	/*
	 * Never a follower: the fetch it would follow (a lane's, in the worker)
	 * is not stepped while this one waits.
	 */
	AuthFetch  *volatile f = NULL;

	PG_TRY();
	{
		f = fetch_new(srv, false);
		while (!auth_fetch_step(f))
		{
			(void) http_pump(100);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_CATCH();
	{
		if (f != NULL)
			auth_fetch_cancel(f);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return f->r;
}

AuthResult
auth_try_fetch(SalesApiServer *srv)
{
	AuthResult	r = {0};

	if (!auth_uses_token(srv))
	{
		r.ok = true;
		return r;
	}
	return token_fetch(srv);
}

/*
 * Make sure a usable credential is at hand, never raising for a vendor's
 * refusal or an unreachable token endpoint: NULL when the server uses an
 * API key or a valid token is cached or could be fetched, otherwise the
 * failure (palloc'd), for the caller to record or to raise with
 * auth_report_error().  vendor_perform_all() relies on this: an ERROR in
 * the middle of a multi-request call would lose the outcome of the
 * requests already answered.
 */
AuthResult *
auth_obtain(SalesApiServer *srv)
{
	AuthResult *r;

	if (!auth_uses_token(srv))
		return NULL;
	if (token_usable(token_of(srv)))
		return NULL;
	r = palloc(sizeof(AuthResult));
	*r = token_fetch(srv);
	if (r->ok)
	{
		pfree(r);
		return NULL;
	}
	return r;
}

/* Must a token be fetched before a request can be sent? */
bool
auth_token_needed(SalesApiServer *srv)
{
	return auth_uses_token(srv) && !token_usable(token_of(srv));
}

/*
 * Put the credential header on a request: the API key, or the cached token
 * (auth_obtain() must have said one is at hand).
 */
void
auth_set_header(SalesApiServer *srv, HttpRequest *req)
{
	CachedToken *t;

	if (!auth_uses_token(srv))
	{
		req->auth_header = psprintf("X-API-KEY: %s", srv->api_key);
		return;
	}
	t = token_of(srv);
	if (t->access_token == NULL)
		elog(ERROR, "no access token is cached for server \"%s\"", srv->name);
	req->auth_header = psprintf("Authorization: Bearer %s", t->access_token);
}

/*
 * Raise (or log) a failure to obtain a token, with the SQLSTATE the same
 * failure of any other request would get: a transport failure by its kind
 * (timeout SA504, oversized 54000, ...), a redirect SA502, a 429 SA429, a
 * 5xx SA500, any other refusal SA401.
 */
void
auth_report_error(const AuthResult *r, int elevel)
{
	const char *vendor = server_vendor_name(r->vendor);
	const HttpRequest *req = r->token_req;

	if (r->http_status == 0 || (req != NULL && !req->done))
	{
		const char *hint = NULL;
		int			sqlstate = ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION;

		if (req != NULL)
			sqlstate = http_transport_sqlstate(req, &hint);
		ereport(elevel,
				(errcode(sqlstate),
				 errmsg("could not obtain a %s access token for server \"%s\"",
						vendor, r->server_name),
				 errdetail("%s", r->message),
				 errhint("%s", hint ? hint :
						 "Check that token_url is reachable and sales_api.ca_file trusts its certificate.")));
	}
	else if (r->http_status == 429)
	{
		if (req != NULL && req->retry_after_s >= 0)
			ereport(elevel,
					(errcode(ERRCODE_SALES_API_RATE_LIMITED),
					 errmsg("the %s token endpoint of server \"%s\" is rate limited",
							vendor, r->server_name),
					 errdetail("%s", r->message),
					 errhint("Retry after %d seconds.", req->retry_after_s)));
		else
			ereport(elevel,
					(errcode(ERRCODE_SALES_API_RATE_LIMITED),
					 errmsg("the %s token endpoint of server \"%s\" is rate limited",
							vendor, r->server_name),
					 errdetail("%s", r->message),
					 errhint("Wait a little before calling again.")));
	}
	else if (r->http_status >= 300 && r->http_status < 400)
		ereport(elevel,
				(errcode(ERRCODE_SALES_API_BAD_RESPONSE),
				 errmsg("the %s token endpoint of server \"%s\" answered with a redirect (HTTP %ld), which is refused",
						vendor, r->server_name, r->http_status),
				 errdetail("sales_api never follows redirects, so credentials cannot be sent to another host or over plain http."),
				 errhint("Set the server's token_url to the vendor's final https:// URL.")));
	else if (r->http_status >= 500)
		ereport(elevel,
				(errcode(ERRCODE_SALES_API_VENDOR_ERROR),
				 errmsg("the %s token endpoint of server \"%s\" failed", vendor, r->server_name),
				 errdetail("%s", r->message),
				 errhint("The vendor failed; this is usually temporary, try again later.")));
	else
		ereport(elevel,
				(errcode(ERRCODE_SALES_API_AUTH_FAILED),
				 errmsg("%s refused the credentials of server \"%s\"", vendor, r->server_name),
				 errdetail("%s", r->message),
				 errhint(r->vendor == VENDOR_MAPAL ?
						 "Check username, password and client_secret in the user mapping, and the server's client_id." :
						 "Check client_id and client_secret in the user mapping, and the server's scope.")));
}
