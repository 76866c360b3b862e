//! `Emitter` over Cranelift: guest registers cached in SSA values within the unit, lazy flags
//! tracked at translation time, guest memory accessed at its own address (`mem::in_reach`),
//! everything else through the helper table reached from the context.

use super::values::{
    constant_step, i64_lane_source, iconst_value, negated_condition, same_value, signed_range, split_displacement,
    stored_bits, sum_operands, zero_above,
};
use super::{Placement, CARRIED, CARRIED_MASK, H_COND, H_RFLAGS, H_SLOW, STACK_POINTER};
use crate::cpu::flags::{self, Cc, Flags};
use crate::cpu::ops::{Bin, Cmp, Ops, Un};
use crate::cpu::{exit, off, CHECKPOINT_SHIFT};
use crate::mem::{GUEST_SPACE, REACH_STEP};
use crate::semantics;
use crate::semantics::emitter::{Emitter, Rmw, VOp, VShift};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, AtomicRmwOp, BlockArg, ConstantData, Endianness, ExtFuncData, ExternalName, FuncRef, InstBuilder,
    MemFlagsData, SigRef, Signature, StackSlotData, StackSlotKind, TrapCode, Type, UserExternalName, Value,
};
use cranelift_codegen::isa::TargetIsa;
use cranelift_frontend::{FunctionBuilder, Variable};
use iced_x86::Instruction;

/// How a guest block ends, as its last instruction's semantics said.
#[derive(Clone, Copy)]
pub(super) enum Terminal {
    /// To an address computed at run time (or a direct jump or call: `code_addr` of it).
    Jump(Value),
    /// A conditional branch between two known addresses.
    Branch(Value, u64, u64),
    /// A system call, continuing at the address after it.
    Syscall(u64),
}

/// The translation-time state of the guest registers and flags: which variables hold the
/// current value, which differ from the context, and the flags not yet stored.
#[derive(Clone, Copy)]
pub(super) struct Cached {
    valid: [bool; 16],
    dirty: [bool; 16],
    xvalid: [bool; 16],
    xdirty: [bool; 16],
    flags: Option<Flags<Value>>,
    flags_dirty: bool,
}

impl Cached {
    /// A block's start: the variables of the registers in `valid` current (the others still
    /// to load), the registers in `dirty` possibly different from the context, the flags in
    /// the context.
    pub fn at_start(dirty: Regs, valid: Regs) -> Cached {
        Cached {
            valid: valid.gprs(),
            dirty: dirty.gprs(),
            xvalid: valid.xmms(),
            xdirty: dirty.xmms(),
            flags: None,
            flags_dirty: false,
        }
    }

    /// The registers that may differ from the context.
    pub fn dirty(&self) -> Regs {
        let mask = |d: &[bool; 16]| (0..16).filter(|&r| d[r]).fold(0u16, |m, r| m | 1 << r);
        Regs {
            gpr: mask(&self.dirty),
            xmm: mask(&self.xdirty),
        }
    }
}

/// A set of guest registers: GPRs and XMMs as bit masks.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Regs {
    pub gpr: u16,
    pub xmm: u16,
}

impl Regs {
    pub fn union(self, o: Regs) -> Regs {
        Regs {
            gpr: self.gpr | o.gpr,
            xmm: self.xmm | o.xmm,
        }
    }

    pub fn contains(self, o: Regs) -> bool {
        self.union(o) == self
    }

    pub fn gprs(self) -> [bool; 16] {
        std::array::from_fn(|r| self.gpr & 1 << r != 0)
    }

    pub fn xmms(self) -> [bool; 16] {
        std::array::from_fn(|r| self.xmm & 1 << r != 0)
    }

    /// The registers `ins` may write, as iced-x86 reports them (implicit ones included).
    pub fn written_by(ins: &Instruction) -> Regs {
        use iced_x86::OpAccess;
        Regs::accessed_by(ins, |a| {
            !matches!(a, OpAccess::Read | OpAccess::CondRead | OpAccess::NoMemAccess)
        })
    }

    /// The registers `ins` may read (what it reads, and what it writes in part, keeping the
    /// rest of the register, or only under a condition), and those it writes whole without
    /// reading them first.
    pub fn read_and_replaced_by(ins: &Instruction) -> (Regs, Regs) {
        use iced_x86::OpAccess;
        let mut info = iced_x86::InstructionInfoFactory::new();
        let (mut read, mut written) = (Regs::default(), Regs::default());
        for u in info.info(ins).used_registers() {
            let reg = u.register();
            let whole = !reg.is_gpr() || reg.size() >= 4;
            let set = match u.access() {
                OpAccess::None | OpAccess::NoMemAccess => continue,
                OpAccess::Write if whole => &mut written,
                _ => &mut read,
            };
            set.add(reg);
        }
        (read, written.minus(read))
    }

    /// Every register.
    pub const ALL: Regs = Regs {
        gpr: u16::MAX,
        xmm: u16::MAX,
    };

    /// The `CARRIED` registers.
    pub const CARRIED: Regs = Regs {
        gpr: CARRIED_MASK,
        xmm: 0,
    };

    pub fn minus(self, o: Regs) -> Regs {
        Regs {
            gpr: self.gpr & !o.gpr,
            xmm: self.xmm & !o.xmm,
        }
    }

    fn accessed_by(ins: &Instruction, counts: impl Fn(iced_x86::OpAccess) -> bool) -> Regs {
        let mut info = iced_x86::InstructionInfoFactory::new();
        let mut r = Regs::default();
        for u in info.info(ins).used_registers() {
            if !counts(u.access()) {
                continue;
            }
            r.add(u.register());
        }
        r
    }

    /// Adds the GPR or XMM register that `reg` is part of (none for other registers).
    fn add(&mut self, reg: iced_x86::Register) {
        let full = reg.full_register();
        if full.is_gpr64() {
            self.gpr |= 1 << full.number();
        } else if full.is_vector_register() {
            self.xmm |= 1 << (full.number() & 15);
        }
    }
}

pub(super) struct Lower<'a> {
    pub b: FunctionBuilder<'a>,
    /// Guest registers as Cranelift variables, across the region's blocks and loops.
    regs: [Variable; 16],
    /// XMM registers as I8X16 variables.
    xregs: [Variable; 16],
    /// Guest instructions run since the dispatcher last entered compiled code (the units
    /// chained before this one pass their count on), returned with the exit code; `pending`
    /// more are counted on the way here, added where the count is read or ways meet.
    insns: Variable,
    pub pending: i64,
    pub state: Cached,
    /// Liveness of the current instruction's flags.
    flags_live: bool,
    /// The flags (RFLAGS bits) that may be read after the current instruction.
    flags_read_later: u64,
    helper_sig: SigRef,
    pub unit_sig: SigRef,
    /// The unit's guest address at run time (its entry rip) and at translation time: code
    /// addresses and instruction offsets are relative to it.
    pub entry_rip: Value,
    pub head: u64,
    /// Whether code addresses are constants (`Placement::Fixed`) or relative to `entry_rip`.
    pub placement: Placement,
    /// The guest address the context's rip holds below a checkpoint's distance where lowering
    /// stands, when known (`set_rip`): per block from `region::rip_bases`.
    pub rip_base: Option<u64>,
    /// How the current guest block ended, once its last instruction ran.
    pub end: Option<Terminal>,
    /// Instructions of the current guest block after the one being lowered (counted already,
    /// where the block starts).
    pub insns_after: u64,
    /// Float guards (`float.rs`) not branched on yet, as one condition: they are settled
    /// before the first instruction after them that could show what ran under them
    /// (`Lower::settle_guards`).
    deferred_guard: Option<Value>,
    /// Deferred float guards per lane, one vector condition per lane type.
    deferred_lanes: Vec<Value>,
    /// The instructions run before the last checkpoint, counted as `pending` counts, for a
    /// replay from there to return with (`fault::REPLAY`): exact after a checkpoint in the
    /// current guest block, else those before the block (a checkpoint before it makes the
    /// replay run some again, as after a host fault).
    pub replay_count: i64,
    /// The registers the current instruction may write (`Regs::written_by`), when the region
    /// relies on it; a write outside them makes the compile fail (`unpredicted`).
    pub predicted: Option<Regs>,
    pub unpredicted: bool,
    /// The instruction being lowered is an access of a loop's head that needs no check on a
    /// round (`strides`): its address was checked on the way into the loop.
    pub strided: bool,
    /// Where the slow path of the instruction being lowered joins its common case
    /// (`slow_unless`), once the instruction is done.
    join: Option<cranelift_codegen::ir::Block>,
    /// The block addresses outside the guest space branch to (`finish_outside` fills it).
    outside: Option<cranelift_codegen::ir::Block>,
    /// Where the unit stores an instruction's record for the slow helper (`slow_record`).
    record_slot: Option<cranelift_codegen::ir::StackSlot>,
    /// The unit's one return (`return_counted`), the one for the ways out that hand on no
    /// registers, and the block every exit through the chaining table goes through
    /// (`region::finish_chain` fills it).
    ret_block: Option<cranelift_codegen::ir::Block>,
    ret_uncarried_block: Option<cranelift_codegen::ir::Block>,
    chain_block: Option<cranelift_codegen::ir::Block>,
    /// Stack pointers in reach wherever they are defined (`jit::stack_in_reach`): the one the
    /// unit was entered with, and those its callees gave back.
    stacks_in_reach: Vec<Value>,
    /// What checks that dominate the current block established.
    known: Known,
    /// Compiled for a pack: the units this one links to (`cache_format::Link`), by guest
    /// address, with the function each stands for (named by its index here). None: the unit
    /// has no links.
    pub links: Option<Vec<(u64, FuncRef)>>,
    /// The context pointer (`cpu`).
    context: Variable,
    /// The guest store lowered last (`forwarded`).
    last_store: Option<LastStore>,
    /// Guest stores and calls lowered so far: anything that may have written guest memory.
    pub guest_writes: u64,
}

