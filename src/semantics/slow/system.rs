//! System and state instructions over concrete state: cpuid (Kiln's fixed profile), rdtsc,
//! fences and hints, traps (ud2, hlt, int3), RFLAGS moves (cld/std, pushf/popf, lahf/sahf),
//! the 16-bit push/pop/leave, MXCSR loads and stores, and fxsave/fxrstor.

use super::super::concrete::{load, store, Live};
use super::super::operand::{ea, read_op, write_op};
use super::arith_flags;
use crate::cpu::flags::{rflags, store_raw_flags};
use crate::cpu::{fault, fxsave, rflags as rf, Cpu};
use iced_x86::{Instruction, Mnemonic};

/// The CPUID profile Kiln reports: x86-64 baseline (SSE, SSE2, CMOV, CX8, FXSR, TSC), no
/// SSE3+, no AVX, no OSXSAVE. Part of the translation config id.
pub fn cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    const ECX1: u32 = 1 | (1 << 9) | (1 << 13) | (1 << 19) | (1 << 20) | (1 << 22) | (1 << 23);
    const EDX1: u32 = 1 | (1 << 4) | (1 << 8) | (1 << 15) | (1 << 19) | (1 << 23) | (1 << 24) | (1 << 25) | (1 << 26);
    match leaf {
        0 => [7, 0x756e_6547, 0x6c65_746e, 0x4965_6e69], // "Genu" (ebx), "ntel" (ecx), "ineI" (edx)
        // ECX: SSE3, SSSE3, CX16, SSE4.1, SSE4.2, MOVBE, POPCNT (x86-64-v2 with MOVBE).
        1 => [0x0009_06ea, (8 << 8) | (1 << 16), ECX1, EDX1],
        2 => [0x00fe_ff01, 0, 0, 0],
        4 => {
            // type, level, ways, sets (line 64, 1 partition)
            let (ty, lvl, ways, sets, share): (u32, u32, u32, u32, u32) = match sub {
                0 => (1, 1, 8, 64, 0),
                1 => (2, 1, 8, 64, 0),
                2 => (3, 2, 16, 1024, 0),
                3 => (3, 3, 16, 8192, 15),
                _ => return [0; 4],
            };
            [
                ty | (lvl << 5) | (1 << 8) | (share << 14),
                ((ways - 1) << 22) | 63,
                sets - 1,
                0,
            ]
        }
        // Structured extended features: BMI1 and BMI2 (no AVX, so no AVX2).
        7 if sub == 0 => [0, (1 << 3) | (1 << 8), 0, 0],
        0x8000_0000 => [0x8000_0008, 0, 0, 0],
        // LAHF/SAHF and LZCNT (ABM); SYSCALL, NX, LM.
        0x8000_0001 => [0, 0, 1 | (1 << 5), (1 << 11) | (1 << 20) | (1 << 29)],
        0x8000_0002..=0x8000_0004 => {
            let brand = *b"Kiln x86-64-v2 profile\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
            let o = (leaf - 0x8000_0002) as usize * 16;
            let w = |i: usize| u32::from_le_bytes(brand[o + i * 4..o + i * 4 + 4].try_into().unwrap_or([0; 4]));
            [w(0), w(1), w(2), w(3)]
        }
        0x8000_0006 => [0, 0, (1024 << 16) | (6 << 12) | 64, 0],
        0x8000_0008 => [0x3030, 0, 0, 0],
        _ => [0; 4],
    }
}

/// AT_HWCAP for the profile: CPUID.1:EDX.
pub fn hwcap() -> u64 {
    cpuid(1, 0)[3] as u64
}

pub(super) fn cpuid_ins(cpu: &mut Cpu, _: &Instruction) -> Result<(), u64> {
    let r = cpuid(cpu.gpr[0] as u32, cpu.gpr[1] as u32);
    // eax, ebx, ecx, edx
    cpu.gpr[0] = r[0] as u64;
    cpu.gpr[3] = r[1] as u64;
    cpu.gpr[1] = r[2] as u64;
    cpu.gpr[2] = r[3] as u64;
    Ok(())
}

pub(super) fn rdtsc(cpu: &mut Cpu, _: &Instruction) -> Result<(), u64> {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let t = ts.tv_sec as u64 * 3_000_000_000 + ts.tv_nsec as u64 * 3;
    cpu.gpr[0] = t & 0xffff_ffff;
    cpu.gpr[2] = t >> 32;
    Ok(())
}

