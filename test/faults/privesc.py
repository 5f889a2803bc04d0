#!/usr/bin/env python3
"""test/faults/privesc.py: least privilege (issue 12), checked by trying to escalate.

A non-superuser role (regress_pos) owns schema pos, the POS tables and the
functions their mappings call.  Whatever path evaluates a mapping (capture
trigger on INSERT / UPDATE / DELETE / COPY, the worker's Mapal slot
recomputation and Connecteam window replacement, reconcile_connecteam,
reconcile_cashrec, repair_mapal, the scheduled reconciliation), the
function must run with the table owner's rights and never more.  Every
"evil" function is a SECURITY INVOKER plpgsql function of regress_pos that
calls pos.probe(), which tries, each in its own exception block so that it
never fails:

    ALTER ROLE regress_pos SUPERUSER
    GRANT regress_other TO regress_pos
    GRANT SELECT ON other.secrets TO regress_pos
    SELECT count(*) FROM sales_api.outbox
    SELECT count(*) FROM other.secrets              (a table of another role)
    SELECT count(umoptions) FROM pg_user_mapping    (every role's secrets)

and records what it could do in pos.evidence, tagged with the vector the test
is running (pos.phase), the call site, current_user, session_user and the
backend.  It also advances the sequence pos.ran, which a rollback does not
undo: "did not run" and "ran, then rolled back" can be told apart.  The
evil functions return legitimate values, so a legitimate vector's sales are
still captured and delivered (checked against the mock vendor).

After each vector: regress_pos is not a superuser, no role membership or
privilege changed (a snapshot of pg_authid, pg_auth_members and the ACLs
before and after), the evidence shows current_user = regress_pos only and no
successful read; where the vector is legitimate, the function did run and
the sale reached the vendor.  Forged capture triggers must be refused with an
error that writes nothing; attach() must refuse mappings the table owner
could not evaluate, and (design 0.7) let a table's owner attach it under
conditions.

The SQL-call paths run in their own database (sa_privesc, where no worker
runs, so every evaluation there is the call's); the worker paths in the
worker's database (sa_worker).  Everything is created afresh at the start and
dropped at the end (PRIVESC_KEEP=1 keeps the databases and roles for a look;
regress_pos is made NOSUPERUSER and the ALTER SYSTEM settings are reset in
every case).

Prints one line per check ("ok    ..." / "FAIL  ...: why") and
"privesc: N checks, M passed"; exit status 1 unless all passed.  Needs the
cluster and mock of test/run-tests or test/with-env.
"""
import collections
import datetime
import json
import os
import re
import signal
import sys
import time
import urllib.request
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pgmock import CTX, MOCK, crashed, lit, mock, psql, sqlstate  # noqa: E402

POS = "regress_pos"            # owns schema pos, the POS tables and the evil functions
OTHER = "regress_other"        # owns other.secrets, which regress_pos cannot read
SYNC = "regress_pos_sync"      # a role regress_pos is a member of (run_as of vector 15)
ROLES = (POS, SYNC, OTHER)
DB = "sa_privesc"                               # SQL-call paths (no worker there)
WDB = os.environ.get("SA_DB", "sa_worker")      # the worker's database
DBA = os.environ.get("PGUSER", "postgres")      # the superuser that sets things up
WORKER = "sales_api worker"                     # backend_type of the worker
RECONCILE = "sales_api reconcile"               # application_name of the scheduled reconciliation's worker
SECRET = 4242                                   # max(x) of other.secrets
SETTINGS = ("request_timeout", "reconcile_interval", "reconcile_grace", "reconcile_days")
KEEP = bool(os.environ.get("PRIVESC_KEEP"))
DAY = datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=1)   # the sales' day (UTC)

results = []
worker_pids = set()


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok    " if ok else "FAIL  ") + name + ("" if ok else ": " + detail), flush=True)


class SetupError(Exception):
    pass


def run(sql, db, user=None, timeout=60):
    """-> (SQLSTATE or None, stdout, stderr)"""
    rc, out, err = psql(sql, db, timeout=timeout, user=user)
    st = sqlstate(err)
    if crashed(err):
        code = "CRASH"
    elif st:
        code = st[1]
    elif rc != 0:
        code = "rc=%d" % rc
    else:
        code = None
    return code, out.strip(), err.strip()


def must(sql, db, user=None, timeout=60):
    code, out, err = run(sql, db, user, timeout)
    if code:
        raise SetupError("%s%s: %s" % (db, " as " + user if user else "", (err or out)[-600:]))
    return out


def errline(err):
    """The ERROR line psql printed, without the file prefix."""
    for line in err.splitlines():
        if "ERROR:" in line or "FATAL:" in line:
            msg = line.split("ERROR:", 1)[-1].split("FATAL:", 1)[-1].strip()
            return re.sub(r"^[0-9A-Z]{5}: ", "", msg)[:220]
    return err[-220:]


def is_true(sql, db):
    return must(sql, db) == "t"


def wait_until(fn, timeout):
    """Poll fn every 0.2 s until it returns something true, or timeout seconds pass."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > end:
            return v
        time.sleep(0.2)


def mock_state():
    with urllib.request.urlopen(MOCK + "/_mock/state", context=CTX, timeout=30) as r:
        return json.loads(r.read(), parse_float=Decimal)


def ts(n, base="09:00:00"):
    """A distinct second of DAY (UTC) for sale n: Connecteam keeps seconds."""
    t = datetime.datetime.combine(DAY, datetime.time.fromisoformat(base)) + datetime.timedelta(seconds=97 * n)
    return t.strftime("%Y-%m-%d %H:%M:%S") + "+00"


_sale_no = [0]


def next_ts():
    _sale_no[0] += 1
    return ts(_sale_no[0])


# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
def servers_sql():
    return f"""
SET client_min_messages = warning;
CREATE EXTENSION sales_api;
CREATE SERVER mapal FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'mapal', token_url '{MOCK}/connect/token',
    sales_url '{MOCK}/mapal-sales', cashrec_url '{MOCK}/cashrec', timezone 'UTC', slot_minutes '15');
CREATE USER MAPPING FOR CURRENT_USER SERVER mapal
    OPTIONS (username 'pos-user', password 'pos-pass', client_secret 'mapal-secret');
