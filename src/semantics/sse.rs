//! SSE/SSE2 integer and move instructions as two family tables. The common ones are written over
//! `Emitter` (`FAMILY`, route SSE: the JIT lowers them inline); the rest run over concrete state
//! through the slow path (`SLOW_FAMILY`).

use super::concrete::{load, Live};
use super::emitter::{Emitter, VOp, VShift};
use super::operand::{ea, gpr, read_gpr, same_register, write_gpr};
use super::table::{row, Family};
use super::vector::{effective_shift_count, lanes, lanewise, pack, sext, shift_by_count};
use crate::cpu::{fault, Cpu};
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};
use Mnemonic::*;

pub(super) fn xmm_idx(r: Register) -> Option<usize> {
    if r.is_xmm() {
        Some(r as usize - Register::XMM0 as usize)
    } else {
        None
    }
}

fn is_xmm_op(ins: &Instruction, n: u32) -> bool {
    ins.op_kind(n) == OpKind::Register && ins.op_register(n).is_xmm()
}

/// The operation of a row written over `Emitter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VecOp {
    /// A full 16-byte move (aligned, unaligned or non-temporal).
    Move,
    Movnti,
    /// movd/movq: the low `n` bytes, zero-extended into an XMM register or stored.
    MoveLow(u8),
    /// movss/movsd: the low `n` bytes; a register source merges, a memory source zeroes.
    MoveScalar(u8),
    /// movlp*/movhp*: one 8-byte half between memory and an XMM register.
    MoveHalf {
        high: bool,
    },
    Movlhps,
    Movhlps,
    /// pmovmskb/movmskps/movmskpd: the sign bits of lanes of `n` bytes.
    MoveMask(u8),
    /// pshufd/pshuflw/pshufhw.
    ShuffleOne(OneSourceShuffle),
    /// shufps/shufpd: lanes of `n` bytes from the destination, then the source.
    ShuffleTwo(u8),
    /// pslldq/psrldq: a whole-register byte shift by an immediate.
    ByteShift {
        right: bool,
    },
    /// psllw...psrad by an immediate.
    LaneShift(VShift),
    /// punpck*/unpck*: interleaves lanes of `w` bytes from the low or high halves.
    Unpack {
        w: u8,
        high: bool,
    },
    /// Two-operand lane-wise operations.
    Lanewise(VOp),
    /// pshufb: the destination's bytes picked by the source's.
    Swizzle,
    /// palignr: the destination:source pair shifted right by an immediate count of bytes.
    ByteAlign,
    /// pcmpistri and its kin: SSE4.2's string compares (`sse_strings`).
    StringCompare,
}

/// Which lanes the one-source shuffles permute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OneSourceShuffle {
    Dwords,
    LowWords,
    HighWords,
}

const fn lw(op: VOp) -> VecOp {
    VecOp::Lanewise(op)
}

