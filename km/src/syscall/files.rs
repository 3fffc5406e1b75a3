//! File I/O and metadata. Most calls pass straight to the host after their
//! fds and pointers are checked; iovec arrays are copied into km first so
//! the payload cannot change them between the check and the call.

use libc::*;
use nix::errno::Errno;

use super::args::{buf, fd, new_fd, new_fd_pair, obj, opt, path, rw_buf};
use super::{host, procio, Ctx, Restart, Ret};
use crate::mem::{copy, GuestRange};
use crate::procfs::fdtab::{self, Kind};
use crate::signal::sigfd::SignalFd;

type A = [u64; 6];

// Not in the libc crate (asm-generic/fcntl.h).
const F_SETSIG: i32 = 10;
const F_GETSIG: i32 = 11;

const IOV_MAX: u64 = 1024;

/// read, write, pread64, pwrite64: `at` is the offset argument, if any.
fn plain(ctx: &mut Ctx, nr: c_long, a: A, at: Option<i64>, write: bool) -> Ret {
    fd(a[0])?;
    // A signalfd's buffer is checked as it is filled (see `signalfd::read`).
    if at.is_none() {
        if let Some(s) = fdtab::signalfd(a[0] as i32) {
            return signalfd_io(ctx, a[0], &s, &[(a[1], a[2].min(super::args::MAX_RW_COUNT))], write);
        }
    }
    rw_buf(a[1], a[2])?;
    if let Some(kind) = procio::special(a[0]) {
        let len = a[2].min(super::args::MAX_RW_COUNT);
        return procio::mem_io(ctx, a[0], kind, at, &[(a[1], len)], write);
    }
    ctx.blocking_io(a[0], nr, a, Restart::IfSaRestart)
}

/// True if a read or write of `fd` cannot wait for anything a signal
/// should cut short: a regular file on a local filesystem (not FUSE or
/// NFS, whose calls may wait for a server), or /dev/null, zero, full,
/// random or urandom.
pub(super) fn never_waits(fd: u64) -> bool {
    // SAFETY: a zeroed stat is valid; fstat writes one for a descriptor
    // the caller checked is the payload's.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let found = unsafe { libc::fstat(fd as i32, &mut st) } == 0;
    found && kind_never_waits(&st, fd as i32)
}

/// True if opening `name` in `dir` (a last link not followed) cannot wait:
/// an existing directory, or what `never_waits` allows, or a file to be
/// created on a local filesystem. The name may change before the open (a
/// FIFO put there by another process meanwhile would then be opened
/// without the forwarder: signals to km wait until the open returns).
pub(super) fn opens_without_waiting(dir: std::os::fd::RawFd, name: &std::ffi::CStr, flags: i32) -> bool {
    // SAFETY: a zeroed stat is valid; fstatat reads the name and writes
    // one stat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } == 0 {
        return st.st_mode & libc::S_IFMT == libc::S_IFDIR || kind_never_waits(&st, dir);
    }
    Errno::last() == Errno::ENOENT && flags & libc::O_CREAT != 0 && local_fs(dir)
}

/// The kinds of file no read, write or open waits on; `on` is an fd on
/// the same filesystem.
fn kind_never_waits(st: &libc::stat, on: std::os::fd::RawFd) -> bool {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFCHR => libc::major(st.st_rdev) == 1 && [3, 5, 7, 8, 9].contains(&libc::minor(st.st_rdev)),
        libc::S_IFREG => local_fs(on),
        _ => false,
    }
}

/// True if `fd` is on a local disk or memory filesystem: ext2/3/4, XFS,
/// Btrfs, tmpfs, overlayfs (statfs(2) magic numbers).
fn local_fs(fd: std::os::fd::RawFd) -> bool {
    const LOCAL: [i64; 5] = [0xef53, 0x5846_5342, 0x9123_683e, 0x0102_1994, 0x794c_7630];
    // SAFETY: a zeroed statfs is valid; fstatfs writes one.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let found = unsafe { libc::fstatfs(fd, &mut fs) } == 0;
    found && LOCAL.contains(&(fs.f_type as i64))
}

/// A signalfd has no write (EINVAL, as Linux); its reads are km's.
fn signalfd_io(ctx: &mut Ctx, f: u64, s: &SignalFd, bufs: &[(u64, u64)], write: bool) -> Ret {
    if write {
        return Err(Errno::EINVAL);
    }
    super::signalfd::read(ctx, f, s, bufs)
}

pub fn read(ctx: &mut Ctx, a: A) -> Ret {
    plain(ctx, SYS_read, a, None, false)
}

