/*-------------------------------------------------------------------------
 *
 * cashrec_wire.h
 *		Mapal Cashrec on the wire (cashrec_wire.c): requests, the rows parsed
 *		from an answer, and the errors of a failed request.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_CASHREC_WIRE_H
#define SALES_API_CASHREC_WIRE_H

#include "postgres.h"

#include "pgtime.h"

#include "http.h"
#include "sales_api.h"
#include "server.h"

/* the typed fields of a record: result columns 0..14, then the record (15) */
#define CASHREC_NFIELDS 15
#define CASH_COLS (CASHREC_NFIELDS + 1)
#define CF_CENTER 0
#define CF_SHEET 1
#define CF_OPENED 5

typedef struct CashRow
{
	Datum		values[CASH_COLS];
	bool		nulls[CASH_COLS];
	char	   *sheet_id;		/* for ordering and de-duplication */
	int			seq;			/* arrival order, the last tie-breaker */
	bool		dup;
} CashRow;

/* One request and what it asked for, for messages. */
typedef struct CashRequest
{
	HttpRequest *req;
	char	   *centers;		/* "101,102" */
	char	   *start;			/* yyyy-MM-ddTHH:mm:ss */
	char	   *end;
} CashRequest;

extern CashRequest *cashrec_build_requests(SalesApiServer *srv, Timestamp start, Timestamp end,
										   int64 *centers, int ncenters,
										   HttpRequest ***reqs, int *nreqs);
extern void cashrec_response_rows(const CashRequest *cr, pg_tz *tz, CashRow ***rows,
								  int *nrows, int *cap);
extern void cashrec_report_error(const CashRequest *cr);

#endif							/* SALES_API_CASHREC_WIRE_H */