pub static FAMILY: Family<VecOp> = Family::new(
    "sse",
    &[
        row(
            &[
                Movdqa, Movdqu, Movaps, Movups, Movapd, Movupd, Movntdq, Movntps, Movntpd,
            ],
            VecOp::Move,
        ),
        row(&[Movnti], VecOp::Movnti),
        row(&[Movd], VecOp::MoveLow(4)),
        row(&[Movq], VecOp::MoveLow(8)),
        row(&[Movss], VecOp::MoveScalar(4)),
        row(&[Movsd], VecOp::MoveScalar(8)),
        row(&[Movlpd, Movlps], VecOp::MoveHalf { high: false }),
        row(&[Movhpd, Movhps], VecOp::MoveHalf { high: true }),
        row(&[Movlhps], VecOp::Movlhps),
        row(&[Movhlps], VecOp::Movhlps),
        row(&[Pmovmskb], VecOp::MoveMask(1)),
        row(&[Movmskps], VecOp::MoveMask(4)),
        row(&[Movmskpd], VecOp::MoveMask(8)),
        row(&[Pshufd], VecOp::ShuffleOne(OneSourceShuffle::Dwords)),
        row(&[Pshuflw], VecOp::ShuffleOne(OneSourceShuffle::LowWords)),
        row(&[Pshufhw], VecOp::ShuffleOne(OneSourceShuffle::HighWords)),
        row(&[Shufps], VecOp::ShuffleTwo(4)),
        row(&[Shufpd], VecOp::ShuffleTwo(8)),
        row(&[Pslldq], VecOp::ByteShift { right: false }),
        row(&[Psrldq], VecOp::ByteShift { right: true }),
        row(&[Psllw], VecOp::LaneShift(VShift::Shl(2))),
        row(&[Pslld], VecOp::LaneShift(VShift::Shl(4))),
        row(&[Psllq], VecOp::LaneShift(VShift::Shl(8))),
        row(&[Psrlw], VecOp::LaneShift(VShift::Shr(2))),
        row(&[Psrld], VecOp::LaneShift(VShift::Shr(4))),
        row(&[Psrlq], VecOp::LaneShift(VShift::Shr(8))),
        row(&[Psraw], VecOp::LaneShift(VShift::Sar(2))),
        row(&[Psrad], VecOp::LaneShift(VShift::Sar(4))),
        row(&[Punpcklbw], VecOp::Unpack { w: 1, high: false }),
        row(&[Punpcklwd], VecOp::Unpack { w: 2, high: false }),
        row(&[Punpckldq, Unpcklps], VecOp::Unpack { w: 4, high: false }),
        row(&[Punpcklqdq, Unpcklpd], VecOp::Unpack { w: 8, high: false }),
        row(&[Punpckhbw], VecOp::Unpack { w: 1, high: true }),
        row(&[Punpckhwd], VecOp::Unpack { w: 2, high: true }),
        row(&[Punpckhdq, Unpckhps], VecOp::Unpack { w: 4, high: true }),
        row(&[Punpckhqdq, Unpckhpd], VecOp::Unpack { w: 8, high: true }),
        row(&[Pxor, Xorps, Xorpd], lw(VOp::Xor)),
        row(&[Por, Orps, Orpd], lw(VOp::Or)),
        row(&[Pand, Andps, Andpd], lw(VOp::And)),
        row(&[Pandn, Andnps, Andnpd], lw(VOp::AndNot)),
        row(&[Paddb], lw(VOp::Add(1))),
        row(&[Paddw], lw(VOp::Add(2))),
        row(&[Paddd], lw(VOp::Add(4))),
        row(&[Paddq], lw(VOp::Add(8))),
        row(&[Psubb], lw(VOp::Sub(1))),
        row(&[Psubw], lw(VOp::Sub(2))),
        row(&[Psubd], lw(VOp::Sub(4))),
        row(&[Psubq], lw(VOp::Sub(8))),
        row(&[Pcmpeqb], lw(VOp::CmpEq(1))),
        row(&[Pcmpeqw], lw(VOp::CmpEq(2))),
        row(&[Pcmpeqd], lw(VOp::CmpEq(4))),
        row(&[Pcmpgtb], lw(VOp::CmpGt(1))),
        row(&[Pcmpgtw], lw(VOp::CmpGt(2))),
        row(&[Pcmpgtd], lw(VOp::CmpGt(4))),
        row(&[Pminub], lw(VOp::MinU(1))),
        row(&[Pmaxub], lw(VOp::MaxU(1))),
        row(&[Pminsw], lw(VOp::MinS(2))),
        row(&[Pmaxsw], lw(VOp::MaxS(2))),
        row(&[Paddusb], lw(VOp::AddSatU(1))),
        row(&[Paddusw], lw(VOp::AddSatU(2))),
        row(&[Psubusb], lw(VOp::SubSatU(1))),
        row(&[Psubusw], lw(VOp::SubSatU(2))),
        row(&[Paddsb], lw(VOp::AddSatS(1))),
        row(&[Paddsw], lw(VOp::AddSatS(2))),
        row(&[Psubsb], lw(VOp::SubSatS(1))),
        row(&[Psubsw], lw(VOp::SubSatS(2))),
        row(&[Pavgb], lw(VOp::AvgU(1))),
        row(&[Pavgw], lw(VOp::AvgU(2))),
        row(&[Pmullw], lw(VOp::MulLo(2))),
        row(&[Packuswb], lw(VOp::PackUs(2))),
        row(&[Packsswb], lw(VOp::PackSs(2))),
        row(&[Packssdw], lw(VOp::PackSs(4))),
        // SSSE3, SSE4.1, SSE4.2
        row(&[Pshufb], VecOp::Swizzle),
        row(&[Palignr], VecOp::ByteAlign),
        row(
            &[Pcmpistri, Pcmpistrm, Pcmpestri, Pcmpestrm, Pcmpestri64, Pcmpestrm64],
            VecOp::StringCompare,
        ),
        row(&[Pminsb], lw(VOp::MinS(1))),
        row(&[Pminsd], lw(VOp::MinS(4))),
        row(&[Pmaxsb], lw(VOp::MaxS(1))),
        row(&[Pmaxsd], lw(VOp::MaxS(4))),
        row(&[Pminuw], lw(VOp::MinU(2))),
        row(&[Pminud], lw(VOp::MinU(4))),
        row(&[Pmaxuw], lw(VOp::MaxU(2))),
        row(&[Pmaxud], lw(VOp::MaxU(4))),
        row(&[Pmulld], lw(VOp::MulLo(4))),
        row(&[Packusdw], lw(VOp::PackUs(4))),
        row(&[Pcmpeqq], lw(VOp::CmpEq(8))),
        row(&[Pcmpgtq], lw(VOp::CmpGt(8))),
    ],
);

