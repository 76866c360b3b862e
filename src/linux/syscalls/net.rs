//! Socket calls, forwarded with their guest addresses, option values and buffers translated.

use super::{host_syscall, Args, Process, Result};
use crate::cpu::Cpu;

pub(super) fn socketpair(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let p = proc.buf(a[3], 8)?;
    Ok(host_syscall(53, [a[0], a[1], a[2], p, 0, 0]))
}

/// connect, bind: (fd, addr, addrlen).
pub(super) fn sockaddr_in(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let p = proc.buf(a[1], a[2])?;
    Ok(host_syscall(nr, [a[0], p, a[2], 0, 0, 0]))
}

/// getsockname, getpeername, accept, accept4: (fd, addr*, addrlen*)
pub(super) fn sockaddr_out(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let (len_p, len) = proc.socklen(a[2])?;
    let addr = proc.buf_or_null(a[1], len)?;
    Ok(host_syscall(nr, [a[0], addr, len_p, a[3], 0, 0]))
}

pub(super) fn setsockopt(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let v = proc.buf_or_null(a[3], a[4])?;
    Ok(host_syscall(54, [a[0], a[1], a[2], v, a[4], 0]))
}

pub(super) fn getsockopt(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let len_p = proc.buf(a[4], 4)?;
    // SAFETY: 4 bytes inside the reservation.
    let len = unsafe { (len_p as *const u32).read_unaligned() as u64 };
    let v = proc.buf_or_null(a[3], len)?;
    Ok(host_syscall(55, [a[0], a[1], a[2], v, len_p, 0]))
}

pub(super) fn sendto(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let b = proc.buf(a[1], a[2])?;
    let addr = proc.buf_or_null(a[4], a[5])?;
    Ok(host_syscall(44, [a[0], b, a[2], a[3], addr, a[5]]))
}

pub(super) fn recvfrom(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let b = proc.buf(a[1], a[2])?;
    let (len_p, len) = proc.socklen(a[5])?;
    let addr = proc.buf_or_null(a[4], len)?;
    Ok(host_syscall(45, [a[0], b, a[2], a[3], addr, len_p]))
}
