//! Bundles: the packs of one configuration in one file, checksummed and optionally signed, to
//! carry a cache from one directory or machine to another (`kiln cache export` and `import`).
//! This module frames and checks the bytes; the signature's cryptography is the caller's.

use crate::{ConfigId, Hash};

/// Magic at the start of every bundle.
pub const BUNDLE_MAGIC: [u8; 8] = *b"KILNBNDL";
/// Bundle format version; readers reject any other.
pub const BUNDLE_VERSION: u16 = 1;
/// Bytes of the header: magic, version, reserved, config id, pack count.
pub const BUNDLE_HEAD: usize = 32;
/// The signature block's kinds: none, or an ed25519 public key and signature.
pub const UNSIGNED: u8 = 0;
pub const ED25519: u8 = 1;
/// Bytes of an ed25519 public key and of a signature.
pub const PUBLIC_KEY_LEN: usize = 32;
pub const SIGNATURE_LEN: usize = 64;

/// The header of a bundle holding `packs` packs of configuration `config`.
pub fn bundle_head(config: &ConfigId, packs: u32) -> [u8; BUNDLE_HEAD] {
    let mut h = [0u8; BUNDLE_HEAD];
    h[..8].copy_from_slice(&BUNDLE_MAGIC);
    h[8..10].copy_from_slice(&BUNDLE_VERSION.to_le_bytes());
    h[12..28].copy_from_slice(&config.0);
    h[28..32].copy_from_slice(&packs.to_le_bytes());
    h
}

/// The signature block after the packs: its kind, then for ed25519 the public key and the
/// signature of `signed_digest` (the blake3 hash of every byte before the block).
pub fn signature_block(signature: Option<([u8; PUBLIC_KEY_LEN], [u8; SIGNATURE_LEN])>) -> Vec<u8> {
    match signature {
        None => vec![UNSIGNED],
        Some((key, sig)) => [&[ED25519][..], &key, &sig].concat(),
    }
}

/// Why a bundle's bytes are refused.
#[derive(Debug, PartialEq, Eq)]
pub enum BundleError {
    Truncated,
    BadMagic,
    Version(u16),
    Checksum,
    /// Checksummed, yet its parts do not fit together.
    Malformed,
}

impl std::fmt::Display for BundleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BundleError::Truncated => write!(f, "the bundle is truncated"),
            BundleError::BadMagic => write!(f, "not a Kiln bundle (wrong magic number)"),
            BundleError::Version(v) => write!(f, "bundle format version {v} (this Kiln reads {BUNDLE_VERSION})"),
            BundleError::Checksum => write!(f, "the bundle's checksum does not match its bytes"),
            BundleError::Malformed => write!(f, "the bundle's parts do not fit together"),
        }
    }
}

/// A bundle's parts, framed and checksummed (nothing about the packs themselves is checked).
pub struct BundleParts<'a> {
    pub config: ConfigId,
    /// Each pack's bytes, as a file in `packs/` holds them.
    pub packs: Vec<&'a [u8]>,
    /// The blake3 hash of every byte before the signature block, which a signature signs.
    pub signed_digest: Hash,
    /// The signer's public key and the signature, for a signed bundle.
    pub signature: Option<([u8; PUBLIC_KEY_LEN], [u8; SIGNATURE_LEN])>,
}

/// Splits a bundle into its parts, checking its magic, version, checksum and framing.
pub fn split_bundle(b: &[u8]) -> Result<BundleParts<'_>, BundleError> {
    if b.len() < BUNDLE_HEAD + 1 + 32 {
        return Err(BundleError::Truncated);
    }
    if b[..8] != BUNDLE_MAGIC {
        return Err(BundleError::BadMagic);
    }
    let version = u16::from_le_bytes([b[8], b[9]]);
    if version != BUNDLE_VERSION {
        return Err(BundleError::Version(version));
    }
    let (body, sum) = b.split_at(b.len() - 32);
    if blake3::hash(body).as_bytes()[..] != sum[..] {
        return Err(BundleError::Checksum);
    }
    let config = ConfigId(b[12..28].try_into().map_err(|_| BundleError::Malformed)?);
    let count = u32::from_le_bytes(b[28..32].try_into().map_err(|_| BundleError::Malformed)?);
    let mut at = BUNDLE_HEAD;
    let mut packs = Vec::new();
    for _ in 0..count {
        let len = body.get(at..at + 8).ok_or(BundleError::Malformed)?;
        let len = usize::try_from(u64::from_le_bytes(len.try_into().map_err(|_| BundleError::Malformed)?))
            .map_err(|_| BundleError::Malformed)?;
        let end = at.checked_add(8 + len).ok_or(BundleError::Malformed)?;
        packs.push(body.get(at + 8..end).ok_or(BundleError::Malformed)?);
        at = end;
    }
    let signed_digest = *blake3::hash(&body[..at]).as_bytes();
    let signature = match &body[at..] {
        [UNSIGNED] => None,
        [ED25519, rest @ ..] if rest.len() == PUBLIC_KEY_LEN + SIGNATURE_LEN => {
            let (key, sig) = rest.split_at(PUBLIC_KEY_LEN);
            Some((
                key.try_into().map_err(|_| BundleError::Malformed)?,
                sig.try_into().map_err(|_| BundleError::Malformed)?,
            ))
        }
        _ => return Err(BundleError::Malformed),
    };
    Ok(BundleParts {
        config,
        packs,
        signed_digest,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(packs: &[&[u8]], signature: Option<([u8; 32], [u8; 64])>) -> Vec<u8> {
        let mut b = bundle_head(&ConfigId([7; 16]), packs.len() as u32).to_vec();
        for p in packs {
            b.extend((p.len() as u64).to_le_bytes());
            b.extend(*p);
        }
        b.extend(signature_block(signature));
        let sum = *blake3::hash(&b).as_bytes();
        b.extend(sum);
        b
    }

    #[test]
    fn a_bundle_splits_into_what_was_put_in() {
        let b = bundle(&[b"first", b"", b"third pack"], Some(([1; 32], [2; 64])));
        let p = split_bundle(&b).expect("a good bundle");
        assert_eq!(p.config, ConfigId([7; 16]));
        assert_eq!(p.packs, vec![&b"first"[..], b"", b"third pack"]);
        assert_eq!(p.signature, Some(([1; 32], [2; 64])));
        let signed_len = b.len() - 32 - 1 - 96;
        assert_eq!(p.signed_digest, *blake3::hash(&b[..signed_len]).as_bytes());
        assert!(split_bundle(&bundle(&[], None)).unwrap().signature.is_none());
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let b = bundle(&[b"pack bytes"], None);
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(split_bundle(&c).is_err(), "byte {i} flipped");
        }
        for n in 0..b.len() {
            assert!(split_bundle(&b[..n]).is_err(), "{n} bytes");
        }
    }

    #[test]
    fn framing_that_does_not_fit_is_refused_even_when_checksummed() {
        let mut b = bundle_head(&ConfigId([0; 16]), 2).to_vec();
        b.extend(5u64.to_le_bytes());
        b.extend(b"abc");
        b.push(UNSIGNED);
        let sum = *blake3::hash(&b).as_bytes();
        b.extend(sum);
        assert_eq!(split_bundle(&b).err(), Some(BundleError::Malformed));
    }
}
