//! Signals: host handlers record asynchronous signals; the dispatcher delivers them to guest
//! handlers at unit boundaries by building the kernel's x86-64 `rt_sigframe` on the guest stack;
//! `rt_sigreturn` restores the interrupted state from it.

use super::process::{Process, SignalState};
use crate::cpu::flags::{rflags, store_raw_flags};
use crate::cpu::Cpu;
use std::sync::atomic::{AtomicU64, Ordering};

/// Signals received and not yet delivered (bit n-1 for signal n).
static PENDING: AtomicU64 = AtomicU64::new(0);
/// The host siginfo of the last instance of each signal (128 bytes each).
static INFO: [[AtomicU64; 16]; 65] = [const { [const { AtomicU64::new(0) }; 16] }; 65];

/// The signals no mask may block.
pub const UNBLOCKABLE: u64 = (1 << (libc::SIGKILL - 1)) | (1 << (libc::SIGSTOP - 1));

const SA_SIGINFO: u64 = 4;
const SA_ONSTACK: u64 = 0x0800_0000;
const SA_RESTART: u64 = 0x1000_0000;
const SA_NODEFER: u64 = 0x4000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
const SA_RESTORER: u64 = 0x0400_0000;

extern "C" fn on_host_signal(sig: i32, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    if (1..=64).contains(&sig) {
        if !info.is_null() {
            let words = info as *const u64;
            for (i, slot) in INFO[sig as usize].iter().enumerate() {
                // SAFETY: the kernel's siginfo is 128 bytes.
                slot.store(unsafe { words.add(i).read() }, Ordering::Relaxed);
            }
        }
        PENDING.fetch_or(1 << (sig - 1), Ordering::SeqCst);
        super::wake::wake_all();
    }
}

thread_local! {
    /// This thread's guest context while it runs guest code (null otherwise).
    static CURRENT: std::cell::Cell<*mut Cpu> = const { std::cell::Cell::new(std::ptr::null_mut()) };
}

/// Where guest memory faults land (the trampoline's return point) and the host handlers that
/// were installed before ours (for faults that are not the guest's).
static LANDING: AtomicU64 = AtomicU64::new(0);
static OLD_SEGV: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
static OLD_BUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Records the context that this thread's guest code runs with.
pub fn set_current(cpu: *mut Cpu) {
    CURRENT.set(cpu);
}

/// Installs the SIGSEGV/SIGBUS handlers that turn host faults on guest memory into guest
/// faults: the running unit (or interpreted block) is abandoned at the trampoline's return
/// point `landing`, and the dispatcher delivers SIGSEGV/SIGBUS to the guest with the precise
/// state before the faulting instruction.
pub fn install_fault_handlers(landing: usize) {
    LANDING.store(landing as u64, Ordering::SeqCst);
    for (sig, old) in [(libc::SIGSEGV, &OLD_SEGV), (libc::SIGBUS, &OLD_BUS)] {
        // SAFETY: installing a handler; the old action is kept to pass on faults not ours.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_host_fault as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut sa.sa_mask);
            let mut prev: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, &sa, &mut prev);
            let _ = old.set(prev.sa_sigaction);
        }
    }
}

