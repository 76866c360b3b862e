//! Watching the guest pages that hold translated code, so that no translation outlives the bytes
//! it came from. x86 has no instruction that announces new code, so changes are detected:
//!
//! - A page with translations is a *code page*. If the guest may write it, Kiln removes write
//!   permission from its host mapping; the first write faults (`on_write_fault`, from the host
//!   SIGSEGV handler, in any thread and from any code: compiled, baseline or Kiln's own), which
//!   gives the page its permission back, records the page in the change log and wakes every
//!   thread. Code that is never written (the common case: file-backed read-only text) costs
//!   nothing.
//! - A write by the kernel (read(2) into the page) cannot fault: the syscall layer calls
//!   `before_kernel_write` on the buffers it passes, which does the same for protected pages.
//! - Guest mmap, munmap, mprotect and mremap over code pages record them as changed
//!   (`changed_range`).
//! - A page written again and again after its code was translated (code and data on one page)
//!   becomes *volatile*: no longer protected, its translations compare their guest bytes at
//!   each entry instead (`Watch::Volatile`). So does code in shared mappings, which another
//!   mapping of the same file or memfd may write without any fault here.
//!
//! Each dispatcher reads the change log from its own cursor (`changes_since`) and drops its
//! units on the changed pages. The log is a ring of page numbers tagged with their position, so
//! a reader never mistakes an old entry for a new one and knows when it fell too far behind.

use super::{host_prot, page_numbers, Memory, GUEST_SPACE, PAGE};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

const PAGES: u64 = GUEST_SPACE / PAGE;
const LOG_LEN: u64 = 1 << 14;
/// Rewrites of one page after which its code is checked at entry instead of watched.
const VOLATILE_AFTER: u32 = 8;
/// A stored prot bit (never a host one): the mapping is MAP_SHARED.
pub const SHARED: i32 = 1 << 30;

/// One bit per guest page: it holds translated code.
static CODE: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
/// One bit per guest page: Kiln removed write permission from its host mapping.
static PROTECTED: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
/// One bit per guest page: a code page whose translations check their bytes at entry.
static VOLATILE: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
/// One bit per guest page: it holds exactly the bytes of the file it was mapped from
/// (privately, and never writable since), so translations of that file's code need no check
/// of their bytes there.
static PRISTINE: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
static LOG: [AtomicU64; LOG_LEN as usize] = [const { AtomicU64::new(0) }; LOG_LEN as usize];
/// Entries ever appended to the log (also the code epoch: it moves whenever code changes).
static LOG_COUNT: AtomicU64 = AtomicU64::new(0);
/// Whether the bitmaps are set up, for the fault handler.
static READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How a code page is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watch {
    /// The guest cannot write it, or writes fault first: translations need no checks.
    Watched,
    /// Written often, or shared with another mapping: translations check their bytes at entry.
    Volatile,
}

/// Sets up the bitmaps for the guest space (once per process).
pub(super) fn init() -> std::io::Result<()> {
    for map in [&CODE, &PROTECTED, &VOLATILE, &PRISTINE] {
        if !map.load(Ordering::SeqCst).is_null() {
            continue;
        }
        // SAFETY: a fresh anonymous mapping; zero pages cost nothing until touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                (PAGES / 8) as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        map.store(p as *mut AtomicU64, Ordering::SeqCst);
    }
    READY.store(true, Ordering::Release);
    Ok(())
}

fn bit(map: &AtomicPtr<AtomicU64>, page: u64) -> Option<(&'static AtomicU64, u64)> {
    let words = map.load(Ordering::Acquire);
    if words.is_null() || page >= PAGES {
        return None;
    }
    // SAFETY: the bitmap covers PAGES bits and lives for the process.
    Some((unsafe { &*words.add((page / 64) as usize) }, 1u64 << (page % 64)))
}

fn test(map: &AtomicPtr<AtomicU64>, page: u64) -> bool {
    bit(map, page).is_some_and(|(w, m)| w.load(Ordering::Acquire) & m != 0)
}

/// Sets or clears a page's bit; returns whether it was set before.
fn set(map: &AtomicPtr<AtomicU64>, page: u64, on: bool) -> bool {
    match bit(map, page) {
        Some((w, m)) if on => w.fetch_or(m, Ordering::AcqRel) & m != 0,
        Some((w, m)) => w.fetch_and(!m, Ordering::AcqRel) & m != 0,
        None => false,
    }
}

