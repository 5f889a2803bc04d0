/*-------------------------------------------------------------------------
 *
 * outbox_mapal.h
 *		Mapal's part of a worker cycle (outbox_mapal.c): claim dirty slots
 *		by whole unit-days with their totals, send them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_OUTBOX_MAPAL_H
#define SALES_API_OUTBOX_MAPAL_H

#include "outbox.h"

extern void outbox_mapal_warm(void);
extern void outbox_mapal_claim(OutboxCycle *c, int limit);
extern void outbox_mapal_plan(OutboxJob *job);

#endif							/* SALES_API_OUTBOX_MAPAL_H */
