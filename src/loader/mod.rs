//! ELF images and the initial process stack (argv, envp, auxv); `#!` scripts in `script.rs`.

pub mod script;

use crate::mem::{layout, page_down, page_up, MemError, Memory, PAGE};
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}: cannot read: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: not an ELF file")]
    NotElf(String),
    #[error("{0}: truncated or malformed ELF ({1})")]
    Malformed(String, String),
    #[error("{0}: not an x86-64 ELF (machine {1}); Kiln runs x86-64 Linux programs")]
    WrongMachine(String, u16),
    #[error("{0}: not a 64-bit little-endian ELF executable")]
    WrongClass(String),
    #[error("{0}: ELF type {1} is not an executable")]
    NotExecutable(String, u16),
    #[error("{0}: {1}")]
    Mem(String, MemError),
}

/// An executable file opened for loading, its bytes mapped read-only: reading its headers (and
/// hashing it, when the cache has no memo of it) touches only what it reads, and its segments are
/// mapped from `file`.
pub struct ImageFile {
    pub file: std::fs::File,
    map: Option<crate::mem::MappedFile>,
}

impl ImageFile {
    pub fn open(path: &str) -> Result<ImageFile, LoadError> {
        let file = std::fs::File::open(path).map_err(|e| LoadError::Io(path.to_string(), e))?;
        // An empty or unmappable file has no bytes: not an ELF file.
        let map = crate::mem::MappedFile::map(&file).ok();
        Ok(ImageFile { file, map })
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_ref().map_or(&[], |m| m.bytes())
    }
}

/// How far the ELF virtual address of file offset `off` lies from the offset itself: the
/// `p_vaddr - p_offset` of the loadable segment that holds it (0 where none does, or where
/// `data` is no 64-bit ELF). A mapping of the file at `start` from `off` has its load bias
/// (where virtual address 0 would lie) at `start - off - vaddr_delta_at(data, off)`.
pub fn vaddr_delta_at(data: &[u8], off: u64) -> u64 {
    let delta = || {
        let hdr = elf::FileHeader64::<Endianness>::parse(data).ok()?;
        let en = hdr.endian().ok()?;
        let loads = hdr.program_headers(en, data).ok()?;
        let ph = loads
            .iter()
            .find(|ph| ph.p_type(en) == elf::PT_LOAD && holds_offset(ph, en, off))?;
        Some(ph.p_vaddr(en).wrapping_sub(ph.p_offset(en)))
    };
    delta().unwrap_or(0)
}

/// Whether segment `ph` holds the byte at file offset `off`.
fn holds_offset(ph: &elf::ProgramHeader64<Endianness>, en: Endianness, off: u64) -> bool {
    ph.p_offset(en) <= off && off - ph.p_offset(en) < ph.p_filesz(en)
}

/// A loaded executable image.
pub struct Image {
    pub entry: u64,
    pub load_bias: u64,
    pub phdr: u64,
    pub phnum: u64,
    /// Lowest and highest guest address of the image.
    pub lo: u64,
    pub hi: u64,
    /// The program interpreter (PT_INTERP) it asks for.
    pub interp: Option<String>,
    /// Its executable segments: (virtual address, file offset, bytes in the file).
    pub code: Vec<(u64, u64, u64)>,
}

