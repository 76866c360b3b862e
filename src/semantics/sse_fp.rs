//! SSE/SSE2 floating-point instructions (scalar and packed, single and double) over concrete
//! state, using the soft-float core in `fp.rs`, as one family table. Both tiers run this code
//! (compiled code through the slow helper).

use super::concrete::Live;
use super::fp::{self, FOp, W};
use super::operand::{gpr, op_size, write_gpr};
use super::sse::{get, src_concrete, xmm_idx};
use super::table::{row, Family};
use crate::cpu::flags::store_raw_flags;
use crate::cpu::{fault, Cpu};
use iced_x86::{Code, Instruction, Mnemonic, OpKind};
use Mnemonic::*;

/// The operation of an SSE floating-point row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FpOp {
    /// An arithmetic operation on the low lane (`packed`: on every lane) of width `w`.
    Arith {
        op: FOp,
        w: W,
        packed: bool,
    },
    /// cmpss/cmpsd/cmpps/cmppd: the immediate's predicate, all ones or zero per lane.
    Compare {
        w: W,
        packed: bool,
    },
    /// (u)comiss/(u)comisd: flags from an ordered compare; `signal` also for quiet NaNs.
    Comi {
        w: W,
        signal: bool,
    },
    /// cvtsi2ss/cvtsi2sd.
    IntToScalar(W),
    /// cvt(t)ss2si/cvt(t)sd2si.
    ScalarToInt {
        w: W,
        truncate: bool,
    },
    /// cvtss2sd/cvtsd2ss, from width `from`.
    ScalarConvert {
        from: W,
    },
    /// cvtdq2ps/cvtdq2pd: 32-bit integers to floats of width `to`.
    DwordsToFloats {
        to: W,
    },
    /// cvt(t)ps2dq/cvt(t)pd2dq.
    FloatsToDwords {
        w: W,
        truncate: bool,
    },
    Cvtps2pd,
    Cvtpd2ps,
    /// rcpps/rsqrtps (`packed`) and rcpss/rsqrtss.
    Approx {
        rsqrt: bool,
        packed: bool,
    },
}

const fn arith(op: FOp, w: W, packed: bool) -> FpOp {
    FpOp::Arith { op, w, packed }
}

