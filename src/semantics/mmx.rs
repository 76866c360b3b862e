//! MMX-register instructions: MMX itself and the MMX forms of SSE, SSE2 and SSSE3, over
//! concrete state (both tiers run them through the slow path). The eight MMX registers are the
//! significands of the x87 physical registers: every MMX instruction but EMMS empties nothing,
//! sets the stack top to 0 and marks every register in use (EMMS sets the top to 0 and empties them); a write also sets the register's
//! sign and exponent bits to all ones. Most operations reuse the 128-bit vector code with the
//! 64-bit operands in the low halves.

use super::concrete::{load, store, Live};
use super::emitter::VOp;
use super::fp::{self, W};
use super::operand::{ea, gpr, read_gpr, write_gpr};
use super::table::{row, Family};
use super::vector::{lanes, pack, shift_by_count, vmovmsk, vop, vshuffle};
use crate::cpu::{fault, Cpu};
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};
use Mnemonic::*;

/// The operation of an MMX-family row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmxOp {
    Emms,
    /// movd/movq/movntq/movdq2q: `n` bytes to an MMX register, a general register or memory.
    Move(u8),
    Movq2dq,
    Pmovmskb,
    Pextrw,
    Maskmovq,
    /// cvtpi2ps/cvtpi2pd.
    IntsToFloats,
    /// cvt(t)ps2pi/cvt(t)pd2pi.
    FloatsToInts,
    /// Two-operand (and immediate) forms with an MMX destination (`compute`).
    Compute,
}

pub static FAMILY: Family<MmxOp> = Family::new(
    "mmx",
    &[
        row(&[Emms], MmxOp::Emms),
        row(&[Movd], MmxOp::Move(4)),
        row(&[Movq, Movntq, Movdq2q], MmxOp::Move(8)),
        row(&[Movq2dq], MmxOp::Movq2dq),
        row(&[Pmovmskb], MmxOp::Pmovmskb),
        row(&[Pextrw], MmxOp::Pextrw),
        row(&[Maskmovq], MmxOp::Maskmovq),
        row(&[Cvtpi2ps, Cvtpi2pd], MmxOp::IntsToFloats),
        row(&[Cvtps2pi, Cvttps2pi, Cvtpd2pi, Cvttpd2pi], MmxOp::FloatsToInts),
        // Lane-wise (`sse::vop_of`).
        row(
            &[
                Pxor, Por, Pand, Pandn, Paddb, Paddw, Paddd, Paddq, Psubb, Psubw, Psubd, Psubq, Pcmpeqb, Pcmpeqw,
                Pcmpeqd, Pcmpgtb, Pcmpgtw, Pcmpgtd, Pminub, Pmaxub, Pminsw, Pmaxsw, Paddusb, Paddusw, Psubusb, Psubusw,
                Paddsb, Paddsw, Psubsb, Psubsw, Pavgb, Pavgw, Pmullw, Packuswb, Packsswb, Packssdw,
            ],
            MmxOp::Compute,
        ),
        // Multiplying (`sse::mul_op`).
        row(&[Pmulhuw, Pmulhw, Pmaddwd, Pmuludq, Psadbw], MmxOp::Compute),
        // SSSE3 (`ext::ssse3_op`).
        row(
            &[
                Phaddw, Phaddd, Phsubw, Phsubd, Phaddsw, Phsubsw, Pmaddubsw, Pmulhrsw, Psignb, Psignw, Psignd, Pabsb,
                Pabsw, Pabsd,
            ],
            MmxOp::Compute,
        ),
        // Written here (`compute`).
        row(
            &[
                Punpcklbw, Punpcklwd, Punpckldq, Punpckhbw, Punpckhwd, Punpckhdq, Psllw, Pslld, Psllq, Psrlw, Psrld,
                Psrlq, Psraw, Psrad, Pshufw, Pshufb, Palignr, Pinsrw,
            ],
            MmxOp::Compute,
        ),
    ],
);

/// The forms whose only MMX operand is a source that may be memory (`mm/m64`): in their memory
/// form no operand is an MMX register.
const MMX_SOURCE_OR_MEMORY: [Code; 2] = [Code::Cvtpi2ps_xmm_mmm64, Code::Cvtpi2pd_xmm_mmm64];

