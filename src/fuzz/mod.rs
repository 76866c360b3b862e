//! The instruction-level differential fuzzer (`kiln fuzz`): random instructions of every form
//! Kiln implements, encoded with iced-x86, each run on random register, flag, XMM and MXCSR
//! state with memory operands in a scratch page, natively (in a forked child) and under Kiln's
//! baseline tier and JIT; every register, the defined flags, MXCSR, the scratch memory and any
//! fault must agree. A mismatch prints a one-line reproducer (`kiln fuzz --seed S --case N`).

mod compare;
mod coverage;

pub use coverage::coverage;
mod gen;
mod kiln;
mod native;
mod sequence;

use compare::{differ, host_approximations_match};
use gen::{forms, make_case, operand_addr};
use kiln::Kiln;
use native::run_native;

use iced_x86::{Instruction, Mnemonic};
use std::collections::BTreeMap;

/// The scratch pages memory operands point into: the same address natively and in the guest.
const SCRATCH: u64 = 0x3100_0000;
const SCRATCH_LEN: usize = 3 * 4096;
/// Guest address of the instruction under test.
const CODE: u64 = 0x3200_0000;
/// Guest address where Kiln's side moves x87/SSE state in and out (FXSAVE layout).
const FX_AREA: u64 = CODE + 0x800;

#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct State {
    gpr: [u64; 16],
    rflags: u64,
    mxcsr: u64,
    xmm: [[u64; 2]; 16],
    /// x87 control and status words, abridged tag word, and ST(0)..ST(7) as FXSAVE stores them
    /// (64-bit significand, then sign and exponent).
    fcw: u64,
    fsw: u64,
    ftw: u64,
    st: [[u64; 2]; 8],
}

/// The FXSAVE image of a state's x87 and SSE parts.
fn fx_image(s: &State) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[0..2].copy_from_slice(&(s.fcw as u16).to_le_bytes());
    b[2..4].copy_from_slice(&(s.fsw as u16).to_le_bytes());
    b[4] = s.ftw as u8;
    b[24..28].copy_from_slice(&(s.mxcsr as u32).to_le_bytes());
    b[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
    for i in 0..8 {
        b[32 + 16 * i..40 + 16 * i].copy_from_slice(&s.st[i][0].to_le_bytes());
        b[40 + 16 * i..42 + 16 * i].copy_from_slice(&(s.st[i][1] as u16).to_le_bytes());
    }
    for i in 0..16 {
        b[160 + 16 * i..168 + 16 * i].copy_from_slice(&s.xmm[i][0].to_le_bytes());
        b[168 + 16 * i..176 + 16 * i].copy_from_slice(&s.xmm[i][1].to_le_bytes());
    }
    b
}

/// Reads the x87 and SSE parts of a state back from an FXSAVE image.
fn from_fx_image(b: &[u8], s: &mut State) {
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u64_at = |o: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(x)
    };
    s.fcw = u16_at(0);
    s.fsw = u16_at(2);
    s.ftw = b[4] as u64;
    s.mxcsr = u64_at(24) & 0xffff_ffff;
    for i in 0..8 {
        s.st[i] = [u64_at(32 + 16 * i), u16_at(40 + 16 * i)];
    }
    for i in 0..16 {
        s.xmm[i] = [u64_at(160 + 16 * i), u64_at(168 + 16 * i)];
    }
}

mod off {
    use super::State;
    use std::mem::offset_of;
    pub fn gpr(i: usize) -> i64 {
        (offset_of!(State, gpr) + 8 * i) as i64
    }
    pub const RFLAGS: i64 = offset_of!(State, rflags) as i64;
}

/// One case: the instruction's bytes and the state it starts from.
#[derive(Clone)]
struct Case {
    bytes: Vec<u8>,
    ins: Instruction,
    state: State,
    memory: Vec<u8>,
}

/// What a run produced.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Outcome {
    state: State,
    memory: Vec<u8>,
    /// Signal raised (0: none).
    signal: i32,
}

/// The forms to fuzz: every implemented one (of one CPUID feature, if named), less those whose
/// host approximations differ from Kiln's.
fn fuzzed_forms(feature: Option<&str>) -> anyhow::Result<Vec<(iced_x86::Code, String)>> {
    let mut forms = forms();
    if !host_approximations_match() {
        println!("kiln fuzz: this CPU's rcpps/rsqrtps approximations differ from Kiln's tables (AMD family 17h+): not compared");
        forms.retain(|(c, _)| {
            !matches!(
                c.mnemonic(),
                Mnemonic::Rcpps | Mnemonic::Rcpss | Mnemonic::Rsqrtps | Mnemonic::Rsqrtss
            )
        });
    }
    if let Some(f) = feature {
        forms.retain(|(_, name)| name.eq_ignore_ascii_case(f));
    }
    anyhow::ensure!(!forms.is_empty(), "no instruction forms to fuzz");
    Ok(forms)
}

