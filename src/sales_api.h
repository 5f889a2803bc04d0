/*-------------------------------------------------------------------------
 *
 * sales_api.h
 *		The extension as a whole (sales_api.c): its version, its own
 *		SQLSTATEs and the GUCs _PG_init defines (the worker's are worker.h's,
 *		the circuit breaker's lanes.h's).
 *
 * Each module has a header declaring what its .c defines, and names what it
 * exports with its prefix: server_ (server.c: the wrapper, servers and user
 * mappings), credcache_, http_, json_ (json_util.c), auth_, vendor_,
 * ratelimit_, lanes_, rows_, dates_, mapping_, capture_, outbox_, worker_,
 * reconcile_, ct_ (Connecteam), mapal_ and cashrec_.  Two kinds of name
 * follow PostgreSQL's conventions instead: a function SQL calls is
 * sales_api_<its SQL name>, and a GUC's variable is sales_api_<its name>.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_H
#define SALES_API_H

#include "postgres.h"

#define SALES_API_VERSION "0.8.0"
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

/* GUCs */
extern char *sales_api_ca_file;
extern bool sales_api_allow_http;
extern int	sales_api_connect_timeout_ms;
extern int	sales_api_request_timeout_ms;
extern int	sales_api_max_response_kb;
extern int	sales_api_max_concurrency;
extern int	sales_api_max_in_flight;
extern int	sales_api_rate_limit_max_wait_ms;
extern int	sales_api_stage_min_rows;

#endif							/* SALES_API_H */
