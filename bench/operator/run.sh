#!/usr/bin/env bash
# Operator scale benchmark: the real `meniscus-operator` binary, as a process of its own,
# against a private testenv control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok) on loopback:
#   - 1,000 Tenants applied at once (32 creates in flight): time until all are Ready, API
#     writes per tenant, operator peak memory (goals: < 60 s, <= 3, < 100 MiB);
#   - the grid's correlators scaled 1 -> 100 on kwok nodes: reconcile time and API writes.
#
#   bench/operator/run.sh [scale_bench options: --tenants N --in-flight N --replicas N
#                          --nodes N --timeout-seconds S --settle-seconds S]
#
# Builds the operator and the example (operator/examples/scale_bench.rs) in the dev profile:
# the profile `dev/test` builds, so both mostly come from the shared cache; a release build
# would be a cold build of its own (a quarter of an hour here). The control plane binaries come from
# tools/k8s/build.sh. Results: stdout and bench/results/operator.txt; the operator's log in
# ${MENISCUS_CACHE:-~/.cache/meniscus}/bench/operator-scale.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
. dev/env.sh
bins=$(tools/k8s/build.sh --print-bin-dir)
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
    [ -x "$bins/$b" ] || { echo "run.sh: $bins/$b missing: run tools/k8s/build.sh first" >&2; exit 1; }
done
# --workspace (only these two targets are built): dependencies then get the features
# `cargo test --workspace` gives them, so they are the artifacts dev/test already built;
# `-p meniscus-operator` would resolve some two dozen of them differently and compile most of
# the dependency tree a second time.
cargo build -q --workspace --bin meniscus-operator --example scale_bench
mkdir -p "$MENISCUS_CACHE/bench" bench/results

# Its own process group, so that however this script ends, the example, the operator it
# started and the control plane go with it.
set -m
"$CARGO_TARGET_DIR/debug/examples/scale_bench" \
    --operator-bin "$CARGO_TARGET_DIR/debug/meniscus-operator" \
    --operator-log "$MENISCUS_CACHE/bench/operator-scale.log" "$@" \
    > "$MENISCUS_CACHE/bench/operator.txt.tmp" &
pid=$!
trap 'kill -TERM -- -"$pid" 2>/dev/null || true' EXIT
wait "$pid"
trap - EXIT
mv "$MENISCUS_CACHE/bench/operator.txt.tmp" bench/results/operator.txt
cat bench/results/operator.txt
