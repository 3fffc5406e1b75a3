// SPDX-License-Identifier: GPL-2.0

//! The x86-64 page tables kkm builds for a guest: table pages from the page
//! allocator, entries written atomically (a CPU running the guest may walk
//! them at any moment), 4- or 5-level like the host. No large pages: every
//! present entry above level 1 points to a table page these tables own.

use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{bindings, prelude::*};

pub(crate) const PRESENT: u64 = 1 << 0;
pub(crate) const WRITABLE: u64 = 1 << 1;
pub(crate) const USER: u64 = 1 << 2;
/// Set in advance in every entry kkm writes, so the CPU never has to set it
/// with a locked write into tables it shares with other CPUs.
pub(crate) const ACCESSED: u64 = 1 << 5;
pub(crate) const DIRTY: u64 = 1 << 6;
pub(crate) const NO_EXEC: u64 = 1 << 63;
/// Bits 51:12: the physical address of a page or of the next table.
const ADDR: u64 = 0x000f_ffff_ffff_f000;
const PAGE_SHIFT: u32 = 12;
const INDEX_BITS: u32 = 9;
const ENTRIES: usize = 1 << INDEX_BITS;
/// CR4.LA57: the CPU runs 5-level paging.
const CR4_LA57: u64 = 1 << 12;

/// The paging depth of this CPU, which the guest's root must match: CR4.LA57
/// cannot change in long mode, and the switcher loads the guest root under
/// the host's CR4.
pub(crate) fn host_levels() -> u32 {
    let cr4: u64;
    // SAFETY: reading CR4 in ring 0 has no side effects and touches no memory.
    unsafe {
        core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags))
    };
    if cr4 & CR4_LA57 != 0 {
        5
    } else {
        4
    }
}

/// The NX bit where the host's EFER.NXE makes it valid; elsewhere it is a
/// reserved bit, whose use would make every walk fault.
pub(crate) fn no_exec_bit() -> u64 {
    // SAFETY: `__supported_pte_mask` is written only during early boot.
    NO_EXEC & unsafe { bindings::__supported_pte_mask } as u64
}

/// The kernel's direct-map address of physical address `phys` (`__va`).
fn direct_map(phys: u64) -> usize {
    // SAFETY: `page_offset_base` is written only during early boot.
    (unsafe { bindings::page_offset_base } as u64 + phys) as usize
}

/// The physical address of a direct-map address (`__pa` for the direct map).
pub(crate) fn direct_map_phys(va: usize) -> u64 {
    // SAFETY: as in `direct_map`.
    va as u64 - unsafe { bindings::page_offset_base } as u64
}

/// Whether `va` lies in the kernel half of an address space translated by
/// `levels` levels: canonical with its top bit set (top-level index 256-511).
pub(crate) fn is_kernel_half(levels: u32, va: u64) -> bool {
    let top_bit = PAGE_SHIFT + INDEX_BITS * levels - 1;
    (va >> top_bit) == u64::MAX >> top_bit
}

/// Bytes covered by one entry of a table at `level` (1: a page table).
const fn entry_span(level: u32) -> u64 {
    1 << (PAGE_SHIFT + INDEX_BITS * (level - 1))
}

/// The leaf entry that maps `pfn` with `flags`.
pub(crate) fn leaf_entry(pfn: u64, flags: u64) -> u64 {
    ((pfn << PAGE_SHIFT) & ADDR) | flags
}

/// The page frame number a present entry points to.
pub(crate) fn entry_pfn(entry: u64) -> u64 {
    (entry & ADDR) >> PAGE_SHIFT
}

/// One zeroed page for a table, owned until it is linked into `Tables`
/// (which then frees it) or dropped.
struct TablePage(usize);

impl TablePage {
    /// Charged to the caller's memory cgroup, like KVM's shadow pages.
    fn new() -> Result<Self> {
        // SAFETY: get_zeroed_page_noprof may sleep (GFP_KERNEL_ACCOUNT):
        // every caller runs in process context without spinlocks held.
        let va = unsafe { bindings::get_zeroed_page_noprof(bindings::GFP_KERNEL_ACCOUNT) };
        if va == 0 {
            return Err(ENOMEM);
        }
        Ok(Self(va as usize))
    }

    /// Gives the page up to the tables that now link it.
    fn into_va(self) -> usize {
        let va = self.0;
        core::mem::forget(self);
        va
    }
}

impl Drop for TablePage {
    fn drop(&mut self) {
        // SAFETY: the page came from get_zeroed_page_noprof and nothing
        // links it (`into_va` forgets the pages that got linked).
        unsafe { bindings::free_pages(self.0 as _, 0) };
    }
}

/// Zeroed table pages allocated before the mmu lock is taken, for a walk
/// under it that may need new tables (allocation may sleep; the lock may
/// not). Unused pages are freed when this is dropped.
pub(crate) struct Spare(KVec<TablePage>);

