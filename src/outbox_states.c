/*-------------------------------------------------------------------------
 *
 * outbox_states.c
 *		The states and kinds of an outbox item: the one table of their names,
 *		sales_api._outbox_states(), which returns it to SQL so that a test
 *		holds the schema to it, and outbox_decide(), the one place that turns
 *		what became of an item into its next state.
 *
 * Design note.  The sending code only says what happened (OutboxResult,
 * with the HTTP status, Retry-After and the error); outbox_decide() applies
 * the settings: exponential backoff with jitter from sales_api.retry_base up
 * to sales_api.retry_max, a vendor's Retry-After as a floor, a dead letter
 * after sales_api.max_attempts or a permanent refusal, and the ambiguous
 * policy.  Connecteam has no idempotency key, so a post the vendor may hold
 * is never simply sent again: under replace_window it waits
 * sales_api.ambiguous_settle_time (a slow vendor may still store the request
 * the worker gave up on) and its location's window is then replaced; under
 * park it becomes unknown, for an operator.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <time.h>

#include "access/xact.h"
#include "common/pg_prng.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "outbox_states.h"
#include "vendor.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(sales_api_outbox_states);

const OutboxName outbox_state_names[OS_N] = {
	[OS_PENDING] = {OUTBOX_PENDING, "waiting to be sent (next_attempt_at)"},
	[OS_IN_FLIGHT] = {OUTBOX_IN_FLIGHT, "claimed by the worker until lease_until"},
	[OS_SENT] = {OUTBOX_SENT, "done"},
	[OS_FAILED] = {OUTBOX_FAILED, "failed for now: tried again at next_attempt_at"},
	[OS_DEAD] = {OUTBOX_DEAD, "a permanent refusal, or sales_api.max_attempts reached"},
	[OS_UNKNOWN] = {OUTBOX_UNKNOWN, "an ambiguous outcome parked for an operator"},
	[OS_SUPERSEDED] = {OUTBOX_SUPERSEDED, "replaced by a later version of the sale before it was sent"},
};

const OutboxName outbox_kind_names[KIND_N] = {
	[KIND_CT_POST] = {OUTBOX_CT_POST, "a Connecteam transaction to create"},
	[KIND_CT_DELETE] = {OUTBOX_CT_DELETE, "a Connecteam transaction to delete"},
	[KIND_CT_WINDOW] = {OUTBOX_CT_WINDOW, "a Connecteam location's time window to replace"},
	[KIND_MAPAL_SLOT] = {OUTBOX_MAPAL_SLOT, "a Mapal slot whose totals to send"},
};

static const OutboxName outbox_view_state = {OUTBOX_STAGED, "staged sales (sales_api.outbox_status only)"};

OutboxKind
outbox_kind_from_name(const char *name)
{
	for (int k = 0; k < KIND_N; k++)
		if (strcmp(name, outbox_kind_names[k].name) == 0)
			return (OutboxKind) k;
	elog(ERROR, "sales_api: unknown outbox item kind \"%s\"", name);
	pg_unreachable();
}

/* Ambiguous posts are settled by replacing their window (else parked) */
bool
outbox_replaces_windows(void)
{
	return sales_api_ambiguous_policy != AMBIGUOUS_PARK;
}

/* Exponential backoff with jitter; the vendor's Retry-After is a floor */
static int64
backoff_ms(int attempts, int retry_after_s)
{
	double		d = (double) sales_api_retry_base_ms * pow(2.0, Max(attempts - 1, 0));

	d = Min(d, (double) sales_api_retry_max_ms);
	d = d * (0.5 + 0.5 * pg_prng_double(&pg_global_prng_state));
	if (retry_after_s >= 0)
		d = Max(d, (double) retry_after_s * 1000.0);
	return (int64) d;
}

/*
 * The next state of an item of this kind, claimed attempts times, from what
 * became of it.
 */
