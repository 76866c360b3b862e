//! Bit instructions over concrete state: double shifts (shld, shrd) and rotates (rol, ror,
//! rcl, rcr), each setting its flags as a raw RFLAGS value.

use super::super::concrete::Live;
use super::super::operand::{op_size, read_op, read_rmw, write_op, write_zero_count_result};
use super::arith_flags;
use crate::cpu::flags::{self, size_mask, store_raw_flags, Flags};
use crate::cpu::ops::Values;
use crate::cpu::{fault, rflags as rf, Cpu, FlagKind};
use iced_x86::{Instruction, Mnemonic, OpKind};

const BAD: u64 = fault::UNIMPLEMENTED;

/// The count operand of a shift or rotate: cl, an immediate, or 1 when absent; masked to 6 bits
/// for 64-bit operands, 5 otherwise.
fn count(cpu: &Cpu, ins: &Instruction, n: u32, size: u8) -> u64 {
    let cnt = if ins.op_count() == n {
        1
    } else if ins.op_kind(n) == OpKind::Register {
        cpu.gpr[1]
    } else {
        ins.immediate(n)
    };
    cnt & if size == 8 { 63 } else { 31 }
}

/// shld, shrd: the destination shifted with bits from the source filling in.
pub(super) fn double_shift(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let m = ins.mnemonic();
    let size = op_size(ins, 0);
    let bits = size as u32 * 8;
    let mut e = Live::new(cpu);
    let (d, a) = read_rmw(&mut e, ins, 0, size).ok_or(BAD)?;
    let s = read_op(&mut e, ins, 1, size).ok_or(BAD)?;
    let cnt = count(e.cpu, ins, 2, size) as u32;
    if cnt == 0 {
        write_zero_count_result(&mut e, ins, size, d, a);
        return Ok(());
    }
    let mask = size_mask(size);
    // Concatenate into 128 bits and shift.
    let (r, cf) = if m == Mnemonic::Shld {
        let wide = ((d as u128) << bits) | s as u128;
        let r = ((wide << cnt) >> bits) as u64 & mask;
        let cf = ((d as u128) >> (bits - cnt.min(bits))) as u64 & 1;
        (r, cf)
    } else {
        let wide = ((s as u128) << bits) | d as u128;
        let r = (wide >> cnt) as u64 & mask;
        let cf = (d >> (cnt - 1).min(63)) & 1;
        (r, cf)
    };
    write_op(&mut e, ins, 0, size, r, a).ok_or(BAD)?;
    let res = Flags {
        kind: FlagKind::Logic,
        size,
        res: r,
        a: 0,
        b: 0,
        aux: 0,
    };
    let mut f = flags::materialize(&mut Values, &res) & !(rf::CF | rf::OF);
    f |= cf;
    let sign_changed = ((r ^ d) >> (bits - 1)) & 1;
    f |= sign_changed << 11;
    store_raw_flags(cpu, f);
    Ok(())
}

/// rol, ror, rcl, rcr: CF and OF as the hardware leaves them.
pub(super) fn rotate(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let size = op_size(ins, 0);
    let bits = size as u64 * 8;
    let mut e = Live::new(cpu);
    let (d, a) = read_rmw(&mut e, ins, 0, size).ok_or(BAD)?;
    let cnt = count(e.cpu, ins, 1, size);
    if cnt == 0 {
        write_zero_count_result(&mut e, ins, size, d, a);
        return Ok(());
    }
    let f = arith_flags(e.cpu);
    let (r, cf, of) = match m {
        Rol | Ror => rotate_plain(m == Rol, d, cnt, bits),
        _ => rotate_through_carry(m == Rcl, d, f & 1, cnt, bits),
    };
    write_op(&mut e, ins, 0, size, r, a).ok_or(BAD)?;
    store_raw_flags(cpu, (f & !(rf::CF | rf::OF)) | cf | (of << 11));
    Ok(())
}

fn msb(v: u64, bits: u64) -> u64 {
    (v >> (bits - 1)) & 1
}

/// rol (`left`) or ror of a `bits`-wide value: (result, CF, OF).
fn rotate_plain(left: bool, d: u64, cnt: u64, bits: u64) -> (u64, u64, u64) {
    let mask = size_mask((bits / 8) as u8);
    let c = cnt % bits;
    let r = if left {
        ((d << c) | if c == 0 { 0 } else { d >> (bits - c) }) & mask
    } else {
        ((d >> c) | if c == 0 { 0 } else { d << (bits - c) }) & mask
    };
    if left {
        let cf = r & 1;
        (r, cf, msb(r, bits) ^ cf)
    } else {
        (r, msb(r, bits), msb(r, bits) ^ ((r >> (bits - 2)) & 1))
    }
}

/// rcl (`left`) or rcr: a `bits + 1`-wide rotate through CF, one bit at a time.
fn rotate_through_carry(left: bool, d: u64, carry: u64, cnt: u64, bits: u64) -> (u64, u64, u64) {
    let mask = size_mask((bits / 8) as u8);
    let mut v = d;
    let mut c = carry;
    for _ in 0..cnt % (bits + 1) {
        if left {
            let out = msb(v, bits);
            v = ((v << 1) | c) & mask;
            c = out;
        } else {
            let out = v & 1;
            v = (v >> 1) | (c << (bits - 1));
            c = out;
        }
    }
    let of = if left {
        msb(v, bits) ^ c
    } else {
        msb(v, bits) ^ ((v >> (bits - 2)) & 1)
    };
    (v, c, of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_set_carry_and_overflow() {
        assert_eq!(rotate_plain(true, 0x81, 1, 8), (0x03, 1, 1));
        assert_eq!(rotate_plain(false, 0x01, 1, 8), (0x80, 1, 1));
        assert_eq!(rotate_through_carry(true, 0x80, 0, 1, 8), (0x00, 1, 1));
        assert_eq!(rotate_through_carry(false, 0x01, 1, 1, 8), (0x80, 1, 1));
        // Nine single-bit steps bring an 8-bit rcl back to where it started.
        assert_eq!(rotate_through_carry(true, 0x5a, 1, 9, 8).0, 0x5a);
    }
}
