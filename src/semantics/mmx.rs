//! MMX-register instructions: MMX itself and the MMX forms of SSE, SSE2 and SSSE3, over
//! concrete state (both tiers run them through the slow path). The eight MMX registers are the
//! significands of the x87 physical registers: every MMX instruction but EMMS empties nothing,
//! sets the stack top to 0 and marks every register in use (EMMS sets the top to 0 and empties them); a write also sets the register's
//! sign and exponent bits to all ones. Most operations reuse the 128-bit vector code with the
//! 64-bit operands in the low halves.

use super::concrete::{load, store, Live};
use super::emitter::{VOp, VShift};
use super::fp::{self, W};
use super::operand::{ea, gpr, read_gpr, write_gpr};
use super::vector::{lanes, pack, vmovmsk, vop, vshift, vshuffle};
use crate::cpu::{fault, Cpu};
use iced_x86::{Instruction, Mnemonic, OpCodeOperandKind as K, OpKind, Register};

/// Whether the instruction is an MMX-register form Kiln implements.
pub fn supported(ins: &Instruction) -> bool {
    use Mnemonic::*;
    let oc = ins.code().op_code();
    let mmx_form = (0..oc.op_count()).any(|i| matches!(oc.op_kind(i), K::mm_reg | K::mm_rm | K::mm_or_mem));
    if ins.mnemonic() == Emms {
        return true;
    }
    mmx_form
        && matches!(
            ins.mnemonic(),
            // Lane-wise (`sse::vop_of`).
            Pxor | Por
                | Pand
                | Pandn
                | Paddb
                | Paddw
                | Paddd
                | Paddq
                | Psubb
                | Psubw
                | Psubd
                | Psubq
                | Pcmpeqb
                | Pcmpeqw
                | Pcmpeqd
                | Pcmpgtb
                | Pcmpgtw
                | Pcmpgtd
                | Pminub
                | Pmaxub
                | Pminsw
                | Pmaxsw
                | Paddusb
                | Paddusw
                | Psubusb
                | Psubusw
                | Paddsb
                | Paddsw
                | Psubsb
                | Psubsw
                | Pavgb
                | Pavgw
                | Pmullw
                | Packuswb
                | Packsswb
                | Packssdw
                // Multiplying (`sse::mul_op`).
                | Pmulhuw
                | Pmulhw
                | Pmaddwd
                | Pmuludq
                | Psadbw
                // SSSE3 (`ext::ssse3_op`).
                | Phaddw
                | Phaddd
                | Phsubw
                | Phsubd
                | Phaddsw
                | Phsubsw
                | Pmaddubsw
                | Pmulhrsw
                | Psignb
                | Psignw
                | Psignd
                | Pabsb
                | Pabsw
                | Pabsd
                // Written here.
                | Movd
                | Movq
                    | Movntq
                    | Movq2dq
                    | Movdq2q
                    | Punpcklbw
                    | Punpcklwd
                    | Punpckldq
                    | Punpckhbw
                    | Punpckhwd
                    | Punpckhdq
                    | Psllw
                    | Pslld
                    | Psllq
                    | Psrlw
                    | Psrld
                    | Psrlq
                    | Psraw
                    | Psrad
                    | Pshufw
                    | Pshufb
                    | Palignr
                    | Pmovmskb
                    | Pextrw
                    | Pinsrw
                    | Maskmovq
                    | Cvtpi2ps
                    | Cvtpi2pd
                    | Cvtps2pi
                    | Cvttps2pi
                | Cvtpd2pi
                | Cvttpd2pi
        )
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
                16 => load(cpu, a, 8) as u128 | (load(cpu, a.wrapping_add(8), 8) as u128) << 64,
                n => load(cpu, a, n) as u128,
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
    use Mnemonic::*;
    let m = ins.mnemonic();
    if m == Emms {
        // Every register empty; the stack top is 0 here too.
        enter(cpu);
        cpu.fpu_tag = 0xffff;
        return Some(());
    }
    let imm = |n: u32| {
        if ins.op_count() > n && ins.op_kind(n) == OpKind::Immediate8 {
            ins.immediate(n) as u32
        } else {
            0
        }
    };
    let dst_mm = ins.op_kind(0) == OpKind::Register && ins.op_register(0).is_mm();
    match m {
        Movd | Movq | Movntq | Movdq2q => {
            let bytes = if m == Movd { 4 } else { 8 };
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
                    store(cpu, a, v, bytes);
                    enter(cpu);
                }
            }
        }
        Movq2dq => {
            let v = read(cpu, ins, 1, 8)? as u64;
            enter(cpu);
            let x = ins.op_register(0) as usize - Register::XMM0 as usize;
            cpu.xmm[x] = [v, 0];
        }
        Pmovmskb | Pextrw => {
            let v = read(cpu, ins, 1, 8)?;
            let r = if m == Pmovmskb {
                vmovmsk(v, 1)
            } else {
                (v >> ((imm(2) & 3) * 16)) as u64 & 0xffff
            };
            enter(cpu);
            write_gpr(&mut Live::new(cpu), gpr(ins.op_register(0))?, r);
        }
        Maskmovq => {
            let v = read(cpu, ins, 1, 8)?;
            let mask = read(cpu, ins, 2, 8)?;
            masked_store(cpu, ins, v, mask, 8);
            enter(cpu);
        }
        Cvtpi2ps | Cvtpi2pd => {
            // A memory source does not switch to MMX operation.
            let from_mm = ins.op_kind(1) == OpKind::Register;
            let v = read(cpu, ins, 1, 8)? as u64;
            let x = ins.op_register(0) as usize - Register::XMM0 as usize;
            let mut mx = cpu.mxcsr;
            let (i0, i1) = (v as u32 as i32 as i64, (v >> 32) as u32 as i32 as i64);
            if m == Cvtpi2ps {
                let lo = fp::from_int(W::S, i0, &mut mx) | fp::from_int(W::S, i1, &mut mx) << 32;
                cpu.xmm[x][0] = lo;
            } else {
                cpu.xmm[x] = [fp::from_int(W::D, i0, &mut mx), fp::from_int(W::D, i1, &mut mx)];
            }
            cpu.mxcsr = mx;
            if from_mm {
                enter(cpu);
            }
        }
        Cvtps2pi | Cvttps2pi | Cvtpd2pi | Cvttpd2pi => {
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
        }
        _ => {
            // Two-operand (and immediate) forms with an MMX destination.
            let d = mm(ins.op_register(0))?;
            let a = cpu.st[d][0] as u128;
            let b = match m {
                Pinsrw => read(cpu, ins, 1, 2)? & 0xffff,
                Psllw | Pslld | Psllq | Psrlw | Psrld | Psrlq | Psraw | Psrad
                    if ins.op_kind(1) == OpKind::Immediate8 =>
                {
                    ins.immediate(1) as u128
                }
                _ => read(cpu, ins, 1, 8)?,
            };
            let r = compute(m, a, b, imm(2))?;
            enter(cpu);
            set_mm(cpu, d, r as u64);
        }
    }
    Some(())
}

/// The 64-bit result (in the low half) of a two-operand MMX form.
fn compute(m: Mnemonic, a: u128, b: u128, imm: u32) -> Option<u128> {
    use Mnemonic::*;
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
            let (w, kind) = match m {
                Psllw => (2u8, 0),
                Pslld => (4, 0),
                Psllq => (8, 0),
                Psrlw => (2, 1),
                Psrld => (4, 1),
                Psrlq => (8, 1),
                Psraw => (2, 2),
                _ => (4, 2),
            };
            let bits = w as u128 * 8;
            match kind {
                2 => vshift(VShift::Sar(w), a, b.min(bits - 1) as u8),
                _ if b >= bits => 0,
                0 => vshift(VShift::Shl(w), a, b as u8),
                _ => vshift(VShift::Shr(w), a, b as u8),
            }
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
            store(cpu, at.wrapping_add(i as u64), (v >> (8 * i)) as u8 as u64, 1);
        }
    }
}