/// Whether the instruction is an MMX-register form Kiln implements: EMMS, or a `FAMILY` row
/// in a form with an MMX operand. (Read from the operands, not from iced's opcode tables,
/// whose first use formats every opcode's description: a tenth of a short run.)
pub fn supported(ins: &Instruction) -> bool {
    match FAMILY.row(ins.mnemonic()) {
        Some(r) if r.handler == MmxOp::Emms => true,
        Some(_) => {
            (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Register && ins.op_register(i).is_mm())
                || MMX_SOURCE_OR_MEMORY.contains(&ins.code())
        }
        None => false,
    }
}

fn mm(r: Register) -> Option<usize> {
    r.is_mm().then(|| r as usize - Register::MM0 as usize)
}

/// Operand `n` as a 64-bit value (an MMX register's significand, the low half of an XMM
/// register, a general register or `bytes` of memory), zero-extended to a vector.
fn read(cpu: &mut Cpu, ins: &Instruction, n: u32, bytes: u8) -> Option<u128> {
    match ins.op_kind(n) {
        OpKind::Register => {
            let r = ins.op_register(n);
            if let Some(i) = mm(r) {
                Some(cpu.st[i][0] as u128)
            } else if r.is_xmm() {
                let x = r as usize - Register::XMM0 as usize;
                Some(if bytes == 16 {
                    cpu.xmm[x][0] as u128 | (cpu.xmm[x][1] as u128) << 64
                } else {
                    cpu.xmm[x][0] as u128
                })
            } else {
                Some(read_gpr(&mut Live::new(cpu), gpr(r)?) as u128)
            }
        }
        OpKind::Memory => {
            let a = ea(&mut Live::new(cpu), ins);
            Some(match bytes {
                16 => load(a, 8) as u128 | (load(a.wrapping_add(8), 8) as u128) << 64,
                n => load(a, n) as u128,
            })
        }
        _ => None,
    }
}

/// The switch to MMX operation: stack top 0, every register in use.
fn enter(cpu: &mut Cpu) {
    cpu.fpu_top = 0;
    cpu.fpu_tag = 0;
}

/// Writes an MMX register (after `enter`): the significand, with sign and exponent all ones.
fn set_mm(cpu: &mut Cpu, i: usize, v: u64) {
    cpu.st[i] = [v, 0xffff];
}

pub fn exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    run(cpu, ins).ok_or(fault::UNIMPLEMENTED)
}

fn run(cpu: &mut Cpu, ins: &Instruction) -> Option<()> {
    match FAMILY.row(ins.mnemonic())?.handler {
        MmxOp::Emms => {
            // Every register empty; the stack top is 0 here too.
            enter(cpu);
            cpu.fpu_tag = 0xffff;
        }
        MmxOp::Move(bytes) => move_op(cpu, ins, bytes)?,
        MmxOp::Movq2dq => {
            let v = read(cpu, ins, 1, 8)? as u64;
            enter(cpu);
            let x = ins.op_register(0) as usize - Register::XMM0 as usize;
            cpu.xmm[x] = [v, 0];
        }
        MmxOp::Pmovmskb => {
            let v = read(cpu, ins, 1, 8)?;
            to_gpr(cpu, ins, vmovmsk(v, 1))?;
        }
        MmxOp::Pextrw => {
            let v = read(cpu, ins, 1, 8)?;
            to_gpr(cpu, ins, (v >> ((imm8(ins, 2) & 3) * 16)) as u64 & 0xffff)?;
        }
        MmxOp::Maskmovq => {
            let v = read(cpu, ins, 1, 8)?;
            let mask = read(cpu, ins, 2, 8)?;
            masked_store(cpu, ins, v, mask, 8);
            enter(cpu);
        }
        MmxOp::IntsToFloats => ints_to_floats(cpu, ins)?,
        MmxOp::FloatsToInts => floats_to_ints(cpu, ins)?,
        MmxOp::Compute => two_operand(cpu, ins)?,
    }
    Some(())
}

/// Immediate operand `n` if it is an imm8, else 0.
fn imm8(ins: &Instruction, n: u32) -> u32 {
    if ins.op_count() > n && ins.op_kind(n) == OpKind::Immediate8 {
        ins.immediate(n) as u32
    } else {
        0
    }
}

/// pmovmskb/pextrw: a general register destination.
fn to_gpr(cpu: &mut Cpu, ins: &Instruction, r: u64) -> Option<()> {
    enter(cpu);
    write_gpr(&mut Live::new(cpu), gpr(ins.op_register(0))?, r);
    Some(())
}

