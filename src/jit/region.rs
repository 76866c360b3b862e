//! A region (`decode::Region`) laid out as one Cranelift function: a prologue (a waiting
//! signal returns at once, before anything ran), one Cranelift block per guest block, direct
//! jumps between them with the guest registers in variables throughout, and exits that store
//! the state and jump straight to the next unit, through its link (a unit for a pack) or the
//! chaining table. Edges that close a
//! cycle check the interrupt word, so loops inside a region stay interruptible (a store that
//! rewrites translated code leaves the unit at once, `cpu::fault::WROTE_CODE`); a
//! block counts its instructions where it starts, and the count goes on to the next unit with
//! the chained call.

use super::lower::{
    reads_memory, takes_mxcsr, writes_memory, writes_only_the_stack, Cached, Known, Lower, Regs, Terminal,
};
use super::observed::Observed;
use super::strides::{strided_accesses, Strided};
use super::values::iconst_value;
use super::{return_code, Placement, UnitArgs, CARRIED, CONTEXT_ARG, STACK_POINTER};
use crate::cpu::flags::Flags;
use crate::cpu::ops::Ops;
use crate::cpu::{exit, off};
use crate::decode::{flags_live_after, Block, Region};
use crate::semantics::emitter::Emitter;
use cranelift_codegen::ir::condcodes::{CondCode, IntCC};
use cranelift_codegen::ir::{self, types, FuncRef, InstBuilder, MemFlagsData, Value};
use cranelift_codegen::isa::TargetIsa;
use cranelift_frontend::FunctionBuilder;
use iced_x86::{FlowControl, OpKind};
use std::collections::HashSet;

fn mf() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Where a guest block goes when it ends.
enum Next {
    /// An address known at translation time.
    Known(u64),
    Branch(Value, u64, u64),
    /// An address computed at run time (indirect branches).
    Computed(Value),
    /// A call to the address given, returning to the second; the third is the callee's
    /// address when the call is direct.
    Call(Value, u64, Option<u64>),
    /// A `ret` to the address given.
    Return(Value),
    Syscall(u64),
}

/// Lowers `region` into `b`, with links to the units its known exits and direct calls lead to
/// when `linked` (a unit for a pack: `cache_format::Link`). Returns the guest addresses the
/// imported functions stand for, by the index in their names; None when a register was
/// written that `Regs::written_by` did not foresee (the region's blocks rely on it to know
/// what may differ from the context), or when the region spans more than 32 KiB less a byte
/// (its checkpoints store their distance from an address in it in 16 signed bits,
/// `Lower::set_rip`; the regions Kiln forms span no more).
pub fn lower_region(
    mut b: FunctionBuilder<'_>,
    isa: &dyn TargetIsa,
    region: &Region,
    linked: bool,
    placement: Placement,
) -> Option<Vec<u64>> {
    if region.end().wrapping_sub(region.head()) > i16::MAX as u64 {
        return None;
    }
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let params = b.block_params(entry).to_vec();
    let (insns_before, entry_rip, cpu) = (params[0], params[1], params[CONTEXT_ARG]);
    let carried: [Value; 4] = std::array::from_fn(|k| params[2 + k]);
    if linked {
        mark_entry(&mut b);
    }
    let waiting = prologue(&mut b, cpu);
    let checkpoints = checkpoints(region);
    let (retreating, idom) = (region.retreating_edges(), region.dominators());
    let bodies = region.loop_bodies(&retreating, &idom);
    let checkpointed_edges = checkpointed_edges(region, &checkpoints, &retreating, &bodies);
    let strided = strided_accesses(region, &retreating, &bodies, &idom);
    let observed = Observed::of(region, &checkpointed_edges);
    let dirty_in = dirty_at_starts(region, &checkpoints, &observed, &checkpointed_edges);
    let live_in = live_at_starts(region, &dirty_in);
    let mut l = Lower::new(
        b,
        isa,
        (entry_rip, region.head()),
        live_in[0],
        (insns_before, carried, cpu),
    );
    l.placement = placement;
    l.links = linked.then(Vec::new);
    let starts: Vec<ir::Block> = region.blocks.iter().map(|_| l.b.create_block()).collect();
    // The unit's entry is the one way into a loop at the region's head from outside it.
    check_strided(&mut l, &strided[0]);
    l.b.ins().jump(starts[0], &[]);
    let mxcsr_on_ways_in = mxcsr_on_ways_in(region, &retreating);
    let mut layout = Layout {
        region,
        idom,
        facts_at_end: Vec::new(),
        checkpoints,
        starts,
        dirty_in,
        live_in,
        retreating,
        checkpointed_edges,
        single_entry: single_entries(region),
        mxcsr_on_ways_in,
        count_in: vec![Default::default(); region.blocks.len()],
        entry_flags: vec![Default::default(); region.blocks.len()],
        entry_mxcsr: vec![Default::default(); region.blocks.len()],
        rip_bases: rip_bases(region),
        strided,
        bodies,
        observed,
    };
    for (i, gb) in region.blocks.iter().enumerate() {
        let facts = layout.lower_block(&mut l, i, gb);
        layout.facts_at_end.push(facts);
    }
    l.finish_outside();
    finish_chain(&mut l);
    leave_at_entry(&mut l, waiting, insns_before);
    l.finish_return();
    l.b.seal_all_blocks();
    let ok = !l.unpredicted;
    let links = l.links.take().unwrap_or_default().into_iter().map(|(t, _)| t).collect();
    l.b.finalize(isa.frontend_config());
    ok.then_some(links)
}

/// Per block: after which of its instructions a checkpoint goes (`Lower::checkpoint`). A
/// guest memory fault replays the code from the last checkpoint over memory that the stores
/// since then already changed, and the replay must read what the first run read: so a store
/// that follows a read of memory since the last checkpoint (or its own read) is the last
/// instruction before the next one. Stores to the thread's own stack that follow none (a
/// function's pushes, its spills and stack arguments) share one, as a replay writes the same
/// bytes again; any other store has its own, so that a replay never writes again where another
/// thread may have written since (a lock released with a plain store). Before the head
/// (entered with the whole state in the context) nothing was read; before any other block
/// something may have been.
fn checkpoints(region: &Region) -> Vec<Vec<bool>> {
    let plan = |(i, b): (usize, &Block)| {
        let mut read = i != 0;
        b.insns
            .iter()
            .map(|ins| {
                let reads = reads_memory(ins);
                let after = writes_memory(ins) && (read || reads || !writes_only_the_stack(ins));
                read = !after && (read || reads);
                after
            })
            .collect()
    };
    region.blocks.iter().enumerate().map(plan).collect()
}

