//! The x87 FPU with true 80-bit extended precision (soft-float, rustc_apfloat's x87 format):
//! the family table and the working state an instruction runs on. Runs over concrete state
//! (compiled code reaches it through the slow helper). The sub-families: `state` (register
//! stack, tags, status and control words, rounding), `load_store`, `arith`, `compare`,
//! `trans` (transcendentals) and `control`.

mod arith;
mod compare;
mod control;
mod load_store;
mod state;
mod trans;

pub use state::{full_tag_word, status_word};

use super::table::{row, Family};
use crate::cpu::Cpu;
use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use Mnemonic::*;

// Status word bits.
const IE: u16 = 1;
const DE: u16 = 2;
const ZE: u16 = 4;
const SF: u16 = 1 << 6;
const C0: u16 = 1 << 8;
const C1: u16 = 1 << 9;
const C2: u16 = 1 << 10;
const C3: u16 = 1 << 14;

/// The working state of one x87 instruction: the CPU and what its operand reads found.
pub struct Fpu<'a> {
    cpu: &'a mut Cpu,
    /// The instruction read an empty register (stack underflow): with the invalid-operation
    /// exception masked, what it writes is the indefinite value.
    underflow: bool,
    /// A register operand read was a denormal or pseudo-denormal (exponent field 0).
    saw_denormal: bool,
}

/// Whether an instruction starts by clearing C1 (most do; it then reports a stack fault's
/// direction or a rounding up).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum C1Start {
    Cleared,
    Kept,
}

/// A row's handler: what it runs and how the status word's C1 starts.
#[derive(Clone, Copy)]
pub struct Handler {
    run: fn(&mut Fpu, &Instruction),
    c1: C1Start,
}

const fn clears_c1(run: fn(&mut Fpu, &Instruction)) -> Handler {
    Handler {
        run,
        c1: C1Start::Cleared,
    }
}

const fn keeps_c1(run: fn(&mut Fpu, &Instruction)) -> Handler {
    Handler { run, c1: C1Start::Kept }
}

pub static FAMILY: Family<Handler> = Family::new(
    "x87",
    &[
        row(&[Fld], clears_c1(load_store::fld)),
        row(&[Fild], clears_c1(load_store::fild)),
        row(&[Fstpnce], clears_c1(load_store::fstpnce)),
        row(&[Fst, Fstp], clears_c1(load_store::fst)),
        row(&[Fist, Fistp, Fisttp], clears_c1(load_store::fist)),
        row(&[Fxch], clears_c1(load_store::fxch)),
        row(
            &[Fld1, Fldz, Fldpi, Fldl2e, Fldl2t, Fldlg2, Fldln2],
            clears_c1(load_store::fld_constant),
        ),
        row(&[Fbld], clears_c1(load_store::fbld)),
        row(&[Fbstp], clears_c1(load_store::fbstp)),
        row(
            &[Fcmovb, Fcmove, Fcmovbe, Fcmovu, Fcmovnb, Fcmovne, Fcmovnbe, Fcmovnu],
            clears_c1(load_store::fcmov),
        ),
        row(
            &[
                Fadd, Faddp, Fiadd, Fsub, Fsubp, Fisub, Fsubr, Fsubrp, Fisubr, Fmul, Fmulp, Fimul, Fdiv, Fdivp, Fidiv,
                Fdivr, Fdivrp, Fidivr,
            ],
            clears_c1(arith::arithmetic),
        ),
        row(&[Fchs, Fabs], clears_c1(arith::sign)),
        row(&[Frndint], clears_c1(arith::frndint)),
        row(&[Fsqrt], clears_c1(arith::fsqrt)),
        row(&[Fscale], clears_c1(arith::fscale)),
        row(&[Fprem, Fprem1], clears_c1(arith::fprem)),
        row(&[Fxtract], clears_c1(arith::fxtract)),
        row(
            &[Fcom, Fcomp, Fcompp, Fucom, Fucomp, Fucompp, Ftst, Ficom, Ficomp],
            clears_c1(compare::fcom),
        ),
        row(&[Fcomi, Fcomip, Fucomi, Fucomip], keeps_c1(compare::fcomi)),
        row(&[Fxam], clears_c1(compare::fxam)),
        row(&[Fsin, Fcos, Fsincos, Fptan], clears_c1(trans::trigonometric)),
        row(&[F2xm1], clears_c1(trans::f2xm1)),
        row(&[Fpatan, Fyl2x, Fyl2xp1], clears_c1(trans::two_operand)),
        row(&[Ffree, Ffreep], clears_c1(control::ffree)),
        row(&[Fincstp], clears_c1(control::fincstp)),
        row(&[Fdecstp], clears_c1(control::fdecstp)),
        row(&[Fnop, Fneni, Fndisi, Fnsetpm], keeps_c1(control::no_operation)),
    ],
);

pub fn supported(ins: &Instruction) -> bool {
    FAMILY.has(ins.mnemonic())
}

pub fn exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let Some(row) = FAMILY.row(ins.mnemonic()) else {
        unreachable!("x87::exec of {:?}", ins.mnemonic())
    };
    let mut f = Fpu {
        cpu,
        underflow: false,
        saw_denormal: false,
    };
    if row.handler.c1 == C1Start::Cleared {
        f.cpu.fpu_sw &= !C1;
    }
    (row.handler.run)(&mut f, ins);
    Ok(())
}

/// Whether the instruction has a memory operand.
fn has_memory(ins: &Instruction) -> bool {
    (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Memory)
}

/// The stack register index of operand `n` (st(i) -> i).
fn sti(ins: &Instruction, n: u32) -> usize {
    ins.op_register(n) as usize - Register::ST0 as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_comparisons_into_eflags_and_the_no_operations_keep_c1() {
        let kept: Vec<Mnemonic> = FAMILY
            .rows
            .iter()
            .filter(|r| r.handler.c1 == C1Start::Kept)
            .flat_map(|r| r.mnemonics.iter().copied())
            .collect();
        assert_eq!(kept, vec![Fcomi, Fcomip, Fucomi, Fucomip, Fnop, Fneni, Fndisi, Fnsetpm]);
        assert_eq!(FAMILY.mnemonics().count(), 82);
    }
}