CREATE SERVER connecteam FOREIGN DATA WRAPPER sales_api OPTIONS (vendor 'connecteam', base_url '{MOCK}/connecteam');
CREATE USER MAPPING FOR CURRENT_USER SERVER connecteam OPTIONS (api_key 'ct-key-123');
CREATE SCHEMA pos AUTHORIZATION {POS};
CREATE SCHEMA other AUTHORIZATION {OTHER};
CREATE TABLE other.secrets (x integer, s text);
INSERT INTO other.secrets VALUES ({SECRET}, 'a secret of {OTHER}'), (1, 'another');
ALTER TABLE other.secrets OWNER TO {OTHER};
"""


# Written by regress_pos.  No SET search_path: the mapping's caller decides
# it (design: pg_catalog only), so every name is schema-qualified.
POS_OBJECTS = f"""
SET client_min_messages = warning;
CREATE SEQUENCE pos.ran;
CREATE TABLE pos.phase (v text NOT NULL);
INSERT INTO pos.phase VALUES ('setup');
CREATE TABLE pos.evidence (
    vector     text,            -- pos.phase when it ran: the vector under test
    cur_user   name,
    sess_user  name,
    escalated  boolean,         -- ALTER ROLE / GRANT succeeded
    read_outbox boolean,        -- SELECT from sales_api.outbox succeeded
    read_other boolean,         -- SELECT from other.secrets succeeded
    read_um    boolean,         -- SELECT umoptions FROM pg_user_mapping succeeded
    err        text,            -- why each attempt failed
    site       text,            -- which function / mapping field called the probe
    backend    text,            -- backend_type (NULL when not visible)
    pid        integer,
    app        text,            -- application_name (the reconciliation's worker sets it)
    did        text,            -- what succeeded
    at         timestamptz DEFAULT clock_timestamp());

CREATE FUNCTION pos.probe(site text) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
    esc boolean := false; ro boolean := false; rs boolean := false; ru boolean := false;
    e text := ''; d text := ''; n bigint; b text;
BEGIN
    PERFORM pg_catalog.nextval('pos.ran');      -- survives a rollback
    BEGIN
        EXECUTE 'ALTER ROLE {POS} SUPERUSER';
        esc := true; d := d || 'ALTER ROLE {POS} SUPERUSER; ';
    EXCEPTION WHEN others THEN e := e || 'ALTER ROLE: ' || SQLERRM || '; ';
    END;
    BEGIN
        EXECUTE 'GRANT {OTHER} TO {POS}';
        esc := true; d := d || 'GRANT {OTHER} TO {POS}; ';
    EXCEPTION WHEN others THEN e := e || 'GRANT role: ' || SQLERRM || '; ';
    END;
    BEGIN
        EXECUTE 'GRANT SELECT ON other.secrets TO {POS}';
        esc := true; d := d || 'GRANT SELECT ON other.secrets; ';
    EXCEPTION WHEN others THEN e := e || 'GRANT SELECT: ' || SQLERRM || '; ';
    END;
    BEGIN
        EXECUTE 'SELECT count(*) FROM sales_api.outbox' INTO n;
        ro := true; d := d || 'read sales_api.outbox; ';
    EXCEPTION WHEN others THEN e := e || 'outbox: ' || SQLERRM || '; ';
    END;
    BEGIN
        EXECUTE 'SELECT count(*) FROM other.secrets' INTO n;
        rs := true; d := d || 'read other.secrets; ';
    EXCEPTION WHEN others THEN e := e || 'other.secrets: ' || SQLERRM || '; ';
    END;
    BEGIN
        EXECUTE 'SELECT count(umoptions) FROM pg_catalog.pg_user_mapping' INTO n;
        ru := true; d := d || 'read pg_user_mapping.umoptions; ';
    EXCEPTION WHEN others THEN e := e || 'pg_user_mapping: ' || SQLERRM || '; ';
    END;
    BEGIN
        SELECT a.backend_type INTO b FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_catalog.pg_backend_pid();
    EXCEPTION WHEN others THEN b := NULL;
    END;
    INSERT INTO pos.evidence (vector, cur_user, sess_user, escalated, read_outbox, read_other, read_um, err,
                              site, backend, pid, app, did)
    VALUES ((SELECT p.v FROM pos.phase p LIMIT 1), current_user, session_user, esc, ro, rs, ru, e,
            site, b, pg_catalog.pg_backend_pid(), pg_catalog.current_setting('application_name'), d);
END;
$f$;

-- legitimate values, evil side effects
CREATE FUNCTION pos.evil_num(site text, x numeric) RETURNS numeric LANGUAGE plpgsql AS $f$
BEGIN PERFORM pos.probe(site); RETURN x; END; $f$;
CREATE FUNCTION pos.evil_key(site text, x bigint) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM pos.probe(site); RETURN x::text; END; $f$;
-- IMMUTABLE: the planner folds it when its argument is a constant (at plan time)
CREATE FUNCTION pos.evil_imm(x text) RETURNS text IMMUTABLE LANGUAGE plpgsql AS $f$
BEGIN PERFORM pos.probe('fold'); RETURN x; END; $f$;
-- a type, a cast and an operator of regress_pos
CREATE TYPE pos.amount AS (v numeric);
CREATE FUNCTION pos.amount_num(a pos.amount) RETURNS numeric LANGUAGE plpgsql AS $f$
BEGIN PERFORM pos.probe('cast'); RETURN a.v; END; $f$;
CREATE CAST (pos.amount AS numeric) WITH FUNCTION pos.amount_num(pos.amount);
CREATE FUNCTION pos.op_fn(a numeric, b numeric) RETURNS numeric LANGUAGE plpgsql AS $f$
BEGIN PERFORM pos.probe('operator'); RETURN a + b; END; $f$;
CREATE OPERATOR pos.|+| (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = pos.op_fn);
-- an operator pg_catalog lacks (bigint * interval: pg_catalog has float8 * interval only), which a
-- statement taking its names from the search path would call for "$n * interval" of a bigint
CREATE FUNCTION pos.hijack_mul(a bigint, b interval) RETURNS interval LANGUAGE plpgsql AS $f$
BEGIN PERFORM pos.probe('hijack'); RETURN a::float8 * b; END; $f$;
CREATE OPERATOR pos.* (LEFTARG = bigint, RIGHTARG = interval, FUNCTION = pos.hijack_mul);
-- a column DEFAULT and a CHECK
CREATE FUNCTION pos.evil_default() RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM pos.probe('default'); RETURN 'EAT_IN'; END; $f$;
CREATE FUNCTION pos.evil_check(x numeric) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM pos.probe('check'); RETURN true; END; $f$;
"""


def table_sql(name, channel_default="'EAT_IN'", check=""):
    return f"""
CREATE TABLE {name} (
    id      bigserial PRIMARY KEY,
    store   integer NOT NULL,            -- Connecteam location, Mapal unit 1000 + store
    sold_at timestamptz NOT NULL,
    kind    text NOT NULL DEFAULT 'SALE',
    channel text NOT NULL DEFAULT {channel_default},
    total   numeric(12,2) NOT NULL{check},
    vat     numeric(12,2) NOT NULL DEFAULT 0,
    guests  integer NOT NULL DEFAULT 1);"""


def ct_mapping(amount="total - vat", tax="vat", currency="'EUR'"):
    return {"location_id": "store", "sale_type": "kind", "created_at": "sold_at",
            "final_sale_amount": amount, "tax_amount": tax, "currency": currency}


def mapal_mapping(unit="1000 + store", net="total - vat"):
    return {"unit_id": unit, "sold_at": "sold_at", "currency_id": "'EUR'", "sales_type_id": "channel",
            "net_sales": net, "gross_sales": "total", "num_guests": "guests"}


def attach_sql(table, server, mapping, sale_key=None, run_as=None):
    args = [lit(table), lit(server), lit(json.dumps(mapping)) + "::jsonb"]
    if sale_key:
        args.append("sale_key => " + lit(sale_key))
    if run_as:
        args.append("run_as => " + lit(run_as))
    return "SELECT sales_api.attach(%s)" % ", ".join(args)


def capture_id(db, table, server):
    return must(f"SELECT id FROM sales_api.capture WHERE relid = {lit(table)}::regclass AND server_name = {lit(server)}"
                " AND detached_at IS NULL", db)


def cleanup(final):
    """Never leave regress_pos a superuser nor the settings changed; then drop what the test made."""
    run(f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{POS}') THEN "
        f"ALTER ROLE {POS} NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS NOREPLICATION; END IF; END $$;", "postgres")
    run("".join(f"ALTER SYSTEM RESET sales_api.{s};\n" for s in SETTINGS) + "SELECT pg_reload_conf();", "postgres")
    try:
        mock("DELETE", "/_mock/faults")
    except Exception:   # noqa: BLE001 (the mock may be gone when the run is interrupted)
        pass
    if final and KEEP:
        print(f"(PRIVESC_KEEP: databases {DB}, {WDB} and roles {', '.join(ROLES)} kept)")
        return
    roles = ", ".join(lit(r) for r in ROLES)
    run(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        f" AND backend_type = 'client backend' AND (datname IN ({lit(DB)}, {lit(WDB)}) OR usename IN ({roles}))",
        "postgres")
    run(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", "postgres")
    drop_owned = (f"DO $$ DECLARE r text; BEGIN FOR r IN SELECT rolname FROM pg_roles WHERE rolname IN ({roles}) LOOP "
                  "EXECUTE format('DROP OWNED BY %I CASCADE', r); END LOOP; END $$;")
    run("SET client_min_messages = warning;\n"
        "DROP EXTENSION IF EXISTS sales_api CASCADE;\nDROP SCHEMA IF EXISTS sales_api CASCADE;\n"
        "DROP SCHEMA IF EXISTS pos CASCADE;\nDROP SCHEMA IF EXISTS other CASCADE;\n" + drop_owned, WDB)
    run("SET client_min_messages = warning;\n" + drop_owned + "\n"
        + "".join(f"DROP ROLE IF EXISTS {r};\n" for r in ROLES), "postgres")


def setup():
    # a request an earlier test delayed would land in this test's mock state
    wait_until(lambda: mock("GET", "/_mock/inflight")["inflight"] == 0, 60)
    mock("POST", "/_mock/reset")
    mock("POST", "/_mock/connecteam/locations", {"locations": [{"name": "store %d" % i} for i in (1, 2, 3)]})
    must(f"CREATE ROLE {POS} LOGIN NOSUPERUSER; CREATE ROLE {OTHER} NOLOGIN; CREATE ROLE {SYNC} NOLOGIN;"
         f" GRANT {SYNC} TO {POS};", "postgres")

    # --- the worker's database: POS tables attached to both vendors
    must(servers_sql(), WDB)
    must(POS_OBJECTS, WDB, user=POS)
    must("\n".join(table_sql(t) for t in ("pos.sales", "pos.msales", "pos.sales12"))
         + table_sql("pos.sales13", channel_default="pos.evil_default()", check=" CHECK (pos.evil_check(total))"),
         WDB, user=POS)
    must(attach_sql("pos.sales", "connecteam", ct_mapping(amount="pos.evil_num('ct.amount', total - vat)"),
                    sale_key="pos.evil_key('ct.key', id)") + ";\n"
         + attach_sql("pos.msales", "mapal", mapal_mapping(net="pos.evil_num('mapal.net', total - vat)")), WDB)
    note_workers()

    # --- the SQL-call database
    must(f"CREATE DATABASE {DB}", "postgres")
    must(servers_sql() + f"""
-- vector 15: regress_pos may call attach()/detach() and use the Connecteam server
GRANT USAGE ON SCHEMA sales_api TO {POS};
GRANT EXECUTE ON FUNCTION sales_api.attach, sales_api.detach TO {POS};
GRANT USAGE ON FOREIGN SERVER connecteam TO {POS}, {SYNC};
CREATE USER MAPPING FOR {POS} SERVER connecteam OPTIONS (api_key 'ct-key-123');
CREATE USER MAPPING FOR {SYNC} SERVER connecteam OPTIONS (api_key 'ct-key-123');
-- a table of another role that regress_pos may read but does not own
GRANT USAGE ON SCHEMA other TO {POS};
CREATE TABLE other.t15 (id bigserial PRIMARY KEY, store integer NOT NULL, sold_at timestamptz NOT NULL,
    kind text NOT NULL DEFAULT 'SALE', total numeric(12,2) NOT NULL, vat numeric(12,2) NOT NULL DEFAULT 0);
ALTER TABLE other.t15 OWNER TO {OTHER};
""", DB)
    must(f"GRANT SELECT ON other.t15 TO {POS}", DB, user=None)
    must(POS_OBJECTS, DB, user=POS)
    must("\n".join(table_sql(t) for t in ("pos.sales", "pos.msales", "pos.sales11", "pos.other_table", "pos.sales14",
                                          "pos.sales14b", "pos.sales15", "pos.sales15c", "pos.sales15d")), DB, user=POS)
    # local sales for the SQL calls, inserted before attach(): no capture, no evaluation yet
    must(f"""
INSERT INTO pos.sales (store, sold_at, kind, total, vat) VALUES
    (1, '{ts(1)}', 'SALE', 10.00, 1.00), (1, '{ts(2)}', 'SALE', 20.50, 2.50), (2, '{ts(3)}', 'SALE', 7.00, 0);
INSERT INTO pos.msales (store, sold_at, channel, total, vat, guests) VALUES
    (1, '{DAY} 10:05+00', 'EAT_IN', 30.00, 3.00, 2), (1, '{DAY} 10:20+00', 'TAKE', 12.00, 1.20, 1),
    (1, '{DAY} 11:40+00', 'EAT_IN', 8.00, 0.80, 1);""", DB, user=POS)
    must(attach_sql("pos.sales", "connecteam", ct_mapping(amount="pos.evil_num('ct.amount', total - vat)"),
                    sale_key="pos.evil_key('ct.key', id)") + ";\n"
         + attach_sql("pos.msales", "mapal", mapal_mapping(unit="pos.evil_num('mapal.unit', 1000 + store)")) + ";\n"
         + attach_sql("pos.sales11", "connecteam", ct_mapping()), DB)


# ---------------------------------------------------------------------------------------------
# judging
# ---------------------------------------------------------------------------------------------
def sql_in(names):
    return ", ".join(lit(n) for n in names)


SNAPSHOT = f"""
SELECT coalesce(string_agg(DISTINCT x, E'\\n'), '') FROM (
  SELECT format('role %s super=%s createrole=%s createdb=%s bypassrls=%s replication=%s', rolname, rolsuper,
                rolcreaterole, rolcreatedb, rolbypassrls, rolreplication) AS x
    FROM pg_authid WHERE rolname IN ({sql_in(ROLES)})
  UNION ALL
  SELECT format('member %s of %s admin=%s', m.member::regrole, m.roleid::regrole, m.admin_option)
    FROM pg_auth_members m JOIN pg_roles r ON r.oid IN (m.member, m.roleid) WHERE r.rolname IN ({sql_in(ROLES)})
  UNION ALL
  SELECT format('table %s %s', c.oid::regclass, c.relacl) FROM pg_class c
   WHERE c.relacl IS NOT NULL
     AND c.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('sales_api', 'other'))
  UNION ALL
  SELECT format('function %s %s', p.oid::regprocedure, p.proacl) FROM pg_proc p
   WHERE p.proacl IS NOT NULL
     AND p.pronamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('sales_api', 'other'))
  UNION ALL SELECT format('schema %s %s', nspname, nspacl) FROM pg_namespace WHERE nspacl IS NOT NULL
  UNION ALL SELECT format('server %s %s', srvname, srvacl) FROM pg_foreign_server
  UNION ALL SELECT format('fdw %s %s', fdwname, fdwacl) FROM pg_foreign_data_wrapper
  UNION ALL SELECT format('database %s %s', datname, datacl) FROM pg_database
  UNION ALL SELECT format('parameter %s %s', parname, paracl) FROM pg_parameter_acl
  UNION ALL SELECT format('default acl %s %s %s', defaclrole::regrole, defaclobjtype, defaclacl) FROM pg_default_acl
  UNION ALL SELECT format('user mapping for %s on %s',
                          CASE WHEN u.umuser = 0 THEN 'public' ELSE u.umuser::regrole::text END, s.srvname)
              FROM pg_user_mapping u JOIN pg_foreign_server s ON s.oid = u.umserver
) q"""


def snapshot(db):
    return set(must(SNAPSHOT, db).splitlines())


def reset_privs():
    """Undo whatever an escalation of the previous vector did, so that each vector is judged alone."""
    base = (f"SET client_min_messages = error;\n"
            f"ALTER ROLE {POS} NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS NOREPLICATION;\n"
            f"REVOKE {OTHER} FROM {POS};\n")
    for db in (WDB, DB):
        if is_true(f"SELECT EXISTS (SELECT FROM pg_database WHERE datname = {lit(db)})", "postgres"):
            must(base + f"DO $$ BEGIN IF to_regclass('other.secrets') IS NOT NULL THEN "
                        f"REVOKE SELECT ON other.secrets FROM {POS}; END IF; END $$;", db)


def begin(db, phase):
    reset_privs()
    must(f"UPDATE pos.phase SET v = {lit(phase)}", db)
    return snapshot(db)


def ran_count(db):
    return int(must("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM pos.ran", db))


def evidence(db, phase=None, site=None):
    where = []
    if phase is not None:
        where.append("e.vector = " + lit(phase))
    if site is not None:
        where.append("e.site = " + lit(site))
    out = must("SELECT coalesce(json_agg(e ORDER BY e.at), '[]') FROM pos.evidence e"
               + (" WHERE " + " AND ".join(where) if where else ""), db)
    return json.loads(out)


def note_workers():
    for pid in must(f"SELECT pid FROM pg_stat_activity WHERE backend_type = {lit(WORKER)}", "postgres").split():
        worker_pids.add(int(pid))


def from_worker(r):
    """The extension's background processes: the worker, or the scheduled reconciliation's own."""
    return r["backend"] == WORKER or r["pid"] in worker_pids or r.get("app") == RECONCILE


def evidence_problems(rows):
    """What the evidence rows show the function could do beyond the owner's rights."""
    out = []
    bad = collections.Counter((r["cur_user"], r["site"], WORKER if from_worker(r) else (r["backend"] or "?"))
                              for r in rows if r["cur_user"] != POS)
    if bad:
        out.append("the function ran as " + ", ".join(
            f"{u} ({s} in {b}{', %dx' % n if n > 1 else ''})" for (u, s, b), n in sorted(bad.items()))
            + f", not as the owner {POS}")
    did = []
    for r in rows:
        for d in (r["did"] or "").split("; "):
            if d and d not in did:
                did.append(d)
    if did:
        out.append("it could: " + ", ".join(did))
    return out


