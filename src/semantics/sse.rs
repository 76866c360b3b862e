//! SSE/SSE2 integer and move instructions. The common ones are written over `Emitter` (so the
//! JIT lowers them inline); the rest run over concrete state through the slow path.

use super::concrete::{load, Live};
use super::emitter::{Emitter, VOp, VShift};
use super::operand::{ea, gpr, read_gpr, write_gpr};
use super::vector::{lanes, lanewise, pack, sext};
use crate::cpu::{fault, Cpu};
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

pub(super) fn xmm_idx(r: Register) -> Option<usize> {
    if r.is_xmm() {
        Some(r as usize - Register::XMM0 as usize)
    } else {
        None
    }
}

fn is_xmm_op(ins: &Instruction, n: u32) -> bool {
    ins.op_kind(n) == OpKind::Register && ins.op_register(n).is_xmm()
}

/// Instructions written over `Emitter`.
pub fn generic_supported(ins: &Instruction) -> bool {
    use Mnemonic::*;
    let ops_ok = (0..ins.op_count()).all(|i| match ins.op_kind(i) {
        OpKind::Register => ins.op_register(i).is_xmm() || gpr(ins.op_register(i)).is_some(),
        OpKind::Memory | OpKind::Immediate8 => true,
        _ => false,
    });
    if !ops_ok {
        return false;
    }
    let m = ins.mnemonic();
    let vector_shift = matches!(m, Psllw | Pslld | Psllq | Psrlw | Psrld | Psrlq | Psraw | Psrad);
    if vector_shift {
        return ins.op_kind(1) == OpKind::Immediate8;
    }
    matches!(
        m,
        Movdqa
            | Movdqu
            | Movaps
            | Movups
            | Movapd
            | Movupd
            | Movntdq
            | Movntps
            | Movntpd
            | Movnti
            | Movd
            | Movq
            | Movss
            | Movlpd
            | Movhpd
            | Movlps
            | Movhps
            | Movlhps
            | Movhlps
            | Pxor
            | Por
            | Pand
            | Pandn
            | Xorps
            | Xorpd
            | Andps
            | Andpd
            | Orps
            | Orpd
            | Andnps
            | Andnpd
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
            | Punpcklbw
            | Punpcklwd
            | Punpckldq
            | Punpcklqdq
            | Punpckhbw
            | Punpckhwd
            | Punpckhdq
            | Punpckhqdq
            | Unpcklps
            | Unpckhps
            | Unpcklpd
            | Unpckhpd
            | Shufpd
            | Pshufd
            | Pshuflw
            | Pshufhw
            | Shufps
            | Pslldq
            | Psrldq
            | Pmovmskb
            | Movmskps
            | Movmskpd
    ) || matches!(ins.code(), Code::Movsd_xmm_xmmm64 | Code::Movsd_xmmm64_xmm)
}

/// Reads operand `n` as a vector; memory operands narrower than 16 bytes are zero-extended.
fn src<E: Emitter>(e: &mut E, ins: &Instruction, n: u32, bytes: u8) -> E::X {
    match ins.op_kind(n) {
        OpKind::Register => {
            let r = ins.op_register(n);
            match xmm_idx(r) {
                Some(x) => e.get_xmm(x),
                None => {
                    let g = gpr(r).expect("checked operand");
                    let v = read_gpr(e, g);
                    let z = e.imm(0);
                    e.x_from_halves(v, z)
                }
            }
        }
        _ => {
            let a = ea(e, ins);
            if bytes == 16 {
                e.load_x(a)
            } else {
                let v = e.load(a, bytes);
                let z = e.imm(0);
                e.x_from_halves(v, z)
            }
        }
    }
}

fn dst_xmm(ins: &Instruction) -> Option<usize> {
    if ins.op_kind(0) == OpKind::Register {
        xmm_idx(ins.op_register(0))
    } else {
        None
    }
}

/// Byte indices for an unpack of lanes of `w` bytes from the low or high half.
fn unpack_idx(w: u8, high: bool) -> [u8; 16] {
    let mut idx = [0u8; 16];
    let n = 16 / w as usize;
    let off = if high { 8 } else { 0 };
    for i in 0..n / 2 {
        for k in 0..w as usize {
            idx[2 * i * w as usize + k] = (off + i * w as usize + k) as u8;
            idx[(2 * i + 1) * w as usize + k] = (16 + off + i * w as usize + k) as u8;
        }
    }
    idx
}

