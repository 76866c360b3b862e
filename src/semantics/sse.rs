//! SSE/SSE2 integer and move instructions over concrete XMM state (the subset libc's string
//! and memory functions use). Both tiers run this code.

use super::concrete::{load, store, Live};
use super::operand::{ea, gpr, read_gpr, write_gpr};
use crate::cpu::Cpu;
use iced_x86::{Instruction, Mnemonic, OpKind, Register};

fn xmm_idx(r: Register) -> Option<usize> {
    if r.is_xmm() {
        Some(r as usize - Register::XMM0 as usize)
    } else {
        None
    }
}

fn get(cpu: &Cpu, i: usize) -> u128 {
    cpu.xmm[i][0] as u128 | (cpu.xmm[i][1] as u128) << 64
}

fn set(cpu: &mut Cpu, i: usize, v: u128) {
    cpu.xmm[i] = [v as u64, (v >> 64) as u64];
}

fn addr(cpu: &mut Cpu, ins: &Instruction) -> u64 {
    ea(&mut Live::new(cpu), ins)
}

fn load128(cpu: &Cpu, a: u64) -> u128 {
    load(cpu, a, 8) as u128 | (load(cpu, a + 8, 8) as u128) << 64
}

/// Reads operand `n` as a 128-bit value (memory reads `bytes` bytes, zero-extended).
fn src(cpu: &mut Cpu, ins: &Instruction, n: u32, bytes: u8) -> Option<u128> {
    match ins.op_kind(n) {
        OpKind::Register => {
            let r = ins.op_register(n);
            if let Some(x) = xmm_idx(r) {
                Some(get(cpu, x))
            } else {
                let g = gpr(r)?;
                Some(read_gpr(&mut Live::new(cpu), g) as u128)
            }
        }
        OpKind::Memory => {
            let a = addr(cpu, ins);
            Some(match bytes {
                16 => load128(cpu, a),
                n => load(cpu, a, n) as u128,
            })
        }
        _ => None,
    }
}

fn lanes<const W: usize>(v: u128) -> [u64; 16] {
    let mut out = [0u64; 16];
    let n = 16 / W;
    let mask = if W == 8 { u64::MAX } else { (1u64 << (W * 8)) - 1 };
    for (i, o) in out.iter_mut().enumerate().take(n) {
        *o = (v >> (i * W * 8)) as u64 & mask;
    }
    out
}

fn pack<const W: usize>(l: &[u64; 16]) -> u128 {
    let n = 16 / W;
    let mask = if W == 8 { u64::MAX } else { (1u64 << (W * 8)) - 1 };
    let mut v = 0u128;
    for (i, x) in l.iter().enumerate().take(n) {
        v |= ((x & mask) as u128) << (i * W * 8);
    }
    v
}

fn sext(v: u64, w: usize) -> i64 {
    let s = 64 - w * 8;
    ((v << s) as i64) >> s
}

fn lanewise<const W: usize>(a: u128, b: u128, f: impl Fn(u64, u64) -> u64) -> u128 {
    let (x, y) = (lanes::<W>(a), lanes::<W>(b));
    let mut r = [0u64; 16];
    for i in 0..16 / W {
        r[i] = f(x[i], y[i]);
    }
    pack::<W>(&r)
}

fn lanewise_w(bytes: bool, a: u128, b: u128, f: impl Fn(u64, u64) -> u64) -> u128 {
    if bytes {
        lanewise::<1>(a, b, f)
    } else {
        lanewise::<2>(a, b, f)
    }
}

fn unpack_lo<const W: usize>(a: u128, b: u128, high: bool) -> u128 {
    let (x, y) = (lanes::<W>(a), lanes::<W>(b));
    let n = 16 / W;
    let off = if high { n / 2 } else { 0 };
    let mut r = [0u64; 16];
    for i in 0..n / 2 {
        r[2 * i] = x[off + i];
        r[2 * i + 1] = y[off + i];
    }
    pack::<W>(&r)
}