pub static FAMILY: Family<FpOp> = Family::new(
    "sse float",
    &[
        row(&[Addsd], arith(FOp::Add, W::D, false)),
        row(&[Addss], arith(FOp::Add, W::S, false)),
        row(&[Addpd], arith(FOp::Add, W::D, true)),
        row(&[Addps], arith(FOp::Add, W::S, true)),
        row(&[Subsd], arith(FOp::Sub, W::D, false)),
        row(&[Subss], arith(FOp::Sub, W::S, false)),
        row(&[Subpd], arith(FOp::Sub, W::D, true)),
        row(&[Subps], arith(FOp::Sub, W::S, true)),
        row(&[Mulsd], arith(FOp::Mul, W::D, false)),
        row(&[Mulss], arith(FOp::Mul, W::S, false)),
        row(&[Mulpd], arith(FOp::Mul, W::D, true)),
        row(&[Mulps], arith(FOp::Mul, W::S, true)),
        row(&[Divsd], arith(FOp::Div, W::D, false)),
        row(&[Divss], arith(FOp::Div, W::S, false)),
        row(&[Divpd], arith(FOp::Div, W::D, true)),
        row(&[Divps], arith(FOp::Div, W::S, true)),
        row(&[Sqrtsd], arith(FOp::Sqrt, W::D, false)),
        row(&[Sqrtss], arith(FOp::Sqrt, W::S, false)),
        row(&[Sqrtpd], arith(FOp::Sqrt, W::D, true)),
        row(&[Sqrtps], arith(FOp::Sqrt, W::S, true)),
        row(&[Minsd], arith(FOp::Min, W::D, false)),
        row(&[Minss], arith(FOp::Min, W::S, false)),
        row(&[Minpd], arith(FOp::Min, W::D, true)),
        row(&[Minps], arith(FOp::Min, W::S, true)),
        row(&[Maxsd], arith(FOp::Max, W::D, false)),
        row(&[Maxss], arith(FOp::Max, W::S, false)),
        row(&[Maxpd], arith(FOp::Max, W::D, true)),
        row(&[Maxps], arith(FOp::Max, W::S, true)),
        row(&[Cmpsd], FpOp::Compare { w: W::D, packed: false }),
        row(&[Cmpss], FpOp::Compare { w: W::S, packed: false }),
        row(&[Cmppd], FpOp::Compare { w: W::D, packed: true }),
        row(&[Cmpps], FpOp::Compare { w: W::S, packed: true }),
        row(&[Comisd], FpOp::Comi { w: W::D, signal: true }),
        row(&[Comiss], FpOp::Comi { w: W::S, signal: true }),
        row(&[Ucomisd], FpOp::Comi { w: W::D, signal: false }),
        row(&[Ucomiss], FpOp::Comi { w: W::S, signal: false }),
        row(&[Cvtsi2sd], FpOp::IntToScalar(W::D)),
        row(&[Cvtsi2ss], FpOp::IntToScalar(W::S)),
        row(
            &[Cvtsd2si],
            FpOp::ScalarToInt {
                w: W::D,
                truncate: false,
            },
        ),
        row(
            &[Cvttsd2si],
            FpOp::ScalarToInt {
                w: W::D,
                truncate: true,
            },
        ),
        row(
            &[Cvtss2si],
            FpOp::ScalarToInt {
                w: W::S,
                truncate: false,
            },
        ),
        row(
            &[Cvttss2si],
            FpOp::ScalarToInt {
                w: W::S,
                truncate: true,
            },
        ),
        row(&[Cvtsd2ss], FpOp::ScalarConvert { from: W::D }),
        row(&[Cvtss2sd], FpOp::ScalarConvert { from: W::S }),
        row(&[Cvtdq2pd], FpOp::DwordsToFloats { to: W::D }),
        row(&[Cvtdq2ps], FpOp::DwordsToFloats { to: W::S }),
        row(
            &[Cvtpd2dq],
            FpOp::FloatsToDwords {
                w: W::D,
                truncate: false,
            },
        ),
        row(
            &[Cvttpd2dq],
            FpOp::FloatsToDwords {
                w: W::D,
                truncate: true,
            },
        ),
        row(
            &[Cvtps2dq],
            FpOp::FloatsToDwords {
                w: W::S,
                truncate: false,
            },
        ),
        row(
            &[Cvttps2dq],
            FpOp::FloatsToDwords {
                w: W::S,
                truncate: true,
            },
        ),
        row(&[Cvtps2pd], FpOp::Cvtps2pd),
        row(&[Cvtpd2ps], FpOp::Cvtpd2ps),
        row(
            &[Rcpps],
            FpOp::Approx {
                rsqrt: false,
                packed: true,
            },
        ),
        row(
            &[Rsqrtps],
            FpOp::Approx {
                rsqrt: true,
                packed: true,
            },
        ),
        row(
            &[Rcpss],
            FpOp::Approx {
                rsqrt: false,
                packed: false,
            },
        ),
        row(
            &[Rsqrtss],
            FpOp::Approx {
                rsqrt: true,
                packed: false,
            },
        ),
    ],
);

/// A `FAMILY` row with a register destination; the compares only in their SSE forms (cmpsd is
/// also a string instruction).
pub fn supported(ins: &Instruction) -> bool {
    match FAMILY.row(ins.mnemonic()) {
        Some(r) if matches!(r.handler, FpOp::Compare { .. }) => matches!(
            ins.code(),
            Code::Cmpsd_xmm_xmmm64_imm8
                | Code::Cmpss_xmm_xmmm32_imm8
                | Code::Cmppd_xmm_xmmm128_imm8
                | Code::Cmpps_xmm_xmmm128_imm8
        ),
        Some(_) => ins.op_kind(0) == OpKind::Register,
        None => false,
    }
}

