//! SSSE3 over concrete state: the lane operations also reached by their MMX forms
//! (`ssse3_op`, used by `mmx`): horizontal add/subtract, multiply-add, rounded high multiply,
//! sign and absolute value. pshufb and palignr are `sse`'s, written over `Emitter`.

use super::super::vector::sext;
use super::{lane, ls, pk, Operands};
use iced_x86::Mnemonic;

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
pub(in crate::semantics) fn ssse3_op(m: Mnemonic, a: u128, b: u128) -> Option<u128> {
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

/// The lane operations of the xmm forms (`ssse3_op`).
pub(super) fn lanes(o: &mut Operands) -> Option<u128> {
    ssse3_op(o.m, o.a, o.b)
}
