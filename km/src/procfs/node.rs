//! The virtual tree that stands for km's procfs directory: what it
//! contains, where its links lead, and what opening an entry gives.

use std::os::fd::OwnedFd;

use nix::errno::Errno;

use super::content;
use super::fdtab::{self, Kind};
use crate::process::Process;
use crate::signal::Tid;

/// Whose directory: the process (`/proc/<pid>`, `/proc/self`) or one
/// thread (`/proc/<tid>`, or `task/<tid>` when `in_task`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub tid: Option<Tid>,
    pub in_task: bool,
}

impl View {
    pub const PROCESS: View = View { tid: None, in_task: false };
}

/// Generated files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
    Mem,
    Maps,
    Cmdline,
    Environ,
    Auxv,
    Limits,
    Status,
    Stat,
    Statm,
    FdInfo(i32),
}

/// Symbolic links, which the walk follows itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Exe,
    Cwd,
    Root,
    Fd(i32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    Dir(View),
    Fds(View),
    FdInfos(View),
    Tasks,
    File(View, Leaf),
    Link(View, Link),
}

/// What a name in a virtual directory is.
pub enum Child {
    Node(Node),
    /// An entry of km's real directory that shows nothing of km's
    /// (namespaces, mounts, cgroups), by its real path.
    Host(String),
}

#[derive(Clone, Copy)]
enum Entry {
    Node(fn(View) -> Node),
    /// Passed through from km's real directory.
    Host,
}

/// The entries of a process or thread directory, in Linux's order. Every
/// other entry of km's real directory is absent.
const ENTRIES: &[(&str, Entry)] = &[
    ("task", Entry::Node(|_| Node::Tasks)),
    ("fd", Entry::Node(Node::Fds)),
    ("fdinfo", Entry::Node(Node::FdInfos)),
    ("net", Entry::Host),
    ("environ", Entry::Node(|v| Node::File(v, Leaf::Environ))),
    ("auxv", Entry::Node(|v| Node::File(v, Leaf::Auxv))),
    ("status", Entry::Node(|v| Node::File(v, Leaf::Status))),
    ("limits", Entry::Node(|v| Node::File(v, Leaf::Limits))),
    ("comm", Entry::Host),
    ("cmdline", Entry::Node(|v| Node::File(v, Leaf::Cmdline))),
    ("stat", Entry::Node(|v| Node::File(v, Leaf::Stat))),
    ("statm", Entry::Node(|v| Node::File(v, Leaf::Statm))),
    ("maps", Entry::Node(|v| Node::File(v, Leaf::Maps))),
    ("mem", Entry::Node(|v| Node::File(v, Leaf::Mem))),
    ("cwd", Entry::Node(|v| Node::Link(v, Link::Cwd))),
    ("root", Entry::Node(|v| Node::Link(v, Link::Root))),
    ("exe", Entry::Node(|v| Node::Link(v, Link::Exe))),
    ("mounts", Entry::Host),
    ("mountinfo", Entry::Host),
    ("cgroup", Entry::Host),
    ("uid_map", Entry::Host),
    ("gid_map", Entry::Host),
    ("setgroups", Entry::Host),
];

