//! The multi-instruction fuzzer (`kiln fuzz --sequences`): random straight-line runs of the
//! fuzzed forms put together with a conditional branch over one of them, a small loop around
//! another and a call to a function holding a third, so that state is carried across
//! instructions, blocks, loop iterations and calls, which is what regions change (a region
//! inlines the function). Each case runs natively and under Kiln in the baseline tier, block
//! by block in compiled code, and as one compiled region; the end state must agree.
//!
//! Layout: `A; cmp r14, imm; jcc over B; B; L: C; dec r15; jnz L; call F; mov qword [rsp-8],
//! 0; D; jmp out; F: E; ret; out:` (the `mov` clears the return address the call left below
//! the stack pointer, which differs between the sides). r14 and r15 (the branch input and the
//! loop count, 1 to 4) and rsp are left alone by the random instructions, and every memory
//! operand uses one base register, which none of them writes, pointing into the scratch
//! pages; E has no memory operand (it would meet its return address). A case where an
//! instruction may read a flag an earlier one left undefined is not made; a case that faults
//! natively is not compared.

use super::compare::{defined_flags, undefined_flags};
use super::gen::{constrain, encode, fuzzable, random_state, sample, Rng};
use super::{Case, Outcome, SCRATCH_LEN};
use iced_x86::{Code, Decoder, DecoderOptions, Instruction, InstructionInfoFactory, OpAccess, Register, RflagsBits};

/// A sequence case: the bytes to run, and the flags that may be undefined at its end.
pub(super) struct Sequence {
    pub case: Case,
    pub undefined: u32,
    pub text: String,
}

/// Instructions per straight-line part, at most.
const PART: u64 = 5;

/// Makes sequence case `n` of `seed` from the fuzzed forms.
pub(super) fn make_sequence(forms: &[(Code, String)], seed: u64, n: u64) -> Option<Sequence> {
    let mut rng = Rng(seed ^ n.wrapping_mul(0x9e6c_63d0_676a_9a99) ^ 0x5e9);
    let base = loop {
        let i = rng.below(16) as usize;
        if ![4, 14, 15].contains(&i) {
            break super::gen::gpr(8, i);
        }
    };
    let mut state = random_state(&mut rng, Some(base));
    state.gpr[15] = 1 + rng.below(4);
    let mut parts: Vec<Vec<Instruction>> = Vec::new();
    for k in 0..5 {
        let len = rng.below(PART + 1);
        let part: Vec<Instruction> = (0..len)
            .filter_map(|_| pick(forms, &mut rng, base, &mut state, k == 4))
            .collect();
        parts.push(part);
    }
    let undefined = undefined_at_end(&parts)?;
    let bytes = lay_out(&parts, rng.below(16) as u8, rng.next() as i8)?;
    let memory: Vec<u8> = (0..SCRATCH_LEN).map(|_| rng.next() as u8).collect();
    let text: Vec<String> = parts
        .iter()
        .map(|p| p.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("; "))
        .collect();
    let ins = parts.iter().flatten().next().copied().unwrap_or_default();
    Some(Sequence {
        case: Case {
            bytes,
            ins,
            state,
            memory,
        },
        undefined,
        text: text.join(" | "),
    })
}

/// A random fuzzed instruction that fits a sequence: on the straight path, touching neither
/// rsp, r14, r15 nor the memory base (except to address through it), nor the x87 stack, and
/// without rip-relative operands (the native side runs the bytes elsewhere); without memory
/// operands where `registers_only`.
fn pick(
    forms: &[(Code, String)],
    rng: &mut Rng,
    base: Register,
    state: &mut super::State,
    registers_only: bool,
) -> Option<Instruction> {
    for _ in 0..32 {
        let (code, feature) = &forms[rng.below(forms.len() as u64) as usize];
        let code = *code;
        // The x87 environment records instruction addresses, which differ between the sides.
        if feature.starts_with("FPU") || feature == "MMX" {
            continue;
        }
        let mut m = Some(base);
        let Some(ins) = sample(code, rng, &mut m) else { continue };
        let Some(bytes) = encode(&ins, 0) else { continue };
        let d = Decoder::with_ip(64, &bytes, 0, DecoderOptions::NONE).decode();
        let memory = (0..d.op_count()).any(|i| d.op_kind(i) == iced_x86::OpKind::Memory);
        if d.code() != code
            || !fuzzable(&d)
            || d.is_ip_rel_memory_operand()
            || !fits(&d, base)
            || registers_only && memory
        {
            continue;
        }
        if constrain(&d, state, rng) {
            return Some(d);
        }
    }
    None
}

