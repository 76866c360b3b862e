//! The general-purpose instructions written over `Emitter`, as one family table: each row maps
//! mnemonics to an operation kind (`Op`), and `exec` dispatches that kind to its handler in the
//! sub-family modules (moves, ALU, shifts and rotates, multiply, stack, control flow,
//! condition codes).

mod alu;
mod bits;
mod cond;
mod divide;
mod flow;
mod moves;
mod multiply;
mod shifts;
mod stack;

pub use alu::{alu, inc_dec_of};

use super::emitter::Emitter;
use super::insn::Insn;
use super::operand::{gpr, is_imm, op_size};
use super::table::{row, unfuzzed, Family};
use crate::cpu::flags::Flags;
use crate::cpu::FlagKind;
use iced_x86::{Code, Instruction, Mnemonic, OpKind};
use Mnemonic::*;

/// The operation a generic row performs. Handlers are generic over the `Emitter`, so the table
/// stores this kind and `exec` picks the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Nop,
    Mov,
    Movzx,
    Movsx,
    Lea,
    Xchg,
    Bswap,
    /// cbw/cwde/cdqe: sign-extends the accumulator's low `n` bytes into `2n` bytes.
    WidenAccumulator(u8),
    /// cwd/cdq/cqo: fills rdx's low `n` bytes with the sign of the accumulator's.
    SignIntoDx(u8),
    Alu,
    Compare,
    IncDec,
    Neg,
    Not,
    Carry(CarryOp),
    Shift,
    Rotate,
    Multiply,
    Divide,
    BitTest,
    BitCount,
    Push,
    Pop,
    Leave,
    Call,
    Ret,
    Jmp,
    JumpIfCxZero,
    Jcc,
    Setcc,
    Cmovcc,
    Syscall,
}

/// What clc, stc and cmc do to the carry flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CarryOp {
    Clear,
    Set,
    Complement,
}

const BRANCHES: &str = "changes control flow (the fuzzer runs straight-line code)";

pub static FAMILY: Family<Op> = Family::new(
    "generic",
    &[
        row(&[Nop, Endbr64], Op::Nop),
        // Without shadow stacks (CET is not in Kiln's CPUID), rdssp leaves its register as it
        // is, as on CPUs without CET: programs use it to detect a shadow stack.
        row(&[Rdsspd, Rdsspq], Op::Nop),
        row(&[Mov], Op::Mov),
        row(&[Movzx], Op::Movzx),
        row(&[Movsx, Movsxd], Op::Movsx),
        row(&[Lea], Op::Lea),
        row(&[Xchg], Op::Xchg),
        row(&[Bswap], Op::Bswap),
        row(&[Cbw], Op::WidenAccumulator(1)),
        row(&[Cwde], Op::WidenAccumulator(2)),
        row(&[Cdqe], Op::WidenAccumulator(4)),
        row(&[Cwd], Op::SignIntoDx(2)),
        row(&[Cdq], Op::SignIntoDx(4)),
        row(&[Cqo], Op::SignIntoDx(8)),
        row(&[Add, Or, Adc, Sbb, And, Sub, Xor], Op::Alu),
        row(&[Cmp, Test], Op::Compare),
        row(&[Inc, Dec], Op::IncDec),
        row(&[Neg], Op::Neg),
        row(&[Not], Op::Not),
        row(&[Clc], Op::Carry(CarryOp::Clear)),
        row(&[Stc], Op::Carry(CarryOp::Set)),
        row(&[Cmc], Op::Carry(CarryOp::Complement)),
        row(&[Shl, Sal, Shr, Sar], Op::Shift),
        row(&[Rol, Ror], Op::Rotate),
        row(&[Mul, Imul], Op::Multiply),
        row(&[Div, Idiv], Op::Divide),
        row(&[Bt, Bts, Btr, Btc], Op::BitTest),
        row(&[Bsf, Bsr, Tzcnt, Lzcnt, Popcnt], Op::BitCount),
        row(&[Push], Op::Push),
        row(&[Pop], Op::Pop),
        row(&[Leave], Op::Leave),
        unfuzzed(&[Call], Op::Call, BRANCHES),
        unfuzzed(&[Ret], Op::Ret, BRANCHES),
        unfuzzed(&[Jmp], Op::Jmp, BRANCHES),
        unfuzzed(&[Jrcxz, Jecxz], Op::JumpIfCxZero, BRANCHES),
        unfuzzed(
            &[Ja, Jae, Jb, Jbe, Je, Jne, Jg, Jge, Jl, Jle, Jo, Jno, Jp, Jnp, Js, Jns],
            Op::Jcc,
            BRANCHES,
        ),
        row(
            &[
                Seta, Setae, Setb, Setbe, Sete, Setne, Setg, Setge, Setl, Setle, Seto, Setno, Setp, Setnp, Sets, Setns,
            ],
            Op::Setcc,
        ),
        row(
            &[
                Cmova, Cmovae, Cmovb, Cmovbe, Cmove, Cmovne, Cmovg, Cmovge, Cmovl, Cmovle, Cmovo, Cmovno, Cmovp,
                Cmovnp, Cmovs, Cmovns,
            ],
            Op::Cmovcc,
        ),
        unfuzzed(&[Syscall], Op::Syscall, "enters the host kernel"),
    ],
);

