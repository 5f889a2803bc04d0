#!/usr/bin/env bash
# A version names one schema, however it was installed.
#
#  1. CREATE EXTENSION sales_api (the install script built from
#     sql/sales_api.sql) in one database, and version 0.1 updated through every
#     released upgrade script in another: test/lib/schema_snapshot.sql dumps
#     every object of the extension in both, and the two dumps must be equal.
#  2. The comparison fails when they differ: each deliberate divergence below,
#     made in a transaction that is rolled back, must show in the diff.
#  3. Queued work crosses the update: version $WORK_FROM (a release) with work
#     in every state, written as that release's triggers and worker would,
#     then ALTER EXTENSION sales_api UPDATE to the default version.  Every
#     item is still there, in the same state with the same data; a staged
#     sale is still staged, or has become the pending post the worker would
#     have made of it, and a staged Mapal slot is still staged, or has a
#     pending marker; the captures still capture, and the schema equals the
#     fresh one.  The comparison of the work, like that of the schemas, first
#     shows that it sees a change of each kind.
#
# These databases are not the worker's (sales_api.database = sa_worker): the
# work made here by hand, as the worker would, is never sent.
. "$(dirname "$0")/../lib/scenario.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SNAPSHOT_SQL=$ROOT/test/lib/schema_snapshot.sql

# The release whose queued work part 3 updates.  The work is written in its
# layout (outbox, outbox_stage, mapal_stage); after a release, move this to
# that release and the SQL below with it.
WORK_FROM=0.7.0
# Columns whose values the update may change or drop ("table.column"), each
# with its reason; an update that drops capture.recompute_sql, say, lists it
# here.  A column it adds needs nothing.  (0.6 to 0.7.0 listed
# capture.recompute_sql and capture.window_sql: 0.7.0 keeps no statement
# built from a mapping.)  0.8.0 changes no table.
MAY_CHANGE=()

FRESH=sa_schema_fresh
CHAIN=sa_schema_chain
WORK=sa_schema_work
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

