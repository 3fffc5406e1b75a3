//! Path resolution for the payload, one component at a time.
//!
//! Each component is opened O_PATH|O_NOFOLLOW relative to the fd of the
//! one before, so what the walk checked is what the final call acts on;
//! symbolic links are read and spliced into the rest of the path (ELOOP
//! after 40), `..` is opened like any name. procfs's magic links (fd/N,
//! cwd, exe, root of other processes), whose text is no path, are followed
//! by the kernel, and where the result is a procfs directory km asks the
//! kernel which one. Once the walk reaches km's own directory
//! (`/proc/self`, `/proc/thread-self`, `/proc/<pid>`, `/proc/<tid>` or a
//! way back into them), the rest resolves in the virtual tree.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use nix::errno::Errno;

use super::fdtab;
use super::node::{self, Child, Link, Node, View};
use crate::process::{lock, Process};

/// Linux's limit on links followed in one lookup.
const MAX_LINKS: u32 = 40;

pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;
pub const RESOLVE_CACHED: u64 = 0x20;
const SCOPED: u64 = RESOLVE_BENEATH | RESOLVE_IN_ROOT;

#[derive(Clone, Copy, Debug, Default)]
pub struct Opts {
    /// Follow a link in the last component.
    pub follow: bool,
    /// openat2's RESOLVE_* flags.
    pub resolve: u64,
}

impl Opts {
    pub fn follow(follow: bool) -> Opts {
        Opts { follow, resolve: 0 }
    }
}

/// A directory on the host side of the walk.
pub enum Dir {
    Cwd,
    /// The payload's dirfd, not ours to close.
    Borrowed(RawFd),
    Owned(OwnedFd),
}

impl Dir {
    pub fn raw(&self) -> RawFd {
        match self {
            Dir::Cwd => libc::AT_FDCWD,
            Dir::Borrowed(fd) => *fd,
            Dir::Owned(fd) => fd.as_raw_fd(),
        }
    }

    /// An fd of our own for it.
    fn into_owned(self) -> Result<OwnedFd, Errno> {
        match self {
            Dir::Owned(fd) => Ok(fd),
            other => open_path(other.raw(), c".", libc::O_PATH),
        }
    }
}

/// What kind of procfs directory a host position is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proc {
    No,
    /// The procfs root, where `self` and the pid directories are.
    Root,
    /// Somewhere in procfs that is not km's.
    Foreign,
    /// One of the entries of km's directory passed through (mounts, net).
    Passed,
}

struct HostPos {
    dir: Dir,
    proc: Proc,
    dev: u64,
    mnt: u64,
}

enum Pos {
    Host(HostPos),
    Virt(Node),
}

/// What a path names, ready for the call to act on.
pub enum Target {
    /// The entry `name` of `dir`, not to be followed if it is a link
    /// (it was not one when the walk looked, or the caller wants the link).
    At(Dir, CString),
    /// The object itself (reached through a magic link, or the path ended
    /// in a directory).
    Fd(OwnedFd),
    Virtual(Node),
}

impl Target {
    /// The (dirfd, name) pair of a host target: `At` as it is, `Fd` as
    /// the fd with an empty name (for AT_EMPTY_PATH calls).
    pub fn at(&self) -> Option<(RawFd, &CStr)> {
        match self {
            Target::At(dir, name) => Some((dir.raw(), name.as_c_str())),
            Target::Fd(fd) => Some((fd.as_raw_fd(), c"")),
            Target::Virtual(_) => None,
        }
    }
}

