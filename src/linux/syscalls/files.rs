//! File and directory calls, forwarded to the host once their guest buffers and paths are
//! translated: I/O, descriptors, metadata, paths, extended attributes, pipes, ioctl.

use super::{host_result, host_syscall, Args, Process, Result};
use crate::cpu::Cpu;

/// read, write, pread64, pwrite64: (fd, buf, count, offset).
pub(super) fn buffer_io(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let b = proc.buf(a[1], a[2])?;
    Ok(host_syscall(nr, [a[0], b, a[2], a[3], 0, 0]))
}

/// readv, writev, preadv, pwritev: the guest's iovecs rebuilt with host pointers.
pub(super) fn vector_io(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let v = proc.iovecs(a[1], a[2])?;
    Ok(host_syscall(nr, [a[0], v.as_ptr() as u64, a[2], a[3], a[4], 0]))
}

/// fcntl: the record-lock commands take a struct flock; the rest take no pointer.
pub(super) fn fcntl(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    if matches!(
        a[1] as i32,
        libc::F_GETLK | libc::F_SETLK | libc::F_SETLKW | libc::F_OFD_GETLK | libc::F_OFD_SETLK | libc::F_OFD_SETLKW
    ) {
        let p = proc.buf(a[2], 32)?;
        Ok(host_syscall(72, [a[0], a[1], p, 0, 0, 0]))
    } else {
        Ok(host_syscall(nr, a))
    }
}

/// stat, lstat: (path, struct stat).
pub(super) fn stat_path(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let path = proc.cstr(a[0])?;
    let st = proc.buf(a[1], 144)?;
    Ok(host_syscall(nr, [path, st, 0, 0, 0, 0]))
}

pub(super) fn fstat(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let st = proc.buf(a[1], 144)?;
    Ok(host_syscall(5, [a[0], st, 0, 0, 0, 0]))
}

/// newfstatat (an empty path with AT_EMPTY_PATH is allowed).
pub(super) fn newfstatat(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let path = proc.cstr(a[1])?;
    let st = proc.buf(a[2], 144)?;
    Ok(host_syscall(262, [a[0], path, st, a[3], 0, 0]))
}

pub(super) fn statx(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let path = proc.cstr(a[1])?;
    let st = proc.buf(a[4], 256)?;
    Ok(host_syscall(332, [a[0], path, a[2], a[3], st, 0]))
}

/// statfs(path) / fstatfs(fd)
pub(super) fn statfs(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let b = proc.buf(a[1], 120)?;
    let first = if nr == 137 { proc.cstr(a[0])? } else { a[0] };
    Ok(host_syscall(nr, [first, b, 0, 0, 0, 0]))
}

pub(super) fn open(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let path = proc.cstr(a[0])?;
    Ok(host_syscall(2, [path, a[1], a[2], 0, 0, 0]))
}

/// (path, arg): access, mkdir, rmdir, unlink, chmod, chdir, truncate.
pub(super) fn path_and_arg(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let path = proc.cstr(a[0])?;
    Ok(host_syscall(nr, [path, a[1], 0, 0, 0, 0]))
}

/// (path, arg, arg): chown, lchown, mknod.
pub(super) fn path_and_two_args(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let path = proc.cstr(a[0])?;
    Ok(host_syscall(nr, [path, a[1], a[2], 0, 0, 0]))
}

/// (dirfd, path, arg, arg): faccessat, faccessat2, mkdirat, unlinkat, fchmodat, mknodat.
pub(super) fn at_path(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let path = proc.cstr(a[1])?;
    Ok(host_syscall(nr, [a[0], path, a[2], a[3], 0, 0]))
}

pub(super) fn fchownat(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let p = proc.cstr(a[1])?;
    Ok(host_syscall(260, [a[0], p, a[2], a[3], a[4], 0]))
}

/// utimensat (a NULL path means the fd itself)
pub(super) fn utimensat(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let p = proc.buf_or_null(a[1], 1)?;
    let p = if a[1] == 0 { 0 } else { proc.cstr(a[1]).unwrap_or(p) };
    let t = proc.buf_or_null(a[2], 32)?;
    Ok(host_syscall(280, [a[0], p, t, a[3], 0, 0]))
}

