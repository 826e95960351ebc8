# Sourced by the Go tool builds (tools/*/build.sh): the go command
# and an environment that keeps every module, build cache and GOPATH under $cache (set by the
# caller), builds reproducibly from the committed go.sum files, and touches nothing else.
#   GO                    go command (default: /usr/local/go/bin/go if present, else go)
#   MENISCUS_GO_PARALLEL  go build -p value (default 2; the machines are shared)

if [[ -z "${GO:-}" ]]; then
    if [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; else GO=go; fi
fi

export GOPATH="$cache/go"
export GOMODCACHE="$cache/go/mod"
export GOCACHE="$cache/go/cache"
# Module hashes are checked against the committed go.sum files; the checksum database
# (sum.golang.org) is not reachable from the build machines, only the module proxy is.
export GOSUMDB=off
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false -trimpath -p=${MENISCUS_GO_PARALLEL:-2}"

# Prints the directory of MODULE@VERSION in the module cache, downloading it from the proxy
# when missing (tools built from a module's own tree: seaweedfs, fake-gcs-server); exits with
# the reason when it cannot be had.
go_module_dir() {
    local module=$1 version=$2 dir
    dir=$(cd "$cache" && "$GO" mod download -json "$module@$version" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    if [[ -z "$dir" || ! -f "$dir/go.mod" ]]; then
        echo "error: could not download $module@$version from the Go module proxy" >&2
        exit 1
    fi
    printf '%s\n' "$dir"
}
