//! SSE4.2: CRC32 (the Castagnoli polynomial). The string compares (pcmpistri and its kin) are
//! `sse_strings`', and pcmpgtq is `sse`'s, written over `Emitter`.

use super::super::concrete::Live;
use super::super::operand::{gpr, op_size, read_gpr, read_op, write_gpr};
use crate::cpu::{fault, Cpu};
use iced_x86::Instruction;

pub(super) fn crc32(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let bad = fault::UNIMPLEMENTED;
    let size = op_size(ins, 1);
    let v = read_op(&mut Live::new(cpu), ins, 1, size).ok_or(bad)?;
    let g = gpr(ins.op_register(0)).ok_or(bad)?;
    let mut c = read_gpr(&mut Live::new(cpu), g) as u32;
    for i in 0..size {
        c ^= (v >> (8 * i as u32)) as u8 as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82f6_3b78 } else { c >> 1 };
        }
    }
    write_gpr(&mut Live::new(cpu), g, c as u64);
    Ok(())
}
