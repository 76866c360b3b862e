//! The units taken from the cache, by guest rip. A module's units arrive all at once from its
//! pack: they are kept as one array sorted by rip (built by one sort, no insert per unit) and
//! found by binary search, so a run's start-up does not grow a hash map of every unit the cache
//! holds for the program.

use super::units::CachedUnit;

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

#[derive(Clone)]
struct Table {
    /// The lowest and highest rip.
    lo: u64,
    hi: u64,
    rips: Vec<u64>,
    /// None once dropped (its guest bytes changed).
    units: Vec<Option<Cached>>,
}

impl CachedUnits {
    /// A module's units in rip order, the last of any repeated rip kept.
    pub fn sorted(mut units: Vec<(u64, Cached)>) -> Vec<(u64, Cached)> {
        units.reverse();
        // Stable: of equal rips the first after reversing, the last given, comes first.
        units.sort_by_key(|&(rip, _)| rip);
        units.dedup_by_key(|&mut (rip, _)| rip);
        units
    }

    /// Adds a module's units, as `sorted` leaves them.
    pub fn add_module(&mut self, units: Vec<(u64, Cached)>) {
        debug_assert!(units.windows(2).all(|w| w[0].0 < w[1].0));
        let (Some(&(lo, _)), Some(&(hi, _))) = (units.first(), units.last()) else {
            return;
        };
        let (rips, units) = units.into_iter().map(|(rip, c)| (rip, Some(c))).unzip();
        self.tables.push(Table { lo, hi, rips, units });
    }

    fn slot(&self, rip: u64) -> Option<(usize, usize)> {
        self.tables.iter().enumerate().rev().find_map(|(t, table)| {
            if rip < table.lo || rip > table.hi {
                return None;
            }
            let i = table.rips.binary_search(&rip).ok()?;
            table.units[i].is_some().then_some((t, i))
        })
    }

    pub fn get(&self, rip: u64) -> Option<&Cached> {
        let (t, i) = self.slot(rip)?;
        self.tables[t].units[i].as_ref()
    }

    pub fn get_mut(&mut self, rip: u64) -> Option<&mut Cached> {
        let (t, i) = self.slot(rip)?;
        self.tables[t].units[i].as_mut()
    }

    pub fn contains(&self, rip: u64) -> bool {
        self.slot(rip).is_some()
    }

    /// Drops the unit at `rip` for every thread.
    pub fn remove(&mut self, rip: u64) {
        if let Some((t, i)) = self.slot(rip) {
            self.tables[t].units[i] = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(len: u64) -> Cached {
        Cached {
            unit: CachedUnit {
                code: crate::jit::UnitFn::dangling(),
                guest_len: len,
                ninsns: 1,
                guest_hash: [0; 32],
            },
            verified_at: None,
        }
    }

    #[test]
    fn found_by_rip_latest_module_first_and_gone_once_removed() {
        let mut c = CachedUnits::default();
        c.add_module(CachedUnits::sorted(vec![
            (0x3000, unit(3)),
            (0x1000, unit(1)),
            (0x2000, unit(2)),
            (0x1000, unit(4)),
        ]));
        c.add_module(CachedUnits::sorted(vec![(0x2000, unit(5))]));
        assert_eq!(c.get(0x1000).map(|u| u.unit.guest_len), Some(4));
        assert_eq!(c.get(0x2000).map(|u| u.unit.guest_len), Some(5));
        assert_eq!(c.get(0x3000).map(|u| u.unit.guest_len), Some(3));
        assert!(!c.contains(0x1800) && !c.contains(0x4000));
        c.remove(0x2000);
        assert_eq!(c.get(0x2000).map(|u| u.unit.guest_len), Some(2));
        c.get_mut(0x3000).unwrap().verified_at = Some(7);
        assert_eq!(c.get(0x3000).unwrap().verified_at, Some(7));
        c.remove(0x2000);
        assert!(c.get(0x2000).is_none());
    }
}
