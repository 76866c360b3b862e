//! The unit table of one guest thread: for each guest rip the unit that runs it (a decoded
//! block for the baseline tier and, once compiled or found in the cache, its host code), and
//! the chaining table through which compiled units jump straight to the next one.

use super::compile::NewUnit;
use super::registry::Cached;
use super::{Engine, Tier};
use crate::decode::{decode_block, Block};
use crate::jit::UnitFn;
use crate::mem::{AddrMap, GUEST_MASK};
use crate::semantics;
use cache_format::Hash;
use std::sync::Arc;
use std::time::Instant;

pub(super) struct Unit {
    pub block: Option<Arc<Block>>,
    pub code: Option<UnitFn>,
    pub ninsns: u64,
    /// Executions in the baseline tier.
    pub count: u32,
    /// Compiled, being compiled, or never to be compiled again.
    pub queued: bool,
}

/// A unit found in the cache, used once its guest bytes are verified.
#[derive(Clone, Copy)]
pub(super) struct CachedUnit {
    pub code: UnitFn,
    pub guest_len: u64,
    pub ninsns: u64,
    pub guest_hash: Hash,
}

pub(super) struct Units {
    pub list: Vec<Unit>,
    pub index: AddrMap<usize>,
    /// Chaining table shared with compiled code (`cpu.chain_table` points at it).
    chain: Box<[[u64; 2]]>,
}

impl Default for Units {
    fn default() -> Self {
        Units {
            list: Vec::new(),
            index: AddrMap::default(),
            chain: new_chain_table(),
        }
    }
}

impl Units {
    /// The host address of the chaining table, for `Cpu::chain_table`.
    pub fn chain_table_addr(&self) -> u64 {
        self.chain.as_ptr() as u64
    }

    /// Lets compiled code jump straight to `code` when it leaves for `rip`.
    pub fn chain_insert(&mut self, rip: u64, code: UnitFn) {
        self.chain[crate::cpu::chain_slot(rip) as usize] = [rip, code.addr()];
    }

    fn add(&mut self, rip: u64, u: Unit) -> usize {
        let i = self.list.len();
        self.list.push(u);
        self.index.insert(rip, i);
        i
    }
}

/// An empty chaining table. Zeroed memory costs nothing until touched; an entry matches when
/// its rip equals the exit's rip, and rip 0 (the only one a zero entry could match) lives in
/// slot 0, which is marked with an impossible rip instead.
fn new_chain_table() -> Box<[[u64; 2]]> {
    let mut t = vec![[0u64; 2]; crate::cpu::CHAIN_ENTRIES as usize].into_boxed_slice();
    t[crate::cpu::chain_slot(0) as usize] = [u64::MAX, 0];
    t
}

impl Engine {
    /// Finds or creates the unit for `rip`: a known one, one another thread compiled, a cached
    /// translation whose guest bytes still match, or a freshly decoded block (compiled at once
    /// under `--tier jit`).
    pub(super) fn unit_for(&mut self, rip: u64) -> usize {
        if let Some(&i) = self.units.index.get(&rip) {
            return i;
        }
        if let Some(i) = self.unit_compiled_elsewhere(rip) {
            return i;
        }
        let cached = self.shared.registry.lock().cached.get(&rip).copied();
        if let Some(c) = cached {
            if let Some(i) = self.use_cached(rip, c) {
                return i;
            }
            self.stats.cache_rejected += 1;
        } else if self.cache.is_some() {
            if self.module_of(rip, 1).is_none() {
                self.discover_module(rip);
                if self.shared.registry.lock().cached.contains_key(&rip) {
                    return self.unit_for(rip);
                }
            }
            self.stats.cache_misses += 1;
        }
        self.decode_unit(rip)
    }

