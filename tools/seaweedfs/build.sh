#!/usr/bin/env bash
# Builds SeaweedFS's `weed` command (Apache-2.0), the S3-compatible server that the archive's
# tests start on loopback (`weed mini`), from the Go module pinned in
# tools/seaweedfs/versions.env. A test tool, never a dependency of Meniscus.
#
# SeaweedFS's go.mod has replace directives, so `go install module@version` refuses it; the
# module is downloaded into the module cache and built in place with its own go.sum.
#
# Idempotent: does nothing when the binary already exists in the cache. Safe to re-run after an
# interruption: the binary is built under a temporary name and renamed into place once complete.
#
#   Binary:    ${MENISCUS_CACHE:-$HOME/.cache/meniscus}/seaweedfs/<version>/weed
#   Go caches: ${MENISCUS_CACHE:-$HOME/.cache/meniscus}/go/   (shared with the other Go tools)
#
# Usage: tools/seaweedfs/build.sh [--print-bin]
set -euo pipefail

start=$(date +%s)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC1091
source "$here/versions.env"
: "${SEAWEEDFS_VERSION:?versions.env: SEAWEEDFS_VERSION missing}"

cache="${MENISCUS_CACHE:-$HOME/.cache/meniscus}"
bin="$cache/seaweedfs/${SEAWEEDFS_VERSION}/weed"

# shellcheck source=tools/lib/cached-tool.sh
. "$here/../lib/cached-tool.sh"
cached_tool_gate "$bin" "seaweedfs ${SEAWEEDFS_VERSION}" "$start" "$@"

# shellcheck source=tools/lib/go-env.sh
. "$here/../lib/go-env.sh"
# The module's own go.sum is what checks its dependencies; outside a main module,
# -mod=readonly would refuse to resolve them.
export GOFLAGS="-buildvcs=false -trimpath -p=${MENISCUS_GO_PARALLEL:-2}"

module=github.com/seaweedfs/seaweedfs
dir=$(go_module_dir "$module" "$SEAWEEDFS_VERSION")

mkdir -p "$(dirname "$bin")"
echo "building seaweedfs ${SEAWEEDFS_VERSION} (weed) ..."
(cd "$dir" && "$GO" build -o "$bin.tmp" ./weed)
mv "$bin.tmp" "$bin"
echo "seaweedfs ${SEAWEEDFS_VERSION} built: $bin ($(($(date +%s) - start))s)"
