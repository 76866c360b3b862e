//! 128-bit vector arithmetic over concrete values: the meaning of `VOp`, `VShift` and byte
//! shuffles, shared by the baseline tier and the slow helpers.

use super::emitter::{VOp, VShift};

/// The mask of a lane of `w` bytes (1, 2, 4 or 8).
fn lane_mask(w: u8) -> u64 {
    u64::MAX >> (64 - w as u32 * 8)
}

/// The `16 / w` lanes of `w` bytes of `v` (1, 2, 4 or 8), lowest first, zero-extended (the
/// rest zero).
pub fn lanes(v: u128, w: u8) -> [u64; 16] {
    let bits = w as u32 * 8;
    let mut out = [0u64; 16];
    for (i, o) in out.iter_mut().take(16 / w as usize).enumerate() {
        *o = (v >> (i as u32 * bits)) as u64 & lane_mask(w);
    }
    out
}

/// The vector of the first `16 / w` lanes of `l`, each cut to `w` bytes (`lanes`' inverse).
pub fn pack(l: &[u64; 16], w: u8) -> u128 {
    let bits = w as u32 * 8;
    l.iter()
        .take(16 / w as usize)
        .enumerate()
        .fold(0, |r, (i, &x)| r | ((x & lane_mask(w)) as u128) << (i as u32 * bits))
}

pub fn sext(v: u64, w: u8) -> i64 {
    let s = 64 - w as u32 * 8;
    ((v << s) as i64) >> s
}

/// `f` of each pair of lanes of `w` bytes of `a` and `b` (1, 2, 4 or 8), zero-extended, each
/// result cut to `w` bytes. Written per width, so that the compiler sees the lanes of each.
#[inline(always)]
pub fn lanewise(w: u8, a: u128, b: u128, f: impl Fn(u64, u64) -> u64) -> u128 {
    match w {
        1 => lanes_of::<1>(a, b, f),
        2 => lanes_of::<2>(a, b, f),
        4 => lanes_of::<4>(a, b, f),
        _ => lanes_of::<8>(a, b, f),
    }
}

/// `lanewise` for lanes of `W` bytes.
#[inline(always)]
fn lanes_of<const W: usize>(a: u128, b: u128, f: impl Fn(u64, u64) -> u64) -> u128 {
    let (x, y) = (a.to_le_bytes(), b.to_le_bytes());
    let lane = |v: &[u8; 16], i: usize| {
        let mut l = [0u8; 8];
        l[..W].copy_from_slice(&v[i * W..i * W + W]);
        u64::from_le_bytes(l)
    };
    let mut out = [0u8; 16];
    for i in 0..16 / W {
        let r = f(lane(&x, i), lane(&y, i)).to_le_bytes();
        out[i * W..i * W + W].copy_from_slice(&r[..W]);
    }
    u128::from_le_bytes(out)
}

fn limits(w: u8) -> (i64, i64, u64) {
    let bits = w as u32 * 8;
    (
        -(1i64 << (bits - 1)),
        (1i64 << (bits - 1)) - 1,
        if w == 8 { u64::MAX } else { (1u64 << bits) - 1 },
    )
}