/// A decimal fd or tid as procfs spells it (no sign, no leading zero).
pub fn number(name: &[u8]) -> Option<i32> {
    if name.is_empty() || (name.len() > 1 && name[0] == b'0') || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// True if `fd` is open and the payload's.
fn payload_fd(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads the fd's flags.
    crate::fds::payload_may_use(fd as i64) && fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}

pub fn is_payload_thread(proc: &Process, tid: Tid) -> bool {
    proc.signals().threads.contains_key(&tid)
}

impl Node {
    pub fn is_dir(&self) -> bool {
        matches!(self, Node::Dir(_) | Node::Fds(_) | Node::FdInfos(_) | Node::Tasks)
    }

    fn view(&self) -> View {
        match *self {
            Node::Dir(v) | Node::Fds(v) | Node::FdInfos(v) | Node::File(v, _) | Node::Link(v, _) => v,
            Node::Tasks => View::PROCESS,
        }
    }

    /// The entry `name` of this directory.
    pub fn child(&self, proc: &Process, name: &[u8]) -> Result<Child, Errno> {
        match *self {
            Node::Dir(v) => {
                let (_, entry) = ENTRIES
                    .iter()
                    .filter(|(n, _)| *n != "task" || !v.in_task)
                    .find(|(n, _)| n.as_bytes() == name)
                    .ok_or(Errno::ENOENT)?;
                Ok(match entry {
                    Entry::Node(make) => Child::Node(make(v)),
                    Entry::Host => Child::Host(format!("{}/{}", self.path(proc), String::from_utf8_lossy(name))),
                })
            }
            Node::Fds(v) => match number(name) {
                Some(fd) if payload_fd(fd) => Ok(Child::Node(Node::Link(v, Link::Fd(fd)))),
                _ => Err(Errno::ENOENT),
            },
            Node::FdInfos(v) => match number(name) {
                Some(fd) if payload_fd(fd) => Ok(Child::Node(Node::File(v, Leaf::FdInfo(fd)))),
                _ => Err(Errno::ENOENT),
            },
            Node::Tasks => match number(name) {
                Some(t) if is_payload_thread(proc, t) => {
                    Ok(Child::Node(Node::Dir(View { tid: Some(t), in_task: true })))
                }
                _ => Err(Errno::ENOENT),
            },
            Node::File(..) | Node::Link(..) => Err(Errno::ENOTDIR),
        }
    }

    /// The directory above, or None for the top (whose parent is /proc).
    pub fn parent(&self) -> Option<Node> {
        match *self {
            Node::Dir(View { in_task: true, .. }) => Some(Node::Tasks),
            Node::Dir(_) => None,
            Node::Tasks => Some(Node::Dir(View::PROCESS)),
            other => Some(Node::Dir(other.view())),
        }
    }

    /// The node's path, which is also the path of the same entry in km's
    /// real procfs directory (the payload's pid and tids are km's).
    pub fn path(&self, proc: &Process) -> String {
        let dir = |v: View| match v {
            View { tid: None, .. } => format!("/proc/{}", proc.pid),
            View { tid: Some(t), in_task: true } => format!("/proc/{}/task/{t}", proc.pid),
            View { tid: Some(t), in_task: false } => format!("/proc/{t}"),
        };
        match *self {
            Node::Dir(v) => dir(v),
            Node::Fds(v) => format!("{}/fd", dir(v)),
            Node::FdInfos(v) => format!("{}/fdinfo", dir(v)),
            Node::Tasks => format!("{}/task", dir(View::PROCESS)),
            Node::File(v, leaf) => {
                let name = match leaf {
                    Leaf::Mem => "mem".to_string(),
                    Leaf::Maps => "maps".to_string(),
                    Leaf::Cmdline => "cmdline".to_string(),
                    Leaf::Environ => "environ".to_string(),
                    Leaf::Auxv => "auxv".to_string(),
                    Leaf::Limits => "limits".to_string(),
                    Leaf::Status => "status".to_string(),
                    Leaf::Stat => "stat".to_string(),
                    Leaf::Statm => "statm".to_string(),
                    Leaf::FdInfo(fd) => format!("fdinfo/{fd}"),
                };
                format!("{}/{name}", dir(v))
            }
            Node::Link(v, link) => {
                let name = match link {
                    Link::Exe => "exe".to_string(),
                    Link::Cwd => "cwd".to_string(),
                    Link::Root => "root".to_string(),
                    Link::Fd(fd) => format!("fd/{fd}"),
                };
                format!("{}/{name}", dir(v))
            }
        }
    }

    /// A directory's entries after "." and "..": (name, d_type).
    pub fn list(&self, proc: &Process) -> Result<Vec<(String, u8)>, Errno> {
        let numbers = |v: Vec<i32>, t: u8| v.into_iter().map(|n| (n.to_string(), t)).collect();
        Ok(match *self {
            Node::Dir(v) => ENTRIES
                .iter()
                .filter(|(n, _)| *n != "task" || !v.in_task)
                .filter_map(|&(n, e)| {
                    let t = match e {
                        Entry::Host => {
                            let real = format!("{}/{n}", self.path(proc));
                            return std::fs::symlink_metadata(&real)
                                .ok()
                                .map(|m| (n.to_string(), if m.is_dir() { libc::DT_DIR } else { libc::DT_REG }));
                        }
                        Entry::Node(make) => match make(v) {
                            Node::Link(..) => libc::DT_LNK,
                            n if n.is_dir() => libc::DT_DIR,
                            _ => libc::DT_REG,
                        },
                    };
                    Some((n.to_string(), t))
                })
                .collect(),
            Node::Fds(_) => numbers(payload_fds()?, libc::DT_LNK),
            Node::FdInfos(_) => numbers(payload_fds()?, libc::DT_REG),
            Node::Tasks => numbers(proc.signals().threads.keys().copied().collect(), libc::DT_DIR),
            Node::File(..) | Node::Link(..) => return Err(Errno::ENOTDIR),
        })
    }

    /// Opens the node for the payload with open(2) `flags`.
    pub fn open(&self, proc: &Process, flags: i32) -> Result<OwnedFd, Errno> {
        let mode = flags & libc::O_ACCMODE;
        if flags & libc::O_PATH != 0 {
            let fd = if self.is_dir() { super::empty_dir_fd(flags)? } else { content::memfd(flags)? };
            return Ok(fdtab::insert(fd, *self, Kind::Path));
        }
        if flags & libc::O_DIRECTORY != 0 && !self.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        match *self {
            n if n.is_dir() => {
                if mode != libc::O_RDONLY {
                    return Err(Errno::EISDIR);
                }
                Ok(fdtab::insert(super::empty_dir_fd(flags)?, n, Kind::Dir))
            }
            Node::Link(..) => Err(Errno::ELOOP),
            Node::File(_, Leaf::Mem) => {
                let kind = Kind::Mem { read: mode != libc::O_WRONLY, write: mode != libc::O_RDONLY };
                Ok(fdtab::insert(content::memfd(flags)?, *self, kind))
            }
            Node::File(view, leaf) => {
                if mode != libc::O_RDONLY {
                    return Err(Errno::EACCES);
                }
                let bytes = content::generate(proc, view, leaf)?;
                Ok(fdtab::insert(content::snapshot(&bytes, flags)?, *self, Kind::Snapshot))
            }
            _ => Err(Errno::ENOENT),
        }
    }
}

/// The payload's open fds, ascending. km lists them through an fd of its
/// own range, so the listing does not show itself.
pub fn payload_fds() -> Result<Vec<i32>, Errno> {
    let fd = super::open_private("/proc/self/fd", libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    // SAFETY: the fd was just opened for this listing and is owned here.
    let mut dir = nix::dir::Dir::from_fd(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })?;
    let mut fds: Vec<i32> = dir
        .iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| number(e.file_name().to_bytes()))
        .filter(|&fd| crate::fds::payload_may_use(fd as i64))
        .collect();
    fds.sort_unstable();
    Ok(fds)
}
