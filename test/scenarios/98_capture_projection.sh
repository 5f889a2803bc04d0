#!/usr/bin/env bash
# A capture statement of few rows is evaluated without the executor
# (capture.c, owner_project(): the kept plan's target list compiled into a
# projection, under the table owner's rights, at each POS statement).  It
# must give what the statement through SPI gives, with the same rights:
#   1. auto_explain (log_nested_statements, at NOTICE) shows which path ran:
#      none for single rows of a plain mapping; SPI for a 1,000-row statement,
#      for a mapping with a subquery and for one with a whole-row reference;
#   2. the mapping's functions run as the table owner, never the POS role,
#      and a lookup the POS role cannot read works through the subquery;
#   3. one session (its plans kept): a function replaced by the owner (a
#      PL/pgSQL one, and a SQL one the planner inlines) is used at the next
#      statement; EXECUTE revoked from the owner fails the next statement
#      (42501) and stages nothing; granted again, it works; so after a
#      column's type changed, and when the owner loses the role through
#      which it could execute the inlined function (REVOKE role FROM owner,
#      which PostgreSQL's plan cache does not replan for);
#   4. an error in the mapping (22012) names the statement (CONTEXT) and
#      stages nothing; statements of ten rows (INSERT, UPDATE, DELETE) stage
#      the values and slots SQL computes;
#   5. 1,000 sales as single-row statements and the same 1,000 in one
#      statement stage the same values, Connecteam's and Mapal's.
# In a database no worker serves, so the staged rows stay to be read.
. "$(dirname "$0")/../lib/scenario.sh"
DB=sa_projection
qd() { $PSQL -X -q -v ON_ERROR_STOP=1 -At -d "$DB" "$@"; }

q -d postgres >/dev/null <<SQL
SET client_min_messages = warning;
DROP DATABASE IF EXISTS $DB;
DROP ROLE IF EXISTS regress_pj_owner;
DROP ROLE IF EXISTS regress_pj_pos;
DROP ROLE IF EXISTS regress_pj_grp;
CREATE ROLE regress_pj_owner;
CREATE ROLE regress_pj_pos;
CREATE ROLE regress_pj_grp;
CREATE DATABASE $DB;
SQL
trap 'q -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "DROP ROLE IF EXISTS regress_pj_owner" \
        -c "DROP ROLE IF EXISTS regress_pj_pos" -c "DROP ROLE IF EXISTS regress_pj_grp" >/dev/null 2>&1 || true' EXIT

qd -v mock_url="$MOCK_URL" >/dev/null <<'SQL'
SET client_min_messages = error;
CREATE EXTENSION sales_api;
\set ct_url :mock_url/connecteam
\set token_url :mock_url/connect/token
\set sales_url :mock_url/mapal-sales
CREATE SERVER connecteam FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE SERVER mapal FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url :'token_url',
    sales_url :'sales_url', timezone 'UTC', slot_minutes '15');
