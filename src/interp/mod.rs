//! Baseline tier: runs decoded blocks through the semantics over concrete values, each block
//! made once into a `Program` of steps whose handlers were chosen for them (`steps`).

use crate::cpu::{exit, fault, Cpu};
use crate::decode::Block;
use crate::mem::exec::CodePtr;
use crate::semantics::generic::Op;
use crate::semantics::insn::{At, Compact};
use crate::semantics::{self, concrete::Live, Handler};
use iced_x86::Instruction;
use std::cell::Cell;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use steps::StepFn;

mod steps;

/// What gives the block to run next, for the rip the last one left (`run_blocks_guarded`):
/// the closure's address and the function that calls it.
type Next = (
    *mut (),
    unsafe fn(*mut (), &mut Cpu, &Program) -> Option<*const Program>,
);

thread_local! {
    /// The program `helper_run_block` runs (set just before entering it).
    static PROGRAM: Cell<*const Program> = const { Cell::new(std::ptr::null()) };
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
pub fn run_block_guarded(cpu: &mut Cpu, program: &Program) -> u64 {
    match ENTRY.get() {
        Some(&(enter, shim)) => {
            PROGRAM.set(program);
            // SAFETY: the shim is a unit-shaped function calling `helper_run_block` with this
            // context; `program` outlives the call.
            unsafe { enter(cpu, shim) }
        }
        None => run_block(cpu, program),
    }
}

/// Runs `first`, then block after block as long as `next` gives one for the rip the last
/// left (and that one ended with `exit::NEXT`), all in one entry through the trampoline: an
/// interpreted block costs no return to the dispatcher and no new entry. `next` gives
/// blocks that stay alive and unchanged until this returns; None sends the run back to the
/// dispatcher.
pub fn run_blocks_guarded<F: FnMut(&mut Cpu, &Program) -> Option<*const Program>>(
    cpu: &mut Cpu,
    first: &Program,
    next: &mut F,
) -> u64 {
    /// Calls the closure at `f`.
    unsafe fn call<F: FnMut(&mut Cpu, &Program) -> Option<*const Program>>(
        f: *mut (),
        cpu: &mut Cpu,
        last: &Program,
    ) -> Option<*const Program> {
        // SAFETY: `f` is the `F` `run_blocks_guarded` borrows for as long as NEXT holds it.
        unsafe { (*(f as *mut F))(cpu, last) }
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
        let mut program = PROGRAM.get();
        let mut code = run_block(cpu, &*program);
        if let Some((f, call)) = NEXT.get() {
            while code == exit::NEXT {
                let Some(p) = call(f, cpu, &*program) else { break };
                program = p;
                code = run_block(cpu, &*program);
            }
        }
        code
    }
}

/// A block in the baseline tier's form: each instruction with its answers to the semantics'
/// questions (`semantics::insn::Compact`) and its handler, both worked out once, here.
pub struct Program {
    block: Arc<Block>,
    steps: Box<[Step]>,
    /// The last two blocks run after this one, for the caller of `run_blocks_guarded`: each
    /// a rip and what the caller found for it (`successor`, `remember`).
    successors: [[AtomicU64; 2]; 2],
}

/// One instruction of a `Program`.
struct Step {
    compact: Compact,
    /// What runs it (`steps::step_fn`).
    run: StepFn,
    handler: Handler,
    /// Its offset in the block (`Cpu::insn_off`).
    offset: u32,
    /// What it is (`mark`).
    marks: u8,
}

/// What a step is, as bits of `Step::marks`.
mod mark {
    /// An arithmetic flag it writes may be read afterwards.
    pub const FLAGS_LIVE: u8 = 1;
    /// Its 16-byte memory operand must be 16-byte aligned (`semantics::route::ALIGN16`).
    pub const ALIGNED: u8 = 2;
    /// It may access guest memory (and so fault there).
    pub const ACCESSES: u8 = 4;
    /// It may write guest memory.
    pub const WRITES: u8 = 8;
}

impl Step {
    fn new(ins: &Instruction, route: u8, flags_live: bool, block_start: u64) -> Step {
        let compact = Compact::new(ins);
        let handler = semantics::handler(ins, route);
        let (accesses, writes) = match handler {
            Handler::Generic(op) => (
                compact.has_memory() || matches!(op, Op::Push | Op::Pop | Op::Call | Op::Ret | Op::Leave),
                compact.has_memory() || matches!(op, Op::Push | Op::Call),
            ),
            _ => (true, true),
        };
        let marks = [
            (flags_live, mark::FLAGS_LIVE),
            (route & semantics::route::ALIGN16 != 0, mark::ALIGNED),
            (accesses, mark::ACCESSES),
            (writes, mark::WRITES),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |m, (_, bit)| m | bit);
        Step {
            run: steps::step_fn(handler, ins.mnemonic(), compact.shape(), compact.op_size(0)),
            compact,
            handler,
            offset: (ins.ip() - block_start) as u32,
            marks,
        }
    }

    fn is(&self, m: u8) -> bool {
        self.marks & m != 0
    }
}

impl Program {
    pub fn new(block: Arc<Block>) -> Program {
        let steps = block
            .insns
            .iter()
            .zip(&block.routes)
            .zip(&block.flags_live)
            .map(|((ins, &route), &flags_live)| Step::new(ins, route, flags_live, block.start))
            .collect();
        Program {
            block,
            steps,
            successors: Default::default(),
        }
    }

    pub fn block(&self) -> &Arc<Block> {
        &self.block
    }

    /// What `remember` was last given for a block after this one at `rip`, if it was one of
    /// the last two.
    pub fn successor(&self, rip: u64) -> Option<u64> {
        self.successors
            .iter()
            .find(|[at, _]| at.load(Relaxed) == rip)
            .map(|[_, what]| what.load(Relaxed))
    }

    /// Remembers `what` for the block after this one at `rip`, in place of the older of the
    /// two it holds.
    pub fn remember(&self, rip: u64, what: u64) {
        let [newer, older] = &self.successors;
        for k in 0..2 {
            older[k].store(newer[k].load(Relaxed), Relaxed);
        }
        newer[0].store(rip, Relaxed);
        newer[1].store(what, Relaxed);
    }
}

/// Runs one block; returns the exit code and leaves the next rip in `cpu.rip`.
pub fn run_block(cpu: &mut Cpu, program: &Program) -> u64 {
    let mut e = Live::new(cpu);
    for (step, ins) in program.steps.iter().zip(&program.block.insns) {
        // Semantics touch memory before they write registers, so at a host fault the context
        // holds the state before this instruction.
        if step.is(mark::ACCESSES) {
            e.cpu.insn_off = step.offset as u64;
        }
        e.flags_live = step.is(mark::FLAGS_LIVE);
        if step.is(mark::ALIGNED) && misaligned(&mut e, step, ins) {
            return exit::FAULT;
        }
        (step.run)(&mut e, step, ins);
        if let Some(t) = e.jumped {
            let code = e.exit;
            e.cpu.rip = t;
            return code;
        }
        // Woken by this instruction writing translated code (`mem::watch`), perhaps the rest
        // of this block: the dispatcher sees to it before the block goes on. Anything else
        // that wakes the thread waits for the block's end.
        if step.is(mark::WRITES) && e.cpu.interrupt.0.load(std::sync::atomic::Ordering::Relaxed) != 0 {
            e.cpu.rip = step.compact.next_ip();
            return exit::NEXT;
        }
    }
    let block = &program.block;
    cpu.rip = block.start + block.len;
    exit::NEXT
}

/// Whether the 16-byte memory operand of a step that must be aligned is not; then the
/// context holds the #GP.
#[cold]
fn misaligned(e: &mut Live<'_>, step: &Step, ins: &Instruction) -> bool {
    let at = At {
        compact: &step.compact,
        ins,
    };
    if semantics::misalignment(e, &at) == 0 {
        return false;
    }
    e.cpu.fault = fault::GP;
    e.cpu.fault_addr = ins.ip();
    e.cpu.rip = ins.ip();
    true
}
