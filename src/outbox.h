/*-------------------------------------------------------------------------
 *
 * outbox.h
 *		One cycle of the worker over the outbox (outbox.c): the items a cycle
 *		claimed, what became of them, and the helpers the vendors' parts of
 *		the cycle (outbox_connecteam.c, outbox_mapal.c) share.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_OUTBOX_H
#define SALES_API_OUTBOX_H

#include "postgres.h"

#include "executor/spi.h"

#include "connecteam_wire.h"
#include "http.h"
#include "mapal_wire.h"
#include "mapping.h"
#include "outbox_states.h"
#include "ratelimit.h"
#include "sales_api.h"
#include "server.h"

#define OUTBOX_STMT_MAX_ARGS 12

/* tid Datums (PostgreSQL 15's headers have no macros for them) */
#define OutboxDatumGetTid(d) ((ItemPointer) DatumGetPointer(d))
#define OutboxTidGetDatum(p) PointerGetDatum(p)

/* A fixed statement: prepared on its first run, kept for the backend's life */
typedef struct OutboxStmt
{
	const char *sql;
	int			nargs;
	Oid			types[OUTBOX_STMT_MAX_ARGS];
	/*
	 * Always the generic plan: for a statement run at every claim whose
	 * parameters (arrays, a limit) change nothing in its plan, so that the
	 * plan cache does not plan it again at each call because a custom plan
	 * looks cheaper than the generic one.
	 */
	bool		generic;
	SPIPlanPtr	plan;
} OutboxStmt;

/* A capture with work in the cycle, and the credentials it sends with */
typedef struct OutboxCapture
{
	int			id;
	Oid			server_id;
	Oid			run_as;
	SalesApiVendor vendor;
	CaptureDef *def;			/* its mapping, loaded when a statement needs it */
	SalesApiServer *srv;
	char	   *srv_error;
	bool		locked;			/* this worker holds its lane's lock */
	bool		probe;			/* its circuit admitted a probe: a few items */
	bool		extra;			/* claimed for a second job: plain posts only */
	char	   *bind_error;		/* its OID and name name two servers: not
								 * served (load_captures()) */
	char	   *shares_server;	/* the other tables captured for its server,
								 * whose sales a window replacement would
								 * delete at the vendor; NULL: none */
	int			ct_claimed;		/* items the last Connecteam claim statement took */
} OutboxCapture;

/* One claimed item and what became of it */
typedef struct OutboxItem
{
	int64		id;				/* 0: a leased staged sale, no item yet */
	bool		leased;			/* claimed as a sale of a leased staged row: */
	ItemPointerData lease_tid;	/* ... the row, as leased */
	int			lease_ord;		/* ... the sale's place in it, from 1 */
	TimestampTz lease_until;	/* ... its lease */
	bool		lease_lost;		/* ... not found where it was leased: left to expire */
	bool		lease_done;		/* ... recorded: its item inserted from the row */
	OutboxKind	kind;
	OutboxCapture *cap;
	int			claim_pos;		/* its place in the claim */
	int			attempts;
	bool		ambiguous;		/* claimed as a post the vendor may hold */
	char	   *sale_key;
	/* Connecteam */
	CtTx		txn;
	bool		txn_valid;
	char	   *transaction_id; /* deletes: the version the vendor holds */
	int64		window_start;	/* ct_window: Unix seconds, inclusive */
	int64		window_end;
	/* Mapal */
	MapalSale	slot;
	bool		slot_valid;
	bool		totals_loaded;
	/* what happened: outbox_decide() makes it the next state */
	OutboxOutcome out;
} OutboxItem;

/* A Connecteam location's window to replace (ambiguous posts, repairs) */
typedef struct OutboxWindow
{
	OutboxCapture *cap;
	int64		location_id;
	int64		start_epoch;
	int64		end_epoch;
	List	   *items;			/* OutboxItem * settled by this window */
	int			nlocal;
	CtTx	   *local;			/* every local sale of the window */
	bool		ok;
	bool		deleted;		/* deleted at the vendor, whatever became of its reposts */
	int64		guard_id;		/* the ct_window item that replaces it again if it fails, or 0 */
	bool		unread;			/* its local sales could not be read: not sent */
	char	   *error;
	int			http_status;
	char	  **ids;			/* transactionIds of local[], once posted */
} OutboxWindow;