/// Byte indices selecting lanes of `w` bytes: `sel[i]` is the source lane of result lane i.
fn lane_idx(w: u8, sel: &[u8]) -> [u8; 16] {
    let mut idx = [0u8; 16];
    for (i, &s) in sel.iter().enumerate() {
        for k in 0..w as usize {
            idx[i * w as usize + k] = s * w + k as u8;
        }
    }
    idx
}

pub fn exec<E: Emitter>(e: &mut E, ins: &Instruction) {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let d = dst_xmm(ins);
    let store_to_dst = |e: &mut E, v: E::X| match d {
        Some(x) => e.set_xmm(x, v),
        None => {
            let a = ea(e, ins);
            e.store_x(a, v)
        }
    };
    match m {
        Movdqa | Movdqu | Movaps | Movups | Movapd | Movupd | Movntdq | Movntps | Movntpd => {
            let v = src(e, ins, 1, 16);
            store_to_dst(e, v);
        }
        Movnti => {
            let size = ins.memory_size().size() as u8;
            let g = gpr(ins.op_register(1)).expect("checked operand");
            let v = read_gpr(e, g);
            let a = ea(e, ins);
            e.store(a, v, size);
        }
        Movd | Movq => {
            let sz: u8 = if m == Movd { 4 } else { 8 };
            let v = src(e, ins, 1, sz);
            let lo = e.x_half(v, false);
            let lo = super::flags::zext(e, lo, sz);
            match (ins.op_kind(0), d) {
                (OpKind::Register, Some(x)) => {
                    let z = e.imm(0);
                    let r = e.x_from_halves(lo, z);
                    e.set_xmm(x, r);
                }
                (OpKind::Register, None) => {
                    let g = gpr(ins.op_register(0)).expect("checked operand");
                    write_gpr(e, g, lo);
                }
                _ => {
                    let a = ea(e, ins);
                    e.store(a, lo, sz);
                }
            }
        }
        Movss | Movsd => {
            let sz: u8 = if m == Movss { 4 } else { 8 };
            match (ins.op_kind(0), ins.op_kind(1)) {
                (OpKind::Register, OpKind::Memory) => {
                    let v = src(e, ins, 1, sz);
                    e.set_xmm(d.expect("xmm destination"), v);
                }
                (OpKind::Register, _) => {
                    let x = d.expect("xmm destination");
                    let s = src(e, ins, 1, 16);
                    let old = e.get_xmm(x);
                    let r = if sz == 8 {
                        e.vshuffle(s, old, lane_idx(8, &[0, 3]))
                    } else {
                        e.vshuffle(s, old, lane_idx(4, &[0, 5, 6, 7]))
                    };
                    e.set_xmm(x, r);
                }
                _ => {
                    let s = src(e, ins, 1, 16);
                    let lo = e.x_half(s, false);
                    let a = ea(e, ins);
                    e.store(a, lo, sz);
                }
            }
        }
        Movlpd | Movlps | Movhpd | Movhps => {
            let high = matches!(m, Movhpd | Movhps);
            match d {
                Some(x) => {
                    let a = ea(e, ins);
                    let v = e.load(a, 8);
                    let old = e.get_xmm(x);
                    let keep = e.x_half(old, !high);
                    let r = if high {
                        e.x_from_halves(keep, v)
                    } else {
                        e.x_from_halves(v, keep)
                    };
                    e.set_xmm(x, r);
                }
                None => {
                    let s = xmm_idx(ins.op_register(1)).expect("xmm source");
                    let sv = e.get_xmm(s);
                    let v = e.x_half(sv, high);
                    let a = ea(e, ins);
                    e.store(a, v, 8);
                }
            }
        }
        Movlhps | Movhlps => {
            let x = d.expect("xmm destination");
            let s = e.get_xmm(xmm_idx(ins.op_register(1)).expect("xmm source"));
            let old = e.get_xmm(x);
            let r = if m == Movlhps {
                e.vshuffle(old, s, lane_idx(8, &[0, 2]))
            } else {
                e.vshuffle(s, old, lane_idx(8, &[1, 3]))
            };
            e.set_xmm(x, r);
        }
        Pmovmskb | Movmskps | Movmskpd => {
            let s = e.get_xmm(xmm_idx(ins.op_register(1)).expect("xmm source"));
            let lane = match m {
                Pmovmskb => 1,
                Movmskps => 4,
                _ => 8,
            };
            let r = e.vmovmsk(s, lane);
            write_gpr(e, gpr(ins.op_register(0)).expect("gpr destination"), r);
        }
        Pshufd | Pshuflw | Pshufhw => {
            let x = d.expect("xmm destination");
            let v = src(e, ins, 1, 16);
            let imm = ins.immediate(2) as u8;
            let f = |i: u8| (imm >> (2 * i)) & 3;
            let idx = match m {
                Pshufd => lane_idx(4, &[f(0), f(1), f(2), f(3)]),
                Pshuflw => lane_idx(2, &[f(0), f(1), f(2), f(3), 4, 5, 6, 7]),
                _ => lane_idx(2, &[0, 1, 2, 3, 4 + f(0), 4 + f(1), 4 + f(2), 4 + f(3)]),
            };
            let r = e.vshuffle(v, v, idx);
            e.set_xmm(x, r);
        }
        Shufpd => {
            let x = d.expect("xmm destination");
            let b = src(e, ins, 1, 16);
            let a = e.get_xmm(x);
            let imm = ins.immediate(2) as u8;
            let r = e.vshuffle(a, b, lane_idx(8, &[imm & 1, 2 + ((imm >> 1) & 1)]));
            e.set_xmm(x, r);
        }
        Shufps => {
            let x = d.expect("xmm destination");
            let b = src(e, ins, 1, 16);
            let a = e.get_xmm(x);
            let imm = ins.immediate(2) as u8;
            let f = |i: u8| (imm >> (2 * i)) & 3;
            let r = e.vshuffle(a, b, lane_idx(4, &[f(0), f(1), 4 + f(2), 4 + f(3)]));
            e.set_xmm(x, r);
        }
        Pslldq | Psrldq => {
            let x = d.expect("xmm destination");
            let n = ins.immediate(1).min(16) as u8;
            let v = e.get_xmm(x);
            let z = e.imm(0);
            let zero = e.x_from_halves(z, z);
            let mut idx = [16u8; 16];
            for (i, slot) in idx.iter_mut().enumerate() {
                let i = i as u8;
                if m == Psrldq {
                    if i + n < 16 {
                        *slot = i + n;
                    }
                } else if i >= n {
                    *slot = i - n;
                }
            }
            let r = e.vshuffle(v, zero, idx);
            e.set_xmm(x, r);
        }
        Psllw | Pslld | Psllq | Psrlw | Psrld | Psrlq | Psraw | Psrad => {
            let x = d.expect("xmm destination");
            let count = ins.immediate(1);
            let w = match m {
                Psllw | Psrlw | Psraw => 2u8,
                Pslld | Psrld | Psrad => 4,
                _ => 8,
            };
            let bits = w as u64 * 8;
            let v = e.get_xmm(x);
            let r = match m {
                Psraw | Psrad => e.vshift(VShift::Sar(w), v, count.min(bits - 1) as u8),
                _ if count >= bits => {
                    let z = e.imm(0);
                    e.x_from_halves(z, z)
                }
                Psllw | Pslld | Psllq => e.vshift(VShift::Shl(w), v, count as u8),
                _ => e.vshift(VShift::Shr(w), v, count as u8),
            };
            e.set_xmm(x, r);
        }
        Punpcklbw | Punpcklwd | Punpckldq | Punpcklqdq | Punpckhbw | Punpckhwd | Punpckhdq | Punpckhqdq | Unpcklps
        | Unpckhps | Unpcklpd | Unpckhpd => {
            let x = d.expect("xmm destination");
            let b = src(e, ins, 1, 16);
            let a = e.get_xmm(x);
            let (w, high) = match m {
                Punpcklbw => (1, false),
                Punpcklwd => (2, false),
                Punpckldq | Unpcklps => (4, false),
                Punpcklqdq | Unpcklpd => (8, false),
                Punpckhbw => (1, true),
                Punpckhwd => (2, true),
                Punpckhdq | Unpckhps => (4, true),
                _ => (8, true),
            };
            let r = e.vshuffle(a, b, unpack_idx(w, high));
            e.set_xmm(x, r);
        }
        _ => {
            let op = vop_of(m).expect("checked mnemonic");
            let x = d.expect("xmm destination");
            let b = src(e, ins, 1, 16);
            let a = e.get_xmm(x);
            let r = e.vop(op, a, b);
            e.set_xmm(x, r);
        }
    }
}

