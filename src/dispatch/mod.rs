//! The dispatcher: finds or makes the unit for each guest rip, runs it in the baseline tier or
//! as compiled code, applies the tiering policy (background compilation on a rayon pool), and
//! takes units from and gives units to the persistent cache.

use crate::cache::Cache;
use crate::cpu::{exit, fault, Cpu};
use crate::decode::{decode_block, Block};
use crate::jit::{self, CompiledUnit, EnterFn, Jit, UnitFn};
use crate::linux::{Process, SysResult};
use crate::mem::GUEST_MASK;
use crate::stats::Stats;
use crate::{interp, semantics};
use cache_format::{ConfigId, Hash, UnitEntry, UnitKey};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Tier {
    /// Baseline tier only.
    Interp,
    /// Every block compiled before it first runs.
    Jit,
    /// Baseline first, hot blocks compiled in the background, persistent cache used.
    Auto,
}

/// Executions in the baseline tier before a block is queued for compilation.
pub const HOT_THRESHOLD: u32 = 64;

use crate::mem::AddrMap;

struct Unit {
    block: Option<Arc<Block>>,
    code: Option<UnitFn>,
    ninsns: u64,
    count: u32,
    queued: bool,
}

/// A unit found in the cache, used once its guest bytes are verified.
struct CachedUnit {
    code: UnitFn,
    guest_len: u64,
    ninsns: u64,
    guest_hash: Hash,
}

/// A unit compiled in this run, kept for writing to the cache at exit.
struct NewUnit {
    rip: u64,
    guest_len: u64,
    unit: CompiledUnit,
}

#[derive(Clone, Copy)]
pub struct Module {
    pub hash: Hash,
    pub load_bias: u64,
    pub lo: u64,
    pub hi: u64,
}

pub struct Engine {
    pub cpu: Box<Cpu>,
    pub proc: Arc<Process>,
    /// For a guest thread created with CLONE_CHILD_CLEARTID: the guest tid word to clear and
    /// wake at its exit.
    clear_tid: Option<u64>,
    is_main: bool,
    pub tier: Tier,
    pub stats: Stats,
    jit: Option<Jit>,
    /// Trampoline into compiled code.
    enter: Option<EnterFn>,
    /// Executable memory for this thread's units.
    arena: jit::execmem::Arena,
    /// Chaining table shared with compiled code (`cpu.chain_table` points at it).
    chain: Box<[[u64; 2]]>,
    /// The cache directory, when the cache is in use. The index is opened only to read at
    /// start and to write at exit, so concurrent runs rarely meet its lock.
    cache: Option<std::path::PathBuf>,
    /// Compile workers (rebuilt in a forked child).
    pool: Option<Arc<rayon::ThreadPool>>,
    config: Option<ConfigId>,
    module: Module,
    /// Other modules holding code (the dynamic loader, shared libraries), found as the guest
    /// runs their code; None for an executable mapping Kiln could not identify.
    libs: Vec<(u64, u64, Option<Module>)>,
    units: Vec<Unit>,
    index: AddrMap<usize>,
    cached: AddrMap<CachedUnit>,
    new_units: Vec<NewUnit>,
    tx: mpsc::Sender<(usize, Result<CompiledUnit, jit::JitError>, u64)>,
    rx: mpsc::Receiver<(usize, Result<CompiledUnit, jit::JitError>, u64)>,
    pending: usize,
    /// Per module (by hash): file name, units loaded from the cache, cache hits.
    module_use: std::collections::HashMap<Hash, (String, u64, u64)>,
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

impl Engine {
    pub fn new(
        cpu: Box<Cpu>,
        proc: Arc<Process>,
        tier: Tier,
        module: Module,
        extra: Vec<Module>,
        cache: Option<std::path::PathBuf>,
    ) -> anyhow::Result<Engine> {
        let jit = if tier == Tier::Interp { None } else { Some(Jit::new()?) };
        let config = jit.as_ref().map(|j| {
            ConfigId::from_description(&format!(
                "kiln {} {} cpuid={:?}",
                env!("CARGO_PKG_VERSION"),
                j.config_description(),
                cpuid_profile()
            ))
        });
        let enter = match (&jit, jit::runtime()) {
            (Some(_), Some(rt)) => Some(rt.enter()),
            (Some(_), None) => anyhow::bail!("cannot build the trampoline into compiled code"),
            (None, _) => None,
        };
        let (tx, rx) = mpsc::channel();
        let mut e = Engine {
            cpu,
            proc,
            clear_tid: None,
            is_main: true,
            tier,
            stats: Stats::default(),
            jit,
            enter,
            arena: Default::default(),
            chain: new_chain_table(),
            cache: if tier == Tier::Auto { cache.clone() } else { None },
            pool: None,
            config,
            module,
            libs: Vec::new(),
            units: Vec::new(),
            index: AddrMap::default(),
            cached: AddrMap::default(),
            new_units: Vec::new(),
            tx,
            rx,
            pending: 0,
            module_use: Default::default(),
        };
        e.cpu.helpers = jit::HELPERS.as_ptr() as u64;
        e.cpu.interrupt = &crate::linux::signals::INTERRUPT as *const _ as u64;
        e.cpu.chain_table = e.chain.as_ptr() as u64;
        e.libs = extra.iter().map(|m| (m.lo, m.hi, Some(*m))).collect();
        if tier == Tier::Auto {
            if let Some(dir) = &cache {
                let main = e.module;
                e.load_cache(dir, &main);
                for m in extra {
                    e.load_cache(dir, &m);
                }
            }
            e.pool = Self::new_pool();
        }
        drop(cache);
        Ok(e)
    }

