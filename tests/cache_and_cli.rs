//! The persistent cache (warm runs, damage detection) and the command line's failure modes.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sha256_bin() -> std::path::PathBuf {
    build("sha256.c", "gcc-O2", "gcc", "-O2")
}

#[test]
fn warm_run_executes_no_translation_and_stays_in_compiled_code() {
    let bin = sha256_bin();
    let args = ["2000000"];
    let want = native(&bin, &args, b"");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    let mut cold = kiln(&bin, "auto", &cache, &args, b"", &[("KILN_STATS", "json")]);
    let cs = take_stats(&mut cold);
    assert_same("sha256 cold", &want, &cold);
    assert!(stat(&cs, "units_compiled") > 0, "the cold run compiled nothing: {cs}");
    // Everything that ran is stored: hot units and, compiled at exit, the rest.
    assert!(stat(&cs, "units_stored") > stat(&cs, "units_compiled"), "{cs}");
    let mut warm = kiln(&bin, "auto", &cache, &args, b"", &[("KILN_STATS", "json")]);
    let ws = take_stats(&mut warm);
    assert_same("sha256 warm", &want, &warm);
    assert_eq!(stat(&ws, "units_compiled"), 0, "{ws}");
    assert_eq!(stat(&ws, "compile_us"), 0, "{ws}");
    assert_eq!(stat(&ws, "blocks_decoded"), 0, "the warm run decoded guest code: {ws}");
    assert!(stat(&ws, "cache_hits") > 0, "{ws}");
    let (c, i) = (stat(&ws, "guest_insns_compiled"), stat(&ws, "guest_insns_interp"));
    let frac = c as f64 / (c + i) as f64;
    assert!(
        frac >= 0.99,
        "only {:.3}% of guest instructions ran in compiled code: {ws}",
        frac * 100.0
    );
}

/// A cache filled by a cold run of `bin` and then a first warm run, each output checked against
/// `want` and the service waited for after each: its directory, path and the warm run's stats.
fn cold_then_first_warm(bin: &Path, args: &[&str], want: &Run) -> (tempfile::TempDir, PathBuf, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    let cold = finish(spawn_kiln(bin, args, b"", &cache, false));
    assert_same("cold", want, &cold);
    settle(&cache);
    let mut first = finish(spawn_kiln(bin, args, b"", &cache, true));
    let stats = take_stats(&mut first);
    assert_same("first warm", want, &first);
    settle(&cache);
    (dir, cache, stats)
}

/// `kiln cache ARGS --json` over `cache`: its answer.
fn cache_json(cache: &Path, args: &[&str]) -> serde_json::Value {
    let o = Command::new(KILN)
        .arg("cache")
        .args(args)
        .arg("--json")
        .env("KILN_CACHE_DIR", cache)
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&o.stdout)))
}

/// A warm run hands the compile service the cached units it entered; the service records them
/// in the packs, which lay them out first, and the next warm run has nothing new to hand over.
#[test]
fn the_units_warm_runs_enter_are_recorded_in_their_packs() {
    let bin = sha256_bin();
    let args = ["100000"];
    let want = native(&bin, &args, b"");
    let (_dir, cache, fs) = cold_then_first_warm(&bin, &args, &want);
    assert!(
        stat(&fs, "units_entered_new") > 0,
        "the first warm run entered nothing new: {fs}"
    );
    let s = cache_json(&cache, &["stats"]);
    let entered = s["entered_units"].as_u64().unwrap_or(0);
    assert!(
        entered >= stat(&fs, "units_entered_new"),
        "the packs record {entered}: {fs} {s}"
    );
    assert!(
        s["units"].as_u64() > Some(entered),
        "every unit counted as entered: {s}"
    );
    let mut next = finish(spawn_kiln(&bin, &args, b"", &cache, true));
    let ns = take_stats(&mut next);
    assert_same("sha256 next warm", &want, &next);
    assert_eq!(stat(&ns, "units_entered_new"), 0, "{ns}");
    assert_eq!(stat(&ns, "units_compiled"), 0, "{ns}");
    settle(&cache);
}

