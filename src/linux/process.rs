//! Process syscalls: fork/vfork/clone-as-fork, execve (the new program runs under Kiln too),
//! and reading argv/envp arrays out of guest memory.

use super::syscalls::Process;
use crate::cpu::Cpu;
use std::ffi::CString;

const EFAULT: i64 = -libc::EFAULT as i64;

/// A clone that creates a thread: what the dispatcher needs to start it.
pub struct CloneArgs {
    pub flags: u64,
    pub stack: u64,
    pub ptid: u64,
    pub ctid: u64,
    pub tls: u64,
}

/// What an execve asks for, once checked: the program and its argv/envp.
pub struct ExecRequest {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// Signals the guest ignores and blocks: both survive execve.
    pub ignored: u64,
    pub blocked: u64,
}

impl Process {
    /// A NUL-terminated guest string.
    pub fn guest_cstr(&self, a: u64) -> Result<CString, i64> {
        if a == 0 {
            return Err(EFAULT);
        }
        let mut out = Vec::new();
        let mut at = a;
        loop {
            let len = self.mem.readable_len(at, 4096 - (at & 4095));
            if len == 0 {
                return Err(EFAULT);
            }
            let bytes = self.mem.read_bytes(at, len as usize).ok_or(EFAULT)?;
            if let Some(n) = bytes.iter().position(|&b| b == 0) {
                out.extend_from_slice(&bytes[..n]);
                return CString::new(out).map_err(|_| EFAULT);
            }
            out.extend_from_slice(bytes);
            at += len;
            if out.len() > 1 << 20 {
                return Err(-libc::E2BIG as i64);
            }
        }
    }

    /// A NULL-terminated guest array of string pointers.
    fn guest_strv(&self, a: u64) -> Result<Vec<CString>, i64> {
        let mut v = Vec::new();
        if a == 0 {
            return Ok(v);
        }
        for i in 0..65536u64 {
            if self.mem.readable_len(a + i * 8, 8) < 8 {
                return Err(EFAULT);
            }
            let b = self.mem.read_bytes(a + i * 8, 8).ok_or(EFAULT)?;
            let p = u64::from_le_bytes(b.try_into().map_err(|_| EFAULT)?);
            if p == 0 {
                return Ok(v);
            }
            v.push(self.guest_cstr(p)?);
        }
        Err(-libc::E2BIG as i64)
    }

    /// Checks an execve and collects what the new Kiln process needs.
    pub fn prepare_exec(&self, a: [u64; 6]) -> Result<ExecRequest, i64> {
        let mut path = self.guest_cstr(a[0])?;
        if is_self_exe(path.as_bytes()) {
            // The guest program, not Kiln (busybox re-executes itself this way).
            path = std::ffi::CString::new(self.exe.as_bytes()).map_err(|_| -(libc::ENOENT as i64))?;
        }
        let argv = self.guest_strv(a[1])?;
        let envp = self.guest_strv(a[2])?;
        // The kernel's checks, done natively so the guest sees the same errors.
        // SAFETY: path is a valid C string.
        if unsafe { libc::access(path.as_ptr(), libc::X_OK) } != 0 {
            return Err(-(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOENT) as i64));
        }
        let md = std::fs::metadata(std::ffi::OsStr::from_bytes_compat(path.as_bytes()))
            .map_err(|e| -(e.raw_os_error().unwrap_or(libc::ENOENT) as i64))?;
        if md.is_dir() {
            return Err(-libc::EACCES as i64);
        }
        let (ignored, blocked) = self.exec_signal_state();
        Ok(ExecRequest {
            path,
            argv,
            envp,
            ignored,
            blocked,
        })
    }

    /// fork, vfork and clone without CLONE_VM (or with CLONE_VM|CLONE_VFORK, which the child
    /// cannot tell apart once it execs): the host process is duplicated with its reservation.
    /// Returns the host result (child pid in the parent, 0 in the child).
    pub fn fork_like(&self, cpu: &mut Cpu, nr: u64, a: [u64; 6]) -> Result<i64, i64> {
        let (flags, stack, ptid, ctid) = if nr == 56 {
            (a[0], a[1], a[2], a[3])
        } else {
            (0, 0, 0, 0)
        };
        const CLONE_VM: u64 = 0x100;
        const CLONE_VFORK: u64 = 0x4000;
        const CLONE_THREAD: u64 = 0x10000;
        const CLONE_PARENT_SETTID: u64 = 0x0010_0000;
        const CLONE_CHILD_SETTID: u64 = 0x0100_0000;
        if flags & CLONE_THREAD != 0 || (flags & CLONE_VM != 0 && flags & CLONE_VFORK == 0) {
            // Threads (CLONE_THREAD) are started by the dispatcher before this point; a shared
            // address space without a thread or vfork is not supported.
            return Err(-libc::ENOSYS as i64);
        }
        // SAFETY: fork in a process whose other threads (compile workers) are not needed by
        // the child; the dispatcher rebuilds them in the child.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(-(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EAGAIN) as i64));
        }
        if pid == 0 {
            if stack != 0 {
                cpu.gpr[4] = stack;
            }
            if flags & CLONE_CHILD_SETTID != 0 && ctid != 0 {
                // SAFETY: gettid has no preconditions.
                let tid = unsafe { libc::gettid() } as u32;
                let _ = self.mem.write_bytes(ctid, &tid.to_le_bytes());
            }
            return Ok(0);
        }
        if flags & CLONE_PARENT_SETTID != 0 && ptid != 0 {
            let _ = self.mem.write_bytes(ptid, &(pid as u32).to_le_bytes());
        }
        Ok(pid as i64)
    }
}

trait FromBytesCompat {
    fn from_bytes_compat(b: &[u8]) -> &Self;
}

impl FromBytesCompat for std::ffi::OsStr {
    fn from_bytes_compat(b: &[u8]) -> &Self {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(b)
    }
}

/// Whether a path names this process's executable through /proc.
pub fn is_self_exe(p: &[u8]) -> bool {
    // SAFETY: getpid has no preconditions.
    let me = format!("/proc/{}/exe", unsafe { libc::getpid() });
    p == b"/proc/self/exe" || p == b"/proc/thread-self/exe" || p == me.as_bytes()
}
