//! SSE floating point lowered to host IEEE instructions wherever they cannot differ from the
//! soft-float semantics (`semantics::fp`). A guard evaluated at run time decides: the MXCSR
//! settings the operation depends on, and operands and results away from NaN, infinity, zero
//! (where it matters), denormals and the edges of the range. Then the host's correctly rounded
//! result is the soft-float one and no MXCSR flag can change. Anything else runs the whole
//! instruction through the slow helper, which runs those semantics: that path stores the cached
//! registers for it and reloads the result, the fast path keeps everything in SSA values.

use super::{mf, Lower};
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

/// (kind, binary64 operand?, packed?)
fn form(ins: &Instruction) -> Option<(Kind, bool, bool)> {
    use Code::*;
    use Kind::*;
    Some(match ins.code() {
        Addss_xmm_xmmm32 => (Add, false, false),
        Subss_xmm_xmmm32 => (Sub, false, false),
        Mulss_xmm_xmmm32 => (Mul, false, false),
        Divss_xmm_xmmm32 => (Div, false, false),
        Sqrtss_xmm_xmmm32 => (Sqrt, false, false),
        Addsd_xmm_xmmm64 => (Add, true, false),
        Subsd_xmm_xmmm64 => (Sub, true, false),
        Mulsd_xmm_xmmm64 => (Mul, true, false),
        Divsd_xmm_xmmm64 => (Div, true, false),
        Sqrtsd_xmm_xmmm64 => (Sqrt, true, false),
        Addps_xmm_xmmm128 => (Add, false, true),
        Subps_xmm_xmmm128 => (Sub, false, true),
        Mulps_xmm_xmmm128 => (Mul, false, true),
        Divps_xmm_xmmm128 => (Div, false, true),
        Sqrtps_xmm_xmmm128 => (Sqrt, false, true),
        Addpd_xmm_xmmm128 => (Add, true, true),
        Subpd_xmm_xmmm128 => (Sub, true, true),
        Mulpd_xmm_xmmm128 => (Mul, true, true),
        Divpd_xmm_xmmm128 => (Div, true, true),
        Sqrtpd_xmm_xmmm128 => (Sqrt, true, true),
        Comisd_xmm_xmmm64 | Ucomisd_xmm_xmmm64 => (Comi, true, false),
        Comiss_xmm_xmmm32 | Ucomiss_xmm_xmmm32 => (Comi, false, false),
        Cvtsi2sd_xmm_rm32 | Cvtsi2sd_xmm_rm64 => (FromInt, true, false),
        Cvtsi2ss_xmm_rm32 | Cvtsi2ss_xmm_rm64 => (FromInt, false, false),
        Cvttsd2si_r32_xmmm64 | Cvttsd2si_r64_xmmm64 => (Trunc, true, false),
        Cvttss2si_r32_xmmm32 | Cvttss2si_r64_xmmm32 => (Trunc, false, false),
        Cvtsd2si_r32_xmmm64 | Cvtsd2si_r64_xmmm64 => (Round, true, false),
        Cvtss2si_r32_xmmm32 | Cvtss2si_r64_xmmm32 => (Round, false, false),
        Cvtss2sd_xmm_xmmm32 => (Widen, false, false),
        Cvtsd2ss_xmm_xmmm64 => (Narrow, true, false),
        _ => return None,
    })
}

