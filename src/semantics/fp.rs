//! IEEE binary32/binary64 arithmetic as SSE performs it: MXCSR rounding, exception flags,
//! denormals-are-zero and flush-to-zero, and x86's NaN rules (first NaN operand propagated and
//! quieted; the default NaN is negative). Soft-float (rustc_apfloat), so results never depend on
//! the host's FPU.

use rustc_apfloat::ieee::{Double, Single};
use rustc_apfloat::{Float, FloatConvert, Round, Status, StatusAnd};

/// MXCSR bits.
pub mod mx {
    pub const IE: u32 = 1 << 0;
    pub const DE: u32 = 1 << 1;
    pub const ZE: u32 = 1 << 2;
    pub const OE: u32 = 1 << 3;
    pub const UE: u32 = 1 << 4;
    pub const PE: u32 = 1 << 5;
    pub const DAZ: u32 = 1 << 6;
    pub const FTZ: u32 = 1 << 15;
}

/// A float width: 4 or 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum W {
    S,
    D,
}

impl W {
    pub fn bits(self) -> u32 {
        match self {
            W::S => 32,
            W::D => 64,
        }
    }
    fn mant_bits(self) -> u32 {
        match self {
            W::S => 23,
            W::D => 52,
        }
    }
    pub fn mask(self) -> u64 {
        match self {
            W::S => 0xffff_ffff,
            W::D => u64::MAX,
        }
    }
    fn sign(self) -> u64 {
        1 << (self.bits() - 1)
    }
    fn exp_mask(self) -> u64 {
        (self.mask() >> (self.mant_bits() + 1)) << self.mant_bits()
    }
    fn mant_mask(self) -> u64 {
        (1 << self.mant_bits()) - 1
    }
    fn quiet_bit(self) -> u64 {
        1 << (self.mant_bits() - 1)
    }
    /// The x86 default NaN ("real indefinite").
    pub fn default_nan(self) -> u64 {
        self.sign() | self.exp_mask() | self.quiet_bit()
    }
    pub fn is_nan(self, v: u64) -> bool {
        v & self.exp_mask() == self.exp_mask() && v & self.mant_mask() != 0
    }
    pub fn is_snan(self, v: u64) -> bool {
        self.is_nan(v) && v & self.quiet_bit() == 0
    }
    pub fn quiet(self, v: u64) -> u64 {
        v | self.quiet_bit()
    }
    pub fn is_denormal(self, v: u64) -> bool {
        v & self.exp_mask() == 0 && v & self.mant_mask() != 0
    }
    fn is_zero(self, v: u64) -> bool {
        v & (self.exp_mask() | self.mant_mask()) == 0
    }
}

pub fn rounding(mxcsr: u32) -> Round {
    match (mxcsr >> 13) & 3 {
        0 => Round::NearestTiesToEven,
        1 => Round::TowardNegative,
        2 => Round::TowardPositive,
        _ => Round::TowardZero,
    }
}

