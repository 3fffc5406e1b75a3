//! Memory: every mapping change goes through the address space, which keeps
//! host mappings, km's record and the guest page tables in step.

use std::os::fd::AsRawFd;

use libc::*;
use nix::errno::Errno;

use super::args::{buf, fd};
use super::{host, Ctx, Ret};
use crate::guest::layout::{page_up, PAGE_SIZE};

type A = [u64; 6];

pub fn brk(ctx: &mut Ctx, a: A) -> Ret {
    Ok(ctx.proc().space.exclusive().brk(a[0]))
}

pub fn mmap(ctx: &mut Ctx, a: A) -> Ret {
    let flags = a[3] as i32;
    if flags & MAP_ANONYMOUS != 0 {
        return ctx.proc().space.mmap(a[0], a[1], a[2] as i32, flags, -1, a[5] as i64);
    }
    fd(a[4])?;
    // The payload's fd is resolved once, into a dup of km's, and only that
    // dup is checked and mapped: another payload thread cannot swap a
    // different file in between.
    let file = crate::fds::private_dup(a[4] as i32)?;
    mappable(&file)?;
    ctx.proc().space.mmap(a[0], a[1], a[2] as i32, flags, file.as_raw_fd(), a[5] as i64)
}

/// Files with no type (anonymous inodes: eventfd, epoll, signalfd, timerfd,
/// and km's own VM and vCPU fds) are ENODEV, as Linux answers for the
/// payload's own such fds, which have no mmap. km's vCPU fds sit below the
/// floor for a moment when created (the kernel hands out the lowest free
/// number): even one a payload thread caught then can never be mapped,
/// and with it the vCPU's kvm_run page.
fn mappable(file: &std::os::fd::OwnedFd) -> Result<(), Errno> {
    let st = nix::sys::stat::fstat(file)?;
    if st.st_mode & S_IFMT == 0 {
        return Err(Errno::ENODEV);
    }
    Ok(())
}

pub fn munmap(ctx: &mut Ctx, a: A) -> Ret {
    ctx.proc().space.munmap(a[0], a[1]).map(|_| 0)
}

pub fn mprotect(ctx: &mut Ctx, a: A) -> Ret {
    ctx.proc().space.mprotect(a[0], a[1], a[2] as i32).map(|_| 0)
}

pub fn mremap(ctx: &mut Ctx, a: A) -> Ret {
    ctx.proc().space.exclusive().mremap(a[0], a[1], a[2], a[3] as i32, a[4])
}

/// A page-aligned range of payload memory, as madvise/msync/mincore/mlock
/// take it: EINVAL if misaligned, ENOMEM unless every page is mapped.
fn mapped_range(ctx: &Ctx, addr: u64, len: u64) -> Result<(), Errno> {
    if !addr.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let end = addr.checked_add(len).and_then(page_up).ok_or(Errno::ENOMEM)?;
    buf(addr, end - addr).map_err(|_| Errno::ENOMEM)?;
    if ctx.proc().space().is_mapped(addr, end) {
        Ok(())
    } else {
        Err(Errno::ENOMEM)
    }
}

pub fn madvise(ctx: &mut Ctx, a: A) -> Ret {
    // Advice that only concerns the payload's own pages; never the
    // privileged ones (HWPOISON, SOFT_OFFLINE) that act on physical memory.
    match a[2] as i32 {
        MADV_NORMAL | MADV_RANDOM | MADV_SEQUENTIAL | MADV_WILLNEED | MADV_DONTNEED | MADV_FREE | MADV_REMOVE
        | MADV_DONTFORK | MADV_DOFORK | MADV_MERGEABLE | MADV_UNMERGEABLE | MADV_HUGEPAGE | MADV_NOHUGEPAGE
        | MADV_DONTDUMP | MADV_DODUMP | MADV_WIPEONFORK | MADV_KEEPONFORK | MADV_COLD | MADV_PAGEOUT => {}
        _ => return Err(Errno::EINVAL),
    }
    if a[1] == 0 {
        return if a[0].is_multiple_of(PAGE_SIZE) { Ok(0) } else { Err(Errno::EINVAL) };
    }
    mapped_range(ctx, a[0], a[1])?;
    host(SYS_madvise, a)
}

pub fn msync(ctx: &mut Ctx, a: A) -> Ret {
    mapped_range(ctx, a[0], a[1])?;
    host(SYS_msync, a)
}

pub fn mincore(ctx: &mut Ctx, a: A) -> Ret {
    mapped_range(ctx, a[0], a[1])?;
    let pages = page_up(a[1]).ok_or(Errno::ENOMEM)? / PAGE_SIZE;
    buf(a[2], pages)?;
    host(SYS_mincore, a)
}

/// The pages mlock/munlock act on, computed as Linux does: the length
/// grows by the offset into the first page and is rounded up to pages,
/// both wrapping (a huge length can wrap to a small one); EINVAL if the
/// range then wraps past the top of the address space.
fn lock_range(ctx: &Ctx, addr: u64, len: u64) -> Result<(), Errno> {
    let start = addr & !(PAGE_SIZE - 1);
    let len = len.wrapping_add(addr - start).wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    if start.checked_add(len).is_none() {
        return Err(Errno::EINVAL);
    }
    if len == 0 {
        return Ok(());
    }
    mapped_range(ctx, start, len)
}

pub fn mlock(ctx: &mut Ctx, a: A) -> Ret {
    lock_range(ctx, a[0], a[1])?;
    host(SYS_mlock, a)
}

pub fn munlock(ctx: &mut Ctx, a: A) -> Ret {
    lock_range(ctx, a[0], a[1])?;
    host(SYS_munlock, a)
}