/// The lane-wise operation of a two-operand integer vector instruction.
pub(super) fn vop_of(m: Mnemonic) -> Option<VOp> {
    use Mnemonic::*;
    Some(match m {
        Pxor | Xorps | Xorpd => VOp::Xor,
        Por | Orps | Orpd => VOp::Or,
        Pand | Andps | Andpd => VOp::And,
        Pandn | Andnps | Andnpd => VOp::AndNot,
        Paddb => VOp::Add(1),
        Paddw => VOp::Add(2),
        Paddd => VOp::Add(4),
        Paddq => VOp::Add(8),
        Psubb => VOp::Sub(1),
        Psubw => VOp::Sub(2),
        Psubd => VOp::Sub(4),
        Psubq => VOp::Sub(8),
        Pcmpeqb => VOp::CmpEq(1),
        Pcmpeqw => VOp::CmpEq(2),
        Pcmpeqd => VOp::CmpEq(4),
        Pcmpgtb => VOp::CmpGt(1),
        Pcmpgtw => VOp::CmpGt(2),
        Pcmpgtd => VOp::CmpGt(4),
        Pminub => VOp::MinU(1),
        Pmaxub => VOp::MaxU(1),
        Pminsw => VOp::MinS(2),
        Pmaxsw => VOp::MaxS(2),
        Paddusb => VOp::AddSatU(1),
        Paddusw => VOp::AddSatU(2),
        Psubusb => VOp::SubSatU(1),
        Psubusw => VOp::SubSatU(2),
        Paddsb => VOp::AddSatS(1),
        Paddsw => VOp::AddSatS(2),
        Psubsb => VOp::SubSatS(1),
        Psubsw => VOp::SubSatS(2),
        Pavgb => VOp::AvgU(1),
        Pavgw => VOp::AvgU(2),
        Pmullw => VOp::MulLo(2),
        Packuswb => VOp::PackUs(2),
        Packsswb => VOp::PackSs(2),
        Packssdw => VOp::PackSs(4),
        _ => return None,
    })
}

