//! What lowering can tell of a Cranelift value from the instructions that made it: the
//! constant it is, whether two values compute the same number, an address split into a
//! variable part and a displacement, and the simpler value an operation may take instead of
//! the one it was given (the bits a narrow store keeps, a lane of a vector built from a scalar,
//! bits already known to be zero, a negated comparison). Lowering asks these as it emits, so
//! that the `Emitter`'s generic semantics (which read a sub-register as an extension, a
//! condition as a 0/1 word) cost no more than the instruction they describe.

use cranelift_codegen::ir::condcodes::{CondCode, IntCC};
use cranelift_codegen::ir::{types, DataFlowGraph, InstructionData as D, Opcode, Value, ValueDef};

/// The instruction that defines `v`, when an instruction's first result does.
fn def(dfg: &DataFlowGraph, v: Value) -> Option<D> {
    match dfg.value_def(v) {
        ValueDef::Result(i, 0) => Some(dfg.insts[i]),
        _ => None,
    }
}

/// The constant `v` is, when an `iconst` defines it.
pub(super) fn iconst_value(dfg: &DataFlowGraph, v: Value) -> Option<i64> {
    match def(dfg, v)? {
        D::UnaryImm {
            opcode: Opcode::Iconst,
            imm,
        } => Some(imm.bits()),
        _ => None,
    }
}

/// The value whose low `bits` a store of `bits` bits of `v` may take instead: `v` with the
/// extensions and reductions that leave those bits as they are taken off (`mov [m], eax` read
/// eax as the zero-extended low half of rax, a `mov r32, r32` before every 32-bit store, and a
/// `movzx` before every byte store).
pub(super) fn stored_bits(dfg: &DataFlowGraph, mut v: Value, bits: u32) -> Value {
    while let Some(d) = def(dfg, v) {
        match d {
            D::Unary {
                opcode: Opcode::Uextend | Opcode::Sextend,
                arg,
            } if dfg.value_type(arg).bits() >= bits => v = arg,
            D::Unary {
                opcode: Opcode::Ireduce,
                arg,
            } if dfg.value_type(v).bits() >= bits => v = arg,
            _ => break,
        }
    }
    v
}

/// Whether every bit of the integer `v` from `bits` up is known to be zero: a zero-extending
/// load or extension of no more bits, a comparison's 0 or 1, a mask of no more bits. A zero
/// extension of such a value changes nothing (`movzx eax, byte [m]` read back as al made a
/// second `movzx`).
pub(super) fn zero_above(dfg: &DataFlowGraph, v: Value, bits: u32) -> bool {
    let Some(d) = def(dfg, v) else {
        return false;
    };
    let width = match d {
        D::Load { opcode, .. } => match opcode {
            Opcode::Uload8 => 8,
            Opcode::Uload16 => 16,
            Opcode::Uload32 => 32,
            _ => return false,
        },
        D::Unary {
            opcode: Opcode::Uextend,
            arg,
        } => return dfg.value_type(arg).bits() <= bits || zero_above(dfg, arg, bits),
        D::IntCompare { .. } => 1,
        D::Binary {
            opcode: Opcode::Band,
            args: [a, b],
        } => {
            let mask = iconst_value(dfg, b).or_else(|| iconst_value(dfg, a));
            match mask {
                Some(m) => 64 - (m as u64).leading_zeros(),
                None => return false,
            }
        }
        _ => return false,
    };
    width <= bits
}

/// For `bxor(a, b)` of a condition word (a comparison made a 0/1 word) and 1: the comparison
/// with the opposite condition, made a word, so that a branch or select on it tests the
/// comparison's own flags (`sete; movzx; xor 1; test; cmovne` was emitted for a `cmove`).
pub(super) fn negated_condition(dfg: &DataFlowGraph, a: Value, b: Value) -> Option<(IntCC, Value, Value)> {
    let word = match (iconst_value(dfg, a), iconst_value(dfg, b)) {
        (_, Some(1)) => a,
        (Some(1), _) => b,
        _ => return None,
    };
    let D::Unary {
        opcode: Opcode::Uextend,
        arg,
    } = def(dfg, word)?
    else {
        return None;
    };
    match def(dfg, arg)? {
        D::IntCompare {
            opcode: Opcode::Icmp,
            cond,
            args: [x, y],
        } if dfg.value_type(word) == types::I64 => Some((cond.complement(), x, y)),
        _ => None,
    }
}

