//! One cache shared by many processes: concurrent runs, writers killed mid-write, the size cap
//! and collection, and the usage statistics that `kiln cache stats` reports.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Prog {
    bin: PathBuf,
    args: Vec<String>,
    stdin: Vec<u8>,
}

fn programs() -> Vec<Prog> {
    let p = |bin: PathBuf, args: &[&str], stdin: &[u8]| Prog {
        bin,
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: stdin.to_vec(),
    };
    vec![
        p(build("hello.c", "gcc-O2", "gcc", "-O2"), &["a", "b"], b""),
        p(build("sha256.c", "gcc-O2", "gcc", "-O2"), &["300000"], b""),
        p(
            PathBuf::from("/bin/sh"),
            &["-c", "for i in 3 1 2; do echo line $i; done | sort -r; echo done"],
            b"",
        ),
        p(PathBuf::from("/usr/bin/sort"), &["-n"], b"10\n9\n100\n-3\n7\n"),
    ]
}

fn spawn(p: &Prog, cache: &Path, stats: bool) -> Child {
    let args: Vec<&str> = p.args.iter().map(String::as_str).collect();
    spawn_kiln(&p.bin, &args, &p.stdin, cache, stats)
}

fn cache_cmd(cache: &Path, args: &[&str]) -> (bool, serde_json::Value, String) {
    let o = Command::new(KILN)
        .arg("cache")
        .args(args)
        .env("KILN_CACHE_DIR", cache)
        .output()
        .expect("kiln cache");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let v = serde_json::from_str(text.trim()).unwrap_or(serde_json::Value::Null);
    (
        o.status.success(),
        v,
        format!("{text}{}", String::from_utf8_lossy(&o.stderr)),
    )
}

fn run_all_at_once(progs: &[Prog], want: &[Run], cache: &Path, copies: usize, what: &str) -> Vec<serde_json::Value> {
    let children: Vec<(usize, Child)> = (0..copies)
        .flat_map(|_| (0..progs.len()).map(|i| (i, spawn(&progs[i], cache, true))))
        .collect();
    let mut stats = Vec::new();
    for (i, c) in children {
        let mut got = finish(c);
        // Programs that close their stderr at exit (coreutils do) print no statistics.
        if let Some(s) = try_take_stats(&mut got) {
            stats.push(s);
        }
        assert_same(&format!("{what}: {}", progs[i].bin.display()), &want[i], &got);
    }
    stats
}

/// 16 runs of four programs (static and dynamic, one that runs others through a shell) start
/// together on an empty cache, then 16 again on the cache they left: every output matches
/// native, the cache verifies after each wave, every run's usage record arrives intact, and
/// afterwards each program runs from the cache without compiling anything.
#[test]
fn sixteen_concurrent_runs_share_one_cache_cold_and_warm() {
    let progs = programs();
    let want: Vec<Run> = progs
        .iter()
        .map(|p| native(&p.bin, &p.args.iter().map(String::as_str).collect::<Vec<_>>(), &p.stdin))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    run_all_at_once(&progs, &want, &cache, 4, "cold, 16 at once");
    settle(&cache);
    let units = assert_verifies(&cache, "after 16 cold runs");
    assert!(units > 0, "16 cold runs stored nothing");
    let warm = run_all_at_once(&progs, &want, &cache, 4, "warm, 16 at once");
    assert!(warm.len() >= 8, "the static programs printed no statistics");
    for s in &warm {
        assert!(stat(s, "cache_hits") > 0, "a warm run used no cached unit: {s}");
    }
    settle(&cache);
    assert_verifies(&cache, "after 16 warm runs");
    for p in &progs {
        let mut got = finish(spawn(p, &cache, true));
        // The static programs are deterministic (and print statistics).
        if p.bin.starts_with(root()) {
            let s = take_stats(&mut got);
            assert_eq!(stat(&s, "units_compiled"), 0, "{}: {s}", p.bin.display());
            let (c, i) = (stat(&s, "guest_insns_compiled"), stat(&s, "guest_insns_interp"));
            assert!(c as f64 / (c + i) as f64 >= 0.995, "{}: {s}", p.bin.display());
        }
    }
    settle(&cache);
    let (ok, v, text) = cache_cmd(&cache, &["stats", "--json"]);
    assert!(ok, "{text}");
    // 36 guest programs ran under Kiln directly and the shell ran `sort` under Kiln 9 times.
    let runs = v["usage"]["runs"].as_u64().unwrap_or(0);
    assert_eq!(runs, 36 + 9, "usage records lost or torn: {text}");
    assert_eq!(v["journals"], 0, "{text}");
    // libc.so.6 serves the shell, sort and every sort the shell started.
    let shared = v["usage"]["modules"]
        .as_array()
        .map(|m| {
            m.iter()
                .any(|m| m["name"] == "libc.so.6" && m["programs"].as_array().is_some_and(|p| p.len() >= 2))
        })
        .unwrap_or(false);
    assert!(shared, "no cross-program hits on libc.so.6: {text}");
}

