//! The units taken from the cache, by guest rip. A module's units arrive all at once from its
//! pack and stay where the pack holds them (`cache::load::ModuleUnits`, in offset order, found
//! by binary search): a run's start-up builds nothing per unit the cache holds for the program,
//! and only the units a run meets get an entry here (when their bytes last matched, or that
//! they were dropped).

use super::units::CachedUnit;
use super::Module;
use crate::cache::load::ModuleUnits;
use std::collections::HashMap;
use std::sync::Arc;

/// A unit from the cache, and the code epoch (`mem::watch::epoch`) at which its guest bytes
/// were last found to match.
#[derive(Clone, Copy)]
pub(super) struct Cached {
    pub unit: CachedUnit,
    pub verified_at: Option<u64>,
}

/// The cached units of every module loaded so far.
#[derive(Clone, Default)]
pub(super) struct CachedUnits {
    /// In the order modules were loaded; a later one wins where two hold the same rip.
    tables: Vec<Table>,
}

/// What a run learnt about one cached unit it met.
#[derive(Clone, Copy)]
enum Met {
    /// Its guest bytes matched at this code epoch.
    Verified(u64),
    /// Dropped: its guest bytes changed.
    Dropped,
}

#[derive(Clone)]
struct Table {
    /// The lowest and highest rip of a unit.
    lo: u64,
    hi: u64,
    load_bias: u64,
    module: cache_format::Hash,
    units: Arc<ModuleUnits>,
    /// By position in `units`.
    met: HashMap<usize, Met>,
}

impl Table {
    /// The position of the unit at `rip`, unless it was dropped.
    fn position(&self, rip: u64) -> Option<usize> {
        if rip < self.lo || rip > self.hi {
            return None;
        }
        let i = self
            .units
            .find(cache_format::ModuleOffset(rip.wrapping_sub(self.load_bias)))?;
        (!matches!(self.met.get(&i), Some(Met::Dropped))).then_some(i)
    }
}

impl CachedUnits {
    /// Adds a module's units, loaded where it lies now.
    pub fn add_module(&mut self, module: &Module, units: Arc<ModuleUnits>) {
        let (Some(first), Some(last)) = (units.unit(0), units.len().checked_sub(1).and_then(|i| units.unit(i))) else {
            return;
        };
        self.tables.push(Table {
            lo: module.address_of(first.offset),
            hi: module.address_of(last.offset),
            load_bias: module.load_bias,
            module: module.hash,
            units,
            met: HashMap::new(),
        });
    }

    fn slot(&self, rip: u64) -> Option<(usize, usize)> {
        (self.tables.iter().enumerate().rev()).find_map(|(t, table)| Some((t, table.position(rip)?)))
    }

    /// The unit at `rip`, if a module holds one (None if its record is damaged).
    pub fn get(&self, rip: u64) -> Option<Cached> {
        let (t, i) = self.slot(rip)?;
        let table = &self.tables[t];
        let u = table.units.unit(i)?;
        Some(Cached {
            unit: CachedUnit {
                code: u.code,
                guest_len: u.guest_len,
                ninsns: u.ninsns,
                guest_hash: u.guest_hash,
                outer: u.outer,
                load_bias: table.load_bias,
            },
            verified_at: match table.met.get(&i) {
                Some(&Met::Verified(epoch)) => Some(epoch),
                _ => None,
            },
        })
    }

    /// The units this process entered that their packs do not record as entered yet, by
    /// module.
    pub fn newly_entered(&self) -> cache_format::EnteredUnits {
        let mut out = cache_format::EnteredUnits::new();
        for t in &self.tables {
            let offsets = t.units.newly_entered();
            if !offsets.is_empty() {
                out.entry(t.module).or_default().extend(offsets);
            }
        }
        out
    }

    /// Records that the unit at `rip` matched its guest bytes at code epoch `epoch`.
    pub fn set_verified(&mut self, rip: u64, epoch: u64) {
        if let Some((t, i)) = self.slot(rip) {
            self.tables[t].met.insert(i, Met::Verified(epoch));
        }
    }

    pub fn contains(&self, rip: u64) -> bool {
        self.slot(rip).is_some()
    }

    /// Drops the unit at `rip` for every thread.
    pub fn remove(&mut self, rip: u64) {
        if let Some((t, i)) = self.slot(rip) {
            self.tables[t].met.insert(i, Met::Dropped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::load::RunnableUnit;

    fn unit(offset: u64, len: u64) -> RunnableUnit {
        RunnableUnit {
            offset: cache_format::ModuleOffset(offset),
            code: crate::jit::UnitFn::dangling(),
            guest_len: len,
            ninsns: 1,
            guest_hash: [0; 32],
            outer: Default::default(),
        }
    }

    fn module(load_bias: u64) -> Module {
        Module {
            hash: [0; 32],
            load_bias,
            lo: load_bias,
            hi: load_bias + 0x10000,
        }
    }

    #[test]
    fn found_by_rip_latest_module_first_and_gone_once_removed() {
        let mut c = CachedUnits::default();
        let units = vec![unit(0x3000, 3), unit(0x1000, 1), unit(0x2000, 2), unit(0x1000, 4)];
        c.add_module(&module(0x40_0000), Arc::new(ModuleUnits::from_units(units)));
        c.add_module(
            &module(0x40_1000),
            Arc::new(ModuleUnits::from_units(vec![unit(0x1000, 5)])),
        );
        let len = |c: &CachedUnits, rip| c.get(rip).map(|u| u.unit.guest_len);
        assert_eq!(len(&c, 0x40_1000), Some(4));
        assert_eq!(len(&c, 0x40_2000), Some(5));
        assert_eq!(len(&c, 0x40_3000), Some(3));
        assert!(!c.contains(0x40_1800) && !c.contains(0x40_4000));
        c.remove(0x40_2000);
        assert_eq!(len(&c, 0x40_2000), Some(2));
        c.set_verified(0x40_3000, 7);
        assert_eq!(c.get(0x40_3000).unwrap().verified_at, Some(7));
        assert_eq!(c.get(0x40_1000).unwrap().verified_at, None);
        c.remove(0x40_2000);
        assert!(c.get(0x40_2000).is_none());
    }
}
