//! Instructions written over concrete CPU state: wide multiply and divide, string operations,
//! bit operations, rotates, cpuid and the like. The baseline tier calls `exec` directly; compiled
//! code calls `helper_slow`, which decodes the instruction at the guest rip and runs `exec`.

use super::concrete::{cond, cpu_flags, load, rflags, store, store_flags, Live, Values};
use super::emitter::{Cc, Flags};
use super::flags::{self, size_mask};
use super::operand::{ea, op_size, read_op, read_rmw, write_gpr, write_op, Gpr};
use crate::cpu::{exit, fault, rflags as rf, Cpu, FlagKind};
use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind};

pub fn supported(ins: &Instruction) -> bool {
    use Mnemonic::*;
    if super::mmx::supported(ins)
        || super::ext::supported(ins)
        || super::sse::slow_supported(ins)
        || super::sse_fp::supported(ins)
        || super::x87::supported(ins)
    {
        return true;
    }
    let m = ins.mnemonic();
    let string = matches!(
        m,
        Movsb | Movsw | Movsq | Stosb | Stosw | Stosd | Stosq | Lodsb | Lodsw | Lodsd | Lodsq
    ) || matches!(m, Cmpsb | Cmpsw | Cmpsd | Cmpsq | Scasb | Scasw | Scasd | Scasq)
        || ins.code() == Code::Movsd_m32_m32;
    string
        || matches!(
            m,
            Mul | Div
                | Idiv
                | Imul
                | Cpuid
                | Rdtsc
                | Bt
                | Bts
                | Btr
                | Btc
                | Bsf
                | Bsr
                | Tzcnt
                | Lzcnt
                | Popcnt
                | Xadd
                | Cmpxchg
                | Shld
                | Shrd
                | Rol
                | Ror
                | Rcl
                | Rcr
                | Cld
                | Std
                | Pushfq
                | Popfq
                | Lahf
                | Sahf
                | Pause
                | Lfence
                | Mfence
                | Sfence
                | Prefetchnta
                | Prefetcht0
                | Prefetcht1
                | Prefetcht2
                | Prefetchw
                | Prefetch
                | Endbr32
                | Fnsave
                | Frstor
                | Ud2
                | Hlt
                | Int3
                | Stmxcsr
                | Ldmxcsr
                | Fnstcw
                | Fldcw
                | Fnstsw
                | Fnstenv
                | Fldenv
                | Fnclex
                | Fninit
                | Fxsave
                | Fxsave64
                | Fxrstor
                | Fxrstor64
                | Wait
                | Push
        )
        || (m == Pop
            && ins.op_count() == 1
            && (ins.op_kind(0) == OpKind::Memory && ins.memory_size().size() == 2
                || ins.op_kind(0) == OpKind::Register && ins.op_register(0).is_gpr16()))
        || ins.code() == Code::Leavew
}

/// Records RFLAGS arithmetic bits as a raw lazy record.
/// Sets the arithmetic flags from a raw RFLAGS value.
pub(super) fn set_raw(cpu: &mut Cpu, f: u64) {
    store_flags(
        cpu,
        Flags {
            kind: FlagKind::Raw,
            size: 8,
            res: f,
            a: 0,
            b: 0,
            aux: 0,
        },
    );
}

fn arith_flags(cpu: &Cpu) -> u64 {
    flags::materialize(&mut Values, &cpu_flags(cpu))
}

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

/// Compiled code's entry to the slow path: decode the instruction at `rip` and run it.
/// Returns an exit code (`exit::NEXT` or `exit::FAULT`).
///
/// # Safety
/// `cpu` is the live context of the calling thread (compiled code passes its own).
pub unsafe extern "C" fn helper_slow(cpu: *mut Cpu, rip: u64, _: u64) -> u64 {
    // SAFETY: compiled code passes its own live context.
    let cpu = unsafe { &mut *cpu };
    let ins = decoded_at(cpu, rip);
    match exec(cpu, &ins) {
        Ok(()) => exit::NEXT,
        Err(code) => {
            cpu.fault = code;
            cpu.fault_addr = rip;
            cpu.rip = rip;
            exit::FAULT
        }
    }
}

thread_local! {
    /// Instructions already decoded for `helper_slow`, by guest address. Units are translated
    /// from the same bytes, so an entry is stale exactly when the unit calling it is.
    static DECODED: std::cell::RefCell<crate::mem::AddrMap<Instruction>> =
        std::cell::RefCell::new(Default::default());
}