/// The memo of each pack in `cache`: (file name, its memo's inode and contents).
fn pack_memos(cache: &Path) -> Vec<(String, u64, Vec<u8>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out: Vec<_> = std::fs::read_dir(cache.join("packs"))
        .expect("packs")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".pack"))
        .map(|n| {
            let memo = cache.join("hashes").join(&n);
            let ino = std::fs::metadata(&memo).map_or(0, |m| m.ino());
            (n, ino, std::fs::read(&memo).unwrap_or_default())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn packs_the_service_writes_are_not_hashed_again_by_the_next_run() {
    // The service checksums the bytes it writes; the first warm run after it rewrote a pack
    // used to hash the whole file again (about 10 ms for python3's packs).
    let bin = sha256_bin();
    let args = ["100000"];
    let want = native(&bin, &args, b"");
    // The first warm run hands over the units it entered, which the service records in the
    // packs it writes again.
    let (_dir, cache, _) = cold_then_first_warm(&bin, &args, &want);
    let before = pack_memos(&cache);
    assert!(!before.is_empty(), "the service wrote no pack");
    for (name, ino, memo) in &before {
        assert!(
            *ino != 0 && !memo.is_empty(),
            "the service left {name} without its memo"
        );
    }
    let warm = finish(spawn_kiln(&bin, &args, b"", &cache, false));
    assert_same("sha256 warm", &want, &warm);
    // A run that verified a pack whole writes its memo again (a new file renamed over it).
    assert_eq!(
        pack_memos(&cache),
        before,
        "the warm run verified a pack the service had written"
    );
    settle(&cache);
}

#[test]
fn flipped_byte_in_a_cache_entry_is_detected_and_replaced() {
    let bin = sha256_bin();
    let args = ["300000"];
    let want = native(&bin, &args, b"");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    let cold = kiln(&bin, "auto", &cache, &args, b"", &[]);
    assert_same("cold", &want, &cold);
    // Packs are where runs read; the index holds units not yet folded into a pack. Damage
    // both: every pack gets a flipped byte (it must be rejected as a whole), and the index gets
    // every unit back with a flipped byte (each must be rejected on its own).
    let mut damaged = 0u64;
    {
        let db = sled::open(cache.join("index.sled")).expect("open the cache index");
        assert_eq!(db.len(), 0, "a synchronous run left units outside its packs");
        for entry in std::fs::read_dir(cache.join("packs")).expect("the cold run wrote a pack") {
            let p = entry.unwrap().path();
            let mut b = std::fs::read(&p).unwrap();
            let (module, config) = cache_format::pack_identity(&b).expect("pack header");
            for (offset, e) in cache_format::decode_pack(&b, &module, &config).expect("a good pack") {
                let mut v = e.encode();
                let at = v.len() / 2;
                v[at] ^= 0x01;
                let key = cache_format::UnitKey { module, config, offset };
                db.insert(key.encode(), v).unwrap();
                damaged += 1;
            }
            let at = b.len() / 3;
            b[at] ^= 0x01;
            std::fs::write(&p, b).unwrap();
        }
        assert!(damaged > 0, "the cold run stored nothing");
        db.flush().unwrap();
    }
    let verify = Command::new(KILN)
        .args(["cache", "verify"])
        .env("KILN_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert!(
        !verify.status.success(),
        "cache verify passed a damaged cache: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let mut warm = kiln(&bin, "auto", &cache, &args, b"", &[("KILN_STATS", "json")]);
    let ws = take_stats(&mut warm);
    assert_same("run over a damaged cache", &want, &warm);
    assert_eq!(stat(&ws, "cache_rejected"), damaged, "{ws}");
    assert_eq!(stat(&ws, "cache_hits"), 0, "{ws}");
    let verify = Command::new(KILN)
        .args(["cache", "verify"])
        .env("KILN_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "cache verify after the rebuild: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let mut again = kiln(&bin, "auto", &cache, &args, b"", &[("KILN_STATS", "json")]);
    let s3 = take_stats(&mut again);
    assert_same("run over the rebuilt cache", &want, &again);
    assert!(stat(&s3, "cache_hits") > 0 && stat(&s3, "units_compiled") == 0, "{s3}");
}

#[test]
fn damaged_index_files_do_not_change_a_run() {
    let bin = build("hello.c", "gcc-O2", "gcc", "-O2");
    let want = native(&bin, &["x"], b"");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    kiln(&bin, "auto", &cache, &["x"], b"", &[]);
    for entry in std::fs::read_dir(cache.join("index.sled")).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let mut b = std::fs::read(&p).unwrap();
            for i in (0..b.len()).step_by(61) {
                b[i] ^= 0x5a;
            }
            std::fs::write(&p, b).unwrap();
        }
    }
    for _ in 0..2 {
        let got = kiln(&bin, "auto", &cache, &["x"], b"", &[]);
        assert_same("run over damaged index files", &want, &got);
    }
}

#[test]
fn damaged_runtime_code_is_compiled_again_and_replaced() {
    let bin = build("hello.c", "gcc-O2", "gcc", "-O2");
    let want = native(&bin, &["x"], b"");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    kiln(&bin, "auto", &cache, &["x"], b"", &[]);
    let runtime_files = || -> Vec<std::path::PathBuf> {
        let names = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path());
        names
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("runtime-"))
            .collect()
    };
    let files = runtime_files();
    assert_eq!(files.len(), 1, "the first run keeps the runtime's code: {files:?}");
    let good = std::fs::read(&files[0]).unwrap();
    for damage in [good[..good.len() / 2].to_vec(), vec![0xcc; good.len()], {
        let mut b = good.clone();
        b[good.len() / 3] ^= 0x10;
        b
    }] {
        std::fs::write(&files[0], &damage).unwrap();
        let got = kiln(&bin, "auto", &cache, &["x"], b"", &[]);
        assert_same("run over damaged runtime code", &want, &got);
        assert_eq!(
            std::fs::read(&files[0]).unwrap(),
            good,
            "the run wrote the code back whole"
        );
    }
}

