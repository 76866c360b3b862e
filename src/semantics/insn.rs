//! The view of a decoded instruction that the semantics read (`Insn`). iced-x86's
//! `Instruction` answers each question when it is asked; `Compact`, the baseline tier's form,
//! holds the answers the general-purpose instructions ask for (operands resolved to register
//! numbers and sizes, immediates, branch targets, the memory operand's parts), worked out once
//! when its block is decoded, and is read through `At` beside the instruction it came from;
//! `Shaped` is an `At` whose mnemonic, operand kinds and sizes are constants of its type
//! (`Form`), for handlers monomorphised per form. All run the same semantics: a family written
//! over `Insn` is one source for every view.

use super::operand::{gpr, is_imm, Gpr};
use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use std::marker::PhantomData;

/// An operand as the semantics use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// A general-purpose register.
    Reg(Gpr),
    /// The memory operand (`Insn::address`).
    Mem,
    /// An immediate, as `Instruction::immediate` gives it (sign-extended to 64 bits).
    Imm(u64),
    /// A near branch target.
    Branch(u64),
    /// Anything else (a vector, segment or control register...).
    Other,
}

/// The parts of a memory operand's address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Address {
    /// rip-relative: `disp` is the absolute address.
    pub rip_rel: bool,
    pub base: Option<Gpr>,
    pub index: Option<Gpr>,
    /// The index scale's log2.
    pub shift: u8,
    pub disp: u64,
    /// An fs (`Some(true)`) or gs (`Some(false)`) segment override.
    pub seg: Option<bool>,
    /// A 32-bit base or index: the address wraps at 32 bits before the segment base is added.
    pub addr32: bool,
}

/// What the semantics read of an instruction. Each method has the meaning of the
/// `Instruction` method of its name; `operand`, `op_size` and `address` are resolved forms.
pub trait Insn {
    /// The decoded instruction, for what the view does not hold.
    fn iced(&self) -> &Instruction;
    fn mnemonic(&self) -> Mnemonic {
        self.iced().mnemonic()
    }
    fn op_count(&self) -> u32 {
        self.iced().op_count()
    }
    fn next_ip(&self) -> u64 {
        self.iced().next_ip()
    }
    fn near_branch_target(&self) -> u64 {
        self.iced().near_branch_target()
    }
    /// Operand `n`.
    fn operand(&self, n: u32) -> Operand {
        operand_of(self.iced(), n)
    }
    /// Size in bytes of operand `n`.
    fn op_size(&self, n: u32) -> u8 {
        size_of(self.iced(), n)
    }
    /// The memory operand's address parts.
    fn address(&self) -> Address {
        address_of(self.iced())
    }
}

impl Insn for Instruction {
    fn iced(&self) -> &Instruction {
        self
    }
}

fn operand_of(ins: &Instruction, n: u32) -> Operand {
    match ins.op_kind(n) {
        OpKind::Register => gpr(ins.op_register(n)).map_or(Operand::Other, Operand::Reg),
        OpKind::Memory => Operand::Mem,
        OpKind::NearBranch64 => Operand::Branch(ins.near_branch_target()),
        k if is_imm(k) => Operand::Imm(ins.immediate(n)),
        _ => Operand::Other,
    }
}

fn size_of(ins: &Instruction, n: u32) -> u8 {
    match ins.op_kind(n) {
        OpKind::Register => ins.op_register(n).size() as u8,
        OpKind::Memory => ins.memory_size().size() as u8,
        OpKind::Immediate8 => 1,
        OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
        OpKind::Immediate32 | OpKind::Immediate8to32 => 4,
        _ => 8,
    }
}

fn address_of(ins: &Instruction) -> Address {
    let seg = match ins.memory_segment() {
        Register::FS => Some(true),
        Register::GS => Some(false),
        _ => None,
    };
    if ins.is_ip_rel_memory_operand() {
        return Address {
            rip_rel: true,
            disp: ins.ip_rel_memory_address(),
            seg,
            ..Address::default()
        };
    }
    Address {
        rip_rel: false,
        base: gpr(ins.memory_base()),
        index: gpr(ins.memory_index()),
        shift: ins.memory_index_scale().trailing_zeros() as u8,
        disp: ins.memory_displacement64(),
        seg,
        addr32: ins.memory_base().size() == 4 || ins.memory_index().size() == 4,
    }
}

/// Operands beyond the third are not held (no general-purpose form has them).
const HELD_OPERANDS: usize = 3;

/// A held operand's kind besides those of `shape`: a near branch target (in `Compact::value`).
const BRANCH: u8 = 4;