pub fn vop(op: VOp, a: u128, b: u128) -> u128 {
    match op {
        VOp::And => a & b,
        VOp::Or => a | b,
        VOp::Xor => a ^ b,
        VOp::AndNot => !a & b,
        VOp::Add(w) => lanewise(w, a, b, |x, y| x.wrapping_add(y)),
        VOp::Sub(w) => lanewise(w, a, b, |x, y| x.wrapping_sub(y)),
        VOp::CmpEq(w) => lanewise(w, a, b, |x, y| if x == y { u64::MAX } else { 0 }),
        VOp::CmpGt(w) => lanewise(w, a, b, |x, y| if sext(x, w) > sext(y, w) { u64::MAX } else { 0 }),
        VOp::MinU(w) => lanewise(w, a, b, |x, y| x.min(y)),
        VOp::MaxU(w) => lanewise(w, a, b, |x, y| x.max(y)),
        VOp::MinS(w) => lanewise(w, a, b, |x, y| if sext(x, w) < sext(y, w) { x } else { y }),
        VOp::MaxS(w) => lanewise(w, a, b, |x, y| if sext(x, w) > sext(y, w) { x } else { y }),
        VOp::AddSatU(w) => lanewise(w, a, b, |x, y| x.saturating_add(y).min(limits(w).2)),
        VOp::SubSatU(w) => lanewise(w, a, b, |x, y| x.saturating_sub(y)),
        VOp::AddSatS(w) => {
            let (lo, hi, _) = limits(w);
            lanewise(w, a, b, |x, y| (sext(x, w) + sext(y, w)).clamp(lo, hi) as u64)
        }
        VOp::SubSatS(w) => {
            let (lo, hi, _) = limits(w);
            lanewise(w, a, b, |x, y| (sext(x, w) - sext(y, w)).clamp(lo, hi) as u64)
        }
        VOp::AvgU(w) => lanewise(w, a, b, |x, y| (x + y + 1) >> 1),
        VOp::MulLo(w) => lanewise(w, a, b, |x, y| x.wrapping_mul(y)),
        VOp::PackUs(w) | VOp::PackSs(w) => {
            let n = 16 / w as usize;
            let nw = w / 2;
            let (lo, hi, umax) = limits(nw);
            let sat = |v: u64| {
                let s = sext(v, w);
                if matches!(op, VOp::PackUs(_)) {
                    s.clamp(0, umax as i64) as u64
                } else {
                    s.clamp(lo, hi) as u64
                }
            };
            let (x, y) = (lanes(a, w), lanes(b, w));
            let mut o = [0u64; 16];
            for i in 0..n {
                o[i] = sat(x[i]);
                o[n + i] = sat(y[i]);
            }
            pack(&o, nw)
        }
    }
}

pub fn vshift(op: VShift, a: u128, count: u8) -> u128 {
    let c = count as u32;
    match op {
        VShift::Shl(w) => lanewise(w, a, 0, |x, _| x << c),
        VShift::Shr(w) => lanewise(w, a, 0, |x, _| x >> c),
        VShift::Sar(w) => lanewise(w, a, 0, |x, _| (sext(x, w) >> c) as u64),
    }
}

pub fn vshuffle(a: u128, b: u128, idx: [u8; 16]) -> u128 {
    let (x, y) = (a.to_le_bytes(), b.to_le_bytes());
    let mut o = [0u8; 16];
    for i in 0..16 {
        let j = idx[i] as usize;
        o[i] = if j < 16 { x[j] } else { y[(j - 16) & 15] };
    }
    u128::from_le_bytes(o)
}

pub fn vswizzle(a: u128, idx: u128) -> u128 {
    let (x, s) = (a.to_le_bytes(), idx.to_le_bytes());
    u128::from_le_bytes(s.map(|j| if j & 0x80 != 0 { 0 } else { x[(j & 15) as usize] }))
}

pub fn vmovmsk(a: u128, lane: u8) -> u64 {
    let bits = lane as u32 * 8;
    let mut r = 0u64;
    for i in 0..16 / lane as u32 {
        r |= (((a >> (i * bits + bits - 1)) & 1) as u64) << i;
    }
    r
}

/// The lane width in bytes of a lane shift.
fn shift_width(op: VShift) -> u8 {
    match op {
        VShift::Shl(w) | VShift::Shr(w) | VShift::Sar(w) => w,
    }
}

/// The count a lane shift (psllw...psrad, SSE and MMX forms) really shifts by: an arithmetic
/// shift by the lane width or more fills each lane with its sign (a shift by width - 1); a
/// logical one clears every lane (None).
pub fn effective_shift_count(op: VShift, count: u64) -> Option<u8> {
    let bits = shift_width(op) as u64 * 8;
    match op {
        VShift::Sar(_) => Some(count.min(bits - 1) as u8),
        _ if count >= bits => None,
        _ => Some(count as u8),
    }
}

/// A lane shift by an unreduced count, with the x86 rule for large counts.
pub fn shift_by_count(op: VShift, a: u128, count: u64) -> u128 {
    match effective_shift_count(op, count) {
        Some(c) => vshift(op, a, c),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_shift_counts_clear_or_fill_with_sign() {
        assert_eq!(effective_shift_count(VShift::Shl(2), 15), Some(15));
        assert_eq!(effective_shift_count(VShift::Shl(2), 16), None);
        assert_eq!(effective_shift_count(VShift::Shr(8), 1 << 40), None);
        assert_eq!(effective_shift_count(VShift::Sar(4), 99), Some(31));
        assert_eq!(shift_by_count(VShift::Sar(2), 0x8000, 40), 0xffff);
        assert_eq!(shift_by_count(VShift::Shr(2), 0x8000, 16), 0);
    }
}
