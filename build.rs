//! Links the `kiln` executable at a fixed address (not position-independent) on Linux: the
//! dynamic loader then has no relocations to apply to it at start-up, and its read-only data
//! is not copied page by page to be relocated. A short guest run is mostly start-up, so this
//! is part of every run's cost.

/// Where the executable lies on x86-64: below 2 GiB, as code that is not position-independent
/// (the C runtime's start files) requires, and away from the small numbers, powers of two and
/// their neighbours that the differential fuzzer makes addresses of when it runs random
/// instructions natively in Kiln's own process (an address it makes up must not land in Kiln
/// or its heap).
const IMAGE_BASE: u64 = 0x5a00_0000;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-no-pie");
    if std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu") {
        // Rust links this target with its own lld from 1.90 on (`--image-base`); before, with
        // the system's GNU ld (`-Ttext-segment`, which lld refuses).
        let flag = if rustc_minor() >= 90 {
            "--image-base"
        } else {
            "-Ttext-segment"
        };
        println!("cargo:rustc-link-arg-bins=-Wl,{flag}={IMAGE_BASE:#x}");
    }
}

/// The minor version of the Rust compiler building Kiln (0 if it cannot be told).
fn rustc_minor() -> u32 {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc).arg("--version").output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = text.split_whitespace().nth(1).unwrap_or("");
    version.split('.').nth(1).and_then(|m| m.parse().ok()).unwrap_or(0)
}
