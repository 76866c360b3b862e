//! Data movement: mov, movzx, movsx(d), lea, xchg, bswap, and the accumulator sign extensions
//! (cbw/cwde/cdqe, cwd/cdq/cqo).

use crate::cpu::flags::sext;
use crate::cpu::ops::{Bin, Un};
use crate::semantics::emitter::Emitter;
use crate::semantics::insn::Insn;
use crate::semantics::operand::{ea_no_seg, op_size, read_op, read_rmw, write_gpr, write_op, Gpr};

#[inline(always)]
pub(super) fn mov<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let size = op_size(ins, 0);
    let v = read_op(e, ins, 1, size).expect("checked operand");
    write_op(e, ins, 0, size, v, None);
}

#[inline(always)]
pub(super) fn movzx<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let v = read_op(e, ins, 1, op_size(ins, 1)).expect("checked operand");
    write_op(e, ins, 0, op_size(ins, 0), v, None);
}

#[inline(always)]
pub(super) fn movsx<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let s = op_size(ins, 1);
    let v = read_op(e, ins, 1, s).expect("checked operand");
    let v = sext(e, v, s);
    write_op(e, ins, 0, op_size(ins, 0), v, None);
}

#[inline(always)]
pub(super) fn lea<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let a = ea_no_seg(e, ins);
    write_op(e, ins, 0, op_size(ins, 0), a, None);
}

#[inline(always)]
pub(super) fn xchg<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let size = op_size(ins, 0);
    let (a, addr0) = read_rmw(e, ins, 0, size).expect("checked operand");
    let (b, addr1) = read_rmw(e, ins, 1, size).expect("checked operand");
    write_op(e, ins, 0, size, b, addr0);
    write_op(e, ins, 1, size, a, addr1);
}

#[inline(always)]
pub(super) fn bswap<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let size = op_size(ins, 0);
    let a = read_op(e, ins, 0, size).expect("checked operand");
    let r = e.un(Un::Bswap64, a);
    let r = if size == 4 {
        let s = e.imm(32);
        e.bin(Bin::Shr, r, s)
    } else {
        r
    };
    write_op(e, ins, 0, size, r, None);
}

/// The accumulator (rax) or rdx at `size` bytes.
fn reg(idx: u8, size: u8) -> Gpr {
    Gpr {
        idx,
        size,
        high8: false,
    }
}

/// cbw/cwde/cdqe: the accumulator's low `n` bytes sign-extended into its low `2n` bytes.
#[inline(always)]
pub(super) fn widen_accumulator<E: Emitter>(e: &mut E, n: u8) {
    let a = e.get_reg(0);
    let v = sext(e, a, n);
    write_gpr(e, reg(0, n * 2), v);
}

/// cwd/cdq/cqo: rdx's low `n` bytes all set to the sign of the accumulator's low `n` bytes.
#[inline(always)]
pub(super) fn sign_into_dx<E: Emitter>(e: &mut E, n: u8) {
    let a = e.get_reg(0);
    let v = sext(e, a, n);
    let sh = e.imm(63);
    let hi = e.bin(Bin::Sar, v, sh);
    write_gpr(e, reg(2, n), hi);
}

/// rax (or ax) and rdx at `size` bytes, for the widening multiply.
pub(super) fn accumulator(size: u8) -> Gpr {
    reg(0, size)
}

pub(super) fn data_register(size: u8) -> Gpr {
    reg(2, size)
}
