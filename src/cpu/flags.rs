//! Lazy flags: the record of what the last flag-writing instruction computed, and the
//! conditions and RFLAGS derived from it on demand. Generic over `Ops`, so both tiers (and
//! the helpers) evaluate flags with this one code; the concrete views at the end read and
//! write the record stored in a live `Cpu`.

use super::ops::{Bin, Cmp, Ops, Un, Values};
use super::Cpu;

/// What the last flag-writing instruction computed; flags are derived from it on demand.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagKind {
    /// `res` holds a materialised RFLAGS value.
    Raw = 0,
    Add = 1,
    Adc = 2,
    Sub = 3,
    Sbb = 4,
    Logic = 5,
    /// inc: like add of 1, with CF taken from `aux`.
    Inc = 6,
    /// dec: like sub of 1, with CF taken from `aux`.
    Dec = 7,
    Shl = 8,
    Shr = 9,
    Sar = 10,
    /// mul/imul: CF = OF = (aux != 0); the rest from `res`.
    Mul = 11,
}

/// The fields of a flag record the context must hold besides `kind`, `size` and `res`: the
/// others may hold anything (compiled code does not store them). The second operand of an add
/// or a subtraction follows from the result and the first (`cpu_flags`), so that a unit keeps
/// neither the store nor the value alive to its exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields {
    pub a: bool,
    pub b: bool,
    pub aux: bool,
}

impl FlagKind {
    /// What `cf`, `zf`, ... and `materialize` read of a record of this kind.
    pub fn fields(self) -> Fields {
        use FlagKind::*;
        let (a, b, aux) = match self {
            Raw | Logic => (false, false, false),
            Mul => (false, false, true),
            Add | Sub => (true, false, false),
            Shl | Shr | Sar => (true, true, false),
            Adc | Sbb | Inc | Dec => (true, true, true),
        };
        Fields { a, b, aux }
    }

    pub fn from_u64(v: u64) -> FlagKind {
        match v {
            1 => FlagKind::Add,
            2 => FlagKind::Adc,
            3 => FlagKind::Sub,
            4 => FlagKind::Sbb,
            5 => FlagKind::Logic,
            6 => FlagKind::Inc,
            7 => FlagKind::Dec,
            8 => FlagKind::Shl,
            9 => FlagKind::Shr,
            10 => FlagKind::Sar,
            11 => FlagKind::Mul,
            _ => FlagKind::Raw,
        }
    }
}

/// x86 condition codes, numbered as in the opcode's low nibble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cc {
    O = 0,
    No = 1,
    B = 2,
    Ae = 3,
    E = 4,
    Ne = 5,
    Be = 6,
    A = 7,
    S = 8,
    Ns = 9,
    P = 10,
    Np = 11,
    L = 12,
    Ge = 13,
    Le = 14,
    G = 15,
}

impl Cc {
    pub fn from_u8(v: u8) -> Cc {
        use Cc::*;
        [O, No, B, Ae, E, Ne, Be, A, S, Ns, P, Np, L, Ge, Le, G][(v & 15) as usize]
    }
}

/// A lazy-flags record with values of the evaluator's kind.
#[derive(Clone, Copy, Debug)]
pub struct Flags<V> {
    pub kind: FlagKind,
    pub size: u8,
    pub res: V,
    pub a: V,
    pub b: V,
    pub aux: V,
}

pub fn size_mask(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size as u32 * 8)) - 1
    }
}

#[inline(always)]
pub fn zext<O: Ops>(o: &mut O, v: O::V, size: u8) -> O::V {
    if size >= 8 {
        return v;
    }
    o.extend(v, size, false)
}

#[inline(always)]
pub fn sext<O: Ops>(o: &mut O, v: O::V, size: u8) -> O::V {
    if size >= 8 {
        return v;
    }
    o.extend(v, size, true)
}

#[inline]
fn bit<O: Ops>(o: &mut O, v: O::V, n: u64) -> O::V {
    let s = o.imm(n);
    let t = o.bin(Bin::Shr, v, s);
    let one = o.imm(1);
    o.bin(Bin::And, t, one)
}

/// The sign bit of the low `size` bytes of `v`, as a comparison: a branch on it (`js`, `jns`,
/// `jl` after a logic result) then tests the value itself, where a shift and a mask of it made
/// the branch test their result, negated by one more instruction.
#[inline]
fn sign<O: Ops>(o: &mut O, v: O::V, size: u8) -> O::V {
    let s = sext(o, v, size);
    let z = o.imm(0);
    o.cmp(Cmp::Slt, s, z)
}

