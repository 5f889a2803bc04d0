/*-------------------------------------------------------------------------
 *
 * server.h
 *		Servers and credentials (server.c): the validator-only wrapper, the
 *		vendor a server speaks, and a server with the current user's mapping
 *		as every call needs it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_SERVER_H
#define SALES_API_SERVER_H

#include "postgres.h"

typedef enum SalesApiVendor
{
	VENDOR_ANY = 0,
	VENDOR_MAPAL,
	VENDOR_CONNECTEAM
} SalesApiVendor;

/*
 * Everything a call needs about one foreign server and the current user's
 * mapping for it.  Secrets live only here, in backend memory, for the length
 * of the call: they never reach a GUC, a log line or an error message.
 */
typedef struct SalesApiServer
{
	Oid			serverid;
	Oid			umid;			/* user mapping used (user's own or PUBLIC) */
	char	   *name;
	SalesApiVendor vendor;

	/* Mapal */
	char	   *token_url;
	char	   *client_id;
	char	   *sales_url;
	char	   *sales_method;
	char	   *cashrec_url;
	int			slot_minutes;
	char	   *timezone;
	char	   *cashrec_start_param;
	char	   *cashrec_end_param;
	char	   *cashrec_centers_param;
	int			cashrec_max_days;
	int			cashrec_max_centers;

	/* Connecteam */
	char	   *base_url;
	char	   *scope;
	bool		use_oauth;

	/* user mapping (secrets) */
	char	   *username;
	char	   *password;
	char	   *client_secret;
	char	   *api_key;
	char	   *um_client_id;

	/*
	 * The credential cache entry (credcache.c) of this server and mapping:
	 * the generation of the live entry this lookup saw (0: none), and the
	 * call's own entry once that one has been dropped.
	 */
	uint8		account[16];	/* the vendor account: its shared rate-limit budget (ratelimit.c) */
	uint64		cache_generation;
	struct CredCacheEntry *private_entry;
} SalesApiServer;

extern SalesApiServer *server_lookup(const char *name, SalesApiVendor expected);
extern SalesApiServer *server_lookup_by_oid(Oid serverid, Oid userid,
											SalesApiVendor expected);
extern const char *server_vendor_name(SalesApiVendor v);
extern void server_name_null_error(void) pg_attribute_noreturn();
extern void server_check_url_scheme(const char *url, const char *what);

#endif							/* SALES_API_SERVER_H */
