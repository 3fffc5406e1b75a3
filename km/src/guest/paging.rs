//! The guest's 4-level page tables for the window below 512 GiB.
//!
//! km keeps its own record of which table pages exist and only ever writes
//! entries into guest memory, never reads them back: a CPL0 payload can
//! rewrite its tables, and km must not trust what it finds there.

use std::collections::HashMap;

use super::layout::{PAGE_SIZE, WINDOW_END};

pub const PTE_PRESENT: u64 = 1 << 0;
pub const PTE_WRITE: u64 = 1 << 1;
pub const PTE_USER: u64 = 1 << 2;
pub const PTE_ACCESSED: u64 = 1 << 5;
pub const PTE_DIRTY: u64 = 1 << 6;
pub const PTE_NX: u64 = 1 << 63;

const ENTRIES: u64 = 512;
const PT_SPAN: u64 = PAGE_SIZE * ENTRIES; // 2 MiB
const PD_SPAN: u64 = PT_SPAN * ENTRIES; // 1 GiB

/// Where page-table pages come from and how entries reach them.
pub trait TableMemory {
    /// A zeroed page for a table; its guest-physical address.
    fn alloc_table(&mut self) -> Option<u64>;
    /// Stores `entry` at `index` of the table page at `table`.
    fn write_entry(&mut self, table: u64, index: u64, entry: u64);
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PagingError {
    #[error("page-table pool exhausted")]
    OutOfTables,
}

/// Access a leaf entry grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    /// Reachable at CPL3 (payload pages; kkm runs the payload in ring 3).
    pub user: bool,
}

impl Access {
    /// The leaf entry for `addr`, or 0 (not present) when nothing is allowed.
    fn entry(self, addr: u64) -> u64 {
        if !(self.read || self.write || self.exec) {
            return 0;
        }
        // Accessed/dirty preset: the CPU need not write them back, which
        // keeps read-only table pages (GDT, pad) truly read-only.
        let mut e = addr | PTE_PRESENT | PTE_ACCESSED | PTE_DIRTY;
        if self.write {
            e |= PTE_WRITE;
        }
        if self.user {
            e |= PTE_USER;
        }
        if !self.exec {
            e |= PTE_NX;
        }
        e
    }
}

#[derive(Clone)]
pub struct PageTables<M: TableMemory> {
    mem: M,
    pml4: u64,
    pdpt: u64,
    /// Page directories by 1 GiB index, page tables by 2 MiB index.
    pds: HashMap<u64, u64>,
    pts: HashMap<u64, u64>,
}

const TABLE: u64 = PTE_PRESENT | PTE_WRITE | PTE_USER;

impl<M: TableMemory> PageTables<M> {
    pub fn new(mut mem: M) -> Result<Self, PagingError> {
        let pml4 = mem.alloc_table().ok_or(PagingError::OutOfTables)?;
        let pdpt = mem.alloc_table().ok_or(PagingError::OutOfTables)?;
        mem.write_entry(pml4, 0, pdpt | TABLE);
        Ok(PageTables { mem, pml4, pdpt, pds: HashMap::new(), pts: HashMap::new() })
    }

    /// The value for CR3.
    pub fn root(&self) -> u64 {
        self.pml4
    }

    /// Where the table pages come from.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    pub fn memory_mut(&mut self) -> &mut M {
        &mut self.mem
    }

    /// Maps [start, end) identity with `access` (not present if it grants
    /// nothing). Both ends page-aligned, below 512 GiB.
    pub fn map(&mut self, start: u64, end: u64, access: Access) -> Result<(), PagingError> {
        check_range(start, end);
        let mut addr = start;
        while addr < end {
            let pt = self.table_for(addr)?;
            let stop = end.min((addr / PT_SPAN + 1) * PT_SPAN);
            while addr < stop {
                self.mem.write_entry(pt, (addr / PAGE_SIZE) % ENTRIES, access.entry(addr));
                addr += PAGE_SIZE;
            }
        }
        Ok(())
    }

    /// Makes [start, end) not present. Tables stay allocated for reuse.
    pub fn unmap(&mut self, start: u64, end: u64) {
        check_range(start, end);
        let mut addr = start;
        while addr < end {
            let stop = end.min((addr / PT_SPAN + 1) * PT_SPAN);
            if let Some(&pt) = self.pts.get(&(addr / PT_SPAN)) {
                while addr < stop {
                    self.mem.write_entry(pt, (addr / PAGE_SIZE) % ENTRIES, 0);
                    addr += PAGE_SIZE;
                }
            }
            addr = stop;
        }
    }

    fn table_for(&mut self, addr: u64) -> Result<u64, PagingError> {
        let pt_index = addr / PT_SPAN;
        if let Some(&pt) = self.pts.get(&pt_index) {
            return Ok(pt);
        }
        let pd_index = addr / PD_SPAN;
        let pd = match self.pds.get(&pd_index) {
            Some(&pd) => pd,
            None => {
                let pd = self.mem.alloc_table().ok_or(PagingError::OutOfTables)?;
                self.mem.write_entry(self.pdpt, pd_index, pd | TABLE);
                self.pds.insert(pd_index, pd);
                pd
            }
        };
        let pt = self.mem.alloc_table().ok_or(PagingError::OutOfTables)?;
        self.mem.write_entry(pd, pt_index % ENTRIES, pt | TABLE);
        self.pts.insert(pt_index, pt);
        Ok(pt)
    }
}

