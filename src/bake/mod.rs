//! `kiln bake`: compiles programs and the shared libraries they need ahead of time, from what
//! their files say, so that their first run starts warm. For each module (`elf`: entry points,
//! symbols, `.eh_frame` function starts, PLT entries, init and fini code, code addresses in
//! data; plus the units the cache holds from earlier runs) a recursive descent finds its code
//! (`discover`), the service's region former makes regions of it (`service::ModuleImage`,
//! every head a region, as for code that ran), a pool of one thread per core compiles them,
//! and they are written into the module's pack. Libraries are found as the dynamic loader
//! finds them (`libs`). Baking is deterministic: the same files and cache give the same packs.

mod discover;
mod elf;
mod libs;

use crate::cache::{self, journal, usage};
use crate::jit::Jit;
use crate::service::{compile_region, ModuleImage, Planned};
use cache_format::{CodeRange, ConfigId, EnteredUnits, Hash, ModuleCode, ModuleOffset, UnitEntry, UnitKey};
use elf::ElfFacts;
use rayon::prelude::*;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where a position-independent module's code is compiled for (its units serve it wherever
/// a run loads it).
const RELOCATED_BASE: u64 = 0x7f00_0000_0000;

/// What baking one module did.
#[derive(Debug, Default, serde::Serialize)]
pub struct ModuleBake {
    pub path: String,
    /// Function starts its file names (symbols and `.eh_frame`).
    pub functions: usize,
    pub blocks: usize,
    pub insns: u64,
    pub jump_tables: u64,
    pub regions: usize,
    /// Regions that could not be compiled (they run in the baseline tier).
    pub failed: usize,
    /// Guest instructions the regions translate (code in more than one region counts in each).
    pub translated_insns: u64,
    pub code_bytes: u64,
    pub pack_bytes: u64,
    pub seconds: f64,
    /// What could not be decoded: reason, blocks that stop there, the first address (in the
    /// file's virtual addresses) and bytes.
    pub undecoded: Vec<(String, u64, String)>,
}

/// What `kiln bake` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    pub modules: Vec<ModuleBake>,
    /// Libraries that were needed and not found: (name, the file that needs it).
    pub missing: Vec<(String, String)>,
    pub seconds: f64,
    /// The cache's size on disk after baking, and its cap (`KILN_CACHE_MAX`): over the cap,
    /// collection removes the least recently used modules, baked ones too.
    pub cache_bytes: u64,
    pub cap_bytes: u64,
}

/// Bakes `inputs` (programs, libraries, and directories of them) and the libraries they need
/// into the cache at `dir`, with a progress bar on a terminal.
pub fn bake(dir: &Path, inputs: &[PathBuf]) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let jit = Jit::new()?;
    let exe =
        cache::memo::own_executable_hash(dir).ok_or_else(|| anyhow::anyhow!("cannot hash Kiln's own executable"))?;
    let config = jit.config_id(&exe);
    let mut summary = Summary::default();
    let files = with_libraries(&input_files(inputs)?, &mut summary.missing)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // How many regions there are is known only once they are all formed.
    let bar = indicatif::ProgressBar::new_spinner().with_style(indicatif::ProgressStyle::with_template(
        "{spinner} {elapsed:>4} {pos} regions compiled ({per_sec})  {msg}",
    )?);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let baker = Baker {
        dir,
        config,
        jit,
        pool: rayon::ThreadPoolBuilder::new().num_threads(cores).build()?,
        bar,
    };
    let mut hashes: HashMap<PathBuf, Hash> = HashMap::new();
    for f in &files {
        let file = std::fs::File::open(&f.path)?;
        let hash = cache::memo::file_hash(dir, &file, None)
            .ok_or_else(|| anyhow::anyhow!("{}: cannot hash it", f.path.display()))?;
        if !hashes.values().any(|h| *h == hash) {
            baker.bar.set_message(file_name(&f.path));
            summary.modules.push(baker.bake_module(&f.path, &f.facts, hash)?);
        }
        hashes.insert(f.path.clone(), hash);
    }
    record_baked(dir, &files, &hashes);
    baker.bar.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    summary.cache_bytes = cache::gc::disk_usage(dir);
    summary.cap_bytes = cache::gc::max_bytes();
    Ok(summary)
}

/// What baking every module shares: the cache, the configuration and compiler, the pool
/// compiles run on, and the progress line.
struct Baker<'a> {
    dir: &'a Path,
    config: ConfigId,
    jit: Jit,
    pool: rayon::ThreadPool,
    bar: indicatif::ProgressBar,
}

