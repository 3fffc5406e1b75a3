//! Calls that name a file by path and can see or reach what it is: each
//! path goes through km's walk (`procfs::walk`), so km's own procfs
//! directory shows the payload's view, and the call then acts on what the
//! walk found (a directory fd and a name not followed further, an fd, or
//! a virtual node) rather than on the path again.
//!
//! Calls that only create, remove or rename (mkdir, unlink, rename,
//! symlink, link without AT_SYMLINK_FOLLOW) follow no link in their last
//! component and stay the host's (see docs/architecture.md).

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

use libc::*;
use nix::errno::Errno;

use super::args::{buf, fd, obj};
use super::{host, Ctx, Restart, Ret};
use crate::mem::{copy, GuestRange};
use crate::procfs::fdtab::{self, Kind};
use crate::procfs::walk::{self, Opts, Target};
use crate::procfs::{self, Node};

type A = [u64; 6];

fn resolve(ctx: &Ctx, dirfd: u64, path: u64, opts: Opts) -> Result<Target, Errno> {
    let dirfd = dirfd as i32;
    fd(dirfd as u64)?;
    let p = procfs::read_path(path)?;
    walk::resolve(ctx.proc(), ctx.tid(), dirfd, &p, opts)
}

/// "/proc/self/fd/N": the file of km's own fd N (a walk result), for the
/// calls that have no form taking an fd.
fn fd_path(fd: RawFd) -> CString {
    CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL")
}

fn ptr(c: &CStr) -> u64 {
    c.as_ptr() as u64
}

/// Hands a new fd to the payload, unless it landed in km's range.
fn give(fd: OwnedFd) -> Ret {
    let raw = fd.into_raw_fd();
    let r = super::args::new_fd(Ok(raw as u64));
    if r.is_err() {
        fdtab::forget(raw);
    }
    r
}

const VALID_OPEN_FLAGS: i32 = O_ACCMODE
    | O_CREAT
    | O_EXCL
    | O_NOCTTY
    | O_TRUNC
    | O_APPEND
    | O_NONBLOCK
    | O_DSYNC
    | O_ASYNC
    | O_DIRECT
    | O_LARGEFILE
    | O_DIRECTORY
    | O_NOFOLLOW
    | O_NOATIME
    | O_CLOEXEC
    | O_SYNC
    | O_PATH
    | O_TMPFILE;

fn open_common(ctx: &mut Ctx, dirfd: u64, path: u64, flags: i32, mode: u64, resolve_flags: u64) -> Ret {
    // O_CREAT|O_EXCL never follows a link in the last component.
    let follow = flags & O_NOFOLLOW == 0 && flags & (O_CREAT | O_EXCL) != (O_CREAT | O_EXCL);
    let target = resolve(ctx, dirfd, path, Opts { follow, resolve: resolve_flags })?;
    match target {
        Target::At(dir, name) => {
            let a = [dir.raw() as u64, ptr(&name), (flags | O_NOFOLLOW) as u64, mode, 0, 0];
            // A file, not a FIFO or a terminal: no forwarder needed yet.
            if crate::signal::forward::is_deferred() && super::files::opens_without_waiting(dir.raw(), &name, flags) {
                return super::args::new_fd(ctx.wait_in_host(SYS_openat, a, Restart::IfSaRestart));
            }
            super::args::new_fd(ctx.blocking(SYS_openat, a, Restart::IfSaRestart))
        }
        Target::Fd(obj) => {
            let p = fd_path(obj.as_raw_fd());
            let a = [AT_FDCWD as u64, ptr(&p), (flags & !O_NOFOLLOW) as u64, mode, 0, 0];
            super::args::new_fd(ctx.blocking(SYS_openat, a, Restart::IfSaRestart))
        }
        Target::Virtual(node) => {
            if flags & (O_CREAT | O_EXCL) == (O_CREAT | O_EXCL) {
                return Err(Errno::EEXIST);
            }
            give(node.open(ctx.proc(), flags)?)
        }
    }
}

