#!/usr/bin/env bash
# DROP EXTENSION sales_api CASCADE on a database with an attached POS table:
# afterwards the POS table must still take sales (the capture triggers go
# with the extension), and CREATE EXTENSION + attach() must work again.
# Runs in a database of its own, so the worker's database is left alone.
. "$(dirname "$0")/../lib/scenario.sh"
DB=sa_drop_test
q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
trap 'q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true' EXIT
SA_DB=$DB
setup() {
    q <<'SQL' >/dev/null
CREATE EXTENSION sales_api;
CREATE SERVER connecteam FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam');
CREATE USER MAPPING FOR CURRENT_USER SERVER connecteam OPTIONS (api_key 'ct-key-123');
CREATE TABLE IF NOT EXISTS pos_sales (id bigserial PRIMARY KEY, store int, sold_at timestamptz, net numeric);
SELECT sales_api.attach('pos_sales', 'connecteam', '{"location_id": "store", "sale_type": "''SALE''",
    "created_at": "sold_at", "final_sale_amount": "net"}');
SQL
}
setup
q -c "DROP EXTENSION sales_api CASCADE" 2>&1 | grep -v NOTICE || true
echo "left behind in schema sales_api: $(q -c "SELECT string_agg(proname, ', ' ORDER BY proname) FROM pg_proc WHERE pronamespace = 'sales_api'::regnamespace")"
echo "triggers left on pos_sales: $(q -c "SELECT string_agg(tgname, ', ' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'pos_sales'::regclass")"
if q -c "INSERT INTO pos_sales (store, sold_at, net) VALUES (1, now(), 1.00)" 2>/tmp/sa_drop_err.$$; then
    pass "the POS table takes sales after DROP EXTENSION"
else
    cat /tmp/sa_drop_err.$$; rm -f /tmp/sa_drop_err.$$
    fail "an INSERT into the POS table fails after DROP EXTENSION sales_api CASCADE"
fi
if setup 2>/tmp/sa_drop_err.$$; then
    pass "CREATE EXTENSION and attach() work again"
else
    cat /tmp/sa_drop_err.$$; rm -f /tmp/sa_drop_err.$$
    fail "attach() fails after the extension was dropped and created again"
fi
rm -f /tmp/sa_drop_err.$$
