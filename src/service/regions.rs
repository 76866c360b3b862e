//! Regions formed by the service (decision 6), off every run's critical path: from a module's
//! code, read from its file, and what its pack says ran (every unit in a pack is code some run
//! executed). Heads are where control enters from outside a region: call targets, return
//! sites, loop headers, code no static edge leads to (entered indirectly) and the blocks other
//! regions leave for (beyond their limits); each region holds the executed blocks its head
//! reaches through static edges. Every head that ran heads a region, however few times it ran:
//! a short run spends much of its time in code it runs a few times (start-up, one small input's
//! worth of a compiler's passes), which without a region runs as blocks, each a unit entered
//! and left on its own. What the executed blocks a region leaves for read of the
//! flags on entry goes into its flag liveness: the region assumes that code stays as the
//! module file has it (only its own bytes are checked before it runs). The same pack gives the
//! same regions and the same bytes; a region the pack already holds, as compiled from the same
//! bytes, is not compiled again.

use crate::decode::{
    decode_block, ends_in_return, flags_live_after, return_site, static_targets, Block, Limits, Region, ARITH_FLAGS,
};
use crate::mem::MappedFile;
use crate::semantics;
use cache_format::{Hash, LinkKind, ModuleCode, ModuleOffset, OuterRange, PackUnit};
use iced_x86::{FlowControl, OpKind};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// How large a region the service compiles. A region whose head is a return site, or a loop
/// header that another region holds, and not a function's entry, stops at its calls: such
/// heads are entered from outside only after the dispatcher ran (a return that did not come
/// back to its caller's code, a waiting signal), and the code after each call is then not
/// compiled again into every region that starts before it. A loop that no other region holds
/// is entered at its header: that region follows the loop's calls. The span
/// stays below 32 KiB: compiled code keeps a checkpoint's distance within the region in 16
/// signed bits (`jit::Lower::set_rip`). A direct call's callee of at most 24 instructions that
/// ran, whose every way through returns or leaves for code that did not run, is inlined
/// wherever it lies (`Region::inlined`; docs/ARCHITECTURE.md has what it measured).
pub const LIMITS: Limits = Limits {
    blocks: 192,
    span: (32 << 10) - 1,
    returns: true,
    inline: 24,
};

/// A module's file, mapped, checked to be the module it names.
pub struct ModuleImage {
    code: ModuleCode,
    map: MappedFile,
}

/// A region to compile: its head's offset in the module, its guest bytes (the `guest_len` at
/// its head, then those of its `outer` ranges: `UnitEntry::guest_hash`), and how hot its code
/// ran (`UnitEntry::heat`: the hottest of the pack's units at its blocks).
pub struct Planned {
    pub offset: u64,
    pub region: Region,
    pub guest_len: u32,
    pub outer: Vec<OuterRange>,
    pub bytes: Vec<u8>,
    pub heat: u32,
}

impl ModuleImage {
    /// Opens the module's file; None when it is gone or no longer hashes to the module.
    pub fn open(dir: &Path, code: &ModuleCode) -> Option<ModuleImage> {
        use std::os::unix::ffi::OsStrExt;
        let file = std::fs::File::open(std::ffi::OsStr::from_bytes(&code.path)).ok()?;
        let map = MappedFile::map(&file).ok()?;
        let hash = crate::cache::memo::file_hash(dir, &file, Some(map.bytes()))?;
        (hash == code.module).then(|| ModuleImage {
            code: code.clone(),
            map,
        })
    }

    /// The module's whole file.
    pub fn file_bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    /// The module's code from offset `at` to the end of its range in the file.
    fn bytes_at(&self, at: u64) -> Option<&[u8]> {
        let (from, len) = self.code.file_range(at)?;
        let from = usize::try_from(from).ok()?;
        let end = from.checked_add(usize::try_from(len).ok()?)?;
        self.map.bytes().get(from..end.min(self.map.bytes().len()))
    }

