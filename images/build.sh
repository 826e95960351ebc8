#!/usr/bin/env bash
# Builds the worker and operator images with buildah, without a container engine or a base
# image pull: each is FROM scratch with the release binary, the shared libraries `ldd` says
# it needs (glibc: kept dynamic rather than static, so that name lookups of cluster Services
# work through glibc's own resolver), the CA certificates for TLS to object stores, and
# /etc/passwd naming the non-root user. Written as OCI archives:
#
#   images/build.sh [OUT_DIR]     default: $MENISCUS_CACHE/images
#     OUT_DIR/meniscus-worker-VERSION.oci.tar, OUT_DIR/meniscus-operator-VERSION.oci.tar
#
# Push them with `skopeo copy oci-archive:FILE docker://REGISTRY/NAME:VERSION` (or
# `buildah push`). Installs buildah from Debian if missing (adding packages only).
set -euo pipefail
cd "$(dirname "$0")/.."
. dev/env.sh
start=$(date +%s)
out="${1:-$MENISCUS_CACHE/images}"
mkdir -p "$out"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' worker/Cargo.toml | head -1)

# buildah from Debian: installed if that only adds packages, else unpacked into the cache
# (it would upgrade passwd and login here) and run from there.
buildah=buildah
if ! command -v buildah >/dev/null; then
    . dev/lib/apt.sh
    rc=0
    apt_install_no_remove buildah || rc=$?
    case $rc in
        0) ;;
        2 | 3)
            tree="$MENISCUS_CACHE/buildah"
            apt_unpack "$tree" buildah
            export LD_LIBRARY_PATH="$(apt_lib_path "$tree")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            buildah="$tree/usr/bin/buildah" ;;
        *) echo "cannot install buildah" >&2; exit 1 ;;
    esac
fi
# Its state in the cache; no signature policy needed for images FROM scratch we push
# ourselves.
state="$MENISCUS_CACHE/buildah-state"
mkdir -p "$state"
printf '{"default": [{"type": "insecureAcceptAnything"}]}\n' >"$state/policy.json"
bah() {
    "$buildah" --storage-driver vfs --root "$state/root" --runroot "$state/run" "$@"
}

echo "building release binaries"
cargo build --release -p meniscus-worker --bin meniscus -p meniscus-operator --bin meniscus-operator

# A root filesystem for one binary: the binary, its libraries at the paths the dynamic linker
# looks in, CA certificates, and the user.
rootfs() { # binary dir
    local binary="$1" dir="$2"
    rm -rf "$dir" && mkdir -p "$dir/usr/bin" "$dir/etc/ssl/certs" "$dir/tmp"
    cp "$binary" "$dir/usr/bin/"
    # The release profile keeps line tables for profiling; an image does not need them.
    strip --strip-debug "$dir/usr/bin/$(basename "$binary")"
    ldd "$binary" | awk '/=> \// {print $3} /^\t\/.*ld-linux/ {print $1}' | while read -r lib; do
        mkdir -p "$dir$(dirname "$lib")"
        cp -L "$lib" "$dir$lib"
    done
    cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/"
    printf 'root:x:0:0:root:/:/sbin/nologin\nmeniscus:x:65532:65532:meniscus:/:/sbin/nologin\n' >"$dir/etc/passwd"
    printf 'root:x:0:\nmeniscus:x:65532:\n' >"$dir/etc/group"
    chmod 1777 "$dir/tmp"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for image in worker operator; do
    case $image in
        worker) binary="$CARGO_TARGET_DIR/release/meniscus" ;;
        operator) binary="$CARGO_TARGET_DIR/release/meniscus-operator" ;;
    esac
    rootfs "$binary" "$work/$image/rootfs"
    cp "images/Containerfile.$image" "$work/$image/Containerfile"
    name="meniscus-$image:$version"
    archive="$out/meniscus-$image-$version.oci.tar"
    bah bud --signature-policy "$state/policy.json" --isolation chroot --layers=false \
        -f "$work/$image/Containerfile" -t "$name" "$work/$image"
    rm -f "$archive"
    bah push --signature-policy "$state/policy.json" "$name" "oci-archive:$archive:$name"
    # Proof that the image runs: its entrypoint answers --version inside the image's own
    # root (chroot into the mounted image: `buildah run` needs a runtime these machines may
    # lack), as the non-root user the pods use.
    container=$(bah from --signature-policy "$state/policy.json" "$name")
    root=$(bah mount "$container")
    chroot --userspec=65532:65532 "$root" "/usr/bin/$(basename "$binary")" --version
    bah umount "$container" >/dev/null
    bah rm "$container" >/dev/null
    echo "$archive ($(du -h "$archive" | cut -f1))"
done
echo "images built in $(( $(date +%s) - start ))s"
