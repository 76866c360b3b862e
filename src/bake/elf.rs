//! What an ELF file says about its code, read without running anything: its loadable
//! segments, the libraries and interpreter it asks for, and the addresses it names as code
//! (`Seeds`): the entry point, function symbols, `.eh_frame` function starts, PLT entries,
//! init and fini code, and the code addresses its data holds (relocations of a
//! position-independent file; pointers in a fixed one's writable data).

use gimli::UnwindSection;
use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader, Rela, SectionHeader, Sym};
use object::Endianness;
use std::collections::{BTreeMap, BTreeSet};

/// A loadable segment: `filesz` bytes at file `offset` lie at virtual address `vaddr`.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub exec: bool,
}

/// Code addresses (virtual) a file names, by where they were found.
#[derive(Default, Debug)]
pub struct Seeds {
    /// The entry point, `.init`/`.fini`, DT_INIT/DT_FINI and the init and fini arrays.
    pub entries: BTreeSet<u64>,
    /// Function symbols (`.symtab` and `.dynsym`) and `.eh_frame` function starts.
    pub functions: BTreeSet<u64>,
    /// The functions `.eh_frame` describes: start to end (exclusive).
    pub ranges: BTreeMap<u64, u64>,
    /// PLT entries.
    pub plt: BTreeSet<u64>,
    /// Code addresses held in data: relocated pointers, or pointers in a fixed file's data.
    pub pointers: BTreeSet<u64>,
}

impl Seeds {
    pub fn all(&self) -> impl Iterator<Item = u64> + '_ {
        (self.entries.iter())
            .chain(&self.functions)
            .chain(&self.plt)
            .chain(&self.pointers)
            .copied()
    }
}

/// An x86-64 ELF file's facts.
#[derive(Debug)]
pub struct ElfFacts {
    /// `ET_EXEC`: loaded at its own addresses in every process.
    pub fixed: bool,
    pub segments: Vec<Segment>,
    pub interp: Option<String>,
    /// DT_NEEDED, in order.
    pub needed: Vec<String>,
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    pub seeds: Seeds,
}

type Header = elf::FileHeader64<Endianness>;
type Sections<'a> = object::read::elf::SectionTable<'a, Header>;

impl ElfFacts {
    /// Reads the facts of an x86-64 ELF file (an executable or a shared object); a one-line
    /// reason when it is not one.
    pub fn parse(data: &[u8]) -> Result<ElfFacts, String> {
        let hdr = Header::parse(data).map_err(|_| "not a 64-bit ELF file".to_string())?;
        let en = hdr.endian().map_err(|e| e.to_string())?;
        if hdr.e_machine(en) != elf::EM_X86_64 {
            return Err(format!("not an x86-64 ELF (machine {})", hdr.e_machine(en)));
        }
        let kind = hdr.e_type(en);
        if kind != elf::ET_EXEC && kind != elf::ET_DYN {
            return Err(format!("ELF type {kind} is neither an executable nor a shared object"));
        }
        let phdrs = hdr.program_headers(en, data).map_err(|e| e.to_string())?;
        let segments: Vec<Segment> = (phdrs.iter())
            .filter(|ph| ph.p_type(en) == elf::PT_LOAD)
            .map(|ph| Segment {
                vaddr: ph.p_vaddr(en),
                offset: ph.p_offset(en),
                filesz: ph.p_filesz(en),
                exec: ph.p_flags(en) & elf::PF_X != 0,
            })
            .collect();
        let interp = (phdrs.iter())
            .find_map(|ph| ph.interpreter(en, data).ok().flatten())
            .map(|b| String::from_utf8_lossy(b).into_owned());
        let sections = hdr.sections(en, data).map_err(|e| e.to_string())?;
        let mut facts = ElfFacts {
            fixed: kind == elf::ET_EXEC,
            segments,
            interp,
            needed: Vec::new(),
            rpath: Vec::new(),
            runpath: Vec::new(),
            seeds: Seeds::default(),
        };
        let entry = hdr.e_entry(en);
        facts.add_entry(entry);
        facts.read_dynamic(&sections, en, data);
        facts.read_sections(&sections, en, data);
        facts.read_symbols(&sections, en, data);
        facts.read_relocations(&sections, en, data);
        if facts.fixed {
            facts.read_data_pointers(&sections, en, data);
        }
        Ok(facts)
    }

