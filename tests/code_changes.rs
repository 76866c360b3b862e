//! Translations shared by threads: a unit loaded, compiled or stored by one guest thread serves
//! every thread, and the statistics count every thread's work.

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

        let mut cold = kiln(&bin, "auto", &dir, &args, b"", &stats);
        take_stats(&mut cold);
        assert_same(&format!("threads_work [{label}] cold"), &want, &cold);
        let mut warm = kiln(&bin, "auto", &dir, &args, b"", &stats);
        let s = take_stats(&mut warm);
        assert_same(&format!("threads_work [{label}] warm"), &want, &warm);
        assert_eq!(stat(&s, "units_compiled"), 0, "[{label}] the warm run compiled: {s}");
        let (warm_total, diff) = (total_insns(&s), total_insns(&s).abs_diff(counted));
        assert!(
            diff * 100 < counted,
            "[{label}] warm run counted {warm_total} instructions, the baseline tier {counted}"
        );
    }
}
