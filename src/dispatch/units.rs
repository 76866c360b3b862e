//! The unit table of one guest thread: for each guest rip the unit that runs it (a decoded
//! block for the baseline tier and, once compiled or found in the cache, its host code), and
//! the chaining table through which compiled units jump straight to the next one.

use super::cached::Cached;
use super::compile::NewUnit;
use super::modules::module_in;
use super::registry::Found;
use super::{Engine, Tier};
use crate::decode::{decode_block, Block, Limits, Region};
use crate::interp::Program;
use crate::jit::{Placement, UnitFn};
use crate::mem::watch::Watch;
use crate::mem::AddrMap;
use crate::semantics;
use crate::stats::Miss;
use cache_format::Hash;
use std::sync::Arc;
use std::time::Instant;

/// Slots of `Units::recent`.
const RECENT_SLOTS: usize = 4096;

/// The guest bytes copied to decode a block from, first (`decode_copy`).
const DECODE_COPY: u64 = 256;

/// The longest x86 instruction, in bytes.
const MAX_INSN_LEN: u64 = 15;

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
    /// The block in the baseline tier's form, made at its first run there.
    program: Option<Arc<Program>>,
    pub code: Option<UnitFn>,
    pub ninsns: u64,
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
    /// Its block in the baseline tier's form, made at its first run there (None without a
    /// block, or for an empty one).
    fn program(&mut self, hot_after: u32) -> Option<&Arc<Program>> {
        if self.program.is_none() {
            let block = self.block.as_ref().filter(|b| !b.insns.is_empty())?;
            self.program = Some(Program::new(block.clone()));
            self.open_program(hot_after);
        }
        self.program.as_ref()
    }

    /// Executions in the baseline tier.
    pub fn count(&self) -> u32 {
        self.program.as_ref().map_or(0, |p| p.count())
    }

    /// Lets the baseline tier run on to its program while the unit has neither code nor a
    /// check at each entry, up to `hot_after` executions unless it is queued already: the
    /// next one is the dispatcher's, which compiles it (`Units::hot_after`).
    pub fn open_program(&self, hot_after: u32) {
        let Some(p) = &self.program else { return };
        p.open_until(match (self.code, &self.check, self.dead, self.queued) {
            (None, None, false, false) => hot_after,
            (None, None, false, true) => u32::MAX,
            _ => 0,
        });
    }

    fn new(rip: u64, guest_len: u64, ninsns: u64) -> Unit {
        Unit {
            rip,
            guest_len,
            block: None,
            program: None,
            code: None,
            ninsns,
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
    /// The units of rips looked up lately (`find`), direct-mapped, each a rip and its unit's
    /// index plus one (zero: an empty slot, so that the table starts as untouched zeroed
    /// pages): a cold run's mixed code leaves compiled code for the baseline tier and back
    /// tens of millions of times, and the index of a large program's units misses the caches
    /// at each.
    recent: Box<[[u64; 2]]>,
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
    /// Counts the units dropped: a program remembers the programs after it together with the
    /// generation it saw them in (`interp::Program::successor`), and a dropped unit's program
    /// is freed.
    pub generation: u64,
    /// Executions in the baseline tier after which the dispatcher sees a unit that is not
    /// queued yet, to compile it (`u32::MAX` when this thread's tier compiles nothing hot).
    pub hot_after: u32,
    /// The baseline tier's shim, which compiled code goes on into for an interpreted block
    /// (`chain_baseline`), where there is one.
    pub shim: Option<UnitFn>,
}

impl Units {
    /// Empty tables; `hot_after` as the field says.
    pub fn new(hot_after: u32) -> Units {
        Units {
            list: Vec::new(),
            index: AddrMap::default(),
            recent: vec![[0; 2]; RECENT_SLOTS].into_boxed_slice(),
            by_page: AddrMap::default(),
            chain: ChainTable::new(crate::cpu::CHAIN_MIN_BITS),
            log_cursor: crate::mem::watch::epoch(),
            prefilled: Vec::new(),
            prefills_seen: 0,
            generation: 0,
            hot_after,
            shim: None,
        }
    }
}

impl Units {
    /// The host address of the chaining table, for `Cpu::chain_table`.
    pub fn chain_table_addr(&self) -> u64 {
        self.chain.map.as_ptr() as u64
    }

    /// The chaining table's size as compiled code takes it, for `Cpu::chain_mask`.
    pub fn chain_mask(&self) -> u64 {
        crate::cpu::chain_mask(self.chain.bits)
    }

    /// Lets compiled code jump straight to unit `i`'s `code` when it leaves for its rip
    /// (unless the unit must check its bytes at entry, which only the dispatcher does).
    pub fn chain_unit(&mut self, i: usize, code: UnitFn) {
        let u = &self.list[i];
        if u.check.is_none() && !u.dead {
            self.chain_rip(u.rip, code);
        }
    }

    /// Unit `i`'s block in the baseline tier's form, made at its first run there, open to be
    /// run on to as the unit says (`Unit::open_program`); None without a block, or for an
    /// empty one.
    pub fn program(&mut self, i: usize) -> Option<&Arc<Program>> {
        self.list[i].program(self.hot_after)
    }

    /// Gives unit `i` compiled `code` and chains it: its program is no longer run on to.
    pub fn set_code(&mut self, i: usize, code: UnitFn) {
        self.list[i].code = Some(code);
        self.list[i].open_program(self.hot_after);
        self.chain_unit(i, code);
    }

    /// Marks unit `i` compiled or being compiled (`queued`), or not.
    pub fn set_queued(&mut self, i: usize, queued: bool) {
        self.list[i].queued = queued;
        self.list[i].open_program(self.hot_after);
    }

    /// Grows the chaining table, with the entries it holds, to room for `more` units besides
    /// them (a prefill about to be chained), so that it is filled once at its final size.
    /// A table in small pages that the prefill will touch nearly all over (two units or more
    /// per page) has its pages made present at once (`mem::HugeAligned::populate`): a warm
    /// run of the `sh` loop took 98 page faults filling its table of 2^15 slots.
    pub fn reserve_chain(&mut self, more: usize) {
        let bits = ChainTable::bits_for(self.chain.used + more);
        if bits > self.chain.bits {
            self.chain.grow(bits);
        }
        self.chain.populate_for(more);
    }

    /// Lets compiled code jump straight to `code` when it leaves for `rip`. The table grows
    /// when it gets too full for few collisions.
    pub fn chain_rip(&mut self, rip: u64, code: UnitFn) {
        self.chain.set(rip, code.addr());
        let bits = ChainTable::bits_for(self.chain.used);
        if bits > self.chain.bits {
            // Twice what it needs, so that units chained one at a time (a cold run's) grow
            // it seldom.
            self.chain.grow((bits + 1).min(crate::cpu::CHAIN_MAX_BITS));
        }
    }

    /// Lets compiled code leaving for `rip` go on into the baseline tier's shim, which runs
    /// the block there, where the slot holds no unit's code: compiled code never loses its
    /// slot to an interpreted block.
    pub fn chain_baseline(&mut self, rip: u64) {
        let Some(shim) = self.shim else { return };
        let [r, code] = self.chain.slots()[self.chain.slot(rip)];
        if code == 0 || (code == shim.addr() && r != rip) {
            self.chain_rip(rip, shim);
        }
    }

    /// Undoes `chain_rip` (if the slot still holds it).
    pub fn unchain_rip(&mut self, rip: u64, code: UnitFn) {
        let i = self.chain.slot(rip);
        if self.chain.slots()[i] == [rip, code.addr()] {
            self.chain.clear(i);
        }
    }

    /// The unit this thread has for `rip`, if any.
    pub fn find(&mut self, rip: u64) -> Option<usize> {
        let k = recent_slot(rip);
        match self.recent[k] {
            [r, i] if r == rip && i != 0 => Some(i as usize - 1),
            _ => {
                let i = *self.index.get(&rip)?;
                self.recent[k] = [rip, i as u64 + 1];
                Some(i)
            }
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
        u.program = None;
        self.generation += 1;
        let rip = u.rip;
        for code in [u.code.take(), self.shim].into_iter().flatten() {
            self.unchain_rip(rip, code);
        }
        if self.index.get(&rip) == Some(&i) {
            self.index.remove(&rip);
        }
        let k = recent_slot(rip);
        if self.recent[k][0] == rip {
            self.recent[k] = [0; 2];
        }
    }
}

/// The slot of `rip` in `Units::recent`.
fn recent_slot(rip: u64) -> usize {
    (rip ^ rip >> 12) as usize & (RECENT_SLOTS - 1)
}

/// A chaining table: 2^`bits` pairs (guest rip, unit entry), in a mapping of its own aligned
/// so that huge pages can back all of it (`mem::HugeAligned`). It is sized to the units
/// chained into it, at most one per `SLOTS_PER_UNIT` slots: every table page a run uses costs
/// it a page fault and the zeroing of the page, and a run's prefill spreads its units over the
/// whole table (a warm static hello world 1.13 -> 0.91 ms in a table of 2^14 entries instead
/// of 2^18, the `sh` loop 2.78 -> 2.66 ms).
struct ChainTable {
    map: crate::mem::HugeAligned,
    bits: u32,
    /// Slots holding a unit, while the table may still grow (`set`).
    used: usize,
}

/// Slots a chaining table has per unit it holds, at least: of n units in 8n direct-mapped
/// slots, about one in nine shares its slot with another.
const SLOTS_PER_UNIT: usize = 8;

/// log2 of the fewest entries for which a chaining table takes huge pages (2 MiB of them):
/// a program that chains that many units (`as` 9,900, `python3 -c pass` 38,000, `cc1`
/// 87,000) touches all of it, where one or two 2 MiB pages cost less than a page fault per
/// 4 KiB page. How much a huge page costs depends on the caches: zeroing one that the last
/// process freed a moment ago writes into lines still cached, zeroing one after an idle spell
/// or another program's run (as the benchmark measures, and as a build runs tools) fetches
/// all 2 MiB. Measured after 0.3 s idle with a table of 2^18 entries (medians of 30 to 40,
/// huge pages -> small): `as` 5.68 -> 5.89 ms and `python3 -c pass` 19.2 -> 20.0 ms.
const HUGE_BITS: u32 = 17;

impl ChainTable {
    /// An empty table of 2^`bits` entries. Zeroed memory costs nothing until touched; an
    /// entry matches when its rip equals the exit's rip, and rip 0 (the only one a zero entry
    /// could match) lives in slot 0, which is marked with an impossible rip instead.
    fn new(bits: u32) -> ChainTable {
        let len = ChainTable::bytes(bits);
        let map = crate::mem::HugeAligned::zeroed(len, bits >= HUGE_BITS);
        let mut t = ChainTable { map, bits, used: 0 };
        t.slots_mut()[crate::cpu::chain_slot(0, bits) as usize] = [u64::MAX, 0];
        t
    }

    /// Bytes of a table of 2^`bits` entries.
    fn bytes(bits: u32) -> usize {
        std::mem::size_of::<[u64; 2]>() << bits
    }

    /// Before `units` are chained: a table in small pages that they will touch nearly all
    /// over (two or more per page) has its pages made present at once.
    fn populate_for(&self, units: usize) {
        let pages = ChainTable::bytes(self.bits) / crate::mem::host_page_size();
        if self.bits < HUGE_BITS && units >= 2 * pages {
            self.map.populate();
        }
    }

    /// log2 of the entries a table holding `units` needs.
    fn bits_for(units: usize) -> u32 {
        let want = (units * SLOTS_PER_UNIT).next_power_of_two().trailing_zeros();
        want.clamp(crate::cpu::CHAIN_MIN_BITS, crate::cpu::CHAIN_MAX_BITS)
    }

    /// Grows the table to 2^`bits` entries with the units it holds. One that stays in small
    /// pages grows in place (`mem::HugeAligned::grow`): a unit keeps its slot or moves to the
    /// one its rip takes in the larger table, past the old end (units apart in the old table
    /// stay apart), so the pages it touched serve on and only the new part's are touched anew
    /// (a table made afresh at each step touched them all again: the `sh` loop's prefills, a
    /// table of 2^14 slots and then one of 2^15). One that reaches huge pages is made afresh.
    fn grow(&mut self, bits: u32) {
        if bits >= HUGE_BITS {
            *self = self.grown(bits);
            return;
        }
        let held = self.touched_slots();
        self.map.grow(ChainTable::bytes(bits));
        self.bits = bits;
        for i in held.into_iter().flatten() {
            let [rip, code] = self.slots()[i];
            let j = self.slot(rip);
            if code != 0 && j != i {
                let slots = self.slots_mut();
                slots[j] = [rip, code];
                slots[i] = [u64::MAX, 0];
            }
        }
    }

    /// A table of 2^`bits` entries holding this one's units (of two that then share a slot,
    /// the later in this table's order).
    fn grown(&self, bits: u32) -> ChainTable {
        let mut t = ChainTable::new(bits);
        for i in self.touched_slots().into_iter().flatten() {
            let [rip, code] = self.slots()[i];
            if code != 0 {
                t.set(rip, code);
            }
        }
        t
    }

    /// The slots on the table's touched pages, a range a page: only those may hold a unit, and
    /// reading the others would map them.
    fn touched_slots(&self) -> Vec<std::ops::Range<usize>> {
        let (page, touched) = self.map.touched();
        let per_page = (page / std::mem::size_of::<[u64; 2]>()).max(1);
        let len = 1usize << self.bits;
        (touched.iter().enumerate())
            .filter(|(_, &t)| t)
            .map(|(n, _)| n * per_page..((n + 1) * per_page).min(len))
            .collect()
    }

    fn slot(&self, rip: u64) -> usize {
        crate::cpu::chain_slot(rip, self.bits) as usize
    }

    /// Puts the unit at `code` in `rip`'s slot. The slot is written before it is read: a read
    /// of a page not yet touched maps the shared zero page, and the write after it takes a
    /// second page fault to replace it (the `sh` loop's prefill took 232 faults on 130 table
    /// pages). A table of the largest size, which grows no further, does not count its units:
    /// reading the slot back waits for its cache line, which a prefill of `cc1`'s 161,000
    /// units into 4 MiB rarely finds cached (warm `cc1 -O2 hello.i` 0.975x and 0.985x in two
    /// series without the read, CPU 0.981x; sha256.i 1.00x).
    fn set(&mut self, rip: u64, code: u64) {
        let i = self.slot(rip);
        let largest = self.bits >= crate::cpu::CHAIN_MAX_BITS;
        let slot = &mut self.slots_mut()[i];
        if largest {
            *slot = [rip, code];
            return;
        }
        // SAFETY: both words lie in the slot, borrowed mutably; volatile keeps the write first.
        let was_empty = unsafe {
            std::ptr::write_volatile(&mut slot[0], rip);
            std::ptr::read_volatile(&slot[1]) == 0
        };
        slot[1] = code;
        self.used += was_empty as usize;
    }

    fn clear(&mut self, i: usize) {
        self.slots_mut()[i] = [u64::MAX, 0];
        self.used = self.used.saturating_sub(1);
    }

    fn slots(&self) -> &[[u64; 2]] {
        // SAFETY: the mapping holds 2^bits pairs of u64 (`new`), aligned to a huge page,
        // zeroed or written as pairs since, and owned by this table.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr() as *const [u64; 2], 1 << self.bits) }
    }

    fn slots_mut(&mut self) -> &mut [[u64; 2]] {
        // SAFETY: as in `slots`, borrowed mutably through the table.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr() as *mut [u64; 2], 1 << self.bits) }
    }
}

impl Engine {
    /// Finds or creates the unit for `rip`: a known one, one another thread compiled, a cached
    /// translation whose guest bytes still match, or a freshly decoded block (compiled at once
    /// under `--tier jit`).
    pub(super) fn unit_for(&mut self, rip: u64) -> usize {
        if let Some(i) = self.units.find(rip) {
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

    /// The block decoded from a copy of the `len` executable guest bytes at `rip`: of its
    /// first `DECODE_COPY` bytes, and of all of them only when the block may reach past those
    /// (a block is seldom longer).
    fn decode_copy(&self, rip: u64, len: u64) -> Block {
        let mut copied = len.min(DECODE_COPY);
        loop {
            let code = self.proc.mem.read_bytes(rip, copied as usize).unwrap_or(&[]).to_vec();
            let block = decode_block(&code, rip, semantics::classify);
            let whole = copied == len || block.len + MAX_INSN_LEN < copied;
            if whole {
                return block;
            }
            copied = len;
        }
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
            block = self.decode_copy(rip, len);
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
            self.units.set_queued(i, true);
            if let Some(f) = self.compile_now(&region, bytes) {
                self.units.set_code(i, f);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{chain_mask, chain_slot, CHAIN_MAX_BITS, CHAIN_MIN_BITS};
    use crate::mem::exec::CodePtr;

    /// The unit entry the table holds for `rip`, where compiled code looks for it.
    fn chained(u: &Units, rip: u64) -> Option<u64> {
        let [r, code] = u.chain.slots()[chain_slot(rip, u.chain.bits) as usize];
        assert_eq!(u.chain_mask() >> crate::cpu::CHAIN_GRAIN, (1 << u.chain.bits) - 1);
        (r == rip && code != 0).then_some(code)
    }

    /// Units 24 bytes of guest code apart, as a module's lie, all within one span of the
    /// largest table (so that no two share a slot at any size), with made-up entries.
    fn units(n: u64) -> Vec<(u64, CodePtr)> {
        (0..n)
            .map(|k| (0x40_0000 + 24 * k, CodePtr::fake(0x1000 + k as usize)))
            .collect()
    }

    #[test]
    fn the_chaining_table_grows_with_the_units_chained_into_it() {
        let mut u = Units::new(u32::MAX);
        assert_eq!(u.chain.bits, CHAIN_MIN_BITS);
        let all = units(20_000);
        for &(rip, code) in &all {
            u.chain_rip(rip, code);
        }
        assert_eq!(u.chain.bits, CHAIN_MAX_BITS, "8 slots a unit, up to the largest size");
        assert_eq!(u.chain_mask(), chain_mask(CHAIN_MAX_BITS));
        assert!(all.iter().all(|&(rip, code)| chained(&u, rip) == Some(code.addr())));
        // At the largest size the table no longer counts its units (`ChainTable::set`).
        u.unchain_rip(all[7].0, all[7].1);
        assert_eq!(chained(&u, all[7].0), None);
        let mut others = all.iter().enumerate().filter(|&(k, _)| k != 7);
        assert!(others.all(|(_, &(rip, code))| chained(&u, rip) == Some(code.addr())));
    }

    #[test]
    fn a_prefill_grows_the_table_once_keeping_what_it_holds() {
        let mut u = Units::new(u32::MAX);
        let all = units(2_000);
        for &(rip, code) in &all[..100] {
            u.chain_rip(rip, code);
        }
        assert_eq!(u.chain.bits, 12, "100 units in 4,096 slots");
        u.reserve_chain(1_900);
        assert_eq!(u.chain.bits, 14, "2,000 units in 16,384 slots");
        assert!(all[..100]
            .iter()
            .all(|&(rip, code)| chained(&u, rip) == Some(code.addr())));
        for &(rip, code) in &all[100..] {
            u.chain_rip(rip, code);
        }
        assert_eq!(u.chain.bits, 14, "reserved: no growth while it fills");
        assert!(all.iter().all(|&(rip, code)| chained(&u, rip) == Some(code.addr())));
    }

    #[test]
    fn a_unit_that_moves_as_the_table_grows_leaves_its_slot_matching_nothing() {
        let mut u = Units::new(u32::MAX);
        // Slot 0 of a table of 2^12 slots, slot 4,096 of one of 2^14.
        let (rip, code) = (0x8000, CodePtr::fake(0x1000));
        u.chain_rip(rip, code);
        assert_eq!(u.chain.slots()[0], [rip, code.addr()]);
        u.reserve_chain(1_900);
        assert_eq!(chained(&u, rip), Some(code.addr()));
        assert_eq!(
            u.chain.slots()[0],
            [u64::MAX, 0],
            "not a zero entry, which rip 0 would match"
        );
        assert_eq!((chained(&u, 0), u.chain.used), (None, 1));
    }
}
