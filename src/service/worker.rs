//! The service's work: taking journals in, compiling the queued blocks on a low-priority pool,
//! writing packs, and removing each journal once everything in it is in the packs. A journal
//! of another configuration is left for a service of that configuration; a damaged one is
//! removed.

use super::queue::{BlockKey, WorkQueue};
use super::regions::{ModuleImage, Planned};
use super::server::Shared;
use super::status::ServiceStatus;
use crate::cache::journal::{self, Journal};
use crate::decode::decode_block;
use crate::decode::Region;
use crate::jit::{CompiledUnit, Jit, Placement};
use crate::semantics;
use cache_format::{
    ConfigId, EnteredUnits, Hash, Link, LinkKind, ModuleCode, ModuleOffset, UnitEntry, UnitKey, WorkBlock, WorkJournal,
};
use rayon::prelude::*;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the worker looks at `journals/` unasked, and writes its status file.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How long compiled units may wait before they are written (a pack write rewrites the pack,
/// so writes are batched; runs starting meanwhile still miss them).
const WRITE_EVERY: Duration = Duration::from_secs(1);
/// Blocks per compile job taken at a time.
const BLOCKS_PER_JOB: usize = 8;
/// Regions per compile job taken at a time.
const REGIONS_PER_JOB: usize = 2;
/// A burst of runs (a build, a test suite) is over once no journal has come for this long:
/// until then the service compiles its blocks on one job, and regions wait.
const BURST_QUIET: Duration = Duration::from_secs(2);
/// How long compiled regions may wait before they are written (each write rewrites the pack).
const REGIONS_WRITE_EVERY: Duration = Duration::from_secs(10);

/// A journal taken in.
struct OpenJournal {
    path: PathBuf,
    /// Its units are in the packs (or it had none).
    units_written: bool,
    /// Its blocks not yet compiled and written (or failed).
    blocks_left: usize,
}

/// The (offset, guest hash) pairs of the units a module's pack holds, and the pack file's
/// size and modification time when they were read.
#[derive(Default)]
struct Known {
    units: HashSet<(u64, Hash)>,
    stamp: Option<(u64, std::time::SystemTime)>,
    /// The look (`Worker::looks`) that last checked the pack file; None before the first, so
    /// that a service's first look, which finds the journals its predecessor left, reads it.
    looked_at: Option<u64>,
}

pub(super) struct Worker {
    dir: PathBuf,
    config: ConfigId,
    jit: Arc<Jit>,
    pool: rayon::ThreadPool,
    cores: usize,
    shared: Arc<Shared>,
    queue: WorkQueue,
    /// Journals by number (None once closed, or if left to another configuration).
    journals: Vec<Option<OpenJournal>>,
    seen: HashSet<PathBuf>,
    known: HashMap<Hash, Known>,
    failed: HashSet<BlockKey>,
    /// Written at the next write: units, the blocks they settle, and the journals whose own
    /// units they include.
    pending: Vec<(UnitKey, UnitEntry)>,
    pending_blocks: Vec<BlockKey>,
    pending_journals: Vec<usize>,
    /// Written at the next write too: per module, the units runs entered that its pack does
    /// not record as entered (`UnitEntry::entered`).
    pending_entered: EnteredUnits,
    /// Where each module's code lies in its file, as the latest journal told.
    module_files: HashMap<Hash, ModuleCode>,
    /// Modules whose packs grew since their regions were last planned.
    touched: BTreeSet<Hash>,
    /// Per module: the offsets runs found hot (the blocks they compiled themselves), where
    /// regions start.
    hot: HashMap<Hash, BTreeSet<u64>>,
    /// Regions planned and not compiled yet, with their keys and load bases.
    regions: Vec<(UnitKey, u64, Planned)>,
    last_journal: Instant,
    last_write: Instant,
    /// The lock file this service holds (`endpoint::lock_identity`).
    lock: (u64, u64),
    /// The directory was removed: nothing is written any more.
    gone: bool,
    /// A run of another configuration (another Kiln build) handed in work since this service
    /// started: this one steps aside, so that run's next run starts a service of its own.
    retired: bool,
    looks: u64,
    status: ServiceStatus,
    started: Instant,
    last_saved: Instant,
}

impl Worker {
    /// `lock`: the lock file the service holds (`endpoint::lock_identity`), which is no longer
    /// the directory's once the directory was removed.
    pub fn new(dir: &Path, shared: Arc<Shared>, lock: (u64, u64)) -> anyhow::Result<Worker> {
        let jit = Arc::new(Jit::new()?);
        let exe = crate::cache::memo::own_executable_hash(dir)
            .ok_or_else(|| anyhow::anyhow!("cannot hash Kiln's own executable"))?;
        let config = jit.config_id(&exe);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cores)
            .thread_name(|i| format!("kiln-serve-{i}"))
            .build()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let status = ServiceStatus {
            pid: std::process::id(),
            running: true,
            state: "waiting".into(),
            started: now,
            ..Default::default()
        };
        Ok(Worker {
            dir: dir.to_path_buf(),
            config,
            jit,
            pool,
            cores,
            shared,
            queue: WorkQueue::default(),
            journals: Vec::new(),
            seen: HashSet::new(),
            known: HashMap::new(),
            failed: HashSet::new(),
            pending: Vec::new(),
            pending_blocks: Vec::new(),
            pending_journals: Vec::new(),
            pending_entered: EnteredUnits::new(),
            module_files: HashMap::new(),
            touched: BTreeSet::new(),
            hot: HashMap::new(),
            regions: Vec::new(),
            last_journal: Instant::now(),
            last_write: Instant::now(),
            lock,
            gone: false,
            retired: false,
            looks: 0,
            status,
            started: Instant::now(),
            last_saved: Instant::now() - LOOK_EVERY,
        })
    }

    /// Works until nothing has come for `idle`, or until the directory is found removed (then
    /// false: nothing may be written there any more).
    pub fn run(&mut self, idle: Duration) -> bool {
        let mut last_look = Instant::now() - LOOK_EVERY;
        let mut last_work = Instant::now();
        loop {
            let asked = self.take_wake_request();
            if asked || last_look.elapsed() >= LOOK_EVERY {
                if self.gone() {
                    return false;
                }
                if self.look() {
                    last_work = Instant::now();
                }
                last_look = Instant::now();
            }
            if self.retired {
                return true;
            }
            if self.step() {
                last_work = Instant::now();
                continue;
            }
            if self.gone {
                return false;
            }
            let regions_left = !self.regions.is_empty() || !self.touched.is_empty();
            if last_work.elapsed() >= idle && self.open_journals() == 0 && !regions_left {
                return true;
            }
            self.sleep(LOOK_EVERY);
        }
    }

    /// Whether the worker stepped aside for another configuration.
    pub fn retired(&self) -> bool {
        self.retired
    }

    /// Finishes everything in `journals/`, looking until a look finds nothing new (a journal
    /// whose write keeps failing is left for the next service). A retired worker only writes
    /// what it has compiled; the rest of its journals wait for a service of its configuration.
    /// False if the directory turned out removed.
    pub fn drain(&mut self) -> bool {
        if self.retired {
            if !self.pending.is_empty() {
                self.write();
            }
            return !self.gone;
        }
        loop {
            let new = self.look();
            let mut progressed = false;
            while self.step() {
                progressed = true;
            }
            if self.gone {
                return false;
            }
            if !new && !progressed {
                return true;
            }
        }
    }

    /// Whether the directory was removed: its lock file is not the one this service holds
    /// (also when a run has made the directory again, with a service of its own: this one's
    /// record of what the packs hold would leave that directory's packs without what it
    /// believes written); remembered.
    fn gone(&mut self) -> bool {
        self.gone |= !super::endpoint::lock_file_is(&self.dir, self.lock);
        self.gone
    }

    /// Writes the final status.
    pub fn finish(&mut self) {
        self.publish();
        self.status.running = false;
        self.status.save(&self.dir);
    }

    /// One step of work: compile a batch, or write what is compiled. False with nothing to do.
    fn step(&mut self) -> bool {
        let jobs = self.jobs();
        let batch = self.queue.take(jobs * BLOCKS_PER_JOB);
        let mut worked = !batch.is_empty();
        if worked {
            self.set_state("compiling");
            if self.in_burst() {
                self.status.burst_jobs_most = self.status.burst_jobs_most.max(jobs as u64);
            }
            self.compile(batch, jobs);
        } else {
            // Every block is compiled: regions, formed from them.
            worked = self.region_step(jobs);
        }
        let only_regions = self.pending_blocks.is_empty() && self.pending_journals.is_empty();
        let regions_left = !self.regions.is_empty() || !self.touched.is_empty();
        let due = if only_regions {
            !regions_left || self.last_write.elapsed() >= REGIONS_WRITE_EVERY
        } else {
            self.queue.waiting() == 0 || self.last_write.elapsed() >= WRITE_EVERY
        };
        let wrote = due && !(self.pending.is_empty() && self.pending_entered.is_empty()) && {
            self.set_state("writing");
            self.write()
        };
        self.status.state = "waiting".into();
        self.publish();
        worked || wrote
    }

    /// Takes in journals not seen yet; true if any brought work.
    fn look(&mut self) -> bool {
        let mut any = false;
        for path in journal::pending_journals(&self.dir) {
            if self.seen.insert(path.clone()) {
                any |= self.take_in(path);
            }
        }
        self.looks += 1;
        self.publish();
        // Counted after the status shows what the look took in (`wait` relies on it).
        self.shared.scans.lock().unwrap_or_else(|e| e.into_inner()).0 = self.looks;
        any
    }

    fn take_in(&mut self, path: PathBuf) -> bool {
        let journal = match journal::read_journal(&path) {
            Ok(j) => j,
            Err(journal::JournalError::Io(_)) => {
                self.seen.remove(&path); // gone, or unreadable for now: looked at again later
                return false;
            }
            // A newer Kiln's: for its service (or, unmerged for a week, for collection).
            Err(journal::JournalError::Format(_, cache_format::EntryError::Version(_))) => return false,
            Err(e) => {
                crate::klog!("cache", "removing a damaged journal: {e}");
                let _ = std::fs::remove_file(&path);
                return false;
            }
        };
        let (config, units, blocks, entered) = match journal {
            Journal::Work(WorkJournal {
                config,
                units,
                blocks,
                modules,
                entered,
            }) => {
                if config == self.config {
                    for m in modules {
                        self.module_files.insert(m.module, m);
                    }
                }
                let units = units
                    .into_iter()
                    .map(|u| {
                        (
                            UnitKey {
                                module: u.module,
                                config,
                                offset: u.offset,
                            },
                            u.entry,
                        )
                    })
                    .collect();
                (config, units, blocks, entered)
            }
            Journal::Units(config, units) => (config, units, Vec::new(), EnteredUnits::new()),
        };
        if config != self.config {
            // For a service of that configuration; one written while this service runs means
            // that configuration is in use now.
            let fresh = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().map_or(true, |age| age < self.started.elapsed()));
            self.retired |= fresh;
            return false;
        }
        self.last_journal = Instant::now();
        for (k, _) in &units {
            self.hot.entry(k.module).or_default().insert(k.offset.0);
            self.touched.insert(k.module);
        }
        let id = self.journals.len();
        let mut j = OpenJournal {
            path,
            units_written: units.is_empty() && entered.is_empty(),
            blocks_left: 0,
        };
        if !j.units_written {
            self.status.units_merged += units.len() as u64;
            self.pending.extend(units);
            for (module, offsets) in entered {
                self.pending_entered.entry(module).or_default().extend(offsets);
            }
            self.pending_journals.push(id);
        }
        for b in blocks {
            let key = BlockKey::of(&b);
            if self.is_cached(&key) {
                self.status.already_cached += 1;
            } else if !self.failed.contains(&key) {
                // Its pack grows: the module's regions are planned again (every head heads one).
                self.touched.insert(key.module);
                self.queue.add(key, b, id);
                j.blocks_left += 1;
            }
        }
        self.journals.push(Some(j));
        self.close_finished();
        true
    }

    /// Whether the module's pack already holds the block, as compiled from the same bytes.
    fn is_cached(&mut self, key: &BlockKey) -> bool {
        let known = self.known.entry(key.module).or_default();
        if known.looked_at != Some(self.looks) {
            known.looked_at = Some(self.looks);
            let stamp = pack_stamp(&self.dir, &key.module, &self.config);
            if stamp != known.stamp {
                known.stamp = stamp;
                known.units.clear();
                if let Some(pack) = crate::cache::read_pack(&self.dir, &key.module, &self.config) {
                    known
                        .units
                        .extend(pack.units.iter().map(|u| (u.offset.0, u.guest_hash)));
                }
            }
        }
        known.units.contains(&(key.offset, key.guest_hash))
    }

    /// Region work: compiles a batch of the planned regions, or plans the next touched
    /// module's. False with nothing to do.
    fn region_step(&mut self, jobs: usize) -> bool {
        // Blocks first; and planning reads the packs, which must hold them.
        if self.in_burst() || !self.pending_blocks.is_empty() {
            return false;
        }
        if self.regions.is_empty() {
            let Some(module) = self.touched.pop_first() else {
                return false;
            };
            self.plan_regions(module);
            return true;
        }
        self.set_state("compiling regions");
        let n = (jobs * REGIONS_PER_JOB).min(self.regions.len());
        let batch: Vec<(UnitKey, u64, Planned)> = self.regions.drain(..n).collect();
        let jit = self.jit.clone();
        let compile = |(key, load_base, p): &(UnitKey, u64, Planned)| (*key, compile_region(&jit, p, *load_base));
        let results: Vec<(UnitKey, Option<UnitEntry>)> = if jobs <= 1 {
            batch.iter().map(compile).collect()
        } else {
            self.pool.install(|| batch.par_iter().map(compile).collect())
        };
        for (key, entry) in results {
            match entry {
                Some(e) => {
                    self.status.regions_done += 1;
                    self.pending.push((key, e));
                }
                None => self.status.regions_failed += 1,
            }
        }
        true
    }

    /// Plans the regions of a module whose pack grew (read from its file, which must still be
    /// the module).
    fn plan_regions(&mut self, module: Hash) {
        let Some(code) = self.module_files.get(&module) else {
            return;
        };
        let (Some(image), Some(pack)) = (
            ModuleImage::open(&self.dir, code),
            crate::cache::read_pack(&self.dir, &module, &self.config),
        ) else {
            return;
        };
        let load_base = code.load_base;
        let hot = self.hot.remove(&module).unwrap_or_default();
        let regrow = super::regions::leaving_for(&pack, &hot);
        for p in image.plan(&pack.units, &hot, &regrow) {
            let key = UnitKey {
                module,
                config: self.config,
                offset: ModuleOffset(p.offset),
            };
            self.regions.push((key, load_base, p));
        }
    }

    /// Compiles a batch with at most `jobs` compiles at once.
    fn compile(&mut self, batch: Vec<(BlockKey, WorkBlock)>, jobs: usize) {
        let jit = self.jit.clone();
        let per_job = batch.len().div_ceil(jobs.max(1));
        let compile_chunk = |chunk: &[(BlockKey, WorkBlock)]| {
            chunk
                .iter()
                .map(|(k, b)| (*k, compile_block(&jit, b)))
                .collect::<Vec<_>>()
        };
        // One job runs here: the pool's threads stay asleep.
        let results: Vec<(BlockKey, Option<UnitEntry>)> = if jobs <= 1 {
            compile_chunk(&batch)
        } else {
            self.pool
                .install(|| batch.par_chunks(per_job.max(1)).flat_map_iter(compile_chunk).collect())
        };
        self.status.jobs = jobs as u64;
        for (key, entry) in results {
            match entry {
                Some(e) => {
                    self.status.compiles_done += 1;
                    let k = UnitKey {
                        module: key.module,
                        config: self.config,
                        offset: cache_format::ModuleOffset(key.offset),
                    };
                    self.pending.push((k, e));
                    self.pending_blocks.push(key);
                }
                None => {
                    self.status.compiles_failed += 1;
                    self.failed.insert(key);
                    self.settle(&key);
                }
            }
        }
        self.close_finished();
    }

    /// Writes everything compiled and taken in since the last write; false if the index could
    /// not be opened (kept for the next try).
    fn write(&mut self) -> bool {
        self.last_write = Instant::now();
        // Writing would create the directory again.
        let entered = std::mem::take(&mut self.pending_entered);
        let stub = crate::jit::pack_link_stub();
        if self.gone() || !journal::write_entries(&self.dir, self.config, &self.pending, &entered, 100, stub) {
            self.pending_entered = entered;
            return false;
        }
        self.status.writes += 1;
        let mut written: BTreeSet<Hash> = entered.into_keys().collect();
        for (k, e) in std::mem::take(&mut self.pending) {
            let known = self.known.entry(k.module).or_default();
            known.units.insert((k.offset.0, e.guest_hash));
            written.insert(k.module);
        }
        // The packs as written now hold those units: a later change to one (collection removing
        // it) must read as a change, also when the first look found no pack at all.
        for module in written {
            let stamp = pack_stamp(&self.dir, &module, &self.config);
            self.known.entry(module).or_default().stamp = stamp;
        }
        for key in std::mem::take(&mut self.pending_blocks) {
            self.settle(&key);
        }
        for id in std::mem::take(&mut self.pending_journals) {
            if let Some(j) = self.journals[id].as_mut() {
                j.units_written = true;
            }
        }
        self.close_finished();
        true
    }

    /// A block is done (written or failed): one less for each journal that sent it.
    fn settle(&mut self, key: &BlockKey) {
        for id in self.queue.finish(key) {
            if let Some(j) = self.journals[id].as_mut() {
                j.blocks_left = j.blocks_left.saturating_sub(1);
            }
        }
    }

    /// Removes the journals whose every unit and block is in the packs.
    fn close_finished(&mut self) {
        for slot in &mut self.journals {
            if slot.as_ref().is_some_and(|j| j.units_written && j.blocks_left == 0) {
                if let Some(j) = slot.take() {
                    let _ = std::fs::remove_file(&j.path);
                    self.status.journals_merged += 1;
                }
            }
        }
    }

    fn open_journals(&self) -> usize {
        self.journals.iter().filter(|j| j.is_some()).count()
    }

    /// Compile jobs to run at once: one while runs are handing work in (a burst of runs, a
    /// build, gets one core of background work, however idle the cores look between its
    /// runs), then one per core not busy with something else.
    fn jobs(&self) -> usize {
        if self.in_burst() {
            return 1;
        }
        crate::linux::host::idle_cores().min(self.cores)
    }

    /// Whether runs are handing work in: a journal came in within `BURST_QUIET`.
    fn in_burst(&self) -> bool {
        self.last_journal.elapsed() < BURST_QUIET
    }

    /// Shows what the worker starts doing.
    fn set_state(&mut self, state: &str) {
        self.status.state = state.into();
        self.shared.status.lock().unwrap_or_else(|e| e.into_inner()).state = state.into();
    }

    /// Updates the status others read, and its file at most once per `LOOK_EVERY`.
    fn publish(&mut self) {
        self.status.queue = self.queue.len() as u64;
        self.status.regions_queued = (self.regions.len() + self.touched.len()) as u64;
        self.status.journals_open = self.open_journals() as u64;
        self.status.uptime_s = self.started.elapsed().as_secs();
        let cpu = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        self.status.cpu_ms = cpu.tv_sec as u64 * 1000 + cpu.tv_nsec as u64 / 1_000_000;
        *self.shared.status.lock().unwrap_or_else(|e| e.into_inner()) = self.status.clone();
        if self.last_saved.elapsed() >= LOOK_EVERY {
            self.last_saved = Instant::now();
            self.status.save(&self.dir);
        }
    }

    /// Whether a run asked the worker to look (and clears the request).
    fn take_wake_request(&self) -> bool {
        std::mem::take(&mut self.shared.scans.lock().unwrap_or_else(|e| e.into_inner()).1)
    }

    /// Sleeps until a run asks for a look, or `limit`.
    fn sleep(&self, limit: Duration) {
        let g = self.shared.scans.lock().unwrap_or_else(|e| e.into_inner());
        if !g.1 {
            let _ = self.shared.wake.wait_timeout(g, limit);
        }
    }
}