/// rename, link, symlink: (path, path).
pub(super) fn two_paths(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let (x, y) = (proc.cstr(a[0])?, proc.cstr(a[1])?);
    Ok(host_syscall(nr, [x, y, 0, 0, 0, 0]))
}

/// renameat, renameat2, linkat: (dirfd, path, dirfd, path, flags).
pub(super) fn two_at_paths(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let (x, y) = (proc.cstr(a[1])?, proc.cstr(a[3])?);
    Ok(host_syscall(nr, [a[0], x, a[2], y, a[4], 0]))
}

pub(super) fn symlinkat(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let t = proc.cstr(a[0])?;
    let l = proc.cstr(a[2])?;
    Ok(host_syscall(266, [t, a[1], l, 0, 0, 0]))
}

pub(super) fn getdents64(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let b = proc.buf(a[1], a[2])?;
    Ok(host_syscall(217, [a[0], b, a[2], 0, 0, 0]))
}

pub(super) fn getcwd(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let b = proc.buf(a[0], a[1])?;
    Ok(host_syscall(79, [b, a[1], 0, 0, 0, 0]))
}

/// ioctl: the terminal and descriptor requests whose argument size Kiln knows.
pub(super) fn ioctl(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let size = match a[1] {
        0x5401 => 60,          // TCGETS
        0x5402..=0x5404 => 60, // TCSETS*
        0x5413 | 0x5414 => 8,  // TIOCGWINSZ, TIOCSWINSZ
        0x540f | 0x5410 => 4,  // TIOCGPGRP, TIOCSPGRP
        0x541b | 0x5421 => 4,  // FIONREAD, FIONBIO
        0x5451 | 0x5450 => 0,  // FIOCLEX, FIONCLEX
        _ => return Err(-(libc::ENOTTY as i64)),
    };
    let p = if size == 0 { 0 } else { proc.buf(a[2], size)? };
    // SAFETY: the argument struct is inside the reservation and sized for the request.
    Ok(host_result(unsafe { libc::syscall(16, a[0], a[1], p) }))
}

/// getxattr, lgetxattr, listxattr, llistxattr
pub(super) fn path_xattr(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let path = proc.cstr(a[0])?;
    if nr <= 192 {
        let name = proc.cstr(a[1])?;
        let b = proc.buf_or_null(a[2], a[3])?;
        Ok(host_syscall(nr, [path, name, b, a[3], 0, 0]))
    } else {
        let b = proc.buf_or_null(a[1], a[2])?;
        Ok(host_syscall(nr, [path, b, a[2], 0, 0, 0]))
    }
}

/// fgetxattr, flistxattr
pub(super) fn fd_xattr(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    if nr == 193 {
        let name = proc.cstr(a[1])?;
        let b = proc.buf_or_null(a[2], a[3])?;
        Ok(host_syscall(193, [a[0], name, b, a[3], 0, 0]))
    } else {
        let b = proc.buf_or_null(a[1], a[2])?;
        Ok(host_syscall(196, [a[0], b, a[2], 0, 0, 0]))
    }
}

/// pipe, pipe2 (both forwarded as pipe2)
pub(super) fn pipe(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let p = proc.buf(a[0], 8)?;
    Ok(host_syscall(293, [p, if nr == 22 { 0 } else { a[1] }, 0, 0, 0, 0]))
}

pub(super) fn sendfile(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let o = proc.buf_or_null(a[2], 8)?;
    Ok(host_syscall(40, [a[0], a[1], o, a[3], 0, 0]))
}

pub(super) fn copy_file_range(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let i = proc.buf_or_null(a[1], 8)?;
    let o = proc.buf_or_null(a[3], 8)?;
    Ok(host_syscall(326, [a[0], i, a[2], o, a[4], a[5]]))
}

pub(super) fn memfd_create(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let n = proc.cstr(a[0])?;
    Ok(host_syscall(319, [n, a[1], 0, 0, 0, 0]))
}