def privilege_problems(db, before):
    out = []
    if must(f"SELECT rolsuper FROM pg_roles WHERE rolname = {lit(POS)}", "postgres") == "t":
        out.append(f"{POS} BECAME SUPERUSER")
    after = snapshot(db)
    diff = sorted("+" + x for x in after - before) + sorted("-" + x for x in before - after)
    diff = [d for d in diff if not (d.startswith(("+role " + POS, "-role " + POS)))]   # said above
    if diff:
        out.append("privileges changed: " + "; ".join(diff[:5]) + (" ..." if len(diff) > 5 else ""))
    return out


def judge(label, db, phase, before, problems=(), sites=(), need_ran=True, need_worker=False):
    """One check line: privileges unchanged, evidence clean, and the function did run (where it must)."""
    probs = list(problems)
    note_workers()
    rows = evidence(db, phase)
    probs[:0] = privilege_problems(db, before) + evidence_problems(rows)
    if need_ran and not rows:
        probs.append("no evidence: the function did not run here (or its transaction rolled back), "
                     "so this path was not shown to run safely")
    for s in sites:
        if rows and not any(r["site"] == s for r in rows):
            probs.append(f"no evidence from {s}: that call site did not run")
    if need_worker and rows and not any(from_worker(r) for r in rows):
        probs.append("no evidence from the worker: the worker path was not exercised")
    check(label, not probs, "; ".join(probs))


