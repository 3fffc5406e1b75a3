//! Process information, resource limits, thread-area setup, entropy.

use libc::*;
use nix::errno::Errno;

use super::args::{buf, obj, opt, rw_buf};
use super::{host, Ctx, Ret};
use crate::limits;
use crate::mem::copy;
use crate::process::lock;

type A = [u64; 6];

passthrough! {
    getpid => SYS_getpid,
    getppid => SYS_getppid,
    gettid => SYS_gettid,
    getuid => SYS_getuid,
    geteuid => SYS_geteuid,
    getgid => SYS_getgid,
    getegid => SYS_getegid,
    getpgrp => SYS_getpgrp,
    getpgid => SYS_getpgid,
    getsid => SYS_getsid,
}

pub fn getresuid(_: &mut Ctx, a: A) -> Ret {
    for p in &a[..3] {
        obj::<uid_t>(*p)?;
    }
    host(SYS_getresuid, a)
}

pub fn getresgid(_: &mut Ctx, a: A) -> Ret {
    for p in &a[..3] {
        obj::<gid_t>(*p)?;
    }
    host(SYS_getresgid, a)
}

pub fn getgroups(_: &mut Ctx, a: A) -> Ret {
    let n = a[0] as i32;
    if n > 0 {
        buf(a[1], n as u64 * std::mem::size_of::<gid_t>() as u64)?;
    }
    host(SYS_getgroups, a)
}

pub fn uname(_: &mut Ctx, a: A) -> Ret {
    obj::<utsname>(a[0])?;
    host(SYS_uname, a)
}

pub fn sysinfo(_: &mut Ctx, a: A) -> Ret {
    obj::<libc::sysinfo>(a[0])?;
    host(SYS_sysinfo, a)
}

pub fn getrusage(_: &mut Ctx, a: A) -> Ret {
    obj::<rusage>(a[1])?;
    host(SYS_getrusage, a)
}

pub fn getrlimit(ctx: &mut Ctx, a: A) -> Ret {
    // Linux: the resource is checked before the pointer.
    if a[0] as u32 >= limits::COUNT {
        return Err(Errno::EINVAL);
    }
    obj::<rlimit>(a[1])?;
    own_limit(ctx, a[0] as u32, None, a[1])
}

pub fn setrlimit(ctx: &mut Ctx, a: A) -> Ret {
    let new = read_rlimit(a[1])?;
    own_limit(ctx, a[0] as u32, new, 0)
}

pub fn prlimit64(ctx: &mut Ctx, a: A) -> Ret {
    let (pid, resource, new, old) = (a[0] as i32, a[1] as u32, a[2], a[3]);
    // Linux copies the new value in before it looks for the process.
    let wanted = if new != 0 { read_rlimit(new)? } else { None };
    if pid == 0 || pid == ctx.proc().pid || ctx.proc().signals().threads.contains_key(&pid) {
        return own_limit(ctx, resource, wanted, old);
    }
    if pid > 0 && is_km_thread(pid) {
        // One of km's own threads (the signal thread, an idle vCPU
        // thread): no process the payload can see.
        return Err(Errno::ESRCH);
    }
    opt::<rlimit>(old)?;
    let new = wanted.as_ref().map_or(0, |w| w as *const [u64; 2] as u64);
    host(SYS_prlimit64, [pid as u64, resource.into(), new, old, 0, 0])
}

/// The payload's struct rlimit at `ptr`, copied into km.
fn read_rlimit(ptr: u64) -> Result<Option<[u64; 2]>, Errno> {
    copy::read_obj(obj::<rlimit>(ptr)?).map(Some)
}

/// True if `tid` is a thread of km's own host process.
fn is_km_thread(tid: i32) -> bool {
    // SAFETY: signal 0 to a thread of km's own process only checks that it
    // exists.
    unsafe { libc::syscall(SYS_tgkill, libc::getpid(), tid, 0) == 0 }
}

