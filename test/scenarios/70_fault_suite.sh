#!/usr/bin/env bash
# The fault suite (test/faults/run): 15 scenarios of vendor, network, token
# and database faults with 3,000 sales each (the burst: 151,500), one row
# per scenario; fails if any sale is lost or duplicated or any total
# differs.  The table also goes to $SA_WORK/fault-table.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
test/faults/run 2>&1 | tee "${SA_WORK:-/tmp}/fault-table.txt"
exit "${PIPESTATUS[0]}"
