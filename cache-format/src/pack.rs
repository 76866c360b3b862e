//! Packs: every unit of one (module, config) in one immutable file, laid out so that a reader
//! can map the file read-only, check it, make it executable and call the units where they lie
//! (no copy, no patching at load; any number of processes share the pages). The writer fills in
//! the units' links (direct jumps and calls between units of the module) with where their
//! targets lie in the file. See `SPEC.md`.

use crate::{ConfigId, EntryError, Hash, Link, LinkKind, ModuleOffset, OuterRange, UnitEntry, LINK_LEN, OUTER_LEN};
use std::collections::HashMap;

/// Magic at the start of a pack file.
pub const PACK_MAGIC: [u8; 8] = *b"KILNPACK";
/// Pack format version; readers reject any other.
pub const PACK_VERSION: u16 = 8;
/// Bytes before the unit records.
pub const PACK_HEAD: usize = 96;
/// Bytes of one unit record: its placement (`PLACEMENT`), in one table, and the rest of it, in
/// another after it.
pub const PACK_RECORD: usize = PLACEMENT + 64;
/// Bytes of a unit's placement: what a reader needs to enter it (its offset, where its code
/// starts, its guest length), kept apart from the rest of its record so that a reader that
/// chains every unit of a large pack at once, or searches it, reads 16 bytes per unit.
const PLACEMENT: usize = 16;
/// Alignment of the code region's start in the file.
pub const CODE_REGION_ALIGN: usize = 64;
/// Alignment of each unit's code inside the code region, as readers check it.
pub const UNIT_ALIGN: usize = 16;
/// Where the writer puts each unit's code: at the start of a cache line, so that entering a
/// unit fetches no line of the code before it (warm `cc1 -O2 hello.i` 0.95x CPU, `python3 -c
/// pass` 0.98x, against 16 bytes, for packs 7% larger).
const UNIT_PLACE: usize = 64;
const _: () = assert!(UNIT_PLACE.is_multiple_of(UNIT_ALIGN));
/// Filler between units' code (int3).
const FILL: u8 = 0xcc;
/// The link stub field of a pack without one.
const NO_STUB: u32 = u32::MAX;

/// One unit as a pack records it; its code is `code_len` bytes at `code_start` in the file,
/// its links entries `links` of the pack's link table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackUnit {
    pub offset: ModuleOffset,
    pub guest_len: u32,
    pub ninsns: u32,
    pub guest_hash: Hash,
    pub code_start: usize,
    pub code_len: usize,
    pub links: std::ops::Range<usize>,
    /// Compiled for a pack (`UnitEntry::linked`).
    pub linked: bool,
    /// `UnitEntry::entered`.
    pub entered: bool,
    /// `UnitEntry::heat`.
    pub heat: u32,
    /// Its entries of the pack's table of outer ranges (`UnitEntry::outer`).
    pub outer: std::ops::Range<usize>,
}

