//! SSE floating point lowered to host IEEE instructions wherever they cannot differ from the
//! soft-float semantics (`semantics::fp`). A guard evaluated at run time decides: the MXCSR
//! settings the operation depends on, and operands and results away from NaN, infinity, zero
//! (where it matters), denormals and the edges of the range. Then the host's correctly rounded
//! result is the soft-float one and no MXCSR flag can change. Anything else runs the whole
//! instruction through the slow helper, which runs those semantics: that path stores the cached
//! registers for it and reloads the result, the fast path keeps everything in SSA values.
//!
//! Most results need no check of their own. An operand not yet known to be a normal number or
//! a zero is checked to lie within `TIGHT` binades of 1.0; from where its operands lie,
//! `derive` bounds where a result lies, and where that bound is certainly normal (a product of
//! two checked operands, a sum, a root of a sum of squares), the result is known without a
//! check and its bound goes on to the operations that use it. What checks and bounds found
//! holds in the blocks they dominate (`Known::floats`).

use super::{mf, Lower};
use crate::cpu::flags::{Cc, Flags};
use crate::cpu::ops::Ops;
use crate::cpu::{off, FlagKind};
use crate::jit::values::float_bits_source;
use crate::semantics::{self, emitter::Emitter};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Type, Value};
use iced_x86::{Code, Instruction, OpKind, Register};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Add,
    Sub,
    Mul,
    Div,
    Sqrt,
    /// comisd/ucomisd (and single): flags only.
    Comi,
    /// cvtsi2sd/cvtsi2ss from a 32- or 64-bit integer.
    FromInt,
    /// cvttsd2si/cvttss2si.
    Trunc,
    /// cvtsd2si/cvtss2si (round to nearest even).
    Round,
    /// cvtss2sd.
    Widen,
    /// cvtsd2ss.
    Narrow,
}

/// (binary64 operand?, packed?) of a form.
type Shape = (bool, bool);
/// Scalar single, scalar double, packed single, packed double.
const SS: Shape = (false, false);
const SD: Shape = (true, false);
const PS: Shape = (false, true);
const PD: Shape = (true, true);

/// The forms lowered here: instruction code -> what it computes and on which format.
const FORMS: &[(Code, Kind, Shape)] = {
    use Code::*;
    use Kind::*;
    &[
        (Addss_xmm_xmmm32, Add, SS),
        (Subss_xmm_xmmm32, Sub, SS),
        (Mulss_xmm_xmmm32, Mul, SS),
        (Divss_xmm_xmmm32, Div, SS),
        (Sqrtss_xmm_xmmm32, Sqrt, SS),
        (Addsd_xmm_xmmm64, Add, SD),
        (Subsd_xmm_xmmm64, Sub, SD),
        (Mulsd_xmm_xmmm64, Mul, SD),
        (Divsd_xmm_xmmm64, Div, SD),
        (Sqrtsd_xmm_xmmm64, Sqrt, SD),
        (Addps_xmm_xmmm128, Add, PS),
        (Subps_xmm_xmmm128, Sub, PS),
        (Mulps_xmm_xmmm128, Mul, PS),
        (Divps_xmm_xmmm128, Div, PS),
        (Sqrtps_xmm_xmmm128, Sqrt, PS),
        (Addpd_xmm_xmmm128, Add, PD),
        (Subpd_xmm_xmmm128, Sub, PD),
        (Mulpd_xmm_xmmm128, Mul, PD),
        (Divpd_xmm_xmmm128, Div, PD),
        (Sqrtpd_xmm_xmmm128, Sqrt, PD),
        (Comisd_xmm_xmmm64, Comi, SD),
        (Ucomisd_xmm_xmmm64, Comi, SD),
        (Comiss_xmm_xmmm32, Comi, SS),
        (Ucomiss_xmm_xmmm32, Comi, SS),
        (Cvtsi2sd_xmm_rm32, FromInt, SD),
        (Cvtsi2sd_xmm_rm64, FromInt, SD),
        (Cvtsi2ss_xmm_rm32, FromInt, SS),
        (Cvtsi2ss_xmm_rm64, FromInt, SS),
        (Cvttsd2si_r32_xmmm64, Trunc, SD),
        (Cvttsd2si_r64_xmmm64, Trunc, SD),
        (Cvttss2si_r32_xmmm32, Trunc, SS),
        (Cvttss2si_r64_xmmm32, Trunc, SS),
        (Cvtsd2si_r32_xmmm64, Round, SD),
        (Cvtsd2si_r64_xmmm64, Round, SD),
        (Cvtss2si_r32_xmmm32, Round, SS),
        (Cvtss2si_r64_xmmm32, Round, SS),
        (Cvtss2sd_xmm_xmmm32, Widen, SS),
        (Cvtsd2ss_xmm_xmmm64, Narrow, SD),
    ]
};

/// The form of `ins`, if it is one of `FORMS`.
fn form(ins: &Instruction) -> Option<(Kind, Format)> {
    let code = ins.code();
    let &(_, kind, (double, packed)) = FORMS.iter().find(|(c, ..)| *c == code)?;
    Some((kind, Format::new(double, packed)))
}

/// The binary format an instruction computes in.
#[derive(Clone, Copy)]
struct Format {
    double: bool,
    packed: bool,
    /// The float type of a lane (or of the vector) and the exponent field's maximum.
    fty: Type,
    emax: i64,
}

impl Format {
    fn new(double: bool, packed: bool) -> Format {
        let (fty, emax) = match (double, packed) {
            (true, true) => (types::F64X2, 0x7ff),
            (false, true) => (types::F32X4, 0xff),
            (true, false) => (types::F64, 0x7ff),
            (false, false) => (types::F32, 0xff),
        };
        Format {
            double,
            packed,
            fty,
            emax,
        }
    }

    /// Bytes of a scalar operand.
    fn bytes(&self) -> u8 {
        if self.double {
            8
        } else {
            4
        }
    }
}

/// One instruction being lowered and its form.
struct FloatOp<'i> {
    ins: &'i Instruction,
    kind: Kind,
    f: Format,
}

/// Where a float lane's exponent field may lie: in [lo, hi), or (`zero`) the lane a zero of
/// either sign; `nonneg`: the lane is not below zero.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) struct Range {
    lo: i64,
    hi: i64,
    zero: bool,
    nonneg: bool,
}

/// How far (in binades) from 1.0 a checked operand may lie: far enough for almost every value
/// programs compute with, near enough that the result of any one operation on two such operands
/// is a normal number, so that it needs no check of its own (`derive`). As (binary64, binary32).
const TIGHT: (i64, i64) = (256, 60);

