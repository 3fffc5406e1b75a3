//! Signals between processes under load: none may be lost, whenever it
//! lands relative to the host call the receiver waits in.

#[allow(dead_code)]
mod support;

use support::Case;

/// A child echoing a pipe (as cat does) gets SIGINT right after each echo
/// at varied delays: as it returns from its write, turns back to read, or
/// waits in read. Every signal runs its handler, or ends a child by the
/// default action; a lost one leaves the child waiting and is reported.
#[test]
fn no_signal_lost_around_a_blocking_read() {
    let out = Case::new("sigwake", &[]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("handled: 1000 of 1000") && text.contains("killed by SIGINT: 125 of 125"), "{text}");
}

/// Signals pending at execve stay pending in the new program, with their
/// siginfo: a thread's, the process's, queued real-time ones with their
/// values in order, an ignored and blocked one; then they arrive when the
/// new program unblocks them.
#[test]
fn pending_signals_survive_exec() {
    let out = Case::new("execsig", &[]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "pending: SIGUSR1 yes SIGUSR2 yes SIGRTMIN+1 yes SIGWINCH yes SIGTERM no",
        "  got SIGRTMIN+1 code SI_QUEUE from self yes value 43",
        "  got signal 10 code SI_TKILL from self yes value -1",
    ] {
        assert!(text.lines().any(|l| l == line), "expected {line:?} in native stdout:\n{text}");
    }
}

/// Thousands of queued signals pending at execve (more than one argument
/// of 128 KiB could describe) all arrive in the new program, in order.
#[test]
fn thousands_of_queued_signals_survive_exec() {
    let out = Case::new("execqueue", &[]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("received 3000, in order with their values: yes"), "{text}");
}
