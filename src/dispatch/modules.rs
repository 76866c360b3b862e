//! The modules guest code comes from (the executable, the dynamic loader, shared libraries),
//! identified by the blake3 hash of their file the first time their code runs, their cached
//! units taken from the cache, and the per-module use recorded in the cache's usage log.

use super::{Engine, Module};
use crate::cache::{self, file_name, usage};
use cache_format::{CodeRange, Hash, ModuleCode, ModuleOffset};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// An executable mapping: [lo, hi) and its module (None when Kiln could not identify it).
pub(super) type Lib = (u64, u64, Option<Module>);

/// How this run used one module.
#[derive(Default, Clone)]
struct ModuleUse {
    name: String,
    loaded: u64,
    hits: u64,
}

/// The process's modules (shared by its threads, in the `Registry`).
#[derive(Default, Clone)]
pub(super) struct Modules {
    /// Modules other than the main one holding code, found as the guest runs their code.
    pub libs: Vec<Lib>,
    usage: HashMap<Hash, ModuleUse>,
    /// Where each module's code lies in its file (handed to the service with the run's work).
    pub files: HashMap<Hash, ModuleCode>,
    /// Module ranges whose pages changed since the module was found: their units are checked
    /// against the guest's bytes even where the pages look unchanged.
    untrusted: Vec<(u64, u64)>,
}

impl Modules {
    /// Whether units in [rip, rip+len) may go unchecked on unchanged pages.
    pub fn trusted(&self, rip: u64, len: u64) -> bool {
        !self.untrusted.iter().any(|&(lo, hi)| rip < hi && rip + len > lo)
    }

    pub fn untrust(&mut self, lo: u64, hi: u64) {
        if !self.untrusted.contains(&(lo, hi)) {
            self.untrusted.push((lo, hi));
        }
    }

    /// Untrusts the modules (`main` or a library) holding any of the changed `pages`; a
    /// library's mapping is forgotten, so that whatever is mapped there now is identified
    /// afresh (its units are then checked against the guest's bytes).
    pub fn untrust_pages(&mut self, main: Module, pages: &[u64]) {
        let hit = |lo: u64, hi: u64| {
            pages
                .iter()
                .any(|&n| n * crate::mem::PAGE < hi && (n + 1) * crate::mem::PAGE > lo)
        };
        let mut ranges: Vec<(u64, u64)> = (self.libs.iter())
            .map(|&(lo, hi, _)| (lo, hi))
            .filter(|&(lo, hi)| hit(lo, hi))
            .collect();
        self.libs.retain(|&(lo, hi, _)| !hit(lo, hi));
        if hit(main.lo, main.hi) {
            ranges.push((main.lo, main.hi));
        }
        for (lo, hi) in ranges {
            self.untrust(lo, hi);
        }
    }

    /// Counts a cache hit in its module (if Kiln knows the module).
    pub fn count_hit(&mut self, module: Option<Module>) {
        if let Some(m) = module {
            self.usage.entry(m.hash).or_default().hits += 1;
        }
    }
}

/// The module holding guest code at [rip, rip+len): the main one or a library, if known.
pub(super) fn module_in(main: Module, modules: &Modules, rip: u64, len: u64) -> Option<Module> {
    let inside = |lo: u64, hi: u64| rip >= lo && rip.saturating_add(len) <= hi;
    if inside(main.lo, main.hi) {
        return Some(main);
    }
    (modules.libs.iter().rev())
        .find(|(lo, hi, _)| inside(*lo, *hi))
        .and_then(|(_, _, m)| *m)
}

impl Engine {
    /// The module holding guest code at [rip, rip+len), if Kiln knows it.
    pub(super) fn module_of(&self, rip: u64, len: u64) -> Option<Module> {
        module_in(self.shared.module, &self.shared.registry.lock().modules, rip, len)
    }

