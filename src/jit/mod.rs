//! The optimising tier: x86 semantics lowered to Cranelift IR through `Emitter`, compiled to
//! relocation-free host code (units for a pack keep their links, which the pack's writer fills
//! in), and placed in W^X executable memory.

mod host;
mod lower;
mod observed;
pub use lower::writes_memory;
mod region;
mod strides;
mod values;

use crate::cpu::Cpu;
use crate::decode::{Block, Region};
use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, BlockArg, BlockCall, ExceptionTableData, ExternalName, Function, InstBuilder, MemFlagsData,
    Signature, Type, UserFuncName, Value,
};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_codegen::{FinalizedMachReloc, FinalizedRelocTarget};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use std::sync::Arc;

/// Where the guest code a unit is compiled from lies in the processes that run it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Placement {
    /// Anywhere: the unit computes code addresses from its entry rip (a module loaded with
    /// relocation, and code compiled for one run).
    Relocatable,
    /// At the addresses it was decoded at, in every process (a module loaded where its file
    /// says, an `ET_EXEC` program): code addresses are constants, and no register holds the
    /// entry rip for them across the unit (warm `cc1`, which is such a program, spilled it and
    /// reloaded it at most exits and calls).
    Fixed,
}

/// Bumped whenever lowering changes what compiled code does.
pub const TRANSLATION_VERSION: u32 = 45;

/// Signature of a helper: (context, arg0, arg1) -> result.
pub type Helper = unsafe extern "C" fn(*mut Cpu, u64, u64) -> u64;

// Helper numbers: compiled code calls helper N through the table at `Cpu::helpers`. The
// table itself is assembled above the JIT (`dispatch::runtime::HELPERS`): the functions live
// in the semantics and the baseline tier, which the JIT does not import.
pub const H_SLOW: i64 = 0;
pub const H_COND: i64 = 1;
pub const H_RFLAGS: i64 = 2;
pub const H_INTERP: i64 = 3;

/// Entry point of a compiled unit (Cranelift's `tail` convention: call it through the
/// trampoline). Returns an exit code and leaves the next rip in the context.
pub type UnitFn = crate::mem::exec::CodePtr;

/// The trampoline from Rust into compiled code: `enter(cpu, unit)`.
pub type EnterFn = unsafe extern "C" fn(*mut Cpu, UnitFn) -> u64;

/// Process-wide code that enters guest execution: the trampoline, the baseline tier's shim,
/// and the trampoline's return point where guest memory faults land.
pub struct Runtime {
    enter: UnitFn,
    interp: UnitFn,
    landing: usize,
}

impl Runtime {
    pub fn enter(&self) -> EnterFn {
        // SAFETY: `enter` is the trampoline, compiled with EnterFn's signature.
        unsafe { std::mem::transmute::<UnitFn, EnterFn>(self.enter) }
    }
    pub fn interp(&self) -> UnitFn {
        self.interp
    }
    /// The trampoline's return point, where a host fault on guest memory resumes.
    pub fn landing(&self) -> usize {
        self.landing
    }

    /// Installs the trampoline and the baseline tier's shim into executable memory.
    pub fn install(code: &RuntimeCode) -> Result<Runtime, Box<dyn std::error::Error>> {
        let f = crate::mem::exec::install(&[&code.trampoline, &code.shim])?;
        Ok(Runtime {
            enter: f[0],
            interp: f[1],
            landing: f[0].addr() as usize + code.landing,
        })
    }
}

/// The code of the runtime, not yet executable: what a process compiles once, or reads from
/// the cache directory where an earlier process of the same configuration left it.
#[derive(Debug, PartialEq, Eq)]
pub struct RuntimeCode {
    trampoline: Vec<u8>,
    /// Offset in the trampoline of the point where units return to it.
    landing: usize,
    shim: Vec<u8>,
}

/// Magic of a runtime code file.
const RUNTIME_MAGIC: [u8; 8] = *b"KILNRT03";

impl RuntimeCode {
    /// Compiles the trampoline and the baseline tier's shim (which calls helper `H_INTERP`).
    pub fn compile(j: &Jit) -> Result<RuntimeCode, JitError> {
        let (trampoline, landing) = j.trampoline()?;
        let shim = j.helper_shim(H_INTERP)?;
        Ok(RuntimeCode {
            trampoline,
            landing,
            shim,
        })
    }

