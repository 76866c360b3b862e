//! Executable memory: code is written into fresh read-write pages, which are then switched to
//! read-execute, and checked cache packs are switched from read-only to read-execute where they
//! are mapped. No page is ever writable and executable at once.

/// A host pointer to executable code (a compiled unit, the trampoline or a shim).
pub type CodePtr = *const u8;

#[derive(Debug, thiserror::Error)]
pub enum ExecMemError {
    #[error("cannot map {0} bytes for compiled code: {1}")]
    Map(usize, std::io::Error),
    #[error("cannot make compiled code executable: {0}")]
    Protect(std::io::Error),
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
    // SAFETY: a fresh anonymous mapping; we write only inside it.
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
        .map(|&o| unsafe { base.add(o) as CodePtr })
        .collect())
}

/// Makes a checked, read-only file mapping (a cache pack) executable where it lies and keeps it
/// for the rest of the process; returns its base. The mapping is never writable. On failure (a
/// cache on a noexec file system) the mapping is left readable for the caller to copy from.
pub fn make_exec(m: super::MappedFile) -> Result<*const u8, (ExecMemError, super::MappedFile)> {
    let b = m.bytes();
    // SAFETY: switches our own read-only private file mapping to read-execute.
    if unsafe {
        libc::mprotect(
            b.as_ptr() as *mut libc::c_void,
            b.len(),
            libc::PROT_READ | libc::PROT_EXEC,
        )
    } != 0
    {
        return Err((ExecMemError::Protect(std::io::Error::last_os_error()), m));
    }
    Ok(m.leak().0 as *const u8)
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
            // SAFETY: a fresh anonymous mapping, made executable below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    CHUNK,
                    libc::PROT_READ | libc::PROT_EXEC,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(ExecMemError::Map(CHUNK, std::io::Error::last_os_error()));
            }
            self.chunk = p as *mut u8;
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
                out.push(at as CodePtr);
                self.used += (c.len() + 15) & !15;
            }
            if libc::mprotect(region, end - first, libc::PROT_READ | libc::PROT_EXEC) != 0 {
                return Err(ExecMemError::Protect(std::io::Error::last_os_error()));
            }
            Ok(out)
        }
    }
}
