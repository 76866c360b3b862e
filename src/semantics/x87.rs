//! The x87 FPU with true 80-bit extended precision (soft-float, rustc_apfloat's x87 format):
//! the register stack and tags, control and status words, rounding and precision control.
//! Runs over concrete state (compiled code reaches it through the slow helper).

use super::concrete::{load, store, store_flags, Live};
use super::emitter::Flags;
use super::fp::{self, W};
use super::operand::ea;
use crate::cpu::{Cpu, FlagKind};
use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use rustc_apfloat::ieee::{Double, Single, X87DoubleExtended as Ext};
use rustc_apfloat::{Float, FloatConvert, Round, Status, StatusAnd};
use std::cmp::Ordering;

// Status word bits.
const IE: u16 = 1;
const DE: u16 = 2;
const ZE: u16 = 4;
const SF: u16 = 1 << 6;
const C0: u16 = 1 << 8;
const C1: u16 = 1 << 9;
const C2: u16 = 1 << 10;
const C3: u16 = 1 << 14;

pub fn supported(ins: &Instruction) -> bool {
    use Mnemonic::*;
    matches!(
        ins.mnemonic(),
        Fld | Fst
            | Fstp
            | Fild
            | Fist
            | Fistp
            | Fisttp
            | Fadd
            | Faddp
            | Fiadd
            | Fsub
            | Fsubp
            | Fisub
            | Fsubr
            | Fsubrp
            | Fisubr
            | Fmul
            | Fmulp
            | Fimul
            | Fdiv
            | Fdivp
            | Fidiv
            | Fdivr
            | Fdivrp
            | Fidivr
            | Fchs
            | Fabs
            | Fxch
            | Fld1
            | Fldz
            | Fldpi
            | Fldl2e
            | Fldl2t
            | Fldlg2
            | Fldln2
            | Fcom
            | Fcomp
            | Fcompp
            | Fucom
            | Fucomp
            | Fucompp
            | Fcomi
            | Fcomip
            | Fucomi
            | Fucomip
            | Ftst
            | Fxam
            | Frndint
            | Fsqrt
            | Fscale
            | Fprem
            | Fprem1
            | Ffree
            | Ffreep
            | Ficom
            | Ficomp
            | Fstpnce
            | Fnop
            | Fneni
            | Fndisi
            | Fnsetpm
            | Fincstp
            | Fdecstp
            | Fcmovb
            | Fcmove
            | Fcmovbe
            | Fcmovu
            | Fcmovnb
            | Fcmovne
            | Fcmovnbe
            | Fcmovnu
            | Fxtract
            | Fsin
            | Fcos
            | Fsincos
            | Fptan
            | Fpatan
            | F2xm1
            | Fyl2x
            | Fyl2xp1
            | Fbld
            | Fbstp
    )
}

fn to_ext(v: [u64; 2]) -> Ext {
    // A pseudo-denormal (exponent field 0, integer bit set) has the value of the same
    // significand with exponent field 1.
    let e = if v[1] & 0x7fff == 0 && v[0] >> 63 == 1 {
        v[1] | 1
    } else {
        v[1]
    };
    Ext::from_bits(v[0] as u128 | ((e & 0xffff) as u128) << 64)
}

fn from_ext(e: Ext) -> [u64; 2] {
    let b = e.to_bits();
    [b as u64, ((b >> 64) as u64) & 0xffff]
}

fn rounding(cw: u16) -> Round {
    match (cw >> 10) & 3 {
        0 => Round::NearestTiesToEven,
        1 => Round::TowardNegative,
        2 => Round::TowardPositive,
        _ => Round::TowardZero,
    }
}

fn sw_flags(s: Status) -> u16 {
    fp::status_flags(s) as u16
}

struct Fpu<'a> {
    cpu: &'a mut Cpu,
    /// The instruction read an empty register (stack underflow): with the invalid-operation
    /// exception masked, what it writes is the indefinite value.
    underflow: bool,
    /// A register operand read was a denormal or pseudo-denormal (exponent field 0).
    saw_denormal: bool,
}