#[inline]
fn not01<O: Ops>(o: &mut O, v: O::V) -> O::V {
    let one = o.imm(1);
    o.bin(Bin::Xor, v, one)
}

#[inline]
pub fn cf<O: Ops>(o: &mut O, f: &Flags<O::V>) -> O::V {
    match f.kind {
        FlagKind::Raw => bit(o, f.res, 0),
        FlagKind::Add => o.cmp(Cmp::Ult, f.res, f.a),
        FlagKind::Adc => {
            let lt = o.cmp(Cmp::Ult, f.res, f.a);
            let le = o.cmp(Cmp::Ule, f.res, f.a);
            o.select(f.aux, le, lt)
        }
        FlagKind::Sub => o.cmp(Cmp::Ult, f.a, f.b),
        FlagKind::Sbb => {
            let lt = o.cmp(Cmp::Ult, f.a, f.b);
            let le = o.cmp(Cmp::Ule, f.a, f.b);
            o.select(f.aux, le, lt)
        }
        FlagKind::Logic => o.imm(0),
        FlagKind::Inc | FlagKind::Dec => f.aux,
        FlagKind::Shl => {
            // Last bit shifted out: bit (width - count) of a.
            let w = o.imm(f.size as u64 * 8);
            let s = o.bin(Bin::Sub, w, f.b);
            let t = o.bin(Bin::Shr, f.a, s);
            let one = o.imm(1);
            let r = o.bin(Bin::And, t, one);
            // Counts above the width shift everything out.
            let big = o.cmp(Cmp::Ult, w, f.b);
            let z = o.imm(0);
            o.select(big, z, r)
        }
        FlagKind::Shr | FlagKind::Sar => {
            let v = if f.kind == FlagKind::Sar {
                sext(o, f.a, f.size)
            } else {
                f.a
            };
            let one = o.imm(1);
            let c1 = o.bin(Bin::Sub, f.b, one);
            let sar = if f.kind == FlagKind::Sar { Bin::Sar } else { Bin::Shr };
            let c63 = o.imm(63);
            let big = o.cmp(Cmp::Ult, c63, c1);
            let c = o.select(big, c63, c1);
            let t = o.bin(sar, v, c);
            o.bin(Bin::And, t, one)
        }
        FlagKind::Mul => {
            let z = o.imm(0);
            o.cmp(Cmp::Ne, f.aux, z)
        }
    }
}

#[inline]
pub fn zf<O: Ops>(o: &mut O, f: &Flags<O::V>) -> O::V {
    if f.kind == FlagKind::Raw {
        return bit(o, f.res, 6);
    }
    let z = o.imm(0);
    o.cmp(Cmp::Eq, f.res, z)
}

#[inline]
pub fn sf<O: Ops>(o: &mut O, f: &Flags<O::V>) -> O::V {
    if f.kind == FlagKind::Raw {
        return bit(o, f.res, 7);
    }
    sign(o, f.res, f.size)
}

#[inline]
pub fn pf<O: Ops>(o: &mut O, f: &Flags<O::V>) -> O::V {
    if f.kind == FlagKind::Raw {
        return bit(o, f.res, 2);
    }
    let ff = o.imm(0xff);
    let low = o.bin(Bin::And, f.res, ff);
    let pc = o.un(Un::Popcnt, low);
    let one = o.imm(1);
    let odd = o.bin(Bin::And, pc, one);
    not01(o, odd)
}

pub fn af<O: Ops>(o: &mut O, f: &Flags<O::V>) -> O::V {
    match f.kind {
        FlagKind::Raw => bit(o, f.res, 4),
        FlagKind::Add | FlagKind::Adc | FlagKind::Sub | FlagKind::Sbb | FlagKind::Inc | FlagKind::Dec => {
            let t = o.bin(Bin::Xor, f.a, f.b);
            let t = o.bin(Bin::Xor, t, f.res);
            bit(o, t, 4)
        }
        _ => o.imm(0),
    }
}

