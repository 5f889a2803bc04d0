#!/usr/bin/env python3
"""test/lib/metrics_check.py: scrape a postgres_exporter running
contrib/prometheus/sales_api_queries.yaml and check its sales_api series
against the database, for test/scenarios/89_metrics_exporter.sh.

  metrics_check.py --url URL --db DB [--db DB ...] [--expect SERIES=VALUE ...]

The databases are read (psql as the environment's superuser) just before and
just after the scrape; the servers should be paused so that the outbox does
not move, but the worker's cycle counter and the ages still do, so:

  - every series the query file defines exists for every lane (a capture's
    server_name and run_as) and database, with exactly the labels it defines
    plus the exporter's own `server`, and there is no other sales_api series;
  - items per lane and state, and items by last HTTP status, equal what the
    tables say, and summed over run_as equal sales_api.outbox_status;
  - the oldest waiting age of a lane lies between its age read before and
    after the scrape, and its maximum per server between outbox_status's
    oldest_pending_age of the waiting states before and after;
  - paused and last success equal outbox_status's;
  - the worker's figures lie between worker_stats() read before and after
    (equal for what did not move);
  - the rate-limit budget of a Connecteam lane equals
    sales_api.connecteam_rate_limit(server) called as the lane's run_as, and
    only lanes with a known budget have one;
  - the lane series from sales_api.lane_status (waiting items, circuit, why
    it waits, counters) equal the view read before and after, and the view's
    waiting items equal the tables';
  - the database's `served` equals sales_api.worker_served(), which agrees
    with worker_stats().note;
  - each --expect 'name{label="v",...}=VALUE' holds (labels not named are not
    compared; VALUE is a number).

Prints one line per check group, "ok: ..." or "FAIL: ..." lines, and exits 1
on any failure.
"""

import argparse
import math
import os
import re
import subprocess
import sys
import urllib.request

STATES = ["staged", "pending", "in_flight", "failed", "sent", "dead", "unknown", "superseded"]
WAITING = ["staged", "pending", "in_flight", "failed"]
WAITING_ORDER = ["staged", "pending", "failed", "in_flight"]
LANE = ["datname", "server_name", "vendor", "run_as"]
EXPORTER_LABELS = {"server"}

# metric -> its labels (without the exporter's `server`)
SERIES = {"sales_api_lane_items": LANE + ["state"]}
for m in ["oldest_waiting_seconds", "paused", "last_success_timestamp_seconds"]:
    SERIES["sales_api_lane_queue_" + m] = LANE
SERIES["sales_api_lane_errors_items"] = LANE + ["state", "http_status"]
RATELIMIT = ["minute_limit", "minute_remaining", "minute_reset_timestamp_seconds", "day_limit",
             "day_remaining", "day_reset_timestamp_seconds", "observed_timestamp_seconds"]
for m in RATELIMIT:
    SERIES["sales_api_lane_ratelimit_" + m] = LANE
# from sales_api.lane_status: (metric, its column, is a timestamp)
LANE_STATUS = [("circuit_open_until_timestamp_seconds", "circuit_until", True),
               ("consecutive_failures", "consecutive_failures", False),
               ("requests_total", "requests", False), ("requests_ok_total", "requests_ok", False),
               ("transport_errors_total", "transport_errors", False), ("timeouts_total", "timeouts", False),
               ("server_errors_total", "server_errors", False), ("client_errors_total", "client_errors", False),
               ("rate_limited_total", "rate_limited", False), ("last_http_status", "last_http_status", False),
               ("last_error_timestamp_seconds", "last_error_at", True),
               ("last_success_timestamp_seconds", "last_success_at", True)]
for m, _, _ in LANE_STATUS:
    SERIES["sales_api_lane_status_" + m] = LANE
