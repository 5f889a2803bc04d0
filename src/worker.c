/*-------------------------------------------------------------------------
 *
 * worker.c
 *		A database's sales_api worker: started by the launcher (launcher.c)
 *		for each database where sales_api is installed, it drains that
 *		database's outbox; the settings of the workers; worker_stats(),
 *		wake_worker() and the wake-up on commit.
 *
 * Design note.  Capture triggers enqueue work in the inserting transaction
 * and call wake_worker_on_commit(), which registers a transaction callback
 * that sets the worker's latch when (and only when) that transaction
 * commits: there is no polling delay and a rolled-back sale wakes nothing.
 * A slow timer (sales_api.worker_naptime) is the safety net, and also
 * brings back items whose retry time has come.
 *
 * Each cycle (outbox.c) claims a batch in one short transaction, sends it
 * with no transaction open (so no lock is held while the network is slow),
 * and records the outcome in a second transaction.  A crash between the two
 * leaves the batch "in_flight" with a lease; when the lease expires the
 * items are taken again (Connecteam posts through the ambiguous-outcome
 * policy, since the vendor may have stored them).
 *
 * The worker registers with BgWorkerStart_RecoveryFinished, so a standby
 * never starts it, and checks RecoveryInProgress() anyway.  SIGTERM uses
 * the core die() handler: CHECK_FOR_INTERRUPTS() in the transfer loop ends
 * the process promptly, mid-transfer included.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <malloc.h>

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/snapmgr.h"
#include "access/xlog.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "outbox.h"
#include "sales_api.h"
#include "reconcile.h"
#include "worker.h"

PGDLLEXPORT void sales_api_worker_main(Datum main_arg);
PGDLLEXPORT void sales_api_reconcile_main(Datum main_arg);

PG_FUNCTION_INFO_V1(sales_api_wake_worker_on_commit);
PG_FUNCTION_INFO_V1(sales_api_worker_stats);
PG_FUNCTION_INFO_V1(sales_api_wake_worker);

/* the rest after which pending table statistics are sent, as postgres.c's idle loop */
#define STATS_REST_MS 1000

WorkerShared *worker_shared = NULL;

char	   *sales_api_database = NULL;	/* '*': every database */
bool		sales_api_worker_enabled = true;
int			sales_api_worker_naptime_ms = 10000;
int			sales_api_batch_size = 2000;
int			sales_api_lease_ms = 120000;
int			sales_api_max_attempts = 25;
int			sales_api_retry_base_ms = 1000;
int			sales_api_retry_max_ms = 600000;
int			sales_api_ambiguous_policy = AMBIGUOUS_REPLACE_WINDOW;
int			sales_api_sent_retention_ms = 7 * 86400 * 1000;
int			sales_api_ambiguous_settle_ms = 30000;
int			sales_api_reconcile_interval_ms = 0;
int			sales_api_reconcile_days = 2;
int			sales_api_reconcile_grace_ms = 3600 * 1000;
int			sales_api_reconcile_retention_s = 30 * 86400;
char	   *sales_api_reconcile_timezone = NULL;
int			sales_api_mapping_timeout_ms = 60000;

static const struct config_enum_entry ambiguous_options[] = {
	{"replace_window", AMBIGUOUS_REPLACE_WINDOW, false},
	{"park", AMBIGUOUS_PARK, false},
	{NULL, 0, false}
};

static bool wake_registered = false;
static bool wake_pending = false;

/*
 * Called from _PG_init: the worker's settings always exist (so the README's
 * table is true in every session); shared memory and the worker itself only
 * when loaded through shared_preload_libraries.
 */
