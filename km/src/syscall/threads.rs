//! Threads: clone for new threads (each a vCPU of its own), futexes,
//! the tid word cleared at exit, robust futex lists, thread and process
//! exit.
//!
//! Futexes are the host's: payload memory is at the same addresses in km,
//! so a payload futex word is a host futex word, and threads of the
//! payload wait on and wake each other through the host kernel directly
//! (tids are host tids, so PI futexes work too).

use libc::*;
use nix::errno::Errno;

use super::args::{buf, obj, opt};
use super::{host, Ctx, Restart, Ret};
use crate::mem::{copy, GuestRange};
use crate::process::ExitStatus;
use crate::thread::{Start, Thread};

type A = [u64; 6];

/// clone flags a thread may use; the namespaces, pidfds and the like are
/// not for threads.
const THREAD_FLAGS: u64 = (CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED) as u64;
const NEEDED: u64 = (CLONE_VM | CLONE_SIGHAND | CLONE_THREAD) as u64;

struct CloneArgs {
    flags: u64,
    stack: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
    /// Where CLONE_PIDFD stores the child's pidfd.
    pidfd: u64,
}

fn new_thread(ctx: &mut Ctx, c: CloneArgs) -> Ret {
    if c.flags & CLONE_THREAD as u64 == 0 {
        let CloneArgs { flags, stack, parent_tid, child_tid, tls, pidfd } = c;
        return crate::fork::fork(ctx, crate::fork::ForkArgs { flags, stack, parent_tid, child_tid, tls, pidfd });
    }
    // CLONE_THREAD needs CLONE_SIGHAND, which needs CLONE_VM (as on Linux).
    if c.flags & !THREAD_FLAGS & !0xff != 0 || c.flags & NEEDED != NEEDED {
        return Err(Errno::EINVAL);
    }
    // The tid pointers are not checked here: Linux stores through them
    // (and km checks them) only when the tid is written or cleared, and a
    // store that fails is skipped.
    let has = |f: c_int| c.flags & f as u64 != 0;
    if has(CLONE_SETTLS) && c.tls >= super::process::TASK_SIZE_MAX {
        return Err(Errno::EPERM);
    }
    let sregs = ctx.t.vcpu.sregs().map_err(|e| {
        tracing::error!(target: "thread", "clone: {e}");
        Errno::EAGAIN
    })?;
    let mut regs = *ctx.regs;
    regs.rax = 0;
    if c.stack != 0 {
        regs.rsp = c.stack;
    }
    let tid = ctx.tid();
    let start = Start {
        regs,
        fs_base: if has(CLONE_SETTLS) { c.tls } else { sregs.fs.base },
        gs_base: sregs.gs.base,
        mask: ctx.proc().signals().thread(tid).mask,
        clear_child_tid: if has(CLONE_CHILD_CLEARTID) { c.child_tid } else { 0 },
        set_tid: [
            if has(CLONE_PARENT_SETTID) { c.parent_tid } else { 0 },
            if has(CLONE_CHILD_SETTID) { c.child_tid } else { 0 },
        ],
    };
    // Host signals are the forwarder's once there is another thread.
    crate::signal::forward::start_deferred(&mut *ctx.t.vcpu);
    let proc = ctx.t.proc.clone();
    Thread::spawn(&proc, start).map(|tid| tid as u64)
}

pub fn clone(ctx: &mut Ctx, a: A) -> Ret {
    // x86-64 order: flags, stack, parent_tid, child_tid, tls. CLONE_PIDFD
    // stores the pidfd where the parent's tid would go, so not both.
    let (flags, parent_tid) = (a[0], a[2]);
    let pidfd = flags & CLONE_PIDFD as u64 != 0;
    if pidfd && flags & CLONE_PARENT_SETTID as u64 != 0 {
        return Err(Errno::EINVAL);
    }
    let pidfd = if pidfd { parent_tid } else { 0 };
    new_thread(ctx, CloneArgs { flags, stack: a[1], parent_tid, child_tid: a[3], tls: a[4], pidfd })
}

/// struct clone_args, the first version's fields.
const CLONE_ARGS_SIZE_VER0: u64 = 64;