/// The registers that may differ from the context where block `i` ends, given those that may
/// where it starts: each instruction may write some, and each checkpoint stores those that the
/// code after it may observe (`Observed`).
fn dirty_at_end(region: &Region, i: usize, dirty: Regs, checkpoints: &[Vec<bool>], observed: &Observed) -> Regs {
    let steps = region.blocks[i]
        .insns
        .iter()
        .zip(&checkpoints[i])
        .zip(&observed.after[i]);
    steps.fold(dirty, |d, ((ins, &checkpoint), &seen)| {
        let d = d.union(Regs::written_by(ins));
        if checkpoint {
            d.minus(seen)
        } else {
            d
        }
    })
}

/// The edges that take a checkpoint of their own (`Layout::go_to`): those into a block that
/// reads the flags (which go to the context), and the ways into and out of a loop that has a
/// checkpoint (`Region::loop_bodies`, `checkpoints`). Into the loop, so that what was written
/// before it is stored once, not again at its checkpoints on every round (a register that
/// differs from the context at the loop's head on any way in is stored at each of them); out
/// of it, so that what the code after the loop may observe is stored there, not at the loop's
/// checkpoints on every round (`Observed`: a temporary that each round replaces before the
/// next fault is then stored only as the loop ends).
fn checkpointed_edges(
    region: &Region,
    checkpoints: &[Vec<bool>],
    retreating: &HashSet<(usize, usize)>,
    bodies: &[Option<Vec<usize>>],
) -> HashSet<(usize, usize)> {
    let has_checkpoint = |body: &&Vec<usize>| body.iter().any(|&k| checkpoints[k].contains(&true));
    let loops: Vec<&Vec<usize>> = bodies.iter().flatten().filter(has_checkpoint).collect();
    let edges = (0..region.blocks.len()).flat_map(|i| region.successors(i).map(move |j| (i, j)));
    let into = |i: usize, j: usize| loops.iter().any(|b| b[0] == j && !retreating.contains(&(i, j)));
    let out_of = |i: usize, j: usize| loops.iter().any(|b| b.contains(&i) && !b.contains(&j));
    edges
        .filter(|&(i, j)| region.flags_in[j] || into(i, j) || out_of(i, j))
        .collect()
}

/// Per block: the registers that may differ from the context where it starts. A checkpoint
/// (where `checkpoints` puts one, and on the `checkpointed_edges`) stores the registers that
/// the code after it may observe (`Observed`); the others stay only in variables, across
/// edges and loops. Nothing differs at the region's entry.
fn dirty_at_starts(
    region: &Region,
    checkpoints: &[Vec<bool>],
    observed: &Observed,
    checkpointed_edges: &HashSet<(usize, usize)>,
) -> Vec<Regs> {
    let n = region.blocks.len();
    let mut dirty_in = vec![Regs::default(); n];
    loop {
        let mut changed = false;
        for i in 0..n {
            let out = dirty_at_end(region, i, dirty_in[i], checkpoints, observed);
            for &(_, j) in &region.targets[i] {
                let Some(j) = j else { continue };
                let out = match checkpointed_edges.contains(&(i, j)) {
                    true => out.minus(observed.at_start[j]),
                    false => out,
                };
                if !dirty_in[j].contains(out) {
                    dirty_in[j] = dirty_in[j].union(out);
                    changed = true;
                }
            }
        }
        if !changed {
            return dirty_in;
        }
    }
}

/// Per block: the registers whose variables must hold their value where it starts: those that
/// may differ from the context there (`dirty_in`: an exit or a checkpoint stores them), the
/// `CARRIED` ones (every exit hands them on) and, in a unit of many blocks, those that some
/// path from there reads before it replaces them (within the region: after a call the code
/// goes on from the context). Any other register is loaded where a block first reads it: a
/// unit of one block loads every register so, and none it does not read.
fn live_at_starts(region: &Region, dirty_in: &[Regs]) -> Vec<Regs> {
    let at_least = |i: usize| dirty_in[i].union(Regs::CARRIED);
    let n = region.blocks.len();
    if n == 1 {
        return vec![at_least(0)];
    }
    // Per block: what it reads before replacing it, and what it replaces.
    let transfer: Vec<(Regs, Regs)> = region
        .blocks
        .iter()
        .map(|b| {
            b.insns
                .iter()
                .rev()
                .fold((Regs::default(), Regs::default()), |(read, replaced), ins| {
                    let (r, w) = Regs::read_and_replaced_by(ins);
                    (read.minus(w).union(r), replaced.union(w).minus(r))
                })
        })
        .collect();
    let mut live: Vec<Regs> = (0..n).map(at_least).collect();
    loop {
        let mut changed = false;
        for i in (0..n).rev() {
            let out = region.targets[i]
                .iter()
                .filter_map(|&(_, j)| j)
                .fold(Regs::default(), |o, j| o.union(live[j]));
            let (read, replaced) = transfer[i];
            let now = out.minus(replaced).union(read).union(live[i]);
            if now != live[i] {
                live[i] = now;
                changed = true;
            }
        }
        if !changed {
            return live;
        }
    }
}

/// A unit compiled for a pack sets its byte of the pack's entry marks
/// (`cache_format::pack_entry_marks`) each time it is entered: a store through a rip-relative
/// address that the pack's writer fills in (`cache_format::LinkKind::EntryMark`). A warm run
/// hands the pack's writer the units it entered, which the pack then lays out first: a warm
/// `cc1 -O2 hello.i` entered 13,764 of its pack's 82,298 units (22.6 of 62.9 MB of code),
/// spread over the whole pack.
fn mark_entry(b: &mut FunctionBuilder<'_>) {
    let name = ir::UserExternalName::new(super::ENTRY_MARK_NAMESPACE, 0);
    let name = ir::ExternalName::User(b.func.declare_imported_user_function(name));
    let mark = b.create_global_value(ir::GlobalValueData::Symbol {
        name,
        offset: ir::immediates::Imm64::new(0),
        colocated: true,
        tls: false,
    });
    let at = b.ins().symbol_value(types::I64, mark);
    let one = b.ins().iconst(types::I8, 1);
    b.ins().store(mf(), one, at, 0);
}

