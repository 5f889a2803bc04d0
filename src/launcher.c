/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The launcher: one background worker that starts a database worker
 *		(worker.c) for every database of the cluster where sales_api is
 *		installed, within sales_api.max_workers, and the shared memory of
 *		their slots.
 *
 * Design note.  The launcher connects to no database (it reads the shared
 * catalog pg_database only), as TimescaleDB's cluster launcher does.  Each
 * sales_api.launcher_naptime it lists the databases sales_api.database
 * selects ('*': every database that accepts connections) and starts a
 * dynamic worker for each one that has none.  A worker that finds no
 * sales_api in its database says so in its slot and exits; the launcher
 * then leaves that database alone for a naptime.  So a CREATE EXTENSION
 * is served without a restart: at the next naptime, or at once when a
 * capture in that database commits (worker_wake_on_commit pokes the
 * launcher when no worker serves the database).  Workers are started with
 * BGW_NEVER_RESTART; the launcher restarts one that stopped, after a short
 * pause, as long as its database is still selected and has sales_api.
 *
 * The slots live in shared memory: worker_stats(), the wake-up on commit
 * and the worker's own figures all find a database's worker there.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "worker.h"

PGDLLEXPORT void sales_api_launcher_main(Datum main_arg);

/* how long a stopped worker waits before the launcher starts it again */
#define LAUNCHER_RESTART_MS 5000
/* databases poked at once (a capture committed where no worker serves) */
#define LAUNCHER_MAX_POKES 64

typedef struct LauncherShared
{
	slock_t		mutex;
	Latch	   *latch;			/* the launcher's, NULL when none runs */
	pid_t		pid;
	int			npoked;
	Oid			poked[LAUNCHER_MAX_POKES];
	int			nslots;
	WorkerShared slots[FLEXIBLE_ARRAY_MEMBER];
} LauncherShared;

static LauncherShared *launcher_shared = NULL;

int			sales_api_max_workers = 8;
int			sales_api_launcher_naptime_ms = 60000;
int			sales_api_workers_per_database = 1;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
launcher_shmem_size(void)
{
	return add_size(offsetof(LauncherShared, slots),
					mul_size(sizeof(WorkerShared), sales_api_max_workers));
}

static void
launcher_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(launcher_shmem_size()));
}

