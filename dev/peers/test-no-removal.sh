#!/usr/bin/env bash
# Issue 16: the set-up must never remove or replace the machine's own packages, nor enable or
# start a service. Runs dev/peers/install.sh inside throwaway Debian bookworm roots where the
# logger that conflicts with a peer is installed, one root per direction:
#
#   syslog-ng   syslog-ng-core installed (rsyslog conflicts with it); no /usr/sbin/policy-rc.d
#   rsyslog     rsyslog installed (syslog-ng-core conflicts with it); a policy-rc.d of its own;
#               then the "user" adds rsyslog-gnutls + rsyslog-relp and install.sh must switch
#               to the system's rsyslogd
#
# and checks in each: install.sh passes, twice (the second run only verifies); every package
# installed before is still installed at the same version; policy-rc.d is exactly as it was
# (content, mode, or absence); no service was enabled (/etc/systemd/system, /etc/rc?.d) and no
# process was left running; and the peers start: an rsyslog sink (dev/peers/rsyslog-sink.sh)
# and a syslog-ng forwarder (dev/peers/syslog-ng-forward.sh) open their TCP inputs, and a
# `logger` line goes syslog-ng -> rsyslog -> file.
#
#   dev/peers/test-no-removal.sh [syslog-ng] [rsyslog]     (default: both)
#   dev/peers/test-no-removal.sh --rebuild ...             build the cached roots again
#
# Needs root (chroot, mount); re-runs itself through sudo otherwise. The real machine's packages
# are not touched, except that debootstrap is installed the safe way (dev/lib/apt.sh) when
# missing, or unpacked into the cache when apt could only add it by changing installed packages.
#
# Cache: $MENISCUS_CACHE/no-removal (default ~/.cache/meniscus/no-removal, about 430 MB):
#   base/            debootstrap --variant=minbase bookworm from the machine's Debian mirror, with
#                    package lists and the openssl .debs (so warm runs need no network)
#   layer-D/upper    overlay layer: base + the conflicting logger of direction D, built once
#   debs/            the .debs install.sh unpacks, kept between runs (copied into each run)
#   run-D/           per run: overlay (upper/work/merged) over layer-D and base, thrown away
# Each run starts from the cached layers, so install.sh always meets a machine that has never
# seen it. Mounts (/proc, /dev, /dev/pts, the overlays) are always undone by a trap; a run that
# was killed outright leaves them behind and the next run removes them first.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CACHE="${MENISCUS_CACHE:-$HOME/.cache/meniscus}"

if [ "$(id -u)" -ne 0 ]; then
    exec sudo env MENISCUS_CACHE="$CACHE" "$0" "$@"
fi

# shellcheck source=dev/lib/apt.sh
. "$repo/dev/lib/apt.sh"
# shellcheck source=dev/peers/lib.sh
. "$here/lib.sh"

ROOT="$CACHE/no-removal"
SUITE=bookworm
INNER_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
t0=$(date +%s.%N)

log() { printf '[no-removal] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
secs() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}'; }

rebuild=0
directions=()
for arg in "$@"; do
    case $arg in
        --rebuild) rebuild=1 ;;
        syslog-ng | rsyslog) directions+=("$arg") ;;
        *) echo "usage: $0 [--rebuild] [syslog-ng] [rsyslog]" >&2; exit 64 ;;
    esac
