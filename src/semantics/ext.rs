//! The extensions beyond the x86-64 baseline that compilers and libc use (x86-64-v2 and the
//! bit-manipulation sets): SSE3, SSSE3, SSE4.1, SSE4.2 (string compares, CRC32), BMI1, BMI2,
//! MOVBE and CMPXCHG16B, written over concrete state and reached through the slow path.

use super::concrete::{load, rflags, store, Live};
use super::fp::{self, FOp, W};
use super::operand::{ea, gpr, op_size, read_gpr, read_op, write_gpr, write_op};
use super::vector::sext;
use crate::cpu::{rflags as rf, Cpu};
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

use super::slow::set_raw as set_raw_flags;
use super::sse::{get, set, src_concrete as src, xmm_idx as xmm};

/// Flags of a logical result: ZF, SF (PF/AF cleared: undefined for these instructions, and
/// cleared by the hardware this profile models), CF and OF given.
fn logic_flags(cpu: &mut Cpu, res: u64, bits: u32, cf: bool) {
    let res = if bits == 32 { res & 0xffff_ffff } else { res };
    let mut f = 0;
    if res == 0 {
        f |= rf::ZF;
    }
    if res >> (bits - 1) & 1 != 0 {
        f |= rf::SF;
    }
    if cf {
        f |= rf::CF;
    }
    set_raw_flags(cpu, f);
}

pub fn supported(ins: &Instruction) -> bool {
    use Mnemonic::*;
    // MMX-register forms of SSSE3 are not implemented.
    let mmx = (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Register && ins.op_register(i).is_mm());
    if mmx {
        return false;
    }
    matches!(
        ins.mnemonic(),
        Addsubps
            | Addsubpd
            | Haddps
            | Haddpd
            | Hsubps
            | Hsubpd
            | Movddup
            | Movshdup
            | Movsldup
            | Lddqu
            | Pshufb
            | Phaddw
            | Phaddd
            | Phaddsw
            | Phsubw
            | Phsubd
            | Phsubsw
            | Pmaddubsw
            | Pmulhrsw
            | Psignb
            | Psignw
            | Psignd
            | Pabsb
            | Pabsw
            | Pabsd
            | Palignr
            | Pmulld
            | Pmuldq
            | Pminsb
            | Pminsd
            | Pminuw
            | Pminud
            | Pmaxsb
            | Pmaxsd
            | Pmaxuw
            | Pmaxud
            | Pcmpeqq
            | Pcmpgtq
            | Packusdw
            | Pmovsxbw
            | Pmovsxbd
            | Pmovsxbq
            | Pmovsxwd
            | Pmovsxwq
            | Pmovsxdq
            | Pmovzxbw
            | Pmovzxbd
            | Pmovzxbq
            | Pmovzxwd
            | Pmovzxwq
            | Pmovzxdq
            | Ptest
            | Pblendw
            | Blendps
            | Blendpd
            | Pblendvb
            | Blendvps
            | Blendvpd
            | Pextrb
            | Pextrd
            | Pextrq
            | Extractps
            | Pinsrb
            | Pinsrd
            | Pinsrq
            | Insertps
            | Phminposuw
            | Roundss
            | Roundsd
            | Roundps
            | Roundpd
            | Dpps
            | Dppd
            | Mpsadbw
            | Movntdqa
            | Crc32
            | Pcmpistri
            | Pcmpistrm
            | Pcmpestri
            | Pcmpestrm
            | Pcmpestri64
            | Pcmpestrm64
            | Andn
            | Bextr
            | Blsi
            | Blsmsk
            | Blsr
            | Bzhi
            | Mulx
            | Pdep
            | Pext
            | Rorx
            | Sarx
            | Shlx
            | Shrx
            | Movbe
            | Cmpxchg16b
    ) || (ins.mnemonic() == Pextrw && ins.op_kind(0) == OpKind::Memory)
}

/// The `16 / w` lanes of `w` bytes of a vector.
fn ls(v: u128, w: u8) -> Vec<u64> {
    let l = super::vector::lanes(v, w);
    l[..16 / w as usize].to_vec()
}

