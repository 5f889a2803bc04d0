#!/usr/bin/env python3
"""sales_api benchmarks (issue 8).  Run through test/bench/run, which starts the
throwaway cluster and the mock vendor server (test/lib/env.sh) and exports
PGHOST/PGPORT/PGUSER, MOCK_URL, MOCK_CA, SA_WORK, PGDATA, SA_PGLOG.

Every benchmark compares sales_api with what a POS integrator would otherwise
build, measured in the same run on the same machine, and prints figures; a
missed target is reported, never a failure.  The exit status is non-zero only
when a benchmark could not run or sales were lost or duplicated.

The peers: a one-per-request sender (a per-row webhook, as pg_net), a
hand-written PL/pgSQL outbox trigger, and PgQ (issue 15): Debian's
postgresql-15-pgq3 with pgq.logutriga() capture, its ticker pgqd and a consumer
built here from test/bench/pgq_consumer.c that posts 100 sales a request
(test/bench/pgq_peer.py).  Every figure of PgQ is in its own column beside
sales_api's, measured in the same run on the same data.

  1. capture cost: no trigger / sales_api capture / hand-written row trigger /
     PgQ logutriga (pgbench single-row inserts with 2 clients, median and
     interquartile range over interleaved rounds; 100,000 rows in one
     INSERT ... SELECT and in one COPY)
  2. drain throughput: 100,000 Connecteam transactions and a day of Mapal
     slots for 50 units through the worker to the mock (20 ms latency), against
     a sender that posts one sale per request, one at a time; then the same
     100,000 sales for Connecteam only, through sales_api and through PgQ
  3. calls per sale, and pacing under a 120-per-minute rate limit
  4. latency: one committed sale to the mock receiving it (idle worker; idle
     PgQ consumer)
  4c. latency from the client's side: a client's clock before COMMIT to the mock
     receiving the sale, beside the bare COMMIT (the floor), on a fresh outbox and
     with a million sent items kept
  5. memory: the worker's resident memory after start, 100,000 and 1,000,000 sales
  6. lanes: Mapal real-time latency (commit to the mock receiving the slot) of
     a table attached to both vendors while Connecteam has a 2,000-sale backlog
     under 5 requests a minute, and while Connecteam hangs every request until
     sales_api.request_timeout (30 s), beside a Mapal-only table's
     (test/lib/lanes.py measures; test/bench/lanes.sh runs this one alone)
  --profile: perf of the worker during a drain and of a backend during a bulk
     capture, with pg_stat_statements of the worker's SQL (test/bench/PROFILE.md)

Python 3 standard library only.
"""
import argparse
import collections
import datetime
import glob
import http.client
import json
import math
import os
import platform
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pgq_peer
import pq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import lanes  # noqa: E402  (test/lib/lanes.py, shared with test/scenarios/93_lanes.sh)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")
WDB = os.environ.get("SA_DB", "sa_worker")     # the database the worker drains
BDB = "sa_bench"                               # capture benchmarks: nobody drains it
UNITS = 50

MODES = {
    # a bounded pass, 4-7 minutes on a 2-core machine shared with other work
    "quick": dict(pgbench_seconds=2, rounds=4, rate_tps=1000, rate_seconds=2, bulk_rounds=2, bulk_rows=100000, drain_sales=100000, scale_sales=20000,
                  baseline_sales=300, rl_limit=20, rl_window=10, rl_windows=2,
                  latency_sales=500, latency_after_sales=50, client_sales=200, client_kept=1000000,
                  memory_total=200000, chunk=100000,
                  pgq_tick_ms=50, pgq_poll_ms=50, pgq_concurrency=4,
                  lanes_backlog=2000, lanes_limit=5, lanes_window=10, lanes_timeout=5, lanes_seconds=10),
    # the issue's figures: 1,000,000 sales for memory, a real 120-per-minute limit
    # scale_sales: the Connecteam-only drain again at max_concurrency 1, 2 and 8
    "full": dict(pgbench_seconds=5, rounds=12, rate_tps=1000, rate_seconds=3, bulk_rounds=9, bulk_rows=100000, drain_sales=100000, scale_sales=50000,
                 baseline_sales=2000, rl_limit=120, rl_window=60, rl_windows=3,
                 latency_sales=500, latency_after_sales=200, memory_total=1000000,
                 # 4c: sales measured from the client's side per phase; sent items kept in the second
                 client_sales=500, client_kept=1000000, chunk=100000,
                 # the PgQ peer: pgqd's ticker_period, the consumer's sleep when it finds no batch,
                 # its requests in flight (sales_api's max_concurrency)
                 pgq_tick_ms=50, pgq_poll_ms=50, pgq_concurrency=4,
                 # lanes: the issue's Connecteam plan (5 requests per 60 s window), its
                 # 2,000-sale burst, and the default request_timeout (30 s) for the hang
                 lanes_backlog=2000, lanes_limit=5, lanes_window=60, lanes_timeout=30, lanes_seconds=20),
}
ALL = ["capture", "drain", "memory", "latency", "ratelimit", "lanes"]


class BenchError(Exception):
    pass


T_START = time.time()


