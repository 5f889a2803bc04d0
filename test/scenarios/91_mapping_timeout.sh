#!/usr/bin/env bash
# A mapping is code its table's owner wrote; in the worker it runs with the
# owner's rights (83_least_privilege) and within sales_api.worker_mapping_timeout.
# One owner's Mapal mapping calls a function that sleeps: the worker cancels
# that statement, the capture's slots wait with the error, and the other
# table's sales are delivered meanwhile; once the function is fixed, the
# waiting slots go out too.  A function that catches the cancel (EXCEPTION
# WHEN query_canceled) and goes on gets the worker stopped (a FATAL, which
# no exception block catches) 2 s after the cancel: the launcher starts it
# again, the capture's lane waits with its circuit open and says why, and
# the other lanes go on.  The lane waits so even with the circuit breaker
# off (sales_api.circuit_failures = 0), and a function that evaluates
# another mapping inside its own (a _local_* reader) does not disarm the
# outer statement's limits.
. "$(dirname "$0")/../lib/scenario.sh"
. "$(dirname "$0")/../faults/lib.sh"
scenario_setup
make_locations 2
trap 'q -c "ALTER SYSTEM RESET sales_api.worker_mapping_timeout" -c "ALTER SYSTEM RESET sales_api.circuit_failures" -c "ALTER SYSTEM RESET sales_api.circuit_open_time" -c "ALTER SYSTEM RESET sales_api.lease_time" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true' EXIT
q -c "ALTER SYSTEM SET sales_api.worker_mapping_timeout = '1s'" >/dev/null
reload_conf
worker_cycles 2   # the worker runs with the 1 s limit before the slow sale comes
q <<'SQL' >/dev/null
DROP SCHEMA IF EXISTS slow CASCADE;
CREATE SCHEMA slow;
CREATE TABLE slow.sales (id bigserial PRIMARY KEY, store int NOT NULL, sold_at timestamptz NOT NULL, net numeric NOT NULL);
-- the owner's function: slow while slow.stuck says so
CREATE TABLE slow.stuck (on_ boolean NOT NULL);
INSERT INTO slow.stuck VALUES (true);
CREATE FUNCTION slow.net(n numeric) RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT on_ FROM slow.stuck) THEN PERFORM pg_sleep(60); END IF;
    RETURN n;
END $$;
SELECT sales_api.attach('slow.sales', 'mapal', '{"unit_id": "1000 + store", "sold_at": "sold_at",
  "currency_id": "''EUR''", "sales_type_id": "''EAT_IN''", "net_sales": "slow.net(net)", "gross_sales": "net"}');
SQL
attach_connecteam
q -c "INSERT INTO slow.sales (store, sold_at, net) VALUES (1, '2026-11-20 10:00+00', 10)"
q -c "INSERT INTO pos_sales (store, sold_at, net, tax) VALUES (2, '2026-11-20 10:05+00', 20, 2)"
wait_for "SELECT count(*) = 1 FROM sales_api.outbox WHERE kind = 'ct_post' AND state = 'sent'" 20 "the other table's sale (the slow one sleeps 60 s)"
pass "the other table's sale is delivered while the slow mapping waits"
wait_for "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'mapal_slot' AND state = 'failed'
                          AND last_error LIKE '%canceling statement due to statement timeout%')" 60 "the slow slot to fail with the timeout"
pass "the slow mapping's slot waits with the timeout as its error"
grep -q "could not read the POS table of capture .*statement timeout" "$SA_PGLOG" || fail "no WARNING in the log"
pass "the worker logs it"
q -c "UPDATE slow.stuck SET on_ = false" >/dev/null
wait_for "$(drained)" 60 "the slot once the function is fixed"
expect_eq "$(mockctl mapal-sales --unit 1001 | wc -l | tr -d ' ')" 1 "Mapal holds the slot"

echo "--- a mapping that catches the cancel and goes on (circuit breaker off, leases of 2 s)"
q -c "ALTER SYSTEM SET sales_api.circuit_failures = 0" -c "ALTER SYSTEM SET sales_api.circuit_open_time = '30s'" \
  -c "ALTER SYSTEM SET sales_api.lease_time = '2s'" >/dev/null
reload_conf
q <<'SQL' >/dev/null
DROP SCHEMA IF EXISTS stubborn CASCADE;
CREATE SCHEMA stubborn;
CREATE TABLE stubborn.sales (id bigserial PRIMARY KEY, store int NOT NULL, sold_at timestamptz NOT NULL, net numeric NOT NULL);
CREATE FUNCTION stubborn.net(n numeric) RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('stubborn.inner', true) = 'on' THEN
        RETURN n;
    END IF;
    -- another mapping evaluated inside this one (its own, through a reader)
    PERFORM set_config('stubborn.inner', 'on', true);
    PERFORM count(*) FROM sales_api._mapal_slot_totals(
        (SELECT max(id) FROM sales_api.capture WHERE relid = 'stubborn.sales'::regclass), 1001, date '2026-11-20');
    PERFORM set_config('stubborn.inner', 'off', true);
    LOOP
        BEGIN
            PERFORM pg_sleep(3600);
        EXCEPTION WHEN query_canceled THEN
            NULL;
        END;
    END LOOP;
END $$;
SELECT sales_api.attach('stubborn.sales', 'mapal', '{"unit_id": "1000 + store", "sold_at": "sold_at",
  "currency_id": "''EUR''", "sales_type_id": "''TAKE''", "net_sales": "stubborn.net(net)", "gross_sales": "net"}');
SQL
pid0=$(worker_pid)
q -c "INSERT INTO stubborn.sales (store, sold_at, net) VALUES (1, '2026-11-20 11:00+00', 10)"
wait_log "ran past sales_api.worker_mapping_timeout \(1000 ms\) and went on after its cancel" 60
pass "the worker is stopped once the mapping goes on after its cancel, and says why"
fs_wait_new_worker "$pid0" 60 || fail "the launcher did not start the worker again"
pass "the launcher starts the worker again"
expect_eq "$(q -c "SELECT circuit || ' ' || (last_error LIKE '%capture % ran past sales_api.worker_mapping_timeout%')
                   FROM sales_api.lane_status WHERE server_name = 'mapal'")" "open true" \
    "the Mapal lane waits with its circuit open and says why"
q -c "INSERT INTO pos_sales (store, sold_at, net, tax) VALUES (2, '2026-11-20 11:05+00', 30, 3)"
wait_for "SELECT count(*) = 2 FROM sales_api.outbox WHERE kind = 'ct_post' AND state = 'sent'" 30 \
    "a Connecteam sale made after the stop"
pass "the other lanes go on"
# the stubborn slot's lease runs out; the restarted worker does not claim it
# while the lane waits, though the circuit breaker is off
wait_for "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox WHERE kind = 'mapal_slot' AND state = 'in_flight')" 30 \
    "the stopped worker's Mapal slot back from flight"
worker_cycles 5
expect_eq "$(grep -c "ran past sales_api.worker_mapping_timeout" "$SA_PGLOG")" 1 \
    "the worker is not stopped again while the lane waits"
q -c "SELECT sales_api.detach('stubborn.sales', 'mapal')" >/dev/null
echo "mapping timeout scenario passed"