done
[ ${#directions[@]} -gt 0 ] || directions=(syslog-ng rsyslog)

mkdir -p "$ROOT"
exec 8>"$ROOT/.lock"
flock -w 900 8 || die "another run holds $ROOT/.lock"

# ---- mounts and processes under $ROOT --------------------------------------------------------
# (paths under the cache contain no spaces; /proc/self/mountinfo would escape them)
mounts_under() { awk -v r="$1/" 'index($5, r) == 1 || $5 == substr(r, 1, length(r) - 1) {print $5}' /proc/self/mountinfo; }
procs_under() {
    local p r
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        case $r in "$ROOT"/*) echo "${p#/proc/}" ;; esac
    done
}
kill_procs() {
    local pids
    pids=$(procs_under)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null || true
    for _ in $(seq 50); do [ -n "$(procs_under)" ] || return 0; sleep 0.1; done
    # shellcheck disable=SC2046
    kill -9 $(procs_under) 2>/dev/null || true
    sleep 0.2
}
unmount_all() {
    local m
    kill_procs
    # Deepest first (merged/dev/pts before merged/dev before merged).
    mounts_under "$ROOT" | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" || log "cannot unmount $m"
    done
}
# rm -rf that refuses to run while anything is mounted below, and never crosses into another
# file system (a forgotten bind mount of /dev must not be emptied).
safe_rm() {
    local d
    for d in "$@"; do
        [ -n "$(mounts_under "$d")" ] && die "refusing to remove $d: still mounted below"
        rm -rf --one-file-system "$d"
    done
}
cleanup() {
    local rc=$?
    unmount_all
    [ $rc -eq 0 ] || log "failed or interrupted (exit $rc); logs and files of the run are under $ROOT/run-*/ until the next run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
if [ -n "$(mounts_under "$ROOT")$(procs_under)" ]; then
    log "cleaning up after an interrupted run: $(mounts_under "$ROOT" | wc -l) mounts, $(procs_under | wc -l) processes"
    unmount_all
fi

bind_system() { # DIR: /proc, /dev, /dev/pts as the chroot needs them
    mkdir -p "$1/proc" "$1/dev"
    mount -t proc proc "$1/proc"
    mount --bind /dev "$1/dev"
    # private: on hosts where / is a shared mount, nothing mounted or unmounted below the root's
    # /dev may propagate back to the real /dev
    mount --make-private "$1/dev"
    mount --bind /dev/pts "$1/dev/pts"
    mount --make-private "$1/dev/pts"
}
unbind_system() {
    kill_procs
    umount "$1/dev/pts" && umount "$1/dev" && umount "$1/proc"
}
in_root() { # DIR CMD...: run CMD inside DIR with a clean environment
    local dir=$1; shift
    chroot "$dir" /usr/bin/env -i HOME=/root PATH="$INNER_PATH" LANG=C.UTF-8 TERM=dumb "$@"
}

# ---- base: debootstrap, once -----------------------------------------------------------------
host_repo() { # RELEASE: the machine's apt URI serving it, if any
    apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(IDENTIFIER)' 2>/dev/null |
        awk -v r="$1" '$2 == r && $3 == "Packages" {sub(/\/$/, "", $1); print $1; exit}'
}

ensure_debootstrap() {
    DEBOOTSTRAP=debootstrap
    command -v debootstrap >/dev/null && return 0
    local rc=0
    apt_install_no_remove debootstrap || rc=$?
    case $rc in
        0) ;;
        2 | 3)
            log "debootstrap cannot be added by apt without changing installed packages: unpacking it"
            apt_unpack "$CACHE/tools/debootstrap" debootstrap
            export DEBOOTSTRAP_DIR="$CACHE/tools/debootstrap/usr/share/debootstrap"
            DEBOOTSTRAP="$CACHE/tools/debootstrap/usr/sbin/debootstrap" ;;
        *) die "cannot install debootstrap" ;;
    esac
}

