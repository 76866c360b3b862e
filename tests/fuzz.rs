//! The instruction-level differential fuzzer, bounded and seeded: every implemented
//! instruction form against the real CPU in both tiers (the long run is in tools/README.md).

mod common;
use common::KILN;
use std::process::Command;

#[test]
fn random_instructions_match_the_cpu_in_both_tiers() {
    for seed in ["11", "12"] {
        let o = Command::new(KILN)
            .args(["fuzz", "--cases", "25000", "--seed", seed])
            .output()
            .expect("run kiln fuzz");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && out.contains(" 0 mismatches"),
            "kiln fuzz --seed {seed}:\n{out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        // Every extension is exercised.
        for feature in [
            "SSE2", "SSE3", "SSSE3", "SSE4_1", "SSE4_2", "BMI1", "BMI2", "MOVBE", "POPCNT", "LZCNT", "MMX", "FPU",
            "FPU387",
        ] {
            assert!(out.contains(&format!("  {feature} ")), "no {feature} cases:\n{out}");
        }
    }
}

/// The multi-instruction fuzzer, seeded: sequences with a branch and a loop, natively and in
/// the baseline tier, block by block compiled and as compiled regions (state carried across
/// instructions, blocks and iterations). Most sequences must be compared, and among them those
/// that fault natively, where the state the guest's handler sees must agree.
#[test]
fn random_sequences_with_branches_and_loops_match_the_cpu() {
    let o = Command::new(KILN)
        .args(["fuzz", "--sequences", "--cases", "4000", "--seed", "21"])
        .output()
        .expect("run kiln fuzz --sequences");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains(" 0 mismatches"),
        "kiln fuzz --sequences:\n{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let compared = number_after(&out, "--sequences: ");
    assert!(compared >= 2000, "too few sequences compared:\n{out}");
    let faulted = number_after(&out, " sequences compared in three ways (");
    assert!(faulted >= 400, "too few faulting sequences compared:\n{out}");
}

/// The number that follows `marker` in `out` (0 if none does).
fn number_after(out: &str, marker: &str) -> u64 {
    (out.split(marker).nth(1))
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
