//! Work journals: what one run hands to the compile service at exit. The units it compiled
//! itself (to be merged into packs) and the blocks it ran only in the baseline tier (to be
//! compiled), each with where it lies in its module. A journal is written whole and renamed
//! into `journals/`, so it is the hand-off itself: whichever service runs next merges it, and
//! removes it only once everything in it is in the packs. See `SPEC.md`.

use crate::{ConfigId, EntryError, Hash, ModuleOffset, UnitEntry};
use serde::{Deserialize, Serialize};

/// Magic at the start of a work journal.
pub const WORK_MAGIC: [u8; 8] = *b"KILNWORK";
/// Work journal format version; readers reject any other.
pub const WORK_VERSION: u16 = 6;
/// Bytes before the payload: magic, version, reserved, payload length.
const WORK_HEAD: usize = 8 + 2 + 2 + 8;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkJournal {
    /// The configuration the run translated for; a service of another configuration leaves
    /// the journal to one of this configuration.
    pub config: ConfigId,
    /// Units the run compiled itself.
    pub units: Vec<WorkUnit>,
    /// Blocks the run executed only in the baseline tier.
    pub blocks: Vec<WorkBlock>,
    /// Where the code of the run's modules lies in their files: the service reads it there
    /// to form regions from everything the module's pack says ran.
    pub modules: Vec<ModuleCode>,
    /// The units of the modules' packs that the run entered and the packs do not yet record
    /// as entered (`UnitEntry::entered`): a pack lays those out first.
    pub entered: EnteredUnits,
}

/// Per module, the offsets of units of its pack that runs entered.
pub type EnteredUnits = std::collections::BTreeMap<Hash, std::collections::BTreeSet<ModuleOffset>>;

/// A module's file as the run opened it, and which module offsets its code came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleCode {
    pub module: Hash,
    /// The file's path (bytes: paths need not be UTF-8).
    pub path: Vec<u8>,
    /// The module's load base in the run.
    pub load_base: u64,
    pub ranges: Vec<CodeRange>,
}

/// Module offsets [offset, offset + len) hold the file's bytes from `file_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRange {
    pub offset: ModuleOffset,
    pub file_offset: u64,
    pub len: u64,
}

impl ModuleCode {
    /// Where module offset `at` lies in the file, and how many bytes of code follow it there.
    pub fn file_range(&self, at: u64) -> Option<(u64, u64)> {
        self.ranges
            .iter()
            .find(|r| at >= r.offset.0 && at - r.offset.0 < r.len)
            .map(|r| (r.file_offset + (at - r.offset.0), r.len - (at - r.offset.0)))
    }
}

/// A unit compiled by the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkUnit {
    pub module: Hash,
    pub offset: ModuleOffset,
    pub entry: UnitEntry,
}

/// A block to compile: its guest bytes exactly (decoding them at `load_base + offset` gives
/// the block the run executed) and how often the run executed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkBlock {
    pub module: Hash,
    pub offset: ModuleOffset,
    /// The module's load base in the run (units are position-independent; recorded in the
    /// unit entry as compiled).
    pub load_base: u64,
    pub bytes: Vec<u8>,
    pub executions: u64,
}

impl WorkBlock {
    /// The guest address the run executed the block at.
    pub fn rip(&self) -> u64 {
        self.load_base.wrapping_add(self.offset.0)
    }
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Encodes a work journal: header, bincode payload, blake3 of everything before it.
pub fn encode_work(j: &WorkJournal) -> Vec<u8> {
    let mut v = Vec::new();
    // Writing to a vector fails only where encoding does, which a journal cannot.
    let _ = write_work(j, &mut v);
    v
}

/// Writes a work journal as `encode_work` lays it out, streamed: the payload is sized in a
/// first pass and never held in memory whole.
pub fn write_work(j: &WorkJournal, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut size = bincode::enc::write::SizeWriter::default();
    encode_payload(j, &mut size)?;
    let mut head = Vec::with_capacity(WORK_HEAD);
    head.extend_from_slice(&WORK_MAGIC);
    head.extend_from_slice(&WORK_VERSION.to_le_bytes());
    head.extend_from_slice(&0u16.to_le_bytes());
    head.extend_from_slice(&(size.bytes_written as u64).to_le_bytes());
    let mut hashed = Hashed::new(out);
    bincode::enc::write::Writer::write(&mut hashed, &head).map_err(std::io::Error::other)?;
    encode_payload(j, &mut hashed)?;
    hashed.finish()
}

fn encode_payload(j: &WorkJournal, w: impl bincode::enc::write::Writer) -> std::io::Result<()> {
    bincode::serde::encode_into_writer(j, w, bincode_config()).map_err(std::io::Error::other)
}

/// bincode's output for `write_work`: gathers what bincode writes (a byte or a few at a
/// time, more than six million writes for a large journal) into chunks, each hashed and
/// written to `out` at once, then the hash of everything.
struct Hashed<'a, W: std::io::Write> {
    out: &'a mut W,
    hash: blake3::Hasher,
    chunk: Vec<u8>,
}

