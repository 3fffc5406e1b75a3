//! Processes: fork and its clone forms (see `crate::fork`), execve (see
//! `crate::exec`), waiting for children, process groups and sessions.
//!
//! Children are real host processes (each a km) and km's own children, so
//! the wait calls, groups and sessions are the host's; km checks the
//! pointers and forwards the host's SIGCHLD to the payload.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use libc::*;
use nix::errno::Errno;

use super::args::{fd, new_fd, obj, opt};
use super::{host, Ctx, Restart, Ret};
use crate::exec;
use crate::fork::{self, ForkArgs};
use crate::mem::{copy, GuestRange};
use crate::signal::{bit, KSigaction, NSIG, SIG_IGN};

type A = [u64; 6];

pub fn fork(ctx: &mut Ctx, _: A) -> Ret {
    fork::fork(ctx, ForkArgs { flags: SIGCHLD as u64, stack: 0, parent_tid: 0, child_tid: 0, tls: 0, pidfd: 0 })
}

pub fn vfork(ctx: &mut Ctx, _: A) -> Ret {
    let flags = (CLONE_VM | CLONE_VFORK | SIGCHLD) as u64;
    fork::fork(ctx, ForkArgs { flags, stack: 0, parent_tid: 0, child_tid: 0, tls: 0, pidfd: 0 })
}

/// Options wait4 accepts (Linux's list).
const WAIT4_OPTIONS: i32 = WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WALL | __WCLONE;
const WAITID_OPTIONS: i32 = WNOHANG | WEXITED | WSTOPPED | WCONTINUED | WNOWAIT | __WNOTHREAD | __WALL | __WCLONE;

pub fn wait4(ctx: &mut Ctx, a: A) -> Ret {
    let options = a[2] as i32;
    if options & !WAIT4_OPTIONS != 0 {
        return Err(Errno::EINVAL);
    }
    opt::<i32>(a[1])?;
    opt::<rusage>(a[3])?;
    wait(ctx, SYS_wait4, a, options)
}

pub fn waitid(ctx: &mut Ctx, a: A) -> Ret {
    let (idtype, options) = (a[0] as u32, a[3] as i32);
    if options & !WAITID_OPTIONS != 0 {
        return Err(Errno::EINVAL);
    }
    if idtype == P_PIDFD {
        fd(a[1])?;
    }
    opt::<siginfo_t>(a[2])?;
    opt::<rusage>(a[4])?;
    wait(ctx, SYS_waitid, a, options)
}

/// A pidfd is the host's: the process is a km, whose pid is the payload's.
pub fn pidfd_open(_: &mut Ctx, a: A) -> Ret {
    new_fd(host(SYS_pidfd_open, a))
}

/// As kill through a pidfd: the target km forwards the host signal to its
/// payload.
pub fn pidfd_send_signal(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    opt::<siginfo_t>(a[2])?;
    host(SYS_pidfd_send_signal, a)
}

/// A wait that may block: a signal for the payload cuts it short, and it
/// starts again after a handler with SA_RESTART, as Linux's ERESTARTSYS.
fn wait(ctx: &mut Ctx, nr: c_long, a: A, options: i32) -> Ret {
    if options & WNOHANG != 0 {
        host(nr, a)
    } else {
        ctx.blocking(nr, a, Restart::IfSaRestart)
    }
}

// Credentials change per host thread, as the kernel does: the payload's
// libc repeats the call in each of its threads (each a host thread).
passthrough! {
    setpgid => SYS_setpgid,
    setsid => SYS_setsid,
    setuid => SYS_setuid,
    setgid => SYS_setgid,
    setreuid => SYS_setreuid,
    setregid => SYS_setregid,
    setresuid => SYS_setresuid,
    setresgid => SYS_setresgid,
    setfsuid => SYS_setfsuid,
    setfsgid => SYS_setfsgid,
}

pub fn setgroups(_: &mut Ctx, a: A) -> Ret {
    let n = a[0] as i32;
    if n > 0 {
        GuestRange::array::<gid_t>(a[1], n as u64)?;
    }
    host(SYS_setgroups, a)
}

