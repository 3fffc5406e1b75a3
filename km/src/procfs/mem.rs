//! `/proc/<pid>/mem` for the payload: its own memory and nothing else.
//!
//! Like Linux's, it reads and writes through the payload's protections
//! (FOLL_FORCE: read-only and PROT_NONE private pages too), since km does
//! the transfer through its own /proc/self/mem at the same addresses.
//! Offsets outside the payload's mappings fail with EIO, as unmapped
//! memory does natively; the vDSO can be read, not written (km shares its
//! pages with no one, but they are km's monitor area).

use nix::errno::Errno;

use crate::guest::layout::monitor;
use crate::mem::GuestRange;
use crate::process::Process;

/// Moves up to `len` bytes between payload address `addr` and the
/// payload's buffer `buf` (range-checked by the caller); returns how many.
pub fn transfer(proc: &Process, addr: u64, buf: u64, len: u64, write: bool) -> Result<u64, Errno> {
    let mem = super::host()?.mem;
    let mut done = 0u64;
    while done < len {
        let Some(at) = addr.checked_add(done) else { break };
        let end = {
            let space = proc.space();
            match space.mapping_end(at) {
                Some(end) => end,
                None if !write && (monitor::VDSO..monitor::VDSO + monitor::VDSO_SIZE).contains(&at) => {
                    monitor::VDSO + monitor::VDSO_SIZE
                }
                None => break,
            }
        };
        let n = (len - done).min(end - at) as usize;
        // The one other route to payload memory besides `copy`: it too
        // holds only a checked range (the vDSO is the monitor area's).
        let range =
            if at >= monitor::VDSO { GuestRange::monitor(at, n as u64) } else { GuestRange::new(at, n as u64) }?;
        let local = (buf + done) as *mut libc::c_void;
        // SAFETY: `local` is payload memory the caller range-checked (the
        // kernel reports a bad page as EFAULT); `at` lies in a payload
        // mapping or the vDSO, and the host transfer through km's mem file
        // stops at the first page it cannot reach.
        let r = unsafe {
            if write {
                libc::pwrite(mem, local, n, range.addr() as i64)
            } else {
                libc::pread(mem, local, n, range.addr() as i64)
            }
        };
        if r < 0 {
            let e = Errno::last();
            return if done == 0 { Err(e) } else { Ok(done) };
        }
        done += r as u64;
        if (r as usize) < n || r == 0 {
            break;
        }
    }
    if done == 0 && len > 0 {
        return Err(Errno::EIO);
    }
    Ok(done)
}
