//! `kiln bake`: a program baked into an empty cache runs its first time from cached code
//! (output equal to native), with the libraries it needs found as the loader finds them;
//! baking is deterministic and adds nothing the second time; bad inputs fail with one line.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output};

const ARGS: &[&str] = &["30000"];

/// `kiln bake --json PATHS` into `cache`.
fn bake(cache: &Path, paths: &[&Path]) -> Output {
    let o = Command::new(KILN)
        .args(["bake", "--json", "--cache-dir"])
        .arg(cache)
        .args(paths)
        .output();
    o.expect("kiln bake")
}

/// Like `bake`, for a bake that must succeed: its summary.
fn bake_ok(cache: &Path, paths: &[&Path]) -> serde_json::Value {
    let o = bake(cache, paths);
    assert!(o.status.success(), "kiln bake: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("a JSON summary")
}

/// The share of guest instructions a run's statistics show in compiled code.
fn compiled_share(s: &serde_json::Value) -> f64 {
    let compiled = stat(s, "guest_insns_compiled") as f64;
    compiled / (compiled + stat(s, "guest_insns_interp") as f64)
}

/// The first run of `bin` in `cache` (nothing handed to a service): its statistics, with
/// its output checked against native.
fn first_run(bin: &Path, cache: &Path, want: &Run) -> serde_json::Value {
    let mut r = kiln(bin, "auto", cache, ARGS, b"", &[("KILN_STATS", "json")]);
    let s = take_stats(&mut r);
    assert_same("indirect_flow", want, &r);
    s
}

/// Baked, a program's first run executes at least 99% of its instructions in cached code and
/// compiles under 1% of what an unbaked first run compiles; the baked cache's directory.
fn assert_baked_run_is_warm(bin: &Path, modules: &[&str]) -> tempfile::TempDir {
    let want = native(bin, ARGS, b"");
    let dir = tempfile::tempdir().unwrap();
    let cold = first_run(bin, &dir.path().join("cold"), &want);
    let cache = dir.path().join("baked");
    let summary = bake_ok(&cache, &[bin]);
    let names: Vec<&str> = (summary["modules"].as_array().unwrap().iter())
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    for m in modules {
        assert!(names.iter().any(|n| n.contains(m)), "{m} not baked: {summary}");
    }
    let first = first_run(bin, &cache, &want);
    assert!(compiled_share(&first) >= 0.99, "baked first run: {first}");
    let (baked, unbaked) = (stat(&first, "units_compiled"), stat(&cold, "units_compiled"));
    assert!(
        unbaked > 0 && baked * 100 < unbaked,
        "compiles {baked} baked, {unbaked} not:\n{first}\n{cold}"
    );
    // The service forms regions again over a baked pack after a run hands it work: they
    // still hold the baked code the pack has no units for.
    assert_same(
        "indirect_flow",
        &want,
        &finish(spawn_kiln(bin, ARGS, b"", &cache, false)),
    );
    settle(&cache);
    let again = first_run(bin, &cache, &want);
    assert!(compiled_share(&again) >= 0.99, "after the service: {again}");
    dir
}

#[test]
fn a_baked_static_program_runs_warm_the_first_time() {
    assert_baked_run_is_warm(
        &build("indirect_flow.c", "musl-O2", "musl-gcc", "-O2"),
        &["indirect_flow"],
    );
}

#[test]
fn a_baked_dynamic_program_and_its_libraries_run_warm_the_first_time() {
    let bin = build_dynamic("indirect_flow.c");
    let dir = assert_baked_run_is_warm(&bin, &["indirect_flow", "libc.so.6", "ld-linux-x86-64.so.2"]);
    // A bundle of the program takes its libraries too, though it never ran in that cache
    // (the bake recorded them), and serves a first run elsewhere as the bake did.
    let (baked, bundle) = (dir.path().join("baked"), dir.path().join("program.kbundle"));
    let bundle_s = bundle.to_str().unwrap();
    let out = cache_ok(&baked, &["export", "--json", "-o", bundle_s, bin.to_str().unwrap()]);
    let exported: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(exported["packs"], 3, "{exported}");
    let other = dir.path().join("imported");
    cache_ok(&other, &["import", bundle_s]);
    let first = first_run(&bin, &other, &native(&bin, ARGS, b""));
    assert!(compiled_share(&first) >= 0.99, "first run after the import: {first}");
    // Baking is not a run: the statistics count only the three runs made in that cache.
    let stats: serde_json::Value = serde_json::from_str(&cache_ok(&baked, &["stats", "--json"])).unwrap();
    assert_eq!(stats["usage"]["runs"], 3, "{stats}");
}

/// Every pack file of `cache`, by name, with its bytes.
fn packs(cache: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = (std::fs::read_dir(cache.join("packs")).unwrap().flatten())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn baking_is_deterministic_and_adds_nothing_twice() {
    let bin = build("indirect_flow.c", "musl-O0", "musl-gcc", "-O0");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = bake_ok(&a, &[&bin]);
    assert!(first["modules"][0]["regions"].as_u64().unwrap() > 0, "{first}");
    bake_ok(&b, &[&bin]);
    let packs_a = packs(&a);
    assert!(!packs_a.is_empty());
    assert!(
        packs_a == packs(&b),
        "two bakes of the same program made different packs"
    );
    let again = bake_ok(&a, &[&bin]);
    assert_eq!(again["modules"][0]["regions"], 0, "{again}");
    assert!(packs(&a) == packs_a, "a second bake changed the packs");
}

#[test]
fn what_cannot_be_baked_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a program\n").unwrap();
    let missing = dir.path().join("missing");
    for (path, why) in [(&text, "not a 64-bit ELF file"), (&missing, "No such file")] {
        let o = bake(&dir.path().join("cache"), &[path]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{} was baked", path.display());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&*path.to_string_lossy()) && err.contains(why), "{err}");
    }
}
