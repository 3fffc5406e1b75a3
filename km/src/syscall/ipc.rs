//! System V semaphores and message queues: the host's, shared with every
//! other process as natively. Each buffer is checked for the size the
//! kernel reads or writes for that command.

use libc::*;
use nix::errno::Errno;

use super::args::{buf, opt};
use super::{host, Ctx, Restart, Ret};
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
