//! Guest pointer arguments: made host pointers (bounds-checked buffers, C strings, iovec
//! arrays) for calls forwarded to the host, or read out of guest memory (strings, string
//! arrays) for calls Kiln carries out itself.

use super::Process;
use crate::mem::GUEST_SPACE;
use std::ffi::CString;

pub(super) const EFAULT: i64 = -libc::EFAULT as i64;
pub(super) const EINVAL: i64 = -libc::EINVAL as i64;

impl Process {
    /// Host address of a guest buffer, or EFAULT if it leaves the guest space. The kernel may
    /// write it: code pages in it stop being write-protected first (their code counts as
    /// changed), or the call would fail with EFAULT where it succeeds natively.
    pub(super) fn buf(&self, a: u64, len: u64) -> Result<u64, i64> {
        let p = self.mem.host_ptr(a, len).ok_or(EFAULT)?;
        self.mem.before_kernel_write(a, len);
        Ok(p as u64)
    }

    /// Like `buf`, but a guest NULL stays NULL.
    pub(super) fn buf_or_null(&self, a: u64, len: u64) -> Result<u64, i64> {
        if a == 0 {
            Ok(0)
        } else {
            self.buf(a, len)
        }
    }

    /// A guest C string (the kernel reads it; we bound it to the guest space).
    pub(super) fn cstr(&self, a: u64) -> Result<u64, i64> {
        if a == 0 {
            return Err(EFAULT);
        }
        let len = (GUEST_SPACE - a.min(GUEST_SPACE)).min(4096);
        self.mem.host_ptr(a, len).map(|p| p as u64).ok_or(EFAULT)
    }

    /// The u32 a guest length pointer (socklen_t *) points at, or 0 for NULL; the pointer
    /// itself is returned translated.
    pub(super) fn socklen(&self, a: u64) -> Result<(u64, u64), i64> {
        let len_p = self.buf_or_null(a, 4)?;
        let len = if len_p == 0 {
            0
        } else {
            // SAFETY: 4 bytes inside the reservation.
            unsafe { (len_p as *const u32).read_unaligned() as u64 }
        };
        Ok((len_p, len))
    }

    /// Copies iovecs from guest memory into host iovecs.
    pub(super) fn iovecs(&self, a: u64, n: u64) -> Result<Vec<libc::iovec>, i64> {
        if n > 1024 {
            return Err(EINVAL);
        }
        let mut v = Vec::with_capacity(n as usize);
        for i in 0..n {
            let base = self.buf(a + i * 16, 16)?;
            // SAFETY: base points at 16 bytes inside the reservation.
            let (b, l) = unsafe {
                (
                    (base as *const u64).read_unaligned(),
                    ((base + 8) as *const u64).read_unaligned(),
                )
            };
            let hp = if l == 0 { 0 } else { self.buf(b, l)? };
            v.push(libc::iovec {
                iov_base: hp as *mut libc::c_void,
                iov_len: l as usize,
            });
        }
        Ok(v)
    }

    /// A NUL-terminated guest string, copied out.
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

    /// A NULL-terminated guest array of string pointers, copied out.
    pub(super) fn guest_strv(&self, a: u64) -> Result<Vec<CString>, i64> {
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
}