build_base() {
    local b=$ROOT/base
    if [ $rebuild = 1 ]; then safe_rm "$b" "$ROOT"/layer-* "$ROOT"/run-* "$ROOT/debs"; fi
    [ -f "$b/.meniscus-base-complete" ] && return 0
    local t mirror updates security
    t=$(date +%s.%N)
    ensure_debootstrap
    mirror=${DEBIAN_MIRROR:-$(host_repo "$SUITE")}
    mirror=${mirror:-http://deb.debian.org/debian}
    updates=$(host_repo "$SUITE-updates"); updates=${updates:-$mirror}
    security=$(host_repo "$SUITE-security"); security=${security:-http://deb.debian.org/debian-security}
    log "building the base root: debootstrap --variant=minbase $SUITE from $mirror (once)"
    safe_rm "$b.tmp"
    "$DEBOOTSTRAP" --variant=minbase --components=main "$SUITE" "$b.tmp" "$mirror" \
        >"$ROOT/debootstrap.log" 2>&1 || { tail -20 "$ROOT/debootstrap.log" >&2; die "debootstrap failed"; }
    cat >"$b.tmp/etc/apt/sources.list" <<EOF
deb $mirror $SUITE main
deb $updates $SUITE-updates main
deb $security $SUITE-security main
EOF
    # The throwaway root's own policy while its layers are built: no service starts (each run
    # then sets the policy-rc.d it wants to see restored).
    printf '#!/bin/sh\nexit 101\n' >"$b.tmp/usr/sbin/policy-rc.d"
    chmod 755 "$b.tmp/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "$b.tmp/etc/resolv.conf"
    bind_system "$b.tmp"
    in_root "$b.tmp" apt-get update -qq >&2
    # openssl is the one package install.sh adds with apt here: keep its .debs in the root's
    # archive so warm runs do not need the network.
    in_root "$b.tmp" apt-get install -qq -y --download-only --no-install-recommends openssl >&2
    unbind_system "$b.tmp"
    touch "$b.tmp/.meniscus-base-complete"
    mv "$b.tmp" "$b"
    log "base root ready in $(secs "$t") s ($(du -sm "$b" | cut -f1) MB)"
}

layer_packages() {
    case $1 in
        syslog-ng) echo syslog-ng-core ;;
        rsyslog) echo rsyslog ;;
    esac
}

build_layer() { # DIRECTION: base + the conflicting logger, once
    local d=$1 l=$ROOT/layer-$1 t
    [ -f "$l/.complete" ] && return 0
    t=$(date +%s.%N)
    local pkgs
    read -ra pkgs <<<"$(layer_packages "$d")"
    log "building layer $d: apt-get install ${pkgs[*]} in the base (once)"
    safe_rm "$l"
    mkdir -p "$l/upper" "$l/work" "$l/merged"
    mount -t overlay overlay -o "lowerdir=$ROOT/base,upperdir=$l/upper,workdir=$l/work" "$l/merged"
    bind_system "$l/merged"
    in_root "$l/merged" env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        apt-get install -qq -y --no-install-recommends "${pkgs[@]}" >"$l/install.log" 2>&1 ||
        { tail -20 "$l/install.log" >&2; die "layer $d: apt-get install ${pkgs[*]} failed"; }
    if [ "$d" = rsyslog ]; then
        # for the second half of the rsyslog direction: the user adds the modules
        in_root "$l/merged" apt-get install -qq -y --download-only --no-install-recommends \
            rsyslog-gnutls rsyslog-relp >>"$l/install.log" 2>&1 || die "layer $d: download failed"
    fi
    unbind_system "$l/merged"
    umount "$l/merged"
    safe_rm "$l/work"
    touch "$l/.complete"
    log "layer $d ready in $(secs "$t") s"
}

# ---- one direction ---------------------------------------------------------------------------
dpkg_state() { in_root "$1" dpkg-query -W -f='${Package}:${Architecture} ${Version} ${db:Status-Status}\n' | sort; }
service_state() { (cd "$1" && find etc/systemd/system etc/init.d etc/rc?.d -mindepth 1 2>/dev/null | sort); }
policy_state() {
    local f=$1/usr/sbin/policy-rc.d
    if [ -e "$f" ] || [ -L "$f" ]; then
        stat -c 'mode=%a owner=%u:%g type=%F' "$f"
        sha256sum <"$f"
    else
        echo absent
    fi
}

