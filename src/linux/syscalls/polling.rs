//! Waiting on descriptors: poll, select and epoll, forwarded with their guest arrays
//! translated (the guest's signal mask is Kiln's to apply, so none is passed on).

use super::{host_syscall, Args, Process, Result};
use crate::cpu::Cpu;

pub(super) fn poll(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let p = proc.buf_or_null(a[0], a[1].saturating_mul(8))?;
    Ok(host_syscall(7, [p, a[1], a[2], 0, 0, 0]))
}

pub(super) fn ppoll(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let p = proc.buf_or_null(a[0], a[1].saturating_mul(8))?;
    let t = proc.buf_or_null(a[2], 16)?;
    let m = proc.buf_or_null(a[3], a[4])?;
    Ok(host_syscall(271, [p, a[1], t, m, a[4], 0]))
}

/// select, pselect6: pselect6's sixth argument points at {sigset pointer, size}: pass no mask.
pub(super) fn select(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let r = proc.buf_or_null(a[1], 128)?;
    let w = proc.buf_or_null(a[2], 128)?;
    let e = proc.buf_or_null(a[3], 128)?;
    let t = proc.buf_or_null(a[4], 16)?;
    Ok(host_syscall(nr, [a[0], r, w, e, t, 0]))
}

pub(super) fn epoll_ctl(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let e = proc.buf_or_null(a[3], 12)?;
    Ok(host_syscall(233, [a[0], a[1], a[2], e, 0, 0]))
}

/// epoll_wait, epoll_pwait: (epfd, events, maxevents, timeout).
pub(super) fn epoll_wait(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let e = proc.buf(a[1], a[2].saturating_mul(12))?;
    Ok(host_syscall(nr, [a[0], e, a[2], a[3], 0, 0]))
}

/// epoll_pwait2 (the guest's signal mask is Kiln's to apply, as for epoll_pwait)
pub(super) fn epoll_pwait2(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let e = proc.buf(a[1], a[2].saturating_mul(12))?;
    let t = proc.buf_or_null(a[3], 16)?;
    Ok(host_syscall(441, [a[0], e, a[2], t, 0, 0]))
}
