//! The unit table of one guest thread: for each guest rip the unit that runs it (a decoded
//! block for the baseline tier and, once compiled or found in the cache, its host code), and
//! the chaining table through which compiled units jump straight to the next one.

use super::cached::Cached;
use super::compile::NewUnit;
use super::modules::module_in;
use super::registry::Found;
use super::{Engine, Tier};
use crate::decode::{decode_block, Block, Limits, Region};
use crate::jit::{Placement, UnitFn};
use crate::mem::watch::Watch;
use crate::mem::AddrMap;
use crate::semantics;
use crate::stats::Miss;
use cache_format::Hash;
use std::sync::Arc;
use std::time::Instant;

/// How large a region `--tier jit` compiles at a block's first execution: small, since it
/// compiles before anything runs and every block heads one.
const JIT_TIER_REGIONS: Limits = Limits {
    blocks: 8,
    span: 4096,
    returns: true,
    inline: 0,
};

pub(super) struct Unit {
    pub rip: u64,
    /// Guest bytes covered, from `rip`.
    pub guest_len: u64,
    pub block: Option<Arc<Block>>,
    pub code: Option<UnitFn>,
    pub ninsns: u64,
    /// Executions in the baseline tier.
    pub count: u32,
    /// Compiled, being compiled, or never to be compiled again.
    pub queued: bool,
    /// Dropped because its guest bytes changed: nothing leads to it any more.
    pub dead: bool,
    /// For a unit on a volatile page (`mem::watch`): the guest bytes it was made from,
    /// compared at each entry (such units are never chained).
    pub check: Option<Box<[u8]>>,
    /// Guest bytes it translates beyond [rip, rip+guest_len): (start, length) of each range
    /// (the callees a region inlines).
    pub outer: Vec<(u64, u64)>,
}

impl Unit {
    fn new(rip: u64, guest_len: u64, ninsns: u64) -> Unit {
        Unit {
            rip,
            guest_len,
            block: None,
            code: None,
            ninsns,
            count: 0,
            queued: false,
            dead: false,
            check: None,
            outer: Vec::new(),
        }
    }

    /// Every range of guest bytes it translates: [rip, rip+guest_len) first.
    fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        std::iter::once((self.rip, self.guest_len)).chain(self.outer.iter().copied())
    }
}

/// A unit found in the cache, used once its guest bytes are verified.
#[derive(Clone, Copy)]
pub(super) struct CachedUnit {
    pub code: UnitFn,
    pub guest_len: u64,
    pub ninsns: u64,
    /// Of its guest bytes: [rip, rip+guest_len), then its outer ranges'.
    pub guest_hash: Hash,
    pub outer: cache_format::OuterRanges<'static>,
    /// Where its module lies (its outer ranges are module offsets).
    pub load_bias: u64,
}

impl CachedUnit {
    /// Its outer ranges as guest (start, length); None if one is damaged.
    fn outer_ranges(&self) -> Option<Vec<(u64, u64)>> {
        (self.outer.iter())
            .map(|r| r.map(|r| (r.offset.0.wrapping_add(self.load_bias), u64::from(r.len))))
            .collect()
    }
}

pub(super) struct Units {
    pub list: Vec<Unit>,
    pub index: AddrMap<usize>,
    /// Units by guest page (a unit is listed under each page it covers).
    pub by_page: AddrMap<Vec<usize>>,
    /// Chaining table shared with compiled code (`cpu.chain_table` points at it).
    chain: ChainTable,
    /// How far this thread has read the code change log (`mem::watch::changes_since`).
    pub log_cursor: u64,
    /// The prefills applied to the chaining table (`prefill.rs`), and how many of the
    /// registry's this thread has looked at.
    pub prefilled: Vec<Arc<super::prefill::Prefill>>,
    pub prefills_seen: usize,
}

impl Default for Units {
    fn default() -> Self {
        Units {
            list: Vec::new(),
            index: AddrMap::default(),
            by_page: AddrMap::default(),
            chain: ChainTable::new(false),
            log_cursor: crate::mem::watch::epoch(),
            prefilled: Vec::new(),
            prefills_seen: 0,
        }
    }
}

