//! fork, vfork and clone of a new process. Each payload process has its
//! own km and its own VM: km forks on the host, so the child km has a
//! copy-on-write copy of payload memory (at the same addresses) and of the
//! monitor area with the guest page tables, and builds a new VM over it
//! that resumes the forking thread, as the only thread, with rax = 0.
//!
//! CLONE_VM cannot share memory between two VMs: a clone with CLONE_VM
//! (and without CLONE_THREAD) is a fork whose parent waits, as for
//! CLONE_VFORK, until the child execs or exits. A child that exits
//! without exec writes the pages it changed back into its parent, which
//! is what the parent of a vfork sees on Linux (glibc's posix_spawn reads
//! a failed exec's errno so): the pages mapped only in the child (per
//! /proc/self/pagemap) are those it wrote, provided the parent had one
//! thread, so that nobody else changed the parent's copy meanwhile. Writes
//! before a successful exec are not seen.

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};

use kvm_bindings::kvm_regs;
use libc::*;
use nix::errno::Errno;

use crate::device::{self, Hypervisor};
use crate::guest::cpu;
use crate::guest::{clock, vdso};
use crate::limits::Limits;
use crate::mem::{copy, AddressSpace, Exclusive, GuestRange};
use crate::process::{end, lock, ExitStatus, Process};
use crate::signal::frame::{fx, StackT, FXSAVE_SIZE};
use crate::signal::{forward, Signals};
use crate::syscall::{Ctx, Ret};
use crate::thread::Thread;

/// The clone arguments of a new process.
pub struct ForkArgs {
    pub flags: u64,
    /// The child's stack pointer, 0 to keep the parent's.
    pub stack: u64,
    pub parent_tid: u64,
    pub child_tid: u64,
    pub tls: u64,
    /// Where CLONE_PIDFD stores the child's pidfd.
    pub pidfd: u64,
}

/// Flags km honours for a new process; the low byte is the exit signal.
const PROCESS_FLAGS: u64 = (CLONE_VM
    | CLONE_VFORK
    | CLONE_SETTLS
    | CLONE_PARENT_SETTID
    | CLONE_CHILD_SETTID
    | CLONE_CHILD_CLEARTID
    | CLONE_DETACHED
    | CLONE_PIDFD) as u64;

/// What the child starts from.
struct ChildState {
    regs: kvm_regs,
    fs_base: u64,
    gs_base: u64,
    fpu: [u8; FXSAVE_SIZE],
    mask: u64,
    altstack: StackT,
    clear_child_tid: u64,
    set_child_tid: u64,
    /// The write end of the pipe a vfork parent waits on.
    vfork_fd: Option<RawFd>,
    /// For a CLONE_VM child of a one-thread parent: the parent and its
    /// writable ranges, for `write_back`.
    shared: Option<SharedVm>,
}

struct SharedVm {
    parent: pid_t,
    ranges: Vec<(u64, u64)>,
}

/// Set in a CLONE_VM child until it execs (the host exec drops it) or
/// exits (see `write_back`).
static SHARED: Mutex<Option<SharedVm>> = Mutex::new(None);

/// Flags that name something km cannot do for a process: the name for
/// the one-time report.
fn unsupported(flags: u64) -> Option<&'static str> {
    let named: [(c_int, &str); 6] = [
        (CLONE_FS, "clone of a process with CLONE_FS"),
        (CLONE_FILES, "clone of a process with CLONE_FILES"),
        (CLONE_SIGHAND, "clone of a process with CLONE_SIGHAND"),
        (CLONE_PARENT, "clone of a process with CLONE_PARENT"),
        (CLONE_PTRACE, "clone of a process with CLONE_PTRACE"),
        (CLONE_UNTRACED, "clone of a process with CLONE_UNTRACED"),
    ];
    if let Some((_, name)) = named.iter().find(|(f, _)| flags & *f as u64 != 0) {
        return Some(name);
    }
    if flags & !PROCESS_FLAGS & !0xff != 0 {
        return Some("clone of a process with namespace or other flags");
    }
    if flags & 0xff != SIGCHLD as u64 {
        return Some("clone of a process with an exit signal other than SIGCHLD");
    }
    None
}

