//! System calls as one table: each entry names a number, the kernel's name for it and the
//! handler that runs it. Handlers are grouped by area in the submodules; dispatch looks the
//! number up, and numbers absent from the table return ENOSYS, named under `KILN_LOG=syscall`.

mod files;
mod memory;
mod net;
mod pointers;
mod polling;
mod processes;
mod procfs;
mod signals;
mod system;
mod threads;
mod time;

pub use processes::{CloneArgs, ExecRequest};
pub use threads::exit_thread;

use super::process::Process;
use crate::cpu::Cpu;

pub enum SysResult {
    Continue,
    Exit(i32),
    /// execve accepted: the dispatcher ends this run and replaces the process.
    Exec(ExecRequest),
    /// This is the child of a fork: the dispatcher must rebuild per-process machinery.
    ForkedChild,
    /// exit: the calling thread ends.
    ExitThread(i32),
    /// clone of a thread: the dispatcher starts it and puts the result in rax.
    SpawnThread(CloneArgs),
}

/// The six argument registers, in the syscall ABI's order (rdi, rsi, rdx, r10, r8, r9).
pub type Args = [u64; 6];

/// A call that returns a value (or -errno) in rax: `Err` is an errno found while checking the
/// guest's arguments, `Ok` the call's own result (which may be -errno too).
type Returns = fn(&Process, &mut Cpu, u64, Args) -> Result;
/// What a `Returns` handler gives back.
type Result = std::result::Result<i64, i64>;
/// A call that changes the run itself (exit, execve, clone, rt_sigreturn): it sets the
/// registers it leaves and says what the dispatcher does next.
type Controls = fn(&Process, &mut Cpu, Args) -> SysResult;

#[derive(Clone, Copy)]
enum Handler {
    Returns(Returns),
    Controls(Controls),
}

/// One table entry.
struct Syscall {
    nr: u64,
    name: &'static str,
    handler: Handler,
}

const fn returns(nr: u64, name: &'static str, handler: Returns) -> Syscall {
    Syscall {
        nr,
        name,
        handler: Handler::Returns(handler),
    }
}

const fn controls(nr: u64, name: &'static str, handler: Controls) -> Syscall {
    Syscall {
        nr,
        name,
        handler: Handler::Controls(handler),
    }
}

use files as f;
use memory as m;
use net as n;
use polling as pl;
use processes as pr;
use procfs as pf;
use signals as sg;
use system as sy;
use threads as th;
use time as t;

