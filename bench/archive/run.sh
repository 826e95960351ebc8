#!/usr/bin/env bash
# Archive benchmark: Meniscus standalone archiving to a real S3-compatible server (SeaweedFS,
# built by tools/seaweedfs/build.sh) on loopback.
#
#   bench/archive/run.sh [archive.py options]   (--count N --span SECONDS --runs N --corpus DIR)
#
# (a) bytes at rest / raw bytes on the loghub samples (read in place, never copied; each line
#     wrapped as RFC 5424, one tenant per file) and on COUNT bench/query lines: hot store after
#     compaction and archive, beside zstd -3 and zstd -19 of the same raw text;
# (b) upload throughput (MB of Parquet per CPU-second of Meniscus, and per second of wall time);
# (c) count per minute x severity and a rare-token count on hot data, then on archived data
#     only: cold (empty local cache) and warm; cold / hot and warm / hot, answers checked equal.
# Results: stdout and bench/results/archive.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/run-common.sh"

root=$(cd "$here/../.." && pwd)
corpus=""
for candidate in "${CORPUS:-}" "$root/../shared/corpus/loghub" /work/shared/corpus/loghub; do
    if [ -n "$candidate" ] && [ -f "$candidate/OpenSSH_2k.log" ]; then corpus=$candidate; break; fi
done
[ -n "$corpus" ] || { echo "run.sh: the loghub corpus was not found; set CORPUS=DIR" >&2; exit 1; }
command -v zstd >/dev/null || { echo "run.sh: zstd is needed (apt-get install zstd)" >&2; exit 1; }
"$root/tools/seaweedfs/build.sh" >&2
weed=$("$root/tools/seaweedfs/build.sh" --print-bin)
qgen=$(bench_compile "$root/bench/query/qgen.c")
bench_drive "$here/archive.py" --qgen "$qgen" --weed "$weed" --corpus "$corpus" "$@"
