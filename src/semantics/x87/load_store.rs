//! Loads and stores: memory operands read as extended values (floats, integers, packed BCD),
//! results narrowed to memory formats, register moves, exchanges, conditional moves and the
//! constants.

use super::state::{from_ext, nan_result, sw_flags, to_ext};
use super::{has_memory, sti, Fpu, C1, DE, IE};
use crate::cpu::flags::Cc;
use crate::cpu::Cpu;
use crate::semantics::concrete::{load, store, Live};
use crate::semantics::fp::{self, W};
use crate::semantics::operand::ea;
use iced_x86::{Instruction, Mnemonic};
use rustc_apfloat::ieee::{Double, Single, X87DoubleExtended as Ext};
use rustc_apfloat::{Float, FloatConvert, Round, Status, StatusAnd};

pub(super) fn load_mem(cpu: &mut Cpu, ins: &Instruction, int: bool) -> (Ext, u16) {
    let a = ea(&mut Live::new(cpu), ins);
    let size = ins.memory_size().size();
    let mut flags = 0;
    let mut l = false;
    let v = if int {
        let raw = load(a, size as u8);
        let i = match size {
            2 => raw as u16 as i16 as i128,
            4 => raw as u32 as i32 as i128,
            _ => raw as i64 as i128,
        };
        Ext::from_i128(i).value
    } else {
        match size {
            4 => {
                let bits = load(a, 4);
                if W::S.is_snan(bits) {
                    flags |= IE;
                }
                let s = Single::from_bits(bits as u128);
                if s.is_denormal() {
                    flags |= DE;
                }
                if s.is_nan() {
                    nan_widen(bits, W::S)
                } else {
                    s.convert_r(Round::NearestTiesToEven, &mut l).value
                }
            }
            8 => {
                let bits = load(a, 8);
                if W::D.is_snan(bits) {
                    flags |= IE;
                }
                let d = Double::from_bits(bits as u128);
                if d.is_denormal() {
                    flags |= DE;
                }
                if d.is_nan() {
                    nan_widen(bits, W::D)
                } else {
                    d.convert_r(Round::NearestTiesToEven, &mut l).value
                }
            }
            _ => to_ext([load(a, 8), load(a.wrapping_add(8), 2)]),
        }
    };
    (v, flags)
}

/// A binary32/64 NaN widened to 80 bits the way the hardware does (payload kept).
fn nan_widen(bits: u64, w: W) -> Ext {
    let (sign, frac, fb) = match w {
        W::S => ((bits >> 31) & 1, bits & 0x7f_ffff, 23),
        W::D => ((bits >> 63) & 1, bits & 0xf_ffff_ffff_ffff, 52),
    };
    // Not quieted here: of two NaN operands the CPU keeps the one with the larger significand
    // as it was (nan_result quiets the survivor); a loaded NaN is quieted by fld.
    let mant = (1u128 << 63) | ((frac as u128) << (63 - fb));
    Ext::from_bits(mant | ((sign as u128) << 79) | (0x7fff << 64))
}

/// Rounds a non-NaN value to binary32/64 bits in mode `r`, with the status word's flags: C1 when
/// the magnitude was rounded up, OE also where a directed rounding to the largest finite value
/// hides the overflow from the soft-float core.
fn narrow<T>(f: &mut Fpu, v: Ext, r: Round) -> u64
where
    Ext: FloatConvert<T>,
    T: Float + FloatConvert<Ext>,
{
    let mut l = false;
    let mut s: StatusAnd<T> = v.convert_r(r, &mut l);
    let t: StatusAnd<T> = v.convert_r(Round::TowardZero, &mut l);
    if s.status == Status::INEXACT && s.value.abs() == T::smallest_normalized() {
        // Rounded to the smallest normal, yet tiny after rounding with an unbounded exponent.
        let scaled: StatusAnd<T> = v.scalbn(64).convert_r(r, &mut l);
        if scaled.value.abs() < T::smallest_normalized().scalbn(64) {
            s.status |= Status::UNDERFLOW;
        }
    }
    let big: Ext = T::largest().convert_r(Round::TowardZero, &mut l).value;
    if v.is_finite() && v.abs() > big {
        f.cpu.fpu_sw |= fp::mx::OE as u16;
    }
    f.flag(s.status);
    if s.value.abs() != t.value.abs() {
        f.cpu.fpu_sw |= C1;
    }
    s.value.to_bits() as u64
}