typedef struct OutboxCycle
{
	MemoryContext cxt;			/* outlives the cycle's transactions */
	List	   *captures;		/* OutboxCapture * */
	OutboxItem *items;
	int			nitems;
	List	   *windows;		/* OutboxWindow * */
	bool		more;			/* a claim was full: go again at once */
	TimestampTz next_due;
	Datum		skip;			/* int4[]: captures not to claim for (busy or waiting lanes) */
	int64		expanded;		/* items this claim made of staged sales */
	bool		mapal;			/* a Mapal capture exists: staged slots may wait */
	Datum		extra;			/* int4[]: captures claimed for plain posts only */
	/* the Connecteam lanes a claim takes items of: capture, most items, plain posts only */
	int			ct_nlanes;
	Datum	   *ct_lane_cap;
	Datum	   *ct_lane_lim;
	Datum	   *ct_lane_extra;
	Datum		busy;			/* int4[]: captures whose leases are not taken back */
} OutboxCycle;

/*
 * A job: one capture's claimed items, sent as a sequence of phases (each a
 * set of requests run by the rate-limit engine without ever waiting for a
 * budget), recorded when the last phase is done.  Jobs of different
 * captures are in flight at the same time on the HTTP core's multi handle.
 */
typedef struct OutboxJob OutboxJob;
typedef struct OutboxPhase OutboxPhase;
typedef void (*OutboxPhaseDone) (OutboxJob *job, OutboxPhase *ph);

struct OutboxPhase
{
	HttpRequest **reqs;
	int			n;
	int			flags;			/* RL_* of ratelimit_run_start() */
	OutboxPhaseDone done;		/* reads the answers into outcomes */
	void	   *arg;
	RateLimitRun *run;
};

struct OutboxJob
{
	OutboxCycle *c;				/* the job's items and windows */
	OutboxCapture *cap;
	List	   *phases;			/* OutboxPhase *, run in order */
	int			next;			/* index of the phase running */
	bool		extra;			/* its lane's second job (plain posts) */
	struct AuthResult *auth_failed; /* no token could be had: its later phases go without */
	struct OutboxClaim *claim;	/* whose memory the job lives in */
};

extern void outbox_warm(OutboxStmt *const *stmts, int n);
extern int	outbox_execute(OutboxStmt *stmt, Datum *values, const char *nulls,
						   bool read_only, long count);
extern OutboxItem *outbox_add_items(OutboxCycle *c, uint64 n);
extern OutboxCapture *outbox_capture(OutboxCycle *c, int id);
extern void outbox_leased_keys(OutboxCycle *c, bool wanted, Datum *captures, Datum *keys);
extern Datum outbox_array_with_nulls(Datum *elems, bool *nulls, int n, Oid type, int len,
									 bool byval, char align);
extern bool outbox_read_pos(OutboxCycle *c, OutboxCapture *cap, MappingStmt stmt, int nargs,
							Oid *types, Datum *values, char **error);
extern char *outbox_spi_str(HeapTuple tup, TupleDesc td, int col, MemoryContext cxt);
extern int64 outbox_spi_int64(HeapTuple tup, TupleDesc td, int col, bool *isnull);
extern List *outbox_append(MemoryContext cxt, List *list, void *datum);
extern void outbox_note_requests(HttpRequest **reqs, int n);
extern void outbox_job_add_phase(OutboxJob *job, bool next, HttpRequest **reqs, int n,
								 int flags, OutboxPhaseDone done, void *arg);
extern bool outbox_step(MemoryContext cycle_cxt, long *wait_ms);
extern bool outbox_sending(void);
extern void outbox_wait(long wait_ms);
extern void outbox_want_claim(void);
extern void outbox_abort(void);

#endif							/* SALES_API_OUTBOX_H */
