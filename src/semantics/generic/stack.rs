//! The stack instructions: push, pop and leave, and the push/pop steps call and ret share.

use crate::cpu::ops::Bin;
use crate::semantics::emitter::Emitter;
use crate::semantics::insn::Insn;
use crate::semantics::operand::{read_op, write_op};

pub(super) const RSP: usize = 4;
const RBP: usize = 5;

#[inline(always)]
pub(super) fn push<E: Emitter>(e: &mut E, v: E::V) {
    let sp = e.get_reg(RSP);
    let eight = e.imm(8);
    let nsp = e.bin(Bin::Sub, sp, eight);
    e.store(nsp, v, 8);
    e.set_reg(RSP, nsp);
}

#[inline(always)]
pub(super) fn pop<E: Emitter>(e: &mut E) -> E::V {
    let sp = e.get_reg(RSP);
    let v = e.load(sp, 8);
    let eight = e.imm(8);
    let nsp = e.bin(Bin::Add, sp, eight);
    e.set_reg(RSP, nsp);
    v
}

#[inline(always)]
pub(super) fn push_op<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let v = read_op(e, ins, 0, 8).expect("checked operand");
    push(e, v);
}

#[inline(always)]
pub(super) fn pop_op<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let v = pop(e);
    write_op(e, ins, 0, 8, v, None);
}

#[inline(always)]
pub(super) fn leave<E: Emitter>(e: &mut E) {
    // The load comes first: if it faults, no register has changed.
    let bp = e.get_reg(RBP);
    let v = e.load(bp, 8);
    let eight = e.imm(8);
    let nsp = e.bin(Bin::Add, bp, eight);
    e.set_reg(RSP, nsp);
    e.set_reg(RBP, v);
}
