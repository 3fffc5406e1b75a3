//! Where things live in the guest address space.
//!
//! Guest virtual == guest physical == km host virtual. km reserves the whole
//! window in its own address space at start-up (PROT_NONE), so nothing of
//! km's can ever be placed inside it; payload memory is mapped over the
//! reservation and returned to it on unmap.

pub const PAGE_SIZE: u64 = 4096;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// Start of the guest window (and of payload memory).
pub const WINDOW_START: u64 = 2 * MIB;
/// End of the guest window: what one PML4 entry's PDPT maps.
pub const WINDOW_END: u64 = 512 * GIB;

/// The monitor area, the window's top GiB: km-owned guest pages (landing
/// pad, stubs, descriptor tables, IST stacks, vDSO, signal scratch, page
/// tables). Payload pointers into it are EFAULT. Only its first
/// `monitor::PAGE_TABLES_END - MONITOR_START` bytes are mapped in km (and
/// in a memory slot); the rest stays the PROT_NONE reservation, so a string
/// the host kernel scans upward from payload memory stops with EFAULT
/// before it could leave the window.
pub const MONITOR_START: u64 = WINDOW_END - GIB;

/// End (exclusive) of the addresses the payload may use: one page short of
/// the monitor area. That page stays PROT_NONE, so a string or object the
/// host kernel reads or writes upward from payload memory faults there
/// (EFAULT, as at the end of a native mapping) instead of running into
/// km's monitor pages.
pub const PAYLOAD_END: u64 = MONITOR_START - PAGE_SIZE;

/// Memory slots cover payload memory in chunks of this size, registered on
/// first use, so KVM's per-slot metadata stays proportional to what is used.
/// KVM's cost to register a slot grows with its size (its per-page
/// metadata; ~0.8 ms for 1 GiB on the PVM host here), so chunks are small.
pub const SLOT_CHUNK: u64 = 64 * MIB;

/// Top of the initial stack, one guard megabyte below the monitor area.
pub const STACK_TOP: u64 = MONITOR_START - MIB;
/// Load address of ET_DYN (static-pie) payloads.
pub const PIE_BASE: u64 = 16 * MIB;

/// Layout of the monitor area.
pub mod monitor {
    use super::{MIB, MONITOR_START, PAGE_SIZE};

    /// km's code: the LSTAR landing pad, the signal stubs, the IDT stubs.
    pub const CODE: u64 = MONITOR_START;
    pub const CODE_SIZE: u64 = 2 * PAGE_SIZE;

    /// Whether `rip` is in km's code (not the payload's, nor the vDSO's).
    pub fn in_code(rip: u64) -> bool {
        (CODE..CODE + CODE_SIZE).contains(&rip)
    }
    /// GDT: the fixed descriptors of `selectors`, then one 16-byte TSS
    /// descriptor per vCPU.
    pub const GDT: u64 = CODE + CODE_SIZE;
    pub const GDT_SIZE: u64 = 2 * PAGE_SIZE;
    pub const IDT: u64 = GDT + GDT_SIZE;
    pub const IDT_SIZE: u64 = PAGE_SIZE;
    /// One TSS (with its I/O bitmap) per vCPU.
    pub const TSS: u64 = IDT + IDT_SIZE;
    pub const TSS_STRIDE: u64 = 256;
    /// One IST stack page per vCPU: every IDT gate switches to it.
    pub const IST: u64 = MONITOR_START + 2 * MIB;
    pub const IST_STACK_SIZE: u64 = PAGE_SIZE;
    /// vCPUs the tables above have room for.
    pub const MAX_VCPUS: u64 = (GDT_SIZE - crate::guest::selectors::FIXED_DESCRIPTORS * 8) / 16;
    /// The vDSO's data page (user read-only; km's signal thread writes it),
    /// then the vDSO image (user read-execute), which finds the page at
    /// this fixed distance below itself.
    pub const VVAR: u64 = MONITOR_START + 4 * MIB;
    pub const VVAR_SIZE: u64 = PAGE_SIZE;
    pub const VDSO: u64 = VVAR + VVAR_SIZE;
    pub const VDSO_SIZE: u64 = 4 * PAGE_SIZE;

    /// Whether `addr` is in the vDSO or its data page: guest-visible
    /// monitor pages that are, as on Linux, mappings of the payload's.
    pub fn in_vdso(addr: u64) -> bool {
        (VVAR..VDSO + VDSO_SIZE).contains(&addr)
    }
    /// Per vCPU, user read-only: where km stages the FPU image and the iretq
    /// frame the return stub restores from (see cpu.rs).
    pub const SIGNAL_SCRATCH: u64 = MONITOR_START + 6 * MIB;
    pub const SIGNAL_SCRATCH_STRIDE: u64 = 1024;
    /// Page-table pages come from here; they are never mapped in the guest's
    /// virtual address space.
    pub const PAGE_TABLES: u64 = MONITOR_START + 8 * MIB;
    /// 248 MiB of table pages: at least 124 GiB of payload memory mapped
    /// in 4 KiB pages (one table page per 2 MiB). Only the part in use is
    /// in memory slots (`mem/pool.rs`): a slot's cost is proportional to
    /// its size.
    pub const PAGE_TABLES_END: u64 = MONITOR_START + 256 * MIB;

    const _: () = assert!(TSS + MAX_VCPUS * TSS_STRIDE <= IST);
    const _: () = assert!(IST + MAX_VCPUS * IST_STACK_SIZE <= VVAR);
    const _: () = assert!(VDSO + VDSO_SIZE <= SIGNAL_SCRATCH);
    const _: () =
        assert!(SIGNAL_SCRATCH + (MAX_VCPUS * SIGNAL_SCRATCH_STRIDE).next_multiple_of(PAGE_SIZE) <= PAGE_TABLES);
}

pub const fn page_down(a: u64) -> u64 {
    a & !(PAGE_SIZE - 1)
}

/// Rounds up; `None` on overflow.
pub const fn page_up(a: u64) -> Option<u64> {
    match a.checked_add(PAGE_SIZE - 1) {
        Some(v) => Some(v & !(PAGE_SIZE - 1)),
        None => None,
    }
}
