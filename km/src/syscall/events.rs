//! Waiting on many fds: epoll, select, pselect6, eventfd. The waits are
//! interruptible by the payload's signals; a sigmask argument applies to
//! the payload's signals, never to km's own mask.

use libc::*;
use nix::errno::Errno;

use super::args::{buf, fd, new_fd, obj, opt};
use super::files::sigmask_arg;
use super::{host, Ctx, Restart, Ret};
use crate::mem::copy;

type A = [u64; 6];

/// The kernel's packed struct epoll_event.
const EPOLL_EVENT_SIZE: u64 = 12;
/// Linux's bound on maxevents.
const EP_MAX_EVENTS: u64 = (i32::MAX as u64) / EPOLL_EVENT_SIZE;

pub fn epoll_create(_: &mut Ctx, a: A) -> Ret {
    if a[0] as i32 <= 0 {
        return Err(Errno::EINVAL);
    }
    new_fd(host(SYS_epoll_create1, [0; 6]))
}

pub fn epoll_create1(_: &mut Ctx, a: A) -> Ret {
    new_fd(host(SYS_epoll_create1, a))
}

pub fn epoll_ctl(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    fd(a[2])?;
    if a[1] as i32 != EPOLL_CTL_DEL {
        buf(a[3], EPOLL_EVENT_SIZE)?;
    }
    host(SYS_epoll_ctl, a)
}

fn events_buf(a: &A) -> Result<(), Errno> {
    fd(a[0])?;
    let max = a[2] as i32;
    if max <= 0 || max as u64 > EP_MAX_EVENTS {
        return Err(Errno::EINVAL);
    }
    buf(a[1], max as u64 * EPOLL_EVENT_SIZE).map(drop)
}

pub fn epoll_wait(ctx: &mut Ctx, a: A) -> Ret {
    events_buf(&a)?;
    ctx.blocking(SYS_epoll_wait, a, Restart::Never)
}

pub fn epoll_pwait(ctx: &mut Ctx, mut a: A) -> Ret {
    events_buf(&a)?;
    let mask = sigmask_arg(a[4], a[5])?;
    a[4] = 0;
    a[5] = 0;
    ctx.with_mask(mask, |ctx| ctx.blocking(SYS_epoll_pwait, a, Restart::Never))
}

pub fn eventfd(_: &mut Ctx, a: A) -> Ret {
    new_fd(host(SYS_eventfd2, [a[0], 0, 0, 0, 0, 0]))
}

pub fn eventfd2(_: &mut Ctx, a: A) -> Ret {
    new_fd(host(SYS_eventfd2, a))
}

/// The fd_set arguments of select: nfds bits each, and never km's fds.
fn fd_sets(a: &A) -> Result<(), Errno> {
    let nfds = a[0] as i32;
    if nfds < 0 || nfds as i64 > crate::fds::floor() as i64 {
        return Err(Errno::EINVAL);
    }
    let bytes = (nfds as u64).div_ceil(64) * 8;
    for &set in &a[1..4] {
        if set != 0 {
            buf(set, bytes)?;
        }
    }
    Ok(())
}

pub fn select(ctx: &mut Ctx, a: A) -> Ret {
    fd_sets(&a)?;
    opt::<timeval>(a[4])?;
    ctx.blocking(SYS_select, a, Restart::Never)
}

pub fn pselect6(ctx: &mut Ctx, mut a: A) -> Ret {
    fd_sets(&a)?;
    opt::<timespec>(a[4])?;
    // The sixth argument points to { const sigset_t *ss; size_t ss_len; }.
    let mask = if a[5] != 0 {
        let [ptr, len]: [u64; 2] = copy::read_obj(obj::<[u64; 2]>(a[5])?)?;
        sigmask_arg(ptr, len)?
    } else {
        None
    };
    a[5] = 0;
    ctx.with_mask(mask, |ctx| ctx.blocking(SYS_pselect6, a, Restart::Never))
}
