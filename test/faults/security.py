#!/usr/bin/env python3
"""test/faults/security.py: the security model, checked.

  * a role without a user mapping cannot call the vendors (every vendor
    function), and nothing reaches the vendor;
  * a role cannot read the outbox, the captures, the stored transaction ids
    or the status view, nor another role's user-mapping options;
  * PUBLIC can execute no function that sends or reads vendor data (only the
    pure helpers version, time_slot and mapal_slot, and the local-figure
    readers, which check that the caller may SELECT the captured table);
  * only https:// unless the superuser-only sales_api.allow_http is on;
  * TLS verification cannot be turned off: no server option for it, the CA
    bundle is superuser-only, a self-signed vendor is refused;
  * row values put into URLs are escaped: a transaction id or a location
    name cannot change the path, the query or the host (from SQL and from
    the worker, whose ids come from the vendor).

Prints one line per check and "security: N checks, M passed"; exit status 1
unless all passed.  Needs the cluster and mock of test/run-tests or
test/with-env; works in its own database (sa_security) and, for the worker,
in sa_worker.
"""
import os
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pgmock import crashed, lit, mock, mock_requests_since, mock_seq, psql, sqlstate  # noqa: E402

DB = "sa_security"
MOCK = os.environ["MOCK_URL"]
MOCK_SS = os.environ["MOCK_SS_URL"]
MOCK_HTTP = os.environ["MOCK_HTTP_URL"]
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok    " if ok else "FAIL  ") + name + ("" if ok else ": " + detail))


def run(sql, user=None, db=DB):
    """-> (SQLSTATE or None, stdout, stderr, requests the mock received)"""
    seq = mock_seq()
    rc, out, err = psql(sql, db, user=user)
    st = sqlstate(err)
    if crashed(err):
        st = ("CRASH", "CRASH", err)
    return (st[1] if st else None), out.strip(), err.strip(), mock_requests_since(seq)


def expect_error(name, sql, states, user=None, may_send=False):
    states = (states,) if isinstance(states, str) else states
    st, out, err, sent = run(sql, user)
    ok = st in states and (may_send or not sent)
    check(name, ok, f"expected {'/'.join(states)}, got {st or 'no error'} {err[-200:] or out[:200]!r}; "
                    f"{len(sent)} request(s) sent")


SETUP = f"""
SET client_min_messages = warning;
DROP ROLE IF EXISTS sec_nomap; DROP ROLE IF EXISTS sec_plain; DROP ROLE IF EXISTS sec_a; DROP ROLE IF EXISTS sec_b;
CREATE ROLE sec_nomap LOGIN; CREATE ROLE sec_plain LOGIN; CREATE ROLE sec_a LOGIN; CREATE ROLE sec_b LOGIN;
CREATE EXTENSION sales_api;
CREATE SERVER mapal FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url '{MOCK}/connect/token',
    sales_url '{MOCK}/mapal-sales', cashrec_url '{MOCK}/cashrec', timezone 'UTC');
CREATE SERVER connecteam FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url '{MOCK}/connecteam');
CREATE USER MAPPING FOR CURRENT_USER SERVER mapal OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE USER MAPPING FOR CURRENT_USER SERVER connecteam OPTIONS (api_key 'ct-key-123');
CREATE USER MAPPING FOR sec_a SERVER connecteam OPTIONS (client_id 'ct-client', client_secret 'ct-secret');
CREATE USER MAPPING FOR sec_a SERVER mapal OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
-- sec_nomap and sec_b may use everything but have no mapping of their own
GRANT USAGE ON SCHEMA sales_api TO sec_nomap, sec_a, sec_b;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA sales_api TO sec_nomap, sec_a, sec_b;
GRANT USAGE ON FOREIGN SERVER mapal, connecteam TO sec_nomap, sec_a, sec_b;
GRANT USAGE ON FOREIGN DATA WRAPPER sales_api TO sec_a;
CREATE TABLE sec_sales (id bigserial PRIMARY KEY, store int NOT NULL, sold_at timestamptz NOT NULL, net numeric NOT NULL);
SELECT sales_api.attach('sec_sales', 'connecteam', '{{"location_id": "store", "sale_type": "''SALE''",
    "created_at": "sold_at", "final_sale_amount": "net"}}');
"""

