/*-------------------------------------------------------------------------
 *
 * sales_api.c
 *		Entry point of the sales_api extension: _PG_init with every GUC, and
 *		check_server(), the one function that proves the whole path to a
 *		vendor (server, user mapping, TLS, credentials) works.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/dependency.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_proc.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "lanes.h"
#include "ratelimit.h"
#include "server.h"
#include "vendor.h"
#include "worker.h"

PG_MODULE_MAGIC;

/*
 * A body is copied into one palloc'd buffer of its size plus a NUL, which
 * must stay below MaxAllocSize (1 GB - 1): hence 1 kB less than 1 GB.
 */
#define SALES_API_MAX_RESPONSE_KB_LIMIT ((int) (MaxAllocSize / 1024) - 1)

char	   *sales_api_ca_file = NULL;
bool		sales_api_allow_http = false;
int			sales_api_connect_timeout_ms = 5000;
int			sales_api_request_timeout_ms = 30000;
int			sales_api_max_response_kb = 8192;
int			sales_api_max_concurrency = 4;
int			sales_api_max_in_flight = 64;
int			sales_api_stage_min_rows = 1000;
int			sales_api_rate_limit_max_wait_ms = 60000;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(sales_api_check_server);
PG_FUNCTION_INFO_V1(sales_api_depend_on_extension);
PG_FUNCTION_INFO_V1(sales_api_version);

void
_PG_init(void)
{
	DefineCustomStringVariable("sales_api.ca_file",
							   "CA bundle used to verify vendors' TLS certificates.",
							   "Empty means the system's default bundle. Verification itself can never be turned off.",
							   &sales_api_ca_file,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("sales_api.allow_http",
							 "Allows plain http:// vendor URLs (for local tests only).",
							 NULL,
							 &sales_api_allow_http,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("sales_api.connect_timeout",
							"Time allowed to connect to a vendor, TLS handshake included.",
							NULL,
							&sales_api_connect_timeout_ms,
							5000, 100, 600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sales_api.request_timeout",
							"Total time allowed for one vendor request.",
							NULL,
							&sales_api_request_timeout_ms,
							30000, 100, 3600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sales_api.max_response_size",
							"Largest vendor response body accepted.",
							"A larger body is an error, never an out-of-memory.",
							&sales_api_max_response_kb,
							8192, 1, SALES_API_MAX_RESPONSE_KB_LIMIT,
							PGC_SUSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sales_api.max_concurrency",
							"Most requests one call sends to vendors at the same time.",
							NULL,
							&sales_api_max_concurrency,
							4, 1, 64,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sales_api.max_in_flight",
							"Most requests a worker has in flight at once, all lanes together.",
							"Each lane sends at most sales_api.max_concurrency of them.",
							&sales_api_max_in_flight,
							64, 1, 1024,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sales_api.rate_limit_max_wait",
							"Longest a call waits for a vendor's rate-limit window to reset before failing.",
							NULL,
							&sales_api_rate_limit_max_wait_ms,
							60000, 0, 3600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sales_api.stage_min_rows",
							"POS statements of at least this many rows have their Connecteam sales staged for the worker.",
							"Such a statement writes rows of arrays of 500 sales to sales_api.outbox_stage, a smaller one a row per sale; "
							"the worker makes them outbox items.  0: rows of arrays for every statement.",
							&sales_api_stage_min_rows,
							1000, 0, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	worker_init();
	lanes_init();
	if (process_shared_preload_libraries_in_progress)
		ratelimit_init();

	MarkGUCPrefixReserved("sales_api");
}

/*
 * _depend_on_extension(regprocedure): record that a capture function
 * depends on the extension (a normal dependency, not membership), so that
 * DROP EXTENSION refuses to leave capture triggers behind that would fail
 * every sale (CASCADE drops them), while pg_dump still dumps the functions
 * and triggers as the user's own objects.
 *
 * The current schema has no such function.  It stays, working, because the
 * released schemas 0.3 and 0.4 define it (sales_api--0.2--0.3.sql) and
 * their attach() calls it: a database still at one of them runs this
 * library until ALTER EXTENSION sales_api UPDATE, and an attach() there
 * must work (test/scenarios/81_upgrade_with_capture.sh attaches at 0.4).
 */
Datum
sales_api_depend_on_extension(PG_FUNCTION_ARGS)
{
	ObjectAddress func;
	ObjectAddress ext;
	Oid			extoid = get_extension_oid("sales_api", false);

	ObjectAddressSet(func, ProcedureRelationId, PG_GETARG_OID(0));
	ObjectAddressSet(ext, ExtensionRelationId, extoid);
	recordDependencyOn(&func, &ext, DEPENDENCY_NORMAL);
	PG_RETURN_VOID();
}

Datum
sales_api_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(SALES_API_VERSION));
}

/*
 * check_server(server name) -> one row: whether authentication works, the
 * HTTP status of the call that proves it, its latency and the token expiry.
 * Vendor and transport failures are reported in the row, not raised; only a
 * bad argument (unknown server, no mapping, no USAGE) raises.
 */
Datum
sales_api_check_server(PG_FUNCTION_ARGS)
{
	SalesApiServer *srv;
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7] = {0};
	bool		ok;
	long		status = 0;
	double		latency = 0;
	TimestampTz expires = 0;
	char	   *message = NULL;

	if (PG_ARGISNULL(0))
		server_name_null_error();
	srv = server_lookup(NameStr(*PG_GETARG_NAME(0)), VENDOR_ANY);

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	/*
	 * Mapal: a token grant proves the credentials (the refresh grant when a
	 * refresh token is held, as every later call would).  Connecteam: one
	 * authenticated call, with the cached OAuth token if there is one.
	 */
	if (srv->vendor == VENDOR_MAPAL ||
		(srv->use_oauth && auth_cached_expiry(srv) == 0))
	{
		AuthResult	r = auth_try_fetch(srv);

		ok = r.ok;
		status = r.http_status;
		latency = r.latency_ms;
		expires = r.expires_at;
		message = r.message;
	}
	else
		ok = true;

	/* Connecteam: the cheapest authenticated call is one location */
	if (ok && srv->vendor == VENDOR_CONNECTEAM)
	{
		HttpRequest *req = http_request_new("GET",
											psprintf("%s/sales/v1/locations?limit=1", srv->base_url));

		vendor_perform(srv, req);
		status = req->status;
		latency += req->elapsed_ms;
		ok = vendor_ok(req);
		if (!req->done)
			message = psprintf("request failed: %s", http_transport_error(req));
		else if (!ok)
			message = psprintf("HTTP %ld: %s", req->status, vendor_error_message(req));
		if (auth_uses_token(srv))
			expires = auth_cached_expiry(srv);
	}

	values[0] = CStringGetDatum(srv->name);
	values[0] = DirectFunctionCall1(namein, values[0]);
	values[1] = CStringGetTextDatum(server_vendor_name(srv->vendor));
	values[2] = BoolGetDatum(ok);
	if (status > 0)
		values[3] = Int32GetDatum((int32) status);
	else
		nulls[3] = true;
	values[4] = Float8GetDatum(latency);
	if (expires != 0)
		values[5] = TimestampTzGetDatum(expires);
	else
		nulls[5] = true;
	if (message)
		values[6] = CStringGetTextDatum(message);
	else
		nulls[6] = true;

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
