//! The baseline tier's handlers, chosen once per instruction (`step_fn`). The commonest
//! general-purpose instructions have one function per mnemonic and operand shape, each the
//! same semantics (`semantics::generic::exec_op`) monomorphised over an instruction of that
//! known form (`Shaped`): it neither dispatches on the operation or mnemonic nor tests an
//! operand's kind when it runs. Every other instruction goes through
//! `semantics::exec_handler`.

use super::Step;
use crate::semantics::concrete::Live;
use crate::semantics::generic::{self, exec_op, Op};
use crate::semantics::insn::{shape, At, Form, Shaped};
use crate::semantics::{exec_handler, Handler};
use iced_x86::{Instruction, Mnemonic};
use std::marker::PhantomData;

/// A handler as a step calls it: the live context, the step and its instruction.
pub type StepFn = fn(&mut Live<'_>, &Step, &Instruction);

/// The operand shapes specialised: register, memory, immediate or none (or another kind:
/// a branch target) for each of the first two operands.
const RR: u8 = shape::of(shape::REG, shape::REG);
const RM: u8 = shape::of(shape::REG, shape::MEM);
const RI: u8 = shape::of(shape::REG, shape::IMM);
const MR: u8 = shape::of(shape::MEM, shape::REG);
const MI: u8 = shape::of(shape::MEM, shape::IMM);
const R: u8 = shape::of(shape::REG, shape::OTHER);
const M: u8 = shape::of(shape::MEM, shape::OTHER);
const I: u8 = shape::of(shape::IMM, shape::OTHER);
const N: u8 = shape::of(shape::OTHER, shape::OTHER);

/// The form of an instruction with mnemonic number `MN`, shape `S` and a first operand of
/// `Z` bytes (0: any size).
struct Known<const MN: u16, const S: u8, const Z: u8>;

impl<const MN: u16, const S: u8, const Z: u8> Form for Known<MN, S, Z> {
    const SHAPE: u8 = S;
    const MNEMONIC: Option<Mnemonic> = Some(hot(MN));
    const SIZES: [u8; 2] = [Z, if same_sizes(hot(MN)) { Z } else { 0 }];
}

impl<const MN: u16, const S: u8, const Z: u8> Known<MN, S, Z> {
    const OP: Op = match generic::FAMILY.row(hot(MN)) {
        Some(row) => row.handler,
        None => panic!("a specialised mnemonic outside the generic family"),
    };
}

/// Whether an instruction's first two operands have one size (when it has two).
const fn same_sizes(m: Mnemonic) -> bool {
    !matches!(
        m,
        Mnemonic::Movzx
            | Mnemonic::Movsx
            | Mnemonic::Movsxd
            | Mnemonic::Lea
            | Mnemonic::Shl
            | Mnemonic::Shr
            | Mnemonic::Sar
    )
}

/// The handler of an instruction of form `Known<MN, S, Z>`.
fn run<const MN: u16, const S: u8, const Z: u8>(e: &mut Live<'_>, step: &Step, ins: &Instruction) {
    let at = At {
        compact: &step.compact,
        ins,
    };
    exec_op(e, &Shaped::<Known<MN, S, Z>>(at, PhantomData), Known::<MN, S, Z>::OP);
}

/// The first-operand sizes specialised (then any other).
const SIZES: [u8; 2] = [4, 8];

/// The handler of everything else.
fn run_any(e: &mut Live<'_>, step: &Step, ins: &Instruction) {
    let at = At {
        compact: &step.compact,
        ins,
    };
    exec_handler(e, &at, step.handler);
}

/// The specialised mnemonics, each with its shapes: `HOT` lists them, `specialised` finds
/// the handler of one.
macro_rules! specialised {
    ($($m:ident: $($s:ident)*;)*) => {
        const HOT: &[Mnemonic] = &[$(Mnemonic::$m),*];

        /// The handlers of mnemonic `m` with shape `shape`, by first-operand size
        /// (`SIZES`, then any other).
        fn specialised(m: Mnemonic, shape: u8) -> Option<[StepFn; 3]> {
            match m {
                $(Mnemonic::$m => match shape {
                    $(s if s == $s => Some([
                        run::<{ Mnemonic::$m as u16 }, $s, { SIZES[0] }>,
                        run::<{ Mnemonic::$m as u16 }, $s, { SIZES[1] }>,
                        run::<{ Mnemonic::$m as u16 }, $s, 0>,
                    ]),)*
                    _ => None,
                },)*
                _ => None,
            }
        }
    };
}

specialised! {
    Mov: RR RM RI MR MI;
    Movzx: RR RM;
    Movsx: RR RM;
    Movsxd: RR RM;
    Lea: RM;
    Add: RR RM RI MR MI;
    Sub: RR RM RI MR MI;
    And: RR RM RI MR MI;
    Or: RR RM RI MR MI;
    Xor: RR RM RI MR MI;
    Adc: RR RI;
    Sbb: RR RI;
    Cmp: RR RM RI MR MI;
    Test: RR RI MR MI;
    Inc: R M;
    Dec: R M;
    Neg: R M;
    Not: R M;
    Shl: RI RR MI;
    Shr: RI RR MI;
    Sar: RI RR MI;
    Imul: RR RM;
    Xchg: RR;
    Push: R I M;
    Pop: R M;
    Call: N R M;
    Ret: N I;
    Jmp: N R M;
    Nop: N M;
    Endbr64: N;
    Cdqe: N;
    Cdq: N;
    Cqo: N;
    Jo: N; Jno: N; Jb: N; Jae: N; Je: N; Jne: N; Jbe: N; Ja: N;
    Js: N; Jns: N; Jp: N; Jnp: N; Jl: N; Jge: N; Jle: N; Jg: N;
    Seto: R M; Setno: R M; Setb: R M; Setae: R M; Sete: R M; Setne: R M; Setbe: R M; Seta: R M;
    Sets: R M; Setns: R M; Setp: R M; Setnp: R M; Setl: R M; Setge: R M; Setle: R M; Setg: R M;
    Cmovo: RR RM; Cmovno: RR RM; Cmovb: RR RM; Cmovae: RR RM; Cmove: RR RM; Cmovne: RR RM;
    Cmovbe: RR RM; Cmova: RR RM; Cmovs: RR RM; Cmovns: RR RM; Cmovp: RR RM; Cmovnp: RR RM;
    Cmovl: RR RM; Cmovge: RR RM; Cmovle: RR RM; Cmovg: RR RM;
}

/// The specialised mnemonic numbered `n` (a const generic holds a number, not a mnemonic).
const fn hot(n: u16) -> Mnemonic {
    let mut i = 0;
    while i < HOT.len() {
        if HOT[i] as u16 == n {
            return HOT[i];
        }
        i += 1;
    }
    panic!("not a specialised mnemonic")
}

/// The handler a step runs for an instruction with handler `h`, mnemonic `m`, operand shape
/// `shape` and a first operand of `size` bytes.
pub fn step_fn(h: Handler, m: Mnemonic, shape: u8, size: u8) -> StepFn {
    let by_size = match h {
        Handler::Generic(_) => specialised(m, shape),
        _ => None,
    };
    match by_size {
        Some(f) => f[SIZES.iter().position(|&z| z == size).unwrap_or(SIZES.len())],
        None => run_any,
    }
}
