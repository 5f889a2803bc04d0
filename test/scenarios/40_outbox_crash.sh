#!/usr/bin/env bash
# The worker killed with SIGKILL in the middle of a batch, then PostgreSQL
# stopped with -m immediate in the middle of a batch: after the restart every
# sale is at the vendors exactly once and Mapal totals equal local totals.
. "$(dirname "$0")/../lib/scenario.sh"
scenario_setup
make_locations 3
attach_connecteam
attach_mapal
# slow vendor, small batches: the kill always lands mid-batch; a lease of
# 6 s, not 15 s, so that the restarted worker takes the killed one's items
# back sooner (one worker: a lease only matters once its holder is gone)
mockctl config latency_ms=400 >/dev/null
q -c "ALTER SYSTEM SET sales_api.batch_size = 300" -c "ALTER SYSTEM SET sales_api.lease_time = '6s'" >/dev/null
trap 'q -c "ALTER SYSTEM RESET sales_api.batch_size" -c "ALTER SYSTEM RESET sales_api.lease_time" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true' EXIT
reload_conf
worker_cycles 2

insert_sales() {  # insert_sales FROM COUNT
    q -c "INSERT INTO pos_sales (store, sold_at, kind, channel, net, tax, guests)
          SELECT 1 + i % 3, timestamptz '2026-11-21 08:00+00' + (i * 17) * interval '1 second',
                 (ARRAY['SALE','SALE','REFUND'])[1 + i % 3], (ARRAY['EAT_IN','TAKE','DELIVERY'])[1 + i % 3],
                 round((1 + (i % 991) / 10.0)::numeric, 2), round(((i % 11) / 10.0)::numeric, 2), 1 + i % 3
            FROM generate_series($1, $(($1 + $2 - 1))) i"
}
worker_pid() { q -d postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'sales_api worker'"; }

# 1. SIGKILL mid-batch
insert_sales 0 3000
wait_for "$(posts_in_flight) AND (SELECT count(*) FROM sales_api.outbox WHERE state = 'sent') > 0" 60 "a batch in flight"
pid=$(worker_pid)
echo "killing worker $pid with SIGKILL while a batch is in flight"
kill -9 "$pid"
# the postmaster restarts everything (queries fail meanwhile); the killed
# worker may still be listed until it does
wait_for "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'sales_api worker' AND pid <> $pid" 60 "the worker to be restarted"
echo "worker restarted as $(worker_pid)"
wait_for "$(drained)" 180 "the backlog after SIGKILL"
python3 "$(dirname "$0")/../lib/compare.py" sigkill-mid-batch

# 2. pg_ctl restart -m immediate mid-batch
insert_sales 3000 3000
wait_for "$(posts_in_flight)" 60 "a batch in flight"
echo "restarting PostgreSQL with -m immediate while a batch is in flight"
runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$PGDATA" -m immediate -w restart -l "$SA_PGLOG" >/dev/null
wait_for "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'sales_api worker'" 60 "the worker after the restart"
wait_for "$(drained)" 180 "the backlog after the immediate restart"
python3 "$(dirname "$0")/../lib/compare.py" immediate-restart-mid-batch
# how the in-flight items were settled (window replacement after an expired lease)
qs -c "SELECT state, coalesce(left(last_error, 60), '') AS how, count(*) FROM sales_api.outbox GROUP BY 1, 2 ORDER BY 1, 2"
expect_eq "$(q -c "SELECT count(*) > 0 FROM sales_api.outbox WHERE last_error LIKE 'settled by replacing%'")" t "ambiguous posts settled by window replacement"
echo "crash scenario passed"
