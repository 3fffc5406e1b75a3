//! Host signals sent to km (Ctrl-C, kill, SIGWINCH, timers) become the
//! payload's. Every km thread blocks them; one thread waits until one is
//! pending (a signalfd, which does not take it) and posts each to the
//! payload with the host's siginfo. Between signals the same thread
//! re-bases the vDSO clock when due.
//!
//! A process whose only thread has not needed the forwarder yet runs
//! without it (most forked children, and most exec'd programs, end before
//! they would): the thread's vCPU then runs with the forwarded signals
//! open (KVM_SET_SIGNAL_MASK), so one sent to the process ends KVM_RUN
//! and the thread starts the forwarder, which takes it; so does a kick
//! from a host timer when the vDSO clock is due for a re-base, and the
//! thread's first blocking call, new thread or timer (`start_deferred`).
//! A thread less to create and, above all, to wait for at the end: a
//! process is gone for its parent only once every thread has been
//! scheduled to exit.
//!
//! A vCPU thread whose blocking call has returned takes them too, before
//! the payload sees the result (`take_pending`): natively a signal sent to
//! a group is pending in every member before any of them acts on it, so
//! cat in `sleep | cat` is killed by Ctrl-C, never sees sleep's end of
//! file first. Both take and post under one lock, so no signal the host
//! holds for km is between the host and the payload while a vCPU thread
//! looks: it is still the host's (and taken now) or already posted.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::SigInfo;
use crate::device::Vcpu;
use crate::guest::clock::Clock;
use crate::kick::kick_signal;
use crate::process::{end, ExitStatus, Process};

/// Signals km keeps for itself: its own faults (km bugs must not be
/// mistaken for the payload's), the kick, glibc's two internal ones, and
/// the two that cannot be caught.
fn kept_by_km(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP | libc::SIGKILL | libc::SIGSTOP
    ) || sig == kick_signal()
        || (32..libc::SIGRTMIN()).contains(&sig)
}

/// The set the forwarding thread waits for.
fn forwarded() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in (1..=libc::SIGRTMAX()).filter(|s| !kept_by_km(*s)) {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks the forwarded signals in the calling thread, and so in every
/// thread it creates afterwards. Call first thing in main.
///
/// SIGSYS stays open: the seccomp filter raises it in the thread whose
/// call it refused, and a blocked one would kill km without its report
/// (`crate::seccomp` passes any other SIGSYS on to the forwarding thread).
pub fn block_in_this_thread() {
    let mut set = forwarded();
    // SAFETY: sigdelset edits our local set; pthread_sigmask reads it.
    unsafe {
        libc::sigdelset(&mut set, libc::SIGSYS);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Blocks every signal but km's own faults and SIGSYS in the calling
/// (service) thread, so neither payload signals nor kicks land in it.
pub fn block_all_in_this_thread() {
    // SAFETY: sigfillset/sigdelset initialise a local set; pthread_sigmask
    // reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGTRAP, libc::SIGSYS] {
            libc::sigdelset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Held while host signals are taken and posted.
static TAKING: Mutex<()> = Mutex::new(());

/// Holds off the taking of host signals (across a host fork: the child
/// must not inherit the lock held by the forwarder, which it lacks).
pub fn hold() -> std::sync::MutexGuard<'static, ()> {
    crate::process::lock(&TAKING)
}

/// Takes every forwarded signal pending for the process or the calling
/// thread from the host and posts it to the payload.
pub fn take_pending(proc: &Process) {
    let set = forwarded();
    let _taking = hold();
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    loop {
        // SAFETY: a zeroed siginfo_t is valid; sigtimedwait fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set`, `info` and `zero` are ours for the call.
        if unsafe { libc::sigtimedwait(&set, &mut info, &zero) } <= 0 {
            return;
        }
        proc.post_host(SigInfo::from_host(&info));
    }
}

/// A signalfd for the forwarded signals, in km's fd range: readable while
/// one is pending for the process or the thread that polls it.
fn signal_fd() -> std::io::Result<RawFd> {
    let set = forwarded();
    // SAFETY: signalfd reads the set and returns a new fd.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    crate::fds::privatize(fd)
}

/// Starts the forwarding thread, which also keeps `clock` (if the vDSO
/// clock is on). Nothing waits for it to run: signals stay pending until
/// it takes them, and what needs its tid waits for it (`process`).
pub fn start(proc: Arc<Process>, mut clock: Option<Clock>) -> std::io::Result<()> {
    let fd = signal_fd()?;
    // A forked child has the parent's number until its own thread runs.
    crate::process::set_forwarder_tid(0);
    std::thread::Builder::new().name("km-signals".into()).stack_size(256 << 10).spawn(move || {
        block_all_in_this_thread();
        // Taken by sigtimedwait here, so blocked (a refused call of this
        // thread's then kills km without the report).
        // SAFETY: sigemptyset/sigaddset fill a local set; pthread_sigmask reads it.
        unsafe {
            let mut sys: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut sys);
            libc::sigaddset(&mut sys, libc::SIGSYS);
            libc::pthread_sigmask(libc::SIG_BLOCK, &sys, std::ptr::null_mut());
        }
        // SAFETY: gettid has no arguments.
        let tid = unsafe { libc::gettid() };
        crate::process::set_forwarder_tid(tid);
        // A SIGSYS from outside that came before the tid was known.
        if SIGSYS_WAITING.swap(false, Ordering::SeqCst) {
            // SAFETY: sends SIGSYS to this thread, which blocks it and
            // takes it below like any other.
            unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGSYS) };
        }
        loop {
            // Rounded up: a timeout cut to 0 ms before the clock is due would spin.
            let timeout =
                clock.as_ref().map_or(-1, |c| c.until_due().as_micros().div_ceil(1000).min(i32::MAX as u128) as i32);
            let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: polls one pollfd of ours; -1 waits for ever.
            if unsafe { libc::poll(&mut p, 1, timeout) } > 0 {
                take_pending(&proc);
            }
            if let Some(c) = clock.as_mut() {
                c.refresh_if_due();
            }
        }
    })?;
    Ok(())
}

