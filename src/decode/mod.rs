//! Guest code to decoded blocks: iced-x86 decoding, block ends and lengths. Pure: no execution.

use iced_x86::{Code, Decoder, DecoderError, DecoderOptions, FlowControl, Instruction, Mnemonic};

/// Longest block, in instructions.
pub const MAX_BLOCK_INSNS: usize = 128;

/// A straight-line run of guest instructions ending in control flow (or a stop).
#[derive(Clone)]
pub struct Block {
    pub start: u64,
    pub insns: Vec<Instruction>,
    /// Bytes covered, from `start`.
    pub len: u64,
    /// The block stops before an instruction Kiln cannot run (or bytes that do not decode):
    /// its address and bytes.
    pub stop: Option<(u64, Vec<u8>, Instruction)>,
}

/// Reads up to `buf.len()` guest bytes at host address `p` without faulting; returns how many
/// were readable.
fn safe_read(p: u64, buf: &mut [u8]) -> usize {
    let mut done = 0usize;
    while done < buf.len() {
        let addr = p + done as u64;
        let in_page = (4096 - (addr & 4095)) as usize;
        let n = in_page.min(buf.len() - done);
        let local = libc::iovec {
            iov_base: buf[done..].as_mut_ptr() as *mut libc::c_void,
            iov_len: n,
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: n,
        };
        // SAFETY: reads our own address space into our buffer; the kernel reports unreadable
        // memory as an error instead of faulting.
        let r = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        if r <= 0 {
            break;
        }
        done += r as usize;
        if (r as usize) < n {
            break;
        }
    }
    done
}

/// Decodes the block at guest `rip`; `host_base` is the host address of guest 0 and `mask`
/// the guest address mask. `supported` says which instructions the semantics implement.
pub fn decode_block(host_base: u64, mask: u64, rip: u64, supported: impl Fn(&Instruction) -> bool) -> Block {
    let mut buf = vec![0u8; 2048];
    let n = safe_read(host_base + (rip & mask), &mut buf);
    buf.truncate(n);
    let mut d = Decoder::with_ip(64, &buf, rip, DecoderOptions::NONE);
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
        if ins.code() == Code::INVALID || !supported(&ins) {
            let end = (off + ins.len().max(1)).min(buf.len());
            stop = Some((ins.ip(), buf[off..end].to_vec(), ins));
            break;
        }
        insns.push(ins);
        if ins.flow_control() != FlowControl::Next || ins.mnemonic() == Mnemonic::Syscall {
            break;
        }
    }
    let len = insns.last().map(|i| i.next_ip() - rip).unwrap_or(0);
    Block {
        start: rip,
        insns,
        len,
        stop,
    }
}
