//! SSE4.2's string compares (pcmpistri, pcmpistrm, pcmpestri, pcmpestrm) over `Emitter`, so
//! that compiled code runs them inline: each string's valid length, then the aggregation the
//! control byte picks (equal any, ranges, equal each, equal ordered) as a mask over b's
//! elements built from lane-wise vector compares of b with each element of a, the polarity,
//! and the index (rcx) or mask (xmm0) result with the flags.

use super::emitter::{Emitter, VOp};
use super::sse::{src, xmm_idx, zero_x};
use crate::cpu::flags::{FlagKind, Flags};
use crate::cpu::ops::{Bin, Cmp, Un};
use crate::cpu::rflags as rf;
use iced_x86::{Code, Instruction, Mnemonic};

/// The control byte (imm8) of a string compare.
#[derive(Clone, Copy)]
struct Control {
    /// Element width in bytes (bit 0: words).
    w: u8,
    /// Elements are signed (bit 1).
    signed: bool,
    /// Bits 3:2: equal any, ranges, equal each, equal ordered.
    aggregation: u8,
    /// Bits 5:4: positive, negative, masked positive, masked negative.
    polarity: u8,
    /// Bit 6: the index of the highest set bit (else the lowest); for the mask forms, one
    /// element of all ones per bit (else the bits).
    high_or_expanded: bool,
}

impl Control {
    fn of(imm: u8) -> Control {
        Control {
            w: if imm & 1 != 0 { 2 } else { 1 },
            signed: imm & 2 != 0,
            aggregation: (imm >> 2) & 3,
            polarity: (imm >> 4) & 3,
            high_or_expanded: imm & 0x40 != 0,
        }
    }

    /// Elements in a register.
    fn n(self) -> u32 {
        16 / self.w as u32
    }

    /// One bit per element.
    fn full(self) -> u64 {
        (1 << self.n()) - 1
    }
}

/// The two strings: their registers, their valid lengths (0..=n) and one bit per valid
/// element of b.
struct Strings<V, X> {
    a: X,
    b: X,
    la: V,
    lb: V,
    valid_b: V,
}

/// Executes (or emits) a string compare: operand 0 is string a (an XMM register), operand 1
/// string b (an XMM register or 16 bytes of memory, unaligned), operand 2 the control byte.
pub fn exec<E: Emitter>(e: &mut E, ins: &Instruction) {
    let c = Control::of(ins.immediate(2) as u8);
    let a = e.get_xmm(xmm_idx(ins.op_register(0)).expect("xmm string a"));
    let b = src(e, ins, 1, 16);
    let explicit = matches!(
        ins.mnemonic(),
        Mnemonic::Pcmpestri | Mnemonic::Pcmpestrm | Mnemonic::Pcmpestri64 | Mnemonic::Pcmpestrm64
    );
    let (la, lb) = if explicit {
        let wide = matches!(
            ins.code(),
            Code::Pcmpestri64_xmm_xmmm128_imm8 | Code::Pcmpestrm64_xmm_xmmm128_imm8
        );
        (explicit_length(e, c, 0, wide), explicit_length(e, c, 2, wide))
    } else {
        (implicit_length(e, c, a), implicit_length(e, c, b))
    };
    let valid_b = below(e, lb);
    let s = Strings { a, b, la, lb, valid_b };
    let res1 = aggregate(e, c, &s);
    let res2 = polarity(e, c, &s, res1);
    let index_form = matches!(
        ins.mnemonic(),
        Mnemonic::Pcmpistri | Mnemonic::Pcmpestri | Mnemonic::Pcmpestri64
    );
    if index_form {
        let i = match_index(e, c, res2);
        e.set_reg(1, i);
    } else {
        let m = match_mask(e, c, res2);
        e.set_xmm(0, m);
    }
    let f = string_flags(e, c, &s, res2);
    e.set_flags(f);
}

/// An implicit string's length: up to its first zero element.
fn implicit_length<E: Emitter>(e: &mut E, c: Control, v: E::X) -> E::V {
    let zero = zero_x(e);
    let zeros = e.vop(VOp::CmpEq(c.w), v, zero);
    let mask = e.vmovmsk(zeros, c.w);
    let end = e.imm(1 << c.n());
    let bounded = e.bin(Bin::Or, mask, end);
    e.un(Un::Ctz, bounded)
}