    /// Identifies the executable file mapping holding `rip` (first time its code runs) and
    /// loads that module's cached units.
    pub(super) fn discover_module(&mut self, rip: u64) {
        let known = |e: &Engine| {
            let r = e.shared.registry.lock();
            r.modules.libs.iter().any(|(lo, hi, _)| rip >= *lo && rip < *hi)
        };
        if known(self) {
            return;
        }
        let found = {
            let maps = self.proc.exec_maps.lock().unwrap_or_else(|e| e.into_inner());
            maps.iter().rev().find(|m| rip >= m.start && rip < m.end).cloned()
        };
        let Some(map) = found else {
            return;
        };
        let (start, end, off, path) = (map.start, map.end, map.offset, map.path);
        // The file at the path now must be the one mapped (not a replacement renamed there).
        // Offsets in a module are its ELF virtual addresses, as for the program and its
        // interpreter (`cli/run.rs`), whichever way it was found: a program that is not
        // position independent, mapped by an interpreter run as the program, has the same
        // units at the same offsets as when the kernel maps it.
        let identified = self.cache.as_ref().and_then(|dir| {
            use std::os::unix::fs::MetadataExt;
            let f = std::fs::File::open(&path).ok()?;
            let md = f.metadata().ok()?;
            if (md.dev(), md.ino()) != map.file_id {
                return None;
            }
            // One mapping serves both: the ELF headers, and the bytes to hash where the memo
            // has no hash yet.
            let map = crate::mem::MappedFile::map(&f).ok();
            let bytes = map.as_ref().map(|m| m.bytes());
            let delta = bytes.map_or(0, |b| crate::loader::vaddr_delta_at(b, off));
            Some((cache::memo::file_hash(dir, &f, bytes)?, delta))
        });
        let module = identified.map(|(hash, delta)| Module {
            hash,
            load_bias: start.wrapping_sub(off).wrapping_sub(delta),
            lo: start,
            hi: end,
        });
        // Another thread may have identified it meanwhile.
        if known(self) {
            return;
        }
        if let Some(m) = &module {
            self.name_module(m.hash, Path::new(&path));
            self.record_module_file(*m, &path, &[(start - m.load_bias, off, end - start)]);
        }
        self.shared.registry.lock().modules.libs.push((start, end, module));
        if let (Some(m), Some(dir)) = (module, self.cache.clone()) {
            self.load_cache(&dir, &m);
        }
    }

    /// Takes the module's cached units (checked against the guest's bytes at first use).
    pub(super) fn load_cache(&mut self, dir: &Path, module: &Module) {
        let Some(config) = &self.shared.config else {
            return;
        };
        let loaded = cache::load::load_module(dir, &module.hash, config);
        self.stats.cache_rejected += loaded.rejected;
        let count = loaded.units.len() as u64;
        self.stats.units_loaded += count;
        // Units are position-independent: they serve the module wherever it is loaded.
        let units = Arc::new(loaded.units);
        let prefill = self.prefill_of(module, &units);
        // A unit outside the prefill lies where the module file's bytes may not be: a link
        // to it would skip the check of its bytes.
        if prefill.as_ref().map_or(0, |p| p.count) != units.len() {
            self.shared.registry.forbid_links();
        }
        let mut registry = self.shared.registry.lock();
        registry.modules.usage.entry(module.hash).or_default().loaded += count;
        if let Some(p) = prefill {
            self.shared.registry.add_prefill(&mut registry, p);
        }
        registry.cached.add_module(module, units);
    }

    /// Records where `module`'s code lies in its file `path`: `code` holds (module offset, file
    /// offset, length) ranges.
    pub fn record_module_file(&mut self, module: Module, path: &Path, code: &[(u64, u64, u64)]) {
        use std::os::unix::ffi::OsStrExt;
        let mut registry = self.shared.registry.lock();
        let file = registry.modules.files.entry(module.hash).or_insert_with(|| ModuleCode {
            module: module.hash,
            path: path.as_os_str().as_bytes().to_vec(),
            load_base: module.load_bias,
            ranges: Vec::new(),
        });
        for &(offset, file_offset, len) in code {
            let r = CodeRange {
                offset: ModuleOffset(offset),
                file_offset,
                len,
            };
            if !file.ranges.contains(&r) {
                file.ranges.push(r);
            }
        }
    }

    /// Names a module for the usage statistics (by its file name).
    pub fn name_module(&mut self, hash: Hash, path: &Path) {
        let mut registry = self.shared.registry.lock();
        registry.modules.usage.entry(hash).or_default().name = file_name(path);
    }

    /// Appends this run's record to the cache's usage log (runs that use the cache only).
    pub fn record_usage(&self, program: &Path, wall: std::time::Duration) {
        let Some(dir) = &self.cache else { return };
        let registry = self.shared.registry.lock();
        let modules = registry
            .modules
            .usage
            .iter()
            .filter(|(_, u)| u.loaded > 0 || u.hits > 0)
            .map(|(h, u)| usage::ModuleUse {
                hash: cache::hex(h),
                name: u.name.clone(),
                loaded: u.loaded,
                hits: u.hits,
            })
            .collect();
        let s = &self.stats;
        let r = usage::RunRecord {
            t: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            program: cache::hex(&self.shared.module.hash),
            name: file_name(program),
            wall_us: wall.as_micros() as u64,
            insns_interp: s.guest_insns_interp,
            insns_compiled: s.guest_insns_compiled,
            hits: s.cache_hits,
            misses: s.cache_misses,
            compiled: s.units_compiled,
            compile_us: s.compile_us,
            modules,
            baked: false,
        };
        usage::append(dir, &r);
    }
}
