//! Writing a run's new units: straight into the packs under the index's lock; as a work
//! journal (`<pid>-<nanoseconds>.work` in `journals/`: what the run compiled and what it left
//! to compile) that the compile service merges; or, from a detached compile that must not open
//! the index, as pack-shaped journals (`.journal`) that `kiln cache merge` folds in later.
//! Merging is idempotent, so mergers that race for one journal are harmless, and journals of
//! writers that died are picked up.

use super::{file_name, gc, stamp, write_atomic, Cache};
use cache_format::EnteredUnits;
use cache_format::{ConfigId, Hash, ModuleOffset, UnitEntry, UnitKey, WorkJournal};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Adds entries to the index (waiting up to `tries` x 20 ms for another run's lock) and
/// rewrites the packs of the modules they belong to. False when the index could not be opened,
/// or some units are neither in their pack nor in the index (the caller keeps its copy).
/// `stub`: the link stub of the packs written (`crate::jit::pack_link_stub`).
/// `entered`: per module, units of its pack that runs entered, which the pack records as such.
pub fn write_entries(
    dir: &Path,
    config: ConfigId,
    entries: &[(UnitKey, UnitEntry)],
    entered: &EnteredUnits,
    tries: u32,
    stub: &[u8],
) -> bool {
    if entries.is_empty() && entered.is_empty() {
        return true;
    }
    let mut opened = Cache::open(dir);
    for _ in 0..tries {
        if opened.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        opened = Cache::open(dir);
    }
    let cache = match opened {
        Ok(cache) => cache,
        Err(e) => {
            crate::klog!("cache", "cannot open the cache to write: {e}");
            return false;
        }
    };
    // Straight into the packs (the index's lock serialises writers); the index keeps only
    // what could not be packed.
    let mut stored = true;
    let none = BTreeSet::new();
    let modules: BTreeSet<Hash> = entries
        .iter()
        .map(|(k, _)| k.module)
        .chain(entered.keys().copied())
        .collect();
    for module in modules {
        let marks = entered.get(&module).unwrap_or(&none);
        if let Err(e) = cache.write_pack(&module, &config, entries, marks, stub) {
            let mine: Vec<_> = entries.iter().filter(|(k, _)| k.module == module).cloned().collect();
            crate::klog!("cache", "cannot write the pack: {e}");
            if let Err(e) = cache.store(&mine) {
                crate::klog!("cache", "cannot keep the units in the index either: {e}");
                stored = false;
            }
        }
    }
    let max = gc::max_bytes();
    if gc::disk_usage(dir) > max {
        let r = gc::collect(&cache, max);
        crate::klog!("cache", "over the cap: collected {r:?}");
    }
    stored
}

/// The cache directory's `journals/`, made where missing; None where the cache directory
/// itself is gone (removed while a run or its hand-over was under way: never made again).
fn journals_dir(dir: &Path) -> Option<PathBuf> {
    let jdir = dir.join("journals");
    match std::fs::create_dir(&jdir) {
        Ok(()) => Some(jdir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Some(jdir),
        Err(_) => None,
    }
}

/// Writes a run's work journal into `journals/` (whole or not at all); its path.
pub fn write_work(dir: &Path, work: &WorkJournal) -> Option<PathBuf> {
    let jdir = journals_dir(dir)?;
    let path = jdir.join(format!("{}-{}.work", std::process::id(), stamp()));
    // Streamed: a journal can be tens of megabytes, and the run is at its peak memory.
    super::write_atomic_with(&jdir, &path, |f| cache_format::write_work(work, f)).ok()?;
    Some(path)
}

/// A journal as found in `journals/`.
pub enum Journal {
    /// A run's work journal.
    Work(WorkJournal),
    /// A detached compile's units.
    Units(ConfigId, Vec<(UnitKey, UnitEntry)>),
}

/// Why a journal could not be read: the file (gone, or unreadable for now), or its contents
/// (damaged, or of another format version).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}: {1}")]
    Format(String, cache_format::EntryError),
}

/// Reads and checks a journal of either kind.
pub fn read_journal(path: &Path) -> Result<Journal, JournalError> {
    let bytes = std::fs::read(path)?;
    let bad = |e| JournalError::Format(file_name(path), e);
    if path.extension().is_some_and(|x| x == "work") {
        return cache_format::decode_work(&bytes).map(Journal::Work).map_err(bad);
    }
    // The journal's own header names its module and config.
    let (module, config) = cache_format::pack_identity(&bytes).ok_or(bad(cache_format::EntryError::Truncated))?;
    let units = cache_format::decode_pack(&bytes, &module, &config).map_err(bad)?;
    let entries = units
        .into_iter()
        .map(|(offset, e)| (UnitKey { module, config, offset }, e))
        .collect();
    Ok(Journal::Units(config, entries))
}

/// Every journal waiting in `journals/`, oldest first.
pub fn pending_journals(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir.join("journals"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| is_journal(&e.path()))
                .map(|e| {
                    let t = e.metadata().and_then(|m| m.modified());
                    (t.unwrap_or(std::time::UNIX_EPOCH), e.path())
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

fn is_journal(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == "journal" || x == "work")
}

/// Writes entries to `journals/` in the pack layout, one file per module; returns them.
pub fn write_journals(dir: &Path, config: ConfigId, entries: &[(UnitKey, UnitEntry)]) -> Vec<PathBuf> {
    let Some(jdir) = journals_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (n, module) in distinct_modules(entries).iter().enumerate() {
        let mut units: Vec<(ModuleOffset, UnitEntry)> = entries
            .iter()
            .filter(|(k, _)| &k.module == module)
            .map(|(k, e)| (k.offset, e.clone()))
            .collect();
        // A pack's records are in offset order (`cache_format::PackIndex::find`).
        units.sort_by_key(|(o, _)| *o);
        units.dedup_by_key(|(o, _)| *o);
        let bytes = cache_format::encode_pack(module, &config, &units, &[]);
        let path = jdir.join(format!("{}-{}-{n}.journal", std::process::id(), stamp()));
        // Whole or not at all: a collector must never take a journal being written for a
        // damaged one.
        if write_atomic(&jdir, &path, &bytes).is_ok() {
            out.push(path);
        }
    }
    out
}

/// Merges a detached compile's journal into the index and rewrites its module's pack
/// (`kiln cache merge`; work journals are the service's).
pub fn merge_journal(path: &Path, stub: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .and_then(|p| p.parent())
        .ok_or_else(|| anyhow::anyhow!("{}: not in a cache's journals/", path.display()))?;
    let journal = match read_journal(path) {
        Ok(j) => j,
        // Another merger took it first.
        Err(JournalError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let Journal::Units(config, entries) = journal else {
        return Ok(());
    };
    if write_entries(dir, config, &entries, &EnteredUnits::new(), 3000, stub) {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Merges the given journals, then any others left in their directory by mergers that died.
pub fn merge_journals(journals: &[PathBuf], stub: &[u8]) -> anyhow::Result<()> {
    for j in journals {
        merge_journal(j, stub)?;
    }
    let Some(jdir) = journals.first().and_then(|j| j.parent()) else {
        return Ok(());
    };
    let mut left: Vec<PathBuf> = std::fs::read_dir(jdir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    left.retain(|p| p.extension().is_some_and(|x| x == "journal"));
    left.sort();
    for j in left {
        if let Err(e) = merge_journal(&j, stub) {
            crate::klog!("cache", "{e}");
        }
    }
    Ok(())
}

/// The modules the entries belong to, each once.
fn distinct_modules(entries: &[(UnitKey, UnitEntry)]) -> Vec<Hash> {
    let mut v: Vec<Hash> = entries.iter().map(|(k, _)| k.module).collect();
    v.sort_unstable();
    v.dedup();
    v
}
