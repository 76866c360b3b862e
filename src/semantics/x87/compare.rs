//! Comparisons: the condition codes of fcom/fucom/ftst/ficom, the flags of fcomi/fucomi, and
//! fxam's classification.

use super::load_store::load_mem;
use super::{has_memory, sti, Fpu, C0, C1, C2, C3, DE, IE};
use crate::cpu::flags::store_raw_flags;
use iced_x86::{Instruction, Mnemonic};
use rustc_apfloat::ieee::X87DoubleExtended as Ext;
use rustc_apfloat::Float;
use std::cmp::Ordering;

pub(super) fn compare(a: Ext, b: Ext) -> Option<Ordering> {
    if a.is_nan() || b.is_nan() {
        None
    } else {
        a.partial_cmp(&b)
    }
}

/// Sets IE for an unordered comparison when the form signals on any NaN or an operand is a
/// signaling NaN.
fn invalid_if_unordered(f: &mut Fpu, a: Ext, b: Ext, unordered_signals: bool) {
    if (a.is_nan() || b.is_nan()) && (unordered_signals || a.is_signaling() || b.is_signaling()) {
        f.cpu.fpu_sw |= IE;
    }
}

/// fcom, fcomp, fcompp, fucom, fucomp, fucompp, ftst, ficom, ficomp.
pub(super) fn fcom(f: &mut Fpu, ins: &Instruction) {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let a = f.st(0);
    let b = if m == Ftst {
        Ext::ZERO
    } else if has_memory(ins) {
        let (v, fl) = load_mem(f.cpu, ins, matches!(m, Ficom | Ficomp));
        f.saw_denormal |= fl & DE != 0;
        f.cpu.fpu_sw |= fl & !DE;
        v
    } else if ins.op_count() >= 1 {
        f.st(sti(ins, ins.op_count() - 1))
    } else {
        f.st(1)
    };
    f.denormal(&[a, b]);
    invalid_if_unordered(f, a, b, matches!(m, Fcom | Fcomp | Fcompp | Ftst | Ficom | Ficomp));
    let cc = match compare(a, b) {
        None => C0 | C2 | C3,
        Some(Ordering::Less) => C0,
        Some(Ordering::Equal) => C3,
        Some(Ordering::Greater) => 0,
    };
    f.cpu.fpu_sw = (f.cpu.fpu_sw & !(C0 | C2 | C3)) | cc;
    if matches!(m, Fcomp | Fucomp | Ficomp) {
        f.pop();
    }
    if matches!(m, Fcompp | Fucompp) {
        f.pop();
        f.pop();
    }
}

/// fcomi, fcomip, fucomi, fucomip: ZF, PF, CF.
pub(super) fn fcomi(f: &mut Fpu, ins: &Instruction) {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let a = f.st(0);
    let b = f.st(sti(ins, 1));
    f.denormal(&[a, b]);
    invalid_if_unordered(f, a, b, matches!(m, Fcomi | Fcomip));
    let fl = match compare(a, b) {
        None => 0x45,
        Some(Ordering::Less) => 0x01,
        Some(Ordering::Equal) => 0x40,
        Some(Ordering::Greater) => 0,
    };
    store_raw_flags(f.cpu, fl);
    if matches!(m, Fcomip | Fucomip) {
        f.pop();
    }
}

/// fxam: classified from the register's encoding (pseudo-denormals count as denormal;
/// unnormals, pseudo-NaNs and pseudo-infinities as unsupported).
pub(super) fn fxam(f: &mut Fpu, _: &Instruction) {
    let p = f.phys(0);
    let [m64, se] = f.cpu.st[p];
    let sign = if se & 0x8000 != 0 { C1 } else { 0 };
    let (e, int) = (se & 0x7fff, m64 >> 63 == 1);
    let class = if f.tag_empty(p) {
        C3 | C0
    } else if e == 0x7fff {
        match (int, m64 << 1 == 0) {
            (false, _) => 0,
            (true, true) => C2 | C0,
            (true, false) => C0,
        }
    } else if e == 0 {
        if m64 == 0 {
            C3
        } else {
            C3 | C2
        }
    } else if int {
        C2
    } else {
        0
    };
    f.cpu.fpu_sw = (f.cpu.fpu_sw & !(C0 | C1 | C2 | C3)) | class | sign;
}
