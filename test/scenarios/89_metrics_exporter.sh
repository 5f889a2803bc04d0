#!/usr/bin/env bash
# Metrics for operators (issue 15, point 5): Debian's Prometheus
# postgres_exporter (prometheus-postgres-exporter, installed here when missing
# and run as root) runs contrib/prometheus/sales_api_queries.yaml against the
# test cluster as the least-privilege role of README.md ("Metrics for
# Prometheus": its SQL block is run here as written), over two databases:
#
#   sa_worker     three lanes (Connecteam as postgres, Connecteam as a second
#                 till application's role, Mapal as postgres), with items
#                 sent, dead (a 400 and a 422), failed (503s), pending and
#                 superseded, made through the mock's faults; then both
#                 servers paused, so nothing moves;
#   sa_metrics_b  not served by any worker (sales_api.database = sa_worker):
#                 its staged sales stay staged (a row per sale, and one row of
#                 arrays for a larger statement).
#
# test/lib/metrics_check.py scrapes /metrics with urllib, parses the
# exposition format and checks every series and label against
# outbox_status, lane_status, the tables, worker_stats(), worker_served()
# and connecteam_rate_limit() read just before and after the scrape, and the
# values this scenario made.
. "$(dirname "$0")/../lib/scenario.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
QUERIES=$ROOT/contrib/prometheus/sales_api_queries.yaml
DB_B=sa_metrics_b
MON=sales_api_metrics
POS2=sa_metrics_pos2

# Debian's exporter, installed on demand as test/fuzz/run does for clang (on
# a machine with systemd, the package also starts its own service on :9187)
if ! command -v prometheus-postgres-exporter >/dev/null; then
    [ "$(id -u)" = 0 ] || fail "prometheus-postgres-exporter is not installed (Debian package; run as root to install it)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends prometheus-postgres-exporter >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus-postgres-exporter >/dev/null; } ||
        fail "could not install prometheus-postgres-exporter"
fi
prometheus-postgres-exporter --version 2>&1 | head -1

exporter_pid=
cleanup() {  # every step may fail (nothing to clean yet): never the script's exit status
    if [ -n "$exporter_pid" ]; then
        kill "$exporter_pid" 2>/dev/null || true
        wait "$exporter_pid" 2>/dev/null || true
    fi
    q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB_B WITH (FORCE)" >/dev/null 2>&1 || true
    q -c "SET client_min_messages = warning" -c "DROP EXTENSION IF EXISTS sales_api CASCADE" \
      -c "DROP TABLE IF EXISTS pos_sales2" >/dev/null 2>&1 || true
    for r in $MON $POS2; do
        q -c "SET client_min_messages = warning" -c "DROP OWNED BY $r" -c "DROP ROLE IF EXISTS $r" >/dev/null 2>&1 ||
            q -d postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS $r" >/dev/null 2>&1 || true
    done
    mockctl faults-clear >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

# --- sa_worker: three lanes
scenario_setup
make_locations 2
attach_connecteam
attach_mapal
q <<SQL >/dev/null
CREATE ROLE $POS2;
GRANT USAGE ON FOREIGN SERVER connecteam TO $POS2;
CREATE USER MAPPING FOR $POS2 SERVER connecteam OPTIONS (api_key 'ct-key-123');
-- the test reads connecteam_rate_limit() as each lane's run_as
GRANT USAGE ON SCHEMA sales_api TO $POS2;
GRANT EXECUTE ON FUNCTION sales_api.connecteam_rate_limit(name) TO $POS2;
CREATE TABLE pos_sales2 (LIKE pos_sales INCLUDING DEFAULTS);
ALTER TABLE pos_sales2 ADD PRIMARY KEY (id);
GRANT SELECT ON pos_sales2 TO $POS2;
SET client_min_messages = warning;
SELECT sales_api.attach('pos_sales2', 'connecteam', '{
  "location_id": "store", "sale_type": "kind", "created_at": "sold_at",
  "final_sale_amount": "net", "tax_amount": "tax", "currency": "''EUR''"}', run_as => '$POS2');
SQL
sale() {  # sale TABLE STORE MINUTE [ROWS]: ROWS sales (default 1) at 2026-11-20 10:MINUTE
    q -c "INSERT INTO $1 (id, store, sold_at, net, tax)
          SELECT nextval('pos_sales_id_seq'), $2, '2026-11-20 10:00+00'::timestamptz + interval '$3 min' + i * interval '1 s', 10 + i, 1
            FROM generate_series(1, ${4:-1}) i"
}
ct_ids2="(SELECT id FROM sales_api.capture WHERE relid = 'pos_sales2'::regclass)"

# dead: the first Connecteam post answered 400, the first Mapal request 422
mockctl fault status --path /connecteam/sales/v1/transactions --method POST --status 400 --count 1
mockctl fault status --path /real-time-sales --status 422 --count 1
sale pos_sales 1 0 3
wait_for "$(drained)" 30 "the first sales to be dead-lettered"
# sent
sale pos_sales 2 20 2
sale pos_sales2 1 20 2
wait_for "$(drained)" 30 "sales to be delivered"
# failed: the second role's lane meets 503s, then its server is paused
mockctl fault status --path /connecteam/sales/v1/transactions --method POST --status 503 --count 1000
sale pos_sales2 2 40 1
wait_for "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE capture_id IN $ct_ids2 AND state = 'failed')" 30 \
    "the second lane's sale to fail"
q -c "SELECT sales_api.pause('connecteam')" >/dev/null
wait_for "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox WHERE state = 'in_flight')" 30 "no item in flight"
mockctl faults-clear
# pending and superseded: Connecteam is paused (its staged sales still become items), Mapal sends
sale pos_sales 1 50 3
wait_for "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox_stage)" 30 "the staged sales to become items"
q -c "UPDATE pos_sales SET net = net + 1 WHERE id = (SELECT max(id) FROM pos_sales)"
wait_for "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox_stage) AND NOT EXISTS (
              SELECT 1 FROM sales_api.outbox o JOIN sales_api.capture c ON c.id = o.capture_id
               WHERE c.server_name = 'mapal' AND o.state IN ('pending', 'in_flight', 'failed'))" 30 "Mapal delivered"
