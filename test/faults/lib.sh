# test/faults/lib.sh: helpers of the fault suite (test/faults/run).
#
# Every scenario starts from a fresh sales_api in the worker's database, a POS
# table pos_sales attached to both vendors (Connecteam locations 1..3, Mapal
# units 1001..1003), runs the standard workload while its faults play out,
# waits for the worker to drain the outbox, and is judged by tally.py.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/scenario.sh"

FAULTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# A fresh extension.  DROP EXTENSION leaves the schema (the control file
# creates it), so it goes too: nothing of an earlier scenario survives.
fs_setup() {
    # a request an earlier test delayed (up to 20 s) would land in this scenario's state
    local i
    for ((i = 0; i < 150; i++)); do
        [ "$(mockctl inflight 2>/dev/null || echo 0)" = 0 ] && break
        sleep 0.2
    done
    q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$SA_DB'
          AND pid <> pg_backend_pid() AND backend_type = 'client backend'" >/dev/null
    q -c "DROP EXTENSION IF EXISTS sales_api CASCADE" >/dev/null 2>&1 || true
    q -c "DROP SCHEMA IF EXISTS sales_api CASCADE" >/dev/null 2>&1 || true
    scenario_setup
    make_locations 3
    attach_connecteam
    attach_mapal
}

# Connecteam with OAuth client credentials instead of the API key (token
# scenarios: a token can be revoked, the token endpoint can be down).
fs_use_oauth() {
    q -c "ALTER USER MAPPING FOR CURRENT_USER SERVER connecteam
          OPTIONS (DROP api_key, ADD client_id 'ct-client', ADD client_secret 'ct-secret')" >/dev/null
}

# fs_insert FROM COUNT [PER_TX]: sales FROM .. FROM+COUNT-1 in transactions of
# PER_TX rows.  Sale i: store 1 + i % 3 (Connecteam location, Mapal unit
# 1000 + store), a unique second (53 s apart, so two business days for 3,000
# sales), sale types and channels mixed, refunds negative.
fs_insert() {
    local from=$1 count=$2 per=${3:-150} a
    for ((a = from; a < from + count; a += per)); do
        local b=$((a + per - 1)); [ "$b" -ge $((from + count)) ] && b=$((from + count - 1))
        q -c "INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)
              SELECT 1 + i % 3, timestamptz '2026-11-20 06:00+00' + (i * 53) * interval '1 second',
                     (ARRAY['SALE','SALE','REFUND','VOID'])[1 + (i / 3) % 4],
                     (ARRAY['EAT_IN','TAKE','DELIVERY'])[1 + (i / 12) % 3],
                     CASE WHEN (i / 3) % 4 = 2 THEN -1 ELSE 1 END * round((1 + (i % 997) / 10.0)::numeric, 2),
                     round(((i % 13) / 10.0)::numeric, 2), 1 + i % 4
                FROM generate_series($a, $b) i" >/dev/null
    done
}

# Some updates (new amount) and deletes of sales already in the table.
fs_mutate() {
    q -c "UPDATE pos_sales SET net = net + 0.50 WHERE id % 23 = 0" >/dev/null
    q -c "DELETE FROM pos_sales WHERE id % 37 = 0" >/dev/null
}

# The standard workload: 3,000 sales in 20 transactions, with updates and
# deletes in the middle.  fs_between runs between the two halves (default:
# nothing), while the first half is being delivered.
fs_between() { :; }
fs_workload() {
    fs_insert 0 1500
    # the worker is on the first half: something has left 'pending'
    wait_for "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE state <> 'pending')" 120 \
        "the worker to start on the first half"
    fs_between
    fs_mutate
    fs_insert 1500 1500
}

# fs_drain SECONDS: wait until nothing is pending, failed or in flight.
fs_drain() {
    wait_for "$(drained)" "${1:-120}" "the outbox to drain"
}

