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
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64};
use std::sync::{Arc, OnceLock};
use steps::StepFn;

mod steps;

/// Where the guest goes after a block the baseline tier ran, as the caller of
/// `enter_guarded` decides: on to another block here, into a compiled unit, or back to
/// whoever entered with an exit code.
pub enum Go {
    /// Run this program next (alive and unchanged until the entry returns).
    Run(*const Program),
    /// Go on into the compiled unit at this entry: the guest state is whole in the context,
    /// and its stack pointer in reach.
    Enter(CodePtr),
    /// Return this exit code (`exit::NEXT` for the dispatcher, `exit::RETURN` for the unit
    /// that called and waits for the context's rip).
    Back(u64),
}

/// What gives the block to run next, for the rip the last one left (`enter_guarded`):
/// the closure's address and the function that calls it.
type Next = (*mut (), unsafe fn(*mut (), &mut Cpu, Option<&Program>) -> Go);

thread_local! {
    /// The program `helper_run_block` runs first when the dispatcher enters it (set just
    /// before, taken by it); null when compiled code entered it through the chaining table.
    static PROGRAM: Cell<*const Program> = const { Cell::new(no_program()) };
    /// What gives the blocks it runs on to, if it runs on.
    static NEXT: Cell<Option<Next>> = const { Cell::new(None) };
}

/// A null program pointer.
const fn no_program() -> *const Program {
    std::ptr::slice_from_raw_parts(std::ptr::null::<Step>(), 0) as *const Program
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
    enter_guarded(cpu, Entry::Blocks(program), &mut |_, _| Go::Back(exit::NEXT)).code
}

/// What an entry through `enter_guarded` ended with: the exit code,
/// and whether a fault it ended with happened in the baseline tier (whose context is exact),
/// not in compiled code.
pub struct Ended {
    pub code: u64,
    pub in_baseline: bool,
}

/// Where an entry through `enter_guarded` starts: a compiled unit, or a block in the
/// baseline tier.
pub enum Entry<'a> {
    Unit(CodePtr),
    Blocks(&'a Program),
}

/// Enters guest code through the trampoline: the compiled unit, or the program and then
/// block after block as `next` says for the rip the last left (when that one ended with
/// `exit::NEXT`), all in one entry. An interpreted block costs no return to the dispatcher
/// and no new entry; where `next` leads into a compiled unit the shim goes on into it, and
/// where compiled code goes on into the shim through the chaining table, `next` gives the
/// block to run. `next` gives blocks that stay alive and unchanged until this returns.
/// Without a trampoline (a host without a JIT), runs the one block directly.
pub fn enter_guarded<F: FnMut(&mut Cpu, Option<&Program>) -> Go>(
    cpu: &mut Cpu,
    entry: Entry<'_>,
    next: &mut F,
) -> Ended {
    /// Calls the closure at `f`.
    unsafe fn call<F: FnMut(&mut Cpu, Option<&Program>) -> Go>(
        f: *mut (),
        cpu: &mut Cpu,
        last: Option<&Program>,
    ) -> Go {
        // SAFETY: `f` is the `F` `enter_guarded` borrows for as long as NEXT holds it.
        unsafe { (*(f as *mut F))(cpu, last) }
    }
    let Some(&(enter, shim)) = ENTRY.get() else {
        let Entry::Blocks(first) = entry else {
            unreachable!("compiled code entered without a trampoline")
        };
        return Ended {
            code: run_block(cpu, first),
            in_baseline: true,
        };
    };
    let code = match entry {
        Entry::Unit(code) => code,
        Entry::Blocks(first) => {
            PROGRAM.set(first);
            shim
        }
    };
    NEXT.set(Some((next as *mut F as *mut (), call::<F>)));
    // SAFETY: `code` is the shim or a compiled unit, entered through the trampoline with
    // this context; what `next` gives lives until the call returns.
    let code = unsafe { enter(cpu, code) };
    // Also where a guest fault left the shim early.
    NEXT.set(None);
    PROGRAM.set(no_program());
    cpu.enter_next = 0;
    Ended {
        code,
        in_baseline: std::mem::take(&mut cpu.in_baseline) != 0,
    }
}