/// Encodes a pack of `units` (offset in module, entry; in ascending offset order), with their links filled in: to the
/// pack's unit at the link's target, else to `stub` (code entered like a unit, which goes on
/// to the target through the chaining table; placed first in the code region when any unit
/// has links, and then it must not be empty).
pub fn encode_pack(module: &Hash, config: &ConfigId, units: &[(ModuleOffset, UnitEntry)], stub: &[u8]) -> Vec<u8> {
    debug_assert!(
        units.windows(2).all(|w| w[0].0 .0 < w[1].0 .0),
        "pack units out of offset order"
    );
    let nlinks: usize = units.iter().map(|(_, e)| e.links.len()).sum();
    let nouter: usize = units.iter().map(|(_, e)| e.outer.len()).sum();
    let links_at = PACK_HEAD + PACK_RECORD * units.len();
    let code_start = (links_at + LINK_LEN * nlinks + OUTER_LEN * nouter).next_multiple_of(CODE_REGION_ALIGN);
    let mut code = Vec::new();
    let stub_at = if nlinks > 0 {
        debug_assert!(!stub.is_empty(), "a pack with links needs a link stub");
        code.extend_from_slice(stub);
        0
    } else {
        NO_STUB
    };
    // The units warm runs enter first, then those without entry marks (a run compiled them
    // for itself: entered or not, nobody knows), then the rest, each part hottest first (among
    // equals, in offset order): the code runs use lies together, and a warm run touches none
    // of the units it never enters (regions hold most blocks that runs compiled alone).
    let rank = |e: &UnitEntry| (e.entered, !e.linked, e.heat);
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(rank(&units[i].1)));
    let mut at = vec![0; units.len()];
    for i in order {
        code.resize(code.len().next_multiple_of(UNIT_PLACE), FILL);
        at[i] = code.len();
        code.extend_from_slice(&units[i].1.code);
    }
    let marks = entry_marks_at(code_start + code.len() + 32) - code_start;
    fill_links(&mut code, units, &at, (stub_at as usize, marks));
    let mut v = Vec::with_capacity(code_start + code.len() + 32);
    v.extend_from_slice(&PACK_MAGIC);
    v.extend_from_slice(&PACK_VERSION.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(module);
    v.extend_from_slice(&config.0);
    v.extend_from_slice(&(units.len() as u32).to_le_bytes());
    v.extend_from_slice(&(code_start as u64).to_le_bytes());
    v.extend_from_slice(&(code.len() as u64).to_le_bytes());
    v.extend_from_slice(&(nlinks as u32).to_le_bytes());
    v.extend_from_slice(&stub_at.to_le_bytes());
    v.extend_from_slice(&(nouter as u32).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    for ((off, e), &start) in units.iter().zip(&at) {
        v.extend_from_slice(&off.0.to_le_bytes());
        v.extend_from_slice(&(start as u32).to_le_bytes());
        v.extend_from_slice(&e.guest_len.to_le_bytes());
    }
    let (mut first_link, mut first_outer) = (0u32, 0u32);
    for (_, e) in units {
        v.extend_from_slice(&e.ninsns.to_le_bytes());
        v.extend_from_slice(&e.guest_hash);
        v.extend_from_slice(&(e.code.len() as u32).to_le_bytes());
        v.extend_from_slice(&first_link.to_le_bytes());
        v.extend_from_slice(&(e.links.len() as u32).to_le_bytes());
        v.extend_from_slice(&e.flags().to_le_bytes());
        v.extend_from_slice(&e.heat.to_le_bytes());
        v.extend_from_slice(&first_outer.to_le_bytes());
        v.extend_from_slice(&(e.outer.len() as u32).to_le_bytes());
        first_link += e.links.len() as u32;
        first_outer += e.outer.len() as u32;
    }
    for (_, e) in units {
        for l in &e.links {
            l.encode_into(&mut v);
        }
    }
    for (_, e) in units {
        for r in &e.outer {
            r.encode_into(&mut v);
        }
    }
    v.resize(code_start, 0);
    v.extend_from_slice(&code);
    let sum = blake3::hash(&v);
    v.extend_from_slice(sum.as_bytes());
    v
}

/// Fills in every unit's links in `code`, where unit `i` lies at `at[i]`: to the unit whose
/// offset is the link's target, else to the stub at `stub`; an entry mark to the unit's byte
/// of the entry marks at `marks` (both from the code region's start).
fn fill_links(code: &mut [u8], units: &[(ModuleOffset, UnitEntry)], at: &[usize], (stub, marks): (usize, usize)) {
    let by_offset: HashMap<ModuleOffset, usize> = units.iter().zip(at).map(|((o, _), &a)| (*o, a)).collect();
    for (i, ((_, e), &start)) in units.iter().zip(at).enumerate() {
        for l in &e.links {
            let to = match l.kind {
                LinkKind::Rel32 => by_offset.get(&l.target).copied().unwrap_or(stub),
                LinkKind::EntryMark => marks + i,
            };
            l.kind.fill(code, start + l.at as usize, to);
        }
    }
}

/// Where a pack of `file_len` bytes has its units' entry marks, from the start of its file as
/// a run maps it: past the file's end, at a multiple of `ENTRY_MARKS_ALIGN` (any host's
/// page), one byte per record in record order. A run maps them readable and writable there
/// (`pack_entry_marks`); a unit's entry mark (`LinkKind::EntryMark`) sets its byte.
pub fn entry_marks_at(file_len: usize) -> usize {
    file_len.next_multiple_of(ENTRY_MARKS_ALIGN)
}

/// The entry marks of a pack of `file_len` bytes whose header (its first `PACK_HEAD` bytes,
/// read before the file is mapped and checked) is `head`: start (as `entry_marks_at`) and
/// length, a multiple of `ENTRY_MARKS_ALIGN`.
pub fn pack_entry_marks(file_len: usize, head: &[u8; PACK_HEAD]) -> (usize, usize) {
    let count = pack_unit_count(head);
    (
        entry_marks_at(file_len),
        count.max(1).next_multiple_of(ENTRY_MARKS_ALIGN),
    )
}

/// The number of units a pack's header (`b`, from the pack's first byte) gives.
fn pack_unit_count(b: &[u8]) -> usize {
    u32_at(b, 60) as usize
}

/// Alignment of a pack's entry marks (the largest page size of a host Kiln runs on).
pub const ENTRY_MARKS_ALIGN: usize = 64 << 10;

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
    let index = PackIndex::open(b, module, config, verify)?;
    (0..index.len())
        .map(|i| index.unit(i).ok_or(EntryError::Truncated))
        .collect()
}