impl<'a, W: std::io::Write> Hashed<'a, W> {
    const CHUNK: usize = 64 << 10;

    fn new(out: &'a mut W) -> Self {
        Hashed {
            out,
            hash: blake3::Hasher::new(),
            chunk: Vec::with_capacity(Self::CHUNK),
        }
    }

    fn drain(&mut self) -> std::io::Result<()> {
        self.hash.update(&self.chunk);
        self.out.write_all(&self.chunk)?;
        self.chunk.clear();
        Ok(())
    }

    /// Writes what is left and the hash.
    fn finish(mut self) -> std::io::Result<()> {
        self.drain()?;
        self.out.write_all(self.hash.finalize().as_bytes())
    }
}

impl<W: std::io::Write> bincode::enc::write::Writer for Hashed<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        if self.chunk.len() + bytes.len() > Self::CHUNK {
            self.drain()
                .map_err(|e| bincode::error::EncodeError::Io { inner: e, index: 0 })?;
        }
        if bytes.len() <= 16 {
            // Byte by byte: a copy of a length known only here is a call to `memcpy`, which
            // costs more than these few stores.
            for &b in bytes {
                self.chunk.push(b);
            }
        } else {
            self.chunk.extend_from_slice(bytes);
        }
        Ok(())
    }
}

/// Decodes and verifies a work journal. Any damage is an error, never a panic.
pub fn decode_work(b: &[u8]) -> Result<WorkJournal, EntryError> {
    if b.len() < WORK_HEAD + 32 {
        return Err(EntryError::Truncated);
    }
    if b[..8] != WORK_MAGIC {
        return Err(EntryError::BadMagic);
    }
    let version = u16::from_le_bytes([b[8], b[9]]);
    if version != WORK_VERSION {
        return Err(EntryError::Version(version));
    }
    let len = u64::from_le_bytes(b[12..20].try_into().map_err(|_| EntryError::Truncated)?);
    if len != (b.len() - WORK_HEAD - 32) as u64 {
        return Err(EntryError::Truncated);
    }
    let body = &b[..b.len() - 32];
    if blake3::hash(body).as_bytes() != &b[b.len() - 32..] {
        return Err(EntryError::Checksum);
    }
    let (j, used) =
        bincode::serde::decode_from_slice(&body[WORK_HEAD..], bincode_config()).map_err(|_| EntryError::Malformed)?;
    if used != body.len() - WORK_HEAD {
        return Err(EntryError::Malformed);
    }
    Ok(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WorkJournal {
        WorkJournal {
            config: ConfigId([7; 16]),
            units: vec![WorkUnit {
                module: [1; 32],
                offset: ModuleOffset(0x40),
                entry: UnitEntry {
                    load_base: 0x5555_0000,
                    guest_len: 3,
                    ninsns: 1,
                    guest_hash: [9; 32],
                    code: vec![0xc3; 5],
                    links: Vec::new(),
                    linked: false,
                    entered: true,
                    heat: 0,
                    outer: Vec::new(),
                },
            }],
            blocks: vec![WorkBlock {
                module: [2; 32],
                offset: ModuleOffset(0x1000),
                load_base: 0x7f00_0000_0000,
                bytes: vec![0x48, 0x89, 0xc3, 0xc3],
                executions: 12,
            }],
            modules: vec![ModuleCode {
                module: [2; 32],
                path: b"/usr/lib/x86_64-linux-gnu/libc.so.6".to_vec(),
                load_base: 0x7f00_0000_0000,
                ranges: vec![CodeRange {
                    offset: ModuleOffset(0x28000),
                    file_offset: 0x28000,
                    len: 0x1000,
                }],
            }],
            entered: [([1; 32], [ModuleOffset(0x40), ModuleOffset(0x99)].into())].into(),
        }
    }

    #[test]
    fn work_journals_round_trip() {
        let j = sample();
        assert_eq!(decode_work(&encode_work(&j)), Ok(j.clone()));
        assert_eq!(j.blocks[0].rip(), 0x7f00_0000_1000);
    }

    #[test]
    fn any_flipped_byte_or_truncation_is_rejected() {
        let bytes = encode_work(&sample());
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(decode_work(&b).is_err(), "flip at byte {i} was accepted");
        }
        for n in 0..bytes.len() {
            assert!(decode_work(&bytes[..n]).is_err(), "truncation to {n} was accepted");
        }
    }
}
