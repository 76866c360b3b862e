//! Cached units that every thread may enter straight from compiled code, before its dispatcher
//! has met them: those lying on pages that hold their module file's bytes unchanged
//! (`mem::watch::pristine`), which need no check of their bytes (units are kept only for a
//! module's own code). When a module's code is found, its runnable units go into every
//! thread's chaining table at once, so a warm run enters its dispatcher for system calls and
//! indirect exits the chain cannot resolve, not once per unit it meets.
//!
//! Any change to a module's pages afterwards (munmap, mprotect, a new mapping) revokes its
//! prefill: each thread clears the slots it filled, and the module's units are checked against
//! the guest's bytes again from then on (`Modules::untrusted`).

use super::{Engine, Module};
use crate::cache::load::ModuleUnits;
use crate::jit::UnitFn;
use crate::mem::PAGE;
use cache_format::OuterRanges;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A module's units that may be chained without a check: those of `units` lying on its
/// runnable pages.
pub(super) struct Prefill {
    /// The module's guest range.
    pub lo: u64,
    pub hi: u64,
    load_bias: u64,
    units: Arc<ModuleUnits>,
    /// The first page of the range, and for each page from it the end (a page index, from
    /// `first`) of the run of runnable pages it lies in, or 0 where it is not runnable.
    first: u64,
    run_end: Vec<u32>,
    /// Whether every outer range of every unit lies on runnable pages (then a unit is held
    /// where its own bytes are, and its record need not be read).
    all_outer_runnable: bool,
    /// How many units it holds.
    pub count: usize,
    /// Set once the module's pages changed: threads that have not applied it yet skip it.
    pub revoked: AtomicBool,
}

impl Prefill {
    fn covers(&self, page: u64) -> bool {
        let at = page * PAGE;
        at < self.hi && at + PAGE > self.lo
    }

    /// Whether the guest bytes [rip, rip+len) lie on runnable pages: their first page is
    /// runnable, and its run of runnable pages reaches past their last.
    fn holds(&self, rip: u64, len: u64) -> bool {
        let pages = crate::mem::page_numbers(rip, len.max(1));
        let Some(k) = pages.start.checked_sub(self.first) else {
            return false;
        };
        (self.run_end.get(k as usize)).is_some_and(|&end| u64::from(end) >= pages.end - self.first)
    }

    /// Whether it holds every unit of its module (`count` set, all of them counted): then none
    /// need be tested again.
    fn holds_every_unit(&self) -> bool {
        self.count == self.units.len()
    }

    /// The units it holds: (rip, code, guest bytes covered from the rip), in rip order.
    pub fn units(&self) -> impl Iterator<Item = (u64, UnitFn, u64)> + '_ {
        (self.units.placements())
            .filter(|&(i, offset, _, len)| self.holds_every_unit() || self.holds_unit(i, offset.0, len))
            .map(|(_, offset, code, len)| (offset.0.wrapping_add(self.load_bias), code, len))
    }

    /// Whether every guest byte the unit at position `i` translates (`len` at module offset
    /// `offset`, and its outer ranges) lies on runnable pages.
    fn holds_unit(&self, i: usize, offset: u64, len: u64) -> bool {
        self.holds(offset.wrapping_add(self.load_bias), len)
            && (self.all_outer_runnable || self.units.outer_of(i).is_some_and(|outer| self.holds_all(outer)))
    }

    /// Whether every one of `outer` (module offsets) lies on runnable pages.
    fn holds_all(&self, outer: OuterRanges) -> bool {
        (outer.iter()).all(|r| r.is_some_and(|r| self.holds(r.offset.0.wrapping_add(self.load_bias), u64::from(r.len))))
    }
}

/// For each page of `runnable`, the end of the run of runnable pages it lies in (the index of
/// the first page after it), or 0 where it is not runnable.
fn run_ends(runnable: &[bool]) -> Vec<u32> {
    let mut ends = vec![0; runnable.len()];
    let mut end = 0;
    for k in (0..runnable.len()).rev() {
        if !runnable[k] {
            continue;
        }
        if k + 1 == runnable.len() || !runnable[k + 1] {
            end = k as u32 + 1;
        }
        ends[k] = end;
    }
    ends
}

/// Cached units loaded by a process beyond which its heap is in heavy use
/// (`allocator::heavy_use`): `cc1` loads 87,000 and `python3` 38,000, which run faster with
/// mimalloc (`python3 -c pass` 1.05x slower without it); `as` and `ld` 9,900, a static hello
/// world 950 and the `sh` loop 3,300 allocate too little to repay its start-up (`as` 0.96x
/// without it, `ld` the same; the threshold was 8,192 until 2026-12-05).
const HEAVY_HEAP_UNITS: usize = 16384;

/// Counts the cached units this process has loaded.
fn note_cached_units(n: usize) {
    static LOADED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    if LOADED.fetch_add(n, Ordering::Relaxed) + n >= HEAVY_HEAP_UNITS {
        crate::allocator::heavy_use();
    }
}

