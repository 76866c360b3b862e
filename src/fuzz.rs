//! The instruction-level differential fuzzer (`kiln fuzz`): random instructions of every form
//! Kiln implements, encoded with iced-x86, each run on random register, flag, XMM and MXCSR
//! state with memory operands in a scratch page, natively (in a forked child) and under Kiln's
//! baseline tier and JIT; every register, the defined flags, MXCSR, the scratch memory and any
//! fault must agree. A mismatch prints a one-line reproducer (`kiln fuzz --seed S --case N`).

use crate::cpu::{exit, fault, rflags as rf, Cpu, FlagKind};
use crate::decode::decode_block;
use crate::jit::{self, Jit};
use crate::mem::Memory;
use crate::semantics::{self, concrete::rflags, concrete::store_flags, emitter::Flags};
use iced_x86::{
    Code, CpuidFeature, Decoder, DecoderOptions, Encoder, EncodingKind, FlowControl, Instruction, MemoryOperand,
    Mnemonic, OpCodeOperandKind as K, Register, RflagsBits,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// The scratch pages memory operands point into: the same address natively and in the guest.
const SCRATCH: u64 = 0x3100_0000;
const SCRATCH_LEN: usize = 3 * 4096;
/// Guest address of the instruction under test.
const CODE: u64 = 0x3200_0000;
/// Guest address where Kiln's side moves x87/SSE state in and out (FXSAVE layout).
const FX_AREA: u64 = CODE + 0x800;

#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct State {
    gpr: [u64; 16],
    rflags: u64,
    mxcsr: u64,
    xmm: [[u64; 2]; 16],
    /// x87 control and status words, abridged tag word, and ST(0)..ST(7) as FXSAVE stores them
    /// (64-bit significand, then sign and exponent).
    fcw: u64,
    fsw: u64,
    ftw: u64,
    st: [[u64; 2]; 8],
}

/// The FXSAVE image of a state's x87 and SSE parts.
fn fx_image(s: &State) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[0..2].copy_from_slice(&(s.fcw as u16).to_le_bytes());
    b[2..4].copy_from_slice(&(s.fsw as u16).to_le_bytes());
    b[4] = s.ftw as u8;
    b[24..28].copy_from_slice(&(s.mxcsr as u32).to_le_bytes());
    b[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
    for i in 0..8 {
        b[32 + 16 * i..40 + 16 * i].copy_from_slice(&s.st[i][0].to_le_bytes());
        b[40 + 16 * i..42 + 16 * i].copy_from_slice(&(s.st[i][1] as u16).to_le_bytes());
    }
    for i in 0..16 {
        b[160 + 16 * i..168 + 16 * i].copy_from_slice(&s.xmm[i][0].to_le_bytes());
        b[168 + 16 * i..176 + 16 * i].copy_from_slice(&s.xmm[i][1].to_le_bytes());
    }
    b
}

/// Reads the x87 and SSE parts of a state back from an FXSAVE image.
fn from_fx_image(b: &[u8], s: &mut State) {
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u64_at = |o: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(x)
    };
    s.fcw = u16_at(0);
    s.fsw = u16_at(2);
    s.ftw = b[4] as u64;
    s.mxcsr = u64_at(24) & 0xffff_ffff;
    for i in 0..8 {
        s.st[i] = [u64_at(32 + 16 * i), u16_at(40 + 16 * i)];
    }
    for i in 0..16 {
        s.xmm[i] = [u64_at(160 + 16 * i), u64_at(168 + 16 * i)];
    }
}

mod off {
    use super::State;
    use std::mem::offset_of;
    pub fn gpr(i: usize) -> i64 {
        (offset_of!(State, gpr) + 8 * i) as i64
    }
    pub const RFLAGS: i64 = offset_of!(State, rflags) as i64;
}

/// One case: the instruction's bytes and the state it starts from.
#[derive(Clone)]
struct Case {
    bytes: Vec<u8>,
    ins: Instruction,
    state: State,
    memory: Vec<u8>,
}

/// What a run produced.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Outcome {
    state: State,
    memory: Vec<u8>,
    /// Signal raised (0: none).
    signal: i32,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// An interesting 64-bit value: edges, small numbers, sign boundaries, or random.
    fn value(&mut self) -> u64 {
        match self.below(10) {
            0 => 0,
            1 => u64::MAX,
            2 => self.below(64),
            3 => 1u64 << self.below(64),
            4 => (1u64 << self.below(64)).wrapping_sub(1),
            5 => 0x8000_0000 + self.below(3) - 1,
            6 => (self.next() as i8) as u64,
            _ => self.next(),
        }
    }
    /// An 80-bit extended value [significand, sign and exponent] biased to special values.
    fn ext80(&mut self) -> [u64; 2] {
        let sign = self.below(2) << 15;
        let (m, e) = match self.below(10) {
            0 => (0, 0),
            1 => (1 << 63, 0x7fff),
            2 => (
                (3 << 62) | (self.next() >> 2 & [0, u64::MAX][self.below(2) as usize]),
                0x7fff,
            ),
            3 => ((1 << 63) | (self.next() >> 3) | 1, 0x7fff),
            4 => (self.next() >> (1 + self.below(60)), 0),
            5 => (1 << 63, 0x3fff + self.below(5) - 2),
            6 => ((1 << 63) | self.next(), self.below(2) * 0x7ffe + 1 - self.below(2)),
            _ => ((1 << 63) | self.next(), 0x3fff + self.below(130) - 65),
        };
        [m, sign | e]
    }
    /// A float lane pattern (single or double) biased to special values.
    fn float64(&mut self) -> u64 {
        let specials = [
            0u64,
            0x8000_0000_0000_0000,
            0x3ff0_0000_0000_0000,
            0xbff8_0000_0000_0000,
            0x7ff0_0000_0000_0000,
            0xfff0_0000_0000_0000,
            0x7ff8_0000_0000_0000,
            0x7ff4_0000_0000_0001,
            0x0000_0000_0000_0001,
            0x000f_ffff_ffff_ffff,
            0x7fef_ffff_ffff_ffff,
            0x4330_0000_0000_0001,
            0x3fe0_0000_0000_0000,
        ];
        let f32s = [
            0u32,
            0x8000_0000,
            0x3f80_0000,
            0x7f80_0000,
            0xff80_0000,
            0x7fc0_0000,
            0x7fa0_0001,
            1,
            0x007f_ffff,
            0x7f7f_ffff,
            0x4b00_0001,
            0x3f00_0000,
        ];
        match self.below(6) {
            0 => specials[self.below(specials.len() as u64) as usize],
            1 => {
                let a = f32s[self.below(f32s.len() as u64) as usize] as u64;
                let b = f32s[self.below(f32s.len() as u64) as usize] as u64;
                a | b << 32
            }
            2 => {
                // a "normal" double
                let e = 1023 - 30 + self.below(60);
                (self.next() & 0x800f_ffff_ffff_ffff) | e << 52
            }
            3 => {
                let e = 127 - 20 + self.below(40);
                let lo = ((self.next() as u32) & 0x807f_ffff) as u64 | e << 23;
                let e2 = 127 - 20 + self.below(40);
                let hi = ((self.next() as u32) & 0x807f_ffff) as u64 | e2 << 23;
                lo | hi << 32
            }
            _ => self.value(),
        }
    }
}

