//! Benchmark harness: each workload natively, under Kiln cold (empty cache) and warm, and under
//! qemu-x86_64 when installed, all in one run; prints median wall times and ratios to native,
//! plus the baseline tier's cost per guest instruction.
//!
//! `cargo bench --bench compare` (set `KILN_BENCH_RUNS` to change the rounds, default 5).

#[path = "../tests/common/lua_src.rs"]
mod lua_src;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const KILN_BUILT: &str = env!("CARGO_BIN_EXE_kiln");

/// The Kiln executable measured: the one built with the benchmark, or `KILN_BENCH_KILN` (another
/// build, to compare two in the harness's own sequence).
fn kiln_exe() -> String {
    std::env::var("KILN_BENCH_KILN").unwrap_or_else(|_| KILN_BUILT.to_string())
}

struct Workload {
    name: &'static str,
    bin: PathBuf,
    args: Vec<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn build(src: &str) -> PathBuf {
    let out_dir = root().join("target").join("bench-bin");
    std::fs::create_dir_all(&out_dir).expect("bench-bin dir");
    let out = out_dir.join(Path::new(src).file_stem().expect("stem"));
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-w", "-o"])
        .arg(&out)
        .arg(root().join("tests/guest").join(src))
        .arg("-lm")
        .status()
        .expect("gcc");
    assert!(st.success(), "gcc failed on {src}");
    out
}

/// Runs a command once; returns its wall time in seconds and its peak resident memory in KiB
/// (the process itself, from wait4, which also reaps it).
#[allow(clippy::zombie_processes)]
fn time_once(mut cmd: Command) -> (f64, u64) {
    use std::os::unix::process::ExitStatusExt;
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let t = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, with valid out-pointers.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let dt = t.elapsed().as_secs_f64();
    assert!(r > 0, "wait4 failed");
    let st = std::process::ExitStatus::from_raw(status);
    assert!(st.code().is_some(), "benchmark command died: {st:?}");
    (dt, ru.ru_maxrss as u64)
}

fn cc1_path() -> Option<String> {
    let o = Command::new("gcc").arg("-print-prog-name=cc1").output().ok()?;
    let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
    Path::new(&p).exists().then_some(p)
}

/// A file of the Lua 5.4 sources shipped in the lua-src crate.
fn lua_source(name: &str) -> Option<PathBuf> {
    let f = lua_src::lua_sources_in(&root()).ok()?.join(name);
    f.exists().then_some(f)
}

/// The arguments gcc's driver gives the linker for a PIE of one object (its collect2 line
/// without the LTO plugin options), writing `out`.
fn ld_args(obj: &Path, out: &Path) -> Option<Vec<String>> {
    let o = Command::new("gcc")
        .arg("-###")
        .arg(obj)
        .arg("-o")
        .arg(out)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&o.stderr).to_string();
    let line = text.lines().find(|l| l.contains("collect2"))?;
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in line.trim().chars() {
        match ch {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(ch),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut args = Vec::new();
    let mut it = words.into_iter().skip(1);
    while let Some(w) = it.next() {
        if w == "-plugin" {
            it.next();
        } else if !w.starts_with("-plugin-opt") {
            args.push(w);
        }
    }
    Some(args)
}

/// Median wall time and median peak RSS of a set of runs.
fn stat(v: &[(f64, u64)]) -> (f64, u64) {
    let mut t: Vec<f64> = v.iter().map(|x| x.0).collect();
    let mut m: Vec<u64> = v.iter().map(|x| x.1).collect();
    t.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    m.sort_unstable();
    (t[t.len() / 2], m[m.len() / 2])
}

struct Row {
    name: &'static str,
    native: (f64, u64),
    cold: (f64, u64),
    warm: (f64, u64),
    qemu: Option<(f64, u64)>,
    cached: Option<f64>,
    compiles: Option<u64>,
}

/// The newest intact record of a cache's usage log.
fn last_usage(cache: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(cache.join("usage.log")).ok()?;
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l.split_once(' ')?.1).ok())
}

