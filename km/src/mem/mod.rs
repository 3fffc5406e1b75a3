//! The payload's memory: one address space shared by km (host virtual),
//! the guest page tables (guest virtual) and the memory slots (guest
//! physical), all with the same addresses.

pub mod atomic;
pub mod copy;
mod shared;
mod space;
mod vma;

pub use shared::SharedSpace;
pub use space::{AddressSpace, MemError};

use nix::errno::Errno;

use crate::guest::layout::{PAYLOAD_END, WINDOW_START};

/// Checks that [addr, addr+len) lies wholly inside payload memory's
/// address range, before any host call is given the pointer. Whether each
/// page is mapped and accessible is then for the host kernel to find out
/// (it returns EFAULT, exactly as for a native process), because payload
/// protections are mirrored on km's host mappings. An empty range is never
/// touched, so any address will do, as on Linux.
pub fn check(addr: u64, len: u64) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    let end = addr.checked_add(len).ok_or(Errno::EFAULT)?;
    if addr < WINDOW_START || end > PAYLOAD_END {
        return Err(Errno::EFAULT);
    }
    Ok(())
}

/// Like `check`, for arguments that may be NULL.
pub fn check_opt(addr: u64, len: u64) -> Result<(), Errno> {
    if addr == 0 {
        Ok(())
    } else {
        check(addr, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_checks() {
        assert_eq!(check(0, 1), Err(Errno::EFAULT));
        assert_eq!(check(1, 10), Err(Errno::EFAULT));
        assert_eq!(check(WINDOW_START, 0), Ok(()));
        assert_eq!(check(0, 0), Ok(()));
        assert_eq!(check(u64::MAX, 0), Ok(()));
        assert_eq!(check(WINDOW_START - 1, 2), Err(Errno::EFAULT));
        assert_eq!(check(PAYLOAD_END - 8, 8), Ok(()));
        assert_eq!(check(PAYLOAD_END - 8, 9), Err(Errno::EFAULT));
        assert_eq!(check(u64::MAX - 4, 10), Err(Errno::EFAULT));
        assert_eq!(check(0xffff_8000_0000_0000, 8), Err(Errno::EFAULT));
        assert_eq!(check_opt(0, 100), Ok(()));
        assert_eq!(check_opt(16, 100), Err(Errno::EFAULT));
    }
}
