//! km's vDSO: a small shared object built from km/vdso/ (see build.rs),
//! mapped user read-execute into every guest, with its data page (see
//! `clock`) one page below it. The payload finds it through
//! AT_SYSINFO_EHDR, as it would Linux's.

use super::clock::Vvar;
use super::layout::monitor;
use crate::mem::{AddressSpace, MemError};

const IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vdso.so"));

const _: () = assert!(IMAGE.len() as u64 <= monitor::VDSO_SIZE);

/// The mapped vDSO.
pub struct Vdso {
    /// Its ELF header's guest address (AT_SYSINFO_EHDR).
    pub base: u64,
    /// Its data page, for the clock to write.
    pub vvar: Vvar,
}

/// Writes the image into the monitor area and maps it and its data page
/// for the payload; km's own mapping of the image becomes read-execute
/// too, as kkm lets the payload execute only what km's mapping allows.
/// The data page starts zeroed, which reads "unavailable": every call is
/// a syscall until the clock starts.
pub fn install(space: &mut AddressSpace) -> Result<Vdso, MemError> {
    space.write_monitor(monitor::VDSO, IMAGE);
    space.map_monitor(monitor::VVAR, monitor::VVAR + monitor::VVAR_SIZE, libc::PROT_READ, true)?;
    space.map_monitor(monitor::VDSO, monitor::VDSO + monitor::VDSO_SIZE, libc::PROT_READ | libc::PROT_EXEC, true)?;
    space.seal_monitor_code(monitor::VDSO, monitor::VDSO + monitor::VDSO_SIZE)?;
    // SAFETY: VVAR is a page-aligned page of the monitor area, which stays
    // mapped for km's life; the guest maps it read-only and this is the
    // only `Vvar` km makes.
    let vvar = unsafe { Vvar::new(monitor::VVAR) };
    Ok(Vdso { base: monitor::VDSO, vvar })
}

/// The data page's writer in a forked child: the parent's forwarding
/// thread, which owned it, did not survive the fork.
///
/// # Safety
/// Call only in a child just forked, before it starts any thread, once.
pub unsafe fn vvar_in_child() -> Vvar {
    // SAFETY: the page is where `install` put it (the fork copied the
    // monitor area), and the only other `Vvar` naming it belonged to a
    // thread that does not exist in this process.
    unsafe { Vvar::new(monitor::VVAR) }
}

#[cfg(test)]
mod tests {
    use object::elf::{PT_DYNAMIC, PT_LOAD};
    use object::read::elf::{ElfFile64, ProgramHeader};
    use object::{Object, ObjectSymbol};

    use super::*;

    /// What musl's and Go's vDSO readers rely on: one PT_LOAD at address 0
    /// whose addresses are file offsets, a PT_DYNAMIC, no relocations, and
    /// the LINUX_2.6 functions.
    #[test]
    fn image_is_a_vdso() {
        let elf = ElfFile64::<object::Endianness>::parse(IMAGE).unwrap();
        let e = elf.endian();
        let phdrs = elf.elf_program_headers();
        let loads: Vec<_> = phdrs.iter().filter(|p| p.p_type(e) == PT_LOAD).collect();
        assert_eq!(loads.len(), 1);
        assert_eq!((loads[0].p_vaddr(e), loads[0].p_offset(e)), (0, 0));
        assert!(phdrs.iter().any(|p| p.p_type(e) == PT_DYNAMIC));
        assert!(elf.dynamic_relocations().is_none_or(|mut r| r.next().is_none()));
        let names: Vec<String> = elf.dynamic_symbols().map(|s| s.name().unwrap().to_string()).collect();
        for f in ["clock_gettime", "gettimeofday", "time", "clock_getres", "getcpu"] {
            assert!(names.iter().any(|n| *n == format!("__vdso_{f}")), "{f} in {names:?}");
            assert!(names.iter().any(|n| n == f), "{f} in {names:?}");
        }
    }
}