fn check_range(start: u64, end: u64) {
    // Callers pass ranges they validated; a violation is a km bug.
    assert!(
        start.is_multiple_of(PAGE_SIZE) && end.is_multiple_of(PAGE_SIZE) && start <= end && end <= WINDOW_END,
        "bad page-table range {start:#x}..{end:#x}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct FakeMemory {
        next: u64,
        entries: HashMap<(u64, u64), u64>,
        limit: u64,
    }

    impl TableMemory for FakeMemory {
        fn alloc_table(&mut self) -> Option<u64> {
            if self.next >= self.limit {
                return None;
            }
            self.next += 1;
            Some(0x1000_0000 + self.next * PAGE_SIZE)
        }
        fn write_entry(&mut self, table: u64, index: u64, entry: u64) {
            assert!(index < ENTRIES);
            self.entries.insert((table, index), entry);
        }
    }

    fn pool(limit: u64) -> FakeMemory {
        FakeMemory { limit, ..Default::default() }
    }

    /// Walks the tables like the MMU: the leaf entry for `va`, if present.
    fn walk(pt: &PageTables<FakeMemory>, va: u64) -> Option<u64> {
        let e = &pt.mem.entries;
        let mut table = pt.root();
        for shift in [39u64, 30, 21, 12] {
            let entry = *e.get(&(table, (va >> shift) & 511))?;
            if entry & PTE_PRESENT == 0 {
                return None;
            }
            if shift == 12 {
                return Some(entry);
            }
            table = entry & 0x000f_ffff_ffff_f000;
        }
        None
    }

    const RW: Access = Access { read: true, write: true, exec: false, user: true };
    const RX: Access = Access { read: true, write: false, exec: true, user: true };

    #[test]
    fn maps_identity_with_permissions() {
        let mut pt = PageTables::new(pool(100)).unwrap();
        pt.map(0x40_0000, 0x40_3000, RX).unwrap();
        pt.map(0x40_3000, 0x40_5000, RW).unwrap();
        let e = walk(&pt, 0x40_1000).unwrap();
        assert_eq!(e & 0x000f_ffff_ffff_f000, 0x40_1000);
        assert_eq!(e & (PTE_WRITE | PTE_NX | PTE_USER), PTE_USER);
        let e = walk(&pt, 0x40_4000).unwrap();
        assert_eq!(e & (PTE_WRITE | PTE_NX), PTE_WRITE | PTE_NX);
        assert_eq!(walk(&pt, 0x40_5000), None);
        assert_eq!(walk(&pt, 0x3f_f000), None);
    }

    #[test]
    fn ranges_crossing_table_boundaries() {
        let mut pt = PageTables::new(pool(100)).unwrap();
        // Crosses a 2 MiB and a 1 GiB boundary.
        let (start, end) = ((1 << 30) - 0x3000, (1 << 30) + 0x20_3000);
        pt.map(start, end, RW).unwrap();
        for va in (start..end).step_by(PAGE_SIZE as usize) {
            assert_eq!(walk(&pt, va).unwrap() & 0x000f_ffff_ffff_f000, va);
        }
        assert_eq!(walk(&pt, end), None);
        pt.unmap(start + 0x1000, end - 0x1000);
        assert!(walk(&pt, start).is_some());
        assert!(walk(&pt, end - 0x1000).is_some());
        assert_eq!(walk(&pt, start + 0x1000), None);
        assert_eq!(walk(&pt, 1 << 30), None);
    }

    #[test]
    fn no_access_means_not_present_and_reuses_tables() {
        let mut pt = PageTables::new(pool(100)).unwrap();
        pt.map(0x60_0000, 0x60_2000, RW).unwrap();
        let used = pt.mem.next;
        pt.map(0x60_0000, 0x60_1000, Access::default()).unwrap();
        assert_eq!(walk(&pt, 0x60_0000), None);
        assert!(walk(&pt, 0x60_1000).is_some());
        assert_eq!(pt.mem.next, used, "remapping must not allocate tables");
    }

    #[test]
    fn unmap_of_never_mapped_range_is_harmless() {
        let mut pt = PageTables::new(pool(100)).unwrap();
        pt.unmap(0x100_0000, 0x200_0000);
        assert_eq!(pt.mem.next, 2);
    }

    #[test]
    fn pool_exhaustion_is_an_error() {
        let mut pt = PageTables::new(pool(3)).unwrap();
        assert_eq!(pt.map(0x40_0000, 0x40_1000, RW), Err(PagingError::OutOfTables));
    }
}
