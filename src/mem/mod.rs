//! The guest address space: one host reservation, guest mappings inside it, and checked access.
//!
//! Guest address `A` lives at host address `A`: the guest space is the bottom of the
//! host's own address space, reserved whole at start-up (`Memory::reserve`), with Kiln's
//! executable, heap, stacks and mappings all above it. Everything outside the guest's
//! mappings stays `PROT_NONE`, so the host MMU enforces the guest's view. Above the guest
//! space lies a `PROT_NONE` guard; below it there is nothing to guard, as an address below
//! zero wraps to the top half of the host's address space, which is the kernel's or not an
//! address at all (non-canonical), and faults. Rust code puts an address at or above
//! `GUEST_SPACE`, or in the null page, into the guard (`host`); compiled code checks that the
//! register part of an address lies below `SPACE_LIMIT` as a signed number and adds the
//! displacement in the host access, which then lands in the guard or the top half when it
//! leaves the guest space. Either way the access faults (`is_guest_fault`) and never reaches
//! Kiln's memory.

/// Size of the guest address space (1 TiB).
pub const GUEST_SPACE: u64 = 1 << 40;
/// The `PROT_NONE` guard reserved above the guest space: larger than any displacement (a
/// signed 32-bit number) plus any single access (an fxsave image, a string instruction's
/// element) beyond `SPACE_LIMIT`, so an access whose register part passed compiled code's
/// check, or one Rust code puts there (`host`), faults inside the reservation.
pub const GUARD: u64 = 1 << 32;
/// The bound (exclusive, as a signed number) of an address's register part that compiled code
/// accesses without branching to its fault path (`in_reach`): 1 GiB above the guest space.
pub const SPACE_LIMIT: u64 = GUEST_SPACE + (1 << 30);
/// The lowest host address the reservation starts at: the kernel's default floor for
/// mappings (`vm.mmap_min_addr`); guest addresses below it fault natively as well.
const RESERVATION_START: u64 = 1 << 16;
/// Where the reservation ends: the guard's top.
const RESERVATION_END: u64 = GUEST_SPACE + GUARD;
/// The start of the host's top half (kernel or non-canonical addresses), where the host
/// address of an address below zero lands.
#[cfg(not(target_arch = "aarch64"))]
const TOP_HALF: u64 = 1 << 47;
#[cfg(target_arch = "aarch64")]
const TOP_HALF: u64 = 1 << 48;

/// Whether compiled code may access guest memory with `v` as an address's register part, plus
/// any 32-bit displacement, without checking it first (or with one within `REACH_STEP` of such
/// a value): `v` lies below `SPACE_LIMIT` as a signed number. The host access then lands in
/// the guest space or the guard above it; or, from a part below zero, at an address that wraps
/// to the host's top half (the kernel's, or non-canonical: from at most `REACH_STEP` below
/// the most negative number, one just under 2^63); every one of them faults or is the
/// guest's.
pub fn in_reach(v: u64) -> bool {
    (v as i64) < SPACE_LIMIT as i64
}

/// How far from a value in reach (`in_reach`) compiled code may use another computed from it
/// by adding a constant, without checking that one.
pub const REACH_STEP: u64 = 1 << 20;
const _: () = assert!(SPACE_LIMIT + REACH_STEP + (1 << 31) + PAGE <= GUEST_SPACE + GUARD);

/// Whether a host fault at `host` (the faulting address, 0 for a non-canonical one) is a
/// guest access's: in the reservation, below it (the null pages), or in the top half.
pub fn is_guest_fault(host: u64) -> bool {
    !(RESERVATION_END..TOP_HALF).contains(&host)
}

/// The guest addresses Rust code accesses at their own host address (`host`).
pub const OWN_ADDRESSES: std::ops::Range<u64> = PAGE..GUEST_SPACE;

/// The host pointer Rust code accesses guest address `addr` through: the address itself in
/// `OWN_ADDRESSES`; in the guard above the space for one beyond it or in the null page (a
/// null pointer is never made, let alone read). A fault in the guard is reported with the
/// guest's own address, recovered from the faulting instruction.
#[inline(always)]
pub fn host(addr: u64) -> *mut u8 {
    (addr.wrapping_sub(PAGE).min(GUEST_SPACE) + PAGE) as *mut u8
}
pub const PAGE: u64 = 4096;

/// Where Kiln places things in guest space (fixed, so cache keys stay stable).
pub mod exec;
pub mod watch;

pub mod layout {
    /// Load bias of position-independent executables.
    pub const PIE_BASE: u64 = 0x55_5555_0000;
    /// Load bias of the program interpreter (the dynamic loader).
    pub const INTERP_BASE: u64 = 0x7f_0000_0000;
    /// Top of the initial stack.
    pub const STACK_TOP: u64 = 0xff_ffff_0000;
    pub const STACK_SIZE: u64 = 8 << 20;
    /// Anonymous and file mappings are placed downwards from here.
    pub const MMAP_TOP: u64 = 0xf0_0000_0000;
    pub const MMAP_BOTTOM: u64 = 0x80_0000_0000;
}