/// Where a module's code lies in the runs that use its pack, from where a run loaded it: a
/// module loaded at its own addresses (no relocation: a program that is not position
/// independent; no other can lie at 0) lies there in every run.
fn placement(load_base: u64) -> Placement {
    if load_base == 0 {
        Placement::Fixed
    } else {
        Placement::Relocatable
    }
}

/// Compiles a planned region into the entry for its head.
pub fn compile_region(jit: &Jit, p: &Planned, load_base: u64) -> Option<UnitEntry> {
    let unit = jit.compile_for_pack(&p.region, placement(load_base)).ok()?;
    let entry = pack_entry(unit, load_base, &p.bytes, p.heat);
    Some(UnitEntry {
        guest_len: p.guest_len,
        outer: p.outer.clone(),
        ..entry
    })
}

/// Compiles one submitted block as the run would have: its bytes decoded at its address must
/// give exactly the block it ran.
fn compile_block(jit: &Jit, b: &WorkBlock) -> Option<UnitEntry> {
    let block = decode_block(&b.bytes, b.rip(), semantics::classify);
    if block.insns.is_empty() || block.len != b.bytes.len() as u64 {
        return None;
    }
    let unit = jit
        .compile_for_pack(&Region::single(block), placement(b.load_base))
        .ok()?;
    let heat = u32::try_from(b.executions).unwrap_or(u32::MAX);
    Some(pack_entry(unit, b.load_base, &b.bytes, heat))
}

