//! Giving this run's translations to the cache at exit. Everything that ran gets compiled
//! for it, optimised: the units this run compiled optimised, and as blocks those the tiering
//! threshold left in the baseline tier and those whose code the quick JIT made for this run
//! alone. By default both go to the directory's compile service as a work journal
//! (`crate::service`), off the critical path; `KILN_CACHE_SYNC=1` compiles and writes them in
//! this process before it exits; `KILN_SERVICE=0` compiles them in a detached child that
//! writes journals and re-executes Kiln to merge them (one such child per run).

use super::compile::{self, NewUnit};
use super::Engine;
use crate::cache::journal;
use crate::decode::Block;
use crate::linux::host;
use cache_format::{ConfigId, EnteredUnits, UnitEntry, UnitKey, WorkBlock, WorkJournal, WorkUnit};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Seconds a child handing a run's work over may live (`Engine::fork_handover`).
const HANDOVER_LIFE: u32 = 120;

/// Where a run's new translations go at exit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handoff {
    Service,
    Sync,
    Detached,
}

impl Handoff {
    fn from_env() -> Handoff {
        let on = |k: &str| std::env::var_os(k).is_some_and(|v| v != "0");
        if on("KILN_CACHE_SYNC") {
            Handoff::Sync
        } else if std::env::var_os("KILN_SERVICE").is_some_and(|v| v == "0") {
            Handoff::Detached
        } else {
            Handoff::Service
        }
    }
}

impl Engine {
    /// Writes this run's new units (and what is left to compile) to the cache.
    pub fn persist(&mut self) {
        if self.cache.is_none() {
            return;
        }
        let handoff = Handoff::from_env();
        // Mappings changed since the last dispatch are seen before anything is attributed to
        // a module.
        if crate::mem::watch::epoch() != self.units.log_cursor {
            self.drop_changed_code();
        }
        // Compiles still in flight are not waited for (unless writing synchronously): their
        // blocks are handed over with the rest.
        self.collect_compiled(handoff == Handoff::Sync);
        let (Some(dir), Some(config)) = (self.cache.clone(), self.shared.config) else {
            return;
        };
        let todo = self.blocks_to_hand_over();
        // The quick JIT's units serve this run only: their blocks are in `todo`.
        let compiled = self.shared.registry.compiled_since(0).0;
        let mut entries = self.entries_for(compiled.iter().filter(|n| !n.quick).map(|n| &**n), config);
        self.stats.units_stored = (entries.len() + todo.len()) as u64;
        let entered = self.shared.registry.lock().cached.newly_entered();
        self.stats.units_entered_new = entered.values().map(|o| o.len() as u64).sum();
        if entries.is_empty() && todo.is_empty() && (entered.is_empty() || handoff == Handoff::Detached) {
            return;
        }
        match handoff {
            Handoff::Service => match self.fork_handover(&dir) {
                // Freed with the process: dropping them here would copy every page their
                // counts lie on from the child's (the Arcs of 86,000 blocks after a cold `cc1
                // -O2 hello.i`, 20 ms).
                Some(false) => std::mem::forget((entries, todo, entered)),
                in_child => {
                    self.hand_to_service(&dir, config, entries, &todo, entered);
                    if in_child.is_some() {
                        host::exit_now(0)
                    }
                }
            },
            Handoff::Sync => {
                entries.extend(self.compile_all(&todo, config));
                // An index held for long (a service writing big packs) gets the work as a
                // journal instead: never lost.
                if !journal::write_entries(&dir, config, &entries, &entered, 50, crate::jit::pack_link_stub()) {
                    self.hand_to_service(&dir, config, entries, &[], entered);
                }
            }
            Handoff::Detached => self.compile_detached(&dir, config, entries, &todo),
        }
    }

