//! `Emitter` over Cranelift: guest registers cached in SSA values within the unit, lazy flags
//! tracked at translation time, memory accessed as `base + (addr & mask)`, everything else
//! through the helper table reached from the context.

use super::{H_COND, H_RFLAGS, H_SLOW};
use crate::cpu::flags::{self, Cc, Flags};
use crate::cpu::ops::{Bin, Cmp, Ops, Un};
use crate::cpu::{exit, off};
use crate::decode::Block;
use crate::mem::GUEST_SPACE;
use crate::semantics;
use crate::semantics::emitter::{Emitter, VOp, VShift};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, ConstantData, Endianness, InstBuilder, MemFlagsData, SigRef, Signature, Type, Value,
};
use cranelift_codegen::isa::TargetIsa;
use cranelift_frontend::FunctionBuilder;
use iced_x86::Instruction;

struct Lower<'a> {
    b: FunctionBuilder<'a>,
    cpu: Value,
    base: Option<Value>,
    regs: [Option<Value>; 16],
    dirty: [bool; 16],
    /// XMM registers as I8X16 values.
    xregs: [Option<Value>; 16],
    xdirty: [bool; 16],
    /// Flags computed in this unit and not yet stored (`None`: the context holds them).
    flags: Option<Flags<Value>>,
    flags_dirty: bool,
    /// Liveness of the current instruction's flags.
    flags_live: bool,
    helper_sig: SigRef,
    /// The unit's guest address at run time (its entry rip) and at translation time.
    entry_rip: Value,
    block_start: u64,
    /// Next rip and exit code once a block-ending instruction ran.
    end: Option<(Value, u64)>,
}

/// SSE floating point lowered to host instructions where they cannot differ (`float.rs`).
#[path = "float.rs"]
mod float;

fn mf() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Guest memory may be unaligned and may fault like the guest's own access.
fn guest_mf() -> MemFlagsData {
    MemFlagsData::new()
}