    /// The unit for a cached translation, if its guest bytes match the ones it came from (the
    /// first thread to meet it checks; a mismatch drops it for every thread).
    fn use_cached(&mut self, rip: u64, c: Cached) -> Option<usize> {
        if !c.verified {
            let matches = self
                .guest_bytes(rip, c.unit.guest_len)
                .is_some_and(|b| blake3::hash(b).as_bytes() == &c.unit.guest_hash);
            let mut registry = self.shared.registry.lock();
            if !matches {
                registry.cached.remove(&rip);
                return None;
            }
            if let Some(e) = registry.cached.get_mut(&rip) {
                e.verified = true;
            }
        }
        self.stats.cache_hits += 1;
        let module = self.module_of(rip, c.unit.guest_len);
        self.shared.registry.lock().modules.count_hit(module);
        Some(self.add_compiled(rip, c.unit.code, c.unit.ninsns))
    }

    /// The unit for a block another thread of this process compiled: this thread's own copy of
    /// the code.
    fn unit_compiled_elsewhere(&mut self, rip: u64) -> Option<usize> {
        let n = self.shared.registry.compiled(rip)?;
        let f = self.install_copies(&[&n.unit.code])?.into_iter().next()?;
        Some(self.add_compiled(rip, f, n.unit.ninsns as u64))
    }

    /// Installs copies of compiled code in this thread's arena.
    pub(super) fn install_copies(&mut self, codes: &[&[u8]]) -> Option<Vec<UnitFn>> {
        match self.compiles.arena.install(codes) {
            Ok(f) => Some(f),
            Err(e) => {
                crate::klog!("jit", "{e}");
                None
            }
        }
    }

    /// A new unit that runs as compiled code.
    fn add_compiled(&mut self, rip: u64, code: UnitFn, ninsns: u64) -> usize {
        self.units.chain_insert(rip, code);
        let unit = Unit {
            block: None,
            code: Some(code),
            ninsns,
            count: 0,
            queued: true,
        };
        self.units.add(rip, unit)
    }

    /// Decodes the block at `rip` into a new unit.
    fn decode_unit(&mut self, rip: u64) -> usize {
        let len = self.proc.mem.readable_len(rip, 4096);
        let code = self.proc.mem.read_bytes(rip, len as usize).unwrap_or(&[]);
        let block = decode_block(code, rip, semantics::classify);
        crate::klog!("decode", "decoding the block at {rip:#x}");
        self.stats.blocks_decoded += 1;
        let ninsns = block.insns.len() as u64;
        let block = Arc::new(block);
        self.shared.registry.lock().blocks.insert(rip, block.clone());
        let mut unit = Unit {
            block: Some(block.clone()),
            code: None,
            ninsns,
            count: 0,
            queued: false,
        };
        if self.shared.tier == Tier::Jit && ninsns > 0 && self.shared.jit.is_some() {
            unit.code = self.compile_now(&block);
            unit.queued = true;
        }
        self.units.add(rip, unit)
    }

    /// Compiles a block on this thread and installs it (`--tier jit`); other threads take it
    /// from the registry.
    fn compile_now(&mut self, block: &Block) -> Option<UnitFn> {
        let jit = self.shared.jit.as_ref()?;
        let t = Instant::now();
        let cu = match jit.compile(block) {
            Ok(cu) => cu,
            Err(e) => {
                crate::klog!("jit", "{e}; the block runs in the baseline tier");
                return None;
            }
        };
        self.stats.compile_us += t.elapsed().as_micros() as u64;
        self.stats.units_compiled += 1;
        let f = *self.install_copies(&[&cu.code])?.first()?;
        self.units.chain_insert(block.start, f);
        self.shared.registry.publish(vec![NewUnit {
            rip: block.start,
            guest_len: block.len,
            unit: cu,
        }]);
        Some(f)
    }

    /// The guest's bytes at [rip, rip+len), if all of them are readable.
    pub(super) fn guest_bytes(&self, rip: u64, len: u64) -> Option<&[u8]> {
        if len == 0 || self.proc.mem.readable_len(rip, len) != len {
            return None;
        }
        self.proc.mem.read_bytes(rip & GUEST_MASK, len as usize)
    }
}
