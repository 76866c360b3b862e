//! Time calls: clocks, sleeps, interval timers and POSIX timers, forwarded with their guest
//! structures translated.

use super::{host_syscall, Args, Process, Result};
use crate::cpu::Cpu;

/// getitimer, setitimer
pub(super) fn itimer(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let x = proc.buf_or_null(a[1], 32)?;
    let y = if nr == 38 { proc.buf_or_null(a[2], 32)? } else { 0 };
    Ok(host_syscall(nr, [a[0], x, y, 0, 0, 0]))
}

pub(super) fn timer_create(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let ev = proc.buf_or_null(a[1], 64)?;
    let id = proc.buf(a[2], 4)?;
    Ok(host_syscall(222, [a[0], ev, id, 0, 0, 0]))
}

pub(super) fn timer_settime(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let n = proc.buf(a[2], 32)?;
    let o = proc.buf_or_null(a[3], 32)?;
    Ok(host_syscall(223, [a[0], a[1], n, o, 0, 0]))
}

pub(super) fn timer_gettime(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let o = proc.buf(a[1], 32)?;
    Ok(host_syscall(224, [a[0], o, 0, 0, 0, 0]))
}

/// clock_gettime, clock_getres: (clock, struct timespec or NULL).
pub(super) fn clock_query(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let p = proc.buf_or_null(a[1], 16)?;
    Ok(host_syscall(nr, [a[0], p, 0, 0, 0, 0]))
}

pub(super) fn gettimeofday(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let t = proc.buf_or_null(a[0], 16)?;
    let z = proc.buf_or_null(a[1], 8)?;
    Ok(host_syscall(96, [t, z, 0, 0, 0, 0]))
}

pub(super) fn time(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let t = proc.buf_or_null(a[0], 8)?;
    Ok(host_syscall(201, [t, 0, 0, 0, 0, 0]))
}

pub(super) fn nanosleep(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let r = proc.buf(a[0], 16)?;
    let rem = proc.buf_or_null(a[1], 16)?;
    Ok(host_syscall(35, [r, rem, 0, 0, 0, 0]))
}

pub(super) fn clock_nanosleep(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let r = proc.buf(a[2], 16)?;
    let rem = proc.buf_or_null(a[3], 16)?;
    Ok(host_syscall(230, [a[0], a[1], r, rem, 0, 0]))
}

pub(super) fn times(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let p = proc.buf_or_null(a[0], 32)?;
    Ok(host_syscall(100, [p, 0, 0, 0, 0, 0]))
}