new_db() {
    q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
    q -d postgres -c "CREATE DATABASE $1" >/dev/null
}
# snapshot DB FILE [SQL...]: the snapshot, after the statements SQL... made in
# a transaction that is rolled back afterwards (the database is left as it was)
snapshot() {
    local db=$1 file=$OUT/$2 pre=() post=() s
    shift 2
    if [ $# -gt 0 ]; then
        pre=(-c BEGIN)
        for s in "$@"; do pre+=(-c "$s"); done
        post=(-c ROLLBACK)
    fi
    $PSQL -X -q -At -v ON_ERROR_STOP=1 -d "$db" "${pre[@]}" -f "$SNAPSHOT_SQL" "${post[@]}" > "$file" ||
        fail "could not take a snapshot of $db"
}
# same A B WHAT: two snapshots are equal, else the test fails with their diff
same() {
    if diff -u --label "$1" --label "$2" "$OUT/$1" "$OUT/$2" > "$OUT/diff"; then
        pass "$3"
    else
        cat "$OUT/diff"
        fail "$3: the snapshots differ (above)"
    fi
}

DEFAULT=$(q -d postgres -c "SELECT default_version FROM pg_available_extensions WHERE name = 'sales_api'")
[ -n "$DEFAULT" ] || fail "sales_api is not installed"
# Without an install script of its own, CREATE EXTENSION of the default
# version would replay the upgrade chain, and part 1 would compare the chain
# with itself.
SHAREDIR=$(pg_config --sharedir)
[ -f "$SHAREDIR/extension/sales_api--$DEFAULT.sql" ] ||
    fail "no install script sales_api--$DEFAULT.sql in $SHAREDIR/extension (the Makefile builds it from sql/sales_api.sql)"
pass "the default version $DEFAULT has its own install script"

#
# 1. Fresh install = 0.1 and every upgrade script
#
new_db "$FRESH"
q -d "$FRESH" -c "CREATE EXTENSION sales_api"
new_db "$CHAIN"
q -d "$CHAIN" -c "CREATE EXTENSION sales_api VERSION '0.1'"
expect_eq "$(q -d "$CHAIN" -c "SELECT extversion FROM pg_extension WHERE extname = 'sales_api'")" 0.1 "the chain starts at 0.1"
q -d "$CHAIN" -c "ALTER EXTENSION sales_api UPDATE"
expect_eq "$(q -d "$CHAIN" -c "SELECT extversion FROM pg_extension WHERE extname = 'sales_api'")" "$DEFAULT" \
    "0.1 updated through the chain to the default version"

snapshot "$FRESH" fresh
snapshot "$CHAIN" chain
# a snapshot that holds nothing would make any two equal
for what in "^extension .*\"version\": \"$DEFAULT\"" '^relation sales_api\.outbox ' '^column sales_api\.outbox 1 id ' \
            '^CREATE OR REPLACE FUNCTION sales_api\.attach\(' '^index CREATE UNIQUE INDEX outbox_mapal_dirty_idx ' \
            '^trigger CREATE TRIGGER capture_deleted ' '^member foreign-data wrapper sales_api$' \
            '^initial privileges table sales_api\.outbox ' '^dump config sales_api\.outbox ' '^schema .*"acl"'; do
    grep -qE "$what" "$OUT/fresh" || fail "the snapshot has no line matching $what"
done
nfunc=$(q -d "$FRESH" -c "SELECT count(*) FROM pg_proc WHERE pronamespace = 'sales_api'::regnamespace")
expect_eq "$(grep -c '^function ' "$OUT/fresh")" "$nfunc" "the snapshot holds every function of the schema"
pass "the snapshot holds $(wc -l < "$OUT/fresh") lines"
same fresh chain "a fresh install and the upgrade chain define the same objects"

#
# 2. The comparison sees a difference of each kind
#
# diverges WHAT REGEX SQL...: with SQL made in the chain's database, the
# snapshots differ, on a line matching REGEX
diverges() {
    local what=$1 re=$2
    shift 2
    snapshot "$CHAIN" diverged "$@"
    if diff -u --label chain --label "chain + $what" "$OUT/chain" "$OUT/diverged" > "$OUT/diff"; then
        fail "the comparison misses $what: $*"
    fi
    grep -E '^[-+][^-+]' "$OUT/diff" | grep -qE "$re" || { cat "$OUT/diff"; fail "the diff of $what has no line matching $re"; }
    echo "-- $what: $(printf '%s' "$1" | head -1)$([ "$(printf '%s\n' "$@" | wc -l)" -gt 1 ] && echo ' ...')"
    grep -E '^[-+][^-+]' "$OUT/diff" | cut -c1-300
    pass "the comparison sees $what"
}
diverges "a column default" '^\+column sales_api\.outbox 17 attempts .*"default": "1"' \
    "ALTER TABLE sales_api.outbox ALTER COLUMN attempts SET DEFAULT 1"
diverges "a grant on the schema" '^\+schema .*"=U/postgres"' \
    "GRANT USAGE ON SCHEMA sales_api TO PUBLIC"
diverges "a grant on a function" '^\+function sales_api\.attach\(.*"=X/postgres"' \
    "GRANT EXECUTE ON FUNCTION sales_api.attach(regclass, name, jsonb, text, regrole) TO PUBLIC"
diverges "a grant on a table" '^\+relation sales_api\.outbox_stage .*"=r/postgres"' \
    "GRANT SELECT ON sales_api.outbox_stage TO PUBLIC"
diverges "a function body" "^\+     WHERE state IN \('sent'\) AND" \
    "$(q -d "$CHAIN" -c "SELECT replace(pg_get_functiondef('sales_api.purge_sent(interval)'::regprocedure),
                                        'IN (''sent'', ''superseded'')', 'IN (''sent'')')")"
diverges "a function property" '^\+function sales_api\._stage_expand\(.*"volatility": "s"' \
    "ALTER FUNCTION sales_api._stage_expand(integer, boolean, text[], integer) STABLE"
diverges "a comment" '^\+comment table sales_api\.outbox: changed' \
    "COMMENT ON TABLE sales_api.outbox IS 'changed'"
diverges "a constraint" '^-constraint sales_api\.outbox outbox_kind_check ' \
    "ALTER TABLE sales_api.outbox DROP CONSTRAINT outbox_kind_check"
diverges "an index" '^-index CREATE INDEX outbox_sent_idx ' \
    "DROP INDEX sales_api.outbox_sent_idx"
diverges "a trigger" '^\+trigger CREATE TRIGGER capture_deleted .*"enabled": "D"' \
    "ALTER TABLE sales_api.capture DISABLE TRIGGER capture_deleted"
diverges "a column's compression" '^\+column sales_api\.outbox_stage 10 sale_keys .*"compression": "p"' \
    "ALTER TABLE sales_api.outbox_stage ALTER COLUMN sale_keys SET COMPRESSION pglz"
diverges "a sequence" '^\+sequence sales_api\.outbox_id_seq .*"cache": 10' \
    "ALTER SEQUENCE sales_api.outbox_id_seq CACHE 10"
diverges "an enum label" '^\+type sales_api\.connecteam_sale_type .*"EXTRA"' \
    "ALTER TYPE sales_api.connecteam_sale_type ADD VALUE 'EXTRA'"
diverges "a view" '^\+ LIMIT 10;$' \
    "CREATE OR REPLACE VIEW sales_api.reconciliation_latest AS $(q -d "$CHAIN" -c "SELECT rtrim(pg_get_viewdef('sales_api.reconciliation_latest'::regclass), ';')") LIMIT 10"
diverges "extension membership" '^-member function sales_api\.version\(\)$' \
    "ALTER EXTENSION sales_api DROP FUNCTION sales_api.version()"
diverges "pg_dump's configuration" '^\+dump config sales_api\.outbox_stage where .WHERE false' \
    "UPDATE pg_extension SET extcondition = array_replace(extcondition, '', 'WHERE false') WHERE extname = 'sales_api'"
diverges "an object outside the extension" '^\+relation sales_api\.stray ' \
    "CREATE TABLE sales_api.stray ()"
snapshot "$CHAIN" chain_after
same chain chain_after "the divergences were rolled back: the chain's snapshot is as before"

#
# 3. Queued work of a release crosses the update
#
new_db "$WORK"
export SA_DB=$WORK      # for q and the attach_* helpers
q -c "CREATE EXTENSION sales_api VERSION '0.1'"
q -c "ALTER EXTENSION sales_api UPDATE TO '$WORK_FROM'"
q -v mock_url="$MOCK_URL" >/dev/null <<'SQL'
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
    store     integer NOT NULL,
    sold_at   timestamptz NOT NULL,
    kind      text NOT NULL DEFAULT 'SALE',
    channel   text NOT NULL DEFAULT 'EAT_IN',
    net       numeric(12,2) NOT NULL,
    tax       numeric(12,2) NOT NULL DEFAULT 0,
    guests    integer NOT NULL DEFAULT 1
);
-- a table attached once and detached: its capture row stays
CREATE TABLE pos_sales_old (LIKE pos_sales INCLUDING ALL);
SELECT sales_api.attach('pos_sales_old', 'connecteam', '{"location_id": "store", "sale_type": "kind",
    "created_at": "sold_at", "final_sale_amount": "net"}');
