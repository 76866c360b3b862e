//! Guest CPU state: the `#[repr(C)]` context shared by both tiers, with its field offsets,
//! RFLAGS bits, exit and fault codes. Lazy flags live in `flags` (over the value arithmetic
//! of `ops`).
//!
//! Compiled code reaches every field through fixed offsets from the context pointer, so the
//! layout is part of the translation config (see `CPU_LAYOUT_VERSION`).

pub mod flags;
pub mod ops;

pub use flags::FlagKind;
use std::mem::offset_of;
use std::sync::atomic::AtomicU64;

pub mod fxsave;

/// Bumped whenever a field of [`Cpu`] moves: compiled units depend on the offsets.
pub const CPU_LAYOUT_VERSION: u32 = 14;

/// log2 of the most entries a chaining table grows to. A table is sized to the units chained
/// into it (`dispatch::units`), since every run touches nearly all of it (a warm run's prefill
/// spreads its units over every page) and fresh memory costs its zeroing: 2^20 entries
/// (16 MiB) cost warm `cc1 -O2 hello.i` about 5% more CPU than 2^18 (4 MiB), whose extra
/// collisions cost a large run nothing measurable (lparser.i 1.00x, dispatcher entries 7 -> 8
/// per million instructions).
pub const CHAIN_MAX_BITS: u32 = 18;

/// log2 of the fewest entries a chaining table has.
pub const CHAIN_MIN_BITS: u32 = 12;

/// log2 of the guest code bytes one chaining table slot stands for.
pub const CHAIN_GRAIN: u32 = 3;

/// The chaining table slot of a guest rip in a table of 2^`bits` entries: its bits above the
/// grain with the bits above the largest table's span folded on once. Rips less than the
/// table's span apart never collide unless they lie in one grain; a fold by fewer bits than
/// the table's (16 did) makes rips that differ both low and high collide in pairs (warm cc1
/// lparser.i: 56 dispatcher entries per million guest instructions with it, 28 with this). A
/// multiplicative hash spreads better still but lengthens every exit's dependency chain (8%
/// slower on the same run). The grain keeps the units of one guest page in few pages of the
/// table: each table page a unit is the first to use costs a page fault, and a slot per byte
/// (no grain) spread a short run's units over as many table pages as units. A slot per 8
/// bytes puts a guest page's units in 2 table pages (a warm static hello's prefill touched 94
/// table pages with a slot per 4 bytes, about 60 with this: static hello and `busybox sort`
/// 0.86x CPU, `as` 0.99x, `cc1 -O2 lparser.i` 1.00x, with dispatcher entries 2 -> 4 per
/// million guest instructions there; a slot per 16 bytes shares one among a fifth of `cc1`'s
/// units, and two entries to a bucket of 16 bytes cost every lookup a second comparison and
/// the packs 5% more code). Compiled code takes the slot's offset with `Cpu::chain_mask`.
#[inline]
pub fn chain_slot(rip: u64, bits: u32) -> u64 {
    ((rip ^ (rip >> (CHAIN_MAX_BITS + CHAIN_GRAIN))) >> CHAIN_GRAIN) & ((1 << bits) - 1)
}

/// What compiled code ands a folded rip with for its slot's offset in a table of 2^`bits`
/// entries (`Cpu::chain_mask`).
pub const fn chain_mask(bits: u32) -> u64 {
    ((1 << bits) - 1) << CHAIN_GRAIN
}

/// Where, in `Cpu::rip`, compiled code keeps the signed distance of its last checkpoint from
/// the address below it (the unit's head as the unit found it at its entry, or a call's
/// return address). Guest addresses are below `mem::GUEST_SPACE`, far below this bit; regions
/// span less than 32 KiB.
pub const CHECKPOINT_SHIFT: u32 = 48;

/// `Cpu::rip` as compiled code may leave it at a fault, settled to the guest address it
/// stands for.
#[inline]
pub fn settled_rip(rip: u64) -> u64 {
    (rip & ((1 << CHECKPOINT_SHIFT) - 1)).wrapping_add(((rip as i64) >> CHECKPOINT_SHIFT) as u64)
}

/// RFLAGS bit positions.
pub mod rflags {
    pub const CF: u64 = 1 << 0;
    pub const PF: u64 = 1 << 2;
    pub const AF: u64 = 1 << 4;
    pub const ZF: u64 = 1 << 6;
    pub const SF: u64 = 1 << 7;
    pub const OF: u64 = 1 << 11;
    /// The arithmetic flags that the lazy record describes.
    pub const ARITH: u64 = CF | PF | AF | ZF | SF | OF;
}