pub fn clone3(ctx: &mut Ctx, a: A) -> Ret {
    let (at, size) = (a[0], a[1]);
    if !(CLONE_ARGS_SIZE_VER0..=4096).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let at = buf(at, size)?;
    let mut v = [0u64; 11];
    let n = (size / 8).min(11) as usize;
    copy::read_slice(at, &mut v[..n])?;
    // pidfd is read only with CLONE_PIDFD (glibc fills it in regardless).
    let [flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup] = v;
    // clone3 takes the exit signal apart from the flags.
    if set_tid != 0
        || set_tid_size != 0
        || cgroup != 0
        || flags & 0xff != 0
        || exit_signal > 0xff
        || (flags & CLONE_THREAD as u64 != 0 && exit_signal != 0)
    {
        return Err(Errno::EINVAL);
    }
    let flags = flags | exit_signal;
    if (stack == 0) != (stack_size == 0) {
        return Err(Errno::EINVAL);
    }
    let pidfd = if flags & CLONE_PIDFD as u64 != 0 { pidfd } else { 0 };
    new_thread(ctx, CloneArgs { flags, stack: stack.wrapping_add(stack_size), parent_tid, child_tid, tls, pidfd })
}

pub fn set_tid_address(ctx: &mut Ctx, a: A) -> Ret {
    ctx.t.clear_child_tid = a[0];
    Ok(ctx.tid() as u64)
}

pub fn set_robust_list(ctx: &mut Ctx, a: A) -> Ret {
    if a[1] != crate::futex::ROBUST_HEAD_SIZE {
        return Err(Errno::EINVAL);
    }
    ctx.t.robust_list = a[0];
    Ok(0)
}

pub fn get_robust_list(ctx: &mut Ctx, a: A) -> Ret {
    let pid = a[0] as i32;
    if pid != 0 && pid != ctx.tid() {
        return Err(if ctx.proc().signals().threads.contains_key(&pid) { Errno::EPERM } else { Errno::ESRCH });
    }
    let (head, len) = (obj::<u64>(a[1])?, obj::<u64>(a[2])?);
    copy::write_obj(head, &ctx.t.robust_list)?;
    copy::write_obj(len, &crate::futex::ROBUST_HEAD_SIZE)?;
    Ok(0)
}

/// A deliberate ENOSYS, not reported: the host kernel would restart a
/// payload's critical sections against km's instruction pointer, not the
/// payload's, so km cannot honour rseq; glibc and tcmalloc fall back.
pub fn rseq(_: &mut Ctx, _: A) -> Ret {
    Err(Errno::ENOSYS)
}

pub fn exit(ctx: &mut Ctx, a: A) -> Ret {
    ctx.thread_exit = Some((a[0] & 0xff) as i32);
    Ok(0)
}

pub fn exit_group(ctx: &mut Ctx, a: A) -> Ret {
    ctx.exit = Some(ExitStatus::Code((a[0] & 0xff) as i32));
    Ok(0)
}

const FUTEX_CMD_MASK: i32 = !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
// Not in the libc crate.
const FUTEX_LOCK_PI2: i32 = 13;

pub fn futex(ctx: &mut Ctx, a: A) -> Ret {
    let (uaddr, op, timeout, uaddr2) = (a[0], a[1] as i32, a[3], a[4]);
    GuestRange::new(uaddr, 4)?;
    let cmd = op & FUTEX_CMD_MASK;
    if matches!(cmd, FUTEX_LOCK_PI | FUTEX_LOCK_PI2 | FUTEX_TRYLOCK_PI | FUTEX_WAIT_REQUEUE_PI | FUTEX_CMP_REQUEUE_PI) {
        // These can give the host kernel PI state owned by a host thread.
        ctx.proc().uses_pi_futexes();
    }
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            opt::<timespec>(timeout)?;
            // Without a timeout Linux restarts per SA_RESTART; with one it
            // returns EINTR after a handler.
            let restart = if timeout == 0 { Restart::IfSaRestart } else { Restart::Never };
            ctx.blocking(SYS_futex, a, restart)
        }
        FUTEX_LOCK_PI | FUTEX_LOCK_PI2 => {
            opt::<timespec>(timeout)?;
            ctx.blocking(SYS_futex, a, Restart::IfSaRestart)
        }
        FUTEX_WAIT_REQUEUE_PI => {
            opt::<timespec>(timeout)?;
            GuestRange::new(uaddr2, 4)?;
            ctx.blocking(SYS_futex, a, Restart::IfSaRestart)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET | FUTEX_UNLOCK_PI | FUTEX_TRYLOCK_PI => host(SYS_futex, a),
        // The fourth argument of these is a count, not a pointer.
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE | FUTEX_WAKE_OP | FUTEX_CMP_REQUEUE_PI => {
            GuestRange::new(uaddr2, 4)?;
            host(SYS_futex, a)
        }
        _ => Err(Errno::ENOSYS),
    }
}
