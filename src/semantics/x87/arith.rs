//! Arithmetic: the four operations with precision control and their overflow, underflow and
//! rounding reports, sign changes, rounding to an integer, square root, scaling, partial
//! remainders and exponent extraction.

use super::load_store::load_mem;
use super::state::{indefinite, nan_result};
use super::{has_memory, sti, Fpu, C0, C1, C2, C3, DE, IE, ZE};
use crate::semantics::fp;
use iced_x86::{Instruction, Mnemonic};
use rustc_apfloat::ieee::X87DoubleExtended as Ext;
use rustc_apfloat::{Float, Round, Status, StatusAnd};

/// The operation of an arithmetic mnemonic on `a` (st(0) or the destination) and `b`.
fn operate(m: Mnemonic, a: Ext, b: Ext, r: Round) -> StatusAnd<Ext> {
    use Mnemonic::*;
    match m {
        Fadd | Faddp | Fiadd => a.add_r(b, r),
        Fsub | Fsubp | Fisub => a.sub_r(b, r),
        Fsubr | Fsubrp | Fisubr => b.sub_r(a, r),
        Fmul | Fmulp | Fimul => a.mul_r(b, r),
        Fdiv | Fdivp | Fidiv => a.div_r(b, r),
        _ => b.div_r(a, r),
    }
}

/// The operands scaled by 2^k, so that the result is scaled by 2^k (exactly, away from the
/// range edges): one operand of a product or quotient, both of a sum.
fn scale_operands(m: Mnemonic, a: Ext, b: Ext, k: i32) -> (Ext, Ext) {
    use Mnemonic::*;
    match m {
        Fmul | Fmulp | Fimul | Fdiv | Fdivp | Fidiv => (a.scalbn(k as _), b),
        Fdivr | Fdivrp | Fidivr => (a, b.scalbn(k as _)),
        _ => (a.scalbn(k as _), b.scalbn(k as _)),
    }
}

/// Whether a result that a directed rounding landed on the largest finite value overflowed
/// (the soft-float core does not report it): decided on operands scaled down, where the
/// threshold 2^16384 is representable.
fn overflows_directed(m: Mnemonic, a: Ext, b: Ext) -> bool {
    use Mnemonic::*;
    let k = if matches!(m, Fadd | Faddp | Fiadd | Fsub | Fsubp | Fisub | Fsubr | Fsubrp | Fisubr) {
        2
    } else {
        2000
    };
    let (sa, sb) = scale_operands(m, a, b, -k);
    let threshold = Ext::from_u128(1).value.scalbn((16384 - k) as _);
    operate(m, sa, sb, Round::TowardZero).value.abs() >= threshold
}

fn arith(f: &mut Fpu, m: Mnemonic, a: Ext, b: Ext) -> Ext {
    if a.is_nan() || b.is_nan() {
        if a.is_signaling() || b.is_signaling() {
            f.cpu.fpu_sw |= IE;
        }
        return nan_result(a, b);
    }
    let op_on = |a: Ext, b: Ext, r: Round| operate(m, a, b, r);
    let op = |r: Round| op_on(a, b, r);
    let scaled = |k: i32| scale_operands(m, a, b, k);
    let ue_before = f.cpu.fpu_sw & fp::mx::UE as u16;
    let mut res = op(f.round());
    if res.status == Status::INEXACT
        && res.value.to_bits() & !(1u128 << 79) == 0x7ffe_ffff_ffff_ffff_ffff
        && overflows_directed(m, a, b)
    {
        res.status |= Status::OVERFLOW;
    }
    if res.status.contains(Status::INVALID_OP) {
        f.cpu.fpu_sw |= IE;
        return indefinite();
    }
    if res.status.contains(Status::DIV_BY_ZERO) {
        f.cpu.fpu_sw |= ZE;
        return res.value;
    }
    // Denormal operands are reported only for operations that are neither invalid nor a
    // division by zero.
    f.denormal(&[a, b]);
    let tz = op(Round::TowardZero);
    let v = f.precision(res, tz);
    let smallest = Ext::smallest_normalized();
    if v.is_finite() && (v.is_zero() || v.is_denormal() || v.abs() == smallest) && !res.value.is_nan() {
        // Underflow is tininess after rounding to the precision with an unbounded exponent:
        // decided on operands scaled by 2^128 (exactly), far from the denormal range.
        const K: i32 = 128;
        let (sa, sb) = scaled(K);
        let (sv, _) = f.rounded(op_on(sa, sb, f.round()), op_on(sa, sb, Round::TowardZero));
        let inexact = res.status.contains(Status::INEXACT) || v != res.value;
        let tiny = sv.abs() < smallest.scalbn(K as _);
        f.cpu.fpu_sw = (f.cpu.fpu_sw & !(fp::mx::UE as u16)) | ue_before;
        if tiny && inexact {
            f.cpu.fpu_sw |= fp::mx::UE as u16;
        }
    }
    // C1 says whether the result was rounded up (away from zero): compare with the result
    // truncated at the same precision.
    let t = f.truncated(tz.value);
    if !v.is_nan() && v.abs() != t.abs() {
        f.cpu.fpu_sw |= C1;
    }
    v
}

