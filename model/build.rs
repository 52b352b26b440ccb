//! Build script shared by every crate whose binaries or tests link libtorch
//! (the others `include!` this file): it gives them an rpath to the libtorch
//! lib folder that torch-sys built against, so that `cargo test` and
//! `cargo run` need no `LD_LIBRARY_PATH`.
//!
//! torch-sys publishes that folder through cargo's `links` metadata as
//! `DEP_TCH_LIBTORCH_LIB`, visible to crates that depend on it directly.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