#[rustfmt::skip]
const TABLE: &[Syscall] = &[
    // files
    returns(0, "read", f::buffer_io),
    returns(1, "write", f::buffer_io),
    returns(17, "pread64", f::buffer_io),
    returns(18, "pwrite64", f::buffer_io),
    returns(19, "readv", f::vector_io),
    returns(20, "writev", f::vector_io),
    returns(295, "preadv", f::vector_io),
    returns(296, "pwritev", f::vector_io),
    returns(3, "close", pass_through),
    returns(8, "lseek", pass_through),
    returns(32, "dup", pass_through),
    returns(33, "dup2", pass_through),
    returns(292, "dup3", pass_through),
    returns(72, "fcntl", f::fcntl),
    returns(74, "fsync", pass_through),
    returns(75, "fdatasync", pass_through),
    returns(77, "ftruncate", pass_through),
    returns(81, "fchdir", pass_through),
    returns(91, "fchmod", pass_through),
    returns(93, "fchown", pass_through),
    returns(95, "umask", pass_through),
    returns(4, "stat", f::stat_path),
    returns(6, "lstat", f::stat_path),
    returns(5, "fstat", f::fstat),
    returns(262, "newfstatat", f::newfstatat),
    returns(332, "statx", f::statx),
    returns(137, "statfs", f::statfs),
    returns(138, "fstatfs", f::statfs),
    returns(2, "open", f::open),
    returns(21, "access", f::path_and_arg),
    returns(83, "mkdir", f::path_and_arg),
    returns(84, "rmdir", f::path_and_arg),
    returns(87, "unlink", f::path_and_arg),
    returns(90, "chmod", f::path_and_arg),
    returns(80, "chdir", f::path_and_arg),
    returns(76, "truncate", f::path_and_arg),
    returns(92, "chown", f::path_and_two_args),
    returns(94, "lchown", f::path_and_two_args),
    returns(133, "mknod", f::path_and_two_args),
    returns(269, "faccessat", f::at_path),
    returns(439, "faccessat2", f::at_path),
    returns(258, "mkdirat", f::at_path),
    returns(263, "unlinkat", f::at_path),
    returns(268, "fchmodat", f::at_path),
    returns(259, "mknodat", f::at_path),
    returns(260, "fchownat", f::fchownat),
    returns(280, "utimensat", f::utimensat),
    returns(82, "rename", f::two_paths),
    returns(86, "link", f::two_paths),
    returns(88, "symlink", f::two_paths),
    returns(264, "renameat", f::two_at_paths),
    returns(316, "renameat2", f::two_at_paths),
    returns(265, "linkat", f::two_at_paths),
    returns(266, "symlinkat", f::symlinkat),
    returns(217, "getdents64", f::getdents64),
    returns(79, "getcwd", f::getcwd),
    returns(16, "ioctl", f::ioctl),
    returns(191, "getxattr", f::path_xattr),
    returns(192, "lgetxattr", f::path_xattr),
    returns(194, "listxattr", f::path_xattr),
    returns(195, "llistxattr", f::path_xattr),
    returns(193, "fgetxattr", f::fd_xattr),
    returns(196, "flistxattr", f::fd_xattr),
    returns(22, "pipe", f::pipe),
    returns(293, "pipe2", f::pipe),
    returns(73, "flock", pass_through),
    returns(285, "fallocate", pass_through),
    returns(221, "fadvise64", pass_through),
    returns(187, "readahead", pass_through),
    returns(277, "sync_file_range", pass_through),
    returns(306, "syncfs", pass_through),
    returns(40, "sendfile", f::sendfile),
    returns(326, "copy_file_range", f::copy_file_range),
    returns(319, "memfd_create", f::memfd_create),
    // paths that must show the guest, not Kiln
    returns(257, "openat", pf::openat),
    returns(89, "readlink", pf::readlink),
    returns(267, "readlinkat", pf::readlink),
    // memory
    returns(9, "mmap", m::mmap),
    returns(10, "mprotect", m::mprotect),
    returns(11, "munmap", m::munmap),
    returns(12, "brk", m::brk),
    returns(25, "mremap", m::mremap),
    returns(28, "madvise", m::madvise),
    // processes
    controls(56, "clone", pr::clone),
    controls(57, "fork", pr::fork),
    controls(58, "vfork", pr::fork),
    controls(59, "execve", pr::execve),
    controls(60, "exit", pr::exit),
    controls(231, "exit_group", pr::exit_group),
    returns(435, "clone3", enosys), // libc falls back to clone
    returns(61, "wait4", pr::wait4),
    returns(247, "waitid", pr::waitid),
    returns(39, "getpid", no_args),
    returns(186, "gettid", no_args),
    returns(110, "getppid", no_args),
    returns(102, "getuid", no_args),
    returns(104, "getgid", no_args),
    returns(107, "geteuid", no_args),
    returns(108, "getegid", no_args),
    returns(111, "getpgrp", no_args),
    returns(112, "setsid", no_args),
    returns(109, "setpgid", pass_through),
    returns(121, "getpgid", pass_through),
    returns(124, "getsid", pass_through),
    returns(105, "setuid", pass_through),
    returns(106, "setgid", pass_through),
    returns(113, "setreuid", pass_through),
    returns(114, "setregid", pass_through),
    returns(117, "setresuid", pass_through),
    returns(119, "setresgid", pass_through),
    returns(122, "setfsuid", pass_through),
    returns(123, "setfsgid", pass_through),
    returns(118, "getresuid", pr::getres_ids),
    returns(120, "getresgid", pr::getres_ids),
    returns(115, "getgroups", pr::getgroups),
    returns(140, "getpriority", pass_through),
    returns(141, "setpriority", pass_through),
    returns(97, "getrlimit", pr::rlimit),
    returns(160, "setrlimit", pr::rlimit),
    returns(302, "prlimit64", pr::prlimit64),
    returns(98, "getrusage", pr::getrusage),
    // threads
    returns(158, "arch_prctl", th::arch_prctl),
    returns(218, "set_tid_address", th::set_tid_address),
    returns(273, "set_robust_list", th::set_robust_list),
    returns(274, "get_robust_list", th::get_robust_list),
    returns(334, "rseq", enosys), // libc falls back
    returns(202, "futex", th::futex),
    // signals
    returns(13, "rt_sigaction", sg::rt_sigaction),
    returns(14, "rt_sigprocmask", sg::rt_sigprocmask),
    controls(15, "rt_sigreturn", sg::rt_sigreturn),
    returns(127, "rt_sigpending", sg::rt_sigpending),
    returns(130, "rt_sigsuspend", sg::rt_sigsuspend),
    returns(131, "sigaltstack", sg::sigaltstack),
    returns(34, "pause", pass_through),
    // kill, tkill, tgkill: the host process is the guest's
    returns(62, "kill", pass_through),
    returns(200, "tkill", pass_through),
    returns(234, "tgkill", pass_through),
    returns(129, "rt_sigqueueinfo", sg::sigqueueinfo),
    returns(297, "rt_tgsigqueueinfo", sg::sigqueueinfo),
    // time
    returns(37, "alarm", pass_through),
    returns(36, "getitimer", t::itimer),
    returns(38, "setitimer", t::itimer),
    returns(222, "timer_create", t::timer_create),
    returns(223, "timer_settime", t::timer_settime),
    returns(224, "timer_gettime", t::timer_gettime),
    returns(225, "timer_getoverrun", pass_through),
    returns(226, "timer_delete", pass_through),
    returns(228, "clock_gettime", t::clock_query),
    returns(229, "clock_getres", t::clock_query),
    returns(96, "gettimeofday", t::gettimeofday),
    returns(201, "time", t::time),
    returns(35, "nanosleep", t::nanosleep),
    returns(230, "clock_nanosleep", t::clock_nanosleep),
    returns(100, "times", t::times),
    // system and scheduling
    returns(63, "uname", sy::uname),
    returns(99, "sysinfo", sy::sysinfo),
    returns(318, "getrandom", sy::getrandom),
    returns(157, "prctl", sy::prctl),
    returns(24, "sched_yield", no_args),
    returns(142, "sched_setparam", sy::sched_param),
    returns(143, "sched_getparam", sy::sched_param),
    returns(144, "sched_setscheduler", sy::sched_setscheduler),
    returns(145, "sched_getscheduler", pass_through),
    returns(146, "sched_get_priority_max", pass_through),
    returns(147, "sched_get_priority_min", pass_through),
    returns(148, "sched_rr_get_interval", sy::sched_rr_get_interval),
    returns(203, "sched_setaffinity", sy::sched_affinity),
    returns(204, "sched_getaffinity", sy::sched_affinity),
    // sockets
    returns(41, "socket", pass_through),
    returns(53, "socketpair", n::socketpair),
    returns(42, "connect", n::sockaddr_in),
    returns(49, "bind", n::sockaddr_in),
    returns(43, "accept", n::sockaddr_out),
    returns(288, "accept4", n::sockaddr_out),
    returns(51, "getsockname", n::sockaddr_out),
    returns(52, "getpeername", n::sockaddr_out),
    returns(48, "shutdown", pass_through),
    returns(50, "listen", pass_through),
    returns(54, "setsockopt", n::setsockopt),
    returns(55, "getsockopt", n::getsockopt),
    returns(44, "sendto", n::sendto),
    returns(45, "recvfrom", n::recvfrom),
    // polling and events
    returns(7, "poll", pl::poll),
    returns(271, "ppoll", pl::ppoll),
    returns(23, "select", pl::select),
    returns(270, "pselect6", pl::select),
    returns(284, "eventfd", pass_through),
    returns(290, "eventfd2", pass_through),
    returns(213, "epoll_create", pass_through),
    returns(291, "epoll_create1", pass_through),
    returns(233, "epoll_ctl", pl::epoll_ctl),
    returns(232, "epoll_wait", pl::epoll_wait),
    returns(281, "epoll_pwait", pl::epoll_wait),
    returns(441, "epoll_pwait2", pl::epoll_pwait2),
];