SELECT sales_api.detach('pos_sales_old', 'connecteam');
SQL
attach_connecteam
attach_mapal

# The work, written as the triggers and the worker of $WORK_FROM would.  The
# POS rows go in with session_replication_role = replica, without their
# triggers: the library is the current one, and a release's triggers are not
# its business (an update re-creates them).
q <<'SQL' >/dev/null
SET session_replication_role = replica;
SELECT id AS ct FROM sales_api.capture WHERE relid = 'pos_sales'::regclass AND vendor = 'connecteam' AND detached_at IS NULL \gset
SELECT id AS mp FROM sales_api.capture WHERE relid = 'pos_sales'::regclass AND vendor = 'mapal' AND detached_at IS NULL \gset
-- twelve sales in one statement, their Connecteam sales staged a row per sale
WITH n AS (
    INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)
    SELECT 1 + i % 3, timestamptz '2026-11-20 06:00+00' + i * interval '7 minutes',
           (ARRAY['SALE', 'REFUND'])[1 + i % 2], (ARRAY['EAT_IN', 'TAKE'])[1 + i % 2], 10 + i + 0.25, 1.5, 1 + i % 3
      FROM generate_series(1, 12) i RETURNING *)
INSERT INTO sales_api.outbox_stage (capture_id, staged_at, sale_key, location_id, sale_type, created_at,
                                    final_sale_amount, tax_amount, currency)
SELECT :ct, statement_timestamp(), id::text, store, kind, sold_at, net, tax, 'EUR' FROM n ORDER BY id;
-- their Mapal slots marked dirty
INSERT INTO sales_api.outbox (capture_id, kind, unit_id, business_day, currency_id, sales_type_id, slot_start, next_attempt_at)
SELECT DISTINCT :mp, 'mapal_slot', 1000 + store, sales_api.time_slot(sold_at, 15, 'UTC')::date, 'EUR', channel,
       sales_api.time_slot(sold_at, 15, 'UTC'), statement_timestamp()
  FROM pos_sales ORDER BY 3, 4, 5, 6, 7;