/// A guest store: where (the Cranelift block, the address's variable part and displacement),
/// how many bytes, the value stored, and `Lower::guest_writes` once it was counted.
#[derive(Clone, Copy)]
struct LastStore {
    block: cranelift_codegen::ir::Block,
    part: Value,
    disp: i32,
    size: u8,
    value: Value,
    writes: u64,
}

/// Facts established by checks that dominate the block named: reset when lowering moves to a
/// block they may not dominate, kept across a branch to a cold exit and into both sides of a
/// guest block's closing branch (`switch_keeping`), and those of values (`facts_here`) into
/// the guest blocks of a region that the block dominates (`assume`).
#[derive(Default, Clone)]
pub(super) struct Known {
    block: Option<cranelift_codegen::ir::Block>,
    /// Values checked to be in reach (`check_in_reach`), or accessed in the guest space.
    in_reach: Vec<Value>,
    /// Float lanes checked to lie in a range (`float.rs`).
    floats: Vec<(Value, float::Range)>,
    /// The lane an XMM value holds in a float format (value, format tag, lane).
    lanes: Vec<(Value, (bool, bool), Value)>,
    /// Byte shuffles made (sources, indices, result): the same shuffle again is the same
    /// value, which what checks find of one holds for (`Emitter::vshuffle`).
    shuffles: Vec<([Value; 2], [u8; 16], Value)>,
    /// MXCSR checked to hold its default settings with the precision flag set (cleared by any
    /// helper call, which may change it).
    mxcsr_default: bool,
    /// Flag words of (u)comisd/ss and the float operands they compared, checked to be
    /// ordered (`float.rs`): a condition on such flags is a comparison of those operands.
    compares: Vec<(Value, Value, Value)>,
    /// The limit of addresses in reach, loaded from the context in this guest block
    /// (`out_of_reach`).
    limit: Option<Value>,
}

/// SSE floating point lowered to host instructions where they cannot differ (`float.rs`).
#[path = "float.rs"]
mod float;
pub(super) use float::takes_mxcsr;

/// The byte of `Cpu::rip` where a checkpoint's distance goes (`set_rip`; little-endian).
const CHECKPOINT_BYTE: i32 = (CHECKPOINT_SHIFT / 8) as i32;

/// How many operations deep `Lower::in_reach_by_range` looks into how an address was made.
const RANGE_DEPTH: u32 = 6;

