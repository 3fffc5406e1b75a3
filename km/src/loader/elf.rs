//! Reading an x86-64 ELF executable (ET_EXEC, or ET_DYN: static-pie, or a
//! PIE with its interpreter) and mapping its PT_LOAD segments the way
//! Linux's binfmt_elf does: file pages mapped privately, the rest of the
//! last file page zeroed, anonymous pages for what remains of the bss.
//! A dynamically linked program names its interpreter (PT_INTERP), which
//! is loaded the same way in the mmap area and started instead.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use object::elf::{self, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader};
use object::LittleEndian as LE;

use crate::guest::layout::{page_down, page_up, PAGE_SIZE, PAYLOAD_END, PIE_BASE, WINDOW_START};
use crate::mem::{copy, AddressSpace, GuestRange};

/// Indexes into e_ident.
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an ELF executable")]
    NotElf,
    #[error("32-bit ELF; km runs 64-bit x86-64 programs only")]
    Class32,
    #[error("big-endian ELF; km runs x86-64 programs only")]
    BigEndian,
    #[error("ELF for another architecture (e_machine {0}); km runs x86-64 programs only")]
    Arch(u16),
    #[error("not an executable (ELF type {0})")]
    NotExecutable(u16),
    #[error("malformed PT_INTERP (the interpreter's path)")]
    BadInterpreter,
    #[error("the interpreter {0} asks for an interpreter itself")]
    NestedInterpreter(PathBuf),
    #[error("malformed ELF: {0}")]
    Malformed(String),
    #[error("truncated: segment {0} extends past the end of the file")]
    Truncated(usize),
    #[error("segments {0} and {1} overlap")]
    Overlap(usize, usize),
    #[error("segment {0} does not fit in the guest's address space ({1:#x}..{2:#x})")]
    OutOfRange(usize, u64, u64),
    #[error("segment {0}: file offset and address differ modulo the page size")]
    Misaligned(usize),
    #[error("no loadable segments")]
    NoSegments,
    #[error("cannot map segment {0}: {1}")]
    Map(usize, nix::errno::Errno),
}

/// One PT_LOAD segment, relocated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub index: usize,
    pub vaddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub memsz: u64,
    /// PROT_* bits.
    pub prot: i32,
}

/// What exec needs to know about an executable before mapping it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub entry: u64,
    /// Where the program headers are in memory (AT_PHDR).
    pub phdr: u64,
    pub phnum: u64,
    pub phent: u64,
    pub segments: Vec<Segment>,
    /// PT_GNU_STACK asks for an executable stack (e.g. GCC's trampolines
    /// for nested functions), which Linux then grants.
    pub exec_stack: bool,
    /// The dynamic linker a dynamically linked program names (PT_INTERP).
    pub interp: Option<PathBuf>,
    /// ET_DYN: position-independent, placed by `place`.
    pub relocatable: bool,
    /// What `place` added to the link-time addresses (AT_BASE for an
    /// interpreter).
    pub bias: u64,
}

impl Image {
    /// First address past the last segment: where brk starts.
    pub fn end(&self) -> u64 {
        self.segments.iter().map(|s| s.vaddr + s.memsz).max().unwrap_or(0)
    }

    /// Bytes from the first segment's page to the end of the last one.
    pub fn span(&self) -> u64 {
        let start = page_down(self.segments[0].vaddr);
        page_up(self.end()).map_or(u64::MAX, |end| end.wrapping_sub(start))
    }

    /// Relocates an ET_DYN image so its lowest page is at `base` (ET_EXEC
    /// stays where it was linked) and checks it fits in payload memory.
    pub fn place(mut self, base: u64) -> Result<Image, LoadError> {
        let bias = if self.relocatable { base.wrapping_sub(page_down(self.segments[0].vaddr)) } else { 0 };
        for s in &mut self.segments {
            s.vaddr = s.vaddr.wrapping_add(bias);
            let end = s.vaddr.checked_add(s.memsz).and_then(page_up);
            if s.vaddr < WINDOW_START || end.is_none_or(|e| e > PAYLOAD_END) {
                return Err(LoadError::OutOfRange(s.index, WINDOW_START, PAYLOAD_END));
            }
        }
        if self.phdr != 0 {
            self.phdr = self.phdr.wrapping_add(bias);
        }
        self.entry = self.entry.wrapping_add(bias);
        self.bias = bias;
        Ok(self)
    }
}

