//! `kiln cache`: statistics, verification, collection, clearing, and the journal merge a
//! detached compile re-executes.

use super::CacheOp;
use crate::cache::{self, bundle};
use anyhow::Context;
use cache_format::ConfigId;
use std::path::{Path, PathBuf};

pub(super) fn cache_cmd(op: CacheOp) -> anyhow::Result<i32> {
    if let CacheOp::Merge { journals } = &op {
        cache::journal::merge_journals(journals, crate::jit::pack_link_stub())?;
        return Ok(0);
    }
    let dir = cache::default_dir().context("no cache directory: set KILN_CACHE_DIR or HOME")?;
    match op {
        CacheOp::Export {
            out,
            sign,
            json,
            programs,
        } => return export(&dir, &out, sign.as_deref(), json, &programs),
        CacheOp::Import { file, trust, json } => return import(&dir, &file, &trust, json),
        CacheOp::Keygen { out } => {
            let public = bundle::generate_key(&out)?;
            println!("{}", cache::hex(public.as_bytes()));
            return Ok(0);
        }
        _ => {}
    }
    let c = open_waiting(&dir)?;
    let d = dir.display().to_string();
    match op {
        CacheOp::Stats { json } => {
            let s = c.summary();
            let u = cache::usage::summarise(&cache::usage::read(&dir));
            let bytes = cache::gc::disk_usage(&dir);
            // The running service's figures, else the last one's.
            let service = crate::service::client::status(&dir);
            if json {
                let mut v = serde_json::to_value(&s)?;
                v["dir"] = d.into();
                v["disk_bytes"] = bytes.into();
                v["max_bytes"] = cache::gc::max_bytes().into();
                v["usage"] = serde_json::to_value(&u)?;
                v["service"] = serde_json::to_value(&service)?;
                println!("{v}");
            } else {
                print_stats(&d, &s, &u, bytes);
                if let Some(st) = &service {
                    print!("{}", st.to_text());
                }
            }
        }
        CacheOp::Gc { json, max } => {
            let max = match max {
                Some(m) => cache::gc::parse_size(&m).with_context(|| format!("--max {m}: not a size"))?,
                None => cache::gc::max_bytes(),
            };
            let r = cache::gc::collect(&c, max);
            if json {
                let mut v = serde_json::to_value(&r)?;
                v["dir"] = d.into();
                println!("{v}");
            } else {
                println!(
                    "{d}: {} -> {} bytes (cap {}); removed {} invalid files and {} modules",
                    r.bytes_before, r.bytes_after, r.max_bytes, r.invalid_removed, r.modules_removed
                );
            }
        }
        CacheOp::Verify { json } => {
            let (ok, bad) = c.verify();
            if json {
                println!("{}", serde_json::json!({"dir": d, "valid": ok, "damaged": bad}));
            } else {
                println!("{d}: {ok} valid units, {bad} damaged");
            }
            return Ok(if bad == 0 { 0 } else { 1 });
        }
        CacheOp::Clear { json } => {
            c.clear()?;
            let _ = std::fs::remove_dir_all(dir.join("packs"));
            crate::dispatch::runtime::forget_code(&dir);
            if json {
                println!("{}", serde_json::json!({"dir": d, "cleared": true}));
            } else {
                println!("{d}: cleared");
            }
        }
        CacheOp::Merge { .. } | CacheOp::Export { .. } | CacheOp::Import { .. } | CacheOp::Keygen { .. } => {}
    }
    Ok(0)
}

/// The configuration id of this Kiln's translations (`jit::Jit::config_id`), which a bundle
/// is made for.
fn own_config(dir: &Path) -> anyhow::Result<ConfigId> {
    let jit = crate::jit::Jit::new()?;
    let exe = cache::memo::own_executable_hash(dir).context("cannot hash Kiln's own executable")?;
    Ok(jit.config_id(&exe))
}