#[test]
fn cache_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let bin = build("hello.c", "gcc-O2", "gcc", "-O2");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("fresh").join("kiln");
    kiln(&bin, "auto", &cache, &[], b"", &[]);
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let want = native(&bin, &[], b"");
    let got = kiln(&bin, "auto", &cache, &[], b"", &[]);
    assert_eq!(got.stdout, want.stdout);
    assert_eq!(got.status, want.status);
    let err = String::from_utf8_lossy(&got.stderr);
    assert!(
        err.contains("world-writable") && err.contains("without the cache"),
        "expected a warning, got: {err}"
    );
}

fn expect_one_line_error(path: &std::path::Path, needle: &str) {
    let o = Command::new(KILN).arg("run").arg(path).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "kiln accepted {}", path.display());
    assert_eq!(err.lines().count(), 1, "expected one line, got: {err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn options_after_the_program_are_the_programs_own() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Path::new("/bin/echo");
    for args in [
        &["--help"][..],
        &["--version"],
        &["--no-cache", "--tier", "x"],
        &["a", "--help"],
    ] {
        let native = native(echo, args, b"");
        let under = kiln(echo, "auto", dir.path(), args, b"", &[]);
        assert_same(&format!("echo {args:?}"), &native, &under);
    }
}

#[test]
fn bad_elf_files_get_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some text\n").unwrap();
    expect_one_line_error(&text, "not an ELF file");
    let good = std::fs::read(build("hello.c", "gcc-O2", "gcc", "-O2")).unwrap();
    for cut in [3usize, 20, 64, 100, 1000, good.len() / 2] {
        let p = dir.path().join(format!("trunc{cut}"));
        std::fs::write(&p, &good[..cut]).unwrap();
        let o = Command::new(KILN).arg("run").arg(&p).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.lines().count() == 1 && !err.contains("panicked"),
            "truncated at {cut}: {err}"
        );
    }
    let mut arm = good.clone();
    arm[18] = 0xb7; // EM_AARCH64
    arm[19] = 0;
    let p = dir.path().join("arm");
    std::fs::write(&p, &arm).unwrap();
    expect_one_line_error(&p, "not an x86-64 ELF");
    expect_one_line_error(&dir.path().join("missing"), "cannot read");
}

