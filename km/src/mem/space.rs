//! The address space: km's reservation of the guest window, the payload's
//! mappings in it, the memory slots behind them and the guest page tables.
//!
//! Every change goes to three places: the host mapping (so the host kernel
//! enforces the payload's protections on any pointer km passes it, and
//! KVM's MMU notifiers drop stale guest translations), km's record
//! (`Vmas`), and the guest page tables. Other vCPUs run meanwhile, so the
//! order follows the direction of the change: access granted (mmap,
//! mprotect up) is made on the host first and enters the guest tables
//! after; access taken away (munmap, mprotect down) leaves the guest
//! tables first and the host after.

use std::io;
use std::sync::Arc;

use nix::errno::Errno;

use super::pool::{self, PoolTables};
use super::shm::Attachments;
use super::vma::{Vma, Vmas};
use crate::device::{DeviceError, Hypervisor};
use crate::guest::layout::{
    monitor, page_down, page_up, GIB, MONITOR_START, PAGE_SIZE, PAYLOAD_END, SLOT_CHUNK, WINDOW_END, WINDOW_START,
};
use crate::guest::paging::{Access, PageTables, PagingError};

/// Accepted and ignored, as on x86 Linux (not in the libc crate).
const PROT_SEM: i32 = 0x8;
const PROT_RWX: i32 = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
/// Slot 0 is the top slot (below; slots 0-2 on a device that maps slots
/// itself); payload chunks get the next ids in turn.
const TOP_SLOT: u32 = 0;
/// The top slot covers the last payload chunk, where the initial stack
/// always is, the guard page and the monitor area up to the end of the
/// page-table pool registered so far: one registration (one wait for the
/// device's memory-slot update) fewer at every start and fork. The guard
/// page in it stays PROT_NONE and unmapped in the guest tables, so the
/// guest cannot reach it.
const TOP_CHUNK: u64 = (PAYLOAD_END - 1) / SLOT_CHUNK;
const TOP_SLOT_START: u64 = TOP_CHUNK * SLOT_CHUNK;
const _: () = assert!(TOP_SLOT_START >= WINDOW_START && MONITOR_START - TOP_SLOT_START <= SLOT_CHUNK);
/// The top of a 4-level x86-64 user address space: a native shmat that
/// would map past it is ENOMEM.
const TASK_SIZE: u64 = (1 << 47) - PAGE_SIZE;
/// The shmat flags the host call keeps (km chose the address itself).
const SHM_ACCESS: i32 = libc::SHM_RDONLY | libc::SHM_EXEC;

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
    /// Where System V shared memory segments are attached.
    shm: Attachments,
    /// The payload's RLIMIT_AS in bytes (RLIM_INFINITY for none).
    limit: u64,
    /// Ranges whose host mapping a thread is changing right now, outside
    /// the lock (see `mem::shared`): nobody else touches them meanwhile.
    busy: Vec<(u64, u64)>,
    /// Threads waiting for `busy` to empty (brk, mremap); new host
    /// changes wait for them, so they cannot starve.
    pub(super) exclusive_waiters: usize,
}

/// A host mapping change prepared under the lock, to be made without it:
/// `AddressSpace::finish` then records the outcome.
pub struct Change {
    pub start: u64,
    pub end: u64,
    kind: ChangeKind,
    /// The mappings the range had, to put back in the guest tables if the
    /// host refuses the change (Linux then leaves them intact).
    old: Vec<(u64, Vma)>,
}

/// What a `begin_*` call found.
pub enum Begin {
    /// A change to make, then `finish`.
    Now(Change),
    /// The range is busy: wait for a change to finish, then ask again.
    Wait,
    /// Nothing to change.
    Nothing,
}