pub fn open(ctx: &mut Ctx, a: A) -> Ret {
    open_common(ctx, AT_FDCWD as u64, a[0], a[1] as i32, a[2], 0)
}

pub fn openat(ctx: &mut Ctx, a: A) -> Ret {
    open_common(ctx, a[0], a[1], a[2] as i32, a[3], 0)
}

pub fn creat(ctx: &mut Ctx, a: A) -> Ret {
    open_common(ctx, AT_FDCWD as u64, a[0], O_CREAT | O_WRONLY | O_TRUNC, a[1], 0)
}

/// openat2(2) with `struct open_how` checked as Linux checks it.
pub fn openat2(ctx: &mut Ctx, a: A) -> Ret {
    const VER0: u64 = 24;
    let (how_ptr, size) = (a[2], a[3]);
    if size < VER0 {
        return Err(Errno::EINVAL);
    }
    if size > 4096 {
        return Err(Errno::E2BIG);
    }
    buf(how_ptr, size)?;
    let mut raw = vec![0u8; size as usize];
    copy::read_bytes(GuestRange::new(how_ptr, size)?, &mut raw)?;
    if raw[VER0 as usize..].iter().any(|&b| b != 0) {
        return Err(Errno::E2BIG);
    }
    let word = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let (flags, mode, resolve_flags) = (word(0), word(1), word(2));
    let known = walk::RESOLVE_NO_XDEV
        | walk::RESOLVE_NO_MAGICLINKS
        | walk::RESOLVE_NO_SYMLINKS
        | walk::RESOLVE_BENEATH
        | walk::RESOLVE_IN_ROOT
        | walk::RESOLVE_CACHED;
    if flags > u32::MAX as u64 || flags as i32 & !VALID_OPEN_FLAGS != 0 || resolve_flags & !known != 0 {
        return Err(Errno::EINVAL);
    }
    let flags = flags as i32;
    let creates = flags & O_CREAT != 0 || flags & O_TMPFILE == O_TMPFILE;
    if (mode != 0 && !creates) || mode & !0o7777 != 0 {
        return Err(Errno::EINVAL);
    }
    if resolve_flags & walk::RESOLVE_BENEATH != 0 && resolve_flags & walk::RESOLVE_IN_ROOT != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & O_PATH != 0 && flags & !(O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    if resolve_flags & walk::RESOLVE_CACHED != 0 && flags & (O_TRUNC | O_CREAT | O_TMPFILE) != 0 {
        return Err(Errno::EAGAIN);
    }
    open_common(ctx, a[0], a[1], flags, mode, resolve_flags)
}

/// stat of a virtual node: km's real entry of the same path, which holds
/// the same metadata (the payload's pid and tids are km's).
fn virtual_path(ctx: &Ctx, node: &Node) -> Result<CString, Errno> {
    CString::new(node.path(ctx.proc())).map_err(|_| Errno::EINVAL)
}

/// Linux gives an fd directory the number of open fds as its size: for
/// the payload's, the payload's count, not km's.
fn fd_dir_size(node: &Node, size_at: u64) -> Ret {
    if let Node::Fds(_) = node {
        let count = crate::procfs::node::payload_fds()?.len() as u64;
        copy::write_obj(GuestRange::of::<u64>(size_at)?, &count)?;
    }
    Ok(0)
}

/// fstatat(2) on a walk's target into the payload's buffer `out`.
fn stat_target(ctx: &Ctx, t: &Target, out: u64) -> Ret {
    match t {
        Target::Virtual(n) => {
            let p = virtual_path(ctx, n)?;
            host(SYS_newfstatat, [AT_FDCWD as u64, ptr(&p), out, AT_SYMLINK_NOFOLLOW as u64, 0, 0])?;
            fd_dir_size(n, out + std::mem::offset_of!(libc::stat, st_size) as u64)
        }
        other => {
            let (dir, name) = other.at().expect("host target");
            let flags = if name.is_empty() { AT_EMPTY_PATH } else { AT_SYMLINK_NOFOLLOW };
            host(SYS_newfstatat, [dir as u64, ptr(name), out, flags as u64, 0, 0])
        }
    }
}

/// The virtual node an fd stands for, if it does.
fn virtual_fd(f: u64) -> Option<Node> {
    fdtab::get(f as i32).map(|e| e.node)
}

/// What an empty path with AT_EMPTY_PATH names when it is virtual: the
/// fd's node, or for AT_FDCWD a cwd inside the virtual tree.
fn virtual_at(dirfd: u64) -> Option<Node> {
    if dirfd as i32 == AT_FDCWD {
        procfs::virtual_cwd()
    } else {
        virtual_fd(dirfd)
    }
}

pub fn stat(ctx: &mut Ctx, a: A) -> Ret {
    obj::<libc::stat>(a[1])?;
    let t = resolve(ctx, AT_FDCWD as u64, a[0], Opts::follow(true))?;
    stat_target(ctx, &t, a[1])
}

pub fn lstat(ctx: &mut Ctx, a: A) -> Ret {
    obj::<libc::stat>(a[1])?;
    let t = resolve(ctx, AT_FDCWD as u64, a[0], Opts::follow(false))?;
    stat_target(ctx, &t, a[1])
}

pub fn fstat(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    obj::<libc::stat>(a[1])?;
    match virtual_fd(a[0]) {
        Some(n) => stat_target(ctx, &Target::Virtual(n), a[1]),
        None => host(SYS_fstat, a),
    }
}

/// True if the payload's path argument is the empty string (or NULL,
/// which Linux takes as empty with AT_EMPTY_PATH).
fn empty_path(p: u64) -> Result<bool, Errno> {
    if p == 0 {
        return Ok(true);
    }
    super::args::path(p)?;
    let mut first = [0u8; 1];
    copy::read_bytes(GuestRange::new(p, 1)?, &mut first)?;
    Ok(first[0] == 0)
}

pub fn newfstatat(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    obj::<libc::stat>(a[2])?;
    let flags = a[3] as i32;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & AT_EMPTY_PATH != 0 && empty_path(a[1])? {
        return match virtual_at(a[0]) {
            Some(n) => stat_target(ctx, &Target::Virtual(n), a[2]),
            None => host(SYS_newfstatat, a),
        };
    }
    let t = resolve(ctx, a[0], a[1], Opts::follow(flags & AT_SYMLINK_NOFOLLOW == 0))?;
    stat_target(ctx, &t, a[2])
}

pub fn statx(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    obj::<libc::statx>(a[4])?;
    let (flags, mask, out) = (a[2] as i32, a[3], a[4]);
    let sync = AT_STATX_SYNC_TYPE;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | sync) != 0 {
        return Err(Errno::EINVAL);
    }
    let keep = (flags & sync) as u64;
    let t = if flags & AT_EMPTY_PATH != 0 && empty_path(a[1])? {
        match virtual_at(a[0]) {
            Some(n) => Target::Virtual(n),
            None => return host(SYS_statx, a),
        }
    } else {
        resolve(ctx, a[0], a[1], Opts::follow(flags & AT_SYMLINK_NOFOLLOW == 0))?
    };
    match &t {
        Target::Virtual(n) => {
            let p = virtual_path(ctx, n)?;
            host(SYS_statx, [AT_FDCWD as u64, ptr(&p), keep | AT_SYMLINK_NOFOLLOW as u64, mask, out, 0])?;
            fd_dir_size(n, out + std::mem::offset_of!(libc::statx, stx_size) as u64)
        }
        other => {
            let (dir, name) = other.at().expect("host target");
            let f = if name.is_empty() { AT_EMPTY_PATH } else { AT_SYMLINK_NOFOLLOW };
            host(SYS_statx, [dir as u64, ptr(name), keep | f as u64, mask, out, 0])
        }
    }
}

