//! Loading a module's cached units for a run: from its pack, mapped and made executable where
//! it lies (no index, no lock; copied on a noexec file system), else from the index when the
//! pack is damaged. The result is code ready to run, still to be checked against the guest's
//! bytes at each unit's first execution.

use super::{pack_path, read_pack, Cache};
use crate::mem::exec::{self, CodePtr};
use cache_format::{ConfigId, Hash, ModuleOffset};
use std::path::Path;

/// A cached unit whose code is executable.
pub struct RunnableUnit {
    /// Offset of the unit's first instruction in its module.
    pub offset: ModuleOffset,
    pub code: CodePtr,
    pub guest_len: u64,
    pub ninsns: u64,
    /// blake3 of the guest bytes it was translated from.
    pub guest_hash: Hash,
}

/// A module's runnable units, and how many index entries were rejected as damaged.
#[derive(Default)]
pub struct Loaded {
    pub units: Vec<RunnableUnit>,
    pub rejected: u64,
}

/// Loads the module's units: from its pack when there is a good one, else from the index.
pub fn load_module(dir: &Path, module: &Hash, config: &ConfigId) -> Loaded {
    if let Some(pack) = read_pack(dir, module, config) {
        return from_pack(pack);
    }
    // No pack: nothing cached for the module (the index only holds units whose pack write
    // failed, folded in at the next write). A damaged pack: try the index.
    if !pack_path(dir, module, config).exists() {
        return Loaded::default();
    }
    from_index(dir, module, config)
}

fn from_pack(pack: super::Pack) -> Loaded {
    let units = pack.units;
    let (region, region_len) = cache_format::pack_code_region(pack.map.bytes());
    // The index (header, records and links, before the code) was read once, into `units`.
    pack.map.release_prefix(region);
    let runnable = |u: &cache_format::PackUnit, code| RunnableUnit {
        offset: u.offset,
        code,
        guest_len: u.guest_len as u64,
        ninsns: u.ninsns as u64,
        guest_hash: u.guest_hash,
    };
    match exec::make_exec(pack.map) {
        Ok(base) => Loaded {
            units: units
                .iter()
                // SAFETY: the pack was checked: each unit's code lies inside the mapping (which
                // is now executable and stays for the process).
                .map(|u| runnable(u, unsafe { base.add(u.code_start) }))
                .collect(),
            rejected: 0,
        },
        Err((e, map)) => {
            // A cache on a file system mounted noexec: copy the code instead, whole (the
            // units' links lead from one to another).
            crate::klog!("cache", "cannot execute the pack in place ({e}); copying it");
            let Ok(copy) = exec::install(&[&map.bytes()[region..region + region_len]]) else {
                return Loaded::default();
            };
            Loaded {
                units: units
                    .iter()
                    // SAFETY: each unit's code lies inside the code region, copied whole.
                    .map(|u| runnable(u, unsafe { copy[0].add(u.code_start - region) }))
                    .collect(),
                rejected: 0,
            }
        }
    }
}

fn from_index(dir: &Path, module: &Hash, config: &ConfigId) -> Loaded {
    let (mut units, rejected) = match Cache::open(dir) {
        Ok(c) => c.load_module(module, config),
        Err(e) => {
            crate::klog!("cache", "{e}; running without the cache");
            return Loaded::default();
        }
    };
    // Links are filled in only inside a pack.
    units.retain(|u| u.entry.links.is_empty());
    let codes: Vec<&[u8]> = units.iter().map(|u| &u.entry.code[..]).collect();
    let fns = match exec::install(&codes) {
        Ok(f) => f,
        Err(e) => {
            crate::klog!("cache", "cannot map cached code ({e}); running without it");
            return Loaded {
                units: Vec::new(),
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
        })
        .collect();
    Loaded { units, rejected }
}