pub fn supported(ins: &Instruction) -> bool {
    use Mnemonic::*;
    matches!(
        ins.mnemonic(),
        Movdqa
            | Movdqu
            | Movaps
            | Movups
            | Movapd
            | Movupd
            | Movd
            | Movq
            | Movss
            | Movlpd
            | Movhpd
            | Movlps
            | Movhps
            | Movlhps
            | Movhlps
            | Movntdq
            | Movnti
            | Movntps
            | Pxor
            | Por
            | Pand
            | Pandn
            | Xorps
            | Xorpd
            | Andps
            | Andpd
            | Orps
            | Orpd
            | Andnps
            | Andnpd
            | Pcmpeqb
            | Pcmpeqw
            | Pcmpeqd
            | Pcmpgtb
            | Pcmpgtw
            | Pcmpgtd
            | Pminub
            | Pmaxub
            | Pminsw
            | Pmaxsw
            | Pmovmskb
            | Movmskps
            | Movmskpd
            | Paddb
            | Paddw
            | Paddd
            | Paddq
            | Psubb
            | Psubw
            | Psubd
            | Psubq
            | Pshufd
            | Pshuflw
            | Pshufhw
            | Punpcklbw
            | Punpcklwd
            | Punpckldq
            | Punpcklqdq
            | Punpckhbw
            | Punpckhwd
            | Punpckhdq
            | Punpckhqdq
            | Pslldq
            | Psrldq
            | Psllw
            | Pslld
            | Psllq
            | Psrlw
            | Psrld
            | Psrlq
            | Psraw
            | Psrad
            | Pmuludq
            | Pmullw
            | Psadbw
            | Packuswb
            | Packsswb
            | Packssdw
            | Pmulhuw
            | Pmulhw
            | Pmaddwd
            | Paddusb
            | Paddusw
            | Psubusb
            | Psubusw
            | Paddsb
            | Paddsw
            | Psubsb
            | Psubsw
            | Pavgb
            | Pavgw
            | Pextrw
            | Pinsrw
            | Shufps
    ) || matches!(
        ins.code(),
        iced_x86::Code::Movsd_xmm_xmmm64 | iced_x86::Code::Movsd_xmmm64_xmm
    )
}