-- the staged sales become pending posts, as at the start of a worker cycle
SELECT sales_api._stage_expand(NULL, false);
-- Connecteam holds sales 1 and 2
WITH s AS (UPDATE sales_api.outbox SET state = 'sent', attempts = 1, sent_at = now(), http_status = 200,
                  vendor_ref = 'ct-tx-' || sale_key
            WHERE kind = 'ct_post' AND sale_key IN ('1', '2') RETURNING *)
INSERT INTO sales_api.connecteam_sent (capture_id, sale_key, transaction_id, location_id, created_at, final_sale_amount)
SELECT capture_id, sale_key, vendor_ref, location_id, created_at, final_sale_amount FROM s;
-- sale 3 claimed, its lease running
UPDATE sales_api.outbox SET state = 'in_flight', attempts = 1, lease_until = now() + interval '1 hour'
 WHERE kind = 'ct_post' AND sale_key = '3';
-- sale 4 failed for now
UPDATE sales_api.outbox SET state = 'failed', attempts = 3, next_attempt_at = now() + interval '10 minutes',
       http_status = 503, last_error = 'HTTP 503 from Connecteam: service unavailable'
 WHERE kind = 'ct_post' AND sale_key = '4';
-- sale 5 refused for good
UPDATE sales_api.outbox SET state = 'dead', attempts = 25, http_status = 422,
       last_error = 'HTTP 422 from Connecteam: locationId does not exist'
 WHERE kind = 'ct_post' AND sale_key = '5';
-- sale 6: the post may have been stored, parked for an operator
UPDATE sales_api.outbox SET state = 'unknown', attempts = 1, ambiguous = true,
       last_error = 'outcome unknown: the request failed after it was sent (timeout)'
 WHERE kind = 'ct_post' AND sale_key = '6';
-- sale 2 changed: a delete of the version Connecteam holds, the new version staged
UPDATE pos_sales SET net = net + 1 WHERE id = 2;
INSERT INTO sales_api.outbox (capture_id, kind, sale_key, location_id, created_at, vendor_ref, next_attempt_at)
SELECT capture_id, 'ct_delete', sale_key, location_id, created_at, transaction_id, statement_timestamp()
  FROM sales_api.connecteam_sent WHERE capture_id = :ct AND sale_key = '2';
INSERT INTO sales_api.outbox_stage (capture_id, staged_at, sale_key, location_id, sale_type, created_at,
                                    final_sale_amount, tax_amount, currency)
SELECT :ct, statement_timestamp(), id::text, store, kind, sold_at, net, tax, 'EUR' FROM pos_sales WHERE id = 2;
-- sale 3 deleted while its post is in flight: a delete waiting for that post's outcome
DELETE FROM pos_sales WHERE id = 3;
INSERT INTO sales_api.outbox (capture_id, kind, sale_key, target_post_id, next_attempt_at)
SELECT capture_id, 'ct_delete', sale_key, id, statement_timestamp()
  FROM sales_api.outbox WHERE kind = 'ct_post' AND sale_key = '3';
-- sale 7 changed before it was sent: its post superseded, the new version staged
UPDATE pos_sales SET net = net + 1 WHERE id = 7;
UPDATE sales_api.outbox SET state = 'superseded', lease_until = NULL
 WHERE kind = 'ct_post' AND sale_key = '7' AND state = 'pending';
INSERT INTO sales_api.outbox_stage (capture_id, staged_at, sale_key, location_id, sale_type, created_at,
                                    final_sale_amount, tax_amount, currency)
SELECT :ct, statement_timestamp(), id::text, store, kind, sold_at, net, tax, 'EUR' FROM pos_sales WHERE id = 7;
-- Mapal markers: one sent, one in flight, one failed, one dead, the rest pending
UPDATE sales_api.outbox SET state = 'sent', attempts = 1, sent_at = now(), http_status = 200
 WHERE id = (SELECT min(id) FROM sales_api.outbox WHERE kind = 'mapal_slot' AND state = 'pending');
UPDATE sales_api.outbox SET state = 'in_flight', attempts = 1, lease_until = now() + interval '1 hour'
 WHERE id = (SELECT min(id) FROM sales_api.outbox WHERE kind = 'mapal_slot' AND state = 'pending');
UPDATE sales_api.outbox SET state = 'failed', attempts = 2, next_attempt_at = now() + interval '5 minutes',
       http_status = 500, last_error = 'HTTP 500 from Mapal'
 WHERE id = (SELECT min(id) FROM sales_api.outbox WHERE kind = 'mapal_slot' AND state = 'pending');
