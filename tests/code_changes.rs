//! Translations shared by threads (a unit loaded, compiled or stored by one guest thread serves
//! every thread, and the statistics count every thread's work) and code that is replaced while
//! the program runs (libraries closed and others opened). The generated-code cases are guest
//! programs in the corpus (`smc.c`, `smc_threads.c`); real JIT compilers are in
//! `jit_programs.rs`.

mod common;
use common::*;

fn total_insns(s: &serde_json::Value) -> u64 {
    stat(s, "guest_insns_interp") + stat(s, "guest_insns_compiled")
}

#[test]
fn threads_share_the_cache_and_every_thread_is_counted() {
    const ROUNDS: u64 = 300;
    for (label, cc, opt) in [("gcc-O2", "gcc", "-O2"), ("musl-O2", "musl-gcc", "-O2")] {
        let bin = build("threads_work.c", label, cc, opt);
        let args = [ROUNDS.to_string()];
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let want = native(&bin, &args, b"");
        let cache = tempfile::tempdir().expect("tempdir");
        let dir = cache.path().join("kiln");
        let stats = [("KILN_STATS", "json")];

        let mut interp = kiln(&bin, "interp", &dir, &args, b"", &stats);
        let counted = total_insns(&take_stats(&mut interp));
        assert_same(&format!("threads_work [{label}] --tier interp"), &want, &interp);
        // The workers alone run ROUNDS * (1+2+3+4) * 256 inner iterations of at least eight
        // instructions each.
        let floor = ROUNDS * 10 * 256 * 8;
        assert!(
            counted > floor,
            "[{label}] {counted} instructions counted, the workers alone run over {floor}"
        );

        // Which paths run (a lock found taken, a thread that waits) depends on how the
        // threads interleave: two runs fill the cache, and the warm run may still meet a few
        // blocks neither ran, but the cache serves everything else.
        for run in ["cold", "second"] {
            let mut filling = kiln(&bin, "auto", &dir, &args, b"", &stats);
            take_stats(&mut filling);
            assert_same(&format!("threads_work [{label}] {run}"), &want, &filling);
        }
        let mut warm = kiln(&bin, "auto", &dir, &args, b"", &stats);
        let s = take_stats(&mut warm);
        assert_same(&format!("threads_work [{label}] warm"), &want, &warm);
        let served = stat(&s, "units_loaded") + stat(&s, "units_prefilled");
        assert!(
            stat(&s, "units_compiled") * 100 <= served,
            "[{label}] the warm run compiled over 1% of what the cache served: {s}"
        );
        let (warm_total, diff) = (total_insns(&s), total_insns(&s).abs_diff(counted));
        assert!(
            diff * 100 < counted,
            "[{label}] warm run counted {warm_total} instructions, the baseline tier {counted}"
        );
    }
}

/// Builds a shared library whose `value(i)` returns `i * mul + add`.
fn library(dir: &std::path::Path, name: &str, mul: i32, add: i32) -> std::path::PathBuf {
    let src = dir.join(format!("{name}.c"));
    let so = dir.join(format!("{name}.so"));
    let code = format!("int value(int i) {{ return i * {mul} + {add}; }}\n");
    std::fs::write(&src, code).expect("write library source");
    let st = std::process::Command::new("gcc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(st.success(), "gcc -shared failed for {name}");
    so
}

#[test]
fn dlclose_then_dlopen_of_another_library() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (library(dir.path(), "liba", 3, 7), library(dir.path(), "libb", 5, -2));
    let bin = build_dynamic("dlopen_swap.c");
    let args = [a.to_str().expect("path"), b.to_str().expect("path")];
    let want = native(&bin, &args, b"");
    assert_eq!(want.status, Some(0), "natively: {}", show(&want));
    let cache = dir.path().join("kiln");
    for (tier, run) in [("interp", ""), ("jit", ""), ("auto", " cold"), ("auto", " warm")] {
        let got = kiln(&bin, tier, &cache, &args, b"", &[]);
        assert_same(&format!("dlopen_swap --tier {tier}{run}"), &want, &got);
    }
}
