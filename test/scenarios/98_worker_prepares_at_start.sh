#!/usr/bin/env bash
# The worker prepares the statements it runs while it sends, and makes their
# plans, when it starts (outbox_warm()): its plan cache after start is what
# it keeps while it works, so its memory does not grow by a megabyte in its
# first drain (test/bench: memory, issue 8's target of 2 MiB).  A fresh
# worker, idle after two cycles, lists its plan sources with
# pg_log_backend_memory_contexts(); a drain then adds none of the warmed ones.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup

worker_pid() { q -d postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'sales_api worker'"; }

# plan_sources: the worker's CachedPlanSource contexts, one line each (their statements' first words)
plan_sources() {
    local pid=$1 off
    off=$(stat -c %s "$SA_PGLOG")
    q -d postgres -c "SELECT pg_log_backend_memory_contexts($pid)" >/dev/null
    wait_until "tail -c +$((off + 1)) \"\$SA_PGLOG\" | grep \"\\[$pid\\]\" | grep -q 'Grand total'" 30 \
        "the worker to log its memory contexts"
    tail -c +$((off + 1)) "$SA_PGLOG" | grep "\[$pid\]" | grep -o 'CachedPlanSource: .*' \
        | sed 's/^[^:]*: [^:]*: //' | cut -c1-60 | sort
}

old=$(worker_pid)
q -d postgres -c "SELECT pg_terminate_backend($old)" >/dev/null
wait_until '[ -n "$(worker_pid)" ] && [ "$(worker_pid)" != "'"$old"'" ]' 60 "a new worker process"
pid=$(worker_pid)
worker_cycles 3
before=$(plan_sources "$pid")
n=$(echo "$before" | grep -c .)
echo "plan sources after start: $n"
# the statements of posts, records, stage moves and leases, and Mapal's claims
for s in "UPDATE sales_api.outbox o SET state = u.state" "INSERT INTO sales_api.connecteam_sent" \
         "WITH s AS (DELETE FROM sales_api.outbox_stage" "WITH s AS (DELETE FROM sales_api.mapal_stage" \
         "WITH c AS (SELECT o.id FROM sales_api.outbox o"; do
    echo "$before" | grep -qF "$s" || fail "not prepared after start: $s"
done
[ "$n" -ge 20 ] || fail "only $n statements prepared after start"

# single rows and a bulk statement (staged in parts), then updates and deletes
fs_insert 1 300 1
fs_insert 301 3000 3000
fs_mutate
wait_for "$(drained)" 120 "the sales"
expect_eq "$(worker_pid)" "$pid" "the same worker process"
after=$(plan_sources "$pid")
added=$(comm -13 <(echo "$before") <(echo "$after"))
echo "plan sources after a drain: $(echo "$after" | grep -c .); new: ${added:-none}"
[ "$(echo "$added" | grep -c .)" -le 2 ] || fail "the drain prepared more statements: $added"
pass "the worker prepared its statements when it started"
