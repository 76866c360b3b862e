//! Locked read-modify-write instructions (the `lock` prefix, and xchg with memory) done as
//! host atomics: the new value is computed from an atomically read old value and published with
//! compare-and-swap, retried until no other thread intervened. Concrete state only (compiled
//! code reaches it through the slow helper) for adc, sbb, neg, not and bts/btr/btc; the other
//! forms have their semantics in `semantics::locked`, over the `Emitter`'s atomic operations,
//! which `update` serves in the baseline tier, and `exec` hands them there.

use super::concrete::Live;
use super::operand::{ea, gpr, op_size, read_gpr, Gpr};
use super::table::{row, Family};
use crate::cpu::flags::{cpu_flags, sext, size_mask, store_flags, store_raw_flags};
use crate::cpu::{rflags as rf, Cpu};
use crate::mem::host;
use iced_x86::{Instruction, Mnemonic, OpKind};
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering::SeqCst};
use std::sync::Mutex;
use Mnemonic::*;

/// Whether the instruction must be performed atomically.
pub fn needs_atomic(ins: &Instruction) -> bool {
    let mem = (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory);
    mem && (ins.has_lock_prefix() || ins.mnemonic() == Xchg)
}

/// Serialises atomics on addresses that are not naturally aligned (x86 allows them; host atomic
/// types do not).
static UNALIGNED: Mutex<()> = Mutex::new(());

fn aligned(p: *mut u8, size: u8) -> bool {
    (p as usize).is_multiple_of(size as usize)
}

fn load(p: *mut u8, size: u8) -> u64 {
    // SAFETY: p is inside the guest reservation, aligned for `size` (checked by callers), and
    // only ever accessed atomically or by plain guest accesses.
    unsafe {
        match size {
            1 => AtomicU8::from_ptr(p).load(SeqCst) as u64,
            2 => AtomicU16::from_ptr(p as *mut u16).load(SeqCst) as u64,
            4 => AtomicU32::from_ptr(p as *mut u32).load(SeqCst) as u64,
            _ => AtomicU64::from_ptr(p as *mut u64).load(SeqCst),
        }
    }
}

fn cas(p: *mut u8, size: u8, old: u64, new: u64) -> bool {
    // SAFETY: as in `load`.
    unsafe {
        match size {
            1 => AtomicU8::from_ptr(p)
                .compare_exchange(old as u8, new as u8, SeqCst, SeqCst)
                .is_ok(),
            2 => AtomicU16::from_ptr(p as *mut u16)
                .compare_exchange(old as u16, new as u16, SeqCst, SeqCst)
                .is_ok(),
            4 => AtomicU32::from_ptr(p as *mut u32)
                .compare_exchange(old as u32, new as u32, SeqCst, SeqCst)
                .is_ok(),
            _ => AtomicU64::from_ptr(p as *mut u64)
                .compare_exchange(old, new, SeqCst, SeqCst)
                .is_ok(),
        }
    }
}

/// The lock that serialises atomic accesses the host cannot do in one instruction
/// (misaligned ones and cmpxchg16b).
pub fn wide_lock() -> std::sync::MutexGuard<'static, ()> {
    UNALIGNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Applies `f(old) -> new` atomically at guest `addr`; returns the old value of the successful
/// attempt. `f` may run several times; it must set everything it sets from scratch each time.
fn rmw(cpu: &mut Cpu, addr: u64, size: u8, mut f: impl FnMut(&mut Cpu, u64) -> u64) -> u64 {
    let saved = cpu_flags(cpu);
    update(addr, size, |old| {
        store_flags(cpu, saved);
        f(cpu, old)
    })
}

/// Replaces the `size` bytes at guest `addr` with `f(old)` atomically (a compare-and-swap
/// retried until no other thread intervened; under `wide_lock` where the address is not
/// naturally aligned); returns the old value of the successful attempt. `f` may run several
/// times.
pub fn update(addr: u64, size: u8, mut f: impl FnMut(u64) -> u64) -> u64 {
    let p = host(addr);
    if !aligned(p, size) {
        let _g = wide_lock();
        let old = super::concrete::load(addr, size);
        super::concrete::store(addr, f(old), size);
        return old;
    }
    loop {
        let old = load(p, size);
        let new = f(old) & size_mask(size);
        if cas(p, size, old, new) {
            return old;
        }
        std::hint::spin_loop();
    }
}

