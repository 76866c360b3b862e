//! Kiln's side: each case runs through the baseline tier and through compiled code, on a
//! guest address space holding the instruction and the scratch pages.

use super::{from_fx_image, fx_image, Case, Outcome, State, CODE, FX_AREA, SCRATCH, SCRATCH_LEN};

use crate::cpu::flags::{rflags, store_raw_flags};
use crate::cpu::{exit, fault, rflags as rf, Cpu};
use crate::decode::decode_block;
use crate::jit::Jit;
use crate::mem::exec::RewritableCode;
use crate::mem::Memory;
use crate::semantics;
use std::sync::atomic::AtomicU64;

pub(super) struct Kiln {
    mem: Memory,
    jit: Jit,
    chain: Vec<[u64; 2]>,
    interrupt: Box<AtomicU64>,
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
            chain: vec![[0, 0]; crate::cpu::CHAIN_ENTRIES as usize],
            interrupt: Box::new(AtomicU64::new(0)),
            page,
        })
    }

    pub(super) fn run(&mut self, c: &Case, compiled: bool) -> Result<Outcome, String> {
        let mut code = c.bytes.clone();
        code.extend_from_slice(&[0xe9, 0, 0, 0, 0]); // jmp to the next instruction: ends the block
        self.mem.write_bytes(CODE, &code).map_err(|e| e.to_string())?;
        self.mem.write_bytes(SCRATCH, &c.memory).map_err(|e| e.to_string())?;
        semantics::slow::forget_decoded();
        let mut cpu = Cpu::new(self.mem.base());
        cpu.helpers = crate::dispatch::runtime::HELPERS.as_ptr() as u64;
        cpu.chain_table = self.chain.as_ptr() as u64;
        cpu.interrupt = &*self.interrupt as *const AtomicU64 as u64;
        cpu.gpr = c.state.gpr;
        cpu.rip = CODE;
        store_raw_flags(&mut cpu, c.state.rflags & rf::ARITH);
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
        let rt = crate::dispatch::runtime::runtime().ok_or("no runtime")?;
        let r = if compiled {
            let u = self.jit.compile(&block).map_err(|e| e.to_string())?;
            if u.code.len() > 65536 {
                return Err("unit too large".into());
            }
            let f = self.page.replace(&u.code).map_err(|e| e.to_string())?;
            // SAFETY: `f` is the unit just compiled, entered through the trampoline with this
            // case's context.
            unsafe { (rt.enter())(&mut *cpu, f) }
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