/// `kiln cache export`.
fn export(dir: &Path, out: &Path, sign: Option<&Path>, json: bool, programs: &[PathBuf]) -> anyhow::Result<i32> {
    let config = own_config(dir)?;
    let key = sign.map(bundle::read_signing_key).transpose()?;
    let only = match programs {
        [] => None,
        _ => Some(bundle::modules_of_programs(dir, programs)?),
    };
    let e = bundle::export(dir, &config, only.as_ref(), out, key.as_ref())?;
    if json {
        let mut v = serde_json::to_value(&e)?;
        v["file"] = out.display().to_string().into();
        println!("{v}");
    } else {
        let signed = if e.signed { ", signed" } else { "" };
        println!(
            "{}: {} packs ({} units), {} bytes{signed}",
            out.display(),
            e.packs,
            e.units,
            e.bytes
        );
    }
    Ok(0)
}

/// `kiln cache import`: everything is checked before anything is written.
fn import(dir: &Path, file: &Path, trust: &[String], json: bool) -> anyhow::Result<i32> {
    let config = own_config(dir)?;
    let trust: Vec<_> = trust
        .iter()
        .map(|t| bundle::parse_public_key(t))
        .collect::<Result<_, _>>()?;
    let checked = bundle::check(file, &config, &trust)?;
    let c = open_waiting(dir)?;
    let done = bundle::import(&c, &checked, &config, crate::jit::pack_link_stub())?;
    if json {
        let mut v = serde_json::to_value(&done)?;
        v["dir"] = dir.display().to_string().into();
        v["signer"] = checked.signer.map(|k| cache::hex(&k)).into();
        println!("{v}");
    } else {
        println!(
            "{}: {} packs added, {} merged, {} unchanged; {} units added",
            dir.display(),
            done.packs_added,
            done.packs_merged,
            done.packs_unchanged,
            done.units_added
        );
    }
    Ok(0)
}

/// Opens the index, waiting up to ten seconds while a writer (the compile service, a run
/// writing synchronously) holds it.
fn open_waiting(dir: &std::path::Path) -> Result<cache::Cache, cache::CacheError> {
    let t = std::time::Instant::now();
    loop {
        match cache::Cache::open(dir) {
            Err(cache::CacheError::Index(..)) if t.elapsed() < std::time::Duration::from_secs(10) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// `kiln cache stats` as text.
fn print_stats(d: &str, s: &cache::Summary, u: &cache::usage::UsageSummary, bytes: u64) {
    println!(
        "{d}: {bytes} bytes on disk (cap {}); {} modules, {} configurations, {} units ({} guest \
         instructions, {} bytes of code, {} not yet packed; {} entered by runs, {} bytes of code); \
         {} packs ({} bytes); {} journals to merge",
        cache::gc::max_bytes(),
        s.modules,
        s.configs,
        s.units,
        s.guest_insns,
        s.code_bytes,
        s.unpacked,
        s.entered_units,
        s.entered_code_bytes,
        s.packs,
        s.pack_bytes,
        s.journals
    );
    println!(
        "{} runs recorded: {} cache hits, {} misses (hit rate {:.2}%); {:.0} us of Cranelift per unit compiled",
        u.runs,
        u.hits,
        u.misses,
        u.hit_rate * 100.0,
        u.compile_us_per_unit
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let ago = |t: u64| {
        let a = now.saturating_sub(t) / 1000;
        match a {
            0..=119 => format!("{a} s ago"),
            120..=7199 => format!("{} min ago", a / 60),
            7200..=172_799 => format!("{} h ago", a / 3600),
            _ => format!("{} days ago", a / 86400),
        }
    };
    if !u.programs.is_empty() {
        println!(
            "{:<20} {:>5} {:>9} {:>11} {:>10} {:>10} {:>15}  last use",
            "program", "runs", "hit rate", "warm cached", "first ms", "last ms", "compile saved"
        );
        for p in &u.programs {
            println!(
                "{:<20} {:>5} {:>8.2}% {:>10.2}% {:>10.1} {:>10.1} {:>12.0} ms  {}",
                p.name,
                p.runs,
                p.hit_rate * 100.0,
                p.warm_compiled_share * 100.0,
                p.first_wall_ms,
                p.last_wall_ms,
                p.compile_ms_saved,
                ago(p.last_use)
            );
        }
    }
    for m in u.modules.iter().filter(|m| m.programs.len() > 1) {
        println!(
            "module {} ({}...): {} hits from {} programs ({}), last used {}",
            m.name,
            &m.hash[..12],
            m.hits,
            m.programs.len(),
            m.programs.join(", "),
            ago(m.last_use)
        );
    }
}