/// A vector from lanes of `w` bytes (each masked to its width).
fn pk(l: &[u64], w: u8) -> u128 {
    let mut a = [0u64; 16];
    a[..l.len()].copy_from_slice(l);
    super::vector::pack(&a, w)
}

/// Lane `i` of `w` bytes from a vector.
fn lane(v: u128, w: u32, i: u32) -> u64 {
    ((v >> (i * w * 8)) as u64) & if w == 8 { u64::MAX } else { (1u64 << (w * 8)) - 1 }
}

fn sat_s16(v: i64) -> u64 {
    v.clamp(-32768, 32767) as u64 & 0xffff
}

fn horizontal(a: u128, b: u128, w: u32, f: impl Fn(u64, u64) -> u64) -> u128 {
    let n = 16 / w;
    let mut out = 0u128;
    let mask = if w == 8 {
        u64::MAX as u128
    } else {
        (1u128 << (w * 8)) - 1
    };
    for i in 0..n {
        let v = if i < n / 2 { a } else { b };
        let j = (i % (n / 2)) * 2;
        let r = f(lane(v, w, j), lane(v, w, j + 1)) as u128 & mask;
        out |= r << (i * w * 8);
    }
    out
}

/// The SSSE3 lane operations other than the byte shuffle and align. Given 64-bit operands in
/// the low halves, the lane-wise ones give the MMX form's result in the low half.
pub(super) fn ssse3_op(m: Mnemonic, a: u128, b: u128) -> Option<u128> {
    use Mnemonic::*;
    Some(match m {
        Phaddw => horizontal(a, b, 2, |x, y| x.wrapping_add(y)),
        Phaddd => horizontal(a, b, 4, |x, y| x.wrapping_add(y)),
        Phsubw => horizontal(a, b, 2, |x, y| x.wrapping_sub(y)),
        Phsubd => horizontal(a, b, 4, |x, y| x.wrapping_sub(y)),
        Phaddsw => horizontal(a, b, 2, |x, y| sat_s16(sext(x, 2) + sext(y, 2))),
        Phsubsw => horizontal(a, b, 2, |x, y| sat_s16(sext(x, 2) - sext(y, 2))),
        Pmaddubsw => {
            let (x, y) = (ls(a, 1), ls(b, 1));
            let o: Vec<u64> = (0..8)
                .map(|i| {
                    let p0 = x[2 * i] as i64 * sext(y[2 * i], 1);
                    let p1 = x[2 * i + 1] as i64 * sext(y[2 * i + 1], 1);
                    sat_s16(p0 + p1)
                })
                .collect();
            pk(&o, 2)
        }
        Pmulhrsw => {
            let (x, y) = (ls(a, 2), ls(b, 2));
            let o: Vec<u64> = (0..8)
                .map(|i| ((((sext(x[i], 2) * sext(y[i], 2)) >> 14) + 1) >> 1) as u64 & 0xffff)
                .collect();
            pk(&o, 2)
        }
        Psignb | Psignw | Psignd => {
            let w = match m {
                Psignb => 1,
                Psignw => 2,
                _ => 4,
            };
            let (x, y) = (ls(a, w), ls(b, w));
            let mask = (1u64 << (w * 8)) - 1;
            let o: Vec<u64> = (0..x.len())
                .map(|i| match sext(y[i], w).signum() {
                    -1 => x[i].wrapping_neg() & mask,
                    0 => 0,
                    _ => x[i],
                })
                .collect();
            pk(&o, w)
        }
        Pabsb | Pabsw | Pabsd => {
            let w = match m {
                Pabsb => 1,
                Pabsw => 2,
                _ => 4,
            };
            let mask = (1u64 << (w * 8)) - 1;
            let o: Vec<u64> = ls(b, w).iter().map(|&v| sext(v, w).unsigned_abs() & mask).collect();
            pk(&o, w)
        }
        _ => return None,
    })
}

