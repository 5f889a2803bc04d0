/*-------------------------------------------------------------------------
 *
 * dates.c
 *		Dates and times in the vendors' formats, shared by the Mapal,
 *		Cashrec and Connecteam code: writing them whatever DateStyle says,
 *		checking that a value fits them, and parsing what vendors send.
 *
 * Both vendors write dates as yyyy-MM-dd and Mapal local times as
 * yyyy-MM-ddTHH:mm:ss, so only the years 1 to 9999 can be sent.  Parsing is
 * done by hand, strictly and with range checks, so that a malformed vendor
 * value is the caller's bad-response error and never a datetime error from
 * deep inside PostgreSQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "dates.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

void
dates_append_date(StringInfo buf, DateADT d)
{
	int			y,
				m,
				dd;

	if (DATE_NOT_FINITE(d))
	{
		appendStringInfoString(buf, DATE_IS_NOBEGIN(d) ? "-infinity" : "infinity");
		return;
	}
	j2date(d + POSTGRES_EPOCH_JDATE, &y, &m, &dd);
	appendStringInfo(buf, "%04d-%02d-%02d", y, m, dd);
}

char *
dates_date_str(DateADT d)
{
	StringInfoData buf;

	initStringInfo(&buf);
	dates_append_date(&buf, d);
	return buf.data;
}

void
dates_append_timestamp(StringInfo buf, Timestamp ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(ts) ||
		timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
	{
		appendStringInfoString(buf, TIMESTAMP_IS_NOBEGIN(ts) ? "-infinity" : "infinity");
		return;
	}
	appendStringInfo(buf, "%04d-%02d-%02dT%02d:%02d:%02d",
					 tm.tm_year, tm.tm_mon, tm.tm_mday,
					 tm.tm_hour, tm.tm_min, tm.tm_sec);
}

char *
dates_timestamp_str(Timestamp ts)
{
	StringInfoData buf;

	initStringInfo(&buf);
	dates_append_timestamp(&buf, ts);
	return buf.data;
}

bool
dates_date_in_range(DateADT d)
{
	int			y,
				m,
				dd;

	if (DATE_NOT_FINITE(d))
		return false;
	j2date(d + POSTGRES_EPOCH_JDATE, &y, &m, &dd);
	return y >= 1 && y <= 9999;
}

bool
dates_timestamp_in_range(Timestamp ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	return !TIMESTAMP_NOT_FINITE(ts) &&
		timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) == 0 &&
		tm.tm_year >= 1 && tm.tm_year <= 9999;
}

static bool
parse_digits(const char **p, int n, int *out)
{
	int			v = 0;

	for (int i = 0; i < n; i++)
	{
		if (!isdigit((unsigned char) (*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

/*
 * Parse yyyy-MM-dd[(T| )HH:mm[:ss[.fraction]]][Z|(+|-)HH[:mm]] strictly,
 * with range checks.
 */
bool
dates_parse_datetime(const char *s, struct pg_tm *tm, fsec_t *fsec,
				  bool *has_offset, int *offset_secs)
{
	const char *p = s;

	memset(tm, 0, sizeof(*tm));
	*fsec = 0;
	*has_offset = false;
	*offset_secs = 0;
	if (!parse_digits(&p, 4, &tm->tm_year) || *p++ != '-' ||
		!parse_digits(&p, 2, &tm->tm_mon) || *p++ != '-' ||
		!parse_digits(&p, 2, &tm->tm_mday))
		return false;
	if (tm->tm_year < 1 || tm->tm_mon < 1 || tm->tm_mon > 12 || tm->tm_mday < 1 ||
		tm->tm_mday > day_tab[isleap(tm->tm_year)][tm->tm_mon - 1])
		return false;
	if (*p == '\0')
		return true;
	if (*p != 'T' && *p != ' ')
		return false;
	p++;
	if (!parse_digits(&p, 2, &tm->tm_hour) || *p++ != ':' ||
		!parse_digits(&p, 2, &tm->tm_min))
		return false;
	if (*p == ':')
	{
		p++;
		if (!parse_digits(&p, 2, &tm->tm_sec))
			return false;
		if (*p == '.')
		{
			int			scale = 100000;

			p++;
			if (!isdigit((unsigned char) *p))
				return false;
			for (; isdigit((unsigned char) *p); p++, scale /= 10)
				*fsec += (*p - '0') * scale;
		}
	}
	if (tm->tm_hour > 23 || tm->tm_min > 59 || tm->tm_sec > 59)
		return false;
	if (*p == 'Z' || *p == 'z')
	{
		*has_offset = true;
		p++;
	}
	else if (*p == '+' || *p == '-')
	{
		int			sign = (*p == '-') ? -1 : 1;
		int			hh,
					mm = 0;

		p++;
		if (!parse_digits(&p, 2, &hh))
			return false;
		if (*p == ':')
			p++;
		if (isdigit((unsigned char) *p) && !parse_digits(&p, 2, &mm))
			return false;
		if (hh > 15 || mm > 59)
			return false;
		*has_offset = true;
		*offset_secs = sign * (hh * 3600 + mm * 60);
	}
	return *p == '\0';
}

/*
 * A date as written: exactly yyyy-MM-dd with date_only, else the date part
 * of any value dates_parse_datetime() takes (a business day is the date as
 * written, whatever time may follow it).
 */
bool
dates_parse_date(const char *s, bool date_only, DateADT *out)
{
	struct pg_tm tm;
	fsec_t		fsec;
	bool		has_offset;
	int			offset;

	if (s == NULL || (date_only && strlen(s) != 10))
		return false;
	if (!dates_parse_datetime(s, &tm, &fsec, &has_offset, &offset))
		return false;
	*out = date2j(tm.tm_year, tm.tm_mon, tm.tm_mday) - POSTGRES_EPOCH_JDATE;
	return true;
}
