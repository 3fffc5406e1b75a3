//! Time: the host's clocks, sleeps, interval timers, POSIX timers and
//! timerfds. CPU-time clocks measure km's process, which includes the time
//! the payload ran in the VM. Timer signals reach km and are forwarded to
//! the payload like any host signal; POSIX timers all signal km's
//! forwarding thread with one host signal, and km posts the payload's.

use libc::*;
use nix::errno::Errno;

use super::args::{fd, new_fd, obj, opt};
use super::{host, Ctx, Restart, Ret};
use crate::mem::{copy, GuestRange};
use crate::process::{lock, timer_signal, wait_for_forwarder, TimerTarget};

type A = [u64; 6];

pub fn clock_gettime(_: &mut Ctx, a: A) -> Ret {
    obj::<timespec>(a[1])?;
    host(SYS_clock_gettime, a)
}

pub fn clock_getres(_: &mut Ctx, a: A) -> Ret {
    opt::<timespec>(a[1])?;
    host(SYS_clock_getres, a)
}

pub fn gettimeofday(_: &mut Ctx, a: A) -> Ret {
    opt::<timeval>(a[0])?;
    // The kernel's struct timezone: two ints (libc's `timezone` is opaque).
    opt::<[i32; 2]>(a[1])?;
    host(SYS_gettimeofday, a)
}

pub fn time(_: &mut Ctx, a: A) -> Ret {
    opt::<time_t>(a[0])?;
    host(SYS_time, a)
}

pub fn nanosleep(ctx: &mut Ctx, a: A) -> Ret {
    obj::<timespec>(a[0])?;
    opt::<timespec>(a[1])?;
    ctx.blocking(SYS_nanosleep, a, Restart::Never)
}

pub fn clock_nanosleep(ctx: &mut Ctx, a: A) -> Ret {
    obj::<timespec>(a[2])?;
    opt::<timespec>(a[3])?;
    ctx.blocking(SYS_clock_nanosleep, a, Restart::Never)
}

pub fn times(_: &mut Ctx, a: A) -> Ret {
    opt::<tms>(a[0])?;
    host(SYS_times, a)
}

pub fn alarm(_: &mut Ctx, a: A) -> Ret {
    host(SYS_alarm, a)
}

pub fn getitimer(_: &mut Ctx, a: A) -> Ret {
    obj::<itimerval>(a[1])?;
    host(SYS_getitimer, a)
}

pub fn setitimer(_: &mut Ctx, a: A) -> Ret {
    opt::<itimerval>(a[1])?;
    opt::<itimerval>(a[2])?;
    host(SYS_setitimer, a)
}

/// The kernel's struct sigevent: value, signo, notify, then the thread id.
const SIGEVENT_SIZE: usize = 64;
const SIGEV_THREAD_ID: i32 = 4;

pub fn timer_create(ctx: &mut Ctx, mut a: A) -> Ret {
    // Payload timers signal the forwarder.
    crate::signal::forward::start_deferred(&mut *ctx.t.vcpu);
    let user_id = obj::<i32>(a[2])?;
    if a[1] == 0 {
        // SIGALRM to the process, as the host does it.
        return host(SYS_timer_create, a);
    }
    let mut ev = [0u8; SIGEVENT_SIZE];
    copy::read_bytes(GuestRange::new(a[1], SIGEVENT_SIZE as u64)?, &mut ev)?;
    let field = |at: usize| i32::from_le_bytes(ev[at..at + 4].try_into().expect("4 bytes"));
    let (signo, notify) = (field(8), field(12));
    let target = match notify {
        SIGEV_NONE => None,
        SIGEV_SIGNAL | SIGEV_THREAD_ID => {
            if signo <= 0 || signo > crate::signal::NSIG as i32 {
                return Err(Errno::EINVAL);
            }
            let tid = if notify == SIGEV_THREAD_ID {
                let tid = field(16);
                if !ctx.proc().signals().threads.contains_key(&tid) {
                    return Err(Errno::EINVAL);
                }
                Some(tid)
            } else {
                None
            };
            ev[8..12].copy_from_slice(&timer_signal().to_le_bytes());
            ev[12..16].copy_from_slice(&SIGEV_THREAD_ID.to_le_bytes());
            ev[16..20].copy_from_slice(&wait_for_forwarder().to_le_bytes());
            Some(TimerTarget { tid, signo })
        }
        _ => return Err(Errno::EINVAL),
    };
    let mut id: i32 = 0;
    a[1] = ev.as_ptr() as u64;
    a[2] = &mut id as *mut i32 as u64;
    host(SYS_timer_create, a)?;
    if let Some(t) = target {
        lock(&ctx.proc().timers).insert(id, t);
    }
    copy::write_obj(user_id, &id).map(|_| 0)
}

pub fn timer_settime(_: &mut Ctx, a: A) -> Ret {
    obj::<itimerspec>(a[2])?;
    opt::<itimerspec>(a[3])?;
    host(SYS_timer_settime, a)
}

pub fn timer_gettime(_: &mut Ctx, a: A) -> Ret {
    obj::<itimerspec>(a[1])?;
    host(SYS_timer_gettime, a)
}

pub fn timer_getoverrun(_: &mut Ctx, a: A) -> Ret {
    host(SYS_timer_getoverrun, a)
}

pub fn timer_delete(ctx: &mut Ctx, a: A) -> Ret {
    host(SYS_timer_delete, a)?;
    lock(&ctx.proc().timers).remove(&(a[0] as i32));
    Ok(0)
}

pub fn timerfd_create(_: &mut Ctx, a: A) -> Ret {
    new_fd(host(SYS_timerfd_create, a))
}

pub fn timerfd_settime(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    obj::<itimerspec>(a[2])?;
    opt::<itimerspec>(a[3])?;
    host(SYS_timerfd_settime, a)
}

pub fn timerfd_gettime(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    obj::<itimerspec>(a[1])?;
    host(SYS_timerfd_gettime, a)
}
