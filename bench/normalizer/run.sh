#!/usr/bin/env bash
# Normalizer throughput: meniscus-lognorm (release) vs liblognorm's lognormalizer, same
# rulebase, same input file on stdin, output to /dev/null. Prints lines/s, CPU time per
# line and the ratio; writes bench/results/normalizer.txt.
# Also measures the library path the Meniscus pipeline stores through, before and after
# (same input reading, no output; the per-line work of an event without earlier
# normalized/tags values, the pattern being the rulebase's name):
#   --bench-map  before: Rulebase::normalize() builds a serde_json::Map, which is wrapped
#                in {"PATTERN": map} and serialized with serde_json, tags likewise
#   --bench-api  now: Rulebase::normalize_json_into() writes {"PATTERN":FIELDS} into a
#                reused buffer, tags as a JSON array
# and checks (`--check-api`, every line of the input) that both store the same bytes.
# Each command runs REPS times (default 3); the run with the least CPU time is reported.
# Then the coverage of the built-in rulebases on real logs (`meniscus-lognorm --coverage`):
# the loghub samples in CORPUS (default ../shared/corpus/loghub beside the checkout; read in
# place, never copied), per program, with the most common unmatched shapes.
#   usage: [REPS=N] [CORPUS=DIR] bench/normalizer/run.sh [LINES]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
LINES=${1:-1000000}
REPS=${REPS:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/meniscus/target-rulebase}
command -v lognormalizer >/dev/null || { echo "lognormalizer missing: apt-get install -y liblognorm-utils" >&2; exit 1; }
cargo build -q --release -p meniscus-rulebase --bin meniscus-lognorm
BIN=$CARGO_TARGET_DIR/release/meniscus-lognorm
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

# one rulebase combining the built-in sshd, iptables and access-log rules
{ echo "version=2"; for b in sshd iptables access-log; do grep -v '^version=2$' "rulebase/builtin/$b.rb"; done; } > "$WORK/bench.rb"

# input: a mix of sshd, iptables and access-log lines plus ~10% unmatched lines
python3 - "$LINES" > "$WORK/input.txt" <<'PY'
import random, sys
n = int(sys.argv[1]); r = random.Random(42)
def ip(): return f"{r.randint(1,223)}.{r.randint(0,255)}.{r.randint(0,255)}.{r.randint(1,254)}"
users = ["root", "admin", "alice", "bob", "oracle", "git", "ubuntu"]
paths = ["/", "/index.html", "/api/v1/items?id=42", "/static/app.js", "/login", "/robots.txt"]
out = []
for i in range(n):
    k = r.random()
    if k < 0.30:
        t = r.random()
        if t < 0.4: out.append(f"Failed password for {r.choice(users)} from {ip()} port {r.randint(1024,65535)} ssh2")
        elif t < 0.6: out.append(f"Failed password for invalid user {r.choice(users)} from {ip()} port {r.randint(1024,65535)} ssh2")
        elif t < 0.8: out.append(f"Accepted publickey for {r.choice(users)} from {ip()} port {r.randint(1024,65535)} ssh2: RSA SHA256:abcdef{i}")
        else: out.append(f"Invalid user {r.choice(users)} from {ip()} port {r.randint(1024,65535)}")
    elif k < 0.60:
        flags = r.choice(["DF PROTO=TCP", "PROTO=UDP"])
        out.append(f"[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC={ip()} DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=49 ID={r.randint(1,65535)} {flags} SPT={r.randint(1024,65535)} DPT={r.choice([22,23,80,443,3389])} WINDOW=29200 RES=0x00 SYN URGP=0")
    elif k < 0.90:
        out.append(f'{ip()} - - [10/Oct/2023:13:{r.randint(10,59)}:{r.randint(10,59)} +0000] "GET {r.choice(paths)} HTTP/1.1" {r.choice([200,200,200,301,404,500])} {r.randint(0,99999)} "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64) Firefox/118.0"')
    else:
        out.append(f"kernel: usb 1-1: new high-speed USB device number {i} using xhci_hcd")
sys.stdout.write("\n".join(out) + "\n")
PY

# sanity: both tools agree on the first lines (values compared as JSON, for the CLI
# rendering and for the normalize() map), and the CLI's text is byte-identical
head -2000 "$WORK/input.txt" > "$WORK/head.txt"
lognormalizer -r "$WORK/bench.rb" -e json < "$WORK/head.txt" > "$WORK/ref.json"
"$BIN" -r "$WORK/bench.rb" < "$WORK/head.txt" > "$WORK/ours.json"
"$BIN" --api -r "$WORK/bench.rb" < "$WORK/head.txt" > "$WORK/api.json"
python3 - "$WORK/ref.json" "$WORK/ours.json" "$WORK/api.json" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
for f in sys.argv[2:]:
    b = [json.loads(l) for l in open(f)]
    bad = sum(1 for x, y in zip(a, b) if x != y)
    if bad or len(a) != len(b): sys.exit(f"{f}: outputs differ on {bad} of {len(a)} lines")
