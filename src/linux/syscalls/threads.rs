//! Per-thread kernel state and thread synchronisation: the TLS bases (arch_prctl), the tid
//! address, the robust futex list (walked when a thread dies), and futex.

use super::pointers::{EFAULT, EINVAL};
use super::{host_syscall, Args, Process, Result, ENOSYS};
use crate::cpu::Cpu;
use crate::mem::Memory;
use std::sync::atomic::{AtomicU32, Ordering};

thread_local! {
    /// This guest thread's robust futex list head (set_robust_list).
    static ROBUST_LIST: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

pub(super) fn arch_prctl(proc: &Process, cpu: &mut Cpu, _: u64, a: Args) -> Result {
    Ok(match a[0] {
        0x1001 => {
            cpu.gs_base = a[1];
            0
        }
        0x1002 => {
            cpu.fs_base = a[1];
            0
        }
        0x1003 => {
            proc.mem.write_u64(a[1], cpu.fs_base).map_err(|_| EFAULT)?;
            0
        }
        0x1004 => {
            proc.mem.write_u64(a[1], cpu.gs_base).map_err(|_| EFAULT)?;
            0
        }
        _ => EINVAL,
    })
}

/// set_tid_address: returns the tid.
pub(super) fn set_tid_address(_: &Process, _: &mut Cpu, _: u64, _: Args) -> Result {
    Ok(host_syscall(186, [0; 6]))
}

/// set_robust_list: walked by `exit_robust_list` when this thread exits.
pub(super) fn set_robust_list(_: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    if a[1] != 24 {
        return Ok(EINVAL);
    }
    ROBUST_LIST.set(a[0]);
    Ok(0)
}

/// get_robust_list: this thread's only (another thread's list is not kept).
pub(super) fn get_robust_list(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    if a[0] != 0 {
        return Ok(ENOSYS);
    }
    proc.mem.write_u64(a[1], ROBUST_LIST.get()).map_err(|_| EFAULT)?;
    proc.mem.write_u64(a[2], 24).map_err(|_| EFAULT)?;
    Ok(0)
}

/// futex: guest words live in host memory shared by the guest's threads.
pub(super) fn futex(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let op = a[1] & 0x7f;
    let uaddr = proc.buf(a[0], 4)?;
    let (timeout, uaddr2) = match op {
        0 | 9 | 6 | 11 | 13 => (
            proc.buf_or_null(a[3], 16)?,
            if op == 11 { proc.buf_or_null(a[4], 4)? } else { 0 },
        ),
        3 | 4 | 5 | 12 => (a[3], proc.buf(a[4], 4)?),
        1 | 10 | 7 | 8 => (a[3], 0),
        _ => return Err(ENOSYS),
    };
    Ok(host_syscall(202, [uaddr, a[1], a[2], timeout, uaddr2, a[5]]))
}

const TID_MASK: u32 = 0x3fff_ffff;
const WAITERS: u32 = 0x8000_0000;
const OWNER_DIED: u32 = 0x4000_0000;

/// What the kernel does when a thread exits: releases its robust futexes, then clears the
/// word `set_tid_address` or CLONE_CHILD_CLEARTID named and wakes its waiters (how
/// `pthread_join` learns of the exit).
pub fn exit_thread(mem: &Memory, clear_tid: Option<u64>) {
    exit_robust_list(mem);
    let Some(a) = clear_tid else { return };
    let _ = mem.write_bytes(a, &0u32.to_le_bytes());
    if let Some(p) = mem.host_ptr(a, 4) {
        // SAFETY: futex wake on a guest word inside the reservation.
        unsafe { libc::syscall(libc::SYS_futex, p, libc::FUTEX_WAKE, i32::MAX, 0, 0, 0) };
    }
}

/// What the kernel does with a dying thread's robust futex list: every futex still owned by
/// the thread gets FUTEX_OWNER_DIED, and one waiter is woken.
fn exit_robust_list(mem: &Memory) {
    let head = ROBUST_LIST.replace(0);
    if head == 0 {
        return;
    }
    let tid = rustix::thread::gettid().as_raw_pid() as u32;
    let read = |a: u64| -> Option<u64> { Some(u64::from_le_bytes(mem.read_bytes(a, 8)?.try_into().ok()?)) };
    let (Some(first), Some(offset), Some(pending)) = (read(head), read(head + 8), read(head + 16)) else {
        return;
    };
    let death = |entry: u64| owner_died(mem, entry.wrapping_add(offset), tid);
    // Entries carry a PI flag in bit 0; the list is circular through the head.
    let (mut entry, pending) = (first & !1, pending & !1);
    for _ in 0..2048 {
        if entry == head {
            break;
        }
        let Some(next) = read(entry) else { break };
        if entry != pending {
            death(entry);
        }
        entry = next & !1;
    }
    if pending != 0 {
        death(pending);
    }
}

/// Marks the futex word at `word` FUTEX_OWNER_DIED if thread `tid` still owns it, and wakes one
/// waiter if there are any.
fn owner_died(mem: &Memory, word: u64, tid: u32) {
    let Some(p) = mem.host_ptr(word, 4) else { return };
    if mem.readable_len(word, 4) < 4 || !word.is_multiple_of(4) {
        return;
    }
    // SAFETY: an aligned guest word inside the reservation, mapped readable.
    let atom = unsafe { &*(p as *const AtomicU32) };
    let mut v = atom.load(Ordering::SeqCst);
    loop {
        if v & TID_MASK != tid {
            return;
        }
        let new = (v & WAITERS) | OWNER_DIED;
        match atom.compare_exchange(v, new, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => break,
            Err(cur) => v = cur,
        }
    }
    if v & WAITERS != 0 {
        // SAFETY: futex wake on a guest word inside the reservation.
        unsafe { libc::syscall(libc::SYS_futex, p, libc::FUTEX_WAKE, 1, 0, 0, 0) };
    }
}
