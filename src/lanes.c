/*-------------------------------------------------------------------------
 *
 * lanes.c
 *		The lanes of the cluster in shared memory: each destination's circuit
 *		breaker, jobs and requests in flight, request counters by outcome,
 *		last error and why it waits; the settings of the circuit; and
 *		sales_api.lane_state(), the lanes of the current database.
 *
 * Design note.  A lane is (database, server, run_as): one vendor account as
 * one database's worker reaches it.  The worker runs each lane's work as a
 * job of its own, so one lane whose vendor is down must not hold up the
 * others, nor be hammered while it is down: the circuit breaker (lanes.h
 * says its rules) stops a lane after a few failed jobs and lets one probe
 * job through once the open time has passed.  The state is kept here, not
 * in the worker's memory, so that it outlives a worker's restart and any
 * session can show it (lane_state(), and the lane_status view over it).
 *
 *	- One fixed table of LANES_MAX lanes and one LWLock, as ratelimit.c keeps
 *	  the budgets: the lock is held for the arithmetic only.  A new lane takes
 *	  a free entry, else the entry of the idle lane (no job or probe in
 *	  flight) unused the longest.  Were every entry busy, the new lane goes
 *	  without bookkeeping: it is admitted, and nothing is counted.
 *	- In-flight counts belong to the process that started the jobs: a
 *	  process exit (a worker stopped or failed mid-job) gives them back, and
 *	  a probe it held, so a lane is never stuck half-open behind a probe
 *	  that will not come back.
 *	- Errors are short text the caller already made safe to show (vendor
 *	  messages without headers); they are cut here and their control
 *	  characters blanked, and lane_state() shows them only to roles with the
 *	  privileges of pg_read_all_stats, as pg_stat_activity shows queries.
 *
 * Without shared_preload_libraries there is no table: lanes_admit() admits
 * and the other calls do nothing (only the worker calls them, and it exists
 * only when preloaded).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "common/pg_prng.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "lanes.h"
#include "sales_api.h"

PG_FUNCTION_INFO_V1(sales_api_lane_state);

int			sales_api_circuit_failures = 3;
int			sales_api_circuit_open_time_ms = 10000;

/* a half-open lane's probe, admitted but never started, is given up after this */
#define LANES_PROBE_STALE_MS	60000

typedef struct Lane
{
	/* the key */
	Oid			dbid;
	Oid			server_id;
	Oid			run_as;
	bool		used;
	TimestampTz last_used;

	/* the circuit */
	int			circuit;		/* LaneCircuit */
	int			consecutive_failures;	/* failed jobs since the last success */
	TimestampTz failing_since;	/* the first of them */
	int			openings;		/* consecutive openings, for the doubling */
	TimestampTz open_until;
	TimestampTz quarantine_until;	/* lanes_quarantine(): no claim before */
	int			quarantines;	/* ... stops in a row, for the doubling */
	uint64		opened;			/* times opened */
	bool		probe_held;		/* half-open: the probe was given */
	TimestampTz probe_at;

	/* in flight, owned by the process that started the jobs */
	int			jobs_in_flight;
	int			requests_in_flight;
	int			owner_pid;

	/* counters since the cluster started (or the lane took this entry) */
	uint64		jobs;
	uint64		requests;
	uint64		requests_ok;
	uint64		transport_errors;
	uint64		timeouts;
	uint64		server_errors;
	uint64		client_errors;
	uint64		rate_limited;

	int			last_status;
	TimestampTz last_error_at;
	TimestampTz last_success_at;
	TimestampTz last_job_at;
	char		last_error[LANES_ERROR_LEN];

	/* what the worker says the lane waits for */
	char		waiting[LANES_WAITING_LEN];
	TimestampTz waiting_until;
} Lane;

typedef struct LanesShared
{
	Lane		lanes[LANES_MAX];
} LanesShared;

static LanesShared *lanes_shared = NULL;
static LWLock *lanes_lock = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool exit_registered = false;

static void
lanes_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(LanesShared)));
	RequestNamedLWLockTranche("sales_api lanes", 1);
}

