//! Guest code to decoded blocks: iced-x86 decoding, block ends and lengths. Pure: no execution.

use iced_x86::{Code, Decoder, DecoderError, DecoderOptions, FlowControl, Instruction, Mnemonic};

mod region;
pub use region::{direct_call_target, ends_in_return, return_site, static_targets, Limits, Region};

/// Longest block, in instructions.
pub const MAX_BLOCK_INSNS: usize = 128;

/// A straight-line run of guest instructions ending in control flow (or a stop).
#[derive(Clone)]
pub struct Block {
    pub start: u64,
    pub insns: Vec<Instruction>,
    /// Per instruction: where its semantics live (the caller's classification).
    pub routes: Vec<u8>,
    /// Per instruction: whether an arithmetic flag it writes may be read afterwards (inside the
    /// block or after it). Semantics skip flag work for instructions where this is false.
    pub flags_live: Vec<bool>,
    /// Bytes covered, from `start`.
    pub len: u64,
    /// The guest bytes the block was decoded from (`len` of them).
    pub bytes: Vec<u8>,
    /// The block stops before an instruction Kiln cannot run (or bytes that do not decode):
    /// its address and bytes. No bytes: the first instruction cannot be fetched, and the
    /// address is the first byte that is not executable.
    pub stop: Option<(u64, Vec<u8>, Instruction)>,
}

impl Block {
    /// The block cut to its first instruction (none if it has none), whose flags are taken as
    /// read after it: what runs after it may no longer be what the block held.
    pub fn first_only(mut self) -> Block {
        self.insns.truncate(1);
        self.routes.truncate(1);
        self.flags_live = vec![true; self.insns.len()];
        self.len = self.insns.first().map_or(0, |i| i.len() as u64);
        self.bytes.truncate(self.len as usize);
        if !self.insns.is_empty() {
            self.stop = None;
        }
        self
    }
}

/// Decodes the block at guest `rip` from `code`, the readable guest bytes starting there.
/// `supported` says which instructions the semantics implement.
pub fn decode_block(code: &[u8], rip: u64, classify: impl Fn(&Instruction) -> Option<u8>) -> Block {
    decode_bytes(code, rip, &classify)
}

fn decode_bytes(buf: &[u8], rip: u64, classify: &impl Fn(&Instruction) -> Option<u8>) -> Block {
    let mut routes = Vec::new();
    let mut d = Decoder::with_ip(64, buf, rip, DecoderOptions::NONE);
    let mut insns = Vec::new();
    let mut stop = None;
    let mut ins = Instruction::default();
    while insns.len() < MAX_BLOCK_INSNS {
        if !d.can_decode() {
            if insns.is_empty() {
                stop = Some((rip, Vec::new(), Instruction::default()));
            }
            break;
        }
        d.decode_out(&mut ins);
        let off = (ins.ip() - rip) as usize;
        if d.last_error() == DecoderError::NoMoreBytes {
            // The buffer (or executable memory) ends inside this instruction: end the block
            // before it; the next block starts there, and cannot fetch past the end.
            if insns.is_empty() {
                stop = Some((rip + buf.len() as u64, Vec::new(), Instruction::default()));
            }
            break;
        }
        let route = if ins.code() == Code::INVALID {
            None
        } else {
            classify(&ins)
        };
        let Some(route) = route else {
            let end = (off + ins.len().max(1)).min(buf.len());
            stop = Some((ins.ip(), buf[off..end].to_vec(), ins));
            break;
        };
        insns.push(ins);
        routes.push(route);
        if ins.flow_control() != FlowControl::Next || ins.mnemonic() == Mnemonic::Syscall {
            break;
        }
    }
    let len = insns.last().map(|i| i.next_ip() - rip).unwrap_or(0);
    let flags_live = flag_liveness(&insns);
    Block {
        start: rip,
        insns,
        routes,
        flags_live,
        len,
        bytes: buf[..len as usize].to_vec(),
        stop,
    }
}