#[test]
fn unimplemented_instruction_is_named_and_ends_like_sigill() {
    let bin = build("illegal_insn.S", "gcc-O0", "gcc", "-O0");
    for tier in ["interp", "jit", "auto"] {
        let dir = tempfile::tempdir().unwrap();
        let r = kiln(&bin, tier, &dir.path().join("c"), &[], b"", &[]);
        assert_eq!(r.stdout, b"before the unimplemented instruction\n");
        assert_eq!(r.signal, Some(libc_sigill()), "{}", show(&r));
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(
            err.contains("Vzeroupper") && err.contains("c5 f8 77") && err.contains("0x40"),
            "{err}"
        );
    }
}

fn libc_sigill() -> i32 {
    4
}

#[test]
fn unknown_syscall_returns_enosys_and_is_logged_on_request() {
    let bin = build("enosys.S", "gcc-O0", "gcc", "-O0");
    let want = native(&bin, &[], b"");
    assert_eq!(want.status, Some(38));
    let dir = tempfile::tempdir().unwrap();
    for tier in ["interp", "jit"] {
        let r = kiln(&bin, tier, &dir.path().join("c"), &[], b"", &[]);
        assert_same("enosys", &want, &r);
    }
    let r = kiln(
        &bin,
        "interp",
        &dir.path().join("c"),
        &[],
        b"",
        &[("KILN_LOG", "syscall")],
    );
    assert_eq!(r.status, Some(38));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("syscall 1999"),
        "{}",
        show(&r)
    );
}

#[test]
fn shared_library_units_serve_other_programs() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    let first = kiln(Path::new("/bin/echo"), "auto", &cache, &["warming", "libc"], b"", &[]);
    assert_eq!(first.stdout, b"warming libc\n");
    // A different program, run for the first time: the dynamic loader's and libc's units come
    // from the cache.
    // (dash, because coreutils close stderr at exit, where the statistics go.)
    let args = ["-c", "echo second program; x=$((6*7)); echo $x"];
    let want = native(Path::new("/bin/sh"), &args, b"");
    let mut got = kiln(
        Path::new("/bin/sh"),
        "auto",
        &cache,
        &args,
        b"",
        &[("KILN_STATS", "json")],
    );
    let s = take_stats(&mut got);
    assert_same("sh after echo", &want, &got);
    // Units on the libraries' unchanged pages are chained at once (`units_prefilled`), the
    // others found by the dispatcher (`cache_hits`); either way the cache ran most of it.
    assert!(
        stat(&s, "cache_hits") + stat(&s, "units_prefilled") > 100
            && stat(&s, "guest_insns_compiled") > stat(&s, "guest_insns_interp"),
        "libc units were not reused across programs: {s}"
    );
}

/// `kiln cache stats|verify|clear --json`: machine-readable totals that follow the cache.
#[test]
fn cache_commands_report_json() {
    let bin = build("sha256.c", "gcc-O2", "gcc", "-O2");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    let r = kiln(&bin, "auto", &cache, &["1000"], b"", &[]);
    assert_eq!(r.status, Some(0), "{}", show(&r));
    let cmd = |args: &[&str]| cache_json(&cache, args);
    let s = cmd(&["stats"]);
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert!(
        n(&s, "units") > 0 && n(&s, "modules") >= 1 && n(&s, "configs") == 1,
        "{s}"
    );
    assert!(
        n(&s, "code_bytes") > 0 && n(&s, "packs") >= 1 && n(&s, "pack_bytes") > 0,
        "{s}"
    );
    assert_eq!(s["dir"].as_str(), Some(cache.to_str().unwrap()));
    let v = cmd(&["verify"]);
    assert_eq!(n(&v, "damaged"), 0, "{v}");
    assert!(n(&v, "valid") >= n(&s, "units"), "{v} {s}");
    let c = cmd(&["clear"]);
    assert_eq!(c["cleared"], true, "{c}");
    let s = cmd(&["stats"]);
    assert_eq!((n(&s, "units"), n(&s, "packs")), (0, 0), "{s}");
}

