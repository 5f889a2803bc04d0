#!/usr/bin/env bash
# The leases of a lane in flight are its job's, even past lease_until: the
# worker expires only the leases of lanes with nothing in flight (a stopped
# worker's).  The claim runs in two passes (Connecteam, then Mapal), and the
# Connecteam pass, which expires leases, must count a Mapal lane in flight as
# busy too.  Here a Mapal request is held at the vendor past its items'
# lease (sales_api.lease_time 1 s) while the worker keeps claiming; its slots
# must stay in flight, then be recorded sent once the vendor answers.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
trap 'q -c "ALTER SYSTEM RESET sales_api.lease_time" >/dev/null 2>&1; q -d postgres -c "SELECT pg_reload_conf()" >/dev/null 2>&1; mockctl release >/dev/null 2>&1; mockctl faults-clear >/dev/null 2>&1 || true' EXIT
fs_set lease_time 1s
mockctl fault hold --path 'real-time-sales' --count 1 >/dev/null
q -c "INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)
      VALUES (1, '2026-11-20 10:05:00+00', 'SALE', 'TAKE', 10.00, 1.00, 2)"
wait_until '[ "$(mockctl held)" -ge 1 ]' 60 "the Mapal request held at the vendor"
# past the lease, and the worker has claimed (and looked for expired leases) since
wait_for "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'mapal_slot'
           AND state = 'in_flight' AND lease_until >= now() - interval '1.5 s')" 30 "the slots' lease to run out"
worker_cycles 3
expect_eq "$(q -c "SELECT string_agg(DISTINCT state, ',') FROM sales_api.outbox WHERE kind = 'mapal_slot'")" in_flight \
    "the slots of the request held stay in flight"
mockctl release >/dev/null
wait_for "$(drained)" 60 "the Mapal request answered and recorded"
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox WHERE kind = 'mapal_slot' AND (attempts <> 1 OR last_error IS NOT NULL)")" 0 \
    "the slots sent once, with no error"
python3 "$(dirname "$0")/../lib/compare.py" lease-of-a-lane-in-flight || fail "the vendors do not hold exactly the sales"
pass "both vendors hold exactly the sales"
