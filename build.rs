// sqlx::migrate! embeds migrations/ at compile time: rebuild when it changes.
//
// A `gpu` build links llama.cpp as shared libraries. The shipped layout
// (scripts/package-gpu) puts them, and the backend modules, in `lib/` next
// to the `dfa` binary: the binary looks there first, so it runs without
// LD_LIBRARY_PATH wherever the folder is copied.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    if std::env::var_os("CARGO_FEATURE_GPU").is_some() {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN/lib");
    }
}
