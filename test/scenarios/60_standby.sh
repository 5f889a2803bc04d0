#!/usr/bin/env bash
# A physical standby of the cluster never runs the launcher nor a worker (the
# launcher registers with BgWorkerStart_RecoveryFinished and starts the
# workers), so it sends nothing; promoted, it drains what the primary had
# enqueued.
. "$(dirname "$0")/../lib/scenario.sh"
scenario_setup
make_locations 1
attach_connecteam
q -c "SELECT sales_api.pause('connecteam')" >/dev/null
q -c "INSERT INTO pos_sales (store, sold_at, net) VALUES (1, '2026-11-23 09:00+00', 2.20)"
# the worker makes the staged sale an item even while the server is paused
wait_for "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox_stage)" 90 "the staged sale to become an outbox item"

SB=$SA_WORK/standby
SBPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
mkdir -p "$SB"; chown postgres "$SB"; chmod 700 "$SB"
runuser -u postgres -- "$PG_BINDIR/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres -D "$SB" -R -X stream -c fast
printf "port = %s\n" "$SBPORT" >> "$SB/postgresql.auto.conf"
# the postmaster logs (DEBUG1) every background worker it registers and starts
printf "log_min_messages = debug1\n" >> "$SB/postgresql.auto.conf"
touch "$SA_WORK/standby.log"; chown postgres "$SA_WORK/standby.log"
runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$SB" -l "$SA_WORK/standby.log" -w -t 60 start >/dev/null
trap 'runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$SB" -m fast -w stop >/dev/null 2>&1 || true' EXIT

expect_eq "$(psql -X -At -p "$SBPORT" -d postgres -c "SELECT pg_is_in_recovery()")" t "the standby is in recovery"
# workers that may start on a hot standby are started as it opens for
# read-only connections (which pg_ctl -w waited for); sales_api's registered
grep -q 'registering background worker "sales_api launcher"' "$SA_WORK/standby.log" \
    || fail "the standby did not register the sales_api launcher"
grep -q 'database system is ready to accept read-only connections' "$SA_WORK/standby.log" \
    || fail "the standby is not open for read-only connections"
expect_eq "$(psql -X -At -p "$SBPORT" -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('sales_api launcher', 'sales_api worker')")" 0 "no launcher and no worker on the standby"
expect_eq "$(psql -X -At -p "$SBPORT" -d "$SA_DB" -c "SELECT count(*) FROM sales_api.outbox WHERE state = 'pending'")" 1 "the standby sees the pending sale"
expect_eq "$(mockctl count --path /connecteam/sales/v1/transactions --method POST)" 0 "nothing was sent"

# the primary is gone; the standby is promoted and its worker drains the outbox
runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
# until the promotion, the standby's postmaster started no sales_api launcher or worker
expect_eq "$(grep -c 'starting background worker process "sales_api \(launcher\|worker\)' "$SA_WORK/standby.log")" 0 \
    "no launcher or worker started on the standby while it was in recovery"
runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$SB" -w promote >/dev/null
psql -X -q -p "$SBPORT" -d "$SA_DB" -c "SELECT sales_api.resume('connecteam')" >/dev/null
(export PGPORT=$SBPORT; wait_for "SELECT count(*) = 1 FROM sales_api.outbox WHERE state = 'sent'" 60 "the promoted standby to send the sale")
grep -q 'starting background worker process "sales_api launcher"' "$SA_WORK/standby.log" \
    || fail "the promoted standby's launcher start is not in its log (the check above would see nothing)"
expect_eq "$(mockctl count --path /connecteam/sales/v1/transactions --method POST)" 1 "the promoted standby sent the sale"
runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$SB" -m fast -w stop >/dev/null
runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$PGDATA" -l "$SA_PGLOG" -w -t 60 start >/dev/null
echo "standby scenario passed"
