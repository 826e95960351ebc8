#!/usr/bin/env bash
# Debian packages for the dev/ scripts, under one rule: the set-up never removes, upgrades,
# downgrades or replaces a package the machine already has, and never enables or starts a
# service. What cannot be added that way is unpacked into the cache instead.
#
# Sourced (bash) by dev/peers/install.sh, dev/test and dev/peers/test-no-removal.sh:
#
#   apt_have PKG...                  true when every PKG is installed
#   apt_install_no_remove PKG...     installs the missing PKGs system-wide, as new packages only.
#                                    Returns 0 done (or nothing was missing); 2 refused: apt would
#                                    remove, upgrade, downgrade or replace an installed package;
#                                    3 refused: a package to install ships a service (systemd unit
#                                    or init script); 1 other failure. On 2 and 3 nothing was
#                                    changed and the message names the packages involved.
#   apt_unpack TREE PKG...           `apt-get download` + `dpkg -x` of the PKGs and of their library
#                                    dependencies that are not installed into TREE (a directory in
#                                    the cache); checks with ldd that every ELF file in TREE finds
#                                    its libraries. No root needed (except `apt-get update` when
#                                    a .deb must be downloaded). Quick when TREE is complete.
#   apt_lib_path TREE                LD_LIBRARY_PATH for programs in an unpacked TREE
#
# How apt_install_no_remove works: `apt-get -s install --no-install-recommends` (a simulation)
# must only list new packages (no Remv line, no Inst of an installed package); the .debs are
# downloaded and looked into: none may ship a systemd unit or an /etc/init.d script, nor declare
# Replaces: on an installed package. Then the real `apt-get install --no-remove` runs with
# /usr/sbin/policy-rc.d saying 101 (no service start) and RUNLEVEL=1; the original policy-rc.d
# (content, mode, owner, or its absence) is put back by a trap, also when apt fails or the run is
# interrupted, and from the journal in /var/tmp/meniscus-apt/ by the next run should the process
# have been killed outright. Afterwards every package installed before must still be installed
# at the same version. That part runs as its own process (`bash dev/lib/apt.sh install PKG...`,
# through sudo when not root), so its traps never mix with the caller's.
#
# The .debs that apt_unpack downloads are kept in $MENISCUS_CACHE/debs (default
# ~/.cache/meniscus/debs); `apt-get update` runs only when a .deb or a package list is missing.

APT_LIB_SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/apt.sh"
APT_CACHE="${MENISCUS_CACHE:-$HOME/.cache/meniscus}"
APT_DEBS="${APT_DEBS:-$APT_CACHE/debs}"
APT_SUDO=""
[ "$(id -u)" -eq 0 ] || APT_SUDO="sudo"
APT_POLICY=/usr/sbin/policy-rc.d
APT_JOURNAL=/var/tmp/meniscus-apt
APT_MARK="meniscus dev set-up: no service starts during apt-get install; the original is put back"

apt_log() { printf '[apt] %s\n' "$*" >&2; }

apt_have() {
    local p status
    for p in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) || return 1
        [ "$status" = installed ] || return 1
    done
}

# `apt-get update`, once per run of a top-level script (the flag is inherited through the
# environment by the scripts it calls).
apt_update_once() {
    [ "${MENISCUS_APT_UPDATED:-0}" = 1 ] && return 0
    apt_log "apt-get update"
    $APT_SUDO apt-get update -qq >&2
    export MENISCUS_APT_UPDATED=1
}