/// Forgets every memoised decode (the fuzzer reuses one guest address for many instructions).
pub fn forget_decoded() {
    DECODED.with(|m| m.borrow_mut().clear());
}

fn decoded_at(cpu: &Cpu, rip: u64) -> Instruction {
    if let Some(i) = DECODED.with(|d| d.borrow().get(&rip).copied()) {
        return i;
    }
    let p = super::concrete::host(cpu, rip);
    // SAFETY: the unit was translated from these bytes, so they are mapped.
    let bytes = unsafe { std::slice::from_raw_parts(p, 15) };
    let mut d = Decoder::with_ip(64, bytes, rip, DecoderOptions::NONE);
    let ins = d.decode();
    DECODED.with(|m| m.borrow_mut().insert(rip, ins));
    ins
}

fn acc(size: u8) -> Gpr {
    Gpr {
        idx: 0,
        size,
        high8: false,
    }
}

/// Runs an SSE instruction with MXCSR's exception masks honoured: when the flags it raises
/// include an unmasked one, the instruction writes no result (#XM, `fault::SIMD`), and MXCSR
/// gets the flags the CPU sets then: only the pre-computation ones (invalid, denormal, divide)
/// if one of those is unmasked, all of them otherwise.
fn simd_exceptions(cpu: &mut Cpu, run: impl FnOnce(&mut Cpu) -> Result<(), u64>) -> Result<(), u64> {
    let before = cpu.mxcsr;
    if before & 0x1f80 == 0x1f80 {
        return run(cpu);
    }
    let (xmm, gpr) = (cpu.xmm, cpu.gpr);
    let fl = (
        cpu.flags_kind,
        cpu.flags_size,
        cpu.flags_res,
        cpu.flags_a,
        cpu.flags_b,
        cpu.flags_aux,
    );
    cpu.mxcsr = before & !0x3f;
    let r = run(cpu);
    let raised = cpu.mxcsr & 0x3f;
    let unmasked = raised & !(before >> 7) & 0x3f;
    if r.is_ok() && unmasked != 0 {
        cpu.xmm = xmm;
        cpu.gpr = gpr;
        (
            cpu.flags_kind,
            cpu.flags_size,
            cpu.flags_res,
            cpu.flags_a,
            cpu.flags_b,
            cpu.flags_aux,
        ) = fl;
        let pre = super::fp::mx::IE | super::fp::mx::DE | super::fp::mx::ZE;
        cpu.mxcsr = before | if unmasked & pre != 0 { raised & pre } else { raised };
        return Err(fault::SIMD);
    }
    cpu.mxcsr = if r.is_ok() { before | raised } else { before };
    r
}

