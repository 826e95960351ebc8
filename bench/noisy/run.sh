#!/usr/bin/env bash
# Noisy-neighbour benchmark: tenant quiet's syslog ingest with and without a noisy neighbour.
#
#   bench/noisy/run.sh [noisy.py options]
#
# Each run starts a fresh Meniscus standalone with tenants quiet and noisy (a TCP listener bound
# to each), preloads 500,000 events into noisy, then quiet sends 2,000,000 RFC 5424 messages
# (200 bytes, octet-counted, 1 TCP connection, bench/e2e/blast.c). Cases, taking turns:
#   baseline  nothing else happens
#   noisy     during the window noisy keeps its query cap busy (2 threads looping heavy SQL over
#             its events) and a stranger holds 5,000 idle TCP connections to quiet's port from 20
#             loopback source addresses (127.0.0.2 ...)
# Measured for quiet: msg/s (generator go -> SELECT count(*) shows every message) and p99
# ingest-to-queryable (meniscus_store_ingest_to_queryable_seconds bucket deltas, interpolated as
# histogram_quantile); also the max /healthz latency on the ops and public listeners (sampled
# every 0.5 s), the noisy queries' answers by status, and how many of the stranger's connections
# the server kept and refused. Goal: noisy/baseline >= 0.8x the rate, p99 <= 2x.
# Results: table on stdout and in bench/results/noisy.txt (medians of --repeat runs, default 3).
#
# Env: MENISCUS_BIN (default $CARGO_TARGET_DIR/release/meniscus, else
#      ~/.cache/meniscus/target/release/meniscus); MENISCUS_CACHE (default ~/.cache/meniscus;
#      the generator is compiled there).
# Useful options: --count N  --repeat R  --preload N  --idle N  --stranger-addrs N
#                 --query-threads N  --limits '{maxConnections: 8192}'  --cases baseline,noisy
#                 --timeout S  --keep  --out FILE
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/bench/lib/run-common.sh"

blast=$(bench_compile "$repo/bench/e2e/blast.c")
bench_drive "$here/noisy.py" --blast "$blast" "$@"
