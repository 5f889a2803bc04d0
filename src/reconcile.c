/*-------------------------------------------------------------------------
 *
 * reconcile.c
 *		Local figures of the captured tables for reconciliation and repair,
 *		and the worker's scheduled Connecteam reconciliation.
 *
 * The SQL functions here read a captured table only through its mapping,
 * as its owner (mapping.c), and only for a caller that may read that table
 * itself: what they return is never more than the caller could SELECT.
 * The reconciliation and repair functions of the SQL script (fixed SQL,
 * no statement built from a mapping) call them.
 *
 * The scheduled reconciliation reads the vendor's totals with the user
 * mapping of each capture's run_as role.  It gets that mapping the way any
 * call does, from the current user: the worker switches the current user
 * to run_as, restricted, for the length of the vendor call, and back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "connecteam_wire.h"
#include "mapping.h"
#include "reconcile.h"
#include "server.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(sales_api_local_connecteam_totals);
PG_FUNCTION_INFO_V1(sales_api_local_mapal_sales);
PG_FUNCTION_INFO_V1(sales_api_mapal_slot_totals);

/* The live and detached captures of a server for a vendor, whose table still exists. */
static List *
server_captures(const char *server, const char *vendor)
{
	OwnerScope	scope;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(server), CStringGetTextDatum(vendor)};
	List	   *ids = NIL;
	List	   *defs = NIL;
	ListCell   *lc;

	mapping_enter_extension(&scope);
	if (SPI_execute_with_args("SELECT id, relid::oid FROM sales_api.capture"
							  " WHERE server_name = $1::name AND vendor = $2 ORDER BY id",
							  2, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "sales_api: could not read sales_api.capture");
	mapping_leave_extension(&scope);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int			id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));

		/* a detached capture's table may have been dropped since */
		if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
			ids = lappend_int(ids, id);
	}
	foreach(lc, ids)
		defs = lappend(defs, mapping_load(lfirst_int(lc), false));
	return defs;
}

