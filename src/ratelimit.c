/*-------------------------------------------------------------------------
 *
 * ratelimit.c
 *		Pacing requests to a vendor account by its own rate limits.
 *
 * Design note.  Connecteam limits every account per minute and per day,
 * as low as 5 and 100 requests, and says so in x-ratelimit-* headers on
 * every response (limit, remaining, reset as UTC epoch seconds).  A client
 * that sends first and backs off on 429 wastes calls the account cannot
 * spare, so sales_api paces itself from those headers instead:
 *
 *	- The budget is kept per vendor account (a database's server and the
 *	  identity its mapping's credentials give, as a digest: server.c) in a
 *	  small plain-data RateLimitState, in shared memory (the 256 accounts
 *	  used most recently), so every backend and every worker reserves from
 *	  the same budget and together they stay within the vendor's limits.
 *	  One LWLock guards the table; it is held for the arithmetic only.
 *	  Without shared_preload_libraries a backend keeps its own, in its
 *	  credential cache (credcache.c).
 *	- ratelimit_acquire(n) says how many requests may start now and
 *	  reserves them (the remaining counts go down before the answers come
 *	  back, so a wave never overspends); when the answer is 0 it says until
 *	  when to wait.  While nothing is known about an account, one request
 *	  goes first to learn its budget.  Once a window's reset time has passed
 *	  (plus a small margin for clock skew) the whole limit is available again.
 *	- ratelimit_update() merges a response's headers: a later reset time
 *	  starts a new window, the same reset time keeps the lower remaining
 *	  count (answers of concurrent requests arrive in any order), an earlier
 *	  one is stale and ignored.
 *	- After a 429 the account is blocked until Retry-After, else until the
 *	  exhausted window's reset, else for an exponential backoff with jitter.
 *
 * A RateLimitRun is the engine every request to a vendor goes through
 * (ratelimit_run_start/step): it sends requests in waves of what the
 * budget allows (each wave with sales_api.max_concurrency transfers at
 * once), and never blocks: a step starts what may start and settles what
 * has finished.  The worker steps the runs of all its lanes together over
 * one multi handle, and with RL_NOWAIT gives up at once on what a spent
 * budget does not allow (those items wait in the outbox, not in the
 * worker).  ratelimit_perform_all(), for SQL calls, steps one run to its
 * end and sleeps on the process latch between waves (cancellable:
 * pg_cancel_backend stops it).  A run resends requests
 * answered 429 and, when safe, requests that failed in transit, and gives
 * up on what is left when a single wait would exceed
 * sales_api.rate_limit_max_wait or would end less than RL_DEADLINE_MARGIN_MS
 * before statement_timeout fires.  Giving up instead of being cancelled
 * matters: an ERROR would lose the outcome of the requests already
 * answered (for Connecteam transactions, the ids of the rows stored), while
 * requests given up on are reported as not sent.  A request that is not idempotent (a POST
 * that creates rows: the vendor has no idempotency key) is resent only when
 * the vendor certainly did not act on it: after a 429, or a transport
 * failure before the request was fully sent.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "common/pg_prng.h"
#include "credcache.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "ratelimit.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/proc.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
#include "auth.h"
#include "vendor.h"

/* sent this long after a window's advertised reset, for clock skew */
#define RL_RESET_MARGIN_MS		500
/* how often a run waiting for another lane's fetch of its token looks at it */
#define RL_FOLLOW_POLL_MS 20
/* a window we opened: how long before its first answer is given up, how often to look */
#define RL_OPENED_MAX_MS		60000
#define RL_OPENED_POLL_MS		100
/* attempts per request when the vendor answers 429 */
#define RL_MAX_ATTEMPTS_429		6
/* attempts per request after a transport failure or a 5xx */
#define RL_MAX_ATTEMPTS_TRANSIENT 3
#define RL_BACKOFF_429_BASE_MS	1000
#define RL_BACKOFF_TRANSIENT_BASE_MS 500
#define RL_BACKOFF_CAP_MS		60000
/* no wait may end closer than this to statement_timeout */
#define RL_DEADLINE_MARGIN_MS	1000

/* A budget nothing is known about yet */
void
ratelimit_state_init(RateLimitState *st)
{
	memset(st, 0, sizeof(RateLimitState));
	st->minute_limit = st->minute_remaining = -1;
	st->day_limit = st->day_remaining = -1;
}

/* ------------------------------------------------------------------------
 * The budgets, shared
 * ------------------------------------------------------------------------
 */

/* accounts the cluster keeps a budget for; the least recently used goes first */
#define RL_SHARED_ACCOUNTS 256

typedef struct RlAccount
{
	uint8		account[16];	/* SalesApiServer.account */
	bool		used;
	TimestampTz last_used;
	RateLimitState st;
} RlAccount;

typedef struct RlShared
{
	RlAccount	accounts[RL_SHARED_ACCOUNTS];
} RlShared;

static RlShared *rl_shared = NULL;
static LWLock *rl_lock = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
rl_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(RlShared)));
	RequestNamedLWLockTranche("sales_api rate limits", 1);
}

