//! What km cut from a process's start and fork for speed, shown to behave
//! as before: each case runs natively and under km and requires the same
//! output and status.

#[allow(dead_code)]
mod support;

use support::Case;

/// The guest page-table pool is registered with the device as it grows:
/// 3 GiB touched every 2 MiB (past the first piece) while another thread
/// runs, a fork whose child starts from the grown pool and grows it
/// further, and a map after munmap.
#[test]
fn page_table_pool_grows_across_fork() {
    Case::new("pagepool", &[]).check(0);
}