# pending Mapal: paused too
q -c "SELECT sales_api.pause('mapal')" >/dev/null
sale pos_sales 2 70 1
wait_for "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox_stage)" 30 "the last staged sale to become an item"
wait_for "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox WHERE state = 'in_flight')" 30 "no item in flight"
qs -c "SELECT * FROM sales_api.outbox_status ORDER BY 1, 2"

# --- sa_metrics_b: a database no worker serves, sales staged
q -d postgres -c "CREATE DATABASE $DB_B" >/dev/null
SA_DB=$DB_B q -v mock_url="$MOCK_URL" <<'SQL' >/dev/null
SET client_min_messages = error;
CREATE EXTENSION sales_api;
\set ct_url :mock_url/connecteam
CREATE SERVER ct_b FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER ct_b OPTIONS (api_key 'ct-key-123');
CREATE TABLE till (id bigserial PRIMARY KEY, store int, sold_at timestamptz, net numeric);
SELECT sales_api.attach('till', 'ct_b', '{"location_id": "store", "created_at": "sold_at",
  "final_sale_amount": "net", "sale_type": "''SALE''", "currency": "''EUR''"}');
SET sales_api.stage_min_rows = 2;
INSERT INTO till (store, sold_at, net) VALUES (1, now(), 5);
INSERT INTO till (store, sold_at, net) SELECT 1, now(), i FROM generate_series(1, 4) i;
SQL

# --- the monitoring role, as README.md grants it: the whole block here, the
# part "in every database" in the other database
python3 - "$ROOT/README.md" "$SA_WORK/metrics-role.sql" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"^```sql\n(.*?)^```", text, re.S | re.M)
role = [b for b in blocks if "CREATE ROLE sales_api_metrics" in b]
assert len(role) == 1, "README.md has %d sql blocks creating sales_api_metrics" % len(role)
open(sys.argv[2], "w").write(role[0])
PY
sed -n '/in every database/,$p' "$SA_WORK/metrics-role.sql" > "$SA_WORK/metrics-grants.sql"
[ -s "$SA_WORK/metrics-grants.sql" ] || fail "README.md's grants say nothing of 'in every database'"
q -f "$SA_WORK/metrics-role.sql" >/dev/null
SA_DB=$DB_B q -f "$SA_WORK/metrics-grants.sql" >/dev/null
# least privilege: no amount, no mapping, no vendor function
for sql in "SELECT final_sale_amount FROM sales_api.outbox LIMIT 1" \
           "SELECT mapping FROM sales_api.capture LIMIT 1" \
           "SELECT * FROM sales_api.connecteam_rate_limit('connecteam')" \
           "SELECT * FROM sales_api.outbox_status" \
           "SELECT last_error FROM sales_api.lane_status" \
           "SELECT * FROM sales_api.lane_status"; do
    out=$(q -c "SET ROLE $MON" -c "$sql" 2>&1) && fail "$MON may run: $sql"
    echo "$out" | grep -q 'permission denied' || fail "$sql as $MON: $out"
done
expect_eq "$(q -c "SELECT count(*) FROM pg_user_mappings WHERE usename = '$MON'")" 0 "$MON has no user mapping"
pass "$MON reads no sales amount, no mapping, no vendor error text, calls no vendor function"

