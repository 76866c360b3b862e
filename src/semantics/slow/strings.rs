//! String instructions (movs, stos, lods, cmps, scas) with their rep/repe/repne prefixes, over
//! concrete state: one element per step, rsi/rdi moving by the direction flag, rcx counting.

use super::super::concrete::{load, store, Live};
use super::super::operand::write_gpr;
use super::acc;
use crate::cpu::flags::{cpu_cond, size_mask, Cc};
use crate::cpu::{fault, Cpu};
use crate::mem::host;
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
    use Mnemonic::*;
    let m = ins.mnemonic();
    let size = element_size(m).ok_or(fault::UNIMPLEMENTED)?;
    let rep = ins.has_rep_prefix() || ins.has_repne_prefix();
    let step = if cpu.df != 0 {
        (size as u64).wrapping_neg()
    } else {
        size as u64
    };
    let is_cmp = is_compare(m);
    if rep && !is_cmp && cpu.df == 0 && matches!(m, Movsb | Stosb) && bulk_forward(cpu, m) {
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

/// rep movsb / rep stosb forward as one host copy or fill when the ranges do not overlap;
/// false (nothing done) otherwise.
fn bulk_forward(cpu: &mut Cpu, m: Mnemonic) -> bool {
    let n = cpu.gpr[1];
    let (src, dst) = (cpu.gpr[6], cpu.gpr[7]);
    let inside = |a: u64| a.checked_add(n).is_some_and(|e| e <= crate::mem::GUEST_SPACE);
    let ok = inside(dst) && (m == Mnemonic::Stosb || inside(src));
    if !(ok && (m == Mnemonic::Stosb || src.checked_add(n).is_some_and(|e| e <= dst || dst + n <= src))) {
        return false;
    }
    let d = host(dst);
    // SAFETY: both ranges lie inside the reservation (checked); unmapped pages fault
    // as the guest's own access would.
    unsafe {
        if m == Mnemonic::Stosb {
            std::ptr::write_bytes(d, cpu.gpr[0] as u8, n as usize);
        } else {
            std::ptr::copy_nonoverlapping(host(src), d, n as usize);
            cpu.gpr[6] = src + n;
        }
    }
    cpu.gpr[7] = dst + n;
    cpu.gpr[1] = 0;
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
