/*-------------------------------------------------------------------------
 *
 * outbox.h
 *		One cycle of the worker over the outbox (outbox.c), and the fixed
 *		statements the outbox code prepares once and keeps.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_OUTBOX_H
#define SALES_API_OUTBOX_H

#include "postgres.h"

#include "executor/spi.h"

#include "outbox_states.h"

#define OUTBOX_STMT_MAX_ARGS 8

/* A fixed statement: prepared on its first run, kept for the backend's life */
typedef struct OutboxStmt
{
	const char *sql;
	int			nargs;
	Oid			types[OUTBOX_STMT_MAX_ARGS];
	SPIPlanPtr	plan;
} OutboxStmt;

extern int	outbox_execute(OutboxStmt *stmt, Datum *values, const char *nulls,
						   bool read_only, long count);
extern bool outbox_cycle(MemoryContext cycle_cxt, long *wait_ms);

#endif							/* SALES_API_OUTBOX_H */
