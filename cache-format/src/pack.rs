//! Packs: every unit of one (module, config) in one immutable file, laid out so that a reader
//! can map the file read-only, check it, make it executable and call the units where they lie
//! (no copy, no patching; any number of processes share the pages). See `SPEC.md`.

use crate::{ConfigId, EntryError, Hash, ModuleOffset, UnitEntry};

/// Magic at the start of a pack file.
pub const PACK_MAGIC: [u8; 8] = *b"KILNPACK";
/// Pack format version; readers reject any other.
pub const PACK_VERSION: u16 = 2;
/// Bytes before the unit records.
pub const PACK_HEAD: usize = 80;
/// Bytes of one unit record.
pub const PACK_RECORD: usize = 56;
/// Alignment of the code region's start in the file.
pub const CODE_REGION_ALIGN: usize = 64;
/// Alignment of each unit's code inside the code region.
pub const UNIT_ALIGN: usize = 16;
/// Filler between units' code (int3).
const FILL: u8 = 0xcc;

/// One unit as a pack records it; its code is `code_len` bytes at `code_start` in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackUnit {
    pub offset: ModuleOffset,
    pub guest_len: u32,
    pub ninsns: u32,
    pub guest_hash: Hash,
    pub code_start: usize,
    pub code_len: usize,
}

/// Encodes a pack of `units` (offset in module, entry).
pub fn encode_pack(module: &Hash, config: &ConfigId, units: &[(ModuleOffset, UnitEntry)]) -> Vec<u8> {
    let records_end = PACK_HEAD + PACK_RECORD * units.len();
    let code_start = records_end.next_multiple_of(CODE_REGION_ALIGN);
    let mut code = Vec::new();
    let mut v = Vec::with_capacity(code_start + units.iter().map(|(_, e)| e.code.len() + 16).sum::<usize>() + 32);
    v.extend_from_slice(&PACK_MAGIC);
    v.extend_from_slice(&PACK_VERSION.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(module);
    v.extend_from_slice(&config.0);
    v.extend_from_slice(&(units.len() as u32).to_le_bytes());
    let head_at = v.len();
    v.extend_from_slice(&[0u8; 16]); // code region start and length, filled below
    for (off, e) in units {
        code.resize(code.len().next_multiple_of(UNIT_ALIGN), FILL);
        v.extend_from_slice(&off.0.to_le_bytes());
        v.extend_from_slice(&e.guest_len.to_le_bytes());
        v.extend_from_slice(&e.ninsns.to_le_bytes());
        v.extend_from_slice(&e.guest_hash);
        v.extend_from_slice(&(code.len() as u32).to_le_bytes());
        v.extend_from_slice(&(e.code.len() as u32).to_le_bytes());
        code.extend_from_slice(&e.code);
    }
    v[head_at..head_at + 8].copy_from_slice(&(code_start as u64).to_le_bytes());
    v[head_at + 8..head_at + 16].copy_from_slice(&(code.len() as u64).to_le_bytes());
    v.resize(code_start, 0);
    v.extend_from_slice(&code);
    let sum = blake3::hash(&v);
    v.extend_from_slice(sum.as_bytes());
    v
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(x)
}

/// The module hash and config id a pack (or journal) names in its header, without checking
/// anything else.
pub fn pack_identity(b: &[u8]) -> Option<(Hash, ConfigId)> {
    let m: Hash = b.get(12..44)?.try_into().ok()?;
    let c: [u8; 16] = b.get(44..60)?.try_into().ok()?;
    Some((m, ConfigId(c)))
}

/// Checks a whole pack for the expected (module, config) and returns its units' records. Any
/// damage is an error (never a panic): checksum, magic, version, identity, records that do not
/// fit, code outside the code region.
pub fn decode_pack_index(b: &[u8], module: &Hash, config: &ConfigId) -> Result<Vec<PackUnit>, EntryError> {
    decode_pack_index_checked(b, module, config, true)
}

/// `decode_pack_index`; `verify` false skips the whole-file checksum (for a pack verified
/// before and unchanged since, as the reader's memo says). The structure is always checked.
pub fn decode_pack_index_checked(
    b: &[u8],
    module: &Hash,
    config: &ConfigId,
    verify: bool,
) -> Result<Vec<PackUnit>, EntryError> {
    if b.len() < PACK_HEAD + 32 {
        return Err(EntryError::Truncated);
    }
    let (body, sum) = b.split_at(b.len() - 32);
    if verify && blake3::hash(body).as_bytes() != sum {
        return Err(EntryError::Checksum);
    }
    if body[..8] != PACK_MAGIC {
        return Err(EntryError::BadMagic);
    }
    let version = u16::from_le_bytes([body[8], body[9]]);
    if version != PACK_VERSION {
        return Err(EntryError::Version(version));
    }
    if &body[12..44] != module || body[44..60] != config.0 {
        return Err(EntryError::BadMagic);
    }
    let count = u32_at(body, 60) as usize;
    let code_start = u64_at(body, 64);
    let code_len = u64_at(body, 72);
    let records_end = count
        .checked_mul(PACK_RECORD)
        .and_then(|n| n.checked_add(PACK_HEAD))
        .ok_or(EntryError::Truncated)?;
    if !code_start.is_multiple_of(CODE_REGION_ALIGN as u64)
        || code_start < records_end as u64
        || code_start.checked_add(code_len) != Some(body.len() as u64)
    {
        return Err(EntryError::Truncated);
    }
    let code_start = code_start as usize;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let r = PACK_HEAD + i * PACK_RECORD;
        let start = u32_at(body, r + 48) as u64;
        let len = u32_at(body, r + 52) as u64;
        if !start.is_multiple_of(UNIT_ALIGN as u64) || len == 0 || start + len > code_len {
            return Err(EntryError::Truncated);
        }
        let mut guest_hash = [0u8; 32];
        guest_hash.copy_from_slice(&body[r + 16..r + 48]);
        out.push(PackUnit {
            offset: ModuleOffset(u64_at(body, r)),
            guest_len: u32_at(body, r + 8),
            ninsns: u32_at(body, r + 12),
            guest_hash,
            code_start: code_start + start as usize,
            code_len: len as usize,
        });
    }
    Ok(out)
}

