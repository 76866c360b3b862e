//! The extensions beyond the x86-64 baseline that compilers and libc use (x86-64-v2 and the
//! bit-manipulation sets): SSE3, SSSE3, SSE4.1, SSE4.2 (string compares, CRC32), BMI1, BMI2,
//! MOVBE and CMPXCHG16B, written over concrete state and reached through the slow path (the
//! lane-wise SSSE3 and SSE4.1 forms libc's string functions use are `sse`'s table, written over
//! `Emitter` and run inline). This module holds the family's table and the shared operand
//! plumbing; one file per extension holds the meaning.

mod bmi;
mod movbe_cmpxchg16b;
mod sse3;
mod sse41;
mod sse42;
mod ssse3;

pub(super) use ssse3::ssse3_op;

use super::fp::W;
use super::sse::{get, set, src_concrete as src, xmm_idx as xmm};
use super::table::{row, Family};
use crate::cpu::{fault, Cpu};
use iced_x86::{Instruction, Mnemonic, OpKind};

/// The operands of an instruction whose result is its xmm destination's new value.
pub struct Operands {
    pub m: Mnemonic,
    /// The destination's old value.
    pub a: u128,
    /// The source (a register, or as many bytes of memory as the form reads, zero-extended).
    pub b: u128,
    /// The immediate, 0 when there is none.
    pub imm: u32,
    /// xmm0 (the implicit mask of the variable blends).
    pub xmm0: u128,
    pub b_in_memory: bool,
    /// MXCSR, updated by floating-point operations.
    pub mx: u32,
}

/// How a row runs.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Over the whole state.
    Whole(fn(&mut Cpu, &Instruction) -> Result<(), u64>),
    /// A new xmm destination from [`Operands`]; `None` for a form not implemented.
    Lanes(fn(&mut Operands) -> Option<u128>),
}

use Handler::{Lanes, Whole};
use Mnemonic::*;

pub static FAMILY: Family<Handler> = Family::new(
    "ext",
    &[
        // SSE3
        row(&[Addsubps, Addsubpd], Lanes(sse3::addsub)),
        row(&[Haddps, Haddpd, Hsubps, Hsubpd], Lanes(sse3::horizontal)),
        row(&[Movddup], Lanes(sse3::movddup)),
        row(&[Movshdup, Movsldup], Lanes(sse3::duplicate_singles)),
        row(&[Lddqu, Movntdqa], Lanes(source)),
        // SSSE3
        row(
            &[
                Phaddw, Phaddd, Phaddsw, Phsubw, Phsubd, Phsubsw, Pmaddubsw, Pmulhrsw, Psignb, Psignw, Psignd, Pabsb,
                Pabsw, Pabsd,
            ],
            Lanes(ssse3::lanes),
        ),
        // SSE4.1 (the lane-wise forms are `sse`'s, written over `Emitter`)
        row(&[Pmuldq], Lanes(sse41::pmuldq)),
        row(
            &[
                Pmovsxbw, Pmovsxbd, Pmovsxbq, Pmovsxwd, Pmovsxwq, Pmovsxdq, Pmovzxbw, Pmovzxbd, Pmovzxbq, Pmovzxwd,
                Pmovzxwq, Pmovzxdq,
            ],
            Lanes(sse41::extend),
        ),
        row(&[Pblendw, Blendps, Blendpd], Lanes(sse41::blend)),
        row(&[Pblendvb, Blendvps, Blendvpd], Lanes(sse41::blend_variable)),
        row(&[Pinsrb, Pinsrd, Pinsrq], Lanes(sse41::insert)),
        row(&[Insertps], Lanes(sse41::insertps)),
        row(&[Phminposuw], Lanes(sse41::phminposuw)),
        row(&[Dpps, Dppd], Lanes(sse41::dot_product)),
        row(&[Mpsadbw], Lanes(sse41::mpsadbw)),
        row(&[Roundss, Roundsd, Roundps, Roundpd], Lanes(sse41::round)),
        row(&[Ptest], Whole(sse41::ptest)),
        row(&[Pextrb, Pextrw, Pextrd, Pextrq, Extractps], Whole(sse41::extract)),
        // SSE4.2
        row(&[Crc32], Whole(sse42::crc32)),
        // BMI1, BMI2
        row(&[Andn, Bextr, Blsi, Blsmsk, Blsr], Whole(bmi::bmi1)),
        row(&[Bzhi, Mulx, Pdep, Pext, Rorx, Sarx, Shlx, Shrx], Whole(bmi::bmi2)),
        // MOVBE, CMPXCHG16B
        row(&[Movbe], Whole(movbe_cmpxchg16b::movbe)),
        row(&[Cmpxchg16b], Whole(movbe_cmpxchg16b::cmpxchg16b)),
    ],
);

