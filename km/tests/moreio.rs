//! The rest of the I/O surface (splice, tee, vmsplice, copy_file_range,
//! memfd with seals, inotify, mknod, close_range) and scheduling calls,
//! natively and under km, with wild pointers for each.

#[allow(dead_code)]
mod support;

use support::{km_half, Case};

#[test]
fn io_and_scheduling_calls() {
    let out = Case::new("moreio", &[]).check(0);
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("done\n"));
}

/// io_uring, fanotify and open_by_handle_at are refused by design (see
/// docs/architecture.md): ENOSYS, and no report, since that is the answer.
#[test]
fn io_uring_is_enosys() {
    let case = Case::new("moreio", &["uring"]);
    let Some(out) = km_half(|| case.run_km(&[])) else { return };
    assert_eq!(out.status, 0, "{out}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "io_uring_setup: ENOSYS\nfanotify_init: ENOSYS\nopen_by_handle_at: ENOSYS\n"
    );
    assert!(out.stderr.is_empty(), "{out}");
}

/// Extended attributes on a tmpfs file and through a symlink, with wild
/// pointers (a buffer is looked at only when there is something to store).
#[test]
fn xattrs_on_tmpfs() {
    let out = Case::new("moreio", &["xattr"]).check(0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("getxattr: 5 value"));
}

/// System V semaphores and message queues, with wild pointers.
#[test]
fn sysv_semaphores_and_queues() {
    let out = Case::new("sysv", &[]).check(0);
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("done\n"));
}

/// ioctl requests with the top bit set (musl passes them sign-extended) and
/// with garbage in the register's upper half act as natively.
#[test]
fn ioctl_request_is_an_unsigned_int() {
    Case::new("ioctl-request", &[]).check(0);
}
