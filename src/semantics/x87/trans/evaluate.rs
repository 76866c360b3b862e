//! The x87 transcendental functions (fsin, fcos, fsincos, fptan, fpatan, f2xm1, fyl2x,
//! fyl2xp1) evaluated in binary128 (113-bit significand, rustc_apfloat's `Quad`) and rounded once to the
//! 80-bit format. Argument reduction for the trigonometric functions uses the 66-bit value of
//! pi that the hardware uses, so large arguments reduce as they do on the CPU.

use rustc_apfloat::ieee::{Quad as Q, X87DoubleExtended as Ext};
use rustc_apfloat::{Float, FloatConvert, Round, StatusAnd};

const RN: Round = Round::NearestTiesToEven;

fn q(v: Ext) -> Q {
    let mut l = false;
    v.convert_r(RN, &mut l).value
}

fn qi(n: i64) -> Q {
    Q::from_i128(n as i128).value
}

fn add(a: Q, b: Q) -> Q {
    a.add_r(b, RN).value
}
fn sub(a: Q, b: Q) -> Q {
    a.sub_r(b, RN).value
}
fn mul(a: Q, b: Q) -> Q {
    a.mul_r(b, RN).value
}
fn div(a: Q, b: Q) -> Q {
    a.div_r(b, RN).value
}

/// The hardware's pi: 0xC90FDAA22168C234C * 2^-66 (66 significant bits).
fn pi66() -> Q {
    let m = Q::from_u128(0x000C_90FD_AA22_168C_234C).value;
    m.scalbn_r(-66, RN)
}

fn ln2() -> Q {
    "0.693147180559945309417232121458176568075500134360255254120680009"
        .parse::<Q>()
        .unwrap_or(Q::ZERO)
}

fn pi() -> Q {
    "3.14159265358979323846264338327950288419716939937510582097494459"
        .parse::<Q>()
        .unwrap_or(Q::ZERO)
}

/// Sums a series until the term no longer changes the sum.
fn series(mut term: Q, mut next: impl FnMut(Q, i64) -> Q) -> Q {
    let mut sum = term;
    for k in 1..200 {
        term = next(term, k);
        let s = add(sum, term);
        if s.bitwise_eq(sum) {
            break;
        }
        sum = s;
    }
    sum
}

/// sin and cos of |r| <= pi/4.
fn sin_cos_small(r: Q) -> (Q, Q) {
    let r2 = mul(r, r);
    let s = series(r, |t, k| div(mul(t, r2), qi(-(2 * k) * (2 * k + 1))));
    let c = series(qi(1), |t, k| div(mul(t, r2), qi(-(2 * k - 1) * (2 * k))));
    (s, c)
}