/// Why a unit or the interpreter handed control back to the dispatcher.
pub mod exit {
    /// Continue at `cpu.rip`.
    pub const NEXT: u64 = 0;
    /// A `syscall` instruction; `cpu.rip` is the instruction after it.
    pub const SYSCALL: u64 = 1;
    /// A guest fault; `cpu.fault` says which.
    pub const FAULT: u64 = 2;
    /// A guest `ret` to `cpu.ret_expect`, the address the unit that called this one (with a
    /// host call, `jit::region`) continues at: it returns to that unit's code, where the
    /// host's own return prediction expects it. The trampoline turns it into `NEXT`.
    pub const RETURN: u64 = 3;
}

/// Guest faults raised by instruction semantics.
pub mod fault {
    pub const DIVIDE: u64 = 1;
    pub const UNIMPLEMENTED: u64 = 2;
    pub const HALT: u64 = 3;
    pub const INT3: u64 = 4;
    pub const UD: u64 = 5;
    /// A guest memory access faulted on the host (see `linux::signals::on_host_fault`):
    /// `fault_addr` is the guest address, `fault_info` says how.
    pub const MEMORY: u64 = 6;
    /// General protection (a misaligned operand that must be aligned).
    pub const GP: u64 = 7;
    /// An unmasked SSE floating-point exception (#XM); MXCSR says which.
    pub const SIMD: u64 = 8;
    /// Not a guest fault: compiled code found a float guard failed after it ran on past it
    /// (`jit::float`); the baseline tier runs the guest block from the last checkpoint, whose
    /// rip and state the context holds, as after a host fault.
    pub const REPLAY: u64 = 9;
    /// Not a guest fault: the guest wrote a page of translated code (`mem::watch`) from
    /// compiled code, which left at once (`linux::signals::on_host_fault`: the instruction runs
    /// again from the last checkpoint, whose rip and state the context holds), or from the slow
    /// helper, which finished the instruction first (the context's rip is the next one). The
    /// baseline tier runs the rest of the guest block from the rip one instruction at a time,
    /// each decoded from the bytes there now (`Engine::step_to_block_end`), so that no later
    /// block of the region runs on from its old translation.
    pub const WROTE_CODE: u64 = 10;
}

/// Bits of `Cpu::fault_info` for `fault::MEMORY`.
pub mod fault_info {
    /// The access was a write.
    pub const WRITE: u64 = 1;
    /// The host raised SIGBUS (beyond the end of a mapped file) rather than SIGSEGV.
    pub const BUS: u64 = 2;
    /// An instruction fetch: the guest rip (at `Cpu::fault_addr`) is not executable.
    pub const FETCH: u64 = 4;
}

/// The host stack that units calling units may take, in bytes (`Cpu::call_floor`): far less
/// than any thread's stack, with room left for the helpers they call and for signal handlers.
pub const HOST_STACK_FOR_CALLS: u64 = 256 << 10;

/// `Cpu::ret_expect` where no unit waits for a return: a non-canonical address, which faults
/// when a `ret` there is fetched.
pub const NO_RETURN: u64 = 1 << 63;

