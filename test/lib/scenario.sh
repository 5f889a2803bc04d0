# test/lib/scenario.sh: helpers for the scenario tests (test/scenarios/*.sh).
# They run against the cluster and mock started by test/run-tests (or
# test/with-env), in the database the worker drains (sales_api.database).
set -euo pipefail
SA_DB=${SA_DB:-sa_worker}
PSQL=${PSQL:-psql}

q()  { $PSQL -X -q -v ON_ERROR_STOP=1 -At -d "$SA_DB" "$@"; }   # quiet, tuples only
qs() { $PSQL -X -q -v ON_ERROR_STOP=1 -d "$SA_DB" "$@"; }       # with headers

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# wait_for "SQL returning true" SECONDS [what]
wait_for() {
    local sql=$1 limit=${2:-60} what=${3:-$1} i=0
    while [ "$(q -c "$sql")" != "t" ]; do
        i=$((i + 1))
        if [ "$i" -gt $((limit * 5)) ]; then
            echo "timed out after ${limit}s waiting for: $what" >&2
            qs -c "SELECT * FROM sales_api.outbox_status ORDER BY 1, 2" >&2 || true
            return 1
        fi
        sleep 0.2
    done
}

# wait_until "SHELL CONDITION" SECONDS [what]: like wait_for, for a shell test
wait_until() {
    local cond=$1 limit=${2:-60} what=${3:-$1} end=$((SECONDS + ${2:-60}))
    until eval "$cond"; do
        if [ "$SECONDS" -ge "$end" ]; then
            echo "timed out after ${limit}s waiting for: $what" >&2
            return 1
        fi
        sleep 0.2
    done
}

# wait_log "REGEX" SECONDS [what]: until the server log has a matching line
wait_log() {
    local pattern=$1
    wait_until 'grep -qE -- "$pattern" "$SA_PGLOG"' "${2:-60}" "${3:-the server log to say: $1}"
}

# reload_conf: pg_reload_conf(), then wait until the postmaster has read the
# files: a new session's pg_conf_load_time() is the postmaster's, and the
# postmaster signals every process (the worker too) as it reloads.
reload_conf() {
    local t
    t=$(q -d postgres -c "SELECT clock_timestamp()")
    q -d postgres -c "SELECT pg_reload_conf()" >/dev/null
    wait_for "SELECT pg_conf_load_time() >= '$t'" 60 "the server to reload its configuration"
}

# worker_cycles [N]: wake the worker until it has finished N more cycles
# (default 2: the first may have begun before the call, the second began
# after it).  After reload_conf, it proves the worker runs with the new
# settings (it reloads at the top of its loop); after a change, that the
# worker has had its chance to act on it.
worker_cycles() {
    local n=${1:-2} c0
    c0=$(q -c "SELECT cycles FROM sales_api.worker_stats()")
    wait_for "SELECT cycles >= $c0 + $n FROM sales_api.worker_stats(), sales_api.wake_worker()" 120 \
        "the worker to run $n more cycles"
}

# worker_waits_on_lock: SQL, true while the worker waits for a lock
worker_waits_on_lock="SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'sales_api worker' AND wait_event_type = 'Lock')"

# mock_idle: until the mock answers no vendor request (a delayed or held one
# has been processed and stored)
mock_idle() {
    wait_until '[ "$(mockctl inflight)" = 0 ]' "${1:-120}" "the mock to finish the requests it is answering"
}

# Sessions held open across steps of a test: a psql reading a FIFO, so that
# the test, not a pg_sleep, decides when a transaction ends.
#   session_open NAME [DB]     start it (application_name sa_NAME), connected
#   session_send NAME SQL...   send lines (end statements with ;), do not wait
#   session_sync NAME          wait until everything sent has run
#   session_run NAME SQL...    send, then sync
#   session_done NAME          true once everything sent has run
#   session_close NAME         quit it (an open transaction rolls back), wait for it
# Its output is in $SA_SESSIONS/NAME.out.  A session that fails stops (ON_ERROR_STOP).
SA_SESSIONS=${SA_WORK:-${TMPDIR:-/tmp}}/sessions.$$
declare -gA SESSION_FD=() SESSION_PID=() SESSION_N=()

