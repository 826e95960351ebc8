#!/usr/bin/env bash
# Builds the OpenTelemetry Collector that tests/agents.rs runs as a real client (filelog
# receiver; otlphttp, syslog and debug exporters), from Go modules, at the release pinned in
# tools/otelcol/versions.env (main.go and components.go are what the collector builder, ocb,
# would generate for that component list).
#
# Idempotent: does nothing when the binary already exists in the cache. Safe to re-run after an
# interruption: the binary is built under a temporary name and renamed into place once complete.
#
#   Binary:    ${MENISCUS_CACHE:-$HOME/.cache/meniscus}/otelcol/<version>/otelcol-meniscus
#   Go caches: ${MENISCUS_CACHE:-$HOME/.cache/meniscus}/go/   (GOPATH, GOMODCACHE, GOCACHE;
#              shared with tools/k8s/build.sh)
#
# Usage: tools/otelcol/build.sh [--print-bin]
#   --print-bin  print the binary's path and exit (no build)
# Environment:
#   MENISCUS_CACHE        cache root (default ~/.cache/meniscus)
#   GO                    go command (default: /usr/local/go/bin/go if present, else go)
#   MENISCUS_GO_PARALLEL  go build -p value (default 2; the machines are shared)
set -euo pipefail

start=$(date +%s)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# shellcheck disable=SC1091
source "$here/versions.env"
: "${OTELCOL_VERSION:?versions.env: OTELCOL_VERSION missing}"
: "${OTELCOL_CORE_VERSION:?versions.env: OTELCOL_CORE_VERSION missing}"

cache="${MENISCUS_CACHE:-$HOME/.cache/meniscus}"
bin="$cache/otelcol/${OTELCOL_VERSION}/otelcol-meniscus"

# shellcheck source=tools/lib/cached-tool.sh
. "$here/../lib/cached-tool.sh"
cached_tool_gate "$bin" "otelcol v${OTELCOL_VERSION}" "$start" "$@"

# shellcheck source=tools/lib/go-env.sh
. "$here/../lib/go-env.sh"

# Check that go.mod agrees with versions.env (go.mod is the one that gets built): every
# collector module at the one release.
check_version() { # module want
    local got
    got=$(cd "$here" && "$GO" list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$1")
    if [[ "$got" != "$2" ]]; then
        echo "error: $here/go.mod has $1 $got but versions.env wants $2; update go.mod" >&2
        exit 1
    fi
}
check_version go.opentelemetry.io/collector/otelcol "v$OTELCOL_VERSION"
check_version go.opentelemetry.io/collector/component "v$OTELCOL_CORE_VERSION"
check_version github.com/open-telemetry/opentelemetry-collector-contrib/receiver/filelogreceiver "v$OTELCOL_VERSION"
check_version github.com/open-telemetry/opentelemetry-collector-contrib/exporter/syslogexporter "v$OTELCOL_VERSION"
mixed=$(cd "$here" && "$GO" list -m -f '{{.Path}} {{.Version}}' all |
    awk -v beta="v$OTELCOL_VERSION" -v stable="v$OTELCOL_CORE_VERSION" \
        '($1 ~ /^go\.opentelemetry\.io\/collector(\/|$)/ || $1 ~ /opentelemetry-collector-contrib/) && $2 != beta && $2 != stable')
if [[ -n "$mixed" ]]; then
    echo "error: collector modules not at v$OTELCOL_VERSION / v$OTELCOL_CORE_VERSION in $here/go.mod:" >&2
    echo "$mixed" >&2
    exit 1
fi

mkdir -p "$(dirname "$bin")"
rm -f "$(dirname "$bin")"/.*.tmp.* # leftovers of interrupted builds
tmp="$(dirname "$bin")/.otelcol-meniscus.tmp.$$"
trap 'rm -f "$tmp"' EXIT INT TERM
echo "building otelcol v${OTELCOL_VERSION} (core v${OTELCOL_CORE_VERSION}) into $bin"
echo "go: $("$GO" version); the first build downloads the modules and takes a while"
(cd "$here" && nice -n 10 "$GO" build -ldflags "-s -w" -o "$tmp" .)
mv -f "$tmp" "$bin"
trap - EXIT INT TERM

echo "otelcol v${OTELCOL_VERSION} built in $(($(date +%s) - start))s: $bin"
