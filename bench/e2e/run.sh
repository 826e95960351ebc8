#!/usr/bin/env bash
# End-to-end syslog ingest benchmark: Meniscus standalone vs rsyslog (imptcp -> file).
#
#   bench/e2e/run.sh [e2e.py options]
#
# Defaults: 2,000,000 RFC 5424 messages of 200 bytes, octet-counted, over 1 and 4 TCP
# connections to 127.0.0.1; cases: generator vs a C discard sink (the generator's own
# ceiling), rsyslog imptcp -> file (dev/peers/rsyslog-sink.sh), Meniscus standalone
# with a non-durable and with a durable producer; optionally (`--targets …,grid,grid-durable`)
# the same through a grid of three processes (coordinator, correlator, storage worker), and
# (`grid-hop,grid-hop-durable`) of four, the normalizer a process of its own between
# correlator and storage; CPU summed over them. Results: table on stdout and in
# bench/results/e2e.txt.
#
# Env: MENISCUS_BIN (default $CARGO_TARGET_DIR/release/meniscus, else target/release/meniscus);
#      MENISCUS_CACHE (default ~/.cache/meniscus; the generator is compiled there).
# Useful options: --count N  --conns 1,4
#                 --targets generator,rsyslog,meniscus,meniscus-durable,grid,grid-durable,grid-hop,grid-hop-durable
#                 --timeout S (per case)  --verify (rsyslog file holds N distinct messages)
# Meniscus cases are skipped, with a note in the table, when the binary does not exist.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/bench/lib/run-common.sh"

"$repo/dev/peers/install.sh" >/dev/null  # idempotent: well under a second when installed
blast=$(bench_compile "$here/blast.c")
bench_drive "$here/e2e.py" --blast "$blast" "$@"
