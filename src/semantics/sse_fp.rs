//! SSE/SSE2 floating-point instructions (scalar and packed, single and double) over concrete
//! state, using the soft-float core in `fp.rs`. Both tiers run this code (compiled code through
//! the slow helper).

use super::concrete::{load, store_flags, Live};
use super::emitter::Flags;
use super::fp::{self, FOp, W};
use super::operand::{ea, gpr, read_gpr, write_gpr};
use crate::cpu::{fault, Cpu, FlagKind};
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

fn xmm(r: Register) -> Option<usize> {
    r.is_xmm().then(|| r as usize - Register::XMM0 as usize)
}

pub fn supported(ins: &Instruction) -> bool {
    use Mnemonic::*;
    if matches!(ins.mnemonic(), Cmpsd | Cmpss | Cmppd | Cmpps) {
        return matches!(
            ins.code(),
            Code::Cmpsd_xmm_xmmm64_imm8
                | Code::Cmpss_xmm_xmmm32_imm8
                | Code::Cmppd_xmm_xmmm128_imm8
                | Code::Cmpps_xmm_xmmm128_imm8
        );
    }
    matches!(
        ins.mnemonic(),
        Addsd
            | Addss
            | Addpd
            | Addps
            | Subsd
            | Subss
            | Subpd
            | Subps
            | Mulsd
            | Mulss
            | Mulpd
            | Mulps
            | Divsd
            | Divss
            | Divpd
            | Divps
            | Sqrtsd
            | Sqrtss
            | Sqrtpd
            | Sqrtps
            | Minsd
            | Minss
            | Minpd
            | Minps
            | Maxsd
            | Maxss
            | Maxpd
            | Maxps
            | Comisd
            | Comiss
            | Ucomisd
            | Ucomiss
            | Cvtsi2sd
            | Cvtsi2ss
            | Cvtsd2si
            | Cvttsd2si
            | Cvtss2si
            | Cvttss2si
            | Cvtsd2ss
            | Cvtss2sd
            | Cvtdq2pd
            | Cvtdq2ps
            | Cvtpd2dq
            | Cvttpd2dq
            | Cvtps2dq
            | Cvttps2dq
            | Cvtps2pd
            | Cvtpd2ps
            | Rcpps
            | Rcpss
            | Rsqrtps
            | Rsqrtss
    ) && ins.op_kind(0) == OpKind::Register
}

fn get(cpu: &Cpu, i: usize) -> [u64; 2] {
    cpu.xmm[i]
}

/// Source operand as 128 bits (memory reads `bytes`).
fn src(cpu: &mut Cpu, ins: &Instruction, n: u32, bytes: u8) -> Option<[u64; 2]> {
    match ins.op_kind(n) {
        OpKind::Register => {
            let r = ins.op_register(n);
            match xmm(r) {
                Some(x) => Some(get(cpu, x)),
                None => Some([read_gpr(&mut Live::new(cpu), gpr(r)?), 0]),
            }
        }
        OpKind::Memory => {
            let a = ea(&mut Live::new(cpu), ins);
            Some(match bytes {
                16 => [load(cpu, a, 8), load(cpu, a.wrapping_add(8), 8)],
                n => [load(cpu, a, n), 0],
            })
        }
        _ => None,
    }
}

/// The float lanes of a register value (the vector module's lane split).
fn lanes(v: [u64; 2], w: W) -> Vec<u64> {
    let bytes = (w.bits() / 8) as u8;
    super::vector::lanes(v[0] as u128 | (v[1] as u128) << 64, bytes)[..16 / bytes as usize].to_vec()
}

fn join(l: &[u64], w: W) -> [u64; 2] {
    let mut all = [0u64; 16];
    all[..l.len()].copy_from_slice(l);
    let v = super::vector::pack(&all, (w.bits() / 8) as u8);
    [v as u64, (v >> 64) as u64]
}

/// Writes the low lane of a scalar result, keeping the destination's other bits.
fn set_scalar(cpu: &mut Cpu, x: usize, w: W, v: u64) {
    let m = w.mask();
    cpu.xmm[x][0] = (cpu.xmm[x][0] & !m) | (v & m);
}