/// The table as an SVG chart: per workload, bars of the time relative to native (log scale)
/// for Kiln cold, Kiln warm and qemu-x86_64.
fn plot(rows: &[Row], runs: usize) -> String {
    let (left, top, bar, gap, width) = (230.0, 60.0, 11.0, 14.0, 560.0);
    let max_ratio = rows
        .iter()
        .flat_map(|r| [r.cold.0, r.warm.0, r.qemu.map_or(0.0, |q| q.0)].map(|t| t / r.native.0))
        .fold(2.0f64, f64::max);
    let decades = max_ratio.log10().ceil().max(1.0);
    let x = |ratio: f64| left + width * ratio.max(1.0).log10() / decades;
    let group = 3.0 * bar + gap;
    let height = top + group * rows.len() as f64 + 50.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">Time relative to native (log scale, median of {runs}; lower is better)</text>\n",
        left + width + 80.0
    );
    let series = [
        ("Kiln cold", "#e0a030"),
        ("Kiln warm", "#2070c0"),
        ("qemu-x86_64", "#909090"),
    ];
    for (i, (name, colour)) in series.iter().enumerate() {
        let lx = 10.0 + 150.0 * i as f64;
        s += &format!(
            "<rect x=\"{lx}\" y=\"30\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{}\" y=\"41\">{name}</text>\n",
            lx + 16.0
        );
    }
    let mut d = 1.0;
    while d <= 10f64.powf(decades) + 0.5 {
        let gx = x(d);
        s += &format!(
            "<line x1=\"{gx}\" y1=\"{top}\" x2=\"{gx}\" y2=\"{}\" stroke=\"#ccc\"/><text x=\"{gx}\" y=\"{}\" text-anchor=\"middle\">{d}x</text>\n",
            height - 40.0,
            height - 25.0
        );
        d *= 10.0;
    }
    for (i, r) in rows.iter().enumerate() {
        let y0 = top + group * i as f64;
        s += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            left - 6.0,
            y0 + 1.5 * bar + 4.0,
            r.name
        );
        for (k, t) in [Some(r.cold), Some(r.warm), r.qemu].iter().enumerate() {
            let Some((t, _)) = t else { continue };
            let ratio = t / r.native.0;
            let y = y0 + bar * k as f64;
            s += &format!(
                "<rect x=\"{left}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"10\">{ratio:.1}x</text>\n",
                x(ratio) - left,
                bar - 1.0,
                series[k].1,
                x(ratio) + 3.0,
                y + bar - 2.0
            );
        }
    }
    s + "</svg>\n"
}

fn kiln_cmd(w: &Workload, cache: &Path, tier: &str) -> Command {
    let mut c = Command::new(kiln_exe());
    c.args(["run", "--tier", tier])
        .arg(&w.bin)
        .args(&w.args)
        .env("KILN_CACHE_DIR", cache);
    c
}