# ---------------------------------------------------------------------------------------------
# delivery (the worker's database)
# ---------------------------------------------------------------------------------------------
CT_TABLES = ("pos.sales", "pos.sales12", "pos.sales13")
DRAINED = ("SELECT NOT EXISTS (SELECT 1 FROM sales_api.outbox WHERE state IN ('pending', 'in_flight', 'failed'))"
           " AND NOT EXISTS (SELECT 1 FROM sales_api.outbox_stage)")


def drained():
    return is_true(DRAINED, WDB)


def wait_drained(timeout=120):
    if not wait_until(drained, timeout):
        return ["the outbox did not drain in %ds: %s" % (timeout, must(
            "SELECT coalesce(string_agg(kind || ' ' || state || ': ' || coalesce(left(last_error, 80), ''), '; '), '')"
            " FROM sales_api.outbox WHERE state IN ('pending', 'in_flight', 'failed')", WDB))]
    return []


def delivery_problems():
    """Connecteam holds exactly the local sales of every Connecteam-captured table; Mapal's slots equal the
    local ones; nothing dead."""
    out = []
    local = collections.Counter()
    for line in must(" UNION ALL ".join(
            f"SELECT store, floor(extract(epoch FROM sold_at))::bigint, total - vat, vat, kind FROM {t}"
            for t in CT_TABLES), WDB).splitlines():
        s, e, a, v, k = line.split("|")
        local[(int(s), int(e), Decimal(a), Decimal(v), k)] += 1
    state = mock_state()
    remote = collections.Counter(
        (int(t["locationId"]), int(t["createdAt"]), Decimal(str(t["finalSaleAmount"])),
         Decimal(str(t.get("taxAmount") or 0)), t["saleType"]) for t in state.get("connecteam_transactions", []))
    lost = sum((local - remote).values())
    extra = sum((remote - local).values())
    if lost or extra:
        out.append(f"Connecteam: {lost} local sale(s) missing, {extra} transaction(s) no local sale explains "
                   f"(local {sum(local.values())}, vendor {sum(remote.values())})")
    slots = {}
    for line in must("SELECT 1000 + store, to_char(date_bin('15 min', sold_at AT TIME ZONE 'UTC', '2000-01-01'),"
                     " 'YYYY-MM-DD\"T\"HH24:MI:SS'), channel, sum(total - vat), sum(total), count(*), sum(guests)"
                     " FROM pos.msales GROUP BY 1, 2, 3", WDB).splitlines():
        u, sl, ch, net, gross, n, g = line.split("|")
        slots[(int(u), sl, ch)] = (Decimal(net), Decimal(gross), int(n), int(g))
    rslots = {(int(s["unitId"]), s["timeSlotStart"], s["salesTypeId"]):
              (Decimal(str(s["netSales"])), Decimal(str(s["grossSales"])), int(s["numChecks"]), int(s["numGuests"]))
              for s in state.get("mapal_sales", [])}
    wrong = [k for k, v in slots.items() if rslots.get(k) != v]
    if wrong:
        out.append(f"Mapal: {len(wrong)} of {len(slots)} slot(s) not delivered as computed locally")
    dead = must("SELECT count(*) FROM sales_api.outbox WHERE state IN ('dead', 'unknown')", WDB)
    if dead != "0":
        out.append(f"{dead} outbox item(s) dead or unknown: " + must(
            "SELECT string_agg(DISTINCT left(last_error, 100), '; ') FROM sales_api.outbox"
            " WHERE state IN ('dead', 'unknown')", WDB))
    return out