/// A pack's unit records, read where they lie: the header is checked when it is opened, each
/// record when it is read, so that a reader that uses a few thousand of a pack's hundred
/// thousand units reads and checks only those. Records are in ascending offset order.
#[derive(Clone, Copy, Debug)]
pub struct PackIndex<'a> {
    body: &'a [u8],
    count: usize,
    code_start: usize,
    code_len: u64,
    nlinks: u64,
    nouter: u64,
}

impl<'a> PackIndex<'a> {
    /// Checks the pack's header (and, when `verify`, the whole file's checksum) for the
    /// expected (module, config). Any damage is an error, never a panic.
    pub fn open(b: &'a [u8], module: &Hash, config: &ConfigId, verify: bool) -> Result<PackIndex<'a>, EntryError> {
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
        let count = pack_unit_count(body);
        let code_start = u64_at(body, 64);
        let code_len = u64_at(body, 72);
        let nlinks = u32_at(body, 80) as u64;
        let stub = u32_at(body, 84);
        let nouter = u32_at(body, 88) as u64;
        let tables_end = (count as u64)
            .checked_mul(PACK_RECORD as u64)
            .and_then(|n| n.checked_add(nlinks * LINK_LEN as u64))
            .and_then(|n| n.checked_add(nouter * OUTER_LEN as u64))
            .and_then(|n| n.checked_add(PACK_HEAD as u64))
            .ok_or(EntryError::Truncated)?;
        if !code_start.is_multiple_of(CODE_REGION_ALIGN as u64)
            || code_start < tables_end
            || code_start.checked_add(code_len) != Some(body.len() as u64)
            || (nlinks > 0) != (stub != NO_STUB)
            || (stub != NO_STUB && u64::from(stub) >= code_len)
        {
            return Err(EntryError::Truncated);
        }
        Ok(PackIndex {
            body,
            count,
            code_start: code_start as usize,
            code_len,
            nlinks,
            nouter,
        })
    }

    /// How many units the pack records.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The module offset record `i` names (unchecked: for searching).
    pub fn offset(&self, i: usize) -> u64 {
        let at = PACK_HEAD + i * PLACEMENT;
        Placement(&self.body[at..at + PLACEMENT]).offset()
    }

    /// The record of the unit at module offset `offset`, if the pack has one.
    pub fn find(&self, offset: u64) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.offset(mid).cmp(&offset) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Record `i`, checked: None if it is damaged (its code outside the code region, its links
    /// or outer ranges outside their tables, unknown flags) or `i` is out of range.
    pub fn unit(&self, i: usize) -> Option<PackUnit> {
        let r = self.record(i)?;
        let (start, len, links, outer) = (r.place.code_start(), r.code_len(), r.links(), r.outer());
        let tables = links.end as u64 <= self.nlinks && outer.end as u64 <= self.nouter;
        let (linked, entered) = crate::unit_flags(r.flags())?;
        if !code_fits(start, len, self.code_len) || !tables {
            return None;
        }
        Some(PackUnit {
            offset: ModuleOffset(r.place.offset()),
            guest_len: r.place.guest_len(),
            ninsns: r.ninsns(),
            guest_hash: r.guest_hash()?,
            code_start: self.code_start + start as usize,
            code_len: len as usize,
            links,
            linked,
            entered,
            heat: r.heat(),
            outer,
        })
    }

    /// The outer ranges of `u`, a unit this index gave (None if one is empty).
    pub fn outer(&self, u: &PackUnit) -> Option<Vec<OuterRange>> {
        self.outer_ranges(u)?.iter().collect()
    }

    /// The outer ranges of `u`, a unit this index gave, where they lie in the pack.
    pub fn outer_ranges(&self, u: &PackUnit) -> Option<OuterRanges<'a>> {
        self.outer_table(u.outer.clone())
    }

    /// The outer ranges of record `i`, read from that record alone (None if they lie outside
    /// their table or `i` is out of range).
    pub fn outer_of(&self, i: usize) -> Option<OuterRanges<'a>> {
        self.outer_table(self.record(i)?.outer())
    }

