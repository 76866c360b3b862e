//! Writing a run's new units: straight into the packs under the index's lock, or, from a
//! detached compile that must not open the index, into journals (pack-shaped files in
//! `journals/`) that `kiln cache merge` folds in later. Merging is idempotent, so mergers that
//! race for one journal are harmless, and journals of writers that died are picked up.

use super::{file_name, gc, write_atomic, Cache};
use cache_format::{ConfigId, Hash, ModuleOffset, UnitEntry, UnitKey};
use std::path::{Path, PathBuf};

/// Adds entries to the index (waiting up to `tries` x 20 ms for another run's lock) and
/// rewrites the packs of the modules they belong to.
pub fn write_entries(dir: &Path, config: ConfigId, entries: &[(UnitKey, UnitEntry)], tries: u32) {
    if entries.is_empty() {
        return;
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
            return;
        }
    };
    // Straight into the packs (the index's lock serialises writers); the index keeps only
    // what could not be packed.
    for module in distinct_modules(entries) {
        if let Err(e) = cache.write_pack(&module, &config, entries) {
            let mine: Vec<_> = entries.iter().filter(|(k, _)| k.module == module).cloned().collect();
            let _ = cache.store(&mine);
            crate::klog!("cache", "cannot write the pack: {e}");
        }
    }
    let max = gc::max_bytes();
    if gc::disk_usage(dir) > max {
        let r = gc::collect(&cache, max);
        crate::klog!("cache", "over the cap: collected {r:?}");
    }
}

/// Writes entries to `journals/` in the pack layout, one file per module; returns them.
pub fn write_journals(dir: &Path, config: ConfigId, entries: &[(UnitKey, UnitEntry)]) -> Vec<PathBuf> {
    let jdir = dir.join("journals");
    if std::fs::create_dir_all(&jdir).is_err() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (n, module) in distinct_modules(entries).iter().enumerate() {
        let units: Vec<(ModuleOffset, UnitEntry)> = entries
            .iter()
            .filter(|(k, _)| &k.module == module)
            .map(|(k, e)| (k.offset, e.clone()))
            .collect();
        let bytes = cache_format::encode_pack(module, &config, &units);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = jdir.join(format!("{}-{stamp}-{n}.journal", std::process::id()));
        // Whole or not at all: a collector must never take a journal being written for a
        // damaged one.
        if write_atomic(&jdir, &path, &bytes).is_ok() {
            out.push(path);
        }
    }
    out
}

/// Merges a journal into the index and rewrites its module's pack (`kiln cache merge`).
pub fn merge_journal(path: &Path) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .and_then(|p| p.parent())
        .ok_or_else(|| anyhow::anyhow!("{}: not in a cache's journals/", path.display()))?;
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        // Another merger took it first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let name = file_name(path);
    // The journal's own header names its module and config.
    let (module, config) =
        cache_format::pack_identity(&bytes).ok_or_else(|| anyhow::anyhow!("{name}: truncated journal"))?;
    let units = cache_format::decode_pack(&bytes, &module, &config).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let entries: Vec<(UnitKey, UnitEntry)> = units
        .into_iter()
        .map(|(offset, e)| (UnitKey { module, config, offset }, e))
        .collect();
    write_entries(dir, config, &entries, 3000);
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// Merges the given journals, then any others left in their directory by mergers that died.
pub fn merge_journals(journals: &[PathBuf]) -> anyhow::Result<()> {
    for j in journals {
        merge_journal(j)?;
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
        if let Err(e) = merge_journal(&j) {
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