/// Executes one instruction of the extensions; Err for a form not implemented.
pub fn exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    use Mnemonic::*;
    let bad = crate::cpu::fault::UNIMPLEMENTED;
    let m = ins.mnemonic();
    match m {
        Andn | Bextr | Blsi | Blsmsk | Blsr | Bzhi | Mulx | Pdep | Pext | Rorx | Sarx | Shlx | Shrx => {
            return bmi(cpu, ins).ok_or(bad)
        }
        Movbe => {
            let size = op_size(ins, 0);
            let v = read_op(&mut Live::new(cpu), ins, 1, size).ok_or(bad)?;
            let r = match size {
                2 => (v as u16).swap_bytes() as u64,
                4 => (v as u32).swap_bytes() as u64,
                _ => v.swap_bytes(),
            };
            write_op(&mut Live::new(cpu), ins, 0, size, r, None);
            return Ok(());
        }
        Crc32 => {
            let size = op_size(ins, 1);
            let v = read_op(&mut Live::new(cpu), ins, 1, size).ok_or(bad)?;
            let g = gpr(ins.op_register(0)).ok_or(bad)?;
            let mut c = read_gpr(&mut Live::new(cpu), g) as u32;
            for i in 0..size {
                c ^= (v >> (8 * i as u32)) as u8 as u32;
                for _ in 0..8 {
                    c = if c & 1 != 0 { (c >> 1) ^ 0x82f6_3b78 } else { c >> 1 };
                }
            }
            write_gpr(&mut Live::new(cpu), g, c as u64);
            return Ok(());
        }
        Cmpxchg16b => return cmpxchg16b(cpu, ins),
        Pcmpistri | Pcmpistrm | Pcmpestri | Pcmpestrm | Pcmpestri64 | Pcmpestrm64 => {
            return pcmpstr(cpu, ins).ok_or(bad)
        }
        Pextrb | Pextrw | Pextrd | Pextrq | Extractps => {
            let s = xmm(ins.op_register(1)).ok_or(bad)?;
            let v = get(cpu, s);
            let (w, n) = match m {
                Pextrb => (1, 16),
                Pextrw => (2, 8),
                Pextrq => (8, 2),
                _ => (4, 4),
            };
            let x = lane(v, w, ins.immediate(2) as u32 % n);
            if ins.op_kind(0) == OpKind::Memory {
                let a = ea(&mut Live::new(cpu), ins);
                store(cpu, a, x, w as u8);
            } else {
                write_gpr(&mut Live::new(cpu), gpr(ins.op_register(0)).ok_or(bad)?, x);
            }
            return Ok(());
        }
        Ptest => {
            let a = get(cpu, xmm(ins.op_register(0)).ok_or(bad)?);
            let b = src(cpu, ins, 1, 16).ok_or(bad)?;
            let mut f = 0;
            if a & b == 0 {
                f |= rf::ZF;
            }
            if !a & b == 0 {
                f |= rf::CF;
            }
            set_raw_flags(cpu, f);
            return Ok(());
        }
        _ => {}
    }
    let d = xmm(ins.op_register(0)).ok_or(bad)?;
    let a = get(cpu, d);
    let width = |m: Mnemonic| -> u8 {
        match m {
            Movddup | Pmovsxbw | Pmovzxbw | Pmovsxwd | Pmovzxwd | Pmovsxdq | Pmovzxdq => 8,
            Pmovsxbd | Pmovzxbd | Pmovsxwq | Pmovzxwq => 4,
            Pmovsxbq | Pmovzxbq => 2,
            Pinsrb => 1,
            Pinsrd | Insertps => 4,
            Pinsrq => 8,
            Roundss => 4,
            Roundsd => 8,
            _ => 16,
        }
    };
    let b = src(cpu, ins, 1, width(m)).ok_or(bad)?;
    let imm = if ins.op_count() > 2 && ins.op_kind(2) == OpKind::Immediate8 {
        ins.immediate(2) as u32
    } else {
        0
    };
    let mut mx = cpu.mxcsr;
    let fl = |v: u128, w: W| -> Vec<u64> { ls(v, if w == W::S { 4 } else { 8 }) };
    let fj = |l: &[u64], w: W| -> u128 { pk(l, if w == W::S { 4 } else { 8 }) };
    let r: u128 = match m {
        Addsubps | Addsubpd => {
            let w = if m == Addsubps { W::S } else { W::D };
            let (x, y) = (fl(a, w), fl(b, w));
            let o: Vec<u64> = (0..x.len())
                .map(|i| fp::binop(w, if i % 2 == 0 { FOp::Sub } else { FOp::Add }, x[i], y[i], &mut mx))
                .collect();
            fj(&o, w)
        }
        Haddps | Haddpd | Hsubps | Hsubpd => {
            let w = if matches!(m, Haddps | Hsubps) { W::S } else { W::D };
            let op = if matches!(m, Haddps | Haddpd) {
                FOp::Add
            } else {
                FOp::Sub
            };
            let (x, y) = (fl(a, w), fl(b, w));
            let mut o = Vec::new();
            for v in [&x, &y] {
                for j in (0..v.len()).step_by(2) {
                    o.push(fp::binop(w, op, v[j], v[j + 1], &mut mx));
                }
            }
            fj(&o, w)
        }
        Movddup => (b as u64 as u128) | (b as u64 as u128) << 64,
        Movshdup => {
            let l = ls(b, 4);
            pk(&[l[1], l[1], l[3], l[3]], 4)
        }
        Movsldup => {
            let l = ls(b, 4);
            pk(&[l[0], l[0], l[2], l[2]], 4)
        }
        Lddqu | Movntdqa => b,
        Pshufb => {
            let (x, y) = (ls(a, 1), ls(b, 1));
            let o: Vec<u64> = y
                .iter()
                .map(|&s| if s & 0x80 != 0 { 0 } else { x[(s & 15) as usize] })
                .collect();
            pk(&o, 1)
        }
        Phaddw | Phaddd | Phsubw | Phsubd | Phaddsw | Phsubsw | Pmaddubsw | Pmulhrsw | Psignb | Psignw | Psignd
        | Pabsb | Pabsw | Pabsd => ssse3_op(m, a, b).ok_or(bad)?,
        Palignr => {
            let sh = imm * 8;
            if sh >= 256 {
                0
            } else if sh >= 128 {
                a >> (sh - 128)
            } else if sh == 0 {
                b
            } else {
                (b >> sh) | (a << (128 - sh))
            }
        }
        Pmulld => {
            let (x, y) = (ls(a, 4), ls(b, 4));
            let o: Vec<u64> = (0..4).map(|i| x[i].wrapping_mul(y[i]) & 0xffff_ffff).collect();
            pk(&o, 4)
        }
        Pmuldq => {
            let (x, y) = (ls(a, 4), ls(b, 4));
            let lo = (sext(x[0], 4) * sext(y[0], 4)) as u64;
            let hi = (sext(x[2], 4) * sext(y[2], 4)) as u64;
            lo as u128 | (hi as u128) << 64
        }
        Pminsb | Pminsd | Pmaxsb | Pmaxsd => {
            let w = if matches!(m, Pminsb | Pmaxsb) { 1 } else { 4 };
            let (x, y) = (ls(a, w), ls(b, w));
            let min = matches!(m, Pminsb | Pminsd);
            let o: Vec<u64> = (0..x.len())
                .map(|i| {
                    let lt = sext(x[i], w) < sext(y[i], w);
                    if lt == min {
                        x[i]
                    } else {
                        y[i]
                    }
                })
                .collect();
            pk(&o, w)
        }
        Pminuw | Pminud | Pmaxuw | Pmaxud => {
            let w = if matches!(m, Pminuw | Pmaxuw) { 2 } else { 4 };
            let (x, y) = (ls(a, w), ls(b, w));
            let min = matches!(m, Pminuw | Pminud);
            let o: Vec<u64> = (0..x.len())
                .map(|i| if min { x[i].min(y[i]) } else { x[i].max(y[i]) })
                .collect();
            pk(&o, w)
        }
        Pcmpeqq | Pcmpgtq => {
            let (x, y) = (ls(a, 8), ls(b, 8));
            let o: Vec<u64> = (0..2)
                .map(|i| {
                    let t = if m == Pcmpeqq {
                        x[i] == y[i]
                    } else {
                        (x[i] as i64) > (y[i] as i64)
                    };
                    if t {
                        u64::MAX
                    } else {
                        0
                    }
                })
                .collect();
            pk(&o, 8)
        }
        Packusdw => {
            let mut o: Vec<u64> = ls(a, 4).iter().map(|&v| sext(v, 4).clamp(0, 65535) as u64).collect();
            o.extend(ls(b, 4).iter().map(|&v| sext(v, 4).clamp(0, 65535) as u64));
            pk(&o, 2)
        }
        Pmovsxbw | Pmovsxbd | Pmovsxbq | Pmovsxwd | Pmovsxwq | Pmovsxdq | Pmovzxbw | Pmovzxbd | Pmovzxbq | Pmovzxwd
        | Pmovzxwq | Pmovzxdq => {
            let (from, to) = match m {
                Pmovsxbw | Pmovzxbw => (1, 2),
                Pmovsxbd | Pmovzxbd => (1, 4),
                Pmovsxbq | Pmovzxbq => (1, 8),
                Pmovsxwd | Pmovzxwd => (2, 4),
                Pmovsxwq | Pmovzxwq => (2, 8),
                _ => (4, 8),
            };
            let signed = matches!(m, Pmovsxbw | Pmovsxbd | Pmovsxbq | Pmovsxwd | Pmovsxwq | Pmovsxdq);
            let n = 16 / to;
            let o: Vec<u64> = (0..n)
                .map(|i| {
                    let v = lane(b, from, i);
                    if signed {
                        sext(v, from as u8) as u64
                    } else {
                        v
                    }
                })
                .collect();
            pk(&o, to as u8)
        }
        Pblendw | Blendps | Blendpd => {
            let w = match m {
                Pblendw => 2,
                Blendps => 4,
                _ => 8,
            };
            let (x, y) = (ls(a, w), ls(b, w));
            let o: Vec<u64> = (0..x.len())
                .map(|i| if imm >> i & 1 != 0 { y[i] } else { x[i] })
                .collect();
            pk(&o, w)
        }
        Pblendvb | Blendvps | Blendvpd => {
            let w = match m {
                Pblendvb => 1,
                Blendvps => 4,
                _ => 8,
            };
            let sel = ls(get(cpu, 0), w);
            let (x, y) = (ls(a, w), ls(b, w));
            let top = (w as u32) * 8 - 1;
            let o: Vec<u64> = (0..x.len())
                .map(|i| if sel[i] >> top & 1 != 0 { y[i] } else { x[i] })
                .collect();
            pk(&o, w)
        }
        Pinsrb | Pinsrd | Pinsrq => {
            let (w, n) = match m {
                Pinsrb => (1u32, 16),
                Pinsrd => (4, 4),
                _ => (8, 2),
            };
            let sh = (imm % n) * w * 8;
            let mask = if w == 8 {
                u64::MAX as u128
            } else {
                (1u128 << (w * 8)) - 1
            };
            (a & !(mask << sh)) | ((b & mask) << sh)
        }
        Insertps => {
            let v = if ins.op_kind(1) == OpKind::Memory {
                b as u64 & 0xffff_ffff
            } else {
                lane(b, 4, imm >> 6 & 3)
            };
            let mut l = ls(a, 4);
            l[(imm >> 4 & 3) as usize] = v;
            for (i, x) in l.iter_mut().enumerate() {
                if imm >> i & 1 != 0 {
                    *x = 0;
                }
            }
            pk(&l, 4)
        }
        Phminposuw => {
            let l = ls(b, 2);
            let (mut best, mut at) = (l[0], 0);
            for (i, &v) in l.iter().enumerate() {
                if v < best {
                    best = v;
                    at = i;
                }
            }
            best as u128 | (at as u128) << 16
        }
        Dpps | Dppd => {
            // Products of the lanes imm[4..] selects (+0 elsewhere), summed pairwise, each
            // step an SSE operation with its own rounding and flags; the sum goes to the
            // lanes imm[0..] selects (+0 elsewhere).
            let w = if m == Dpps { W::S } else { W::D };
            let (x, y) = (fl(a, w), fl(b, w));
            let t: Vec<u64> = (0..x.len())
                .map(|i| {
                    if imm >> (4 + i) & 1 != 0 {
                        fp::binop(w, FOp::Mul, x[i], y[i], &mut mx)
                    } else {
                        0
                    }
                })
                .collect();
            let sum = if m == Dpps {
                let lo = fp::binop(w, FOp::Add, t[0], t[1], &mut mx);
                let hi = fp::binop(w, FOp::Add, t[2], t[3], &mut mx);
                fp::binop(w, FOp::Add, lo, hi, &mut mx)
            } else {
                fp::binop(w, FOp::Add, t[0], t[1], &mut mx)
            };
            let o: Vec<u64> = (0..x.len()).map(|i| if imm >> i & 1 != 0 { sum } else { 0 }).collect();
            fj(&o, w)
        }
        Mpsadbw => {
            // Eight sums of absolute differences between the four source bytes at imm[1:0]*4
            // and the destination bytes at imm[2]*4 + i.
            let (x, y) = (ls(a, 1), ls(b, 1));
            let (d0, s0) = ((imm >> 2 & 1) as usize * 4, (imm & 3) as usize * 4);
            let o: Vec<u64> = (0..8)
                .map(|i| (0..4).map(|k| x[d0 + i + k].abs_diff(y[s0 + k])).sum())
                .collect();
            pk(&o, 2)
        }
        Roundss | Roundsd | Roundps | Roundpd => {
            let w = if matches!(m, Roundss | Roundps) { W::S } else { W::D };
            let bits = if w == W::S { 32 } else { 64 };
            let mode = if imm & 4 != 0 { (mx >> 13) & 3 } else { imm & 3 };
            let quiet = imm & 8 != 0;
            let scalar = matches!(m, Roundss | Roundsd);
            let mut x = fl(b, w);
            if scalar {
                // Only the low lane is an operand (the others cannot raise flags).
                x.truncate(1);
            }
            for v in x.iter_mut() {
                *v = fp::round_to_int(w, *v, mode, quiet, &mut mx);
            }
            if scalar {
                let mask = if bits == 32 { 0xffff_ffffu128 } else { u64::MAX as u128 };
                (a & !mask) | (fj(&x, w) & mask)
            } else {
                fj(&x, w)
            }
        }
        _ => return Err(bad),
    };
    cpu.mxcsr = mx;
    set(cpu, d, r);
    Ok(())
}

