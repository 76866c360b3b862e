//! General-register extensions outside BMI: MOVBE (a byte-swapping move) and CMPXCHG16B.

use super::super::concrete::{load, store, Live};
use super::super::operand::{ea, op_size, read_op, write_op};
use crate::cpu::flags::{rflags, store_raw_flags};
use crate::cpu::{fault, rflags as rf, Cpu};
use iced_x86::{Code, Instruction};

pub(super) fn movbe(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let size = op_size(ins, 0);
    let v = read_op(&mut Live::new(cpu), ins, 1, size).ok_or(fault::UNIMPLEMENTED)?;
    let r = match size {
        2 => (v as u16).swap_bytes() as u64,
        4 => (v as u32).swap_bytes() as u64,
        _ => v.swap_bytes(),
    };
    write_op(&mut Live::new(cpu), ins, 0, size, r, None);
    Ok(())
}

/// cmpxchg16b m128: compare rdx:rax with the memory; equal: store rcx:rbx and set ZF, else
/// load it into rdx:rax and clear ZF. Atomic with respect to every other cmpxchg16b.
pub(super) fn cmpxchg16b(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    if ins.code() != Code::Cmpxchg16b_m128 {
        return Err(fault::UNIMPLEMENTED);
    }
    let a = ea(&mut Live::new(cpu), ins);
    if !a.is_multiple_of(16) {
        // The hardware raises #GP for a misaligned operand.
        cpu.fault_addr = 0;
        return Err(fault::GP);
    }
    // Touch the operand first: a fault must not happen while the lock is held.
    let _ = (load(a, 8), load(a + 8, 8));
    let _g = super::super::atomic::wide_lock();
    let lo = load(a, 8);
    let hi = load(a + 8, 8);
    let mut f = rflags(cpu) & rf::ARITH;
    if lo == cpu.gpr[0] && hi == cpu.gpr[2] {
        store(a, cpu.gpr[3], 8);
        store(a + 8, cpu.gpr[1], 8);
        f |= rf::ZF;
    } else {
        // The hardware writes the old value back (the access is always a write).
        store(a, lo, 8);
        store(a + 8, hi, 8);
        cpu.gpr[0] = lo;
        cpu.gpr[2] = hi;
        f &= !rf::ZF;
    }
    store_raw_flags(cpu, f);
    Ok(())
}