/// An instruction's answers to `Insn`, worked out once, in 64 bytes.
#[derive(Clone, Copy, Debug)]
pub struct Compact {
    /// The immediate or branch target among its operands (`kinds`).
    value: u64,
    next_ip: u64,
    address: Address,
    mnemonic: Mnemonic,
    /// What each operand is: `shape::REG` (its register in `gprs`), `shape::MEM`,
    /// `shape::IMM` or `BRANCH` (in `value`), or `shape::OTHER`: what the instruction says.
    kinds: [u8; HELD_OPERANDS],
    gprs: [Gpr; HELD_OPERANDS],
    sizes: [u8; HELD_OPERANDS],
    op_count: u8,
}

impl Compact {
    pub fn new(ins: &Instruction) -> Compact {
        let mut c = Compact {
            value: 0,
            next_ip: ins.next_ip(),
            address: Address::default(),
            mnemonic: ins.mnemonic(),
            kinds: [shape::OTHER; HELD_OPERANDS],
            gprs: [Gpr::default(); HELD_OPERANDS],
            sizes: [0; HELD_OPERANDS],
            op_count: ins.op_count() as u8,
        };
        let mut valued = false;
        for n in 0..ins.op_count().min(HELD_OPERANDS as u32) {
            let k = n as usize;
            c.sizes[k] = size_of(ins, n);
            c.kinds[k] = match operand_of(ins, n) {
                Operand::Reg(g) => {
                    c.gprs[k] = g;
                    shape::REG
                }
                Operand::Mem => {
                    c.address = address_of(ins);
                    shape::MEM
                }
                // One value is held; another (none of the general-purpose forms has two) is
                // read from the instruction.
                Operand::Imm(v) if !valued => {
                    (c.value, valued) = (v, true);
                    shape::IMM
                }
                Operand::Branch(t) if !valued => {
                    (c.value, valued) = (t, true);
                    BRANCH
                }
                _ => shape::OTHER,
            };
        }
        c
    }

    /// The size of operand `n` (of the first three), in bytes (0 where there is none).
    pub fn op_size(&self, n: usize) -> u8 {
        self.sizes[n]
    }

    /// The address of the instruction after it.
    pub fn next_ip(&self) -> u64 {
        self.next_ip
    }

    /// Whether one of its first three operands is in memory.
    pub fn has_memory(&self) -> bool {
        self.kinds.contains(&shape::MEM)
    }

    /// The kinds of its first two operands (`shape`).
    pub fn shape(&self) -> u8 {
        let kind = |k: u8| if k == BRANCH { shape::OTHER } else { k };
        shape::of(kind(self.kinds[0]), kind(self.kinds[1]))
    }

    /// Operand `n` as held, or None where the instruction itself says.
    #[inline(always)]
    fn operand(&self, n: u32) -> Option<Operand> {
        let k = n as usize;
        match *self.kinds.get(k)? {
            shape::REG => Some(Operand::Reg(self.gprs[k])),
            shape::MEM => Some(Operand::Mem),
            shape::IMM => Some(Operand::Imm(self.value)),
            BRANCH => Some(Operand::Branch(self.value)),
            _ => None,
        }
    }
}

/// A `Compact` read beside the instruction it was made from.
#[derive(Clone, Copy)]
pub struct At<'a> {
    pub compact: &'a Compact,
    pub ins: &'a Instruction,
}

impl Insn for At<'_> {
    #[inline]
    fn iced(&self) -> &Instruction {
        self.ins
    }
    #[inline]
    fn mnemonic(&self) -> Mnemonic {
        self.compact.mnemonic
    }
    #[inline]
    fn op_count(&self) -> u32 {
        self.compact.op_count as u32
    }
    #[inline]
    fn next_ip(&self) -> u64 {
        self.compact.next_ip
    }
    #[inline]
    fn near_branch_target(&self) -> u64 {
        match self.compact.operand(0) {
            Some(Operand::Branch(t)) => t,
            _ => self.ins.near_branch_target(),
        }
    }
    #[inline]
    fn operand(&self, n: u32) -> Operand {
        match self.compact.operand(n) {
            Some(o) => o,
            None => operand_of(self.ins, n),
        }
    }
    #[inline]
    fn op_size(&self, n: u32) -> u8 {
        match self.compact.sizes.get(n as usize) {
            Some(&s) => s,
            None => size_of(self.ins, n),
        }
    }
    #[inline]
    fn address(&self) -> Address {
        self.compact.address
    }
}

/// The kinds of an instruction's first two operands (`Compact::shape`), for which the
/// baseline tier keeps handlers specialised (`Shaped`): `kind0 | kind1 << 2`.
pub mod shape {
    /// Any other operand, or none.
    pub const OTHER: u8 = 0;
    pub const REG: u8 = 1;
    pub const MEM: u8 = 2;
    pub const IMM: u8 = 3;
    /// Operands whose kinds are read when the instruction runs.
    pub const ANY: u8 = 0xff;

