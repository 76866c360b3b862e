//! Executable memory: code is written into fresh read-write pages, which are then switched to
//! read-execute, and checked cache packs are switched from read-only to read-execute where they
//! are mapped. No page is ever writable and executable at once.

/// A host pointer to executable code (a compiled unit, the trampoline or a shim), valid for
/// the rest of the process: executable mappings are never unmapped or made writable again.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodePtr(*const u8);

// SAFETY: the code a CodePtr points at is immutable and lives as long as the process, so any
// thread may hold and call it.
unsafe impl Send for CodePtr {}
// SAFETY: as for Send.
unsafe impl Sync for CodePtr {}

impl CodePtr {
    /// A pointer to no code, for tests that only store and compare them.
    #[cfg(test)]
    pub fn dangling() -> CodePtr {
        CodePtr(std::ptr::null())
    }

    /// A pointer to no real code at `addr`, for tests that only store and compare them.
    #[cfg(test)]
    pub fn fake(addr: usize) -> CodePtr {
        CodePtr(addr as *const u8)
    }

    /// The host address, as compiled code and the chaining table hold it.
    pub fn addr(self) -> u64 {
        self.0 as u64
    }

    /// The code `offset` bytes into this code's mapping.
    ///
    /// # Safety
    /// The result must still lie inside the executable mapping, at the start of a function.
    pub unsafe fn add(self, offset: usize) -> CodePtr {
        // SAFETY: the caller keeps the result inside the mapping.
        CodePtr(unsafe { self.0.add(offset) })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecMemError {
    #[error("cannot map {0} bytes for compiled code: {1}")]
    Map(usize, std::io::Error),
    #[error("cannot make compiled code executable: {0}")]
    Protect(std::io::Error),
}

/// A fresh private read-write mapping of `size` bytes, for code to be copied into.
fn map_rw(size: usize) -> Result<*mut u8, ExecMemError> {
    // SAFETY: a fresh anonymous mapping, owned by the caller.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(ExecMemError::Map(size, std::io::Error::last_os_error()));
    }
    Ok(p as *mut u8)
}

/// Copies each code blob into one new mapping, makes it executable, and returns entry points.
/// Mappings live as long as the process (units are never freed in this form).
pub fn install(codes: &[&[u8]]) -> Result<Vec<CodePtr>, ExecMemError> {
    let mut offs = Vec::with_capacity(codes.len());
    let mut total = 0usize;
    for c in codes {
        offs.push(total);
        total = (total + c.len() + 15) & !15;
    }
    if total == 0 {
        return Ok(Vec::new());
    }
    let size = (total + 4095) & !4095;
    let p = map_rw(size)? as *mut libc::c_void;
    let base = p as *mut u8;
    for (c, &o) in codes.iter().zip(&offs) {
        // SAFETY: o + c.len() <= total <= size.
        unsafe { std::ptr::copy_nonoverlapping(c.as_ptr(), base.add(o), c.len()) };
    }
    // SAFETY: switches our own mapping from RW to RX.
    if unsafe { libc::mprotect(p, size, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
        return Err(ExecMemError::Protect(std::io::Error::last_os_error()));
    }
    Ok(offs
        .iter()
        // SAFETY: each offset is the start of a function Cranelift compiled with the unit
        // signature, now executable.
        .map(|&o| CodePtr(unsafe { base.add(o) as *const u8 }))
        .collect())
}

/// Makes a checked, read-only file mapping (a cache pack) executable where it lies and keeps it
/// for the rest of the process; returns its base. The mapping is never writable and executable
/// at once: on a noexec file system its pages are replaced by copies, written first.
pub fn make_exec(mut m: super::MappedFile) -> Result<CodePtr, ExecMemError> {
    if let Err(e) = protect_rx(m.bytes()) {
        // A cache on a file system mounted noexec: the same bytes, in anonymous pages where the
        // file's were (units reach their links and entry marks at fixed distances).
        crate::klog!("cache", "cannot execute the pack in place ({e}); copying it");
        m.copy_in_place().map_err(|e| ExecMemError::Map(m.bytes().len(), e))?;
        protect_rx(m.bytes())?;
    }
    Ok(CodePtr(m.leak().0 as *const u8))
}

/// Switches our own read-only mapping `b` to read-execute.
fn protect_rx(b: &[u8]) -> Result<(), ExecMemError> {
    // SAFETY: changes only the protection of a mapping the caller owns, which stays readable.
    let r = unsafe {
        libc::mprotect(
            b.as_ptr() as *mut libc::c_void,
            b.len(),
            libc::PROT_READ | libc::PROT_EXEC,
        )
    };
    if r != 0 {
        return Err(ExecMemError::Protect(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Executable memory owned by one guest thread's dispatcher: code is appended to the current
/// chunk, which is switched to read-write only while the dispatcher (the only code running on
/// this thread, and no other thread executes this arena) copies into it, then back to
/// read-execute. Small units share pages instead of taking one each.
pub struct Arena {
    chunk: *mut u8,
    size: usize,
    used: usize,
}

const CHUNK: usize = 1 << 20;

impl Default for Arena {
    fn default() -> Self {
        Arena {
            chunk: std::ptr::null_mut(),
            size: 0,
            used: 0,
        }
    }
}

impl Arena {
    /// Installs code blobs; returns their entry points.
    pub fn install(&mut self, codes: &[&[u8]]) -> Result<Vec<CodePtr>, ExecMemError> {
        let total: usize = codes.iter().map(|c| (c.len() + 15) & !15).sum();
        if total > CHUNK / 2 {
            return install(codes);
        }
        if self.chunk.is_null() || self.used + total > self.size {
            // Read-write until a page receives code; each is read-execute from then on.
            self.chunk = map_rw(CHUNK)?;
            self.size = CHUNK;
            self.used = 0;
        }
        // Only the pages being written change protection.
        let first = self.used & !4095;
        let end = (self.used + total + 4095) & !4095;
        // SAFETY: [first, end) lies inside our chunk; no code in it runs while it is writable
        // (this thread is in the dispatcher, and other threads never run this arena's code).
        unsafe {
            let region = self.chunk.add(first) as *mut libc::c_void;
            if libc::mprotect(region, end - first, libc::PROT_READ | libc::PROT_WRITE) != 0 {
                return Err(ExecMemError::Protect(std::io::Error::last_os_error()));
            }
            let mut out = Vec::with_capacity(codes.len());
            for c in codes {
                let at = self.chunk.add(self.used);
                std::ptr::copy_nonoverlapping(c.as_ptr(), at, c.len());
                out.push(CodePtr(at as *const u8));
                self.used += (c.len() + 15) & !15;
            }
            if libc::mprotect(region, end - first, libc::PROT_READ | libc::PROT_EXEC) != 0 {
                return Err(ExecMemError::Protect(std::io::Error::last_os_error()));
            }
            Ok(out)
        }
    }
}

/// One mapping whose code is replaced again and again (the fuzzer runs each case's unit in
/// it): read-write only while code is copied in, read-execute while it runs.
pub struct RewritableCode {
    base: *mut u8,
    size: usize,
}

impl RewritableCode {
    pub fn new(size: usize) -> Result<Self, ExecMemError> {
        let p = map_rw(size)? as *mut libc::c_void;
        Ok(RewritableCode {
            base: p as *mut u8,
            size,
        })
    }

    /// Replaces the code with `code` (at most the mapping's size) and returns its entry.
    pub fn replace(&mut self, code: &[u8]) -> Result<CodePtr, ExecMemError> {
        assert!(code.len() <= self.size, "code larger than its mapping");
        let p = self.base as *mut libc::c_void;
        // SAFETY: our own mapping, switched to RW, written inside its bounds, switched to RX.
        unsafe {
            if libc::mprotect(p, self.size, libc::PROT_READ | libc::PROT_WRITE) != 0 {
                return Err(ExecMemError::Protect(std::io::Error::last_os_error()));
            }
            std::ptr::copy_nonoverlapping(code.as_ptr(), self.base, code.len());
            if libc::mprotect(p, self.size, libc::PROT_READ | libc::PROT_EXEC) != 0 {
                return Err(ExecMemError::Protect(std::io::Error::last_os_error()));
            }
        }
        Ok(CodePtr(self.base))
    }
}

impl Drop for RewritableCode {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing runs in it once its owner is gone.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.size) };
    }
}