    /// Magic, the landing offset and both lengths (u32 each), the code, and a checksum of all
    /// that (`cache_format::fnv1a`).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = RUNTIME_MAGIC.to_vec();
        for n in [self.landing, self.trampoline.len(), self.shim.len()] {
            v.extend_from_slice(&(n as u32).to_le_bytes());
        }
        v.extend_from_slice(&self.trampoline);
        v.extend_from_slice(&self.shim);
        let sum = cache_format::fnv1a(&v);
        v.extend_from_slice(&sum);
        v
    }

    /// Decodes what `encode` wrote; None for anything damaged or foreign.
    pub fn decode(b: &[u8]) -> Option<RuntimeCode> {
        let (body, sum) = b.split_at(b.len().checked_sub(16)?);
        if cache_format::fnv1a(body) != sum || body.get(..8)? != RUNTIME_MAGIC {
            return None;
        }
        let n = |i: usize| -> Option<usize> {
            Some(u32::from_le_bytes(body.get(8 + 4 * i..12 + 4 * i)?.try_into().ok()?) as usize)
        };
        let (landing, t, s) = (n(0)?, n(1)?, n(2)?);
        let code = body.get(20..)?;
        if code.len() != t.checked_add(s)? || landing > t {
            return None;
        }
        Some(RuntimeCode {
            trampoline: code[..t].to_vec(),
            landing,
            shim: code[t..].to_vec(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("host ISA not supported by Cranelift: {0}")]
    Isa(String),
    #[error("Cranelift failed on the block at {0:#x}: {1}")]
    Compile(u64, String),
    #[error("the region at {0:#x} wrote a register its analysis did not foresee")]
    Unpredicted(u64),
    #[error(
        "Cranelift emitted {1} relocations for the block at {0:#x}; units must be relocation-free but for their links"
    )]
    Relocations(u64, usize),
}

/// Host code for one unit, not yet executable.
pub struct CompiledUnit {
    pub code: Vec<u8>,
    pub ninsns: u32,
    /// Its links, when compiled for a pack: where in `code` a four-byte reference to the unit
    /// at a guest address lies (`cache_format::LinkKind::Rel32`), and that address.
    pub links: Vec<(u32, u64)>,
    /// When compiled for a pack: where in `code` the four-byte reference to its entry mark
    /// lies (`cache_format::LinkKind::EntryMark`).
    pub entry_mark: Option<u32>,
}

/// The namespace of the external name a unit's entry mark refers to (`region::mark_entry`);
/// links to other units are in namespace 0.
pub(crate) const ENTRY_MARK_NAMESPACE: u32 = 1;

/// The guest registers that ride in host registers from one unit to the next, besides the
/// context: the stack pointer, the first two argument registers of the guest's calling
/// convention and its return value, which every call and return hands over. The context holds
/// them too (a unit is entered with the whole state there, for a replay from its start); the
/// copies in registers spare the next unit reloading a value just stored, a store-to-load
/// round trip on every chain through a call or a return.
pub const CARRIED: [usize; 4] = [STACK_POINTER, 7, 6, 0];

/// The guest's stack pointer, rsp, as a general register number.
pub const STACK_POINTER: usize = 4;

/// Whether a unit may be entered with stack pointer `rsp`: it is in reach (`mem::in_reach`).
/// Units access the stack at the stack pointer they were entered with (or one a callee gave
/// back), plus a displacement, without checking it first. So every way into a unit checks the
/// stack pointer where nothing shows it in reach: the dispatcher before it enters compiled
/// code (else the baseline tier runs the block), a unit before an exit, a call or a return to
/// its caller (else it returns to the dispatcher, `region::stack_handed_on`).
pub fn stack_in_reach(rsp: u64) -> bool {
    crate::mem::in_reach(rsp)
}

/// `CARRIED` as a mask of register numbers (bit `r` for register `r`).
pub const CARRIED_MASK: u16 = {
    let mut mask = 0;
    let mut k = 0;
    while k < CARRIED.len() {
        mask |= 1 << CARRIED[k];
        k += 1;
    }
    mask
};

