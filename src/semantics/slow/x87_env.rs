//! The x87 control state as whole words and images over concrete state: the control and status
//! words (fnstcw, fldcw, fnstsw, fnclex, fninit) and the environment and save images (fnstenv,
//! fldenv, fnsave, frstor).

use super::super::concrete::{load, store, Live};
use super::super::operand::ea;
use super::super::x87::{full_tag_word, status_word};
use crate::cpu::Cpu;
use iced_x86::{Instruction, OpKind};

/// Sets the summary and busy bits when the control word unmasks a pending exception, and
/// clears them otherwise.
fn update_summary(cpu: &mut Cpu) {
    if cpu.fpu_sw & 0x3f & !cpu.fpu_cw != 0 {
        cpu.fpu_sw |= 0x8080;
    } else {
        cpu.fpu_sw &= !0x8080;
    }
}

/// The control word as loaded: reserved bits read as the hardware keeps them (bit 6 set, 7 and
/// 13-15 clear).
fn loaded_control_word(v: u64) -> u16 {
    (v as u16 & 0x1f3f) | 0x40
}

/// The state fninit (and fnsave, afterwards) leaves.
fn reset(cpu: &mut Cpu) {
    cpu.fpu_cw = 0x37f;
    cpu.fpu_sw = 0;
    cpu.fpu_top = 0;
    cpu.fpu_tag = 0xffff;
}

pub(super) fn fnstcw(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let a = ea(&mut Live::new(cpu), ins);
    store(a, cpu.fpu_cw as u64, 2);
    Ok(())
}

pub(super) fn fldcw(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let a = ea(&mut Live::new(cpu), ins);
    cpu.fpu_cw = loaded_control_word(load(a, 2));
    // Pending exceptions the new word unmasks set the summary and busy bits.
    update_summary(cpu);
    Ok(())
}

pub(super) fn fnstsw(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let v = status_word(cpu);
    if ins.op_kind(0) == OpKind::Register {
        cpu.gpr[0] = (cpu.gpr[0] & !0xffff) | v;
    } else {
        let a = ea(&mut Live::new(cpu), ins);
        store(a, v, 2);
    }
    Ok(())
}

pub(super) fn fnclex(cpu: &mut Cpu, _: &Instruction) -> Result<(), u64> {
    cpu.fpu_sw &= 0x7f00;
    Ok(())
}

pub(super) fn fninit(cpu: &mut Cpu, _: &Instruction) -> Result<(), u64> {
    reset(cpu);
    Ok(())
}

pub(super) fn fnstenv(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let a = ea(&mut Live::new(cpu), ins);
    store_env(cpu, a, ins.memory_size().size() == 14);
    // Afterwards all x87 exceptions are masked.
    cpu.fpu_cw |= 0x3f;
    Ok(())
}

pub(super) fn fldenv(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let a = ea(&mut Live::new(cpu), ins);
    load_env(cpu, a, ins.memory_size().size() == 14);
    Ok(())
}

/// Where ST(0)..ST(7) start in an fnsave image, after the environment.
fn registers_at(a: u64, small: bool) -> u64 {
    a.wrapping_add(if small { 14 } else { 28 })
}

pub(super) fn fnsave(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    // The environment, then ST(0)..ST(7) as 10-byte values; then as fninit.
    let a = ea(&mut Live::new(cpu), ins);
    let small = ins.memory_size().size() == 94;
    store_env(cpu, a, small);
    let base = registers_at(a, small);
    for i in 0..8u64 {
        let r = cpu.st[((cpu.fpu_top + i) & 7) as usize];
        store(base.wrapping_add(10 * i), r[0], 8);
        store(base.wrapping_add(10 * i + 8), r[1], 2);
    }
    reset(cpu);
    Ok(())
}

pub(super) fn frstor(cpu: &mut Cpu, ins: &Instruction) -> Result<(), u64> {
    let a = ea(&mut Live::new(cpu), ins);
    let small = ins.memory_size().size() == 94;
    let base = registers_at(a, small);
    let mut regs = [[0u64; 2]; 8];
    for (i, r) in regs.iter_mut().enumerate() {
        let o = base.wrapping_add(10 * i as u64);
        *r = [load(o, 8), load(o.wrapping_add(8), 2)];
    }
    load_env(cpu, a, small);
    for (i, r) in regs.iter().enumerate() {
        cpu.st[(cpu.fpu_top as usize + i) & 7] = *r;
    }
    Ok(())
}

/// FNSTENV's image: the 28-byte protected-mode environment (14 bytes with an operand-size
/// prefix). The instruction and operand pointers are stored as 0.
fn store_env(cpu: &mut Cpu, a: u64, small: bool) {
    let sw = status_word(cpu);
    if small {
        let words = [cpu.fpu_cw as u64, sw, full_tag_word(cpu), 0, 0, 0, 0];
        for (i, w) in words.iter().enumerate() {
            store(a.wrapping_add(2 * i as u64), *w, 2);
        }
    } else {
        let words = [
            cpu.fpu_cw as u64 | 0xffff_0000,
            sw | 0xffff_0000,
            full_tag_word(cpu) | 0xffff_0000,
            0,
            0,
            0,
            0xffff_0000,
        ];
        for (i, w) in words.iter().enumerate() {
            store(a.wrapping_add(4 * i as u64), *w, 4);
        }
    }
}

/// FLDENV: control word (reserved bits as the hardware keeps them: bit 6 set, 7 and 13-15
/// clear), status word and stack top, tag word.
fn load_env(cpu: &mut Cpu, a: u64, small: bool) {
    let step = if small { 2 } else { 4 };
    cpu.fpu_cw = loaded_control_word(load(a, 2));
    let sw = load(a.wrapping_add(step), 2);
    cpu.fpu_sw = sw as u16;
    cpu.fpu_top = (sw >> 11) & 7;
    cpu.fpu_tag = load(a.wrapping_add(2 * step), 2);
    // Pending exceptions the new control word unmasks set the summary and busy bits.
    update_summary(cpu);
}
