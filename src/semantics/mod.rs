//! x86-64 semantics, written once over the `Emitter` trait. The baseline tier runs them over
//! concrete values, the JIT over Cranelift values. Instructions whose meaning is clearer over
//! concrete state live in `slow.rs`; both tiers reach them through `Emitter::slow`.

pub mod atomic;
pub mod concrete;
pub mod emitter;
pub mod ext;
pub mod flags;
pub mod fp;
pub mod mmx;
pub mod operand;
pub mod slow;
pub mod sse;
pub mod sse_fp;
pub mod table;
pub mod vector;
pub mod x87;

use crate::cpu::FlagKind;
use emitter::{Bin, Cc, Emitter, Flags, Un};
use flags::{sext, zext};
use iced_x86::{Instruction, Mnemonic, OpKind};
use operand::{ea_no_seg, gpr, op_size, read_op, read_rmw, write_gpr, write_op};

const RSP: usize = 4;
const RBP: usize = 5;

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
        (generic_supported(ins) || slow::supported(ins)).then_some(route::SLOW)
    } else if generic_supported(ins) {
        Some(route::GENERIC)
    } else if sse::generic_supported(ins) {
        Some(route::SSE)
    } else if slow::supported(ins) {
        Some(route::SLOW)
    } else {
        None
    }
}

fn generic_supported(ins: &Instruction) -> bool {
    use Mnemonic::*;
    let ops_ok = (0..ins.op_count()).all(|i| match ins.op_kind(i) {
        OpKind::Register => gpr(ins.op_register(i)).is_some(),
        OpKind::Memory => true,
        OpKind::NearBranch64 => true,
        k => is_imm(k),
    });
    if !ops_ok {
        return false;
    }
    matches!(
        ins.mnemonic(),
        Mov | Movzx
            | Movsx
            | Movsxd
            | Lea
            | Add
            | Or
            | Adc
            | Sbb
            | And
            | Sub
            | Xor
            | Cmp
            | Test
            | Inc
            | Dec
            | Neg
            | Not
            | Push
            | Pop
            | Call
            | Ret
            | Jmp
            | Ja
            | Jae
            | Jb
            | Jbe
            | Je
            | Jne
            | Jg
            | Jge
            | Jl
            | Jle
            | Jo
            | Jno
            | Jp
            | Jnp
            | Js
            | Jns
            | Jrcxz
            | Jecxz
            | Seta
            | Setae
            | Setb
            | Setbe
            | Sete
            | Setne
            | Setg
            | Setge
            | Setl
            | Setle
            | Seto
            | Setno
            | Setp
            | Setnp
            | Sets
            | Setns
            | Cmova
            | Cmovae
            | Cmovb
            | Cmovbe
            | Cmove
            | Cmovne
            | Cmovg
            | Cmovge
            | Cmovl
            | Cmovle
            | Cmovo
            | Cmovno
            | Cmovp
            | Cmovnp
            | Cmovs
            | Cmovns
            | Rol
            | Ror
            | Mul
            | Shl
            | Sal
            | Shr
            | Sar
            | Imul
            | Xchg
            | Leave
            | Nop
            | Endbr64
            | Cbw
            | Cwde
            | Cdqe
            | Cwd
            | Cdq
            | Cqo
            | Syscall
            | Bswap
            | Clc
            | Stc
            | Cmc
    ) && !(matches!(ins.mnemonic(), Push | Pop) && ins.op_count() == 1 && op_size(ins, 0) == 2)
        && !(ins.mnemonic() == Leave && ins.code() != iced_x86::Code::Leaveq)
}