/// Units take the guest instructions the units chained before them ran (not yet added to the
/// context's count: the count rides in a vector register, `COUNT`, from unit to unit, and back
/// to the caller of a host call, and the trampoline adds it to the context), their own guest
/// address (also in the context's rip, but a register spares every unit's code addresses a
/// reload of it), the `CARRIED` registers and the context pointer, and return an exit code,
/// the instructions run (theirs included), the `CARRIED` registers (their values where the
/// code is `exit::RETURN`, anything else otherwise) and the context pointer, in the
/// tail-call convention so that one unit can jump straight into the next. The context is an
/// argument, not a register kept for it: inside a unit it is one more value for the register
/// allocator, which may hold it in any register or a stack slot, so that the register that
/// was pinned to it is free for the guest's values; a caller has it back from its callee, as
/// it would from a register every unit kept.
pub fn unit_signature() -> Signature {
    // The two values that differ in order, then the `CARRIED` registers and the context.
    let values = |first: [Type; 2]| {
        let rest = [types::I64; CARRIED.len() + 1];
        first.into_iter().chain(rest).map(AbiParam::new)
    };
    let mut sig = Signature::new(cranelift_codegen::isa::CallConv::Tail);
    sig.params.extend(values([COUNT, types::I64]));
    sig.returns.extend(values([types::I64, COUNT]));
    sig
}

/// The arguments of a unit (`unit_signature`): the instructions run, its guest address, the
/// `CARRIED` registers and the context pointer.
pub type UnitArgs = [Value; 3 + CARRIED.len()];

/// Where the context pointer is among a unit's arguments and results.
pub const CONTEXT_ARG: usize = 2 + CARRIED.len();

/// The type of the guest instruction count that rides from unit to unit: its first lane is
/// the count. A vector register holds it, so that it takes none of the general registers the
/// guest's own compete for (warm `cc1 -O2` spilled less and ran about 5-10% faster without the
/// count in one) and adding to it lengthens no integer dependency chain.
pub const COUNT: cranelift_codegen::ir::Type = types::I64X2;

/// The count `n`, as a `COUNT` value: read from the context's table of small numbers
/// (`Cpu::counts`, through the context pointer `cpu`), a load that an add takes as its operand,
/// else a constant (which would be loaded from the unit's code: a data access to code pages).
pub fn count_const(b: &mut FunctionBuilder<'_>, n: i64, cpu: Value) -> Value {
    count_in_table(b, n, cpu).unwrap_or_else(|| {
        let bytes: Vec<u8> = (n as u64).to_le_bytes().into_iter().chain([0; 8]).collect();
        let c = b.func.dfg.constants.insert(bytes.into());
        b.ins().vconst(COUNT, c)
    })
}

/// The count `n` read from the context's table of small numbers, where it holds it.
fn count_in_table(b: &mut FunctionBuilder<'_>, n: i64, cpu: Value) -> Option<Value> {
    let k = usize::try_from(n).ok().filter(|&k| k > 0 && k < crate::cpu::COUNTS)?;
    let mf = MemFlagsData::trusted().with_readonly();
    Some(b.ins().load(COUNT, mf, cpu, crate::cpu::off::count(k)))
}

/// `count` (a `COUNT` value) with `n` more instructions run. `n` is below zero on a way into
/// a block where the first way lowered left more pending (`Lower::settle_count`): that
/// subtracts the table's `-n`, one instruction, where a constant of `n` was loaded from the
/// unit's code and then added.
pub fn count_added(b: &mut FunctionBuilder<'_>, count: Value, n: i64, cpu: Value) -> Value {
    if let Some(m) = n.checked_neg().and_then(|m| count_in_table(b, m, cpu)) {
        return b.ins().isub(count, m);
    }
    let k = count_const(b, n, cpu);
    b.ins().iadd(count, k)
}

/// Returns from a unit-shaped function with exit `code`, `insns` guest instructions run,
/// `carried` as the `CARRIED` registers, or zeros in their place (where the code is not
/// `exit::RETURN`), and the context pointer `cpu`.
fn return_code(b: &mut FunctionBuilder<'_>, (code, insns): (Value, Value), carried: Option<[Value; 4]>, cpu: Value) {
    let carried = carried.unwrap_or_else(|| [b.ins().iconst(types::I64, 0); 4]);
    let mut values = vec![code, insns];
    values.extend(carried);
    values.push(cpu);
    b.ins().return_(&values);
}

