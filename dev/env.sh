# Shared settings for dev/ scripts: caches live outside the clone so that clean clones (and CI)
# reuse compiled dependencies, built tools and unpacked peers.
export MENISCUS_CACHE="${MENISCUS_CACHE:-$HOME/.cache/meniscus}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MENISCUS_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$MENISCUS_CACHE"
