//! Kiln's side: each case runs through the baseline tier and through compiled code, on a
//! guest address space holding the instruction and the scratch pages.

use super::{from_fx_image, fx_image, Case, Outcome, State, CODE, FX_AREA, SCRATCH, SCRATCH_LEN};

use crate::cpu::flags::{rflags, store_raw_flags};
use crate::cpu::{exit, fault, rflags as rf, Cpu};
use crate::decode::{decode_block, Block, Limits, Region};
use crate::jit::{Jit, Placement};
use crate::mem::exec::RewritableCode;
use crate::mem::Memory;
use crate::semantics;

pub(super) struct Kiln {
    mem: Memory,
    jit: Jit,
    chain: Vec<[u64; 2]>,
    page: RewritableCode,
}

impl Kiln {
    pub(super) fn new() -> anyhow::Result<Kiln> {
        let mem = Memory::reserve()?;
        mem.map_anon(SCRATCH, SCRATCH_LEN as u64, libc::PROT_READ | libc::PROT_WRITE)?;
        mem.map_anon(CODE, 4096, libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC)?;
        let page = RewritableCode::new(65536)?;
        anyhow::ensure!(
            crate::dispatch::runtime::runtime().is_some(),
            "no trampoline on this host"
        );
        Ok(Kiln {
            mem,
            jit: Jit::new()?,
            chain: vec![[0, 0]; 1 << crate::cpu::CHAIN_MIN_BITS],
            page,
        })
    }

    pub(super) fn run(&mut self, c: &Case, compiled: bool) -> Result<Outcome, String> {
        let mut code = c.bytes.clone();
        code.extend_from_slice(&[0xe9, 0, 0, 0, 0]); // jmp to the next instruction: ends the block
        let mut cpu = self.start(c, &code)?;
        let block = decode_block(&code, CODE, semantics::classify);
        if block.insns.len() != 2 {
            return Err(format!("decoded {} instructions", block.insns.len()));
        }
        let r = if compiled {
            let u = self.jit.compile(&block).map_err(|e| e.to_string())?;
            let r = self.enter(&mut cpu, &u.code)?;
            self.finish_replay(&mut cpu, r, decoder(&code))?
        } else {
            self.interpret(&mut cpu, &block)
        };
        self.finish(&cpu, r)
    }

    /// Runs a sequence case (`sequence.rs`) until it leaves its code: in the baseline tier,
    /// block by block compiled, or as compiled regions.
    pub(super) fn run_sequence(&mut self, c: &Case, mode: Mode) -> Result<Outcome, String> {
        let mut code = c.bytes.clone();
        code.extend_from_slice(&[0xe9, 0, 0, 0, 0]);
        let end = CODE + c.bytes.len() as u64;
        let mut cpu = self.start(c, &code)?;
        let fetch = decoder(&code);
        let mut r = exit::NEXT;
        for _ in 0..1000 {
            // At the closing jump (or past it, in a region that ran it).
            if cpu.rip >= end || r != exit::NEXT {
                break;
            }
            let block = fetch(cpu.rip).ok_or("left the code")?;
            r = match mode {
                Mode::Interp => self.interpret(&mut cpu, &block),
                Mode::Blocks => {
                    let u = self.jit.compile(&block).map_err(|e| e.to_string())?;
                    let r = self.enter(&mut cpu, &u.code)?;
                    self.finish_replay(&mut cpu, r, fetch)?
                }
                Mode::Region => {
                    let limits = Limits {
                        blocks: 64,
                        span: CODE + code.len() as u64 - cpu.rip,
                        returns: true,
                        inline: 32,
                    };
                    let region = Region::form(cpu.rip, limits, fetch, |_| true, |_, _| None).ok_or("no region")?;
                    // At the fixed address the case runs at: code addresses are constants.
                    let u = self
                        .jit
                        .compile_region(&region, Placement::Fixed)
                        .map_err(|e| e.to_string())?;
                    let r = self.enter(&mut cpu, &u.code)?;
                    self.finish_replay(&mut cpu, r, fetch)?
                }
            };
        }
        self.finish(&cpu, r)
    }

