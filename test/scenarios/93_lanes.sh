#!/usr/bin/env bash
# One destination never holds back another.  The issue: a POS table attached
# to both vendors, a Connecteam account on a small plan (5 requests a
# minute), a burst of 2,000 sales: the worker spent each cycle waiting for
# Connecteam's rate-limit window, and a sale committed 20 s later reached
# Mapal 217 s after its commit; a vendor that hangs until request_timeout
# held everything behind it the same way.  Required: Mapal real-time
# latency, commit to the mock receiving the slot, at most 1 s at p50 and 2 s
# at p99 (mock latency 20 ms):
#   1. with a 2,000-sale Connecteam backlog under a limit of 5 requests per
#      window.  The window is 15 s here, not 60 s, to keep the test short: the
#      backlog (20 requests of 100) still lasts four windows, longer than the
#      measurement, and a worker that waits for the window still waits up to
#      15 s, far beyond the 2 s allowed;
#   2. while the Connecteam mock hangs every request (never answers, never
#      stores: the mock's `hang` fault) until the worker's request_timeout,
#      5 s here;
#   3. while Connecteam, now with OAuth, has no token and its token endpoint
#      hangs the same way (a lane fetches its token without waiting, and the
#      lanes of one token share one request);
# and in the end nothing lost, nothing duplicated at either vendor.
#
# Each measured sale is committed on its own (one every 250 ms for 12 s, 8 s
# in phase 3) and
# is alone in its Mapal slot (its own unit and 15-minute slot), so the first
# Mapal request carrying that slot with the sale's total is its arrival;
# commit time is clock_timestamp() at the INSERT, just before the commit
# (test/lib/lanes.py says how it measures).  The same measurement with the
# issue's real figures (60 s windows, 30 s timeout) and a Mapal-only baseline:
# test/bench/lanes.sh.
#
# For checking the measurement itself: LANES_CT_LIMIT=100000 (no limit) and
# LANES_HANG=0 (no hang) leave nothing to hold Mapal back.
. "$(dirname "$0")/../lib/scenario.sh"
LANES=$(cd "$(dirname "$0")/../lib" && pwd)/lanes.py
LIMIT=${LANES_CT_LIMIT:-5}
WINDOW=${LANES_WINDOW:-15}
HANG=${LANES_HANG:-1}
TIMEOUT=5s
P50_MAX=1000    # ms
P99_MAX=2000    # ms

passed=0
failed=0
# check WHAT SHELL-CONDITION: counted, and the test goes on (both phases run)
check() {
    if eval "$2"; then echo "ok: $1"; passed=$((passed + 1));
    else echo "FAIL: $1" >&2; failed=$((failed + 1)); fi
}
# le A B: A <= B, for the figures lanes.py writes ("inf" for a sale that never arrived)
le() { [ "$1" != inf ] && python3 -c "import sys; sys.exit(0 if float('$1') <= float('$2') else 1)"; }

cleanup() {
    mockctl faults-clear >/dev/null 2>&1 || true
    mockctl release >/dev/null 2>&1 || true
    mockctl config connecteam_minute_limit=100000 connecteam_window_seconds=60 latency_ms=0 >/dev/null 2>&1 || true
    q -c "ALTER SYSTEM RESET sales_api.request_timeout" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
}
trap cleanup EXIT

scenario_setup
make_locations 5
attach_connecteam
attach_mapal
q -c "ALTER SYSTEM SET sales_api.request_timeout = '$TIMEOUT'" >/dev/null
reload_conf
worker_cycles 2
mockctl config latency_ms=20 >/dev/null

