//! Usage statistics: one record per run, appended to `usage.log` in the cache directory without
//! taking the index's lock (any number of runs at once). Each line is a checksum and a JSON
//! record; a torn or damaged line is skipped by readers. `kiln cache stats` aggregates them into
//! hit rates, last use and savings per program and per module, and `kiln cache gc` uses the
//! last use of each module.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub const LOG: &str = "usage.log";

/// How one run used one module's cached units.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ModuleUse {
    pub hash: String,
    pub name: String,
    pub loaded: u64,
    pub hits: u64,
}

/// What one run did.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RunRecord {
    /// Unix time at exit, milliseconds.
    pub t: u64,
    /// blake3 of the program's file (hex) and its file name.
    pub program: String,
    pub name: String,
    pub wall_us: u64,
    pub insns_interp: u64,
    pub insns_compiled: u64,
    pub hits: u64,
    pub misses: u64,
    pub compiled: u64,
    pub compile_us: u64,
    pub modules: Vec<ModuleUse>,
    /// Written by `kiln bake`, not by a run: the modules a program needs, baked (their last
    /// use for collection, and what `kiln cache export PROGRAM` takes); no run statistics.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub baked: bool,
}

impl RunRecord {
    /// The record `kiln bake` leaves for a program (its file's hash and name) at time `t`:
    /// the modules it needs, and no run statistics.
    pub fn baked(t: u64, program: String, name: String, modules: Vec<ModuleUse>) -> RunRecord {
        RunRecord {
            t,
            program,
            name,
            wall_us: 0,
            insns_interp: 0,
            insns_compiled: 0,
            hits: 0,
            misses: 0,
            compiled: 0,
            compile_us: 0,
            modules,
            baked: true,
        }
    }
}

/// The checksum lines written before FNV-1a had (blake3's first 16 hex digits), still read
/// (`kiln cache stats`, never a run) so that a log keeps its history across the change.
fn legacy_checksum(s: &str) -> String {
    blake3::hash(s.as_bytes()).to_hex()[..16].to_string()
}

fn checksum(s: &str) -> String {
    super::hex(&cache_format::fnv1a(s.as_bytes())[..8])
}

/// Appends a record (one `write` of one line to a file opened for appending).
pub fn append(dir: &Path, r: &RunRecord) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(json) = serde_json::to_string(r) else { return };
    let line = format!("{} {json}\n", checksum(&json));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.join(LOG));
    if let Ok(mut f) = f {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Every intact record, oldest first.
pub fn read(dir: &Path) -> Vec<RunRecord> {
    let Ok(bytes) = std::fs::read(dir.join(LOG)) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| {
            let (sum, json) = l.split_once(' ')?;
            (checksum(json) == sum || legacy_checksum(json) == sum).then(|| serde_json::from_str(json).ok())?
        })
        .collect()
}

/// Keeps the newest `keep` records (written whole to a new file renamed over the log; records
/// appended meanwhile by running processes may be lost, never the cache's code).
pub fn trim(dir: &Path, keep: usize) -> std::io::Result<()> {
    let recs = read(dir);
    if recs.len() <= keep {
        return Ok(());
    }
    let mut out = String::new();
    for r in &recs[recs.len() - keep..] {
        if let Ok(json) = serde_json::to_string(r) {
            out.push_str(&format!("{} {json}\n", checksum(&json)));
        }
    }
    super::write_atomic(dir, &dir.join(LOG), out.as_bytes())
        .map(|_| ())
        .map_err(std::io::Error::other)
}

/// Last use (Unix milliseconds) of each module (hex hash) that any run loaded or hit.
pub fn last_use(recs: &[RunRecord]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in recs {
        for u in &r.modules {
            let e = m.entry(u.hash.clone()).or_insert(0);
            *e = (*e).max(r.t);
        }
    }
    m
}

/// Per program: runs, hit rate, share of instructions in compiled code on runs that compiled
/// nothing, first and latest wall time, and the Cranelift time its cache hits saved (hits times
/// the mean compile time per unit measured over all runs).
#[derive(Serialize, Default, Debug)]
pub struct ProgramStats {
    pub name: String,
    pub hash: String,
    pub runs: u64,
    pub last_use: u64,
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: f64,
    pub warm_runs: u64,
    pub warm_compiled_share: f64,
    pub first_wall_ms: f64,
    pub last_wall_ms: f64,
    pub compile_ms_saved: f64,
}