# --- the exporter
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DATA_SOURCE_NAME="host=$PGHOST port=$PGPORT user=$MON dbname=$SA_DB sslmode=disable" \
    prometheus-postgres-exporter --extend.query-path="$QUERIES" --web.listen-address="127.0.0.1:$port" \
    --auto-discover-databases --include-databases="$SA_DB,$DB_B" \
    --disable-default-metrics --disable-settings-metrics --no-collector.database --no-collector.bgwriter \
    > "$SA_WORK/exporter.log" 2>&1 &
exporter_pid=$!
up=
for _ in $(seq 1 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
        "http://127.0.0.1:$port/metrics" 2>/dev/null; then up=1; break; fi
    kill -0 "$exporter_pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$up" ] || { cat "$SA_WORK/exporter.log"; fail "the exporter did not start"; }

l1='datname="sa_worker",server_name="connecteam",run_as="postgres"'
l2="datname=\"sa_worker\",server_name=\"connecteam\",run_as=\"$POS2\""
lm='datname="sa_worker",server_name="mapal",run_as="postgres"'
lb="datname=\"$DB_B\",server_name=\"ct_b\",run_as=\"postgres\""
python3 "$ROOT/test/lib/metrics_check.py" --url "http://127.0.0.1:$port/metrics" --db "$SA_DB" --db "$DB_B" \
    --expect "sales_api_lane_items{$l1,state=\"dead\"}=3" \
    --expect "sales_api_lane_items{$l1,state=\"sent\"}=2" \
    --expect "sales_api_lane_items{$l1,state=\"pending\"}=4" \
    --expect "sales_api_lane_items{$l1,state=\"superseded\"}=1" \
    --expect "sales_api_lane_items{$l2,state=\"sent\"}=2" \
    --expect "sales_api_lane_items{$l2,state=\"failed\"}=1" \
    --expect "sales_api_lane_items{$l2,state=\"pending\"}=0" \
    --expect "sales_api_lane_items{$lm,state=\"dead\"}=1" \
    --expect "sales_api_lane_items{$lm,state=\"pending\"}=1" \
    --expect "sales_api_lane_items{$lb,state=\"staged\"}=5" \
    --expect "sales_api_lane_errors_items{$l1,state=\"dead\",http_status=\"400\"}=3" \
    --expect "sales_api_lane_errors_items{$l2,state=\"failed\",http_status=\"503\"}=1" \
    --expect "sales_api_lane_errors_items{$lm,state=\"dead\",http_status=\"422\"}=1" \
    --expect "sales_api_lane_queue_paused{$l1}=1" \
    --expect "sales_api_lane_queue_paused{$lb}=0" \
    --expect "sales_api_lane_ratelimit_minute_limit{$l2}=100000" \
    --expect "sales_api_worker_up{datname=\"sa_worker\"}=1" \
    --expect "sales_api_worker_up{datname=\"$DB_B\"}=0" \
    --expect "sales_api_worker_served{datname=\"$DB_B\"}=0" \
    --expect "sales_api_worker_served{datname=\"sa_worker\"}=1" \
    --expect "sales_api_lane_waiting_items{$lb,state=\"staged\"}=5" \
    --expect "sales_api_lane_waiting_items{$l1,state=\"pending\"}=4" \
    --expect "sales_api_lane_waiting_items{$l2,state=\"failed\"}=1" \
    --expect "sales_api_lane_waiting_items{$lm,state=\"pending\"}=1" \
    --expect "sales_api_lane_circuit_state{$l1,circuit=\"closed\"}=1" \
    --expect "sales_api_lane_circuit_state{$lb,circuit=\"closed\"}=1" \
    --expect "sales_api_lane_waiting_for_state{$l1,reason=\"paused\"}=1" \
    --expect "sales_api_lane_waiting_for_state{$lm,reason=\"paused\"}=1" \
    --expect "sales_api_lane_waiting_for_state{$lb,reason=\"not_served\"}=1" \
    || { echo "--- exporter log"; tail -20 "$SA_WORK/exporter.log"; fail "the exporter's series differ from the database"; }
grep -E 'level=(error|warn)' "$SA_WORK/exporter.log" && fail "the exporter logged errors"

# a lane whose run_as lost its user mapping: lane_budgets() shows it unknown, and fails nothing
q -c "DROP USER MAPPING FOR $POS2 SERVER connecteam"
expect_eq "$(q -c "SET ROLE $MON" -c "SELECT string_agg(run_as || ':' || (observed_at IS NOT NULL), ',' ORDER BY run_as::text) FROM sales_api.lane_budgets()")" \
    "postgres:true,$POS2:false" "lane_budgets() as $MON after the second lane's mapping was dropped"
echo "metrics exporter scenario passed"