/// Writers killed with SIGKILL at every stage of writing (the run's own synchronous write, the
/// compile service) leave a cache that verifies, and the next runs use it.
#[test]
fn writers_killed_mid_write_leave_a_cache_that_verifies_and_serves() {
    let progs = programs();
    let p = &progs[1];
    let want = native(&p.bin, &p.args.iter().map(String::as_str).collect::<Vec<_>>(), b"");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    // A synchronous run (compile and write before exit), killed at spread-out moments.
    let full = {
        let scratch = dir.path().join("scratch");
        let mut c = Command::new(KILN);
        c.args(["run", "--cache-dir"]).arg(&scratch).arg(&p.bin).args(&p.args);
        c.env("KILN_CACHE_SYNC", "1").stdout(Stdio::null());
        let t = Instant::now();
        assert!(c.status().unwrap().success());
        t.elapsed()
    };
    for frac in [0.3, 0.6, 0.8, 0.9, 0.95, 0.98] {
        let mut c = Command::new(KILN);
        c.args(["run", "--cache-dir"]).arg(&cache).arg(&p.bin).args(&p.args);
        c.env("KILN_CACHE_SYNC", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(full.mul_f64(frac));
        let _ = child.kill();
        let _ = child.wait();
        assert_verifies(
            &cache,
            &format!("after a synchronous writer was killed at {frac} of its run"),
        );
    }
    // The compile service killed as soon as it is seen, then after growing delays.
    for delay_ms in [0u64, 5, 20, 60, 150] {
        let _ = std::fs::remove_dir_all(&cache);
        let got = finish(spawn(p, &cache, false));
        assert_same("run whose background writer is killed", &want, &got);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &cache.display().to_string()])
            .status();
        assert_verifies(&cache, &format!("after killing the background writer at {delay_ms} ms"));
        // The next run's service finds the journals a killed one left behind.
        let got = finish(spawn(p, &cache, false));
        assert_same("run after a killed writer", &want, &got);
        settle(&cache);
        assert_verifies(&cache, "after the next run's writer");
        let mut got = finish(spawn(p, &cache, true));
        let s = take_stats(&mut got);
        assert_same("warm run after a killed writer", &want, &got);
        assert!(stat(&s, "cache_hits") > 0 && stat(&s, "units_compiled") == 0, "{s}");
    }
}

