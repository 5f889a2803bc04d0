/*-------------------------------------------------------------------------
 *
 * mapal_wire.c
 *		Mapal on the wire: the business units' time zone and slots (shared by
 *		Real-time Sales and Cashrec), and the Real-time Sales request for one
 *		(unit, business day), built for the SQL function (mapal.c) and the
 *		worker (outbox_mapal.c) alike.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "json_util.h"
#include "parser/scansup.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "mapal_wire.h"
#include "server.h"

/* ------------------------------------------------------------------------
 * Time zones and slots
 * ------------------------------------------------------------------------
 */

/* The zone named by a server's timezone option, or the session's zone. */
pg_tz *
mapal_timezone(const char *tzname)
{
	pg_tz	   *tz;

	if (tzname == NULL)
		return session_timezone;
	tz = pg_tzset(tzname);
	if (tz == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" is not recognized", tzname),
				 errhint("Use a name from pg_timezone_names, for example Europe/Madrid.")));
	return tz;
}

/*
 * How timezone() reads a name first: as one of the session's time zone
 * abbreviations (TZ or DTZ: a fixed offset, *val seconds east of UTC;
 * DYNTZ: one whose offset changed over time), else 0 (a zone's name).
 */
static int
abbreviation_type(const char *tzname, int *val)
{
	char	   *low = downcase_truncate_identifier(tzname, strlen(tzname), false);
	pg_tz	   *abbrev_tz;
	int			type = DecodeTimezoneAbbrev(0, low, val, &abbrev_tz);

	pfree(low);
	return (type == TZ || type == DTZ || type == DYNTZ) ? type : 0;
}

/*
 * A few zone names are also time zone abbreviations: CET, EET, WET, MET,
 * and with some time zone data EST, MST, HST.  Where PostgreSQL reads a
 * name as either, it takes the abbreviation first (timestamp input, AT TIME
 * ZONE), a fixed offset, while pg_tzset() and the TimeZone setting take the
 * zone, whose offset changes with daylight-saving time.  The worker's
 * statements compute slots with AT TIME ZONE and mapal_slot() and Cashrec
 * with the zone, so for such a name half a year's slots would be an hour
 * apart.  Such a name is reported unless both readings are the same fixed
 * offset (UTC, GMT): attach() refuses it; CREATE and ALTER SERVER warn, so
 * that a dump of a server made before 0.8 still restores (its captures,
 * restored with it, keep computing their slots as they did).  The
 * abbreviations are those of the session's timezone_abbreviations.
 */
void
mapal_check_timezone_name(const char *tzname, int elevel, const char *hint)
{
	int			val;
	int			type = abbreviation_type(tzname, &val);
	pg_tz	   *tz;
	long		gmtoff;

	if (type == 0)
		return;
	tz = pg_tzset(tzname);
	if (type != DYNTZ && tz != NULL && pg_get_timezone_offset(tz, &gmtoff) && gmtoff == val)
		return;
	ereport(elevel,
			(errcode(elevel >= ERROR ? ERRCODE_INVALID_PARAMETER_VALUE : ERRCODE_WARNING),
			 errmsg("time zone name \"%s\" is also a time zone abbreviation", tzname),
			 errdetail("AT TIME ZONE reads \"%s\" as an abbreviation, not as the time zone of that name,"
					   " whose offsets from UTC differ from the abbreviation's.", tzname),
			 errhint("%s", hint)));
}

/*
 * The local start of the slot holding ts.  PostgreSQL's timestamp epoch,
 * 2000-01-01 00:00, is a midnight and slot lengths divide a day, so
 * flooring the local time to a multiple of the slot length aligns it to the
 * slots of its own day.  Infinities pass through unchanged.
 */