/// The i64 that lane `lane` of the 128-bit value `v` was made from, where `v` was built (through
/// bitcasts) by `scalar_to_vector` (lane 0) or `insertlane` into two i64 lanes: a half read back
/// needs no extract (`movq xmm, m64` loaded the quadword, made a vector of it, then took its low
/// half back out to zero the other: three moves between register files for one load).
pub(super) fn i64_lane_source(dfg: &DataFlowGraph, v: Value, lane: u8) -> Option<Value> {
    let two_i64 = dfg.value_type(v) == types::I64X2;
    match def(dfg, v)? {
        D::LoadNoOffset {
            opcode: Opcode::Bitcast,
            arg,
            ..
        } if dfg.value_type(arg).bits() == 128 => i64_lane_source(dfg, arg, lane),
        D::Unary {
            opcode: Opcode::ScalarToVector,
            arg,
        } if two_i64 && lane == 0 => Some(arg),
        D::TernaryImm8 {
            opcode: Opcode::Insertlane,
            args,
            imm,
        } if two_i64 => match imm == lane {
            true => Some(args[1]),
            false => i64_lane_source(dfg, args[0], lane),
        },
        _ => None,
    }
}

/// The integer whose bits the float value `v` is, where `v` was made from one without a
/// change of bits: a bitcast of a scalar (a float operand loaded from memory as an integer),
/// or a lane of a vector built from i64 lanes (`i64_lane_source`). A check of a float's bits
/// then reads that integer, where it moved the loaded number to a vector register and back.
pub(super) fn float_bits_source(dfg: &DataFlowGraph, v: Value) -> Option<Value> {
    let bits = dfg.value_type(v).bits();
    match def(dfg, v)? {
        D::LoadNoOffset {
            opcode: Opcode::Bitcast,
            arg,
            ..
        } if dfg.value_type(arg).is_int() && dfg.value_type(arg).bits() == bits => Some(arg),
        D::BinaryImm8 {
            opcode: Opcode::Extractlane,
            arg,
            imm,
        } if bits == 64 => i64_lane_source(dfg, arg, imm),
        _ => None,
    }
}

/// Whether `a` and `b` compute the same number from the same values: one value, equal
/// constants, or one operation (shifts, extensions, additions either way round) of operands
/// that are, looking `depth` operations deep.
pub(super) fn same_value(dfg: &DataFlowGraph, a: Value, b: Value, depth: u32) -> bool {
    if a == b {
        return true;
    }
    if depth == 0 || dfg.value_type(a) != dfg.value_type(b) {
        return false;
    }
    let (Some(da), Some(db)) = (def(dfg, a), def(dfg, b)) else {
        return false;
    };
    let same = |x: Value, y: Value| same_value(dfg, x, y, depth - 1);
    match (da, db) {
        (D::UnaryImm { opcode: p, imm: x }, D::UnaryImm { opcode: q, imm: y }) => {
            p == Opcode::Iconst && p == q && x.bits() == y.bits()
        }
        (D::Unary { opcode: p, arg: x }, D::Unary { opcode: q, arg: y }) => {
            p == q && matches!(p, Opcode::Uextend | Opcode::Sextend | Opcode::Ireduce) && same(x, y)
        }
        (
            D::Binary {
                opcode: p,
                args: [x0, x1],
            },
            D::Binary {
                opcode: q,
                args: [y0, y1],
            },
        ) if p == q => match p {
            Opcode::Iadd => same(x0, y0) && same(x1, y1) || same(x0, y1) && same(x1, y0),
            Opcode::Ishl | Opcode::Ushr | Opcode::Isub => same(x0, y0) && same(x1, y1),
            _ => false,
        },
        _ => false,
    }
}

/// An address as its variable part and a constant displacement that fits a signed 32-bit
/// number (zero when it has none), looking through additions and subtractions of constants.
pub(super) fn split_displacement(dfg: &DataFlowGraph, addr: Value) -> (Value, i32) {
    let (mut x, mut disp) = (addr, 0i64);
    while let Some((rest, d)) = constant_step(dfg, x) {
        match disp.checked_add(d).filter(|&t| i32::try_from(t).is_ok()) {
            Some(t) => (x, disp) = (rest, t),
            None => break,
        }
    }
    (x, disp as i32)
}

/// `v` as another value plus a constant, where it is computed so: x + c, c + x, or x - c.
pub(super) fn constant_step(dfg: &DataFlowGraph, v: Value) -> Option<(Value, i64)> {
    let constant = |v: Value| iconst_value(dfg, v);
    match def(dfg, v)? {
        D::Binary {
            opcode: Opcode::Iadd,
            args: [a, b],
        } => constant(b).map(|d| (a, d)).or_else(|| constant(a).map(|d| (b, d))),
        D::Binary {
            opcode: Opcode::Isub,
            args: [a, b],
        } => constant(b).and_then(|d| Some((a, d.checked_neg()?))),
        _ => None,
    }
}

