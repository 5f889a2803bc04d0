#!/usr/bin/env bash
# The libFuzzer harness over sales_api's response parsing (test/fuzz/run),
# 30 seconds from the committed corpus, with AddressSanitizer and
# UndefinedBehaviorSanitizer: no crash, no sanitizer report, no leak.
set -uo pipefail
cd "$(dirname "$0")/../.."
exec test/fuzz/run "${SA_FUZZ_SECONDS:-30}"