impl Lower<'_> {
    fn flush(&mut self) {
        for r in 0..16 {
            if self.dirty[r] {
                let v = self.regs[r].expect("dirty register has a value");
                self.b.ins().store(mf(), v, self.cpu, off::gpr(r));
                self.dirty[r] = false;
            }
        }
        for r in 0..16 {
            if self.xdirty[r] {
                let v = self.xregs[r].expect("dirty register has a value");
                self.b.ins().store(mf(), v, self.cpu, off::xmm(r));
                self.xdirty[r] = false;
            }
        }
        if self.flags_dirty {
            if let Some(f) = self.flags {
                let k = self.b.ins().iconst(types::I64, f.kind as i64);
                let s = self.b.ins().iconst(types::I64, f.size as i64);
                let cpu = self.cpu;
                self.b.ins().store(mf(), k, cpu, off::FLAGS_KIND);
                self.b.ins().store(mf(), s, cpu, off::FLAGS_SIZE);
                self.b.ins().store(mf(), f.res, cpu, off::FLAGS_RES);
                self.b.ins().store(mf(), f.a, cpu, off::FLAGS_A);
                self.b.ins().store(mf(), f.b, cpu, off::FLAGS_B);
                self.b.ins().store(mf(), f.aux, cpu, off::FLAGS_AUX);
            }
            self.flags_dirty = false;
        }
    }

    /// Stores every dirty register and the flags to the context without marking them clean:
    /// for a path that calls a helper while the other path keeps the cached values.
    fn store_dirty(&mut self) {
        let (dirty, xdirty, fdirty) = (self.dirty, self.xdirty, self.flags_dirty);
        self.flush();
        self.dirty = dirty;
        self.xdirty = xdirty;
        self.flags_dirty = fdirty;
    }

    /// Forget cached state after a helper that may change any of it.
    fn invalidate(&mut self) {
        self.regs = [None; 16];
        self.xregs = [None; 16];
        self.flags = None;
    }

    fn call_helper(&mut self, h: i64, a0: Value, a1: Value) -> Value {
        let table = self.b.ins().load(types::I64, mf(), self.cpu, off::HELPERS);
        let f = self.b.ins().load(types::I64, mf(), table, (h * 8) as i32);
        let call = self.b.ins().call_indirect(self.helper_sig, f, &[self.cpu, a0, a1]);
        self.b.inst_results(call)[0]
    }

    fn host_addr(&mut self, addr: Value) -> Value {
        let base = match self.base {
            Some(b) => b,
            None => {
                let b = self.b.ins().load(types::I64, mf(), self.cpu, off::MEM_BASE);
                self.base = Some(b);
                b
            }
        };
        // Clamped, not masked: an address beyond the guest space lands in the guard after it
        // and faults there (the fault path recovers the guest's address). A compare and a
        // conditional move: measured no slower than the mask it replaced, where a branch to a
        // cold block cost about 15% more compile time for no gain at run time.
        let top = self.b.ins().iconst(types::I64, GUEST_SPACE as i64);
        let m = self.b.ins().umin(addr, top);
        self.b.ins().iadd(base, m)
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
            Bin::Xor => i.bxor(a, b),
            Bin::Shl => i.ishl(a, b),
            Bin::Shr => i.ushr(a, b),
            Bin::Sar => i.sshr(a, b),
            Bin::Mul => i.imul(a, b),
            Bin::UMulHi => i.umulhi(a, b),
            Bin::SMulHi => i.smulhi(a, b),
        }
    }
    fn un(&mut self, op: Un, a: Value) -> Value {
        let i = self.b.ins();
        match op {
            Un::Not => i.bnot(a),
            Un::Popcnt => i.popcnt(a),
            Un::Bswap64 => i.bswap(a),
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
        if let Some(v) = self.xregs[i] {
            return v;
        }
        let v = self.b.ins().load(types::I8X16, mf(), self.cpu, off::xmm(i));
        self.xregs[i] = Some(v);
        v
    }
    fn set_xmm(&mut self, i: usize, v: Value) {
        let v = self.as_ty(v, types::I8X16);
        self.xregs[i] = Some(v);
        self.xdirty[i] = true;
    }
    fn load_x(&mut self, addr: Value) -> Value {
        let p = self.host_addr(addr);
        self.b.ins().load(types::I8X16, guest_mf(), p, 0)
    }
    fn store_x(&mut self, addr: Value, v: Value) {
        let p = self.host_addr(addr);
        let v = self.as_ty(v, types::I8X16);
        self.b.ins().store(guest_mf(), v, p, 0);
    }
    fn x_from_halves(&mut self, lo: Value, hi: Value) -> Value {
        let v = self.b.ins().scalar_to_vector(types::I64X2, lo);
        let v = self.b.ins().insertlane(v, hi, 1);
        self.as_ty(v, types::I8X16)
    }
    fn x_half(&mut self, v: Value, hi: bool) -> Value {
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
        let mask = self.b.func.dfg.immediates.push(ConstantData::from(idx.to_vec()));
        self.b.ins().shuffle(a, b, mask)
    }
    fn vmovmsk(&mut self, a: Value, lane: u8) -> Value {
        let a = self.as_ty(a, lane_ty(lane));
        self.b.ins().vhigh_bits(types::I64, a)
    }
    fn get_reg(&mut self, r: usize) -> Value {
        if let Some(v) = self.regs[r] {
            return v;
        }
        let v = self.b.ins().load(types::I64, mf(), self.cpu, off::gpr(r));
        self.regs[r] = Some(v);
        v
    }
    fn set_reg(&mut self, r: usize, v: Value) {
        self.regs[r] = Some(v);
        self.dirty[r] = true;
    }
    fn load(&mut self, addr: Value, size: u8) -> Value {
        let p = self.host_addr(addr);
        let i = self.b.ins();
        match size {
            1 => i.uload8(types::I64, guest_mf(), p, 0),
            2 => i.uload16(types::I64, guest_mf(), p, 0),
            4 => i.uload32(guest_mf(), p, 0),
            _ => i.load(types::I64, guest_mf(), p, 0),
        }
    }
    fn store(&mut self, addr: Value, v: Value, size: u8) {
        let p = self.host_addr(addr);
        let i = self.b.ins();
        match size {
            1 => i.istore8(guest_mf(), v, p, 0),
            2 => i.istore16(guest_mf(), v, p, 0),
            4 => i.istore32(guest_mf(), v, p, 0),
            _ => i.store(guest_mf(), v, p, 0),
        };
    }
    fn seg_base(&mut self, fs: bool) -> Value {
        let o = if fs { off::FS_BASE } else { off::GS_BASE };
        self.b.ins().load(types::I64, mf(), self.cpu, o)
    }
    fn set_flags(&mut self, f: Flags<Value>) {
        if self.flags_live {
            self.flags = Some(f);
            self.flags_dirty = true;
        }
    }
    fn flags_needed(&self) -> bool {
        self.flags_live
    }
    fn cond(&mut self, cc: Cc) -> Value {
        match self.flags {
            Some(f) => flags::cond(self, &f, cc),
            None => {
                let c = self.imm(cc as u64);
                let z = self.imm(0);
                self.call_helper(H_COND, c, z)
            }
        }
    }
    fn rflags(&mut self) -> Value {
        match self.flags {
            Some(f) => flags::materialize(self, &f),
            None => {
                let z = self.imm(0);
                self.call_helper(H_RFLAGS, z, z)
            }
        }
    }
    fn code_addr(&mut self, abs: u64) -> Value {
        let delta = abs.wrapping_sub(self.block_start) as i64;
        if delta == 0 {
            return self.entry_rip;
        }
        let d = self.b.ins().iconst(types::I64, delta);
        self.b.ins().iadd(self.entry_rip, d)
    }
    fn jump(&mut self, target: Value) {
        self.end = Some((target, exit::NEXT));
    }
    fn syscall(&mut self, next: u64) {
        let n = self.code_addr(next);
        self.end = Some((n, exit::SYSCALL));
    }
    fn slow(&mut self, ins: &Instruction) {
        self.flush();
        let rip = self.code_addr(ins.ip());
        let z = self.imm(0);
        let r = self.call_helper(H_SLOW, rip, z);
        self.invalidate();
        // A fault leaves rip and the fault code in the context: return at once.
        let fault = self.b.create_block();
        let cont = self.b.create_block();
        self.b.ins().brif(r, fault, &[], cont, &[]);
        self.b.switch_to_block(fault);
        self.b.ins().return_(&[r]);
        self.b.switch_to_block(cont);
    }
}

