//! Paths through /proc that must show the guest, not Kiln: /proc/self/exe names the guest
//! program, /proc/self/maps and /proc/self/auxv show the guest's address space and auxiliary
//! vector; and the open and readlink calls that meet them.

use super::pointers::{EFAULT, EINVAL};
use super::{host_syscall, Args, Process, Result};
use crate::cpu::Cpu;

/// Whether a path names this process's executable through /proc.
pub(super) fn is_self_exe(p: &[u8]) -> bool {
    let me = format!("/proc/{}/exe", std::process::id());
    p == b"/proc/self/exe" || p == b"/proc/thread-self/exe" || p == me.as_bytes()
}

impl Process {
    fn path_is_self_exe(&self, a: u64) -> bool {
        let Ok(p) = self.cstr(a) else { return false };
        // SAFETY: p points into the reservation; CStr stops at the first NUL within the bound.
        let bytes = unsafe { std::ffi::CStr::from_ptr(p as *const libc::c_char) }.to_bytes();
        is_self_exe(bytes)
    }

    /// /proc files that must show the guest's view: their contents in a memfd, or None.
    fn proc_file(&self, path: u64, flags: u64) -> Option<i64> {
        let p = self.guest_cstr(path).ok()?;
        let p = p.to_str().ok()?;
        let me = format!("/proc/{}/", std::process::id());
        let rest = p
            .strip_prefix("/proc/self/")
            .or_else(|| p.strip_prefix("/proc/thread-self/"))
            .or_else(|| p.strip_prefix(me.as_str()))?;
        let content = match rest {
            "maps" => self.mem.maps_text().into_bytes(),
            "auxv" => self.auxv.clone(),
            _ => return None,
        };
        let cloexec = if flags & libc::O_CLOEXEC as u64 != 0 {
            libc::MFD_CLOEXEC
        } else {
            0
        };
        // SAFETY: a new memfd that we fill and rewind; the guest gets the descriptor.
        unsafe {
            let fd = libc::memfd_create(c"kiln-proc".as_ptr(), cloexec);
            if fd < 0 {
                return Some(-(libc::EMFILE as i64));
            }
            libc::write(fd, content.as_ptr() as *const libc::c_void, content.len());
            libc::lseek(fd, 0, libc::SEEK_SET);
            Some(fd as i64)
        }
    }
}

/// openat: /proc/self/{maps,auxv} open the guest's view; /proc/self/exe opens the guest program.
pub(super) fn openat(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let path = proc.cstr(a[1])?;
    Ok(if let Some(fd) = proc.proc_file(a[1], a[2]) {
        fd
    } else if proc.path_is_self_exe(a[1]) {
        let c = std::ffi::CString::new(proc.exe.clone()).map_err(|_| EINVAL)?;
        host_syscall(257, [a[0], c.as_ptr() as u64, a[2], a[3], 0, 0])
    } else {
        host_syscall(257, [a[0], path, a[2], a[3], 0, 0])
    })
}

/// readlink, readlinkat: /proc/self/exe reads as the guest program's path.
pub(super) fn readlink(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let (dirfd, path_g, buf, len) = if nr == 89 {
        (libc::AT_FDCWD as u64, a[0], a[1], a[2])
    } else {
        (a[0], a[1], a[2], a[3])
    };
    let b = proc.buf(buf, len)?;
    if proc.path_is_self_exe(path_g) {
        let e = proc.exe.as_bytes();
        let n = e.len().min(len as usize);
        proc.mem.write_bytes(buf, &e[..n]).map_err(|_| EFAULT)?;
        Ok(n as i64)
    } else {
        let path = proc.cstr(path_g)?;
        Ok(host_syscall(267, [dirfd, path, b, len, 0, 0]))
    }
}
