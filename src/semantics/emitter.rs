//! The interface x86 semantics are written against: values, arithmetic, guest state and exits.
//!
//! `Ops` (`cpu::ops`) is pure arithmetic on 64-bit values; `Emitter` adds the guest machine. The
//! baseline tier implements both over concrete `u64`s, the JIT over Cranelift values. Its
//! vocabulary of operations and lazy flags (`Bin`, `Cc`, `Flags`, ...) lives in `cpu`.

use crate::cpu::flags::{Cc, Flags};
use crate::cpu::ops::Ops;
use iced_x86::Instruction;

/// Lane-wise operations on 128-bit vectors; the `u8` is the lane width in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VOp {
    And,
    Or,
    Xor,
    /// `!a & b` (pandn).
    AndNot,
    Add(u8),
    Sub(u8),
    /// All-ones lanes where equal.
    CmpEq(u8),
    /// All-ones lanes where `a > b` (signed).
    CmpGt(u8),
    MinU(u8),
    MaxU(u8),
    MinS(u8),
    MaxS(u8),
    AddSatU(u8),
    SubSatU(u8),
    AddSatS(u8),
    SubSatS(u8),
    AvgU(u8),
    MulLo(u8),
    /// Signed words (or dwords) of a then b, narrowed with unsigned saturation.
    PackUs(u8),
    /// Same, narrowed with signed saturation.
    PackSs(u8),
}

/// Lane-wise shifts by a count below the lane width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VShift {
    Shl(u8),
    Shr(u8),
    Sar(u8),
}

/// What an atomic read-modify-write of guest memory does with its operand
/// (`Emitter::atomic_rmw`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rmw {
    /// Stores the operand.
    Swap,
    /// Stores the sum (modulo the access's size).
    Add,
    And,
    Or,
    Xor,
}

pub trait Emitter: Ops {
    /// A 128-bit vector value.
    type X: Copy;
    fn get_xmm(&mut self, i: usize) -> Self::X;
    fn set_xmm(&mut self, i: usize, v: Self::X);
    /// Loads 16 bytes (no alignment required).
    fn load_x(&mut self, addr: Self::V) -> Self::X;
    fn store_x(&mut self, addr: Self::V, v: Self::X);
    fn x_from_halves(&mut self, lo: Self::V, hi: Self::V) -> Self::X;
    fn x_half(&mut self, v: Self::X, hi: bool) -> Self::V;
    fn vop(&mut self, op: VOp, a: Self::X, b: Self::X) -> Self::X;
    fn vshift(&mut self, op: VShift, a: Self::X, count: u8) -> Self::X;
    /// Byte shuffle: result byte i is `a[idx[i]]` for idx < 16, else `b[idx[i] - 16]`.
    fn vshuffle(&mut self, a: Self::X, b: Self::X, idx: [u8; 16]) -> Self::X;
    /// Byte shuffle by a vector (pshufb): result byte i is `a[idx[i] & 15]`, or zero where
    /// `idx[i]` has its top bit set.
    fn vswizzle(&mut self, a: Self::X, idx: Self::X) -> Self::X;
    /// The sign bits of each lane (lane width in bytes) as an integer.
    fn vmovmsk(&mut self, a: Self::X, lane: u8) -> Self::V;

    /// Full 64-bit value of GPR `r` (0 = rax .. 15 = r15).
    fn get_reg(&mut self, r: usize) -> Self::V;
    fn set_reg(&mut self, r: usize, v: Self::V);
    /// Loads `size` bytes (1, 2, 4, 8), zero-extended.
    fn load(&mut self, addr: Self::V, size: u8) -> Self::V;
    fn store(&mut self, addr: Self::V, v: Self::V, size: u8);
    /// Combines `size` bytes (1, 2, 4, 8) at `addr` with `v` as `op` says, as one atomic
    /// access that orders every memory access around it (a locked instruction); returns the
    /// bytes it replaced, zero-extended.
    fn atomic_rmw(&mut self, op: Rmw, addr: Self::V, v: Self::V, size: u8) -> Self::V;
    /// Stores `new` at `addr` if the `size` bytes there equal `expected`, atomically and
    /// ordered as `atomic_rmw`; returns the bytes it found, zero-extended.
    fn atomic_cas(&mut self, addr: Self::V, expected: Self::V, new: Self::V, size: u8) -> Self::V;
    /// Stores the low `size` bytes of `v` into `count` consecutive elements of that size from
    /// `dst` up, the lowest first (a forward `rep stos`). The caller has checked that they lie
    /// on `dst`'s page (`semantics::repeat`).
    fn repeat_store(&mut self, dst: Self::V, v: Self::V, count: Self::V, size: u8);
    /// Copies `count` elements of `size` bytes from `src` up to `dst` up, one at a time, the
    /// lowest first, each loaded after the one before was stored (a forward `rep movs`, which
    /// repeats a pattern where the ranges overlap). The caller has checked that each range
    /// lies on one page.
    fn repeat_copy(&mut self, dst: Self::V, src: Self::V, count: Self::V, size: u8);
    /// The direction flag (DF), 0 or 1.
    fn direction(&mut self) -> Self::V;
    /// fs (true) or gs (false) segment base.
    fn seg_base(&mut self, fs: bool) -> Self::V;
    /// Records the flags of the current instruction (ignored when they are dead).
    fn set_flags(&mut self, f: Flags<Self::V>);
    /// Whether the current instruction's flag results may be read later.
    fn flags_needed(&self) -> bool;
    /// The arithmetic flags (RFLAGS bits) that may be read after the current instruction
    /// before they are written again: an instruction that keeps some flags as they were need
    /// not read those that nothing reads (reading them may take a helper call).
    fn flags_read_later(&self) -> u64 {
        crate::cpu::rflags::ARITH
    }
    /// The condition `cc` of the current flags, as 0 or 1.
    fn cond(&mut self, cc: Cc) -> Self::V;
    /// The arithmetic RFLAGS bits of the current flags.
    fn rflags(&mut self) -> Self::V;
    /// A guest code address (a branch target, a return address, a rip-relative operand) as a
    /// value. The JIT computes it from the unit's entry address, so compiled code does not
    /// depend on where its module is loaded.
    fn code_addr(&mut self, abs: u64) -> Self::V;
    /// Ends the block: execution continues at `target`.
    fn jump(&mut self, target: Self::V);
    /// Ends the block with a conditional branch (`cond` 0 or 1) between two known addresses.
    /// The JIT keeps both targets known, to branch inside a region; the default selects.
    fn branch(&mut self, cond: Self::V, taken: u64, fall: u64) {
        let t = self.code_addr(taken);
        let f = self.code_addr(fall);
        let r = self.select(cond, t, f);
        self.jump(r);
    }
    /// Ends the block with a system call; execution continues at `next` afterwards.
    fn syscall(&mut self, next: u64);
    /// Runs an instruction whose semantics are written over concrete state (`slow::exec`).
    fn slow(&mut self, ins: &Instruction);
    /// Runs `ins` through `slow` unless `ok` (0 or 1) holds: for semantics that handle the
    /// common case themselves and leave the rest (faults included) to the slow path. Returns
    /// whether the caller goes on with the common case: false when the slow path ran (the
    /// caller then returns at once). A JIT goes on in both cases, on the branch where `ok`
    /// holds, and joins the slow path's branch after the instruction: the caller reads every
    /// operand before, writes only registers and memory after, and does not end the block.
    fn slow_unless(&mut self, ok: Self::V, ins: &Instruction) -> bool;
}
