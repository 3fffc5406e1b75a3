//! The terminal's job-control stops for km's host calls. The tty layer
//! decides between stopping a background process and letting its call
//! proceed (or fail with EIO) by whether the calling thread blocks or
//! ignores SIGTTIN/SIGTTOU. Every km thread blocks them for the forwarder,
//! so a read of the terminal from a background job would be EIO and
//! tcsetpgrp would pass, where natively the job stops. For the time of a
//! host call made for the payload, the calling thread opens the two
//! signals that the payload would take with their default action: the
//! kernel then stops all of km with it, and the parent's wait sees the
//! stop as natively.

use super::{bit, Signals, Tid, SIG_DFL};

/// The signals the tty layer sends to the caller's process group.
const TTY_STOPS: [i32; 2] = [libc::SIGTTIN, libc::SIGTTOU];

/// Which of `TTY_STOPS` thread `tid` of the payload would take with the
/// default action now (not blocked, disposition SIG_DFL).
pub fn default_stops(signals: &Signals, tid: Tid) -> Vec<i32> {
    let mask = signals.threads.get(&tid).map_or(u64::MAX, |t| t.mask);
    TTY_STOPS.into_iter().filter(|&sig| mask & bit(sig) == 0 && signals.action(sig).handler == SIG_DFL).collect()
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
    use crate::signal::{KSigaction, Pending, ThreadHandle, ThreadSignals, SIG_IGN};
    use std::sync::Arc;

    #[test]
    fn only_default_unblocked_stops_are_opened() {
        let mut s = Signals::new(1);
        let handle = Arc::new(ThreadHandle { tid: 1, attention: Default::default() });
        s.threads.insert(1, ThreadSignals { mask: 0, pending: Pending::default(), waiting: 0, handle });
        assert_eq!(default_stops(&s, 1), vec![libc::SIGTTIN, libc::SIGTTOU]);
        s.thread(1).mask = bit(libc::SIGTTIN);
        assert_eq!(default_stops(&s, 1), vec![libc::SIGTTOU]);
        s.set_action(libc::SIGTTOU, KSigaction { handler: SIG_IGN, ..Default::default() });
        assert!(default_stops(&s, 1).is_empty());
        assert!(default_stops(&s, 2).is_empty(), "an unknown thread opens nothing");
    }
}
