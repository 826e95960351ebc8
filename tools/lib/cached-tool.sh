# Sourced by the builds of single-binary tools (tools/otelcol/build.sh, tools/seaweedfs/build.sh)
# before anything slow: answers `--print-bin` and refuses other arguments, and ends the script
# when the binary is already in the cache (every build is "install if missing").
#   cached_tool_gate BIN WHAT START ARGS...
#     BIN    the binary's path in the cache;  WHAT   "name version", for the message
#     START  the script's start time (date +%s); ARGS   the script's own arguments
cached_tool_gate() {
    local bin=$1 what=$2 start=$3
    shift 3
    if [[ "${1:-}" == "--print-bin" ]]; then
        echo "$bin"
        exit 0
    elif [[ $# -gt 0 ]]; then
        echo "usage: $0 [--print-bin]" >&2
        exit 2
    fi
    if [[ -x "$bin" ]]; then
        echo "$what already built: $bin ($(($(date +%s) - start))s)"
        exit 0
    fi
}
