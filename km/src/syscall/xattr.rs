//! Extended attributes: paths and names checked, then the host's call.
//! The kernel never touches more of a value or list buffer than
//! XATTR_SIZE_MAX / XATTR_LIST_MAX bytes, so no more is checked or copied.

use libc::*;

use super::args::{buf, fd, path};
use super::{host, Ctx, Ret};
use crate::mem::copy;

type A = [u64; 6];

/// XATTR_SIZE_MAX and XATTR_LIST_MAX: 64 KiB each.
const XATTR_MAX: u64 = 65536;

/// The target (a path, or an fd for the f* forms) in argument 0.
fn target(a: &A, by_fd: bool) -> Ret {
    if by_fd {
        fd(a[0])?;
    } else {
        path(a[0])?;
    }
    Ok(0)
}

/// The host fills km's buffer; km copies out what it wrote, so an absent
/// attribute (or an empty list) is its errno before the payload's buffer
/// is looked at, as natively.
fn bounced(mut a: A, nr: c_long, at: usize) -> Ret {
    let (user, size) = (a[at], a[at + 1].min(XATTR_MAX));
    let mut bounce = vec![0u8; size as usize];
    a[at] = if size == 0 { 0 } else { bounce.as_mut_ptr() as u64 };
    a[at + 1] = size;
    let n = host(nr, a)?;
    if size > 0 && n > 0 {
        copy::write_bytes(buf(user, n)?, &bounce[..n as usize])?;
    }
    Ok(n)
}

fn get(a: A, nr: c_long, by_fd: bool) -> Ret {
    target(&a, by_fd)?;
    path(a[1])?;
    bounced(a, nr, 2)
}

fn set(a: A, nr: c_long, by_fd: bool) -> Ret {
    target(&a, by_fd)?;
    path(a[1])?;
    // Larger values are E2BIG before the kernel reads them.
    if a[3] <= XATTR_MAX {
        buf(a[2], a[3])?;
    }
    host(nr, a)
}

fn list(a: A, nr: c_long, by_fd: bool) -> Ret {
    target(&a, by_fd)?;
    bounced(a, nr, 1)
}

fn remove(a: A, nr: c_long, by_fd: bool) -> Ret {
    target(&a, by_fd)?;
    path(a[1])?;
    host(nr, a)
}

pub fn getxattr(_: &mut Ctx, a: A) -> Ret {
    get(a, SYS_getxattr, false)
}

pub fn lgetxattr(_: &mut Ctx, a: A) -> Ret {
    get(a, SYS_lgetxattr, false)
}

pub fn fgetxattr(_: &mut Ctx, a: A) -> Ret {
    get(a, SYS_fgetxattr, true)
}

pub fn setxattr(_: &mut Ctx, a: A) -> Ret {
    set(a, SYS_setxattr, false)
}

pub fn lsetxattr(_: &mut Ctx, a: A) -> Ret {
    set(a, SYS_lsetxattr, false)
}

pub fn fsetxattr(_: &mut Ctx, a: A) -> Ret {
    set(a, SYS_fsetxattr, true)
}

pub fn listxattr(_: &mut Ctx, a: A) -> Ret {
    list(a, SYS_listxattr, false)
}

pub fn llistxattr(_: &mut Ctx, a: A) -> Ret {
    list(a, SYS_llistxattr, false)
}

pub fn flistxattr(_: &mut Ctx, a: A) -> Ret {
    list(a, SYS_flistxattr, true)
}

pub fn removexattr(_: &mut Ctx, a: A) -> Ret {
    remove(a, SYS_removexattr, false)
}

pub fn lremovexattr(_: &mut Ctx, a: A) -> Ret {
    remove(a, SYS_lremovexattr, false)
}

pub fn fremovexattr(_: &mut Ctx, a: A) -> Ret {
    remove(a, SYS_fremovexattr, true)
}