/// The entry of a unit compiled for a pack from guest `bytes` of a module loaded at
/// `load_base` (all of them at its offset: no outer ranges), `heat` hot: its links lead to
/// module offsets.
fn pack_entry(unit: CompiledUnit, load_base: u64, bytes: &[u8], heat: u32) -> UnitEntry {
    let mark = unit.entry_mark.map(|at| Link {
        at,
        kind: LinkKind::EntryMark,
        target: ModuleOffset(0),
    });
    let links = unit
        .links
        .iter()
        .map(|&(at, target)| Link {
            at,
            kind: LinkKind::Rel32,
            target: ModuleOffset(target.wrapping_sub(load_base)),
        })
        .chain(mark)
        .collect();
    UnitEntry {
        load_base,
        guest_len: bytes.len() as u32,
        ninsns: unit.ninsns,
        guest_hash: *blake3::hash(bytes).as_bytes(),
        code: unit.code,
        links,
        linked: true,
        entered: false,
        heat,
        outer: Vec::new(),
    }
}

/// A pack file's size and modification time, None without one: what tells that it changed.
fn pack_stamp(dir: &Path, module: &Hash, config: &ConfigId) -> Option<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(crate::cache::pack_path(dir, module, config)).ok()?;
    Some((m.len(), m.modified().ok()?))
}