/// Executes one instruction over concrete state. `Err(fault code)` on a guest fault.
pub fn exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    use Mnemonic::*;
    let m = ins.mnemonic();
    if super::mmx::supported(ins) {
        return simd_exceptions(cpu, |cpu| super::mmx::exec(cpu, ins));
    }
    if super::ext::supported(ins) {
        return simd_exceptions(cpu, |cpu| super::ext::exec(cpu, ins));
    }
    if super::sse::slow_supported(ins) {
        return super::sse::slow_exec(cpu, ins);
    }
    if super::sse_fp::supported(ins) {
        return simd_exceptions(cpu, |cpu| super::sse_fp::exec(cpu, ins));
    }
    if super::x87::supported(ins) {
        return super::x87::exec(cpu, ins);
    }
    let bad = || fault::UNIMPLEMENTED;
    if super::atomic::needs_atomic(ins) {
        return super::atomic::exec(cpu, ins);
    }
    match m {
        Mul | Imul | Div | Idiv if ins.op_count() == 1 => {
            let size = op_size(ins, 0);
            let src = read_op(&mut Live::new(cpu), ins, 0, size).ok_or_else(bad)?;
            muldiv(cpu, m, size, src)?;
        }
        Cpuid => {
            let r = cpuid(cpu.gpr[0] as u32, cpu.gpr[1] as u32);
            // eax, ebx, ecx, edx
            cpu.gpr[0] = r[0] as u64;
            cpu.gpr[3] = r[1] as u64;
            cpu.gpr[1] = r[2] as u64;
            cpu.gpr[2] = r[3] as u64;
        }
        Rdtsc => {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: writes into our timespec.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
            let t = ts.tv_sec as u64 * 3_000_000_000 + ts.tv_nsec as u64 * 3;
            cpu.gpr[0] = t & 0xffff_ffff;
            cpu.gpr[2] = t >> 32;
        }
        Bt | Bts | Btr | Btc => {
            let size = op_size(ins, 0);
            let bits = size as u64 * 8;
            let mut e = Live::new(cpu);
            let (off, addr) = if ins.op_kind(1) == OpKind::Register {
                let o = read_op(&mut e, ins, 1, size).ok_or_else(bad)?;
                (flags::sext(&mut Values, o, size), ins.op_kind(0) == OpKind::Memory)
            } else {
                (ins.immediate(1) & (bits - 1), false)
            };
            let (val, a, bit) = if addr {
                // Register bit offsets address memory beyond the operand.
                let base = ea(&mut e, ins);
                let word = (off as i64).div_euclid(bits as i64);
                let a2 = base.wrapping_add((word * size as i64) as u64);
                (load(e.cpu, a2, size), Some(a2), off & (bits - 1))
            } else {
                let (v, a) = read_rmw(&mut e, ins, 0, size).ok_or_else(bad)?;
                (v, a, off & (bits - 1))
            };
            let cf = (val >> bit) & 1;
            let nv = match m {
                Bts => val | (1 << bit),
                Btr => val & !(1 << bit),
                Btc => val ^ (1 << bit),
                _ => val,
            };
            if m != Bt {
                match a {
                    Some(a) => store(e.cpu, a, nv, size),
                    None => {
                        write_op(&mut e, ins, 0, size, nv, None).ok_or_else(bad)?;
                    }
                }
            }
            let f = arith_flags(cpu);
            set_raw(cpu, (f & !rf::CF) | cf);
        }
        Bsf | Bsr | Tzcnt | Lzcnt | Popcnt => {
            let size = op_size(ins, 0);
            let src = read_op(&mut Live::new(cpu), ins, 1, size).ok_or_else(bad)?;
            let bits = size as u64 * 8;
            let f = arith_flags(cpu);
            match m {
                Bsf | Bsr => {
                    if src == 0 {
                        set_raw(cpu, f | rf::ZF);
                    } else {
                        let r = if m == Bsf {
                            src.trailing_zeros() as u64
                        } else {
                            63 - src.leading_zeros() as u64
                        };
                        write_op(&mut Live::new(cpu), ins, 0, size, r, None).ok_or_else(bad)?;
                        set_raw(cpu, f & !rf::ZF);
                    }
                }
                Popcnt => {
                    let r = src.count_ones() as u64;
                    write_op(&mut Live::new(cpu), ins, 0, size, r, None).ok_or_else(bad)?;
                    set_raw(cpu, if src == 0 { rf::ZF } else { 0 });
                }
                _ => {
                    let r = if m == Tzcnt {
                        (src.trailing_zeros() as u64).min(bits)
                    } else {
                        (src.leading_zeros() as u64).saturating_sub(64 - bits)
                    };
                    write_op(&mut Live::new(cpu), ins, 0, size, r, None).ok_or_else(bad)?;
                    let mut nf = f & !(rf::CF | rf::ZF);
                    if src == 0 {
                        nf |= rf::CF;
                    }
                    if r == 0 {
                        nf |= rf::ZF;
                    }
                    set_raw(cpu, nf);
                }
            }
        }
        Xadd => {
            let size = op_size(ins, 0);
            let mut e = Live::new(cpu);
            let (d, a) = read_rmw(&mut e, ins, 0, size).ok_or_else(bad)?;
            let s = read_op(&mut e, ins, 1, size).ok_or_else(bad)?;
            let r = super::alu(&mut e, Add, size, d, s);
            write_op(&mut e, ins, 1, size, d, None).ok_or_else(bad)?;
            write_op(&mut e, ins, 0, size, r, a).ok_or_else(bad)?;
        }
        Cmpxchg => {
            let size = op_size(ins, 0);
            let mut e = Live::new(cpu);
            let (d, a) = read_rmw(&mut e, ins, 0, size).ok_or_else(bad)?;
            let s = read_op(&mut e, ins, 1, size).ok_or_else(bad)?;
            let ax = e.cpu.gpr[0] & size_mask(size);
            super::alu(&mut e, Cmp, size, ax, d);
            if ax == d {
                write_op(&mut e, ins, 0, size, s, a).ok_or_else(bad)?;
            } else {
                if a.is_some() {
                    // The destination is always written (locked read-modify-write).
                    write_op(&mut e, ins, 0, size, d, a).ok_or_else(bad)?;
                }
                write_gpr(&mut e, acc(size), d);
            }
        }
        Shld | Shrd => {
            let size = op_size(ins, 0);
            let bits = size as u32 * 8;
            let mut e = Live::new(cpu);
            let (d, a) = read_rmw(&mut e, ins, 0, size).ok_or_else(bad)?;
            let s = read_op(&mut e, ins, 1, size).ok_or_else(bad)?;
            let cnt = if ins.op_kind(2) == OpKind::Register {
                e.cpu.gpr[1]
            } else {
                ins.immediate(2)
            };
            let cnt = (cnt & if size == 8 { 63 } else { 31 }) as u32;
            if cnt == 0 {
                // A 32-bit register destination is still written (zero-extended).
                if size == 4 && ins.op_kind(0) == OpKind::Register {
                    write_op(&mut e, ins, 0, size, d, a);
                }
                return Ok(());
            }
            let mask = size_mask(size);
            // Concatenate into 128 bits and shift.
            let (r, cf) = if m == Shld {
                let wide = ((d as u128) << bits) | s as u128;
                let r = ((wide << cnt) >> bits) as u64 & mask;
                let cf = ((d as u128) >> (bits - cnt.min(bits))) as u64 & 1;
                (r, cf)
            } else {
                let wide = ((s as u128) << bits) | d as u128;
                let r = (wide >> cnt) as u64 & mask;
                let cf = (d >> (cnt - 1).min(63)) & 1;
                (r, cf)
            };
            write_op(&mut e, ins, 0, size, r, a).ok_or_else(bad)?;
            let res = Flags {
                kind: FlagKind::Logic,
                size,
                res: r,
                a: 0,
                b: 0,
                aux: 0,
            };
            let mut f = flags::materialize(&mut Values, &res) & !(rf::CF | rf::OF);
            f |= cf;
            let sign_changed = ((r ^ d) >> (bits - 1)) & 1;
            f |= sign_changed << 11;
            set_raw(cpu, f);
        }
        Rol | Ror | Rcl | Rcr => {
            let size = op_size(ins, 0);
            let bits = size as u64 * 8;
            let mut e = Live::new(cpu);
            let (d, a) = read_rmw(&mut e, ins, 0, size).ok_or_else(bad)?;
            let cnt = if ins.op_count() == 1 {
                1
            } else if ins.op_kind(1) == OpKind::Register {
                e.cpu.gpr[1]
            } else {
                ins.immediate(1)
            };
            let cnt = cnt & if size == 8 { 63 } else { 31 };
            if cnt == 0 {
                if size == 4 && ins.op_kind(0) == OpKind::Register {
                    write_op(&mut e, ins, 0, size, d, a);
                }
                return Ok(());
            }
            let f = arith_flags(e.cpu);
            let mask = size_mask(size);
            let msb = |v: u64| (v >> (bits - 1)) & 1;
            let (r, cf, of) = match m {
                Rol | Ror => {
                    let c = cnt % bits;
                    let r = if m == Rol {
                        ((d << c) | if c == 0 { 0 } else { d >> (bits - c) }) & mask
                    } else {
                        ((d >> c) | if c == 0 { 0 } else { d << (bits - c) }) & mask
                    };
                    if m == Rol {
                        let cf = r & 1;
                        (r, cf, msb(r) ^ cf)
                    } else {
                        (r, msb(r), msb(r) ^ ((r >> (bits - 2)) & 1))
                    }
                }
                _ => {
                    let mut v = d;
                    let mut c = f & 1;
                    for _ in 0..cnt % (bits + 1) {
                        if m == Rcl {
                            let out = msb(v);
                            v = ((v << 1) | c) & mask;
                            c = out;
                        } else {
                            let out = v & 1;
                            v = (v >> 1) | (c << (bits - 1));
                            c = out;
                        }
                    }
                    let of = if m == Rcl {
                        msb(v) ^ c
                    } else {
                        msb(v) ^ ((v >> (bits - 2)) & 1)
                    };
                    (v, c, of)
                }
            };
            write_op(&mut e, ins, 0, size, r, a).ok_or_else(bad)?;
            set_raw(cpu, (f & !(rf::CF | rf::OF)) | cf | (of << 11));
        }
        Cld => cpu.df = 0,
        Std => cpu.df = 1,
        Pushfq => {
            // Bit 1 and IF are always set in user mode.
            let f = rflags(cpu) | 0x202;
            let sp = cpu.gpr[4].wrapping_sub(8);
            store(cpu, sp, f, 8);
            cpu.gpr[4] = sp;
        }
        Popfq => {
            let sp = cpu.gpr[4];
            let f = load(cpu, sp, 8);
            cpu.gpr[4] = sp.wrapping_add(8);
            cpu.df = (f >> 10) & 1;
            set_raw(cpu, f & rf::ARITH);
        }
        Push => {
            // push of a 16-bit operand
            let v = read_op(&mut Live::new(cpu), ins, 0, 2).ok_or_else(bad)?;
            let sp = cpu.gpr[4].wrapping_sub(2);
            store(cpu, sp, v, 2);
            cpu.gpr[4] = sp;
        }
        Pop => {
            // pop of a 16-bit operand (a memory destination's address uses the new rsp)
            let sp = cpu.gpr[4];
            let v = load(cpu, sp, 2);
            cpu.gpr[4] = sp.wrapping_add(2);
            write_op(&mut Live::new(cpu), ins, 0, 2, v, None).ok_or_else(bad)?;
        }
        Leave => {
            // 16-bit leave: sp = bp, then bp = a 16-bit pop
            let bp = cpu.gpr[5];
            let v = load(cpu, bp, 2);
            cpu.gpr[4] = bp.wrapping_add(2);
            cpu.gpr[5] = (bp & !0xffff) | v;
        }
        Lahf => {
            let f = arith_flags(cpu) & 0xd5 | 2;
            cpu.gpr[0] = (cpu.gpr[0] & !0xff00) | (f << 8);
        }
        Sahf => {
            let f = arith_flags(cpu);
            let ah = (cpu.gpr[0] >> 8) & 0xd5;
            set_raw(cpu, (f & !0xd5) | ah);
        }
        Pause | Lfence | Mfence | Sfence | Prefetchnta | Prefetcht0 | Prefetcht1 | Prefetcht2 | Prefetchw
        | Prefetch | Endbr32 | Wait => {
            if matches!(m, Mfence) {
                std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            }
        }
        Stmxcsr => {
            let a = ea(&mut Live::new(cpu), ins);
            store(cpu, a, cpu.mxcsr as u64, 4);
        }
        Ldmxcsr => {
            let a = ea(&mut Live::new(cpu), ins);
            let v = load(cpu, a, 4) as u32;
            // Bits outside MXCSR_MASK (0xffff, as FXSAVE reports it) raise #GP.
            if v >> 16 != 0 {
                return Err(fault::GP);
            }
            cpu.mxcsr = v;
        }
        Fnstcw => {
            let a = ea(&mut Live::new(cpu), ins);
            store(cpu, a, cpu.fpu_cw as u64, 2);
        }
        Fldcw => {
            let a = ea(&mut Live::new(cpu), ins);
            // Reserved bits read as the hardware keeps them: bit 6 set, 7 and 13-15 clear.
            cpu.fpu_cw = (load(cpu, a, 2) as u16 & 0x1f3f) | 0x40;
            // Pending exceptions the new word unmasks set the summary and busy bits.
            if cpu.fpu_sw & 0x3f & !cpu.fpu_cw != 0 {
                cpu.fpu_sw |= 0x8080;
            } else {
                cpu.fpu_sw &= !0x8080;
            }
        }
        Fnstsw => {
            let v = super::x87::status_word(cpu);
            if ins.op_kind(0) == OpKind::Register {
                cpu.gpr[0] = (cpu.gpr[0] & !0xffff) | v;
            } else {
                let a = ea(&mut Live::new(cpu), ins);
                store(cpu, a, v, 2);
            }
        }
        Fnstenv => {
            let a = ea(&mut Live::new(cpu), ins);
            store_env(cpu, a, ins.memory_size().size() == 14);
            // Afterwards all x87 exceptions are masked.
            cpu.fpu_cw |= 0x3f;
        }
        Fldenv => {
            let a = ea(&mut Live::new(cpu), ins);
            load_env(cpu, a, ins.memory_size().size() == 14);
        }
        Fnsave => {
            // The environment, then ST(0)..ST(7) as 10-byte values; then as fninit.
            let a = ea(&mut Live::new(cpu), ins);
            let small = ins.memory_size().size() == 94;
            store_env(cpu, a, small);
            let base = a.wrapping_add(if small { 14 } else { 28 });
            for i in 0..8u64 {
                let r = cpu.st[((cpu.fpu_top + i) & 7) as usize];
                store(cpu, base.wrapping_add(10 * i), r[0], 8);
                store(cpu, base.wrapping_add(10 * i + 8), r[1], 2);
            }
            cpu.fpu_cw = 0x37f;
            cpu.fpu_sw = 0;
            cpu.fpu_top = 0;
            cpu.fpu_tag = 0xffff;
        }
        Frstor => {
            let a = ea(&mut Live::new(cpu), ins);
            let small = ins.memory_size().size() == 94;
            let base = a.wrapping_add(if small { 14 } else { 28 });
            let mut regs = [[0u64; 2]; 8];
            for (i, r) in regs.iter_mut().enumerate() {
                let o = base.wrapping_add(10 * i as u64);
                *r = [load(cpu, o, 8), load(cpu, o.wrapping_add(8), 2)];
            }
            load_env(cpu, a, small);
            for (i, r) in regs.iter().enumerate() {
                cpu.st[(cpu.fpu_top as usize + i) & 7] = *r;
            }
        }
        Fnclex => cpu.fpu_sw &= 0x7f00,
        Fxsave | Fxsave64 => {
            let a = ea(&mut Live::new(cpu), ins);
            fxsave_to(cpu, a);
        }
        Fxrstor | Fxrstor64 => {
            let a = ea(&mut Live::new(cpu), ins);
            fxrstor_from(cpu, a);
        }
        Fninit => {
            cpu.fpu_cw = 0x37f;
            cpu.fpu_sw = 0;
            cpu.fpu_top = 0;
            cpu.fpu_tag = 0xffff;
        }
        Ud2 => return Err(fault::UD),
        Hlt => return Err(fault::HALT),
        Int3 => return Err(fault::INT3),
        _ => return string_op(cpu, ins),
    }
    Ok(())
}

