//! The tiering policy: a block that has run `HOT_THRESHOLD` times in the baseline tier is
//! compiled on the process's worker pool; finished compiles are installed in this thread's
//! executable arena at the next dispatch. Under `--tier auto`, a block that becomes hot while
//! `QUICK_BACKLOG` compiles are already in flight goes to the quick JIT (`Jit::quick`), whose
//! code serves this run only: its block goes to the cache as a block, and once no compile is
//! in flight the unit is compiled again optimised (`tier_up`), so that a long run's loops do
//! not stay in quick code.

use super::Engine;
use crate::decode::Block;
use crate::jit::{CompiledUnit, JitError};
use crate::mem::exec::Arena;
use cache_format::Hash;
use std::sync::{mpsc, Arc};
use std::time::Instant;

/// Executions in the baseline tier before a block is queued for compilation. Since the
/// baseline tier runs decoded programs (`interp::Program`), a compile (hundreds of
/// microseconds) pays off only for blocks that run thousands of times. Cold wall time against
/// qemu-x86_64 in the same rounds, at 128 / 512 / 1024 / 2048 / 8192: `cc1 -O2 hello.i` 1.76
/// / 1.58 / 1.38 / 1.29 / 1.52x, `lparser.i` 3.89 / 3.62 / 3.55 / 3.59 / 4.18x, `python3 -c
/// pass` 2.43 / 2.05 / 1.90 / 1.86 / 1.84x, the `sh` loop 2.36 / 2.21 / 2.10 / 2.26 / 2.23x,
/// `as` 1.69 / 1.53 / 1.39 / 1.40 / 1.30x.
pub const HOT_THRESHOLD: u32 = 2048;

/// The compiles in flight from which a newly hot block goes to the quick JIT (about 190 us a
/// unit in `cc1` against 440 optimised), for a burst of new hot code. At 2 (the policy while
/// the baseline tier cost 25 ns a guest instruction in `cc1`) it now cost time: cold, in
/// paired rounds against never, `cc1 -O2 hello.i` 1.08x, `python3 -c pass` 1.03x; at 16 the
/// same as never (`cc1` 1.02x, `lparser.i` 1.01x).
const QUICK_BACKLOG: usize = 16;

/// A unit compiled in this run, kept for writing to the cache at exit.
pub(super) struct NewUnit {
    pub rip: u64,
    pub guest_len: u64,
    /// The blake3 hash of the guest bytes it was compiled from.
    pub guest_hash: Hash,
    pub unit: CompiledUnit,
    /// Compiled by the quick JIT: it serves this run only (its block goes to the cache).
    pub quick: bool,
}

impl NewUnit {
    pub fn new(block: &Block, unit: CompiledUnit) -> NewUnit {
        NewUnit::of_bytes(block.start, &block.bytes, unit)
    }

    /// A unit translating the guest bytes `bytes` at `rip`.
    pub fn of_bytes(rip: u64, bytes: &[u8], unit: CompiledUnit) -> NewUnit {
        NewUnit {
            rip,
            guest_len: bytes.len() as u64,
            guest_hash: *blake3::hash(bytes).as_bytes(),
            unit,
            quick: false,
        }
    }
}

/// (unit index, result, compile time in microseconds, whether the quick JIT compiled it)
type Finished = (usize, Result<CompiledUnit, JitError>, u64, bool);

/// One thread's compiles: where results arrive and where their code goes.
pub(super) struct Compiles {
    /// Executable memory for this thread's units.
    pub arena: Arena,
    tx: mpsc::Sender<Finished>,
    rx: mpsc::Receiver<Finished>,
    /// Compiles queued and not yet collected.
    pub pending: usize,
    /// How many of the process's compiled units this thread has looked at
    /// (`Registry::compiled_len`).
    pub seen: usize,
    /// This thread's units that run the quick JIT's code, oldest first (`tier_up`).
    pub quick_units: std::collections::VecDeque<usize>,
}

impl Default for Compiles {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel();
        Compiles {
            arena: Arena::default(),
            tx,
            rx,
            pending: 0,
            seen: 0,
            quick_units: Default::default(),
        }
    }
}

impl Compiles {
    /// In a forked child: results of compiles queued before the fork never arrive; start
    /// afresh (the old channel is forgotten, not dropped: its state came from another
    /// process's threads).
    pub fn after_fork(&mut self) {
        let (tx, rx) = mpsc::channel();
        std::mem::forget(std::mem::replace(&mut self.tx, tx));
        std::mem::forget(std::mem::replace(&mut self.rx, rx));
        self.pending = 0;
    }
}

/// The compile workers: one per core the rest of the machine leaves idle when the process
/// starts (a run alone compiles on every core; runs side by side, as a build or a test suite
/// starts them, do not pile compile threads on each other's cores).
/// The process's compile workers, started when the first compile is queued: a warm run, which
/// compiles nothing, starts no thread.
#[derive(Clone)]
pub(super) struct Workers(Arc<std::sync::OnceLock<Option<Arc<rayon::ThreadPool>>>>);

impl Workers {
    /// Workers started on first use.
    pub fn on_demand() -> Workers {
        Workers(Arc::default())
    }

