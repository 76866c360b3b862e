//! Semantics over concrete values: an `Emitter` that acts on a live `Cpu` and guest memory (its
//! arithmetic is `cpu::ops::Values`, its flags `cpu::flags`). The baseline tier runs on it, and
//! so do the helpers compiled code calls, so both tiers execute literally the same code for
//! everything not lowered inline.

use super::emitter::{Emitter, Rmw, VOp, VShift};
use super::vector;
use crate::cpu::flags::{arith_rflags, cpu_cond, store_flags, Cc, Flags};
use crate::cpu::ops::{Bin, Cmp, Ops, Un, Values};
use crate::cpu::{exit, Cpu};
use iced_x86::Instruction;

/// Helper entry: the condition `cc` of the CPU's flags, as 0/1.
///
/// # Safety
/// `cpu` is the live context of the calling thread (compiled code passes its own).
pub unsafe extern "C" fn helper_cond(cpu: *mut Cpu, cc: u64, _: u64) -> u64 {
    // SAFETY: compiled code passes its own live context.
    let cpu = unsafe { &*cpu };
    cpu_cond(cpu, Cc::from_u8(cc as u8)) as u64
}

/// Helper entry: materialised arithmetic flags.
///
/// # Safety
/// `cpu` is the live context of the calling thread (compiled code passes its own).
pub unsafe extern "C" fn helper_rflags(cpu: *mut Cpu, _: u64, _: u64) -> u64 {
    // SAFETY: compiled code passes its own live context.
    let cpu = unsafe { &*cpu };
    arith_rflags(cpu)
}

#[inline]
pub fn load(addr: u64, size: u8) -> u64 {
    let p = crate::mem::host(addr);
    // SAFETY: the pointer lies in the reservation (`mem::host`: beyond the guest space or in
    // its null page, in the guard); unmapped pages fault like the guest's.
    unsafe {
        match size {
            1 => *p as u64,
            2 => (p as *const u16).read_unaligned() as u64,
            4 => (p as *const u32).read_unaligned() as u64,
            _ => (p as *const u64).read_unaligned(),
        }
    }
}

#[inline]
pub fn store(addr: u64, v: u64, size: u8) {
    let p = crate::mem::host(addr);
    // SAFETY: as in `load`.
    unsafe {
        match size {
            1 => *p = v as u8,
            2 => (p as *mut u16).write_unaligned(v as u16),
            4 => (p as *mut u32).write_unaligned(v as u32),
            _ => (p as *mut u64).write_unaligned(v),
        }
    }
}

/// An `Emitter` that executes against a live CPU.
pub struct Live<'a> {
    pub cpu: &'a mut Cpu,
    /// Set by a block-ending instruction: the next rip and the exit code.
    pub jumped: Option<u64>,
    pub exit: u64,
    /// Liveness of the current instruction's flags (set by the block driver).
    pub flags_live: bool,
}

impl<'a> Live<'a> {
    pub fn new(cpu: &'a mut Cpu) -> Self {
        Live {
            cpu,
            jumped: None,
            exit: exit::NEXT,
            flags_live: true,
        }
    }
}

/// The same arithmetic as `Values`.
impl Ops for Live<'_> {
    type V = u64;
    #[inline]
    fn imm(&mut self, v: u64) -> u64 {
        v
    }
    #[inline]
    fn bin(&mut self, op: Bin, a: u64, b: u64) -> u64 {
        Values.bin(op, a, b)
    }
    #[inline]
    fn un(&mut self, op: Un, a: u64) -> u64 {
        Values.un(op, a)
    }
    #[inline]
    fn cmp(&mut self, c: Cmp, a: u64, b: u64) -> u64 {
        Values.cmp(c, a, b)
    }
    #[inline]
    fn select(&mut self, c: u64, a: u64, b: u64) -> u64 {
        Values.select(c, a, b)
    }
}

