//! Lazy flags checked against the flag definitions: the record an instruction leaves, turned
//! into RFLAGS (`materialize`) and conditions (`cond`), must give what the x86 definition of
//! each flag gives for the same operation computed in wide integers.

use super::*;
use crate::cpu::rflags as bit;

const SIZES: [u8; 4] = [1, 2, 4, 8];

/// The six arithmetic flags as booleans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expected {
    cf: bool,
    pf: bool,
    af: bool,
    zf: bool,
    sf: bool,
    of: bool,
}

impl Expected {
    /// ZF, SF and PF from a result; CF, AF and OF given.
    fn of_result(size: u8, res: u64, cf: bool, af: bool, of: bool) -> Expected {
        Expected {
            cf,
            pf: (res as u8).count_ones().is_multiple_of(2),
            af,
            zf: res == 0,
            sf: res >> (size as u32 * 8 - 1) & 1 == 1,
            of,
        }
    }

    fn from_rflags(r: u64) -> Expected {
        Expected {
            cf: r & bit::CF != 0,
            pf: r & bit::PF != 0,
            af: r & bit::AF != 0,
            zf: r & bit::ZF != 0,
            sf: r & bit::SF != 0,
            of: r & bit::OF != 0,
        }
    }

    /// RFLAGS with the reserved bit 1 set, as `materialize` gives it.
    fn rflags(&self) -> u64 {
        let bits = [
            (self.cf, bit::CF),
            (self.pf, bit::PF),
            (self.af, bit::AF),
            (self.zf, bit::ZF),
            (self.sf, bit::SF),
            (self.of, bit::OF),
        ];
        bits.iter().filter(|(set, _)| *set).fold(2, |acc, (_, b)| acc | b)
    }

    /// The condition `cc` as the manuals define it over the flags.
    fn holds(&self, cc: Cc) -> bool {
        let lt = self.sf != self.of;
        let base = match cc as u8 >> 1 {
            0 => self.of,
            1 => self.cf,
            2 => self.zf,
            3 => self.cf || self.zf,
            4 => self.sf,
            5 => self.pf,
            6 => lt,
            _ => self.zf || lt,
        };
        base ^ (cc as u8 & 1 == 1)
    }
}

fn all_cc() -> impl Iterator<Item = Cc> {
    (0..16).map(Cc::from_u8)
}

/// `v` (of `size` bytes) as a signed number.
fn signed(v: u64, size: u8) -> i128 {
    let sh = 64 - size as u32 * 8;
    ((v << sh) as i64 >> sh) as i128
}

/// Operands for `size`: the edges of the unsigned and signed ranges and of the low nibble,
/// plus a spread of pseudo-random values.
fn operands(size: u8) -> Vec<u64> {
    let mask = size_mask(size);
    let mut v = vec![0, 1, 2, 0xf, 0x10, mask >> 1, (mask >> 1) + 1, mask - 1, mask];
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ size as u64;
    for _ in 0..8 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        v.push((x >> 7) & mask);
    }
    v
}

/// Every (size, a, b, carry-in) the tests walk.
fn samples() -> impl Iterator<Item = (u8, u64, u64, u64)> {
    SIZES.into_iter().flat_map(|size| {
        let ops = operands(size);
        let pairs: Vec<_> = ops.iter().flat_map(|&a| ops.iter().map(move |&b| (a, b))).collect();
        pairs
            .into_iter()
            .flat_map(move |(a, b)| [0, 1].map(|c| (size, a, b, c)))
    })
}

fn record(kind: FlagKind, size: u8, res: u64, a: u64, b: u64, aux: u64) -> Flags<u64> {
    Flags {
        kind,
        size,
        res,
        a,
        b,
        aux,
    }
}

/// add/adc (carry-in `c`, used by adc only), as `semantics::alu` records it, with its flags
/// from the definition.
fn add(kind: FlagKind, size: u8, a: u64, b: u64, c: u64) -> (Flags<u64>, Expected) {
    let c = if kind == FlagKind::Adc { c } else { 0 };
    let mask = size_mask(size);
    let res = (a as u128 + b as u128 + c as u128) as u64 & mask;
    let cf = a as u128 + b as u128 + c as u128 > mask as u128;
    let af = (a & 0xf) + (b & 0xf) + c > 0xf;
    let of = signed(a, size) + signed(b, size) + c as i128 != signed(res, size);
    (
        record(kind, size, res, a, b, c),
        Expected::of_result(size, res, cf, af, of),
    )
}

