//! Comparing outcomes: every register, the flags the instruction defines, MXCSR, the x87
//! state (approximations within their documented error), the scratch memory and the signal.

use super::gen::operand_addr;
use super::{Outcome, State, SCRATCH, SCRATCH_LEN};

use crate::cpu::rflags as rf;
use crate::semantics;
use iced_x86::{Instruction, Mnemonic, RflagsBits};

pub(super) fn flag_mask(ins: &Instruction) -> u64 {
    defined_flags(undefined_flags(ins))
}

/// The flags `ins` leaves undefined (iced's `RflagsBits`), with the overflow flag of rotates
/// by more than one, which the manual defines for rotates by one only (CPUs differ on the rest:
/// an Intel CPU sets it on an 8-bit rcr by 9, which rotates nothing, where an AMD one leaves it).
pub(super) fn undefined_flags(ins: &Instruction) -> u32 {
    let rotate = matches!(
        ins.mnemonic(),
        Mnemonic::Rcl | Mnemonic::Rcr | Mnemonic::Rol | Mnemonic::Ror
    );
    ins.rflags_undefined()
        | if rotate && !rotates_by_one(ins) {
            RflagsBits::OF
        } else {
            0
        }
}

/// The RFLAGS bits compared when the flags in `u` (iced's `RflagsBits`) are undefined.
pub(super) fn defined_flags(u: u32) -> u64 {
    (rf::ARITH | (1 << 10)) & !crate::decode::rflags_bits(u)
}

/// Whether a rotate's count is an immediate 1 (after the CPU's masking of the count).
fn rotates_by_one(ins: &Instruction) -> bool {
    let mask = if ins.op0_register().size() == 8 || ins.memory_size().size() == 8 {
        0x3f
    } else {
        0x1f
    };
    ins.op_count() == 2 && ins.op1_kind() == iced_x86::OpKind::Immediate8 && ins.immediate8() & mask == 1
}

/// Whether two xmm values are the same result of the instruction. The dot products add their
/// lanes' products in an order the manual gives but CPUs do not keep where several are NaN:
/// which NaN comes out differs between vendors, so any NaN stands for any.
fn same_xmm(m: Mnemonic, want: [u64; 2], got: [u64; 2]) -> bool {
    let nan32 = |x: u64| (x & 0x7fff_ffff) > 0x7f80_0000;
    let nan64 = |x: u64| (x & 0x7fff_ffff_ffff_ffff) > 0x7ff0_0000_0000_0000;
    match m {
        Mnemonic::Dpps => (0..4).all(|i| {
            let lane = |v: [u64; 2]| (v[i / 2] >> (32 * (i % 2))) & 0xffff_ffff;
            let (w, g) = (lane(want), lane(got));
            w == g || (nan32(w) && nan32(g))
        }),
        Mnemonic::Dppd => (0..2).all(|i| want[i] == got[i] || (nan64(want[i]) && nan64(got[i]))),
        _ => want == got,
    }
}

/// x87 instructions whose result the architecture defines only to within an ulp or so: the
/// results may differ in the last bit, and with them C1 (rounded up) and the precision flag.
pub(super) fn x87_approximate(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(m, Fsin | Fcos | Fsincos | Fptan | Fpatan | F2xm1 | Fyl2x | Fyl2xp1)
}

/// Status word bits an x87 instruction defines: C0, C2 and C3 only for the ones that report
/// through them (compares, examine, partial remainder, and the transcendentals' C2).
pub(super) fn fsw_mask(m: Mnemonic) -> u64 {
    use Mnemonic::*;
    let c0c2c3 = 0x4500;
    let mut mask = 0xffff;
    let sets_cc = matches!(
        m,
        Fcom | Fcomp
            | Fcompp
            | Fucom
            | Fucomp
            | Fucompp
            | Ficom
            | Ficomp
            | Ftst
            | Fxam
            | Fprem
            | Fprem1
            | Fnstsw
            | Fstsw
            | Fninit
            | Fnclex
            | Fldenv
    );
    if !sets_cc {
        mask &= !c0c2c3;
    }
    if matches!(m, Fsin | Fcos | Fsincos | Fptan) {
        mask |= 0x400; // C2: argument out of range
    }
    if x87_approximate(m) {
        mask &= !(0x200 | 0x20);
    }
    if matches!(
        m,
        Fcmovb | Fcmove | Fcmovbe | Fcmovu | Fcmovnb | Fcmovne | Fcmovnbe | Fcmovnu
    ) {
        // The CPU changes C1 without an underflow, where the manual leaves it undefined.
        mask &= !0x200;
    }
    mask
}