fn fits(ins: &Instruction, base: Register) -> bool {
    let mut info = InstructionInfoFactory::new();
    let info = info.info(ins);
    let mem_ok = info
        .used_memory()
        .iter()
        .all(|m| m.base() == base && m.index() == Register::None);
    let regs_ok = info.used_registers().iter().all(|u| {
        let r = u.register().full_register();
        let reserved = [Register::RSP, Register::R14, Register::R15].contains(&r);
        let writes_base = r == base && !matches!(u.access(), OpAccess::Read);
        let x87 = u.register().is_st() || u.register().is_mm();
        !reserved && !writes_base && !x87
    });
    use iced_x86::Mnemonic::*;
    // Dot products: which NaN comes out where several are NaN differs between CPUs.
    let any_nan = matches!(ins.mnemonic(), Dpps | Dppd);
    // 16-bit double shifts by more than 16 are undefined, and a sequence cannot keep its
    // count in range as the single-instruction cases do.
    let wide_count = matches!(ins.mnemonic(), Shld | Shrd) && ins.op1_register().size() == 2;
    // A bit string's offset in a register reaches as far from the base as the register says,
    // and the instructions before it in a sequence move it out of the scratch pages (natively
    // then onto whatever the fuzzer's own process maps there, or a fault); the single-
    // instruction cases keep it small.
    let far_bit = matches!(ins.mnemonic(), Bt | Bts | Btr | Btc)
        && ins.op0_kind() == iced_x86::OpKind::Memory
        && ins.op1_kind() == iced_x86::OpKind::Register;
    mem_ok && regs_ok && !ins.is_string_instruction() && !any_nan && !wide_count && !far_bit
}

/// The arithmetic flags that may be undefined at the end (iced's `RflagsBits`), or None when
/// some instruction may read one that is undefined where it runs. B may be skipped and the
/// loop body runs at least once, so a flag counts as undefined if it is on any path.
fn undefined_at_end(parts: &[Vec<Instruction>]) -> Option<u32> {
    let run = |part: &[Instruction], mut undef: u32| -> Option<u32> {
        for ins in part {
            if ins.rflags_read() & undef != 0 {
                return None;
            }
            // A shift or rotate by cl writes no flag when the count is zero.
            let by_cl = (0..ins.op_count())
                .any(|i| ins.op_kind(i) == iced_x86::OpKind::Register && ins.op_register(i) == Register::CL);
            let written = if by_cl { 0 } else { ins.rflags_modified() };
            undef = (undef & !written) | undefined_flags(ins);
        }
        Some(undef)
    };
    let after_a = run(&parts[0], 0)?;
    // cmp writes every flag.
    let after_b = run(&parts[1], 0)?;
    // dec writes all but CF.
    let dec = |u: u32| u & RflagsBits::CF;
    let once = run(&parts[2], after_b)?;
    let twice = run(&parts[2], after_b | dec(once))?;
    let loop_out = dec(once | twice);
    let _ = after_a;
    let after_call = run(&parts[4], loop_out)?;
    run(&parts[3], after_call)
}