/// Whether the generic family implements the instruction: a row for its mnemonic, operands
/// that are general registers, memory, immediates or near branches, and none of the forms left
/// to other routes (16-bit push/pop, a leave that is not leaveq).
pub fn supported(ins: &Instruction) -> bool {
    FAMILY.has(ins.mnemonic()) && operands_supported(ins) && !form_excluded(ins)
}

fn operands_supported(ins: &Instruction) -> bool {
    (0..ins.op_count()).all(|i| match ins.op_kind(i) {
        OpKind::Register => gpr(ins.op_register(i)).is_some(),
        OpKind::Memory | OpKind::NearBranch64 => true,
        k => is_imm(k),
    })
}

fn form_excluded(ins: &Instruction) -> bool {
    let short_stack_op = matches!(ins.mnemonic(), Push | Pop) && ins.op_count() == 1 && op_size(ins, 0) == 2;
    short_stack_op || (ins.mnemonic() == Leave && ins.code() != Code::Leaveq)
}

/// The operation of an instruction `supported` admitted (the baseline tier keeps it with the
/// instruction).
pub fn op(ins: &Instruction) -> Op {
    op_of(ins.mnemonic())
}

fn op_of(m: Mnemonic) -> Op {
    match FAMILY.row(m) {
        Some(r) => r.handler,
        None => unreachable!("generic::supported admitted {m:?}"),
    }
}

/// Executes (or emits) one instruction whose operation is `op`.
#[inline(always)]
pub fn exec_op<E: Emitter, I: Insn>(e: &mut E, ins: &I, op: Op) {
    match op {
        Op::Nop => {}
        Op::Mov => moves::mov(e, ins),
        Op::Movzx => moves::movzx(e, ins),
        Op::Movsx => moves::movsx(e, ins),
        Op::Lea => moves::lea(e, ins),
        Op::Xchg => moves::xchg(e, ins),
        Op::Bswap => moves::bswap(e, ins),
        Op::WidenAccumulator(n) => moves::widen_accumulator(e, n),
        Op::SignIntoDx(n) => moves::sign_into_dx(e, n),
        Op::Alu => alu::binary(e, ins),
        Op::Compare => alu::compare(e, ins),
        Op::IncDec => alu::inc_dec(e, ins),
        Op::Neg => alu::neg(e, ins),
        Op::Not => alu::not(e, ins),
        Op::Carry(c) => alu::carry(e, c),
        Op::Shift => shifts::shift(e, ins),
        Op::Rotate => shifts::rotate(e, ins),
        Op::Multiply => multiply::multiply(e, ins),
        Op::Divide => divide::divide(e, ins),
        Op::BitTest => bits::bit_test(e, ins),
        Op::BitCount => bits::bit_count(e, ins),
        Op::Push => stack::push_op(e, ins),
        Op::Pop => stack::pop_op(e, ins),
        Op::Leave => stack::leave(e),
        Op::Call => flow::call(e, ins),
        Op::Ret => flow::ret(e, ins),
        Op::Jmp => flow::jmp(e, ins),
        Op::JumpIfCxZero => flow::jump_if_cx_zero(e, ins),
        Op::Jcc => cond::jcc(e, ins),
        Op::Setcc => cond::setcc(e, ins),
        Op::Cmovcc => cond::cmovcc(e, ins),
        Op::Syscall => e.syscall(ins.next_ip()),
    }
}

/// Records the flag-writing operation of an instruction.
#[inline(always)]
fn set_flags<E: Emitter>(e: &mut E, kind: FlagKind, size: u8, res: E::V, a: E::V, b: E::V, aux: E::V) {
    e.set_flags(Flags {
        kind,
        size,
        res,
        a,
        b,
        aux,
    });
}

/// The current RFLAGS bits, for an instruction that changes those in `changed` and keeps the
/// others: zero where none of the others may be read later (they are dead, whatever they
/// hold), which spares reading flags the unit has not computed itself.
#[inline(always)]
fn kept_flags<E: Emitter>(e: &mut E, changed: u64) -> E::V {
    match e.flags_read_later() & crate::cpu::rflags::ARITH & !changed {
        0 => e.imm(0),
        _ => e.rflags(),
    }
}

/// Records flags computed in full (rflags bits), as `FlagKind::Raw`.
#[inline(always)]
fn set_raw_flags<E: Emitter>(e: &mut E, f: E::V) {
    let z = e.imm(0);
    set_flags(e, FlagKind::Raw, 8, f, z, z, z);
}

/// Records flags equal to the current ones except the bits in `changed`, which take the
/// values `bits` computes; nothing where the flags are dead. The current flags are read only
/// where one of those kept may be read later.
#[inline(always)]
fn update_flags<E: Emitter>(e: &mut E, changed: u64, bits: impl FnOnce(&mut E) -> E::V) {
    if !e.flags_needed() {
        return;
    }
    let new = bits(e);
    let f = kept_flags(e, changed);
    let keep = e.imm(!changed);
    let kept = e.bin(crate::cpu::ops::Bin::And, f, keep);
    let r = e.bin(crate::cpu::ops::Bin::Or, kept, new);
    set_raw_flags(e, r);
}
