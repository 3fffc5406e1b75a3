//! I/O on the payload's fds that stand for km's virtual procfs entries:
//! `mem` (km moves the bytes between the guest window and the payload's
//! buffers), directories (km writes the listing), and O_PATH fds (no I/O).
//! The fd's own file position (of its placeholder memfd or directory) is
//! the position, so duplicates share it as they would natively.

use libc::*;
use nix::errno::Errno;

use super::{host, Ctx, Ret};
use crate::mem::{copy, GuestRange};
use crate::procfs::fdtab::{self, Kind};
use crate::procfs::{mem, Node};

/// How km serves I/O on `fd`, if km serves it: mem and O_PATH fds.
pub fn special(fd: u64) -> Option<Kind> {
    fdtab::get(fd as i32).map(|e| e.kind).filter(|k| matches!(k, Kind::Mem { .. } | Kind::Path))
}

fn position(fd: u64) -> Result<u64, Errno> {
    host(SYS_lseek, [fd, 0, SEEK_CUR as u64, 0, 0, 0])
}

fn set_position(fd: u64, at: u64) -> Result<u64, Errno> {
    host(SYS_lseek, [fd, at, SEEK_SET as u64, 0, 0, 0])
}

/// read/write and their p- and -v forms on a `mem` fd: `iov` holds the
/// payload's (checked) buffers, `at` an explicit offset (None: the fd's).
pub fn mem_io(ctx: &Ctx, fd: u64, kind: Kind, at: Option<i64>, iov: &[(u64, u64)], write: bool) -> Ret {
    let Kind::Mem { read: may_read, write: may_write } = kind else { return Err(Errno::EBADF) };
    if (write && !may_write) || (!write && !may_read) {
        return Err(Errno::EBADF);
    }
    let (mut pos, explicit) = match at {
        Some(p) if p < 0 => return Err(Errno::EINVAL),
        Some(p) => (p as u64, true),
        None => (position(fd)?, false),
    };
    let mut total = 0u64;
    for &(base, len) in iov {
        if len == 0 {
            continue;
        }
        match mem::transfer(ctx.proc(), pos, base, len, write) {
            Ok(n) => {
                total += n;
                pos += n;
                if n < len {
                    break;
                }
            }
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
    }
    if !explicit {
        set_position(fd, pos)?;
    }
    Ok(total)
}

/// lseek on a `mem` fd: any position, none relative to an end.
pub fn mem_lseek(fd: u64, kind: Kind, a: [u64; 6]) -> Ret {
    if kind == Kind::Path {
        return Err(Errno::EBADF);
    }
    if a[2] as i32 == SEEK_END {
        return Err(Errno::EINVAL);
    }
    host(SYS_lseek, [fd, a[1], a[2], 0, 0, 0])
}

/// getdents64 on a virtual directory fd: its entries from the fd's
/// position (an index), as many as fit.
pub fn getdents(ctx: &Ctx, fd: u64, node: Node, out: u64, count: u64) -> Ret {
    let start = position(fd)? as usize;
    let mut entries: Vec<(String, u8)> = vec![(".".into(), DT_DIR), ("..".into(), DT_DIR)];
    entries.extend(node.list(ctx.proc())?);
    let dir = node.path(ctx.proc());
    let mut bytes = Vec::new();
    let mut i = start;
    while let Some((name, kind)) = entries.get(i) {
        // d_ino, d_off, d_reclen, d_type, the name and its NUL, 8-aligned.
        let reclen = (8 + 8 + 2 + 1 + name.len() + 1).next_multiple_of(8);
        if (bytes.len() + reclen) as u64 > count {
            break;
        }
        let ino = std::fs::symlink_metadata(format!("{dir}/{name}"))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(1);
        bytes.extend_from_slice(&ino.to_le_bytes());
        bytes.extend_from_slice(&((i + 1) as i64).to_le_bytes());
        bytes.extend_from_slice(&(reclen as u16).to_le_bytes());
        bytes.push(*kind);
        bytes.extend_from_slice(name.as_bytes());
        bytes.resize(bytes.len() + reclen - (8 + 8 + 2 + 1 + name.len()), 0);
        i += 1;
    }
    if i == start && i < entries.len() {
        return Err(Errno::EINVAL);
    }
    copy::write_bytes(GuestRange::new(out, bytes.len() as u64)?, &bytes)?;
    set_position(fd, i as u64)?;
    Ok(bytes.len() as u64)
}