PY
if cmp -s "$WORK/ref.json" "$WORK/ours.json"; then SAME="byte-identical"; else SAME="same values, different text"; fi
# the new pipeline path stores exactly the old path's text, on every line of the input
"$BIN" --check-api -r "$WORK/bench.rb" < "$WORK/input.txt" > "$WORK/check.txt" 2>&1 \
  || { echo "normalize_json_into() and the map path differ:" >&2; head -20 "$WORK/check.txt" >&2; exit 1; }

# run a command REPS times, report "wall_s cpu_s" (user+sys of the child) of the run with
# the least CPU time (the machine is shared; the minimum is the least disturbed run)
measure() {
  python3 - "$REPS" "$@" <<'PY'
import os, resource, subprocess, sys, time
reps = int(sys.argv[1]); runs = []
for _ in range(reps):
    inp = open(sys.argv[3], "rb"); out = open(os.devnull, "wb"); err = open(os.devnull, "wb")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(sys.argv[4:], stdin=inp, stdout=out, stderr=err, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    runs.append((cpu, wall))
cpu, wall = min(runs)
print(f"{wall:.3f} {cpu:.3f}")
PY
}
read -r LN_WALL LN_CPU < <(measure x "$WORK/input.txt" lognormalizer -r "$WORK/bench.rb" -e json)
read -r MN_WALL MN_CPU < <(measure x "$WORK/input.txt" "$BIN" -r "$WORK/bench.rb")
read -r MAP_WALL MAP_CPU < <(measure x "$WORK/input.txt" "$BIN" --bench-map -r "$WORK/bench.rb")
read -r API_WALL API_CPU < <(measure x "$WORK/input.txt" "$BIN" --bench-api -r "$WORK/bench.rb")

mkdir -p bench/results
python3 - "$LINES" "$LN_WALL" "$LN_CPU" "$MN_WALL" "$MN_CPU" "$(lognormalizer -V 2>&1 | head -1)" "$MAP_WALL" "$MAP_CPU" "$API_WALL" "$API_CPU" "$SAME" "$REPS" <<'PY' | tee bench/results/normalizer.txt
import sys, platform, os
n = int(sys.argv[1]); lw, lc, mw, mc = map(float, sys.argv[2:6]); ver = sys.argv[6]
pw, pc, aw, ac = map(float, sys.argv[7:11]); same = sys.argv[11]; reps = sys.argv[12]
def row(name, w, c):
    print(f"{name:<52} {n/w:>11,.0f} lines/s wall, {c/n*1e6:7.3f} us CPU/line ({w:.2f}s wall, {c:.2f}s cpu)")
print(f"normalizer benchmark: {n} lines (30% sshd, 30% iptables, 30% access log, 10% unmatched)")
print(f"rulebase: built-in sshd + iptables + access-log; output to /dev/null; {os.cpu_count()} cpus, {platform.machine()}; best of {reps} runs by CPU time")
row(f"lognormalizer ({ver})", lw, lc)
row("meniscus-lognorm CLI (json-c text)", mw, mc)
row("pipeline before: normalize() Map + serde_json", pw, pc)
row("pipeline now: normalize_json_into()", aw, ac)
print(f"ratio (CPU per line, lognormalizer / meniscus CLI):               {lc/mc:5.2f}x  (wall {lw/mw:.2f}x); CLI output vs lognormalizer on 2000 lines: {same}")
print(f"ratio (CPU per line, lognormalizer / pipeline before, --bench-map): {lc/pc:5.2f}x  (wall {lw/pw:.2f}x)")
print(f"ratio (CPU per line, lognormalizer / pipeline now, --bench-api):    {lc/ac:5.2f}x  (wall {lw/aw:.2f}x); now vs before: {pc/ac:.2f}x less CPU")
print(f"pipeline paths: {{\"PATTERN\":fields}} and tags texts byte-identical on all {n} lines (--check-api)")
print("pipeline paths do the per-event work of the worker's normalizer for an event without earlier")
print("normalized/tags values: normalize the message, render the stored normalized and tags texts")
PY

# coverage of the built-ins on the loghub samples, appended to the results
CORPUS=${CORPUS:-$ROOT/../shared/corpus/loghub}
[ -f "$CORPUS/OpenSSH_2k.log" ] || CORPUS=/work/shared/corpus/loghub
if [ -f "$CORPUS/OpenSSH_2k.log" ]; then
  {
    echo
    echo "built-in rulebase coverage on the loghub samples (meniscus-lognorm --coverage; program -> built-in):"
    "$BIN" --coverage --syslog --top 3 "$CORPUS/OpenSSH_2k.log" "$CORPUS/Linux_2k.log"
    "$BIN" --coverage -b apache-error --top 3 "$CORPUS/Apache_2k.log"
  } | sed "s|$CORPUS/||" | tee -a bench/results/normalizer.txt
else
  echo "coverage: no loghub corpus found (set CORPUS=DIR)" | tee -a bench/results/normalizer.txt
fi