Timestamp
mapal_slot_start(TimestampTz ts, int slot_minutes, pg_tz *tz)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tzoff;
	Timestamp	local;
	int64		step = (int64) slot_minutes * USECS_PER_MINUTE;
	int64		rem;

	if (TIMESTAMP_NOT_FINITE(ts))
		return ts;
	if (timestamp2tm(ts, &tzoff, &tm, &fsec, NULL, tz) != 0 ||
		tm2timestamp(&tm, fsec, NULL, &local) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range"),
				 errdetail("%s cannot be shown in the time zone %s.", timestamptz_to_str(ts),
						   pg_get_timezone_name(tz)),
				 errhint("Pass a timestamp between the years 4713 BC and 294276 AD.")));
	rem = local % step;
	if (rem < 0)
		rem += step;
	return local - rem;
}

/*
 * A capture's slot clock.  Its statements wrote date_bin(slot, ts AT TIME
 * ZONE name, origin); for 100,000 rows of a zone such as Europe/Madrid
 * timezone() alone cost a bulk statement about 12 ms: each call lowercases
 * the name, looks it up among the abbreviations, then among the zones, and
 * breaks the time into fields and back.  Here the name is resolved once,
 * as timezone() resolves it (an abbreviation first, then a zone).  A
 * fixed-offset abbreviation (UTC, EST) is that offset; a zone's UTC offset
 * is kept with the span of time it holds for (pg_next_dst_boundary(), as
 * DetermineTimeZoneOffset() uses it), so a row costs a comparison and two
 * additions.  An abbreviation whose offset changed over time (DYNTZ) calls
 * timezone() itself, so the result is timezone()'s in every case; regress
 * test 42 compares the two.
 */
void
slot_clock_init(SlotClock *c, const char *tzname, int slot_minutes)
{
	int			val;
	int			type = abbreviation_type(tzname, &val);

	memset(c, 0, sizeof(*c));
	c->step = (int64) slot_minutes * USECS_PER_MINUTE;
	if (type != 0)
	{
		c->name = cstring_to_text(tzname);
		/* timezone(): dt2local(ts, -val) */
		c->fixed = type != DYNTZ;
		c->off = (int64) val * USECS_PER_SEC;
	}
	else
		c->tz = mapal_timezone(tzname);
}

/* seconds since 1970 <-> TimestampTz, as timestamp2tm() converts them */
#define UNIX_EPOCH_SECS ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)

/*
 * The UTC offset of c's zone at ts, and the span of time it holds for,
 * kept in c.  False when the zone cannot say (the caller then computes
 * the slot as timestamp2tm() does).
 */
static bool
slot_clock_span(SlotClock *c, TimestampTz ts)
{
	/* the whole second that timestamp2tm() asks the zone about */
	int64		secs = ts / USECS_PER_SEC - (ts % USECS_PER_SEC < 0 ? 1 : 0);
	pg_time_t	t = (pg_time_t) (secs + UNIX_EPOCH_SECS);
	long		before,
				after;
	int			before_dst,
				after_dst;
	pg_time_t	boundary;
	int			r = pg_next_dst_boundary(&t, &before, &before_dst, &boundary, &after, &after_dst, c->tz);
	struct pg_tm *tm;
	TimestampTz hi;

	if (r == 0)
	{
		/*
		 * No change after t, it says; but at a zone's last listed change
		 * (and every 400 years from it) it has not yet looked at the rule
		 * that goes on from there: ask about the next second too.
		 */
		pg_time_t	t1 = t + 1;
		long		before1;
		int			before1_dst;
		pg_time_t	boundary1;

		if (pg_next_dst_boundary(&t1, &before1, &before1_dst, &boundary1, &after, &after_dst, c->tz) == 1 &&
			before1 == before)
		{
			r = 1;
			boundary = boundary1;
		}
	}
	if (r < 0)
		return false;
	/* the offset timestamp2tm() would use, to be sure */
	tm = pg_localtime(&t, c->tz);
	if (tm == NULL || tm->tm_gmtoff != before)
		return false;
	if (r == 0 || boundary - UNIX_EPOCH_SECS >= PG_INT64_MAX / USECS_PER_SEC)
		hi = PG_INT64_MAX;
	else
		hi = (TimestampTz) (boundary - UNIX_EPOCH_SECS) * USECS_PER_SEC;
	/* the span kept, reached from earlier: widen it */
	if (c->cached && hi == c->hi && (int64) before * USECS_PER_SEC == c->off)
		c->lo = secs * USECS_PER_SEC;
	else
	{
		c->lo = secs * USECS_PER_SEC;
		c->hi = hi;
		c->off = (int64) before * USECS_PER_SEC;
		c->cached = true;
	}
	return true;
}