void
worker_init(void)
{
	DefineCustomStringVariable("sales_api.database",
							   "Databases whose outbox a sales_api worker drains: '*' for every database where sales_api is installed, or one database's name.",
							   NULL, &sales_api_database, "*",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.max_workers",
							"Most databases served at once, one worker each.",
							"Each is a background worker: max_worker_processes must leave room for them and the launcher.",
							&sales_api_max_workers, 8, 1, 1024,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.workers_per_database",
							"Workers that share a database's lanes between them.",
							"Each takes the captures whose id modulo this number is its own; all of them count against sales_api.max_workers.",
							&sales_api_workers_per_database, 1, 1, 64,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.launcher_naptime",
							"How often the launcher looks for databases that have sales_api and no worker.",
							"A capture that commits in a database with no worker makes it look at once.",
							&sales_api_launcher_naptime_ms, 60000, 100, 86400000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomBoolVariable("sales_api.worker_enabled",
							 "Starts the background worker.",
							 NULL, &sales_api_worker_enabled, true,
							 PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.worker_naptime",
							"Safety-net timer of the worker; commits wake it at once.",
							NULL, &sales_api_worker_naptime_ms, 10000, 10, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.batch_size",
							"Most outbox items the worker claims in one cycle.",
							NULL, &sales_api_batch_size, 2000, 1, 100000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.lease_time",
							"How long claimed items stay in flight before they are taken again.",
							NULL, &sales_api_lease_ms, 120000, 1000, 86400000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.max_attempts",
							"Attempts before an item is dead-lettered.",
							NULL, &sales_api_max_attempts, 25, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.retry_base",
							"First retry delay; doubles each attempt, with jitter.",
							NULL, &sales_api_retry_base_ms, 1000, 1, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.retry_max",
							"Longest retry delay.",
							NULL, &sales_api_retry_max_ms, 600000, 1, 86400000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomEnumVariable("sales_api.ambiguous_policy",
							 "What the worker does when a Connecteam post may or may not have been stored.",
							 "replace_window deletes the location's time window at the vendor and posts every local sale of it again; park marks the items unknown for an operator.",
							 &sales_api_ambiguous_policy, AMBIGUOUS_REPLACE_WINDOW, ambiguous_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.ambiguous_settle_time",
							"How long the worker waits before replacing a window for an ambiguous post.",
							"A slow vendor can still store a request the worker gave up on; the window is replaced only after this, so the late original cannot land after the repost.",
							&sales_api_ambiguous_settle_ms, 30000, 0, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.sent_retention",
							"How long sent outbox items are kept before the worker purges them.",
							NULL, &sales_api_sent_retention_ms, 7 * 86400 * 1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomIntVariable("sales_api.worker_mapping_timeout",
							"Longest a worker lets one statement built from a capture's mapping run; 0: no limit.",
							"Such a statement runs the table owner's expressions; one that runs longer is cancelled, "
							"and the items that needed it wait with the error, so it cannot hold up the database's other captures.",
							&sales_api_mapping_timeout_ms, 60000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.reconcile_interval",
							"How often the worker reconciles Connecteam daily totals with the POS tables; 0 turns it off.",
							NULL, &sales_api_reconcile_interval_ms, 0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.reconcile_days",
							"Days, today included, that each scheduled reconciliation covers.",
							NULL, &sales_api_reconcile_days, 2, 1, 366,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.reconcile_grace",
							"How long a mismatch may last before the worker logs a warning.",
							NULL, &sales_api_reconcile_grace_ms, 3600 * 1000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.reconcile_retention",
							"How long reconciliation results are kept.",
							NULL, &sales_api_reconcile_retention_s, 30 * 86400, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomStringVariable("sales_api.reconcile_timezone",
							   "Time zone of the vendor's days (Connecteam's account time zone).",
							   NULL, &sales_api_reconcile_timezone, "UTC",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);

	if (process_shared_preload_libraries_in_progress)
		launcher_init();
}

/* Set the latches of this database's workers (but `except`); how many were set. */
static int
worker_wake_members(WorkerShared *except)
{
	WorkerShared *slots[64];
	int			n = launcher_slots_for(MyDatabaseId, slots, lengthof(slots));
	int			woke = 0;

	for (int i = 0; i < n; i++)
	{
		Latch	   *latch = NULL;

		if (slots[i] == except)
			continue;
		SpinLockAcquire(&slots[i]->mutex);
		if (slots[i]->dbid == MyDatabaseId)
			latch = slots[i]->latch;
		SpinLockRelease(&slots[i]->mutex);
		if (latch)
		{
			SetLatch(latch);
			woke++;
		}
	}
	return woke;
}

/*
 * Wake this database's workers; where none serves it yet, ask the launcher
 * to start one.  Returns whether a worker was running.
 */
static bool
worker_wake(void)
{
	if (worker_wake_members(NULL) > 0)
		return true;
	launcher_poke(MyDatabaseId);
	return false;
}

/*
 * Wake this database's other workers: a claim of this one made items of
 * their lanes out of staged sales (expansion takes every capture's, and a
 * wake-up they had was spent on a claim that could not see them yet).
 */
void
worker_wake_others(void)
{
	(void) worker_wake_members(worker_shared);
}

static void
wake_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_pending)
				worker_wake();
			wake_pending = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_pending = false;
			break;
		default:
			break;
	}
}

/*
 * Called by capture triggers and the functions that queue work: wake this
 * database's worker when the transaction commits (or have one started).
 */
void
worker_wake_on_commit(void)
{
	/* no worker may serve this database: none to wake, none to start */
	if (!launcher_this_database_selected())
		return;
	if (!wake_registered)
	{
		RegisterXactCallback(wake_xact_callback, NULL);
		wake_registered = true;
	}
	wake_pending = true;
}

Datum
sales_api_wake_worker_on_commit(PG_FUNCTION_ARGS)
{
	worker_wake_on_commit();
	PG_RETURN_VOID();
}

/* Operators' nudge (after resume, retry_dead): wake the worker now. */
Datum
sales_api_wake_worker(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(worker_wake());
}

void
worker_note_request(double ms, long status)
{
	if (worker_shared == NULL)
		return;
	SpinLockAcquire(&worker_shared->mutex);
	worker_shared->requests++;
	if (status == 429)
		worker_shared->rate_limited++;
	worker_shared->latency_ms[worker_shared->latency_pos] = (float4) ms;
	worker_shared->latency_pos = (worker_shared->latency_pos + 1) % WORKER_LATENCY_SAMPLES;
	if (worker_shared->nlatency < WORKER_LATENCY_SAMPLES)
		worker_shared->nlatency++;
	SpinLockRelease(&worker_shared->mutex);
}

static int
float4_cmp(const void *a, const void *b)
{
	float4		x = *(const float4 *) a;
	float4		y = *(const float4 *) b;

	return (x > y) - (x < y);
}

/* worker_stats(): the live figures from shared memory, one row */
Datum
sales_api_worker_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	WorkerShared snap;
	Datum		values[17];
	bool		nulls[17] = {0};
	WorkerShared *ws[64];
	int			nw;
	float4		lat[WORKER_LATENCY_SAMPLES * 4];
	int			nlat = 0;
	int			i = 0;
	bool		served;
	char	   *note;

	if (!process_shared_preload_libraries_done || (note = launcher_served_note(MyDatabaseId, &served),
												   strstr(note, "shared_preload_libraries") != NULL))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sales_api is not loaded through shared_preload_libraries"),
				 errhint("Add sales_api to shared_preload_libraries in postgresql.conf and restart PostgreSQL.")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	/*
	 * This database's workers, summed (pid and started_at: the first's,
	 * latencies over all their samples); none: zeros, and the note says why.
	 */
	memset(&snap, 0, sizeof(snap));
	nw = launcher_slots_for(MyDatabaseId, ws, lengthof(ws));
	for (int k = 0; k < nw; k++)
	{
		WorkerShared one;

		SpinLockAcquire(&ws[k]->mutex);
		memcpy(&one, ws[k], sizeof(WorkerShared));
		SpinLockRelease(&ws[k]->mutex);
		if (one.dbid != MyDatabaseId)
			continue;
		if (snap.latch == NULL)
			snap.latch = one.latch;
		if (snap.pid == 0 || (one.member == 0 && one.pid != 0))
		{
			snap.pid = one.pid;
			snap.started_at = one.started_at;
		}
		snap.last_cycle_at = Max(snap.last_cycle_at, one.last_cycle_at);
		snap.last_success_at = Max(snap.last_success_at, one.last_success_at);
		snap.cycles += one.cycles;
		snap.requests += one.requests;
		snap.items_sent += one.items_sent;
		snap.items_failed += one.items_failed;
		snap.items_dead += one.items_dead;
		snap.retries += one.retries;
		snap.rate_limited += one.rate_limited;
		snap.ambiguous += one.ambiguous;
		snap.rate_waits += one.rate_waits;
		for (int j = 0; j < one.nlatency && nlat < WORKER_LATENCY_SAMPLES * 4; j++)
			lat[nlat++] = one.latency_ms[j];
	}
	if (nw == 0)
		launcher_poke(MyDatabaseId);

	values[i++] = BoolGetDatum(snap.latch != NULL);
	if (snap.pid)
		values[i++] = Int32GetDatum(snap.pid);
	else
		nulls[i++] = true;
#define TS_OR_NULL(ts) do { if (ts) values[i++] = TimestampTzGetDatum(ts); else nulls[i++] = true; } while (0)
	TS_OR_NULL(snap.started_at);
	TS_OR_NULL(snap.last_cycle_at);
	TS_OR_NULL(snap.last_success_at);
#undef TS_OR_NULL
	values[i++] = Int64GetDatum((int64) snap.cycles);
	values[i++] = Int64GetDatum((int64) snap.requests);
	values[i++] = Int64GetDatum((int64) snap.items_sent);
	values[i++] = Int64GetDatum((int64) snap.items_failed);
	values[i++] = Int64GetDatum((int64) snap.items_dead);
	values[i++] = Int64GetDatum((int64) snap.retries);
	values[i++] = Int64GetDatum((int64) snap.rate_limited);
	values[i++] = Int64GetDatum((int64) snap.ambiguous);
	values[i++] = Int64GetDatum((int64) snap.rate_waits);
	if (nlat > 0)
	{
		qsort(lat, nlat, sizeof(float4), float4_cmp);
		values[i++] = Float8GetDatum(lat[(nlat - 1) / 2]);
		values[i++] = Float8GetDatum(lat[Min(nlat - 1, (int) (nlat * 0.99))]);
	}
	else
	{
		nulls[i++] = true;
		nulls[i++] = true;
	}
	values[i++] = CStringGetTextDatum(note);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

static void
worker_shmem_exit(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	if (worker_shared == NULL)
		return;
	SpinLockAcquire(&worker_shared->mutex);
	worker_shared->latch = NULL;
	worker_shared->pid = 0;
	SpinLockRelease(&worker_shared->mutex);
}

/*
 * The scheduled reconciliation (reconcile.c), in a transaction of its own.
 */
static void
worker_reconcile(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "sales_api reconcile: reconciling");
	reconcile_scheduled();
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * The scheduled reconciliation runs in a background worker of its own,
 * started by the database's worker when it is due: it waits for Connecteam's
 * daily totals (up to request_timeout a request) while the worker's lanes go
 * on.  One at a time: while the last one runs, none is started.
 */
static BackgroundWorkerHandle *reconcile_handle = NULL;

static bool extension_installed(void);

static void
worker_reconcile_start(void)
{
	BackgroundWorker bgw;
	pid_t		pid;

	if (reconcile_handle != NULL &&
		GetBackgroundWorkerPid(reconcile_handle, &pid) != BGWH_STOPPED)
		return;
	if (reconcile_handle != NULL)
	{
		pfree(reconcile_handle);
		reconcile_handle = NULL;
	}
	sales_api_bgw_init(&bgw, "sales_api_reconcile_main", "sales_api reconcile");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "sales_api reconcile");
	bgw.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	bgw.bgw_notify_pid = MyProcPid;
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		bool		ok = RegisterDynamicBackgroundWorker(&bgw, &reconcile_handle);

		MemoryContextSwitchTo(old);
		if (!ok)
		{
			reconcile_handle = NULL;
			ereport(WARNING,
					(errmsg("sales_api worker: could not start the scheduled reconciliation"),
					 errdetail("No background worker slot is free."),
					 errhint("Raise max_worker_processes; the reconciliation is tried again at the next sales_api.reconcile_interval.")));
		}
	}
}

