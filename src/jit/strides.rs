//! Accesses of a loop whose address needs no check on every round. An access that every round
//! makes (in a block that each way back to the loop's head passes through) through registers
//! that the loop only moves by constants (`add`/`sub` of an immediate, `inc`, `dec`,
//! `lea r, [r+d]`) lies, from one round to the next, at most the sum of those constants away,
//! and so does the first round's from where the registers stood on the way in: within
//! `mem::REACH_STEP` with its displacement, where that sum is small. The registers' part is
//! checked once on every way into the loop (`region::check_strided`); after that, a round's
//! access lies that little from the last round's, which did not fault and so lay in the guest
//! space: it lands in the guest space or faults in the guard above it (`mem::GUARD`), as any
//! access from a value in reach does. A `memset` loop or an array walk then checks nothing on
//! a round where it checked every access.

use super::lower::Regs;
use crate::decode::Region;
use crate::mem::REACH_STEP;
use iced_x86::{Instruction, Mnemonic, OpAccess, OpKind, Register};
use std::collections::HashSet;

/// An access of a loop that needs no check on a round (`strided_accesses`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Strided {
    /// The instruction's block and its position there.
    pub block: usize,
    pub at: usize,
    /// Its base register (a GPR number).
    pub base: Option<usize>,
    /// Its index register and the index's scale.
    pub index: Option<(usize, u32)>,
}

