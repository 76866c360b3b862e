//! SSE3: alternating add/subtract, horizontal add/subtract of floats, and the duplicating
//! moves (lddqu is a plain load, in the table's `source` row).

use super::super::fp::{self, FOp, W};
use super::{float_lanes, from_float_lanes, ls, pk, Operands};
use iced_x86::Mnemonic::*;

/// addsubps, addsubpd: even lanes subtract, odd lanes add.
pub(super) fn addsub(o: &mut Operands) -> Option<u128> {
    let w = if o.m == Addsubps { W::S } else { W::D };
    let (x, y) = (float_lanes(o.a, w), float_lanes(o.b, w));
    let out: Vec<u64> = (0..x.len())
        .map(|i| fp::binop(w, if i % 2 == 0 { FOp::Sub } else { FOp::Add }, x[i], y[i], &mut o.mx))
        .collect();
    Some(from_float_lanes(&out, w))
}

/// haddps, haddpd, hsubps, hsubpd: adjacent pairs of the destination, then of the source.
pub(super) fn horizontal(o: &mut Operands) -> Option<u128> {
    let w = if matches!(o.m, Haddps | Hsubps) { W::S } else { W::D };
    let op = if matches!(o.m, Haddps | Haddpd) {
        FOp::Add
    } else {
        FOp::Sub
    };
    let (x, y) = (float_lanes(o.a, w), float_lanes(o.b, w));
    let mut out = Vec::new();
    for v in [&x, &y] {
        for j in (0..v.len()).step_by(2) {
            out.push(fp::binop(w, op, v[j], v[j + 1], &mut o.mx));
        }
    }
    Some(from_float_lanes(&out, w))
}

pub(super) fn movddup(o: &mut Operands) -> Option<u128> {
    let b = o.b;
    Some((b as u64 as u128) | (b as u64 as u128) << 64)
}

/// movshdup (odd singles) and movsldup (even singles), each duplicated.
pub(super) fn duplicate_singles(o: &mut Operands) -> Option<u128> {
    let l = ls(o.b, 4);
    Some(if o.m == Movshdup {
        pk(&[l[1], l[1], l[3], l[3]], 4)
    } else {
        pk(&[l[0], l[0], l[2], l[2]], 4)
    })
}
