//! Guest code to decoded blocks: iced-x86 decoding, block ends and lengths. Pure: no execution.

use iced_x86::{Code, Decoder, DecoderError, DecoderOptions, FlowControl, Instruction, Mnemonic};

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
    /// The block stops before an instruction Kiln cannot run (or bytes that do not decode):
    /// its address and bytes.
    pub stop: Option<(u64, Vec<u8>, Instruction)>,
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
        if d.last_error() == DecoderError::NoMoreBytes && !insns.is_empty() {
            // The buffer (or readable memory) ends inside this instruction: end the block
            // before it; the next block starts there.
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
        stop,
    }
}

/// The six arithmetic flags in iced's `RflagsBits` encoding.
const ARITH_FLAGS: u32 = 0x3f;

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
    let mut live = ARITH_FLAGS;
    let mut out = vec![true; insns.len()];
    for (i, ins) in insns.iter().enumerate().rev() {
        let written = ins.rflags_modified() & ARITH_FLAGS;
        out[i] = written & live != 0;
        let kills = if conditional_flag_write(ins) { 0 } else { written };
        live = (live & !kills) | (ins.rflags_read() & ARITH_FLAGS);
    }
    out
}