/// Instructions written over `Emitter`: a `FAMILY` row, XMM/general register, memory or imm8
/// operands, lane shifts by an immediate only, and only the SSE2 forms of movsd (not the string
/// instruction).
pub fn generic_supported(ins: &Instruction) -> bool {
    let Some(r) = FAMILY.row(ins.mnemonic()) else {
        return false;
    };
    let ops_ok = (0..ins.op_count()).all(|i| match ins.op_kind(i) {
        OpKind::Register => ins.op_register(i).is_xmm() || gpr(ins.op_register(i)).is_some(),
        OpKind::Memory | OpKind::Immediate8 => true,
        _ => false,
    });
    ops_ok
        && match r.handler {
            VecOp::LaneShift(_) => ins.op_kind(1) == OpKind::Immediate8,
            VecOp::MoveScalar(8) => matches!(ins.code(), Code::Movsd_xmm_xmmm64 | Code::Movsd_xmmm64_xmm),
            _ => true,
        }
}

/// The lane-wise operation of a two-operand integer vector instruction.
pub(super) fn vop_of(m: Mnemonic) -> Option<VOp> {
    match FAMILY.row(m)?.handler {
        VecOp::Lanewise(op) => Some(op),
        _ => None,
    }
}

/// The lane shift of psllw...psrad (whatever the count operand).
pub(super) fn lane_shift(m: Mnemonic) -> Option<VShift> {
    match FAMILY.row(m)?.handler {
        VecOp::LaneShift(op) => Some(op),
        _ => None,
    }
}
/// Reads operand `n` as a vector; memory operands narrower than 16 bytes are zero-extended.
pub(super) fn src<E: Emitter>(e: &mut E, ins: &Instruction, n: u32, bytes: u8) -> E::X {
    match ins.op_kind(n) {
        OpKind::Register => {
            let r = ins.op_register(n);
            match xmm_idx(r) {
                Some(x) => e.get_xmm(x),
                None => {
                    let g = gpr(r).expect("checked operand");
                    let v = read_gpr(e, g);
                    let z = e.imm(0);
                    e.x_from_halves(v, z)
                }
            }
        }
        _ => {
            let a = ea(e, ins);
            if bytes == 16 {
                e.load_x(a)
            } else {
                let v = e.load(a, bytes);
                let z = e.imm(0);
                e.x_from_halves(v, z)
            }
        }
    }
}

fn dst_xmm(ins: &Instruction) -> Option<usize> {
    if ins.op_kind(0) == OpKind::Register {
        xmm_idx(ins.op_register(0))
    } else {
        None
    }
}

/// Byte indices for an unpack of lanes of `w` bytes from the low or high half.
fn unpack_idx(w: u8, high: bool) -> [u8; 16] {
    let mut idx = [0u8; 16];
    let n = 16 / w as usize;
    let off = if high { 8 } else { 0 };
    for i in 0..n / 2 {
        for k in 0..w as usize {
            idx[2 * i * w as usize + k] = (off + i * w as usize + k) as u8;
            idx[(2 * i + 1) * w as usize + k] = (16 + off + i * w as usize + k) as u8;
        }
    }
    idx
}

