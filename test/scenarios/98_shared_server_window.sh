#!/usr/bin/env bash
# Two POS tables captured for one Connecteam server (one account).  A window
# replacement deletes everything the account holds for a location and time
# range and posts again the sales of its own table only: it would delete the
# other table's sales.  So with a shared server an ambiguous post is parked
# for an operator, whatever ambiguous_policy says, and a repair is refused;
# the other table's sale stays at Connecteam.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
trap 'q -c "ALTER SYSTEM RESET sales_api.ambiguous_settle_time" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true' EXIT
fs_set ambiguous_settle_time 1s
q <<'SQL' >/dev/null
CREATE TABLE pos_other (id bigserial PRIMARY KEY, store integer NOT NULL, sold_at timestamptz NOT NULL,
                        net numeric(12,2) NOT NULL);
SELECT sales_api.attach('pos_other', 'connecteam', '{"location_id": "store", "sale_type": "''SALE''",
  "created_at": "sold_at", "final_sale_amount": "net"}');
SQL
# the other table's sale, at the same location and second as the next one
q -c "INSERT INTO pos_other (store, sold_at, net) VALUES (1, '2026-11-26 10:00:00+00', 41.00)"
wait_for "$(drained)" 60 "the other table's sale"
# pos_sales' post is stored, and its answer lost: its outcome is unknown
mockctl fault drop_after --path '/connecteam/sales/v1/transactions$' --method POST --count 1
q -c "INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (1, '2026-11-26 10:00:00+00', 'SALE', 42.00, 0)"
wait_for "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE state = 'unknown' AND ambiguous)" 60 \
    "the ambiguous post to be parked, its server being shared"
q -c "SELECT last_error FROM sales_api.outbox WHERE state = 'unknown'" | grep -q "also receives the sales of public.pos_other" \
    || fail "the parked post does not say why: $(q -c "SELECT last_error FROM sales_api.outbox WHERE state = 'unknown'")"
# a repair of that location and day is refused
q -c "SELECT sales_api.repair_connecteam('connecteam', 1, '2026-11-26')" >/dev/null
wait_for "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'ct_window' AND state = 'dead')" 60 "the repair refused"
q -c "SELECT last_error FROM sales_api.outbox WHERE kind = 'ct_window'"
mockctl log --fields method,path,status,fault | sed -E 's#/transactions/[^\t]+#/transactions/ID#'
expect_eq "$(mockctl log --fields method | grep -c DELETE)" 0 "nothing was deleted at Connecteam"
mockctl ct-transactions
expect_eq "$(mockctl ct-transactions | grep -c '41.00')" 1 "the other table's sale is still at Connecteam"
expect_eq "$(mockctl ct-transactions | grep -c '42.00')" 1 "the ambiguous post was stored once"