impl Range {
    /// Normal numbers (no NaN, infinity, denormal).
    const fn normal(emax: i64) -> Range {
        Range {
            lo: 1,
            hi: emax,
            zero: false,
            nonneg: false,
        }
    }

    /// Numbers within `TIGHT` binades of 1.0, or zeros.
    fn tight(emax: i64) -> Range {
        let t = if emax == 0x7ff { TIGHT.0 } else { TIGHT.1 };
        let bias = emax / 2;
        Range {
            lo: bias - t,
            hi: bias + t + 1,
            zero: true,
            nonneg: false,
        }
    }

    const fn or_zero(self) -> Range {
        Range { zero: true, ..self }
    }

    /// Normal numbers above the smallest binade: a result there neither overflowed nor
    /// underflowed.
    const fn above_tiny(emax: i64) -> Range {
        Range {
            lo: 2,
            hi: emax,
            zero: false,
            nonneg: false,
        }
    }

    /// Every lane in `self` lies in `o` too.
    fn within(self, o: Range) -> bool {
        self.lo >= o.lo && self.hi <= o.hi && (o.zero || !self.zero) && (self.nonneg || !o.nonneg)
    }

    /// What two facts about one lane say together.
    fn meet(self, o: Range) -> Range {
        Range {
            lo: self.lo.max(o.lo),
            hi: self.hi.min(o.hi),
            zero: self.zero && o.zero,
            nonneg: self.nonneg || o.nonneg,
        }
    }

    /// Where a lane that is one of two lanes lies.
    fn join(self, o: Range) -> Range {
        Range {
            lo: self.lo.min(o.lo),
            hi: self.hi.max(o.hi),
            zero: self.zero || o.zero,
            nonneg: self.nonneg && o.nonneg,
        }
    }

    /// The range of the exactly widened lane (binary32 to binary64).
    fn widened(self) -> Range {
        let shift = 0x7ff / 2 - 0xff / 2;
        Range {
            lo: self.lo + shift,
            hi: self.hi + shift,
            ..self
        }
    }
}

/// Where the result of `kind` lies if it is a normal number or a zero, from where its operands
/// lie (`a` and `b`; `same`: one value), in a format whose exponent field's maximum is `emax` and
/// whose significand has `mb` bits; and whether it certainly is one, so that the operation raises
/// no flag. Products and quotients of significands lie in [1, 4) and (1/2, 2); a sum is a
/// multiple of the smaller operand's last place, so cancellation costs at most `mb + 1`
/// binades below the larger.
fn derive(kind: Kind, (mb, emax): (i64, i64), a: Range, b: Range, same: bool) -> (Range, bool) {
    let bias = emax / 2;
    let r = match kind {
        Kind::Mul => Range {
            lo: a.lo + b.lo - bias,
            hi: a.hi + b.hi - bias,
            zero: a.zero || b.zero,
            nonneg: same || (a.nonneg && b.nonneg),
        },
        Kind::Div => Range {
            lo: a.lo - b.hi + bias,
            hi: a.hi - b.lo + bias,
            zero: a.zero,
            nonneg: a.nonneg && b.nonneg,
        },
        Kind::Add if a.nonneg && b.nonneg => Range {
            lo: if a.zero || b.zero {
                a.lo.min(b.lo)
            } else {
                a.lo.max(b.lo)
            },
            hi: a.hi.max(b.hi) + 1,
            zero: a.zero && b.zero,
            nonneg: true,
        },
        Kind::Sqrt => Range {
            lo: (b.lo - bias).div_euclid(2) + bias,
            hi: (b.hi - 1 - bias).div_euclid(2) + bias + 2,
            zero: b.zero,
            nonneg: true,
        },
        _ => {
            // Where exponents differ by two or more, |a ± b| is at least half the larger;
            // otherwise a multiple of the smaller one's last place. An operand that is a zero
            // leaves the other.
            let mut lo = a.lo.max(b.lo) - 1 - mb;
            if a.zero {
                lo = lo.min(b.lo);
            }
            if b.zero {
                lo = lo.min(a.lo);
            }
            Range {
                lo,
                hi: a.hi.max(b.hi) + 1,
                zero: true,
                nonneg: false,
            }
        }
    };
    // A zero divisor, or the root of a negative number.
    let undefined = (kind == Kind::Div && b.zero) || (kind == Kind::Sqrt && !b.nonneg);
    (r, !undefined && r.within(Range::normal(emax).or_zero()))
}

/// MXCSR's default settings (every exception masked, round to nearest) with the precision
/// flag already set: an inexact result then changes nothing. DAZ and FTZ may be set too (as
/// `-ffast-math` programs run): they change nothing for the normal operands and the results
/// above the smallest binade (or exact) the guards admit. As (mask, value).
const MXCSR_DEFAULT: (i64, i64) = (0xffff & !0x1f & !0x40 & !0x8000, 0x1fa0);

/// The precision flag set and masked (an inexact result then changes nothing), rounding to
/// nearest (the host's). As (mask, value).
const INEXACT_SEEN_NEAREST: (i64, i64) = (0x1020 | 0x6000, 0x1020);

/// The conditions under which the host's result is the exact one, and what holds once they do.
#[derive(Default)]
struct Guard {
    ok: Option<Value>,
    /// Conditions per lane of vectors, each to hold in every lane.
    lanes: Vec<Value>,
    /// What it found of the operands.
    facts: Vec<(Value, Range)>,
    /// `ok` requires MXCSR's default settings.
    mxcsr_default: bool,
    /// The format of the result lane and the range it lies in.
    result: Option<(Format, Range)>,
}

/// Lowers one kind of instruction: given the destination's old value (if read) and the
/// source, emits the host computation, adds its conditions to the guard and returns the result.
type Lowering<L> = fn(&mut L, &FloatOp, Option<Value>, Value, &mut Guard) -> Out;

/// The result.
#[derive(Clone, Copy)]
enum Out {
    Xmm(usize, Value),
    Gpr(usize, Value),
    /// Materialised RFLAGS bits.
    Flags(Value),
}

/// The XMM destination (operand 0) of `ins`.
fn xmm_dest(ins: &Instruction) -> usize {
    xmm(ins.op_register(0)).expect("xmm destination")
}

fn xmm(r: Register) -> Option<usize> {
    r.is_xmm().then(|| r as usize - Register::XMM0 as usize)
}

