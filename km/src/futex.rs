//! Futex words in payload memory that km itself acts on when a thread
//! ends: the tid word it clears and wakes (CLONE_CHILD_CLEARTID), and the
//! robust futexes on the thread's robust list, released as Linux's
//! exit_robust_list does. Used by the thread's exit (`thread.rs`) and by
//! the futex calls (`syscall/threads.rs`).

use libc::{SYS_futex, FUTEX_WAKE};
use nix::errno::Errno;

use crate::mem::{atomic, copy, GuestRange};
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
/// a waiter of each, as the kernel's exit_robust_list does at thread exit.
/// The list is the payload's, so every pointer is checked and read through
/// `copy`, and the words are updated with `atomic::cmpxchg_u32`, which
/// fails instead of faulting. As in Linux, a list that cannot be read, or
/// an entry whose word is misaligned or cannot be updated, ends the walk.
pub fn release_robust_list(tid: Tid, head: u64) {
    if head == 0 {
        return;
    }
    let mut h = [0u64; 3];
    if GuestRange::new(head, ROBUST_HEAD_SIZE).and_then(|r| copy::read_slice(r, &mut h)).is_err() {
        return;
    }
    let [mut entry, offset, pending] = h;
    // Bit 0 of a list pointer marks a PI futex.
    let futex_of = |e: u64| (e & !1).wrapping_add(offset);
    let mut seen = 0;
    while entry & !1 != head {
        let next = GuestRange::of::<u64>(entry & !1).and_then(copy::read_obj::<u64>);
        if entry & !1 != pending & !1 && owner_died(tid, futex_of(entry), entry & 1 != 0, false).is_err() {
            return;
        }
        let Ok(next) = next else { return };
        entry = next;
        seen += 1;
        if seen == ROBUST_LIST_LIMIT {
            break;
        }
    }
    if pending != 0 {
        let _ = owner_died(tid, futex_of(pending), pending & 1 != 0, true);
    }
}

/// Linux's handle_futex_death for the word at `addr`: if `tid` owns it,
/// keep only its waiters bit, add FUTEX_OWNER_DIED and wake one waiter
/// (PI waiters get the lock when the owner's host thread ends).
fn owner_died(tid: Tid, addr: u64, pi: bool, pending: bool) -> Result<(), Errno> {
    if !addr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    // Read first, as Linux does: a word the thread does not own is left
    // alone even where it could not be written.
    let word = GuestRange::of::<u32>(addr)?;
    let mut v = copy::read_obj::<u32>(word)?;
    loop {
        // An unlock (or a woken waiter) interrupted after releasing the
        // word: wake someone rather than leave waiters blocked forever.
        if pending && !pi && v == 0 {
            wake(addr, 1);
            return Ok(());
        }
        if v & FUTEX_TID_MASK != tid as u32 {
            return Ok(());
        }
        let new = (v & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
        match atomic::cmpxchg_u32(word, v, new)? {
            found if found == v => break,
            found => v = found,
        }
    }
    if !pi && v & FUTEX_WAITERS != 0 {
        wake(addr, 1);
    }
    Ok(())
}