/// Per block: the accesses of the loop it heads that need no check on a round (none for a
/// block that heads no loop). Only for a loop whose head is no call's return site (so that
/// every way in is an edge of the region or, at the region's head, the unit's entry, each of
/// which checks the first round's addresses), with no inner loop and no call that leaves the
/// region.
pub fn strided_accesses(
    region: &Region,
    retreating: &HashSet<(usize, usize)>,
    bodies: &[Option<Vec<usize>>],
    idom: &[Option<usize>],
) -> Vec<Vec<Strided>> {
    (bodies.iter().enumerate())
        .map(|(head, body)| match body {
            Some(body) if plain_loop(region, retreating, head, body) => {
                let steps = steps_in(region, body);
                (every_round(retreating, idom, head, body).into_iter())
                    .flat_map(|k| {
                        region.blocks[k]
                            .insns
                            .iter()
                            .enumerate()
                            .map(move |(at, ins)| (k, at, ins))
                    })
                    .filter_map(|(block, at, ins)| strided(ins, &steps).map(|s| Strided { block, at, ..s }))
                    .collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

/// Whether every round of the loop at `head` runs its blocks at most once each (no inner
/// loop), no way into it is a call's return (every way in is then an edge of the region or
/// the unit's entry, which can check), and no register changes out of sight (a call that
/// leaves the region).
fn plain_loop(region: &Region, retreating: &HashSet<(usize, usize)>, head: usize, body: &[usize]) -> bool {
    let inner = retreating
        .iter()
        .any(|&(a, b)| b != head && body.contains(&a) && body.contains(&b));
    let return_site = region.returns.contains(&Some(head));
    let calls = (body.iter()).any(|&k| crate::decode::return_site(&region.blocks[k]).is_some() && !region.inlined[k]);
    !inner && !return_site && !calls
}

/// Per GPR: the most the loop's blocks may move it by in a round (the sum of the constants
/// they add or subtract), or None where something else writes it.
fn steps_in(region: &Region, body: &[usize]) -> [Option<u64>; 16] {
    let mut steps = [Some(0u64); 16];
    for ins in body.iter().flat_map(|&k| &region.blocks[k].insns) {
        for (r, written) in Regs::written_by(ins).gprs().into_iter().enumerate() {
            if written {
                steps[r] = steps[r]
                    .zip(step_of(ins, r))
                    .map(|(s, d)| s.saturating_add(d.unsigned_abs()));
            }
        }
    }
    steps
}

/// The constant `ins` adds to GPR `r`, where that is all it does to it: `add r, imm`,
/// `sub r, imm`, `inc r`, `dec r`, `lea r, [r+d]`, all of 64 bits.
fn step_of(ins: &Instruction, r: usize) -> Option<i64> {
    let is_r = |reg: Register| reg.is_gpr64() && reg.number() == r;
    if ins.op0_kind() != OpKind::Register || !is_r(ins.op0_register()) {
        return None;
    }
    let imm = matches!(ins.op1_kind(), OpKind::Immediate8to64 | OpKind::Immediate32to64);
    match ins.mnemonic() {
        Mnemonic::Add if imm => Some(ins.immediate64() as i64),
        Mnemonic::Sub if imm => (ins.immediate64() as i64).checked_neg(),
        Mnemonic::Inc if ins.op_count() == 1 => Some(1),
        Mnemonic::Dec if ins.op_count() == 1 => Some(-1),
        Mnemonic::Lea
            if is_r(ins.memory_base()) && ins.memory_index() == Register::None && ins.memory_size().size() == 0 =>
        {
            Some(ins.memory_displacement64() as i64)
        }
        _ => None,
    }
}

/// The blocks of the loop at `head` (its `body`) that every round runs: those that each of
/// its edges back to the head comes from or passes through (dominates, `idom`).
fn every_round(
    retreating: &HashSet<(usize, usize)>,
    idom: &[Option<usize>],
    head: usize,
    body: &[usize],
) -> Vec<usize> {
    // The blocks from `k` up through its dominators to the head, which dominates the loop.
    let up_to_head = |mut k: usize| {
        let mut path = vec![k];
        while let (false, Some(d)) = (k == head, idom[k]) {
            k = d;
            path.push(k);
        }
        path
    };
    let latches = body.iter().filter(|&&k| retreating.contains(&(k, head)));
    let paths: Vec<Vec<usize>> = latches.map(|&k| up_to_head(k)).collect();
    let mut every: Vec<usize> = (body.iter().copied())
        .filter(|k| !paths.is_empty() && paths.iter().all(|p| p.contains(k)))
        .collect();
    every.sort_unstable();
    every
}

/// `ins` as an access that needs no check on a round, where it is one (`plain_access`)
/// through registers the loop moves by at most `REACH_STEP` in all (`steps`), its
/// displacement included.
fn strided(ins: &Instruction, steps: &[Option<u64>; 16]) -> Option<Strided> {
    let (base, index, scale) = plain_access(ins)?;
    let step = |r: Option<usize>| r.map_or(Some(0), |r| steps[r]);
    let round = step(base)?.checked_add(step(index)?.checked_mul(u64::from(scale))?)?;
    let disp = ins.memory_displacement64() as i64;
    (round.checked_add(disp.unsigned_abs())? <= REACH_STEP).then_some(Strided {
        block: 0,
        at: 0,
        base,
        index: index.map(|r| (r, scale)),
    })
}

/// For an instruction whose one memory operand it always reads or writes, and no other
/// memory: its base and index registers (GPR numbers, 64-bit addressing, at least one) and the
/// index's scale. Not an access through `fs` or `gs` (their base is added), relative to rip (a
/// constant address), a `lea`, `nop` or prefetch (no access) or one under a mask or condition.
fn plain_access(ins: &Instruction) -> Option<(Option<usize>, Option<usize>, u32)> {
    let operands = (0..ins.op_count())
        .filter(|&k| ins.op_kind(k) == OpKind::Memory)
        .count();
    if operands != 1 || matches!(ins.memory_segment(), Register::FS | Register::GS) || bit_offset(ins) {
        return None;
    }
    let mut info = iced_x86::InstructionInfoFactory::new();
    let used = info.info(ins).used_memory();
    let always = [
        OpAccess::Read,
        OpAccess::Write,
        OpAccess::ReadWrite,
        OpAccess::ReadCondWrite,
    ];
    if used.len() != 1 || !always.contains(&used[0].access()) {
        return None;
    }
    let gpr = |reg: Register| match reg {
        Register::None => Some(None),
        r if r.is_gpr64() => Some(Some(r.number())),
        _ => None,
    };
    let (base, index) = (gpr(ins.memory_base())?, gpr(ins.memory_index())?);
    (base.is_some() || index.is_some()).then_some((base, index, ins.memory_index_scale()))
}

/// Whether `ins` tests a bit of memory at a register's bit offset, which moves the access
/// away from its operand's address by as much as the register says.
fn bit_offset(ins: &Instruction) -> bool {
    matches!(
        ins.mnemonic(),
        Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc
    ) && ins.op1_kind() == OpKind::Register
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Instruction {
        iced_x86::Decoder::with_ip(64, bytes, 0x1000, iced_x86::DecoderOptions::NONE).decode()
    }

    #[test]
    fn constant_moves_of_a_register_are_its_steps() {
        assert_eq!(step_of(&decode(&[0x48, 0x83, 0xc0, 0x04]), 0), Some(4)); // add rax, 4
        assert_eq!(step_of(&decode(&[0x48, 0x83, 0xe9, 0x08]), 1), Some(-8)); // sub rcx, 8
        assert_eq!(step_of(&decode(&[0x48, 0xff, 0xc2]), 2), Some(1)); // inc rdx
        assert_eq!(step_of(&decode(&[0x48, 0x8d, 0x76, 0x10]), 6), Some(16)); // lea rsi, [rsi+16]
                                                                              // A 32-bit add zero-extends; another register's lea; an add of a register.
        assert_eq!(step_of(&decode(&[0x83, 0xc0, 0x04]), 0), None); // add eax, 4
        assert_eq!(step_of(&decode(&[0x48, 0x8d, 0x77, 0x10]), 6), None); // lea rsi, [rdi+16]
        assert_eq!(step_of(&decode(&[0x48, 0x01, 0xd8]), 0), None); // add rax, rbx
    }

    #[test]
    fn only_an_access_that_always_happens_through_general_registers_is_plain() {
        // mov [r12+rax], cl
        assert_eq!(
            plain_access(&decode(&[0x41, 0x88, 0x0c, 0x04])),
            Some((Some(12), Some(0), 1))
        );
        // add r14d, [r13+rdi]
        assert_eq!(
            plain_access(&decode(&[0x45, 0x03, 0x74, 0x3d, 0x00])),
            Some((Some(13), Some(7), 1))
        );
        // lea, prefetch, rip-relative, fs-relative, push of memory (two accesses), a bit test
        // at a register's offset
        for bytes in [
            &[0x48, 0x8d, 0x04, 0x08][..],
            &[0x0f, 0x18, 0x08],
            &[0x48, 0x8b, 0x05, 0, 0, 0, 0],
            &[0x64, 0x48, 0x8b, 0x00],
            &[0xff, 0x30],
            &[0x48, 0x0f, 0xa3, 0x18],
        ] {
            assert_eq!(plain_access(&decode(bytes)), None, "{bytes:02x?}");
        }
    }
}
