//! Kiln's on-disk cache format: unit entries and their keys. See `SPEC.md` for the byte layout.
//!
//! This crate only encodes, decodes and validates bytes; it never compiles or executes.

/// Magic at the start of every unit entry.
pub const ENTRY_MAGIC: [u8; 8] = *b"KILNUNIT";
/// Entry format version; readers reject any other.
pub const FORMAT_VERSION: u16 = 5;

pub type Hash = [u8; 32];

/// Identifies a translation configuration (Kiln version, Cranelift settings, host ISA
/// features, guest CPUID profile).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ConfigId(pub [u8; 16]);

/// Where a unit starts within its module: its guest address minus the module's load bias.
/// Units are position-independent, so this (not a guest address) is what the cache keys on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct ModuleOffset(pub u64);

/// Key of one unit: (module hash, config id, offset of the unit's first byte in the module).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnitKey {
    pub module: Hash,
    pub config: ConfigId,
    pub offset: ModuleOffset,
}

pub const KEY_LEN: usize = 32 + 16 + 8;
pub const KEY_PREFIX_LEN: usize = 32 + 16;

impl UnitKey {
    /// Keys sort by module, config, then offset (big-endian), so one module's units are a range.
    pub fn encode(&self) -> [u8; KEY_LEN] {
        let mut k = [0u8; KEY_LEN];
        k[..32].copy_from_slice(&self.module);
        k[32..48].copy_from_slice(&self.config.0);
        k[48..].copy_from_slice(&self.offset.0.to_be_bytes());
        k
    }

    pub fn prefix(module: &Hash, config: &ConfigId) -> [u8; KEY_PREFIX_LEN] {
        let mut k = [0u8; KEY_PREFIX_LEN];
        k[..32].copy_from_slice(module);
        k[32..].copy_from_slice(&config.0);
        k
    }

    pub fn decode(b: &[u8]) -> Option<UnitKey> {
        if b.len() != KEY_LEN {
            return None;
        }
        let mut module = [0u8; 32];
        module.copy_from_slice(&b[..32]);
        let mut c = [0u8; 16];
        c.copy_from_slice(&b[32..48]);
        Some(UnitKey {
            module,
            config: ConfigId(c),
            offset: ModuleOffset(u64::from_be_bytes(b[48..].try_into().ok()?)),
        })
    }
}

/// One compiled unit as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnitEntry {
    /// Module load base the code was compiled for (code embeds absolute guest addresses).
    pub load_base: u64,
    /// Length in bytes of the guest code the unit translates.
    pub guest_len: u32,
    /// Guest instructions in the unit.
    pub ninsns: u32,
    /// blake3 of the guest bytes translated (those at the unit's offset, `guest_len` of them,
    /// then those of each `outer` range in turn); checked before first execution.
    pub guest_hash: Hash,
    /// Host code, relocation-free but for its links.
    pub code: Vec<u8>,
    /// Where the code jumps or calls straight into other units of its module: filled in when
    /// the unit is written into its module's pack.
    pub links: Vec<Link>,
    /// Compiled for a pack: every exit to an address known at translation time and every
    /// direct call is a link (a unit a run compiled for itself has none).
    pub linked: bool,
    /// A warm run entered the unit (its entry mark, `LinkKind::EntryMark`, was set): a pack
    /// lays out the units runs enter before the others, so that a run touches the pages of
    /// its own code only.
    pub entered: bool,
    /// How often runs were seen executing the unit's code before it was compiled (saturating;
    /// the tiering threshold for code a run compiled because it ran that often): a pack lays
    /// its code out hottest first, so that a run's hot code shares pages and cache lines.
    pub heat: u32,
    /// The guest code of its module the unit translates beyond its own bytes (the callees a
    /// region inlines), in ascending offset order.
    pub outer: Vec<OuterRange>,
}

/// Guest bytes of a unit's module that the unit translates apart from the bytes at its
/// offset: `len` bytes at `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OuterRange {
    pub offset: ModuleOffset,
    pub len: u32,
}

/// Bytes of an encoded `OuterRange`.
pub const OUTER_LEN: usize = 12;

impl OuterRange {
    pub fn encode_into(&self, v: &mut Vec<u8>) {
        v.extend_from_slice(&self.offset.0.to_le_bytes());
        v.extend_from_slice(&self.len.to_le_bytes());
    }

    /// Decodes `OUTER_LEN` bytes; None unless there are that many and the range is not empty.
    pub fn decode(b: &[u8]) -> Option<OuterRange> {
        let offset = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        let len = u32::from_le_bytes(b.get(8..OUTER_LEN)?.try_into().ok()?);
        (len > 0).then_some(OuterRange {
            offset: ModuleOffset(offset),
            len,
        })
    }
}

/// A direct jump or call from a unit's code into the unit of its module that starts at
/// `target`. A pack writer fills the reference in with where that unit's code lies in the
/// pack, or, when the pack has no unit there, with the pack's link stub, which goes on through
/// the chaining table (see `SPEC.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Link {
    /// Offset in the unit's code of the reference to fill in.
    pub at: u32,
    pub kind: LinkKind,
    pub target: ModuleOffset,
}

