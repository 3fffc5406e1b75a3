//! The payload's system calls, served on the host.
//!
//! One table maps each x86-64 syscall number to its handler; handlers are
//! grouped by family in the sibling modules. Each handler checks every
//! pointer and fd the payload passes before the host sees it (see
//! `args`), then performs the call on the host, where the payload's own
//! memory is at the same addresses as in the guest.

/// Handlers that hand the call to the host as it is: `name => SYS_nr`.
/// The handler's module provides `Ctx`, `A`, `Ret` and `host`.
macro_rules! passthrough {
    ($($name:ident => $nr:ident),* $(,)?) => {$(
        pub fn $name(_: &mut Ctx, a: A) -> Ret {
            host($nr, a)
        }
    )*};
}

mod args;
mod events;
pub mod files;
mod io;
mod ipc;
mod memory;
pub mod names;
mod net;
mod paths;
mod process;
mod procio;
mod procs;
mod sched;
mod signalfd;
mod signals;
pub mod threads;
mod time;
mod xattr;

use kvm_bindings::kvm_regs;
use libc::c_long;
use nix::errno::Errno;

use crate::process::{ExitStatus, Process};
use crate::thread::Thread;
pub use args::new_fd as new_payload_fd;
pub use process::TASK_SIZE_MAX;
pub use procs::mirror_sigchld;
pub use signalfd::adopt_signalfd;

/// A handler's result: the value for rax, or the errno (returned negated).
pub type Ret = Result<u64, Errno>;
type Handler = fn(&mut Ctx, [u64; 6]) -> Ret;

/// The kernel's internal restart codes (ERESTARTSYS, ERESTART_RESTARTBLOCK).
const ERESTARTSYS: i32 = 512;
const ERESTART_RESTARTBLOCK: i32 = 516;

/// Whether a call a kick interrupted starts again when a handler runs
/// (Linux's ERESTARTSYS) or fails with EINTR (ERESTARTNOHAND). Without
/// a handler to run, every interrupted call starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// IfSaRestart names Linux's SA_RESTART flag, not this enum.
#[allow(clippy::enum_variant_names)]
pub enum Restart {
    IfSaRestart,
    Never,
    /// The call was cut short before it began: it runs after the handler.
    Always,
}

/// What a handler can reach: the calling thread (its vCPU, and through it
/// the process) and the registers the call returns to.
pub struct Ctx<'a> {
    pub t: &'a mut Thread,
    pub regs: &'a mut kvm_regs,
    /// Set by a handler to end the payload.
    pub exit: Option<ExitStatus>,
    /// Set by a handler to end the calling thread with this code.
    pub thread_exit: Option<i32>,
    /// Set when a blocking host call was cut short by a kick.
    pub interrupted: Option<Restart>,
    /// Set by a send with MSG_NOSIGNAL: EPIPE without SIGPIPE.
    pub no_sigpipe: bool,
}

