#!/usr/bin/env bash
# The real Python clients of log agents' HTTP protocols that tests/agents/ drives (OTLP/HTTP
# logs, Elasticsearch _bulk, Loki push JSON and protobuf), in a virtualenv in the cache:
#
#   dev/peers/python-clients.sh     create or update the venv if needed; prints its python on
#                                   stdout (e.g. PY=$(dev/peers/python-clients.sh)), the rest
#                                   on stderr, with the time taken
#
# The venv is $MENISCUS_CACHE/venv-agents (default ~/.cache/meniscus/venv-agents), outside the
# clone. Every package is pinned, the libraries' dependencies too. The pinned list and the base
# interpreter are written to a stamp file in the venv once everything is installed and
# imports; when the stamp matches, the script only checks that the venv's python starts
# (well under a second). When the list (or python3) changed, the venv is built again from
# scratch (~20 s, from PyPI). Wheels only: nothing is compiled here.
#
# Needs python3 >= 3.11 with a working `python3 -m venv` (PYTHON=... picks another one). On
# Debian/Ubuntu the system python3 has venv only with python3-venv installed: the script adds
# it with dev/lib/apt.sh's apt_install_no_remove (new packages only, nothing removed or
# upgraded), and if apt refuses, says so and stops.
set -euo pipefail

start=$(date +%s.%N)
here=$(cd "$(dirname "$0")" && pwd)
CACHE="${MENISCUS_CACHE:-$HOME/.cache/meniscus}"
VENV="$CACHE/venv-agents"
STAMP="$VENV/.meniscus-requirements"
PY="${PYTHON:-python3}"

# The libraries the clients use (licences: OpenTelemetry, elasticsearch, elastic-transport,
# grpcio(-tools), requests: Apache-2.0; protobuf, idna, python-dateutil: BSD-3-Clause;
# python-logging-loki, cramjam, urllib3, charset-normalizer, setuptools: MIT; rfc3339: ISC;
# typing_extensions: PSF-2.0; certifi: MPL-2.0), then what they depend on, all pinned.
REQUIREMENTS='opentelemetry-sdk==1.45.2
opentelemetry-exporter-otlp-proto-http==1.45.2
elasticsearch==8.19.3
python-logging-loki==0.3.1
protobuf==7.36.2
grpcio-tools==1.85.1
cramjam==2.14.0
certifi==2026.10.19.post1
charset-normalizer==3.5.3
elastic-transport==8.19.0
googleapis-common-protos==1.76.0
grpcio==1.85.3
idna==3.20
opentelemetry-api==1.45.2
opentelemetry-exporter-http-transport==0.66b2
opentelemetry-exporter-otlp-common==0.66b2
opentelemetry-exporter-otlp-proto-common==1.45.2
opentelemetry-proto==1.45.2
opentelemetry-semantic-conventions==0.66b2
python-dateutil==4.0.0
requests==2.34.2
rfc3339==6.2
setuptools==84.2.1
typing_extensions==4.16.0
tzdata==2026.6
urllib3==2.8.0'
# What the clients import: checked before the stamp is written.
IMPORTS='opentelemetry.sdk._logs, opentelemetry.exporter.otlp.proto.http._log_exporter,
elasticsearch.helpers, logging_loki, google.protobuf, grpc_tools.protoc, cramjam'

log() { printf '[agents] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
done_in() {
    log "$1 in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.2f", e-s}') s"
    printf '%s\n' "$VENV/bin/python"
}

command -v "$PY" >/dev/null || die "$PY not found: the agents' clients need python3 >= 3.11 (Debian: apt-get install python3 python3-venv)"
# The base interpreter (resolved, so that a pyenv shim and the python behind it count as one)
# and its version are part of the stamp: a venv does not survive its interpreter.
base=$("$PY" -c 'import os, sys; print(sys.version.split()[0], os.path.realpath(sys.executable))') ||
    die "$PY does not run"
read -r pyver exe <<<"$base"
want="python $base
$REQUIREMENTS"

ready() { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -c '' 2>/dev/null; }
if ready; then
    done_in "agents' clients ready ($VENV)"
    exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/venv-agents.lock"
flock -w 600 9 || die "another run holds $CACHE/venv-agents.lock"
if ready; then # built by the run we waited for
    done_in "agents' clients ready ($VENV)"
    exit 0
fi

"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$PY is Python $pyver; the pinned clients need >= 3.11 (PYTHON=/path/to/python3.11 $0)"

# `python3 -m venv` needs the venv and ensurepip modules; Debian ships ensurepip in python3-venv.
has_venv() { "$PY" -c 'import venv, ensurepip' 2>/dev/null; }
if ! has_venv; then
    hint="$PY ($exe) cannot create a virtualenv (no venv/ensurepip module)"
    if [ "${exe#/usr/bin/}" != "$exe" ] && command -v apt-get >/dev/null; then
        # Debian's own python3: add python3-venv as a new package (dev/lib/apt.sh refuses to
        # remove, upgrade or replace anything, and blocks service starts).
        # shellcheck source=dev/lib/apt.sh
        . "$here/../lib/apt.sh"
        log "$hint: adding python3-venv"
        rc=0
        apt_install_no_remove python3-venv || rc=$?
        case $rc in
            0) has_venv || die "$hint, even with python3-venv installed: apt-get install python3-venv python${pyver%.*}-venv" ;;
            2 | 3) die "$hint; apt can add python3-venv only by changing installed packages (see above): run apt-get install python3-venv yourself" ;;
            *) die "$hint, and apt-get could not install python3-venv (see above): run apt-get install python3-venv" ;;
        esac
    else
        die "$hint: on Debian/Ubuntu apt-get install python3-venv; else use a python3 that has venv (PYTHON=...)"
    fi
fi

if [ -e "$VENV" ]; then
    log "rebuilding $VENV (pinned list or python3 changed, or an earlier build did not finish)"
    rm -rf "$VENV"
else
    log "creating $VENV"
fi
"$PY" -m venv "$VENV" || die "$PY -m venv $VENV failed (on Debian/Ubuntu: apt-get install python3-venv)"
reqs="$VENV/requirements.txt"
printf '%s\n' "$REQUIREMENTS" >"$reqs"
log "pip install (python $pyver): $(head -7 "$reqs" | tr '\n' ' ')+ $(($(wc -l <"$reqs") - 7)) dependencies"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q --only-binary=:all: -r "$reqs" >&2 ||
    die "pip install into $VENV failed (see above); PyPI must be reachable"
"$VENV/bin/python" -m pip check >&2 || die "the pinned set is inconsistent (pip check above)"
"$VENV/bin/python" -c "import $(printf '%s' "$IMPORTS" | tr -d '\n')" ||
    die "the agents' clients do not import in $VENV"
printf '%s\n' "$want" >"$STAMP"
done_in "agents' clients installed ($VENV)"
