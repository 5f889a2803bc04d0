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

/*
 * The sales of a staged row s (a row of one sale, or a row of arrays), in
 * the order of its arrays, as rows alias(k, loc, stype, ts, amt, tax, cur,
 * ord): for the statements that make them items (outbox_stage.c,
 * outbox_connecteam.c).
 */
#define STAGE_SALES_OF_S(alias) \
	"unnest(coalesce(s.sale_keys, ARRAY[s.sale_key]), coalesce(s.location_ids, ARRAY[s.location_id])," \
	"       coalesce(s.sale_types, ARRAY[s.sale_type]), coalesce(s.created_ats, ARRAY[s.created_at])," \
	"       coalesce(s.final_sale_amounts, ARRAY[s.final_sale_amount])," \
	"       coalesce(s.tax_amounts, ARRAY[s.tax_amount]), coalesce(s.currencies, ARRAY[s.currency]))" \
	" WITH ORDINALITY AS " alias "(k, loc, stype, ts, amt, tax, cur, ord)"

/*
 * args: capture id (int4), sale keys (text[]), most rows (int4), the
 * captures of a worker's claim (int4[]); 'n' in nulls: any
 */
extern void outbox_stage_warm(void);
extern void outbox_stage_warm_mapal(void);
extern int64 outbox_stage_expand(bool wait, Datum *args, const char *nulls);
extern int64 outbox_stage_expand_mapal(int max_rows, int max_slots, bool *more);
extern int64 outbox_stage_expire_leases(Datum busy);
extern bool outbox_stage_has_leases(void);

#endif							/* SALES_API_OUTBOX_STAGE_H */