/// Linux's do_prlimit on the payload's own process: emulated resources
/// from km's record, the others on km's host process (see
/// `crate::limits`). The old value is stored last, so a bad `old` pointer
/// is EFAULT after the new limit took effect, as on Linux.
fn own_limit(ctx: &mut Ctx, resource: u32, new: Option<[u64; 2]>, old: u64) -> Ret {
    if resource >= limits::COUNT || new.is_some_and(|[cur, max]| cur > max) {
        return Err(Errno::EINVAL);
    }
    let previous = if limits::emulated(resource) {
        let mut lim = lock(&ctx.proc().limits);
        let previous = match new {
            Some([rlim_cur, rlim_max]) => lim.set(resource, rlimit { rlim_cur, rlim_max })?,
            None => lim.get(resource),
        };
        if resource == RLIMIT_AS {
            ctx.proc().space().set_limit(lim.get(RLIMIT_AS).rlim_cur);
        }
        [previous.rlim_cur, previous.rlim_max]
    } else {
        // km's own copies of both values, so the payload cannot change
        // them under the host call.
        let mut previous = [0u64; 2];
        let new = new.as_ref().map_or(0, |n| n as *const [u64; 2] as u64);
        host(SYS_prlimit64, [0, resource.into(), new, previous.as_mut_ptr() as u64, 0, 0])?;
        previous
    };
    if old != 0 {
        copy::write_obj(obj::<rlimit>(old)?, &previous)?;
    }
    Ok(0)
}

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;
/// Highest user address + 1 on 4-level x86-64 (TASK_SIZE_MAX).
pub const TASK_SIZE_MAX: u64 = (1 << 47) - 4096;

pub fn arch_prctl(ctx: &mut Ctx, a: A) -> Ret {
    let device = |e| {
        tracing::error!(target: "syscall", "arch_prctl: {e}");
        Errno::EIO
    };
    let mut sregs = ctx.t.vcpu.sregs().map_err(device)?;
    match a[0] {
        ARCH_SET_FS | ARCH_SET_GS => {
            if a[1] >= TASK_SIZE_MAX {
                return Err(Errno::EPERM);
            }
            if a[0] == ARCH_SET_FS {
                sregs.fs.base = a[1];
            } else {
                sregs.gs.base = a[1];
            }
            ctx.t.vcpu.set_sregs(&sregs).map_err(device)?;
        }
        ARCH_GET_FS | ARCH_GET_GS => {
            let base = if a[0] == ARCH_GET_FS { sregs.fs.base } else { sregs.gs.base };
            copy::write_obj(obj::<u64>(a[1])?, &base)?;
        }
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

pub fn prctl(_: &mut Ctx, a: A) -> Ret {
    match a[0] as i32 {
        PR_SET_NAME | PR_GET_NAME => {
            buf(a[1], 16)?;
            host(SYS_prctl, a)
        }
        PR_GET_DUMPABLE
        | PR_SET_DUMPABLE
        | PR_GET_NO_NEW_PRIVS
        | PR_SET_NO_NEW_PRIVS
        | PR_GET_TIMERSLACK
        | PR_SET_TIMERSLACK
        | PR_SET_PDEATHSIG
        | PR_SET_CHILD_SUBREAPER => host(SYS_prctl, a),
        PR_GET_PDEATHSIG | PR_GET_CHILD_SUBREAPER => {
            obj::<i32>(a[1])?;
            host(SYS_prctl, a)
        }
        // The layout fields PR_SET_MM sets are the host process's, which
        // are km's: its code, heap and stack, and the command line km shows
        // for the payload (`host_cmdline`), which must not point into
        // memory the payload writes. Linux gives EPERM to a process without
        // the privilege an operation needs, and km gives it to them all:
        // unlike a native process, the payload may not even set its own
        // command line and environment with PR_SET_MM_MAP.
        PR_SET_MM => Err(Errno::EPERM),
        _ => Err(Errno::EINVAL),
    }
}

pub fn getrandom(_: &mut Ctx, a: A) -> Ret {
    rw_buf(a[0], a[1])?;
    host(SYS_getrandom, a)
}
