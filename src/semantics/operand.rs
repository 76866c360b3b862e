//! Reading and writing instruction operands (registers, memory, immediates) over an `Emitter`.

use super::emitter::Emitter;
use super::insn::{Address, Insn, Operand};
use crate::cpu::flags::zext;
use crate::cpu::ops::Bin;
use iced_x86::{Instruction, OpKind, Register};

/// A general-purpose register operand: index 0..15, size in bytes, and whether it is AH..BH.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gpr {
    pub idx: u8,
    pub size: u8,
    pub high8: bool,
}

pub fn gpr(r: Register) -> Option<Gpr> {
    if !r.is_gpr() {
        return None;
    }
    let high8 = matches!(r, Register::AH | Register::CH | Register::DH | Register::BH);
    let full = r.full_register();
    let idx = (full as u32).checked_sub(Register::RAX as u32)? as u8;
    if idx >= 16 {
        return None;
    }
    Some(Gpr {
        idx,
        size: r.size() as u8,
        high8,
    })
}

#[inline(always)]
pub fn read_gpr<E: Emitter>(e: &mut E, g: Gpr) -> E::V {
    let v = e.get_reg(g.idx as usize);
    if g.high8 {
        let s = e.imm(8);
        let t = e.bin(Bin::Shr, v, s);
        return zext(e, t, 1);
    }
    zext(e, v, g.size)
}

/// Writes with x86 merge rules: 32-bit writes zero the top half, 8/16-bit writes merge.
#[inline(always)]
pub fn write_gpr<E: Emitter>(e: &mut E, g: Gpr, v: E::V) {
    match (g.size, g.high8) {
        (8, _) => e.set_reg(g.idx as usize, v),
        (4, _) => {
            let z = zext(e, v, 4);
            e.set_reg(g.idx as usize, z)
        }
        (1, true) => {
            let old = e.get_reg(g.idx as usize);
            let m = e.imm(!0xff00u64);
            let kept = e.bin(Bin::And, old, m);
            let lo = zext(e, v, 1);
            let s = e.imm(8);
            let sh = e.bin(Bin::Shl, lo, s);
            let r = e.bin(Bin::Or, kept, sh);
            e.set_reg(g.idx as usize, r)
        }
        (sz, _) => {
            let old = e.get_reg(g.idx as usize);
            let m = e.imm(!crate::cpu::flags::size_mask(sz));
            let kept = e.bin(Bin::And, old, m);
            let lo = zext(e, v, sz);
            let r = e.bin(Bin::Or, kept, lo);
            e.set_reg(g.idx as usize, r)
        }
    }
}

/// Effective address of the memory operand, without the segment base.
#[inline(always)]
pub fn ea_no_seg<E: Emitter, I: Insn>(e: &mut E, ins: &I) -> E::V {
    let a = ins.address();
    ea_with(e, &a, None)
}

/// Effective address including an fs/gs segment base.
#[inline(always)]
pub fn ea<E: Emitter, I: Insn>(e: &mut E, ins: &I) -> E::V {
    let a = ins.address();
    ea_with(e, &a, a.seg)
}

/// Effective address: base, scaled index and segment base (`Some(true)` fs, `Some(false)`
/// gs) summed first and the constant displacement added last, so that compiled code checks
/// the register part alone and the access adds the displacement (`jit::Lower::host_addr`):
/// accesses at several displacements from one base share one check. A 32-bit address wraps
/// before the segment base is added.
#[inline(always)]
fn ea_with<E: Emitter>(e: &mut E, at: &Address, seg: Option<bool>) -> E::V {
    let seg_base = |e: &mut E| seg.map(|fs| e.seg_base(fs));
    if at.rip_rel {
        let a = e.code_addr(at.disp);
        let s = seg_base(e);
        return plus(e, a, s);
    }
    let base = at.base.map(|b| {
        let v = e.get_reg(b.idx as usize);
        zext(e, v, b.size)
    });
    let index = at.index.map(|i| {
        let v = e.get_reg(i.idx as usize);
        let v = zext(e, v, i.size);
        match at.shift {
            0 => v,
            sh => {
                let s = e.imm(sh as u64);
                e.bin(Bin::Shl, v, s)
            }
        }
    });
    let parts = sum(e, base, index);
    let disp = at.disp;
    if at.addr32 {
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
#[inline(always)]
fn plus<E: Emitter>(e: &mut E, a: E::V, b: Option<E::V>) -> E::V {
    match b {
        Some(b) => e.bin(Bin::Add, a, b),
        None => a,
    }
}

/// `a + b` where both are present, else the one that is.
#[inline(always)]
fn sum<E: Emitter>(e: &mut E, a: Option<E::V>, b: Option<E::V>) -> Option<E::V> {
    match a {
        Some(a) => Some(plus(e, a, b)),
        None => b,
    }
}

/// Operands 0 and 1 are one register (`xor eax, eax`, `pxor xmm1, xmm1`).
pub fn same_register(ins: &Instruction) -> bool {
    ins.op0_kind() == OpKind::Register && ins.op1_kind() == OpKind::Register && ins.op0_register() == ins.op1_register()
}

/// Operands 0 and 1 are one general-purpose register (`xor eax, eax`).
#[inline(always)]
pub fn same_gpr<I: Insn>(ins: &I) -> bool {
    match (ins.operand(0), ins.operand(1)) {
        (Operand::Reg(a), Operand::Reg(b)) => a == b,
        _ => false,
    }
}

/// Whether an operand kind is an immediate (the one list of them; `Instruction::immediate`
/// reads every one).
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
#[inline(always)]
pub fn op_size<I: Insn>(ins: &I, n: u32) -> u8 {
    ins.op_size(n)
}

/// Reads operand `n` zero-extended to 64 bits (immediates sign-extended to the operand size,
/// then zero-extended).
#[inline(always)]
pub fn read_op<E: Emitter, I: Insn>(e: &mut E, ins: &I, n: u32, size: u8) -> Option<E::V> {
    match ins.operand(n) {
        Operand::Reg(g) => Some(read_gpr(e, g)),
        Operand::Mem => {
            let a = ea(e, ins);
            Some(e.load(a, size))
        }
        Operand::Imm(v) => Some(e.imm(v & crate::cpu::flags::size_mask(size))),
        Operand::Branch(_) | Operand::Other => None,
    }
}

/// Writes operand `n`; `addr` is the already computed memory address when the caller has one.
#[inline(always)]
pub fn write_op<E: Emitter, I: Insn>(e: &mut E, ins: &I, n: u32, size: u8, v: E::V, addr: Option<E::V>) -> Option<()> {
    match ins.operand(n) {
        Operand::Reg(g) => {
            write_gpr(e, g, v);
            Some(())
        }
        Operand::Mem => {
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
#[inline(always)]
pub fn read_rmw<E: Emitter, I: Insn>(e: &mut E, ins: &I, n: u32, size: u8) -> Option<(E::V, Option<E::V>)> {
    if ins.operand(n) == Operand::Mem {
        let a = ea(e, ins);
        let v = e.load(a, size);
        return Some((v, Some(a)));
    }
    Some((read_op(e, ins, n, size)?, None))
}

/// The write-back of a shift or rotate whose count is zero: nothing changes, but a 32-bit
/// register destination is still written (zero-extended), so `v`, the value read, goes back.
#[inline(always)]
pub fn write_zero_count_result<E: Emitter, I: Insn>(e: &mut E, ins: &I, size: u8, v: E::V, addr: Option<E::V>) {
    if size == 4 && matches!(ins.operand(0), Operand::Reg(_)) {
        write_op(e, ins, 0, size, v, addr);
    }
}