/// `kiln fuzz`: returns the number of mismatches.
pub fn run(cases: u64, seed: u64, only: Option<u64>, batch: usize, feature: Option<&str>) -> anyhow::Result<u64> {
    let forms = fuzzed_forms(feature)?;
    let mut kiln = Kiln::new()?;
    let mut per_feature: BTreeMap<String, u64> = BTreeMap::new();
    let mut mismatches = 0u64;
    let mut done = 0u64;
    let range: Vec<u64> = match only {
        Some(n) => vec![n],
        None => (0..cases).collect(),
    };
    let started = std::time::Instant::now();
    for chunk in range.chunks(batch.max(1)) {
        let made: Vec<(u64, Case, String)> = chunk
            .iter()
            .filter_map(|&n| make_case(&forms, seed, n).map(|(c, f)| (n, c, f)))
            .collect();
        let list: Vec<Case> = made.iter().map(|(_, c, _)| c.clone()).collect();
        let Some(native) = run_native(&list) else {
            anyhow::bail!("the native child died on the batch starting at case {}", chunk[0]);
        };
        for ((n, c, feat), want) in made.iter().zip(native) {
            for compiled in [false, true] {
                let tier = if compiled { "jit" } else { "interp" };
                let got = kiln.run(c, compiled);
                let problem = match &got {
                    Ok(g) => differ(&c.ins, &want, g),
                    Err(e) => Some(e.clone()),
                };
                if let Some(p) = problem {
                    mismatches += 1;
                    let hex: Vec<String> = c.bytes.iter().map(|b| format!("{b:02x}")).collect();
                    println!(
                        "MISMATCH [{tier}] '{}' ({}) {p}; reproduce: kiln fuzz --seed {seed} --case {n}{}",
                        c.ins,
                        hex.join(" "),
                        feature.map(|f| format!(" --feature {f}")).unwrap_or_default()
                    );
                    if only.is_some() {
                        println!("  state: {:x?}", c.state);
                        println!("  want:  {:x?}", want.state);
                        if let Ok(g) = &got {
                            println!("  got:   {:x?}", g.state);
                        }
                        if c.ins.op_kinds().any(|k| k == iced_x86::OpKind::Memory) {
                            let a = operand_addr(&c.ins, &c.state.gpr);
                            let o = a.wrapping_sub(SCRATCH) as usize;
                            if o + 16 <= c.memory.len() {
                                println!("  memory at {a:#x}: {:02x?}", &c.memory[o..o + 16]);
                            }
                        }
                    }
                }
            }
            *per_feature.entry(feat.clone()).or_default() += 1;
            done += 1;
        }
    }
    println!(
        "kiln fuzz: {done} cases ({} forms, seed {seed}) in both tiers, {mismatches} mismatches, {:.1} s",
        forms.len(),
        started.elapsed().as_secs_f64()
    );
    for (f, n) in &per_feature {
        println!("  {f:<12} {n}");
    }
    Ok(mismatches)
}

/// `kiln fuzz --sequences`: sequences of instructions with a branch and a loop
/// (`sequence.rs`), each run natively and in Kiln's baseline tier, block by block compiled and
/// as compiled regions; returns the number of mismatches.
pub fn run_sequences(
    cases: u64,
    seed: u64,
    only: Option<u64>,
    batch: usize,
    feature: Option<&str>,
) -> anyhow::Result<u64> {
    let forms = fuzzed_forms(feature)?;
    let mut kiln = Kiln::new()?;
    let (mut compared, mut faulted, mut mismatches) = (0u64, 0u64, 0u64);
    let range: Vec<u64> = match only {
        Some(n) => vec![n],
        None => (0..cases).collect(),
    };
    let started = std::time::Instant::now();
    for chunk in range.chunks(batch.max(1)) {
        let made: Vec<(u64, sequence::Sequence)> = chunk
            .iter()
            .filter_map(|&n| Some((n, sequence::make_sequence(&forms, seed, n)?)))
            .collect();
        let list: Vec<Case> = made.iter().map(|(_, s)| s.case.clone()).collect();
        let Some(native) = run_native(&list) else {
            anyhow::bail!("the native child died on the batch starting at case {}", chunk[0]);
        };
        for ((n, s), want) in made.iter().zip(native) {
            faulted += u64::from(want.signal != 0);
            for mode in [kiln::Mode::Interp, kiln::Mode::Blocks, kiln::Mode::Region] {
                let problem = match kiln.run_sequence(&s.case, mode) {
                    Ok(got) => sequence::differ(s.undefined, &want, &got),
                    Err(e) => Some(e),
                };
                if let Some(p) = problem {
                    mismatches += 1;
                    println!(
                        "MISMATCH [{mode:?}] {} : {p}; reproduce: kiln fuzz --sequences --seed {seed} --case {n}",
                        s.text
                    );
                }
            }
            compared += 1;
        }
    }
    println!(
        "kiln fuzz --sequences: {compared} sequences compared in three ways ({faulted} of them faulted natively), seed {seed}, {mismatches} mismatches, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(mismatches)
}
