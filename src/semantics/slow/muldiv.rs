//! One-operand multiply and divide: the double-width product or dividend in rdx:rax (ah:al for
//! bytes), with #DE for a zero divisor or a quotient that does not fit.

use super::super::concrete::Live;
use super::super::operand::{op_size, read_op, write_gpr, Gpr};
use super::acc;
use crate::cpu::flags::{size_mask, store_flags, Flags};
use crate::cpu::{fault, Cpu, FlagKind};
use iced_x86::{Instruction, Mnemonic};

/// mul, imul, div, idiv with one operand (the other forms are not this family's).
pub(super) fn exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    if ins.op_count() != 1 {
        return Err(fault::UNIMPLEMENTED);
    }
    let size = op_size(ins, 0);
    let src = read_op(&mut Live::new(cpu), ins, 0, size).ok_or(fault::UNIMPLEMENTED)?;
    let m = ins.mnemonic();
    match m {
        Mnemonic::Mul | Mnemonic::Imul => {
            multiply(cpu, m, size, src);
            Ok(())
        }
        _ => divide(cpu, m, size, src),
    }
}

/// The operand sign-extended from `bits` to 128 bits.
fn sx(v: u64, bits: u32) -> i128 {
    ((v as i128) << (128 - bits)) >> (128 - bits)
}

/// Writes a low/high pair: ah:al for bytes, rdx:rax (at the operand size) otherwise.
fn write_pair(cpu: &mut Cpu, size: u8, lo: u64, hi: u64) {
    let mask = size_mask(size);
    let mut e = Live::new(cpu);
    if size == 1 {
        write_gpr(&mut e, acc(2), (lo & 0xff) | ((hi & 0xff) << 8));
    } else {
        write_gpr(&mut e, acc(size), lo & mask);
        let rdx = Gpr {
            idx: 2,
            size,
            high8: false,
        };
        write_gpr(&mut e, rdx, hi & mask);
    }
}

fn multiply(cpu: &mut Cpu, m: Mnemonic, size: u8, src: u64) {
    let bits = size as u32 * 8;
    let mask = size_mask(size);
    let a = cpu.gpr[0] & mask;
    let (lo, hi, over) = if m == Mnemonic::Mul {
        let p = a as u128 * src as u128;
        let hi = (p >> bits) as u64 & mask;
        (p as u64 & mask, hi, hi != 0)
    } else {
        let p = sx(a, bits) * sx(src, bits);
        let lo = p as u64 & mask;
        let hi = (p >> bits) as u64 & mask;
        (lo, hi, sx(lo, bits) != p)
    };
    write_pair(cpu, size, lo, hi);
    store_flags(
        cpu,
        Flags {
            kind: FlagKind::Mul,
            size,
            res: lo,
            a: 0,
            b: 0,
            aux: over as u64,
        },
    );
}

fn divide(cpu: &mut Cpu, m: Mnemonic, size: u8, src: u64) -> Result<(), u64> {
    let bits = size as u32 * 8;
    let mask = size_mask(size);
    let a = cpu.gpr[0] & mask;
    let hi_in = if size == 1 {
        (cpu.gpr[0] >> 8) & 0xff
    } else {
        cpu.gpr[2] & mask
    };
    if src == 0 {
        return Err(fault::DIVIDE);
    }
    let dividend = ((hi_in as u128) << bits) | a as u128;
    let (q, r) = if m == Mnemonic::Div {
        let q = dividend / src as u128;
        if q > mask as u128 {
            return Err(fault::DIVIDE);
        }
        (q as u64, (dividend % src as u128) as u64)
    } else {
        let n = ((dividend << (128 - 2 * bits)) as i128) >> (128 - 2 * bits);
        let dsor = sx(src, bits);
        let q = n.wrapping_div(dsor);
        let lim = 1i128 << (bits - 1);
        if q >= lim || q < -lim || (n == i128::MIN && dsor == -1) {
            return Err(fault::DIVIDE);
        }
        (q as u64 & mask, n.wrapping_rem(dsor) as u64 & mask)
    };
    write_pair(cpu, size, q, r);
    Ok(())
}
