//! The payload's fds that stand for virtual procfs files, and what each
//! stands for. Duplicates share the entry, as they share the open file.

use std::collections::BTreeMap;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use super::node::Node;
use crate::process::lock;

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

static TABLE: Mutex<BTreeMap<i32, Arc<Entry>>> = Mutex::new(BTreeMap::new());

/// Records `fd` (just created for the payload) as standing for `node`.
pub fn insert(fd: OwnedFd, node: Node, kind: Kind) -> OwnedFd {
    // The number is what the payload will know it by.
    let raw = fd.into_raw_fd();
    lock(&TABLE).insert(raw, Arc::new(Entry { node, kind }));
    // SAFETY: `raw` came from the OwnedFd just taken apart.
    unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) }
}

pub fn get(fd: i32) -> Option<Arc<Entry>> {
    lock(&TABLE).get(&fd).cloned()
}

/// After `fd` was closed (or replaced by dup2).
pub fn forget(fd: i32) {
    lock(&TABLE).remove(&fd);
}

/// After `new` became a duplicate of `old`.
pub fn dup(old: i32, new: i32) {
    let mut t = lock(&TABLE);
    match t.get(&old).cloned() {
        Some(e) => t.insert(new, e),
        None => t.remove(&new),
    };
}