fn muldiv(cpu: &mut Cpu, m: Mnemonic, size: u8, src: u64) -> Result<(), u64> {
    let bits = size as u32 * 8;
    let mask = size_mask(size);
    let (lo_reg, hi_reg) = if size == 1 {
        (acc(2), None)
    } else {
        (
            acc(size),
            Some(Gpr {
                idx: 2,
                size,
                high8: false,
            }),
        )
    };
    let a = cpu.gpr[0] & mask;
    let hi_in = if size == 1 {
        (cpu.gpr[0] >> 8) & 0xff
    } else {
        cpu.gpr[2] & mask
    };
    let sx = |v: u64| -> i128 { ((v as i128) << (128 - bits)) >> (128 - bits) };
    let mut e = Live::new(cpu);
    let write_pair = |e: &mut Live, lo: u64, hi: u64| {
        if size == 1 {
            write_gpr(e, lo_reg, (lo & 0xff) | ((hi & 0xff) << 8));
        } else {
            write_gpr(e, lo_reg, lo & mask);
            if let Some(h) = hi_reg {
                write_gpr(e, h, hi & mask);
            }
        }
    };
    match m {
        Mnemonic::Mul | Mnemonic::Imul => {
            let (lo, hi, over) = if m == Mnemonic::Mul {
                let p = a as u128 * src as u128;
                let hi = (p >> bits) as u64 & mask;
                (p as u64 & mask, hi, hi != 0)
            } else {
                let p = sx(a) * sx(src);
                let lo = p as u64 & mask;
                let hi = (p >> bits) as u64 & mask;
                (lo, hi, sx(lo) != p)
            };
            write_pair(&mut e, lo, hi);
            store_flags(
                e.cpu,
                Flags {
                    kind: FlagKind::Mul,
                    size,
                    res: lo,
                    a: 0,
                    b: 0,
                    aux: over as u64,
                },
            );
        }
        _ => {
            if src == 0 {
                return Err(fault::DIVIDE);
            }
            let dividend = ((hi_in as u128) << bits) | a as u128;
            let (q, r) = if m == Mnemonic::Div {
                let q = dividend / src as u128;
                if q > mask as u128 {
                    return Err(fault::DIVIDE);
                }
                (q as u64, (dividend % src as u128) as u64)
            } else {
                let n = ((dividend << (128 - 2 * bits)) as i128) >> (128 - 2 * bits);
                let dsor = sx(src);
                let q = n.wrapping_div(dsor);
                let lim = 1i128 << (bits - 1);
                if q >= lim || q < -lim || (n == i128::MIN && dsor == -1) {
                    return Err(fault::DIVIDE);
                }
                (q as u64 & mask, n.wrapping_rem(dsor) as u64 & mask)
            };
            write_pair(&mut e, q, r);
        }
    }
    Ok(())
}

