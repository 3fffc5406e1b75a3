//! Scheduling: affinity, policies and priorities, the CPU a thread is on,
//! personality. Payload threads are host threads with the same tids, so
//! these act on the host directly once their pointers are checked.

use libc::*;
use nix::errno::Errno;

use super::args::{buf, obj, opt};
use super::{host, unsupported, Ctx, Ret};

type A = [u64; 6];

passthrough! {
    sched_yield => SYS_sched_yield,
    sched_getscheduler => SYS_sched_getscheduler,
    sched_get_priority_max => SYS_sched_get_priority_max,
    sched_get_priority_min => SYS_sched_get_priority_min,
    getpriority => SYS_getpriority,
    setpriority => SYS_setpriority,
}

/// struct sched_param: one int.
type SchedParam = i32;

pub fn sched_getaffinity(_: &mut Ctx, a: A) -> Ret {
    buf(a[2], a[1])?;
    host(SYS_sched_getaffinity, a)
}

pub fn sched_setaffinity(_: &mut Ctx, a: A) -> Ret {
    buf(a[2], a[1])?;
    host(SYS_sched_setaffinity, a)
}

pub fn sched_getparam(_: &mut Ctx, a: A) -> Ret {
    obj::<SchedParam>(a[1])?;
    host(SYS_sched_getparam, a)
}

pub fn sched_setparam(_: &mut Ctx, a: A) -> Ret {
    obj::<SchedParam>(a[1])?;
    host(SYS_sched_setparam, a)
}

pub fn sched_setscheduler(_: &mut Ctx, a: A) -> Ret {
    obj::<SchedParam>(a[2])?;
    host(SYS_sched_setscheduler, a)
}

pub fn sched_rr_get_interval(_: &mut Ctx, a: A) -> Ret {
    obj::<timespec>(a[1])?;
    host(SYS_sched_rr_get_interval, a)
}

pub fn getcpu(_: &mut Ctx, a: A) -> Ret {
    opt::<u32>(a[0])?;
    opt::<u32>(a[1])?;
    host(SYS_getcpu, [a[0], a[1], 0, 0, 0, 0])
}

/// personality: the query (0xffffffff) and PER_LINUX, which is what every
/// process has. Other personalities change how the host treats km's own
/// mappings (READ_IMPLIES_EXEC, ADDR_LIMIT_32BIT ...), so they are refused.
pub fn personality(ctx: &mut Ctx, a: A) -> Ret {
    match a[0] as u32 {
        0xffff_ffff | 0 => host(SYS_personality, [a[0] & 0xffff_ffff, 0, 0, 0, 0, 0]),
        p => unsupported(ctx, &format!("personality {p:#x}"), Errno::EINVAL),
    }
}
