/*-------------------------------------------------------------------------
 *
 * worker.h
 *		The background worker that drains the outbox (worker.c), its shared
 *		memory (figures, the latch to wake it) and its settings.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_WORKER_H
#define SALES_API_WORKER_H

#include "postgres.h"

#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#define WORKER_LATENCY_SAMPLES 1024

/* a worker slot's state (launcher.c) */
typedef enum WorkerState
{
	WS_FREE = 0,
	WS_STARTING,				/* started by the launcher, not yet connected */
	WS_RUNNING,
	WS_NOT_INSTALLED			/* found no sales_api in its database, exiting */
} WorkerState;

/* One database worker's slot in shared memory, with its live figures */
typedef struct WorkerShared
{
	slock_t		mutex;
	int			state;			/* WorkerState */
	Latch	   *latch;			/* the running worker's latch, NULL if none */
	pid_t		pid;
	Oid			dbid;			/* the database it drains */
	int			member;			/* which of its database's workers (0-based) */
	TimestampTz started_at;
	TimestampTz last_cycle_at;
	TimestampTz last_success_at;
	uint64		cycles;
	uint64		requests;
	uint64		items_sent;
	uint64		items_failed;
	uint64		items_dead;
	uint64		retries;
	uint64		rate_limited;	/* 429s received */
	uint64		ambiguous;
	uint64		rate_waits;		/* times the worker paced itself */
	int			nlatency;		/* samples in the ring, up to WORKER_LATENCY_SAMPLES */
	int			latency_pos;
	float4		latency_ms[WORKER_LATENCY_SAMPLES];
} WorkerShared;

/* this worker's slot; NULL in every other process */
extern WorkerShared *worker_shared;

extern void worker_wake_on_commit(void);
extern bool launcher_this_database_selected(void);
extern void worker_wake_others(void);

/* settings */
extern char *sales_api_database;
extern bool sales_api_worker_enabled;
extern int	sales_api_worker_naptime_ms;
extern int	sales_api_batch_size;
extern int	sales_api_lease_ms;
extern int	sales_api_max_attempts;
extern int	sales_api_retry_base_ms;
extern int	sales_api_retry_max_ms;
extern int	sales_api_ambiguous_policy;
extern int	sales_api_sent_retention_ms;
extern int	sales_api_ambiguous_settle_ms;
extern int	sales_api_reconcile_interval_ms;
extern int	sales_api_reconcile_days;
extern int	sales_api_reconcile_grace_ms;
extern int	sales_api_reconcile_retention_s;
extern char *sales_api_reconcile_timezone;
extern int	sales_api_mapping_timeout_ms;

#define AMBIGUOUS_REPLACE_WINDOW 0
#define AMBIGUOUS_PARK 1

extern void worker_init(void);
extern void worker_note_request(double ms, long status);

/* launcher.c */
extern int	sales_api_max_workers;
extern int	sales_api_launcher_naptime_ms;
extern int	sales_api_workers_per_database;

extern void launcher_init(void);
extern void sales_api_bgw_init(BackgroundWorker *bgw, const char *function, const char *type);
extern WorkerShared *launcher_slot_for(Oid dbid);
extern int	launcher_slots_for(Oid dbid, WorkerShared **slots, int max);
extern WorkerShared *launcher_slot(int index);
extern void launcher_poke(Oid dbid);
extern char *launcher_served_note(Oid dbid, bool *served);

#endif							/* SALES_API_WORKER_H */