UPDATE sales_api.outbox SET state = 'dead', attempts = 25, http_status = 400, last_error = 'HTTP 400 from Mapal: unknown unit'
 WHERE id = (SELECT min(id) FROM sales_api.outbox WHERE kind = 'mapal_slot' AND state = 'pending');
-- a location's day queued for replacement, a unit's day queued again
SELECT sales_api.repair_connecteam('connecteam', 2, date '2026-11-20');
SELECT sales_api.repair_mapal('mapal', 1001, date '2026-11-20');
-- staged, a row per sale
WITH n AS (
    INSERT INTO pos_sales (store, sold_at, net, tax)
    SELECT 1 + i % 3, timestamptz '2026-11-21 09:00+00' + i * interval '1 minute', 20 + i, 2
      FROM generate_series(1, 3) i RETURNING *)
INSERT INTO sales_api.outbox_stage (capture_id, staged_at, sale_key, location_id, sale_type, created_at,
                                    final_sale_amount, tax_amount, currency)
SELECT :ct, statement_timestamp(), id::text, store, kind, sold_at, net, tax, 'EUR' FROM n ORDER BY id;
-- staged, one row of arrays (a statement of sales_api.stage_min_rows rows or more)
WITH n AS (
    INSERT INTO pos_sales (store, sold_at, net, tax)
    SELECT 1 + i % 3, timestamptz '2026-11-21 10:00+00' + i * interval '1 minute', 30 + i, 3
      FROM generate_series(1, 8) i RETURNING *)
INSERT INTO sales_api.outbox_stage (capture_id, staged_at, sale_keys, location_ids, sale_types, created_ats,
                                    final_sale_amounts, tax_amounts, currencies)
SELECT :ct, statement_timestamp(), array_agg(id::text ORDER BY id), array_agg(store::bigint ORDER BY id),
       array_agg(kind ORDER BY id), array_agg(sold_at ORDER BY id), array_agg(net::numeric ORDER BY id),
       array_agg(tax::numeric ORDER BY id), array_agg('EUR'::text ORDER BY id)
  FROM n;
-- the Mapal slots of the new sales staged, one row of arrays per statement,
-- not yet made dirty markers by the worker; the first statement's slots
-- staged a second time by a later statement
INSERT INTO sales_api.mapal_stage (capture_id, staged_at, unit_ids, business_days, currency_ids, sales_type_ids, slot_starts)
SELECT :mp, statement_timestamp(), array_agg(1000 + store::bigint ORDER BY id),
       array_agg(sales_api.time_slot(sold_at, 15, 'UTC')::date ORDER BY id), array_agg('EUR'::text ORDER BY id),
       array_agg(channel ORDER BY id), array_agg(sales_api.time_slot(sold_at, 15, 'UTC') ORDER BY id)
  FROM pos_sales WHERE sold_at >= '2026-11-21' GROUP BY sold_at < '2026-11-21 10:00+00';
INSERT INTO sales_api.mapal_stage (capture_id, staged_at, unit_ids, business_days, currency_ids, sales_type_ids, slot_starts)
SELECT :mp, statement_timestamp(), array_agg(1000 + store::bigint ORDER BY id),
       array_agg(sales_api.time_slot(sold_at, 15, 'UTC')::date ORDER BY id), array_agg('EUR'::text ORDER BY id),
       array_agg(channel ORDER BY id), array_agg(sales_api.time_slot(sold_at, 15, 'UTC') ORDER BY id)
  FROM pos_sales WHERE sold_at >= '2026-11-21' AND sold_at < '2026-11-21 10:00+00';
RESET session_replication_role;
-- an operator paused Mapal; the worker recorded a reconciliation
SELECT sales_api.pause('mapal');
INSERT INTO sales_api.reconciliation
VALUES (now(), 'connecteam', 1, date '2026-11-20', 100.5, 90, -10.5, 5, 1, 0, 'mismatch');
SQL

# Every kind of work is there (a test without it would pass on nothing)
for st in pending in_flight sent failed dead unknown superseded; do
    [ "$(q -c "SELECT count(*) > 0 FROM sales_api.outbox WHERE state = '$st'")" = t ] || fail "no $st item before the update"
done
for k in ct_post ct_delete ct_window mapal_slot; do
    [ "$(q -c "SELECT count(*) > 0 FROM sales_api.outbox WHERE kind = '$k'")" = t ] || fail "no $k item before the update"