static void
rl_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	rl_shared = ShmemInitStruct("sales_api rate limits", sizeof(RlShared), &found);
	if (!found)
		memset(rl_shared, 0, sizeof(RlShared));
	rl_lock = &(GetNamedLWLockTranche("sales_api rate limits"))->lock;
	LWLockRelease(AddinShmemInitLock);
}

/*
 * From _PG_init under shared_preload_libraries: the budgets live in shared
 * memory, one per vendor account, so every backend and the workers reserve
 * from the same budget.  Without it (the library loaded by a session only)
 * each backend keeps its own, in its credential cache.
 */
void
ratelimit_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = rl_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = rl_shmem_startup;
}

/*
 * The account's state, locked: every read and change of a budget happens
 * between rl_lock_state() and rl_unlock(), which take no longer than the
 * arithmetic.
 */
static RateLimitState *
rl_lock_state(const SalesApiServer *srv)
{
	TimestampTz now;
	RlAccount  *a;
	RlAccount  *victim = NULL;

	if (rl_shared == NULL)
		return &credcache_entry(srv)->rl;
	now = GetCurrentTimestamp();
	LWLockAcquire(rl_lock, LW_EXCLUSIVE);
	for (int i = 0; i < RL_SHARED_ACCOUNTS; i++)
	{
		a = &rl_shared->accounts[i];
		if (a->used && memcmp(a->account, srv->account, sizeof(a->account)) == 0)
		{
			a->last_used = now;
			return &a->st;
		}
		if (victim == NULL || !a->used || (victim->used && a->last_used < victim->last_used))
			victim = a;
	}
	/* a new account, in a free place or that of the one unused the longest */
	memcpy(victim->account, srv->account, sizeof(victim->account));
	victim->used = true;
	victim->last_used = now;
	ratelimit_state_init(&victim->st);
	return &victim->st;
}

static void
rl_unlock(void)
{
	if (rl_shared != NULL)
		LWLockRelease(rl_lock);
}

/*
 * A window's reset header (UTC epoch seconds) as a time.  False for a value
 * outside [now - 1 day, now + 2 days]: seconds relative to now (as some
 * APIs send), garbage, or an epoch so large that converting it overflows;
 * the caller then ignores that window's headers.
 */
static bool
rl_reset_time(int64 epoch, TimestampTz now, TimestampTz *out)
{
	int64		now_epoch = (int64) timestamptz_to_time_t(now);

	if (epoch < now_epoch - SECS_PER_DAY || epoch > now_epoch + 2 * SECS_PER_DAY)
		return false;
	*out = time_t_to_timestamptz((pg_time_t) epoch);
	return true;
}

static TimestampTz
after_ms(TimestampTz t, int64 ms)
{
	return t + ms * (TimestampTz) 1000;
}

/* base * 2^(step-1), capped, scaled by a random factor in [0.5, 1) */
static int64
backoff_ms(int base, int step)
{
	int64		ms = base;

	for (int i = 1; i < step && ms < RL_BACKOFF_CAP_MS; i++)
		ms *= 2;
	ms = Min(ms, RL_BACKOFF_CAP_MS);
	return (int64) (ms * (0.5 + 0.5 * pg_prng_double(&pg_global_prng_state)));
}

/*
 * Requests one window still allows: -1 when unlimited (unknown), at least
 * 1 once the window has reset.  A window we opened ourselves (reset 0, see
 * rl_reserve()) allows what we have not reserved of it yet, until its first
 * answer says when it ends; if none came for RL_OPENED_MAX_MS (every
 * request of it was lost), one request goes to learn it again.
 */
static int64
rl_available(int64 limit, int64 remaining, TimestampTz reset, TimestampTz opened,
			 TimestampTz now)
{
	if (remaining < 0)
		return -1;
	if (reset == 0)
		return (remaining > 0 || now >= after_ms(opened, RL_OPENED_MAX_MS)) ? Max(remaining, 1) : 0;

	/*
	 * Around the reset nothing starts: a request sent just before it may
	 * reach the vendor just after, and count in the next window, which we
	 * would otherwise spend whole.
	 */
	if (now >= after_ms(reset, -RL_RESET_MARGIN_MS) && now < after_ms(reset, RL_RESET_MARGIN_MS))
		return 0;
	if (now >= after_ms(reset, RL_RESET_MARGIN_MS))
		return Max(limit, 1);
	return remaining;
}

static void
rl_reserve(int64 limit, int64 *remaining, TimestampTz *reset, TimestampTz *opened,
		   TimestampTz now, int n)
{
	if (*remaining < 0)
		return;
	if (*reset != 0 && now >= after_ms(*reset, RL_RESET_MARGIN_MS))
	{
		/* we open a new window; its reset comes with the first answer */
		*remaining = Max(limit, 1) - n;
		*reset = 0;
		*opened = now;
	}
	else
		*remaining = *remaining - n;
	*remaining = Max(*remaining, 0);
}

