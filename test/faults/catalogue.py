#!/usr/bin/env python3
"""test/faults/catalogue.py: the bad-input catalogue.

Calls every SQL function of sales_api with inputs it must refuse or handle,
and every vendor function against every class of bad vendor response the
mock can play, one psql session per input, and checks each against what the
README documents:

  * an error: the SQLSTATE must be the documented one (never XX000, never a
    crash: the backend must survive and the postmaster must not restart);
  * an argument error must reach no vendor ("never a partial send": the mock
    logs no request for it);
  * a documented result (no rows, a row with ok = false, a value that round
    trips exactly) is checked by a small predicate on the output.

Prints one line per input that did not behave as documented, then
"catalogue: N inputs tried, M behaved as documented".  Exit status 1 unless
every input did.  Needs the cluster and mock of test/run-tests or
test/with-env; works in its own database (sa_catalogue).

  test/with-env test/faults/catalogue.py [-v] [-k SUBSTRING]
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pgmock import lit, mock, mock_requests_since, mock_seq, psql as _psql  # noqa: E402

DB = "sa_catalogue"
MOCK = os.environ["MOCK_URL"]
MOCK_HTTP = os.environ.get("MOCK_HTTP_URL", "")
VERBOSE = "-v" in sys.argv
ONLY = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
PGLOG = os.environ.get("SA_PGLOG")


def psql(sql, db=DB, timeout=120):
    return _psql(sql, db, timeout)


def postmaster_start():
    return psql("SELECT pg_postmaster_start_time()", db="postgres")[1].strip()


# ---------------------------------------------------------------------------
# entries
# ---------------------------------------------------------------------------

class E:
    """One input.  expect: a tuple of acceptable SQLSTATEs, or "ok" (no error;
    check(stdout) must then hold).  nosend: the mock must log no request."""

    def __init__(self, group, label, sql, expect, nosend=None, check=None, faults=(), settings=""):
        self.group, self.label, self.sql = group, label, sql
        self.expect = expect if expect == "ok" else tuple(expect if isinstance(expect, (tuple, list)) else (expect,))
        self.nosend = (expect != "ok") if nosend is None else nosend
        self.check, self.faults, self.settings = check, faults, settings
        if group == "server options":
            self.sql = "BEGIN;\n" + sql + ";\nROLLBACK;"


ENTRIES = []


def add(*a, **k):
    ENTRIES.append(E(*a, **k))


def rows(n):
    return lambda out: len([l for l in out.splitlines() if l.strip()]) == n


def equals(text):
    return lambda out: out.strip() == text


WEIRD = [
    ("quote", "it's a 'quoted' name"),
    ("backslash", "back\\slash\\n\\x00"),
    ("percent", "%s%s%n%d%%"),
    ("newline", "new\nline\r\ttab"),
    ("multibyte", "ñandú ☃ 中文 🍕"),
    ("sql", "\"; DROP TABLE pos; --"),
    ("url", "../../x?y=1&z=2#frag"),
]

DAY = "'2026-11-20'"

# --- every vendor function: its server argument ---------------------------
CALLS = {
    # name: (SQL with {s} for the server, vendor)
    "check_server": ("SELECT auth_ok FROM sales_api.check_server({s})", None),
    "mapal_push_sales[]": ("SELECT count(*) FROM sales_api.mapal_push_sales({s}, ARRAY[ROW(1001, " + DAY +
                           ", 'EUR', 'TAKE', '2026-11-20 10:00', 1, 2, 1, 1)::sales_api.mapal_sale])", "mapal"),
    "mapal_push_sales(text)": ("SELECT count(*) FROM sales_api.mapal_push_sales({s}, $$SELECT 1001 AS unit_id, "
                               "date " + DAY + " AS business_day, 'EUR' AS currency_id, 'TAKE' AS sales_type_id, "
                               "timestamp '2026-11-20 10:00' AS slot_start, 1 AS net_sales, 2 AS gross_sales, "
                               "1 AS num_checks, 1 AS num_guests$$)", "mapal"),
    "mapal_slot": ("SELECT sales_api.mapal_slot({s}, '2026-11-20 10:07+00')", "mapal"),
    "cashrec_fetch": ("SELECT count(*) FROM sales_api.cashrec_fetch({s}, '2026-11-20', '2026-11-20 23:59:59', '{{101}}')",
                      "mapal"),
    "connecteam_post_transactions[]": ("SELECT count(*) FROM sales_api.connecteam_post_transactions({s}, ARRAY[ROW(1, "
                                       "'SALE', '2026-11-20 10:00+00', 1.00, NULL, NULL, 'r1')::sales_api.connecteam_transaction])",
                                       "connecteam"),
    "connecteam_post_transactions(text)": ("SELECT count(*) FROM sales_api.connecteam_post_transactions({s}, $$SELECT 1 AS "
                                           "location_id, 'SALE' AS sale_type, now() AS created_at, 1.00 AS final_sale_amount, "
                                           "NULL::numeric AS tax_amount, NULL AS currency, 'r' AS reference$$)", "connecteam"),
    "connecteam_locations": ("SELECT count(*) FROM sales_api.connecteam_locations({s})", "connecteam"),
    "connecteam_create_location": ("SELECT count(*) FROM sales_api.connecteam_create_location({s}, 'x')", "connecteam"),
    "connecteam_delete_transaction": ("SELECT sales_api.connecteam_delete_transaction({s}, 'abc')", "connecteam"),
    "connecteam_delete_transactions": ("SELECT sales_api.connecteam_delete_transactions({s}, 1, '2026-11-20', '2026-11-21')",
                                       "connecteam"),
    "connecteam_daily_sales": ("SELECT count(*) FROM sales_api.connecteam_daily_sales({s}, " + DAY + ", " + DAY + ")",
                               "connecteam"),
    "connecteam_set_projected_sales[]": ("SELECT count(*) FROM sales_api.connecteam_set_projected_sales({s}, 1, "
                                         "ARRAY[(" + DAY + ", 10)]::sales_api.connecteam_projected_sale[])", "connecteam"),
    "connecteam_set_projected_sales(text)": ("SELECT count(*) FROM sales_api.connecteam_set_projected_sales({s}, 1, "
                                             "$$SELECT date " + DAY + " AS sales_date, 10 AS projected_sales$$)", "connecteam"),
    "connecteam_rate_limit": ("SELECT count(*) FROM sales_api.connecteam_rate_limit({s})", "connecteam"),
}

for fn, (sql, vendor) in CALLS.items():
    g = "server argument"
    strict = fn == "mapal_slot"
    add(g, f"{fn}: NULL server", sql.format(s="NULL"), "ok" if strict else "22004",
        check=equals("") if strict else None, nosend=True)
    add(g, f"{fn}: unknown server", sql.format(s="'no_such_server'"), "42704")
    for wname, w in WEIRD:
        add(g, f"{fn}: server name with {wname}", sql.format(s=lit(w)), "42704")
    add(g, f"{fn}: server of another wrapper", sql.format(s="'not_ours'"), "42809")
    if vendor:
        other = "connecteam" if vendor == "mapal" else "mapal"
        add(g, f"{fn}: {other} server for a {vendor} function", sql.format(s=lit(other)), "42809")
        if fn != "mapal_slot":     # mapal_slot reads only public server options
            add(g, f"{fn}: no user mapping", sql.format(s=lit(vendor + "_nomap")), "42704")
    else:
        add(g, f"{fn}: no user mapping", sql.format(s="'mapal_nomap'"), "42704")

# --- mapal_push_sales: rows ----------------------------------------------------
g = "mapal_push_sales"
FIELDS = ["unit_id", "business_day", "currency_id", "sales_type_id", "slot_start", "net_sales", "gross_sales",
          "num_checks", "num_guests"]
GOOD = ["1001", DAY, "'EUR'", "'TAKE'", "'2026-11-20 10:00'", "10.00", "12.10", "2", "3"]


def msale(**over):
    vals = [over.get(f, GOOD[i]) for i, f in enumerate(FIELDS)]
    return "ROW(" + ", ".join(vals) + ")::sales_api.mapal_sale"


def mpush(*sales, extra=""):
    return f"SELECT unit_id, ok, error IS NOT NULL FROM sales_api.mapal_push_sales('mapal', ARRAY[{', '.join(sales)}]{extra})"


add(g, "NULL array pushes nothing", "SELECT count(*) FROM sales_api.mapal_push_sales('mapal', NULL::sales_api.mapal_sale[])",
    "ok", check=equals("0"), nosend=True)
add(g, "empty array pushes nothing", "SELECT count(*) FROM sales_api.mapal_push_sales('mapal', '{}'::sales_api.mapal_sale[])",
    "ok", check=equals("0"), nosend=True)
add(g, "a NULL element", mpush(msale(), "NULL::sales_api.mapal_sale"), "22004")
for i, f in enumerate(FIELDS):
    add(g, f"NULL {f}", mpush(msale(**{f: "NULL"})), "22004")
add(g, "unit_id 0", mpush(msale(unit_id="0")), "22023")
add(g, "unit_id -1", mpush(msale(unit_id="-1")), "22023")
add(g, "unit_id max bigint", mpush(msale(unit_id="9223372036854775807")), "ok", check=equals("9223372036854775807|f|t"),
    nosend=False)
add(g, "empty currency", mpush(msale(currency_id="''")), "22023")
add(g, "blank sales type", mpush(msale(sales_type_id="'   '")), "22023")
add(g, "business_day infinity", mpush(msale(business_day="'infinity'")), "22008")
add(g, "slot_start infinity", mpush(msale(slot_start="'infinity'")), "22008")
add(g, "slot_start -infinity", mpush(msale(slot_start="'-infinity'")), "22008")
add(g, "slot_start year 294276", mpush(msale(slot_start="'294276-12-31 23:45'", business_day="'294276-12-31'")), "22008")
add(g, "slot_start 4713 BC", mpush(msale(slot_start="'4713-01-01 00:00 BC'", business_day="'4713-01-01 BC'")),
    ("22008", "22023"), nosend=True)
add(g, "slot on another day", mpush(msale(slot_start="'2026-11-21 10:00'")), "22023")
add(g, "slot not aligned", mpush(msale(slot_start="'2026-11-20 10:07'")), "22023")
add(g, "slot with seconds", mpush(msale(slot_start="'2026-11-20 10:15:30'")), "22023")
add(g, "negative num_checks", mpush(msale(num_checks="-1")), "22023")
add(g, "negative num_guests", mpush(msale(num_guests="-1")), "22023")
for v in ("'NaN'", "'Infinity'", "'-Infinity'"):
    add(g, f"net_sales {v}", mpush(msale(net_sales=v + "::numeric")), "22023")
    add(g, f"gross_sales {v}", mpush(msale(gross_sales=v + "::numeric")), "22023")
add(g, "net greater than gross", mpush(msale(net_sales="13", gross_sales="12")), "22023")
add(g, "huge amounts (10^30) go out exactly", mpush(msale(net_sales="1e30", gross_sales="2e30")), "ok",
    check=lambda o: o.strip() in ("1001|t|f", "1001|f|t"), nosend=False)
add(g, "1000-digit amount", mpush(msale(net_sales="(10::numeric ^ 999)", gross_sales="(10::numeric ^ 999)")), "ok",
    check=lambda o: o.strip() in ("1001|t|f", "1001|f|t"), nosend=False)
for wname, w in WEIRD:
    add(g, f"currency with {wname}: the vendor's refusal is a row", mpush(msale(currency_id=lit(w))), "ok",
        check=equals("1001|f|t"), nosend=False)
    add(g, f"sales type with {wname}: the vendor's refusal is a row", mpush(msale(sales_type_id=lit(w))), "ok",
        check=equals("1001|f|t"), nosend=False)
add(g, "on_duplicate bogus", mpush(msale(), extra=", on_duplicate => 'bogus'"), "22023")
add(g, "on_duplicate NULL", mpush(msale(), extra=", on_duplicate => NULL"), "22004")
add(g, "raise_on_error NULL", mpush(msale(), extra=", raise_on_error => NULL"), "22004")
add(g, "duplicates with on_duplicate error", mpush(msale(), msale(), extra=", on_duplicate => 'error'"), "23505")
add(g, "10,000 rows of one slot are summed into one request",
    "SELECT slots_sent, ok FROM sales_api.mapal_push_sales('mapal', (SELECT array_agg(ROW(1001, date " + DAY + ", 'EUR', 'TAKE', "
    "timestamp '2026-11-20 10:00', 1.00, 1.21, 1, 1)::sales_api.mapal_sale) FROM generate_series(1, 10000)))",
    "ok", check=equals("1|t"), nosend=False)
add(g, "a 2-D array", "SELECT count(*) FROM sales_api.mapal_push_sales('mapal', ARRAY[[" + msale() + "], [" + msale() + "]])",
    ("22023", "2202E", "ok"), check=equals("1"), nosend=None)
# source form
add(g, "source NULL", "SELECT count(*) FROM sales_api.mapal_push_sales('mapal', NULL::text)", ("22004", "ok"),
    check=equals("0"), nosend=True)
add(g, "source empty", "SELECT count(*) FROM sales_api.mapal_push_sales('mapal', '')", ("22023", "42601"))
add(g, "source: unknown relation", "SELECT count(*) FROM sales_api.mapal_push_sales('mapal', 'no_such_table')", "42P01")
add(g, "source: missing columns", "SELECT count(*) FROM sales_api.mapal_push_sales('mapal', 'SELECT 1 AS unit_id')",
    ("42703", "22023"))
add(g, "source: syntax error", "SELECT count(*) FROM sales_api.mapal_push_sales('mapal', 'SELEC 1')", "42601")
add(g, "source: two statements", "SELECT count(*) FROM sales_api.mapal_push_sales('mapal', 'SELECT 1; SELECT 2')",
    ("42601", "22023", "0A000"))
add(g, "source: text in unit_id", "SELECT count(*) FROM sales_api.mapal_push_sales('mapal', $$SELECT 'abc' AS unit_id, "
    "date " + DAY + " AS business_day, 'EUR' AS currency_id, 'TAKE' AS sales_type_id, timestamp '2026-11-20 10:00' "
    "AS slot_start, 1 AS net_sales, 2 AS gross_sales, 1 AS num_checks, 1 AS num_guests$$)", ("22P02", "42846"))
add(g, "source: a statement that writes", "SELECT count(*) FROM sales_api.mapal_push_sales('mapal', "
    "'INSERT INTO cat_scratch VALUES (1) RETURNING 1 AS unit_id')", ("0A000", "25006", "42703", "22023", "42601"))

# --- mapal_slot / time_slot -------------------------------------------------------
g = "mapal_slot, time_slot"
add(g, "mapal_slot infinity", "SELECT sales_api.mapal_slot('mapal', 'infinity')", ("22008", "ok"),
    check=equals("infinity"), nosend=True)
add(g, "mapal_slot NULL ts (strict)", "SELECT sales_api.mapal_slot('mapal', NULL)", "ok", check=equals(""), nosend=True)
for v, exp in (("0", "22023"), ("-15", "22023"), ("7", "22023"), ("1441", "22023"), ("2147483647", "22023"),
               ("1440", "ok"), ("1", "ok")):
    add(g, f"time_slot slot_minutes {v}", f"SELECT sales_api.time_slot('2026-11-20 10:07+00', {v}, 'UTC')", exp,
        check=(lambda o: o.strip().startswith("2026-11-20")) if exp == "ok" else None, nosend=True)
add(g, "time_slot unknown zone", "SELECT sales_api.time_slot(now(), 15, 'Mars/Olympus')", "22023")
for wname, w in WEIRD:
    # 'back\slash\n\x00' is a POSIX zone spec to PostgreSQL (UTC): zones are PostgreSQL's
    add(g, f"time_slot zone with {wname}", f"SELECT sales_api.time_slot(now(), 15, {lit(w)})",
        ("22023", "ok") if wname == "backslash" else "22023", check=lambda o: o.strip() != "", nosend=True)
add(g, "time_slot infinity", "SELECT sales_api.time_slot('infinity', 15, 'UTC')", ("22008", "ok"), check=equals("infinity"),
    nosend=True)
add(g, "time_slot NULLs (strict)", "SELECT sales_api.time_slot(NULL, NULL, NULL)", "ok", check=equals(""), nosend=True)

# --- cashrec_fetch -----------------------------------------------------------------
g = "cashrec_fetch"


def cash(a, b, c):
    return f"SELECT count(*) FROM sales_api.cashrec_fetch('mapal', {a}, {b}, {c})"


add(g, "NULL start", cash("NULL", "'2026-11-20 23:59'", "'{101}'"), "22004")
add(g, "NULL end", cash("'2026-11-20'", "NULL", "'{101}'"), "22004")
add(g, "NULL centres", cash("'2026-11-20'", "'2026-11-20 23:59'", "NULL"), "22004")
add(g, "end before start", cash("'2026-11-21'", "'2026-11-20'", "'{101}'"), "22023")
add(g, "start -infinity", cash("'-infinity'", "'2026-11-20'", "'{101}'"), ("22008", "22023"))
add(g, "end infinity", cash("'2026-11-20'", "'infinity'", "'{101}'"), ("22008", "22023"))
add(g, "empty centres: no rows, no request", cash("'2026-11-20'", "'2026-11-20 23:59'", "'{}'"), "ok", check=equals("0"))
add(g, "a NULL centre", cash("'2026-11-20'", "'2026-11-20 23:59'", "'{101,NULL}'"), "22004")
add(g, "centre 0", cash("'2026-11-20'", "'2026-11-20 23:59'", "'{0}'"), "22023")
add(g, "centre -5", cash("'2026-11-20'", "'2026-11-20 23:59'", "'{-5}'"), "22023")
add(g, "two centuries: more than 1000 requests", cash("'1900-01-01'", "'2099-12-31'", "'{101}'"), "54000")
add(g, "60,000 centres: more than 1000 requests", cash("'2026-11-20'", "'2026-11-20 23:59'",
                                                       "(SELECT array_agg(i) FROM generate_series(1, 60000) i)"), "54000")
add(g, "repeated centres are sent once", cash("'2026-11-20'", "'2026-11-20 23:59:59'", "'{101,101,101}'"), "ok",
    check=equals("2"), nosend=False)
add(g, "a 2-D centre array", cash("'2026-11-20'", "'2026-11-20 23:59:59'", "'{{101},{102}}'"), ("22023", "2202E", "ok"),
    check=equals("4"), nosend=None)

# --- connecteam_post_transactions ----------------------------------------------------
g = "connecteam_post_transactions"
TF = ["location_id", "sale_type", "created_at", "final_sale_amount", "tax_amount", "currency", "reference"]
TGOOD = ["1", "'SALE'", "'2026-11-20 10:00:00+00'", "12.30", "1.10", "'EUR'", "'ref-1'"]


def ctx_(**over):
    vals = [over.get(f, TGOOD[i]) for i, f in enumerate(TF)]
    return "ROW(" + ", ".join(vals) + ")::sales_api.connecteam_transaction"


def cpost(*txs, cols="reference, ok, error IS NULL"):
    return f"SELECT {cols} FROM sales_api.connecteam_post_transactions('connecteam', ARRAY[{', '.join(txs)}])"


add(g, "NULL array: no rows, no request", "SELECT count(*) FROM sales_api.connecteam_post_transactions('connecteam', "
    "NULL::sales_api.connecteam_transaction[])", "ok", check=equals("0"), nosend=True)
add(g, "empty array: no rows, no request", "SELECT count(*) FROM sales_api.connecteam_post_transactions('connecteam', "
    "'{}'::sales_api.connecteam_transaction[])", "ok", check=equals("0"), nosend=True)
add(g, "a NULL element", cpost(ctx_(), "NULL::sales_api.connecteam_transaction"), "22004")
for f in ("location_id", "sale_type", "created_at", "final_sale_amount"):
    add(g, f"NULL {f}", cpost(ctx_(**{f: "NULL"})), "22004")
add(g, "NULL tax and currency are left out", cpost(ctx_(tax_amount="NULL", currency="NULL")), "ok",
    check=equals("ref-1|t|t"), nosend=False)
add(g, "location 0", cpost(ctx_(location_id="0")), "22023")
add(g, "location -7", cpost(ctx_(location_id="-7")), "22023")
add(g, "empty currency", cpost(ctx_(currency="''")), "22023")
add(g, "created_at infinity", cpost(ctx_(created_at="'infinity'")), "22008")
add(g, "created_at -infinity", cpost(ctx_(created_at="'-infinity'")), "22008")
add(g, "created_at 1969", cpost(ctx_(created_at="'1969-12-31 23:59:59+00'")), "22008")
add(g, "created_at 2100", cpost(ctx_(created_at="'2100-01-01 00:00:00+00'")), "22008")
for v in ("'NaN'", "'Infinity'", "'-Infinity'", "1e12", "-1e12", "(10::numeric ^ 999)"):
    add(g, f"final_sale_amount {v}", cpost(ctx_(final_sale_amount=v + "::numeric")), "22003")
    add(g, f"tax_amount {v}", cpost(ctx_(tax_amount=v + "::numeric")), "22003")
add(g, "sale type from text (source) in lower case",
    "SELECT count(*) FROM sales_api.connecteam_post_transactions('connecteam', $$SELECT 1 AS location_id, 'sale' AS "
    "sale_type, now() AS created_at, 1 AS final_sale_amount, NULL::numeric AS tax_amount, NULL AS currency, "
    "'r' AS reference$$)", "22023")
add(g, "source: missing columns", "SELECT count(*) FROM sales_api.connecteam_post_transactions('connecteam', "
    "'SELECT 1 AS location_id')", ("42703", "22023"))
add(g, "source NULL", "SELECT count(*) FROM sales_api.connecteam_post_transactions('connecteam', NULL::text)",
    ("22004", "ok"), check=equals("0"), nosend=True)
for wname, w in WEIRD:
    add(g, f"currency with {wname}", cpost(ctx_(currency=lit(w)), cols="ok"), "ok", check=equals("t"), nosend=False)
    add(g, f"reference with {wname} comes back unchanged",
        cpost(ctx_(reference=lit(w)), cols="reference = " + lit(w) + " AND ok"), "ok", check=equals("t"), nosend=False)
add(g, "10,000 rows go out in 100 requests",
    "SELECT count(*) FILTER (WHERE ok), count(DISTINCT transaction_id) FROM sales_api.connecteam_post_transactions("
    "'connecteam', (SELECT array_agg(ROW(1 + i % 3, 'SALE', timestamptz '2026-12-01' + i * interval '1 s', i / 100.0, "
    "NULL, NULL, i::text)::sales_api.connecteam_transaction ORDER BY i) FROM generate_series(1, 10000) i))",
    "ok", check=equals("10000|10000"), nosend=False)

# --- the other Connecteam functions -----------------------------------------------------
g = "connecteam reads and writes"
add(g, "locations: empty id array, no request", "SELECT count(*) FROM sales_api.connecteam_locations('connecteam', '{}')",
    "ok", check=equals("0"))
add(g, "locations: empty name array, no request",
    "SELECT count(*) FROM sales_api.connecteam_locations('connecteam', names => '{}')", "ok", check=equals("0"))
add(g, "locations: a NULL id", "SELECT count(*) FROM sales_api.connecteam_locations('connecteam', '{1,NULL}')", "22004")
add(g, "locations: a NULL name", "SELECT count(*) FROM sales_api.connecteam_locations('connecteam', names => '{a,NULL}')",
    "22004")
add(g, "create_location: NULL name", "SELECT count(*) FROM sales_api.connecteam_create_location('connecteam', NULL)", "22004")
add(g, "create_location: empty name", "SELECT count(*) FROM sales_api.connecteam_create_location('connecteam', '')", "22023")
add(g, "create_location: 1000 characters, the vendor decides",
    "SELECT name = repeat('x', 1000) FROM sales_api.connecteam_create_location('connecteam', repeat('x', 1000))",
    ("ok", "SA422", "SA400"), check=equals("t"), nosend=False)
add(g, "create_location: 64 multi-byte characters",
    "SELECT name = repeat('ñ', 64) FROM sales_api.connecteam_create_location('connecteam', repeat('ñ', 64))", "ok",
    check=equals("t"), nosend=False)
for wname, w in WEIRD:
    add(g, f"create_location named with {wname}: the name round-trips",
        f"SELECT name = {lit(w)} FROM sales_api.connecteam_create_location('connecteam', {lit(w)})", "ok",
        check=equals("t"), nosend=False)
    add(g, f"locations filtered by a name with {wname}: exactly that location",
        f"SELECT count(*), bool_and(name = {lit(w)}) FROM sales_api.connecteam_locations('connecteam', names => ARRAY[{lit(w)}])",
        "ok", check=equals("1|t"), nosend=False)
    add(g, f"delete_transaction of an id with {wname}: one encoded path segment, 404",
        f"SELECT sales_api.connecteam_delete_transaction('connecteam', {lit(w)})", "SA404", nosend=False)
add(g, "delete_transaction: NULL id", "SELECT sales_api.connecteam_delete_transaction('connecteam', NULL)", "22004")
add(g, "delete_transaction: empty id", "SELECT sales_api.connecteam_delete_transaction('connecteam', '')", "22023")


def cdel(a, b, c):
    return f"SELECT sales_api.connecteam_delete_transactions('connecteam', {a}, {b}, {c})"


add(g, "delete_transactions: NULL location", cdel("NULL", "'2026-11-20'", "'2026-11-21'"), "22004")
add(g, "delete_transactions: NULL start", cdel("1", "NULL", "'2026-11-21'"), "22004")
add(g, "delete_transactions: NULL end", cdel("1", "'2026-11-20'", "NULL"), "22004")
add(g, "delete_transactions: end before start", cdel("1", "'2026-11-21'", "'2026-11-20'"), "22023")
add(g, "delete_transactions: infinity", cdel("1", "'2026-11-20'", "'infinity'"), "22008")
add(g, "delete_transactions: 1960", cdel("1", "'1960-01-01'", "'2026-11-20'"), "22008")
add(g, "delete_transactions: location 0", cdel("0", "'2026-11-20'", "'2026-11-21'"), "22023")


def daily(a, b, c="NULL"):
    return f"SELECT count(*) FROM sales_api.connecteam_daily_sales('connecteam', {a}, {b}, {c})"


add(g, "daily_sales: NULL start", daily("NULL", DAY), "22004")
add(g, "daily_sales: NULL end", daily(DAY, "NULL"), "22004")
add(g, "daily_sales: end before start", daily("'2026-11-21'", "'2026-11-20'"), "22023")
add(g, "daily_sales: infinity", daily(DAY, "'infinity'"), "22008")
add(g, "daily_sales: empty ids, no request", daily(DAY, DAY, "'{}'"), "ok", check=equals("0"))
add(g, "daily_sales: a NULL id", daily(DAY, DAY, "'{1,NULL}'"), "22004")
add(g, "daily_sales: an unknown location is the vendor's 400", daily(DAY, DAY, "'{99999}'"), "SA400", nosend=False)


def proj(loc, arr):
    return f"SELECT count(*) FROM sales_api.connecteam_set_projected_sales('connecteam', {loc}, {arr})"


add(g, "projected: NULL location", proj("NULL", "ARRAY[(" + DAY + ", 1)]::sales_api.connecteam_projected_sale[]"), "22004")
add(g, "projected: no rows", proj("1", "'{}'::sales_api.connecteam_projected_sale[]"), "22023")
add(g, "projected: NULL array", proj("1", "NULL::sales_api.connecteam_projected_sale[]"), ("22004", "22023"))
add(g, "projected: NULL date", proj("1", "ARRAY[(NULL, 1)]::sales_api.connecteam_projected_sale[]"), "22004")
add(g, "projected: NULL amount", proj("1", "ARRAY[(" + DAY + ", NULL)]::sales_api.connecteam_projected_sale[]"), "22004")
add(g, "projected: NaN", proj("1", "ARRAY[(" + DAY + ", 'NaN')]::sales_api.connecteam_projected_sale[]"), "22003")
add(g, "projected: 10^12", proj("1", "ARRAY[(" + DAY + ", 1e12)]::sales_api.connecteam_projected_sale[]"), "22003")
add(g, "projected: infinite date", proj("1", "ARRAY[('infinity', 1)]::sales_api.connecteam_projected_sale[]"), "22008")
add(g, "projected: a date twice", proj("1", "ARRAY[(" + DAY + ", 1), (" + DAY + ", 2)]::sales_api.connecteam_projected_sale[]"),
    ("22023", "23505"))
add(g, "projected: source NULL", proj("1", "NULL::text"), ("22004", "22023"))
add(g, "projected: source without its columns", proj("1", "'SELECT 1 AS x'"), ("42703", "22023"))

# --- the outbox functions --------------------------------------------------------------------
g = "outbox functions"
MAP = "'{\"location_id\": \"store\", \"sale_type\": \"''SALE''\", \"created_at\": \"sold_at\", \"final_sale_amount\": \"net\"}'"
add(g, "attach: NULL table", f"SELECT sales_api.attach(NULL, 'connecteam', {MAP})", ("22004", "ok"),
    check=equals(""), nosend=True)
add(g, "attach: NULL server", f"SELECT sales_api.attach('cat_sales', NULL, {MAP})", ("22004", "42704"))
add(g, "attach: NULL mapping", "SELECT sales_api.attach('cat_sales', 'connecteam', NULL)", ("22004", "22023"))
add(g, "attach: unknown server", f"SELECT sales_api.attach('cat_sales', 'no_such_server', {MAP})", "42704")
add(g, "attach: server of another wrapper", f"SELECT sales_api.attach('cat_sales', 'not_ours', {MAP})", ("42809", "22023"))
add(g, "attach: a required field missing",
    "SELECT sales_api.attach('cat_sales', 'connecteam', '{\"location_id\": \"store\"}')", "22023")
add(g, "attach: a statement in an expression",
    "SELECT sales_api.attach('cat_sales', 'connecteam', '{\"location_id\": \"store; DROP TABLE cat_sales\", "
    "\"sale_type\": \"''SALE''\", \"created_at\": \"sold_at\", \"final_sale_amount\": \"net\"}')", "22023")
add(g, "attach: an unknown column", "SELECT sales_api.attach('cat_sales', 'connecteam', '{\"location_id\": \"shop\", "
    "\"sale_type\": \"''SALE''\", \"created_at\": \"sold_at\", \"final_sale_amount\": \"net\"}')", "42703")
add(g, "attach: a mapping that is not an object", "SELECT sales_api.attach('cat_sales', 'connecteam', '[1,2]')",
    ("22023", "22004"))
add(g, "attach: an unlogged table", f"SELECT sales_api.attach('cat_unlogged', 'connecteam', {MAP})", ("22023", "42809"))
add(g, "detach: a table not attached", "SELECT sales_api.detach('cat_sales', 'connecteam')", "42704")
add(g, "detach: NULL", "SELECT sales_api.detach(NULL, NULL)", ("42704", "22004"))
add(g, "pause: unknown server", "SELECT sales_api.pause('no_such_server')", ("42704", "ok"), check=equals(""))
add(g, "resume: unknown server", "SELECT sales_api.resume('no_such_server')", ("42704", "ok"), check=equals(""))
add(g, "retry_dead: unknown server", "SELECT sales_api.retry_dead('no_such_server')", ("42704", "ok"), check=equals("0"))
add(g, "purge_sent: NULL interval", "SELECT sales_api.purge_sent(NULL)", ("22004", "ok"), check=equals("0"))

# --- server and user-mapping options ----------------------------------------------------------
g = "server options"
for opt in ("token_url", "sales_url", "cashrec_url"):
    for wname, w in WEIRD:
        url = MOCK + "/" + w
        add(g, f"mapal {opt} with {wname}",
            f"CREATE SERVER cat_tmp FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', {opt} {lit(url)});"
            "", ("HV024", "ok"), check=equals(""), nosend=True)
for wname, w in WEIRD:
    add(g, f"connecteam base_url with {wname}",
        f"CREATE SERVER cat_tmp FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url {lit(MOCK + '/' + w)});"
        "", ("HV024", "ok"), check=equals(""), nosend=True)
    add(g, f"mapal timezone with {wname}",
        f"CREATE SERVER cat_tmp FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', timezone {lit(w)})",
        ("HV024", "ok") if wname == "backslash" else "HV024", check=equals(""), nosend=True)
    add(g, f"vendor named with {wname}",
        f"CREATE SERVER cat_tmp FOREIGN DATA WRAPPER sales_api OPTIONS (vendor {lit(w)})", "HV024")
for url, what in (("http://127.0.0.1/x", "plain http"), ("ftp://127.0.0.1/x", "ftp"), ("https://", "no host"),
                  ("https://user:pw@127.0.0.1/x", "user info"), ("https://127.0.0.1/x?a=1", "a query"),
                  ("https://127.0.0.1/x#f", "a fragment"), ("https://127.0.0.1/a b", "white space"),
                  ("", "empty"), ("file:///etc/passwd", "file")):
    add(g, f"token_url with {what}",
        f"CREATE SERVER cat_tmp FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url {lit(url)})",
        ("HV024", "22023"))
add(g, "an unknown server option", "CREATE SERVER cat_tmp FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', verify 'off')",
    "HV00D")
add(g, "ssl_verify is not an option either",
    "CREATE SERVER cat_tmp FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', ssl_verify 'false')", "HV00D")
add(g, "slot_minutes 7", "CREATE SERVER cat_tmp FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', slot_minutes '7')",
    "HV024")
add(g, "slot_minutes text", "CREATE SERVER cat_tmp FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', slot_minutes 'x')",
    "HV024")
# the validator sees the options, not the server: a Connecteam key on a Mapal
# server is refused when it is used (README: no Mapal credentials)
add(g, "a mapping option of the other vendor",
    "CREATE USER MAPPING FOR cat_role SERVER mapal OPTIONS (api_key 'x'); SET ROLE cat_role; "
    "SELECT auth_ok FROM sales_api.check_server('mapal');", ("42704", "HV00J"))
add(g, "an empty password", "CREATE USER MAPPING FOR cat_role SERVER mapal OPTIONS "
    "(username 'u', password '', client_secret 's')", "HV024")
for wname, w in WEIRD:
    if wname == "newline":   # the validator refuses control characters in credentials
        add(g, "credentials with a newline", f"CREATE USER MAPPING FOR cat_role SERVER mapal OPTIONS (username {lit(w)}, "
            f"password {lit(w)}, client_secret {lit(w)})", "HV024")
        continue
    add(g, f"credentials with {wname}: refused by the vendor, never echoed",
        f"CREATE USER MAPPING FOR cat_role SERVER mapal OPTIONS (username {lit(w)}, password {lit(w)}, "
        f"client_secret {lit(w)}); SET ROLE cat_role; SELECT auth_ok, position({lit(w)} IN coalesce(message, '')) "
        "FROM sales_api.check_server('mapal'); RESET ROLE; DROP USER MAPPING FOR cat_role SERVER mapal;",
        "ok", check=equals("f|0"), nosend=False)

# --- vendor responses ------------------------------------------------------------------------------
g = "vendor responses"
RESP_CALLS = {
    # label: (sql, path regex of the request that gets the fault, kind)
    # kind: "read" = a parsed answer is needed; "push" = any 2xx is success;
    #       "post" = connecteam_post_transactions (outcome rows, never raises once answered)
    "check_server mapal": ("SELECT auth_ok, http_status FROM sales_api.check_server('mapal')", "/connect/token", "check"),
    "check_server connecteam": ("SELECT auth_ok, http_status FROM sales_api.check_server('connecteam')",
                                "/sales/v1/locations", "check"),
    "mapal token for a push": (CALLS["mapal_push_sales[]"][0].format(s="'mapal'"), "/connect/token", "token"),
    "mapal_push_sales": ("SELECT ok, http_status FROM sales_api.mapal_push_sales('mapal', ARRAY[" + msale() + "])",
                         "/real-time-sales", "push"),
    "cashrec_fetch": (cash("'2026-11-20'", "'2026-11-20 23:59:59'", "'{101}'"), "/cashSheet", "read"),
    "connecteam_locations": ("SELECT count(*) FROM sales_api.connecteam_locations('connecteam')", "/sales/v1/locations", "read"),
    "connecteam_create_location": ("SELECT count(*) FROM sales_api.connecteam_create_location('connecteam', 'resp')",
                                   "/sales/v1/locations", "create"),
    "connecteam_daily_sales": (daily(DAY, DAY), "/daily-sales", "read"),
    "connecteam_set_projected_sales": (proj("1", "ARRAY[(" + DAY + ", 5)]::sales_api.connecteam_projected_sale[]"),
                                       "/daily-sales", "read"),
    "connecteam_delete_transactions": (cdel("1", "'2026-11-20'", "'2026-11-21'"), "/sales/v1/transactions", "delete"),
    "connecteam_post_transactions": (cpost(ctx_(), cols="ok, transaction_id IS NULL, error IS NOT NULL"),
                                     "/sales/v1/transactions", "post"),
    "connecteam oauth token": ("SELECT count(*) FROM sales_api.connecteam_locations('ct_oauth')", "/oauth/v1/token", "token"),
}
BIG = 3 * 1024 * 1024
RESPONSES = [
    ("malformed JSON", {"action": "malformed"}),
    ("JSON of the wrong shape", {"action": "wrong_shape"}),
    ("a JSON array for an object", {"action": "status", "status": 200, "body": "[1, 2, 3]"}),
    ("missing fields", {"action": "status", "status": 200, "body": '{"requestId": "r", "data": {}}'}),
    ("wrong types", {"action": "status", "status": 200,
                     "body": '{"requestId": 5, "data": {"locations": "x", "transactions": {"a": 1}, "dailySales": 7,'
                             ' "updatedDays": "no"}, "access_token": 42, "expires_in": "soon"}'}),
    ("invalid UTF-8", {"action": "status", "status": 200, "body_b64": "eyJkYXRhIjogIv/+In0="}),
    ("deeply nested JSON", {"action": "status", "status": 200, "body": "[" * 5000 + "]" * 5000}),
    ("an HTML error page (502)", {"action": "html"}),
    ("an HTML page with 200", {"action": "html", "status": 200}),
    ("an empty body with 200", {"action": "empty"}),
    ("an oversized body", {"action": "oversized", "size_bytes": BIG}),
    ("a redirect to plain http", {"action": "redirect", "location": MOCK_HTTP + "/x"}),
    ("a redirect to another host", {"action": "redirect", "location": "https://example.com/x"}),
    ("a body that never ends", {"action": "never_end", "size_bytes": 100000}),
]
SETTINGS = "SET sales_api.max_response_size = '1MB'; SET sales_api.request_timeout = '1s';\n"
BODY_CLASSES = {"malformed JSON", "JSON of the wrong shape", "a JSON array for an object", "missing fields",
                "wrong types", "invalid UTF-8", "deeply nested JSON", "an HTML page with 200", "an empty body with 200"}


def resp_expect(kind, label):
    """What the README documents when a bad answer persists (every attempt gets it)."""
    transport = {"an oversized body": "54000", "a body that never ends": "SA504"}
    redirect = label.startswith("a redirect")
    html502 = label == "an HTML error page (502)"
    if kind == "post":
        # connecteam_post_transactions returns a row per input row and never raises once a
        # request was sent: a 2xx whose body cannot be read = stored, id unknown (ok, NULL id,
        # an error saying so); a 5xx, a timeout after sending = outcome unknown (not ok)
        if label in BODY_CLASSES:
            return "ok", equals("t|t|t")
        if label == "an oversized body":     # the transfer is cut short: a transport failure after sending
            return "ok", lambda o: o.strip() in ("t|t|t", "f|t|t")
        return "ok", equals("f|t|t")
    if kind == "push":
        # Mapal: any 2xx is success, its body is not read; a failed transfer is a row
        if label in BODY_CLASSES:
            return "ok", equals("t|200")
        if redirect:
            return "ok", lambda o: re.fullmatch(r"f\|30\d", o.strip()) is not None
        if html502:
            return "ok", equals("f|502")
        return "ok", lambda o: o.strip() in ("f|", "f|200")   # the status line came, the body did not
    if kind == "check":
        # check_server reports rather than raises; for Connecteam a 200 proves the key
        if kind == "check" and label in BODY_CLASSES:
            return "ok", lambda o: o.strip() in ("f|200", "t|200")
        return "ok", lambda o: o.strip().startswith("f|")
    if label in transport:
        return transport[label], None
    if redirect:
        return "SA502", None
    if html502:
        return ("SA500", "SA401") if kind == "token" else "SA500", None
    if kind == "token":
        return ("SA401", "SA502"), None
    if kind == "delete" and label in BODY_CLASSES and label != "invalid UTF-8":
        return ("ok", "SA502"), equals("")   # a 200 to a DELETE needs no body
    return "SA502", None


for call, (sql, path, kind) in RESP_CALLS.items():
    for label, fault in RESPONSES:
        exp, chk = resp_expect(kind, label)
        add(g, f"{call}: {label}", sql, exp, check=chk, nosend=False,
            faults=[dict(fault, path=path, count=6)], settings=SETTINGS)

# a passing failure of an idempotent request is a documented retry: the call succeeds
g = "vendor responses, retried"
for call in ("cashrec_fetch", "connecteam_locations", "connecteam_daily_sales", "connecteam_set_projected_sales",
             "connecteam_delete_transactions"):
    sql, path, kind = RESP_CALLS[call]
    for label, fault in (("a 502 once", {"action": "html"}), ("a 503 with Retry-After once",
                          {"action": "status", "status": 503, "headers": {"Retry-After": "1"}}),
                         ("a dropped connection once", {"action": "drop_before"}),
                         ("a body that never ends once", {"action": "never_end", "size_bytes": 100000})):
        add(g, f"{call}: {label}", sql, "ok", check=lambda o: o.strip() != "x", nosend=False,
            faults=[dict(fault, path=path, count=1)], settings=SETTINGS)
# non-idempotent requests are never resent after they may have been acted on
g = "vendor responses, not resent"
for label, fault in (("a 502", {"action": "html"}), ("a connection dropped after the request",
                                                       {"action": "drop_after"})):
    add(g, f"connecteam_create_location: {label}: outcome unknown, one request",
        RESP_CALLS["connecteam_create_location"][0], ("SA500", "08006", "SA502"), nosend=False,
        faults=[dict(fault, path="/sales/v1/locations", count=1, method="POST")], settings=SETTINGS)
    add(g, f"connecteam_post_transactions: {label}: outcome unknown, one request",
        RESP_CALLS["connecteam_post_transactions"][0], "ok", check=equals("f|t|t"), nosend=False,
        faults=[dict(fault, path="/sales/v1/transactions", count=1, method="POST")], settings=SETTINGS)


# ---------------------------------------------------------------------------
# setup and run
# ---------------------------------------------------------------------------

SETUP = f"""
SET client_min_messages = warning;
DROP ROLE IF EXISTS cat_role;
CREATE ROLE cat_role;
CREATE EXTENSION IF NOT EXISTS sales_api;
CREATE FOREIGN DATA WRAPPER cat_other_fdw;
CREATE SERVER not_ours FOREIGN DATA WRAPPER cat_other_fdw;
CREATE SERVER mapal FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url '{MOCK}/connect/token',
    sales_url '{MOCK}/mapal-sales', cashrec_url '{MOCK}/cashrec', timezone 'UTC');