/// BMI1 and BMI2 (VEX-encoded general-register instructions).
fn bmi(cpu: &mut Cpu, ins: &Instruction) -> Option<()> {
    use Mnemonic::*;
    let size = op_size(ins, 0);
    let bits = size as u32 * 8;
    let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let m = ins.mnemonic();
    let rd = |cpu: &mut Cpu, n: u32| read_op(&mut Live::new(cpu), ins, n, size).map(|v| v & mask);
    let dst = gpr(ins.op_register(0))?;
    let r = match m {
        Andn => {
            let r = !rd(cpu, 1)? & rd(cpu, 2)? & mask;
            logic_flags(cpu, r, bits, false);
            r
        }
        Bextr => {
            let (s, c) = (rd(cpu, 1)?, rd(cpu, 2)?);
            let start = (c & 0xff) as u32;
            let len = (c >> 8 & 0xff) as u32;
            let r = if start >= bits {
                0
            } else {
                let v = s >> start;
                if len >= 64 {
                    v
                } else {
                    v & ((1u64 << len) - 1)
                }
            } & mask;
            logic_flags(cpu, r, bits, false);
            r
        }
        Blsi | Blsmsk | Blsr => {
            let s = rd(cpu, 1)?;
            let r = match m {
                Blsi => s & s.wrapping_neg(),
                Blsmsk => s ^ s.wrapping_sub(1),
                _ => s & s.wrapping_sub(1),
            } & mask;
            let cf = if m == Blsi { s != 0 } else { s == 0 };
            logic_flags(cpu, r, bits, cf);
            r
        }
        Bzhi => {
            let (s, c) = (rd(cpu, 1)?, rd(cpu, 2)?);
            let n = (c & 0xff) as u32;
            let r = if n >= bits { s } else { s & ((1u64 << n) - 1) };
            logic_flags(cpu, r, bits, n > bits - 1);
            r
        }
        Mulx => {
            // mulx hi, lo, src: rdx * src, no flags.
            let d = read_gpr(&mut Live::new(cpu), gpr(Register::RDX)?) & mask;
            let s = rd(cpu, 2)?;
            let p = d as u128 * s as u128;
            let lo = gpr(ins.op_register(1))?;
            write_gpr(&mut Live::new(cpu), lo, p as u64 & mask);
            ((p >> bits) as u64) & mask
        }
        Pdep | Pext => {
            let (s, sel) = (rd(cpu, 1)?, rd(cpu, 2)?);
            let mut r = 0u64;
            let mut k = 0;
            for i in 0..bits {
                if sel >> i & 1 != 0 {
                    if m == Pdep {
                        r |= (s >> k & 1) << i;
                    } else {
                        r |= (s >> i & 1) << k;
                    }
                    k += 1;
                }
            }
            r
        }
        Rorx => {
            let s = rd(cpu, 1)?;
            let n = (ins.immediate(2) as u32) & (bits - 1);
            if n == 0 {
                s
            } else {
                ((s >> n) | (s << (bits - n))) & mask
            }
        }
        Sarx | Shlx | Shrx => {
            let (s, c) = (rd(cpu, 1)?, rd(cpu, 2)?);
            let n = (c as u32) & (bits - 1);
            match m {
                Shlx => (s << n) & mask,
                Shrx => s >> n,
                _ => ((if bits == 32 { s as u32 as i32 as i64 } else { s as i64 }) >> n) as u64 & mask,
            }
        }
        _ => return None,
    };
    // The destination is written last (mulx: hi after lo, hi wins if they are the same).
    write_gpr(&mut Live::new(cpu), dst, r);
    Some(())
}