#[inline]
pub fn of<O: Ops>(o: &mut O, f: &Flags<O::V>) -> O::V {
    match f.kind {
        FlagKind::Raw => bit(o, f.res, 11),
        FlagKind::Add | FlagKind::Adc | FlagKind::Inc => {
            let x = o.bin(Bin::Xor, f.a, f.res);
            let y = o.bin(Bin::Xor, f.b, f.res);
            let t = o.bin(Bin::And, x, y);
            sign(o, t, f.size)
        }
        FlagKind::Sub | FlagKind::Sbb | FlagKind::Dec => {
            let x = o.bin(Bin::Xor, f.a, f.b);
            let y = o.bin(Bin::Xor, f.a, f.res);
            let t = o.bin(Bin::And, x, y);
            sign(o, t, f.size)
        }
        FlagKind::Logic | FlagKind::Sar => o.imm(0),
        FlagKind::Shl => {
            let c = cf(o, f);
            let s = sign(o, f.res, f.size);
            o.bin(Bin::Xor, c, s)
        }
        FlagKind::Shr => sign(o, f.a, f.size),
        FlagKind::Mul => {
            let z = o.imm(0);
            o.cmp(Cmp::Ne, f.aux, z)
        }
    }
}

/// The condition `cc` as 0/1, with fast paths for compares and logic results.
#[inline(always)]
pub fn cond<O: Ops>(o: &mut O, f: &Flags<O::V>, cc: Cc) -> O::V {
    let negate = (cc as u8) & 1 == 1;
    let base = Cc::from_u8(cc as u8 & !1);
    let v = match (f.kind, base) {
        // The operands are zero-extended from the operation's size, so their difference
        // is zero exactly when they are equal.
        (FlagKind::Sub, Cc::E) => o.cmp(Cmp::Eq, f.a, f.b),
        (FlagKind::Sub, Cc::B) => o.cmp(Cmp::Ult, f.a, f.b),
        (FlagKind::Sub, Cc::Be) => o.cmp(Cmp::Ule, f.a, f.b),
        (FlagKind::Sub, Cc::L) => {
            let a = sext(o, f.a, f.size);
            let b = sext(o, f.b, f.size);
            o.cmp(Cmp::Slt, a, b)
        }
        (FlagKind::Sub, Cc::Le) => {
            let a = sext(o, f.a, f.size);
            let b = sext(o, f.b, f.size);
            o.cmp(Cmp::Sle, a, b)
        }
        (FlagKind::Logic, Cc::L) => sign(o, f.res, f.size),
        (FlagKind::Logic, Cc::Le) => {
            let s = sign(o, f.res, f.size);
            let z = zf(o, f);
            o.bin(Bin::Or, s, z)
        }
        (_, Cc::O) => of(o, f),
        (_, Cc::B) => cf(o, f),
        (_, Cc::E) => zf(o, f),
        (_, Cc::Be) => {
            let c = cf(o, f);
            let z = zf(o, f);
            o.bin(Bin::Or, c, z)
        }
        (_, Cc::S) => sf(o, f),
        (_, Cc::P) => pf(o, f),
        (_, Cc::L) => {
            let s = sf(o, f);
            let v = of(o, f);
            o.bin(Bin::Xor, s, v)
        }
        (_, _) => {
            // Le
            let s = sf(o, f);
            let v = of(o, f);
            let l = o.bin(Bin::Xor, s, v);
            let z = zf(o, f);
            o.bin(Bin::Or, l, z)
        }
    };
    if negate {
        not01(o, v)
    } else {
        v
    }
}

/// The arithmetic flags as RFLAGS bits (bit 1, always set, included).
pub fn materialize<O: Ops>(o: &mut O, f: &Flags<O::V>) -> O::V {
    if f.kind == FlagKind::Raw {
        let m = o.imm(super::rflags::ARITH);
        let r = o.bin(Bin::And, f.res, m);
        let two = o.imm(2);
        return o.bin(Bin::Or, r, two);
    }
    let parts = [
        (cf(o, f), 0u64),
        (pf(o, f), 2),
        (af(o, f), 4),
        (zf(o, f), 6),
        (sf(o, f), 7),
        (of(o, f), 11),
    ];
    let mut acc = o.imm(2);
    for (v, sh) in parts {
        let s = o.imm(sh);
        let t = o.bin(Bin::Shl, v, s);
        acc = o.bin(Bin::Or, acc, t);
    }
    acc
}