/// The bytes of one float of width `w`.
fn bytes(w: W) -> u8 {
    (w.bits() / 8) as u8
}

/// Source operand `n` (memory reads `bytes`), zero-extended.
fn src(cpu: &mut Cpu, ins: &Instruction, n: u32, bytes: u8) -> Result<u128, u64> {
    src_concrete(cpu, ins, n, bytes).ok_or(fault::UNIMPLEMENTED)
}

/// The XMM destination register.
fn dst(ins: &Instruction) -> Result<usize, u64> {
    xmm_idx(ins.op_register(0)).ok_or(fault::UNIMPLEMENTED)
}

/// The float lanes of a register value (the vector module's lane split).
fn lanes(v: u128, w: W) -> Vec<u64> {
    let bytes = bytes(w);
    super::vector::lanes(v, bytes)[..16 / bytes as usize].to_vec()
}

fn join(l: &[u64], w: W) -> [u64; 2] {
    let mut all = [0u64; 16];
    all[..l.len()].copy_from_slice(l);
    let v = super::vector::pack(&all, bytes(w));
    [v as u64, (v >> 64) as u64]
}

/// Writes the low lane of a scalar result, keeping the destination's other bits.
fn set_scalar(cpu: &mut Cpu, x: usize, w: W, v: u64) {
    let m = w.mask();
    cpu.xmm[x][0] = (cpu.xmm[x][0] & !m) | (v & m);
}

/// Runs one instruction `supported` admitted; MXCSR's flags change only if it completes.
pub fn exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let op = FAMILY.row(ins.mnemonic()).ok_or(fault::UNIMPLEMENTED)?.handler;
    let mut mxcsr = cpu.mxcsr;
    let mx = &mut mxcsr;
    match op {
        FpOp::Arith { op, w, packed } => lanewise(cpu, ins, w, packed, |a, b| fp::binop(w, op, a, b, mx))?,
        FpOp::Compare { w, packed } => {
            let pred = ins.immediate(2) as u8;
            lanewise(cpu, ins, w, packed, |a, b| {
                if fp::cmp_pred(w, pred, a, b, mx) {
                    w.mask()
                } else {
                    0
                }
            })?
        }
        FpOp::Comi { w, signal } => comi(cpu, ins, w, signal, mx)?,
        FpOp::IntToScalar(w) => int_to_scalar(cpu, ins, w, mx)?,
        FpOp::ScalarToInt { w, truncate } => {
            let g = gpr(ins.op_register(0)).ok_or(fault::UNIMPLEMENTED)?;
            let v = src(cpu, ins, 1, bytes(w))? as u64;
            let r = fp::to_int(w, v, g.size as u32 * 8, truncate, mx);
            write_gpr(&mut Live::new(cpu), g, r);
        }
        FpOp::ScalarConvert { from } => {
            let x = dst(ins)?;
            let v = src(cpu, ins, 1, bytes(from))? as u64;
            let r = fp::convert(from, v, mx);
            set_scalar(cpu, x, if from == W::D { W::S } else { W::D }, r);
        }
        FpOp::DwordsToFloats { to } => dwords_to_floats(cpu, ins, to, mx)?,
        FpOp::FloatsToDwords { w, truncate } => {
            let x = dst(ins)?;
            let v = lanes(src(cpu, ins, 1, 16)?, w);
            let r: Vec<u64> = v.iter().map(|&f| fp::to_int(w, f, 32, truncate, mx)).collect();
            set_dwords(cpu, x, r);
        }
        FpOp::Cvtps2pd => {
            let x = dst(ins)?;
            let v = lanes(src(cpu, ins, 1, 8)?, W::S);
            let r: Vec<u64> = v[..2].iter().map(|&f| fp::convert(W::S, f, mx)).collect();
            cpu.xmm[x] = join(&r, W::D);
        }
        FpOp::Cvtpd2ps => {
            let x = dst(ins)?;
            let v = lanes(src(cpu, ins, 1, 16)?, W::D);
            let r: Vec<u64> = v.iter().map(|&f| fp::convert(W::D, f, mx)).collect();
            set_dwords(cpu, x, r);
        }
        FpOp::Approx { rsqrt, packed } => approx(cpu, ins, rsqrt, packed)?,
    }
    cpu.mxcsr = mxcsr;
    Ok(())
}

