//! The payload's futexes as km itself touches them: waking a tid word's
//! waiters and releasing a dead thread's robust futexes, as the kernel
//! does at thread exit. The futex syscall itself is in `syscall::threads`.

use std::sync::atomic::{AtomicU32, Ordering};

use libc::*;

use crate::mem::{copy, GuestRange};
use crate::process::Process;
use crate::signal::Tid;

/// struct robust_list_head: next, futex_offset, list_op_pending.
pub const ROBUST_HEAD_SIZE: u64 = 24;

/// Wakes up to `n` waiters on the payload futex at `addr`.
pub fn wake(addr: u64, n: u32) {
    // SAFETY: FUTEX_WAKE reads no memory; the address only names the queue.
    unsafe { libc::syscall(SYS_futex, addr, FUTEX_WAKE, n, 0, 0, 0) };
}

const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_WAITERS: u32 = 0x8000_0000;
/// Linux's bound on a robust list walk, against a looped list.
const ROBUST_LIST_LIMIT: usize = 2048;

/// Marks the robust futexes a dying thread holds as owner-died and wakes
/// a waiter of each, as the kernel does at thread exit. The list is the
/// payload's, so every pointer is checked and read through `copy`.
pub fn release_robust_list(proc: &Process, tid: Tid, head: u64) {
    if head == 0 {
        return;
    }
    let mut h = [0u64; 3];
    if GuestRange::new(head, ROBUST_HEAD_SIZE).and_then(|r| copy::read_slice(r, &mut h)).is_err() {
        return;
    }
    let [mut entry, offset, pending] = h;
    let futex_of = |e: u64| (e & !1).wrapping_add(offset);
    let mut seen = 0;
    while entry != head && seen < ROBUST_LIST_LIMIT {
        let Ok(next) = GuestRange::of::<u64>(entry & !1).and_then(copy::read_obj::<u64>) else { break };
        if entry != pending {
            owner_died(proc, tid, futex_of(entry));
        }
        entry = next;
        seen += 1;
    }
    if pending != 0 {
        owner_died(proc, tid, futex_of(pending));
    }
}

fn owner_died(proc: &Process, tid: Tid, addr: u64) {
    if !addr.is_multiple_of(4) || GuestRange::new(addr, 4).is_err() {
        return;
    }
    // The address space lock keeps the page mapped, with the protection
    // read here, while km updates the word in place.
    let space = proc.space();
    if space.prot_at(addr).is_none_or(|p| p & (PROT_READ | PROT_WRITE) != PROT_READ | PROT_WRITE) {
        return;
    }
    // SAFETY: `addr` is 4-aligned payload memory, mapped read-write in km
    // (checked under the lock that guards every mapping change), so an
    // atomic access cannot fault; other threads use the word atomically.
    let word = unsafe { &*(addr as *const AtomicU32) };
    let mut v = word.load(Ordering::SeqCst);
    loop {
        if v & FUTEX_TID_MASK != tid as u32 {
            return;
        }
        let new = (v & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
        match word.compare_exchange(v, new, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => break,
            Err(now) => v = now,
        }
    }
    drop(space);
    if v & FUTEX_WAITERS != 0 {
        wake(addr, 1);
    }
}