/// Runs `hello.c` under the Kiln executable `exe` over `cache`; its statistics.
fn hello_under(exe: &Path, cache: &Path) -> serde_json::Value {
    let bin = build("hello.c", "gcc-O2", "gcc", "-O2");
    let mut cmd = Command::new(exe);
    cmd.arg("run").arg(&bin).arg("x");
    guest_env(&mut cmd);
    cmd.env("KILN_CACHE_DIR", cache)
        .env("KILN_CACHE_SYNC", "1")
        .env("KILN_STATS", "json");
    // A copy just written may still be open for writing in a child another test forks: retry
    // while the kernel says the text file is busy.
    let mut tries = 0;
    let out = loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => break r.expect("run Kiln"),
        }
    };
    let mut run = Run {
        stdout: out.stdout,
        stderr: out.stderr,
        status: out.status.code(),
        signal: None,
    };
    let s = take_stats(&mut run);
    assert_eq!(run.status, Some(0), "{}", show(&run));
    s
}

/// The cache is keyed by the Kiln executable that produced the code: a binary that differs in
/// any byte (here: a copy with bytes appended, same version) neither uses nor is served
/// another binary's entries, while the same binary run again is.
#[test]
fn a_different_kiln_executable_does_not_use_the_cache_entries_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    let other = dir.path().join("kiln-other");
    std::fs::copy(KILN, &other).expect("copy the Kiln executable");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&other)
            .expect("open the copy");
        f.write_all(b"a different build of Kiln").expect("append to the copy");
    }
    let kiln = Path::new(KILN);
    let cold = hello_under(kiln, &cache);
    assert!(stat(&cold, "units_stored") > 0, "{cold}");
    let warm = hello_under(kiln, &cache);
    assert!(
        stat(&warm, "cache_hits") > 0,
        "the same binary missed its entries: {warm}"
    );
    assert_eq!(stat(&warm, "blocks_decoded"), 0, "{warm}");
    let copy = hello_under(&other, &cache);
    assert_eq!(
        stat(&copy, "units_loaded"),
        0,
        "another binary's entries were loaded: {copy}"
    );
    assert_eq!(stat(&copy, "cache_hits"), 0, "{copy}");
    assert!(stat(&copy, "blocks_decoded") > 0, "{copy}");
    let copy_again = hello_under(&other, &cache);
    assert!(
        stat(&copy_again, "cache_hits") > 0,
        "the copy missed its own entries: {copy_again}"
    );
    let back = hello_under(kiln, &cache);
    assert!(
        stat(&back, "cache_hits") > 0 && stat(&back, "blocks_decoded") == 0,
        "{back}"
    );
}

/// Every unit the cache could not serve is counted under one reason.
fn assert_misses_add_up(s: &serde_json::Value) {
    let reasons = ["miss_not_in_cache", "miss_bytes_changed", "miss_unidentified"];
    let sum: u64 = reasons.iter().map(|r| stat(s, r)).sum();
    assert_eq!(sum, stat(s, "cache_misses"), "{s}");
}

