//! x86-64 semantics: the index of the instruction families and the route an instruction takes
//! to them (`classify`). Families written over the `Emitter` trait (`generic`, `sse`, the
//! common locked forms in `locked`, `rep stos`/`rep movs` in `repeat`) run in the baseline tier
//! over concrete values and in the JIT over Cranelift values; the families written over concrete
//! state (`slow` and the families it routes to) are reached by both tiers through
//! `Emitter::slow`.

pub mod atomic;
pub mod concrete;
pub mod emitter;
pub mod ext;
pub mod fp;
pub mod generic;
pub mod insn;
pub mod locked;
pub mod mmx;
pub mod operand;
pub mod repeat;
pub mod slow;
pub mod sse;
pub mod sse_fp;
pub mod sse_strings;
pub mod table;
pub mod vector;
pub mod x87;

pub use generic::alu;

use crate::cpu::ops::Bin;
use emitter::Emitter;
use iced_x86::{Instruction, Mnemonic, OpKind};
use insn::Insn;
use table::{Fuzz, Rows};

/// Every instruction family; each is a table (`table::Family`).
pub static FAMILIES: &[&dyn Rows] = &[
    &generic::FAMILY,
    &sse::FAMILY,
    &sse::SLOW_FAMILY,
    &sse_fp::FAMILY,
    &mmx::FAMILY,
    &atomic::FAMILY,
    &ext::FAMILY,
    &x87::FAMILY,
    &slow::FAMILY,
];

