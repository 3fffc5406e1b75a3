//! signalfd and signalfd4, and reads from a signalfd: they take km's
//! emulated pending signals (the payload's), never the host's. The state
//! and the readiness of the backing eventfd are in `crate::signal::sigfd`.

use libc::*;
use nix::errno::Errno;

use super::args::{fd, new_fd, obj};
use super::signals::wait_for_kick;
use super::TASK_SIZE_MAX;
use super::{host, Ctx, Restart, Ret};
use crate::mem::{copy, GuestRange};
use crate::procfs::fdtab;
use crate::signal::sigfd::{self, SignalFd, SIGINFO_SIZE};
use crate::signal::Signals;

type A = [u64; 6];

pub fn signalfd(ctx: &mut Ctx, a: A) -> Ret {
    signalfd4(ctx, [a[0], a[1], a[2], 0, 0, 0])
}

/// In Linux's order: the size, the mask (EFAULT), the flags, then the fd.
pub fn signalfd4(ctx: &mut Ctx, a: A) -> Ret {
    let (ufd, flags) = (a[0] as i32, a[3] as i32);
    if a[2] != 8 {
        return Err(Errno::EINVAL);
    }
    let mask: u64 = copy::read_obj(obj::<u64>(a[1])?)?;
    if flags & !(SFD_CLOEXEC | SFD_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    if ufd != -1 {
        fd(a[0])?;
        let Some(s) = fdtab::signalfd(ufd) else {
            // EBADF for a closed fd, EINVAL for one that is not a signalfd.
            host(SYS_fcntl, [a[0], F_GETFD as u64, 0, 0, 0, 0])?;
            return Err(Errno::EINVAL);
        };
        s.set_mask(mask);
        ctx.proc().signals().sync_sigfds();
        return Ok(ufd as u64);
    }
    let new = new_fd(host(SYS_eventfd2, [0, flags as u64, 0, 0, 0, 0]))? as i32;
    // SAFETY: duplicates the eventfd just made for the payload.
    let private = crate::fds::privatize(unsafe { libc::fcntl(new, F_DUPFD_CLOEXEC, 0) }).map_err(|e| {
        // SAFETY: the payload has not seen `new` yet.
        unsafe { libc::close(new) };
        Errno::from_raw(e.raw_os_error().unwrap_or(EMFILE))
    })?;
    let s = SignalFd::new(private, mask);
    fdtab::insert_signalfd(new, s.clone());
    let mut signals = ctx.proc().signals();
    signals.sigfds.add(&s);
    signals.sync_sigfds();
    Ok(new as u64)
}

/// A read or readv of signalfd `s` (payload fd `f`) into `bufs`: as many
/// whole `signalfd_siginfo` records as fit, blocking for the first unless
/// the fd is non-blocking.
///
/// As Linux: a buffer reaching past user space is EFAULT at once, one that
/// is merely unmapped fails as the first record is stored, and that record
/// is lost with its signal.
pub fn read(ctx: &mut Ctx, f: u64, s: &SignalFd, bufs: &[(u64, u64)]) -> Ret {
    if bufs.iter().any(|&(base, len)| base.checked_add(len).is_none_or(|end| end > TASK_SIZE_MAX)) {
        return Err(Errno::EFAULT);
    }
    let total: u64 = bufs.iter().map(|b| b.1).sum();
    let count = total / SIGINFO_SIZE as u64;
    if count == 0 {
        return Err(Errno::EINVAL);
    }
    let mut out = Out { bufs, at: 0, written: 0 };
    let tid = ctx.tid();
    let mask = s.mask();
    for _ in 0..count {
        let taken = ctx.proc().signals().take_from(tid, mask);
        let info = match taken {
            Some(info) => info,
            None if out.written > 0 => break,
            None => wait(ctx, f, mask)?,
        };
        let before = out.written;
        if let Err(e) = out.put(&sigfd::to_signalfd(&info)) {
            return if before > 0 { Ok(before) } else { Err(e) };
        }
    }
    Ok(out.written)
}

/// Waits for a signal of `mask` and takes it: EAGAIN on a non-blocking
/// fd, EINTR (restarted under SA_RESTART, as Linux's read) when a signal
/// the payload takes comes first.
fn wait(ctx: &mut Ctx, f: u64, mask: u64) -> Result<crate::signal::SigInfo, Errno> {
    let tid = ctx.tid();
    loop {
        let taken = {
            let mut s = ctx.proc().signals();
            let taken = s.take_from(tid, mask);
            // Posting one of these kicks this thread although they are blocked.
            s.thread(tid).waiting = if taken.is_some() { 0 } else { mask };
            taken
        };
        if let Some(info) = taken {
            return Ok(info);
        }
        // The payload may have set O_NONBLOCK with fcntl since.
        let nonblocking =
            host(SYS_fcntl, [f, F_GETFL as u64, 0, 0, 0, 0]).map_or(true, |fl| fl as i32 & O_NONBLOCK != 0);
        if nonblocking || ctx.proc().signals().deliverable(tid) {
            ctx.proc().signals().thread(tid).waiting = 0;
            if nonblocking {
                return Err(Errno::EAGAIN);
            }
            ctx.interrupted = Some(Restart::IfSaRestart);
            return Err(Errno::EINTR);
        }
        let r = wait_for_kick(ctx, SYS_pause, [0; 6]);
        if let Err(e) = r {
            ctx.proc().signals().thread(tid).waiting = 0;
            return Err(e);
        }
    }
}

/// Where the records go: the buffers in order, records split across them
/// as a readv splits them.
struct Out<'a> {
    bufs: &'a [(u64, u64)],
    at: usize,
    written: u64,
}

impl Out<'_> {
    fn put(&mut self, mut bytes: &[u8]) -> Result<(), Errno> {
        let mut off = self.written - self.bufs[..self.at].iter().map(|b| b.1).sum::<u64>();
        while !bytes.is_empty() {
            let (base, len) = self.bufs[self.at];
            let n = (len - off).min(bytes.len() as u64);
            copy::write_bytes(GuestRange::new(base + off, n)?, &bytes[..n as usize])?;
            bytes = &bytes[n as usize..];
            self.written += n;
            off += n;
            if off == len {
                self.at += 1;
                off = 0;
            }
        }
        Ok(())
    }
}

/// In a re-executed km: payload fds `fds` were signalfd(s) of the old km
/// with `mask` (one open file). They are the same eventfd still, unless the
/// payload replaced the number in the meantime, which leaves it alone.
pub fn adopt_signalfd(signals: &mut Signals, mask: u64, fds: &[i32]) {
    let Some(&first) = fds.first() else { return };
    let is_eventfd = |n: i32| {
        std::fs::read_link(format!("/proc/self/fd/{n}")).is_ok_and(|l| l.as_os_str() == "anon_inode:[eventfd]")
    };
    if !fds.iter().all(|&n| crate::fds::payload_may_use(n.into()) && is_eventfd(n)) {
        return;
    }
    // SAFETY: duplicates a payload eventfd for km's own use.
    let Ok(private) = crate::fds::privatize(unsafe { libc::fcntl(first, F_DUPFD_CLOEXEC, 0) }) else { return };
    // Whatever count the old km left is cleared unless a signal is pending.
    let s = SignalFd::adopted(private, mask);
    for &n in fds {
        fdtab::insert_signalfd(n, s.clone());
    }
    signals.sigfds.add(&s);
    signals.sync_sigfds();
}
