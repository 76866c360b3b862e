//! The instructions that read a condition code: jcc, setcc and cmovcc.

use crate::cpu::flags::Cc;
use crate::semantics::emitter::Emitter;
use crate::semantics::operand::{op_size, read_op, write_op};
use iced_x86::{ConditionCode as C, Instruction};

/// The emitter condition of an instruction's condition code.
fn cc_of(ins: &Instruction) -> Cc {
    match ins.condition_code() {
        C::o => Cc::O,
        C::no => Cc::No,
        C::b => Cc::B,
        C::ae => Cc::Ae,
        C::e => Cc::E,
        C::ne => Cc::Ne,
        C::be => Cc::Be,
        C::a => Cc::A,
        C::s => Cc::S,
        C::ns => Cc::Ns,
        C::p => Cc::P,
        C::np => Cc::Np,
        C::l => Cc::L,
        C::ge => Cc::Ge,
        C::le => Cc::Le,
        _ => Cc::G,
    }
}

pub(super) fn jcc<E: Emitter>(e: &mut E, ins: &Instruction) {
    let c = e.cond(cc_of(ins));
    e.branch(c, ins.near_branch_target(), ins.next_ip());
}

pub(super) fn setcc<E: Emitter>(e: &mut E, ins: &Instruction) {
    let c = e.cond(cc_of(ins));
    write_op(e, ins, 0, 1, c, None);
}

pub(super) fn cmovcc<E: Emitter>(e: &mut E, ins: &Instruction) {
    let c = e.cond(cc_of(ins));
    let size = op_size(ins, 0);
    let src = read_op(e, ins, 1, size).expect("checked operand");
    let old = read_op(e, ins, 0, size).expect("checked operand");
    let v = e.select(c, src, old);
    // A 32-bit cmov zero-extends its destination even when the move is not taken.
    write_op(e, ins, 0, size, v, None);
}
