#!/usr/bin/env bash
# Query benchmark: Meniscus standalone over 10,000,000 stored events vs grep/mawk over the same
# raw lines.
#
#   bench/query/run.sh [query.py options]
#
# Renders COUNT realistic RFC 5424 lines (~200 bytes; 50 hosts, 20 apps, 8 severities over 24 h;
# a rare token in 10 lines), sends them to Meniscus standalone (octet-counted TCP, listener
# bound to the tenant), stops it with SIGTERM (memory -> Parquet), restarts it and measures,
# median of 3 runs each, wall time and server CPU (MB/s of raw text per core):
#   (a) GET /v1/tenant/T/metrics?bucket=1m&group_by=severity over the 24 h, and the same as
#       SQL date_bin(...); peer: one mawk pass counting per (minute, severity) -- results must match;
#   (b) GET /v1/tenant/T/events?q=TOKEN and SQL count(*) WHERE msg LIKE '%TOKEN%';
#       peer: grep -c -F TOKEN over the raw lines -- counts must match;
#   (c) footprint: du -sb DATA/hot / raw bytes (goal <= 0.15), next to zstd -3 / gzip -6.
# Results: stdout and bench/results/query.txt. Needs ~2.2 GB for the lines plus the data dir
# under ${MENISCUS_CACHE:-~/.cache/meniscus}/bench/query (removed afterwards unless --keep).
#
# Env: MENISCUS_BIN (default $CARGO_TARGET_DIR/release/meniscus, else target/release/meniscus);
#      MENISCUS_CACHE (default ~/.cache/meniscus).
# Options: --count N  --span SECONDS  --rare N  --token T  --conns N  --runs N  --keep
#          --storage '{compactionSplitMessages: true}'  --out FILE
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/run-common.sh"

qgen=$(bench_compile "$here/qgen.c")
bench_drive "$here/query.py" --qgen "$qgen" "$@"