fn mf() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Jumps with `values` to the block in `tail` (made first, with a parameter per value, where
/// there is none yet): a tail that many ways out of a unit share.
fn jump_to_shared(b: &mut FunctionBuilder<'_>, tail: &mut Option<cranelift_codegen::ir::Block>, values: &[Value]) {
    let block = *tail.get_or_insert_with(|| {
        let t = b.create_block();
        for &v in values {
            let ty = b.func.dfg.value_type(v);
            b.append_block_param(t, ty);
        }
        t
    });
    let args: Vec<BlockArg> = values.iter().copied().map(BlockArg::from).collect();
    b.ins().jump(block, &args);
}

const _: () = assert!(super::CARRIED[0] == 4);

/// Guest memory may be unaligned and may fault like the guest's own access.
fn guest_mf() -> MemFlagsData {
    MemFlagsData::new()
}

impl<'a> Lower<'a> {
    /// Starts lowering into `b`, whose current block is the unit's body. The registers in
    /// `live` are loaded into their variables there (the `CARRIED` ones come in `carried`);
    /// any other register is loaded where it is first read.
    pub fn new(
        mut b: FunctionBuilder<'a>,
        isa: &dyn TargetIsa,
        (entry_rip, head): (Value, u64),
        live: Regs,
        (insns_before, carried, cpu): (Value, [Value; 4], Value),
    ) -> Self {
        let helper_sig = b.import_signature(helper_signature(isa));
        let unit_sig = b.import_signature(super::unit_signature());
        let mut var = |ty: Type, offset: i32, load: bool| {
            let var = b.declare_var(ty);
            if load {
                let v = b.ins().load(ty, mf(), cpu, offset);
                b.def_var(var, v);
            }
            var
        };
        let live = live.union(Regs::CARRIED);
        let gprs = live.gprs();
        let in_context = |r: usize| gprs[r] && CARRIED_MASK & 1 << r == 0;
        let regs: [Variable; 16] = std::array::from_fn(|r| var(types::I64, off::gpr(r), in_context(r)));
        let xregs = std::array::from_fn(|r| var(types::I8X16, off::xmm(r), live.xmms()[r]));
        for (r, v) in CARRIED.into_iter().zip(carried) {
            b.def_var(regs[r], v);
        }
        let insns = b.declare_var(super::COUNT);
        b.def_var(insns, insns_before);
        let context = b.declare_var(types::I64);
        b.def_var(context, cpu);
        Lower {
            context,
            b,
            regs,
            xregs,
            insns,
            pending: 0,
            state: Cached::at_start(Regs::default(), live),
            join: None,
            outside: None,
            record_slot: None,
            ret_block: None,
            ret_uncarried_block: None,
            chain_block: None,
            stacks_in_reach: vec![carried[0]],
            known: Known::default(),
            flags_live: true,
            flags_read_later: crate::cpu::rflags::ARITH,
            helper_sig,
            unit_sig,
            entry_rip,
            placement: Placement::Relocatable,
            head,
            rip_base: Some(head),
            end: None,
            insns_after: 0,
            deferred_guard: None,
            deferred_lanes: Vec::new(),
            replay_count: 0,
            predicted: None,
            unpredicted: false,
            strided: false,
            links: None,
            last_store: None,
            guest_writes: 0,
        }
    }

    /// The context pointer: the unit's argument, or what the last unit it called gave back.
    pub fn cpu(&mut self) -> Value {
        self.b.use_var(self.context)
    }

    /// Where a guest block of a region starts: the limit of addresses in reach is read from the
    /// context again where the block first needs it, not kept from a block before.
    pub(super) fn start_guest_block(&mut self) {
        self.known().limit = None;
    }

    /// Takes `cpu` as the context pointer from here on (a callee's result).
    pub(super) fn set_cpu(&mut self, cpu: Value) {
        self.b.def_var(self.context, cpu);
    }

    /// The function that stands for the unit at guest address `target` when the unit is
    /// compiled for a pack (a reference the pack's writer fills in); None otherwise.
    pub fn link_to(&mut self, target: u64) -> Option<FuncRef> {
        let links = self.links.as_mut()?;
        if let Some(&(_, f)) = links.iter().find(|(t, _)| *t == target) {
            return Some(f);
        }
        let name = UserExternalName::new(0, links.len() as u32);
        let name = self.b.func.declare_imported_user_function(name);
        let f = self.b.import_function(ExtFuncData {
            name: ExternalName::User(name),
            signature: self.unit_sig,
            colocated: true,
            patchable: false,
        });
        links.push((target, f));
        Some(f)
    }

    /// A checkpoint at the instruction at `ip`: the context holds the guest state as it is
    /// there, rip included. Between checkpoints the registers live in host registers only; a
    /// guest memory fault there abandons them, and the dispatcher runs the baseline tier again
    /// from the last checkpoint (nothing after a checkpoint writes guest memory before the
    /// next), which faults with the exact state.
    pub fn checkpoint(&mut self, ip: u64) {
        self.settle_guards();
        self.flush();
        self.set_rip(ip);
    }

    /// `checkpoint`, with the flags only when the code after it may read them: where it writes
    /// them before reading them, they stay out of the context (a replay from here writes them
    /// before reading them too), and of the dirty registers only those in `observed` (what the
    /// code after it may observe before replacing them, `jit::observed`): the others stay
    /// dirty, for a later checkpoint or the exit to store.
    pub fn checkpoint_of(&mut self, ip: u64, flags_read: bool, observed: Regs) {
        self.settle_guards();
        self.flush_regs_in(observed);
        if flags_read {
            self.flush_flags();
        }
        self.set_rip(ip)
    }

    /// Makes the context's rip stand for the guest address `ip` of this unit. Where the rip's
    /// low bits hold a known address (`rip_base`: the head from the unit's entry, a call's
    /// return address after the callee came back), that is one 16-bit constant, `ip`'s signed
    /// distance from it, stored in the rip's top bits (`cpu::CHECKPOINT_SHIFT`): computing and
    /// storing the whole address took three instructions and the unit's address kept at hand.
    /// Elsewhere the whole address, which becomes the base. Only a fault reads this rip,
    /// settled by the trampoline (`cpu::settled_rip`).
    pub fn set_rip(&mut self, ip: u64) {
        let distance = self.rip_base.map(|b| ip.wrapping_sub(b) as i64);
        match distance.and_then(|d| i16::try_from(d).ok()) {
            Some(d) => {
                let cpu = self.cpu();
                let d = self.b.ins().iconst(types::I16, i64::from(d));
                self.b.ins().store(mf(), d, cpu, off::RIP + CHECKPOINT_BYTE);
            }
            None => {
                // A block that knows no base, or an edge into an inlined callee's code beyond
                // the region's span (`region::lower_region` refuses larger spans).
                self.set_rip_whole(ip);
                self.rip_base = Some(ip);
            }
        }
    }

    /// Stores the guest address `ip` whole as the context's rip (its top bits clear): for a way
    /// out that the dispatcher reads without a fault, or a block that knows no base.
    pub fn set_rip_whole(&mut self, ip: u64) {
        let rip = self.code_addr(ip);
        let cpu = self.cpu();
        self.b.ins().store(mf(), rip, cpu, off::RIP);
    }

    fn check_predicted(&mut self, w: Regs) {
        if self.predicted.is_some_and(|p| !p.contains(w)) {
            self.unpredicted = true;
        }
    }

    /// Seals blocks whose every predecessor is in place: variables used there then need no
    /// block parameters (sealing late makes them, and removes them again, at compile cost).
    pub fn seal(&mut self, blocks: &[cranelift_codegen::ir::Block]) {
        for &b in blocks {
            self.b.seal_block(b);
        }
    }

    /// Counts `n` more guest instructions run.
    pub fn count_insns(&mut self, n: usize) {
        self.pending += n as i64;
    }

    /// The instructions run so far, for the next unit.
    pub fn insns_run(&mut self) -> Value {
        self.count_plus(self.pending)
    }

    /// The count with `n` more instructions run.
    fn count_plus(&mut self, n: i64) -> Value {
        let c = self.b.use_var(self.insns);
        if n == 0 {
            return c;
        }
        let cpu = self.cpu();
        super::count_added(&mut self.b, c, n, cpu)
    }

    /// Adds the pending count to the variable but for `left_pending`, on a way into a block
    /// that other ways also lead to: every way leaves the same number pending there, so the
    /// count arrives as one value whichever way came.
    pub fn settle_count(&mut self, left_pending: i64) {
        let c = self.count_plus(self.pending - left_pending);
        self.b.def_var(self.insns, c);
    }

    /// Returns from the unit with exit `code`, the instructions run and the `CARRIED`
    /// registers' values (where the code is `exit::RETURN`).
    pub fn return_with(&mut self, code: Value, carried: Option<[Value; 4]>) {
        let insns = self.insns_run();
        self.return_counted(code, insns, carried);
    }

    /// Returns from the unit with exit `code`, `insns` instructions run and the `CARRIED`
    /// registers' values (zeros where none are given), through the unit's one return
    /// (`finish_return`): a unit has many ways out, and its frame is torn down in one place.
    /// The ways out that give no registers share one more, which makes the zeros (each way
    /// making its own, Cranelift kept one zero on the stack, reloaded four times in each).
    pub fn return_counted(&mut self, code: Value, insns: Value, carried: Option<[Value; 4]>) {
        let cpu = self.cpu();
        match carried {
            Some(carried) => {
                let values: Vec<Value> = [code, insns].into_iter().chain(carried).chain([cpu]).collect();
                jump_to_shared(&mut self.b, &mut self.ret_block, &values);
            }
            None => jump_to_shared(&mut self.b, &mut self.ret_uncarried_block, &[code, insns, cpu]),
        }
    }

    /// Leaves the unit for the unit at the chaining table's slot for the guest address in
    /// `args` (the next unit's arguments, `region::unit_args`), through the one lookup all the
    /// unit's ways out through the table share (`take_chain_block`).
    pub fn exit_through_chain(&mut self, args: super::UnitArgs) {
        jump_to_shared(&mut self.b, &mut self.chain_block, &args);
    }

    /// The block `exit_through_chain` jumps to, for the caller to fill, if any way out did.
    pub fn take_chain_block(&mut self) -> Option<cranelift_codegen::ir::Block> {
        self.chain_block.take()
    }

    /// Fills the unit's one return (`return_counted`), once every way out is lowered.
    pub fn finish_return(&mut self) {
        if let Some(r) = self.ret_uncarried_block.take() {
            // Only ways back to the dispatcher take it.
            self.b.switch_to_block(r);
            self.b.set_cold_block(r);
            // The code, the instructions run and the context (`return_counted`).
            let taken = self.b.block_params(r).to_vec();
            super::return_code(&mut self.b, (taken[0], taken[1]), None, taken[2]);
        }
        if let Some(r) = self.ret_block.take() {
            self.b.switch_to_block(r);
            let values = self.b.block_params(r).to_vec();
            self.b.ins().return_(&values);
        }
    }

    /// Stores every dirty register and the flags to the context.
    pub fn flush(&mut self) {
        self.flush_regs();
        self.flush_flags();
    }

    /// Stores the dirty registers (not the flags).
    pub fn flush_regs(&mut self) {
        self.flush_regs_in(Regs::ALL)
    }

    /// Stores the dirty registers of `which`.
    fn flush_regs_in(&mut self, which: Regs) {
        let (gprs, xmms) = (which.gprs(), which.xmms());
        for r in 0..16 {
            if self.state.dirty[r] && gprs[r] {
                let v = self.b.use_var(self.regs[r]);
                let cpu = self.cpu();
                self.b.ins().store(mf(), v, cpu, off::gpr(r));
                self.state.dirty[r] = false;
            }
            if self.state.xdirty[r] && xmms[r] {
                let v = self.b.use_var(self.xregs[r]);
                let cpu = self.cpu();
                self.b.ins().store(mf(), v, cpu, off::xmm(r));
                self.state.xdirty[r] = false;
            }
        }
    }

    /// Stores the flag record if the context does not hold it yet.
    pub fn flush_flags(&mut self) {
        if self.state.flags_dirty {
            if let Some(f) = self.state.flags {
                // Only the fields the record's kind reads; its kind and size in one word.
                let used = f.kind.fields();
                let cpu = self.cpu();
                let k = flags::kind_and_size(f.kind, f.size);
                let k = self.b.ins().iconst(types::I64, k as i64);
                self.b.ins().store(mf(), k, cpu, off::FLAGS_KIND);
                self.b.ins().store(mf(), f.res, cpu, off::FLAGS_RES);
                for (store, v, at) in [
                    (used.a, f.a, off::FLAGS_A),
                    (used.b, f.b, off::FLAGS_B),
                    (used.aux, f.aux, off::FLAGS_AUX),
                ] {
                    if store {
                        self.b.ins().store(mf(), v, cpu, at);
                    }
                }
            }
            self.state.flags_dirty = false;
        }
    }

    /// Stores every dirty register and the flags to the context without marking them clean:
    /// for a path that calls a helper while the other path keeps the cached values.
    pub(super) fn store_dirty(&mut self) {
        let kept = self.state;
        self.flush();
        self.state = kept;
    }

    /// After a call to another unit that returned here: the context holds the whole state
    /// (nothing cached is current but the `CARRIED` registers, which came back in `carried`),
    /// and `insns` instructions ran so far, the callee's included.
    /// The callee left `back` whole as the context's rip (`rip_base`).
    pub fn returned_from_call(&mut self, insns: Value, carried: [Value; 4], back: u64) {
        self.rip_base = Some(back);
        self.stacks_in_reach.push(carried[0]);
        self.state = Cached::at_start(Regs::default(), Regs::default());
        for (r, v) in CARRIED.into_iter().zip(carried) {
            self.b.def_var(self.regs[r], v);
            self.state.valid[r] = true;
        }
        self.b.def_var(self.insns, insns);
        self.pending = 0;
    }

    /// The flag record where lowering stands, if the unit computed it (else the context holds
    /// the flags).
    pub fn flags_now(&self) -> Option<Flags<Value>> {
        self.state.flags
    }

    /// Starts a block whose one way in left the flags as `flags` (`flags_now` there): where
    /// the flags were live on that edge, its checkpoint stored them, so they are not dirty.
    pub fn flags_from_edge(&mut self, flags: Option<Flags<Value>>) {
        self.state.flags = flags;
        self.state.flags_dirty = false;
    }

    /// What the checks that dominate where lowering stands found.
    pub fn known_here(&mut self) -> Known {
        self.known().clone()
    }

    /// Switches to `block`, which the current block dominates (a side of the branch that ends
    /// it), with `known` (`known_here` at the branch) holding there.
    pub fn switch_keeping(&mut self, block: cranelift_codegen::ir::Block, known: Known) {
        self.b.switch_to_block(block);
        self.known = Known {
            block: Some(block),
            ..known
        };
    }

    /// Whether MXCSR's default settings were found where lowering stands (`float.rs`), for
    /// the block that the current one's only edge leads to (`mxcsr_from_edge`).
    pub fn mxcsr_default_now(&mut self) -> bool {
        self.known().mxcsr_default
    }

    /// Starts a block whose one way in found MXCSR's default settings (`mxcsr_default_now`
    /// there), with no helper call since.
    pub fn mxcsr_from_edge(&mut self, found: bool) {
        self.known().mxcsr_default |= found;
    }

    /// Forget cached state after a helper that may change any of it (everything was stored
    /// before the call).
    fn invalidate(&mut self) {
        self.state.valid = [false; 16];
        self.state.xvalid = [false; 16];
        self.state.flags = None;
    }

    /// Makes the variables of the registers in `live` hold the current value (loading what a
    /// helper may have changed or what was not loaded yet), as the block the code goes on in
    /// expects at its start.
    pub fn revalidate(&mut self, live: Regs) {
        let (gprs, xmms) = (live.gprs(), live.xmms());
        for r in 0..16 {
            if gprs[r] && !self.state.valid[r] {
                let cpu = self.cpu();
                let v = self.b.ins().load(types::I64, mf(), cpu, off::gpr(r));
                self.b.def_var(self.regs[r], v);
            }
            if xmms[r] && !self.state.xvalid[r] {
                let cpu = self.cpu();
                let v = self.b.ins().load(types::I8X16, mf(), cpu, off::xmm(r));
                self.b.def_var(self.xregs[r], v);
            }
            self.state.valid[r] |= gprs[r];
            self.state.xvalid[r] |= xmms[r];
        }
    }

    /// Records a guest store of `size` bytes of `value` at `(part, disp)` (`host_addr`), the
    /// last one lowered.
    fn stored(&mut self, (part, disp): (Value, i32), size: u8, value: Value) {
        self.guest_writes += 1;
        self.last_store = self.b.current_block().map(|block| LastStore {
            block,
            part,
            disp,
            size,
            value,
            writes: self.guest_writes,
        });
    }

    /// The store a load at `addr` may take its bytes from: the last one lowered, at the same
    /// address, in the same Cranelift block with nothing that may write guest memory since.
    /// The CPU forwards a store to a load it covers whole; a load wider than the store (`movsd
    /// [m], xmm` then `movupd xmm, [m]`, as a compiler updates half a pair) waits until the
    /// store and every store before it reach the cache: compiled code, which stores the
    /// registers at the checkpoint between them, waited the longer (a warm n-body run spent a
    /// quarter of its samples there). A thread may read its own store before other threads
    /// see it, so taking the value stored is what the CPU may do.
    fn forwarded(&self, (part, disp): (Value, i32)) -> Option<LastStore> {
        let s = self.last_store?;
        let here = self.b.current_block() == Some(s.block) && s.writes == self.guest_writes;
        (here && s.disp == disp && same_value(&self.b.func.dfg, s.part, part, 3)).then_some(s)
    }

    fn call_helper(&mut self, h: i64, a0: Value, a1: Value) -> Value {
        self.known().mxcsr_default = false;
        self.guest_writes += 1;
        let cpu = self.cpu();
        let table = self.b.ins().load(types::I64, mf(), cpu, off::HELPERS);
        let f = self.b.ins().load(types::I64, mf(), table, (h * 8) as i32);
        let context = super::context_for_helper(&mut self.b, cpu);
        let call = self.b.ins().call_indirect(self.helper_sig, f, &[context, a0, a1]);
        self.after_host_call();
        self.b.inst_results(call)[0]
    }

    /// After a call: the code after it reads the limit of addresses in reach from the context
    /// again, so that it does not live across the call in a callee-saved register (saved and
    /// restored by the unit's prologue and every exit): warm `cc1 -O2 lparser.i` 0.980x,
    /// sha256.i 0.990x in paired rounds.
    pub(super) fn after_host_call(&mut self) {
        self.known().limit = None;
    }

    /// A guest address as a host pointer and a displacement for the access to add: guest
    /// memory lies at its own address in the host's, the address's register part is checked
    /// to be in reach (`mem::in_reach`, once per stretch of code without a join), and its
    /// constant part, a signed 32-bit number, is added by the access itself, which then
    /// faults when it leaves the guest space. A register part out of reach branches to
    /// `outside`, which faults in the guard: compiled code faults are replayed in the baseline
    /// tier, which reports the guest's own address.
    fn host_addr(&mut self, addr: Value) -> (Value, i32) {
        let at = split_displacement(&self.b.func.dfg, addr);
        self.checked(at)
    }

    /// `host_addr` of an address already split into its variable part and displacement.
    fn checked(&mut self, (x, disp): (Value, i32)) -> (Value, i32) {
        self.check_in_reach(x);
        (x, disp)
    }

    /// Branches to `outside` unless `x` is in reach (`mem::in_reach`), when no check of `x`
    /// dominates the current block. A register part below zero passes: it is common (an index
    /// counting up to zero from below, with the array's address as the displacement), and an
    /// access from one faults unless the displacement brings it back into the guest space.
    pub(super) fn check_in_reach(&mut self, x: Value) {
        // The unit's own address is guest code, inside the guest space; a value within
        // `REACH_STEP` of one in reach (a stack pointer the unit was entered with, below a
        // push or a frame) is in reach for an access (`mem::in_reach`): the check is for a
        // value never seen in reach, and the access's address is not taken as in reach for
        // more (only what it found: `accessed`).
        if self.strided || x == self.entry_rip || self.reach_from(x).is_some() || self.in_reach_by_range(x) {
            return;
        }
        self.require_in_reach(x);
    }

    /// Whether every number `x` may hold is in reach (`values::signed_range`: a masked, shifted
    /// or extended index, with a constant table's address as the displacement), or lies within
    /// `REACH_STEP` of a value in reach, where `x` is one plus such an index (`tab[i & 63]`, a
    /// byte's entry): then an access from `x` needs no check, as one from a value `reach_from`
    /// finds. Not taken as in reach for more, as those are not.
    fn in_reach_by_range(&mut self, x: Value) -> bool {
        let dfg = &self.b.func.dfg;
        if signed_range(dfg, x, RANGE_DEPTH).1 < crate::mem::SPACE_LIMIT as i64 {
            return true;
        }
        let Some([a, b]) = sum_operands(dfg, x) else {
            return false;
        };
        let step = REACH_STEP as i64;
        [(a, b), (b, a)].into_iter().any(|(base, index)| {
            let (lo, hi) = signed_range(&self.b.func.dfg, index, RANGE_DEPTH);
            let far = lo.unsigned_abs().max(hi.unsigned_abs());
            lo >= -step
                && hi <= step
                && (self.reach_from(base)).is_some_and(|(d, _)| d.unsigned_abs() + far <= REACH_STEP)
        })
    }

    /// Branches to `outside` unless `x` is in reach, as `check_in_reach`, for a value that
    /// lowering then takes as in reach (and derives more from). Its callers asked `reach_from`
    /// first, which finds `x` where it is itself a value in reach.
    fn require_in_reach(&mut self, x: Value) {
        // The same sum of the same registers, computed again for another access.
        self.known();
        let dfg = &self.b.func.dfg;
        if self.known.in_reach.iter().any(|&u| same_value(dfg, u, x, 3)) {
            return;
        }
        // A constant address (a fixed unit's code and data, `Placement::Fixed`) is known.
        if iconst_value(&self.b.func.dfg, x).is_some_and(|c| crate::mem::in_reach(c as u64)) {
            return;
        }
        let outside = self.out_of_reach(x);
        let fault = *self.outside.get_or_insert_with(|| self.b.create_block());
        self.leave_if(outside, fault);
        self.known.in_reach.push(x);
    }

    /// Whether `v` is out of reach (`mem::in_reach`): a signed comparison with the limit the
    /// context holds, read through the block's copy of the context pointer (a 64-bit constant
    /// would be a ten-byte instruction at every check), once per guest block where checks
    /// dominate each other (`Known::limit`): Cranelift's alias analysis does not merge the
    /// loads in a loop, where each check starts a block whose state it meets with a stale one.
    pub fn out_of_reach(&mut self, v: Value) -> Value {
        let limit = match self.known().limit {
            Some(limit) => limit,
            None => {
                let cpu = self.cpu();
                let limit = self.b.ins().load(types::I64, mf(), cpu, off::SPACE_LIMIT);
                self.known.limit = Some(limit);
                limit
            }
        };
        self.b.ins().icmp(IntCC::SignedGreaterThanOrEqual, v, limit)
    }

    /// Records that guest memory at `addr` was accessed: where the access did not fault, the
    /// address lies in the guest space.
    fn accessed(&mut self, addr: Value) {
        self.known().in_reach.push(addr);
    }

    /// Where `v` lies from a value in reach where lowering stands, when it is one plus a
    /// constant within `mem::REACH_STEP`: the constant, and whether that value is a stack
    /// pointer the unit took as in reach (`stacks_in_reach`). A stack pointer `v` is at or
    /// below answers at once (what every caller accepts); one it is above only where no value
    /// checked or accessed here lies further on the way.
    fn reach_from(&mut self, v: Value) -> Option<(i64, bool)> {
        self.known();
        let (in_reach, stacks, dfg) = (&self.known.in_reach, &self.stacks_in_reach, &self.b.func.dfg);
        let (mut u, mut d) = (v, 0i64);
        let mut stack = None;
        loop {
            if in_reach.contains(&u) {
                return Some((d, false));
            }
            if stack.is_none() && stacks.contains(&u) {
                if d <= 0 {
                    return Some((d, true));
                }
                stack = Some((d, true));
            }
            match constant_step(dfg, u) {
                Some((rest, step)) if (d + step).unsigned_abs() <= REACH_STEP => (u, d) = (rest, d + step),
                _ => return stack,
            }
        }
    }

    /// Whether `v` is known to be in reach where lowering stands, as a value the unit may hand
    /// on (a stack pointer the next unit takes as in reach, and accesses and derives more from
    /// unchecked): a stack pointer the unit took as in reach or one below it (a value below
    /// one in reach is in reach), or a value within `mem::REACH_STEP` of one checked or
    /// accessed here. Not one above a stack pointer taken as in reach: units handing on such
    /// values would drift further on from each other's without a check.
    pub fn known_in_reach(&mut self, v: Value) -> bool {
        match self.reach_from(v) {
            Some((d, true)) => d <= 0,
            Some((_, false)) => true,
            None => false,
        }
    }

    /// What the checks where lowering stands found of values: which are in reach, where float
    /// lanes lie, the lanes taken of XMM values, ordered compares. Facts of values hold
    /// wherever this point dominates; facts of the context (MXCSR, the limit of addresses in
    /// reach) are left out, as code on the way there may change it.
    pub fn facts_here(&mut self) -> Known {
        let k = self.known();
        Known {
            in_reach: k.in_reach.clone(),
            floats: k.floats.clone(),
            lanes: k.lanes.clone(),
            shuffles: k.shuffles.clone(),
            compares: k.compares.clone(),
            ..Known::default()
        }
    }

    /// Takes `facts` (`facts_here` where a block that dominates the current one ends) as found
    /// here too.
    pub fn assume(&mut self, facts: &Known) {
        let k = self.known();
        k.in_reach.extend_from_slice(&facts.in_reach);
        k.floats.extend_from_slice(&facts.floats);
        k.lanes.extend_from_slice(&facts.lanes);
        k.shuffles.extend_from_slice(&facts.shuffles);
        k.compares.extend_from_slice(&facts.compares);
    }

    /// On an edge into a block that starts with the stack pointer in its variable: checks it
    /// is in reach (nothing when lowering knows it is), so that the block can take it as in
    /// reach from its start (`stack_in_reach_from_start`) wherever it is entered from.
    pub(super) fn stack_in_reach_on_edge(&mut self) {
        let sp = self.b.use_var(self.regs[STACK_POINTER]);
        // Below a value in reach (pushes, a frame) is in reach; one above is checked, as the
        // block derives more from it unchecked.
        if self.reach_from(sp).is_some_and(|(d, _)| d <= 0) {
            return;
        }
        self.require_in_reach(sp);
    }

    /// At the start of a block whose every way in leaves the stack pointer in its variable and
    /// in reach (`stack_in_reach_on_edge`, a call's return, the unit's entry): the unit may
    /// access the stack from it without a check, as from the one it was entered with.
    pub(super) fn stack_in_reach_from_start(&mut self) {
        let sp = self.b.use_var(self.regs[STACK_POINTER]);
        self.stacks_in_reach.push(sp);
    }

    /// The facts the current block may rely on.
    fn known(&mut self) -> &mut Known {
        let here = self.b.current_block();
        if self.known.block != here {
            self.known = Known {
                block: here,
                ..Known::default()
            };
        }
        &mut self.known
    }

    /// Branches to the cold block `exit` (which leaves the unit) when `leave` is true, and goes
    /// on in a new block, which keeps what the current one knew: every check before dominates
    /// the rest of the stretch.
    fn leave_if(&mut self, leave: Value, exit: cranelift_codegen::ir::Block) {
        self.known();
        let on = self.b.create_block();
        self.b.ins().brif(leave, exit, &[], on, &[]);
        self.b.seal_block(on);
        self.b.switch_to_block(on);
        self.known.block = Some(on);
    }

    /// Where `cond` holds, returns from the unit for the baseline tier to run again from the
    /// last checkpoint, where the context holds the whole state, as after a host fault
    /// (`leave_for_replay`); the code goes on where it does not.
    pub(super) fn replay_if(&mut self, cond: Value) {
        let counted = self.replay_count;
        let replay = self.b.create_block();
        self.leave_if(cond, replay);
        let (kept, on) = (std::mem::take(&mut self.known), self.b.current_block());
        self.b.seal_block(replay);
        self.b.switch_to_block(replay);
        self.b.set_cold_block(replay);
        self.leave_for_replay(counted);
        self.b.switch_to_block(on.expect("the block the code goes on in"));
        self.known = kept;
    }

    /// The host address of a locked access of `size` bytes at guest `addr`: in reach (as
    /// `host_addr` checks), with its displacement added (atomic operations take none), and
    /// naturally aligned. A misaligned one, which not every host can access atomically, leaves
    /// for the baseline tier to run from the last checkpoint (`replay_if`), whose atomics take
    /// a lock for it (`semantics::atomic::update`).
    fn atomic_address(&mut self, addr: Value, size: u8) -> Value {
        let (x, d) = self.host_addr(addr);
        let p = if d == 0 {
            x
        } else {
            self.b.ins().iadd_imm_s(x, i64::from(d))
        };
        if size > 1 {
            let misaligned = self.b.ins().band_imm_u(p, i64::from(size) - 1);
            self.replay_if(misaligned);
        }
        p
    }

    /// The low `size` bytes of `v`, as an integer of that width (an atomic access's operand).
    fn narrowed(&mut self, v: Value, size: u8) -> Value {
        if size < 8 {
            self.b.ins().ireduce(int_type(size), v)
        } else {
            v
        }
    }

    /// `v` zero-extended to 64 bits (an atomic access's result).
    fn widened(&mut self, v: Value) -> Value {
        if self.b.func.dfg.value_type(v) == types::I64 {
            v
        } else {
            self.b.ins().uextend(types::I64, v)
        }
    }

    /// A loop over `count` elements of `size` bytes (`Emitter::repeat_store`, `repeat_copy`):
    /// `body` lowers one, given its offset in bytes, the lowest first. Its accesses need no
    /// check of their own: the caller checked the first address, and the elements lie on its
    /// page. No store before it forwards to a load after it.
    fn element_loop(&mut self, count: Value, size: u8, mut body: impl FnMut(&mut Self, Value)) {
        let (head, each, done) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        let end = self.b.ins().ishl_imm_u(count, i64::from(size.trailing_zeros()));
        let zero = self.b.ins().iconst(types::I64, 0);
        self.b.append_block_param(head, types::I64);
        self.b.ins().jump(head, &[BlockArg::from(zero)]);
        self.b.switch_to_block(head);
        let at = self.b.block_params(head)[0];
        let more = self.b.ins().icmp(IntCC::UnsignedLessThan, at, end);
        self.b.ins().brif(more, each, &[], done, &[]);
        self.seal(&[each, done]);
        self.b.switch_to_block(each);
        body(self, at);
        let next = self.b.ins().iadd_imm_s(at, i64::from(size));
        self.b.ins().jump(head, &[BlockArg::from(next)]);
        self.seal(&[head]);
        self.b.switch_to_block(done);
        self.guest_writes += 1;
    }

    /// After an atomic access at guest `addr`: it lies in the guest space, and no store before
    /// it forwards to a load after it.
    fn atomic_done(&mut self, addr: Value) {
        self.accessed(addr);
        self.guest_writes += 1;
    }

    /// Returns from the unit for the baseline tier to run the guest block at the context's
    /// rip, where the whole state is (`fault::REPLAY`), with `counted` instructions run before
    /// it (as `pending` counts them): the block's are the baseline tier's to count.
    pub(super) fn leave_for_replay(&mut self, counted: i64) {
        let cpu = self.cpu();
        let code = self.b.ins().iconst(types::I64, crate::cpu::fault::REPLAY as i64);
        self.b.ins().store(mf(), code, cpu, off::FAULT);
        let c = self.count_plus(counted);
        let x = self.b.ins().iconst(types::I64, exit::FAULT as i64);
        self.return_counted(x, c, None);
    }

    /// Fills the block an address outside the guest space branches to: a load from the
    /// guard above it, which faults. Called once the unit's code is in place.
    pub fn finish_outside(&mut self) {
        if let Some(b) = self.outside.take() {
            self.b.switch_to_block(b);
            self.b.set_cold_block(b);
            let guard = self.b.ins().iconst(types::I64, GUEST_SPACE as i64);
            // A load that may trap, so it stays.
            self.b.ins().load(types::I64, MemFlagsData::new(), guard, 0);
            self.b.ins().trap(TrapCode::unwrap_user(1));
        }
    }

    /// Reinterprets a vector with another lane type.
    fn as_ty(&mut self, v: Value, ty: Type) -> Value {
        if self.b.func.dfg.value_type(v) == ty {
            return v;
        }
        let mut f = MemFlagsData::new();
        f.set_endianness(Endianness::Little);
        self.b.ins().bitcast(ty, f, v)
    }

    fn bool_to_i64(&mut self, c: Value) -> Value {
        self.b.ins().uextend(types::I64, c)
    }
}

impl Ops for Lower<'_> {
    type V = Value;
    fn imm(&mut self, v: u64) -> Value {
        self.b.ins().iconst(types::I64, v as i64)
    }
    fn bin(&mut self, op: Bin, a: Value, b: Value) -> Value {
        let i = self.b.ins();
        match op {
            Bin::Add => i.iadd(a, b),
            Bin::Sub => i.isub(a, b),
            Bin::And => i.band(a, b),
            Bin::Or => i.bor(a, b),
            Bin::Xor => match negated_condition(&self.b.func.dfg, a, b) {
                Some((cc, x, y)) => {
                    let c = self.b.ins().icmp(cc, x, y);
                    self.bool_to_i64(c)
                }
                None => self.b.ins().bxor(a, b),
            },
            Bin::Shl => i.ishl(a, b),
            Bin::Shr => i.ushr(a, b),
            Bin::Sar => i.sshr(a, b),
            Bin::Mul => i.imul(a, b),
            Bin::UMulHi => i.umulhi(a, b),
            Bin::SMulHi => i.smulhi(a, b),
            Bin::UDiv => i.udiv(a, b),
            Bin::SDiv => i.sdiv(a, b),
            Bin::URem => i.urem(a, b),
            Bin::SRem => i.srem(a, b),
        }
    }
    fn rotate(&mut self, left: bool, size: u8, a: Value, amt: Value) -> Value {
        let rot = |i: cranelift_frontend::FuncInstBuilder<'_, '_>, x, n| if left { i.rotl(x, n) } else { i.rotr(x, n) };
        match size {
            8 => rot(self.b.ins(), a, amt),
            4 => {
                let a32 = self.b.ins().ireduce(types::I32, a);
                let r = rot(self.b.ins(), a32, amt);
                self.b.ins().uextend(types::I64, r)
            }
            _ => crate::cpu::ops::rotate_by_shifts(self, left, size, a, amt),
        }
    }
    fn un(&mut self, op: Un, a: Value) -> Value {
        let i = self.b.ins();
        match op {
            Un::Not => i.bnot(a),
            Un::Popcnt => i.popcnt(a),
            Un::Bswap64 => i.bswap(a),
            Un::Ctz => i.ctz(a),
            Un::Clz => i.clz(a),
        }
    }
    fn cmp(&mut self, c: Cmp, a: Value, b: Value) -> Value {
        let cc = match c {
            Cmp::Eq => IntCC::Equal,
            Cmp::Ne => IntCC::NotEqual,
            Cmp::Ult => IntCC::UnsignedLessThan,
            Cmp::Ule => IntCC::UnsignedLessThanOrEqual,
            Cmp::Slt => IntCC::SignedLessThan,
            Cmp::Sle => IntCC::SignedLessThanOrEqual,
        };
        let r = self.b.ins().icmp(cc, a, b);
        self.bool_to_i64(r)
    }
    fn select(&mut self, c: Value, a: Value, b: Value) -> Value {
        self.b.ins().select(c, a, b)
    }
    fn extend(&mut self, v: Value, size: u8, signed: bool) -> Value {
        let dfg = &self.b.func.dfg;
        if !signed && dfg.value_type(v) == types::I64 && zero_above(dfg, v, u32::from(size) * 8) {
            return v;
        }
        let low = self.b.ins().ireduce(int_type(size.min(4)), v);
        if signed {
            self.b.ins().sextend(types::I64, low)
        } else {
            self.b.ins().uextend(types::I64, low)
        }
    }
}

