//! String instructions (movs, stos, lods, cmps, scas) with their rep/repe/repne prefixes, over
//! concrete state: one element per step, rsi/rdi moving by the direction flag, rcx counting;
//! a forward rep movs or rep stos a page of elements per step (`bulk_forward`).

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

pub(super) fn exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let m = ins.mnemonic();
    let size = element_size(m).ok_or(fault::UNIMPLEMENTED)?;
    let rep = ins.has_rep_prefix() || ins.has_repne_prefix();
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
            if (ins.has_rep_prefix() && !z) || (ins.has_repne_prefix() && z) {
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