impl Change {
    /// Makes the host change; called without the lock.
    pub fn apply(&self) -> Result<(), Errno> {
        let (start, len) = (self.start, self.end - self.start);
        match self.kind {
            // SAFETY: the range lies inside the payload part of the window,
            // and is busy: no other thread of km changes it meanwhile.
            ChangeKind::Map { prot, flags, fd, off, .. } => unsafe {
                host_mmap(start, len, host_prot(prot), flags, fd, off)
            },
            ChangeKind::Shm { id, flags, .. } => {
                // SAFETY: as above; SHM_REMAP at the exact, page-aligned
                // start replaces only the payload's part of the window
                // there, and the kernel maps the segment's whole size, which
                // is `len`.
                let p = unsafe { libc::shmat(id, start as *const libc::c_void, flags | libc::SHM_REMAP) };
                if p as isize == -1 {
                    return Err(Errno::last());
                }
                debug_assert_eq!(p as u64, start);
                Ok(())
            }
            ChangeKind::Unmap => reserve(start, len),
            ChangeKind::Protect { prot } => {
                // SAFETY: as above; mprotect changes only payload memory.
                if unsafe { libc::mprotect(start as *mut libc::c_void, len as usize, host_prot(prot)) } != 0 {
                    return Err(Errno::last());
                }
                Ok(())
            }
        }
    }
}