/// The helper behind the baseline tier's shim: runs the program the dispatcher gave, or,
/// entered from compiled code through the chaining table, the one `next` gives for the
/// context's rip; then on as `next` says. Leaves the compiled unit to go on to in
/// `Cpu::enter_next`.
///
/// # Safety
/// `cpu` is the live context of the calling thread (compiled code passes its own).
pub unsafe extern "C" fn helper_run_block(cpu: *mut Cpu, _: u64, _: u64) -> u64 {
    // SAFETY: the dispatcher set the first program and holds it for the duration of the
    // call; the shim passes the live context; blocks `next` gives live until the call
    // returns.
    unsafe {
        let cpu = &mut *cpu;
        let next = NEXT.get();
        let given = PROGRAM.replace(no_program());
        let mut last = (!given.is_null()).then_some(given);
        let mut code = exit::NEXT;
        if let Some(p) = last {
            cpu.in_baseline = 1;
            code = run_block(cpu, &*p);
        }
        while let (exit::NEXT, Some((f, call))) = (code, next) {
            match call(f, cpu, last.map(|p| &*p)) {
                Go::Run(p) => {
                    last = Some(p);
                    (*p).prefetch_successors();
                    cpu.in_baseline = 1;
                    code = run_block(cpu, &*p);
                }
                Go::Enter(unit) => {
                    cpu.enter_next = unit.addr();
                    break;
                }
                Go::Back(c) => {
                    code = c;
                    break;
                }
            }
        }
        cpu.in_baseline = 0;
        code
    }
}

/// A block in the baseline tier's form: each instruction with its answers to the semantics'
/// questions (`semantics::insn::Compact`) and its handler, both worked out once, here.
///
/// What running it and running on from it read sits in the program itself (its end, its
/// instructions, how often it ran, whether it may be run on to, the programs after it), so
/// that going from one interpreted block to the next touches the next program and its steps
/// and nothing else.
#[repr(C)]
pub struct Program {
    head: Head,
    /// In the same allocation as `head`, right after it.
    steps: [Step],
}

/// A program's fields besides its steps, those that running on to it reads first.
#[repr(C)]
struct Head {
    /// Executions in the baseline tier, for its owner's tiering policy (`count`, `counted`).
    runs: AtomicU32,
    /// Runs before which it may be run on to without the owner's say (`open_until`): 0 when
    /// it must not be run on to at all.
    until: AtomicU32,
    /// How many steps it has.
    len: usize,
    /// The guest address after its last instruction.
    end: u64,
    /// Its instructions: those of `block`, which it holds.
    insns: *const Instruction,
    block: Arc<Block>,
    /// The last two programs run after this one, for the caller of `enter_guarded`
    /// (`successor`, `remember`).
    successors: [Successor; 2],
}

// SAFETY: `insns` points into `block`'s instructions, which `block` holds immutable for as
// long as the program lives; everything else is Send and Sync.
unsafe impl Send for Program {}
// SAFETY: as above.
unsafe impl Sync for Program {}

/// A program run after another: its rip, the program, and the owner's generation of
/// programs it was recorded in (`Program::successor`).
#[derive(Default)]
struct Successor {
    rip: AtomicU64,
    /// The program's address (`Program::at`).
    program: AtomicPtr<u8>,
    generation: AtomicU64,
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
    pub fn new(block: Arc<Block>) -> Arc<Program> {
        let steps: Vec<Step> = block
            .insns
            .iter()
            .zip(&block.routes)
            .zip(&block.flags_live)
            .map(|((ins, &route), &flags_live)| Step::new(ins, route, flags_live, block.start))
            .collect();
        let head = Head {
            runs: AtomicU32::new(0),
            until: AtomicU32::new(0),
            len: steps.len(),
            end: block.start + block.len,
            insns: block.insns.as_ptr(),
            block,
            successors: Default::default(),
        };
        Program::from_parts(head, steps)
    }

    /// The program at `addr`, from its address alone.
    ///
    /// # Safety
    /// `addr` is a live program's address.
    unsafe fn at(addr: *const u8) -> *const Program {
        // SAFETY: a program begins with its head, which holds its length.
        let len = unsafe { (*(addr as *const Head)).len };
        std::ptr::slice_from_raw_parts(addr as *const Step, len) as *const Program
    }

