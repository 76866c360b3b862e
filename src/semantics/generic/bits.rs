//! Bit tests (bt, bts, btr, btc) and bit scans and counts (bsf, bsr, tzcnt, lzcnt, popcnt).
//! Their flags are those the CPU leaves: a bit test changes only CF, bsf and bsr only ZF,
//! tzcnt and lzcnt CF and ZF, the others keeping their values (read from the current flags
//! only where a later instruction reads them); popcnt clears all but ZF.

use super::{set_raw_flags, update_flags};
use crate::cpu::flags::sext;
use crate::cpu::ops::{Bin, Cmp, Un};
use crate::cpu::rflags as rf;
use crate::semantics::emitter::Emitter;
use crate::semantics::insn::{Insn, Operand};
use crate::semantics::operand::{ea, op_size, read_gpr, read_op, read_rmw, write_gpr, write_op};
use iced_x86::Mnemonic;

/// bt/bts/btr/btc: CF = the selected bit, which bts, btr and btc then set, clear or flip. A
/// register bit offset with a memory operand selects the operand-sized word it falls in,
/// before or after the operand (the offset is signed).
pub(super) fn bit_test<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let size = op_size(ins, 0);
    let bits = size as u64 * 8;
    let (val, addr, bit) = if matches!(ins.operand(1), Operand::Reg(_)) {
        let off = read_op(e, ins, 1, size).expect("checked operand");
        let low = e.imm(bits - 1);
        let bit = e.bin(Bin::And, off, low);
        if ins.operand(0) == Operand::Mem {
            let off = sext(e, off, size);
            let word_shift = e.imm(bits.trailing_zeros() as u64);
            let word = e.bin(Bin::Sar, off, word_shift);
            let byte_shift = e.imm(size.trailing_zeros() as u64);
            let delta = e.bin(Bin::Shl, word, byte_shift);
            let base = ea(e, ins);
            let a = e.bin(Bin::Add, base, delta);
            (e.load(a, size), Some(a), bit)
        } else {
            let (v, a) = read_rmw(e, ins, 0, size).expect("checked operand");
            (v, a, bit)
        }
    } else {
        let Operand::Imm(index) = ins.operand(1) else {
            unreachable!("checked operand")
        };
        let bit = e.imm(index & (bits - 1));
        let (v, a) = read_rmw(e, ins, 0, size).expect("checked operand");
        (v, a, bit)
    };
    let one = e.imm(1);
    let shifted = e.bin(Bin::Shr, val, bit);
    let cf = e.bin(Bin::And, shifted, one);
    let selected = e.bin(Bin::Shl, one, bit);
    let changed = match ins.mnemonic() {
        Mnemonic::Bts => Some(e.bin(Bin::Or, val, selected)),
        Mnemonic::Btr => {
            let cleared = e.un(Un::Not, selected);
            Some(e.bin(Bin::And, val, cleared))
        }
        Mnemonic::Btc => Some(e.bin(Bin::Xor, val, selected)),
        _ => None,
    };
    if let Some(v) = changed {
        write_op(e, ins, 0, size, v, addr).expect("checked operand");
    }
    update_flags(e, rf::CF, |_| cf);
}

/// bsf/bsr (a zero source leaves the destination register as it was, all of it), tzcnt and
/// lzcnt (the operand width for a zero source), popcnt.
pub(super) fn bit_count<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let m = ins.mnemonic();
    let size = op_size(ins, 0);
    let bits = size as u64 * 8;
    let src = read_op(e, ins, 1, size).expect("checked operand");
    let z = e.imm(0);
    let zero = e.cmp(Cmp::Eq, src, z);
    let six = e.imm(6);
    match m {
        Mnemonic::Bsf | Mnemonic::Bsr => {
            let r = if m == Mnemonic::Bsf {
                e.un(Un::Ctz, src)
            } else {
                let lz = e.un(Un::Clz, src);
                let top = e.imm(63);
                e.bin(Bin::Sub, top, lz)
            };
            write_unless(e, ins, zero, r);
            let zf = e.bin(Bin::Shl, zero, six);
            update_flags(e, rf::ZF, |_| zf);
        }
        Mnemonic::Popcnt => {
            let r = e.un(Un::Popcnt, src);
            write_op(e, ins, 0, size, r, None).expect("checked operand");
            let zf = e.bin(Bin::Shl, zero, six);
            set_raw_flags(e, zf);
        }
        _ => {
            let r = if m == Mnemonic::Tzcnt {
                let tz = e.un(Un::Ctz, src);
                let width = e.imm(bits);
                e.select(zero, width, tz)
            } else {
                let lz = e.un(Un::Clz, src);
                let unused = e.imm(64 - bits);
                e.bin(Bin::Sub, lz, unused)
            };
            write_op(e, ins, 0, size, r, None).expect("checked operand");
            let rz = e.cmp(Cmp::Eq, r, z);
            let zf = e.bin(Bin::Shl, rz, six);
            let f = e.bin(Bin::Or, zero, zf);
            update_flags(e, rf::CF | rf::ZF, |_| f);
        }
    }
}

/// Writes `v` to the destination register unless `keep` (0 or 1) is set, when the whole
/// register stays as it was (a 32-bit destination is not zero-extended either).
fn write_unless<E: Emitter, I: Insn>(e: &mut E, ins: &I, keep: E::V, v: E::V) {
    let Operand::Reg(g) = ins.operand(0) else {
        unreachable!("checked operand")
    };
    if g.size == 2 {
        let old = read_gpr(e, g);
        let w = e.select(keep, old, v);
        write_gpr(e, g, w);
    } else {
        let old = e.get_reg(g.idx as usize);
        let w = e.select(keep, old, v);
        e.set_reg(g.idx as usize, w);
    }
}