pub fn write(ctx: &mut Ctx, a: A) -> Ret {
    plain(ctx, SYS_write, a, None, true)
}

pub fn pread64(ctx: &mut Ctx, a: A) -> Ret {
    plain(ctx, SYS_pread64, a, Some(a[3] as i64), false)
}

pub fn pwrite64(ctx: &mut Ctx, a: A) -> Ret {
    plain(ctx, SYS_pwrite64, a, Some(a[3] as i64), true)
}

/// Copies and checks the payload's iovec array, then runs `nr` with km's
/// copy in place of the payload's pointer (argument 1).
pub(super) fn vectored(ctx: &mut Ctx, nr: c_long, mut a: A) -> Ret {
    fd(a[0])?;
    let count = a[2];
    if count > IOV_MAX {
        return Err(Errno::EINVAL);
    }
    let mut iov = vec![iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; count as usize];
    if count > 0 {
        copy::read_slice(GuestRange::array::<iovec>(a[1], count)?, &mut iov)?;
    }
    if [SYS_readv, SYS_writev].contains(&nr) {
        if let Some(s) = fdtab::signalfd(a[0] as i32) {
            // As import_iovec: a length that is negative as an ssize_t.
            if iov.iter().any(|v| (v.iov_len as i64) < 0) {
                return Err(Errno::EINVAL);
            }
            let bufs: Vec<(u64, u64)> =
                iov.iter().map(|v| (v.iov_base as u64, (v.iov_len as u64).min(super::args::MAX_RW_COUNT))).collect();
            return signalfd_io(ctx, a[0], &s, &bufs, nr == SYS_writev);
        }
    }
    for v in &iov {
        rw_buf(v.iov_base as u64, v.iov_len as u64)?;
    }
    if let Some(kind) = procio::special(a[0]) {
        let write = [SYS_writev, SYS_pwritev, SYS_pwritev2].contains(&nr);
        // The p- forms' offset; -1 in the -v2 forms means the fd's own.
        let own =
            [SYS_readv, SYS_writev].contains(&nr) || ([SYS_preadv2, SYS_pwritev2].contains(&nr) && a[3] as i64 == -1);
        let at = if own { None } else { Some(a[3] as i64) };
        let bufs: Vec<(u64, u64)> =
            iov.iter().map(|v| (v.iov_base as u64, (v.iov_len as u64).min(super::args::MAX_RW_COUNT))).collect();
        return procio::mem_io(ctx, a[0], kind, at, &bufs, write);
    }
    a[1] = iov.as_ptr() as u64;
    ctx.blocking_io(a[0], nr, a, Restart::IfSaRestart)
}

pub fn readv(ctx: &mut Ctx, a: A) -> Ret {
    vectored(ctx, SYS_readv, a)
}

pub fn writev(ctx: &mut Ctx, a: A) -> Ret {
    vectored(ctx, SYS_writev, a)
}

pub fn preadv(ctx: &mut Ctx, a: A) -> Ret {
    vectored(ctx, SYS_preadv, a)
}

pub fn pwritev(ctx: &mut Ctx, a: A) -> Ret {
    vectored(ctx, SYS_pwritev, a)
}

pub fn preadv2(ctx: &mut Ctx, a: A) -> Ret {
    vectored(ctx, SYS_preadv2, a)
}

pub fn pwritev2(ctx: &mut Ctx, a: A) -> Ret {
    vectored(ctx, SYS_pwritev2, a)
}

pub fn close(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    let r = host(SYS_close, a);
    // Closed even when close reports an error (EINTR, EIO), unless EBADF.
    if r != Err(Errno::EBADF) {
        fdtab::forget(a[0] as i32);
    }
    r
}

pub fn lseek(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    match procio::special(a[0]) {
        Some(kind) => procio::mem_lseek(a[0], kind, a),
        None => host(SYS_lseek, a),
    }
}

pub fn getdents64(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    rw_buf(a[1], a[2])?;
    match fdtab::get(a[0] as i32) {
        Some(e) if e.kind == Kind::Dir => procio::getdents(ctx, a[0], e.node, a[1], a[2]),
        Some(e) if e.kind == Kind::Path => Err(Errno::EBADF),
        _ => host(SYS_getdents64, a),
    }
}

pub fn unlink(_: &mut Ctx, a: A) -> Ret {
    path(a[0])?;
    host(SYS_unlink, a)
}

pub fn unlinkat(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    path(a[1])?;
    host(SYS_unlinkat, a)
}

pub fn mkdir(_: &mut Ctx, a: A) -> Ret {
    path(a[0])?;
    host(SYS_mkdir, a)
}