/// Fences, prefetches and other hints: only mfence orders anything the host would not.
pub(super) fn hint(_: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    if ins.mnemonic() == Mnemonic::Mfence {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
    Ok(())
}

pub(super) fn ud2(_: &mut Cpu, _: &Instruction) -> Result<(), u64> {
    Err(fault::UD)
}

pub(super) fn hlt(_: &mut Cpu, _: &Instruction) -> Result<(), u64> {
    Err(fault::HALT)
}

pub(super) fn int3(_: &mut Cpu, _: &Instruction) -> Result<(), u64> {
    Err(fault::INT3)
}

/// cld, std.
pub(super) fn direction(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    cpu.df = (ins.mnemonic() == Mnemonic::Std) as u64;
    Ok(())
}

pub(super) fn pushfq(cpu: &mut Cpu, _: &Instruction) -> Result<(), u64> {
    // Bit 1 and IF are always set in user mode.
    let f = rflags(cpu) | 0x202;
    let sp = cpu.gpr[4].wrapping_sub(8);
    store(sp, f, 8);
    cpu.gpr[4] = sp;
    Ok(())
}

pub(super) fn popfq(cpu: &mut Cpu, _: &Instruction) -> Result<(), u64> {
    let sp = cpu.gpr[4];
    let f = load(sp, 8);
    cpu.gpr[4] = sp.wrapping_add(8);
    cpu.df = (f >> 10) & 1;
    store_raw_flags(cpu, f & rf::ARITH);
    Ok(())
}

/// push of a 16-bit operand.
pub(super) fn push16(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let v = read_op(&mut Live::new(cpu), ins, 0, 2).ok_or(fault::UNIMPLEMENTED)?;
    let sp = cpu.gpr[4].wrapping_sub(2);
    store(sp, v, 2);
    cpu.gpr[4] = sp;
    Ok(())
}

/// pop of a 16-bit operand (a memory destination's address uses the new rsp).
pub(super) fn pop16(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let sp = cpu.gpr[4];
    let v = load(sp, 2);
    cpu.gpr[4] = sp.wrapping_add(2);
    write_op(&mut Live::new(cpu), ins, 0, 2, v, None).ok_or(fault::UNIMPLEMENTED)?;
    Ok(())
}

/// 16-bit leave: sp = bp, then bp = a 16-bit pop.
pub(super) fn leave16(cpu: &mut Cpu, _: &Instruction) -> Result<(), u64> {
    let bp = cpu.gpr[5];
    let v = load(bp, 2);
    cpu.gpr[4] = bp.wrapping_add(2);
    cpu.gpr[5] = (bp & !0xffff) | v;
    Ok(())
}

pub(super) fn lahf(cpu: &mut Cpu, _: &Instruction) -> Result<(), u64> {
    let f = arith_flags(cpu) & 0xd5 | 2;
    cpu.gpr[0] = (cpu.gpr[0] & !0xff00) | (f << 8);
    Ok(())
}

pub(super) fn sahf(cpu: &mut Cpu, _: &Instruction) -> Result<(), u64> {
    let f = arith_flags(cpu);
    let ah = (cpu.gpr[0] >> 8) & 0xd5;
    store_raw_flags(cpu, (f & !0xd5) | ah);
    Ok(())
}

pub(super) fn stmxcsr(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let a = ea(&mut Live::new(cpu), ins);
    store(a, cpu.mxcsr as u64, 4);
    Ok(())
}

pub(super) fn ldmxcsr(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let a = ea(&mut Live::new(cpu), ins);
    let v = load(a, 4) as u32;
    // Bits outside MXCSR_MASK (0xffff, as FXSAVE reports it) raise #GP.
    if v >> 16 != 0 {
        return Err(fault::GP);
    }
    cpu.mxcsr = v;
    Ok(())
}

pub(super) fn fxsave(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let a = ea(&mut Live::new(cpu), ins);
    fxsave::fxsave_to(cpu, a);
    Ok(())
}

pub(super) fn fxrstor(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let a = ea(&mut Live::new(cpu), ins);
    fxsave::fxrstor_from(cpu, a);
    Ok(())
}
