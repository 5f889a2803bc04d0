#!/usr/bin/env bash
# A short pass under valgrind (test/memcheck --short): three pg_regress
# files and the drop_before fault scenario on a cluster whose postmaster,
# backends and worker run under memcheck; no invalid access, no use of
# uninitialised memory and no definite leak in sales_api.  The full pass
# (every pg_regress file) is `test/memcheck`.
# run-tests: in the background
set -uo pipefail
cd "$(dirname "$0")/../.."
exec test/memcheck --short
