//! Which guest registers a checkpoint must store: those that something after it may observe
//! before they are replaced. A checkpoint stores the registers for two readers only: a replay
//! from it in the baseline tier (after a guest memory fault in compiled code, or a guard that
//! leaves for the baseline tier), which reads the context where it reads a register, and the
//! guest's signal handler, which sees every register at the instruction that faults. So a
//! register that every path from the checkpoint replaces before it reads it, and before any
//! instruction that may fault, need not be stored there: it stays in its variable, still
//! differing from the context, and a later checkpoint or the way out of the unit stores it.
//! A loop whose round recomputes its temporaries from its counters stores only the counters at
//! its checkpoint (sha256's message schedule stored five vector registers a round, three of
//! them such temporaries).

use super::lower::{reads_memory, writes_memory, Regs};
use crate::decode::Region;
use iced_x86::{Instruction, Mnemonic, OpKind};
use std::collections::HashSet;

/// Per block of a region: what may be observed where it starts, and after each instruction.
pub struct Observed {
    pub at_start: Vec<Regs>,
    pub after: Vec<Vec<Regs>>,
}

impl Observed {
    /// A backward dataflow over the region's edges: a fault observes every register, and any
    /// other instruction what it reads, hiding what it replaces. Where the code leaves the
    /// unit, or takes a checkpoint on an edge (`checkpointed`), it stores what it needs
    /// itself and observes nothing of the last checkpoint's.
    pub fn of(region: &Region, checkpointed: &HashSet<(usize, usize)>) -> Observed {
        let n = region.blocks.len();
        // Per instruction, once: None where it may fault, else what it reads and replaces.
        let steps: Vec<Vec<Step>> = (region.blocks.iter())
            .map(|b| {
                b.insns
                    .iter()
                    .map(|ins| cannot_fault(ins).then(|| Regs::read_and_replaced_by(ins)))
                    .collect()
            })
            .collect();
        let mut at_start = vec![Regs::default(); n];
        loop {
            let mut changed = false;
            for i in (0..n).rev() {
                let first = Self::through_block(region, i, &steps[i], &at_start, checkpointed).0;
                if first != at_start[i] {
                    at_start[i] = first;
                    changed = true;
                }
            }
            if !changed {
                let after = (0..n).map(|i| Self::through_block(region, i, &steps[i], &at_start, checkpointed).1);
                return Observed {
                    after: after.collect(),
                    at_start,
                };
            }
        }
    }

    /// What block `i` (its instructions' `steps`) observes where it starts and after each of
    /// its instructions, given what its successors observe where they start.
    fn through_block(
        region: &Region,
        i: usize,
        steps: &[Step],
        at_start: &[Regs],
        checkpointed: &HashSet<(usize, usize)>,
    ) -> (Regs, Vec<Regs>) {
        let inside = region.targets[i].iter().filter_map(|&(_, j)| j);
        let mut seen = inside
            .filter(|&j| !checkpointed.contains(&(i, j)))
            .fold(Regs::default(), |s, j| s.union(at_start[j]));
        let mut after = vec![Regs::default(); steps.len()];
        for (k, step) in steps.iter().enumerate().rev() {
            after[k] = seen;
            seen = match step {
                Some((read, replaced)) => seen.minus(*replaced).union(*read),
                None => Regs::ALL,
            };
        }
        (seen, after)
    }
}

/// An instruction's part in the dataflow: None where it may fault, else the registers it
/// reads and those it replaces (`Regs::read_and_replaced_by`).
type Step = Option<(Regs, Regs)>;

/// Whether `ins` can neither fault nor raise anything, in any tier: it touches no memory and is
/// one of the integer, move and bitwise vector operations compiled code runs inline. Anything
/// else (a float operation may raise an unmasked exception, a division a divide error) counts
/// as a fault, which observes every register.
pub fn cannot_fault(ins: &Instruction) -> bool {
    let segment = |k| ins.op_kind(k) == OpKind::Register && ins.op_register(k).is_segment_register();
    let touches_memory = reads_memory(ins) || writes_memory(ins);
    !touches_memory && !(0..ins.op_count()).any(segment) && CANNOT_FAULT.contains(&ins.mnemonic())
}

/// The instructions `cannot_fault` takes, where they touch no memory.
const CANNOT_FAULT: &[Mnemonic] = {
    use Mnemonic::*;
    &[
        Mov, Movzx, Movsx, Movsxd, Lea, Add, Sub, Adc, Sbb, And, Or, Xor, Not, Neg, Inc, Dec, Cmp, Test, Shl, Shr, Sar,
        Rol, Ror, Shld, Shrd, Rorx, Shlx, Shrx, Sarx, Andn, Imul, Bswap, Bt, Cdq, Cqo, Cdqe, Cwde, Nop, Jmp, Ja, Jae,
        Jb, Jbe, Je, Jne, Jg, Jge, Jl, Jle, Js, Jns, Jo, Jno, Jp, Jnp, Cmova, Cmovae, Cmovb, Cmovbe, Cmove, Cmovne,
        Cmovg, Cmovge, Cmovl, Cmovle, Cmovs, Cmovns, Sete, Setne, Seta, Setae, Setb, Setbe, Setg, Setge, Setl, Setle,
        Sets, Setns, Movd, Movq, Movdqa, Movdqu, Movaps, Movups, Movapd, Pxor, Por, Pand, Pandn, Xorps, Andps, Orps,
        Paddb, Paddw, Paddd, Paddq, Psubb, Psubw, Psubd, Psubq, Psllw, Pslld, Psllq, Psrlw, Psrld, Psrlq, Psraw, Psrad,
        Pslldq, Psrldq, Pshufd, Punpcklbw, Punpcklwd, Punpckldq, Punpcklqdq, Punpckhbw, Punpckhwd, Punpckhdq,
        Punpckhqdq, Pcmpeqb, Pcmpeqw, Pcmpeqd, Pmovmskb, Packuswb,
    ]
};