done
expect_eq "$(q -c "SELECT count(*) FILTER (WHERE sale_key IS NOT NULL) > 0 AND count(*) FILTER (WHERE sale_keys IS NOT NULL) > 0
                     FROM sales_api.outbox_stage")" t "staged sales, a row per sale and a row of arrays"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.mapal_stage")" 3 "staged Mapal slots, three statements"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE kind = 'ct_delete' AND vendor_ref IS NOT NULL")" 1 \
    "a delete of a version Connecteam holds"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE kind = 'ct_delete' AND target_post_id IS NOT NULL")" 1 \
    "a delete waiting for the outcome of its post"
expect_eq "$(q -c "SELECT count(*) FILTER (WHERE detached_at IS NULL) || ' live, ' || count(*) FILTER (WHERE detached_at IS NOT NULL) || ' detached' FROM sales_api.capture")" \
    "2 live, 1 detached" "the captures"
echo "work at $WORK_FROM before the update:"
qs -c "SELECT kind, state, count(*) FROM sales_api.outbox GROUP BY 1, 2 ORDER BY 1, 2"
qs -c "SELECT count(*) AS staged_rows, sum(coalesce(cardinality(sale_keys), 1)) AS staged_sales FROM sales_api.outbox_stage"

# The rows of the extension's tables, by key, as jsonb: an update may add
# columns, but every value that was there must still be there.  The outbox
# id sequence is compared on its own (new items take values from it).
ROWS_SQL="SELECT 'outbox' AS t, jsonb_build_array(o.id) AS k, to_jsonb(o) AS j FROM sales_api.outbox o
UNION ALL SELECT 'capture', jsonb_build_array(c.id), to_jsonb(c) FROM sales_api.capture c
UNION ALL SELECT 'connecteam_sent', jsonb_build_array(s.capture_id, s.sale_key), to_jsonb(s) FROM sales_api.connecteam_sent s
UNION ALL SELECT 'server_state', jsonb_build_array(s.server_id), to_jsonb(s) FROM sales_api.server_state s
UNION ALL SELECT 'reconciliation', jsonb_build_array(r.server_name, r.location_id, r.sales_date, r.run_at), to_jsonb(r)
            FROM sales_api.reconciliation r"
# The staged sales, one row each, in the layout of $WORK_FROM and in the
# current one (the same until an update changes sales_api.outbox_stage).
STAGED_FROM="SELECT st.capture_id, st.staged_at, u.sale_key, u.location_id, u.sale_type, u.created_at,
       u.final_sale_amount, u.tax_amount, u.currency
  FROM sales_api.outbox_stage st,
       unnest(coalesce(st.sale_keys, ARRAY[st.sale_key]), coalesce(st.location_ids, ARRAY[st.location_id]),
              coalesce(st.sale_types, ARRAY[st.sale_type]), coalesce(st.created_ats, ARRAY[st.created_at]),
              coalesce(st.final_sale_amounts, ARRAY[st.final_sale_amount]),
              coalesce(st.tax_amounts, ARRAY[st.tax_amount]), coalesce(st.currencies, ARRAY[st.currency]))
       AS u(sale_key, location_id, sale_type, created_at, final_sale_amount, tax_amount, currency)"
STAGED_NOW=$STAGED_FROM
# The staged Mapal slots, one row per slot a statement touched (the same
# layout in $WORK_FROM and now, until an update changes sales_api.mapal_stage).
MAPAL_STAGED_FROM="SELECT ms.capture_id, x.unit_id, x.business_day, x.currency_id, x.sales_type_id, x.slot_start
  FROM sales_api.mapal_stage ms,
       unnest(ms.unit_ids, ms.business_days, ms.currency_ids, ms.sales_type_ids, ms.slot_starts)
       AS x(unit_id, business_day, currency_id, sales_type_id, slot_start)"
MAPAL_STAGED_NOW=$MAPAL_STAGED_FROM