extern "C" fn on_host_fault(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo.
    let host = unsafe { (*info).si_addr() } as u64;
    let cpu = CURRENT.get();
    let landing = LANDING.load(Ordering::Relaxed);
    // The guest (or Kiln for it) writing a page of translated code: its translations are
    // dropped, and the write is retried on the page made writable again, by the baseline tier
    // where compiled code wrote (`leave_compiled_code`).
    if crate::mem::watch::on_write_fault(host) {
        if !cpu.is_null() && landing != 0 {
            // SAFETY: the thread's own context, registered while it runs guest code; only
            // plain fields are touched.
            leave_compiled_code(unsafe { &mut *cpu }, ctx, landing);
        }
        return;
    }
    if !cpu.is_null() && landing != 0 {
        // SAFETY: as above; only plain fields are touched.
        let c = unsafe { &mut *cpu };
        if c.host_sp != 0 && crate::mem::is_guest_fault(host) {
            let write = host_fault_was_write(ctx);
            c.fault = crate::cpu::fault::MEMORY;
            c.fault_addr = host;
            c.fault_info = (write as u64 * crate::cpu::fault_info::WRITE)
                | if sig == libc::SIGBUS {
                    crate::cpu::fault_info::BUS
                } else {
                    0
                };
            resume_at_landing(ctx, landing, c.host_sp, c.host_fp, crate::cpu::exit::FAULT);
            return;
        }
    }
    // Not a guest access: hand the fault to whoever handled it before (or the default), and
    // let the instruction fault again.
    let old = if sig == libc::SIGBUS {
        OLD_BUS.get()
    } else {
        OLD_SEGV.get()
    };
    // SAFETY: restoring a previous disposition.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = old.copied().unwrap_or(libc::SIG_DFL);
        if sa.sa_sigaction > 1 {
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        }
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

/// Where compiled code wrote a page of translated code, leaves it for the dispatcher
/// (`fault::WROTE_CODE`), which runs the guest block again from the last checkpoint in the
/// baseline tier, decoded afresh, so that no block of the region runs on in its old
/// translation: compiled code checks for changed code only where a unit starts and where a
/// loop goes round. Kiln's own code (a helper, the baseline tier, the dispatcher) retries the
/// write, and the slow helper leaves after it (`semantics::slow::helper_slow`).
fn leave_compiled_code(c: &mut crate::cpu::Cpu, ctx: *mut libc::c_void, landing: u64) {
    if c.host_sp == 0 || fault_pc(ctx).is_none_or(in_kiln_image) {
        return;
    }
    c.fault = crate::cpu::fault::WROTE_CODE;
    resume_at_landing(ctx, landing, c.host_sp, c.host_fp, crate::cpu::exit::FAULT);
}

/// Whether `pc` lies in Kiln's own executable code rather than compiled code.
fn in_kiln_image(pc: u64) -> bool {
    extern "C" {
        // The linker's bounds of the executable's image and text.
        static __executable_start: u8;
        static etext: u8;
    }
    let (start, end) = (&raw const __executable_start as u64, &raw const etext as u64);
    (start..end).contains(&pc)
}

/// The host address of the faulting instruction.
#[cfg(target_arch = "x86_64")]
fn fault_pc(ctx: *mut libc::c_void) -> Option<u64> {
    // SAFETY: the kernel passes the interrupted thread's ucontext.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    Some(uc.uc_mcontext.gregs[libc::REG_RIP as usize] as u64)
}

#[cfg(target_arch = "aarch64")]
fn fault_pc(ctx: *mut libc::c_void) -> Option<u64> {
    // SAFETY: the kernel passes the interrupted thread's ucontext.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    Some(uc.uc_mcontext.pc)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn fault_pc(_ctx: *mut libc::c_void) -> Option<u64> {
    None
}

/// Makes the interrupted thread continue at `pc` as if the trampoline's call had returned
/// `ret` (and no guest instructions run: the count of the chain the fault ended is lost, a
/// statistic only), with its stack and frame pointers as they were at the call.
#[cfg(target_arch = "x86_64")]
fn resume_at_landing(ctx: *mut libc::c_void, pc: u64, sp: u64, fp: u64, ret: u64) {
    // SAFETY: the kernel passes the interrupted thread's ucontext.
    let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
    let g = &mut uc.uc_mcontext.gregs;
    g[libc::REG_RIP as usize] = pc as i64;
    g[libc::REG_RSP as usize] = sp as i64;
    g[libc::REG_RBP as usize] = fp as i64;
    g[libc::REG_RAX as usize] = ret as i64;
    g[libc::REG_RCX as usize] = 0;
}

#[cfg(target_arch = "aarch64")]
fn resume_at_landing(ctx: *mut libc::c_void, pc: u64, sp: u64, fp: u64, ret: u64) {
    // SAFETY: the kernel passes the interrupted thread's ucontext.
    let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
    let m = &mut uc.uc_mcontext;
    m.pc = pc;
    m.sp = sp;
    m.regs[29] = fp;
    m.regs[0] = ret;
    m.regs[1] = 0;
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn resume_at_landing(_ctx: *mut libc::c_void, _pc: u64, _sp: u64, _fp: u64, _ret: u64) {
    // No landing on this host yet: the fault ends the process as it would natively.
    // SAFETY: resetting a disposition.
    unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) };
}

