#!/usr/bin/env bash
# test/bench/lanes.sh: the lanes benchmark alone (test/bench/bench.py's
# `lanes`, issue "one destination never holds back another"), through
# test/bench/run (which installs, builds, and starts the cluster and the mock
# with the worker's production settings).  With the issue's figures: a table
# attached to both vendors, a burst of 2,000 sales, the Connecteam mock
# allowing 5 requests per 60 s window, mock latency 20 ms; then the Connecteam
# mock hanging every request until the default request_timeout (30 s).  Prints
# Mapal's commit-to-arrival p50 and p99 for both, beside the same figures for
# a Mapal-only table measured in the same run, with the targets (1 s, 2 s).
# About 3 minutes when Mapal is not held back; up to about 20 when it is.
#
#   test/bench/lanes.sh              # the issue's figures
#   test/bench/lanes.sh --quick      # 10 s windows, a 5 s request_timeout (2-5 minutes)
#   test/bench/lanes.sh --no-build   # measure the sales_api already installed
#   test/bench/lanes.sh --lanes-window 30 --lanes-timeout 10 ...   (see test/bench/run --help)
#
# Prints only: it writes no RESULTS file (test/bench/run writes the lanes rows
# into RESULTS.md with the other benchmarks).
exec "$(dirname "$0")/run" --only lanes --no-pgq --no-write "$@"