pub fn fork(ctx: &mut Ctx, c: ForkArgs) -> Ret {
    let has = |f: c_int| c.flags & f as u64 != 0;
    // As Linux: shared handlers need shared memory.
    if has(CLONE_SIGHAND) && !has(CLONE_VM) {
        return Err(Errno::EINVAL);
    }
    if let Some(name) = unsupported(c.flags) {
        if ctx.proc().first_feature_report(name) {
            crate::diag::line(format_args!("not supported: {name}"));
        }
        return Err(Errno::EINVAL);
    }
    if has(CLONE_PARENT_SETTID) {
        GuestRange::of::<i32>(c.parent_tid)?;
    }
    if has(CLONE_CHILD_SETTID) || has(CLONE_CHILD_CLEARTID) {
        GuestRange::of::<i32>(c.child_tid)?;
    }
    // As Linux: a pidfd is always close-on-exec, so not with CLONE_DETACHED.
    if has(CLONE_PIDFD) && has(CLONE_DETACHED) {
        return Err(Errno::EINVAL);
    }
    let pidfd_at = if has(CLONE_PIDFD) { Some(GuestRange::of::<i32>(c.pidfd)?) } else { None };
    if has(CLONE_SETTLS) && c.tls >= crate::syscall::TASK_SIZE_MAX {
        return Err(Errno::EPERM);
    }
    let device = |e: device::DeviceError| {
        tracing::error!(target: "thread", "fork: {e}");
        Errno::EAGAIN
    };
    let fpu = match ctx.t.fpu_restore {
        Some(image) => image,
        None => save_fpu(ctx).map_err(device)?,
    };
    let sregs = ctx.t.vcpu.sregs().map_err(device)?;
    let mut regs = *ctx.regs;
    regs.rax = 0;
    if c.stack != 0 {
        regs.rsp = c.stack;
    }
    let wait = has(CLONE_VFORK) || has(CLONE_VM);
    let pipe = if wait { Some(vfork_pipe()?) } else { None };
    let tid = ctx.tid();
    let mut state = ChildState {
        regs,
        fs_base: if has(CLONE_SETTLS) { c.tls } else { sregs.fs.base },
        gs_base: sregs.gs.base,
        fpu,
        mask: ctx.proc().signals().thread(tid).mask,
        altstack: ctx.t.altstack,
        clear_child_tid: if has(CLONE_CHILD_CLEARTID) { c.child_tid } else { 0 },
        set_child_tid: if has(CLONE_CHILD_SETTID) { c.child_tid } else { 0 },
        vfork_fd: pipe.map(|p| p[1]),
        shared: None,
    };
    let proc = ctx.t.proc.clone();
    // What the child copies must be consistent, and no lock it needs may be
    // held by a thread that the fork leaves behind: as an atfork handler
    // would, take them across the host fork (glibc's fork does the same
    // for malloc).
    // Taken first: whoever takes host signals then takes `signals`.
    let taking = forward::hold();
    // No host mapping change may be in flight while the host copies memory.
    let space = proc.space.exclusive();
    let signals = proc.signals();
    let limits = lock(&proc.limits);
    let fdtab = crate::procfs::fdtab::hold();
    if has(CLONE_VM) && signals.threads.len() == 1 {
        // SAFETY: getpid has no arguments.
        state.shared = Some(SharedVm { parent: unsafe { libc::getpid() }, ranges: space.writable() });
    }
    // SAFETY: fork duplicates only the calling thread; the child touches
    // nothing another thread could have left half-changed: the locks above,
    // diag's and the end's are held across it, and malloc's by glibc.
    let pid = crate::process::unless_ending(|| crate::diag::holding(|| unsafe { libc::fork() }));
    if pid == 0 {
        drop(taking);
        child(&proc, space, signals, limits, fdtab, state);
    }
    let err = Errno::last();
    drop((space, signals, limits, fdtab, taking));
    if let Some([read_end, write_end]) = pipe {
        close(write_end);
        if pid > 0 {
            wait_for_release(read_end);
        }
        close(read_end);
    }
    if pid < 0 {
        return Err(err);
    }
    if has(CLONE_PARENT_SETTID) {
        // Stored in the parent's memory only, as Linux does for a process.
        let _ = GuestRange::of::<i32>(c.parent_tid).and_then(|r| copy::write_obj(r, &pid));
    }
    if let Some(at) = pidfd_at {
        // The host's pidfd of the child km, made while the child still
        // builds its VM, long before its payload can end (and, with
        // SIGCHLD ignored, be reaped).
        // SAFETY: pidfd_open takes two integers and returns a new fd.
        let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = if r < 0 { Err(Errno::last()) } else { Ok(r as u64) };
        let fd = crate::syscall::new_payload_fd(fd)? as i32;
        copy::write_obj(at, &fd)?;
    }
    Ok(pid as u64)
}

