/*-------------------------------------------------------------------------
 *
 * capture.c
 *		The capture trigger of attached POS tables.
 *
 * attach() installs statement-level AFTER triggers with transition tables
 * that call sales_api.capture_trigger(sql, ...): each argument is one
 * statement over the transition table (sales_api_new / sales_api_old) that
 * enqueues the statement's sales in sales_api.outbox.  Up to 0.4 each
 * capture had its own PL/pgSQL SECURITY DEFINER functions; the C trigger
 * saves, per POS statement, the PL/pgSQL call, the SET search_path of a
 * SECURITY DEFINER function (a GUC save, an invalidated search path and its
 * catalog lookups, a restore) and the parse of nothing: its plans are
 * prepared once per backend and kept (SPI_keepplan), keyed by the
 * statement's text, so a trigger created again with other SQL gets a plan
 * of its own, and DDL on the tables invalidates them through the plan
 * cache as usual.
 *
 * The statements run as the bootstrap superuser, with a fixed search path
 * (pg_catalog only), as a SECURITY DEFINER function of attach()'s superuser
 * did: the POS roles need no privilege on the outbox.  The same search path
 * is pushed when a plan is made and whenever it runs, so the plan cache
 * never sees a different one and never replans for it.
 *
 * A statement text may start with a marker comment: "rows" runs only for a
 * POS statement of fewer rows than sales_api.stage_min_rows, "bulk" only for
 * one of as many or more.  A Connecteam capture stages a row per sale for the
 * first and one row of arrays for the second, in sales_api.outbox_stage,
 * which the worker makes outbox items (sales_api._stage_expand): far less
 * than an outbox item per sale in the POS's transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "sales_api.h"

#include "worker.h"

PG_FUNCTION_INFO_V1(sales_api_capture_trigger);

typedef struct CapturePlan
{
	char	   *sql;
	SPIPlanPtr	plan;
	struct CapturePlan *next;
} CapturePlan;

static CapturePlan *capture_plans = NULL;
static MemoryContext capture_cxt = NULL;

static OverrideSearchPath *
capture_search_path(void)
{
	OverrideSearchPath *path;

	path = palloc0(sizeof(OverrideSearchPath));
	path->schemas = NIL;
	path->addCatalog = true;
	path->addTemp = false;
	return path;
}

/* The kept plan of a statement, prepared on first use in this backend. */
static SPIPlanPtr
capture_plan(const char *sql)
{
	CapturePlan *cp;
	SPIPlanPtr	plan;

	for (cp = capture_plans; cp != NULL; cp = cp->next)
		if (strcmp(cp->sql, sql) == 0)
			return cp->plan;

	plan = SPI_prepare(sql, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "sales_api capture: could not prepare \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "sales_api capture: could not keep a plan");
	if (capture_cxt == NULL)
		capture_cxt = AllocSetContextCreate(TopMemoryContext, "sales_api capture plans",
											ALLOCSET_SMALL_SIZES);
	cp = MemoryContextAlloc(capture_cxt, sizeof(CapturePlan));
	cp->sql = MemoryContextStrdup(capture_cxt, sql);
	cp->plan = plan;
	cp->next = capture_plans;
	capture_plans = cp;
	return plan;
}

#define MARK_ROWS "/*rows*/"
#define MARK_BULK "/*bulk*/"

/*
 * Does the statement apply to a POS statement of this many rows?  One that
 * starts with MARK_ROWS runs for fewer than sales_api.stage_min_rows rows,
 * one that starts with MARK_BULK for as many or more; any other always runs.
 */
static bool
capture_applies(const char *sql, int64 nrows)
{
	if (strncmp(sql, MARK_ROWS, sizeof(MARK_ROWS) - 1) == 0)
		return nrows < sales_api_stage_min_rows;
	if (strncmp(sql, MARK_BULK, sizeof(MARK_BULK) - 1) == 0)
		return nrows >= sales_api_stage_min_rows;
	return true;
}

static void
capture_run(TriggerData *trigdata)
{
	Trigger    *tg = trigdata->tg_trigger;
	Tuplestorestate *rows = trigdata->tg_newtable ? trigdata->tg_newtable : trigdata->tg_oldtable;
	int64		nrows = rows ? tuplestore_tuple_count(rows) : 0;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "sales_api capture: SPI_connect failed");
	if (SPI_register_trigger_data(trigdata) != SPI_OK_TD_REGISTER)
		elog(ERROR, "sales_api capture: could not register the transition tables");
	for (int i = 0; i < tg->tgnargs; i++)
	{
		int			ret;

		if (!capture_applies(tg->tgargs[i], nrows))
			continue;
		ret = SPI_execute_plan(capture_plan(tg->tgargs[i]), NULL, NULL, false, 0);

		if (ret < 0)
			elog(ERROR, "sales_api capture: statement %d failed: %s", i + 1,
				 SPI_result_code_string(ret));
	}
	SPI_finish();
}

Datum
sales_api_capture_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Oid			save_userid;
	int			save_sec;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("sales_api.capture_trigger() must be called as a trigger"),
				 errhint("sales_api.attach() installs it; it is not called directly.")));
	if (!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) || !TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("sales_api.capture_trigger() must be an AFTER ... FOR EACH STATEMENT trigger"),
				 errhint("Use sales_api.attach() to capture a table.")));

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	PushOverrideSearchPath(capture_search_path());
	PG_TRY();
	{
		capture_run(trigdata);
	}
	PG_FINALLY();
	{
		PopOverrideSearchPath();
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();

	worker_wake_on_commit();
	return PointerGetDatum(NULL);
}
