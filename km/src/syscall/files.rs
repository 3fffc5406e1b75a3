//! File I/O and metadata. Most calls pass straight to the host after their
//! fds and pointers are checked; iovec arrays are copied into km first so
//! the payload cannot change them between the check and the call.

use libc::*;
use nix::errno::Errno;

use super::args::{buf, fd, new_fd, obj, opt, path, rw_buf};
use super::{host, procio, Ctx, Restart, Ret};
use crate::mem::copy;
use crate::procfs::fdtab::{self, Kind};

type A = [u64; 6];

// Not in the libc crate (asm-generic/fcntl.h).
const F_SETSIG: i32 = 10;
const F_GETSIG: i32 = 11;

const IOV_MAX: u64 = 1024;

/// read, write, pread64, pwrite64: `at` is the offset argument, if any.
fn plain(ctx: &mut Ctx, nr: c_long, a: A, at: Option<i64>, write: bool) -> Ret {
    fd(a[0])?;
    rw_buf(a[1], a[2])?;
    if let Some(kind) = procio::special(a[0]) {
        let len = a[2].min(super::args::MAX_RW_COUNT);
        return procio::mem_io(ctx, a[0], kind, at, &[(a[1], len)], write);
    }
    ctx.blocking(nr, a, Restart::IfSaRestart)
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
fn vectored(ctx: &mut Ctx, nr: c_long, mut a: A) -> Ret {
    fd(a[0])?;
    let count = a[2];
    if count > IOV_MAX {
        return Err(Errno::EINVAL);
    }
    let mut iov = vec![iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; count as usize];
    if count > 0 {
        buf(a[1], count * std::mem::size_of::<iovec>() as u64)?;
        copy::read_slice(a[1], &mut iov)?;
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
    ctx.blocking(nr, a, Restart::IfSaRestart)
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

pub fn sendfile(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    fd(a[1])?;
    opt::<i64>(a[2])?;
    host(SYS_sendfile, a)
}

/// fcntl commands km knows the argument of; others are EINVAL, as for a
/// kernel that lacks them.
pub fn fcntl(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    match a[1] as i32 {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            if a[2] as i32 as i64 >= crate::fds::floor() as i64 {
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

/// Terminal and generic fd ioctls, each with a known argument size; other
/// requests are ENOTTY, as on an fd that does not support them.
pub fn ioctl(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    // Kernel `struct termios` (TCGETS) and `termios2` (TCGETS2) sizes.
    const TERMIOS: u64 = 36;
    const TERMIOS2: u64 = 44;
    const TCGETS2: u64 = 0x802c_542a;
    const TCSETS2: u64 = 0x402c_542b;
    const TCSETSW2: u64 = 0x402c_542c;
    const TCSETSF2: u64 = 0x402c_542d;
    let arg_size = match a[1] {
        TCGETS | TCSETS | TCSETSW | TCSETSF => TERMIOS,
        TCGETS2 | TCSETS2 | TCSETSW2 | TCSETSF2 => TERMIOS2,
        TIOCGWINSZ | TIOCSWINSZ => std::mem::size_of::<winsize>() as u64,
        TIOCGPGRP | TIOCSPGRP | TIOCGSID | FIONREAD | FIONBIO | TIOCOUTQ | TIOCGPTN => 4,
        // The argument is a value, not a pointer.
        FIOCLEX | FIONCLEX | TCSBRK | TCXONC | TCFLSH => 0,
        _ => return Err(Errno::ENOTTY),
    };
    if arg_size > 0 {
        buf(a[2], arg_size)?;
    }
    host(SYS_ioctl, a)
}

pub fn dup(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    let new = new_fd(host(SYS_dup, a))?;
    fdtab::dup(a[0] as i32, new as i32);
    Ok(new)
}

pub fn dup2(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    fd(a[1])?;
    let new = host(SYS_dup2, a)?;
    fdtab::dup(a[0] as i32, new as i32);
    Ok(new)
}

pub fn dup3(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    fd(a[1])?;
    let new = host(SYS_dup3, a)?;
    fdtab::dup(a[0] as i32, new as i32);
    Ok(new)
}

/// pipe/pipe2 into km's memory first, so both fds can be checked before
/// the payload sees either.
fn pipe_common(out: u64, flags: u64) -> Ret {
    obj::<[i32; 2]>(out)?;
    let mut fds = [0i32; 2];
    host(SYS_pipe2, [fds.as_mut_ptr() as u64, flags, 0, 0, 0, 0])?;
    let close_both = |fds: &[i32; 2]| {
        for &f in fds {
            // SAFETY: both fds were just created here and are known to no one.
            unsafe { libc::close(f) };
        }
    };
    if fds.iter().any(|&f| !crate::fds::payload_may_use(f as i64)) {
        close_both(&fds);
        return Err(Errno::EMFILE);
    }
    if let Err(e) = copy::write_obj(out, &fds) {
        close_both(&fds);
        return Err(e);
    }
    Ok(0)
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
    if nfds > crate::fds::floor() as u64 {
        return Err(Errno::EINVAL);
    }
    let bytes = nfds * std::mem::size_of::<pollfd>() as u64;
    buf(a[0], bytes)?;
    let mut fds = vec![pollfd { fd: 0, events: 0, revents: 0 }; nfds as usize];
    copy::read_slice(a[0], &mut fds)?;
    let hidden: Vec<usize> = (0..fds.len()).filter(|&i| !crate::fds::payload_may_use(fds[i].fd as i64)).collect();
    for &i in &hidden {
        fds[i].fd = -1;
    }
    let user = a[0];
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
    obj::<u64>(ptr)?;
    copy::read_obj(ptr).map(Some)
}

pub fn ppoll(ctx: &mut Ctx, mut a: A) -> Ret {
    opt::<timespec>(a[2])?;
    let mask = sigmask_arg(a[3], a[4])?;
    a[3] = 0;
    a[4] = 0;
    ctx.with_mask(mask, |ctx| poll_common(ctx, SYS_ppoll, a))
}