    /// The block at module offset `at`, decoded where the run had it.
    pub fn block_at(&self, at: u64) -> Option<Block> {
        let bytes = self.bytes_at(at)?;
        let b = decode_block(
            &bytes[..bytes.len().min(4096)],
            self.code.load_base + at,
            semantics::classify,
        );
        (!b.insns.is_empty()).then_some(b)
    }

    /// The regions to compile: one per head, over the blocks of the module's pack `units` (in
    /// offset order: code some run ran), unless a unit there compiled for the pack has the
    /// region's guest length and hash already, or is a lone block's; and the regions at
    /// `regrow` formed again (`leaving_for`: they left for code that has run since, which they
    /// may now hold, though their bytes are the same), where they grew by `hot` code.
    pub fn plan(&self, units: &[PackUnit], hot: &BTreeSet<u64>, regrow: &BTreeSet<u64>) -> Vec<Planned> {
        let mut blocks: HashMap<u64, Block> = (units.iter())
            .filter_map(|u| Some((u.offset.0, self.block_at(u.offset.0)?)))
            .collect();
        // A unit no run measured (`kiln bake`'s) holds blocks no unit starts at.
        for u in units.iter().filter(|u| u.heat == 0) {
            self.add_held_blocks(u, &mut blocks);
        }
        let mut planned = Vec::new();
        self.plan_each(&blocks, &BTreeSet::new(), units, (hot, regrow), |p| planned.push(p));
        planned.sort_by_key(|p| p.offset);
        planned
    }

    /// Forms the regions `plan` returns over `blocks` (by module offset: code that ran, or
    /// that `kiln bake` found) rather than those of the pack's `units`, each of `entries`
    /// heading one too (code entered other than through static edges), and hands each to
    /// `each` as it is formed (in an order the inputs alone decide), so that a caller need
    /// not hold them all.
    pub fn plan_each(
        &self,
        blocks: &HashMap<u64, Block>,
        entries: &BTreeSet<u64>,
        units: &[PackUnit],
        (hot, regrow): (&BTreeSet<u64>, &BTreeSet<u64>),
        mut each: impl FnMut(Planned),
    ) {
        let base = self.code.load_base;
        let have = units_by_offset(units);
        let heat_at = |o: u64| unit_at(units, o).map_or(0, |u| u.heat);
        let (return_sites, loop_headers) = inner_heads(blocks, base);
        let inner = |h: &u64| return_sites.contains(h) || loop_headers.contains(h);
        let mut heads = heads(blocks, base);
        heads.extend(entries.iter().filter(|o| blocks.contains_key(o)));
        let regrow = to_form_again(regrow, &heads, blocks, units);
        let mut todo: Vec<u64> = heads.union(&regrow).copied().collect();
        let mut seen: BTreeSet<u64> = todo.iter().copied().collect();
        // Inner heads last (taken from the end), once the regions that may hold them are formed.
        todo.sort_by_key(|h| std::cmp::Reverse(inner(h)));
        let mut held = BTreeSet::new();
        while let Some(head) = todo.pop() {
            let stops_at_calls = return_sites.contains(&head) || loop_headers.contains(&head) && held.contains(&head);
            let limits = Limits {
                returns: !stops_at_calls,
                ..LIMITS
            };
            let fetch = |rip: u64| blocks.get(&rip.wrapping_sub(base)).cloned();
            let admit = |rip: u64| blocks.contains_key(&rip.wrapping_sub(base));
            // What a block that ran reads on entry (module code, which stays as it is).
            let flags_at = |rip: u64, after_ret: u32| {
                let b = blocks.get(&rip.wrapping_sub(base))?;
                Some(flags_live_after(&b.insns, if ends_in_return(b) { after_ret } else { ARITH_FLAGS }).1)
            };
            let Some(region) = Region::form(base + head, limits, fetch, admit, flags_at) else {
                continue;
            };
            held.extend(region.blocks.iter().skip(1).map(|b| b.start.wrapping_sub(base)));
            // A block that ran and the region leaves for is entered from outside a region: a
            // head too.
            for &(t, _) in region.targets.iter().flatten().filter(|(_, j)| j.is_none()) {
                let t = t.wrapping_sub(base);
                if blocks.contains_key(&t) && seen.insert(t) {
                    todo.push(t);
                }
            }
            // A lone block: its own unit serves, once compiled for the pack.
            let inner = region.targets.iter().flatten().any(|(_, j)| j.is_some());
            if !inner && have.contains_key(&head) {
                continue;
            }
            let Some((len, outer, bytes)) = self.region_bytes(&region) else {
                continue;
            };
            let hash = *blake3::hash(&bytes).as_bytes();
            // Formed again, it holds code that ran since, or it is as it was.
            let grown =
                regrow.contains(&head) && (region.blocks.iter()).any(|b| hot.contains(&b.start.wrapping_sub(base)));
            if have.get(&head) == Some(&(len, hash)) && !grown {
                continue;
            }
            let heat = region.blocks.iter().map(|b| heat_at(b.start.wrapping_sub(base))).max();
            each(Planned {
                offset: head,
                heat: heat.unwrap_or(0),
                region,
                guest_len: len,
                outer,
                bytes,
            });
        }
    }
}

