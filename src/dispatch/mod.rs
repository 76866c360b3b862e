//! The dispatcher: runs the guest by finding the unit for each rip (`units.rs`) and entering
//! it as compiled code or in the baseline tier, applies the tiering policy (background
//! compilation, `compile.rs`), runs guest threads and forks (`threads.rs`), finds the modules
//! code comes from and takes their cached units (`modules.rs`), gives this run's units to the
//! cache at exit (`persist.rs`), and wires the process-wide entry into guest code
//! (`runtime.rs`).

mod cached;
mod compile;
mod modules;
mod persist;
mod prefill;
mod registry;
pub mod runtime;
mod threads;
mod units;

use crate::cpu::{exit, fault, Cpu};
use crate::decode::Block;
use crate::interp::{Ended, Entry, Go, Program};
use crate::jit::{EnterFn, Jit, UnitFn};
use crate::linux::signals::Delivery;
use crate::linux::wake::Wake;
use crate::linux::{Process, SysResult};
use crate::mem::GUEST_SPACE;
use crate::stats::Stats;
use anyhow::Context;
use cache_format::{ConfigId, Hash, ModuleOffset};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

/// Blocks the baseline tier runs at most to replay a fault from a checkpoint before control
/// returns to the dispatcher (which continues correctly from wherever it stopped).
const REPLAY_BLOCKS: usize = 10_000;

/// Replays a guest memory fault in compiled code from the last checkpoint (`Engine::replay`):
/// `run` runs the guest block at the context's rip in the baseline tier and gives its exit
/// code and whether it writes memory (None where no block is there to run). Stops at the
/// fault again, or past the first block that writes memory, where the state is whole again.
pub fn replay_blocks(mut run: impl FnMut() -> Option<(u64, bool)>) -> u64 {
    for _ in 0..REPLAY_BLOCKS {
        let Some((code, wrote)) = run() else {
            break; // the dispatcher meets what stops there
        };
        if code != exit::NEXT || wrote {
            return code;
        }
    }
    exit::NEXT
}

pub use compile::HOT_THRESHOLD;

/// Most steps one entry of guest code takes without the dispatcher (`going_on`: blocks the
/// baseline tier runs on to, compiled units it goes on into, chaining-table misses) before
/// the dispatcher looks at compiles that finished.
const INTERPRETED_RUN: u32 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Tier {
    /// Baseline tier only.
    Interp,
    /// Every block compiled before it first runs.
    Jit,
    /// Baseline first, hot blocks compiled in the background, persistent cache used.
    Auto,
}

/// A mapped file holding guest code, as the cache knows it: its identity, where it is loaded
/// (guest address = load bias + offset in the module) and the guest range of its code.
#[derive(Clone, Copy)]
pub struct Module {
    pub hash: Hash,
    pub load_bias: u64,
    pub lo: u64,
    pub hi: u64,
}

impl Module {
    /// The offset in the module of guest address `rip`.
    pub fn offset_of(&self, rip: u64) -> ModuleOffset {
        ModuleOffset(rip.wrapping_sub(self.load_bias))
    }

    /// The guest address of an offset in the module, where it is loaded now.
    pub fn address_of(&self, offset: ModuleOffset) -> u64 {
        offset.0.wrapping_add(self.load_bias)
    }
}

/// Registers the wake word of `cpu`, a context that is never freed (`threads::retire`); None
/// when the table of wake words is full (`linux::wake`).
fn claim_wake(cpu: &Cpu) -> Option<Wake> {
    // SAFETY: the context is never freed, so its word lives as long as the table that holds
    // its address.
    let word: &'static AtomicU64 = unsafe { &*(&cpu.interrupt.0 as *const AtomicU64) };
    Wake::claim(word)
}

/// How a run ended.
pub enum Outcome {
    /// This thread exited (the process goes on while other threads run).
    Exit(i32),
    /// The process exits.
    ExitGroup(i32),
    /// The guest must die of this signal (as the kernel would have killed it).
    Signal(i32),
    /// The guest called execve: the process becomes Kiln running the new program.
    Exec(crate::linux::ExecRequest),
}

