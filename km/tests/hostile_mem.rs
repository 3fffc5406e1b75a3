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

#[test]
fn robust_list_unmapped_or_read_only() {
    Case::new("robust", &["unmapped"]).check(0);
}
