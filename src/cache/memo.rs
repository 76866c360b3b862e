//! Module hashes memoised by file identity, so a 30 MB `cc1` is not read and hashed on every run;
//! and packs verified whole, so a warm run does not hash every pack it maps.
//!
//! One small file per (device, inode) in `hashes/`, holding the file's size, mtime and ctime (in
//! nanoseconds) when it was hashed and the blake3 hash, followed by a checksum. A memo is used
//! only when all three still match: any write to the file changes its ctime, which no user can
//! set back. A damaged or stale memo is simply recomputed and replaced. A pack's memo is
//! `hashes/<pack file name>` (one per pack, replaced as the pack is rewritten) and holds the
//! pack's own checksum, which must also still end the file; the pack's writer records it as it
//! writes the file, the first run to map a pack without one records it once it verified it.

use cache_format::Hash;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const MAGIC: &[u8; 8] = b"KILNHASH";
const LEN: usize = 8 + 3 * 8 + 32 + CHECK;
/// The checksum's size (`cache_format::fnv1a`).
const CHECK: usize = 16;

/// What identifies one version of a file's contents.
fn identity(md: &std::fs::Metadata) -> [u64; 3] {
    let ns = |s: i64, n: i64| (s as u64).wrapping_mul(1_000_000_000).wrapping_add(n as u64);
    [
        md.size(),
        ns(md.mtime(), md.mtime_nsec()),
        ns(md.ctime(), md.ctime_nsec()),
    ]
}

fn memo_path(dir: &Path, md: &std::fs::Metadata) -> std::path::PathBuf {
    dir.join("hashes").join(format!("{:x}-{:x}", md.dev(), md.ino()))
}

/// The memo's checksum (FNV-1a, not blake3: see `cache_format::fnv1a`).
fn checksum(b: &[u8]) -> [u8; CHECK] {
    cache_format::fnv1a(b)
}

/// The memoised hash of the file `md` describes, if a valid memo exists.
fn lookup(dir: &Path, md: &std::fs::Metadata) -> Option<Hash> {
    lookup_at(&memo_path(dir, md), md)
}

fn lookup_at(path: &Path, md: &std::fs::Metadata) -> Option<Hash> {
    let b = std::fs::read(path).ok()?;
    if b.len() != LEN || &b[..8] != MAGIC || b[LEN - CHECK..] != checksum(&b[..LEN - CHECK]) {
        return None;
    }
    let id = identity(md);
    for (i, v) in id.iter().enumerate() {
        let o = 8 + 8 * i;
        if u64::from_le_bytes(b[o..o + 8].try_into().ok()?) != *v {
            return None;
        }
    }
    b[32..64].try_into().ok()
}

fn record(dir: &Path, md: &std::fs::Metadata, hash: &Hash) {
    record_at(dir, &memo_path(dir, md), md, hash)
}