CREATE SCHEMA pj AUTHORIZATION regress_pj_owner;
GRANT USAGE ON SCHEMA pj TO regress_pj_pos;
SET ROLE regress_pj_owner;
CREATE FUNCTION pj.who() RETURNS text LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN current_user::text; END $$;
CREATE FUNCTION pj.amount(x numeric) RETURNS numeric LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN x * 2; END $$;
-- a SQL function the planner inlines (when the owner may execute it)
CREATE FUNCTION pj.tax(x numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT x / 10';
REVOKE EXECUTE ON FUNCTION pj.who(), pj.amount(numeric), pj.tax(numeric) FROM PUBLIC;
CREATE TABLE pj.stores (store integer PRIMARY KEY, location bigint NOT NULL);
INSERT INTO pj.stores VALUES (1, 9001), (2, 9002), (3, 9003);
CREATE TABLE pj.sales (id bigint PRIMARY KEY, store integer NOT NULL, sold_at timestamptz NOT NULL,
                       channel text NOT NULL DEFAULT 'EAT_IN', net numeric(12,2) NOT NULL,
                       qty integer NOT NULL DEFAULT 1);
CREATE TABLE pj.sales_sub (LIKE pj.sales INCLUDING ALL);
CREATE TABLE pj.sales_row (LIKE pj.sales INCLUDING ALL);
GRANT INSERT ON pj.sales, pj.sales_sub, pj.sales_row TO regress_pj_pos;
GRANT SELECT, UPDATE, DELETE ON pj.sales TO regress_pj_pos;
RESET ROLE;
SELECT sales_api.attach('pj.sales', 'connecteam', '{"location_id": "store", "sale_type": "pj.who()",
  "created_at": "sold_at", "final_sale_amount": "pj.amount(net) / qty", "tax_amount": "pj.tax(net)",
  "currency": "''EUR''"}');
SELECT sales_api.attach('pj.sales', 'mapal', '{"unit_id": "1000 + store", "sold_at": "sold_at",
  "currency_id": "''EUR''", "sales_type_id": "pj.who()", "net_sales": "net", "gross_sales": "net"}');
SELECT sales_api.attach('pj.sales_sub', 'connecteam', '{"location_id":
  "(SELECT t.location FROM pj.stores t WHERE t.store = s.store)", "sale_type": "pj.who()",
  "created_at": "sold_at", "final_sale_amount": "net"}');
SELECT sales_api.attach('pj.sales_row', 'connecteam', '{"location_id": "store",
  "sale_type": "pg_catalog.length(s::text)::text", "created_at": "sold_at", "final_sale_amount": "net"}');
SQL
cap() { qd -c "SELECT c.id FROM sales_api.capture c JOIN pg_foreign_server fs ON fs.oid = c.server_id
                WHERE c.relid = '$1'::regclass AND fs.srvname = '$2' AND c.detached_at IS NULL"; }
CT=$(cap pj.sales connecteam); MP=$(cap pj.sales mapal); SUB=$(cap pj.sales_sub connecteam); ROW=$(cap pj.sales_row connecteam)
[ -n "$CT" ] && [ -n "$MP" ] && [ -n "$SUB" ] && [ -n "$ROW" ] || fail "the captures were not attached"

# auto_explain at NOTICE: each statement the executor runs inside the trigger prints its plan
EXPLAIN="LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;
         SET auto_explain.log_level = notice;"
# the statements over a transition table that auto_explain printed (the executor ran them)
ran() { echo "$out" | grep "^Query Text:" | grep "FROM sales_api_$1 AS s" || true; }
sale() { echo "INSERT INTO pj.$1 (id, store, sold_at, net, qty) VALUES ($2, 1 + $2 % 3, '2026-11-30 08:00+00'::timestamptz + $2 * interval '7 minutes', $2 % 50 + 0.25, ${3:-1});"; }

# --- 1. which path ran
out=$(qd 2>&1 <<SQL
$EXPLAIN
SET ROLE regress_pj_pos;
$(sale sales 1)
$(sale sales 2)
SQL
) || fail "single-row inserts failed: $out"
echo "$out" | grep -q "Insert on sales" || fail "auto_explain printed no plan: $out"
[ -n "$(ran new)" ] && fail "a single-row statement of a plain mapping went through the executor: $out"
pass "single rows of a plain mapping: no statement through the executor"
out=$(qd 2>&1 <<SQL
$EXPLAIN
SET ROLE regress_pj_pos;
$(sale sales_sub 1)
$(sale sales_row 1)
SQL
) || fail "single-row inserts failed: $out"
ran new | grep -q "FROM pj.stores t" \
    || fail "the mapping with a subquery did not go through SPI: $out"
ran new | grep -q "length(s::text)" \
    || fail "the mapping with a whole-row reference did not go through SPI: $out"
echo "$out" | grep -q "SubPlan" || fail "no subquery in the plan of the subquery mapping: $out"
pass "a subquery or a whole-row reference: the statement through SPI"

# --- 2. the owner's rights, on both paths
expect_eq "$(qd -c "SELECT string_agg(DISTINCT sale_type, ',') FROM sales_api.outbox_stage WHERE capture_id IN ($CT, $SUB)")" \
    regress_pj_owner "the Connecteam mapping's function ran as the table owner"
expect_eq "$(qd -c "SELECT string_agg(DISTINCT t, ',') FROM sales_api.mapal_stage, unnest(sales_type_ids) t WHERE capture_id = $MP")" \
    regress_pj_owner "the Mapal mapping's function ran as the table owner"
expect_eq "$(qd -c "SELECT location_id FROM sales_api.outbox_stage WHERE capture_id = $SUB")" 9002 \
    "the lookup the POS role cannot read, through the subquery"
expect_eq "$(qd -c "SELECT sale_type = (SELECT length(s::text)::text FROM pj.sales_row s) FROM sales_api.outbox_stage WHERE capture_id = $ROW")" \
    t "the whole-row reference"
expect_eq "$(qd -c "SELECT string_agg(final_sale_amount::numeric(12,2)::text, ',' ORDER BY sale_key) FROM sales_api.outbox_stage WHERE capture_id = $CT")" \
    "2.50,4.50" "the amounts of the first two sales (the function doubles them)"

# --- 3. one session: a replaced function, then EXECUTE revoked and granted again
out=$(qd -v ON_ERROR_STOP=0 2>&1 <<SQL
$EXPLAIN
SET ROLE regress_pj_pos;
$(sale sales 3)
RESET ROLE;
SET ROLE regress_pj_owner;
CREATE OR REPLACE FUNCTION pj.amount(x numeric) RETURNS numeric LANGUAGE plpgsql STABLE AS \$\$ BEGIN RETURN x * 3; END \$\$;
CREATE OR REPLACE FUNCTION pj.tax(x numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT x / 5';
RESET ROLE;
SET ROLE regress_pj_pos;
$(sale sales 4)
RESET ROLE;
REVOKE EXECUTE ON FUNCTION pj.amount(numeric) FROM regress_pj_owner;
SET ROLE regress_pj_pos;
\set VERBOSITY verbose
$(sale sales 5)
\set VERBOSITY default
RESET ROLE;
GRANT EXECUTE ON FUNCTION pj.amount(numeric) TO regress_pj_owner;
SET ROLE regress_pj_pos;
$(sale sales 6)
RESET ROLE;
ALTER TABLE pj.sales ALTER COLUMN store TYPE bigint, ALTER COLUMN net TYPE numeric(14,3);
SET ROLE regress_pj_pos;
$(sale sales 8)
RESET ROLE;
REVOKE EXECUTE ON FUNCTION pj.tax(numeric) FROM regress_pj_owner;
SET ROLE regress_pj_pos;
$(sale sales 9)
RESET ROLE;
GRANT EXECUTE ON FUNCTION pj.tax(numeric) TO regress_pj_grp;
GRANT regress_pj_grp TO regress_pj_owner;
SET ROLE regress_pj_pos;
$(sale sales 10)
RESET ROLE;
REVOKE regress_pj_grp FROM regress_pj_owner;
SET ROLE regress_pj_pos;
$(sale sales 11)
RESET ROLE;
GRANT EXECUTE ON FUNCTION pj.tax(numeric) TO regress_pj_owner;
SQL
)
echo "$out" | grep -E "(ERROR|CONTEXT):" || true
echo "$out" | grep -q "42501.*permission denied for function amount" \
    || fail "the sale after EXECUTE was revoked from the owner was not refused: $out"
echo "$out" | grep -q "permission denied for function tax" \
    || fail "the sale after EXECUTE on the inlined SQL function was revoked from the owner was not refused: $out"
[ "$(echo "$out" | grep -c "permission denied for function tax")" -ge 2 ] \
    || fail "the sale after the owner lost the role through which it could execute the inlined function was not refused: $out"
expect_eq "$(qd -c "SELECT string_agg(s.id::text, ',' ORDER BY s.id) FROM pj.sales s WHERE s.id IN (10, 11)")" 10 \
    "the sale while the owner had the role is in the table, the one after it lost it is not"
expect_eq "$(qd -c "SELECT string_agg(sale_key || '=' || tax_amount::numeric(12,2), ',' ORDER BY sale_key) FROM sales_api.outbox_stage
                    WHERE capture_id = $CT AND sale_key IN ('10', '11')")" "10=2.05" \
    "the inlined function through the role, then nothing once the role was revoked"
[ "$(echo "$out" | grep -c "Insert on sales")" -ge 4 ] || fail "auto_explain printed fewer plans than expected: $out"
[ -n "$(ran new)" ] && fail "a single-row statement went through the executor in this session: $out"
expect_eq "$(qd -c "SELECT string_agg(sale_key || '=' || tax_amount::numeric(12,2), ',' ORDER BY sale_key) FROM sales_api.outbox_stage
                    WHERE capture_id = $CT AND sale_key IN ('3', '4', '8', '9')")" "3=0.33,4=0.85,8=1.65" \
    "the inlined SQL function: its first body, its replacement, nothing while revoked"
expect_eq "$(qd -c "SELECT string_agg(sale_key || '=' || final_sale_amount::numeric(12,2), ',' ORDER BY sale_key) FROM sales_api.outbox_stage
                    WHERE capture_id = $CT AND sale_key IN ('3', '4', '5', '6', '8')")" "3=6.50,4=12.75,6=18.75,8=24.75" \
    "one session: the old function, the replaced one, nothing while revoked, the function again once granted, then columns of other types"
expect_eq "$(qd -c "SELECT location_id FROM sales_api.outbox_stage WHERE capture_id = $CT AND sale_key = '8'")" 3 \
    "the store, a bigint column now"
expect_eq "$(qd -c "SELECT count(*) FROM pj.sales WHERE id = 5")" 0 "the refused sale is not in the table"

# --- 4. an error in the mapping
out=$(qd -v ON_ERROR_STOP=0 2>&1 <<SQL
$EXPLAIN
SET ROLE regress_pj_pos;
\set VERBOSITY verbose
$(sale sales 7 0)
SQL
)
[ -n "$(ran new)" ] && fail "the failing sale went through the executor: $out"
echo "$out" | grep -E "(ERROR|CONTEXT):" || true
echo "$out" | grep -q "22012" || fail "not a division by zero: $out"
echo "$out" | grep -q 'CONTEXT:  SQL statement "SELECT .*pj.amount(net) / qty' \
    || fail "the error does not name the mapping's statement: $out"
expect_eq "$(qd -c "SELECT count(*) FROM sales_api.outbox_stage WHERE sale_key = '7'")" 0 "nothing staged for the failed sale"
pass "an error in the mapping names its statement"

# --- 4b. statements of ten rows: INSERT, UPDATE, DELETE (the old rows through the projection too)
t0=$(qd -c "SELECT clock_timestamp()")
OLD_ROWS="SELECT 1 + i % 3 AS store, '2026-11-30 12:00+00'::timestamptz + i * interval '4 minutes' AS t FROM generate_series(20, 29) i"
out=$(qd 2>&1 <<SQL
$EXPLAIN
SET ROLE regress_pj_pos;
INSERT INTO pj.sales (id, store, sold_at, net, qty)
SELECT i, 1 + i % 3, '2026-11-30 12:00+00'::timestamptz + i * interval '4 minutes', i + 0.5, 1 FROM generate_series(20, 29) i;
UPDATE pj.sales SET sold_at = sold_at + interval '1 hour', net = net + 1 WHERE id BETWEEN 20 AND 29;
SQL
) || fail "the ten-row statements failed: $out"
[ "$(echo "$out" | grep -c "Insert on sales\|Update on sales")" -ge 2 ] || fail "auto_explain printed no plan: $out"
[ -n "$(ran new)" ] && fail "a ten-row statement's new rows went through the executor: $out"
ran old | grep -vq "array_agg" && fail "a ten-row statement's old rows went through the executor: $out"
expect_eq "$(qd -c "SELECT count(*) FROM sales_api.outbox_stage a JOIN pj.sales s ON a.sale_key = s.id::text
                    WHERE a.capture_id = $CT AND s.id BETWEEN 20 AND 29 AND a.created_at = s.sold_at
                      AND a.final_sale_amount = s.net * 3 AND a.tax_amount = s.net / 5 AND a.location_id = s.store")" 10 \
    "the UPDATE staged the ten new versions"
out=$(qd 2>&1 <<SQL
$EXPLAIN
SET ROLE regress_pj_pos;
DELETE FROM pj.sales WHERE id BETWEEN 20 AND 29;
SQL
) || fail "the ten-row DELETE failed: $out"
ran old | grep -vq "array_agg" && fail "the DELETE's old rows went through the executor: $out"
expect_eq "$(qd -c "SELECT string_agg(DISTINCT (u - 1000) || '@' || sl, ',') FROM sales_api.mapal_stage m,
                        unnest(m.unit_ids, m.slot_starts) x(u, sl) WHERE m.capture_id = $MP AND m.staged_at >= '$t0'")" \
          "$(qd -c "SELECT string_agg(DISTINCT store || '@' || date_bin('15 minutes', t AT TIME ZONE 'UTC', '2000-01-01'), ',')
                      FROM ($OLD_ROWS UNION ALL SELECT store, t + interval '1 hour' FROM ($OLD_ROWS) o) x")" \
    "Mapal: the slots the INSERT, UPDATE and DELETE touched, old and new"
expect_eq "$(qd -c "SELECT count(*) FROM sales_api.mapal_stage WHERE capture_id = $MP AND staged_at >= '$t0'")" 4 \
    "Mapal: a stage row for the INSERT, two for the UPDATE (old and new), one for the DELETE"

# --- 5. the same 1,000 sales one at a time and in one statement
qd -c "TRUNCATE pj.sales, sales_api.outbox_stage, sales_api.mapal_stage" >/dev/null
ROW_OF='1 + i % 3, '"'"'2026-11-30 06:00+00'"'"'::timestamptz + i * interval '"'"'83 seconds'"'"', (i % 97) + 0.35, 1 + i % 4'
qd >/dev/null <<SQL
SET ROLE regress_pj_pos;
DO \$\$ BEGIN
  FOR i IN 1..1000 LOOP
    INSERT INTO pj.sales (id, store, sold_at, net, qty) VALUES (i, $ROW_OF);
  END LOOP; END \$\$;
SQL
out=$(qd 2>&1 <<SQL
SET sales_api.stage_min_rows = 100000;
$EXPLAIN
SET ROLE regress_pj_pos;
INSERT INTO pj.sales (id, store, sold_at, net, qty) SELECT 100000 + i, $ROW_OF FROM generate_series(1, 1000) i;
SQL
) || fail "the 1,000-row statement failed: $out"
[ -n "$(ran new)" ] || fail "the 1,000-row statement did not go through SPI: $out"
expect_eq "$(qd -c "SELECT count(*) FROM sales_api.outbox_stage WHERE capture_id = $CT AND sale_key IS NOT NULL")" 2000 \
    "2,000 sales staged a row each"
expect_eq "$(qd <<SQL
SELECT count(*) FROM sales_api.outbox_stage a JOIN sales_api.outbox_stage b
    ON b.capture_id = a.capture_id AND b.sale_key = (100000 + a.sale_key::bigint)::text
 WHERE a.capture_id = $CT AND a.sale_key::bigint < 100000
   AND (a.location_id, a.sale_type, a.created_at, a.final_sale_amount, a.tax_amount, a.currency)
       IS NOT DISTINCT FROM (b.location_id, b.sale_type, b.created_at, b.final_sale_amount, b.tax_amount, b.currency)
SQL
)" 1000 "each single-row sale staged the values of its twin of the 1,000-row statement"
expect_eq "$(qd -c "SELECT count(*) FROM sales_api.outbox_stage a JOIN pj.sales s ON s.id = a.sale_key::bigint
                    WHERE a.capture_id = $CT AND a.final_sale_amount = s.net * 3 / s.qty AND a.sale_type = 'regress_pj_owner'
                      AND a.location_id = s.store AND a.created_at = s.sold_at AND a.currency = 'EUR'")" 2000 \
    "every staged sale holds the mapping's values"
slots() {
    qd -c "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM (SELECT DISTINCT u, d, c, t, sl
             FROM sales_api.mapal_stage m, unnest(m.unit_ids, m.business_days, m.currency_ids, m.sales_type_ids, m.slot_starts)
                  AS x(u, d, c, t, sl)
            WHERE m.capture_id = $MP AND m.unit_ids <> '{}' AND ($1)) x"
}
single=$(slots "cardinality(m.unit_ids) = 1")
bulk=$(slots "cardinality(m.unit_ids) > 1")
expect_eq "$(qd -c "SELECT count(*) FROM sales_api.mapal_stage WHERE capture_id = $MP")" 1001 \
    "Mapal: a stage row per single-row statement and one for the 1,000-row statement"
expect_eq "$single" "$bulk" "Mapal: the single-row statements touched the slots the 1,000-row statement touched"
pass "direct and SPI evaluation stage the same values"