    /// Whether virtual address `a` lies in an executable segment's file bytes.
    pub fn is_code(&self, a: u64) -> bool {
        self.segments
            .iter()
            .any(|s| s.exec && a.wrapping_sub(s.vaddr) < s.filesz)
    }

    /// The executable segments as (virtual address, file offset, length).
    pub fn code_ranges(&self) -> Vec<(u64, u64, u64)> {
        (self.segments.iter())
            .filter(|s| s.exec)
            .map(|s| (s.vaddr, s.offset, s.filesz))
            .collect()
    }

    /// The file's `len` bytes at virtual address `a`, where one segment holds them all.
    pub fn bytes_at<'d>(&self, data: &'d [u8], a: u64, len: u64) -> Option<&'d [u8]> {
        let s = self.segments.iter().find(|s| a.wrapping_sub(s.vaddr) < s.filesz)?;
        let rel = a - s.vaddr;
        if len > s.filesz - rel {
            return None;
        }
        let from = usize::try_from(s.offset + rel).ok()?;
        data.get(from..from.checked_add(usize::try_from(len).ok()?)?)
    }

    /// The function `.eh_frame` says holds virtual address `a`: its start and end.
    pub fn function_at(&self, a: u64) -> Option<(u64, u64)> {
        let (&start, &end) = self.seeds.ranges.range(..=a).next_back()?;
        (a < end).then_some((start, end))
    }

    /// The little-endian word of `N` bytes at virtual address `a`.
    pub fn word<const N: usize>(&self, data: &[u8], a: u64) -> Option<[u8; N]> {
        self.bytes_at(data, a, N as u64)?.try_into().ok()
    }

    fn add_entry(&mut self, a: u64) {
        if self.is_code(a) {
            self.seeds.entries.insert(a);
        }
    }

    /// DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_INIT and DT_FINI.
    fn read_dynamic(&mut self, sections: &Sections, en: Endianness, data: &[u8]) {
        let Ok(Some((dynamic, strtab))) = sections.dynamic(en, data) else {
            return;
        };
        let Ok(strings) = sections.strings(en, data, strtab) else {
            return;
        };
        let string = |d: &elf::Dyn64<Endianness>| {
            let s = d.string(en, strings).ok()?;
            Some(String::from_utf8_lossy(s).into_owned())
        };
        let paths = |s: String| {
            s.split(':')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        for d in dynamic {
            match d.tag32(en) {
                Some(elf::DT_NEEDED) => self.needed.extend(string(d)),
                Some(elf::DT_RPATH) => self.rpath.extend(string(d).map(paths).unwrap_or_default()),
                Some(elf::DT_RUNPATH) => self.runpath.extend(string(d).map(paths).unwrap_or_default()),
                Some(elf::DT_INIT | elf::DT_FINI) => self.add_entry(d.d_val(en)),
                _ => {}
            }
        }
    }

    /// `.init`, `.fini`, PLT entries, `.eh_frame` function starts, and (in a fixed file) the
    /// init and fini arrays.
    fn read_sections(&mut self, sections: &Sections, en: Endianness, data: &[u8]) {
        for s in sections.iter() {
            let name = sections.section_name(en, s).unwrap_or_default();
            let (addr, size) = (s.sh_addr(en), s.sh_size(en));
            match name {
                b".init" | b".fini" => self.add_entry(addr),
                _ if name.starts_with(b".plt") => {
                    let step = match s.sh_entsize(en) {
                        0 => 16,
                        n => n,
                    };
                    let entries: Vec<u64> = (0..size / step).map(|i| addr + i * step).collect();
                    let code: Vec<u64> = entries.into_iter().filter(|&a| self.is_code(a)).collect();
                    self.seeds.plt.extend(code);
                }
                // Lazy binding: each slot holds its PLT entry's second half until bound.
                b".got.plt" | b".got" => {
                    if let Ok(bytes) = s.data(en, data) {
                        self.add_pointers_in(bytes, addr);
                    }
                }
                b".eh_frame" => {
                    if let Ok(bytes) = s.data(en, data) {
                        self.read_eh_frame(bytes, addr);
                    }
                }
                _ => {}
            }
            let array = matches!(
                s.sh_type(en),
                elf::SHT_INIT_ARRAY | elf::SHT_FINI_ARRAY | elf::SHT_PREINIT_ARRAY
            );
            if array && self.fixed {
                let words: Vec<[u8; 8]> = (0..size / 8).filter_map(|i| self.word(data, addr + 8 * i)).collect();
                for w in words {
                    self.add_entry(u64::from_le_bytes(w));
                }
            }
        }
    }

    /// The start of every function `.eh_frame` (at virtual address `addr`) describes.
    fn read_eh_frame(&mut self, bytes: &[u8], addr: u64) {
        let frame = gimli::EhFrame::new(bytes, gimli::LittleEndian);
        let bases = gimli::BaseAddresses::default().set_eh_frame(addr);
        let mut entries = frame.entries(&bases);
        while let Ok(Some(entry)) = entries.next() {
            let gimli::CieOrFde::Fde(partial) = entry else {
                continue;
            };
            if let Ok(fde) = partial.parse(|frame, bases, o| frame.cie_from_offset(bases, o)) {
                let start = fde.initial_address();
                if self.is_code(start) {
                    self.seeds.functions.insert(start);
                    self.seeds.ranges.insert(start, start.wrapping_add(fde.len()));
                }
            }
        }
    }

    /// Defined function symbols of `.symtab` and `.dynsym` (and indirect functions' resolvers).
    fn read_symbols(&mut self, sections: &Sections, en: Endianness, data: &[u8]) {
        for kind in [elf::SHT_SYMTAB, elf::SHT_DYNSYM] {
            let Ok(table) = sections.symbols(en, data, kind) else {
                continue;
            };
            for sym in table.iter() {
                let func = matches!(sym.st_type(), elf::STT_FUNC | elf::STT_GNU_IFUNC);
                let a = sym.st_value(en);
                if func && sym.st_shndx(en) != elf::SHN_UNDEF && self.is_code(a) {
                    self.seeds.functions.insert(a);
                }
            }
        }
    }

    /// Code addresses that relocations put in data: `R_X86_64_RELATIVE` and `IRELATIVE`
    /// addends (a position-independent file's init arrays, function pointers, vtables and
    /// computed-goto tables).
    fn read_relocations(&mut self, sections: &Sections, en: Endianness, data: &[u8]) {
        for s in sections.iter() {
            let Ok(Some((relas, _))) = s.rela(en, data) else {
                continue;
            };
            for r in relas {
                let relative = matches!(r.r_type(en, false), elf::R_X86_64_RELATIVE | elf::R_X86_64_IRELATIVE);
                let a = r.r_addend(en) as u64;
                if relative && self.is_code(a) {
                    self.seeds.pointers.insert(a);
                }
            }
        }
    }

    /// In a fixed file, whose pointers are not relocated: every aligned word of its writable
    /// data that holds a code address.
    fn read_data_pointers(&mut self, sections: &Sections, en: Endianness, data: &[u8]) {
        for s in sections.iter() {
            let flags = s.sh_flags(en);
            let alloc_write = u64::from(elf::SHF_ALLOC | elf::SHF_WRITE);
            if flags & alloc_write != alloc_write || s.sh_type(en) == elf::SHT_NOBITS {
                continue;
            }
            if let Ok(bytes) = s.data(en, data) {
                self.add_pointers_in(bytes, s.sh_addr(en));
            }
        }
    }

    /// The code addresses among the aligned words of `bytes` (at virtual address `start`).
    fn add_pointers_in(&mut self, bytes: &[u8], start: u64) {
        let skip = (start.wrapping_neg() & 7) as usize;
        for w in bytes.get(skip..).unwrap_or_default().chunks_exact(8) {
            let a = u64::from_le_bytes(w.try_into().unwrap_or_default());
            if self.is_code(a) {
                self.seeds.pointers.insert(a);
            }
        }
    }
}