pub fn mkdirat(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    path(a[1])?;
    host(SYS_mkdirat, a)
}

pub fn rmdir(_: &mut Ctx, a: A) -> Ret {
    path(a[0])?;
    host(SYS_rmdir, a)
}

pub fn rename(_: &mut Ctx, a: A) -> Ret {
    path(a[0])?;
    path(a[1])?;
    host(SYS_rename, a)
}

pub fn renameat(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    path(a[1])?;
    fd(a[2])?;
    path(a[3])?;
    host(SYS_renameat, a)
}

pub fn renameat2(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    path(a[1])?;
    fd(a[2])?;
    path(a[3])?;
    host(SYS_renameat2, a)
}

pub fn symlink(_: &mut Ctx, a: A) -> Ret {
    path(a[0])?;
    path(a[1])?;
    host(SYS_symlink, a)
}

pub fn symlinkat(_: &mut Ctx, a: A) -> Ret {
    path(a[0])?;
    fd(a[1])?;
    path(a[2])?;
    host(SYS_symlinkat, a)
}

/// fd-based attribute changes: procfs entries refuse them, so the
/// placeholders behind virtual ones must too.
fn not_virtual(f: u64) -> Result<(), Errno> {
    fd(f)?;
    match fdtab::get(f as i32) {
        Some(_) => Err(Errno::EPERM),
        None => Ok(()),
    }
}

pub fn fchmod(_: &mut Ctx, a: A) -> Ret {
    not_virtual(a[0])?;
    host(SYS_fchmod, a)
}

pub fn fchown(_: &mut Ctx, a: A) -> Ret {
    not_virtual(a[0])?;
    host(SYS_fchown, a)
}

pub fn ftruncate(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    host(SYS_ftruncate, a)
}

pub fn fsync(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    host(SYS_fsync, a)
}

pub fn fdatasync(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    host(SYS_fdatasync, a)
}

pub fn sync(_: &mut Ctx, a: A) -> Ret {
    host(SYS_sync, a)
}

pub fn syncfs(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    host(SYS_syncfs, a)
}

pub fn flock(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    ctx.blocking(SYS_flock, a, Restart::IfSaRestart)
}

pub fn fallocate(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    host(SYS_fallocate, a)
}

pub fn fadvise64(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    host(SYS_fadvise64, a)
}

/// It can wait (a terminal, a pipe, a socket), so a payload signal must
/// interrupt it: BusyBox's cat sends from its input to its output, and
/// Ctrl-C that landed just before the call was lost.
pub fn sendfile(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    fd(a[1])?;
    opt::<i64>(a[2])?;
    ctx.blocking(SYS_sendfile, a, Restart::IfSaRestart)
}

/// fcntl commands km knows the argument of; others are EINVAL, as for a
/// kernel that lacks them.
pub fn fcntl(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    match a[1] as i32 {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            // Linux takes the lowest number as unsigned and refuses one at
            // or past the soft RLIMIT_NOFILE (which ends below km's fds).
            if u64::from(a[2] as u32) >= crate::fds::open_limit() {
                return Err(Errno::EINVAL);
            }
            let new = new_fd(host(SYS_fcntl, a))?;
            fdtab::dup(a[0] as i32, new as i32);
            Ok(new)
        }
        F_GETFD | F_SETFD | F_GETFL | F_SETFL | F_GETOWN | F_SETOWN | F_GETPIPE_SZ | F_SETPIPE_SZ | F_GET_SEALS
        | F_ADD_SEALS | F_GETLEASE | F_SETLEASE | F_NOTIFY | F_GETSIG | F_SETSIG => host(SYS_fcntl, a),
        F_GETLK | F_SETLK | F_SETLKW | F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW => {
            obj::<libc::flock>(a[2])?;
            ctx.blocking(SYS_fcntl, a, Restart::IfSaRestart)
        }
        _ => Err(Errno::EINVAL),
    }
}

