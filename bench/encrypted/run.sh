#!/usr/bin/env bash
# What sealing costs: one Meniscus standalone, the same bench/query lines sent to a tenant whose
# producers are plain and to one whose default producer is `encrypted` (its write-ahead log
# records and hot-store files sealed with AES-256-GCM), in the same run.
#
#   bench/encrypted/run.sh [encrypted.py options]   (--count N --span SECONDS --runs N)
#
# Reports, plain and sealed side by side and as a ratio: server CPU per event while ingesting
# (to the write-ahead log and memory), the flush at shutdown, compaction, bytes on disk, and
# the medians of RUNS of a count per minute x severity and a rare-token count (answers checked
# equal). Results: stdout and bench/results/encrypted.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/run-common.sh"
root=$(cd "$here/../.." && pwd)
qgen=$(bench_compile "$root/bench/query/qgen.c")
bench_drive "$here/encrypted.py" --qgen "$qgen" "$@"
