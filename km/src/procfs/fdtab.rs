//! The payload's fds whose host object is only a stand-in, and what each
//! stands for: virtual procfs files and signalfds. Duplicates share the
//! entry, as they share the open file; dup, dup2, dup3, F_DUPFD and close
//! keep the table in step.

use std::collections::BTreeMap;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use super::node::Node;
use crate::process::lock;
use crate::signal::sigfd::SignalFd;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `mem`: km serves reads and writes from the guest window.
    Mem { read: bool, write: bool },
    /// A directory: km serves its listing.
    Dir,
    /// Generated text in a sealed memfd: the host serves it.
    Snapshot,
    /// O_PATH: no I/O at all.
    Path,
}

#[derive(Debug)]
pub struct Entry {
    pub node: Node,
    pub kind: Kind,
}

#[derive(Clone, Debug)]
enum Virtual {
    Proc(Arc<Entry>),
    Signal(Arc<SignalFd>),
}

static TABLE: Mutex<BTreeMap<i32, Virtual>> = Mutex::new(BTreeMap::new());

/// Records `fd` (just created for the payload) as standing for `node`.
pub fn insert(fd: OwnedFd, node: Node, kind: Kind) -> OwnedFd {
    // The number is what the payload will know it by.
    let raw = fd.into_raw_fd();
    lock(&TABLE).insert(raw, Virtual::Proc(Arc::new(Entry { node, kind })));
    // SAFETY: `raw` came from the OwnedFd just taken apart.
    unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) }
}

/// The procfs file `fd` stands for.
pub fn get(fd: i32) -> Option<Arc<Entry>> {
    match lock(&TABLE).get(&fd) {
        Some(Virtual::Proc(e)) => Some(e.clone()),
        _ => None,
    }
}

/// Records `fd` (just created for the payload) as signalfd `s`.
pub fn insert_signalfd(fd: i32, s: Arc<SignalFd>) {
    lock(&TABLE).insert(fd, Virtual::Signal(s));
}

/// The signalfd `fd` is, if it is one.
pub fn signalfd(fd: i32) -> Option<Arc<SignalFd>> {
    match lock(&TABLE).get(&fd) {
        Some(Virtual::Signal(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The table, held across a fork so that the child finds it whole.
pub struct Held(MutexGuard<'static, BTreeMap<i32, Virtual>>);

pub fn hold() -> Held {
    Held(lock(&TABLE))
}

impl Held {
    /// Each signalfd's mask and its payload fd numbers that an exec keeps
    /// (those without FD_CLOEXEC).
    pub fn signalfds_kept_on_exec(&self) -> Vec<(u64, Vec<i32>)> {
        let mut groups: Vec<(Arc<SignalFd>, Vec<i32>)> = Vec::new();
        for (&n, v) in self.0.iter() {
            let Virtual::Signal(s) = v else { continue };
            // SAFETY: F_GETFD on a payload fd km knows as a signalfd.
            if unsafe { libc::fcntl(n, libc::F_GETFD) } & libc::FD_CLOEXEC != 0 {
                continue;
            }
            match groups.iter_mut().find(|g| Arc::ptr_eq(&g.0, s)) {
                Some(g) => g.1.push(n),
                None => groups.push((s.clone(), vec![n])),
            }
        }
        groups.into_iter().map(|(s, fds)| (s.mask(), fds)).collect()
    }

    /// The payload fd numbers that are signalfd `s`.
    pub fn numbers_of(&self, s: &Arc<SignalFd>) -> Vec<i32> {
        let same = |v: &Virtual| matches!(v, Virtual::Signal(o) if Arc::ptr_eq(o, s));
        self.0.iter().filter(|(_, v)| same(v)).map(|(&n, _)| n).collect()
    }
}

/// After `fd` was closed (or replaced by dup2).
pub fn forget(fd: i32) {
    lock(&TABLE).remove(&fd);
}

/// After close_range closed fds `first..=last`.
pub fn forget_range(first: i32, last: i32) {
    lock(&TABLE).retain(|&n, _| !(first..=last).contains(&n));
}

/// After `new` became a duplicate of `old`.
pub fn dup(old: i32, new: i32) {
    let mut t = lock(&TABLE);
    match t.get(&old).cloned() {
        Some(e) => t.insert(new, e),
        None => t.remove(&new),
    };
}
