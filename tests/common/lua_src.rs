//! Where the Lua 5.4 C sources of the `lua-src` crate (a dev-dependency, so cargo has fetched
//! it) lie: shared by the test suites and the benchmark harness.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory of the Lua sources, found through `cargo metadata` run in `workspace`.
pub fn lua_sources_in(workspace: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Filtered to the host: without it cargo wants the manifests of every package in the lock
    // file, Windows-only ones too, which a build on Linux never downloads.
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform"])
        .arg(host_triple()?)
        .current_dir(workspace)
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("metadata JSON: {e}"))?;
    let manifest = meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "lua-src"))
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("lua-src is not in cargo metadata")?;
    let dir = Path::new(manifest)
        .parent()
        .ok_or("lua-src manifest has no directory")?
        .join("lua-5.4.9");
    if !dir.join("lvm.c").exists() {
        return Err(format!("no Lua sources in {}", dir.display()));
    }
    Ok(dir)
}

/// The host's target triple, as rustc names it.
fn host_triple() -> Result<String, String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .map_err(|e| format!("rustc -vV: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let host = text.lines().find_map(|l| l.strip_prefix("host: "));
    host.map(|h| h.trim().to_string())
        .ok_or_else(|| "no host line in rustc -vV".into())
}
