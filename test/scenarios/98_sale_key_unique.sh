#!/usr/bin/env bash
# attach() warns when an explicit Connecteam sale_key is not the key of a
# valid, non-partial, one-column unique index: two rows with one key would
# replace each other at the vendor.  A key such an index backs (a column or
# the same expression), the default primary key and a Mapal capture (slot
# totals, no key at the vendor) attach without the warning; a warned
# capture is attached all the same.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'connecteam'), sales_api.detach('pos_sales', 'mapal')" >/dev/null
q -c "CREATE SCHEMA IF NOT EXISTS sk" >/dev/null
MAP="{\"location_id\": \"store\", \"sale_type\": \"''SALE''\", \"created_at\": \"sold_at\", \"final_sale_amount\": \"net\"}"
n=0
# check NAME "INDEX DDL or empty" SALE_KEY (empty: default) yes|no [HINT]
# (HINT: the warning's hint holds it; default: a CREATE UNIQUE INDEX on the
# table; server=mapal check ... attaches to Mapal)
check() {
    local name=$1 ddl=$2 key=$3 want=$4 server=${server:-connecteam} out args
    n=$((n + 1))
    local t="sk.t$n"
    q -c "CREATE TABLE $t (id bigint PRIMARY KEY, ref text, store integer NOT NULL,
                           sold_at timestamptz NOT NULL, net numeric(12,2) NOT NULL)" >/dev/null
    [ -n "$ddl" ] && q -c "${ddl//TBL/$t}" >/dev/null
    local map=$MAP
    [ "$server" = mapal ] && map="{\"unit_id\": \"1000 + store\", \"sold_at\": \"sold_at\", \"currency_id\": \"''EUR''\",
        \"sales_type_id\": \"1\", \"net_sales\": \"net\", \"gross_sales\": \"net\", \"num_guests\": \"1\"}"
    args="'$t', '$server', '$map'"
    [ -n "$key" ] && args="$args, sale_key => \$k\$$key\$k\$"
    out=$($PSQL -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -At -d "$SA_DB" \
              -c "SELECT sales_api.attach($args) > 0" 2>&1) || fail "$name: attach failed: $out"
    echo "$out" | grep -q '^t$' || fail "$name: attach did not return a capture id: $out"
    if echo "$out" | grep -qE "no unique index of $t (has|can have) the sale_key"; then
        [ "$want" = yes ] || fail "$name: a warning where the key is unique: $out"
        echo "$out" | grep -q "WARNING:  01000" || fail "$name: not SQLSTATE 01000: $out"
        echo "$out" | grep -q "DETAIL:  Connecteam replaces and deletes a sale by its key" \
            || fail "$name: the warning does not say why: $out"
        echo "$out" | grep -qF "HINT:  ${5:-Make the key unique: CREATE UNIQUE INDEX ON $t ((}" \
            || fail "$name: the warning does not say what to do: $out"
    else
        [ "$want" = no ] || fail "$name: no warning for a key no unique index backs: $out"
    fi
    pass "$name"
}
check "the default key (the primary key)"         ""                                               ""                       no
check "the primary key named"                      ""                                               "id"                     no
check "a column with no index"                     ""                                               "ref"                    yes
check "a column with a plain index"                "CREATE INDEX ON TBL (ref)"                      "ref"                    yes
check "a column with a unique index"               "CREATE UNIQUE INDEX ON TBL (ref)"               "ref"                    no
check "a unique constraint, key quoted"            "ALTER TABLE TBL ADD UNIQUE (ref)"               '"ref"'                  no
check "a unique index with INCLUDE"                "CREATE UNIQUE INDEX ON TBL (ref) INCLUDE (store)" "ref"                  no
check "a two-column unique index"                  "CREATE UNIQUE INDEX ON TBL (store, ref)"        "ref"                    yes
check "a partial unique index"                     "CREATE UNIQUE INDEX ON TBL (ref) WHERE net > 0" "ref"                    yes
check "an expression with its unique index"        "CREATE UNIQUE INDEX ON TBL (lower(ref))"        "lower(ref)"             no
check "an expression, the index on the column"     "CREATE UNIQUE INDEX ON TBL (ref)"               "lower(ref)"             yes
check "a composite key with its unique index"      "CREATE UNIQUE INDEX ON TBL ((store || '-' || ref))" "store || '-' || ref" no
check "a composite key, a wider index only"        "CREATE UNIQUE INDEX ON TBL (store, ref)"        "store || '-' || ref"    yes
check "a key qualified as the statements name the table (s)" "CREATE UNIQUE INDEX ON TBL (ref)"     "s.ref"                  no
check "a key with a COLLATE, the index on the column" "CREATE UNIQUE INDEX ON TBL (ref)"          'ref COLLATE "C"'        no
check "a key cast to varchar, the index on the column" "CREATE UNIQUE INDEX ON TBL (ref)"         "ref::varchar"           no
check "the hint's index names the column, not s"   ""                                               "lower(s.ref)"           yes \
    "Make the key unique: CREATE UNIQUE INDEX ON sk.t$((n + 1)) ((lower(ref)));"