VENDOR_CALLS = {
    "check_server": "SELECT * FROM sales_api.check_server({s})",
    "mapal_push_sales": "SELECT * FROM sales_api.mapal_push_sales({s}, ARRAY[ROW(1001, '2026-11-20', 'EUR', 'TAKE', "
                        "'2026-11-20 10:00', 1, 2, 1, 1)::sales_api.mapal_sale])",
    "cashrec_fetch": "SELECT * FROM sales_api.cashrec_fetch({s}, '2026-11-20', '2026-11-20 23:59', '{{101}}')",
    "connecteam_post_transactions": "SELECT * FROM sales_api.connecteam_post_transactions({s}, ARRAY[ROW(1, 'SALE', "
                                    "now(), 1, NULL, NULL, 'r')::sales_api.connecteam_transaction])",
    "connecteam_locations": "SELECT * FROM sales_api.connecteam_locations({s})",
    "connecteam_create_location": "SELECT * FROM sales_api.connecteam_create_location({s}, 'x')",
    "connecteam_delete_transaction": "SELECT sales_api.connecteam_delete_transaction({s}, 'x')",
    "connecteam_delete_transactions": "SELECT sales_api.connecteam_delete_transactions({s}, 1, now(), now())",
    "connecteam_daily_sales": "SELECT * FROM sales_api.connecteam_daily_sales({s}, current_date, current_date)",
    "connecteam_set_projected_sales": "SELECT * FROM sales_api.connecteam_set_projected_sales({s}, 1, "
                                      "ARRAY[(current_date, 1)]::sales_api.connecteam_projected_sale[])",
    "reconcile_connecteam": "SELECT * FROM sales_api.reconcile_connecteam({s}, current_date, current_date)",
}


def server_of(fn):
    return "'mapal'" if fn in ("mapal_push_sales", "cashrec_fetch") else "'connecteam'"


