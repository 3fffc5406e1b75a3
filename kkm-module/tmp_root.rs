// SPDX-License-Identifier: GPL-2.0

//! TEMPORARY guest root, until mmu.rs (branch kmmu) lands and replaces this
//! file: every page of every memory slot is pinned and mapped up front (user,
//! executable, writable if its VMA is), plus the switcher's supervisor pages. It serves
//! the hand-assembled test guests of kkm-ioctl only; the real one fills
//! entries on #PF, follows the VMAs' permissions and has an mmu notifier.

use crate::guest_mode::{page_pfn, pfn_to_virt, read_cr4};
use kernel::{bindings, prelude::*};

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const ACCESSED: u64 = 1 << 5;
const DIRTY: u64 = 1 << 6;
const NX: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const CR4_LA57: u64 = 1 << 12;

pub(crate) struct TmpRoot {
    levels: u32,
    root: *mut bindings::page,
    tables: KVec<*mut bindings::page>,
    pinned: KVec<*mut bindings::page>,
}

// SAFETY: the pages are owned allocations and pins, not tied to a thread.
unsafe impl Send for TmpRoot {}
// SAFETY: after `build` the tables are only read (by the CPU).
unsafe impl Sync for TmpRoot {}

fn alloc_table() -> Result<*mut bindings::page> {
    // SAFETY: plain zeroed page allocation.
    let p =
        unsafe { bindings::alloc_pages(bindings::GFP_KERNEL_ACCOUNT | bindings::__GFP_ZERO, 0) };
    if p.is_null() {
        Err(ENOMEM)
    } else {
        Ok(p)
    }
}

impl TmpRoot {
    /// Builds a root for `slots`, given as `(gpa, size, uaddr)`, in the
    /// caller's address space.
    pub(crate) fn build(slots: &[(u64, u64, u64)]) -> Result<Self> {
        let root = alloc_table()?;
        let levels = if read_cr4() & CR4_LA57 != 0 { 5 } else { 4 };
        let mut r = Self {
            levels,
            root,
            tables: KVec::new(),
            pinned: KVec::new(),
        };
        for &(gpa, size, uaddr) in slots {
            for off in (0..size).step_by(4096) {
                // Writable where the VMA allows writes, else read-only.
                let mut page: *mut bindings::page = core::ptr::null_mut();
                let mut flags = USER | WRITABLE;
                // SAFETY: pins one page of the caller's own memory; `page`
                // receives it.
                let mut n = unsafe {
                    bindings::pin_user_pages_fast(
                        (uaddr + off) as usize,
                        1,
                        bindings::FOLL_WRITE | bindings::FOLL_LONGTERM,
                        &mut page,
                    )
                };
                if n != 1 {
                    flags = USER;
                    // SAFETY: as above, for reading.
                    n = unsafe {
                        bindings::pin_user_pages_fast(
                            (uaddr + off) as usize,
                            1,
                            bindings::FOLL_LONGTERM,
                            &mut page,
                        )
                    };
                }
                if n != 1 {
                    return Err(EFAULT);
                }
                r.pinned.push(page, GFP_KERNEL)?;
                r.map(gpa + off, page_pfn(page), flags)?;
            }
        }
        crate::guest_mode::supervisor_pages(|va, pfn, w, x| {
            r.map(
                va as u64,
                pfn,
                if w { WRITABLE } else { 0 } | if x { 0 } else { NX },
            )
        })?;
        Ok(r)
    }

    pub(crate) fn root_phys(&self) -> u64 {
        page_pfn(self.root) << 12
    }

    fn map(&mut self, va: u64, pfn: u64, flags: u64) -> Result {
        let mut table = pfn_to_virt(page_pfn(self.root)) as *mut u64;
        for level in (2..=self.levels).rev() {
            let idx = ((va >> (12 + 9 * (level - 1))) & 0x1ff) as usize;
            // SAFETY: `table` is one of this root's table pages, `idx` < 512.
            let e = unsafe { table.add(idx) };
            // SAFETY: as above; the tables are only changed here, under the
            // caller's `&mut self`.
            let mut v = unsafe { e.read() };
            if v & PRESENT == 0 {
                let t = alloc_table()?;
                self.tables.push(t, GFP_KERNEL).inspect_err(|_| {
                    // SAFETY: `t` was just allocated and is used nowhere.
                    unsafe { bindings::__free_pages(t, 0) }
                })?;
                v = (page_pfn(t) << 12) | PRESENT | WRITABLE | USER | ACCESSED;
                // SAFETY: as above.
                unsafe { e.write(v) };
            }
            table = pfn_to_virt((v & ADDR_MASK) >> 12) as *mut u64;
        }
        let idx = ((va >> 12) & 0x1ff) as usize;
        // SAFETY: as above, for the leaf table.
        unsafe {
            table
                .add(idx)
                .write((pfn << 12) | PRESENT | ACCESSED | DIRTY | flags)
        };
        Ok(())
    }
}

impl Drop for TmpRoot {
    fn drop(&mut self) {
        // SAFETY: no CPU uses the root any more (it is dropped with the last
        // vCPU run that held it); the pages were allocated or pinned above.
        unsafe {
            for &p in self.pinned.iter() {
                bindings::unpin_user_page(p);
            }
            for &t in self.tables.iter() {
                bindings::__free_pages(t, 0);
            }
            bindings::__free_pages(self.root, 0);
        }
    }
}
