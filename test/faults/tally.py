#!/usr/bin/env python3
"""test/faults/tally.py: one row of the fault suite's table.

Usage: tally.py SCENARIO SECONDS [--header]

Compares the POS table (pos_sales in database $SA_DB, default sa_worker)
with what the mock vendors hold ($MOCK_URL/_mock/state, TLS verified with
$MOCK_CA) and prints:

  scenario      the scenario's name
  committed     sales in the POS table at the end (after updates and deletes)
  delivered     of those, how many Connecteam holds exactly once (same
                location, createdAt, amount, tax and sale type)
  dups          extra copies of a sale at Connecteam
  dead          outbox items dead-lettered (each must carry its reason)
  unknown       outbox items parked as 'unknown'
  lost          sales missing at Connecteam and not explained by a dead or
                unknown item
  extra         Connecteam transactions no local sale explains (an old
                version of an updated sale, a deleted sale)
  ct_days       (location, day) totals that differ between POS and Connecteam
  mapal_slots   Mapal slots (unit, local slot, sales type) compared
  mapal_bad     slots or (unit, day) totals that differ between POS and Mapal
  secs          how long the scenario took

Exit status 1 if anything is lost, duplicated or extra, if any total differs,
or if a dead item has no reason.
"""
import collections
import csv
import datetime
import io
import json
import os
import ssl
import subprocess
import sys
import urllib.request
from decimal import Decimal

DB = os.environ.get("SA_DB", "sa_worker")
COLS = ("scenario", "committed", "delivered", "dups", "dead", "unknown", "lost", "extra",
        "ct_days", "mapal_slots", "mapal_bad", "secs")
FMT = "{:<22} {:>9} {:>9} {:>5} {:>5} {:>7} {:>5} {:>6} {:>7} {:>11} {:>9} {:>6}"


def psql_rows(sql):
    out = subprocess.run(["psql", "-X", "-q", "-d", DB, "-c", f"COPY ({sql}) TO STDOUT WITH CSV"],
                         check=True, capture_output=True, text=True).stdout
    return list(csv.reader(io.StringIO(out)))


def header():
    return FMT.format(*COLS)


def explain(local, have, want):
    """For the scenario's log: a few lost and extra sales with their outbox history."""
    bytime = collections.defaultdict(list)
    for k in have:
        bytime[(k[0], k[1])].append(k)
    n = 0
    for sid, v in local.items():
        if have.get(v, 0) == 1:
            continue
        n += 1
        if n > 6:
            break
        print(f"  sale {sid} {v}: vendor holds {have.get(v, 0)} copies; at its location and second: "
              f"{bytime.get((v[0], v[1]))}", file=sys.stderr)
        for r in psql_rows("SELECT id, kind, state, attempts, coalesce(http_status::text, ''), coalesce(vendor_ref, ''),"
                           " coalesce(final_sale_amount::text, ''), left(coalesce(last_error, ''), 70)"
                           f" FROM sales_api.outbox WHERE sale_key = '{sid}' ORDER BY id"):
            print("      outbox " + " | ".join(r), file=sys.stderr)
        print(f"      connecteam_sent: {psql_rows(f'SELECT transaction_id FROM sales_api.connecteam_sent WHERE sale_key = {chr(39)}{sid}{chr(39)}')}",
              file=sys.stderr)
    for k in [k for k in have if k not in want][:4]:
        print(f"  extra at the vendor: {k}", file=sys.stderr)
        for r in psql_rows("SELECT id, kind, state, sale_key, attempts, coalesce(http_status::text, ''),"
                           " coalesce(vendor_ref, ''), coalesce(final_sale_amount::text, ''),"
                           " left(coalesce(last_error, ''), 70) FROM sales_api.outbox"
                           f" WHERE sale_key IN (SELECT sale_key FROM sales_api.outbox WHERE location_id = {k[0]}"
                           f" AND created_at = to_timestamp({k[1]})) ORDER BY id"):
            print("      outbox " + " | ".join(r), file=sys.stderr)


