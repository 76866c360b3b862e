//! Benchmark harness: each workload natively, under Kiln cold (empty cache) and warm, and under
//! qemu-x86_64 when installed, all in one run; prints median wall times and ratios to native,
//! plus the baseline tier's cost per guest instruction.
//!
//! `cargo bench --bench compare` (set `KILN_BENCH_RUNS` to change the repetitions, default 5).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

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
        .status()
        .expect("gcc");
    assert!(st.success(), "gcc failed on {src}");
    out
}

fn time_once(mut cmd: Command) -> f64 {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let t = Instant::now();
    let st = cmd.status().expect("spawn");
    let dt = t.elapsed().as_secs_f64();
    assert!(st.success() || st.code().is_some(), "benchmark command died: {st:?}");
    dt
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v[v.len() / 2]
}

fn kiln_cmd(w: &Workload, cache: &Path, tier: &str) -> Command {
    let mut c = Command::new(KILN);
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
    println!("{runs} runs each; median wall time in ms; ratio to native in parentheses");
    println!(
        "{:<30} {:>10} {:>18} {:>18} {:>18}",
        "workload", "native", "kiln cold", "kiln warm", "qemu-x86_64"
    );
    for w in &workloads {
        let mut nat = Vec::new();
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        let mut qm = Vec::new();
        let warm_dir = tmp.join(format!("warm-{}", w.name.len()));
        let _ = std::fs::remove_dir_all(&warm_dir);
        let mut fill = kiln_cmd(w, &warm_dir, "auto");
        fill.env("KILN_CACHE_SYNC", "1");
        time_once(fill);
        for i in 0..runs {
            let mut c = Command::new(&w.bin);
            c.args(&w.args);
            nat.push(time_once(c));
            let cold_dir = tmp.join(format!("cold-{i}"));
            let _ = std::fs::remove_dir_all(&cold_dir);
            cold.push(time_once(kiln_cmd(w, &cold_dir, "auto")));
            // The cold run's detached compile must not steal the CPU from later measurements.
            std::thread::sleep(std::time::Duration::from_millis(50));
            settle(&cold_dir);
            let _ = std::fs::remove_dir_all(&cold_dir);
            warm.push(time_once(kiln_cmd(w, &warm_dir, "auto")));
            if qemu {
                let mut c = Command::new("qemu-x86_64");
                c.arg(&w.bin).args(&w.args);
                qm.push(time_once(c));
            }
        }
        let n = median(nat);
        let f = |v: Vec<f64>| {
            if v.is_empty() {
                "n/a".to_string()
            } else {
                let m = median(v);
                format!("{:.1} ({:.2}x)", m * 1e3, m / n)
            }
        };
        println!(
            "{:<30} {:>10.1} {:>18} {:>18} {:>18}",
            w.name,
            n * 1e3,
            f(cold),
            f(warm),
            f(qm)
        );
    }
    // Baseline tier cost: guest instructions per second of the interpreter on the compute loop.
    let w = &workloads[1];
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
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Waits (up to a minute) until no Kiln process is left (a cold run's detached compile and its
/// merge), so they do not steal the CPU from later measurements.
fn settle(_cache: &Path) {
    for _ in 0..600 {
        let alive = Command::new("pgrep")
            .args(["-f", &format!("^{KILN} ")])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty());
        if !alive {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