impl<'a> Ctx<'a> {
    pub fn new(t: &'a mut Thread, regs: &'a mut kvm_regs) -> Ctx<'a> {
        Ctx { t, regs, exit: None, thread_exit: None, interrupted: None, no_sigpipe: false }
    }

    pub fn proc(&self) -> &Process {
        &self.t.proc
    }

    pub fn tid(&self) -> i32 {
        self.t.tid()
    }

    /// Performs a host call that may block (on a pipe, a futex, a timer),
    /// so a signal for the payload or the process's end can cut it short.
    ///
    /// No wake-up is lost (see `crate::kick`): a poster queues the signal
    /// and raises the flag under the signals lock, then sends the kick. A
    /// signal queued before the check below is seen by it, and the call is
    /// not made; one queued after it raised the flag after it, which the
    /// routine tests right before `syscall`, and the kick that follows
    /// either moves a thread short of `syscall` to the cancel exit or ends
    /// the call in the kernel with EINTR. The flag alone is not enough: the
    /// run loop clears it at every exit, and a signal that came as the
    /// payload entered this call (the vCPU stopped in km's pad, before its
    /// exit) is left pending for the call to see, as Linux's calls check
    /// for a pending signal before they sleep.
    fn blocking(&mut self, nr: c_long, a: [u64; 6], restart: Restart) -> Ret {
        // While it waits, host signals must reach the payload.
        crate::signal::forward::start_deferred(&mut *self.t.vcpu);
        self.wait_in_host(nr, a, restart)
    }

    /// `blocking` for a read or write of `fd`, which needs no signal
    /// forwarder if the fd is one such a call never waits on (see
    /// `files::never_waits`): a process that writes only to /dev/null or to
    /// local files may end without one.
    fn blocking_io(&mut self, fd: u64, nr: c_long, a: [u64; 6], restart: Restart) -> Ret {
        if crate::signal::forward::is_deferred() && files::never_waits(fd) {
            return self.wait_in_host(nr, a, restart);
        }
        self.blocking(nr, a, restart)
    }

    /// The body of `blocking`, with the forwarder running or not needed.
    fn wait_in_host(&mut self, nr: c_long, a: [u64; 6], restart: Restart) -> Ret {
        let (stops, pending) = {
            let s = self.proc().signals();
            (crate::signal::tty::taken_stops(&s, self.tid()), s.deliverable(self.tid()))
        };
        if pending {
            return self.cancelled();
        }
        let stops = crate::signal::tty::Opened::new(&stops);
        // SAFETY: as for `host`: the handler checked every pointer argument.
        let r = unsafe { crate::kick::interruptible(&self.t.handle.attention, nr, a) };
        drop(stops);
        crate::signal::tty::post_caught(self.proc());
        if r.is_some() {
            // What ended the wait may be another process's answer to a
            // signal this one has too (see `signal::forward`).
            crate::signal::forward::take_pending(self.proc());
        }
        match r {
            None => self.cancelled(),
            Some(Err(Errno::EINTR)) => {
                self.interrupted = Some(restart);
                Err(Errno::EINTR)
            }
            // The kernel's restart codes reach km when the tty layer's
            // stop signal went to another km thread: a restart, as natively.
            Some(Err(e)) if (ERESTARTSYS..=ERESTART_RESTARTBLOCK).contains(&(e as i32)) => {
                self.interrupted = Some(restart);
                Err(Errno::EINTR)
            }
            Some(r) => r,
        }
    }

    /// Makes a host call that is not interruptible, but in which the tty
    /// layer may send the caller's group SIGTTOU (tcsetpgrp, tcsetattr):
    /// with those signals open (`signal::tty`). A handler's signal ends the
    /// call with EINTR, and it restarts or fails per SA_RESTART.
    fn with_tty_stops(&mut self, nr: c_long, a: [u64; 6]) -> Ret {
        let stops = crate::signal::tty::taken_stops(&self.proc().signals(), self.tid());
        let opened = crate::signal::tty::Opened::new(&stops);
        let r = host(nr, a);
        drop(opened);
        crate::signal::tty::post_caught(self.proc());
        match r {
            Err(e) if e == Errno::EINTR || (ERESTARTSYS..=ERESTART_RESTARTBLOCK).contains(&(e as i32)) => {
                self.interrupted = Some(Restart::IfSaRestart);
                Err(Errno::EINTR)
            }
            r => r,
        }
    }

    /// A blocking call not begun because a signal came first: as if it
    /// came just before the syscall instruction, the call runs again after
    /// the handler, whatever the call (an open of a regular file must not
    /// fail with EINTR).
    fn cancelled(&mut self) -> Ret {
        self.interrupted = Some(Restart::Always);
        Err(Errno::EINTR)
    }

    /// Runs `call` with the payload's signal mask temporarily `mask` (the
    /// sigmask argument of ppoll, pselect6, epoll_pwait): if a signal
    /// interrupts it, the old mask comes back after the handler, as Linux
    /// does; otherwise at once.
    fn with_mask(&mut self, mask: Option<u64>, call: impl FnOnce(&mut Ctx) -> Ret) -> Ret {
        let Some(mask) = mask else { return call(self) };
        let tid = self.tid();
        let old = self.proc().signals().thread(tid).mask;
        self.proc().signals().set_mask(tid, mask);
        let r = call(self);
        if r == Err(Errno::EINTR) && self.proc().signals().deliverable(tid) {
            self.t.saved_mask = Some(old);
        } else {
            self.proc().signals().set_mask(tid, old);
        }
        r
    }
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
        Err(Errno::EPIPE) => {
            if !ctx.no_sigpipe {
                signals::raise_sigpipe(ctx);
            }
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
    if ctx.proc().first_report(nr) {
        crate::diag::line(format_args!("unimplemented syscall {nr} ({})", display_name(nr)));
    }
    if ctx.proc().strict {
        ctx.exit = Some(ExitStatus::Signal(libc::SIGSYS, format!("unimplemented syscall {nr} in strict mode")));
    }
    Err(Errno::ENOSYS)
}