/* The scheduled reconciliation's background worker: main_arg is its database's OID. */
void
sales_api_reconcile_main(Datum main_arg)
{
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(main_arg), InvalidOid, 0);
	/* the setting, not only the activity's: what it runs can tell where it runs */
	SetConfigOption("application_name", "sales_api reconcile", PGC_USERSET, PGC_S_SESSION);
	if (extension_installed())
		worker_reconcile();
	proc_exit(0);
}

/*
 * One step inside an error boundary: an unexpected ERROR is logged, the
 * transaction aborted, every job in flight dropped, and the worker goes on
 * (items it had claimed come back when their lease expires).
 */
static bool
worker_cycle_guarded(MemoryContext cycle_cxt, long *wait_ms)
{
	bool		busy = false;

	PG_TRY();
	{
		busy = outbox_step(cycle_cxt, wait_ms);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cycle_cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		outbox_abort();
		*wait_ms = Min(*wait_ms, 5000);
		busy = false;
	}
	PG_END_TRY();
	return busy;
}

/* Is sales_api installed in this database?  In a transaction of its own. */
static bool
extension_installed(void)
{
	bool		installed;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	installed = OidIsValid(get_extension_oid("sales_api", true));
	CommitTransactionCommand();
	return installed;
}

/* A worker that found no sales_api says so and stops; the launcher frees its slot. */
static void
worker_exit_not_installed(void)
{
	SpinLockAcquire(&worker_shared->mutex);
	worker_shared->state = WS_NOT_INSTALLED;
	SpinLockRelease(&worker_shared->mutex);
	proc_exit(0);
}