/// The guest address of the memory operand of the instruction in `code` (at guest `rip`) that
/// lies outside `space` (the guest addresses that are their own host address: beyond it, in
/// the null page, or non-canonical), computed from the registers of `cpu` as they were
/// before the instruction: what a fault in the guard (`mem::host`) reports as the guest's own
/// address; with whether that access writes (only: a
/// read-modify-write faults on its read).
pub fn address_outside(
    code: &[u8],
    rip: u64,
    space: std::ops::Range<u64>,
    cpu: &crate::cpu::Cpu,
) -> Option<(u64, bool)> {
    use iced_x86::{InstructionInfoFactory, OpAccess, Register};
    let ins = Decoder::with_ip(64, code, rip, DecoderOptions::NONE).decode();
    if ins.code() == Code::INVALID {
        return None;
    }
    let value = |r: Register, _: usize, _: usize| -> Option<u64> {
        Some(match r {
            Register::FS => cpu.fs_base,
            Register::GS => cpu.gs_base,
            Register::ES | Register::CS | Register::SS | Register::DS => 0,
            Register::RIP => ins.next_ip(),
            r if r.is_gpr64() => cpu.gpr[r.number()],
            r if r.is_gpr32() => cpu.gpr[r.number()] & 0xffff_ffff,
            _ => return None,
        })
    };
    let mut info = InstructionInfoFactory::new();
    let used = info.info(&ins).used_memory().to_vec();
    used.iter()
        .filter_map(|m| Some((m.virtual_address(0, value)?, m.access())))
        .find(|&(a, _)| !space.contains(&a))
        .map(|(a, access)| (a, matches!(access, OpAccess::Write | OpAccess::CondWrite)))
}

/// The six arithmetic flags in iced's `RflagsBits` encoding.
pub const ARITH_FLAGS: u32 = 0x3f;

/// The RFLAGS bits (`cpu::rflags`) of the arithmetic flags in `iced` (iced's `RflagsBits`).
pub fn rflags_bits(iced: u32) -> u64 {
    use crate::cpu::rflags as rf;
    use iced_x86::RflagsBits as I;
    [
        (I::OF, rf::OF),
        (I::SF, rf::SF),
        (I::ZF, rf::ZF),
        (I::AF, rf::AF),
        (I::CF, rf::CF),
        (I::PF, rf::PF),
    ]
    .into_iter()
    .filter(|&(bit, _)| iced & bit != 0)
    .fold(0, |m, (_, f)| m | f)
}

/// Whether the instruction's flag writes depend on a run-time count (a zero count writes none),
/// so it cannot be trusted to overwrite earlier flags.
fn conditional_flag_write(ins: &Instruction) -> bool {
    use iced_x86::{OpKind, Register};
    use Mnemonic::*;
    let counted = matches!(
        ins.mnemonic(),
        Shl | Sal | Shr | Sar | Rol | Ror | Rcl | Rcr | Shld | Shrd
    );
    let by_cl = (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Register && ins.op_register(i) == Register::CL);
    let by_zero = (0..ins.op_count()).any(|i| ins.op_kind(i) == OpKind::Immediate8 && ins.immediate(i) & 31 == 0);
    counted && (by_cl || by_zero)
}

/// Backward liveness of the arithmetic flags over a block; all flags are live at its end.
pub fn flag_liveness(insns: &[Instruction]) -> Vec<bool> {
    flag_liveness_from(insns, ARITH_FLAGS).0
}

/// Backward liveness of the arithmetic flags over a block whose end has the flags in
/// `live_out` live (iced's `RflagsBits`): per instruction whether a flag it writes is read
/// later, and the flags live at the block's start.
pub fn flag_liveness_from(insns: &[Instruction], live_out: u32) -> (Vec<bool>, u32) {
    let (after, live_in) = flags_live_after(insns, live_out);
    let written = |ins: &Instruction| ins.rflags_modified() & ARITH_FLAGS;
    (
        insns.iter().zip(after).map(|(ins, a)| written(ins) & a != 0).collect(),
        live_in,
    )
}

