//! Bundles (`kiln cache export` and `import`): the packs of one configuration in one file
//! (`cache_format::split_bundle` has the layout), signed with an ed25519 key when asked, and
//! merged into another cache only once every part of it was checked: its checksum, its
//! signature (and signer, where keys are trusted), its configuration and every pack whole. A
//! pack the cache already has keeps every unit it holds; the bundle adds only the units it
//! lacks, so an import never replaces newer translations with older ones.

use super::{list_packs, memo, pack_path, write_atomic, write_atomic_with, Cache, CacheError};
use cache_format::{ConfigId, Hash, ModuleOffset, UnitEntry, UnitKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum BundleFault {
    #[error("{0}: {1}")]
    Io(String, String),
    #[error("{0}: {1}")]
    Format(String, cache_format::BundleError),
    #[error("{0}: its signature does not match its contents")]
    BadSignature(String),
    #[error("{0}: unsigned, and keys are trusted (--trust): only bundles signed by one of them are taken")]
    Unsigned(String),
    #[error("{0}: signed by {1}, which is not a trusted key (--trust)")]
    Untrusted(String, String),
    #[error("{0}: made for configuration {1}, and this Kiln's is {2} (another build, host or CPU profile)")]
    OtherConfig(String, String, String),
    #[error("{0}: pack {1} of module {2}: {3}")]
    Pack(String, usize, String, String),
    #[error("{0}")]
    Cache(#[from] CacheError),
    #[error("key {0}: {1}")]
    Key(String, String),
}

/// What an export wrote.
#[derive(Debug, serde::Serialize)]
pub struct Exported {
    pub packs: usize,
    pub units: usize,
    pub bytes: u64,
    pub signed: bool,
}

/// Writes the packs of configuration `config` in cache directory `dir` to the bundle `out`
/// (whole or not at all), those of the modules in `only` where given, in module order, signed
/// with `key` where given.
pub fn export(
    dir: &Path,
    config: &ConfigId,
    only: Option<&BTreeSet<Hash>>,
    out: &Path,
    key: Option<&SigningKey>,
) -> Result<Exported, BundleFault> {
    let mut packs: Vec<(Hash, Vec<u8>, usize)> = list_packs(dir)
        .into_iter()
        .filter(|p| &p.config == config && p.units.is_some() && only.is_none_or(|m| m.contains(&p.module)))
        .filter_map(|p| {
            // Read again, whole, and checked again: the service may have rewritten it since.
            let bytes = std::fs::read(&p.path).ok()?;
            let units = cache_format::decode_pack_index(&bytes, &p.module, config).ok()?;
            Some((p.module, bytes, units.len()))
        })
        .collect();
    packs.sort_by_key(|p| p.0);
    let shown = out.display().to_string();
    let folder = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(|e| CacheError::Dir(folder.to_path_buf(), e.to_string()))?;
    write_atomic_with(folder, out, |f| {
        let mut h = blake3::Hasher::new();
        fn put(f: &mut dyn Write, h: &mut blake3::Hasher, b: &[u8]) -> std::io::Result<()> {
            h.update(b);
            f.write_all(b)
        }
        put(f, &mut h, &cache_format::bundle_head(config, packs.len() as u32))?;
        for (_, bytes, _) in &packs {
            put(f, &mut h, &(bytes.len() as u64).to_le_bytes())?;
            put(f, &mut h, bytes)?;
        }
        let digest = h.clone().finalize();
        let signature = key.map(|k| (k.verifying_key().to_bytes(), k.sign(digest.as_bytes()).to_bytes()));
        put(f, &mut h, &cache_format::signature_block(signature))?;
        f.write_all(h.finalize().as_bytes())
    })
    .map_err(|e| BundleFault::Io(shown, e.to_string()))?;
    Ok(Exported {
        packs: packs.len(),
        units: packs.iter().map(|p| p.2).sum(),
        bytes: std::fs::metadata(out).map_or(0, |m| m.len()),
        signed: key.is_some(),
    })
}

/// A pack of a checked bundle: its module, its bytes and how many units it holds (decoded
/// again only where it is merged into a pack the cache has, not held twice in memory).
struct CheckedPack {
    module: Hash,
    bytes: Vec<u8>,
    units: usize,
}

/// A bundle whose every part was checked (`check`).
pub struct Checked {
    packs: Vec<CheckedPack>,
    pub signer: Option<[u8; 32]>,
}

/// Reads the bundle at `path` and checks it for the configuration `config`: its framing and
/// checksum, its signature (made by one of `trust`, where any key is trusted) and every pack,
/// whole, as a pack of that configuration (each module once).
pub fn check(path: &Path, config: &ConfigId, trust: &[VerifyingKey]) -> Result<Checked, BundleFault> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| BundleFault::Io(name.clone(), e.to_string()))?;
    let parts = cache_format::split_bundle(&bytes).map_err(|e| BundleFault::Format(name.clone(), e))?;
    if let Some((key, sig)) = parts.signature {
        let valid = VerifyingKey::from_bytes(&key)
            .is_ok_and(|k| k.verify(&parts.signed_digest, &Signature::from_bytes(&sig)).is_ok());
        if !valid {
            return Err(BundleFault::BadSignature(name));
        }
    }
    match parts.signature {
        _ if trust.is_empty() => {}
        None => return Err(BundleFault::Unsigned(name)),
        Some((key, _)) if !trust.iter().any(|t| t.to_bytes() == key) => {
            return Err(BundleFault::Untrusted(name, super::hex(&key)));
        }
        Some(_) => {}
    }
    if &parts.config != config {
        return Err(BundleFault::OtherConfig(
            name,
            super::hex(&parts.config.0),
            super::hex(&config.0),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut packs = Vec::new();
    for (i, b) in parts.packs.iter().enumerate() {
        let fault = |module: &str, why: String| BundleFault::Pack(name.clone(), i, module.to_string(), why);
        let (module, pack_config) = cache_format::pack_identity(b).ok_or_else(|| fault("?", "truncated".into()))?;
        let m = super::hex(&module);
        if &pack_config != config {
            return Err(fault(&m, "of another configuration than the bundle's".into()));
        }
        if !seen.insert(module) {
            return Err(fault(&m, "the module's second pack in the bundle".into()));
        }
        let units = cache_format::decode_pack(b, &module, config).map_err(|e| fault(&m, e.to_string()))?;
        packs.push(CheckedPack {
            module,
            bytes: b.to_vec(),
            units: units.len(),
        });
    }
    Ok(Checked {
        packs,
        signer: parts.signature.map(|s| s.0),
    })
}

/// What an import changed.
#[derive(Debug, Default, serde::Serialize)]
pub struct Imported {
    /// Packs the cache did not have, written as the bundle holds them.
    pub packs_added: usize,
    /// Packs the cache had, to which the bundle added units they lacked.
    pub packs_merged: usize,
    /// Packs the cache had with every unit the bundle holds.
    pub packs_unchanged: usize,
    pub units_added: usize,
}

/// Merges a checked bundle into `cache`, which the caller holds open (its lock serialises
/// every writer of packs): a pack it lacks is written as it is; to a pack it has, the units it
/// lacks are added (`Cache::write_pack`, with the link stub `stub`), and no unit it holds is
/// replaced.
pub fn import(cache: &Cache, bundle: &Checked, config: &ConfigId, stub: &[u8]) -> Result<Imported, BundleFault> {
    let mut done = Imported::default();
    for CheckedPack { module, bytes, units } in &bundle.packs {
        let path = pack_path(&cache.dir, module, config);
        let old = std::fs::read(&path).ok();
        let old = old.and_then(|b| cache_format::decode_pack(&b, module, config).ok());
        let Some(old) = old else {
            let written = write_atomic(&cache.dir.join("packs"), &path, bytes)?;
            memo::record_pack_written(&cache.dir, &path, &written, &bytes[bytes.len().saturating_sub(32)..]);
            done.packs_added += 1;
            done.units_added += units;
            continue;
        };
        // Checked whole by `check`: the same bytes decode again.
        let units = cache_format::decode_pack(bytes, module, config).unwrap_or_default();
        let held: BTreeSet<ModuleOffset> = old.iter().map(|(o, _)| *o).collect();
        let new: Vec<(UnitKey, UnitEntry)> = (units.iter())
            .filter(|(o, _)| !held.contains(o))
            .map(|(offset, e)| {
                let key = UnitKey {
                    module: *module,
                    config: *config,
                    offset: *offset,
                };
                (key, e.clone())
            })
            .collect();
        if new.is_empty() {
            done.packs_unchanged += 1;
            continue;
        }
        cache.write_pack(module, config, &new, &BTreeSet::new(), stub)?;
        done.packs_merged += 1;
        done.units_added += new.len();
    }
    Ok(done)
}

/// The modules that runs of the programs at `programs` used, as the cache's usage log records
/// them (each program's own file, its interpreter and its libraries, those it opened at run
/// time too), with each program's own module whether or not a run was recorded.
pub fn modules_of_programs(dir: &Path, programs: &[std::path::PathBuf]) -> Result<BTreeSet<Hash>, BundleFault> {
    let runs = super::usage::read(dir);
    let mut modules = BTreeSet::new();
    for p in programs {
        let shown = p.display().to_string();
        let f = std::fs::File::open(p).map_err(|e| BundleFault::Io(shown.clone(), e.to_string()))?;
        let hash = memo::file_hash(dir, &f, None).ok_or_else(|| BundleFault::Io(shown, "cannot be read".into()))?;
        let hex = super::hex(&hash);
        modules.insert(hash);
        let used = runs.iter().filter(|r| r.program == hex).flat_map(|r| &r.modules);
        modules.extend(used.filter_map(|m| unhex32(&m.hash)));
    }
    Ok(modules)
}

fn unhex32(s: &str) -> Option<Hash> {
    super::unhex(s)?.try_into().ok()
}

/// A key's 32 bytes from its 64 hex digits (surrounding white space ignored).
fn key_bytes(text: &str, shown: &str) -> Result<[u8; 32], BundleFault> {
    (super::unhex(text.trim()).and_then(|b| b.try_into().ok()))
        .ok_or_else(|| BundleFault::Key(shown.to_string(), "not 64 hex digits".into()))
}

/// The signing key in the file at `path`: its 32-byte secret as 64 hex digits.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, BundleFault> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| BundleFault::Key(shown.clone(), e.to_string()))?;
    Ok(SigningKey::from_bytes(&key_bytes(&text, &shown)?))
}

/// A public key given as 64 hex digits, or as the file holding them.
pub fn parse_public_key(arg: &str) -> Result<VerifyingKey, BundleFault> {
    let text = match super::unhex(arg.trim()) {
        Some(_) => arg.to_string(),
        None => std::fs::read_to_string(arg).map_err(|e| BundleFault::Key(arg.to_string(), e.to_string()))?,
    };
    VerifyingKey::from_bytes(&key_bytes(&text, arg)?).map_err(|e| BundleFault::Key(arg.to_string(), e.to_string()))
}

/// Makes a signing key from the system's random bytes: its secret goes to `path` (readable by
/// its owner only), its public key to `path` with `.pub` added; returns the public key.
pub fn generate_key(path: &Path) -> Result<VerifyingKey, BundleFault> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display().to_string();
    let fault = |e: std::io::Error| BundleFault::Key(shown.clone(), e.to_string());
    let mut seed = [0u8; 32];
    rustix::rand::getrandom(&mut seed, rustix::rand::GetRandomFlags::empty()).map_err(|e| fault(e.into()))?;
    let key = SigningKey::from_bytes(&seed);
    let mut f = (std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600))
        .open(path)
        .map_err(fault)?;
    writeln!(f, "{}", super::hex(&seed)).map_err(fault)?;
    let mut public = path.as_os_str().to_owned();
    public.push(".pub");
    std::fs::write(&public, format!("{}\n", super::hex(key.verifying_key().as_bytes()))).map_err(fault)?;
    Ok(key.verifying_key())
}