/// The FPU state of the calling thread, saved by the guest itself on the
/// payload's stack (KVM_GET_FPU does not reach it on PVM): the
/// x87 and SSE state. The upper halves of the AVX registers are not in
/// it: the child starts with them clear (fork is a function call, after
/// which the ABI leaves no vector register live).
fn save_fpu(ctx: &mut Ctx) -> device::Result<[u8; FXSAVE_SIZE]> {
    let now = ctx.t.vcpu.regs()?;
    // Below the red zone of the caller's stack, where a signal frame would
    // go: payload memory the stub can write (a stack it cannot write makes
    // the fork fail, as a signal there would fail).
    let at = now.rsp.wrapping_sub(128 + FXSAVE_SIZE as u64) & !63;
    let unusable = |e| device::DeviceError::Unsupported(format!("no room for the FPU image below rsp: {e}"));
    let range = GuestRange::new(at, FXSAVE_SIZE as u64).map_err(unusable)?;
    ctx.t.vcpu.set_regs(&kvm_regs { rip: cpu::FPU_SAVE, rax: at, ..now })?;
    loop {
        match ctx.t.vcpu.run()? {
            device::Exit::Syscall => break,
            // A kick for this thread: the signal stays pending for later.
            // A host signal with no forwarder yet would end every run.
            device::Exit::Interrupted => crate::signal::forward::start_deferred(&mut *ctx.t.vcpu),
            other => return Err(device::DeviceError::Unsupported(format!("FPU save stub: {other:?}"))),
        }
    }
    // The stub's syscall left the vCPU where the payload's syscall had it.
    ctx.t.vcpu.set_regs(&now)?;
    let mut image = [0u8; FXSAVE_SIZE];
    copy::read_bytes(range, &mut image).map_err(unusable)?;
    // The stub's own store: anything else is a broken fork, not a state to load.
    if !fx::valid(&image) {
        return Err(device::DeviceError::Unsupported("the FPU save stub stored an invalid image".into()));
    }
    Ok(image)
}

/// A close-on-exec pipe in km's fd range: the vfork child holds the write
/// end until it execs or exits, which the parent sees as end of file.
fn vfork_pipe() -> Result<[RawFd; 2], Errno> {
    let mut p = [0; 2];
    // SAFETY: pipe2 writes two fds into `p`.
    if unsafe { libc::pipe2(p.as_mut_ptr(), O_CLOEXEC) } != 0 {
        return Err(Errno::last());
    }
    let mut out = [0; 2];
    for (i, fd) in p.into_iter().enumerate() {
        match crate::fds::privatize(fd) {
            Ok(high) => out[i] = high,
            Err(_) => {
                p[i..].iter().for_each(|&f| close(f));
                out[..i].iter().for_each(|&f| close(f));
                return Err(Errno::EMFILE);
            }
        }
    }
    Ok(out)
}

fn close(fd: RawFd) {
    // SAFETY: `fd` is one of km's own pipe fds, closed once.
    unsafe { libc::close(fd) };
}

/// Waits for the vfork child to exec or exit. Like Linux's vfork wait it
/// cannot be interrupted: the parent's signals wait until it returns.
fn wait_for_release(fd: RawFd) {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: reads at most one byte into `b`.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        if n == 0 || (n < 0 && Errno::last() != Errno::EINTR) {
            return;
        }
    }
}

/// The child km: a new VM over the copied memory, then the payload's
/// thread runs in it. Never returns to the parent's frames.
fn child(
    old: &Arc<Process>,
    space: Exclusive<'_>,
    signals: MutexGuard<Signals>,
    limits: MutexGuard<Limits>,
    fdtab: crate::procfs::fdtab::Held,
    mut state: ChildState,
) -> ! {
    // SAFETY: the parent's vCPU mapping is gone here (MADV_DONTFORK); the
    // kick handler must not write to it.
    unsafe { crate::kick::register_immediate_exit(std::ptr::null_mut()) };
    let mut keep: Vec<RawFd> = crate::diag::fd().into_iter().collect();
    keep.extend(state.vfork_fd);
    keep.extend(crate::procfs::host_fds());
    // The child's signalfds must not share readiness with the parent's.
    for s in signals.sigfds.live() {
        match s.renew(&fdtab.numbers_of(&s)) {
            Ok(private) => keep.push(private),
            Err(e) => end(ExitStatus::Signal(SIGKILL, format!("fork: cannot renew a signalfd: {e}"))),
        }
    }
    drop(fdtab);
    crate::fds::close_km_fds(&keep);
    if let Err(e) = crate::procfs::after_fork() {
        end(ExitStatus::Signal(SIGKILL, format!("fork: cannot open the child's own memory: {e}")));
    }
    let built = build(old, &space, &signals, &limits, &mut state);
    drop((space, signals, limits));
    match built {
        Ok((thread, regs)) => {
            thread.run(Some(regs));
            // The thread's tid is the pid: it ended with the process.
            loop {
                std::thread::park();
            }
        }
        Err(e) => end(ExitStatus::Signal(SIGKILL, format!("fork: cannot build the child's VM: {e:#}"))),
    }
}

