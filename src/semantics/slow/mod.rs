//! The slow path: instructions written over concrete CPU state, reached from the baseline tier
//! through `exec` and from compiled code through `helper_slow` (which gets the instruction as
//! a `record`, or decodes it again at the guest rip). `exec` routes to the concrete families
//! (MMX, the extensions, SSE, x87, locked read-modify-writes) and runs this family's own rows
//! otherwise.

mod bits;
mod exchange;
mod memo;
mod muldiv;
pub mod record;
pub mod strings;
mod system;
mod x87_env;

pub use system::{cpuid, hwcap};

use super::operand::Gpr;
use super::table::{row, unfuzzed, Family, Fuzz, Rows};
use crate::cpu::flags;
use crate::cpu::flags::{cpu_flags, store_flags};
use crate::cpu::ops::Values;
use crate::cpu::{exit, fault, Cpu};
use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind};

/// One row's implementation: runs the instruction, `Err(fault code)` on a guest fault.
pub type Handler = fn(&mut Cpu, &Instruction) -> Result<(), u64>;

use Mnemonic::*;

/// The slow path's own instructions (after the families `exec` routes to first).
pub static FAMILY: Family<Handler> = Family::new(
    "slow",
    &[
        row(&[Mul, Imul, Div, Idiv], muldiv::exec),
        row(
            &[
                Movsb, Movsw, Movsd, Movsq, Stosb, Stosw, Stosd, Stosq, Lodsb, Lodsw, Lodsd, Lodsq, Cmpsb, Cmpsw,
                Cmpsd, Cmpsq, Scasb, Scasw, Scasd, Scasq,
            ],
            strings::exec,
        ),
        row(&[Shld, Shrd], bits::double_shift),
        row(&[Rol, Ror, Rcl, Rcr], bits::rotate),
        row(&[Xadd], exchange::xadd),
        row(&[Cmpxchg], exchange::cmpxchg),
        unfuzzed(
            &[Cpuid],
            system::cpuid_ins,
            "reports Kiln's CPUID profile, not the host's",
        ),
        unfuzzed(&[Rdtsc], system::rdtsc, "reads the time stamp counter"),
        row(&[Cld, Std], system::direction),
        row(&[Pushfq], system::pushfq),
        unfuzzed(
            &[Popfq],
            system::popfq,
            "loads the whole RFLAGS, trap and system bits included",
        ),
        row(&[Push], system::push16),
        row(&[Pop], system::pop16),
        row(&[Leave], system::leave16),
        row(&[Lahf], system::lahf),
        row(&[Sahf], system::sahf),
        row(
            &[
                Pause,
                Lfence,
                Mfence,
                Sfence,
                Prefetchnta,
                Prefetcht0,
                Prefetcht1,
                Prefetcht2,
                Prefetchw,
                Prefetch,
                Endbr32,
                Wait,
            ],
            system::hint,
        ),
        row(&[Stmxcsr], system::stmxcsr),
        row(&[Ldmxcsr], system::ldmxcsr),
        unfuzzed(
            &[Fxsave, Fxsave64],
            system::fxsave,
            "FXSR: the fuzzer saves and restores its state with it",
        ),
        unfuzzed(
            &[Fxrstor, Fxrstor64],
            system::fxrstor,
            "FXSR: the fuzzer saves and restores its state with it",
        ),
        unfuzzed(&[Ud2], system::ud2, "raises #UD"),
        unfuzzed(&[Hlt], system::hlt, "stops the program"),
        unfuzzed(&[Int3], system::int3, "raises a breakpoint trap"),
        row(&[Fnstcw], x87_env::fnstcw),
        row(&[Fldcw], x87_env::fldcw),
        row(&[Fnstsw], x87_env::fnstsw),
        row(&[Fnstenv], x87_env::fnstenv),
        row(&[Fldenv], x87_env::fldenv),
        row(&[Fnsave], x87_env::fnsave),
        row(&[Frstor], x87_env::frstor),
        row(&[Fnclex], x87_env::fnclex),
        row(&[Fninit], x87_env::fninit),
    ],
);

/// Operand checks beside the table: the forms of a row's mnemonics this family does not take.
fn form_fits(ins: &Instruction) -> bool {
    match ins.mnemonic() {
        // movsd is also the SSE2 scalar move.
        Movsd => ins.code() == Code::Movsd_m32_m32,
        // Only the 16-bit pop (the others are generic).
        Pop => {
            ins.op_count() == 1
                && (ins.op_kind(0) == OpKind::Memory && ins.memory_size().size() == 2
                    || ins.op_kind(0) == OpKind::Register && ins.op_register(0).is_gpr16())
        }
        Leave => ins.code() == Code::Leavew,
        _ => true,
    }
}

