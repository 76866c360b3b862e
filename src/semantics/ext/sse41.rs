//! SSE4.1 over concrete state: pmuldq, sign/zero extension, blends, inserts and extracts,
//! phminposuw, dot products, mpsadbw, rounding and ptest. Its lane-wise forms (min and max,
//! pmulld, packusdw, pcmpeqq, and SSE4.2's pcmpgtq) are `sse`'s, written over `Emitter`.

use super::super::concrete::{store, Live};
use super::super::fp::{self, FOp, W};
use super::super::operand::{ea, gpr, write_gpr};
use super::super::vector::sext;
use super::{float_lanes, from_float_lanes, get, lane, ls, pk, src, xmm, Operands};
use crate::cpu::flags::store_raw_flags;
use crate::cpu::{fault, rflags as rf, Cpu};
use iced_x86::{Instruction, Mnemonic::*, OpKind};

/// pmuldq: signed products of the even dwords.
pub(super) fn pmuldq(o: &mut Operands) -> Option<u128> {
    let (x, y) = (ls(o.a, 4), ls(o.b, 4));
    let lo = (sext(x[0], 4) * sext(y[0], 4)) as u64;
    let hi = (sext(x[2], 4) * sext(y[2], 4)) as u64;
    Some(lo as u128 | (hi as u128) << 64)
}

/// pmovsx*, pmovzx*: the low lanes of the source, sign- or zero-extended.
pub(super) fn extend(o: &mut Operands) -> Option<u128> {
    let m = o.m;
    let (from, to) = match m {
        Pmovsxbw | Pmovzxbw => (1, 2),
        Pmovsxbd | Pmovzxbd => (1, 4),
        Pmovsxbq | Pmovzxbq => (1, 8),
        Pmovsxwd | Pmovzxwd => (2, 4),
        Pmovsxwq | Pmovzxwq => (2, 8),
        _ => (4, 8),
    };
    let signed = matches!(m, Pmovsxbw | Pmovsxbd | Pmovsxbq | Pmovsxwd | Pmovsxwq | Pmovsxdq);
    let n = 16 / to;
    let out: Vec<u64> = (0..n)
        .map(|i| {
            let v = lane(o.b, from, i);
            if signed {
                sext(v, from as u8) as u64
            } else {
                v
            }
        })
        .collect();
    Some(pk(&out, to as u8))
}

/// Each lane from the source where `pick(i)`, else from the destination.
fn select(a: u128, b: u128, w: u8, pick: impl Fn(usize) -> bool) -> u128 {
    let (x, y) = (ls(a, w), ls(b, w));
    let out: Vec<u64> = (0..x.len()).map(|i| if pick(i) { y[i] } else { x[i] }).collect();
    pk(&out, w)
}

/// pblendw, blendps, blendpd: lanes picked by the immediate's bits.
pub(super) fn blend(o: &mut Operands) -> Option<u128> {
    let w = match o.m {
        Pblendw => 2,
        Blendps => 4,
        _ => 8,
    };
    let imm = o.imm;
    Some(select(o.a, o.b, w, |i| imm >> i & 1 != 0))
}

/// pblendvb, blendvps, blendvpd: lanes picked by the top bit of xmm0's lanes.
pub(super) fn blend_variable(o: &mut Operands) -> Option<u128> {
    let w = match o.m {
        Pblendvb => 1,
        Blendvps => 4,
        _ => 8,
    };
    let sel = ls(o.xmm0, w);
    let top = (w as u32) * 8 - 1;
    Some(select(o.a, o.b, w, |i| sel[i] >> top & 1 != 0))
}

/// pinsrb, pinsrd, pinsrq: the source's low lane into the lane the immediate names.
pub(super) fn insert(o: &mut Operands) -> Option<u128> {
    let (w, n) = match o.m {
        Pinsrb => (1u32, 16),
        Pinsrd => (4, 4),
        _ => (8, 2),
    };
    let sh = (o.imm % n) * w * 8;
    let mask = if w == 8 {
        u64::MAX as u128
    } else {
        (1u128 << (w * 8)) - 1
    };
    Some((o.a & !(mask << sh)) | ((o.b & mask) << sh))
}

/// insertps: a single (from memory, or the source lane imm[7:6]) into lane imm[5:4], then the
/// lanes imm[3:0] names zeroed.
pub(super) fn insertps(o: &mut Operands) -> Option<u128> {
    let imm = o.imm;
    let v = if o.b_in_memory {
        o.b as u64 & 0xffff_ffff
    } else {
        lane(o.b, 4, imm >> 6 & 3)
    };
    let mut l = ls(o.a, 4);
    l[(imm >> 4 & 3) as usize] = v;
    for (i, x) in l.iter_mut().enumerate() {
        if imm >> i & 1 != 0 {
            *x = 0;
        }
    }
    Some(pk(&l, 4))
}