/// struct __user_cap_header_struct, and the two data structs of version 3.
const CAP_HEADER: u64 = 8;
const CAP_DATA: u64 = 2 * 12;

pub fn capget(_: &mut Ctx, a: A) -> Ret {
    GuestRange::new(a[0], CAP_HEADER)?;
    GuestRange::opt(a[1], CAP_DATA)?;
    host(SYS_capget, a)
}

pub fn capset(_: &mut Ctx, a: A) -> Ret {
    GuestRange::new(a[0], CAP_HEADER)?;
    GuestRange::new(a[1], CAP_DATA)?;
    host(SYS_capset, a)
}

/// The host's SIGCHLD disposition follows the payload's where the kernel
/// acts on it itself: an ignored SIGCHLD or SA_NOCLDWAIT reaps children
/// at once, SA_NOCLDSTOP keeps stops quiet. km never runs a handler for
/// it (it is blocked in every thread, and the forwarder takes it).
pub fn mirror_sigchld(act: &KSigaction) {
    // SAFETY: a zeroed sigaction is valid; SIG_IGN or SIG_DFL installs no
    // code, and sigaction only reads the struct.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = if act.handler == SIG_IGN { SIG_IGN as usize } else { SIG_DFL };
        sa.sa_flags = (act.flags as i32) & (SA_NOCLDWAIT | SA_NOCLDSTOP);
        libc::sigaction(SIGCHLD, &sa, std::ptr::null_mut());
    }
}

/// Linux's bounds: a path of PATH_MAX bytes, an argument of 32 pages.
const PATH_MAX_LEN: usize = PATH_MAX as usize;
const ARG_MAX_LEN: usize = 32 * 4096;

/// A NUL-terminated string of the payload's, read a page at a time so
/// that one ending before an unmapped page reads as it does on Linux;
/// `too_long` if it has no NUL within `max` bytes.
fn read_cstr(addr: u64, max: usize, too_long: Errno) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut at = addr;
    loop {
        let chunk = (4096 - (at & 4095)) as usize;
        let mut buf = vec![0u8; chunk];
        copy::read_bytes(GuestRange::new(at, chunk as u64)?, &mut buf)?;
        if let Some(n) = buf.iter().position(|&c| c == 0) {
            out.extend_from_slice(&buf[..n]);
            return Ok(out);
        }
        out.extend_from_slice(&buf);
        if out.len() >= max {
            return Err(too_long);
        }
        at = at.checked_add(chunk as u64).ok_or(Errno::EFAULT)?;
    }
}

/// A NULL-terminated array of string pointers (argv, envp); NULL reads as
/// empty. Stops with E2BIG once past what any exec accepts.
fn read_strings(addr: u64) -> Result<Vec<OsString>, Errno> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok(out);
    }
    let mut total = 0usize;
    for i in 0u64.. {
        let at = addr.checked_add(i * 8).ok_or(Errno::EFAULT)?;
        let p: u64 = copy::read_obj(obj::<u64>(at)?)?;
        if p == 0 {
            break;
        }
        let s = read_cstr(p, ARG_MAX_LEN, Errno::E2BIG)?;
        total += s.len() + 9;
        if total > 6 << 20 {
            return Err(Errno::E2BIG);
        }
        out.push(OsStr::from_bytes(&s).to_os_string());
    }
    Ok(out)
}

pub fn execve(ctx: &mut Ctx, a: A) -> Ret {
    let path = PathBuf::from(OsStr::from_bytes(&read_cstr(a[0], PATH_MAX_LEN, Errno::ENAMETOOLONG)?));
    exec(ctx, path.clone(), path.into_os_string(), a[1], a[2])
}