/// The least and the greatest number (signed) the i64 `v` may hold, from the instructions
/// that made it, looking `depth` operations deep: constants, zero and sign extensions and
/// narrow loads, masks, shifts by constants, sums, differences and multiples by constants
/// (what an index into an array is made of); any number where it cannot tell.
pub(super) fn signed_range(dfg: &DataFlowGraph, v: Value, depth: u32) -> (i64, i64) {
    let (lo, hi) = range(dfg, v, depth);
    (lo as i64, hi as i64)
}

/// Every i64, as `range` bounds it.
const ANY: (i128, i128) = (i64::MIN as i128, i64::MAX as i128);

/// `signed_range` in a wider type, where sums and shifts of bounds cannot overflow.
fn range(dfg: &DataFlowGraph, v: Value, depth: u32) -> (i128, i128) {
    let Some(d) = def(dfg, v).filter(|_| depth > 0 && dfg.value_type(v) == types::I64) else {
        return ANY;
    };
    let unsigned = |bits: u32| (0, (1i128 << bits) - 1);
    let signed = |bits: u32| (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1);
    let of = |x: Value| range(dfg, x, depth - 1);
    // A result outside the i64 range wrapped: it may be anything.
    let fit = |(lo, hi): (i128, i128)| if lo >= ANY.0 && hi <= ANY.1 { (lo, hi) } else { ANY };
    match d {
        D::UnaryImm {
            opcode: Opcode::Iconst,
            imm,
        } => (i128::from(imm.bits()), i128::from(imm.bits())),
        D::Unary {
            opcode: Opcode::Uextend,
            arg,
        } => unsigned(dfg.value_type(arg).bits()),
        D::Unary {
            opcode: Opcode::Sextend,
            arg,
        } => signed(dfg.value_type(arg).bits()),
        D::Load { opcode, .. } => match opcode {
            Opcode::Uload8 => unsigned(8),
            Opcode::Uload16 => unsigned(16),
            Opcode::Uload32 => unsigned(32),
            Opcode::Sload8 => signed(8),
            Opcode::Sload16 => signed(16),
            Opcode::Sload32 => signed(32),
            _ => ANY,
        },
        D::Binary { opcode, args: [a, b] } => {
            let shift = iconst_value(dfg, b).filter(|k| (0..64).contains(k)).map(|k| k as u32);
            match (opcode, shift) {
                (Opcode::Iadd, _) => {
                    let (x, y) = (of(a), of(b));
                    fit((x.0 + y.0, x.1 + y.1))
                }
                (Opcode::Isub, _) => {
                    let (x, y) = (of(a), of(b));
                    fit((x.0 - y.1, x.1 - y.0))
                }
                // A mask with a bound at or above zero keeps the result between zero and it.
                (Opcode::Band, _) => [of(a), of(b)]
                    .into_iter()
                    .filter(|r| r.0 >= 0)
                    .map(|r| r.1)
                    .min()
                    .map_or(ANY, |hi| (0, hi)),
                (Opcode::Imul, _) => match (iconst_value(dfg, a), iconst_value(dfg, b)) {
                    (_, Some(c)) | (Some(c), _) => {
                        let x = of(if iconst_value(dfg, b).is_some() { a } else { b });
                        let (p, q) = (x.0 * i128::from(c), x.1 * i128::from(c));
                        fit((p.min(q), p.max(q)))
                    }
                    _ => ANY,
                },
                (Opcode::Ishl, Some(k)) => {
                    let x = of(a);
                    fit((x.0 << k, x.1 << k))
                }
                (Opcode::Ushr, Some(k)) if k > 0 => match of(a) {
                    (lo, hi) if lo >= 0 => (lo >> k, hi >> k),
                    _ => (0, i128::from(u64::MAX >> k)),
                },
                (Opcode::Sshr, Some(k)) => {
                    let x = of(a);
                    (x.0 >> k, x.1 >> k)
                }
                _ => ANY,
            }
        }
        _ => ANY,
    }
}

/// The operands of `v`, where an addition computes it.
pub(super) fn sum_operands(dfg: &DataFlowGraph, v: Value) -> Option<[Value; 2]> {
    match def(dfg, v)? {
        D::Binary {
            opcode: Opcode::Iadd,
            args,
        } => Some(args),
        _ => None,
    }
}
