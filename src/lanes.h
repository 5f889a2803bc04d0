/*-------------------------------------------------------------------------
 *
 * lanes.h
 *		The lanes of the cluster (lanes.c): per destination, its circuit
 *		breaker, what it has in flight, its request counters, its last error
 *		and why it waits, in shared memory; the two circuit settings; and
 *		lane_state(), which shows the lanes of the current database.
 *
 * A lane is one destination of a database's outbox: a vendor server and the
 * role whose user mapping the worker sends with (a capture's run_as).  The
 * worker runs each lane's work as a job of its own; lanes.c keeps the
 * bookkeeping of those jobs.  Every function below works on the lane
 * (MyDatabaseId, server_id, run_as) and is cheap: one LWLock held for the
 * arithmetic only, never for I/O.  Without shared_preload_libraries there is
 * no table: lanes_admit() always admits and the rest do nothing.
 *
 * How the worker uses it, per lane:
 *
 *	  if (!lanes_admit(server, run_as, GetCurrentTimestamp(), &probe, &until))
 *		  -> claim nothing for the lane; look again at `until`
 *	  claim the lane's items (only a few, as a probe, when probe is true)
 *	  nothing to send after all, and probe:  lanes_probe_cancel(server, run_as)
 *	  lanes_job_start(server, run_as, nrequests);
 *	  ... send ...  (lanes_set_waiting() while the job waits for a budget or a backoff)
 *	  lanes_job_done(server, run_as, &result);
 *
 * The circuit.  A job in which requests were made, none was answered 2xx
 * and at least one failed as an outage (a transport error, a timeout, a 5xx)
 * is one consecutive failure.  At sales_api.circuit_failures consecutive
 * failures (0: never), or at any such failure while half-open, the circuit
 * opens for sales_api.circuit_open_time, doubled at each consecutive opening
 * up to LANES_OPEN_TIME_CAP_MS (or circuit_open_time if longer), plus up to
 * a quarter more at random so that lanes of one outage do not come back in
 * step.  Once that time has passed, lanes_admit() makes it half-open and
 * admits one probe job; while the probe is in flight it admits nothing else.
 * A job with any 2xx answer closes the circuit and resets both counts.
 * Refusals (4xx) and 429s never open it: the vendor is up and answering.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_LANES_H
#define SALES_API_LANES_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* lanes the cluster keeps; an idle lane unused the longest makes room for a new one */
#define LANES_MAX				1024
/* bytes of a lane's last error kept, the terminating NUL included */
#define LANES_ERROR_LEN			256
/* bytes of a waiting reason kept, the terminating NUL included */
#define LANES_WAITING_LEN		32
/* longest a circuit stays open, unless circuit_open_time itself is longer */
#define LANES_OPEN_TIME_CAP_MS	(5 * 60 * 1000)

typedef enum LaneCircuit
{
	LANE_CLOSED = 0,			/* jobs are admitted */
	LANE_OPEN,					/* nothing is admitted until open_until */
	LANE_HALF_OPEN				/* one probe job is admitted */
} LaneCircuit;

/*
 * The reasons a worker gives lanes_set_waiting(), the words of
 * lane_status.waiting_for (which turns them into a sentence in
 * waiting_reason).  Any other short word is shown as it is.
 */
#define LANE_WAIT_RATE_LIMIT	"rate_limit"	/* the account's budget is spent until `until` */
#define LANE_WAIT_BACKOFF		"backoff"		/* retrying failed work at `until` */
#define LANE_WAIT_CIRCUIT		"circuit_open"	/* the circuit is open until `until` */
#define LANE_WAIT_SENDING		"sending"		/* requests are on the wire */

/*
 * The outcome of one job, for lanes_job_done().  Count every request sent,
 * by its outcome: a request resent within the job (after a 429, or a
 * transport failure before it was sent) counts once per attempt, so the
 * lane's counters are what the vendor saw.  Requests never sent (the budget
 * did not come back in time) count nowhere.  The job succeeded if any
 * request was answered 2xx.
 */
typedef struct LaneJobResult
{
	int			nrequests;		/* what lanes_job_start() was given */
	int			nok;			/* answered 2xx */
	int			ntransport;		/* no answer: connect, TLS, connection lost (outage) */
	int			ntimeout;		/* timed out (outage) */
	int			n5xx;			/* answered 5xx (outage) */
	int			n4xx;			/* answered 4xx other than 429: refused, the vendor is up */
	int			n429;			/* answered 429: rate limited, the vendor is up */
	int			last_status;	/* the last HTTP status answered, 0: none */
	/*
	 * The last failure as text, NULL: none.  Vendor error text (the body's
	 * message, vendor_error_message()) or a transport error, never headers,
	 * a URL with credentials or a token.  Cut to LANES_ERROR_LEN - 1 bytes on
	 * a character boundary, control characters as spaces.
	 */
	const char *last_error;
} LaneJobResult;

/* settings (lanes.c defines them) */
extern int	sales_api_circuit_failures;
extern int	sales_api_circuit_open_time_ms;

/* From _PG_init: the settings; the shared table under shared_preload_libraries. */
extern void lanes_init(void);

/*
 * May the lane start a job at `now`?  Closed: true, *probe false.  Open
 * before open_until: false, *until = open_until.  Open at or after
 * open_until: it becomes half-open and the caller has the probe (true,
 * *probe true); the probe is held until lanes_job_done() or
 * lanes_probe_cancel().  Half-open with the probe held: false, *until =
 * when to ask again.  probe and until may be NULL.
 */
extern bool lanes_admit(Oid server_id, Oid run_as, TimestampTz now,
						bool *probe, TimestampTz *until);

/* A probe lanes_admit() gave that the caller did not send after all. */
extern void lanes_probe_cancel(Oid server_id, Oid run_as);
extern void lanes_quarantine(Oid server_id, Oid run_as, const char *why);

/* A job of nrequests requests starts (in flight until lanes_job_done()). */
extern void lanes_job_start(Oid server_id, Oid run_as, int nrequests);

/*
 * A job has ended: its counts, last status and error, and the circuit's
 * next state (see above).  Also releases the probe.
 */
extern void lanes_job_done(Oid server_id, Oid run_as, const LaneJobResult *r);

/*
 * Why the lane waits now, for lane_status: one of LANE_WAIT_* (or another
 * short text), until when (0: no end known); why NULL: it does not wait.
 */
extern void lanes_set_waiting(Oid server_id, Oid run_as, const char *why,
							  TimestampTz until);

#endif							/* SALES_API_LANES_H */