/// The unit's entry: leaves at once when a signal waits (rip already holds this unit's
/// address), through the block returned, which `leave_at_entry` fills.
fn prologue(b: &mut FunctionBuilder<'_>, cpu: Value) -> ir::Block {
    let flag = b.ins().load(types::I64, mf(), cpu, off::INTERRUPT);
    let leave = b.create_block();
    let body = b.create_block();
    b.ins().brif(flag, leave, &[], body, &[]);
    b.seal_block(leave);
    b.seal_block(body);
    b.set_cold_block(leave);
    b.switch_to_block(body);
    leave
}

/// Where a signal waits at the unit's entry: back to the dispatcher, adding the instructions
/// the units before it ran to the count, through the return the unit's other ways back to the
/// dispatcher share (its own return, one more place to tear the frame down, made warm
/// `cc1 -O2 hello.i`'s pack 1.9% larger).
fn leave_at_entry(l: &mut Lower<'_>, leave: ir::Block, insns_before: Value) {
    l.b.switch_to_block(leave);
    let next = l.b.ins().iconst(types::I64, exit::NEXT as i64);
    l.return_counted(next, insns_before, None);
}

struct Layout<'r> {
    region: &'r Region,
    /// Per block: its immediate dominator (`Region::dominators`).
    idom: Vec<Option<usize>>,
    /// Per block lowered so far: what checks found of values where its instructions end
    /// (`Lower::facts_here`).
    facts_at_end: Vec<Known>,
    /// Per block: after which instructions a checkpoint goes (`checkpoints`).
    checkpoints: Vec<Vec<bool>>,
    /// The Cranelift block where each guest block starts.
    starts: Vec<ir::Block>,
    dirty_in: Vec<Regs>,
    /// Per block: the registers whose variables hold their value where it starts
    /// (`live_at_starts`).
    live_in: Vec<Regs>,
    /// The edges that close a cycle (`Region::retreating_edges`).
    retreating: HashSet<(usize, usize)>,
    /// The edges that take a checkpoint of their own (`checkpointed_edges`).
    checkpointed_edges: HashSet<(usize, usize)>,
    /// Per block: the one block before it in the layout whose one edge leads into it, if that
    /// is the only way in (`single_entries`).
    single_entry: Vec<Option<usize>>,
    /// Per block: the instructions counted on the way there and not yet added to the count
    /// (`Lower::pending`), the same on every way in: what the first way lowered into it left
    /// pending (none if the block is lowered first), so that way adds nothing and every other
    /// adds the difference (`Lower::settle_count`).
    count_in: Vec<std::cell::Cell<Option<i64>>>,
    /// Per block with a single entry: the flag record as the block before it left it (its
    /// values dominate the block), so that reading the flags there needs no helper call.
    entry_flags: Vec<std::cell::Cell<Option<Flags<Value>>>>,
    /// Per block with a single entry: whether the block before it found MXCSR's default
    /// settings on its way there (no helper call since), so that its float code need not
    /// check them again.
    entry_mxcsr: Vec<std::cell::Cell<bool>>,
    /// Per block: every way in checks MXCSR's default settings unless it found them already
    /// (`mxcsr_on_ways_in`), so that the block's float code need not.
    mxcsr_on_ways_in: Vec<bool>,
    /// Per block: the address the context's rip holds where it starts (`rip_bases`).
    rip_bases: Vec<Option<u64>>,
    /// Per block that heads a loop: its accesses that need no check on a round, whose first
    /// round's address each way into the loop checks (`strides`).
    strided: Vec<Vec<Strided>>,
    /// Per block that heads a loop: the loop's blocks (`Region::loop_bodies`).
    bodies: Vec<Option<Vec<usize>>>,
    /// What a checkpoint stores (`observed`).
    observed: Observed,
}