    /// Forks a detached child to write the work journal and wake the service while this
    /// process ends (a cold `cc1 -O2` run's 86,000 blocks took it 70 ms): Some(true) in the
    /// child, which holds a hand-over slot till it ends (`endpoint::try_handover_slot`: a
    /// bound on such children, and what `kiln serve --wait` waits for first) and ends within
    /// `HANDOVER_LIFE` whatever it waits for; Some(false) in the parent. None where the work
    /// is handed over here: no slot free, a failed fork, or another guest thread alive (the
    /// child would inherit the locks it may hold, not the thread).
    fn fork_handover(&self, dir: &Path) -> Option<bool> {
        use std::os::fd::{AsRawFd, IntoRawFd};
        if self.shared.registry.alive() > 1 {
            return None;
        }
        let slot = crate::service::endpoint::try_handover_slot(dir)?;
        let child = host::fork_detached(Some(slot.as_raw_fd()))?;
        if child {
            host::end_after(HANDOVER_LIFE);
            // Open till the child ends (its copy, moved by `fork_detached`, holds the lock).
            let _ = slot.into_raw_fd();
        }
        Some(child)
    }

    /// Writes the work journal and wakes (or starts) the service; never waits for it long.
    fn hand_to_service(
        &self,
        dir: &Path,
        config: ConfigId,
        entries: Vec<(UnitKey, UnitEntry)>,
        todo: &[Arc<Block>],
        entered: EnteredUnits,
    ) {
        let work = WorkJournal {
            config,
            units: entries
                .into_iter()
                .map(|(k, entry)| WorkUnit {
                    module: k.module,
                    offset: k.offset,
                    entry,
                })
                .collect(),
            blocks: todo.iter().filter_map(|b| self.work_block(b)).collect(),
            modules: self.shared.registry.lock().modules.files.values().cloned().collect(),
            entered,
        };
        if journal::write_work(dir, &work).is_some() {
            crate::service::client::hand_over(dir);
        }
    }

    /// A block to hand over: where it lies in its module, and its bytes, still what the
    /// guest has there (code changed or unmapped since is not the module's).
    fn work_block(&self, b: &Block) -> Option<WorkBlock> {
        let module = self.module_of(b.start, b.len)?;
        // Still there and unchanged (see `entries_for`).
        if self.guest_bytes(b.start, b.len)? != &b.bytes[..] || !self.is_module_code(b.start, &b.bytes) {
            return None;
        }
        let executions = self
            .units
            .index
            .get(&b.start)
            .map_or(1, |&i| self.units.list[i].count().max(1));
        Some(WorkBlock {
            module: module.hash,
            offset: module.offset_of(b.start),
            load_base: module.load_bias,
            bytes: b.bytes.clone(),
            executions: executions as u64,
        })
    }

    /// Compiles in a detached child, which writes journals and re-executes Kiln to merge them.
    fn compile_detached(
        &mut self,
        dir: &Path,
        config: ConfigId,
        mut entries: Vec<(UnitKey, UnitEntry)>,
        todo: &[Arc<Block>],
    ) {
        if !todo.is_empty() {
            if !host::detach_child() {
                return; // the parent (or a failed fork: the work is dropped, never the run)
            }
            self.shared.pool = compile::Workers::on_demand();
        }
        entries.extend(self.compile_all(todo, config));
        if todo.is_empty() {
            journal::write_entries(
                dir,
                config,
                &entries,
                &Default::default(),
                50,
                crate::jit::pack_link_stub(),
            );
            return;
        }
        // The detached child must not open the index itself (libraries' global worker threads
        // did not survive the fork and may hold locks): it writes a journal and re-executes
        // Kiln to merge it into the index and the pack.
        let journals = journal::write_journals(dir, config, &entries);
        if !journals.is_empty() {
            exec_merge(&journals);
        }
        // The detached child ends here without running the guest's exit path.
        host::exit_now(0);
    }