/// The operation of a locked read-modify-write row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtomicOp {
    /// add/or/adc/sbb/and/sub/xor with memory destination.
    Alu,
    IncDec,
    Neg,
    Not,
    Xadd,
    Xchg,
    Cmpxchg,
    /// bts/btr/btc.
    BitTestModify,
}

pub static FAMILY: Family<AtomicOp> = Family::new(
    "atomic",
    &[
        row(&[Add, Or, Adc, Sbb, And, Sub, Xor], AtomicOp::Alu),
        row(&[Inc, Dec], AtomicOp::IncDec),
        row(&[Neg], AtomicOp::Neg),
        row(&[Not], AtomicOp::Not),
        row(&[Xadd], AtomicOp::Xadd),
        row(&[Xchg], AtomicOp::Xchg),
        row(&[Cmpxchg], AtomicOp::Cmpxchg),
        row(&[Bts, Btr, Btc], AtomicOp::BitTestModify),
    ],
);

/// The operands of a locked instruction, read before the operation.
struct Operands {
    size: u8,
    addr: u64,
    /// The register operand's value, or the immediate (masked to `size`), or 0.
    src: u64,
}

fn operands(cpu: &mut Cpu, ins: &Instruction) -> Operands {
    let size = ins.memory_size().size() as u8;
    let addr = ea(&mut Live::new(cpu), ins);
    let reg: Option<Gpr> = (0..ins.op_count())
        .find(|&i| ins.op_kind(i) == OpKind::Register)
        .and_then(|i| gpr(ins.op_register(i)));
    let src = match reg {
        Some(g) => read_gpr(&mut Live::new(cpu), g),
        None => (0..ins.op_count())
            .find(|&i| ins.op_kind(i) != OpKind::Memory && ins.op_kind(i) != OpKind::Register)
            .map(|i| ins.immediate(i) & size_mask(size))
            .unwrap_or(0),
    };
    Operands { size, addr, src }
}

/// Runs one locked instruction (`needs_atomic`) of the family: the forms `semantics::locked`
/// runs (every valid encoding of its rows) with its semantics, the others here.
pub fn exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    if super::locked::supported(ins) {
        super::locked::exec(&mut Live::new(cpu), ins);
        return Ok(());
    }
    let bad = crate::cpu::fault::UNIMPLEMENTED;
    let op = FAMILY.row(ins.mnemonic()).ok_or(bad)?.handler;
    let o = operands(cpu, ins);
    let m = ins.mnemonic();
    let size = o.size;
    match op {
        AtomicOp::Alu => {
            rmw(cpu, o.addr, size, |c, old| {
                super::alu(&mut Live::new(c), m, size, old, o.src)
            });
        }
        AtomicOp::Neg => {
            rmw(cpu, o.addr, size, |c, old| {
                super::alu(&mut Live::new(c), Sub, size, 0, old)
            });
        }
        AtomicOp::Not => {
            rmw(cpu, o.addr, size, |_, old| !old);
        }
        AtomicOp::BitTestModify => bit_test_modify(cpu, ins, &o),
        // `locked` runs every form of these there is.
        AtomicOp::IncDec | AtomicOp::Xadd | AtomicOp::Xchg | AtomicOp::Cmpxchg => return Err(bad),
    }
    Ok(())
}

/// bts/btr/btc: a register bit offset may address beyond the operand (signed, in units of
/// the operand size); an immediate one is taken modulo the operand width.
fn bit_test_modify(cpu: &mut Cpu, ins: &Instruction, o: &Operands) {
    let size = o.size;
    let bits = size as u64 * 8;
    let mut addr = o.addr;
    let bit = if ins.op_kind(1) == OpKind::Register {
        let off = sext(&mut crate::cpu::ops::Values, o.src, op_size(ins, 1)) as i64;
        addr = addr.wrapping_add((off.div_euclid(bits as i64) * size as i64) as u64);
        (off.rem_euclid(bits as i64)) as u64
    } else {
        o.src & (bits - 1)
    };
    let m = ins.mnemonic();
    let old = rmw(cpu, addr, size, |_, old| match m {
        Bts => old | (1 << bit),
        Btr => old & !(1 << bit),
        _ => old ^ (1 << bit),
    });
    let f = crate::cpu::flags::materialize(&mut crate::cpu::ops::Values, &cpu_flags(cpu));
    store_raw_flags(cpu, (f & !rf::CF) | ((old >> bit) & 1));
}
