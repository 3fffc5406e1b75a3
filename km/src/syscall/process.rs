//! Process information, limits, thread-area setup, exit, entropy.

use libc::*;
use nix::errno::Errno;

use super::args::{buf, obj, rw_buf};
use super::{host, Ctx, Ret};
use crate::fds;
use crate::mem::copy;

type A = [u64; 6];

/// Limits km keeps for the payload instead of applying them to itself:
/// RLIMIT_NOFILE ends below km's own fds, and RLIMIT_AS would count km's
/// reservation of the whole guest window.
#[derive(Debug, Clone)]
pub struct Limits {
    nofile: rlimit,
    address_space: rlimit,
}

impl Limits {
    pub fn new() -> Limits {
        let (cur, max) = fds::payload_nofile();
        let mut address_space = rlimit { rlim_cur: RLIM_INFINITY, rlim_max: RLIM_INFINITY };
        // SAFETY: getrlimit writes one rlimit into the struct we own.
        unsafe { libc::getrlimit(RLIMIT_AS, &mut address_space) };
        Limits { nofile: rlimit { rlim_cur: cur, rlim_max: max }, address_space }
    }

    /// (soft, hard) of RLIMIT_NOFILE and RLIMIT_AS, which exec keeps.
    pub fn snapshot(&self) -> ((u64, u64), (u64, u64)) {
        let pair = |r: &rlimit| (r.rlim_cur, r.rlim_max);
        (pair(&self.nofile), pair(&self.address_space))
    }

    /// Takes limits an exec kept; none above what km can give.
    pub fn restore(&mut self, nofile: (u64, u64), address_space: (u64, u64)) {
        let max = self.nofile.rlim_max;
        self.nofile = rlimit { rlim_cur: nofile.0.min(max), rlim_max: nofile.1.min(max) };
        self.address_space = rlimit { rlim_cur: address_space.0, rlim_max: address_space.1 };
    }

    fn emulated(&mut self, resource: u32) -> Option<&mut rlimit> {
        match resource {
            RLIMIT_NOFILE => Some(&mut self.nofile),
            RLIMIT_AS => Some(&mut self.address_space),
            _ => None,
        }
    }
}

macro_rules! passthrough {
    ($($name:ident => $nr:ident),* $(,)?) => {$(
        pub fn $name(_: &mut Ctx, a: A) -> Ret {
            host($nr, a)
        }
    )*};
}

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
    sched_yield => SYS_sched_yield,
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

pub fn sched_getaffinity(_: &mut Ctx, a: A) -> Ret {
    buf(a[2], a[1])?;
    host(SYS_sched_getaffinity, a)
}

pub fn getrlimit(ctx: &mut Ctx, a: A) -> Ret {
    prlimit(ctx, 0, a[0] as u32, 0, a[1])
}

pub fn setrlimit(ctx: &mut Ctx, a: A) -> Ret {
    prlimit(ctx, 0, a[0] as u32, a[1], 0)
}

pub fn prlimit64(ctx: &mut Ctx, a: A) -> Ret {
    prlimit(ctx, a[0] as i32, a[1] as u32, a[2], a[3])
}

fn prlimit(ctx: &mut Ctx, pid: i32, resource: u32, new: u64, old: u64) -> Ret {
    let own = pid == 0 || pid == std::process::id() as i32;
    let mut limits = crate::process::lock(&ctx.proc().limits);
    let Some(limit) = limits.emulated(resource).filter(|_| own) else {
        super::args::opt::<rlimit>(new)?;
        super::args::opt::<rlimit>(old)?;
        return host(SYS_prlimit64, [pid as u64, resource.into(), new, old, 0, 0]);
    };
    let wanted = if new != 0 {
        let r: [u64; 2] = copy::read_obj(obj::<rlimit>(new)?)?;
        if r[0] > r[1] {
            return Err(Errno::EINVAL);
        }
        if r[1] > limit.rlim_max {
            return Err(Errno::EPERM);
        }
        Some(rlimit { rlim_cur: r[0], rlim_max: r[1] })
    } else {
        None
    };
    if old != 0 {
        copy::write_obj(obj::<rlimit>(old)?, &[limit.rlim_cur, limit.rlim_max])?;
    }
    if let Some(w) = wanted {
        *limit = w;
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
        _ => Err(Errno::EINVAL),
    }
}

pub fn getrandom(_: &mut Ctx, a: A) -> Ret {
    rw_buf(a[0], a[1])?;
    host(SYS_getrandom, a)
}