/// The `Cpu` that compiled code's context pointer `cpu` points into (`off::BIAS`), for a
/// helper, which takes the context as Rust does.
fn context_for_helper(b: &mut FunctionBuilder<'_>, cpu: Value) -> Value {
    b.ins().iadd_imm_s(cpu, -(crate::cpu::off::BIAS as i64))
}

/// The `CARRIED` registers as the context holds them.
fn carried_from_context(b: &mut FunctionBuilder<'_>, cpu: Value) -> [Value; 4] {
    CARRIED.map(|r| {
        b.ins()
            .load(types::I64, MemFlagsData::trusted(), cpu, crate::cpu::off::gpr(r))
    })
}

/// A `Hasher` that feeds what is hashed into FNV-1a (for the configuration id, which the
/// executable's own hash makes specific to this build, so the bytes need no stability across
/// builds; not blake3, see `cache_format::fnv1a`).
struct HashInto(cache_format::Fnv1a);

impl std::hash::Hasher for HashInto {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        u64::from_le_bytes(self.0.digest()[..8].try_into().unwrap_or_default())
    }
}

#[derive(Clone)]
pub struct Jit {
    isa: Arc<OwnedTargetIsa>,
}

/// Cranelift's settings for units: optimised, or `quick` (no optimisation passes, the
/// single-pass register allocator) for the blocks a cold run finds hot, whose code serves
/// that run only (the compile service compiles them again for the cache).
fn unit_settings(quick: bool) -> Result<settings::Flags, JitError> {
    let mut fb = settings::builder();
    let mut set = |name: &str, value: &str| fb.set(name, value).map_err(|e| JitError::Isa(e.to_string()));
    set("opt_level", if quick { "none" } else { "speed" })?;
    if quick {
        set("regalloc_algorithm", "single_pass")?;
    }
    // The IR verifier is a debugging aid; it costs a large share of compile time.
    set("enable_verifier", "false")?;
    // Tail calls between units need frame pointers.
    set("preserve_frame_pointers", "true")?;
    Ok(settings::Flags::new(fb))
}

impl Jit {
    /// The JIT of optimised units: those the cache keeps.
    pub fn new() -> Result<Jit, JitError> {
        Jit::with(unit_settings(false)?)
    }

    /// The quick JIT (`unit_settings`): its units run in this process only. The same
    /// configuration as `new`'s (`config_id`): what it makes differs in speed, not meaning.
    pub fn quick() -> Result<Jit, JitError> {
        Jit::with(unit_settings(true)?)
    }

    fn with(flags: settings::Flags) -> Result<Jit, JitError> {
        let isa = host::isa_builder()
            .map_err(JitError::Isa)?
            .finish(flags)
            .map_err(|e| JitError::Isa(e.to_string()))?;
        Ok(Jit { isa: Arc::new(isa) })
    }

    fn isa(&self) -> &dyn TargetIsa {
        &**self.isa
    }

    /// The configuration id of the translations this JIT makes and may use: what produced
    /// them, which is Kiln's own executable (`exe`, its blake3 hash), so that any change to
    /// Kiln's code (semantics, lowering, the JIT) keys a new set of entries without a version
    /// to bump; with it the JIT's settings and host features and the guest CPUID profile, which
    /// the same binary may vary from run to run.
    pub fn config_id(&self, exe: &cache_format::Hash) -> cache_format::ConfigId {
        use std::hash::Hash;
        let isa = self.isa();
        let mut h = HashInto(cache_format::Fnv1a::default());
        h.0.update(b"kiln configuration\0");
        h.0.update(exe);
        h.0.update(&TRANSLATION_VERSION.to_le_bytes());
        h.0.update(&crate::cpu::CPU_LAYOUT_VERSION.to_le_bytes());
        h.0.update(isa.triple().to_string().as_bytes());
        // Cranelift's own hash keys of its settings (the optimised ones, which the quick JIT
        // shares the configuration of): formatting them as text cost a warm static hello
        // world 2% of its CPU.
        match unit_settings(false) {
            Ok(flags) => flags.hash(&mut h),
            Err(_) => isa.flags().hash(&mut h),
        }
        isa.isa_flags_hash_key().hash(&mut h);
        for leaf in [0u32, 1, 2, 7, 0x8000_0000, 0x8000_0001] {
            for r in crate::semantics::slow::cpuid(leaf, 0) {
                h.0.update(&r.to_le_bytes());
            }
        }
        cache_format::ConfigId(h.0.digest())
    }

