--
-- 42_mapal_capture_slots: the Mapal capture computes each row's slot in C
-- (SlotClock, src/mapal_wire.c) where its statements used to compute
-- date_bin(slot, sold_at AT TIME ZONE zone, '2000-01-01').  Here both are
-- compared on the same rows: zones with daylight-saving changes, half-hour
-- and 45-minute offsets and a 30-minute DST (Lord Howe); names that are
-- also abbreviations (CET, EST; MSK, whose offset changed over the years):
-- AT TIME ZONE takes them as abbreviations, and so must the capture (0.8's
-- attach() refuses such names, a capture attached before keeps its zone);
-- slot lengths of 5 to 60 minutes; times around every change of 2024-2027,
-- over three centuries, on to 2800 where the zones' rules go on past their
-- listed changes, and at the instants of changes; before the slot origin
-- (2000-01-01), the infinities and NULL; rows in ascending and in
-- descending order; a mapped business day.  The worker drains another
-- database, so what the triggers stage stays here to be read.
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS sales_api;
RESET client_min_messages;
CREATE TABLE slot_src (id bigserial PRIMARY KEY, unit int, at timestamptz, bday date);
CREATE TABLE slot_zones (srv name, tz text, minutes int, with_bday bool);
-- a zone name that SQL reads as an abbreviation of another offset: CREATE
-- and ALTER SERVER warn (a dump of a server made before 0.8 restores),
-- attach() refuses it, as the server's timezone or as the session's
-- TimeZone it falls back to; UTC, whose two readings agree, is accepted
\set bad_mapping '{"unit_id": "unit", "sold_at": "at", "currency_id": "''EUR''", "sales_type_id": "''TAKE''", "net_sales": "1", "gross_sales": "1"}'
CREATE SERVER z_bad FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', timezone 'CET');
SELECT sales_api.attach('slot_src', 'z_bad', :'bad_mapping');
ALTER SERVER z_bad OPTIONS (SET timezone 'wet');
ALTER SERVER z_bad OPTIONS (SET timezone 'UTC');
ALTER SERVER z_bad OPTIONS (DROP timezone);
SET TimeZone = 'EET';
SELECT sales_api.attach('slot_src', 'z_bad', :'bad_mapping');
RESET TimeZone;
SELECT count(*) AS captures_of_z_bad FROM sales_api.capture WHERE server_name = 'z_bad';
DROP SERVER z_bad;
INSERT INTO slot_zones VALUES
  ('z_madrid', 'Europe/Madrid', 15, false), ('z_saopaulo', 'America/Sao_Paulo', 30, false),
  ('z_lordhowe', 'Australia/Lord_Howe', 15, false), ('z_kathmandu', 'Asia/Kathmandu', 60, false),
  ('z_cet', 'CET', 15, false), ('z_est', 'EST', 5, false), ('z_msk', 'MSK', 15, false),
  ('z_utc', 'UTC', 15, false), ('z_newyork', 'America/New_York', 30, true);
-- CET, EST and MSK (an abbreviation whose offset changed over the years):
-- servers of another zone, their captures then given the name as 0.7
-- accepted and kept it
SELECT format('CREATE SERVER %I FOREIGN DATA WRAPPER sales_api OPTIONS (vendor %L, timezone %L, slot_minutes %L)',
              srv, 'mapal', CASE WHEN tz IN ('CET', 'EST', 'MSK') THEN 'Europe/Paris' ELSE tz END,
              minutes) FROM slot_zones ORDER BY srv \gexec
SET client_min_messages = error;
SELECT count(sales_api.attach('slot_src', srv,
         jsonb_build_object('unit_id', 'unit', 'sold_at', 'at', 'currency_id', '''EUR''',
                            'sales_type_id', '''TAKE''', 'net_sales', '1', 'gross_sales', '1')
         || CASE WHEN with_bday THEN jsonb_build_object('business_day', 'bday') ELSE '{}' END)) AS captures
  FROM slot_zones;
RESET client_min_messages;
UPDATE sales_api.capture c SET timezone = z.tz FROM slot_zones z
 WHERE c.server_name = z.srv AND z.tz IN ('CET', 'EST', 'MSK');
-- around every change of 2024-2027, ascending: a row every 61 min 7.25 s
INSERT INTO slot_src (unit, at, bday)
SELECT 1, timestamptz '2024-01-01 00:00:00.5+00' + i * interval '61 min 7.25 s',
       CASE WHEN i % 3 = 0 THEN date '2024-01-01' + i / 24 END
  FROM generate_series(0, 34500) i;
-- the same span descending, shifted off the first one's seconds
INSERT INTO slot_src (unit, at)
SELECT 2, timestamptz '2027-12-31 23:59:59.999999+00' - i * interval '53 min 11.000001 s'
  FROM generate_series(0, 39000) i;
-- three centuries, a row every 97 days 3 h 17 min, in both directions
INSERT INTO slot_src (unit, at)
SELECT 3, timestamptz '1900-01-01 00:00+00' + i * interval '97 days 3 h 17 min'
  FROM generate_series(0, 1130) i;
INSERT INTO slot_src (unit, at)
SELECT 4, timestamptz '2200-01-01 00:00+00' - i * interval '97 days 5 h 3 min'
  FROM generate_series(0, 1130) i;