    /// Blocks of known modules that ran in any thread and go to the cache as blocks: those
    /// that ran only in the baseline tier, and those the quick JIT compiled.
    fn blocks_to_hand_over(&self) -> Vec<Arc<Block>> {
        let registry = self.shared.registry.lock();
        let quick_or_none = |rip: &u64| {
            registry
                .compiled_at
                .get(rip)
                .is_none_or(|&i| registry.compiled[i].quick)
        };
        let known =
            |b: &Block| super::modules::module_in(self.shared.module, &registry.modules, b.start, b.len).is_some();
        (registry.blocks.iter())
            .filter(|(rip, b)| quick_or_none(rip) && !b.insns.is_empty() && known(b))
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Compiles the blocks on the worker pool; their cache entries.
    fn compile_all(&self, todo: &[Arc<Block>], config: ConfigId) -> Vec<(UnitKey, UnitEntry)> {
        let (Some(jit), Some(pool)) = (self.shared.jit.clone(), self.shared.pool.get().cloned()) else {
            return Vec::new();
        };
        use rayon::prelude::*;
        let compiled: Vec<NewUnit> = pool.install(|| {
            todo.par_iter()
                .filter_map(|b| jit.compile(b).ok().map(|unit| NewUnit::new(b, unit)))
                .collect()
        });
        self.entries_for(compiled.iter(), config)
    }

    /// Cache entries for compiled units of known modules (code from anonymous or unidentified
    /// memory is never persisted).
    fn entries_for<'a>(&self, units: impl Iterator<Item = &'a NewUnit>, config: ConfigId) -> Vec<(UnitKey, UnitEntry)> {
        let mut entries = Vec::new();
        for n in units {
            let Some(module) = self.module_of(n.rip, n.guest_len) else {
                continue;
            };
            // Code unmapped since it ran (a library closed before exit), or changed since it
            // was translated, is not the module's any more.
            let Some(bytes) = self.guest_bytes(n.rip, n.guest_len) else {
                continue;
            };
            if blake3::hash(bytes).as_bytes() != &n.guest_hash || !self.is_module_code(n.rip, bytes) {
                continue;
            }
            let key = UnitKey {
                module: module.hash,
                config,
                offset: module.offset_of(n.rip),
            };
            let entry = UnitEntry {
                load_base: module.load_bias,
                guest_len: n.guest_len as u32,
                ninsns: n.unit.ninsns,
                guest_hash: n.guest_hash,
                code: n.unit.code.clone(),
                links: Vec::new(),
                linked: false,
                entered: false,
                // The run compiled it for having run this often.
                heat: compile::HOT_THRESHOLD,
                outer: Vec::new(),
            };
            entries.push((key, entry));
        }
        entries
    }
}

impl Engine {
    /// Whether [rip, rip+len) lies on pages holding their file's bytes unchanged, in a module
    /// whose pages have not changed since it was found (`Modules::untrusted`).
    pub(super) fn unchanged_module_code(&self, rip: u64, len: u64) -> bool {
        crate::mem::watch::pristine(rip, len) && self.shared.registry.lock().modules.trusted(rip, len)
    }

    /// Whether `bytes`, the guest's code at `rip`, are its module's own: where pages hold
    /// their file's bytes unchanged (`mem::watch::pristine`), or equal to the file's bytes
    /// there. Code the guest wrote over is never kept for the module, since a later run
    /// trusts the module's unchanged pages without checking its translations' bytes.
    fn is_module_code(&self, rip: u64, bytes: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::FileExt;
        let len = bytes.len() as u64;
        if self.unchanged_module_code(rip, len) {
            return true;
        }
        let Some(module) = self.module_of(rip, len) else {
            return false;
        };
        let Some(file) = self.shared.registry.lock().modules.files.get(&module.hash).cloned() else {
            return false;
        };
        let Some((at, _)) = file
            .file_range(module.offset_of(rip).0)
            .filter(|&(_, room)| room >= len)
        else {
            return false;
        };
        let mut theirs = vec![0; bytes.len()];
        std::fs::File::open(std::ffi::OsStr::from_bytes(&file.path))
            .and_then(|f| f.read_exact_at(&mut theirs, at))
            .is_ok_and(|()| theirs == bytes)
    }
}

/// Replaces the detached child with `kiln cache merge JOURNAL...`; returns only if that fails.
fn exec_merge(journals: &[PathBuf]) {
    use std::os::unix::ffi::OsStrExt;
    let c = crate::linux::host::c_string;
    let mut args = vec![c(b"kiln"), c(b"cache"), c(b"merge")];
    args.extend(journals.iter().map(|j| c(j.as_os_str().as_bytes())));
    let e = host::reexec_self(&args, &[]);
    crate::klog!("cache", "cannot re-execute Kiln to merge the journals: {e}");
}