    /// Compiles the trampoline that calls a unit (tail convention) from Rust (C convention).
    /// Returns its code and the offset of the point where the unit returns to it.
    ///
    /// The unit is called with `try_call_indirect`, for which Cranelift treats every register
    /// as clobbered: the trampoline saves all of the C convention's callee-saved registers
    /// itself. A guest memory fault inside the unit (or inside Rust code it called) can then
    /// resume at the return point with only the stack pointer, frame pointer and return value
    /// set (see `linux::signals::on_host_fault`), abandoning the frames above it.
    pub fn trampoline(&self) -> Result<(Vec<u8>, usize), JitError> {
        let isa = self.isa();
        let mut sig = Signature::new(isa.default_call_conv());
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        sig.returns.push(AbiParam::new(types::I64));
        let mut func = Function::with_name_signature(UserFuncName::default(), sig);
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let (cpu, unit) = (b.block_params(entry)[0], b.block_params(entry)[1]);
        // Compiled code holds the context `off::BIAS` bytes into it.
        let cpu = b.ins().iadd_imm_s(cpu, crate::cpu::off::BIAS as i64);
        let usig = b.import_signature(unit_signature());
        let mf = MemFlagsData::trusted();
        let sp = b.ins().get_stack_pointer(types::I64);
        let fp = b.ins().get_frame_pointer(types::I64);
        b.ins().store(mf, sp, cpu, crate::cpu::off::HOST_SP);
        b.ins().store(mf, fp, cpu, crate::cpu::off::HOST_FP);
        let none_waits = b.ins().iconst(types::I64, crate::cpu::NO_RETURN as i64);
        b.ins().store(mf, none_waits, cpu, crate::cpu::off::RET_EXPECT);
        let floor = b.ins().iadd_imm_s(sp, -(crate::cpu::HOST_STACK_FOR_CALLS as i64));
        b.ins().store(mf, floor, cpu, crate::cpu::off::CALL_FLOOR);
        let links = b.ins().load(types::I64, mf, cpu, crate::cpu::off::LINKS);
        let no_floor = b.ins().iconst(types::I64, -1);
        let link_floor = b.ins().select(links, floor, no_floor);
        b.ins().store(mf, link_floor, cpu, crate::cpu::off::LINK_FLOOR);
        let done = b.create_block();
        b.append_block_param(done, types::I64);
        b.append_block_param(done, COUNT);
        let results = [BlockArg::TryCallRet(0), BlockArg::TryCallRet(1)];
        let normal = BlockCall::new(done, results, &mut b.func.dfg.value_lists);
        let et = b
            .func
            .dfg
            .exception_tables
            .push(ExceptionTableData::new(usig, normal, []));
        let none_yet = count_const(&mut b, 0, cpu);
        let rip = b.ins().load(types::I64, mf, cpu, crate::cpu::off::RIP);
        let mut args = vec![none_yet, rip];
        args.extend(carried_from_context(&mut b, cpu));
        args.push(cpu);
        b.ins().try_call_indirect(unit, &args, et);
        b.switch_to_block(done);
        let (r, insns) = (b.block_params(done)[0], b.block_params(done)[1]);
        let total = b.ins().load(types::I64, mf, cpu, crate::cpu::off::INSNS_COMPILED);
        let insns = b.ins().extractlane(insns, 0);
        let total = b.ins().iadd(total, insns);
        b.ins().store(mf, total, cpu, crate::cpu::off::INSNS_COMPILED);
        let z = b.ins().iconst(types::I64, 0);
        b.ins().store(mf, z, cpu, crate::cpu::off::HOST_SP);
        settle_rip_after_fault(&mut b, cpu, r);
        // A return that no unit waited for continues at the context's rip like any other.
        let returned = b.ins().icmp_imm_u(IntCC::Equal, r, crate::cpu::exit::RETURN as i64);
        let next = b.ins().iconst(types::I64, crate::cpu::exit::NEXT as i64);
        let r = b.ins().select(returned, next, r);
        b.ins().return_(&[r]);
        b.seal_all_blocks();
        b.finalize(isa.frontend_config());
        let mut ctx = Context::for_function(func);
        let code = ctx
            .compile(isa, &mut ControlPlane::default())
            .map_err(|e| JitError::Compile(0, format!("trampoline: {:?}", e.inner)))?;
        if !code.buffer.relocs().is_empty() {
            return Err(JitError::Relocations(0, code.buffer.relocs().len()));
        }
        let sites: Vec<u32> = code.buffer.call_sites().map(|c| c.ret_addr).collect();
        let [landing] = sites[..] else {
            return Err(JitError::Compile(0, format!("trampoline: {} call sites", sites.len())));
        };
        Ok((code.code_buffer().to_vec(), landing as usize))
    }

