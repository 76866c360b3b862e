//! Links the `kiln` executable at a fixed address (not position-independent) on Linux: the
//! dynamic loader then has no relocations to apply to it at start-up, and its read-only data
//! is not copied page by page to be relocated. A short guest run is mostly start-up, so this
//! is part of every run's cost.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
