#!/usr/bin/env bash
# Staged Connecteam sales (0.6): a POS statement writes its sales to
# sales_api.outbox_stage, and the worker makes them outbox items.  While they
# are staged they are work waiting, everywhere it is counted; an UPDATE or
# DELETE of a staged sale in the very transaction that inserted it, or after,
# leaves the vendor holding exactly the last version; an UPDATE never waits
# for other sales' staged rows; and the worker's expansion is atomic.
. "$(dirname "$0")/../lib/scenario.sh"
scenario_setup
make_locations 2
attach_connecteam
attach_mapal
worker() { q -d postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'sales_api worker'"; }
wait_for "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'sales_api worker'" 90 "the worker"
wpid=$(worker)
[ -n "$wpid" ] || fail "no worker"
trap 'kill -CONT "$wpid" 2>/dev/null || true' EXIT

# 1. With the worker stopped, sales stay staged and are counted as waiting.
# It is stopped between two cycles, where it holds no lock: sleeping, idle.
sleeping="SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $wpid AND state = 'idle' AND wait_event_type = 'Extension')"
for _ in $(seq 1 100); do
    wait_for "$sleeping" 60 "the worker to sleep between cycles"
    kill -STOP "$wpid"
    [ "$(q -c "$sleeping")" = t ] && break     # a stopped process's activity stays as it was
    kill -CONT "$wpid"
done
[ "$(q -c "$sleeping")" = t ] || fail "could not stop the worker between two cycles"
q -c "INSERT INTO pos_sales (store, sold_at, net, tax) VALUES (1, '2026-11-21 09:00+00', 4.00, 0.40)"
q -c "INSERT INTO pos_sales (store, sold_at, net, tax) VALUES (2, '2026-11-21 09:01+00', 5.00, 0.50)"
q -c "INSERT INTO pos_sales (store, sold_at, net, tax)
      SELECT 1 + i % 2, timestamptz '2026-11-21 10:00+00' + i * interval '3 seconds', 1 + i % 90, 0.10
        FROM generate_series(1, 2400) i"
expect_eq "$(q -c "SELECT count(*) || '/' || sum(coalesce(cardinality(sale_keys), 1)) FROM sales_api.outbox_stage")" "7/2402" \
    "two single-row statements staged as a row each, the bulk statement as five rows"
expect_eq "$(q -c "SELECT string_agg(cardinality(sale_keys) || '@' || extract(microseconds FROM staged_at - statement_start)::int, ','
                            ORDER BY staged_at)
                     FROM (SELECT s.*, min(staged_at) OVER () AS statement_start FROM sales_api.outbox_stage s
                            WHERE sale_keys IS NOT NULL) x")" "500@0,500@1,500@2,500@3,400@4" \
    "the bulk statement's parts, of at most 500 sales, a microsecond apart"
expect_eq "$(q -c "SELECT bool_and(k = i::text) FROM (SELECT k, row_number() OVER (ORDER BY s.staged_at, o) + 2 AS i
                     FROM sales_api.outbox_stage s, unnest(s.sale_keys) WITH ORDINALITY AS u(k, o)
                    WHERE s.sale_keys IS NOT NULL) x")" t "the parts hold the sales in the order the statement inserted them"
expect_eq "$(q -c "SELECT items FROM sales_api.outbox_status WHERE server_name = 'connecteam' AND state = 'staged'")" 2402 \
    "outbox_status shows the staged sales"
expect_eq "$(q -c "SELECT string_agg(verdict || ':' || (pending_items > 0), ',' ORDER BY location_id)
                     FROM sales_api.reconcile_connecteam('connecteam', '2026-11-21', '2026-11-21')")" \
    "pending:true,pending:true" "reconciliation reports staged sales as pending, not as a mismatch"

# 2. An UPDATE of a staged sale makes only the staged rows holding its sales
# items: while one POS transaction holds sale 1's, another updates sale 2
# without waiting for it
# (the first transaction stays open until the second UPDATE is done: had
# the second waited for it, it would have failed on its lock_timeout)
session_open first
session_run first "BEGIN;" "UPDATE pos_sales SET net = 4.50 WHERE id = 1;"
q -c "SET lock_timeout = '2s'" -c "UPDATE pos_sales SET net = 5.50 WHERE id = 2" \
    || fail "an UPDATE waited for another transaction's staged sale"
expect_eq "$(q -c "SELECT state FROM pg_stat_activity WHERE application_name = 'sa_first'")" "idle in transaction" \
    "the second UPDATE did not wait for the first transaction"
session_run first "COMMIT;"
session_close first
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox_stage")" 7 \
    "sales 1 and 2 made items by their UPDATEs; left: the bulk statement's five rows and the two new versions"

# 3. In one transaction: a bulk insert, then an update and a delete of its sales
q <<'SQL' >/dev/null
BEGIN;
INSERT INTO pos_sales (store, sold_at, net, tax)
SELECT 1 + i % 2, timestamptz '2026-11-22 12:00+00' + i * interval '5 seconds', 2 + i % 70, 0.20
  FROM generate_series(1, 1500) i;
UPDATE pos_sales SET net = net + 100 WHERE sold_at = '2026-11-22 12:00:05+00';
DELETE FROM pos_sales WHERE sold_at = '2026-11-22 12:00:10+00';
COMMIT;
SQL
# and after the commit, an update and a delete of sales still staged in the big row
q -c "UPDATE pos_sales SET net = net + 200 WHERE sold_at = '2026-11-21 10:00:03+00'"
q -c "DELETE FROM pos_sales WHERE sold_at = '2026-11-21 10:00:06+00'"
# 3b. Two transactions update two sales of one large staged statement: the
# second waits until the first has made the statement's row items and
# committed, then finds its sale's post (not waiting would leave both of
# its versions at the vendor)
q -c "INSERT INTO pos_sales (store, sold_at, net, tax)
      SELECT 1 + i % 2, timestamptz '2026-11-22 16:00+00' + i * interval '7 seconds', 3 + i % 40, 0.30
        FROM generate_series(1, 1200) i"
session_open first
session_run first "BEGIN;" "UPDATE pos_sales SET net = net + 300 WHERE sold_at = '2026-11-22 16:00:07+00';"
session_open second
session_send second "UPDATE pos_sales SET net = net + 400 WHERE sold_at = '2026-11-22 16:00:14+00';"
blocked="SELECT EXISTS (SELECT 1 FROM pg_stat_activity s, pg_stat_activity f WHERE s.application_name = 'sa_second'
           AND f.application_name = 'sa_first' AND f.pid = ANY (pg_blocking_pids(s.pid)))"