def pos_insert(db, table, user=POS, store=1, total="10.00", vat="1.00"):
    """One sale, by regress_pos unless user=None (the superuser): -> (SQLSTATE, its id, stderr)"""
    return run(f"INSERT INTO {table} (store, sold_at, total, vat) VALUES ({store}, '{next_ts()}', {total}, {vat})"
               " RETURNING id", db, user=user)


# ---------------------------------------------------------------------------------------------
# vectors in the worker's database
# ---------------------------------------------------------------------------------------------
saved = {}


def v1_insert():
    label = "1   capture INSERT: a function in a Connecteam mapping runs as the owner; the sale is delivered"
    before = begin(WDB, "1")
    code, out, err = pos_insert(WDB, "pos.sales", total="12.10", vat="2.10")
    probs = [f"the INSERT failed: {code} {errline(err)}"] if code else []
    saved["id1"] = out.split()[0] if not code else None
    probs += wait_drained() + delivery_problems()
    judge(label, WDB, "1", before, probs, sites=("ct.amount", "ct.key"))


def v2_update():
    label = "2   capture UPDATE: same, the new version replaces the old at the vendor"
    before = begin(WDB, "2")
    code, out, err = run(f"UPDATE pos.sales SET total = total + 1 WHERE id = {saved.get('id1') or 0}", WDB, user=POS)
    probs = [f"the UPDATE failed: {code} {errline(err)}"] if code else []
    if not saved.get("id1"):
        probs.append("no sale of vector 1 to update")
    probs += wait_drained() + delivery_problems()
    judge(label, WDB, "2", before, probs, sites=("ct.key",))


def v3_delete():
    label = "3   capture DELETE: the sale_key expression calls the function; the sale is deleted at the vendor"
    before = begin(WDB, "3")
    code, out, err = run(f"DELETE FROM pos.sales WHERE id = {saved.get('id1') or 0}", WDB, user=POS)
    probs = [f"the DELETE failed: {code} {errline(err)}"] if code else []
    probs += wait_drained() + delivery_problems()
    judge(label, WDB, "3", before, probs, sites=("ct.key",))


def v4_copy():
    label = "4   capture COPY FROM STDIN: same, the copied sales are delivered"
    before = begin(WDB, "4")
    data = "".join(f"{s}\t{next_ts()}\tSALE\tEAT_IN\t{a}\t{v}\t2\n"
                   for s, a, v in ((1, "7.50", "0.50"), (2, "9.99", "1.99"), (1, "3.00", "0.00")))
    code, out, err = run("COPY pos.sales (store, sold_at, kind, channel, total, vat, guests) FROM STDIN;\n"
                         + data + "\\.\n", WDB, user=POS)
    probs = [f"the COPY failed: {code} {errline(err)}"] if code else []
    probs += wait_drained() + delivery_problems()
    judge(label, WDB, "4", before, probs, sites=("ct.amount",))


def v16_superuser_insert():
    label = ("16  capture of a SUPERUSER's INSERT: current_user = the table owner (never the inserting superuser), "
             "session_user = the superuser")
    before = begin(WDB, "16")
    code, out, err = pos_insert(WDB, "pos.sales", user=None, total="15.00", vat="1.50")
    probs = [f"the INSERT failed: {code} {errline(err)}"] if code else []
    rows = evidence(WDB, "16")
    if rows and not any(r["sess_user"] == DBA for r in rows):
        probs.append(f"no evidence with session_user = {DBA}")
    probs += wait_drained() + delivery_problems()
    judge(label, WDB, "16", before, probs)


def v5_mapal():
    label = "5   worker: Mapal slot recomputation (net_sales calls the function) runs as the owner; slot delivered"
    before = begin(WDB, "5")
    code, out, err = run(f"INSERT INTO pos.msales (store, sold_at, channel, total, vat, guests) VALUES "
                         f"(1, '{DAY} 10:05:00+00', 'TAKE', 20.00, 2.00, 3),"
                         f" (1, '{DAY} 10:07:30+00', 'TAKE', 5.00, 0.50, 1)",
                         WDB, user=POS)
    probs = [f"the INSERT failed: {code} {errline(err)}"] if code else []
    probs += wait_drained() + delivery_problems()
    judge(label, WDB, "5", before, probs, sites=("mapal.net",), need_worker=True)


def worker_ran(phase):
    note_workers()     # backend_type is hidden from a non-superuser: the worker is also known by its pid
    return is_true(f"SELECT EXISTS (SELECT 1 FROM pos.evidence WHERE vector = {lit(phase)} AND (backend = {lit(WORKER)}"
                   f" OR app = {lit(RECONCILE)}"
                   f" OR pid IN (SELECT pid FROM pg_stat_activity WHERE backend_type = {lit(WORKER)})))", WDB)


