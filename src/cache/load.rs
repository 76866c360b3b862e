//! Loading a module's cached units for a run: from its pack, mapped and made executable where
//! it lies (no index, no lock; copied on a noexec file system), else from the index when the
//! pack is damaged. The result is code ready to run, still to be checked against the guest's
//! bytes at each unit's first execution.
//!
//! A pack's units are not copied out: `ModuleUnits` reads each record where it lies in the
//! mapping when it is asked for it, so loading a pack of a hundred thousand units allocates
//! nothing per unit, and a run reads the records of the units it uses.

use super::{map_pack, pack_path, Cache};
use crate::mem::exec::{self, CodePtr};
use cache_format::{ConfigId, Hash, ModuleOffset, OuterRanges, PackIndex, PackUnit};
use std::path::Path;

/// A cached unit whose code is executable.
#[derive(Clone, Copy)]
pub struct RunnableUnit {
    /// Offset of the unit's first instruction in its module.
    pub offset: ModuleOffset,
    pub code: CodePtr,
    pub guest_len: u64,
    pub ninsns: u64,
    /// blake3 of the guest bytes it was translated from (`UnitEntry::guest_hash`).
    pub guest_hash: Hash,
    /// The module's code it translates beyond [offset, offset + guest_len).
    pub outer: OuterRanges<'static>,
}

/// A pack's entry marks (`cache_format::pack_entry_marks`), mapped readable and writable for
/// the rest of the process: one byte per record, set by the unit's code when it is entered.
#[derive(Clone, Copy)]
struct EntryMarks(*const u8, usize);

// SAFETY: the marks stay mapped for the process; units set bytes to 1 and readers only read
// them, so a racy read sees 0 or 1 and nothing else.
unsafe impl Send for EntryMarks {}
// SAFETY: as for Send.
unsafe impl Sync for EntryMarks {}

/// A module's runnable units, in ascending offset order, by position.
pub struct ModuleUnits(Source);

enum Source {
    /// A pack mapped for the rest of the process: its records, where its code runs (the unit at
    /// file offset `o` at `code + o`) and its units' entry marks.
    Pack {
        index: PackIndex<'static>,
        code: CodePtr,
        marks: Option<EntryMarks>,
    },
    /// Units copied out of the index, one of each offset.
    Copied(Vec<RunnableUnit>),
}

impl ModuleUnits {
    fn none() -> ModuleUnits {
        ModuleUnits(Source::Copied(Vec::new()))
    }

    /// Units held in memory, the last given of any repeated offset kept.
    pub fn from_units(mut units: Vec<RunnableUnit>) -> ModuleUnits {
        units.reverse();
        // Stable: of equal offsets the first after reversing, the last given, comes first.
        units.sort_by_key(|u| u.offset);
        units.dedup_by_key(|u| u.offset);
        ModuleUnits(Source::Copied(units))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Source::Pack { index, .. } => index.len(),
            Source::Copied(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The unit at position `i`; None if its record is damaged.
    pub fn unit(&self, i: usize) -> Option<RunnableUnit> {
        match &self.0 {
            Source::Pack { index, code, .. } => {
                let u = index.unit(i)?;
                let outer = index.outer_ranges(&u)?;
                // SAFETY: the record was checked: the unit's code lies inside the code region,
                // which is executable for the rest of the process where `code` says.
                Some(runnable(&u, unsafe { code.add(u.code_start) }, outer))
            }
            Source::Copied(v) => v.get(i).copied(),
        }
    }

    /// The outer ranges of the unit at position `i`, read without the rest of its record;
    /// None if they are damaged.
    pub fn outer_of(&self, i: usize) -> Option<OuterRanges<'static>> {
        match &self.0 {
            Source::Pack { index, .. } => index.outer_of(i),
            Source::Copied(v) => v.get(i).map(|u| u.outer),
        }
    }

    /// Every unit's outer ranges together, where one table holds them all (a pack's); None
    /// where each unit holds its own, or the table is damaged.
    pub fn all_outer(&self) -> Option<OuterRanges<'static>> {
        match &self.0 {
            Source::Pack { index, .. } => index.all_outer(),
            Source::Copied(_) => None,
        }
    }

    /// The position of the unit at `offset`, if the module has one.
    pub fn find(&self, offset: ModuleOffset) -> Option<usize> {
        match &self.0 {
            Source::Pack { index, .. } => index.find(offset.0),
            Source::Copied(v) => v.binary_search_by_key(&offset, |u| u.offset).ok(),
        }
    }

