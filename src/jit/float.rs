//! SSE floating point lowered to host IEEE instructions wherever they cannot differ from the
//! soft-float semantics (`semantics::fp`). A guard evaluated at run time decides: the MXCSR
//! settings the operation depends on, and operands and results away from NaN, infinity, zero
//! (where it matters), denormals and the edges of the range. Then the host's correctly rounded
//! result is the soft-float one and no MXCSR flag can change. Anything else runs the whole
//! instruction through the slow helper, which runs those semantics: that path stores the cached
//! registers for it and reloads the result, the fast path keeps everything in SSA values.

use super::{mf, Lower};
use crate::cpu::flags::Flags;
use crate::cpu::ops::Ops;
use crate::cpu::{off, FlagKind};
use crate::semantics::{self, emitter::Emitter};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, BlockArg, Endianness, InstBuilder, MemFlagsData, Type, Value};
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
    /// The integer type of a lane (or of the vector), the float type, the significand bits
    /// and the exponent field's maximum.
    ity: Type,
    fty: Type,
    mb: i64,
    emax: i64,
}

impl Format {
    fn new(double: bool, packed: bool) -> Format {
        let (ity, fty, mb, emax) = match (double, packed) {
            (true, true) => (types::I64X2, types::F64X2, 52, 0x7ff),
            (false, true) => (types::I32X4, types::F32X4, 23, 0xff),
            (true, false) => (types::I64, types::F64, 52, 0x7ff),
            (false, false) => (types::I32, types::F32, 23, 0xff),
        };
        Format {
            double,
            packed,
            ity,
            fty,
            mb,
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

/// One instruction being lowered: its form and the guest MXCSR.
struct FloatOp<'i> {
    ins: &'i Instruction,
    kind: Kind,
    f: Format,
    mx: Value,
}

/// Lowers one kind of instruction: given the destination's old value (if read) and the
/// source, emits the host computation, ANDs its conditions into the guard and returns the
/// result.
type Lowering<L> = fn(&mut L, &FloatOp, Option<Value>, Value, &mut Value) -> Out;

/// The result, written to the context by the fast path.
#[derive(Clone, Copy)]
enum Out {
    Xmm(usize, Value),
    Gpr(usize, Value),
    /// Materialised RFLAGS bits.
    Flags(Value),
}

impl Out {
    fn value(self) -> Value {
        match self {
            Out::Xmm(_, r) | Out::Gpr(_, r) | Out::Flags(r) => r,
        }
    }

    /// Where the slow path leaves the result in the context, and its type.
    fn slot(self) -> (Type, i32) {
        match self {
            Out::Xmm(d, _) => (types::I8X16, off::xmm(d)),
            Out::Gpr(g, _) => (types::I64, off::gpr(g)),
            Out::Flags(_) => (types::I64, off::FLAGS_RES),
        }
    }
}

/// The XMM destination (operand 0) of `ins`.
fn xmm_dest(ins: &Instruction) -> usize {
    xmm(ins.op_register(0)).expect("xmm destination")
}

fn xmm(r: Register) -> Option<usize> {
    r.is_xmm().then(|| r as usize - Register::XMM0 as usize)
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

    /// 1 (as i8) when every lane's exponent field (`mb` significand bits below it, `emax` its
    /// all-ones value) lies in [lo, hi) (`zero_ok`: or the lane is a zero of either sign).
    fn exp_in(&mut self, v: Value, mb: i64, emax: i64, lo: i64, hi: i64, zero_ok: bool) -> Value {
        let ty = self.b.func.dfg.value_type(v);
        let e = self.b.ins().ushr_imm_u(v, mb);
        let m = self.konst(ty, emax);
        let e = self.b.ins().band(e, m);
        let l = self.konst(ty, lo);
        let e = self.b.ins().isub(e, l);
        let lim = self.konst(ty, hi - lo);
        let mut c = self.b.ins().icmp(IntCC::UnsignedLessThan, e, lim);
        if zero_ok {
            let sh = self.konst(ty, 1);
            let abs = self.b.ins().ishl(v, sh);
            let z = self.konst(ty, 0);
            let zero = self.b.ins().icmp(IntCC::Equal, abs, z);
            c = self.b.ins().bor(c, zero);
        }
        if ty.is_vector() {
            self.b.ins().vall_true(c)
        } else {
            c
        }
    }

    /// 1 (as i8) when the bits of MXCSR in `mask` equal `want`.
    fn mxcsr_is(&mut self, mx: Value, mask: i64, want: i64) -> Value {
        let m = self.b.ins().band_imm_u(mx, mask);
        self.b.ins().icmp_imm_u(IntCC::Equal, m, want)
    }

    /// Operand `n` as the low `bytes` of an XMM register, memory or a general register,
    /// zero-extended into an I64.
    fn scalar_src(&mut self, ins: &Instruction, n: u32, bytes: u8) -> Value {
        match ins.op_kind(n) {
            OpKind::Register => {
                let r = ins.op_register(n);
                match xmm(r) {
                    Some(x) => {
                        let v = self.get_xmm(x);
                        let v = self.as_ty(v, types::I64X2);
                        let v = self.b.ins().extractlane(v, 0);
                        if bytes == 4 {
                            self.b.ins().band_imm_u(v, 0xffff_ffff)
                        } else {
                            v
                        }
                    }
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

    /// ANDs condition `c` into the guard `ok`.
    fn require(&mut self, ok: &mut Value, c: Value) {
        *ok = self.b.ins().band(*ok, c);
    }

    /// `v` (an operand as read) as the format's lane: scalars as `ity`, packed as the vector.
    fn lane(&mut self, f: Format, v: Value) -> Value {
        if f.packed {
            self.as_ty(v, f.ity)
        } else if self.b.func.dfg.value_type(v) == types::I64 {
            if f.double {
                v
            } else {
                self.b.ins().ireduce(types::I32, v)
            }
        } else {
            let w = self.as_ty(v, if f.double { types::I64X2 } else { types::I32X4 });
            self.b.ins().extractlane(w, 0)
        }
    }

    /// The XMM value `a` with its low lane (of vector type `w`) replaced by `r`, as I8X16.
    fn insert_low(&mut self, a: Value, r: Value, w: Type) -> Value {
        let av = self.as_ty(a, w);
        let v = self.b.ins().insertlane(av, r, 0);
        self.as_ty(v, types::I8X16)
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

    /// add, sub, mul, div, sqrt (scalar or packed) and cvtsd2ss.
    fn lower_rounded(&mut self, op: &FloatOp, a: Option<Value>, b: Value, ok: &mut Value) -> Out {
        let (ins, kind, f, mx) = (op.ins, op.kind, op.f, op.mx);
        // Default MXCSR with the precision flag already set: an inexact result then
        // changes nothing.
        let c = self.mxcsr_is(mx, 0xffff & !0x1f, 0x1fa0);
        self.require(ok, c);
        let bi = self.lane(f, b);
        let fb = self.b.ins().bitcast(f.fty, Self::le(), bi);
        let c = self.exp_in(bi, f.mb, f.emax, 1, f.emax, false);
        self.require(ok, c);
        let (ri, rty) = if kind == Kind::Narrow {
            let r = self.b.ins().fdemote(types::F32, fb);
            (self.b.ins().bitcast(types::I32, Self::le(), r), types::I32)
        } else {
            let fr = self.ieee_arith(kind, f, a.expect("destination operand"), bi, fb, ok);
            (self.b.ins().bitcast(f.ity, Self::le(), fr), f.ity)
        };
        // A normal result above the smallest binade: no overflow, no underflow.
        let (rmb, remax) = if rty == types::I32 { (23, 0xff) } else { (f.mb, f.emax) };
        let c = self.exp_in(ri, rmb, remax, 2, remax, false);
        self.require(ok, c);
        let d = xmm_dest(ins);
        let r = if f.packed {
            self.as_ty(ri, types::I8X16)
        } else {
            let w = if rty == types::I64 { types::I64X2 } else { types::I32X4 };
            self.insert_low(a.expect("destination operand"), ri, w)
        };
        Out::Xmm(d, r)
    }

    /// The host operation of add, sub, mul, div or sqrt on `a` and `b` (`bi` as integers, `fb`
    /// as floats), with its guard on the operands: `a` normal, or for sqrt `b` not negative.
    fn ieee_arith(&mut self, kind: Kind, f: Format, a: Value, bi: Value, fb: Value, ok: &mut Value) -> Value {
        let ai = self.lane(f, a);
        let fa = self.b.ins().bitcast(f.fty, Self::le(), ai);
        let fr = match kind {
            Kind::Add => self.b.ins().fadd(fa, fb),
            Kind::Sub => self.b.ins().fsub(fa, fb),
            Kind::Mul => self.b.ins().fmul(fa, fb),
            Kind::Div => self.b.ins().fdiv(fa, fb),
            _ => self.b.ins().sqrt(fb),
        };
        if kind == Kind::Sqrt {
            let z = self.konst(f.ity, 0);
            let neg = self.b.ins().icmp(IntCC::SignedLessThan, bi, z);
            let neg = if f.packed { self.b.ins().vany_true(neg) } else { neg };
            let pos = self.b.ins().bxor_imm_u(neg, 1);
            self.require(ok, pos);
        } else {
            let c = self.exp_in(ai, f.mb, f.emax, 1, f.emax, false);
            self.require(ok, c);
        }
        fr
    }

    /// cvtss2sd.
    fn lower_widen(&mut self, op: &FloatOp, a: Option<Value>, b: Value, ok: &mut Value) -> Out {
        let (ins, f, a) = (op.ins, op.f, a.expect("destination operand"));
        // Exact for zeros and normal numbers; no flags.
        let bi = self.lane(f, b);
        let c = self.exp_in(bi, f.mb, f.emax, 1, f.emax, true);
        self.require(ok, c);
        let fb = self.b.ins().bitcast(types::F32, Self::le(), bi);
        let r = self.b.ins().fpromote(types::F64, fb);
        let ri = self.b.ins().bitcast(types::I64, Self::le(), r);
        Out::Xmm(xmm_dest(ins), self.insert_low(a, ri, types::I64X2))
    }

    /// cvtsi2sd/ss.
    fn lower_from_int(&mut self, op: &FloatOp, a: Option<Value>, b: Value, ok: &mut Value) -> Out {
        let (ins, f, a) = (op.ins, op.f, a.expect("destination operand"));
        // Exact when |v| fits the significand: no flags, the rounding mode irrelevant.
        let k = if f.double { 53 } else { 24 };
        let biased = self.b.ins().iadd_imm_u(b, 1 << k);
        let c = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThanOrEqual, biased, 2 << k);
        self.require(ok, c);
        let fv = self.b.ins().fcvt_from_sint(f.fty, b);
        let ri = self.b.ins().bitcast(f.ity, Self::le(), fv);
        let w = if f.double { types::I64X2 } else { types::I32X4 };
        Out::Xmm(xmm_dest(ins), self.insert_low(a, ri, w))
    }

    /// cvt(t)sd/ss2si.
    fn lower_to_int(&mut self, op: &FloatOp, _: Option<Value>, b: Value, ok: &mut Value) -> Out {
        let (ins, kind, f, mx) = (op.ins, op.kind, op.f, op.mx);
        // In range with room to spare (no invalid), the precision flag set and masked
        // (an inexact result changes nothing); rounding: to nearest.
        let g = semantics::operand::gpr(ins.op_register(0)).expect("general destination");
        let ibits = g.size as i64 * 8;
        let bias = f.emax / 2;
        let bi = self.lane(f, b);
        let c = self.exp_in(bi, f.mb, f.emax, 1, bias + ibits - 2, true);
        self.require(ok, c);
        let c = if kind == Kind::Round {
            self.mxcsr_is(mx, 0x1020 | 0x6000, 0x1020)
        } else {
            self.mxcsr_is(mx, 0x1020, 0x1020)
        };
        self.require(ok, c);
        let fv = self.b.ins().bitcast(f.fty, Self::le(), bi);
        let fv = if kind == Kind::Round {
            self.b.ins().nearest(fv)
        } else {
            fv
        };
        let ity_out = if ibits == 64 { types::I64 } else { types::I32 };
        let r = self.b.ins().fcvt_to_sint_sat(ity_out, fv);
        let r = if ibits == 64 {
            r
        } else {
            self.b.ins().uextend(types::I64, r)
        };
        Out::Gpr(g.idx, r)
    }

    /// (u)comisd/ss.
    fn lower_comi(&mut self, op: &FloatOp, a: Option<Value>, b: Value, ok: &mut Value) -> Out {
        let (f, a) = (op.f, a.expect("destination operand"));
        // Neither operand a NaN or a denormal: an ordered comparison, no flags.
        let ai = self.lane(f, a);
        let bi = self.lane(f, b);
        let c = self.exp_in(ai, f.mb, f.emax, 1, f.emax, true);
        self.require(ok, c);
        let c = self.exp_in(bi, f.mb, f.emax, 1, f.emax, true);
        self.require(ok, c);
        let fa = self.b.ins().bitcast(f.fty, Self::le(), ai);
        let fb = self.b.ins().bitcast(f.fty, Self::le(), bi);
        let lt = self.b.ins().fcmp(FloatCC::LessThan, fa, fb);
        let eq = self.b.ins().fcmp(FloatCC::Equal, fa, fb);
        let zf = self.b.ins().iconst(types::I64, 0x40);
        let cf = self.b.ins().iconst(types::I64, 0x01);
        let z = self.b.ins().iconst(types::I64, 0);
        let r = self.b.ins().select(lt, cf, z);
        Out::Flags(self.b.ins().select(eq, zf, r))
    }

    /// Lowers one SSE float instruction with the guarded host fast path; false if `ins` is not
    /// one of those forms (the caller then emits it as usual).
    pub(super) fn float_fast(&mut self, ins: &Instruction) -> bool {
        let Some((kind, f)) = form(ins) else {
            return false;
        };
        let (a, b) = self.float_operands(ins, kind, f);
        let mx = self.b.ins().load(types::I32, mf(), self.cpu, off::MXCSR);
        let mut ok = self.b.ins().iconst(types::I8, 1);
        let lower: Lowering<Self> = match kind {
            Kind::Widen => Self::lower_widen,
            Kind::FromInt => Self::lower_from_int,
            Kind::Trunc | Kind::Round => Self::lower_to_int,
            Kind::Comi => Self::lower_comi,
            _ => Self::lower_rounded,
        };
        let op = FloatOp { ins, kind, f, mx };
        let out = lower(self, &op, a, b, &mut ok);
        let result = self.fast_or_slow(ins, out, ok);
        self.cache_result(out, result);
        true
    }

    /// Branches on the guard: the fast path keeps the result in SSA values; the slow path
    /// stores the cached state for the helper (which runs the whole instruction) and reloads
    /// the result. Returns the result where both paths join.
    fn fast_or_slow(&mut self, ins: &Instruction, out: Out, ok: Value) -> Value {
        let fast = self.b.create_block();
        let slow = self.b.create_block();
        let join = self.b.create_block();
        let (rty, slot) = out.slot();
        let param = self.b.append_block_param(join, rty);
        self.b.ins().brif(ok, fast, &[], slow, &[]);
        self.seal(&[fast, slow]);
        self.b.switch_to_block(fast);
        self.b.ins().jump(join, &[BlockArg::Value(out.value())]);
        self.b.switch_to_block(slow);
        self.slow_path(ins);
        let cpu = self.cpu;
        let r = self.b.ins().load(rty, mf(), cpu, slot);
        self.b.ins().jump(join, &[BlockArg::Value(r)]);
        self.b.switch_to_block(join);
        self.seal(&[join]);
        param
    }

    /// Caches the joined result as the destination's value (stored at the next flush); MXCSR
    /// lives in the context only.
    fn cache_result(&mut self, out: Out, result: Value) {
        match out {
            Out::Xmm(d, _) => self.set_xmm(d, result),
            Out::Gpr(g, _) => self.set_reg(g, result),
            Out::Flags(_) => {
                let z = self.imm(0);
                self.state.flags = Some(Flags {
                    kind: FlagKind::Raw,
                    size: 8,
                    res: result,
                    a: z,
                    b: z,
                    aux: z,
                });
                self.state.flags_dirty = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_is_listed_once_and_scalar_conversions_are_not_packed() {
        for (i, (code, kind, (_, packed))) in FORMS.iter().enumerate() {
            assert!(FORMS[..i].iter().all(|(c, ..)| c != code), "{code:?} listed twice");
            let arithmetic = matches!(kind, Kind::Add | Kind::Sub | Kind::Mul | Kind::Div | Kind::Sqrt);
            assert!(arithmetic || !packed, "{code:?} is a scalar-only kind");
        }
    }
}
