//! Two-operand ALU instructions (add, or, adc, sbb, and, sub, xor, cmp, test), inc/dec, neg,
//! not, and the carry-flag instructions.

use super::{set_flags, update_flags, CarryOp};
use crate::cpu::flags::{zext, Cc};
use crate::cpu::ops::{Bin, Un};
use crate::cpu::{rflags, FlagKind};
use crate::semantics::emitter::Emitter;
use crate::semantics::insn::Insn;
use crate::semantics::operand::{op_size, read_op, read_rmw, same_gpr, write_op};
use iced_x86::Mnemonic;

/// The ALU core of add/sub/and/... on operands already masked to `size`. Returns the result
/// (masked) and records flags.
#[inline(always)]
pub fn alu<E: Emitter>(e: &mut E, m: Mnemonic, size: u8, a: E::V, b: E::V) -> E::V {
    match m {
        Mnemonic::Add => arithmetic(e, Bin::Add, FlagKind::Add, size, a, b),
        Mnemonic::Sub | Mnemonic::Cmp => arithmetic(e, Bin::Sub, FlagKind::Sub, size, a, b),
        Mnemonic::Adc => with_carry(e, Bin::Add, FlagKind::Adc, size, a, b),
        Mnemonic::Sbb => with_carry(e, Bin::Sub, FlagKind::Sbb, size, a, b),
        _ => {
            let op = match m {
                Mnemonic::And | Mnemonic::Test => Bin::And,
                Mnemonic::Or => Bin::Or,
                _ => Bin::Xor,
            };
            let z = e.imm(0);
            let r = e.bin(op, a, b);
            set_flags(e, FlagKind::Logic, size, r, z, z, z);
            r
        }
    }
}

/// add/sub: `a op b`, masked, with flags of `kind`.
#[inline(always)]
fn arithmetic<E: Emitter>(e: &mut E, op: Bin, kind: FlagKind, size: u8, a: E::V, b: E::V) -> E::V {
    let z = e.imm(0);
    let r = e.bin(op, a, b);
    let r = zext(e, r, size);
    set_flags(e, kind, size, r, a, b, z);
    r
}

/// adc/sbb: `a op b op CF`, masked, with flags of `kind` (the carry in as aux).
#[inline(always)]
fn with_carry<E: Emitter>(e: &mut E, op: Bin, kind: FlagKind, size: u8, a: E::V, b: E::V) -> E::V {
    let c = e.cond(Cc::B);
    let t = e.bin(op, a, b);
    let r = e.bin(op, t, c);
    let r = zext(e, r, size);
    set_flags(e, kind, size, r, a, b, c);
    r
}

/// add/or/adc/sbb/and/sub/xor: the destination is read, combined and written back.
#[inline(always)]
pub(super) fn binary<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let size = op_size(ins, 0);
    if matches!(ins.mnemonic(), Mnemonic::Xor | Mnemonic::Sub | Mnemonic::Sbb) && same_gpr(ins) {
        // xor r, r and sub r, r give 0, sbb r, r gives -CF, with flags that depend on the
        // register's value nowhere (its bits cancel): it is not read, so nothing waits for it.
        let z = e.imm(0);
        let r = alu(e, ins.mnemonic(), size, z, z);
        write_op(e, ins, 0, size, r, None);
        return;
    }
    let (a, addr) = read_rmw(e, ins, 0, size).expect("checked operand");
    let b = read_op(e, ins, 1, size).expect("checked operand");
    let r = alu(e, ins.mnemonic(), size, a, b);
    write_op(e, ins, 0, size, r, addr);
}

/// cmp/test: flags only.
#[inline(always)]
pub(super) fn compare<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let size = op_size(ins, 0);
    let a = read_op(e, ins, 0, size).expect("checked operand");
    let b = read_op(e, ins, 1, size).expect("checked operand");
    alu(e, ins.mnemonic(), size, a, b);
}

/// inc/dec: CF is kept (carried as aux into the flag record). Where nothing reads the flags
/// it sets, the old CF is not computed either (it may take a helper call).
#[inline(always)]
pub(super) fn inc_dec<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let size = op_size(ins, 0);
    let (a, addr) = read_rmw(e, ins, 0, size).expect("checked operand");
    let r = inc_dec_of(e, ins.mnemonic() == Mnemonic::Inc, size, a);
    write_op(e, ins, 0, size, r, addr);
}

/// The ALU core of inc (where `inc`) or dec of `a`, masked to `size`: returns the result and records
/// its flags (CF kept, carried in as aux).
#[inline(always)]
pub fn inc_dec_of<E: Emitter>(e: &mut E, inc: bool, size: u8, a: E::V) -> E::V {
    let one = e.imm(1);
    let c = if e.flags_needed() { e.cond(Cc::B) } else { one };
    let (op, kind) = if inc {
        (Bin::Add, FlagKind::Inc)
    } else {
        (Bin::Sub, FlagKind::Dec)
    };
    let r = e.bin(op, a, one);
    let r = zext(e, r, size);
    set_flags(e, kind, size, r, a, one, c);
    r
}

#[inline(always)]
pub(super) fn neg<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let size = op_size(ins, 0);
    let z = e.imm(0);
    let (a, addr) = read_rmw(e, ins, 0, size).expect("checked operand");
    let r = alu(e, Mnemonic::Sub, size, z, a);
    write_op(e, ins, 0, size, r, addr);
}

#[inline(always)]
pub(super) fn not<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let size = op_size(ins, 0);
    let (a, addr) = read_rmw(e, ins, 0, size).expect("checked operand");
    let r = e.un(Un::Not, a);
    write_op(e, ins, 0, size, r, addr);
}

/// clc/stc/cmc.
#[inline(always)]
pub(super) fn carry<E: Emitter>(e: &mut E, op: CarryOp) {
    update_flags(e, rflags::CF, |e| match op {
        CarryOp::Clear => e.imm(0),
        CarryOp::Set => e.imm(1),
        CarryOp::Complement => {
            let (cf, one) = (e.cond(Cc::B), e.imm(1));
            e.bin(Bin::Xor, cf, one)
        }
    });
}
