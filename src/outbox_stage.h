/*-------------------------------------------------------------------------
 *
 * outbox_stage.h
 *		Staged Connecteam sales and Mapal slots made outbox items
 *		(outbox_stage.c), for the worker's cycle and the capture trigger.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_OUTBOX_STAGE_H
#define SALES_API_OUTBOX_STAGE_H

#include "postgres.h"

/* args: capture id (int4), sale keys (text[]), most rows (int4); 'n' in nulls: any */
extern int64 outbox_stage_expand(bool wait, Datum *args, const char *nulls);
extern int64 outbox_stage_expand_mapal(int max_rows);

#endif							/* SALES_API_OUTBOX_STAGE_H */