session_open() {
    local name=$1 fd
    mkdir -p "$SA_SESSIONS"
    rm -f "$SA_SESSIONS/$name".*
    mkfifo "$SA_SESSIONS/$name.in"
    PGAPPNAME="sa_$name" $PSQL -X -q -v ON_ERROR_STOP=1 -d "${2:-$SA_DB}" \
        < "$SA_SESSIONS/$name.in" > "$SA_SESSIONS/$name.out" 2>&1 &
    SESSION_PID[$name]=$!
    exec {fd}> "$SA_SESSIONS/$name.in"
    SESSION_FD[$name]=$fd
    SESSION_N[$name]=0
    session_send "$name"
    session_sync "$name"
}

session_send() {
    local name=$1 n; shift
    n=$((SESSION_N[$name] + 1))
    SESSION_N[$name]=$n
    # the marker file appears once psql has run what comes before it; a
    # subshell, so that a psql that has died costs a SIGPIPE to it alone
    (printf '%s\n' "$@" "\\! touch $SA_SESSIONS/$name.$n" >&"${SESSION_FD[$name]}") 2>/dev/null || true
}

session_done() {
    [ -e "$SA_SESSIONS/$1.${SESSION_N[$1]}" ]
}

session_sync() {
    local name=$1
    wait_until "session_done $name || ! kill -0 ${SESSION_PID[$name]} 2>/dev/null" 120 "session $name" || true
    if ! session_done "$name"; then
        cat "$SA_SESSIONS/$name.out" >&2
        fail "session $name did not run what it was sent"
    fi
}

session_run() {
    session_send "$@"
    session_sync "$1"
}

session_close() {
    local name=$1 fd=${SESSION_FD[$1]} rc=0
    # \q, not only the end of input: a child started since holds the FIFO open too
    (printf '\\q\n' >&"$fd") 2>/dev/null || true
    exec {fd}>&-
    wait "${SESSION_PID[$name]}" || rc=$?
    unset "SESSION_FD[$name]" "SESSION_PID[$name]" "SESSION_N[$name]"
    return "$rc"
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
    if [ "$1" = "$2" ]; then pass "$3 ($1)"; else fail "$3: got '$1', expected '$2'"; fi
}

# A fresh database with the extension, a POS sales table, and servers for
# both vendors pointing at the mock.  The worker (sales_api.database = sa_worker)
# picks it up on its next cycle.
scenario_setup() {
    mockctl reset >/dev/null
    # Mapal units 1001..1010 (the mock knows 1001..1003 by default)
    mockctl config mapal_units="$(python3 -c 'import json; print(json.dumps({str(u): {"currencies": ["EUR"], "salesTypes": ["EAT_IN", "TAKE", "DELIVERY"]} for u in range(1001, 1011)}))')" >/dev/null
    q -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$SA_DB' AND pid <> pg_backend_pid() AND backend_type = 'client backend'" >/dev/null
    q -c "DROP EXTENSION IF EXISTS sales_api CASCADE" >/dev/null 2>&1 || true
    q -c "DROP TABLE IF EXISTS pos_sales CASCADE" >/dev/null
    q -v mock_url="$MOCK_URL" <<'SQL'
CREATE EXTENSION sales_api;
\set token_url :mock_url/connect/token
\set sales_url :mock_url/mapal-sales
\set cashrec_url :mock_url/cashrec
\set ct_url :mock_url/connecteam
CREATE SERVER mapal FOREIGN DATA WRAPPER sales_api OPTIONS (
    vendor 'mapal', token_url :'token_url', sales_url :'sales_url', cashrec_url :'cashrec_url',
    timezone 'UTC', slot_minutes '15');
CREATE USER MAPPING FOR CURRENT_USER SERVER mapal
    OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE SERVER connecteam FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER connecteam OPTIONS (api_key 'ct-key-123');
CREATE TABLE pos_sales (
    id        bigserial PRIMARY KEY,
    store     integer NOT NULL,        -- Connecteam location id and Mapal unit id
    sold_at   timestamptz NOT NULL,
    kind      text NOT NULL DEFAULT 'SALE',
    channel   text NOT NULL DEFAULT 'EAT_IN',
    net       numeric(12,2) NOT NULL,
    tax       numeric(12,2) NOT NULL DEFAULT 0,
    guests    integer NOT NULL DEFAULT 1
);
SQL
}

