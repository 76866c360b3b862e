//! System-wide queries and settings: uname, sysinfo, getrandom, prctl, and scheduling.

use super::{host_syscall, Args, Process, Result};
use crate::cpu::Cpu;

pub(super) fn uname(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let p = proc.buf(a[0], 390)?;
    Ok(host_syscall(63, [p, 0, 0, 0, 0, 0]))
}

pub(super) fn sysinfo(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let p = proc.buf(a[0], 112)?;
    Ok(host_syscall(99, [p, 0, 0, 0, 0, 0]))
}

pub(super) fn getrandom(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let b = proc.buf(a[0], a[1])?;
    Ok(host_syscall(318, [b, a[1], a[2], 0, 0, 0]))
}

/// prctl: names and simple options only
pub(super) fn prctl(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    match a[0] {
        // PR_SET_NAME, PR_GET_NAME
        15 | 16 => {
            let p = proc.buf(a[1], 16)?;
            Ok(host_syscall(157, [a[0], p, 0, 0, 0, 0]))
        }
        _ => Ok(host_syscall(157, a)),
    }
}

/// sched_setparam, sched_getparam
pub(super) fn sched_param(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let p = proc.buf(a[1], 4)?;
    Ok(host_syscall(nr, [a[0], p, 0, 0, 0, 0]))
}

pub(super) fn sched_setscheduler(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let p = proc.buf(a[2], 4)?;
    Ok(host_syscall(144, [a[0], a[1], p, 0, 0, 0]))
}

pub(super) fn sched_rr_get_interval(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let t = proc.buf(a[1], 16)?;
    Ok(host_syscall(148, [a[0], t, 0, 0, 0, 0]))
}

/// sched_setaffinity, sched_getaffinity: (pid, size, mask).
pub(super) fn sched_affinity(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let p = proc.buf(a[2], a[1])?;
    Ok(host_syscall(nr, [a[0], a[1], p, 0, 0, 0]))
}