/// Maps an ELF image; position-independent images go at `dyn_base`. `data` is the file's
/// bytes; with the open `file`, segments are mapped from it as the kernel maps them (pages come
/// from the page cache as the guest touches them, shared with every other process) instead of
/// copied.
pub fn load_elf(
    path: &str,
    data: &[u8],
    file: Option<&std::fs::File>,
    mem: &mut Memory,
    dyn_base: u64,
) -> Result<Image, LoadError> {
    let p = || path.to_string();
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Err(LoadError::NotElf(p()));
    }
    if data.len() < 64 {
        return Err(LoadError::Malformed(p(), "file shorter than the ELF header".into()));
    }
    if data[4] != elf::ELFCLASS64 || data[5] != elf::ELFDATA2LSB {
        return Err(LoadError::WrongClass(p()));
    }
    let hdr = elf::FileHeader64::<Endianness>::parse(data).map_err(|e| LoadError::Malformed(p(), e.to_string()))?;
    let en = hdr.endian().map_err(|e| LoadError::Malformed(p(), e.to_string()))?;
    let machine = hdr.e_machine(en);
    if machine != elf::EM_X86_64 {
        return Err(LoadError::WrongMachine(p(), machine));
    }
    let etype = hdr.e_type(en);
    if etype != elf::ET_EXEC && etype != elf::ET_DYN {
        return Err(LoadError::NotExecutable(p(), etype));
    }
    let phdrs = hdr
        .program_headers(en, data)
        .map_err(|e| LoadError::Malformed(p(), e.to_string()))?;
    let mut interp = None;
    for ph in phdrs {
        if ph.p_type(en) == elf::PT_INTERP {
            let d = ph
                .data(en, data)
                .map_err(|_| LoadError::Malformed(p(), "PT_INTERP outside the file".into()))?;
            interp = Some(String::from_utf8_lossy(d).trim_end_matches('\0').to_string());
        }
    }
    let loads: Vec<_> = phdrs.iter().filter(|ph| ph.p_type(en) == elf::PT_LOAD).collect();
    if loads.is_empty() {
        return Err(LoadError::Malformed(p(), "no loadable segments".into()));
    }
    let bias = if etype == elf::ET_DYN { dyn_base } else { 0 };
    let mut lo = u64::MAX;
    let mut hi = 0u64;
    for ph in &loads {
        let va = ph.p_vaddr(en);
        let end = va
            .checked_add(ph.p_memsz(en))
            .ok_or_else(|| LoadError::Malformed(p(), "segment size overflows".into()))?;
        let off_end = ph.p_offset(en).checked_add(ph.p_filesz(en));
        if ph.p_filesz(en) > ph.p_memsz(en) || off_end.is_none_or(|e| e > data.len() as u64) {
            return Err(LoadError::Malformed(
                p(),
                "segment extends past the end of the file".into(),
            ));
        }
        lo = lo.min(va);
        hi = hi.max(end);
    }
    let (lo, hi) = (page_down(lo + bias), page_up(hi + bias));
    if hi > layout::MMAP_BOTTOM || lo < PAGE {
        return Err(LoadError::Malformed(
            p(),
            format!("segments at {lo:#x}..{hi:#x} are outside the supported range"),
        ));
    }
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    mem.map_anon(lo, hi - lo, rw).map_err(|e| LoadError::Mem(p(), e))?;
    let mut placed_to = 0;
    for ph in &loads {
        let bytes = ph
            .data(en, data)
            .map_err(|_| LoadError::Malformed(p(), "segment outside the file".into()))?;
        let va = ph.p_vaddr(en) + bias;
        // A segment whose first page an earlier one covers is copied into that page.
        let mappable = file.filter(|_| page_down(va) >= placed_to);
        let seg = Segment {
            va,
            offset: ph.p_offset(en),
            bytes,
            memsz: ph.p_memsz(en),
        };
        place(mem, &seg, mappable).map_err(|e| LoadError::Mem(p(), e))?;
        placed_to = placed_to.max(page_up(va + ph.p_memsz(en)));
    }
    // Protections: pages take the union of the segments that cover them.
    for ph in &loads {
        let s = page_down(ph.p_vaddr(en) + bias);
        let e = page_up(ph.p_vaddr(en) + bias + ph.p_memsz(en));
        let f = ph.p_flags(en);
        let mut prot = 0;
        if f & elf::PF_R != 0 {
            prot |= libc::PROT_READ;
        }
        if f & elf::PF_W != 0 {
            prot |= libc::PROT_WRITE;
        }
        if f & elf::PF_X != 0 {
            prot |= libc::PROT_EXEC;
        }
        if prot & libc::PROT_WRITE == 0 {
            // Keep pages shared with a writable segment writable.
            let shared = loads.iter().any(|o| {
                o.p_flags(en) & elf::PF_W != 0
                    && page_down(o.p_vaddr(en) + bias) < e
                    && page_up(o.p_vaddr(en) + bias + o.p_memsz(en)) > s
            });
            if shared {
                continue;
            }
        }
        mem.protect(s, e - s, prot)
            .map_err(|e2| LoadError::Mem(p(), MemError::Map(s, e - s, e2)))?;
    }
    if file.is_some() {
        mark_pristine_code(mem, &loads, en, bias);
    }
    let phoff = hdr.e_phoff(en);
    let phdr = loads
        .iter()
        .find(|ph| holds_offset(ph, en, phoff))
        .map(|ph| ph.p_vaddr(en) + (phoff - ph.p_offset(en)) + bias)
        .unwrap_or(0);
    let code = loads
        .iter()
        .filter(|ph| ph.p_flags(en) & elf::PF_X != 0)
        .map(|ph| (ph.p_vaddr(en), ph.p_offset(en), ph.p_filesz(en)))
        .collect();
    Ok(Image {
        interp,
        code,
        entry: hdr.e_entry(en) + bias,
        load_bias: bias,
        phdr,
        phnum: hdr.e_phnum(en) as u64,
        lo,
        hi,
    })
}