/// Per instruction, the flags live after it in a block whose end has `live_out` live; and
/// the flags live at the block's start.
pub fn flags_live_after(insns: &[Instruction], live_out: u32) -> (Vec<u32>, u32) {
    let mut live = live_out;
    let mut after = vec![0; insns.len()];
    for (i, ins) in insns.iter().enumerate().rev() {
        after[i] = live;
        let written = ins.rflags_modified() & ARITH_FLAGS;
        let kills = if conditional_flag_write(ins) { 0 } else { written };
        live = (live & !kills) | (ins.rflags_read() & ARITH_FLAGS);
    }
    (after, live)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every instruction is "implemented" on route 0 except `ud2`.
    fn all_but_ud2(ins: &Instruction) -> Option<u8> {
        (ins.mnemonic() != Mnemonic::Ud2).then_some(0)
    }

    fn block(bytes: &[u8]) -> Block {
        decode_block(bytes, 0x1000, all_but_ud2)
    }

    #[test]
    fn a_block_ends_after_control_flow_and_syscall() {
        // add eax, ebx; jmp +0; nop
        let b = block(&[0x01, 0xd8, 0xeb, 0x00, 0x90]);
        assert_eq!(b.insns.len(), 2);
        assert_eq!(b.len, 4);
        assert!(b.stop.is_none());
        // syscall; nop
        assert_eq!(block(&[0x0f, 0x05, 0x90]).insns.len(), 1);
    }

    #[test]
    fn a_block_stops_before_what_cannot_run() {
        // nop; ud2
        let b = block(&[0x90, 0x0f, 0x0b]);
        assert_eq!(b.insns.len(), 1);
        let (addr, bytes, ins) = b.stop.expect("a stop");
        assert_eq!((addr, bytes, ins.mnemonic()), (0x1001, vec![0x0f, 0x0b], Mnemonic::Ud2));
        // Nothing readable at all.
        let empty = block(&[]);
        assert!(empty.insns.is_empty() && empty.stop.is_some());
    }

    #[test]
    fn an_instruction_cut_by_the_end_of_memory_ends_the_block_before_it() {
        // nop; then the first two bytes of `mov eax, imm32`.
        let b = block(&[0x90, 0xb8, 0x01]);
        assert_eq!((b.insns.len(), b.len), (1, 1));
        assert!(b.stop.is_none(), "the cut instruction is the next block's, not a stop");
    }

    #[test]
    fn blocks_are_at_most_max_block_insns_long() {
        let b = block(&[0x90; 300]);
        assert_eq!(b.insns.len(), MAX_BLOCK_INSNS);
    }

    #[test]
    fn flags_overwritten_before_any_read_are_dead() {
        // add eax, ebx; sub eax, ecx; jz +0: the add's flags are dead, the sub's live.
        let b = block(&[0x01, 0xd8, 0x29, 0xc8, 0x74, 0x00]);
        assert_eq!(b.flags_live, vec![false, true, false]);
        // add eax, ebx; adc ecx, edx; ret: adc reads CF, so the add's flags stay live.
        let b = block(&[0x01, 0xd8, 0x11, 0xd1, 0xc3]);
        assert_eq!(b.flags_live, vec![true, true, false]);
    }

    #[test]
    fn a_shift_by_a_count_that_may_be_zero_does_not_kill_earlier_flags() {
        // add eax, ebx; shl eax, cl; ret: with cl = 0 the add's flags survive.
        let b = block(&[0x01, 0xd8, 0xd3, 0xe0, 0xc3]);
        assert_eq!(b.flags_live, vec![true, true, false]);
        // add eax, ebx; shl eax, 1; ret: the shift by one always writes the flags.
        let b = block(&[0x01, 0xd8, 0xd1, 0xe0, 0xc3]);
        assert_eq!(b.flags_live, vec![false, true, false]);
    }

    #[test]
    fn address_outside_is_the_access_beyond_the_space_with_its_direction() {
        let space = 4096..1 << 40;
        let mut cpu = crate::cpu::Cpu::new();
        cpu.gpr[3] = 0x200_0000_0000; // rbx
        let load = [0x48, 0x8b, 0x43, 0x08]; // mov rax, [rbx+8]
        assert_eq!(
            address_outside(&load, 0x1000, space.clone(), &cpu),
            Some((0x200_0000_0008, false))
        );
        let store = [0x89, 0x03]; // mov [rbx], eax
        assert_eq!(
            address_outside(&store, 0x1000, space.clone(), &cpu),
            Some((0x200_0000_0000, true))
        );
        cpu.gpr[4] = 0x300_0000_0000; // rsp
        assert_eq!(
            address_outside(&[0x50], 0x1000, space.clone(), &cpu),
            Some((0x300_0000_0000 - 8, true))
        );
        cpu.fs_base = 0x8000_0000_0000_0000;
        let fs = [0x64, 0x48, 0x8b, 0x04, 0x25, 0x10, 0, 0, 0]; // mov rax, fs:[0x10]
        assert_eq!(
            address_outside(&fs, 0x1000, space.clone(), &cpu),
            Some((0x8000_0000_0000_0010, false))
        );
        cpu.gpr[3] = 0x1000;
        assert_eq!(address_outside(&load, 0x1000, space.clone(), &cpu), None);
        cpu.gpr[3] = 0; // the null page
        assert_eq!(address_outside(&load, 0x1000, space, &cpu), Some((8, false)));
    }

    #[test]
    fn a_first_instruction_cut_by_the_end_of_executable_memory_stops_where_fetching_fails() {
        let b = decode_block(&[0xb8, 1], 0x1ffe, |_| Some(0)); // mov eax, imm32, cut
        assert!(b.insns.is_empty());
        let (addr, bytes, _) = b.stop.expect("a stop");
        assert_eq!((addr, bytes.len()), (0x2000, 0));
        let none = decode_block(&[], 0x3000, |_| Some(0));
        assert_eq!(none.stop.map(|s| (s.0, s.1.len())), Some((0x3000, 0)));
    }
}
