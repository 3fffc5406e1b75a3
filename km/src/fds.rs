//! Keeps km's own file descriptors out of the payload's reach.
//!
//! Payload fds are km's host fds (syscalls pass them straight through), so
//! km moves its private fds (device, VM, vCPUs, its diagnostics stream) to
//! the top of the fd range, and every fd the payload names or receives is
//! checked to lie below `floor()`. The payload sees RLIMIT_NOFILE ending
//! at the floor.

use std::os::fd::RawFd;
use std::sync::OnceLock;

/// Fds set aside for km: device, VM, one per vCPU, stderr copy.
const KM_FDS: u64 = 600;
/// Past this the kernel's fd table would grow large for nothing.
const MAX_FLOOR: u64 = 65536;

static FLOOR: OnceLock<i32> = OnceLock::new();
/// The soft limit km was started with.
static ORIGINAL_SOFT: OnceLock<u64> = OnceLock::new();

/// Computes the floor and raises km's soft RLIMIT_NOFILE so its own fds fit
/// above it. Call once, first thing.
pub fn init() -> anyhow::Result<()> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        anyhow::bail!("getrlimit(RLIMIT_NOFILE): {}", std::io::Error::last_os_error());
    }
    let top = lim.rlim_max.min(MAX_FLOOR + KM_FDS);
    if top < 2 * KM_FDS {
        anyhow::bail!(
            "the open-file limit ({}) is too low for km, which needs {} fds of its own; raise it with `ulimit -n`",
            lim.rlim_max,
            2 * KM_FDS
        );
    }
    let raised = libc::rlimit { rlim_cur: top, rlim_max: lim.rlim_max };
    // SAFETY: setrlimit reads the struct we pass; a soft limit up to the hard
    // limit is always allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        anyhow::bail!("setrlimit(RLIMIT_NOFILE): {}", std::io::Error::last_os_error());
    }
    FLOOR.set((top - KM_FDS) as i32).ok();
    ORIGINAL_SOFT.set(lim.rlim_cur).ok();
    Ok(())
}

/// Payload fds are below this; km's are at or above it.
pub fn floor() -> i32 {
    *FLOOR.get().expect("fds::init runs before any fd is handed out")
}

/// RLIMIT_NOFILE (soft, hard) as the payload sees it.
pub fn payload_nofile() -> (u64, u64) {
    let floor = floor() as u64;
    (ORIGINAL_SOFT.get().copied().unwrap_or(floor).min(floor), floor)
}

/// True if `fd` is one the payload may name (negative values and AT_FDCWD
/// pass through: the host kernel rejects or interprets them).
pub fn payload_may_use(fd: i64) -> bool {
    fd < floor() as i64
}

/// Moves `fd` into km's private range (close-on-exec) and closes the
/// original; returns the new number.
pub fn privatize(fd: RawFd) -> std::io::Result<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC only creates a new fd; `fd` is owned by the
    // caller, who hands it over to us here.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor()) };
    if high < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was the caller's and is replaced by `high`; nothing else
    // refers to it.
    unsafe { libc::close(fd) };
    Ok(high)
}

/// In a forked child: closes km's fds inherited from the parent (its
/// device, VM and vCPU fds, which only the parent may use), all but `keep`.
pub fn close_km_fds(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep.iter().filter(|&&k| k >= floor()).map(|&k| k as u32).collect();
    keep.sort_unstable();
    let mut from = floor() as u32;
    for k in keep {
        if k > from {
            close_range(from, k - 1);
        }
        from = k + 1;
    }
    close_range(from, u32::MAX);
}

fn close_range(first: u32, last: u32) {
    // SAFETY: closes only fds in km's private range, whose owners in this
    // process (the parent's device objects) are never used again.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
}
