//! System calls: forwarded with pointer checks, or emulated (memory, arch_prctl, signals
//! recorded). Unknown calls return ENOSYS and are named under `KILN_LOG=syscall`.

use crate::cpu::Cpu;
use crate::mem::{page_up, Memory, GUEST_SPACE, PAGE};

/// Guest signal actions, the mask, the alternate stack (base, size), and the mask to restore
/// after an rt_sigsuspend.
pub type SignalState = (Vec<[u64; 4]>, u64, [u64; 2], Option<u64>);

pub enum SysResult {
    Continue,
    Exit(i32),
    /// execve accepted: the dispatcher ends this run and replaces the process.
    Exec(super::ExecRequest),
    /// This is the child of a fork: the dispatcher must rebuild per-process machinery.
    ForkedChild,
    /// exit: the calling thread ends.
    ExitThread(i32),
    /// clone of a thread: the dispatcher starts it and puts the result in rax.
    SpawnThread(super::CloneArgs),
}

/// Per-process state the syscall layer keeps.
pub struct Process {
    pub mem: Memory,
    /// Absolute path of the guest executable (for /proc/self/exe).
    pub exe: String,
    /// The auxiliary vector given to the program (for /proc/self/auxv).
    pub auxv: Vec<u8>,
    /// Executable file mappings (start, end, file offset, path): the modules whose
    /// translations the cache can keep.
    pub exec_maps: std::sync::Mutex<Vec<(u64, u64, u64, std::path::PathBuf)>>,
    /// Guest signal actions (handler, flags, restorer, mask), the signal mask, and the
    /// alternate stack (base, size), and the mask to restore after an rt_sigsuspend.
    pub(super) signals: std::sync::Mutex<SignalState>,
}

const EFAULT: i64 = -libc::EFAULT as i64;
const EINVAL: i64 = -libc::EINVAL as i64;
const ENOSYS: i64 = -libc::ENOSYS as i64;
const ENOMEM: i64 = -libc::ENOMEM as i64;