/// Sets or clears the bits of `pages`, a word at a time, writing only words that change (the
/// bitmaps' pages stay untouched where nothing is set); calls `was_set` with each page whose
/// bit was set before.
fn set_pages(map: &AtomicPtr<AtomicU64>, pages: std::ops::Range<u64>, on: bool, mut was_set: impl FnMut(u64)) {
    let mut n = pages.start;
    while n < pages.end {
        let Some((w, _)) = bit(map, n) else {
            return;
        };
        let (lo, count) = (n % 64, (64 - n % 64).min(pages.end - n));
        let mask = (u64::MAX >> (64 - count)) << lo;
        let old = w.load(Ordering::Acquire);
        let old = match on {
            true if old & mask != mask => w.fetch_or(mask, Ordering::AcqRel),
            false if old & mask != 0 => w.fetch_and(!mask, Ordering::AcqRel),
            _ => old,
        };
        let mut hit = old & mask;
        while hit != 0 {
            was_set(n - lo + u64::from(hit.trailing_zeros()));
            hit &= hit - 1;
        }
        n += count;
    }
}

fn log_change(page: u64) {
    let i = LOG_COUNT.fetch_add(1, Ordering::AcqRel);
    LOG[(i % LOG_LEN) as usize].store(((i + 1) << 28) | page, Ordering::Release);
    if let Some(wake) = ON_CHANGE.get() {
        wake();
    }
}

/// Called after each change is logged (from the fault handler too, so it must be
/// async-signal-safe): wakes the threads that may hold translations of the page.
static ON_CHANGE: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Turns write-protection of code pages on, once the host fault handler that undoes it is
/// installed, with what to do when code changes (wake the threads). Until then every code page
/// the guest may write is volatile.
pub fn enable(wake: fn()) {
    let _ = ON_CHANGE.set(wake);
}

fn enabled() -> bool {
    ON_CHANGE.get().is_some()
}

/// The code epoch: it moves whenever guest code may have changed.
pub fn epoch() -> u64 {
    LOG_COUNT.load(Ordering::Acquire)
}

/// The pages whose code changed since log position `from`: (pages, next position), or None if
/// the reader fell behind the ring and must assume every page changed.
pub fn changes_since(from: u64) -> Option<(Vec<u64>, u64)> {
    let to = LOG_COUNT.load(Ordering::Acquire);
    if to - from > LOG_LEN {
        return None;
    }
    let mut pages = Vec::new();
    for i in from..to {
        let e = LOG[(i % LOG_LEN) as usize].load(Ordering::Acquire);
        match e >> 28 {
            t if t == i + 1 => pages.push(e & ((1 << 28) - 1)),
            t if t < i + 1 => return Some((pages, i)), // being written: read it next time
            _ => return None,
        }
    }
    Some((pages, to))
}

/// Marks [start, start+len) as holding its file's bytes unchanged (or no longer).
pub(super) fn set_pristine(start: u64, len: u64, on: bool) {
    set_pages(&PRISTINE, page_numbers(start, len), on, |_| ());
}

/// Whether every page of [start, start+len) holds its file's bytes unchanged.
pub fn pristine(start: u64, len: u64) -> bool {
    page_numbers(start, len.max(1)).all(|n| test(&PRISTINE, n))
}

impl Memory {
    /// Declares [start, start+len) to hold translated code: write-protects its pages the guest
    /// may write (unless they are volatile). Returns how the range is watched, and whether a
    /// page became protected now (the caller then checks the bytes it translated again).
    pub fn watch_code(&self, start: u64, len: u64) -> (Watch, bool) {
        let pages = || page_numbers(start, len.max(1));
        // Already code pages (the common case): how they are watched is decided.
        if pages().all(|n| test(&CODE, n)) {
            let volatile = pages().any(|n| test(&VOLATILE, n));
            return (if volatile { Watch::Volatile } else { Watch::Watched }, false);
        }
        let mut st = self.state();
        let (mut watch, mut newly) = (Watch::Watched, false);
        for n in pages() {
            let page = n * PAGE;
            if set(&CODE, n, true) {
                // Decided already; or its protection is being undone by a write fault in
                // another thread, which logs the change afterwards: left to that.
                if test(&VOLATILE, n) {
                    watch = Watch::Volatile;
                }
                continue;
            }
            let prot = st.prot_at(page).unwrap_or(0);
            if prot & SHARED != 0 && prot & libc::PROT_EXEC != 0 {
                set(&VOLATILE, n, true);
                watch = Watch::Volatile;
            } else if prot & libc::PROT_WRITE != 0 && !test(&PROTECTED, n) {
                let rewrites = st.rewrites.entry(n).or_insert(0);
                if *rewrites >= VOLATILE_AFTER || !enabled() {
                    set(&VOLATILE, n, true);
                    watch = Watch::Volatile;
                } else {
                    *rewrites += 1;
                    // Marked first: a write that faults as soon as the page is read-only
                    // must find it Kiln's.
                    set(&PROTECTED, n, true);
                    self.host_protect(page, host_prot(prot & !libc::PROT_WRITE));
                    newly = true;
                }
            }
        }
        (watch, newly)
    }

