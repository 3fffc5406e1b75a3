//! The payload's system calls, served on the host.
//!
//! One table maps each x86-64 syscall number to its handler; handlers are
//! grouped by family in the sibling modules. Each handler checks every
//! pointer and fd the payload passes before the host sees it (see
//! `args`), then performs the call on the host, where the payload's own
//! memory is at the same addresses as in the guest.

mod args;
mod files;
mod memory;
mod names;
mod process;
mod signals;
mod time;

use std::collections::HashSet;
use std::path::PathBuf;

use libc::c_long;
use nix::errno::Errno;
use nix::sys::signal::Signal;

use crate::device::Vcpu;
use crate::mem::AddressSpace;
pub use signals::SignalState;

/// A handler's result: the value for rax, or the errno (returned negated).
pub type Ret = Result<u64, Errno>;
type Handler = fn(&mut Ctx, [u64; 6]) -> Ret;

/// How the payload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    /// Killed by a signal; the text says why, for km's one-line report
    /// (empty when the payload asked for it, e.g. by SIGPIPE).
    Signal(Signal, String),
}

/// The payload process as km keeps it.
pub struct Process {
    pub space: AddressSpace,
    pub signals: SignalState,
    /// The executable, for /proc/self/exe.
    pub exe: PathBuf,
    pub strict: bool,
    reported: HashSet<u64>,
    reported_features: HashSet<&'static str>,
    pub tid_address: u64,
    pub limits: process::Limits,
}

impl Process {
    pub fn new(space: AddressSpace, exe: PathBuf, strict: bool) -> Process {
        Process {
            space,
            signals: SignalState::default(),
            exe,
            strict,
            reported: HashSet::new(),
            reported_features: HashSet::new(),
            tid_address: 0,
            limits: process::Limits::new(),
        }
    }
}

/// What a handler can reach: the process and the vCPU that made the call.
pub struct Ctx<'a> {
    pub proc: &'a mut Process,
    pub vcpu: &'a mut dyn Vcpu,
    /// Set by a handler to end the payload.
    pub exit: Option<ExitStatus>,
}

/// Runs syscall `nr` and returns the value for the payload's rax.
pub fn dispatch(ctx: &mut Ctx, nr: u64, args: [u64; 6]) -> u64 {
    let result = match handler(nr) {
        Some(h) => h(ctx, args),
        None => unimplemented(ctx, nr),
    };
    tracing::trace!(target: "syscall", "{}({:#x}, {:#x}, {:#x}, ...) = {:?}", display_name(nr), args[0], args[1], args[2], result);
    match result {
        Ok(v) => v,
        Err(Errno::EPIPE) if signals::sigpipe_kills(ctx) => {
            ctx.exit = Some(ExitStatus::Signal(Signal::SIGPIPE, String::new()));
            (-(Errno::EPIPE as i64)) as u64
        }
        Err(e) => (-(e as i64)) as u64,
    }
}

fn display_name(nr: u64) -> &'static str {
    names::name(nr).unwrap_or("unknown")
}

/// ENOSYS, reported once per number on km's stderr; fatal (SIGSYS, as a
/// seccomp filter would do) in strict mode.
fn unimplemented(ctx: &mut Ctx, nr: u64) -> Ret {
    if ctx.proc.reported.insert(nr) {
        crate::diag::line(format_args!("unimplemented syscall {nr} ({})", display_name(nr)));
    }
    if ctx.proc.strict {
        ctx.exit = Some(ExitStatus::Signal(Signal::SIGSYS, format!("unimplemented syscall {nr} in strict mode")));
    }
    Err(Errno::ENOSYS)
}

/// ENOSYS for a call km knows but cannot yet serve in this form, reported
/// once per feature; fatal in strict mode like an unimplemented call.
fn unimplemented_feature(ctx: &mut Ctx, what: &'static str) -> Ret {
    if ctx.proc.reported_features.insert(what) {
        crate::diag::line(format_args!("not implemented yet: {what}"));
    }
    if ctx.proc.strict {
        ctx.exit = Some(ExitStatus::Signal(Signal::SIGSYS, format!("{what} in strict mode")));
    }
    Err(Errno::ENOSYS)
}

/// Performs syscall `nr` on the host with the payload's arguments, after
/// the handler has validated them.
fn host(nr: c_long, a: [u64; 6]) -> Ret {
    // SAFETY: every handler that calls this has checked each pointer
    // argument to lie inside payload memory (or replaced it with km's own
    // checked copy) and each fd to be the payload's; the host kernel
    // validates everything else and reports faults as EFAULT. Payload
    // memory never overlaps km's.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as u64)
    }
}

