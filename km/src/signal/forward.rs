//! Host signals sent to km (Ctrl-C, kill, SIGWINCH, timers) become the
//! payload's. Every km thread blocks them; one thread waits until one is
//! pending (a signalfd, which does not take it) and posts each to the
//! payload with the host's siginfo. Between signals the same thread
//! re-bases the vDSO clock when due.
//!
//! A vCPU thread whose blocking call has returned takes them too, before
//! the payload sees the result (`take_pending`): natively a signal sent to
//! a group is pending in every member before any of them acts on it, so
//! cat in `sleep | cat` is killed by Ctrl-C, never sees sleep's end of
//! file first. Both take and post under one lock, so no signal the host
//! holds for km is between the host and the payload while a vCPU thread
//! looks: it is still the host's (and taken now) or already posted.

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use super::SigInfo;
use crate::guest::clock::Clock;
use crate::kick::kick_signal;
use crate::process::Process;

/// Signals km keeps for itself: its own faults (km bugs must not be
/// mistaken for the payload's), the kick, glibc's two internal ones, and
/// the two that cannot be caught.
fn kept_by_km(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP | libc::SIGKILL | libc::SIGSTOP
    ) || sig == kick_signal()
        || (32..libc::SIGRTMIN()).contains(&sig)
}

/// The set the forwarding thread waits for.
fn forwarded() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in (1..=libc::SIGRTMAX()).filter(|s| !kept_by_km(*s)) {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks the forwarded signals in the calling thread, and so in every
/// thread it creates afterwards. Call first thing in main.
///
/// SIGSYS stays open: the seccomp filter raises it in the thread whose
/// call it refused, and a blocked one would kill km without its report
/// (`crate::seccomp` passes any other SIGSYS on to the forwarding thread).
pub fn block_in_this_thread() {
    let mut set = forwarded();
    // SAFETY: sigdelset edits our local set; pthread_sigmask reads it.
    unsafe {
        libc::sigdelset(&mut set, libc::SIGSYS);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Blocks every signal but km's own faults and SIGSYS in the calling
/// (service) thread, so neither payload signals nor kicks land in it.
pub fn block_all_in_this_thread() {
    // SAFETY: sigfillset/sigdelset initialise a local set; pthread_sigmask
    // reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGTRAP, libc::SIGSYS] {
            libc::sigdelset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Held while host signals are taken and posted.
static TAKING: Mutex<()> = Mutex::new(());

/// Holds off the taking of host signals (across a host fork: the child
/// must not inherit the lock held by the forwarder, which it lacks).
pub fn hold() -> std::sync::MutexGuard<'static, ()> {
    crate::process::lock(&TAKING)
}

/// Takes every forwarded signal pending for the process or the calling
/// thread from the host and posts it to the payload.
pub fn take_pending(proc: &Process) {
    let set = forwarded();
    let _taking = hold();
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    loop {
        // SAFETY: a zeroed siginfo_t is valid; sigtimedwait fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set`, `info` and `zero` are ours for the call.
        if unsafe { libc::sigtimedwait(&set, &mut info, &zero) } <= 0 {
            return;
        }
        proc.post_host(SigInfo::from_host(&info));
    }
}

/// A signalfd for the forwarded signals, in km's fd range: readable while
/// one is pending for the process or the thread that polls it.
fn signal_fd() -> std::io::Result<RawFd> {
    let set = forwarded();
    // SAFETY: signalfd reads the set and returns a new fd.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    crate::fds::privatize(fd)
}

/// Starts the forwarding thread, which also keeps `clock` (if the vDSO
/// clock is on). Nothing waits for it to run: signals stay pending until
/// it takes them, and what needs its tid waits for it (`process`).
pub fn start(proc: Arc<Process>, mut clock: Option<Clock>) -> std::io::Result<()> {
    let fd = signal_fd()?;
    // A forked child has the parent's number until its own thread runs.
    crate::process::set_forwarder_tid(0);
    std::thread::Builder::new().name("km-signals".into()).stack_size(256 << 10).spawn(move || {
        block_all_in_this_thread();
        // Taken by sigtimedwait here, so blocked (a refused call of this
        // thread's then kills km without the report).
        // SAFETY: sigemptyset/sigaddset fill a local set; pthread_sigmask reads it.
        unsafe {
            let mut sys: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut sys);
            libc::sigaddset(&mut sys, libc::SIGSYS);
            libc::pthread_sigmask(libc::SIG_BLOCK, &sys, std::ptr::null_mut());
        }
        // SAFETY: gettid has no arguments.
        crate::process::set_forwarder_tid(unsafe { libc::gettid() });
        loop {
            // Rounded up: a timeout cut to 0 ms before the clock is due would spin.
            let timeout =
                clock.as_ref().map_or(-1, |c| c.until_due().as_micros().div_ceil(1000).min(i32::MAX as u128) as i32);
            let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: polls one pollfd of ours; -1 waits for ever.
            if unsafe { libc::poll(&mut p, 1, timeout) } > 0 {
                take_pending(&proc);
            }
            if let Some(c) = clock.as_mut() {
                c.refresh_if_due();
            }
        }
    })?;
    Ok(())
}