/// Over the cap, collection removes invalid files first, then the least recently used modules
/// down to 80% of the cap; the cache still verifies and serves what is left.
#[test]
fn size_cap_collects_invalid_files_then_least_recently_used_modules() {
    let progs = programs();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kiln");
    let (hello, sha) = (&progs[0], &progs[1]);
    for p in [hello, sha] {
        let mut c = spawn(p, &cache, false);
        c.wait().unwrap();
        settle(&cache);
    }
    // sha256 is used again later than hello: hello's module is the least recently used.
    std::thread::sleep(Duration::from_millis(1100));
    let _ = finish(spawn(sha, &cache, false));
    settle(&cache);
    let packs = || -> Vec<PathBuf> {
        std::fs::read_dir(cache.join("packs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "pack"))
            .collect()
    };
    assert_eq!(packs().len(), 2, "one pack per static program");
    // Invalid files: a pack of another format and a writer's temporary file from long ago.
    let bogus = cache
        .join("packs")
        .join(format!("{}-{}.pack", "ab".repeat(32), "cd".repeat(16)));
    std::fs::write(&bogus, b"KILNPACK\x01\x00not a pack").unwrap();
    let tmp = cache.join("packs").join(".tmp-1-1");
    std::fs::write(&tmp, vec![0u8; 1000]).unwrap();
    let old = std::fs::File::options().write(true).open(&tmp).unwrap();
    old.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(old);
    // A generous cap keeps every valid module.
    let (ok, v, text) = cache_cmd(&cache, &["gc", "--json", "--max", "1G"]);
    assert!(ok, "{text}");
    assert_eq!(
        (v["invalid_removed"].as_u64(), v["modules_removed"].as_u64()),
        (Some(2), Some(0)),
        "{text}"
    );
    assert!(!bogus.exists() && !tmp.exists());
    assert_eq!(packs().len(), 2);
    // Just over the cap: the least recently used module (hello) goes first, then others
    // only while the cache is above 80% of the cap.
    let pack_of = |bin: &Path| {
        let h = blake3::hash(&std::fs::read(bin).unwrap());
        packs()
            .into_iter()
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&h.to_hex()[..]))
    };
    assert!(pack_of(&hello.bin).is_some() && pack_of(&sha.bin).is_some());
    let used = cache::disk_usage(&cache);
    let cap = used - 1;
    let (ok, v, text) = cache_cmd(&cache, &["gc", "--json", "--max", &cap.to_string()]);
    assert!(ok, "{text}");
    assert!(v["modules_removed"].as_u64() >= Some(1), "{text}");
    assert!(
        pack_of(&hello.bin).is_none(),
        "the least recently used module survived: {text}"
    );
    let after = v["bytes_after"].as_u64().unwrap_or(u64::MAX);
    assert!(after <= cap / 10 * 8 || packs().is_empty(), "{text}");
    if pack_of(&sha.bin).is_some() {
        assert_eq!(v["modules_removed"], 1, "{text}");
    }
    assert_verifies(&cache, "after collection");
    let want = native(&hello.bin, &["a", "b"], b"");
    std::thread::sleep(Duration::from_millis(50));
    let mut got = finish(spawn(hello, &cache, true));
    let s = take_stats(&mut got);
    assert_same("hello after its module was collected", &want, &got);
    assert_eq!(
        stat(&s, "cache_hits"),
        0,
        "hello's units should have been collected: {s}"
    );
    settle(&cache);
    // A run collects by itself when its write leaves the cache over KILN_CACHE_MAX: sha256 is
    // now the least recently used module.
    assert!(pack_of(&hello.bin).is_some(), "hello's run stored nothing");
    let cap = cache::disk_usage(&cache);
    let fresh = build("sieve.c", "gcc-O0", "gcc", "-O0");
    let mut c = Command::new(KILN);
    c.args(["run", "--cache-dir"]).arg(&cache).arg(&fresh);
    c.env("KILN_CACHE_SYNC", "1").env("KILN_CACHE_MAX", cap.to_string());
    c.stdout(Stdio::null());
    assert!(c.status().unwrap().success());
    assert!(pack_of(&sha.bin).is_none(), "the run did not collect over its cap");
    assert!(cache::disk_usage(&cache) <= cap, "the run left the cache over its cap");
    assert_verifies(&cache, "after a run collected");
}

mod cache {
    pub fn disk_usage(p: &std::path::Path) -> u64 {
        let Ok(md) = std::fs::symlink_metadata(p) else { return 0 };
        if !md.is_dir() {
            return md.len();
        }
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| disk_usage(&e.path())).sum())
            .unwrap_or(0)
    }
}