fn open_path(dir: RawFd, name: &CStr, flags: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: openat with a NUL-terminated name; O_PATH opens nothing for
    // I/O.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: just created, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

struct Meta {
    mode: u32,
    ino: u64,
    dev: u64,
    mnt: u64,
}

fn statx(dir: RawFd, name: &CStr, flags: i32) -> Result<Meta, Errno> {
    // SAFETY: an all-zero statx is a valid value for the kernel to fill.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let mask = libc::STATX_TYPE | libc::STATX_INO | libc::STATX_MNT_ID;
    // SAFETY: statx writes one struct statx we own; the name is
    // NUL-terminated.
    if unsafe { libc::statx(dir, name.as_ptr(), flags | libc::AT_SYMLINK_NOFOLLOW, mask, &mut st) } != 0 {
        return Err(Errno::last());
    }
    Ok(Meta {
        mode: st.stx_mode as u32,
        ino: st.stx_ino,
        dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
        mnt: st.stx_mnt_id,
    })
}

fn meta_of(fd: RawFd) -> Result<Meta, Errno> {
    statx(fd, c"", libc::AT_EMPTY_PATH)
}

/// The device and mount of `fd` (for "/", at start-up).
pub fn dev_and_mount(fd: RawFd) -> std::io::Result<(u64, u64)> {
    meta_of(fd).map(|m| (m.dev, m.mnt)).map_err(|e| std::io::Error::from_raw_os_error(e as i32))
}

/// Devices seen so far and whether each is a procfs instance; a few
/// mounts at most, each asked about once.
static DEVICES: Mutex<Vec<(u64, bool)>> = Mutex::new(Vec::new());
const DEVICES_CACHED: usize = 64;

fn is_procfs(dev: u64, dir: &Dir) -> bool {
    if let Some(&(_, p)) = lock(&DEVICES).iter().find(|(d, _)| *d == dev) {
        return p;
    }
    // SAFETY: an all-zero statfs is valid for the kernel to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: (f)statfs writes one struct statfs we own; the path is
    // NUL-terminated.
    let ok = unsafe {
        match dir {
            Dir::Cwd => libc::statfs(c".".as_ptr(), &mut st),
            other => libc::fstatfs(other.raw(), &mut st),
        }
    } == 0;
    let procfs = ok && st.f_type == libc::PROC_SUPER_MAGIC;
    let mut devices = lock(&DEVICES);
    if ok && devices.len() < DEVICES_CACHED {
        devices.push((dev, procfs));
    }
    procfs
}

fn readlink(dir: RawFd, name: &CStr) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: readlinkat writes at most buf.len() bytes into buf.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(Errno::last());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

fn cstring(bytes: &[u8]) -> Result<CString, Errno> {
    CString::new(bytes).map_err(|_| Errno::EINVAL)
}

/// True if `tid` is one of km's own threads (the host's view).
fn km_thread(pid: i32, tid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists()
}

fn split(path: &[u8]) -> VecDeque<Vec<u8>> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty() && *c != b".").map(<[u8]>::to_vec).collect()
}

struct Walker<'a> {
    proc: &'a Process,
    caller: i32,
    opts: Opts,
    links: u32,
    /// Components below the starting point, for RESOLVE_BENEATH/IN_ROOT.
    depth: i64,
    /// The starting dirfd, the root for RESOLVE_IN_ROOT.
    start: RawFd,
    /// The path ends in a slash: its last component must be a directory.
    must_dir: bool,
    /// The mount of the procfs the virtual tree was entered from.
    virt_mnt: u64,
}