/// The integer type of `size` bytes (1, 2, 4; 8 and anything else is I64).
fn int_type(size: u8) -> Type {
    match size {
        1 => types::I8,
        2 => types::I16,
        4 => types::I32,
        _ => types::I64,
    }
}

fn lane_ty(w: u8) -> Type {
    match w {
        1 => types::I8X16,
        2 => types::I16X8,
        4 => types::I32X4,
        _ => types::I64X2,
    }
}

impl Emitter for Lower<'_> {
    type X = Value;
    fn get_xmm(&mut self, i: usize) -> Value {
        if !self.state.xvalid[i] {
            let cpu = self.cpu();
            let v = self.b.ins().load(types::I8X16, mf(), cpu, off::xmm(i));
            self.b.def_var(self.xregs[i], v);
            self.state.xvalid[i] = true;
        }
        self.b.use_var(self.xregs[i])
    }
    fn set_xmm(&mut self, i: usize, v: Value) {
        self.check_predicted(Regs { gpr: 0, xmm: 1 << i });
        let v = self.as_ty(v, types::I8X16);
        self.b.def_var(self.xregs[i], v);
        self.state.xvalid[i] = true;
        self.state.xdirty[i] = true;
    }
    fn load_x(&mut self, addr: Value) -> Value {
        let at = split_displacement(&self.b.func.dfg, addr);
        match self.forwarded(at) {
            Some(s) if s.size == 16 => return s.value,
            Some(s) if s.size == 8 && self.b.func.dfg.value_type(s.value) == types::I64 => {
                // The low half as stored; only the high half comes from memory.
                let high = self.b.ins().iadd_imm_s(addr, 8);
                let high = self.load(high, 8);
                return self.x_from_halves(s.value, high);
            }
            _ => {}
        }
        let (p, d) = self.checked(at);
        let v = self.b.ins().load(types::I8X16, guest_mf(), p, d);
        self.accessed(addr);
        v
    }
    fn store_x(&mut self, addr: Value, v: Value) {
        let (p, d) = self.host_addr(addr);
        let v = self.as_ty(v, types::I8X16);
        self.b.ins().store(guest_mf(), v, p, d);
        self.accessed(addr);
        self.stored((p, d), 16, v);
    }
    fn x_from_halves(&mut self, lo: Value, hi: Value) -> Value {
        // scalar_to_vector zeroes the other lane (a scalar load: movq, movsd).
        let v = self.b.ins().scalar_to_vector(types::I64X2, lo);
        let v = if iconst_value(&self.b.func.dfg, hi) == Some(0) {
            v
        } else {
            self.b.ins().insertlane(v, hi, 1)
        };
        self.as_ty(v, types::I8X16)
    }
    fn x_half(&mut self, v: Value, hi: bool) -> Value {
        if let Some(x) = i64_lane_source(&self.b.func.dfg, v, hi as u8) {
            return x;
        }
        let v = self.as_ty(v, types::I64X2);
        self.b.ins().extractlane(v, hi as u8)
    }
    fn vop(&mut self, op: VOp, a: Value, b: Value) -> Value {
        let w = match op {
            VOp::And | VOp::Or | VOp::Xor | VOp::AndNot => 1,
            VOp::Add(w)
            | VOp::Sub(w)
            | VOp::CmpEq(w)
            | VOp::CmpGt(w)
            | VOp::MinU(w)
            | VOp::MaxU(w)
            | VOp::MinS(w)
            | VOp::MaxS(w)
            | VOp::AddSatU(w)
            | VOp::SubSatU(w)
            | VOp::AddSatS(w)
            | VOp::SubSatS(w)
            | VOp::AvgU(w)
            | VOp::MulLo(w)
            | VOp::PackUs(w)
            | VOp::PackSs(w) => w,
        };
        let ty = lane_ty(w);
        let a = self.as_ty(a, ty);
        let b = self.as_ty(b, ty);
        let i = self.b.ins();
        let r = match op {
            VOp::And => i.band(a, b),
            VOp::Or => i.bor(a, b),
            VOp::Xor => i.bxor(a, b),
            VOp::AndNot => i.band_not(b, a),
            VOp::Add(_) => i.iadd(a, b),
            VOp::Sub(_) => i.isub(a, b),
            VOp::CmpEq(_) => i.icmp(IntCC::Equal, a, b),
            VOp::CmpGt(_) => i.icmp(IntCC::SignedGreaterThan, a, b),
            VOp::MinU(_) => i.umin(a, b),
            VOp::MaxU(_) => i.umax(a, b),
            VOp::MinS(_) => i.smin(a, b),
            VOp::MaxS(_) => i.smax(a, b),
            VOp::AddSatU(_) => i.uadd_sat(a, b),
            VOp::SubSatU(_) => i.usub_sat(a, b),
            VOp::AddSatS(_) => i.sadd_sat(a, b),
            VOp::SubSatS(_) => i.ssub_sat(a, b),
            VOp::AvgU(_) => i.avg_round(a, b),
            VOp::MulLo(_) => i.imul(a, b),
            VOp::PackUs(_) => i.unarrow(a, b),
            VOp::PackSs(_) => i.snarrow(a, b),
        };
        self.as_ty(r, types::I8X16)
    }
    fn vshift(&mut self, op: VShift, a: Value, count: u8) -> Value {
        let (VShift::Shl(w) | VShift::Shr(w) | VShift::Sar(w)) = op;
        let a = self.as_ty(a, lane_ty(w));
        let c = self.b.ins().iconst(types::I32, count as i64);
        let i = self.b.ins();
        let r = match op {
            VShift::Shl(_) => i.ishl(a, c),
            VShift::Shr(_) => i.ushr(a, c),
            VShift::Sar(_) => i.sshr(a, c),
        };
        self.as_ty(r, types::I8X16)
    }
    fn vshuffle(&mut self, a: Value, b: Value, idx: [u8; 16]) -> Value {
        let a = self.as_ty(a, types::I8X16);
        let b = self.as_ty(b, types::I8X16);
        // One source read twice: every index into the first.
        let idx = if a == b { idx.map(|i| i % 16) } else { idx };
        if idx == std::array::from_fn(|i| i as u8) {
            return a;
        }
        let made = self.known().shuffles.iter().find(|&&(s, i, _)| s == [a, b] && i == idx);
        if let Some(&(.., r)) = made {
            return r;
        }
        let mask = self.b.func.dfg.immediates.push(ConstantData::from(idx.to_vec()));
        let r = self.b.ins().shuffle(a, b, mask);
        self.known().shuffles.push(([a, b], idx, r));
        self.shuffled([a, b], idx, r);
        r
    }
    fn vswizzle(&mut self, a: Value, idx: Value) -> Value {
        let a = self.as_ty(a, types::I8X16);
        let idx = self.as_ty(idx, types::I8X16);
        // Cranelift's swizzle zeroes where an index is 16 or more: keep the top bit (zero) and
        // the low four (which byte).
        let keep = self.b.ins().iconst(types::I8, 0x8f);
        let keep = self.b.ins().splat(types::I8X16, keep);
        let idx = self.b.ins().band(idx, keep);
        self.b.ins().swizzle(a, idx)
    }
    fn vmovmsk(&mut self, a: Value, lane: u8) -> Value {
        let a = self.as_ty(a, lane_ty(lane));
        self.b.ins().vhigh_bits(types::I64, a)
    }
    fn get_reg(&mut self, r: usize) -> Value {
        if !self.state.valid[r] {
            let cpu = self.cpu();
            let v = self.b.ins().load(types::I64, mf(), cpu, off::gpr(r));
            self.b.def_var(self.regs[r], v);
            self.state.valid[r] = true;
        }
        self.b.use_var(self.regs[r])
    }
    fn set_reg(&mut self, r: usize, v: Value) {
        self.check_predicted(Regs { gpr: 1 << r, xmm: 0 });
        self.b.def_var(self.regs[r], v);
        self.state.valid[r] = true;
        self.state.dirty[r] = true;
    }
    fn load(&mut self, addr: Value, size: u8) -> Value {
        let at = split_displacement(&self.b.func.dfg, addr);
        // A vector store's value is no word; a narrower store leaves bytes to memory.
        if let Some(s) = self.forwarded(at) {
            if s.size >= size && self.b.func.dfg.value_type(s.value) == types::I64 {
                return crate::cpu::flags::zext(self, s.value, size);
            }
        }
        let (p, d) = self.checked(at);
        let i = self.b.ins();
        let v = match size {
            1 => i.uload8(types::I64, guest_mf(), p, d),
            2 => i.uload16(types::I64, guest_mf(), p, d),
            4 => i.uload32(guest_mf(), p, d),
            _ => i.load(types::I64, guest_mf(), p, d),
        };
        self.accessed(addr);
        v
    }
    fn store(&mut self, addr: Value, v: Value, size: u8) {
        let (p, d) = self.host_addr(addr);
        let bits = stored_bits(&self.b.func.dfg, v, u32::from(size) * 8);
        let whole = self.b.func.dfg.value_type(bits).bits() == u32::from(size) * 8;
        let i = self.b.ins();
        match size {
            _ if whole => i.store(guest_mf(), bits, p, d),
            1 => i.istore8(guest_mf(), bits, p, d),
            2 => i.istore16(guest_mf(), bits, p, d),
            4 => i.istore32(guest_mf(), bits, p, d),
            _ => i.store(guest_mf(), bits, p, d),
        };
        self.accessed(addr);
        self.stored((p, d), size, v);
    }
    fn atomic_rmw(&mut self, op: Rmw, addr: Value, v: Value, size: u8) -> Value {
        let p = self.atomic_address(addr, size);
        let v = self.narrowed(v, size);
        let op = match op {
            Rmw::Swap => AtomicRmwOp::Xchg,
            Rmw::Add => AtomicRmwOp::Add,
            Rmw::And => AtomicRmwOp::And,
            Rmw::Or => AtomicRmwOp::Or,
            Rmw::Xor => AtomicRmwOp::Xor,
        };
        let ty = self.b.func.dfg.value_type(v);
        let old = self.b.ins().atomic_rmw(ty, guest_mf(), op, p, v);
        self.atomic_done(addr);
        self.widened(old)
    }
    fn atomic_cas(&mut self, addr: Value, expected: Value, new: Value, size: u8) -> Value {
        let p = self.atomic_address(addr, size);
        let (expected, new) = (self.narrowed(expected, size), self.narrowed(new, size));
        let old = self.b.ins().atomic_cas(guest_mf(), p, expected, new);
        self.atomic_done(addr);
        self.widened(old)
    }
    fn repeat_store(&mut self, dst: Value, v: Value, count: Value, size: u8) {
        let (p, d) = self.host_addr(dst);
        let v = self.narrowed(v, size);
        self.element_loop(count, size, |l, at| {
            let a = l.b.ins().iadd(p, at);
            l.b.ins().store(guest_mf(), v, a, d);
        });
    }
    fn repeat_copy(&mut self, dst: Value, src: Value, count: Value, size: u8) {
        let (ps, ds) = self.host_addr(src);
        let (pd, dd) = self.host_addr(dst);
        let ty = int_type(size);
        self.element_loop(count, size, |l, at| {
            let a = l.b.ins().iadd(ps, at);
            let v = l.b.ins().load(ty, guest_mf(), a, ds);
            let a = l.b.ins().iadd(pd, at);
            l.b.ins().store(guest_mf(), v, a, dd);
        });
    }
    fn direction(&mut self) -> Value {
        let cpu = self.cpu();
        self.b.ins().load(types::I64, mf(), cpu, off::DF)
    }
    fn seg_base(&mut self, fs: bool) -> Value {
        let o = if fs { off::FS_BASE } else { off::GS_BASE };
        let cpu = self.cpu();
        self.b.ins().load(types::I64, mf(), cpu, o)
    }
    fn set_flags(&mut self, f: Flags<Value>) {
        if self.flags_live {
            self.state.flags = Some(f);
            self.state.flags_dirty = true;
        }
    }
    fn flags_needed(&self) -> bool {
        self.flags_live
    }
    fn flags_read_later(&self) -> u64 {
        self.flags_read_later
    }
    fn cond(&mut self, cc: Cc) -> Value {
        if let Some(f) = self.state.flags {
            if let Some(c) = self.float_cond(&f, cc) {
                return c;
            }
            return flags::cond(self, &f, cc);
        }
        // The context's record: ZF and SF from its kind and result, the rest by the helper.
        let in_context = |l: &mut Self| {
            let cpu = l.cpu();
            let kind = l.b.ins().load(types::I64, mf(), cpu, off::FLAGS_KIND);
            (kind, l.b.ins().load(types::I64, mf(), cpu, off::FLAGS_RES))
        };
        if let Some(v) = flags::result_cond(self, cc, in_context) {
            return v;
        }
        let c = self.imm(cc as u64);
        let z = self.imm(0);
        self.call_helper(H_COND, c, z)
    }
    fn rflags(&mut self) -> Value {
        match self.state.flags {
            Some(f) => flags::materialize(self, &f),
            None => {
                let z = self.imm(0);
                self.call_helper(H_RFLAGS, z, z)
            }
        }
    }
    fn code_addr(&mut self, abs: u64) -> Value {
        if self.placement == Placement::Fixed {
            return self.b.ins().iconst(types::I64, abs as i64);
        }
        let delta = abs.wrapping_sub(self.head) as i64;
        if delta == 0 {
            return self.entry_rip;
        }
        let d = self.b.ins().iconst(types::I64, delta);
        self.b.ins().iadd(self.entry_rip, d)
    }
    fn jump(&mut self, target: Value) {
        self.end = Some(Terminal::Jump(target));
    }
    fn branch(&mut self, cond: Value, taken: u64, fall: u64) {
        self.end = Some(Terminal::Branch(cond, taken, fall));
    }
    fn syscall(&mut self, next: u64) {
        self.end = Some(Terminal::Syscall(next));
    }
    fn slow_unless(&mut self, ok: Value, ins: &Instruction) -> bool {
        let (slow, common, join) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().brif(ok, common, &[], slow, &[]);
        self.seal(&[slow, common]);
        self.b.switch_to_block(slow);
        self.b.set_cold_block(slow);
        // The registers the helper wrote come back into their variables; the cached state is
        // otherwise the same on both paths.
        self.slow_path(ins);
        let written = Regs::written_by(ins);
        for r in (0..16).filter(|&r| written.gprs()[r]) {
            let cpu = self.cpu();
            let v = self.b.ins().load(types::I64, mf(), cpu, off::gpr(r));
            self.b.def_var(self.regs[r], v);
        }
        self.b.ins().jump(join, &[]);
        self.b.switch_to_block(common);
        self.join = Some(join);
        true
    }
    fn slow(&mut self, ins: &Instruction) {
        // A checkpoint before (a memory fault in the helper runs the instruction again) and
        // after it (the helper left all of its effects in the context).
        self.checkpoint(ins.ip());
        self.run_slow_helper(ins);
        self.invalidate();
        self.replay_count = self.pending - self.insns_after as i64;
    }
}

