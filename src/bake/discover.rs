//! A module's code found without running it: recursive descent from the addresses its file
//! names (`elf::Seeds`) over fall-throughs, direct jumps and calls, the returns after calls,
//! and the jump tables of `switch` statements. Blocks are decoded exactly as a run decodes
//! them (`regions::ModuleImage::block_at`), so they are the blocks a run would find. Data
//! decoded as code is harmless: a unit made from it is never entered, and every unit is
//! checked against its guest bytes before it runs.

use super::elf::ElfFacts;
use crate::decode::{direct_call_target, return_site, static_targets, Block};
use iced_x86::{Code, FlowControl, Instruction, Mnemonic, OpKind, Register};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Most entries read from a jump table whose bound was not found (it ends earlier at the
/// first entry that is not code).
const UNBOUNDED_TABLE: u64 = 512;
/// Most entries read from any jump table.
const LARGEST_TABLE: u64 = 1 << 14;

/// What the descent found.
#[derive(Default)]
pub struct Discovered {
    /// The blocks, by module offset.
    pub blocks: HashMap<u64, Block>,
    /// Where code may be entered other than through a static edge: the seeds, jump table
    /// entries, code addresses taken, and where code goes on after a call or a system call
    /// (each needs a unit of its own).
    pub entries: BTreeSet<u64>,
    pub insns: u64,
    /// Jump tables read.
    pub tables: u64,
    /// What could not be decoded, by reason: how many blocks stopped there, and the first
    /// such address with its bytes.
    pub stops: BTreeMap<String, (u64, u64, Vec<u8>)>,
}

/// Where a jump table lies (a virtual address of the file) and how its entries read.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Table {
    /// 8-byte code addresses (a file loaded at its own addresses).
    Absolute(u64),
    /// 4-byte signed offsets at `at`, from address `from` (the table's own, or a label's in
    /// a computed goto).
    Relative { at: Place, from: Place },
}

/// An address a relative table uses: known, or in a register loaded elsewhere in the
/// function (a `lea` moved out of a loop).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    Known(u64),
    In(Register),
}

/// Most candidate addresses taken for one register loaded elsewhere in a function.
const MOST_CANDIDATES: usize = 8;

/// Descends from `seeds` (virtual addresses) over the code of the file `facts` describes
/// (its bytes `data`); `block_at` decodes the block at a virtual address as a run would, the
/// module loaded at `base`.
pub fn discover(
    facts: &ElfFacts,
    data: &[u8],
    base: u64,
    seeds: impl Iterator<Item = u64>,
    block_at: impl Fn(u64) -> Option<Block>,
) -> Discovered {
    let mut found = Discovered::default();
    let mut todo: Vec<u64> = seeds.collect();
    found.entries.extend(todo.iter().copied());
    let mut seen: HashSet<u64> = HashSet::new();
    // The block that falls through to each block after a conditional branch (where a jump
    // table's bound is checked).
    let mut before: HashMap<u64, u64> = HashMap::new();
    let offset = |rip: u64| rip.wrapping_sub(base);
    while let Some(at) = todo.pop() {
        if !facts.is_code(at) || !seen.insert(at) {
            continue;
        }
        let Some(b) = block_at(at) else { continue };
        found.note_stop(&b);
        let Some(last) = b.insns.last() else { continue };
        let mut entered: Vec<u64> = (return_site(&b).into_iter())
            .chain(direct_call_target(&b))
            .map(offset)
            .collect();
        if last.mnemonic() == Mnemonic::Syscall && b.stop.is_none() {
            entered.push(offset(last.next_ip()));
        }
        if last.flow_control() == FlowControl::ConditionalBranch {
            before.insert(offset(last.next_ip()), at);
        }
        if last.flow_control() == FlowControl::IndirectBranch {
            let check = before.get(&at).and_then(|p| found.blocks.get(p));
            let entries = table_targets(facts, data, base, &b, check);
            found.tables += u64::from(!entries.is_empty());
            entered.extend(entries);
        }
        entered.extend(b.insns.iter().filter_map(|i| code_address_taken(i, facts, base)));
        found.insns += b.insns.len() as u64;
        found.entries.extend(entered.iter().copied());
        let next = static_targets(&b).into_iter().map(offset).chain(entered);
        todo.extend(next.filter(|t| !seen.contains(t)));
        found.blocks.insert(at, b);
    }
    found
}

