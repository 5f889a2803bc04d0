/*-------------------------------------------------------------------------
 *
 * connecteam_wire.h
 *		The Connecteam Sales Data API on the wire (connecteam_wire.c): a
 *		transaction's values, requests, the call and its answers, for the
 *		SQL functions (connecteam.c), the worker and the reconciliation.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_CONNECTEAM_WIRE_H
#define SALES_API_CONNECTEAM_WIRE_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/date.h"

#include "http.h"
#include "sales_api.h"
#include "server.h"

struct json_object;

/* documented: at most 100 transactions per request */
#define CT_MAX_ITEMS		100

/* amounts must be finite and below this in absolute value */
#define CT_AMOUNT_LIMIT		"1000000000000"

#define CT_HINT_LOCATION "Connecteam location ids are positive; sales_api.connecteam_locations() lists them."

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

/*
 * What is wrong with one transaction's values, for the SQL functions (which
 * raise it naming the row) and the worker (which dead-letters the row with
 * it): one set of rules for both.
 */
typedef struct CtProblem
{
	int			sqlstate;
	char	   *text;			/* e.g. unknown sale_type "sale" */
	char	   *detail;			/* a sentence, or NULL */
	const char *hint;			/* a sentence, or NULL */
} CtProblem;

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

/* a transaction's values */
extern bool ct_unix_seconds(TimestampTz ts, int64 *secs);
extern const char *ct_amount_problem(Datum num);
extern char *ct_numeric_str(Datum num);
extern bool ct_check_tx(CtTx *tx, bool location_null, int64 location_id, const char *sale_type,
						bool created_null, TimestampTz created_at, bool amount_null, Datum amount,
						bool tax_null, Datum tax, const char *currency, CtProblem *p);
extern char *ct_tx_from_outbox(CtTx *tx, bool location_null, int64 location_id,
							   const char *sale_type, bool created_null, TimestampTz created_at,
							   bool amount_null, Datum amount, bool tax_null, Datum tax,
							   const char *currency, char *reference);

/* requests */
extern HttpRequest *ct_build_post(SalesApiServer *srv, const CtTx *txs, int n);
extern HttpRequest *ct_build_delete(SalesApiServer *srv, const char *transaction_id);
extern HttpRequest *ct_build_delete_range(SalesApiServer *srv, int64 location_id,
										  int64 start_s, int64 end_s);
extern List *ct_location_id_chunks(int64 *ids, int n);

/* the call and its answers */
extern const char *ct_what(const char *method, const char *path);
extern struct json_object *ct_call(SalesApiServer *srv, HttpRequest *req, bool idempotent,
								   const char *what, const char *unknown_hint);
extern void ct_tx_success(const HttpRequest *req, const CtTx *txs, CtTxResult *res,
						  int first, int count);
extern Datum ct_optional_numeric(struct json_object *obj, const char *key, bool *isnull,
								 const char *what);
extern DateADT ct_entry_date(struct json_object *entry, const char *what);
extern List *ct_daily_sales_fetch(SalesApiServer *srv, DateADT start, DateADT end,
								  int64 *ids, int nids);

#endif							/* SALES_API_CONNECTEAM_WIRE_H */
