/*-------------------------------------------------------------------------
 *
 * sales_api.h
 *		Declarations shared by every module of sales_api: the GUCs, the
 *		extension's own SQLSTATEs, the server/credential model and the
 *		helpers that turn a vendor's answer into an ereport.
 *
 * The module split follows the house style: sales_api.c (_PG_init, GUCs),
 * server.c (the validator-only FDW, server and user-mapping lookup,
 * check_server), credcache.c (per-mapping tokens and rate-limit state, and
 * their invalidation), http.c (libcurl), json_util.c (json-c), auth.c (tokens),
 * vendor.c (authenticated calls and vendor error mapping), and one file
 * per vendor API.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_H
#define SALES_API_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/timestamp.h"

#define SALES_API_VERSION "0.7.0"
#define SALES_API_USER_AGENT "sales_api/" SALES_API_VERSION

/*
 * SQLSTATEs of our own, class "SA" (sales_api).  Transport failures use the
 * standard class 08 codes, bad arguments 22023, cancellation 57014.
 */
#define ERRCODE_SALES_API_VENDOR_REJECTED	MAKE_SQLSTATE('S','A','4','0','0')
#define ERRCODE_SALES_API_AUTH_FAILED		MAKE_SQLSTATE('S','A','4','0','1')
#define ERRCODE_SALES_API_NOT_FOUND			MAKE_SQLSTATE('S','A','4','0','4')
#define ERRCODE_SALES_API_UNPROCESSABLE		MAKE_SQLSTATE('S','A','4','2','2')
#define ERRCODE_SALES_API_RATE_LIMITED		MAKE_SQLSTATE('S','A','4','2','9')
#define ERRCODE_SALES_API_VENDOR_ERROR		MAKE_SQLSTATE('S','A','5','0','0')
#define ERRCODE_SALES_API_BAD_RESPONSE		MAKE_SQLSTATE('S','A','5','0','2')
#define ERRCODE_SALES_API_TIMEOUT			MAKE_SQLSTATE('S','A','5','0','4')

/* GUCs (sales_api.c) */
extern char *sales_api_ca_file;
extern bool sales_api_allow_http;
extern int	sales_api_connect_timeout_ms;
extern int	sales_api_request_timeout_ms;
extern int	sales_api_max_response_kb;
extern int	sales_api_max_concurrency;
extern int	sales_api_rate_limit_max_wait_ms;
extern int	sales_api_stage_min_rows;

/* ------------------------------------------------------------------------
 * Servers and credentials (server.c)
 * ------------------------------------------------------------------------
 */
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
	uint8		account[16];	/* the vendor account: shared rate-limit budget (ratelimit.c) */
	uint64		cache_generation;
	struct CredCacheEntry *private_entry;
} SalesApiServer;

extern SalesApiServer *server_lookup(const char *name, SalesApiVendor expected);
extern SalesApiServer *server_lookup_by_oid(Oid serverid, Oid userid,
											SalesApiVendor expected);
extern const char *vendor_name(SalesApiVendor v);
extern void server_name_null_error(void) pg_attribute_noreturn();
extern void url_check_scheme(const char *url, const char *what);

/* ------------------------------------------------------------------------
 * JSON helpers (json_util.c)
 * ------------------------------------------------------------------------
 */
struct json_object;

extern void json_append_string(StringInfo buf, const char *s);
extern void append_quoted(StringInfo buf, const char *s);
extern bool numeric_finite(Datum numeric);
extern void json_append_numeric(StringInfo buf, Datum numeric, const char *what);
extern struct json_object *json_parse_ex(const char *body, size_t len, const char **why);
extern struct json_object *json_parse_response(const char *body, size_t len,
											   const char *what);
extern struct json_object *json_get(struct json_object *obj, const char *key);
extern struct json_object *json_require(struct json_object *obj,
										const char *key, int type,
										const char *what);
extern const char *json_get_str(struct json_object *obj, const char *key);
extern const char *json_kind_label(int type);
extern const char *json_kind(struct json_object *v);
extern Datum json_to_numeric(struct json_object *val, const char *what);
extern Datum json_to_jsonb(struct json_object *val, const char *what);
extern int64 json_to_int64(struct json_object *val, const char *what);
extern bool json_int_saturated(struct json_object *val);
extern bool json_int64_value(struct json_object *val, int64 *out);
extern char *url_encode(const char *s, bool path_segment);
extern char *json_text(struct json_object *v, const char *what);
extern const char *json_text_problem(struct json_object *v, char **out);
extern char *vendor_text_for_message(const char *s, size_t len, int maxlen);

/* ------------------------------------------------------------------------
 * Misc
 * ------------------------------------------------------------------------
 */
extern TimestampTz now_timestamptz(void);

#endif							/* SALES_API_H */
