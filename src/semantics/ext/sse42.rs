//! SSE4.2: CRC32 (the Castagnoli polynomial) and the string compares pcmpistri, pcmpistrm,
//! pcmpestri, pcmpestrm (pcmpgtq is `sse`'s, written over `Emitter`).

use super::super::concrete::Live;
use super::super::operand::{gpr, op_size, read_gpr, read_op, write_gpr};
use super::super::vector::{lanes, sext};
use super::{get, lane, pk, set, src, xmm};
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
    /// aggregation compares up to 16 x 16 pairs).
    a: [i64; 16],
    b: [i64; 16],
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

    /// Intermediate result 1: one bit per element of b, by the aggregation imm[3:2].
    fn aggregate(&self, agg: u32) -> u32 {
        let (a, b, n, la, lb) = (&self.a, &self.b, self.n, self.la, self.lb);
        let elem = |v: &[i64; 16], i: u32| v[i as usize];
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
        res1
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

/// The bytes or words of `v` (`vector::lanes`), sign-extended when `signed`.
fn elements(v: u128, words: bool, signed: bool) -> [i64; 16] {
    let w = if words { 2 } else { 1 };
    lanes(v, w).map(|x| if signed { sext(x, w) } else { x as i64 })
}

/// A string's valid length: from rax/rdx (explicit forms; 64 bits wide with REX.W, else 32,
/// absolute value, at most a register), or up to its first zero element (implicit forms).
fn string_length(cpu: &Cpu, ins: &Instruction, v: u128, reg: usize, words: bool) -> u32 {
    let (n, w) = if words { (8, 2) } else { (16, 1) };
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
        (0..n).find(|&i| lane(v, w, i) == 0).unwrap_or(n)
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
    let s = Strings {
        a: elements(a, words, signed),
        b: elements(b, words, signed),
        words,
        n,
        la: string_length(cpu, ins, a, 0, words),
        lb: string_length(cpu, ins, b, 2, words),
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

    #[test]
    fn match_results_pick_bits_or_count() {
        assert_eq!(match_index(0, 16, false), 16);
        assert_eq!(match_index(0b0110, 16, false), 1);
        assert_eq!(match_index(0b0110, 16, true), 2);
        assert_eq!(match_mask(0b101, 8, 2, false), 0b101);
        assert_eq!(match_mask(0b101, 8, 2, true), 0xffff_0000_ffff);
    }
}
