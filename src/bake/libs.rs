//! The shared libraries a program needs, found as the dynamic loader finds them, without
//! running it: a name with a slash is a path; otherwise DT_RPATH (of an object without
//! DT_RUNPATH), LD_LIBRARY_PATH, DT_RUNPATH, `/etc/ld.so.cache`, then the default
//! directories, taking the first x86-64 ELF file found. `$ORIGIN` stands for the directory of
//! the object that needs the library.

use super::elf::ElfFacts;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the loader looks last.
const DEFAULT_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];
/// The loader cache (the format glibc 2.32 and later writes).
const LD_SO_CACHE: &str = "/etc/ld.so.cache";
const CACHE_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// A cache entry's flags for an x86-64 (`FLAG_X8664_LIB64`) ELF library (`FLAG_ELF_LIBC6`).
const CACHE_X86_64: i32 = 0x0303;

pub struct Resolver {
    /// Library name to path, as the loader cache lists them (the first of each name).
    cached: HashMap<String, PathBuf>,
    library_path: Vec<String>,
}

impl Resolver {
    pub fn new() -> Resolver {
        let cached = std::fs::read(LD_SO_CACHE)
            .map(|b| read_ld_so_cache(&b))
            .unwrap_or_default();
        let library_path = std::env::var("LD_LIBRARY_PATH")
            .map(|p| {
                p.split([':', ';'])
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Resolver { cached, library_path }
    }

    /// The file library `name` resolves to for the object at `needer`, described by `facts`.
    pub fn find(&self, name: &str, needer: &Path, facts: &ElfFacts) -> Option<PathBuf> {
        if name.contains('/') {
            return Some(PathBuf::from(name)).filter(|p| is_x86_64_elf(p));
        }
        let origin = needer.parent().unwrap_or(Path::new("/")).to_string_lossy().into_owned();
        let expand = |d: &String| PathBuf::from(d.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin));
        let rpath = if facts.runpath.is_empty() {
            &facts.rpath[..]
        } else {
            &[]
        };
        let dirs = (rpath.iter().chain(&self.library_path).chain(&facts.runpath)).map(expand);
        let searched = dirs.map(|d| d.join(name)).find(|p| is_x86_64_elf(p));
        let cached = || self.cached.get(name).filter(|p| is_x86_64_elf(p)).cloned();
        let default = || {
            (DEFAULT_DIRS.iter())
                .map(|d| Path::new(d).join(name))
                .find(|p| is_x86_64_elf(p))
        };
        searched.or_else(cached).or_else(default)
    }
}

/// Whether `path` is a regular x86-64 ELF file (64-bit, little-endian).
pub fn is_x86_64_elf(path: &Path) -> bool {
    let mut head = [0u8; 20];
    let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
    read.is_ok() && head[..4] == *b"\x7fELF" && head[4] == 2 && head[5] == 1 && head[18..20] == [62, 0]
}

/// The x86-64 libraries a loader cache lists, by name (the first entry of each).
fn read_ld_so_cache(b: &[u8]) -> HashMap<String, PathBuf> {
    let mut libs = HashMap::new();
    let Some(start) = b.windows(CACHE_MAGIC.len()).position(|w| w == CACHE_MAGIC) else {
        return libs;
    };
    let u32_at = |at: usize| {
        b.get(at..at + 4)
            .map(|w| u32::from_le_bytes(w.try_into().unwrap_or_default()))
    };
    let string_at = |at: u32| {
        let s = b.get(at as usize..)?;
        let end = s.iter().position(|&c| c == 0)?;
        Some(String::from_utf8_lossy(&s[..end]).into_owned())
    };
    let Some(count) = u32_at(start + 20) else { return libs };
    for i in 0..count as usize {
        let entry = start + 48 + 24 * i;
        let (Some(flags), Some(key), Some(value)) = (u32_at(entry), u32_at(entry + 4), u32_at(entry + 8)) else {
            break;
        };
        if flags as i32 != CACHE_X86_64 {
            continue;
        }
        if let (Some(name), Some(path)) = (string_at(key), string_at(value)) {
            libs.entry(name).or_insert_with(|| PathBuf::from(path));
        }
    }
    libs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_cache_lists_the_c_library() {
        if !Path::new(LD_SO_CACHE).exists() {
            return; // a host without a loader cache (not a glibc system)
        }
        let r = Resolver::new();
        let libc = r.cached.get("libc.so.6").expect("libc.so.6 in the loader cache");
        assert!(is_x86_64_elf(libc), "{}", libc.display());
    }
}