fn access_common(ctx: &mut Ctx, dirfd: u64, path: u64, mode: u64, flags: i32) -> Ret {
    if flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let keep = (flags & AT_EACCESS) as u64;
    let t = if flags & AT_EMPTY_PATH != 0 && empty_path(path)? {
        fd(dirfd)?;
        match virtual_at(dirfd) {
            Some(n) => Target::Virtual(n),
            None => return host(SYS_faccessat2, [dirfd, path, mode, flags as u64, 0, 0]),
        }
    } else {
        resolve(ctx, dirfd, path, Opts::follow(flags & AT_SYMLINK_NOFOLLOW == 0))?
    };
    match &t {
        Target::Virtual(n) => {
            let p = virtual_path(ctx, n)?;
            host(SYS_faccessat2, [AT_FDCWD as u64, ptr(&p), mode, keep | AT_SYMLINK_NOFOLLOW as u64, 0, 0])
        }
        other => {
            let (dir, name) = other.at().expect("host target");
            let f = if name.is_empty() { AT_EMPTY_PATH } else { AT_SYMLINK_NOFOLLOW };
            host(SYS_faccessat2, [dir as u64, ptr(name), mode, keep | f as u64, 0, 0])
        }
    }
}

pub fn access(ctx: &mut Ctx, a: A) -> Ret {
    access_common(ctx, AT_FDCWD as u64, a[0], a[1], 0)
}

