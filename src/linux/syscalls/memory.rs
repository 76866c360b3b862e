//! Memory calls, emulated on the guest reservation (decision 2): mmap, munmap, mprotect, brk
//! and mremap change host mappings inside it; madvise is forwarded on the backing host pages.

use super::pointers::EINVAL;
use super::{host_syscall, Args, Process, Result};
use crate::cpu::Cpu;
use crate::mem::{page_up, PAGE};

const ENOMEM: i64 = -libc::ENOMEM as i64;

pub(super) fn mmap(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let (addr, len, prot, flags, fd, off) = (a[0], a[1], a[2] as i32, a[3] as i32, a[4] as i32, a[5] as i64);
    if len == 0 || !(off as u64).is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    let len = page_up(len);
    let fixed = flags & (libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE) != 0;
    let fd = if flags & libc::MAP_ANONYMOUS != 0 { -1 } else { fd };
    let flags = flags & !libc::MAP_32BIT;
    let placed = if fixed {
        if !addr.is_multiple_of(PAGE) {
            return Err(EINVAL);
        }
        if flags & libc::MAP_FIXED_NOREPLACE != 0 && !proc.mem.is_free(addr, len) {
            return Err(-(libc::EEXIST as i64));
        }
        proc.mem.map_fixed(addr, len, prot, flags, fd, off).map(|()| addr)
    } else {
        // As the kernel does, a hint is taken when the range is free (JITs ask for code near
        // their own, for short branches).
        let hint = (addr != 0).then_some(addr & !(PAGE - 1));
        proc.mem.map_placed(hint, len, prot, flags, fd, off)
    };
    match placed {
        Ok(at) => {
            if fd >= 0 && prot & libc::PROT_EXEC != 0 {
                record_exec_map(proc, fd, at, len, off as u64);
            }
            Ok(at as i64)
        }
        Err(crate::mem::MemError::Map(_, _, e)) => Err(-(e.raw_os_error().unwrap_or(libc::ENOMEM) as i64)),
        Err(_) => Err(ENOMEM),
    }
}

/// Remembers an executable file mapping: a module whose translations the cache can keep.
fn record_exec_map(proc: &Process, fd: i32, at: u64, len: u64, off: u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else {
        return;
    };
    let Ok(md) = std::fs::metadata(format!("/proc/self/fd/{fd}")) else {
        return;
    };
    let mut maps = proc.exec_maps.lock().unwrap_or_else(|e| e.into_inner());
    maps.push(crate::linux::process::ExecMap {
        start: at,
        end: at + len,
        offset: off,
        path,
        file_id: (md.dev(), md.ino()),
    });
}

pub(super) fn munmap(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    if !a[0].is_multiple_of(PAGE) || a[1] == 0 {
        return Err(EINVAL);
    }
    proc.mem.unmap(a[0], page_up(a[1])).map_err(|_| EINVAL)?;
    Ok(0)
}

pub(super) fn mprotect(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    if !a[0].is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    Ok(match proc.mem.protect(a[0], page_up(a[1]), a[2] as i32) {
        Ok(()) => 0,
        Err(e) => -(e.raw_os_error().unwrap_or(libc::ENOMEM) as i64),
    })
}

pub(super) fn brk(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    Ok(proc.mem.brk(a[0]) as i64)
}

pub(super) fn mremap(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let (old, old_len, new_len, flags) = (a[0], page_up(a[1]), page_up(a[2]), a[3] as i32);
    if !old.is_multiple_of(PAGE) || new_len == 0 {
        return Err(EINVAL);
    }
    if new_len <= old_len {
        if new_len < old_len {
            proc.mem.unmap(old + new_len, old_len - new_len).map_err(|_| EINVAL)?;
        }
        return Ok(old as i64);
    }
    if flags & libc::MREMAP_MAYMOVE == 0 {
        return Err(ENOMEM);
    }
    // The moved mapping keeps its protection (execute permission included); it is written
    // while read-write and takes the protection after the copy.
    let prot = proc.mem.prot_at(old).unwrap_or(libc::PROT_READ | libc::PROT_WRITE);
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let at = (proc.mem)
        .map_placed(None, new_len, rw, libc::MAP_ANONYMOUS | libc::MAP_PRIVATE, -1, 0)
        .map_err(|_| ENOMEM)?;
    let src = proc.buf(old, old_len)?;
    let dst = proc.buf(at, old_len)?;
    // SAFETY: both ranges are inside the reservation; the old one is the guest's mapping.
    unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, old_len as usize) };
    if prot != libc::PROT_READ | libc::PROT_WRITE {
        proc.mem.protect(at, new_len, prot).map_err(|_| ENOMEM)?;
    }
    proc.mem.unmap(old, old_len).map_err(|_| EINVAL)?;
    Ok(at as i64)
}

/// madvise on the host pages that back the guest's: MADV_DONTNEED must really drop private
/// pages (allocators rely on reading zeros afterwards).
pub(super) fn madvise(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    if !a[0].is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    let len = page_up(a[1]);
    if len == 0 {
        return Ok(0);
    }
    let p = proc.buf(a[0], len)?;
    Ok(host_syscall(28, [p, len, a[2], 0, 0, 0]))
}