def log(msg):
    print("== [%4.0f s] %s" % (time.time() - T_START, msg), file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# PostgreSQL and the mock
# ---------------------------------------------------------------------------
def psql(sql, db=WDB, check=True, timing=False):
    """Run SQL (several statements allowed) with psql; returns stdout (tuples only)."""
    if timing:
        sql = "\\timing on\n" + sql
    r = subprocess.run([os.path.join(BIN, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db],
                       input=sql, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise BenchError("psql failed: %s\n-- SQL: %s" % (r.stderr.strip(), sql[:1500]))
    return r.stdout.strip()


def q1(sql, db=WDB):
    out = psql(sql, db)
    return out.splitlines()[-1] if out else ""


def timed_ms(sql, db):
    """Server round trip of the last statement, from psql's \\timing."""
    out = psql(sql, db, timing=True)
    times = re.findall(r"^Time: ([0-9.]+) ms", out, re.M)
    if not times:
        raise BenchError("no timing in psql output: %s" % out[-500:])
    return float(times[-1])


_ctx = None


def mock(method, path, body=None, timeout=300):
    global _ctx
    if _ctx is None:
        _ctx = ssl.create_default_context(cafile=os.environ["MOCK_CA"])
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(os.environ["MOCK_URL"] + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=_ctx, timeout=timeout) as r:
        return json.load(r)


def mock_setup(latency_ms=20, minute_limit=10 ** 9, window=60):
    """A clean mock: Mapal units 1001..1050, Connecteam locations 1..50, no rate limit.
    The vendor answers latency_ms after each request came (the mock's answer_ms: its
    own work inside those ms), not latency_ms plus its work: 4 requests that end their
    wait together would otherwise queue for the mock's interpreter lock, several ms
    each, and every sender would measure the mock (see NOTES.md)."""
    mock("POST", "/_mock/reset")
    mock("POST", "/_mock/config", {
        "mapal_units": {str(1000 + u): {"currencies": ["EUR"], "salesTypes": ["EAT_IN", "TAKE", "DELIVERY"]}
                        for u in range(1, UNITS + 1)},
        "answer_ms": latency_ms, "connecteam_minute_limit": minute_limit,
        "connecteam_day_limit": 10 ** 9, "connecteam_window_seconds": window})
    mock("POST", "/_mock/connecteam/locations",
         {"locations": [{"id": u, "name": "store %d" % u} for u in range(1, UNITS + 1)]})


def mock_mark():
    return mock("GET", "/_mock/log?since=999999999999")["last_seq"]


def mock_log(since):
    return mock("GET", "/_mock/log?since=%d" % since)["requests"]


def is_ct_post(e):
    return e["method"] == "POST" and e["path"] == "/connecteam/sales/v1/transactions"


def posts_at_mock(entries, t0, t1):
    """The Connecteam posts the mock was answering at once, on average from t0 to t1
    (the sum of their times at the mock, its 20 ms included, over the span), and
    their median time there.  Under max_concurrency 4 the first is at most 4: how
    far below it shows how long the sender leaves a request slot empty."""
    ms = sorted(e["ms"] for e in entries if is_ct_post(e) and e["ms"] is not None)
    if not ms or t1 <= t0:
        return float("nan"), float("nan")
    return sum(ms) / 1000.0 / (t1 - t0), ms[len(ms) // 2]


def is_mapal(e):
    return e["path"].endswith("/real-time-sales")


# ---------------------------------------------------------------------------
# The worker
# ---------------------------------------------------------------------------
def worker_pid():
    v = q1("SELECT pid FROM pg_stat_activity WHERE backend_type = 'sales_api worker'", db="postgres")
    return int(v) if v else None


def worker_idle():
    return q1("SELECT state FROM pg_stat_activity WHERE backend_type = 'sales_api worker'", db="postgres") == "idle"


def wait_worker(limit_s=60):
    t0 = time.time()
    while not (worker_pid() and worker_idle()):
        if time.time() - t0 > limit_s:
            raise BenchError("the sales_api worker is not running (see %s)" % os.environ.get("SA_PGLOG"))
        time.sleep(0.2)
    return worker_pid()


def restart_worker():
    """A fresh worker process (the postmaster restarts it 5 s after it exits)."""
    old = worker_pid()
    if old:
        psql("SELECT pg_terminate_backend(%d)" % old, db="postgres")
    t0 = time.time()
    while True:
        pid = worker_pid()
        if pid and pid != old and worker_idle():
            break
        if time.time() - t0 > 60:
            raise BenchError("the worker did not come back after pg_terminate_backend")
        time.sleep(0.2)
    time.sleep(1.0)
    return pid


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
                out[k] = int(v.split()[0])      # kB
    return out


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mock_pid():
    out = subprocess.run(["pgrep", "-f", "mock_vendor.py --port %s" % os.environ.get("MOCK_PORT", "")],
                         capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


# ---------------------------------------------------------------------------
# The POS database the worker drains
# ---------------------------------------------------------------------------
SERVERS_SQL = """
\\set token_url :mock_url/connect/token
\\set sales_url :mock_url/mapal-sales
\\set cashrec_url :mock_url/cashrec
\\set ct_url :mock_url/connecteam
CREATE SERVER mapal FOREIGN DATA WRAPPER sales_api OPTIONS (
    vendor 'mapal', token_url :'token_url', sales_url :'sales_url', cashrec_url :'cashrec_url',
    timezone 'UTC', slot_minutes '15');
CREATE USER MAPPING FOR CURRENT_USER SERVER mapal
    OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE SERVER connecteam FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER connecteam OPTIONS (api_key 'ct-key-123');
"""

SALES_TABLE = """
CREATE TABLE {t} (
    id        bigserial PRIMARY KEY,
    store     integer NOT NULL,
    sold_at   timestamptz NOT NULL,
    kind      text NOT NULL DEFAULT 'SALE',
    channel   text NOT NULL DEFAULT 'EAT_IN',
    net       numeric(12,2) NOT NULL,
    tax       numeric(12,2) NOT NULL DEFAULT 0,
    guests    integer NOT NULL DEFAULT 1
);
"""

CT_MAPPING = """'{"location_id": "store", "sale_type": "kind", "created_at": "sold_at",
  "final_sale_amount": "net", "tax_amount": "tax", "currency": "''EUR''"}'"""
MAPAL_MAPPING = """'{"unit_id": "1000 + store", "sold_at": "sold_at", "currency_id": "''EUR''",
  "sales_type_id": "channel", "net_sales": "net", "gross_sales": "net + tax", "num_guests": "guests"}'"""


def fresh_extension(db):
    psql("SET client_min_messages = warning;\n"
         "DROP TABLE IF EXISTS pos_sales, pos_latency, pos_client, bench_lat CASCADE;\n"
         "DROP PROCEDURE IF EXISTS bench_latency(int, int);\n"
         "DROP EXTENSION IF EXISTS sales_api CASCADE;\n"
         # attach() creates functions in schema sales_api that DROP EXTENSION leaves behind
         "DROP SCHEMA IF EXISTS sales_api CASCADE;\n"
         "CREATE EXTENSION sales_api;\n"
         "\\set mock_url '%s'\n%s" % (os.environ["MOCK_URL"], SERVERS_SQL), db=db)


def setup_pos(vendors=("connecteam", "mapal")):
    """sa_worker: a fresh extension, servers on the mock, pos_sales attached (servers paused)."""
    fresh_extension(WDB)
    sql = SALES_TABLE.format(t="pos_sales") + "CREATE INDEX ON pos_sales (sold_at);\n"
    if "connecteam" in vendors:
        sql += "SELECT sales_api.attach('pos_sales', 'connecteam', %s);\n" % CT_MAPPING
    if "mapal" in vendors:
        sql += "SELECT sales_api.attach('pos_sales', 'mapal', %s);\n" % MAPAL_MAPPING
    for v in vendors:
        sql += "SELECT sales_api.pause('%s');\n" % v
    psql(sql)


def insert_sales(n, day_offset=0, table="pos_sales", db=WDB):
    """n sales over one business day, spread over 50 stores and 3 channels."""
    # whole seconds (Connecteam's createdAt is in seconds; compare.py matches on it)
    return timed_ms(
        "INSERT INTO %s (store, sold_at, kind, channel, net, tax, guests)\n"
        " SELECT 1 + i %% %d, timestamptz '2026-11-01 00:00+00' + interval '%d days'\n"
        "        + (i::bigint * 86400 / %d) * interval '1 s',\n"
        "        'SALE', (ARRAY['EAT_IN', 'TAKE', 'DELIVERY'])[1 + i %% 3],\n"
        "        round((1 + (i %% 5000) / 100.0)::numeric, 2), round(((i %% 300) / 100.0)::numeric, 2), 1 + i %% 3\n"
        "   FROM generate_series(0, %d) i;\n" % (table, UNITS, day_offset, max(n, 1), n - 1), db)


DRAINED = ("SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox"
           " WHERE state IN ('pending', 'in_flight', 'failed'))"
           " AND NOT EXISTS (SELECT 1 FROM sales_api.outbox_stage)")


def wait_drained(limit_s, what):
    t0 = time.time()
    while q1(DRAINED) != "t":
        if time.time() - t0 > limit_s:
            raise BenchError("timed out after %d s waiting for %s to drain:\n%s" % (
                limit_s, what, psql("SELECT state, count(*), max(last_error) FROM sales_api.outbox GROUP BY 1")))
        time.sleep(0.25)


def resume(vendors):
    """Resume the servers; returns the server's clock at that moment (epoch seconds)."""
    sql = "SELECT extract(epoch FROM clock_timestamp());\n"
    for v in vendors:
        sql += "SELECT sales_api.resume('%s');\n" % v
    return float(psql(sql).splitlines()[0])


def outbox_summary():
    rows = psql("SELECT kind, state, count(*) FROM sales_api.outbox GROUP BY 1, 2 ORDER BY 1, 2")
    return {tuple(r.split("|")[:2]): int(r.split("|")[2]) for r in rows.splitlines() if r}


# ---------------------------------------------------------------------------
# Statistics and the result table
# ---------------------------------------------------------------------------
def pct(values, p):
    s = sorted(values)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def iqr(values):
    """(first quartile, third quartile), the values' own range when there are fewer than 4."""
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


# the PgQ column where the peer has no such figure
NO_PGQ = "\u2014"


class Results:
    HEAD = ("#", "figure", "sales_api", "PgQ (logutriga + pgqd + consumer)", "other peers", "target", "result")

    def __init__(self):
        self.rows = []      # (section, figure, value, pgq, compared, target, verdict)
        self.notes = []
        self.errors = []
        self.pgq_skipped = None     # why the PgQ peer did not run, if it did not

    def add(self, section, figure, value, compared="", target="", ok=None, pgq=None):
        verdict = "info" if ok is None else ("pass" if ok else "MISS")
        if pgq is None:
            pgq = "not run" if self.pgq_skipped else NO_PGQ
        self.rows.append((section, figure, value, pgq, compared, target, verdict))
        log("%s %s: %s [PgQ %s] %s [%s]" % (section, figure, value, pgq, compared, verdict))

    def note(self, text):
        self.notes.append(text)

    def table(self):
        head = self.HEAD
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        for r in self.rows:
            lines.append("| " + " | ".join(str(x) for x in r) + " |")
        return "\n".join(lines)

    def text_table(self):
        head = self.HEAD
        rows = [head] + [tuple(str(x) for x in r) for r in self.rows]
        w = [max(len(r[i]) for r in rows) for i in range(len(head))]
        out = []
        for k, r in enumerate(rows):
            out.append("  ".join(r[i].ljust(w[i]) for i in range(len(head))).rstrip())
            if k == 0:
                out.append("  ".join("-" * w[i] for i in range(len(head))))
        return "\n".join(out)


def fmt_int(x):
    return "{:,}".format(int(round(x)))


def fmt_ms(x):
    return "%.0f ms" % x if x >= 100 else "%.1f ms" % x


# ---------------------------------------------------------------------------
# 1. Capture cost
# ---------------------------------------------------------------------------
HAND_SQL = """
CREATE TABLE hand_outbox (
    id          bigserial PRIMARY KEY,
    payload     jsonb NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE FUNCTION hand_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hand_outbox (payload) VALUES (to_jsonb(NEW));
    RETURN NULL;
END $$;
CREATE TRIGGER hand_capture AFTER INSERT ON sales_hand FOR EACH ROW EXECUTE FUNCTION hand_capture();
"""

VARIANTS = [
    # name, table, label
    ("none", "sales_none", "no trigger"),
    ("sales_api", "sales_sa", "sales_api capture (Connecteam and Mapal)"),
    ("hand", "sales_hand", "hand-written row trigger"),
]
PGQ_VARIANT = ("pgq", "sales_pgq", "PgQ logutriga")
PGQ_OK = False      # main() sets it when the PgQ peer can run
BENCH_QUEUE = "bench_sales"     # the capture database's queue: no ticker, no consumer (as no worker drains it)


def variants():
    return VARIANTS + ([PGQ_VARIANT] if PGQ_OK else [])


# The floor of a single-row capture: a C statement trigger with a transition table
# that writes one fixed row by heap_insert() (test/bench/floor_trigger.c)
FLOOR_VARIANT = ("floor", "sales_floor", "the floor: a C statement trigger writing one row")
FLOOR_SQL = """
CREATE TABLE floor_side (n integer);
CREATE FUNCTION floor_trigger() RETURNS trigger LANGUAGE c AS '{so}', 'floor_trigger';
CREATE TRIGGER floor_capture AFTER INSERT ON sales_floor REFERENCING NEW TABLE AS n
    FOR EACH STATEMENT EXECUTE FUNCTION floor_trigger('public.floor_side');
"""


def build_floor(work):
    """Compiles test/bench/floor_trigger.c against the server's headers into work -> its path"""
    out = os.path.join(work, "floor_trigger.so")
    pg_config = os.path.join(BIN, "pg_config")
    if not os.path.exists(pg_config):
        pg_config = shutil.which("pg_config") or "pg_config"
    inc = subprocess.run([pg_config, "--includedir-server"], capture_output=True, text=True).stdout.strip()
    r = subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror",
                        "-I" + inc, "-o", out, os.path.join(HERE, "floor_trigger.c")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError("could not build test/bench/floor_trigger.c:\n" + r.stderr[-2000:])
    os.chmod(out, 0o755)
    return out


def setup_capture_db(floor_so=None):
    psql("SET client_min_messages = warning;\nDROP DATABASE IF EXISTS %s;\nCREATE DATABASE %s;" % (BDB, BDB),
         db="postgres")
    sql = "CREATE EXTENSION sales_api;\n\\set mock_url '%s'\n%s" % (os.environ["MOCK_URL"], SERVERS_SQL)
    for _, t, _ in variants():
        sql += SALES_TABLE.format(t=t)
    if floor_so:
        sql += SALES_TABLE.format(t=FLOOR_VARIANT[1]) + FLOOR_SQL.format(so=floor_so)
    sql += HAND_SQL
    # attached to both vendors, as a POS runs (issue 15)
    sql += "SELECT sales_api.attach('sales_sa', 'connecteam', %s);\n" % CT_MAPPING
    sql += "SELECT sales_api.attach('sales_sa', 'mapal', %s);\n" % MAPAL_MAPPING
    if PGQ_OK:
        sql += "CREATE EXTENSION pgq;\n" + pgq_peer.queue_sql(BENCH_QUEUE) + pgq_peer.trigger_sql(
            "sales_pgq", BENCH_QUEUE)
    psql(sql, db=BDB)


def reset_capture_tables():
    # a queue's event tables inherit from one parent: TRUNCATE of the parent empties them all
    extra = (", sales_pgq, " + pgq_peer.event_table(psql, BDB, BENCH_QUEUE)) if PGQ_OK else ""
    if q1("SELECT to_regclass('floor_side') IS NOT NULL", db=BDB) == "t":
        extra += ", sales_floor, floor_side"
    psql("TRUNCATE sales_none, sales_sa, sales_hand, hand_outbox, sales_api.outbox, sales_api.outbox_stage,"
         " sales_api.mapal_stage%s"
         " RESTART IDENTITY;\n"
         "CHECKPOINT;" % extra, db=BDB)


def fmt_tps(values):
    lo, hi = iqr(values)
    return "%s (IQR %s\u2013%s)" % (fmt_int(statistics.median(values)), fmt_int(lo), fmt_int(hi))


def fmt_below(ratios):
    """TPS ratios to no trigger -> '2.3% below (IQR 1.0-3.5)'"""
    below = [100 * (1 - x) for x in ratios]
    lo, hi = iqr(below)
    return "%.1f%% below (IQR %.1f\u2013%.1f)" % (statistics.median(below), lo, hi)


def bench_capture(cfg, res, work):
    log("1. capture cost (database %s; the worker drains %s: a commit in %s wakes nothing)" % (BDB, WDB, BDB))
    floor_so = build_floor(work)
    setup_capture_db(floor_so)
    wpid = worker_pid()
    # (a) pgbench: single-row inserts, 2 clients, interleaved rounds
    # and, to split sales_api's cost between its trigger and the worker it wakes, the
    # same capture with the worker stopped (SIGSTOP) for the length of the run
    pg_variants = variants() + [("sales_api_stopped", "sales_sa", "")]
    tps = {v[0]: [] for v in pg_variants}
    wcpu = {v[0]: [] for v in pg_variants}
    # and at a fixed rate (--rate) well below what the machine commits, as a POS inserts:
    # the median time a transaction takes (its INSERT and COMMIT, without pgbench's
    # schedule lag), which flat-out TPS hides behind the fsyncs the clients queue on.
    # Each variant runs in one pgbench beside the table without a trigger, the two
    # scripts drawn at random transaction by transaction: both see the same disk and
    # the same machine, so the ratio of their medians is not the drift between two
    # runs a few seconds apart (which moved a ratio by 10 points)
    paired = [v for v in pg_variants if v[0] != "none"] + [FLOOR_VARIANT]
    lat = {v[0]: [] for v in paired}
    lat_none = {v[0]: [] for v in paired}
    scripts = {}
    for name, table, _ in pg_variants + [FLOOR_VARIANT]:
        scripts[name] = os.path.join(work, "bench_%s.sql" % name)
        with open(scripts[name], "w") as f:
            f.write("\\set store random(1, %d)\n\\set cents random(100, 9999)\n"
                    "INSERT INTO %s (store, sold_at, channel, net, tax) "
                    "VALUES (:store, now(), 'TAKE', :cents / 100.0, 0.10);\n" % (UNITS, table))

    def pgbench(name, extra, seconds, files):
        if name == "sales_api_stopped":
            os.kill(wpid, signal.SIGSTOP)
        try:
            out = subprocess.run([os.path.join(BIN, "pgbench"), "-n", "-M", "prepared", "-c", "2", "-j", "2",
                                  "-T", str(seconds)] + extra + sum((["-f", f] for f in files), []) + [BDB],
                                 capture_output=True, text=True, cwd=work)
        finally:
            if name == "sales_api_stopped":
                os.kill(wpid, signal.SIGCONT)
        m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out.stdout)
        if out.returncode != 0 or not m:
            raise BenchError("pgbench failed: %s %s" % (out.stdout[-800:], out.stderr[-800:]))
        return float(m.group(1))

    for r in range(cfg["rounds"]):
        # each round runs every variant once, in an order rotated round by round
        order = pg_variants[r % len(pg_variants):] + pg_variants[:r % len(pg_variants)]
        for name, table, _ in order:
            reset_capture_tables()
            c0 = cpu_seconds(wpid)
            tps[name].append(pgbench(name, [], cfg["pgbench_seconds"], [scripts[name]]))
            wcpu[name].append((cpu_seconds(wpid) - c0) / cfg["pgbench_seconds"])
            log("   pgbench round %d %-17s %8.0f TPS (worker CPU %.0f%%)" % (
                r + 1, name, tps[name][-1], 100 * wcpu[name][-1]))
        order = paired[r % len(paired):] + paired[:r % len(paired)]
        for name, table, _ in order:
            reset_capture_tables()
            prefix = "rate_%d_%s" % (r, name)
            pgbench(name, ["--rate", str(cfg["rate_tps"]), "-l", "--log-prefix", prefix],
                    cfg["rate_seconds"], [scripts["none"] + "@1", scripts[name] + "@1"])
            # a log line per transaction: client, number, latency (from its scheduled start),
            # script (0: no trigger, 1: the variant), epoch, microseconds, schedule lag
            us = ([], [])
            for fn in glob.glob(os.path.join(work, prefix + ".*")):
                with open(fn) as f:
                    for line in f:
                        p = line.split()
                        us[int(p[3])].append(int(p[2]) - int(p[6]))
                os.unlink(fn)
            if min(len(x) for x in us) < cfg["rate_tps"] * cfg["rate_seconds"] * 0.4:
                raise BenchError("pgbench --rate %d ran %d + %d transactions in %d s" % (
                    cfg["rate_tps"], len(us[0]), len(us[1]), cfg["rate_seconds"]))
            lat_none[name].append(statistics.median(us[0]))
            lat[name].append(statistics.median(us[1]))
            log("   pgbench round %d at %d TPS: %-17s %.0f us a transaction, no trigger beside it %.0f us" % (
                r + 1, cfg["rate_tps"], name, lat[name][-1], lat_none[name][-1]))
    # ratios are taken round by round (the variants of a round ran within a minute of each
    # other), then the median and quartiles: a slow drift or a burst of other work on the
    # machine moves both sides of a ratio, or one round only
    def ratios(a, b):
        return [x / y for x, y in zip(tps[a], tps[b])]
    pgq_on = "pgq" in tps
    res.add("1a", "single-row INSERT, pgbench 2 clients: TPS, median (IQR) of %d rounds" % cfg["rounds"],
            fmt_tps(tps["sales_api"]),
            "no trigger %s; hand-written %s" % (fmt_tps(tps["none"]), fmt_tps(tps["hand"])),
            pgq=fmt_tps(tps["pgq"]) if pgq_on else None)
    res.add("1a", "single-row TPS vs no trigger (per-round ratios), 2 clients flat out",
            fmt_below(ratios("sales_api", "none")),
            "hand-written: %s" % fmt_below(ratios("hand", "none")),
            pgq=fmt_below(ratios("pgq", "none")) if pgq_on else None)
    res.add("1a", "single-row TPS vs no trigger, worker stopped", fmt_below(ratios("sales_api_stopped", "none")),
            "the worker paused by SIGSTOP")

    def lat_ratios(a):
        return [x / y for x, y in zip(lat[a], lat_none[a])]

    def fmt_above(rs):
        above = [100 * (x - 1) for x in rs]
        lo, hi = iqr(above)
        return "%+.1f%% (IQR %+.1f\u2013%+.1f)" % (statistics.median(above), lo, hi)

    def fmt_us(values):
        lo, hi = iqr(values)
        return "%.0f us (IQR %.0f\u2013%.0f)" % (statistics.median(values), lo, hi)
    res.add("1a", "single-row INSERT at %s TPS (pgbench --rate, 2 clients): a transaction's median time, "
            "median (IQR) of %d rounds" % (fmt_int(cfg["rate_tps"]), cfg["rounds"]),
            fmt_us(lat["sales_api"]), "no trigger beside it %s; hand-written %s" % (
                fmt_us(lat_none["sales_api"]), fmt_us(lat["hand"])),
            pgq=fmt_us(lat["pgq"]) if pgq_on else None)
    res.add("1a", "single-row INSERT at %s TPS: time vs no trigger in the same run (per-round ratios)"
            % fmt_int(cfg["rate_tps"]),
            fmt_above(lat_ratios("sales_api")), "hand-written %s; worker stopped %s" % (
                fmt_above(lat_ratios("hand")), fmt_above(lat_ratios("sales_api_stopped"))),
            "at most 3% above", statistics.median(lat_ratios("sales_api")) <= 1.03,
            pgq=fmt_above(lat_ratios("pgq")) if pgq_on else None)
    res.add("1a", "single-row INSERT at %s TPS: the floor, a C statement trigger with a transition table that "
            "writes one row (no mapping, no SQL), vs no trigger in the same run" % fmt_int(cfg["rate_tps"]),
            "\u2014", fmt_above(lat_ratios("floor")) + " (test/bench/floor_trigger.c)")
    res.note("1a pgbench TPS per round (%d s each, -M prepared, 2 clients, medians, quartiles and per-round ratios "
             "in the table): %s; worker CPU during the sales_api runs: %s of a core (it drains %s; a commit in the "
             "capture database wakes nothing, a check of the worker's database in the trigger; before 0.5 every "
             "commit woke it for a cycle against %s)%s" % (
                 cfg["pgbench_seconds"],
                 "; ".join("%s %s" % (k, ", ".join("%.0f" % x for x in v)) for k, v in tps.items()),
                 ", ".join("%.0f%%" % (100 * x) for x in wcpu["sales_api"]), WDB, WDB,
                 "; PgQ: pgq.logutriga('%s') AFTER INSERT FOR EACH ROW, no ticker or consumer on this database"
                 % BENCH_QUEUE if pgq_on else ""))
    res.note("1a at %d TPS, a transaction's median time per round (us), each variant beside the table without "
             "a trigger in one pgbench run (%d s, the two scripts drawn at random): %s" % (
                 cfg["rate_tps"], cfg["rate_seconds"],
                 "; ".join("%s %s (no trigger %s)" % (k, ", ".join("%.0f" % x for x in v),
                                                      ", ".join("%.0f" % x for x in lat_none[k]))
                           for k, v in lat.items())))

    # (b) 100,000 rows in one INSERT ... SELECT and in one COPY
    n = cfg["bulk_rows"]
    copy_file = os.path.join(work, "bench_copy.tsv")
    with open(copy_file, "w") as f:
        base = datetime.datetime(2026, 11, 20, tzinfo=datetime.timezone.utc)
        for i in range(n):
            t = base + datetime.timedelta(milliseconds=i * 864)
            f.write("%d\t%s\tSALE\t%s\t%.2f\t%.2f\t%d\n" % (
                1 + i % UNITS, t.isoformat(), ("EAT_IN", "TAKE", "DELIVERY")[i % 3],
                1 + (i % 5000) / 100.0, (i % 300) / 100.0, 1 + i % 3))
    os.chmod(copy_file, 0o644)
    times = {(v[0], m): [] for v in variants() for m in ("insert", "copy")}
    for r in range(cfg["bulk_rounds"]):
        for name, table, _ in variants():
            for method in ("insert", "copy"):
                reset_capture_tables()
                if method == "insert":
                    ms = insert_sales(n, table=table, db=BDB)
                else:
                    ms = timed_ms("COPY %s (store, sold_at, kind, channel, net, tax, guests) FROM '%s';" % (
                        table, copy_file), BDB)
                times[(name, method)].append(ms)
                if name == "sales_api":
                    # items, or (0.6) sales staged for the worker to make items
                    n_out = int(q1("SELECT (SELECT count(*) FROM sales_api.outbox) + (SELECT coalesce(sum("
                                   "coalesce(cardinality(sale_keys), 1)), 0) FROM sales_api.outbox_stage)", db=BDB))
                    if n_out != n:
                        raise BenchError("sales_api capture enqueued %d items for %d rows" % (n_out, n))
                if name == "pgq":
                    n_out = int(q1("SELECT count(*) FROM " + pgq_peer.event_table(psql, BDB, BENCH_QUEUE), db=BDB))
                    if n_out != n:
                        raise BenchError("PgQ capture queued %d events for %d rows" % (n_out, n))
                log("   bulk round %d %-9s %-6s %8.0f ms" % (r + 1, name, method, ms))
    for method, label in (("insert", "INSERT ... SELECT"), ("copy", "COPY")):
        med = {v[0]: statistics.median(times[(v[0], method)]) for v in variants()}

        def ratios(a, b):
            return [x / y for x, y in zip(times[(a, method)], times[(b, method)])]

        def r(a, b):
            return statistics.median(ratios(a, b))
        res.add("1b", "%s rows in one %s: time" % (fmt_int(n), label), fmt_ms(med["sales_api"]),
                "no trigger %s; hand-written %s" % (fmt_ms(med["none"]), fmt_ms(med["hand"])),
                pgq=fmt_ms(med["pgq"]) if pgq_on else None)
        lo, hi = iqr(ratios("sales_api", "none"))
        res.add("1b", "%s: time vs no trigger, median (IQR) of %d rounds' ratios" % (label, cfg["bulk_rounds"]),
                "%.2fx (IQR %.2f\u2013%.2f)" % (r("sales_api", "none"), lo, hi),
                "hand-written %.2fx" % r("hand", "none"), "at most 1.3x", r("sales_api", "none") <= 1.3,
                pgq="%.2fx" % r("pgq", "none") if pgq_on else None)
        res.add("1b", "%s: time vs hand-written trigger" % label, "%.2fx" % r("sales_api", "hand"), "",
                "at most 0.5x", r("sales_api", "hand") <= 0.5,
                pgq="%.2fx" % r("pgq", "hand") if pgq_on else None)
        if pgq_on:
            res.add("1b", "%s: time vs PgQ logutriga" % label, "%.2fx" % r("sales_api", "pgq"), "", "",
                    pgq="1x (the reference)")
    res.note("1b times per round (ms): %s" % "; ".join(
        "%s/%s %s" % (k[0], k[1], ", ".join("%.0f" % x for x in v)) for k, v in times.items()))
    psql("SET client_min_messages = warning;\nDROP DATABASE IF EXISTS %s;" % BDB, db="postgres")


# ---------------------------------------------------------------------------
# 2.-3. Drain throughput and calls per sale; 5. memory
# ---------------------------------------------------------------------------
def baseline_sender(n):
    """One POST per sale, one at a time, over a kept-alive connection (a per-row webhook)."""
    u = urllib.parse.urlsplit(os.environ["MOCK_URL"])
    ctx = ssl.create_default_context(cafile=os.environ["MOCK_CA"])
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30)
    hdrs = {"X-API-KEY": "ct-key-123", "Content-Type": "application/json", "Accept": "application/json"}
    t0 = time.time()
    for i in range(n):
        body = json.dumps({"transactionsCreateRequest": [{
            "locationId": 1 + i % UNITS, "saleType": "SALE", "createdAt": 1796083200 + i,
            "finalSaleAmount": 1 + (i % 5000) / 100, "taxAmount": 0.1, "currency": "EUR"}]})
        conn.request("POST", "/connecteam/sales/v1/transactions", body, hdrs)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise BenchError("baseline sender: HTTP %d" % r.status)
    dt = time.time() - t0
    conn.close()
    return n / dt


def drain_sales_api(n, vendors):
    """n sales captured for vendors with the servers paused and the worker stopped, then
    resumed; the worker's drain, checked by compare.py.  -> dict of figures"""
    mock_setup(latency_ms=20)
    setup_pos(vendors)
    # the worker is stopped while the sales go in: it makes staged sales outbox
    # items even for a paused server, and that work belongs in the drain's time
    wpid, mpid = worker_pid(), mock_pid()
    os.kill(wpid, signal.SIGSTOP)
    try:
        ins_ms = insert_sales(n)
        summ = outbox_summary()
        n_slots = summ.get(("mapal_slot", "pending"), 0)
        n_staged = int(q1("SELECT coalesce(sum(coalesce(cardinality(sale_keys), 1)), 0) FROM sales_api.outbox_stage"))
        wc0, mc0 = cpu_seconds(wpid), (cpu_seconds(mpid) if mpid else 0)
        stats0 = psql("SELECT requests, rate_limited FROM sales_api.worker_stats()").split("|")
        mark = mock_mark()
        t0 = resume(vendors)
    finally:
        os.kill(wpid, signal.SIGCONT)
    if n_staged != n:
        raise BenchError("drain: %d of %d sales staged" % (n_staged, n))
    wait_drained(600, "the drain")
    t_wall = time.time()
    ends = dict(r.split("|") for r in psql(
        "SELECT kind, extract(epoch FROM max(sent_at)) FROM sales_api.outbox WHERE state = 'sent' GROUP BY 1"
    ).splitlines())
    t_end = max(float(x) for x in ends.values())
    wcpu = cpu_seconds(wpid) - wc0
    mcpu = (cpu_seconds(mpid) - mc0) if mpid else float("nan")
    summ = outbox_summary()
    sent_ct = summ.get(("ct_post", "sent"), 0)
    bad = {k: v for k, v in summ.items() if k[1] not in ("sent",)}
    if sent_ct != n or bad:
        raise BenchError("drain: %d of %d Connecteam items sent; other states: %s" % (sent_ct, n, bad))
    entries = mock_log(mark)
    ct_posts = sum(1 for e in entries if is_ct_post(e))
    mapal_reqs = sum(1 for e in entries if is_mapal(e))
    # exactly what was committed, nothing lost or duplicated (test/lib/compare.py)
    cmp = subprocess.run([sys.executable, os.path.join(ROOT, "test/lib/compare.py"), "bench-drain"]
                         + ([] if "mapal" in vendors else ["--no-mapal"]),
                         capture_output=True, text=True, env=dict(os.environ, SA_DB=WDB))
    if cmp.returncode != 0:
        raise BenchError("drain: the mock does not hold exactly the local sales:\n" + cmp.stdout + cmp.stderr)
    stats1 = psql("SELECT requests, rate_limited FROM sales_api.worker_stats()").split("|")
    at_mock = posts_at_mock(entries, t0, t_end)
    return {"ins_ms": ins_ms, "n_slots": n_slots, "t0": t0, "at_mock": at_mock, "t_end": t_end, "t_wall": t_wall, "ends": ends,
            "dur": t_end - t0, "rate": n / (t_end - t0), "wcpu": wcpu, "mcpu": mcpu, "summ": summ,
            "ct_posts": ct_posts, "mapal_reqs": mapal_reqs, "other": len(entries) - ct_posts - mapal_reqs,
            "n429": sum(1 for e in entries if e["status"] == 429),
            "cmp": cmp.stdout.strip().splitlines()[-1] if cmp.stdout.strip() else "ok",
            "stats": (int(stats1[0]) - int(stats0[0]), int(stats1[1]) - int(stats0[1]))}


def drain_pgq(peer, n):
    """The same n sales into the PgQ peer's pos_sales with its ticks paused, then ticks resumed:
    pgqd ticks, the consumer (running, idle) takes the batch and posts it.  From the resume to
    the consumer's last finish_batch.  -> dict of figures"""
    mock_setup(latency_ms=20)
    peer.check_alive()
    psql("TRUNCATE pos_sales RESTART IDENTITY", db=pgq_peer.PDB)
    done0 = sum(b["events"] for b in peer.batches())
    nb0 = len(peer.batches())
    peer.pause_ticks(True)
    cpid, bpid = peer.consumer_pids()
    try:
        ins_ms = insert_sales(n, db=pgq_peer.PDB)
        queued = int(q1("SELECT count(*) FROM " + pgq_peer.event_table(psql, pgq_peer.PDB, pgq_peer.QUEUE)
                        + " WHERE ev_extra1 = 'public.pos_sales'", db=pgq_peer.PDB))
        mpid = mock_pid()
        c0 = {p: cpu_seconds(p) for p in (cpid, bpid, peer.pgqd.pid, mpid) if p}
        mark = mock_mark()
        t0 = time.time()
    finally:
        peer.pause_ticks(False)
    t_lim = time.time() + 600
    while sum(b["events"] for b in peer.batches()) - done0 < n:
        peer.check_alive()
        if time.time() > t_lim:
            raise BenchError("PgQ drain: timed out; %d of %d sales done" % (
                sum(b["events"] for b in peer.batches()) - done0, n))
        time.sleep(0.1)
    t_wall = time.time()
    batches = peer.batches()[nb0:]
    t_end = max(b["end"] for b in batches)
    cpu = {p: cpu_seconds(p) - c0[p] for p in c0}
    entries = mock_log(mark)
    ct_posts = sum(1 for e in entries if is_ct_post(e))
    # exactly what was committed, with compare.py's identity of a sale
    local = collections.Counter(tuple(r.split("|")) for r in psql(
        "SELECT store, floor(extract(epoch FROM sold_at))::bigint, net, tax, kind FROM pos_sales",
        db=pgq_peer.PDB).splitlines())
    remote = collections.Counter(
        (str(t["locationId"]), str(t["createdAt"]), "%.2f" % float(t["finalSaleAmount"]),
         "%.2f" % float(t.get("taxAmount") or 0), t["saleType"])
        for t in mock("GET", "/_mock/state").get("connecteam_transactions", []))
    lost = sum((local - remote).values())
    dups = sum((remote - local).values())
    if queued != n or lost or dups:
        raise BenchError("PgQ drain: %d events queued for %d sales; the mock lacks %d and has %d more"
                         % (queued, n, lost, dups))
    return {"ins_ms": ins_ms, "dur": t_end - t0, "rate": n / (t_end - t0), "ct_posts": ct_posts,
            "at_mock": posts_at_mock(entries, t0, t_end),
            "n429": sum(1 for e in entries if e["status"] == 429), "batches": batches,
            "ccpu": cpu.get(cpid, 0), "bcpu": cpu.get(bpid, 0), "tcpu": cpu.get(peer.pgqd.pid, 0),
            "mcpu": cpu.get(mpid, float("nan")), "t_wall": t_wall, "t0": t0,
            "retries": sum(b["retries"] for b in batches)}


def bench_drain(cfg, res, state, peer=None):
    n = cfg["drain_sales"]
    log("2. drain: %s sales (Connecteam + Mapal, %d units, one day) through the worker, the mock answering after 20 ms"
        % (fmt_int(n), UNITS))
    if state.get("fresh_worker"):
        mock_setup(latency_ms=20)
        setup_pos()
        state["rss"].append(memory_point(0))
        state["fresh_worker"] = False
    d = drain_sales_api(n, ("connecteam", "mapal"))
    state["drain_rate"] = d["rate"]
    state["sales"] += n
    state["rss"].append(memory_point(state["sales"]))

    # the same sales for Connecteam only: sales_api, then the PgQ peer
    log("2. drain, Connecteam only: the same %s sales through sales_api%s" % (
        fmt_int(n), " and through PgQ" if peer else ""))
    c = drain_sales_api(n, ("connecteam",))
    state["sales"] += n
    state["rss"].append(memory_point(state["sales"]))
    g = None
    if peer:
        g = drain_pgq(peer, n)
        state["pgq_rss"].append(("after its drain of %s sales" % fmt_int(n), proc_status(peer.consumer.pid),
                                 proc_status(peer.pgqd.pid)))

    log("   baseline: %d sales, one POST each, sequential" % cfg["baseline_sales"])
    base = baseline_sender(cfg["baseline_sales"])
    # what max_concurrency requests of 100 sales, each answered after the mock's 20 ms, allow
    allowed = 4 * 100 / 0.020
    # issue 15's goal: "at least 20,000 sales/s with a 20 ms vendor and max_concurrency 4 (80% or
    # more of what that concurrency allows)": 20,000/s is that ceiling itself (every request takes
    # its 20 ms and more), so the target is the parenthetical's share, printed beside the rate
    res.add("2", "sales delivered per second (both vendors)", fmt_int(d["rate"]),
            "one-per-request sender: %.1f/s" % base, "", None,
            pgq="%s (Connecteam only)" % NO_PGQ if peer else None)
    res.add("2", "both vendors: share of what max_concurrency 4 allows (4 x 100 sales per 20 ms = %s/s)"
            % fmt_int(allowed), "%.0f%%" % (100 * d["rate"] / allowed), "", "at least 80%",
            d["rate"] / allowed >= 0.8, pgq="%s (Connecteam only)" % NO_PGQ if peer else None)
    res.add("2", "throughput vs one-per-request sender", "%sx" % fmt_int(d["rate"] / base), "",
            "at least 100x", d["rate"] / base >= 100)
    res.add("2", "requests made for %s sales" % fmt_int(n),
            fmt_int(d["ct_posts"] + d["mapal_reqs"] + d["other"]), "one-per-request sender: %s" % fmt_int(n), "",
            pgq="%s (Connecteam only)" % NO_PGQ if peer else None)
    res.add("2", "Connecteam only: sales delivered per second", fmt_int(c["rate"]),
            "one-per-request sender: %.1f/s" % base, "", None,
            pgq=fmt_int(g["rate"]) if g else None)
    res.add("2", "Connecteam only: share of what max_concurrency 4 allows (4 x 100 sales per 20 ms = %s/s)"
            % fmt_int(allowed), "%.0f%%" % (100 * c["rate"] / allowed), "", "at least 80%",
            c["rate"] / allowed >= 0.8, pgq="%.0f%%" % (100 * g["rate"] / allowed) if g else None)
    if g:
        res.add("2", "Connecteam only: sales_api's rate over PgQ's", "%.2fx" % (c["rate"] / g["rate"]), "", "",
                pgq="1x (the reference)")
    res.add("2", "Connecteam only: requests made for %s sales" % fmt_int(n), fmt_int(c["ct_posts"] + c["other"]),
            "one-per-request sender: %s" % fmt_int(n), "",
            pgq=fmt_int(g["ct_posts"]) if g else None)
    res.add("3", "Connecteam requests per 10,000 sales", "%.0f" % (d["ct_posts"] * 10000.0 / n), "",
            "100 (the floor)", d["ct_posts"] * 10000.0 / n <= 100.0001,
            pgq="%.0f" % (g["ct_posts"] * 10000.0 / n) if g else None)
    per_unit_day = d["mapal_reqs"] / float(UNITS)
    res.add("3", "Mapal requests per unit and day", "%.2f" % per_unit_day,
            "%s dirty slots of %d unit-days" % (fmt_int(d["n_slots"]), UNITS), "1 (the floor)",
            per_unit_day <= 1.0001, pgq="%s (no Mapal consumer)" % NO_PGQ if peer else None)
    for name, x, what in (("both vendors", d, "INSERT ... SELECT with both captures: %s Connecteam sales, staged in "
                           "rows of 500 that the worker takes straight into flight within the drain's time, "
                           "and %s Mapal slots" % (
                               fmt_int(n), fmt_int(d["n_slots"]))),
                          ("Connecteam only", c, "INSERT ... SELECT with the Connecteam capture")):
        res.note("2 drain, %s: %s sales captured in %s (%s); delivered in %.2f s (Connecteam done after %.2f s%s); "
                 "%d Connecteam POSTs, %d Mapal requests, %d other (tokens), %d answered 429; posts at the mock "
                 "at once, on average: %.2f (each there %.1f ms, median); worker CPU %.1f s "
                 "(%.0f%% of one core), mock CPU %.1f s (%.0f%%); worker_stats(): %d requests, %d rate-limited; "
                 "compare.py: %s" % (
                     name, fmt_int(n), fmt_ms(x["ins_ms"]), what, x["dur"],
                     float(x["ends"].get("ct_post", x["t_end"])) - x["t0"],
                     ", Mapal after %.2f s" % (float(x["ends"]["mapal_slot"]) - x["t0"])
                     if "mapal_slot" in x["ends"] else "",
                     x["ct_posts"], x["mapal_reqs"], x["other"], x["n429"], x["at_mock"][0], x["at_mock"][1],
                     x["wcpu"],
                     100 * x["wcpu"] / (x["t_wall"] - x["t0"]), x["mcpu"], 100 * x["mcpu"] / (x["t_wall"] - x["t0"]),
                     x["stats"][0], x["stats"][1], x["cmp"]))
    if g:
        span = g["t_wall"] - g["t0"]
        res.note("2 drain, PgQ: the same %s sales captured by pgq.logutriga in %s (pgqd's ticks paused with "
                 "pgq.set_queue_config(..., 'ticker_paused', '1')); ticks resumed, then %d batch(es) of %s events, "
                 "delivered in %.2f s from the resume to the consumer's last finish_batch; %d Connecteam POSTs, "
                 "%d retried, %d answered 429; posts at the mock at once, on average: %.2f (each there %.1f ms, "
                 "median); consumer CPU %.2f s and its backend %.2f s (%.0f%% of one core "
                 "together), pgqd %.2f s, mock CPU %.1f s (%.0f%%); the mock holds exactly the %s sales of "
                 "pos_sales (compare.py's identity of a sale)" % (
                     fmt_int(n), fmt_ms(g["ins_ms"]), len(g["batches"]),
                     "/".join(fmt_int(b["events"]) for b in g["batches"]), g["dur"], g["ct_posts"], g["retries"],
                     g["n429"], g["at_mock"][0], g["at_mock"][1], g["ccpu"], g["bcpu"], 100 * (g["ccpu"] + g["bcpu"]) / span, g["tcpu"], g["mcpu"],
                     100 * g["mcpu"] / span, fmt_int(n)))
    res.note("2 baseline: %d sales posted one per request, sequentially, over one kept-alive HTTPS "
             "connection (Python http.client) to the same mock answering after the same 20 ms: %.1f sales/s"
             % (cfg["baseline_sales"], base))

    # does the rate follow max_concurrency? the same drain, Connecteam only, at 1, 2 and 8
    # (the SIGHUP of pg_reload_conf() wakes the idle worker, which reads its settings before
    # setup_pos() has made the fresh extension; "posts at the mock at once" shows what it used)
    m = cfg["scale_sales"]
    log("2. drain, Connecteam only, %s sales at max_concurrency 1, 2 and 8" % fmt_int(m))
    scaled = {4: c}
    try:
        for mc in (1, 2, 8):
            psql("ALTER SYSTEM SET sales_api.max_concurrency = %d;\nSELECT pg_reload_conf();" % mc, db="postgres")
            scaled[mc] = drain_sales_api(m, ("connecteam",))
            state["sales"] += m
    finally:
        psql("ALTER SYSTEM RESET sales_api.max_concurrency;\nSELECT pg_reload_conf();", db="postgres")
    for mc in (1, 2, 4, 8):
        x = scaled[mc]
        allowed_mc = mc * 100 / 0.020
        res.add("2", "Connecteam only, max_concurrency %d: sales/s, and share of what it allows (%s/s)" % (
            mc, fmt_int(allowed_mc)), "%s (%.0f%%)" % (fmt_int(x["rate"]), 100 * x["rate"] / allowed_mc),
            "posts at the mock at once %.2f, worker on CPU %.0f%%" % (
                x["at_mock"][0], 100 * x["wcpu"] / (x["t_wall"] - x["t0"])), "")


def bench_memory_fill(cfg, res, state):
    """More sales through the same worker, in chunks, until memory_total."""
    total = cfg["memory_total"]
    log("5. memory: the worker up to %s sales (mock latency 0, reset between chunks)" % fmt_int(total))
    day = 1
    wpid = worker_pid()
    while state["sales"] < total:
        n = min(cfg["chunk"], total - state["sales"])
        mock_setup(latency_ms=0)
        insert_sales(n, day_offset=day)
        day += 1
        t0 = time.time()
        psql("SELECT sales_api.resume('connecteam'), sales_api.resume('mapal')")
        wait_drained(900, "a memory chunk")
        state["sales"] += n
        pt = memory_point(state["sales"])
        state["rss"].append(pt)
        log("   %s sales: RssAnon %d kB (after malloc_trim %s kB), VmRSS %d kB (chunk drained in %.1f s)" % (
            fmt_int(state["sales"]), pt[1]["RssAnon"], pt[2]["RssAnon"] if pt[2] else "?", pt[1]["VmRSS"],
            time.time() - t0))
        if worker_pid() != wpid:
            raise BenchError("the worker restarted during the memory run")


def memory_point(sales):
    """(sales, the worker's /proc status, the same after malloc_trim(0) or None,
    its memory contexts as context_total() reads them or None)"""
    pid = worker_pid()
    raw = proc_status(pid)
    trimmed = malloc_trim(pid)
    # the mappings' resident anonymous memory, for a look at where growth is
    # (heap, stack, a library's own mmap): kept in the work directory
    try:
        with open("/proc/%d/smaps" % pid) as f, \
                open(os.path.join(os.environ["SA_WORK"], "worker-smaps-%d.txt" % sales), "w") as out:
            out.write(f.read())
    except OSError:
        pass
    return (sales, raw, trimmed, context_total(pid))


def context_total(pid):
    """PostgreSQL's memory contexts of a backend, from pg_log_backend_memory_contexts:
    (the 'Grand total', of it the plan cache's contexts the log lists (CachedPlanSource,
    CachedPlanQuery, CachedPlan), the number of plan sources listed), or None."""
    logf = os.environ.get("SA_PGLOG")
    if not logf or not pid:
        return None
    off = os.path.getsize(logf)
    psql("SELECT pg_log_backend_memory_contexts(%d)" % pid, db="postgres")
    t0 = time.time()
    tag = "[%d]" % pid
    while time.time() - t0 < 15:
        plans = nplans = 0
        with open(logf, errors="replace") as f:
            f.seek(off)
            for line in f:
                if tag not in line:
                    continue
                m = re.search(r"level: \d+; (CachedPlan(?:Source|Query)?): (\d+) total", line)
                if m:
                    plans += int(m.group(2))
                    nplans += m.group(1) == "CachedPlanSource"
                m = re.search(r"Grand total: (\d+) bytes", line)
                if m:
                    return (int(m.group(1)), plans, nplans)
        time.sleep(0.3)
    return None


def report_memory(res, state):
    rss = state["rss"]
    if not rss:
        return
    start = rss[0][1]
    shown = [rss[0]] + [x for x in rss[1:] if x[0] == 100000 or x is rss[-1]]
    # the PgQ consumer's private memory after its start and after its drain (pgqd's beside it)
    pgq_rss = state.get("pgq_rss", [])
    for k, (sales, st, _, _) in enumerate(shown):
        label = "after start" if sales == 0 else "after %s sales" % fmt_int(sales)
        grow = (st["RssAnon"] - start["RssAnon"]) / 1024.0
        pgq = None
        if k < len(pgq_rss):
            pgq = "consumer %.1f MiB %s (pgqd %.1f MiB)" % (
                pgq_rss[k][1]["RssAnon"] / 1024.0, pgq_rss[k][0], pgq_rss[k][2]["RssAnon"] / 1024.0)
        res.add("5", "worker private memory (RssAnon) %s" % label, "%.1f MiB" % (st["RssAnon"] / 1024.0),
                "VmRSS %.1f MiB" % (st["VmRSS"] / 1024.0) + ("" if sales == 0 else "; growth %.1f MiB" % grow),
                "" if sales == 0 else "growth under 2 MiB", None if sales == 0 else grow < 2.0, pgq=pgq)
    if len(rss) >= 3:
        a, b = rss[1], rss[-1]
        res.add("5", "growth from %s to %s sales" % (fmt_int(a[0]), fmt_int(b[0])),
                "%.1f MiB" % ((b[1]["RssAnon"] - a[1]["RssAnon"]) / 1024.0), "", "", None)
    if all(x[2] for x in rss):
        t0, t1, tl = rss[0][2], rss[1][2], rss[-1][2]
        res.add("5", "the same after malloc_trim(0) (gdb): after start / %s / %s sales" % (
            fmt_int(rss[1][0]), fmt_int(rss[-1][0])),
            "%.1f / %.1f / %.1f MiB" % (t0["RssAnon"] / 1024.0, t1["RssAnon"] / 1024.0, tl["RssAnon"] / 1024.0),
            "growth %.1f MiB: memory in use" % ((tl["RssAnon"] - t0["RssAnon"]) / 1024.0), "", None)
    if all(x[3] for x in rss):
        c0, c1, cl = rss[0][3], rss[1][3], rss[-1][3]
        res.add("5", "PostgreSQL memory contexts of the worker: after start / %s / %s sales" % (
            fmt_int(rss[1][0]), fmt_int(rss[-1][0])),
            "%.1f / %.1f / %.1f MiB" % (c0[0] / 1048576.0, c1[0] / 1048576.0, cl[0] / 1048576.0),
            "of which the plan cache %.1f / %.1f / %.1f MiB (%d / %d / %d statements); "
            "pg_log_backend_memory_contexts()" % (
                c0[1] / 1048576.0, c1[1] / 1048576.0, cl[1] / 1048576.0, c0[2], c1[2], cl[2]), "", None)
    res.note("5 memory: RssAnon is the worker's private memory; VmRSS also counts the shared buffers it has "
             "touched and mapped files, which grow with the data, not with a leak. At each point the worker's "
             "/proc status is read, then malloc_trim(0) is called in it with gdb and it is read again: what "
             "malloc_trim hands back is memory glibc's malloc had kept free after the peak of a cycle. "
             "Points: %s" % "; ".join(
                 "%s sales: RssAnon %d kB (%s kB after malloc_trim), VmRSS %d kB, RssShmem %d kB, VmHWM %d kB" % (
                     fmt_int(s_), st["RssAnon"], tr["RssAnon"] if tr else "?", st["VmRSS"], st["RssShmem"],
                     st["VmHWM"]) for s_, st, tr, _ in rss))


def malloc_trim(pid):
    """Diagnostic: how much of the worker's private memory is free memory glibc keeps?"""
    if not pid or subprocess.run(["sh", "-c", "command -v gdb"], capture_output=True).returncode != 0:
        return None
    r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (int) malloc_trim(0)"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return None
    return proc_status(pid)


# ---------------------------------------------------------------------------
# 3. Pacing under a rate limit
# ---------------------------------------------------------------------------
def bench_ratelimit(cfg, res, state):
    L, W, k = cfg["rl_limit"], cfg["rl_window"], cfg["rl_windows"]
    n_req = k * L + L // 2
    n = n_req * 100
    log("3. rate limit: %d requests per %d s (= %d per minute), a backlog of %s sales (%d full requests)" % (
        L, W, L * 60 // W, fmt_int(n), n_req))
    mock_setup(latency_ms=20, minute_limit=L, window=W)
    # a Connecteam account of its own, whose budget the worker has not seen yet
    mock("POST", "/_mock/config", {"connecteam_api_keys": ["ct-key-123", "ct-key-ratelimit"]})
    setup_pos(("connecteam",))
    psql("ALTER USER MAPPING FOR CURRENT_USER SERVER connecteam OPTIONS (SET api_key 'ct-key-ratelimit')")
    insert_sales(n, day_offset=40)
    mark = mock_mark()
    stats0 = psql("SELECT requests, rate_limited FROM sales_api.worker_stats()").split("|")
    resume(("connecteam",))
    wait_drained((k + 2) * W * 3 + 120, "the rate-limited backlog")
    summ = outbox_summary()
    if summ.get(("ct_post", "sent"), 0) != n:
        raise BenchError("rate limit: not every sale was sent: %s" % summ)
    stats1 = psql("SELECT requests, rate_limited FROM sales_api.worker_stats()").split("|")
    posts = sorted((e for e in mock_log(mark) if is_ct_post(e)), key=lambda e: e["ts"])
    n429 = sum(1 for e in posts if e["status"] == 429)
    charged = [e for e in posts if e["status"] != 429]
    # replay the mock's fixed windows: one starts at the first charged request after
    # the previous one ended, at int(now); the charge happens after the 20 ms latency.
    # The share is what the full windows carried over what the limit allowed from the
    # start of the first window to the start of the last (so time lost between the end
    # of a window and the first request of the next counts against it)
    wins = []
    for e in charged:
        t = e["ts"] + 0.020
        if not wins or t >= wins[-1][0] + W:
            wins.append([int(t), e["ts"], 0])
        wins[-1][2] += 1
    if len(wins) < 2:
        raise BenchError("rate limit: the backlog fitted in one window")
    full = wins[:-1]
    used = sum(w[2] for w in full)
    span = wins[-1][0] - wins[0][0]
    share_time = used / (L / float(W) * span)
    share_budget = used / float(L * len(full))
    unmeasured = "not measured" if PGQ_OK else None
    res.add("3", "429s received under %d requests/min" % (L * 60 // W), "%d" % n429, "", "0", n429 == 0,
            pgq=unmeasured)
    res.add("3", "share of the allowed rate used while a backlog exists", "%.1f%%" % (100 * share_time),
            "budget of each full window: %.1f%%" % (100 * share_budget), "at least 90%", share_time >= 0.9,
            pgq=unmeasured)
    res.note("3 rate limit: %d per %d s window; %s sales = %d requests; windows (requests each): %s; "
             "%d full windows sent %d requests in %d s from the start of the first window to the start "
             "of the last (the mock starts a window at the first request after the previous one ended, "
             "truncated to the second); worker_stats: %d requests, %d rate-limited" % (
                 L, W, fmt_int(n), n_req, ", ".join(str(w[2]) for w in wins), len(full), used, span,
                 int(stats1[0]) - int(stats0[0]), int(stats1[1]) - int(stats0[1])))


# ---------------------------------------------------------------------------
# 4. Latency
# ---------------------------------------------------------------------------
LATENCY_SQL = """
CREATE TABLE bench_lat (i int, sale_id bigint, t_commit timestamptz, t_seen_sent timestamptz, state text);
CREATE PROCEDURE bench_latency(n int, cap int) LANGUAGE plpgsql AS $$
DECLARE
    sid bigint;
    t0  timestamptz;
    st  text;
BEGIN
    FOR i IN 1..n LOOP
        t0 := clock_timestamp();
        INSERT INTO pos_latency (store, sold_at, net, tax)
        VALUES (1 + i % 50, timestamptz '2026-12-01 00:00+00' + i * interval '1 minute', 10 + i / 100.0, 0.10)
        RETURNING id INTO sid;
        COMMIT;
        LOOP
            SELECT state INTO st FROM sales_api.outbox
             WHERE capture_id = cap AND kind = 'ct_post' AND sale_key = sid::text;
            EXIT WHEN st IN ('sent', 'dead', 'unknown', 'failed') OR clock_timestamp() > t0 + interval '10 s';
            PERFORM pg_sleep(0.001);
        END LOOP;
        INSERT INTO bench_lat VALUES (i, sid, t0, clock_timestamp(), st);
        COMMIT;
        PERFORM pg_sleep(0.005 + random() * 0.020);
    END LOOP;
END $$;
"""


def bench_latency(cfg, res, state, after=False, peer=None):
    n = cfg["latency_after_sales" if after else "latency_sales"]
    kept = int(q1("SELECT count(*) FROM sales_api.outbox WHERE state = 'sent'"))
    where = "with %s sent items kept in the outbox" % fmt_int(kept) if after else "fresh outbox"
    log("4. latency: %d sales committed one at a time, idle worker, mock latency 20 ms, %s" % (n, where))
    mock_setup(latency_ms=20)
    psql("SET client_min_messages = warning;\nDROP TABLE IF EXISTS pos_latency, bench_lat CASCADE;\n"
         "DROP PROCEDURE IF EXISTS bench_latency(int, int);\n" + SALES_TABLE.format(t="pos_latency")
         + LATENCY_SQL)
    cap = q1("SELECT sales_api.attach('pos_latency', 'connecteam', %s)" % CT_MAPPING)
    psql("SELECT sales_api.resume('connecteam')")
    # one sale first, so that the worker's connection and token are warm (as in steady operation)
    psql("CALL bench_latency(1, %s); TRUNCATE bench_lat;" % cap)
    time.sleep(0.5)
    mark = mock_mark()
    psql("CALL bench_latency(%d, %s);" % (n, cap))
    rows = [r.split("|") for r in psql(
        "SELECT i, extract(epoch FROM sold_at), extract(epoch FROM t_commit), extract(epoch FROM t_seen_sent), "
        "b.state FROM bench_lat b JOIN pos_latency l ON l.id = b.sale_id ORDER BY i").splitlines()]
    if len(rows) != n or any(r[4] != "sent" for r in rows):
        raise BenchError("latency: not every sale was sent: %s" % [r for r in rows if r[4] != "sent"][:5])
    # the mock's arrival time of each sale, by its createdAt
    arrival = {}
    for e in mock_log(mark):
        if is_ct_post(e) and e["status"] == 200:
            for tx in json.loads(e["body"])["transactionsCreateRequest"]:
                arrival.setdefault(int(tx["createdAt"]), e["ts"])
    lat, e2e = [], []
    for r in rows:
        created, t_commit, t_seen = int(float(r[1])), float(r[2]), float(r[3])
        if created not in arrival:
            raise BenchError("latency: the mock never received sale %s" % r[0])
        lat.append((arrival[created] - t_commit) * 1000)
        e2e.append((t_seen - t_commit) * 1000)
    p50, p99 = pct(lat, 50), pct(lat, 99)
    g50 = g99 = gnote = None
    if peer and not after:
        glat, ge2e, gtick = latency_pgq(peer, n)
        g50, g99 = fmt_ms(pct(glat, 50)), fmt_ms(pct(glat, 99))
        gnote = ("4 latency, PgQ, over %d sales: commit to arrival p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms; "
                 "commit until the consumer has finished the batch (a tick whose snapshot sees the sale's "
                 "transaction is the consumer's last) p50 %.1f ms, p99 %.1f ms; commit to the tick that took the "
                 "sale (its tick_time, %d of %d ticks still kept) p50 %s, p99 %s, max %s. pgqd ticks every %d ms, the "
                 "queue's ticker_max_lag is 0 (a tick as soon as there are events), the consumer asks for a "
                 "batch every %d ms when it has none; the same procedure, table and mock as sales_api's" % (
                     n, pct(glat, 50), pct(glat, 90), pct(glat, 99), max(glat), pct(ge2e, 50), pct(ge2e, 99),
                     len(gtick), n, *(fmt_ms(f(gtick)) if gtick else "?"
                                      for f in (lambda v: pct(v, 50), lambda v: pct(v, 99), max)),
                     peer.tick_ms, peer.poll_ms))
    elif peer:
        g50 = g99 = "%s (PgQ keeps no sent history)" % NO_PGQ
    res.add("4", "commit to the mock receiving the sale: p50, %s" % where, fmt_ms(p50),
            "the mock then adds its 20 ms", "at most 20 ms", p50 <= 20, pgq=g50)
    res.add("4", "commit to the mock receiving the sale: p99, %s" % where, fmt_ms(p99), "", "at most 100 ms",
            p99 <= 100, pgq=g99)
    res.note("4 latency (%s) over %d sales: commit to arrival p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms; "
             "commit until the outbox row reads 'sent' (after the mock's 20 ms and the worker's record "
             "transaction) p50 %.1f ms, p99 %.1f ms. Each sale: INSERT + COMMIT in a procedure, then it polls "
             "the outbox every 1 ms until 'sent', then pauses 5-25 ms; times from clock_timestamp() before the "
             "INSERT to the mock's log time of the request" % (
                 where, n, p50, pct(lat, 90), p99, max(lat), pct(e2e, 50), pct(e2e, 99)))
    if gnote:
        res.note(gnote)
    state["sales"] += n + 1


def latency_pgq(peer, n):
    """The PgQ peer's latency, as bench_latency's: one sale committed at a time into a table
    captured by logutriga.  -> (commit to the mock's arrival, commit to the batch finished), ms"""
    log("4. latency, PgQ: %d sales committed one at a time, idle consumer, mock latency 20 ms" % n)
    mock_setup(latency_ms=20)
    peer.check_alive()
    db = pgq_peer.PDB
    psql("SET client_min_messages = warning;\nDROP TABLE IF EXISTS pos_latency, bench_lat CASCADE;\n"
         "DROP PROCEDURE IF EXISTS bench_latency(int);\n" + SALES_TABLE.format(t="pos_latency")
         + pgq_peer.trigger_sql("pos_latency", pgq_peer.QUEUE) + pgq_peer.LATENCY_SQL, db=db)
    # one sale first, so that the consumer's connection is warm (as in steady operation)
    psql("CALL bench_latency(1); TRUNCATE bench_lat;", db=db)
    time.sleep(0.5)
    mark = mock_mark()
    psql("CALL bench_latency(%d);" % n, db=db)
    peer.check_alive()
    rows = [r.split("|") for r in psql(
        "SELECT i, extract(epoch FROM sold_at), extract(epoch FROM t_commit), extract(epoch FROM t_seen_sent), "
        "b.state FROM bench_lat b JOIN pos_latency l ON l.id = b.sale_id ORDER BY i", db=db).splitlines()]
    if len(rows) != n or any(r[4] != "sent" for r in rows):
        raise BenchError("PgQ latency: not every sale was sent: %s" % [r for r in rows if r[4] != "sent"][:5])
    arrival = {}
    for e in mock_log(mark):
        if is_ct_post(e) and e["status"] == 200:
            for tx in json.loads(e["body"])["transactionsCreateRequest"]:
                arrival.setdefault(int(tx["createdAt"]), e["ts"])
    ticks = dict(r.split("|") for r in psql(pgq_peer.TICK_OF_SALE_SQL, db=db).splitlines())
    lat, e2e, to_tick = [], [], []
    for r in rows:
        created, t_commit, t_seen = int(float(r[1])), float(r[2]), float(r[3])
        if created not in arrival:
            raise BenchError("PgQ latency: the mock never received sale %s" % r[0])
        lat.append((arrival[created] - t_commit) * 1000)
        e2e.append((t_seen - t_commit) * 1000)
        if ticks.get(r[0]):
            to_tick.append((float(ticks[r[0]]) - t_commit) * 1000)
    return lat, e2e, to_tick


# ---------------------------------------------------------------------------
# 4c. Latency from the client's side (issue 8, point 3)
# ---------------------------------------------------------------------------
CLIENT_TABLE = "pos_client"
CLIENT_BASE = "2026-12-15 00:00+00"     # its sales' sold_at: a minute apart from here (the mock's key)
CLIENT_WAIT_SA = ("SELECT state FROM sales_api.outbox WHERE capture_id = %d AND kind = 'ct_post'"
                  " AND sale_key = '%s'")
CLIENT_WAIT_PGQ = ("SELECT txid_visible_in_snapshot(%s, t.tick_snapshot) FROM pgq.subscription s"
                   " JOIN pgq.queue q ON q.queue_id = s.sub_queue JOIN pgq.consumer c ON c.co_id = s.sub_consumer"
                   " JOIN pgq.tick t ON t.tick_queue = s.sub_queue AND t.tick_id = s.sub_last_tick"
                   " WHERE q.queue_name = '%s' AND c.co_name = '%s'" % ("%s", pgq_peer.QUEUE, pgq_peer.CONSUMER))


def client_commits(db, n, first, done):
    """n sales, each its own transaction sent by this process over libpq:
    BEGIN; INSERT one sale RETURNING id; SELECT txid_current(); then the client's clock
    (time.time(), the clock the mock logs with) just before COMMIT is sent and again when it
    returns; then wait (a poll every 1 ms, at most 10 s) until done(conn, sale id, xid) says the
    sale has been sent, and pause 5-25 ms.  Sale i's sold_at is CLIENT_BASE + (first + i)
    minutes.  -> [(createdAt in epoch seconds, t before COMMIT, t after COMMIT, delivered)]"""
    import random
    c = pq.Conn(db)
    out = []
    try:
        for i in range(first, first + n):
            c.exec("BEGIN")
            sid = c.exec("INSERT INTO %s (store, sold_at, net, tax) VALUES (%d, timestamptz '%s' + %d * "
                         "interval '1 minute', %.2f, 0.10) RETURNING id" % (
                             CLIENT_TABLE, 1 + i % UNITS, CLIENT_BASE, i, 10 + i / 100.0))
            xid = c.exec("SELECT txid_current()")
            t0 = time.time()
            c.exec("COMMIT")
            t1 = time.time()
            ok = False
            while time.time() - t0 < 10:
                if done(c, sid, xid):
                    ok = True
                    break
                time.sleep(0.001)
            out.append((int(float(c.exec("SELECT extract(epoch FROM timestamptz '%s' + %d * interval '1 minute')"
                                         % (CLIENT_BASE, i)))), t0, t1, ok))
            time.sleep(0.005 + random.random() * 0.020)
    finally:
        c.close()
    return out


def client_figures(rows, mark, what):
    """-> (commit to arrival, bare COMMIT, arrival after COMMIT returned) in ms, per sale"""
    if not all(r[3] for r in rows):
        raise BenchError("client latency (%s): %d sales not sent within 10 s" % (what, sum(1 for r in rows if not r[3])))
    arrival = {}
    for e in mock_log(mark):
        if is_ct_post(e) and e["status"] == 200:
            for tx in json.loads(e["body"])["transactionsCreateRequest"]:
                arrival.setdefault(int(tx["createdAt"]), e["ts"])
    c2v, floor, over = [], [], []
    for created, t0, t1, _ in rows:
        if created not in arrival:
            raise BenchError("client latency (%s): the mock never received the sale of %d" % (what, created))
        c2v.append((arrival[created] - t0) * 1000)
        floor.append((t1 - t0) * 1000)
        over.append((arrival[created] - t1) * 1000)
    return c2v, floor, over


def client_setup_sa():
    psql("SET client_min_messages = warning;\nDROP TABLE IF EXISTS %s CASCADE;\n" % CLIENT_TABLE
         + SALES_TABLE.format(t=CLIENT_TABLE))
    cap = int(q1("SELECT sales_api.attach('%s', 'connecteam', %s)" % (CLIENT_TABLE, CT_MAPPING)))
    psql("SELECT sales_api.resume('connecteam')")
    return cap


def client_setup_pgq():
    psql("SET client_min_messages = warning;\nDROP TABLE IF EXISTS %s CASCADE;\n" % CLIENT_TABLE
         + SALES_TABLE.format(t=CLIENT_TABLE) + pgq_peer.trigger_sql(CLIENT_TABLE, pgq_peer.QUEUE), db=pgq_peer.PDB)


def client_run(db, n, first, done, what):
    """One warm-up sale (connections and token warm, as in steady operation), then n measured."""
    client_commits(db, 1, first, done)
    time.sleep(0.5)
    mark = mock_mark()
    rows = client_commits(db, n, first + 1, done)
    return client_figures(rows, mark, what)


def fill_sent(target):
    """Make the outbox keep `target` sent items when it keeps fewer: the Connecteam items the
    worker has sent (state 'sent', with their connecteam_sent rows) are copied, as they are, with
    new sale keys ('k' || n, apart from every table's ids), createdAt a second apart from
    2026-10-01, and sent_at a quarter second apart going back from now (inside
    sales_api.sent_retention, 7 days, so the worker's purge keeps them); then VACUUM ANALYZE, as
    autovacuum would after a million inserts, and a CHECKPOINT.  -> (kept before, copies made)"""
    kept = int(q1("SELECT count(*) FROM sales_api.outbox WHERE state = 'sent'"))
    need = target - kept
    if need <= 0:
        return kept, 0
    log("4c. outbox keeps %s sent items: %s more, copies of the worker's sent Connecteam items" % (
        fmt_int(kept), fmt_int(need)))
    t0 = time.time()
    psql("""
CREATE TEMP TABLE tmpl AS
  SELECT row_number() OVER (ORDER BY o.id) - 1 AS r, o.*, cs.transaction_id
    FROM sales_api.outbox o JOIN sales_api.connecteam_sent cs USING (capture_id, sale_key)
   WHERE o.state = 'sent' AND o.kind = 'ct_post';
CREATE TEMP TABLE gen AS
  SELECT g, t.* FROM generate_series(1, %d) g
    JOIN tmpl t ON t.r = g %% (SELECT count(*) FROM tmpl);
INSERT INTO sales_api.outbox (capture_id, kind, state, sale_key, location_id, sale_type, created_at,
       final_sale_amount, tax_amount, currency, attempts, enqueued_at, sent_at, http_status, vendor_ref,
       ambiguous)
SELECT capture_id, kind, 'sent', 'k' || g, location_id, sale_type,
       timestamptz '2026-10-01 00:00+00' + g * interval '1 s', final_sale_amount, tax_amount, currency,
       attempts, now() - g * interval '250 ms' - interval '30 ms', now() - g * interval '250 ms',
       http_status, vendor_ref || '-k' || g, ambiguous
  FROM gen ORDER BY g DESC;
INSERT INTO sales_api.connecteam_sent (capture_id, sale_key, transaction_id, location_id, created_at,
       final_sale_amount, sent_at)
SELECT capture_id, 'k' || g, transaction_id || '-k' || g, location_id,
       timestamptz '2026-10-01 00:00+00' + g * interval '1 s', final_sale_amount, now() - g * interval '250 ms'
  FROM gen ORDER BY g DESC;
""" % need)
    if int(q1("SELECT count(*) FROM sales_api.outbox WHERE state = 'sent'")) < target:
        raise BenchError("fill_sent: no sent Connecteam items to copy")
    # and a CHECKPOINT, so that the writing out of the million rows' pages is not in the measurement
    psql("VACUUM ANALYZE sales_api.outbox;\nVACUUM ANALYZE sales_api.connecteam_sent;\nCHECKPOINT;")
    log("   made in %.1f s" % (time.time() - t0))
    return kept, need


def bench_client_latency(cfg, res, state, after=False, peer=None):
    n = cfg["client_sales"]
    made = ""
    if after:
        kept0, copies = fill_sent(cfg["client_kept"])
        kept = int(q1("SELECT count(*) FROM sales_api.outbox WHERE state = 'sent'"))
        made = ("%s sent by the worker in the runs before, %s copies of those (fill_sent)" % (
            fmt_int(kept0), fmt_int(copies)) if copies else "all sent by the worker in the runs before")
        where = "with %s sent items kept" % fmt_int(kept)
    else:
        where = "fresh outbox"
    log("4c. client latency: %d sales committed one at a time over libpq, mock latency 20 ms, %s" % (n, where))
    mock_setup(latency_ms=20)
    # the drain and memory benchmarks start from a fresh extension (setup_pos drops pos_client):
    # then the table is attached again
    if after and "client_cap" in state and q1("SELECT to_regclass('%s') IS NOT NULL" % CLIENT_TABLE) == "t":
        cap = state["client_cap"]
        psql("SELECT sales_api.resume('connecteam')")
    else:
        cap = client_setup_sa()
    state["client_cap"] = cap
    first = 0 if not after else 10000
    c2v, floor, over = client_run(WDB, n, first, lambda c, sid, xid: c.exec(CLIENT_WAIT_SA % (cap, sid)) == "sent",
                                  "sales_api, " + where)
    g = None
    if peer:
        log("4c. client latency, PgQ: %d sales, idle consumer, mock latency 20 ms" % n)
        mock_setup(latency_ms=20)
        peer.check_alive()
        if not after:
            client_setup_pgq()
        g = client_run(pgq_peer.PDB, n, first, lambda c, sid, xid: c.exec(CLIENT_WAIT_PGQ % xid) == "t",
                       "PgQ, " + where)
        peer.check_alive()

    def f(vals, p):
        return fmt_ms(pct(vals, p))
    gp = (lambda i, p: f(g[i], p)) if g else (lambda i, p: None)
    res.add("4c", "client clock before COMMIT to the mock receiving the sale: p50, %s" % where, f(c2v, 50),
            "", "", None, pgq=gp(0, 50))
    res.add("4c", "client clock before COMMIT to the mock receiving the sale: p99, %s" % where, f(c2v, 99),
            "", "", None, pgq=gp(0, 99))
    res.add("4c", "bare COMMIT (the floor): p50, %s" % where, f(floor, 50), "", "", None, pgq=gp(1, 50))
    res.add("4c", "bare COMMIT (the floor): p99, %s" % where, f(floor, 99), "", "", None, pgq=gp(1, 99))
    o50, o99 = pct(over, 50), pct(over, 99)
    res.add("4c", "over the floor (per sale: arrival after COMMIT returned): p50, %s" % where, fmt_ms(o50),
            "p50 minus p50: %s" % fmt_ms(pct(c2v, 50) - pct(floor, 50)), "at most 5 ms", o50 <= 5, pgq=gp(2, 50))
    res.add("4c", "over the floor (per sale: arrival after COMMIT returned): p99, %s" % where, fmt_ms(o99),
            "p99 minus p99: %s" % fmt_ms(pct(c2v, 99) - pct(floor, 99)), "at most 15 ms", o99 <= 15,
            pgq=gp(2, 99))

    def line(name, v):
        return "%s p50 %.2f, p90 %.2f, p99 %.2f, max %.2f ms" % (name, pct(v, 50), pct(v, 90), pct(v, 99), max(v))
    res.note("4c client latency (%s%s) over %d sales, each its own transaction from a client process over libpq "
             "(BEGIN; INSERT one sale; SELECT txid_current(); COMMIT), mock latency 20 ms (figure 4's): %s; %s; %s. "
             "Clock: the client's time.time() just before COMMIT is sent and when it returns, the mock's time.time() "
             "when the request carrying the sale arrives (before its 20 ms); the client then polls every 1 ms until "
             "the sale is sent and pauses 5-25 ms" % (
                 where, "; " + made if made else "", n, line("commit to arrival", c2v), line("COMMIT", floor),
                 line("over the floor", over)))
    if g:
        res.note("4c client latency, PgQ (%s), the same client, transactions and mock on a table captured by "
                 "logutriga in the peer's database, waiting until the consumer has finished a batch whose tick "
                 "sees the transaction: %s; %s; %s" % (
                     where, line("commit to arrival", g[0]), line("COMMIT", g[1]), line("over the floor", g[2])))
    state["sales"] += n + 1


# ---------------------------------------------------------------------------
# --profile
# ---------------------------------------------------------------------------
def ensure_perf():
    if subprocess.run(["sh", "-c", "command -v perf"], capture_output=True).returncode == 0:
        return True
    log("installing linux-perf for --profile")
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "linux-perf"],
                   capture_output=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    return subprocess.run(["sh", "-c", "command -v perf"], capture_output=True).returncode == 0


def perf_record(pid, out):
    return subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o", out, "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_stop(p):
    p.send_signal(signal.SIGINT)
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()


def perf_report(data, extra, keep=None, limit=30):
    r = subprocess.run(["perf", "report", "-i", data, "--stdio", "-g", "none", "--percent-limit", "0.5"] + extra,
                       capture_output=True, text=True)
    lines = [l.rstrip() for l in r.stdout.splitlines() if l.strip() and not l.startswith("#")]
    if keep is not None:
        seen = set()
        picked = []
        for l in lines:
            sym = l.split()[-1]
            if sym in keep and sym not in seen:
                seen.add(sym)
                picked.append(l)
        lines = picked
    samples = re.search(r"# Samples: (\S+)", r.stdout)
    return (samples.group(1) if samples else "?"), lines[:limit]


# PostgreSQL entry points worth seeing inclusive of their callees
INCL_PG = {"SPI_execute_with_args", "SPI_execute", "raw_parser", "pg_analyze_and_rewrite_withcb",
           "pg_analyze_and_rewrite_fixedparams", "pg_plan_queries", "planner", "standard_planner",
           "standard_ExecutorRun", "ExecInsertIndexTuples", "heap_update", "heap_insert", "CommitTransactionCommand",
           "StartTransactionCommand", "curl_multi_perform", "curl_multi_poll", "WaitLatch", "AfterTriggerEndQuery",
           "ExecScan", "MultiExecHash", "index_getnext_slot", "ExecHashJoin", "XLogFlush"}


def sales_api_symbols():
    lib = subprocess.run([os.path.join(BIN, "pg_config"), "--pkglibdir"], capture_output=True,
                         text=True).stdout.strip()
    out = subprocess.run(["nm", "--defined-only", os.path.join(lib, "sales_api.so")], capture_output=True,
                         text=True).stdout
    return {l.split()[-1] for l in out.splitlines() if len(l.split()) == 3 and l.split()[1] in "tT"}


def restart_cluster_with_pgss():
    with open(os.path.join(os.environ["PGDATA"], "postgresql.conf"), "a") as f:
        f.write("shared_preload_libraries = 'sales_api, pg_stat_statements'\n"
                "pg_stat_statements.track = 'all'\npg_stat_statements.track_planning = on\n")
    subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(BIN, "pg_ctl"), "-D", os.environ["PGDATA"],
                    "-l", os.environ["SA_PGLOG"], "-w", "-m", "fast", "restart"], check=True,
                   stdout=subprocess.DEVNULL)


def bench_profile(cfg, state, out_path):
    if not ensure_perf():
        log("perf is not available: no profile")
        return
    log("profile: the cluster restarted with pg_stat_statements (track = all)")
    restart_cluster_with_pgss()
    wait_worker()
    work = os.environ["SA_WORK"]
    sections = []

    # the worker during a drain
    n = cfg["drain_sales"]
    vendors = tuple(v for v in ("connecteam", "mapal") if v in cfg.get("profile_vendors", "connecteam,mapal").split(","))
    mock_setup(latency_ms=20)
    setup_pos(vendors)
    psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements;")
    # as the drain figure: the worker stopped while the sales go in (a
    # running worker would make a paused server's staged sales pending items)
    wpid = worker_pid()
    os.kill(wpid, signal.SIGSTOP)
    try:
        insert_sales(n)
        psql("SELECT pg_stat_statements_reset();")
        data = os.path.join(work, "worker.perf")
        p = perf_record(wpid, data)
        time.sleep(0.5)
        c0 = cpu_seconds(wpid)
        t0 = resume(vendors)
    finally:
        os.kill(wpid, signal.SIGCONT)
    wait_drained(600, "the profiled drain")
    t1 = time.time()
    perf_stop(p)
    busy = (cpu_seconds(wpid) - c0) / (t1 - t0)
    samples, self_lines = perf_report(data, ["--no-children", "--sort", "dso,sym"])
    _, incl_lines = perf_report(data, ["--children", "--sort", "sym"], keep=sales_api_symbols() | INCL_PG)
    pgss = psql("SELECT round(total_exec_time::numeric, 0) || ' ms | ' || calls || ' | ' || "
                "plans || ' | ' || round(total_plan_time::numeric, 0) || ' ms | ' || "
                "round((total_exec_time / greatest(calls, 1))::numeric, 3) || ' ms | ' || "
                "regexp_replace(left(query, 160), '\\s+', ' ', 'g') "
                "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                "WHERE d.datname = current_database() AND query NOT LIKE '%%pg_stat_statements%%' "
                "AND query NOT LIKE 'SELECT NOT EXISTS (SELECT $1 FROM sales_api.outbox%%' "
                "ORDER BY total_exec_time DESC LIMIT 15")
    sections.append(("The worker draining %s sales (%s, mock answering after 20 ms): %.1f s, worker on CPU "
                     "%.0f%% of the time; perf %s samples at 999 Hz" % (
                         fmt_int(n), "both vendors" if len(vendors) == 2 else vendors[0] + " only",
                         t1 - t0, 100 * busy, samples),
                     self_lines, incl_lines,
                     "Worker SQL by total time (pg_stat_statements, track = all; total | calls | plans made | "
                     "planning time | mean | query):",
                     pgss))

    # a backend capturing 100,000 rows in one INSERT ... SELECT
    setup_capture_db()
    psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset();", db=BDB)
    proc = subprocess.Popen([os.path.join(BIN, "psql"), "-X", "-q", "-At", "-d", BDB], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    proc.stdin.write("SELECT pg_backend_pid();\n")
    proc.stdin.flush()
    bpid = int(proc.stdout.readline())
    data2 = os.path.join(work, "capture.perf")
    p = perf_record(bpid, data2)
    time.sleep(0.5)
    for _ in range(3):
        proc.stdin.write(
            "INSERT INTO sales_sa (store, sold_at, kind, channel, net, tax, guests) SELECT 1 + i %% %d, "
            "timestamptz '2026-11-20 00:00+00' + i * interval '864 ms', 'SALE', 'TAKE', "
            "round((1 + (i %% 5000) / 100.0)::numeric, 2), 0.10, 1 FROM generate_series(0, %d) i;\n"
            % (UNITS, cfg["bulk_rows"] - 1))
    proc.stdin.write("SELECT 'done';\n")
    proc.stdin.flush()
    proc.stdout.readline()
    perf_stop(p)
    proc.stdin.close()
    proc.wait()
    samples2, self2 = perf_report(data2, ["--no-children", "--sort", "dso,sym"])
    pgss2 = psql("SELECT round(total_exec_time::numeric, 0) || ' ms | ' || calls || ' | ' || "
                 "regexp_replace(left(query, 160), '\\s+', ' ', 'g') FROM pg_stat_statements s "
                 "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() "
                 "AND query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC LIMIT 6", db=BDB)
    sections.append(("A backend inserting 3 x %s rows with INSERT ... SELECT into a table with sales_api's "
                     "Connecteam and Mapal captures; perf %s samples" % (fmt_int(cfg["bulk_rows"]), samples2), self2, [],
                     "Its SQL by total time (total | calls | query):", pgss2))
    psql("SET client_min_messages = warning;\nDROP DATABASE IF EXISTS %s;" % BDB, db="postgres")

    with open(out_path, "w") as f:
        f.write("# sales_api profile\n\nWritten by `test/bench/run --profile` on %s (%s). perf record -g (frame "
                "pointers) of one process; the postgres binary is stripped, so its static functions show as "
                "addresses. Self time first, then time inclusive of callees for sales_api.so's functions.\n"
                % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), machine()["summary"]))
        for title, selfl, incl, sqlt, sql in sections:
            f.write("\n## %s\n\nSelf time (dso, symbol):\n\n```\n%s\n```\n" % (title, "\n".join(selfl)))
            if incl:
                f.write("\nInclusive of callees (sales_api.so's functions and some PostgreSQL entry points; "
                        "static functions called once are inlined into their caller):\n\n```\n%s\n```\n"
                        % "\n".join(incl))
            f.write("\n%s\n\n```\n%s\n```\n" % (sqlt, sql))
    log("profile written to %s" % out_path)
    if not out_path.startswith(HERE):
        with open(out_path) as f:
            print(f.read())


# ---------------------------------------------------------------------------
# 6. Lanes: one destination never holds back another
# ---------------------------------------------------------------------------
LANES_P50_MS = 1000
LANES_P99_MS = 2000


def lanes_fmt(ms, wait_s):
    return ("more than %.0f s (a sale never arrived)" % wait_s) if ms == math.inf else fmt_ms(ms)


def bench_lanes(cfg, res, state):
    B, L, W, T, S = (cfg["lanes_backlog"], cfg["lanes_limit"], cfg["lanes_window"], cfg["lanes_timeout"],
                     cfg["lanes_seconds"])
    interval_ms = 250
    log("6. lanes: Mapal latency beside a Connecteam backlog of %s sales under %d requests per %d s, and "
        "beside Connecteam hanging until request_timeout %d s; sales every %d ms for %d s per phase, mock "
        "latency 20 ms" % (fmt_int(B), L, W, T, interval_ms, S))
    mock_setup(latency_ms=20)
    setup_pos(("connecteam", "mapal"))
    # the baseline a user compares with: a table attached to Mapal only, in the same database
    psql("SET client_min_messages = warning;\nDROP TABLE IF EXISTS pos_mapal_only CASCADE;\n"
         + SALES_TABLE.format(t="pos_mapal_only")
         + "SELECT sales_api.attach('pos_mapal_only', 'mapal', %s);\n" % MAPAL_MAPPING)
    psql("ALTER SYSTEM %s;\nSELECT pg_reload_conf();" % (
        "RESET sales_api.request_timeout" if T == 30 else "SET sales_api.request_timeout = '%ds'" % T), db="postgres")
    resume(("connecteam", "mapal"))
    wait_worker()
    # the worker's connection and token are warm, as in steady operation
    lanes.measure(WDB, "pos_mapal_only", 47, datetime.date(2026, 11, 28), 1, interval_ms, 60)
    figures = {}
    try:
        # the baseline: Mapal only, nothing else for the worker to do
        wait_b = 120
        figures["base"] = (lanes.measure(WDB, "pos_mapal_only", 48, datetime.date(2026, 12, 1), S, interval_ms,
                                         wait_b), wait_b)
        log("6. lanes: Mapal-only table: p50 %s, p99 %s" % (fmt_ms(figures["base"][0]["p50"]),
                                                           fmt_ms(figures["base"][0]["p99"])))

        # 1. the backlog: B sales at once into the table attached to both vendors
        mock("POST", "/_mock/config", {"connecteam_minute_limit": L, "connecteam_window_seconds": W})
        mark = mock_mark()
        psql("INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)\n"
             " SELECT 1 + i %% 3, timestamptz '2026-11-20 06:00+00' + i * interval '7 s', 'SALE',\n"
             "        (ARRAY['EAT_IN', 'TAKE', 'DELIVERY'])[1 + (i / 3) %% 3], round((1 + (i %% 997) / 10.0)::numeric, 2),\n"
             "        round(((i %% 13) / 10.0)::numeric, 2), 1 + i %% 4\n"
             "   FROM generate_series(0, %d) i;" % (B - 1))
        t0 = time.time()
        # the first window's budget spent: from here on Connecteam has to wait for its window
        while sum(1 for e in mock_log(mark) if is_ct_post(e) and e["status"] == 200) < min(L, B // 100):
            if time.time() - t0 > 120:
                raise BenchError("lanes: the worker did not start on the Connecteam backlog in 120 s")
            time.sleep(0.25)
        wait_1 = max(120, int(1.5 * W * math.ceil(B / 100.0 / L)) + 60)
        figures["backlog"] = (lanes.measure(
            WDB, "pos_sales", 49, datetime.date(2026, 12, 3), S, interval_ms, wait_1,
            probe="SELECT %d - count(*) FROM sales_api.outbox WHERE kind = 'ct_post' AND state = 'sent' "
                  "AND location_id <= 3" % B), wait_1)
        posts_1 = sum(1 for e in mock_log(mark) if is_ct_post(e))
        log("6. lanes: Connecteam backlog: p50 %s, p99 %s" % (lanes_fmt(figures["backlog"][0]["p50"], wait_1),
                                                             lanes_fmt(figures["backlog"][0]["p99"], wait_1)))

        # 2. Connecteam hangs every request until the worker's request_timeout
        mock("POST", "/_mock/config", {"connecteam_minute_limit": 10 ** 9})
        mock("POST", "/_mock/faults", {"path": "^/connecteam/", "action": "hang", "count": 10 ** 6})
        mark = mock_mark()
        psql("INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)\n"
             " SELECT 1 + i % 3, timestamptz '2026-11-21 06:00+00' + i * interval '7 s', 'SALE', 'EAT_IN',\n"
             "        round((2 + (i % 89) / 10.0)::numeric, 2), 0.20, 1\n"
             "   FROM generate_series(0, 299) i;")
        t0 = time.time()
        while mock("GET", "/_mock/inflight")["hanging"] < 1:
            if time.time() - t0 > 2 * T + 60:
                raise BenchError("lanes: no Connecteam request reached the mock to hang")
            time.sleep(0.25)
        wait_2 = max(120, 10 * T)
        figures["hang"] = (lanes.measure(WDB, "pos_sales", 50, datetime.date(2026, 12, 6), S, interval_ms,
                                         wait_2), wait_2)
        hung = [e for e in mock_log(mark) if e["fault"] == "hang"]
        # a request still hanging when the measurement ends has no ms yet
        hangs = [e["ms"] / 1000.0 for e in hung if e["ms"] is not None]
        log("6. lanes: Connecteam hanging: p50 %s, p99 %s" % (lanes_fmt(figures["hang"][0]["p50"], wait_2),
                                                             lanes_fmt(figures["hang"][0]["p99"], wait_2)))
    finally:
        # everything released, then everything delivered exactly once
        mock("DELETE", "/_mock/faults")
        mock("POST", "/_mock/release")
        mock("POST", "/_mock/config", {"connecteam_minute_limit": 10 ** 9, "connecteam_window_seconds": 60})
        psql("ALTER SYSTEM RESET sales_api.request_timeout;\nSELECT pg_reload_conf();", db="postgres")
    t0 = time.time()
    wait_drained(1200, "the lanes benchmark's sales")
    drain_s = time.time() - t0
    summ = outbox_summary()
    bad = {k: v for k, v in summ.items() if k[1] not in ("sent", "superseded")}
    cmp = subprocess.run([sys.executable, os.path.join(ROOT, "test/lib/compare.py"), "bench-lanes",
                          "--mapal-also", "pos_mapal_only"],
                         capture_output=True, text=True, env=dict(os.environ, SA_DB=WDB))
    if cmp.returncode != 0 or bad:
        raise BenchError("lanes: the mock does not hold exactly the local sales (outbox: %s):\n%s%s" % (
            summ, cmp.stdout, cmp.stderr))

    base, _ = figures["base"]
    for name, what in (("backlog", "a Connecteam backlog of %s sales under %d requests per %d s" % (fmt_int(B), L, W)),
                       ("hang", "Connecteam hanging every request until request_timeout (%d s)" % T)):
        r, wait_s = figures[name]
        res.add("6", "Mapal commit to arrival, both vendors attached, beside %s: p50" % what,
                lanes_fmt(r["p50"], wait_s), "Mapal-only table: %s" % fmt_ms(base["p50"]),
                "at most 1 s", r["p50"] <= LANES_P50_MS)
        res.add("6", "Mapal commit to arrival, both vendors attached, beside %s: p99" % what,
                lanes_fmt(r["p99"], wait_s), "Mapal-only table: %s" % fmt_ms(base["p99"]),
                "at most 2 s", r["p99"] <= LANES_P99_MS)
    rb, rh = figures["backlog"][0], figures["hang"][0]
    res.note("6 lanes: each phase commits one sale every %d ms for %d s (%d sales), each in a Mapal slot of its "
             "own; latency from clock_timestamp() at the sale's INSERT (its own transaction, just before the "
             "commit) to the mock's log time of the first Mapal request carrying the slot with the sale's total; "
             "a sale that never arrived counts as infinitely late (test/lib/lanes.py). Mapal-only table, "
             "Connecteam idle: p50 %.1f ms, p99 %.1f ms, max %.1f ms. Backlog: %s sales in one INSERT, the mock "
             "allowing %d Connecteam requests per %d s window; measured once the first window's budget was spent; "
             "%s of the backlog's sales were not yet recorded sent after the last measured commit; %d Connecteam "
             "posts reached the mock from the burst to the last arrival; p50 %s, p99 %s, max %s, %d of %d arrived "
             "within %d s. Hang: the mock's `hang` fault on every Connecteam request (never answered, never "
             "stored), 300 more sales to hang on, limit lifted; %d requests hung during the measurement, %d of them "
             "given up by then, after %s; "
             "p50 %s, p99 %s, max %s, %d of %d arrived within %d s. Then faults released: drained in %.0f s; "
             "compare.py: %s" % (
                 interval_ms, S, base["count"], base["p50"], base["p99"], base["max"], fmt_int(B), L, W,
                 rb["probe"], posts_1, lanes_fmt(rb["p50"], figures["backlog"][1]),
                 lanes_fmt(rb["p99"], figures["backlog"][1]), lanes_fmt(rb["max"], figures["backlog"][1]),
                 rb["arrived"], rb["count"], figures["backlog"][1], len(hung), len(hangs),
                 ("%.1f to %.1f s" % (min(hangs), max(hangs))) if hangs else "-",
                 lanes_fmt(rh["p50"], figures["hang"][1]), lanes_fmt(rh["p99"], figures["hang"][1]),
                 lanes_fmt(rh["max"], figures["hang"][1]), rh["arrived"], rh["count"], figures["hang"][1],
                 drain_s, cmp.stdout.strip().splitlines()[-1] if cmp.stdout.strip() else "ok"))
    state["sales"] += B + 300 + base["count"] + rb["count"] + rh["count"] + 1


# ---------------------------------------------------------------------------
# Machine, RESULTS.md
# ---------------------------------------------------------------------------
def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    nproc = os.cpu_count()
    pg = subprocess.run([os.path.join(BIN, "postgres"), "--version"], capture_output=True, text=True).stdout.strip()
    git = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                         text=True).stdout.strip() or "?"
    return {"cpu": cpu, "nproc": nproc, "mem": "%.1f GiB" % (mem_kb / 1048576.0), "kernel": platform.release(),
            "pg": pg, "git": git,
            "summary": "%d x %s, %.1f GiB RAM" % (nproc, cpu, mem_kb / 1048576.0)}


def write_results(path, mode, cfg, res, m, started, elapsed, argv):
    with open(path, "w") as f:
        f.write("# sales_api benchmark results\n\n")
        f.write("`test/bench/run %s` on %s, %.0f s.\n\n" % (" ".join(argv), started.strftime("%Y-%m-%d %H:%M %Z"),
                                                            elapsed))
        f.write("Machine: `nproc` = %d, CPU %s, memory %s, Linux %s, %s; sales_api at %s%s. Load average "
                "(1 min) %.2f before the run, %.2f after.\n\n" % (
                    m["nproc"], m["cpu"], m["mem"], m["kernel"], m["pg"], m["git"],
                    "; the PgQ peer: %s" % m["pgq"] if m.get("pgq") else "", m["load_before"], m["load_after"]))
        f.write("Mode `%s`: %s.\n\n" % (mode, ", ".join("%s=%s" % kv for kv in sorted(cfg.items()))))
        f.write(res.table() + "\n\n")
        f.write("pass/MISS compares with the issue's target; info rows have none. Benchmarks print figures and "
                "never fail on a slow machine; the comparisons were measured in the same run.\n\n")
        f.write("## Details\n\n")
        for n in res.notes:
            f.write("- %s\n" % n)
        f.write("\nCluster: test/lib/env.sh with fsync = on (test/bench/run sets it; env.sh turns it off for the "
                "tests), shared_buffers 128MB, worker settings at their "
                "defaults (batch_size 2000, max_concurrency 4); the mock is test/mock/mock_vendor.py, a "
                "threaded Python server on the same machine, so it competes with PostgreSQL for the CPUs.\n")
        # how each figure is measured and where the time goes: test/bench/NOTES.md, kept by hand
        notes_path = os.path.join(HERE, "NOTES.md")
        if os.path.exists(notes_path):
            f.write("\n" + open(notes_path).read().strip() + "\n")
        # figures of the lanes' own commands (test/scale/97_many_lanes.sh, 93_lanes.sh),
        # run apart and kept by hand: a full run no longer drops them
        lanes_path = os.path.join(HERE, "LANES.md")
        if os.path.exists(lanes_path):
            f.write("\n" + open(lanes_path).read().strip() + "\n")


def main():
    ap = argparse.ArgumentParser(description="sales_api benchmarks (run through test/bench/run)")
    ap.add_argument("--quick", action="store_true", help="a bounded pass (4-7 minutes)")
    ap.add_argument("--only", default=",".join(ALL), help="comma-separated subset of: " + ", ".join(ALL))
    ap.add_argument("--profile", action="store_true", help="also profile (perf, pg_stat_statements) into PROFILE.md")
    ap.add_argument("--profile-vendors", default="connecteam,mapal",
                    help="the vendors the profiled drain's table is attached to (default both)")
    ap.add_argument("--no-write", action="store_true", help="print only; write no file")
    ap.add_argument("--no-pgq", action="store_true", help="leave out the PgQ peer")
    for k, v in MODES["full"].items():
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=None, help="(full: %s, quick: %s)" % (
            v, MODES["quick"][k]))
    a = ap.parse_args()
    mode = "quick" if a.quick else "full"
    cfg = dict(MODES[mode])
    for k in cfg:
        v = getattr(a, k)
        if v is not None:
            cfg[k] = v
            mode = mode + "+custom" if "+custom" not in mode else mode
    if a.profile_vendors != "connecteam,mapal":
        cfg["profile_vendors"] = a.profile_vendors
    only = [x.strip() for x in a.only.split(",") if x.strip()]
    for x in only:
        if x not in ALL:
            ap.error("unknown benchmark %s" % x)

    # a SIGTERM still runs the finally clauses (a worker paused with SIGSTOP is continued)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.datetime.now().astimezone()
    t_start = time.time()
    m = machine()
    m["load_before"] = os.getloadavg()[0]
    log("machine: %s; %s; sales_api %s; mode %s; load average %.2f" % (
        m["summary"], m["pg"], m["git"], mode, m["load_before"]))
    res = Results()
    state = {"rss": [], "sales": 0, "fresh_worker": False, "pgq_rss": []}
    work = os.environ["SA_WORK"]
    rc = 0
    global PGQ_OK
    why = "left out (--no-pgq)" if a.no_pgq else pgq_peer.unavailable(BIN)
    peer = None
    if why:
        res.pgq_skipped = why
        res.note("PgQ peer not run: %s" % why)
        log("the PgQ peer does not run: %s" % why)
    else:
        PGQ_OK = True
        m["pgq"] = "pgq %s, %s" % (psql("SELECT default_version FROM pg_available_extensions "
                                        "WHERE name = 'pgq'", db="postgres"),
                                   pgq_peer.versions())
        log("PgQ peer: %s" % m["pgq"])
    try:
        # the worker's database first, so the worker runs real (empty) cycles while capture is measured
        mock_setup(latency_ms=20)
        setup_pos()
        wait_worker()
        if PGQ_OK and ("drain" in only or "latency" in only):
            # the peer's own POS database, ticked by pgqd and drained by the consumer from here on
            peer = pgq_peer.Peer(psql, BIN, work, cfg["pgq_tick_ms"], cfg["pgq_poll_ms"], cfg["pgq_concurrency"],
                                 SALES_TABLE)
            try:
                peer.setup()
                peer.start_ticker()
                peer.start_consumer()
            except RuntimeError as e:
                raise BenchError("PgQ peer: %s" % e)
            time.sleep(0.5)
            state["pgq_rss"].append(("after start", proc_status(peer.consumer.pid), proc_status(peer.pgqd.pid)))
        if "capture" in only:
            bench_capture(cfg, res, work)
        if "latency" in only:
            bench_client_latency(cfg, res, state, peer=peer)
            bench_latency(cfg, res, state, peer=peer)
        if "drain" in only or "memory" in only:
            if "memory" in only:
                restart_worker()
                state["fresh_worker"] = True
                state["sales"] = 0      # sales through this worker process
            bench_drain(cfg, res, state, peer=peer)
            if "memory" in only:
                bench_memory_fill(cfg, res, state)
                report_memory(res, state)
            if "latency" in only:
                # the same, once the outbox keeps the sent items of the runs above
                bench_latency(cfg, res, state, after=True, peer=peer)
        if "latency" in only:
            # from the client's side again, once the outbox keeps a million sent items (those of the
            # runs above, made up to a million by fill_sent when they are fewer)
            bench_client_latency(cfg, res, state, after=True, peer=peer)
        if "ratelimit" in only:
            bench_ratelimit(cfg, res, state)
        if "lanes" in only:
            bench_lanes(cfg, res, state)
        if a.profile:
            bench_profile(cfg, state, os.path.join(HERE, "PROFILE.md") if not a.no_write
                          else os.path.join(work, "PROFILE.md"))
    except (BenchError, RuntimeError) as e:
        res.errors.append(str(e))
        log("ERROR: %s" % e)
        rc = 1
    finally:
        if peer:
            peer.stop()
    elapsed = time.time() - t_start
    m["load_after"] = os.getloadavg()[0]
    if max(m["load_before"], m["load_after"]) > 0.5 * m["nproc"]:
        res.note("WARNING: the machine was busy with other work (load average %.2f before the run, %.2f after, "
                 "on %d CPUs): the figures are noisy; run again on a quiet machine" % (
                     m["load_before"], m["load_after"], m["nproc"]))

    print()
    print("sales_api benchmarks, %s, mode %s, %.0f s" % (started.strftime("%Y-%m-%d %H:%M"), mode, elapsed))
    print("machine: nproc %d, %s, %s RAM, %s; sales_api %s%s" % (m["nproc"], m["cpu"], m["mem"], m["pg"], m["git"],
                                                              "; " + m["pgq"] if m.get("pgq") else ""))
    print()
    print(res.text_table())
    print()
    for n in res.notes:
        print("- " + n)
    for e in res.errors:
        print("ERROR: " + e)
    if not a.no_write and not res.errors:
        name = "RESULTS.md" if mode == "full" else "RESULTS-quick.md"
        write_results(os.path.join(HERE, name), mode, cfg, res, m, started, elapsed, sys.argv[1:])
        log("results written to test/bench/%s" % name)
    misses = sum(1 for r in res.rows if r[-1] == "MISS")
    print("\n%d figures, %d targets met, %d missed%s" % (
        len(res.rows), sum(1 for r in res.rows if r[-1] == "pass"), misses,
        ", %d benchmark errors" % len(res.errors) if res.errors else ""))
    return rc


if __name__ == "__main__":
    sys.exit(main())
