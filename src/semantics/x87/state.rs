//! The register stack and its tags, the status and control words: reading and writing ST(i)
//! with underflow and overflow, rounding and precision control, the exception flags, and the
//! words FNSTSW, FNSTENV, FNSAVE and FXSAVE store.

use super::{Fpu, C1, DE, IE, SF};
use crate::cpu::Cpu;
use crate::semantics::fp;
use rustc_apfloat::ieee::{Double, Single, X87DoubleExtended as Ext};
use rustc_apfloat::{Float, FloatConvert, Round, Status, StatusAnd};

pub(super) fn to_ext(v: [u64; 2]) -> Ext {
    // A pseudo-denormal (exponent field 0, integer bit set) has the value of the same
    // significand with exponent field 1.
    let e = if v[1] & 0x7fff == 0 && v[0] >> 63 == 1 {
        v[1] | 1
    } else {
        v[1]
    };
    Ext::from_bits(v[0] as u128 | ((e & 0xffff) as u128) << 64)
}

pub(super) fn from_ext(e: Ext) -> [u64; 2] {
    let b = e.to_bits();
    [b as u64, ((b >> 64) as u64) & 0xffff]
}

pub(super) fn rounding(cw: u16) -> Round {
    match (cw >> 10) & 3 {
        0 => Round::NearestTiesToEven,
        1 => Round::TowardNegative,
        2 => Round::TowardPositive,
        _ => Round::TowardZero,
    }
}

pub(super) fn sw_flags(s: Status) -> u16 {
    fp::status_flags(s) as u16
}

impl Fpu<'_> {
    pub(super) fn phys(&self, i: usize) -> usize {
        (self.cpu.fpu_top as usize + i) & 7
    }
    pub(super) fn tag_empty(&self, p: usize) -> bool {
        (self.cpu.fpu_tag >> (2 * p)) & 3 == 3
    }
    /// Marks physical register `p` in use. Only emptiness is kept: FNSTENV and FNSAVE derive
    /// the full tags from the contents (`full_tag_word`).
    pub(super) fn mark_full(&mut self, p: usize) {
        self.cpu.fpu_tag &= !(3 << (2 * p));
    }
    pub(super) fn st(&mut self, i: usize) -> Ext {
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
    pub(super) fn set_st(&mut self, i: usize, v: Ext) {
        let v = if self.underflow { indefinite() } else { v };
        let p = self.phys(i);
        self.cpu.st[p] = from_ext(v);
        self.mark_full(p);
    }
    /// ST(i)'s bits as stored (no conversion), or the indefinite value on underflow.
    pub(super) fn st_raw(&mut self, i: usize) -> [u64; 2] {
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
    pub(super) fn set_st_raw(&mut self, i: usize, b: [u64; 2]) {
        let b = if self.underflow { from_ext(indefinite()) } else { b };
        let p = self.phys(i);
        self.cpu.st[p] = b;
        self.mark_full(p);
    }
    /// Whether a push would overflow the stack (the register below the top is in use).
    pub(super) fn full(&self) -> bool {
        !self.tag_empty(((self.cpu.fpu_top + 7) & 7) as usize)
    }
    /// The NaN result when an operand is a NaN (IE when one signals).
    pub(super) fn nan_in(&mut self, vs: &[Ext]) -> Option<Ext> {
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
    pub(super) fn denormal(&mut self, vs: &[Ext]) {
        if !vs.iter().any(|v| v.is_nan()) && (self.saw_denormal || vs.iter().any(|v| v.is_denormal())) {
            self.cpu.fpu_sw |= DE;
        }
    }
    pub(super) fn push(&mut self, v: Ext) {
        self.push_raw(from_ext(v));
    }
    pub(super) fn push_raw(&mut self, b: [u64; 2]) {
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
    /// A two-result instruction (fxtract, fsincos, fptan) on a full stack: both results are
    /// the indefinite value.
    pub(super) fn overflow_both(&mut self) {
        self.cpu.fpu_sw |= IE | SF | C1;
        self.set_st(0, indefinite());
        self.cpu.fpu_top = (self.cpu.fpu_top + 7) & 7;
        self.set_st(0, indefinite());
    }
    pub(super) fn pop(&mut self) {
        let p = self.phys(0);
        self.cpu.fpu_tag |= 3 << (2 * p);
        self.cpu.fpu_top = (self.cpu.fpu_top + 1) & 7;
    }
    pub(super) fn round(&self) -> Round {
        rounding(self.cpu.fpu_cw)
    }
    /// Applies precision control (24 or 53 bits) to an arithmetic result: `r` is the result
    /// rounded to 64 bits in the control word's mode, `tz` the same operation rounded toward
    /// zero. Rounding `r` again could round twice (a value just above a 24-bit tie becomes the
    /// tie at 64 bits, then rounds to even); instead `tz` with its lowest bit set when inexact
    /// (round to odd, exact for any narrower width) is rounded once.
    pub(super) fn precision(&mut self, r: StatusAnd<Ext>, tz: StatusAnd<Ext>) -> Ext {
        let (v, s) = self.rounded(r, tz);
        self.flag(r.status | s);
        v
    }
    /// `precision` without setting flags: the value and the status of the narrowing.
    pub(super) fn rounded(&self, r: StatusAnd<Ext>, tz: StatusAnd<Ext>) -> (Ext, Status) {
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
    pub(super) fn to_precision(&self, v: Ext, round: Round) -> (Ext, Status) {
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
    pub(super) fn truncated(&self, v: Ext) -> Ext {
        self.to_precision(v, Round::TowardZero).0
    }
    /// Flags of a transcendental result: underflow when it is tiny and inexact.
    pub(super) fn flag_result(&mut self, v: Ext, s: Status) {
        self.flag(s);
        if (v.is_denormal() || v.is_zero()) && s.contains(Status::INEXACT) {
            self.cpu.fpu_sw |= fp::mx::UE as u16;
        }
    }
    pub(super) fn flag(&mut self, s: Status) {
        self.cpu.fpu_sw |= sw_flags(s);
        if s.contains(Status::INEXACT) {
            self.cpu.fpu_sw &= !C1;
        }
    }
}

pub(super) fn indefinite() -> Ext {
    Ext::from_bits(0xffff_c000_0000_0000_0000)
}

/// x87 NaN propagation: of two NaNs the one with the larger significand, quieted.
pub(super) fn nan_result(a: Ext, b: Ext) -> Ext {
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

/// The status word with the current stack top in bits 11-13.
pub fn status_word(cpu: &Cpu) -> u64 {
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
pub fn full_tag_word(cpu: &Cpu) -> u64 {
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
