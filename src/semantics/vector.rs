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

/// `f` of the low halves and of the high halves of `a` and `b`.
#[inline(always)]
fn by_halves(a: u128, b: u128, f: impl Fn(u64, u64) -> u64) -> u128 {
    let lo = f(a as u64, b as u64);
    let hi = f((a >> 64) as u64, (b >> 64) as u64);
    (hi as u128) << 64 | lo as u128
}

/// The eight bytes of a word at once (each operation on each byte alone, no carry or borrow
/// crossing from one byte to the next): the commonest byte-lane forms, those of the C
/// library's string functions (`pcmpeqb`, `pminub`, `pmovmskb`), without a loop over lanes.
mod bytes {
    /// Each byte's top bit.
    const TOP: u64 = 0x8080_8080_8080_8080;
    /// Each byte's seven low bits.
    const LOW: u64 = !TOP;

    /// 0xff in each byte whose top bit `m` sets, 0 in the others (`m` holds top bits only).
    #[inline(always)]
    fn spread(m: u64) -> u64 {
        (m >> 7) * 0xff
    }

    /// 0xff where the bytes are equal, 0 elsewhere.
    #[inline(always)]
    pub fn eq(x: u64, y: u64) -> u64 {
        let v = x ^ y;
        // A byte's top bit: whether it is not zero.
        let nonzero = ((v & LOW) + LOW) | v;
        spread(!nonzero & TOP)
    }

    /// Each byte's difference, modulo 256.
    #[inline(always)]
    pub fn sub(x: u64, y: u64) -> u64 {
        ((x | TOP) - (y & LOW)) ^ ((x ^ !y) & TOP)
    }

    /// Each byte's sum, modulo 256.
    #[inline(always)]
    pub fn add(x: u64, y: u64) -> u64 {
        ((x & LOW) + (y & LOW)) ^ ((x ^ y) & TOP)
    }

    /// 0xff where `x`'s byte is below `y`'s (unsigned), 0 elsewhere: the borrow out of each
    /// byte's subtraction, which is the difference's top bit where the two top bits agree and
    /// `y`'s top bit where they differ.
    #[inline(always)]
    pub fn lt(x: u64, y: u64) -> u64 {
        let d = sub(x, y);
        let differ = x ^ y;
        spread(((!differ & d) | (differ & y)) & TOP)
    }

    /// `x`'s bytes where `m` is 0xff, `y`'s elsewhere.
    #[inline(always)]
    pub fn select(m: u64, x: u64, y: u64) -> u64 {
        (x & m) | (y & !m)
    }

    /// Each byte's top bit, gathered into the low eight bits (byte `i`'s into bit `i`).
    #[inline(always)]
    pub fn top_bits(x: u64) -> u64 {
        (((x & TOP) >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
    }
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
        VOp::CmpEq(1) => by_halves(a, b, bytes::eq),
        VOp::MinU(1) => by_halves(a, b, |x, y| bytes::select(bytes::lt(x, y), x, y)),
        VOp::MaxU(1) => by_halves(a, b, |x, y| bytes::select(bytes::lt(x, y), y, x)),
        VOp::Add(1) => by_halves(a, b, bytes::add),
        VOp::Sub(1) => by_halves(a, b, bytes::sub),
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
    if lane == 1 {
        return bytes::top_bits(a as u64) | bytes::top_bits((a >> 64) as u64) << 8;
    }
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

    /// The byte forms done a word at a time (`bytes`) against the same operation lane by lane,
    /// for every pair of byte values in every byte position of the two halves.
    #[test]
    fn byte_forms_a_word_at_a_time_equal_lane_by_lane() {
        type ByLane = fn(u64, u64) -> u64;
        let by_lanes: [(VOp, ByLane); 5] = [
            (VOp::CmpEq(1), |x, y| if x == y { 0xff } else { 0 }),
            (VOp::MinU(1), |x, y| x.min(y)),
            (VOp::MaxU(1), |x, y| x.max(y)),
            (VOp::Add(1), |x, y| x.wrapping_add(y)),
            (VOp::Sub(1), |x, y| x.wrapping_sub(y)),
        ];
        for x in 0..=255u128 {
            for y in 0..=255u128 {
                let at = (x * 7 + y) % 16 * 8;
                let filler = 0x5a5a_a5a5_0ff0_f00f_1234_8765_fedc_0110u128;
                let a = filler & !(0xff << at) | x << at;
                let b = filler.rotate_left(8) & !(0xff << at) | y << at;
                for (op, f) in by_lanes {
                    assert_eq!(vop(op, a, b), lanewise(1, a, b, f), "{op:?} of {x:#x} and {y:#x}");
                }
                let top_bits = (0..16).fold(0, |r, i| r | ((a >> (i * 8 + 7)) & 1) << i) as u64;
                assert_eq!(vmovmsk(a, 1), top_bits);
            }
        }
    }

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