/// Numbers at or above this are not in the table (x32 numbers have bit 30 set).
const INDEX_LEN: usize = 512;
const NOT_PRESENT: u16 = u16::MAX;

/// The table's position of each number; a duplicate or out-of-range number stops the build.
const INDEX: [u16; INDEX_LEN] = {
    let mut index = [NOT_PRESENT; INDEX_LEN];
    let mut i = 0;
    while i < TABLE.len() {
        let nr = TABLE[i].nr as usize;
        assert!(nr < INDEX_LEN, "syscall number out of the index");
        assert!(index[nr] == NOT_PRESENT, "syscall number listed twice");
        index[nr] = i as u16;
        i += 1;
    }
    index
};

fn lookup(nr: u64) -> Option<&'static Syscall> {
    let at = *INDEX.get(usize::try_from(nr).ok()?)?;
    TABLE.get(at as usize)
}

/// The kernel's name for a syscall number, for logs ("?" if Kiln does not know it).
pub fn syscall_name(nr: u64) -> &'static str {
    lookup(nr).map_or("?", |s| s.name)
}

const ENOSYS: i64 = -libc::ENOSYS as i64;

impl Process {
    /// Runs the syscall the guest's registers ask for.
    pub fn syscall(&self, cpu: &mut Cpu) -> SysResult {
        let nr = cpu.gpr[0];
        let a = [cpu.gpr[7], cpu.gpr[6], cpu.gpr[2], cpu.gpr[10], cpu.gpr[8], cpu.gpr[9]];
        let r = match lookup(nr).map(|s| s.handler) {
            Some(Handler::Controls(handler)) => return handler(self, cpu, a),
            Some(Handler::Returns(handler)) => handler(self, cpu, nr, a).unwrap_or_else(|e| e),
            None => ENOSYS,
        };
        if r == ENOSYS {
            crate::klog!(
                "syscall",
                "syscall {} ({}) is not implemented: returning ENOSYS",
                nr,
                syscall_name(nr)
            );
        }
        cpu.gpr[0] = r as u64;
        clobber_rcx_r11(cpu);
        SysResult::Continue
    }
}