fn record_at(dir: &Path, path: &Path, md: &std::fs::Metadata, hash: &Hash) {
    let mut b = Vec::with_capacity(LEN);
    b.extend_from_slice(MAGIC);
    for v in identity(md) {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(hash);
    let c = checksum(&b);
    b.extend_from_slice(&c);
    // Never the cache directory itself: one removed meanwhile (by a user, or a test's
    // temporary directory) must stay gone, whoever hashes a file.
    let hdir = dir.join("hashes");
    match std::fs::create_dir(&hdir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return,
        _ => {}
    }
    let tmp = hdir.join(format!(".tmp-{}-{:x}", std::process::id(), md.ino()));
    if std::fs::write(&tmp, &b).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The blake3 hash of the open file `f`, from the memo in the cache directory `dir` when the file
/// has not changed since it was hashed; `data` is the file's contents when the caller already
/// has them. A file that changes while it is hashed is not memoised.
pub fn file_hash(dir: &Path, f: &std::fs::File, data: Option<&[u8]>) -> Option<Hash> {
    let md = f.metadata().ok()?;
    if let Some(h) = lookup(dir, &md) {
        return Some(h);
    }
    let hash = match data {
        Some(d) => hash_bytes(d),
        None => {
            let mut h = blake3::Hasher::new();
            h.update_reader(f).ok()?;
            *h.finalize().as_bytes()
        }
    };
    match f.metadata() {
        Ok(after) if identity(&after) == identity(&md) => record(dir, &md, &hash),
        _ => {}
    }
    Some(hash)
}

/// Inputs from which `hash_bytes` hashes on every core.
const HASHED_IN_PARALLEL: usize = 4 << 20;

/// The blake3 hash of `data`. A large input (the program a cold run starts, hashed before any
/// compile keeps the other cores busy) is hashed on every core, by a pool of threads made for
/// it and gone after (the process's compile workers may not be started, and may be busy; a
/// pool that outlived the call would not survive a fork): `cc1`'s 33 MB took 25 ms on one core.
pub fn hash_bytes(data: &[u8]) -> Hash {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = (data.len() >= HASHED_IN_PARALLEL && cores > 1)
        .then(|| rayon::ThreadPoolBuilder::new().num_threads(cores).build().ok())
        .flatten();
    let mut h = blake3::Hasher::new();
    match pool {
        Some(pool) => pool.install(|| h.update_rayon(data)),
        None => h.update(data),
    };
    *h.finalize().as_bytes()
}

/// The memo of a pack: `hashes/<pack file name>`.
fn pack_memo_path(dir: &Path, pack: &Path) -> Option<std::path::PathBuf> {
    Some(dir.join("hashes").join(pack.file_name()?))
}

/// Whether the pack at `pack` (its metadata `md`, ending in the checksum `sum`) was verified
/// whole and has not changed since.
pub fn pack_verified(dir: &Path, pack: &Path, md: &std::fs::Metadata, sum: &[u8]) -> bool {
    pack_memo_path(dir, pack).is_some_and(|path| lookup_at(&path, md).is_some_and(|h| h[..] == *sum))
}

/// Records that the open pack `f` (at `pack`, ending in the checksum `sum`) verified whole, as
/// the file was when `before` was taken (before it was hashed); nothing if it changed since.
pub fn record_pack_verified(dir: &Path, pack: &Path, f: &std::fs::File, before: &std::fs::Metadata, sum: &[u8]) {
    let (Some(path), Ok(after), Ok(sum)) = (pack_memo_path(dir, pack), f.metadata(), Hash::try_from(sum)) else {
        return;
    };
    if identity(&after) == identity(before) {
        record_at(dir, &path, before, &sum);
    }
}

/// Records that the pack at `pack` (its metadata `md` as its writer left it, ending in the
/// checksum `sum`) holds what its writer checksummed: the writer computed `sum` over the very
/// bytes it wrote and synced, which is all that verifying the file whole would find.
pub fn record_pack_written(dir: &Path, pack: &Path, md: &std::fs::Metadata, sum: &[u8]) {
    if let (Some(path), Ok(sum)) = (pack_memo_path(dir, pack), Hash::try_from(sum)) {
        record_at(dir, &path, md, &sum);
    }
}

/// The blake3 hash of the running Kiln executable (`/proc/self/exe`: the file this process runs,
/// even if a rebuild replaced it since), memoised like a module's so a warm run does not read
/// the whole binary again. What produced the cached code is this binary, so its hash is what
/// keys the code (see `jit::Jit::config_id`).
pub fn own_executable_hash(dir: &Path) -> Option<Hash> {
    let f = std::fs::File::open("/proc/self/exe").ok()?;
    // A fresh cache directory (CI, tests, benchmarks) need not read the whole binary again:
    // the user's own cache directory memoises it too.
    let user = super::user_dir().filter(|u| u != dir && super::prepare_dir(u).is_ok());
    let Some(user) = user else {
        return file_hash(dir, &f, None);
    };
    let md = f.metadata().ok()?;
    if let Some(h) = lookup(dir, &md) {
        return Some(h);
    }
    let h = file_hash(&user, &f, None)?;
    record(dir, &md, &h);
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
        let t = tempfile::tempdir().expect("temporary directory");
        let file = t.path().join("module");
        std::fs::write(&file, b"guest code").expect("write");
        (t, file)
    }

    fn hash_of(dir: &Path, file: &Path) -> Option<Hash> {
        file_hash(dir, &std::fs::File::open(file).expect("open"), None)
    }

    #[test]
    fn the_hash_is_the_files_blake3_and_is_memoised() {
        let (t, file) = setup();
        let want = *blake3::hash(b"guest code").as_bytes();
        assert_eq!(hash_of(t.path(), &file), Some(want));
        // A memo that says otherwise is believed while the file is unchanged: it is used.
        let md = std::fs::metadata(&file).expect("metadata");
        record(t.path(), &md, &[7; 32]);
        assert_eq!(hash_of(t.path(), &file), Some([7; 32]));
    }

    #[test]
    fn a_changed_file_is_hashed_again() {
        let (t, file) = setup();
        let md = std::fs::metadata(&file).expect("metadata");
        record(t.path(), &md, &[7; 32]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, b"other code").expect("write");
        assert_eq!(hash_of(t.path(), &file), Some(*blake3::hash(b"other code").as_bytes()));
    }

    #[test]
    fn a_damaged_memo_is_ignored_and_replaced() {
        let (t, file) = setup();
        let md = std::fs::metadata(&file).expect("metadata");
        record(t.path(), &md, &[7; 32]);
        let memo = memo_path(t.path(), &md);
        let mut b = std::fs::read(&memo).expect("memo");
        b[40] ^= 1;
        std::fs::write(&memo, &b).expect("damage");
        let want = *blake3::hash(b"guest code").as_bytes();
        assert_eq!(hash_of(t.path(), &file), Some(want));
        assert_eq!(lookup(t.path(), &md), Some(want), "the memo was rewritten");
    }

    #[test]
    fn a_large_input_hashed_on_every_core_has_blake3s_hash() {
        for len in [
            HASHED_IN_PARALLEL - 1,
            HASHED_IN_PARALLEL,
            HASHED_IN_PARALLEL + 1025,
            33_342_568,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
            assert_eq!(hash_bytes(&data), *blake3::hash(&data).as_bytes(), "{len} bytes");
        }
    }

    #[test]
    fn the_own_executable_hash_is_the_running_binarys() {
        let t = tempfile::tempdir().expect("temporary directory");
        let exe = std::fs::read("/proc/self/exe").expect("read the test binary");
        let want = *blake3::hash(&exe).as_bytes();
        assert_eq!(own_executable_hash(t.path()), Some(want));
        assert_eq!(own_executable_hash(t.path()), Some(want), "from the memo");
    }
}