impl Baker<'_> {
    /// Finds, compiles and writes the regions of one module.
    fn bake_module(&self, path: &Path, facts: &ElfFacts, module: Hash) -> anyhow::Result<ModuleBake> {
        use std::os::unix::ffi::OsStrExt;
        let started = Instant::now();
        let load_base = if facts.fixed { 0 } else { RELOCATED_BASE };
        let code = ModuleCode {
            module,
            path: path.as_os_str().as_bytes().to_vec(),
            load_base,
            ranges: (facts.code_ranges().into_iter())
                .map(|(vaddr, file_offset, len)| CodeRange {
                    offset: ModuleOffset(vaddr),
                    file_offset,
                    len,
                })
                .collect(),
        };
        let image = ModuleImage::open(self.dir, &code)
            .ok_or_else(|| anyhow::anyhow!("{}: changed while baking", path.display()))?;
        // What runs executed is code too (indirect targets no file names).
        let pack = cache::read_pack(self.dir, &module, &self.config);
        let units = pack.map(|p| p.units).unwrap_or_default();
        let seeds = facts.seeds.all().chain(units.iter().map(|u| u.offset.0));
        let found = discover::discover(facts, image.file_bytes(), load_base, seeds, |o| image.block_at(o));
        let none = BTreeSet::new();
        let mut out = Compiled::new(self.dir, module, self.config);
        let mut batch = Vec::new();
        let compile = |batch: &mut Vec<Planned>, out: &mut Compiled| {
            let entries: Vec<Option<UnitEntry>> = (self.pool).install(|| {
                (batch.par_iter())
                    .map(|p| compile_region(&self.jit, p, load_base))
                    .collect()
            });
            self.bar.inc(batch.len() as u64);
            out.add(batch.drain(..).zip(entries))
        };
        let mut written = Ok(());
        image.plan_each(&found.blocks, &found.entries, &units, (&none, &none), |p| {
            batch.push(p);
            if batch.len() == REGIONS_PER_BATCH && written.is_ok() {
                written = compile(&mut batch, &mut out);
            }
        });
        written?;
        compile(&mut batch, &mut out)?;
        out.write()?;
        let pack_bytes = std::fs::metadata(cache::pack_path(self.dir, &module, &self.config)).map_or(0, |m| m.len());
        Ok(ModuleBake {
            path: path.display().to_string(),
            functions: facts.seeds.functions.len(),
            blocks: found.blocks.len(),
            insns: found.insns,
            jump_tables: found.tables,
            regions: out.regions,
            failed: out.failed,
            translated_insns: out.insns,
            code_bytes: out.code_bytes,
            pack_bytes,
            seconds: started.elapsed().as_secs_f64(),
            undecoded: (found.stops.into_iter())
                .map(|(why, (n, at, bytes))| {
                    (
                        why,
                        n,
                        format!("{:#x}: {}", at.wrapping_sub(load_base), cache::hex(&bytes)),
                    )
                })
                .collect(),
        })
    }
}

/// Regions compiled at once (then their blocks are let go).
const REGIONS_PER_BATCH: usize = 1024;
/// Compiled code held before it is written into the pack.
const WRITE_EVERY_BYTES: u64 = 256 << 20;

/// A module's compiled units on their way into its pack, and their count.
struct Compiled<'a> {
    module: Hash,
    config: ConfigId,
    dir: &'a Path,
    pending: Vec<(UnitKey, UnitEntry)>,
    pending_bytes: u64,
    regions: usize,
    failed: usize,
    insns: u64,
    code_bytes: u64,
}