/// An explicit string's length from general register `reg` (rax or rdx): its absolute value,
/// 64 bits wide with REX.W (else the low 32 bits, signed), at most a register's elements.
fn explicit_length<E: Emitter>(e: &mut E, c: Control, reg: usize, wide: bool) -> E::V {
    let r = e.get_reg(reg);
    let l = if wide { r } else { e.extend(r, 4, true) };
    let zero = e.imm(0);
    let negative = e.cmp(Cmp::Slt, l, zero);
    let negated = e.bin(Bin::Sub, zero, l);
    let magnitude = e.select(negative, negated, l);
    let n = e.imm(c.n() as u64);
    let short = e.cmp(Cmp::Ult, magnitude, n);
    e.select(short, magnitude, n)
}

/// One bit per element below `len`: (1 << len) - 1.
fn below<E: Emitter>(e: &mut E, len: E::V) -> E::V {
    let one = e.imm(1);
    let bit = e.bin(Bin::Shl, one, len);
    e.bin(Bin::Sub, bit, one)
}

/// A vector of element `i` of `v` in every lane.
fn splat<E: Emitter>(e: &mut E, c: Control, v: E::X, i: u32) -> E::X {
    // Elements are 1 or 2 bytes wide.
    let w = c.w as u32;
    e.vshuffle(v, v, std::array::from_fn(|k| (i * w + (k as u32 & (w - 1))) as u8))
}

/// One bit per element of b equal to element `i` of a.
fn equal_to<E: Emitter>(e: &mut E, c: Control, s: &Strings<E::V, E::X>, i: u32) -> E::V {
    let x = splat(e, c, s.a, i);
    let eq = e.vop(VOp::CmpEq(c.w), s.b, x);
    e.vmovmsk(eq, c.w)
}

/// One bit per element of b within [lo, hi] (elements of a), compared as the control byte
/// says: unsigned compares as signed ones once every element's top bit is flipped.
fn within<E: Emitter>(e: &mut E, c: Control, s: &Strings<E::V, E::X>, lo: u32, hi: u32) -> E::V {
    let (mut b, mut l, mut h) = (s.b, splat(e, c, s.a, lo), splat(e, c, s.a, hi));
    if !c.signed {
        let top = if c.w == 2 {
            0x8000_8000_8000_8000
        } else {
            0x8080_8080_8080_8080
        };
        let t = e.imm(top);
        let bias = e.x_from_halves(t, t);
        b = e.vop(VOp::Xor, b, bias);
        l = e.vop(VOp::Xor, l, bias);
        h = e.vop(VOp::Xor, h, bias);
    }
    let below_lo = e.vop(VOp::CmpGt(c.w), l, b);
    let above_hi = e.vop(VOp::CmpGt(c.w), b, h);
    let outside = e.vop(VOp::Or, below_lo, above_hi);
    let out = e.vmovmsk(outside, c.w);
    let full = e.imm(c.full());
    e.bin(Bin::Xor, out, full)
}

/// `acc | m` where `i < len`, else `acc`.
fn or_if_below<E: Emitter>(e: &mut E, acc: E::V, m: E::V, i: u32, len: E::V) -> E::V {
    let idx = e.imm(i as u64);
    let take = e.cmp(Cmp::Ult, idx, len);
    let with = e.bin(Bin::Or, acc, m);
    e.select(take, with, acc)
}

/// Intermediate result 1: one bit per element of b, by the aggregation.
fn aggregate<E: Emitter>(e: &mut E, c: Control, s: &Strings<E::V, E::X>) -> E::V {
    let (n, valid_b) = (c.n(), s.valid_b);
    match c.aggregation {
        // Equal any: b[j] is one of a's valid elements.
        0 => {
            let mut acc = e.imm(0);
            for i in 0..n {
                let m = equal_to(e, c, s, i);
                acc = or_if_below(e, acc, m, i, s.la);
            }
            e.bin(Bin::And, acc, valid_b)
        }
        // Ranges: a holds pairs (lo, hi), each used when both lie within a's length.
        1 => {
            let mut acc = e.imm(0);
            for k in 0..n / 2 {
                let m = within(e, c, s, 2 * k, 2 * k + 1);
                acc = or_if_below(e, acc, m, 2 * k + 1, s.la);
            }
            e.bin(Bin::And, acc, valid_b)
        }
        // Equal each: element by element, true where both are past their ends.
        2 => {
            let eq = e.vop(VOp::CmpEq(c.w), s.a, s.b);
            let same = e.vmovmsk(eq, c.w);
            let a_shorter = e.cmp(Cmp::Ult, s.la, s.lb);
            let shorter = e.select(a_shorter, s.la, s.lb);
            let longer = e.select(a_shorter, s.lb, s.la);
            let both_valid = below(e, shorter);
            let either_valid = below(e, longer);
            let full = e.imm(c.full());
            let both_past = e.bin(Bin::Xor, either_valid, full);
            let matched = e.bin(Bin::And, same, both_valid);
            e.bin(Bin::Or, matched, both_past)
        }
        // Equal ordered: a's valid elements occur in b from element j on (those that would
        // lie past b's register match).
        _ => {
            let mut r = e.imm(c.full());
            for i in 0..n {
                let m = equal_to(e, c, s, i);
                let valid = e.bin(Bin::And, m, valid_b);
                let sh = e.imm(i as u64);
                let shifted = e.bin(Bin::Shr, valid, sh);
                let past_register = e.imm(c.full() & !((1u64 << (n - i)) - 1));
                let t = e.bin(Bin::Or, shifted, past_register);
                let idx = e.imm(i as u64);
                let take = e.cmp(Cmp::Ult, idx, s.la);
                let narrowed = e.bin(Bin::And, r, t);
                r = e.select(take, narrowed, r);
            }
            r
        }
    }
}

