//! Host signals sent to km (Ctrl-C, kill, SIGWINCH, timers) become the
//! payload's. Every km thread blocks them; one thread takes them with
//! sigtimedwait and posts each to the payload with the host's siginfo.
//! Between signals the same thread re-bases the vDSO clock when due.

use std::sync::Arc;

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

/// Starts the forwarding thread, which also keeps `clock` (if the vDSO
/// clock is on). Nothing waits for it to run: signals stay pending until
/// it takes them, and what needs its tid waits for it (`process`).
pub fn start(proc: Arc<Process>, mut clock: Option<Clock>) -> std::io::Result<()> {
    // A forked child has the parent's number until its own thread runs.
    crate::process::set_forwarder_tid(0);
    std::thread::Builder::new().name("km-signals".into()).stack_size(256 << 10).spawn(move || {
        block_all_in_this_thread();
        // Taken by sigwaitinfo here, so blocked (a refused call of this
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
        let set = forwarded();
        loop {
            let timeout = clock.as_ref().map(|c| {
                let d = c.until_due();
                libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos().into() }
            });
            // SAFETY: a zeroed siginfo_t is valid; sigtimedwait fills it.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let timeout_ptr = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `set`, `info` and the timeout are ours for the call; a
            // null timeout waits for ever.
            if unsafe { libc::sigtimedwait(&set, &mut info, timeout_ptr) } > 0 {
                proc.post_host(SigInfo::from_host(&info));
            }
            if let Some(c) = clock.as_mut() {
                c.refresh_if_due();
            }
        }
    })?;
    Ok(())
}