/// Resolves `path` relative to `dirfd` as the payload's thread `caller`.
pub fn resolve(proc: &Process, caller: i32, dirfd: RawFd, path: &[u8], opts: Opts) -> Result<Target, Errno> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if opts.resolve & RESOLVE_CACHED != 0 {
        // km cannot tell what the kernel has cached; Linux answers EAGAIN
        // whenever it would have to look further.
        return Err(Errno::EAGAIN);
    }
    // A trailing slash asks for a directory, links followed.
    let must_dir = path.ends_with(b"/") || path.ends_with(b"/.");
    let mut w = Walker { proc, caller, opts, links: 0, depth: 0, start: dirfd, must_dir, virt_mnt: 0 };
    let mut pos = if path[0] == b'/' { w.root()? } else { w.start_at(dirfd)? };
    let mut rest = split(path);
    loop {
        let Some(name) = rest.pop_front() else { return w.finish(pos) };
        if name == b".." {
            pos = w.dotdot(pos)?;
            continue;
        }
        let last = rest.is_empty();
        let follow = !last || opts.follow || must_dir;
        match w.step(pos, &name, follow, last)? {
            Step::Pos(p) => pos = p,
            Step::Done(t) => return Ok(t),
            Step::Link(from, target) => {
                w.links += 1;
                if w.links > MAX_LINKS {
                    return Err(Errno::ELOOP);
                }
                if target.is_empty() {
                    return Err(Errno::ENOENT);
                }
                let mut spliced = split(&target);
                spliced.append(&mut rest);
                rest = spliced;
                pos = if target[0] == b'/' { w.root()? } else { from };
            }
        }
    }
}

enum Step {
    Pos(Pos),
    Done(Target),
    /// A link to splice: the directory it is in, and its text.
    Link(Pos, Vec<u8>),
}

