//! x86-64 semantics, written once over the `Emitter` trait. The baseline tier runs them over
//! concrete values, the JIT over Cranelift values. Instructions whose meaning is clearer over
//! concrete state live in `slow.rs`; both tiers reach them through `Emitter::slow`.

pub mod atomic;
pub mod concrete;
pub mod emitter;
pub mod ext;
pub mod flags;
pub mod fp;
pub mod generic;
pub mod mmx;
pub mod operand;
pub mod slow;
pub mod sse;
pub mod sse_fp;
pub mod table;
pub mod vector;
pub mod x87;
pub mod x87_trans;

pub use generic::alu;

use emitter::{Bin, Emitter};
use iced_x86::{Instruction, Mnemonic, OpKind};

/// Where an instruction's semantics live; decided once at decode time.
pub mod route {
    pub const GENERIC: u8 = 0;
    pub const SSE: u8 = 1;
    pub const SLOW: u8 = 2;
    /// Added to a route: the instruction's 16-byte memory operand must be 16-byte aligned
    /// (the CPU raises #GP otherwise); see `misalignment`.
    pub const ALIGN16: u8 = 0x80;
}

/// The route of an instruction, or None if Kiln does not implement it.
pub fn classify(ins: &Instruction) -> Option<u8> {
    let r = classify_route(ins)?;
    Some(if needs_alignment(ins) { r | route::ALIGN16 } else { r })
}

/// Whether the instruction is a legacy-encoded form with a 16-byte memory operand that must be
/// aligned: every SSE form except the unaligned moves (movups, movupd, movdqu, lddqu) and the
/// SSE4.2 string compares, and cmpxchg16b.
pub fn needs_alignment(ins: &Instruction) -> bool {
    use Mnemonic::*;
    ins.encoding() == iced_x86::EncodingKind::Legacy
        && (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory)
        && ins.memory_size().size() == 16
        && !matches!(
            ins.mnemonic(),
            Movups
                | Movupd
                | Movdqu
                | Lddqu
                | Pcmpestri
                | Pcmpestrm
                | Pcmpestri64
                | Pcmpestrm64
                | Pcmpistri
                | Pcmpistrm
        )
}

/// The low four bits of the memory operand's address (non-zero: #GP) of an instruction whose
/// route carries `route::ALIGN16`; both tiers test it before the instruction runs.
pub fn misalignment<E: Emitter>(e: &mut E, ins: &Instruction) -> E::V {
    let a = operand::ea(e, ins);
    let m = e.imm(15);
    e.bin(Bin::And, a, m)
}

fn classify_route(ins: &Instruction) -> Option<u8> {
    if atomic::needs_atomic(ins) {
        (generic::supported(ins) || slow::supported(ins)).then_some(route::SLOW)
    } else if generic::supported(ins) {
        Some(route::GENERIC)
    } else if sse::generic_supported(ins) {
        Some(route::SSE)
    } else if slow::supported(ins) {
        Some(route::SLOW)
    } else {
        None
    }
}

/// Executes (or emits) one instruction along the route `classify` gave it. Block-ending
/// instructions call `jump` or `syscall`.
pub fn exec_routed<E: Emitter>(e: &mut E, ins: &Instruction, r: u8) {
    match r & !route::ALIGN16 {
        route::GENERIC => generic::exec(e, ins),
        route::SSE => sse::exec(e, ins),
        _ => e.slow(ins),
    }
}
