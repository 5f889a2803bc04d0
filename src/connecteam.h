/*-------------------------------------------------------------------------
 *
 * connecteam.h
 *		Connecteam request building shared by the SQL functions
 *		(connecteam.c) and the background worker (outbox.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_CONNECTEAM_H
#define SALES_API_CONNECTEAM_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/date.h"
#include "http.h"
#include "sales_api.h"

/* documented: at most 100 transactions per request */
#define CT_MAX_ITEMS		100

/* one validated transaction */
typedef struct CtTx
{
	int64		location_id;
	const char *sale_type;
	int64		created_at;		/* Unix seconds, UTC */
	Datum		final_amount;
	Datum		tax_amount;
	bool		has_tax;
	char	   *currency;		/* NULL: left out */
	char	   *reference;		/* NULL allowed; never sent */
} CtTx;

/* what a caller gets back for one transaction */
typedef struct CtTxResult
{
	char	   *transaction_id;
	int			http_status;	/* 0: none */
	bool		ok;
	char	   *error;
} CtTxResult;

/* one location's day as the vendor reports it (ct_daily_sales_fetch) */
typedef struct CtDaily
{
	int64		location_id;
	DateADT		sales_date;
	Datum		total_sales;
	bool		total_null;
	Datum		projected_sales;
	bool		projected_null;
} CtDaily;

extern List *ct_daily_sales_fetch(SalesApiServer *srv, DateADT start, DateADT end,
								  int64 *ids, int nids);
extern char *ct_tx_from_outbox(CtTx *tx, bool location_null, int64 location_id,
							   const char *sale_type, bool created_null, TimestampTz created_at,
							   bool amount_null, Datum amount, bool tax_null, Datum tax,
							   const char *currency, char *reference);
extern HttpRequest *ct_build_post(SalesApiServer *srv, const CtTx *txs, int n);
extern HttpRequest *ct_build_delete(SalesApiServer *srv, const char *transaction_id);
extern HttpRequest *ct_build_delete_range(SalesApiServer *srv, int64 location_id,
										  int64 start_s, int64 end_s);
extern void ct_tx_success(const HttpRequest *req, const CtTx *txs, CtTxResult *res,
						  int first, int count);

#endif							/* SALES_API_CONNECTEAM_H */
