/*-------------------------------------------------------------------------
 *
 * outbox_states.c
 *		The states and kinds of an outbox item, the one table of their names,
 *		and sales_api._outbox_states(), which returns it to SQL so that a test
 *		holds the schema to it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "outbox_states.h"

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
