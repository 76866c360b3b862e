//! String instructions (movs, stos, lods, cmps, scas) with their rep/repe/repne prefixes, over
//! concrete state: one element per step, rsi/rdi moving by the direction flag, rcx counting;
//! a forward rep movs or rep stos a page of elements per step (`bulk_forward`). Compiled code
//! hands the slow helper a string instruction as one word (`Compact`) rather than a record.

use super::super::concrete::{load, store, Live};
use super::super::operand::write_gpr;
use super::acc;
use crate::cpu::flags::{cpu_cond, size_mask, Cc};
use crate::cpu::{fault, Cpu};
use crate::mem::{host, PAGE};
use iced_x86::{Instruction, Mnemonic};

/// Element size of each string mnemonic.
fn element_size(m: Mnemonic) -> Option<u8> {
    use Mnemonic::*;
    Some(match m {
        Movsb | Stosb | Lodsb | Cmpsb | Scasb => 1,
        Movsw | Stosw | Lodsw | Cmpsw | Scasw => 2,
        Movsd | Stosd | Lodsd | Cmpsd | Scasd => 4,
        Movsq | Stosq | Lodsq | Cmpsq | Scasq => 8,
        _ => return None,
    })
}

fn is_compare(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(m, Cmpsb | Cmpsw | Cmpsd | Cmpsq | Scasb | Scasw | Scasd | Scasq)
}

/// The string instructions a `Compact` word names, by their index in it.
const MNEMONICS: [Mnemonic; 20] = {
    use Mnemonic::*;
    [
        Movsb, Movsw, Movsd, Movsq, Stosb, Stosw, Stosd, Stosq, Lodsb, Lodsw, Lodsd, Lodsq, Cmpsb, Cmpsw, Cmpsd, Cmpsq,
        Scasb, Scasw, Scasd, Scasq,
    ]
};

/// A string instruction as one word, for compiled code to hand the slow helper (which then
/// neither deserialises a record nor asks each family whether the instruction is its own):
/// bit 63 set (no record's stack address has it), the mnemonic's index in `MNEMONICS` in bits
/// 0-4, rep (repe) in bit 8, repne in bit 9, the instruction's length in bits 12-15.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compact {
    /// The mnemonic's index in `MNEMONICS`.
    index: u8,
    rep: bool,
    repne: bool,
    /// The instruction's length in bytes.
    pub len: u64,
}

const COMPACT: u64 = 1 << 63;

impl Compact {
    /// The compact form of `ins`: a string instruction with 64-bit addresses and no segment
    /// or lock prefix (the others go as records).
    pub fn of(ins: &Instruction) -> Option<Compact> {
        use iced_x86::OpKind::*;
        let wide =
            (0..ins.op_count()).all(|i| matches!(ins.op_kind(i), Register | MemorySegRSI | MemorySegRDI | MemoryESRDI));
        let plain = ins.segment_prefix() == iced_x86::Register::None && !ins.has_lock_prefix();
        Compact::named(ins).filter(|_| ins.is_string_instruction() && wide && plain)
    }

    /// The mnemonic, repeat prefix and length of `ins`, if its mnemonic is a string one.
    fn named(ins: &Instruction) -> Option<Compact> {
        let index = MNEMONICS.iter().position(|&m| m == ins.mnemonic())?;
        Some(Compact {
            index: index as u8,
            rep: ins.has_rep_prefix(),
            repne: ins.has_repne_prefix(),
            len: ins.len() as u64,
        })
    }

    fn mnemonic(self) -> Mnemonic {
        MNEMONICS[self.index as usize]
    }

    pub fn word(self) -> u64 {
        COMPACT | u64::from(self.index) | (self.rep as u64) << 8 | (self.repne as u64) << 9 | self.len << 12
    }

    /// The instruction a word names; None for a word that is not a compact one.
    pub fn from_word(w: u64) -> Option<Compact> {
        let index = (w & 0x1f) as u8;
        let compact = w & COMPACT != 0 && w & !(COMPACT | 0xf31f) == 0 && (index as usize) < MNEMONICS.len();
        compact.then_some(Compact {
            index,
            rep: w & 1 << 8 != 0,
            repne: w & 1 << 9 != 0,
            len: (w >> 12) & 0xf,
        })
    }
}

