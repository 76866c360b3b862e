//! div and idiv: the double-width dividend in rdx:rax (ax for bytes) divided by the operand,
//! the quotient to rax (al) and the remainder to rdx (ah). The common case runs here: a
//! dividend that fits in 64 bits (for 64-bit operands, rdx only extending rax), a non-zero
//! divisor and a quotient in range. The rest (#DE included) goes to the slow path. The flags
//! stay as they were, as the CPU leaves them.

use super::moves::{accumulator, data_register};
use crate::cpu::flags::{sext, size_mask, zext};
use crate::cpu::ops::{Bin, Cmp};
use crate::semantics::emitter::Emitter;
use crate::semantics::insn::Insn;
use crate::semantics::operand::{op_size, read_op, write_gpr};
use iced_x86::Mnemonic;

pub(super) fn divide<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let size = op_size(ins, 0);
    let signed = ins.mnemonic() == Mnemonic::Idiv;
    let src = read_op(e, ins, 0, size).expect("checked operand");
    let (n, fits) = dividend(e, size, signed);
    let d = if signed { sext(e, src, size) } else { src };
    let z = e.imm(0);
    let zero = e.cmp(Cmp::Eq, d, z);
    let ones = e.imm(u64::MAX);
    let minus_one = if signed { e.cmp(Cmp::Eq, d, ones) } else { z };
    // Divided by a divisor that is neither 0 nor -1 (no host trap); -1 negates.
    let awkward = e.bin(Bin::Or, zero, minus_one);
    let one = e.imm(1);
    let safe = e.select(awkward, one, d);
    let (q, r) = if signed {
        let q = e.bin(Bin::SDiv, n, safe);
        let r = e.bin(Bin::SRem, n, safe);
        let neg = e.bin(Bin::Sub, z, n);
        (e.select(minus_one, neg, q), e.select(minus_one, z, r))
    } else {
        (e.bin(Bin::UDiv, n, safe), e.bin(Bin::URem, n, safe))
    };
    let in_range = if signed {
        // i64::MIN / -1 wraps to itself, which fits 64 bits but is out of range.
        let min = e.imm(1 << 63);
        let is_min = e.cmp(Cmp::Eq, n, min);
        let wraps = e.bin(Bin::And, is_min, minus_one);
        let t = sext(e, q, size);
        let fits = e.cmp(Cmp::Eq, t, q);
        e.select(wraps, z, fits)
    } else {
        let mask = e.imm(size_mask(size));
        e.cmp(Cmp::Ule, q, mask)
    };
    let nonzero = e.cmp(Cmp::Ne, d, z);
    let ok = e.bin(Bin::And, fits, nonzero);
    let ok = e.bin(Bin::And, ok, in_range);
    if !e.slow_unless(ok, ins.iced()) {
        return;
    }
    if size == 1 {
        let q = zext(e, q, 1);
        let r = zext(e, r, 1);
        let s = e.imm(8);
        let h = e.bin(Bin::Shl, r, s);
        let ax = e.bin(Bin::Or, h, q);
        write_gpr(e, accumulator(2), ax);
    } else {
        let q = zext(e, q, size);
        let r = zext(e, r, size);
        write_gpr(e, accumulator(size), q);
        write_gpr(e, data_register(size), r);
    }
}

/// The dividend as one 64-bit value (sign-extended for idiv), and whether it is the whole
/// dividend (always, below 64-bit operands).
fn dividend<E: Emitter>(e: &mut E, size: u8, signed: bool) -> (E::V, E::V) {
    let rax = e.get_reg(0);
    if size == 8 {
        let rdx = e.get_reg(2);
        let ext = if signed {
            let s = e.imm(63);
            e.bin(Bin::Sar, rax, s)
        } else {
            e.imm(0)
        };
        return (rax, e.cmp(Cmp::Eq, rdx, ext));
    }
    let n = if size == 1 {
        zext(e, rax, 2)
    } else {
        let lo = zext(e, rax, size);
        let rdx = e.get_reg(2);
        let hi = zext(e, rdx, size);
        let s = e.imm(size as u64 * 8);
        let h = e.bin(Bin::Shl, hi, s);
        e.bin(Bin::Or, h, lo)
    };
    let n = if signed { sext(e, n, size * 2) } else { n };
    (n, e.imm(1))
}
