//! BMI1 and BMI2: the VEX-encoded general-register bit instructions (andn, bextr, blsi, blsmsk,
//! blsr; bzhi, mulx, pdep, pext, rorx, sarx, shlx, shrx). (popcnt and lzcnt/tzcnt are in
//! `slow::bits`.)

use super::super::concrete::Live;
use super::super::operand::{gpr, op_size, read_gpr, read_op, write_gpr, Gpr};
use crate::cpu::flags::store_raw_flags;
use crate::cpu::{fault, rflags as rf, Cpu};
use iced_x86::{Instruction, Mnemonic::*, Register};

/// Flags of a logical result: ZF, SF (PF/AF cleared: undefined for these instructions, and
/// cleared by the hardware this profile models), CF and OF given.
fn logic_flags(cpu: &mut Cpu, res: u64, bits: u32, cf: bool) {
    let res = if bits == 32 { res & 0xffff_ffff } else { res };
    let mut f = 0;
    if res == 0 {
        f |= rf::ZF;
    }
    if res >> (bits - 1) & 1 != 0 {
        f |= rf::SF;
    }
    if cf {
        f |= rf::CF;
    }
    store_raw_flags(cpu, f);
}

/// One instruction's operand size and access to its operands.
struct Form<'a> {
    ins: &'a Instruction,
    size: u8,
    bits: u32,
    mask: u64,
    dst: Gpr,
}

impl<'a> Form<'a> {
    fn of(ins: &'a Instruction) -> Option<Self> {
        let size = op_size(ins, 0);
        let bits = size as u32 * 8;
        let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let dst = gpr(ins.op_register(0))?;
        Some(Form {
            ins,
            size,
            bits,
            mask,
            dst,
        })
    }

    /// Operand `n`, masked to the operand size.
    fn rd(&self, cpu: &mut Cpu, n: u32) -> Option<u64> {
        read_op(&mut Live::new(cpu), self.ins, n, self.size).map(|v| v & self.mask)
    }

    /// The destination is written last (mulx: hi after lo, hi wins if they are the same).
    fn write(&self, cpu: &mut Cpu, r: u64) {
        write_gpr(&mut Live::new(cpu), self.dst, r);
    }
}

/// BMI1: andn, bextr, blsi, blsmsk, blsr (each sets flags as a logical result).
pub(super) fn bmi1(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    bmi1_form(cpu, ins).ok_or(fault::UNIMPLEMENTED)
}

fn bmi1_form(cpu: &mut Cpu, ins: &Instruction) -> Option<()> {
    let f = Form::of(ins)?;
    let (bits, mask) = (f.bits, f.mask);
    let m = ins.mnemonic();
    let r = match m {
        Andn => {
            let r = !f.rd(cpu, 1)? & f.rd(cpu, 2)? & mask;
            logic_flags(cpu, r, bits, false);
            r
        }
        Bextr => {
            let (s, c) = (f.rd(cpu, 1)?, f.rd(cpu, 2)?);
            let start = (c & 0xff) as u32;
            let len = (c >> 8 & 0xff) as u32;
            let r = if start >= bits {
                0
            } else {
                let v = s >> start;
                if len >= 64 {
                    v
                } else {
                    v & ((1u64 << len) - 1)
                }
            } & mask;
            logic_flags(cpu, r, bits, false);
            r
        }
        _ => {
            let s = f.rd(cpu, 1)?;
            let r = match m {
                Blsi => s & s.wrapping_neg(),
                Blsmsk => s ^ s.wrapping_sub(1),
                _ => s & s.wrapping_sub(1),
            } & mask;
            let cf = if m == Blsi { s != 0 } else { s == 0 };
            logic_flags(cpu, r, bits, cf);
            r
        }
    };
    f.write(cpu, r);
    Some(())
}

/// BMI2: bzhi, mulx, pdep, pext, rorx, sarx, shlx, shrx (only bzhi sets flags).
pub(super) fn bmi2(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    bmi2_form(cpu, ins).ok_or(fault::UNIMPLEMENTED)
}

fn bmi2_form(cpu: &mut Cpu, ins: &Instruction) -> Option<()> {
    let f = Form::of(ins)?;
    let (bits, mask) = (f.bits, f.mask);
    let m = ins.mnemonic();
    let r = match m {
        Bzhi => {
            let (s, c) = (f.rd(cpu, 1)?, f.rd(cpu, 2)?);
            let n = (c & 0xff) as u32;
            let r = if n >= bits { s } else { s & ((1u64 << n) - 1) };
            logic_flags(cpu, r, bits, n > bits - 1);
            r
        }
        Mulx => {
            // mulx hi, lo, src: rdx * src, no flags.
            let d = read_gpr(&mut Live::new(cpu), gpr(Register::RDX)?) & mask;
            let s = f.rd(cpu, 2)?;
            let p = d as u128 * s as u128;
            let lo = gpr(ins.op_register(1))?;
            write_gpr(&mut Live::new(cpu), lo, p as u64 & mask);
            ((p >> bits) as u64) & mask
        }
        Pdep | Pext => deposit_or_extract(m == Pdep, f.rd(cpu, 1)?, f.rd(cpu, 2)?, bits),
        Rorx => {
            let s = f.rd(cpu, 1)?;
            let n = (ins.immediate(2) as u32) & (bits - 1);
            if n == 0 {
                s
            } else {
                ((s >> n) | (s << (bits - n))) & mask
            }
        }
        _ => {
            let (s, c) = (f.rd(cpu, 1)?, f.rd(cpu, 2)?);
            let n = (c as u32) & (bits - 1);
            match m {
                Shlx => (s << n) & mask,
                Shrx => s >> n,
                _ => ((if bits == 32 { s as u32 as i32 as i64 } else { s as i64 }) >> n) as u64 & mask,
            }
        }
    };
    f.write(cpu, r);
    Some(())
}

/// pdep (`deposit`): the low bits of `s` scattered to the set bits of `sel`; pext: the bits of
/// `s` at the set bits of `sel` gathered low.
fn deposit_or_extract(deposit: bool, s: u64, sel: u64, bits: u32) -> u64 {
    let mut r = 0u64;
    let mut k = 0;
    for i in 0..bits {
        if sel >> i & 1 != 0 {
            if deposit {
                r |= (s >> k & 1) << i;
            } else {
                r |= (s >> i & 1) << k;
            }
            k += 1;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdep_scatters_and_pext_gathers() {
        assert_eq!(deposit_or_extract(true, 0b101, 0b1101_0000, 64), 0b1001_0000);
        assert_eq!(deposit_or_extract(false, 0b1001_0000, 0b1101_0000, 64), 0b101);
    }
}