/// cmpxchg16b m128: compare rdx:rax with the memory; equal: store rcx:rbx and set ZF, else
/// load it into rdx:rax and clear ZF. Atomic with respect to every other cmpxchg16b.
fn cmpxchg16b(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    if ins.code() != Code::Cmpxchg16b_m128 {
        return Err(crate::cpu::fault::UNIMPLEMENTED);
    }
    let a = ea(&mut Live::new(cpu), ins);
    if !a.is_multiple_of(16) {
        // The hardware raises #GP for a misaligned operand.
        cpu.fault_addr = 0;
        return Err(crate::cpu::fault::GP);
    }
    // Touch the operand first: a fault must not happen while the lock is held.
    let _ = (load(cpu, a, 8), load(cpu, a + 8, 8));
    let _g = super::atomic::wide_lock();
    let lo = load(cpu, a, 8);
    let hi = load(cpu, a + 8, 8);
    let mut f = rflags(cpu) & rf::ARITH;
    if lo == cpu.gpr[0] && hi == cpu.gpr[2] {
        store(cpu, a, cpu.gpr[3], 8);
        store(cpu, a + 8, cpu.gpr[1], 8);
        f |= rf::ZF;
    } else {
        // The hardware writes the old value back (the access is always a write).
        store(cpu, a, lo, 8);
        store(cpu, a + 8, hi, 8);
        cpu.gpr[0] = lo;
        cpu.gpr[2] = hi;
        f &= !rf::ZF;
    }
    set_raw_flags(cpu, f);
    Ok(())
}