    /// Records the code pages in [start, start+len) as changed (the guest remapped or
    /// reprotected them); their protection is Kiln's to set again. Called with the range's new
    /// protection already applied to the host mapping.
    pub(super) fn changed_range(&self, start: u64, len: u64) {
        let pages = page_numbers(start, len);
        set_pages(&PROTECTED, pages.clone(), false, |_| ());
        set_pages(&VOLATILE, pages.clone(), false, |_| ());
        set_pages(&CODE, pages, false, log_change);
    }

    /// Before the kernel writes guest memory on the guest's behalf (a syscall's output buffer):
    /// protected code pages in the range become writable and their code counts as changed.
    pub fn before_kernel_write(&self, start: u64, len: u64) {
        for n in page_numbers(start, len) {
            if test(&PROTECTED, n) {
                unprotect(n);
            }
        }
    }

    /// A guest write to `addr` faulted although the guest may write there: it raced with Kiln
    /// protecting or unprotecting a code page in another thread (the fault handler found the
    /// page not, or no longer, marked as Kiln's). The host permission is made to match again
    /// unless the page is protected now (then the retried write faults as Kiln's); true when
    /// the write should simply be retried.
    pub fn retry_write_fault(&self, addr: u64) -> bool {
        let page = addr & !(PAGE - 1);
        let st = self.state();
        let Some(prot) = st.prot_at(page) else {
            return false;
        };
        if prot & libc::PROT_WRITE == 0 {
            return false;
        }
        if !test(&PROTECTED, page / PAGE) {
            self.host_protect(page, host_prot(prot));
        }
        true
    }

    fn host_protect(&self, page: u64, prot: i32) {
        if let Some(p) = self.host_ptr(page, PAGE) {
            // SAFETY: one page inside the reservation.
            unsafe { libc::mprotect(p as *mut libc::c_void, PAGE as usize, prot) };
        }
    }
}

/// Gives a protected page its write permission back and records its code as changed. The
/// guest could write it, so its protection was read and write (x86 has no write-only pages).
fn unprotect(n: u64) {
    if !set(&PROTECTED, n, false) {
        return;
    }
    // SAFETY: one page inside the reservation; async-signal-safe.
    unsafe {
        libc::mprotect(
            super::host(n * PAGE) as *mut libc::c_void,
            PAGE as usize,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    set(&CODE, n, false);
    log_change(n);
}

/// From the host SIGSEGV handler: a fault at host address `addr` on a page Kiln write-protected
/// is the guest writing its code. The page becomes writable again and its code changed; true
/// when the faulting access should simply be retried.
pub fn on_write_fault(addr: u64) -> bool {
    if !READY.load(Ordering::Acquire) || addr >= GUEST_SPACE {
        return false;
    }
    let n = addr / PAGE;
    if !test(&PROTECTED, n) {
        return false;
    }
    unprotect(n);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ranges that start and end inside words, span whole words or fit in one: exactly their
    /// bits change, and the pages reported are those that were set before.
    #[test]
    fn page_ranges_set_and_clear_exactly_their_bits() {
        static MAP: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
        let words: &'static [AtomicU64] = Box::leak((0..8).map(|_| AtomicU64::new(0)).collect());
        MAP.store(words.as_ptr() as *mut AtomicU64, Ordering::SeqCst);
        let bits = || -> Vec<u64> { (0..512).filter(|&n| test(&MAP, n)).collect() };
        set_pages(&MAP, 3..200, true, |n| panic!("page {n} was not set"));
        assert_eq!(bits(), (3..200).collect::<Vec<_>>());
        set_pages(&MAP, 64..128, true, |_| ());
        let mut seen = Vec::new();
        set_pages(&MAP, 60..70, false, |n| seen.push(n));
        assert_eq!(seen, (60..70).collect::<Vec<_>>());
        let mut seen = Vec::new();
        set_pages(&MAP, 0..512, false, |n| seen.push(n));
        assert_eq!(seen, (3..60).chain(70..200).collect::<Vec<_>>());
        assert!(bits().is_empty());
        set_pages(&MAP, 130..131, true, |_| ());
        assert_eq!(bits(), vec![130]);
    }
}
