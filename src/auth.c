/*-------------------------------------------------------------------------
 *
 * auth.c
 *		Credentials on the wire: Mapal's password-grant JWT, Connecteam's
 *		X-API-KEY or OAuth client-credentials token.
 *
 * Tokens are cached per backend (and per worker) in TopMemoryContext, keyed
 * by a fingerprint of the server and every credential option, so an ALTER
 * USER MAPPING takes effect on the next call.  A token is reused until 60 s
 * before it expires (api-contracts.md), or for half its life when it lives
 * less than two minutes (else every request would fetch a new one); then
 * the refresh token is tried,
 * and the password grant if the refresh fails.  After a 401 from an API the
 * caller invalidates the entry and fetches once more.
 *
 * Secrets are only ever written into request bodies and headers.  Error
 * messages name the option to check, never its value.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sa_json.h"

#include "common/base64.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "vendor.h"

#define TOKEN_EARLY_REFRESH_SECS 60

typedef struct TokenEntry
{
	uint64		key;			/* SalesApiServer.cred_hash */
	char	   *access_token;	/* in TopMemoryContext */
	char	   *refresh_token;
	TimestampTz expires_at;
	TimestampTz refresh_at;		/* renewed from then on */
} TokenEntry;

static HTAB *token_cache = NULL;

static TokenEntry *
token_entry(const SalesApiServer *srv, bool create)
{
	bool		found;
	TokenEntry *e;

	if (token_cache == NULL)
	{
		HASHCTL		ctl;

		if (!create)
			return NULL;
		ctl.keysize = sizeof(uint64);
		ctl.entrysize = sizeof(TokenEntry);
		ctl.hcxt = TopMemoryContext;
		token_cache = hash_create("sales_api tokens", 16, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	e = hash_search(token_cache, &srv->cred_hash, create ? HASH_ENTER : HASH_FIND, &found);
	if (create && !found)
	{
		e->access_token = NULL;
		e->refresh_token = NULL;
		e->expires_at = 0;
		e->refresh_at = 0;
	}
	return e;
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
	char	   *enc = url_encode(value, false);

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
	TokenEntry *e = token_entry(srv, false);

	if (e != NULL)
	{
		secret_free(&e->access_token);
		e->expires_at = 0;
		e->refresh_at = 0;
	}
}

TimestampTz
auth_cached_expiry(const SalesApiServer *srv)
{
	TokenEntry *e = token_entry(srv, false);

	return (e && e->access_token) ? e->expires_at : 0;
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

/* Send a token request; its secrets are wiped from memory whatever happens. */
static void
token_perform(HttpRequest *req)
{
	PG_TRY();
	{
		http_perform(req);
	}
	PG_CATCH();
	{
		token_request_free(req);
		PG_RE_THROW();
	}
	PG_END_TRY();
	token_request_free(req);
}

/*
 * Parse a successful token response into the cache entry.  Returns NULL on
 * success, or a message describing what was wrong with the response.
 */
static char *
token_store(TokenEntry *e, HttpRequest *req)
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

		secret_free(&e->access_token);
		e->access_token = MemoryContextStrdup(TopMemoryContext, access);
		if (refresh && refresh[0])
		{
			secret_free(&e->refresh_token);
			e->refresh_token = MemoryContextStrdup(TopMemoryContext, refresh);
		}
		e->expires_at = GetCurrentTimestamp() + expires_in * USECS_PER_SEC;
		/* a token that lives less than two minutes is kept for half its life */
		e->refresh_at = e->expires_at -
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

/*
 * Fetch a new token into the cache.  Tries the refresh grant first when one
 * is held, then the password (or client-credentials) grant.  Never raises
 * for a vendor's refusal: the outcome is in the result.
 */
static AuthResult
token_fetch(SalesApiServer *srv, TokenEntry *e)
{
	AuthResult	r = {0};

	r.server_name = srv->name;
	r.vendor = srv->vendor;

	for (int attempt = 0; attempt < 2; attempt++)
	{
		bool		refreshing = (attempt == 0 && e->refresh_token != NULL &&
								  srv->vendor == VENDOR_MAPAL);
		HttpRequest *req;
		char	   *bad;

		if (attempt == 0 && !refreshing)
			attempt = 1;
		req = token_request(srv, refreshing ? e->refresh_token : NULL);
		token_perform(req);

		r.http_status = req->status;
		r.latency_ms += req->elapsed_ms;
		r.token_req = req;
		if (!req->done)
		{
			/* the endpoint is unreachable: another grant would fare no better */
			r.ok = false;
			r.message = psprintf("token request failed: %s", http_transport_error(req));
			token_response_wipe(req);
			return r;
		}
		/* any 2xx carries the token (some endpoints answer 201) */
		if (req->status < 200 || req->status >= 300)
		{
			r.ok = false;
			r.message = psprintf("token endpoint answered HTTP %ld: %s", req->status,
								 vendor_token_error_message(req));
			token_response_wipe(req);
			if (refreshing && (req->status == 400 || req->status == 401))
			{
				/* refresh token refused: forget it, use the password grant */
				secret_free(&e->refresh_token);
				continue;
			}
			return r;
		}
		bad = token_store(e, req);
		token_response_wipe(req);
		if (bad)
		{
			r.ok = false;
			r.message = pstrdup(bad);
			if (refreshing)
			{
				secret_free(&e->refresh_token);
				continue;
			}
			return r;
		}
		r.ok = true;
		r.message = NULL;
		r.expires_at = e->expires_at;
		return r;
	}
	return r;
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
	return token_fetch(srv, token_entry(srv, true));
}

/* A cached token that is not about to expire */
static bool
token_usable(const TokenEntry *e)
{
	return e->access_token != NULL && GetCurrentTimestamp() < e->refresh_at;
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
	TokenEntry *e;
	AuthResult *r;

	if (!auth_uses_token(srv))
		return NULL;
	e = token_entry(srv, true);
	if (token_usable(e))
		return NULL;
	r = palloc(sizeof(AuthResult));
	*r = token_fetch(srv, e);
	if (r->ok)
	{
		pfree(r);
		return NULL;
	}
	return r;
}

/*
 * The same as a yes/no with the reason: the worker and the 401 retry use
 * it so that a refused token is an outcome, not an ERROR.
 */
bool
auth_ready(SalesApiServer *srv, char **message)
{
	AuthResult *r = auth_obtain(srv);

	*message = r ? r->message : NULL;
	return r == NULL;
}

/*
 * Put the credential header on a request: the API key, or the cached token
 * (auth_obtain() must have said one is at hand).
 */
void
auth_set_header(SalesApiServer *srv, HttpRequest *req)
{
	TokenEntry *e;

	if (!auth_uses_token(srv))
	{
		req->auth_header = psprintf("X-API-KEY: %s", srv->api_key);
		return;
	}
	e = token_entry(srv, false);
	if (e == NULL || e->access_token == NULL)
		elog(ERROR, "no access token is cached for server \"%s\"", srv->name);
	req->auth_header = psprintf("Authorization: Bearer %s", e->access_token);
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
	const char *vendor = vendor_name(r->vendor);
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

/*
 * Put the right credential header on a request, fetching a token when none
 * is cached, the cached one is about to expire, or force_new is set; raises
 * when none can be had.
 */
void
auth_apply(SalesApiServer *srv, HttpRequest *req, bool force_new)
{
	AuthResult *r;

	if (force_new)
		auth_invalidate(srv);
	r = auth_obtain(srv);
	if (r != NULL)
		auth_report_error(r, ERROR);
	auth_set_header(srv, req);
}