/// Checks a pack and returns its units as entries (code copied out), by offset in the module.
pub fn decode_pack(b: &[u8], module: &Hash, config: &ConfigId) -> Result<Vec<(ModuleOffset, UnitEntry)>, EntryError> {
    Ok(decode_pack_index(b, module, config)?
        .into_iter()
        .map(|u| {
            (
                u.offset,
                UnitEntry {
                    load_base: 0,
                    guest_len: u.guest_len,
                    ninsns: u.ninsns,
                    guest_hash: u.guest_hash,
                    code: b[u.code_start..u.code_start + u.code_len].to_vec(),
                },
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(code: Vec<u8>) -> UnitEntry {
        UnitEntry {
            load_base: 0,
            guest_len: 3,
            ninsns: 1,
            guest_hash: [1; 32],
            code,
        }
    }

    #[test]
    fn packs_round_trip_align_code_and_reject_damage() {
        let m = [9u8; 32];
        let c = ConfigId([3; 16]);
        let units = vec![
            (ModuleOffset(0x10), entry(vec![0xc3])),
            (ModuleOffset(0x20), entry(vec![0x90; 37])),
            (ModuleOffset(0x5), entry(vec![1, 2])),
        ];
        let p = encode_pack(&m, &c, &units);
        let idx = decode_pack_index(&p, &m, &c).unwrap();
        assert_eq!(idx.len(), 3);
        for u in &idx {
            assert_eq!(u.code_start % UNIT_ALIGN, 0, "unit code is not aligned");
        }
        assert_eq!(decode_pack(&p, &m, &c).unwrap(), units);
        assert!(
            decode_pack(&p, &[8u8; 32], &c).is_err(),
            "a pack of another module was accepted"
        );
        assert!(
            decode_pack(&p, &m, &ConfigId([4; 16])).is_err(),
            "a pack of another config was accepted"
        );
        for i in 0..p.len() {
            let mut d = p.clone();
            d[i] ^= 0x10;
            assert!(decode_pack_index(&d, &m, &c).is_err(), "flip at {i} accepted");
        }
        for n in 0..p.len() {
            assert!(
                decode_pack_index(&p[..n], &m, &c).is_err(),
                "truncation to {n} accepted"
            );
        }
        assert_eq!(pack_identity(&p), Some((m, c)));
    }

    #[test]
    fn empty_pack_round_trips() {
        let p = encode_pack(&[0; 32], &ConfigId([0; 16]), &[]);
        assert_eq!(decode_pack(&p, &[0; 32], &ConfigId([0; 16])).unwrap(), vec![]);
    }
}
