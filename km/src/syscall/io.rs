//! The rest of Linux I/O: pipes moved without copies (splice, tee,
//! vmsplice, copy_file_range), memfd, inotify, device nodes, close_range,
//! and the io_uring decision.

use libc::*;
use nix::errno::Errno;

use super::args::{fd, new_fd, opt, path};
use super::files::vectored;
use super::{host, Ctx, Restart, Ret};
use crate::fds;

type A = [u64; 6];

pub fn splice(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    opt::<i64>(a[1])?;
    fd(a[2])?;
    opt::<i64>(a[3])?;
    ctx.blocking(SYS_splice, a, Restart::IfSaRestart)
}

pub fn tee(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    fd(a[1])?;
    ctx.blocking(SYS_tee, a, Restart::IfSaRestart)
}

/// vmsplice(fd, iov, nr_segs, flags): the iovecs are copied and checked
/// like readv's.
pub fn vmsplice(ctx: &mut Ctx, a: A) -> Ret {
    vectored(ctx, SYS_vmsplice, a)
}

pub fn copy_file_range(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    opt::<i64>(a[1])?;
    fd(a[2])?;
    opt::<i64>(a[3])?;
    ctx.blocking(SYS_copy_file_range, a, Restart::IfSaRestart)
}

pub fn sync_file_range(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    host(SYS_sync_file_range, a)
}

pub fn memfd_create(_: &mut Ctx, a: A) -> Ret {
    path(a[0])?;
    new_fd(host(SYS_memfd_create, a))
}

pub fn mknod(_: &mut Ctx, a: A) -> Ret {
    path(a[0])?;
    host(SYS_mknod, a)
}

pub fn mknodat(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    path(a[1])?;
    host(SYS_mknodat, a)
}

pub fn inotify_init(_: &mut Ctx, _: A) -> Ret {
    new_fd(host(SYS_inotify_init1, [0; 6]))
}

pub fn inotify_init1(_: &mut Ctx, a: A) -> Ret {
    new_fd(host(SYS_inotify_init1, a))
}

pub fn inotify_add_watch(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    path(a[1])?;
    host(SYS_inotify_add_watch, a)
}

pub fn inotify_rm_watch(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    host(SYS_inotify_rm_watch, a)
}

/// close_range on the payload's part of the fd table only: km's own fds
/// above the floor are not the payload's to close or mark.
pub fn close_range(_: &mut Ctx, a: A) -> Ret {
    let (first, last) = (a[0] as u32, a[1] as u32);
    if first > last {
        return Err(Errno::EINVAL);
    }
    let top = fds::floor() as u32 - 1;
    if first > top {
        return Ok(0);
    }
    let last = last.min(top);
    host(SYS_close_range, [first.into(), last.into(), a[2], 0, 0, 0])?;
    // Closed (not only marked close-on-exec): no longer virtual fds.
    if a[2] as u32 & CLOSE_RANGE_CLOEXEC == 0 {
        crate::procfs::fdtab::forget_range(first as i32, last as i32);
    }
    Ok(0)
}

/// io_uring is a deliberate ENOSYS, not reported: its rings carry pointers
/// the host kernel would follow without km seeing them (buffers, iovecs,
/// paths, sockaddrs in submission entries), so passing it through would
/// let the payload reach km's memory. Programs that probe for it fall back
/// to ordinary calls.
pub fn io_uring(_: &mut Ctx, _: A) -> Ret {
    Err(Errno::ENOSYS)
}

/// fanotify and file handles are a deliberate ENOSYS too: a fanotify read
/// installs an open fd per event in the reader's table (where km cannot
/// keep it below its floor or hold it to the payload's limit before the
/// payload sees the number), and open_by_handle_at opens a file by its
/// handle without any path, past km's procfs walk. Programs that probe
/// for them (file managers, backup tools) fall back.
pub fn refused_by_design(_: &mut Ctx, _: A) -> Ret {
    Err(Errno::ENOSYS)
}
