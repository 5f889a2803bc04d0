#!/usr/bin/env bash
# Every database is served: with sales_api.database = '*', the launcher starts
# a worker for each database where sales_api is installed, without a restart.
# Two new databases, each with an attached table: the sales of both reach the
# vendor.  A DROP EXTENSION gives the worker's slot back; a database that
# sales_api.database does not select says so in worker_stats() and in a
# WARNING from attach().
. "$(dirname "$0")/../lib/scenario.sh"
DBS=(sa_every_a sa_every_b)
restore() {
    q -d postgres -c "ALTER SYSTEM RESET sales_api.database" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
    for d in "${DBS[@]}"; do q -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
}
trap restore EXIT
restore
mockctl reset >/dev/null
make_locations 4


echo "--- sales_api.database selects one database: another one is not served, and says so"
ct_database sa_every_a
grep -q "no sales_api worker serves database \"sa_every_a\"" "$SA_WORK/db-sa_every_a.err" \
    || fail "attach() in a database no worker serves gave no warning: $(cat "$SA_WORK/db-sa_every_a.err")"
pass "attach() warns that no worker serves the database"
expect_eq "$(q -d sa_every_a -c "SELECT running::text || ' / ' || note FROM sales_api.worker_stats()")" \
    "false / not served: sales_api.database is 'sa_worker'" "worker_stats() says why the database is not served"

# A commit there asks no worker to wake and pokes no launcher: until 0.8 each
# capturing commit in such a database made the launcher list pg_database
# again (240 clock ticks of its CPU, a quarter of a core, in 10 s of
# two-client single-row inserts here, and a kill() in every commit).
# 40,000 one-row commits: the launcher's CPU time (/proc, clock ticks)
# stays under 10 (about 50 with the pokes).
launcher=$(q -d postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'sales_api launcher'")
[ -n "$launcher" ] || fail "no sales_api launcher in pg_stat_activity"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "INSERT INTO pos_sales (store, sold_at, net) VALUES (1, now(), 1);" > "$SA_WORK/every-one-row.sql"
t0=$(ticks "$launcher")
"$PG_BINDIR/pgbench" -n -c 2 -t 20000 -f "$SA_WORK/every-one-row.sql" sa_every_a >"$SA_WORK/every-pgbench.out" 2>&1 \
    || fail "pgbench failed: $(tail -3 "$SA_WORK/every-pgbench.out")"
t1=$(ticks "$launcher")
expect_eq "$(q -d sa_every_a -c "SELECT count(*) FROM pos_sales")" 40000 "40,000 one-row sales committed"
[ $((t1 - t0)) -lt 10 ] || fail "the launcher used $((t1 - t0)) clock ticks during 40,000 commits in a database it does not serve"
pass "commits in a database no worker may serve leave the launcher idle ($((t1 - t0)) ticks)"
q -d sa_every_a -c "TRUNCATE pos_sales; TRUNCATE sales_api.outbox_stage, sales_api.outbox" >/dev/null

echo "--- sales_api.database = '*': both databases served, no restart"
q -d postgres -c "ALTER SYSTEM SET sales_api.database = '*'" -c "SELECT pg_reload_conf()" >/dev/null
ct_database sa_every_b
SA_DB=sa_every_a wait_for "SELECT running FROM sales_api.worker_stats()" 30 "a worker for sa_every_a"
SA_DB=sa_every_b wait_for "SELECT running FROM sales_api.worker_stats()" 30 "a worker for sa_every_b"
expect_eq "$(q -d postgres -c "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity
                               WHERE backend_type = 'sales_api worker' AND datname LIKE 'sa_every_%'")" \
    "sa_every_a,sa_every_b" "one worker per database"
q -d sa_every_a -c "INSERT INTO pos_sales (store, sold_at, net) SELECT 1 + i % 2, '2026-11-20 10:00+00'::timestamptz + i * interval '1 min', 10 + i FROM generate_series(1, 50) i"
q -d sa_every_b -c "INSERT INTO pos_sales (store, sold_at, net) SELECT 3 + i % 2, '2026-11-20 10:00+00'::timestamptz + i * interval '1 min', 100 + i FROM generate_series(1, 70) i"
SA_DB=sa_every_a wait_for "$(SA_DB=sa_every_a drained)" 60 "sa_every_a's sales delivered"
SA_DB=sa_every_b wait_for "$(SA_DB=sa_every_b drained)" 60 "sa_every_b's sales delivered"
expect_eq "$(mockctl ct-transactions | awk '$1 <= 2' | wc -l | tr -d ' ')" 50 "the vendor holds sa_every_a's 50 sales (locations 1, 2)"
expect_eq "$(mockctl ct-transactions | awk '$1 >= 3' | wc -l | tr -d ' ')" 70 "the vendor holds sa_every_b's 70 sales (locations 3, 4)"
expect_eq "$(q -d sa_every_b -c "SELECT note FROM sales_api.worker_stats()")" \
    'served by the sales_api worker of database "sa_every_b"' "worker_stats() names the database served"

echo "--- DROP EXTENSION: the database's worker stops and gives its slot back"
q -d sa_every_b -c "DROP EXTENSION sales_api CASCADE" >/dev/null 2>&1
wait_for "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'sales_api worker' AND datname = 'sa_every_b')" \
    30 "the worker of sa_every_b to stop"
pass "the worker of a database without sales_api stops"
SA_DB=sa_every_a wait_for "SELECT running FROM sales_api.worker_stats()" 5 "sa_every_a still served"
pass "the other database is still served"
echo "every-database scenario passed"