pub(super) fn exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    run(cpu, Compact::named(ins).ok_or(fault::UNIMPLEMENTED)?)
}

/// Runs the string instruction `op` names.
pub fn run(cpu: &mut Cpu, op: Compact) -> Result<(), u64> {
    let m = op.mnemonic();
    let size = element_size(m).ok_or(fault::UNIMPLEMENTED)?;
    let rep = op.rep || op.repne;
    let step = if cpu.df != 0 {
        (size as u64).wrapping_neg()
    } else {
        size as u64
    };
    let is_cmp = is_compare(m);
    if rep && !is_cmp && cpu.df == 0 && is_store(m) && bulk_forward(cpu, m, size) {
        return Ok(());
    }
    loop {
        if rep && cpu.gpr[1] == 0 {
            break;
        }
        one_element(cpu, m, size, step);
        if !rep {
            break;
        }
        cpu.gpr[1] -= 1;
        if is_cmp {
            let z = cpu_cond(cpu, Cc::E);
            if (op.rep && !z) || (op.repne && z) {
                break;
            }
        }
    }
    Ok(())
}

/// Whether `m` is a stos.
fn is_stos(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(m, Stosb | Stosw | Stosd | Stosq)
}

/// Whether `m` is a movs or a stos: the string instructions that store and read no flags.
fn is_store(m: Mnemonic) -> bool {
    use Mnemonic::*;
    is_stos(m) || matches!(m, Movsb | Movsw | Movsd | Movsq)
}

/// rep movs / rep stos forward, of elements of `size` bytes, as host copies or fills a page at
/// a time: each step takes the elements that lie whole on one page of the destination (and
/// of the source) and counts them done before the next, so that a fault comes at the first
/// element on its page, with rcx, rsi and rdi where the CPU leaves them; an element across a
/// page boundary goes alone. False (nothing done) where the ranges overlap (element by
/// element, a copy then reads what it wrote) or leave the guest space.
fn bulk_forward(cpu: &mut Cpu, m: Mnemonic, size: u8) -> bool {
    let stos = is_stos(m);
    let step = size as u64;
    let Some(n) = cpu.gpr[1].checked_mul(step) else {
        return false;
    };
    let (src, dst) = (cpu.gpr[6], cpu.gpr[7]);
    let inside = |a: u64| a.checked_add(n).is_some_and(|e| e <= crate::mem::GUEST_SPACE);
    let apart = stos || src.checked_add(n).is_some_and(|e| e <= dst) || dst.checked_add(n).is_some_and(|e| e <= src);
    if !(inside(dst) && (stos || inside(src)) && apart) {
        return false;
    }
    let pattern = cpu.gpr[0].to_le_bytes();
    // An element of one repeated byte (zero, as memset's most often is) fills bytewise.
    let one_byte = pattern[..size as usize].iter().all(|&b| b == pattern[0]);
    let whole_on_page = |a: u64| (PAGE - a % PAGE) / step;
    while cpu.gpr[1] != 0 {
        let mut k = whole_on_page(cpu.gpr[7]).min(cpu.gpr[1]);
        if !stos {
            k = k.min(whole_on_page(cpu.gpr[6]));
        }
        if k == 0 {
            one_element(cpu, m, size, step);
            cpu.gpr[1] -= 1;
            continue;
        }
        let (d, bytes) = (host(cpu.gpr[7]), (k * step) as usize);
        // SAFETY: both ranges lie inside the reservation (checked), each on one guest page;
        // an unmapped or read-only page faults at its first byte, as the guest's own first
        // access there would.
        unsafe {
            if !stos {
                std::ptr::copy_nonoverlapping(host(cpu.gpr[6]), d, bytes);
            } else if one_byte {
                std::ptr::write_bytes(d, pattern[0], bytes);
            } else {
                for at in (0..bytes).step_by(size as usize) {
                    std::ptr::copy_nonoverlapping(pattern.as_ptr(), d.add(at), size as usize);
                }
            }
        }
        cpu.gpr[7] += k * step;
        if !stos {
            cpu.gpr[6] += k * step;
        }
        cpu.gpr[1] -= k;
    }
    true
}

