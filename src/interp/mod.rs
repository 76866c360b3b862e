//! Baseline tier: runs decoded blocks through the semantics over concrete values.

use crate::cpu::{exit, fault, Cpu};
use crate::decode::Block;
use crate::semantics::{self, concrete::Live};
use std::cell::Cell;

thread_local! {
    /// The block `helper_run_block` runs (set just before entering it).
    static BLOCK: Cell<*const Block> = const { Cell::new(std::ptr::null()) };
}

/// Runs one block entered through the trampoline, so that a guest memory fault inside it
/// becomes a guest signal (see `jit::Runtime`); without a runtime, runs it directly.
pub fn run_block_guarded(cpu: &mut Cpu, block: &Block) -> u64 {
    match crate::jit::runtime() {
        Some(rt) => {
            BLOCK.set(block);
            // SAFETY: the shim is a unit-shaped function calling `helper_run_block` with this
            // context; `block` outlives the call.
            unsafe { (rt.enter())(cpu, rt.interp()) }
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
    }
    cpu.rip = block.start + block.len;
    exit::NEXT
}
