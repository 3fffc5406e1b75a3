//! Signals: dispositions, masks, the alternate stack, sending, waiting,
//! and the return from a handler. The state lives in `crate::signal`;
//! delivery happens in the thread's run loop.

use libc::c_long;
use nix::errno::Errno;

use super::args::{obj, opt};
use super::process::TASK_SIZE_MAX;
use super::{host, Ctx, Restart, Ret};
use crate::mem::{copy, GuestRange};
use crate::signal::frame::{self, fx, StackT, SS_AUTODISARM, SS_DISABLE, SS_ONSTACK};
use crate::signal::{KSigaction, SigInfo, NSIG, UNBLOCKABLE};

type A = [u64; 6];

const SIGSET_SIZE: u64 = 8;

fn signo(v: u64) -> Result<i32, Errno> {
    if v == 0 || v > NSIG as u64 {
        return Err(Errno::EINVAL);
    }
    Ok(v as i32)
}

fn read_set(ptr: u64) -> Result<u64, Errno> {
    copy::read_obj(obj::<u64>(ptr)?)
}

/// A write that failed with EPIPE sends SIGPIPE to the writing thread.
pub fn raise_sigpipe(ctx: &mut Ctx) {
    let info = SigInfo::user(libc::SIGPIPE, ctx.proc().pid, ctx.proc().uid);
    let tid = ctx.tid();
    let _ = ctx.proc().post(Some(tid), info);
}

