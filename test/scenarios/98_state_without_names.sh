#!/usr/bin/env bash
# A schema of an earlier build of 0.8.0: sales_api.server_state without its
# server_name column (an extension keeps its version across builds, so
# ALTER EXTENSION ... UPDATE does not add it).  The worker then reads the
# captures without the names (captures_nonames_stmt in outbox.c) and
# attach() records a server's state without one; sales still flow to both
# vendors, and a pause still holds a server's items until resume.  The
# column is renamed, not dropped: the extension depends on it, and every
# statement that looks it up by name then finds none.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "ALTER TABLE sales_api.server_state RENAME COLUMN server_name TO server_name_was" >/dev/null
log_from=$(( $(wc -l < "$SA_PGLOG") + 1 ))
# attach() without the column: Mapal detached and attached again
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
attach_mapal
expect_eq "$(q -c "SELECT count(*) FROM sales_api.capture WHERE detached_at IS NULL")" 2 "both captures attached"
fs_insert 0 600
fs_drain 120
python3 "$(dirname "$0")/../lib/compare.py" state-without-names
# a pause holds the server's items; resume sends them
q -c "SELECT sales_api.pause('connecteam')" >/dev/null
posts=$(mockctl count --path '/connecteam/sales/v1/transactions' --method POST)
fs_insert 600 150
worker_cycles 3
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox o JOIN sales_api.capture c ON c.id = o.capture_id
                   WHERE c.vendor = 'connecteam' AND o.state = 'pending'") $(mockctl count --path '/connecteam/sales/v1/transactions' --method POST)" \
    "150 $posts" "the paused server's 150 sales wait as pending items, nothing posted"
q -c "SELECT sales_api.resume('connecteam')" >/dev/null
fs_drain 120
python3 "$(dirname "$0")/../lib/compare.py" state-without-names-resumed
# the worker never failed on the missing column
errs=$(tail -n +"$log_from" "$SA_PGLOG" | grep -E "ERROR|server_name" || true)
[ -z "$errs" ] || fail "the server log has errors: $errs"
pass "no error in the server log"
# leave the next scenario a current schema
fs_setup