thread_local! {
    /// This guest thread's robust futex list head (set_robust_list).
    static ROBUST_LIST: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// What the kernel does with a dying thread's robust futex list: every futex still owned by
/// the thread gets FUTEX_OWNER_DIED, and one waiter is woken.
pub fn exit_robust_list(mem: &Memory) {
    const TID_MASK: u32 = 0x3fff_ffff;
    const WAITERS: u32 = 0x8000_0000;
    const OWNER_DIED: u32 = 0x4000_0000;
    let head = ROBUST_LIST.replace(0);
    if head == 0 {
        return;
    }
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    let read = |a: u64| -> Option<u64> { Some(u64::from_le_bytes(mem.read_bytes(a, 8)?.try_into().ok()?)) };
    let (Some(first), Some(offset), Some(pending)) = (read(head), read(head + 8), read(head + 16)) else {
        return;
    };
    let death = |entry: u64| {
        let word = entry.wrapping_add(offset);
        let Some(p) = mem.host_ptr(word, 4) else { return };
        if mem.readable_len(word, 4) < 4 || word % 4 != 0 {
            return;
        }
        // SAFETY: an aligned guest word inside the reservation, mapped readable.
        let atom = unsafe { &*(p as *const std::sync::atomic::AtomicU32) };
        let mut v = atom.load(std::sync::atomic::Ordering::SeqCst);
        loop {
            if v & TID_MASK != tid {
                return;
            }
            let new = (v & WAITERS) | OWNER_DIED;
            match atom.compare_exchange(
                v,
                new,
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(cur) => v = cur,
            }
        }
        if v & WAITERS != 0 {
            // SAFETY: futex wake on a guest word inside the reservation.
            unsafe { libc::syscall(libc::SYS_futex, p, libc::FUTEX_WAKE, 1, 0, 0, 0) };
        }
    };
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

fn ret(r: libc::c_long) -> i64 {
    if r == -1 {
        -(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO) as i64)
    } else {
        r
    }
}

impl Process {
    pub fn new(mem: Memory, exe: String) -> Process {
        Process {
            mem,
            exe,
            auxv: Vec::new(),
            exec_maps: Default::default(),
            signals: std::sync::Mutex::new((vec![[0; 4]; 65], 0, [0; 2], None)),
        }
    }

    /// Host address of a guest buffer, or EFAULT if it leaves the guest space.
    fn p(&self, a: u64, len: u64) -> Result<u64, i64> {
        self.mem.host_ptr(a, len).map(|p| p as u64).ok_or(EFAULT)
    }

    /// Like `p`, but a guest NULL stays NULL.
    fn op(&self, a: u64, len: u64) -> Result<u64, i64> {
        if a == 0 {
            Ok(0)
        } else {
            self.p(a, len)
        }
    }

    /// A guest C string (the kernel reads it; we bound it to the guest space).
    fn s(&self, a: u64) -> Result<u64, i64> {
        if a == 0 {
            return Err(EFAULT);
        }
        let len = (GUEST_SPACE - a.min(GUEST_SPACE)).min(4096);
        self.p(a, len)
    }

    fn path_is_self_exe(&self, a: u64) -> bool {
        let Ok(p) = self.s(a) else { return false };
        // SAFETY: p points into the reservation; CStr stops at the first NUL within the bound.
        let bytes = unsafe { std::ffi::CStr::from_ptr(p as *const libc::c_char) }.to_bytes();
        super::process::is_self_exe(bytes)
    }

    /// /proc files that must show the guest's view: their contents in a memfd, or None.
    fn proc_file(&self, path: u64, flags: u64) -> Option<i64> {
        let p = self.guest_cstr(path).ok()?;
        let p = p.to_str().ok()?;
        // SAFETY: getpid has no preconditions.
        let me = format!("/proc/{}/", unsafe { libc::getpid() });
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

    /// Copies iovecs from guest memory into host iovecs.
    fn iovecs(&self, a: u64, n: u64) -> Result<Vec<libc::iovec>, i64> {
        if n > 1024 {
            return Err(EINVAL);
        }
        let mut v = Vec::with_capacity(n as usize);
        for i in 0..n {
            let base = self.p(a + i * 16, 16)?;
            // SAFETY: base points at 16 bytes inside the reservation.
            let (b, l) = unsafe {
                (
                    (base as *const u64).read_unaligned(),
                    ((base + 8) as *const u64).read_unaligned(),
                )
            };
            let hp = if l == 0 { 0 } else { self.p(b, l)? };
            v.push(libc::iovec {
                iov_base: hp as *mut libc::c_void,
                iov_len: l as usize,
            });
        }
        Ok(v)
    }

    pub fn syscall(&self, cpu: &mut Cpu) -> SysResult {
        let nr = cpu.gpr[0];
        let a = [cpu.gpr[7], cpu.gpr[6], cpu.gpr[2], cpu.gpr[10], cpu.gpr[8], cpu.gpr[9]];
        match nr {
            231 => return SysResult::Exit(a[0] as i32),
            15 => {
                self.sigreturn(cpu);
                return SysResult::Continue;
            }
            60 => return SysResult::ExitThread(a[0] as i32),
            56 if a[0] & 0x10100 == 0x10100 => {
                // CLONE_VM | CLONE_THREAD
                cpu.gpr[1] = cpu.rip;
                cpu.gpr[11] = crate::cpu::flags::rflags(cpu);
                return SysResult::SpawnThread(super::CloneArgs {
                    flags: a[0],
                    stack: a[1],
                    ptid: a[2],
                    ctid: a[3],
                    tls: a[4],
                });
            }
            59 => match self.prepare_exec(a) {
                Ok(req) => return SysResult::Exec(req),
                Err(e) => {
                    cpu.gpr[0] = e as u64;
                    cpu.gpr[1] = cpu.rip;
                    return SysResult::Continue;
                }
            },
            56..=58 => {
                let r = self.fork_like(cpu, nr, a).unwrap_or_else(|e| e);
                let forked_child = r == 0;
                cpu.gpr[0] = r as u64;
                cpu.gpr[1] = cpu.rip;
                cpu.gpr[11] = crate::cpu::flags::rflags(cpu);
                return if forked_child {
                    SysResult::ForkedChild
                } else {
                    SysResult::Continue
                };
            }
            _ => {}
        }
        let r = match self.dispatch(cpu, nr, a) {
            Ok(v) => v,
            Err(e) => e,
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
        // The kernel clobbers rcx and r11 on syscall.
        cpu.gpr[1] = cpu.rip;
        cpu.gpr[11] = crate::cpu::flags::rflags(cpu);
        SysResult::Continue
    }

    fn dispatch(&self, cpu: &mut Cpu, nr: u64, a: [u64; 6]) -> Result<i64, i64> {
        // SAFETY (all raw syscalls below): every pointer argument has been translated into
        // the guest reservation and bounded by its length; the kernel reports unmapped guest
        // memory as EFAULT.
        let sc = |n: i64, x: [u64; 6]| -> i64 { ret(unsafe { libc::syscall(n, x[0], x[1], x[2], x[3], x[4], x[5]) }) };
        Ok(match nr {
            0 | 1 | 17 | 18 => {
                // read, write, pread64, pwrite64
                let b = self.p(a[1], a[2])?;
                sc(nr as i64, [a[0], b, a[2], a[3], 0, 0])
            }
            19 | 20 | 295 | 296 => {
                // readv, writev, preadv, pwritev
                let v = self.iovecs(a[1], a[2])?;
                sc(nr as i64, [a[0], v.as_ptr() as u64, a[2], a[3], a[4], 0])
            }
            3 | 8 | 32 | 33 | 292 | 72 | 74 | 75 | 77 | 81 | 91 | 93 | 95 => {
                // close, lseek, dup, dup2, dup3, fcntl, fsync, fdatasync, ftruncate, fchdir,
                // fchmod, fchown, umask
                if nr == 72
                    && matches!(
                        a[1] as i32,
                        libc::F_GETLK
                            | libc::F_SETLK
                            | libc::F_SETLKW
                            | libc::F_OFD_GETLK
                            | libc::F_OFD_SETLK
                            | libc::F_OFD_SETLKW
                    )
                {
                    let p = self.p(a[2], 32)?;
                    sc(72, [a[0], a[1], p, 0, 0, 0])
                } else {
                    sc(nr as i64, a)
                }
            }
            4 | 6 => {
                // stat, lstat
                let path = self.s(a[0])?;
                let st = self.p(a[1], 144)?;
                sc(nr as i64, [path, st, 0, 0, 0, 0])
            }
            5 => {
                let st = self.p(a[1], 144)?;
                sc(5, [a[0], st, 0, 0, 0, 0])
            }
            262 => {
                // newfstatat (an empty path with AT_EMPTY_PATH is allowed)
                let path = self.s(a[1])?;
                let st = self.p(a[2], 144)?;
                sc(262, [a[0], path, st, a[3], 0, 0])
            }
            332 => {
                let path = self.s(a[1])?;
                let st = self.p(a[4], 256)?;
                sc(332, [a[0], path, a[2], a[3], st, 0])
            }
            2 => {
                let path = self.s(a[0])?;
                sc(2, [path, a[1], a[2], 0, 0, 0])
            }
            257 => {
                let path = self.s(a[1])?;
                if let Some(fd) = self.proc_file(a[1], a[2]) {
                    fd
                } else if self.path_is_self_exe(a[1]) {
                    let c = std::ffi::CString::new(self.exe.clone()).map_err(|_| EINVAL)?;
                    sc(257, [a[0], c.as_ptr() as u64, a[2], a[3], 0, 0])
                } else {
                    sc(257, [a[0], path, a[2], a[3], 0, 0])
                }
            }
            21 | 83 | 84 | 87 | 90 | 80 => {
                // access, mkdir, rmdir, unlink, chmod, chdir
                let path = self.s(a[0])?;
                sc(nr as i64, [path, a[1], 0, 0, 0, 0])
            }
            269 | 439 | 258 | 263 | 268 => {
                // faccessat, faccessat2, mkdirat, unlinkat, fchmodat
                let path = self.s(a[1])?;
                sc(nr as i64, [a[0], path, a[2], a[3], 0, 0])
            }
            82 | 86 | 88 => {
                // rename, link, symlink
                let (x, y) = (self.s(a[0])?, self.s(a[1])?);
                sc(nr as i64, [x, y, 0, 0, 0, 0])
            }
            264 | 316 | 265 => {
                // renameat, renameat2, linkat
                let (x, y) = (self.s(a[1])?, self.s(a[3])?);
                sc(nr as i64, [a[0], x, a[2], y, a[4], 0])
            }
            89 | 267 => {
                // readlink, readlinkat
                let (dirfd, path_g, buf, len) = if nr == 89 {
                    (libc::AT_FDCWD as u64, a[0], a[1], a[2])
                } else {
                    (a[0], a[1], a[2], a[3])
                };
                let b = self.p(buf, len)?;
                if self.path_is_self_exe(path_g) {
                    let e = self.exe.as_bytes();
                    let n = e.len().min(len as usize);
                    self.mem.write_bytes(buf, &e[..n]).map_err(|_| EFAULT)?;
                    n as i64
                } else {
                    let path = self.s(path_g)?;
                    sc(267, [dirfd, path, b, len, 0, 0])
                }
            }
            217 => {
                let b = self.p(a[1], a[2])?;
                sc(217, [a[0], b, a[2], 0, 0, 0])
            }
            79 => {
                let b = self.p(a[0], a[1])?;
                sc(79, [b, a[1], 0, 0, 0, 0])
            }
            16 => self.ioctl(a)?,
            9 => self.mmap(a)?,
            11 => {
                if !a[0].is_multiple_of(PAGE) || a[1] == 0 {
                    return Err(EINVAL);
                }
                self.mem.unmap(a[0], page_up(a[1])).map_err(|_| EINVAL)?;
                0
            }
            10 => {
                if !a[0].is_multiple_of(PAGE) {
                    return Err(EINVAL);
                }
                match self.mem.protect(a[0], page_up(a[1]), a[2] as i32) {
                    Ok(()) => 0,
                    Err(e) => -(e.raw_os_error().unwrap_or(libc::ENOMEM) as i64),
                }
            }
            12 => self.mem.brk(a[0]) as i64,
            25 => self.mremap(a)?,
            28 => {
                // madvise on the host pages that back the guest's: MADV_DONTNEED must really
                // drop private pages (allocators rely on reading zeros afterwards).
                if !a[0].is_multiple_of(PAGE) {
                    return Err(EINVAL);
                }
                let len = page_up(a[1]);
                if len == 0 {
                    return Ok(0);
                }
                let p = self.p(a[0], len)?;
                sc(28, [p, len, a[2], 0, 0, 0])
            }
            13 => {
                // rt_sigaction: recorded; delivery is the signals issue's work.
                let sig = a[0] as usize;
                if sig == 0 || sig > 64 || sig == 9 || sig == 19 {
                    return Err(EINVAL);
                }
                let mut sigs = self.signals.lock().unwrap_or_else(|e| e.into_inner());
                if a[2] != 0 {
                    let old = sigs.0[sig];
                    for (i, w) in old.iter().enumerate() {
                        self.mem.write_u64(a[2] + i as u64 * 8, *w).map_err(|_| EFAULT)?;
                    }
                }
                if a[1] != 0 {
                    let p = self.p(a[1], 32)?;
                    let mut act = [0u64; 4];
                    for (i, w) in act.iter_mut().enumerate() {
                        // SAFETY: p..p+32 is inside the reservation.
                        *w = unsafe { ((p + i as u64 * 8) as *const u64).read_unaligned() };
                    }
                    sigs.0[sig] = act;
                    super::signals::install_host(sig, &act);
                }
                0
            }
            14 => {
                let mut sigs = self.signals.lock().unwrap_or_else(|e| e.into_inner());
                if a[2] != 0 {
                    self.mem.write_u64(a[2], sigs.1).map_err(|_| EFAULT)?;
                }
                if a[1] != 0 {
                    let p = self.p(a[1], 8)?;
                    // SAFETY: 8 bytes inside the reservation.
                    let set = unsafe { (p as *const u64).read_unaligned() };
                    match a[0] {
                        0 => sigs.1 |= set,
                        1 => sigs.1 &= !set,
                        2 => sigs.1 = set,
                        _ => return Err(EINVAL),
                    }
                    sigs.1 &= !((1 << (libc::SIGKILL - 1)) | (1 << (libc::SIGSTOP - 1)));
                    drop(sigs);
                    self.recheck_pending();
                }
                0
            }
            131 => {
                // sigaltstack: stack_t {ss_sp, ss_flags (int), ss_size}
                let mut sigs = self.signals.lock().unwrap_or_else(|e| e.into_inner());
                if a[1] != 0 {
                    let old = sigs.2;
                    self.mem.write_u64(a[1], old[0]).map_err(|_| EFAULT)?;
                    self.mem
                        .write_u64(a[1] + 8, if old[1] == 0 { 2 } else { 0 })
                        .map_err(|_| EFAULT)?;
                    self.mem.write_u64(a[1] + 16, old[1]).map_err(|_| EFAULT)?;
                }
                if a[0] != 0 {
                    let p = self.p(a[0], 24)?;
                    // SAFETY: 24 bytes inside the reservation.
                    let (sp, fl, sz) = unsafe {
                        let q = p as *const u64;
                        (
                            q.read_unaligned(),
                            q.add(1).read_unaligned() as u32,
                            q.add(2).read_unaligned(),
                        )
                    };
                    sigs.2 = if fl & 2 != 0 { [0, 0] } else { [sp, sz] };
                }
                0
            }
            15 => unreachable!("rt_sigreturn is handled before dispatch"),
            37 => sc(37, a), // alarm
            36 | 38 => {
                // getitimer, setitimer
                let x = self.op(a[1], 32)?;
                let y = if nr == 38 { self.op(a[2], 32)? } else { 0 };
                sc(nr as i64, [a[0], x, y, 0, 0, 0])
            }
            34 => sc(34, a), // pause
            127 => {
                // rt_sigpending: the guest's blocked-and-pending signals
                self.mem
                    .write_u64(a[0], super::signals::pending_blocked(self))
                    .map_err(|_| EFAULT)?;
                0
            }
            130 => {
                // rt_sigsuspend: wait for a signal with the given mask in force
                let p = self.p(a[0], 8)?;
                // SAFETY: 8 bytes inside the reservation.
                let mask = unsafe { (p as *const u64).read_unaligned() };
                {
                    let mut sigs = self.signals.lock().unwrap_or_else(|e| e.into_inner());
                    let old = std::mem::replace(&mut sigs.1, mask);
                    sigs.3 = Some(old);
                }
                // SAFETY: waits for any host signal with none blocked.
                unsafe {
                    let mut none: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut none);
                    libc::sigsuspend(&none);
                }
                super::signals::INTERRUPT.store(1, std::sync::atomic::Ordering::SeqCst);
                -(libc::EINTR as i64)
            }
            222 => {
                let ev = self.op(a[1], 64)?;
                let id = self.p(a[2], 4)?;
                sc(222, [a[0], ev, id, 0, 0, 0])
            }
            223 => {
                let n = self.p(a[2], 32)?;
                let o = self.op(a[3], 32)?;
                sc(223, [a[0], a[1], n, o, 0, 0])
            }
            224 => {
                let o = self.p(a[1], 32)?;
                sc(224, [a[0], o, 0, 0, 0, 0])
            }
            225 | 226 => sc(nr as i64, a),
            158 => match a[0] {
                0x1001 => {
                    cpu.gs_base = a[1];
                    0
                }
                0x1002 => {
                    cpu.fs_base = a[1];
                    0
                }
                0x1003 => {
                    self.mem.write_u64(a[1], cpu.fs_base).map_err(|_| EFAULT)?;
                    0
                }
                0x1004 => {
                    self.mem.write_u64(a[1], cpu.gs_base).map_err(|_| EFAULT)?;
                    0
                }
                _ => EINVAL,
            },
            218 => sc(186, [0; 6]), // set_tid_address: returns the tid
            273 if a[1] != 24 => EINVAL,
            273 => {
                // set_robust_list: walked by `exit_robust_list` when this thread exits.
                ROBUST_LIST.set(a[0]);
                0
            }
            274 if a[0] == 0 => {
                self.mem.write_u64(a[1], ROBUST_LIST.get()).map_err(|_| EFAULT)?;
                self.mem.write_u64(a[2], 24).map_err(|_| EFAULT)?;
                0
            }
            334 => ENOSYS, // rseq: libc falls back
            302 => {
                let n = self.op(a[2], 16)?;
                let o = self.op(a[3], 16)?;
                sc(302, [a[0], a[1], n, o, 0, 0])
            }
            97 | 160 => {
                let p = self.p(a[1], 16)?;
                sc(nr as i64, [a[0], p, 0, 0, 0, 0])
            }
            318 => {
                let b = self.p(a[0], a[1])?;
                sc(318, [b, a[1], a[2], 0, 0, 0])
            }
            228 | 229 => {
                let p = self.op(a[1], 16)?;
                sc(nr as i64, [a[0], p, 0, 0, 0, 0])
            }
            96 => {
                let t = self.op(a[0], 16)?;
                let z = self.op(a[1], 8)?;
                sc(96, [t, z, 0, 0, 0, 0])
            }
            201 => {
                let t = self.op(a[0], 8)?;
                sc(201, [t, 0, 0, 0, 0, 0])
            }
            35 => {
                let r = self.p(a[0], 16)?;
                let rem = self.op(a[1], 16)?;
                sc(35, [r, rem, 0, 0, 0, 0])
            }
            230 => {
                let r = self.p(a[2], 16)?;
                let rem = self.op(a[3], 16)?;
                sc(230, [a[0], a[1], r, rem, 0, 0])
            }
            63 => {
                let p = self.p(a[0], 390)?;
                sc(63, [p, 0, 0, 0, 0, 0])
            }
            99 => {
                let p = self.p(a[0], 112)?;
                sc(99, [p, 0, 0, 0, 0, 0])
            }
            98 => {
                let p = self.p(a[1], 144)?;
                sc(98, [a[0], p, 0, 0, 0, 0])
            }
            100 => {
                let p = self.op(a[0], 32)?;
                sc(100, [p, 0, 0, 0, 0, 0])
            }
            39 | 186 | 110 | 102 | 104 | 107 | 108 | 111 | 112 | 24 => sc(nr as i64, [0; 6]),
            62 | 200 | 234 => sc(nr as i64, a), // kill, tkill, tgkill: the host process is the guest's
            202 => {
                // futex: guest words live in host memory shared by the guest's threads.
                let op = a[1] & 0x7f;
                let uaddr = self.p(a[0], 4)?;
                let (timeout, uaddr2) = match op {
                    0 | 9 | 6 | 11 | 13 => (self.op(a[3], 16)?, if op == 11 { self.op(a[4], 4)? } else { 0 }),
                    3 | 4 | 5 | 12 => (a[3], self.p(a[4], 4)?),
                    1 | 10 | 7 | 8 => (a[3], 0),
                    _ => return Err(ENOSYS),
                };
                sc(202, [uaddr, a[1], a[2], timeout, uaddr2, a[5]])
            }
            204 => {
                let p = self.p(a[2], a[1])?;
                sc(204, [a[0], a[1], p, 0, 0, 0])
            }
            137 | 138 => {
                // statfs(path) / fstatfs(fd)
                let b = self.p(a[1], 120)?;
                let first = if nr == 137 { self.s(a[0])? } else { a[0] };
                sc(nr as i64, [first, b, 0, 0, 0, 0])
            }
            191 | 192 | 194 | 195 => {
                // getxattr, lgetxattr, listxattr, llistxattr
                let path = self.s(a[0])?;
                if nr <= 192 {
                    let name = self.s(a[1])?;
                    let b = self.op(a[2], a[3])?;
                    sc(nr as i64, [path, name, b, a[3], 0, 0])
                } else {
                    let b = self.op(a[1], a[2])?;
                    sc(nr as i64, [path, b, a[2], 0, 0, 0])
                }
            }
            193 | 196 => {
                // fgetxattr, flistxattr
                if nr == 193 {
                    let name = self.s(a[1])?;
                    let b = self.op(a[2], a[3])?;
                    sc(193, [a[0], name, b, a[3], 0, 0])
                } else {
                    let b = self.op(a[1], a[2])?;
                    sc(196, [a[0], b, a[2], 0, 0, 0])
                }
            }
            22 | 293 => {
                // pipe, pipe2
                let p = self.p(a[0], 8)?;
                sc(293, [p, if nr == 22 { 0 } else { a[1] }, 0, 0, 0, 0])
            }
            61 => {
                // wait4
                let st = self.op(a[1], 4)?;
                let ru = self.op(a[3], 144)?;
                sc(61, [a[0], st, a[2], ru, 0, 0])
            }
            247 => {
                // waitid
                let info = self.op(a[2], 128)?;
                let ru = self.op(a[4], 144)?;
                sc(247, [a[0], a[1], info, a[3], ru, 0])
            }
            7 => {
                // poll
                let p = self.op(a[0], a[1].saturating_mul(8))?;
                sc(7, [p, a[1], a[2], 0, 0, 0])
            }
            271 => {
                // ppoll
                let p = self.op(a[0], a[1].saturating_mul(8))?;
                let t = self.op(a[2], 16)?;
                let m = self.op(a[3], a[4])?;
                sc(271, [p, a[1], t, m, a[4], 0])
            }
            23 | 270 => {
                // select, pselect6
                let r = self.op(a[1], 128)?;
                let w = self.op(a[2], 128)?;
                let e = self.op(a[3], 128)?;
                let t = self.op(a[4], 16)?;
                if nr == 23 {
                    sc(23, [a[0], r, w, e, t, 0])
                } else {
                    // The sixth argument points at {sigset pointer, size}: pass no mask.
                    sc(270, [a[0], r, w, e, t, 0])
                }
            }
            109 | 121 | 124 => sc(nr as i64, a), // setpgid, getpgid, getsid
            115 => {
                let p = self.op(a[1], a[0].saturating_mul(4))?;
                sc(115, [a[0], p, 0, 0, 0, 0])
            }
            105 | 106 | 113 | 114 | 117 | 119 | 122 | 123 => sc(nr as i64, a), // set*id
            118 | 120 => {
                let x = self.p(a[0], 4)?;
                let y = self.p(a[1], 4)?;
                let z = self.p(a[2], 4)?;
                sc(nr as i64, [x, y, z, 0, 0, 0])
            }
            140 | 141 => sc(nr as i64, a), // getpriority, setpriority
            203 => {
                let p = self.p(a[2], a[1])?;
                sc(203, [a[0], a[1], p, 0, 0, 0])
            }
            157 => {
                // prctl: names and simple options only
                match a[0] {
                    15 | 16 => {
                        let p = self.p(a[1], 16)?;
                        sc(157, [a[0], p, 0, 0, 0, 0])
                    }
                    _ => sc(157, a),
                }
            }
            41 | 53 => {
                // socket, socketpair
                if nr == 53 {
                    let p = self.p(a[3], 8)?;
                    sc(53, [a[0], a[1], a[2], p, 0, 0])
                } else {
                    sc(41, a)
                }
            }
            42 | 49 => {
                // connect, bind
                let p = self.p(a[1], a[2])?;
                sc(nr as i64, [a[0], p, a[2], 0, 0, 0])
            }
            73 | 285 | 221 => sc(nr as i64, a), // flock, fallocate, fadvise64
            40 => {
                // sendfile
                let o = self.op(a[2], 8)?;
                sc(40, [a[0], a[1], o, a[3], 0, 0])
            }
            326 => {
                let i = self.op(a[1], 8)?;
                let o = self.op(a[3], 8)?;
                sc(326, [a[0], i, a[2], o, a[4], a[5]])
            }
            319 => {
                let n = self.s(a[0])?;
                sc(319, [n, a[1], 0, 0, 0, 0])
            }
            290 | 284 | 291 => sc(nr as i64, a), // eventfd2, eventfd, epoll_create1
            213 => sc(213, a),                   // epoll_create
            233 => {
                let e = self.op(a[3], 12)?;
                sc(233, [a[0], a[1], a[2], e, 0, 0])
            }
            232 | 281 => {
                let e = self.p(a[1], a[2].saturating_mul(12))?;
                sc(nr as i64, [a[0], e, a[2], a[3], 0, 0])
            }
            441 => {
                // epoll_pwait2 (the guest's signal mask is Kiln's to apply, as for epoll_pwait)
                let e = self.p(a[1], a[2].saturating_mul(12))?;
                let t = self.op(a[3], 16)?;
                sc(441, [a[0], e, a[2], t, 0, 0])
            }
            142 | 143 => {
                // sched_setparam, sched_getparam
                let p = self.p(a[1], 4)?;
                sc(nr as i64, [a[0], p, 0, 0, 0, 0])
            }
            144 => {
                let p = self.p(a[2], 4)?;
                sc(144, [a[0], a[1], p, 0, 0, 0])
            }
            148 => {
                let t = self.p(a[1], 16)?;
                sc(148, [a[0], t, 0, 0, 0, 0])
            }
            // sched_getscheduler, sched_get_priority_max/min, readahead, sync_file_range, syncfs
            145 | 146 | 147 | 187 | 277 | 306 => sc(nr as i64, a),
            76 => {
                let p = self.s(a[0])?;
                sc(76, [p, a[1], 0, 0, 0, 0])
            }
            92 | 94 => {
                let p = self.s(a[0])?;
                sc(nr as i64, [p, a[1], a[2], 0, 0, 0])
            }
            260 => {
                let p = self.s(a[1])?;
                sc(260, [a[0], p, a[2], a[3], a[4], 0])
            }
            280 => {
                // utimensat (a NULL path means the fd itself)
                let p = self.op(a[1], 1)?;
                let p = if a[1] == 0 { 0 } else { self.s(a[1]).unwrap_or(p) };
                let t = self.op(a[2], 32)?;
                sc(280, [a[0], p, t, a[3], 0, 0])
            }
            266 => {
                let t = self.s(a[0])?;
                let l = self.s(a[2])?;
                sc(266, [t, a[1], l, 0, 0, 0])
            }
            259 => {
                let p = self.s(a[1])?;
                sc(259, [a[0], p, a[2], a[3], 0, 0])
            }
            133 => {
                let p = self.s(a[0])?;
                sc(133, [p, a[1], a[2], 0, 0, 0])
            }
            51 | 52 | 43 | 288 => {
                // getsockname, getpeername, accept, accept4: (fd, addr*, addrlen*)
                let len_p = self.op(a[2], 4)?;
                let len = if len_p == 0 {
                    0
                } else {
                    // SAFETY: 4 bytes inside the reservation.
                    unsafe { (len_p as *const u32).read_unaligned() as u64 }
                };
                let addr = self.op(a[1], len)?;
                sc(nr as i64, [a[0], addr, len_p, a[3], 0, 0])
            }
            48 | 50 => sc(nr as i64, a), // shutdown, listen
            54 => {
                let v = self.op(a[3], a[4])?;
                sc(54, [a[0], a[1], a[2], v, a[4], 0])
            }
            55 => {
                let len_p = self.p(a[4], 4)?;
                // SAFETY: 4 bytes inside the reservation.
                let len = unsafe { (len_p as *const u32).read_unaligned() as u64 };
                let v = self.op(a[3], len)?;
                sc(55, [a[0], a[1], a[2], v, len_p, 0])
            }
            44 => {
                let b = self.p(a[1], a[2])?;
                let addr = self.op(a[4], a[5])?;
                sc(44, [a[0], b, a[2], a[3], addr, a[5]])
            }
            45 => {
                let b = self.p(a[1], a[2])?;
                let len_p = self.op(a[5], 4)?;
                let len = if len_p == 0 {
                    0
                } else {
                    // SAFETY: 4 bytes inside the reservation.
                    unsafe { (len_p as *const u32).read_unaligned() as u64 }
                };
                let addr = self.op(a[4], len)?;
                sc(45, [a[0], b, a[2], a[3], addr, len_p])
            }
            435 => ENOSYS, // clone3: libc falls back to clone
            _ => ENOSYS,
        })
    }

    fn ioctl(&self, a: [u64; 6]) -> Result<i64, i64> {
        let size = match a[1] {
            0x5401 => 60,          // TCGETS
            0x5402..=0x5404 => 60, // TCSETS*
            0x5413 | 0x5414 => 8,  // TIOCGWINSZ, TIOCSWINSZ
            0x540f | 0x5410 => 4,  // TIOCGPGRP, TIOCSPGRP
            0x541b | 0x5421 => 4,  // FIONREAD, FIONBIO
            0x5451 | 0x5450 => 0,  // FIOCLEX, FIONCLEX
            _ => return Err(-(libc::ENOTTY as i64)),
        };
        let p = if size == 0 { 0 } else { self.p(a[2], size)? };
        // SAFETY: the argument struct is inside the reservation and sized for the request.
        Ok(ret(unsafe { libc::syscall(16, a[0], a[1], p) }))
    }

    fn mmap(&self, a: [u64; 6]) -> Result<i64, i64> {
        let (addr, len, prot, flags, fd, off) = (a[0], a[1], a[2] as i32, a[3] as i32, a[4] as i32, a[5] as i64);
        if len == 0 || !(off as u64).is_multiple_of(PAGE) {
            return Err(EINVAL);
        }
        let len = page_up(len);
        let fixed = flags & (libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE) != 0;
        let at = if fixed {
            if !addr.is_multiple_of(PAGE) {
                return Err(EINVAL);
            }
            addr
        } else {
            self.mem.alloc_range(len).ok_or(ENOMEM)?
        };
        let anon = flags & libc::MAP_ANONYMOUS != 0;
        let fd = if anon { -1 } else { fd };
        match self.mem.map_fixed(at, len, prot, flags & !libc::MAP_32BIT, fd, off) {
            Ok(()) => {
                if fd >= 0 && prot & libc::PROT_EXEC != 0 {
                    if let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{fd}")) {
                        let mut maps = self.exec_maps.lock().unwrap_or_else(|e| e.into_inner());
                        maps.push((at, at + len, off as u64, path));
                    }
                }
                Ok(at as i64)
            }
            Err(crate::mem::MemError::Map(_, _, e)) => Err(-(e.raw_os_error().unwrap_or(libc::ENOMEM) as i64)),
            Err(_) => Err(ENOMEM),
        }
    }

    fn mremap(&self, a: [u64; 6]) -> Result<i64, i64> {
        let (old, old_len, new_len, flags) = (a[0], page_up(a[1]), page_up(a[2]), a[3] as i32);
        if !old.is_multiple_of(PAGE) || new_len == 0 {
            return Err(EINVAL);
        }
        if new_len <= old_len {
            if new_len < old_len {
                self.mem.unmap(old + new_len, old_len - new_len).map_err(|_| EINVAL)?;
            }
            return Ok(old as i64);
        }
        if flags & libc::MREMAP_MAYMOVE == 0 {
            return Err(ENOMEM);
        }
        let at = self.mem.alloc_range(new_len).ok_or(ENOMEM)?;
        self.mem
            .map_anon(at, new_len, libc::PROT_READ | libc::PROT_WRITE)
            .map_err(|_| ENOMEM)?;
        let src = self.p(old, old_len)?;
        let dst = self.p(at, old_len)?;
        // SAFETY: both ranges are inside the reservation; the old one is the guest's mapping.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, old_len as usize) };
        self.mem.unmap(old, old_len).map_err(|_| EINVAL)?;
        Ok(at as i64)
    }
}

fn syscall_name(nr: u64) -> &'static str {
    match nr {
        7 => "poll",
        22 => "pipe",
        41 => "socket",
        56 => "clone",
        57 => "fork",
        58 => "vfork",
        59 => "execve",
        61 => "wait4",
        293 => "pipe2",
        _ => "?",
    }
}