fn build(
    old: &Arc<Process>,
    space: &AddressSpace,
    signals: &Signals,
    limits: &Limits,
    state: &mut ChildState,
) -> anyhow::Result<(Thread, kvm_regs)> {
    // Whatever a forking parent had set belongs to the parent's parent.
    *lock(&SHARED) = state.shared.take();
    let hv: Arc<dyn Hypervisor> = Arc::from(device::open(&crate::exec::launch().device)?);
    let space = space.fork_onto(hv.clone())?;
    let root = space.page_table_root();
    // Same device, same CPU: the parent's model holds.
    let (model, exe, startup) = (old.model.clone(), old.exe.clone(), old.startup.clone());
    let proc = Arc::new(Process::new(hv, model, space, exe, startup, old.strict, old.syscall_return));
    *lock(&proc.signals) = signals.forked(proc.pid);
    *lock(&proc.limits) = limits.clone();
    let (id, mut vcpu) = proc.new_vcpu()?;
    cpu::init_vcpu(&mut *vcpu, id, &proc.model, root, (state.fs_base, state.gs_base))?;
    cpu::set_user_regs(&mut *vcpu, &state.regs)?;
    // SAFETY: this is the forked child, before any thread of its own.
    let clock = clock::start(unsafe { vdso::vvar_in_child() }, &mut *vcpu);
    let mut thread = Thread::first(proc.clone(), id, vcpu);
    proc.signals().set_mask(thread.tid(), state.mask);
    thread.altstack = state.altstack;
    thread.clear_child_tid = state.clear_child_tid;
    thread.fpu_restore = Some(state.fpu);
    if state.set_child_tid != 0 {
        // A bad address is the payload's problem, as on Linux.
        let _ = GuestRange::of::<i32>(state.set_child_tid).and_then(|r| copy::write_obj(r, &proc.pid));
    }
    forward::start_later(proc, clock, &mut *thread.vcpu)?;
    Ok((thread, state.regs))
}

/// As a CLONE_VM child ends without exec: the pages it changed go back
/// into the parent (which waits for it), as if the memory were shared.
pub fn write_back() {
    let Some(shared) = lock(&SHARED).take() else { return };
    // SAFETY: getppid has no arguments.
    if unsafe { libc::getppid() } != shared.parent {
        return; // The parent is gone; whoever adopted us shares nothing.
    }
    let Ok(pagemap) = std::fs::File::open("/proc/self/pagemap") else { return };
    for (start, end) in shared.ranges {
        for (s, e) in exclusive_runs(&pagemap, start, end) {
            let local = iovec { iov_base: s as *mut c_void, iov_len: (e - s) as usize };
            let remote = local;
            // SAFETY: the kernel reads [s, e) of km's own memory (payload
            // memory, same addresses in the parent) and returns EFAULT
            // rather than faulting if the child unmapped part of it.
            unsafe { libc::process_vm_writev(shared.parent, &local, 1, &remote, 1, 0) };
        }
    }
}

/// Runs of pages in [start, end) that are present and mapped only here.
fn exclusive_runs(pagemap: &std::fs::File, start: u64, end: u64) -> Vec<(u64, u64)> {
    use std::os::unix::fs::FileExt;
    const PRESENT: u64 = 1 << 63;
    const EXCLUSIVE: u64 = 1 << 56;
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut page = start / 4096;
    let mut entries = [0u64; 512];
    while page < end / 4096 {
        let n = ((end / 4096 - page) as usize).min(entries.len());
        // SAFETY: the u64 array viewed as its bytes, for the read.
        let bytes = unsafe { std::slice::from_raw_parts_mut(entries.as_mut_ptr().cast::<u8>(), n * 8) };
        if pagemap.read_exact_at(bytes, page * 8).is_err() {
            break;
        }
        for (i, e) in entries[..n].iter().enumerate() {
            if e & (PRESENT | EXCLUSIVE) != PRESENT | EXCLUSIVE {
                continue;
            }
            let at = (page + i as u64) * 4096;
            match runs.last_mut() {
                Some(r) if r.1 == at => r.1 = at + 4096,
                _ => runs.push((at, at + 4096)),
            }
        }
        page += n as u64;
    }
    runs
}