impl Discovered {
    /// Records why block `b` stopped before an instruction, if it did (not where code ends).
    fn note_stop(&mut self, b: &Block) {
        let Some((at, bytes, ins)) = &b.stop else { return };
        if bytes.is_empty() {
            return;
        }
        let reason = if ins.code() == Code::INVALID {
            "bytes that do not decode".to_string()
        } else {
            format!("{:?} (not implemented)", ins.mnemonic()).to_lowercase()
        };
        let e = self.stops.entry(reason).or_insert((0, *at, bytes.clone()));
        e.0 += 1;
    }
}

/// The code address instruction `i` takes, if it takes one: `lea r, [rip + code]`, or in a
/// file loaded at its own addresses, `mov r, code` (a function pointer passed on, a callback,
/// an indirect function's choice).
fn code_address_taken(i: &Instruction, facts: &ElfFacts, base: u64) -> Option<u64> {
    let a = match i.mnemonic() {
        Mnemonic::Lea if i.is_ip_rel_memory_operand() => i.ip_rel_memory_address().wrapping_sub(base),
        Mnemonic::Mov if facts.fixed && i.op_count() == 2 && i.op0_kind() == OpKind::Register => {
            i.try_immediate(1).ok()?
        }
        _ => return None,
    };
    facts.is_code(a).then_some(a)
}

/// The code offsets of the jump table block `b`'s indirect jump reads, if it reads one, as
/// far as its bound (checked by the block `check` that falls through to `b`, or by `b`).
fn table_targets(facts: &ElfFacts, data: &[u8], base: u64, b: &Block, check: Option<&Block>) -> Vec<u64> {
    let Some((table, index)) = jump_table(&b.insns, base) else {
        return Vec::new();
    };
    let checks = check.map_or(&[][..], |c| &c.insns[..]).iter().chain(&b.insns);
    let bound = table_bound(checks, index);
    let Table::Relative { at, from } = table else {
        return table_entries(facts, data, table, bound, |t| facts.is_code(t));
    };
    if let (Place::Known(_), Place::Known(_)) = (at, from) {
        return table_entries(facts, data, table, bound, |t| facts.is_code(t));
    }
    // Addresses a register may hold, as far as the entries lead into the function.
    let jmp = b.insns.last().map_or(0, |l| l.ip().wrapping_sub(base));
    let Some((start, end)) = facts.function_at(jmp) else {
        return Vec::new();
    };
    let candidates = |p: Place, code: bool| match p {
        Place::Known(a) => vec![a],
        Place::In(r) => loads_of(facts, data, base, (start, end), r)
            .into_iter()
            .filter(|&a| facts.is_code(a) == code)
            .take(MOST_CANDIDATES)
            .collect(),
    };
    let froms = candidates(from, from != at);
    let mut targets = Vec::new();
    for t in candidates(at, false) {
        for &f in froms.iter().filter(|_| from != at).chain((from == at).then_some(&t)) {
            let table = Table::Relative {
                at: Place::Known(t),
                from: Place::Known(f),
            };
            targets.extend(table_entries(facts, data, table, bound, |t| (start..end).contains(&t)));
        }
    }
    targets
}

/// The code addresses table `t` holds: `bound` entries that are `valid`, or where there is
/// no bound, those before the first that is not.
fn table_entries(facts: &ElfFacts, data: &[u8], t: Table, bound: Option<u64>, valid: impl Fn(u64) -> bool) -> Vec<u64> {
    let most = bound.unwrap_or(UNBOUNDED_TABLE).min(LARGEST_TABLE);
    let mut targets = Vec::new();
    for i in 0..most {
        let target = match t {
            Table::Absolute(at) => facts.word::<8>(data, at + 8 * i).map(u64::from_le_bytes),
            Table::Relative {
                at: Place::Known(at),
                from: Place::Known(from),
            } => (facts.word::<4>(data, at + 4 * i)).map(|w| from.wrapping_add(i32::from_le_bytes(w) as i64 as u64)),
            Table::Relative { .. } => None,
        };
        match target {
            Some(t) if valid(t) => targets.push(t),
            // Past a table with no bound found, or a damaged entry in one with a bound.
            _ if bound.is_none() => break,
            _ => {}
        }
    }
    targets
}