/// Operand checks beside the table: the forms of a row's mnemonics this family does not take.
fn form_fits(ins: &Instruction) -> bool {
    // MMX-register forms of SSSE3 are not implemented.
    let mmx = (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Register && ins.op_register(i).is_mm());
    // pextrw to a register is SSE2 (`sse`); only the SSE4.1 memory form is here.
    !mmx && (ins.mnemonic() != Pextrw || ins.op_kind(0) == OpKind::Memory)
}

pub fn supported(ins: &Instruction) -> bool {
    FAMILY.has(ins.mnemonic()) && form_fits(ins)
}

/// Executes one instruction of the extensions; Err for a form not implemented.
pub fn exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    match FAMILY.row(ins.mnemonic()).map(|r| r.handler) {
        Some(Whole(run)) => run(cpu, ins),
        Some(Lanes(op)) => run_lanes(cpu, ins, op),
        None => Err(fault::UNIMPLEMENTED),
    }
}

/// Bytes a form reads from a memory source.
fn source_width(m: Mnemonic) -> u8 {
    match m {
        Movddup | Pmovsxbw | Pmovzxbw | Pmovsxwd | Pmovzxwd | Pmovsxdq | Pmovzxdq => 8,
        Pmovsxbd | Pmovzxbd | Pmovsxwq | Pmovzxwq => 4,
        Pmovsxbq | Pmovzxbq => 2,
        Pinsrb => 1,
        Pinsrd | Insertps => 4,
        Pinsrq => 8,
        Roundss => 4,
        Roundsd => 8,
        _ => 16,
    }
}

/// Reads the operands, computes the destination, then writes it and MXCSR.
fn run_lanes(cpu: &mut Cpu, ins: &Instruction, op: fn(&mut Operands) -> Option<u128>) -> Result<(), u64> {
    let bad = fault::UNIMPLEMENTED;
    let m = ins.mnemonic();
    let d = xmm(ins.op_register(0)).ok_or(bad)?;
    let a = get(cpu, d);
    let b = src(cpu, ins, 1, source_width(m)).ok_or(bad)?;
    let imm = if ins.op_count() > 2 && ins.op_kind(2) == OpKind::Immediate8 {
        ins.immediate(2) as u32
    } else {
        0
    };
    let mut o = Operands {
        m,
        a,
        b,
        imm,
        xmm0: get(cpu, 0),
        b_in_memory: ins.op_kind(1) == OpKind::Memory,
        mx: cpu.mxcsr,
    };
    let r = op(&mut o).ok_or(bad)?;
    cpu.mxcsr = o.mx;
    set(cpu, d, r);
    Ok(())
}

/// lddqu, movntdqa: the source as it is.
fn source(o: &mut Operands) -> Option<u128> {
    Some(o.b)
}

/// The `16 / w` lanes of `w` bytes of a vector.
fn ls(v: u128, w: u8) -> Vec<u64> {
    let l = super::vector::lanes(v, w);
    l[..16 / w as usize].to_vec()
}

/// A vector from lanes of `w` bytes (each masked to its width).
fn pk(l: &[u64], w: u8) -> u128 {
    let mut a = [0u64; 16];
    a[..l.len()].copy_from_slice(l);
    super::vector::pack(&a, w)
}

/// Lane `i` of `w` bytes from a vector.
fn lane(v: u128, w: u32, i: u32) -> u64 {
    ((v >> (i * w * 8)) as u64) & if w == 8 { u64::MAX } else { (1u64 << (w * 8)) - 1 }
}

/// The float lanes (singles or doubles) of a vector.
fn float_lanes(v: u128, w: W) -> Vec<u64> {
    ls(v, if w == W::S { 4 } else { 8 })
}

/// A vector from float lanes.
fn from_float_lanes(l: &[u64], w: W) -> u128 {
    pk(l, if w == W::S { 4 } else { 8 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::decoded;

    #[test]
    fn only_the_memory_form_of_pextrw_is_here() {
        // pextrw eax, xmm1, 3 (SSE2) and pextrw [rax], xmm1, 3 (SSE4.1)
        assert!(!supported(&decoded(&[0x66, 0x0f, 0xc5, 0xc1, 0x03])));
        assert!(supported(&decoded(&[0x66, 0x0f, 0x3a, 0x15, 0x08, 0x03])));
    }

    #[test]
    fn mmx_forms_of_ssse3_are_not_here() {
        // phaddw mm0, mm1 / phaddw xmm0, xmm1
        assert!(!supported(&decoded(&[0x0f, 0x38, 0x01, 0xc1])));
        assert!(supported(&decoded(&[0x66, 0x0f, 0x38, 0x01, 0xc1])));
    }
}
