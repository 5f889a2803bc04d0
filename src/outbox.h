/*-------------------------------------------------------------------------
 *
 * outbox.h
 *		One cycle of the worker over the outbox (outbox.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_OUTBOX_H
#define SALES_API_OUTBOX_H

#include "postgres.h"

extern bool outbox_cycle(MemoryContext cycle_cxt, long *wait_ms);

#endif							/* SALES_API_OUTBOX_H */