SERIES["sales_api_lane_waiting_items"] = LANE + ["state"]
SERIES["sales_api_lane_circuit_state"] = LANE + ["circuit"]
SERIES["sales_api_lane_waiting_for_state"] = LANE + ["reason"]
CIRCUITS = ["closed", "half_open", "open"]
REASONS = ["idle", "not_served", "paused", "circuit_open", "circuit_half_open", "rate_limit", "sending",
           "backoff", "queued"]
WORKER_COUNTERS = ["cycles", "requests", "rate_limited", "items_sent", "items_failed", "items_dead",
                   "retries", "ambiguous", "rate_waits"]
WORKER = (["up", "served", "started_timestamp_seconds", "last_cycle_timestamp_seconds",
           "last_success_timestamp_seconds", "latency_p50_seconds", "latency_p99_seconds"]
          + [c + "_total" for c in WORKER_COUNTERS])
for m in WORKER:
    SERIES["sales_api_worker_" + m] = ["datname"]

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def psql(db, sql):
    cmd = [os.path.join(os.environ["PG_BINDIR"], "psql") if os.environ.get("PG_BINDIR") else "psql",
           "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("psql -d %s failed: %s\n%s" % (db, res.stderr.strip(), sql))
    return [line.split("\t") for line in res.stdout.splitlines() if line != ""]


def num(s):
    return float("nan") if s in ("", None) else float(s)


# ---------------------------------------------------------------------------
# the exposition format (text 0.0.4)
# ---------------------------------------------------------------------------
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def unescape(v):
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "\\": "\\", '"': '"'}.get(m.group(1), m.group(0)), v)


def parse_exposition(text):
    """{name: {frozenset(labels.items()): value}}, and {name: type}"""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) == 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue
        m = SAMPLE.match(line)
        if not m:
            sys.exit("unparsable exposition line: %r" % line)
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        lab, pos = {}, 0
        while pos < len(labels):
            lm = LABEL.match(labels, pos)
            if not lm:
                sys.exit("unparsable labels: %r" % line)
            lab[lm.group(1)] = unescape(lm.group(2))
            pos = lm.end()
        key = frozenset(lab.items())
        if key in samples.setdefault(name, {}):
            fail("%s%s exported twice" % (name, dict(lab)))
        samples[name][key] = float(value)
    return samples, types