/// How a link's reference is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LinkKind {
    /// Four bytes, little-endian: the target's distance from the end of the four bytes (an
    /// x86-64 `call rel32` or `jmp rel32`).
    Rel32 = 1,
    /// The unit's entry mark: four bytes as `Rel32`, the distance to the unit's own byte in
    /// the pack's entry marks (`pack::entry_marks`), which the unit sets each time it is
    /// entered (an x86-64 `lea` of it). Its target is unused, 0.
    EntryMark = 2,
}

impl LinkKind {
    fn from_byte(b: u8) -> Option<LinkKind> {
        match b {
            1 => Some(LinkKind::Rel32),
            2 => Some(LinkKind::EntryMark),
            _ => None,
        }
    }

    /// Bytes of the reference.
    pub fn reference_len(self) -> usize {
        4
    }

    /// Fills in the reference at `site` (an offset in `code`) to lead to offset `to` of the
    /// same bytes.
    pub fn fill(self, code: &mut [u8], site: usize, to: usize) {
        let rel = to as i64 - (site as i64 + 4);
        code[site..site + 4].copy_from_slice(&(rel as i32).to_le_bytes());
    }
}

/// Bytes of one link as entries and packs record it: target (8), offset in the code (4),
/// kind (1), reserved (3).
pub const LINK_LEN: usize = 16;

impl Link {
    fn encode_into(&self, v: &mut Vec<u8>) {
        v.extend_from_slice(&self.target.0.to_le_bytes());
        v.extend_from_slice(&self.at.to_le_bytes());
        v.extend_from_slice(&[self.kind as u8, 0, 0, 0]);
    }

    /// A link as recorded, if its kind is known and its reference lies inside `code_len`
    /// bytes of code.
    fn decode(b: &[u8], code_len: usize) -> Option<Link> {
        let b: &[u8; LINK_LEN] = b.try_into().ok()?;
        let target = ModuleOffset(u64::from_le_bytes(b[..8].try_into().ok()?));
        let at = u32::from_le_bytes(b[8..12].try_into().ok()?);
        let kind = LinkKind::from_byte(b[12])?;
        (at as usize)
            .checked_add(kind.reference_len())
            .filter(|&end| end <= code_len)?;
        Some(Link { at, kind, target })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum EntryError {
    Truncated,
    BadMagic,
    Version(u16),
    Checksum,
    /// Checksummed, yet its contents do not parse (written by a different format).
    Malformed,
}

impl std::fmt::Display for EntryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryError::Truncated => write!(f, "entry is truncated"),
            EntryError::BadMagic => write!(f, "entry has a wrong magic number"),
            EntryError::Version(v) => write!(f, "entry format version {v} (this Kiln reads {FORMAT_VERSION})"),
            EntryError::Checksum => write!(f, "entry checksum mismatch"),
            EntryError::Malformed => write!(f, "entry contents do not parse"),
        }
    }
}

impl std::error::Error for EntryError {}

const HEADER_LEN: usize = 8 + 2 + 2 + 8 + 4 + 4 + 32 + 4 + 4;

