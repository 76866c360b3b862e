//! Baseline tier: runs decoded blocks through the semantics over concrete values.

use crate::cpu::{exit, fault, Cpu};
use crate::decode::Block;
use crate::mem::exec::CodePtr;
use crate::semantics::{self, concrete::Live};
use std::cell::Cell;
use std::sync::OnceLock;

/// What gives the block to run next, for the rip the last one left (`run_blocks_guarded`):
/// the closure's address and the function that calls it.
type Next = (*mut (), unsafe fn(*mut (), &mut Cpu) -> Option<*const Block>);

thread_local! {
    /// The block `helper_run_block` runs (set just before entering it).
    static BLOCK: Cell<*const Block> = const { Cell::new(std::ptr::null()) };
    /// What gives the blocks it runs on to, if it runs on.
    static NEXT: Cell<Option<Next>> = const { Cell::new(None) };
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

/// Runs `first`, then block after block as long as `next` gives one for the rip the last
/// left (and that one ended with `exit::NEXT`), all in one entry through the trampoline: an
/// interpreted block costs no return to the dispatcher and no new entry. `next` gives
/// blocks that stay alive and unchanged until this returns; None sends the run back to the
/// dispatcher.
pub fn run_blocks_guarded<F: FnMut(&mut Cpu) -> Option<*const Block>>(
    cpu: &mut Cpu,
    first: &Block,
    next: &mut F,
) -> u64 {
    /// Calls the closure at `f`.
    unsafe fn call<F: FnMut(&mut Cpu) -> Option<*const Block>>(f: *mut (), cpu: &mut Cpu) -> Option<*const Block> {
        // SAFETY: `f` is the `F` `run_blocks_guarded` borrows for as long as NEXT holds it.
        unsafe { (*(f as *mut F))(cpu) }
    }
    if ENTRY.get().is_none() {
        return run_block(cpu, first);
    }
    NEXT.set(Some((next as *mut F as *mut (), call::<F>)));
    let code = run_block_guarded(cpu, first);
    // Also where a guest fault left the shim early.
    NEXT.set(None);
    code
}

/// The helper behind the baseline tier's shim.
///
/// # Safety
/// `cpu` is the live context of the calling thread (compiled code passes its own).
pub unsafe extern "C" fn helper_run_block(cpu: *mut Cpu, _: u64, _: u64) -> u64 {
    // SAFETY: `run_block_guarded` set the block and holds it for the duration of the call;
    // the shim passes the live context; blocks `next` gives live until the call returns.
    unsafe {
        let cpu = &mut *cpu;
        let mut code = run_block(cpu, &*BLOCK.get());
        if let Some((f, call)) = NEXT.get() {
            while code == exit::NEXT {
                let Some(b) = call(f, cpu) else { break };
                code = run_block(cpu, &*b);
            }
        }
        code
    }
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
