//! Reading and writing instruction operands (registers, memory, immediates) over an `Emitter`.

use super::emitter::Emitter;
use crate::cpu::flags::zext;
use crate::cpu::ops::Bin;
use iced_x86::{Instruction, OpKind, Register};

/// A general-purpose register operand: index 0..15, size in bytes, and whether it is AH..BH.
#[derive(Clone, Copy, Debug)]
pub struct Gpr {
    pub idx: usize,
    pub size: u8,
    pub high8: bool,
}

pub fn gpr(r: Register) -> Option<Gpr> {
    if !r.is_gpr() {
        return None;
    }
    let high8 = matches!(r, Register::AH | Register::CH | Register::DH | Register::BH);
    let full = r.full_register();
    let idx = (full as u32).checked_sub(Register::RAX as u32)? as usize;
    if idx >= 16 {
        return None;
    }
    Some(Gpr {
        idx,
        size: r.size() as u8,
        high8,
    })
}

pub fn read_gpr<E: Emitter>(e: &mut E, g: Gpr) -> E::V {
    let v = e.get_reg(g.idx);
    if g.high8 {
        let s = e.imm(8);
        let t = e.bin(Bin::Shr, v, s);
        return zext(e, t, 1);
    }
    zext(e, v, g.size)
}

/// Writes with x86 merge rules: 32-bit writes zero the top half, 8/16-bit writes merge.
pub fn write_gpr<E: Emitter>(e: &mut E, g: Gpr, v: E::V) {
    match (g.size, g.high8) {
        (8, _) => e.set_reg(g.idx, v),
        (4, _) => {
            let z = zext(e, v, 4);
            e.set_reg(g.idx, z)
        }
        (1, true) => {
            let old = e.get_reg(g.idx);
            let m = e.imm(!0xff00u64);
            let kept = e.bin(Bin::And, old, m);
            let lo = zext(e, v, 1);
            let s = e.imm(8);
            let sh = e.bin(Bin::Shl, lo, s);
            let r = e.bin(Bin::Or, kept, sh);
            e.set_reg(g.idx, r)
        }
        (sz, _) => {
            let old = e.get_reg(g.idx);
            let m = e.imm(!crate::cpu::flags::size_mask(sz));
            let kept = e.bin(Bin::And, old, m);
            let lo = zext(e, v, sz);
            let r = e.bin(Bin::Or, kept, lo);
            e.set_reg(g.idx, r)
        }
    }
}

/// Effective address of the memory operand, without the segment base.
pub fn ea_no_seg<E: Emitter>(e: &mut E, ins: &Instruction) -> E::V {
    ea_with(e, ins, None)
}

/// Effective address including an fs/gs segment base.
pub fn ea<E: Emitter>(e: &mut E, ins: &Instruction) -> E::V {
    let seg = match ins.memory_segment() {
        Register::FS => Some(true),
        Register::GS => Some(false),
        _ => None,
    };
    ea_with(e, ins, seg)
}

/// Effective address: base, scaled index and segment base (`Some(true)` fs, `Some(false)`
/// gs) summed first and the constant displacement added last, so that compiled code checks
/// the register part alone and the access adds the displacement (`jit::Lower::host_addr`):
/// accesses at several displacements from one base share one check. A 32-bit address wraps
/// before the segment base is added.
fn ea_with<E: Emitter>(e: &mut E, ins: &Instruction, seg: Option<bool>) -> E::V {
    let seg_base = |e: &mut E| seg.map(|fs| e.seg_base(fs));
    if ins.is_ip_rel_memory_operand() {
        let a = e.code_addr(ins.ip_rel_memory_address());
        let s = seg_base(e);
        return plus(e, a, s);
    }
    let base = gpr(ins.memory_base()).map(|b| {
        let v = e.get_reg(b.idx);
        zext(e, v, b.size)
    });
    let index = gpr(ins.memory_index()).map(|i| {
        let v = e.get_reg(i.idx);
        let v = zext(e, v, i.size);
        match ins.memory_index_scale() {
            1 => v,
            sc => {
                let s = e.imm(sc.trailing_zeros() as u64);
                e.bin(Bin::Shl, v, s)
            }
        }
    });
    let parts = sum(e, base, index);
    let disp = ins.memory_displacement64();
    if ins.memory_base().size() == 4 || ins.memory_index().size() == 4 {
        let d = e.imm(disp);
        let a = plus(e, d, parts);
        let a = zext(e, a, 4);
        let s = seg_base(e);
        return plus(e, a, s);
    }
    let s = seg_base(e);
    let parts = sum(e, parts, s);
    match parts {
        Some(p) if disp == 0 => p,
        Some(p) => {
            let d = e.imm(disp);
            e.bin(Bin::Add, p, d)
        }
        None => e.imm(disp),
    }
}

