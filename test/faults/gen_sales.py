#!/usr/bin/env python3
"""test/faults/gen_sales.py FROM TO [DAY]: sales FROM..TO-1 as COPY text for
pos_sales (store, sold_at, kind, channel, net, tax, guests), the same mix as
fs_insert, one second apart from DAY 00:00 UTC (default 2026-11-24), so
every sale has its own second."""
import datetime
import sys

lo, hi = int(sys.argv[1]), int(sys.argv[2])
day = datetime.date.fromisoformat(sys.argv[3] if len(sys.argv) > 3 else "2026-11-24")
base = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc)
out = sys.stdout
for i in range(lo, hi):
    kind = ("SALE", "SALE", "REFUND", "VOID")[(i // 3) % 4]
    channel = ("EAT_IN", "TAKE", "DELIVERY")[(i // 12) % 3]
    net = (100 + (i % 997) * 10) * (-1 if kind == "REFUND" else 1)      # cents
    t = base + datetime.timedelta(seconds=i - lo)
    out.write("%d\t%s\t%s\t%s\t%s%d.%02d\t%d.%02d\t%d\n" % (
        1 + i % 3, t.isoformat(), kind, channel, "-" if net < 0 else "", abs(net) // 100, abs(net) % 100,
        (i % 13) // 10, (i % 13) % 10 * 10, 1 + i % 4))
