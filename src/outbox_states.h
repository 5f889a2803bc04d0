/*-------------------------------------------------------------------------
 *
 * outbox_states.h
 *		The states and kinds of an outbox item, defined once, and the one
 *		function that decides an item's next state from what became of it
 *		(outbox_states.c).
 *
 * Every statement the C code runs names states and kinds through these
 * macros; the regression test 41_outbox_states compares the schema's CHECK
 * constraints, partial indexes, views and functions with
 * sales_api._outbox_states(), which returns the table of outbox_states.c.
 *
 * Who sets which state: pending, the capture trigger, the repairs and
 * retry_dead(); in_flight, the worker's claim; sent, failed, dead and
 * unknown, outbox_decide() (recording a cycle, or taking back an expired
 * lease); superseded, the capture trigger, for a version of a sale not sent
 * yet when a newer one comes.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_OUTBOX_STATES_H
#define SALES_API_OUTBOX_STATES_H

#include "postgres.h"

#include "http.h"

/* The states: the values of sales_api.outbox.state */
#define OUTBOX_PENDING		"pending"
#define OUTBOX_IN_FLIGHT	"in_flight"
#define OUTBOX_SENT			"sent"
#define OUTBOX_FAILED		"failed"
#define OUTBOX_DEAD			"dead"
#define OUTBOX_UNKNOWN		"unknown"
#define OUTBOX_SUPERSEDED	"superseded"
/* what sales_api.outbox_status shows for staged sales; no item has it */
#define OUTBOX_STAGED		"staged"

/* The kinds: the values of sales_api.outbox.kind */
#define OUTBOX_CT_POST		"ct_post"
#define OUTBOX_CT_DELETE	"ct_delete"
#define OUTBOX_CT_WINDOW	"ct_window"
#define OUTBOX_MAPAL_SLOT	"mapal_slot"

/* a name as an SQL literal in a statement's text: OUTBOX_SQL(OUTBOX_SENT) */
#define OUTBOX_SQL(name)	"'" name "'"

typedef enum OutboxState
{
	OS_PENDING,
	OS_IN_FLIGHT,
	OS_SENT,
	OS_FAILED,
	OS_DEAD,
	OS_UNKNOWN,
	OS_SUPERSEDED,
	OS_N
} OutboxState;

typedef enum OutboxKind
{
	KIND_CT_POST,
	KIND_CT_DELETE,
	KIND_CT_WINDOW,				/* repair: replace a location's window */
	KIND_MAPAL_SLOT,
	KIND_N
} OutboxKind;

/* One name of the table, with what it means */
typedef struct OutboxName
{
	const char *name;
	const char *meaning;
} OutboxName;

/*
 * What became of an item in a cycle: the input of outbox_decide().  The
 * sending code says what happened; outbox_decide() alone turns it into a
 * state, applying the settings (backoff, max attempts, ambiguous policy).
 */
typedef enum OutboxResult
{
	OUTBOX_NOT_TRIED = 0,		/* not sent in this cycle */
	OUTBOX_DONE,				/* the vendor took it, or nothing was left to do */
	OUTBOX_HELD,				/* the rate budget kept it back: no attempt spent */
	OUTBOX_TRANSIENT,			/* failed for now: a transport failure before the
								 * request was sent, a 5xx, 401, 403, 408, 429 */
	OUTBOX_PERMANENT,			/* can never succeed as it is: a 3xx or another
								 * 4xx, or a value the vendor cannot take */
	OUTBOX_MAYBE_STORED,		/* a post the vendor may or may not hold */
	OUTBOX_IN_WINDOW,			/* carried by a window to replace, not (yet)
								 * replaced */
	OUTBOX_WINDOW_REPLACED,		/* its window was replaced: the vendor holds
								 * exactly the local sales */
	OUTBOX_LEASE_EXPIRED		/* claimed by a worker that stopped before
								 * recording it */
} OutboxResult;

typedef struct OutboxOutcome
{
	OutboxResult result;
	int			http_status;	/* 0: none */
	int			retry_after_s;	/* the vendor's Retry-After; -1: none */
	TimestampTz held_until;		/* OUTBOX_HELD: when the budget allows again */
	char	   *vendor_ref;		/* Connecteam transactionId */
	char	   *error;
	const char *park;			/* OUTBOX_MAYBE_STORED: why it is parked
								 * whatever ambiguous_policy says */
} OutboxOutcome;

/* The next state of an item, as outbox_decide() says */
typedef struct OutboxNext
{
	OutboxState state;
	int64		delay_ms;		/* failed: the next attempt this long from now */
	bool		ambiguous;		/* the vendor may hold a version it has not
								 * confirmed: settle it before posting again */
	bool		attempt_back;	/* the attempt the claim counted was not spent */
	const char *error;			/* last_error */
} OutboxNext;

extern const OutboxName outbox_state_names[OS_N];
extern const OutboxName outbox_kind_names[KIND_N];

extern OutboxKind outbox_kind_from_name(const char *name);
extern OutboxNext outbox_decide(OutboxKind kind, int attempts, const OutboxOutcome *o);
extern bool outbox_replaces_windows(void);
extern void outbox_outcome_maybe_stored(OutboxOutcome *o);
extern void outbox_outcome_from_request(OutboxOutcome *o, const HttpRequest *req,
										bool non_idempotent);

#endif							/* SALES_API_OUTBOX_STATES_H */
