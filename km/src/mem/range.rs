//! `GuestRange`: a range of addresses that passed the payload-memory check.
//!
//! It is the only key to payload memory. Every read or write km makes of
//! it (`copy`) takes one, and the only ways to make one are the checks
//! below, so searching for this type finds every place km touches payload
//! memory, and none can name km's own.

use nix::errno::Errno;

use crate::guest::layout::{monitor, MONITOR_START, PAYLOAD_END, WINDOW_START};

/// [addr, addr+len), wholly inside payload memory's address range (or,
/// for `monitor`, inside the guest-visible monitor area).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRange {
    addr: u64,
    len: u64,
}

impl GuestRange {
    /// Checks that [addr, addr+len) lies wholly inside payload memory's
    /// address range, before any host call or copy is given the pointer.
    /// Whether each page is mapped and accessible is then for the host
    /// kernel to find out (it returns EFAULT, exactly as for a native
    /// process), because payload protections are mirrored on km's host
    /// mappings and the rest of the window is a PROT_NONE reservation. An
    /// empty range is never touched, so any address will do, as on Linux.
    pub fn new(addr: u64, len: u64) -> Result<GuestRange, Errno> {
        if len == 0 {
            return Ok(GuestRange { addr, len });
        }
        let end = addr.checked_add(len).ok_or(Errno::EFAULT)?;
        if addr < WINDOW_START || end > PAYLOAD_END {
            return Err(Errno::EFAULT);
        }
        Ok(GuestRange { addr, len })
    }

    /// Room for one `T` at `addr`.
    pub fn of<T>(addr: u64) -> Result<GuestRange, Errno> {
        GuestRange::new(addr, std::mem::size_of::<T>() as u64)
    }

    /// Room for `n` values of `T` at `addr`.
    pub fn array<T>(addr: u64, n: u64) -> Result<GuestRange, Errno> {
        let len = n.checked_mul(std::mem::size_of::<T>() as u64).ok_or(Errno::EFAULT)?;
        GuestRange::new(addr, len)
    }

    /// Like `new`, for arguments that may be NULL (`None`).
    pub fn opt(addr: u64, len: u64) -> Result<Option<GuestRange>, Errno> {
        if addr == 0 {
            Ok(None)
        } else {
            GuestRange::new(addr, len).map(Some)
        }
    }

    /// A range of the guest-visible monitor area (below the page tables),
    /// for what km's fault stubs store on their IST stacks: km reads it
    /// back as untrusted as payload memory.
    pub fn monitor(addr: u64, len: u64) -> Result<GuestRange, Errno> {
        let end = addr.checked_add(len).ok_or(Errno::EFAULT)?;
        if addr < MONITOR_START || end > monitor::PAGE_TABLES {
            return Err(Errno::EFAULT);
        }
        Ok(GuestRange { addr, len })
    }

    pub fn addr(&self) -> u64 {
        self.addr
    }

    pub fn len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(addr: u64, len: u64) -> bool {
        GuestRange::new(addr, len).is_ok()
    }

    #[test]
    fn payload_ranges() {
        assert!(!ok(0, 1));
        assert!(!ok(1, 10));
        assert!(ok(WINDOW_START, 0));
        assert!(ok(0, 0));
        assert!(ok(u64::MAX, 0));
        assert!(!ok(WINDOW_START - 1, 2));
        assert!(ok(PAYLOAD_END - 8, 8));
        assert!(!ok(PAYLOAD_END - 8, 9));
        assert!(!ok(u64::MAX - 4, 10));
        assert!(!ok(0xffff_8000_0000_0000, 8));
        assert_eq!(GuestRange::opt(0, 100), Ok(None));
        assert_eq!(GuestRange::opt(16, 100), Err(Errno::EFAULT));
        assert_eq!(GuestRange::array::<u64>(WINDOW_START, u64::MAX / 4), Err(Errno::EFAULT));
        assert_eq!(GuestRange::of::<u64>(PAYLOAD_END - 4), Err(Errno::EFAULT));
    }

    #[test]
    fn monitor_ranges_stay_in_the_guest_visible_part() {
        assert!(GuestRange::monitor(MONITOR_START, 8).is_ok());
        assert!(GuestRange::monitor(monitor::PAGE_TABLES - 8, 8).is_ok());
        assert!(GuestRange::monitor(monitor::PAGE_TABLES - 8, 9).is_err());
        assert!(GuestRange::monitor(PAYLOAD_END - 8, 8).is_err());
        assert!(GuestRange::monitor(u64::MAX, 2).is_err());
    }
}
