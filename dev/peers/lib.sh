# Shared helpers for the peer scripts (sourced, not run).

PEERS_CACHE="${MENISCUS_CACHE:-$HOME/.cache/meniscus}/peers"
PEERS_BIN="$PEERS_CACHE/bin"

peer_die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# A free TCP (default) or UDP port on 127.0.0.1. Racy by nature; good enough for tests.
peer_free_port() {
    python3 - "${1:-tcp}" <<'EOF'
import socket, sys
kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET, kind)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
}

# True when something listens on 127.0.0.1:PORT (TCP).
peer_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Wait until PID listens on TCP PORT, or fail after TIMEOUT seconds (default 10).
# Checks /proc/net/tcp so the probe does not open a connection (and a log line) itself.
peer_wait_listen() {
    local pid=$1 port=$2 timeout=${3:-10} hex i
    hex=$(printf '%04X' "$port")
    for ((i = 0; i < timeout * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        if awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" {f=1} END {exit !f}' /proc/net/tcp /proc/net/tcp6; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# Wait until PID has opened a UDP socket on PORT.
peer_wait_udp() {
    local pid=$1 port=$2 timeout=${3:-10} hex i
    hex=$(printf '%04X' "$port")
    for ((i = 0; i < timeout * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        if awk -v p=":$hex" '$2 ~ p"$" {f=1} END {exit !f}' /proc/net/udp /proc/net/udp6; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# Wait until PATH exists (e.g. a pid file).
peer_wait_file() {
    local path=$1 timeout=${2:-10} i
    for ((i = 0; i < timeout * 20; i++)); do
        [ -s "$path" ] && return 0
        sleep 0.05
    done
    return 1
}

# Start "$@" in the background (not daemonized: the caller owns and kills it),
# stdout/stderr appended to LOG; sets PEER_PID.
peer_spawn() {
    local log=$1; shift
    "$@" >>"$log" 2>&1 </dev/null &
    PEER_PID=$!
}

# Refuse values that would need escaping inside an SD PARAM-VALUE or a config string.
peer_check_sd_value() {
    case "$2" in
        *'"'* | *'\'* | *']'* | *"'"* | *$'\n'*) peer_die "$1 must not contain quotes, backslashes, ] or newlines" ;;
    esac
}

# Print the machine-readable result block tests parse: key=value lines.
peer_report() {
    local f=$1; shift
    : >"$f"
    for kv in "$@"; do
        printf '%s\n' "$kv" | tee -a "$f"
    done
}
