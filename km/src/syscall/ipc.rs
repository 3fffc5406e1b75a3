//! System V semaphores, message queues and shared memory: the host's,
//! shared with every other process as natively. Each buffer is checked for
//! the size the kernel reads or writes for that command. Shared memory
//! segments are attached inside the guest window, through the address
//! space like any mapping.

use libc::*;
use nix::errno::Errno;

use super::args::{buf, opt};
use super::{host, Ctx, Restart, Ret};
use crate::guest::layout::page_up;
use crate::mem::copy;

type A = [u64; 6];

/// IPC_64, which libcs may OR into a command (the layouts below are the
/// 64-bit ones either way on x86-64).
const IPC_64: i32 = 0x100;
// Commands not all in the libc crate.
const SEM_STAT: i32 = 18;
const SEM_INFO: i32 = 19;
const SEM_STAT_ANY: i32 = 20;
const MSG_STAT: i32 = 11;
const MSG_INFO: i32 = 12;
const MSG_STAT_ANY: i32 = 13;
/// struct semid64_ds, msqid64_ds, seminfo and msginfo on x86-64.
const SEMID_DS: u64 = 104;
const MSQID_DS: u64 = 120;
const SEMINFO: u64 = 40;
const MSGINFO: u64 = 32;
/// Where sem_nsems sits in semid64_ds.
const SEM_NSEMS_AT: usize = 80;
/// struct sembuf: short, short, short.
const SEMBUF: u64 = 6;
/// Linux's default SEMOPM: more operations are E2BIG on a default host.
const SEMOPM: u64 = 500;

pub fn semget(_: &mut Ctx, a: A) -> Ret {
    host(SYS_semget, a)
}

/// The sembuf array: E2BIG rather than EFAULT when it could not be
/// payload memory anyway because it is longer than any host accepts.
fn sembufs(ptr: u64, n: u64) -> Result<(), Errno> {
    match n.checked_mul(SEMBUF).map(|len| buf(ptr, len)) {
        Some(Ok(_)) => Ok(()),
        _ if n > SEMOPM => Err(Errno::E2BIG),
        Some(Err(e)) => Err(e),
        None => Err(Errno::E2BIG),
    }
}

pub fn semop(ctx: &mut Ctx, a: A) -> Ret {
    sembufs(a[1], a[2])?;
    ctx.blocking(SYS_semop, a, Restart::Never)
}

pub fn semtimedop(ctx: &mut Ctx, a: A) -> Ret {
    sembufs(a[1], a[2])?;
    opt::<timespec>(a[3])?;
    ctx.blocking(SYS_semtimedop, a, Restart::Never)
}

pub fn semctl(_: &mut Ctx, a: A) -> Ret {
    let cmd = a[2] as i32 & !IPC_64;
    match cmd {
        IPC_STAT | SEM_STAT | SEM_STAT_ANY | IPC_SET => {
            buf(a[3], SEMID_DS)?;
        }
        IPC_INFO | SEM_INFO => {
            buf(a[3], SEMINFO)?;
        }
        GETALL | SETALL => {
            // One u16 per semaphore: ask the host how many the set has
            // (fixed at creation), into km's memory.
            let mut ds = [0u8; SEMID_DS as usize];
            host(SYS_semctl, [a[0], 0, (IPC_STAT | (a[2] as i32 & IPC_64)) as u64, ds.as_mut_ptr() as u64, 0, 0])?;
            let nsems = u64::from_le_bytes(ds[SEM_NSEMS_AT..SEM_NSEMS_AT + 8].try_into().expect("8 bytes"));
            buf(a[3], nsems * 2)?;
        }
        // The argument is a value (SETVAL) or unused.
        _ => {}
    }
    host(SYS_semctl, a)
}

pub fn msgget(_: &mut Ctx, a: A) -> Ret {
    host(SYS_msgget, a)
}

