//! The native harness: each batch of cases runs on the real CPU in a forked child, which loads a
//! state, executes the instruction bytes and stores the resulting state (or the signal raised).

use super::gen::{encode, gpr};
use super::{from_fx_image, fx_image, off, Case, Outcome, State, SCRATCH, SCRATCH_LEN};
use iced_x86::{Code, Instruction, MemoryOperand, Register};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

pub(super) static FAULT_SIG: AtomicI32 = AtomicI32::new(0);
pub(super) static RESTORE_AT: AtomicU64 = AtomicU64::new(0);
/// Where the current case's state and FXSAVE image go (a fault stores them there itself).
static STATE_AT: AtomicU64 = AtomicU64::new(0);
static FX_AT: AtomicU64 = AtomicU64::new(0);
/// [saved rsp, mxcsr to restore]
static mut SAVED: [u64; 2] = [0, 0x1f80];

extern "C" fn on_native_fault(sig: i32, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    FAULT_SIG.store(sig, Ordering::SeqCst);
    // SAFETY: the kernel passes the interrupted context; continue at the harness's restore path.
    let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
    // SAFETY: the case's state and FXSAVE image (set before it ran) are the child's own.
    unsafe { store_fault_state(uc) };
    uc.uc_mcontext.gregs[libc::REG_RIP as usize] = RESTORE_AT.load(Ordering::SeqCst) as i64;
}

/// The state the kernel saved where the case faulted (before the faulting instruction), as the
/// harness stores it where a case ends: the general registers, the flags and the FXSAVE image.
unsafe fn store_fault_state(uc: &libc::ucontext_t) {
    use libc::*;
    let g = &uc.uc_mcontext.gregs;
    let order = [
        REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI, REG_R8, REG_R9, REG_R10, REG_R11,
        REG_R12, REG_R13, REG_R14, REG_R15,
    ];
    let state = STATE_AT.load(Ordering::SeqCst) as *mut State;
    (*state).gpr = order.map(|r| g[r as usize] as u64);
    (*state).rflags = g[REG_EFL as usize] as u64;
    // The kernel's sigcontext: the 23 general words, then the pointer to the FXSAVE-format
    // state (as the C libraries lay out their mcontext_t, whose field only glibc names).
    let fx = *(g.as_ptr().add(23) as *const *const u8);
    if !fx.is_null() {
        std::ptr::copy_nonoverlapping(fx, FX_AT.load(Ordering::SeqCst) as *mut u8, 512);
    }
}

/// Machine code: save callee-saved registers and rsp, load `input`, run `bytes`, store the
/// state to `output`, restore. Returns the code and the offset of the restore path.
pub(super) fn harness(
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
pub(super) fn run_native(cases: &[Case]) -> Option<Vec<Outcome>> {
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
    // The guest space's reservation holds the addresses the cases run at natively (and those
    // they make up stay unmapped, as under Kiln).
    crate::mem::release_reservation();
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
        STATE_AT.store(&mut *output as *mut State as u64, Ordering::SeqCst);
        FX_AT.store(fx_out.0.as_mut_ptr() as u64, Ordering::SeqCst);
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