/// movd/movq/movntq/movdq2q (`bytes` bytes).
fn move_op(cpu: &mut Cpu, ins: &Instruction, bytes: u8) -> Option<()> {
    let dst_mm = ins.op_kind(0) == OpKind::Register && ins.op_register(0).is_mm();
    let v = read(cpu, ins, 1, bytes)? as u64;
    // A store that faults leaves the x87 state as it was.
    match ins.op_kind(0) {
        OpKind::Register if dst_mm => {
            enter(cpu);
            set_mm(cpu, mm(ins.op_register(0))?, v);
        }
        OpKind::Register => {
            write_gpr(&mut Live::new(cpu), gpr(ins.op_register(0))?, v);
            enter(cpu);
        }
        _ => {
            let a = ea(&mut Live::new(cpu), ins);
            store(a, v, bytes);
            enter(cpu);
        }
    }
    Some(())
}

/// cvtpi2ps/cvtpi2pd: two 32-bit integers to floats in an XMM register.
fn ints_to_floats(cpu: &mut Cpu, ins: &Instruction) -> Option<()> {
    // A memory source does not switch to MMX operation.
    let from_mm = ins.op_kind(1) == OpKind::Register;
    let v = read(cpu, ins, 1, 8)? as u64;
    let x = ins.op_register(0) as usize - Register::XMM0 as usize;
    let mut mx = cpu.mxcsr;
    let (i0, i1) = (v as u32 as i32 as i64, (v >> 32) as u32 as i32 as i64);
    if ins.mnemonic() == Mnemonic::Cvtpi2ps {
        let lo = fp::from_int(W::S, i0, &mut mx) | fp::from_int(W::S, i1, &mut mx) << 32;
        cpu.xmm[x][0] = lo;
    } else {
        cpu.xmm[x] = [fp::from_int(W::D, i0, &mut mx), fp::from_int(W::D, i1, &mut mx)];
    }
    cpu.mxcsr = mx;
    if from_mm {
        enter(cpu);
    }
    Some(())
}

/// cvt(t)ps2pi/cvt(t)pd2pi: two floats to 32-bit integers in an MMX register.
fn floats_to_ints(cpu: &mut Cpu, ins: &Instruction) -> Option<()> {
    let m = ins.mnemonic();
    let w = if matches!(m, Cvtps2pi | Cvttps2pi) { W::S } else { W::D };
    let t = matches!(m, Cvttps2pi | Cvttpd2pi);
    let v = read(cpu, ins, 1, if w == W::S { 8 } else { 16 })?;
    let (f0, f1) = if w == W::S {
        (v as u64 & 0xffff_ffff, (v >> 32) as u64 & 0xffff_ffff)
    } else {
        (v as u64, (v >> 64) as u64)
    };
    let mut mx = cpu.mxcsr;
    let r = fp::to_int(w, f0, 32, t, &mut mx) & 0xffff_ffff | fp::to_int(w, f1, 32, t, &mut mx) << 32;
    cpu.mxcsr = mx;
    enter(cpu);
    set_mm(cpu, mm(ins.op_register(0))?, r);
    Some(())
}

/// Two-operand (and immediate) forms with an MMX destination.
fn two_operand(cpu: &mut Cpu, ins: &Instruction) -> Option<()> {
    let m = ins.mnemonic();
    let d = mm(ins.op_register(0))?;
    let a = cpu.st[d][0] as u128;
    let shift_by_imm = super::sse::lane_shift(m).is_some() && ins.op_kind(1) == OpKind::Immediate8;
    let b = if m == Mnemonic::Pinsrw {
        read(cpu, ins, 1, 2)? & 0xffff
    } else if shift_by_imm {
        ins.immediate(1) as u128
    } else {
        read(cpu, ins, 1, 8)?
    };
    let r = compute(m, a, b, imm8(ins, 2))?;
    enter(cpu);
    set_mm(cpu, d, r as u64);
    Some(())
}

