//! The page-table pool: guest page-table pages from the monitor area,
//! written through km's own mapping of it.
//!
//! The device sees only the part of the pool registered in memory slots,
//! and that part grows with use: a small program needs a few dozen table
//! pages, and a slot over the whole 248 MiB cost every process (every fork
//! above all) the device's per-page metadata for it, and the parent of
//! every fork a walk of that metadata when the host fork write-protected
//! the pool (measured here: the child's slot registration 3.6 ms median
//! under load against 0.17 ms for a 2 MiB pool; the parent's fork 0.33 ms
//! against 0.29 ms).

use crate::guest::layout::{monitor, MIB, PAGE_SIZE};
use crate::guest::paging::TableMemory;

/// The end of the pool memory a new address space registers (with the
/// top slot): 512 table pages, the tables of 1 GiB of payload memory.
pub const FIRST_END: u64 = monitor::PAGE_TABLES + 2 * MIB;

#[derive(Clone)]
pub struct PoolTables {
    next: u64,
    /// The end of the pool memory registered with the device: pages from
    /// here on are not handed out until `grown` moves it.
    limit: u64,
}

impl PoolTables {
    pub fn new() -> PoolTables {
        PoolTables { next: monitor::PAGE_TABLES, limit: FIRST_END }
    }

    /// The end of the registered pool memory.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The next range of the pool to register once it runs out (as much
    /// again as is registered, so a big address space needs few slots), or
    /// None when the pool is exhausted.
    pub fn next_piece(&self) -> Option<(u64, u64)> {
        if self.limit >= monitor::PAGE_TABLES_END {
            return None;
        }
        let end = (self.limit + (self.limit - monitor::PAGE_TABLES)).min(monitor::PAGE_TABLES_END);
        Some((self.limit, end))
    }

    /// Records that the device now sees the pool up to `end`.
    pub fn grown(&mut self, end: u64) {
        debug_assert!(end > self.limit && end <= monitor::PAGE_TABLES_END);
        self.limit = end;
    }
}

impl TableMemory for PoolTables {
    fn alloc_table(&mut self) -> Option<u64> {
        if self.next >= self.limit {
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
        debug_assert!((monitor::PAGE_TABLES..self.limit).contains(&table) && index < 512);
        // SAFETY: `table` is a page this pool handed out (inside the
        // monitor mapping, which outlives the pool) and index < 512 keeps
        // the aligned 8-byte store inside it. The guest may write the same
        // word concurrently; a volatile store of an aligned u64 cannot tear.
        unsafe { ((table + index * 8) as *mut u64).write_volatile(entry) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_double_what_is_registered_up_to_the_end() {
        let mut pool = PoolTables::new();
        let mut pieces = Vec::new();
        while let Some((start, end)) = pool.next_piece() {
            assert_eq!(start, pool.limit());
            pieces.push((end - start) / MIB);
            pool.grown(end);
        }
        assert_eq!(pieces, [2, 4, 8, 16, 32, 64, 120]);
        assert_eq!(pool.limit(), monitor::PAGE_TABLES_END);
    }
}