/*
 * A database's worker.  main_arg is its slot, bgw_extra its database's
 * OID (launcher.c).
 */
void
sales_api_worker_main(Datum main_arg)
{
	MemoryContext cycle_cxt;
	TimestampTz next_reconcile_at = 0;
	TimestampTz last_trim_at = 0;
	bool		worked_since_trim = false;
	Oid			dbid;
	char	   *dbname;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	memcpy(&dbid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	worker_shared = launcher_slot(DatumGetInt32(main_arg));
	on_shmem_exit(worker_shmem_exit, (Datum) 0);
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	pgstat_report_appname("sales_api worker");
	if (!extension_installed())
		worker_exit_not_installed();
	StartTransactionCommand();
	dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
	CommitTransactionCommand();

	/* the slot's figures start again for this worker */
	SpinLockAcquire(&worker_shared->mutex);
	memset(((char *) worker_shared) + offsetof(WorkerShared, started_at), 0,
		   sizeof(WorkerShared) - offsetof(WorkerShared, started_at));
	worker_shared->latch = MyLatch;
	worker_shared->pid = MyProcPid;
	worker_shared->dbid = MyDatabaseId;
	worker_shared->state = WS_RUNNING;
	worker_shared->started_at = GetCurrentTimestamp();
	SpinLockRelease(&worker_shared->mutex);

	ereport(LOG, (errmsg("sales_api worker started for database \"%s\"", dbname)));

	/*
	 * No JIT: once the outbox holds a few hundred thousand rows, the
	 * planner's estimates for the per-cycle statements pass jit_above_cost,
	 * and each compilation costs more than the statement, while LLVM keeps
	 * what it built (types, modules, inlining state) for the life of the
	 * process: about 11 MB more after the first 200,000 sales, found with
	 * heaptrack.  PGC_S_OVERRIDE outlives a configuration reload.
	 */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * Some of the worker's fixed statements are prepared for the generic
	 * plan (OutboxStmt.generic), the others left to the plan cache's
	 * choice; a server-wide plan_cache_mode would override both (a claim
	 * planned at every call, or one kept on a plan made for no
	 * parameters), so the worker keeps the default.
	 */
	SetConfigOption("plan_cache_mode", "auto", PGC_USERSET, PGC_S_OVERRIDE);

	/*
	 * A long-running process whose cycles peak at a few MB (a batch, its SPI
	 * results, request bodies) and then free it all.  glibc's default raises
	 * its mmap threshold after the first large free, so later large blocks
	 * come from the heap and leave it fragmented and grown; a fixed
	 * threshold keeps large blocks in mmap, handed back when freed.  One
	 * arena: the only other threads are libcurl's resolver threads.
	 */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
	mallopt(M_ARENA_MAX, 1);

	cycle_cxt = AllocSetContextCreate(TopMemoryContext, "sales_api worker cycle",
									  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		TimestampTz now;

		long		wait_ms = sales_api_worker_naptime_ms;
		bool		stats_pending;
		bool		busy = false;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (!RecoveryInProgress())
		{
			MemoryContextSwitchTo(cycle_cxt);
			busy = worker_cycle_guarded(cycle_cxt, &wait_ms);
			worked_since_trim = true;
			MemoryContextSwitchTo(TopMemoryContext);
			MemoryContextReset(cycle_cxt);

			now = GetCurrentTimestamp();
			if (sales_api_reconcile_interval_ms > 0 &&
				now >= next_reconcile_at)
			{
				worker_reconcile_start();
				next_reconcile_at = now + (int64) sales_api_reconcile_interval_ms * 1000;
			}
			if (sales_api_reconcile_interval_ms > 0)
				wait_ms = Min(wait_ms, Max(1, (long) ((next_reconcile_at - now) / 1000)));
		}
		pgstat_report_activity(STATE_IDLE, NULL);

		/*
		 * The worker's table statistics (its inserts, updates and deletes of
		 * the outbox): autovacuum decides by them, and a background worker
		 * has no postgres.c idle loop to send them, so until 0.8.0 they went
		 * only when the worker exited and autovacuum never saw the outbox
		 * change.  As that loop: at most once a second while it works, and
		 * what is still pending is sent, forced, after a second of rest.
		 */
		stats_pending = pgstat_report_stat(false) > 0;

		if (!busy && outbox_sending())
		{
			/* requests in flight: wait for them, or for a sale to send */
			outbox_wait(Max(wait_ms, 1));
		}
		else if (!busy)
		{
			/* DROP EXTENSION: the slot goes back to the launcher */
			if (!extension_installed())
				worker_exit_not_installed();
			/*
			 * Going idle after work: hand the free memory of the last cycles
			 * back to the kernel (at most once a second; it walks the heap,
			 * well under a millisecond for the few MB a worker holds).  Every
			 * 10 s was too seldom: a drain of 100,000 sales every 8.5 s kept
			 * 13.5 MB of freed blocks every other time it went idle.
			 */
			now = GetCurrentTimestamp();
			if (worked_since_trim && now - last_trim_at >= USECS_PER_SEC)
			{
				malloc_trim(0);
				last_trim_at = now;
				worked_since_trim = false;
			}
			if (stats_pending && wait_ms > STATS_REST_MS &&
				!(WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							STATS_REST_MS, PG_WAIT_EXTENSION) & WL_LATCH_SET))
			{
				pgstat_report_stat(true);
				wait_ms -= STATS_REST_MS;
			}
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Max(wait_ms, 1), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			outbox_want_claim();
		}
	}
}