impl Engine {
    /// Builds the prefill of a module whose cached units were just loaded: the units lying on
    /// pages that are executable and hold the file's bytes unchanged. Their pages become code
    /// pages (`mem::watch`), so that any later change to them is seen.
    pub(super) fn prefill_of(&self, module: &Module, units: &Arc<ModuleUnits>) -> Option<Prefill> {
        note_cached_units(units.len());
        let pages = crate::mem::page_numbers(module.lo, module.hi - module.lo);
        let first = pages.start;
        let runnable: Vec<bool> = pages
            .map(|n| crate::mem::watch::pristine(n * PAGE, 1) && self.proc.mem.executable_len(n * PAGE, PAGE) == PAGE)
            .collect();
        let mut p = Prefill {
            lo: module.lo,
            hi: module.hi,
            load_bias: module.load_bias,
            units: units.clone(),
            first,
            run_end: run_ends(&runnable),
            all_outer_runnable: false,
            count: 0,
            revoked: AtomicBool::new(false),
        };
        // Reading each unit's record for its outer ranges (the pack's largest table) cost a
        // warm `cc1 -O2 hello.i` 1.4% of its CPU; where they all lie on runnable pages, as
        // they do while the module's code is as its file has it, one pass over their table
        // answers for every unit.
        p.all_outer_runnable = units.all_outer().is_some_and(|outer| p.holds_all(outer));
        // Units lie inside their module's range: when all of it is runnable, all of them are
        // held, without reading every record to count them; when the count (each unit tested,
        // as `count` is 0 meanwhile) finds them all held (the pages outside its code are not
        // runnable, but no unit lies there), filling the chaining table need not test each again.
        p.count = match runnable.iter().all(|&r| r) {
            true => units.len(),
            false => p.units().count(),
        };
        if p.count == 0 {
            return None;
        }
        // Watched as code pages, each run of runnable pages at once.
        let mut n = 0;
        while n < p.run_end.len() {
            let end = (p.run_end[n] as usize).max(n + 1);
            if p.run_end[n] != 0 {
                self.proc
                    .mem
                    .watch_code((first + n as u64) * PAGE, (end - n) as u64 * PAGE);
            }
            n = end;
        }
        Some(p)
    }

    /// Fills this thread's chaining table from the prefills published since it last looked.
    pub(super) fn apply_prefills(&mut self) {
        let (news, len) = self.shared.registry.prefills_since(self.units.prefills_seen);
        self.units.prefills_seen = len;
        // Those that came together (a program and its interpreter, at the start) grow the
        // table once, to the size they need between them.
        self.units.reserve_chain(news.iter().map(|p| p.count).sum());
        for p in news {
            // Revoked, or its pages changed before this thread got to it.
            let trusted = self.shared.registry.lock().modules.trusted(p.lo, p.hi - p.lo);
            if p.revoked.load(Ordering::Acquire) || !trusted {
                p.revoked.store(true, Ordering::Release);
                self.shared.registry.forbid_links();
                continue;
            }
            // A unit this thread holds keeps its slot (a thread that has none in the module's
            // range, as at its start, need not look each one up). Of two of the module's units
            // sharing a slot, the later in rip order takes it; the dispatcher gives a slot back
            // to a unit it meets.
            let mine = self.units.by_page.keys().any(|&page| p.covers(page));
            for (rip, code, _) in p.units() {
                if !mine || !self.units.index.contains_key(&rip) {
                    self.units.chain_rip(rip, code);
                }
            }
            self.stats.units_prefilled += p.count as u64;
            self.units.prefilled.push(p);
        }
    }

    /// A page whose code changed (None: any page, the thread fell behind the change log): the
    /// prefills covering it are revoked (their slots cleared in this thread; the module's
    /// units checked again from now on).
    pub(super) fn revoke_prefills(&mut self, page: Option<u64>) {
        let (hit, kept): (Vec<Arc<Prefill>>, Vec<Arc<Prefill>>) = std::mem::take(&mut self.units.prefilled)
            .into_iter()
            .partition(|p| page.is_none_or(|n| p.covers(n)));
        self.units.prefilled = kept;
        for p in hit {
            // The module's code changed: its units' links may lead to stale code.
            self.shared.registry.forbid_links();
            if !p.revoked.swap(true, Ordering::AcqRel) {
                self.shared.registry.lock().modules.untrust(p.lo, p.hi);
            }
            for (rip, code, _) in p.units() {
                self.units.unchain_rip(rip, code);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ends_mark_each_runnable_page_with_the_end_of_its_run() {
        let (t, f) = (true, false);
        assert_eq!(
            super::run_ends(&[t, t, f, t, f, f, t, t, t]),
            [2, 2, 0, 4, 0, 0, 9, 9, 9]
        );
        assert_eq!(super::run_ends(&[f, f]), [0, 0]);
        assert_eq!(super::run_ends(&[]), Vec::<u32>::new());
    }
}