    /// Compiles a unit-shaped shim that runs helper `h` (the baseline tier's block runner), so
    /// that interpreted blocks are entered through the trampoline too, and from compiled code
    /// through the chaining table like any unit. Where the blocks the helper ran led to a
    /// compiled unit it may enter (`Cpu::enter_next`), the shim goes on into it with a tail
    /// call, the instructions the units before it ran still riding in its count; otherwise it
    /// returns the helper's exit code, with the `CARRIED` registers from the context (which
    /// the baseline tier keeps whole) for an `exit::RETURN` to the unit that called it.
    pub fn helper_shim(&self, h: i64) -> Result<Vec<u8>, JitError> {
        let isa = self.isa();
        let mut func = Function::with_name_signature(UserFuncName::default(), unit_signature());
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let cpu = b.block_params(entry)[CONTEXT_ARG];
        let insns = b.block_params(entry)[0];
        let mut hs = Signature::new(isa.default_call_conv());
        for _ in 0..3 {
            hs.params.push(AbiParam::new(types::I64));
        }
        hs.returns.push(AbiParam::new(types::I64));
        let hsig = b.import_signature(hs);
        let usig = b.import_signature(unit_signature());
        let mf = MemFlagsData::trusted();
        let table = b.ins().load(types::I64, mf, cpu, crate::cpu::off::HELPERS);
        let f = b.ins().load(types::I64, mf, table, (h * 8) as i32);
        let z = b.ins().iconst(types::I64, 0);
        let context = context_for_helper(&mut b, cpu);
        let call = b.ins().call_indirect(hsig, f, &[context, z, z]);
        let r = b.inst_results(call)[0];
        let next = b.ins().load(types::I64, mf, cpu, crate::cpu::off::ENTER_NEXT);
        let (on, back) = (b.create_block(), b.create_block());
        b.ins().brif(next, on, &[], back, &[]);
        b.switch_to_block(on);
        b.ins().store(mf, z, cpu, crate::cpu::off::ENTER_NEXT);
        let rip = b.ins().load(types::I64, mf, cpu, crate::cpu::off::RIP);
        let mut args = vec![insns, rip];
        args.extend(carried_from_context(&mut b, cpu));
        args.push(cpu);
        b.ins().return_call_indirect(usig, next, &args);
        b.switch_to_block(back);
        let carried = carried_from_context(&mut b, cpu);
        return_code(&mut b, (r, insns), Some(carried), cpu);
        b.seal_all_blocks();
        b.finalize(isa.frontend_config());
        self.compile_relocation_free(func, "shim")
    }

    /// Compiles a function of Kiln's own runtime code (`what`), which must need no relocation.
    fn compile_relocation_free(&self, func: Function, what: &str) -> Result<Vec<u8>, JitError> {
        let mut ctx = Context::for_function(func);
        let code = ctx
            .compile(self.isa(), &mut ControlPlane::default())
            .map_err(|e| JitError::Compile(0, format!("{what}: {:?}", e.inner)))?;
        if !code.buffer.relocs().is_empty() {
            return Err(JitError::Relocations(0, code.buffer.relocs().len()));
        }
        Ok(code.code_buffer().to_vec())
    }

    /// Compiles a block as a unit of its own.
    pub fn compile(&self, block: &Block) -> Result<CompiledUnit, JitError> {
        self.compile_region(&Region::single(block.clone()), Placement::Relocatable)
    }

    /// Compiles a region (its head block alone if the region cannot be); a failure (or a
    /// panic inside Cranelift) is an error, never fatal.
    pub fn compile_region(&self, region: &Region, placement: Placement) -> Result<CompiledUnit, JitError> {
        self.compile_region_as(region, false, placement)
    }