fn string_op(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let size: u8 = match m {
        Movsb | Stosb | Lodsb | Cmpsb | Scasb => 1,
        Movsw | Stosw | Lodsw | Cmpsw | Scasw => 2,
        Movsd | Stosd | Lodsd | Cmpsd | Scasd => 4,
        Movsq | Stosq | Lodsq | Cmpsq | Scasq => 8,
        _ => return Err(fault::UNIMPLEMENTED),
    };
    let rep = ins.has_rep_prefix() || ins.has_repne_prefix();
    let step = if cpu.df != 0 {
        (size as u64).wrapping_neg()
    } else {
        size as u64
    };
    let is_cmp = matches!(m, Cmpsb | Cmpsw | Cmpsd | Cmpsq | Scasb | Scasw | Scasd | Scasq);
    if rep && !is_cmp && cpu.df == 0 && matches!(m, Movsb | Stosb) {
        // Bulk forward copy/fill when ranges do not overlap.
        let n = cpu.gpr[1];
        let (src, dst) = (cpu.gpr[6], cpu.gpr[7]);
        let ok = n < crate::mem::GUEST_SPACE && dst.checked_add(n).is_some_and(|e| e <= crate::mem::GUEST_SPACE);
        if ok && (m == Stosb || src.checked_add(n).is_some_and(|e| e <= dst || dst + n <= src)) {
            let d = super::concrete::host(cpu, dst);
            // SAFETY: both ranges lie inside the reservation (checked); unmapped pages fault
            // as the guest's own access would.
            unsafe {
                if m == Stosb {
                    std::ptr::write_bytes(d, cpu.gpr[0] as u8, n as usize);
                } else {
                    std::ptr::copy_nonoverlapping(super::concrete::host(cpu, src), d, n as usize);
                    cpu.gpr[6] = src + n;
                }
            }
            cpu.gpr[7] = dst + n;
            cpu.gpr[1] = 0;
            return Ok(());
        }
    }
    loop {
        if rep && cpu.gpr[1] == 0 {
            break;
        }
        match m {
            Movsb | Movsw | Movsd | Movsq => {
                let v = load(cpu, cpu.gpr[6], size);
                store(cpu, cpu.gpr[7], v, size);
                cpu.gpr[6] = cpu.gpr[6].wrapping_add(step);
                cpu.gpr[7] = cpu.gpr[7].wrapping_add(step);
            }
            Stosb | Stosw | Stosd | Stosq => {
                store(cpu, cpu.gpr[7], cpu.gpr[0], size);
                cpu.gpr[7] = cpu.gpr[7].wrapping_add(step);
            }
            Lodsb | Lodsw | Lodsd | Lodsq => {
                let v = load(cpu, cpu.gpr[6], size);
                write_gpr(&mut Live::new(cpu), acc(size), v);
                cpu.gpr[6] = cpu.gpr[6].wrapping_add(step);
            }
            _ => {
                let (a, b) = if matches!(m, Cmpsb | Cmpsw | Cmpsd | Cmpsq) {
                    let a = load(cpu, cpu.gpr[6], size);
                    let b = load(cpu, cpu.gpr[7], size);
                    cpu.gpr[6] = cpu.gpr[6].wrapping_add(step);
                    (a, b)
                } else {
                    (cpu.gpr[0] & size_mask(size), load(cpu, cpu.gpr[7], size))
                };
                cpu.gpr[7] = cpu.gpr[7].wrapping_add(step);
                super::alu(&mut Live::new(cpu), Cmp, size, a, b);
            }
        }
        if !rep {
            break;
        }
        cpu.gpr[1] -= 1;
        if is_cmp {
            let z = cond(cpu, Cc::E);
            if (ins.has_rep_prefix() && !z) || (ins.has_repne_prefix() && z) {
                break;
            }
        }
    }
    Ok(())
}