/// Where an instruction's semantics live; decided once at decode time.
pub mod route {
    pub const GENERIC: u8 = 0;
    pub const SSE: u8 = 1;
    pub const SLOW: u8 = 2;
    /// A locked read-modify-write over the `Emitter`'s atomic operations (`locked`).
    pub const LOCKED: u8 = 3;
    /// A `rep stos` or `rep movs` over the `Emitter`'s repeated stores and copies (`repeat`).
    pub const REPEAT: u8 = 4;
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
pub fn misalignment<E: Emitter, I: Insn>(e: &mut E, ins: &I) -> E::V {
    let a = operand::ea(e, ins);
    let m = e.imm(15);
    e.bin(Bin::And, a, m)
}

fn classify_route(ins: &Instruction) -> Option<u8> {
    if locked::supported(ins) {
        Some(route::LOCKED)
    } else if repeat::supported(ins) {
        Some(route::REPEAT)
    } else if atomic::needs_atomic(ins) {
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

/// The fuzz decision of the family row that implements the instruction on the route `classify`
/// picks, or None if Kiln does not implement it.
pub fn fuzz_decision(ins: &Instruction) -> Option<Fuzz> {
    let m = ins.mnemonic();
    match classify_route(ins)? {
        route::GENERIC => generic::FAMILY.fuzz(m),
        route::SSE => sse::FAMILY.fuzz(m),
        _ => slow::fuzz_decision(ins),
    }
}

/// Where an instruction's semantics live, resolved once from its route: the general-purpose
/// family's operation, or the family that runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    Generic(generic::Op),
    Sse,
    Locked,
    Repeat,
    Slow,
}

/// The handler of an instruction on the route `classify` gave it.
pub fn handler(ins: &Instruction, r: u8) -> Handler {
    match r & !route::ALIGN16 {
        route::GENERIC => Handler::Generic(generic::op(ins)),
        route::SSE => Handler::Sse,
        route::LOCKED => Handler::Locked,
        route::REPEAT => Handler::Repeat,
        _ => Handler::Slow,
    }
}

/// Executes (or emits) one instruction along the route `classify` gave it. Block-ending
/// instructions call `jump` or `syscall`.
pub fn exec_routed<E: Emitter>(e: &mut E, ins: &Instruction, r: u8) {
    exec_handler(e, ins, handler(ins, r))
}

/// Executes (or emits) one instruction with the handler `handler` gave it.
#[inline]
pub fn exec_handler<E: Emitter, I: Insn>(e: &mut E, ins: &I, h: Handler) {
    match h {
        Handler::Generic(op) => generic::exec_op(e, ins, op),
        Handler::Sse => sse::exec(e, ins.iced()),
        Handler::Locked => locked::exec(e, ins.iced()),
        Handler::Repeat => repeat::exec(e, ins.iced()),
        Handler::Slow => e.slow(ins.iced()),
    }
}

/// `bytes` decoded as one 64-bit instruction at 0x1000, for the families' tests.
#[cfg(test)]
pub(crate) fn decoded(bytes: &[u8]) -> Instruction {
    iced_x86::Decoder::with_ip(64, bytes, 0x1000, iced_x86::DecoderOptions::NONE).decode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn route_of(bytes: &[u8]) -> Option<u8> {
        classify(&decoded(bytes))
    }

    #[test]
    fn sample_encodings_take_their_routes() {
        use route::*;
        let cases: &[(&[u8], Option<u8>)] = &[
            (&[0x48, 0x01, 0xd8], Some(GENERIC)),              // add rax, rbx
            (&[0xf0, 0x48, 0x01, 0x18], Some(LOCKED)),         // lock add [rax], rbx
            (&[0x48, 0x87, 0x18], Some(LOCKED)),               // xchg [rax], rbx
            (&[0x48, 0x87, 0xd8], Some(GENERIC)),              // xchg rax, rbx
            (&[0xc9], Some(GENERIC)),                          // leave
            (&[0x0f, 0x05], Some(GENERIC)),                    // syscall
            (&[0x48, 0xd3, 0xe0], Some(GENERIC)),              // shl rax, cl
            (&[0x48, 0xd1, 0xd0], Some(SLOW)),                 // rcl rax, 1
            (&[0x48, 0xf7, 0xf3], Some(GENERIC)),              // div rbx (the slow path divides 128 bits)
            (&[0x48, 0x0f, 0xa3, 0x18], Some(GENERIC)),        // bt [rax], rbx
            (&[0xf0, 0x48, 0x0f, 0xab, 0x18], Some(SLOW)),     // lock bts [rax], rbx
            (&[0xf0, 0x48, 0x0f, 0xb1, 0x18], Some(LOCKED)),   // lock cmpxchg [rax], rbx
            (&[0x0f, 0xa2], Some(SLOW)),                       // cpuid
            (&[0x66, 0x0f, 0xef, 0xc1], Some(SSE)),            // pxor xmm0, xmm1
            (&[0x66, 0x0f, 0xef, 0x00], Some(SSE | ALIGN16)),  // pxor xmm0, [rax]
            (&[0xf3, 0x0f, 0x6f, 0x00], Some(SSE)),            // movdqu xmm0, [rax]
            (&[0x66, 0x0f, 0x71, 0xf0, 0x03], Some(SSE)),      // psllw xmm0, 3
            (&[0x66, 0x0f, 0xf1, 0xc1], Some(SLOW)),           // psllw xmm0, xmm1
            (&[0xf2, 0x0f, 0x10, 0xc1], Some(SSE)),            // movsd xmm0, xmm1
            (&[0xa5], Some(SLOW)),                             // movsd (string)
            (&[0xf3, 0x48, 0xab], Some(REPEAT)),               // rep stosq
            (&[0xf2, 0x0f, 0x58, 0xc1], Some(SLOW)),           // addsd xmm0, xmm1
            (&[0x66, 0x0f, 0x58, 0x00], Some(SLOW | ALIGN16)), // addpd xmm0, [rax]
            (&[0x0f, 0xef, 0xc1], Some(SLOW)),                 // pxor mm0, mm1
            (&[0x0f, 0x77], Some(SLOW)),                       // emms
            (&[0xc5, 0xf8, 0x58, 0xc1], None),                 // vaddps xmm0, xmm0, xmm1
        ];
        for (bytes, want) in cases {
            assert_eq!(route_of(bytes), *want, "{bytes:02x?} ({})", decoded(bytes));
        }
        assert_ne!(route_of(&[0x66, 0x50]), Some(route::GENERIC), "push ax");
    }

    /// Instructions decoded from a sweep of one- and two-byte opcodes under common prefixes,
    /// with every ModRM reg field (register and memory forms) and endbr64's ModRM.
    fn sweep() -> Vec<Instruction> {
        let prefixes: &[&[u8]] = &[
            &[],
            &[0x48],
            &[0x66],
            &[0x66, 0x48],
            &[0x67],
            &[0xf2],
            &[0xf3],
            &[0xf3, 0x48],
            &[0xf0],
            &[0xf0, 0x48],
        ];
        let mut out = Vec::new();
        for p in prefixes {
            for escape in [&[][..], &[0x0f][..], &[0x0f, 0x38][..], &[0x0f, 0x3a][..]] {
                for op in 0..=255u8 {
                    for modrm in (0..8)
                        .map(|r| 0xc1 | r << 3)
                        .chain((0..8).map(|r| r << 3))
                        .chain([0xfa])
                    {
                        let mut b = p.to_vec();
                        b.extend_from_slice(escape);
                        b.extend_from_slice(&[op, modrm, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
                        let ins = decoded(&b);
                        if !ins.is_invalid() {
                            out.push(ins);
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_generic_row_classifies_to_generic() {
        let generic: HashSet<Mnemonic> = sweep()
            .iter()
            .filter(|i| classify(i).map(|r| r & !route::ALIGN16) == Some(route::GENERIC))
            .map(|i| i.mnemonic())
            .collect();
        for m in generic::FAMILY.mnemonics() {
            assert!(generic.contains(&m), "{m:?} never classifies to GENERIC");
        }
    }

    #[test]
    fn every_sse_row_classifies_to_sse() {
        let sse: HashSet<Mnemonic> = sweep()
            .iter()
            .filter(|i| classify(i).map(|r| r & !route::ALIGN16) == Some(route::SSE))
            .map(|i| i.mnemonic())
            .collect();
        for m in sse::FAMILY.mnemonics() {
            assert!(sse.contains(&m), "{m:?} never classifies to SSE");
        }
    }

    #[test]
    fn no_instruction_is_claimed_by_two_families_on_its_route() {
        for ins in sweep() {
            let Some(r) = classify(&ins) else { continue };
            let claims = match r & !route::ALIGN16 {
                route::GENERIC => vec![generic::supported(&ins)],
                route::SSE => vec![sse::generic_supported(&ins)],
                route::LOCKED => vec![locked::supported(&ins)],
                route::REPEAT => vec![repeat::supported(&ins)],
                // sse's concrete rows share mnemonics with MMX rows; `slow::exec` gives the MMX
                // forms to mmx first, so sse claims only the others.
                _ => vec![
                    mmx::supported(&ins),
                    sse::slow_supported(&ins) && !mmx::supported(&ins),
                    sse_fp::supported(&ins),
                    ext::supported(&ins),
                    x87::supported(&ins),
                    atomic::needs_atomic(&ins) && atomic::FAMILY.has(ins.mnemonic()),
                ],
            };
            let n = claims.iter().filter(|&&c| c).count();
            assert!(n <= 1, "{ins} is claimed by {n} families on route {r}");
        }
    }

    #[test]
    fn fuzz_decisions_follow_the_rows() {
        assert_eq!(fuzz_decision(&decoded(&[0x48, 0x01, 0xd8])), Some(Fuzz::Yes));
        assert!(matches!(fuzz_decision(&decoded(&[0x0f, 0x05])), Some(Fuzz::No(_))));
        assert!(matches!(fuzz_decision(&decoded(&[0x74, 0x00])), Some(Fuzz::No(_))));
        assert_eq!(fuzz_decision(&decoded(&[0xf2, 0x0f, 0x58, 0xc1])), Some(Fuzz::Yes));
        assert_eq!(fuzz_decision(&decoded(&[0xc5, 0xf8, 0x58, 0xc1])), None);
    }

    #[test]
    fn families_are_listed_once() {
        let names: HashSet<&str> = FAMILIES.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), FAMILIES.len());
        for f in FAMILIES {
            assert!(!f.all().is_empty(), "{} has no rows", f.name());
        }
    }
}
