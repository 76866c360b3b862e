//! The persistent translation cache, first form: a sled database in the cache directory,
//! one entry per compiled unit, keyed by (module hash, config id, offset in module).
//! Damaged or foreign entries are skipped (and later overwritten), never executed.

pub mod bundle;
pub mod gc;
pub mod journal;
pub mod load;
pub mod memo;
pub mod usage;

use crate::mem::MappedFile;
use cache_format::{ConfigId, Hash, ModuleOffset, PackUnit, UnitEntry, UnitKey};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache directory {0}: {1}")]
    Dir(PathBuf, String),
    #[error("cache index {0}: {1}")]
    Index(PathBuf, String),
}

/// The cache directory: `KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("KILN_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    user_dir()
}

/// The user's own cache directory (`$XDG_CACHE_HOME/kiln` or `~/.cache/kiln`), whatever
/// `KILN_CACHE_DIR` says.
pub fn user_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(x).join("kiln"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("kiln"))
}

/// Creates the directory 0700 and refuses one owned by another user or writable by others.
pub fn prepare_dir(dir: &Path) -> Result<(), CacheError> {
    let err = |m: String| CacheError::Dir(dir.to_path_buf(), m);
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err(e.to_string()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| err(e.to_string()))?;
    }
    let md = std::fs::metadata(dir).map_err(|e| err(e.to_string()))?;
    let me = rustix::process::geteuid().as_raw();
    if md.uid() != me {
        return Err(err(format!(
            "owned by uid {}, not by this user (uid {me}); not using it",
            md.uid()
        )));
    }
    if md.mode() & 0o022 != 0 {
        return Err(err(format!(
            "is group- or world-writable (mode {:o}); not using it",
            md.mode() & 0o777
        )));
    }
    Ok(())
}

/// Totals reported by `kiln cache stats`.
#[derive(Default, serde::Serialize)]
pub struct Summary {
    pub modules: u64,
    pub configs: u64,
    pub units: u64,
    pub guest_insns: u64,
    pub code_bytes: u64,
    /// Units of the packs that warm runs entered (laid out first), and their code's bytes.
    pub entered_units: u64,
    pub entered_code_bytes: u64,
    pub packs: u64,
    pub pack_bytes: u64,
    pub journals: u64,
    /// Units compiled but not yet folded into a pack.
    pub unpacked: u64,
}

pub struct Cache {
    db: sled::Db,
    pub dir: PathBuf,
}

/// A unit read from the cache, verified against its checksum.
pub struct LoadedUnit {
    pub offset: ModuleOffset,
    pub entry: UnitEntry,
}

impl Cache {
    pub fn open(dir: &Path) -> Result<Cache, CacheError> {
        prepare_dir(dir)?;
        let path = dir.join("index.sled");
        let open = || sled::Config::new().path(&path).mode(sled::Mode::LowSpace).open();
        let db = match open() {
            Ok(db) => db,
            Err(sled::Error::Corruption { .. }) | Err(sled::Error::Unsupported(_)) => {
                // A damaged index is moved aside (never deleted: a person may want to look at
                // it) and rebuilt empty.
                let aside = dir.join(format!("index.sled.damaged-{}-{}", stamp(), std::process::id()));
                crate::klog!(
                    "cache",
                    "index {} is damaged; moving it to {} and starting afresh",
                    path.display(),
                    aside.display()
                );
                std::fs::rename(&path, &aside).map_err(|e| CacheError::Index(path.clone(), e.to_string()))?;
                open().map_err(|e| CacheError::Index(path.clone(), e.to_string()))?
            }
            Err(e) => return Err(CacheError::Index(path.clone(), e.to_string())),
        };
        Ok(Cache {
            db,
            dir: dir.to_path_buf(),
        })
    }