/// Per module: which programs' runs hit its units.
#[derive(Serialize, Default, Debug)]
pub struct ModuleStats {
    pub name: String,
    pub hash: String,
    pub last_use: u64,
    pub hits: u64,
    pub programs: Vec<String>,
}

#[derive(Serialize, Default, Debug)]
pub struct UsageSummary {
    pub runs: u64,
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: f64,
    pub compile_us_per_unit: f64,
    pub programs: Vec<ProgramStats>,
    pub modules: Vec<ModuleStats>,
}

pub fn summarise(recs: &[RunRecord]) -> UsageSummary {
    let recs: Vec<&RunRecord> = recs.iter().filter(|r| !r.baked).collect();
    let (cu, cn) = recs
        .iter()
        .fold((0u64, 0u64), |(a, b), r| (a + r.compile_us, b + r.compiled));
    let per_unit = if cn == 0 { 0.0 } else { cu as f64 / cn as f64 };
    let rate = |h: u64, m: u64| if h + m == 0 { 0.0 } else { h as f64 / (h + m) as f64 };
    let mut progs: BTreeMap<String, ProgramStats> = BTreeMap::new();
    let mut warm_insns: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut mods: BTreeMap<String, (ModuleStats, BTreeSet<String>)> = BTreeMap::new();
    let mut s = UsageSummary {
        runs: recs.len() as u64,
        compile_us_per_unit: per_unit,
        ..Default::default()
    };
    for r in recs {
        s.hits += r.hits;
        s.misses += r.misses;
        let p = progs.entry(r.program.clone()).or_insert_with(|| ProgramStats {
            name: r.name.clone(),
            hash: r.program.clone(),
            first_wall_ms: r.wall_us as f64 / 1e3,
            ..Default::default()
        });
        p.runs += 1;
        p.last_use = p.last_use.max(r.t);
        p.hits += r.hits;
        p.misses += r.misses;
        p.last_wall_ms = r.wall_us as f64 / 1e3;
        if r.compiled == 0 && r.hits > 0 {
            p.warm_runs += 1;
            let w = warm_insns.entry(r.program.clone()).or_default();
            w.0 += r.insns_compiled;
            w.1 += r.insns_compiled + r.insns_interp;
        }
        for u in &r.modules {
            let (m, users) = mods.entry(u.hash.clone()).or_insert_with(|| {
                (
                    ModuleStats {
                        name: u.name.clone(),
                        hash: u.hash.clone(),
                        ..Default::default()
                    },
                    BTreeSet::new(),
                )
            });
            m.last_use = m.last_use.max(r.t);
            m.hits += u.hits;
            if u.hits > 0 {
                users.insert(r.name.clone());
            }
        }
    }
    s.hit_rate = rate(s.hits, s.misses);
    for (h, mut p) in progs {
        p.hit_rate = rate(p.hits, p.misses);
        p.compile_ms_saved = p.hits as f64 * per_unit / 1e3;
        if let Some((c, t)) = warm_insns.get(&h) {
            p.warm_compiled_share = if *t == 0 { 0.0 } else { *c as f64 / *t as f64 };
        }
        s.programs.push(p);
    }
    for (_, (mut m, users)) in mods {
        m.programs = users.into_iter().collect();
        s.modules.push(m);
    }
    s.modules
        .sort_by(|a, b| b.programs.len().cmp(&a.programs.len()).then(b.hits.cmp(&a.hits)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(t: u64) -> RunRecord {
        RunRecord {
            wall_us: 1,
            baked: false,
            ..RunRecord::baked(t, "00".into(), "prog".into(), Vec::new())
        }
    }

    /// Lines written now and lines written with the former checksum are read; a damaged line
    /// is not.
    #[test]
    fn reads_intact_lines_of_either_checksum() {
        let t = tempfile::tempdir().expect("temporary directory");
        append(t.path(), &record(1));
        let json = serde_json::to_string(&record(2)).expect("json");
        let legacy = format!("{} {json}\n", legacy_checksum(&json));
        let damaged = format!("{} {}\n", checksum(&json), json.replace("prog", "prof"));
        let mut log = std::fs::read_to_string(t.path().join(LOG)).expect("log");
        log.push_str(&legacy);
        log.push_str(&damaged);
        std::fs::write(t.path().join(LOG), log).expect("write");
        let times: Vec<u64> = read(t.path()).iter().map(|r| r.t).collect();
        assert_eq!(times, [1, 2]);
    }
}