// Kernel `struct termios` (TCGETS) and `termios2` (TCGETS2) sizes.
const TERMIOS: u64 = 36;
const TERMIOS2: u64 = 44;
const TCGETS2: u64 = 0x802c_542a;
const TCSETS2: u64 = 0x402c_542b;
const TCSETSW2: u64 = 0x402c_542c;
const TCSETSF2: u64 = 0x402c_542d;
const WINSIZE: u64 = std::mem::size_of::<winsize>() as u64;
/// struct ifreq: a name and a union without pointers.
const IFREQ: u64 = 40;
const BLKGETSIZE64: u64 = 0x8008_1272;
// linux/sockios.h, not all in the libc crate.
const SIOCATMARK: u64 = 0x8905;
const SIOCGIFNAME: u64 = 0x8910;
pub const SIOCGIFCONF: u64 = 0x8912;
const SIOCGIFFLAGS: u64 = 0x8913;
const SIOCGIFADDR: u64 = 0x8915;
const SIOCGIFDSTADDR: u64 = 0x8917;
const SIOCGIFBRDADDR: u64 = 0x8919;
const SIOCGIFNETMASK: u64 = 0x891b;
const SIOCGIFMETRIC: u64 = 0x891d;
const SIOCGIFMTU: u64 = 0x8921;
const SIOCGIFHWADDR: u64 = 0x8927;
const SIOCGIFINDEX: u64 = 0x8933;
const SIOCGIFTXQLEN: u64 = 0x8942;

/// The terminal, socket and generic fd ioctls km forwards, with the size of
/// the struct each points to (0: the argument is a value, not a pointer);
/// SIOCGIFCONF, whose struct holds a pointer, is served by `ifconf`.
/// km's seccomp filter allows the host these requests and no others.
pub const IOCTLS: [(u64, u64); 39] = [
    (TCGETS, TERMIOS),
    (TCSETS, TERMIOS),
    (TCSETSW, TERMIOS),
    (TCSETSF, TERMIOS),
    (TCGETS2, TERMIOS2),
    (TCSETS2, TERMIOS2),
    (TCSETSW2, TERMIOS2),
    (TCSETSF2, TERMIOS2),
    (TIOCGWINSZ, WINSIZE),
    (TIOCSWINSZ, WINSIZE),
    (TIOCGPGRP, 4),
    (TIOCSPGRP, 4),
    (TIOCGSID, 4),
    // The argument of TIOCSCTTY is a value (steal from another session,
    // which the host allows only a privileged caller); TIOCNOTTY has none.
    (TIOCSCTTY, 0),
    (TIOCNOTTY, 0),
    (FIONREAD, 4),
    (FIONBIO, 4),
    (FIOASYNC, 4),
    (TIOCOUTQ, 4),
    (TIOCGPTN, 4),
    (TIOCSPTLCK, 4),
    (SIOCATMARK, 4),
    (SIOCGIFFLAGS, IFREQ),
    (SIOCGIFADDR, IFREQ),
    (SIOCGIFDSTADDR, IFREQ),
    (SIOCGIFBRDADDR, IFREQ),
    (SIOCGIFNETMASK, IFREQ),
    (SIOCGIFMTU, IFREQ),
    (SIOCGIFHWADDR, IFREQ),
    (SIOCGIFINDEX, IFREQ),
    (SIOCGIFNAME, IFREQ),
    (SIOCGIFMETRIC, IFREQ),
    (SIOCGIFTXQLEN, IFREQ),
    (BLKGETSIZE64, 8),
    (FIOCLEX, 0),
    (FIONCLEX, 0),
    (TCSBRK, 0),
    (TCXONC, 0),
    (TCFLSH, 0),
];

/// The ioctls of `IOCTLS` and SIOCGIFCONF; other requests are ENOTTY, as
/// on an fd that does not support them, reported once by number.
pub fn ioctl(ctx: &mut Ctx, mut a: A) -> Ret {
    fd(a[0])?;
    // The request is an unsigned int to the kernel; musl's ioctl takes it as
    // an int, so one with the top bit set (TIOCGPTN: read direction) comes
    // sign-extended.
    a[1] = a[1] as u32 as u64;
    if a[1] == SIOCGIFCONF {
        return ifconf(a);
    }
    let Some(&(_, arg_size)) = IOCTLS.iter().find(|(request, _)| *request == a[1]) else {
        return super::unsupported(ctx, &format!("ioctl request {:#x}", a[1]), Errno::ENOTTY);
    };
    if arg_size > 0 {
        buf(a[2], arg_size)?;
    }
    // tcsetpgrp, tcsetattr and the like from a background job stop it.
    ctx.with_tty_stops(SYS_ioctl, a)
}

/// SIOCGIFCONF: struct ifconf holds a pointer to the array the kernel
/// fills; km passes its own copy of the struct, with that pointer checked.
fn ifconf(a: A) -> Ret {
    let at = buf(a[2], 16)?;
    let [len, array]: [u64; 2] = copy::read_obj(at)?;
    let len = len as i32;
    if array != 0 && len > 0 {
        buf(array, len as u64)?;
    }
    let mut conf = [len as u32 as u64, array];
    host(SYS_ioctl, [a[0], a[1], conf.as_mut_ptr() as u64, 0, 0, 0])?;
    copy::write_obj(GuestRange::of::<i32>(a[2])?, &(conf[0] as i32))?;
    Ok(0)
}