wait_until "session_done second || [ \"\$(q -c \"\$blocked\")\" = t ]" 60 "the second UPDATE to finish or to wait"
expect_eq "$(session_done second && echo finished || q -c "$blocked")" t "the second UPDATE waited for the first transaction's staged row"
session_run first "COMMIT;"
session_close first
session_sync second
session_close second

# 3c. A statement of a few rows stages a row per sale, and its Mapal slots
# each once (five sales of two stores in one slot: two slots)
before=$(q -c "SELECT count(*) FROM sales_api.outbox_stage")
mbefore=$(q -c "SELECT count(*) FROM sales_api.mapal_stage")
q -c "INSERT INTO pos_sales (store, sold_at, net, tax)
      SELECT 1 + i % 2, timestamptz '2026-11-22 18:00+00' + i * interval '1 minute', 6, 0.60
        FROM generate_series(1, 5) i"
expect_eq "$(( $(q -c "SELECT count(*) FROM sales_api.outbox_stage") - before ))" 5 \
    "a five-row statement staged as a row per sale"
expect_eq "$(q -c "SELECT count(*) - $mbefore || '/' || (SELECT cardinality(unit_ids) FROM sales_api.mapal_stage
                                                     ORDER BY staged_at DESC LIMIT 1)
                     FROM sales_api.mapal_stage")" "1/2" "its Mapal slots staged as one row, each slot once"

# 3d. A large statement, after a one-row and a two-row statement in the
# same session kept their plans: its sales staged in parts of 500, each
# part a row written while the statement runs (a 1,000,000-row statement
# holds one part in memory, not the whole statement), and its Mapal slots
# each once (the trigger keeps each slot once, where a DISTINCT in the
# statement cost twice as much), whatever sales_api.stage_min_rows says
q -c "SET sales_api.stage_min_rows = 0" \
  -c "INSERT INTO pos_sales (store, sold_at, net, tax) VALUES (1, '2026-11-22 19:00+00', 1, 0.10)" \
  -c "INSERT INTO pos_sales (store, sold_at, net, tax) VALUES (1, '2026-11-22 19:01+00', 1, 0.10),
                                                               (2, '2026-11-22 19:02+00', 1, 0.10)" \
  -c "INSERT INTO pos_sales (store, sold_at, net, tax)
      SELECT 1 + i % 2, timestamptz '2026-11-22 20:00+00' + i * interval '1 second', 1, 0.10
        FROM generate_series(1, 3000) i" >/dev/null
expect_eq "$(q -c "SELECT string_agg(cardinality(sale_keys)::text, ',' ORDER BY staged_at)
                     FROM sales_api.outbox_stage WHERE sale_keys IS NOT NULL
                      AND created_ats[1] >= '2026-11-22 20:00+00' AND created_ats[1] < '2026-11-22 21:00+00'")" \
    "500,500,500,500,500,500" "a 3,000-row statement staged in six parts of 500, in its order"