pub(super) fn x87_differ(ins: &Instruction, want: &State, got: &State) -> Option<String> {
    let m = ins.mnemonic();
    if want.fcw != got.fcw {
        return Some(format!("fcw native {:#06x} kiln {:#06x}", want.fcw, got.fcw));
    }
    let mask = fsw_mask(m);
    if want.fsw & mask != got.fsw & mask {
        return Some(format!(
            "fsw native {:#06x} kiln {:#06x} (compared bits {mask:#06x})",
            want.fsw & mask,
            got.fsw & mask
        ));
    }
    if want.ftw != got.ftw {
        return Some(format!("ftw native {:#04x} kiln {:#04x}", want.ftw, got.ftw));
    }
    for i in 0..8 {
        let (w, g) = (want.st[i], got.st[i]);
        if w == g {
            continue;
        }
        // One ulp apart (the significand's last bit, carrying into the exponent) is within
        // what the architecture defines for the transcendental instructions.
        let close = || {
            // Position on the number line of a normal or denormal value's magnitude.
            let v = |r: [u64; 2]| ((r[1] & 0x7fff) as u128) << 63 | (r[0] & !(1 << 63)) as u128;
            w[1] & 0x8000 == g[1] & 0x8000 && v(w).abs_diff(v(g)) <= 1
        };
        if x87_approximate(m) && close() {
            continue;
        }
        let h = |r: [u64; 2]| format!("{:04x}:{:016x}", r[1], r[0]);
        return Some(format!("st({i}) native {} kiln {}", h(w), h(g)));
    }
    None
}

/// The first difference between native and Kiln, if any.
pub(super) fn differ(ins: &Instruction, want: &Outcome, got: &Outcome) -> Option<String> {
    if want.signal != got.signal {
        return Some(format!("signal native {} kiln {}", want.signal, got.signal));
    }
    if want.signal != 0 {
        return None;
    }
    let names = [
        "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    ];
    for ((name, w), g) in names.iter().zip(want.state.gpr).zip(got.state.gpr) {
        if w != g {
            return Some(format!("{name} native {w:#x} kiln {g:#x}"));
        }
    }
    let m = flag_mask(ins);
    if want.state.rflags & m != got.state.rflags & m {
        return Some(format!(
            "rflags native {:#x} kiln {:#x} (compared bits {m:#x})",
            want.state.rflags & m,
            got.state.rflags & m
        ));
    }
    if want.state.mxcsr != got.state.mxcsr {
        return Some(format!(
            "mxcsr native {:#x} kiln {:#x}",
            want.state.mxcsr, got.state.mxcsr
        ));
    }
    for i in 0..16 {
        if !same_xmm(ins.mnemonic(), want.state.xmm[i], got.state.xmm[i]) {
            let h = |x: [u64; 2]| format!("{:016x}{:016x}", x[1], x[0]);
            return Some(format!(
                "xmm{i} native {} kiln {}",
                h(want.state.xmm[i]),
                h(got.state.xmm[i])
            ));
        }
    }
    if let Some(p) = x87_differ(ins, &want.state, &got.state) {
        return Some(p);
    }
    // The x87 environment's instruction and operand pointers are not kept by Kiln.
    let pointers = match ins.mnemonic() {
        Mnemonic::Fnstenv | Mnemonic::Fnsave => {
            let a = operand_addr(ins, &got.state.gpr).wrapping_sub(SCRATCH) as usize;
            if matches!(ins.memory_size().size(), 14 | 94) {
                a + 6..a + 14
            } else {
                a + 12..a + 28
            }
        }
        _ => 0..0,
    };
    if let Some(p) = (0..SCRATCH_LEN).find(|&p| want.memory[p] != got.memory[p] && !pointers.contains(&p)) {
        return Some(format!(
            "memory at {:#x}: native {:#04x} kiln {:#04x}",
            SCRATCH + p as u64,
            want.memory[p],
            got.memory[p]
        ));
    }
    None
}

/// Whether this CPU's rcpss/rsqrtss give Kiln's tables (they are implementation-specific):
/// every table input at three exponents, both signs.
pub(super) fn host_approximations_match() -> bool {
    use std::arch::x86_64::{
        _mm_castps_si128, _mm_castsi128_ps, _mm_cvtsi128_si32, _mm_rcp_ss, _mm_rsqrt_ss, _mm_set1_epi32,
    };
    // SAFETY: SSE is part of x86-64; the intrinsics only compute on registers.
    let host = |v: u32, rsqrt: bool| unsafe {
        let x = _mm_castsi128_ps(_mm_set1_epi32(v as i32));
        _mm_cvtsi128_si32(_mm_castps_si128(if rsqrt { _mm_rsqrt_ss(x) } else { _mm_rcp_ss(x) })) as u32
    };
    (0..4096u32).all(|i| {
        [0x3f80_0000u32, 0x4000_0000, 0xc280_0000].iter().all(|&e| {
            let v = e | i << 11;
            host(v, false) == semantics::fp::approx(v, false) && host(v, true) == semantics::fp::approx(v, true)
        })
    })
}