/// Validates `data` (the start of the file, at least through the program
/// headers) of a file of `file_len` bytes; addresses are as linked.
pub fn parse(data: &[u8], file_len: u64) -> Result<Image, LoadError> {
    if data.len() < 16 || &data[..4] != b"\x7fELF" {
        return Err(LoadError::NotElf);
    }
    match elf::FileClass(data[EI_CLASS]) {
        elf::ELFCLASS64 => {}
        elf::ELFCLASS32 => return Err(LoadError::Class32),
        c => return Err(LoadError::Malformed(format!("unknown ELF class {}", c.0))),
    }
    if elf::DataEncoding(data[EI_DATA]) != elf::ELFDATA2LSB {
        return Err(LoadError::BigEndian);
    }
    let hdr = FileHeader64::<LE>::parse(data).map_err(|e| LoadError::Malformed(e.to_string()))?;
    let machine = hdr.e_machine(LE);
    if machine != elf::EM_X86_64 {
        return Err(LoadError::Arch(machine.0));
    }
    let kind = hdr.e_type(LE);
    if kind != elf::ET_EXEC && kind != elf::ET_DYN {
        return Err(LoadError::NotExecutable(kind.0));
    }
    if usize::from(hdr.e_phentsize(LE)) != std::mem::size_of::<elf::ProgramHeader64<LE>>() {
        return Err(LoadError::Malformed("unexpected program header size".into()));
    }
    let phdrs = hdr.program_headers(LE, data).map_err(|e| LoadError::Malformed(e.to_string()))?;
    let phoff = hdr.e_phoff(LE);

    let mut segments = Vec::new();
    let mut phdr_vaddr = None;
    let mut exec_stack = false;
    let mut interp = None;
    for (index, ph) in phdrs.iter().enumerate() {
        match ph.p_type(LE) {
            elf::PT_INTERP => {
                // A path ending in its only NUL, as binfmt_elf requires.
                let bytes = ph.data(LE, data).map_err(|_| LoadError::BadInterpreter)?;
                match bytes.split_last() {
                    Some((0, path)) if !path.is_empty() && !path.contains(&0) => {
                        interp = Some(PathBuf::from(OsStr::from_bytes(path)));
                    }
                    _ => return Err(LoadError::BadInterpreter),
                }
            }
            elf::PT_PHDR => phdr_vaddr = Some(ph.p_vaddr(LE)),
            elf::PT_GNU_STACK => exec_stack = ph.p_flags(LE).0 & elf::PF_X.0 != 0,
            elf::PT_LOAD => {
                let s = Segment {
                    index,
                    vaddr: ph.p_vaddr(LE),
                    offset: ph.p_offset(LE),
                    filesz: ph.p_filesz(LE),
                    memsz: ph.p_memsz(LE),
                    prot: prot(ph.p_flags(LE).0),
                };
                if s.filesz > s.memsz {
                    return Err(LoadError::Malformed(format!("segment {index}: file size exceeds memory size")));
                }
                if s.offset.checked_add(s.filesz).is_none_or(|end| end > file_len) {
                    return Err(LoadError::Truncated(index));
                }
                if s.vaddr % PAGE_SIZE != s.offset % PAGE_SIZE {
                    return Err(LoadError::Misaligned(index));
                }
                segments.push(s);
            }
            _ => {}
        }
    }
    if segments.is_empty() {
        return Err(LoadError::NoSegments);
    }
    segments.sort_by_key(|s| s.vaddr);
    for w in segments.windows(2) {
        if w[0].vaddr.saturating_add(w[0].memsz) > w[1].vaddr {
            return Err(LoadError::Overlap(w[0].index, w[1].index));
        }
    }
    // AT_PHDR: PT_PHDR if present, else the loaded bytes holding e_phoff.
    let phdr = match phdr_vaddr {
        Some(v) => v,
        None => segments
            .iter()
            .find(|s| s.offset <= phoff && phoff < s.offset + s.filesz)
            .map(|s| s.vaddr + (phoff - s.offset))
            .unwrap_or(0),
    };
    Ok(Image {
        entry: hdr.e_entry(LE),
        phdr,
        phnum: phdrs.len() as u64,
        phent: u64::from(hdr.e_phentsize(LE)),
        segments,
        exec_stack,
        interp,
        relocatable: kind == elf::ET_DYN,
        bias: 0,
    })
}

