//! Reading a path argument out of payload memory.

use nix::errno::Errno;

use crate::guest::layout::{PAGE_SIZE, PAYLOAD_END, WINDOW_START};
use crate::mem::{copy, GuestRange};

/// Linux's PATH_MAX, the NUL included.
const PATH_MAX: usize = 4096;

/// The NUL-terminated path at `addr` (without the NUL): EFAULT if it runs
/// into memory the payload cannot read or past payload memory,
/// ENAMETOOLONG past PATH_MAX, as Linux's getname.
pub fn read_path(addr: u64) -> Result<Vec<u8>, Errno> {
    if !(WINDOW_START..PAYLOAD_END).contains(&addr) {
        return Err(Errno::EFAULT);
    }
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < PATH_MAX {
        // One page at a time, so a string that ends before an unreadable
        // page is read whole.
        let page_end = (at | (PAGE_SIZE - 1)) + 1;
        let n = ((page_end.min(PAYLOAD_END) - at) as usize).min(PATH_MAX - out.len());
        if n == 0 {
            return Err(Errno::EFAULT);
        }
        let mut chunk = vec![0u8; n];
        copy::read_bytes(GuestRange::new(at, n as u64)?, &mut chunk)?;
        if let Some(end) = chunk.iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk);
        at += n as u64;
    }
    Err(Errno::ENAMETOOLONG)
}
