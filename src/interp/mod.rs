//! Baseline tier: runs decoded blocks through the semantics over concrete values.

use crate::cpu::{exit, fault, Cpu};
use crate::decode::Block;
use crate::mem::exec::CodePtr;
use crate::semantics::{self, concrete::Live};
use std::cell::Cell;
use std::sync::OnceLock;

thread_local! {
    /// The block `helper_run_block` runs (set just before entering it).
    static BLOCK: Cell<*const Block> = const { Cell::new(std::ptr::null()) };
}

/// The trampoline into guest code: `enter(cpu, code)` (the JIT's `EnterFn`).
pub type Trampoline = unsafe extern "C" fn(*mut Cpu, CodePtr) -> u64;

/// The trampoline and the unit-shaped shim that calls `helper_run_block`, registered once by
/// the dispatcher.
static ENTRY: OnceLock<(Trampoline, CodePtr)> = OnceLock::new();

/// Registers the way blocks are entered so that guest memory faults inside them become guest
/// signals (see `jit::Runtime`); until then, and on hosts without one, blocks run directly.
pub fn register_trampoline(enter: Trampoline, shim: CodePtr) {
    let _ = ENTRY.set((enter, shim));
}

/// Runs one block entered through the registered trampoline, so that a guest memory fault
/// inside it becomes a guest signal; without one, runs it directly.
pub fn run_block_guarded(cpu: &mut Cpu, block: &Block) -> u64 {
    match ENTRY.get() {
        Some(&(enter, shim)) => {
            BLOCK.set(block);
            // SAFETY: the shim is a unit-shaped function calling `helper_run_block` with this
            // context; `block` outlives the call.
            unsafe { enter(cpu, shim) }
        }
        None => run_block(cpu, block),
    }
}

/// The helper behind the baseline tier's shim.
///
/// # Safety
/// `cpu` is the live context of the calling thread (compiled code passes its own).
pub unsafe extern "C" fn helper_run_block(cpu: *mut Cpu, _: u64, _: u64) -> u64 {
    let b = BLOCK.get();
    // SAFETY: `run_block_guarded` set the block and holds it for the duration of the call;
    // the shim passes the live context.
    unsafe { run_block(&mut *cpu, &*b) }
}

/// Runs one block; returns the exit code and leaves the next rip in `cpu.rip`.
pub fn run_block(cpu: &mut Cpu, block: &Block) -> u64 {
    let mut e = Live::new(cpu);
    for ((ins, &live), &route) in block.insns.iter().zip(&block.flags_live).zip(&block.routes) {
        // Semantics touch memory before they write registers, so at a host fault the context
        // holds the state before this instruction.
        e.cpu.insn_off = ins.ip() - block.start;
        e.flags_live = live;
        if route & semantics::route::ALIGN16 != 0 && semantics::misalignment(&mut e, ins) != 0 {
            e.cpu.fault = fault::GP;
            e.cpu.fault_addr = ins.ip();
            e.cpu.rip = ins.ip();
            return exit::FAULT;
        }
        semantics::exec_routed(&mut e, ins, route);
        if let Some(t) = e.jumped {
            let code = e.exit;
            e.cpu.rip = t;
            return code;
        }
        // Woken meanwhile, maybe by this instruction writing translated code (`mem::watch`),
        // perhaps the rest of this block: the dispatcher sees to it before the block goes on.
        if e.cpu.interrupt.0.load(std::sync::atomic::Ordering::Relaxed) != 0 {
            e.cpu.rip = ins.next_ip();
            return exit::NEXT;
        }
    }
    cpu.rip = block.start + block.len;
    exit::NEXT
}
