#!/usr/bin/env bash
# Least privilege (issue 12), checked by trying to escalate
# (test/faults/privesc.py): a non-superuser role that owns a captured table
# and the functions, operator and cast its mapping calls must never get more
# than its own rights, on any path that evaluates a mapping (capture of
# INSERT / UPDATE / DELETE / COPY, the worker's Mapal recomputation and
# window replacement, reconcile_connecteam, reconcile_cashrec, repair_mapal,
# the scheduled reconciliation); forged capture triggers are refused;
# attach() refuses mappings the table owner could not evaluate and lets a
# table's owner attach it.  Works in sa_privesc and in the worker's database.
set -uo pipefail
cd "$(dirname "$0")/../.."
# privesc.py cleans up in a finally; this is the belt to its braces, for a
# kill that Python cannot see: the POS role is never left a superuser and the
# settings the test changes are never left behind.
safety() {
    psql -X -q -d postgres >/dev/null 2>&1 <<'SQL'
DO $$ BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_pos') THEN
        ALTER ROLE regress_pos NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS NOREPLICATION;
    END IF;
END $$;
ALTER SYSTEM RESET sales_api.request_timeout;
ALTER SYSTEM RESET sales_api.reconcile_interval;
ALTER SYSTEM RESET sales_api.reconcile_grace;
ALTER SYSTEM RESET sales_api.reconcile_days;
SELECT pg_reload_conf();
SQL
}
trap safety EXIT
python3 test/faults/privesc.py
exit $?