#[cfg(target_arch = "x86_64")]
fn host_fault_was_write(ctx: *mut libc::c_void) -> bool {
    // SAFETY: the kernel passes the interrupted thread's ucontext.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    uc.uc_mcontext.gregs[libc::REG_ERR as usize] & 2 != 0
}

#[cfg(not(target_arch = "x86_64"))]
fn host_fault_was_write(_ctx: *mut libc::c_void) -> bool {
    false
}

/// Synchronous signals stay with the host defaults: they come from Kiln's own execution.
fn synchronous(sig: usize) -> bool {
    matches!(
        sig as i32,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGFPE | libc::SIGILL | libc::SIGTRAP
    )
}

/// Makes the host disposition of `sig` follow the guest's new action.
pub fn install_host(sig: usize, act: &[u64; 4]) {
    if synchronous(sig) || sig == libc::SIGKILL as usize || sig == libc::SIGSTOP as usize {
        return;
    }
    // SAFETY: installing a handler that only touches atomics, or a default/ignore disposition.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = match act[0] {
            0 => libc::SIG_DFL,
            1 => libc::SIG_IGN,
            _ => on_host_signal as *const () as usize,
        };
        sa.sa_flags = libc::SA_SIGINFO | if act[1] & SA_RESTART != 0 { libc::SA_RESTART } else { 0 };
        libc::sigfillset(&mut sa.sa_mask);
        if libc::sigaction(sig as i32, &sa, std::ptr::null_mut()) != 0 {
            install_kept_by_libc(sig as i32, sa.sa_sigaction, sa.sa_flags as u64);
        }
    }
}

/// Installs a disposition with the kernel's own call, for the signals the C library keeps for
/// its threads and refuses to `sigaction` (32 and 33 with glibc, 32 to 34 with musl): a guest
/// may use those numbers (a glibc guest's thread cancellation, its SIGRTMIN under a musl
/// Kiln), and what other processes send it must reach it. Every signal is blocked while the
/// handler runs, as for the others.
#[cfg(target_arch = "x86_64")]
fn install_kept_by_libc(sig: i32, handler: usize, flags: u64) {
    /// The kernel's `struct sigaction` on x86-64.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    unsafe extern "C" {
        fn kiln_signal_return();
    }
    let act = KernelSigaction {
        handler,
        flags: flags | SA_RESTORER,
        restorer: kiln_signal_return as *const () as usize,
        mask: !0,
    };
    // SAFETY: the kernel reads the action; the restorer returns through rt_sigreturn.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            &act,
            std::ptr::null_mut::<KernelSigaction>(),
            8usize,
        );
    }
}

// Where a handler installed by `install_kept_by_libc` returns: the kernel's rt_sigreturn.
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".globl kiln_signal_return",
    ".hidden kiln_signal_return",
    "kiln_signal_return:",
    "mov eax, 15",
    "syscall",
    "ud2",
);

#[cfg(not(target_arch = "x86_64"))]
fn install_kept_by_libc(_sig: i32, _handler: usize, _flags: u64) {}

/// Signals that arrived and that a guest mask of `blocked` lets through.
fn deliverable(blocked: u64) -> u64 {
    PENDING.load(Ordering::SeqCst) & !blocked
}

/// Wakes every guest thread if a signal that `blocked` lets through is pending.
fn wake_if_deliverable(blocked: u64) {
    if deliverable(blocked) != 0 {
        super::wake::wake_all();
    }
}

/// Signals that arrived while blocked by the guest's mask.
pub fn pending_blocked(p: &Process) -> u64 {
    let sigs = p.signals.lock().unwrap_or_else(|e| e.into_inner());
    PENDING.load(Ordering::SeqCst) & sigs.blocked
}

/// What became of a pending signal.
pub enum Delivery {
    /// Nothing to deliver (or it was ignored).
    None,
    /// A guest handler frame was built; continue at the handler.
    Handler,
    /// The default action ends the process with this signal.
    Terminate(i32),
}

fn default_ignores(sig: usize) -> bool {
    matches!(
        sig as i32,
        libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH | libc::SIGCONT
    )
}