impl Layout<'_> {
    /// Lowers guest block `i`; returns what checks found of values where its instructions end.
    fn lower_block(&self, l: &mut Lower<'_>, i: usize, gb: &Block) -> Known {
        l.b.switch_to_block(self.starts[i]);
        l.start_guest_block();
        // What the checks of the block that dominates this one found holds here too.
        if let Some(facts) = self.idom[i].and_then(|d| self.facts_at_end.get(d)) {
            l.assume(facts);
        }
        // Sealed now if every edge into it comes from a block already lowered (or, for the
        // head, only from the prologue); else once all are lowered.
        let later = (i..self.region.blocks.len()).any(|k| self.region.successors(k).any(|j| j == i));
        if !later {
            l.seal(&[self.starts[i]]);
        }
        // Every edge into a block leaves the variables of its live registers current.
        l.state = Cached::at_start(self.dirty_in[i], self.live_in[i]);
        if self.stack_held(i) {
            l.stack_in_reach_from_start();
        }
        if self.single_entry[i].is_some() {
            l.flags_from_edge(self.entry_flags[i].get());
            l.mxcsr_from_edge(self.entry_mxcsr[i].get());
        }
        l.mxcsr_from_edge(self.mxcsr_on_ways_in[i]);
        l.end = None;
        l.rip_base = self.rip_bases[i];
        l.pending = self.count_in[i].get().unwrap_or(0);
        self.count_in[i].set(Some(l.pending));
        l.count_insns(gb.insns.len());
        l.replay_count = l.pending - gb.insns.len() as i64;
        let predict = self.region.blocks.len() > 1;
        let (flags_after, _) = flags_live_after(&gb.insns, self.region.flags_out[i]);
        for (k, (ins, &route)) in gb.insns.iter().zip(&gb.routes).enumerate() {
            l.predicted = predict.then(|| Regs::written_by(ins));
            l.insns_after = (gb.insns.len() - k - 1) as u64;
            l.strided = self.strided.iter().flatten().any(|s| (s.block, s.at) == (i, k));
            l.lower_insn(ins, flags_after[k], route);
            l.strided = false;
            if l.end.is_some() {
                break;
            }
            if self.checkpoints[i][k] {
                l.checkpoint_of(ins.next_ip(), flags_after[k] != 0, self.observed.after[i][k]);
                l.replay_count = l.pending - l.insns_after as i64;
            }
        }
        l.settle_guards();
        let facts = l.facts_here();
        // A checkpoint after the instruction that ends the block goes on the edge.
        let written = l.end.is_some() && self.checkpoints[i].last() == Some(&true);
        match next_of(l, gb) {
            Next::Known(t) => self.go_to(l, i, t, written),
            Next::Branch(c, t, f)
                if self.inside(i, t).is_none() && self.inside(i, f).is_none() && l.links.is_none() =>
            {
                // Both ways leave the region: one exit, to the selected address.
                let (t, f) = (l.code_addr(t), l.code_addr(f));
                let v = l.select(c, t, f);
                exit_unit(l, v, exit::NEXT, self.region.flags_out[i] != 0)
            }
            Next::Branch(c, t, f) => {
                let (c, inverted) = branch_condition(&l.b.func.dfg, c);
                let (t, f) = if inverted { (f, t) } else { (t, f) };
                let (c, t, f) = self.loop_edge_last(l, i, (c, t, f));
                self.go_to_when(l, i, c, t, written);
                self.go_to(l, i, f, written);
            }
            // What a callee reads, for a direct call; every flag, else (`Region::flags_out`).
            Next::Computed(v) => exit_unit(l, v, exit::NEXT, self.region.flags_out[i] != 0),
            Next::Call(_, _, Some(callee)) if self.region.inlined[i] => self.go_to(l, i, callee, written),
            Next::Call(v, back, direct) => self.call(l, i, v, back, direct),
            Next::Return(v) => {
                // An inlined callee's return goes on at the return site it popped, where that
                // is one of the calls inlined there.
                for &(site, _) in &self.region.targets[i] {
                    let a = l.code_addr(site);
                    let c = l.b.ins().icmp(IntCC::Equal, v, a);
                    self.go_to_when(l, i, c, site, written);
                }
                exit_return(l, v, self.region.flags_out[i] != 0)
            }
            Next::Syscall(n) => {
                let v = l.code_addr(n);
                exit_unit(l, v, exit::SYSCALL, true)
            }
        }
        facts
    }

    /// A branch of block `i` to `t` where `c` holds, else to `f`, turned around where `t` closes
    /// a loop and `f` leaves it: the edge lowered second (`f`) is laid out right after the
    /// branch (Cranelift orders blocks in reverse postorder, and its walk takes the first
    /// successor first), so a round of the loop takes one jump, back to its head, instead of
    /// a jump to the edge laid out with the code after the loop and one back from there
    /// (sha256 of 16 MiB, whose data loop runs 7 instructions a round, 0.955x).
    fn loop_edge_last(&self, l: &mut Lower<'_>, i: usize, (c, t, f): (Value, u64, u64)) -> (Value, u64, u64) {
        if !self.closes_loop(i, t) || self.stays_in_loop(i, f) {
            return (c, t, f);
        }
        match negated(&mut l.b, c) {
            Some(n) => (n, f, t),
            None => (c, t, f),
        }
    }

    /// Whether going from block `i` to `target` closes a loop (`retreating`).
    fn closes_loop(&self, i: usize, target: u64) -> bool {
        self.inside(i, target)
            .is_some_and(|j| self.retreating.contains(&(i, j)))
    }

    /// Whether going from block `i` to `target` stays in a loop that `i` is in.
    fn stays_in_loop(&self, i: usize, target: u64) -> bool {
        let Some(j) = self.inside(i, target) else {
            return false;
        };
        (self.bodies.iter().flatten()).any(|body| body.contains(&i) && body.contains(&j))
    }

    /// Continues from block `i` at `target` where `c` holds (`go_to`), and lowering goes on
    /// where it does not, with what held before.
    fn go_to_when(&self, l: &mut Lower<'_>, i: usize, c: Value, target: u64, written: bool) {
        let (taken, other) = (l.b.create_block(), l.b.create_block());
        l.b.ins().brif(c, taken, &[], other, &[]);
        l.seal(&[taken, other]);
        let (kept, known, base) = (l.state, l.known_here(), l.rip_base);
        l.switch_keeping(taken, known.clone());
        self.go_to(l, i, target, written);
        (l.state, l.rip_base) = (kept, base);
        l.switch_keeping(other, known);
    }

    /// Block `i` ends in a call to `target` that returns to `back`: the callee runs as a host
    /// call, with `back` as the context's expected return, and a guest `ret` there comes back
    /// here (`exit_return`), where the host's return prediction expects it; the code after
    /// the call then goes on with every register reloaded, in the region's block at `back`
    /// or through the chaining table. A direct call (to `direct`) in a unit for a pack calls
    /// its callee's unit straight where links are allowed. The call is an exit as any other
    /// where the callee has no unit yet or the host stack has no room for another unit's frame.
    fn call(&self, l: &mut Lower<'_>, i: usize, target: Value, back: u64, direct: Option<u64>) {
        l.flush_regs();
        if self.region.flags_out[i] != 0 {
            l.flush_flags();
        }
        let cpu = l.cpu();
        l.b.ins().store(mf(), target, cpu, off::RIP);
        stack_handed_on(l);
        let link = direct.and_then(|t| l.link_to(t));
        let (exit, returned) = (l.b.create_block(), l.b.create_block());
        let code = l.b.append_block_param(returned, types::I64);
        let insns = l.b.append_block_param(returned, super::COUNT);
        let carried = CARRIED.map(|_| l.b.append_block_param(returned, types::I64));
        let cpu_back = l.b.append_block_param(returned, types::I64);
        let kept = l.state;
        call_callee(l, link, (target, back), exit, returned);
        l.b.switch_to_block(exit);
        l.b.set_cold_block(exit);
        exit_unit(l, target, exit::NEXT, false);
        l.state = kept;
        l.b.switch_to_block(returned);
        l.set_cpu(cpu_back);
        // A callee that stored checked the interrupt word before it returned here; a signal
        // that came meanwhile waits for the next check.
        went_on_here(l, code, insns, carried, back);
        match self.region.returns[i] {
            Some(j) => {
                l.revalidate(self.live_in[j]);
                self.settle_count_into(l, j);
                l.b.ins().jump(self.starts[j], &[]);
            }
            None => exit_to(l, back, false),
        }
    }

    /// Whether block `j` starts with the guest stack pointer in its variable: then every way
    /// in leaves it in reach (`Lower::stack_in_reach_on_edge`; the unit's entry and a call's
    /// return hand over one in reach).
    fn stack_held(&self, j: usize) -> bool {
        self.live_in[j].gprs()[STACK_POINTER]
    }

    /// Leaves the count as every way into block `j` leaves it (`count_in`), on a way there.
    fn settle_count_into(&self, l: &mut Lower<'_>, j: usize) {
        let pending_there = self.count_in[j].get().unwrap_or(l.pending);
        self.count_in[j].set(Some(pending_there));
        l.settle_count(pending_there);
    }

    /// The block of the region that block `i` continues in when it goes to `target`.
    fn inside(&self, i: usize, target: u64) -> Option<usize> {
        self.region.targets[i]
            .iter()
            .find(|(t, _)| *t == target)
            .and_then(|(_, j)| *j)
    }

    /// Continues from block `i` at the known address `target`: a direct jump when it starts a
    /// block of the region, else an exit. `written`: the block's last instruction wrote memory.
    fn go_to(&self, l: &mut Lower<'_>, i: usize, target: u64, written: bool) {
        let Some(j) = self.inside(i, target) else {
            return exit_to(l, target, self.region.flags_read_at(target) != 0);
        };
        let edge = self.checkpointed_edges.contains(&(i, j));
        if edge || written {
            // The edge's own checkpoint (`checkpointed_edges`) stores what the code there may
            // observe; the block's memory write needs its checkpoint, which stores what the
            // code after it may observe on the ways without one (`Observed`).
            let after_write = written.then(|| self.observed.after[i].last().copied()).flatten();
            let at_target = edge.then_some(self.observed.at_start[j]);
            let observed = at_target.unwrap_or_default().union(after_write.unwrap_or_default());
            l.checkpoint_of(target, self.region.flags_in[j], observed);
            // A replay from there (a check on this edge failed) has run the whole block.
            l.replay_count = l.pending;
        }
        if !self.dirty_in[j].contains(l.state.dirty()) {
            l.unpredicted = true;
        }
        l.revalidate(self.live_in[j]);
        if self.stack_held(j) {
            l.stack_in_reach_on_edge();
        }
        // Every cycle has a retreating edge (one that closes it in a depth-first walk), so
        // loops stay interruptible; a loop leaves with its state written back, so that what
        // it did stands. A store that rewrites translated code leaves the unit at once
        // (`fault::WROTE_CODE`), so no edge checks for that.
        if self.retreating.contains(&(i, j)) {
            interrupt_check(l, target);
        }
        if !self.bodies[j].as_ref().is_some_and(|body| body.contains(&i)) {
            check_strided(l, &self.strided[j]);
        }
        if self.mxcsr_on_ways_in[j] {
            l.require_mxcsr_default();
        }
        // The count goes on uncounted into a block no other way leads to, and into any
        // other block on the first way lowered into it.
        if self.single_entry[j] == Some(i) {
            self.entry_flags[j].set(l.flags_now());
            self.entry_mxcsr[j].set(l.mxcsr_default_now());
        }
        self.settle_count_into(l, j);
        l.b.ins().jump(self.starts[j], &[]);
    }
}