/// Byte indices selecting lanes of `w` bytes: `sel[i]` is the source lane of result lane i.
fn lane_idx(w: u8, sel: &[u8]) -> [u8; 16] {
    let mut idx = [0u8; 16];
    for (i, &s) in sel.iter().enumerate() {
        for k in 0..w as usize {
            idx[i * w as usize + k] = s * w + k as u8;
        }
    }
    idx
}

/// Executes (or emits) one instruction `generic_supported` admitted.
pub fn exec<E: Emitter>(e: &mut E, ins: &Instruction) {
    let op = match FAMILY.row(ins.mnemonic()) {
        Some(r) => r.handler,
        None => unreachable!("sse::generic_supported admitted {:?}", ins.mnemonic()),
    };
    match op {
        VecOp::Move => {
            let v = src(e, ins, 1, 16);
            store_to_dst(e, ins, v);
        }
        VecOp::Movnti => movnti(e, ins),
        VecOp::MoveLow(n) => move_low(e, ins, n),
        VecOp::MoveScalar(n) => move_scalar(e, ins, n),
        VecOp::MoveHalf { high } => move_half(e, ins, high),
        VecOp::Movlhps | VecOp::Movhlps => cross_halves(e, ins, op == VecOp::Movlhps),
        VecOp::MoveMask(lane) => {
            let s = e.get_xmm(xmm_idx(ins.op_register(1)).expect("xmm source"));
            let r = e.vmovmsk(s, lane);
            write_gpr(e, gpr(ins.op_register(0)).expect("gpr destination"), r);
        }
        VecOp::ShuffleOne(kind) => shuffle_one(e, ins, kind),
        VecOp::ShuffleTwo(w) => shuffle_two(e, ins, w),
        VecOp::ByteShift { right } => byte_shift(e, ins, right),
        VecOp::LaneShift(s) => {
            let x = dst_xmm(ins).expect("xmm destination");
            let v = e.get_xmm(x);
            let r = match effective_shift_count(s, ins.immediate(1)) {
                Some(c) => e.vshift(s, v, c),
                None => zero_x(e),
            };
            e.set_xmm(x, r);
        }
        VecOp::Unpack { w, high } => two_source(e, ins, |e, a, b| e.vshuffle(a, b, unpack_idx(w, high))),
        VecOp::Lanewise(VOp::Xor) if same_register(ins) => {
            // pxor/xorps/xorpd x, x: a zero idiom; the register is not read.
            let x = dst_xmm(ins).expect("xmm destination");
            let r = zero_x(e);
            e.set_xmm(x, r);
        }
        VecOp::Lanewise(op) => two_source(e, ins, |e, a, b| e.vop(op, a, b)),
        VecOp::Swizzle => two_source(e, ins, |e, a, b| e.vswizzle(a, b)),
        VecOp::ByteAlign => {
            let n = ins.immediate(2);
            two_source(e, ins, |e, a, b| byte_align(e, a, b, n))
        }
        VecOp::StringCompare => super::sse_strings::exec(e, ins),
    }
}

/// palignr: bytes `n`.. of the 32-byte pair `a:b` (`b` the low half), zero beyond it.
fn byte_align<E: Emitter>(e: &mut E, a: E::X, b: E::X, n: u64) -> E::X {
    let zero = zero_x(e);
    let (lo, hi, n) = match n {
        0..16 => (b, a, n as u8),
        16..32 => (a, zero, n as u8 - 16),
        _ => return zero,
    };
    e.vshuffle(lo, hi, std::array::from_fn(|i| i as u8 + n))
}

/// A vector of zero bits.
pub(super) fn zero_x<E: Emitter>(e: &mut E) -> E::X {
    let z = e.imm(0);
    e.x_from_halves(z, z)
}

/// Writes a vector to operand 0: an XMM register or 16 bytes of memory.
fn store_to_dst<E: Emitter>(e: &mut E, ins: &Instruction, v: E::X) {
    match dst_xmm(ins) {
        Some(x) => e.set_xmm(x, v),
        None => {
            let a = ea(e, ins);
            e.store_x(a, v)
        }
    }
}