/// Square root of a positive finite extended value, correctly rounded (integer square root on
/// the 64-bit significand).
fn sqrt_ext(v: Ext, r: Round) -> StatusAnd<Ext> {
    let b = v.to_bits();
    let mut e = ((b >> 64) & 0x7fff).max(1) as i64 - 16383 - 63;
    let mut m = b & ((1u128 << 64) - 1);
    if m == 0 {
        return Status::OK.and(v);
    }
    while m >> 63 == 0 {
        m <<= 1;
        e -= 1;
    }
    // x = m * 2^e with m in [2^63, 2^65) and e odd; then n = m * 2^63 has a 64-bit root and
    // sqrt(x) = sqrt(n) * 2^((e - 63) / 2).
    if e & 1 == 0 {
        m <<= 1;
        e -= 1;
    }
    let n = m << 63;
    let mut s = (n as f64).sqrt() as u128;
    while s * s > n {
        s -= 1;
    }
    while (s + 1) * (s + 1) <= n {
        s += 1;
    }
    let rem = n - s * s;
    let mut ex = (e - 63) / 2;
    let up = match r {
        Round::TowardPositive => rem != 0,
        Round::NearestTiesToEven | Round::NearestTiesToAway => rem > s,
        _ => false,
    };
    if up {
        s += 1;
        if s >> 64 != 0 {
            s >>= 1;
            ex += 1;
        }
    }
    let status = if rem == 0 { Status::OK } else { Status::INEXACT };
    let biased = (ex + 63 + 16383) as u128;
    status.and(Ext::from_bits(s | (biased << 64)))
}

/// fadd, fsub, fsubr, fmul, fdiv, fdivr and their popping and integer forms.
pub(super) fn arithmetic(f: &mut Fpu, ins: &Instruction) {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let (dst, src) = if has_memory(ins) {
        let int = matches!(m, Fiadd | Fisub | Fisubr | Fimul | Fidiv | Fidivr);
        let (v, fl) = load_mem(f.cpu, ins, int);
        // A denormal memory operand is reported with the others, by `arith`.
        f.saw_denormal |= fl & DE != 0;
        f.cpu.fpu_sw |= fl & !DE;
        (0, v)
    } else if ins.op_count() == 2 {
        (sti(ins, 0), f.st(sti(ins, 1)))
    } else {
        // faddp with no operands: st(1) = st(1) op st(0)
        (1, f.st(0))
    };
    let a = f.st(dst);
    let r = arith(f, m, a, src);
    f.set_st(dst, r);
    if matches!(m, Faddp | Fsubp | Fsubrp | Fmulp | Fdivp | Fdivrp) {
        f.pop();
    }
}

/// fchs, fabs: the sign bit of the register's bits.
pub(super) fn sign(f: &mut Fpu, ins: &Instruction) {
    let mut b = f.st_raw(0);
    if !f.underflow {
        b[1] = if ins.mnemonic() == Mnemonic::Fchs {
            b[1] ^ 0x8000
        } else {
            b[1] & 0x7fff
        };
    }
    f.set_st_raw(0, b);
}

pub(super) fn frndint(f: &mut Fpu, _: &Instruction) {
    let v = f.st(0);
    if v.is_nan() {
        if v.is_signaling() {
            f.cpu.fpu_sw |= IE;
        }
        f.set_st(0, nan_result(v, v));
    } else {
        f.denormal(&[v]);
        let r = v.round_to_integral(f.round());
        let t = v.round_to_integral(Round::TowardZero);
        f.flag(r.status);
        if r.value.abs() != t.value.abs() {
            f.cpu.fpu_sw |= C1;
        }
        f.set_st(0, r.value);
    }
}