CREATE USER MAPPING FOR CURRENT_USER SERVER mapal OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE SERVER connecteam FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url '{MOCK}/connecteam');
CREATE USER MAPPING FOR CURRENT_USER SERVER connecteam OPTIONS (api_key 'ct-key-123');
CREATE SERVER ct_oauth FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url '{MOCK}/connecteam');
CREATE USER MAPPING FOR CURRENT_USER SERVER ct_oauth OPTIONS (client_id 'ct-client', client_secret 'ct-secret');
CREATE SERVER mapal_nomap FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url '{MOCK}/connect/token',
    sales_url '{MOCK}/mapal-sales', cashrec_url '{MOCK}/cashrec');
CREATE SERVER connecteam_nomap FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url '{MOCK}/connecteam');
GRANT USAGE ON SCHEMA sales_api TO cat_role;
GRANT EXECUTE ON FUNCTION sales_api.check_server(name) TO cat_role;
GRANT USAGE ON FOREIGN SERVER mapal TO cat_role;
CREATE TABLE cat_sales (id bigserial PRIMARY KEY, store int, sold_at timestamptz, net numeric);
CREATE UNLOGGED TABLE cat_unlogged (id bigserial PRIMARY KEY, store int, sold_at timestamptz, net numeric);
CREATE TABLE cat_scratch (x int);
"""


def setup():
    mock("POST", "/_mock/reset")
    for i in range(3):
        mock("POST", "/_mock/connecteam/locations", {"locations": [{"name": "store %d" % (i + 1)}]})
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {DB}",
                    "-c", f"CREATE DATABASE {DB}"], check=True, capture_output=True)
    rc, out, err = psql(SETUP)
    if rc != 0:
        sys.exit("catalogue setup failed: " + err)


def run_entry(e):
    for f in e.faults:
        mock("POST", "/_mock/faults", f)
    seq = mock_seq()
    t0 = time.monotonic()
    rc, out, err = psql(e.settings + e.sql)
    secs = time.monotonic() - t0
    if e.faults:
        mock("DELETE", "/_mock/faults")
    sent = mock_requests_since(seq)
    m = re.search(r"^(?:psql:[^\n]*?)?(ERROR|FATAL|PANIC):  ([0-9A-Z]{5}): (.*)$", err, re.M)
    state = m.group(2) if m else None
    problems = []
    if "server closed the connection unexpectedly" in err or "terminated abnormally" in err or \
            (m and m.group(1) in ("FATAL", "PANIC")) or rc == 99:
        problems.append("CRASH or hang: " + err.strip().splitlines()[-1][:200])
    elif e.expect == "ok" or (isinstance(e.expect, tuple) and "ok" in e.expect and state is None):
        if rc != 0:
            problems.append(f"expected a result, got {state}: {m.group(3)[:160] if m else err.strip()[:160]}")
        elif e.check and not e.check(out):
            problems.append("unexpected result: " + repr(out.strip()[:160]))
    else:
        if state is None:
            problems.append(f"expected SQLSTATE {'/'.join(e.expect)}, got no error: {out.strip()[:120]!r}")
        elif state not in e.expect:
            problems.append(f"expected SQLSTATE {'/'.join(x for x in e.expect if x != 'ok')}, got {state}: {m.group(3)[:160]}")
        if state in ("XX000", "XX001", "XX002"):
            problems.append("internal error")
    if e.nosend and sent:
        problems.append("sent %d request(s) to the vendor for a refused input: %s" % (
            len(sent), ", ".join(sorted({r["method"] + " " + r["path"] for r in sent}))[:160]))
    return problems, state, out, secs


def main():
    setup()
    start = postmaster_start()
    log0 = os.path.getsize(PGLOG) if PGLOG and os.path.exists(PGLOG) else 0
    tried = ok = 0
    groups = {}
    for e in ENTRIES:
        if ONLY and ONLY not in e.group + ": " + e.label:
            continue
        tried += 1
        problems, state, out, secs = run_entry(e)
        gt = groups.setdefault(e.group, [0, 0])
        gt[0] += 1
        if problems:
            print(f"NOT AS DOCUMENTED  [{e.group}] {e.label}: " + "; ".join(problems))
        else:
            ok += 1
            gt[1] += 1
            if VERBOSE:
                print(f"ok  [{e.group}] {e.label}: {state or out.strip()[:60]!r} ({secs:.1f}s)")
    if postmaster_start() != start:
        print("NOT AS DOCUMENTED  the postmaster restarted during the catalogue (a backend crashed)")
        ok = -1
    if PGLOG and os.path.exists(PGLOG):
        with open(PGLOG, errors="replace") as f:
            f.seek(log0)
            crashes = [l for l in f if "terminated by signal" in l or "was terminated by" in l]
        if crashes:
            print("NOT AS DOCUMENTED  the server log shows a crash: " + crashes[0].strip())
            ok = -1
    for gname, (t, o) in groups.items():
        print(f"  {gname:<30} {o:>4} of {t:>4} as documented")
    print(f"catalogue: {tried} inputs tried, {max(ok, 0)} behaved as documented")
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {DB}"], capture_output=True)
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", "DROP ROLE IF EXISTS cat_role"], capture_output=True)
    return 0 if ok == tried else 1


if __name__ == "__main__":
    sys.exit(main())
