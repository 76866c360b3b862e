//! Exchanging read-modify-writes without a lock prefix: xadd and cmpxchg (the locked forms go
//! to `atomic`).

use super::super::concrete::Live;
use super::super::operand::{op_size, read_op, read_rmw, write_gpr, write_op};
use super::acc;
use crate::cpu::flags::size_mask;
use crate::cpu::{fault, Cpu};
use iced_x86::{Instruction, Mnemonic};

const BAD: u64 = fault::UNIMPLEMENTED;

pub(super) fn xadd(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let size = op_size(ins, 0);
    let mut e = Live::new(cpu);
    let (d, a) = read_rmw(&mut e, ins, 0, size).ok_or(BAD)?;
    let s = read_op(&mut e, ins, 1, size).ok_or(BAD)?;
    let r = super::super::alu(&mut e, Mnemonic::Add, size, d, s);
    write_op(&mut e, ins, 1, size, d, None).ok_or(BAD)?;
    write_op(&mut e, ins, 0, size, r, a).ok_or(BAD)?;
    Ok(())
}

pub(super) fn cmpxchg(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let size = op_size(ins, 0);
    let mut e = Live::new(cpu);
    let (d, a) = read_rmw(&mut e, ins, 0, size).ok_or(BAD)?;
    let s = read_op(&mut e, ins, 1, size).ok_or(BAD)?;
    let ax = e.cpu.gpr[0] & size_mask(size);
    super::super::alu(&mut e, Mnemonic::Cmp, size, ax, d);
    if ax == d {
        write_op(&mut e, ins, 0, size, s, a).ok_or(BAD)?;
    } else {
        if a.is_some() {
            // The destination is always written (locked read-modify-write).
            write_op(&mut e, ins, 0, size, d, a).ok_or(BAD)?;
        }
        write_gpr(&mut e, acc(size), d);
    }
    Ok(())
}