/// dst = f(dst, src) for an XMM destination and a 16-byte source.
fn two_source<E: Emitter>(e: &mut E, ins: &Instruction, f: impl FnOnce(&mut E, E::X, E::X) -> E::X) {
    let x = dst_xmm(ins).expect("xmm destination");
    let b = src(e, ins, 1, 16);
    let a = e.get_xmm(x);
    let r = f(e, a, b);
    e.set_xmm(x, r);
}

fn movnti<E: Emitter>(e: &mut E, ins: &Instruction) {
    let size = ins.memory_size().size() as u8;
    let g = gpr(ins.op_register(1)).expect("checked operand");
    let v = read_gpr(e, g);
    let a = ea(e, ins);
    e.store(a, v, size);
}

/// movd/movq (`sz` bytes).
fn move_low<E: Emitter>(e: &mut E, ins: &Instruction, sz: u8) {
    let v = src(e, ins, 1, sz);
    let lo = e.x_half(v, false);
    let lo = crate::cpu::flags::zext(e, lo, sz);
    match (ins.op_kind(0), dst_xmm(ins)) {
        (OpKind::Register, Some(x)) => {
            let z = e.imm(0);
            let r = e.x_from_halves(lo, z);
            e.set_xmm(x, r);
        }
        (OpKind::Register, None) => {
            let g = gpr(ins.op_register(0)).expect("checked operand");
            write_gpr(e, g, lo);
        }
        _ => {
            let a = ea(e, ins);
            e.store(a, lo, sz);
        }
    }
}

/// movss/movsd (`sz` bytes).
fn move_scalar<E: Emitter>(e: &mut E, ins: &Instruction, sz: u8) {
    let d = dst_xmm(ins);
    match (ins.op_kind(0), ins.op_kind(1)) {
        (OpKind::Register, OpKind::Memory) => {
            let v = src(e, ins, 1, sz);
            e.set_xmm(d.expect("xmm destination"), v);
        }
        (OpKind::Register, _) => {
            let x = d.expect("xmm destination");
            let s = src(e, ins, 1, 16);
            let old = e.get_xmm(x);
            let r = if sz == 8 {
                e.vshuffle(s, old, lane_idx(8, &[0, 3]))
            } else {
                e.vshuffle(s, old, lane_idx(4, &[0, 5, 6, 7]))
            };
            e.set_xmm(x, r);
        }
        _ => {
            let s = src(e, ins, 1, 16);
            let lo = e.x_half(s, false);
            let a = ea(e, ins);
            e.store(a, lo, sz);
        }
    }
}

/// movlpd/movlps/movhpd/movhps.
fn move_half<E: Emitter>(e: &mut E, ins: &Instruction, high: bool) {
    match dst_xmm(ins) {
        Some(x) => {
            let a = ea(e, ins);
            let v = e.load(a, 8);
            let old = e.get_xmm(x);
            let keep = e.x_half(old, !high);
            let r = if high {
                e.x_from_halves(keep, v)
            } else {
                e.x_from_halves(v, keep)
            };
            e.set_xmm(x, r);
        }
        None => {
            let s = xmm_idx(ins.op_register(1)).expect("xmm source");
            let sv = e.get_xmm(s);
            let v = e.x_half(sv, high);
            let a = ea(e, ins);
            e.store(a, v, 8);
        }
    }
}

/// movlhps (`low_to_high`) and movhlps.
fn cross_halves<E: Emitter>(e: &mut E, ins: &Instruction, low_to_high: bool) {
    let x = dst_xmm(ins).expect("xmm destination");
    let s = e.get_xmm(xmm_idx(ins.op_register(1)).expect("xmm source"));
    let old = e.get_xmm(x);
    let r = if low_to_high {
        e.vshuffle(old, s, lane_idx(8, &[0, 2]))
    } else {
        e.vshuffle(s, old, lane_idx(8, &[1, 3]))
    };
    e.set_xmm(x, r);
}

/// pshufd/pshuflw/pshufhw.
fn shuffle_one<E: Emitter>(e: &mut E, ins: &Instruction, kind: OneSourceShuffle) {
    let x = dst_xmm(ins).expect("xmm destination");
    let v = src(e, ins, 1, 16);
    let imm = ins.immediate(2) as u8;
    let f = |i: u8| (imm >> (2 * i)) & 3;
    let idx = match kind {
        OneSourceShuffle::Dwords => lane_idx(4, &[f(0), f(1), f(2), f(3)]),
        OneSourceShuffle::LowWords => lane_idx(2, &[f(0), f(1), f(2), f(3), 4, 5, 6, 7]),
        OneSourceShuffle::HighWords => lane_idx(2, &[0, 1, 2, 3, 4 + f(0), 4 + f(1), 4 + f(2), 4 + f(3)]),
    };
    let r = e.vshuffle(v, v, idx);
    e.set_xmm(x, r);
}

