//! Links the `kiln` executable at a fixed address (not position-independent) on Linux: the
//! dynamic loader then has no relocations to apply to it at start-up, and its read-only data
//! is not copied page by page to be relocated. A short guest run is mostly start-up, so this
//! is part of every run's cost.
/// Where the executable lies: below 2 GiB, as code that is not position-independent (the C
/// runtime's start files) requires, and away from the small numbers, powers of two and their
/// neighbours that the differential fuzzer makes addresses of when it runs random instructions
/// natively in Kiln's own process (an address it makes up must not land in Kiln or its heap).
const IMAGE_BASE: u64 = 0x5a00_0000;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        println!("cargo:rustc-link-arg-bins=-Wl,--image-base={IMAGE_BASE:#x}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