/// The bytes: `A; cmp r14, imm8; jcc over B; B; L: C; dec r15; jnz L; call F; mov qword
/// [rsp-8], 0; D; jmp out; F: E; ret; out:`.
fn lay_out(parts: &[Vec<Instruction>], cc: u8, imm: i8) -> Option<Vec<u8>> {
    let bytes = |part: &[Instruction]| -> Option<Vec<u8>> {
        part.iter().try_fold(Vec::new(), |mut v, i| {
            v.extend(encode(i, 0)?);
            Some(v)
        })
    };
    let [a, b, c, d, e] = [0, 1, 2, 3, 4].map(|k| bytes(&parts[k]));
    let (a, b, c, d, e) = (a?, b?, c?, d?, e?);
    let mut out = a;
    out.extend([0x49, 0x83, 0xfe, imm as u8]); // cmp r14, imm8
    out.extend([0x0f, 0x80 | (cc & 15)]); // jcc rel32 over B
    out.extend((b.len() as i32).to_le_bytes());
    out.extend(b);
    let body = out.len();
    out.extend(c);
    out.extend([0x49, 0xff, 0xcf]); // dec r15
    let back = body as i64 - (out.len() as i64 + 6);
    out.extend([0x0f, 0x85]); // jnz rel32 back to the body
    out.extend((back as i32).to_le_bytes());
    let clear = [0x48, 0xc7, 0x44, 0x24, 0xf8, 0, 0, 0, 0]; // mov qword [rsp-8], 0
    out.push(0xe8); // call rel32 to F, after D and the jump over F
    out.extend(((clear.len() + d.len() + 5) as i32).to_le_bytes());
    out.extend(clear);
    out.extend(d);
    out.push(0xe9); // jmp rel32 over F
    out.extend(((e.len() + 1) as i32).to_le_bytes());
    out.extend(e);
    out.push(0xc3); // ret
    Some(out)
}

/// Compares two outcomes of a sequence: the signal, every general register, the flags not
/// left undefined, MXCSR, the XMM registers and the scratch memory.
pub(super) fn differ(undefined: u32, want: &Outcome, got: &Outcome) -> Option<String> {
    if want.signal != got.signal {
        return Some(format!("signal native {} kiln {}", want.signal, got.signal));
    }
    if want.signal != 0 {
        return differ_at_fault(want, got);
    }
    let (w, g) = (&want.state, &got.state);
    if let Some(i) = (0..16).find(|&i| w.gpr[i] != g.gpr[i]) {
        return Some(format!("gpr{i} native {:#x} kiln {:#x}", w.gpr[i], g.gpr[i]));
    }
    let mask = defined_flags(undefined);
    if w.rflags & mask != g.rflags & mask {
        return Some(format!(
            "rflags native {:#x} kiln {:#x}",
            w.rflags & mask,
            g.rflags & mask
        ));
    }
    if w.mxcsr != g.mxcsr {
        return Some(format!("mxcsr native {:#x} kiln {:#x}", w.mxcsr, g.mxcsr));
    }
    if let Some(i) = (0..16).find(|&i| w.xmm[i] != g.xmm[i]) {
        return Some(format!("xmm{i} native {:x?} kiln {:x?}", w.xmm[i], g.xmm[i]));
    }
    if want.memory != got.memory {
        let at = want
            .memory
            .iter()
            .zip(&got.memory)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Some(format!("memory differs at scratch offset {at:#x}"));
    }
    None
}

/// Where a case faulted: the state where it faulted must agree, but for the flags (an
/// earlier instruction may have left them undefined), MXCSR's exception flags on a SIMD
/// floating-point exception (which the CPU reports for the unmasked exception in ways Kiln
/// does not model yet) and the return address a fault inside the called function leaves on
/// the stack (a code address, which differs between the sides).
fn differ_at_fault(want: &Outcome, got: &Outcome) -> Option<String> {
    let (mut want, mut got) = (want.clone(), got.clone());
    for o in [&mut want, &mut got] {
        o.state.rflags = 0;
        if o.signal == libc::SIGFPE {
            o.state.mxcsr &= !0x3f;
        }
        o.signal = 0;
        let at = o.state.gpr[4].wrapping_sub(super::SCRATCH) as usize;
        if let Some(slot) = o.memory.get_mut(at..at + 8) {
            slot.fill(0);
        }
    }
    differ(0, &want, &got)
}
