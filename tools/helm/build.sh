#!/usr/bin/env bash
# Builds Helm's `helm` command (Apache-2.0), which the chart tests run (`helm lint`,
# `helm template`, `helm install` against the test control plane), from Go modules, at the
# release pinned in tools/helm/versions.env. A test tool, never a dependency of Meniscus.
#
# Built from our own module (tools/helm/go.mod, `tool helm.sh/helm/v4/cmd/helm`) so that the
# committed go.sum checks every module, Helm's own included; the build list is the same as
# Helm's own go.mod gives. Stamped with the version as Helm's Makefile does for a release tag.
#
# Idempotent: does nothing when the binary already exists in the cache. Safe to re-run after an
# interruption: the binary is built under a temporary name and renamed into place once complete.
#
#   Binary:    ${MENISCUS_CACHE:-$HOME/.cache/meniscus}/helm/<version>/bin/helm
#   Go caches: ${MENISCUS_CACHE:-$HOME/.cache/meniscus}/go/   (shared with the other Go tools)
#
# Usage: tools/helm/build.sh [--print-bin | --print-bin-dir]
#   --print-bin      print the binary's path and exit (no build)
#   --print-bin-dir  print the binary's directory and exit (no build; for PATH)
# Environment:
#   MENISCUS_CACHE        cache root (default ~/.cache/meniscus)
#   GO                    go command (default: /usr/local/go/bin/go if present, else go)
#   MENISCUS_GO_PARALLEL  go build -p value (default 2; the machines are shared)
set -euo pipefail

start=$(date +%s)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# shellcheck disable=SC1091
source "$here/versions.env"
: "${HELM_VERSION:?versions.env: HELM_VERSION missing}"

cache="${MENISCUS_CACHE:-$HOME/.cache/meniscus}"
bin="$cache/helm/${HELM_VERSION}/bin/helm"

if [[ "${1:-}" == "--print-bin-dir" && $# -eq 1 ]]; then
    dirname "$bin"
    exit 0
fi
# shellcheck source=tools/lib/cached-tool.sh
. "$here/../lib/cached-tool.sh"
cached_tool_gate "$bin" "helm v${HELM_VERSION}" "$start" "$@"

# shellcheck source=tools/lib/go-env.sh
. "$here/../lib/go-env.sh"

# Check that go.mod agrees with versions.env (go.mod is the one that gets built).
got=$(cd "$here" && "$GO" list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' helm.sh/helm/v4)
if [[ "$got" != "v$HELM_VERSION" ]]; then
    echo "error: $here/go.mod has helm.sh/helm/v4 $got but versions.env wants v$HELM_VERSION;" \
        "update go.mod (go get helm.sh/helm/v4@v$HELM_VERSION, then go mod tidy)" >&2
    exit 1
fi

mkdir -p "$(dirname "$bin")"
rm -f "$(dirname "$bin")"/.*.tmp.* # leftovers of interrupted builds
tmp="$(dirname "$bin")/.helm.tmp.$$"
trap 'rm -f "$tmp"' EXIT INT TERM
echo "building helm v${HELM_VERSION} into $bin"
echo "go: $("$GO" version); the first build downloads the modules and takes a while"
ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=v${HELM_VERSION}"
ldflags+=" -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
(cd "$here" && nice -n 10 "$GO" build -ldflags "$ldflags" -o "$tmp" helm.sh/helm/v4/cmd/helm)
mv -f "$tmp" "$bin"
trap - EXIT INT TERM

echo "helm v${HELM_VERSION} built in $(($(date +%s) - start))s: $bin"