# Connecteam locations in the mock for stores 1..N (ids are assigned 1, 2, ...)
make_locations() {
    local n=$1
    for i in $(seq 1 "$n"); do mockctl ct-add-location "store $i" >/dev/null; done
}

attach_connecteam() {
    q <<'SQL' >/dev/null
SELECT sales_api.attach('pos_sales', 'connecteam', '{
  "location_id": "store", "sale_type": "kind", "created_at": "sold_at",
  "final_sale_amount": "net", "tax_amount": "tax", "currency": "''EUR''"}');
SQL
}

# ct_database NAME: a database of its own with sales_api, a Connecteam server
# on the mock and a POS table pos_sales (store, sold_at, net) captured for it;
# the setup's stderr (attach()'s warnings) in $SA_WORK/db-NAME.err
ct_database() {
    q -d postgres -c "CREATE DATABASE $1" >/dev/null
    q -d "$1" -v mock_url="$MOCK_URL" <<'SQL' >/dev/null 2>"$SA_WORK/db-$1.err"
CREATE EXTENSION sales_api;
\set ct_url :mock_url/connecteam
CREATE SERVER connecteam FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url :'ct_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER connecteam OPTIONS (api_key 'ct-key-123');
CREATE TABLE pos_sales (id bigserial PRIMARY KEY, store integer NOT NULL, sold_at timestamptz NOT NULL,
                        net numeric(12,2) NOT NULL);
SELECT sales_api.attach('pos_sales', 'connecteam', '{"location_id": "store", "sale_type": "''SALE''",
  "created_at": "sold_at", "final_sale_amount": "net"}');
SQL
}

attach_mapal() {
    q <<'SQL' >/dev/null
SELECT sales_api.attach('pos_sales', 'mapal', '{
  "unit_id": "1000 + store", "sold_at": "sold_at", "currency_id": "''EUR''",
  "sales_type_id": "channel", "net_sales": "net", "gross_sales": "net + tax",
  "num_guests": "guests"}');
SQL
}

# Connecteam posts in flight: items, or staged sales the worker leased (0.8)
posts_in_flight() {
    echo "SELECT EXISTS (SELECT 1 FROM sales_api.outbox WHERE state = 'in_flight' AND kind = 'ct_post')" \
         "OR EXISTS (SELECT 1 FROM sales_api.outbox_stage WHERE lease_until IS NOT NULL)"
}
# how many items and staged sales are in flight, as outbox_status counts them
in_flight_count() {
    q -c "SELECT coalesce(sum(items), 0) FROM sales_api.outbox_status WHERE state = 'in_flight'"
}

# Everything delivered: no item waiting, in flight or failed, and no staged
# sale (0.6) still to be made an item.
drained() {
    if [ "$(q -c "SELECT to_regclass('sales_api.outbox_stage') IS NOT NULL")" = t ]; then
        echo "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox WHERE state IN ('pending', 'in_flight', 'failed'))" \
             "AND NOT EXISTS (SELECT 1 FROM sales_api.outbox_stage)" \
             "AND (to_regclass('sales_api.mapal_stage') IS NULL OR NOT EXISTS (SELECT 1 FROM sales_api.mapal_stage))"
    else
        echo "SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox WHERE state IN ('pending', 'in_flight', 'failed'))"
    fi
}
