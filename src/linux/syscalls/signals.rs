//! Signal calls: the guest's actions, mask and alternate stack are recorded in the process
//! state (delivery is `linux::signals`' work); rt_sigreturn and rt_sigsuspend call into it.

use super::pointers::{EFAULT, EINVAL};
use super::{Args, Process, Result, SysResult};
use crate::cpu::Cpu;
use crate::linux::signals::{install_host, pending_blocked, UNBLOCKABLE};

/// rt_sigaction: recorded, and the host disposition made to follow.
pub(super) fn rt_sigaction(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let sig = a[0] as usize;
    if sig == 0 || sig > 64 || sig == 9 || sig == 19 {
        return Err(EINVAL);
    }
    let mut sigs = proc.signals.lock().unwrap_or_else(|e| e.into_inner());
    if a[2] != 0 {
        let old = sigs.actions[sig];
        for (i, w) in old.iter().enumerate() {
            proc.mem.write_u64(a[2] + i as u64 * 8, *w).map_err(|_| EFAULT)?;
        }
    }
    if a[1] != 0 {
        let p = proc.buf(a[1], 32)?;
        let mut act = [0u64; 4];
        for (i, w) in act.iter_mut().enumerate() {
            // SAFETY: p..p+32 is inside the reservation.
            *w = unsafe { ((p + i as u64 * 8) as *const u64).read_unaligned() };
        }
        sigs.actions[sig] = act;
        install_host(sig, &act);
    }
    Ok(0)
}

pub(super) fn rt_sigprocmask(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let mut sigs = proc.signals.lock().unwrap_or_else(|e| e.into_inner());
    if a[2] != 0 {
        proc.mem.write_u64(a[2], sigs.blocked).map_err(|_| EFAULT)?;
    }
    if a[1] != 0 {
        let p = proc.buf(a[1], 8)?;
        // SAFETY: 8 bytes inside the reservation.
        let set = unsafe { (p as *const u64).read_unaligned() };
        match a[0] {
            0 => sigs.blocked |= set,
            1 => sigs.blocked &= !set,
            2 => sigs.blocked = set,
            _ => return Err(EINVAL),
        }
        sigs.blocked &= !UNBLOCKABLE;
        drop(sigs);
        proc.recheck_pending();
    }
    Ok(0)
}

/// rt_sigreturn restores every register from the frame: none is clobbered after it.
pub(super) fn rt_sigreturn(proc: &Process, cpu: &mut Cpu, _: Args) -> SysResult {
    proc.sigreturn(cpu);
    SysResult::Continue
}

/// rt_sigpending: the guest's blocked-and-pending signals
pub(super) fn rt_sigpending(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    proc.mem.write_u64(a[0], pending_blocked(proc)).map_err(|_| EFAULT)?;
    Ok(0)
}

/// rt_sigsuspend: wait for a signal with the given mask in force
pub(super) fn rt_sigsuspend(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let p = proc.buf(a[0], 8)?;
    // SAFETY: 8 bytes inside the reservation.
    let mask = unsafe { (p as *const u64).read_unaligned() };
    {
        let mut sigs = proc.signals.lock().unwrap_or_else(|e| e.into_inner());
        let old = std::mem::replace(&mut sigs.blocked, mask);
        sigs.suspended_mask = Some(old);
    }
    proc.wait_for_unblocked_signal();
    crate::linux::wake::wake_all();
    Ok(-(libc::EINTR as i64))
}

/// rt_sigqueueinfo (pid, sig, siginfo) and rt_tgsigqueueinfo (tgid, tid, sig, siginfo): sent
/// by the host, whose processes and threads are the guest's, with the guest's siginfo.
pub(super) fn sigqueueinfo(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let info = if nr == 129 { 2 } else { 3 };
    let mut args = a;
    args[info] = proc.buf(a[info], 128)?;
    Ok(super::host_syscall(nr, args))
}

/// sigaltstack: stack_t {ss_sp, ss_flags (int), ss_size}
pub(super) fn sigaltstack(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let mut sigs = proc.signals.lock().unwrap_or_else(|e| e.into_inner());
    if a[1] != 0 {
        let old = sigs.alt_stack;
        proc.mem.write_u64(a[1], old[0]).map_err(|_| EFAULT)?;
        proc.mem
            .write_u64(a[1] + 8, if old[1] == 0 { 2 } else { 0 })
            .map_err(|_| EFAULT)?;
        proc.mem.write_u64(a[1] + 16, old[1]).map_err(|_| EFAULT)?;
    }
    if a[0] != 0 {
        let p = proc.buf(a[0], 24)?;
        // SAFETY: 24 bytes inside the reservation.
        let (sp, fl, sz) = unsafe {
            let q = p as *const u64;
            (
                q.read_unaligned(),
                q.add(1).read_unaligned() as u32,
                q.add(2).read_unaligned(),
            )
        };
        sigs.alt_stack = if fl & 2 != 0 { [0, 0] } else { [sp, sz] };
    }
    Ok(0)
}