/// One element of a string instruction, moving rsi/rdi by `step`.
fn one_element(cpu: &mut Cpu, m: Mnemonic, size: u8, step: u64) {
    use Mnemonic::*;
    match m {
        Movsb | Movsw | Movsd | Movsq => {
            let v = load(cpu.gpr[6], size);
            store(cpu.gpr[7], v, size);
            cpu.gpr[6] = cpu.gpr[6].wrapping_add(step);
            cpu.gpr[7] = cpu.gpr[7].wrapping_add(step);
        }
        Stosb | Stosw | Stosd | Stosq => {
            store(cpu.gpr[7], cpu.gpr[0], size);
            cpu.gpr[7] = cpu.gpr[7].wrapping_add(step);
        }
        Lodsb | Lodsw | Lodsd | Lodsq => {
            let v = load(cpu.gpr[6], size);
            write_gpr(&mut Live::new(cpu), acc(size), v);
            cpu.gpr[6] = cpu.gpr[6].wrapping_add(step);
        }
        _ => {
            let (a, b) = if matches!(m, Cmpsb | Cmpsw | Cmpsd | Cmpsq) {
                let a = load(cpu.gpr[6], size);
                let b = load(cpu.gpr[7], size);
                cpu.gpr[6] = cpu.gpr[6].wrapping_add(step);
                (a, b)
            } else {
                (cpu.gpr[0] & size_mask(size), load(cpu.gpr[7], size))
            };
            cpu.gpr[7] = cpu.gpr[7].wrapping_add(step);
            super::super::alu(&mut Live::new(cpu), Cmp, size, a, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::decoded;

    #[test]
    fn a_compact_word_names_the_instruction_it_was_made_of() {
        let forms: [&[u8]; 12] = [
            &[0xa4],             // movsb
            &[0x66, 0xa5],       // movsw
            &[0xf3, 0xa5],       // rep movsd
            &[0xf3, 0x48, 0xa5], // rep movsq
            &[0xf3, 0xaa],       // rep stosb
            &[0xf3, 0x48, 0xab], // rep stosq
            &[0xac],             // lodsb
            &[0x48, 0xad],       // lodsq
            &[0xf3, 0xa6],       // repe cmpsb
            &[0xf2, 0x48, 0xa7], // repne cmpsq
            &[0xf2, 0xae],       // repne scasb
            &[0x66, 0xaf],       // scasw
        ];
        for bytes in forms {
            let ins = decoded(bytes);
            let op = Compact::of(&ins).unwrap_or_else(|| panic!("{ins} has a compact form"));
            assert_eq!(op.mnemonic(), ins.mnemonic(), "{ins}");
            assert_eq!(
                (op.rep, op.repne),
                (ins.has_rep_prefix(), ins.has_repne_prefix()),
                "{ins}"
            );
            assert_eq!(op.len, bytes.len() as u64, "{ins}");
            assert_eq!(Compact::from_word(op.word()), Some(op), "{ins}");
        }
    }

    #[test]
    fn only_plain_string_instructions_with_64_bit_addresses_have_a_compact_form() {
        let others: [&[u8]; 6] = [
            &[0x67, 0xf3, 0x48, 0xab],       // rep stosq with 32-bit addresses
            &[0x67, 0xac],                   // lodsb [esi]
            &[0x64, 0xa4],                   // movsb from fs:
            &[0xf2, 0x0f, 0x10, 0xc1],       // movsd xmm0, xmm1 (SSE2)
            &[0xf2, 0x0f, 0xc2, 0xc1, 0x00], // cmpsd xmm0, xmm1, 0 (SSE2)
            &[0x48, 0x01, 0xc8],             // add rax, rcx
        ];
        for bytes in others {
            let ins = decoded(bytes);
            assert_eq!(Compact::of(&ins), None, "{ins}");
        }
    }

    #[test]
    fn words_that_are_not_compact_ones_name_nothing() {
        // 0 (no record), a record's stack address, an index past the mnemonics, stray bits.
        for w in [0, 0x7ffd_1234_5670, COMPACT | 20, COMPACT | 1 << 10, COMPACT | 1 << 40] {
            assert_eq!(Compact::from_word(w), None, "{w:#x}");
        }
    }
}
