//! Host signals sent to km (Ctrl-C, kill, SIGWINCH, timers) become the
//! payload's. Every km thread blocks them; one thread takes them with
//! sigwaitinfo and posts each to the payload with the host's siginfo.

use std::sync::Arc;

use super::SigInfo;
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

/// Starts the forwarding thread.
pub fn start(proc: Arc<Process>) -> std::io::Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
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
        let _ = ready_tx.send(unsafe { libc::gettid() });
        let set = forwarded();
        loop {
            // SAFETY: a zeroed siginfo_t is valid; sigwaitinfo fills it.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: `set` and `info` are ours for the call.
            if unsafe { libc::sigwaitinfo(&set, &mut info) } > 0 {
                proc.post_host(SigInfo::from_host(&info));
            }
        }
    })?;
    let tid = ready_rx.recv().map_err(std::io::Error::other)?;
    crate::process::set_forwarder_tid(tid);
    Ok(())
}