/// Intermediate result 2: result 1 with the polarity applied (masked forms: only b's valid
/// elements are inverted).
fn polarity<E: Emitter>(e: &mut E, c: Control, s: &Strings<E::V, E::X>, res1: E::V) -> E::V {
    match c.polarity {
        1 => {
            let full = e.imm(c.full());
            e.bin(Bin::Xor, res1, full)
        }
        3 => e.bin(Bin::Xor, res1, s.valid_b),
        _ => res1,
    }
}

/// The index forms' result: the lowest or highest set bit, or the element count.
fn match_index<E: Emitter>(e: &mut E, c: Control, res2: E::V) -> E::V {
    let n = e.imm(c.n() as u64);
    if c.high_or_expanded {
        let lz = e.un(Un::Clz, res2);
        let top = e.imm(63);
        let highest = e.bin(Bin::Sub, top, lz);
        let zero = e.imm(0);
        let none = e.cmp(Cmp::Eq, res2, zero);
        e.select(none, n, highest)
    } else {
        let end = e.imm(1 << c.n());
        let bounded = e.bin(Bin::Or, res2, end);
        e.un(Un::Ctz, bounded)
    }
}

/// The mask forms' result: the bits, or one element of all ones per set bit.
fn match_mask<E: Emitter>(e: &mut E, c: Control, res2: E::V) -> E::X {
    let zero = e.imm(0);
    if !c.high_or_expanded {
        return e.x_from_halves(res2, zero);
    }
    let per_half = c.n() / 2;
    let ones = (1u64 << (c.w as u32 * 8)) - 1;
    let mut halves = [zero; 2];
    for (h, half) in halves.iter_mut().enumerate() {
        for j in 0..per_half {
            let sh = e.imm(h as u64 * per_half as u64 + j as u64);
            let shifted = e.bin(Bin::Shr, res2, sh);
            let one = e.imm(1);
            let bit = e.bin(Bin::And, shifted, one);
            let lane = e.imm(ones << (j * c.w as u32 * 8));
            let part = e.select(bit, lane, zero);
            *half = e.bin(Bin::Or, *half, part);
        }
    }
    e.x_from_halves(halves[0], halves[1])
}