# work_diff [SQL]: every difference between the work now and the work saved
# in schema snap, one line each (after SQL, made in a transaction that is
# rolled back)
work_diff() {
    q -v may_change="{$(IFS=,; echo "${MAY_CHANGE[*]}")}" <<SQL
SET TimeZone = 'UTC';
BEGIN;
${1:-}
WITH a AS ($ROWS_SQL),
staged_now AS ($STAGED_NOW),
-- outbox items that were not there before
new_items AS (SELECT o.* FROM sales_api.outbox o
               WHERE NOT EXISTS (SELECT 1 FROM snap.rows b WHERE b.t = 'outbox' AND b.k = jsonb_build_array(o.id))),
-- a staged Mapal slot may have become a pending dirty marker (or found one)
mapal_staged_or_marked AS (
    SELECT * FROM ($MAPAL_STAGED_NOW) m
    UNION
    SELECT capture_id, unit_id, business_day, currency_id, sales_type_id, slot_start
      FROM sales_api.outbox WHERE kind = 'mapal_slot' AND state = 'pending'),
-- a staged sale may have become the pending post the worker would make of it
staged_or_posted AS (
    SELECT * FROM staged_now
    UNION ALL
    SELECT capture_id, enqueued_at, sale_key, location_id, sale_type, created_at, final_sale_amount, tax_amount, currency
      FROM new_items WHERE kind = 'ct_post' AND state = 'pending')
SELECT format('%s %s is gone', b.t, b.k) FROM snap.rows b
 WHERE NOT EXISTS (SELECT 1 FROM a WHERE a.t = b.t AND a.k = b.k)
UNION ALL
SELECT format('%s %s: %s was %s, is %s', b.t, b.k, e.key, e.value, coalesce((a.j -> e.key)::text, 'no such column'))
  FROM snap.rows b JOIN a ON a.t = b.t AND a.k = b.k, jsonb_each(b.j) e
 WHERE (a.j -> e.key) IS DISTINCT FROM e.value AND b.t || '.' || e.key <> ALL (:'may_change'::text[])
UNION ALL
SELECT format('%s %s is new', a.t, a.k) FROM a
 WHERE a.t <> 'outbox' AND NOT EXISTS (SELECT 1 FROM snap.rows b WHERE b.t = a.t AND b.k = a.k)
UNION ALL
SELECT format('new outbox item %s (%s, %s) is not a staged sale or slot', n.id, n.kind, n.state) FROM new_items n
 WHERE NOT (n.kind = 'ct_post' AND n.state = 'pending')
   AND NOT (n.kind = 'mapal_slot' AND n.state = 'pending'
            AND (n.capture_id, n.unit_id, n.business_day, n.currency_id, n.sales_type_id, n.slot_start)
                IN (SELECT * FROM snap.mapal_staged))
UNION ALL
SELECT 'staged sale lost: ' || row_to_json(x)::text FROM (SELECT * FROM snap.staged EXCEPT ALL SELECT * FROM staged_or_posted) x
UNION ALL
SELECT 'staged sale that was not: ' || row_to_json(x)::text FROM (SELECT * FROM staged_or_posted EXCEPT ALL SELECT * FROM snap.staged) x
UNION ALL
SELECT 'staged Mapal slot lost: ' || row_to_json(x)::text FROM (SELECT * FROM snap.mapal_staged EXCEPT SELECT * FROM mapal_staged_or_marked) x
UNION ALL
SELECT 'staged Mapal slot that was not: ' || row_to_json(x)::text
  FROM (SELECT * FROM ($MAPAL_STAGED_NOW) m EXCEPT ALL SELECT * FROM snap.mapal_staged) x
UNION ALL
SELECT format('sequence %s went back from %s to %s', s, b, n)
  FROM snap.seq, LATERAL (VALUES ('outbox_id_seq', outbox_id, (SELECT last_value FROM sales_api.outbox_id_seq)),
                                 ('capture_id_seq', capture_id, (SELECT last_value FROM sales_api.capture_id_seq))) v(s, b, n)
 WHERE n < b;
ROLLBACK;
SQL
}