/// sin and cos of x, |x| < 2^63, reduced modulo pi/2 with the hardware's pi.
fn sin_cos(x: Q) -> (Q, Q) {
    let half = pi66().scalbn_r(-1, RN);
    let mut ex = false;
    let k = div(x, half).to_i128_r(128, RN, &mut ex).value;
    let r = sub(x, mul(Q::from_i128(k).value, half));
    let (s, c) = sin_cos_small(r);
    match k.rem_euclid(4) {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

fn sqrt(a: Q) -> Q {
    if a.is_zero() {
        return a;
    }
    let mut l = false;
    let d: rustc_apfloat::ieee::Double = a.convert_r(RN, &mut l).value;
    let mut y: Q = rustc_apfloat::ieee::Double::from_bits(f64::from_bits(d.to_bits() as u64).sqrt().to_bits() as u128)
        .convert_r(RN, &mut l)
        .value;
    for _ in 0..4 {
        y = div(add(y, div(a, y)), qi(2));
    }
    y
}

/// atan of x >= 0.
fn atan_pos(x: Q) -> Q {
    let one = qi(1);
    let (x, invert) = if x > one { (div(one, x), true) } else { (x, false) };
    // atan(x) = 2 atan(x / (1 + sqrt(1 + x^2))), three times: |x| < 0.05.
    let mut x = x;
    for _ in 0..3 {
        x = div(x, add(one, sqrt(add(one, mul(x, x)))));
    }
    let x2 = mul(x, x);
    let mut term = x;
    let mut sum = x;
    for k in 1..200 {
        term = mul(term, -x2);
        let s = add(sum, div(term, qi(2 * k + 1)));
        if s.bitwise_eq(sum) {
            break;
        }
        sum = s;
    }
    let a = sum.scalbn_r(3, RN);
    if invert {
        sub(pi().scalbn_r(-1, RN), a)
    } else {
        a
    }
}

/// atan2(y, x) for finite or infinite non-NaN operands.
fn atan2(y: Q, x: Q) -> Q {
    let p = pi();
    if y.is_zero() {
        let base = if x.is_negative() { p } else { Q::ZERO };
        return if y.is_negative() { -base } else { base };
    }
    if x.is_infinite() || y.is_infinite() {
        let v = match (x.is_infinite(), y.is_infinite(), x.is_negative()) {
            (true, true, false) => p.scalbn_r(-2, RN),
            (true, true, true) => mul(p, Q::from_u128(3).value).scalbn_r(-2, RN),
            (true, false, false) => Q::ZERO,
            (true, false, true) => p,
            _ => p.scalbn_r(-1, RN),
        };
        return if y.is_negative() { -v } else { v };
    }
    if x.is_zero() {
        let v = p.scalbn_r(-1, RN);
        return if y.is_negative() { -v } else { v };
    }
    let a = atan_pos(div(y.abs(), x.abs()));
    let a = if x.is_negative() { sub(p, a) } else { a };
    if y.is_negative() {
        -a
    } else {
        a
    }
}

/// e^t - 1 for small |t|.
fn expm1(t: Q) -> Q {
    series(t, |term, k| div(mul(term, t), qi(k + 1)))
}

/// ln(m) for m near 1, as 2 atanh((m-1)/(m+1)).
fn ln_near_one(num: Q, den: Q) -> Q {
    let s = div(num, den);
    let s2 = mul(s, s);
    let mut term = s;
    let mut sum = s;
    for k in 1..400 {
        term = mul(term, s2);
        let v = add(sum, div(term, qi(2 * k + 1)));
        if v.bitwise_eq(sum) {
            break;
        }
        sum = v;
    }
    sum.scalbn_r(1, RN)
}

/// log2 of a positive finite x.
fn log2(x: Q) -> Q {
    // x = m * 2^e with m in [sqrt(1/2), sqrt(2)).
    let e = x.ilogb();
    let mut m = x.scalbn_r(-e, RN);
    let mut e = e as i64;
    if m > "1.41421356237309504880168872420969807856967187537694"
        .parse::<Q>()
        .unwrap_or(Q::ZERO)
    {
        m = m.scalbn_r(-1, RN);
        e += 1;
    }
    let one = qi(1);
    add(qi(e), div(ln_near_one(sub(m, one), add(m, one)), ln2()))
}

/// Rounds to the 80-bit format in the given mode. The hardware reports every computed
/// transcendental result other than zero as inexact, even where the value happens to be exact.
fn out(v: Q, r: Round) -> StatusAnd<Ext> {
    let mut l = false;
    let mut o: StatusAnd<Ext> = v.convert_r(r, &mut l);
    if !v.is_zero() {
        o.status |= rustc_apfloat::Status::INEXACT;
    }
    // A directed rounding to the largest finite value hides the overflow.
    let big: Q = Ext::largest().convert_r(RN, &mut l).value;
    if v.is_finite() && v.abs() > big {
        o.status |= rustc_apfloat::Status::OVERFLOW;
    }
    o
}

/// Results of the trigonometric instructions: None when |x| >= 2^63 (C2 set, operand kept).
pub(super) fn fsincos(x: Ext, r: Round) -> Option<(StatusAnd<Ext>, StatusAnd<Ext>)> {
    if x.is_zero() {
        return Some((
            StatusAnd {
                status: rustc_apfloat::Status::OK,
                value: x,
            },
            out(qi(1), r),
        ));
    }
    if x.ilogb() >= 63 {
        return None;
    }
    let (s, c) = sin_cos(q(x));
    Some((out(s, r), out(c, r)))
}

pub(super) fn fptan(x: Ext, r: Round) -> Option<StatusAnd<Ext>> {
    if x.is_zero() {
        return Some(StatusAnd {
            status: rustc_apfloat::Status::OK,
            value: x,
        });
    }
    if x.ilogb() >= 63 {
        return None;
    }
    let (s, c) = sin_cos(q(x));
    Some(out(div(s, c), r))
}

pub(super) fn fpatan(y: Ext, x: Ext, r: Round) -> StatusAnd<Ext> {
    let mut o = out(atan2(q(y), q(x)), r);
    if o.value.is_zero() && !y.is_zero() && x.is_finite() {
        // y/x below even binary128's range: a tiny inexact result.
        o.status |= rustc_apfloat::Status::INEXACT | rustc_apfloat::Status::UNDERFLOW;
    }
    o
}

/// 2^x - 1 for |x| <= 1 (outside, the hardware's result is undefined; computed the same way).
pub(super) fn f2xm1(x: Ext, r: Round) -> StatusAnd<Ext> {
    if x.is_zero() {
        return StatusAnd {
            status: rustc_apfloat::Status::OK,
            value: x,
        };
    }
    tiny_if_zero(out(expm1(mul(q(x), ln2())), r), true)
}

/// A result that vanished although the exact one is not zero (below even binary128's range):
/// tiny and inexact.
fn tiny_if_zero(mut o: StatusAnd<Ext>, nonzero: bool) -> StatusAnd<Ext> {
    if o.value.is_zero() && nonzero {
        o.status |= rustc_apfloat::Status::INEXACT | rustc_apfloat::Status::UNDERFLOW;
    }
    o
}

/// y * log2(x) for finite x > 0.
pub(super) fn fyl2x(y: Ext, x: Ext, r: Round) -> StatusAnd<Ext> {
    let one = Ext::from_u128(1).value;
    let p = mul(q(y), log2(q(x)));
    if p.is_infinite() {
        // Beyond binary128's range too (|y| near the largest value, log2(x) up to 16384):
        // an overflow, rounded as the control word says.
        let away = match r {
            Round::NearestTiesToEven => true,
            Round::TowardPositive => !p.is_negative(),
            Round::TowardNegative => p.is_negative(),
            _ => false,
        };
        let v = if away { Ext::INFINITY } else { Ext::largest() };
        return StatusAnd {
            status: rustc_apfloat::Status::OVERFLOW | rustc_apfloat::Status::INEXACT,
            value: if p.is_negative() { -v } else { v },
        };
    }
    tiny_if_zero(out(p, r), !y.is_zero() && x != one)
}

/// y * log2(1 + x) for |x| < 1 - sqrt(2)/2.
pub(super) fn fyl2xp1(y: Ext, x: Ext, r: Round) -> StatusAnd<Ext> {
    let x = q(x);
    let l = div(ln_near_one(x, add(qi(2), x)), ln2());
    tiny_if_zero(out(mul(q(y), l), r), !y.is_zero() && !x.is_zero())
}