/// The addresses `lea reg, [rip + a]` instructions of function `f` (start, end) load,
/// decoded straight through it, each once.
fn loads_of(facts: &ElfFacts, data: &[u8], base: u64, (start, end): (u64, u64), reg: Register) -> Vec<u64> {
    let Some(code) = facts.bytes_at(data, start, end - start) else {
        return Vec::new();
    };
    let decoder = iced_x86::Decoder::with_ip(64, code, base.wrapping_add(start), iced_x86::DecoderOptions::NONE);
    let mut loads: Vec<u64> = (decoder.into_iter())
        .filter(|i| i.mnemonic() == Mnemonic::Lea && i.op0_register().full_register() == reg)
        .filter(|i| i.is_ip_rel_memory_operand())
        .map(|i| i.ip_rel_memory_address().wrapping_sub(base))
        .collect();
    loads.sort_unstable();
    loads.dedup();
    loads
}

/// The jump table the indirect jump ending `insns` reads, and the register indexing it:
/// `jmp [table + index*8]`; `mov r, [table + index*8]` then `jmp r`; or, position
/// independent, `lea t, [rip + table]`, `movsxd r, [t + index*4]`, then `add r, f` and
/// `jmp r`, or `lea s, [f + r]` and `jmp s`, where `f` holds the table's address or a label's.
fn jump_table(insns: &[Instruction], base: u64) -> Option<(Table, Register)> {
    let (jmp, before) = insns.split_last()?;
    let absolute = |i: &Instruction| {
        let plain = i.memory_base() == Register::None && i.memory_index_scale() == 8;
        (plain && i.memory_index() != Register::None)
            .then(|| (Table::Absolute(i.memory_displacement64()), i.memory_index()))
    };
    if jmp.op0_kind() == OpKind::Memory {
        return absolute(jmp);
    }
    let target = jmp.op0_register().full_register();
    let def = last_write(before, target)?;
    // The register holding the address the entries are offsets from, and the one holding
    // the loaded entry.
    let (from, loaded) = match before[def].mnemonic() {
        Mnemonic::Mov if before[def].op1_kind() == OpKind::Memory => return absolute(&before[def]),
        Mnemonic::Add if before[def].op1_kind() == OpKind::Register => {
            (before[def].op1_register().full_register(), target)
        }
        Mnemonic::Lea if before[def].memory_index_scale() == 1 && before[def].memory_displacement64() == 0 => (
            before[def].memory_base().full_register(),
            before[def].memory_index().full_register(),
        ),
        _ => return None,
    };
    let load = last_write(&before[..def], loaded)?;
    let l = &before[load];
    let relative = l.mnemonic() == Mnemonic::Movsxd && l.op1_kind() == OpKind::Memory && l.memory_index_scale() == 4;
    let at = l.memory_base().full_register();
    let place = |r: Register, upto: usize| match last_write(&before[..upto], r).map(|i| &before[i]) {
        Some(lea) if lea.mnemonic() == Mnemonic::Lea && lea.is_ip_rel_memory_operand() => {
            Some(Place::Known(lea.ip_rel_memory_address().wrapping_sub(base)))
        }
        Some(_) => None,
        None => Some(Place::In(r)),
    };
    let table = Table::Relative {
        at: place(at, load)?,
        from: place(from, def)?,
    };
    relative.then_some((table, l.memory_index()))
}

/// The position of the last instruction of `insns` that writes register `r` (whole or in
/// part) as its first operand.
fn last_write(insns: &[Instruction], r: Register) -> Option<usize> {
    let writes =
        |i: &Instruction| i.op_count() > 0 && i.op0_kind() == OpKind::Register && i.op0_register().full_register() == r;
    insns.iter().rposition(writes)
}