    /// Adds `new` units to a module's pack and folds in the index's entries for it: the old
    /// pack's units, the index's and the new ones (newer win) are written to a temporary file, synced, and renamed into place;
    /// then the folded entries leave the index. Callers hold the index (its lock serialises
    /// every writer of packs), so no run's work is lost; a crash before the rename leaves the
    /// entries in the index for the next fold.
    /// `stub` is the link stub of the new pack (`cache_format::encode_pack`); without one, units
    /// with links are left out.
    pub fn write_pack(
        &self,
        module: &Hash,
        config: &ConfigId,
        new: &[(UnitKey, UnitEntry)],
        entered: &std::collections::BTreeSet<ModuleOffset>,
        stub: &[u8],
    ) -> Result<(), CacheError> {
        let path = pack_path(&self.dir, module, config);
        let old = std::fs::read(&path).ok();
        let old = old.and_then(|b| cache_format::decode_pack(&b, module, config).ok());
        let has_new = new.iter().any(|(k, _)| &k.module == module && &k.config == config);
        if old.is_none() && !has_new {
            return Ok(()); // entry marks of units no pack holds any more
        }
        let mut units: std::collections::BTreeMap<ModuleOffset, UnitEntry> =
            old.unwrap_or_default().into_iter().collect();
        for offset in entered {
            if let Some(u) = units.get_mut(offset) {
                u.entered = true;
            }
        }
        let mut folded = Vec::new();
        // A unit compiled again (for the pack, or as a region) is as hot as it was, and was
        // entered where it was.
        let mut put = |offset: ModuleOffset, e: UnitEntry| {
            let old = units.get(&offset);
            let heat = old.map_or(0, |old| old.heat).max(e.heat);
            let entered = old.is_some_and(|old| old.entered) || e.entered;
            units.insert(offset, UnitEntry { heat, entered, ..e });
        };
        for (k, v) in self.db.scan_prefix(UnitKey::prefix(module, config)).flatten() {
            if let (Some(key), Ok(e)) = (UnitKey::decode(&k), UnitEntry::decode(&v)) {
                put(key.offset, e);
            }
            folded.push(k);
        }
        for (k, e) in new.iter().filter(|(k, _)| &k.module == module && &k.config == config) {
            put(k.offset, e.clone());
        }
        let units: Vec<(ModuleOffset, UnitEntry)> = units
            .into_iter()
            .filter(|(_, e)| !stub.is_empty() || e.links.is_empty())
            .collect();
        let bytes = cache_format::encode_pack(module, config, &units, stub);
        let written = write_atomic(&self.dir.join("packs"), &path, &bytes)?;
        // The bytes just written end in their own checksum (`encode_pack`): the next run need
        // not hash the whole file to know it (a warm `python3 -c pass` took about 10 ms more
        // to hash its 36 MB of packs, on every first run after the service rewrote them).
        memo::record_pack_written(&self.dir, &path, &written, &bytes[bytes.len().saturating_sub(32)..]);
        // Runs execute the pack's code where it lies: in huge pages, far fewer TLB misses.
        if let Ok(f) = std::fs::File::open(&path) {
            crate::mem::MappedFile::cache_in_huge_pages(&f);
        }
        for k in folded {
            let _ = self.db.remove(k);
        }
        let _ = self.db.flush();
        Ok(())
    }

    /// All valid units of a module under a config; returns them and the number of damaged
    /// entries skipped (those are removed so the next store replaces them).
    pub fn load_module(&self, module: &Hash, config: &ConfigId) -> (Vec<LoadedUnit>, u64) {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for item in self.db.scan_prefix(UnitKey::prefix(module, config)) {
            let Ok((k, v)) = item else { continue };
            match (UnitKey::decode(&k), UnitEntry::decode(&v)) {
                (Some(key), Ok(entry)) => out.push(LoadedUnit {
                    offset: key.offset,
                    entry,
                }),
                _ => bad.push(k),
            }
        }
        for k in &bad {
            let _ = self.db.remove(k);
        }
        (out, bad.len() as u64)
    }