/// CF: any match; ZF, SF: b, a shorter than a register; OF: bit 0 of the result; the other
/// arithmetic flags clear.
fn string_flags<E: Emitter>(e: &mut E, c: Control, s: &Strings<E::V, E::X>, res2: E::V) -> Flags<E::V> {
    let zero = e.imm(0);
    let n = e.imm(c.n() as u64);
    let any = e.cmp(Cmp::Ne, res2, zero);
    let one = e.imm(1);
    let first = e.bin(Bin::And, res2, one);
    let b_short = e.cmp(Cmp::Ult, s.lb, n);
    let a_short = e.cmp(Cmp::Ult, s.la, n);
    let mut f = e.imm(0);
    for (bit, flag) in [(any, rf::CF), (b_short, rf::ZF), (a_short, rf::SF), (first, rf::OF)] {
        let sh = e.imm(flag.trailing_zeros() as u64);
        let placed = e.bin(Bin::Shl, bit, sh);
        f = e.bin(Bin::Or, f, placed);
    }
    Flags {
        kind: FlagKind::Raw,
        size: 8,
        res: f,
        a: zero,
        b: zero,
        aux: zero,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::Cpu;
    use crate::semantics::concrete::Live;
    use crate::semantics::vector::{lanes, sext};
    use iced_x86::{Decoder, DecoderOptions};

    /// The compare as the manual defines it, pair by pair over the elements: (rcx or xmm0,
    /// the arithmetic flags).
    fn by_pairs(a: u128, b: u128, imm: u8, lens: Option<(i64, i64)>, index_form: bool) -> (u128, u64) {
        let c = Control::of(imm);
        let (n, w) = (c.n(), c.w as u32);
        let elem = |v: u128, i: u32| -> i64 {
            let x = lanes(v, c.w)[i as usize];
            if c.signed {
                sext(x, c.w)
            } else {
                x as i64
            }
        };
        let len = |v: u128, l: Option<i64>| match l {
            Some(l) => l.unsigned_abs().min(n as u64) as u32,
            None => (0..n).find(|&i| elem(v, i) == 0).unwrap_or(n),
        };
        let (la, lb) = (len(a, lens.map(|l| l.0)), len(b, lens.map(|l| l.1)));
        let res1 = (0..n).fold(0u32, |res, j| {
            let bit = match c.aggregation {
                0 => j < lb && (0..la).any(|i| elem(a, i) == elem(b, j)),
                1 => j < lb && (0..la / 2).any(|k| elem(a, 2 * k) <= elem(b, j) && elem(b, j) <= elem(a, 2 * k + 1)),
                2 => match (j < la, j < lb) {
                    (true, true) => elem(a, j) == elem(b, j),
                    (valid_a, valid_b) => !valid_a && !valid_b,
                },
                _ => (0..n - j).all(|i| i >= la || (j + i < lb && elem(a, i) == elem(b, j + i))),
            };
            res | (bit as u32) << j
        });
        let res2 = (0..n).fold(0u32, |r, j| {
            let x = res1 >> j & 1;
            let flip = match c.polarity {
                1 => 1,
                3 => (j < lb) as u32,
                _ => 0,
            };
            r | (x ^ flip) << j
        });
        let out = if index_form {
            match (res2, c.high_or_expanded) {
                (0, _) => n as u128,
                (r, true) => (31 - r.leading_zeros()) as u128,
                (r, false) => r.trailing_zeros() as u128,
            }
        } else if c.high_or_expanded {
            (0..n).fold(0u128, |m, j| {
                m | ((res2 >> j & 1) as u128 * ((1u128 << (w * 8)) - 1)) << (j * w * 8)
            })
        } else {
            res2 as u128
        };
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
        (out, f)
    }

    #[test]
    fn every_control_byte_matches_the_pairwise_definition() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Elements from a small alphabet with zeros and sign bits, so that matches, ranges,
        // occurrences and ends are common.
        let alphabet = [0u8, 1, 2, 0x41, 0x80, 0xff];
        let vector = |next: &mut dyn FnMut() -> u64| {
            u128::from_le_bytes(std::array::from_fn(|_| alphabet[(next() % 6) as usize]))
        };
        for case in 0..6000u32 {
            let imm = (case % 128) as u8;
            let (a, b) = (vector(&mut next), vector(&mut next));
            let (ra, rd) = ((next() % 40) as i64 - 20, (next() % 40) as i64 - 20);
            // pcmpestri, pcmpestrm, pcmpistri, pcmpistrm xmm1, xmm2, imm8.
            for (op, explicit, index_form) in [
                (0x61, true, true),
                (0x60, true, false),
                (0x63, false, true),
                (0x62, false, false),
            ] {
                let bytes = [0x66, 0x0f, 0x3a, op, 0xca, imm];
                let ins = Decoder::with_ip(64, &bytes, 0x1000, DecoderOptions::NONE).decode();
                let mut cpu = Cpu::new();
                cpu.xmm[1] = [a as u64, (a >> 64) as u64];
                cpu.xmm[2] = [b as u64, (b >> 64) as u64];
                cpu.gpr[0] = ra as u64;
                cpu.gpr[2] = rd as u64;
                exec(&mut Live::new(&mut cpu), &ins);
                let lens = explicit.then_some((ra, rd));
                let (want, want_flags) = by_pairs(a, b, imm, lens, index_form);
                let got = if index_form {
                    cpu.gpr[1] as u128
                } else {
                    cpu.xmm[0][0] as u128 | (cpu.xmm[0][1] as u128) << 64
                };
                let flags =
                    crate::cpu::flags::arith_rflags(&cpu) & (rf::CF | rf::ZF | rf::SF | rf::OF | rf::AF | rf::PF);
                assert_eq!(
                    (got, flags),
                    (want, want_flags),
                    "imm {imm:#x} op {op:#x} a {a:#x} b {b:#x} rax {ra} rdx {rd}"
                );
            }
        }
    }
}