#[repr(C)]
#[derive(Clone)]
pub struct Cpu {
    pub gpr: [u64; 16],
    /// The guest's rip. Inside compiled code the top bits (from `CHECKPOINT_SHIFT` up) may hold
    /// the last checkpoint's distance from the address the rest holds: a checkpoint then
    /// stores one 16-bit constant. The trampoline settles it (`settled_rip`) where a unit
    /// returns with a fault, the one way out that leaves it so.
    pub rip: u64,
    /// The lazy-flags record (`flags::cpu_flags`): its kind in bits 0-7 and its operand size
    /// in bytes in bits 8-15 (compiled code stores both with one immediate), then its values.
    pub flags_kind: u64,
    pub flags_res: u64,
    pub flags_a: u64,
    pub flags_b: u64,
    pub flags_aux: u64,
    /// The guest return address the innermost unit that made a host call to another waits
    /// for (`exit::RETURN`); any value where none waits.
    pub ret_expect: u64,
    /// The lowest host stack pointer at which a unit may still call another (set by the
    /// trampoline, `HOST_STACK_FOR_CALLS` below its own).
    pub call_floor: u64,
    /// `call_floor` while `links` allows links, else `u64::MAX`: a linked call tests both with
    /// one comparison (set by the trampoline).
    pub link_floor: u64,
    /// `mem::SPACE_LIMIT`: what compiled code compares the register part of an address with
    /// (a 64-bit constant in the code would be loaded from its own pages at every check).
    pub space_limit: u64,
    /// Host address of the chaining table: pairs (guest rip, unit entry), as many as
    /// `chain_mask` says.
    pub chain_table: u64,
    /// `chain_mask` of the chaining table's size (set by the dispatcher, which may grow the
    /// table, before it enters compiled code).
    pub chain_mask: u64,
    /// This thread's wake word (`linux::wake`): non-zero when a signal waits or code changed;
    /// compiled code then returns to the dispatcher at its next check. Other threads and signal
    /// handlers set it too.
    pub interrupt: WakeWord,
    /// Non-zero while units from packs may jump and call straight into other units of their
    /// pack through their links, past the dispatcher's checks: while every module whose units
    /// run is known to hold its file's bytes unchanged (`dispatch::prefill`).
    pub links: u64,
    pub fs_base: u64,
    /// Host address of the helper table compiled code calls through.
    pub helpers: u64,
    pub gs_base: u64,
    /// Direction flag (0 or 1).
    pub df: u64,
    /// Guest instructions executed in compiled code (the trampoline adds what the units it
    /// entered ran: `jit::unit_signature`).
    pub insns_compiled: u64,
    /// Pending fault code and the guest address it concerns.
    pub fault: u64,
    pub fault_addr: u64,
    pub mxcsr: u32,
    pub fpu_cw: u16,
    pub fpu_sw: u16,
    pub xmm: [[u64; 2]; 16],
    /// x87 physical registers, 80-bit values in the low bits of each u128 (little-endian halves).
    pub st: [[u64; 2]; 8],
    pub fpu_top: u64,
    pub fpu_tag: u64,
    /// Offset from `rip` (the running unit's or block's first instruction) of the instruction
    /// that may touch guest memory next: a host fault resumes the guest there. Compiled code
    /// writes back every register before such an instruction, so the context is precise.
    pub insn_off: u64,
    /// Host stack and frame pointers of the trampoline while it runs guest code: a guest
    /// memory fault lands back in the trampoline with them.
    pub host_sp: u64,
    pub host_fp: u64,
    pub fault_info: u64,
    /// The numbers 0 to `COUNTS - 1` in the first lane of each: what compiled code adds to its
    /// instruction count (`jit::COUNT`) is read here, next to the rest of the context, rather
    /// than from the unit's own code.
    pub counts: [[u64; 2]; COUNTS],
    /// The compiled unit the baseline tier's shim goes on to, with a tail call, after the
    /// blocks it ran led to it (`interp::helper_run_block`); 0 for none. After `counts`, so
    /// that no offset compiled code uses moves.
    pub enter_next: u64,
    /// Non-zero while the baseline tier runs blocks inside an entry of compiled code: a guest
    /// memory fault there happened in the baseline tier, whose context is exact, not in
    /// compiled code (which the dispatcher replays from its last checkpoint).
    pub in_baseline: u64,
    /// Where compiled code goes on, with a tail call, when the chaining table's slot for the
    /// rip it leaves for holds another (the baseline tier's shim, whose helper finds the unit
    /// or block there, `interp::helper_run_block`); 0: back to the dispatcher.
    pub miss_unit: u64,
}

/// How many small numbers `Cpu::counts` holds.
pub const COUNTS: usize = 256;

impl Cpu {
    pub fn new() -> Box<Cpu> {
        Box::new(Cpu {
            gpr: [0; 16],
            rip: 0,
            flags_kind: flags::kind_and_size(FlagKind::Raw, 8),
            flags_res: 0x202,
            flags_a: 0,
            flags_b: 0,
            flags_aux: 0,
            df: 0,
            fs_base: 0,
            gs_base: 0,
            space_limit: crate::mem::SPACE_LIMIT,
            helpers: 0,
            chain_table: 0,
            chain_mask: 0,
            links: 0,
            insns_compiled: 0,
            interrupt: WakeWord::default(),
            fault: 0,
            fault_addr: 0,
            mxcsr: 0x1f80,
            fpu_cw: 0x37f,
            fpu_sw: 0,
            xmm: [[0; 2]; 16],
            st: [[0; 2]; 8],
            fpu_top: 0,
            fpu_tag: 0xffff,
            insn_off: 0,
            host_sp: 0,
            host_fp: 0,
            fault_info: 0,
            ret_expect: NO_RETURN,
            call_floor: u64::MAX,
            link_floor: u64::MAX,
            counts: std::array::from_fn(|n| [n as u64, 0]),
            enter_next: 0,
            in_baseline: 0,
            miss_unit: 0,
        })
    }
}

/// A thread's wake word (`linux::wake`), which other threads and signal handlers set while the
/// thread runs. A copy of a context starts with a clear one of its own.
#[derive(Default)]
#[repr(transparent)]
pub struct WakeWord(pub AtomicU64);

impl Clone for WakeWord {
    fn clone(&self) -> WakeWord {
        WakeWord::default()
    }
}