/// One PT_LOAD segment: where it goes, where its bytes are in the file, and how long it is in
/// memory (the rest, past its bytes, is zero: the bss).
struct Segment<'a> {
    va: u64,
    offset: u64,
    bytes: &'a [u8],
    memsz: u64,
}

/// Code mapped straight from the file, with no other segment on its pages and nothing written
/// there, holds the file's bytes: its translations need no check of their bytes
/// (`mem::watch::pristine`).
fn mark_pristine_code(mem: &Memory, loads: &[&elf::ProgramHeader64<Endianness>], en: Endianness, bias: u64) {
    for ph in loads {
        let (va, off, filesz) = (ph.p_vaddr(en) + bias, ph.p_offset(en), ph.p_filesz(en));
        let (s, e) = (page_down(va), page_up(va + filesz));
        let alone = loads.iter().all(|o| {
            std::ptr::eq(*o, *ph)
                || page_down(o.p_vaddr(en) + bias) >= e
                || page_up(o.p_vaddr(en) + bias + o.p_memsz(en)) <= s
        });
        let flags = ph.p_flags(en);
        let code = flags & elf::PF_X != 0 && flags & elf::PF_W == 0;
        if code && alone && filesz > 0 && ph.p_memsz(en) == filesz && va % PAGE == off % PAGE {
            mem.set_pristine(s, e - s);
        }
    }
}

/// Puts a segment's bytes in place over the image's zeroed, writable span: mapped privately
/// from the file where its address and offset agree within a page (as the kernel maps it,
/// zeroing the rest of the last file page when a bss follows), else copied.
fn place(mem: &Memory, seg: &Segment, file: Option<&std::fs::File>) -> Result<(), MemError> {
    use std::os::fd::AsRawFd;
    let filesz = seg.bytes.len() as u64;
    let Some(f) = file.filter(|_| seg.va % PAGE == seg.offset % PAGE && filesz > 0) else {
        // Copied into a page an earlier segment may have mapped from the file: the bss that
        // shares the page with the bytes is zeroed too (the pages after it are fresh).
        mem.write_bytes(seg.va, seg.bytes)?;
        let bss_end = (seg.va + seg.memsz).min(page_up(seg.va + filesz));
        let tail = bss_end.saturating_sub(seg.va + filesz);
        return mem.write_bytes(seg.va + filesz, &vec![0; tail as usize]);
    };
    let (start, end) = (page_down(seg.va), page_up(seg.va + filesz));
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    mem.map_fixed(
        start,
        end - start,
        rw,
        libc::MAP_PRIVATE,
        f.as_raw_fd(),
        page_down(seg.offset) as i64,
    )?;
    if seg.memsz > filesz {
        mem.write_bytes(seg.va + filesz, &vec![0; (end - seg.va - filesz) as usize])?;
    }
    Ok(())
}

/// Auxiliary vector keys.
mod at {
    pub const NULL: u64 = 0;
    pub const PHDR: u64 = 3;
    pub const PHENT: u64 = 4;
    pub const PHNUM: u64 = 5;
    pub const PAGESZ: u64 = 6;
    pub const BASE: u64 = 7;
    pub const FLAGS: u64 = 8;
    pub const ENTRY: u64 = 9;
    pub const UID: u64 = 11;
    pub const EUID: u64 = 12;
    pub const GID: u64 = 13;
    pub const EGID: u64 = 14;
    pub const PLATFORM: u64 = 15;
    pub const HWCAP: u64 = 16;
    pub const CLKTCK: u64 = 17;
    pub const SECURE: u64 = 23;
    pub const RANDOM: u64 = 25;
    pub const HWCAP2: u64 = 26;
    pub const EXECFN: u64 = 31;
}