impl UnitEntry {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER_LEN + self.code.len() + 32);
        v.extend_from_slice(&ENTRY_MAGIC);
        v.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        v.extend_from_slice(&(self.flags() as u16).to_le_bytes());
        v.extend_from_slice(&self.load_base.to_le_bytes());
        v.extend_from_slice(&self.guest_len.to_le_bytes());
        v.extend_from_slice(&self.ninsns.to_le_bytes());
        v.extend_from_slice(&self.guest_hash);
        v.extend_from_slice(&self.heat.to_le_bytes());
        v.extend_from_slice(&(self.code.len() as u32).to_le_bytes());
        v.extend_from_slice(&self.code);
        v.extend_from_slice(&(self.links.len() as u32).to_le_bytes());
        for l in &self.links {
            l.encode_into(&mut v);
        }
        v.extend_from_slice(&(self.outer.len() as u32).to_le_bytes());
        for r in &self.outer {
            r.encode_into(&mut v);
        }
        let sum = blake3::hash(&v);
        v.extend_from_slice(sum.as_bytes());
        v
    }

    /// Decodes and verifies an entry. Any damage is an error, never a panic.
    pub fn decode(b: &[u8]) -> Result<UnitEntry, EntryError> {
        Self::decode_checked(b, true)
    }

    /// Decodes an entry; `verify` false skips its checksum (for entries inside a pack whose
    /// whole-file checksum has just been verified). Structure is always checked.
    pub fn decode_checked(b: &[u8], verify: bool) -> Result<UnitEntry, EntryError> {
        if b.len() < HEADER_LEN + 32 {
            return Err(EntryError::Truncated);
        }
        if b[..8] != ENTRY_MAGIC {
            return Err(EntryError::BadMagic);
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != FORMAT_VERSION {
            return Err(EntryError::Version(version));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut lb = [0u8; 8];
        lb.copy_from_slice(&b[12..20]);
        let code_len = u32_at(64) as usize;
        let code_end = HEADER_LEN.checked_add(code_len).ok_or(EntryError::Truncated)?;
        let links = counted_table(b, code_end, LINK_LEN)?;
        let outer = counted_table(b, links.end, OUTER_LEN)?;
        let end = outer.end;
        if b.len() != end + 32 {
            return Err(EntryError::Truncated);
        }
        if verify && blake3::hash(&b[..end]).as_bytes() != &b[end..] {
            return Err(EntryError::Checksum);
        }
        let outer = decode_all(&b[outer], OUTER_LEN, OuterRange::decode)?;
        let links = decode_all(&b[links], LINK_LEN, |l| Link::decode(l, code_len))?;
        let (linked, entered) = unit_flags(u16::from_le_bytes([b[10], b[11]]).into()).ok_or(EntryError::Malformed)?;
        let mut guest_hash = [0u8; 32];
        guest_hash.copy_from_slice(&b[28..60]);
        Ok(UnitEntry {
            load_base: u64::from_le_bytes(lb),
            guest_len: u32_at(20),
            ninsns: u32_at(24),
            guest_hash,
            code: b[HEADER_LEN..code_end].to_vec(),
            links,
            linked,
            entered,
            heat: u32_at(60),
            outer,
        })
    }
}

/// Flag bits of an entry and of a pack record: compiled for a pack (`UnitEntry::linked`).
pub const FLAG_LINKED: u32 = 1;
/// Flag bit: a warm run entered the unit (`UnitEntry::entered`).
pub const FLAG_ENTERED: u32 = 2;

impl UnitEntry {
    /// Its flags as entries and pack records hold them.
    pub fn flags(&self) -> u32 {
        (u32::from(self.linked) * FLAG_LINKED) | (u32::from(self.entered) * FLAG_ENTERED)
    }
}

/// (linked, entered) from flags; None for an unknown bit.
pub fn unit_flags(flags: u32) -> Option<(bool, bool)> {
    (flags & !(FLAG_LINKED | FLAG_ENTERED) == 0).then_some((flags & FLAG_LINKED != 0, flags & FLAG_ENTERED != 0))
}

/// The entries of a table in an entry `b` whose count (4 bytes) lies at `at`, `item` bytes
/// each, where the count and the checksum after the table fit.
fn counted_table(b: &[u8], at: usize, item: usize) -> Result<std::ops::Range<usize>, EntryError> {
    let count = b.get(at..at + 4).ok_or(EntryError::Truncated)?;
    let n = u32::from_le_bytes([count[0], count[1], count[2], count[3]]) as usize;
    let start = at + 4;
    let end = (n.checked_mul(item))
        .and_then(|len| len.checked_add(start))
        .ok_or(EntryError::Truncated)?;
    if b.len() < end + 32 {
        return Err(EntryError::Truncated);
    }
    Ok(start..end)
}

/// Each `item` bytes of `table` decoded; malformed if one does not decode.
fn decode_all<T>(table: &[u8], item: usize, decode: impl Fn(&[u8]) -> Option<T>) -> Result<Vec<T>, EntryError> {
    table
        .chunks(item)
        .map(decode)
        .collect::<Option<Vec<T>>>()
        .ok_or(EntryError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> UnitEntry {
        UnitEntry {
            load_base: 0x40_0000,
            guest_len: 17,
            ninsns: 5,
            guest_hash: [7; 32],
            code: vec![0xe9, 1, 2, 3, 4, 0xc3],
            links: vec![Link {
                at: 1,
                kind: LinkKind::Rel32,
                target: ModuleOffset(0x40),
            }],
            linked: true,
            entered: false,
            heat: 7,
            outer: vec![OuterRange {
                offset: ModuleOffset(0x9000),
                len: 12,
            }],
        }
    }

    #[test]
    fn entry_round_trips() {
        let e = sample();
        assert_eq!(UnitEntry::decode(&e.encode()), Ok(e));
    }

    #[test]
    fn any_flipped_byte_is_rejected() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(UnitEntry::decode(&b).is_err(), "flip at byte {i} was accepted");
        }
    }

    #[test]
    fn truncation_is_rejected() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(UnitEntry::decode(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn keys_round_trip_and_share_module_prefix() {
        let k = UnitKey {
            module: [1; 32],
            config: ConfigId([2; 16]),
            offset: ModuleOffset(0x1234),
        };
        let enc = k.encode();
        assert_eq!(UnitKey::decode(&enc), Some(k));
        assert_eq!(&enc[..KEY_PREFIX_LEN], &UnitKey::prefix(&k.module, &k.config)[..]);
    }
}

mod bundle;
mod fnv;
mod pack;
mod work;
pub use bundle::*;
pub use fnv::*;
pub use pack::*;
pub use work::*;