static void
launcher_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	launcher_shared = ShmemInitStruct("sales_api launcher", launcher_shmem_size(), &found);
	if (!found)
	{
		memset(launcher_shared, 0, launcher_shmem_size());
		SpinLockInit(&launcher_shared->mutex);
		launcher_shared->nslots = sales_api_max_workers;
		for (int i = 0; i < sales_api_max_workers; i++)
			SpinLockInit(&launcher_shared->slots[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * From _PG_init under shared_preload_libraries: the shared memory, and the
 * launcher itself unless the worker is turned off.
 */
void
launcher_init(void)
{
	BackgroundWorker bgw;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = launcher_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = launcher_shmem_startup;

	if (!sales_api_worker_enabled || IsBinaryUpgrade)
		return;
	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 5;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "sales_api");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "sales_api_launcher_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "sales_api launcher");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "sales_api launcher");
	RegisterBackgroundWorker(&bgw);
}

/* ------------------------------------------------------------------------
 * Slots, for every process
 * ------------------------------------------------------------------------
 */

/* The slot of the worker serving dbid (starting or running), or NULL. */
WorkerShared *
launcher_slot_for(Oid dbid)
{
	WorkerShared *w;

	return launcher_slots_for(dbid, &w, 1) == 1 ? w : NULL;
}

/* Every slot of a worker serving dbid (starting or running): up to max, how many. */
int
launcher_slots_for(Oid dbid, WorkerShared **slots, int max)
{
	int			n = 0;

	if (launcher_shared == NULL)
		return 0;
	for (int i = 0; i < launcher_shared->nslots && n < max; i++)
	{
		WorkerShared *w = &launcher_shared->slots[i];
		bool		match;

		SpinLockAcquire(&w->mutex);
		match = (w->dbid == dbid && (w->state == WS_STARTING || w->state == WS_RUNNING));
		SpinLockRelease(&w->mutex);
		if (match)
			slots[n++] = w;
	}
	return n;
}

WorkerShared *
launcher_slot(int index)
{
	Assert(launcher_shared != NULL && index >= 0 && index < launcher_shared->nslots);
	return &launcher_shared->slots[index];
}

/* Ask the launcher to look at dbid now (a capture committed there). */
void
launcher_poke(Oid dbid)
{
	Latch	   *latch;
	bool		known = false;

	if (launcher_shared == NULL)
		return;
	SpinLockAcquire(&launcher_shared->mutex);
	for (int i = 0; i < launcher_shared->npoked; i++)
		if (launcher_shared->poked[i] == dbid)
			known = true;
	if (!known && launcher_shared->npoked < LAUNCHER_MAX_POKES)
		launcher_shared->poked[launcher_shared->npoked++] = dbid;
	latch = launcher_shared->latch;
	SpinLockRelease(&launcher_shared->mutex);
	if (latch)
		SetLatch(latch);
}

/* Does sales_api.database select this database? */
static bool
database_selected(const char *name)
{
	return sales_api_database == NULL || strcmp(sales_api_database, "*") == 0 ||
		strcmp(sales_api_database, name) == 0;
}

/*
 * Does sales_api.database select the database this backend is connected
 * to?  Asked by a capture trigger before it asks for a wake-up at commit:
 * where no worker may ever serve the database, poking the launcher at
 * every commit would only cost the POS a kill() and the launcher a pass
 * over pg_database.  Remembered for the value of the setting it was
 * computed for (a reload may change it); the trigger runs in a
 * transaction, so the name is read from the catalog.
 */
bool
launcher_this_database_selected(void)
{
	static char *for_setting = NULL;
	static bool selected = false;
	const char *setting = sales_api_database ? sales_api_database : "";

	if (for_setting == NULL || strcmp(for_setting, setting) != 0)
	{
		char	   *name = get_database_name(MyDatabaseId);

		selected = name == NULL || database_selected(name);
		if (name != NULL)
			pfree(name);
		if (for_setting != NULL)
			pfree(for_setting);
		for_setting = MemoryContextStrdup(TopMemoryContext, setting);
	}
	return selected;
}

/*
 * Whether a worker serves dbid, and if not, why, in words for
 * worker_stats() and attach()'s warning.
 */
char *
launcher_served_note(Oid dbid, bool *served)
{
	WorkerShared *w = launcher_slot_for(dbid);
	char	   *name = get_database_name(dbid);
	int			used = 0;
	bool		launcher_running;

	*served = (w != NULL);
	if (w != NULL)
		return psprintf("served by the sales_api worker of database \"%s\"", name);
	if (launcher_shared == NULL)
		return pstrdup("not served: sales_api is not in shared_preload_libraries");
	if (!database_selected(name))
		return psprintf("not served: sales_api.database is '%s'", sales_api_database);
	SpinLockAcquire(&launcher_shared->mutex);
	launcher_running = (launcher_shared->latch != NULL);
	SpinLockRelease(&launcher_shared->mutex);
	if (!launcher_running)
		return pstrdup(sales_api_worker_enabled ?
					   "not served: the sales_api launcher is not running" :
					   "not served: sales_api.worker_enabled is off");
	for (int i = 0; i < launcher_shared->nslots; i++)
	{
		WorkerShared *s = &launcher_shared->slots[i];

		SpinLockAcquire(&s->mutex);
		if (s->state != WS_FREE)
			used++;
		SpinLockRelease(&s->mutex);
	}
	if (used >= launcher_shared->nslots)
		return psprintf("not served: all %d workers of sales_api.max_workers serve other databases",
						launcher_shared->nslots);
	return pstrdup("not served yet: the launcher starts this database's worker shortly");
}

/*
 * worker_served(): whether a worker serves this database (its slot is
 * assigned: starting or running), the flag of launcher_served_note()
 * without its words, for lane_status and the metrics.  False, not an
 * error, without shared_preload_libraries.
 */
PG_FUNCTION_INFO_V1(sales_api_worker_served);

Datum
sales_api_worker_served(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(launcher_slot_for(MyDatabaseId) != NULL);
}

/* ------------------------------------------------------------------------
 * The launcher process
 * ------------------------------------------------------------------------
 */
typedef struct DbInfo
{
	Oid			oid;
	char		name[NAMEDATALEN];
} DbInfo;

/* A database the launcher leaves alone until a time: no sales_api, or its worker just stopped. */
typedef struct DbMemo
{
	Oid			dbid;			/* hash key */
	TimestampTz not_before;
} DbMemo;

static BackgroundWorkerHandle **handles;
static HTAB *memo;

/* The databases sales_api.database selects, from pg_database. */
static List *
selected_databases(void)
{
	List	   *dbs = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext cxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		DbInfo	   *d;
		MemoryContext old;

		if (!db->datallowconn || db->datistemplate || !database_selected(NameStr(db->datname)))
			continue;
		old = MemoryContextSwitchTo(cxt);
		d = palloc(sizeof(DbInfo));
		d->oid = db->oid;
		strlcpy(d->name, NameStr(db->datname), NAMEDATALEN);
		dbs = lappend(dbs, d);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dbs;
}

/*
 * What every dynamic background worker of sales_api has in common: a
 * database connection, started after recovery, never restarted by the
 * postmaster (whoever starts it starts it again), this library's function
 * `function`, shown as `type`.  The caller names it, and sets its argument
 * and bgw_notify_pid.
 */
void
sales_api_bgw_init(BackgroundWorker *bgw, const char *function, const char *type)
{
	memset(bgw, 0, sizeof(*bgw));
	bgw->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw->bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw->bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(bgw->bgw_library_name, BGW_MAXLEN, "sales_api");
	snprintf(bgw->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(bgw->bgw_type, BGW_MAXLEN, "%s", type);
}

static bool
start_worker(int index, DbInfo *db, int member)
{
	BackgroundWorker bgw;
	WorkerShared *w = &launcher_shared->slots[index];
	MemoryContext old;

	sales_api_bgw_init(&bgw, "sales_api_worker_main", "sales_api worker");
	if (member == 0)
		snprintf(bgw.bgw_name, BGW_MAXLEN, "sales_api worker for %s", db->name);
	else
		snprintf(bgw.bgw_name, BGW_MAXLEN, "sales_api worker %d for %s", member + 1, db->name);
	bgw.bgw_main_arg = Int32GetDatum(index);
	memcpy(bgw.bgw_extra, &db->oid, sizeof(Oid));
	bgw.bgw_notify_pid = MyProcPid;

	SpinLockAcquire(&w->mutex);
	w->dbid = db->oid;
	w->member = member;
	w->state = WS_STARTING;
	w->pid = 0;
	w->latch = NULL;
	SpinLockRelease(&w->mutex);

	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&bgw, &handles[index]))
	{
		MemoryContextSwitchTo(old);
		handles[index] = NULL;
		SpinLockAcquire(&w->mutex);
		w->state = WS_FREE;
		w->dbid = InvalidOid;
		SpinLockRelease(&w->mutex);
		ereport(WARNING,
				(errmsg("sales_api launcher: could not start a worker for database \"%s\"", db->name),
				 errhint("Raise max_worker_processes: it must leave room for sales_api.max_workers workers and the launcher.")));
		return false;
	}
	MemoryContextSwitchTo(old);
	return true;
}

static void
memo_set(Oid dbid, TimestampTz not_before)
{
	bool		found;
	DbMemo	   *m = hash_search(memo, &dbid, HASH_ENTER, &found);

	m->not_before = not_before;
}

/* Workers that stopped give their slots back; a database without sales_api is left alone for a naptime. */
static void
reap_workers(TimestampTz now)
{
	for (int i = 0; i < launcher_shared->nslots; i++)
	{
		WorkerShared *w = &launcher_shared->slots[i];
		pid_t		pid;
		Oid			dbid;
		int			state;

		if (handles[i] == NULL)
			continue;
		if (GetBackgroundWorkerPid(handles[i], &pid) != BGWH_STOPPED)
			continue;
		pfree(handles[i]);
		handles[i] = NULL;
		SpinLockAcquire(&w->mutex);
		dbid = w->dbid;
		state = w->state;
		w->state = WS_FREE;
		w->dbid = InvalidOid;
		w->pid = 0;
		w->latch = NULL;
		SpinLockRelease(&w->mutex);
		memo_set(dbid, now + (int64) (state == WS_NOT_INSTALLED ? sales_api_launcher_naptime_ms
									   : LAUNCHER_RESTART_MS) * 1000);
	}
}

/* One pass: start what is missing, stop what is no longer selected; returns the next time to look. */
static TimestampTz
launcher_pass(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next = now + (int64) sales_api_launcher_naptime_ms * 1000;
	List	   *dbs;
	ListCell   *lc;
	int			npoked;
	Oid			poked[LAUNCHER_MAX_POKES];

	reap_workers(now);
	SpinLockAcquire(&launcher_shared->mutex);
	npoked = launcher_shared->npoked;
	memcpy(poked, launcher_shared->poked, sizeof(Oid) * npoked);
	launcher_shared->npoked = 0;
	SpinLockRelease(&launcher_shared->mutex);
	for (int i = 0; i < npoked; i++)
		hash_search(memo, &poked[i], HASH_REMOVE, NULL);

	dbs = selected_databases();
	/* workers of databases no longer selected (or dropped) stop */
	for (int i = 0; i < launcher_shared->nslots; i++)
	{
		WorkerShared *w = &launcher_shared->slots[i];
		Oid			dbid;
		bool		keep = false;

		int			member;

		if (handles[i] == NULL)
			continue;
		SpinLockAcquire(&w->mutex);
		dbid = w->dbid;
		member = w->member;
		SpinLockRelease(&w->mutex);
		foreach(lc, dbs)
			if (((DbInfo *) lfirst(lc))->oid == dbid)
				keep = true;
		/* and those beyond sales_api.workers_per_database after a reload */
		if (!keep || member >= sales_api_workers_per_database)
			TerminateBackgroundWorker(handles[i]);
	}
	foreach(lc, dbs)
	{
		DbInfo	   *db = lfirst(lc);
		DbMemo	   *m = hash_search(memo, &db->oid, HASH_FIND, NULL);
		bool		have[64] = {0};
		int			nmembers = Min(sales_api_workers_per_database, (int) lengthof(have));

		if (m != NULL && m->not_before > now)
		{
			next = Min(next, m->not_before);
			continue;
		}
		for (int i = 0; i < launcher_shared->nslots; i++)
		{
			WorkerShared *w = &launcher_shared->slots[i];

			SpinLockAcquire(&w->mutex);
			if (w->state != WS_FREE && w->dbid == db->oid && w->member < (int) lengthof(have))
				have[w->member] = true;
			SpinLockRelease(&w->mutex);
		}
		/* each member the database lacks, the first one first */
		for (int member = 0; member < nmembers; member++)
		{
			int			free_slot = -1;

			if (have[member])
				continue;
			for (int i = 0; i < launcher_shared->nslots && free_slot < 0; i++)
			{
				WorkerShared *w = &launcher_shared->slots[i];

				SpinLockAcquire(&w->mutex);
				if (w->state == WS_FREE && handles[i] == NULL)
					free_slot = i;
				SpinLockRelease(&w->mutex);
			}
			if (free_slot < 0)
			{
				ereport(LOG,
						(errmsg("sales_api launcher: no worker left for database \"%s\"", db->name),
						 errdetail("All %d workers of sales_api.max_workers are in use.",
								   launcher_shared->nslots),
						 errhint("Raise sales_api.max_workers (and max_worker_processes), lower sales_api.workers_per_database, or narrow sales_api.database.")));
				memo_set(db->oid, now + (int64) sales_api_launcher_naptime_ms * 1000);
				break;
			}
			if (start_worker(free_slot, db, member))
				hash_search(memo, &db->oid, HASH_REMOVE, NULL);
			else
			{
				memo_set(db->oid, now + (int64) LAUNCHER_RESTART_MS * 1000);
				break;
			}
		}
	}
	/* a restart pause ends before the naptime */
	{
		HASH_SEQ_STATUS status;
		DbMemo	   *m;

		hash_seq_init(&status, memo);
		while ((m = hash_seq_search(&status)) != NULL)
			if (m->not_before > now)
				next = Min(next, m->not_before);
	}
	list_free_deep(dbs);
	return next;
}

static void
launcher_shmem_exit(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	SpinLockAcquire(&launcher_shared->mutex);
	launcher_shared->latch = NULL;
	launcher_shared->pid = 0;
	SpinLockRelease(&launcher_shared->mutex);
}

void
sales_api_launcher_main(Datum main_arg pg_attribute_unused())
{
	HASHCTL		ctl;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* no database: pg_database is a shared catalog */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("sales_api launcher");

	handles = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(BackgroundWorkerHandle *) * launcher_shared->nslots);
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(DbMemo);
	ctl.hcxt = TopMemoryContext;
	memo = hash_create("sales_api launcher databases", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	/* slots of a launcher that died are free: its workers die with it or stop alone */
	for (int i = 0; i < launcher_shared->nslots; i++)
	{
		WorkerShared *w = &launcher_shared->slots[i];

		SpinLockAcquire(&w->mutex);
		if (w->pid == 0)
		{
			w->state = WS_FREE;
			w->dbid = InvalidOid;
		}
		SpinLockRelease(&w->mutex);
	}
	SpinLockAcquire(&launcher_shared->mutex);
	launcher_shared->latch = MyLatch;
	launcher_shared->pid = MyProcPid;
	SpinLockRelease(&launcher_shared->mutex);
	on_shmem_exit(launcher_shmem_exit, (Datum) 0);
	ereport(LOG, (errmsg("sales_api launcher started (sales_api.database = '%s', sales_api.max_workers = %d)",
						 sales_api_database, launcher_shared->nslots)));

	for (;;)
	{
		TimestampTz next;
		long		wait_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* a new selection is looked at now */
			{
				HASH_SEQ_STATUS status;
				DbMemo	   *m;

				hash_seq_init(&status, memo);
				while ((m = hash_seq_search(&status)) != NULL)
					hash_search(memo, &m->dbid, HASH_REMOVE, NULL);
			}
		}
		next = launcher_pass();
		pgstat_report_activity(STATE_IDLE, NULL);
		wait_ms = (long) Max((next - GetCurrentTimestamp()) / 1000, 10);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
