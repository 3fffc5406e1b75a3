//! signalfd: a payload fd that reads km's emulated pending signals. Its
//! host object is an eventfd, so poll, select and epoll on it work in the
//! host kernel: km keeps the eventfd readable exactly while a signal of the
//! fd's mask is pending (see `Signals::sync_sigfds`). A route km does not
//! intercept reads only that eventfd's counter, nothing of km's.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use nix::errno::Errno;

use super::{SigInfo, UNBLOCKABLE};

/// `struct signalfd_siginfo`'s size.
pub const SIGINFO_SIZE: usize = 128;

#[derive(Debug)]
pub struct SignalFd {
    mask: AtomicU64,
    /// km's own duplicate of the eventfd, in km's fd range: readiness is
    /// set through it, never through a payload fd number that the payload
    /// may close and reuse at any time.
    event: AtomicI32,
    /// Whether the eventfd's counter is non-zero (changed under the
    /// signals lock only).
    ready: AtomicBool,
}

impl SignalFd {
    /// Takes ownership of `event`, an eventfd already in km's range.
    pub fn new(event: RawFd, mask: u64) -> Arc<SignalFd> {
        Arc::new(SignalFd {
            mask: AtomicU64::new(mask & !UNBLOCKABLE),
            event: AtomicI32::new(event),
            ready: AtomicBool::new(false),
        })
    }

    /// An eventfd inherited across exec, whose counter may be non-zero:
    /// marked ready, so that the first sync clears it if nothing is pending.
    pub fn adopted(event: RawFd, mask: u64) -> Arc<SignalFd> {
        let s = SignalFd::new(event, mask);
        s.ready.store(true, Ordering::Relaxed);
        s
    }

    pub fn mask(&self) -> u64 {
        self.mask.load(Ordering::Relaxed)
    }

    /// Call `Signals::sync_sigfds` after this.
    pub fn set_mask(&self, mask: u64) {
        self.mask.store(mask & !UNBLOCKABLE, Ordering::Relaxed);
    }

    pub fn event(&self) -> RawFd {
        self.event.load(Ordering::Relaxed)
    }

    /// Makes the eventfd readable or not.
    fn set_ready(&self, on: bool) {
        let fd = self.event();
        if on && !self.ready.swap(true, Ordering::Relaxed) {
            let one = 1u64;
            // SAFETY: writes 8 bytes from `one` to km's own eventfd; it
            // cannot block (the counter is far from its maximum).
            unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
        } else if !on && self.ready.swap(false, Ordering::Relaxed) {
            // Read only if readable: the fd may be in blocking mode, and a
            // read km does not serve (none should exist) may have drained it.
            let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            let mut count = 0u64;
            // SAFETY: poll reads and writes the one pollfd; read writes at
            // most 8 bytes into `count`; both on km's own eventfd.
            unsafe {
                if libc::poll(&mut p, 1, 0) == 1 && p.revents & libc::POLLIN != 0 {
                    libc::read(fd, &mut count as *mut u64 as *mut libc::c_void, 8);
                }
            }
        }
    }

    /// In a forked child, before km's inherited fds are closed: the
    /// eventfd is shared with the parent, whose signals are not the
    /// child's, so the child gets its own, put at every payload number in
    /// `fds` (keeping each number's close-on-exec flag) and at a new km fd,
    /// which is returned. The old km fd is left to the closing of km's fds.
    pub fn renew(&self, fds: &[RawFd]) -> Result<RawFd, Errno> {
        let old = self.event();
        // SAFETY: F_GETFL on km's own eventfd.
        let flags = unsafe { libc::fcntl(old, libc::F_GETFL) };
        let nonblock = if flags >= 0 { flags & libc::O_NONBLOCK } else { 0 };
        // SAFETY: creates a new eventfd owned here.
        let fresh = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | nonblock) };
        if fresh < 0 {
            return Err(Errno::last());
        }
        let private = crate::fds::privatize(fresh).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
        for &n in fds {
            // SAFETY: F_GETFD on a payload fd km knows as this signalfd.
            let cloexec = unsafe { libc::fcntl(n, libc::F_GETFD) } & libc::FD_CLOEXEC != 0;
            let flag = if cloexec { libc::O_CLOEXEC } else { 0 };
            // SAFETY: replaces payload fd `n`, which stands for this
            // signalfd, with the child's own eventfd.
            unsafe { libc::dup3(private, n, flag) };
        }
        self.event.store(private, Ordering::Relaxed);
        self.ready.store(false, Ordering::Relaxed);
        Ok(private)
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: the last payload fd for this signalfd is gone; km's
        // duplicate is owned here and used by nobody else.
        unsafe { libc::close(self.event()) };
    }
}

/// The signalfds of a process, for `Signals` to keep in step.
#[derive(Debug, Default)]
pub struct Registry(Vec<Weak<SignalFd>>);