expect_eq "$(q -c "SELECT (SELECT count(*) FROM unnest(sale_keys) k) || ' ' ||
                          (SELECT count(DISTINCT k) FROM sales_api.outbox_stage s2, unnest(s2.sale_keys) k
                            WHERE s2.created_ats[1] >= '2026-11-22 20:00+00' AND s2.created_ats[1] < '2026-11-22 21:00+00')
                     FROM sales_api.outbox_stage WHERE sale_keys IS NOT NULL AND created_ats[1] = '2026-11-22 20:00:01+00'")" \
    "500 3000" "its parts hold 3,000 different sales"
expect_eq "$(q -c "SELECT cardinality(unit_ids) || ' ' ||
                          (SELECT count(*) FROM (SELECT DISTINCT * FROM unnest(unit_ids, business_days, currency_ids,
                                                                               sales_type_ids, slot_starts)) d)
                     FROM sales_api.mapal_stage ORDER BY staged_at DESC LIMIT 1")" \
    "8 8" "its Mapal slots staged each once: 2 stores x 4 slots of 15 minutes"

# 3e. An administrator's index on the stage tables: the capture then stages
# through the fixed statements (the index is maintained), not by heap_insert
q -c "CREATE INDEX stage_admin_idx ON sales_api.outbox_stage (capture_id)" \
  -c "CREATE INDEX mapal_stage_admin_idx ON sales_api.mapal_stage (capture_id)"
before=$(q -c "SELECT count(*) FROM sales_api.outbox_stage")
q -c "INSERT INTO pos_sales (store, sold_at, net, tax) VALUES (1, '2026-11-22 21:00+00', 7.00, 0.70)"
q -c "INSERT INTO pos_sales (store, sold_at, net, tax)
      SELECT 1 + i % 2, timestamptz '2026-11-22 21:00+00' + i * interval '1 minute', 7, 0.70
        FROM generate_series(1, 3) i"
expect_eq "$(( $(q -c "SELECT count(*) FROM sales_api.outbox_stage") - before ))" 4 \
    "with an index on the stage table, four sales staged as a row each"
before=$(q -c "SELECT count(*) FROM sales_api.outbox_stage")
q -c "SET sales_api.stage_min_rows = 2" -c "INSERT INTO pos_sales (store, sold_at, net, tax)
      SELECT 1 + i % 2, timestamptz '2026-11-22 21:10+00' + i * interval '1 minute', 7, 0.70
        FROM generate_series(1, 3) i" >/dev/null
expect_eq "$(( $(q -c "SELECT count(*) FROM sales_api.outbox_stage") - before ))/$(q -c "SELECT cardinality(sale_keys)
             FROM sales_api.outbox_stage WHERE sale_keys IS NOT NULL ORDER BY staged_at DESC LIMIT 1")" "1/3" \
    "with an index on the stage table, a statement of stage_min_rows staged as one row of arrays"
expect_eq "$(q -c "SET enable_seqscan = off" -c "SELECT count(*) FROM sales_api.outbox_stage WHERE capture_id > 0")" \
    "$(q -c "SELECT count(*) FROM sales_api.outbox_stage")" "the index holds every staged row"
q -c "DROP INDEX sales_api.stage_admin_idx" -c "DROP INDEX sales_api.mapal_stage_admin_idx"

# 4. A backlog of 25,000 single-row statements (more staged rows than the
# worker takes per claim: it takes them in steps, oldest first)
before=$(q -c "SELECT count(*) FROM sales_api.outbox_stage WHERE sale_keys IS NULL")
q -c "DO \$\$ BEGIN FOR i IN 1..25000 LOOP
        INSERT INTO pos_sales (store, sold_at, net, tax)
        VALUES (1 + i % 2, timestamptz '2026-11-23 08:00+00' + i * interval '1 second', 1 + i % 50, 0.05);
      END LOOP; END \$\$"
expect_eq "$(( $(q -c "SELECT count(*) FROM sales_api.outbox_stage WHERE sale_keys IS NULL") - before ))" 25000 \
    "25,000 single-row statements staged as a row each"
kill -CONT "$wpid"
trap - EXIT

wait_for "$(drained)" 180 "the staged sales to be made items and drained"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox_stage")" 0 "nothing left staged"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE state IN ('dead', 'unknown')")" 0 "nothing dead or parked"
python3 "$(dirname "$0")/../lib/compare.py" staged-updates
expect_eq "$(q -c "SELECT string_agg(verdict, ',' ORDER BY location_id, sales_date)
                     FROM sales_api.reconcile_connecteam('connecteam', '2026-11-21', '2026-11-23')")" \
    "match,match,match,match,match,match" "reconciliation matches once delivered"