/// Executes one SSE instruction; `Err` means not implemented (checked earlier by `supported`).
pub fn exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), ()> {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let d = if ins.op_kind(0) == OpKind::Register {
        xmm_idx(ins.op_register(0))
    } else {
        None
    };
    match m {
        Movdqa | Movdqu | Movaps | Movups | Movapd | Movupd | Movntdq | Movntps => {
            let v = src(cpu, ins, 1, 16).ok_or(())?;
            match d {
                Some(x) => set(cpu, x, v),
                None => {
                    let a = addr(cpu, ins);
                    store(cpu, a, v as u64, 8);
                    store(cpu, a + 8, (v >> 64) as u64, 8);
                }
            }
        }
        Movnti => {
            let v = src(cpu, ins, 1, 8).ok_or(())? as u64;
            let sz = ins.memory_size().size() as u8;
            let a = addr(cpu, ins);
            store(cpu, a, v, sz);
        }
        Movd | Movq => {
            let sz: u8 = if m == Movd { 4 } else { 8 };
            let mask = if sz == 4 { 0xffff_ffffu128 } else { u64::MAX as u128 };
            let v = src(cpu, ins, 1, sz).ok_or(())? & mask;
            match (ins.op_kind(0), d) {
                (OpKind::Register, Some(x)) => set(cpu, x, v),
                (OpKind::Register, None) => {
                    let g = gpr(ins.op_register(0)).ok_or(())?;
                    write_gpr(&mut Live::new(cpu), g, v as u64);
                }
                _ => {
                    let a = addr(cpu, ins);
                    store(cpu, a, v as u64, sz);
                }
            }
        }
        Movss | Movsd => {
            let sz: u8 = if m == Movss { 4 } else { 8 };
            let mask = if sz == 4 { 0xffff_ffffu128 } else { u64::MAX as u128 };
            match (ins.op_kind(0), ins.op_kind(1)) {
                (OpKind::Register, OpKind::Memory) => {
                    let v = src(cpu, ins, 1, sz).ok_or(())?;
                    set(cpu, d.ok_or(())?, v & mask);
                }
                (OpKind::Register, _) => {
                    let x = d.ok_or(())?;
                    let v = src(cpu, ins, 1, 16).ok_or(())?;
                    let old = get(cpu, x);
                    set(cpu, x, (old & !mask) | (v & mask));
                }
                _ => {
                    let v = src(cpu, ins, 1, 16).ok_or(())?;
                    let a = addr(cpu, ins);
                    store(cpu, a, v as u64, sz);
                }
            }
        }
        Movlpd | Movlps | Movhpd | Movhps => {
            let high = matches!(m, Movhpd | Movhps);
            match d {
                Some(x) => {
                    let v = src(cpu, ins, 1, 8).ok_or(())? as u64;
                    let mut cur = cpu.xmm[x];
                    cur[high as usize] = v;
                    cpu.xmm[x] = cur;
                }
                None => {
                    let s = xmm_idx(ins.op_register(1)).ok_or(())?;
                    let v = cpu.xmm[s][high as usize];
                    let a = addr(cpu, ins);
                    store(cpu, a, v, 8);
                }
            }
        }
        Movlhps | Movhlps => {
            let x = d.ok_or(())?;
            let s = xmm_idx(ins.op_register(1)).ok_or(())?;
            if m == Movlhps {
                cpu.xmm[x][1] = cpu.xmm[s][0];
            } else {
                cpu.xmm[x][0] = cpu.xmm[s][1];
            }
        }
        Pextrw => {
            let s = xmm_idx(ins.op_register(1)).ok_or(())?;
            let v = (get(cpu, s) >> ((ins.immediate(2) & 7) * 16)) as u64 & 0xffff;
            let g = gpr(ins.op_register(0)).ok_or(())?;
            write_gpr(&mut Live::new(cpu), g, v);
        }
        Pinsrw => {
            let x = d.ok_or(())?;
            let v = src(cpu, ins, 1, 2).ok_or(())? & 0xffff;
            let sh = (ins.immediate(2) & 7) * 16;
            let old = get(cpu, x);
            set(cpu, x, (old & !(0xffffu128 << sh)) | (v << sh));
        }
        Pmovmskb | Movmskps | Movmskpd => {
            let s = xmm_idx(ins.op_register(1)).ok_or(())?;
            let v = get(cpu, s);
            let (w, n) = match m {
                Pmovmskb => (8, 16),
                Movmskps => (32, 4),
                _ => (64, 2),
            };
            let mut r = 0u64;
            for i in 0..n {
                r |= (((v >> (i * w + w - 1)) & 1) as u64) << i;
            }
            let g = gpr(ins.op_register(0)).ok_or(())?;
            write_gpr(&mut Live::new(cpu), g, r);
        }
        Pshufd | Pshuflw | Pshufhw | Shufps => {
            let x = d.ok_or(())?;
            let v = src(cpu, ins, 1, 16).ok_or(())?;
            let imm = ins.immediate(2) as u32;
            let r = match m {
                Pshufd => {
                    let l = lanes::<4>(v);
                    let mut o = [0u64; 16];
                    for (i, oi) in o.iter_mut().enumerate().take(4) {
                        *oi = l[((imm >> (2 * i)) & 3) as usize];
                    }
                    pack::<4>(&o)
                }
                Shufps => {
                    let a = lanes::<4>(get(cpu, x));
                    let b = lanes::<4>(v);
                    let o = [
                        a[(imm & 3) as usize],
                        a[((imm >> 2) & 3) as usize],
                        b[((imm >> 4) & 3) as usize],
                        b[((imm >> 6) & 3) as usize],
                    ];
                    let mut oo = [0u64; 16];
                    oo[..4].copy_from_slice(&o);
                    pack::<4>(&oo)
                }
                _ => {
                    let l = lanes::<2>(v);
                    let mut o = l;
                    let base = if m == Pshuflw { 0 } else { 4 };
                    for i in 0..4 {
                        o[base + i] = l[base + ((imm >> (2 * i)) & 3) as usize];
                    }
                    pack::<2>(&o)
                }
            };
            set(cpu, x, r);
        }
        Pslldq | Psrldq => {
            let x = d.ok_or(())?;
            let n = ins.immediate(1).min(16) as u32 * 8;
            let v = get(cpu, x);
            let r = if n >= 128 {
                0
            } else if m == Pslldq {
                v << n
            } else {
                v >> n
            };
            set(cpu, x, r);
        }
        Psllw | Pslld | Psllq | Psrlw | Psrld | Psrlq | Psraw | Psrad => {
            let x = d.ok_or(())?;
            let count = if ins.op_kind(1) == OpKind::Immediate8 {
                ins.immediate(1)
            } else {
                src(cpu, ins, 1, 16).ok_or(())? as u64
            };
            let v = get(cpu, x);
            let r = match m {
                Psllw => lanewise::<2>(v, 0, |a, _| if count > 15 { 0 } else { a << count }),
                Pslld => lanewise::<4>(v, 0, |a, _| if count > 31 { 0 } else { a << count }),
                Psllq => lanewise::<8>(v, 0, |a, _| if count > 63 { 0 } else { a << count }),
                Psrlw => lanewise::<2>(v, 0, |a, _| if count > 15 { 0 } else { a >> count }),
                Psrld => lanewise::<4>(v, 0, |a, _| if count > 31 { 0 } else { a >> count }),
                Psrlq => lanewise::<8>(v, 0, |a, _| if count > 63 { 0 } else { a >> count }),
                Psraw => lanewise::<2>(v, 0, |a, _| (sext(a, 2) >> count.min(15)) as u64),
                _ => lanewise::<4>(v, 0, |a, _| (sext(a, 4) >> count.min(31)) as u64),
            };
            set(cpu, x, r);
        }
        _ => {
            let x = d.ok_or(())?;
            let a = get(cpu, x);
            let b = src(cpu, ins, 1, 16).ok_or(())?;
            let r = match m {
                Pxor | Xorps | Xorpd => a ^ b,
                Por | Orps | Orpd => a | b,
                Pand | Andps | Andpd => a & b,
                Pandn | Andnps | Andnpd => !a & b,
                Pcmpeqb => lanewise::<1>(a, b, |x, y| if x == y { 0xff } else { 0 }),
                Pcmpeqw => lanewise::<2>(a, b, |x, y| if x == y { 0xffff } else { 0 }),
                Pcmpeqd => lanewise::<4>(a, b, |x, y| if x == y { 0xffff_ffff } else { 0 }),
                Pcmpgtb => lanewise::<1>(a, b, |x, y| if sext(x, 1) > sext(y, 1) { 0xff } else { 0 }),
                Pcmpgtw => lanewise::<2>(a, b, |x, y| if sext(x, 2) > sext(y, 2) { 0xffff } else { 0 }),
                Pcmpgtd => lanewise::<4>(a, b, |x, y| if sext(x, 4) > sext(y, 4) { 0xffff_ffff } else { 0 }),
                Pminub => lanewise::<1>(a, b, |x, y| x.min(y)),
                Pmaxub => lanewise::<1>(a, b, |x, y| x.max(y)),
                Pminsw => lanewise::<2>(a, b, |x, y| if sext(x, 2) < sext(y, 2) { x } else { y }),
                Pmaxsw => lanewise::<2>(a, b, |x, y| if sext(x, 2) > sext(y, 2) { x } else { y }),
                Paddb => lanewise::<1>(a, b, |x, y| x.wrapping_add(y)),
                Paddw => lanewise::<2>(a, b, |x, y| x.wrapping_add(y)),
                Paddd => lanewise::<4>(a, b, |x, y| x.wrapping_add(y)),
                Paddq => lanewise::<8>(a, b, |x, y| x.wrapping_add(y)),
                Psubb => lanewise::<1>(a, b, |x, y| x.wrapping_sub(y)),
                Psubw => lanewise::<2>(a, b, |x, y| x.wrapping_sub(y)),
                Psubd => lanewise::<4>(a, b, |x, y| x.wrapping_sub(y)),
                Psubq => lanewise::<8>(a, b, |x, y| x.wrapping_sub(y)),
                Pmullw => lanewise::<2>(a, b, |x, y| x.wrapping_mul(y)),
                Pmulhuw => lanewise::<2>(a, b, |x, y| (x * y) >> 16),
                Pmulhw => lanewise::<2>(a, b, |x, y| ((sext(x, 2) * sext(y, 2)) >> 16) as u64),
                Pmaddwd => {
                    let (x, y) = (lanes::<2>(a), lanes::<2>(b));
                    let mut o = [0u64; 16];
                    for i in 0..4 {
                        let s = sext(x[2 * i], 2) * sext(y[2 * i], 2) + sext(x[2 * i + 1], 2) * sext(y[2 * i + 1], 2);
                        o[i] = s as u64;
                    }
                    pack::<4>(&o)
                }
                Paddusb => lanewise::<1>(a, b, |x, y| (x + y).min(0xff)),
                Paddusw => lanewise::<2>(a, b, |x, y| (x + y).min(0xffff)),
                Psubusb | Psubusw => lanewise_w(m == Psubusb, a, b, |x, y| x.saturating_sub(y)),
                Paddsb => lanewise::<1>(a, b, |x, y| (sext(x, 1) + sext(y, 1)).clamp(-128, 127) as u64),
                Paddsw => lanewise::<2>(a, b, |x, y| (sext(x, 2) + sext(y, 2)).clamp(-32768, 32767) as u64),
                Psubsb => lanewise::<1>(a, b, |x, y| (sext(x, 1) - sext(y, 1)).clamp(-128, 127) as u64),
                Psubsw => lanewise::<2>(a, b, |x, y| (sext(x, 2) - sext(y, 2)).clamp(-32768, 32767) as u64),
                Pavgb => lanewise::<1>(a, b, |x, y| (x + y + 1) >> 1),
                Pavgw => lanewise::<2>(a, b, |x, y| (x + y + 1) >> 1),
                Packsswb | Packssdw => {
                    let mut o = [0u64; 16];
                    if m == Packsswb {
                        let (x, y) = (lanes::<2>(a), lanes::<2>(b));
                        for i in 0..8 {
                            o[i] = sext(x[i], 2).clamp(-128, 127) as u64;
                            o[8 + i] = sext(y[i], 2).clamp(-128, 127) as u64;
                        }
                        pack::<1>(&o)
                    } else {
                        let (x, y) = (lanes::<4>(a), lanes::<4>(b));
                        for i in 0..4 {
                            o[i] = sext(x[i], 4).clamp(-32768, 32767) as u64;
                            o[4 + i] = sext(y[i], 4).clamp(-32768, 32767) as u64;
                        }
                        pack::<2>(&o)
                    }
                }
                Pmuludq => {
                    let (x, y) = (lanes::<8>(a), lanes::<8>(b));
                    let mut o = [0u64; 16];
                    o[0] = (x[0] & 0xffff_ffff) * (y[0] & 0xffff_ffff);
                    o[1] = (x[1] & 0xffff_ffff) * (y[1] & 0xffff_ffff);
                    pack::<8>(&o)
                }
                Psadbw => {
                    let (x, y) = (lanes::<1>(a), lanes::<1>(b));
                    let s0: u64 = (0..8).map(|i| x[i].abs_diff(y[i])).sum();
                    let s1: u64 = (8..16).map(|i| x[i].abs_diff(y[i])).sum();
                    s0 as u128 | (s1 as u128) << 64
                }
                Packuswb => {
                    let (x, y) = (lanes::<2>(a), lanes::<2>(b));
                    let sat = |v: u64| sext(v, 2).clamp(0, 255) as u64;
                    let mut o = [0u64; 16];
                    for i in 0..8 {
                        o[i] = sat(x[i]);
                        o[8 + i] = sat(y[i]);
                    }
                    pack::<1>(&o)
                }
                Punpcklbw => unpack_lo::<1>(a, b, false),
                Punpcklwd => unpack_lo::<2>(a, b, false),
                Punpckldq => unpack_lo::<4>(a, b, false),
                Punpcklqdq => unpack_lo::<8>(a, b, false),
                Punpckhbw => unpack_lo::<1>(a, b, true),
                Punpckhwd => unpack_lo::<2>(a, b, true),
                Punpckhdq => unpack_lo::<4>(a, b, true),
                Punpckhqdq => unpack_lo::<8>(a, b, true),
                _ => return Err(()),
            };
            set(cpu, x, r);
        }
    }
    Ok(())
}