/// dst = f(dst, src) on the low lane (keeping the rest) or, `packed`, on every lane.
fn lanewise(
    cpu: &mut Cpu,
    ins: &Instruction,
    w: W,
    packed: bool,
    mut f: impl FnMut(u64, u64) -> u64,
) -> Result<(), u64> {
    let x = dst(ins)?;
    if !packed {
        let b = src(cpu, ins, 1, bytes(w))? as u64;
        let r = f(cpu.xmm[x][0], b);
        set_scalar(cpu, x, w, r);
        return Ok(());
    }
    let b = lanes(src(cpu, ins, 1, 16)?, w);
    let a = lanes(get(cpu, x), w);
    let r: Vec<u64> = a.iter().zip(&b).map(|(&a, &b)| f(a, b)).collect();
    cpu.xmm[x] = join(&r, w);
    Ok(())
}

/// The low two (cvtpd2dq, cvtpd2ps) or four 32-bit results, the rest of the register zeroed.
fn set_dwords(cpu: &mut Cpu, x: usize, mut r: Vec<u64>) {
    r.resize(4, 0);
    cpu.xmm[x] = join(&r, W::S);
}

fn comi(cpu: &mut Cpu, ins: &Instruction, w: W, signal: bool, mx: &mut u32) -> Result<(), u64> {
    let x = dst(ins)?;
    let b = src(cpu, ins, 1, bytes(w))? as u64;
    let f = fp::comi(w, cpu.xmm[x][0], b, signal, mx);
    store_raw_flags(cpu, f);
    Ok(())
}

fn int_to_scalar(cpu: &mut Cpu, ins: &Instruction, w: W, mx: &mut u32) -> Result<(), u64> {
    let x = dst(ins)?;
    let size = op_size(ins, 1);
    let v = src(cpu, ins, 1, size)? as u64;
    let v = if size == 4 { v as u32 as i32 as i64 } else { v as i64 };
    let r = fp::from_int(w, v, mx);
    set_scalar(cpu, x, w, r);
    Ok(())
}

fn dwords_to_floats(cpu: &mut Cpu, ins: &Instruction, to: W, mx: &mut u32) -> Result<(), u64> {
    let x = dst(ins)?;
    let bytes = if to == W::D { 8 } else { 16 };
    let v = lanes(src(cpu, ins, 1, bytes)?, W::S);
    let n = if to == W::D { 2 } else { 4 };
    let r: Vec<u64> = v[..n]
        .iter()
        .map(|&i| fp::from_int(to, i as u32 as i32 as i64, mx))
        .collect();
    cpu.xmm[x] = join(&r, to);
    Ok(())
}

/// rcpps/rsqrtps/rcpss/rsqrtss: the table approximations; MXCSR is not touched.
fn approx(cpu: &mut Cpu, ins: &Instruction, rsqrt: bool, packed: bool) -> Result<(), u64> {
    let x = dst(ins)?;
    if !packed {
        let v = src(cpu, ins, 1, 4)? as u64;
        set_scalar(cpu, x, W::S, fp::approx(v as u32, rsqrt) as u64);
        return Ok(());
    }
    let v = lanes(src(cpu, ins, 1, 16)?, W::S);
    let r: Vec<u64> = v.iter().map(|&f| fp::approx(f as u32, rsqrt) as u64).collect();
    cpu.xmm[x] = join(&r, W::S);
    Ok(())
}
