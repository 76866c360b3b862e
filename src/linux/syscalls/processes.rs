//! Process calls: exit, clone (threads are started by the dispatcher; fork-like clones
//! duplicate Kiln), fork/vfork, execve (the new program runs under Kiln too), waiting for
//! children, and the process's ids, limits and usage.

use super::procfs::is_self_exe;
use super::{clobber_rcx_r11, host_syscall, Args, Process, Result, SysResult};
use crate::cpu::Cpu;
use std::ffi::CString;

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

const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_PARENT_SETTID: u64 = 0x0010_0000;
const CLONE_CHILD_SETTID: u64 = 0x0100_0000;

pub(super) fn exit_group(_: &Process, _: &mut Cpu, a: Args) -> SysResult {
    SysResult::Exit(a[0] as i32)
}

pub(super) fn exit(_: &Process, _: &mut Cpu, a: Args) -> SysResult {
    SysResult::ExitThread(a[0] as i32)
}

/// clone: CLONE_VM | CLONE_THREAD starts a thread (the dispatcher puts the result in rax);
/// anything else is fork-like.
pub(super) fn clone(proc: &Process, cpu: &mut Cpu, a: Args) -> SysResult {
    if a[0] & (CLONE_VM | CLONE_THREAD) == CLONE_VM | CLONE_THREAD {
        clobber_rcx_r11(cpu);
        return SysResult::SpawnThread(CloneArgs {
            flags: a[0],
            stack: a[1],
            ptid: a[2],
            ctid: a[3],
            tls: a[4],
        });
    }
    fork_with(proc, cpu, [a[0], a[1], a[2], a[3]])
}

/// fork, vfork: a clone without flags.
pub(super) fn fork(proc: &Process, cpu: &mut Cpu, _: Args) -> SysResult {
    fork_with(proc, cpu, [0; 4])
}

/// Forks with clone's (flags, stack, ptid, ctid) and returns to the guest in both processes.
fn fork_with(proc: &Process, cpu: &mut Cpu, clone: [u64; 4]) -> SysResult {
    let r = proc.fork_like(cpu, clone).unwrap_or_else(|e| e);
    let forked_child = r == 0;
    cpu.gpr[0] = r as u64;
    clobber_rcx_r11(cpu);
    if forked_child {
        SysResult::ForkedChild
    } else {
        SysResult::Continue
    }
}

pub(super) fn execve(proc: &Process, cpu: &mut Cpu, a: Args) -> SysResult {
    match proc.prepare_exec(a) {
        Ok(req) => SysResult::Exec(req),
        Err(e) => {
            // As before the syscall table: a refused execve sets rax and rcx, not r11.
            cpu.gpr[0] = e as u64;
            cpu.gpr[1] = cpu.rip;
            SysResult::Continue
        }
    }
}

impl Process {
    /// Checks an execve and collects what the new Kiln process needs.
    fn prepare_exec(&self, a: Args) -> std::result::Result<ExecRequest, i64> {
        let mut path = self.guest_cstr(a[0])?;
        if is_self_exe(path.as_bytes()) {
            // The guest program, not Kiln (busybox re-executes itself this way).
            path = CString::new(self.exe.as_bytes()).map_err(|_| -(libc::ENOENT as i64))?;
        }
        let argv = self.guest_strv(a[1])?;
        let envp = self.guest_strv(a[2])?;
        // The kernel's checks, done natively so the guest sees the same errors.
        // SAFETY: path is a valid C string.
        if unsafe { libc::access(path.as_ptr(), libc::X_OK) } != 0 {
            return Err(-(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOENT) as i64));
        }
        use std::os::unix::ffi::OsStrExt;
        let md = std::fs::metadata(std::ffi::OsStr::from_bytes(path.as_bytes()))
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
    fn fork_like(&self, cpu: &mut Cpu, clone: [u64; 4]) -> std::result::Result<i64, i64> {
        let [flags, stack, ptid, ctid] = clone;
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
                let tid = rustix::thread::gettid().as_raw_pid() as u32;
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

pub(super) fn wait4(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let st = proc.buf_or_null(a[1], 4)?;
    let ru = proc.buf_or_null(a[3], 144)?;
    Ok(host_syscall(61, [a[0], st, a[2], ru, 0, 0]))
}

pub(super) fn waitid(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let info = proc.buf_or_null(a[2], 128)?;
    let ru = proc.buf_or_null(a[4], 144)?;
    Ok(host_syscall(247, [a[0], a[1], info, a[3], ru, 0]))
}

/// getresuid, getresgid: three u32 out-pointers.
pub(super) fn getres_ids(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let x = proc.buf(a[0], 4)?;
    let y = proc.buf(a[1], 4)?;
    let z = proc.buf(a[2], 4)?;
    Ok(host_syscall(nr, [x, y, z, 0, 0, 0]))
}

pub(super) fn getgroups(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let p = proc.buf_or_null(a[1], a[0].saturating_mul(4))?;
    Ok(host_syscall(115, [a[0], p, 0, 0, 0, 0]))
}

/// getrlimit, setrlimit: (resource, struct rlimit).
pub(super) fn rlimit(proc: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    let p = proc.buf(a[1], 16)?;
    Ok(host_syscall(nr, [a[0], p, 0, 0, 0, 0]))
}

pub(super) fn prlimit64(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let n = proc.buf_or_null(a[2], 16)?;
    let o = proc.buf_or_null(a[3], 16)?;
    Ok(host_syscall(302, [a[0], a[1], n, o, 0, 0]))
}

pub(super) fn getrusage(proc: &Process, _: &mut Cpu, _: u64, a: Args) -> Result {
    let p = proc.buf(a[1], 144)?;
    Ok(host_syscall(98, [a[0], p, 0, 0, 0, 0]))
}
