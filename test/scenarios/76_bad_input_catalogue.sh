#!/usr/bin/env bash
# The bad-input catalogue (test/faults/catalogue.py): every SQL function
# against NULLs, empty and oversized arrays, out-of-range dates, non-finite
# and huge numbers, quotes, backslashes, %s, newlines and multi-byte text,
# unknown and wrong servers, a missing user mapping; every vendor function
# against every class of bad response.  Prints how many inputs were tried
# and how many behaved as documented; fails unless all did.
set -uo pipefail
cd "$(dirname "$0")/../.."
python3 test/faults/catalogue.py 2>&1 | tee "${SA_WORK:-/tmp}/catalogue.txt"
exit "${PIPESTATUS[0]}"
