//! Sessions and job control: a controlling terminal (a pseudo-terminal
//! the payload opens itself) and the stops the tty layer sends a
//! background group, natively and under km.

#[allow(dead_code)]
mod support;

use support::Case;

/// TIOCSCTTY/TIOCNOTTY with their errors, and a background group's
/// terminal read and tcsetpgrp: stopped by SIGTTIN/SIGTTOU as the
/// parent's waitpid(WUNTRACED) sees, or EIO and success when ignored.
#[test]
fn controlling_terminal_and_tty_stops() {
    let out = Case::new("jobctl", &[]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "sendfile from an empty socket, interrupted: -1 EINTR",
        "TIOCSCTTY, not a session leader: -1 EPERM",
        "TIOCSCTTY: 0 ok",
        "read: stopped by SIGTTIN",
        "tcsetpgrp: stopped by SIGTTOU",
        "tcsetpgrp, SIGTTOU ignored: exited 0",
        "TIOCNOTTY: 0 ok",
    ] {
        assert!(text.lines().any(|l| l == line), "expected {line:?} in native stdout:\n{text}");
    }
}
