//! The size cap (`KILN_CACHE_MAX`, default 2 GiB) and garbage collection: invalid files go
//! first (damaged or foreign-format packs and journals, stale temporaries, moved-aside damaged
//! indexes), then whole modules, least recently used first, until the cache is at 80% of the
//! cap. Runs collect after writing when the cache is over the cap; `kiln cache gc` on demand.
//! Callers hold the index, which serialises collection with every writer of packs.

use super::{list_packs, usage, Cache};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const DEFAULT_MAX: u64 = 2 << 30;
/// Age at which a journal no service has merged is removed.
const STALE_JOURNAL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Temporary files older than this belong to a writer that died.
const STALE_TMP: Duration = Duration::from_secs(600);
/// Usage records kept when the log is trimmed.
const KEEP_RECORDS: usize = 20_000;

/// The cap: `KILN_CACHE_MAX` as bytes with an optional K, M, G or T suffix (powers of 1024).
pub fn max_bytes() -> u64 {
    std::env::var("KILN_CACHE_MAX")
        .ok()
        .and_then(|v| parse_size(&v))
        .unwrap_or(DEFAULT_MAX)
}

pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let v = v.strip_suffix("iB").or_else(|| v.strip_suffix('B')).unwrap_or(v);
    let (num, shift) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 10),
        'm' | 'M' => (&v[..v.len() - 1], 20),
        'g' | 'G' => (&v[..v.len() - 1], 30),
        't' | 'T' => (&v[..v.len() - 1], 40),
        _ => (v, 0),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Bytes of every file under `p`.
pub fn disk_usage(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else { return 0 };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| disk_usage(&e.path())).sum())
        .unwrap_or(0)
}

#[derive(serde::Serialize, Default, Debug)]
pub struct GcReport {
    pub max_bytes: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub invalid_removed: u64,
    pub modules_removed: u64,
}

fn remove(p: &Path) -> bool {
    if p.is_dir() {
        std::fs::remove_dir_all(p).is_ok()
    } else {
        std::fs::remove_file(p).is_ok()
    }
}

fn older_than(p: &Path, age: Duration) -> bool {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|d| d > age)
}

/// Collects garbage in the cache `c` down to 80% of `max` (invalid files always go).
/// Where a collection stops: 80% of the cap, so that the next runs have room before the next.
fn collection_target(max: u64) -> u64 {
    max / 10 * 8
}

/// Modules (each with its last use and what it holds), least recently used first.
fn least_recently_used_first<K, V>(modules: impl IntoIterator<Item = (K, (u64, V))>) -> Vec<(K, (u64, V))> {
    let mut order: Vec<_> = modules.into_iter().collect();
    order.sort_by_key(|(_, (used, _))| *used);
    order
}

pub fn collect(c: &Cache, max: u64) -> GcReport {
    let dir = &c.dir;
    let mut r = GcReport {
        max_bytes: max,
        bytes_before: disk_usage(dir),
        ..Default::default()
    };
    // 1. Invalid files.
    let packs = list_packs(dir);
    for p in packs.iter().filter(|p| p.units.is_none()) {
        r.invalid_removed += remove(&p.path) as u64;
    }
    for sub in ["packs", "journals", "hashes", "."] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let p = e.path();
            let stale_tmp = name.starts_with(".tmp-") && older_than(&p, STALE_TMP);
            let damaged_index = sub == "." && name.starts_with("index.sled.damaged-");
            // A journal no service took for a week is another configuration's, long gone.
            let bad_journal = sub == "journals"
                && (name.ends_with(".journal") || name.ends_with(".work"))
                && (matches!(
                    super::journal::read_journal(&p),
                    Err(super::journal::JournalError::Format(..))
                ) || older_than(&p, STALE_JOURNAL));
            if stale_tmp || damaged_index || bad_journal {
                r.invalid_removed += remove(&p) as u64;
            }
        }
    }
    let recs = usage::read(dir);
    if recs.len() > KEEP_RECORDS {
        let _ = usage::trim(dir, KEEP_RECORDS);
    }
    // 2. Whole modules, least recently used first.
    let mut size = disk_usage(dir);
    let target = collection_target(max);
    if size > max {
        let last = usage::last_use(&recs);
        let mut modules: std::collections::BTreeMap<cache_format::Hash, (u64, Vec<&super::PackFile>)> =
            Default::default();
        for p in packs.iter().filter(|p| p.units.is_some()) {
            let mtime = std::fs::metadata(&p.path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            let used = last.get(&super::hex(&p.module)).copied().unwrap_or(0).max(mtime);
            let e = modules.entry(p.module).or_default();
            e.0 = e.0.max(used);
            e.1.push(p);
        }
        for (module, (_, files)) in least_recently_used_first(modules) {
            if size <= target {
                break;
            }
            for f in files {
                if remove(&f.path) {
                    size = size.saturating_sub(f.bytes);
                }
                if let Some(name) = f.path.file_name() {
                    remove(&dir.join("hashes").join(name)); // its verification memo
                }
            }
            c.forget_module(&module);
            r.modules_removed += 1;
        }
    }
    r.bytes_after = disk_usage(dir);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("500"), Some(500));
        assert_eq!(parse_size("4K"), Some(4096));
        assert_eq!(parse_size("500M"), Some(500 << 20));
        assert_eq!(parse_size(" 2g "), Some(2 << 30));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("3TB"), Some(3 << 40));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("99999999999T"), None, "overflow is refused");
    }

    #[test]
    fn collection_removes_the_least_recently_used_modules_down_to_80_percent() {
        assert_eq!(collection_target(1000), 800);
        let order = least_recently_used_first([("b", (30, ())), ("a", (10, ())), ("c", (20, ()))]);
        let names: Vec<&str> = order.iter().map(|(m, _)| *m).collect();
        assert_eq!(names, ["a", "c", "b"]);
    }
}