impl Registry {
    pub fn add(&mut self, s: &Arc<SignalFd>) {
        self.0.push(Arc::downgrade(s));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn live(&self) -> Vec<Arc<SignalFd>> {
        self.0.iter().filter_map(Weak::upgrade).collect()
    }

    /// Sets each fd's readiness from `pending`, forgetting closed ones.
    pub fn sync(&mut self, pending: u64) {
        if self.0.is_empty() {
            return;
        }
        self.0.retain(|w| match w.upgrade() {
            Some(s) => {
                s.set_ready(pending & s.mask() != 0);
                true
            }
            None => false,
        });
    }

    pub fn clone_weak(&self) -> Registry {
        Registry(self.0.clone())
    }
}

/// `struct signalfd_siginfo` from a siginfo, with the fields Linux's
/// signalfd_copyinfo fills for the siginfo's layout.
pub fn to_signalfd(info: &SigInfo) -> [u8; SIGINFO_SIZE] {
    let raw = &info.0;
    let i32_at = |at: usize| i32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
    let mut out = [0u8; SIGINFO_SIZE];
    let mut put32 = |at: usize, v: i32| out[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let (signo, code) = (info.signo(), info.code());
    put32(0, signo);
    put32(4, i32_at(4));
    put32(8, code);
    // Offsets in signalfd_siginfo.
    const PID: usize = 12;
    const UID: usize = 16;
    const FD: usize = 20;
    const TID: usize = 24;
    const BAND: usize = 28;
    const OVERRUN: usize = 32;
    const STATUS: usize = 40;
    const INT: usize = 44;
    const PTR: usize = 48;
    const UTIME: usize = 56;
    const STIME: usize = 64;
    const ADDR: usize = 72;
    const SYSCALL: usize = 84;
    const CALL_ADDR: usize = 88;
    const ARCH: usize = 96;
    let mut put64 = Vec::new();
    match layout(signo, code) {
        Layout::Kill => {
            put32(PID, i32_at(16));
            put32(UID, i32_at(20));
        }
        Layout::Timer => {
            put32(TID, i32_at(16));
            put32(OVERRUN, i32_at(20));
            put32(INT, i32_at(24));
            put64.push((PTR, u64_at(24)));
        }
        Layout::Poll => {
            put32(BAND, u64_at(16) as i32);
            put32(FD, i32_at(24));
        }
        Layout::Fault => put64.push((ADDR, u64_at(16))),
        Layout::Chld => {
            put32(PID, i32_at(16));
            put32(UID, i32_at(20));
            put32(STATUS, i32_at(24));
            put64.push((UTIME, u64_at(32)));
            put64.push((STIME, u64_at(40)));
        }
        Layout::Rt => {
            put32(PID, i32_at(16));
            put32(UID, i32_at(20));
            put32(INT, i32_at(24));
            put64.push((PTR, u64_at(24)));
        }
        Layout::Sys => {
            put64.push((CALL_ADDR, u64_at(16)));
            put32(SYSCALL, i32_at(24));
            put32(ARCH, i32_at(28));
        }
    }
    for (at, v) in put64 {
        out[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// Which union member a siginfo uses (Linux's siginfo_layout).
#[derive(Debug, PartialEq, Eq)]
enum Layout {
    Kill,
    Timer,
    Poll,
    Fault,
    Chld,
    Rt,
    Sys,
}

fn layout(signo: i32, code: i32) -> Layout {
    const SI_KERNEL: i32 = super::code::SI_KERNEL;
    if code > libc::SI_USER && code < SI_KERNEL {
        // The kernel's codes of each signal: how many there are, and the
        // form they use.
        let (count, form) = match signo {
            libc::SIGILL => (11, Layout::Fault),
            libc::SIGFPE => (15, Layout::Fault),
            libc::SIGSEGV => (10, Layout::Fault),
            libc::SIGBUS => (5, Layout::Fault),
            libc::SIGTRAP => (6, Layout::Fault),
            libc::SIGCHLD => (6, Layout::Chld),
            libc::SIGPOLL => (6, Layout::Poll),
            libc::SIGSYS => (2, Layout::Sys),
            _ => (0, Layout::Kill),
        };
        if code <= count {
            form
        } else if code <= 6 {
            Layout::Poll
        } else {
            Layout::Kill
        }
    } else if code == libc::SI_TIMER {
        Layout::Timer
    } else if code == libc::SI_SIGIO {
        Layout::Poll
    } else if code < 0 {
        Layout::Rt
    } else {
        Layout::Kill
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_the_layout() {
        let q = to_signalfd(&SigInfo::queued(40, libc::SI_QUEUE, 1234, 1000, 0x1_0000_0007));
        let at = |b: &[u8; 128], i: usize| i32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        assert_eq!((at(&q, 0), at(&q, 8), at(&q, 12), at(&q, 16), at(&q, 44)), (40, libc::SI_QUEUE, 1234, 1000, 7));
        assert_eq!(u64::from_le_bytes(q[48..56].try_into().unwrap()), 0x1_0000_0007);
        let f = to_signalfd(&SigInfo::fault(libc::SIGSEGV, 1, 0x4000));
        assert_eq!(u64::from_le_bytes(f[72..80].try_into().unwrap()), 0x4000);
        assert_eq!(at(&f, 12), 0, "a fault has no sender");
        let k = to_signalfd(&SigInfo::user(libc::SIGUSR1, 5, 6));
        assert_eq!((at(&k, 12), at(&k, 16), at(&k, 44)), (5, 6, 0));
        assert_eq!(layout(libc::SIGCHLD, 1), Layout::Chld);
        assert_eq!(layout(libc::SIGUSR1, libc::SI_TIMER), Layout::Timer);
    }
}