# measure PHASE STORE DAY [PROBE-SQL]: the sales of one phase; prints the
# latencies, checks p50 and p99; sets COUNT ARRIVED P50 P99 MAX PROBE
measure() {
    local phase=$1 store=$2 day=$3 probe=${4:-} res=$SA_WORK/lanes-$1.txt
    python3 "$LANES" measure --label "$phase" --table pos_sales --store "$store" --day "$day" \
        --seconds "${SECONDS_MEASURED:-12}" --interval-ms 250 --wait 120 ${probe:+--probe "$probe"} --result "$res" \
        || fail "$phase: the measurement did not run"
    read -r COUNT ARRIVED P50 P99 MAX PROBE < "$res"
    echo "$phase: Mapal commit to arrival over $COUNT sales: p50 $P50 ms, p99 $P99 ms, max $MAX ms (targets $P50_MAX ms, $P99_MAX ms)"
    check "$phase: every measured sale reached Mapal ($ARRIVED of $COUNT)" '[ "$ARRIVED" = "$COUNT" ]'
    check "$phase: Mapal latency p50 $P50 ms <= $P50_MAX ms" 'le "$P50" $P50_MAX'
    check "$phase: Mapal latency p99 $P99 ms <= $P99_MAX ms" 'le "$P99" $P99_MAX'
}

# ---- 1. a 2,000-sale Connecteam backlog under 5 requests per window --------
echo "== phase 1: Connecteam backlog of 2,000 sales, limit $LIMIT requests per ${WINDOW} s window, mock latency 20 ms"
mockctl config connecteam_minute_limit="$LIMIT" connecteam_window_seconds="$WINDOW" >/dev/null
mockctl mark >/dev/null
# the burst: stores 1..3 (Connecteam locations 1..3, Mapal units 1001..1003),
# a whole second each, one statement
q -c "INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)
      SELECT 1 + i % 3, timestamptz '2026-11-20 06:00+00' + i * interval '7 s', 'SALE',
             (ARRAY['EAT_IN','TAKE','DELIVERY'])[1 + (i / 3) % 3], round((1 + (i % 997) / 10.0)::numeric, 2),
             round(((i % 13) / 10.0)::numeric, 2), 1 + i % 4
        FROM generate_series(0, 1999) i"
# the first window's budget is spent: from here on Connecteam has to wait
ct_posts='[ "$(mockctl count --since-mark --method POST --path "^/connecteam/sales/v1/transactions$" --status 200)" -ge 5 ]'
wait_until "$ct_posts" 120 "the worker to spend Connecteam's first window"
measure phase1 4 2026-12-01 \
    "SELECT 2000 - count(*) FROM sales_api.outbox WHERE kind = 'ct_post' AND state = 'sent' AND location_id <= 3"
if [ "$LIMIT" -lt 100 ]; then
    check "phase 1: the Connecteam backlog lasted the whole measurement ($PROBE burst sales still to send after the last commit)" \
        '[ "$PROBE" -gt 0 ]'
fi
echo "Connecteam posts answered during phase 1, by status: $(mockctl log --since-mark --method POST \
    --path '^/connecteam/sales/v1/transactions$' --fields status | sort | uniq -c | xargs)"

# ---- 2. the Connecteam mock hangs every request until the timeout ----------
if [ "$HANG" = 1 ]; then
    echo "== phase 2: Connecteam hangs every request until the worker's request_timeout ($TIMEOUT), mock latency 20 ms"
    mockctl config connecteam_minute_limit=100000 >/dev/null
    mockctl fault hang --path '^/connecteam/' --count 1000000 >/dev/null
    mockctl mark >/dev/null
    # Connecteam work to hang on from the start, whatever is left of phase 1's
    # backlog: 300 more sales in stores 1..3, a day later
    q -c "INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)
          SELECT 1 + i % 3, timestamptz '2026-11-21 06:00+00' + i * interval '7 s', 'SALE', 'EAT_IN',
                 round((2 + (i % 89) / 10.0)::numeric, 2), 0.20, 1
            FROM generate_series(0, 299) i"
    wait_until '[ "$(mockctl hanging)" -ge 1 ]' 60 "a Connecteam request to hang"
    measure phase2 5 2026-12-05
    # the hangs ended by the worker's timeout, not sooner (ms: how long the worker waited)
    mockctl log --since-mark --fields fault,ms | awk -F'\t' '$1 == "hang" && $2 != "-"' > "$SA_WORK/lanes-hangs.txt"
    hangs=$(wc -l < "$SA_WORK/lanes-hangs.txt" | tr -d ' ')
    short=$(awk -F'\t' '$2 < 4500' "$SA_WORK/lanes-hangs.txt" | wc -l | tr -d ' ')
    echo "Connecteam requests that hung and were given up during phase 2: $hangs ($short of them in less than 4.5 s;" \
        "the mock saw the worker give up after $(awk -F'\t' 'NR == 1 || $2 < a {a = $2} NR == 1 || $2 > b {b = $2}
        END {printf "%.1f to %.1f s", a / 1000, b / 1000}' "$SA_WORK/lanes-hangs.txt"))"
    check "phase 2: Connecteam requests hung until the worker gave up on them ($hangs)" '[ "$hangs" -ge 1 ]'
    check "phase 2: each was given up at the request_timeout, not sooner ($short sooner)" '[ "$short" = 0 ]'