/// The condition `cc` of a record whose kind is known only at run time (the context's, whose
/// `flags_kind` word and result `record` reads), where the result alone decides it: E, NE (ZF)
/// and S, NS (SF), which every kind but `Raw` takes from the zero-extended result and `Raw`
/// from its bits 6 and 7. None for the other conditions (and `record` not called). Compiled
/// code reads the flags a unit did not compute itself this way instead of calling a helper.
pub fn result_cond<O: Ops>(o: &mut O, cc: Cc, record: impl FnOnce(&mut O) -> (O::V, O::V)) -> Option<O::V> {
    let (zf, negated) = match cc {
        Cc::E => (true, false),
        Cc::Ne => (true, true),
        Cc::S => (false, false),
        Cc::Ns => (false, true),
        _ => return None,
    };
    let (kind_word, res) = record(o);
    let kind_mask = o.imm(0xff);
    let kind = o.bin(Bin::And, kind_word, kind_mask);
    let raw_kind = o.imm(FlagKind::Raw as u64);
    let raw = o.cmp(Cmp::Eq, kind, raw_kind);
    let (from_raw, from_result) = if zf {
        let z = o.imm(0);
        (bit(o, res, 6), o.cmp(Cmp::Eq, res, z))
    } else {
        // The sign bit: bit 8 * size - 1 of the result (the word's size times 8 is the word
        // shifted right by 5, as every kind is below 32).
        let size_shift = o.imm(5);
        let bits = o.bin(Bin::Shr, kind_word, size_shift);
        let one = o.imm(1);
        let top = o.bin(Bin::Sub, bits, one);
        let shifted = o.bin(Bin::Shr, res, top);
        (bit(o, res, 7), o.bin(Bin::And, shifted, one))
    };
    let v = o.select(raw, from_raw, from_result);
    Some(if negated { not01(o, v) } else { v })
}

/// A record's kind and operand size as the context's `flags_kind` word holds them.
pub const fn kind_and_size(kind: FlagKind, size: u8) -> u64 {
    kind as u64 | (size as u64) << 8
}

/// The lazy-flags record stored in the CPU, with the fields its kind needs not stored
/// (`FlagKind::fields`) derived: an add's or a subtraction's second operand, from its result
/// and first operand (all three zero-extended from the operation's size).
#[inline]
pub fn cpu_flags(cpu: &Cpu) -> Flags<u64> {
    let kind = FlagKind::from_u64(cpu.flags_kind & 0xff);
    let size = (cpu.flags_kind >> 8) as u8;
    let (res, a) = (cpu.flags_res, cpu.flags_a);
    let b = match kind {
        FlagKind::Add => res.wrapping_sub(a) & size_mask(size),
        FlagKind::Sub => a.wrapping_sub(res) & size_mask(size),
        _ => cpu.flags_b,
    };
    Flags {
        kind,
        size,
        res,
        a,
        b,
        aux: cpu.flags_aux,
    }
}

#[inline]
pub fn store_flags(cpu: &mut Cpu, f: Flags<u64>) {
    cpu.flags_kind = kind_and_size(f.kind, f.size);
    cpu.flags_res = f.res;
    cpu.flags_a = f.a;
    cpu.flags_b = f.b;
    cpu.flags_aux = f.aux;
}

/// Sets the arithmetic flags to raw RFLAGS bits (an instruction that computes them whole:
/// comparisons of floats, sahf, popf, bit tests...).
pub fn store_raw_flags(cpu: &mut Cpu, rflags: u64) {
    store_flags(
        cpu,
        Flags {
            kind: FlagKind::Raw,
            size: 8,
            res: rflags,
            a: 0,
            b: 0,
            aux: 0,
        },
    );
}

/// Whether the condition `cc` holds for the CPU's flags.
#[inline(always)]
pub fn cpu_cond(cpu: &Cpu, cc: Cc) -> bool {
    cond(&mut Values, &cpu_flags(cpu), cc) != 0
}

/// The arithmetic RFLAGS bits of the CPU's flags (bit 1 included, DF not).
pub fn arith_rflags(cpu: &Cpu) -> u64 {
    materialize(&mut Values, &cpu_flags(cpu))
}

/// The full RFLAGS value (arithmetic flags, DF and the reserved bit).
pub fn rflags(cpu: &Cpu) -> u64 {
    arith_rflags(cpu) | (cpu.df << 10)
}

#[cfg(test)]
#[path = "flags_tests.rs"]
mod tests;
