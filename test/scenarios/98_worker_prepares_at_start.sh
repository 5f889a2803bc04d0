#!/usr/bin/env bash
# The worker prepares the statements it runs while it sends, and makes their
# plans, when it starts (outbox_warm()): its plan cache after start is what
# it keeps while it works, so its memory does not grow by a megabyte in its
# first drain (test/bench: memory, issue 8's target of 2 MiB).  A fresh
# worker, idle after a few cycles, logs its memory contexts with
# pg_log_backend_memory_contexts(); a drain (single rows, a bulk statement
# staged in parts, updates and deletes, both vendors) then prepares no other
# statement and adds little to the plan cache.  Before the warm-up, the
# fresh worker held 12 plan sources and its plan cache doubled in the drain.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup

# contexts PID FILE: the worker's memory contexts, as it logs them, into FILE
contexts() {
    local pid=$1 out=$2 off
    off=$(stat -c %s "$SA_PGLOG")
    q -d postgres -c "SELECT pg_log_backend_memory_contexts($pid)" >/dev/null
    wait_until "tail -c +$((off + 1)) \"\$SA_PGLOG\" | grep -F \"[$pid]\" | grep 'Grand total' >/dev/null" 30 \
        "the worker to log its memory contexts"
    tail -c +$((off + 1)) "$SA_PGLOG" | grep -F "[$pid]" > "$out" || true
    grep -q 'Grand total' "$out" || fail "no memory contexts of the worker in the log"
    # PostgreSQL lists at most 100 children of a context, the newest first, and folds the
    # rest into one line (with the parent's level): CacheMemoryContext's oldest, the index
    # infos of the catalogs opened at the worker's start.  A statement prepared later is
    # always among those listed.
    grep -oE 'level: 1; [0-9]+ more child contexts containing [0-9]+ total' "$out" || true
}
# sources FILE: the statements of the plan sources, their first 100 characters, sorted
sources() { sed -n 's/.*level: [0-9]*; CachedPlanSource: [^:]*: //p' "$1" | cut -c1-100 | sort; }
# plan_bytes FILE: the bytes of the plan cache (plan sources, their query trees, plans)
plan_bytes() { sed -n 's/.*level: [0-9]*; CachedPlan[A-Za-z]*: \([0-9]*\) total.*/\1/p' "$1" | awk '{s += $1} END {print s + 0}'; }

worker_cycles 1
old=$(worker_pid)
q -d postgres -c "SELECT pg_terminate_backend($old)" >/dev/null
fs_wait_new_worker "$old"
pid=$(worker_pid)
worker_cycles 3
contexts "$pid" "$SA_WORK/ctx-start.txt"
before=$(sources "$SA_WORK/ctx-start.txt")
bytes0=$(plan_bytes "$SA_WORK/ctx-start.txt")
n=$(echo "$before" | grep -c .)
echo "after start: $n plan sources, $bytes0 bytes in the plan cache"
for s in "UPDATE sales_api.outbox o SET state = u.state" "INSERT INTO sales_api.connecteam_sent" \
         "WITH s AS (DELETE FROM sales_api.mapal_stage" \
         "WITH c AS (SELECT o.id FROM sales_api.outbox o WHERE o.kind = 'mapal_slot'   AND o.state IN"; do
    echo "$before" | grep -qF "$s" || fail "not prepared after start: $s"
done
[ "$n" -ge 20 ] || fail "only $n statements prepared after start"

# single rows and a bulk statement (staged in parts), then updates and deletes
fs_insert 1 300 1
fs_insert 301 3000 3000
fs_mutate
wait_for "$(drained)" 120 "the sales"
expect_eq "$(worker_pid)" "$pid" "the same worker process"
contexts "$pid" "$SA_WORK/ctx-drained.txt"
after=$(sources "$SA_WORK/ctx-drained.txt")
bytes1=$(plan_bytes "$SA_WORK/ctx-drained.txt")
added=$(comm -13 <(echo "$before") <(echo "$after"))
echo "after a drain: $(echo "$after" | grep -c .) plan sources, $bytes1 bytes in the plan cache; new: ${added:-none}"
[ -z "$added" ] || fail "the drain prepared statements the worker had not: $added"
# the generic plans of statements the first cycles ran (made at their sixth run) may come
[ "$bytes1" -le $((bytes0 * 5 / 4)) ] || fail "the plan cache grew from $bytes0 to $bytes1 bytes in the drain"
pass "the worker prepared its statements and made their plans when it started"