/// struct msgbuf: the type (a long), then `size` bytes of text.
fn msgbuf(ptr: u64, size: u64) -> Result<(), Errno> {
    if size as i64 > i32::MAX as i64 || (size as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    buf(ptr, 8 + size).map(drop)
}

pub fn msgsnd(ctx: &mut Ctx, a: A) -> Ret {
    msgbuf(a[1], a[2])?;
    ctx.blocking(SYS_msgsnd, a, Restart::IfSaRestart)
}

/// Messages up to this size are received into km first, so an empty
/// queue is ENOMSG before the payload's buffer is looked at, as natively.
const BOUNCE_MAX: u64 = 1 << 20;

pub fn msgrcv(ctx: &mut Ctx, mut a: A) -> Ret {
    let size = a[2];
    if size as i64 > i32::MAX as i64 || (size as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    if size > BOUNCE_MAX {
        msgbuf(a[1], size)?;
        return ctx.blocking(SYS_msgrcv, a, Restart::IfSaRestart);
    }
    let mut bounce = vec![0u8; 8 + size as usize];
    let user = a[1];
    a[1] = bounce.as_mut_ptr() as u64;
    let n = ctx.blocking(SYS_msgrcv, a, Restart::IfSaRestart)?;
    // The message is taken either way, as when the kernel cannot store it.
    let got = 8 + n as usize;
    copy::write_bytes(buf(user, got as u64)?, &bounce[..got])?;
    Ok(n)
}

pub fn msgctl(_: &mut Ctx, a: A) -> Ret {
    match a[1] as i32 & !IPC_64 {
        IPC_STAT | MSG_STAT | MSG_STAT_ANY | IPC_SET => {
            buf(a[2], MSQID_DS)?;
        }
        IPC_INFO | MSG_INFO => {
            buf(a[2], MSGINFO)?;
        }
        _ => {}
    }
    host(SYS_msgctl, a)
}

pub fn shmget(_: &mut Ctx, a: A) -> Ret {
    host(SYS_shmget, a)
}

// shmctl commands not in the libc crate.
const SHM_STAT: i32 = 13;
const SHM_INFO: i32 = 14;
const SHM_STAT_ANY: i32 = 15;
/// struct shmid64_ds, shminfo64 and shm_info on x86-64.
const SHMID_DS: usize = 112;
const SHMINFO: usize = 72;
const SHM_INFO_LEN: usize = 48;
/// Where shm_segsz sits in shmid64_ds (after the 48-byte ipc64_perm).
const SHM_SEGSZ_AT: usize = 48;
/// The shmat address granularity on x86-64 (a page).
const SHMLBA: u64 = 4096;

pub fn shmctl(_: &mut Ctx, a: A) -> Ret {
    // Checked before any buffer is read, as natively.
    if (a[0] as i32) < 0 || (a[1] as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    // The 64-bit call takes no IPC_64 bit: a command carrying it is not
    // one of these and gets the host's EINVAL, as natively.
    let len = match a[1] as i32 {
        IPC_STAT | SHM_STAT | SHM_STAT_ANY => SHMID_DS,
        IPC_INFO => SHMINFO,
        SHM_INFO => SHM_INFO_LEN,
        IPC_SET => {
            // Read before the segment is looked up, as natively.
            buf(a[2], SHMID_DS as u64)?;
            return host(SYS_shmctl, a);
        }
        // SHM_LOCK, SHM_UNLOCK, IPC_RMID take no buffer.
        _ => return host(SYS_shmctl, [a[0], a[1], 0, 0, 0, 0]),
    };
    // The kernel fills km's copy first: a bad id is EINVAL before a bad
    // buffer is EFAULT, as natively.
    let mut out = [0u8; SHMID_DS];
    let r = host(SYS_shmctl, [a[0], a[1], out.as_mut_ptr() as u64, 0, 0, 0])?;
    copy::write_bytes(buf(a[2], len as u64)?, &out[..len])?;
    Ok(r)
}

pub fn shmat(ctx: &mut Ctx, a: A) -> Ret {
    let (id, flags) = (a[0] as i32, a[2] as i32);
    // Linux checks the address before it looks the segment up. One the
    // payload gave stays fixed even when SHM_RND takes it down to 0.
    let addr = match a[1] {
        0 if flags & SHM_REMAP != 0 => return Err(Errno::EINVAL),
        0 => None,
        addr if addr.is_multiple_of(SHMLBA) => Some(addr),
        _ if flags & SHM_RND == 0 => return Err(Errno::EINVAL),
        addr if addr < SHMLBA && flags & SHM_REMAP != 0 => return Err(Errno::EINVAL),
        addr => Some(addr & !(SHMLBA - 1)),
    };
    // The segment's size (fixed at creation), into km's memory.
    let mut ds = [0u8; SHMID_DS];
    host(SYS_shmctl, [id as u64, IPC_STAT as u64, ds.as_mut_ptr() as u64, 0, 0, 0])?;
    let size = u64::from_le_bytes(ds[SHM_SEGSZ_AT..SHM_SEGSZ_AT + 8].try_into().expect("8 bytes"));
    let len = page_up(size).ok_or(Errno::ENOMEM)?;
    ctx.proc().space.shmat(id, addr, len, flags)
}

pub fn shmdt(ctx: &mut Ctx, a: A) -> Ret {
    ctx.proc().space.shmdt(a[0]).map(|_| 0)
}
