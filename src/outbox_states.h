/*-------------------------------------------------------------------------
 *
 * outbox_states.h
 *		The states and kinds of an outbox item, defined once (outbox_states.c):
 *		every statement the C code runs names them through these macros, and
 *		the regression test 41_outbox_states compares the schema's CHECK
 *		constraints, partial indexes, view and functions with
 *		sales_api._outbox_states(), which returns this table.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_OUTBOX_STATES_H
#define SALES_API_OUTBOX_STATES_H

#include "postgres.h"

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

extern const OutboxName outbox_state_names[OS_N];
extern const OutboxName outbox_kind_names[KIND_N];

extern OutboxKind outbox_kind_from_name(const char *name);

#endif							/* SALES_API_OUTBOX_STATES_H */