    /// A context for case `c` with `code` and its memory in place.
    fn start(&mut self, c: &Case, code: &[u8]) -> Result<Box<Cpu>, String> {
        self.mem.write_bytes(CODE, code).map_err(|e| e.to_string())?;
        self.mem.write_bytes(SCRATCH, &c.memory).map_err(|e| e.to_string())?;
        semantics::slow::forget_decoded();
        let mut cpu = Cpu::new();
        cpu.helpers = crate::dispatch::runtime::HELPERS.as_ptr() as u64;
        cpu.chain_table = self.chain.as_ptr() as u64;
        cpu.chain_mask = crate::cpu::chain_mask(crate::cpu::CHAIN_MIN_BITS);
        cpu.gpr = c.state.gpr;
        cpu.rip = CODE;
        store_raw_flags(&mut cpu, c.state.rflags & rf::ARITH);
        cpu.df = (c.state.rflags >> 10) & 1;
        // x87, MXCSR and XMM from the same FXSAVE image the native side loads.
        self.mem
            .write_bytes(FX_AREA, &fx_image(&c.state))
            .map_err(|e| e.to_string())?;
        crate::cpu::fxsave::fxrstor_from(&mut cpu, FX_AREA);
        Ok(cpu)
    }

    fn interpret(&mut self, cpu: &mut Cpu, block: &Block) -> u64 {
        crate::linux::signals::set_current(cpu);
        let program = crate::interp::Program::new(std::sync::Arc::new(block.clone()));
        let r = crate::interp::run_block_guarded(cpu, &program);
        crate::linux::signals::set_current(std::ptr::null_mut());
        r
    }

    /// Where compiled code left for the baseline tier, runs on there as the dispatcher does:
    /// the guest block from the last checkpoint after a failed guard (`fault::REPLAY`), the
    /// replay of a guest memory fault (`fault::MEMORY`, `dispatch::replay_blocks`).
    fn finish_replay(&mut self, cpu: &mut Cpu, r: u64, fetch: impl Fn(u64) -> Option<Block>) -> Result<u64, String> {
        if r != exit::FAULT || !matches!(cpu.fault, fault::REPLAY | fault::MEMORY) {
            return Ok(r);
        }
        let memory = cpu.fault == fault::MEMORY;
        (cpu.fault, cpu.insn_off) = (0, 0);
        if memory {
            return Ok(crate::dispatch::replay_blocks(|| {
                let block = fetch(cpu.rip)?;
                let wrote = block.insns.iter().any(crate::jit::writes_memory);
                Some((self.interpret(cpu, &block), wrote))
            }));
        }
        let block = fetch(cpu.rip).ok_or("a replayed block outside the code")?;
        Ok(self.interpret(cpu, &block))
    }

    /// Runs compiled `code` as a unit through the trampoline.
    fn enter(&mut self, cpu: &mut Cpu, code: &[u8]) -> Result<u64, String> {
        let rt = crate::dispatch::runtime::runtime().ok_or("no runtime")?;
        if code.len() > 65536 {
            return Err("unit too large".into());
        }
        if !crate::jit::stack_in_reach(cpu.gpr[4]) {
            return Err("a stack pointer compiled code may not be entered with".into());
        }
        let f = self.page.replace(code).map_err(|e| e.to_string())?;
        crate::linux::signals::set_current(cpu);
        // SAFETY: `f` is the unit just compiled, entered through the trampoline with this
        // case's context.
        let r = unsafe { (rt.enter())(cpu, f) };
        crate::linux::signals::set_current(std::ptr::null_mut());
        Ok(r)
    }

    /// The outcome of a run that ended with exit code `r`.
    fn finish(&self, cpu: &Cpu, r: u64) -> Result<Outcome, String> {
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
            rflags: rflags(cpu) | 0x202 | (cpu.df << 10),
            ..Default::default()
        };
        crate::cpu::fxsave::fxsave_to(cpu, FX_AREA);
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

/// How `run_sequence` runs a case.
#[derive(Clone, Copy, Debug)]
pub(super) enum Mode {
    Interp,
    Blocks,
    Region,
}

/// Decodes the block at a guest address of `code` (laid out at `CODE`).
fn decoder(code: &[u8]) -> impl Fn(u64) -> Option<Block> + Copy + '_ {
    move |at| {
        let off = at.checked_sub(CODE)? as usize;
        Some(decode_block(code.get(off..)?, at, semantics::classify))
    }
}
