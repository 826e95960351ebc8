#!/usr/bin/env bash
# Builds fake-gcs-server (BSD-2-Clause), the Google Cloud Storage emulator that the archive's
# GCS test starts on loopback, from the Go module pinned in tools/fake-gcs-server/versions.env.
# A test tool, never a dependency of Meniscus.
#
# Patched: upstream answers the XML API's plain `PUT /BUCKET/OBJECT` (how Google Cloud Storage
# takes an upload, and what object_store sends) with 400 "invalid uploadType"; xml-put.patch
# routes it to the emulator's own signed-URL upload and returns the ETag and generation
# headers GCS returns. object_store's own CI runs a fork for the same reason. Upstream has no
# XML API multipart upload either (object_store's for objects over a part): xml-multipart.patch
# adds one (initiate, parts kept in memory, complete, abort). The module is
# copied out of the module cache, patched, and built with its own go.sum checking every
# dependency.
#
# Idempotent: does nothing when the binary already exists in the cache. Safe to re-run after an
# interruption: the binary is built under a temporary name and renamed into place once complete.
#
#   Binary:    ${MENISCUS_CACHE:-$HOME/.cache/meniscus}/fake-gcs-server/<version>-xml-put-multipart/fake-gcs-server
#   Go caches: ${MENISCUS_CACHE:-$HOME/.cache/meniscus}/go/   (shared with the other Go tools)
#
# Usage: tools/fake-gcs-server/build.sh [--print-bin]
set -euo pipefail

start=$(date +%s)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC1091
source "$here/versions.env"
: "${FAKE_GCS_SERVER_VERSION:?versions.env: FAKE_GCS_SERVER_VERSION missing}"

cache="${MENISCUS_CACHE:-$HOME/.cache/meniscus}"
# Named after the patch too, so a binary built without it is never taken for this one.
bin="$cache/fake-gcs-server/${FAKE_GCS_SERVER_VERSION}-xml-put-multipart/fake-gcs-server"

# shellcheck source=tools/lib/cached-tool.sh
. "$here/../lib/cached-tool.sh"
cached_tool_gate "$bin" "fake-gcs-server ${FAKE_GCS_SERVER_VERSION}" "$start" "$@"

# shellcheck source=tools/lib/go-env.sh
. "$here/../lib/go-env.sh"
export GOFLAGS="-buildvcs=false -trimpath -p=${MENISCUS_GO_PARALLEL:-2}"

module=github.com/fsouza/fake-gcs-server
dir=$(go_module_dir "$module" "$FAKE_GCS_SERVER_VERSION")

mkdir -p "$(dirname "$bin")"
src="$(dirname "$bin")/src"
rm -rf "$src"
cp -r "$dir" "$src"
chmod -R u+w "$src"
for fix in xml-put xml-multipart; do
    patch -d "$src" -p1 --quiet <"$here/$fix.patch"
done
echo "building fake-gcs-server ${FAKE_GCS_SERVER_VERSION} (patched: xml-put, xml-multipart) ..."
(cd "$src" && nice -n 10 "$GO" build -o "$bin.tmp" .)
mv "$bin.tmp" "$bin"
rm -rf "$src"
echo "fake-gcs-server ${FAKE_GCS_SERVER_VERSION} built: $bin ($(($(date +%s) - start))s)"
