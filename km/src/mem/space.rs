//! The address space: km's reservation of the guest window, the payload's
//! mappings in it, the memory slots behind them and the guest page tables.
//!
//! Every change goes to three places in the same order: the host mapping
//! (so the host kernel enforces the payload's protections on any pointer
//! km passes it, and KVM's MMU notifiers drop stale guest translations),
//! km's record (`Vmas`), and the guest page tables.

use std::io;
use std::sync::Arc;

use nix::errno::Errno;

use super::vma::{Vma, Vmas};
use crate::device::{DeviceError, Hypervisor};
use crate::guest::layout::{
    monitor, page_down, page_up, GIB, MONITOR_START, PAGE_SIZE, PAYLOAD_END, SLOT_CHUNK, WINDOW_END, WINDOW_START,
};
use crate::guest::paging::{Access, PageTables, PagingError, TableMemory};

/// Accepted and ignored, as on x86 Linux (not in the libc crate).
const PROT_SEM: i32 = 0x8;
const PROT_RWX: i32 = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
/// Slot 0 is the monitor area; payload chunks get the next ids in turn.
const MONITOR_SLOT: u32 = 0;

#[derive(Debug, thiserror::Error)]
pub enum MemError {
    #[error("cannot reserve the guest window {WINDOW_START:#x}..{WINDOW_END:#x} in km's address space: {0}")]
    Reserve(io::Error),
    #[error("memory slot: {0}")]
    Slot(#[from] DeviceError),
    #[error("guest page tables: {0}")]
    Paging(#[from] PagingError),
    #[error("host mapping: {0}")]
    Host(Errno),
}

impl From<MemError> for Errno {
    /// What the payload sees when km cannot extend its memory.
    fn from(_: MemError) -> Errno {
        Errno::ENOMEM
    }
}

/// Page-table pages from the monitor area, written through km's own
/// mapping of it.
struct PoolTables {
    next: u64,
}

impl TableMemory for PoolTables {
    fn alloc_table(&mut self) -> Option<u64> {
        if self.next >= monitor::PAGE_TABLES_END {
            return None;
        }
        let page = self.next;
        self.next += PAGE_SIZE;
        // SAFETY: the page lies in the monitor area, which km mapped
        // read-write for the life of the address space; the payload may
        // have scribbled on it, so it is cleared before use.
        unsafe { std::ptr::write_bytes(page as *mut u8, 0, PAGE_SIZE as usize) };
        Some(page)
    }

    fn write_entry(&mut self, table: u64, index: u64, entry: u64) {
        debug_assert!((monitor::PAGE_TABLES..monitor::PAGE_TABLES_END).contains(&table) && index < 512);
        // SAFETY: `table` is a page this pool handed out (inside the
        // monitor mapping, which outlives the pool) and index < 512 keeps
        // the aligned 8-byte store inside it. The guest may write the same
        // word concurrently; a volatile store of an aligned u64 cannot tear.
        unsafe { ((table + index * 8) as *mut u64).write_volatile(entry) };
    }
}

pub struct AddressSpace {
    hv: Arc<dyn Hypervisor>,
    vmas: Vmas,
    tables: PageTables<PoolTables>,
    /// Which SLOT_CHUNK-sized chunks of payload memory have a memory slot.
    slots: Vec<bool>,
    /// Slot ids are handed out in order, so a small program needs few.
    next_slot: u32,
    brk_start: u64,
    brk: u64,
    /// Top-down mmap allocation starts below this.
    mmap_top: u64,
    /// The payload's file mappings (from mmap with an fd), whose pages past
    /// the file's end KVM cannot back: see `hide_files`.
    files: Vmas,
    /// True while the file mappings are out of the guest tables.
    files_hidden: bool,
}

fn access(prot: i32, user: bool) -> Access {
    Access {
        read: prot & (libc::PROT_READ | libc::PROT_EXEC) != 0,
        write: prot & libc::PROT_WRITE != 0,
        exec: prot & libc::PROT_EXEC != 0,
        user,
    }
}

/// The host protection for payload protection `prot`: on x86 a writable
/// or executable page is also readable (its page-table entry cannot say
/// otherwise), and KVM must be able to read such a page to back it.
fn host_prot(prot: i32) -> i32 {
    if prot & (libc::PROT_WRITE | libc::PROT_EXEC) != 0 {
        prot | libc::PROT_READ
    } else {
        prot
    }
}

/// Maps over [start, start+len) of the window in km's address space.
///
/// # Safety
/// The range must lie inside the guest window, which km reserved at start-up
/// and which holds nothing but guest memory; MAP_FIXED then only replaces
/// reservation or payload memory.
unsafe fn host_mmap(start: u64, len: u64, prot: i32, flags: i32, fd: i32, off: i64) -> Result<(), Errno> {
    debug_assert!(start >= WINDOW_START && start + len <= WINDOW_END);
    // SAFETY: per the function contract; the kernel validates the rest.
    let p = unsafe { libc::mmap(start as *mut libc::c_void, len as usize, prot, flags | libc::MAP_FIXED, fd, off) };
    if p == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    Ok(())
}

/// Returns [start, start+len) of the window to the PROT_NONE reservation.
fn reserve(start: u64, len: u64) -> Result<(), Errno> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: callers pass ranges inside the window (asserted in host_mmap).
    unsafe { host_mmap(start, len, libc::PROT_NONE, flags, -1, 0) }
}

impl AddressSpace {
    /// Reserves the window, maps the monitor area and builds empty tables.
    pub fn new(hv: Arc<dyn Hypervisor>) -> Result<AddressSpace, MemError> {
        let len = (WINDOW_END - WINDOW_START) as usize;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE;
        // SAFETY: MAP_FIXED_NOREPLACE fails instead of replacing anything
        // km already has there; the result is checked below.
        let p = unsafe { libc::mmap(WINDOW_START as *mut libc::c_void, len, libc::PROT_NONE, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            return Err(MemError::Reserve(io::Error::last_os_error()));
        }
        if p as u64 != WINDOW_START {
            // Kernels before 4.17 treat the flag as a hint.
            // SAFETY: `p` is the mapping just made, of `len` bytes, unused.
            unsafe { libc::munmap(p, len) };
            return Err(MemError::Reserve(io::Error::from_raw_os_error(libc::EEXIST)));
        }
        let monitor_len = monitor::PAGE_TABLES_END - MONITOR_START;
        // SAFETY: the monitor area lies inside the window just reserved.
        unsafe {
            host_mmap(
                MONITOR_START,
                monitor_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        }
        .map_err(MemError::Host)?;
        // SAFETY: the monitor area stays mapped until km exits and holds only
        // guest-visible data (tables, stubs, stacks).
        unsafe { hv.add_memory(MONITOR_SLOT, MONITOR_START, monitor_len) }?;
        let tables = PageTables::new(PoolTables { next: monitor::PAGE_TABLES })?;
        let chunks = PAYLOAD_END.div_ceil(SLOT_CHUNK) as usize;
        Ok(AddressSpace {
            hv,
            vmas: Vmas::default(),
            tables,
            slots: vec![false; chunks],
            next_slot: MONITOR_SLOT + 1,
            brk_start: 0,
            brk: 0,
            mmap_top: PAYLOAD_END,
            files: Vmas::default(),
            files_hidden: false,
        })
    }

    pub fn page_table_root(&self) -> u64 {
        self.tables.root()
    }

    /// Maps part of the monitor area into the guest.
    pub fn map_monitor(&mut self, start: u64, end: u64, prot: i32, user: bool) -> Result<(), MemError> {
        assert!(start >= MONITOR_START && end <= monitor::PAGE_TABLES);
        self.tables.map(start, end, access(prot, user))?;
        Ok(())
    }

    /// Writes km-built data (descriptor tables, stubs) into the monitor area.
    pub fn write_monitor(&mut self, addr: u64, data: &[u8]) {
        assert!(addr >= MONITOR_START && addr + data.len() as u64 <= monitor::PAGE_TABLES);
        // SAFETY: the destination lies inside the monitor mapping (asserted),
        // which is km's read-write memory for the life of `self`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
    }

    /// Sets where brk starts (just past the loaded image) and where the
    /// top-down mmap area begins.
    pub fn set_layout(&mut self, brk_start: u64, mmap_top: u64) {
        self.brk_start = brk_start;
        self.brk = brk_start;
        self.mmap_top = mmap_top;
    }

    fn ensure_slots(&mut self, start: u64, end: u64) -> Result<(), MemError> {
        for chunk in (start / SLOT_CHUNK)..end.div_ceil(SLOT_CHUNK) {
            if self.slots[chunk as usize] {
                continue;
            }
            let base = (chunk * SLOT_CHUNK).max(WINDOW_START);
            let top = ((chunk + 1) * SLOT_CHUNK).min(PAYLOAD_END);
            // SAFETY: the chunk lies in the reserved window below the monitor
            // area, which stays mapped (reservation or payload memory) for
            // km's life and never holds km's own data.
            unsafe { self.hv.add_memory(self.next_slot, base, top - base) }?;
            self.next_slot += 1;
            self.slots[chunk as usize] = true;
        }
        Ok(())
    }

    /// Records a host mapping just made and makes it visible to the guest.
    fn commit(&mut self, start: u64, end: u64, prot: i32) -> Result<(), MemError> {
        self.ensure_slots(start, end)?;
        self.tables.map(start, end, access(prot, true))?;
        self.vmas.insert(start, end, prot);
        Ok(())
    }

    /// Unmaps [start, end) from the guest and returns it to the reservation.
    fn release(&mut self, start: u64, end: u64) -> Result<(), Errno> {
        if start >= end {
            return Ok(());
        }
        self.tables.unmap(start, end);
        self.vmas.remove(start, end);
        self.files.remove(start, end);
        reserve(start, end - start)
    }

    /// Maps [start, start+len) at a fixed place with host `flags` (plus
    /// MAP_FIXED) and records it. On failure the range is left unmapped:
    /// the host may already have dropped what was there.
    pub fn map_fixed(&mut self, start: u64, len: u64, prot: i32, flags: i32, fd: i32, off: i64) -> Result<(), Errno> {
        let end = start + len;
        debug_assert!(start.is_multiple_of(PAGE_SIZE) && start >= WINDOW_START && end <= PAYLOAD_END);
        // SAFETY: the range lies inside the payload part of the window.
        if let Err(e) = unsafe { host_mmap(start, len, host_prot(prot & PROT_RWX), flags, fd, off) } {
            self.release(start, end)?;
            return Err(e);
        }
        if let Err(e) = self.commit(start, end, prot & PROT_RWX) {
            tracing::warn!(target: "mem", "cannot map {start:#x}..{end:#x} into the guest: {e}");
            self.release(start, end)?;
            return Err(e.into());
        }
        Ok(())
    }

    /// mmap(2).
    pub fn mmap(&mut self, addr: u64, len: u64, prot: i32, flags: i32, fd: i32, off: i64) -> Result<u64, Errno> {
        if len == 0 || !(off as u64).is_multiple_of(PAGE_SIZE) || prot & !(PROT_RWX | PROT_SEM) != 0 {
            return Err(Errno::EINVAL);
        }
        let kind = flags & 0x0f;
        if kind != libc::MAP_SHARED && kind != libc::MAP_PRIVATE && kind != libc::MAP_SHARED_VALIDATE {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).ok_or(Errno::ENOMEM)?;
        let start = if flags & (libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE) != 0 {
            if !addr.is_multiple_of(PAGE_SIZE) {
                return Err(Errno::EINVAL);
            }
            let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
            if addr < WINDOW_START || end > PAYLOAD_END {
                return Err(Errno::ENOMEM);
            }
            if flags & libc::MAP_FIXED == 0 && !self.vmas.is_free(addr, end) {
                return Err(Errno::EEXIST);
            }
            addr
        } else {
            self.place(page_down(addr), len, flags & libc::MAP_32BIT != 0)?
        };
        // Placement is km's business; the host must not grow the mapping
        // into the reservation either.
        let host_flags = flags & !(libc::MAP_FIXED_NOREPLACE | libc::MAP_32BIT | libc::MAP_GROWSDOWN);
        let fd = if flags & libc::MAP_ANONYMOUS != 0 { -1 } else { fd };
        self.map_fixed(start, len, prot, host_flags, fd, off)?;
        // Shared anonymous memory is a shmem file too: mremap can grow a
        // mapping of it past the file's end.
        if fd >= 0 || kind != libc::MAP_PRIVATE {
            self.files.insert(start, start + len, 0);
        } else {
            self.files.remove(start, start + len);
        }
        Ok(start)
    }

    /// Where a non-fixed mapping of `len` bytes goes: the hint if free,
    /// else the highest gap below the mmap top (or below 2 GiB for MAP_32BIT).
    fn place(&self, hint: u64, len: u64, low32: bool) -> Result<u64, Errno> {
        if hint >= WINDOW_START {
            if let Some(end) = hint.checked_add(len) {
                if end <= PAYLOAD_END && self.vmas.is_free(hint, end) {
                    return Ok(hint);
                }
            }
        }
        let (low, high) =
            if low32 { (WINDOW_START, 2 * GIB) } else { (page_up(self.brk).unwrap_or(self.brk), self.mmap_top) };
        self.vmas.find_free_below(len, low, high).ok_or(Errno::ENOMEM)
    }

    /// munmap(2).
    pub fn munmap(&mut self, addr: u64, len: u64) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = addr.checked_add(len).and_then(page_up).ok_or(Errno::EINVAL)?;
        if end > WINDOW_END {
            return Err(Errno::EINVAL);
        }
        // Outside payload memory nothing of the payload's is mapped.
        self.release(addr.max(WINDOW_START), end.min(PAYLOAD_END))
    }

    /// mprotect(2).
    pub fn mprotect(&mut self, addr: u64, len: u64, prot: i32) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE)
            || prot & !(PROT_RWX | PROT_SEM | libc::PROT_GROWSDOWN | libc::PROT_GROWSUP) != 0
        {
            return Err(Errno::EINVAL);
        }
        let end = addr.checked_add(len).and_then(page_up).ok_or(Errno::ENOMEM)?;
        if len == 0 {
            return Ok(());
        }
        if addr < WINDOW_START || end > PAYLOAD_END || !self.vmas.is_covered(addr, end) {
            return Err(Errno::ENOMEM);
        }
        let prot = prot & PROT_RWX;
        // Other vCPUs run meanwhile. Access taken away leaves the guest
        // tables first, so the host change (whose MMU-notifier flush reaches
        // every vCPU) cannot be followed by a guest walk granting it again;
        // access granted enters them last, once the host allows it.
        let pieces: Vec<(u64, u64, i32)> =
            self.vmas.overlapping(addr, end).map(|(s, v)| (s.max(addr), v.end.min(end), v.prot)).collect();
        for &(s, e, old) in pieces.iter().filter(|p| p.2 & !prot != 0) {
            self.tables.map(s, e, access(old & prot, true)).map_err(|_| Errno::ENOMEM)?;
        }
        // SAFETY: [addr, end) is payload memory inside the window (checked).
        if unsafe { libc::mprotect(addr as *mut libc::c_void, (end - addr) as usize, host_prot(prot)) } != 0 {
            let err = Errno::last();
            for &(s, e, old) in &pieces {
                // Entries that existed a moment ago need no new table page.
                let _ = self.tables.map(s, e, access(old, true));
            }
            return Err(err);
        }
        self.tables.map(addr, end, access(prot, true)).map_err(|_| Errno::ENOMEM)?;
        self.vmas.protect(addr, end, prot);
        Ok(())
    }