impl ModuleImage {
    /// The guest bytes `region` translates, as its unit records them: the length at its head,
    /// its outer ranges (module offsets), and all those bytes one after another.
    fn region_bytes(&self, region: &Region) -> Option<(u32, Vec<OuterRange>, Vec<u8>)> {
        let base = self.code.load_base;
        let head = region.head().wrapping_sub(base);
        let len = region.end() - region.head();
        let outer: Vec<OuterRange> = (region.outer_ranges().into_iter())
            .map(|(start, len)| OuterRange {
                offset: ModuleOffset(start.wrapping_sub(base)),
                len: len as u32,
            })
            .collect();
        let ranges = std::iter::once((head, len)).chain(outer.iter().map(|r| (r.offset.0, u64::from(r.len))));
        let parts = ranges
            .map(|(at, n)| self.bytes_at(at)?.get(..n as usize))
            .collect::<Option<Vec<&[u8]>>>()?;
        Some((len as u32, outer, parts.concat()))
    }
}

impl ModuleImage {
    /// Adds to `blocks` those unit `u`'s head reaches through static edges (and the returns
    /// of calls) inside its span: the blocks a region `kiln bake` formed holds, which have no
    /// units of their own, as code that ran has. Without them, forming regions again over the
    /// pack's units alone (after a run) made regions that left at every one of those blocks.
    fn add_held_blocks(&self, u: &PackUnit, blocks: &mut HashMap<u64, Block>) {
        let base = self.code.load_base;
        let span = u.offset.0..u.offset.0 + u64::from(u.guest_len);
        let mut seen = BTreeSet::new();
        let mut todo = vec![u.offset.0];
        while let Some(at) = todo.pop() {
            if !seen.insert(at) {
                continue;
            }
            let b = match blocks.entry(at) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => match self.block_at(at) {
                    Some(b) => e.insert(b),
                    None => continue,
                },
            };
            let next = static_targets(b).into_iter().chain(return_site(b));
            todo.extend(next.map(|t| t.wrapping_sub(base)).filter(|t| span.contains(t)));
        }
    }
}

/// The pack unit at module offset `o` (`units` in offset order).
fn unit_at(units: &[PackUnit], o: u64) -> Option<&PackUnit> {
    units.binary_search_by_key(&o, |u| u.offset.0).ok().map(|i| &units[i])
}