/// The number of entries a jump table indexed by `index` has, from the last `cmp index, n`
/// followed at once by `ja` (n + 1 entries) or `jae` (n) among `insns`.
fn table_bound<'a>(insns: impl Iterator<Item = &'a Instruction>, index: Register) -> Option<u64> {
    let insns: Vec<&Instruction> = insns.collect();
    let same = |r: Register| r.full_register() == index.full_register();
    (insns.windows(2).rev()).find_map(|w| {
        let (cmp, jcc) = (w[0], w[1]);
        let compares =
            cmp.mnemonic() == Mnemonic::Cmp && cmp.op0_kind() == OpKind::Register && same(cmp.op0_register());
        let n = compares.then(|| cmp.try_immediate(1).ok()).flatten()?;
        match jcc.mnemonic() {
            Mnemonic::Ja => Some(n.saturating_add(1)),
            Mnemonic::Jae => Some(n),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_block;

    /// movsxd rcx, [rdx + rcx*4]; add rcx, rdx; jmp rcx
    fn code_without_lea() -> Vec<u8> {
        vec![0x48, 0x63, 0x0c, 0x8a, 0x48, 0x01, 0xd1, 0xff, 0xe1]
    }

    fn insns(code: &[u8], rip: u64) -> Vec<Instruction> {
        decode_block(code, rip, |_| Some(0)).insns
    }

    #[test]
    fn jump_tables_and_their_bounds_are_read() {
        // cmp eax, 5; ja +0x20 / jmp [rax*8 + 0x600000]
        let check = insns(&[0x83, 0xf8, 0x05, 0x77, 0x20], 0x1000);
        let jump = insns(&[0xff, 0x24, 0xc5, 0x00, 0x00, 0x60, 0x00], 0x1005);
        let Some((Table::Absolute(0x60_0000), Register::RAX)) = jump_table(&jump, 0) else {
            panic!("an absolute table");
        };
        assert_eq!(table_bound(check.iter().chain(&jump), Register::RAX), Some(6));
        // lea rdx, [rip + 0x100]; movsxd rax, [rdx + rax*4]; add rax, rdx; jmp rax
        let code = [
            0x48, 0x8d, 0x15, 0x00, 0x01, 0x00, 0x00, 0x48, 0x63, 0x04, 0x82, 0x48, 0x01, 0xd0, 0xff, 0xe0,
        ];
        let known = Table::Relative {
            at: Place::Known(0x2107),
            from: Place::Known(0x2107),
        };
        assert_eq!(
            jump_table(&insns(&code, 0x7000_2000), 0x7000_0000),
            Some((known, Register::RAX))
        );
        // lea r10, [rip + 0x100]; movsxd r9, [r10 + r9*4]; lea r10, [r10 + r9]; jmp r10
        let code = [
            0x4c, 0x8d, 0x15, 0x00, 0x01, 0x00, 0x00, 0x4f, 0x63, 0x0c, 0x8a, 0x4f, 0x8d, 0x14, 0x0a, 0x41, 0xff, 0xe2,
        ];
        assert_eq!(
            jump_table(&insns(&code, 0x7000_2000), 0x7000_0000),
            Some((known, Register::R9))
        );
        // The table's address loaded out of the block: found in the function.
        let elsewhere = Table::Relative {
            at: Place::In(Register::RDX),
            from: Place::In(Register::RDX),
        };
        assert_eq!(
            jump_table(&insns(&code_without_lea(), 0x1000), 0),
            Some((elsewhere, Register::RCX))
        );
        // A computed goto: offsets from a label, not from the table.
        // lea rsi, [rip + 0x10]; movzx eax, byte [rdi + rax]; movsxd rax, [rcx + rax*4]; add rax, rsi; jmp rax
        let code = [
            0x48, 0x8d, 0x35, 0x10, 0x00, 0x00, 0x00, 0x0f, 0xb6, 0x04, 0x07, 0x48, 0x63, 0x04, 0x81, 0x48, 0x01, 0xf0,
            0xff, 0xe0,
        ];
        let goto = Table::Relative {
            at: Place::In(Register::RCX),
            from: Place::Known(0x1017),
        };
        assert_eq!(jump_table(&insns(&code, 0x1000), 0), Some((goto, Register::RAX)));
        // jae: n entries; another register's compare bounds nothing.
        let jae = insns(&[0x83, 0xf9, 0x05, 0x73, 0x20], 0x1000);
        assert_eq!(table_bound(jae.iter(), Register::RCX), Some(5));
        assert_eq!(table_bound(jae.iter(), Register::RAX), None);
    }
}