enum ChangeKind {
    /// `record_file`: whether km's record of file mappings follows (mmap),
    /// or is left alone (the loader's segments, brk).
    Map {
        prot: i32,
        flags: i32,
        fd: i32,
        off: i64,
        record_file: bool,
    },
    /// shmat of segment `id` with SHM_ACCESS `flags`.
    Shm {
        id: i32,
        prot: i32,
        flags: i32,
    },
    Unmap,
    Protect {
        prot: i32,
    },
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

/// True if every page of [start, end) has a host mapping (payload memory
/// or the reservation): msync with MS_ASYNC only checks that.
fn host_mapped(start: u64, end: u64) -> bool {
    // SAFETY: msync(MS_ASYNC) reads and changes nothing.
    unsafe { libc::msync(start as *mut libc::c_void, (end - start) as usize, libc::MS_ASYNC) == 0 }
}

/// Registers the top slot (the monitor area mapped, the window reserved),
/// with the page-table pool up to `pool_end`; returns the first slot id
/// left for payload chunks and pool pieces.
fn add_top_slot(hv: &dyn Hypervisor, pool_end: u64) -> Result<u32, MemError> {
    debug_assert!(pool_end <= monitor::PAGE_TABLES_END);
    if !hv.caps().maps_slots_itself {
        // SAFETY: the range lies in the window, which stays mapped
        // (reservation, payload memory or the monitor area) for km's life;
        // the monitor area holds only guest-visible data (tables, stubs,
        // stacks), the rest never anything of km's.
        unsafe { hv.add_memory(TOP_SLOT, TOP_SLOT_START, pool_end - TOP_SLOT_START) }?;
        return Ok(TOP_SLOT + 1);
    }
    // The device maps slot pages to the payload as km's host mapping
    // allows: the descriptor tables, IST stacks, signal scratch and page
    // tables (all km's, and writable in km) stay out of every slot, so a
    // payload access there faults as it would natively. In: the top payload
    // chunk, the page of signal-entry stubs (the IDT stubs after it serve
    // only KVM) and the vDSO with its data page.
    let ranges = [
        (TOP_SLOT_START, MONITOR_START),
        (monitor::CODE, monitor::CODE + PAGE_SIZE),
        (monitor::VVAR, monitor::VDSO + monitor::VDSO_SIZE),
    ];
    let mut slot = TOP_SLOT;
    for (start, end) in ranges {
        // SAFETY: as above: each range lies in the window, mapped for km's
        // life, and holds payload memory or guest-visible monitor pages.
        unsafe { hv.add_memory(slot, start, end - start) }?;
        slot += 1;
    }
    Ok(slot)
}

/// Which chunks have a slot once the top slot is in.
fn initial_slots() -> Vec<bool> {
    let mut slots = vec![false; PAYLOAD_END.div_ceil(SLOT_CHUNK) as usize];
    slots[TOP_CHUNK as usize] = true;
    slots
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
        // SAFETY: the monitor area lies inside the window just reserved.
        unsafe {
            host_mmap(
                MONITOR_START,
                monitor::PAGE_TABLES_END - MONITOR_START,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        }
        .map_err(MemError::Host)?;
        let next_slot = add_top_slot(&*hv, pool::FIRST_END)?;
        let tables = PageTables::new(PoolTables::new())?;
        Ok(AddressSpace {
            hv,
            vmas: Vmas::default(),
            tables,
            slots: initial_slots(),
            next_slot,
            brk_start: 0,
            brk: 0,
            mmap_top: PAYLOAD_END,
            files: Vmas::default(),
            files_hidden: false,
            shm: Attachments::default(),
            busy: Vec::new(),
            exclusive_waiters: 0,
            limit: libc::RLIM_INFINITY,
        })
    }

    /// The same address space for a new VM, in a child km just forked:
    /// the host fork copied the memory, the monitor area and the guest
    /// tables in it; only the memory slots are the new VM's to register.
    pub fn fork_onto(&self, hv: Arc<dyn Hypervisor>) -> Result<AddressSpace, MemError> {
        // The pool as far as the parent registered it, in the one slot.
        let next_slot = add_top_slot(&*hv, self.tables.memory().limit())?;
        let mut space = AddressSpace {
            hv,
            vmas: self.vmas.clone(),
            tables: self.tables.clone(),
            slots: initial_slots(),
            next_slot,
            brk_start: self.brk_start,
            brk: self.brk,
            mmap_top: self.mmap_top,
            files: self.files.clone(),
            files_hidden: false,
            shm: self.shm.clone(),
            limit: self.limit,
            busy: Vec::new(),
            exclusive_waiters: 0,
        };
        for (chunk, _) in self.slots.iter().enumerate().filter(|(_, used)| **used) {
            let start = chunk as u64 * SLOT_CHUNK;
            space.ensure_slots(start, start + 1)?;
        }
        // A probe in another thread of the parent may have hidden them.
        space.files_hidden = self.files_hidden;
        space.show_files();
        Ok(space)
    }

    pub fn page_table_root(&self) -> u64 {
        self.tables.root()
    }

    /// Maps part of the monitor area into the guest.
    pub fn map_monitor(&mut self, start: u64, end: u64, prot: i32, user: bool) -> Result<(), MemError> {
        assert!(start >= MONITOR_START && end <= monitor::PAGE_TABLES);
        self.map_tables(start, end, access(prot, user))
    }

    /// Makes km's own mapping of the monitor code [start, end), written
    /// once at start-up, read-execute: a device that runs the guest on
    /// km's mappings (kkm) lets it execute only what they allow, and km
    /// never writes there again.
    pub fn seal_monitor_code(&mut self, start: u64, end: u64) -> Result<(), MemError> {
        assert!(start >= MONITOR_START && end <= monitor::PAGE_TABLES);
        // SAFETY: the range lies inside the monitor mapping (asserted), which
        // holds only km-built guest data; nothing of km's own is there.
        let r = unsafe {
            libc::mprotect(start as *mut libc::c_void, (end - start) as usize, libc::PROT_READ | libc::PROT_EXEC)
        };
        if r != 0 {
            return Err(MemError::Host(Errno::last()));
        }
        Ok(())
    }

    /// Writes km-built data (descriptor tables, stubs) into the monitor area.
    pub fn write_monitor(&mut self, addr: u64, data: &[u8]) {
        assert!(addr >= MONITOR_START && addr + data.len() as u64 <= monitor::PAGE_TABLES);
        // SAFETY: the destination lies inside the monitor mapping (asserted),
        // which is km's read-write memory for the life of `self`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
    }

    /// Sets the payload's RLIMIT_AS, which mmap, mremap and brk enforce.
    pub fn set_limit(&mut self, bytes: u64) {
        self.limit = bytes;
    }

    /// Linux's may_expand_vm for RLIMIT_AS: ENOMEM if mapping `extra` more
    /// bytes, after [replaced.0, replaced.1) is unmapped, would take the
    /// payload's mappings past the limit. Counted from km's record, in
    /// pages as Linux counts them.
    fn may_grow(&self, extra: u64, replaced: (u64, u64)) -> Result<(), Errno> {
        if self.limit == libc::RLIM_INFINITY {
            return Ok(());
        }
        let total: u64 = self.vmas.iter().map(|(s, v)| v.end - s).sum();
        let (start, end) = replaced;
        let gone: u64 = self.vmas.overlapping(start, end).map(|(s, v)| v.end.min(end) - s.max(start)).sum();
        if (total - gone).saturating_add(extra) / PAGE_SIZE > self.limit / PAGE_SIZE {
            return Err(Errno::ENOMEM);
        }
        Ok(())
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

    /// Maps [start, end) in the guest tables, registering more of the
    /// page-table pool with the device whenever it runs out. A map that
    /// ran out part way is made again from the start, which rewrites the
    /// same entries and finds the tables it made.
    fn map_tables(&mut self, start: u64, end: u64, access: Access) -> Result<(), MemError> {
        loop {
            match self.tables.map(start, end, access) {
                Err(PagingError::OutOfTables) => self.grow_pool()?,
                done => return done.map_err(MemError::from),
            }
        }
    }

    /// Registers the next piece of the page-table pool.
    fn grow_pool(&mut self) -> Result<(), MemError> {
        let (start, end) = self.tables.memory().next_piece().ok_or(PagingError::OutOfTables)?;
        // A device that maps slots itself never reads km's tables, and must
        // not hand them to the payload (see add_top_slot).
        if !self.hv.caps().maps_slots_itself {
            // SAFETY: the piece lies in the monitor area's pool, mapped
            // read-write in km for the life of the address space and
            // holding only guest page tables.
            unsafe { self.hv.add_memory(self.next_slot, start, end - start) }?;
            self.next_slot += 1;
        }
        self.tables.memory_mut().grown(end);
        Ok(())
    }

    /// Records a host mapping just made and makes it visible to the guest.
    fn commit(&mut self, start: u64, end: u64, prot: i32) -> Result<(), MemError> {
        self.ensure_slots(start, end)?;
        self.map_tables(start, end, access(prot, true))?;
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
        self.shm.forget(start, end);
        reserve(start, end - start)
    }

    /// Maps [start, start+len) at a fixed place with host `flags` (plus
    /// MAP_FIXED) and records it, all under the caller's lock (start-up,
    /// brk). On failure what was there stays, as on Linux.
    pub fn map_fixed(&mut self, start: u64, len: u64, prot: i32, flags: i32, fd: i32, off: i64) -> Result<(), Errno> {
        debug_assert!(start.is_multiple_of(PAGE_SIZE) && start >= WINDOW_START && start + len <= PAYLOAD_END);
        let kind = ChangeKind::Map { prot: prot & PROT_RWX, flags, fd, off, record_file: false };
        let change = self.begin(start, start + len, kind)?;
        let done = change.apply();
        self.finish(change, done)
    }

    /// True if a host change in flight overlaps [start, end).
    pub fn busy(&self, start: u64, end: u64) -> bool {
        self.busy.iter().any(|&(s, e)| s < end && start < e)
    }

    pub fn idle(&self) -> bool {
        self.busy.is_empty()
    }

    /// Prepares a host change of [start, end): access the change may take
    /// away leaves the guest tables now (before the host change, whose
    /// MMU-notifier flush reaches every vCPU, so no guest walk can grant
    /// it again afterwards); access it grants enters them in `finish`,
    /// once the host allows it. Table pages and memory slots the range
    /// needs are allocated here, so `finish` cannot fail after the host
    /// changed. The range is busy until `finish`.
    fn begin(&mut self, start: u64, end: u64, kind: ChangeKind) -> Result<Change, Errno> {
        debug_assert!(!self.busy(start, end));
        let old: Vec<(u64, Vma)> = self
            .vmas
            .overlapping(start, end)
            .map(|(s, v)| (s.max(start), Vma { end: v.end.min(end), prot: v.prot }))
            .collect();
        let prepared = match kind {
            ChangeKind::Map { .. } | ChangeKind::Shm { .. } => {
                self.ensure_slots(start, end).and_then(|_| self.map_tables(start, end, Access::default()))
            }
            ChangeKind::Unmap => {
                self.tables.unmap(start, end);
                Ok(())
            }
            ChangeKind::Protect { prot } => old
                .iter()
                .filter(|(_, v)| v.prot & !prot != 0)
                .try_for_each(|&(s, v)| self.tables.map(s, v.end, access(v.prot & prot, true)))
                .map_err(MemError::from),
        };
        if let Err(e) = prepared {
            tracing::warn!(target: "mem", "cannot map {start:#x}..{end:#x} into the guest: {e}");
            self.restore(&old);
            return Err(e.into());
        }
        self.busy.push((start, end));
        Ok(Change { start, end, kind, old })
    }

    /// Puts `old` mappings back into the guest tables. Entries that existed
    /// a moment ago need no new table page, so this cannot fail.
    fn restore(&mut self, old: &[(u64, Vma)]) {
        for &(s, v) in old {
            let _ = self.tables.map(s, v.end, access(v.prot, true));
        }
    }

    /// Records the outcome `done` of `change`'s host call.
    pub fn finish(&mut self, change: Change, done: Result<(), Errno>) -> Result<(), Errno> {
        let (start, end) = (change.start, change.end);
        self.busy.retain(|&r| r != (start, end));
        if let Err(e) = done {
            match change.kind {
                ChangeKind::Map { .. } | ChangeKind::Shm { .. } if !host_mapped(start, end) => {
                    // The host could not put the old mapping back (a file's
                    // mmap hook failed after the old pages were gone) and
                    // left a hole: the range is unmapped, as for Linux.
                    self.vmas.remove(start, end);
                    self.files.remove(start, end);
                    self.shm.forget(start, end);
                    reserve(start, end - start)?;
                }
                // The host kept the old mapping: so does the guest.
                ChangeKind::Map { .. } | ChangeKind::Shm { .. } | ChangeKind::Protect { .. } => {
                    self.restore(&change.old)
                }
                ChangeKind::Unmap => {}
            }
            return Err(e);
        }
        match change.kind {
            ChangeKind::Map { prot, flags, fd, record_file, .. } => {
                // Tables exist since `begin`: this cannot fail.
                let _ = self.tables.map(start, end, access(prot, true));
                self.vmas.insert(start, end, prot);
                self.shm.forget(start, end);
                // Shared anonymous memory is a shmem file too: mremap can
                // grow a mapping of it past the file's end.
                if record_file && (fd >= 0 || flags & 0x0f != libc::MAP_PRIVATE) {
                    self.files.insert(start, end, 0);
                } else if record_file {
                    self.files.remove(start, end);
                }
            }
            ChangeKind::Shm { id, prot, .. } => {
                let _ = self.tables.map(start, end, access(prot, true));
                self.vmas.insert(start, end, prot);
                // A segment is a shmem file: mremap can grow a mapping of
                // it past the segment's end.
                self.files.insert(start, end, 0);
                self.shm.attach(start, id, end - start);
            }
            ChangeKind::Unmap => {}
            ChangeKind::Protect { prot } => {
                let _ = self.tables.map(start, end, access(prot, true));
                self.vmas.protect(start, end, prot);
            }
        }
        Ok(())
    }

    /// Validates mmap(2) arguments and prepares the host mapping.
    pub fn begin_mmap(
        &mut self,
        addr: u64,
        len: u64,
        prot: i32,
        flags: i32,
        fd: i32,
        off: i64,
    ) -> Result<Begin, Errno> {
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
            if self.busy(addr, end) {
                return Ok(Begin::Wait);
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
        let replaced = if flags & libc::MAP_FIXED != 0 { (start, start + len) } else { (0, 0) };
        self.may_grow(len, replaced)?;
        let flags = flags & !(libc::MAP_FIXED_NOREPLACE | libc::MAP_32BIT | libc::MAP_GROWSDOWN);
        let fd = if flags & libc::MAP_ANONYMOUS != 0 { -1 } else { fd };
        let kind = ChangeKind::Map { prot: prot & PROT_RWX, flags, fd, off, record_file: true };
        self.begin(start, start + len, kind).map(Begin::Now)
    }

    /// Where a non-fixed mapping of `len` bytes goes: the hint if free,
    /// else the highest gap below the mmap top (or below 2 GiB for MAP_32BIT).
    fn place(&self, hint: u64, len: u64, low32: bool) -> Result<u64, Errno> {
        if hint >= WINDOW_START {
            if let Some(end) = hint.checked_add(len) {
                if end <= PAYLOAD_END && self.vmas.is_free(hint, end) && !self.busy(hint, end) {
                    return Ok(hint);
                }
            }
        }
        let (low, mut high) =
            if low32 { (WINDOW_START, 2 * GIB) } else { (page_up(self.brk).unwrap_or(self.brk), self.mmap_top) };
        // A busy range may be about to be mapped: look below it.
        loop {
            let at = self.vmas.find_free_below(len, low, high).ok_or(Errno::ENOMEM)?;
            match self.busy.iter().filter(|&&(s, e)| s < at + len && at < e).map(|&(s, _)| s).min() {
                Some(s) => high = s,
                None => return Ok(at),
            }
        }
    }

    /// Validates munmap(2) arguments and prepares the unmapping.
    pub fn begin_munmap(&mut self, addr: u64, len: u64) -> Result<Begin, Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = addr.checked_add(len).and_then(page_up).ok_or(Errno::EINVAL)?;
        if end > WINDOW_END {
            return Err(Errno::EINVAL);
        }
        // Outside payload memory nothing of the payload's is mapped.
        let (start, end) = (addr.max(WINDOW_START), end.min(PAYLOAD_END));
        if start >= end {
            return Ok(Begin::Nothing);
        }
        if self.busy(start, end) {
            return Ok(Begin::Wait);
        }
        let change = self.begin(start, end, ChangeKind::Unmap)?;
        self.vmas.remove(start, end);
        self.files.remove(start, end);
        self.shm.forget(start, end);
        Ok(Begin::Now(change))
    }

    /// Validates shmat(2) of segment `id`, `len` bytes (page-rounded) at
    /// `addr` (SHMLBA-aligned by the caller, None for km's choice), and
    /// prepares the host attachment. An address outside payload memory is
    /// taken as occupied (EINVAL, as an overlap is natively): km never
    /// maps a segment over its monitor area or outside the window.
    pub fn begin_shmat(&mut self, id: i32, addr: Option<u64>, len: u64, flags: i32) -> Result<Begin, Errno> {
        let remap = flags & libc::SHM_REMAP != 0;
        let start = if let Some(addr) = addr {
            let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
            if end > TASK_SIZE {
                return Err(Errno::ENOMEM);
            }
            if addr < WINDOW_START || end > PAYLOAD_END {
                return Err(Errno::EINVAL);
            }
            if self.busy(addr, end) {
                return Ok(Begin::Wait);
            }
            if !remap && !self.vmas.is_free(addr, end) {
                return Err(Errno::EINVAL);
            }
            addr
        } else {
            self.place(0, len, false)?
        };
        let end = start + len;
        self.may_grow(len, if remap { (start, end) } else { (0, 0) })?;
        let mut prot = if flags & libc::SHM_RDONLY != 0 { libc::PROT_READ } else { libc::PROT_READ | libc::PROT_WRITE };
        if flags & libc::SHM_EXEC != 0 {
            prot |= libc::PROT_EXEC;
        }
        let kind = ChangeKind::Shm { id, prot, flags: flags & SHM_ACCESS };
        self.begin(start, end, kind).map(Begin::Now)
    }

    /// The ranges shmdt(addr) returns to the reservation: the pieces
    /// still mapped of the attachment that began at `addr`.
    pub fn shmdt_ranges(&self, addr: u64) -> Result<Vec<(u64, u64)>, Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let ranges = self.shm.detach(addr);
        if ranges.is_empty() {
            return Err(Errno::EINVAL);
        }
        Ok(ranges)
    }

    /// Makes a change prepared by `begin` at once, under the caller's lock
    /// (the loader, before any thread runs): the start of the range changed.
    fn change_now(&mut self, begin: Result<Begin, Errno>) -> Result<Option<u64>, Errno> {
        match begin? {
            Begin::Now(change) => {
                let done = change.apply();
                let start = change.start;
                self.finish(change, done).map(|_| Some(start))
            }
            Begin::Nothing => Ok(None),
            // Only while another thread's change is in flight, never at load.
            Begin::Wait => Err(Errno::EBUSY),
        }
    }

    /// mprotect(2) made under the caller's lock (the loader).
    pub fn mprotect(&mut self, addr: u64, len: u64, prot: i32) -> Result<(), Errno> {
        let begin = self.begin_mprotect(addr, len, prot);
        self.change_now(begin).map(drop)
    }

    /// mmap(2) made under the caller's lock (the loader): the address.
    pub fn mmap(&mut self, addr: u64, len: u64, prot: i32, flags: i32, fd: i32, off: i64) -> Result<u64, Errno> {
        let begin = self.begin_mmap(addr, len, prot, flags, fd, off);
        self.change_now(begin)?.ok_or(Errno::EINVAL)
    }

    /// munmap(2) made under the caller's lock (the loader).
    pub fn munmap(&mut self, addr: u64, len: u64) -> Result<(), Errno> {
        let begin = self.begin_munmap(addr, len);
        self.change_now(begin).map(drop)
    }

    /// Validates mprotect(2) arguments and prepares the change.
    pub fn begin_mprotect(&mut self, addr: u64, len: u64, prot: i32) -> Result<Begin, Errno> {
        if !addr.is_multiple_of(PAGE_SIZE)
            || prot & !(PROT_RWX | PROT_SEM | libc::PROT_GROWSDOWN | libc::PROT_GROWSUP) != 0
        {
            return Err(Errno::EINVAL);
        }
        let end = addr.checked_add(len).and_then(page_up).ok_or(Errno::ENOMEM)?;
        if len == 0 {
            return Ok(Begin::Nothing);
        }
        if addr < WINDOW_START || end > PAYLOAD_END {
            return Err(Errno::ENOMEM);
        }
        if self.busy(addr, end) {
            return Ok(Begin::Wait);
        }
        if !self.vmas.is_covered(addr, end) {
            return Err(Errno::ENOMEM);
        }
        self.begin(addr, end, ChangeKind::Protect { prot: prot & PROT_RWX }).map(Begin::Now)
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
            self.may_grow(new_len.saturating_sub(old_len), (new_addr, dest_end))?;
            self.move_mapping(old, old_len, new_addr, new_len, prot)?;
            return Ok(new_addr);
        }
        if new_len <= old_len {
            self.release(old + new_len, old_end)?;
            return Ok(old);
        }
        self.may_grow(new_len - old_len, (0, 0))?;
        let grown_end = old.checked_add(new_len).ok_or(Errno::ENOMEM)?;
        if grown_end <= PAYLOAD_END && self.vmas.is_free(old_end, grown_end) {
            // Grow in place by moving out to a free spot and straight back:
            // the host cannot grow into the reservation, but a move can. The
            // spot must not overlap the grown range (the host refuses a move
            // onto an overlapping range): placement skips it while busy.
            self.busy.push((old, grown_end));
            let temp = self.place(0, new_len, false);
            self.busy.pop();
            let temp = temp?;
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
        self.shm.forget(dest, dest + new_len);
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
        self.shm.relocate(old, old_len, dest);
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
                let (ps, pe) = (ps.max(s), v.end.min(e));
                // A change in flight sets its range's entries as it ends.
                if self.busy(ps, pe) {
                    continue;
                }
                // Re-creating entries that existed cannot need a new table
                // page, so this cannot fail.
                let _ = self.tables.map(ps, pe, access(v.prot, true));
            }
        }
    }

    /// True if `addr` is in a file mapping whose protection allows a write
    /// (`write`) or an instruction fetch (`fetch`), else a read, there.
    pub fn file_allows(&self, addr: u64, write: bool, fetch: bool) -> bool {
        let need = if write {
            libc::PROT_WRITE
        } else if fetch {
            libc::PROT_EXEC
        } else {
            libc::PROT_READ
        };
        self.files.at(addr).is_some() && self.prot_at(addr).is_some_and(|p| p & need != 0)
    }

    /// True if `addr` is in a file mapping hidden by `hide_files`.
    pub fn in_hidden_file(&self, addr: u64) -> bool {
        self.files_hidden && self.files.at(addr).is_some()
    }

    /// The protection of the payload page at `addr`, if mapped.
    pub fn prot_at(&self, addr: u64) -> Option<i32> {
        self.vmas.at(addr).map(|(_, v)| v.prot)
    }

    /// The end of the payload mapping that holds `addr`, if any.
    pub fn mapping_end(&self, addr: u64) -> Option<u64> {
        self.vmas.at(addr).map(|(_, v)| v.end)
    }

    /// The payload's mappings as km records them, [start, end) in order.
    pub fn mappings(&self) -> Vec<(u64, u64)> {
        self.vmas.iter().map(|(s, v)| (s, v.end)).collect()
    }

    /// The heap, [start, page-rounded break).
    pub fn heap(&self) -> (u64, u64) {
        (self.brk_start, page_up(self.brk).unwrap_or(self.brk))
    }

    /// The writable payload mappings, [start, end) each.
    pub fn writable(&self) -> Vec<(u64, u64)> {
        self.vmas.iter().filter(|(_, v)| v.prot & libc::PROT_WRITE != 0).map(|(s, v)| (s, v.end)).collect()
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
            if !self.vmas.is_free(old_top, new_top) || self.may_grow(new_top - old_top, (0, 0)).is_err() {
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
