//! mul and imul: the one-operand widening forms (rdx:rax = rax * src) and imul's two- and
//! three-operand truncating forms.

use super::moves::{accumulator, data_register};
use super::set_flags;
use crate::cpu::flags::{sext, zext};
use crate::cpu::ops::{Bin, Cmp};
use crate::cpu::FlagKind;
use crate::semantics::emitter::Emitter;
use crate::semantics::insn::Insn;
use crate::semantics::operand::{op_size, read_op, write_gpr, write_op};
use iced_x86::Mnemonic;

pub(super) fn multiply<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    if ins.op_count() == 1 {
        widening_mul(e, ins)
    } else {
        truncating_imul(e, ins)
    }
}

/// The low and high halves of `a * src` at `size` bytes, and whether the high half is
/// significant (CF and OF).
fn widening_product<E: Emitter>(e: &mut E, signed: bool, size: u8, a: E::V, src: E::V) -> (E::V, E::V, E::V) {
    if size == 8 {
        let lo = e.bin(Bin::Mul, a, src);
        let hi = e.bin(if signed { Bin::SMulHi } else { Bin::UMulHi }, a, src);
        let ext = if signed {
            let s = e.imm(63);
            e.bin(Bin::Sar, lo, s)
        } else {
            e.imm(0)
        };
        let over = e.cmp(Cmp::Ne, hi, ext);
        return (lo, hi, over);
    }
    let (x, y) = if signed {
        (sext(e, a, size), sext(e, src, size))
    } else {
        (a, src)
    };
    let full = e.bin(Bin::Mul, x, y);
    let lo = zext(e, full, size);
    let sh = e.imm(size as u64 * 8);
    let h = e.bin(Bin::Shr, full, sh);
    let hi = zext(e, h, size);
    let over = if signed {
        let t = sext(e, lo, size);
        e.cmp(Cmp::Ne, t, full)
    } else {
        let z = e.imm(0);
        e.cmp(Cmp::Ne, hi, z)
    };
    (lo, hi, over)
}

/// One-operand mul/imul: rdx:rax (or ax) = rax * src.
fn widening_mul<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let size = op_size(ins, 0);
    let signed = ins.mnemonic() == Mnemonic::Imul;
    let src = read_op(e, ins, 0, size).expect("checked operand");
    let rax = e.get_reg(0);
    let a = zext(e, rax, size);
    let (lo, hi, over) = widening_product(e, signed, size, a, src);
    if size == 1 {
        let s = e.imm(8);
        let h = e.bin(Bin::Shl, hi, s);
        let ax = e.bin(Bin::Or, h, lo);
        write_gpr(e, accumulator(2), ax);
    } else {
        write_gpr(e, accumulator(size), lo);
        write_gpr(e, data_register(size), hi);
    }
    let z = e.imm(0);
    set_flags(e, FlagKind::Mul, size, lo, z, z, over);
}

/// Two- and three-operand imul: the destination gets the truncated signed product.
fn truncating_imul<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let size = op_size(ins, 0);
    let first = if ins.op_count() == 3 { 1 } else { 0 };
    let a = read_op(e, ins, first, size).expect("checked operand");
    let b = read_op(e, ins, first + 1, size).expect("checked operand");
    let sa = sext(e, a, size);
    let sb = sext(e, b, size);
    let full = e.bin(Bin::Mul, sa, sb);
    let over = if size == 8 {
        let hi = e.bin(Bin::SMulHi, sa, sb);
        let s = e.imm(63);
        let sign = e.bin(Bin::Sar, full, s);
        e.cmp(Cmp::Ne, hi, sign)
    } else {
        let t = sext(e, full, size);
        e.cmp(Cmp::Ne, t, full)
    };
    let r = zext(e, full, size);
    write_op(e, ins, 0, size, r, None);
    let z = e.imm(0);
    set_flags(e, FlagKind::Mul, size, r, z, z, over);
}
