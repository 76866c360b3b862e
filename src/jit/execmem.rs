//! Executable memory: code is written into fresh read-write pages, which are then switched to
//! read-execute. No page is ever writable and executable at once.

use super::UnitFn;

#[derive(Debug, thiserror::Error)]
pub enum ExecMemError {
    #[error("cannot map {0} bytes for compiled code: {1}")]
    Map(usize, std::io::Error),
    #[error("cannot make compiled code executable: {0}")]
    Protect(std::io::Error),
}

/// Copies each code blob into one new mapping, makes it executable, and returns entry points.
/// Mappings live as long as the process (units are never freed in this form).
pub fn install(codes: &[&[u8]]) -> Result<Vec<UnitFn>, ExecMemError> {
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
        // SAFETY: each offset is the start of a function Cranelift compiled with the UnitFn
        // signature, now executable.
        .map(|&o| unsafe { base.add(o) as UnitFn })
        .collect())
}
