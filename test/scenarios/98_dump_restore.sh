#!/usr/bin/env bash
# pg_dump and pg_restore into a new database, as a DBA moves a POS database:
# the restore gives the foreign servers new OIDs while the capture rows keep
# the old ones.  The worker of the new database binds each capture to its
# server by name again (and moves the server's pause with it): the sale
# queued before the dump is sent once, and an UPDATE of a sale sent before
# the dump replaces it at Connecteam.
. "$(dirname "$0")/../lib/scenario.sh"
SRC=sa_dump_src
DST=sa_dump_dst
restore() {
    q -d postgres -c "ALTER SYSTEM RESET sales_api.database" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
    for d in $SRC $DST; do q -d postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
}
trap restore EXIT
restore
mockctl reset >/dev/null
make_locations 2
q -d postgres -c "ALTER SYSTEM SET sales_api.database = '*'" -c "SELECT pg_reload_conf()" >/dev/null

ct_database $SRC
SA_DB=$SRC wait_for "SELECT running FROM sales_api.worker_stats()" 30 "a worker for $SRC"
q -d $SRC -c "INSERT INTO pos_sales (store, sold_at, net) VALUES (1, '2026-11-24 10:00+00', 10.00)"
SA_DB=$SRC wait_for "$(SA_DB=$SRC drained)" 60 "the first sale sent from $SRC"
# the second sale waits, the server paused, when the dump is taken
q -d $SRC -c "SELECT sales_api.pause('connecteam')" >/dev/null
q -d $SRC -c "INSERT INTO pos_sales (store, sold_at, net) VALUES (2, '2026-11-24 11:00+00', 20.00)"
"$PG_BINDIR/pg_dump" -Fc -f "$SA_WORK/dump-restore.dump" $SRC || fail "pg_dump failed"
q -d postgres -c "DROP DATABASE $SRC WITH (FORCE)" >/dev/null

q -d postgres -c "CREATE DATABASE $DST" >/dev/null
"$PG_BINDIR/pg_restore" --single-transaction -d $DST "$SA_WORK/dump-restore.dump" 2>"$SA_WORK/dump-restore.err" \
    || fail "pg_restore failed: $(cat "$SA_WORK/dump-restore.err")"
SA_DB=$DST wait_for "SELECT running FROM sales_api.worker_stats()" 30 "a worker for $DST"
SA_DB=$DST wait_for "SELECT c.server_id = f.oid FROM sales_api.capture c, pg_foreign_server f
                      WHERE f.srvname = 'connecteam'" 30 "the capture bound to the restored server"
grep "now uses server" "$SA_PGLOG" | tail -1
expect_eq "$(q -d $DST -c "SELECT paused FROM sales_api.outbox_status WHERE server_name = 'connecteam' LIMIT 1")" t \
    "the restored server is still paused"
expect_eq "$(mockctl ct-transactions | wc -l | tr -d ' ')" 1 "Connecteam holds the first sale only"
q -d $DST -c "SELECT sales_api.resume('connecteam')" >/dev/null
SA_DB=$DST wait_for "$(SA_DB=$DST drained)" 60 "the sale queued before the dump"
q -d $DST -c "UPDATE pos_sales SET net = 10.50 WHERE store = 1"
SA_DB=$DST wait_for "$(SA_DB=$DST drained)" 60 "the update of the sale sent before the dump"
SA_DB=$DST qs -c "SELECT id, kind, state, attempts, left(last_error, 60) AS last_error FROM sales_api.outbox ORDER BY id"
mockctl ct-transactions
expect_eq "$(mockctl ct-transactions | wc -l | tr -d ' ')" 2 "Connecteam holds two sales"
expect_eq "$(mockctl ct-transactions | grep -c '10.50')" 1 "the updated version of the first"
expect_eq "$(mockctl ct-transactions | grep -c '20.00')" 1 "the second, once"
expect_eq "$(q -d $DST -c "SELECT count(*) FROM sales_api.outbox WHERE state NOT IN ('sent', 'superseded')")" 0 \
    "nothing failed or dead in $DST"

# a server renamed in place keeps its OID: the capture and its pause row take the new name
q -d $DST -c "ALTER SERVER connecteam RENAME TO ct_renamed"
SA_DB=$DST wait_for "SELECT (SELECT server_name FROM sales_api.capture) = 'ct_renamed'
                        AND (SELECT server_name FROM sales_api.server_state) = 'ct_renamed'" 30 "the capture to follow the rename"
q -d $DST -c "INSERT INTO pos_sales (store, sold_at, net) VALUES (1, '2026-11-24 12:00+00', 30.00)"
SA_DB=$DST wait_for "$(SA_DB=$DST drained)" 60 "a sale after the rename"
expect_eq "$(mockctl ct-transactions | grep -c '30.00')" 1 "the sale after the rename is at Connecteam"

# renamed and another server created under the old name at once: nothing is guessed
q -d $DST -v mock_url="$MOCK_URL" <<'SQL' >/dev/null
BEGIN;
ALTER SERVER ct_renamed RENAME TO ct_old;
\set ct_url :mock_url/connecteam
CREATE SERVER ct_renamed FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
COMMIT;
SQL
q -d $DST -c "INSERT INTO pos_sales (store, sold_at, net) VALUES (2, '2026-11-24 13:00+00', 40.00)"
SA_DB=$DST wait_for "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE last_error LIKE '%names server \"ct_renamed\", but its server_id%')" \
    60 "the capture's items to fail, its OID and name naming two servers"
expect_eq "$(mockctl ct-transactions | grep -c '40.00')" 0 "nothing sent while the binding is ambiguous"
expect_eq "$(q -d $DST -c "SELECT server_name FROM sales_api.capture")" ct_renamed "the capture row is left as it was"
q -d $DST -c "UPDATE sales_api.capture SET server_name = 'ct_old'"
q -d $DST -c "SELECT sales_api.retry_dead()" >/dev/null
q -d $DST -c "UPDATE sales_api.outbox SET next_attempt_at = now() WHERE state = 'failed'"
SA_DB=$DST wait_for "$(SA_DB=$DST drained)" 90 "the sale once the operator bound the capture"
expect_eq "$(mockctl ct-transactions | grep -c '40.00')" 1 "the sale is at Connecteam once"

echo "dump-restore scenario passed"