    /// Every unit's outer ranges together: the whole table, in record order.
    pub fn all_outer(&self) -> Option<OuterRanges<'a>> {
        self.outer_table(0..self.nouter as usize)
    }

    fn outer_table(&self, entries: std::ops::Range<usize>) -> Option<OuterRanges<'a>> {
        if entries.end as u64 > self.nouter {
            return None;
        }
        let table = PACK_HEAD + PACK_RECORD * self.count + LINK_LEN * self.nlinks as usize;
        let at = table + entries.start * OUTER_LEN;
        Some(OuterRanges(self.body.get(at..at + entries.len() * OUTER_LEN)?))
    }

    /// Where record `i`'s unit lies: (module offset, guest length, start of its code in the
    /// file); None if its code starts outside the code region. What a reader needs to enter the
    /// unit, read from its placement alone.
    pub fn placement(&self, i: usize) -> Option<(ModuleOffset, u32, usize)> {
        let p = self.placement_record(i)?;
        let start = p.code_start();
        // Its code's first byte fits, whatever its length.
        code_fits(start, 1, self.code_len).then(|| {
            (
                ModuleOffset(p.offset()),
                p.guest_len(),
                self.code_start + start as usize,
            )
        })
    }

    fn placement_record(&self, i: usize) -> Option<Placement<'a>> {
        let at = PACK_HEAD + i * PLACEMENT;
        (i < self.count).then(|| Placement(&self.body[at..at + PLACEMENT]))
    }

    fn record(&self, i: usize) -> Option<Record<'a>> {
        let place = self.placement_record(i)?;
        let at = PACK_HEAD + self.count * PLACEMENT + i * (PACK_RECORD - PLACEMENT);
        Some(Record {
            place,
            detail: &self.body[at..at + PACK_RECORD - PLACEMENT],
        })
    }
}

/// A unit's outer ranges as a pack holds them (`OUTER_LEN` bytes each).
#[derive(Clone, Copy, Debug, Default)]
pub struct OuterRanges<'a>(&'a [u8]);

impl OuterRanges<'_> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each range, None for one that is empty (a damaged record).
    pub fn iter(&self) -> impl Iterator<Item = Option<OuterRange>> + '_ {
        self.0.chunks(OUTER_LEN).map(OuterRange::decode)
    }
}

/// A unit's code, `len` bytes from `start` in the code region of `code_len` bytes: aligned,
/// not empty, inside the region.
fn code_fits(start: u32, len: u32, code_len: u64) -> bool {
    (start as usize).is_multiple_of(UNIT_ALIGN) && len > 0 && start as u64 + len as u64 <= code_len
}

/// A unit's placement (`PLACEMENT`).
struct Placement<'a>(&'a [u8]);

impl Placement<'_> {
    fn offset(&self) -> u64 {
        u64_at(self.0, 0)
    }

    fn code_start(&self) -> u32 {
        u32_at(self.0, 8)
    }

    fn guest_len(&self) -> u32 {
        u32_at(self.0, 12)
    }
}

/// One unit's record: its placement and the rest of it, each where its table holds it (the
/// fields in `SPEC.md`'s order).
struct Record<'a> {
    place: Placement<'a>,
    detail: &'a [u8],
}

