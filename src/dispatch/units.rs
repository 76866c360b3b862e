//! The unit table of one guest thread: for each guest rip the unit that runs it (a decoded
//! block for the baseline tier and, once compiled or found in the cache, its host code), and
//! the chaining table through which compiled units jump straight to the next one.

use super::{Engine, Tier};
use crate::decode::{decode_block, Block};
use crate::jit::UnitFn;
use crate::mem::AddrMap;
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
pub(super) struct CachedUnit {
    pub code: UnitFn,
    pub guest_len: u64,
    pub ninsns: u64,
    pub guest_hash: Hash,
}

pub(super) struct Units {
    pub list: Vec<Unit>,
    index: AddrMap<usize>,
    /// Units from the cache, by guest rip, not yet checked against the guest's bytes.
    pub cached: AddrMap<CachedUnit>,
    /// Chaining table shared with compiled code (`cpu.chain_table` points at it).
    chain: Box<[[u64; 2]]>,
}

impl Default for Units {
    fn default() -> Self {
        Units {
            list: Vec::new(),
            index: AddrMap::default(),
            cached: AddrMap::default(),
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

    /// Forgets the unit at `rip` and its chaining slot: the next execution there decodes
    /// (or faults) afresh. The list entry stays, emptied, so indices held elsewhere (pending
    /// compiles) stay valid; a compile finishing for it installs nothing.
    pub fn forget(&mut self, rip: u64) {
        if let Some(i) = self.index.remove(&rip) {
            self.list[i].block = None;
            self.list[i].code = None;
        }
        let slot = &mut self.chain[crate::cpu::chain_slot(rip) as usize];
        if slot[0] == rip {
            *slot = [u64::MAX, 0];
        }
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
    /// Finds or creates the unit for `rip`: a known one, a cached translation whose guest
    /// bytes still match, or a freshly decoded block (compiled at once under `--tier jit`).
    pub(super) fn unit_for(&mut self, rip: u64) -> usize {
        if let Some(&i) = self.units.index.get(&rip) {
            return i;
        }
        if let Some(c) = self.units.cached.remove(&rip) {
            if let Some(i) = self.use_cached(rip, c) {
                return i;
            }
            self.stats.cache_rejected += 1;
        } else if self.cache.is_some() {
            if self.module_of(rip, 1).is_none() {
                self.discover_module(rip);
                if self.units.cached.contains_key(&rip) {
                    return self.unit_for(rip);
                }
            }
            self.stats.cache_misses += 1;
        }
        self.decode_unit(rip)
    }

    /// The unit for a cached translation, if its guest bytes match the ones it came from.
    fn use_cached(&mut self, rip: u64, c: CachedUnit) -> Option<usize> {
        let bytes = self.guest_bytes(rip, c.guest_len)?;
        if blake3::hash(bytes).as_bytes() != &c.guest_hash {
            return None;
        }
        self.stats.cache_hits += 1;
        self.modules.count_hit(self.module_of(rip, c.guest_len));
        self.units.chain_insert(rip, c.code);
        let unit = Unit {
            block: None,
            code: Some(c.code),
            ninsns: c.ninsns,
            count: 0,
            queued: true,
        };
        Some(self.units.add(rip, unit))
    }

    /// Drops the units whose guest code is no longer executable (mprotect, munmap or mmap
    /// took it away), with their chaining slots.
    pub(super) fn drop_unexecutable(&mut self) {
        let mem = &self.proc.mem;
        let gone: Vec<u64> = (self.units.index.iter())
            .filter(|(&rip, &i)| {
                let len = self.units.list[i].block.as_ref().map_or(1, |b| b.len.max(1));
                mem.executable_len(rip, len) != len
            })
            .map(|(&rip, _)| rip)
            .collect();
        for rip in gone {
            self.units.forget(rip);
        }
    }

    /// Decodes the block at `rip` into a new unit, from executable guest memory only.
    fn decode_unit(&mut self, rip: u64) -> usize {
        let len = self.proc.mem.executable_len(rip, 4096);
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
        if self.shared.tier == Tier::Jit && ninsns > 0 && self.shared.jit.is_some() {
            unit.code = self.compile_now(&block);
            unit.queued = true;
        }
        self.units.add(rip, unit)
    }

    /// Compiles a block on this thread and installs it (`--tier jit`).
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
        match self.compiles.arena.install(&[&cu.code]) {
            Ok(f) => {
                let f = *f.first()?;
                self.units.chain_insert(block.start, f);
                Some(f)
            }
            Err(e) => {
                crate::klog!("jit", "{e}");
                None
            }
        }
    }

    /// The guest's code at [rip, rip+len), if all of it is executable.
    pub(super) fn guest_bytes(&self, rip: u64, len: u64) -> Option<&[u8]> {
        if len == 0 || self.proc.mem.executable_len(rip, len) != len {
            return None;
        }
        self.proc.mem.read_bytes(rip, len as usize)
    }
}
