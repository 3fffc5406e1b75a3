//! Payload memory under pressure: robust futexes km must release without
//! touching memory that can fault, MAP_FIXED mappings that fail, and many
//! threads changing the address space while others use it. Each case runs
//! natively and under km and requires the same output and status.

#[allow(dead_code)]
mod support;

use support::Case;

/// musl's robust mutexes (libc-test's pthread_robust): private and shared,
/// plain and PI; the PI waiter hung under km while the dead owner's host
/// thread lived on.
#[test]
fn robust_mutexes() {
    Case::new("robust", &["mutexes"]).check(0);
}

/// A robust-list word past the end of its file killed km with SIGBUS.
#[test]
fn robust_list_past_eof() {
    Case::new("robust", &["past-eof"]).check(0);
}

/// Words km cannot read or mark; the owned read-only one takes km's
/// fault-safe cmpxchg through its SIGSEGV fixup.
#[test]
fn robust_list_unmapped_or_read_only() {
    Case::new("robust", &["unmapped"]).check(0);
}

/// A failed MAP_FIXED mmap (EBADF, EACCES, ENODEV) left the range unmapped
/// under km, where Linux keeps the old mapping.
#[test]
fn failed_map_fixed_keeps_old_mapping() {
    Case::new("mmap-fail", &[]).check(0);
}

/// Mappers, checkers and touchers on one address space: every canary a
/// checker reads is the current round's (no stale translation after an
/// munmap and a new mmap at the same place), and every write after
/// mprotect(PROT_READ) faults. A thread moving the break and growing a
/// mapping in place with mremap runs meanwhile (km's in-place growth
/// once picked a spot overlapping the grown range: EINVAL).
#[test]
fn mmap_race_sees_current_pages() {
    Case::new("mmap-race", &["8", "40"]).check(0);
}

/// Two threads making system calls read a page while a third replaces it
/// and makes it read-only under them: between their calls they never see
/// the last round's page nor write through a stale writable translation.
/// Small here; the kkm rig runs it with 10^5 calls per thread.
#[test]
fn no_stale_translation_between_syscalls() {
    Case::new("tlb-race", &["3000", "30"]).check(0);
}