def v6a_ambiguous_window():
    label = ("6a  worker: window replacement after an ambiguous post re-reads the local sales as the owner; "
             "the vendor ends with the sale once")
    before = begin(WDB, "6a")
    probs = []
    amb0 = must("SELECT ambiguous FROM sales_api.worker_stats()", WDB)
    try:
        # the post times out on our side (1.5 s); the mock stores it 4 s after it arrived
        must("ALTER SYSTEM SET sales_api.request_timeout = '1500ms'", "postgres")
        must("SELECT pg_reload_conf()", "postgres")
        # a new session sees it once the postmaster has reloaded, which signals the worker at
        # the same time; the worker reloads at the top of its loop: two more cycles (the first
        # may have begun before the signal) and the worker runs with the new timeout
        if not wait_until(lambda: must("SHOW sales_api.request_timeout", "postgres") == "1500ms", 60):
            probs.append("sales_api.request_timeout = 1500ms was not taken by the server in 60 s")
        cycles = int(must("SELECT cycles FROM sales_api.worker_stats()", WDB))
        if not wait_until(lambda: is_true(f"SELECT cycles >= {cycles + 2} FROM sales_api.worker_stats(),"
                                          " sales_api.wake_worker()", WDB), 120):
            probs.append("the worker did not run two cycles in 120 s")
        mock("POST", "/_mock/faults", {"action": "delay", "path": "/connecteam/sales/v1/transactions$",
                                      "method": "POST", "delay_ms": 4000, "count": 1})
        ts_frac = f"{DAY} 13:00:00.5+00"
        code, out, err = run(f"INSERT INTO pos.sales (store, sold_at, total, vat) VALUES (1, '{ts_frac}', 11.00, 1.00)",
                             WDB, user=POS)
        if code:
            probs.append(f"the INSERT failed: {code} {errline(err)}")
        ok = wait_until(lambda: worker_ran("6a") and drained()
                        and mock("GET", "/_mock/inflight")["inflight"] == 0, 120)
        if not ok:
            probs.append("timed out (120 s) waiting for the window replacement (worker evidence, drained outbox, "
                         "no request in flight); worker_stats().ambiguous %s -> %s" % (
                             amb0, must("SELECT ambiguous FROM sales_api.worker_stats()", WDB)))
    finally:
        run("ALTER SYSTEM RESET sales_api.request_timeout", "postgres")
        run("SELECT pg_reload_conf()", "postgres")
        mock("DELETE", "/_mock/faults")
    probs += delivery_problems()
    judge(label, WDB, "6a", before, probs, need_worker=True)


def v6b_repair_connecteam():
    label = "6b  worker: repair_connecteam's queued window re-reads the local sales as the owner; the day matches"
    before = begin(WDB, "6b")
    code, out, err = run(f"SELECT sales_api.repair_connecteam('connecteam', 1, '{DAY}')", WDB)
    probs = [f"repair_connecteam failed: {code} {errline(err)}"] if code else []
    if not wait_until(lambda: worker_ran("6b") and drained(), 120):
        probs.append("timed out (120 s) waiting for the worker to replace the window")
    probs += delivery_problems()
    judge(label, WDB, "6b", before, probs, need_worker=True)


def v12_operator_cast():
    must(attach_sql("pos.sales12", "connecteam", ct_mapping(
        amount="ROW(total - vat)::pos.amount::numeric", tax="vat OPERATOR(pos.|+|) 0::numeric")), WDB)
    before = begin(WDB, "12")
    code, out, err = pos_insert(WDB, "pos.sales12", store=2, total="18.00", vat="3.00")
    probs = [f"the INSERT failed: {code} {errline(err)}"] if code else []
    probs += wait_drained() + delivery_problems()
    priv = privilege_problems(WDB, before)
    for site, label in (("operator", "12a an operator of the owner (pos.|+|) in a mapping runs as the owner; "
                                     "delivered"),
                        ("cast", "12b a cast of the owner's type (pos.amount -> numeric) in a mapping runs as the "
                                 "owner; delivered")):
        rows = evidence(WDB, "12", site)
        p = priv + evidence_problems(rows) + probs
        if not rows:
            p.append(f"no evidence from the {site}: it did not run")
        check(label, not p, "; ".join(p))


def v13_default_check():
    label = ("13  a column DEFAULT and a CHECK of the table calling the owner's functions run as the inserting role "
             "only; no escalation through capture or worker")
    must(attach_sql("pos.sales13", "connecteam", ct_mapping()), WDB)
    before = begin(WDB, "13")
    code, out, err = pos_insert(WDB, "pos.sales13", store=3, total="6.00", vat="0.60")
    probs = [f"the INSERT failed: {code} {errline(err)}"] if code else []
    probs += wait_drained() + delivery_problems()
    judge(label, WDB, "13", before, probs, sites=("default", "check"))


RECONCILE_FAST = (("reconcile_interval", "1s"), ("reconcile_grace", "0"), ("reconcile_days", "3"))


def reconcile_fast(on):
    """The scheduled reconciliation every second (on), or back to the settings' defaults."""
    for k, v in RECONCILE_FAST:
        if on:
            must(f"ALTER SYSTEM SET sales_api.{k} = '{v}'", "postgres")
        else:
            run(f"ALTER SYSTEM RESET sales_api.{k}", "postgres")
    (must if on else run)("SELECT pg_reload_conf()", "postgres")


def v10_scheduled_reconciliation():
    label = "10  worker: the scheduled reconciliation reads the local sales through the mappings as the owner"
    before = begin(WDB, "10")
    probs = []
    t0 = must("SELECT now()", WDB)
    try:
        reconcile_fast(True)
        if not wait_until(lambda: worker_ran("10") and is_true(
                f"SELECT EXISTS (SELECT 1 FROM sales_api.reconciliation WHERE run_at >= '{t0}')", WDB), 120):
            probs.append("timed out (120 s) waiting for a scheduled reconciliation and the worker's evidence")
    finally:
        reconcile_fast(False)
    judge(label, WDB, "10", before, probs, need_worker=True)


def v10b_search_path_hijack():
    label = ("10b worker: with schema pos first on the database's search_path, the scheduled reconciliation's "
             "own statements call no operator of pos (pg_catalog only)")
    before = begin(WDB, "10b")
    probs = []
    t0 = must("SELECT now()", WDB)
    # what a database owner can do (and a role that may CREATE in a schema of the path)
    must(f"ALTER DATABASE {WDB} SET search_path = pos, public", "postgres")
    try:
        reconcile_fast(True)
        # two runs after the setting: a reconciliation's worker starts with the database's settings
        if not wait_until(lambda: int(must("SELECT count(DISTINCT run_at) FROM sales_api.reconciliation "
                                           f"WHERE run_at >= '{t0}'::timestamptz + interval '1.5 s'", WDB)) >= 2,
                          120):
            probs.append("timed out (120 s) waiting for two scheduled reconciliations")
    finally:
        run(f"ALTER DATABASE {WDB} RESET search_path", "postgres")
        reconcile_fast(False)
    rows = evidence(WDB, "10b", "hijack")
    if rows:
        probs.append("the hijacking operator ran %d time(s), as %s" % (
            len(rows), ", ".join(sorted({r["cur_user"] for r in rows}))))
    judge(label, WDB, "10b", before, probs, need_ran=False)