impl Units {
    /// The host address of the chaining table, for `Cpu::chain_table`.
    pub fn chain_table_addr(&self) -> u64 {
        self.chain.map.as_ptr() as u64
    }

    /// Lets compiled code jump straight to unit `i`'s `code` when it leaves for its rip
    /// (unless the unit must check its bytes at entry, which only the dispatcher does).
    pub fn chain_unit(&mut self, i: usize, code: UnitFn) {
        let u = &self.list[i];
        if u.check.is_none() && !u.dead {
            self.chain_rip(u.rip, code);
        }
    }

    /// Moves the chaining table into huge pages, with the entries it holds: a table already
    /// touched in small pages (its first entry is written when it is made) stays in them, so a
    /// new one replaces it. Returns its address, for `Cpu::chain_table` (compiled code reads
    /// it from there at each lookup, and none runs while the dispatcher does this).
    pub fn chain_in_huge_pages(&mut self) -> u64 {
        if self.chain.huge {
            return self.chain_table_addr();
        }
        let mut fresh = ChainTable::new(true);
        let (page, touched) = self.chain.map.touched();
        let per_page = (page / std::mem::size_of::<[u64; 2]>()).max(1);
        let (old, new) = (self.chain.slots(), fresh.slots_mut());
        // Only the touched pages are read: reading the others would map them.
        for (n, _) in touched.iter().enumerate().filter(|(_, &t)| t) {
            let slots = n * per_page..((n + 1) * per_page).min(old.len());
            new[slots.clone()].copy_from_slice(&old[slots]);
        }
        self.chain = fresh;
        self.chain_table_addr()
    }

    /// Lets compiled code jump straight to `code` when it leaves for `rip`.
    pub fn chain_rip(&mut self, rip: u64, code: UnitFn) {
        self.chain.slots_mut()[crate::cpu::chain_slot(rip) as usize] = [rip, code.addr()];
    }

    /// Undoes `chain_rip` (if the slot still holds it).
    pub fn unchain_rip(&mut self, rip: u64, code: UnitFn) {
        let slot = &mut self.chain.slots_mut()[crate::cpu::chain_slot(rip) as usize];
        if *slot == [rip, code.addr()] {
            *slot = [u64::MAX, 0];
        }
    }

    fn add(&mut self, u: Unit) -> usize {
        let i = self.list.len();
        self.index.insert(u.rip, i);
        for (start, len) in u.ranges() {
            for page in crate::mem::page_numbers(start, len.max(1)) {
                self.by_page.entry(page).or_default().push(i);
            }
        }
        self.list.push(u);
        i
    }

    /// Drops unit `i`: no rip and no chaining slot leads to it any more.
    pub fn drop_unit(&mut self, i: usize) {
        let u = &mut self.list[i];
        if u.dead {
            return;
        }
        u.dead = true;
        u.queued = true;
        u.block = None;
        let rip = u.rip;
        if let Some(code) = u.code.take() {
            self.unchain_rip(rip, code);
        }
        if self.index.get(&rip) == Some(&i) {
            self.index.remove(&rip);
        }
    }
}

/// A chaining table: `CHAIN_ENTRIES` pairs (guest rip, unit entry), in a mapping of its own
/// aligned so that huge pages can back all of it (`mem::HugeAligned`).
struct ChainTable {
    map: crate::mem::HugeAligned,
    /// Whether it is in huge pages.
    huge: bool,
}

impl ChainTable {
    /// An empty table, in huge pages where `huge`. Zeroed memory
    /// costs nothing until touched; an entry matches when its rip equals the exit's rip, and
    /// rip 0 (the only one a zero entry could match) lives in slot 0, which is marked with an
    /// impossible rip instead.
    fn new(huge: bool) -> ChainTable {
        let len = crate::cpu::CHAIN_ENTRIES as usize * std::mem::size_of::<[u64; 2]>();
        let map = crate::mem::HugeAligned::zeroed(len, huge);
        let mut t = ChainTable { map, huge };
        t.slots_mut()[crate::cpu::chain_slot(0) as usize] = [u64::MAX, 0];
        t
    }