fn prot(flags: u32) -> i32 {
    let mut p = 0;
    if flags & elf::PF_R.0 != 0 {
        p |= libc::PROT_READ;
    }
    if flags & elf::PF_W.0 != 0 {
        p |= libc::PROT_WRITE;
    }
    if flags & elf::PF_X.0 != 0 {
        p |= libc::PROT_EXEC;
    }
    p
}

/// Opens `path`, validates it and maps its segments into `space`, an
/// ET_DYN program with its lowest page at PIE_BASE.
pub fn load(path: &Path, space: &mut AddressSpace) -> Result<Image, LoadError> {
    let (file, image) = read(path)?;
    let image = image.place(PIE_BASE)?;
    map(&file, &image, space)?;
    Ok(image)
}

/// Loads the interpreter a program named, as Linux's load_elf_interp:
/// an ET_DYN one goes where the mmap area has room for all of it.
pub fn load_interp(path: &Path, space: &mut AddressSpace) -> Result<Image, LoadError> {
    let (file, image) = read(path)?;
    if image.interp.is_some() {
        return Err(LoadError::NestedInterpreter(path.to_path_buf()));
    }
    let image = if image.relocatable {
        // A PROT_NONE reservation of the whole span, which the segments
        // then replace; the holes between them are given back below.
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        let base = space.mmap(0, image.span(), libc::PROT_NONE, flags, -1, 0).map_err(|e| LoadError::Map(0, e))?;
        image.place(base)?
    } else {
        image.place(0)?
    };
    map(&file, &image, space)?;
    for w in image.segments.windows(2) {
        let (hole, next) = (page_up(w[0].vaddr + w[0].memsz).expect("placed"), page_down(w[1].vaddr));
        if next > hole {
            space.munmap(hole, next - hole).map_err(|e| LoadError::Map(w[1].index, e))?;
        }
    }
    Ok(image)
}

/// Opens and validates `path` without loading it (execve checks its
/// target before anything of the caller is replaced).
pub fn inspect(path: &Path) -> Result<Image, LoadError> {
    read(path).map(|(_, image)| image)
}

/// Opens and validates `path`; addresses are as linked.
fn read(path: &Path) -> Result<(File, Image), LoadError> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    // The headers: the first page, or more if the program headers lie beyond.
    let mut head = vec![0u8; file_len.min(PAGE_SIZE) as usize];
    file.read_exact_at(&mut head, 0)?;
    if head.len() >= 64 && &head[..4] == b"\x7fELF" && elf::FileClass(head[EI_CLASS]) == elf::ELFCLASS64 {
        let phoff = u64::from_le_bytes(head[32..40].try_into().expect("8 bytes"));
        let phnum = u64::from(u16::from_le_bytes([head[56], head[57]]));
        let want = phoff.saturating_add(phnum * 56).min(file_len);
        if want > head.len() as u64 {
            head.resize(want as usize, 0);
            file.read_exact_at(&mut head, 0)?;
        }
    }
    let image = parse(&head, file_len)?;
    Ok((file, image))
}

fn map(file: &File, image: &Image, space: &mut AddressSpace) -> Result<(), LoadError> {
    for s in &image.segments {
        map_segment(file, s, space).map_err(|e| LoadError::Map(s.index, e))?;
    }
    Ok(())
}

