//! Regions (decision 6): many guest blocks translated as one unit. A region starts at its
//! head and holds the blocks reachable from there through static edges (fall-through, direct
//! jumps, both sides of conditional branches; never calls, returns or indirect branches) that
//! the caller admits, within a span of guest bytes from the head, and the return sites of the
//! calls its blocks end in. Inside a region control moves between blocks without leaving the
//! unit; a call leaves it for the callee and comes back to its return site when the callee
//! returns there, unless the callee is small enough to be inlined: its blocks then join the
//! region wherever they lie, the call jumps to its entry, and each of its returns goes on at
//! the return sites of the calls inlined there when the address it pops is one of them. Every
//! other way out is an exit. The same blocks admitted give the same region.

use super::{flag_liveness_from, Block, ARITH_FLAGS};
use iced_x86::{FlowControl, Mnemonic, OpKind};
use std::collections::{HashMap, HashSet, VecDeque};

/// How large a region may grow.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub blocks: usize,
    /// Guest bytes from the head: every block lies in [head, head + span).
    pub span: u64,
    /// Whether the return sites of the region's calls join it.
    pub returns: bool,
    /// The most guest instructions a direct call's callee may have for its blocks to join the
    /// region (`Region::inlined`); 0 inlines none.
    pub inline: usize,
}

pub struct Region {
    /// The head first, then the others in reverse postorder (`in_reverse_postorder`).
    pub blocks: Vec<Block>,
    /// Per block: where its end may continue at translation time, each with the index of
    /// its block when that is inside the region (`static_targets`).
    pub targets: Vec<Vec<(u64, Option<usize>)>>,
    /// Per block: for one that ends in a call, the block of the region at its return site,
    /// where the code continues when the callee returns there (`return_site`); None for an
    /// inlined call, whose callee's returns lead there.
    pub returns: Vec<Option<usize>>,
    /// Per block: whether it ends in a call whose callee is inlined. Its one target is then
    /// the callee's entry, and the targets of the callee's returns are the return sites of the
    /// calls inlined there (a return to any other address leaves the region).
    pub inlined: Vec<bool>,
    /// Per block: whether the flags are read on entry (before being written).
    pub flags_in: Vec<bool>,
    /// Per block: the flags what may run after it reads (iced's `RflagsBits`).
    pub flags_out: Vec<u32>,
    /// The flags read on entry by code outside the region that its blocks continue at,
    /// where the caller of `form` knows them; code anywhere else may read them all.
    pub outside: HashMap<u64, u32>,
}

impl Region {
    /// A region of one block: every way out is an exit.
    pub fn single(mut block: Block) -> Region {
        block.flags_live = super::flag_liveness(&block.insns);
        let targets = vec![static_targets(&block).into_iter().map(|t| (t, None)).collect()];
        Region {
            blocks: vec![block],
            targets,
            returns: vec![None],
            inlined: vec![false],
            flags_in: vec![true],
            flags_out: vec![ARITH_FLAGS],
            outside: HashMap::new(),
        }
    }

    pub fn head(&self) -> u64 {
        self.blocks[0].start
    }

    /// One past the last guest byte of the blocks that lie after the head and within 32 KiB
    /// less a byte of it (compiled code keeps distances there in 16 signed bits, and every
    /// block but an inlined callee's lies there): the unit covers [head, end) and the
    /// `outer_ranges`.
    pub fn end(&self) -> u64 {
        let head = self.head();
        (self.blocks.iter())
            .map(|b| b.start + b.len)
            .filter(|e| e.wrapping_sub(head) <= i16::MAX as u64)
            .max()
            .unwrap_or(0)
    }

