//! The transcendental instructions over the register stack: their special operands (NaNs,
//! infinities, zeros, stack overflow) and flags; the functions themselves are in `evaluate`.

mod evaluate;

use super::compare::compare;
use super::state::{indefinite, nan_result};
use super::{Fpu, C2, IE, ZE};
use iced_x86::{Instruction, Mnemonic};
use rustc_apfloat::ieee::X87DoubleExtended as Ext;
use rustc_apfloat::{Float, Round};
use std::cmp::Ordering;

/// fsin, fcos, fsincos, fptan.
pub(super) fn trigonometric(f: &mut Fpu, ins: &Instruction) {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let pushes = matches!(m, Fsincos | Fptan);
    if pushes && f.full() && !f.tag_empty(f.phys(0)) {
        f.cpu.fpu_sw &= !C2;
        f.overflow_both();
        return;
    }
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
        if pushes {
            f.push(n);
        }
    } else if m == Fptan {
        match evaluate::fptan(v, r) {
            None => f.cpu.fpu_sw |= C2,
            Some(t) => {
                f.flag_result(t.value, t.status);
                f.set_st(0, t.value);
                f.push(Ext::from_u128(1).value);
            }
        }
    } else {
        sine_cosine(f, m, v, r);
    }
}

/// fsin, fcos, fsincos of a finite operand (C2 when it is out of range).
fn sine_cosine(f: &mut Fpu, m: Mnemonic, v: Ext, r: Round) {
    match evaluate::fsincos(v, r) {
        None => f.cpu.fpu_sw |= C2,
        Some((s, c)) => match m {
            Mnemonic::Fsin => {
                f.flag_result(s.value, s.status);
                f.set_st(0, s.value);
            }
            Mnemonic::Fcos => {
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

pub(super) fn f2xm1(f: &mut Fpu, _: &Instruction) {
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
        let t = evaluate::f2xm1(v, f.round());
        f.flag_result(t.value, t.status);
        t.value
    };
    f.set_st(0, r);
}

/// fpatan, fyl2x, fyl2xp1: st(1) = f(st(1), st(0)), then pop.
pub(super) fn two_operand(f: &mut Fpu, ins: &Instruction) {
    let (x, y) = (f.st(0), f.st(1));
    let before = f.cpu.fpu_sw;
    f.cpu.fpu_sw &= !(IE | ZE);
    let r = if let Some(n) = f.nan_in(&[x, y]) {
        n
    } else {
        match ins.mnemonic() {
            Mnemonic::Fpatan => {
                f.denormal(&[x, y]);
                let t = evaluate::fpatan(y, x, f.round());
                f.flag_result(t.value, t.status);
                t.value
            }
            Mnemonic::Fyl2xp1 => fyl2xp1(f, x, y),
            _ => fyl2x(f, x, y),
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

/// y * log2(1 + x) of non-NaN operands.
fn fyl2xp1(f: &mut Fpu, x: Ext, y: Ext) -> Ext {
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
        let t = evaluate::fyl2xp1(y, x, f.round());
        f.flag_result(t.value, t.status);
        t.value
    }
}

/// y * log2(x) of non-NaN operands.
fn fyl2x(f: &mut Fpu, x: Ext, y: Ext) -> Ext {
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
        let t = evaluate::fyl2x(y, x, f.round());
        f.flag_result(t.value, t.status);
        t.value
    }
}
