/*-------------------------------------------------------------------------
 *
 * dates.h
 *		Dates and times as the vendors write them (dates.c): yyyy-MM-dd and
 *		yyyy-MM-ddTHH:mm:ss, the years 1 to 9999 those formats can hold, and
 *		a strict parser for what vendors send back.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SALES_API_DATES_H
#define SALES_API_DATES_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "pgtime.h"
#include "utils/date.h"

/* yyyy-MM-dd / yyyy-MM-ddTHH:mm:ss (fractions dropped); infinities by name */
extern void dates_append_date(StringInfo buf, DateADT d);
extern char *dates_date_str(DateADT d);
extern void dates_append_timestamp(StringInfo buf, Timestamp ts);
extern char *dates_timestamp_str(Timestamp ts);

/*
 * A timestamp's date.  Both count from 2000-01-01, so a finite one's date is
 * its microseconds divided by a day's, rounded down, with none of
 * timestamp_date()'s calendar work; the infinities map to the date
 * infinities, as timestamp_date() maps them.
 */
static inline DateADT
dates_timestamp_date(Timestamp ts)
{
	int64		days;

	if (TIMESTAMP_NOT_FINITE(ts))
		return TIMESTAMP_IS_NOBEGIN(ts) ? DATEVAL_NOBEGIN : DATEVAL_NOEND;
	days = ts / USECS_PER_DAY;
	if (ts % USECS_PER_DAY < 0)
		days--;
	return (DateADT) days;
}

/* finite and within the years 1 to 9999, so writable in those formats */
extern bool dates_date_in_range(DateADT d);
extern bool dates_timestamp_in_range(Timestamp ts);

/*
 * Strict parsers for vendors' values; false (never an ERROR) for anything
 * malformed or out of range.
 */
extern bool dates_parse_datetime(const char *s, struct pg_tm *tm, fsec_t *fsec,
							  bool *has_offset, int *offset_secs);
extern bool dates_parse_date(const char *s, bool date_only, DateADT *out);

#endif							/* SALES_API_DATES_H */