/// The significand bits and the exponent field's maximum of a lane type.
fn lane_format(ty: Type) -> (i64, i64) {
    if ty.lane_bits() == 64 {
        (52, 0x7ff)
    } else {
        (23, 0xff)
    }
}

/// For lanes of `bits` bits with `mb` significand bits, shifted left by one (the sign gone,
/// the exponent field on top): what `vector_exp_in` subtracts from a lane, and the bound the
/// difference lies below (signed) where the field lies in `r`. Both are the field's values in
/// place with the top bit flipped, sign-extended from the lane's width.
fn shifted_bounds(bits: u32, mb: i64, r: Range) -> (i64, i64) {
    let flipped = |e: i64| ((e << (mb + 1)) ^ (1 << (bits - 1))) << (64 - bits) >> (64 - bits);
    (flipped(r.lo), flipped(r.hi - r.lo))
}

/// The integer type of the same lanes as float type `ty`.
fn bits_type(ty: Type) -> Type {
    ty.as_int()
}

impl Lower<'_> {
    fn le() -> MemFlagsData {
        let mut f = MemFlagsData::new();
        f.set_endianness(Endianness::Little);
        f
    }

    /// A constant of an integer type, splatted for vector types.
    fn konst(&mut self, ty: Type, v: i64) -> Value {
        if ty.is_vector() {
            let c = self.b.ins().iconst(ty.lane_type(), v);
            self.b.ins().splat(ty, c)
        } else {
            self.b.ins().iconst(ty, v)
        }
    }

    /// The bits of float lane `v` as integers (off the float data path: only checks read them),
    /// taken from the integer it was made from where there is one.
    fn bits(&mut self, v: Value) -> Value {
        if let Some(x) = float_bits_source(&self.b.func.dfg, v) {
            return x;
        }
        let ty = self.b.func.dfg.value_type(v);
        self.b.ins().bitcast(bits_type(ty), Self::le(), v)
    }

    /// Per lane (a mask for vectors, an i8 for scalars): whether float lane `v`'s exponent
    /// field lies in the range.
    fn exp_in(&mut self, v: Value, r: Range) -> Value {
        let v = self.bits(v);
        let ty = self.b.func.dfg.value_type(v);
        let (mb, emax) = lane_format(ty);
        if ty.is_vector() {
            return self.vector_exp_in(v, r);
        }
        if r.zero {
            // A scalar's bits without the sign, once for both tests: a zero has none set, and
            // the exponent field is their top, which an unsigned comparison (scalars have it)
            // decides without a mask (one instruction fewer per checked scalar).
            let a = self.b.ins().ishl_imm_u(v, 1);
            let e = self.b.ins().ushr_imm_u(a, mb + 1);
            let e = self.b.ins().iadd_imm_s(e, -r.lo);
            let c = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, e, r.hi - r.lo);
            let zero = self.b.ins().icmp_imm_u(IntCC::Equal, a, 0);
            return self.b.ins().bor(c, zero);
        }
        // (field - lo) modulo the field's size: below `lo` wraps to the top, past `hi - lo`.
        let e = self.b.ins().ushr_imm_u(v, mb);
        let e = self.b.ins().iadd_imm_s(e, -r.lo);
        let e = self.b.ins().band_imm_u(e, emax);
        self.b.ins().icmp_imm_s(IntCC::SignedLessThan, e, r.hi - r.lo)
    }

    /// `exp_in` of the integer lanes `v` of a vector in three instructions (five with the zero
    /// test): without its sign a lane's exponent field is its top, so it lies in [lo, hi) where
    /// the shifted bits less `lo`'s lie below `hi - lo`'s, an unsigned comparison. Vectors have
    /// a signed one, which decides the same after both sides' top bits are flipped, and that
    /// flip is folded into the constant subtracted.
    fn vector_exp_in(&mut self, v: Value, r: Range) -> Value {
        let ty = self.b.func.dfg.value_type(v);
        let (k, lim) = shifted_bounds(ty.lane_bits(), lane_format(ty).0, r);
        let a = self.b.ins().ishl_imm_u(v, 1);
        let k = self.konst(ty, k);
        let d = self.b.ins().isub(a, k);
        let lim = self.konst(ty, lim);
        let c = self.b.ins().icmp(IntCC::SignedLessThan, d, lim);
        if r.zero {
            let z = self.konst(ty, 0);
            let zero = self.b.ins().icmp(IntCC::Equal, a, z);
            self.b.ins().bor(c, zero)
        } else {
            c
        }
    }

    /// Per lane: whether float lane `v` is a zero of either sign.
    fn is_zero(&mut self, v: Value) -> Value {
        let v = self.bits(v);
        self.int_is_zero(v)
    }

    fn int_is_zero(&mut self, v: Value) -> Value {
        let ty = self.b.func.dfg.value_type(v);
        let abs = self.b.ins().ishl_imm_u(v, 1);
        let z = self.konst(ty, 0);
        self.b.ins().icmp(IntCC::Equal, abs, z)
    }

    /// A per-lane condition for every lane, as an i8.
    fn all(&mut self, c: Value) -> Value {
        if self.b.func.dfg.value_type(c).is_vector() {
            self.b.ins().vall_true(c)
        } else {
            c
        }
    }

    /// Adds condition `c` (an i8) to the guard.
    fn require(&mut self, g: &mut Guard, c: Value) {
        g.ok = Some(self.both(g.ok, c));
    }

    /// Adds a condition per lane (`exp_in`) to the guard: of every lane of a vector, kept
    /// unreduced (`Guard::lanes`), or of a scalar.
    fn require_lanes(&mut self, g: &mut Guard, c: Value) {
        if self.b.func.dfg.value_type(c).is_vector() {
            g.lanes.push(c);
        } else {
            self.require(g, c);
        }
    }

    /// What the checks that dominate the current block found of every lane of `v`, together.
    fn range_of(&mut self, v: Value) -> Option<Range> {
        let facts = self.known().floats.iter().filter(|&&(k, _)| k == v);
        facts.map(|&(_, r)| r).reduce(Range::meet)
    }

    /// Whether a check that dominates the current block found every lane of `v` in `r`.
    fn knows(&mut self, v: Value, r: Range) -> bool {
        self.range_of(v).is_some_and(|k| k.within(r))
    }

    /// Where the lanes of operand `v` lie: known to be normal numbers or zeros, or else
    /// required to lie within `Range::tight`.
    fn operand_range(&mut self, g: &mut Guard, f: Format, v: Value) -> Range {
        self.normal_or_required(g, f, v, Range::tight(f.emax))
    }

    /// Where the lanes of `v` lie: known to be normal numbers or zeros, or else required to
    /// lie in `r` (normal numbers or zeros too), with what else is known of them (a sum of
    /// squares checked stays not below zero).
    fn normal_or_required(&mut self, g: &mut Guard, f: Format, v: Value, r: Range) -> Range {
        match self.range_of(v) {
            Some(k) if k.within(Range::normal(f.emax).or_zero()) => k,
            _ => {
                self.require_in(g, v, r);
                self.range_of(v).unwrap_or(r)
            }
        }
    }

    /// Requires every lane of operand `v` in `r`, unless a dominating check found it there.
    fn require_in(&mut self, g: &mut Guard, v: Value, r: Range) {
        if self.knows(v, r) {
            return;
        }
        let c = self.exp_in(v, r);
        self.require_lanes(g, c);
        g.facts.push((v, r));
    }

    /// Requires the bits of MXCSR in `mask` to equal `want` (which the default settings
    /// satisfy), unless the default settings were found since the last helper call.
    fn require_mxcsr(&mut self, g: &mut Guard, mxcsr: (i64, i64)) {
        if self.known().mxcsr_default {
            return;
        }
        let c = self.mxcsr_is(mxcsr);
        self.require(g, c);
        g.mxcsr_default |= mxcsr == MXCSR_DEFAULT;
    }

    /// On a way into a block that takes MXCSR's default settings for granted (a loop's head,
    /// `Layout`): checks them unless they were found since the last helper call, leaving
    /// for the baseline tier to run from the last checkpoint where they do not hold.
    pub(in crate::jit) fn require_mxcsr_default(&mut self) {
        if self.known().mxcsr_default {
            return;
        }
        let ok = self.mxcsr_is(MXCSR_DEFAULT);
        self.defer(Some(ok), Vec::new());
        self.settle_guards();
        self.known().mxcsr_default = true;
    }

    /// Whether the bits of MXCSR in `mask` equal `want`, as an i8.
    fn mxcsr_is(&mut self, (mask, want): (i64, i64)) -> Value {
        let cpu = self.cpu();
        let mx = self.b.ins().load(types::I32, mf(), cpu, off::MXCSR);
        let m = self.b.ins().band_imm_u(mx, mask);
        self.b.ins().icmp_imm_u(IntCC::Equal, m, want)
    }

    /// Operand `n` as an XMM register's whole value, or the low `bytes` of memory or a general
    /// register, zero-extended into an I64.
    fn scalar_src(&mut self, ins: &Instruction, n: u32, bytes: u8) -> Value {
        match ins.op_kind(n) {
            OpKind::Register => {
                let r = ins.op_register(n);
                match xmm(r) {
                    Some(x) => self.get_xmm(x),
                    None => {
                        let g = semantics::operand::gpr(r).expect("general register operand");
                        semantics::operand::read_gpr(self, g)
                    }
                }
            }
            _ => {
                let a = semantics::operand::ea(self, ins);
                self.load(a, bytes)
            }
        }
    }

    /// Where lane `n` (of `bytes` bytes) of XMM value `x` lies, as far as checks found.
    fn lane_range(&mut self, x: Value, bytes: u8, n: u8) -> Option<Range> {
        let double = bytes == 8;
        let lanes: Vec<Value> = (self.known().lanes.iter())
            .filter(|&&(v, (d, packed), _)| v == x && d == double && (packed || n == 0))
            .map(|&(.., l)| l)
            .collect();
        lanes.into_iter().filter_map(|l| self.range_of(l)).reduce(Range::meet)
    }

    /// What is known of the lanes of `srcs` goes to the lanes of `result`, a shuffle of them
    /// (`idx` as in `Emitter::vshuffle`) that moves whole double or single lanes: where every
    /// lane it takes is known, every lane of the result lies where one of them does.
    pub(super) fn shuffled(&mut self, srcs: [Value; 2], idx: [u8; 16], result: Value) {
        for bytes in [8u8, 4] {
            let whole = idx
                .chunks(bytes as usize)
                .all(|c| c[0] % bytes == 0 && c.iter().enumerate().all(|(k, &i)| i == c[0] + k as u8));
            if !whole {
                continue;
            }
            let taken = idx.chunks(bytes as usize).map(|c| {
                let (src, lane) = (c[0] / 16, c[0] % 16 / bytes);
                self.lane_range(srcs[src as usize], bytes, lane)
            });
            let Some(range) = taken
                .collect::<Option<Vec<Range>>>()
                .and_then(|r| r.into_iter().reduce(Range::join))
            else {
                continue;
            };
            let f = Format::new(bytes == 8, true);
            let l = self.as_ty(result, f.fty);
            self.known().lanes.push((result, (f.double, true), l));
            self.known().floats.push((l, range));
            return;
        }
    }

    /// `v` (an operand as read) as the format's float lane: scalars as `fty`, packed as the
    /// vector. The lane of an XMM value is taken once per stretch of code.
    fn lane(&mut self, f: Format, v: Value) -> Value {
        let ty = self.b.func.dfg.value_type(v);
        if ty == types::I64 {
            let v = if f.double {
                v
            } else {
                self.b.ins().ireduce(types::I32, v)
            };
            return self.b.ins().bitcast(f.fty, Self::le(), v);
        }
        let tag = (f.double, f.packed);
        if let Some(&(.., l)) = self.known().lanes.iter().find(|&&(x, t, _)| x == v && t == tag) {
            return l;
        }
        let l = if f.packed {
            self.as_ty(v, f.fty)
        } else {
            let w = self.as_ty(v, if f.double { types::F64X2 } else { types::F32X4 });
            let l = self.b.ins().extractlane(w, 0);
            // What was found of every lane holds for the first.
            let known = &mut self.known;
            let packed = known.lanes.iter().find(|&&(x, t, _)| x == v && t == (f.double, true));
            if let Some(&(.., p)) = packed {
                let of_packed: Vec<Range> = known.floats.iter().filter(|&&(k, _)| k == p).map(|&(_, r)| r).collect();
                known.floats.extend(of_packed.into_iter().map(|r| (l, r)));
            }
            l
        };
        self.known.lanes.push((v, tag, l));
        l
    }

    /// The XMM result holding float lane `r` of format `f` (above `a`'s other lanes, for a
    /// scalar).
    fn xmm_result(&mut self, f: Format, a: Value, r: Value) -> Value {
        let x = if f.packed {
            self.as_ty(r, types::I8X16)
        } else {
            let av = self.as_ty(a, if f.double { types::F64X2 } else { types::F32X4 });
            let v = self.b.ins().insertlane(av, r, 0);
            self.as_ty(v, types::I8X16)
        };
        self.known().lanes.push((x, (f.double, f.packed), r));
        x
    }

    /// The operands: the destination's old value (none for conversions to integers) and the
    /// source. Read before anything is written (a memory operand may fault here, with the
    /// context already precise).
    fn float_operands(&mut self, ins: &Instruction, kind: Kind, f: Format) -> (Option<Value>, Value) {
        match kind {
            Kind::Trunc | Kind::Round => (None, self.scalar_src(ins, 1, f.bytes())),
            Kind::FromInt => {
                let size = if ins.op_kind(1) == OpKind::Register {
                    ins.op_register(1).size() as u8
                } else {
                    ins.memory_size().size() as u8
                };
                let a = self.get_xmm(xmm_dest(ins));
                let v = self.scalar_src(ins, 1, size);
                let v = if size == 4 {
                    let t = self.b.ins().ireduce(types::I32, v);
                    self.b.ins().sextend(types::I64, t)
                } else {
                    v
                };
                (Some(a), v)
            }
            _ if f.packed => {
                let a = self.get_xmm(xmm_dest(ins));
                let b = match xmm(ins.op_register(1)) {
                    Some(s) if ins.op_kind(1) == OpKind::Register => self.get_xmm(s),
                    _ => {
                        let addr = semantics::operand::ea(self, ins);
                        self.load_x(addr)
                    }
                };
                (Some(a), b)
            }
            _ => {
                let a = self.get_xmm(xmm_dest(ins));
                (Some(a), self.scalar_src(ins, 1, f.bytes()))
            }
        }
    }

    /// add, sub, mul, div, sqrt (scalar or packed) and cvtsd2ss. With the default MXCSR (the
    /// precision flag set), an operation on normal numbers and zeros whose result neither
    /// overflows nor underflows changes no flag: the host's correctly rounded result is exact.
    /// Where the operands lie decides that for most results (`derive`); the others are checked.
    fn lower_rounded(&mut self, op: &FloatOp, a: Option<Value>, b: Value, g: &mut Guard) -> Out {
        let (kind, f) = (op.kind, op.f);
        let a = a.expect("destination operand");
        self.require_mxcsr(g, MXCSR_DEFAULT);
        let bi = self.lane(f, b);
        let ai = self.lane(f, a);
        if kind == Kind::Narrow {
            return self.lower_narrow(op, a, bi, g);
        }
        let rb = self.operand_range(g, f, bi);
        let ra = if kind == Kind::Sqrt {
            rb
        } else {
            self.operand_range(g, f, ai)
        };
        let ri = self.ieee_arith(kind, ai, bi);
        let (derived, certain) = derive(kind, lane_format(f.fty), ra, rb, ai == bi);
        let range = if certain {
            derived
        } else {
            // Zeros some operand may make: a zero result is then exact (0 * x, 0 / x,
            // sqrt(-0)); a sum is exact whenever it is tiny. Where the check passes, the
            // result lies where `derive` says too.
            let zero_from = match kind {
                Kind::Add | Kind::Sub => vec![],
                Kind::Mul => vec![(ai, ra), (bi, rb)],
                Kind::Div => vec![(ai, ra)],
                _ => vec![(bi, rb)],
            };
            let zero_from: Vec<Value> = zero_from.into_iter().filter(|(_, r)| r.zero).map(|(v, _)| v).collect();
            let exact_zero = matches!(kind, Kind::Add | Kind::Sub);
            let r = self.require_result(g, ri, Range::tight(f.emax), exact_zero, &zero_from);
            r.meet(derived)
        };
        g.result = Some((f, range));
        Out::Xmm(xmm_dest(op.ins), self.xmm_result(f, a, ri))
    }

    /// cvtsd2ss of lane `bi`: exact for zeros, and raising no flag for normal numbers whose
    /// result neither overflows nor underflows.
    fn lower_narrow(&mut self, op: &FloatOp, a: Value, bi: Value, g: &mut Guard) -> Out {
        self.require_in(g, bi, Range::normal(op.f.emax).or_zero());
        let ri = self.b.ins().fdemote(types::F32, bi);
        let zero_from: Vec<Value> = [bi]
            .into_iter()
            .filter(|&v| !self.knows(v, Range::normal(0x7ff)))
            .collect();
        let range = self.require_result(g, ri, Range::above_tiny(0xff), false, &zero_from);
        let rf = Format::new(false, op.f.packed);
        g.result = Some((rf, range));
        Out::Xmm(xmm_dest(op.ins), self.xmm_result(rf, a, ri))
    }

    /// Requires every lane of result `ri` in `r`, or a zero where `exact_zero`, or where a lane
    /// of some value in `zero_from` is a zero too; returns where the result then lies.
    fn require_result(&mut self, g: &mut Guard, ri: Value, r: Range, exact_zero: bool, zero_from: &[Value]) -> Range {
        if exact_zero || zero_from.is_empty() {
            let r = Range { zero: exact_zero, ..r };
            let c = self.exp_in(ri, r);
            self.require_lanes(g, c);
            return r;
        }
        let mut c = self.exp_in(ri, Range { zero: false, ..r });
        let rz = self.is_zero(ri);
        let mut z = self.is_zero(zero_from[0]);
        for &v in &zero_from[1..] {
            let vz = self.is_zero(v);
            z = self.b.ins().bor(z, vz);
        }
        let exact_zero = self.b.ins().band(rz, z);
        c = self.b.ins().bor(c, exact_zero);
        self.require_lanes(g, c);
        r.or_zero()
    }

    /// The host operation of add, sub, mul, div or sqrt on float lanes `fa` and `fb`.
    fn ieee_arith(&mut self, kind: Kind, fa: Value, fb: Value) -> Value {
        match kind {
            Kind::Add => self.b.ins().fadd(fa, fb),
            Kind::Sub => self.b.ins().fsub(fa, fb),
            Kind::Mul => self.b.ins().fmul(fa, fb),
            Kind::Div => self.b.ins().fdiv(fa, fb),
            _ => self.b.ins().sqrt(fb),
        }
    }

    /// cvtss2sd.
    fn lower_widen(&mut self, op: &FloatOp, a: Option<Value>, b: Value, g: &mut Guard) -> Out {
        let (f, a) = (op.f, a.expect("destination operand"));
        // Exact for zeros and normal numbers; no flags.
        let bi = self.lane(f, b);
        let r = self.normal_or_required(g, f, bi, Range::normal(f.emax).or_zero());
        let ri = self.b.ins().fpromote(types::F64, bi);
        g.result = Some((Format::new(true, false), r.widened()));
        Out::Xmm(xmm_dest(op.ins), self.xmm_result(Format::new(true, false), a, ri))
    }

    /// cvtsi2sd/ss.
    fn lower_from_int(&mut self, op: &FloatOp, a: Option<Value>, b: Value, g: &mut Guard) -> Out {
        let (f, a) = (op.f, a.expect("destination operand"));
        // Exact when |v| fits the significand: no flags, the rounding mode irrelevant. Else
        // rounded as the host does, to nearest, which changes no flag where MXCSR says so,
        // the precision flag already set and masked (an inexact `(float) n` of a large `n` in
        // a loop sets it at the first pass, through the slow helper).
        let k = if f.double { 53 } else { 24 };
        let biased = self.b.ins().iadd_imm_u(b, 1 << k);
        let exact = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThanOrEqual, biased, 2 << k);
        let inexact_seen = self.mxcsr_is(INEXACT_SEEN_NEAREST);
        let c = self.b.ins().bor(exact, inexact_seen);
        self.require(g, c);
        let ri = self.b.ins().fcvt_from_sint(f.fty, b);
        // |v| <= 2^bits: the exponent at most that many above the bias.
        let bits = i64::from(self.b.func.dfg.value_type(b).bits());
        let bias = f.emax / 2;
        let range = Range {
            lo: bias,
            hi: bias + bits + 1,
            zero: true,
            nonneg: false,
        };
        g.result = Some((f, range));
        Out::Xmm(xmm_dest(op.ins), self.xmm_result(f, a, ri))
    }

    /// cvt(t)sd/ss2si.
    fn lower_to_int(&mut self, op: &FloatOp, _: Option<Value>, b: Value, g: &mut Guard) -> Out {
        let (ins, kind, f) = (op.ins, op.kind, op.f);
        // In range with room to spare (no invalid), the precision flag set and masked
        // (an inexact result changes nothing); rounding: to nearest.
        let gpr = semantics::operand::gpr(ins.op_register(0)).expect("general destination");
        let ibits = gpr.size as i64 * 8;
        let bias = f.emax / 2;
        let bi = self.lane(f, b);
        let range = Range {
            lo: 1,
            hi: bias + ibits - 2,
            zero: true,
            nonneg: false,
        };
        self.require_in(g, bi, range);
        let mxcsr = if kind == Kind::Round {
            INEXACT_SEEN_NEAREST
        } else {
            (0x1020, 0x1020)
        };
        self.require_mxcsr(g, mxcsr);
        let fv = if kind == Kind::Round {
            self.b.ins().nearest(bi)
        } else {
            bi
        };
        let ity_out = if ibits == 64 { types::I64 } else { types::I32 };
        let r = self.b.ins().fcvt_to_sint_sat(ity_out, fv);
        let r = if ibits == 64 {
            r
        } else {
            self.b.ins().uextend(types::I64, r)
        };
        Out::Gpr(gpr.idx as usize, r)
    }

    /// (u)comisd/ss.
    fn lower_comi(&mut self, op: &FloatOp, a: Option<Value>, b: Value, g: &mut Guard) -> Out {
        let (f, a) = (op.f, a.expect("destination operand"));
        // Neither operand a NaN or a denormal: an ordered comparison, no flags.
        let ai = self.lane(f, a);
        let bi = self.lane(f, b);
        let range = Range::normal(f.emax).or_zero();
        self.require_in(g, ai, range);
        self.require_in(g, bi, range);
        let lt = self.b.ins().fcmp(FloatCC::LessThan, ai, bi);
        let eq = self.b.ins().fcmp(FloatCC::Equal, ai, bi);
        let zf = self.b.ins().iconst(types::I64, 0x40);
        let cf = self.b.ins().iconst(types::I64, 0x01);
        let z = self.b.ins().iconst(types::I64, 0);
        let r = self.b.ins().select(lt, cf, z);
        let word = self.b.ins().select(eq, zf, r);
        self.known().compares.push((word, ai, bi));
        Out::Flags(word)
    }

    /// Condition `cc` on flags `f` (as a 0/1 word) as one comparison of the float operands
    /// that made them, where a (u)comisd/ss whose operands were checked to be ordered did
    /// (`lower_comi`): its flags are CF for less, ZF for equal, none for greater (`ucomisd`
    /// then `ja` is one compare and branch, where the flags word was made and tested bit by
    /// bit).
    pub(super) fn float_cond(&mut self, f: &Flags<Value>, cc: Cc) -> Option<Value> {
        if f.kind != FlagKind::Raw {
            return None;
        }
        let &(_, a, b) = self.known().compares.iter().find(|&&(w, ..)| w == f.res)?;
        let fcc = match ordered_truth(cc) {
            [false, false, false] => return Some(self.imm(0)),
            [true, true, true] => return Some(self.imm(1)),
            [true, false, false] => FloatCC::LessThan,
            [false, true, false] => FloatCC::Equal,
            [false, false, true] => FloatCC::GreaterThan,
            [true, true, false] => FloatCC::LessThanOrEqual,
            [false, true, true] => FloatCC::GreaterThanOrEqual,
            [true, false, true] => FloatCC::OrderedNotEqual,
        };
        let c = self.b.ins().fcmp(fcc, a, b);
        Some(self.bool_to_i64(c))
    }

    /// Lowers one SSE float instruction to the host's float arithmetic under a guard, with
    /// the slow helper where it fails; false if `ins` is not one of those forms (the caller then
    /// emits it as usual).
    pub(super) fn float_fast(&mut self, ins: &Instruction) -> bool {
        let Some((kind, f)) = form(ins) else {
            return false;
        };
        let (a, b) = self.float_operands(ins, kind, f);
        let mut g = Guard::default();
        let lower: Lowering<Self> = match kind {
            Kind::Widen => Self::lower_widen,
            Kind::FromInt => Self::lower_from_int,
            Kind::Trunc | Kind::Round => Self::lower_to_int,
            Kind::Comi => Self::lower_comi,
            _ => Self::lower_rounded,
        };
        let out = lower(self, &FloatOp { ins, kind, f }, a, b, &mut g);
        self.defer(g.ok, g.lanes);
        let known = self.known();
        known.floats.extend(g.facts);
        known.mxcsr_default |= g.mxcsr_default;
        if let (Out::Xmm(_, x), Some((rf, range))) = (out, g.result) {
            let l = self.lane(rf, x);
            self.known().floats.push((l, range));
        }
        self.set_result(out);
        true
    }

    /// Defers a guard (`ok`, and conditions per lane in `lanes`) to `settle_guards`: each
    /// per-lane condition is and-ed with those before of its lane type, reduced to one
    /// condition only there.
    fn defer(&mut self, ok: Option<Value>, lanes: Vec<Value>) {
        if let Some(ok) = ok {
            self.deferred_guard = Some(self.both(self.deferred_guard, ok));
        }
        for c in lanes {
            let ty = self.b.func.dfg.value_type(c);
            let dfg = &self.b.func.dfg;
            match self.deferred_lanes.iter_mut().find(|d| dfg.value_type(**d) == ty) {
                Some(d) => *d = self.b.ins().band(*d, c),
                None => self.deferred_lanes.push(c),
            }
        }
    }

    /// `c`, and-ed with `before` if any.
    fn both(&mut self, before: Option<Value>, c: Value) -> Value {
        match before {
            Some(b) => self.b.ins().band(b, c),
            None => c,
        }
    }

    /// Whether guards wait for `settle_guards`.
    pub(in crate::jit) fn guards_deferred(&self) -> bool {
        self.deferred_guard.is_some() || !self.deferred_lanes.is_empty()
    }

    /// Branches on the guards deferred so far: where one failed, the unit returns for the
    /// baseline tier to run again from the last checkpoint, where the context holds the whole
    /// state, as after a host fault (`fault::REPLAY`). What ran since wrote registers only
    /// (`runs_ahead_of_guards`), so dropping it loses nothing, and a fault there replays from
    /// the same checkpoint: an operation on a value no guard admits never shows.
    pub(in crate::jit) fn settle_guards(&mut self) {
        let lanes = std::mem::take(&mut self.deferred_lanes);
        let ok = lanes.into_iter().fold(self.deferred_guard.take(), |ok, c| {
            let all = self.all(c);
            Some(self.both(ok, all))
        });
        let Some(ok) = ok else {
            return;
        };
        let failed = self.b.ins().icmp_imm_u(IntCC::Equal, ok, 0);
        self.replay_if(failed);
    }

    /// The result as the destination's value (stored at the next flush); MXCSR lives in the
    /// context only.
    fn set_result(&mut self, out: Out) {
        match out {
            Out::Xmm(d, r) => self.set_xmm(d, r),
            Out::Gpr(g, r) => self.set_reg(g, r),
            Out::Flags(r) => {
                let z = self.imm(0);
                self.state.flags = Some(Flags {
                    kind: FlagKind::Raw,
                    size: 8,
                    res: r,
                    a: z,
                    b: z,
                    aux: z,
                });
                self.state.flags_dirty = true;
            }
        }
    }
}