/// `errno` for a form of a call km does not serve (an unknown socket
/// option, say), reported once per form; fatal in strict mode.
fn unsupported(ctx: &mut Ctx, what: &str, errno: Errno) -> Ret {
    if ctx.proc().first_feature_report(what) {
        crate::diag::line(format_args!("not implemented yet: {what}"));
    }
    if ctx.proc().strict {
        ctx.exit = Some(ExitStatus::Signal(libc::SIGSYS, format!("{what} in strict mode")));
    }
    Err(errno)
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
        SYS_open => paths::open,
        SYS_openat => paths::openat,
        SYS_creat => paths::creat,
        SYS_openat2 => paths::openat2,
        SYS_close => files::close,
        SYS_lseek => files::lseek,
        SYS_stat => paths::stat,
        SYS_lstat => paths::lstat,
        SYS_fstat => paths::fstat,
        SYS_newfstatat => paths::newfstatat,
        SYS_statx => paths::statx,
        SYS_getdents64 => files::getdents64,
        SYS_getcwd => paths::getcwd,
        SYS_chdir => paths::chdir,
        SYS_fchdir => paths::fchdir,
        SYS_access => paths::access,
        SYS_faccessat => paths::faccessat,
        SYS_faccessat2 => paths::faccessat2,
        SYS_readlink => paths::readlink,
        SYS_readlinkat => paths::readlinkat,
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
        SYS_link => paths::link,
        SYS_linkat => paths::linkat,
        SYS_chmod => paths::chmod,
        SYS_fchmod => files::fchmod,
        SYS_fchmodat => paths::fchmodat,
        SYS_chown => paths::chown,
        SYS_lchown => paths::lchown,
        SYS_fchown => files::fchown,
        SYS_fchownat => paths::fchownat,
        SYS_truncate => paths::truncate,
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
        SYS_utimensat => paths::utimensat,
        SYS_statfs => paths::statfs,
        SYS_fstatfs => files::fstatfs,
        SYS_sendfile => files::sendfile,
        SYS_poll => files::poll,
        SYS_ppoll => files::ppoll,
        // more I/O
        SYS_splice => io::splice,
        SYS_tee => io::tee,
        SYS_vmsplice => io::vmsplice,
        SYS_copy_file_range => io::copy_file_range,
        SYS_sync_file_range => io::sync_file_range,
        SYS_memfd_create => io::memfd_create,
        SYS_mknod => io::mknod,
        SYS_mknodat => io::mknodat,
        SYS_inotify_init => io::inotify_init,
        SYS_inotify_init1 => io::inotify_init1,
        SYS_inotify_add_watch => io::inotify_add_watch,
        SYS_inotify_rm_watch => io::inotify_rm_watch,
        SYS_close_range => io::close_range,
        SYS_io_uring_setup | SYS_io_uring_enter | SYS_io_uring_register => io::io_uring,
        SYS_fanotify_init | SYS_fanotify_mark | SYS_name_to_handle_at | SYS_open_by_handle_at => io::refused_by_design,
        // System V IPC
        SYS_semget => ipc::semget,
        SYS_semop => ipc::semop,
        SYS_semtimedop => ipc::semtimedop,
        SYS_semctl => ipc::semctl,
        SYS_msgget => ipc::msgget,
        SYS_msgsnd => ipc::msgsnd,
        SYS_msgrcv => ipc::msgrcv,
        SYS_msgctl => ipc::msgctl,
        SYS_shmget => ipc::shmget,
        SYS_shmat => ipc::shmat,
        SYS_shmdt => ipc::shmdt,
        SYS_shmctl => ipc::shmctl,
        // extended attributes
        SYS_getxattr => xattr::getxattr,
        SYS_lgetxattr => xattr::lgetxattr,
        SYS_fgetxattr => xattr::fgetxattr,
        SYS_setxattr => xattr::setxattr,
        SYS_lsetxattr => xattr::lsetxattr,
        SYS_fsetxattr => xattr::fsetxattr,
        SYS_listxattr => xattr::listxattr,
        SYS_llistxattr => xattr::llistxattr,
        SYS_flistxattr => xattr::flistxattr,
        SYS_removexattr => xattr::removexattr,
        SYS_lremovexattr => xattr::lremovexattr,
        SYS_fremovexattr => xattr::fremovexattr,
        // net
        SYS_socket => net::socket,
        SYS_socketpair => net::socketpair,
        SYS_bind => net::bind,
        SYS_listen => net::listen,
        SYS_accept => net::accept,
        SYS_accept4 => net::accept4,
        SYS_connect => net::connect,
        SYS_shutdown => net::shutdown,
        SYS_getsockname => net::getsockname,
        SYS_getpeername => net::getpeername,
        SYS_setsockopt => net::setsockopt,
        SYS_getsockopt => net::getsockopt,
        SYS_sendto => net::sendto,
        SYS_recvfrom => net::recvfrom,
        SYS_sendmsg => net::sendmsg,
        SYS_recvmsg => net::recvmsg,
        SYS_sendmmsg => net::sendmmsg,
        SYS_recvmmsg => net::recvmmsg,
        // events
        SYS_epoll_create => events::epoll_create,
        SYS_epoll_create1 => events::epoll_create1,
        SYS_epoll_ctl => events::epoll_ctl,
        SYS_epoll_wait => events::epoll_wait,
        SYS_epoll_pwait => events::epoll_pwait,
        SYS_eventfd => events::eventfd,
        SYS_eventfd2 => events::eventfd2,
        SYS_signalfd => signalfd::signalfd,
        SYS_signalfd4 => signalfd::signalfd4,
        SYS_select => events::select,
        SYS_pselect6 => events::pselect6,
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
        SYS_arch_prctl => process::arch_prctl,
        SYS_prctl => process::prctl,
        SYS_getrandom => process::getrandom,
        // scheduling
        SYS_sched_getaffinity => sched::sched_getaffinity,
        SYS_sched_setaffinity => sched::sched_setaffinity,
        SYS_sched_yield => sched::sched_yield,
        SYS_sched_getparam => sched::sched_getparam,
        SYS_sched_setparam => sched::sched_setparam,
        SYS_sched_getscheduler => sched::sched_getscheduler,
        SYS_sched_setscheduler => sched::sched_setscheduler,
        SYS_sched_get_priority_max => sched::sched_get_priority_max,
        SYS_sched_get_priority_min => sched::sched_get_priority_min,
        SYS_sched_rr_get_interval => sched::sched_rr_get_interval,
        SYS_getpriority => sched::getpriority,
        SYS_setpriority => sched::setpriority,
        SYS_getcpu => sched::getcpu,
        SYS_personality => sched::personality,
        // processes
        SYS_fork => procs::fork,
        SYS_vfork => procs::vfork,
        SYS_execve => procs::execve,
        SYS_execveat => procs::execveat,
        SYS_wait4 => procs::wait4,
        SYS_waitid => procs::waitid,
        SYS_pidfd_open => procs::pidfd_open,
        SYS_pidfd_send_signal => procs::pidfd_send_signal,
        SYS_setpgid => procs::setpgid,
        SYS_setsid => procs::setsid,
        SYS_setuid => procs::setuid,
        SYS_setgid => procs::setgid,
        SYS_setreuid => procs::setreuid,
        SYS_setregid => procs::setregid,
        SYS_setresuid => procs::setresuid,
        SYS_setresgid => procs::setresgid,
        SYS_setfsuid => procs::setfsuid,
        SYS_setfsgid => procs::setfsgid,
        SYS_setgroups => procs::setgroups,
        SYS_capget => procs::capget,
        SYS_capset => procs::capset,
        // threads
        SYS_clone => threads::clone,
        SYS_clone3 => threads::clone3,
        SYS_futex => threads::futex,
        SYS_set_tid_address => threads::set_tid_address,
        SYS_set_robust_list => threads::set_robust_list,
        SYS_get_robust_list => threads::get_robust_list,
        SYS_rseq => threads::rseq,
        SYS_exit => threads::exit,
        SYS_exit_group => threads::exit_group,
        // time
        SYS_clock_gettime => time::clock_gettime,
        SYS_clock_getres => time::clock_getres,
        SYS_gettimeofday => time::gettimeofday,
        SYS_time => time::time,
        SYS_nanosleep => time::nanosleep,
        SYS_clock_nanosleep => time::clock_nanosleep,
        SYS_times => time::times,
        SYS_alarm => time::alarm,
        SYS_getitimer => time::getitimer,
        SYS_setitimer => time::setitimer,
        SYS_timer_create => time::timer_create,
        SYS_timer_settime => time::timer_settime,
        SYS_timer_gettime => time::timer_gettime,
        SYS_timer_getoverrun => time::timer_getoverrun,
        SYS_timer_delete => time::timer_delete,
        SYS_timerfd_create => time::timerfd_create,
        SYS_timerfd_settime => time::timerfd_settime,
        SYS_timerfd_gettime => time::timerfd_gettime,
        // signals
        SYS_rt_sigaction => signals::rt_sigaction,
        SYS_rt_sigprocmask => signals::rt_sigprocmask,
        SYS_sigaltstack => signals::sigaltstack,
        SYS_kill => signals::kill,
        SYS_tkill => signals::tkill,
        SYS_tgkill => signals::tgkill,
        SYS_rt_sigqueueinfo => signals::rt_sigqueueinfo,
        SYS_rt_tgsigqueueinfo => signals::rt_tgsigqueueinfo,
        SYS_rt_sigreturn => signals::rt_sigreturn,
        SYS_rt_sigsuspend => signals::rt_sigsuspend,
        SYS_rt_sigpending => signals::rt_sigpending,
        SYS_rt_sigtimedwait => signals::rt_sigtimedwait,
        SYS_pause => signals::pause,
        _ => return None,
    })
}