impl<'a> Compiled<'a> {
    fn new(dir: &'a Path, module: Hash, config: ConfigId) -> Compiled<'a> {
        Compiled {
            module,
            config,
            dir,
            pending: Vec::new(),
            pending_bytes: 0,
            regions: 0,
            failed: 0,
            insns: 0,
            code_bytes: 0,
        }
    }

    /// Takes compiled regions in, writing them once `WRITE_EVERY_BYTES` of code are held.
    fn add(&mut self, compiled: impl Iterator<Item = (Planned, Option<UnitEntry>)>) -> anyhow::Result<()> {
        for (p, entry) in compiled {
            self.regions += 1;
            let Some(e) = entry else {
                self.failed += 1;
                continue;
            };
            self.insns += u64::from(e.ninsns);
            self.code_bytes += e.code.len() as u64;
            self.pending_bytes += e.code.len() as u64;
            let key = UnitKey {
                module: self.module,
                config: self.config,
                offset: ModuleOffset(p.offset),
            };
            self.pending.push((key, e));
        }
        if self.pending_bytes >= WRITE_EVERY_BYTES {
            self.write()?;
        }
        Ok(())
    }

    /// Writes the units held into the module's pack.
    fn write(&mut self) -> anyhow::Result<()> {
        let stub = crate::jit::pack_link_stub();
        if !journal::write_entries(self.dir, self.config, &self.pending, &EnteredUnits::new(), 500, stub) {
            anyhow::bail!("cannot write a pack in {}", self.dir.display());
        }
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }
}

/// The files `inputs` name: files as given, and the x86-64 ELF files under directories.
fn input_files(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        let md = std::fs::metadata(input).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
        if md.is_dir() {
            let mut found = Vec::new();
            elf_files_under(input, &mut found);
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// The x86-64 ELF files under directory `dir`, recursively (not following links to
/// directories).
fn elf_files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => elf_files_under(&path, found),
            Ok(_) if libs::is_x86_64_elf(&path) => found.push(path),
            _ => {}
        }
    }
}

/// `files` and, in the order the loader would load them, the interpreters and libraries they
/// need (each file once, by its canonical path), with their facts. A named file that is not
/// an x86-64 ELF file is an error; needed libraries not found go to `missing`.
fn with_libraries(files: &[PathBuf], missing: &mut Vec<(String, String)>) -> anyhow::Result<Vec<ElfFile>> {
    let resolver = libs::Resolver::new();
    let mut out: Vec<ElfFile> = Vec::new();
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let mut todo: VecDeque<(PathBuf, bool)> = files.iter().map(|f| (f.clone(), true)).collect();
    while let Some((path, named)) = todo.pop_front() {
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        if !seen.insert(path.clone()) {
            continue;
        }
        let facts = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|data| ElfFacts::parse(&data));
        let facts = match facts {
            Ok(f) => f,
            Err(why) if named => anyhow::bail!("{}: {why}", path.display()),
            Err(_) => continue,
        };
        let mut needs: Vec<PathBuf> = facts.interp.iter().map(PathBuf::from).collect();
        for name in &facts.needed {
            match resolver.find(name, &path, &facts) {
                Some(lib) => needs.push(lib),
                None => missing.push((name.clone(), path.display().to_string())),
            }
        }
        let needs: Vec<PathBuf> = (needs.into_iter())
            .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
            .collect();
        todo.extend(needs.iter().map(|p| (p.clone(), false)));
        out.push(ElfFile {
            path,
            facts,
            named,
            needs,
        });
    }
    Ok(out)
}

/// A file to bake: its canonical path, its facts, whether the command line named it (or a
/// directory it named holds it), and the files it needs (interpreter and libraries).
struct ElfFile {
    path: PathBuf,
    facts: ElfFacts,
    named: bool,
    needs: Vec<PathBuf>,
}

/// Records, for each named file of `files`, the modules its runs would load (itself and
/// every file it needs, directly or not; `hashes` by path) in the usage log as baked: what
/// `kiln cache export PROGRAM` takes, and their last use for collection.
fn record_baked(dir: &Path, files: &[ElfFile], hashes: &HashMap<PathBuf, Hash>) {
    let by_path: HashMap<&Path, &ElfFile> = files.iter().map(|f| (f.path.as_path(), f)).collect();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    for f in files.iter().filter(|f| f.named) {
        let mut seen: BTreeSet<&Path> = BTreeSet::from([f.path.as_path()]);
        let mut todo = vec![f];
        while let Some(g) = todo.pop() {
            let next = g.needs.iter().filter_map(|p| by_path.get(p.as_path()));
            todo.extend(next.filter(|h| seen.insert(h.path.as_path())));
        }
        let modules = (seen.iter())
            .filter_map(|p| {
                Some(usage::ModuleUse {
                    hash: cache::hex(hashes.get(*p)?),
                    name: file_name(p),
                    loaded: 0,
                    hits: 0,
                })
            })
            .collect();
        let Some(program) = hashes.get(&f.path) else { continue };
        let record = usage::RunRecord::baked(t, cache::hex(program), file_name(&f.path), modules);
        usage::append(dir, &record);
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}