/// A dynamic program (three modules: the program, ld.so and libc) run warm from a complete
/// cache decodes and compiles nothing, even when Kiln's own settings differ from the cold
/// run's: `KILN_*` variables stay out of the guest's environment, so turning statistics and
/// logs on does not move the guest's strings onto paths the cold run never took.
#[test]
fn a_dynamic_program_warm_from_the_cache_decodes_and_compiles_nothing() {
    let bin = build_dynamic("argv_env.c");
    let args = ["one", "two words"];
    let want = native(&bin, &args, b"");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    let mut cold = kiln(&bin, "auto", &cache, &args, b"", &[("KILN_STATS", "json")]);
    let cs = take_stats(&mut cold);
    assert_same("dynamic cold", &want, &cold);
    assert_misses_add_up(&cs);
    assert!(stat(&cs, "miss_not_in_cache") > 0, "{cs}");
    assert_eq!(stat(&cs, "miss_unidentified"), 0, "{cs}");
    let extra = [
        ("KILN_STATS", "json"),
        ("KILN_LOG", "decode"),
        ("KILN_UNRELATED", "a longer value"),
    ];
    let mut warm = kiln(&bin, "auto", &cache, &args, b"", &extra);
    let ws = take_stats(&mut warm);
    // No block decoded: the decode log printed nothing either.
    assert_same("dynamic warm", &want, &warm);
    assert_eq!(stat(&ws, "blocks_decoded"), 0, "the warm run decoded guest code: {ws}");
    assert_eq!(stat(&ws, "units_compiled"), 0, "{ws}");
    assert_eq!(stat(&ws, "cache_misses"), 0, "{ws}");
    assert_misses_add_up(&ws);
    assert!(stat(&ws, "cache_hits") > 0, "{ws}");
    assert_eq!(stat(&ws, "guest_insns_interp"), 0, "{ws}");
}

/// Kiln's settings are not in the guest's environment, and still reach Kiln run again for a
/// guest's execve.
#[test]
fn kiln_settings_stay_out_of_the_guest_environment() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    // The inner shell runs under Kiln re-executed for the outer one's execve.
    let args = ["-c", "env; /bin/sh -c 'exit 0'"];
    let r = kiln(
        Path::new("/bin/sh"),
        "auto",
        &cache,
        &args,
        b"",
        &[("KILN_STATS", "json")],
    );
    let out = String::from_utf8_lossy(&r.stdout).to_string();
    assert!(out.contains("GUEST_ALPHA=one"), "{}", show(&r));
    assert!(!out.contains("KILN_"), "the guest sees Kiln's settings: {}", show(&r));
    let err = String::from_utf8_lossy(&r.stderr).to_string();
    let printed = err.lines().filter(|l| l.starts_with("kiln-stats ")).count();
    // The outer shell's statistics and the inner one's (KILN_STATS reached the second Kiln).
    assert!(printed >= 2, "{}", show(&r));
}

/// A pack is hashed whole once per version of its file (a memo keeps the verdict), never
/// trusted past a change: a byte flipped in place after warm runs verified it is still caught,
/// and the damaged pack is not used.
#[test]
fn a_pack_damaged_after_it_was_verified_is_still_rejected() {
    use std::os::unix::fs::FileExt;
    let bin = sha256_bin();
    let args = ["300000"];
    let want = native(&bin, &args, b"");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    assert_same("cold", &want, &kiln(&bin, "auto", &cache, &args, b"", &[]));
    for _ in 0..2 {
        let mut warm = kiln(&bin, "auto", &cache, &args, b"", &[("KILN_STATS", "json")]);
        let s = take_stats(&mut warm);
        assert_same("warm", &want, &warm);
        assert!(stat(&s, "cache_hits") > 0, "{s}");
    }
    let pack = std::fs::read_dir(cache.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "pack"))
        .expect("a pack");
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&pack).unwrap();
    let at = f.metadata().unwrap().len() * 2 / 3;
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x10], at).unwrap();
    drop(f);
    let mut after = kiln(&bin, "auto", &cache, &args, b"", &[("KILN_STATS", "json")]);
    let s = take_stats(&mut after);
    assert_same("after the flip", &want, &after);
    assert_eq!(stat(&s, "cache_hits"), 0, "a damaged pack was used: {s}");
}
