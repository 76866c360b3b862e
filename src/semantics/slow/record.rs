//! An instruction as compiled code hands it to the slow helper: iced-x86's own serde record of
//! a decoded instruction, in bincode's fixed-width layout, as `WORDS` 64-bit words that the
//! unit stores on its stack before the call (`jit::lower`). With it the helper needs no
//! decoder, whose tables cost about 0.4 ms to build at a process's first decode: a warm run
//! whose slow instructions all come from compiled code (locked exchanges, `cpuid`,
//! `rep stos` in every libc's start-up) never builds them.
//!
//! The record is only data: deserialising it checks every field (an instruction code,
//! registers and operand kinds out of range are refused), and a record that is not one makes
//! the helper decode the guest's bytes instead. A unit may run where its module lies elsewhere
//! than where it was compiled (a library's translations serve every program that maps it), so
//! the record is moved to the address the unit runs at.

use iced_x86::{Instruction, OpKind, Register};

/// The record's size in 64-bit words (iced-x86's instruction is 40 bytes).
pub const WORDS: usize = 5;

/// An instruction's record.
pub type Record = [u64; WORDS];

fn layout() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_fixed_int_encoding()
        .with_little_endian()
}

/// The record of `ins` (None if it does not fit, which would leave the helper decoding).
pub fn encode(ins: &Instruction) -> Option<Record> {
    let mut bytes = [0u8; WORDS * 8];
    bincode::serde::encode_into_slice(ins, &mut bytes, layout()).ok()?;
    let mut words = [0u64; WORDS];
    for (w, b) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_le_bytes(b.try_into().ok()?);
    }
    Some(words)
}

thread_local! {
    /// The records already decoded, by the address they were moved to: a slow instruction in a
    /// loop runs its helper at every pass, and deserialising the record each time cost about
    /// as much as running it (`pcmpistri` in libc's string functions, `palignr`).
    static DECODED: std::cell::RefCell<super::memo::Memo<(Record, Instruction)>> =
        std::cell::RefCell::new(Default::default());
}

/// `decode`, remembered per address: the same record at the same address is the same
/// instruction, so a changed one (code translated again) is decoded afresh.
pub fn decode_at(record: &Record, rip: u64) -> Option<Instruction> {
    let known = DECODED.with(|d| d.borrow().get(rip, |(r, _)| r == record).map(|(_, i)| i));
    if known.is_some() {
        return known;
    }
    let ins = decode(record, rip)?;
    DECODED.with(|d| d.borrow_mut().remember(rip, (*record, ins)));
    Some(ins)
}

/// The instruction `record` holds, moved to `rip`; None if the record is not one.
pub fn decode(record: &Record, rip: u64) -> Option<Instruction> {
    let mut bytes = [0u8; WORDS * 8];
    for (b, w) in bytes.chunks_exact_mut(8).zip(record) {
        b.copy_from_slice(&w.to_le_bytes());
    }
    let (mut ins, _): (Instruction, usize) = bincode::serde::decode_from_slice(&bytes, layout()).ok()?;
    let delta = rip.wrapping_sub(ins.ip());
    if delta != 0 {
        move_by(&mut ins, delta);
    }
    Some(ins)
}

/// Moves `ins` by `delta` bytes: its own address, a rip-relative memory operand's address and
/// a near branch's target.
fn move_by(ins: &mut Instruction, delta: u64) {
    if ins.is_ip_rel_memory_operand() {
        let addr = ins.memory_displacement64().wrapping_add(delta);
        let addr = if ins.memory_base() == Register::EIP {
            addr as u32 as u64
        } else {
            addr
        };
        ins.set_memory_displacement64(addr);
    }
    for i in 0..ins.op_count() {
        match ins.op_kind(i) {
            OpKind::NearBranch64 => ins.set_near_branch64(ins.near_branch64().wrapping_add(delta)),
            OpKind::NearBranch32 => ins.set_near_branch32(ins.near_branch32().wrapping_add(delta as u32)),
            OpKind::NearBranch16 => ins.set_near_branch16(ins.near_branch16().wrapping_add(delta as u16)),
            _ => {}
        }
    }
    ins.set_next_ip(ins.next_ip().wrapping_add(delta));
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    fn at(bytes: &[u8], rip: u64) -> Instruction {
        Decoder::with_ip(64, bytes, rip, DecoderOptions::NONE).decode()
    }

    /// What the helper runs is what decoding the bytes where the unit runs gives, for
    /// instructions with rip-relative operands, branch targets and plain ones.
    #[test]
    fn records_move_with_their_module() {
        let cases: [&[u8]; 8] = [
            &[0x0f, 0xa2],                                     // cpuid
            &[0xf0, 0x48, 0x0f, 0xb1, 0x0d, 0x10, 0x20, 0, 0], // lock cmpxchg [rip+0x2010], rcx
            &[0x48, 0x87, 0x05, 0xf0, 0xff, 0xff, 0xff],       // xchg [rip-0x10], rax
            &[0x66, 0x0f, 0x3a, 0x0f, 0x44, 0x24, 0x08, 0x07], // palignr xmm0, [rsp+8], 7
            &[0x67, 0x8b, 0x05, 0x00, 0x01, 0x00, 0x00],       // mov eax, [eip+0x100]
            &[0xe3, 0x10],                                     // jrcxz +0x10
            &[0xe2, 0xf0],                                     // loop -0x10
            &[0xf3, 0x48, 0xab],                               // rep stosq
        ];
        let (from, to) = (0x40_1000u64, 0x7f12_3456_7000u64);
        for bytes in cases {
            let record = encode(&at(bytes, from)).expect("fits");
            let (got, want) = (decode(&record, to).expect("decodes"), at(bytes, to));
            assert_eq!(got, want, "{want}");
            assert_eq!((got.ip(), got.next_ip()), (want.ip(), want.next_ip()), "{want}");
            assert_eq!(got.memory_displacement64(), want.memory_displacement64(), "{want}");
            assert_eq!(format!("{got}"), format!("{want}"));
            assert_eq!(decode(&record, from), Some(at(bytes, from)), "{want}");
        }
    }

    #[test]
    fn records_that_are_not_instructions_are_refused() {
        assert_eq!(decode(&[u64::MAX; WORDS], 0x1000), None);
    }
}
