#!/usr/bin/env bash
# The security model, checked (test/faults/security.py): no vendor call
# without a user mapping, no reading of the outbox or of another role's
# mapping, PUBLIC executes no vendor function, https only, TLS verification
# cannot be turned off, row values cannot change a URL's path or host.
set -uo pipefail
cd "$(dirname "$0")/../.."
exec python3 test/faults/security.py
