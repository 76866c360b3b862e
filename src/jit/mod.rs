//! The optimising tier: x86 semantics lowered to Cranelift IR through `Emitter`, compiled to
//! relocation-free host code, and placed in W^X executable memory.

pub mod execmem;
mod lower;

use crate::cpu::Cpu;
use crate::decode::Block;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{types, AbiParam, Function, InstBuilder, Signature, UserFuncName};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use std::sync::Arc;

/// Bumped whenever lowering changes what compiled code does.
pub const TRANSLATION_VERSION: u32 = 4;

/// Signature of a helper: (context, arg0, arg1) -> result.
pub type Helper = extern "C" fn(*mut Cpu, u64, u64) -> u64;

/// The helper table compiled code calls through (index = helper number).
pub static HELPERS: [Helper; 3] = [
    crate::semantics::slow::helper_slow,
    crate::semantics::concrete::helper_cond,
    crate::semantics::concrete::helper_rflags,
];
pub const H_SLOW: i64 = 0;
pub const H_COND: i64 = 1;
pub const H_RFLAGS: i64 = 2;

/// Entry point of a compiled unit (Cranelift's `tail` convention: call it through the
/// trampoline). Returns an exit code and leaves the next rip in the context.
pub type UnitFn = *const u8;

/// The trampoline from Rust into compiled code: `enter(cpu, unit)`.
pub type EnterFn = unsafe extern "C" fn(*mut Cpu, UnitFn) -> u64;

#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("host ISA not supported by Cranelift: {0}")]
    Isa(String),
    #[error("Cranelift failed on the block at {0:#x}: {1}")]
    Compile(u64, String),
    #[error("Cranelift emitted {1} relocations for the block at {0:#x}; units must be relocation-free")]
    Relocations(u64, usize),
}

/// Host code for one unit, not yet executable.
pub struct CompiledUnit {
    pub code: Vec<u8>,
    pub ninsns: u32,
}

/// Units take the context and return an exit code, in the tail-call convention so that one
/// unit can jump straight into the next.
pub fn unit_signature() -> Signature {
    let mut sig = Signature::new(cranelift_codegen::isa::CallConv::Tail);
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

#[derive(Clone)]
pub struct Jit {
    isa: Arc<OwnedTargetIsa>,
}

impl Jit {
    pub fn new() -> Result<Jit, JitError> {
        let mut fb = settings::builder();
        fb.set("opt_level", "speed").map_err(|e| JitError::Isa(e.to_string()))?;
        // The IR verifier is a debugging aid; it costs a large share of compile time.
        fb.set("enable_verifier", "false")
            .map_err(|e| JitError::Isa(e.to_string()))?;
        // Tail calls between units need frame pointers.
        fb.set("preserve_frame_pointers", "true")
            .map_err(|e| JitError::Isa(e.to_string()))?;
        let flags = settings::Flags::new(fb);
        let isa = cranelift_native::builder()
            .map_err(|e| JitError::Isa(e.to_string()))?
            .finish(flags)
            .map_err(|e| JitError::Isa(e.to_string()))?;
        Ok(Jit { isa: Arc::new(isa) })
    }

    fn isa(&self) -> &dyn TargetIsa {
        &**self.isa
    }

    /// A description of everything about code generation that compiled code depends on.
    pub fn config_description(&self) -> String {
        let isa = self.isa();
        let isa_flags: Vec<String> = isa.isa_flags().iter().map(|v| v.to_string()).collect();
        format!(
            "translation={} cpu_layout={} triple={} flags={} isa_flags={}",
            TRANSLATION_VERSION,
            crate::cpu::CPU_LAYOUT_VERSION,
            isa.triple(),
            isa.flags(),
            isa_flags.join(",")
        )
    }

    /// Compiles the trampoline that calls a unit (tail convention) from Rust (C convention).
    pub fn trampoline(&self) -> Result<Vec<u8>, JitError> {
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
        let usig = b.import_signature(unit_signature());
        let call = b.ins().call_indirect(usig, unit, &[cpu]);
        let r = b.inst_results(call)[0];
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
        Ok(code.code_buffer().to_vec())
    }

    /// Compiles a block; a failure (or a panic inside Cranelift) is an error, never fatal.
    pub fn compile(&self, block: &Block) -> Result<CompiledUnit, JitError> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.compile_inner(block))) {
            Ok(r) => r,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(JitError::Compile(block.start, format!("panic: {msg}")))
            }
        }
    }

    fn compile_inner(&self, block: &Block) -> Result<CompiledUnit, JitError> {
        let isa = self.isa();
        let sig = unit_signature();
        let mut func = Function::with_name_signature(UserFuncName::default(), sig);
        let mut fctx = FunctionBuilderContext::new();
        let b = FunctionBuilder::new(&mut func, &mut fctx);
        lower::lower_block(b, isa, block);
        let mut ctx = Context::for_function(func);
        let code = ctx
            .compile(isa, &mut ControlPlane::default())
            .map_err(|e| JitError::Compile(block.start, format!("{:?}", e.inner)))?;
        let relocs = code.buffer.relocs().len();
        if relocs != 0 {
            return Err(JitError::Relocations(block.start, relocs));
        }
        Ok(CompiledUnit {
            code: code.code_buffer().to_vec(),
            ninsns: block.insns.len() as u32,
        })
    }
}
