/*-------------------------------------------------------------------------
 *
 * credcache.c
 *		The credential cache: per backend (and in the worker), one entry per
 *		foreign server and user mapping holding the vendor account's access
 *		token (auth.c), and its rate-limit budget when the library is not
 *		preloaded (ratelimit.c keeps budgets in shared memory otherwise).
 *
 * Entries are keyed by the server's OID and the OID of the pg_user_mapping
 * row a lookup resolved (the role's own mapping, else the PUBLIC one), and
 * dropped, their token wiped, as soon as the backend learns that either row
 * changed or went away, as contrib/postgres_fdw's connection cache does:
 * each entry remembers the syscache hash values of both OIDs, and callbacks
 * on FOREIGNSERVEROID and USERMAPPINGOID remove the entries they match (all
 * of them for hash value 0, after a cache reset).  So an ALTER USER MAPPING
 * takes effect on the next call, nothing of a dropped mapping is used
 * again, and the cache holds at most one entry per mapping in use.  It
 * lives in its own memory context, "sales_api credential cache", which
 * pg_backend_memory_contexts shows.
 *
 * A call holds a SalesApiServer, a copy of the options read at its lookup,
 * for its whole length, and may process invalidations meanwhile (a query it
 * runs, the worker's SPI).  Each entry therefore carries a generation
 * number that server_lookup_by_oid() copies into the SalesApiServer, and
 * credcache_entry() hands a call its live entry only while that entry is
 * the one the lookup saw.  Once it is gone the call finishes on a private
 * entry allocated with the SalesApiServer, with the credentials it started
 * with: the token it fetches is never cached, and is wiped when the call's
 * memory goes.  Callers never keep a pointer to an entry across anything
 * that may process invalidations (catalog access, SPI): they ask
 * credcache_entry() again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "credcache.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

static HTAB *credcache = NULL;
static MemoryContext credcache_cxt = NULL;

/* generation numbers of entries; 0 means "none" */
static uint64 credcache_next_generation = 1;

/* callbacks run so far: a lookup that saw one may have read stale options */
static uint64 credcache_invalidations = 0;

static void
token_wipe(CachedToken *t)
{
	if (t->access_token != NULL)
	{
		explicit_bzero(t->access_token, strlen(t->access_token));
		pfree(t->access_token);
	}
	if (t->refresh_token != NULL)
	{
		explicit_bzero(t->refresh_token, strlen(t->refresh_token));
		pfree(t->refresh_token);
	}
	if (t->fetch_error != NULL)
		pfree(t->fetch_error);
	memset(t, 0, sizeof(CachedToken));
}

static void
entry_init(CredCacheEntry *e, MemoryContext cxt)
{
	e->cxt = cxt;
	memset(&e->token, 0, sizeof(CachedToken));
	ratelimit_state_init(&e->rl);
}

/*
 * A server or user mapping changed (or every cached catalog row, for
 * hashvalue 0): drop the entries that used it.  Nothing holds a pointer to
 * an entry across invalidation processing, so they are freed at once.
 */
static void
credcache_inval_callback(Datum arg pg_attribute_unused(), int cacheid,
						 uint32 hashvalue)
{
	HASH_SEQ_STATUS scan;
	CredCacheEntry *e;

	credcache_invalidations++;
	hash_seq_init(&scan, credcache);
	while ((e = (CredCacheEntry *) hash_seq_search(&scan)) != NULL)
	{
		if (hashvalue == 0 ||
			(cacheid == FOREIGNSERVEROID && e->server_hashvalue == hashvalue) ||
			(cacheid == USERMAPPINGOID && e->mapping_hashvalue == hashvalue))
		{
			token_wipe(&e->token);
			/* deleting the element just returned is safe during a scan */
			(void) hash_search(credcache, &e->key, HASH_REMOVE, NULL);
		}
	}
}

/*
 * Called at the start of every server lookup: creates the cache and
 * registers the callbacks the first time, and returns the invalidation
 * count for credcache_attach().
 */