pub fn dup(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    let new = new_fd(host(SYS_dup, a))?;
    fdtab::dup(a[0] as i32, new as i32);
    Ok(new)
}

/// A dup2/dup3 target at or past the soft RLIMIT_NOFILE is EBADF, as
/// Linux's ksys_dup3 says (it reads the number as unsigned).
fn dup_target(newfd: u64) -> Result<(), Errno> {
    if u64::from(newfd as u32) >= crate::fds::open_limit() {
        return Err(Errno::EBADF);
    }
    Ok(())
}

pub fn dup2(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    fd(a[1])?;
    // dup2 onto itself only checks the fd, whatever the limit.
    if a[0] as i32 != a[1] as i32 {
        dup_target(a[1])?;
    }
    let new = host(SYS_dup2, a)?;
    fdtab::dup(a[0] as i32, new as i32);
    Ok(new)
}

pub fn dup3(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    fd(a[1])?;
    // Bad flags and equal fds are EINVAL first; the host says so.
    if a[2] as i32 & !O_CLOEXEC == 0 && a[0] as i32 != a[1] as i32 {
        dup_target(a[1])?;
    }
    let new = host(SYS_dup3, a)?;
    fdtab::dup(a[0] as i32, new as i32);
    Ok(new)
}

/// pipe/pipe2 into km's memory first, so both fds can be checked before
/// the payload sees either.
fn pipe_common(out: u64, flags: u64) -> Ret {
    let out = obj::<[i32; 2]>(out)?;
    let mut fds = [0i32; 2];
    host(SYS_pipe2, [fds.as_mut_ptr() as u64, flags, 0, 0, 0, 0])?;
    new_fd_pair(fds, out)
}

pub fn pipe(_: &mut Ctx, a: A) -> Ret {
    pipe_common(a[0], 0)
}

pub fn pipe2(_: &mut Ctx, a: A) -> Ret {
    pipe_common(a[0], a[1])
}

pub fn umask(_: &mut Ctx, a: A) -> Ret {
    host(SYS_umask, a)
}

pub fn fstatfs(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    obj::<libc::statfs>(a[1])?;
    host(SYS_fstatfs, a)
}

/// poll/ppoll on a copy of the payload's pollfd array: km's own fds are
/// hidden from the host call and reported POLLNVAL, as unopened fds are.
fn poll_common(ctx: &mut Ctx, nr: c_long, mut a: A) -> Ret {
    let nfds = a[1];
    // As Linux: no more entries than the soft RLIMIT_NOFILE, which ends
    // below km's fds.
    if nfds > crate::fds::open_limit() {
        return Err(Errno::EINVAL);
    }
    let user = GuestRange::array::<pollfd>(a[0], nfds)?;
    let mut fds = vec![pollfd { fd: 0, events: 0, revents: 0 }; nfds as usize];
    copy::read_slice(user, &mut fds)?;
    let hidden: Vec<usize> = (0..fds.len()).filter(|&i| !crate::fds::payload_may_use(fds[i].fd as i64)).collect();
    for &i in &hidden {
        fds[i].fd = -1;
    }
    a[0] = fds.as_mut_ptr() as u64;
    let ready = ctx.blocking(nr, a, Restart::Never)?;
    for &i in &hidden {
        fds[i].revents = POLLNVAL;
    }
    copy::write_slice(user, &fds)?;
    Ok(ready + hidden.len() as u64)
}

pub fn poll(ctx: &mut Ctx, a: A) -> Ret {
    poll_common(ctx, SYS_poll, a)
}

/// The payload's sigmask argument (of `size` bytes at `ptr`, NULL for
/// none), which km applies to the payload's signals: the host call gets
/// none, so km's own mask stays as it is.
pub(super) fn sigmask_arg(ptr: u64, size: u64) -> Result<Option<u64>, Errno> {
    if ptr == 0 {
        return Ok(None);
    }
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    copy::read_obj(obj::<u64>(ptr)?).map(Some)
}

pub fn ppoll(ctx: &mut Ctx, mut a: A) -> Ret {
    opt::<timespec>(a[2])?;
    let mask = sigmask_arg(a[3], a[4])?;
    a[3] = 0;
    a[4] = 0;
    ctx.with_mask(mask, |ctx| poll_common(ctx, SYS_ppoll, a))
}