    fn slots(&self) -> &[[u64; 2]] {
        // SAFETY: the mapping holds `CHAIN_ENTRIES` pairs of u64 (`new`), aligned to a huge
        // page, zeroed or written as pairs since, and owned by this table.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr() as *const [u64; 2], crate::cpu::CHAIN_ENTRIES as usize) }
    }

    fn slots_mut(&mut self) -> &mut [[u64; 2]] {
        // SAFETY: as in `slots`, borrowed mutably through the table.
        unsafe {
            std::slice::from_raw_parts_mut(self.map.as_ptr() as *mut [u64; 2], crate::cpu::CHAIN_ENTRIES as usize)
        }
    }
}

impl Engine {
    /// Finds or creates the unit for `rip`: a known one, one another thread compiled, a cached
    /// translation whose guest bytes still match, or a freshly decoded block (compiled at once
    /// under `--tier jit`).
    pub(super) fn unit_for(&mut self, rip: u64) -> usize {
        if let Some(&i) = self.units.index.get(&rip) {
            return i;
        }
        let found = self.shared.registry.find(rip);
        if let Found::Compiled(n) = &found {
            if let Some(i) = self.unit_compiled_elsewhere(rip, n) {
                return i;
            }
        }
        if let Found::Cached(c) = found {
            if let Some(i) = self.use_cached(rip, c) {
                return i;
            }
            self.stats.count_miss(Miss::BytesChanged);
        } else if self.cache.is_some() {
            if self.module_of(rip, 1).is_none() {
                self.discover_module(rip);
                if self.shared.registry.lock().cached.contains(rip) {
                    return self.unit_for(rip);
                }
            }
            let why = match self.module_of(rip, 1) {
                Some(_) => Miss::NotInCache,
                None => Miss::Unidentified,
            };
            crate::klog!("cache", "miss at {rip:#x}: {why:?}");
            self.stats.count_miss(why);
        }
        self.decode_unit(rip)
    }

    /// The unit for a cached translation, if its guest bytes match the ones it came from (the
    /// first thread to meet it checks, again whenever guest code changed since; a mismatch
    /// drops it for every thread). A unit with outer ranges (inlined callees) is not used on
    /// pages whose code is checked at each entry.
    fn use_cached(&mut self, rip: u64, c: Cached) -> Option<usize> {
        let outer = c.unit.outer_ranges();
        let ranges: Vec<(u64, u64)> = std::iter::once((rip, c.unit.guest_len))
            .chain(outer.iter().flatten().copied())
            .collect();
        let watches: Vec<Watch> = ranges.iter().map(|&(at, len)| self.watch_code(at, len)).collect();
        let watch = watches[0];
        let volatile = watches.contains(&Watch::Volatile);
        let epoch = crate::mem::watch::epoch();
        // Pages holding the module file's bytes unchanged need no check: units are kept only
        // for the module's own code (`persist`), unless its pages changed since it was found.
        let unchanged = ranges
            .iter()
            .all(|&(at, len)| self.unchanged_module_code(at, len) && self.proc.mem.executable_len(at, len) == len);
        let check = (c.verified_at != Some(epoch) && !unchanged) || volatile;
        let usable = outer.as_ref().is_some_and(|o| o.is_empty() || !volatile);
        let matches = usable && (!check || self.ranges_hash_to(&ranges, &c.unit.guest_hash));
        {
            let mut registry = self.shared.registry.lock();
            if !matches {
                registry.cached.remove(rip);
                return None;
            }
            registry.cached.set_verified(rip, epoch);
            let module = module_in(self.shared.module, &registry.modules, rip, c.unit.guest_len);
            registry.modules.count_hit(module);
        }
        self.stats.cache_hits += 1;
        let mut unit = Unit::new(rip, c.unit.guest_len, c.unit.ninsns);
        unit.queued = true;
        unit.outer = outer.unwrap_or_default();
        Some(self.add_compiled(unit, c.unit.code, watch))
    }