/// sub/sbb/cmp (borrow-in `c`, used by sbb only).
fn sub(kind: FlagKind, size: u8, a: u64, b: u64, c: u64) -> (Flags<u64>, Expected) {
    let c = if kind == FlagKind::Sbb { c } else { 0 };
    let mask = size_mask(size);
    let wide = a as i128 - b as i128 - c as i128;
    let res = wide as u64 & mask;
    let af = (a & 0xf) < (b & 0xf) + c;
    let of = signed(a, size) - signed(b, size) - c as i128 != signed(res, size);
    (
        record(kind, size, res, a, b, c),
        Expected::of_result(size, res, wide < 0, af, of),
    )
}

/// inc/dec of `a`, keeping the carry `c`.
fn step(kind: FlagKind, size: u8, a: u64, c: u64) -> (Flags<u64>, Expected) {
    let mask = size_mask(size);
    let delta: i128 = if kind == FlagKind::Inc { 1 } else { -1 };
    let res = (a as i128 + delta) as u64 & mask;
    let af = if delta == 1 { a & 0xf == 0xf } else { a & 0xf == 0 };
    let of = signed(a, size) + delta != signed(res, size);
    (
        record(kind, size, res, a, 1, c),
        Expected::of_result(size, res, c == 1, af, of),
    )
}

/// and/or/xor: CF and OF cleared; AF is undefined and Kiln clears it.
fn logic(size: u8, res: u64) -> (Flags<u64>, Expected) {
    (
        record(FlagKind::Logic, size, res, 0, 0, 0),
        Expected::of_result(size, res, false, false, false),
    )
}

/// Every defined record of the arithmetic and logic kinds for one sample.
fn defined_cases(size: u8, a: u64, b: u64, c: u64) -> Vec<(Flags<u64>, Expected)> {
    vec![
        add(FlagKind::Add, size, a, b, c),
        add(FlagKind::Adc, size, a, b, c),
        sub(FlagKind::Sub, size, a, b, c),
        sub(FlagKind::Sbb, size, a, b, c),
        step(FlagKind::Inc, size, a, c),
        step(FlagKind::Dec, size, a, c),
        logic(size, a & b),
        logic(size, a | b),
        logic(size, a ^ b),
    ]
}

#[test]
fn materialized_flags_match_their_definition() {
    for (size, a, b, c) in samples() {
        for (f, want) in defined_cases(size, a, b, c) {
            let got = materialize(&mut Values, &f);
            assert_eq!(Expected::from_rflags(got), want, "{f:?}");
            assert_eq!(got, want.rflags(), "{f:?}");
        }
    }
}

#[test]
fn conditions_match_their_definition() {
    for (size, a, b, c) in samples() {
        for (f, want) in defined_cases(size, a, b, c) {
            for cc in all_cc() {
                let got = cond(&mut Values, &f, cc);
                assert_eq!(got, want.holds(cc) as u64, "{cc:?} of {f:?}");
            }
        }
    }
}

/// Shift, multiply and raw records, whose flags are checked for consistency only.
fn other_records(size: u8, a: u64, b: u64) -> Vec<Flags<u64>> {
    let mask = size_mask(size);
    let count = b & if size == 8 { 63 } else { 31 };
    let mut v = vec![
        record(FlagKind::Mul, size, a, 0, 0, b),
        record(FlagKind::Raw, 8, a ^ b.rotate_left(17), 0, 0, 0),
    ];
    if count != 0 {
        let sar = (signed(a, size) >> count) as u64 & mask;
        v.push(record(FlagKind::Shl, size, (a << count) & mask, a, count, 0));
        v.push(record(FlagKind::Shr, size, a >> count, a, count, 0));
        v.push(record(FlagKind::Sar, size, sar, a, count, 0));
    }
    v
}