pub(super) fn fsqrt(f: &mut Fpu, _: &Instruction) {
    let v = f.st(0);
    let r = if let Some(n) = f.nan_in(&[v]) {
        n
    } else if v.is_negative() && !v.is_zero() {
        f.cpu.fpu_sw |= IE;
        indefinite()
    } else if v.is_zero() || v.is_infinite() {
        v
    } else {
        f.denormal(&[v]);
        let s = sqrt_ext(v, f.round());
        let tz = sqrt_ext(v, Round::TowardZero);
        let r = f.precision(s, tz);
        let t = f.truncated(tz.value);
        if r != t {
            f.cpu.fpu_sw |= C1;
        }
        r
    };
    f.set_st(0, r);
}

pub(super) fn fscale(f: &mut Fpu, _: &Instruction) {
    let (a, b) = (f.st(0), f.st(1));
    let r = if let Some(n) = f.nan_in(&[a, b]) {
        n
    } else if b.is_infinite() {
        // Scaling by an infinite power: exact zeros and infinities, invalid for 0 * 2^inf
        // and inf * 2^-inf.
        if (b.is_negative() && a.is_infinite()) || (!b.is_negative() && a.is_zero()) {
            f.cpu.fpu_sw |= IE;
            indefinite()
        } else {
            f.denormal(&[a]);
            let magnitude = if b.is_negative() { Ext::ZERO } else { Ext::INFINITY };
            if a.is_negative() {
                -magnitude
            } else {
                magnitude
            }
        }
    } else {
        f.denormal(&[a, b]);
        let mut exact = false;
        let n = b.to_i128_r(32, Round::TowardZero, &mut exact).value as i32;
        let n = n.clamp(-70000, 70000);
        let r = a.scalbn_r(n as _, f.round());
        scale_flags(f, a, r, n);
        r
    };
    f.set_st(0, r);
}

/// The soft-float scaling reports nothing: overflow, underflow, inexactness and C1 (rounded
/// up) come from comparing `r` with the exact a * 2^n.
fn scale_flags(f: &mut Fpu, a: Ext, r: Ext, n: i32) {
    if !a.is_finite() || a.is_zero() {
        return;
    }
    if r.is_infinite() || (r.abs() == Ext::largest() && a.abs().scalbn(-n as _) < Ext::largest()) {
        f.cpu.fpu_sw |= fp::mx::OE as u16 | fp::mx::PE as u16;
        if r.is_infinite() {
            f.cpu.fpu_sw |= C1;
        }
    } else if n < 0 {
        // Scaling up is exact; scaling down may drop bits (then r scaled
        // back up differs from a).
        let back = r.scalbn(-n as _);
        if back != a {
            f.cpu.fpu_sw |= fp::mx::PE as u16;
            if r.is_denormal() || r.is_zero() {
                f.cpu.fpu_sw |= fp::mx::UE as u16;
            }
            if back.abs() > a.abs() {
                f.cpu.fpu_sw |= C1;
            }
        }
    }
}

/// fprem, fprem1.
pub(super) fn fprem(f: &mut Fpu, ins: &Instruction) {
    let m = ins.mnemonic();
    let (a, b) = (f.st(0), f.st(1));
    let r = if m == Mnemonic::Fprem {
        a.c_fmod(b)
    } else {
        a.ieee_rem(b)
    };
    // Without a quotient (NaN operands, invalid operations, underflow) C0 and C3 are
    // left as they were and C1, C2 cleared, as the CPU does.
    if a.is_nan() || b.is_nan() {
        f.cpu.fpu_sw &= !(C1 | C2);
        if a.is_signaling() || b.is_signaling() {
            f.cpu.fpu_sw |= IE;
        }
        f.set_st(0, nan_result(a, b));
        return;
    }
    if r.status.contains(Status::INVALID_OP) {
        f.cpu.fpu_sw = (f.cpu.fpu_sw & !(C1 | C2)) | IE;
        f.set_st(0, indefinite());
        return;
    }
    f.denormal(&[a, b]);
    let sw = f.cpu.fpu_sw & !(C0 | C1 | C2 | C3);
    match remainder_quotient(m, a, b) {
        Quotient::Partial(v) => {
            f.cpu.fpu_sw = sw | C2;
            f.set_st(0, v);
        }
        Quotient::Complete(q) => {
            f.cpu.fpu_sw = sw | quotient_bits(q);
            f.set_st(0, r.value);
        }
    }
}

