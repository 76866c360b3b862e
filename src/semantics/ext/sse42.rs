//! SSE4.2: CRC32 (the Castagnoli polynomial) and the string compares pcmpistri, pcmpistrm,
//! pcmpestri, pcmpestrm (pcmpgtq is `sse`'s, written over `Emitter`).

use super::super::concrete::Live;
use super::super::operand::{gpr, op_size, read_gpr, read_op, write_gpr};
use super::{get, pk, set, src, xmm};
use crate::cpu::flags::store_raw_flags;
use crate::cpu::{fault, rflags as rf, Cpu};
use iced_x86::{Code, Instruction, Mnemonic::*};

pub(super) fn crc32(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let bad = fault::UNIMPLEMENTED;
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
    Ok(())
}

/// The control byte's fields and the two strings of one string compare.
struct Strings {
    /// The elements of each string, sign-extended when the compare is signed (read once: an
    /// aggregation compares up to 16 x 16 pairs); word strings leave their last 8 zero.
    a: [i32; 16],
    b: [i32; 16],
    /// Elements are words (else bytes).
    words: bool,
    /// Element count of a register (16 bytes or 8 words).
    n: u32,
    /// Valid lengths of `a` and `b`.
    la: u32,
    lb: u32,
}

impl Strings {
    fn width(&self) -> u32 {
        if self.words {
            2
        } else {
            1
        }
    }

    /// Intermediate result 1: one bit per element of b, by the aggregation imm[3:2]. Built
    /// from masks over b's elements (`Strings::matches`), one per element of a, rather than
    /// pair by pair: an aggregation compares up to 16 x 16 pairs.
    fn aggregate(&self, agg: u32) -> u32 {
        let (a, n, la, lb) = (&self.a, self.n, self.la, self.lb);
        let full = (1u32 << n) - 1;
        let valid_b = (1u32 << lb) - 1;
        let eq = |i: u32| self.matches(|x| x == a[i as usize]);
        match agg {
            // Equal any: b[j] is one of a's valid elements.
            0 => (0..la).fold(0, |r, i| r | eq(i)) & valid_b,
            // Ranges: a holds pairs (lo, hi).
            1 => {
                let range = |k: usize| self.matches(|x| a[2 * k] <= x && x <= a[2 * k + 1]);
                (0..la as usize / 2).fold(0, |r, k| r | range(k)) & valid_b
            }
            // Equal each: element by element, true where both are past their ends.
            2 => {
                let both_valid = (1u32 << la.min(lb)) - 1;
                let both_past = full & !((1u32 << la.max(lb)) - 1);
                let same = (0..n).fold(0, |r, j| r | ((a[j as usize] == self.b[j as usize]) as u32) << j);
                (same & both_valid) | both_past
            }
            // Equal ordered: a's valid elements occur in b from j on (those that would lie
            // past b's register match).
            _ => (0..la).fold(full, |r, i| {
                let past_register = full & !((1u32 << (n - i)) - 1);
                r & (((eq(i) & valid_b) >> i) | past_register)
            }),
        }
    }

    /// One bit per element of b (all `n`) where `test` holds for it. All 16 lanes are
    /// tested and the mask cut to `n` after, so that the loop is a few vector compares.
    #[inline(always)]
    fn matches(&self, test: impl Fn(i32) -> bool) -> u32 {
        let mut m = 0;
        for (j, &x) in self.b.iter().enumerate() {
            m |= (test(x) as u32) << j;
        }
        m & ((1u32 << self.n) - 1)
    }

    /// Intermediate result 2: result 1 with the polarity imm[5:4] applied.
    fn polarity(&self, res1: u32, pol: u32) -> u32 {
        let full = if self.n == 16 { 0xffff } else { 0xff };
        let res2 = match pol {
            1 => !res1 & full,
            3 => res1 ^ ((1u32 << self.lb) - 1),
            _ => res1,
        };
        res2 & full
    }

    /// CF: any match; ZF, SF: b, a shorter than a register; OF: bit 0 of the result.
    fn flags(&self, res2: u32) -> u64 {
        let mut f = 0;
        if res2 != 0 {
            f |= rf::CF;
        }
        if self.lb < self.n {
            f |= rf::ZF;
        }
        if self.la < self.n {
            f |= rf::SF;
        }
        if res2 & 1 != 0 {
            f |= rf::OF;
        }
        f
    }
}

/// The bytes or words of `v`, sign-extended when `signed` (word strings: the last 8 zero).
fn elements(v: u128, words: bool, signed: bool) -> [i32; 16] {
    let b = v.to_le_bytes();
    let mut out = [0i32; 16];
    if words {
        for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
            let x = u16::from_le_bytes([c[0], c[1]]);
            *o = if signed { x as i16 as i32 } else { x as i32 };
        }
    } else {
        for (o, &x) in out.iter_mut().zip(&b) {
            *o = if signed { x as i8 as i32 } else { x as i32 };
        }
    }
    out
}