fn gpr(size: u32, i: usize) -> Register {
    let base = match size {
        1 => {
            let j = match i {
                0..=3 => i,
                4..=7 => i + 4,
                _ => i + 4,
            };
            return Register::values()
                .nth(Register::AL as usize + j)
                .unwrap_or(Register::AL);
        }
        2 => Register::AX,
        4 => Register::EAX,
        _ => Register::RAX,
    };
    Register::values().nth(base as usize + i).unwrap_or(base)
}

fn st(i: usize) -> Register {
    [
        Register::ST0,
        Register::ST1,
        Register::ST2,
        Register::ST3,
        Register::ST4,
        Register::ST5,
        Register::ST6,
        Register::ST7,
    ][i]
}

fn mm(i: usize) -> Register {
    Register::values()
        .nth(Register::MM0 as usize + i)
        .unwrap_or(Register::MM0)
}

fn xmm(i: usize) -> Register {
    Register::values()
        .nth(Register::XMM0 as usize + i)
        .unwrap_or(Register::XMM0)
}

#[derive(Clone, Copy)]
enum Op {
    R(Register),
    M(MemoryOperand),
    I(u32),
    Q(u64),
}

/// How to fill operand kind `k`, or None if the fuzzer cannot generate it.
fn operand(k: K, rng: &mut Rng, mem: &mut Option<Register>) -> Option<Op> {
    let pick_gpr = |rng: &mut Rng, size: u32| loop {
        let i = rng.below(16) as usize;
        if i != 4 {
            return Op::R(gpr(size, i));
        }
    };
    let mut memory = |rng: &mut Rng| {
        let base = loop {
            let i = rng.below(16) as usize;
            if i != 4 {
                break gpr(8, i);
            }
        };
        *mem = Some(base);
        let d = rng.below(256) as i64 - 128;
        Op::M(MemoryOperand::with_base_displ(base, d))
    };
    Some(match k {
        K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::r64_or_mem | K::xmm_or_mem if rng.below(3) == 0 => {
            memory(rng)
        }
        K::mem => memory(rng),
        K::r8_or_mem | K::r8_reg | K::r8_opcode => pick_gpr(rng, 1),
        K::r16_or_mem | K::r16_reg | K::r16_rm | K::r16_opcode | K::r16_reg_mem => pick_gpr(rng, 2),
        K::r32_or_mem | K::r32_reg | K::r32_rm | K::r32_opcode | K::r32_vvvv | K::r32_reg_mem => pick_gpr(rng, 4),
        K::r64_or_mem | K::r64_reg | K::r64_rm | K::r64_opcode | K::r64_vvvv | K::r64_reg_mem => pick_gpr(rng, 8),
        K::xmm_or_mem | K::xmm_reg | K::xmm_rm => Op::R(xmm(rng.below(16) as usize)),
        K::mm_or_mem if rng.below(3) == 0 => memory(rng),
        K::mm_or_mem | K::mm_reg | K::mm_rm => Op::R(mm(rng.below(8) as usize)),
        K::st0 => Op::R(Register::ST0),
        K::sti_opcode => Op::R(st(rng.below(8) as usize)),
        K::al => Op::R(Register::AL),
        K::cl => Op::R(Register::CL),
        K::ax => Op::R(Register::AX),
        K::dx => Op::R(Register::DX),
        K::eax => Op::R(Register::EAX),
        K::rax => Op::R(Register::RAX),
        K::imm8 | K::imm8sex16 | K::imm8sex32 | K::imm8sex64 => Op::I(rng.value() as u8 as u32),
        K::imm8_const_1 => Op::I(1),
        K::imm16 => Op::I(rng.value() as u16 as u32),
        K::imm32 | K::imm32sex64 => Op::I(rng.value() as u32),
        K::imm64 => Op::Q(rng.value()),
        _ => return None,
    })
}

fn build(code: Code, ops: &[Op]) -> Option<Instruction> {
    use Op::*;
    let i = match *ops {
        [] => Ok(Instruction::with(code)),
        [R(a)] => Instruction::with1(code, a),
        [M(a)] => Instruction::with1(code, a),
        [I(a)] => Instruction::with1(code, a),
        [R(a), R(b)] => Instruction::with2(code, a, b),
        [R(a), M(b)] => Instruction::with2(code, a, b),
        [M(a), R(b)] => Instruction::with2(code, a, b),
        [R(a), I(b)] => Instruction::with2(code, a, b),
        [M(a), I(b)] => Instruction::with2(code, a, b),
        [R(a), Q(b)] => Instruction::with2(code, a, b),
        [R(a), R(b), R(c)] => Instruction::with3(code, a, b, c),
        [R(a), R(b), M(c)] => Instruction::with3(code, a, b, c),
        [R(a), M(b), R(c)] => Instruction::with3(code, a, b, c),
        [M(a), R(b), R(c)] => Instruction::with3(code, a, b, c),
        [R(a), R(b), I(c)] => Instruction::with3(code, a, b, c),
        [R(a), M(b), I(c)] => Instruction::with3(code, a, b, c),
        [M(a), R(b), I(c)] => Instruction::with3(code, a, b, c),
        _ => return None,
    };
    i.ok()
}