/// A binary format's integer type, float type, significand bits and exponent field maximum.
fn format(double: bool, packed: bool) -> (Type, Type, i64, i64) {
    match (double, packed) {
        (true, true) => (types::I64X2, types::F64X2, 52, 0x7ff),
        (false, true) => (types::I32X4, types::F32X4, 23, 0xff),
        (true, false) => (types::I64, types::F64, 52, 0x7ff),
        (false, false) => (types::I32, types::F32, 23, 0xff),
    }
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

    /// Lowers one SSE float instruction with the guarded host fast path; false if `ins` is not
    /// one of those forms (the caller then emits it as usual).
    pub(super) fn float_fast(&mut self, ins: &Instruction) -> bool {
        let Some((kind, double, packed)) = form(ins) else {
            return false;
        };
        let (ity, fty, mb, emax) = format(double, packed);
        let bytes: u8 = if double { 8 } else { 4 };
        let le = Self::le();
        // Operands, read before anything is written (a memory operand may fault here, with
        // the context already precise).
        let (a, b) = match kind {
            Kind::Trunc | Kind::Round => (None, self.scalar_src(ins, 1, bytes)),
            Kind::FromInt => {
                let size = if ins.op_kind(1) == OpKind::Register {
                    ins.op_register(1).size() as u8
                } else {
                    ins.memory_size().size() as u8
                };
                let d = xmm(ins.op_register(0)).expect("xmm destination");
                let a = self.get_xmm(d);
                let v = self.scalar_src(ins, 1, size);
                let v = if size == 4 {
                    let t = self.b.ins().ireduce(types::I32, v);
                    self.b.ins().sextend(types::I64, t)
                } else {
                    v
                };
                (Some(a), v)
            }
            Kind::Widen | Kind::Narrow => {
                let d = xmm(ins.op_register(0)).expect("xmm destination");
                let a = self.get_xmm(d);
                (Some(a), self.scalar_src(ins, 1, bytes))
            }
            _ if packed => {
                let d = xmm(ins.op_register(0)).expect("xmm destination");
                let a = self.get_xmm(d);
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
                let d = xmm(ins.op_register(0)).expect("xmm destination");
                let a = self.get_xmm(d);
                (Some(a), self.scalar_src(ins, 1, bytes))
            }
        };
        let mx = self.b.ins().load(types::I32, mf(), self.cpu, off::MXCSR);
        // Scalar lanes as ity, packed as the vector type.
        let lane = |l: &mut Self, v: Value| -> Value {
            if packed {
                l.as_ty(v, ity)
            } else if l.b.func.dfg.value_type(v) == types::I64 {
                if double {
                    v
                } else {
                    l.b.ins().ireduce(types::I32, v)
                }
            } else {
                let w = l.as_ty(v, if double { types::I64X2 } else { types::I32X4 });
                l.b.ins().extractlane(w, 0)
            }
        };
        let mut ok = self.b.ins().iconst(types::I8, 1);
        // The result, written to the context by the fast path.
        enum Out {
            Xmm(usize, Value),
            Gpr(usize, Value),
            Flags(Value),
        }
        let out = match kind {
            Kind::Add | Kind::Sub | Kind::Mul | Kind::Div | Kind::Sqrt | Kind::Narrow => {
                // Default MXCSR with the precision flag already set: an inexact result then
                // changes nothing.
                let c = self.mxcsr_is(mx, 0xffff & !0x1f, 0x1fa0);
                ok = self.b.ins().band(ok, c);
                let bi = lane(self, b);
                let fb = self.b.ins().bitcast(fty, le, bi);
                let (ri, rty) = if kind == Kind::Narrow {
                    let c = self.exp_in(bi, mb, emax, 1, emax, false);
                    ok = self.b.ins().band(ok, c);
                    let r = self.b.ins().fdemote(types::F32, fb);
                    (self.b.ins().bitcast(types::I32, le, r), types::I32)
                } else {
                    let c = self.exp_in(bi, mb, emax, 1, emax, false);
                    ok = self.b.ins().band(ok, c);
                    let ai = lane(self, a.expect("destination operand"));
                    let fa = self.b.ins().bitcast(fty, le, ai);
                    let fr = match kind {
                        Kind::Add => self.b.ins().fadd(fa, fb),
                        Kind::Sub => self.b.ins().fsub(fa, fb),
                        Kind::Mul => self.b.ins().fmul(fa, fb),
                        Kind::Div => self.b.ins().fdiv(fa, fb),
                        _ => self.b.ins().sqrt(fb),
                    };
                    if kind == Kind::Sqrt {
                        let z = self.konst(ity, 0);
                        let neg = self.b.ins().icmp(IntCC::SignedLessThan, bi, z);
                        let neg = if packed { self.b.ins().vany_true(neg) } else { neg };
                        let pos = self.b.ins().bxor_imm_u(neg, 1);
                        ok = self.b.ins().band(ok, pos);
                    } else {
                        let c = self.exp_in(ai, mb, emax, 1, emax, false);
                        ok = self.b.ins().band(ok, c);
                    }
                    (self.b.ins().bitcast(ity, le, fr), ity)
                };
                // A normal result above the smallest binade: no overflow, no underflow.
                let (rmb, remax) = if rty == types::I32 { (23, 0xff) } else { (mb, emax) };
                let c = self.exp_in(ri, rmb, remax, 2, remax, false);
                ok = self.b.ins().band(ok, c);
                let d = xmm(ins.op_register(0)).expect("xmm destination");
                let r = if packed {
                    self.as_ty(ri, types::I8X16)
                } else {
                    let w = if rty == types::I64 { types::I64X2 } else { types::I32X4 };
                    let av = self.as_ty(a.expect("destination operand"), w);
                    let v = self.b.ins().insertlane(av, ri, 0);
                    self.as_ty(v, types::I8X16)
                };
                Out::Xmm(d, r)
            }
            Kind::Widen => {
                // Exact for zeros and normal numbers; no flags.
                let bi = lane(self, b);
                let c = self.exp_in(bi, mb, emax, 1, emax, true);
                ok = self.b.ins().band(ok, c);
                let fb = self.b.ins().bitcast(types::F32, le, bi);
                let r = self.b.ins().fpromote(types::F64, fb);
                let ri = self.b.ins().bitcast(types::I64, le, r);
                let av = self.as_ty(a.expect("destination operand"), types::I64X2);
                let v = self.b.ins().insertlane(av, ri, 0);
                let d = xmm(ins.op_register(0)).expect("xmm destination");
                Out::Xmm(d, self.as_ty(v, types::I8X16))
            }
            Kind::FromInt => {
                // Exact when |v| fits the significand: no flags, the rounding mode irrelevant.
                let k = if double { 53 } else { 24 };
                let biased = self.b.ins().iadd_imm_u(b, 1 << k);
                let c = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThanOrEqual, biased, 2 << k);
                ok = self.b.ins().band(ok, c);
                let f = self.b.ins().fcvt_from_sint(fty, b);
                let ri = self.b.ins().bitcast(ity, le, f);
                let w = if double { types::I64X2 } else { types::I32X4 };
                let av = self.as_ty(a.expect("destination operand"), w);
                let v = self.b.ins().insertlane(av, ri, 0);
                let d = xmm(ins.op_register(0)).expect("xmm destination");
                Out::Xmm(d, self.as_ty(v, types::I8X16))
            }
            Kind::Trunc | Kind::Round => {
                // In range with room to spare (no invalid), the precision flag set and masked
                // (an inexact result changes nothing); rounding: to nearest.
                let g = semantics::operand::gpr(ins.op_register(0)).expect("general destination");
                let ibits = g.size as i64 * 8;
                let bias = emax / 2;
                let bi = lane(self, b);
                let c = self.exp_in(bi, mb, emax, 1, bias + ibits - 2, true);
                ok = self.b.ins().band(ok, c);
                let c = if kind == Kind::Round {
                    self.mxcsr_is(mx, 0x1020 | 0x6000, 0x1020)
                } else {
                    self.mxcsr_is(mx, 0x1020, 0x1020)
                };
                ok = self.b.ins().band(ok, c);
                let f = self.b.ins().bitcast(fty, le, bi);
                let f = if kind == Kind::Round {
                    self.b.ins().nearest(f)
                } else {
                    f
                };
                let ity_out = if ibits == 64 { types::I64 } else { types::I32 };
                let r = self.b.ins().fcvt_to_sint_sat(ity_out, f);
                let r = if ibits == 64 {
                    r
                } else {
                    self.b.ins().uextend(types::I64, r)
                };
                Out::Gpr(g.idx, r)
            }
            Kind::Comi => {
                // Neither operand a NaN or a denormal: an ordered comparison, no flags.
                let ai = lane(self, a.expect("destination operand"));
                let bi = lane(self, b);
                let c = self.exp_in(ai, mb, emax, 1, emax, true);
                ok = self.b.ins().band(ok, c);
                let c = self.exp_in(bi, mb, emax, 1, emax, true);
                ok = self.b.ins().band(ok, c);
                let fa = self.b.ins().bitcast(fty, le, ai);
                let fb = self.b.ins().bitcast(fty, le, bi);
                let lt = self.b.ins().fcmp(FloatCC::LessThan, fa, fb);
                let eq = self.b.ins().fcmp(FloatCC::Equal, fa, fb);
                let zf = self.b.ins().iconst(types::I64, 0x40);
                let cf = self.b.ins().iconst(types::I64, 0x01);
                let z = self.b.ins().iconst(types::I64, 0);
                let r = self.b.ins().select(lt, cf, z);
                Out::Flags(self.b.ins().select(eq, zf, r))
            }
        };
        // The fast path keeps the result in SSA values; the slow path stores the cached state
        // for the helper (which runs the whole instruction) and reloads the result.
        let fast = self.b.create_block();
        let slow = self.b.create_block();
        let join = self.b.create_block();
        let rty = match out {
            Out::Xmm(..) => types::I8X16,
            _ => types::I64,
        };
        let param = self.b.append_block_param(join, rty);
        self.b.ins().brif(ok, fast, &[], slow, &[]);
        self.b.switch_to_block(fast);
        let r = match out {
            Out::Xmm(_, r) | Out::Gpr(_, r) | Out::Flags(r) => r,
        };
        self.b.ins().jump(join, &[BlockArg::Value(r)]);
        self.b.switch_to_block(slow);
        self.store_dirty();
        let rip = self.code_addr(ins.ip());
        let z = self.imm(0);
        let code = self.call_helper(super::H_SLOW, rip, z);
        let fault = self.b.create_block();
        let reload = self.b.create_block();
        self.b.ins().brif(code, fault, &[], reload, &[]);
        self.b.switch_to_block(fault);
        self.b.ins().return_(&[code]);
        self.b.switch_to_block(reload);
        let cpu = self.cpu;
        let r = match out {
            Out::Xmm(d, _) => self.b.ins().load(types::I8X16, mf(), cpu, off::xmm(d)),
            Out::Gpr(g, _) => self.b.ins().load(types::I64, mf(), cpu, off::gpr(g)),
            Out::Flags(_) => self.b.ins().load(types::I64, mf(), cpu, off::FLAGS_RES),
        };
        self.b.ins().jump(join, &[BlockArg::Value(r)]);
        self.b.switch_to_block(join);
        // MXCSR lives in the context only; the result is cached (and stored at the next flush).
        match out {
            Out::Xmm(d, _) => {
                self.xregs[d] = Some(param);
                self.xdirty[d] = true;
            }
            Out::Gpr(g, _) => {
                self.regs[g] = Some(param);
                self.dirty[g] = true;
            }
            Out::Flags(_) => {
                let z = self.imm(0);
                self.flags = Some(crate::cpu::flags::Flags {
                    kind: FlagKind::Raw,
                    size: 8,
                    res: param,
                    a: z,
                    b: z,
                    aux: z,
                });
                self.flags_dirty = true;
            }
        }
        true
    }
}