impl Spare {
    pub(crate) fn new() -> Self {
        Self(KVec::new())
    }

    /// Tops up to the most one walk can use: a table for every level below
    /// the root.
    pub(crate) fn fill(&mut self, levels: u32) -> Result {
        while self.0.len() < levels as usize - 1 {
            self.0.push(TablePage::new()?, GFP_KERNEL_ACCOUNT)?;
        }
        Ok(())
    }
}

/// The tables of one guest, reached from one root page.
pub(crate) struct Tables {
    /// Direct-map address of the root table.
    root: usize,
    levels: u32,
}

impl Tables {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            root: TablePage::new()?.into_va(),
            levels: host_levels(),
        })
    }

    pub(crate) fn levels(&self) -> u32 {
        self.levels
    }

    pub(crate) fn root_phys(&self) -> u64 {
        direct_map_phys(self.root)
    }

    /// Entry `index` of the table at direct-map address `table`.
    fn slot(&self, table: usize, index: usize) -> &AtomicU64 {
        debug_assert!(index < ENTRIES);
        // SAFETY: `table` is a table page owned by `self` (the root or a
        // page reached through present entries, freed only in `drop`), so
        // its 512 naturally aligned 8-byte entries are valid for as long as
        // `self` is borrowed. They are only accessed atomically: by this
        // code and by the CPU's page walker.
        unsafe { &*(table as *const AtomicU64).add(index) }
    }

    fn index(&self, va: u64, level: u32) -> usize {
        ((va >> (PAGE_SHIFT + INDEX_BITS * (level - 1))) as usize) & (ENTRIES - 1)
    }

    /// The level-1 entry for `va` if every table above it exists.
    pub(crate) fn leaf(&self, va: u64) -> Option<&AtomicU64> {
        let mut table = self.root;
        for level in (2..=self.levels).rev() {
            let e = self
                .slot(table, self.index(va, level))
                .load(Ordering::Relaxed);
            if e & PRESENT == 0 {
                return None;
            }
            table = direct_map(e & ADDR);
        }
        Some(self.slot(table, self.index(va, 1)))
    }

    /// The level-1 entry for `va`, linking missing tables taken from
    /// `spare` with `link` flags. `None` when `spare` ran out.
    pub(crate) fn leaf_or_create(
        &mut self,
        va: u64,
        link: u64,
        spare: &mut Spare,
    ) -> Option<&AtomicU64> {
        let mut table = self.root;
        for level in (2..=self.levels).rev() {
            let slot = self.slot(table, self.index(va, level));
            let mut e = slot.load(Ordering::Relaxed);
            if e & PRESENT == 0 {
                let page = spare.0.pop()?.into_va();
                e = (direct_map_phys(page) & ADDR) | link | PRESENT | ACCESSED;
                // Release: the page's zeroes are visible before the link.
                slot.store(e, Ordering::Release);
            }
            table = direct_map(e & ADDR);
        }
        Some(self.slot(table, self.index(va, 1)))
    }

    /// Clears every level-1 entry for addresses in [start, end), a range of
    /// the user half; returns whether any was present. Tables stay (they are
    /// freed with the root): a CPU in guest mode may still be walking them
    /// until it has been kicked out.
    pub(crate) fn zap(&mut self, start: u64, end: u64) -> bool {
        start < end && self.zap_in(self.root, self.levels, 0, start, end)
    }

    /// `zap` within the table at `level` that maps addresses from `base`.
    fn zap_in(&self, table: usize, level: u32, base: u64, start: u64, end: u64) -> bool {
        let span = entry_span(level);
        let first = (start.max(base) - base) / span;
        let last = ((end - 1 - base) / span).min(ENTRIES as u64 - 1);
        let mut any = false;
        for i in first..=last {
            let slot = self.slot(table, i as usize);
            let e = slot.load(Ordering::Relaxed);
            if e & PRESENT == 0 {
                continue;
            }
            if level == 1 {
                slot.store(0, Ordering::Relaxed);
                any = true;
            } else {
                any |= self.zap_in(direct_map(e & ADDR), level - 1, base + i * span, start, end);
            }
        }
        any
    }

    /// Frees the table at `table` (of `level`) and every table below it; the
    /// pages level-1 entries point to belong to others and are left alone.
    fn free(&self, table: usize, level: u32) {
        if level > 1 {
            for i in 0..ENTRIES {
                let e = self.slot(table, i).load(Ordering::Relaxed);
                if e & PRESENT != 0 {
                    self.free(direct_map(e & ADDR), level - 1);
                }
            }
        }
        // SAFETY: `table` is a page from get_zeroed_page_noprof owned by
        // these tables; the recursion visits each table once (a tree), and
        // nothing uses it after `drop`.
        unsafe { bindings::free_pages(table as _, 0) };
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        self.free(self.root, self.levels);
    }
}