def main():
    mock("POST", "/_mock/reset")
    mock("POST", "/_mock/connecteam/locations", {"locations": [{"name": "store 1"}]})
    psql(f"DROP DATABASE IF EXISTS {DB}", "postgres")
    psql(f"CREATE DATABASE {DB}", "postgres")
    rc, out, err = psql(SETUP, DB)
    if rc != 0:
        sys.exit("security setup failed: " + err)

    # --- 1. no user mapping: no vendor call ---------------------------------------------
    for fn, sql in VENDOR_CALLS.items():
        if "reconcile" in fn and "reconcile_connecteam" not in psql(
                "SELECT to_regproc('sales_api.reconcile_connecteam')", DB)[1]:
            continue
        # (reconcile_connecteam reads the captures first: permission denied before any call)
        expect_error(f"a role without a user mapping cannot call {fn}", sql.format(s=server_of(fn)),
                     ("42704", "42501") if "reconcile" in fn else "42704", user="sec_nomap")
    # nor borrow another role's mapping by naming it: there is no such argument,
    # and SET ROLE to it is not granted
    expect_error("a role cannot switch to a role that has a mapping", "SET ROLE sec_a", "42501", user="sec_b")

    # --- 2. reading what is not yours ---------------------------------------------------------
    for rel in ("sales_api.outbox", "sales_api.capture", "sales_api.connecteam_sent", "sales_api.outbox_status",
                "sales_api.server_state"):
        expect_error(f"a role with USAGE on the schema cannot read {rel}", f"SELECT count(*) FROM {rel}", "42501",
                     user="sec_nomap")
        expect_error(f"a role without USAGE on the schema cannot read {rel}", f"SELECT count(*) FROM {rel}", "42501",
                     user="sec_plain")
    expect_error("a role without grants cannot call a vendor function",
                 VENDOR_CALLS["connecteam_locations"].format(s="'connecteam'"), "42501", user="sec_plain")
    st, out, err, _ = run("SELECT usename, srvname, umoptions IS NULL FROM pg_user_mappings ORDER BY 1, 2", user="sec_b")
    hidden = out and all(line.endswith("|t") for line in out.splitlines())
    check("another role's mapping options are hidden (pg_user_mappings)", st is None and hidden, out)
    st, out, err, _ = run("SELECT umoptions FROM pg_user_mappings WHERE usename = 'sec_a'", user="sec_a")
    check("a role sees its own mapping options", st is None and "ct-secret" in out, out)
    expect_error("the catalog pg_user_mapping is not readable", "SELECT umoptions FROM pg_user_mapping", "42501",
                 user="sec_b")
    # the secrets are looked for in what comes back, never written into the query: the
    # activity sampler of 99_no_secrets would find them in pg_stat_activity
    st, out, err, _ = run("SELECT coalesce(string_agg(umoptions::text, ' '), '') FROM pg_user_mappings",
                          user="sec_nomap")
    check("no secret is visible to a role without a mapping",
          st is None and not any(x in out for x in ("pos-pass", "ct-secret", "ct-key")), "(options not shown)")

    # --- 3. PUBLIC and execute rights ------------------------------------------------------------
    st, out, err, _ = run("""
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE p.pronamespace = 'sales_api'::regnamespace
           AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a
                                             WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))
         ORDER BY 1""")
    public = set(out.splitlines())
    allowed = {"sales_api.version()", "sales_api.time_slot(timestamp with time zone,integer,text)",
               "sales_api.mapal_slot(name,timestamp with time zone)",
               # read captured tables only for a caller that may SELECT them
               "sales_api._local_connecteam_totals(name,date,date,bigint[],text)",
               "sales_api._local_mapal_sales(name,timestamp without time zone,timestamp without time zone)",
               "sales_api._mapal_slot_totals(integer,bigint,date)",
               # a server's OID from pg_foreign_server, which every role may read
               "sales_api._server_oid(name)",
               # reads sales_api's tables with the caller's own rights
               "sales_api._reconcile_connecteam(name,date,date,bigint[],text,bigint[],date[],numeric[],numeric[])"}
    check("PUBLIC may execute only the pure helpers and the table readers that check SELECT",
          st is None and public <= allowed, "PUBLIC may execute: " + ", ".join(sorted(public - allowed)))
    # row-level security: the local-figure readers evaluate the mapping as the table's owner,
    # whom the table's policies do not restrict; a caller they restrict is refused
    st, out, err, _ = run("""
        INSERT INTO sec_sales (store, sold_at, net) VALUES (1, '2026-11-20 10:00+00', 5), (2, '2026-11-20 11:00+00', 7);
        GRANT SELECT ON sec_sales TO sec_b;
        ALTER TABLE sec_sales ENABLE ROW LEVEL SECURITY;
        CREATE POLICY sec_store1 ON sec_sales FOR SELECT TO sec_b USING (store = 1);
        SET ROLE sec_b;
        SELECT count(*) FROM sec_sales;""")
    check("row-level security: the policy shows sec_b one of the two sales", st is None and out == "1", err or out)
    local = "SELECT count(*) FROM sales_api._local_connecteam_totals('connecteam', '2026-11-20', '2026-11-20', NULL, 'UTC')"
    expect_error("a role that row-level security restricts cannot read the table's figures through the mapping",
                 local, "42501", user="sec_b")
    st, out, err, _ = run(local)
    check("the table's owner reads the figures of both stores", st is None and out == "2", err or out)
    # attach() and detach() check ownership before they lock the table: a caller that does not own
    # it must not queue a lock request that every later writer of the table waits behind
    # (the writer keeps its lock until it is terminated below, however long the checks take)
    holder = subprocess.Popen(["psql", "-X", "-q", "-At", "-d", DB, "-c",
                               "BEGIN; INSERT INTO sec_sales (store, sold_at, net) VALUES (3, now(), 1); "
                               "SELECT pg_sleep(600); ROLLBACK;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=dict(os.environ, PGAPPNAME="sec_holder"))
    try:
        for _ in range(100):
            if run("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                   "WHERE c.relname = 'sec_sales' AND l.mode = 'RowExclusiveLock' AND l.granted")[1] == "1":
                break
            time.sleep(0.05)
        for fn, call in (("attach", "sales_api.attach('sec_sales', 'mapal', '{}')"),
                         ("detach", "sales_api.detach('sec_sales', 'connecteam')")):
            expect_error(f"{fn}() of a table the caller does not own is refused before it waits for a lock",
                         f"SET lock_timeout = '2s'; SELECT {call}", "42501", user="sec_b")
    finally:
        run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sec_holder'")
        holder.wait(60)
    st, out, err, _ = run("SELECT has_schema_privilege('public', 'sales_api', 'USAGE')")
    check("PUBLIC has no USAGE on schema sales_api", out == "f", out)
    st, out, err, _ = run("SELECT count(*) FROM pg_foreign_server s WHERE s.srvname IN ('mapal', 'connecteam')"
                          " AND EXISTS (SELECT 1 FROM aclexplode(s.srvacl) a WHERE a.grantee = 0)")
    check("PUBLIC has no USAGE on the servers", out == "0", out)

    # --- 4. https only -----------------------------------------------------------------------------
    expect_error("a non-superuser cannot create an http:// server",
                 f"CREATE SERVER sec_http FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url "
                 f"{lit(MOCK_HTTP + '/connecteam')})", ("22023", "HV024"), user="sec_a")
    expect_error("a non-superuser cannot turn on sales_api.allow_http", "SET sales_api.allow_http = on", "42501",
                 user="sec_a")
    expect_error("a non-superuser cannot ALTER SYSTEM sales_api.allow_http", "ALTER SYSTEM SET sales_api.allow_http = on",
                 "42501", user="sec_a")
    st, out, err, sent = run(f"""
        SET sales_api.allow_http = on;
        CREATE SERVER sec_http FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url {lit(MOCK_HTTP + '/connecteam')});
        CREATE USER MAPPING FOR CURRENT_USER SERVER sec_http OPTIONS (api_key 'ct-key-123');
        GRANT USAGE ON FOREIGN SERVER sec_http TO sec_a;
        CREATE USER MAPPING FOR sec_a SERVER sec_http OPTIONS (api_key 'ct-key-123');
        SELECT auth_ok FROM sales_api.check_server('sec_http');""")
    check("a superuser's test setting allows http://", st is None and out == "t", err or out)
    expect_error("an http:// server is refused once the setting is off (no request)",
                 "SELECT count(*) FROM sales_api.connecteam_locations('sec_http')", ("22023", "08001"))
    expect_error("a non-superuser cannot use an http:// server a superuser made",
                 "SELECT count(*) FROM sales_api.connecteam_locations('sec_http')", ("22023", "08001"), user="sec_a")

    # --- 5. TLS verification -----------------------------------------------------------------------
    expect_error("a non-superuser cannot change the CA bundle", "SET sales_api.ca_file = '/etc/ssl/certs/ca-certificates.crt'",
                 "42501", user="sec_a")
    for opt in ("verify 'off'", "ssl_verify 'false'", "insecure 'true'", "ca_file '/tmp/x'", "sslmode 'disable'"):
        expect_error(f"no server option turns verification off ({opt.split()[0]})",
                     f"CREATE SERVER sec_x FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', {opt})", "HV00D",
                     user="sec_a")
    run(f"""CREATE SERVER sec_ss FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url {lit(MOCK_SS + '/connecteam')});
            CREATE USER MAPPING FOR CURRENT_USER SERVER sec_ss OPTIONS (api_key 'ct-key-123');""")
    expect_error("a vendor with a self-signed certificate is refused",
                 "SELECT count(*) FROM sales_api.connecteam_locations('sec_ss')", "08001")
    expect_error("an empty CA bundle setting means the system bundle, still verified",
                 "SET sales_api.ca_file = ''; SELECT count(*) FROM sales_api.connecteam_locations('connecteam')", "08001")

    # --- 6. row values in URLs ------------------------------------------------------------------------
    for tid in ("../../locations", "x/../../../connect/token", "a?locationId=1&x=", "a#frag", "@evil.example.com",
                "%2e%2e%2f", "a b\n", "ñ"):
        st, out, err, sent = run(f"SELECT sales_api.connecteam_delete_transaction('connecteam', {lit(tid)})")
        paths = [r["path"] + ("?" + r["query"] if r.get("query") else "") for r in sent]
        prefix = "/connecteam/sales/v1/transactions/"
        ok = (st == "SA404" and len(paths) >= 1 and all(p.startswith(prefix) and "/" not in p[len(prefix):]
                                                         and "?" not in p and "#" not in p for p in paths))
        check(f"transaction id {tid!r} stays one path segment", ok, f"{st} {paths}")
    st, out, err, sent = run("SELECT count(*) FROM sales_api.connecteam_locations('connecteam', "
                             "names => ARRAY['a&isActive=false', 'b#c', 'd/e?f=g'])")
    qs = [urllib.parse.parse_qsl(r.get("query", ""), keep_blank_values=True) for r in sent]
    check("location names stay query values", st is None and qs and all(
        {k for k, _ in q} <= {"locationNames", "limit", "offset"} and
        [v for k, v in q if k == "locationNames"] == ["a&isActive=false", "b#c", "d/e?f=g"] for q in qs), f"{st} {qs}")

    # the worker: a transaction id from the vendor, with a path in it, is escaped too
    # the worker drains sa_worker: a sale there, then a vendor id with a path in it
    wdb = os.environ.get("SA_DB", "sa_worker")
    psql(f"""SET client_min_messages = warning;
             DROP EXTENSION IF EXISTS sales_api CASCADE; DROP SCHEMA IF EXISTS sales_api CASCADE;
             DROP TABLE IF EXISTS sec_sales;
             CREATE EXTENSION sales_api;
             CREATE SERVER connecteam FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url '{MOCK}/connecteam');
             CREATE USER MAPPING FOR CURRENT_USER SERVER connecteam OPTIONS (api_key 'ct-key-123');
             CREATE TABLE sec_sales (id bigserial PRIMARY KEY, store int NOT NULL, sold_at timestamptz NOT NULL, net numeric NOT NULL);
             SELECT sales_api.attach('sec_sales', 'connecteam', '{{"location_id": "store", "sale_type": "''SALE''",
                 "created_at": "sold_at", "final_sale_amount": "net"}}');
             INSERT INTO sec_sales (store, sold_at, net) VALUES (1, '2026-11-20 10:00+00', 5.00);""", wdb)
    deadline = time.monotonic() + 120
    while psql("SELECT count(*) FROM sales_api.connecteam_sent", wdb)[1].strip() != "1":
        if time.monotonic() > deadline:
            check("the worker delivers the sale (120 s)", False, "no row in sales_api.connecteam_sent")
            break
        time.sleep(0.2)
    seq = mock_seq()
    psql("UPDATE sales_api.connecteam_sent SET transaction_id = '../locations/1?isActive=false#x';"
         "DELETE FROM sec_sales;", wdb)
    sent = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        sent = [r for r in mock_requests_since(seq) if r["method"] == "DELETE"]
        if sent:
            break
        time.sleep(0.2)
    paths = [r["path"] + ("?" + r["query"] if r.get("query") else "") for r in sent]
    prefix = "/connecteam/sales/v1/transactions/"
    check("the worker escapes a vendor's transaction id in its DELETE", bool(paths) and all(
        p.startswith(prefix) and "/" not in p[len(prefix):] and "?" not in p for p in paths), str(paths))
    psql("SET client_min_messages = warning; DROP EXTENSION IF EXISTS sales_api CASCADE; DROP TABLE IF EXISTS sec_sales;", wdb)

    psql(f"DROP DATABASE IF EXISTS {DB}", "postgres")
    psql("DROP ROLE IF EXISTS sec_nomap; DROP ROLE IF EXISTS sec_plain; DROP ROLE IF EXISTS sec_a; DROP ROLE IF EXISTS sec_b;",
         "postgres")
    print(f"security: {len(results)} checks, {sum(results)} passed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