pub fn faccessat(ctx: &mut Ctx, a: A) -> Ret {
    access_common(ctx, a[0], a[1], a[2], 0)
}

pub fn faccessat2(ctx: &mut Ctx, a: A) -> Ret {
    access_common(ctx, a[0], a[1], a[2], a[3] as i32)
}

/// The text of a virtual link.
fn link_text(ctx: &Ctx, node: &Node) -> Result<Vec<u8>, Errno> {
    use crate::procfs::node::Link;
    let Node::Link(_, link) = node else { return Err(Errno::EINVAL) };
    Ok(match link {
        Link::Exe => ctx.proc().exe.as_os_str().as_encoded_bytes().to_vec(),
        Link::Root => b"/".to_vec(),
        Link::Cwd => match procfs::virtual_cwd() {
            Some(n) => n.path(ctx.proc()).into_bytes(),
            None => std::env::current_dir().map_err(|_| Errno::ENOENT)?.into_os_string().into_encoded_bytes(),
        },
        Link::Fd(f) => match virtual_fd(*f as u64) {
            Some(n) => n.path(ctx.proc()).into_bytes(),
            None => std::fs::read_link(format!("/proc/self/fd/{f}"))
                .map_err(|_| Errno::ENOENT)?
                .into_os_string()
                .into_encoded_bytes(),
        },
    })
}

fn readlink_common(ctx: &mut Ctx, dirfd: u64, path: u64, out: u64, size: u64) -> Ret {
    if size as i64 <= 0 {
        return Err(Errno::EINVAL);
    }
    buf(out, size)?;
    // An empty path reads the link an O_PATH fd was opened on.
    let t = if path != 0 && dirfd as i32 != AT_FDCWD && empty_path(path)? {
        fd(dirfd)?;
        match virtual_fd(dirfd) {
            Some(n) => Target::Virtual(n),
            None => return host(SYS_readlinkat, [dirfd, path, out, size, 0, 0]),
        }
    } else {
        resolve(ctx, dirfd, path, Opts::follow(false))?
    };
    match &t {
        Target::Virtual(n) => {
            let text = link_text(ctx, n)?;
            let len = text.len().min(size as usize);
            copy::write_bytes(GuestRange::new(out, len as u64)?, &text[..len])?;
            Ok(len as u64)
        }
        other => {
            let (dir, name) = other.at().expect("host target");
            host(SYS_readlinkat, [dir as u64, ptr(name), out, size, 0, 0])
        }
    }
}

pub fn readlink(ctx: &mut Ctx, a: A) -> Ret {
    readlink_common(ctx, AT_FDCWD as u64, a[0], a[1], a[2])
}

pub fn readlinkat(ctx: &mut Ctx, a: A) -> Ret {
    readlink_common(ctx, a[0], a[1], a[2], a[3])
}

