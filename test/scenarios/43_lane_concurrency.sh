#!/usr/bin/env bash
# sales_api.max_concurrency holds for a lane, not for each of its jobs: while
# a Connecteam lane works through a backlog, its second job (claimed while
# the first is still sending) shares the first's requests in flight.  Until
# 0.8's fix each job had max_concurrency of its own: a lane at 1 had 1.56
# posts at the mock at once on average (test/bench/run's drain), and this
# scenario saw 1.36 on average and 2 at most.  Here: a
# 6,000-sale backlog (jobs of sales_api.batch_size 2,000, the next claimed
# while one is sending; no rate limit) at max_concurrency 1, the mock answering each post 50 ms after it
# came; from the mock's log, how many posts it was answering at once.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
trap 'q -c "ALTER SYSTEM RESET sales_api.max_concurrency" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true; mockctl config answer_ms=0 >/dev/null 2>&1 || true' EXIT
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
fs_set max_concurrency 1
mockctl config answer_ms=50 connecteam_minute_limit=1000000000 connecteam_day_limit=1000000000 >/dev/null
q -c "SELECT sales_api.pause('connecteam')" >/dev/null
fs_insert 0 6000 1500
mockctl mark >/dev/null
q -c "SELECT sales_api.resume('connecteam')" >/dev/null
wait_for "$(drained)" 120 "the 6,000-sale backlog"
mockctl log --since-mark --fields method,path,end,ms | python3 -c '
import sys
posts = []
# a post from when it came (before its body was read) to when it was done
for line in sys.stdin:
    method, path, end, ms = line.rstrip("\n").split("\t")
    if method == "POST" and path == "/connecteam/sales/v1/transactions" and ms not in ("", "None", "-"):
        posts.append((float(end) - float(ms) / 1000.0, float(end)))
posts.sort()
# at each arrival, the posts the mock was still answering (2 ms of slack for
# its log: it notes a request done just after sending the answer)
most = max(sum(1 for s, e in posts if s <= a < e - 0.002) for a, _ in posts)
span = max(e for _, e in posts) - posts[0][0]
mean = sum(e - s for s, e in posts) / span
print("%d posts; at the mock at once: at most %d, on average %.2f" % (len(posts), most, mean))
sys.exit(0 if len(posts) == 60 and most <= 1 and mean <= 1.05 else 1)
' || fail "a lane at max_concurrency 1 had more than one post at the vendor at once"
pass "a lane at max_concurrency 1 had one post at the vendor at a time, its two jobs together"
python3 "$(dirname "$0")/../lib/compare.py" lane-concurrency --no-mapal
echo "lane concurrency scenario passed"