/// What every guest thread of a process shares: the tier, the JIT and its trampoline, the
/// compile workers, the configuration id, the main module and the translations.
#[derive(Clone)]
struct Shared {
    tier: Tier,
    jit: Option<Jit>,
    /// The quick JIT (`--tier auto`), for the blocks that become hot while compiles are
    /// backlogged (`compile::QUICK_BACKLOG`): their units serve this process only, and their
    /// blocks go to the cache as blocks, for optimised compiles (`persist`).
    quick: Option<Jit>,
    /// Trampoline into compiled code.
    enter: Option<EnterFn>,
    /// The baseline tier's shim, which compiled code goes on into through the chaining table
    /// for an interpreted block (`Units::chain_baseline`).
    shim: Option<UnitFn>,
    /// Compile workers (started on demand; afresh in a forked child).
    pool: compile::Workers,
    config: Option<ConfigId>,
    module: Module,
    registry: Arc<registry::Registry>,
    /// The program and when the run started (for the usage record).
    program: Option<(Arc<PathBuf>, Instant)>,
}

/// One guest thread's dispatcher.
pub struct Engine {
    pub cpu: Box<Cpu>,
    pub proc: Arc<Process>,
    pub stats: Stats,
    shared: Shared,
    /// For a guest thread created with CLONE_CHILD_CLEARTID: the guest tid word to clear and
    /// wake at its exit.
    clear_tid: Option<u64>,
    is_main: bool,
    /// The cache directory, when the cache is in use. The index is opened only to read at
    /// start and to write at exit, so concurrent runs rarely meet its lock.
    cache: Option<PathBuf>,
    units: units::Units,
    compiles: compile::Compiles,
    /// This thread's wake word (`Cpu::interrupt`), registered.
    wake: Wake,
    /// Blocks decoded for the baseline tier to replay (`replay_block`), by address; each is
    /// used while the guest's bytes there are still the ones it was decoded from.
    replayed_blocks: std::collections::HashMap<u64, Arc<Program>>,
}

impl Engine {
    /// The main thread's dispatcher: the program's module and the others already loaded (the
    /// dynamic loader), with their cached units when the cache is in use.
    pub fn new(
        cpu: Box<Cpu>,
        proc: Arc<Process>,
        tier: Tier,
        module: Module,
        extra: Vec<Module>,
        cache: Option<PathBuf>,
    ) -> anyhow::Result<Engine> {
        let jit = if tier == Tier::Interp { None } else { Some(Jit::new()?) };
        let cache = if tier == Tier::Auto { cache } else { None };
        // Without the cache nothing needs the id, and Kiln's binary is not hashed.
        let config = match (&jit, &cache) {
            (Some(jit), Some(dir)) => config_id(jit, dir),
            _ => None,
        };
        let cache = cache.filter(|_| config.is_some());
        let kept = cache.as_deref().zip(config.as_ref());
        let (enter, shim) = match (&jit, runtime::runtime_from(kept)) {
            (Some(_), Some(rt)) => (Some(rt.enter()), Some(rt.interp())),
            (Some(_), None) => anyhow::bail!("cannot build the trampoline into compiled code"),
            (None, _) => (None, None),
        };
        let pool = if tier == Tier::Auto {
            compile::Workers::on_demand()
        } else {
            compile::Workers::none()
        };
        let quick = if tier == Tier::Auto { Some(Jit::quick()?) } else { None };
        let shared = Shared {
            tier,
            jit,
            quick,
            enter,
            shim,
            pool,
            config,
            module,
            registry: Default::default(),
            program: None,
        };
        shared.registry.lock().modules.libs = extra.iter().map(|m| (m.lo, m.hi, Some(*m))).collect();
        let wake = claim_wake(&cpu).context("no wake word left for the main thread")?;
        let mut e = Engine::assemble(cpu, wake, proc, shared, cache);
        e.is_main = true;
        if let Some(dir) = e.cache.clone() {
            for m in std::iter::once(module).chain(extra) {
                e.load_cache(&dir, &m);
            }
        }
        Ok(e)
    }