/* Every row of SPI_tuptable into the function's result. */
static void
put_rows(ReturnSetInfo *rsinfo)
{
	int			natts = rsinfo->setDesc->natts;
	Datum	   *values = palloc(sizeof(Datum) * natts);
	bool	   *nulls = palloc(sizeof(bool) * natts);

	for (uint64 r = 0; r < SPI_processed; r++)
	{
		for (int c = 0; c < natts; c++)
			values[c] = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

static void
require_args(FunctionCallInfo fcinfo, int n, const char *what)
{
	for (int i = 0; i < n; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", what)));
}

/*
 * _local_connecteam_totals(server name, start_date date, end_date date,
 *                          location_ids bigint[], day_tz text)
 *   -> (location_id bigint, sales_date date, total numeric, sales bigint)
 * One row per capture, location and local day; several captures of a
 * server may give the same location and day.
 */
Datum
sales_api_local_connecteam_totals(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *defs;
	ListCell   *lc;
	Oid			types[4] = {DATEOID, DATEOID, INT8ARRAYOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	require_args(fcinfo, 3, "server, start_date and end_date");
	if (PG_ARGISNULL(4))
		require_args(fcinfo, 5, "day_tz");
	InitMaterializedSRF(fcinfo, 0);
	values[0] = PG_GETARG_DATUM(1);
	values[1] = PG_GETARG_DATUM(2);
	values[2] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	nulls[2] = PG_ARGISNULL(3) ? 'n' : ' ';
	values[3] = PG_GETARG_DATUM(4);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "sales_api: SPI_connect failed");
	defs = server_captures(NameStr(*PG_GETARG_NAME(0)), "connecteam");
	foreach(lc, defs)
	{
		CaptureDef *def = lfirst(lc);

		mapping_check_reader(def);
		mapping_execute(def, MS_CT_DAY_TOTALS, 4, types, values, nulls);
		put_rows(rsinfo);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * _local_mapal_sales(server name, from_local timestamp, to_local timestamp)
 *   -> (unit_id bigint, sold_at timestamp, net numeric, gross numeric, checks numeric)
 * Every sale of the server's Mapal captures in [from, to), local time.
 */
Datum
sales_api_local_mapal_sales(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *defs;
	ListCell   *lc;
	Oid			types[2] = {TIMESTAMPOID, TIMESTAMPOID};
	Datum		values[2];

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		return (Datum) 0;
	values[0] = PG_GETARG_DATUM(1);
	values[1] = PG_GETARG_DATUM(2);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "sales_api: SPI_connect failed");
	defs = server_captures(NameStr(*PG_GETARG_NAME(0)), "mapal");
	foreach(lc, defs)
	{
		CaptureDef *def = lfirst(lc);

		mapping_check_reader(def);
		mapping_execute(def, MS_MAPAL_SALES, 2, types, values, NULL);
		put_rows(rsinfo);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * _mapal_slot_totals(capture_id integer, unit_id bigint, business_day date)
 *   -> (currency_id text, sales_type_id text, slot_start timestamp,
 *       net numeric, gross numeric, checks bigint, guests bigint)
 * The totals the worker sends for a unit's business day.
 */
Datum
sales_api_mapal_slot_totals(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CaptureDef *def;
	Oid			types[2] = {INT8OID, DATEOID};
	Datum		values[2];

	require_args(fcinfo, 3, "capture_id, unit_id and business_day");
	InitMaterializedSRF(fcinfo, 0);
	values[0] = PG_GETARG_DATUM(1);
	values[1] = PG_GETARG_DATUM(2);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "sales_api: SPI_connect failed");
	def = mapping_load(PG_GETARG_INT32(0), false);
	if (def->vendor != VENDOR_MAPAL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sales_api capture %d is not a Mapal capture", def->id)));
	mapping_check_reader(def);
	mapping_execute(def, MS_MAPAL_TOTALS, 2, types, values, NULL);
	put_rows(rsinfo);
	SPI_finish();
	return (Datum) 0;
}

/* ------------------------------------------------------------------------
 * The scheduled reconciliation
 * ------------------------------------------------------------------------
 */

/*
 * The vendor's daily totals, read with run_as's user mapping: the current
 * user is run_as for the lookup and the call, restricted, then restored
 * (also on error).
 */
static List *
vendor_totals_as(Oid run_as, Oid server_id, DateADT start, DateADT end)
{
	Oid			save_userid;
	int			save_sec;
	List	   *volatile rows = NIL;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(run_as, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		SalesApiServer *srv = server_lookup_by_oid(server_id, GetUserId(), VENDOR_CONNECTEAM);

		rows = ct_daily_sales_fetch(srv, start, end, NULL, 0);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	return rows;
}

static Datum
daily_array(List *rows, int which)
{
	ArrayBuildState *abs;
	static const Oid elem[4] = {INT8OID, DATEOID, NUMERICOID, NUMERICOID};
	ListCell   *lc;

	abs = initArrayResult(elem[which], CurrentMemoryContext, false);
	foreach(lc, rows)
	{
		CtDaily    *d = lfirst(lc);

		switch (which)
		{
			case 0:
				accumArrayResult(abs, Int64GetDatum(d->location_id), false, INT8OID, CurrentMemoryContext);
				break;
			case 1:
				accumArrayResult(abs, DateADTGetDatum(d->sales_date), false, DATEOID, CurrentMemoryContext);
				break;
			case 2:
				accumArrayResult(abs, d->total_sales, d->total_null, NUMERICOID, CurrentMemoryContext);
				break;
			default:
				accumArrayResult(abs, d->projected_sales, d->projected_null, NUMERICOID, CurrentMemoryContext);
				break;
		}
	}
	return makeArrayResult(abs, CurrentMemoryContext);
}

/*
 * One reconciliation of every Connecteam server with a live capture, in
 * the caller's transaction with SPI connected: results recorded in
 * sales_api.reconciliation, mismatches older than sales_api.reconcile_grace
 * logged as warnings.
 */
void
reconcile_scheduled(void)
{
	int			n;
	Oid		   *servers;
	Oid		   *roles;
	char	  **names;
	DateADT		start;
	DateADT		end;
	bool		isnull;

	/*
	 * The worker runs this as the bootstrap superuser: its statements see
	 * pg_catalog alone, as every other statement of the worker does
	 * (mapping_push_catalog_path()).  An ERROR pops it with the transaction.
	 */
	mapping_push_catalog_path();
	if (SPI_execute("SELECT DISTINCT server_id, server_name::text, run_as::oid FROM sales_api.capture"
					" WHERE vendor = 'connecteam' AND detached_at IS NULL"
					" AND to_regprocedure('sales_api._record_reconciliation(name,date,date,text,interval,bigint[],date[],numeric[],numeric[])') IS NOT NULL",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the captures to reconcile");
	n = (int) SPI_processed;
	servers = palloc(sizeof(Oid) * (n + 1));
	roles = palloc(sizeof(Oid) * (n + 1));
	names = palloc(sizeof(char *) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		servers[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		names[i] = MemoryContextStrdup(TopTransactionContext,
									   SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
		roles[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
	}
	{
		Oid			types[2] = {TEXTOID, INT4OID};
		Datum		values[2] = {CStringGetTextDatum(sales_api_reconcile_timezone),
		Int32GetDatum(sales_api_reconcile_days)};

		if (SPI_execute_with_args("SELECT (now() AT TIME ZONE $1)::date - ($2 - 1), (now() AT TIME ZONE $1)::date",
								  2, types, values, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not compute the days to reconcile");
		start = DatumGetDateADT(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		end = DatumGetDateADT(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}
	for (int i = 0; i < n; i++)
	{
		Oid			types[9] = {TEXTOID, DATEOID, DATEOID, TEXTOID, INTERVALOID, INT8ARRAYOID,
		DATEARRAYOID, NUMERICARRAYOID, NUMERICARRAYOID};
		Datum		vals[9];
		List	   *rows = vendor_totals_as(roles[i], servers[i], start, end);
		Interval   *grace = palloc0(sizeof(Interval));

		vals[0] = CStringGetTextDatum(names[i]);
		vals[1] = DateADTGetDatum(start);
		vals[2] = DateADTGetDatum(end);
		vals[3] = CStringGetTextDatum(sales_api_reconcile_timezone);
		grace->time = (int64) sales_api_reconcile_grace_ms * 1000;
		vals[4] = IntervalPGetDatum(grace);
		for (int k = 0; k < 4; k++)
			vals[5 + k] = daily_array(rows, k);
		if (SPI_execute_with_args("SELECT location_id, sales_date::text, difference::text, mismatch_since::text"
								  " FROM sales_api._record_reconciliation($1::name, $2, $3, $4,"
								  " $5, $6, $7, $8, $9)",
								  9, types, vals, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not record a reconciliation");
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	td = SPI_tuptable->tupdesc;

			ereport(WARNING,
					(errmsg("sales_api: Connecteam totals of location %s on %s differ from the POS by %s since %s",
							SPI_getvalue(tup, td, 1), SPI_getvalue(tup, td, 2),
							SPI_getvalue(tup, td, 3), SPI_getvalue(tup, td, 4)),
					 errdetail("Server \"%s\"; the mismatch has lasted longer than sales_api.reconcile_grace.", names[i]),
					 errhint("Look at sales_api.reconciliation_latest, then repair with sales_api.repair_connecteam('%s', %s, '%s').",
							 names[i], SPI_getvalue(tup, td, 1), SPI_getvalue(tup, td, 2))));
		}
	}
	if (sales_api_reconcile_retention_s > 0)
		SPI_execute(psprintf("DELETE FROM sales_api.reconciliation WHERE run_at < now() - interval '%d s'",
							 sales_api_reconcile_retention_s), false, 0);
	PopOverrideSearchPath();
}