impl Process {
    /// The signals the guest ignores and blocks (both survive execve).
    pub fn exec_signal_state(&self) -> (u64, u64) {
        let sigs = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        let ignored = (1..=64usize)
            .filter(|&s| sigs.actions[s][0] == 1)
            .fold(0u64, |m, s| m | 1 << (s - 1));
        (ignored, sigs.blocked)
    }

    /// The signal state a new program starts with: `inherited` = (ignored, blocked) from a
    /// guest's execve, or None when Kiln was started natively; then the host's own state is
    /// the guest's, except SIGPIPE, which Kiln ignores for itself (`host::prepare_process`) and
    /// which goes back to its default. Blocking is Kiln's to apply: the host unblocks everything.
    pub fn inherit_signals(&self, inherited: Option<(u64, u64)>) {
        let (ignored, blocked) = inherited.unwrap_or_else(|| {
            let mut ign = 0u64;
            // SAFETY: sigset_t is plain data, valid all zeros.
            let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
            // SAFETY: querying the mask only (no new set).
            unsafe { libc::sigprocmask(libc::SIG_SETMASK, std::ptr::null(), &mut set) };
            let mut blk = 0u64;
            for s in 1..=64i32 {
                // SAFETY: sigaction is plain data, valid all zeros.
                let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
                // SAFETY: a query only (no new action).
                let ok = unsafe { libc::sigaction(s, std::ptr::null(), &mut old) } == 0;
                if ok && s != libc::SIGPIPE && old.sa_sigaction == libc::SIG_IGN {
                    ign |= 1 << (s - 1);
                }
                // SAFETY: set is a valid sigset.
                if unsafe { libc::sigismember(&set, s) } == 1 {
                    blk |= 1 << (s - 1);
                }
            }
            (ign, blk)
        });
        let mut sigs = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        for s in 1..=64usize {
            if s == libc::SIGKILL as usize || s == libc::SIGSTOP as usize {
                continue;
            }
            let act = if ignored & 1 << (s - 1) != 0 {
                [1, 0, 0, 0]
            } else {
                [0; 4]
            };
            if act[0] == 1 || s == libc::SIGPIPE as usize {
                sigs.actions[s] = act;
                install_host(s, &act);
            }
        }
        sigs.blocked = blocked & !UNBLOCKABLE;
        // SAFETY: unblocking every host signal of this thread (delivery follows the guest mask).
        unsafe {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        }
    }

    /// Delivers one pending, unmasked signal to the guest, if any.
    pub fn deliver_signal(&self, cpu: &mut Cpu) -> Delivery {
        let mut sigs = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        let pending = deliverable(sigs.blocked);
        let suspended = sigs.suspended_mask.take();
        if pending == 0 {
            if let Some(old) = suspended {
                sigs.blocked = old;
            }
            return Delivery::None;
        }
        let sig = pending.trailing_zeros() as usize + 1;
        PENDING.fetch_and(!(1 << (sig - 1)), Ordering::SeqCst);
        wake_if_deliverable(sigs.blocked);
        let act = sigs.actions[sig];
        match act[0] {
            0 if default_ignores(sig) => return Delivery::None,
            0 => return Delivery::Terminate(sig as i32),
            1 => return Delivery::None,
            _ => {}
        }
        let old_mask = suspended.unwrap_or(sigs.blocked);
        self.push_frame(cpu, sig, act, old_mask, sigs, [0; 3])
    }

    /// A fault raised by an instruction (divide error, ud2, int3, hlt): delivered at once to a
    /// guest handler with `si_code` and `si_addr`; if the signal is blocked, ignored or left at
    /// its default, the process dies of it, as with the kernel.
    /// `trap` is what the kernel leaves in the sigcontext: (error code, trap number, cr2).
    pub fn deliver_fault(&self, cpu: &mut Cpu, sig: i32, code: i32, addr: u64, trap: [u64; 3]) -> Delivery {
        let sigs = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        let s = sig as usize;
        let act = sigs.actions[s];
        if act[0] <= 1 || sigs.blocked & (1 << (s - 1)) != 0 {
            return Delivery::Terminate(sig);
        }
        // si_signo, si_errno (0); si_code; si_addr
        let words = [sig as u64, code as u32 as u64, addr];
        for (i, slot) in INFO[s].iter().enumerate() {
            slot.store(words.get(i).copied().unwrap_or(0), Ordering::Relaxed);
        }
        let old_mask = sigs.blocked;
        self.push_frame(cpu, s, act, old_mask, sigs, trap)
    }

