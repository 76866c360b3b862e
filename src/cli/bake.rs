//! `kiln bake`: compiles programs and their libraries into the cache ahead of time
//! (`crate::bake`), then prints what it did.

use crate::bake::{self, Summary};
use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub(super) struct BakeArgs {
    /// The cache directory (default: KILN_CACHE_DIR, XDG_CACHE_HOME/kiln or ~/.cache/kiln).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Programs, libraries, and directories of them (searched for x86-64 ELF files).
    #[arg(value_name = "PATH", required = true)]
    inputs: Vec<PathBuf>,
}

pub(super) fn bake_cmd(a: BakeArgs) -> anyhow::Result<i32> {
    let dir = match a.cache_dir {
        Some(d) => d,
        None => crate::cache::default_dir().context("no cache directory: set KILN_CACHE_DIR or HOME")?,
    };
    let summary = bake::bake(&dir, &a.inputs)?;
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(0)
}

fn print_summary(s: &Summary) {
    println!(
        "{:<40} {:>9} {:>9} {:>10} {:>7} {:>8} {:>7} {:>10} {:>7}",
        "module", "functions", "blocks", "insns", "tables", "regions", "failed", "pack MB", "secs"
    );
    for m in &s.modules {
        println!(
            "{:<40} {:>9} {:>9} {:>10} {:>7} {:>8} {:>7} {:>10.1} {:>7.1}",
            m.path,
            m.functions,
            m.blocks,
            m.insns,
            m.jump_tables,
            m.regions,
            m.failed,
            m.pack_bytes as f64 / 1e6,
            m.seconds
        );
    }
    let total = |f: fn(&bake::ModuleBake) -> u64| s.modules.iter().map(f).sum::<u64>();
    println!(
        "{} modules, {} functions, {} regions ({} failed), {:.1} MB of code, {:.1} MB of packs, {:.1} s",
        s.modules.len(),
        total(|m| m.functions as u64),
        total(|m| m.regions as u64),
        total(|m| m.failed as u64),
        total(|m| m.code_bytes) as f64 / 1e6,
        total(|m| m.pack_bytes) as f64 / 1e6,
        s.seconds
    );
    for m in &s.modules {
        for (why, n, first) in &m.undecoded {
            println!("not decoded in {}: {n} blocks stop at {why} (first at {first})", m.path);
        }
    }
    for (name, by) in &s.missing {
        println!("not found: {name} (needed by {by})");
    }
    // Collection keeps a cache at 80% of its cap.
    if s.cache_bytes * 10 > s.cap_bytes * 8 {
        println!(
            "the cache holds {:.1} MB of its cap of {:.1} MB: what goes over it is collected, baked code too (KILN_CACHE_MAX)",
            s.cache_bytes as f64 / 1e6,
            s.cap_bytes as f64 / 1e6
        );
    }
}