/// Whether `ins` may access guest memory (and so fault on it).
fn touches_memory(ins: &Instruction) -> bool {
    use iced_x86::{Mnemonic, OpKind};
    if ins.stack_pointer_increment() != 0 || ins.is_string_instruction() {
        return true;
    }
    if matches!(ins.mnemonic(), Mnemonic::Lea | Mnemonic::Nop) {
        return false;
    }
    (0..ins.op_count()).any(|i| {
        let k = ins.op_kind(i);
        !(semantics::operand::is_imm(k)
            || matches!(
                k,
                OpKind::Register | OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
            ))
    }) || ins.op_count() == 0 && ins.mnemonic() == Mnemonic::Xlatb
}

/// The unit's entry: returns at once when a signal waits (rip already holds this unit's
/// address), else adds the unit's instruction count to the context. Returns the entry rip.
fn unit_prologue(b: &mut FunctionBuilder<'_>, cpu: Value, insns: usize) -> Value {
    let iw = b.ins().load(types::I64, mf(), cpu, off::INTERRUPT);
    let flag = b.ins().load(types::I64, mf(), iw, 0);
    let leave = b.create_block();
    let body = b.create_block();
    b.ins().brif(flag, leave, &[], body, &[]);
    b.switch_to_block(leave);
    let z = b.ins().iconst(types::I64, exit::NEXT as i64);
    b.ins().return_(&[z]);
    b.switch_to_block(body);
    let entry_rip = b.ins().load(types::I64, mf(), cpu, off::RIP);
    let count = b.ins().load(types::I64, mf(), cpu, off::INSNS_COMPILED);
    let count = b.ins().iadd_imm_u(count, insns as i64);
    b.ins().store(mf(), count, cpu, off::INSNS_COMPILED);
    entry_rip
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
    /// Lowers one instruction of the block (`live`: whether its flags are read later).
    fn lower_insn(&mut self, ins: &Instruction, live: bool, route: u8) {
        self.flags_live = live;
        if touches_memory(ins) {
            // A host fault in this instruction resumes the guest at its start: the context
            // must hold every register as it is here, and say which instruction this is.
            self.flush();
            let o = self.b.ins().iconst(types::I64, (ins.ip() - self.block_start) as i64);
            let cpu = self.cpu;
            self.b.ins().store(mf(), o, cpu, off::INSN_OFF);
        }
        if route & semantics::route::ALIGN16 != 0 {
            self.gp_if_misaligned(ins);
        }
        if route & !semantics::route::ALIGN16 == semantics::route::SLOW && self.float_fast(ins) {
            return;
        }
        semantics::exec_routed(self, ins, route);
    }

    /// A misaligned operand raises #GP before the instruction changes anything (the context
    /// was written back before: the instruction touches memory).
    fn gp_if_misaligned(&mut self, ins: &Instruction) {
        let v = semantics::misalignment(self, ins);
        let gp = self.b.create_block();
        let cont = self.b.create_block();
        self.b.ins().brif(v, gp, &[], cont, &[]);
        self.b.switch_to_block(gp);
        self.b.set_cold_block(gp);
        let rip = self.code_addr(ins.ip());
        let cpu = self.cpu;
        let code = self.b.ins().iconst(types::I64, crate::cpu::fault::GP as i64);
        self.b.ins().store(mf(), code, cpu, off::FAULT);
        self.b.ins().store(mf(), rip, cpu, off::FAULT_ADDR);
        self.b.ins().store(mf(), rip, cpu, off::RIP);
        let x = self.b.ins().iconst(types::I64, exit::FAULT as i64);
        self.b.ins().return_(&[x]);
        self.b.switch_to_block(cont);
    }

    /// Leaves the unit for `next` with exit `code`, writing back the cached state first.
    fn exit_unit(&mut self, next: Value, code: u64, unit_sig: SigRef) {
        self.flush();
        let cpu = self.cpu;
        self.b.ins().store(mf(), next, cpu, off::RIP);
        if code == exit::NEXT {
            self.chain(next, unit_sig);
        }
        let c = self.b.ins().iconst(types::I64, code as i64);
        self.b.ins().return_(&[c]);
    }

    /// Chain: if the table slot of the next rip holds its unit, jump straight into it.
    fn chain(&mut self, next: Value, unit_sig: SigRef) {
        let cpu = self.cpu;
        let table = self.b.ins().load(types::I64, mf(), cpu, off::CHAIN_TABLE);
        let sh = self.b.ins().ushr_imm_u(next, 16);
        let h = self.b.ins().bxor(next, sh);
        let h = self.b.ins().band_imm_u(h, (crate::cpu::CHAIN_ENTRIES - 1) as i64);
        let o = self.b.ins().ishl_imm_u(h, 4);
        let slot = self.b.ins().iadd(table, o);
        let srip = self.b.ins().load(types::I64, mf(), slot, 0);
        let hit = self.b.ins().icmp(IntCC::Equal, srip, next);
        let chain = self.b.create_block();
        let back = self.b.create_block();
        self.b.ins().brif(hit, chain, &[], back, &[]);
        self.b.switch_to_block(chain);
        let f = self.b.ins().load(types::I64, mf(), slot, 8);
        self.b.ins().return_call_indirect(unit_sig, f, &[cpu]);
        self.b.switch_to_block(back);
    }
}

pub fn lower_block(mut b: FunctionBuilder<'_>, isa: &dyn TargetIsa, block: &Block) {
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let cpu = b.block_params(entry)[0];
    let helper_sig = b.import_signature(helper_signature(isa));
    let unit_sig = b.import_signature(super::unit_signature());
    let entry_rip = unit_prologue(&mut b, cpu, block.insns.len());
    let mut l = Lower {
        b,
        cpu,
        base: None,
        regs: [None; 16],
        dirty: [false; 16],
        xregs: [None; 16],
        xdirty: [false; 16],
        flags: None,
        flags_dirty: false,
        flags_live: true,
        helper_sig,
        entry_rip,
        block_start: block.start,
        end: None,
    };
    for ((ins, &live), &route) in block.insns.iter().zip(&block.flags_live).zip(&block.routes) {
        l.lower_insn(ins, live, route);
        if l.end.is_some() {
            break;
        }
    }
    let (next, code) = match l.end {
        Some(e) => e,
        None => (l.code_addr(block.start + block.len), exit::NEXT),
    };
    l.exit_unit(next, code, unit_sig);
    l.b.seal_all_blocks();
    let cfg = isa.frontend_config();
    l.b.finalize(cfg);
}