    /// mremap(2), without MREMAP_DONTUNMAP.
    pub fn mremap(&mut self, old: u64, old_len: u64, new_len: u64, flags: i32, new_addr: u64) -> Result<u64, Errno> {
        let known = libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED;
        if flags & !known != 0 || !old.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        if flags & libc::MREMAP_FIXED != 0 && flags & libc::MREMAP_MAYMOVE == 0 {
            return Err(Errno::EINVAL);
        }
        let old_len = page_up(old_len).ok_or(Errno::EINVAL)?;
        let new_len = page_up(new_len).ok_or(Errno::EINVAL)?;
        if new_len == 0 || old_len == 0 {
            // old_len 0 duplicates a shared mapping; km does not offer that.
            return Err(Errno::EINVAL);
        }
        let old_end = old.checked_add(old_len).ok_or(Errno::EINVAL)?;
        let prot = match self.vmas.at(old) {
            Some((_, Vma { end, prot })) if end >= old_end && old >= WINDOW_START => prot,
            _ => return Err(Errno::EFAULT),
        };
        if flags & libc::MREMAP_FIXED != 0 {
            let dest_end = new_addr.checked_add(new_len).ok_or(Errno::EINVAL)?;
            if !new_addr.is_multiple_of(PAGE_SIZE) || new_addr < WINDOW_START || dest_end > PAYLOAD_END {
                return Err(Errno::EINVAL);
            }
            if new_addr < old_end && old < dest_end {
                return Err(Errno::EINVAL);
            }
            self.move_mapping(old, old_len, new_addr, new_len, prot)?;
            return Ok(new_addr);
        }
        if new_len <= old_len {
            self.release(old + new_len, old_end)?;
            return Ok(old);
        }
        let grown_end = old.checked_add(new_len).ok_or(Errno::ENOMEM)?;
        if grown_end <= PAYLOAD_END && self.vmas.is_free(old_end, grown_end) {
            // Grow in place by moving out to a free spot and straight back:
            // the host cannot grow into the reservation, but a move can.
            let temp = self.place(0, new_len, false)?;
            self.move_mapping(old, old_len, temp, new_len, prot)?;
            self.move_mapping(temp, new_len, old, new_len, prot)?;
            return Ok(old);
        }
        if flags & libc::MREMAP_MAYMOVE == 0 {
            return Err(Errno::ENOMEM);
        }
        let dest = self.place(0, new_len, false)?;
        self.move_mapping(old, old_len, dest, new_len, prot)?;
        Ok(dest)
    }