/// A string's valid length: from rax/rdx (explicit forms; 64 bits wide with REX.W, else 32,
/// absolute value, at most a register), or up to its first zero element (implicit forms).
fn string_length(cpu: &Cpu, ins: &Instruction, elems: &[i32; 16], reg: usize, n: u32) -> u32 {
    let explicit = matches!(ins.mnemonic(), Pcmpestri | Pcmpestrm | Pcmpestri64 | Pcmpestrm64);
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
        elems[..n as usize].iter().position(|&x| x == 0).unwrap_or(n as usize) as u32
    }
}

/// pcmpistri/pcmpistrm/pcmpestri/pcmpestrm: the SSE4.2 string compare.
pub(super) fn pcmpstr(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let bad = fault::UNIMPLEMENTED;
    let a = get(cpu, xmm(ins.op_register(0)).ok_or(bad)?);
    let b = src(cpu, ins, 1, 16).ok_or(bad)?;
    let imm = ins.immediate(2) as u32;
    let words = imm & 1 != 0;
    let n = if words { 8 } else { 16 };
    let signed = imm & 2 != 0;
    let (a, b) = (elements(a, words, signed), elements(b, words, signed));
    let s = Strings {
        la: string_length(cpu, ins, &a, 0, n),
        lb: string_length(cpu, ins, &b, 2, n),
        a,
        b,
        words,
        n,
    };
    let res2 = s.polarity(s.aggregate((imm >> 2) & 3), (imm >> 4) & 3);
    let most_significant = imm & 0x40 != 0;
    if matches!(ins.mnemonic(), Pcmpistri | Pcmpestri | Pcmpestri64) {
        cpu.gpr[1] = match_index(res2, s.n, most_significant) as u64;
    } else {
        set(cpu, 0, match_mask(res2, s.n, s.width(), most_significant));
    }
    store_raw_flags(cpu, s.flags(res2));
    Ok(())
}

/// The index form's result (to rcx): the lowest or highest set bit, or the element count.
fn match_index(res2: u32, n: u32, most_significant: bool) -> u32 {
    if res2 == 0 {
        n
    } else if most_significant {
        31 - res2.leading_zeros()
    } else {
        res2.trailing_zeros()
    }
}

/// The mask form's result (to xmm0): the bits, or expanded to one element each.
fn match_mask(res2: u32, n: u32, w: u32, expanded: bool) -> u128 {
    if expanded {
        let o: Vec<u64> = (0..n)
            .map(|i| if res2 >> i & 1 != 0 { (1u64 << (w * 8)) - 1 } else { 0 })
            .collect();
        pk(&o, w as u8)
    } else {
        res2 as u128
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The aggregations as the manual defines them, pair by pair.
    fn aggregate_by_pairs(s: &Strings, agg: u32) -> u32 {
        let (a, b, n, la, lb) = (&s.a, &s.b, s.n, s.la, s.lb);
        let (a, b) = (|i: u32| a[i as usize], |j: u32| b[j as usize]);
        (0..n).fold(0, |res, j| {
            let bit = match agg {
                0 => j < lb && (0..la).any(|i| a(i) == b(j)),
                1 => j < lb && (0..la / 2).any(|k| a(2 * k) <= b(j) && b(j) <= a(2 * k + 1)),
                2 => match (j < la, j < lb) {
                    (true, true) => a(j) == b(j),
                    (valid_a, valid_b) => !valid_a && !valid_b,
                },
                _ => (0..n - j).all(|i| i >= la || (j + i < lb && a(i) == b(j + i))),
            };
            res | (bit as u32) << j
        })
    }

    #[test]
    fn aggregations_match_their_pairwise_definitions() {
        // Elements from a small alphabet (signed and not), so that matches, ranges and
        // occurrences are common; every length of each string.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for case in 0..4000 {
            let words = case % 2 == 0;
            let n = if words { 8 } else { 16 };
            let mut elems = || [0; 16].map(|_: i32| (next() % 4) as i32 - (case % 3 == 0) as i32);
            let s = Strings {
                a: elems(),
                b: elems(),
                words,
                n,
                la: (next() % (n as u64 + 1)) as u32,
                lb: (next() % (n as u64 + 1)) as u32,
            };
            for agg in 0..4 {
                assert_eq!(
                    s.aggregate(agg),
                    aggregate_by_pairs(&s, agg),
                    "aggregation {agg}, case {case}"
                );
            }
        }
    }

    #[test]
    fn match_results_pick_bits_or_count() {
        assert_eq!(match_index(0, 16, false), 16);
        assert_eq!(match_index(0b0110, 16, false), 1);
        assert_eq!(match_index(0b0110, 16, true), 2);
        assert_eq!(match_mask(0b101, 8, 2, false), 0b101);
        assert_eq!(match_mask(0b101, 8, 2, true), 0xffff_0000_ffff);
    }
}