/// What a remainder instruction reaches: a partial remainder (the exponents are too far apart)
/// or the complete one, with its quotient.
enum Quotient {
    Partial(Ext),
    Complete(u128),
}

/// The quotient's low bits, from the exact significands.
fn remainder_quotient(m: Mnemonic, a: Ext, b: Ext) -> Quotient {
    let (ba, bb) = (a.to_bits(), b.to_bits());
    let exp = |x: u128| {
        let e = ((x >> 64) & 0x7fff) as i64;
        if e == 0 {
            1
        } else {
            e
        }
    };
    // Denormal operands are normalised first (the CPU compares true exponents).
    let norm = |x: u128| {
        let m = x as u64;
        let z = if m == 0 { 0 } else { m.leading_zeros() };
        ((m as u128) << z, exp(x) - z as i64)
    };
    let ((ma, ea), (mb, eb)) = (norm(ba), norm(bb));
    let d = ea - eb;
    if d >= 64 && !a.is_infinite() && !b.is_zero() && mb != 0 {
        // Partial remainder: the CPU reduces by a quotient of N + 1 bits, N between 32
        // and 63 (this one takes (D mod 32) + 32), sets C2 and clears the quotient
        // bits. Exact: r = ((ma << N) mod mb) * 2^(eb + D - N - 63 - bias).
        let n = (d & 31) | 32;
        let rem = (ma << n) % mb;
        let scale = eb - 16383 + (d - n) - 63;
        let mut v = Ext::from_u128(rem).value.scalbn(scale as _);
        if a.is_negative() {
            v = -v;
        }
        return Quotient::Partial(v);
    }
    Quotient::Complete(if a.is_zero() || b.is_infinite() || mb == 0 {
        0
    } else if (0..64).contains(&d) {
        let n = ma << d;
        let (q, rem) = (n / mb, n % mb);
        let up = m == Mnemonic::Fprem1 && (2 * rem > mb || (2 * rem == mb && q & 1 == 1));
        q + up as u128
    } else if d == -1 && m == Mnemonic::Fprem1 {
        (ma > mb) as u128
    } else {
        0
    })
}

/// C0, C3, C1 = Q2, Q1, Q0.
fn quotient_bits(q: u128) -> u16 {
    [(1, C1), (2, C3), (4, C0)]
        .iter()
        .filter(|(bit, _)| q & bit != 0)
        .map(|(_, c)| c)
        .sum()
}

pub(super) fn fxtract(f: &mut Fpu, _: &Instruction) {
    if f.full() && !f.tag_empty(f.phys(0)) {
        f.overflow_both();
        return;
    }
    let v = f.st(0);
    let (exp, sig) = if let Some(n) = f.nan_in(&[v]) {
        (n, n)
    } else if v.is_infinite() {
        (Ext::INFINITY, v)
    } else if v.is_zero() {
        f.cpu.fpu_sw |= ZE;
        (-Ext::INFINITY, v)
    } else {
        f.denormal(&[v]);
        let mut e = 0;
        // frexp gives [0.5, 1); x87 gives [1, 2).
        let sig = v.frexp(&mut e).scalbn(1);
        (Ext::from_i128((e - 1) as i128).value, sig)
    };
    f.set_st(0, exp);
    f.push(sig);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotient_bits_go_to_c1_c3_c0() {
        assert_eq!(quotient_bits(0), 0);
        assert_eq!(quotient_bits(1), C1);
        assert_eq!(quotient_bits(2), C3);
        assert_eq!(quotient_bits(4), C0);
        assert_eq!(quotient_bits(0b1111), C0 | C1 | C3);
    }

    #[test]
    fn directed_rounding_overflow_is_found_on_scaled_operands() {
        let big = Ext::largest();
        assert!(overflows_directed(Mnemonic::Fadd, big, big));
        assert!(!overflows_directed(Mnemonic::Fadd, big, Ext::ZERO));
        assert!(overflows_directed(Mnemonic::Fmul, big, Ext::from_u128(2).value));
    }
}