OutboxNext
outbox_decide(OutboxKind kind, int attempts, const OutboxOutcome *o)
{
	OutboxNext	next = {OS_FAILED, 0, false, false, o->error};

	switch (o->result)
	{
		case OUTBOX_DONE:
			next.state = OS_SENT;
			break;
		case OUTBOX_WINDOW_REPLACED:
			/*
			 * Whatever this post stored is gone with the window, and the
			 * sale's version the POS held when the window was read was
			 * posted again.  This very version (vendor_ref: its new
			 * transactionId) is no longer ambiguous: a later delete of it
			 * removes that.  A newer one: ambiguous stays set, and tells a
			 * later delete of this version that there is nothing left.
			 */
			next.state = OS_SENT;
			next.ambiguous = (kind == KIND_CT_POST && o->vendor_ref == NULL);
			break;
		case OUTBOX_PERMANENT:
			next.state = OS_DEAD;
			break;
		case OUTBOX_HELD:
			/*
			 * Due when the budget allows again, to the millisecond (the
			 * record adds the delay to now(), its transaction's start): until
			 * 0.8.0 whole seconds, at least one, so a request held around a
			 * window's reset (RL_RESET_MARGIN_MS) for tens of ms waited a
			 * second, and one held for 2.9 s was due at 2 s, to be held again.
			 */
			next.delay_ms = Max((o->held_until - GetCurrentTransactionStartTimestamp() + 999) / 1000, 1);
			next.attempt_back = true;
			break;
		case OUTBOX_NOT_TRIED:
		case OUTBOX_TRANSIENT:
			if (o->result == OUTBOX_NOT_TRIED)
				next.error = "not sent in this cycle";
			if (attempts >= sales_api_max_attempts)
			{
				next.state = OS_DEAD;
				next.error = psprintf("gave up after %d attempts: %s", attempts,
									  next.error ? next.error : "unknown error");
			}
			else
				next.delay_ms = backoff_ms(attempts, o->retry_after_s);
			break;
		case OUTBOX_MAYBE_STORED:
			if (o->park != NULL)
			{
				next.state = OS_UNKNOWN;
				next.ambiguous = true;
				next.error = psprintf("outcome unknown: the vendor may or may not hold this sale; parked for an operator: %s",
									  o->park);
				break;
			}
			if (!outbox_replaces_windows())
			{
				/*
				 * Parked, and still ambiguous: retry_dead(include_unknown)
				 * sends it through the policy again, never as a plain post
				 * that could store the sale a second time.
				 */
				next.state = OS_UNKNOWN;
				next.ambiguous = true;
				next.error = o->error ?
					psprintf("outcome unknown: the request failed after it was sent (%s); the vendor may or may not hold this sale; parked for an operator (sales_api.ambiguous_policy = park)",
							 o->error) :
					"the vendor may or may not have stored this sale (ambiguous_policy = park)";
				break;
			}
			/* FALLTHROUGH */
		case OUTBOX_IN_WINDOW:
			/*
			 * The window is replaced only after ambiguous_settle_time, so a
			 * late original cannot land after the repost.
			 */
			next.delay_ms = sales_api_ambiguous_settle_ms;
			next.ambiguous = true;
			break;
		case OUTBOX_LEASE_EXPIRED:
			next.error = "lease expired: the worker stopped while sending; the outcome is unknown";
			if (kind == KIND_CT_POST)
			{
				/* it may have been stored: the ambiguous policy, after the settle time */
				next.state = outbox_replaces_windows() ? OS_FAILED : OS_UNKNOWN;
				next.delay_ms = sales_api_ambiguous_settle_ms;
				next.ambiguous = true;
			}
			break;
	}
	return next;
}

/* The vendor may hold what the request carried: the ambiguous policy decides. */
void
outbox_outcome_maybe_stored(OutboxOutcome *o)
{
	o->result = OUTBOX_MAYBE_STORED;
	if (worker_shared)
	{
		SpinLockAcquire(&worker_shared->mutex);
		worker_shared->ambiguous++;
		SpinLockRelease(&worker_shared->mutex);
	}
}

/*
 * What a request's answer means for the items it carried.  non_idempotent:
 * a post, which a vendor may have acted on although the answer never came.
 */
void
outbox_outcome_from_request(OutboxOutcome *o, const HttpRequest *req, bool non_idempotent)
{
	o->http_status = (int) req->status;
	if (vendor_ok(req))
	{
		o->result = OUTBOX_DONE;
		return;
	}
	if (!req->done)
	{
		o->error = psprintf("%s", http_transport_error(req));
		if (non_idempotent && req->maybe_processed)
			outbox_outcome_maybe_stored(o);
		else
			o->result = OUTBOX_TRANSIENT;
		return;
	}
	o->error = psprintf("HTTP %ld: %s", req->status, vendor_error_message(req));

	/*
	 * A post answered 500, 502 or 504 may have been stored before the error
	 * (a failure after the write, a gateway that gave up waiting for the
	 * vendor): sent again, the sales could be stored twice.  Its outcome is
	 * unknown, as for sales_api.connecteam_push_transactions() (connecteam.c);
	 * the ambiguous policy decides.  A 503 says the vendor could not take the
	 * request (overload, maintenance; RFC 9110 15.6.4): it is sent again
	 * after the backoff or its Retry-After, as a 429 is.
	 */
	if (non_idempotent && (req->status == 500 || req->status == 502 || req->status == 504))
	{
		outbox_outcome_maybe_stored(o);
		return;
	}
	if (req->status >= 300 && req->status < 400)
		o->result = OUTBOX_PERMANENT;
	else if (http_status_retryable(req->status) || req->status == 401 || req->status == 403 ||
			 req->status == 408)
	{
		o->result = OUTBOX_TRANSIENT;
		o->retry_after_s = req->retry_after_s;
		if (req->status == 429 && o->retry_after_s < 0 && req->rl_minute_reset > 0)
		{
			int64		s = req->rl_minute_reset - (int64) time(NULL);

			o->retry_after_s = (int) Max(Min(s, 3600), 0);
		}
	}
	else
		o->result = OUTBOX_PERMANENT;
}

/*
 * sales_api._outbox_states() -> (category, name, meaning): every state
 * ('state'), the pseudo-state of the view ('view state') and every kind
 * ('kind'), in the order of their definition.
 */
Datum
sales_api_outbox_states(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < OS_N + 1 + KIND_N; i++)
	{
		const char *category = i < OS_N ? "state" : i == OS_N ? "view state" : "kind";
		const OutboxName *n = i < OS_N ? &outbox_state_names[i] : i == OS_N ? &outbox_view_state :
			&outbox_kind_names[i - OS_N - 1];
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(category);
		values[1] = CStringGetTextDatum(n->name);
		values[2] = CStringGetTextDatum(n->meaning);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