/// shufpd (`w` = 8) and shufps (`w` = 4): the low lanes from the destination, the high ones
/// from the source, chosen by the immediate.
fn shuffle_two<E: Emitter>(e: &mut E, ins: &Instruction, w: u8) {
    let imm = ins.immediate(2) as u8;
    let idx = if w == 8 {
        lane_idx(8, &[imm & 1, 2 + ((imm >> 1) & 1)])
    } else {
        let f = |i: u8| (imm >> (2 * i)) & 3;
        lane_idx(4, &[f(0), f(1), 4 + f(2), 4 + f(3)])
    };
    two_source(e, ins, |e, a, b| e.vshuffle(a, b, idx));
}

/// pslldq/psrldq: bytes shifted in are zero.
fn byte_shift<E: Emitter>(e: &mut E, ins: &Instruction, right: bool) {
    let x = dst_xmm(ins).expect("xmm destination");
    let n = ins.immediate(1).min(16) as u8;
    let v = e.get_xmm(x);
    let zero = zero_x(e);
    let mut idx = [16u8; 16];
    for (i, slot) in idx.iter_mut().enumerate() {
        let i = i as u8;
        if right {
            if i + n < 16 {
                *slot = i + n;
            }
        } else if i >= n {
            *slot = i - n;
        }
    }
    let r = e.vshuffle(v, zero, idx);
    e.set_xmm(x, r);
}
pub(super) fn get(cpu: &Cpu, i: usize) -> u128 {
    cpu.xmm[i][0] as u128 | (cpu.xmm[i][1] as u128) << 64
}

pub(super) fn set(cpu: &mut Cpu, i: usize, v: u128) {
    cpu.xmm[i] = [v as u64, (v >> 64) as u64];
}

/// Operand `n` over concrete state: an XMM register, a general register or `bytes` of memory
/// (zero-extended).
pub(super) fn src_concrete(cpu: &mut Cpu, ins: &Instruction, n: u32, bytes: u8) -> Option<u128> {
    if is_xmm_op(ins, n) {
        return Some(get(cpu, xmm_idx(ins.op_register(n))?));
    }
    match ins.op_kind(n) {
        OpKind::Register => Some(read_gpr(&mut Live::new(cpu), gpr(ins.op_register(n))?) as u128),
        OpKind::Memory => {
            let a = ea(&mut Live::new(cpu), ins);
            Some(match bytes {
                16 => load(a, 8) as u128 | (load(a.wrapping_add(8), 8) as u128) << 64,
                n => load(a, n) as u128,
            })
        }
        _ => None,
    }
}

/// The operation of a row run over concrete state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowVecOp {
    /// The multiplying lane operations and psadbw (`mul_op`).
    Multiply,
    Pextrw,
    Pinsrw,
    Maskmovdqu,
    /// psllw...psrad with the count in an XMM register or memory (`lane_shift` names the shift).
    LaneShiftByVector,
}

pub static SLOW_FAMILY: Family<SlowVecOp> = Family::new(
    "sse (concrete)",
    &[
        row(&[Pmulhuw, Pmulhw, Pmaddwd, Pmuludq, Psadbw], SlowVecOp::Multiply),
        row(&[Pextrw], SlowVecOp::Pextrw),
        row(&[Pinsrw], SlowVecOp::Pinsrw),
        row(&[Maskmovdqu], SlowVecOp::Maskmovdqu),
        row(
            &[Psllw, Pslld, Psllq, Psrlw, Psrld, Psrlq, Psraw, Psrad],
            SlowVecOp::LaneShiftByVector,
        ),
    ],
);

/// Instructions that run over concrete state (through the slow path in compiled code).
pub fn slow_supported(ins: &Instruction) -> bool {
    match SLOW_FAMILY.row(ins.mnemonic()) {
        Some(r) if r.handler == SlowVecOp::LaneShiftByVector => ins.op_kind(1) != OpKind::Immediate8,
        // pextrw to memory is SSE4.1 (`ext`).
        Some(r) if r.handler == SlowVecOp::Pextrw => ins.op_kind(0) == OpKind::Register,
        Some(_) => true,
        None => false,
    }
}