# Runs install.sh in root M (as a user would run dev/test's first stage), checks it changed
# nothing it must not change; prints its duration.
run_install() { # M LOGFILE
    local m=$1 out=$2 t
    t=$(date +%s.%N)
    in_root "$m" env MENISCUS_CACHE=/root/cache bash /root/meniscus/dev/peers/install.sh >"$out" 2>&1 ||
        { tail -30 "$out" >&2; die "install.sh failed in the $dir root (log: $out)"; }
    secs "$t"
}

# Alive and not a zombie (the daemons are not our children; init may be slow to reap them).
running() {
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# Starts the sink and the forwarder in root M and sends a line through both.
check_peers() { # M LABEL
    local m=$1 label=$2 sink_port sng_port sink_env sng_env sink_pid sng_pid marker
    sink_port=$(peer_free_port tcp)
    sink_env=$(in_root "$m" env MENISCUS_CACHE=/root/cache \
        bash /root/meniscus/dev/peers/rsyslog-sink.sh "/root/work/$label-sink" "$sink_port") ||
        die "$label: rsyslog-sink.sh did not start"
    sink_pid=$(sed -n 's/^pid=//p' <<<"$sink_env")
    sng_port=$(peer_free_port tcp)
    sng_env=$(in_root "$m" env MENISCUS_CACHE=/root/cache IN_PORT="$sng_port" \
        bash /root/meniscus/dev/peers/syslog-ng-forward.sh "/root/work/$label-sng" 127.0.0.1 "$sink_port" network) ||
        { kill "$sink_pid"; die "$label: syslog-ng-forward.sh did not start"; }
    sng_pid=$(sed -n 's/^pid=//p' <<<"$sng_env")
    marker="no-removal-$label-$$"
    in_root "$m" logger --tcp -n 127.0.0.1 -P "$sng_port" --rfc5424=notq -t no-removal "$marker"
    local ok=0
    for _ in $(seq 100); do
        grep -q "$marker" "$m/root/work/$label-sink/out.log" 2>/dev/null && { ok=1; break; }
        sleep 0.1
    done
    kill "$sng_pid" "$sink_pid" 2>/dev/null || true
    for _ in $(seq 100); do
        running "$sng_pid" || running "$sink_pid" || break
        sleep 0.1
    done
    [ $ok = 1 ] || die "$label: the line sent to syslog-ng (port $sng_port) never reached the rsyslog sink (port $sink_port)"
    log "$dir: $label: rsyslogd (port $sink_port) and syslog-ng (port $sng_port) started; logger -> syslog-ng -> rsyslog OK"
}

assert_unchanged() { # M BEFORE-DPKG BEFORE-POLICY BEFORE-SERVICES LABEL
    local m=$1 label=$5 lost
    dpkg_state "$m" >"$run/dpkg-after-$label"
    lost=$(comm -23 "$2" "$run/dpkg-after-$label")
    [ -z "$lost" ] || die "$label: packages removed or changed:
$lost"
    local added
    added=$(comm -13 "$2" "$run/dpkg-after-$label" | awk '{print $1}' | paste -sd' ' -)
    log "$dir: $label: nothing removed or changed; added: ${added:-nothing}"
    [ "$(policy_state "$m")" = "$3" ] || die "$label: /usr/sbin/policy-rc.d is not as it was: $(policy_state "$m") (was: $3)"
    [ "$(service_state "$m")" = "$4" ] || die "$label: services were enabled:
$(diff <(printf '%s\n' "$4") <(service_state "$m") || true)"
    [ -z "$(procs_under)" ] || die "$label: processes left running in the root: $(procs_under | paste -sd' ' -)"
}

run_direction() {
    dir=$1
    local t logger_pkg
    t=$(date +%s.%N)
    logger_pkg=$(layer_packages "$dir")
    run=$ROOT/run-$dir
    safe_rm "$run"
    mkdir -p "$run/upper" "$run/work" "$run/merged"
    local m=$run/merged
    mount -t overlay overlay -o "lowerdir=$ROOT/layer-$dir/upper:$ROOT/base,upperdir=$run/upper,workdir=$run/work" "$m"
    bind_system "$m"
    cp /etc/resolv.conf "$m/etc/resolv.conf"

    # The machine's own policy-rc.d, which install.sh must leave exactly as it is.
    case $dir in
        syslog-ng) rm -f "$m/usr/sbin/policy-rc.d" ;;
        rsyslog)
            printf '#!/bin/sh\n# the test machine'"'"'s own policy (test-no-removal.sh)\nexit 101\n' >"$m/usr/sbin/policy-rc.d"
            chmod 750 "$m/usr/sbin/policy-rc.d" ;;
    esac
    local policy services
    policy=$(policy_state "$m")
    services=$(service_state "$m")
    dpkg_state "$m" >"$run/dpkg-before"
    grep -q "^$logger_pkg:[^ ]* [^ ]* installed$" "$run/dpkg-before" || die "$dir: $logger_pkg is not installed in the layer"

    # The checkout's dev/ scripts, and a fresh cache seeded with the .debs of earlier runs.
    mkdir -p "$m/root/meniscus" "$m/root/cache/debs" "$m/root/work" "$ROOT/debs"
    cp -a "$repo/dev" "$m/root/meniscus/"
    cp -a "$ROOT/debs/." "$m/root/cache/debs/"

    local first second
    first=$(run_install "$m" "$run/install-1.log")
    second=$(run_install "$m" "$run/install-2.log")
    grep -q '^\[apt\]' "$run/install-2.log" && die "$dir: the second install.sh run did more than verify: $(grep '^\[apt\]' "$run/install-2.log")"
    log "$dir: install.sh took ${first} s, again ${second} s ($(grep -o 'rsyslogd: .*' "$run/install-1.log" | tail -1))"
    assert_unchanged "$m" "$run/dpkg-before" "$policy" "$services" install
    grep -q "^$logger_pkg:[^ ]* [^ ]* installed$" "$run/dpkg-after-install" || die "$dir: $logger_pkg was removed"
    check_peers "$m" unpacked

    if [ "$dir" = rsyslog ]; then
        # The user adds the modules: install.sh must now use the system's rsyslogd.
        in_root "$m" env DEBIAN_FRONTEND=noninteractive apt-get install -qq -y --no-download \
            --no-install-recommends rsyslog-gnutls rsyslog-relp >"$run/user-install.log" 2>&1 ||
            { tail -20 "$run/user-install.log" >&2; die "rsyslog: the user's apt-get install failed"; }
        policy=$(policy_state "$m")
        services=$(service_state "$m")
        dpkg_state "$m" >"$run/dpkg-before-system"
        first=$(run_install "$m" "$run/install-3.log")
        grep -q 'rsyslogd: .*(system)' "$run/install-3.log" || die "rsyslog: install.sh does not use the system's rsyslogd: $(grep -o 'rsyslogd: .*' "$run/install-3.log")"
        grep -q 'exec /usr/sbin/rsyslogd' "$m/root/cache/peers/bin/rsyslogd" || die "rsyslog: the wrapper does not run /usr/sbin/rsyslogd"
        log "$dir: with rsyslog-gnutls + rsyslog-relp installed: install.sh took ${first} s, uses the system's rsyslogd"
        assert_unchanged "$m" "$run/dpkg-before-system" "$policy" "$services" system
        check_peers "$m" system
    fi

    # Keep the downloaded .debs for the next run; throw the run away.
    cp -an "$m/root/cache/debs/." "$ROOT/debs/"
    unbind_system "$m"
    umount "$m"
    safe_rm "$run"
    log "$dir: PASS in $(secs "$t") s"
}

build_base
for d in "${directions[@]}"; do build_layer "$d"; done
for d in "${directions[@]}"; do run_direction "$d"; done
log "all directions passed in $(secs "$t0") s"
