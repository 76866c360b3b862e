//! Kiln's own process on the host: re-executing the running binary (for a guest's execve and
//! for the journal merge), and detaching a child from the guest's session and descriptors.

use std::ffi::CString;

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
    // SAFETY: fork has no preconditions; the caller's child only computes, writes files and
    // ends with `exit_now` or an exec.
    let pid = unsafe { libc::fork() };
    if pid != 0 {
        return false;
    }
    // SAFETY: plain system calls on this (child) process's own session and descriptors.
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    true
}

/// Ends this process at once, without running exit handlers or the guest's exit path.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Restores SIGPIPE's default disposition (the Rust runtime ignores it), so that Kiln's own
/// reports end quietly when their reader goes away. Call before any thread starts.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's default disposition; no handler runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}