/// Of the `regrow` offsets (`leaving_for`), those whose regions are formed again: heads, and
/// regions of more than their head's block (a lone block elsewhere, whose unit left for new
/// code, does not make a new head).
fn to_form_again(
    regrow: &BTreeSet<u64>,
    heads: &BTreeSet<u64>,
    blocks: &HashMap<u64, Block>,
    units: &[PackUnit],
) -> BTreeSet<u64> {
    let unit_len = |h: u64| unit_at(units, h).map_or(0, |u| u64::from(u.guest_len));
    (regrow.iter().copied())
        .filter(|h| heads.contains(h) || blocks.get(h).is_some_and(|b| unit_len(*h) > b.len))
        .collect()
}

/// The offsets of the units a pack's own compiles made (regions and lone blocks) whose links
/// lead to one of the `hot` offsets: code that ran since they were formed, and that they left
/// for then, as it had not run.
pub fn leaving_for(pack: &crate::cache::Pack, hot: &BTreeSet<u64>) -> BTreeSet<u64> {
    let leads_to_hot = |u: &PackUnit| {
        cache_format::pack_unit_links(pack.map.bytes(), u)
            .is_ok_and(|links| (links.iter()).any(|l| l.kind == LinkKind::Rel32 && hot.contains(&l.target.0)))
    };
    (pack.units.iter())
        .filter(|u| u.linked && !hot.contains(&u.offset.0) && leads_to_hot(u))
        .map(|u| u.offset.0)
        .collect()
}

/// The heads that are return sites, and those that are loop headers, and not the targets of
/// direct calls.
fn inner_heads(blocks: &HashMap<u64, Block>, base: u64) -> (BTreeSet<u64>, BTreeSet<u64>) {
    let offset = |rip: u64| rip.wrapping_sub(base);
    let (mut return_sites, mut loop_headers) = (BTreeSet::new(), BTreeSet::new());
    let mut entries = BTreeSet::new();
    for (&at, b) in blocks {
        return_sites.extend(return_site(b).map(offset));
        loop_headers.extend(static_targets(b).into_iter().map(offset).filter(|&t| t <= at));
        let last = b.insns.last().filter(|l| l.flow_control() == FlowControl::Call);
        entries.extend(
            last.filter(|l| l.op0_kind() == OpKind::NearBranch64)
                .map(|l| offset(l.near_branch_target())),
        );
    }
    return_sites.retain(|o| !entries.contains(o));
    loop_headers.retain(|o| !entries.contains(o));
    (return_sites, loop_headers)
}

/// Where control enters from outside a region, among the executed blocks (by module offset;
/// blocks decoded at `base` + offset): targets of direct calls, the returns after them, targets
/// of edges back to the same or an earlier address, and blocks no static edge leads to.
fn heads(blocks: &HashMap<u64, Block>, base: u64) -> BTreeSet<u64> {
    let mut heads = BTreeSet::new();
    let mut reached = BTreeSet::new();
    let offset = |rip: u64| rip.wrapping_sub(base);
    for (&at, b) in blocks {
        let Some(last) = b.insns.last() else { continue };
        if last.flow_control() == FlowControl::Call {
            if last.op0_kind() == OpKind::NearBranch64 {
                heads.insert(offset(last.near_branch_target()));
            }
            heads.insert(offset(last.next_ip()));
        }
        for t in static_targets(b) {
            reached.insert(offset(t));
            if offset(t) <= at {
                heads.insert(offset(t));
            }
        }
    }
    heads.extend(blocks.keys().filter(|o| !reached.contains(o)));
    heads.retain(|o| blocks.contains_key(o));
    heads
}