    fn new_pool() -> Option<Arc<rayon::ThreadPool>> {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("kiln-compile-{i}"))
            .build()
            .ok()
            .map(Arc::new)
    }

    /// A guest thread (clone with CLONE_VM|CLONE_THREAD): a host thread with its own CPU and
    /// unit table, sharing the process, the JIT and the compile workers. Returns the new tid.
    fn spawn_thread(&mut self, c: crate::linux::CloneArgs) -> i64 {
        const CLONE_SETTLS: u64 = 0x80000;
        const CLONE_PARENT_SETTID: u64 = 0x0010_0000;
        const CLONE_CHILD_CLEARTID: u64 = 0x0020_0000;
        const CLONE_CHILD_SETTID: u64 = 0x0100_0000;
        let mut cpu = self.cpu.clone();
        cpu.gpr[0] = 0;
        cpu.gpr[1] = cpu.rip;
        if c.stack != 0 {
            cpu.gpr[4] = c.stack;
        }
        if c.flags & CLONE_SETTLS != 0 {
            cpu.fs_base = c.tls;
        }
        cpu.insns_compiled = 0;
        let proc = self.proc.clone();
        let libs = self.libs.clone();
        let (jit, pool, enter, tier, module, config) = (
            self.jit.clone(),
            self.pool.clone(),
            self.enter,
            self.tier,
            self.module,
            self.config,
        );
        let (tx, rx) = mpsc::channel::<i64>();
        let clear_tid = (c.flags & CLONE_CHILD_CLEARTID != 0 && c.ctid != 0).then_some(c.ctid);
        let set_tid = (c.flags & CLONE_CHILD_SETTID != 0 && c.ctid != 0).then_some(c.ctid);
        let parent_tid = (c.flags & CLONE_PARENT_SETTID != 0 && c.ptid != 0).then_some(c.ptid);
        let spawned = std::thread::Builder::new().name("kiln-guest".into()).spawn(move || {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() } as i64;
            // Both tid words are written before the new thread runs guest code, as the
            // kernel does (libc reads its own tid from the parent's word at once).
            if let Some(a) = set_tid {
                let _ = proc.mem.write_bytes(a, &(tid as u32).to_le_bytes());
            }
            if let Some(a) = parent_tid {
                let _ = proc.mem.write_bytes(a, &(tid as u32).to_le_bytes());
            }
            let (ctx, crx) = mpsc::channel();
            let mut e = Engine {
                cpu,
                proc,
                clear_tid,
                is_main: false,
                tier,
                stats: Stats::default(),
                jit,
                enter,
                arena: Default::default(),
                chain: new_chain_table(),
                cache: None,
                pool,
                config,
                module,
                libs,
                units: Vec::new(),
                index: AddrMap::default(),
                cached: AddrMap::default(),
                new_units: Vec::new(),
                tx: ctx,
                rx: crx,
                pending: 0,
                module_use: Default::default(),
            };
            e.cpu.chain_table = e.chain.as_ptr() as u64;
            let _ = tx.send(tid);
            e.run_thread();
        });
        match spawned {
            Ok(_) => rx.recv().unwrap_or(-(libc::EAGAIN as i64)),
            Err(_) => -(libc::EAGAIN as i64),
        }
    }

    /// The body of a guest thread: runs until the thread exits; the process ends only through
    /// exit_group, a fatal signal or execve.
    fn run_thread(&mut self) {
        match self.run() {
            Outcome::Exit(_) => {}
            Outcome::ExitGroup(c) => std::process::exit(c & 0xff),
            Outcome::Signal(sig) => crate::linux::signals::die_of(sig),
            Outcome::Exec(_) => {
                eprintln!("kiln: execve from a secondary thread is not supported yet");
                std::process::exit(127);
            }
        }
        crate::linux::syscalls::exit_robust_list(&self.proc.mem);
        if let Some(a) = self.clear_tid {
            let _ = self.proc.mem.write_bytes(a, &0u32.to_le_bytes());
            if let Some(p) = self.proc.mem.host_ptr(a, 4) {
                // SAFETY: futex wake on a guest word inside the reservation.
                unsafe { libc::syscall(libc::SYS_futex, p, libc::FUTEX_WAKE, i32::MAX, 0, 0, 0) };
            }
        }
    }

    /// In a forked child: the compile workers and the background results did not survive the
    /// fork; start them afresh. Units that were waiting for a compile may be queued again.
    pub fn after_fork_child(&mut self) {
        std::mem::forget(self.pool.take());
        self.pool = Self::new_pool();
        let (tx, rx) = mpsc::channel();
        std::mem::forget(std::mem::replace(&mut self.tx, tx));
        std::mem::forget(std::mem::replace(&mut self.rx, rx));
        // Libraries with global worker threads (the cache index among them) may hold locks
        // that no thread of the child will release: a forked child does not write the cache
        // (it usually execs at once, and the new program writes its own).
        self.cache = None;
        self.pending = 0;
        for u in &mut self.units {
            if u.code.is_none() && u.block.is_some() {
                u.queued = false;
            }
        }
    }

    /// Loads the module's units: from its pack when there is a good one (no index, no lock),
    /// else from the index.
    fn load_cache(&mut self, dir: &std::path::Path, module: &Module) {
        let Some(config) = &self.config else {
            return;
        };
        // (offset in module, code, guest length, instructions, guest bytes' hash)
        let mut found: Vec<(u64, UnitFn, u64, u64, Hash)> = Vec::new();
        match crate::cache::read_pack(dir, &module.hash, config) {
            Some(pack) => {
                let units = pack.units;
                match jit::execmem::make_exec(pack.map) {
                    Ok(base) => {
                        for u in &units {
                            // SAFETY: the pack was checked: each unit's code lies inside the
                            // mapping (which is now executable and stays for the process).
                            let f: UnitFn = unsafe { base.add(u.code_start) };
                            found.push((u.offset, f, u.guest_len as u64, u.ninsns as u64, u.guest_hash));
                        }
                    }
                    Err((e, map)) => {
                        // A cache on a file system mounted noexec: copy the code instead.
                        crate::klog!("cache", "cannot execute the pack in place ({e}); copying it");
                        let b = map.bytes();
                        let codes: Vec<&[u8]> = units
                            .iter()
                            .map(|u| &b[u.code_start..u.code_start + u.code_len])
                            .collect();
                        let Ok(fns) = jit::execmem::install(&codes) else { return };
                        for (u, f) in units.iter().zip(fns) {
                            found.push((u.offset, f, u.guest_len as u64, u.ninsns as u64, u.guest_hash));
                        }
                    }
                }
            }
            // No pack: nothing cached for the module (the index only holds units whose pack
            // write failed, folded in at the next write). A damaged pack: try the index.
            None if !crate::cache::pack_path(dir, &module.hash, config).exists() => {}
            None => {
                let (units, bad) = match Cache::open(dir) {
                    Ok(c) => c.load_module(&module.hash, config),
                    Err(e) => {
                        crate::klog!("cache", "{e}; running without the cache");
                        return;
                    }
                };
                self.stats.cache_rejected += bad;
                let codes: Vec<&[u8]> = units.iter().map(|u| &u.entry.code[..]).collect();
                let fns = match jit::execmem::install(&codes) {
                    Ok(f) => f,
                    Err(e) => {
                        crate::klog!("cache", "cannot map cached code ({e}); running without it");
                        return;
                    }
                };
                for (u, f) in units.iter().zip(fns) {
                    let e = &u.entry;
                    found.push((u.offset, f, e.guest_len as u64, e.ninsns as u64, e.guest_hash));
                }
            }
        }
        self.stats.units_loaded += found.len() as u64;
        self.module_use.entry(module.hash).or_default().1 += found.len() as u64;
        for (offset, code, guest_len, ninsns, guest_hash) in found {
            // Units are position-independent: they serve the module wherever it is loaded.
            let rip = offset.wrapping_add(module.load_bias);
            self.cached.insert(
                rip,
                CachedUnit {
                    code,
                    guest_len,
                    ninsns,
                    guest_hash,
                },
            );
        }
    }

    /// The module holding guest code at [rip, rip+len), if Kiln knows it.
    fn module_of(&self, rip: u64, len: u64) -> Option<Module> {
        let inside = |lo: u64, hi: u64| rip >= lo && rip.saturating_add(len) <= hi;
        if inside(self.module.lo, self.module.hi) {
            return Some(self.module);
        }
        self.libs
            .iter()
            .rev()
            .find(|(lo, hi, _)| inside(*lo, *hi))
            .and_then(|(_, _, m)| *m)
    }

    /// Identifies the executable file mapping holding `rip` (first time its code runs) and
    /// loads that module's cached units.
    fn discover_module(&mut self, rip: u64) {
        if self.libs.iter().any(|(lo, hi, _)| rip >= *lo && rip < *hi) {
            return;
        }
        let found = {
            let maps = self.proc.exec_maps.lock().unwrap_or_else(|e| e.into_inner());
            maps.iter().rev().find(|(s, e, _, _)| rip >= *s && rip < *e).cloned()
        };
        let Some((start, end, off, path)) = found else {
            return;
        };
        let hash = self.cache.as_ref().and_then(|dir| {
            let f = std::fs::File::open(&path).ok()?;
            crate::cache::memo::file_hash(dir, &f, None)
        });
        let module = hash.map(|hash| Module {
            hash,
            load_bias: start.wrapping_sub(off),
            lo: start,
            hi: end,
        });
        if let Some(m) = &module {
            self.name_module(m.hash, std::path::Path::new(&path));
        }
        self.libs.push((start, end, module));
        if let (Some(m), Some(dir)) = (module, self.cache.clone()) {
            self.load_cache(&dir, &m);
        }
    }

    fn guest_bytes(&self, rip: u64, len: u64) -> Option<&[u8]> {
        if len == 0 || self.proc.mem.readable_len(rip, len) != len {
            return None;
        }
        self.proc.mem.read_bytes(rip & GUEST_MASK, len as usize)
    }

    /// Finds or creates the unit for `rip`.
    fn unit_for(&mut self, rip: u64) -> usize {
        if let Some(&i) = self.index.get(&rip) {
            return i;
        }
        // A cached translation, if its guest bytes still match.
        if let Some(c) = self.cached.remove(&rip) {
            let ok = self
                .guest_bytes(rip, c.guest_len)
                .is_some_and(|b| blake3::hash(b).as_bytes() == &c.guest_hash);
            if ok {
                self.stats.cache_hits += 1;
                if let Some(m) = self.module_of(rip, c.guest_len) {
                    self.module_use.entry(m.hash).or_default().2 += 1;
                }
                self.chain_insert(rip, c.code);
                return self.add_unit(
                    rip,
                    Unit {
                        block: None,
                        code: Some(c.code),
                        ninsns: c.ninsns,
                        count: 0,
                        queued: true,
                    },
                );
            }
            self.stats.cache_rejected += 1;
        } else if self.cache.is_some() {
            if self.module_of(rip, 1).is_none() {
                self.discover_module(rip);
                if self.cached.contains_key(&rip) {
                    return self.unit_for(rip);
                }
            }
            self.stats.cache_misses += 1;
        }
        let len = self.proc.mem.readable_len(rip, 4096);
        let code = self.proc.mem.read_bytes(rip, len as usize).unwrap_or(&[]);
        let block = decode_block(code, rip, semantics::classify);
        crate::klog!("decode", "decoding the block at {rip:#x}");
        self.stats.blocks_decoded += 1;
        let ninsns = block.insns.len() as u64;
        let block = Arc::new(block);
        let mut unit = Unit {
            block: Some(block.clone()),
            code: None,
            ninsns,
            count: 0,
            queued: false,
        };
        if self.tier == Tier::Jit && ninsns > 0 {
            if let Some(jit) = &self.jit {
                let t = Instant::now();
                match jit.compile(&block) {
                    Ok(cu) => {
                        self.stats.compile_us += t.elapsed().as_micros() as u64;
                        self.stats.units_compiled += 1;
                        match self.arena.install(&[&cu.code]) {
                            Ok(f) => {
                                unit.code = f.first().copied();
                                if let Some(&f) = f.first() {
                                    self.chain_insert(rip, f);
                                }
                            }
                            Err(e) => crate::klog!("jit", "{e}"),
                        }
                    }
                    Err(e) => crate::klog!("jit", "{e}; the block runs in the baseline tier"),
                }
                unit.queued = true;
            }
        }
        self.add_unit(rip, unit)
    }

    /// Lets compiled code jump straight to `code` when it leaves for `rip`.
    fn chain_insert(&mut self, rip: u64, code: UnitFn) {
        self.chain[crate::cpu::chain_slot(rip) as usize] = [rip, code as u64];
    }

    fn add_unit(&mut self, rip: u64, u: Unit) -> usize {
        let i = self.units.len();
        self.units.push(u);
        self.index.insert(rip, i);
        i
    }

    fn queue_compile(&mut self, i: usize) {
        let (Some(jit), Some(block), Some(pool)) = (self.jit.clone(), self.units[i].block.clone(), self.pool.as_ref())
        else {
            return;
        };
        self.units[i].queued = true;
        self.pending += 1;
        let tx = self.tx.clone();
        pool.spawn(move || {
            let t = Instant::now();
            let r = jit.compile(&block);
            let _ = tx.send((i, r, t.elapsed().as_micros() as u64));
        });
    }

    /// Installs finished background compiles; with `wait`, waits for all of them.
    fn collect_compiled(&mut self, wait: bool) {
        let mut done = Vec::new();
        while self.pending > 0 {
            let msg = if wait {
                self.rx.recv().ok()
            } else {
                self.rx.try_recv().ok()
            };
            let Some(m) = msg else { break };
            self.pending -= 1;
            done.push(m);
        }
        let mut ok = Vec::new();
        for (i, r, us) in done {
            self.stats.compile_us += us;
            match r {
                Ok(cu) => ok.push((i, cu)),
                Err(e) => crate::klog!("jit", "{e}; the block stays in the baseline tier"),
            }
        }
        if ok.is_empty() {
            return;
        }
        let codes: Vec<&[u8]> = ok.iter().map(|(_, c)| &c.code[..]).collect();
        let fns = match self.arena.install(&codes) {
            Ok(f) => f,
            Err(e) => {
                crate::klog!("jit", "{e}");
                return;
            }
        };
        for ((i, cu), f) in ok.into_iter().zip(fns) {
            self.stats.units_compiled += 1;
            self.units[i].code = Some(f);
            if let Some(b) = self.units[i].block.clone() {
                self.chain_insert(b.start, f);
                self.new_units.push(NewUnit {
                    rip: b.start,
                    guest_len: b.len,
                    unit: cu,
                });
            }
        }
    }

    /// Runs the guest until it exits or dies.
    pub fn run(&mut self) -> Outcome {
        crate::linux::signals::set_current(&mut *self.cpu);
        loop {
            if self.pending > 0 {
                self.collect_compiled(false);
            }
            if crate::linux::signals::INTERRUPT.load(std::sync::atomic::Ordering::Relaxed) != 0 {
                match self.proc.deliver_signal(&mut self.cpu) {
                    crate::linux::signals::Delivery::Terminate(sig) => return Outcome::Signal(sig),
                    crate::linux::signals::Delivery::Handler | crate::linux::signals::Delivery::None => {}
                }
            }
            let rip = self.cpu.rip;
            let i = self.unit_for(rip);
            let code = if let (Some(f), Some(enter)) = (self.units[i].code, self.enter) {
                // A unit reached through the dispatcher takes (back) its chaining slot, so
                // that the next exit to it from compiled code goes straight there.
                self.chain_insert(rip, f);
                // SAFETY: `f` is executable compiled code with the unit signature, entered
                // through the trampoline, and the context it receives is this engine's CPU.
                unsafe { enter(&mut *self.cpu, f) }
            } else {
                let u = &mut self.units[i];
                let Some(block) = u.block.clone() else {
                    unreachable!("uncompiled unit without a block")
                };
                if block.insns.is_empty() {
                    return self.stop(&block);
                }
                u.count += 1;
                let hot = self.tier == Tier::Auto && !u.queued && u.count >= HOT_THRESHOLD;
                self.stats.guest_insns_interp += u.ninsns;
                let code = interp::run_block_guarded(&mut self.cpu, &block);
                if hot {
                    self.queue_compile(i);
                }
                code
            };
            match code {
                exit::NEXT => {}
                exit::SYSCALL => match self.proc.syscall(&mut self.cpu) {
                    SysResult::Continue => {}
                    SysResult::Exit(c) => return Outcome::ExitGroup(c),
                    SysResult::ExitThread(c) if self.is_main => return Outcome::ExitGroup(c),
                    SysResult::ExitThread(c) => return Outcome::Exit(c),
                    SysResult::SpawnThread(args) => {
                        let r = self.spawn_thread(args);
                        self.cpu.gpr[0] = r as u64;
                    }
                    SysResult::Exec(req) => return Outcome::Exec(req),
                    SysResult::ForkedChild => self.after_fork_child(),
                },
                _ => {
                    if let Some(o) = self.fault() {
                        return o;
                    }
                }
            }
        }
    }

    fn stop(&mut self, block: &Block) -> Outcome {
        let (addr, bytes, ins) = block
            .stop
            .clone()
            .unwrap_or((block.start, Vec::new(), Default::default()));
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if ins.code() == iced_x86::Code::INVALID {
            if bytes.is_empty() {
                eprintln!("kiln: cannot fetch instructions at guest address {addr:#x} (unmapped or not readable)");
                return Outcome::Signal(libc::SIGSEGV);
            }
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

    /// A fault from an instruction: the guest's handler runs, or the process dies of it.
    /// Returns None when execution continues (in the handler).
    fn fault(&mut self) -> Option<Outcome> {
        let (f, at) = (self.cpu.fault, self.cpu.fault_addr);
        // (signal, si_code, si_addr); int3 is a trap: the saved rip is after it.
        // (signal, si_code, si_addr, sigcontext err/trapno/cr2); int3 is a trap: the saved
        // rip is after it.
        let (sig, code, addr, trap) = match f {
            fault::DIVIDE => (libc::SIGFPE, 1, at, [0, 0, 0]),  // FPE_INTDIV, #DE
            fault::INT3 => (libc::SIGTRAP, 0x80, 0, [0, 3, 0]), // SI_KERNEL, #BP
            fault::HALT | fault::GP => (libc::SIGSEGV, 0x80, 0, [0, 13, 0]), // #GP
            fault::UD => (libc::SIGILL, 2, at, [0, 6, 0]),      // ILL_ILLOPN, #UD
            fault::SIMD => {
                // #XM: the code names the first unmasked flag set, in the kernel's order.
                let mx = self.cpu.mxcsr as u64;
                let e = mx & !(mx >> 7) & 0x3f;
                let code = if e & 1 != 0 {
                    7 // FPE_FLTINV
                } else if e & 4 != 0 {
                    3 // FPE_FLTDIV
                } else if e & 8 != 0 {
                    4 // FPE_FLTOVF
                } else if e & 0x12 != 0 {
                    5 // FPE_FLTUND
                } else if e & 0x20 != 0 {
                    6 // FPE_FLTRES
                } else {
                    0
                };
                (libc::SIGFPE, code, at, [0, 19, 0])
            }
            fault::MEMORY => {
                // The unit (or block) stopped before the faulting instruction: resume there.
                self.cpu.rip = self.cpu.rip.wrapping_add(self.cpu.insn_off);
                let write = self.cpu.fault_info & crate::cpu::fault_info::WRITE != 0;
                let mapped = self.proc.mem.mapped(at);
                crate::klog!(
                    "signal",
                    "guest {} of {at:#x} at {:#x} faulted",
                    if write { "write" } else { "read" },
                    self.cpu.rip
                );
                if self.cpu.fault_info & crate::cpu::fault_info::BUS != 0 {
                    (libc::SIGBUS, 2, at, [4 | (write as u64) << 1, 14, at]) // BUS_ADRERR
                } else {
                    // SEGV_MAPERR or SEGV_ACCERR; error code: user, write, protection.
                    let err = 4 | (write as u64) << 1 | mapped as u64;
                    (libc::SIGSEGV, if mapped { 2 } else { 1 }, at, [err, 14, at])
                }
            }
            _ => {
                eprintln!("kiln: unimplemented instruction form at guest address {at:#x}");
                return Some(Outcome::Signal(libc::SIGILL));
            }
        };
        if f == fault::INT3 {
            self.cpu.rip = at + 1;
        }
        self.cpu.fault = 0;
        match self.proc.deliver_fault(&mut self.cpu, sig, code, addr, trap) {
            crate::linux::signals::Delivery::Handler => None,
            _ => Some(Outcome::Signal(sig)),
        }
    }

    /// Names a module for the usage statistics (by its file name).
    pub fn name_module(&mut self, hash: Hash, path: &std::path::Path) {
        self.module_use.entry(hash).or_default().0 = file_name(path);
    }

    /// Appends this run's record to the cache's usage log (runs that use the cache only).
    pub fn record_usage(&self, program: &std::path::Path, wall: std::time::Duration) {
        let Some(dir) = &self.cache else { return };
        let hex = crate::cache::hex;
        let modules = self
            .module_use
            .iter()
            .filter(|(_, u)| u.1 > 0 || u.2 > 0)
            .map(|(h, u)| crate::cache::usage::ModuleUse {
                hash: hex(h),
                name: u.0.clone(),
                loaded: u.1,
                hits: u.2,
            })
            .collect();
        let s = &self.stats;
        let r = crate::cache::usage::RunRecord {
            t: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            program: hex(&self.module.hash),
            name: file_name(program),
            wall_us: wall.as_micros() as u64,
            insns_interp: s.guest_insns_interp,
            insns_compiled: s.guest_insns_compiled,
            hits: s.cache_hits,
            misses: s.cache_misses,
            compiled: s.units_compiled,
            compile_us: s.compile_us,
            modules,
        };
        crate::cache::usage::append(dir, &r);
    }

    /// Final statistics of the run.
    pub fn finish_stats(&mut self) {
        self.stats.guest_insns_compiled = self.cpu.insns_compiled;
    }

    /// Waits for background compiles and writes this run's new units to the cache.
    pub fn persist(&mut self) {
        if self.cache.is_none() {
            return;
        }
        let sync = std::env::var_os("KILN_CACHE_SYNC").is_some_and(|v| v != "0");
        // Compiles still in flight are not waited for (unless writing synchronously): their
        // blocks go to the detached worker with the rest.
        self.collect_compiled(sync);
        let (Some(dir), Some(config)) = (self.cache.clone(), self.config) else {
            return;
        };
        // Everything that ran gets compiled: blocks the tiering threshold left in the baseline
        // tier are compiled now, so the next run finds them all.
        let todo: Vec<Arc<Block>> = self
            .units
            .iter()
            .filter(|u| u.code.is_none())
            .filter_map(|u| u.block.clone())
            .filter(|b| !b.insns.is_empty() && self.module_of(b.start, b.len).is_some())
            .collect();
        let mut entries = self.entries_for(&self.new_units, config);
        self.stats.units_stored = (entries.len() + todo.len()) as u64;
        if entries.is_empty() && todo.is_empty() {
            return;
        }
        if !sync && !todo.is_empty() {
            // Off the critical path: a detached child compiles and writes; this process exits
            // at once. The child lets go of every descriptor the guest could be waiting on.
            // SAFETY: fork; the child only compiles, writes the cache and _exits.
            let pid = unsafe { libc::fork() };
            if pid != 0 {
                return; // parent (or fork failure: the work is dropped, never the run)
            }
            // SAFETY: detaching the child from the guest's session and descriptors.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                for fd in 0..3 {
                    libc::dup2(null, fd);
                }
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            }
            self.pool = Self::new_pool();
        }
        if let (Some(jit), Some(pool)) = (self.jit.clone(), self.pool.clone()) {
            use rayon::prelude::*;
            let compiled: Vec<NewUnit> = pool.install(|| {
                todo.par_iter()
                    .filter_map(|b| {
                        jit.compile(b).ok().map(|unit| NewUnit {
                            rip: b.start,
                            guest_len: b.len,
                            unit,
                        })
                    })
                    .collect()
            });
            entries.extend(self.entries_for(&compiled, config));
        }
        if sync || todo.is_empty() {
            Self::write_entries(&dir, config, &entries, 50);
            return;
        }
        // The detached child must not open the index itself (libraries' global worker threads
        // did not survive the fork and may hold locks): it writes a journal and re-executes
        // Kiln to merge it into the index and the pack.
        let journals = Self::write_journals(&dir, config, &entries);
        if !journals.is_empty() {
            {
                use std::os::unix::ffi::OsStrExt;
                let c = |b: &[u8]| std::ffi::CString::new(b.to_vec()).unwrap_or_default();
                // The running binary itself, even if its file was replaced since.
                let mut args = vec![c(b"/proc/self/exe"), c(b"cache"), c(b"merge")];
                args.extend(journals.iter().map(|j| c(j.as_os_str().as_bytes())));
                let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
                argp.push(std::ptr::null());
                let envp: [*const libc::c_char; 1] = [std::ptr::null()];
                // SAFETY: NULL-terminated arrays of valid C strings (the journal's path names
                // the cache directory).
                unsafe { libc::execve(args[0].as_ptr(), argp.as_ptr(), envp.as_ptr()) };
            }
        }
        // SAFETY: the detached child ends here without running the guest's exit path.
        unsafe { libc::_exit(0) };
    }

    /// Cache entries for compiled units of known modules (code from anonymous or unidentified
    /// memory is never persisted).
    fn entries_for(&self, units: &[NewUnit], config: ConfigId) -> Vec<(UnitKey, UnitEntry)> {
        let mut entries = Vec::new();
        for n in units {
            let Some(module) = self.module_of(n.rip, n.guest_len) else {
                continue;
            };
            // The code may have been unmapped since it ran (a library closed before exit).
            if self.proc.mem.readable_len(n.rip, n.guest_len) != n.guest_len {
                continue;
            }
            let Some(bytes) = self.proc.mem.read_bytes(n.rip & GUEST_MASK, n.guest_len as usize) else {
                continue;
            };
            let key = UnitKey {
                module: module.hash,
                config,
                offset: n.rip.wrapping_sub(module.load_bias),
            };
            let entry = UnitEntry {
                load_base: module.load_bias,
                guest_len: n.guest_len as u32,
                ninsns: n.unit.ninsns,
                guest_hash: *blake3::hash(bytes).as_bytes(),
                code: n.unit.code.clone(),
            };
            entries.push((key, entry));
        }
        entries
    }

    /// Writes entries to `journals/` in the pack layout, one file per module; returns them.
    fn write_journals(
        dir: &std::path::Path,
        config: ConfigId,
        entries: &[(UnitKey, UnitEntry)],
    ) -> Vec<std::path::PathBuf> {
        let jdir = dir.join("journals");
        if std::fs::create_dir_all(&jdir).is_err() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (n, module) in distinct_modules(entries).iter().enumerate() {
            let units: Vec<(u64, UnitEntry)> = entries
                .iter()
                .filter(|(k, _)| &k.module == module)
                .map(|(k, e)| (k.offset, e.clone()))
                .collect();
            let bytes = cache_format::encode_pack(module, &config, &units);
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let path = jdir.join(format!("{}-{stamp}-{n}.journal", std::process::id()));
            // Whole or not at all: a collector must never take a journal being written for a
            // damaged one.
            if crate::cache::write_atomic(&jdir, &path, &bytes).is_ok() {
                out.push(path);
            }
        }
        out
    }

    /// Merges a journal into the index and rewrites its module's pack (`kiln cache merge`).
    pub fn merge_journal(path: &std::path::Path) -> anyhow::Result<()> {
        let dir = path
            .parent()
            .and_then(|p| p.parent())
            .ok_or_else(|| anyhow::anyhow!("{}: not in a cache's journals/", path.display()))?;
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            // Another merger took it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let name = file_name(path);
        // The journal's own header names its module and config.
        let (module, config) =
            cache_format::pack_identity(&bytes).ok_or_else(|| anyhow::anyhow!("{name}: truncated journal"))?;
        let units = cache_format::decode_pack(&bytes, &module, &config).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let entries: Vec<(UnitKey, UnitEntry)> = units
            .into_iter()
            .map(|(offset, e)| (UnitKey { module, config, offset }, e))
            .collect();
        Self::write_entries(dir, config, &entries, 3000);
        let _ = std::fs::remove_file(path);
        Ok(())
    }

    /// Adds entries to the index (waiting up to `tries` x 20 ms for another run's lock) and
    /// rewrites the packs of the modules they belong to.
    fn write_entries(dir: &std::path::Path, config: ConfigId, entries: &[(UnitKey, UnitEntry)], tries: u32) {
        if entries.is_empty() {
            return;
        }
        let mut opened = Cache::open(dir);
        for _ in 0..tries {
            if opened.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            opened = Cache::open(dir);
        }
        match opened {
            Ok(cache) => {
                // Straight into the packs (the index's lock serialises writers); the index
                // keeps only what could not be packed.
                for module in distinct_modules(entries) {
                    if let Err(e) = cache.write_pack(&module, &config, entries) {
                        let mine: Vec<_> = entries.iter().filter(|(k, _)| k.module == module).cloned().collect();
                        let _ = cache.store(&mine);
                        crate::klog!("cache", "cannot write the pack: {e}");
                    }
                }
                let max = crate::cache::gc::max_bytes();
                if crate::cache::gc::disk_usage(dir) > max {
                    let r = crate::cache::gc::collect(&cache, max);
                    crate::klog!("cache", "over the cap: collected {r:?}");
                }
            }
            Err(e) => crate::klog!("cache", "cannot open the cache to write: {e}"),
        }
    }
}

/// The modules the entries belong to, each once.
fn distinct_modules(entries: &[(UnitKey, UnitEntry)]) -> Vec<Hash> {
    let mut v: Vec<Hash> = entries.iter().map(|(k, _)| k.module).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// An empty chaining table. Zeroed memory costs nothing until touched; an entry matches when
/// its rip equals the exit's rip, and rip 0 (the only one a zero entry could match) lives in
/// slot 0, which is marked with an impossible rip instead.
fn new_chain_table() -> Box<[[u64; 2]]> {
    let mut t = vec![[0u64; 2]; crate::cpu::CHAIN_ENTRIES as usize].into_boxed_slice();
    t[crate::cpu::chain_slot(0) as usize] = [u64::MAX, 0];
    t
}

/// The guest CPUID leaves that make up the profile (part of the config id).
fn cpuid_profile() -> Vec<[u32; 4]> {
    [0u32, 1, 2, 7, 0x8000_0000, 0x8000_0001]
        .iter()
        .map(|&l| semantics::slow::cpuid(l, 0))
        .collect()
}

/// The last component of a path as text ("" if it has none).
fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