fn main() {
    let runs: usize = std::env::var("KILN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let qemu = Command::new("qemu-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut workloads = vec![
        Workload {
            name: "hello (static glibc)",
            bin: build("hello.c"),
            args: vec![],
        },
        Workload {
            name: "crc32 of 64 MiB",
            bin: build("crc32.c"),
            args: vec![(64u64 << 20).to_string()],
        },
        Workload {
            name: "sha256 of 16 MiB",
            bin: build("sha256.c"),
            args: vec![(16u64 << 20).to_string()],
        },
        Workload {
            name: "n-body, 1M steps (double)",
            bin: build("nbody.c"),
            args: vec!["1000000".into()],
        },
    ];
    let cc1 = Command::new("gcc")
        .arg("-print-prog-name=cc1")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(cc1) = cc1.filter(|p| Path::new(p).exists()) {
        let dir = root().join("target").join("bench-bin");
        for (name, src) in [("cc1 -O2 hello.i", "hello.c"), ("cc1 -O2 sha256.i", "sha256.c")] {
            let i = dir.join(format!("{src}.i"));
            let st = Command::new("gcc")
                .args(["-E", "-w"])
                .arg(root().join("tests/guest").join(src))
                .arg("-o")
                .arg(&i)
                .status();
            if st.is_ok_and(|s| s.success()) {
                workloads.push(Workload {
                    name: if name.contains("hello") {
                        "cc1 -O2 hello.i (dynamic)"
                    } else {
                        "cc1 -O2 sha256.i (dynamic)"
                    },
                    bin: PathBuf::from(&cc1),
                    args: vec![
                        "-O2".into(),
                        "-quiet".into(),
                        i.display().to_string(),
                        "-o".into(),
                        "/dev/null".into(),
                    ],
                });
            }
        }
    }
    let dir = root().join("target").join("bench-bin");
    // A 4,500-line preprocessed file: Lua's parser (sources from the lua-src dev-dependency).
    if let (Some(cc1), Some(src)) = (cc1_path(), lua_source("lparser.c")) {
        let i = dir.join("lparser.i");
        let st = Command::new("gcc")
            .args(["-E", "-w"])
            .arg(&src)
            .arg("-o")
            .arg(&i)
            .status();
        if st.is_ok_and(|s| s.success()) {
            let lines = std::fs::read_to_string(&i).map_or(0, |t| t.lines().count());
            workloads.push(Workload {
                name: if lines > 4000 {
                    "cc1 -O2 lparser.i (4.5k lines)"
                } else {
                    "cc1 -O2 lparser.i"
                },
                bin: PathBuf::from(cc1),
                args: vec![
                    "-O2".into(),
                    "-quiet".into(),
                    i.display().to_string(),
                    "-o".into(),
                    "/dev/null".into(),
                ],
            });
        }
    }
    let asm = dir.join("sha256.s");
    let obj = dir.join("sha256.o");
    let cc1_ok = Command::new("gcc")
        .args(["-S", "-O2", "-w", "-o"])
        .arg(&asm)
        .arg(root().join("tests/guest/sha256.c"))
        .status()
        .is_ok_and(|s| s.success());
    if cc1_ok {
        workloads.push(Workload {
            name: "as sha256.s (dynamic)",
            bin: PathBuf::from("/usr/bin/as"),
            args: vec![
                asm.display().to_string(),
                "-o".into(),
                dir.join("as-out.o").display().to_string(),
            ],
        });
    }
    let obj_ok = Command::new("gcc")
        .args(["-c", "-O2", "-w", "-o"])
        .arg(&obj)
        .arg(root().join("tests/guest/sha256.c"))
        .status()
        .is_ok_and(|s| s.success());
    if let Some(args) = obj_ok.then(|| ld_args(&obj, &dir.join("ld-out"))).flatten() {
        workloads.push(Workload {
            name: "ld sha256.o (dynamic)",
            bin: PathBuf::from("/usr/bin/ld"),
            args,
        });
    }
    workloads.push(Workload {
        name: "python3 -c pass",
        bin: PathBuf::from("/usr/bin/python3"),
        args: vec!["-c".into(), "pass".into()],
    });
    workloads.push(Workload {
        name: "sh -c loop of 300",
        bin: PathBuf::from("/bin/sh"),
        args: vec!["-c".into(), "i=0; while [ $i -lt 300 ]; do i=$((i+1)); done".into()],
    });
    if Path::new("/bin/busybox").exists() {
        workloads.push(Workload {
            name: "busybox sort (startup-heavy)",
            bin: PathBuf::from("/bin/busybox"),
            args: vec!["sort".into(), "-t:".into(), "-k1,1".into(), "/etc/passwd".into()],
        });
    }
    let tmp = std::env::temp_dir().join(format!("kiln-bench-{}", std::process::id()));
    println!(
        "{runs} rounds each (a short workload's round takes up to 7 samples of native, warm and qemu, \
         interleaved); median wall time in ms, ratio to native in parentheses; peak RSS in MiB"
    );
    println!(
        "{:<28} {:>8} {:>17} {:>17} {:>17} {:>8} {:>6} {:>23}",
        "workload", "native", "kiln cold", "kiln warm", "qemu-x86_64", "cached", "comp.", "RSS nat/cold/warm/qemu"
    );
    let mut rows = Vec::new();
    // KILN_BENCH_ONLY=text keeps the workloads whose name contains it, or one of several texts
    // separated by `|` (in the harness's order).
    if let Ok(only) = std::env::var("KILN_BENCH_ONLY") {
        workloads.retain(|w| only.split('|').any(|text| w.name.contains(text)));
    }
    for (index, w) in workloads.iter().enumerate() {
        let mut nat = Vec::new();
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        let mut qm = Vec::new();
        let warm_dir = tmp.join(format!("warm-{index}"));
        let _ = std::fs::remove_dir_all(&warm_dir);
        // Filled the way users get it: the run's work handed to the compile service, which
        // also forms the regions, waited for (the service leaves a second after); then a first
        // warm run, which hands the service the units it entered, laid out first in the packs.
        for _ in 0..2 {
            let mut fill = kiln_cmd(w, &warm_dir, "auto");
            fill.env("KILN_SERVE_IDLE", "1");
            time_once(fill);
            wait_for_service(&warm_dir);
        }
        let native_cmd = || {
            let mut c = Command::new(&w.bin);
            c.args(&w.args);
            c
        };
        let qemu_cmd = || {
            let mut c = Command::new("qemu-x86_64");
            c.arg(&w.bin).args(&w.args);
            c
        };
        // Short workloads take several interleaved samples a round (native, warm and qemu in
        // turn), so that a noisy moment of this shared machine moves one sample, not the row.
        let reps = samples_per_round(time_once(native_cmd()).0);
        for i in 0..runs * reps {
            // Each measured run comes right after an unmeasured run of the same command: the
            // waits for the service leave the CPU idle and the cold run's compiles fill the
            // caches with other data, and a first run after them pays for both (a warm static
            // hello world 3.0 ms right after 0.2 s of sleep against 2.4 ms back to back). Until
            // 2026-12-05 only native had its run first, which also brought its own code back
            // into the caches, and the warm run alone paid (`as` warm 5.3 ms after 0.3 s of
            // sleep and two native runs, 4.3 ms back to back; native 2.0 ms either way).
            time_once(native_cmd());
            nat.push(time_once(native_cmd()));
            time_once(kiln_cmd(w, &warm_dir, "auto"));
            warm.push(time_once(kiln_cmd(w, &warm_dir, "auto")));
            if qemu {
                time_once(qemu_cmd());
                qm.push(time_once(qemu_cmd()));
            }
            if i % reps != reps - 1 {
                continue;
            }
            let cold_dir = tmp.join(format!("cold-{i}"));
            let _ = std::fs::remove_dir_all(&cold_dir);
            cold.push(time_once(kiln_cmd(w, &cold_dir, "auto")));
            // The cold run's background compile must not steal the CPU from later measurements.
            settle(&cold_dir);
        }
        // What the last warm run executed, from the cache's usage log: the share of guest
        // instructions in cached code and the units it had to compile.
        let last = last_usage(&warm_dir);
        let row = Row {
            name: w.name,
            native: stat(&nat),
            cold: stat(&cold),
            warm: stat(&warm),
            qemu: (!qm.is_empty()).then(|| stat(&qm)),
            cached: last.as_ref().map(|v| {
                let c = v["insns_compiled"].as_f64().unwrap_or(0.0);
                let i = v["insns_interp"].as_f64().unwrap_or(0.0);
                c / (c + i).max(1.0)
            }),
            compiles: last.as_ref().and_then(|v| v["compiled"].as_u64()),
        };
        let f = |m: Option<(f64, u64)>| match m {
            None => "n/a".to_string(),
            Some((t, _)) => format!("{:.1} ({:.2}x)", t * 1e3, t / row.native.0),
        };
        let mb = |m: Option<(f64, u64)>| m.map_or("-".to_string(), |(_, k)| format!("{:.0}", k as f64 / 1024.0));
        println!(
            "{:<28} {:>8.1} {:>17} {:>17} {:>17} {:>7.2}% {:>6} {:>23}",
            w.name,
            row.native.0 * 1e3,
            f(Some(row.cold)),
            f(Some(row.warm)),
            f(row.qemu),
            row.cached.unwrap_or(0.0) * 100.0,
            row.compiles.map_or("?".to_string(), |c| c.to_string()),
            format!(
                "{}/{}/{}/{}",
                mb(Some(row.native)),
                mb(Some(row.cold)),
                mb(Some(row.warm)),
                mb(row.qemu)
            )
        );
        rows.push(row);
    }
    // A partial run (KILN_BENCH_ONLY) writes its chart beside the full one.
    let name = if std::env::var("KILN_BENCH_ONLY").is_ok() {
        "compare-partial.svg"
    } else {
        "compare.svg"
    };
    let svg = root().join("benches").join(name);
    match std::fs::write(&svg, plot(&rows, runs)) {
        Ok(()) => println!("plot written to {}", svg.display()),
        Err(e) => println!("cannot write {}: {e}", svg.display()),
    }
    if let Some(w) = workloads.iter().find(|w| w.name.starts_with("crc32")) {
        baseline_cost(w, &tmp);
    }
    for w in workloads
        .iter()
        .filter(|w| w.name.starts_with("sh -c loop") || w.name.starts_with("as "))
    {
        batch_rows(w, &tmp, qemu);
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Measured runs of each kind per round for a workload that runs natively for `native`
/// seconds: as many as fit in a quarter of a second natively, from 1 to 7.
fn samples_per_round(native: f64) -> usize {
    ((0.25 / native.max(1e-6)) as usize).clamp(1, 7)
}

/// Baseline tier cost: guest instructions per second of the interpreter on a compute loop.
fn baseline_cost(w: &Workload, tmp: &Path) {
    let mut c = kiln_cmd(w, &tmp.join("interp"), "interp");
    c.env("KILN_STATS", "json").stdout(Stdio::null()).stderr(Stdio::piped());
    let t = Instant::now();
    let out = c.output().expect("kiln interp");
    let dt = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    if let Some(line) = err.lines().find_map(|l| l.strip_prefix("kiln-stats ")) {
        let v: serde_json::Value = serde_json::from_str(line).expect("stats json");
        let insns = v["guest_insns_interp"].as_u64().unwrap_or(0);
        println!(
            "baseline tier on {}: {} guest instructions in {:.2} s = {:.2} ns per guest instruction",
            w.name,
            insns,
            dt,
            dt * 1e9 / insns.max(1) as f64
        );
    }
}

/// Waits until the cache's compile service has merged everything and formed the regions.
fn wait_for_service(cache: &Path) {
    let _ = Command::new(kiln_exe())
        .args(["serve", "--wait", "--cache-dir"])
        .arg(cache)
        .stdout(Stdio::null())
        .status();
}

/// Waits until the compile service has merged what a cold run handed it, then removes the
/// cache directory (its service then exits within a second) and waits (up to a minute) until
/// no Kiln process is left, so that nothing steals the CPU from later measurements.
fn settle(cache: &Path) {
    wait_for_service(cache);
    let _ = std::fs::remove_dir_all(cache);
    no_kiln_left();
}

fn no_kiln_left() {
    for _ in 0..600 {
        if kiln_processes() == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Kiln processes alive.
fn kiln_processes() -> usize {
    let kiln = std::fs::canonicalize(kiln_exe()).unwrap_or_default();
    std::fs::read_dir("/proc").map_or(0, |rd| {
        rd.flatten()
            .filter(|e| std::fs::read_link(e.path().join("exe")).is_ok_and(|p| p == kiln))
            .count()
    })
}

/// CPU time the whole machine has spent busy, in seconds (`/proc/stat`): it counts the
/// background processes Kiln starts, which are nobody's children.
fn machine_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    let busy: f64 = cpu
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    busy / 100.0
}

/// How one way of running a batch of short runs did.
struct BatchResult {
    /// Until the last run ended.
    runs_s: f64,
    /// Until the background work (compile and merge) was done too.
    settled_s: f64,
    cpu_s: f64,
    peak_kiln: usize,
}

/// Runs `n` copies of a workload, two at a time, with `cmd` building each; then `settle`.
fn run_batch(n: usize, cmd: &(dyn Fn() -> Command + Sync), settle: &dyn Fn()) -> BatchResult {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let peak = AtomicUsize::new(0);
    let cpu0 = machine_cpu_s();
    let t = Instant::now();
    let mut runs_s = 0.0;
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(kiln_processes(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        std::thread::scope(|runs| {
            for _ in 0..2 {
                runs.spawn(|| {
                    while next.fetch_add(1, Ordering::SeqCst) < n {
                        let mut c = cmd();
                        c.stdout(Stdio::null()).stderr(Stdio::null());
                        let _ = c.status();
                    }
                });
            }
        });
        runs_s = t.elapsed().as_secs_f64();
        settle();
        stop.store(true, Ordering::Relaxed);
    });
    BatchResult {
        runs_s,
        settled_s: t.elapsed().as_secs_f64(),
        cpu_s: machine_cpu_s() - cpu0,
        peak_kiln: peak.load(std::sync::atomic::Ordering::Relaxed),
    }
}

/// A batch of short runs on a fresh cache, two at a time (a test suite or a build): natively,
/// under Kiln with the compile service, under Kiln with one detached compile per run
/// (`KILN_SERVICE=0`, as before the service), and under qemu-x86_64. `KILN_BENCH_BATCH` sets
/// the number of runs (default 200).
fn batch_rows(w: &Workload, tmp: &Path, qemu: bool) {
    let n: usize = std::env::var("KILN_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let cache = tmp.join("batch");
    let native = || {
        let mut c = Command::new(&w.bin);
        c.args(&w.args);
        c
    };
    let kiln = |service: bool| {
        let cache = cache.clone();
        move || {
            let mut c = kiln_cmd(w, &cache, "auto");
            c.env("KILN_SERVICE", if service { "1" } else { "0" });
            c
        }
    };
    let qemu_cmd = || {
        let mut c = Command::new("qemu-x86_64");
        c.arg(&w.bin).args(&w.args);
        c
    };
    println!("\nbatch: {n} runs of {}, two at a time, on a fresh cache", w.name);
    println!(
        "{:<26} {:>12} {:>14} {:>10} {:>16}",
        "", "runs wall s", "settled wall s", "CPU s", "peak Kiln procs"
    );
    let mut rows: Vec<(&str, BatchResult)> = vec![("native", run_batch(n, &native, &|| {}))];
    let _ = std::fs::remove_dir_all(&cache);
    let service_done = || {
        let _ = Command::new(kiln_exe())
            .args(["serve", "--wait", "--cache-dir"])
            .arg(&cache)
            .stdout(Stdio::null())
            .status();
    };
    rows.push(("kiln, compile service", run_batch(n, &kiln(true), &service_done)));
    settle(&cache);
    rows.push(("kiln, detached compiles", run_batch(n, &kiln(false), &no_kiln_left)));
    settle(&cache);
    if qemu {
        rows.push(("qemu-x86_64", run_batch(n, &qemu_cmd, &|| {})));
    }
    for (name, r) in &rows {
        println!(
            "{name:<26} {:>12.2} {:>14.2} {:>10.2} {:>16}",
            r.runs_s, r.settled_s, r.cpu_s, r.peak_kiln
        );
    }
}