#[derive(Debug, thiserror::Error)]
pub enum MemError {
    #[error("cannot reserve host addresses {0:#x}-{1:#x} for the guest space: {2}")]
    Reserve(u64, u64, std::io::Error),
    #[error("guest range {0:#x}+{1:#x} is outside the guest address space")]
    OutOfRange(u64, u64),
    #[error("host mmap for guest range {0:#x}+{1:#x} failed: {2}")]
    Map(u64, u64, std::io::Error),
}

/// Hashes guest addresses (already well distributed in their low bits) cheaply.
#[derive(Default)]
pub struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | *b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A map keyed by guest address.
pub type AddrMap<V> = std::collections::HashMap<u64, V, std::hash::BuildHasherDefault<AddrHasher>>;

/// Zeroed memory in a mapping of its own that starts on a huge-page boundary, for a table that
/// compiled code reads at random (the chaining table): huge pages can then back all of it,
/// where memory from the heap straddles huge-page boundaries, and its parts outside a whole
/// aligned huge page take a page fault and a TLB entry per 4 KiB.
pub struct HugeAligned {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; access goes through it.
unsafe impl Send for HugeAligned {}

/// A fresh private anonymous mapping of `len` zeroed bytes, readable and writable, not
/// reserved against the commit limit, at a multiple of `align` (a multiple of the page size):
/// its address.
fn map_zeroed_aligned(len: usize, align: usize) -> std::io::Result<usize> {
    let over = len + align - host_page_size();
    // SAFETY: a fresh private anonymous mapping, trimmed below to the aligned part.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            over,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let (start, end) = (p as usize, p as usize + over);
    let at = start.next_multiple_of(align);
    // SAFETY: unmapping the parts of our own mapping before and after the aligned part.
    unsafe {
        if at > start {
            libc::munmap(p, at - start);
        }
        if end > at + len {
            libc::munmap((at + len) as *mut libc::c_void, end - at - len);
        }
    }
    Ok(at)
}

/// The huge page size the alignment serves (x86-64's and aarch64's 2 MiB).
const HUGE_PAGE: usize = 2 << 20;

impl HugeAligned {
    /// `len` zeroed bytes, untouched until used; in huge pages where `huge`. Out of memory
    /// aborts, as a failed allocation does.
    pub fn zeroed(len: usize, huge: bool) -> HugeAligned {
        // Small pages need no alignment beyond the page's, which every mapping has.
        let align = if huge { HUGE_PAGE } else { host_page_size() };
        let Ok(at) = map_zeroed_aligned(len, align) else {
            out_of_memory(len);
        };
        if huge {
            advise_huge_pages(at, len);
        }
        HugeAligned {
            ptr: at as *mut u8,
            len,
        }
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Grows a table in small pages (`zeroed` with `huge` false) to `len` bytes, keeping its
    /// contents and its pages (the new part zeroed and untouched); the mapping may move. Out of
    /// memory aborts, as a failed allocation does.
    pub fn grow(&mut self, len: usize) {
        // SAFETY: our own mapping, moved or extended by the kernel; no view of it outlives
        // the borrow (callers take the address again afterwards).
        let p = unsafe { libc::mremap(self.ptr as *mut libc::c_void, self.len, len, libc::MREMAP_MAYMOVE) };
        if p == libc::MAP_FAILED {
            out_of_memory(len);
        }
        self.ptr = p as *mut u8;
        self.len = len;
    }

    /// Makes every page present and writable in one system call (`MADV_POPULATE_WRITE`),
    /// where a table about to be filled all over would take a page fault on each; nothing
    /// where the kernel cannot (before Linux 5.14), as the faults then do it.
    pub fn populate(&self) {
        // SAFETY: our own mapping, readable and writable; the advice only faults its pages in.
        unsafe { libc::madvise(self.ptr as *mut libc::c_void, self.len, libc::MADV_POPULATE_WRITE) };
    }

    /// Whether each of its pages was touched (written, or read; all of them where the kernel
    /// cannot say), with the size of a page.
    pub fn touched(&self) -> (usize, Vec<bool>) {
        let page = host_page_size();
        let mut resident = vec![0u8; self.len.div_ceil(page)];
        // SAFETY: our own mapping, and a vector of one byte per page of it.
        let known = unsafe { libc::mincore(self.ptr as *mut libc::c_void, self.len, resident.as_mut_ptr()) } == 0;
        (page, resident.iter().map(|&r| !known || r & 1 != 0).collect())
    }
}

/// A table of `len` bytes could not be mapped: aborts, as a failed allocation does.
fn out_of_memory(len: usize) -> ! {
    let layout = std::alloc::Layout::from_size_align(len, HUGE_PAGE).expect("a valid table size");
    std::alloc::handle_alloc_error(layout)
}

impl Drop for HugeAligned {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; no view of it outlives self.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// The host's page size (4 KiB here; 16 or 64 KiB on some aarch64 hosts).
pub fn host_page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .unwrap_or(4096)
        .max(1)
}

/// Asks the host kernel to back the whole pages inside [addr, addr+len) of this process's own
/// memory with huge pages (transparent huge pages) where it is touched from now on; a hint,
/// ignored where unsupported.
pub fn advise_huge_pages(addr: usize, len: usize) {
    let host_page = host_page_size();
    let start = addr.next_multiple_of(host_page);
    let end = (addr + len) & !(host_page - 1);
    if end > start {
        // SAFETY: advice on memory this process owns; MADV_HUGEPAGE changes no contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

/// Whether the host kernel makes transparent huge pages for memory that asks for them.
fn transparent_huge_pages() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").is_ok_and(|s| !s.contains("[never]"))
}

/// Bytes of this process's file mapping that starts at `addr` which the kernel maps with huge
/// pages (`FilePmdMapped` in /proc/self/smaps); None where that cannot be read.
fn huge_mapped_bytes(addr: usize) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let head = format!("{addr:x}-");
    // The mapping's fields follow its line, each a name ending in a colon.
    let mut fields = (smaps.lines().skip_while(|l| !l.starts_with(&head)).skip(1))
        .take_while(|l| l.split_whitespace().next().is_some_and(|name| name.ends_with(':')));
    let kb = fields.find_map(|l| l.strip_prefix("FilePmdMapped:"))?;
    kb.trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|k| k * 1024)
}

pub fn page_down(a: u64) -> u64 {
    a & !(PAGE - 1)
}
/// The numbers of the guest pages [start, start+len) touches (none for an empty range), within
/// the guest space.
pub fn page_numbers(start: u64, len: u64) -> std::ops::Range<u64> {
    let end = start.saturating_add(len).min(GUEST_SPACE);
    start / PAGE..end.div_ceil(PAGE).max(start / PAGE)
}

pub fn page_up(a: u64) -> u64 {
    a.wrapping_add(PAGE - 1) & !(PAGE - 1)
}

/// Maps the reservation `PROT_NONE` from `start` to `RESERVATION_END` where nothing else lies
/// (a kernel without `MAP_FIXED_NOREPLACE` takes it as a hint, and a range it moved is given
/// back); returns `start`.
fn reserve_from(start: u64) -> std::io::Result<u64> {
    let len = (RESERVATION_END - start) as usize;
    // SAFETY: a fresh anonymous PROT_NONE mapping that replaces nothing.
    let p = unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    if p as u64 != start {
        // SAFETY: the mapping just made, elsewhere.
        unsafe { libc::munmap(p, len) };
        return Err(std::io::Error::from_raw_os_error(libc::EEXIST));
    }
    Ok(start)
}

/// The kernel's floor for mappings (`vm.mmap_min_addr`), page aligned.
fn mmap_min_addr() -> u64 {
    let text = std::fs::read_to_string("/proc/sys/vm/mmap_min_addr").unwrap_or_default();
    page_up(text.trim().parse().unwrap_or(RESERVATION_START))
}

/// Gives the reservation back, in a forked child that runs code natively and needs its
/// addresses (`kiln fuzz`).
///
/// # Safety
/// Nothing may use the guest space afterwards.
pub unsafe fn release_reservation() {
    // SAFETY: the caller's promise; munmap of a range without mappings is harmless.
    unsafe {
        libc::munmap(
            RESERVATION_START as *mut libc::c_void,
            (RESERVATION_END - RESERVATION_START) as usize,
        )
    };
}

/// The host reservation that holds the whole guest address space.
pub struct Memory {
    /// Mapping bookkeeping, shared by the guest's threads.
    state: std::sync::Mutex<MemState>,
}

/// What Kiln records about the guest's address space.
pub struct MemState {
    /// The guest's mappings: start -> (end, guest prot). Kept in step with every host change.
    maps: std::collections::BTreeMap<u64, (u64, i32)>,
    pub brk_start: u64,
    pub brk: u64,
    /// How often each code page was write-protected again after the guest wrote it
    /// (`watch`).
    rewrites: AddrMap<u32>,
}

// SAFETY: the reservation is plain memory owned for the process lifetime; guest threads
// synchronise through the guest's own protocols, and Kiln's bookkeeping is behind a mutex.
unsafe impl Send for Memory {}
// SAFETY: as above.
unsafe impl Sync for Memory {}

impl Memory {
    /// Reserves the host range the guest space lives in, from `RESERVATION_START` (or the
    /// kernel's floor for mappings, where that is higher) to the guard's end. It must be free:
    /// Kiln's own memory lies above it (the executable is position-independent, placed by
    /// the kernel high up with its heap), and one process holds one guest space.
    pub fn reserve() -> Result<Memory, MemError> {
        let start = match reserve_from(RESERVATION_START) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => reserve_from(mmap_min_addr()),
            r => r,
        };
        let start = start.map_err(|e| MemError::Reserve(RESERVATION_START, RESERVATION_END, e))?;
        watch::init().map_err(|e| MemError::Reserve(start, RESERVATION_END, e))?;
        Ok(Memory {
            state: std::sync::Mutex::new(MemState {
                maps: Default::default(),
                brk_start: 0,
                brk: 0,
                rewrites: AddrMap::default(),
            }),
        })
    }