# 5. A claiming lane takes a large statement's staged parts straight into
# flight under a lease, with no item: the record deletes the parts and
# inserts each sale's item in its final state, so a sale sent at the first
# try is written once in the outbox (before 0.8, made in flight and then
# recorded: twice; made pending and claimed later: three times).  And the
# worker reports its table statistics while it runs (autovacuum reads them):
# they count the items it made without its exiting.
stats() { q -c "SELECT n_tup_ins || ' ' || n_tup_upd FROM pg_stat_user_tables WHERE relid = 'sales_api.outbox'::regclass"; }
restart_worker() {  # a worker's statistics are all sent when it exits
    local pid; pid=$(worker)
    q -d postgres -c "SELECT pg_terminate_backend($pid)" >/dev/null
    wait_for "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)" 30 "the worker to exit"
    wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sales_api worker'" 60 "the worker to be restarted"
}
restart_worker
read -r ins0 upd0 <<<"$(stats)"
maxid=$(q -c "SELECT max(id) FROM sales_api.outbox")
q -c "INSERT INTO pos_sales (store, sold_at, net, tax)
      SELECT 1 + i % 2, timestamptz '2026-11-24 10:00+00' + i * interval '2 seconds', 1 + i % 90, 0.10
        FROM generate_series(1, 3000) i"
wait_for "$(drained)" 120 "the 3,000 sales to drain"
wait_for "SELECT n_tup_ins >= $ins0 + 3000 FROM pg_stat_user_tables WHERE relid = 'sales_api.outbox'::regclass" 30 \
    "the running worker to report the items it made"
pass "the running worker reports its table statistics"
restart_worker
read -r ins1 upd1 <<<"$(stats)"
read -r ct mapal <<<"$(q -F ' ' -c "SELECT count(*) FILTER (WHERE kind = 'ct_post'), count(*) FILTER (WHERE kind = 'mapal_slot')
                                     FROM sales_api.outbox WHERE id > $maxid")"
echo "items made: $ct Connecteam, $mapal Mapal; outbox rows inserted $((ins1 - ins0)), updated $((upd1 - upd0))"
expect_eq "$ct" 3000 "3,000 Connecteam items"
expect_eq "$((ins1 - ins0))" "$((ct + mapal))" "each item inserted once"
# a Mapal marker is made pending, claimed, then recorded: two updates.  A
# Connecteam sale leased and sent is inserted sent, never updated (a part
# that a rate-limit budget or a post of the same sale in flight keeps from
# being leased is made items, each updated when recorded: none here)
ct_upd=$((upd1 - upd0 - 2 * mapal))
[ "$ct_upd" -ge 0 ] && [ "$ct_upd" -lt $((ct / 10)) ] \
    || fail "the Connecteam items were updated $ct_upd times, not inserted in their final state: $ct items"
pass "the Connecteam items were updated $ct_upd times for $ct items: inserted sent, from leased parts"

# 6. A POS transaction that holds a large statement's oldest part (it updated
# a sale of it and stays open) holds back neither that statement's other
# parts nor later sales: the lane takes the parts it can lock
stop_worker() {
    local pid; pid=$(worker)
    for _ in $(seq 1 100); do
        wait_for "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid AND state = 'idle' AND wait_event_type = 'Extension')" 60 "the worker to sleep between cycles"
        kill -STOP "$pid"
        [ "$(q -c "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid AND state = 'idle' AND wait_event_type = 'Extension')")" = t ] && break
        kill -CONT "$pid"
    done
    echo "$pid"
}
wpid=$(stop_worker)
trap 'kill -CONT "$wpid" 2>/dev/null || true' EXIT
first=$(q -c "SELECT last_value + 1 FROM pos_sales_id_seq")
q -c "INSERT INTO pos_sales (store, sold_at, net, tax)
      SELECT 1 + i % 2, timestamptz '2026-11-25 10:00+00' + i * interval '2 seconds', 1 + i % 90, 0.10
        FROM generate_series(1, 2000) i"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox_stage WHERE sale_keys IS NOT NULL")" 4 "2,000 sales staged in four parts"
session_open holder
session_run holder "BEGIN;" "UPDATE pos_sales SET net = net + 1 WHERE id = $first;"
mockctl mark >/dev/null
kill -CONT "$wpid"
trap - EXIT
wait_until '[ "$(mockctl count --since-mark --path /connecteam/sales/v1/transactions --method POST)" -ge 15 ]' 60 \
    "the three parts the open transaction does not hold to be posted"
expect_eq "$(q -c "SELECT state FROM pg_stat_activity WHERE application_name = 'sa_holder'")" "idle in transaction" \
    "the transaction holding the first part was still open"
session_run holder "COMMIT;"
session_close holder
wait_for "$(drained)" 120 "the held part and the update to drain"
python3 "$(dirname "$0")/../lib/compare.py" staged-held-part

echo "staged outbox scenario passed"