    pub fn store(&self, units: &[(UnitKey, UnitEntry)]) -> Result<(), CacheError> {
        let mut batch = sled::Batch::default();
        for (k, e) in units {
            batch.insert(&k.encode()[..], e.encode());
        }
        let path = self.dir.join("index.sled");
        self.db
            .apply_batch(batch)
            .map_err(|e| CacheError::Index(path.clone(), e.to_string()))?;
        self.db.flush().map_err(|e| CacheError::Index(path, e.to_string()))?;
        Ok(())
    }

    /// Verifies every entry of the index and every pack; returns (valid, damaged) counts.
    pub fn verify(&self) -> (u64, u64) {
        let mut ok = 0;
        let mut bad = 0;
        for p in list_packs(&self.dir) {
            match p.units {
                Some(u) => ok += u.len() as u64,
                None => bad += 1,
            }
        }
        for item in self.db.iter() {
            match item {
                Ok((k, v)) if UnitKey::decode(&k).is_some() && UnitEntry::decode(&v).is_ok() => ok += 1,
                _ => bad += 1,
            }
        }
        (ok, bad)
    }

    /// What the cache holds: units in packs and still in the index, by module and config, code
    /// bytes, and journals still waiting to be merged.
    pub fn summary(&self) -> Summary {
        let mut modules = std::collections::BTreeSet::new();
        let mut configs = std::collections::BTreeSet::new();
        let mut s = Summary::default();
        for p in list_packs(&self.dir) {
            s.packs += 1;
            s.pack_bytes += p.bytes;
            let Some(units) = p.units else { continue };
            modules.insert(p.module);
            configs.insert(p.config.0);
            for u in units {
                s.units += 1;
                s.code_bytes += u.code_len as u64;
                s.guest_insns += u.ninsns as u64;
                if u.entered {
                    s.entered_units += 1;
                    s.entered_code_bytes += u.code_len as u64;
                }
            }
        }
        for (k, v) in self.db.iter().flatten() {
            let Some(key) = UnitKey::decode(&k) else { continue };
            modules.insert(key.module);
            configs.insert(key.config.0);
            s.units += 1;
            s.unpacked += 1;
            if let Ok(e) = UnitEntry::decode(&v) {
                s.code_bytes += e.code.len() as u64;
                s.guest_insns += e.ninsns as u64;
            }
        }
        s.modules = modules.len() as u64;
        s.configs = configs.len() as u64;
        s.journals = journal::pending_journals(&self.dir).len() as u64;
        s
    }

    /// Removes every index entry of a module (under any config).
    pub fn forget_module(&self, module: &Hash) {
        for k in self.db.scan_prefix(module).keys().flatten() {
            let _ = self.db.remove(k);
        }
        let _ = self.db.flush();
    }

    pub fn clear(&self) -> Result<(), CacheError> {
        self.db
            .clear()
            .map_err(|e| CacheError::Index(self.dir.clone(), e.to_string()))?;
        self.db
            .flush()
            .map_err(|e| CacheError::Index(self.dir.clone(), e.to_string()))?;
        Ok(())
    }
}

/// Nanoseconds since the Unix epoch: what names temporary files, journals and moved-aside
/// indexes apart.
pub fn stamp() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The last component of a path as text ("" if it has none).
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The pack file of a (module, config).
pub fn pack_path(dir: &Path, module: &Hash, config: &ConfigId) -> PathBuf {
    dir.join("packs")
        .join(format!("{}-{}.pack", hex(module), hex(&config.0)))
}

/// A module's pack, mapped read-only and checked.
pub struct Pack {
    pub map: MappedFile,
    pub units: Vec<PackUnit>,
}

/// Maps and checks a module's pack without touching the index (any number of runs at once).
/// None when there is no pack or it is damaged (the caller falls back to the index).
pub fn read_pack(dir: &Path, module: &Hash, config: &ConfigId) -> Option<Pack> {
    let map = map_pack(dir, module, config)?;
    let units = cache_format::decode_pack_index_checked(map.bytes(), module, config, false);
    match units {
        Ok(units) => Some(Pack { map, units }),
        Err(e) => {
            crate::klog!("cache", "pack for this module is damaged ({e}); using the index");
            None
        }
    }
}