/*
 * How many of `want` requests may start now; they are reserved against the
 * budget.  When none may, *wait_until says when to ask again and *why which
 * budget is spent.
 */
static int
rl_acquire(RateLimitState *st, const SalesApiServer *srv, int want, TimestampTz *wait_until,
		   RateLimitWait *why)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		allowed = want;

	*wait_until = 0;
	*why = RL_WAIT_NONE;
	if (want <= 0)
		return 0;
	if (st->not_before > now)
	{
		*wait_until = st->not_before;
		*why = RL_WAIT_BACKOFF;
		return 0;
	}
	if (!st->observed && srv->vendor == VENDOR_CONNECTEAM)
	{
		/*
		 * Learn the budget with one request, one at a time in the whole
		 * cluster: learners in parallel would each spend a request the
		 * first answer does not count.  A learner that gets no answer is
		 * replaced once its request has timed out.
		 */
		if (st->learning_until > now)
		{
			*wait_until = Min(st->learning_until, after_ms(now, RL_OPENED_POLL_MS));
			*why = RL_WAIT_MINUTE;
			return 0;
		}
		st->learning_until = after_ms(now, (int64) sales_api_request_timeout_ms + RL_RESET_MARGIN_MS);
		allowed = 1;
	}
	else if (st->has_headers)
	{
		int64		day = rl_available(st->day_limit, st->day_remaining, st->day_reset,
										   st->day_opened, now);
		int64		minute = rl_available(st->minute_limit, st->minute_remaining, st->minute_reset,
											  st->minute_opened, now);

		/* a window we opened and spent: its first answer is on the way */
		if (day == 0)
		{
			*wait_until = st->day_reset ? after_ms(st->day_reset, RL_RESET_MARGIN_MS)
				: after_ms(now, RL_OPENED_POLL_MS);
			*why = RL_WAIT_DAY;
			return 0;
		}
		if (minute == 0)
		{
			*wait_until = st->minute_reset ? after_ms(st->minute_reset, RL_RESET_MARGIN_MS)
				: after_ms(now, RL_OPENED_POLL_MS);
			*why = RL_WAIT_MINUTE;
			return 0;
		}
		if (day > 0)
			allowed = Min(allowed, day);
		if (minute > 0)
			allowed = Min(allowed, minute);
	}
	rl_reserve(st->minute_limit, &st->minute_remaining, &st->minute_reset, &st->minute_opened,
			   now, (int) allowed);
	rl_reserve(st->day_limit, &st->day_remaining, &st->day_reset, &st->day_opened,
			   now, (int) allowed);
	return (int) allowed;
}

int
ratelimit_acquire(const SalesApiServer *srv, int want, TimestampTz *wait_until,
				  RateLimitWait *why)
{
	RateLimitState *st = rl_lock_state(srv);
	int			n = rl_acquire(st, srv, want, wait_until, why);

	rl_unlock();
	return n;
}

static void
rl_merge(int64 *limit, int64 *remaining, TimestampTz *reset,
		 int64 rlimit, int64 rremaining, int64 rreset_epoch, TimestampTz now)
{
	TimestampTz rreset;

	if (rremaining < 0 || rreset_epoch < 0 || !rl_reset_time(rreset_epoch, now, &rreset))
		return;
	if (*reset == 0 && *remaining >= 0)
	{
		/*
		 * The first answer of a window we opened (rl_reserve()): our count
		 * already has every request reserved in it, some still on the wire,
		 * which the vendor's count does not have yet.  Keep the lower.
		 */
		int64		mine = *remaining;

		/* counted against a limit the vendor has changed since: count again */
		if (rlimit >= 0 && *limit >= 0)
			mine = Max(mine + (rlimit - *limit), 0);
		if (rlimit >= 0)
			*limit = rlimit;
		*remaining = Min(mine, rremaining);
		*reset = rreset;
	}
	else if (*reset == 0 || rreset > *reset)
	{
		*limit = rlimit;
		*remaining = rremaining;
		*reset = rreset;
	}
	else if (rreset == *reset)
	{
		if (rlimit >= 0)
			*limit = rlimit;
		*remaining = (*remaining < 0) ? rremaining : Min(*remaining, rremaining);
	}
	/* else: an answer from an older window, already superseded */
}

/* Learn from a response's x-ratelimit-* headers. */
void
ratelimit_update(const SalesApiServer *srv, const HttpRequest *req)
{
	RateLimitState *st;

	if (!req->done)
	{
		/* no answer: if it was the learner, another request may learn now */
		st = rl_lock_state(srv);
		st->learning_until = 0;
		rl_unlock();
		return;
	}
	st = rl_lock_state(srv);
	st->observed = true;
	if (req->status >= 200 && req->status < 300)
		st->backoff_step = 0;
	if ((req->rl_minute_remaining >= 0 && req->rl_minute_reset >= 0) ||
		(req->rl_day_remaining >= 0 && req->rl_day_reset >= 0))
	{
		st->has_headers = true;
		st->observed_at = GetCurrentTimestamp();
		rl_merge(&st->minute_limit, &st->minute_remaining, &st->minute_reset,
				 req->rl_minute_limit, req->rl_minute_remaining, req->rl_minute_reset,
				 st->observed_at);
		rl_merge(&st->day_limit, &st->day_remaining, &st->day_reset,
				 req->rl_day_limit, req->rl_day_remaining, req->rl_day_reset,
				 st->observed_at);
	}
	rl_unlock();
}