pub fn execveat(ctx: &mut Ctx, a: A) -> Ret {
    let (dirfd, flags) = (a[0] as i32, a[4] as i32);
    if flags & !(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = PathBuf::from(OsStr::from_bytes(&read_cstr(a[1], PATH_MAX_LEN, Errno::ENAMETOOLONG)?));
    // AT_EXECFN as Linux makes it for a file named through an fd.
    let execfn = match (path.is_absolute() || dirfd == AT_FDCWD, path.as_os_str().is_empty()) {
        (true, _) => path.clone().into_os_string(),
        (false, true) => format!("/dev/fd/{dirfd}").into(),
        (false, false) => PathBuf::from(format!("/dev/fd/{dirfd}")).join(&path).into_os_string(),
    };
    let path = if path.is_absolute() || (dirfd == AT_FDCWD && !path.as_os_str().is_empty()) {
        path
    } else {
        // The file by its name: the new km opens it again, after the host
        // exec closed a close-on-exec dirfd.
        fd(a[0])?;
        if path.as_os_str().is_empty() && flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        let dir = std::fs::read_link(format!("/proc/self/fd/{dirfd}")).map_err(|_| Errno::EBADF)?;
        if path.as_os_str().is_empty() {
            dir
        } else {
            dir.join(path)
        }
    };
    if flags & AT_SYMLINK_NOFOLLOW != 0 && path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Errno::ELOOP);
    }
    exec(ctx, path, execfn, a[2], a[3])
}

/// `execfn` is the name AT_EXECFN gives the new program.
fn exec(ctx: &mut Ctx, path: PathBuf, execfn: OsString, argv: u64, envp: u64) -> Ret {
    if path.as_os_str().is_empty() {
        return Err(Errno::ENOENT);
    }
    // The payload's own executable, not km's (BusyBox runs its applets so).
    let path = if names_own_exe(&path, ctx.proc().pid) { ctx.proc().exe.clone() } else { path };
    // An fd's file by its name (fexecve): the new km opens it after the
    // host exec has closed a close-on-exec fd.
    let path = if path.starts_with("/proc/self/fd") { std::fs::read_link(&path).unwrap_or(path) } else { path };
    let args = read_strings(argv)?;
    let env = read_strings(envp)?;
    exec::check_size(&args, &env)?;
    exec::resolve(&path, args.clone(), true)?;
    // Host signals for km stay with the host across its execve, and the
    // new km takes them: none may be taken into this km's state after it
    // was saved.
    let _taking = crate::signal::forward::hold();
    let state = exec_state(ctx);
    tracing::debug!(target: "syscall", "execve {} {:?}", path.display(), args);
    let device = exec::KnownDevice::of(ctx.proc());
    Err(exec::replace(&path, &execfn, &args, &env, &state, &device))
}

/// True for /proc/self/exe and the like: on the host they name km.
fn names_own_exe(path: &std::path::Path, pid: i32) -> bool {
    let own = [format!("/proc/{pid}/exe"), "/proc/self/exe".into(), "/proc/thread-self/exe".into()];
    let p = path.as_os_str().as_bytes();
    own.iter().any(|o| o.as_bytes() == p)
        || (p.starts_with(format!("/proc/{pid}/task/").as_bytes()) && p.ends_with(b"/exe"))
}

/// What Linux keeps across exec that lives in km: the caller's mask, the
/// ignored signals (handlers are reset), the pending signals (the
/// process's and the caller's), the emulated limits, the signalfds that
/// stay open.
fn exec_state(ctx: &mut Ctx) -> exec::State {
    let tid = ctx.tid();
    let (mask, ignored, pending) = {
        let mut s = ctx.proc().signals();
        let ignored = (1..=NSIG as i32).filter(|&sig| s.action(sig).handler == SIG_IGN).fold(0, |m, s| m | bit(s));
        (s.thread(tid).mask, ignored, s.pending_for_exec(tid))
    };
    let (nofile, address_space) = crate::process::lock(&ctx.proc().limits).snapshot();
    let signalfds = crate::procfs::fdtab::hold().signalfds_kept_on_exec();
    exec::State { mask, ignored, nofile, address_space, signalfds, pending }
}
