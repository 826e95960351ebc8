#!/usr/bin/env bash
# Ingest protocols side by side: Meniscus standalone's events per CPU-second for syslog TCP,
# HTTP publish, Loki push (protobuf + snappy), Elasticsearch _bulk, OTLP/HTTP (protobuf) and
# RELP, in one run against one process.
#
#   bench/agents/run.sh [agents.py options]
#
# Defaults: 300,000 events per protocol (bench/e2e's 200-byte RFC 5424 message, or its MSG with
# the same fields in each agent protocol), 1000 per HTTP request over a keep-alive connection,
# RELP with 1000 frames in flight; a syslog TCP warm-up first; then, in order, syslog-tcp,
# publish, loki, elastic, otlp, relp and the variants otlp-gzip and relp-w128 (omrelp's default
# window), three rounds taking turns (the table shows each protocol's median run). The
# senders are stdlib Python with every body rendered before the clock starts
# (the protobuf ones once, by encode.py with the agents' venv). A phase is measured from the
# first byte to its own Parquet flush (storage.flushEvents = the count), server CPU from
# /proc/PID/task/*/schedstat (every thread but `ops`, which only answers the driver's polls).
# Goal: each protocol >= 0.7x syslog TCP's events per CPU-second.
# Results: table on stdout and in bench/results/agents.txt.
#
# Env: MENISCUS_BIN (default $CARGO_TARGET_DIR/release/meniscus, else
#      ~/.cache/meniscus/target/release/meniscus); MENISCUS_CACHE (default ~/.cache/meniscus;
#      the agents' venv, made by dev/peers/python-clients.sh, lives there).
# Useful options: --count N  --repeat R  --batch N  --relp-window N  --conns N  --durable
#                 --perf PROTOCOLS (perf record those phases; the profiles are kept and logged)
#                 --protocols syslog-tcp,publish,publish-ndjson,loki,elastic,otlp,otlp-gzip,relp,relp-w128
#                 --timeout S (per phase)  --no-warmup  --keep  --out FILE
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/bench/lib/run-common.sh"

# The venv with protobuf, grpcio-tools, cramjam and opentelemetry-proto (only to encode the
# Loki and OTLP bodies); well under a second when it is already there.
venv_python=$("$repo/dev/peers/python-clients.sh")
bench_drive "$here/agents.py" --venv-python "$venv_python" "$@"