pub fn exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let d = xmm(ins.op_register(0));
    let mut mxcsr = cpu.mxcsr;
    let scalar_w = |m: Mnemonic| -> Option<W> {
        match m {
            Addsd | Subsd | Mulsd | Divsd | Sqrtsd | Minsd | Maxsd | Cmpsd => Some(W::D),
            Addss | Subss | Mulss | Divss | Sqrtss | Minss | Maxss | Cmpss => Some(W::S),
            _ => None,
        }
    };
    let packed_w = |m: Mnemonic| -> Option<W> {
        match m {
            Addpd | Subpd | Mulpd | Divpd | Sqrtpd | Minpd | Maxpd | Cmppd => Some(W::D),
            Addps | Subps | Mulps | Divps | Sqrtps | Minps | Maxps | Cmpps => Some(W::S),
            _ => None,
        }
    };
    let fop = |m: Mnemonic| match m {
        Addsd | Addss | Addpd | Addps => Some(FOp::Add),
        Subsd | Subss | Subpd | Subps => Some(FOp::Sub),
        Mulsd | Mulss | Mulpd | Mulps => Some(FOp::Mul),
        Divsd | Divss | Divpd | Divps => Some(FOp::Div),
        Sqrtsd | Sqrtss | Sqrtpd | Sqrtps => Some(FOp::Sqrt),
        Minsd | Minss | Minpd | Minps => Some(FOp::Min),
        Maxsd | Maxss | Maxpd | Maxps => Some(FOp::Max),
        _ => None,
    };
    let is_cmp = matches!(m, Cmpsd | Cmpss | Cmppd | Cmpps);
    if let Some(w) = scalar_w(m) {
        let x = d.ok_or(fault::UNIMPLEMENTED)?;
        let b = src(cpu, ins, 1, (w.bits() / 8) as u8).ok_or(fault::UNIMPLEMENTED)?[0];
        let a = cpu.xmm[x][0];
        let r = if is_cmp {
            if fp::cmp_pred(w, ins.immediate(2) as u8, a, b, &mut mxcsr) {
                w.mask()
            } else {
                0
            }
        } else {
            fp::binop(w, fop(m).ok_or(fault::UNIMPLEMENTED)?, a, b, &mut mxcsr)
        };
        set_scalar(cpu, x, w, r);
    } else if let Some(w) = packed_w(m) {
        let x = d.ok_or(fault::UNIMPLEMENTED)?;
        let b = lanes(src(cpu, ins, 1, 16).ok_or(fault::UNIMPLEMENTED)?, w);
        let a = lanes(get(cpu, x), w);
        let mut r = Vec::with_capacity(a.len());
        for i in 0..a.len() {
            r.push(if is_cmp {
                if fp::cmp_pred(w, ins.immediate(2) as u8, a[i], b[i], &mut mxcsr) {
                    w.mask()
                } else {
                    0
                }
            } else {
                fp::binop(w, fop(m).ok_or(fault::UNIMPLEMENTED)?, a[i], b[i], &mut mxcsr)
            });
        }
        cpu.xmm[x] = join(&r, w);
    } else {
        match m {
            Comisd | Comiss | Ucomisd | Ucomiss => {
                let w = if matches!(m, Comisd | Ucomisd) { W::D } else { W::S };
                let x = d.ok_or(fault::UNIMPLEMENTED)?;
                let b = src(cpu, ins, 1, (w.bits() / 8) as u8).ok_or(fault::UNIMPLEMENTED)?[0];
                let f = fp::comi(w, cpu.xmm[x][0], b, matches!(m, Comisd | Comiss), &mut mxcsr);
                store_flags(
                    cpu,
                    Flags {
                        kind: FlagKind::Raw,
                        size: 8,
                        res: f,
                        a: 0,
                        b: 0,
                        aux: 0,
                    },
                );
            }
            Cvtsi2sd | Cvtsi2ss => {
                let w = if m == Cvtsi2sd { W::D } else { W::S };
                let x = d.ok_or(fault::UNIMPLEMENTED)?;
                let size = match ins.op_kind(1) {
                    OpKind::Register => ins.op_register(1).size() as u8,
                    _ => ins.memory_size().size() as u8,
                };
                let v = src(cpu, ins, 1, size).ok_or(fault::UNIMPLEMENTED)?[0];
                let v = if size == 4 { v as u32 as i32 as i64 } else { v as i64 };
                let r = fp::from_int(w, v, &mut mxcsr);
                set_scalar(cpu, x, w, r);
            }
            Cvtsd2si | Cvttsd2si | Cvtss2si | Cvttss2si => {
                let w = if matches!(m, Cvtsd2si | Cvttsd2si) { W::D } else { W::S };
                let g = gpr(ins.op_register(0)).ok_or(fault::UNIMPLEMENTED)?;
                let v = src(cpu, ins, 1, (w.bits() / 8) as u8).ok_or(fault::UNIMPLEMENTED)?[0];
                let r = fp::to_int(w, v, g.size as u32 * 8, matches!(m, Cvttsd2si | Cvttss2si), &mut mxcsr);
                write_gpr(&mut Live::new(cpu), g, r);
            }
            Cvtsd2ss | Cvtss2sd => {
                let from = if m == Cvtsd2ss { W::D } else { W::S };
                let x = d.ok_or(fault::UNIMPLEMENTED)?;
                let v = src(cpu, ins, 1, (from.bits() / 8) as u8).ok_or(fault::UNIMPLEMENTED)?[0];
                let r = fp::convert(from, v, &mut mxcsr);
                set_scalar(cpu, x, if from == W::D { W::S } else { W::D }, r);
            }
            Cvtdq2pd | Cvtdq2ps => {
                let x = d.ok_or(fault::UNIMPLEMENTED)?;
                let bytes = if m == Cvtdq2pd { 8 } else { 16 };
                let v = lanes(src(cpu, ins, 1, bytes).ok_or(fault::UNIMPLEMENTED)?, W::S);
                if m == Cvtdq2pd {
                    let r: Vec<u64> = v[..2]
                        .iter()
                        .map(|&i| fp::from_int(W::D, i as u32 as i32 as i64, &mut mxcsr))
                        .collect();
                    cpu.xmm[x] = join(&r, W::D);
                } else {
                    let r: Vec<u64> = v
                        .iter()
                        .map(|&i| fp::from_int(W::S, i as u32 as i32 as i64, &mut mxcsr))
                        .collect();
                    cpu.xmm[x] = join(&r, W::S);
                }
            }
            Cvtpd2dq | Cvttpd2dq | Cvtps2dq | Cvttps2dq => {
                let x = d.ok_or(fault::UNIMPLEMENTED)?;
                let w = if matches!(m, Cvtpd2dq | Cvttpd2dq) { W::D } else { W::S };
                let t = matches!(m, Cvttpd2dq | Cvttps2dq);
                let v = lanes(src(cpu, ins, 1, 16).ok_or(fault::UNIMPLEMENTED)?, w);
                let mut r: Vec<u64> = v.iter().map(|&f| fp::to_int(w, f, 32, t, &mut mxcsr)).collect();
                r.resize(4, 0);
                cpu.xmm[x] = join(&r, W::S);
            }
            Cvtps2pd => {
                let x = d.ok_or(fault::UNIMPLEMENTED)?;
                let v = lanes(src(cpu, ins, 1, 8).ok_or(fault::UNIMPLEMENTED)?, W::S);
                let r: Vec<u64> = v[..2].iter().map(|&f| fp::convert(W::S, f, &mut mxcsr)).collect();
                cpu.xmm[x] = join(&r, W::D);
            }
            Cvtpd2ps => {
                let x = d.ok_or(fault::UNIMPLEMENTED)?;
                let v = lanes(src(cpu, ins, 1, 16).ok_or(fault::UNIMPLEMENTED)?, W::D);
                let mut r: Vec<u64> = v.iter().map(|&f| fp::convert(W::D, f, &mut mxcsr)).collect();
                r.resize(4, 0);
                cpu.xmm[x] = join(&r, W::S);
            }
            Rcpps | Rsqrtps => {
                let x = d.ok_or(fault::UNIMPLEMENTED)?;
                let v = lanes(src(cpu, ins, 1, 16).ok_or(fault::UNIMPLEMENTED)?, W::S);
                let r: Vec<u64> = v.iter().map(|&f| fp::approx(f as u32, m == Rsqrtps) as u64).collect();
                cpu.xmm[x] = join(&r, W::S);
            }
            Rcpss | Rsqrtss => {
                let x = d.ok_or(fault::UNIMPLEMENTED)?;
                let v = src(cpu, ins, 1, 4).ok_or(fault::UNIMPLEMENTED)?[0];
                set_scalar(cpu, x, W::S, fp::approx(v as u32, m == Rsqrtss) as u64);
            }
            _ => return Err(fault::UNIMPLEMENTED),
        }
    }
    cpu.mxcsr = mxcsr;
    Ok(())
}