    /// A dispatcher with empty unit tables over a CPU, wired to the helper table, the signal
    /// word and its own chaining table.
    /// `wake`: the wake word of `cpu`, registered (`claim_wake`).
    fn assemble(cpu: Box<Cpu>, wake: Wake, proc: Arc<Process>, shared: Shared, cache: Option<PathBuf>) -> Engine {
        let hot_after = match shared.tier {
            Tier::Auto => HOT_THRESHOLD - 1,
            _ => u32::MAX,
        };
        let mut units = units::Units::new(hot_after);
        units.shim = shared.shim;
        let mut e = Engine {
            cpu,
            proc,
            stats: Stats::default(),
            shared,
            clear_tid: None,
            is_main: false,
            cache,
            units,
            compiles: compile::Compiles::default(),
            replayed_blocks: Default::default(),
            wake,
        };
        e.cpu.helpers = runtime::HELPERS.as_ptr() as u64;
        e.cpu.miss_unit = e.shared.shim.map_or(0, |s| s.addr());
        e.shared.registry.count_alive(1);
        e
    }

    /// Runs the guest until it exits or dies.
    pub fn run(&mut self) -> Outcome {
        crate::linux::signals::set_current(&mut *self.cpu);
        loop {
            if self.compiles.pending > 0 {
                self.collect_compiled(false);
            } else if !self.compiles.quick_units.is_empty() {
                self.tier_up();
            }
            if crate::mem::watch::epoch() != self.units.log_cursor {
                self.drop_changed_code();
            }
            if self.shared.registry.compiled_len() != self.compiles.seen {
                self.pull_compiled();
            }
            if self.shared.registry.prefill_len() != self.units.prefills_seen {
                self.apply_prefills();
            }
            if self.wake.take() {
                if self.shared.registry.stopping() {
                    self.park();
                }
                if let Delivery::Terminate(sig) = self.proc.deliver_signal(&mut self.cpu) {
                    return Outcome::Signal(sig);
                }
            }
            let code = match self.step() {
                Ok(code) => code,
                Err(outcome) => return outcome,
            };
            let outcome = match code {
                exit::NEXT => None,
                exit::SYSCALL => self.syscall(),
                _ => self.fault(),
            };
            if let Some(o) = outcome {
                return o;
            }
        }
    }

    /// Runs the unit at the current rip once; returns its exit code, or how the run ends when
    /// no instruction can run there.
    fn step(&mut self) -> Result<u64, Outcome> {
        self.stats.dispatcher_entries += 1;
        let rip = self.cpu.rip;
        let mut i = self.unit_for(rip);
        if !self.still_matches(i) {
            self.units.drop_unit(i);
            self.stats.units_invalidated += 1;
            i = self.unit_for(rip);
        }
        let compiled = self.units.list[i].code.is_some() && self.shared.enter.is_some();
        if compiled && !crate::jit::stack_in_reach(self.cpu.gpr[4]) {
            // Compiled code accesses the stack unchecked at the stack pointer it is entered
            // with: where that is out of reach, the baseline tier runs the block.
            let block = self.decode_at(rip);
            if block.insns.is_empty() {
                return Ok(self.fetch_fault(rip));
            }
            return Ok(self.interpret(block));
        }
        if let Some(f) = self.units.list[i].code.filter(|_| self.shared.enter.is_some()) {
            // A unit reached through the dispatcher takes (back) its chaining slot, so that
            // the next exit to it from compiled code goes straight there.
            self.units.chain_unit(i, f);
            let ended = self.entered(Entry::Unit(f));
            self.stats.chain_misses += (ended.code == exit::NEXT) as u64;
            return Ok(self.settled(ended));
        }
        let (queued, ninsns) = (self.units.list[i].queued, self.units.list[i].ninsns);
        let Some(program) = self.units.program(i).map(Arc::as_ptr) else {
            return self.empty_block(i);
        };
        // SAFETY: a program lives as long as its unit, and only the dispatcher drops units,
        // which it does not do before this returns.
        let program = unsafe { &*program };
        self.stats.guest_insns_interp += ninsns;
        let count = program.counted();
        if self.shared.tier == Tier::Auto && !queued && count >= HOT_THRESHOLD {
            let code = crate::interp::run_block_guarded(&mut self.cpu, program);
            self.queue_compile(i);
            return Ok(code);
        }
        // Compiled code leaving for this block goes on in the baseline tier's shim.
        self.units.chain_baseline(rip);
        let ended = self.entered(Entry::Blocks(program));
        Ok(self.settled(ended))
    }