impl Fpu<'_> {
    fn phys(&self, i: usize) -> usize {
        (self.cpu.fpu_top as usize + i) & 7
    }
    fn tag_empty(&self, p: usize) -> bool {
        (self.cpu.fpu_tag >> (2 * p)) & 3 == 3
    }
    /// Marks physical register `p` in use. Only emptiness is kept: FNSTENV and FNSAVE derive
    /// the full tags from the contents (`full_tag_word`).
    fn mark_full(&mut self, p: usize) {
        self.cpu.fpu_tag &= !(3 << (2 * p));
    }
    fn st(&mut self, i: usize) -> Ext {
        let p = self.phys(i);
        if self.tag_empty(p) {
            // Stack underflow: invalid, with the indefinite value.
            self.cpu.fpu_sw |= IE | SF;
            self.cpu.fpu_sw &= !C1;
            self.underflow = true;
            return indefinite();
        }
        let r = self.cpu.st[p];
        if r[1] & 0x7fff == 0 && r[0] != 0 {
            self.saw_denormal = true;
        }
        to_ext(r)
    }
    fn set_st(&mut self, i: usize, v: Ext) {
        let v = if self.underflow { indefinite() } else { v };
        let p = self.phys(i);
        self.cpu.st[p] = from_ext(v);
        self.mark_full(p);
    }
    /// ST(i)'s bits as stored (no conversion), or the indefinite value on underflow.
    fn st_raw(&mut self, i: usize) -> [u64; 2] {
        let p = self.phys(i);
        if self.tag_empty(p) {
            self.cpu.fpu_sw |= IE | SF;
            self.cpu.fpu_sw &= !C1;
            self.underflow = true;
            return from_ext(indefinite());
        }
        self.cpu.st[p]
    }
    /// Stores bits as they are (moves, sign changes).
    fn set_st_raw(&mut self, i: usize, b: [u64; 2]) {
        let b = if self.underflow { from_ext(indefinite()) } else { b };
        let p = self.phys(i);
        self.cpu.st[p] = b;
        self.mark_full(p);
    }
    /// Whether a push would overflow the stack (the register below the top is in use).
    fn full(&self) -> bool {
        !self.tag_empty(((self.cpu.fpu_top + 7) & 7) as usize)
    }
    /// The NaN result when an operand is a NaN (IE when one signals).
    fn nan_in(&mut self, vs: &[Ext]) -> Option<Ext> {
        if vs.iter().any(|v| v.is_signaling()) {
            self.cpu.fpu_sw |= IE;
        }
        match vs {
            [a] if a.is_nan() => Some(nan_result(*a, *a)),
            [a, b] if a.is_nan() || b.is_nan() => Some(nan_result(*a, *b)),
            _ => None,
        }
    }
    /// Sets DE when an operand is denormal.
    fn denormal(&mut self, vs: &[Ext]) {
        if !vs.iter().any(|v| v.is_nan()) && (self.saw_denormal || vs.iter().any(|v| v.is_denormal())) {
            self.cpu.fpu_sw |= DE;
        }
    }
    fn push(&mut self, v: Ext) {
        self.push_raw(from_ext(v));
    }
    fn push_raw(&mut self, b: [u64; 2]) {
        let t = (self.cpu.fpu_top + 7) & 7;
        // After an underflow the result is the indefinite value (and no overflow is reported);
        // on a stack overflow the masked response pushes the indefinite value.
        let b = if self.underflow {
            from_ext(indefinite())
        } else if self.tag_empty(t as usize) {
            b
        } else {
            self.cpu.fpu_sw |= IE | SF | C1;
            from_ext(indefinite())
        };
        self.cpu.fpu_top = t;
        let u = std::mem::replace(&mut self.underflow, false);
        self.set_st_raw(0, b);
        self.underflow = u;
    }
    fn pop(&mut self) {
        let p = self.phys(0);
        self.cpu.fpu_tag |= 3 << (2 * p);
        self.cpu.fpu_top = (self.cpu.fpu_top + 1) & 7;
    }
    fn round(&self) -> Round {
        rounding(self.cpu.fpu_cw)
    }
    /// Applies precision control (24 or 53 bits) to an arithmetic result: `r` is the result
    /// rounded to 64 bits in the control word's mode, `tz` the same operation rounded toward
    /// zero. Rounding `r` again could round twice (a value just above a 24-bit tie becomes the
    /// tie at 64 bits, then rounds to even); instead `tz` with its lowest bit set when inexact
    /// (round to odd, exact for any narrower width) is rounded once.
    fn precision(&mut self, r: StatusAnd<Ext>, tz: StatusAnd<Ext>) -> Ext {
        let (v, s) = self.rounded(r, tz);
        self.flag(r.status | s);
        v
    }
    /// `precision` without setting flags: the value and the status of the narrowing.
    fn rounded(&self, r: StatusAnd<Ext>, tz: StatusAnd<Ext>) -> (Ext, Status) {
        let pc = (self.cpu.fpu_cw >> 8) & 3;
        let src = if pc != 3
            && tz.status.contains(Status::INEXACT)
            && !tz.value.is_nan()
            && !tz.value.is_infinite()
            && !r.value.is_infinite()
        {
            Ext::from_bits(tz.value.to_bits() | 1)
        } else {
            r.value
        };
        self.to_precision(src, self.round())
    }
    /// Rounds the significand to the precision control's width (24 or 53 bits) in `round`,
    /// keeping the extended exponent range: the value is scaled near 1, rounded through the
    /// narrower format, and scaled back (both scalings are exact).
    fn to_precision(&self, v: Ext, round: Round) -> (Ext, Status) {
        let pc = (self.cpu.fpu_cw >> 8) & 3;
        if pc == 3 || v.is_nan() || v.is_infinite() || v.is_zero() {
            return (v, Status::OK);
        }
        let bits = v.to_bits();
        if (bits >> 64) & 0x7fff == 0 {
            // An extended denormal: the significand field is rounded at the same bit as a
            // normal's (so fewer significant bits remain); a carry makes it normal.
            let drop = if pc == 0 { 40 } else { 11 };
            let m = bits as u64;
            let neg = bits >> 79 != 0;
            let low = m & ((1u64 << drop) - 1);
            let mut q = m >> drop;
            if low == 0 {
                return (v, Status::OK);
            }
            let half = 1u64 << (drop - 1);
            let up = match round {
                Round::NearestTiesToEven => low > half || (low == half && q & 1 == 1),
                Round::TowardPositive => !neg,
                Round::TowardNegative => neg,
                _ => false,
            };
            if up {
                q += 1;
            }
            let m2 = (q as u128) << drop;
            // A carry out of the field's top bit gives the smallest normal (exponent 1).
            let out = if m2 >> 64 != 0 {
                (1u128 << 64) | (1u128 << 63)
            } else {
                m2
            };
            let out = out | ((neg as u128) << 79);
            return (Ext::from_bits(out), Status::INEXACT | Status::UNDERFLOW);
        }
        let e = v.ilogb();
        let scaled = v.scalbn(-e);
        let mut l = false;
        let (r, st) = if pc == 0 {
            let s: StatusAnd<Single> = scaled.convert_r(round, &mut l);
            (s.value.convert_r(Round::NearestTiesToEven, &mut l).value, s.status)
        } else {
            let s: StatusAnd<Double> = scaled.convert_r(round, &mut l);
            (s.value.convert_r(Round::NearestTiesToEven, &mut l).value, s.status)
        };
        (r.scalbn(e), st & Status::INEXACT)
    }
    /// A full-precision value truncated to the precision control's width (no flags).
    fn truncated(&self, v: Ext) -> Ext {
        self.to_precision(v, Round::TowardZero).0
    }
    /// Flags of a transcendental result: underflow when it is tiny and inexact.
    fn flag_result(&mut self, v: Ext, s: Status) {
        self.flag(s);
        if (v.is_denormal() || v.is_zero()) && s.contains(Status::INEXACT) {
            self.cpu.fpu_sw |= fp::mx::UE as u16;
        }
    }
    fn flag(&mut self, s: Status) {
        self.cpu.fpu_sw |= sw_flags(s);
        if s.contains(Status::INEXACT) {
            self.cpu.fpu_sw &= !C1;
        }
    }
}