/// Maps a module's pack and checks its header and checksum (the checksum once per version of
/// the file, as the memo says), leaving its records to be read where they lie
/// (`cache_format::PackIndex`). None when there is no pack or it is damaged.
pub fn map_pack(dir: &Path, module: &Hash, config: &ConfigId) -> Option<MappedFile> {
    let path = pack_path(dir, module, config);
    let f = std::fs::File::open(&path).ok()?;
    let map = map_with_entry_marks(&f)?;
    map.prefer_huge_pages();
    let b = map.bytes();
    let sum: Hash = b[b.len().saturating_sub(32)..].try_into().ok()?;
    let before = f.metadata().ok()?;
    let verified = memo::pack_verified(dir, &path, &before, &sum);
    match cache_format::PackIndex::open(b, module, config, !verified) {
        Ok(_) => {
            if !verified {
                memo::record_pack_verified(dir, &path, &f, &before, &sum);
            }
            Some(map)
        }
        Err(e) => {
            crate::klog!("cache", "pack for this module is damaged ({e}); using the index");
            None
        }
    }
}

/// A pack mapped with its entry marks after it (`cache_format::pack_entry_marks`, from its
/// header, which is checked with the rest once mapped).
fn map_with_entry_marks(f: &std::fs::File) -> Option<MappedFile> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata().ok()?.len() as usize;
    let mut head = [0u8; cache_format::PACK_HEAD];
    f.read_exact_at(&mut head, 0).ok()?;
    let (at, marks) = cache_format::pack_entry_marks(len, &head);
    MappedFile::map_with_tail(f, len, at, marks).ok()
}

/// Writes `bytes` to `path` whole or not at all: a temporary file in `dir`, synced, renamed.
/// Returns the metadata of the file written, as it was once renamed.
pub fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<std::fs::Metadata, CacheError> {
    write_atomic_with(dir, path, |f| std::io::Write::write_all(f, bytes))
}

/// Like `write_atomic`, with the contents streamed by `write` (through a buffer).
pub fn write_atomic_with(
    dir: &Path,
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<std::fs::Metadata, CacheError> {
    use std::io::Write;
    let err = |e: std::io::Error| CacheError::Dir(dir.to_path_buf(), e.to_string());
    // `dir` alone, never its parents: a cache directory removed while a run, its hand-over
    // or the service was writing into it is not made again.
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(err(e)),
        _ => {}
    }
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), stamp()));
    let r = (|| {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        write(&mut f)?;
        f.flush()?;
        f.get_ref().sync_all()?;
        std::fs::rename(&tmp, path)?;
        // From the open file, which stays this one whoever replaces the path next; after the
        // rename, which changes its ctime.
        f.get_ref().metadata()
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.map_err(err)
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// One file in `packs/`, checked.
pub struct PackFile {
    pub path: PathBuf,
    pub module: Hash,
    pub config: ConfigId,
    pub bytes: u64,
    /// Its units; None when the file is damaged, misnamed or of another format version.
    pub units: Option<Vec<PackUnit>>,
}

/// Every pack file (named `<module>-<config>.pack`), each checked.
pub fn list_packs(dir: &Path) -> Vec<PackFile> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir.join("packs")) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".pack") else {
            continue;
        };
        let parsed = stem.split_once('-').and_then(|(m, c)| {
            let (m, c) = (unhex(m)?, unhex(c)?);
            Some((<[u8; 32]>::try_from(m).ok()?, <[u8; 16]>::try_from(c).ok()?))
        });
        let (module, config) = parsed.unwrap_or(([0; 32], [0; 16]));
        let config = ConfigId(config);
        let bytes = e.metadata().map(|m| m.len()).unwrap_or(0);
        let units = parsed.and_then(|_| {
            let f = std::fs::File::open(e.path()).ok()?;
            let map = MappedFile::map(&f).ok()?;
            cache_format::decode_pack_index(map.bytes(), &module, &config).ok()
        });
        out.push(PackFile {
            path: e.path(),
            module,
            config,
            bytes,
            units,
        });
    }
    out
}