/// For which outcomes of an ordered (u)comisd/ss condition `cc` holds: [less, equal,
/// greater], whose flags are CF, ZF and none (PF, OF, SF and AF stay clear).
fn ordered_truth(cc: Cc) -> [bool; 3] {
    const NEVER: [bool; 3] = [false, false, false];
    const ALWAYS: [bool; 3] = [true, true, true];
    match cc {
        Cc::O | Cc::S | Cc::P | Cc::L => NEVER,
        Cc::No | Cc::Ns | Cc::Np | Cc::Ge => ALWAYS,
        Cc::B => [true, false, false],
        Cc::Ae => [false, true, true],
        Cc::E | Cc::Le => [false, true, false],
        Cc::Ne | Cc::G => [true, false, true],
        Cc::Be => [true, true, false],
        Cc::A => [false, false, true],
    }
}

/// Whether the lowering of `ins` depends on MXCSR's settings (`Lower::require_mxcsr`).
pub(in crate::jit) fn takes_mxcsr(ins: &Instruction) -> bool {
    use Kind::*;
    form(ins).is_some_and(|(kind, _)| matches!(kind, Add | Sub | Mul | Div | Sqrt | Narrow | Trunc | Round))
}

/// Whether `ins` may run while float guards before it are deferred (`Lower::settle_guards`):
/// it writes registers only, never leaves the unit on its own and calls no helper, so a failed
/// guard can drop what it did. One of the float forms here, or a move, address computation,
/// integer operation or SSE logic and shuffle among those listed (their loads of guest
/// memory fault and replay as anywhere).
pub(super) fn runs_ahead_of_guards(ins: &Instruction, route: u8) -> bool {
    use iced_x86::{FlowControl, Mnemonic::*};
    use semantics::route::{ALIGN16, SLOW};
    if ins.flow_control() != FlowControl::Next
        || route & ALIGN16 != 0
        || ins.has_lock_prefix()
        || ins.is_string_instruction()
        || super::writes_memory(ins)
        || (0..ins.op_count()).any(|n| ins.op_kind(n) == OpKind::Register && ins.op_register(n).is_mm())
    {
        return false;
    }
    if route == SLOW {
        return form(ins).is_some();
    }
    matches!(
        ins.mnemonic(),
        Mov | Movzx
            | Movsx
            | Movsxd
            | Lea
            | Add
            | Sub
            | And
            | Or
            | Xor
            | Cmp
            | Test
            | Movd
            | Movq
            | Movsd
            | Movss
            | Movapd
            | Movaps
            | Movupd
            | Movups
            | Movdqa
            | Movdqu
            | Movlpd
            | Movhpd
            | Movlps
            | Movhps
            | Movlhps
            | Movhlps
            | Unpcklpd
            | Unpckhpd
            | Unpcklps
            | Unpckhps
            | Shufpd
            | Shufps
            | Andpd
            | Andps
            | Andnpd
            | Andnps
            | Orpd
            | Orps
            | Xorpd
            | Xorps
            | Pand
            | Pandn
            | Por
            | Pxor
            | Pshufd
            | Punpcklqdq
            | Punpckhqdq
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers at the edges of `r` (binary64 exponent fields): the least and greatest
    /// significands and their neighbours in its lowest and highest binades, of both signs
    /// unless it holds no negative ones, and zero where it may be one.
    fn edges(r: Range) -> Vec<f64> {
        let mut v = Vec::new();
        for field in [r.lo, r.lo + 1, r.hi - 2, r.hi - 1] {
            for frac in [0u64, 1, 2, (1 << 52) - 2, (1 << 52) - 1] {
                let x = f64::from_bits((field as u64) << 52 | frac);
                v.push(x);
                if !r.nonneg {
                    v.push(-x);
                }
            }
        }
        if r.zero {
            v.extend([0.0, -0.0]);
        }
        v
    }

    /// `vector_exp_in`'s one subtraction and signed comparison admit a lane exactly where the
    /// exponent field, shifted down and masked, lies in the range: every field of both lane
    /// widths, with the least, greatest and other significands, of both signs.
    #[test]
    fn shifted_bounds_test_the_exponent_field_as_a_shift_and_a_mask_do() {
        for (bits, mb, emax) in [(64u32, 52u32, 0x7ffi64), (32, 23, 0xff)] {
            let mask = u64::MAX >> (64 - bits);
            let signed = |x: u64| ((x << (64 - bits)) as i64) >> (64 - bits);
            let t = Range::tight(emax);
            for r in [
                t,
                Range { zero: false, ..t },
                Range::normal(emax),
                Range::above_tiny(emax).or_zero(),
            ] {
                let (k, lim) = shifted_bounds(bits, i64::from(mb), r);
                for e in 0..=emax as u64 {
                    for m in [0, 1, (1u64 << mb) - 1, 0x5a5a5a5a5a5a5 & ((1 << mb) - 1)] {
                        for sign in [0, 1u64 << (bits - 1)] {
                            let x = sign | e << mb | m;
                            let a = (x << 1) & mask;
                            let d = a.wrapping_sub(k as u64) & mask;
                            let fast = signed(d) < signed(lim as u64 & mask) || (r.zero && a == 0);
                            let field = (e as i64) >= r.lo && (e as i64) < r.hi;
                            assert_eq!(fast, field || (r.zero && a == 0), "{bits}-bit lane {x:#x} in {r:?}");
                        }
                    }
                }
            }
        }
    }

    /// Where `derive` says a result is certainly normal or an exact zero, every result from
    /// operands at the edges of their ranges is, and lies where it says.
    #[test]
    fn derived_ranges_hold_at_their_edges() {
        let tight = Range::tight(0x7ff);
        let positive = Range {
            nonneg: true,
            zero: false,
            ..tight
        };
        let narrow = Range {
            lo: 1000,
            hi: 1010,
            zero: false,
            nonneg: false,
        };
        let wide = Range {
            lo: 700,
            hi: 1700,
            zero: true,
            nonneg: false,
        };
        let ranges = [tight, positive, narrow, wide, Range::normal(0x7ff).or_zero()];
        type Op = fn(f64, f64) -> f64;
        let ops: [(Kind, Op); 5] = [
            (Kind::Add, |a, b| a + b),
            (Kind::Sub, |a, b| a - b),
            (Kind::Mul, |a, b| a * b),
            (Kind::Div, |a, b| a / b),
            (Kind::Sqrt, |_, b| b.sqrt()),
        ];
        let mut certain_cases = 0;
        for (kind, op) in ops {
            for &ra in &ranges {
                for &rb in &ranges {
                    let (r, certain) = derive(kind, (52, 0x7ff), ra, rb, false);
                    if !certain {
                        continue;
                    }
                    certain_cases += 1;
                    for &a in &edges(ra) {
                        for &b in &edges(rb) {
                            let x = op(a, b);
                            let field = (x.to_bits() >> 52 & 0x7ff) as i64;
                            let inside = if x == 0.0 {
                                r.zero
                            } else {
                                field >= r.lo && field < r.hi
                            };
                            assert!(inside && (!r.nonneg || x >= 0.0), "{a:e} {b:e} -> {x:e} outside {r:?}");
                            assert!(x.is_normal() || x == 0.0, "{a:e} {b:e} -> {x:e}");
                        }
                    }
                }
            }
        }
        assert!(certain_cases > 20, "only {certain_cases} derivations were certain");
    }

    #[test]
    fn ordered_comparisons_hold_where_their_flags_do() {
        use crate::cpu::ops::Values;
        for n in 0..16u8 {
            let cc = Cc::from_u8(n);
            let on_word = |res: u64| {
                let f = Flags {
                    kind: FlagKind::Raw,
                    size: 8,
                    res,
                    a: 0,
                    b: 0,
                    aux: 0,
                };
                crate::cpu::flags::cond(&mut Values, &f, cc) != 0
            };
            // Less sets CF, equal ZF, greater neither.
            assert_eq!(ordered_truth(cc), [on_word(0x01), on_word(0x40), on_word(0)], "{cc:?}");
        }
    }

    #[test]
    fn each_form_is_listed_once_and_scalar_conversions_are_not_packed() {
        for (i, (code, kind, (_, packed))) in FORMS.iter().enumerate() {
            assert!(FORMS[..i].iter().all(|(c, ..)| c != code), "{code:?} listed twice");
            let arithmetic = matches!(kind, Kind::Add | Kind::Sub | Kind::Mul | Kind::Div | Kind::Sqrt);
            assert!(arithmetic || !packed, "{code:?} is a scalar-only kind");
        }
    }

    #[test]
    fn only_register_writing_instructions_run_ahead_of_deferred_guards() {
        use iced_x86::{Decoder, DecoderOptions};
        let decode = |bytes: &[u8]| Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE).decode();
        let ahead = |bytes: &[u8]| {
            let ins = decode(bytes);
            runs_ahead_of_guards(&ins, semantics::classify(&ins).expect("implemented"))
        };
        assert!(ahead(&[0xf2, 0x0f, 0x58, 0xc1])); // addsd xmm0, xmm1
        assert!(ahead(&[0x66, 0x0f, 0x10, 0x06])); // movupd xmm0, [rsi]
        assert!(ahead(&[0x48, 0x8b, 0x06])); // mov rax, [rsi]
        assert!(ahead(&[0x48, 0x01, 0xd8])); // add rax, rbx
        assert!(!ahead(&[0xf2, 0x0f, 0x11, 0x06])); // movsd [rsi], xmm0: writes memory
        assert!(!ahead(&[0x48, 0x01, 0x06])); // add [rsi], rax
        assert!(!ahead(&[0x48, 0xf7, 0xf1])); // div rcx: may raise #DE
        assert!(!ahead(&[0x74, 0x00])); // je: leaves the block
        assert!(!ahead(&[0x66, 0x0f, 0x28, 0x06])); // movapd xmm0, [rsi]: may raise #GP
        assert!(!ahead(&[0x0f, 0x6f, 0xc1])); // movq mm0, mm1: the x87 state
    }
}
