#!/usr/bin/env bash
# Leases a worker left behind (its jobs dropped by a crash or an ERROR:
# items in flight, staged rows leased) are taken back by a claim of the
# lane while it is idle, never of a lane in flight (whose leases are its
# own jobs').  A lane that chains jobs for as long as sales keep coming must
# still go idle once every sales_api.lease_time, or such sales wait for the
# stream to stop (up to 0.8.0's fix the chain only broke for items due,
# which a lease is not).  Here an orphan lease appears while an
# 80,000-sale backlog drains, lease_time 2 s: a staged sale leased a minute
# ago by no job, as a worker killed mid-request leaves it (the vendor answers
# after 80 ms: the drain lasts about 15 s, several lease_times).  It must be taken
# back while the backlog still drains, and reach the vendor once.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
fs_setup
restore() {
    mockctl config answer_ms=0 >/dev/null 2>&1 || true
    q -c "ALTER SYSTEM RESET sales_api.lease_time" -c "ALTER SYSTEM RESET sales_api.ambiguous_settle_time" >/dev/null 2>&1 || true
    q -d postgres -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
}
trap restore EXIT
fs_set lease_time 2s ambiguous_settle_time 1s
fs_ct_draining 80 80000

echo "--- an orphan lease while the lane chains: a staged sale leased a minute ago by no job"
q <<'SQL' >/dev/null
BEGIN;
INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)
VALUES (2, '2026-11-19 10:00+00', 'SALE', 'TAKE', 7.00, 0.70, 1);
UPDATE sales_api.outbox_stage SET lease_until = now() - interval '1 min'
 WHERE sale_key = (SELECT max(id)::text FROM pos_sales) AND lease_until IS NULL;
COMMIT;
SQL
expect_eq "$(q -c "SELECT count(*) FROM sales_api.outbox_stage WHERE lease_until < now() - interval '30 s'")" 1 \
    "the orphan lease is there"
orphan_gone="SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox_stage WHERE lease_until < now() - interval '1 s')
             AND NOT EXISTS (SELECT 1 FROM sales_api.outbox WHERE state = 'in_flight' AND lease_until < now() - interval '1 s')"
wait_for "$orphan_gone" 120 "the orphan lease taken back"
left=$(q -c "SELECT (SELECT coalesce(sum(coalesce(cardinality(sale_keys), 1)), 0) FROM sales_api.outbox_stage
                    WHERE lease_until IS NULL)
                  + (SELECT count(*) FROM sales_api.outbox WHERE state = 'pending' AND kind = 'ct_post')")
echo "backlog sales not yet taken when the orphan lease was taken back: $left"
[ "$left" -gt 0 ] || fail "the orphan lease was taken back only once the backlog had drained"
pass "the orphan lease was taken back while the backlog drained"
wait_for "$(drained)" 180 "the backlog and the orphan's sale"
python3 "$(dirname "$0")/../lib/compare.py" lane-chain-orphan-lease --no-mapal || fail "the vendor does not hold exactly the sales"
pass "the vendor holds exactly the sales"