/// On a way into a loop: checks the register part of the address of each of its accesses
/// that a round does not check (`strides`), from the registers as they enter (the first round
/// moves them no further from there than a round does).
fn check_strided(l: &mut Lower<'_>, strided: &[Strided]) {
    for s in strided {
        let base = s.base.map(|r| l.get_reg(r));
        let index = s.index.map(|(r, scale)| {
            let v = l.get_reg(r);
            match scale {
                1 => v,
                _ => l.b.ins().imul_imm_s(v, i64::from(scale)),
            }
        });
        let x = match (base, index) {
            (Some(b), Some(i)) => l.b.ins().iadd(b, i),
            (Some(v), None) | (None, Some(v)) => v,
            (None, None) => continue,
        };
        l.check_in_reach(x);
    }
}

/// Per block: the guest address the context's rip holds (below a checkpoint's distance,
/// `Lower::set_rip`) wherever the block is entered from, if every way in agrees: the head's
/// from the unit's entry, a call's return address where the callee came back (its `ret`
/// stored it whole). A block keeps what it was entered with to its end as far as its
/// successors know (a base it finds itself stays its own).
fn rip_bases(region: &Region) -> Vec<Option<u64>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Base {
        Unseen,
        At(u64),
        Mixed,
    }
    let n = region.blocks.len();
    let mut base = vec![Base::Unseen; n];
    base[0] = Base::At(region.head());
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..n {
            if base[i] == Base::Unseen {
                continue;
            }
            let out = base[i];
            for j in region.successors(i) {
                let (start, end) = (region.blocks[j].start, region.blocks[j].start + region.blocks[j].len);
                let b = match (region.returns[i] == Some(j), out) {
                    (true, _) => Base::At(start),
                    // An inlined callee's blocks may lie beyond a checkpoint's reach from it.
                    (false, Base::At(a)) if !within_i16(start, a) || !within_i16(end, a) => Base::Mixed,
                    (false, b) => b,
                };
                let met = match (base[j], b) {
                    (Base::Unseen, b) => b,
                    (a, b) if a == b => a,
                    _ => Base::Mixed,
                };
                changed |= met != base[j];
                base[j] = met;
            }
        }
    }
    (base.into_iter())
        .map(|b| match b {
            Base::At(a) => Some(a),
            _ => None,
        })
        .collect()
}

/// Whether `ip` lies within a checkpoint's 16 signed bits of `base` (`Lower::set_rip`).
fn within_i16(ip: u64, base: u64) -> bool {
    i16::try_from(ip.wrapping_sub(base) as i64).is_ok()
}

/// Per block: the block whose one edge (a jump, a branch or a fall-through) is the only way
/// into it, when that block comes before it in the layout (and it is not the head, which the
/// unit's entry also leads to).
fn single_entries(region: &Region) -> Vec<Option<usize>> {
    let n = region.blocks.len();
    let mut ways_in = vec![Vec::new(); n];
    for i in 0..n {
        for (_, j) in &region.targets[i] {
            if let Some(j) = *j {
                ways_in[j].push(i);
            }
        }
        if let Some(j) = region.returns[i] {
            ways_in[j].push(usize::MAX);
        }
    }
    (ways_in.iter().enumerate())
        .map(|(j, from)| match from[..] {
            [i] if j != 0 && i < j => Some(i),
            _ => None,
        })
        .collect()
}

/// Per block: whether its ways in check MXCSR's default settings for it. A loop's head whose
/// float code depends on them: a way into the loop checks them once, where the head would
/// check them on every round, and a round that found them (with no helper call since) goes
/// back without a check. Not the region's head, entered from outside, nor a call's return
/// site, which comes back from a callee that may have changed them.
fn mxcsr_on_ways_in(region: &Region, retreating: &HashSet<(usize, usize)>) -> Vec<bool> {
    let returned_to: HashSet<usize> = region.returns.iter().flatten().copied().collect();
    (0..region.blocks.len())
        .map(|j| {
            j != 0
                && !returned_to.contains(&j)
                && retreating.iter().any(|&(_, t)| t == j)
                && region.blocks[j].insns.iter().any(takes_mxcsr)
        })
        .collect()
}