worker_pid() { q -d postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'sales_api worker'"; }

# fs_wait_worker SECONDS: until a worker runs (after a crash or a restart).
fs_wait_worker() {
    local i
    for ((i = 0; i < ${1:-30} * 5; i++)); do
        [ -n "$(worker_pid 2>/dev/null)" ] && return 0
        sleep 0.2
    done
    echo "no worker after ${1:-30}s" >&2; return 1
}

# fs_wait_new_worker OLD_PID [SECONDS]: until a worker other than OLD_PID
# runs: after a crash or pg_terminate_backend the old one may still be listed
# for a moment, and while the postmaster restarts everything queries fail.
fs_wait_new_worker() {
    local old=$1 i p
    for ((i = 0; i < ${2:-60} * 5; i++)); do
        p=$(worker_pid 2>/dev/null || true)
        [ -n "$p" ] && [ "$p" != "$old" ] && return 0
        sleep 0.2
    done
    echo "no new worker (the old one was $old) after ${2:-60}s" >&2; return 1
}

# fs_set NAME VALUE ...: ALTER SYSTEM + reload; returns once the worker runs
# with the new values (the caller's EXIT trap or scenario_cleanup undoes them)
fs_set() {
    while [ $# -ge 2 ]; do
        q -c "ALTER SYSTEM SET sales_api.$1 = '$2'" >/dev/null
        shift 2
    done
    reload_conf
    worker_cycles 2
}

# What the requests with a fault applied were, for the scenario's log.
fs_fault_summary() {
    echo "requests with a fault applied:"
    mockctl log --fields method,path,status,fault | awk -F'\t' '$4 != "-" && $4 != ""' \
        | sed -E 's#/[0-9]+/real-time-sales#/N/real-time-sales#; s#/transactions/[^\t]+#/transactions/ID#' \
        | sort | uniq -c
    echo "outbox:"
    qs -c "SELECT kind, state, count(*), max(attempts) AS max_attempts FROM sales_api.outbox GROUP BY 1, 2 ORDER BY 1, 2"
    qs -c "SELECT requests, items_sent, items_failed, retries, rate_limited, ambiguous FROM sales_api.worker_stats()"
}

# The worker's memory: anonymous resident memory (kB), the grand total of
# its memory contexts (bytes, from pg_log_backend_memory_contexts in the log),
# and of that total the part of the plan cache the log lists (bytes of the
# CachedPlanSource, CachedPlanQuery and CachedPlan contexts), the number of
# plan sources and the number of plans it lists.  The resident size is read after malloc_trim(0)
# in the worker (through gdb, when it is installed), so that memory glibc
# keeps for reuse after a large batch is not taken for growth.
fs_worker_memory() {
    local pid rss total i dump before
    pid=$(worker_pid)
    if command -v gdb >/dev/null; then
        timeout 30 gdb -p "$pid" -batch -ex 'call (int) malloc_trim(0)' >/dev/null 2>&1 || true
    fi
    rss=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status")
    before=$(wc -l < "$SA_PGLOG")
    q -d postgres -c "SELECT pg_log_backend_memory_contexts($pid)" >/dev/null
    # the worker logs them at its next interrupt check: within moments, or
    # later on a loaded machine
    for ((i = 0; i < 600; i++)); do
        total=$(tail -n +"$before" "$SA_PGLOG" | grep "\[$pid\]" | grep -o 'Grand total: [0-9]* bytes' | tail -1 | grep -o '[0-9]*' || true)
        [ -n "$total" ] && break
        sleep 0.1
    done
    [ -n "$total" ] || { echo "the worker $pid did not log its memory contexts in 60 s" >&2; return 1; }
    dump=$(tail -n +"$before" "$SA_PGLOG" | grep "\[$pid\]" |
        awk '/logging memory contexts/ {p = 0; n = 0; g = 0}
             /level: [0-9]+; CachedPlan(Source|Query)?: [0-9]+ total/ {
                 sub(/.*level: [0-9]+; /, ""); split($0, f, /[: ]+/); p += f[2]
                 if (f[1] == "CachedPlanSource") n++; if (f[1] == "CachedPlan") g++ }
             /Grand total/ {print p, n, g}' | tail -1)
    echo "$pid $rss $total $dump"
}

# fs_ct_draining ANSWER_MS COUNT: Connecteam alone (Mapal detached), the mock
# answering after ANSWER_MS with no rate limit; one sale sent first (the
# account's budget learnt), then a COUNT-sale backlog in one statement, until
# its first jobs (40 posts since the mark) are at the vendor: the lane chains.
fs_ct_draining() {
    q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
    mockctl config answer_ms="$1" connecteam_minute_limit=1000000000 connecteam_day_limit=1000000000 >/dev/null
    q -c "INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)
          VALUES (1, '2026-11-19 09:00+00', 'SALE', 'TAKE', 12.50, 1.00, 2)"
    wait_for "$(drained)" 60 "the first sale"
    # staged, and taken straight into flight (a paused server's would be made
    # pending items, which a delete made later follows in id order)
    mockctl mark >/dev/null
    fs_insert 0 "$2" "$2"
    wait_until '[ "$(mockctl count --since-mark --path "^/connecteam/sales/v1/transactions$" --method POST)" -ge 40 ]' 120 \
        "the backlog's first jobs"
}