/*
 * After a 429: block the account until Retry-After, else until the spent
 * window resets, else for an exponential backoff with jitter (the vendor
 * gave no clue, e.g. a limit we do not see in the headers).  Returns the
 * time the next attempt may start.
 */
TimestampTz
ratelimit_note_429(const SalesApiServer *srv, const HttpRequest *req)
{
	RateLimitState *st = rl_lock_state(srv);
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz until;
	TimestampTz reset;

	/*
	 * Retry-After: 0, or a date already past, says nothing to wait for: a
	 * 429 that says so is taken as one without a hint (the backoff below),
	 * or a vendor answering so without end would be sent to in a loop.
	 */
	if (req->retry_after_s > 0)
		until = after_ms(now, (int64) req->retry_after_s * 1000);
	else if (req->rl_day_remaining == 0 && req->rl_day_reset >= 0 &&
			 rl_reset_time(req->rl_day_reset, now, &reset) && reset > now)
		until = after_ms(reset, RL_RESET_MARGIN_MS);
	else if (req->rl_minute_remaining == 0 && req->rl_minute_reset >= 0 &&
			 rl_reset_time(req->rl_minute_reset, now, &reset) && reset > now)
		until = after_ms(reset, RL_RESET_MARGIN_MS);
	else
	{
		/*
		 * One step per wave of 429s, not one per answer: the concurrent
		 * requests of a wave all meet the same spent budget, and four of
		 * them must not multiply the pause by eight.
		 */
		if (st->not_before <= now)
			st->backoff_step++;
		until = after_ms(now, backoff_ms(RL_BACKOFF_429_BASE_MS, Max(st->backoff_step, 1)));
	}
	st->not_before = Max(st->not_before, until);
	rl_unlock();
	return until;
}

/* A copy of the account's state; false when nothing was ever seen. */
bool
ratelimit_get(const SalesApiServer *srv, RateLimitState *out)
{
	RateLimitState *st = rl_lock_state(srv);
	bool		observed = st->observed;

	if (observed)
		*out = *st;
	rl_unlock();
	return observed;
}

/*
 * A copy of the account's state in shared memory, for monitoring
 * (lane_budgets()): unlike ratelimit_get() it neither creates an entry nor
 * counts as a use, so a look never keeps an account in the table or pushes
 * another out.  False when the cluster has seen nothing of the account, and
 * always without shared memory (then only each backend's own state exists,
 * and no worker's).
 */
bool
ratelimit_peek(const SalesApiServer *srv, RateLimitState *out)
{
	bool		found = false;

	if (rl_shared == NULL)
		return false;
	LWLockAcquire(rl_lock, LW_SHARED);
	for (int i = 0; i < RL_SHARED_ACCOUNTS; i++)
	{
		RlAccount  *a = &rl_shared->accounts[i];

		if (a->used && memcmp(a->account, srv->account, sizeof(a->account)) == 0)
		{
			if (a->st.observed)
			{
				*out = a->st;
				found = true;
			}
			break;
		}
	}
	LWLockRelease(rl_lock);
	return found;
}

/*
 * The seven columns connecteam_rate_limit() and lane_budgets() show of a
 * budget: minute_limit, minute_remaining, minute_reset, day_limit,
 * day_remaining, day_reset, observed_at; NULL for what is unknown (every
 * column when st is NULL or the vendor sent no x-ratelimit-* headers).
 */
void
ratelimit_datums(const RateLimitState *st, Datum *values, bool *nulls)
{
	for (int i = 0; i < 7; i++)
	{
		values[i] = (Datum) 0;
		nulls[i] = true;
	}
	if (st == NULL || !st->observed || !st->has_headers)
		return;
	if (st->minute_limit >= 0)
	{
		values[0] = Int64GetDatum(st->minute_limit);
		nulls[0] = false;
	}
	if (st->minute_remaining >= 0)
	{
		values[1] = Int64GetDatum(st->minute_remaining);
		nulls[1] = false;
	}
	if (st->minute_reset != 0)
	{
		values[2] = TimestampTzGetDatum(st->minute_reset);
		nulls[2] = false;
	}
	if (st->day_limit >= 0)
	{
		values[3] = Int64GetDatum(st->day_limit);
		nulls[3] = false;
	}
	if (st->day_remaining >= 0)
	{
		values[4] = Int64GetDatum(st->day_remaining);
		nulls[4] = false;
	}
	if (st->day_reset != 0)
	{
		values[5] = TimestampTzGetDatum(st->day_reset);
		nulls[5] = false;
	}
	values[6] = TimestampTzGetDatum(st->observed_at);
	nulls[6] = false;
}

