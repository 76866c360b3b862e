//! Real programs with their own JIT compilers, run natively and under Kiln, cold and then warm
//! from the cache: the PCRE2 JIT behind `grep -P`, LuaJIT, and Node.js (V8). Their code is
//! generated, patched and run at run time, so every stale translation shows as a wrong result.
//! `tools/test` installs the Debian packages they come from (grep, luajit, nodejs).

mod common;
use common::*;
use std::path::Path;

/// The program's output natively, then under Kiln with an empty cache and with the cache the
/// first run left: all three must be the same.
fn same_as_native(what: &str, program: &str, args: &[&str], dir: &Path) {
    assert!(
        Path::new(program).exists(),
        "{program} is missing: install the Debian package it comes from (tools/test does)"
    );
    let want = native(Path::new(program), args, b"");
    assert_eq!(want.status, Some(0), "{what} natively: {}", show(&want));
    let cache = dir.join("kiln-cache");
    for run in ["cold", "warm"] {
        let got = kiln(Path::new(program), "auto", &cache, args, b"", &[]);
        assert_same(&format!("{what} under Kiln ({run})"), &want, &got);
    }
}

fn script(name: &str) -> String {
    root().join("tests/scripts").join(name).display().to_string()
}

#[test]
fn grep_perl_regex_with_the_pcre2_jit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("text.txt");
    let words = ["alpha", "beta", "gamma", "delta", "kiln", "foo_12", "bar_9", "xxxxx"];
    let mut s = String::new();
    let mut x: u64 = 1;
    for _ in 0..60_000 {
        for _ in 0..8 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            s.push_str(words[(x >> 33) as usize % words.len()]);
            s.push_str(&((x >> 40) % 1000).to_string());
            s.push(' ');
        }
        s.push('\n');
    }
    std::fs::write(&text, s).expect("write text");
    let t = text.display().to_string();
    same_as_native(
        "grep -P",
        "/usr/bin/grep",
        &["-P", r"ki(ln)\d{2,3}\s+\w+_\d", &t],
        dir.path(),
    );
    same_as_native(
        "grep -cP",
        "/usr/bin/grep",
        &["-cP", r"(?i)(a|b)\w{3,}9\b", &t],
        dir.path(),
    );
}

#[test]
fn luajit_traces() {
    let dir = tempfile::tempdir().expect("tempdir");
    same_as_native("luajit", "/usr/bin/luajit", &[&script("jit_bench.lua")], dir.path());
}

#[test]
fn node_json_regex_and_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    same_as_native("node", "/usr/bin/node", &[&script("jit_work.js")], dir.path());
}
