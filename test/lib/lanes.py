#!/usr/bin/env python3
"""Mapal real-time latency, commit to the mock receiving the slot, while POS
sales are committed one at a time: the measurement of "one destination never
holds back another" (test/scenarios/93_lanes.sh, test/bench/bench.py's
`lanes` benchmark, test/bench/lanes.sh).

  lanes.py measure --table T --store S --day YYYY-MM-DD [--seconds 16]
                   [--interval-ms 250] [--wait 120] [--probe SQL] [--result FILE]

commits one sale every --interval-ms for --seconds into table T (the scenario
tests' POS table shape: store, sold_at, kind, channel, net, tax, guests; a
Mapal capture mapped as test/lib/scenario.sh's attach_mapal: unit 1000 +
store, 15-minute slots, time zone UTC), each in its own transaction, then
waits up to --wait seconds until the mock has received every one of them, and
prints the latencies.

The sales are made so that each one maps to exactly one Mapal slot and no
other sale is in it: sale i (from 0) of a run is sold at DAY 00:00 UTC +
i * 15 minutes, in store S, sales type TAKE, net 10.00 + i/100.  Its arrival
is the mock's log time ("ts", taken when the request has been read, before
the mock's configured latency) of the first Mapal real-time-sales request,
answered 2xx, whose body carries that unit's slot with numChecks >= 1 and
netSales equal to the sale's: a total that includes it.

Commit time: clock_timestamp() at the sale's INSERT (RETURNING), in the
sale's own one-statement transaction, so just before its COMMIT: the
latency includes the commit itself (never less than the true figure, and
free of the client's scheduling after the commit).

A sale that has not arrived by the deadline counts as infinitely late.
Percentiles are nearest-rank.  --result FILE gets one line:
  count arrived p50_ms p99_ms max_ms probe
(p50/p99/max "inf" when a sale is missing at that rank; probe: the output of
--probe SQL, run in the same session right after the last sale's commit, "-"
without it).  Environment: SA_DB (default sa_worker), PG_BINDIR or psql on
PATH, MOCK_URL and MOCK_CA.  Python 3 standard library only.
"""
import argparse
import datetime as dt
import json
import math
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal

SLOT_MINUTES = 15
SALES_TYPE = "TAKE"
MAPAL_PATH = re.compile(r"^/mapal-sales/api/v1/business-unit/(-?\d+)/real-time-sales$")

_ctx = None


def mock_get(path, timeout=60):
    global _ctx
    if _ctx is None:
        _ctx = ssl.create_default_context(cafile=os.environ["MOCK_CA"])
    with urllib.request.urlopen(os.environ["MOCK_URL"].rstrip("/") + path, context=_ctx, timeout=timeout) as r:
        return json.loads(r.read(), parse_float=Decimal)


def mock_last_seq():
    return mock_get("/_mock/log?since=%d" % (1 << 62))["last_seq"]


def psql_bin():
    b = os.environ.get("PG_BINDIR")
    return os.path.join(b, "psql") if b and os.path.exists(os.path.join(b, "psql")) else "psql"


