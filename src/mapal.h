/*-------------------------------------------------------------------------
 *
 * mapal.h
 *		Helpers shared by the two Mapal APIs (mapal.c: Real-time Sales,
 *		cashrec.c: Cashrec): the business units' time zone and the local
 *		date-time format both APIs use, yyyy-MM-ddTHH:mm:ss with no offset.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_MAPAL_H
#define SALES_API_MAPAL_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "pgtime.h"
#include "utils/date.h"

/* The zone named by a server's timezone option, or the session's zone. */
extern pg_tz *mapal_timezone(const char *tzname);

/* Append yyyy-MM-dd / yyyy-MM-ddTHH:mm:ss (fractions of a second dropped). */
extern void mapal_append_date(StringInfo buf, DateADT d);
extern void mapal_append_timestamp(StringInfo buf, Timestamp ts);
extern char *mapal_timestamp_str(Timestamp ts);
extern char *mapal_date_str(DateADT d);

/* Start of the slot holding ts, in local time of tz. */
extern Timestamp mapal_slot_start(TimestampTz ts, int slot_minutes, pg_tz *tz);

#endif							/* SALES_API_MAPAL_H */