    pub const fn of(k0: u8, k1: u8) -> u8 {
        k0 | k1 << 2
    }

    /// The kind of operand `n` in `shape`.
    #[inline(always)]
    pub const fn kind(shape: u8, n: u32) -> u8 {
        if shape == ANY || n > 1 {
            ANY
        } else {
            (shape >> (2 * n)) & 3
        }
    }
}

/// What is known of an instruction before it runs, for `Shaped`: the kinds of its first two
/// operands (`shape`) and perhaps its mnemonic.
pub trait Form {
    const SHAPE: u8;
    const MNEMONIC: Option<Mnemonic>;
    /// The sizes of the first two operands, 0 where not known.
    const SIZES: [u8; 2];
}

/// An `At` of a known `Form`: code monomorphised over it tests an operand's kind, or the
/// mnemonic, where it is written down, not each time the instruction runs.
#[derive(Clone, Copy)]
pub struct Shaped<'a, F: Form>(pub At<'a>, pub PhantomData<F>);

impl<F: Form> Insn for Shaped<'_, F> {
    #[inline(always)]
    fn iced(&self) -> &Instruction {
        self.0.ins
    }
    #[inline(always)]
    fn mnemonic(&self) -> Mnemonic {
        match F::MNEMONIC {
            Some(m) => m,
            None => self.0.mnemonic(),
        }
    }
    #[inline(always)]
    fn op_count(&self) -> u32 {
        self.0.op_count()
    }
    #[inline(always)]
    fn next_ip(&self) -> u64 {
        self.0.next_ip()
    }
    #[inline(always)]
    fn near_branch_target(&self) -> u64 {
        self.0.near_branch_target()
    }
    #[inline(always)]
    fn operand(&self, n: u32) -> Operand {
        match shape::kind(F::SHAPE, n) {
            shape::REG => {
                let g = self.0.compact.gprs[n as usize];
                Operand::Reg(match F::SIZES[n as usize] {
                    0 => g,
                    size => Gpr {
                        idx: g.idx,
                        size,
                        high8: size == 1 && g.high8,
                    },
                })
            }
            shape::MEM => Operand::Mem,
            shape::IMM => Operand::Imm(self.0.compact.value),
            _ => self.0.operand(n),
        }
    }
    #[inline(always)]
    fn op_size(&self, n: u32) -> u8 {
        match F::SIZES.get(n as usize) {
            Some(&size) if size != 0 => size,
            _ => self.0.op_size(n),
        }
    }
    #[inline(always)]
    fn address(&self) -> Address {
        self.0.address()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantics::decoded;

    /// A `Compact` answers as the instruction does.
    #[test]
    fn compact_answers_as_the_instruction() {
        let samples: &[&[u8]] = &[
            &[0x48, 0x01, 0xd8],                            // add rax, rbx
            &[0x8a, 0x64, 0x8b, 0x10],                      // mov ah, [rbx+rcx*4+0x10]
            &[0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0], // mov rax, fs:[0x28]
            &[0x48, 0x8b, 0x05, 0x10, 0, 0, 0],             // mov rax, [rip+0x10]
            &[0x67, 0x8b, 0x04, 0x88],                      // mov eax, [eax+ecx*4]
            &[0x66, 0x83, 0xc0, 0xff],                      // add ax, -1
            &[0x48, 0x69, 0xc3, 0x10, 0x27, 0, 0],          // imul rax, rbx, 10000
            &[0x0f, 0x85, 0x10, 0, 0, 0],                   // jne +0x10
            &[0xc2, 0x08, 0x00],                            // ret 8
            &[0x66, 0x0f, 0xef, 0xc1],                      // pxor xmm0, xmm1
        ];
        for bytes in samples {
            let ins = decoded(bytes);
            let compact = Compact::new(&ins);
            let at = At {
                compact: &compact,
                ins: &ins,
            };
            assert_eq!(at.mnemonic(), ins.mnemonic(), "{ins}");
            assert_eq!(at.op_count(), ins.op_count(), "{ins}");
            assert_eq!(at.next_ip(), ins.next_ip(), "{ins}");
            for n in 0..ins.op_count() {
                assert_eq!(at.operand(n), Insn::operand(&ins, n), "{ins} operand {n}");
                assert_eq!(at.op_size(n), Insn::op_size(&ins, n), "{ins} operand {n}");
            }
            if (0..ins.op_count()).any(|n| ins.op_kind(n) == OpKind::Memory) {
                assert_eq!(at.address(), Insn::address(&ins), "{ins}");
            }
        }
    }
}