    /// Builds the signal frame for `sig` with action `act` and enters the handler.
    fn push_frame(
        &self,
        cpu: &mut Cpu,
        sig: usize,
        act: [u64; 4],
        old_mask: u64,
        mut sigs: std::sync::MutexGuard<'_, SignalState>,
        trap: [u64; 3],
    ) -> Delivery {
        let mut new_mask = old_mask | act[3];
        if act[1] & SA_NODEFER == 0 {
            new_mask |= 1 << (sig - 1);
        }
        sigs.blocked = new_mask;
        if act[1] & SA_RESETHAND != 0 {
            sigs.actions[sig] = [0; 4];
            install_host(sig, &[0; 4]);
        }
        let alt = sigs.alt_stack;
        drop(sigs);
        // The frame: below the red zone (or on the alternate stack), FP state, then the
        // rt_sigframe {pretcode, ucontext, siginfo}, aligned as if the handler had been called.
        let mut sp = cpu.gpr[4];
        let on_alt = alt[1] != 0 && sp > alt[0] && sp <= alt[0] + alt[1];
        if act[1] & SA_ONSTACK != 0 && alt[1] != 0 && !on_alt {
            sp = alt[0] + alt[1];
        } else {
            sp -= 128;
        }
        let fp = (sp - 512) & !63;
        let frame = ((fp - (8 + 304 + 128)) & !15) - 8;
        let uc = frame + 8;
        let info = uc + 304;
        let w = |a: u64, v: u64| {
            let _ = self.mem.write_u64(a, v);
        };
        crate::cpu::fxsave::fxsave_to(cpu, fp);
        let restorer = if act[1] & SA_RESTORER != 0 { act[2] } else { 0 };
        w(frame, restorer);
        w(uc, 0); // uc_flags
        w(uc + 8, 0); // uc_link
        w(uc + 16, alt[0]);
        w(
            uc + 24,
            if alt[1] == 0 {
                2
            } else if on_alt {
                1
            } else {
                0
            },
        );
        w(uc + 32, alt[1]);
        self.write_mcontext(cpu, uc + 40, fp, trap);
        w(uc + 296, old_mask);
        for (i, slot) in INFO[sig].iter().enumerate() {
            w(info + 8 * i as u64, slot.load(Ordering::Relaxed));
        }
        let _ = self.mem.write_bytes(info, &(sig as u32).to_le_bytes());
        enter_handler(cpu, sig, act, frame, uc, info);
        Delivery::Handler
    }

    /// The sigcontext's general registers at `g`, in the kernel's order, then rip, rflags, cs,
    /// the trap fields and the FP state pointer `fp`.
    fn write_mcontext(&self, cpu: &Cpu, g: u64, fp: u64, trap: [u64; 3]) {
        let w = |a: u64, v: u64| {
            let _ = self.mem.write_u64(a, v);
        };
        for (i, &r) in MCONTEXT_ORDER.iter().enumerate() {
            w(g + 8 * i as u64, cpu.gpr[r]);
        }
        w(g + 8 * 16, cpu.rip);
        w(g + 8 * 17, rflags(cpu));
        w(g + 8 * 18, 0x33); // cs
        w(g + 8 * 19, trap[0]); // err
        w(g + 8 * 20, trap[1]); // trapno
        w(g + 8 * 21, 0); // oldmask
        w(g + 8 * 22, trap[2]); // cr2
        w(g + 8 * 23, fp); // fpstate
        for i in 24..32 {
            w(g + 8 * i, 0);
        }
    }

    /// rt_sigreturn: restores the state saved in the frame at the stack pointer.
    pub fn sigreturn(&self, cpu: &mut Cpu) {
        let uc = cpu.gpr[4];
        let r = |a: u64| -> u64 {
            self.mem
                .read_bytes(a, 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0)
        };
        let g = uc + 40;
        for (i, &reg) in MCONTEXT_ORDER.iter().enumerate() {
            cpu.gpr[reg] = r(g + 8 * i as u64);
        }
        cpu.rip = r(g + 8 * 16);
        let fl = r(g + 8 * 17);
        cpu.df = (fl >> 10) & 1;
        store_raw_flags(cpu, fl & crate::cpu::rflags::ARITH);
        let fp = r(g + 8 * 23);
        if fp != 0 {
            crate::cpu::fxsave::fxrstor_from(cpu, fp);
        }
        let mask = r(uc + 296) & !UNBLOCKABLE;
        let mut sigs = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        sigs.blocked = mask;
        wake_if_deliverable(mask);
    }

