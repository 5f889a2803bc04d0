#!/usr/bin/env bash
# A sale is updated at the moment the worker claims its (unsent) post: the
# capture trigger must either supersede the old version or enqueue its
# delete.  Here the worker's claim transaction is held open after it has
# claimed the post (its Mapal recompute waits for a lock on another POS
# table) while the UPDATE runs; the vendor must end up holding the new
# version only.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
q -c "SELECT sales_api.detach('pos_sales', 'mapal')" >/dev/null
q <<'SQL' >/dev/null
CREATE TABLE pos_slots (id bigserial PRIMARY KEY, store int NOT NULL, sold_at timestamptz NOT NULL, net numeric NOT NULL);
SELECT sales_api.attach('pos_slots', 'mapal', '{"unit_id": "1000 + store", "sold_at": "sold_at", "currency_id": "''EUR''",
  "sales_type_id": "''TAKE''", "net_sales": "net", "gross_sales": "net"}');
SELECT sales_api.pause('connecteam');
SELECT sales_api.pause('mapal');
INSERT INTO pos_sales (store, sold_at, kind, net, tax) VALUES (1, '2026-11-20 10:00:00+00', 'SALE', 10.00, 1.00);
INSERT INTO pos_slots (store, sold_at, net) VALUES (1, '2026-11-20 10:00:00+00', 5.00);
SQL
# the worker's next claim takes the Connecteam post, then waits on pos_slots
(q -c "BEGIN" -c "LOCK TABLE pos_slots IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(4)" -c "COMMIT" >/dev/null) &
sleep 0.5
# both servers resume together: one claim takes the post and the Mapal slot
q -c "BEGIN" -c "SELECT sales_api.resume('connecteam')" -c "SELECT sales_api.resume('mapal')" -c "COMMIT" >/dev/null
wait_for "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'sales_api worker' AND wait_event_type = 'Lock')" 10 \
    "the worker to hold its claim open"
q -c "UPDATE pos_sales SET net = 12.00"
wait
wait_for "$(drained)" 30 "the update"
mockctl log --fields method,path,status | sed -E 's#/transactions/[^\t]+#/transactions/ID#' | grep connecteam
qs -c "SELECT id, kind, state, attempts, http_status, final_sale_amount FROM sales_api.outbox WHERE kind <> 'mapal_slot' ORDER BY id"
mockctl ct-transactions
expect_eq "$(mockctl ct-transactions | grep -c '12.00')" 1 "Connecteam holds the new version"
expect_eq "$(mockctl ct-transactions | grep -c '10.00')" 0 "Connecteam does not hold the old version"
