/*-------------------------------------------------------------------------
 *
 * credcache.h
 *		What a backend keeps about one vendor account between calls
 *		(credcache.c): the access token (auth.c) and the rate-limit budget
 *		(ratelimit.c), per server and user mapping, dropped when either
 *		changes.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_CREDCACHE_H
#define SALES_API_CREDCACHE_H

#include "ratelimit.h"
#include "sales_api.h"
#include "server.h"
#include "datatype/timestamp.h"

typedef struct CredCacheKey
{
	Oid			serverid;
	Oid			umid;			/* the mapping used: the role's own or PUBLIC */
} CredCacheKey;

/* A token and when to renew it.  The strings are secrets: wipe before pfree. */
typedef struct CachedToken
{
	char	   *access_token;
	char	   *refresh_token;
	TimestampTz expires_at;
	TimestampTz refresh_at;		/* renewed from then on */
	/* a fetch in flight (auth.c): the others for the same token wait for it */
	uint64		fetching;		/* the leader's epoch, 0 for none */
	uint32		fetches_ended;	/* leaders that ended so far */
	char	   *fetch_error;	/* why the last one got no token */
} CachedToken;

typedef struct CredCacheEntry
{
	CredCacheKey key;			/* hash key: must be first */
	uint64		generation;		/* which lookups this entry belongs to */
	uint32		server_hashvalue;	/* syscache hash of the server's OID */
	uint32		mapping_hashvalue;	/* ... and of the user mapping's */
	MemoryContext cxt;			/* where the token's strings are allocated */
	CachedToken token;
	RateLimitState rl;
} CredCacheEntry;

extern uint64 credcache_lookup_start(void);
extern void credcache_attach(SalesApiServer *srv, uint64 start);
extern CredCacheEntry *credcache_entry(const SalesApiServer *srv);

#endif							/* SALES_API_CREDCACHE_H */