/// The forwarder of a process that runs without it so far.
struct Deferred {
    proc: Arc<Process>,
    clock: Option<Clock>,
    /// The host timer that kicks the thread when the clock is due.
    timer: Option<usize>,
}

static DEFERRED: Mutex<Option<Deferred>> = Mutex::new(None);
/// Whether `DEFERRED` holds one: the run loop's cheap test.
static IS_DEFERRED: AtomicBool = AtomicBool::new(false);
/// A SIGSYS from outside came while there was no forwarder to pass it to.
static SIGSYS_WAITING: AtomicBool = AtomicBool::new(false);

/// Lets the process's first thread (the caller, which runs `vcpu`) run
/// without the forwarder until it needs one; starts it now where the
/// device cannot end a run on a host signal.
pub fn start_later(proc: Arc<Process>, clock: Option<Clock>, vcpu: &mut dyn Vcpu) -> std::io::Result<()> {
    // A forked child's copy of a deferred parent's: its timer is not the
    // child's, and its clock's drop would blank the child's vDSO page.
    std::mem::forget(crate::process::lock(&DEFERRED).take());
    IS_DEFERRED.store(false, Ordering::SeqCst);
    SIGSYS_WAITING.store(false, Ordering::SeqCst);
    crate::process::set_forwarder_tid(0);
    // SAFETY: a zeroed sigset_t is valid; pthread_sigmask with a null new
    // set only reads this thread's mask into it.
    let mut open = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
        set
    };
    let forwarded = forwarded();
    for sig in 1..=libc::SIGRTMAX() {
        // SAFETY: both sets are initialised; sigismember/sigdelset only
        // read and edit them.
        unsafe {
            if libc::sigismember(&forwarded, sig) == 1 {
                libc::sigdelset(&mut open, sig);
            }
        }
    }
    let timer = match clock.as_ref().map(|c| clock_timer(c.until_due())).transpose() {
        Ok(timer) => timer,
        Err(_) => return start(proc, clock),
    };
    match vcpu.set_run_sigmask(Some(&open)) {
        Ok(true) => {}
        _ => {
            timer.into_iter().for_each(delete_timer);
            return start(proc, clock);
        }
    }
    *crate::process::lock(&DEFERRED) = Some(Deferred { proc, clock, timer });
    IS_DEFERRED.store(true, Ordering::SeqCst);
    Ok(())
}

