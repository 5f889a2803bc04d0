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
session_open locker
session_run locker "BEGIN;" "LOCK TABLE pos_slots IN ACCESS EXCLUSIVE MODE;"
# both servers resume together: one claim takes the post and the Mapal slot
q -c "BEGIN" -c "SELECT sales_api.resume('connecteam')" -c "SELECT sales_api.resume('mapal')" -c "COMMIT" >/dev/null
q -c "SELECT sales_api.wake_worker()" >/dev/null
wait_for "$worker_waits_on_lock" 60 "the worker to hold its claim open"
# the UPDATE runs while the claim is open: it finishes, or waits for the
# worker's claim (then it goes on once the lock on pos_slots goes)
session_open till
session_send till "UPDATE pos_sales SET net = 12.00;"
wait_until "session_done till || [ \"\$(q -c \"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'sa_till' AND wait_event_type = 'Lock')\")\" = t ]" 60 \
    "the UPDATE to finish or to wait for the worker's claim"
echo "the UPDATE during the claim: $(session_done till && echo "finished at once" || echo "waited for the claim")"
expect_eq "$(q -c "$worker_waits_on_lock")" t "the worker's claim was still open"
session_run locker "COMMIT;"
session_close locker
session_sync till
session_close till
wait_for "$(drained)" 90 "the update"
mockctl log --fields method,path,status | sed -E 's#/transactions/[^\t]+#/transactions/ID#' | grep connecteam
qs -c "SELECT id, kind, state, attempts, http_status, final_sale_amount FROM sales_api.outbox WHERE kind <> 'mapal_slot' ORDER BY id"
mockctl ct-transactions
expect_eq "$(mockctl ct-transactions | grep -c '12.00')" 1 "Connecteam holds the new version"
expect_eq "$(mockctl ct-transactions | grep -c '10.00')" 0 "Connecteam does not hold the old version"