pub fn rt_sigaction(ctx: &mut Ctx, a: A) -> Ret {
    let (act, oact) = (a[1], a[2]);
    if a[3] != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let sig = signo(a[0])?;
    let act = opt::<KSigaction>(act)?;
    let oact = opt::<KSigaction>(oact)?;
    let new = act.map(copy::read_obj::<KSigaction>).transpose()?;
    if new.is_some() && (sig == libc::SIGKILL || sig == libc::SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    let old = {
        let mut s = ctx.proc().signals();
        let old = s.action(sig);
        if let Some(mut n) = new {
            n.mask &= !UNBLOCKABLE;
            s.set_action(sig, n);
            if sig == libc::SIGCHLD {
                super::mirror_sigchld(&n);
            }
            crate::signal::tty::mirror(sig, n.handler);
        }
        old
    };
    if let Some(oact) = oact {
        copy::write_obj(oact, &old)?;
    }
    Ok(0)
}

pub fn rt_sigprocmask(ctx: &mut Ctx, a: A) -> Ret {
    let (how, set, oset) = (a[0] as i32, a[1], a[2]);
    if a[3] != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let oset = opt::<u64>(oset)?;
    let new = if set != 0 { Some(read_set(set)?) } else { None };
    let tid = ctx.tid();
    let old = {
        let mut s = ctx.proc().signals();
        let old = s.thread(tid).mask;
        if let Some(v) = new {
            let mask = match how {
                libc::SIG_BLOCK => old | v,
                libc::SIG_UNBLOCK => old & !v,
                libc::SIG_SETMASK => v,
                _ => return Err(Errno::EINVAL),
            };
            s.set_mask(tid, mask);
        }
        old
    };
    if let Some(oset) = oset {
        copy::write_obj(oset, &old)?;
    }
    Ok(0)
}

pub fn sigaltstack(ctx: &mut Ctx, a: A) -> Ret {
    let (ss, old) = (a[0], a[1]);
    let ss = opt::<StackT>(ss)?;
    let old = opt::<StackT>(old)?;
    let sp = ctx.regs.rsp;
    let previous = ctx.t.altstack.reported(sp);
    if let Some(ss) = ss {
        let new: StackT = copy::read_obj(ss)?;
        set_altstack(ctx, sp, new)?;
    }
    if let Some(old) = old {
        copy::write_obj(old, &previous)?;
    }
    Ok(0)
}

/// Linux's do_sigaltstack: not while running on the current one; SS_ONSTACK
/// reads as 0 (it is what a saved uc_stack says), SS_AUTODISARM is kept.
fn set_altstack(ctx: &mut Ctx, sp: u64, new: StackT) -> Result<(), Errno> {
    if ctx.t.altstack.on_stack(sp) {
        return Err(Errno::EPERM);
    }
    let mode = new.flags & !SS_AUTODISARM;
    if mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK {
        return Err(Errno::EINVAL);
    }
    ctx.t.altstack = if mode == SS_DISABLE {
        StackT::disabled()
    } else if new.size < libc::MINSIGSTKSZ as u64 {
        return Err(Errno::ENOMEM);
    } else {
        StackT { flags: new.flags & SS_AUTODISARM, pad: 0, ..new }
    };
    Ok(())
}

fn post(ctx: &mut Ctx, tid: Option<i32>, info: SigInfo) -> Ret {
    let limit = crate::process::lock(&ctx.proc().limits).get(libc::RLIMIT_SIGPENDING).rlim_cur;
    if ctx.proc().signals().over_queue_limit(&info, limit) {
        return Err(Errno::EAGAIN);
    }
    ctx.proc().post(tid, info).map(|_| 0)
}

fn is_self(ctx: &Ctx, pid: i32) -> bool {
    pid == ctx.proc().pid
}

/// A signal number for kill and friends: 0 only probes.
fn kill_signo(v: u64) -> Result<Option<i32>, Errno> {
    if v == 0 {
        Ok(None)
    } else {
        signo(v).map(Some)
    }
}

pub fn kill(ctx: &mut Ctx, a: A) -> Ret {
    let pid = a[0] as i32;
    if !is_self(ctx, pid) {
        // Other processes, and groups (which include km itself: its share
        // comes back through the host-signal forwarding).
        return host(libc::SYS_kill, a);
    }
    match kill_signo(a[1])? {
        None => Ok(0),
        Some(sig) => post(ctx, None, SigInfo::user(sig, ctx.proc().pid, ctx.proc().uid)),
    }
}

fn to_thread(ctx: &mut Ctx, tid: i32, sig: u64) -> Ret {
    if tid <= 0 {
        return Err(Errno::EINVAL);
    }
    let sig = kill_signo(sig)?;
    if !ctx.proc().signals().threads.contains_key(&tid) {
        return Err(Errno::ESRCH);
    }
    match sig {
        None => Ok(0),
        Some(sig) => post(ctx, Some(tid), SigInfo::sent(sig, libc::SI_TKILL, ctx.proc().pid, ctx.proc().uid)),
    }
}

pub fn tkill(ctx: &mut Ctx, a: A) -> Ret {
    to_thread(ctx, a[0] as i32, a[1])
}

pub fn tgkill(ctx: &mut Ctx, a: A) -> Ret {
    if (a[0] as i32) <= 0 {
        return Err(Errno::EINVAL);
    }
    if !is_self(ctx, a[0] as i32) {
        return host(libc::SYS_tgkill, a);
    }
    to_thread(ctx, a[1] as i32, a[2])
}

/// The payload's siginfo for rt_(tg)sigqueueinfo, with si_signo forced.
fn queued_info(ptr: u64, sig: i32) -> Result<SigInfo, Errno> {
    let mut info: SigInfo = copy::read_obj(obj::<SigInfo>(ptr)?)?;
    info.0[..4].copy_from_slice(&sig.to_le_bytes());
    Ok(info)
}

pub fn rt_sigqueueinfo(ctx: &mut Ctx, a: A) -> Ret {
    let sig = signo(a[1])?;
    if !is_self(ctx, a[0] as i32) {
        obj::<SigInfo>(a[2])?;
        return host(libc::SYS_rt_sigqueueinfo, a);
    }
    let info = queued_info(a[2], sig)?;
    post(ctx, None, info)
}

pub fn rt_tgsigqueueinfo(ctx: &mut Ctx, a: A) -> Ret {
    let sig = signo(a[2])?;
    if !is_self(ctx, a[0] as i32) {
        obj::<SigInfo>(a[3])?;
        return host(libc::SYS_rt_tgsigqueueinfo, a);
    }
    let info = queued_info(a[3], sig)?;
    post(ctx, Some(a[1] as i32), info)
}

/// Back from a handler: registers, FPU state, mask and alternate stack
/// come from the frame (which the handler may have edited). The FPU image
/// is loaded by the guest on the way back (see `Thread::load`). A frame
/// Linux could not return through is SIGSEGV, forced as Linux's
/// signal_fault does, in the order Linux finds out: an unreadable frame
/// changes nothing; a bad FPU image comes after the mask and registers;
/// bad selectors or rip fail the return itself, after everything.
pub fn rt_sigreturn(ctx: &mut Ctx, _: A) -> Ret {
    let uc_at = ctx.regs.rsp;
    let mut uc = [0u8; frame::UCONTEXT_SIZE];
    if GuestRange::new(uc_at, uc.len() as u64).and_then(|r| copy::read_bytes(r, &mut uc)).is_err() {
        return bad_frame(ctx, format!("rt_sigreturn with a frame at {uc_at:#x} it cannot read"));
    }
    let r = frame::restore(&uc, ctx.regs.rflags);
    let tid = ctx.tid();
    ctx.proc().signals().set_mask(tid, r.mask);
    *ctx.regs = r.regs;
    let mut image = fx::initial();
    if r.fpstate != 0 {
        let read = GuestRange::new(r.fpstate, image.len() as u64).and_then(|at| copy::read_bytes(at, &mut image));
        if !r.fpstate.is_multiple_of(16) || read.is_err() || !fx::valid(&image) {
            // Linux leaves the FPU in its initial state.
            ctx.t.fpu_restore = Some(fx::initial());
            return bad_frame(ctx, format!("rt_sigreturn with a bad FPU image at {:#x}", r.fpstate));
        }
    }
    ctx.t.fpu_restore = Some(image);
    // As Linux's restore_altstack: errors (still on the stack) are ignored.
    let sp = ctx.regs.rsp;
    let _ = set_altstack(ctx, sp, r.stack);
    if !r.selectors_valid() || r.regs.rip >= TASK_SIZE_MAX {
        ctx.t.force_sigsegv(format!("rt_sigreturn to an invalid context (rip {:#x})", r.regs.rip));
    }
    Ok(r.regs.rax)
}

/// A frame rt_sigreturn cannot use: SIGSEGV, and 0 in rax, as Linux's
/// badframe path.
fn bad_frame(ctx: &mut Ctx, why: String) -> Ret {
    ctx.t.force_sigsegv(why);
    Ok(0)
}

/// Sleeps in host call `nr` until a kick (a signal may have arrived:
/// false) or the call's own end (a timeout: true).
pub(super) fn wait_for_kick(ctx: &mut Ctx, nr: c_long, a: A) -> Result<bool, Errno> {
    let r = ctx.blocking(nr, a, Restart::Never);
    ctx.interrupted = None;
    ctx.t.handle.attention.take();
    match r {
        Ok(_) => Ok(true),
        Err(Errno::EINTR) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn rt_sigsuspend(ctx: &mut Ctx, a: A) -> Ret {
    if a[1] != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let mask = read_set(a[0])?;
    let tid = ctx.tid();
    let old = ctx.proc().signals().thread(tid).mask;
    ctx.proc().signals().set_mask(tid, mask);
    while !ctx.proc().signals().deliverable(tid) {
        wait_for_kick(ctx, libc::SYS_pause, [0; 6])?;
    }
    ctx.t.saved_mask = Some(old);
    Err(Errno::EINTR)
}

pub fn pause(ctx: &mut Ctx, _: A) -> Ret {
    let tid = ctx.tid();
    while !ctx.proc().signals().deliverable(tid) {
        wait_for_kick(ctx, libc::SYS_pause, [0; 6])?;
    }
    Err(Errno::EINTR)
}

pub fn rt_sigpending(ctx: &mut Ctx, a: A) -> Ret {
    if a[1] > SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let out = GuestRange::new(a[0], a[1])?;
    let tid = ctx.tid();
    let set = {
        let s = ctx.proc().signals();
        s.pending(tid) & s.threads[&tid].mask
    };
    copy::write_bytes(out, &set.to_le_bytes()[..a[1] as usize])?;
    Ok(0)
}

fn now(clock: libc::clockid_t) -> libc::timespec {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into `t`.
    unsafe { libc::clock_gettime(clock, &mut t) };
    t
}

pub fn rt_sigtimedwait(ctx: &mut Ctx, a: A) -> Ret {
    let (set, info_at, timeout) = (a[0], a[1], a[2]);
    if a[3] != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let set = read_set(set)? & !UNBLOCKABLE;
    let info_at = opt::<SigInfo>(info_at)?;
    let deadline = if timeout != 0 {
        let t: [u64; 2] = copy::read_obj(obj::<libc::timespec>(timeout)?)?;
        let t = [t[0] as i64, t[1] as i64];
        if t[0] < 0 || !(0..1_000_000_000).contains(&t[1]) {
            return Err(Errno::EINVAL);
        }
        let n = now(libc::CLOCK_MONOTONIC);
        let ns = n.tv_nsec + t[1];
        let tv_sec = n.tv_sec.saturating_add(t[0]).saturating_add(ns / 1_000_000_000);
        Some(libc::timespec { tv_sec, tv_nsec: ns % 1_000_000_000 })
    } else {
        None
    };
    let tid = ctx.tid();
    loop {
        let taken = {
            let mut s = ctx.proc().signals();
            let taken = s.take_from(tid, set);
            s.thread(tid).waiting = if taken.is_some() { 0 } else { set };
            taken
        };
        if let Some(info) = taken {
            if let Some(info_at) = info_at {
                copy::write_obj(info_at, &info)?;
            }
            return Ok(info.signo() as u64);
        }
        if ctx.proc().signals().deliverable(tid) {
            ctx.proc().signals().thread(tid).waiting = 0;
            return Err(Errno::EINTR);
        }
        let r = match &deadline {
            Some(d) => {
                let at = d as *const libc::timespec as u64;
                wait_for_kick(
                    ctx,
                    libc::SYS_clock_nanosleep,
                    [libc::CLOCK_MONOTONIC as u64, libc::TIMER_ABSTIME as u64, at, 0, 0, 0],
                )
            }
            None => wait_for_kick(ctx, libc::SYS_pause, [0; 6]),
        };
        if r? {
            ctx.proc().signals().thread(tid).waiting = 0;
            return Err(Errno::EAGAIN);
        }
    }
}
