//! Kiln's own process on the host: re-executing the running binary (for a guest's execve and
//! for the journal merge), detaching a child from the guest's session and descriptors, and
//! starting the compile service as a daemon, and how many cores the rest of the machine leaves
//! idle.

use std::ffi::CString;

/// A C string of `b` (empty if `b` holds a NUL, which no path or argument handed on does).
pub fn c_string(b: &[u8]) -> CString {
    CString::new(b.to_vec()).unwrap_or_default()
}

/// Replaces this process with the running Kiln binary (`/proc/self/exe`: the same binary even
/// if its file was replaced or deleted since it started) with these arguments and environment.
/// Returns only on failure, with the error.
pub fn reexec_self(args: &[CString], env: &[CString]) -> std::io::Error {
    let exe = c"/proc/self/exe";
    let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(exe.as_ptr(), argp.as_ptr(), envp.as_ptr()) };
    std::io::Error::last_os_error()
}

/// Forks a child detached from the guest's session and descriptors (stdin, stdout and stderr
/// on /dev/null, every other descriptor closed), so that nothing the guest waits on stays
/// open in it. True in the child; false in the parent and when the fork failed.
pub fn detach_child() -> bool {
    fork_detached(None) == Some(true)
}

/// `detach_child`, keeping descriptor `keep` open in the child (moved to 10 or above, out of
/// the way of stdio, and closed on exec): Some(true) in the child, Some(false) in the parent,
/// None when the fork failed.
pub fn fork_detached(keep: Option<std::os::fd::RawFd>) -> Option<bool> {
    let max_fd = max_descriptors();
    // SAFETY: fork has no preconditions; the caller's child only computes, writes files and
    // ends with `exit_now` or an exec.
    let pid = unsafe { libc::fork() };
    if pid != 0 {
        return (pid > 0).then_some(false);
    }
    // SAFETY: plain system calls on this (child) process's own session and descriptors.
    unsafe {
        libc::setsid();
        only_stdio_on_null(keep.unwrap_or(-1), max_fd);
    }
    Some(true)
}

/// The descriptor numbers a process may have open, as far as closing them one by one goes.
fn max_descriptors() -> i32 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1024)
        .min(65536) as i32
}

/// In a child just forked: stdin, stdout and stderr on /dev/null, and every other descriptor
/// closed but `keep` (-1: none), which is moved to 10 or above first (out of the way of stdio:
/// it may be 1 itself, where a guest closed its own) and closed on exec; returns its new number
/// (-1 without). Only async-signal-safe system calls; `max_fd` bounds the descriptors closed
/// one by one where the kernel has no `close_range`.
///
/// # Safety
/// Only in a child that owns every descriptor it has (no other thread uses them).
unsafe fn only_stdio_on_null(keep: std::os::fd::RawFd, max_fd: i32) -> std::os::fd::RawFd {
    // SAFETY: plain system calls on this process's own descriptors (the caller's contract).
    unsafe {
        let held = if keep >= 0 {
            libc::fcntl(keep, libc::F_DUPFD_CLOEXEC, 10)
        } else {
            -1
        };
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        let close_from_to = |first: i32, last: i32| {
            if libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0u32) != 0 {
                for fd in first..=last.min(max_fd) {
                    libc::close(fd);
                }
            }
        };
        if held >= 3 {
            close_from_to(3, held - 1);
            close_from_to(held + 1, i32::MAX);
        } else {
            close_from_to(3, i32::MAX);
        }
        held
    }
}

/// Ends this process (as SIGALRM does by default) if it still runs `seconds` from now: a
/// bound on a detached child's life, whatever it waits for.
pub fn end_after(seconds: u32) {
    // SAFETY: plain system calls on this process's own signal state.
    unsafe {
        libc::signal(libc::SIGALRM, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGALRM);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::alarm(seconds);
    }
}

/// Ends this process at once, without running exit handlers or the guest's exit path.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