fn indefinite() -> Ext {
    Ext::from_bits(0xffff_c000_0000_0000_0000)
}

/// x87 NaN propagation: of two NaNs the one with the larger significand, quieted.
fn nan_result(a: Ext, b: Ext) -> Ext {
    let q = |v: Ext| Ext::from_bits(v.to_bits() | (1 << 62));
    match (a.is_nan(), b.is_nan()) {
        (true, true) => {
            let (ma, mb) = (a.to_bits() & ((1 << 63) - 1), b.to_bits() & ((1 << 63) - 1));
            if ma == mb {
                // Equal significands: the positive one, as the CPU does.
                if a.is_negative() {
                    q(b)
                } else {
                    q(a)
                }
            } else if ma > mb {
                q(a)
            } else {
                q(b)
            }
        }
        (true, false) => q(a),
        _ => q(b),
    }
}

fn load_mem(cpu: &mut Cpu, ins: &Instruction, int: bool) -> (Ext, u16) {
    let a = ea(&mut Live::new(cpu), ins);
    let size = ins.memory_size().size();
    let mut flags = 0;
    let mut l = false;
    let v = if int {
        let raw = load(cpu, a, size as u8);
        let i = match size {
            2 => raw as u16 as i16 as i128,
            4 => raw as u32 as i32 as i128,
            _ => raw as i64 as i128,
        };
        Ext::from_i128(i).value
    } else {
        match size {
            4 => {
                let bits = load(cpu, a, 4);
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
                let bits = load(cpu, a, 8);
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
            _ => to_ext([load(cpu, a, 8), load(cpu, a.wrapping_add(8), 2)]),
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
            store(f.cpu, a, bits, size as u8);
        }
        _ => {
            let b = from_ext(v);
            store(f.cpu, a, b[0], 8);
            store(f.cpu, a.wrapping_add(8), b[1], 2);
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
    store(f.cpu, a, out, size as u8);
}

fn arith(f: &mut Fpu, m: Mnemonic, a: Ext, b: Ext) -> Ext {
    use Mnemonic::*;
    if a.is_nan() || b.is_nan() {
        if a.is_signaling() || b.is_signaling() {
            f.cpu.fpu_sw |= IE;
        }
        return nan_result(a, b);
    }
    let op_on = |a: Ext, b: Ext, r: Round| match m {
        Fadd | Faddp | Fiadd => a.add_r(b, r),
        Fsub | Fsubp | Fisub => a.sub_r(b, r),
        Fsubr | Fsubrp | Fisubr => b.sub_r(a, r),
        Fmul | Fmulp | Fimul => a.mul_r(b, r),
        Fdiv | Fdivp | Fidiv => a.div_r(b, r),
        _ => b.div_r(a, r),
    };
    let op = |r: Round| op_on(a, b, r);
    // The operands scaled by 2^k, so that the result is scaled by 2^k (exactly, away from
    // the range edges): one operand of a product or quotient, both of a sum.
    let scaled = |k: i32| match m {
        Fmul | Fmulp | Fimul | Fdiv | Fdivp | Fidiv => (a.scalbn(k as _), b),
        Fdivr | Fdivrp | Fidivr => (a, b.scalbn(k as _)),
        _ => (a.scalbn(k as _), b.scalbn(k as _)),
    };
    let ue_before = f.cpu.fpu_sw & fp::mx::UE as u16;
    let mut res = op(f.round());
    if res.status == Status::INEXACT && res.value.to_bits() & !(1u128 << 79) == 0x7ffe_ffff_ffff_ffff_ffff {
        // A directed rounding that lands on the largest finite value may hide an overflow
        // (the soft-float core does not report it): decide on operands scaled down, where the
        // threshold 2^16384 is representable.
        let k = if matches!(m, Fadd | Faddp | Fiadd | Fsub | Fsubp | Fisub | Fsubr | Fsubrp | Fisubr) {
            2
        } else {
            2000
        };
        let (sa, sb) = scaled(-k);
        let threshold = Ext::from_u128(1).value.scalbn((16384 - k) as _);
        if op_on(sa, sb, Round::TowardZero).value.abs() >= threshold {
            res.status |= Status::OVERFLOW;
        }
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

fn compare(a: Ext, b: Ext) -> Option<Ordering> {
    if a.is_nan() || b.is_nan() {
        None
    } else {
        a.partial_cmp(&b)
    }
}

fn sti(ins: &Instruction, n: u32) -> usize {
    ins.op_register(n) as usize - Register::ST0 as usize
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

/// The status word with the current stack top in bits 11-13.
pub(super) fn status_word(cpu: &Cpu) -> u64 {
    (cpu.fpu_sw as u64 & !0x3800) | ((cpu.fpu_top & 7) << 11)
}

/// The tag a register's contents give it: valid (0), zero (1) or special (2: NaN, infinity,
/// denormal, unnormal).
fn tag_of(r: [u64; 2]) -> u64 {
    let (e, m) = (r[1] & 0x7fff, r[0]);
    if e == 0 && m == 0 {
        1
    } else if e == 0 || e == 0x7fff || m >> 63 == 0 {
        2
    } else {
        0
    }
}

/// The full tag word as FNSTENV and FNSAVE store it: empty registers as the tags say, the
/// others classified by their contents.
pub(super) fn full_tag_word(cpu: &Cpu) -> u64 {
    (0..8)
        .map(|p| {
            let t = if (cpu.fpu_tag >> (2 * p)) & 3 == 3 {
                3
            } else {
                tag_of(cpu.st[p])
            };
            t << (2 * p)
        })
        .sum()
}

pub fn exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let mem = (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory);
    let mut f = Fpu {
        cpu,
        underflow: false,
        saw_denormal: false,
    };
    if matches!(m, Fnop | Fneni | Fndisi | Fnsetpm) {
        // No operation (the last three are 8087/287 controls the 387 ignores).
        return Ok(());
    }
    if !matches!(m, Fcomi | Fcomip | Fucomi | Fucomip) {
        f.cpu.fpu_sw &= !C1;
    }
    match m {
        Fld => {
            // Extended operands (memory or register) are copied as they are, without checks.
            let b = if mem && ins.memory_size().size() == 10 {
                let a = ea(&mut Live::new(f.cpu), ins);
                [load(f.cpu, a, 8), load(f.cpu, a.wrapping_add(8), 2)]
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
        Fild => {
            let (v, _) = load_mem(f.cpu, ins, true);
            f.push(v);
        }
        Fstpnce => {
            // The alias encoding (d9 d8+i) raises no stack fault: an empty st(0) is only
            // popped, a full one copied and popped.
            let p = f.phys(0);
            if !f.tag_empty(p) {
                let b = f.cpu.st[p];
                f.set_st_raw(sti(ins, 0), b);
            }
            f.pop();
        }
        Fst | Fstp => {
            let v = f.st(0);
            if mem && ins.memory_size().size() == 10 && !f.underflow {
                // Extended stores copy the register's bits.
                let a = ea(&mut Live::new(f.cpu), ins);
                let b = f.cpu.st[f.phys(0)];
                store(f.cpu, a, b[0], 8);
                store(f.cpu, a.wrapping_add(8), b[1], 2);
            } else if mem {
                let a = ea(&mut Live::new(f.cpu), ins);
                store_float(&mut f, v, a, ins.memory_size().size());
            } else {
                let b = f.cpu.st[f.phys(0)];
                if !f.underflow {
                    f.set_st_raw(sti(ins, 0), b);
                } else {
                    f.set_st(sti(ins, 0), v);
                }
            }
            if m == Fstp {
                f.pop();
            }
        }
        Fist | Fistp | Fisttp => {
            let v = f.st(0);
            let a = ea(&mut Live::new(f.cpu), ins);
            store_int(&mut f, v, a, ins.memory_size().size(), m == Fisttp);
            if m != Fist {
                f.pop();
            }
        }
        Fadd | Faddp | Fiadd | Fsub | Fsubp | Fisub | Fsubr | Fsubrp | Fisubr | Fmul | Fmulp | Fimul | Fdiv | Fdivp
        | Fidiv | Fdivr | Fdivrp | Fidivr => {
            let (dst, src) = if mem {
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
            let r = arith(&mut f, m, a, src);
            f.set_st(dst, r);
            if matches!(m, Faddp | Fsubp | Fsubrp | Fmulp | Fdivp | Fdivrp) {
                f.pop();
            }
        }
        Fchs | Fabs => {
            let mut b = f.st_raw(0);
            if !f.underflow {
                b[1] = if m == Fchs { b[1] ^ 0x8000 } else { b[1] & 0x7fff };
            }
            f.set_st_raw(0, b);
        }
        Fxch => {
            let i = if ins.op_count() == 2 { sti(ins, 1) } else { 1 };
            // An empty register reads as the indefinite value, and the exchange goes ahead.
            let (a, b) = (f.st_raw(0), f.st_raw(i));
            f.underflow = false;
            f.set_st_raw(0, b);
            f.set_st_raw(i, a);
        }
        Fld1 | Fldz | Fldpi | Fldl2e | Fldl2t | Fldlg2 | Fldln2 => {
            // Constants with their 64-bit significands (rounded to nearest; RC adjusts the last
            // bit for pi, l2e, lg2, ln2 as the hardware does).
            let (sig, exp, round_up_bit): (u64, u32, Option<bool>) = match m {
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
        Fcom | Fcomp | Fcompp | Fucom | Fucomp | Fucompp | Ftst | Ficom | Ficomp => {
            let a = f.st(0);
            let b = if m == Ftst {
                Ext::ZERO
            } else if mem {
                let (v, fl) = load_mem(f.cpu, ins, matches!(m, Ficom | Ficomp));
                f.saw_denormal |= fl & DE != 0;
                f.cpu.fpu_sw |= fl & !DE;
                v
            } else if ins.op_count() >= 1 {
                f.st(sti(ins, ins.op_count() - 1))
            } else {
                f.st(1)
            };
            f.denormal(&[a, b]);
            let unordered_signals = matches!(m, Fcom | Fcomp | Fcompp | Ftst | Ficom | Ficomp);
            if (a.is_nan() || b.is_nan()) && (unordered_signals || a.is_signaling() || b.is_signaling()) {
                f.cpu.fpu_sw |= IE;
            }
            let cc = match compare(a, b) {
                None => C0 | C2 | C3,
                Some(Ordering::Less) => C0,
                Some(Ordering::Equal) => C3,
                Some(Ordering::Greater) => 0,
            };
            f.cpu.fpu_sw = (f.cpu.fpu_sw & !(C0 | C2 | C3)) | cc;
            if matches!(m, Fcomp | Fucomp | Ficomp) {
                f.pop();
            }
            if matches!(m, Fcompp | Fucompp) {
                f.pop();
                f.pop();
            }
        }
        Fcomi | Fcomip | Fucomi | Fucomip => {
            let a = f.st(0);
            let b = f.st(sti(ins, 1));
            f.denormal(&[a, b]);
            if (a.is_nan() || b.is_nan()) && (matches!(m, Fcomi | Fcomip) || a.is_signaling() || b.is_signaling()) {
                f.cpu.fpu_sw |= IE;
            }
            let fl = match compare(a, b) {
                None => 0x45,
                Some(Ordering::Less) => 0x01,
                Some(Ordering::Equal) => 0x40,
                Some(Ordering::Greater) => 0,
            };
            store_flags(
                f.cpu,
                Flags {
                    kind: FlagKind::Raw,
                    size: 8,
                    res: fl,
                    a: 0,
                    b: 0,
                    aux: 0,
                },
            );
            if matches!(m, Fcomip | Fucomip) {
                f.pop();
            }
        }
        Fxam => {
            // Classified from the register's encoding (pseudo-denormals count as denormal;
            // unnormals, pseudo-NaNs and pseudo-infinities as unsupported).
            let p = f.phys(0);
            let [m64, se] = f.cpu.st[p];
            let sign = if se & 0x8000 != 0 { C1 } else { 0 };
            let (e, int) = (se & 0x7fff, m64 >> 63 == 1);
            let class = if f.tag_empty(p) {
                C3 | C0
            } else if e == 0x7fff {
                match (int, m64 << 1 == 0) {
                    (false, _) => 0,
                    (true, true) => C2 | C0,
                    (true, false) => C0,
                }
            } else if e == 0 {
                if m64 == 0 {
                    C3
                } else {
                    C3 | C2
                }
            } else if int {
                C2
            } else {
                0
            };
            f.cpu.fpu_sw = (f.cpu.fpu_sw & !(C0 | C1 | C2 | C3)) | class | sign;
        }
        Frndint => {
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
        Fsqrt => {
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
        Fbld => {
            // 18 packed BCD digits and a sign byte.
            let a = ea(&mut Live::new(f.cpu), ins);
            let lo = load(f.cpu, a, 8);
            let hi = load(f.cpu, a.wrapping_add(8), 2);
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
        Fbstp => {
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
            store(f.cpu, a, lo, 8);
            store(f.cpu, a.wrapping_add(8), hi, 2);
            f.pop();
        }
        Fsin | Fcos | Fsincos | Fptan if matches!(m, Fsincos | Fptan) && f.full() && !f.tag_empty(f.phys(0)) => {
            // Stack overflow: both results are the indefinite value.
            f.cpu.fpu_sw |= IE | SF | C1;
            f.cpu.fpu_sw &= !C2;
            f.set_st(0, indefinite());
            f.cpu.fpu_top = (f.cpu.fpu_top + 7) & 7;
            f.set_st(0, indefinite());
        }
        Fsin | Fcos | Fsincos | Fptan => {
            let v = f.st(0);
            if v.is_signaling() {
                f.cpu.fpu_sw |= IE;
            }
            f.denormal(&[v]);
            f.cpu.fpu_sw &= !C2;
            let r = f.round();
            if v.is_nan() || v.is_infinite() {
                let n = if v.is_nan() {
                    nan_result(v, v)
                } else {
                    f.cpu.fpu_sw |= IE;
                    indefinite()
                };
                f.set_st(0, n);
                if matches!(m, Fsincos | Fptan) {
                    f.push(n);
                }
            } else if m == Fptan {
                match super::x87_trans::fptan(v, r) {
                    None => f.cpu.fpu_sw |= C2,
                    Some(t) => {
                        f.flag_result(t.value, t.status);
                        f.set_st(0, t.value);
                        f.push(Ext::from_u128(1).value);
                    }
                }
            } else {
                match super::x87_trans::fsincos(v, r) {
                    None => f.cpu.fpu_sw |= C2,
                    Some((s, c)) => match m {
                        Fsin => {
                            f.flag_result(s.value, s.status);
                            f.set_st(0, s.value);
                        }
                        Fcos => {
                            f.flag_result(c.value, c.status);
                            f.set_st(0, c.value);
                        }
                        _ => {
                            f.flag_result(s.value, s.status);
                            f.flag_result(c.value, c.status);
                            f.set_st(0, s.value);
                            f.push(c.value);
                        }
                    },
                }
            }
        }
        F2xm1 => {
            let v = f.st(0);
            let r = if let Some(n) = f.nan_in(&[v]) {
                n
            } else if v.is_infinite() {
                if v.is_negative() {
                    -Ext::from_u128(1).value
                } else {
                    v
                }
            } else {
                f.denormal(&[v]);
                let t = super::x87_trans::f2xm1(v, f.round());
                f.flag_result(t.value, t.status);
                t.value
            };
            f.set_st(0, r);
        }
        Fpatan | Fyl2x | Fyl2xp1 => {
            let (x, y) = (f.st(0), f.st(1));
            let before = f.cpu.fpu_sw;
            f.cpu.fpu_sw &= !(IE | ZE);
            let rm = f.round();
            let r = if let Some(n) = f.nan_in(&[x, y]) {
                n
            } else if m == Fpatan {
                f.denormal(&[x, y]);
                let t = super::x87_trans::fpatan(y, x, rm);
                f.flag_result(t.value, t.status);
                t.value
            } else if m == Fyl2xp1 {
                if x.is_infinite() || (y.is_infinite() && x.is_zero()) {
                    f.cpu.fpu_sw |= IE;
                    indefinite()
                } else if y.is_infinite() {
                    // log2(1 + x) has the sign of x.
                    if x.is_negative() {
                        -y
                    } else {
                        y
                    }
                } else {
                    f.denormal(&[x, y]);
                    let t = super::x87_trans::fyl2xp1(y, x, rm);
                    f.flag_result(t.value, t.status);
                    t.value
                }
            } else {
                let one = Ext::from_u128(1).value;
                let inf = Ext::INFINITY;
                if x.is_negative() && !x.is_zero() {
                    f.cpu.fpu_sw |= IE;
                    indefinite()
                } else if x.is_zero() {
                    if y.is_zero() {
                        f.cpu.fpu_sw |= IE;
                        indefinite()
                    } else {
                        if !y.is_infinite() {
                            f.cpu.fpu_sw |= ZE;
                        }
                        if y.is_negative() {
                            inf
                        } else {
                            -inf
                        }
                    }
                } else if x.is_infinite() {
                    if y.is_zero() {
                        f.cpu.fpu_sw |= IE;
                        indefinite()
                    } else if y.is_negative() {
                        -inf
                    } else {
                        inf
                    }
                } else if y.is_infinite() {
                    match compare(x, one) {
                        Some(Ordering::Equal) => {
                            f.cpu.fpu_sw |= IE;
                            indefinite()
                        }
                        Some(Ordering::Greater) => y,
                        _ => -y,
                    }
                } else {
                    f.denormal(&[x, y]);
                    let t = super::x87_trans::fyl2x(y, x, rm);
                    f.flag_result(t.value, t.status);
                    t.value
                }
            };
            // Denormal operands are reported unless the operation was invalid or divided by zero.
            if f.cpu.fpu_sw & (IE | ZE) == 0 && !x.is_nan() && !y.is_nan() {
                f.denormal(&[x, y]);
            }
            f.cpu.fpu_sw |= before & (IE | ZE);
            f.set_st(1, r);
            f.pop();
        }
        Fscale => {
            let (a, b) = (f.st(0), f.st(1));
            let r = if let Some(n) = f.nan_in(&[a, b]) {
                n
            } else if b.is_infinite() {
                // Scaling by an infinite power: exact zeros and infinities, invalid for 0 * 2^inf
                // and inf * 2^-inf.
                if (b.is_negative() && a.is_infinite()) || (!b.is_negative() && a.is_zero()) {
                    f.cpu.fpu_sw |= IE;
                    indefinite()
                } else if b.is_negative() {
                    f.denormal(&[a]);
                    if a.is_negative() {
                        -Ext::ZERO
                    } else {
                        Ext::ZERO
                    }
                } else {
                    f.denormal(&[a]);
                    if a.is_negative() {
                        -Ext::INFINITY
                    } else {
                        Ext::INFINITY
                    }
                }
            } else {
                f.denormal(&[a, b]);
                let mut exact = false;
                let n = b.to_i128_r(32, Round::TowardZero, &mut exact).value as i32;
                let n = n.clamp(-70000, 70000);
                let r = a.scalbn_r(n as _, f.round());
                // The soft-float scaling reports nothing: overflow, underflow, inexactness
                // and C1 (rounded up) come from comparing with the exact a * 2^n.
                if a.is_finite() && !a.is_zero() {
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
                r
            };
            f.set_st(0, r);
        }
        Fprem | Fprem1 => {
            let (a, b) = (f.st(0), f.st(1));
            let r = if m == Fprem { a.c_fmod(b) } else { a.ieee_rem(b) };
            // Without a quotient (NaN operands, invalid operations, underflow) C0 and C3 are
            // left as they were and C1, C2 cleared, as the CPU does.
            if a.is_nan() || b.is_nan() {
                f.cpu.fpu_sw &= !(C1 | C2);
                if a.is_signaling() || b.is_signaling() {
                    f.cpu.fpu_sw |= IE;
                }
                f.set_st(0, nan_result(a, b));
                return Ok(());
            }
            if r.status.contains(Status::INVALID_OP) {
                f.cpu.fpu_sw = (f.cpu.fpu_sw & !(C1 | C2)) | IE;
                f.set_st(0, indefinite());
                return Ok(());
            }
            f.denormal(&[a, b]);
            let mut sw = f.cpu.fpu_sw & !(C0 | C1 | C2 | C3);
            // The quotient's low bits, from the exact significands: C0, C3, C1 = Q2, Q1, Q0.
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
                f.cpu.fpu_sw = sw | C2;
                f.set_st(0, v);
                return Ok(());
            }
            let q: u128 = if a.is_zero() || b.is_infinite() || mb == 0 {
                0
            } else if (0..64).contains(&d) {
                let n = ma << d;
                let (q, rem) = (n / mb, n % mb);
                let up = m == Fprem1 && (2 * rem > mb || (2 * rem == mb && q & 1 == 1));
                q + up as u128
            } else if d == -1 && m == Fprem1 {
                (ma > mb) as u128
            } else {
                0
            };
            if q & 1 != 0 {
                sw |= C1;
            }
            if q & 2 != 0 {
                sw |= C3;
            }
            if q & 4 != 0 {
                sw |= C0;
            }
            f.cpu.fpu_sw = sw;
            f.set_st(0, r.value);
        }
        Fxtract if f.full() && !f.tag_empty(f.phys(0)) => {
            // Stack overflow: both results are the indefinite value.
            f.cpu.fpu_sw |= IE | SF | C1;
            f.set_st(0, indefinite());
            f.cpu.fpu_top = (f.cpu.fpu_top + 7) & 7;
            f.set_st(0, indefinite());
        }
        Fxtract => {
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
        Ffree | Ffreep => {
            let p = f.phys(sti(ins, 0));
            f.cpu.fpu_tag |= 3 << (2 * p);
            if m == Ffreep {
                f.pop();
            }
        }
        Fincstp => f.cpu.fpu_top = (f.cpu.fpu_top + 1) & 7,
        Fdecstp => f.cpu.fpu_top = (f.cpu.fpu_top + 7) & 7,
        _ => {
            // fcmovcc st(0), st(i)
            use super::emitter::Cc;
            let cc = match m {
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
            if super::concrete::cond(f.cpu, cc) {
                f.set_st_raw(0, v);
            } else if f.underflow {
                f.set_st_raw(0, d);
            }
        }
    }
    Ok(())
}
