//! Copies between payload memory and km's own, for the arguments km itself
//! interprets (iovec arrays, sigactions, signal frames, tid words).
//!
//! Each takes a `GuestRange`, so only checked addresses can be reached,
//! and goes through process_vm_readv/writev on km itself rather than plain
//! loads: payload memory can be PROT_NONE, unmapped by another vCPU, or a
//! file mapping past EOF, and the kernel turns all of those into EFAULT
//! where a load would kill km with SIGSEGV or SIGBUS. Nothing else in km
//! calls process_vm_* or dereferences a payload address.

use nix::errno::Errno;

use super::GuestRange;

/// Types that are valid for every bit pattern and have no padding that
/// matters, so bytes from the payload can become one.
///
/// # Safety
/// Implement only for `#[repr(C)]` plain data without references, bools,
/// enums or other types with invalid bit patterns.
pub unsafe trait Pod: Copy + Default {}

// SAFETY: plain integers and arrays of them accept any bit pattern.
unsafe impl Pod for u64 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for i32 {}
// SAFETY: as above.
unsafe impl Pod for [i32; 2] {}
// SAFETY: as above.
unsafe impl Pod for [u64; 2] {}
// SAFETY: as above.
unsafe impl Pod for [u64; 3] {}
// SAFETY: two pointer-sized integers (raw pointer fields accept any value;
// km validates them before use).
unsafe impl Pod for libc::iovec {}
// SAFETY: an int and two shorts, any bit pattern is valid.
unsafe impl Pod for libc::pollfd {}

/// Moves `len` bytes between km's buffer at `local` and the start of
/// `remote`, which must be at least that long.
fn transfer(remote: GuestRange, local: *mut u8, len: usize, write: bool) -> Result<(), Errno> {
    if len as u64 > remote.len() {
        debug_assert!(false, "a copy of {len} bytes through a range of {}", remote.len());
        return Err(Errno::EFAULT);
    }
    if len == 0 {
        return Ok(());
    }
    let local = libc::iovec { iov_base: local.cast(), iov_len: len };
    let remote = libc::iovec { iov_base: remote.addr() as *mut libc::c_void, iov_len: len };
    // SAFETY: `local` describes a buffer of km's that the caller lends us for
    // `len` bytes; the remote side lies in checked payload memory, and the
    // kernel returns EFAULT (or a short count) there instead of faulting.
    let n = unsafe {
        let pid = libc::getpid();
        if write {
            libc::process_vm_writev(pid, &local, 1, &remote, 1, 0)
        } else {
            libc::process_vm_readv(pid, &local, 1, &remote, 1, 0)
        }
    };
    if n == len as isize {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

/// Fills `buf` from the start of `src`.
pub fn read_bytes(src: GuestRange, buf: &mut [u8]) -> Result<(), Errno> {
    transfer(src, buf.as_mut_ptr(), buf.len(), false)
}

/// Stores `buf` at the start of `dst`.
pub fn write_bytes(dst: GuestRange, buf: &[u8]) -> Result<(), Errno> {
    // The kernel only reads `buf` for a write; the cast is for the iovec type.
    transfer(dst, buf.as_ptr() as *mut u8, buf.len(), true)
}

pub fn read_obj<T: Pod>(src: GuestRange) -> Result<T, Errno> {
    let mut v = T::default();
    transfer(src, (&mut v as *mut T).cast(), std::mem::size_of::<T>(), false)?;
    Ok(v)
}

pub fn write_obj<T: Pod>(dst: GuestRange, v: &T) -> Result<(), Errno> {
    transfer(dst, (v as *const T as *mut T).cast(), std::mem::size_of::<T>(), true)
}

pub fn read_slice<T: Pod>(src: GuestRange, out: &mut [T]) -> Result<(), Errno> {
    transfer(src, out.as_mut_ptr().cast(), std::mem::size_of_val(out), false)
}

pub fn write_slice<T: Pod>(dst: GuestRange, v: &[T]) -> Result<(), Errno> {
    transfer(dst, v.as_ptr() as *mut u8, std::mem::size_of_val(v), true)
}