pub fn status_flags(s: Status) -> u32 {
    let mut f = 0;
    if s.contains(Status::INVALID_OP) {
        f |= mx::IE;
    }
    if s.contains(Status::DIV_BY_ZERO) {
        f |= mx::ZE;
    }
    if s.contains(Status::OVERFLOW) {
        f |= mx::OE;
    }
    if s.contains(Status::UNDERFLOW) {
        f |= mx::UE;
    }
    if s.contains(Status::INEXACT) {
        f |= mx::PE;
    }
    f
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FOp {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
    Sqrt,
}

/// Applies DAZ to an input and raises DE for denormal inputs otherwise.
fn input(w: W, v: u64, mxcsr: &mut u32) -> u64 {
    if w.is_denormal(v) {
        if *mxcsr & mx::DAZ != 0 {
            return v & w.sign();
        }
        *mxcsr |= mx::DE;
    }
    v
}

fn apply<F: Float>(op: FOp, a: F, b: F, r: Round) -> StatusAnd<F> {
    match op {
        FOp::Add => a.add_r(b, r),
        FOp::Sub => a.sub_r(b, r),
        FOp::Mul => a.mul_r(b, r),
        FOp::Div => a.div_r(b, r),
        _ => unreachable!("not an apfloat operation"),
    }
}

fn compute(w: W, op: FOp, a: u64, b: u64, r: Round) -> (u64, Status) {
    match w {
        W::S => {
            let s = apply(op, Single::from_bits(a as u128), Single::from_bits(b as u128), r);
            (s.value.to_bits() as u64, s.status)
        }
        W::D => {
            let s = apply(op, Double::from_bits(a as u128), Double::from_bits(b as u128), r);
            (s.value.to_bits() as u64, s.status)
        }
    }
}

/// Whether the exact result of `a op b` is tiny as x86 detects tininess (SSE and x87 alike):
/// after rounding to the format's precision with an unbounded exponent, it lies below the
/// normal range. Only decides anything for a result that rounded to the smallest normal
/// magnitude (a denormal result is tiny either way). Computed on operands scaled by 2^64
/// (exactly), where the rounding meets no exponent bound.
fn tiny_after_rounding(w: W, op: FOp, a: u64, b: u64, r: Round) -> bool {
    const K: i32 = 64;
    fn scaled<F: Float>(op: FOp, a: F, b: F, r: Round) -> F {
        let (a, b) = match op {
            FOp::Add | FOp::Sub => (a.scalbn(K as _), b.scalbn(K as _)),
            _ => (a.scalbn(K as _), b),
        };
        apply(op, a, b, r).value
    }
    let v = match w {
        W::S => scaled(op, Single::from_bits(a as u128), Single::from_bits(b as u128), r).to_bits() as u64,
        W::D => scaled(op, Double::from_bits(a as u128), Double::from_bits(b as u128), r).to_bits() as u64,
    };
    v & !w.sign() < ((1 + K as u64) << w.mant_bits())
}

/// A finite non-negative value as (integer mantissa, exponent): v = m * 2^e.
fn decompose(w: W, v: u64) -> (u128, i32) {
    let mb = w.mant_bits();
    let bias = (1i32 << (w.bits() - mb - 2)) - 1;
    let e = ((v & w.exp_mask()) >> mb) as i32;
    let m = v & w.mant_mask();
    if e == 0 {
        (m as u128, 1 - bias - mb as i32)
    } else {
        ((m | (1 << mb)) as u128, e - bias - mb as i32)
    }
}

/// Exact comparison of r*r with x (both finite, non-negative).
fn cmp_square(w: W, r: u64, x: u64) -> std::cmp::Ordering {
    let (mr, er) = decompose(w, r);
    let (mx, ex) = decompose(w, x);
    let sq = mr * mr;
    let e2 = 2 * er;
    if sq == 0 || mx == 0 {
        return sq.cmp(&mx);
    }
    // Compare sq * 2^e2 with mx * 2^ex by shifting the one with the larger exponent left.
    let shift_cmp = |a: u128, b: u128, d: i32| -> std::cmp::Ordering {
        // compares a * 2^d with b, d >= 0
        if d >= 128 || a.leading_zeros() < d as u32 {
            std::cmp::Ordering::Greater
        } else {
            (a << d).cmp(&b)
        }
    };
    if e2 >= ex {
        shift_cmp(sq, mx, e2 - ex)
    } else {
        shift_cmp(mx, sq, ex - e2).reverse()
    }
}

/// Square root of a positive finite value, correctly rounded in every rounding mode.
fn sqrt(w: W, a: u64, r: Round) -> (u64, Status) {
    // Host sqrt is correctly rounded to nearest (IEEE-754 requires it; for binary32 the
    // binary64 root rounds correctly); an exact comparison of s*s with a gives the direction.
    let s = match w {
        W::D => f64::from_bits(a).sqrt().to_bits(),
        W::S => ((f32::from_bits(a as u32) as f64).sqrt() as f32).to_bits() as u64,
    };
    let o = cmp_square(w, s, a);
    if o == std::cmp::Ordering::Equal {
        return (s, Status::OK);
    }
    let up = o == std::cmp::Ordering::Less; // the true root is above s
    let adjusted = match r {
        Round::TowardPositive if up => next(w, s, true),
        Round::TowardNegative | Round::TowardZero if !up => next(w, s, false),
        _ => s,
    };
    (adjusted, Status::INEXACT)
}

fn next(w: W, v: u64, up: bool) -> u64 {
    // For positive finite v: the adjacent representable value.
    if up {
        v + 1
    } else {
        v.wrapping_sub(1) & w.mask()
    }
}

/// One SSE arithmetic operation on raw bits; updates the MXCSR flags.
pub fn binop(w: W, op: FOp, a: u64, b: u64, mxcsr: &mut u32) -> u64 {
    let (a, b) = (a & w.mask(), b & w.mask());
    if matches!(op, FOp::Min | FOp::Max) {
        if w.is_nan(a) || w.is_nan(b) {
            *mxcsr |= mx::IE;
            // The second operand is returned, after denormals-are-zero.
            return if *mxcsr & mx::DAZ != 0 && w.is_denormal(b) {
                b & w.sign()
            } else {
                b
            };
        }
        let (a, b) = (input(w, a, mxcsr), input(w, b, mxcsr));
        let lt = |x: u64, y: u64| compare(w, x, y) == Some(std::cmp::Ordering::Less);
        return if op == FOp::Min {
            if lt(a, b) {
                a
            } else {
                b
            }
        } else if lt(b, a) {
            a
        } else {
            b
        };
    }
    if op == FOp::Sqrt {
        if w.is_nan(b) {
            if w.is_snan(b) {
                *mxcsr |= mx::IE;
            }
            return w.quiet(b);
        }
        // A negative operand is invalid; the denormal flag is not raised with it.
        let z = if *mxcsr & mx::DAZ != 0 && w.is_denormal(b) {
            b & w.sign()
        } else {
            b
        };
        if z & w.sign() != 0 && !w.is_zero(z) {
            *mxcsr |= mx::IE;
            return w.default_nan();
        }
        let b = input(w, b, mxcsr);
        if w.is_zero(b) || b == w.exp_mask() {
            return b;
        }
        let (r, st) = sqrt(w, b, rounding(*mxcsr));
        *mxcsr |= status_flags(st);
        return r;
    }
    if w.is_nan(a) || w.is_nan(b) {
        if w.is_snan(a) || w.is_snan(b) {
            *mxcsr |= mx::IE;
        }
        return if w.is_nan(a) { w.quiet(a) } else { w.quiet(b) };
    }
    // Invalid and divide-by-zero take precedence over the denormal-operand flag.
    let daz = |v: u64| {
        if *mxcsr & mx::DAZ != 0 && w.is_denormal(v) {
            v & w.sign()
        } else {
            v
        }
    };
    let zero_div = op == FOp::Div && w.is_zero(daz(b)) && !w.is_zero(daz(a)) && a & w.exp_mask() != w.exp_mask();
    if zero_div {
        *mxcsr |= mx::ZE;
        return ((a ^ b) & w.sign()) | w.exp_mask();
    }
    let (a, b) = (input(w, a, mxcsr), input(w, b, mxcsr));
    let (mut r, mut st) = compute(w, op, a, b, rounding(*mxcsr));
    if st == Status::INEXACT && r & !w.sign() == w.exp_mask() - 1 && overflows_directed(w, op, a, b) {
        // A directed rounding that lands on the largest finite value after overflow.
        st |= Status::OVERFLOW;
    }
    if st.contains(Status::INVALID_OP) {
        *mxcsr |= mx::IE;
        return w.default_nan();
    }
    let mut flags = status_flags(st);
    let mut tiny = w.is_denormal(r) || (flags & mx::UE != 0 && w.is_zero(r));
    let min_normal = w.exp_mask() & w.exp_mask().wrapping_neg();
    if !tiny
        && st.contains(Status::INEXACT)
        && r & !w.sign() == min_normal
        && tiny_after_rounding(w, op, a, b, rounding(*mxcsr))
    {
        // Rounded to the smallest normal, yet tiny as x86 detects it (underflow; flushed
        // under FTZ).
        tiny = true;
        flags |= mx::UE;
    }
    if tiny {
        let masked = *mxcsr & (mx::UE << 7) != 0;
        if *mxcsr & mx::FTZ != 0 && masked {
            r &= w.sign();
            flags |= mx::UE | mx::PE;
        } else if !masked {
            // Unmasked, underflow is any tiny result, exact or not.
            flags |= mx::UE;
        } else if flags & mx::PE == 0 {
            // Masked, an exact tiny result does not underflow.
            flags &= !mx::UE;
        }
    }
    *mxcsr |= flags;
    r
}

/// Whether the exact result of `a op b` has a magnitude of at least 2^(emax+1), computed in a
/// wider format rounded toward zero (the threshold is representable there, so the test is
/// exact).
fn overflows_directed(w: W, op: FOp, a: u64, b: u64) -> bool {
    use rustc_apfloat::ieee::X87DoubleExtended as Ext;
    let mut loses = false;
    match w {
        W::S => {
            let (x, y): (Double, Double) = (
                Single::from_bits(a as u128)
                    .convert_r(Round::TowardZero, &mut loses)
                    .value,
                Single::from_bits(b as u128)
                    .convert_r(Round::TowardZero, &mut loses)
                    .value,
            );
            let r = apply(op, x, y, Round::TowardZero).value.abs();
            r >= Double::from_bits(0x47f0_0000_0000_0000)
        }
        W::D => {
            let (x, y): (Ext, Ext) = (
                Double::from_bits(a as u128)
                    .convert_r(Round::TowardZero, &mut loses)
                    .value,
                Double::from_bits(b as u128)
                    .convert_r(Round::TowardZero, &mut loses)
                    .value,
            );
            let r = apply(op, x, y, Round::TowardZero).value.abs();
            let limit: Ext = Double::from_bits(0x7fef_ffff_ffff_ffff)
                .convert_r(Round::TowardZero, &mut loses)
                .value;
            let limit = limit
                .add_r(
                    Double::from_bits(0x7ca0_0000_0000_0000)
                        .convert_r(Round::TowardZero, &mut loses)
                        .value,
                    Round::TowardZero,
                )
                .value;
            r >= limit
        }
    }
}

/// Ordering of two non-NaN values (None when either is NaN).
pub fn compare(w: W, a: u64, b: u64) -> Option<std::cmp::Ordering> {
    match w {
        W::S => Single::from_bits(a as u128).partial_cmp(&Single::from_bits(b as u128)),
        W::D => Double::from_bits(a as u128).partial_cmp(&Double::from_bits(b as u128)),
    }
}

/// CMPSS/CMPSD predicate 0..7: all-ones or zero. Signalling predicates raise IE on any NaN.
pub fn cmp_pred(w: W, pred: u8, a: u64, b: u64, mxcsr: &mut u32) -> bool {
    let (a, b) = (a & w.mask(), b & w.mask());
    let unordered = w.is_nan(a) || w.is_nan(b);
    let signalling = matches!(pred & 7, 1 | 2 | 5 | 6);
    if unordered && (signalling || w.is_snan(a) || w.is_snan(b)) {
        *mxcsr |= mx::IE;
    }
    let o = if unordered {
        None
    } else {
        let (a, b) = (input(w, a, mxcsr), input(w, b, mxcsr));
        compare(w, a, b)
    };
    use std::cmp::Ordering::*;
    match pred & 7 {
        0 => o == Some(Equal),
        1 => o == Some(Less),
        2 => matches!(o, Some(Less | Equal)),
        3 => unordered,
        4 => o != Some(Equal),
        5 => !matches!(o, Some(Less)),
        6 => !matches!(o, Some(Less | Equal)),
        _ => !unordered,
    }
}

/// COMIS*/UCOMIS*: the ZF/PF/CF RFLAGS bits. `signal_qnan` for COMIS*.
pub fn comi(w: W, a: u64, b: u64, signal_qnan: bool, mxcsr: &mut u32) -> u64 {
    let (a, b) = (a & w.mask(), b & w.mask());
    if w.is_nan(a) || w.is_nan(b) {
        if signal_qnan || w.is_snan(a) || w.is_snan(b) {
            *mxcsr |= mx::IE;
        }
        return 0x45; // ZF PF CF
    }
    let (a, b) = (input(w, a, mxcsr), input(w, b, mxcsr));
    match compare(w, a, b) {
        Some(std::cmp::Ordering::Less) => 0x01,
        Some(std::cmp::Ordering::Equal) => 0x40,
        _ => 0,
    }
}

/// Integer (signed, `ibits` wide) to float.
pub fn from_int(w: W, v: i64, mxcsr: &mut u32) -> u64 {
    let r = rounding(*mxcsr);
    let (bits, st) = match w {
        W::S => {
            let s = Single::from_i128_r(v as i128, r);
            (s.value.to_bits() as u64, s.status)
        }
        W::D => {
            let s = Double::from_i128_r(v as i128, r);
            (s.value.to_bits() as u64, s.status)
        }
    };
    *mxcsr |= status_flags(st);
    bits
}

/// Float to signed integer of `ibits` (32 or 64); `truncate` for the CVTT forms. Out of range
/// and NaN give the integer indefinite value and IE.
pub fn to_int(w: W, v: u64, ibits: u32, truncate: bool, mxcsr: &mut u32) -> u64 {
    let v = v & w.mask();
    let indefinite = 1u64 << (ibits - 1);
    if w.is_nan(v) {
        *mxcsr |= mx::IE;
        return indefinite;
    }
    // Conversions to integers honour DAZ but never raise the denormal flag.
    let v = if *mxcsr & mx::DAZ != 0 && w.is_denormal(v) {
        v & w.sign()
    } else {
        v
    };
    let r = if truncate { Round::TowardZero } else { rounding(*mxcsr) };
    let mut exact = false;
    let s = match w {
        W::S => Single::from_bits(v as u128).to_i128_r(ibits as usize, r, &mut exact),
        W::D => Double::from_bits(v as u128).to_i128_r(ibits as usize, r, &mut exact),
    };
    if s.status.contains(Status::INVALID_OP) {
        *mxcsr |= mx::IE;
        return indefinite;
    }
    *mxcsr |= status_flags(s.status);
    (s.value as i64 as u64) & if ibits == 32 { 0xffff_ffff } else { u64::MAX }
}

/// Float to float of the other width (CVTSS2SD / CVTSD2SS).
pub fn convert(from: W, v: u64, mxcsr: &mut u32) -> u64 {
    let v = v & from.mask();
    let to = if from == W::S { W::D } else { W::S };
    if from.is_nan(v) {
        if from.is_snan(v) {
            *mxcsr |= mx::IE;
        }
        let sign = (v & from.sign() != 0) as u64;
        let payload = v & from.mant_mask() | from.quiet_bit();
        let p = if to == W::D { payload << 29 } else { payload >> 29 };
        return (sign << (to.bits() - 1)) | to.exp_mask() | p;
    }
    let v = input(from, v, mxcsr);
    let r = rounding(*mxcsr);
    let mut loses = false;
    let (mut bits, st) = match from {
        W::S => {
            let s: StatusAnd<Double> = Single::from_bits(v as u128).convert_r(r, &mut loses);
            (s.value.to_bits() as u64, s.status)
        }
        W::D => {
            let s: StatusAnd<Single> = Double::from_bits(v as u128).convert_r(r, &mut loses);
            (s.value.to_bits() as u64, s.status)
        }
    };
    let mut flags = status_flags(st);
    if from == W::D && st == Status::INEXACT && v & !from.sign() >= 0x47f0_0000_0000_0000 {
        // Directed rounding to the largest single after overflow (|v| >= 2^128).
        flags |= mx::OE;
    }
    // A double that rounded to the smallest normal single may still be tiny (after rounding
    // to 24 bits with an unbounded exponent, decided on the value scaled by 2^64).
    let tiny = to.is_denormal(bits)
        || (from == W::D && st.contains(Status::INEXACT) && bits & !to.sign() == 0x0080_0000 && {
            let s: StatusAnd<Single> = Double::from_bits(v as u128).scalbn(64).convert_r(r, &mut loses);
            s.value.to_bits() as u64 & !to.sign() < (65 << 23)
        });
    if tiny && (st.contains(Status::INEXACT) || *mxcsr & (mx::UE << 7) == 0) {
        // Masked, only an inexact tiny result underflows; unmasked, any tiny one.
        flags |= mx::UE;
    }
    if tiny && *mxcsr & mx::FTZ != 0 && *mxcsr & (mx::UE << 7) != 0 {
        bits &= to.sign();
        flags |= mx::UE | mx::PE;
    }
    *mxcsr |= flags;
    bits
}

/// ROUNDSS/ROUNDSD/ROUNDPS/ROUNDPD: round to an integral value with rounding `mode` (0 nearest
/// even, 1 down, 2 up, 3 toward zero); `quiet` suppresses the precision exception. NaNs are
/// quieted (IE for a signalling one); denormal inputs are zeroed under DAZ (no DE is raised).
pub fn round_to_int(w: W, v: u64, mode: u32, quiet: bool, mxcsr: &mut u32) -> u64 {
    let v = v & w.mask();
    if w.is_nan(v) {
        if w.is_snan(v) {
            *mxcsr |= mx::IE;
        }
        return v | w.quiet_bit();
    }
    let v = if w.is_denormal(v) && *mxcsr & mx::DAZ != 0 {
        v & w.sign()
    } else {
        v
    };
    let r = match mode & 3 {
        0 => Round::NearestTiesToEven,
        1 => Round::TowardNegative,
        2 => Round::TowardPositive,
        _ => Round::TowardZero,
    };
    let bits = match w {
        W::S => Single::from_bits(v as u128).round_to_integral(r).value.to_bits() as u64,
        W::D => Double::from_bits(v as u128).round_to_integral(r).value.to_bits() as u64,
    };
    // Exact exactly when nothing changed (the library may flag exact integers as inexact).
    if !quiet && bits != v {
        *mxcsr |= mx::PE;
    }
    bits
}

/// The CPU's reciprocal and reciprocal-square-root approximations (rcpss, rsqrtss and their
/// packed forms): implementation-specific, so Kiln carries the tables of one CPU family (AMD
/// family 17h and later: results depend on the top 12 significand bits only, exponents scale
/// exactly). `tools/rcp_table.c` measures them and checks that model on every normal input.
static APPROX: &[u8; 3 * 4096 * 4] = include_bytes!("rcp_rsqrt.bin");

fn approx_table(t: usize, i: usize) -> u32 {
    let o = (t * 4096 + i) * 4;
    u32::from_le_bytes([APPROX[o], APPROX[o + 1], APPROX[o + 2], APPROX[o + 3]])
}

/// rcpss (`rsqrt` false) or rsqrtss of one binary32 value. Raises no exceptions; denormal
/// inputs count as zero and results below the normal range are zero, whatever DAZ and FTZ say.
pub fn approx(v: u32, rsqrt: bool) -> u32 {
    let sign = v & 0x8000_0000;
    let (e, m) = ((v >> 23) & 0xff, v & 0x7f_ffff);
    if e == 0xff && m != 0 {
        return v | 0x40_0000;
    }
    if e == 0 {
        return sign | 0x7f80_0000;
    }
    if rsqrt && sign != 0 {
        return 0xffc0_0000;
    }
    if e == 0xff {
        return sign;
    }
    let e = e as i32 - 127;
    let i = (m >> 11) as usize;
    let (base, k) = if rsqrt {
        let k = e.div_euclid(2);
        (approx_table(1 + (e - 2 * k) as usize, i), k)
    } else {
        (approx_table(0, i), e)
    };
    let ex = ((base >> 23) & 0xff) as i32 - k;
    let r = if ex < 1 {
        0
    } else if ex > 254 {
        0x7f80_0000
    } else {
        (base & 0x7f_ffff) | (ex as u32) << 23
    };
    sign | r
}