/// The units of a pack compiled for it (`PackUnit::linked`), by offset: guest length and
/// hash. The others, which runs compiled for themselves, are compiled again.
fn units_by_offset(units: &[PackUnit]) -> HashMap<u64, (u32, Hash)> {
    units
        .iter()
        .filter(|u| u.linked)
        .map(|u| (u.offset.0, (u.guest_len, u.guest_hash)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_format::{ConfigId, Link, LinkKind, ModuleOffset, UnitEntry};

    /// A unit at module offset `offset` with links to `targets`.
    fn unit(offset: u64, linked: bool, targets: &[u64]) -> (ModuleOffset, UnitEntry) {
        let links = (targets.iter().enumerate())
            .map(|(i, &t)| Link {
                at: 4 * i as u32,
                kind: LinkKind::Rel32,
                target: ModuleOffset(t),
            })
            .collect();
        let entry = UnitEntry {
            load_base: 0,
            guest_len: 8,
            ninsns: 2,
            guest_hash: [0; 32],
            code: vec![0xcc; 16],
            links,
            linked,
            entered: false,
            heat: 1,
            outer: Vec::new(),
        };
        (ModuleOffset(offset), entry)
    }

    /// A region `kiln bake` made (heat 0) is formed again with the blocks it held, which
    /// have no units; a unit runs made is formed over its own blocks only, as before.
    #[test]
    fn regions_formed_again_over_a_baked_unit_hold_its_blocks() {
        // 0: cmp eax, 1; je +3 / 5: add eax, 2 / 8: add eax, 3; ret
        let code = [0x83, 0xf8, 0x01, 0x74, 0x03, 0x83, 0xc0, 0x02, 0x83, 0xc0, 0x03, 0xc3];
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("module");
        std::fs::write(&path, code).expect("written");
        let file = std::fs::File::open(&path).expect("opened");
        let module = crate::cache::memo::file_hash(dir.path(), &file, None).expect("hashed");
        let image = ModuleImage::open(
            dir.path(),
            &ModuleCode {
                module,
                path: path.to_str().expect("a path").as_bytes().to_vec(),
                load_base: 0,
                ranges: vec![cache_format::CodeRange {
                    offset: ModuleOffset(0),
                    file_offset: 0,
                    len: code.len() as u64,
                }],
            },
        )
        .expect("the module");
        let unit = |heat| PackUnit {
            offset: ModuleOffset(0),
            guest_len: code.len() as u32,
            ninsns: 5,
            guest_hash: [0; 32],
            code_start: 0,
            code_len: 0,
            links: 0..0,
            linked: false,
            entered: false,
            heat,
            outer: 0..0,
        };
        let none = BTreeSet::new();
        let blocks_of = |heat| image.plan(&[unit(heat)], &none, &none)[0].region.blocks.len();
        assert_eq!(blocks_of(0), 3, "the baked region's blocks");
        assert_eq!(blocks_of(1), 1, "a run's unit: its own block");
    }

    #[test]
    fn regions_that_left_for_code_run_since_are_formed_again() {
        let (module, config) = ([7u8; 32], ConfigId([3; 16]));
        let units = [
            unit(0x10, true, &[0x40, 0x18]),
            unit(0x20, true, &[0x80]),
            unit(0x30, false, &[]),
            unit(0x40, false, &[]),
            unit(0x50, true, &[0x40]),
            unit(0x60, false, &[0x40]),
        ];
        let bytes = cache_format::encode_pack(&module, &config, &units, &[0xc3; 16]);
        let mut file = tempfile::tempfile().expect("temporary file");
        std::io::Write::write_all(&mut file, &bytes).expect("written");
        let pack = crate::cache::Pack {
            map: MappedFile::map(&file).expect("mapped"),
            units: cache_format::decode_pack_index_checked(&bytes, &module, &config, false).expect("a valid pack"),
        };
        // 0x40 ran since: the pack's own units that left for it (not the one a run compiled,
        // which has no links to fill, nor 0x40 itself) are formed again.
        let hot = BTreeSet::from([0x40]);
        assert_eq!(leaving_for(&pack, &hot), BTreeSet::from([0x10, 0x50]));
        assert!(leaving_for(&pack, &BTreeSet::from([0x70])).is_empty());
    }
}