    /// No workers (tiers that compile nothing in the background).
    pub fn none() -> Workers {
        Workers(Arc::new(std::sync::OnceLock::from(None)))
    }

    pub fn get(&self) -> Option<&Arc<rayon::ThreadPool>> {
        self.0.get_or_init(new_pool).as_ref()
    }
}

fn new_pool() -> Option<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(crate::linux::host::idle_cores())
        .thread_name(|i| format!("kiln-compile-{i}"))
        .build()
        .ok()
        .map(Arc::new)
}

impl Engine {
    pub(super) fn queue_compile(&mut self, i: usize) {
        let backlog = self.compiles.pending >= QUICK_BACKLOG;
        let quick = self.shared.quick.as_ref().filter(|_| backlog);
        let Some(jit) = quick.or(self.shared.jit.as_ref()).cloned() else {
            return;
        };
        let Some(block) = self.units.list[i].block.clone() else {
            return;
        };
        self.units.set_queued(i, true);
        if !self.shared.registry.claim_compile(block.start) {
            return; // another thread compiles it; `pull_compiled` brings it here
        }
        self.spawn_compile(i, jit, block, quick.is_some());
    }

    /// Compiles unit `i`'s block on the worker pool; `collect_compiled` installs the result.
    fn spawn_compile(&mut self, i: usize, jit: crate::jit::Jit, block: Arc<Block>, quick: bool) {
        let Some(pool) = self.shared.pool.get() else { return };
        self.compiles.pending += 1;
        let tx = self.compiles.tx.clone();
        pool.spawn(move || {
            let t = Instant::now();
            let r = jit.compile(&block);
            let _ = tx.send((i, r, t.elapsed().as_micros() as u64, quick));
        });
    }

    /// With no compile in flight: compiles the oldest unit that runs the quick JIT's code
    /// again, optimised (`collect_compiled` replaces its code).
    pub(super) fn tier_up(&mut self) {
        while self.compiles.pending == 0 {
            let Some(i) = self.compiles.quick_units.pop_front() else {
                return;
            };
            let u = &self.units.list[i];
            if let (false, Some(_), Some(block), Some(jit)) = (u.dead, u.code, u.block.clone(), self.shared.jit.clone())
            {
                self.spawn_compile(i, jit, block, false);
            }
        }
    }

    /// Installs finished background compiles; with `wait`, waits for all of them.
    pub(super) fn collect_compiled(&mut self, wait: bool) {
        let mut ok = Vec::new();
        while self.compiles.pending > 0 {
            let msg = if wait {
                self.compiles.rx.recv().ok()
            } else {
                self.compiles.rx.try_recv().ok()
            };
            let Some((i, r, us, quick)) = msg else { break };
            self.compiles.pending -= 1;
            self.stats.compile_us += us;
            match r {
                Ok(cu) => ok.push((i, cu, quick)),
                Err(e) => {
                    crate::klog!("jit", "{e}; the block stays in the baseline tier");
                    if let Some(b) = &self.units.list[i].block {
                        self.shared.registry.release_compile(b.start);
                    }
                }
            }
        }
        if ok.is_empty() {
            return;
        }
        let codes: Vec<&[u8]> = ok.iter().map(|(_, c, _)| &c.code[..]).collect();
        let Some(fns) = self.install_copies(&codes) else { return };
        let mut published = Vec::with_capacity(ok.len());
        for ((i, cu, quick), f) in ok.into_iter().zip(fns) {
            self.stats.units_compiled += 1;
            if self.units.list[i].dead {
                continue; // its guest bytes changed while it compiled
            }
            // Optimised code replaces the quick JIT's where it was compiled again.
            self.units.set_code(i, f);
            if let Some(b) = self.units.list[i].block.clone() {
                if quick {
                    self.compiles.quick_units.push_back(i);
                }
                published.push(NewUnit {
                    quick,
                    ..NewUnit::new(&b, cu)
                });
            }
        }
        self.shared.registry.publish(published);
    }

    /// Takes copies of the units other threads compiled for blocks this thread still runs in
    /// the baseline tier.
    pub(super) fn pull_compiled(&mut self) {
        let (news, len) = self.shared.registry.compiled_since(self.compiles.seen);
        self.compiles.seen = len;
        let wanted: Vec<(usize, &NewUnit)> = news
            .iter()
            .filter_map(|n| {
                let i = *self.units.index.get(&n.rip)?;
                let u = &self.units.list[i];
                // Only for the same bytes: another thread may have compiled older code.
                let same = u.block.as_ref()?.bytes.len() as u64 == n.guest_len
                    && blake3::hash(&u.block.as_ref()?.bytes).as_bytes() == &n.guest_hash;
                (u.code.is_none() && same).then_some((i, &**n))
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        let codes: Vec<&[u8]> = wanted.iter().map(|(_, n)| &n.unit.code[..]).collect();
        let Some(fns) = self.install_copies(&codes) else { return };
        for ((i, _), f) in wanted.into_iter().zip(fns) {
            self.units.set_code(i, f);
        }
    }
}