/// `a + b`, or `a` where there is no `b`.
fn plus<E: Emitter>(e: &mut E, a: E::V, b: Option<E::V>) -> E::V {
    match b {
        Some(b) => e.bin(Bin::Add, a, b),
        None => a,
    }
}

/// `a + b` where both are present, else the one that is.
fn sum<E: Emitter>(e: &mut E, a: Option<E::V>, b: Option<E::V>) -> Option<E::V> {
    match a {
        Some(a) => Some(plus(e, a, b)),
        None => b,
    }
}

/// Whether an operand kind is an immediate (the one list of them; `Instruction::immediate`
/// reads every one).
/// Operands 0 and 1 are one register (`xor eax, eax`, `pxor xmm1, xmm1`).
pub fn same_register(ins: &Instruction) -> bool {
    ins.op0_kind() == OpKind::Register && ins.op1_kind() == OpKind::Register && ins.op0_register() == ins.op1_register()
}

pub fn is_imm(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Immediate8
            | OpKind::Immediate8_2nd
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

/// Size in bytes of operand `n`.
pub fn op_size(ins: &Instruction, n: u32) -> u8 {
    match ins.op_kind(n) {
        OpKind::Register => ins.op_register(n).size() as u8,
        OpKind::Memory => ins.memory_size().size() as u8,
        OpKind::Immediate8 => 1,
        OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
        OpKind::Immediate32 | OpKind::Immediate8to32 => 4,
        _ => 8,
    }
}

/// Reads operand `n` zero-extended to 64 bits (immediates sign-extended to the operand size,
/// then zero-extended).
pub fn read_op<E: Emitter>(e: &mut E, ins: &Instruction, n: u32, size: u8) -> Option<E::V> {
    match ins.op_kind(n) {
        OpKind::Register => {
            let g = gpr(ins.op_register(n))?;
            Some(read_gpr(e, g))
        }
        OpKind::Memory => {
            let a = ea(e, ins);
            Some(e.load(a, size))
        }
        k if is_imm(k) => Some(e.imm(ins.immediate(n) & crate::cpu::flags::size_mask(size))),
        _ => None,
    }
}

/// Writes operand `n`; `addr` is the already computed memory address when the caller has one.
pub fn write_op<E: Emitter>(e: &mut E, ins: &Instruction, n: u32, size: u8, v: E::V, addr: Option<E::V>) -> Option<()> {
    match ins.op_kind(n) {
        OpKind::Register => {
            let g = gpr(ins.op_register(n))?;
            write_gpr(e, g, v);
            Some(())
        }
        OpKind::Memory => {
            let a = match addr {
                Some(a) => a,
                None => ea(e, ins),
            };
            e.store(a, v, size);
            Some(())
        }
        _ => None,
    }
}

/// Reads operand `n` and returns the memory address used, so a write-back need not recompute it.
pub fn read_rmw<E: Emitter>(e: &mut E, ins: &Instruction, n: u32, size: u8) -> Option<(E::V, Option<E::V>)> {
    if ins.op_kind(n) == OpKind::Memory {
        let a = ea(e, ins);
        let v = e.load(a, size);
        return Some((v, Some(a)));
    }
    Some((read_op(e, ins, n, size)?, None))
}

/// The write-back of a shift or rotate whose count is zero: nothing changes, but a 32-bit
/// register destination is still written (zero-extended), so `v`, the value read, goes back.
pub fn write_zero_count_result<E: Emitter>(e: &mut E, ins: &Instruction, size: u8, v: E::V, addr: Option<E::V>) {
    if size == 4 && ins.op_kind(0) == OpKind::Register {
        write_op(e, ins, 0, size, v, addr);
    }
}
