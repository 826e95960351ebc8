#!/usr/bin/env bash
# Installs Azurite (MIT), the Azure Blob Storage emulator the archive's Azure test runs, and
# @azure/storage-blob (MIT), which that test uses to create its container (the archive's
# object_store client, like any writer, expects the container to exist). From npm, into the
# cache; a test tool, never a dependency of Meniscus.
#
# Idempotent: does nothing when the pinned versions are installed. Safe to re-run after an
# interruption: it installs into a temporary directory and renames it into place.
#
#   ${MENISCUS_CACHE:-$HOME/.cache/meniscus}/azurite/<version>/node_modules/.bin/azurite-blob
#
# Usage: tools/azurite/install.sh [--print-dir]
set -euo pipefail

start=$(date +%s)
azurite=3.37.0
storage_blob=12.34.0
cache="${MENISCUS_CACHE:-$HOME/.cache/meniscus}"
dir="$cache/azurite/$azurite-$storage_blob"

if [ -x "$dir/node_modules/.bin/azurite-blob" ] && [ -d "$dir/node_modules/@azure/storage-blob" ]; then
    [ "${1:-}" = "--print-dir" ] && echo "$dir"
    [ "${1:-}" = "--print-dir" ] || echo "azurite $azurite already installed: $dir ($(($(date +%s) - start))s)"
    exit 0
fi
command -v npm >/dev/null || { echo "tools/azurite/install.sh: npm is needed (Debian: nodejs, npm)" >&2; exit 1; }
temporary="$dir.tmp.$$"
rm -rf "$temporary"
mkdir -p "$temporary"
trap 'rm -rf "$temporary"' EXIT
(cd "$temporary" && npm install --no-audit --no-fund --loglevel=error \
    "azurite@$azurite" "@azure/storage-blob@$storage_blob" >&2)
rm -rf "$dir"
mv "$temporary" "$dir"
trap - EXIT
[ "${1:-}" = "--print-dir" ] && echo "$dir"
[ "${1:-}" = "--print-dir" ] || echo "azurite $azurite installed: $dir ($(($(date +%s) - start))s)"