    /// The exit code of an entry of guest code, once a fault compiled code left for the
    /// dispatcher is seen to (the guest state made exact again); a fault in a block the
    /// baseline tier ran is exact already.
    fn settled(&mut self, ended: Ended) -> u64 {
        if ended.in_baseline || ended.code != exit::FAULT {
            return ended.code;
        }
        match self.cpu.fault {
            fault::MEMORY => self.replay(),
            fault::REPLAY => self.replay_block(),
            fault::WROTE_CODE => self.step_to_block_end(),
            _ => ended.code,
        }
    }

    /// Where the uncompiled unit `i` has no instruction to run: the fetch faults where its
    /// bytes are not executable; anything else stops the run.
    fn empty_block(&mut self, i: usize) -> Result<u64, Outcome> {
        let Some(block) = self.units.list[i].block.clone() else {
            unreachable!("uncompiled unit without a block")
        };
        match &block.stop {
            Some((addr, bytes, _)) if bytes.is_empty() => {
                // Not executable: the fetch faults (decoded afresh if the guest recovers).
                self.units.drop_unit(i);
                Ok(self.fetch_fault(*addr))
            }
            _ => Err(stop(&block)),
        }
    }

    /// Enters guest code (`enter`: a compiled unit, or the baseline tier's shim with its first
    /// block) with the context ready for compiled code (the chaining table as it is now, and
    /// whether links are allowed), the baseline tier running on from block to block as
    /// `going_on` says wherever the guest meets interpreted blocks.
    fn entered(&mut self, entry: Entry<'_>) -> Ended {
        // Read after the unit was found: a module whose units were just published has
        // forbidden links first if it must.
        self.cpu.links = self.shared.registry.links_allowed() as u64;
        // The table may have grown since the last entry.
        self.cpu.chain_table = self.units.chain_table_addr();
        self.cpu.chain_mask = self.units.chain_mask();
        let mut next = going_on(&mut self.units, &mut self.stats);
        crate::interp::enter_guarded(&mut self.cpu, entry, &mut next)
    }

    /// A guest memory access faulted in compiled code, which keeps the guest registers in host
    /// registers between checkpoints: the context holds the state at the last one (rip
    /// included), and nothing after it wrote guest memory. The baseline tier runs from there
    /// and faults again with the exact state before the faulting instruction; or, when another
    /// thread changed the mapping meanwhile, runs on past the next point compiled code would
    /// have checkpointed (an instruction that writes memory), where the state is whole again.
    fn replay(&mut self) -> u64 {
        self.cpu.fault = 0;
        self.cpu.insn_off = 0;
        self.stats.fault_replays += 1;
        replay_blocks(|| {
            let block = self.decode_at(self.cpu.rip);
            let wrote = block.insns.iter().any(crate::jit::writes_memory);
            (!block.insns.is_empty()).then(|| (self.interpret(block), wrote))
        })
    }

    /// The block the guest's executable bytes at `rip` hold now (for the baseline tier).
    fn decode_at(&self, rip: u64) -> Block {
        let len = self.proc.mem.executable_len(rip, 4096);
        let code = self.proc.mem.read_bytes(rip, len as usize).unwrap_or(&[]);
        crate::decode::decode_block(code, rip, crate::semantics::classify)
    }