class Session:
    """One psql session fed statement by statement (autocommit: each statement is
    its own transaction); a statement's output is read back before the next one."""

    def __init__(self, db):
        self.p = subprocess.Popen([psql_bin(), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def one(self, sql):
        """Run one statement returning exactly one row; -> that row as text."""
        self.p.stdin.write(sql.rstrip().rstrip(";") + ";\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("psql ended (see its error above) running: %s" % sql[:300])
        return line.rstrip("\n")

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        self.p.wait(30)


def sale(day, i):
    """-> (sold_at as a UTC datetime, net as Decimal) of sale i of a run."""
    t = dt.datetime.combine(day, dt.time(0, 0)) + dt.timedelta(minutes=SLOT_MINUTES * i)
    return t, Decimal("10.00") + Decimal(i) / 100


def trickle(db, table, store, day, seconds, interval_ms, probe=None):
    """Commit the sales, paced; -> ([(i, slot key, net, t_commit)], probe output or None)."""
    n = max(1, int(round(seconds * 1000.0 / interval_ms)))
    s = Session(db)
    out = []
    t0 = time.monotonic()
    try:
        for i in range(n):
            due = t0 + i * interval_ms / 1000.0
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            sold_at, net = sale(day, i)
            row = s.one("INSERT INTO %s (store, sold_at, kind, channel, net, tax, guests) "
                        "VALUES (%d, timestamptz '%s+00', 'SALE', '%s', %s, 0.10, 1) "
                        "RETURNING extract(epoch FROM clock_timestamp())"
                        % (table, store, sold_at.isoformat(sep=" "), SALES_TYPE, net))
            key = (1000 + store, sold_at.strftime("%Y-%m-%dT%H:%M:%S"), SALES_TYPE)
            out.append((i, key, net, float(row)))
        probed = s.one(probe) if probe else None
    finally:
        s.close()
    return out, probed


def arrivals(sales, since, wait_s):
    """Poll the mock's log until every sale has arrived or wait_s has passed.
    -> {slot key: arrival time (epoch seconds)}"""
    want = {key: net for _, key, net, _ in sales}
    got = {}
    deadline = time.monotonic() + wait_s
    while True:
        d = mock_get("/_mock/log?since=%d" % since)
        nxt = None
        for e in d["requests"]:
            if e["status"] is None:
                # still being answered: read it again next time
                if not e["dropped"] and nxt is None:
                    nxt = e["seq"] - 1
                continue
            m = MAPAL_PATH.match(e["path"])
            if not m or e["method"] not in ("POST", "PUT") or not 200 <= e["status"] < 300:
                continue
            unit = int(m.group(1))
            try:
                body = json.loads(e["body"], parse_float=Decimal)
                slots = body["realTimeSales"]
            except (ValueError, KeyError, TypeError):
                continue
            for sl in slots:
                try:
                    key = (unit, sl["timeSlotStart"], sl["salesTypeId"])
                except (KeyError, TypeError):
                    continue
                if key in want and key not in got and sl.get("numChecks", 0) >= 1 \
                        and Decimal(str(sl.get("netSales"))) == want[key]:
                    got[key] = float(e["ts"])
        since = nxt if nxt is not None else d["last_seq"]
        if len(got) == len(want) or time.monotonic() >= deadline:
            return got
        time.sleep(0.25)


def pct(values, p):
    s = sorted(values)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def fmt(ms):
    return "inf" if ms == math.inf else "%.1f" % ms


def measure(db, table, store, day, seconds, interval_ms, wait_s, probe=None):
    """-> dict(count, arrived, lat_ms (list, inf for a missing sale), p50, p99, max, probe)"""
    since = mock_last_seq()
    sales, probed = trickle(db, table, store, day, seconds, interval_ms, probe)
    got = arrivals(sales, since, wait_s)
    lat = [(got[key] - t) * 1000.0 if key in got else math.inf for _, key, _, t in sales]
    return dict(count=len(sales), arrived=len(got), lat_ms=lat, p50=pct(lat, 50), p99=pct(lat, 99),
                max=max(lat), probe=probed)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sp = ap.add_subparsers(dest="cmd", required=True)
    m = sp.add_parser("measure", help="commit sales one at a time, print commit-to-arrival latencies")
    m.add_argument("--table", required=True)
    m.add_argument("--store", type=int, required=True)
    m.add_argument("--day", required=True, type=dt.date.fromisoformat)
    m.add_argument("--seconds", type=float, default=16)
    m.add_argument("--interval-ms", type=float, default=250)
    m.add_argument("--wait", type=float, default=120, help="longest wait for the last arrival after the last commit")
    m.add_argument("--probe", help="SQL returning one row, run right after the last commit")
    m.add_argument("--result", help="write 'count arrived p50_ms p99_ms max_ms probe' here")
    m.add_argument("--label", default="sales")
    a = ap.parse_args()
    r = measure(os.environ.get("SA_DB", "sa_worker"), a.table, a.store, a.day, a.seconds, a.interval_ms, a.wait,
                a.probe)
    print("%s: %d sales committed one at a time every %.0f ms, %d reached Mapal within %.0f s of the last commit"
          % (a.label, r["count"], a.interval_ms, r["arrived"], a.wait))
    print("%s: commit to Mapal arrival, ms, in commit order: %s" % (
        a.label, " ".join("%.0f" % x if x != math.inf else "never" for x in r["lat_ms"])))
    print("%s: p50 %s ms, p99 %s ms, max %s ms" % (a.label, fmt(r["p50"]), fmt(r["p99"]), fmt(r["max"])))
    if a.result:
        with open(a.result, "w") as f:
            f.write("%d %d %s %s %s %s\n" % (r["count"], r["arrived"], fmt(r["p50"]), fmt(r["p99"]), fmt(r["max"]),
                                              (r["probe"] or "-").replace(" ", "_") or "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