impl Record<'_> {
    fn ninsns(&self) -> u32 {
        u32_at(self.detail, 0)
    }

    fn guest_hash(&self) -> Option<Hash> {
        self.detail[4..36].try_into().ok()
    }

    fn code_len(&self) -> u32 {
        u32_at(self.detail, 36)
    }

    /// Its entries of the pack's link table.
    fn links(&self) -> std::ops::Range<usize> {
        let (first, count) = (u32_at(self.detail, 40) as usize, u32_at(self.detail, 44) as usize);
        first..first + count
    }

    fn flags(&self) -> u32 {
        u32_at(self.detail, 48)
    }

    fn heat(&self) -> u32 {
        u32_at(self.detail, 52)
    }

    /// Its entries of the pack's table of outer ranges.
    fn outer(&self) -> std::ops::Range<usize> {
        let (first, count) = (u32_at(self.detail, 56) as usize, u32_at(self.detail, 60) as usize);
        first..first.saturating_add(count)
    }
}

/// Where the code region of a pack checked by `decode_pack_index` lies in the file: its
/// start and length. Units (and the link stub at its start) lie inside it, and their links
/// lead from one to another, so it moves only whole.
pub fn pack_code_region(b: &[u8]) -> (usize, usize) {
    (u64_at(b, 64) as usize, u64_at(b, 72) as usize)
}

/// The links of a unit of a pack checked by `decode_pack_index`: an error if one is of an
/// unknown kind or lies outside the unit's code.
pub fn pack_unit_links(b: &[u8], u: &PackUnit) -> Result<Vec<Link>, EntryError> {
    let table = PACK_HEAD + PACK_RECORD * pack_unit_count(b);
    u.links
        .clone()
        .map(|i| {
            let at = table + i * LINK_LEN;
            Link::decode(&b[at..at + LINK_LEN], u.code_len).ok_or(EntryError::Malformed)
        })
        .collect()
}