/// An O_PATH fd on a host target (following nothing more).
fn host_object(t: Target) -> Result<OwnedFd, Errno> {
    match t {
        Target::Fd(f) => Ok(f),
        Target::At(dir, name) => {
            // SAFETY: openat with a NUL-terminated name; O_PATH opens
            // nothing for I/O.
            let f = unsafe { libc::openat(dir.raw(), name.as_ptr(), O_PATH | O_NOFOLLOW | O_CLOEXEC) };
            if f < 0 {
                return Err(Errno::last());
            }
            // SAFETY: just created, owned here.
            Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(f) })
        }
        Target::Virtual(_) => unreachable!("callers handle virtual targets"),
    }
}

pub fn chdir(ctx: &mut Ctx, a: A) -> Ret {
    match resolve(ctx, AT_FDCWD as u64, a[0], Opts::follow(true))? {
        Target::Virtual(n) => chdir_virtual(n),
        t => {
            let f = host_object(t)?;
            host(SYS_fchdir, [f.as_raw_fd() as u64, 0, 0, 0, 0, 0])?;
            procfs::set_virtual_cwd(None);
            Ok(0)
        }
    }
}

fn chdir_virtual(n: Node) -> Ret {
    if !n.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    procfs::chdir_empty()?;
    procfs::set_virtual_cwd(Some(n));
    Ok(0)
}

pub fn fchdir(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    match fdtab::get(a[0] as i32) {
        Some(e) if e.kind != Kind::Path || e.node.is_dir() => chdir_virtual(e.node),
        Some(_) => Err(Errno::ENOTDIR),
        None => {
            host(SYS_fchdir, a)?;
            procfs::set_virtual_cwd(None);
            Ok(0)
        }
    }
}

pub fn getcwd(ctx: &mut Ctx, a: A) -> Ret {
    buf(a[0], a[1])?;
    let Some(n) = procfs::virtual_cwd() else { return host(SYS_getcwd, a) };
    let mut text = n.path(ctx.proc()).into_bytes();
    text.push(0);
    if (a[1] as usize) < text.len() {
        return Err(Errno::ERANGE);
    }
    copy::write_bytes(GuestRange::new(a[0], text.len() as u64)?, &text)?;
    Ok(text.len() as u64)
}

pub fn statfs(ctx: &mut Ctx, a: A) -> Ret {
    obj::<libc::statfs>(a[1])?;
    match resolve(ctx, AT_FDCWD as u64, a[0], Opts::follow(true))? {
        Target::Virtual(n) => {
            let p = virtual_path(ctx, &n)?;
            host(SYS_statfs, [ptr(&p), a[1], 0, 0, 0, 0])
        }
        t => {
            let f = host_object(t)?;
            host(SYS_fstatfs, [f.as_raw_fd() as u64, a[1], 0, 0, 0, 0])
        }
    }
}

pub fn truncate(ctx: &mut Ctx, a: A) -> Ret {
    let f = match resolve(ctx, AT_FDCWD as u64, a[0], Opts::follow(true))? {
        Target::Virtual(n) if n.is_dir() => return Err(Errno::EISDIR),
        Target::Virtual(_) => return Err(Errno::EACCES),
        t => host_object(t)?,
    };
    // SAFETY: an all-zero stat is valid for the kernel to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    host(SYS_fstat, [f.as_raw_fd() as u64, &mut st as *mut _ as u64, 0, 0, 0, 0])?;
    match st.st_mode & S_IFMT {
        S_IFDIR => return Err(Errno::EISDIR),
        S_IFREG => {}
        _ => return Err(Errno::EINVAL),
    }
    let p = fd_path(f.as_raw_fd());
    let w = host(SYS_openat, [AT_FDCWD as u64, ptr(&p), (O_WRONLY | O_CLOEXEC | O_NONBLOCK) as u64, 0, 0, 0])?;
    // SAFETY: the fd was just opened here and is closed after one call.
    let w = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(w as i32) };
    host(SYS_ftruncate, [w.as_raw_fd() as u64, a[1], 0, 0, 0, 0])
}

/// An attribute change made through a path.
enum Change {
    Mode(u64),
    Owner(u64, u64),
    Times(u64),
}

