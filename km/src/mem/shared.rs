//! The address space as the payload's threads share it.
//!
//! mmap, munmap and mprotect change the host mapping without holding the
//! lock: that call is the slow part (it allocates, frees and flushes, and
//! KVM's MMU notifier makes every running vCPU exit), and a thread
//! preempted while holding the lock for it stalls every other thread's
//! memory call behind it. Under the lock a call only validates, reserves
//! its range (busy until it finishes) and updates km's record and the
//! guest tables; calls on disjoint ranges then reach the host side by side
//! (the host kernel orders them as it does for a native process), and a
//! call on a busy range waits for it, so km's record always follows the
//! host. brk and mremap keep the whole address space to themselves for
//! the little time they take.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};

use nix::errno::Errno;

use super::space::{AddressSpace, Begin, Change};
use crate::process::lock;

pub struct SharedSpace {
    space: Mutex<AddressSpace>,
    /// Signalled whenever a busy range is released or an exclusive
    /// holder is done.
    released: Condvar,
}

impl SharedSpace {
    pub fn new(space: AddressSpace) -> SharedSpace {
        SharedSpace { space: Mutex::new(space), released: Condvar::new() }
    }

    /// The address space, for calls that do not change host mappings, or
    /// make their change under the lock and on ranges no call has busy.
    pub fn lock(&self) -> MutexGuard<'_, AddressSpace> {
        lock(&self.space)
    }

    /// The address space once no host change is in flight; new ones wait
    /// until the guard is dropped.
    pub fn exclusive(&self) -> Exclusive<'_> {
        let mut space = self.lock();
        space.exclusive_waiters += 1;
        while !space.idle() {
            space = self.released.wait(space).unwrap_or_else(|e| e.into_inner());
        }
        space.exclusive_waiters -= 1;
        Exclusive { space, released: &self.released }
    }

    /// Runs `begin` under the lock until it stops asking to wait, makes the
    /// host change without the lock and records its outcome.
    fn change(&self, mut begin: impl FnMut(&mut AddressSpace) -> Result<Begin, Errno>) -> Result<Option<u64>, Errno> {
        let mut space = self.lock();
        let change: Change = loop {
            if space.exclusive_waiters == 0 {
                match begin(&mut space)? {
                    Begin::Now(change) => break change,
                    Begin::Nothing => return Ok(None),
                    Begin::Wait => {}
                }
            }
            space = self.released.wait(space).unwrap_or_else(|e| e.into_inner());
        };
        drop(space);
        let done = change.apply();
        let start = change.start;
        let mut space = self.lock();
        let result = space.finish(change, done);
        drop(space);
        self.released.notify_all();
        result.map(|_| Some(start))
    }

    /// mmap(2): the address mapped.
    pub fn mmap(&self, addr: u64, len: u64, prot: i32, flags: i32, fd: i32, off: i64) -> Result<u64, Errno> {
        let mapped = self.change(|s| s.begin_mmap(addr, len, prot, flags, fd, off))?;
        mapped.ok_or(Errno::EINVAL)
    }

    /// munmap(2).
    pub fn munmap(&self, addr: u64, len: u64) -> Result<(), Errno> {
        self.change(|s| s.begin_munmap(addr, len)).map(drop)
    }

    /// shmat(2) of segment `id` of `len` bytes: the address attached.
    pub fn shmat(&self, id: i32, addr: Option<u64>, len: u64, flags: i32) -> Result<u64, Errno> {
        let attached = self.change(|s| s.begin_shmat(id, addr, len, flags))?;
        attached.ok_or(Errno::EINVAL)
    }

    /// shmdt(2): each piece of the attachment goes back to the
    /// reservation as munmap would take it.
    pub fn shmdt(&self, addr: u64) -> Result<(), Errno> {
        let ranges = self.lock().shmdt_ranges(addr)?;
        for (start, end) in ranges {
            self.munmap(start, end - start)?;
        }
        Ok(())
    }

    /// mprotect(2).
    pub fn mprotect(&self, addr: u64, len: u64, prot: i32) -> Result<(), Errno> {
        self.change(|s| s.begin_mprotect(addr, len, prot)).map(drop)
    }
}

/// The address space held by `SharedSpace::exclusive`.
pub struct Exclusive<'a> {
    space: MutexGuard<'a, AddressSpace>,
    released: &'a Condvar,
}

impl Deref for Exclusive<'_> {
    type Target = AddressSpace;
    fn deref(&self) -> &AddressSpace {
        &self.space
    }
}

impl DerefMut for Exclusive<'_> {
    fn deref_mut(&mut self) -> &mut AddressSpace {
        &mut self.space
    }
}

impl Drop for Exclusive<'_> {
    /// Calls that waited for this one may go on.
    fn drop(&mut self) {
        self.released.notify_all();
    }
}
