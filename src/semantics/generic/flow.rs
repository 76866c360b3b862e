//! Control flow: call, ret, jmp and jrcxz/jecxz (jcc is with the other condition readers).

use super::stack::{pop, push, RSP};
use crate::cpu::flags::zext;
use crate::cpu::ops::{Bin, Cmp};
use crate::semantics::emitter::Emitter;
use crate::semantics::insn::{Insn, Operand};
use crate::semantics::operand::read_op;
use iced_x86::Mnemonic;

/// The target of a near call or jump: the decoded branch target or the register/memory operand.
#[inline(always)]
fn target<E: Emitter, I: Insn>(e: &mut E, ins: &I) -> E::V {
    match ins.operand(0) {
        Operand::Branch(t) => e.code_addr(t),
        _ => read_op(e, ins, 0, 8).expect("checked operand"),
    }
}

#[inline(always)]
pub(super) fn call<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let target = target(e, ins);
    let ret = e.code_addr(ins.next_ip());
    push(e, ret);
    e.jump(target);
}

#[inline(always)]
pub(super) fn ret<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let t = pop(e);
    if let Operand::Imm(bytes) = ins.operand(0) {
        let sp = e.get_reg(RSP);
        let n = e.imm(bytes);
        let nsp = e.bin(Bin::Add, sp, n);
        e.set_reg(RSP, nsp);
    }
    e.jump(t);
}

#[inline(always)]
pub(super) fn jmp<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let target = target(e, ins);
    e.jump(target);
}

#[inline(always)]
pub(super) fn jump_if_cx_zero<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let z = e.imm(0);
    let c = e.get_reg(1);
    let c = if ins.mnemonic() == Mnemonic::Jecxz {
        zext(e, c, 4)
    } else {
        c
    };
    let is0 = e.cmp(Cmp::Eq, c, z);
    e.branch(is0, ins.near_branch_target(), ins.next_ip());
}