/// What the process needs before anything else runs (`main.rs` calls it first: the Rust
/// runtime's own start-up, which read all of /proc/self/maps to find the main thread's stack,
/// is not used): the standard descriptors open, on /dev/null where they were closed, so that
/// no file Kiln opens takes their numbers; and SIGPIPE ignored, so that a write to a closed
/// pipe or socket fails with EPIPE instead of ending Kiln (`run` gives its guest the
/// disposition the guest must see: `Process::inherit_signals`).
pub fn prepare_process() {
    for fd in 0..3 {
        // SAFETY: fcntl on a descriptor number, and an open whose descriptor is the lowest
        // free one: this one, as the lower ones are open by now.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            }
        }
    }
    // SAFETY: ignoring a signal; no handler runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// The command line the C runtime passed to `main`, the program's name first.
///
/// # Safety
/// `argv` must hold `argc` pointers to NUL-terminated strings, as the C runtime's do.
pub unsafe fn command_line(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    (0..argc.max(0) as usize)
        .map(|i| {
            // SAFETY: the caller vouches for `argc` strings in `argv`.
            let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
            std::ffi::OsStr::from_bytes(arg.to_bytes()).to_os_string()
        })
        .collect()
}

/// Restores SIGPIPE's default disposition (`prepare_process` ignores it), so that Kiln's own
/// reports end quietly when their reader goes away. Call before any thread starts.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's default disposition; no handler runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// Starts the running Kiln binary with these arguments as a daemon: in its own session, in
/// `/`, with
/// stdin, stdout and stderr on /dev/null and no descriptor of this process but `keep`, which
/// it finds as descriptor 3; and not as this process's child (it is started from a child that
/// exits at once, so the guest never sees it among its children). The environment is Kiln's
/// own. False when it could not be started.
pub fn spawn_daemon(args: &[CString], keep: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    // Everything the child needs is built before the fork: after it, only plain system calls.
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()).ok())
        .collect();
    let mut argp: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let keep = keep.as_raw_fd();
    let max_fd = max_descriptors();
    let last_signal = libc::SIGRTMAX();
    // SAFETY: fork has no preconditions; the child makes only async-signal-safe system calls
    // (setsid, fork, chdir, fcntl, open, dup2, close_range or close, signal, sigprocmask,
    // execve, _exit) on data built before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return false;
    }
    if pid == 0 {
        // SAFETY: as above, in the child.
        unsafe {
            libc::setsid();
            if libc::fork() != 0 {
                libc::_exit(0);
            }
            // A daemon keeps no directory (or file system) busy.
            libc::chdir(c"/".as_ptr());
            // The lock alone besides stdio, then at 3, where dup2 also clears close-on-exec.
            let held = only_stdio_on_null(keep, max_fd);
            libc::dup2(held, 3);
            libc::close(held);
            // Nothing of the guest's signal state: default dispositions, nothing blocked.
            for sig in 1..=last_signal {
                libc::signal(sig, libc::SIG_DFL);
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            libc::execve(c"/proc/self/exe".as_ptr(), argp.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
    }
    let mut status = 0;
    // SAFETY: waits for the intermediate child, which exits at once.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    true
}

/// Takes ownership of descriptor `fd`, inherited from whoever started this process (the run
/// that started the compile service, or systemd's socket activation). None when it is not open.
pub fn inherited_fd(fd: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_GETFD only asks whether the descriptor is open.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the descriptor is open, and nothing else in this process owns it: it was
    // inherited, and Kiln opens its own descriptors close-on-exec above it.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Cores not taken by other runnable tasks (of any process; the caller's thread is not
/// counted), at least one: how many compile jobs Kiln's background work may run at once
/// without queueing behind the guests.
pub fn idle_cores() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runnable = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().nth(3)?.split('/').next()?.parse::<usize>().ok())
        .unwrap_or(1);
    cores.saturating_sub(runnable.saturating_sub(1)).clamp(1, cores)
}