fn store_float(f: &mut Fpu, v: Ext, a: u64, size: usize) {
    let r = f.round();
    match size {
        4 | 8 => {
            let w = if size == 4 { W::S } else { W::D };
            let bits = if v.is_nan() {
                if v.is_signaling() {
                    f.cpu.fpu_sw |= IE;
                }
                let b = v.to_bits();
                let sign = ((b >> 79) & 1) as u64;
                let frac = ((b >> 11) as u64) & 0xf_ffff_ffff_ffff; // top 52 fraction bits
                match w {
                    W::D => (sign << 63) | 0x7ff0_0000_0000_0000 | frac | (1 << 51),
                    W::S => (sign << 31) | 0x7f80_0000 | (frac >> 29) | (1 << 22),
                }
            } else if w == W::S {
                narrow::<Single>(f, v, r)
            } else {
                narrow::<Double>(f, v, r)
            };
            store(a, bits, size as u8);
        }
        _ => {
            let b = from_ext(v);
            store(a, b[0], 8);
            store(a.wrapping_add(8), b[1], 2);
        }
    }
}

fn store_int(f: &mut Fpu, v: Ext, a: u64, size: usize, truncate: bool) {
    let r = if truncate { Round::TowardZero } else { f.round() };
    let bits = size * 8;
    let mut exact = false;
    let s = v.to_i128_r(bits, r, &mut exact);
    let out = if v.is_nan() || s.status.contains(Status::INVALID_OP) {
        f.cpu.fpu_sw |= IE;
        1u64 << (bits - 1)
    } else {
        f.flag(s.status);
        let t = v.to_i128_r(bits, Round::TowardZero, &mut exact);
        if s.value.unsigned_abs() != t.value.unsigned_abs() {
            f.cpu.fpu_sw |= C1;
        }
        s.value as u64
    };
    store(a, out, size as u8);
}

/// fld: extended operands (memory or register) are copied as they are, without checks.
pub(super) fn fld(f: &mut Fpu, ins: &Instruction) {
    let mem = has_memory(ins);
    let b = if mem && ins.memory_size().size() == 10 {
        let a = ea(&mut Live::new(f.cpu), ins);
        [load(a, 8), load(a.wrapping_add(8), 2)]
    } else if mem {
        let (v, fl) = load_mem(f.cpu, ins, false);
        // A stack overflow makes the load invalid: no denormal report then.
        let fl = if f.full() { fl & !DE } else { fl };
        f.cpu.fpu_sw |= fl;
        from_ext(if v.is_nan() { nan_result(v, v) } else { v })
    } else {
        f.st_raw(sti(ins, 0))
    };
    f.push_raw(b);
}

pub(super) fn fild(f: &mut Fpu, ins: &Instruction) {
    let (v, _) = load_mem(f.cpu, ins, true);
    f.push(v);
}

/// fstpnce: the alias encoding (d9 d8+i) raises no stack fault: an empty st(0) is only popped,
/// a full one copied and popped.
pub(super) fn fstpnce(f: &mut Fpu, ins: &Instruction) {
    let p = f.phys(0);
    if !f.tag_empty(p) {
        let b = f.cpu.st[p];
        f.set_st_raw(sti(ins, 0), b);
    }
    f.pop();
}

/// fst, fstp.
pub(super) fn fst(f: &mut Fpu, ins: &Instruction) {
    let mem = has_memory(ins);
    let v = f.st(0);
    if mem && ins.memory_size().size() == 10 && !f.underflow {
        // Extended stores copy the register's bits.
        let a = ea(&mut Live::new(f.cpu), ins);
        let b = f.cpu.st[f.phys(0)];
        store(a, b[0], 8);
        store(a.wrapping_add(8), b[1], 2);
    } else if mem {
        let a = ea(&mut Live::new(f.cpu), ins);
        store_float(f, v, a, ins.memory_size().size());
    } else {
        let b = f.cpu.st[f.phys(0)];
        if !f.underflow {
            f.set_st_raw(sti(ins, 0), b);
        } else {
            f.set_st(sti(ins, 0), v);
        }
    }
    if ins.mnemonic() == Mnemonic::Fstp {
        f.pop();
    }
}

/// fist, fistp, fisttp.
pub(super) fn fist(f: &mut Fpu, ins: &Instruction) {
    let m = ins.mnemonic();
    let v = f.st(0);
    let a = ea(&mut Live::new(f.cpu), ins);
    store_int(f, v, a, ins.memory_size().size(), m == Mnemonic::Fisttp);
    if m != Mnemonic::Fist {
        f.pop();
    }
}

/// fxch.
pub(super) fn fxch(f: &mut Fpu, ins: &Instruction) {
    let i = if ins.op_count() == 2 { sti(ins, 1) } else { 1 };
    // An empty register reads as the indefinite value, and the exchange goes ahead.
    let (a, b) = (f.st_raw(0), f.st_raw(i));
    f.underflow = false;
    f.set_st_raw(0, b);
    f.set_st_raw(i, a);
}