uint64
credcache_lookup_start(void)
{
	if (credcache == NULL)
	{
		HASHCTL		ctl;

		if (credcache_cxt == NULL)
			credcache_cxt = AllocSetContextCreate(TopMemoryContext,
												  "sales_api credential cache",
												  ALLOCSET_SMALL_SIZES);
		ctl.keysize = sizeof(CredCacheKey);
		ctl.entrysize = sizeof(CredCacheEntry);
		ctl.hcxt = credcache_cxt;
		credcache = hash_create("sales_api credentials", 8, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterSyscacheCallback(FOREIGNSERVEROID, credcache_inval_callback,
									  (Datum) 0);
		CacheRegisterSyscacheCallback(USERMAPPINGOID, credcache_inval_callback,
									  (Datum) 0);
	}
	return credcache_invalidations;
}

/*
 * Bind a finished lookup to its entry, creating it.  When a server or
 * mapping changed while the lookup ran (the count moved since `start`),
 * the options it read may predate the change and the cache has no way to
 * drop them later: the lookup gets no live entry and its call runs on a
 * private one.  Harmless for a change to some other server; rare anyway.
 */
void
credcache_attach(SalesApiServer *srv, uint64 start)
{
	uint32		server_hashvalue;
	uint32		mapping_hashvalue;
	CredCacheKey key;
	CredCacheEntry *e;
	bool		found;

	/* may open a catalog, and so run the callbacks: before the check */
	server_hashvalue = GetSysCacheHashValue1(FOREIGNSERVEROID,
											 ObjectIdGetDatum(srv->serverid));
	mapping_hashvalue = GetSysCacheHashValue1(USERMAPPINGOID,
											  ObjectIdGetDatum(srv->umid));
	srv->cache_generation = 0;
	if (credcache_invalidations != start)
		return;

	memset(&key, 0, sizeof(key));
	key.serverid = srv->serverid;
	key.umid = srv->umid;
	e = (CredCacheEntry *) hash_search(credcache, &key, HASH_ENTER, &found);
	if (!found)
	{
		e->generation = credcache_next_generation++;
		e->server_hashvalue = server_hashvalue;
		e->mapping_hashvalue = mapping_hashvalue;
		entry_init(e, credcache_cxt);
	}
	srv->cache_generation = e->generation;
}

static void
private_entry_wipe(void *arg)
{
	token_wipe(&((CredCacheEntry *) arg)->token);
}

/*
 * The entry a call's token and rate-limit state are kept in: the live one
 * while it is the one its lookup saw, else a private one that lives (and
 * is wiped) with the SalesApiServer.  The pointer is good until the next
 * catalog access.
 */
CredCacheEntry *
credcache_entry(const SalesApiServer *srv)
{
	SalesApiServer *s = unconstify(SalesApiServer *, srv);

	if (srv->cache_generation != 0 && credcache != NULL)
	{
		CredCacheKey key;
		CredCacheEntry *e;

		memset(&key, 0, sizeof(key));
		key.serverid = srv->serverid;
		key.umid = srv->umid;
		e = (CredCacheEntry *) hash_search(credcache, &key, HASH_FIND, NULL);
		if (e != NULL && e->generation == srv->cache_generation)
			return e;
		/* never again: a newer entry is for newer lookups */
		s->cache_generation = 0;
	}
	if (s->private_entry == NULL)
	{
		/* server_lookup_by_oid() pallocs every SalesApiServer */
		MemoryContext cxt = GetMemoryChunkContext(s);
		CredCacheEntry *e = MemoryContextAllocZero(cxt, sizeof(CredCacheEntry));
		MemoryContextCallback *cb = MemoryContextAlloc(cxt,
													   sizeof(MemoryContextCallback));

		e->key.serverid = srv->serverid;
		e->key.umid = srv->umid;
		entry_init(e, cxt);
		cb->func = private_entry_wipe;
		cb->arg = e;
		MemoryContextRegisterResetCallback(cxt, cb);
		s->private_entry = e;
	}
	return s->private_entry;
}
