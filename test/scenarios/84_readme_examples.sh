#!/usr/bin/env bash
# Every SQL example of README.md runs as written, in README order, in one
# psql session with ON_ERROR_STOP, against the mock vendors; any error fails
# the test.  Function signatures are compared with the catalog, and links to
# headings and files must resolve.
#
# The conventions (see test/lib/readme_examples.py and the README's quick
# start): ```sql blocks run; ```sql error=XXXXX must fail with that SQLSTATE;
# ```sql signature is checked, not run; ```sql no-run is shown only.
#
# Vendor URLs.  The README creates its servers as a reader does, without URL
# options (so they default to the vendors' production URLs), and its quick
# start then has one block, guarded by psql's \if :{?mock_url}, that points
# the servers at a mock when psql was started with -v mock_url=...  This test
# passes -v mock_url=$MOCK_URL; a reader using the real vendors passes nothing
# and the block does nothing.  The alternative, rewriting vendor host names
# in the README's text, would need the README to spell out URLs a reader
# never writes, and the mock serves its APIs under path prefixes
# (/mapal-sales, /cashrec, /connecteam), not under the vendors' host names.
#
# The vendor side the README assumes: Connecteam locations 1, 2 and 3 (made
# here with mockctl; test/demo makes them too, so `test/demo --keep` leaves a
# mock the examples run against), Mapal units 1001-1003 and Cashrec centres
# 101-105 (the mock's defaults).  The credentials in the README's user
# mappings are the ones the mock accepts.
#
# The database: a fresh sa_worker (the one the background worker drains,
# sales_api.database in test/lib/env.sh), so the capture examples are
# delivered; the README waits for that with a poll of its own.  The worker is
# disconnected by DROP DATABASE ... WITH (FORCE) and the postmaster starts it
# again; the README's poll waits for it.  At the end the database is made
# fresh again and the README's roles are dropped.
. "$(dirname "$0")/../lib/scenario.sh"
cd "$(dirname "$0")/../.."
readme=README.md
roles="pos_sync pos_till sales_api_metrics"
out=$SA_WORK/readme-examples
mkdir -p "$out"

fresh_db() {
    q -d postgres -c "DROP DATABASE IF EXISTS $SA_DB WITH (FORCE)" >/dev/null
    q -d postgres -c "CREATE DATABASE $SA_DB" >/dev/null
    for r in $roles; do q -d postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS $r"; done
}

python3 test/lib/readme_examples.py summary "$readme"
python3 test/lib/readme_examples.py links "$readme" || fail "a link of README.md leads nowhere"
python3 test/lib/readme_examples.py script "$readme" > "$out/readme.sql" || fail "could not extract the examples"

mockctl reset >/dev/null
for i in 1 2 3; do mockctl ct-add-location "Store $i" >/dev/null; done   # ids 1, 2, 3
fresh_db
trap 'fresh_db' EXIT

echo "--- the README's SQL, in order (output in $out/readme.out)"
if ! $PSQL -X -e -v ON_ERROR_STOP=1 -v mock_url="$MOCK_URL" -d "$SA_DB" -f "$out/readme.sql" \
        > "$out/readme.out" 2>&1; then
    tail -40 "$out/readme.out"
    fail "an example of README.md failed: the block at $(grep '^== README.md:' "$out/readme.out" | tail -1 | cut -c4-)"
fi
grep -q '^== README.md: end' "$out/readme.out" || fail "the examples did not run to the end"
echo "blocks run: $(grep -c '^== README.md:[0-9]' "$out/readme.out")"
grep -E ': (WARNING|NOTICE): ' "$out/readme.out" | sed 's/^psql:[^ ]* //' | sort | uniq -c || true
pass "every SQL example of README.md ran as written"
# what the examples sent was delivered: a dead letter would mean an example the mock refused
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE state IN ('dead', 'unknown')")" 0 \
    "no outbox item of the examples dead or unknown"

echo "--- signatures"
python3 test/lib/readme_examples.py signatures "$readme" || fail "a signature in README.md differs from the catalog"
pass "every signature in README.md matches the catalog"