static void
lanes_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	lanes_shared = ShmemInitStruct("sales_api lanes", sizeof(LanesShared), &found);
	if (!found)
		memset(lanes_shared, 0, sizeof(LanesShared));
	lanes_lock = &(GetNamedLWLockTranche("sales_api lanes"))->lock;
	LWLockRelease(AddinShmemInitLock);
}

void
lanes_init(void)
{
	DefineCustomIntVariable("sales_api.circuit_failures",
							"Consecutive failed jobs after which the worker stops sending to a lane for a while; 0: never.",
							"A job fails when none of its requests succeeded and at least one met a transport error, a timeout or a 5xx. "
							"Refusals (4xx) and 429s never count.",
							&sales_api_circuit_failures, 3, 0, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("sales_api.circuit_open_time",
							"How long an open circuit keeps a lane from sending before one probe job is let through.",
							"Doubled at each consecutive opening, up to 5 minutes (or this setting, if longer), plus up to a quarter more at random.",
							&sales_api_circuit_open_time_ms, 10000, 1, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = lanes_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = lanes_shmem_startup;
}

static TimestampTz
after_ms(TimestampTz t, int64 ms)
{
	return t + ms * (TimestampTz) 1000;
}

/*
 * The lane's entry, with lanes_lock held exclusively; a new lane takes a
 * free entry or the idle one unused the longest.  NULL (and the lock not
 * held) without shared memory or when every entry is busy.
 */
static Lane *
lane_lock(Oid server_id, Oid run_as, TimestampTz now)
{
	Lane	   *victim = NULL;

	if (lanes_shared == NULL)
		return NULL;
	LWLockAcquire(lanes_lock, LW_EXCLUSIVE);
	for (int i = 0; i < LANES_MAX; i++)
	{
		Lane	   *l = &lanes_shared->lanes[i];

		if (l->used && l->dbid == MyDatabaseId && l->server_id == server_id && l->run_as == run_as)
		{
			l->last_used = now;
			return l;
		}
		if (!l->used)
		{
			if (victim == NULL || victim->used)
				victim = l;
		}
		else if (l->jobs_in_flight == 0 && !l->probe_held &&
				 (victim == NULL || (victim->used && l->last_used < victim->last_used)))
			victim = l;
	}
	if (victim == NULL)
	{
		LWLockRelease(lanes_lock);
		return NULL;
	}
	memset(victim, 0, sizeof(Lane));
	victim->used = true;
	victim->dbid = MyDatabaseId;
	victim->server_id = server_id;
	victim->run_as = run_as;
	victim->last_used = now;
	victim->circuit = LANE_CLOSED;
	return victim;
}

static void
lane_unlock(void)
{
	LWLockRelease(lanes_lock);
}

/* circuit_open_time * 2^(openings-1), capped, plus up to a quarter more */
static int64
open_time_ms(int openings)
{
	int64		base = sales_api_circuit_open_time_ms;
	int64		cap = Max(base, (int64) LANES_OPEN_TIME_CAP_MS);
	int64		ms = base;

	for (int i = 1; i < openings && ms < cap; i++)
		ms *= 2;
	ms = Min(ms, cap);
	return ms + (int64) (ms * 0.25 * pg_prng_double(&pg_global_prng_state));
}

static void
lane_open(Lane *l, TimestampTz now)
{
	l->openings++;
	l->opened++;
	l->circuit = LANE_OPEN;
	l->open_until = after_ms(now, open_time_ms(l->openings));
	l->probe_held = false;
}

static void
lane_close(Lane *l)
{
	l->circuit = LANE_CLOSED;
	l->consecutive_failures = 0;
	l->failing_since = 0;
	l->openings = 0;
	l->open_until = 0;
	l->probe_held = false;
}

bool
lanes_admit(Oid server_id, Oid run_as, TimestampTz now, bool *probe, TimestampTz *until)
{
	Lane	   *l;
	bool		admit = true;
	bool		is_probe = false;
	TimestampTz wait = 0;

	l = lane_lock(server_id, run_as, now);
	if (l != NULL)
	{
		if (now < l->quarantine_until)
		{
			/* stopped the worker (lanes_quarantine()): whatever the circuit's settings */
			admit = false;
			wait = l->quarantine_until;
		}
		else if (sales_api_circuit_failures == 0)
		{
			/* the circuit is off: whatever it was, it is closed */
			if (l->circuit != LANE_CLOSED)
				lane_close(l);
		}
		else if (l->circuit == LANE_OPEN)
		{
			if (now < l->open_until)
			{
				admit = false;
				wait = l->open_until;
			}
			else
			{
				l->circuit = LANE_HALF_OPEN;
				l->probe_held = false;
			}
		}
		if (admit && l->circuit == LANE_HALF_OPEN)
		{
			/* a probe given but never started, by a process long gone or that forgot it */
			if (l->probe_held && l->jobs_in_flight == 0 &&
				now >= after_ms(l->probe_at, LANES_PROBE_STALE_MS))
				l->probe_held = false;
			if (l->probe_held)
			{
				admit = false;
				wait = Max(after_ms(now, 100),
						   after_ms(l->probe_at, sales_api_request_timeout_ms));
			}
			else
			{
				l->probe_held = true;
				l->probe_at = now;
				is_probe = true;
			}
		}
		lane_unlock();
	}
	if (probe)
		*probe = is_probe;
	if (until)
		*until = wait;
	return admit;
}

static void copy_text(char *dst, size_t size, const char *src);

/*
 * Open the lane's circuit now, for the doubling open time, with why as its
 * last error: the worker was stopped because something of the lane's (a
 * capture's mapping) would not end, and its claims would only start it
 * again.  After the open time one probe job tries again.  Called from the
 * stopped worker's exit callback.
 */
void
lanes_quarantine(Oid server_id, Oid run_as, const char *why)
{
	TimestampTz now = GetCurrentTimestamp();
	char		err[LANES_ERROR_LEN];
	Lane	   *l;

	copy_text(err, sizeof(err), why);
	l = lane_lock(server_id, run_as, now);
	if (l == NULL)
		return;
	lane_open(l, now);
	/*
	 * Kept apart from the circuit, which sales_api.circuit_failures = 0
	 * turns off and a closing resets: doubling with each stop until a job
	 * of the lane succeeds
	 */
	l->quarantines++;
	l->quarantine_until = after_ms(now, open_time_ms(l->quarantines));
	l->open_until = Max(l->open_until, l->quarantine_until);
	l->last_error_at = now;
	memcpy(l->last_error, err, sizeof(err));
	lane_unlock();
}

void
lanes_probe_cancel(Oid server_id, Oid run_as)
{
	Lane	   *l = lane_lock(server_id, run_as, GetCurrentTimestamp());

	if (l == NULL)
		return;
	if (l->circuit == LANE_HALF_OPEN)
		l->probe_held = false;
	lane_unlock();
}

/*
 * At the exit of a process that started jobs: what it had in flight is not
 * in flight any more, and a probe it held may be given again.
 */
static void
lanes_exit(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	if (lanes_shared == NULL)
		return;
	LWLockAcquire(lanes_lock, LW_EXCLUSIVE);
	for (int i = 0; i < LANES_MAX; i++)
	{
		Lane	   *l = &lanes_shared->lanes[i];

		if (l->used && l->owner_pid == MyProcPid)
		{
			l->jobs_in_flight = 0;
			l->requests_in_flight = 0;
			l->owner_pid = 0;
			l->probe_held = false;
			if (strcmp(l->waiting, LANE_WAIT_SENDING) == 0)
				l->waiting[0] = '\0';
		}
	}
	LWLockRelease(lanes_lock);
}

void
lanes_job_start(Oid server_id, Oid run_as, int nrequests)
{
	TimestampTz now = GetCurrentTimestamp();
	Lane	   *l;

	if (lanes_shared != NULL && !exit_registered)
	{
		on_shmem_exit(lanes_exit, (Datum) 0);
		exit_registered = true;
	}
	l = lane_lock(server_id, run_as, now);
	if (l == NULL)
		return;
	l->jobs_in_flight++;
	l->requests_in_flight += Max(nrequests, 0);
	l->owner_pid = MyProcPid;
	l->last_job_at = now;
	lane_unlock();
}

/* src, cut to fit dst on a character boundary, control characters as spaces */
static void
copy_text(char *dst, size_t size, const char *src)
{
	int			len = strlen(src);

	if (len > (int) size - 1)
		len = pg_mbcliplen(src, len, (int) size - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
	for (char *p = dst; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			*p = ' ';
}

void
lanes_job_done(Oid server_id, Oid run_as, const LaneJobResult *r)
{
	TimestampTz now = GetCurrentTimestamp();
	Lane	   *l;
	int			outage;
	int			made;
	char		err[LANES_ERROR_LEN];

	err[0] = '\0';
	/* outside the lock: pg_mbcliplen may complain of a bad string */
	if (r->last_error != NULL)
		copy_text(err, sizeof(err), r->last_error);

	l = lane_lock(server_id, run_as, now);
	if (l == NULL)
		return;
	outage = Max(r->ntransport, 0) + Max(r->ntimeout, 0) + Max(r->n5xx, 0);
	made = outage + Max(r->nok, 0) + Max(r->n4xx, 0) + Max(r->n429, 0);

	l->jobs_in_flight = Max(l->jobs_in_flight - 1, 0);
	l->requests_in_flight = Max(l->requests_in_flight - Max(r->nrequests, 0), 0);
	if (l->jobs_in_flight == 0)
	{
		l->requests_in_flight = 0;
		l->owner_pid = 0;
	}
	l->jobs++;
	l->last_job_at = now;
	l->requests += made;
	l->requests_ok += Max(r->nok, 0);
	l->transport_errors += Max(r->ntransport, 0);
	l->timeouts += Max(r->ntimeout, 0);
	l->server_errors += Max(r->n5xx, 0);
	l->client_errors += Max(r->n4xx, 0);
	l->rate_limited += Max(r->n429, 0);
	if (r->last_status > 0)
		l->last_status = r->last_status;
	if (r->last_error != NULL)
	{
		strlcpy(l->last_error, err, sizeof(l->last_error));
		l->last_error_at = now;
	}
	if (r->nok > 0)
	{
		l->last_success_at = now;
		l->quarantines = 0;		/* its mappings ran: the next stop starts the doubling again */
	}

	if (sales_api_circuit_failures == 0)
	{
		if (l->circuit != LANE_CLOSED)
			lane_close(l);
	}
	else if (made == 0)
	{
		/* nothing reached the vendor: the probe, if it was one, may go again */
		if (l->circuit == LANE_HALF_OPEN)
			l->probe_held = false;
	}
	else if (r->nok > 0)
		lane_close(l);
	else if (outage > 0)
	{
		if (l->consecutive_failures++ == 0)
			l->failing_since = now;

		/*
		 * A job that began before the circuit opened does not open it again.
		 * A burst of errors shorter than circuit_open_time does not open it
		 * at all: the items' own backoff rides that out, and a probe would
		 * only wait longer.
		 */
		if (l->circuit == LANE_HALF_OPEN ||
			(l->circuit == LANE_CLOSED && l->consecutive_failures >= sales_api_circuit_failures &&
			 now >= after_ms(l->failing_since, sales_api_circuit_open_time_ms)))
			lane_open(l, now);
	}
	else if (l->circuit == LANE_HALF_OPEN)
	{
		/* refused or rate limited: the vendor answers, but nothing proved it works; probe again */
		l->probe_held = false;
	}
	lane_unlock();
}

void
lanes_set_waiting(Oid server_id, Oid run_as, const char *why, TimestampTz until)
{
	char		w[LANES_WAITING_LEN];
	Lane	   *l;

	w[0] = '\0';
	if (why != NULL)
		copy_text(w, sizeof(w), why);
	l = lane_lock(server_id, run_as, GetCurrentTimestamp());
	if (l == NULL)
		return;
	strlcpy(l->waiting, w, sizeof(l->waiting));
	l->waiting_until = (why != NULL) ? until : 0;
	lane_unlock();
}

static const char *
circuit_name(int c)
{
	switch ((LaneCircuit) c)
	{
		case LANE_OPEN:
			return "open";
		case LANE_HALF_OPEN:
			return "half_open";
		default:
			return "closed";
	}
}

#define LANE_STATE_COLS 25

/*
 * lane_state(): the lanes of this database in shared memory, one row each.
 * Read under a shared lock into local memory first; names are looked up
 * after.  last_error only for roles with the privileges of
 * pg_read_all_stats (superusers, pg_monitor), as pg_stat_activity's query.
 */
Datum
sales_api_lane_state(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Lane	   *copy;
	int			n = 0;
	bool		see_errors = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	InitMaterializedSRF(fcinfo, 0);
	if (lanes_shared == NULL)
		return (Datum) 0;

	copy = palloc(sizeof(Lane) * LANES_MAX);
	LWLockAcquire(lanes_lock, LW_SHARED);
	for (int i = 0; i < LANES_MAX; i++)
	{
		Lane	   *l = &lanes_shared->lanes[i];

		if (l->used && l->dbid == MyDatabaseId)
			copy[n++] = *l;
	}
	LWLockRelease(lanes_lock);

	for (int i = 0; i < n; i++)
	{
		Lane	   *l = &copy[i];
		Datum		values[LANE_STATE_COLS];
		bool		nulls[LANE_STATE_COLS];
		ForeignServer *fs = GetForeignServerExtended(l->server_id, FSV_MISSING_OK);
		int			c = 0;

		memset(nulls, 0, sizeof(nulls));
#define TS_OR_NULL(ts) do { if (ts) values[c++] = TimestampTzGetDatum(ts); else nulls[c++] = true; } while (0)
#define TEXT_OR_NULL(s) do { if ((s)[0]) values[c++] = CStringGetTextDatum(s); else nulls[c++] = true; } while (0)
		values[c++] = ObjectIdGetDatum(l->server_id);
		if (fs != NULL)
			values[c++] = DirectFunctionCall1(namein, CStringGetDatum(fs->servername));
		else
			nulls[c++] = true;
		values[c++] = ObjectIdGetDatum(l->run_as);
		values[c++] = CStringGetTextDatum(circuit_name(l->circuit));
		if (l->circuit == LANE_OPEN)
			values[c++] = TimestampTzGetDatum(l->open_until);
		else
			nulls[c++] = true;
		values[c++] = Int32GetDatum(l->consecutive_failures);
		values[c++] = Int64GetDatum((int64) l->opened);
		values[c++] = BoolGetDatum(l->circuit == LANE_HALF_OPEN && l->probe_held);
		values[c++] = Int32GetDatum(l->jobs_in_flight);
		values[c++] = Int32GetDatum(l->requests_in_flight);
		values[c++] = Int64GetDatum((int64) l->jobs);
		values[c++] = Int64GetDatum((int64) l->requests);
		values[c++] = Int64GetDatum((int64) l->requests_ok);
		values[c++] = Int64GetDatum((int64) l->transport_errors);
		values[c++] = Int64GetDatum((int64) l->timeouts);
		values[c++] = Int64GetDatum((int64) l->server_errors);
		values[c++] = Int64GetDatum((int64) l->client_errors);
		values[c++] = Int64GetDatum((int64) l->rate_limited);
		if (l->last_status > 0)
			values[c++] = Int32GetDatum(l->last_status);
		else
			nulls[c++] = true;
		if (see_errors)
			TEXT_OR_NULL(l->last_error);
		else
			nulls[c++] = true;
		TS_OR_NULL(l->last_error_at);
		TS_OR_NULL(l->last_success_at);
		TS_OR_NULL(l->last_job_at);
		TEXT_OR_NULL(l->waiting);
		if (l->waiting[0])
			TS_OR_NULL(l->waiting_until);
		else
			nulls[c++] = true;
#undef TS_OR_NULL
#undef TEXT_OR_NULL
		Assert(c == LANE_STATE_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(copy);
	return (Datum) 0;
}