def main():
    if "--header" in sys.argv:
        print(header())
        return 0
    scenario, secs = sys.argv[1], sys.argv[2]
    ctx = ssl.create_default_context(cafile=os.environ["MOCK_CA"])
    with urllib.request.urlopen(os.environ["MOCK_URL"] + "/_mock/state", context=ctx, timeout=60) as r:
        state = json.load(r, parse_float=Decimal)

    # --- Connecteam: sale by sale ---------------------------------------------
    local = {}
    for sid, store, epoch, net, tax, kind in psql_rows(
            "SELECT id, store, floor(extract(epoch FROM sold_at))::bigint, net, tax, kind FROM pos_sales"):
        local[sid] = (int(store), int(epoch), Decimal(net), Decimal(tax), kind)
    want = collections.Counter(local.values())
    have = collections.Counter(
        (int(t["locationId"]), int(t["createdAt"]), Decimal(str(t["finalSaleAmount"])),
         Decimal(str(t.get("taxAmount") or 0)), t["saleType"])
        for t in state.get("connecteam_transactions", []))
    states = collections.defaultdict(set)
    for key, st in psql_rows("SELECT sale_key, state FROM sales_api.outbox o JOIN sales_api.capture c"
                             " ON c.id = o.capture_id WHERE c.vendor = 'connecteam' AND o.kind = 'ct_post'"):
        states[key].add(st)
    delivered = dups = lost = extra = 0
    for sid, k in local.items():
        n = have.get(k, 0)
        if n >= 1:
            delivered += 1
            dups += n - 1
        elif not ({"dead", "unknown"} & states.get(sid, set())):
            lost += 1
    for k, n in have.items():
        if k not in want:
            extra += n

    ct_local = collections.defaultdict(Decimal)
    ct_remote = collections.defaultdict(Decimal)
    for store, day, total in psql_rows("SELECT store, (sold_at AT TIME ZONE 'UTC')::date, sum(net)"
                                       " FROM pos_sales GROUP BY 1, 2"):
        ct_local[(int(store), day)] = Decimal(total)
    for t in state.get("connecteam_transactions", []):
        day = datetime.datetime.fromtimestamp(int(t["createdAt"]), datetime.timezone.utc).date().isoformat()
        ct_remote[(int(t["locationId"]), day)] += Decimal(str(t["finalSaleAmount"]))
    ct_days = sum(1 for k in set(ct_local) | set(ct_remote)
                  if ct_local.get(k, Decimal(0)) != ct_remote.get(k, Decimal(0)))

    # --- Mapal: slot totals and day totals ---------------------------------------
    local_slots = {}
    for unit, slot, st, net, gross, n, guests in psql_rows(
            "SELECT 1000 + store, to_char(date_bin('15 min', sold_at AT TIME ZONE 'UTC', '2000-01-01'),"
            " 'YYYY-MM-DD\"T\"HH24:MI:SS'), channel, sum(net), sum(net + tax), count(*), sum(guests)"
            " FROM pos_sales GROUP BY 1, 2, 3"):
        local_slots[(int(unit), slot, st)] = (Decimal(net), Decimal(gross), int(n), int(guests))
    remote_slots = {}
    for s in state.get("mapal_sales", []):
        remote_slots[(int(s["unitId"]), s["timeSlotStart"], s["salesTypeId"])] = (
            Decimal(str(s["netSales"])), Decimal(str(s["grossSales"])), int(s["numChecks"]), int(s["numGuests"]))
    zero = (Decimal(0), Decimal(0), 0, 0)
    mapal_bad = sum(1 for k in set(local_slots) | set(remote_slots)
                    if local_slots.get(k, zero) != remote_slots.get(k, zero))

    n = 0
    for k in sorted(set(local_slots) | set(remote_slots)):
        if local_slots.get(k, zero) != remote_slots.get(k, zero) and n < 4:
            n += 1
            print(f"  Mapal slot {k}: local {local_slots.get(k)} vendor {remote_slots.get(k)}", file=sys.stderr)
            for r in psql_rows("SELECT id, state, attempts, coalesce(http_status::text, ''), enqueued_at::text,"
                               " coalesce(sent_at::text, ''), left(coalesce(last_error, ''), 60) FROM sales_api.outbox"
                               f" WHERE kind = 'mapal_slot' AND unit_id = {k[0]} AND slot_start = '{k[1]}'"
                               f" AND sales_type_id = '{k[2]}' ORDER BY id"):
                print("      outbox " + " | ".join(r), file=sys.stderr)

    def day_totals(slots):
        d = collections.defaultdict(lambda: [Decimal(0), Decimal(0)])
        for (unit, slot, _), v in slots.items():
            d[(unit, slot[:10])][0] += v[0]
            d[(unit, slot[:10])][1] += v[1]
        return d
    ld, rd = day_totals(local_slots), day_totals(remote_slots)
    mapal_bad += sum(1 for k in set(ld) | set(rd) if ld.get(k, [0, 0]) != rd.get(k, [0, 0]))

    dead, dead_no_reason, unknown = (int(x) for x in psql_rows(
        "SELECT count(*) FILTER (WHERE state = 'dead'),"
        " count(*) FILTER (WHERE state = 'dead' AND coalesce(last_error, '') = ''),"
        " count(*) FILTER (WHERE state = 'unknown') FROM sales_api.outbox")[0])

    print(FMT.format(scenario, len(local), delivered, dups, dead, unknown, lost, extra,
                     ct_days, len(local_slots), mapal_bad, secs))
    if lost or extra or dups:
        explain(local, have, want)
    if dead:
        for kind, err, n in psql_rows("SELECT kind, left(last_error, 100), count(*) FROM sales_api.outbox"
                                      " WHERE state = 'dead' GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5"):
            print(f"    dead {kind} x{n}: {err}", file=sys.stderr)
    bad = lost or dups or extra or ct_days or mapal_bad or dead_no_reason
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