    /// Moves a mapping with the host's mremap (keeping its pages and file
    /// backing) and fixes the record, the tables and the reservation.
    fn move_mapping(&mut self, old: u64, old_len: u64, dest: u64, new_len: u64, prot: i32) -> Result<(), Errno> {
        let file = self.files.at(old).is_some();
        self.tables.unmap(dest, dest + new_len);
        self.vmas.remove(dest, dest + new_len);
        // SAFETY: both ranges lie in the payload part of the window (checked
        // by the callers); MREMAP_FIXED replaces only the reservation or
        // payload memory at `dest`.
        let p = unsafe {
            libc::mremap(
                old as *mut libc::c_void,
                old_len as usize,
                new_len as usize,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                dest as *mut libc::c_void,
            )
        };
        if p == libc::MAP_FAILED {
            let e = Errno::last();
            // The destination may have lost its reservation.
            reserve(dest, new_len)?;
            return Err(e);
        }
        self.release(old, old + old_len)?;
        self.commit(dest, dest + new_len, prot).map_err(Errno::from)?;
        if file {
            self.files.insert(dest, dest + new_len, 0);
        }
        Ok(())
    }

    /// Takes the file mappings out of the guest tables (not the host's).
    ///
    /// A payload access to a file page past EOF is SIGBUS on Linux; under
    /// KVM it fails the whole KVM_RUN with EFAULT, without the address. With
    /// the file mappings hidden, the access is retried and faults with the
    /// address in CR2; `show_files` then puts them back.
    pub fn hide_files(&mut self) -> bool {
        let ranges: Vec<(u64, u64)> = self.files.iter().map(|(s, v)| (s, v.end)).collect();
        for &(s, e) in &ranges {
            self.tables.unmap(s, e);
        }
        self.files_hidden = !ranges.is_empty();
        self.files_hidden
    }

