# Sourced by bench/*/run.sh: builds a C load generator into the cache and runs a Python driver
# so that an interrupted benchmark still stops every process it started.
#
#   bench_compile SOURCE.c     -> prints the path of the binary (rebuilt when SOURCE or lib changed)
#   bench_drive DRIVER.py ARGS -> runs the driver; on exit/INT/TERM it gets SIGTERM, then SIGKILL

bench_lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench_cache="${MENISCUS_CACHE:-$HOME/.cache/meniscus}/bench"
mkdir -p "$bench_cache"
# Peers unpacked into the cache (rsyslogd when the system has a conflicting logger, syslog-ng,
# loggen) come first, as in dev/test.
export PATH="${MENISCUS_CACHE:-$HOME/.cache/meniscus}/peers/bin:$PATH"
# The release binary where dev/env.sh's target directory puts it (`dev/run --release` or
# `cargo build --release -p meniscus-worker` with dev/env.sh sourced builds it).
export MENISCUS_BIN="${MENISCUS_BIN:-${CARGO_TARGET_DIR:-${MENISCUS_CACHE:-$HOME/.cache/meniscus}/target}/release/meniscus}"

bench_compile() {
    local source=$1 binary
    binary=$bench_cache/$(basename "$source" .c)
    command -v gcc >/dev/null || { echo "run.sh: gcc is needed to build $(basename "$source")" >&2; exit 1; }
    if [ ! -x "$binary" ] || [ "$source" -nt "$binary" ] || [ "$bench_lib/tcpsend.h" -nt "$binary" ]; then
        gcc -O2 -pthread -Wall -o "$binary.tmp" "$source" >&2
        mv "$binary.tmp" "$binary"
    fi
    echo "$binary"
}

bench_driver_pid=""
bench_stop_driver() {
    # The driver stops the servers and generators it started when it gets SIGTERM; give it
    # up to 15 s for that.
    if [ -n "$bench_driver_pid" ] && kill -0 "$bench_driver_pid" 2>/dev/null; then
        kill -TERM "$bench_driver_pid" 2>/dev/null || true
        for _ in $(seq 150); do kill -0 "$bench_driver_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$bench_driver_pid" 2>/dev/null || true
    fi
}

bench_drive() {
    trap bench_stop_driver EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    python3 "$@" &
    bench_driver_pid=$!
    wait "$bench_driver_pid"
}