/// The 64-bit result (in the low half) of a two-operand MMX form.
fn compute(m: Mnemonic, a: u128, b: u128, imm: u32) -> Option<u128> {
    let joined = a | b << 64;
    Some(match m {
        Packsswb | Packssdw | Packuswb => vop(super::sse::vop_of(m)?, joined, 0),
        Punpcklbw | Punpcklwd | Punpckldq | Punpckhbw | Punpckhwd | Punpckhdq => {
            let w = match m {
                Punpcklbw | Punpckhbw => 1,
                Punpcklwd | Punpckhwd => 2,
                _ => 4,
            };
            let (a, b) = if matches!(m, Punpckhbw | Punpckhwd | Punpckhdq) {
                (a >> 32, b >> 32)
            } else {
                (a, b)
            };
            let mut idx = [0u8; 16];
            for i in 0..4 / w {
                for k in 0..w {
                    idx[(2 * i * w + k) as usize] = (i * w + k) as u8;
                    idx[((2 * i + 1) * w + k) as usize] = (16 + i * w + k) as u8;
                }
            }
            vshuffle(a, b, idx) & u64::MAX as u128
        }
        Psllw | Pslld | Psllq | Psrlw | Psrld | Psrlq | Psraw | Psrad => {
            // The count is at most 64 bits (an MMX register, memory or an imm8).
            shift_by_count(super::sse::lane_shift(m)?, a, b as u64)
        }
        Pshufw => {
            let l = lanes(b, 2);
            let mut o = [0u64; 16];
            for (i, x) in o.iter_mut().enumerate().take(4) {
                *x = l[(imm >> (2 * i) & 3) as usize];
            }
            pack(&o, 2)
        }
        Pshufb => {
            let (x, y) = (a.to_le_bytes(), b.to_le_bytes());
            let mut o = [0u8; 16];
            for i in 0..8 {
                o[i] = if y[i] & 0x80 != 0 { 0 } else { x[(y[i] & 7) as usize] };
            }
            u128::from_le_bytes(o)
        }
        Palignr => {
            let sh = imm * 8;
            if sh >= 128 {
                0
            } else {
                (joined_ab(a, b) >> sh) & u64::MAX as u128
            }
        }
        Pinsrw => {
            let sh = (imm & 3) * 16;
            (a & !(0xffffu128 << sh)) | (b << sh)
        }
        Phaddw | Phaddd | Phsubw | Phsubd | Phaddsw | Phsubsw => super::ext::ssse3_op(m, joined, 0)?,
        _ => {
            if let Some(op) = super::sse::vop_of(m) {
                debug_assert!(!matches!(op, VOp::PackSs(_) | VOp::PackUs(_)));
                vop(op, a, b)
            } else if let Some(r) = super::sse::mul_op(m, a, b) {
                r
            } else {
                super::ext::ssse3_op(m, a, b)?
            }
        }
    })
}

/// PALIGNR's 128-bit concatenation: the destination above the source.
fn joined_ab(a: u128, b: u128) -> u128 {
    a << 64 | b
}

/// MASKMOVQ and MASKMOVDQU: the bytes of `v` whose mask byte has its top bit set go to
/// [rdi] (edi with an address-size prefix; fs or gs added when overridden).
pub(super) fn masked_store(cpu: &mut Cpu, ins: &Instruction, v: u128, mask: u128, bytes: u32) {
    let mut at = cpu.gpr[7];
    if ins.op_kind(0) == OpKind::MemorySegEDI {
        at &= 0xffff_ffff;
    }
    match ins.segment_prefix() {
        Register::FS => at = at.wrapping_add(cpu.fs_base),
        Register::GS => at = at.wrapping_add(cpu.gs_base),
        _ => {}
    }
    for i in 0..bytes {
        if mask >> (8 * i + 7) & 1 != 0 {
            store(at.wrapping_add(i as u64), (v >> (8 * i)) as u8 as u64, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::OpCodeOperandKind as K;

    /// `supported` reads the operands; iced's opcode tables say the same of every form.
    #[test]
    fn the_forms_with_an_mmx_operand_are_those_the_opcode_tables_name() {
        for code in Code::values().filter(|c| FAMILY.row(c.mnemonic()).is_some()) {
            let oc = code.op_code();
            let kinds: Vec<K> = (0..oc.op_count()).map(|i| oc.op_kind(i)).collect();
            let register = kinds.iter().any(|k| matches!(k, K::mm_reg | K::mm_rm));
            let only_memory = !register && kinds.contains(&K::mm_or_mem);
            assert_eq!(only_memory, MMX_SOURCE_OR_MEMORY.contains(&code), "{code:?}");
        }
    }
}