/// fld1, fldz, fldpi, fldl2e, fldl2t, fldlg2, fldln2.
pub(super) fn fld_constant(f: &mut Fpu, ins: &Instruction) {
    use Mnemonic::*;
    // Constants with their 64-bit significands (rounded to nearest; RC adjusts the last
    // bit for pi, l2e, lg2, ln2 as the hardware does).
    let (sig, exp, round_up_bit): (u64, u32, Option<bool>) = match ins.mnemonic() {
        Fld1 => (1 << 63, 16383, None),
        Fldz => (0, 0, None),
        Fldpi => (0xc90f_daa2_2168_c235, 16384, Some(true)),
        Fldl2e => (0xb8aa_3b29_5c17_f0bc, 16383, Some(true)),
        Fldl2t => (0xd49a_784b_cd1b_8afe, 16384, Some(false)),
        Fldlg2 => (0x9a20_9a84_fbcf_f799, 16381, Some(true)),
        _ => (0xb172_17f7_d1cf_79ac, 16382, Some(true)),
    };
    // round_up_bit: whether round-to-nearest rounded the true value up.
    let rc = (f.cpu.fpu_cw >> 10) & 3;
    let sig = match round_up_bit {
        Some(true) if rc == 1 || rc == 3 => sig - 1,
        Some(false) if rc == 2 => sig + 1,
        _ => sig,
    };
    f.push(Ext::from_bits(sig as u128 | (exp as u128) << 64));
}

/// fbld: 18 packed BCD digits and a sign byte.
pub(super) fn fbld(f: &mut Fpu, ins: &Instruction) {
    let a = ea(&mut Live::new(f.cpu), ins);
    let lo = load(a, 8);
    let hi = load(a.wrapping_add(8), 2);
    let digits = lo as u128 | ((hi & 0xff) as u128) << 64;
    let mut n: i128 = 0;
    for i in (0..9).rev() {
        let byte = (digits >> (8 * i)) as u8;
        n = n * 100 + ((byte >> 4) as i128 % 16) * 10 + (byte & 15) as i128;
    }
    let mut v = Ext::from_i128(n).value;
    if hi & 0x8000 != 0 {
        v = -v;
    }
    f.push(v);
}

/// fbstp.
pub(super) fn fbstp(f: &mut Fpu, ins: &Instruction) {
    let a = ea(&mut Live::new(f.cpu), ins);
    let v = f.st(0);
    let mut exact = false;
    let s = v.to_i128_r(64, f.round(), &mut exact);
    let n = s.value;
    let (lo, hi) = if v.is_nan() || v.is_infinite() || n.unsigned_abs() >= 1_000_000_000_000_000_000 {
        // The packed BCD indefinite.
        f.cpu.fpu_sw |= IE;
        (0xc000_0000_0000_0000u64, 0xffffu64)
    } else {
        if !exact {
            f.cpu.fpu_sw |= sw_flags(Status::INEXACT);
            let t = v.to_i128_r(64, Round::TowardZero, &mut exact).value;
            if n.unsigned_abs() != t.unsigned_abs() {
                f.cpu.fpu_sw |= C1;
            }
        }
        let mut m = n.unsigned_abs();
        let mut bcd = 0u128;
        for i in 0..9 {
            let d0 = m % 10;
            let d1 = m / 10 % 10;
            m /= 100;
            bcd |= (d1 << 4 | d0) << (8 * i);
        }
        (
            bcd as u64,
            (bcd >> 64) as u64 | if v.is_negative() { 0x8000 } else { 0 },
        )
    };
    store(a, lo, 8);
    store(a.wrapping_add(8), hi, 2);
    f.pop();
}

/// fcmovcc st(0), st(i).
pub(super) fn fcmov(f: &mut Fpu, ins: &Instruction) {
    use Mnemonic::*;
    let cc = match ins.mnemonic() {
        Fcmovb => Cc::B,
        Fcmove => Cc::E,
        Fcmovbe => Cc::Be,
        Fcmovu => Cc::P,
        Fcmovnb => Cc::Ae,
        Fcmovne => Cc::Ne,
        Fcmovnbe => Cc::A,
        _ => Cc::Np,
    };
    // Both registers are checked for underflow whether or not the move happens.
    let (d, v) = (f.st_raw(0), f.st_raw(sti(ins, 1)));
    if crate::cpu::flags::cpu_cond(f.cpu, cc) {
        f.set_st_raw(0, v);
    } else if f.underflow {
        f.set_st_raw(0, d);
    }
}