/// A string instruction (or a masked store through rdi) of the given form with a random address
/// size and repeat prefix
/// (None for any other form).
fn string_form(code: Code, rng: &mut Rng) -> Option<Instruction> {
    use iced_x86::RepPrefixKind as P;
    use Code::*;
    let a = if rng.below(4) == 0 { 32 } else { 64 };
    let none = Register::None;
    let plain = [P::None, P::Repe][rng.below(2) as usize];
    let cmp = [P::None, P::Repe, P::Repne][rng.below(3) as usize];
    let i = match code {
        Movsb_m8_m8 => Instruction::with_movsb(a, none, plain),
        Movsw_m16_m16 => Instruction::with_movsw(a, none, plain),
        Movsd_m32_m32 => Instruction::with_movsd(a, none, plain),
        Movsq_m64_m64 => Instruction::with_movsq(a, none, plain),
        Stosb_m8_AL => Instruction::with_stosb(a, plain),
        Stosw_m16_AX => Instruction::with_stosw(a, plain),
        Stosd_m32_EAX => Instruction::with_stosd(a, plain),
        Stosq_m64_RAX => Instruction::with_stosq(a, plain),
        Lodsb_AL_m8 => Instruction::with_lodsb(a, none, plain),
        Lodsw_AX_m16 => Instruction::with_lodsw(a, none, plain),
        Lodsd_EAX_m32 => Instruction::with_lodsd(a, none, plain),
        Lodsq_RAX_m64 => Instruction::with_lodsq(a, none, plain),
        Scasb_AL_m8 => Instruction::with_scasb(a, cmp),
        Scasw_AX_m16 => Instruction::with_scasw(a, cmp),
        Scasd_EAX_m32 => Instruction::with_scasd(a, cmp),
        Scasq_RAX_m64 => Instruction::with_scasq(a, cmp),
        Cmpsb_m8_m8 => Instruction::with_cmpsb(a, none, cmp),
        Cmpsw_m16_m16 => Instruction::with_cmpsw(a, none, cmp),
        Cmpsd_m32_m32 => Instruction::with_cmpsd(a, none, cmp),
        Cmpsq_m64_m64 => Instruction::with_cmpsq(a, none, cmp),
        Maskmovq_rDI_mm_mm => Instruction::with_maskmovq(a, mm(rng.below(8) as usize), mm(rng.below(8) as usize), none),
        Maskmovdqu_rDI_xmm_xmm => {
            Instruction::with_maskmovdqu(a, xmm(rng.below(16) as usize), xmm(rng.below(16) as usize), none)
        }
        _ => return None,
    };
    i.ok()
}

/// A random instance of a form (the memory operand's base register goes to `m`).
fn sample(code: Code, rng: &mut Rng, m: &mut Option<Register>) -> Option<Instruction> {
    if let Some(i) = string_form(code, rng) {
        return Some(i);
    }
    let oc = code.op_code();
    let ops: Option<Vec<Op>> = (0..oc.op_count()).map(|i| operand(oc.op_kind(i), rng, m)).collect();
    build(code, &ops?)
}

fn encode(ins: &Instruction, rip: u64) -> Option<Vec<u8>> {
    let mut e = Encoder::new(64);
    e.encode(ins, rip).ok()?;
    Some(e.take_buffer())
}

/// Whether a decoded instruction can be fuzzed: it must be implemented, stay on the straight
/// path and touch no state the harness does not set up (popf could set the trap and alignment
/// check flags).
fn fuzzable(ins: &Instruction) -> bool {
    use Mnemonic::*;
    if semantics::classify(ins).is_none() || ins.flow_control() != FlowControl::Next {
        return false;
    }
    if ins.is_string_instruction()
        && (ins.segment_prefix() != Register::None
            || matches!(ins.mnemonic(), Insb | Insw | Insd | Outsb | Outsw | Outsd))
    {
        return false;
    }
    let features = ins.cpuid_features();
    if features
        .iter()
        .any(|f| matches!(f, CpuidFeature::FXSR | CpuidFeature::XSAVE | CpuidFeature::RDRAND))
    {
        return false;
    }
    !matches!(
        ins.mnemonic(),
        Cpuid | Rdtsc | Rdtscp | Hlt | Int3 | Ud2 | Popf | Popfq | Iret | Iretd | Iretq
    )
}

/// Whether this CPU's rcpss/rsqrtss give Kiln's tables (they are implementation-specific):
/// every table input at three exponents, both signs.
fn host_approximations_match() -> bool {
    use std::arch::x86_64::{
        _mm_castps_si128, _mm_castsi128_ps, _mm_cvtsi128_si32, _mm_rcp_ss, _mm_rsqrt_ss, _mm_set1_epi32,
    };
    // SAFETY: SSE is part of x86-64; the intrinsics only compute on registers.
    let host = |v: u32, rsqrt: bool| unsafe {
        let x = _mm_castsi128_ps(_mm_set1_epi32(v as i32));
        _mm_cvtsi128_si32(_mm_castps_si128(if rsqrt { _mm_rsqrt_ss(x) } else { _mm_rcp_ss(x) })) as u32
    };
    (0..4096u32).all(|i| {
        [0x3f80_0000u32, 0x4000_0000, 0xc280_0000].iter().all(|&e| {
            let v = e | i << 11;
            host(v, false) == semantics::fp::approx(v, false) && host(v, true) == semantics::fp::approx(v, true)
        })
    })
}

/// `kiln fuzz --coverage`: for each CPUID feature, the 64-bit legacy and VEX forms the fuzzer
/// generates, and by name those it does not (not implemented by Kiln, excluded by `fuzzable`,
/// or with operands the generator cannot fill).
pub fn coverage() {
    let generated: std::collections::HashSet<Code> = forms().into_iter().map(|(c, _)| c).collect();
    let mut per: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    let mut rng = Rng(7);
    for code in Code::values() {
        let oc = code.op_code();
        if !oc.is_instruction() || !oc.mode64() || !matches!(oc.encoding(), EncodingKind::Legacy | EncodingKind::VEX) {
            continue;
        }
        let feature = code
            .cpuid_features()
            .last()
            .map(|f| format!("{f:?}"))
            .unwrap_or_else(|| "INTEL8086".into());
        let e = per.entry(feature).or_default();
        if generated.contains(&code) {
            e.0 += 1;
            continue;
        }
        // Why not: decode a sample if one can be made.
        let mut why = "operands not generated";
        for _ in 0..8 {
            let mut m = None;
            let Some(ins) = sample(code, &mut rng, &mut m) else {
                continue;
            };
            let Some(bytes) = encode(&ins, CODE) else { continue };
            let d = Decoder::with_ip(64, &bytes, CODE, DecoderOptions::NONE).decode();
            why = if d.code() != code {
                "decodes as other forms (a wait prefix is an instruction of its own)"
            } else if semantics::classify(&d).is_none() {
                "not implemented"
            } else {
                "excluded"
            };
            break;
        }
        e.1.push(format!("{code:?} ({why})"));
    }
    for (f, (n, missing)) in per {
        println!("{f:<14} {n:>4} forms fuzzed, {} not", missing.len());
        for m in missing {
            println!("    {m}");
        }
    }
}