    /// Where each unit whose code is whole lies: (position, offset, code, guest bytes covered
    /// from the offset), in offset order; read from a pack without the rest of each record.
    pub fn placements(&self) -> impl Iterator<Item = (usize, ModuleOffset, CodePtr, u64)> + '_ {
        (0..self.len()).filter_map(|i| match &self.0 {
            Source::Pack { index, code, .. } => {
                let (offset, len, start) = index.placement(i)?;
                // SAFETY: as in `unit`: the unit's code lies inside the executable code region.
                Some((i, offset, unsafe { code.add(start) }, len as u64))
            }
            Source::Copied(v) => v.get(i).map(|u| (i, u.offset, u.code, u.guest_len)),
        })
    }

    /// The offsets of the units whose entry marks are set and whose records do not say yet
    /// that a run entered them.
    pub fn newly_entered(&self) -> Vec<ModuleOffset> {
        let Source::Pack {
            index,
            marks: Some(EntryMarks(at, len)),
            ..
        } = &self.0
        else {
            return Vec::new();
        };
        // SAFETY: the marks stay mapped, `len` bytes, for the rest of the process.
        let marks = unsafe { std::slice::from_raw_parts(*at, *len) };
        let set = marks.iter().take(index.len()).enumerate().filter(|(_, &m)| m != 0);
        set.filter_map(|(i, _)| index.unit(i).filter(|u| !u.entered).map(|u| u.offset))
            .collect()
    }
}

fn runnable(u: &PackUnit, code: CodePtr, outer: OuterRanges<'static>) -> RunnableUnit {
    RunnableUnit {
        offset: u.offset,
        code,
        guest_len: u.guest_len as u64,
        ninsns: u.ninsns as u64,
        guest_hash: u.guest_hash,
        outer,
    }
}

/// A module's runnable units, and how many index entries were rejected as damaged.
pub struct Loaded {
    pub units: ModuleUnits,
    pub rejected: u64,
}

/// Loads the module's units: from its pack when there is a good one, else from the index.
pub fn load_module(dir: &Path, module: &Hash, config: &ConfigId) -> Loaded {
    if let Some(map) = map_pack(dir, module, config) {
        return Loaded {
            units: from_pack(map, module, config),
            rejected: 0,
        };
    }
    // No pack: nothing cached for the module (the index only holds units whose pack write
    // failed, folded in at the next write). A damaged pack: try the index.
    if !pack_path(dir, module, config).exists() {
        return Loaded {
            units: ModuleUnits::none(),
            rejected: 0,
        };
    }
    from_index(dir, module, config)
}

/// The units of a pack whose header `map_pack` checked.
fn from_pack(map: crate::mem::MappedFile, module: &Hash, config: &ConfigId) -> ModuleUnits {
    let (at, len) = (map.bytes().as_ptr(), map.bytes().len());
    let marks = map.tail().map(|(p, len)| EntryMarks(p as *const u8, len));
    let Ok(code) = exec::make_exec(map) else {
        return ModuleUnits::none();
    };
    // SAFETY: the mapping was leaked above: it stays mapped and readable (read-only, or
    // read-execute) for the rest of the process, and nothing writes it.
    let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(at, len) };
    match PackIndex::open(bytes, module, config, false) {
        Ok(index) => ModuleUnits(Source::Pack { index, code, marks }),
        Err(_) => ModuleUnits::none(),
    }
}

fn from_index(dir: &Path, module: &Hash, config: &ConfigId) -> Loaded {
    let (mut units, rejected) = match Cache::open(dir) {
        Ok(c) => c.load_module(module, config),
        Err(e) => {
            crate::klog!("cache", "{e}; running without the cache");
            return Loaded {
                units: ModuleUnits::none(),
                rejected: 0,
            };
        }
    };
    // Links are filled in only inside a pack, and only a pack's units have outer ranges.
    units.retain(|u| u.entry.links.is_empty() && u.entry.outer.is_empty());
    let codes: Vec<&[u8]> = units.iter().map(|u| &u.entry.code[..]).collect();
    let fns = match exec::install(&codes) {
        Ok(f) => f,
        Err(e) => {
            crate::klog!("cache", "cannot map cached code ({e}); running without it");
            return Loaded {
                units: ModuleUnits::none(),
                rejected,
            };
        }
    };
    let units = units
        .iter()
        .zip(fns)
        .map(|(u, code)| RunnableUnit {
            offset: u.offset,
            code,
            guest_len: u.entry.guest_len as u64,
            ninsns: u.entry.ninsns as u64,
            guest_hash: u.entry.guest_hash,
            outer: OuterRanges::default(),
        })
        .collect();
    Loaded {
        units: ModuleUnits::from_units(units),
        rejected,
    }
}
