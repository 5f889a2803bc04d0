# test/lib/scenario.sh: helpers for the scenario tests (test/scenarios/*.sh).
# They run against the cluster and mock started by test/run-tests (or
# test/with-env), in the database the worker drains (sales_api.database).
set -euo pipefail
SA_DB=${SA_DB:-sa_worker}
PSQL=${PSQL:-psql}

q()  { $PSQL -X -q -v ON_ERROR_STOP=1 -At -d "$SA_DB" "$@"; }   # quiet, tuples only
qs() { $PSQL -X -q -v ON_ERROR_STOP=1 -d "$SA_DB" "$@"; }       # with headers

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# wait_for "SQL returning true" SECONDS [what]
wait_for() {
    local sql=$1 limit=${2:-60} what=${3:-$1} i=0
    while [ "$(q -c "$sql")" != "t" ]; do
        i=$((i + 1))
        if [ "$i" -gt $((limit * 5)) ]; then
            echo "timed out after ${limit}s waiting for: $what" >&2
            qs -c "SELECT * FROM sales_api.outbox_status ORDER BY 1, 2" >&2 || true
            return 1
        fi
        sleep 0.2
    done
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
    if [ "$1" = "$2" ]; then pass "$3 ($1)"; else fail "$3: got '$1', expected '$2'"; fi
}

# A fresh database with the extension, a POS sales table, and servers for
# both vendors pointing at the mock.  The worker (sales_api.database = sa_worker)
# picks it up on its next cycle.
scenario_setup() {
    mockctl reset >/dev/null
    # Mapal units 1001..1010 (the mock knows 1001..1003 by default)
    mockctl config mapal_units="$(python3 -c 'import json; print(json.dumps({str(u): {"currencies": ["EUR"], "salesTypes": ["EAT_IN", "TAKE", "DELIVERY"]} for u in range(1001, 1011)}))')" >/dev/null
    q -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$SA_DB' AND pid <> pg_backend_pid() AND backend_type = 'client backend'" >/dev/null
    q -c "DROP EXTENSION IF EXISTS sales_api CASCADE" >/dev/null 2>&1 || true
    q -c "DROP TABLE IF EXISTS pos_sales CASCADE" >/dev/null
    q -v mock_url="$MOCK_URL" <<'SQL'
CREATE EXTENSION sales_api;
\set token_url :mock_url/connect/token
\set sales_url :mock_url/mapal-sales
\set cashrec_url :mock_url/cashrec
\set ct_url :mock_url/connecteam
CREATE SERVER mapal FOREIGN DATA WRAPPER sales_api OPTIONS (
    vendor 'mapal', token_url :'token_url', sales_url :'sales_url', cashrec_url :'cashrec_url',
    timezone 'UTC', slot_minutes '15');
CREATE USER MAPPING FOR CURRENT_USER SERVER mapal
    OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE SERVER connecteam FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER connecteam OPTIONS (api_key 'ct-key-123');
CREATE TABLE pos_sales (
    id        bigserial PRIMARY KEY,
    store     integer NOT NULL,        -- Connecteam location id and Mapal unit id
    sold_at   timestamptz NOT NULL,
    kind      text NOT NULL DEFAULT 'SALE',
    channel   text NOT NULL DEFAULT 'EAT_IN',
    net       numeric(12,2) NOT NULL,
    tax       numeric(12,2) NOT NULL DEFAULT 0,
    guests    integer NOT NULL DEFAULT 1
);
SQL
}

# Connecteam locations in the mock for stores 1..N (ids are assigned 1, 2, ...)
make_locations() {
    local n=$1
    for i in $(seq 1 "$n"); do mockctl ct-add-location "store $i" >/dev/null; done
}

attach_connecteam() {
    q <<'SQL' >/dev/null
SELECT sales_api.attach('pos_sales', 'connecteam', '{
  "location_id": "store", "sale_type": "kind", "created_at": "sold_at",
  "final_sale_amount": "net", "tax_amount": "tax", "currency": "''EUR''"}');
SQL
}

attach_mapal() {
    q <<'SQL' >/dev/null
SELECT sales_api.attach('pos_sales', 'mapal', '{
  "unit_id": "1000 + store", "sold_at": "sold_at", "currency_id": "''EUR''",
  "sales_type_id": "channel", "net_sales": "net", "gross_sales": "net + tax",
  "num_guests": "guests"}');
SQL
}

# Everything delivered: no item waiting, in flight or failed, and no staged
# sale (0.6) still to be made an item.
drained() {
    if [ "$(q -c "SELECT to_regclass('sales_api.outbox_stage') IS NOT NULL")" = t ]; then
        echo "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox WHERE state IN ('pending', 'in_flight', 'failed'))" \
             "AND NOT EXISTS (SELECT 1 FROM sales_api.outbox_stage)" \
             "AND (to_regclass('sales_api.mapal_stage') IS NULL OR NOT EXISTS (SELECT 1 FROM sales_api.mapal_stage))"
    else
        echo "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox WHERE state IN ('pending', 'in_flight', 'failed'))"
    fi
}