    /// Runs the guest block from the last checkpoint before a float guard that failed
    /// (`fault::REPLAY`: the context's rip and state are the checkpoint's) in the baseline
    /// tier, to the block's end: the next unit starts where blocks start in every tier, so the
    /// units a run meets do not depend on which tier ran what.
    fn replay_block(&mut self) -> u64 {
        self.cpu.fault = 0;
        self.stats.fault_replays += 1;
        self.stats.guard_replays += 1;
        let rip = self.cpu.rip;
        let unchanged = |p: &Program| {
            let b = p.block();
            self.proc.mem.read_bytes(rip, b.bytes.len()) == Some(&b.bytes[..])
        };
        let program = match self.replayed_blocks.get(&rip) {
            Some(p) if unchanged(p) => p.clone(),
            _ => {
                let p = Program::new(Arc::new(self.decode_at(rip)));
                self.replayed_blocks.insert(rip, p.clone());
                p
            }
        };
        if program.block().insns.is_empty() {
            return exit::NEXT; // the dispatcher meets what stops there
        }
        self.stats.guest_insns_interp += program.block().insns.len() as u64;
        crate::interp::run_block_guarded(&mut self.cpu, &program)
    }

    /// Runs the guest from the context's rip (the last checkpoint, or the instruction after
    /// the slow helper's) to the end of its block in the baseline tier, after compiled code
    /// wrote translated code (`fault::WROTE_CODE`): one instruction at a time, each decoded
    /// from the bytes there when it comes to run, as the write may have changed any of them.
    fn step_to_block_end(&mut self) -> u64 {
        self.cpu.fault = 0;
        self.stats.fault_replays += 1;
        for _ in 0..crate::decode::MAX_BLOCK_INSNS {
            let block = self.decode_at(self.cpu.rip);
            let ends_block = block.insns.len() <= 1;
            let step = block.first_only();
            if step.insns.is_empty() {
                return exit::NEXT; // the dispatcher meets what stops there
            }
            let code = self.interpret(step);
            if code != exit::NEXT || ends_block {
                return code;
            }
        }
        exit::NEXT
    }

    /// Runs a block decoded from the guest's bytes in the baseline tier, counting it.
    fn interpret(&mut self, block: Block) -> u64 {
        self.stats.guest_insns_interp += block.insns.len() as u64;
        crate::interp::run_block_guarded(&mut self.cpu, &Program::new(Arc::new(block)))
    }

    /// Runs the system call the guest asked for; Some when the thread or process ends.
    fn syscall(&mut self) -> Option<Outcome> {
        // A thread blocked in the kernel is not waited for when the process ends.
        self.shared.registry.count_running(-1);
        let r = self.proc.syscall(&mut self.cpu);
        self.shared.registry.count_running(1);
        match r {
            SysResult::Continue => None,
            SysResult::Exit(c) => Some(Outcome::ExitGroup(c)),
            SysResult::ExitThread(c) if self.is_main => Some(Outcome::ExitGroup(c)),
            SysResult::ExitThread(c) => Some(Outcome::Exit(c)),
            SysResult::SpawnThread(args) => {
                let r = self.spawn_thread(args);
                self.cpu.gpr[0] = r as u64;
                None
            }
            SysResult::Exec(req) => Some(Outcome::Exec(req)),
            SysResult::ForkedChild => {
                self.after_fork_child();
                None
            }
        }
    }

    /// An instruction fetch from `addr`, which is not executable (unmapped, outside the guest
    /// space, or without PROT_EXEC), for the instruction at `cpu.rip`.
    fn fetch_fault(&mut self, addr: u64) -> u64 {
        self.cpu.fault = crate::cpu::fault::MEMORY;
        self.cpu.fault_addr = addr;
        self.cpu.fault_info = crate::cpu::fault_info::FETCH;
        self.cpu.insn_off = 0;
        exit::FAULT
    }

