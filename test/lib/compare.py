#!/usr/bin/env python3
"""Compare what the POS table holds with what the mock vendors received.

Usage: compare.py SCENARIO [--no-connecteam] [--no-mapal] [--mapal-also TABLE]...
                           [--slot-minutes N] [--timezone ZONE]
Reads the local sales with psql (database $SA_DB, default sa_worker; the
Connecteam sales from the tables $SA_COMPARE_CT_TABLES, default pos_sales,
comma-separated, the Mapal sales from pos_sales and each --mapal-also table) and the
mock's state from $MOCK_URL/_mock/state (TLS verified with $MOCK_CA), prints
one row:
  scenario  committed  delivered  duplicates  lost  extra  dead  unknown  mapal_slots  mapal_mismatch
and exits non-zero if any sale is lost or duplicated, if Connecteam holds a
transaction no local sale explains, or if any Mapal slot total differs from
the local total.  Connecteam identity of a sale: (location, createdAt,
finalSaleAmount, taxAmount, saleType), createdAt being the Unix second the
sale's time falls in; the scenarios' data makes it unique.  --mapal-also
TABLE: one more table of pos_sales' shape, captured for Mapal only (a
Mapal-only baseline beside pos_sales): its sales count in the Mapal slots.
--slot-minutes and --timezone: the Mapal server's options (default 15, UTC).
"""
import collections
import csv
import io
import json
import os
import ssl
import subprocess
import sys
import urllib.request
from decimal import Decimal

db = os.environ.get("SA_DB", "sa_worker")
scenario = sys.argv[1] if len(sys.argv) > 1 else "scenario"
do_ct = "--no-connecteam" not in sys.argv
do_mapal = "--no-mapal" not in sys.argv
ct_tables = [t for t in os.environ.get("SA_COMPARE_CT_TABLES", "pos_sales").split(",") if t]
mapal_tables = ["pos_sales"] + [sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--mapal-also"]


def option(name, default):
    return next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == name), default)


slot_minutes = int(option("--slot-minutes", "15"))
timezone = option("--timezone", "UTC").replace("'", "''")


def psql_csv(sql):
    out = subprocess.run(["psql", "-X", "-q", "-d", db, "-c", f"COPY ({sql}) TO STDOUT WITH CSV"],
                         check=True, capture_output=True, text=True).stdout
    return list(csv.reader(io.StringIO(out)))


ctx = ssl.create_default_context(cafile=os.environ["MOCK_CA"])
with urllib.request.urlopen(os.environ["MOCK_URL"] + "/_mock/state", context=ctx) as r:
    state = json.load(r, parse_float=Decimal)

committed = delivered = dups = lost = extra = 0
if do_ct:
    local = collections.Counter(
        (int(r[0]), int(r[1]), Decimal(r[2]), Decimal(r[3]), r[4])
        for r in psql_csv(" UNION ALL ".join(
            "SELECT store, floor(extract(epoch FROM sold_at))::bigint, net, tax, kind FROM %s" % t for t in ct_tables)))
    remote = collections.Counter(
        (int(t["locationId"]), int(t["createdAt"]), Decimal(str(t["finalSaleAmount"])),
         Decimal(str(t.get("taxAmount") or 0)), t["saleType"])
        for t in state.get("connecteam_transactions", []))
    committed = sum(local.values())
    for k, n in local.items():
        m = remote.get(k, 0)
        delivered += min(n, m)
        lost += max(0, n - m)
        dups += max(0, m - n)
    for k, m in remote.items():
        if k not in local:
            extra += m

dead = int(psql_csv("SELECT count(*) FROM sales_api.outbox WHERE state = 'dead'")[0][0])
unknown = int(psql_csv("SELECT count(*) FROM sales_api.outbox WHERE state = 'unknown'")[0][0])

slots = mismatch = 0
if do_mapal:
    local_slots = {}
    sales = " UNION ALL ".join("SELECT store, sold_at, channel, net, tax, guests FROM %s" % t for t in mapal_tables)
    for r in psql_csv("SELECT 1000 + store, to_char(date_bin('%d min', sold_at AT TIME ZONE '%s', '2000-01-01'), "
                      "'YYYY-MM-DD\"T\"HH24:MI:SS'), channel, sum(net), sum(net + tax), count(*), sum(guests) "
                      "FROM (%s) s GROUP BY 1, 2, 3" % (slot_minutes, timezone, sales)):
        local_slots[(int(r[0]), r[1], r[2])] = (Decimal(r[3]), Decimal(r[4]), int(r[5]), int(r[6]))
    remote_slots = {}
    for s in state.get("mapal_sales", []):
        remote_slots[(int(s["unitId"]), s["timeSlotStart"], s["salesTypeId"])] = (
            Decimal(str(s["netSales"])), Decimal(str(s["grossSales"])), int(s["numChecks"]), int(s["numGuests"]))
    slots = len(local_slots)
    for k, v in local_slots.items():
        if remote_slots.get(k) != v:
            mismatch += 1
    for k, v in remote_slots.items():
        if k not in local_slots and v != (0, 0, 0, 0):
            mismatch += 1

print(f"{scenario:<28} committed={committed:<7} delivered={delivered:<7} duplicates={dups:<4} "
      f"lost={lost:<4} extra={extra:<4} dead={dead:<4} unknown={unknown:<4} "
      f"mapal_slots={slots:<5} mapal_mismatch={mismatch}")
sys.exit(1 if (lost or dups or extra or mismatch) else 0)
