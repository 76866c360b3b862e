//! The optimising tier: x86 semantics lowered to Cranelift IR through `Emitter`, compiled to
//! relocation-free host code, and placed in W^X executable memory.

pub mod execmem;
mod lower;

use crate::cpu::Cpu;
use crate::decode::Block;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{types, AbiParam, Function, Signature, UserFuncName};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use std::sync::Arc;

/// Bumped whenever lowering changes what compiled code does.
pub const TRANSLATION_VERSION: u32 = 1;

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

/// Entry point of a compiled unit: returns an exit code and leaves the next rip in the context.
pub type UnitFn = unsafe extern "C" fn(*mut Cpu) -> u64;

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

#[derive(Clone)]
pub struct Jit {
    isa: Arc<OwnedTargetIsa>,
}

impl Jit {
    pub fn new() -> Result<Jit, JitError> {
        let mut fb = settings::builder();
        fb.set("opt_level", "speed").map_err(|e| JitError::Isa(e.to_string()))?;
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

    pub fn compile(&self, block: &Block) -> Result<CompiledUnit, JitError> {
        let isa = self.isa();
        let ptr = isa.pointer_type();
        let mut sig = Signature::new(isa.default_call_conv());
        sig.params.push(AbiParam::new(ptr));
        sig.returns.push(AbiParam::new(types::I64));
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