/// Checks a pack and returns its units as entries (code copied out), by offset in the module.
/// Their links' references keep what they were filled in with; writing the units into a pack
/// fills them in again.
pub fn decode_pack(b: &[u8], module: &Hash, config: &ConfigId) -> Result<Vec<(ModuleOffset, UnitEntry)>, EntryError> {
    let index = PackIndex::open(b, module, config, true)?;
    (0..index.len())
        .map(|i| {
            let u = index.unit(i).ok_or(EntryError::Truncated)?;
            let entry = UnitEntry {
                outer: index.outer(&u).ok_or(EntryError::Malformed)?,
                load_base: 0,
                guest_len: u.guest_len,
                ninsns: u.ninsns,
                guest_hash: u.guest_hash,
                code: b[u.code_start..u.code_start + u.code_len].to_vec(),
                links: pack_unit_links(b, &u)?,
                linked: u.linked,
                entered: u.entered,
                heat: u.heat,
            };
            Ok((u.offset, entry))
        })
        .collect()
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
            links: Vec::new(),
            linked: false,
            entered: false,
            heat: 0,
            outer: Vec::new(),
        }
    }

    fn rel32_target(p: &[u8], site: usize) -> usize {
        (site as i64 + 4 + i64::from(i32::from_le_bytes(p[site..site + 4].try_into().unwrap()))) as usize
    }

    #[test]
    fn outer_ranges_round_trip() {
        let (m, c) = ([9u8; 32], ConfigId([3; 16]));
        let outer = |o: u64| OuterRange {
            offset: ModuleOffset(o),
            len: 5,
        };
        let units: Vec<(ModuleOffset, UnitEntry)> = [vec![], vec![outer(0x900), outer(0x700)], vec![outer(0x40)]]
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                (
                    ModuleOffset(0x10 * i as u64),
                    UnitEntry {
                        outer: o,
                        ..entry(vec![0xc3; 4])
                    },
                )
            })
            .collect();
        let p = encode_pack(&m, &c, &units, &[]);
        assert_eq!(decode_pack(&p, &m, &c).unwrap(), units);
        let index = PackIndex::open(&p, &m, &c, true).unwrap();
        let second = index.unit(1).unwrap();
        assert_eq!(index.outer(&second).unwrap(), units[1].1.outer);
    }

    /// The units' offsets in the order their code lies in the pack.
    fn code_order(idx: &[PackUnit]) -> Vec<u64> {
        let mut by_place: Vec<(usize, u64)> = idx.iter().map(|u| (u.code_start, u.offset.0)).collect();
        by_place.sort();
        by_place.iter().map(|&(_, o)| o).collect()
    }

    #[test]
    fn code_lies_hottest_first_and_keeps_its_heat() {
        let (m, c) = ([9u8; 32], ConfigId([3; 16]));
        let heats = [3, 64, 0, 64, 900];
        let units: Vec<(ModuleOffset, UnitEntry)> = (heats.iter().enumerate())
            .map(|(i, &heat)| {
                (
                    ModuleOffset(0x10 * i as u64),
                    UnitEntry {
                        heat,
                        ..entry(vec![0xc3; 20])
                    },
                )
            })
            .collect();
        let p = encode_pack(&m, &c, &units, &[]);
        let idx = decode_pack_index(&p, &m, &c).unwrap();
        assert_eq!(
            code_order(&idx),
            [0x40, 0x10, 0x30, 0x0, 0x20],
            "hottest first, equals in offset order"
        );
        let again = decode_pack(&p, &m, &c).unwrap();
        assert_eq!(again.iter().map(|(_, e)| e.heat).collect::<Vec<_>>(), heats);
    }

    #[test]
    fn entered_units_lie_first_and_their_marks_lead_past_the_file() {
        let (m, c) = ([9u8; 32], ConfigId([3; 16]));
        let mark = Link {
            at: 3,
            kind: crate::LinkKind::EntryMark,
            target: ModuleOffset(0),
        };
        let mut units: Vec<(ModuleOffset, UnitEntry)> = [(900, false), (3, true), (0, false), (1, true)]
            .into_iter()
            .enumerate()
            .map(|(i, (heat, entered))| {
                let mut e = entry(vec![0x48, 0x8d, 0x05, 0, 0, 0, 0, 0xc3]);
                (e.heat, e.entered, e.linked, e.links) = (heat, entered, true, vec![mark]);
                (ModuleOffset(0x10 * i as u64), e)
            })
            .collect();
        // A unit a run compiled for itself has no mark: between those entered and the rest.
        units.push((ModuleOffset(0x40), entry(vec![0xc3; 8])));
        let p = encode_pack(&m, &c, &units, &[0xc3]);
        let idx = decode_pack_index(&p, &m, &c).unwrap();
        assert_eq!(
            code_order(&idx),
            [0x10, 0x30, 0x40, 0x0, 0x20],
            "entered first, each part hottest first"
        );
        let (marks, len) = pack_entry_marks(p.len(), p[..PACK_HEAD].try_into().unwrap());
        assert!(marks >= p.len() && marks.is_multiple_of(ENTRY_MARKS_ALIGN) && len >= idx.len());
        for (i, u) in idx.iter().enumerate().filter(|(_, u)| u.linked) {
            assert_eq!(rel32_target(&p, u.code_start + 3), marks + i, "unit {i}'s mark");
        }
        let flags = |u: &[(ModuleOffset, UnitEntry)]| u.iter().map(|(_, e)| (e.linked, e.entered)).collect::<Vec<_>>();
        assert_eq!(
            flags(&decode_pack(&p, &m, &c).unwrap()),
            flags(&units),
            "the flags survive"
        );
    }

    #[test]
    fn links_lead_to_their_units_or_to_the_stub_and_survive_a_rewrite() {
        let (m, c) = ([9u8; 32], ConfigId([3; 16]));
        let link = |at, target| Link {
            at,
            kind: crate::LinkKind::Rel32,
            target: ModuleOffset(target),
        };
        let mut caller = entry(vec![0xe8, 0, 0, 0, 0, 0xe9, 0, 0, 0, 0, 0xc3]);
        caller.links = vec![link(1, 0x20), link(6, 0x8)];
        caller.linked = true;
        let units = vec![
            (ModuleOffset(0x10), caller),
            (ModuleOffset(0x20), entry(vec![0xc3; 20])),
        ];
        let stub = [0x90, 0x90, 0xc3];
        let p = encode_pack(&m, &c, &units, &stub);
        let idx = decode_pack_index(&p, &m, &c).unwrap();
        let code_region = idx.iter().map(|u| u.code_start).min().unwrap() - UNIT_PLACE;
        assert_eq!(&p[code_region..code_region + 3], &stub, "the stub comes first");
        let site = idx[0].code_start;
        assert_eq!(
            rel32_target(&p, site + 1),
            idx[1].code_start,
            "a link to a unit of the pack"
        );
        assert_eq!(
            rel32_target(&p, site + 6),
            code_region,
            "a link with no unit goes to the stub"
        );
        assert_eq!(pack_unit_links(&p, &idx[0]).unwrap(), units[0].1.links);
        // Written again with another unit before them: every link is filled in anew.
        let mut again = decode_pack(&p, &m, &c).unwrap();
        again.insert(0, (ModuleOffset(0x8), entry(vec![0xc3; 40])));
        let q = encode_pack(&m, &c, &again, &stub);
        let idx = decode_pack_index(&q, &m, &c).unwrap();
        let site = idx[1].code_start;
        assert_eq!(rel32_target(&q, site + 1), idx[2].code_start);
        assert_eq!(rel32_target(&q, site + 6), idx[0].code_start, "the new unit is linked");
        assert_eq!(
            encode_pack(&m, &c, &decode_pack(&q, &m, &c).unwrap(), &stub),
            q,
            "not deterministic"
        );
        for i in 0..q.len() {
            let mut d = q.clone();
            d[i] ^= 0x10;
            assert!(decode_pack(&d, &m, &c).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn packs_round_trip_align_code_and_reject_damage() {
        let m = [9u8; 32];
        let c = ConfigId([3; 16]);
        let units = vec![
            (ModuleOffset(0x5), entry(vec![1, 2])),
            (ModuleOffset(0x10), entry(vec![0xc3])),
            (ModuleOffset(0x20), entry(vec![0x90; 37])),
        ];
        let p = encode_pack(&m, &c, &units, &[]);
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
    fn an_index_finds_units_by_offset_and_skips_a_bad_record() {
        let (m, c) = ([9u8; 32], ConfigId([3; 16]));
        let units: Vec<_> = (0..40u64)
            .map(|i| (ModuleOffset(0x100 + 8 * i), entry(vec![0x90; 1 + i as usize])))
            .collect();
        let mut p = encode_pack(&m, &c, &units, &[]);
        let index = PackIndex::open(&p, &m, &c, true).unwrap();
        assert_eq!(index.len(), 40);
        for (i, (o, e)) in units.iter().enumerate() {
            assert_eq!(index.find(o.0), Some(i));
            let u = index.unit(i).unwrap();
            assert_eq!(
                (u.offset, &p[u.code_start..u.code_start + u.code_len]),
                (*o, &e.code[..])
            );
        }
        assert_eq!(
            (index.find(0x101), index.find(0), index.find(0x1000)),
            (None, None, None)
        );
        assert!(index.unit(40).is_none());
        // Record 7's code moved past the code region, the checksum made to match again: that
        // record alone is refused by a run; a whole decode refuses the pack.
        let r = PACK_HEAD + 7 * PLACEMENT + 8;
        p[r..r + 4].copy_from_slice(&0x10_0000u32.to_le_bytes());
        let n = p.len() - 32;
        let sum = *blake3::hash(&p[..n]).as_bytes();
        p[n..].copy_from_slice(&sum);
        let index = PackIndex::open(&p, &m, &c, true).unwrap();
        assert!(index.unit(7).is_none() && index.placement(7).is_none());
        assert_eq!(index.find(units[7].0 .0), Some(7));
        assert!(index.unit(6).is_some() && index.unit(8).is_some());
        assert!(decode_pack_index(&p, &m, &c).is_err());
    }

    #[test]
    fn empty_pack_round_trips() {
        let p = encode_pack(&[0; 32], &ConfigId([0; 16]), &[], &[]);
        assert_eq!(decode_pack(&p, &[0; 32], &ConfigId([0; 16])).unwrap(), vec![]);
    }
}
