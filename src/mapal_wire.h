/*-------------------------------------------------------------------------
 *
 * mapal_wire.h
 *		Mapal on the wire (mapal_wire.c): the business units' time zone and
 *		slots, shared by Real-time Sales (mapal.c, the worker) and Cashrec
 *		(cashrec.c), and the Real-time Sales request.  The local date-time
 *		format both APIs use, yyyy-MM-ddTHH:mm:ss with no offset, is in
 *		dates.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_MAPAL_WIRE_H
#define SALES_API_MAPAL_WIRE_H

#include "postgres.h"

#include "dates.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "pgtime.h"
#include "http.h"
#include "json_util.h"
#include "sales_api.h"
#include "server.h"
#include "utils/date.h"

/* One slot's totals, as sent in realTimeSales[] */
typedef struct MapalSale
{
	int			row;			/* 1-based position in the input (0: worker) */
	int64		unit;
	DateADT		day;
	char	   *currency;
	char	   *sales_type;
	Timestamp	slot;
	Datum		net;
	Datum		gross;
	int64		checks;			/* int64 so that sums cannot overflow */
	int64		guests;
} MapalSale;

/* The request for one (unit, business day) carrying slots[0..n-1] */
extern HttpRequest *mapal_build_request(SalesApiServer *srv, MapalSale **slots, int n);
extern bool mapal_same_slot(const MapalSale *x, const MapalSale *y);

/* The zone named by a server's timezone option, or the session's zone. */
extern pg_tz *mapal_timezone(const char *tzname);

/* Refuse a zone name that AT TIME ZONE reads as a different abbreviation. */
extern void mapal_check_timezone_name(const char *tzname, int elevel, const char *hint);

/* Start of the slot holding ts, in local time of tz. */
extern Timestamp mapal_slot_start(TimestampTz ts, int slot_minutes, pg_tz *tz);

/*
 * A capture's slots computed in C, as its statements compute them in SQL:
 * date_bin(slot, ts AT TIME ZONE name, '2000-01-01'), the same result for
 * every ts, at a fraction of the cost (mapal_wire.c).
 */
typedef struct SlotClock
{
	int64		step;			/* the slot's length, in microseconds */
	pg_tz	   *tz;				/* a zone name: its offsets, cached below */
	text	   *name;			/* else an abbreviation, for timezone() */
	bool		fixed;			/* a fixed-offset one: off, always */
	bool		cached;
	TimestampTz lo;				/* a zone's offset is off from lo to before hi */
	TimestampTz hi;
	int64		off;			/* in microseconds */
} SlotClock;

extern void slot_clock_init(SlotClock *c, const char *tzname, int slot_minutes);
extern Timestamp slot_clock_slot(SlotClock *c, TimestampTz ts);

#endif							/* SALES_API_MAPAL_WIRE_H */
