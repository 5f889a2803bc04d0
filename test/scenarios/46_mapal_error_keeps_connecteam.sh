#!/usr/bin/env bash
# An error in the Mapal half of a claim does not drop the Connecteam jobs
# claimed before it.  The worker claims the Connecteam lanes first, commits,
# and their requests go out while it makes the staged Mapal slots markers and
# claims for the Mapal lanes (claim_jobs() in src/outbox.c).  If that fails,
# the worker's handler would drop every job: its sales would stay in flight
# until their lease ran out (sales_api.lease_time), then be taken for
# ambiguous, at every claim while the error lasts.  Here the error is a
# lock_timeout: a session holds an uncommitted pending marker of the slot a
# POS sale stages, so the worker's marking waits for it and times out at each
# try.  The Connecteam sales must all reach the vendor meanwhile, each once
# and none taken for ambiguous; once the session ends, so must the Mapal slots.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
trap 'q -c "ALTER SYSTEM RESET lock_timeout" >/dev/null 2>&1; q -d postgres -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true' EXIT
q -c "ALTER SYSTEM SET lock_timeout = '200ms'" >/dev/null
reload_conf
worker_cycles 2
cap=$(q -c "SELECT id FROM sales_api.capture WHERE vendor = 'mapal'")
session_open holder
session_run holder "BEGIN;" \
    "INSERT INTO sales_api.outbox (capture_id, kind, unit_id, business_day, currency_id, sales_type_id, slot_start)
     VALUES ($cap, 'mapal_slot', 1001, '2026-11-20', 'EUR', 'TAKE', '2026-11-20 10:00');"
q -c "INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)
      VALUES (1, '2026-11-20 10:05:00+00', 'SALE', 'TAKE', 10.00, 1.00, 2)"
fs_insert 0 3000 3000
wait_log "canceling statement due to lock timeout" 60
wait_for "SELECT count(*) = 3001 FROM sales_api.outbox WHERE kind = 'ct_post' AND state = 'sent'" 90 \
    "every Connecteam sale sent while the Mapal half fails"
grep -qE "WARNING: +sales_api worker: could not claim for the Mapal lanes: canceling statement due to lock timeout" "$SA_PGLOG" \
    || fail "the worker did not report the Mapal half's error as a WARNING"
pass "every Connecteam sale sent while the Mapal half failed, with a WARNING"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE kind = 'ct_post' AND (ambiguous OR attempts > 1)")" 0 \
    "no Connecteam sale sent twice or taken for ambiguous"
expect_eq "$(mockctl count --path '^/connecteam/sales/v1/transactions' --method DELETE)" 0 "no window replaced"
session_run holder "ROLLBACK;"
session_close holder
wait_for "$(drained)" 90 "the Mapal slots once the session ended"
python3 "$(dirname "$0")/../lib/compare.py" mapal-error-keeps-connecteam || fail "the vendors do not hold exactly the sales"
pass "both vendors hold exactly the sales"