impl Emitter for Live<'_> {
    type X = u128;
    #[inline]
    fn get_xmm(&mut self, i: usize) -> u128 {
        self.cpu.xmm[i][0] as u128 | (self.cpu.xmm[i][1] as u128) << 64
    }
    #[inline]
    fn set_xmm(&mut self, i: usize, v: u128) {
        self.cpu.xmm[i] = [v as u64, (v >> 64) as u64];
    }
    fn load_x(&mut self, addr: u64) -> u128 {
        load(addr, 8) as u128 | (load(addr.wrapping_add(8), 8) as u128) << 64
    }
    fn store_x(&mut self, addr: u64, v: u128) {
        store(addr, v as u64, 8);
        store(addr.wrapping_add(8), (v >> 64) as u64, 8);
    }
    fn x_from_halves(&mut self, lo: u64, hi: u64) -> u128 {
        lo as u128 | (hi as u128) << 64
    }
    fn x_half(&mut self, v: u128, hi: bool) -> u64 {
        if hi {
            (v >> 64) as u64
        } else {
            v as u64
        }
    }
    fn vop(&mut self, op: VOp, a: u128, b: u128) -> u128 {
        vector::vop(op, a, b)
    }
    fn vshift(&mut self, op: VShift, a: u128, count: u8) -> u128 {
        vector::vshift(op, a, count)
    }
    fn vshuffle(&mut self, a: u128, b: u128, idx: [u8; 16]) -> u128 {
        vector::vshuffle(a, b, idx)
    }
    fn vswizzle(&mut self, a: u128, idx: u128) -> u128 {
        vector::vswizzle(a, idx)
    }
    fn vmovmsk(&mut self, a: u128, lane: u8) -> u64 {
        vector::vmovmsk(a, lane)
    }
    #[inline]
    fn get_reg(&mut self, r: usize) -> u64 {
        self.cpu.gpr[r & 15]
    }
    #[inline]
    fn set_reg(&mut self, r: usize, v: u64) {
        self.cpu.gpr[r & 15] = v;
    }
    #[inline]
    fn load(&mut self, addr: u64, size: u8) -> u64 {
        load(addr, size)
    }
    #[inline]
    fn store(&mut self, addr: u64, v: u64, size: u8) {
        store(addr, v, size)
    }
    fn atomic_rmw(&mut self, op: Rmw, addr: u64, v: u64, size: u8) -> u64 {
        super::atomic::update(addr, size, |old| match op {
            Rmw::Swap => v,
            Rmw::Add => old.wrapping_add(v),
            Rmw::And => old & v,
            Rmw::Or => old | v,
            Rmw::Xor => old ^ v,
        })
    }
    fn atomic_cas(&mut self, addr: u64, expected: u64, new: u64, size: u8) -> u64 {
        super::atomic::update(addr, size, |old| if old == expected { new } else { old })
    }
    fn repeat_store(&mut self, dst: u64, v: u64, count: u64, size: u8) {
        for k in 0..count {
            store(dst.wrapping_add(k * u64::from(size)), v, size);
        }
    }
    fn repeat_copy(&mut self, dst: u64, src: u64, count: u64, size: u8) {
        for k in 0..count {
            let at = k * u64::from(size);
            let v = load(src.wrapping_add(at), size);
            store(dst.wrapping_add(at), v, size);
        }
    }
    fn direction(&mut self) -> u64 {
        self.cpu.df
    }
    fn seg_base(&mut self, fs: bool) -> u64 {
        if fs {
            self.cpu.fs_base
        } else {
            self.cpu.gs_base
        }
    }
    #[inline]
    fn set_flags(&mut self, f: Flags<u64>) {
        if self.flags_live {
            store_flags(self.cpu, f)
        }
    }
    #[inline]
    fn flags_needed(&self) -> bool {
        self.flags_live
    }
    #[inline(always)]
    fn cond(&mut self, cc: Cc) -> u64 {
        cpu_cond(self.cpu, cc) as u64
    }
    fn rflags(&mut self) -> u64 {
        arith_rflags(self.cpu)
    }
    #[inline]
    fn code_addr(&mut self, abs: u64) -> u64 {
        abs
    }
    #[inline]
    fn jump(&mut self, target: u64) {
        self.jumped = Some(target);
    }
    fn syscall(&mut self, next: u64) {
        self.jumped = Some(next);
        self.exit = exit::SYSCALL;
    }
    fn slow_unless(&mut self, ok: u64, ins: &Instruction) -> bool {
        if ok == 0 {
            self.slow(ins);
        }
        ok != 0
    }
    fn slow(&mut self, ins: &Instruction) {
        if let Err(code) = super::slow::exec(self.cpu, ins) {
            self.cpu.fault = code;
            self.cpu.fault_addr = ins.ip();
            self.jumped = Some(ins.ip());
            self.exit = exit::FAULT;
        }
    }
}
