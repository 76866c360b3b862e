//! `rep stos` and `rep movs` that run forward within one guest page, written over the
//! `Emitter` (`Emitter::repeat_store`, `Emitter::repeat_copy`) so that compiled code runs them
//! inline: the short fills and copies compilers emit for structures, which through the slow
//! helper cost a call each. Within one page a fault can only come at the first access to it
//! (an unmapped or read-only page faults there), before anything changed, so running the
//! instruction again from the last checkpoint, as after any fault, is exact. Any other case
//! (the direction flag set, a range that leaves its page, more than `MOST_ELEMENTS` elements)
//! goes to the slow path (`slow::strings`, which runs a page at a time) through
//! `Emitter::slow_unless`; so do the other string instructions and forms (32-bit addresses, a
//! segment prefix, repne).

use super::emitter::Emitter;
use super::slow::strings::Compact;
use crate::cpu::ops::{Bin, Cmp};
use crate::mem::PAGE;
use iced_x86::{Instruction, Mnemonic};
use Mnemonic::*;

/// The most elements run here: an element at a time, compiled code beats the slow helper's
/// call on short runs, and its page-sized host copies and fills on long ones.
const MOST_ELEMENTS: u64 = 64;

/// The element size of a stos or movs mnemonic, and whether it copies.
fn element(m: Mnemonic) -> Option<(u8, bool)> {
    Some(match m {
        Stosb => (1, false),
        Stosw => (2, false),
        Stosd => (4, false),
        Stosq => (8, false),
        Movsb => (1, true),
        Movsw => (2, true),
        Movsd => (4, true),
        Movsq => (8, true),
        _ => return None,
    })
}

/// Whether `ins` is a `rep stos` or `rep movs` this module runs: with 64-bit addresses and no
/// segment prefix (the forms `Compact` names), rep and not repne.
pub fn supported(ins: &Instruction) -> bool {
    element(ins.mnemonic()).is_some() && Compact::of(ins).is_some() && ins.has_rep_prefix() && !ins.has_repne_prefix()
}

/// Runs (or emits) one instruction `supported` admits: rcx elements from rdi up (and from rsi
/// up, for movs), then rdi (and rsi) past them and rcx zero.
pub fn exec<E: Emitter>(e: &mut E, ins: &Instruction) {
    let (size, copy) = element(ins.mnemonic()).expect("checked mnemonic");
    let count = e.get_reg(1);
    let dst = e.get_reg(7);
    let src = copy.then(|| e.get_reg(6));
    let most = e.imm(MOST_ELEMENTS);
    let small = e.cmp(Cmp::Ule, count, most);
    let shift = e.imm(u64::from(size.trailing_zeros()));
    let bytes = e.bin(Bin::Shl, count, shift);
    let forward = {
        let df = e.direction();
        let z = e.imm(0);
        e.cmp(Cmp::Eq, df, z)
    };
    let mut ok = e.bin(Bin::And, small, forward);
    let on_page = on_one_page(e, dst, bytes);
    ok = e.bin(Bin::And, ok, on_page);
    if let Some(src) = src {
        let on_page = on_one_page(e, src, bytes);
        ok = e.bin(Bin::And, ok, on_page);
    }
    if !e.slow_unless(ok, ins) {
        return;
    }
    if let Some(src) = src {
        e.repeat_copy(dst, src, count, size);
        let next = e.bin(Bin::Add, src, bytes);
        e.set_reg(6, next);
    } else {
        let v = e.get_reg(0);
        e.repeat_store(dst, v, count, size);
    }
    let next = e.bin(Bin::Add, dst, bytes);
    e.set_reg(7, next);
    let z = e.imm(0);
    e.set_reg(1, z);
}

/// Whether `bytes` (far less than a page) from `addr` lie on `addr`'s page.
fn on_one_page<E: Emitter>(e: &mut E, addr: E::V, bytes: E::V) -> E::V {
    let m = e.imm(PAGE - 1);
    let within = e.bin(Bin::And, addr, m);
    let end = e.bin(Bin::Add, within, bytes);
    let page = e.imm(PAGE);
    e.cmp(Cmp::Ule, end, page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::decoded;

    #[test]
    fn rep_stos_and_rep_movs_with_64_bit_addresses_run_here_and_no_other_string_form() {
        let here: &[&[u8]] = &[
            &[0xf3, 0xaa],       // rep stosb
            &[0xf3, 0x66, 0xab], // rep stosw
            &[0xf3, 0xab],       // rep stosd
            &[0xf3, 0x48, 0xab], // rep stosq
            &[0xf3, 0xa4],       // rep movsb
            &[0xf3, 0x48, 0xa5], // rep movsq
        ];
        for bytes in here {
            let ins = decoded(bytes);
            assert!(supported(&ins), "{ins} runs here");
        }
        let elsewhere: &[&[u8]] = &[
            &[0x48, 0xab],             // stosq (no rep)
            &[0xf2, 0x48, 0xab],       // repne stosq
            &[0x67, 0xf3, 0x48, 0xab], // rep stosq with 32-bit addresses
            &[0xf3, 0x64, 0xa4],       // rep movsb from fs:
            &[0xf3, 0xac],             // rep lodsb
            &[0xf3, 0xa6],             // repe cmpsb
            &[0xf2, 0x0f, 0x10, 0xc1], // movsd xmm0, xmm1 (SSE2)
        ];
        for bytes in elsewhere {
            let ins = decoded(bytes);
            assert!(!supported(&ins), "{ins} runs elsewhere");
        }
    }
}