/// The one table from syscall number to handler.
#[allow(non_upper_case_globals)] // libc's SYS_* names
fn handler(nr: u64) -> Option<Handler> {
    use libc::*;
    let Ok(nr) = c_long::try_from(nr) else { return None };
    Some(match nr {
        // files
        SYS_read => files::read,
        SYS_write => files::write,
        SYS_pread64 => files::pread64,
        SYS_pwrite64 => files::pwrite64,
        SYS_readv => files::readv,
        SYS_writev => files::writev,
        SYS_preadv => files::preadv,
        SYS_pwritev => files::pwritev,
        SYS_preadv2 => files::preadv2,
        SYS_pwritev2 => files::pwritev2,
        SYS_open => files::open,
        SYS_openat => files::openat,
        SYS_creat => files::creat,
        SYS_close => files::close,
        SYS_lseek => files::lseek,
        SYS_stat => files::stat,
        SYS_lstat => files::lstat,
        SYS_fstat => files::fstat,
        SYS_newfstatat => files::newfstatat,
        SYS_statx => files::statx,
        SYS_getdents64 => files::getdents64,
        SYS_getcwd => files::getcwd,
        SYS_chdir => files::chdir,
        SYS_fchdir => files::fchdir,
        SYS_access => files::access,
        SYS_faccessat => files::faccessat,
        SYS_faccessat2 => files::faccessat2,
        SYS_readlink => files::readlink,
        SYS_readlinkat => files::readlinkat,
        SYS_unlink => files::unlink,
        SYS_unlinkat => files::unlinkat,
        SYS_mkdir => files::mkdir,
        SYS_mkdirat => files::mkdirat,
        SYS_rmdir => files::rmdir,
        SYS_rename => files::rename,
        SYS_renameat => files::renameat,
        SYS_renameat2 => files::renameat2,
        SYS_symlink => files::symlink,
        SYS_symlinkat => files::symlinkat,
        SYS_link => files::link,
        SYS_linkat => files::linkat,
        SYS_chmod => files::chmod,
        SYS_fchmod => files::fchmod,
        SYS_fchmodat => files::fchmodat,
        SYS_chown => files::chown,
        SYS_lchown => files::lchown,
        SYS_fchown => files::fchown,
        SYS_fchownat => files::fchownat,
        SYS_truncate => files::truncate,
        SYS_ftruncate => files::ftruncate,
        SYS_fsync => files::fsync,
        SYS_fdatasync => files::fdatasync,
        SYS_sync => files::sync,
        SYS_syncfs => files::syncfs,
        SYS_fcntl => files::fcntl,
        SYS_flock => files::flock,
        SYS_fallocate => files::fallocate,
        SYS_fadvise64 => files::fadvise64,
        SYS_dup => files::dup,
        SYS_dup2 => files::dup2,
        SYS_dup3 => files::dup3,
        SYS_pipe => files::pipe,
        SYS_pipe2 => files::pipe2,
        SYS_ioctl => files::ioctl,
        SYS_umask => files::umask,
        SYS_utimensat => files::utimensat,
        SYS_statfs => files::statfs,
        SYS_fstatfs => files::fstatfs,
        SYS_sendfile => files::sendfile,
        SYS_poll => files::poll,
        SYS_ppoll => files::ppoll,
        // memory
        SYS_brk => memory::brk,
        SYS_mmap => memory::mmap,
        SYS_munmap => memory::munmap,
        SYS_mprotect => memory::mprotect,
        SYS_mremap => memory::mremap,
        SYS_madvise => memory::madvise,
        SYS_msync => memory::msync,
        SYS_mincore => memory::mincore,
        SYS_mlock => memory::mlock,
        SYS_munlock => memory::munlock,
        // process
        SYS_getpid => process::getpid,
        SYS_getppid => process::getppid,
        SYS_gettid => process::gettid,
        SYS_getuid => process::getuid,
        SYS_geteuid => process::geteuid,
        SYS_getgid => process::getgid,
        SYS_getegid => process::getegid,
        SYS_getresuid => process::getresuid,
        SYS_getresgid => process::getresgid,
        SYS_getgroups => process::getgroups,
        SYS_getpgrp => process::getpgrp,
        SYS_getpgid => process::getpgid,
        SYS_getsid => process::getsid,
        SYS_uname => process::uname,
        SYS_sysinfo => process::sysinfo,
        SYS_getrlimit => process::getrlimit,
        SYS_setrlimit => process::setrlimit,
        SYS_prlimit64 => process::prlimit64,
        SYS_getrusage => process::getrusage,
        SYS_sched_getaffinity => process::sched_getaffinity,
        SYS_sched_yield => process::sched_yield,
        SYS_set_tid_address => process::set_tid_address,
        SYS_arch_prctl => process::arch_prctl,
        SYS_prctl => process::prctl,
        SYS_exit => process::exit,
        SYS_exit_group => process::exit_group,
        SYS_getrandom => process::getrandom,
        // time
        SYS_clock_gettime => time::clock_gettime,
        SYS_clock_getres => time::clock_getres,
        SYS_gettimeofday => time::gettimeofday,
        SYS_time => time::time,
        SYS_nanosleep => time::nanosleep,
        SYS_clock_nanosleep => time::clock_nanosleep,
        SYS_times => time::times,
        // signals
        SYS_rt_sigaction => signals::rt_sigaction,
        SYS_rt_sigprocmask => signals::rt_sigprocmask,
        SYS_sigaltstack => signals::sigaltstack,
        SYS_kill => signals::kill,
        SYS_tkill => signals::tkill,
        SYS_tgkill => signals::tgkill,
        _ => return None,
    })
}