/// Everything the initial stack describes besides argv and envp.
pub struct StackInfo<'a> {
    pub execfn: &'a [u8],
    pub hwcap: u64,
    /// Load bias of the interpreter (AT_BASE), 0 without one.
    pub interp_base: u64,
}

/// Builds the initial stack; returns the stack pointer and the auxiliary vector's bytes.
pub fn build_stack(
    mem: &mut Memory,
    img: &Image,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    info: &StackInfo,
) -> Result<(u64, Vec<u8>), MemError> {
    let top = layout::STACK_TOP;
    let bottom = top - layout::STACK_SIZE;
    mem.map_anon(bottom, layout::STACK_SIZE, libc::PROT_READ | libc::PROT_WRITE)?;
    let mut sp = top;
    let push_bytes = |mem: &Memory, b: &[u8], sp: &mut u64| -> Result<u64, MemError> {
        *sp -= b.len() as u64 + 1;
        mem.write_bytes(*sp, b)?;
        mem.write_bytes(*sp + b.len() as u64, &[0])?;
        Ok(*sp)
    };
    let execfn_addr = push_bytes(mem, info.execfn, &mut sp)?;
    let mut env_addrs = Vec::new();
    for e in envp {
        env_addrs.push(push_bytes(mem, e, &mut sp)?);
    }
    let mut arg_addrs = Vec::new();
    for a in argv {
        arg_addrs.push(push_bytes(mem, a, &mut sp)?);
    }
    let platform = push_bytes(mem, b"x86_64", &mut sp)?;
    sp &= !15;
    sp -= 16;
    let random = sp;
    let mut rnd = [0u8; 16];
    // The kernel fills AT_RANDOM from its own pool; if ours fails, zeros still form a valid vector.
    let _ = rustix::rand::getrandom(&mut rnd, rustix::rand::GetRandomFlags::empty());
    mem.write_bytes(random, &rnd)?;
    use rustix::process::{getegid, geteuid, getgid, getuid};
    let (uid, euid, gid, egid) = (
        getuid().as_raw(),
        geteuid().as_raw(),
        getgid().as_raw(),
        getegid().as_raw(),
    );
    let aux: Vec<(u64, u64)> = vec![
        (at::PHDR, img.phdr),
        (at::PHENT, 56),
        (at::PHNUM, img.phnum),
        (at::PAGESZ, PAGE),
        (at::BASE, info.interp_base),
        (at::FLAGS, 0),
        (at::ENTRY, img.entry),
        (at::UID, uid as u64),
        (at::EUID, euid as u64),
        (at::GID, gid as u64),
        (at::EGID, egid as u64),
        (at::PLATFORM, platform),
        (at::HWCAP, info.hwcap),
        (at::CLKTCK, 100),
        (at::SECURE, 0),
        (at::RANDOM, random),
        (at::HWCAP2, 0),
        (at::EXECFN, execfn_addr),
        (at::NULL, 0),
    ];
    let words = 1 + arg_addrs.len() + 1 + env_addrs.len() + 1 + aux.len() * 2;
    sp -= (words as u64) * 8;
    sp &= !15;
    let mut w = sp;
    let mut put = |v: u64| -> Result<(), MemError> {
        mem.write_u64(w, v)?;
        w += 8;
        Ok(())
    };
    put(arg_addrs.len() as u64)?;
    for a in &arg_addrs {
        put(*a)?;
    }
    put(0)?;
    for e in &env_addrs {
        put(*e)?;
    }
    put(0)?;
    let mut auxv = Vec::with_capacity(aux.len() * 16);
    for (k, v) in aux {
        put(k)?;
        put(v)?;
        auxv.extend_from_slice(&k.to_le_bytes());
        auxv.extend_from_slice(&v.to_le_bytes());
    }
    Ok((sp, auxv))
}