/// How block `gb` ended: a direct jump's target is known even though its semantics computed it.
fn next_of(l: &Lower<'_>, gb: &Block) -> Next {
    match l.end {
        None => Next::Known(gb.start + gb.len),
        Some(Terminal::Branch(c, t, f)) => Next::Branch(c, t, f),
        Some(Terminal::Syscall(n)) => Next::Syscall(n),
        Some(Terminal::Jump(v)) => match gb.insns.last() {
            Some(j) if j.flow_control() == FlowControl::UnconditionalBranch && j.op0_kind() == OpKind::NearBranch64 => {
                Next::Known(j.near_branch_target())
            }
            Some(j) if matches!(j.flow_control(), FlowControl::Call | FlowControl::IndirectCall) => {
                let direct = (j.op0_kind() == OpKind::NearBranch64).then(|| j.near_branch_target());
                Next::Call(v, j.next_ip(), direct)
            }
            Some(j) if j.flow_control() == FlowControl::Return => Next::Return(v),
            _ => Next::Computed(v),
        },
    }
}

/// The opposite of comparison `c`, where `c` is one (a comparison of the opposite condition
/// on the same operands, which the branch then tests directly).
fn negated(b: &mut FunctionBuilder<'_>, c: Value) -> Option<Value> {
    use ir::InstructionData as D;
    let ir::ValueDef::Result(inst, 0) = b.func.dfg.value_def(c) else {
        return None;
    };
    match b.func.dfg.insts[inst] {
        D::IntCompare { cond, args: [x, y], .. } => Some(b.ins().icmp(cond.complement(), x, y)),
        D::FloatCompare { cond, args: [x, y], .. } => Some(b.ins().fcmp(cond.complement(), x, y)),
        _ => None,
    }
}

/// The comparison a 0-or-1 branch condition was computed from, looking through the widening
/// and the `x ^ 1` of a negated condition (so that the branch tests the comparison's flags
/// directly); whether it was negated.
fn branch_condition(dfg: &ir::DataFlowGraph, mut c: Value) -> (Value, bool) {
    use ir::{InstructionData as D, Opcode};
    let mut inverted = false;
    loop {
        let ir::ValueDef::Result(inst, 0) = dfg.value_def(c) else {
            return (c, inverted);
        };
        let is_one = |v: Value| iconst_value(dfg, v) == Some(1);
        // A widened comparison: 0 or 1.
        let boolean = |v: Value| {
            let compare = |a: Value| {
                matches!(dfg.value_def(a), ir::ValueDef::Result(i, 0)
                    if matches!(dfg.insts[i].opcode(), Opcode::Icmp | Opcode::Fcmp))
            };
            matches!(dfg.value_def(v), ir::ValueDef::Result(i, 0)
                if matches!(dfg.insts[i], D::Unary { opcode: Opcode::Uextend, arg } if compare(arg)))
        };
        match dfg.insts[inst] {
            D::Unary {
                opcode: Opcode::Uextend,
                arg,
            } if dfg.value_type(arg) == types::I8 => c = arg,
            D::Binary {
                opcode: Opcode::Bxor,
                args: [a, b],
            } if is_one(b) && boolean(a) => {
                inverted = !inverted;
                c = a;
            }
            _ => return (c, inverted),
        }
    }
}

/// On an edge: a waiting signal or a change of code (in the interrupt word) leaves
/// the unit for `target` (`when_interrupted`: a loop that stores nothing must still see the
/// word change).
fn interrupt_check(l: &mut Lower<'_>, target: u64) {
    let stay = when_interrupted(l);
    let kept = l.state;
    // A checkpoint whose rip the dispatcher reads whole.
    l.flush();
    l.set_rip_whole(target);
    l.state = kept;
    let code = l.b.ins().iconst(types::I64, exit::NEXT as i64);
    l.return_with(code, None);
    l.b.switch_to_block(stay);
}

/// Branches on the thread's interrupt word: goes on in a new block, laid out with the cold
/// code, where it is set (the caller leaves the unit there); returns the block where it is
/// clear. The word lies in the context (`Cpu::interrupt`), read at each check with an atomic
/// load, which Cranelift never merges with an earlier one (through a pointer in the context,
/// a second load at each check, warm `cc1 -O2 hello.i` took about 2% more CPU).
fn when_interrupted(l: &mut Lower<'_>) -> ir::Block {
    let flag = interrupt_word(l);
    when(l, flag)
}

/// The thread's interrupt word (non-zero: a signal waits or code changed).
fn interrupt_word(l: &mut Lower<'_>) -> Value {
    let cpu = l.cpu();
    let word = l.b.ins().iadd_imm_s(cpu, off::INTERRUPT as i64);
    l.b.ins().atomic_load(types::I64, mf(), word)
}

/// Branches on `leave`: goes on in a new block, laid out with the cold code, where it is true
/// (the caller leaves the unit there); returns the block where it is false.
fn when(l: &mut Lower<'_>, leave: Value) -> ir::Block {
    let (away, stay) = (l.b.create_block(), l.b.create_block());
    l.b.ins().brif(leave, away, &[], stay, &[]);
    l.seal(&[away, stay]);
    l.b.switch_to_block(away);
    l.b.set_cold_block(away);
    stay
}

/// Leaves the unit for `next` with exit `code`, writing back the cached state first (the
/// flags only when the code there may read them).
fn exit_unit(l: &mut Lower<'_>, next: Value, code: u64, flags_read: bool) {
    leave(l, next, code, flags_read, None)
}

/// Leaves the unit for the known address `target`: through its link where the unit has links,
/// else as `exit_unit`.
fn exit_to(l: &mut Lower<'_>, target: u64, flags_read: bool) {
    let link = l.link_to(target);
    let next = l.code_addr(target);
    leave(l, next, exit::NEXT, flags_read, link)
}