/// Every instruction form the fuzzer generates: (code, feature name).
fn forms() -> Vec<(Code, String)> {
    let mut rng = Rng(1);
    let mut out = Vec::new();
    for code in Code::values() {
        let oc = code.op_code();
        if !oc.is_instruction() || !oc.mode64() || !matches!(oc.encoding(), EncodingKind::Legacy | EncodingKind::VEX) {
            continue;
        }
        // A few attempts at a sample that encodes and decodes to an implemented instruction.
        let mut ok = None;
        for _ in 0..8 {
            let mut m = None;
            let Some(ins) = sample(code, &mut rng, &mut m) else {
                continue;
            };
            let Some(bytes) = encode(&ins, CODE) else { continue };
            let d = Decoder::with_ip(64, &bytes, CODE, DecoderOptions::NONE).decode();
            if d.code() == code && fuzzable(&d) {
                ok = Some(d);
                break;
            }
        }
        if let Some(d) = ok {
            let f = d
                .cpuid_features()
                .last()
                .map(|f| format!("{f:?}"))
                .unwrap_or_else(|| "INTEL8086".into());
            out.push((code, f));
        }
    }
    out
}

fn random_state(rng: &mut Rng, base: Option<Register>) -> State {
    let mut s = State::default();
    for g in s.gpr.iter_mut() {
        *g = rng.value();
    }
    // The stack pointer points into the scratch pages (pushes and pops are compared there).
    s.gpr[4] = SCRATCH + 4096 + 1024 + rng.below(1024);
    if let Some(b) = base {
        let i = (b as usize) - (Register::RAX as usize);
        s.gpr[i] = SCRATCH + 4096 + rng.below(1024);
    }
    let arith = rf::CF | rf::PF | rf::AF | rf::ZF | rf::SF | rf::OF;
    s.rflags = 0x202 | (rng.next() & arith) | (rng.below(2) << 10);
    // Rounding, DAZ, FTZ and the sticky flags vary (half the time at their defaults, where
    // the JIT computes float arithmetic with host instructions); one case in eight unmasks
    // some exceptions (an unmasked one raised is SIGFPE on both sides).
    s.mxcsr = if rng.below(2) == 0 {
        0x1f80 | [0, 0x20, 0x3f][rng.below(3) as usize]
    } else {
        let unmask = if rng.below(4) == 0 { rng.next() & 0x1f80 } else { 0 };
        (0x1f80 & !unmask)
            | (rng.below(4) << 13)
            | if rng.below(4) == 0 { 0x40 } else { 0 }
            | if rng.below(4) == 0 { 0x8000 } else { 0 }
            | rng.next() & 0x3f
    };
    for x in s.xmm.iter_mut() {
        *x = [rng.float64(), rng.float64()];
    }
    // x87: every exception masked, random precision (not the reserved one) and rounding;
    // random sticky flags, condition codes, stack top and tags.
    s.fcw = 0x7f | [0, 2, 3][rng.below(3) as usize] << 8 | rng.below(4) << 10;
    s.fsw = (rng.next() & 0x473f) | rng.below(8) << 11;
    s.ftw = rng.next() & 0xff;
    for r in s.st.iter_mut() {
        *r = rng.ext80();
    }
    s
}

/// The address of an instruction's memory operand (base, index and displacement; the
/// generator uses no segment overrides) for the given general registers.
fn operand_addr(ins: &Instruction, gpr: &[u64; 16]) -> u64 {
    let reg = |r: Register| {
        if r == Register::None {
            0
        } else {
            gpr[r.full_register() as usize - Register::RAX as usize]
        }
    };
    ins.memory_displacement64()
        .wrapping_add(reg(ins.memory_base()))
        .wrapping_add(reg(ins.memory_index()).wrapping_mul(ins.memory_index_scale() as u64))
}

/// Keeps a case inside what the architecture defines and the harness can observe: 16-bit
/// double shifts by more than 16 (undefined results), bit tests whose register offset would
/// leave the scratch pages; and makes most 16-byte operands of the forms that require alignment
/// aligned (the rest raise #GP, on both sides).
fn constrain(ins: &Instruction, s: &mut State, rng: &mut Rng) -> bool {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let has_mem = (0..ins.op_count()).any(|i| ins.op_kind(i) == iced_x86::OpKind::Memory);
    if matches!(m, Shld | Shrd) && ins.op_count() == 3 && iced_x86::OpKind::Register == ins.op_kind(1) {
        let size = ins.op_register(1).size();
        if size == 2 {
            if ins.op_kind(2) == iced_x86::OpKind::Register {
                s.gpr[1] = (s.gpr[1] & !0xff) | ((s.gpr[1] & 0xff) % 17);
            } else if ins.immediate(2) & 31 > 16 {
                return false;
            }
        }
    }
    if matches!(m, Bt | Bts | Btr | Btc) && has_mem && ins.op_kind(1) == iced_x86::OpKind::Register {
        let i = ins.op_register(1).full_register() as usize - Register::RAX as usize;
        if i < 16 {
            // A small non-negative bit offset keeps the access inside the scratch pages.
            s.gpr[i] %= 4096;
        }
    }
    let near = |v: u64| SCRATCH + 4096 + v % 1024;
    if matches!(m, Fsin | Fcos | Fsincos | Fptan) && s.st[0][1] & 0x7fff >= 0x3ffe && s.st[0][1] & 0x7fff != 0x7fff {
        // Beyond pi/4 the manual defines these only through the CPU's own 66-bit reduction of
        // the argument, whose error near the zeros is far more than an ulp: the fuzzer keeps
        // finite arguments below 1/2 (tests/guest/x87_transcendental.c covers large ones).
        s.st[0][1] = (s.st[0][1] & 0x8000) | (0x3ffd - (s.st[0][1] & 0x3f));
    }
    if matches!(m, F2xm1 | Fyl2xp1) {
        // The manual defines these only for |st(0)| < 1 (f2xm1) and < 1 - sqrt(2)/2
        // (fyl2xp1): keep st(0) a valid value inside the range.
        let top = (s.fsw >> 11) & 7;
        let max_exp = if m == F2xm1 { 0x3ffe } else { 0x3ffc };
        s.st[0][0] |= 1 << 63;
        s.st[0][1] = (s.st[0][1] & 0x8000) | (max_exp - (s.st[0][1] & 0x3f));
        s.ftw |= 1 << top;
    }
    if matches!(m, Maskmovq | Maskmovdqu) {
        s.gpr[7] = near(s.gpr[7]);
    }
    if m == Xlatb {
        s.gpr[3] = near(s.gpr[3]);
    }
    if ins.is_string_instruction() {
        // Source and destination inside the scratch pages, a short repeat count.
        s.gpr[6] = near(s.gpr[6]);
        s.gpr[7] = near(s.gpr[7]);
        s.gpr[1] %= 9;
    }
    if matches!(m, Enter | Leave) {
        // The frame pointer (and the frames enter copies) inside the scratch pages.
        s.gpr[5] = near(s.gpr[5]) + 512;
    }
    if semantics::needs_alignment(ins) && rng.below(8) != 0 {
        let b = ins.memory_base();
        let i = b.full_register() as usize - Register::RAX as usize;
        if i < 16 {
            let a = s.gpr[i].wrapping_add(ins.memory_displacement64());
            s.gpr[i] = s.gpr[i].wrapping_sub(a & 15);
        }
    }
    true
}