/*
 * Sleep on the process latch until `until`.  Interrupts are served every
 * time the latch is set, so cancellation and statement_timeout end the wait
 * at once; postmaster death ends the process.
 */
void
ratelimit_sleep_until(TimestampTz until)
{
	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		long		ms;

		CHECK_FOR_INTERRUPTS();
		if (now >= until)
			break;
		ms = TimestampDifferenceMilliseconds(now, until);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(ms, 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	CHECK_FOR_INTERRUPTS();
}

static bool
curl_code_transient(int code)
{
	switch ((CURLcode) code)
	{
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
			return true;
		default:
			return false;
	}
}

/* May this request, just failed without a 429, be sent again? */
static bool
rl_resend_ok(const HttpRequest *req, bool idempotent)
{
	if (!req->done)
	{
		if (req->too_large || !curl_code_transient(req->curl_code))
			return false;
		return idempotent || !req->maybe_processed;
	}
	/* a 5xx may have been acted on: only idempotent requests go again */
	return idempotent && req->status != 429 && http_status_retryable(req->status);
}

/*
 * The latest time a wait may end: RL_DEADLINE_MARGIN_MS before the
 * statement's statement_timeout fires, 0 when none is armed (as in the
 * background worker).
 */
static TimestampTz
rl_deadline(void)
{
	if (!get_timeout_active(STATEMENT_TIMEOUT))
		return 0;
	return after_ms(get_timeout_finish_time(STATEMENT_TIMEOUT), -RL_DEADLINE_MARGIN_MS);
}

/* Give up on every request still queued: none of them reached the vendor. */
static void
rl_give_up(RateLimitRun *run, const int *queue, int qlen, TimestampTz until,
		   RateLimitWait why)
{
	for (int j = 0; j < qlen; j++)
		run->not_sent[queue[j]] = true;
	run->nnot_sent += qlen;
	run->retry_at = Max(run->retry_at, until);
	run->why = why;
}

static int
int_cmp(const void *a, const void *b)
{
	int			x = *(const int *) a;
	int			y = *(const int *) b;

	return (x > y) - (x < y);
}

/*
 * Start more of the wave, up to the run's concurrency (less what the runs
 * sharing it have in flight: a lane's two jobs share its
 * sales_api.max_concurrency) and the backend's sales_api.max_in_flight
 * (all lanes together).  Returns whether some of the
 * wave is still in flight or waiting to start.
 */
static bool
rl_wave_feed(RateLimitRun *run)
{
	int			active = ratelimit_run_active(run);
	int			others = run->others_active ? run->others_active(run->others_arg) : 0;

	while (active + others < run->concurrency && run->wave_started < run->nwave &&
		   http_in_flight() < sales_api_max_in_flight)
	{
		http_start(run->reqs[run->wave[run->wave_started++]]);
		active++;
	}
	/* then the wave's requests that go again with a new token, as many at once */
	while (active + others < run->concurrency && run->again_started < run->nagain &&
		   http_in_flight() < sales_api_max_in_flight)
	{
		http_start(run->reqs[run->again[run->again_started++]]);
		active++;
	}
	return active > 0 || run->wave_started < run->nwave || run->again_started < run->nagain;
}

/* How many of the run's requests are in flight now? */
int
ratelimit_run_active(RateLimitRun *run)
{
	int			active = 0;

	if (run == NULL)
		return 0;
	/* a request sent again with a new token is one of the wave's */
	for (int j = 0; j < run->wave_started; j++)
		if (!run->reqs[run->wave[j]]->completed)
			active++;
	return active;
}

/*
 * A token the vendor refused (401) is fetched again once per wave, without
 * waiting for it (auth.c), and the refused requests go again with it.
 * Returns true while it is being fetched or when some went again.
 */
static bool
rl_wave_reauth(RateLimitRun *run)
{
	AuthResult *fail;

	if (run->auth == NULL)
	{
		bool		any = false;

		if (run->wave_reauthed || !auth_uses_token(run->srv))
			return false;
		run->wave_reauthed = true;
		for (int j = 0; j < run->nwave && !any; j++)
		{
			HttpRequest *r = run->reqs[run->wave[j]];

			any = (r->done && r->status == 401);
		}
		if (!any)
			return false;
		auth_invalidate(run->srv);
		/* its own request: a follower is stepped only when something is answered */
		run->auth = auth_fetch_start(run->srv, false);
	}
	if (!auth_fetch_step(run->auth))
		return true;
	fail = auth_fetch_result(run->auth);
	run->auth = NULL;
	/* a refused token leaves the 401 answers as the outcome */
	if (fail != NULL)
		return false;
	run->nagain = run->again_started = 0;
	for (int j = 0; j < run->nwave; j++)
	{
		HttpRequest *r = run->reqs[run->wave[j]];

		if (r->done && r->status == 401)
		{
			auth_set_header(run->srv, r);
			run->again[run->nagain++] = run->wave[j];
		}
	}
	(void) rl_wave_feed(run);
	return true;
}

/*
 * Is a token at hand for the next wave?  One is fetched first when needed,
 * without waiting: false while it is in flight.  A fetch that failed leaves
 * run->auth_fail, which the wave's requests record as never sent.
 */
static bool
rl_auth_ready(RateLimitRun *run)
{
	if (run->auth == NULL)
	{
		if (run->auth_fail != NULL || !auth_token_needed(run->srv))
			return true;
		run->auth = auth_fetch_start(run->srv, run->follow);
	}
	if (!auth_fetch_step(run->auth))
	{
		/* another lane's fetch of the same token: look again soon */
		if (auth_fetch_following(run->auth))
			run->wait_until = after_ms(GetCurrentTimestamp(), RL_FOLLOW_POLL_MS);
		return false;
	}
	run->auth_fail = auth_fetch_result(run->auth);
	run->auth = NULL;
	return true;
}

/* One attempt's answer in the run's counters. */
static void
rl_count(RateLimitRun *run, const HttpRequest *r)
{
	if (r->auth_error != NULL)
		return;					/* never sent */
	if (!r->done)
	{
		if (r->curl_code == CURLE_OPERATION_TIMEDOUT)
			run->ntimeout++;
		else
			run->ntransport++;
		run->last_error = (char *) http_transport_error(r);
		return;
	}
	run->last_status = (int) r->status;
	if (r->status >= 200 && r->status < 300)
	{
		run->nok++;
		return;
	}
	if (r->status == 429)
		run->n429++;
	else if (r->status >= 500)
		run->n5xx++;
	else
		run->n4xx++;
	run->last_error = psprintf("HTTP %ld: %s", r->status, vendor_error_message(r));
}

/*
 * What the answers of a finished wave mean for the budget and for each
 * request: done, given up, or queued again (with *transient_until set when
 * a resend must wait).
 */
static void
rl_wave_settle(RateLimitRun *run, TimestampTz *transient_until)
{
	int			nnext = 0;
	int		   *next = palloc(sizeof(int) * (run->nwave + run->qlen + 1));

	for (int j = 0; j < run->nwave; j++)
	{
		int			idx = run->wave[j];
		HttpRequest *r = run->reqs[idx];

		run->attempts[idx]++;
		rl_count(run, r);
		if (!run->paced)
		{
			if (vendor_ok(r))
				run->nsent_ok++;
			continue;
		}
		ratelimit_update(run->srv, r);
		if (r->done && r->status == 429)
		{
			TimestampTz t = ratelimit_note_429(run->srv, r);

			if (run->attempts[idx] < RL_MAX_ATTEMPTS_429 && !run->nowait)
				next[nnext++] = idx;
			else
			{
				/* a 429 is a refusal: the vendor did not act on it */
				run->not_sent[idx] = true;
				run->nnot_sent++;
				run->retry_at = Max(run->retry_at, t);
				run->why = RL_WAIT_BACKOFF;
			}
		}
		else if (r->done && r->status >= 200 && r->status < 300)
			run->nsent_ok++;
		else if (run->attempts[idx] < RL_MAX_ATTEMPTS_TRANSIENT && rl_resend_ok(r, run->idempotent))
		{
			int64		wait_ms = backoff_ms(RL_BACKOFF_TRANSIENT_BASE_MS, run->attempts[idx]);

			/*
			 * A 5xx with Retry-After (a 503 during maintenance) is resent no
			 * sooner than asked, and not at all when that is longer than
			 * sales_api.rate_limit_max_wait: its answer then stands.
			 */
			if (r->done && r->retry_after_s >= 0)
			{
				if ((int64) r->retry_after_s * 1000 > sales_api_rate_limit_max_wait_ms)
					continue;
				wait_ms = Max(wait_ms, (int64) r->retry_after_s * 1000);
			}
			next[nnext++] = idx;
			*transient_until = Max(*transient_until, after_ms(GetCurrentTimestamp(), wait_ms));
		}
	}

	/* what goes next: the resends and the untouched rest, in input order */
	for (int j = 0; j < run->qlen; j++)
		next[nnext++] = run->queue[j];
	qsort(next, nnext, sizeof(int), int_cmp);
	memcpy(run->queue, next, sizeof(int) * nnext);
	run->qlen = nnext;
	run->nwave = run->wave_started = 0;
	run->nagain = run->again_started = 0;
	pfree(next);
}

/*
 * Take the next wave off the queue: as many requests as the budget allows
 * now.  Returns false when none may start yet (run->wait_until says when)
 * or the run gave up on the rest.
 */
static bool
rl_wave_begin(RateLimitRun *run)
{
	TimestampTz now = GetCurrentTimestamp();
	AuthResult *fail;
	int			k = run->qlen;

	/* no token: nothing of the rest can go, and none of it spends the budget */
	if (run->paced && run->auth_fail == NULL)
	{
		TimestampTz until;
		RateLimitWait why;
		TimestampTz deadline = rl_deadline();

		k = ratelimit_acquire(run->srv, run->qlen, &until, &why);
		if (k == 0)
		{
			if (run->nowait || until > after_ms(now, sales_api_rate_limit_max_wait_ms))
				rl_give_up(run, run->queue, run->qlen, until, why);
			else if (deadline != 0 && until > deadline)
				rl_give_up(run, run->queue, run->qlen, until, RL_WAIT_DEADLINE);
			else
			{
				run->wait_until = until;
				return false;
			}
			run->qlen = 0;
			return false;
		}
	}
	memcpy(run->wave, run->queue, sizeof(int) * k);
	memmove(run->queue, run->queue + k, sizeof(int) * (run->qlen - k));
	run->qlen -= k;
	run->nwave = k;
	run->wave_started = 0;
	run->wave_reauthed = false;

	/* rl_auth_ready() fetched a token if one was needed */
	fail = run->auth_fail;
	run->auth_fail = NULL;
	if (fail == NULL)
		fail = auth_obtain(run->srv);
	for (int j = 0; j < k; j++)
	{
		HttpRequest *r = run->reqs[run->wave[j]];

		if (fail != NULL)
		{
			/* never sent: completed with auth_error saying why */
			http_request_reset_outcome(r);
			r->auth_error = psprintf("no %s access token could be obtained: %s",
									 server_vendor_name(run->srv->vendor), fail->message);
			r->auth_failure = fail;
			r->completed = true;
		}
		else
			auth_set_header(run->srv, r);
	}
	if (fail != NULL)
	{
		run->wave_started = k;
		run->auth_failed = fail;
	}
	return true;
}

/*
 * Start sending requests to one account.  flags: RL_IDEMPOTENT (a failed
 * request may go again), RL_UNPACED (no budget and no resends: one wave,
 * only a refused token is fetched again), RL_FOLLOW (a token being fetched
 * by another run of this backend is waited for, not fetched again: only for
 * runs that are all stepped together, the worker's jobs), RL_NOWAIT (never wait for the
 * budget: what it does not allow now is given up, with retry_at).  Nothing
 * is sent before the first ratelimit_run_step().
 */
RateLimitRun *
ratelimit_run_start(SalesApiServer *srv, HttpRequest **reqs, int n, int flags)
{
	RateLimitRun *run = palloc0(sizeof(RateLimitRun));

	run->srv = srv;
	run->reqs = reqs;
	run->n = n;
	run->idempotent = (flags & RL_IDEMPOTENT) != 0;
	run->paced = (flags & RL_UNPACED) == 0;
	run->nowait = (flags & RL_NOWAIT) != 0;
	run->follow = (flags & RL_FOLLOW) != 0;
	run->concurrency = Max(sales_api_max_concurrency, 1);
	run->not_sent = palloc0(sizeof(bool) * Max(n, 1));
	run->attempts = palloc0(sizeof(int) * Max(n, 1));
	run->queue = palloc(sizeof(int) * Max(n, 1));
	run->wave = palloc(sizeof(int) * Max(n, 1));
	run->again = palloc(sizeof(int) * Max(n, 1));
	run->qlen = n;
	for (int i = 0; i < n; i++)
	{
		run->queue[i] = i;
		/* libcurl would resend it by itself if a reused connection died */
		if (run->paced && !run->idempotent)
			reqs[i]->no_resend = true;
	}
	return run;
}

/*
 * Move a run on as far as it can go without waiting: start what the budget
 * and the concurrency allow, settle finished waves.  Returns true when the
 * run is over (every request answered or given up).  Never raises for a
 * vendor's answer or a transport failure, only for cancellation and
 * out-of-memory.  The caller pumps the HTTP core (http_pump()) and, while
 * nothing is in flight, waits until run->wait_until.
 */
bool
ratelimit_run_step(RateLimitRun *run)
{
	for (;;)
	{
		if (run->done)
			return true;
		if (run->nwave > 0)
		{
			TimestampTz transient_until = 0;

			if (rl_wave_feed(run))
				return false;
			if (rl_wave_reauth(run))
				return false;
			rl_wave_settle(run, &transient_until);
			if (!run->paced)
				run->qlen = 0;
			if (run->qlen > 0 && transient_until != 0)
			{
				TimestampTz deadline = rl_deadline();

				if (deadline != 0 && transient_until > deadline)
				{
					rl_give_up(run, run->queue, run->qlen, transient_until, RL_WAIT_DEADLINE);
					run->qlen = 0;
				}
				else
					run->wait_until = transient_until;
			}
			continue;
		}
		if (run->qlen == 0)
		{
			run->done = true;
			return true;
		}
		if (run->wait_until > GetCurrentTimestamp())
			return false;
		run->wait_until = 0;
		if (!rl_auth_ready(run))
			return false;
		if (!rl_wave_begin(run) && run->qlen > 0)
			return false;
	}
}

/* Drop what a run has in flight (its caller is going away on an ERROR). */
void
ratelimit_run_cancel(RateLimitRun *run)
{
	if (run->auth != NULL)
	{
		auth_fetch_cancel(run->auth);
		run->auth = NULL;
	}
	for (int i = 0; i < run->n; i++)
		http_cancel(run->reqs[i]);
}

/* Step a run to its end, pumping the HTTP core and sleeping between waves. */
static pg_noinline void
rl_run_to_end(RateLimitRun *run)
{
	while (!ratelimit_run_step(run))
	{
		if (run->nwave == 0 && run->wait_until > GetCurrentTimestamp())
			ratelimit_sleep_until(run->wait_until);
		else
		{
			(void) http_pump(100);
			CHECK_FOR_INTERRUPTS();
		}
	}
}

/*
 * Send requests as fast as the account's budget allows, and return when
 * every one is answered or given up (see the design note and
 * ratelimit_run_start() for the flags).
 */
RateLimitRun *
ratelimit_perform_flags(SalesApiServer *srv, HttpRequest **reqs, int n, int flags)
{
	RateLimitRun *run = ratelimit_run_start(srv, reqs, n, flags);

	PG_TRY();
	{
		rl_run_to_end(run);
	}
	PG_CATCH();
	{
		ratelimit_run_cancel(run);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return run;
}

RateLimitRun *
ratelimit_perform_all(SalesApiServer *srv, HttpRequest **reqs, int n, bool idempotent)
{
	return ratelimit_perform_flags(srv, reqs, n, idempotent ? RL_IDEMPOTENT : 0);
}

/*
 * Run requests with credentials.  Requests answered 401 are sent once more
 * with a freshly fetched token: a token can expire or be revoked between
 * two requests of the same call.
 *
 * Never raises for a credential that cannot be had: when no token can be
 * fetched, no request is sent and each records why (auth_error,
 * auth_failure), so that a caller running several waves keeps the outcome
 * of the waves already answered; vendor_report_error() raises it.
 */
void
vendor_perform_all(SalesApiServer *srv, HttpRequest **reqs, int n, int concurrency)
{
	RateLimitRun *run;

	if (n <= 0)
		return;
	run = ratelimit_run_start(srv, reqs, n, RL_UNPACED);
	run->concurrency = Max(concurrency, 1);
	PG_TRY();
	{
		while (!ratelimit_run_step(run))
		{
			(void) http_pump(100);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_CATCH();
	{
		ratelimit_run_cancel(run);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

void
vendor_perform(SalesApiServer *srv, HttpRequest *req)
{
	vendor_perform_all(srv, &req, 1, 1);
}

/* One sentence on why requests were not sent and when to try again. */
char *
ratelimit_describe(const SalesApiServer *srv, const RateLimitRun *run)
{
	RateLimitState st;
	char	   *when = pstrdup(timestamptz_to_str(run->retry_at));
	bool		known = ratelimit_get(srv, &st);

	switch (run->why)
	{
		case RL_WAIT_DAY:
			return psprintf("The account's daily budget (%lld requests) is spent until %s.",
							known ? (long long) st.day_limit : -1LL, when);
		case RL_WAIT_MINUTE:
			if (!known || st.minute_limit < 0)
				return psprintf("The account's budget is not known yet: one request is learning it; these go at %s.",
								when);
			if (run->nowait)
				return psprintf("The account's per-minute budget (%lld requests) is spent until %s; these go then.",
								known ? (long long) st.minute_limit : -1LL, when);
			return psprintf("The account's per-minute budget (%lld requests) is spent until %s, later than sales_api.rate_limit_max_wait (%d ms) allows waiting.",
							known ? (long long) st.minute_limit : -1LL, when,
							sales_api_rate_limit_max_wait_ms);
		case RL_WAIT_DEADLINE:
			return psprintf("Waiting until %s for the next attempt would outlast statement_timeout (%d ms).",
							when, StatementTimeout);
		default:
			return psprintf("The vendor answered 429 Too Many Requests; the next attempt would be at %s.",
							when);
	}
}

/* Raise (or log) SA429 for a run that left requests unsent. */
void
ratelimit_report(const SalesApiServer *srv, const RateLimitRun *run, int elevel,
				 const char *what)
{
	ereport(elevel,
			(errcode(ERRCODE_SALES_API_RATE_LIMITED),
			 run->why == RL_WAIT_DEADLINE ?
			 errmsg("%s: waiting for the rate limit of server \"%s\" would outlast statement_timeout",
					what, srv->name) :
			 errmsg("%s: the rate limit of server \"%s\" is spent", what, srv->name),
			 errdetail("%s %d of %d requests were not sent.",
					   ratelimit_describe(srv, run), run->nnot_sent, run->n),
			 errhint("Retry after %s, or raise %s%s", timestamptz_to_str(run->retry_at),
					 run->why == RL_WAIT_DEADLINE ? "statement_timeout" : "sales_api.rate_limit_max_wait",
					 srv->vendor == VENDOR_CONNECTEAM ?
					 "; sales_api.connecteam_rate_limit() shows the remaining budget." : ".")));
}