/// Stores the x87/SSE state in the 512-byte FXSAVE layout at guest `a` (also the signal frame's
/// FP state).
/// FNSTENV's image: the 28-byte protected-mode environment (14 bytes with an operand-size
/// prefix). The instruction and operand pointers are stored as 0.
fn store_env(cpu: &mut Cpu, a: u64, small: bool) {
    let sw = super::x87::status_word(cpu);
    if small {
        let words = [cpu.fpu_cw as u64, sw, super::x87::full_tag_word(cpu), 0, 0, 0, 0];
        for (i, w) in words.iter().enumerate() {
            store(cpu, a.wrapping_add(2 * i as u64), *w, 2);
        }
    } else {
        let words = [
            cpu.fpu_cw as u64 | 0xffff_0000,
            sw | 0xffff_0000,
            super::x87::full_tag_word(cpu) | 0xffff_0000,
            0,
            0,
            0,
            0xffff_0000,
        ];
        for (i, w) in words.iter().enumerate() {
            store(cpu, a.wrapping_add(4 * i as u64), *w, 4);
        }
    }
}

/// FLDENV: control word (reserved bits as the hardware keeps them: bit 6 set, 7 and 13-15
/// clear), status word and stack top, tag word.
fn load_env(cpu: &mut Cpu, a: u64, small: bool) {
    let step = if small { 2 } else { 4 };
    cpu.fpu_cw = (load(cpu, a, 2) as u16 & 0x1f3f) | 0x40;
    let sw = load(cpu, a.wrapping_add(step), 2);
    cpu.fpu_sw = sw as u16;
    cpu.fpu_top = (sw >> 11) & 7;
    cpu.fpu_tag = load(cpu, a.wrapping_add(2 * step), 2);
    // Pending exceptions the new control word unmasks set the summary and busy bits.
    if cpu.fpu_sw & 0x3f & !cpu.fpu_cw != 0 {
        cpu.fpu_sw |= 0x8080;
    } else {
        cpu.fpu_sw &= !0x8080;
    }
}