impl Walker<'_> {
    fn scoped(&self) -> bool {
        self.opts.resolve & SCOPED != 0
    }

    /// "/" (or, for RESOLVE_IN_ROOT, the starting directory).
    fn root(&mut self) -> Result<Pos, Errno> {
        if self.opts.resolve & RESOLVE_BENEATH != 0 {
            return Err(Errno::EXDEV);
        }
        self.depth = 0;
        if self.opts.resolve & RESOLVE_IN_ROOT != 0 {
            return self.start_at(self.start);
        }
        match super::host() {
            Ok(h) => {
                Ok(Pos::Host(HostPos { dir: Dir::Borrowed(h.root), proc: Proc::No, dev: h.root_dev, mnt: h.root_mnt }))
            }
            Err(_) => self.land(open_path(libc::AT_FDCWD, c"/", libc::O_PATH)?),
        }
    }

    fn start_at(&mut self, dirfd: RawFd) -> Result<Pos, Errno> {
        if dirfd == libc::AT_FDCWD {
            if let Some(node) = super::virtual_cwd() {
                return Ok(Pos::Virt(node));
            }
            let m = statx(libc::AT_FDCWD, c".", 0)?;
            return self.classify(Dir::Cwd, m);
        }
        if let Some(e) = fdtab::get(dirfd) {
            return if e.node.is_dir() { Ok(Pos::Virt(e.node)) } else { Err(Errno::ENOTDIR) };
        }
        let m = meta_of(dirfd)?;
        self.classify(Dir::Borrowed(dirfd), m)
    }

    /// A host directory reached other than as the plain child of one
    /// whose kind is known: which kind of procfs place it is, if any.
    fn classify(&mut self, dir: Dir, m: Meta) -> Result<Pos, Errno> {
        let proc = match (is_procfs(m.dev, &dir), m.ino) {
            (false, _) => Proc::No,
            (true, 1) => Proc::Root,
            (true, _) => return self.locate(dir, m),
        };
        Ok(Pos::Host(HostPos { dir, proc, dev: m.dev, mnt: m.mnt }))
    }

    /// Where a procfs directory is, asked of the kernel: km's own becomes
    /// the virtual node, another process's stays the host's.
    fn locate(&mut self, dir: Dir, m: Meta) -> Result<Pos, Errno> {
        self.virt_mnt = m.mnt;
        let owned = dir.into_owned()?;
        let link = readlink(libc::AT_FDCWD, &cstring(format!("/proc/self/fd/{}", owned.as_raw_fd()).as_bytes())?)?;
        let Some(rest) = link.strip_prefix(b"/proc/") else {
            // procfs mounted elsewhere: km cannot tell whose it is.
            return Err(Errno::EACCES);
        };
        let mut parts = split(rest);
        let first = parts.pop_front().unwrap_or_default();
        let pid = self.proc.pid;
        let view = match node::number(&first) {
            Some(n) if n == pid => View::PROCESS,
            Some(n) if node::is_payload_thread(self.proc, n) => View { tid: Some(n), in_task: false },
            Some(n) if km_thread(pid, n) => return Err(Errno::EACCES),
            _ => return Ok(Pos::Host(HostPos { dir: Dir::Owned(owned), proc: Proc::Foreign, dev: m.dev, mnt: m.mnt })),
        };
        let mut node = Node::Dir(view);
        while let Some(part) = parts.pop_front() {
            match node.child(self.proc, &part)? {
                Child::Node(n) => node = n,
                Child::Host(real) => {
                    let mut path = real.into_bytes();
                    for p in parts {
                        path.push(b'/');
                        path.extend_from_slice(&p);
                    }
                    let fd = open_path(libc::AT_FDCWD, &cstring(&path)?, libc::O_PATH | libc::O_NOFOLLOW)?;
                    let m = meta_of(fd.as_raw_fd())?;
                    return Ok(Pos::Host(HostPos { dir: Dir::Owned(fd), proc: Proc::Passed, dev: m.dev, mnt: m.mnt }));
                }
            }
        }
        Ok(Pos::Virt(node))
    }

    /// A position reached by following something (a magic link, ".."):
    /// its kind from scratch.
    fn land(&mut self, fd: OwnedFd) -> Result<Pos, Errno> {
        let m = meta_of(fd.as_raw_fd())?;
        self.classify(Dir::Owned(fd), m)
    }

    fn dotdot(&mut self, pos: Pos) -> Result<Pos, Errno> {
        if self.scoped() && self.depth == 0 {
            if self.opts.resolve & RESOLVE_BENEATH != 0 {
                return Err(Errno::EXDEV);
            }
            return Ok(pos);
        }
        self.depth -= 1;
        match pos {
            Pos::Virt(n) => match n.parent() {
                Some(p) => Ok(Pos::Virt(p)),
                None => self.land(open_path(libc::AT_FDCWD, c"/proc", libc::O_PATH)?),
            },
            Pos::Host(h) => {
                let fd = open_path(h.dir.raw(), c"..", libc::O_PATH)?;
                let next = self.land(fd)?;
                self.check_xdev(&h, &next)?;
                Ok(next)
            }
        }
    }

    fn check_xdev(&self, from: &HostPos, to: &Pos) -> Result<(), Errno> {
        if self.opts.resolve & RESOLVE_NO_XDEV != 0 {
            if let Pos::Host(t) = to {
                if t.mnt != from.mnt {
                    return Err(Errno::EXDEV);
                }
            }
        }
        Ok(())
    }

    /// Following a magic link (procfs's, or one of the virtual tree's).
    fn magic(&mut self) -> Result<(), Errno> {
        if self.opts.resolve & (RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS) != 0 {
            return Err(Errno::ELOOP);
        }
        if self.scoped() {
            return Err(Errno::EXDEV);
        }
        self.links += 1;
        if self.links > MAX_LINKS {
            return Err(Errno::ELOOP);
        }
        Ok(())
    }

    fn step(&mut self, pos: Pos, name: &[u8], follow: bool, last: bool) -> Result<Step, Errno> {
        self.depth += 1;
        let h = match pos {
            Pos::Virt(node) => return self.step_virtual(node, name, follow, last),
            Pos::Host(h) => h,
        };
        let cname = cstring(name)?;
        if h.proc == Proc::Root {
            self.virt_mnt = h.mnt;
            if let Some(p) = self.proc_root_entry(name, follow)? {
                return Ok(if last { Step::Done(self.finish(p)?) } else { Step::Pos(p) });
            }
        }
        if last && h.proc == Proc::No {
            // The common end of a walk outside procfs: a look at the name
            // is enough unless it is a link to follow or a mount point
            // (which could be procfs).
            match statx(h.dir.raw(), &cname, 0) {
                Err(Errno::ENOENT) if !self.must_dir => return Ok(Step::Done(Target::At(high(h.dir)?, cname))),
                Err(e) => return Err(e),
                Ok(m) => {
                    let kind = m.mode & libc::S_IFMT;
                    if self.must_dir && kind != libc::S_IFDIR && kind != libc::S_IFLNK {
                        return Err(Errno::ENOTDIR);
                    }
                    if m.dev == h.dev && m.mnt == h.mnt && !(kind == libc::S_IFLNK && follow) {
                        return Ok(Step::Done(Target::At(high(h.dir)?, cname)));
                    }
                }
            }
        }
        let fd = match open_path(h.dir.raw(), &cname, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if last && !self.must_dir => return Ok(Step::Done(Target::At(high(h.dir)?, cname))),
            Err(e) => return Err(e),
        };
        if h.proc == Proc::Root {
            if let Some(n) = node::number(name) {
                // A km thread that is no payload thread (signals, clock):
                // checked after the open, so the thread cannot have
                // appeared in between.
                if km_thread(self.proc.pid, n) {
                    return Err(Errno::ENOENT);
                }
            }
        }
        let m = meta_of(fd.as_raw_fd())?;
        if m.mode & libc::S_IFMT == libc::S_IFLNK && follow {
            if self.opts.resolve & RESOLVE_NO_SYMLINKS != 0 {
                return Err(Errno::ELOOP);
            }
            if matches!(h.proc, Proc::Foreign | Proc::Passed) {
                // A magic link: the kernel follows it; km looks at where.
                self.magic()?;
                let target = open_path(h.dir.raw(), &cname, libc::O_PATH)?;
                let p = self.land(target)?;
                self.check_xdev(&h, &p)?;
                return self.after_magic(p, last);
            }
            let text = readlink(fd.as_raw_fd(), c"")?;
            self.depth -= 1;
            return Ok(Step::Link(Pos::Host(h), text));
        }
        if last && self.must_dir && m.mode & libc::S_IFMT != libc::S_IFDIR && m.mode & libc::S_IFMT != libc::S_IFLNK {
            return Err(Errno::ENOTDIR);
        }
        let next = if m.dev == h.dev {
            let proc = match h.proc {
                Proc::Root => Proc::Foreign,
                other => other,
            };
            Pos::Host(HostPos { dir: Dir::Owned(fd), proc, dev: m.dev, mnt: m.mnt })
        } else {
            self.classify(Dir::Owned(fd), m)?
        };
        if let Pos::Host(_) = next {
            self.check_xdev(&h, &next)?;
        }
        if last {
            return Ok(Step::Done(match next {
                Pos::Virt(n) => Target::Virtual(n),
                Pos::Host(_) => Target::At(high(h.dir)?, cname),
            }));
        }
        Ok(Step::Pos(next))
    }

    /// `self`, `thread-self` and the payload's pid and tids in the procfs
    /// root are km's directory: the virtual one.
    fn proc_root_entry(&mut self, name: &[u8], follow: bool) -> Result<Option<Pos>, Errno> {
        let view = match name {
            b"self" | b"thread-self" if !follow => return Ok(None),
            b"self" | b"thread-self" if self.opts.resolve & RESOLVE_NO_SYMLINKS != 0 => {
                return Err(Errno::ELOOP);
            }
            b"self" => View::PROCESS,
            b"thread-self" => View { tid: Some(self.caller), in_task: true },
            _ => match node::number(name) {
                Some(n) if n == self.proc.pid => View::PROCESS,
                Some(n) if node::is_payload_thread(self.proc, n) => View { tid: Some(n), in_task: false },
                _ => return Ok(None),
            },
        };
        Ok(Some(Pos::Virt(Node::Dir(view))))
    }

    fn step_virtual(&mut self, node: Node, name: &[u8], follow: bool, last: bool) -> Result<Step, Errno> {
        match node.child(self.proc, name)? {
            Child::Node(Node::Link(view, link)) if follow => {
                self.magic()?;
                let p = self.follow_virtual(view, link)?;
                if let Pos::Host(to) = &p {
                    if self.opts.resolve & RESOLVE_NO_XDEV != 0 && to.mnt != self.virt_mnt {
                        return Err(Errno::EXDEV);
                    }
                }
                self.after_magic(p, last)
            }
            Child::Node(n) if last && self.must_dir && !n.is_dir() => Err(Errno::ENOTDIR),
            Child::Node(n) => Ok(if last { Step::Done(Target::Virtual(n)) } else { Step::Pos(Pos::Virt(n)) }),
            Child::Host(real) => {
                let fd = open_path(libc::AT_FDCWD, &cstring(real.as_bytes())?, libc::O_PATH | libc::O_NOFOLLOW)?;
                if last {
                    return self
                        .finish(Pos::Host(HostPos { dir: Dir::Owned(fd), proc: Proc::Passed, dev: 0, mnt: 0 }))
                        .map(Step::Done);
                }
                let m = meta_of(fd.as_raw_fd())?;
                Ok(Step::Pos(Pos::Host(HostPos { dir: Dir::Owned(fd), proc: Proc::Passed, dev: m.dev, mnt: m.mnt })))
            }
        }
    }

    fn follow_virtual(&mut self, _view: View, link: Link) -> Result<Pos, Errno> {
        match link {
            Link::Exe => {
                let exe = cstring(self.proc.exe.as_os_str().as_encoded_bytes())?;
                self.land(open_path(libc::AT_FDCWD, &exe, libc::O_PATH)?)
            }
            Link::Root => self.land(open_path(libc::AT_FDCWD, c"/", libc::O_PATH)?),
            Link::Cwd => match super::virtual_cwd() {
                Some(n) => Ok(Pos::Virt(n)),
                None => self.land(open_path(libc::AT_FDCWD, c".", libc::O_PATH)?),
            },
            Link::Fd(fd) => match fdtab::get(fd) {
                Some(e) => Ok(Pos::Virt(e.node)),
                None => {
                    let path = cstring(format!("/proc/self/fd/{fd}").as_bytes())?;
                    self.land(open_path(libc::AT_FDCWD, &path, libc::O_PATH)?)
                }
            },
        }
    }

    /// Where a followed magic link led: the end, or the next directory.
    fn after_magic(&mut self, p: Pos, last: bool) -> Result<Step, Errno> {
        if !last {
            return Ok(Step::Pos(p));
        }
        if self.must_dir {
            let dir = match &p {
                Pos::Virt(n) => n.is_dir(),
                Pos::Host(h) => meta_of(h.dir.raw())?.mode & libc::S_IFMT == libc::S_IFDIR,
            };
            if !dir {
                return Err(Errno::ENOTDIR);
            }
        }
        Ok(Step::Done(self.finish(p)?))
    }

    /// The walk ended at `pos` itself.
    fn finish(&mut self, pos: Pos) -> Result<Target, Errno> {
        Ok(match pos {
            Pos::Virt(n) => Target::Virtual(n),
            Pos::Host(h) => Target::Fd(high_fd(h.dir.into_owned()?)?),
        })
    }
}

/// Moves a directory fd of the walk's that lives on into the call above
/// the payload's floor, so the fd the call creates for the payload is the
/// number it would get natively.
fn high(dir: Dir) -> Result<Dir, Errno> {
    match dir {
        Dir::Owned(fd) => high_fd(fd).map(Dir::Owned),
        other => Ok(other),
    }
}

fn high_fd(fd: OwnedFd) -> Result<OwnedFd, Errno> {
    // SAFETY: F_DUPFD_CLOEXEC only creates a new fd.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, crate::fds::floor()) };
    if moved < 0 {
        return Err(Errno::last());
    }
    // SAFETY: just created, owned here; the old one closes on drop.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}
