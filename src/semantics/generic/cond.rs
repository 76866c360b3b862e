//! The instructions that read a condition code: jcc, setcc and cmovcc.

use crate::cpu::flags::Cc;
use crate::semantics::emitter::Emitter;
use crate::semantics::insn::Insn;
use crate::semantics::operand::{op_size, read_op, write_op};
use iced_x86::Mnemonic;

/// The condition an instruction tests, by its mnemonic (so that code specialised for one
/// mnemonic knows it).
#[inline(always)]
fn cc_of<I: Insn>(ins: &I) -> Cc {
    use Mnemonic::*;
    match ins.mnemonic() {
        Jo | Seto | Cmovo => Cc::O,
        Jno | Setno | Cmovno => Cc::No,
        Jb | Setb | Cmovb => Cc::B,
        Jae | Setae | Cmovae => Cc::Ae,
        Je | Sete | Cmove => Cc::E,
        Jne | Setne | Cmovne => Cc::Ne,
        Jbe | Setbe | Cmovbe => Cc::Be,
        Ja | Seta | Cmova => Cc::A,
        Js | Sets | Cmovs => Cc::S,
        Jns | Setns | Cmovns => Cc::Ns,
        Jp | Setp | Cmovp => Cc::P,
        Jnp | Setnp | Cmovnp => Cc::Np,
        Jl | Setl | Cmovl => Cc::L,
        Jge | Setge | Cmovge => Cc::Ge,
        Jle | Setle | Cmovle => Cc::Le,
        _ => Cc::G,
    }
}

#[inline(always)]
pub(super) fn jcc<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let c = e.cond(cc_of(ins));
    e.branch(c, ins.near_branch_target(), ins.next_ip());
}

#[inline(always)]
pub(super) fn setcc<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let c = e.cond(cc_of(ins));
    write_op(e, ins, 0, 1, c, None);
}

#[inline(always)]
pub(super) fn cmovcc<E: Emitter, I: Insn>(e: &mut E, ins: &I) {
    let c = e.cond(cc_of(ins));
    let size = op_size(ins, 0);
    let src = read_op(e, ins, 1, size).expect("checked operand");
    let old = read_op(e, ins, 0, size).expect("checked operand");
    let v = e.select(c, src, old);
    // A 32-bit cmov zero-extends its destination even when the move is not taken.
    write_op(e, ins, 0, size, v, None);
}
