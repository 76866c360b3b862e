//! The commonest locked read-modify-writes written over the `Emitter`'s atomic operations
//! (`Emitter::atomic_rmw`, `Emitter::atomic_cas`), so that compiled code runs them inline
//! instead of through the slow helper: xchg with memory (locked whether or not prefixed), and
//! lock-prefixed xadd, cmpxchg, add, sub, and, or, xor, inc and dec with a memory
//! destination. The flags are the plain instruction's, computed from the old value the atomic
//! operation returns. The other locked forms (adc, sbb, neg, not, bts, btr, btc, cmpxchg8b
//! and cmpxchg16b) stay with `atomic`, on the slow path.

use super::atomic::{self, AtomicOp};
use super::emitter::{Emitter, Rmw};
use super::generic::{alu, inc_dec_of};
use super::operand::{ea, gpr, read_gpr, read_op, write_gpr, Gpr};
use crate::cpu::flags::size_mask;
use crate::cpu::ops::Bin;
use iced_x86::{Instruction, Mnemonic, OpKind};
use Mnemonic::*;

/// Whether `ins` is a locked form this module runs: one of the rows above, its memory operand
/// first (or xchg's either), every register operand a general-purpose one.
pub fn supported(ins: &Instruction) -> bool {
    let Some(row) = atomic::FAMILY.row(ins.mnemonic()) else {
        return false;
    };
    let inline = match row.handler {
        AtomicOp::Alu => !matches!(ins.mnemonic(), Adc | Sbb),
        AtomicOp::IncDec | AtomicOp::Xadd | AtomicOp::Xchg | AtomicOp::Cmpxchg => true,
        AtomicOp::Neg | AtomicOp::Not | AtomicOp::BitTestModify => false,
    };
    let memory_first = ins.op_kind(0) == OpKind::Memory || ins.mnemonic() == Xchg;
    let registers = (0..ins.op_count())
        .filter(|&i| ins.op_kind(i) == OpKind::Register)
        .all(|i| gpr(ins.op_register(i)).is_some());
    inline && atomic::needs_atomic(ins) && memory_first && registers
}

/// Runs (or emits) one instruction `supported` admits.
pub fn exec<E: Emitter>(e: &mut E, ins: &Instruction) {
    let size = ins.memory_size().size() as u8;
    let addr = ea(e, ins);
    match ins.mnemonic() {
        Xchg => {
            let g = register_operand(ins);
            let v = read_gpr(e, g);
            let old = e.atomic_rmw(Rmw::Swap, addr, v, size);
            write_gpr(e, g, old);
        }
        Xadd => {
            let g = register_operand(ins);
            let v = read_gpr(e, g);
            let old = e.atomic_rmw(Rmw::Add, addr, v, size);
            alu(e, Add, size, old, v);
            write_gpr(e, g, old);
        }
        Cmpxchg => cmpxchg(e, ins, addr, size),
        Inc | Dec => inc_dec(e, ins.mnemonic() == Inc, addr, size),
        m => {
            let src = read_op(e, ins, 1, size).expect("checked operand");
            let (op, v) = match m {
                Add => (Rmw::Add, src),
                Sub => {
                    let z = e.imm(0);
                    (Rmw::Add, e.bin(Bin::Sub, z, src))
                }
                And => (Rmw::And, src),
                Or => (Rmw::Or, src),
                _ => (Rmw::Xor, src),
            };
            let old = e.atomic_rmw(op, addr, v, size);
            alu(e, m, size, old, src);
        }
    }
}

/// The register operand of xchg, xadd or cmpxchg.
fn register_operand(ins: &Instruction) -> Gpr {
    (0..ins.op_count())
        .filter(|&i| ins.op_kind(i) == OpKind::Register)
        .find_map(|i| gpr(ins.op_register(i)))
        .expect("checked operand")
}

/// cmpxchg: the flags of `cmp accumulator, old`; the source stored where they were equal,
/// else the old value loaded into the accumulator (which is written only then).
fn cmpxchg<E: Emitter>(e: &mut E, ins: &Instruction, addr: E::V, size: u8) {
    let acc = Gpr {
        idx: 0,
        size,
        high8: false,
    };
    let expected = read_gpr(e, acc);
    let new = read_gpr(e, register_operand(ins));
    let old = e.atomic_cas(addr, expected, new, size);
    alu(e, Mnemonic::Cmp, size, expected, old);
    let kept = e.get_reg(0);
    write_gpr(e, acc, old);
    let loaded = e.get_reg(0);
    let equal = e.cmp(crate::cpu::ops::Cmp::Eq, old, expected);
    let rax = e.select(equal, kept, loaded);
    e.set_reg(0, rax);
}

/// inc/dec: an atomic add of one or minus one, with the flags of the plain instruction.
fn inc_dec<E: Emitter>(e: &mut E, inc: bool, addr: E::V, size: u8) {
    let delta = e.imm(if inc { 1 } else { size_mask(size) });
    let old = e.atomic_rmw(Rmw::Add, addr, delta, size);
    inc_dec_of(e, inc, size, old);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::decoded;
    use crate::semantics::operand::op_size;

    #[test]
    fn the_common_locked_forms_run_inline_and_the_rest_do_not() {
        let inline: &[&[u8]] = &[
            &[0x48, 0x87, 0x18],             // xchg [rax], rbx
            &[0x86, 0x38],                   // xchg [rax], bh
            &[0xf0, 0x0f, 0xc1, 0x18],       // lock xadd [rax], ebx
            &[0xf0, 0x48, 0x0f, 0xb1, 0x18], // lock cmpxchg [rax], rbx
            &[0xf0, 0x83, 0x00, 0x01],       // lock add dword [rax], 1
            &[0xf0, 0x48, 0x29, 0x18],       // lock sub [rax], rbx
            &[0xf0, 0x80, 0x20, 0x7f],       // lock and byte [rax], 0x7f
            &[0xf0, 0x66, 0x09, 0x18],       // lock or [rax], bx
            &[0xf0, 0x48, 0x31, 0x18],       // lock xor [rax], rbx
            &[0xf0, 0xff, 0x00],             // lock inc dword [rax]
            &[0xf0, 0x48, 0xff, 0x08],       // lock dec qword [rax]
        ];
        for bytes in inline {
            let ins = decoded(bytes);
            assert!(supported(&ins), "{ins} runs inline");
            assert_eq!(op_size(&ins, 0), ins.memory_size().size() as u8, "{ins}");
        }
        let slow: &[&[u8]] = &[
            &[0xf0, 0x48, 0x11, 0x18],       // lock adc [rax], rbx
            &[0xf0, 0x48, 0xf7, 0x18],       // lock neg qword [rax]
            &[0xf0, 0x48, 0x0f, 0xab, 0x18], // lock bts [rax], rbx
            &[0xf0, 0x0f, 0xc7, 0x08],       // lock cmpxchg8b [rax]
            &[0x48, 0x01, 0x18],             // add [rax], rbx (not locked)
            &[0x48, 0x87, 0xd8],             // xchg rax, rbx (no memory)
        ];
        for bytes in slow {
            let ins = decoded(bytes);
            assert!(!supported(&ins), "{ins} stays on the slow path");
        }
    }
}