/// The kernel clobbers rcx and r11 on syscall: rcx holds the return rip, r11 the rflags.
fn clobber_rcx_r11(cpu: &mut Cpu) {
    cpu.gpr[1] = cpu.rip;
    cpu.gpr[11] = crate::cpu::flags::rflags(cpu);
}

/// The raw host syscall; `-1` becomes -errno as the kernel returns it.
fn host_syscall(nr: u64, x: Args) -> i64 {
    // SAFETY: callers translate every pointer argument into the guest reservation and bound it
    // by its length first; the kernel reports unmapped guest memory as EFAULT.
    let r = unsafe { libc::syscall(nr as i64, x[0], x[1], x[2], x[3], x[4], x[5]) };
    host_result(r)
}

/// A host call's result as the guest's kernel would return it: -1 becomes -errno.
fn host_result(r: libc::c_long) -> i64 {
    if r == -1 {
        -(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO) as i64)
    } else {
        r
    }
}

/// Calls that take no pointers: forwarded with the guest's arguments as they are.
fn pass_through(_: &Process, _: &mut Cpu, nr: u64, a: Args) -> Result {
    Ok(host_syscall(nr, a))
}

/// Calls without arguments (getpid and the like).
fn no_args(_: &Process, _: &mut Cpu, nr: u64, _: Args) -> Result {
    Ok(host_syscall(nr, [0; 6]))
}

/// Calls Kiln names but declines, so that libc takes its fallback.
fn enosys(_: &Process, _: &mut Cpu, _: u64, _: Args) -> Result {
    Ok(ENOSYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for s in TABLE {
            assert!(seen.insert(s.nr), "{} ({}) listed twice", s.nr, s.name);
        }
    }

    #[test]
    fn names_are_the_kernels() {
        let sample = [
            (0, "read"),
            (9, "mmap"),
            (15, "rt_sigreturn"),
            (56, "clone"),
            (59, "execve"),
            (60, "exit"),
            (202, "futex"),
            (231, "exit_group"),
            (257, "openat"),
            (262, "newfstatat"),
            (293, "pipe2"),
            (441, "epoll_pwait2"),
        ];
        for (nr, name) in sample {
            assert_eq!(syscall_name(nr), name, "syscall {nr}");
        }
        assert_eq!(libc::SYS_openat as u64, 257);
        assert_eq!(libc::SYS_newfstatat as u64, 262);
    }

    #[test]
    fn unknown_numbers_are_not_found() {
        for nr in [335, 511, 512, 1 << 30, u64::MAX] {
            assert!(lookup(nr).is_none(), "syscall {nr}");
            assert_eq!(syscall_name(nr), "?");
        }
    }

    #[test]
    fn unknown_numbers_return_enosys() {
        let mem = crate::mem::Memory::reserve().expect("reservation");
        let mut cpu = Cpu::new();
        let proc = Process::new(mem, "/bin/true".into());
        for nr in [335u64, 334, 435, 4096] {
            cpu.gpr[0] = nr;
            cpu.gpr[1] = 0x1234;
            cpu.rip = 0x40_1000;
            assert!(matches!(proc.syscall(&mut cpu), SysResult::Continue));
            assert_eq!(cpu.gpr[0] as i64, ENOSYS, "syscall {nr}");
            assert_eq!(cpu.gpr[1], 0x40_1000, "rcx holds the return rip");
        }
    }
}