/// Instructions that run over concrete state (through the slow path in compiled code).
pub fn slow_supported(ins: &Instruction) -> bool {
    use Mnemonic::*;
    matches!(
        ins.mnemonic(),
        Pmulhuw | Pmulhw | Pmaddwd | Pmuludq | Psadbw | Pextrw | Pinsrw | Maskmovdqu
    ) || (matches!(
        ins.mnemonic(),
        Psllw | Pslld | Psllq | Psrlw | Psrld | Psrlq | Psraw | Psrad
    ) && ins.op_kind(1) != OpKind::Immediate8)
}

pub(super) fn get(cpu: &Cpu, i: usize) -> u128 {
    cpu.xmm[i][0] as u128 | (cpu.xmm[i][1] as u128) << 64
}

pub(super) fn set(cpu: &mut Cpu, i: usize, v: u128) {
    cpu.xmm[i] = [v as u64, (v >> 64) as u64];
}

/// Operand `n` over concrete state: an XMM register, a general register or `bytes` of memory
/// (zero-extended).
pub(super) fn src_concrete(cpu: &mut Cpu, ins: &Instruction, n: u32, bytes: u8) -> Option<u128> {
    if is_xmm_op(ins, n) {
        return Some(get(cpu, xmm_idx(ins.op_register(n))?));
    }
    match ins.op_kind(n) {
        OpKind::Register => Some(read_gpr(&mut Live::new(cpu), gpr(ins.op_register(n))?) as u128),
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

pub fn slow_exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let d = dst_xmm(ins);
    match m {
        Maskmovdqu => {
            let v = get(cpu, xmm_idx(ins.op_register(1)).ok_or(fault::UNIMPLEMENTED)?);
            let mask = get(cpu, xmm_idx(ins.op_register(2)).ok_or(fault::UNIMPLEMENTED)?);
            super::mmx::masked_store(cpu, ins, v, mask, 16);
        }
        Pextrw => {
            let s = xmm_idx(ins.op_register(1)).ok_or(fault::UNIMPLEMENTED)?;
            let v = (get(cpu, s) >> ((ins.immediate(2) & 7) * 16)) as u64 & 0xffff;
            let g = gpr(ins.op_register(0)).ok_or(fault::UNIMPLEMENTED)?;
            write_gpr(&mut Live::new(cpu), g, v);
        }
        Pinsrw => {
            let x = d.ok_or(fault::UNIMPLEMENTED)?;
            let v = src_concrete(cpu, ins, 1, 2).ok_or(fault::UNIMPLEMENTED)? & 0xffff;
            let sh = (ins.immediate(2) & 7) * 16;
            let old = get(cpu, x);
            set(cpu, x, (old & !(0xffffu128 << sh)) | (v << sh));
        }
        Psllw | Pslld | Psllq | Psrlw | Psrld | Psrlq | Psraw | Psrad => {
            let x = d.ok_or(fault::UNIMPLEMENTED)?;
            let count = src_concrete(cpu, ins, 1, 16).ok_or(fault::UNIMPLEMENTED)? as u64;
            let v = get(cpu, x);
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
            let bits = w as u64 * 8;
            let r = match kind {
                2 => super::vector::vshift(VShift::Sar(w), v, count.min(bits - 1) as u8),
                _ if count >= bits => 0,
                0 => super::vector::vshift(VShift::Shl(w), v, count as u8),
                _ => super::vector::vshift(VShift::Shr(w), v, count as u8),
            };
            set(cpu, x, r);
        }
        _ => {
            let x = d.ok_or(fault::UNIMPLEMENTED)?;
            let a = get(cpu, x);
            let b = src_concrete(cpu, ins, 1, 16).ok_or(fault::UNIMPLEMENTED)?;
            let r = mul_op(m, a, b).ok_or(fault::UNIMPLEMENTED)?;
            set(cpu, x, r);
        }
    }
    Ok(())
}

/// The multiplying lane operations (and psadbw) over two vectors; a 64-bit operand in the low
/// half gives the MMX form's result in the low half.
pub(super) fn mul_op(m: Mnemonic, a: u128, b: u128) -> Option<u128> {
    use Mnemonic::*;
    Some(match m {
        Pmulhuw => lanewise(2, a, b, |x, y| (x * y) >> 16),
        Pmulhw => lanewise(2, a, b, |x, y| ((sext(x, 2) * sext(y, 2)) >> 16) as u64),
        Pmaddwd => {
            let (x, y) = (lanes(a, 2), lanes(b, 2));
            let mut o = [0u64; 16];
            for (i, oi) in o.iter_mut().enumerate().take(4) {
                let s = sext(x[2 * i], 2) * sext(y[2 * i], 2) + sext(x[2 * i + 1], 2) * sext(y[2 * i + 1], 2);
                *oi = s as u64;
            }
            pack(&o, 4)
        }
        Pmuludq => {
            let (x, y) = (lanes(a, 8), lanes(b, 8));
            let lo = (x[0] & 0xffff_ffff) * (y[0] & 0xffff_ffff);
            let hi = (x[1] & 0xffff_ffff) * (y[1] & 0xffff_ffff);
            lo as u128 | (hi as u128) << 64
        }
        Psadbw => {
            let (x, y) = (lanes(a, 1), lanes(b, 1));
            let s0: u64 = (0..8).map(|i| x[i].abs_diff(y[i])).sum();
            let s1: u64 = (8..16).map(|i| x[i].abs_diff(y[i])).sum();
            s0 as u128 | (s1 as u128) << 64
        }
        _ => return None,
    })
}