pub fn fxsave_to(cpu: &mut Cpu, a: u64) {
    let sw = super::x87::status_word(cpu);
    let mut ftw = 0u64;
    for p in 0..8 {
        if (cpu.fpu_tag >> (2 * p)) & 3 != 3 {
            ftw |= 1 << p;
        }
    }
    store(cpu, a, cpu.fpu_cw as u64 | (sw << 16) | (ftw << 32), 8);
    store(cpu, a.wrapping_add(8), 0, 8);
    store(cpu, a.wrapping_add(16), 0, 8);
    store(cpu, a.wrapping_add(24), cpu.mxcsr as u64 | (0xffff << 32), 8);
    for i in 0..8u64 {
        let p = ((cpu.fpu_top + i) & 7) as usize;
        let r = cpu.st[p];
        store(cpu, a.wrapping_add(32 + 16 * i), r[0], 8);
        store(cpu, a.wrapping_add(40 + 16 * i), r[1] & 0xffff, 8);
    }
    for i in 0..16u64 {
        let x = cpu.xmm[i as usize];
        store(cpu, a.wrapping_add(160 + 16 * i), x[0], 8);
        store(cpu, a.wrapping_add(168 + 16 * i), x[1], 8);
    }
}

/// Loads the x87/SSE state from the FXSAVE layout at guest `a`.
pub fn fxrstor_from(cpu: &mut Cpu, a: u64) {
    let w0 = load(cpu, a, 8);
    cpu.fpu_cw = w0 as u16;
    cpu.fpu_sw = (w0 >> 16) as u16;
    cpu.fpu_top = (w0 >> 27) & 7;
    let ftw = (w0 >> 32) & 0xff;
    cpu.mxcsr = load(cpu, a.wrapping_add(24), 4) as u32;
    for i in 0..8u64 {
        let p = ((cpu.fpu_top + i) & 7) as usize;
        cpu.st[p] = [
            load(cpu, a.wrapping_add(32 + 16 * i), 8),
            load(cpu, a.wrapping_add(40 + 16 * i), 2),
        ];
    }
    let mut tag = 0u64;
    for p in 0..8 {
        // Valid registers are re-tagged as "valid"; the abridged tag cannot say more.
        if ftw & (1 << p) == 0 {
            tag |= 3 << (2 * p);
        }
    }
    cpu.fpu_tag = tag;
    for i in 0..16u64 {
        cpu.xmm[i as usize] = [
            load(cpu, a.wrapping_add(160 + 16 * i), 8),
            load(cpu, a.wrapping_add(168 + 16 * i), 8),
        ];
    }
}