apt_install_no_remove() {
    local missing=() p
    # A run killed outright (SIGKILL) left its policy-rc.d behind: put the original back.
    if [ -e "$APT_JOURNAL/saved" ] || [ -L "$APT_JOURNAL/saved" ] || [ -e "$APT_JOURNAL/absent" ]; then
        $APT_SUDO bash "$APT_LIB_SELF" recover || return 1
    fi
    for p in "$@"; do apt_have "$p" || missing+=("$p"); done
    [ ${#missing[@]} -gt 0 ] || return 0
    local rc=0
    $APT_SUDO env MENISCUS_APT_UPDATED="${MENISCUS_APT_UPDATED:-0}" \
        bash "$APT_LIB_SELF" install "${missing[@]}" || rc=$?
    # The child may have run apt-get update; later calls need not do it again.
    [ $rc -ne 0 ] || export MENISCUS_APT_UPDATED=1
    return $rc
}

apt_lib_path() {
    find "$1" \( -type f -o -type l \) -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd: -
}

# Names of PKG... and, recursively, of the library packages (lib*, zlib*) they depend on that
# are not installed. For an alternative (a | b) nothing is needed when one of them is installed,
# else the first one is taken. One `apt-cache depends --recurse` call (apt-cache is slow to start).
_apt_closure() {
    printf '%s\n' "$@"
    apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
            --no-replaces --no-enhances "$@" |
        awk -v roots="$*" '
            NR == FNR { if ($2 == "installed") inst[$1] = 1; next }
            /^[^ ]/ { cur = $1; open = 0; next }
            /^ [ |](Pre)?Depends:/ {
                name = $2; sub(/:.*/, "", name)
                if (open) grp[cur, n[cur]] = grp[cur, n[cur]] " " name
                else grp[cur, ++n[cur]] = name
                open = ($1 ~ /^\|/)
            }
            END {
                q = split(roots, queue, " ")
                for (i = 1; i <= q; i++) seen[queue[i]] = 1
                for (h = 1; h <= q; h++) {
                    p = queue[h]
                    for (k = 1; k <= n[p]; k++) {
                        m = split(grp[p, k], alt, " ")
                        chosen = ""
                        for (j = 1; j <= m; j++) if (alt[j] in inst) { chosen = "-"; break }
                        if (chosen == "-") continue
                        for (j = 1; j <= m; j++) if (alt[j] !~ /^</) { chosen = alt[j]; break }
                        if (chosen ~ /^(lib|zlib)/ && !(chosen in seen)) {
                            seen[chosen] = 1; queue[++q] = chosen; print chosen
                        }
                    }
                }
            }' <(dpkg-query -W -f='${Package} ${db:Status-Status}\n') -
}

# "PKG FILE" per package: the candidate's .deb file name as `apt-get download` writes it.
_apt_deb_names() {
    apt-cache show --no-all-versions "$@" |
        awk '/^Package:/ {p = $2} /^Version:/ {v = $2} /^Architecture:/ {a = $2}
             /^$/ && p != "" { gsub(/:/, "%3a", v); print p, p "_" v "_" a ".deb"; p = "" }
             END { if (p != "") { gsub(/:/, "%3a", v); print p, p "_" v "_" a ".deb" } }'
}

apt_unpack() {
    local tree=$1; shift
    local want="$*"
    if [ -f "$tree/.complete" ] && [ "$(cat "$tree/.complete")" = "$want" ]; then
        return 0
    fi
    mkdir -p "$APT_DEBS"
    local pkgs=() names=() fetch=() line pass
    for pass in 1 2; do
        pkgs=() names=() fetch=()
        if ! mapfile -t pkgs < <(_apt_closure "$@" 2>/dev/null) || [ ${#pkgs[@]} -eq 0 ] ||
           ! mapfile -t names < <(_apt_deb_names "${pkgs[@]}" 2>/dev/null) ||
           [ ${#names[@]} -ne ${#pkgs[@]} ]; then
            # No package lists yet (or stale ones): update and look again.
            [ $pass = 1 ] && { apt_update_once; continue; }
            apt_log "cannot resolve ${pkgs[*]:-$*} with apt-cache"; return 1
        fi
        for line in "${names[@]}"; do
            [ -s "$APT_DEBS/${line#* }" ] || fetch+=("${line%% *}")
        done
        [ ${#fetch[@]} -eq 0 ] && break
        # A .deb is missing: refresh the lists first (candidates may have moved on).
        [ $pass = 1 ] && [ "${MENISCUS_APT_UPDATED:-0}" != 1 ] && { apt_update_once; continue; }
        apt_log "downloading ${fetch[*]}"
        local sandbox=()
        # root: download as root into the cache (the _apt user may not enter it)
        [ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)
        (cd "$APT_DEBS" && apt-get download -q=2 "${sandbox[@]}" "${fetch[@]}") >&2 || return 1
        break
    done
    apt_log "unpacking ${pkgs[*]} into $tree"
    rm -rf "$tree.tmp" && mkdir -p "$tree.tmp"
    for line in "${names[@]}"; do
        dpkg -x "$APT_DEBS/${line#* }" "$tree.tmp"
    done
    # Every ELF file must find its libraries in the system or in the tree.
    local libpath notfound
    libpath=$(apt_lib_path "$tree.tmp")
    notfound=$(find "$tree.tmp" -type f \( -name '*.so' -o -name '*.so.*' -o -perm -u+x \) -print0 |
        xargs -0 -r env LD_LIBRARY_PATH="$libpath" ldd 2>/dev/null |
        awk '/^\// {f = $1} /not found/ {sub(/.*\.tmp\//, "", f); print "  " f " needs " $1}' | sort -u) || true
    if [ -n "$notfound" ]; then
        apt_log "unpacked ${pkgs[*]}, but libraries are missing:"; printf '%s\n' "$notfound" >&2
        return 1
    fi
    printf '%s\n' "${pkgs[@]}" >"$tree.tmp/.packages"
    printf '%s\n' "$want" >"$tree.tmp/.complete"
    rm -rf "$tree" && mv "$tree.tmp" "$tree"
}

# ---------------------------------------------------------------------------------------------
# The privileged part: bash dev/lib/apt.sh install PKG...  (root)
# ---------------------------------------------------------------------------------------------

# Put the original policy-rc.d back (content, mode, owner, or absence) from the journal, if
# the file there is still ours; then forget the journal.
_apt_policy_restore() {
    if [ -e "$APT_JOURNAL/saved" ] || [ -L "$APT_JOURNAL/saved" ] || [ -e "$APT_JOURNAL/absent" ]; then
        if grep -qF "$APT_MARK" "$APT_POLICY" 2>/dev/null; then
            if [ -e "$APT_JOURNAL/saved" ] || [ -L "$APT_JOURNAL/saved" ]; then
                cp -a "$APT_JOURNAL/saved" "$APT_POLICY.meniscus.$$"
                mv -f "$APT_POLICY.meniscus.$$" "$APT_POLICY"
            else
                rm -f "$APT_POLICY"
            fi
        fi
        rm -f "$APT_JOURNAL/saved" "$APT_JOURNAL/absent"
    fi
}

# Journal the original policy-rc.d, then put ours in its place (atomically).
_apt_policy_block() {
    rm -f "$APT_JOURNAL/saved" "$APT_JOURNAL/absent" || return 1
    if [ -e "$APT_POLICY" ] || [ -L "$APT_POLICY" ]; then
        cp -a "$APT_POLICY" "$APT_JOURNAL/saved" || return 1
    else
        : >"$APT_JOURNAL/absent" || return 1
    fi
    sync -f "$APT_JOURNAL" 2>/dev/null || true
    printf '#!/bin/sh\n# %s\nexit 101\n' "$APT_MARK" >"$APT_POLICY.meniscus.$$" &&
        chmod 755 "$APT_POLICY.meniscus.$$" &&
        mv -f "$APT_POLICY.meniscus.$$" "$APT_POLICY" || { rm -f "$APT_POLICY.meniscus.$$"; return 1; }
}

# True when the installed version of $1 satisfies "op version" ($2 $3; none: any version).
_apt_installed_matches() {
    local v
    v=$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null) || return 1
    [ "${v%% *}" = installed ] || return 1
    [ -z "${2:-}" ] && return 0
    local op=$2
    case $op in "<<") op=lt ;; "<=") op=le ;; "=") op=eq ;; ">=") op=ge ;; ">>") op=gt ;; esac
    dpkg --compare-versions "${v#* }" "$op" "$3"
}

# One attempt. Returns 0, 2, 3, or 10 when apt itself failed (an update may help), 1 otherwise.
_apt_install_attempt() {
    local sim
    # Simulated without --no-remove, so that a removal shows as a Remv line naming the package
    # (with --no-remove apt only says "Packages need to be removed but remove is disabled").
    sim=$(apt-get -s -q install --no-install-recommends "$@" 2>&1) || {
        printf '%s\n' "$sim" | grep -E '^(E:|W:)|unmet|Depends:' >&2 || true
        return 10
    }
    local touched
    touched=$(printf '%s\n' "$sim" | awk '$1 == "Remv" {print "  remove " $2 " " $3}
                                          $1 == "Inst" && $3 ~ /^\[/ {v = $4; sub(/^\(/, "", v); print "  replace " $2 " " $3 " by " v}')
    if [ -n "$touched" ]; then
        apt_log "refused: apt-get install $* would change installed packages:"
        printf '%s\n' "$touched" >&2
        return 2
    fi
    local new=()
    mapfile -t new < <(printf '%s\n' "$sim" | awk '$1 == "Inst" {
        v = $3; sub(/^\(/, "", v); gsub(/:/, "%3a", v)
        a = $0; sub(/\]\).*$/, "", a); sub(/.*\[/, "", a)
        print $2 "_" v "_" a ".deb" }')
    [ ${#new[@]} -gt 0 ] || return 0
    apt-get -q=2 -y --download-only install --no-remove --no-install-recommends "$@" >&2 || return 10
    local ARCHIVES="" deb bad="" replaces item name op ver re='\(([<>=]+) *([^)]+)\)'
    eval "$(apt-config shell ARCHIVES Dir::Cache::archives/d)"
    for deb in "${new[@]}"; do
        deb="$ARCHIVES/$deb"
        [ -f "$deb" ] || { apt_log "downloaded package not found: $deb"; return 1; }
        bad+=$(dpkg-deb -c "$deb" | awk -v p="${deb##*/}" '{f = $6; sub(/^\.\//, "", f)}
            f ~ /^(usr\/)?lib\/systemd\/system\/[^\/]+\.(service|socket|timer|path)$/ || f ~ /^etc\/init\.d\/[^\/]+$/ {
                sub(/_.*/, "", p); print "  " p " ships /" f }')
        replaces=$(dpkg-deb -f "$deb" Replaces)
        if [ -n "$replaces" ]; then
            while read -r item; do
                [ -n "$item" ] || continue
                name=${item%% *}; name=${name%%:*}; op="" ver=""
                if [[ $item =~ $re ]]; then op=${BASH_REMATCH[1]} ver=${BASH_REMATCH[2]}; fi
                if _apt_installed_matches "$name" "$op" "$ver"; then
                    apt_log "refused: $(dpkg-deb -f "$deb" Package) replaces files of the installed $name"
                    return 2
                fi
            done < <(printf '%s\n' "$replaces" | tr ',|' '\n\n' | sed 's/^ *//')
        fi
    done
    if [ -n "$bad" ]; then
        apt_log "refused: apt-get install $* would install a system service:"
        printf '%s\n' "$bad" >&2
        return 3
    fi
    local before after
    before=$(dpkg-query -W -f='${Package}:${Architecture} ${Version} ${db:Status-Status}\n' | grep ' installed$' | sort)
    apt_log "apt-get install --no-remove $* (new: ${new[*]%%_*}; services blocked)"
    _apt_policy_block || { apt_log "cannot block service starts in $APT_POLICY"; return 1; }
    local rc=0 out
    out=$(mktemp)
    env RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -q=2 -y --no-remove \
        --no-install-recommends "$@" >"$out" 2>&1 || rc=$?
    _apt_policy_restore
    [ $rc -eq 0 ] || tail -30 "$out" >&2
    rm -f "$out"
    after=$(dpkg-query -W -f='${Package}:${Architecture} ${Version} ${db:Status-Status}\n' | grep ' installed$' | sort)
    local lost
    lost=$(comm -23 <(printf '%s\n' "$before") <(printf '%s\n' "$after"))
    if [ -n "$lost" ]; then
        apt_log "BUG: packages installed before are gone or changed:"; printf '  %s\n' "$lost" >&2
        return 1
    fi
    [ $rc -eq 0 ] || { apt_log "apt-get install failed ($rc)"; return 1; }
}

_apt_lock_and_recover() {
    [ "$(id -u)" -eq 0 ] || { apt_log "needs root"; exit 1; }
    mkdir -p "$APT_JOURNAL"
    exec 9>"$APT_JOURNAL/lock"
    flock -w 600 9 || { apt_log "another set-up holds $APT_JOURNAL/lock"; exit 1; }
    if [ -e "$APT_JOURNAL/saved" ] || [ -L "$APT_JOURNAL/saved" ] || [ -e "$APT_JOURNAL/absent" ]; then
        apt_log "putting back the $APT_POLICY that a killed run left replaced"
        _apt_policy_restore
    fi
}

_apt_install_main() {
    _apt_lock_and_recover
    trap _apt_policy_restore EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local rc=0
    _apt_install_attempt "$@" || rc=$?
    if [ $rc -eq 10 ] && [ "${MENISCUS_APT_UPDATED:-0}" != 1 ]; then
        apt_update_once
        rc=0
        _apt_install_attempt "$@" || rc=$?
    fi
    [ $rc -ne 10 ] || { apt_log "apt-get cannot install $*"; rc=1; }
    exit $rc
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-}" in
        install) shift; [ $# -gt 0 ] || exit 0; _apt_install_main "$@" ;;
        recover) _apt_lock_and_recover; exit 0 ;;
        *) echo "usage: $0 install PKG... | recover   (or source it)" >&2; exit 64 ;;
    esac
fi
