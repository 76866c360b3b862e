//! Kiln's own heap (`main.rs` installs [`HostAllocator`] as the global allocator): the C
//! library's `malloc` while the process allocates little, mimalloc from the moment it starts
//! compiling or loads many cached units ([`heavy_use`]).
//!
//! With musl (the `kiln` executable's C library on x86-64, see tools/rustc-wrapper) the two
//! kinds of process want different allocators. A run whose code is all in the cache allocates
//! little, and musl's `malloc` starts from nothing: mimalloc's first allocation sets up its
//! arenas and touches a page per size class, about 90 more page faults, which made a warm
//! static hello world 1.11x slower. A compiling process (a cold run's compile threads, the
//! compile service, `--tier jit`, the fuzzer) allocates and frees without pause from several
//! threads, where musl's single-lock `malloc` made `--tier jit` 1.24x slower than glibc's and
//! mimalloc is as fast as glibc's (1.01x); a warm run of a large program (`cc1`'s 87,000
//! cached units) ran 1.01x to 1.025x slower on musl's than on glibc's, 1.00x on mimalloc.
//!
//! A block is freed (or grown) by the allocator that made it: after the switch, a pointer
//! mimalloc does not own (`mi_is_in_heap_region`, a lookup in its page map) is the C
//! library's. Before the switch nothing is mimalloc's. The switch is a flag set (release) after
//! mimalloc has started: a thread that sees it (acquire) sees mimalloc started, and a thread
//! that frees a block mimalloc made has received that block from one that had seen it.
//!
//! With any other C library the process's allocator is that library's own `malloc`
//! (glibc's serves both kinds of process well).

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the process is in heavy use (`heavy_use`): new blocks come from mimalloc.
static HEAVY_USE: AtomicBool = AtomicBool::new(false);

/// Tells the allocator that this process will allocate much from now on: it compiles
/// (`jit::Workspace` calls it before a thread's first compile) or it has loaded many cached
/// units (`dispatch::prefill`).
pub fn heavy_use() {
    #[cfg(target_env = "musl")]
    mixed::start_mimalloc();
    HEAVY_USE.store(true, Ordering::Release);
}

/// The global allocator of the `kiln` executable (see the module documentation).
#[cfg(target_env = "musl")]
pub struct HostAllocator;

#[cfg(target_env = "musl")]
mod mixed {
    use super::{HostAllocator, HEAVY_USE};
    use libmimalloc_sys as mi;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicBool, Ordering};

    unsafe extern "C" {
        /// mimalloc's process start-up, which its C sources would run from a constructor
        /// before `main` in every process; built without that constructor
        /// (`MI_PRIM_HAS_PROCESS_ATTACH`, .cargo/config.toml), it runs here, in the processes
        /// that use mimalloc, before their first block. It reads its options from the
        /// environment, probes the CPU and the system's page sizes, and seeds its random
        /// state: about 3% of a warm static hello world's CPU.
        fn _mi_auto_process_init();
    }

    /// Set in a child forked after mimalloc started: mimalloc has no fork handlers, and a lock
    /// of its (arenas, heaps) that another thread of the parent held at the fork stays held
    /// in the child for good (a cold run's `sh` forked while a compile worker allocated, and
    /// the child hung in its first allocation). The child's new blocks come from the C
    /// library, whose `fork` leaves its own lock usable; mimalloc's blocks are still told
    /// apart (a page-map lookup, which takes no lock) and are not given back to it.
    static FORKED: AtomicBool = AtomicBool::new(false);

    extern "C" fn forked_child() {
        FORKED.store(true, Ordering::Relaxed);
    }

    /// Starts mimalloc, once per process.
    pub(super) fn start_mimalloc() {
        static STARTED: std::sync::Once = std::sync::Once::new();
        STARTED.call_once(|| {
            // SAFETY: mimalloc's start-up, run once, before any block of mimalloc's is made;
            // then a handler that only sets a flag, for the C library's `fork` to run in the
            // child.
            unsafe {
                _mi_auto_process_init();
                libc::pthread_atfork(None, None, Some(forked_child));
            }
        });
    }

    /// Whether new blocks come from mimalloc: it started, and this is not a child forked since.
    fn mimalloc_allocates() -> bool {
        HEAVY_USE.load(Ordering::Acquire) && !FORKED.load(Ordering::Relaxed)
    }

    /// True if mimalloc made the block at `p`.
    fn mimalloc_owns(p: *mut u8) -> bool {
        // SAFETY: a page-map lookup; any address may be asked about.
        HEAVY_USE.load(Ordering::Acquire) && unsafe { mi::mi_is_in_heap_region(p.cast()) }
    }

    // SAFETY: every block is made by one of two allocators and returned to the one that made
    // it (see the module documentation); each keeps GlobalAlloc's contract.
    unsafe impl GlobalAlloc for HostAllocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if !mimalloc_allocates() {
                // SAFETY: the caller's layout, passed on.
                return unsafe { System.alloc(layout) };
            }
            // SAFETY: any size and power-of-two alignment.
            unsafe { mi::mi_malloc_aligned(layout.size(), layout.align()).cast() }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if !mimalloc_allocates() {
                // SAFETY: the caller's layout, passed on.
                return unsafe { System.alloc_zeroed(layout) };
            }
            // SAFETY: as in `alloc`.
            unsafe { mi::mi_zalloc_aligned(layout.size(), layout.align()).cast() }
        }

        unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
            if mimalloc_owns(p) {
                if !FORKED.load(Ordering::Relaxed) {
                    // SAFETY: a block of mimalloc's, freed once (the caller's contract).
                    unsafe { mi::mi_free(p.cast()) }
                }
            } else {
                // SAFETY: a block of the C library's, with the layout it was made with.
                unsafe { System.dealloc(p, layout) }
            }
        }

        unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if mimalloc_owns(p) && FORKED.load(Ordering::Relaxed) {
                // A forked child's: moved into a new block of the C library's (the old one kept).
                // SAFETY: a layout like the caller's with the new size, which the caller's
                // contract keeps valid; both blocks hold at least the bytes copied.
                unsafe {
                    let grown = Layout::from_size_align_unchecked(new_size, layout.align());
                    let q = System.alloc(grown);
                    if !q.is_null() {
                        std::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                    }
                    return q;
                }
            }
            if mimalloc_owns(p) {
                // SAFETY: a block of mimalloc's, grown by it with its alignment kept.
                unsafe { mi::mi_realloc_aligned(p.cast(), new_size, layout.align()).cast() }
            } else {
                // SAFETY: a block of the C library's, grown by it.
                unsafe { System.realloc(p, layout, new_size) }
            }
        }
    }
}

/// With any other C library, its own allocator.
#[cfg(not(target_env = "musl"))]
pub use std::alloc::System as HostAllocator;