/// True while the process runs without its forwarder.
pub fn is_deferred() -> bool {
    IS_DEFERRED.load(Ordering::SeqCst)
}

/// Starts the forwarder if the process runs without it: called by its
/// only thread, which runs `vcpu`, before it waits in the host, starts
/// another thread or needs the forwarder's tid, and whenever its run was
/// interrupted (a host signal, or the clock's timer).
pub fn start_deferred(vcpu: &mut dyn Vcpu) {
    if !IS_DEFERRED.load(Ordering::SeqCst) {
        return;
    }
    let Some(d) = crate::process::lock(&DEFERRED).take() else { return };
    IS_DEFERRED.store(false, Ordering::SeqCst);
    d.timer.into_iter().for_each(delete_timer);
    if let Err(e) = vcpu.set_run_sigmask(None) {
        end(ExitStatus::Signal(libc::SIGKILL, format!("cannot restore the vCPU's signal mask: {e}")));
    }
    if let Err(e) = start(d.proc, d.clock) {
        end(ExitStatus::Signal(libc::SIGKILL, format!("cannot start the signal forwarding thread: {e}")));
    }
}

/// For km's SIGSYS handler, on a SIGSYS from outside (km keeps SIGSYS open
/// for its filter's reports): passes it on to the forwarder, or leaves it
/// for the forwarder to take when it runs, kicking the only thread of a
/// process without one so that it starts it. Exactly one of this and the
/// starting forwarder takes the flag. Async-signal-safe.
pub fn sigsys_from_outside() {
    SIGSYS_WAITING.store(true, Ordering::SeqCst);
    match crate::process::forwarder_tid() {
        Some(tid) if SIGSYS_WAITING.swap(false, Ordering::SeqCst) => {
            // SAFETY: sends the signal on to km's own forwarding thread.
            unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGSYS) };
        }
        Some(_) => {}
        None if IS_DEFERRED.load(Ordering::SeqCst) => {
            // SAFETY: tgkill sends km's kick to the calling thread, whose
            // handler makes the current or next run return.
            unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), kick_signal()) };
        }
        None => {}
    }
}

/// A one-shot host timer that kicks the calling thread after `after`.
fn clock_timer(after: std::time::Duration) -> std::io::Result<usize> {
    // SAFETY: a zeroed sigevent is valid; the fields set are those of
    // SIGEV_THREAD_ID (the tid is in the union's first int).
    let mut ev: libc::sigevent = unsafe { std::mem::zeroed() };
    ev.sigev_notify = libc::SIGEV_THREAD_ID;
    ev.sigev_signo = kick_signal();
    // SAFETY: gettid has no arguments.
    ev.sigev_notify_thread_id = unsafe { libc::gettid() };
    let mut timer: libc::timer_t = std::ptr::null_mut();
    // SAFETY: timer_create reads `ev` and writes the new timer's id.
    if unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut ev, &mut timer) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // At least 1 ns: a zero value would disarm the timer.
    let at = after.max(std::time::Duration::from_nanos(1));
    let spec = libc::itimerspec {
        it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
        it_value: libc::timespec { tv_sec: at.as_secs() as libc::time_t, tv_nsec: at.subsec_nanos().into() },
    };
    // SAFETY: arms the timer just created with `spec`.
    if unsafe { libc::timer_settime(timer, 0, &spec, std::ptr::null_mut()) } != 0 {
        let e = std::io::Error::last_os_error();
        delete_timer(timer as usize);
        return Err(e);
    }
    Ok(timer as usize)
}

fn delete_timer(timer: usize) {
    // SAFETY: deletes a timer this process created and still owns.
    unsafe { libc::timer_delete(timer as libc::timer_t) };
}