#[test]
fn every_condition_agrees_with_materialized_rflags() {
    for (size, a, b, c) in samples() {
        let defined = defined_cases(size, a, b, c).into_iter().map(|(f, _)| f);
        for f in defined.chain(other_records(size, a, b)) {
            let r = materialize(&mut Values, &f);
            let raw = record(FlagKind::Raw, 8, r, 0, 0, 0);
            assert_eq!(materialize(&mut Values, &raw), r, "{f:?}");
            for cc in all_cc() {
                let lazy = cond(&mut Values, &f, cc);
                assert_eq!(lazy, Expected::from_rflags(r).holds(cc) as u64, "{cc:?} of {f:?}");
                assert_eq!(lazy, cond(&mut Values, &raw, cc), "{cc:?} of raw {r:#x}");
            }
        }
    }
}

#[test]
fn fields_a_kind_does_not_need_may_hold_anything_in_the_context() {
    let mut cpu = Cpu::new();
    for (size, a, b, c) in samples() {
        let defined = defined_cases(size, a, b, c).into_iter().map(|(f, _)| f);
        for f in defined.chain(other_records(size, a, b)) {
            let used = f.kind.fields();
            let junk = |keep: bool, v: u64| if keep { v } else { v ^ 0x5a5a_1234_0f0f_9876 };
            store_flags(
                &mut cpu,
                Flags {
                    a: junk(used.a, f.a),
                    b: junk(used.b, f.b),
                    aux: junk(used.aux, f.aux),
                    ..f
                },
            );
            let g = cpu_flags(&cpu);
            assert_eq!(materialize(&mut Values, &g), materialize(&mut Values, &f), "{f:?}");
            for cc in all_cc() {
                assert_eq!(cond(&mut Values, &g, cc), cond(&mut Values, &f, cc), "{cc:?} of {f:?}");
            }
        }
    }
}

#[test]
fn cpu_views_round_trip_the_record_and_add_df() {
    let mut cpu = Cpu::new();
    let (f, want) = sub(FlagKind::Sub, 4, 3, 5, 0);
    store_flags(&mut cpu, f);
    let back = cpu_flags(&cpu);
    assert_eq!(
        (back.kind, back.size, back.res, back.a, back.b),
        (f.kind, f.size, f.res, f.a, f.b)
    );
    assert_eq!(arith_rflags(&cpu), want.rflags());
    cpu.df = 1;
    assert_eq!(rflags(&cpu), want.rflags() | 1 << 10);
    assert!(cpu_cond(&cpu, Cc::B) && cpu_cond(&cpu, Cc::L) && !cpu_cond(&cpu, Cc::E));
}

/// `result_cond`, which reads a record whose kind is known only at run time, gives what `cond`
/// gives for the same record, for every kind and size, and declines the other conditions.
#[test]
fn result_cond_agrees_with_cond_for_every_kind() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for kind in 0..=11 {
        let kind = FlagKind::from_u64(kind);
        for size in SIZES {
            // Results of each size, zero-extended, as records hold them; raw records any word.
            let bits = if kind == FlagKind::Raw { 8 } else { size };
            for res in [
                0,
                1,
                size_mask(bits),
                size_mask(bits) >> 1,
                1 << (bits * 8 - 1),
                next() & size_mask(bits),
            ] {
                // As the context holds a record: an add's or a subtraction's second operand
                // follows from the result and the first (`cpu_flags`).
                let a = next() & size_mask(size);
                let b = match kind {
                    FlagKind::Add => res.wrapping_sub(a) & size_mask(size),
                    FlagKind::Sub => a.wrapping_sub(res) & size_mask(size),
                    _ => next() & size_mask(size),
                };
                let f = Flags {
                    kind,
                    size,
                    res,
                    a,
                    b,
                    aux: next() & 1,
                };
                let word = kind_and_size(kind, size);
                for cc in 0..16 {
                    let cc = Cc::from_u8(cc);
                    let dynamic = result_cond(&mut Values, cc, |_| (word, res));
                    match cc {
                        Cc::E | Cc::Ne | Cc::S | Cc::Ns => {
                            assert_eq!(
                                dynamic,
                                Some(cond(&mut Values, &f, cc)),
                                "{kind:?} size {size} res {res:#x} {cc:?}"
                            )
                        }
                        _ => assert_eq!(dynamic, None, "{cc:?}"),
                    }
                }
            }
        }
    }
}