/// The concrete family that implements an instruction on the slow path, in the order `exec`
/// tries them (MMX forms share mnemonics with SSE rows and go to MMX first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Mmx,
    Ext,
    Sse,
    SseFp,
    X87,
    /// This family's own rows.
    Own,
}

fn owner(ins: &Instruction) -> Option<Owner> {
    use super::{ext, mmx, sse, sse_fp, x87};
    Some(if mmx::supported(ins) {
        Owner::Mmx
    } else if ext::supported(ins) {
        Owner::Ext
    } else if sse::slow_supported(ins) {
        Owner::Sse
    } else if sse_fp::supported(ins) {
        Owner::SseFp
    } else if x87::supported(ins) {
        Owner::X87
    } else if FAMILY.has(ins.mnemonic()) && form_fits(ins) {
        Owner::Own
    } else {
        return None;
    })
}

/// Whether the slow path implements the instruction (locked forms aside: `classify` asks
/// `atomic` about those first).
pub fn supported(ins: &Instruction) -> bool {
    owner(ins).is_some()
}

/// Locked read-modify-writes go to `atomic` unless a vector or x87 family owns the form.
fn goes_to_atomic(ins: &Instruction, owner: Option<Owner>) -> bool {
    matches!(owner, None | Some(Owner::Own)) && super::atomic::needs_atomic(ins)
}

/// Executes one instruction over concrete state. `Err(fault code)` on a guest fault.
pub fn exec(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    use super::{atomic, ext, mmx, sse, sse_fp, x87};
    let owner = owner(ins);
    if goes_to_atomic(ins, owner) {
        return atomic::exec(cpu, ins);
    }
    match owner {
        Some(Owner::Mmx) => simd_exceptions(cpu, |cpu| mmx::exec(cpu, ins)),
        Some(Owner::Ext) => simd_exceptions(cpu, |cpu| ext::exec(cpu, ins)),
        Some(Owner::Sse) => sse::slow_exec(cpu, ins),
        Some(Owner::SseFp) => simd_exceptions(cpu, |cpu| sse_fp::exec(cpu, ins)),
        Some(Owner::X87) => x87::exec(cpu, ins),
        Some(Owner::Own) => match FAMILY.row(ins.mnemonic()) {
            Some(r) => (r.handler)(cpu, ins),
            None => Err(fault::UNIMPLEMENTED),
        },
        None => Err(fault::UNIMPLEMENTED),
    }
}

/// The fuzz decision of the row `exec` would run the instruction with.
pub fn fuzz_decision(ins: &Instruction) -> Option<Fuzz> {
    use super::{atomic, ext, mmx, sse, sse_fp, x87};
    let m = ins.mnemonic();
    let owner = owner(ins);
    if goes_to_atomic(ins, owner) {
        return atomic::FAMILY.fuzz(m);
    }
    match owner? {
        Owner::Mmx => mmx::FAMILY.fuzz(m),
        Owner::Ext => ext::FAMILY.fuzz(m),
        Owner::Sse => sse::SLOW_FAMILY.fuzz(m),
        Owner::SseFp => sse_fp::FAMILY.fuzz(m),
        Owner::X87 => x87::FAMILY.fuzz(m),
        Owner::Own => FAMILY.fuzz(m),
    }
}

/// The arithmetic flags as a raw RFLAGS value.
fn arith_flags(cpu: &Cpu) -> u64 {
    flags::materialize(&mut Values, &cpu_flags(cpu))
}

/// The accumulator (al/ax/eax/rax) of an operand size.
fn acc(size: u8) -> Gpr {
    Gpr {
        idx: 0,
        size,
        high8: false,
    }
}

