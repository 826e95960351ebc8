#!/usr/bin/env bash
# Coordinator benchmark: a simulated grid of N workers (asyncio clients in one process)
# against a real `meniscus worker --persona coordinator`:
#   - pairing N workers (each a state-file write);
#   - heartbeats: every worker once a second for a while; coordinator CPU per heartbeat;
#   - a route change (one more worker pairs) reaching all N workers that long-poll
#     GET /v1/updates: time until the last one has the new version (goal < 2 s). There is no
#     broadcaster yet, so this is the coordinator fanning out alone: the baseline a
#     broadcaster has to beat.
#
#   bench/grid/run.sh [--workers 1000] [--heartbeat-seconds 20] [--out FILE]
# Results: stdout and bench/results/grid.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/run-common.sh"
bench_drive "$here/grid.py" "$@"
