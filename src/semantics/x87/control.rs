//! Stack and register control with no arithmetic: freeing registers, moving the stack top,
//! and the no-operations. (fldcw, fnstcw, fnstsw, fnstenv, fldenv, fnsave, frstor, fninit and
//! fnclex live with the other state moves in `slow/x87_env.rs`.)

use super::{sti, Fpu};
use iced_x86::{Instruction, Mnemonic};

/// ffree, ffreep: the register is tagged empty.
pub(super) fn ffree(f: &mut Fpu, ins: &Instruction) {
    let p = f.phys(sti(ins, 0));
    f.cpu.fpu_tag |= 3 << (2 * p);
    if ins.mnemonic() == Mnemonic::Ffreep {
        f.pop();
    }
}

pub(super) fn fincstp(f: &mut Fpu, _: &Instruction) {
    f.cpu.fpu_top = (f.cpu.fpu_top + 1) & 7;
}

pub(super) fn fdecstp(f: &mut Fpu, _: &Instruction) {
    f.cpu.fpu_top = (f.cpu.fpu_top + 7) & 7;
}

/// fnop, and fneni, fndisi, fnsetpm: 8087/287 controls the 387 ignores.
pub(super) fn no_operation(_: &mut Fpu, _: &Instruction) {}