/// Whether `ins` may read guest memory.
pub fn reads_memory(ins: &Instruction) -> bool {
    use iced_x86::{InstructionInfoFactory, OpAccess};
    if ins.stack_pointer_increment() > 0 || ins.is_string_instruction() {
        return true;
    }
    let mut info = InstructionInfoFactory::new();
    info.info(ins).used_memory().iter().any(|m| {
        !matches!(
            m.access(),
            OpAccess::Write | OpAccess::CondWrite | OpAccess::NoMemAccess
        )
    })
}

/// Whether every guest memory write of `ins` goes to its thread's stack: a push or a call, or
/// a store addressed from rsp.
pub fn writes_only_the_stack(ins: &Instruction) -> bool {
    let explicit = (0..ins.op_count()).any(|i| ins.op_kind(i) == iced_x86::OpKind::Memory);
    if ins.is_string_instruction() {
        false
    } else if explicit {
        ins.memory_base() == iced_x86::Register::RSP
    } else {
        ins.stack_pointer_increment() < 0
    }
}

/// Whether `ins` may write guest memory: a checkpoint follows it, since running it twice
/// could differ from running it once. Instructions that only read memory are simply run
/// again from the last checkpoint when they (or a later one) fault.
pub fn writes_memory(ins: &Instruction) -> bool {
    use iced_x86::{InstructionInfoFactory, OpAccess};
    if ins.stack_pointer_increment() < 0 || ins.is_string_instruction() {
        return true;
    }
    let mut info = InstructionInfoFactory::new();
    info.info(ins)
        .used_memory()
        .iter()
        .any(|m| !matches!(m.access(), OpAccess::Read | OpAccess::NoMemAccess))
}