    /// A memory fault at or beyond the end of the guest space, in the guard. When the
    /// instruction's access used an address outside the guest space or in its null page
    /// (`mem::host` puts both in the guard),
    /// reports the guest's own address, recovered from the instruction and the registers as
    /// they were before it; a non-canonical one is #GP, as on the CPU.
    fn fault_outside_space(&mut self) {
        let rip = self.cpu.rip.wrapping_add(self.cpu.insn_off);
        let len = self.proc.mem.readable_len(rip, 15);
        let Some(code) = self.proc.mem.read_bytes(rip, len as usize) else {
            return;
        };
        let Some((a, write)) = crate::decode::address_outside(code, rip, crate::mem::OWN_ADDRESSES, &self.cpu) else {
            return;
        };
        if ((a as i64) << 16) >> 16 == a as i64 {
            self.cpu.fault_addr = a;
            self.cpu.fault_info = if write { crate::cpu::fault_info::WRITE } else { 0 };
        } else {
            self.cpu.rip = rip;
            self.cpu.insn_off = 0;
            self.cpu.fault = crate::cpu::fault::GP;
            self.cpu.fault_addr = rip;
        }
    }

    /// A write fault that only raced with Kiln (un)protecting a code page: the faulting
    /// instruction runs again (the state is exactly as before it).
    fn raced_code_protection(&mut self) -> bool {
        use crate::cpu::{fault, fault_info};
        let c = &mut self.cpu;
        let write = c.fault_info & (fault_info::WRITE | fault_info::BUS) == fault_info::WRITE;
        if c.fault != fault::MEMORY || !write || !self.proc.mem.retry_write_fault(c.fault_addr) {
            return false;
        }
        c.rip = c.rip.wrapping_add(c.insn_off);
        c.insn_off = 0;
        c.fault = 0;
        true
    }

    /// A fault from an instruction: the guest's handler runs, or the process dies of it.
    /// Returns None when execution continues (in the handler).
    fn fault(&mut self) -> Option<Outcome> {
        if self.cpu.fault == crate::cpu::fault::MEMORY && self.cpu.fault_addr >= GUEST_SPACE {
            self.fault_outside_space();
        }
        if self.raced_code_protection() {
            return None;
        }
        let Some(s) = crate::linux::faults::fault_signal(&mut self.cpu, &self.proc.mem) else {
            let at = self.cpu.fault_addr;
            eprintln!("kiln: unimplemented instruction form at guest address {at:#x}");
            return Some(Outcome::Signal(libc::SIGILL));
        };
        self.cpu.fault = 0;
        match self.proc.deliver_fault(&mut self.cpu, s.sig, s.code, s.addr, s.trap) {
            Delivery::Handler => None,
            _ => Some(Outcome::Signal(s.sig)),
        }
    }

    /// Stops this thread for good: the process is ending on another thread. Its statistics
    /// join those of the ended threads first.
    fn park(&mut self) -> ! {
        self.end_thread();
        loop {
            std::thread::park();
        }
    }

    /// What a thread leaves when it stops: its statistics (its wake word and context when the
    /// dispatcher is dropped).
    fn end_thread(&mut self) {
        self.finish_thread_stats();
        self.shared.registry.add_ended(&self.stats);
        self.shared.registry.count_alive(-1);
    }

    /// Ends the process from this thread, once the guest asked for it: stops the other threads,
    /// gives this run's translations to the cache, records the run and prints the statistics.
    /// A thread that finds another thread ending the process already stops instead.
    pub fn finish_process(&mut self) {
        if !self.shared.registry.stop_others() {
            self.park();
        }
        self.persist();
        self.finish_stats();
        if let Some((program, started)) = self.shared.program.clone() {
            self.record_usage(&program, started.elapsed());
        }
        if let Ok(mode) = std::env::var("KILN_STATS") {
            self.stats.report(&mode);
        }
    }

    /// Names the program this process runs and when it started, for the usage record.
    pub fn set_program(&mut self, program: &Path, started: Instant) {
        self.shared.program = Some((Arc::new(program.to_path_buf()), started));
    }

    /// This thread's statistics, complete: the instructions its compiled code ran.
    fn finish_thread_stats(&mut self) {
        self.stats.guest_insns_compiled = self.cpu.insns_compiled;
    }

    /// Final statistics of the run: this thread's and those of the threads that ended.
    pub fn finish_stats(&mut self) {
        self.finish_thread_stats();
        self.stats += &self.shared.registry.ended();
        self.stats.links_forbidden = !self.shared.registry.links_allowed() as u64;
    }
}