fn leave(l: &mut Lower<'_>, next: Value, code: u64, flags_read: bool, link: Option<FuncRef>) {
    l.flush_regs();
    if flags_read {
        l.flush_flags();
    }
    let cpu = l.cpu();
    l.b.ins().store(mf(), next, cpu, off::RIP);
    if code != exit::NEXT {
        let c = l.b.ins().iconst(types::I64, code as i64);
        return l.return_with(c, None);
    }
    stack_handed_on(l);
    let args = unit_args(l, next);
    if let Some(f) = link {
        let (linked, table) = links_allowed(l);
        l.b.switch_to_block(linked);
        l.b.ins().return_call(f, &args);
        l.b.switch_to_block(table);
        l.b.set_cold_block(table);
    }
    l.exit_through_chain(args);
}

/// Fills the block every exit through the chaining table goes through (`leave`): one lookup
/// per unit, on to the unit found, else back to the dispatcher.
fn finish_chain(l: &mut Lower<'_>) {
    let Some(c) = l.take_chain_block() else {
        return;
    };
    l.b.switch_to_block(c);
    let args: UnitArgs = std::array::from_fn(|i| l.b.block_params(c)[i]);
    l.set_cpu(args[CONTEXT_ARG]);
    chain(&mut l.b, l.unit_sig, args, true);
    let next = l.b.ins().iconst(types::I64, exit::NEXT as i64);
    l.return_counted(next, args[0], None);
}

/// Before the stack pointer goes to another unit (an exit, a call, a return to the caller),
/// with the state and rip in the context: checks that it is in reach (`jit::stack_in_reach`)
/// where nothing shows it is, and returns to the dispatcher where it is not.
fn stack_handed_on(l: &mut Lower<'_>) {
    let rsp = l.get_reg(4);
    if l.known_in_reach(rsp) {
        return;
    }
    let out = l.out_of_reach(rsp);
    let in_reach = when(l, out);
    let next = l.b.ins().iconst(types::I64, exit::NEXT as i64);
    l.return_with(next, None);
    l.b.switch_to_block(in_reach);
}

/// The `CARRIED` registers' current values (loaded where no variable holds them).
fn carried_now(l: &mut Lower<'_>) -> [Value; 4] {
    CARRIED.map(|r| l.get_reg(r))
}

/// The arguments of the unit at guest address `rip` (`jit::UnitArgs`), from the `CARRIED`
/// registers' current values.
fn unit_args(l: &mut Lower<'_>, rip: Value) -> UnitArgs {
    let carried = carried_now(l);
    unit_args_carrying(l, rip, carried)
}

/// `unit_args` with `carried` as the `CARRIED` registers.
fn unit_args_carrying(l: &mut Lower<'_>, rip: Value, carried: [Value; 4]) -> UnitArgs {
    let (insns, cpu) = (l.insns_run(), l.cpu());
    [insns, rip, carried[0], carried[1], carried[2], carried[3], cpu]
}

/// Branches on the context's word that allows links (`Cpu::links`): to the first block
/// returned where it does, else to the second (both sealed; the caller switches to them).
fn links_allowed(l: &mut Lower<'_>) -> (ir::Block, ir::Block) {
    let cpu = l.cpu();
    let on = l.b.ins().load(types::I64, mf(), cpu, off::LINKS);
    let (linked, table) = (l.b.create_block(), l.b.create_block());
    l.b.ins().brif(on, linked, &[], table, &[]);
    l.seal(&[linked, table]);
    (linked, table)
}

/// Calls the unit at `target` (waiting for the return to `back`) through its link where there
/// is one, links are allowed and the host stack has room (one comparison with
/// `Cpu::link_floor`), else as the chaining table finds it where the stack has room; goes on
/// to `returned` with the callee's results, or to `missed` where it cannot call. Seals both.
fn call_callee(
    l: &mut Lower<'_>,
    link: Option<FuncRef>,
    (target, back): (Value, u64),
    missed: ir::Block,
    returned: ir::Block,
) {
    let carried = carried_now(l);
    let sp = l.b.ins().get_stack_pointer(types::I64);
    if let Some(f) = link {
        let cpu = l.cpu();
        let floor = l.b.ins().load(types::I64, mf(), cpu, off::LINK_FLOOR);
        let linked_room = l.b.ins().icmp(IntCC::UnsignedGreaterThan, sp, floor);
        let (linked, other) = (l.b.create_block(), l.b.create_block());
        l.b.ins().brif(linked_room, linked, &[], other, &[]);
        l.seal(&[linked, other]);
        l.b.switch_to_block(linked);
        let results = call_unit(l, Callee::Linked(f), (target, back), carried);
        l.b.ins().jump(returned, &results);
        l.b.switch_to_block(other);
        l.b.set_cold_block(other);
    }
    let cpu = l.cpu();
    let floor = l.b.ins().load(types::I64, mf(), cpu, off::CALL_FLOOR);
    let has_room = l.b.ins().icmp(IntCC::UnsignedGreaterThan, sp, floor);
    let room = l.b.create_block();
    l.b.ins().brif(has_room, room, &[], missed, &[]);
    l.seal(&[room]);
    l.b.switch_to_block(room);
    if link.is_some() {
        l.b.set_cold_block(room);
    }
    let cpu = l.cpu();
    let (hit, slot) = chain_lookup(&mut l.b, cpu, target);
    let call = l.b.create_block();
    l.b.ins().brif(hit, call, &[], missed, &[]);
    l.seal(&[call, missed]);
    l.b.switch_to_block(call);
    if link.is_some() {
        l.b.set_cold_block(call);
    }
    let f = l.b.ins().load(types::I64, mf(), slot, 8);
    let results = call_unit(l, Callee::Table(f), (target, back), carried);
    l.b.ins().jump(returned, &results);
    l.seal(&[returned]);
}

/// The unit a call goes to: straight through a link, or as the chaining table found it.
enum Callee {
    Linked(FuncRef),
    Table(Value),
}

/// Calls `callee` at `target` with `back` as the return it waits for and `carried` as the
/// `CARRIED` registers; the callee's results, as the arguments of a jump to the block that
/// goes on.
fn call_unit(
    l: &mut Lower<'_>,
    callee: Callee,
    (target, back): (Value, u64),
    carried: [Value; 4],
) -> Vec<ir::BlockArg> {
    let cpu = l.cpu();
    let back = l.code_addr(back);
    let outer = l.b.ins().load(types::I64, mf(), cpu, off::RET_EXPECT);
    l.b.ins().store(mf(), back, cpu, off::RET_EXPECT);
    let args = unit_args_carrying(l, target, carried);
    // The callee may write guest memory (`Lower::forwarded`).
    l.guest_writes += 1;
    let inst = match callee {
        Callee::Linked(f) => l.b.ins().call(f, &args),
        Callee::Table(f) => {
            let sig = l.unit_sig;
            l.b.ins().call_indirect(sig, f, &args)
        }
    };
    let results: Vec<ir::BlockArg> = l.b.inst_results(inst).iter().map(|&v| v.into()).collect();
    let cpu = l.b.inst_results(inst)[CONTEXT_ARG];
    l.after_host_call();
    l.set_cpu(cpu);
    l.b.ins().store(mf(), outer, cpu, off::RET_EXPECT);
    results
}

