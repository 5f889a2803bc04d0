/*-------------------------------------------------------------------------
 *
 * outbox_connecteam.h
 *		Connecteam's part of a worker cycle (outbox_connecteam.c): claim,
 *		send and record posts, deletes and replaced windows.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_OUTBOX_CONNECTEAM_H
#define SALES_API_OUTBOX_CONNECTEAM_H

#include "outbox.h"

extern void outbox_ct_warm(void);
extern void outbox_ct_claim(OutboxCycle *c);
extern void outbox_ct_plan_windows(OutboxCycle *c);
extern void outbox_ct_plan(OutboxJob *job);
extern void outbox_ct_settle_windows(OutboxCycle *c);
extern void outbox_ct_record(OutboxCycle *c);

#endif							/* SALES_API_OUTBOX_CONNECTEAM_H */