def scrape(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode("utf-8")


# ---------------------------------------------------------------------------
# what the database says
# ---------------------------------------------------------------------------
def snapshot(db):
    s = {"db": db}
    s["now"] = float(psql(db, "SELECT extract(epoch FROM now())")[0][0])
    # outbox_status, as an operator reads it
    s["status"] = {}
    for server, state, items, age, last, paused in psql(db, """
            SELECT server_name, state, items, extract(epoch FROM oldest_pending_age),
                   extract(epoch FROM last_success_at), paused::int
              FROM sales_api.outbox_status"""):
        s["status"][(server, state)] = (int(items), num(age), num(last), int(paused))
    # the lanes and their work, per capture, from the tables
    s["lanes"] = {}
    for cid, server, vendor, run_as in psql(db, """
            SELECT id, server_name, vendor, pg_get_userbyid(run_as) FROM sales_api.capture"""):
        s["lanes"].setdefault((db, server, vendor, run_as), []).append(int(cid))
    per_capture = {}
    for cid, state, n in psql(db, "SELECT capture_id, state, count(*) FROM sales_api.outbox GROUP BY 1, 2"):
        per_capture[(int(cid), state)] = int(n)
    # a leased staged row's sales are in flight (0.8: the worker posts them)
    for cid, st, n in psql(db, """
            SELECT capture_id, CASE WHEN lease_until IS NULL THEN 'staged' ELSE 'in_flight' END,
                   sum(coalesce(cardinality(sale_keys), 1)) FROM sales_api.outbox_stage GROUP BY 1, 2"""):
        per_capture[(int(cid), st)] = per_capture.get((int(cid), st), 0) + int(n)
    s["items"] = {}
    for lane, ids in s["lanes"].items():
        for st in STATES:
            s["items"][lane + (st,)] = sum(per_capture.get((i, st), 0) for i in ids)
    oldest = {}
    for cid, t in psql(db, """
            SELECT capture_id, extract(epoch FROM min(enqueued_at)) FROM sales_api.outbox
             WHERE state IN ('pending', 'failed', 'in_flight') GROUP BY 1
            UNION ALL
            SELECT capture_id, extract(epoch FROM min(staged_at)) FROM sales_api.outbox_stage GROUP BY 1"""):
        oldest[int(cid)] = min(oldest.get(int(cid), math.inf), float(t))
    s["oldest_age"] = {}
    for lane, ids in s["lanes"].items():
        t = min([oldest[i] for i in ids if i in oldest] or [math.inf])
        s["oldest_age"][lane] = 0.0 if t == math.inf else s["now"] - t
    last = {}
    for cid, t in psql(db, """
            SELECT capture_id, extract(epoch FROM max(sent_at)) FROM sales_api.outbox
             WHERE state = 'sent' GROUP BY 1"""):
        last[int(cid)] = float(t)
    s["last_success"] = {lane: max([last[i] for i in ids if i in last] or [0.0])
                         for lane, ids in s["lanes"].items()}
    # the tables' staged Mapal slots, per capture (lane_status counts them as staged)
    mapal_staged = {int(cid): int(n) for cid, n in psql(db, """
            SELECT capture_id, sum(cardinality(slot_starts)) FROM sales_api.mapal_stage GROUP BY 1""")}
    s["mapal_staged"] = {lane: sum(mapal_staged.get(i, 0) for i in ids) for lane, ids in s["lanes"].items()}
    # lane_status, as an operator reads it
    cols = [c for _, c, _ in LANE_STATUS]
    s["lane_status"] = {}
    for row in psql(db, """
            SELECT server_name, vendor, pg_get_userbyid(run_as), staged, pending, failed, in_flight,
                   circuit, waiting_for, """ + ", ".join(
                "extract(epoch FROM %s)" % c if ts else c for _, c, ts in LANE_STATUS) + """
              FROM sales_api.lane_status"""):
        lane = (db,) + tuple(row[:3])
        s["lane_status"][lane] = dict(
            waiting=dict(zip(WAITING_ORDER, [int(v) for v in row[3:7]])), circuit=row[7], waiting_for=row[8],
            values=dict(zip(cols, [num(v) if v != "" else 0.0 for v in row[9:]])))
    s["errors"] = {}
    for cid, state, status, n in psql(db, """
            SELECT capture_id, state, coalesce(http_status::text, 'none'), count(*) FROM sales_api.outbox
             WHERE state IN ('failed', 'dead', 'unknown') GROUP BY 1, 2, 3"""):
        lane = [l for l, ids in s["lanes"].items() if int(cid) in ids][0]
        s["errors"][lane + (state, status)] = s["errors"].get(lane + (state, status), 0) + int(n)
    # the worker
    cols = ["running", "served", "started", "last_cycle", "last_success", "p50", "p99"] + WORKER_COUNTERS
    row = psql(db, """
        SELECT running::int, sales_api.worker_served()::int, extract(epoch FROM started_at),
               extract(epoch FROM last_cycle_at), extract(epoch FROM last_success_at),
               latency_p50_ms / 1000.0, latency_p99_ms / 1000.0, """ +
               ", ".join(WORKER_COUNTERS) + " FROM sales_api.worker_stats()")[0]
    s["worker"] = dict(zip(cols, [num(v) for v in row]))
    s["served_note"] = psql(db, "SELECT (note LIKE 'served by %')::int FROM sales_api.worker_stats()")[0][0]
    # each Connecteam lane's budget, as its run_as sees it
    s["budget"] = {}
    for lane in s["lanes"]:
        if lane[2] != "connecteam":
            continue
        rows = psql(db, """
            SET ROLE %s;
            SELECT minute_limit, minute_remaining, extract(epoch FROM minute_reset), day_limit,
                   day_remaining, extract(epoch FROM day_reset), extract(epoch FROM observed_at)
              FROM sales_api.connecteam_rate_limit(%s)""" % (
            quote_ident(lane[3]), quote_literal(lane[1])))
        if rows and rows[0][6] != "":
            s["budget"][lane] = [num(v) for v in rows[0]]
    return s


def quote_ident(s):
    return '"' + s.replace('"', '""') + '"'


def quote_literal(s):
    return "'" + s.replace("'", "''") + "'"


def effective(limit, remaining, reset, now):
    """what the query file exports as remaining: the whole limit once the window reset"""
    return limit if not math.isnan(reset) and now >= reset else remaining


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


def between(v, lo, hi, slack=0.0):
    return lo - slack <= v <= hi + slack


# ---------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--db", action="append", required=True)
    ap.add_argument("--expect", action="append", default=[])
    args = ap.parse_args()

    before = {db: snapshot(db) for db in args.db}
    text = scrape(args.url)
    after = {db: snapshot(db) for db in args.db}
    samples, types = parse_exposition(text)

    def get(name, **labels):
        """the value of the one series of name with these labels (server aside)"""
        for key, v in samples.get(name, {}).items():
            if {k: v2 for k, v2 in key if k not in EXPORTER_LABELS} == labels:
                return v
        return None

    # --- the exporter itself
    nfail = len(failures)
    for name, want in [("pg_up", 1), ("pg_exporter_last_scrape_error", 0)]:
        got = list(samples.get(name, {}).values())
        if got != [want]:
            fail("%s is %s, expected %s" % (name, got, want))
    load = list(samples.get("pg_exporter_user_queries_load_error", {}).values())
    if load != [0]:
        fail("pg_exporter_user_queries_load_error is %s: the query file did not load" % load)
    if len(failures) == nfail:
        print("ok: the exporter is up, loaded the query file and scraped without error")

    # --- series and labels
    nfail = len(failures)
    expected_keys = {name: set() for name in SERIES}
    for db in args.db:
        b = before[db]
        for lane in b["lanes"]:
            lab = dict(zip(LANE, lane))
            for st in STATES:
                expected_keys["sales_api_lane_items"].add(frozenset(dict(lab, state=st).items()))
            for m in ["oldest_waiting_seconds", "paused", "last_success_timestamp_seconds"]:
                expected_keys["sales_api_lane_queue_" + m].add(frozenset(lab.items()))
            if lane in b["budget"]:
                for m in RATELIMIT:
                    expected_keys["sales_api_lane_ratelimit_" + m].add(frozenset(lab.items()))
            for m, _, _ in LANE_STATUS:
                expected_keys["sales_api_lane_status_" + m].add(frozenset(lab.items()))
            for st in WAITING_ORDER:
                expected_keys["sales_api_lane_waiting_items"].add(frozenset(dict(lab, state=st).items()))
            for c in CIRCUITS:
                expected_keys["sales_api_lane_circuit_state"].add(frozenset(dict(lab, circuit=c).items()))
            for r in REASONS:
                expected_keys["sales_api_lane_waiting_for_state"].add(frozenset(dict(lab, reason=r).items()))
        for k in b["errors"]:
            lab = dict(zip(LANE + ["state", "http_status"], k))
            expected_keys["sales_api_lane_errors_items"].add(frozenset(lab.items()))
        for m in WORKER:
            expected_keys["sales_api_worker_" + m].add(frozenset({"datname": db}.items()))
    nseries = 0
    for name, want in expected_keys.items():
        got = samples.get(name, {})
        for key in got:
            names = {k for k, _ in key}
            if names != set(SERIES[name]) | EXPORTER_LABELS:
                fail("%s has labels %s, expected %s" % (name, sorted(names), sorted(set(SERIES[name]) | EXPORTER_LABELS)))
        got_keys = {frozenset((k, v) for k, v in key if k not in EXPORTER_LABELS) for key in got}
        for k in want - got_keys:
            fail("missing series %s%s" % (name, dict(k)))
        for k in got_keys - want:
            fail("unexpected series %s%s" % (name, dict(k)))
        nseries += len(got)
        want_type = "counter" if name.endswith("_total") else "gauge"
        if want and types.get(name) != want_type:
            fail("%s is of type %s, expected %s" % (name, types.get(name), want_type))
    for name in samples:
        if name.startswith("sales_api") and name not in SERIES:
            fail("series %s is not one the test knows" % name)
    if len(failures) == nfail:
        print("ok: %d sales_api series in %d metrics, each with its labels" % (
        nseries, sum(1 for n in SERIES if samples.get(n))))

    # --- values
    nfail = len(failures)
    for db in args.db:
        b, a = before[db], after[db]
        if b["items"] != a["items"] or b["errors"] != a["errors"]:
            fail("%s: the outbox moved during the scrape (are the servers paused?)" % db)
        # items per lane and state, and per server against outbox_status
        per_server = {}
        for k, n in b["items"].items():
            lane, st = k[:4], k[4]
            v = get("sales_api_lane_items", **dict(zip(LANE, lane)), state=st)
            if v is not None and v != n:
                fail("sales_api_lane_items%s = %s, the tables say %d" % (dict(zip(LANE, lane), state=st), v, n))
            per_server[(lane[1], st)] = per_server.get((lane[1], st), 0) + (v or 0)
        for (server, st), v in per_server.items():
            want = b["status"].get((server, st), (0,))[0]
            if v != want:
                fail("%s: sales_api_lane_items summed over run_as for %s/%s = %s, outbox_status says %d" % (
                    db, server, st, v, want))
        for (server, st), row in b["status"].items():
            if (server, st) not in per_server:
                fail("%s: outbox_status has %s/%s (%d items), the exporter has no lane for it" % (db, server, st, row[0]))
        # items by last HTTP status
        by_state = {}
        for k, n in b["errors"].items():
            lab = dict(zip(LANE + ["state", "http_status"], k))
            v = get("sales_api_lane_errors_items", **lab)
            if v is not None and v != n:
                fail("sales_api_lane_errors_items%s = %s, the tables say %d" % (lab, v, n))
            by_state[(k[1], k[4])] = by_state.get((k[1], k[4]), 0) + n
        for (server, st), row in b["status"].items():
            if st in ("failed", "dead", "unknown") and by_state.get((server, st), 0) != row[0]:
                fail("%s: items by HTTP status for %s/%s sum to %s, outbox_status says %d" % (
                    db, server, st, by_state.get((server, st), 0), row[0]))
        # the queue: oldest waiting, paused, last success
        for lane in b["lanes"]:
            lab = dict(zip(LANE, lane))
            age = get("sales_api_lane_queue_oldest_waiting_seconds", **lab)
            if age is not None and not between(age, b["oldest_age"][lane], a["oldest_age"][lane], 0.001):
                fail("sales_api_lane_queue_oldest_waiting_seconds%s = %s, the tables say between %s and %s" % (
                    lab, age, b["oldest_age"][lane], a["oldest_age"][lane]))
            v = get("sales_api_lane_queue_last_success_timestamp_seconds", **lab)
            if v is not None and v != b["last_success"][lane]:
                fail("sales_api_lane_queue_last_success_timestamp_seconds%s = %r, the tables say %r" % (
                    lab, v, b["last_success"][lane]))
        for server in {l[1] for l in b["lanes"]}:
            labs = [dict(zip(LANE, l)) for l in b["lanes"] if l[1] == server]
            rows = {st: r for (srv, st), r in b["status"].items() if srv == server}
            arows = {st: r for (srv, st), r in a["status"].items() if srv == server}
            lo = max([r[1] for st, r in rows.items() if st in WAITING and not math.isnan(r[1])] or [0.0])
            hi = max([r[1] for st, r in arows.items() if st in WAITING and not math.isnan(r[1])] or [0.0])
            v = max(get("sales_api_lane_queue_oldest_waiting_seconds", **l) or 0.0 for l in labs)
            if not between(v, lo, hi, 0.001):
                fail("%s: oldest waiting of %s over its lanes = %s, outbox_status says between %s and %s" % (
                    db, server, v, lo, hi))
            want = rows["sent"][2] if "sent" in rows else 0.0
            v = max(get("sales_api_lane_queue_last_success_timestamp_seconds", **l) or 0.0 for l in labs)
            if v != want:
                fail("%s: last success of %s over its lanes = %r, outbox_status says %r" % (db, server, v, want))
            want = max([r[3] for r in rows.values()] or [None])
            for l in labs:
                v = get("sales_api_lane_queue_paused", **l)
                if want is not None and v != want:
                    fail("sales_api_lane_queue_paused%s = %s, outbox_status says %s" % (l, v, want))
        # lane_status: one row per lane, its waiting work that of the tables
        if set(b["lane_status"]) != set(b["lanes"]):
            fail("%s: lane_status has the lanes %s, the captures %s" % (
                db, sorted(b["lane_status"]), sorted(b["lanes"])))
        for lane, ls in b["lane_status"].items():
            lab = dict(zip(LANE, lane))
            als = a["lane_status"].get(lane)
            if lane in b["lanes"]:
                tables = {st: b["items"][lane + (st,)] for st in ("pending", "failed", "in_flight")}
                tables["staged"] = b["items"][lane + ("staged",)] + b["mapal_staged"][lane]
                if ls["waiting"] != tables:
                    fail("lane_status%s waits with %s, the tables say %s" % (lab, ls["waiting"], tables))
            if als is None or als["waiting"] != ls["waiting"] or als["circuit"] != ls["circuit"] \
                    or als["waiting_for"] != ls["waiting_for"]:
                fail("lane_status%s moved during the scrape: %s then %s" % (lab, ls, als))
                continue
            for st, n in ls["waiting"].items():
                v = get("sales_api_lane_waiting_items", **lab, state=st)
                if v is not None and v != n:
                    fail("sales_api_lane_waiting_items%s = %s, lane_status says %d" % (dict(lab, state=st), v, n))
            for c in CIRCUITS:
                v = get("sales_api_lane_circuit_state", **lab, circuit=c)
                if v is not None and v != (1 if ls["circuit"] == c else 0):
                    fail("sales_api_lane_circuit_state%s = %s, lane_status says %s" % (dict(lab, circuit=c), v, ls["circuit"]))
            for r in REASONS:
                v = get("sales_api_lane_waiting_for_state", **lab, reason=r)
                if v is not None and v != (1 if ls["waiting_for"] == r else 0):
                    fail("sales_api_lane_waiting_for_state%s = %s, lane_status says %s" % (
                        dict(lab, reason=r), v, ls["waiting_for"]))
            for m, c, _ in LANE_STATUS:
                v = get("sales_api_lane_status_" + m, **lab)
                if v is not None and not between(v, min(ls["values"][c], als["values"][c]),
                                                 max(ls["values"][c], als["values"][c])):
                    fail("sales_api_lane_status_%s%s = %s, lane_status says %s then %s" % (
                        m, lab, v, ls["values"][c], als["values"][c]))
        # the worker
        wb, wa = b["worker"], a["worker"]
        if str(int(wb["served"])) != b["served_note"]:
            fail("%s: worker_served() says %s, worker_stats().note %s" % (db, wb["served"], b["served_note"]))
        lab = {"datname": db}
        checks = [("up", "running"), ("served", "served")]
        for m, c in checks:
            if not same(get("sales_api_worker_" + m, **lab), wb[c]) or wb[c] != wa[c]:
                fail("sales_api_worker_%s{datname=%s} = %s, worker_stats() says %s then %s" % (
                    m, db, get("sales_api_worker_" + m, **lab), wb[c], wa[c]))
        for m, c in [("started_timestamp_seconds", "started"), ("last_cycle_timestamp_seconds", "last_cycle"),
                     ("last_success_timestamp_seconds", "last_success")] + \
                    [(c + "_total", c) for c in WORKER_COUNTERS]:
            v = get("sales_api_worker_" + m, **lab)
            lo = 0.0 if math.isnan(wb[c]) else wb[c]
            hi = 0.0 if math.isnan(wa[c]) else wa[c]
            if v is None or not between(v, lo, hi):
                fail("sales_api_worker_%s{datname=%s} = %s, worker_stats() says %s then %s" % (m, db, v, lo, hi))
        for m, c in [("latency_p50_seconds", "p50"), ("latency_p99_seconds", "p99")]:
            v = get("sales_api_worker_" + m, **lab)
            if same(wb[c], wa[c]) and (v is None or not same(v, wb[c])):
                fail("sales_api_worker_%s{datname=%s} = %r, worker_stats() says %r" % (m, db, v, wb[c]))
        if wb["requests"] != wa["requests"]:
            fail("%s: the worker sent requests during the scrape (are the servers paused?)" % db)
        # the budgets
        for lane, bud in b["budget"].items():
            lab = dict(zip(LANE, lane))
            abud = a["budget"].get(lane)
            vals = {m: get("sales_api_lane_ratelimit_" + m, **lab) for m in RATELIMIT}
            exact = {"minute_limit": 0, "minute_reset_timestamp_seconds": 2, "day_limit": 3,
                     "day_reset_timestamp_seconds": 5, "observed_timestamp_seconds": 6}
            for m, i in exact.items():
                if vals[m] is not None and not same(vals[m], bud[i]):
                    fail("sales_api_lane_ratelimit_%s%s = %r, connecteam_rate_limit() as %s says %r" % (
                        m, lab, vals[m], lane[3], bud[i]))
            for m, (li, ri, si) in {"minute_remaining": (0, 1, 2), "day_remaining": (3, 4, 5)}.items():
                ok = {effective(bud[li], bud[ri], bud[si], b["now"]),
                      effective(abud[li], abud[ri], abud[si], a["now"]) if abud else None}
                if vals[m] is not None and vals[m] not in ok:
                    fail("sales_api_lane_ratelimit_%s%s = %r, connecteam_rate_limit() as %s says %s" % (
                        m, lab, vals[m], lane[3], sorted(x for x in ok if x is not None)))
    if len(failures) == nfail:
        print("ok: values checked against outbox_status, lane_status, the tables, worker_stats() and connecteam_rate_limit()"
              " in %s" % ", ".join(args.db))

    # --- the scenario's own expectations
    nfail = len(failures)
    for e in args.expect:
        m = re.match(r'^([a-z_]+)\{(.*)\}=(\S+)$', e)
        if not m:
            sys.exit("bad --expect %r" % e)
        lab = dict(re.findall(r'([a-z_]+)="([^"]*)"', m.group(2)))
        want = float(m.group(3))
        hits = [v for key, v in samples.get(m.group(1), {}).items()
                if all(dict(key).get(k) == x for k, x in lab.items())]
        if len(hits) != 1:
            fail("%s: %d series match, expected one" % (e, len(hits)))
        elif not same(hits[0], want):
            fail("%s: the exporter says %r" % (e, hits[0]))
    if args.expect and len(failures) == nfail:
        print("ok: %d expected values of the scenario" % len(args.expect))

    if failures:
        print("%d failures" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
