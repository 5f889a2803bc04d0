#!/usr/bin/env bash
# A sale_key expression that gives NULL: such a sale could be posted but
# never updated or deleted at Connecteam (its transactionId is kept by key).
# The POS statement fails instead (23502), in one row or a bulk statement,
# and nothing of it is staged.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q <<'SQL' >/dev/null
CREATE TABLE pos_ref (id bigserial PRIMARY KEY, ref text, store integer NOT NULL, sold_at timestamptz NOT NULL,
                      net numeric(12,2) NOT NULL);
SELECT sales_api.attach('pos_ref', 'connecteam', '{"location_id": "store", "sale_type": "''SALE''",
  "created_at": "sold_at", "final_sale_amount": "net"}', sale_key => 'ref');
SQL
for stmt in "INSERT INTO pos_ref (ref, store, sold_at, net) VALUES (NULL, 1, '2026-11-27 10:00+00', 1.00)" \
            "INSERT INTO pos_ref (ref, store, sold_at, net)
             SELECT CASE WHEN i = 700 THEN NULL ELSE 'r' || i END, 1, '2026-11-27 10:00+00'::timestamptz + i * interval '1 s', i
               FROM generate_series(1, 1000) i"; do
    out=$($PSQL -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -At -d "$SA_DB" -c "$stmt" 2>&1) \
        && fail "a sale with a NULL key was accepted"
    echo "$out" | head -3
    echo "$out" | grep -q "23502" || fail "not a not-null violation: $out"
    echo "$out" | grep -q "has a NULL sale_key" || fail "the error does not say why: $out"
done
expect_eq "$(q -c "SELECT count(*) FROM pos_ref")" 0 "no row of the failed statements"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox_stage")" 0 "nothing staged"
q -c "INSERT INTO pos_ref (ref, store, sold_at, net) VALUES ('r-1', 1, '2026-11-27 10:00+00', 1.00)"
wait_for "$(drained)" 60 "a sale with a key"
expect_eq "$(mockctl ct-transactions | wc -l | tr -d ' ')" 1 "Connecteam holds the sale with a key"