check "a subquery key"                             ""                                               "(SELECT ref)"           yes \
    "An index expression holds no subquery"
server=mapal check "a Mapal capture takes no key"  ""                                               "ref"                    no
# an index of a table with children covers none of their rows
q -c "CREATE TABLE sk.parent (id bigint PRIMARY KEY, ref text UNIQUE, store integer NOT NULL,
                              sold_at timestamptz NOT NULL, net numeric(12,2) NOT NULL);
      CREATE TABLE sk.child () INHERITS (sk.parent)" >/dev/null
out=$($PSQL -X -q -v ON_ERROR_STOP=1 -At -d "$SA_DB" \
          -c "SELECT sales_api.attach('sk.parent', 'connecteam', '$MAP', sale_key => 'ref') > 0" 2>&1)
echo "$out" | grep -q "sk.parent has child tables: no unique index makes the sale_key (ref) unique" \
    || fail "a parent's unique index counted for its children: $out"
pass "a parent table's unique index does not count for its children"
# its last child dropped (relhassubclass stays set until a VACUUM), the index counts again
q -c "SELECT sales_api.detach('sk.parent', 'connecteam'); DROP TABLE sk.child" >/dev/null
expect_eq "$(q -c "SELECT relhassubclass FROM pg_class WHERE oid = 'sk.parent'::regclass")" t "the flag outlives the child"
out=$($PSQL -X -q -v ON_ERROR_STOP=1 -At -d "$SA_DB" \
          -c "SELECT sales_api.attach('sk.parent', 'connecteam', '$MAP', sale_key => 'ref') > 0" 2>&1)
echo "$out" | grep -qE "has child tables|no unique index" && fail "a table whose children are gone still warned: $out"
echo "$out" | grep -q '^t$' || fail "attach did not return a capture id: $out"
pass "a table whose last child was dropped is checked by its indexes"
# an index that is not valid (a failed CREATE INDEX CONCURRENTLY) does not count
q -c "CREATE TABLE sk.dup (id bigint PRIMARY KEY, ref text, store integer NOT NULL,
                           sold_at timestamptz NOT NULL, net numeric(12,2) NOT NULL);
      INSERT INTO sk.dup VALUES (1, 'a', 1, now(), 1), (2, 'a', 1, now(), 1)" >/dev/null
$PSQL -X -q -d "$SA_DB" -c "CREATE UNIQUE INDEX CONCURRENTLY dup_ref ON sk.dup (ref)" >/dev/null 2>&1 \
    && fail "a unique index over duplicates was built"
expect_eq "$(q -c "SELECT indisvalid FROM pg_index WHERE indexrelid = 'sk.dup_ref'::regclass")" f "the index is left invalid"
out=$($PSQL -X -q -v ON_ERROR_STOP=1 -At -d "$SA_DB" \
          -c "SELECT sales_api.attach('sk.dup', 'connecteam', '$MAP', sale_key => 'ref') > 0" 2>&1)
echo "$out" | grep -q "no unique index of sk.dup has the sale_key" || fail "an invalid index counted: $out"
pass "an invalid unique index does not count"
q -c "DROP SCHEMA sk CASCADE" >/dev/null 2>&1 || true
