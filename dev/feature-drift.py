#!/usr/bin/env python3
"""Checks that `cargo build -p meniscus-worker` (what dev/run builds) resolves every dependency
with the same features as `cargo test --workspace` (what dev/test builds).

Cargo picks a dependency's features from the packages it builds, so when the two differ a
shared dependency is compiled twice — and with it everything above it, DataFusion included.
The worker's Cargo.toml names the features the rest of the workspace turns on ("feature
alignment"); this check fails, naming the crates and features, when they drift apart.

    dev/feature-drift.py          exit 0 when aligned, 1 with the differences
"""
import subprocess
import sys


def features(args):
    out = subprocess.run(
        ["cargo", "tree", "--prefix", "none", "-f", "{p} [{f}]", *args],
        check=True, capture_output=True, text=True,
    ).stdout
    resolved = {}
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith("meniscus") or " [" not in line:
            continue
        head, _, tail = line.partition(" [")
        name_version = " ".join(head.split(" ")[:2])
        feats = tail[: tail.rindex("]")]
        resolved.setdefault(name_version, set()).update(f for f in feats.split(",") if f)
    return resolved


run = features(["-p", "meniscus-worker", "-e", "normal,build"])
test = features(["--workspace", "-e", "normal,build,dev"])
drift = []
for crate, feats in sorted(run.items()):
    extra = test.get(crate, feats) - feats
    if extra:
        drift.append(f"  {crate}: the workspace also turns on {', '.join(sorted(extra))}")
if drift:
    print("dev/run and dev/test would compile these dependencies with different features (and")
    print("everything that depends on them twice); add the features to the alignment block in")
    print("worker/Cargo.toml:")
    print("\n".join(drift))
    sys.exit(1)
print(f"dev/run and dev/test resolve the same features for all {len(run)} dependencies of the worker")
