//! The terminal's job-control signals for km's host calls. The tty layer
//! decides between signalling a background process and letting its call
//! proceed (or fail with EIO) by whether the calling thread blocks or
//! ignores SIGTTIN/SIGTTOU. Every km thread blocks them for the forwarder,
//! so a read of the terminal from a background job would be EIO and
//! tcsetpgrp would pass, where natively the job stops or its handler runs.
//! For the time of a host call made for the payload, the calling thread
//! opens the two signals unless the payload blocks or ignores them, and
//! the host's disposition follows the payload's: the default one stops
//! all of km (the parent's wait sees the stop as natively); for a payload
//! handler, km's catcher notes the signal and makes the call end with
//! EINTR, and km posts the signal to the payload (`post_caught`), whose
//! handler then runs and whose call restarts or fails per SA_RESTART.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{bit, Signals, Tid, SIG_DFL, SIG_IGN};

/// The signals the tty layer sends to the caller's process group.
const TTY_STOPS: [i32; 2] = [libc::SIGTTIN, libc::SIGTTOU];

/// Which of `TTY_STOPS` thread `tid` of the payload would take now (not
/// blocked, not ignored).
pub fn taken_stops(signals: &Signals, tid: Tid) -> Vec<i32> {
    let mask = signals.threads.get(&tid).map_or(u64::MAX, |t| t.mask);
    TTY_STOPS.into_iter().filter(|&sig| mask & bit(sig) == 0 && signals.action(sig).handler != SIG_IGN).collect()
}

/// The tty signals km's catcher took, by bit.
static CAUGHT: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_tty_signal(sig: libc::c_int) {
    CAUGHT.fetch_or(bit(sig), Ordering::SeqCst);
}

/// Gives the host the payload's disposition of `sig` if it is one of
/// `TTY_STOPS`: the default (stop), or km's catcher for a handler. An
/// ignored one is never opened, so its host disposition does not matter.
pub fn mirror(sig: i32, handler: u64) {
    if !TTY_STOPS.contains(&sig) {
        return;
    }
    // SAFETY: a zeroed sigaction is valid; the catcher only sets an atomic
    // (async-signal-safe). No SA_RESTART: the interrupted call must end.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction =
            if handler == SIG_DFL || handler == SIG_IGN { libc::SIG_DFL } else { on_tty_signal as *const () as usize };
        libc::sigfillset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

/// Posts to the payload the tty signals km's catcher took (the tty layer
/// sent them to the caller's whole group, as Linux's kill_pgrp does).
pub fn post_caught(proc: &crate::process::Process) {
    let caught = CAUGHT.swap(0, Ordering::SeqCst);
    for sig in TTY_STOPS.into_iter().filter(|&sig| caught & bit(sig) != 0) {
        let _ = proc.post(None, super::SigInfo::kernel(sig));
    }
}

/// Keeps `sigs` unblocked in the calling host thread while alive.
pub struct Opened(libc::sigset_t);

impl Opened {
    pub fn new(sigs: &[i32]) -> Option<Opened> {
        if sigs.is_empty() {
            return None;
        }
        // SAFETY: sigemptyset/sigaddset fill a local set; pthread_sigmask
        // changes only this thread's mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &sig in sigs {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            Some(Opened(set))
        }
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        // SAFETY: blocks again the set this thread opened.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &self.0, std::ptr::null_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{KSigaction, Pending, ThreadHandle, ThreadSignals};
    use std::sync::Arc;

    #[test]
    fn only_taken_stops_are_opened() {
        let mut s = Signals::new(1);
        let handle = Arc::new(ThreadHandle { tid: 1, attention: Default::default() });
        s.threads.insert(1, ThreadSignals { mask: 0, pending: Pending::default(), waiting: 0, handle });
        assert_eq!(taken_stops(&s, 1), vec![libc::SIGTTIN, libc::SIGTTOU]);
        s.set_action(libc::SIGTTIN, KSigaction { handler: 0x1000, ..Default::default() });
        assert_eq!(taken_stops(&s, 1), vec![libc::SIGTTIN, libc::SIGTTOU], "a handler takes it too");
        s.thread(1).mask = bit(libc::SIGTTIN);
        assert_eq!(taken_stops(&s, 1), vec![libc::SIGTTOU]);
        s.set_action(libc::SIGTTOU, KSigaction { handler: SIG_IGN, ..Default::default() });
        assert!(taken_stops(&s, 1).is_empty());
        assert!(taken_stops(&s, 2).is_empty(), "an unknown thread opens nothing");
    }
}
