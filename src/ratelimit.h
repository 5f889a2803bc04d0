/*-------------------------------------------------------------------------
 *
 * ratelimit.h
 *		Pacing requests by a vendor account's rate limits (ratelimit.c):
 *		the per-account budget learnt from x-ratelimit-* headers, waiting
 *		for a window to reset, backing off after a 429, and an engine that
 *		sends a set of requests in waves the budget allows.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_RATELIMIT_H
#define SALES_API_RATELIMIT_H

#include "http.h"
#include "sales_api.h"
#include "server.h"
#include "datatype/timestamp.h"

/*
 * What a backend knows about one account's budget, kept per server and
 * user mapping in the credential cache (credcache.c).  Plain data with no
 * pointers, so that it can later live in shared memory (for the background
 * worker) without changing the functions below.
 */
typedef struct RateLimitState
{
	bool		observed;		/* at least one response has been seen */
	bool		has_headers;	/* ... and it carried x-ratelimit-* headers */
	int64		minute_limit;	/* -1 when unknown */
	int64		minute_remaining;
	TimestampTz minute_reset;	/* 0 when unknown */
	int64		day_limit;
	int64		day_remaining;
	TimestampTz day_reset;
	TimestampTz learning_until; /* one request learns the budget until then */
	TimestampTz minute_opened;	/* when we opened the window (reset 0) */
	TimestampTz day_opened;
	TimestampTz observed_at;	/* when the last headers arrived */
	TimestampTz not_before;		/* no request before this (429 backoff) */
	int			backoff_step;	/* consecutive 429s backed off exponentially */
} RateLimitState;

/* why ratelimit_acquire() said "not now" */
typedef enum RateLimitWait
{
	RL_WAIT_NONE = 0,
	RL_WAIT_MINUTE,
	RL_WAIT_DAY,
	RL_WAIT_BACKOFF,
	RL_WAIT_DEADLINE			/* the wait would outlast statement_timeout */
} RateLimitWait;

extern void ratelimit_state_init(RateLimitState *st);
extern void ratelimit_init(void);
extern int	ratelimit_acquire(const SalesApiServer *srv, int want,
							  TimestampTz *wait_until, RateLimitWait *why);
extern void ratelimit_update(const SalesApiServer *srv, const HttpRequest *req);
extern TimestampTz ratelimit_note_429(const SalesApiServer *srv, const HttpRequest *req);
extern bool ratelimit_get(const SalesApiServer *srv, RateLimitState *out);
extern bool ratelimit_peek(const SalesApiServer *srv, RateLimitState *out);
extern void ratelimit_datums(const RateLimitState *st, Datum *values, bool *nulls);
extern void ratelimit_sleep_until(TimestampTz until);

/*
 * The outcome of ratelimit_perform_all().  A request with not_sent[i] set
 * never got a final answer because the budget did not come back within
 * sales_api.rate_limit_max_wait or before statement_timeout (or the vendor
 * kept answering 429): the vendor certainly did not act on it.  Every other request holds its final
 * outcome in the HttpRequest itself.
 */
typedef struct RateLimitRun
{
	int			n;
	bool	   *not_sent;
	int		   *attempts;
	int			nnot_sent;
	int			nsent_ok;		/* requests answered 2xx */
	TimestampTz retry_at;		/* when the budget is expected back */
	RateLimitWait why;

	/* the engine's own (ratelimit_run_step()) */
	SalesApiServer *srv;
	HttpRequest **reqs;
	bool		idempotent;
	bool		paced;
	bool		nowait;
	bool		follow;			/* may wait for another run's token fetch (RL_FOLLOW) */
	int			concurrency;
	/* the requests in flight of the other runs sharing this run's concurrency (a lane's other job) */
	int			(*others_active) (void *arg);
	void	   *others_arg;
	int		   *queue;			/* not sent yet, in input order */
	int			qlen;
	int		   *wave;			/* being sent now */
	int			nwave;
	int			wave_started;
	bool		wave_reauthed;
	int		   *again;			/* the wave's requests to send again (a new token) */
	int			nagain;
	int			again_started;
	TimestampTz wait_until;		/* no wave starts before this */
	struct AuthFetch *auth;		/* a token being fetched for the next wave or a resend */
	struct AuthResult *auth_fail;	/* why the next wave has no token */
	struct AuthResult *auth_failed; /* why some of the run went without a token */
	bool		done;

	/* every answer of every attempt, for the lane's counters (lanes.c) */
	int			nok;			/* 2xx */
	int			ntransport;		/* no answer */
	int			ntimeout;
	int			n5xx;
	int			n4xx;			/* other than 429 */
	int			n429;
	int			last_status;
	char	   *last_error;
} RateLimitRun;

#define RL_IDEMPOTENT	0x01
#define RL_UNPACED		0x02
#define RL_NOWAIT		0x04
#define RL_FOLLOW		0x08

extern RateLimitRun *ratelimit_run_start(SalesApiServer *srv, HttpRequest **reqs,
										 int n, int flags);
extern bool ratelimit_run_step(RateLimitRun *run);
extern void ratelimit_run_cancel(RateLimitRun *run);
extern RateLimitRun *ratelimit_perform_flags(SalesApiServer *srv, HttpRequest **reqs,
											 int n, int flags);
extern RateLimitRun *ratelimit_perform_all(SalesApiServer *srv, HttpRequest **reqs,
										   int n, bool idempotent);

/* with credentials, unpaced: a refused token is fetched again once (ratelimit.c) */
extern void vendor_perform_all(SalesApiServer *srv, HttpRequest **reqs, int n,
							   int concurrency);
extern int	ratelimit_run_active(RateLimitRun *run);
extern void vendor_perform(SalesApiServer *srv, HttpRequest *req);
extern char *ratelimit_describe(const SalesApiServer *srv, const RateLimitRun *run);
extern void ratelimit_report(const SalesApiServer *srv, const RateLimitRun *run,
							 int elevel, const char *what);

#endif							/* SALES_API_RATELIMIT_H */