    /// `compile_region` for a pack: the unit links to the units its known exits and direct
    /// calls lead to (without links if the host's code cannot have them).
    pub fn compile_for_pack(&self, region: &Region, placement: Placement) -> Result<CompiledUnit, JitError> {
        match self.compile_region_as(region, true, placement) {
            Err(JitError::Relocations(..)) => self.compile_region_as(region, false, placement),
            r => r,
        }
    }

    fn compile_region_as(&self, region: &Region, linked: bool, placement: Placement) -> Result<CompiledUnit, JitError> {
        match self.compile_guarded(region, linked, placement) {
            Err(JitError::Unpredicted(at)) if region.blocks.len() > 1 => {
                crate::klog!(
                    "jit",
                    "region at {at:#x}: a register write was not foreseen; compiling its head alone"
                );
                self.compile_guarded(&Region::single(region.blocks[0].clone()), linked, placement)
            }
            r => r,
        }
    }

    fn compile_guarded(&self, region: &Region, linked: bool, placement: Placement) -> Result<CompiledUnit, JitError> {
        let compile = || self.compile_inner(region, linked, placement);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(compile)) {
            Ok(r) => r,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(JitError::Compile(region.head(), format!("panic: {msg}")))
            }
        }
    }

    fn compile_inner(&self, region: &Region, linked: bool, placement: Placement) -> Result<CompiledUnit, JitError> {
        Workspace::with(|Workspace { ctx, fctx }| self.compile_in(ctx, fctx, region, linked, placement))
    }

    /// `compile_inner` in a thread's reused Cranelift state.
    fn compile_in(
        &self,
        ctx: &mut Context,
        fctx: &mut FunctionBuilderContext,
        region: &Region,
        linked: bool,
        placement: Placement,
    ) -> Result<CompiledUnit, JitError> {
        let isa = self.isa();
        ctx.clear();
        ctx.func.signature = unit_signature();
        let b = FunctionBuilder::new(&mut ctx.func, fctx);
        let Some(targets) = region::lower_region(b, isa, region, linked, placement) else {
            return Err(JitError::Unpredicted(region.head()));
        };
        crate::klog!("clif", "unit at {:#x}:\n{}", region.head(), ctx.func.display());
        ctx.set_disasm(crate::log::on("code"));
        let code = ctx
            .compile(isa, &mut ControlPlane::default())
            .map_err(|e| JitError::Compile(region.head(), format!("{:?}", e.inner)))?;
        if let Some(text) = &code.vcode {
            crate::klog!("code", "unit at {:#x}:\n{text}", region.head());
        }
        let relocs = code.buffer.relocs().to_vec();
        let bytes = code.code_buffer().to_vec();
        let (marks, links): (Vec<_>, Vec<_>) = relocs.iter().partition(|r| is_entry_mark(r, &ctx.func));
        let links = links
            .iter()
            .map(|r| link_site(r, &ctx.func, &targets))
            .collect::<Option<Vec<_>>>()
            .ok_or(JitError::Relocations(region.head(), relocs.len()))?;
        let entry_mark = match marks[..] {
            [] => None,
            // Cranelift relocates a near symbol's `lea` as it does a call.
            [m] if matches!(m.kind, Reloc::X86PCRel4 | Reloc::X86CallPCRel4) && m.addend == -4 => Some(m.offset),
            _ => return Err(JitError::Relocations(region.head(), relocs.len())),
        };
        Ok(CompiledUnit {
            code: bytes,
            ninsns: region.ninsns() as u32,
            links,
            entry_mark,
        })
    }

    /// Compiles the link stub that packs place first in their code (`region::lower_link_stub`).
    pub fn link_stub(&self) -> Result<Vec<u8>, JitError> {
        let isa = self.isa();
        let mut func = Function::with_name_signature(UserFuncName::default(), unit_signature());
        let mut fctx = FunctionBuilderContext::new();
        region::lower_link_stub(FunctionBuilder::new(&mut func, &mut fctx), isa);
        self.compile_relocation_free(func, "link stub")
    }
}

/// Cranelift's state for compiling units, one per thread and reused: a compile clears it and
/// keeps its allocations (the function's tables, the control-flow graph, the dominator tree,
/// the register allocator's), which fresh for every unit made the allocator a large part of a
/// compile.
struct Workspace {
    ctx: Context,
    fctx: FunctionBuilderContext,
}