/// After a host call that ended with exit `code`: on here (at `back`), with nothing cached but
/// the `CARRIED` registers the callee gave back, where the callee returned to this unit; any
/// other exit code goes on up to the dispatcher, which the callee made ready for (the context
/// holds the whole state and the instructions run).
fn went_on_here(l: &mut Lower<'_>, code: Value, insns: Value, carried: [Value; 4], back: u64) {
    let returned = l.b.ins().icmp_imm_u(IntCC::Equal, code, exit::RETURN as i64);
    let (back_here, leave) = (l.b.create_block(), l.b.create_block());
    l.b.ins().brif(returned, back_here, &[], leave, &[]);
    l.seal(&[back_here, leave]);
    l.b.switch_to_block(leave);
    l.b.set_cold_block(leave);
    l.return_counted(code, insns, None);
    l.b.switch_to_block(back_here);
    l.returned_from_call(insns, carried, back);
}

/// A `ret` to `to`: back to the unit that called with a host call and waits for this
/// address (`exit::RETURN`), else on through the chaining table like any exit. The flags go
/// to the context only when `flags_read`. With `check`, a waiting signal or a change of code
/// (the interrupt word) returns to the dispatcher instead of the caller.
fn exit_return(l: &mut Lower<'_>, to: Value, flags_read: bool) {
    l.flush_regs();
    if flags_read {
        l.flush_flags();
    }
    let cpu = l.cpu();
    l.b.ins().store(mf(), to, cpu, off::RIP);
    stack_handed_on(l);
    // Read before the paths part: a value a path loads would not reach the other.
    let carried = carried_now(l);
    let expected = l.b.ins().load(types::I64, mf(), cpu, off::RET_EXPECT);
    let home = l.b.ins().icmp(IntCC::Equal, to, expected);
    let (back, on) = (l.b.create_block(), l.b.create_block());
    l.b.ins().brif(home, back, &[], on, &[]);
    l.seal(&[back, on]);
    l.b.switch_to_block(back);
    let code = l.b.ins().iconst(types::I64, exit::RETURN as i64);
    l.return_with(code, Some(carried));
    l.b.switch_to_block(on);
    exit_unit(l, to, exit::NEXT, false);
}

/// The chaining table's slot for `next` (`cpu::chain_slot`): whether it holds `next`'s unit,
/// and the slot's address (the unit's entry is its second word).
fn chain_lookup(b: &mut FunctionBuilder<'_>, cpu: Value, next: Value) -> (Value, Value) {
    let table = b.ins().load(types::I64, mf(), cpu, off::CHAIN_TABLE);
    let mask = b.ins().load(types::I64, mf(), cpu, off::CHAIN_MASK);
    use crate::cpu::{CHAIN_GRAIN, CHAIN_MAX_BITS};
    let sh = b.ins().ushr_imm_u(next, i64::from(CHAIN_MAX_BITS + CHAIN_GRAIN));
    let h = b.ins().bxor(next, sh);
    // The slot's byte offset: its index (the bits above the grain) times 16.
    let h = b.ins().band(h, mask);
    let o = b.ins().ishl_imm_u(h, i64::from(4 - CHAIN_GRAIN));
    let slot = b.ins().iadd(table, o);
    let srip = b.ins().load(types::I64, mf(), slot, 0);
    (b.ins().icmp(IntCC::Equal, srip, next), slot)
}

/// Chain: if the table slot of the next rip holds its unit, jump straight into it with `args`
/// (`unit_args`: the count of instructions run, the next rip, the `CARRIED` registers); a miss
/// goes on into the context's unit for misses (`Cpu::miss_unit`), or, where it has none, in a
/// new block, laid out with the cold code, that returns to the dispatcher. Not
/// `hot`: the jump is laid out with the cold code too (the exit has a link, which it takes
/// unless links are forbidden).
fn chain(b: &mut FunctionBuilder<'_>, sig: ir::SigRef, args: UnitArgs, hot: bool) {
    let (hit, slot) = chain_lookup(b, args[CONTEXT_ARG], args[1]);
    let (go, back) = (b.create_block(), b.create_block());
    b.ins().brif(hit, go, &[], back, &[]);
    b.seal_block(go);
    b.seal_block(back);
    b.switch_to_block(go);
    if !hot {
        b.set_cold_block(go);
    }
    let f = b.ins().load(types::I64, mf(), slot, 8);
    b.ins().return_call_indirect(sig, f, &args);
    b.switch_to_block(back);
    b.set_cold_block(back);
    let miss = b.ins().load(types::I64, mf(), args[CONTEXT_ARG], off::MISS_UNIT);
    let (found_on, returned) = (b.create_block(), b.create_block());
    b.ins().brif(miss, found_on, &[], returned, &[]);
    b.seal_block(found_on);
    b.seal_block(returned);
    b.switch_to_block(found_on);
    b.set_cold_block(found_on);
    b.ins().return_call_indirect(sig, miss, &args);
    b.switch_to_block(returned);
    b.set_cold_block(returned);
}

/// The link stub of a pack (`cache_format::encode_pack`): entered like a unit by the links
/// whose target has no unit in the pack, it goes on to its rip through the chaining table, or
/// returns to the dispatcher.
pub fn lower_link_stub(mut b: FunctionBuilder<'_>, isa: &dyn TargetIsa) {
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let args: UnitArgs = std::array::from_fn(|i| b.block_params(entry)[i]);
    let [insns, rip, ..] = args;
    let cpu = args[CONTEXT_ARG];
    b.ins().store(mf(), rip, cpu, off::RIP);
    let sig = b.import_signature(super::unit_signature());
    chain(&mut b, sig, args, true);
    let c = b.ins().iconst(types::I64, exit::NEXT as i64);
    return_code(&mut b, (c, insns), None, cpu);
    b.finalize(isa.frontend_config());
}
