# Sourced by the scripts: one shared target dir outside the clone, so builds
# are incremental across clones (llama.cpp takes minutes to build once).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dfa-target}"