/// pcmpistri/pcmpistrm/pcmpestri/pcmpestrm: the SSE4.2 string compare.
fn pcmpstr(cpu: &mut Cpu, ins: &Instruction) -> Option<()> {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let a = get(cpu, xmm(ins.op_register(0))?);
    let b = src(cpu, ins, 1, 16)?;
    let imm = ins.immediate(2) as u32;
    let words = imm & 1 != 0;
    let signed = imm & 2 != 0;
    let agg = (imm >> 2) & 3;
    let pol = (imm >> 4) & 3;
    let n = if words { 8 } else { 16 };
    let w = if words { 2 } else { 1 };
    let elem = |v: u128, i: u32| -> i64 {
        let x = lane(v, w, i);
        if signed {
            sext(x, w as u8)
        } else {
            x as i64
        }
    };
    let explicit = matches!(m, Pcmpestri | Pcmpestrm | Pcmpestri64 | Pcmpestrm64);
    let len = |v: u128, reg: usize| -> u32 {
        if explicit {
            let l = cpu.gpr[reg] as i64;
            // The length register is 64 bits wide with REX.W, else 32.
            let wide = matches!(
                ins.code(),
                Code::Pcmpestri64_xmm_xmmm128_imm8 | Code::Pcmpestrm64_xmm_xmmm128_imm8
            );
            let l = if wide { l } else { l as i32 as i64 };
            l.unsigned_abs().min(n as u64) as u32
        } else {
            (0..n).find(|&i| lane(v, w, i) == 0).unwrap_or(n)
        }
    };
    let (la, lb) = (len(a, 0), len(b, 2));
    // Intermediate result 1: one bit per element of b.
    let mut res1 = 0u32;
    for j in 0..n {
        let bit = match agg {
            0 => {
                // equal any: b[j] is one of a's valid elements
                j < lb && (0..la).any(|i| elem(a, i) == elem(b, j))
            }
            1 => {
                // ranges: a holds pairs (lo, hi)
                j < lb
                    && (0..la / 2 * 2)
                        .step_by(2)
                        .any(|i| elem(a, i) <= elem(b, j) && elem(b, j) <= elem(a, i + 1))
            }
            2 => {
                // equal each
                match (j < la, j < lb) {
                    (true, true) => elem(a, j) == elem(b, j),
                    (false, false) => true,
                    _ => false,
                }
            }
            _ => {
                // equal ordered: a occurs in b starting at j
                (0..n - j).all(|i| {
                    let k = j + i;
                    match (i < la, k < lb) {
                        (false, _) => true,
                        (true, false) => false,
                        (true, true) => elem(a, i) == elem(b, k),
                    }
                })
            }
        };
        res1 |= (bit as u32) << j;
    }
    let full = if n == 16 { 0xffff } else { 0xff };
    let res2 = match pol {
        1 => !res1 & full,
        3 => res1 ^ ((1u32 << lb) - 1),
        _ => res1,
    } & full;
    let mut f = 0;
    if res2 != 0 {
        f |= rf::CF;
    }
    if lb < n {
        f |= rf::ZF;
    }
    if la < n {
        f |= rf::SF;
    }
    if res2 & 1 != 0 {
        f |= rf::OF;
    }
    if matches!(m, Pcmpistri | Pcmpestri | Pcmpestri64) {
        let idx = if res2 == 0 {
            n
        } else if imm & 0x40 != 0 {
            31 - res2.leading_zeros()
        } else {
            res2.trailing_zeros()
        };
        cpu.gpr[1] = idx as u64;
    } else {
        let mask = if imm & 0x40 != 0 {
            let o: Vec<u64> = (0..n)
                .map(|i| if res2 >> i & 1 != 0 { (1u64 << (w * 8)) - 1 } else { 0 })
                .collect();
            pk(&o, w as u8)
        } else {
            res2 as u128
        };
        set(cpu, 0, mask);
    }
    set_raw_flags(cpu, f);
    Some(())
}