# ---------------------------------------------------------------------------------------------
# vectors in the SQL-call database
# ---------------------------------------------------------------------------------------------
def v7_reconcile_connecteam():
    label = "7   reconcile_connecteam() called by the superuser evaluates the mapping as the owner"
    before = begin(DB, "7")
    expect = Decimal("27.00")      # store 1 of pos.sales: (10.00 - 1.00) + (20.50 - 2.50)
    code, out, err = run(f"SELECT local_total FROM sales_api.reconcile_connecteam('connecteam', '{DAY}', '{DAY}')"
                         " WHERE location_id = 1", DB)
    probs = [f"reconcile_connecteam failed: {code} {errline(err)}"] if code else []
    if not code and (not out or Decimal(out) != expect):
        probs.append(f"local_total of location 1 is {out or 'missing'}, expected {expect}")
    judge(label, DB, "7", before, probs)


def v8_reconcile_cashrec():
    label = "8   reconcile_cashrec() called by the superuser evaluates the mapping as the owner"
    before = begin(DB, "8")
    expect = Decimal("45.00")      # (30 - 3) + (12 - 1.2) + (8 - 0.8) = 45.00
    mock("POST", "/_mock/cashrec/sheets", {"records": [{
        "centerId": 1001, "cashSheetId": "CS-1001-1", "businessDay": str(DAY), "shiftId": 1, "tillId": "T1",
        "openedAt": f"{DAY}T08:00:00", "closedAt": f"{DAY}T16:00:00", "currencyId": "EUR",
        "netSales": 45.00, "grossSales": 50.00, "numChecks": 3, "expectedCash": 50.00, "countedCash": 50.00,
        "difference": 0, "tenders": []}]})
    code, out, err = run(f"SELECT local_net FROM sales_api.reconcile_cashrec('mapal', '{DAY} 00:00', '{DAY} 23:59:59',"
                         " '{1001}') WHERE center_id = 1001", DB)
    probs = [f"reconcile_cashrec failed: {code} {errline(err)}"] if code else []
    if not code and (not out or Decimal(out.split()[0]) != expect):
        probs.append(f"local_net of centre 1001 is {out or 'missing'}, expected {expect}")
    judge(label, DB, "8", before, probs)


def v9_repair_mapal():
    label = "9   repair_mapal() called by the superuser evaluates the mapping as the owner"
    before = begin(DB, "9")
    code, out, err = run(f"SELECT sales_api.repair_mapal('mapal', 1001, '{DAY}')", DB)
    probs = [f"repair_mapal failed: {code} {errline(err)}"] if code else []
    if not code and not (out.isdigit() and int(out) > 0):
        probs.append(f"repair_mapal queued {out!r} slots, expected some")
    judge(label, DB, "9", before, probs)


def stage_counts(db):
    return must("SELECT (SELECT count(*) FROM sales_api.outbox_stage) || '/' || "
                "(SELECT count(*) FROM sales_api.outbox)", db)


def v11_forged_triggers():
    cid = capture_id(DB, "pos.sales11", "connecteam")
    evil_sql = "SELECT pos.probe('forged') FROM sales_api_new"
    cases = (
        ("11a", "a hand-made trigger whose argument is SQL (the old protocol)", "pos.other_table", "zz_forged",
         [evil_sql]),
        ("11b", f"a hand-made trigger with the capture id of ANOTHER table ({cid}, of pos.sales11)",
         "pos.other_table", f"sales_api_capture_{cid}_ins", [cid]),
        ("11c", "a hand-made trigger with the right table and id but a wrong name", "pos.sales11", "zz_forged", [cid]),
        ("11d", "a hand-made trigger with two arguments (SQL, then the id)", "pos.other_table", "zz_forged",
         [evil_sql, cid]),
    )
    for num, what, table, name, args in cases:
        label = f"{num:<4}{what} is refused with an error and writes nothing; its SQL never runs"
        before = begin(DB, num)
        probs = []
        counts0, ran0 = stage_counts(DB), ran_count(DB)
        code, out, err = run(f"CREATE TRIGGER {name} AFTER INSERT ON {table} REFERENCING NEW TABLE AS sales_api_new"
                             f" FOR EACH STATEMENT EXECUTE FUNCTION sales_api.capture_trigger("
                             f"{', '.join(lit(a) for a in args)})", DB)
        created = code is None
        if created:
            code, out, err = pos_insert(DB, table)
            if code is None:
                probs.append("the INSERT succeeded: the forged trigger was accepted")
            elif code == "42601":
                probs.append("refused only by a syntax error: the trigger ran its argument as SQL "
                             f"(old trigger protocol; capture-id arguments are not implemented): {errline(err)}")
            elif code == "CRASH":
                probs.append("the server crashed")
            run(f"DROP TRIGGER IF EXISTS {name} ON {table}", DB)
        ran = ran_count(DB) - ran0
        if ran:
            probs.append(f"the forged SQL ran ({ran} call(s) of pos.probe"
                         + (", then the error rolled it back)" if code else ")"))
        counts1 = stage_counts(DB)
        if counts1 != counts0:
            probs.append(f"sales_api.outbox_stage/outbox went from {counts0} to {counts1}")
        judge(label, DB, num, before, probs, need_ran=False)


def attached(db, table):
    return must(f"SELECT (SELECT count(*) FROM sales_api.capture WHERE relid = {lit(table)}::regclass"
                f" AND detached_at IS NULL) + (SELECT count(*) FROM pg_trigger WHERE tgrelid = {lit(table)}::regclass"
                f" AND NOT tgisinternal)", db) != "0"


def v14_other_roles_table():
    label = (f"14  attach() of a mapping that reads another role's table (other.secrets) is refused with 42501 "
             f"(the owner {POS} cannot read it); nothing attached")
    before = begin(DB, "14")
    mapping = ct_mapping(tax="(SELECT max(x) FROM other.secrets)")
    code, out, err = run(attach_sql("pos.sales14", "connecteam", mapping), DB)
    probs = []
    if code is None:
        probs.append(f"attach() accepted it (capture {out})")
        c2, o2, e2 = pos_insert(DB, "pos.sales14")
        leak = must(f"SELECT string_agg(tax_amount::text, ',') FROM sales_api.outbox_stage"
                    f" WHERE capture_id = {out}", DB)
        if leak:
            probs.append(f"a sale inserted by {POS} staged tax_amount = {leak}: the max of other.secrets "
                         "would go to the vendor")
        run("SELECT sales_api.detach('pos.sales14', 'connecteam')", DB)
    elif code != "42501":
        probs.append(f"refused with {code}, expected 42501: {errline(err)}")
    elif attached(DB, "pos.sales14"):
        probs.append("refused, but a capture or trigger was left on pos.sales14")
    judge(label, DB, "14", before, probs, need_ran=False)