/// Byte offsets of the fields compiled code touches, from the address compiled code holds the
/// context at: `BIAS` bytes into the `Cpu` (the trampoline adds it before it pins the
/// register), so that the guest registers below it and the sixteen words from `rip` up (the
/// flag record, what calls and returns test, the limit of addresses in reach, the chaining
/// table's address and the wake word) all lie within a signed byte of it, the one-byte
/// displacement of x86-64 addressing: each access three bytes shorter than with four.
pub mod off {
    use super::*;
    /// Where compiled code's context pointer points into the `Cpu`.
    pub const BIAS: i32 = offset_of!(Cpu, rip) as i32;
    const fn at(offset: usize) -> i32 {
        offset as i32 - BIAS
    }
    pub const fn gpr(i: usize) -> i32 {
        at(offset_of!(Cpu, gpr) + 8 * i)
    }
    pub const fn xmm(i: usize) -> i32 {
        at(offset_of!(Cpu, xmm) + 16 * i)
    }
    pub const RIP: i32 = at(offset_of!(Cpu, rip));
    pub const FLAGS_KIND: i32 = at(offset_of!(Cpu, flags_kind));
    pub const FLAGS_RES: i32 = at(offset_of!(Cpu, flags_res));
    pub const FLAGS_A: i32 = at(offset_of!(Cpu, flags_a));
    pub const FLAGS_B: i32 = at(offset_of!(Cpu, flags_b));
    pub const FLAGS_AUX: i32 = at(offset_of!(Cpu, flags_aux));
    pub const FS_BASE: i32 = at(offset_of!(Cpu, fs_base));
    pub const GS_BASE: i32 = at(offset_of!(Cpu, gs_base));
    pub const DF: i32 = at(offset_of!(Cpu, df));
    pub const SPACE_LIMIT: i32 = at(offset_of!(Cpu, space_limit));
    pub const HELPERS: i32 = at(offset_of!(Cpu, helpers));
    pub const CHAIN_TABLE: i32 = at(offset_of!(Cpu, chain_table));
    pub const CHAIN_MASK: i32 = at(offset_of!(Cpu, chain_mask));
    pub const LINKS: i32 = at(offset_of!(Cpu, links));
    pub const INSNS_COMPILED: i32 = at(offset_of!(Cpu, insns_compiled));
    pub const INTERRUPT: i32 = at(offset_of!(Cpu, interrupt));
    pub const INSN_OFF: i32 = at(offset_of!(Cpu, insn_off));
    pub const FAULT: i32 = at(offset_of!(Cpu, fault));
    pub const MXCSR: i32 = at(offset_of!(Cpu, mxcsr));
    pub const FAULT_ADDR: i32 = at(offset_of!(Cpu, fault_addr));
    pub const HOST_SP: i32 = at(offset_of!(Cpu, host_sp));
    pub const HOST_FP: i32 = at(offset_of!(Cpu, host_fp));
    pub const RET_EXPECT: i32 = at(offset_of!(Cpu, ret_expect));
    pub const CALL_FLOOR: i32 = at(offset_of!(Cpu, call_floor));
    pub const LINK_FLOOR: i32 = at(offset_of!(Cpu, link_floor));
    pub const ENTER_NEXT: i32 = at(offset_of!(Cpu, enter_next));
    pub const MISS_UNIT: i32 = at(offset_of!(Cpu, miss_unit));
    /// The offset of `Cpu::counts[n]`.
    pub const fn count(n: usize) -> i32 {
        at(offset_of!(Cpu, counts) + 16 * n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields compiled code touches most lie within a signed byte of its context pointer.
    #[test]
    fn the_hot_fields_take_one_byte_displacements() {
        let hot = [off::gpr(0), off::gpr(15), off::RIP, off::FLAGS_KIND, off::FLAGS_AUX];
        let calls = [off::RET_EXPECT, off::CALL_FLOOR, off::LINK_FLOOR];
        let addresses = [off::SPACE_LIMIT, off::CHAIN_TABLE, off::CHAIN_MASK, off::INTERRUPT];
        for o in hot.into_iter().chain(calls).chain(addresses) {
            assert!((-128..128).contains(&o), "offset {o} from the context pointer");
        }
    }

    /// A checkpoint's distance, as compiled code stores it (16 signed bits at the rip's top),
    /// settles to the address it stands for, before or after the base; a whole rip is kept.
    #[test]
    fn settled_rip_adds_the_signed_distance() {
        let base = 0x7f00_1234_5678u64;
        for d in [0i16, 1, 0x55, i16::MAX, -1, -0x40, i16::MIN] {
            let kept = base | u64::from(d as u16) << CHECKPOINT_SHIFT;
            assert_eq!(settled_rip(kept), base.wrapping_add(d as i64 as u64), "distance {d}");
        }
        assert_eq!(settled_rip(0x40_1000), 0x40_1000);
    }
}