impl Workspace {
    /// Runs `f` with this thread's workspace. One that a panic left halfway is not kept: the
    /// next compile starts from a new one.
    fn with<R>(f: impl FnOnce(&mut Workspace) -> R) -> R {
        thread_local! {
            static KEPT: std::cell::Cell<Option<Box<Workspace>>> = const { std::cell::Cell::new(None) };
        }
        let mut ws = KEPT.take().unwrap_or_else(|| {
            crate::allocator::heavy_use();
            Box::new(Workspace {
                ctx: Context::new(),
                fctx: FunctionBuilderContext::new(),
            })
        });
        let r = f(&mut ws);
        KEPT.set(Some(ws));
        r
    }
}

/// The link stub of the packs this process writes (`Jit::link_stub`), compiled once; empty if
/// it cannot be (a pack written without one keeps no unit with links).
pub fn pack_link_stub() -> &'static [u8] {
    static STUB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    STUB.get_or_init(|| Jit::new().and_then(|j| j.link_stub()).unwrap_or_default())
}

/// A relocation as a link: where its four bytes lie and the guest address of the unit it
/// leads to. None for anything but a call or jump to a link function (`Lower::link_to`) in the
/// form `cache_format::LinkKind::Rel32` fills in.
fn link_site(r: &FinalizedMachReloc, func: &Function, targets: &[u64]) -> Option<(u32, u64)> {
    let FinalizedRelocTarget::ExternalName(ExternalName::User(name)) = r.target else {
        return None;
    };
    if r.kind != Reloc::X86CallPCRel4 || r.addend != -4 {
        return None;
    }
    let index = func.params.user_named_funcs().get(name)?.index;
    Some((r.offset, *targets.get(index as usize)?))
}

/// Whether a relocation refers to the unit's entry mark (`region::mark_entry`).
fn is_entry_mark(r: &FinalizedMachReloc, func: &Function) -> bool {
    let FinalizedRelocTarget::ExternalName(ExternalName::User(name)) = r.target else {
        return false;
    };
    func.params
        .user_named_funcs()
        .get(name)
        .is_some_and(|n| n.namespace == ENTRY_MARK_NAMESPACE)
}

/// After exit `r`: where it is a fault, the context's rip as the last checkpoint left it
/// (`Lower::set_rip`: its distance from the address below in the top bits) becomes the guest
/// address it stands for (`cpu::settled_rip`). Every other way out stores the next rip whole,
/// so only a fault's rip is settled (a jump to a wild address keeps its top bits).
fn settle_rip_after_fault(b: &mut FunctionBuilder<'_>, cpu: Value, r: Value) {
    use crate::cpu::{off, CHECKPOINT_SHIFT};
    let mf = MemFlagsData::trusted();
    let kept = b.ins().load(types::I64, mf, cpu, off::RIP);
    let address = b.ins().band_imm_u(kept, (1i64 << CHECKPOINT_SHIFT) - 1);
    let distance = b.ins().sshr_imm_u(kept, i64::from(CHECKPOINT_SHIFT));
    let settled = b.ins().iadd(address, distance);
    let faulted = b.ins().icmp_imm_u(IntCC::Equal, r, crate::cpu::exit::FAULT as i64);
    let rip = b.ins().select(faulted, settled, kept);
    b.ins().store(mf, rip, cpu, off::RIP);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_pointer_is_in_reach_below_the_limit_as_a_signed_number() {
        use crate::mem::{GUEST_SPACE, SPACE_LIMIT};
        for rsp in [0, 8, GUEST_SPACE - 8, GUEST_SPACE, SPACE_LIMIT - 1, u64::MAX, 1 << 63] {
            assert!(stack_in_reach(rsp), "{rsp:#x}");
        }
        for rsp in [SPACE_LIMIT, 0x0000_7000_0000_0000, 0x4000_0000_0000_0000, (1 << 63) - 1] {
            assert!(!stack_in_reach(rsp), "{rsp:#x}");
        }
    }

    #[test]
    fn runtime_code_round_trips_and_damage_is_refused() {
        let code = RuntimeCode::compile(&Jit::new().unwrap()).unwrap();
        let bytes = code.encode();
        assert_eq!(RuntimeCode::decode(&bytes), Some(code));
        for at in [0, 9, 21, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert_eq!(RuntimeCode::decode(&bad), None, "byte {at} flipped");
        }
        assert_eq!(RuntimeCode::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(RuntimeCode::decode(&[]), None);
    }
}
