//! Shared harness for differential tests: builds guest programs from `tests/guest/` with the
//! system's compilers and runs them natively and under Kiln.

#![allow(dead_code)]

#[path = "lua_src.rs"]
mod lua_src;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const KILN: &str = env!("CARGO_BIN_EXE_kiln");

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The C toolchains every guest program is built with: (label, compiler, flags).
pub const TOOLCHAINS: &[(&str, &str, &str)] = &[
    ("gcc-O0", "gcc", "-O0"),
    ("gcc-O2", "gcc", "-O2"),
    ("musl-O0", "musl-gcc", "-O0"),
    ("musl-O2", "musl-gcc", "-O2"),
];

/// Builds `tests/guest/<name>` (a .c or .S file) with one toolchain; returns the binary path.
pub fn build(name: &str, label: &str, cc: &str, opt: &str) -> PathBuf {
    build_with(name, label, cc, &["-static", opt])
}

/// Builds `tests/guest/<name>` with gcc -O2, linked dynamically (the program, ld.so and libc
/// are three modules); returns the binary path.
pub fn build_dynamic(name: &str) -> PathBuf {
    build_with(name, "gcc-O2-dynamic", "gcc", &["-O2"])
}

/// Builds `tests/guest/<name>` with a compiler and flags into `target/guest-bin/<label>/`.
fn build_with(name: &str, label: &str, cc: &str, flags: &[&str]) -> PathBuf {
    let dir = root().join("target").join("guest-bin").join(label);
    std::fs::create_dir_all(&dir).expect("create guest-bin directory");
    let src = root().join("tests").join("guest").join(name);
    let stem = Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("program name");
    let out = dir.join(stem);
    // Tests run in parallel and may build the same program: build to a private name, then
    // rename into place (atomic), so no test ever runs a half-written binary.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let tmp = dir.join(format!(".{stem}.{}.{n}.tmp", std::process::id()));
    let mut cmd = Command::new(cc);
    cmd.args(flags).arg("-w").arg("-pthread").arg("-o").arg(&tmp).arg(&src);
    if name.ends_with(".c") {
        cmd.arg("-lm");
    }
    if name.ends_with(".S") {
        cmd.arg("-nostdlib");
    }
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc} (install it: the README's test command does): {e}"));
    assert!(
        o.status.success(),
        "{cc} {flags:?} failed on {name}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&tmp, &out).expect("rename the built program into place");
    out
}

#[derive(Debug, PartialEq, Eq)]
pub struct Run {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: Option<i32>,
    pub signal: Option<i32>,
}

fn to_run(o: Output) -> Run {
    use std::os::unix::process::ExitStatusExt;
    Run {
        stdout: o.stdout,
        stderr: o.stderr,
        status: o.status.code(),
        signal: o.status.signal(),
    }
}

pub fn guest_env(cmd: &mut Command) {
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LANG", "C")
        .env("GUEST_ALPHA", "one")
        .env("GUEST_BETA", "two words");
}

fn run_cmd(mut cmd: Command, stdin: &[u8]) -> Run {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut si = child.stdin.take().expect("stdin");
    si.write_all(stdin).ok();
    drop(si);
    to_run(child.wait_with_output().expect("wait"))
}

pub fn native(bin: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    guest_env(&mut cmd);
    run_cmd(cmd, stdin)
}

/// Runs under Kiln with a tier and cache directory, plus extra environment.
pub fn kiln(bin: &Path, tier: &str, cache: &Path, args: &[&str], stdin: &[u8], extra: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(KILN);
    cmd.arg("run").arg("--tier").arg(tier).arg(bin).args(args);
    guest_env(&mut cmd);
    cmd.env("KILN_CACHE_DIR", cache);
    // Write the cache before exiting (not from a detached child), so the next run sees it.
    cmd.env("KILN_CACHE_SYNC", "1");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    run_cmd(cmd, stdin)
}

/// Starts Kiln on a program the default way: the cache given on the command line, the run's
/// work handed to the directory's compile service at exit; with the guest's environment, and
/// statistics on request. `finish` collects it.
pub fn spawn_kiln(bin: &Path, args: &[&str], stdin: &[u8], cache: &Path, stats: bool) -> std::process::Child {
    let mut c = Command::new(KILN);
    c.args(["run", "--cache-dir"]).arg(cache).arg(bin).args(args);
    guest_env(&mut c);
    if stats {
        c.env("KILN_STATS", "json");
    }
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn kiln");
    let _ = child.stdin.take().expect("stdin").write_all(stdin);
    child
}

pub fn finish(c: std::process::Child) -> Run {
    to_run(c.wait_with_output().expect("wait"))
}

/// Waits until the cache directory's compile service has merged every journal runs left;
/// its status.
pub fn settle(cache: &Path) -> serde_json::Value {
    let o = Command::new(KILN)
        .args(["serve", "--wait", "--json", "--timeout", "300", "--cache-dir"])
        .arg(cache)
        .output()
        .expect("kiln serve --wait");
    assert!(
        o.status.success(),
        "the compile service for {} did not finish ({}): {}",
        cache.display(),
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_default()
}

/// `kiln cache verify` finds nothing damaged; the number of valid units.
pub fn assert_verifies(cache: &Path, when: &str) -> u64 {
    let o = Command::new(KILN)
        .args(["cache", "verify", "--json"])
        .env("KILN_CACHE_DIR", cache)
        .output()
        .expect("kiln cache verify");
    let text = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_default();
    assert!(
        o.status.success() && v["damaged"] == 0,
        "{when}: cache verify failed: {text}"
    );
    v["valid"].as_u64().unwrap_or(0)
}

/// Splits Kiln's `kiln-stats {...}` line off stderr and parses it (None when the process died
/// before printing it, as a program killed by a signal does).
pub fn try_take_stats(r: &mut Run) -> Option<serde_json::Value> {
    let text = String::from_utf8_lossy(&r.stderr).to_string();
    let mut rest = String::new();
    let mut stats = None;
    for line in text.split_inclusive('\n') {
        if let Some(j) = line.strip_prefix("kiln-stats ") {
            stats = Some(serde_json::from_str(j.trim()).expect("kiln-stats is JSON"));
        } else {
            rest.push_str(line);
        }
    }
    r.stderr = rest.into_bytes();
    stats
}

/// Like `try_take_stats`, for runs that must have printed statistics.
pub fn take_stats(r: &mut Run) -> serde_json::Value {
    try_take_stats(r).expect("KILN_STATS=json printed a kiln-stats line")
}

pub fn stat(s: &serde_json::Value, k: &str) -> u64 {
    s.get(k)
        .and_then(|v| v.as_u64())
        .unwrap_or_else(|| panic!("kiln-stats lacks integer key {k}: {s}"))
}

pub fn show(r: &Run) -> String {
    format!(
        "status {:?} signal {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        r.status,
        r.signal,
        String::from_utf8_lossy(&r.stdout[..r.stdout.len().min(4000)]),
        String::from_utf8_lossy(&r.stderr[..r.stderr.len().min(4000)])
    )
}

pub fn assert_same(what: &str, native: &Run, kiln: &Run) {
    if native != kiln {
        panic!(
            "{what}: Kiln differs from native\n=== native ===\n{}\n=== kiln ===\n{}",
            show(native),
            show(kiln)
        );
    }
}

/// The Lua 5.4 C sources shipped in the `lua-src` crate.
pub fn lua_sources() -> PathBuf {
    lua_src::lua_sources_in(&root()).unwrap_or_else(|e| panic!("{e}"))
}

/// Builds Lua from `lua_sources()` with `tests/lua/Makefile` in `dir` by running `make` through
/// `wrap` (empty: natively), with extra make variables.
pub fn make_lua(dir: &Path, wrap: &[&str], env: &[(&str, &Path)], vars: &[&str]) -> std::process::Output {
    std::fs::create_dir_all(dir).expect("build directory");
    std::fs::copy(root().join("tests/lua/main.c"), dir.join("main.c")).expect("copy main.c");
    let mut argv: Vec<String> = wrap.iter().map(|s| s.to_string()).collect();
    argv.push("/usr/bin/make".into());
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .args(["-r", "-s", "-j2", "-f"])
        .arg(root().join("tests/lua/Makefile"))
        .arg(format!("SRC={}", lua_sources().display()))
        .args(vars)
        .current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run make")
}

/// `kiln cache ARGS` over the cache directory `cache`.
pub fn cache_cmd(cache: &Path, args: &[&str]) -> Output {
    let o = Command::new(KILN)
        .arg("cache")
        .args(args)
        .env("KILN_CACHE_DIR", cache)
        .output();
    o.expect("kiln cache")
}

/// Like `cache_cmd`, for a command that must succeed.
pub fn cache_ok(cache: &Path, args: &[&str]) -> String {
    let o = cache_cmd(cache, args);
    assert!(
        o.status.success(),
        "kiln cache {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}