    /// The bookkeeping, locked (a poisoned lock is still usable: the data stays consistent).
    pub fn state(&self) -> std::sync::MutexGuard<'_, MemState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(addr: u64, len: u64) -> Result<(), MemError> {
        match addr.checked_add(len) {
            Some(end) if end <= GUEST_SPACE => Ok(()),
            _ => Err(MemError::OutOfRange(addr, len)),
        }
    }

    /// Host pointer for a guest range, or None if the range leaves the guest space.
    pub fn host_ptr(&self, addr: u64, len: u64) -> Option<*mut u8> {
        Self::check(addr, len).ok()?;
        Some(host(addr))
    }

    /// Maps anonymous zeroed memory at a fixed guest range (page aligned) with guest `prot`.
    pub fn map_anon(&self, addr: u64, len: u64, prot: i32) -> Result<(), MemError> {
        self.map_fixed(addr, len, prot, libc::MAP_ANONYMOUS | libc::MAP_PRIVATE, -1, 0)
    }

    /// Maps a range with host mmap(MAP_FIXED) inside the reservation.
    pub fn map_fixed(&self, addr: u64, len: u64, prot: i32, flags: i32, fd: i32, off: i64) -> Result<(), MemError> {
        let mut st = self.state();
        self.map_recorded(&mut st, addr, len, prot, flags, fd, off)
    }

    /// Maps `len` bytes where Kiln chooses (at `hint` if that range is free), as one step, so
    /// that threads mapping at once never get the same range. Returns the guest address.
    pub fn map_placed(
        &self,
        hint: Option<u64>,
        len: u64,
        prot: i32,
        flags: i32,
        fd: i32,
        off: i64,
    ) -> Result<u64, MemError> {
        let mut st = self.state();
        let hint = hint.filter(|&h| Self::check(h, len).is_ok() && st.is_free(h, h + len));
        let at = match hint {
            Some(h) => h,
            None => st.alloc_range(len).ok_or(MemError::OutOfRange(0, len))?,
        };
        self.map_recorded(&mut st, at, len, prot, flags, fd, off)?;
        Ok(at)
    }

    #[allow(clippy::too_many_arguments)]
    fn map_recorded(
        &self,
        st: &mut MemState,
        addr: u64,
        len: u64,
        prot: i32,
        flags: i32,
        fd: i32,
        off: i64,
    ) -> Result<(), MemError> {
        self.map_fixed_unrecorded(addr, len, prot, flags, fd, off)?;
        let shared = if flags & libc::MAP_SHARED != 0 {
            watch::SHARED
        } else {
            0
        };
        st.record(addr, addr + len, Some(prot | shared));
        self.changed_range(addr, len);
        let from_file = fd >= 0 && flags & libc::MAP_ANONYMOUS == 0;
        watch::set_pristine(addr, len, from_file && shared == 0 && prot & libc::PROT_WRITE == 0);
        Ok(())
    }

    /// Declares [addr, addr+len) to hold the bytes of the file it was mapped from, unchanged
    /// (the loader, which maps segments writable to place them, once they are final).
    pub fn set_pristine(&self, addr: u64, len: u64) {
        watch::set_pristine(addr, len, true);
    }

    fn map_fixed_unrecorded(
        &self,
        addr: u64,
        len: u64,
        prot: i32,
        flags: i32,
        fd: i32,
        off: i64,
    ) -> Result<(), MemError> {
        Self::check(addr, len)?;
        let hprot = host_prot(prot);
        // SAFETY: the range lies inside our reservation (checked), so MAP_FIXED replaces only
        // guest memory.
        let p = unsafe {
            libc::mmap(
                host(addr) as *mut libc::c_void,
                len as usize,
                hprot,
                (flags & !(libc::MAP_FIXED_NOREPLACE | libc::MAP_GROWSDOWN)) | libc::MAP_FIXED,
                fd,
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(MemError::Map(addr, len, std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

impl MemState {
    /// The guest protection at `addr` (with `watch::SHARED` for shared mappings).
    pub fn prot_at(&self, addr: u64) -> Option<i32> {
        self.maps
            .range(..=addr)
            .next_back()
            .and_then(|(_, &(end, p))| (addr < end).then_some(p))
    }

    /// Updates the mapping record over [start, end): `None` removes it.
    fn record(&mut self, start: u64, end: u64, prot: Option<i32>) {
        // Split any mapping straddling either edge, then drop everything inside.
        for edge in [start, end] {
            if let Some((&s, &(e, p))) = self.maps.range(..edge).next_back() {
                if e > edge {
                    self.maps.insert(s, (edge, p));
                    self.maps.insert(edge, (e, p));
                }
            }
        }
        let inside: Vec<u64> = self.maps.range(start..end).map(|(&s, _)| s).collect();
        for s in inside {
            self.maps.remove(&s);
        }
        if let Some(p) = prot {
            self.maps.insert(start, (end, p));
        }
    }

    /// Whether `addr` lies in a guest mapping (of any protection).
    pub fn mapped(&self, addr: u64) -> bool {
        self.maps
            .range(..=addr)
            .next_back()
            .is_some_and(|(_, &(end, _))| addr < end)
    }

    /// How many bytes from `addr` onwards lie in mappings whose protection satisfies `keep`
    /// (contiguously), up to `max`.
    fn contiguous_len(&self, addr: u64, max: u64, keep: impl Fn(i32) -> bool) -> u64 {
        let mut at = addr;
        let end = addr.saturating_add(max);
        while at < end {
            match self.maps.range(..=at).next_back() {
                Some((_, &(e, p))) if e > at && keep(p) => at = e,
                _ => break,
            }
        }
        at.min(end) - addr
    }

    /// How many bytes from `addr` onwards are mapped readable (contiguously), up to `max`.
    fn readable_len(&self, addr: u64, max: u64) -> u64 {
        self.contiguous_len(addr, max, |p| host_prot(p) & libc::PROT_READ != 0)
    }

    /// How many bytes from `addr` onwards are mapped executable (contiguously), up to `max`.
    fn executable_len(&self, addr: u64, max: u64) -> u64 {
        self.contiguous_len(addr, max, |p| p & libc::PROT_EXEC != 0)
    }

    fn fully_mapped(&self, start: u64, end: u64) -> bool {
        self.contiguous_len(start, end - start, |_| true) == end - start
    }

    /// Picks a free guest range of `len` bytes for a mapping without a fixed address: the
    /// highest gap below `layout::MMAP_TOP` that fits, as the kernel's top-down placement does
    /// (so a range freed by munmap or dlclose is used again, and the same sequence of calls
    /// always gets the same addresses).
    fn alloc_range(&mut self, len: u64) -> Option<u64> {
        let len = page_up(len);
        let mut top = layout::MMAP_TOP;
        for (&s, &(e, _)) in self.maps.range(..layout::MMAP_TOP).rev() {
            if e <= top && top - e >= len {
                break;
            }
            top = top.min(s);
            if top < layout::MMAP_BOTTOM {
                return None;
            }
        }
        top.checked_sub(len).filter(|&a| a >= layout::MMAP_BOTTOM)
    }

    /// Whether no guest mapping overlaps [start, end).
    fn is_free(&self, start: u64, end: u64) -> bool {
        self.maps.range(..end).next_back().is_none_or(|(_, &(e, _))| e <= start)
    }
}

impl Memory {
    /// Sets the start (and current end) of the program break.
    pub fn set_brk_start(&self, a: u64) {
        let mut st = self.state();
        st.brk_start = a;
        st.brk = a;
    }

    /// The brk system call: moves the break, mapping zeroed pages as it grows.
    pub fn brk(&self, want: u64) -> u64 {
        let mut st = self.state();
        let cur = st.brk;
        if want <= st.brk_start {
            return cur;
        }
        let (old_top, new_top) = (page_up(cur), page_up(want));
        if new_top > old_top {
            // The heap grows only into free space (a mapping placed at a guest's hint may sit
            // above it), as the kernel's brk does.
            if new_top > layout::MMAP_BOTTOM || !st.is_free(old_top, new_top) {
                return cur;
            }
            let rw = libc::PROT_READ | libc::PROT_WRITE;
            if self
                .map_fixed_unrecorded(
                    old_top,
                    new_top - old_top,
                    rw,
                    libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                    -1,
                    0,
                )
                .is_err()
            {
                return cur;
            }
            st.record(old_top, new_top, Some(rw));
        }
        st.brk = want;
        want
    }

    /// Whether `addr` lies in a guest mapping (of any protection).
    pub fn mapped(&self, addr: u64) -> bool {
        self.state().mapped(addr)
    }

    /// How many bytes from `addr` onwards are mapped readable (contiguously), up to `max`.
    pub fn readable_len(&self, addr: u64, max: u64) -> u64 {
        self.state().readable_len(addr, max)
    }

    /// The guest protection of the mapping holding `addr`, if any.
    pub fn prot_at(&self, addr: u64) -> Option<i32> {
        self.state().prot_at(addr).map(|p| p & !watch::SHARED)
    }

    /// How many bytes from `addr` onwards are mapped executable (contiguously), up to `max`.
    pub fn executable_len(&self, addr: u64, max: u64) -> u64 {
        self.state().executable_len(addr, max)
    }

    /// The guest's mappings in /proc/<pid>/maps form.
    pub fn maps_text(&self) -> String {
        let st = self.state();
        let mut out = String::new();
        let stack = (layout::STACK_TOP - layout::STACK_SIZE, layout::STACK_TOP);
        for (&s, &(e, p)) in &st.maps {
            if p & (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) == 0 {
                continue;
            }
            let perm = format!(
                "{}{}{}{}",
                if p & libc::PROT_READ != 0 { 'r' } else { '-' },
                if p & libc::PROT_WRITE != 0 { 'w' } else { '-' },
                if p & libc::PROT_EXEC != 0 { 'x' } else { '-' },
                if p & watch::SHARED != 0 { 's' } else { 'p' }
            );
            let name = if s >= stack.0 && e <= stack.1 {
                "[stack]"
            } else if s >= page_up(st.brk_start) && e <= page_up(st.brk) && st.brk > st.brk_start {
                "[heap]"
            } else {
                ""
            };
            let line = format!("{s:08x}-{e:08x} {perm} 00000000 00:00 0");
            if name.is_empty() {
                out.push_str(&line);
            } else {
                out.push_str(&format!("{line:<73}{name}"));
            }
            out.push('\n');
        }
        out
    }

    /// Whether [addr, addr+len) lies in the guest space with no mapping in it.
    pub fn is_free(&self, addr: u64, len: u64) -> bool {
        Self::check(addr, len).is_ok() && self.state().is_free(addr, addr + len)
    }

    /// Returns a guest range to the reserved, inaccessible state.
    pub fn unmap(&self, addr: u64, len: u64) -> Result<(), MemError> {
        let mut st = self.state();
        self.map_fixed_unrecorded(
            addr,
            len,
            0,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )?;
        st.record(addr, addr + len, None);
        self.changed_range(addr, len);
        watch::set_pristine(addr, len, false);
        Ok(())
    }

    pub fn protect(&self, addr: u64, len: u64, prot: i32) -> Result<(), std::io::Error> {
        Self::check(addr, len).map_err(|_| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
        let mut st = self.state();
        if !st.fully_mapped(addr, addr + len) {
            return Err(std::io::Error::from_raw_os_error(libc::ENOMEM));
        }
        // SAFETY: inside the reservation.
        let r = unsafe { libc::mprotect(host(addr) as *mut libc::c_void, len as usize, host_prot(prot)) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let shared = st.prot_at(addr).unwrap_or(0) & watch::SHARED;
        st.record(addr, addr + len, Some(prot | shared));
        self.changed_range(addr, len);
        if prot & libc::PROT_WRITE != 0 {
            watch::set_pristine(addr, len, false);
        }
        Ok(())
    }

    pub fn write_bytes(&self, addr: u64, data: &[u8]) -> Result<(), MemError> {
        let p = self
            .host_ptr(addr, data.len() as u64)
            .ok_or(MemError::OutOfRange(addr, data.len() as u64))?;
        // SAFETY: p..p+len is inside the reservation; the caller mapped it writable.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    }

    pub fn write_u64(&self, addr: u64, v: u64) -> Result<(), MemError> {
        self.write_bytes(addr, &v.to_le_bytes())
    }

    /// Reads guest bytes; only for ranges known to be mapped readable.
    pub fn read_bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let p = self.host_ptr(addr, len as u64)?;
        // SAFETY: inside the reservation; the caller guarantees the range is mapped.
        Some(unsafe { std::slice::from_raw_parts(p, len) })
    }
}

/// Guest protections as host protections: the host never executes guest code, so PROT_EXEC
/// becomes PROT_READ (the decoder reads the code).
pub fn host_prot(prot: i32) -> i32 {
    let mut p = prot & (libc::PROT_READ | libc::PROT_WRITE);
    if prot & libc::PROT_EXEC != 0 {
        p |= libc::PROT_READ;
    }
    p
}

/// A whole file mapped read-only and private into Kiln's own address space (never the guest's):
/// how cache packs are read without copying.
pub struct MappedFile {
    ptr: *mut u8,
    len: usize,
    /// Bytes mapped from `ptr` in all: the file, then (`map_with_tail`) a gap and the tail.
    span: usize,
    /// Where the readable and writable tail lies from `ptr`, and its length.
    tail: Option<(usize, usize)>,
}

// SAFETY: the mapping is read-only and owned by this value; sharing `&[u8]` views is sound.
unsafe impl Send for MappedFile {}
// SAFETY: as above.
unsafe impl Sync for MappedFile {}

impl MappedFile {
    pub fn map(f: &std::fs::File) -> std::io::Result<MappedFile> {
        use std::os::fd::AsRawFd;
        let len = f.metadata()?.len() as usize;
        if len == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        // SAFETY: a new private read-only mapping of an open file; the kernel picks the address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                f.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(MappedFile {
            ptr: p as *mut u8,
            len,
            span: len,
            tail: None,
        })
    }

    /// Maps `f` (`len` bytes) as `map` does, at a multiple of the huge page size, with `tail_len`
    /// zeroed bytes, readable and writable, at `tail_at` from the file's start (past its
    /// end, a multiple of the host's page): a cache pack's entry marks, which its code reaches
    /// at a fixed distance.
    pub fn map_with_tail(
        f: &std::fs::File,
        len: usize,
        tail_at: usize,
        tail_len: usize,
    ) -> std::io::Result<MappedFile> {
        use std::os::fd::AsRawFd;
        if len == 0 || tail_at < len || !tail_at.is_multiple_of(host_page_size()) || tail_len == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
        }
        let span = tail_at + tail_len;
        let at = map_zeroed_aligned(span, HUGE_PAGE)? as *mut u8;
        // SAFETY: the file and the gap replace parts of the mapping just made (the tail stays
        // as made), which `MappedFile` owns from here on.
        unsafe {
            let fixed = libc::MAP_PRIVATE | libc::MAP_FIXED;
            let file = libc::mmap(at.cast(), len, libc::PROT_READ, fixed, f.as_raw_fd(), 0);
            let gap = len.next_multiple_of(host_page_size());
            let gone = libc::mprotect(at.add(gap).cast(), tail_at - gap, libc::PROT_NONE);
            if file == libc::MAP_FAILED || gone != 0 {
                let e = std::io::Error::last_os_error();
                libc::munmap(at.cast(), span);
                return Err(e);
            }
            Ok(MappedFile {
                ptr: at,
                len,
                span,
                tail: Some((tail_at, tail_len)),
            })
        }
    }

    /// The readable and writable tail (`map_with_tail`): its start and length.
    pub fn tail(&self) -> Option<(*mut u8, usize)> {
        // SAFETY: the tail lies inside the span this value maps.
        self.tail.map(|(at, len)| (unsafe { self.ptr.add(at) }, len))
    }

    /// Asks for the mapping in huge pages: pages the page cache does not hold yet are read in
    /// as 2 MiB folios, and the kernel maps those with one TLB entry each. For cache packs,
    /// whose compiled code runs where it lies: with 4 KiB pages a warm run pays a page fault and
    /// a TLB miss for nearly every page of code it enters.
    pub fn prefer_huge_pages(&self) {
        advise_huge_pages(self.ptr as usize, self.len);
    }

    /// Has the page cache hold `f`, a file just written and synced, in huge folios, so that
    /// the processes that map it later (`prefer_huge_pages`) map its pages with one TLB entry
    /// for each 2 MiB: a warm `cc1 -O2 lparser.i` ran 0.94x with every page of its pack mapped
    /// so against the same pack left by its writes mostly in smaller folios (61 of the 159 MB
    /// the run touched mapped huge). Maps the file as a run does and asks the kernel how much
    /// of it it mapped huge; where too little, drops the pages (clean once synced) and reads
    /// them back through that mapping, in huge folios where memory allows. A hint: where the
    /// kernel makes no huge pages, this only maps the file once.
    pub fn cache_in_huge_pages(f: &std::fs::File) {
        use std::os::fd::AsRawFd;
        let Ok(len) = f.metadata().map(|m| m.len() as usize) else {
            return;
        };
        let wanted = (len / HUGE_PAGE * HUGE_PAGE) as u64 * 9 / 10;
        if wanted == 0 {
            return;
        }
        for reread in [false, true] {
            if reread {
                // SAFETY: advice on an open file, none of whose pages this process maps now.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            }
            let Ok(map) = MappedFile::map(f) else { return };
            map.prefer_huge_pages();
            map.populate();
            match huge_mapped_bytes(map.ptr as usize) {
                Some(huge) if huge < wanted && transparent_huge_pages() => continue,
                _ => return,
            }
        }
    }

    /// Maps every page of the file in this process (reading it into the page cache).
    fn populate(&self) {
        // SAFETY: populating this process's own read-only mapping; no contents change.
        let done = unsafe { libc::madvise(self.ptr.cast(), self.len, libc::MADV_POPULATE_READ) } == 0;
        if !done {
            for page in self.bytes().iter().step_by(host_page_size()) {
                std::hint::black_box(*page);
            }
        }
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is our readable mapping for as long as self lives.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Replaces the file's pages, where they are, by private anonymous pages holding the same
    /// bytes (for code on a file system mounted noexec, which cannot be executed in place).
    pub fn copy_in_place(&mut self) -> std::io::Result<()> {
        let mut chunk = vec![0u8; HUGE_PAGE];
        for start in (0..self.len).step_by(HUGE_PAGE) {
            let n = HUGE_PAGE.min(self.len - start);
            chunk[..n].copy_from_slice(&self.bytes()[start..start + n]);
            // SAFETY: replaces pages of our own mapping (no view of them is held across the
            // replacement) by fresh anonymous ones, and writes the bytes saved back.
            unsafe {
                let at = self.ptr.add(start);
                let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED;
                let rw = libc::PROT_READ | libc::PROT_WRITE;
                if libc::mmap(at.cast(), n, rw, flags, -1, 0) == libc::MAP_FAILED {
                    return Err(std::io::Error::last_os_error());
                }
                std::ptr::copy_nonoverlapping(chunk.as_ptr(), at, n);
            }
        }
        Ok(())
    }

    /// Gives up ownership: the mapping stays for the rest of the process.
    pub fn leak(self) -> (*mut u8, usize) {
        let r = (self.ptr, self.len);
        std::mem::forget(self);
        r
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; no view of it outlives self.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.span) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every host address a guest access from a register part in reach can land at, with a
    /// 32-bit displacement and a page, is one a fault there is taken as the guest's at.
    #[test]
    fn accesses_in_reach_land_where_faults_are_the_guests() {
        let parts = [0, GUEST_SPACE - 1, SPACE_LIMIT - 1, u64::MAX, 1 << 63, (1u64 << 63) + 5];
        let steps = [0, REACH_STEP as i64, -(REACH_STEP as i64)];
        let disps = [i32::MIN as i64, -1, 0, i32::MAX as i64 + PAGE as i64];
        for part in parts {
            assert!(in_reach(part), "{part:#x}");
            for (step, disp) in steps.iter().flat_map(|s| disps.iter().map(move |d| (s, d))) {
                let host = part.wrapping_add(*step as u64).wrapping_add(*disp as u64);
                assert!(is_guest_fault(host), "{part:#x} {step:+} {disp:+}: {host:#x}");
            }
        }
        for host in [RESERVATION_END, 0x5555_5555_0000, TOP_HALF - 1] {
            assert!(!is_guest_fault(host), "{host:#x}");
        }
        assert!(!in_reach(SPACE_LIMIT) && !in_reach(i64::MAX as u64));
    }

    /// Rust code reaches a guest address at its own host address, or in the guard: never at a
    /// null pointer, nor beyond the reservation.
    #[test]
    fn rust_code_reaches_the_guest_space_at_its_own_addresses_and_the_rest_in_the_guard() {
        for a in [PAGE, 0x40_0000, GUEST_SPACE - 1] {
            assert_eq!(host(a) as u64, a);
        }
        for a in [0, 1, PAGE - 1, GUEST_SPACE, GUEST_SPACE + PAGE, u64::MAX, 1 << 63] {
            let h = host(a) as u64;
            assert!((GUEST_SPACE..GUEST_SPACE + 2 * PAGE).contains(&h), "{a:#x}: {h:#x}");
        }
    }

    /// A file written a page at a time lies in the page cache in small folios; where the
    /// kernel makes huge pages, `cache_in_huge_pages` leaves it in huge ones, as a mapping
    /// then shows, with its bytes as they were.
    #[test]
    fn a_file_written_in_small_pieces_is_cached_in_huge_pages() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pack");
        let mut f = std::fs::File::create(&path).unwrap();
        let page: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        for _ in 0..(8 * HUGE_PAGE / page.len()) {
            f.write_all(&page).unwrap();
        }
        f.sync_all().unwrap();
        let f = std::fs::File::open(&path).unwrap();
        MappedFile::cache_in_huge_pages(&f);
        let map = MappedFile::map(&f).unwrap();
        map.prefer_huge_pages();
        map.populate();
        let huge = huge_mapped_bytes(map.ptr as usize).expect("the kernel reports huge mappings");
        if transparent_huge_pages() {
            assert!(
                huge >= 7 * HUGE_PAGE as u64,
                "{huge} bytes mapped huge of {}",
                8 * HUGE_PAGE
            );
        }
        assert!(map.bytes().chunks(page.len()).all(|c| c == page));
    }
}