    pub fn show_files(&mut self) {
        if !std::mem::take(&mut self.files_hidden) {
            return;
        }
        let ranges: Vec<(u64, u64)> = self.files.iter().map(|(s, v)| (s, v.end)).collect();
        for (s, e) in ranges {
            let parts: Vec<(u64, Vma)> = self.vmas.overlapping(s, e).collect();
            for (ps, v) in parts {
                // Re-creating entries that existed cannot need a new table
                // page, so this cannot fail.
                let _ = self.tables.map(ps.max(s), v.end.min(e), access(v.prot, true));
            }
        }
    }

    /// True if `addr` is in a file mapping hidden by `hide_files`.
    pub fn in_hidden_file(&self, addr: u64) -> bool {
        self.files_hidden && self.files.at(addr).is_some()
    }

    /// The protection of the payload page at `addr`, if mapped.
    pub fn prot_at(&self, addr: u64) -> Option<i32> {
        self.vmas.at(addr).map(|(_, v)| v.prot)
    }

    /// True if all of [start, end) is payload memory (of any protection).
    pub fn is_mapped(&self, start: u64, end: u64) -> bool {
        self.vmas.is_covered(start, end)
    }

    /// brk(2): returns the new break, or the old one if it cannot move.
    pub fn brk(&mut self, want: u64) -> u64 {
        if want < self.brk_start || want > PAYLOAD_END {
            return self.brk;
        }
        let (Some(old_top), Some(new_top)) = (page_up(self.brk), page_up(want)) else {
            return self.brk;
        };
        if new_top > old_top {
            if !self.vmas.is_free(old_top, new_top) {
                return self.brk;
            }
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
            if self.map_fixed(old_top, new_top - old_top, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0).is_err() {
                return self.brk;
            }
        } else if new_top < old_top && self.release(new_top, old_top).is_err() {
            return self.brk;
        }
        self.brk = want;
        self.brk
    }
}
