#!/usr/bin/env bash
# End-to-end syslog ingest benchmark: Meniscus standalone vs rsyslog (imptcp -> file).
#
#   bench/e2e/run.sh [e2e.py options]
#
# Defaults: 2,000,000 RFC 5424 messages of 200 bytes, octet-counted, over 1 and 4 TCP
# connections to 127.0.0.1; cases: generator vs a C discard sink (the generator's own
# ceiling), rsyslog imptcp -> file (dev/peers/rsyslog-sink.sh), Meniscus standalone
# with a non-durable and with a durable producer. Results: table on stdout and in
# bench/results/e2e.txt.
#
# Env: MENISCUS_BIN (default $CARGO_TARGET_DIR/release/meniscus, else target/release/meniscus);
#      MENISCUS_CACHE (default ~/.cache/meniscus; the generator is compiled there).
# Useful options: --count N  --conns 1,4  --targets generator,rsyslog,meniscus,meniscus-durable
#                 --timeout S (per case)  --verify (rsyslog file holds N distinct messages)
# Meniscus cases are skipped, with a note in the table, when the binary does not exist.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache="${MENISCUS_CACHE:-$HOME/.cache/meniscus}/bench"
mkdir -p "$cache"

command -v rsyslogd >/dev/null || "$repo/dev/peers/install.sh"
command -v gcc >/dev/null || { echo "run.sh: gcc is needed to build the generator" >&2; exit 1; }

blast=$cache/blast
if [ ! -x "$blast" ] || [ "$here/blast.c" -nt "$blast" ]; then
    gcc -O2 -pthread -Wall -o "$blast.tmp" "$here/blast.c"
    mv "$blast.tmp" "$blast"
fi

py=""
cleanup() {
    # e2e.py kills the servers and generators it started on SIGTERM; give it a moment.
    if [ -n "$py" ] && kill -0 "$py" 2>/dev/null; then
        kill -TERM "$py" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$py" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$py" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

python3 "$here/e2e.py" --blast "$blast" "$@" &
py=$!
wait "$py"