fn is_imm(k: OpKind) -> bool {
    matches!(
        k,
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

/// Executes (or emits) one instruction along the route `classify` gave it. Block-ending
/// instructions call `jump` or `syscall`.
pub fn exec_routed<E: Emitter>(e: &mut E, ins: &Instruction, r: u8) {
    match r & !route::ALIGN16 {
        route::GENERIC => generic(e, ins),
        route::SSE => sse::exec(e, ins),
        _ => e.slow(ins),
    }
}

fn push<E: Emitter>(e: &mut E, v: E::V) {
    let sp = e.get_reg(RSP);
    let eight = e.imm(8);
    let nsp = e.bin(Bin::Sub, sp, eight);
    e.store(nsp, v, 8);
    e.set_reg(RSP, nsp);
}

fn pop<E: Emitter>(e: &mut E) -> E::V {
    let sp = e.get_reg(RSP);
    let v = e.load(sp, 8);
    let eight = e.imm(8);
    let nsp = e.bin(Bin::Add, sp, eight);
    e.set_reg(RSP, nsp);
    v
}

fn cc_of(ins: &Instruction) -> Cc {
    use iced_x86::ConditionCode as C;
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

/// The ALU core of add/sub/and/... on operands already masked to `size`. Returns the result
/// (masked) and records flags.
pub fn alu<E: Emitter>(e: &mut E, m: Mnemonic, size: u8, a: E::V, b: E::V) -> E::V {
    let z = e.imm(0);
    match m {
        Mnemonic::Add => {
            let r = e.bin(Bin::Add, a, b);
            let r = zext(e, r, size);
            set_flags(e, FlagKind::Add, size, r, a, b, z);
            r
        }
        Mnemonic::Sub | Mnemonic::Cmp => {
            let r = e.bin(Bin::Sub, a, b);
            let r = zext(e, r, size);
            set_flags(e, FlagKind::Sub, size, r, a, b, z);
            r
        }
        Mnemonic::Adc => {
            let c = e.cond(Cc::B);
            let t = e.bin(Bin::Add, a, b);
            let r = e.bin(Bin::Add, t, c);
            let r = zext(e, r, size);
            set_flags(e, FlagKind::Adc, size, r, a, b, c);
            r
        }
        Mnemonic::Sbb => {
            let c = e.cond(Cc::B);
            let t = e.bin(Bin::Sub, a, b);
            let r = e.bin(Bin::Sub, t, c);
            let r = zext(e, r, size);
            set_flags(e, FlagKind::Sbb, size, r, a, b, c);
            r
        }
        _ => {
            let op = match m {
                Mnemonic::And | Mnemonic::Test => Bin::And,
                Mnemonic::Or => Bin::Or,
                _ => Bin::Xor,
            };
            let r = e.bin(op, a, b);
            set_flags(e, FlagKind::Logic, size, r, z, z, z);
            r
        }
    }
}

fn shift<E: Emitter>(e: &mut E, ins: &Instruction) {
    let size = op_size(ins, 0);
    let (a, addr) = read_rmw(e, ins, 0, size).expect("checked operand");
    let cmask = if size == 8 { 63 } else { 31 };
    let kind = match ins.mnemonic() {
        Mnemonic::Shr => FlagKind::Shr,
        Mnemonic::Sar => FlagKind::Sar,
        _ => FlagKind::Shl,
    };
    let shifted = |e: &mut E, c: E::V| -> E::V {
        match kind {
            FlagKind::Shl => {
                let r = e.bin(Bin::Shl, a, c);
                zext(e, r, size)
            }
            FlagKind::Shr => e.bin(Bin::Shr, a, c),
            _ => {
                let s = sext(e, a, size);
                let r = e.bin(Bin::Sar, s, c);
                zext(e, r, size)
            }
        }
    };
    let z = e.imm(0);
    if ins.op_count() == 1 || is_imm(ins.op_kind(1)) {
        let c = if ins.op_count() == 1 {
            1
        } else {
            ins.immediate(1) & cmask
        };
        if c == 0 {
            // Nothing shifts, but a 32-bit register destination is still written (zero-extended).
            if size == 4 && ins.op_kind(0) == OpKind::Register {
                write_op(e, ins, 0, size, a, addr);
            }
            return;
        }
        // c is already masked to the operand's count width (at most 63).
        let cv = e.imm(c);
        let r = shifted(e, cv);
        write_op(e, ins, 0, size, r, addr);
        set_flags(e, kind, size, r, a, cv, z);
        return;
    }
    // Count in CL: a zero count leaves the flags untouched.
    let cl = e.get_reg(1);
    let m = e.imm(cmask);
    let c = e.bin(Bin::And, cl, m);
    let r = shifted(e, c);
    write_op(e, ins, 0, size, r, addr);
    if !e.flags_needed() {
        return;
    }
    let old = e.rflags();
    let newf = Flags {
        kind,
        size,
        res: r,
        a,
        b: c,
        aux: z,
    };
    let new = flags::materialize(e, &newf);
    let is0 = e.cmp(emitter::Cmp::Eq, c, z);
    let f = e.select(is0, old, new);
    set_flags(e, FlagKind::Raw, 8, f, z, z, z);
}

fn bit<E: Emitter>(e: &mut E, v: E::V, n: u64) -> E::V {
    let s = e.imm(n);
    let t = e.bin(Bin::Shr, v, s);
    let one = e.imm(1);
    e.bin(Bin::And, t, one)
}

/// rol/ror: only CF and OF change (OF is defined for a count of 1); a zero count changes nothing.
fn rotate<E: Emitter>(e: &mut E, ins: &Instruction) {
    let size = op_size(ins, 0);
    let bits = size as u64 * 8;
    let (a, addr) = read_rmw(e, ins, 0, size).expect("checked operand");
    let cmask = if size == 8 { 63 } else { 31 };
    let (c, fixed) = if ins.op_count() == 1 {
        (e.imm(1), Some(1))
    } else if is_imm(ins.op_kind(1)) {
        let c = ins.immediate(1) & cmask;
        (e.imm(c), Some(c))
    } else {
        let cl = e.get_reg(1);
        let m = e.imm(cmask);
        (e.bin(Bin::And, cl, m), None)
    };
    if fixed == Some(0) {
        // A 32-bit register destination is still written (zero-extended).
        if size == 4 && ins.op_kind(0) == OpKind::Register {
            write_op(e, ins, 0, size, a, addr);
        }
        return;
    }
    let rol = ins.mnemonic() == Mnemonic::Rol;
    let wm = e.imm(bits - 1);
    let amt = e.bin(Bin::And, c, wm);
    let w = e.imm(bits);
    let inv = e.bin(Bin::Sub, w, amt);
    let (first, second) = if rol {
        (Bin::Shl, Bin::Shr)
    } else {
        (Bin::Shr, Bin::Shl)
    };
    let x = e.bin(first, a, amt);
    let y = if bits < 64 || fixed.is_none() || fixed.is_some_and(|f| f & 63 != 0) {
        e.bin(second, a, inv)
    } else {
        a
    };
    let r = e.bin(Bin::Or, x, y);
    let r = zext(e, r, size);
    write_op(e, ins, 0, size, r, addr);
    if !e.flags_needed() {
        return;
    }
    let old = e.rflags();
    let msb = bit(e, r, bits - 1);
    let (cf, of) = if rol {
        let cf = bit(e, r, 0);
        (cf, e.bin(Bin::Xor, msb, cf))
    } else {
        let nxt = bit(e, r, bits - 2);
        (msb, e.bin(Bin::Xor, msb, nxt))
    };
    let keep = e.imm(!(crate::cpu::rflags::CF | crate::cpu::rflags::OF));
    let kept = e.bin(Bin::And, old, keep);
    let eleven = e.imm(11);
    let ofs = e.bin(Bin::Shl, of, eleven);
    let t = e.bin(Bin::Or, kept, cf);
    let mut new = e.bin(Bin::Or, t, ofs);
    if fixed.is_none() {
        let z = e.imm(0);
        let is0 = e.cmp(emitter::Cmp::Eq, c, z);
        new = e.select(is0, old, new);
    }
    let z = e.imm(0);
    set_flags(e, FlagKind::Raw, 8, new, z, z, z);
}

/// One-operand mul/imul: rdx:rax (or ax) = rax * src.
fn widening_mul<E: Emitter>(e: &mut E, ins: &Instruction) {
    let size = op_size(ins, 0);
    let bits = size as u64 * 8;
    let signed = ins.mnemonic() == Mnemonic::Imul;
    let src = read_op(e, ins, 0, size).expect("checked operand");
    let rax = e.get_reg(0);
    let a = zext(e, rax, size);
    let (lo, hi, over) = if size == 8 {
        let lo = e.bin(Bin::Mul, a, src);
        let hi = e.bin(if signed { Bin::SMulHi } else { Bin::UMulHi }, a, src);
        let ext = if signed {
            let s = e.imm(63);
            e.bin(Bin::Sar, lo, s)
        } else {
            e.imm(0)
        };
        let over = e.cmp(emitter::Cmp::Ne, hi, ext);
        (lo, hi, over)
    } else {
        let (x, y) = if signed {
            (sext(e, a, size), sext(e, src, size))
        } else {
            (a, src)
        };
        let full = e.bin(Bin::Mul, x, y);
        let lo = zext(e, full, size);
        let sh = e.imm(bits);
        let h = e.bin(Bin::Shr, full, sh);
        let hi = zext(e, h, size);
        let over = if signed {
            let t = sext(e, lo, size);
            e.cmp(emitter::Cmp::Ne, t, full)
        } else {
            let z = e.imm(0);
            e.cmp(emitter::Cmp::Ne, hi, z)
        };
        (lo, hi, over)
    };
    if size == 1 {
        let s = e.imm(8);
        let h = e.bin(Bin::Shl, hi, s);
        let ax = e.bin(Bin::Or, h, lo);
        write_gpr(
            e,
            operand::Gpr {
                idx: 0,
                size: 2,
                high8: false,
            },
            ax,
        );
    } else {
        write_gpr(
            e,
            operand::Gpr {
                idx: 0,
                size,
                high8: false,
            },
            lo,
        );
        write_gpr(
            e,
            operand::Gpr {
                idx: 2,
                size,
                high8: false,
            },
            hi,
        );
    }
    let z = e.imm(0);
    set_flags(e, FlagKind::Mul, size, lo, z, z, over);
}

fn generic<E: Emitter>(e: &mut E, ins: &Instruction) {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let next = ins.next_ip();
    let z = e.imm(0);
    match m {
        Nop | Endbr64 => {}
        Mov => {
            let size = op_size(ins, 0);
            let v = read_op(e, ins, 1, size).expect("checked operand");
            write_op(e, ins, 0, size, v, None);
        }
        Movzx => {
            let v = read_op(e, ins, 1, op_size(ins, 1)).expect("checked operand");
            write_op(e, ins, 0, op_size(ins, 0), v, None);
        }
        Movsx | Movsxd => {
            let s = op_size(ins, 1);
            let v = read_op(e, ins, 1, s).expect("checked operand");
            let v = sext(e, v, s);
            write_op(e, ins, 0, op_size(ins, 0), v, None);
        }
        Lea => {
            let a = ea_no_seg(e, ins);
            write_op(e, ins, 0, op_size(ins, 0), a, None);
        }
        Add | Or | Adc | Sbb | And | Sub | Xor => {
            let size = op_size(ins, 0);
            let (a, addr) = read_rmw(e, ins, 0, size).expect("checked operand");
            let b = read_op(e, ins, 1, size).expect("checked operand");
            // xor r, r: a dependency-breaking zero idiom.
            let r = alu(e, m, size, a, b);
            write_op(e, ins, 0, size, r, addr);
        }
        Cmp | Test => {
            let size = op_size(ins, 0);
            let a = read_op(e, ins, 0, size).expect("checked operand");
            let b = read_op(e, ins, 1, size).expect("checked operand");
            alu(e, m, size, a, b);
        }
        Inc | Dec => {
            let size = op_size(ins, 0);
            let (a, addr) = read_rmw(e, ins, 0, size).expect("checked operand");
            let c = e.cond(Cc::B);
            let one = e.imm(1);
            let (op, kind) = if m == Inc {
                (Bin::Add, FlagKind::Inc)
            } else {
                (Bin::Sub, FlagKind::Dec)
            };
            let r = e.bin(op, a, one);
            let r = zext(e, r, size);
            write_op(e, ins, 0, size, r, addr);
            set_flags(e, kind, size, r, a, one, c);
        }
        Neg => {
            let size = op_size(ins, 0);
            let (a, addr) = read_rmw(e, ins, 0, size).expect("checked operand");
            let r = alu(e, Sub, size, z, a);
            write_op(e, ins, 0, size, r, addr);
        }
        Not => {
            let size = op_size(ins, 0);
            let (a, addr) = read_rmw(e, ins, 0, size).expect("checked operand");
            let r = e.un(Un::Not, a);
            write_op(e, ins, 0, size, r, addr);
        }
        Push => {
            let v = read_op(e, ins, 0, 8).expect("checked operand");
            push(e, v);
        }
        Pop => {
            let v = pop(e);
            write_op(e, ins, 0, 8, v, None);
        }
        Call => {
            let target = if ins.op_kind(0) == OpKind::NearBranch64 {
                e.code_addr(ins.near_branch_target())
            } else {
                read_op(e, ins, 0, 8).expect("checked operand")
            };
            let ret = e.code_addr(next);
            push(e, ret);
            e.jump(target);
        }
        Ret => {
            let t = pop(e);
            if ins.op_count() == 1 {
                let sp = e.get_reg(RSP);
                let n = e.imm(ins.immediate(0));
                let nsp = e.bin(Bin::Add, sp, n);
                e.set_reg(RSP, nsp);
            }
            e.jump(t);
        }
        Jmp => {
            let target = if ins.op_kind(0) == OpKind::NearBranch64 {
                e.code_addr(ins.near_branch_target())
            } else {
                read_op(e, ins, 0, 8).expect("checked operand")
            };
            e.jump(target);
        }
        Jrcxz | Jecxz => {
            let c = e.get_reg(1);
            let c = if m == Jecxz { zext(e, c, 4) } else { c };
            let is0 = e.cmp(emitter::Cmp::Eq, c, z);
            let t = e.code_addr(ins.near_branch_target());
            let f = e.code_addr(next);
            let r = e.select(is0, t, f);
            e.jump(r);
        }
        _ if ins.condition_code() != iced_x86::ConditionCode::None => {
            let c = e.cond(cc_of(ins));
            match m {
                Seta | Setae | Setb | Setbe | Sete | Setne | Setg | Setge | Setl | Setle | Seto | Setno | Setp
                | Setnp | Sets | Setns => {
                    write_op(e, ins, 0, 1, c, None);
                }
                Cmova | Cmovae | Cmovb | Cmovbe | Cmove | Cmovne | Cmovg | Cmovge | Cmovl | Cmovle | Cmovo | Cmovno
                | Cmovp | Cmovnp | Cmovs | Cmovns => {
                    let size = op_size(ins, 0);
                    let src = read_op(e, ins, 1, size).expect("checked operand");
                    let old = read_op(e, ins, 0, size).expect("checked operand");
                    let v = e.select(c, src, old);
                    // A 32-bit cmov zero-extends its destination even when the move is not taken.
                    write_op(e, ins, 0, size, v, None);
                }
                _ => {
                    let t = e.code_addr(ins.near_branch_target());
                    let f = e.code_addr(next);
                    let r = e.select(c, t, f);
                    e.jump(r);
                }
            }
        }
        Shl | Sal | Shr | Sar => shift(e, ins),
        Rol | Ror => rotate(e, ins),
        Mul | Imul if ins.op_count() == 1 => widening_mul(e, ins),
        Imul => {
            let size = op_size(ins, 0);
            let (a, b) = if ins.op_count() == 3 {
                (
                    read_op(e, ins, 1, size).expect("checked operand"),
                    read_op(e, ins, 2, size).expect("checked operand"),
                )
            } else {
                (
                    read_op(e, ins, 0, size).expect("checked operand"),
                    read_op(e, ins, 1, size).expect("checked operand"),
                )
            };
            let sa = sext(e, a, size);
            let sb = sext(e, b, size);
            let full = e.bin(Bin::Mul, sa, sb);
            let over = if size == 8 {
                let hi = e.bin(Bin::SMulHi, sa, sb);
                let s = e.imm(63);
                let sign = e.bin(Bin::Sar, full, s);
                e.cmp(emitter::Cmp::Ne, hi, sign)
            } else {
                let t = sext(e, full, size);
                e.cmp(emitter::Cmp::Ne, t, full)
            };
            let r = zext(e, full, size);
            write_op(e, ins, 0, size, r, None);
            set_flags(e, FlagKind::Mul, size, r, z, z, over);
        }
        Xchg => {
            let size = op_size(ins, 0);
            let (a, addr0) = read_rmw(e, ins, 0, size).expect("checked operand");
            let (b, addr1) = read_rmw(e, ins, 1, size).expect("checked operand");
            write_op(e, ins, 0, size, b, addr0);
            write_op(e, ins, 1, size, a, addr1);
        }
        Leave => {
            // The load comes first: if it faults, no register has changed.
            let bp = e.get_reg(RBP);
            let v = e.load(bp, 8);
            let eight = e.imm(8);
            let nsp = e.bin(Bin::Add, bp, eight);
            e.set_reg(RSP, nsp);
            e.set_reg(RBP, v);
        }
        Cbw | Cwde | Cdqe => {
            let s = match m {
                Cbw => 1,
                Cwde => 2,
                _ => 4,
            };
            let a = e.get_reg(0);
            let v = sext(e, a, s);
            let g = operand::Gpr {
                idx: 0,
                size: s * 2,
                high8: false,
            };
            write_gpr(e, g, v);
        }
        Cwd | Cdq | Cqo => {
            let s = match m {
                Cwd => 2,
                Cdq => 4,
                _ => 8,
            };
            let a = e.get_reg(0);
            let v = sext(e, a, s);
            let sh = e.imm(63);
            let hi = e.bin(Bin::Sar, v, sh);
            write_gpr(
                e,
                operand::Gpr {
                    idx: 2,
                    size: s,
                    high8: false,
                },
                hi,
            );
        }
        Bswap => {
            let size = op_size(ins, 0);
            let a = read_op(e, ins, 0, size).expect("checked operand");
            let r = e.un(Un::Bswap64, a);
            let r = if size == 4 {
                let s = e.imm(32);
                e.bin(Bin::Shr, r, s)
            } else {
                r
            };
            write_op(e, ins, 0, size, r, None);
        }
        Clc | Stc | Cmc => {
            let f = e.rflags();
            let one = e.imm(1);
            let r = match m {
                Clc => {
                    let m = e.imm(!1u64);
                    e.bin(Bin::And, f, m)
                }
                Stc => e.bin(Bin::Or, f, one),
                _ => e.bin(Bin::Xor, f, one),
            };
            set_flags(e, FlagKind::Raw, 8, r, z, z, z);
        }
        Syscall => e.syscall(next),
        _ => unreachable!("generic_supported admitted {:?}", m),
    }
}