fn map_segment(file: &File, s: &Segment, space: &mut AddressSpace) -> Result<(), nix::errno::Errno> {
    let start = page_down(s.vaddr);
    let file_end = s.vaddr + s.filesz;
    let file_pages_end = page_up(file_end).expect("checked in parse");
    let mem_end = page_up(s.vaddr + s.memsz).expect("checked in parse");
    let has_bss = s.memsz > s.filesz;
    if s.filesz > 0 {
        // Writable while the tail of the last file page is cleared.
        let prot = if has_bss { s.prot | libc::PROT_WRITE } else { s.prot };
        let off = page_down(s.offset) as i64;
        space.map_fixed(start, file_pages_end - start, prot, libc::MAP_PRIVATE, file.as_raw_fd(), off)?;
        if has_bss && file_pages_end > file_end {
            let zeros = vec![0u8; (file_pages_end - file_end) as usize];
            copy::write_bytes(GuestRange::new(file_end, zeros.len() as u64)?, &zeros)?;
        }
        if prot != s.prot {
            space.mprotect(start, file_pages_end - start, s.prot)?;
        }
    }
    let anon_start = if s.filesz > 0 { file_pages_end } else { start };
    if mem_end > anon_start {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        space.map_fixed(anon_start, mem_end - anon_start, s.prot, flags, -1, 0)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header plus program headers.
    fn elf(kind: u16, machine: u16, phdrs: &[(u32, u32, u64, u64, u64, u64)]) -> Vec<u8> {
        let mut d = vec![0u8; 64];
        d[..4].copy_from_slice(b"\x7fELF");
        d[4] = 2; // 64-bit
        d[5] = 1; // little-endian
        d[6] = 1; // version
        d[16..18].copy_from_slice(&kind.to_le_bytes());
        d[18..20].copy_from_slice(&machine.to_le_bytes());
        d[20..24].copy_from_slice(&1u32.to_le_bytes());
        d[24..32].copy_from_slice(&0x401000u64.to_le_bytes()); // entry
        d[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        d[52..54].copy_from_slice(&64u16.to_le_bytes()); // ehsize
        d[54..56].copy_from_slice(&56u16.to_le_bytes()); // phentsize
        d[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for &(ty, flags, off, vaddr, filesz, memsz) in phdrs {
            let mut p = vec![0u8; 56];
            p[0..4].copy_from_slice(&ty.to_le_bytes());
            p[4..8].copy_from_slice(&flags.to_le_bytes());
            p[8..16].copy_from_slice(&off.to_le_bytes());
            p[16..24].copy_from_slice(&vaddr.to_le_bytes());
            p[24..32].copy_from_slice(&vaddr.to_le_bytes());
            p[32..40].copy_from_slice(&filesz.to_le_bytes());
            p[40..48].copy_from_slice(&memsz.to_le_bytes());
            p[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
            d.extend_from_slice(&p);
        }
        d
    }

    const LOAD: u32 = 1;
    const RX: u32 = 5;
    const RW: u32 = 6;

    #[test]
    fn static_exec() {
        let d = elf(2, 62, &[(LOAD, RX, 0, 0x400000, 0x2000, 0x2000), (LOAD, RW, 0x2000, 0x402000, 0x100, 0x5000)]);
        let img = parse(&d, 0x3000).unwrap().place(PIE_BASE).unwrap();
        assert_eq!(img.bias, 0);
        assert_eq!(img.entry, 0x401000);
        assert_eq!(img.phdr, 0x400040);
        assert_eq!(img.phnum, 2);
        assert_eq!(img.segments[0].prot, libc::PROT_READ | libc::PROT_EXEC);
        assert_eq!(img.segments[1].prot, libc::PROT_READ | libc::PROT_WRITE);
        assert!(!img.exec_stack);
        assert_eq!(img.end(), 0x407000);
    }

    #[test]
    fn static_pie_is_relocated() {
        let d = elf(3, 62, &[(LOAD, RX, 0, 0, 0x2000, 0x2000), (6, 4, 64, 64, 112, 112)]);
        let img = parse(&d, 0x2000).unwrap().place(PIE_BASE).unwrap();
        assert_eq!(img.segments[0].vaddr, PIE_BASE);
        assert_eq!(img.entry, PIE_BASE + 0x401000);
        assert_eq!(img.phdr, PIE_BASE + 64);
    }

    #[test]
    fn rejects_what_km_cannot_run() {
        assert!(matches!(parse(b"#!/bin/sh\n echo hi there", 24), Err(LoadError::NotElf)));
        let mut d32 = elf(2, 62, &[]);
        d32[4] = 1;
        assert!(matches!(parse(&d32, 64), Err(LoadError::Class32)));
        assert!(matches!(parse(&elf(2, 183, &[]), 64), Err(LoadError::Arch(183))));
        assert!(matches!(parse(&elf(1, 62, &[]), 64), Err(LoadError::NotExecutable(1))));
        assert!(matches!(parse(&elf(2, 62, &[]), 64), Err(LoadError::NoSegments)));
    }

    #[test]
    fn names_its_interpreter() {
        let with_interp = |path: &[u8]| {
            let mut d =
                elf(3, 62, &[(3, 4, 200, 200, path.len() as u64, path.len() as u64), (LOAD, RX, 0, 0, 0x1000, 0x1000)]);
            d.resize(200, 0);
            d.extend_from_slice(path);
            d.resize(0x1000, 0);
            parse(&d, 0x1000)
        };
        let img = with_interp(b"/lib/ld.so\0").unwrap();
        assert_eq!(img.interp.as_deref(), Some(Path::new("/lib/ld.so")));
        assert!(img.relocatable);
        for bad in [&b"/lib/ld.so"[..], b"\0", b"/lib\0ld.so\0", b""] {
            assert!(matches!(with_interp(bad), Err(LoadError::BadInterpreter)), "{bad:?}");
        }
    }

    #[test]
    fn places_an_interpreter_anywhere() {
        let d = elf(3, 62, &[(LOAD, RX, 0, 0, 0x1800, 0x1800), (LOAD, RW, 0x1800, 0x3800, 0x100, 0x2000)]);
        let img = parse(&d, 0x2000).unwrap();
        assert_eq!(img.span(), 0x6000);
        let base = 0x40_0000_0000;
        let img = img.place(base).unwrap();
        assert_eq!((img.bias, img.segments[1].vaddr, img.entry), (base, base + 0x3800, base + 0x401000));
        assert!(matches!(parse(&d, 0x2000).unwrap().place(PAYLOAD_END - 0x1000), Err(LoadError::OutOfRange(..))));
    }

    #[test]
    fn rejects_bad_segments() {
        let truncated = elf(2, 62, &[(LOAD, RX, 0, 0x400000, 0x2000, 0x2000)]);
        assert!(matches!(parse(&truncated, 0x1000), Err(LoadError::Truncated(0))));
        let overlap = elf(2, 62, &[(LOAD, RX, 0, 0x400000, 0x2000, 0x2000), (LOAD, RW, 0x1000, 0x401000, 0x10, 0x10)]);
        assert!(matches!(parse(&overlap, 0x3000), Err(LoadError::Overlap(0, 1))));
        let misaligned = elf(2, 62, &[(LOAD, RX, 0x10, 0x400000, 0x100, 0x100)]);
        assert!(matches!(parse(&misaligned, 0x3000), Err(LoadError::Misaligned(0))));
        let low = elf(2, 62, &[(LOAD, RX, 0, 0x10000, 0x100, 0x100)]);
        assert!(matches!(parse(&low, 0x3000).unwrap().place(PIE_BASE), Err(LoadError::OutOfRange(0, ..))));
        let bss_lt_file = elf(2, 62, &[(LOAD, RX, 0, 0x400000, 0x200, 0x100)]);
        assert!(matches!(parse(&bss_lt_file, 0x3000), Err(LoadError::Malformed(_))));
    }
}