/// Makes `change` on the walk's result, through km's O_PATH fd on it
/// (the walk already chose what to follow: the fd is the object, a link
/// itself when not following); procfs's virtual entries refuse it.
fn change(ctx: &mut Ctx, dirfd: u64, path: u64, follow: bool, change: Change) -> Ret {
    let f = match resolve(ctx, dirfd, path, Opts::follow(follow))? {
        Target::Virtual(_) => return Err(Errno::EPERM),
        t => host_object(t)?,
    };
    let p = fd_path(f.as_raw_fd());
    match change {
        Change::Mode(mode) => host(SYS_fchmodat, [AT_FDCWD as u64, ptr(&p), mode, 0, 0, 0]),
        Change::Owner(uid, gid) => {
            host(SYS_fchownat, [f.as_raw_fd() as u64, ptr(c""), uid, gid, AT_EMPTY_PATH as u64, 0])
        }
        Change::Times(times) => host(SYS_utimensat, [AT_FDCWD as u64, ptr(&p), times, 0, 0, 0]),
    }
}

pub fn chmod(ctx: &mut Ctx, a: A) -> Ret {
    change(ctx, AT_FDCWD as u64, a[0], true, Change::Mode(a[1]))
}

pub fn fchmodat(ctx: &mut Ctx, a: A) -> Ret {
    change(ctx, a[0], a[1], true, Change::Mode(a[2]))
}

pub fn chown(ctx: &mut Ctx, a: A) -> Ret {
    change(ctx, AT_FDCWD as u64, a[0], true, Change::Owner(a[1], a[2]))
}

pub fn lchown(ctx: &mut Ctx, a: A) -> Ret {
    change(ctx, AT_FDCWD as u64, a[0], false, Change::Owner(a[1], a[2]))
}

pub fn fchownat(ctx: &mut Ctx, a: A) -> Ret {
    let flags = a[4] as i32;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & AT_EMPTY_PATH != 0 && empty_path(a[1])? {
        fd(a[0])?;
        if virtual_at(a[0]).is_some() {
            return Err(Errno::EPERM);
        }
        return host(SYS_fchownat, a);
    }
    change(ctx, a[0], a[1], flags & AT_SYMLINK_NOFOLLOW == 0, Change::Owner(a[2], a[3]))
}

pub fn utimensat(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    super::args::opt::<[libc::timespec; 2]>(a[2])?;
    let flags = a[3] as i32;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    // A NULL path (or an empty one with AT_EMPTY_PATH) means the fd itself.
    if a[1] == 0 || (flags & AT_EMPTY_PATH != 0 && empty_path(a[1])?) {
        if virtual_at(a[0]).is_some() {
            return Err(Errno::EPERM);
        }
        return host(SYS_utimensat, a);
    }
    change(ctx, a[0], a[1], flags & AT_SYMLINK_NOFOLLOW == 0, Change::Times(a[2]))
}

/// linkat with AT_SYMLINK_FOLLOW follows the old path's last link, so
/// the old path is walked; without it nothing is followed at the end.
pub fn linkat(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    fd(a[2])?;
    super::args::path(a[3])?;
    let flags = a[4] as i32;
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & AT_EMPTY_PATH != 0 && empty_path(a[1])? {
        if virtual_at(a[0]).is_some() {
            return Err(Errno::EXDEV);
        }
        return host(SYS_linkat, a);
    }
    let follow = flags & AT_SYMLINK_FOLLOW != 0;
    let f = match resolve(ctx, a[0], a[1], Opts::follow(follow))? {
        Target::Virtual(_) => return Err(Errno::EXDEV),
        t => host_object(t)?,
    };
    // The O_PATH fd is the very object: link it through its fd's name.
    let p = fd_path(f.as_raw_fd());
    host(SYS_linkat, [AT_FDCWD as u64, ptr(&p), a[2], a[3], AT_SYMLINK_FOLLOW as u64, 0])
}

pub fn link(ctx: &mut Ctx, a: A) -> Ret {
    linkat(ctx, [AT_FDCWD as u64, a[0], AT_FDCWD as u64, a[1], 0, 0])
}
