//! Control flow: call, ret, jmp and jrcxz/jecxz (jcc is with the other condition readers).

use super::stack::{pop, push, RSP};
use crate::cpu::flags::zext;
use crate::cpu::ops::{Bin, Cmp};
use crate::semantics::emitter::Emitter;
use crate::semantics::operand::read_op;
use iced_x86::{Instruction, Mnemonic, OpKind};

/// The target of a near call or jump: the decoded branch target or the register/memory operand.
fn target<E: Emitter>(e: &mut E, ins: &Instruction) -> E::V {
    if ins.op_kind(0) == OpKind::NearBranch64 {
        e.code_addr(ins.near_branch_target())
    } else {
        read_op(e, ins, 0, 8).expect("checked operand")
    }
}

pub(super) fn call<E: Emitter>(e: &mut E, ins: &Instruction) {
    let target = target(e, ins);
    let ret = e.code_addr(ins.next_ip());
    push(e, ret);
    e.jump(target);
}

pub(super) fn ret<E: Emitter>(e: &mut E, ins: &Instruction) {
    let t = pop(e);
    if ins.op_count() == 1 {
        let sp = e.get_reg(RSP);
        let n = e.imm(ins.immediate(0));
        let nsp = e.bin(Bin::Add, sp, n);
        e.set_reg(RSP, nsp);
    }
    e.jump(t);
}

pub(super) fn jmp<E: Emitter>(e: &mut E, ins: &Instruction) {
    let target = target(e, ins);
    e.jump(target);
}

pub(super) fn jump_if_cx_zero<E: Emitter>(e: &mut E, ins: &Instruction) {
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