pub fn slow_exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let op = SLOW_FAMILY.row(ins.mnemonic()).ok_or(fault::UNIMPLEMENTED)?.handler;
    let d = dst_xmm(ins);
    match op {
        SlowVecOp::Maskmovdqu => {
            let v = get(cpu, xmm_idx(ins.op_register(1)).ok_or(fault::UNIMPLEMENTED)?);
            let mask = get(cpu, xmm_idx(ins.op_register(2)).ok_or(fault::UNIMPLEMENTED)?);
            super::mmx::masked_store(cpu, ins, v, mask, 16);
        }
        SlowVecOp::Pextrw => {
            let s = xmm_idx(ins.op_register(1)).ok_or(fault::UNIMPLEMENTED)?;
            let v = (get(cpu, s) >> ((ins.immediate(2) & 7) * 16)) as u64 & 0xffff;
            let g = gpr(ins.op_register(0)).ok_or(fault::UNIMPLEMENTED)?;
            write_gpr(&mut Live::new(cpu), g, v);
        }
        SlowVecOp::Pinsrw => {
            let x = d.ok_or(fault::UNIMPLEMENTED)?;
            let v = src_concrete(cpu, ins, 1, 2).ok_or(fault::UNIMPLEMENTED)? & 0xffff;
            let sh = (ins.immediate(2) & 7) * 16;
            let old = get(cpu, x);
            set(cpu, x, (old & !(0xffffu128 << sh)) | (v << sh));
        }
        SlowVecOp::LaneShiftByVector => {
            let x = d.ok_or(fault::UNIMPLEMENTED)?;
            let s = lane_shift(ins.mnemonic()).ok_or(fault::UNIMPLEMENTED)?;
            // The count is the low 64 bits of the source.
            let count = src_concrete(cpu, ins, 1, 16).ok_or(fault::UNIMPLEMENTED)? as u64;
            let v = get(cpu, x);
            set(cpu, x, shift_by_count(s, v, count));
        }
        SlowVecOp::Multiply => {
            let x = d.ok_or(fault::UNIMPLEMENTED)?;
            let a = get(cpu, x);
            let b = src_concrete(cpu, ins, 1, 16).ok_or(fault::UNIMPLEMENTED)?;
            let r = mul_op(ins.mnemonic(), a, b).ok_or(fault::UNIMPLEMENTED)?;
            set(cpu, x, r);
        }
    }
    Ok(())
}

/// The multiplying lane operations (and psadbw) over two vectors; a 64-bit operand in the low
/// half gives the MMX form's result in the low half.
pub(super) fn mul_op(m: Mnemonic, a: u128, b: u128) -> Option<u128> {
    Some(match m {
        Pmulhuw => lanewise(2, a, b, |x, y| (x * y) >> 16),
        Pmulhw => lanewise(2, a, b, |x, y| ((sext(x, 2) * sext(y, 2)) >> 16) as u64),
        Pmaddwd => {
            let (x, y) = (lanes(a, 2), lanes(b, 2));
            let mut o = [0u64; 16];
            for (i, oi) in o.iter_mut().enumerate().take(4) {
                let s = sext(x[2 * i], 2) * sext(y[2 * i], 2) + sext(x[2 * i + 1], 2) * sext(y[2 * i + 1], 2);
                *oi = s as u64;
            }
            pack(&o, 4)
        }
        Pmuludq => {
            let (x, y) = (lanes(a, 8), lanes(b, 8));
            let lo = (x[0] & 0xffff_ffff) * (y[0] & 0xffff_ffff);
            let hi = (x[1] & 0xffff_ffff) * (y[1] & 0xffff_ffff);
            lo as u128 | (hi as u128) << 64
        }
        Psadbw => {
            let (x, y) = (lanes(a, 1), lanes(b, 1));
            let s0: u64 = (0..8).map(|i| x[i].abs_diff(y[i])).sum();
            let s1: u64 = (8..16).map(|i| x[i].abs_diff(y[i])).sum();
            s0 as u128 | (s1 as u128) << 64
        }
        _ => return None,
    })
}
