//! Checks on syscall arguments, applied before the host sees them.

use nix::errno::Errno;

use crate::fds;
use crate::mem::GuestRange;

/// Linux never transfers more than this in one read or write
/// (MAX_RW_COUNT), so a larger count only needs this much checked.
pub const MAX_RW_COUNT: u64 = 0x7fff_f000;

/// An fd argument: the payload's own, or an invalid one for the host to
/// reject; never one of km's. The kernel reads fds as 32-bit ints.
pub fn fd(v: u64) -> Result<(), Errno> {
    if fds::payload_may_use(v as i32 as i64) {
        Ok(())
    } else {
        Err(Errno::EBADF)
    }
}

/// A pointer to `len` bytes.
pub fn buf(ptr: u64, len: u64) -> Result<GuestRange, Errno> {
    GuestRange::new(ptr, len)
}

/// A read/write buffer: only the first MAX_RW_COUNT bytes can be touched.
pub fn rw_buf(ptr: u64, len: u64) -> Result<GuestRange, Errno> {
    GuestRange::new(ptr, len.min(MAX_RW_COUNT))
}

/// A pointer to a `T` the kernel reads or writes. `T` must have the
/// kernel's size: an opaque libc type (size 0) would check nothing.
pub fn obj<T>(ptr: u64) -> Result<GuestRange, Errno> {
    const { assert!(std::mem::size_of::<T>() > 0, "an empty type checks no bytes") };
    GuestRange::of::<T>(ptr)
}

/// Like `obj`, where NULL is allowed.
pub fn opt<T>(ptr: u64) -> Result<Option<GuestRange>, Errno> {
    const { assert!(std::mem::size_of::<T>() > 0, "an empty type checks no bytes") };
    GuestRange::opt(ptr, std::mem::size_of::<T>() as u64)
}

/// A NUL-terminated path. Only its start is checked: the host scans it
/// upward from there and stops with EFAULT at the unmapped top of the
/// guest window before it could leave it.
pub fn path(ptr: u64) -> Result<GuestRange, Errno> {
    GuestRange::new(ptr, 1)
}

/// A fd the host just created for the payload: the lowest free number,
/// as the payload's own kernel would pick. At or above the payload's soft
/// RLIMIT_NOFILE (every lower one in use) it is closed and the payload
/// gets EMFILE, as Linux refuses it; km's range lies above that limit.
/// Two fds the host just created for the payload (pipe, socketpair), made
/// in km's memory: both must be within the payload's open-file limit (else
/// both are closed and the payload gets EMFILE), then they are stored at
/// `out`; a store that fails closes them too.
pub fn new_fd_pair(pair: [i32; 2], out: GuestRange) -> Result<u64, Errno> {
    let close_both = || {
        for f in pair {
            // SAFETY: both fds were just created on the payload's behalf and
            // nobody else knows them.
            unsafe { libc::close(f) };
        }
    };
    if pair.iter().any(|&f| !fds::within_open_limit(f.into())) {
        close_both();
        return Err(Errno::EMFILE);
    }
    if let Err(e) = crate::mem::copy::write_obj(out, &pair) {
        close_both();
        return Err(e);
    }
    Ok(0)
}

pub fn new_fd(r: Result<u64, Errno>) -> Result<u64, Errno> {
    let v = r?;
    if fds::within_open_limit(v as i64) {
        return Ok(v);
    }
    // SAFETY: the fd was created by the call just made on the payload's
    // behalf and nobody else knows it.
    unsafe { libc::close(v as i32) };
    Err(Errno::EMFILE)
}
