#!/usr/bin/env bash
# Builds the Kubernetes test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok) from Go modules, at the versions pinned in tools/k8s/versions.env.
#
# Idempotent: does nothing when the binaries already exist in the cache. Safe to re-run after
# an interruption: every binary is built under a temporary name and renamed into place only
# once complete.
#
#   Binaries:  ${MENISCUS_CACHE:-$HOME/.cache/meniscus}/k8s/<k8s>-etcd<etcd>/bin/
#   Go caches: ${MENISCUS_CACHE:-$HOME/.cache/meniscus}/go/   (GOPATH, GOMODCACHE, GOCACHE)
#
# Usage: tools/k8s/build.sh [--print-bin-dir]
#   --print-bin-dir  print the binary directory and exit (no build)
# Environment:
#   MENISCUS_CACHE        cache root (default ~/.cache/meniscus)
#   GO                    go command (default: /usr/local/go/bin/go if present, else go)
#   MENISCUS_K8S_NO_KWOK  set to 1 to skip kwok (simulated nodes; optional)
#   MENISCUS_GO_PARALLEL  go build -p value (default 2; the machines are shared)
set -euo pipefail

start=$(date +%s)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# shellcheck disable=SC1091
source "$here/versions.env"
: "${K8S_VERSION:?versions.env: K8S_VERSION missing}"
: "${ETCD_VERSION:?versions.env: ETCD_VERSION missing}"
: "${KWOK_VERSION:?versions.env: KWOK_VERSION missing}"

cache="${MENISCUS_CACHE:-$HOME/.cache/meniscus}"
bin="$cache/k8s/${K8S_VERSION}-etcd${ETCD_VERSION}/bin"

if [[ "${1:-}" == "--print-bin-dir" ]]; then
    echo "$bin"
    exit 0
fi

want=(etcd kube-apiserver kube-controller-manager kube-scheduler)
[[ "${MENISCUS_K8S_NO_KWOK:-0}" == 1 ]] || want+=(kwok)

missing=()
for b in "${want[@]}"; do
    [[ -x "$bin/$b" ]] || missing+=("$b")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "k8s control plane v${K8S_VERSION} (etcd v${ETCD_VERSION}) already built in $bin ($(($(date +%s) - start))s)"
    exit 0
fi

# shellcheck source=tools/lib/go-env.sh
. "$here/../lib/go-env.sh"

# Check that go.mod agrees with versions.env (go.mod is the one that gets built).
check_version() { # dir module want
    local got
    got=$(cd "$1" && "$GO" list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$2")
    if [[ "$got" != "$3" ]]; then
        echo "error: $1/go.mod has $2 $got but versions.env wants $3; update go.mod (see testenv/README.md)" >&2
        exit 1
    fi
}
check_version "$here" k8s.io/kubernetes "v$K8S_VERSION"
check_version "$here" k8s.io/apiserver "v0.${K8S_VERSION#1.}"
check_version "$here" go.etcd.io/etcd/server/v3 "v$ETCD_VERSION"

mkdir -p "$bin"
rm -f "$bin"/.*.tmp.* # leftovers of interrupted builds
echo "building ${missing[*]} (k8s v${K8S_VERSION}, etcd v${ETCD_VERSION}, kwok v${KWOK_VERSION}) into $bin"
echo "go: $("$GO" version); first build takes a while (see testenv/README.md)"

# Version stamping, as kubernetes' hack/lib/version.sh does, so /version reports the truth.
k8s_minor="${K8S_VERSION#*.}"; k8s_minor="${k8s_minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v${K8S_VERSION}"
    ldflags+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=${k8s_minor}"
    ldflags+=" -X $pkg.gitTreeState=clean"
    ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build() { # name moduledir package
    local name=$1 dir=$2 pkg=$3 t0
    t0=$(date +%s)
    local tmp="$bin/.$name.tmp.$$"
    trap "rm -f '$tmp'" EXIT INT TERM
    (cd "$dir" && nice -n 10 "$GO" build -ldflags "$ldflags" -o "$tmp" "$pkg")
    mv -f "$tmp" "$bin/$name"
    trap - EXIT INT TERM
    echo "  built $name in $(($(date +%s) - t0))s"
}

for b in "${missing[@]}"; do
    case "$b" in
        etcd) build etcd "$here" ./cmd/etcd ;;
        kube-apiserver | kube-controller-manager | kube-scheduler)
            build "$b" "$here" "k8s.io/kubernetes/cmd/$b" ;;
        kwok)
            check_version "$here/kwok" sigs.k8s.io/kwok "v$KWOK_VERSION"
            build kwok "$here/kwok" sigs.k8s.io/kwok/cmd/kwok ;;
    esac
done

echo "k8s control plane built in $bin in $(($(date +%s) - start))s"