Timestamp
slot_clock_slot(SlotClock *c, TimestampTz ts)
{
	Timestamp	local;
	int64		rem;

	if (TIMESTAMP_NOT_FINITE(ts))
		return ts;
	if (c->tz != NULL && (!c->cached || ts < c->lo || ts >= c->hi) && !slot_clock_span(c, ts))
		return mapal_slot_start(ts, (int) (c->step / USECS_PER_MINUTE), c->tz);
	if (c->tz == NULL && !c->fixed)
		local = DatumGetTimestamp(DirectFunctionCall2(timestamptz_zone, PointerGetDatum(c->name),
													  TimestampTzGetDatum(ts)));
	else
	{
		local = ts + c->off;
		if (!IS_VALID_TIMESTAMP(local))
		{
			/* the error timezone() or timestamp2tm() gives */
			if (c->tz != NULL)
				return mapal_slot_start(ts, (int) (c->step / USECS_PER_MINUTE), c->tz);
			local = DatumGetTimestamp(DirectFunctionCall2(timestamptz_zone, PointerGetDatum(c->name),
														  TimestampTzGetDatum(ts)));
		}
	}
	rem = local % c->step;
	if (rem < 0)
		rem += c->step;
	return local - rem;
}

/* ------------------------------------------------------------------------
 * Real-time Sales
 * ------------------------------------------------------------------------
 */

/* Are these the same slot of the same unit, day, currency and sales type? */
bool
mapal_same_slot(const MapalSale *x, const MapalSale *y)
{
	return x->unit == y->unit && x->day == y->day && x->slot == y->slot &&
		strcmp(x->currency, y->currency) == 0 &&
		strcmp(x->sales_type, y->sales_type) == 0;
}

/* The request for one (unit, business day) carrying slots[0..n-1] */
HttpRequest *
mapal_build_request(SalesApiServer *srv, MapalSale **slots, int n)
{
	StringInfoData body;
	HttpRequest *req;

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"businessDay\":\"");
	dates_append_date(&body, slots[0]->day);
	appendStringInfoString(&body, "\",\"realTimeSales\":[");
	for (int i = 0; i < n; i++)
	{
		MapalSale	   *s = slots[i];

		appendStringInfoString(&body, i ? ",{\"currencyId\":" : "{\"currencyId\":");
		json_append_string(&body, s->currency);
		appendStringInfoString(&body, ",\"salesTypeId\":");
		json_append_string(&body, s->sales_type);
		appendStringInfoString(&body, ",\"timeSlotStart\":\"");
		dates_append_timestamp(&body, s->slot);
		appendStringInfoString(&body, "\",\"netSales\":");
		json_append_numeric(&body, s->net, "net_sales");
		appendStringInfoString(&body, ",\"grossSales\":");
		json_append_numeric(&body, s->gross, "gross_sales");
		appendStringInfo(&body, ",\"numChecks\":" INT64_FORMAT ",\"numGuests\":" INT64_FORMAT "}",
						 s->checks, s->guests);
	}
	appendStringInfoString(&body, "]}");

	/* unit ids are validated positive integers: nothing to percent-encode */
	req = http_request_new(srv->sales_method,
						   psprintf("%s/api/v1/business-unit/" INT64_FORMAT "/real-time-sales",
									srv->sales_url, slots[0]->unit));
	http_set_json_body(req, &body);
	return req;
}