    /// Sleeps until a signal the guest's mask lets through is pending, as the kernel's
    /// `rt_sigsuspend` does: at once if one arrived while blocked, and on through signals the
    /// mask still blocks (which end the host's sleep, as the host blocks none). The host's
    /// signals are blocked while that is tested and unblocked by the sleep itself
    /// (`rt_sigsuspend`), so one arriving in between still ends the sleep.
    pub fn wait_for_unblocked_signal(&self) {
        let all = !0u64;
        let mut host_mask = 0u64;
        // SAFETY: the kernel's calls on this thread's mask, with 8-byte sets; every signal
        // is blocked and then the mask restored (C libraries' own calls would leave the
        // signals they keep for themselves out).
        unsafe {
            libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_BLOCK, &all, &mut host_mask, 8usize);
            loop {
                let blocked = self.signals.lock().unwrap_or_else(|e| e.into_inner()).blocked;
                if deliverable(blocked) != 0 {
                    break;
                }
                libc::syscall(libc::SYS_rt_sigsuspend, &host_mask, 8usize);
            }
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &host_mask,
                std::ptr::null_mut::<u64>(),
                8usize,
            );
        }
    }

    /// After the guest unblocks signals: deliver any that arrived meanwhile.
    pub fn recheck_pending(&self) {
        let sigs = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        wake_if_deliverable(sigs.blocked);
    }
}

/// The guest registers (rax=0, rcx=1, ...) in the order the kernel's sigcontext holds them:
/// r8-r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp.
const MCONTEXT_ORDER: [usize; 16] = [8, 9, 10, 11, 12, 13, 14, 15, 7, 6, 5, 3, 2, 0, 1, 4];

/// Points the guest at the handler of `sig` with its frame at `frame`, whose ucontext and
/// siginfo are at `uc` and `info`.
fn enter_handler(cpu: &mut Cpu, sig: usize, act: [u64; 4], frame: u64, uc: u64, info: u64) {
    cpu.gpr[4] = frame;
    cpu.gpr[7] = sig as u64;
    cpu.gpr[6] = if act[1] & SA_SIGINFO != 0 { info } else { 0 };
    cpu.gpr[2] = if act[1] & SA_SIGINFO != 0 { uc } else { 0 };
    cpu.gpr[0] = 0;
    cpu.rip = act[0];
    cpu.df = 0;
    // The handler starts from the initial FPU state, as the kernel gives it (the frame
    // holds the interrupted one for sigreturn).
    cpu.mxcsr = 0x1f80;
    cpu.fpu_cw = 0x37f;
    cpu.fpu_sw = 0;
    cpu.fpu_top = 0;
    cpu.fpu_tag = 0xffff;
    cpu.st = [[0; 2]; 8];
    cpu.xmm = [[0; 2]; 16];
}

/// Ends the whole process the way the guest would have ended: killed by `sig` (default
/// disposition, unblocked, sent to the process so that any thread may take it).
pub fn die_of(sig: i32) -> ! {
    // SAFETY: resetting a signal to its default and sending it to ourselves.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig);
        libc::raise(sig);
    }
    std::process::exit(128 + sig);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kiln's own functions lie in its image; its heap, its stack and code mapped at run time
    /// (as packs and compiled units are) do not.
    #[test]
    fn only_kilns_own_code_lies_in_its_image() {
        assert!(in_kiln_image(in_kiln_image as fn(u64) -> bool as usize as u64));
        assert!(in_kiln_image(die_of as fn(i32) -> ! as usize as u64));
        let heap = Box::new(0u64);
        let local = 0u64;
        assert!(!in_kiln_image(&*heap as *const u64 as u64));
        assert!(!in_kiln_image(&local as *const u64 as u64));
        let code = crate::mem::exec::install(&[&[0xc3]]).unwrap();
        assert!(!in_kiln_image(code[0].addr()));
    }
}