/// phminposuw: the smallest unsigned word (the first of equals) and its index.
pub(super) fn phminposuw(o: &mut Operands) -> Option<u128> {
    let l = ls(o.b, 2);
    let (mut best, mut at) = (l[0], 0);
    for (i, &v) in l.iter().enumerate() {
        if v < best {
            best = v;
            at = i;
        }
    }
    Some(best as u128 | (at as u128) << 16)
}

/// dpps, dppd.
pub(super) fn dot_product(o: &mut Operands) -> Option<u128> {
    // Products of the lanes imm[4..] selects (+0 elsewhere), summed pairwise, each
    // step an SSE operation with its own rounding and flags; the sum goes to the
    // lanes imm[0..] selects (+0 elsewhere).
    let (m, imm) = (o.m, o.imm);
    let mx = &mut o.mx;
    let w = if m == Dpps { W::S } else { W::D };
    let (x, y) = (float_lanes(o.a, w), float_lanes(o.b, w));
    let t: Vec<u64> = (0..x.len())
        .map(|i| {
            if imm >> (4 + i) & 1 != 0 {
                fp::binop(w, FOp::Mul, x[i], y[i], mx)
            } else {
                0
            }
        })
        .collect();
    let sum = if m == Dpps {
        let lo = fp::binop(w, FOp::Add, t[0], t[1], mx);
        let hi = fp::binop(w, FOp::Add, t[2], t[3], mx);
        fp::binop(w, FOp::Add, lo, hi, mx)
    } else {
        fp::binop(w, FOp::Add, t[0], t[1], mx)
    };
    let out: Vec<u64> = (0..x.len()).map(|i| if imm >> i & 1 != 0 { sum } else { 0 }).collect();
    Some(from_float_lanes(&out, w))
}

pub(super) fn mpsadbw(o: &mut Operands) -> Option<u128> {
    // Eight sums of absolute differences between the four source bytes at imm[1:0]*4
    // and the destination bytes at imm[2]*4 + i.
    let imm = o.imm;
    let (x, y) = (ls(o.a, 1), ls(o.b, 1));
    let (d0, s0) = ((imm >> 2 & 1) as usize * 4, (imm & 3) as usize * 4);
    let out: Vec<u64> = (0..8)
        .map(|i| (0..4).map(|k| x[d0 + i + k].abs_diff(y[s0 + k])).sum())
        .collect();
    Some(pk(&out, 2))
}

/// roundss, roundsd, roundps, roundpd: the mode from imm[1:0] or MXCSR (imm[2]), inexact
/// suppressed by imm[3].
pub(super) fn round(o: &mut Operands) -> Option<u128> {
    let (m, imm) = (o.m, o.imm);
    let w = if matches!(m, Roundss | Roundps) { W::S } else { W::D };
    let bits = if w == W::S { 32 } else { 64 };
    let mode = if imm & 4 != 0 { (o.mx >> 13) & 3 } else { imm & 3 };
    let quiet = imm & 8 != 0;
    let scalar = matches!(m, Roundss | Roundsd);
    let mut x = float_lanes(o.b, w);
    if scalar {
        // Only the low lane is an operand (the others cannot raise flags).
        x.truncate(1);
    }
    for v in x.iter_mut() {
        *v = fp::round_to_int(w, *v, mode, quiet, &mut o.mx);
    }
    Some(if scalar {
        let mask = if bits == 32 { 0xffff_ffffu128 } else { u64::MAX as u128 };
        (o.a & !mask) | (from_float_lanes(&x, w) & mask)
    } else {
        from_float_lanes(&x, w)
    })
}

/// ptest: ZF when dest AND source is zero, CF when (NOT dest) AND source is.
pub(super) fn ptest(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let bad = fault::UNIMPLEMENTED;
    let a = get(cpu, xmm(ins.op_register(0)).ok_or(bad)?);
    let b = src(cpu, ins, 1, 16).ok_or(bad)?;
    let mut f = 0;
    if a & b == 0 {
        f |= rf::ZF;
    }
    if !a & b == 0 {
        f |= rf::CF;
    }
    store_raw_flags(cpu, f);
    Ok(())
}

/// pextrb, pextrw (memory form), pextrd, pextrq, extractps: the lane the immediate names, to a
/// general register or memory.
pub(super) fn extract(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let bad = fault::UNIMPLEMENTED;
    let s = xmm(ins.op_register(1)).ok_or(bad)?;
    let v = get(cpu, s);
    let (w, n) = match ins.mnemonic() {
        Pextrb => (1, 16),
        Pextrw => (2, 8),
        Pextrq => (8, 2),
        _ => (4, 4),
    };
    let x = lane(v, w, ins.immediate(2) as u32 % n);
    if ins.op_kind(0) == OpKind::Memory {
        let a = ea(&mut Live::new(cpu), ins);
        store(a, x, w as u8);
    } else {
        write_gpr(&mut Live::new(cpu), gpr(ins.op_register(0)).ok_or(bad)?, x);
    }
    Ok(())
}
