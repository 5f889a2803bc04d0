/*-------------------------------------------------------------------------
 *
 * lane_budgets.c
 *		sales_api.lane_budgets(): the shared rate-limit budget of every
 *		Connecteam lane of this database, for monitoring.
 *
 * A lane is one destination: a capture's server and the credentials of its
 * run_as role, i.e. one vendor account.  connecteam_rate_limit(server) shows
 * the budget of the account the *caller's* user mapping reaches, so a
 * monitoring role would need the vendor's credentials to see what the
 * worker spends.  This function resolves each lane's account as the worker
 * does (server_lookup_by_oid with the capture's run_as, inside a
 * subtransaction, as outbox.c's capture_resolve) and reads that account's
 * budget from shared memory without creating or touching it
 * (ratelimit_peek).  It returns budget figures only: no credential, token
 * or digest leaves the backend, and the caller needs no user mapping and no
 * USAGE on the server.  It reads sales_api.capture with the caller's rights.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "ratelimit.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

PG_FUNCTION_INFO_V1(sales_api_lane_budgets);

/* the lane's account budget; false when unknown or the lane cannot be resolved */
static bool
lane_budget(Oid serverid, Oid run_as, RateLimitState *st)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool found = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		SalesApiServer *srv = server_lookup_by_oid(serverid, run_as, VENDOR_CONNECTEAM);

		found = ratelimit_peek(srv, st);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		/* no mapping, no USAGE any more, no credentials: nothing to show */
		MemoryContextSwitchTo(oldcxt);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		found = false;
	}
	PG_END_TRY();
	return found;
}

Datum
sales_api_lane_budgets(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt = CurrentMemoryContext;
	int			n;
	Oid		   *servers;
	Oid		   *roles;
	char	  **names;

	InitMaterializedSRF(fcinfo, 0);

	/* the lanes, read with the caller's rights */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "sales_api: SPI_connect failed");
	if (SPI_execute("SELECT DISTINCT c.server_id, c.server_name, c.run_as::oid"
					"  FROM sales_api.capture c"
					"  JOIN pg_catalog.pg_foreign_server s ON s.oid = c.server_id"
					" WHERE c.vendor = 'connecteam'"
					" ORDER BY 2, 3", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "sales_api: could not read the captures");
	n = (int) SPI_processed;
	servers = MemoryContextAlloc(cxt, sizeof(Oid) * Max(n, 1));
	roles = MemoryContextAlloc(cxt, sizeof(Oid) * Max(n, 1));
	names = MemoryContextAlloc(cxt, sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;

		servers[i] = DatumGetObjectId(SPI_getbinval(tup, td, 1, &isnull));
		names[i] = MemoryContextStrdup(cxt, SPI_getvalue(tup, td, 2));
		roles[i] = DatumGetObjectId(SPI_getbinval(tup, td, 3, &isnull));
	}
	SPI_finish();

	for (int i = 0; i < n; i++)
	{
		RateLimitState st;
		Datum		values[9];
		bool		nulls[9];
		bool		known = lane_budget(servers[i], roles[i], &st);

		values[0] = DirectFunctionCall1(namein, CStringGetDatum(names[i]));
		nulls[0] = false;
		values[1] = ObjectIdGetDatum(roles[i]);
		nulls[1] = false;
		ratelimit_datums(known ? &st : NULL, values + 2, nulls + 2);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
