//! Regions (decision 6): many guest blocks translated as one unit. A region starts at its
//! head and holds the blocks reachable from there through static edges (fall-through, direct
//! jumps, both sides of conditional branches; never calls, returns or indirect branches) that
//! the caller admits, within a span of guest bytes from the head. Inside a region control
//! moves between blocks without leaving the unit; every other way out is an exit. The same
//! blocks admitted give the same region.

use super::{flag_liveness_from, Block, ARITH_FLAGS};
use iced_x86::{FlowControl, Mnemonic, OpKind};
use std::collections::{HashMap, VecDeque};

/// How large a region may grow.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub blocks: usize,
    /// Guest bytes from the head: every block lies in [head, head + span).
    pub span: u64,
}

pub struct Region {
    /// The head first, then the others in the order they were reached.
    pub blocks: Vec<Block>,
    /// Per block: where its end may continue at translation time, each with the index of
    /// its block when that is inside the region (`static_targets`).
    pub targets: Vec<Vec<(u64, Option<usize>)>>,
    /// Per block: whether the flags are read on entry (before being written).
    pub flags_in: Vec<bool>,
}

impl Region {
    /// A region of one block: every way out is an exit.
    pub fn single(mut block: Block) -> Region {
        block.flags_live = super::flag_liveness(&block.insns);
        let targets = vec![static_targets(&block).into_iter().map(|t| (t, None)).collect()];
        Region {
            blocks: vec![block],
            targets,
            flags_in: vec![true],
        }
    }

    pub fn head(&self) -> u64 {
        self.blocks[0].start
    }

    /// One past the last guest byte of any block: the unit covers [head, end).
    pub fn end(&self) -> u64 {
        self.blocks.iter().map(|b| b.start + b.len).max().unwrap_or(0)
    }

    pub fn ninsns(&self) -> usize {
        self.blocks.iter().map(|b| b.insns.len()).sum()
    }

    /// Grows the region at `head`: `fetch` decodes the block at an address (None where there
    /// is none to run), `admit` says which addresses may join.
    pub fn form(
        head: u64,
        limits: Limits,
        mut fetch: impl FnMut(u64) -> Option<Block>,
        admit: impl Fn(u64) -> bool,
    ) -> Option<Region> {
        let mut blocks: Vec<Block> = Vec::new();
        let mut index = HashMap::new();
        let mut queue = VecDeque::from([head]);
        let mut seen = std::collections::HashSet::from([head]);
        while let Some(at) = queue.pop_front() {
            if blocks.len() == limits.blocks {
                break;
            }
            let fits = |b: &Block| !b.insns.is_empty() && b.stop.is_none() && b.start + b.len - head <= limits.span;
            let Some(b) = fetch(at).filter(fits) else {
                continue;
            };
            for t in static_targets(&b) {
                if t >= head && t - head < limits.span && admit(t) && seen.insert(t) {
                    queue.push_back(t);
                }
            }
            index.insert(at, blocks.len());
            blocks.push(b);
        }
        if blocks.first()?.start != head {
            return None;
        }
        let targets: Vec<Vec<(u64, Option<usize>)>> = blocks
            .iter()
            .map(|b| {
                static_targets(b)
                    .into_iter()
                    .map(|t| (t, index.get(&t).copied()))
                    .collect()
            })
            .collect();
        let mut region = Region {
            flags_in: vec![false; blocks.len()],
            blocks,
            targets,
        };
        region.flag_liveness();
        Some(region)
    }

    /// Flag liveness over the whole region: flags written in one block and read by none of
    /// the blocks it leads to inside the region are dead, unless the block also exits.
    fn flag_liveness(&mut self) {
        let n = self.blocks.len();
        let mut live_in = vec![0u32; n];
        loop {
            let mut changed = false;
            for i in (0..n).rev() {
                let exits = self.targets[i].is_empty() || self.targets[i].iter().any(|(_, j)| j.is_none());
                let out = if exits {
                    ARITH_FLAGS
                } else {
                    self.targets[i]
                        .iter()
                        .filter_map(|(_, j)| *j)
                        .fold(0, |m, j| m | live_in[j])
                };
                let (live, inn) = flag_liveness_from(&self.blocks[i].insns, out);
                self.blocks[i].flags_live = live;
                changed |= inn != live_in[i];
                live_in[i] = inn;
            }
            if !changed {
                break;
            }
        }
        self.flags_in = live_in.iter().map(|&m| m != 0).collect();
    }
}

/// Where a block's end may continue, known at translation time: its fall-through, the
/// target of a direct jump, or both sides of a conditional branch. Calls, returns, indirect
/// branches and system calls have none inside a region.
pub fn static_targets(b: &Block) -> Vec<u64> {
    let Some(last) = b.insns.last() else {
        return Vec::new();
    };
    let next = last.next_ip();
    let direct = matches!(last.op0_kind(), OpKind::NearBranch64);
    match last.flow_control() {
        _ if b.stop.is_some() || last.mnemonic() == Mnemonic::Syscall => Vec::new(),
        FlowControl::Next => vec![next],
        FlowControl::ConditionalBranch if direct => vec![last.near_branch_target(), next],
        FlowControl::UnconditionalBranch if direct => vec![last.near_branch_target()],
        _ => Vec::new(),
    }
}