-- past the zones' listed changes, where their rules go on (to 2800), and
-- the instants of changes themselves (the EU's and the US's rules to 2800,
-- in order, a second before, at and after each), each a statement
INSERT INTO slot_src (unit, at)
SELECT 7, timestamptz '2300-01-01 00:00:30+00' + i * interval '11 days 1 h 1 min'
  FROM generate_series(0, 18000) i;
INSERT INTO slot_src (unit, at)
SELECT 9, t + d * interval '1 s'
  FROM generate_series(2026, 2800) y,
       LATERAL (SELECT make_date(y, 3, 31) - extract(dow FROM make_date(y, 3, 31))::int AS mar,
                       make_date(y, 10, 31) - extract(dow FROM make_date(y, 10, 31))::int AS oct,
                       make_date(y, 3, 8) + (7 - extract(dow FROM make_date(y, 3, 8))::int) % 7 AS us_mar,
                       make_date(y, 11, 1) + (7 - extract(dow FROM make_date(y, 11, 1))::int) % 7 AS us_nov) r,
       unnest(ARRAY[r.mar + time '01:00', r.oct + time '01:00', r.us_mar + time '07:00',
                    r.us_nov + time '06:00']) AS t0,
       LATERAL (SELECT t0 AT TIME ZONE 'UTC') AS u(t),
       generate_series(-1, 1) d
 ORDER BY 2;
INSERT INTO slot_src (unit, at)
SELECT 8, t + d * interval '1 s'
  FROM unnest(ARRAY[timestamptz '2026-03-29 01:00+00', '2026-10-25 01:00+00', '2026-03-08 07:00+00',
                    '2026-11-01 06:00+00', '2026-04-05 15:00+00', '2026-10-04 15:30+00', '2037-10-25 01:00+00',
                    '2038-03-28 01:00+00', '2087-10-26 01:00+00', '2437-03-29 01:00+00']) t,
       generate_series(-1, 1) d;
-- one row a statement: the statement for one row, and times around the
-- origin, on a slot's start and a microsecond before it
INSERT INTO slot_src (unit, at) VALUES (5, '1999-12-31 23:45:00+00');
INSERT INTO slot_src (unit, at) VALUES (5, '1999-12-31 23:44:59.999999+00');
INSERT INTO slot_src (unit, at) VALUES (5, '2000-01-01 00:00:00+00');
INSERT INTO slot_src (unit, at) VALUES (5, '1969-12-31 23:59:59.999999+00');
INSERT INTO slot_src (unit, at) VALUES (5, '1901-12-13 20:45:52+00');
INSERT INTO slot_src (unit, at) VALUES (5, '2038-01-19 03:14:08+00');
INSERT INTO slot_src (unit, at) VALUES (5, 'infinity'), (5, '-infinity'), (5, NULL);
-- what the captures staged, each slot of a statement once, against SQL's
-- slots of the same rows
CREATE TEMP TABLE staged AS
SELECT z.srv, x.unit, x.day, x.slot
  FROM sales_api.mapal_stage ms
  JOIN sales_api.capture c ON c.id = ms.capture_id
  JOIN slot_zones z ON z.srv = c.server_name
  CROSS JOIN LATERAL unnest(ms.unit_ids, ms.business_days, ms.slot_starts) AS x(unit, day, slot);
CREATE TEMP TABLE computed AS
SELECT z.srv, s.unit, coalesce(CASE WHEN z.with_bday THEN s.bday END, sl::date) AS day, sl AS slot
  FROM slot_src s CROSS JOIN slot_zones z
  CROSS JOIN LATERAL (SELECT date_bin(make_interval(mins => z.minutes), s.at AT TIME ZONE z.tz,
                                      timestamp '2000-01-01')) AS b(sl);
SELECT srv, count(*) AS staged, count(DISTINCT (unit, day, slot)) AS distinct_staged
  FROM staged GROUP BY srv ORDER BY srv;
SELECT 'staged, not computed' AS side, * FROM (SELECT * FROM staged EXCEPT SELECT * FROM computed) d
UNION ALL
SELECT 'computed, not staged', * FROM (SELECT * FROM computed EXCEPT SELECT * FROM staged) d
ORDER BY 1, 2, 3, 5 LIMIT 20;
-- a time the zone's offsets put out of range fails as AT TIME ZONE does
-- (terse: which capture's trigger fires first depends on their ids)
\set VERBOSITY terse
INSERT INTO slot_src (unit, at) VALUES (6, '294276-12-31 23:59:59+00');
\set VERBOSITY default
SELECT count(*) AS rows_with_unit_6 FROM slot_src WHERE unit = 6;
-- clean up
SELECT count(sales_api.detach('slot_src', srv)) FROM slot_zones;
DELETE FROM sales_api.mapal_stage WHERE capture_id IN
  (SELECT id FROM sales_api.capture WHERE server_name IN (SELECT srv FROM slot_zones));
DROP TABLE slot_src, slot_zones;
SELECT format('DROP SERVER %I', srv) FROM (VALUES ('z_madrid'), ('z_saopaulo'), ('z_lordhowe'), ('z_kathmandu'),
  ('z_cet'), ('z_est'), ('z_msk'), ('z_utc'), ('z_newyork')) v(srv) ORDER BY 1 \gexec
