//! Signal dispositions and masks, recorded exactly as the payload sets them.
//! Delivery is not implemented yet; what is recorded already decides what
//! a write to a broken pipe does.

use nix::errno::Errno;

use super::args::opt;
use super::{host, Ctx, ExitStatus, Ret};
use nix::sys::signal::Signal;
use crate::mem::copy;

type A = [u64; 6];

const NSIG: u64 = 64;
const SIGSET_SIZE: u64 = 8;
const SIG_DFL: u64 = 0;
/// sigaltstack flag (not in the libc crate).
const SS_AUTODISARM: i32 = 1 << 31;
/// SIGKILL and SIGSTOP can be neither caught nor blocked.
const UNBLOCKABLE: u64 = (1 << (libc::SIGKILL - 1)) | (1 << (libc::SIGSTOP - 1));

/// The kernel's `struct sigaction` on x86-64.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KSigaction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

// SAFETY: four u64s, any bit pattern is valid.
unsafe impl copy::Pod for KSigaction {}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct StackT {
    pub sp: u64,
    pub flags: i32,
    pub pad: i32,
    pub size: u64,
}

// SAFETY: plain integers, any bit pattern is valid.
unsafe impl copy::Pod for StackT {}

#[derive(Debug)]
pub struct SignalState {
    actions: [KSigaction; NSIG as usize],
    pub mask: u64,
    altstack: StackT,
}

impl Default for SignalState {
    fn default() -> Self {
        SignalState {
            actions: [KSigaction::default(); NSIG as usize],
            mask: 0,
            altstack: StackT { flags: libc::SS_DISABLE, ..Default::default() },
        }
    }
}

impl SignalState {
    pub fn action(&self, sig: i32) -> KSigaction {
        self.actions[sig as usize - 1]
    }
}

/// True when a write that failed with EPIPE should end the payload, as
/// SIGPIPE's default action would (km ignores SIGPIPE itself).
pub fn sigpipe_kills(ctx: &Ctx) -> bool {
    let s = &ctx.proc.signals;
    s.action(libc::SIGPIPE).handler == SIG_DFL && s.mask & (1 << (libc::SIGPIPE - 1)) == 0
}

pub fn rt_sigaction(ctx: &mut Ctx, a: A) -> Ret {
    let (sig, act, oact, size) = (a[0], a[1], a[2], a[3]);
    if size != SIGSET_SIZE || sig == 0 || sig > NSIG {
        return Err(Errno::EINVAL);
    }
    opt::<KSigaction>(act)?;
    opt::<KSigaction>(oact)?;
    let new = if act != 0 { Some(copy::read_obj::<KSigaction>(act)?) } else { None };
    if new.is_some() && (sig == libc::SIGKILL as u64 || sig == libc::SIGSTOP as u64) {
        return Err(Errno::EINVAL);
    }
    let slot = &mut ctx.proc.signals.actions[sig as usize - 1];
    let old = *slot;
    if let Some(mut n) = new {
        n.mask &= !UNBLOCKABLE;
        *slot = n;
    }
    if oact != 0 {
        copy::write_obj(oact, &old)?;
    }
    Ok(0)
}

pub fn rt_sigprocmask(ctx: &mut Ctx, a: A) -> Ret {
    let (how, set, oset, size) = (a[0] as i32, a[1], a[2], a[3]);
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    opt::<u64>(set)?;
    opt::<u64>(oset)?;
    let old = ctx.proc.signals.mask;
    if set != 0 {
        let s: u64 = copy::read_obj(set)?;
        let new = match how {
            libc::SIG_BLOCK => old | s,
            libc::SIG_UNBLOCK => old & !s,
            libc::SIG_SETMASK => s,
            _ => return Err(Errno::EINVAL),
        };
        ctx.proc.signals.mask = new & !UNBLOCKABLE;
    }
    if oset != 0 {
        copy::write_obj(oset, &old)?;
    }
    Ok(0)
}

pub fn sigaltstack(ctx: &mut Ctx, a: A) -> Ret {
    let (ss, old) = (a[0], a[1]);
    opt::<StackT>(ss)?;
    opt::<StackT>(old)?;
    let previous = ctx.proc.signals.altstack;
    if ss != 0 {
        let new: StackT = copy::read_obj(ss)?;
        if new.flags & !(libc::SS_DISABLE | SS_AUTODISARM) != 0 {
            return Err(Errno::EINVAL);
        }
        if new.flags & libc::SS_DISABLE != 0 {
            ctx.proc.signals.altstack = StackT { flags: libc::SS_DISABLE, ..Default::default() };
        } else {
            if new.size < libc::MINSIGSTKSZ as u64 {
                return Err(Errno::ENOMEM);
            }
            ctx.proc.signals.altstack = new;
        }
    }
    if old != 0 {
        copy::write_obj(old, &previous)?;
    }
    Ok(0)
}

const SIG_IGN: u64 = 1;

/// A signal sent by the payload to itself. Dispositions that need no
/// delivery into the guest are carried out: default-terminate ends the
/// payload with the signal, ignored and blocked signals are dropped.
/// Handlers cannot run yet, so a handled signal is reported like an
/// unimplemented call.
fn to_self(ctx: &mut Ctx, sig: u64) -> Ret {
    if sig == 0 {
        return Ok(0);
    }
    if sig > NSIG {
        return Err(Errno::EINVAL);
    }
    let signo = sig as i32;
    let action = ctx.proc.signals.action(signo);
    let blocked = ctx.proc.signals.mask & (1 << (sig - 1)) != 0;
    let default_ignored = matches!(signo, libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH | libc::SIGCONT);
    if action.handler == SIG_IGN || (action.handler == SIG_DFL && default_ignored) || blocked {
        return Ok(0);
    }
    if action.handler == SIG_DFL {
        // Stop signals have no stopped state to enter in km yet; real-time
        // signals without a Signal value terminate like SIGKILL would.
        let signal = Signal::try_from(signo).unwrap_or(Signal::SIGKILL);
        ctx.exit = Some(ExitStatus::Signal(signal, String::new()));
        return Ok(0);
    }
    super::unimplemented_feature(ctx, "delivery of a signal to a handler")
}

fn is_self(pid: i32) -> bool {
    pid == std::process::id() as i32
}

pub fn kill(ctx: &mut Ctx, a: A) -> Ret {
    let pid = a[0] as i32;
    if pid == 0 || is_self(pid) {
        return to_self(ctx, a[1]);
    }
    host(libc::SYS_kill, a)
}

pub fn tkill(ctx: &mut Ctx, a: A) -> Ret {
    if is_self(a[0] as i32) {
        return to_self(ctx, a[1]);
    }
    Err(Errno::ESRCH)
}

pub fn tgkill(ctx: &mut Ctx, a: A) -> Ret {
    if is_self(a[0] as i32) && is_self(a[1] as i32) {
        return to_self(ctx, a[2]);
    }
    Err(Errno::ESRCH)
}
