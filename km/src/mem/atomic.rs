//! A compare-and-exchange on a payload word that cannot kill km.
//!
//! Robust futexes need an atomic update of a payload word in place, which
//! `copy` (process_vm_*) cannot give. A plain atomic on the word would be
//! a load km makes of payload memory: a page another vCPU just unmapped or
//! made read-only, or a file page past EOF, would kill km with SIGSEGV or
//! SIGBUS. So the one instruction that touches the word lives in a small
//! assembly routine, and km's SIGSEGV/SIGBUS handler, when the fault's rip
//! is that instruction, resumes at the routine's fault exit, as the
//! kernel's exception table does for its own user accesses. Any other
//! fault is left to the handler that was there before (the Rust runtime's,
//! or the default: km dies of it).

use std::sync::atomic::{AtomicUsize, Ordering};

use nix::errno::Errno;

use super::GuestRange;

std::arch::global_asm!(
    ".globl km_guest_cmpxchg",
    ".type km_guest_cmpxchg, @function",
    "km_guest_cmpxchg:",
    // rdi: address, esi: expected, edx: new. Returns the value found
    // (zero-extended), or 1 << 32 if the access faulted.
    "mov eax, esi",
    ".globl km_guest_cmpxchg_access",
    "km_guest_cmpxchg_access:",
    "lock cmpxchg dword ptr [rdi], edx",
    "ret",
    ".globl km_guest_cmpxchg_fault",
    "km_guest_cmpxchg_fault:",
    "mov rax, 1",
    "shl rax, 32",
    "ret",
    ".size km_guest_cmpxchg, . - km_guest_cmpxchg",
);

extern "C" {
    fn km_guest_cmpxchg(addr: u64, expected: u32, new: u32) -> u64;
    fn km_guest_cmpxchg_access();
    fn km_guest_cmpxchg_fault();
}

/// Atomically replaces the u32 at the start of `word` with `new` if it
/// holds `expected`; returns the value it held. EFAULT if the word cannot
/// be written (unmapped, read-only, past the end of its file): as for the
/// kernel's futex_atomic_cmpxchg_inatomic, a failed compare still needs a
/// writable word.
pub fn cmpxchg_u32(word: GuestRange, expected: u32, new: u32) -> Result<u32, Errno> {
    let addr = word.addr();
    if !addr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    if word.len() < 4 {
        return Err(Errno::EFAULT);
    }
    // SAFETY: the word lies in the guest window (checked), which holds only
    // payload memory or km's PROT_NONE reservation, never km's own data; a
    // fault on it resumes at the fault exit (see `on_fault`).
    let r = unsafe { km_guest_cmpxchg(addr, expected, new) };
    u32::try_from(r).map_err(|_| Errno::EFAULT)
}

/// The handlers that were installed before ours, as raw sigaction structs
/// stored by signal number (SIGSEGV, SIGBUS).
static PREVIOUS: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

fn slot(sig: libc::c_int) -> usize {
    usize::from(sig == libc::SIGBUS)
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid ucontext_t to an SA_SIGINFO handler;
    // only this thread's saved rip is read and, for our routine, changed.
    let rip = unsafe { &mut (*(uc as *mut libc::ucontext_t)).uc_mcontext.gregs[libc::REG_RIP as usize] };
    // SAFETY: as above, `info` is the kernel's siginfo for this signal.
    let from_kernel = unsafe { (*info).si_code } > 0;
    if from_kernel && *rip == km_guest_cmpxchg_access as *const () as usize as i64 {
        *rip = km_guest_cmpxchg_fault as *const () as usize as i64;
        return;
    }
    // Not ours: put the previous handler back. A fault re-executes the
    // instruction and reaches it; a signal sent from outside is raised again.
    let prev = PREVIOUS[slot(sig)].load(Ordering::SeqCst) as *const libc::sigaction;
    // SAFETY: `prev` is the leaked sigaction saved by `install` (never
    // freed); sigaction and raise are async-signal-safe.
    unsafe {
        libc::sigaction(sig, prev, std::ptr::null_mut());
        if !from_kernel {
            libc::raise(sig);
        }
    }
}

/// Installs the fault handler for SIGSEGV and SIGBUS (process-wide),
/// keeping the previous ones for faults that are not the routine's. Call
/// before any vCPU thread starts.
pub fn install() -> std::io::Result<()> {
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: a zeroed sigaction is valid; the handler only reads its
        // siginfo and changes its own thread's rip, or reinstalls the saved
        // action. SA_ONSTACK keeps the Rust runtime's stack-overflow report
        // working on its alternate stacks.
        unsafe {
            let prev: &'static mut libc::sigaction = Box::leak(Box::new(std::mem::zeroed()));
            if libc::sigaction(sig, std::ptr::null(), prev) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            PREVIOUS[slot(sig)].store(prev as *const libc::sigaction as usize, Ordering::SeqCst);
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_fault as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}