/// Where the guest goes after the block `last` left it (or, where compiled code went on into
/// the baseline tier's shim, from the context's rip) without the dispatcher: on to the next
/// block while it is known, still in the baseline tier and not about to become hot; into its
/// compiled unit where it has one that checks nothing at entry and the stack pointer is in
/// reach; back to the unit that called and waits for this rip (`exit::RETURN`). Up to
/// `INTERPRETED_RUN` times an entry, and not once the thread is woken or guest code changed
/// since the dispatcher last dropped what changed (not since this entry: a write in between
/// may have changed the very block the guest goes to next); the dispatcher sees everything
/// else. Each block run on to is counted as the dispatcher counts it.
fn going_on<'a>(
    units: &'a mut units::Units,
    stats: &'a mut Stats,
) -> impl FnMut(&mut Cpu, Option<&Program>) -> Go + 'a {
    let epoch = units.log_cursor;
    let mut left = INTERPRETED_RUN;
    move |cpu: &mut Cpu, last: Option<&Program>| {
        left = left.saturating_sub(1);
        let woken = cpu.interrupt.0.load(std::sync::atomic::Ordering::Relaxed) != 0;
        if left == 0 || woken || crate::mem::watch::epoch() != epoch {
            return Go::Back(exit::NEXT);
        }
        if cpu.rip == cpu.ret_expect {
            return Go::Back(exit::RETURN);
        }
        // SAFETY: programs are freed only when their unit is dropped, which starts a new
        // generation.
        let remembered = last
            .and_then(|l| l.successor(cpu.rip, units.generation))
            .map(|p| unsafe { &*p });
        // A block remembered may have been compiled since (its program is closed then).
        let program = match remembered.filter(|p| p.run_on_to()) {
            Some(p) => p,
            None => {
                let Some(i) = units.find(cpu.rip) else {
                    return Go::Back(exit::NEXT);
                };
                if let Some(code) = units.list[i].code {
                    let enterable = units.list[i].check.is_none() && crate::jit::stack_in_reach(cpu.gpr[4]);
                    return if enterable {
                        Go::Enter(code)
                    } else {
                        Go::Back(exit::NEXT)
                    };
                }
                let generation = units.generation;
                let Some(p) = units.program(i) else {
                    return Go::Back(exit::NEXT);
                };
                if let Some(l) = last {
                    l.remember(cpu.rip, p, generation);
                }
                // SAFETY: as above; the unit holds it.
                let p = unsafe { &*Arc::as_ptr(p) };
                // A remembered program found closed here is the unit's own: hot, for the
                // dispatcher to queue.
                if remembered.is_some() || !p.run_on_to() {
                    return Go::Back(exit::NEXT);
                }
                p
            }
        };
        stats.guest_insns_interp += program.len() as u64;
        Go::Run(program)
    }
}

/// A block that holds no instruction Kiln can run: says why (precisely: bytes, mnemonic and
/// guest address) and ends the run as the CPU would (SIGILL; unfetchable code is a fault,
/// `Engine::fetch_fault`).
fn stop(block: &Block) -> Outcome {
    let (addr, bytes, ins) = block
        .stop
        .clone()
        .unwrap_or((block.start, Vec::new(), Default::default()));
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if ins.code() == iced_x86::Code::INVALID {
        eprintln!(
            "kiln: invalid instruction (bytes {}) at guest address {addr:#x}",
            hex.join(" ")
        );
    } else {
        eprintln!(
            "kiln: unimplemented instruction {:?} '{}' (bytes {}) at guest address {addr:#x}",
            ins.mnemonic(),
            ins,
            hex.join(" ")
        );
    }
    Outcome::Signal(libc::SIGILL)
}

/// The configuration id of this process's translations (`Jit::config_id`). None (the cache
/// unused) when Kiln cannot read its own executable.
fn config_id(jit: &Jit, dir: &std::path::Path) -> Option<ConfigId> {
    let Some(exe) = crate::cache::memo::own_executable_hash(dir) else {
        crate::klog!("cache", "cannot hash Kiln's own executable: running without the cache");
        return None;
    };
    Some(jit.config_id(&exe))
}