/// The signature of the helpers: (context, two arguments) -> result.
fn helper_signature(isa: &dyn TargetIsa) -> Signature {
    let mut hs = Signature::new(isa.default_call_conv());
    for _ in 0..3 {
        hs.params.push(AbiParam::new(types::I64));
    }
    hs.returns.push(AbiParam::new(types::I64));
    hs
}

impl Lower<'_> {
    /// On a path that leaves an instruction's common case: stores the cached state (still
    /// cached after), runs `ins` through the slow helper from the context (a checkpoint at
    /// `ins`: it may fault, and then the unit returns), after which the context holds the state
    /// after the instruction (a checkpoint at the next one).
    pub(super) fn slow_path(&mut self, ins: &Instruction) {
        self.store_dirty();
        self.set_rip(ins.ip());
        self.run_slow_helper(ins);
    }

    /// Calls the slow helper on `ins`, whose address the context's rip stands for, with the
    /// rest of the state: a fault (rip and the fault code left in the context) returns from
    /// the unit at once; otherwise the context's rip becomes the next instruction's.
    fn run_slow_helper(&mut self, ins: &Instruction) {
        let rip = self.code_addr(ins.ip());
        let record = self.slow_record(ins);
        let code = self.call_helper(H_SLOW, rip, record);
        let (fault, cont) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(code, fault, &[], cont, &[]);
        self.seal(&[fault, cont]);
        self.b.switch_to_block(fault);
        self.return_with(code, None);
        self.b.switch_to_block(cont);
        self.set_rip(ins.next_ip());
    }

    /// What the slow helper gets to know `ins` by: a string instruction's compact word
    /// (`semantics::slow::strings::Compact`), else the address of its record
    /// (`semantics::slow::record`), stored in the unit's frame, or 0 (the helper decodes) if it
    /// has none.
    fn slow_record(&mut self, ins: &Instruction) -> Value {
        use semantics::slow::{record, strings};
        if let Some(op) = strings::Compact::of(ins) {
            return self.imm(op.word());
        }
        let Some(words) = record::encode(ins) else {
            return self.imm(0);
        };
        let slot = *self.record_slot.get_or_insert_with(|| {
            let size = (record::WORDS * 8) as u32;
            let data = StackSlotData::new(StackSlotKind::ExplicitSlot, size, 3);
            self.b.create_sized_stack_slot(data)
        });
        for (i, w) in words.into_iter().enumerate() {
            let v = self.imm(w);
            self.b.ins().stack_store(types::I64, v, slot, (i * 8) as i32);
        }
        self.b.ins().stack_addr(types::I64, slot, 0)
    }

    /// Lowers one instruction of the block; `read_later`: the flags (iced's `RflagsBits`) that
    /// may be read after it before they are written again (its own are live where it writes one
    /// of them, as `decode::flag_liveness_from` has it).
    pub fn lower_insn(&mut self, ins: &Instruction, read_later: u32, route: u8) {
        // Decided only where guards wait: it asks iced what the instruction writes.
        if self.guards_deferred() && !float::runs_ahead_of_guards(ins, route) {
            self.settle_guards();
        }
        self.flags_live = ins.rflags_modified() & crate::decode::ARITH_FLAGS & read_later != 0;
        self.flags_read_later = crate::decode::rflags_bits(read_later);
        if route & semantics::route::ALIGN16 != 0 {
            self.gp_if_misaligned(ins);
        }
        if route & !semantics::route::ALIGN16 == semantics::route::SLOW && self.float_fast(ins) {
            return;
        }
        semantics::exec_routed(self, ins, route);
        if let Some(join) = self.join.take() {
            self.b.ins().jump(join, &[]);
            self.b.switch_to_block(join);
            self.seal(&[join]);
        }
    }

    /// A misaligned operand raises #GP before the instruction changes anything.
    fn gp_if_misaligned(&mut self, ins: &Instruction) {
        let v = semantics::misalignment(self, ins);
        let gp = self.b.create_block();
        let cont = self.b.create_block();
        self.b.ins().brif(v, gp, &[], cont, &[]);
        self.seal(&[gp, cont]);
        self.b.switch_to_block(gp);
        self.b.set_cold_block(gp);
        self.store_dirty();
        let rip = self.code_addr(ins.ip());
        let cpu = self.cpu();
        let code = self.b.ins().iconst(types::I64, crate::cpu::fault::GP as i64);
        self.b.ins().store(mf(), code, cpu, off::FAULT);
        self.b.ins().store(mf(), rip, cpu, off::FAULT_ADDR);
        self.b.ins().store(mf(), rip, cpu, off::RIP);
        let x = self.b.ins().iconst(types::I64, exit::FAULT as i64);
        self.return_with(x, None);
        self.b.switch_to_block(cont);
    }
}
