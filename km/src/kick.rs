//! Getting a vCPU thread's attention: wherever it is (in KVM_RUN, blocked
//! in a host call made for the payload, or about to enter either), a kick
//! makes it come back to its run loop promptly, without a lost wake-up.
//!
//! A kick sets the thread's `Attention` flag and sends it `KICK_SIGNAL`.
//! Host calls made for the payload go through `interruptible`, a small
//! assembly routine that tests the flag right before `syscall`; the kick
//! handler moves a thread caught between that test and the `syscall`
//! instruction to the routine's EINTR exit, and a call already in the
//! kernel ends with EINTR because the handler is installed without
//! SA_RESTART. For KVM_RUN the handler sets the vCPU's `immediate_exit`.
//! A kick consumed while the thread was between exits leaves its signal
//! pending: the run loop delivers it, and a blocking call checks for it
//! before it starts (`syscall::Ctx::blocking`).

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::errno::Errno;

/// The host signal that kicks a vCPU thread; km keeps it for itself, so a
/// payload never receives SIGRTMAX sent to km from outside.
pub fn kick_signal() -> i32 {
    libc::SIGRTMAX()
}

/// Set by whoever wants the thread's attention, cleared by the thread at
/// the top of its run loop before it looks at what changed.
#[derive(Debug, Default)]
pub struct Attention(AtomicU32);

impl Attention {
    pub fn raise(&self) {
        self.0.store(1, Ordering::SeqCst);
    }

    /// Clears the flag; true if it was set.
    pub fn take(&self) -> bool {
        self.0.swap(0, Ordering::SeqCst) != 0
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst) != 0
    }
}

/// Raises `attention` (the flag of host thread `tid` of this process) and
/// signals the thread, unless it is the caller, which will look anyway.
pub fn kick(tid: i32, attention: &Attention) {
    attention.raise();
    // SAFETY: gettid has no arguments; tgkill only sends a signal, and km
    // installed a handler for it in every thread that can receive it.
    unsafe {
        if libc::gettid() != tid {
            libc::syscall(libc::SYS_tgkill, std::process::id(), tid, kick_signal());
        }
    }
}

std::arch::global_asm!(
    ".globl km_interruptible",
    ".type km_interruptible, @function",
    "km_interruptible:",
    // rdi: &AtomicU32 flag, rsi: &[u64; 7] = [nr, a0..a5]
    "mov rcx, rdi",
    "mov r11, rsi",
    "mov rax, [r11]",
    "mov rdi, [r11 + 8]",
    "mov rsi, [r11 + 16]",
    "mov rdx, [r11 + 24]",
    "mov r10, [r11 + 32]",
    "mov r8, [r11 + 40]",
    "mov r9, [r11 + 48]",
    ".globl km_interruptible_check",
    "km_interruptible_check:",
    "cmp dword ptr [rcx], 0",
    "jne km_interruptible_cancel",
    "syscall",
    ".globl km_interruptible_done",
    "km_interruptible_done:",
    "ret",
    ".globl km_interruptible_cancel",
    "km_interruptible_cancel:",
    // -ERESTARTNOINTR, which no syscall returns to user space: `CANCELLED`.
    "mov rax, -513",
    "ret",
    ".size km_interruptible, . - km_interruptible",
);

extern "C" {
    fn km_interruptible(flag: *const AtomicU32, call: *const [u64; 7]) -> i64;
    fn km_interruptible_check();
    fn km_interruptible_done();
    fn km_interruptible_cancel();
}

/// What the cancel path returns: the call never reached the kernel.
const CANCELLED: i64 = -513;

/// Performs host syscall `nr` unless `attention` is raised before the
/// thread enters the kernel (None: the call was not made); a kick while it
/// waits in the kernel ends it with EINTR.
///
/// # Safety
/// As for `libc::syscall(nr, a...)`: the caller vouches for every pointer
/// among the arguments.
pub unsafe fn interruptible(attention: &Attention, nr: libc::c_long, a: [u64; 6]) -> Option<Result<u64, Errno>> {
    let call = [nr as u64, a[0], a[1], a[2], a[3], a[4], a[5]];
    // SAFETY: the routine reads the flag and the 7-word array (both alive
    // for the call) and makes one syscall, vouched for by our caller.
    let r = unsafe { km_interruptible(&attention.0, &call) };
    if r == CANCELLED {
        None
    } else if (-4095..0).contains(&r) {
        Some(Err(Errno::from_raw(-r as i32)))
    } else {
        Some(Ok(r as u64))
    }
}

thread_local! {
    /// The running vCPU's `immediate_exit` byte, for the kick handler.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

/// Tells the kick handler where this thread's vCPU keeps `immediate_exit`.
///
/// # Safety
/// `byte` must stay valid (the vCPU's kvm_run mapping) until the thread
/// ends or registers another.
pub unsafe fn register_immediate_exit(byte: *mut u8) {
    IMMEDIATE_EXIT.with(|c| c.set(byte));
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid ucontext_t to an SA_SIGINFO handler;
    // only this thread's saved rip is read and changed.
    let rip = unsafe { &mut (*(uc as *mut libc::ucontext_t)).uc_mcontext.gregs[libc::REG_RIP as usize] };
    let (check, done) =
        (km_interruptible_check as *const () as usize as i64, km_interruptible_done as *const () as usize as i64);
    if (check..done).contains(rip) {
        *rip = km_interruptible_cancel as *const () as usize as i64;
    }
    let byte = IMMEDIATE_EXIT.with(|c| c.get());
    if !byte.is_null() {
        // SAFETY: registered by this thread as its live kvm_run byte; KVM
        // reads it at the next entry.
        unsafe { byte.write_volatile(1) };
    }
}

/// Installs the kick handler (process-wide). Call before any vCPU thread
/// starts.
pub fn install() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is valid; the handler only touches its own
    // thread's ucontext and thread-local state, which is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_kick as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigfillset(&mut sa.sa_mask);
        if libc::sigaction(kick_signal(), &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // A km that exec'd this one blocked kicks across the exec (see
    // `set_blocked`); one left pending lands harmlessly now.
    set_blocked(false);
    Ok(())
}

/// Blocks or unblocks the kick in the calling thread. Blocked across a
/// host execve: a kick pending then would otherwise kill the new km,
/// which starts with the default disposition.
pub fn set_blocked(blocked: bool) {
    // SAFETY: sigemptyset/sigaddset fill a local set; pthread_sigmask
    // reads it and changes only this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, kick_signal());
        let how = if blocked { libc::SIG_BLOCK } else { libc::SIG_UNBLOCK };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}
