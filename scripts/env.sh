# Sourced by the scripts: one shared target dir outside the clone, so builds
# are incremental across clones (llama.cpp takes minutes to build once).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dfa-target}"

# llama-cpp-sys-2's shared-library build (the `gpu` feature) copies its .so
# symlinks into the target dir as links that dangle, and a later build with
# other features then fails on them ("File exists"). Removing them is safe:
# nothing resolves through them.
drop_dangling_llama_links() {
  local d
  for d in "$CARGO_TARGET_DIR"/{debug,release}{,/deps,/examples}; do
    [ -d "$d" ] && find "$d" -maxdepth 1 -xtype l \( -name 'libllama*' -o -name 'libggml*' -o -name 'libmtmd*' \) -delete
  done
  return 0
}