fn make_case(forms: &[(Code, String)], seed: u64, n: u64) -> Option<(Case, String)> {
    let mut rng = Rng(seed ^ n.wrapping_mul(0xd6e8_feb8_6659_fd93));
    for _ in 0..16 {
        let (code, feat) = &forms[rng.below(forms.len() as u64) as usize];
        let mut m = None;
        let Some(ins) = sample(*code, &mut rng, &mut m) else {
            continue;
        };
        let Some(bytes) = encode(&ins, CODE) else { continue };
        let d = Decoder::with_ip(64, &bytes, CODE, DecoderOptions::NONE).decode();
        if d.code() != *code || !fuzzable(&d) {
            continue;
        }
        let mut state = random_state(&mut rng, m);
        if !constrain(&d, &mut state, &mut rng) {
            continue;
        }
        let mut memory: Vec<u8> = (0..SCRATCH_LEN).map(|_| rng.next() as u8).collect();
        if d.mnemonic() == Mnemonic::Ldmxcsr {
            // MXCSR bit 17 (AMD's misaligned-exception mask) is outside the profile Kiln
            // reports (MXCSR_MASK 0xffff): keep it clear; other reserved bits fault on both.
            let o = operand_addr(&d, &state.gpr).wrapping_sub(SCRATCH) as usize + 2;
            if o < memory.len() {
                memory[o] &= !2;
            }
        }
        return Some((
            Case {
                bytes,
                ins: d,
                state,
                memory,
            },
            feat.clone(),
        ));
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Native side: a forked child runs every case of a batch on the real CPU.

static FAULT_SIG: AtomicI32 = AtomicI32::new(0);
static RESTORE_AT: AtomicU64 = AtomicU64::new(0);
/// [saved rsp, mxcsr to restore]
static mut SAVED: [u64; 2] = [0, 0x1f80];

extern "C" fn on_native_fault(sig: i32, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    FAULT_SIG.store(sig, Ordering::SeqCst);
    // SAFETY: the kernel passes the interrupted context; continue at the harness's restore path.
    let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
    uc.uc_mcontext.gregs[libc::REG_RIP as usize] = RESTORE_AT.load(Ordering::SeqCst) as i64;
}

/// Machine code: save callee-saved registers and rsp, load `input`, run `bytes`, store the
/// state to `output`, restore. Returns the code and the offset of the restore path.
fn harness(
    bytes: &[u8],
    input: u64,
    output: u64,
    at: u64,
    data: u64,
    fx_in: u64,
    fx_out: u64,
) -> Option<(Vec<u8>, usize)> {
    use Register::*;
    let saved = std::ptr::addr_of!(SAVED) as u64;
    let mut code = Vec::new();
    let mut restore = 0;
    let emit = |ins: Instruction, code: &mut Vec<u8>| -> Option<()> {
        let b = encode(&ins, at + code.len() as u64)?;
        code.extend_from_slice(&b);
        Some(())
    };
    let mo = |b: Register, d: i64| MemoryOperand::with_base_displ(b, d);
    let callee = [RBX, RBP, R12, R13, R14, R15];
    for r in callee {
        emit(Instruction::with1(Code::Push_r64, r).ok()?, &mut code)?;
    }
    emit(Instruction::with2(Code::Mov_r64_imm64, RAX, saved).ok()?, &mut code)?;
    emit(Instruction::with2(Code::Mov_rm64_r64, mo(RAX, 0), RSP).ok()?, &mut code)?;
    // The host stack pointer also in the data page, reachable rip-relative once the guest's
    // stack pointer is loaded.
    emit(Instruction::with2(Code::Mov_r64_imm64, RAX, data).ok()?, &mut code)?;
    emit(Instruction::with2(Code::Mov_rm64_r64, mo(RAX, 0), RSP).ok()?, &mut code)?;
    // x87, MXCSR and XMM state from the case's FXSAVE image.
    emit(Instruction::with2(Code::Mov_r64_imm64, RBX, fx_in).ok()?, &mut code)?;
    emit(
        Instruction::with1(Code::Fxrstor64_m512byte, mo(RBX, 0)).ok()?,
        &mut code,
    )?;
    emit(Instruction::with2(Code::Mov_r64_imm64, RAX, input).ok()?, &mut code)?;
    emit(
        Instruction::with1(Code::Push_rm64, mo(RAX, off::RFLAGS)).ok()?,
        &mut code,
    )?;
    emit(Instruction::with(Code::Popfq), &mut code)?;
    for i in (1..16).filter(|&i| i != 4) {
        emit(
            Instruction::with2(Code::Mov_r64_rm64, gpr(8, i), mo(RAX, off::gpr(i))).ok()?,
            &mut code,
        )?;
    }
    emit(
        Instruction::with2(Code::Mov_r64_rm64, RSP, mo(RAX, off::gpr(4))).ok()?,
        &mut code,
    )?;
    emit(
        Instruction::with2(Code::Mov_r64_rm64, RAX, mo(RAX, off::gpr(0))).ok()?,
        &mut code,
    )?;
    code.extend_from_slice(bytes);
    let rip_rel = |d: u64| MemoryOperand::with_base_displ(RIP, d as i64);
    emit(
        Instruction::with2(Code::Mov_rm64_r64, rip_rel(data + 8), RSP).ok()?,
        &mut code,
    )?;
    emit(
        Instruction::with2(Code::Mov_r64_rm64, RSP, rip_rel(data)).ok()?,
        &mut code,
    )?;
    emit(Instruction::with1(Code::Push_r64, RAX).ok()?, &mut code)?;
    emit(Instruction::with(Code::Pushfq), &mut code)?;
    emit(Instruction::with2(Code::Mov_r64_imm64, RAX, output).ok()?, &mut code)?;
    emit(
        Instruction::with1(Code::Pop_rm64, mo(RAX, off::RFLAGS)).ok()?,
        &mut code,
    )?;
    emit(
        Instruction::with1(Code::Pop_rm64, mo(RAX, off::gpr(0))).ok()?,
        &mut code,
    )?;
    for i in (1..16).filter(|&i| i != 4) {
        emit(
            Instruction::with2(Code::Mov_rm64_r64, mo(RAX, off::gpr(i)), gpr(8, i)).ok()?,
            &mut code,
        )?;
    }
    emit(Instruction::with2(Code::Mov_r64_imm64, RBX, fx_out).ok()?, &mut code)?;
    emit(Instruction::with1(Code::Fxsave64_m512byte, mo(RBX, 0)).ok()?, &mut code)?;
    emit(
        Instruction::with2(Code::Mov_r64_rm64, RBX, rip_rel(data + 8)).ok()?,
        &mut code,
    )?;
    emit(
        Instruction::with2(Code::Mov_rm64_r64, mo(RAX, off::gpr(4)), RBX).ok()?,
        &mut code,
    )?;
    restore = restore.max(code.len());
    emit(Instruction::with2(Code::Mov_r64_imm64, RAX, saved).ok()?, &mut code)?;
    emit(Instruction::with2(Code::Mov_r64_rm64, RSP, mo(RAX, 0)).ok()?, &mut code)?;
    emit(Instruction::with1(Code::Ldmxcsr_m32, mo(RAX, 8)).ok()?, &mut code)?;
    emit(Instruction::with(Code::Fninit), &mut code)?;
    emit(Instruction::with(Code::Cld), &mut code)?;
    for r in callee.iter().rev() {
        emit(Instruction::with1(Code::Pop_r64, *r).ok()?, &mut code)?;
    }
    emit(Instruction::with(Code::Retnq), &mut code)?;
    Some((code, restore))
}

/// Runs a batch natively in a forked child; None if the child died.
fn run_native(cases: &[Case]) -> Option<Vec<Outcome>> {
    let n = cases.len();
    let rec = std::mem::size_of::<State>() + SCRATCH_LEN + 8;
    let shared_len = n * rec;
    // SAFETY: a fresh shared anonymous mapping for the child's results.
    let shared = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            shared_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if shared == libc::MAP_FAILED {
        return None;
    }
    let shared = shared as *mut u8;
    // SAFETY: fork; the child only runs the cases and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: everything below runs in the child only.
        unsafe { native_child(cases, shared, rec) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let out = ok.then(|| {
        (0..n)
            .map(|i| {
                // SAFETY: the child filled `rec` bytes per case.
                unsafe {
                    let p = shared.add(i * rec);
                    let state = (p as *const State).read_unaligned();
                    let memory = std::slice::from_raw_parts(p.add(std::mem::size_of::<State>()), SCRATCH_LEN).to_vec();
                    let signal = (p.add(rec - 8) as *const i32).read_unaligned();
                    Outcome { state, memory, signal }
                }
            })
            .collect()
    });
    // SAFETY: unmapping our own mapping.
    unsafe { libc::munmap(shared as *mut libc::c_void, shared_len) };
    out
}

unsafe fn native_child(cases: &[Case], shared: *mut u8, rec: usize) -> ! {
    let scratch = libc::mmap(
        SCRATCH as *mut libc::c_void,
        SCRATCH_LEN,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
        -1,
        0,
    );
    if scratch as u64 != SCRATCH {
        libc::_exit(3);
    }
    // Handlers run on their own stack: the instruction's stack pointer is in the scratch pages.
    let alt = libc::mmap(
        std::ptr::null_mut(),
        1 << 16,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        -1,
        0,
    );
    let ss = libc::stack_t {
        ss_sp: alt,
        ss_flags: 0,
        ss_size: 1 << 16,
    };
    libc::sigaltstack(&ss, std::ptr::null_mut());
    for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP] {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_native_fault as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK;
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
    // 64 KiB of code, then a read-write data page.
    let page = libc::mmap(
        std::ptr::null_mut(),
        65536 + 4096,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        -1,
        0,
    ) as *mut u8;
    let data = page as u64 + 65536;
    let mut input = Box::new(State::default());
    let mut output = Box::new(State::default());
    #[repr(C, align(64))]
    struct Fx([u8; 512]);
    let mut fx_in = Box::new(Fx([0; 512]));
    let mut fx_out = Box::new(Fx([0; 512]));
    for (i, c) in cases.iter().enumerate() {
        *input = c.state;
        *output = State::default();
        fx_in.0 = fx_image(&c.state);
        fx_out.0 = [0; 512];
        std::ptr::copy_nonoverlapping(c.memory.as_ptr(), SCRATCH as *mut u8, SCRATCH_LEN);
        let Some((code, restore)) = harness(
            &c.bytes,
            &*input as *const State as u64,
            &mut *output as *mut State as u64,
            page as u64,
            data,
            fx_in.0.as_ptr() as u64,
            fx_out.0.as_mut_ptr() as u64,
        ) else {
            libc::_exit(4)
        };
        libc::mprotect(page as *mut libc::c_void, 65536, libc::PROT_READ | libc::PROT_WRITE);
        std::ptr::copy_nonoverlapping(code.as_ptr(), page, code.len());
        libc::mprotect(page as *mut libc::c_void, 65536, libc::PROT_READ | libc::PROT_EXEC);
        RESTORE_AT.store(page as u64 + restore as u64, Ordering::SeqCst);
        FAULT_SIG.store(0, Ordering::SeqCst);
        let f: extern "C" fn() = std::mem::transmute::<*mut u8, extern "C" fn()>(page);
        f();
        from_fx_image(&fx_out.0, &mut output);
        let p = shared.add(i * rec);
        (p as *mut State).write_unaligned(*output);
        std::ptr::copy_nonoverlapping(SCRATCH as *const u8, p.add(std::mem::size_of::<State>()), SCRATCH_LEN);
        (p.add(rec - 8) as *mut i32).write_unaligned(FAULT_SIG.load(Ordering::SeqCst));
    }
    libc::_exit(0)
}

// ---------------------------------------------------------------------------------------------
// Kiln side.

struct Kiln {
    mem: Memory,
    jit: Jit,
    chain: Vec<[u64; 2]>,
    interrupt: Box<AtomicU64>,
    page: *mut u8,
}

impl Kiln {
    fn new() -> anyhow::Result<Kiln> {
        let mem = Memory::reserve()?;
        mem.map_anon(SCRATCH, SCRATCH_LEN as u64, libc::PROT_READ | libc::PROT_WRITE)?;
        mem.map_anon(CODE, 4096, libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC)?;
        // SAFETY: a fresh private mapping for compiled code (switched RW/RX per case).
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                65536,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        } as *mut u8;
        anyhow::ensure!(page as *mut libc::c_void != libc::MAP_FAILED, "cannot map code memory");
        anyhow::ensure!(jit::runtime().is_some(), "no trampoline on this host");
        Ok(Kiln {
            mem,
            jit: Jit::new()?,
            chain: vec![[0, 0]; crate::cpu::CHAIN_ENTRIES as usize],
            interrupt: Box::new(AtomicU64::new(0)),
            page,
        })
    }

    fn run(&mut self, c: &Case, compiled: bool) -> Result<Outcome, String> {
        let mut code = c.bytes.clone();
        code.extend_from_slice(&[0xe9, 0, 0, 0, 0]); // jmp to the next instruction: ends the block
        self.mem.write_bytes(CODE, &code).map_err(|e| e.to_string())?;
        self.mem.write_bytes(SCRATCH, &c.memory).map_err(|e| e.to_string())?;
        semantics::slow::forget_decoded();
        let mut cpu = Cpu::new(self.mem.base());
        cpu.helpers = jit::HELPERS.as_ptr() as u64;
        cpu.chain_table = self.chain.as_ptr() as u64;
        cpu.interrupt = &*self.interrupt as *const AtomicU64 as u64;
        cpu.gpr = c.state.gpr;
        cpu.rip = CODE;
        store_flags(
            &mut cpu,
            Flags {
                kind: FlagKind::Raw,
                size: 8,
                res: c.state.rflags & rf::ARITH,
                a: 0,
                b: 0,
                aux: 0,
            },
        );
        cpu.df = (c.state.rflags >> 10) & 1;
        // x87, MXCSR and XMM from the same FXSAVE image the native side loads.
        self.mem
            .write_bytes(FX_AREA, &fx_image(&c.state))
            .map_err(|e| e.to_string())?;
        crate::cpu::fxsave::fxrstor_from(&mut cpu, FX_AREA);
        let block = decode_block(&code, CODE, semantics::classify);
        if block.insns.len() != 2 {
            return Err(format!("decoded {} instructions", block.insns.len()));
        }
        crate::linux::signals::set_current(&mut *cpu);
        let rt = jit::runtime().ok_or("no runtime")?;
        let r = if compiled {
            let u = self.jit.compile(&block).map_err(|e| e.to_string())?;
            if u.code.len() > 65536 {
                return Err("unit too large".into());
            }
            // SAFETY: our own mapping: written while RW, then switched to RX before running.
            unsafe {
                libc::mprotect(
                    self.page as *mut libc::c_void,
                    65536,
                    libc::PROT_READ | libc::PROT_WRITE,
                );
                std::ptr::copy_nonoverlapping(u.code.as_ptr(), self.page, u.code.len());
                libc::mprotect(self.page as *mut libc::c_void, 65536, libc::PROT_READ | libc::PROT_EXEC);
                (rt.enter())(&mut *cpu, self.page as jit::UnitFn)
            }
        } else {
            crate::interp::run_block_guarded(&mut cpu, &block)
        };
        crate::linux::signals::set_current(std::ptr::null_mut());
        let signal = if r == exit::FAULT {
            match cpu.fault {
                fault::DIVIDE | fault::SIMD => libc::SIGFPE,
                fault::UD => libc::SIGILL,
                fault::INT3 => libc::SIGTRAP,
                fault::HALT | fault::MEMORY | fault::GP => libc::SIGSEGV,
                f => return Err(format!("unimplemented (fault code {f})")),
            }
        } else {
            0
        };
        let mut state = State {
            gpr: cpu.gpr,
            rflags: rflags(&cpu) | 0x202 | (cpu.df << 10),
            ..Default::default()
        };
        crate::cpu::fxsave::fxsave_to(&cpu, FX_AREA);
        let image = self
            .mem
            .read_bytes(FX_AREA, 512)
            .ok_or("fxsave area unreadable")?
            .to_vec();
        from_fx_image(&image, &mut state);
        let memory = self
            .mem
            .read_bytes(SCRATCH, SCRATCH_LEN)
            .ok_or("scratch unreadable")?
            .to_vec();
        Ok(Outcome { state, memory, signal })
    }
}

fn flag_mask(ins: &Instruction) -> u64 {
    let u = ins.rflags_undefined();
    let mut m = rf::ARITH | (1 << 10);
    for (bit, f) in [
        (RflagsBits::OF, rf::OF),
        (RflagsBits::SF, rf::SF),
        (RflagsBits::ZF, rf::ZF),
        (RflagsBits::AF, rf::AF),
        (RflagsBits::CF, rf::CF),
        (RflagsBits::PF, rf::PF),
    ] {
        if u & bit != 0 {
            m &= !f;
        }
    }
    m
}

/// x87 instructions whose result the architecture defines only to within an ulp or so: the
/// results may differ in the last bit, and with them C1 (rounded up) and the precision flag.
fn x87_approximate(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(m, Fsin | Fcos | Fsincos | Fptan | Fpatan | F2xm1 | Fyl2x | Fyl2xp1)
}

/// Status word bits an x87 instruction defines: C0, C2 and C3 only for the ones that report
/// through them (compares, examine, partial remainder, and the transcendentals' C2).
fn fsw_mask(m: Mnemonic) -> u64 {
    use Mnemonic::*;
    let c0c2c3 = 0x4500;
    let mut mask = 0xffff;
    let sets_cc = matches!(
        m,
        Fcom | Fcomp
            | Fcompp
            | Fucom
            | Fucomp
            | Fucompp
            | Ficom
            | Ficomp
            | Ftst
            | Fxam
            | Fprem
            | Fprem1
            | Fnstsw
            | Fstsw
            | Fninit
            | Fnclex
            | Fldenv
    );
    if !sets_cc {
        mask &= !c0c2c3;
    }
    if matches!(m, Fsin | Fcos | Fsincos | Fptan) {
        mask |= 0x400; // C2: argument out of range
    }
    if x87_approximate(m) {
        mask &= !(0x200 | 0x20);
    }
    if matches!(
        m,
        Fcmovb | Fcmove | Fcmovbe | Fcmovu | Fcmovnb | Fcmovne | Fcmovnbe | Fcmovnu
    ) {
        // The CPU changes C1 without an underflow, where the manual leaves it undefined.
        mask &= !0x200;
    }
    mask
}

fn x87_differ(ins: &Instruction, want: &State, got: &State) -> Option<String> {
    let m = ins.mnemonic();
    if want.fcw != got.fcw {
        return Some(format!("fcw native {:#06x} kiln {:#06x}", want.fcw, got.fcw));
    }
    let mask = fsw_mask(m);
    if want.fsw & mask != got.fsw & mask {
        return Some(format!(
            "fsw native {:#06x} kiln {:#06x} (compared bits {mask:#06x})",
            want.fsw & mask,
            got.fsw & mask
        ));
    }
    if want.ftw != got.ftw {
        return Some(format!("ftw native {:#04x} kiln {:#04x}", want.ftw, got.ftw));
    }
    for i in 0..8 {
        let (w, g) = (want.st[i], got.st[i]);
        if w == g {
            continue;
        }
        // One ulp apart (the significand's last bit, carrying into the exponent) is within
        // what the architecture defines for the transcendental instructions.
        let close = || {
            // Position on the number line of a normal or denormal value's magnitude.
            let v = |r: [u64; 2]| ((r[1] & 0x7fff) as u128) << 63 | (r[0] & !(1 << 63)) as u128;
            w[1] & 0x8000 == g[1] & 0x8000 && v(w).abs_diff(v(g)) <= 1
        };
        if x87_approximate(m) && close() {
            continue;
        }
        let h = |r: [u64; 2]| format!("{:04x}:{:016x}", r[1], r[0]);
        return Some(format!("st({i}) native {} kiln {}", h(w), h(g)));
    }
    None
}

/// The first difference between native and Kiln, if any.
fn differ(ins: &Instruction, want: &Outcome, got: &Outcome) -> Option<String> {
    if want.signal != got.signal {
        return Some(format!("signal native {} kiln {}", want.signal, got.signal));
    }
    if want.signal != 0 {
        return None;
    }
    let names = [
        "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    ];
    for ((name, w), g) in names.iter().zip(want.state.gpr).zip(got.state.gpr) {
        if w != g {
            return Some(format!("{name} native {w:#x} kiln {g:#x}"));
        }
    }
    let m = flag_mask(ins);
    if want.state.rflags & m != got.state.rflags & m {
        return Some(format!(
            "rflags native {:#x} kiln {:#x} (compared bits {m:#x})",
            want.state.rflags & m,
            got.state.rflags & m
        ));
    }
    if want.state.mxcsr != got.state.mxcsr {
        return Some(format!(
            "mxcsr native {:#x} kiln {:#x}",
            want.state.mxcsr, got.state.mxcsr
        ));
    }
    for i in 0..16 {
        if want.state.xmm[i] != got.state.xmm[i] {
            let h = |x: [u64; 2]| format!("{:016x}{:016x}", x[1], x[0]);
            return Some(format!(
                "xmm{i} native {} kiln {}",
                h(want.state.xmm[i]),
                h(got.state.xmm[i])
            ));
        }
    }
    if let Some(p) = x87_differ(ins, &want.state, &got.state) {
        return Some(p);
    }
    // The x87 environment's instruction and operand pointers are not kept by Kiln.
    let pointers = match ins.mnemonic() {
        Mnemonic::Fnstenv | Mnemonic::Fnsave => {
            let a = operand_addr(ins, &got.state.gpr).wrapping_sub(SCRATCH) as usize;
            if matches!(ins.memory_size().size(), 14 | 94) {
                a + 6..a + 14
            } else {
                a + 12..a + 28
            }
        }
        _ => 0..0,
    };
    if let Some(p) = (0..SCRATCH_LEN).find(|&p| want.memory[p] != got.memory[p] && !pointers.contains(&p)) {
        return Some(format!(
            "memory at {:#x}: native {:#04x} kiln {:#04x}",
            SCRATCH + p as u64,
            want.memory[p],
            got.memory[p]
        ));
    }
    None
}

/// `kiln fuzz`: returns the number of mismatches.
pub fn run(cases: u64, seed: u64, only: Option<u64>, batch: usize, feature: Option<&str>) -> anyhow::Result<u64> {
    let mut forms = forms();
    if !host_approximations_match() {
        println!("kiln fuzz: this CPU's rcpps/rsqrtps approximations differ from Kiln's tables (AMD family 17h+): not compared");
        forms.retain(|(c, _)| {
            !matches!(
                c.mnemonic(),
                Mnemonic::Rcpps | Mnemonic::Rcpss | Mnemonic::Rsqrtps | Mnemonic::Rsqrtss
            )
        });
    }
    if let Some(f) = feature {
        forms.retain(|(_, name)| name.eq_ignore_ascii_case(f));
    }
    anyhow::ensure!(!forms.is_empty(), "no instruction forms to fuzz");
    let mut kiln = Kiln::new()?;
    let mut per_feature: BTreeMap<String, u64> = BTreeMap::new();
    let mut mismatches = 0u64;
    let mut done = 0u64;
    let range: Vec<u64> = match only {
        Some(n) => vec![n],
        None => (0..cases).collect(),
    };
    let started = std::time::Instant::now();
    for chunk in range.chunks(batch.max(1)) {
        let made: Vec<(u64, Case, String)> = chunk
            .iter()
            .filter_map(|&n| make_case(&forms, seed, n).map(|(c, f)| (n, c, f)))
            .collect();
        let list: Vec<Case> = made.iter().map(|(_, c, _)| c.clone()).collect();
        let Some(native) = run_native(&list) else {
            anyhow::bail!("the native child died on the batch starting at case {}", chunk[0]);
        };
        for ((n, c, feat), want) in made.iter().zip(native) {
            for compiled in [false, true] {
                let tier = if compiled { "jit" } else { "interp" };
                let got = kiln.run(c, compiled);
                let problem = match &got {
                    Ok(g) => differ(&c.ins, &want, g),
                    Err(e) => Some(e.clone()),
                };
                if let Some(p) = problem {
                    mismatches += 1;
                    let hex: Vec<String> = c.bytes.iter().map(|b| format!("{b:02x}")).collect();
                    println!(
                        "MISMATCH [{tier}] '{}' ({}) {p}; reproduce: kiln fuzz --seed {seed} --case {n}{}",
                        c.ins,
                        hex.join(" "),
                        feature.map(|f| format!(" --feature {f}")).unwrap_or_default()
                    );
                    if only.is_some() {
                        println!("  state: {:x?}", c.state);
                        println!("  want:  {:x?}", want.state);
                        if let Ok(g) = &got {
                            println!("  got:   {:x?}", g.state);
                        }
                        if c.ins.op_kinds().any(|k| k == iced_x86::OpKind::Memory) {
                            let a = operand_addr(&c.ins, &c.state.gpr);
                            let o = a.wrapping_sub(SCRATCH) as usize;
                            if o + 16 <= c.memory.len() {
                                println!("  memory at {a:#x}: {:02x?}", &c.memory[o..o + 16]);
                            }
                        }
                    }
                }
            }
            *per_feature.entry(feat.clone()).or_default() += 1;
            done += 1;
        }
    }
    println!(
        "kiln fuzz: {done} cases ({} forms, seed {seed}) in both tiers, {mismatches} mismatches, {:.1} s",
        forms.len(),
        started.elapsed().as_secs_f64()
    );
    for (f, n) in &per_feature {
        println!("  {f:<12} {n}");
    }
    Ok(mismatches)
}
