//! What km cut from a process's start and fork for speed, shown to behave
//! as before: each case runs natively and under km and requires the same
//! output and status.

#[allow(dead_code)]
mod support;

use support::Case;

/// The guest page-table pool is registered with the device as it grows:
/// 3 GiB touched every 2 MiB (past the first piece) while another thread
/// runs, a fork whose child starts from the grown pool and grows it
/// further, and a map after munmap.
#[test]
fn page_table_pool_grows_across_fork() {
    Case::new("pagepool", &[]).check(0);
}

/// A process that has not waited in the kernel runs without km's
/// signal-forwarding thread: host signals end its vCPU's run instead.
/// Children spinning without a system call get a signal from their parent
/// (to a handler, by the default action, and after writes to /dev/null and
/// a file, which need no forwarder), SIGSYS from outside, SIGCHLD
/// of their own child, SIGALRM of an interval timer, SIGTERM in an open of
/// a FIFO (which needs the forwarder), and 300 ms of vDSO
/// clock (past the re-base the forwarder makes).
#[test]
fn signals_reach_a_process_without_its_forwarder() {
    let out = Case::new("lazysig", &[]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "SIGUSR1 to a handler: exit 10",
        "SIGTERM by default: killed by Terminated",
        "SIGUSR2 after writes to /dev/null and a file: exit 12",
        "SIGSYS to a handler: exit 31",
        "SIGCHLD of its own child: exit 17",
        "SIGALRM of its timer: exit 14",
        "SIGTERM in an open of a FIFO: killed by Terminated",
        "300 ms of vDSO clock, never backwards: exit 0",
    ] {
        assert!(text.lines().any(|l| l == line), "expected {line:?} in native stdout:\n{text}");
    }
}