    /// One allocation holding `head` and then `steps`.
    fn from_parts(head: Head, steps: Vec<Step>) -> Arc<Program> {
        let n = steps.len();
        let (layout, at) = std::alloc::Layout::new::<Head>()
            .extend(std::alloc::Layout::array::<Step>(n).expect("a block's steps fit in memory"))
            .expect("a block's steps fit in memory");
        let layout = layout.pad_to_align();
        // SAFETY: the layout is `Program`'s (`repr(C)`: the head, then the steps at `at`) for
        // `n` steps, and never of size 0; every field is written before the box owns it, and
        // the box frees it with that same layout (`Layout::for_value`).
        unsafe {
            let mem = std::alloc::alloc(layout);
            if mem.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            let p = std::ptr::slice_from_raw_parts_mut(mem as *mut Step, n) as *mut Program;
            std::ptr::addr_of_mut!((*p).head).write(head);
            let first = mem.add(at) as *mut Step;
            for (k, step) in steps.into_iter().enumerate() {
                first.add(k).write(step);
            }
            Arc::from(Box::from_raw(p))
        }
    }

    pub fn block(&self) -> &Arc<Block> {
        &self.head.block
    }

    /// Its guest instructions.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Its executions counted so far.
    pub fn count(&self) -> u32 {
        self.head.runs.load(Relaxed)
    }

    /// Counts one execution; returns the count.
    pub fn counted(&self) -> u32 {
        let n = self.head.runs.load(Relaxed).saturating_add(1);
        self.head.runs.store(n, Relaxed);
        n
    }

    /// Lets it be run on to (`run_on_to`) while it has run fewer than `runs` times: 0 never,
    /// `u32::MAX` always.
    pub fn open_until(&self, runs: u32) {
        self.head.until.store(runs, Relaxed);
    }

    /// Counts an execution reached by running on from another block, if it may be run on
    /// to (`open_until`).
    pub fn run_on_to(&self) -> bool {
        let n = self.head.runs.load(Relaxed);
        let open = n < self.head.until.load(Relaxed);
        if open {
            self.head.runs.store(n + 1, Relaxed);
        }
        open
    }

    /// The program `remember` was last given for a block after this one at `rip`, if it was
    /// one of the last two and given in generation `generation` of its owner's programs (its
    /// owner frees programs only in a later generation).
    pub fn successor(&self, rip: u64, generation: u64) -> Option<*const Program> {
        self.head
            .successors
            .iter()
            .find(|s| s.rip.load(Relaxed) == rip && s.generation.load(Relaxed) == generation)
            // SAFETY: `remember` stored the address of a program.
            .map(|s| unsafe { Program::at(s.program.load(Relaxed)) })
    }

    /// Remembers `next` for the block after this one at `rip`, in generation `generation` of
    /// its owner's programs, in place of the older of the two it holds.
    pub fn remember(&self, rip: u64, next: &Arc<Program>, generation: u64) {
        let [newer, older] = &self.head.successors;
        older.rip.store(newer.rip.load(Relaxed), Relaxed);
        older.program.store(newer.program.load(Relaxed), Relaxed);
        older.generation.store(newer.generation.load(Relaxed), Relaxed);
        newer.rip.store(rip, Relaxed);
        newer.program.store(Arc::as_ptr(next) as *mut u8, Relaxed);
        newer.generation.store(generation, Relaxed);
    }

    /// Asks the host to bring the heads and first steps of the programs remembered after
    /// this one into its caches while this one runs: running on to the next block otherwise
    /// waits for them (most of the time of running on from block to block went to that wait:
    /// a cold `cc1` decodes some 100 MB of programs).
    #[inline(always)]
    fn prefetch_successors(&self) {
        for s in &self.head.successors {
            let at = s.program.load(Relaxed);
            if !at.is_null() {
                prefetch(at);
                prefetch(at.wrapping_add(64));
                prefetch(at.wrapping_add(128));
            }
        }
    }

    /// Its steps, each with its instruction.
    fn steps(&self) -> impl Iterator<Item = (&Step, &Instruction)> {
        // SAFETY: `insns` points at `block.insns`, one instruction per step, alive as long as
        // `self`.
        let insns = unsafe { std::slice::from_raw_parts(self.head.insns, self.steps.len()) };
        self.steps.iter().zip(insns)
    }
}

/// A hint that the bytes at `at` are read soon. It never faults: a program remembered may
/// since have been freed (`Program::successor` checks its generation before it is used).
#[inline(always)]
fn prefetch(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// Runs one block; returns the exit code and leaves the next rip in `cpu.rip`.
pub fn run_block(cpu: &mut Cpu, program: &Program) -> u64 {
    let mut e = Live::new(cpu);
    for (step, ins) in program.steps() {
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
    cpu.rip = program.head.end;
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
