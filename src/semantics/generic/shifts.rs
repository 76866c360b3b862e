//! Shifts (shl/sal, shr, sar) and rotates (rol, ror) over the Emitter.

use super::{set_flags, set_raw_flags};
use crate::cpu::flags::{self, sext, zext, Flags};
use crate::cpu::ops::{Bin, Cmp};
use crate::cpu::FlagKind;
use crate::semantics::emitter::Emitter;
use crate::semantics::insn::{Insn, Operand};
use crate::semantics::operand::{op_size, read_rmw, write_op, write_zero_count_result};
use iced_x86::Mnemonic;

/// The count mask of an operand of `size` bytes (counts are taken modulo 64 or 32).
fn count_mask(size: u8) -> u64 {
    if size == 8 {
        63
    } else {
        31
    }
}

/// The count when it is fixed at decode (the one-operand form or an immediate), masked.
#[inline(always)]
fn fixed_count<I: Insn>(ins: &I, size: u8) -> Option<u64> {
    match ins.operand(1) {
        _ if ins.op_count() == 1 => Some(1),
        Operand::Imm(c) => Some(c & count_mask(size)),
        _ => None,
    }
}

/// cl masked to the operand's count width.
#[inline(always)]
fn cl_count<E: Emitter>(e: &mut E, size: u8) -> E::V {
    let cl = e.get_reg(1);
    let m = e.imm(count_mask(size));
    e.bin(Bin::And, cl, m)
}

/// `a` shifted by `c` as `kind` says, masked to `size`.
#[inline(always)]
fn shifted<E: Emitter>(e: &mut E, kind: FlagKind, size: u8, a: E::V, c: E::V) -> E::V {
    match kind {
        FlagKind::Shl => {
            let r = e.bin(Bin::Shl, a, c);
            zext(e, r, size)
        }
        FlagKind::Shr => e.bin(Bin::Shr, a, c),
        _ => {
            let s = sext(e, a, size);
            let r = e.bin(Bin::Sar, s, c);
            zext(e, r, size)
        }
    }
}

#[inline(always)]
pub(super) fn shift<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let size = op_size(ins, 0);
    let (a, addr) = read_rmw(e, ins, 0, size).expect("checked operand");
    let kind = match ins.mnemonic() {
        Mnemonic::Shr => FlagKind::Shr,
        Mnemonic::Sar => FlagKind::Sar,
        _ => FlagKind::Shl,
    };
    let z = e.imm(0);
    if let Some(c) = fixed_count(ins, size) {
        if c == 0 {
            write_zero_count_result(e, ins, size, a, addr);
            return;
        }
        // c is already masked to the operand's count width (at most 63).
        let cv = e.imm(c);
        let r = shifted(e, kind, size, a, cv);
        write_op(e, ins, 0, size, r, addr);
        set_flags(e, kind, size, r, a, cv, z);
        return;
    }
    // Count in CL: a zero count leaves the flags untouched.
    let c = cl_count(e, size);
    let r = shifted(e, kind, size, a, c);
    write_op(e, ins, 0, size, r, addr);
    if !e.flags_needed() {
        return;
    }
    let old = e.rflags();
    let newf = Flags {
        kind,
        size,
        res: r,
        a,
        b: c,
        aux: z,
    };
    let new = flags::materialize(e, &newf);
    let is0 = e.cmp(Cmp::Eq, c, z);
    let f = e.select(is0, old, new);
    set_raw_flags(e, f);
}

#[inline(always)]
fn bit<E: Emitter>(e: &mut E, v: E::V, n: u64) -> E::V {
    let s = e.imm(n);
    let t = e.bin(Bin::Shr, v, s);
    let one = e.imm(1);
    e.bin(Bin::And, t, one)
}

/// rol/ror: only CF and OF change (OF is defined for a count of 1); a zero count changes nothing.
#[inline(always)]
pub(super) fn rotate<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let size = op_size(ins, 0);
    let (a, addr) = read_rmw(e, ins, 0, size).expect("checked operand");
    let fixed = fixed_count(ins, size);
    let c = match fixed {
        Some(c) => e.imm(c),
        None => cl_count(e, size),
    };
    if fixed == Some(0) {
        write_zero_count_result(e, ins, size, a, addr);
        return;
    }
    let rol = ins.mnemonic() == Mnemonic::Rol;
    let bits = size as u64 * 8;
    let wm = e.imm(bits - 1);
    let amt = e.bin(Bin::And, c, wm);
    let r = e.rotate(rol, size, a, amt);
    write_op(e, ins, 0, size, r, addr);
    if e.flags_needed() {
        rotate_flags(e, rol, size, r, c, fixed.is_none());
    }
}

/// CF and OF of a rotate's result `r`; a count in cl (`count_in_cl`) of zero keeps the flags.
#[inline(always)]
fn rotate_flags<E: Emitter>(e: &mut E, rol: bool, size: u8, r: E::V, c: E::V, count_in_cl: bool) {
    let bits = size as u64 * 8;
    // A zero count in cl keeps every flag; else only the others are kept.
    let old = match count_in_cl {
        true => e.rflags(),
        false => super::kept_flags(e, crate::cpu::rflags::CF | crate::cpu::rflags::OF),
    };
    let msb = bit(e, r, bits - 1);
    let (cf, of) = if rol {
        let cf = bit(e, r, 0);
        (cf, e.bin(Bin::Xor, msb, cf))
    } else {
        let nxt = bit(e, r, bits - 2);
        (msb, e.bin(Bin::Xor, msb, nxt))
    };
    let keep = e.imm(!(crate::cpu::rflags::CF | crate::cpu::rflags::OF));
    let kept = e.bin(Bin::And, old, keep);
    let eleven = e.imm(11);
    let ofs = e.bin(Bin::Shl, of, eleven);
    let t = e.bin(Bin::Or, kept, cf);
    let mut new = e.bin(Bin::Or, t, ofs);
    if count_in_cl {
        let z = e.imm(0);
        let is0 = e.cmp(Cmp::Eq, c, z);
        new = e.select(is0, old, new);
    }
    set_raw_flags(e, new);
}