fi

# ---- 3. Connecteam's OAuth token endpoint hangs until the timeout ----------
echo "== phase 3: Connecteam with OAuth and no token; its token endpoint hangs until the worker's request_timeout ($TIMEOUT)"
mockctl faults-clear >/dev/null
mockctl release >/dev/null
mockctl config connecteam_minute_limit=100000 >/dev/null
wait_for "$(drained)" 120 "phases 1 and 2 to be delivered"
mockctl fault hang --path '^/connecteam/oauth/v1/token$' --count 1000000 >/dev/null
mockctl mark >/dev/null
# a new user mapping: the worker drops the cached credentials, and needs a token
q -c "ALTER USER MAPPING FOR CURRENT_USER SERVER connecteam
      OPTIONS (DROP api_key, ADD client_id 'ct-client', ADD client_secret 'ct-secret')" >/dev/null
q -c "INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)
      SELECT 1 + i % 3, timestamptz '2026-11-22 06:00+00' + i * interval '7 s', 'SALE', 'EAT_IN',
             round((3 + (i % 89) / 10.0)::numeric, 2), 0.30, 1
        FROM generate_series(0, 99) i"
wait_until '[ "$(mockctl hanging)" -ge 1 ]' 60 "a Connecteam token request to hang"
SECONDS_MEASURED=8 measure phase3 5 2026-12-09
tokens=$(mockctl count --since-mark --path '^/connecteam/oauth/v1/token$')
posts=$(mockctl count --since-mark --path '^/connecteam/sales/')
echo "Connecteam during phase 3: $tokens token requests (each hung until the worker gave up), $posts API requests"
check "phase 3: Connecteam sent no API request without a token ($posts)" '[ "$posts" = 0 ]'
check "phase 3: Connecteam asked for a token ($tokens)" '[ "$tokens" -ge 1 ]'

# ---- the end: faults and limits released, everything delivered once ----------
echo "== drain: faults and limits released"
mockctl faults-clear >/dev/null
mockctl release >/dev/null
mockctl config connecteam_minute_limit=100000 connecteam_window_seconds=60 >/dev/null
if wait_for "$(drained)" 240 "everything to be delivered"; then
    check "the outbox drained" true
else
    check "the outbox drained" false
fi
mock_idle
qs -c "SELECT kind, state, count(*), max(attempts) AS max_attempts FROM sales_api.outbox GROUP BY 1, 2 ORDER BY 1, 2"
check "nothing lost, nothing duplicated at either vendor" \
    'python3 "$(dirname "$0")/../lib/compare.py" lanes'
dead=$(q -c "SELECT count(*) FROM sales_api.outbox WHERE state IN ('dead', 'unknown')")
check "no item dead or parked ($dead)" '[ "$dead" = 0 ]'
echo "lanes scenario: $passed passed, $failed failed"
[ "$failed" = 0 ]