    /// The guest bytes the region's inlined callees hold beyond [head, end): sorted ranges
    /// (start, length), each the union of blocks that touch or overlap.
    pub fn outer_ranges(&self) -> Vec<(u64, u64)> {
        let (head, end) = (self.head(), self.end());
        let mut outer: Vec<(u64, u64)> = (self.blocks.iter())
            .filter(|b| b.start < head || b.start >= end)
            .map(|b| (b.start, b.start + b.len))
            .collect();
        outer.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in outer {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged.into_iter().map(|(s, e)| (s, e - s)).collect()
    }

    pub fn ninsns(&self) -> usize {
        self.blocks.iter().map(|b| b.insns.len()).sum()
    }

    /// Grows the region at `head`: `fetch` decodes the block at an address (None where there
    /// is none to run), `admit` says which addresses may join, `flags_at` which flags the code
    /// at an address outside the region reads on entry, where that is known and stays so,
    /// given the flags read after a `ret` that ends the block there (for a callee: what its
    /// return site reads).
    pub fn form(
        head: u64,
        limits: Limits,
        fetch: impl FnMut(u64) -> Option<Block>,
        admit: impl Fn(u64) -> bool,
        flags_at: impl Fn(u64, u32) -> Option<u32>,
    ) -> Option<Region> {
        let (mut blocks, inlined) = gather(head, limits, fetch, admit);
        if blocks.first()?.start != head {
            return None;
        }
        end_at_other_starts(&mut blocks);
        let is_inlined = |b: &Block| b.insns.last().is_some_and(|l| inlined.contains_key(&l.ip()));
        let return_targets = returns_of_inlined(&blocks, &inlined);
        // Where a block goes on: an inlined call at its callee's entry, an inlined callee's
        // return at the return sites of the calls inlined there.
        let ends = |b: &Block| -> Vec<u64> {
            if is_inlined(b) {
                return direct_call_target(b).into_iter().collect();
            }
            match return_targets.get(&b.start) {
                Some(sites) => sites.clone(),
                None => static_targets(b),
            }
        };
        let blocks = in_reverse_postorder(blocks, |b| {
            let back = return_site(b).filter(|_| !is_inlined(b));
            ends(b).into_iter().chain(back).collect()
        });
        let index: HashMap<u64, usize> = blocks.iter().enumerate().map(|(i, b)| (b.start, i)).collect();
        let targets: Vec<Vec<(u64, Option<usize>)>> = (blocks.iter())
            .map(|b| ends(b).into_iter().map(|t| (t, index.get(&t).copied())).collect())
            .collect();
        let inlined: Vec<bool> = blocks.iter().map(is_inlined).collect();
        let returns = (blocks.iter().zip(&inlined))
            .map(|(b, &inl)| return_site(b).filter(|_| !inl).and_then(|t| index.get(&t).copied()))
            .collect();
        let outside = flags_outside(&blocks, &targets, &inlined, flags_at);
        let mut region = Region {
            flags_in: vec![false; blocks.len()],
            flags_out: vec![ARITH_FLAGS; blocks.len()],
            blocks,
            targets,
            returns,
            inlined,
            outside,
        };
        region.flag_liveness();
        Some(region)
    }

    /// The blocks of the region that block `i` continues in: its static targets inside the
    /// region, then its return site.
    pub fn successors(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let inner = self.targets[i].iter().filter_map(|&(_, j)| j);
        inner.chain(self.returns[i])
    }

    /// Per block: its immediate dominator (the last block that every path from the head to it
    /// passes through), None for the head.
    pub fn dominators(&self) -> Vec<Option<usize>> {
        let n = self.blocks.len();
        let mut preds = vec![Vec::new(); n];
        for i in 0..n {
            for j in self.successors(i) {
                preds[j].push(i);
            }
        }
        // dom[j]: the blocks that dominate j, as a bit set; every block at first but the head.
        let mut dom: Vec<Vec<bool>> = (0..n).map(|j| (0..n).map(|k| j != 0 || k == 0).collect()).collect();
        let mut changed = true;
        while changed {
            changed = false;
            for j in 1..n {
                let mut d: Vec<bool> = vec![!preds[j].is_empty(); n];
                for &p in &preds[j] {
                    d.iter_mut().zip(&dom[p]).for_each(|(x, &y)| *x &= y);
                }
                d[j] = true;
                if d != dom[j] {
                    dom[j] = d;
                    changed = true;
                }
            }
        }
        // The immediate dominator is the strict dominator that the most blocks dominate.
        let depth = |k: usize| dom[k].iter().filter(|&&x| x).count();
        (0..n)
            .map(|j| (0..n).filter(|&k| k != j && dom[j][k]).max_by_key(|&k| depth(k)))
            .collect()
    }

    /// The edges (from block, to block) that close a cycle in a depth-first walk from the
    /// head: every cycle of the region has one.
    pub fn retreating_edges(&self) -> HashSet<(usize, usize)> {
        let successors: Vec<Vec<usize>> = (0..self.blocks.len()).map(|i| self.successors(i).collect()).collect();
        depth_first(&successors).retreating
    }

    /// Per block that heads a loop: the blocks of its loops, the head's own first. A loop is
    /// a retreating edge (of `retreating`, `retreating_edges`) whose source the head dominates
    /// (`idom`, `dominators`), with every block that reaches that source without passing
    /// through the head. None for any other block.
    pub fn loop_bodies(&self, retreating: &HashSet<(usize, usize)>, idom: &[Option<usize>]) -> Vec<Option<Vec<usize>>> {
        let n = self.blocks.len();
        let mut preds = vec![Vec::new(); n];
        for i in 0..n {
            for j in self.successors(i) {
                preds[j].push(i);
            }
        }
        let dominates = |head: usize, mut k: usize| loop {
            if k == head {
                return true;
            }
            match idom[k] {
                Some(d) => k = d,
                None => return false,
            }
        };
        let mut bodies: Vec<Option<Vec<usize>>> = vec![None; n];
        for &(latch, head) in retreating {
            if !dominates(head, latch) {
                continue;
            }
            let body = bodies[head].get_or_insert_with(|| vec![head]);
            let mut work = vec![latch];
            while let Some(k) = work.pop() {
                if !body.contains(&k) {
                    body.push(k);
                    work.extend(&preds[k]);
                }
            }
        }
        bodies
    }

    /// The flags read by the code outside the region at `target`.
    pub fn flags_read_at(&self, target: u64) -> u32 {
        self.outside.get(&target).copied().unwrap_or(ARITH_FLAGS)
    }

    /// The flags read after block `i` by code outside the region: at its exits to known
    /// addresses what their code reads, after a direct call that is not inlined what the
    /// callee reads, after anything else (returns, indirect branches, system calls) every flag.
    fn flags_read_outside(&self, i: usize) -> u32 {
        let (targets, b) = (&self.targets[i], &self.blocks[i]);
        let callee = callee_left_for(b, self.inlined[i]);
        if ends_in_return(b) || targets.is_empty() && callee.is_none() {
            return ARITH_FLAGS;
        }
        exits_of(targets)
            .chain(callee)
            .fold(0, |m, t| m | self.flags_read_at(t))
    }

    /// Flag liveness over the whole region: flags written in one block and read by none of
    /// the blocks it leads to, inside the region or (where known) outside, are dead.
    fn flag_liveness(&mut self) {
        let n = self.blocks.len();
        let mut live_in = vec![0u32; n];
        let outside: Vec<u32> = (0..n).map(|i| self.flags_read_outside(i)).collect();
        loop {
            let mut changed = false;
            for i in (0..n).rev() {
                let out = self.targets[i]
                    .iter()
                    .filter_map(|(_, j)| *j)
                    .fold(outside[i], |m, j| m | live_in[j]);
                let (live, inn) = flag_liveness_from(&self.blocks[i].insns, out);
                self.blocks[i].flags_live = live;
                self.flags_out[i] = out;
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

/// The blocks of the region at `head` (the head first, if it can run) and the calls inlined
/// (by the address of the call instruction, with the callee's entry): those `admit`ted that
/// its head reaches through static edges (and its calls' return sites, where `limits` say),
/// within its span, at most `limits.blocks` of them, breadth first; and the blocks of the
/// callees inlined (`callee_body`), at most half as many more.
fn gather(
    head: u64,
    limits: Limits,
    mut fetch: impl FnMut(u64) -> Option<Block>,
    admit: impl Fn(u64) -> bool,
) -> (Vec<Block>, HashMap<u64, u64>) {
    let mut blocks: Vec<Block> = Vec::new();
    let mut queue = VecDeque::from([head]);
    let mut seen = HashSet::from([head]);
    let mut inlined: HashMap<u64, u64> = HashMap::new();
    let (mut own, mut callee_room) = (0, limits.blocks / 2);
    while let Some(at) = queue.pop_front() {
        if own == limits.blocks {
            break;
        }
        let fits = |b: &Block| !b.insns.is_empty() && b.stop.is_none() && b.start + b.len - head <= limits.span;
        let Some(b) = fetch(at).filter(fits) else {
            continue;
        };
        let back = return_site(&b).filter(|_| limits.returns);
        for t in static_targets(&b).into_iter().chain(back) {
            if t >= head && t - head < limits.span && admit(t) && seen.insert(t) {
                queue.push_back(t);
            }
        }
        let call = direct_call_target(&b).filter(|_| back.is_some() && limits.inline > 0);
        let call_at = b.insns.last().map_or(0, |l| l.ip());
        blocks.push(b);
        own += 1;
        let Some(body) = call.and_then(|t| callee_body(t, limits.inline, callee_room, &mut fetch, &admit)) else {
            continue;
        };
        inlined.insert(call_at, body[0].start);
        // Blocks seen before are in the region already or queued to join it.
        let before = blocks.len();
        blocks.extend(body.into_iter().filter(|c| seen.insert(c.start)));
        callee_room -= blocks.len() - before;
    }
    (blocks, inlined)
}

/// What the code outside the region reads of the flags where the region's blocks leave for
/// it (`Region::outside`): at exits to known addresses, and at the callees of direct calls
/// that are not inlined (given what their return sites read).
fn flags_outside(
    blocks: &[Block],
    targets: &[Vec<(u64, Option<usize>)>],
    inlined: &[bool],
    flags_at: impl Fn(u64, u32) -> Option<u32>,
) -> HashMap<u64, u32> {
    let mut outside = HashMap::new();
    for ((ts, b), &inl) in targets.iter().zip(blocks).zip(inlined) {
        let reads = |t: u64, after_ret: u32| flags_at(t, after_ret).unwrap_or(ARITH_FLAGS);
        let exits = exits_of(ts).map(|t| (t, ARITH_FLAGS));
        // A callee returns to its return site (a return elsewhere, as a longjmp's, finds
        // flags a call does not keep by any convention).
        let back = return_site(b).map_or(ARITH_FLAGS, |r| reads(r, ARITH_FLAGS));
        let callee = callee_left_for(b, inl);
        for (t, after_ret) in exits.chain(callee.map(|t| (t, back))) {
            *outside.entry(t).or_insert(0) |= reads(t, after_ret);
        }
    }
    outside
}

/// Ends each block where another block of the region starts inside it, so that it falls
/// through to that block instead of holding a copy of its instructions: a block from before a
/// loop that ran on into the loop's first block (decoded before the loop's head was known to be
/// one) then meets the loop's edge at the head. The loop's body is translated once, and the
/// block after the head has the head as its one way in, so that what the head's checks found
/// holds there.
fn end_at_other_starts(blocks: &mut [Block]) {
    let starts: HashSet<u64> = blocks.iter().map(|b| b.start).collect();
    for b in blocks.iter_mut() {
        let Some(k) = (1..b.insns.len()).find(|&k| starts.contains(&b.insns[k].ip())) else {
            continue;
        };
        let len = b.insns[k].ip() - b.start;
        b.insns.truncate(k);
        b.routes.truncate(k);
        b.flags_live.truncate(k);
        b.bytes.truncate(len as usize);
        b.len = len;
    }
}

/// The blocks (the head first) in reverse postorder of a depth-first walk from the head over
/// the edges between them (`ends`: where a block continues): each block after every block that
/// dominates it, so that lowering meets a block's dominators, and the block before it that is
/// its one way in, before the block itself.
fn in_reverse_postorder(mut blocks: Vec<Block>, ends: impl Fn(&Block) -> Vec<u64>) -> Vec<Block> {
    let at: HashMap<u64, usize> = blocks.iter().enumerate().map(|(i, b)| (b.start, i)).collect();
    let successors: Vec<Vec<usize>> = (blocks.iter())
        .map(|b| ends(b).into_iter().filter_map(|t| at.get(&t).copied()).collect())
        .collect();
    let reached = depth_first(&successors).postorder;
    let unreached = (0..blocks.len()).filter(|i| !reached.contains(i));
    let order: Vec<usize> = reached.iter().rev().copied().chain(unreached).collect();
    let mut taken: Vec<Option<Block>> = blocks.drain(..).map(Some).collect();
    order.into_iter().filter_map(|i| taken[i].take()).collect()
}

/// The blocks of the callee at `t` when it may be inlined: those its entry reaches through
/// static edges and the return sites of its own calls, at most `room` of them with at most
/// `budget` instructions in all, every one runnable and with a return among them. A target
/// not admitted (code that did not run) is an exit; a callee that may leave otherwise (an
/// indirect jump, a system call) is not inlined: it would leave the code after the call, which
/// its return then reaches through the chaining table, out of the region.
fn callee_body(
    t: u64,
    budget: usize,
    room: usize,
    fetch: &mut impl FnMut(u64) -> Option<Block>,
    admit: &impl Fn(u64) -> bool,
) -> Option<Vec<Block>> {
    let mut body: Vec<Block> = Vec::new();
    let mut queue = VecDeque::from([t]);
    let mut seen = HashSet::from([t]);
    let (mut insns, mut returns) = (0, false);
    while let Some(at) = queue.pop_front() {
        if !admit(at) {
            continue;
        }
        let b = fetch(at).filter(|b| !b.insns.is_empty() && b.stop.is_none())?;
        insns += b.insns.len();
        let ret = ends_in_return(&b);
        let next: Vec<u64> = onward(&b).collect();
        if insns > budget || body.len() == room || next.is_empty() && !ret {
            return None;
        }
        returns |= ret;
        queue.extend(next.into_iter().filter(|n| seen.insert(*n)));
        body.push(b);
    }
    (returns && body.first().is_some_and(|b| b.start == t)).then_some(body)
}

/// Per block that ends in a return reached from the entry of an inlined callee (`inlined`:
/// call instruction address -> callee): the return sites of the calls inlined there, where
/// its return goes on when the address it pops is one of them. Reached through static edges
/// and the return sites of calls.
fn returns_of_inlined(blocks: &[Block], inlined: &HashMap<u64, u64>) -> HashMap<u64, Vec<u64>> {
    let at: HashMap<u64, &Block> = blocks.iter().map(|b| (b.start, b)).collect();
    let mut sites: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut calls: Vec<(u64, u64)> = (blocks.iter())
        .filter_map(|b| b.insns.last())
        .filter_map(|l| inlined.get(&l.ip()).map(|&t| (t, l.next_ip())))
        .collect();
    calls.sort_unstable();
    for (t, site) in calls {
        let mut work = vec![t];
        let mut seen = HashSet::from([t]);
        while let Some(a) = work.pop() {
            let Some(b) = at.get(&a) else { continue };
            if ends_in_return(b) {
                let s = sites.entry(a).or_default();
                if !s.contains(&site) {
                    s.push(site);
                }
                continue;
            }
            work.extend(onward(b).filter(|n| seen.insert(*n)));
        }
    }
    sites
}

/// What a depth-first walk from block 0 over `successors` (each block's, in order) finds.
struct DepthFirst {
    /// The blocks it reaches, each after every block it reaches from there first.
    postorder: Vec<usize>,
    /// The edges (from block, to block) that close a cycle: to a block on the walk's path.
    retreating: HashSet<(usize, usize)>,
}

fn depth_first(successors: &[Vec<usize>]) -> DepthFirst {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; successors.len()];
    let mut walk = DepthFirst {
        postorder: Vec::with_capacity(successors.len()),
        retreating: HashSet::new(),
    };
    // (block, how many of its successors were walked)
    let mut path = vec![(0usize, 0usize)];
    state[0] = ON_PATH;
    while let Some((i, k)) = path.pop() {
        let Some(&j) = successors[i].get(k) else {
            state[i] = DONE;
            walk.postorder.push(i);
            continue;
        };
        path.push((i, k + 1));
        match state[j] {
            NEW => {
                state[j] = ON_PATH;
                path.push((j, 0));
            }
            ON_PATH => {
                walk.retreating.insert((i, j));
            }
            _ => {}
        }
    }
    walk
}

/// The targets (as `Region::targets` holds them) outside the region.
fn exits_of(targets: &[(u64, Option<usize>)]) -> impl Iterator<Item = u64> + '_ {
    targets.iter().filter(|(_, j)| j.is_none()).map(|&(t, _)| t)
}

/// The target of the direct call that ends block `b`, if it ends in one.
pub fn direct_call_target(b: &Block) -> Option<u64> {
    let last = b.insns.last()?;
    (b.stop.is_none() && last.flow_control() == FlowControl::Call && last.op0_kind() == OpKind::NearBranch64)
        .then(|| last.near_branch_target())
}

/// The callee of the direct call that ends block `b`, where the region leaves for it (the call
/// is not `inlined`).
fn callee_left_for(b: &Block, inlined: bool) -> Option<u64> {
    direct_call_target(b).filter(|_| !inlined)
}

/// Whether block `b` ends in a return.
pub fn ends_in_return(b: &Block) -> bool {
    b.insns.last().is_some_and(|l| l.flow_control() == FlowControl::Return)
}

/// Where the code after block `b` goes on, known at translation time: its static targets,
/// and past a call (inlined or not) its return site.
fn onward(b: &Block) -> impl Iterator<Item = u64> {
    static_targets(b).into_iter().chain(return_site(b))
}

/// Where the code continues after the call that ends block `b`, if it ends in one: the
/// instruction after the call, where the callee returns.
pub fn return_site(b: &Block) -> Option<u64> {
    let last = b.insns.last()?;
    let call = matches!(last.flow_control(), FlowControl::Call | FlowControl::IndirectCall);
    (b.stop.is_none() && call).then(|| last.next_ip())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_block;

    const LIMITS: Limits = Limits {
        blocks: 8,
        span: 0x100,
        returns: true,
        inline: 0,
    };

    /// The region at 0x1000 of `code` (a jump or call to 0x2000 leaves it), with `flags_at`
    /// saying what the code at 0x2000 reads.
    fn region(code: &[u8], at_target: Option<u32>) -> Region {
        let fetch = |at: u64| (at == 0x1000).then(|| decode_block(code, at, |_| Some(0)));
        let flags_at = |t: u64, _| if t == 0x2000 { at_target } else { None };
        Region::form(0x1000, LIMITS, fetch, |_| true, flags_at).unwrap()
    }

    #[test]
    fn flags_an_exit_target_does_not_read_are_dead() {
        // cmp eax, ebx; jmp 0x2000
        let code = [0x39, 0xd8, 0xe9, 0xf9, 0x0f, 0x00, 0x00];
        let unknown = region(&code, None);
        assert_eq!(unknown.blocks[0].flags_live, vec![true, false]);
        assert_eq!(unknown.flags_out, vec![ARITH_FLAGS]);
        let written_first = region(&code, Some(0));
        assert_eq!(written_first.blocks[0].flags_live, vec![false, false]);
        assert_eq!(written_first.flags_out, vec![0]);
        // Reading only the carry keeps the compare's flags live.
        let carry = region(&code, Some(iced_x86::RflagsBits::CF));
        assert_eq!(carry.blocks[0].flags_live, vec![true, false]);
    }

    #[test]
    fn every_loop_has_one_retreating_edge_and_joins_have_none() {
        // 0x1000: test eax, eax; je 0x1006
        // 0x1004: jmp 0x1008            (both ways join at 0x1008)
        // 0x1006: jmp 0x1008
        // 0x1008: dec ecx; jne 0x1000   (the loop back to the head)
        // 0x100c: ret
        let code = [
            0x85, 0xc0, 0x74, 0x02, 0xeb, 0x02, 0xeb, 0x00, 0xff, 0xc9, 0x75, 0xf4, 0xc3,
        ];
        let fetch = |at: u64| Some(decode_block(&code[(at - 0x1000) as usize..], at, |_| Some(0)));
        let r = Region::form(0x1000, LIMITS, fetch, |_| true, |_, _| None).unwrap();
        let index = |a: u64| r.blocks.iter().position(|b| b.start == a).unwrap();
        let edges = r.retreating_edges();
        assert_eq!(edges.len(), 1, "{edges:?}");
        assert!(edges.contains(&(index(0x1008), 0)));
        // Both sides of the branch and their join hang off the head; the ret off the join.
        let idom = r.dominators();
        assert_eq!(idom[0], None);
        for a in [0x1004, 0x1006, 0x1008] {
            assert_eq!(idom[index(a)], Some(0), "{a:#x}");
        }
        assert_eq!(idom[index(0x100c)], Some(index(0x1008)));
    }

    #[test]
    fn a_loop_entered_by_running_into_it_is_translated_once_after_its_dominators() {
        // 0x1000: xor ecx, ecx
        // 0x1002: inc ecx; cmp ecx, 10; jl 0x1002    (the loop, entered by falling into it)
        // 0x1009: ret
        let code = [0x31, 0xc9, 0xff, 0xc1, 0x83, 0xf9, 0x0a, 0x7c, 0xf9, 0xc3];
        let fetch = |at: u64| Some(decode_block(&code[(at - 0x1000) as usize..], at, |_| Some(0)));
        let r = Region::form(0x1000, LIMITS, fetch, |_| true, |_, _| None).unwrap();
        let starts: Vec<u64> = r.blocks.iter().map(|b| b.start).collect();
        assert_eq!(starts, vec![0x1000, 0x1002, 0x1009]);
        // The head ends where the loop starts and falls through to it.
        assert_eq!((r.blocks[0].len, r.blocks[0].insns.len()), (2, 1));
        assert_eq!(r.targets[0], vec![(0x1002, Some(1))]);
        assert_eq!(r.blocks[0].bytes, code[..2]);
        // No instruction is in two blocks, and each block comes after its dominators.
        let mut ips: Vec<u64> = r.blocks.iter().flat_map(|b| b.insns.iter().map(|i| i.ip())).collect();
        ips.sort_unstable();
        ips.dedup();
        assert_eq!(ips.len(), r.ninsns());
        let idom = r.dominators();
        assert!((1..r.blocks.len()).all(|j| idom[j].is_some_and(|d| d < j)), "{idom:?}");
        assert_eq!(r.retreating_edges(), HashSet::from([(1, 1)]));
        assert_eq!(
            r.loop_bodies(&r.retreating_edges(), &idom),
            vec![None, Some(vec![1]), None]
        );
    }

    #[test]
    fn a_small_callee_is_inlined_and_its_return_goes_on_at_the_return_site() {
        // 0x1000: add eax, 1; call 0x9000
        // 0x1008: cmp eax, 3; ret
        // 0x9000: lea eax, [rax + 2]; test eax, eax; ret   (the callee, 32 KiB away)
        let mut code = vec![0x83, 0xc0, 0x01, 0xe8, 0xf8, 0x7f, 0x00, 0x00, 0x83, 0xf8, 0x03, 0xc3];
        code.resize(0x8000, 0x90);
        code.extend([0x8d, 0x40, 0x02, 0x85, 0xc0, 0xc3]);
        let fetch = |at: u64| Some(decode_block(&code[(at - 0x1000) as usize..], at, |_| Some(0)));
        let limits = |inline| Limits {
            span: 0x10,
            inline,
            ..LIMITS
        };
        let r = Region::form(0x1000, limits(8), fetch, |_| true, |_, _| None).unwrap();
        let index = |a: u64| r.blocks.iter().position(|b| b.start == a).unwrap();
        let (call, callee, site) = (index(0x1000), index(0x9000), index(0x1008));
        assert!(r.inlined[call] && !r.inlined[callee] && !r.inlined[site]);
        assert_eq!(r.targets[call], vec![(0x9000, Some(callee))]);
        assert_eq!(r.returns[call], None);
        assert_eq!(r.targets[callee], vec![(0x1008, Some(site))]);
        // The region's own return leaves it.
        assert!(r.targets[site].is_empty());
        // The callee's flags stay live for a return elsewhere (one that does not pop its
        // return site), as the return site's do for the region's own return.
        assert_eq!(r.blocks[callee].flags_live, vec![false, true, false]);
        assert_eq!(r.blocks[site].flags_live, vec![true, false]);
        assert_eq!((r.head(), r.end()), (0x1000, 0x100c));
        assert_eq!(r.outer_ranges(), vec![(0x9000, 6)]);
        // Too large a callee is called.
        let called = Region::form(0x1000, limits(2), fetch, |_| true, |_, _| None).unwrap();
        assert_eq!(called.blocks.len(), 2);
        assert!(!called.inlined.iter().any(|&i| i));
        assert!(called.outer_ranges().is_empty());
    }

    #[test]
    fn flags_after_a_direct_call_are_what_the_callee_reads() {
        // add eax, 1; call 0x2000
        let code = [0x83, 0xc0, 0x01, 0xe8, 0xf8, 0x0f, 0x00, 0x00];
        assert_eq!(region(&code, None).blocks[0].flags_live, vec![true, false]);
        assert_eq!(region(&code, Some(0)).blocks[0].flags_live, vec![false, false]);
        assert_eq!(region(&code, Some(0)).flags_read_at(0x3000), ARITH_FLAGS);
    }

    #[test]
    fn flags_through_a_callee_that_keeps_them_are_what_its_return_site_reads() {
        // add eax, 1; call 0x2000 (which returns to 0x1008 without writing the flags)
        let call = [0x83, 0xc0, 0x01, 0xe8, 0xf8, 0x0f, 0x00, 0x00];
        let callee = |after_ret: u32| {
            // lea eax, [rdi + 1]; ret
            let b = decode_block(&[0x8d, 0x47, 0x01, 0xc3], 0x2000, |_| Some(0));
            super::super::flags_live_after(&b.insns, after_ret).1
        };
        let fetch = |at: u64| (at == 0x1000).then(|| decode_block(&call, at, |_| Some(0)));
        let with_return_site = |site_reads: u32| {
            let flags_at = |t: u64, after: u32| match t {
                0x2000 => Some(callee(after)),
                0x1008 => Some(site_reads),
                _ => None,
            };
            let limits = Limits {
                returns: false,
                inline: 0,
                ..LIMITS
            };
            Region::form(0x1000, limits, fetch, |_| true, flags_at).unwrap()
        };
        assert_eq!(with_return_site(0).blocks[0].flags_live, vec![false, false]);
        assert_eq!(
            with_return_site(iced_x86::RflagsBits::ZF).blocks[0].flags_live,
            vec![true, false]
        );
    }
}