    /// The unit for a block another thread of this process compiled (if the guest bytes are
    /// still those it was compiled from): this thread's own copy of the code.
    fn unit_compiled_elsewhere(&mut self, rip: u64, n: &NewUnit) -> Option<usize> {
        let watch = self.watch_code(rip, n.guest_len);
        if !self.bytes_hash_to(rip, n.guest_len, &n.guest_hash) {
            return None;
        }
        let f = self.install_copies(&[&n.unit.code])?.into_iter().next()?;
        let mut unit = Unit::new(rip, n.guest_len, n.unit.ninsns as u64);
        unit.queued = true;
        Some(self.add_compiled(unit, f, watch))
    }

    /// Whether the guest bytes at [rip, rip+len) hash to `hash`.
    pub(super) fn bytes_hash_to(&self, rip: u64, len: u64, hash: &Hash) -> bool {
        self.ranges_hash_to(&[(rip, len)], hash)
    }

    /// Whether the guest bytes of `ranges` (start, length), one after another, hash to `hash`.
    fn ranges_hash_to(&self, ranges: &[(u64, u64)], hash: &Hash) -> bool {
        let mut h = blake3::Hasher::new();
        for &(at, len) in ranges {
            match self.guest_bytes(at, len) {
                Some(b) => h.update(b),
                None => return false,
            };
        }
        h.finalize().as_bytes() == hash
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

    /// Adds a unit that runs as compiled code.
    fn add_compiled(&mut self, mut unit: Unit, code: UnitFn, watch: Watch) -> usize {
        if watch == Watch::Volatile {
            unit.check = self.guest_bytes(unit.rip, unit.guest_len).map(Box::from);
            self.stats.volatile_units += 1;
        }
        unit.code = Some(code);
        let i = self.units.add(unit);
        self.units.chain_unit(i, code);
        i
    }

    /// Declares [rip, rip+len) translated (`mem::watch`): how its pages are watched.
    fn watch_code(&self, rip: u64, len: u64) -> Watch {
        self.proc.mem.watch_code(rip, len).0
    }

    /// Decodes the block at `rip` into a new unit, from executable guest memory only. The bytes
    /// are decoded from a copy, and
    /// compared with the guest's after their pages are watched: a write that came in between
    /// means decoding again.
    fn decode_unit(&mut self, rip: u64) -> usize {
        let len = self.proc.mem.executable_len(rip, 4096);
        let mut block;
        let mut watch;
        let mut tries = 0;
        loop {
            let code = self.proc.mem.read_bytes(rip, len as usize).unwrap_or(&[]).to_vec();
            block = decode_block(&code, rip, semantics::classify);
            crate::klog!("decode", "decoding the block at {rip:#x}");
            self.stats.blocks_decoded += 1;
            let newly;
            (watch, newly) = self.proc.mem.watch_code(rip, block.len);
            tries += 1;
            let unchanged = !newly || self.guest_bytes(rip, block.len).is_none_or(|b| b == &block.bytes[..]);
            if unchanged || tries == 3 {
                if !unchanged {
                    watch = Watch::Volatile;
                }
                break;
            }
        }
        let ninsns = block.insns.len() as u64;
        let block = Arc::new(block);
        self.shared.registry.lock().blocks.insert(rip, block.clone());
        let jit_now = self.shared.tier == Tier::Jit && ninsns > 0 && self.shared.jit.is_some();
        // Under `--tier jit` the unit is the region the block heads (the same bytes when the
        // region could not be formed), and covers its whole span.
        let region = jit_now.then(|| self.region_at(&block, watch));
        let bytes = region.as_ref().map_or(&block.bytes, |(_, b)| b).clone();
        let mut unit = Unit::new(rip, bytes.len() as u64, ninsns);
        unit.block = Some(block.clone());
        if watch == Watch::Volatile {
            unit.check = Some(bytes.clone().into_boxed_slice());
            self.stats.volatile_units += 1;
        }
        let i = self.units.add(unit);
        if let Some((region, _)) = region {
            let code = self.compile_now(&region, bytes);
            let u = &mut self.units.list[i];
            u.code = code;
            u.queued = true;
            if let Some(f) = code {
                self.units.chain_unit(i, f);
            }
        }
        i
    }

    /// The region `block` heads under `--tier jit` (formed from the code as it is: every
    /// block reachable through static edges, within this executable mapping), with the guest
    /// bytes it spans once they are watched. A region whose bytes changed while it was
    /// formed, or on a page whose code is checked at entry, is the block alone.
    fn region_at(&self, block: &Block, watch: Watch) -> (Region, Vec<u8>) {
        let single = || (Region::single(block.clone()), block.bytes.clone());
        if watch == Watch::Volatile {
            return single();
        }
        let head = block.start;
        let span = self.proc.mem.executable_len(head, JIT_TIER_REGIONS.span);
        let limits = Limits {
            span,
            ..JIT_TIER_REGIONS
        };
        let fetch = |at: u64| {
            if at == head {
                return Some(block.clone());
            }
            let len = self.proc.mem.executable_len(at, 4096);
            let code = self.proc.mem.read_bytes(at, len as usize)?;
            Some(decode_block(code, at, semantics::classify))
        };
        // Code outside the region may change without it: its flags are taken as read.
        let Some(region) = Region::form(head, limits, fetch, |_| true, |_, _| None) else {
            return single();
        };
        let len = region.end() - head;
        crate::klog!(
            "jit",
            "region at {head:#x}: {} blocks, {len} bytes",
            region.blocks.len()
        );
        let (w, _) = self.proc.mem.watch_code(head, len);
        let unchanged = region
            .blocks
            .iter()
            .all(|b| self.guest_bytes(b.start, b.len) == Some(&b.bytes[..]));
        match self.guest_bytes(head, len) {
            Some(bytes) if w == Watch::Watched && unchanged => (region, bytes.to_vec()),
            _ => single(),
        }
    }

    /// Compiles a region on this thread and installs it (`--tier jit`); other threads take it
    /// from the registry.
    fn compile_now(&mut self, region: &Region, bytes: Vec<u8>) -> Option<UnitFn> {
        let jit = self.shared.jit.as_ref()?;
        let t = Instant::now();
        // For this process only, where the code lies where it was decoded.
        let cu = match jit.compile_region(region, Placement::Fixed) {
            Ok(cu) => cu,
            Err(e) => {
                crate::klog!("jit", "{e}; the block runs in the baseline tier");
                return None;
            }
        };
        self.stats.compile_us += t.elapsed().as_micros() as u64;
        self.stats.units_compiled += 1;
        let f = *self.install_copies(&[&cu.code])?.first()?;
        self.shared
            .registry
            .publish(vec![NewUnit::of_bytes(region.head(), &bytes, cu)]);
        Some(f)
    }

    /// Drops this thread's units on pages whose code changed since it last looked (all of
    /// them if it fell behind the change log).
    pub(super) fn drop_changed_code(&mut self) {
        use crate::mem::watch;
        let (pages, next) = match watch::changes_since(self.units.log_cursor) {
            Some(c) => c,
            None => {
                self.revoke_prefills(None);
                let all: Vec<u64> = self.units.by_page.keys().copied().collect();
                (all, watch::epoch())
            }
        };
        self.units.log_cursor = next;
        for &page in &pages {
            self.revoke_prefills(Some(page));
        }
        self.shared
            .registry
            .lock()
            .modules
            .untrust_pages(self.shared.module, &pages);
        for page in pages {
            for i in self.units.by_page.remove(&page).unwrap_or_default() {
                if !self.units.list[i].dead {
                    self.units.drop_unit(i);
                    self.stats.units_invalidated += 1;
                }
            }
        }
    }

    /// Whether a unit that checks its bytes at entry may run: its guest bytes are unchanged.
    pub(super) fn still_matches(&self, i: usize) -> bool {
        let u = &self.units.list[i];
        match &u.check {
            None => true,
            Some(bytes) => self.guest_bytes(u.rip, u.guest_len) == Some(&bytes[..]),
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
