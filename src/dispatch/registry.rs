//! What the guest threads of one process share about translations: the units taken from the
//! cache (checked against the guest's bytes once, by whichever thread meets them first), the
//! units compiled in this run by any thread, the blocks decoded so far (compiled at exit for the
//! cache if they never got hot), the modules code comes from and how this run used them, and
//! the statistics of threads that have ended.
//!
//! Each thread keeps its own unit table, its own executable copies of compiled units and its own
//! chaining table (`units.rs`): it asks here on a miss, and pulls what other threads compiled
//! when `compiled_len` moves (`Engine::pull_compiled`). Compiled code is relocation-free, so a
//! copy runs anywhere; a thread's arena only ever holds code that thread runs.

use super::cached::{Cached, CachedUnits};
use super::compile::NewUnit;
use super::modules::Modules;
use super::prefill::Prefill;
use crate::decode::Block;
use crate::mem::AddrMap;
use crate::stats::Stats;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
pub(super) struct Registry {
    state: Mutex<State>,
    /// `state.compiled.len()`, readable without the lock: a thread that saw a smaller value
    /// has units to pull.
    compiled_len: AtomicUsize,
    /// `state.prefills.len()`, likewise.
    prefill_len: AtomicUsize,
    /// The statistics of the threads that have ended, summed.
    ended: Mutex<Stats>,
    /// Set when the process is ending: threads that reach their dispatcher stop there.
    stopping: AtomicBool,
    /// Threads running guest code or Kiln's own (not parked, not blocked in a syscall).
    running: AtomicUsize,
    /// Guest threads that have not ended (running, blocked in a syscall or not started yet).
    alive: AtomicUsize,
    /// Set for good once units from a pack may lead through their links to code that is not
    /// their module file's own (`prefill.rs`): every thread's `Cpu::links` is then 0.
    links_off: AtomicBool,
}

/// What `Registry::find` found.
pub(super) enum Found {
    Compiled(Arc<NewUnit>),
    Cached(Cached),
    Nothing,
}

#[derive(Default)]
pub(super) struct State {
    /// Units from the cache by guest rip.
    pub cached: CachedUnits,
    /// Units compiled in this run, in the order they were finished.
    pub compiled: Vec<Arc<NewUnit>>,
    /// Index in `compiled` by guest rip.
    pub compiled_at: AddrMap<usize>,
    /// Rips some thread has queued for compilation.
    pub compiling: AddrMap<()>,
    /// Every block decoded in this run, by rip.
    pub blocks: AddrMap<Arc<Block>>,
    pub modules: Modules,
    /// Cached units every thread chains at once (`prefill.rs`), in the order modules came.
    pub prefills: Vec<Arc<Prefill>>,
}

impl Registry {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many units have been compiled in this run.
    pub fn compiled_len(&self) -> usize {
        self.compiled_len.load(Ordering::Acquire)
    }

    /// Claims the compilation of the block at `rip`; false if another thread has it already
    /// (queued or done).
    pub fn claim_compile(&self, rip: u64) -> bool {
        let mut s = self.lock();
        if s.compiled_at.contains_key(&rip) || s.compiling.contains_key(&rip) {
            return false;
        }
        s.compiling.insert(rip, ());
        true
    }

    /// Whether pack units may follow their links (`Cpu::links`).
    pub fn links_allowed(&self) -> bool {
        !self.links_off.load(Ordering::Acquire)
    }

    /// From now on no unit follows its links.
    pub fn forbid_links(&self) {
        self.links_off.store(true, Ordering::Release);
    }

    /// How many prefills have been published.
    pub fn prefill_len(&self) -> usize {
        self.prefill_len.load(Ordering::Acquire)
    }

    /// Publishes a prefill (under the lock the caller holds).
    pub fn add_prefill(&self, s: &mut State, p: Prefill) {
        s.prefills.push(Arc::new(p));
        self.prefill_len.store(s.prefills.len(), Ordering::Release);
    }

    pub fn prefills_since(&self, from: usize) -> (Vec<Arc<Prefill>>, usize) {
        let s = self.lock();
        (s.prefills.get(from..).unwrap_or_default().to_vec(), s.prefills.len())
    }

    /// Makes compiled units available to every thread (and to the cache at exit).
    pub fn publish(&self, units: Vec<NewUnit>) {
        let mut s = self.lock();
        for u in units {
            s.compiling.remove(&u.rip);
            let at = s.compiled.len();
            s.compiled_at.insert(u.rip, at);
            s.compiled.push(Arc::new(u));
        }
        self.compiled_len.store(s.compiled.len(), Ordering::Release);
    }

    /// A compile that failed: the block may be claimed again.
    pub fn release_compile(&self, rip: u64) {
        self.lock().compiling.remove(&rip);
    }

    /// What the process has for `rip` that this thread has not: a unit some thread compiled in
    /// this run, or one from the cache (one lock for both).
    pub fn find(&self, rip: u64) -> Found {
        let s = self.lock();
        match s.compiled_at.get(&rip) {
            Some(&i) => Found::Compiled(s.compiled[i].clone()),
            None => s.cached.get(rip).map_or(Found::Nothing, Found::Cached),
        }
    }

    /// The units compiled since the first `from`, and the new count.
    pub fn compiled_since(&self, from: usize) -> (Vec<Arc<NewUnit>>, usize) {
        let s = self.lock();
        (s.compiled.get(from..).unwrap_or_default().to_vec(), s.compiled.len())
    }

    /// Adds the statistics of a thread that ends.
    pub fn add_ended(&self, stats: &Stats) {
        *self.ended.lock().unwrap_or_else(|e| e.into_inner()) += stats;
    }

    /// The summed statistics of the threads that have ended.
    pub fn ended(&self) -> Stats {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks every other thread to stop at its next return to the dispatcher (the process is
    /// ending, as exit_group or a fatal signal ends it natively) and waits a little for those
    /// running to do so. False if another thread is ending the process already.
    pub fn stop_others(&self) -> bool {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return false;
        }
        crate::linux::wake::wake_all();
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(20);
        while self.running.load(Ordering::SeqCst) > 1 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        true
    }

    /// Counts a guest thread that starts, or one that ends (`delta` -1): it runs from then
    /// (`count_running`) till it ends.
    pub fn count_alive(&self, delta: isize) {
        add(&self.alive, delta);
        self.count_running(delta);
    }

    /// Guest threads that have not ended, the caller's among them.
    pub fn alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }

    /// Counts a thread that starts running (or comes back from a blocking syscall), or one
    /// that stops (`delta` -1).
    pub fn count_running(&self, delta: isize) {
        add(&self.running, delta);
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// For a forked child, whose only thread is the one that forked: a registry with the
    /// parent's cached units and modules (when no other thread of the parent held the lock at
    /// the fork; otherwise an empty one, since that state may be half-written).
    pub fn for_forked_child(&self) -> Registry {
        let mut state = State::default();
        if let Ok(s) = self.state.try_lock() {
            state.cached = s.cached.clone();
            state.modules = s.modules.clone();
        }
        // Its one thread, which goes on running.
        Registry {
            state: Mutex::new(state),
            running: AtomicUsize::new(1),
            alive: AtomicUsize::new(1),
            ..Registry::default()
        }
    }
}

/// Adds `delta` to a count (below zero: the addition wraps round to the subtraction).
fn add(count: &AtomicUsize, delta: isize) {
    count.fetch_add(delta as usize, Ordering::SeqCst);
}