q <<SQL
SET client_min_messages = warning;
SET TimeZone = 'UTC';
DROP SCHEMA IF EXISTS snap CASCADE;
CREATE SCHEMA snap;
CREATE TABLE snap.rows AS $ROWS_SQL;
CREATE TABLE snap.staged AS $STAGED_FROM;
CREATE TABLE snap.mapal_staged AS $MAPAL_STAGED_FROM;
CREATE TABLE snap.seq AS
SELECT (SELECT last_value FROM sales_api.outbox_id_seq) AS outbox_id, (SELECT last_value FROM sales_api.capture_id_seq) AS capture_id;
SQL
expect_eq "$(work_diff)" "" "the comparison of the work finds nothing before the update"
# ... and sees each kind of change
diff_lines=$(work_diff "
    UPDATE sales_api.outbox SET state = 'pending' WHERE kind = 'ct_post' AND state = 'dead';
    UPDATE sales_api.outbox SET final_sale_amount = final_sale_amount + 1 WHERE kind = 'ct_post' AND state = 'failed';
    DELETE FROM sales_api.outbox WHERE kind = 'ct_window';
    INSERT INTO sales_api.outbox (capture_id, kind, location_id, window_start, window_end)
    SELECT capture_id, kind, location_id, window_start, window_end FROM sales_api.outbox WHERE kind = 'ct_delete' LIMIT 1;
    DELETE FROM sales_api.outbox_stage WHERE sale_key IS NOT NULL;
    DELETE FROM sales_api.mapal_stage WHERE capture_id IS NOT NULL AND staged_at = (SELECT min(staged_at) FROM sales_api.mapal_stage);
    INSERT INTO sales_api.mapal_stage
    SELECT capture_id, staged_at, unit_ids, business_days, currency_ids, sales_type_ids,
           ARRAY(SELECT sl + interval '1 day' FROM unnest(slot_starts) sl) FROM sales_api.mapal_stage LIMIT 1;
    UPDATE sales_api.connecteam_sent SET transaction_id = 'other';
    UPDATE sales_api.server_state SET paused = false;
    DELETE FROM sales_api.reconciliation;")
echo "$diff_lines" | cut -c1-200
for re in '^outbox \[[0-9]+\]: state was "dead", is "pending"$' \
          '^outbox \[[0-9]+\]: final_sale_amount was [0-9.]+, is [0-9.]+$' \
          '^outbox \[[0-9]+\] is gone$' \
          '^new outbox item [0-9]+ \(ct_delete, pending\) is not a staged sale or slot$' \
          '^staged sale lost: ' \
          '^staged Mapal slot lost: ' \
          '^staged Mapal slot that was not: ' \
          '^connecteam_sent \[[0-9]+, "1"\]: transaction_id was "ct-tx-1", is "other"$' \
          '^server_state \[.*\]: paused was true, is false$' \
          '^reconciliation \[.*\] is gone$'; do
    echo "$diff_lines" | grep -qE "$re" || fail "the comparison of the work misses a change (no line matching $re)"
done
pass "the comparison of the work sees a changed state, changed data, a lost item, an unexplained item, a lost staged sale, a lost and an unexplained staged Mapal slot, a sent record, a server's state and a reconciliation"
expect_eq "$(work_diff 'DO $x$ BEGIN PERFORM sales_api._stage_expand(NULL, false); END $x$;')" "" \
    "a staged sale or slot made what the worker would make of it is the same work"

q -c "ALTER EXTENSION sales_api UPDATE"
expect_eq "$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'sales_api'")" "$DEFAULT" "updated from $WORK_FROM to $DEFAULT"
[ "$WORK_FROM" = "$DEFAULT" ] && echo "note: the default version is $WORK_FROM itself: the update did nothing"

work_diff > "$OUT/work_diff"
if [ -s "$OUT/work_diff" ]; then
    cat "$OUT/work_diff"
    fail "the queued work changed in the update (above)"
fi
pass "every item, staged sale and slot, capture, sent record, server state and reconciliation crossed the update unchanged ($(q -c "SELECT count(*) FROM snap.rows") rows, $(q -c "SELECT count(*) FROM snap.staged") staged sales, $(q -c "SELECT count(*) FROM snap.mapal_staged") staged slots)"

# the captures still capture: a sale on a new day queues work for both vendors
work_per_capture="SELECT string_agg(c.id || ':' || ((SELECT count(*) FROM sales_api.outbox o WHERE o.capture_id = c.id)
                                     + (SELECT count(*) FROM ($STAGED_NOW) s WHERE s.capture_id = c.id)
                                     + (SELECT count(*) FROM sales_api.mapal_stage m WHERE m.capture_id = c.id)), ',' ORDER BY c.id)
                    FROM sales_api.capture c WHERE c.detached_at IS NULL"
before=$(q -c "$work_per_capture")
q -c "INSERT INTO pos_sales (store, sold_at, net, tax) VALUES (1, '2026-12-01 12:00+00', 42, 4)"
after=$(q -c "$work_per_capture")
expect_eq "$(python3 -c 'import sys; b = dict(x.split(":") for x in sys.argv[1].split(",")); a = dict(x.split(":") for x in sys.argv[2].split(",")); print(all(int(a[k]) > int(b[k]) for k in b) and len(b) == 2)' "$before" "$after")" \
    True "both captures queue a new sale after the update (work per capture $before -> $after)"

snapshot "$WORK" work
same fresh work "the updated database with its work defines the same objects as a fresh install"

export SA_DB=sa_worker
for db in "$FRESH" "$CHAIN" "$WORK"; do q -d postgres -c "DROP DATABASE $db WITH (FORCE)" >/dev/null; done
