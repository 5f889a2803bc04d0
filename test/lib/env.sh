# test/lib/env.sh: shared by the README's two commands (test/run-tests, test/demo).
#
# Starts, in one throwaway directory, everything sales_api talks to:
#   - a CA generated now with openssl, a server certificate for 127.0.0.1 and
#     localhost signed by it, and a self-signed certificate for negative tests;
#   - the mock vendor server (test/mock/mock_vendor.py) on free loopback ports;
#   - a PostgreSQL 15 cluster run as the `postgres` OS user (initdb and
#     postgres refuse root) with shared_preload_libraries = 'sales_api' and
#     sales_api.ca_file pointing at the generated CA.
# sa_stop_all undoes it all; callers install it as an EXIT trap.

SA_ROOT=${SA_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
SA_PACKAGES="postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev libjson-c-dev libssl-dev pkg-config make gcc python3 openssl curl"

sa_log() { printf '%s\n' "== $*" >&2; }

# Install the Debian packages the build and the tests need.  On CI (and on any
# machine missing one of them) this runs apt-get update first.
sa_install_deps() {
    local missing=""
    for p in $SA_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ] || [ "${CI:-}" = "true" ]; then
        if [ "$(id -u)" != 0 ]; then
            sa_log "missing packages:$missing (run as root, or install them)"; return 1
        fi
        sa_log "installing Debian packages:${missing:- (refresh)}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends $SA_PACKAGES >/dev/null
    fi
    PG_BINDIR=$(pg_config --bindir)
}

sa_build_install() {
    sa_log "building sales_api with -Wall -Wextra -Werror"
    [ "${CI:-}" = "true" ] && make -C "$SA_ROOT" -s clean >/dev/null
    # a warning fails the build: make install must not then build the same
    # objects again without -Werror and install them
    make -C "$SA_ROOT" -s PG_CFLAGS="${SA_PG_CFLAGS:--Wall -Wextra -Werror}" >/dev/null || return 1
    make -C "$SA_ROOT" -s PG_CFLAGS="${SA_PG_CFLAGS:--Wall -Wextra -Werror}" install >/dev/null || return 1
}

# sa_free_port [N]: N (default 1) distinct free ports, one a line.  The
# sockets are held until all are chosen: the kernel may hand a port it just
# handed out to the next bind(0) once that socket is closed.
sa_free_port() {
    python3 -c '
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); held.append(s)
print("\n".join(str(s.getsockname()[1]) for s in held))' "${1:-1}"
}

sa_make_certs() {
    local d=$SA_WORK/tls
    mkdir -p "$d"
    (
        cd "$d"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
            -subj "/CN=sales_api test CA" -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
            -subj "/CN=127.0.0.1" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -out server.crt -days 2 -extfile ext.cnf 2>/dev/null
        openssl req -x509 -newkey rsa:2048 -nodes -keyout selfsigned.key -out selfsigned.crt \
            -days 2 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
        rm -f ca.key server.csr
        chmod 644 ./*.crt; chmod 600 ./*.key
    )
}

sa_start_mock() {
    local ports; ports=($(sa_free_port 3))
    export MOCK_PORT=${ports[0]} MOCK_SS_PORT=${ports[1]} MOCK_HTTP_PORT=${ports[2]}
    export MOCK_URL="https://127.0.0.1:$MOCK_PORT"
    export MOCK_SS_URL="https://127.0.0.1:$MOCK_SS_PORT"
    export MOCK_HTTP_URL="http://127.0.0.1:$MOCK_HTTP_PORT"
    export MOCK_CA="$SA_WORK/tls/ca.crt"
    export MOCK_STATE_DIR="$SA_WORK/mockstate"
    mkdir -p "$MOCK_STATE_DIR"
    export PATH="$SA_ROOT/test:$PATH"
    python3 -u "$SA_ROOT/test/mock/mock_vendor.py" --port "$MOCK_PORT" \
        --cert "$SA_WORK/tls/server.crt" --key "$SA_WORK/tls/server.key" \
        --selfsigned-port "$MOCK_SS_PORT" --selfsigned-cert "$SA_WORK/tls/selfsigned.crt" \
        --selfsigned-key "$SA_WORK/tls/selfsigned.key" --http-port "$MOCK_HTTP_PORT" \
        > "$SA_WORK/mock.out" 2> "$SA_WORK/mock.log" &
    SA_MOCK_PID=$!
    for _ in $(seq 1 600); do
        grep -q READY "$SA_WORK/mock.out" 2>/dev/null && return 0
        kill -0 "$SA_MOCK_PID" 2>/dev/null || break
        sleep 0.1
    done
    sa_log "the mock vendor server did not start:"; cat "$SA_WORK/mock.log" >&2
    return 1
}

sa_start_pg() {
    export PGPORT=$(sa_free_port) PGHOST="$SA_WORK/sock" PGUSER=postgres PGDATABASE=postgres
    export PGDATA="$SA_WORK/pgdata"
    mkdir -p "$PGHOST" "$PGDATA"
    chown postgres "$PGHOST" "$PGDATA"
    runuser -u postgres -- "$PG_BINDIR/initdb" -D "$PGDATA" -U postgres --auth=trust \
        --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$PGDATA/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = ''
unix_socket_directories = '$PGHOST'
shared_preload_libraries = 'sales_api'
sales_api.ca_file = '$MOCK_CA'
sales_api.database = 'sa_worker'
sales_api.worker_naptime = '2s'
sales_api.retry_base = '200ms'
sales_api.retry_max = '2s'
sales_api.lease_time = '15s'
sales_api.ambiguous_settle_time = '6s'
fsync = off
log_line_prefix = '%m [%p] %q%a '
log_min_messages = info
CONF
    [ -n "${SA_EXTRA_CONF:-}" ] && printf '%s\n' "$SA_EXTRA_CONF" >> "$PGDATA/postgresql.conf"
    export SA_PGLOG="$SA_WORK/postgresql.log"
    touch "$SA_PGLOG"; chown postgres "$SA_PGLOG"
    [ -n "${SA_CORE:-}" ] && ulimit -c unlimited
    runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$PGDATA" -l "$SA_PGLOG" -w -t 60 start >/dev/null
    # the database the background worker drains (scenario tests and the demo)
    "$PG_BINDIR/psql" -X -q -d postgres -c "CREATE DATABASE sa_worker" >/dev/null
}

sa_psql() { "$PG_BINDIR/psql" -X -v ON_ERROR_STOP=1 -q "$@"; }

sa_start_all() {
    SA_WORK=$(mktemp -d /tmp/sales_api.XXXXXX)
    chmod 755 "$SA_WORK"
    export SA_WORK
    sa_make_certs
    sa_start_mock
    sa_start_pg
}

sa_stop_all() {
    if [ -n "${PGDATA:-}" ] && [ -f "$PGDATA/postmaster.pid" ]; then
        runuser -u postgres -- "$PG_BINDIR/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [ -n "${SA_MOCK_PID:-}" ]; then
        kill "$SA_MOCK_PID" 2>/dev/null || true
        wait "$SA_MOCK_PID" 2>/dev/null || true
    fi
    if [ -n "${SA_WORK:-}" ] && [ -z "${SA_KEEP:-}" ]; then
        rm -rf "$SA_WORK"
    fi
}