def v14b_fold():
    label = ("14b an IMMUTABLE function of the owner with constant arguments (folded while attach() and the capture "
             "plan) runs as the owner")
    before = begin(DB, "14b")
    code, out, err = run(attach_sql("pos.sales14b", "connecteam", ct_mapping(currency="pos.evil_imm('EUR')")), DB)
    probs = [f"attach() failed: {code} {errline(err)}"] if code else []
    if not code:
        c2, o2, e2 = pos_insert(DB, "pos.sales14b")
        if c2:
            probs.append(f"the INSERT failed: {c2} {errline(e2)}")
        cur = must(f"SELECT string_agg(currency, ',') FROM sales_api.outbox_stage WHERE capture_id = {out}", DB)
        if cur != "EUR":
            probs.append(f"staged currency {cur!r}, expected 'EUR'")
    judge(label, DB, "14b", before, probs)
    run("SELECT sales_api.detach('pos.sales14b', 'connecteam')", DB)


def v15_attach_by_owner():
    mapping = ct_mapping(amount="pos.evil_num('ct15.amount', total - vat)")
    # a: the owner attaches its own table
    label = (f"15a attach() by {POS} of its own table is allowed (USAGE on the server, EXECUTE on attach); "
             "its capture runs as the owner; detach() by the owner")
    before = begin(DB, "15a")
    code, out, err = run(attach_sql("pos.sales15", "connecteam", mapping), DB, user=POS)
    probs = []
    if code:
        probs.append(f"refused: {code} {errline(err)}" + (
            " (attach by a table's owner is not implemented: only a superuser may attach)"
            if "superuser" in err else ""))
    else:
        c2, o2, e2 = pos_insert(DB, "pos.sales15")
        if c2:
            probs.append(f"the INSERT failed: {c2} {errline(e2)}")
        n = must(f"SELECT count(*) FROM sales_api.outbox_stage WHERE capture_id = {out}", DB)
        if n != "1":
            probs.append(f"{n} staged sale(s), expected 1")
        c3, o3, e3 = run("SELECT sales_api.detach('pos.sales15', 'connecteam')", DB, user=POS)
        if c3:
            probs.append(f"detach() by the owner failed: {c3} {errline(e3)}")
    judge(label, DB, "15a", before, probs, need_ran=not code)

    for num, what, table, run_as in (
            ("15b", f"attach() by {POS} of a table it does not own (other.t15, SELECT granted)", "other.t15", None),
            ("15c", f"attach() by {POS} with run_as => a role it is not a member of ({DBA})", "pos.sales15c", DBA),
            ("15d", f"attach() by {POS} with run_as => a member role ({SYNC}) without SELECT on the table",
             "pos.sales15d", SYNC)):
        label = f"{num:<4}{what} is refused with 42501; nothing attached"
        m = ct_mapping() if table == "other.t15" else mapping
        before = begin(DB, num)
        code, out, err = run(attach_sql(table, "connecteam", m, run_as=run_as), DB, user=POS)
        probs = []
        if code is None:
            probs.append(f"attach() accepted it (capture {out})")
            run(f"SELECT sales_api.detach({lit(table)}, 'connecteam')", DB)
        elif code != "42501":
            probs.append(f"refused with {code}, expected 42501: {errline(err)}")
        if attached(DB, table):
            probs.append(f"a capture or trigger was left on {table}")
        judge(label, DB, num, before, probs, need_ran=False)

    label = f"15e attach() by {POS} with run_as => a member role that can read the table is allowed"
    must(f"GRANT SELECT ON pos.sales15d TO {SYNC}", DB, user=POS)
    before = begin(DB, "15e")
    code, out, err = run(attach_sql("pos.sales15d", "connecteam", mapping, run_as=SYNC), DB, user=POS)
    probs = []
    if code:
        probs.append(f"refused: {code} {errline(err)}" + (
            " (attach by a table's owner is not implemented: only a superuser may attach)"
            if "superuser" in err else ""))
    else:
        ra = must(f"SELECT run_as FROM sales_api.capture WHERE id = {out}", DB)
        if ra != SYNC:
            probs.append(f"run_as recorded as {ra}, expected {SYNC}")
        run("SELECT sales_api.detach('pos.sales15d', 'connecteam')", DB, user=POS)
    judge(label, DB, "15e", before, probs, need_ran=False)


def v17_everywhere():
    label = ("17  no evaluation in any phase or backend (setup and idle time included) ran with more than the "
             "owner's rights")
    probs = []
    total = 0
    for db in (WDB, DB):
        rows = evidence(db)
        total += len(rows)
        bad = collections.Counter(r["vector"] for r in rows if r["cur_user"] != POS or r["escalated"]
                                  or r["read_outbox"] or r["read_other"] or r["read_um"])
        if bad:
            probs.append(f"{db}: " + ", ".join(f"vector {v}: {n} call(s)" for v, n in sorted(bad.items())))
    if must(f"SELECT rolsuper FROM pg_roles WHERE rolname = {lit(POS)}", "postgres") == "t":
        probs.append(f"{POS} is a superuser")
    check(label + f" ({total} recorded calls)", not probs, "; ".join(probs))


# ---------------------------------------------------------------------------------------------
def main():
    def stop(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    vectors = [
        ("1", v1_insert), ("2", v2_update), ("3", v3_delete), ("4", v4_copy), ("16", v16_superuser_insert),
        ("5", v5_mapal), ("6a", v6a_ambiguous_window), ("6b", v6b_repair_connecteam),
        ("12", v12_operator_cast), ("13", v13_default_check), ("10", v10_scheduled_reconciliation),
        ("10b", v10b_search_path_hijack),
        ("7", v7_reconcile_connecteam), ("8", v8_reconcile_cashrec), ("9", v9_repair_mapal),
        ("11", v11_forged_triggers), ("14", v14_other_roles_table), ("14b", v14b_fold),
        ("15", v15_attach_by_owner), ("17", v17_everywhere),
    ]
    started = time.monotonic()
    try:
        cleanup(final=False)
        try:
            setup()
        except SetupError as e:
            check("setup", False, str(e))
            return 1
        for num, fn in vectors:
            try:
                fn()
            except Exception as e:   # noqa: BLE001 (one vector's surprise must not hide the others)
                check(f"{num:<4}{fn.__name__}", False, f"{type(e).__name__}: {e}")
            finally:
                try:
                    reset_privs()
                    for db in (WDB, DB):
                        run("UPDATE pos.phase SET v = 'idle'", db)
                except SetupError:
                    pass
    finally:
        cleanup(final=True)
    print(f"privesc: {len(results)} checks, {sum(results)} passed ({time.monotonic() - started:.0f} s)")
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
