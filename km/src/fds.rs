//! Keeps km's own file descriptors out of the payload's reach.
//!
//! Payload fds are km's host fds (syscalls pass them straight through), so
//! km moves its private fds (device, VM, vCPUs, its diagnostics stream) to
//! the top of the fd range, and every fd the payload names or receives is
//! checked to lie below `floor()`. The payload sees RLIMIT_NOFILE ending
//! at the floor, and every fd created for it is checked against its soft
//! limit (`open_limit`), as the kernel allocates fds below RLIMIT_NOFILE.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Fds set aside for km: device, VM, one per vCPU, stderr copy.
const KM_FDS: u64 = 600;
/// Past this the kernel's fd table would grow large for nothing.
const MAX_FLOOR: u64 = 65536;

static FLOOR: OnceLock<i32> = OnceLock::new();
/// The soft limit km was started with.
static ORIGINAL_SOFT: OnceLock<u64> = OnceLock::new();
/// The payload's soft RLIMIT_NOFILE (see `crate::limits`).
static OPEN_LIMIT: AtomicU64 = AtomicU64::new(0);

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
    OPEN_LIMIT.store(payload_nofile().0, Ordering::Relaxed);
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

/// The payload's soft RLIMIT_NOFILE: new fds must be below it.
pub fn open_limit() -> u64 {
    OPEN_LIMIT.load(Ordering::Relaxed)
}

pub fn set_open_limit(soft: u64) {
    OPEN_LIMIT.store(soft, Ordering::Relaxed);
}

/// True if a new fd numbered `fd` is within the payload's soft limit.
pub fn within_open_limit(fd: i64) -> bool {
    (0..open_limit().min(floor() as u64) as i64).contains(&fd)
}

/// True if `fd` is one the payload may name (negative values and AT_FDCWD
/// pass through: the host kernel rejects or interprets them).
pub fn payload_may_use(fd: i64) -> bool {
    fd < floor() as i64
}

/// Moves `fd` into km's private range (close-on-exec) and closes the
/// original, also on failure; returns the new number.
pub fn privatize(fd: RawFd) -> std::io::Result<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC only creates a new fd; `fd` is owned by the
    // caller, who hands it over to us here.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor()) };
    let result = if high < 0 { Err(std::io::Error::last_os_error()) } else { Ok(high) };
    // SAFETY: `fd` was the caller's and is replaced by `high` (or given up);
    // nothing else refers to it. A km fd never stays below the floor.
    unsafe { libc::close(fd) };
    result
}

/// A close-on-exec dup of the payload's `fd` in km's range: the file it
/// names now, held by km whatever the payload does to `fd` meanwhile.
pub fn private_dup(fd: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: F_DUPFD_CLOEXEC only creates a new fd, which we own.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, floor()) };
    if high < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `high` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(high) })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// When an fd cannot be moved above the floor (here: km's own soft
    /// limit lowered to the floor, the trick the payload once had), it is
    /// closed, not left in the payload's range. In a child, which may
    /// change its limits.
    #[test]
    fn privatize_never_leaves_an_fd_below_the_floor() {
        // SAFETY: the child makes only raw calls and plain Rust on its own
        // stack before _exit; the parent only waits for it.
        unsafe {
            let child = libc::fork();
            assert!(child >= 0);
            if child == 0 {
                let ok = init().is_ok()
                    && {
                        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
                        lim.rlim_cur = floor() as u64;
                        libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
                    }
                    && {
                        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
                        fd >= 0 && privatize(fd).is_err() && libc::fcntl(fd, libc::F_GETFD) < 0
                    };
                libc::_exit(if ok { 0 } else { 1 });
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(child, &mut status, 0), child);
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "status {status:#x}");
        }
    }
}