/// Compiled code's entry to the slow path: run the instruction at `rip`, which `record`
/// describes (a string instruction's `strings::Compact` word, or a `record::Record`'s address,
/// or 0: decode the guest's bytes). Returns an exit code (`exit::NEXT` or `exit::FAULT`).
///
/// # Safety
/// `cpu` is the live context of the calling thread (compiled code passes its own), and
/// `record` is a compact word, 0 or points to `record::WORDS` readable words.
pub unsafe extern "C" fn helper_slow(cpu: *mut Cpu, rip: u64, record: u64) -> u64 {
    // SAFETY: compiled code passes its own live context.
    let cpu = unsafe { &mut *cpu };
    let (done, next) = match strings::Compact::from_word(record) {
        Some(op) => (strings::run(cpu, op), rip.wrapping_add(op.len)),
        None => {
            // SAFETY: compiled code passes a record on its stack, or 0.
            let given = (record != 0).then(|| unsafe { (record as *const record::Record).read_unaligned() });
            let ins = match given.and_then(|r| record::decode_at(&r, rip)) {
                Some(ins) => ins,
                None => decoded_at(rip),
            };
            (exec(cpu, &ins), ins.next_ip())
        }
    };
    match done {
        // The thread was woken meanwhile, maybe by this instruction writing translated code
        // (`mem::watch`): the dispatcher sees to it now, as compiled code checks the word only
        // where units start and loops go round (`fault::WROTE_CODE`). Never control flow, the
        // instruction goes on at the next.
        Ok(()) if cpu.interrupt.0.load(std::sync::atomic::Ordering::Relaxed) != 0 => {
            cpu.fault = fault::WROTE_CODE;
            cpu.rip = next;
            exit::FAULT
        }
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
    /// Instructions already decoded for `helper_slow`, by guest address, with their bytes: an
    /// entry serves only while the guest still has those bytes there (code rewritten and
    /// translated again calls the helper at the same address).
    static DECODED: std::cell::RefCell<memo::Memo<(Instruction, [u8; 15])>> =
        std::cell::RefCell::new(Default::default());
}

/// Forgets every memoised decode (the fuzzer reuses one guest address for many instructions).
pub fn forget_decoded() {
    DECODED.with(|m| m.borrow_mut().forget());
}

fn decoded_at(rip: u64) -> Instruction {
    let p = crate::mem::host(rip);
    // SAFETY: the unit was translated from these bytes, so they are mapped.
    let bytes = unsafe { std::slice::from_raw_parts(p, 15) };
    let known = DECODED.with(|d| {
        (d.borrow())
            .get(rip, |(i, b)| b[..i.len()] == bytes[..i.len()])
            .map(|(i, _)| i)
    });
    if let Some(i) = known {
        return i;
    }
    let mut d = Decoder::with_ip(64, bytes, rip, DecoderOptions::NONE);
    let ins = d.decode();
    // Only the instruction's own bytes: the rest may lie beyond the mapping.
    let mut copy = [0u8; 15];
    copy[..ins.len()].copy_from_slice(&bytes[..ins.len()]);
    DECODED.with(|m| m.borrow_mut().remember(rip, (ins, copy)));
    ins
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
    let fl = cpu_flags(cpu);
    cpu.mxcsr = before & !0x3f;
    let r = run(cpu);
    let raised = cpu.mxcsr & 0x3f;
    let unmasked = raised & !(before >> 7) & 0x3f;
    if r.is_ok() && unmasked != 0 {
        cpu.xmm = xmm;
        cpu.gpr = gpr;
        store_flags(cpu, fl);
        let pre = super::fp::mx::IE | super::fp::mx::DE | super::fp::mx::ZE;
        cpu.mxcsr = before | if unmasked & pre != 0 { raised & pre } else { raised };
        return Err(fault::SIMD);
    }
    cpu.mxcsr = if r.is_ok() { before | raised } else { before };
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_exclusions_are_the_rows_marked_unfuzzed() {
        use crate::semantics::table::Fuzz;
        for m in [
            Cpuid, Rdtsc, Popfq, Fxsave, Fxsave64, Fxrstor, Fxrstor64, Ud2, Hlt, Int3,
        ] {
            assert!(matches!(FAMILY.row(m).map(|r| r.fuzz), Some(Fuzz::No(_))), "{m:?}");
        }
        assert_eq!(FAMILY.row(Shld).map(|r| r.fuzz), Some(Fuzz::Yes));
    }

    #[test]
    fn sse_movsd_is_not_the_string_move() {
        let sse = Decoder::with_ip(64, &[0xf2, 0x0f, 0x10, 0xc1], 0, DecoderOptions::NONE).decode();
        let string = Decoder::with_ip(64, &[0xa5], 0, DecoderOptions::NONE).decode();
        assert!(!form_fits(&sse));
        assert!(form_fits(&string));
    }
}
