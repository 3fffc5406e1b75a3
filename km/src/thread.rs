//! A payload thread: one vCPU, run by one host thread whose tid is the
//! payload thread's tid. The run loop enters the guest, serves each exit
//! (a syscall, a fault, a kick) and delivers signals whenever the thread
//! is about to return to the payload, as Linux does on its way back to
//! user mode.

use std::sync::Arc;

use kvm_bindings::{kvm_fpu, kvm_regs};
use nix::errno::Errno;

use crate::device::{Exit, Fault, Vcpu};
use crate::guest::cpu::{self, SyscallReturn};
use crate::guest::layout::monitor;
use crate::guest::selectors::{USER_CS, USER_DS};
use crate::kick::{self, Attention};
use crate::mem::{copy, GuestRange};
use crate::process::{end, ExitStatus, Process};
use crate::signal::frame::{self, StackT, Trap, SS_AUTODISARM};
use crate::signal::{bit, code, Action, KSigaction, Pending, SigInfo, ThreadHandle, ThreadSignals, Tid, SA_NODEFER};
use crate::syscall::{self, Ctx, Restart};

pub struct Thread {
    pub proc: Arc<Process>,
    pub handle: Arc<ThreadHandle>,
    pub vcpu: Box<dyn Vcpu>,
    pub vcpu_id: u32,
    pub altstack: StackT,
    pub clear_child_tid: u64,
    pub robust_list: u64,
    /// FPU image rt_sigreturn took from a frame, loaded by the return stub
    /// at the next entry (or saved straight into the next signal's frame).
    pub fpu_restore: Option<[u8; frame::FXSAVE_SIZE]>,
    /// The mask to put back once rt_sigsuspend (or a call taking a
    /// temporary mask) has had its signal delivered.
    pub saved_mask: Option<u64>,
    /// The CPU fault behind a pending synchronous signal, for its frame and
    /// for km's report if it kills the payload.
    fault: Option<(i32, Trap, String)>,
    /// Set while this thread retries an access KVM could not back, with
    /// the file mappings hidden (see `AddressSpace::hide_files`).
    probing: bool,
}

/// How a new thread starts: its registers and segment bases.
pub struct Start {
    pub regs: kvm_regs,
    pub fs_base: u64,
    pub gs_base: u64,
    pub mask: u64,
    pub clear_child_tid: u64,
    /// Where to store the new tid before the thread runs (CLONE_PARENT_SETTID
    /// and CLONE_CHILD_SETTID), if anywhere.
    pub set_tid: [u64; 2],
}

/// The thread's flag and tid, made by the host thread that runs it.
fn register(proc: &Process, mask: u64) -> Arc<ThreadHandle> {
    // SAFETY: gettid has no arguments.
    let tid = unsafe { libc::gettid() };
    let handle = Arc::new(ThreadHandle { tid, attention: Attention::default() });
    let sig = ThreadSignals { mask, pending: Pending::default(), waiting: 0, handle: handle.clone() };
    proc.signals().threads.insert(tid, sig);
    handle
}

impl Thread {
    /// The first thread, run by km's main thread (so its tid is the pid).
    pub fn first(proc: Arc<Process>, vcpu_id: u32, vcpu: Box<dyn Vcpu>) -> Thread {
        let handle = register(&proc, 0);
        Thread::new(proc, handle, vcpu_id, vcpu)
    }

    fn new(proc: Arc<Process>, handle: Arc<ThreadHandle>, vcpu_id: u32, mut vcpu: Box<dyn Vcpu>) -> Thread {
        // SAFETY: the byte lives in the vCPU's kvm_run mapping, which lives
        // as long as the vCPU; the thread re-registers for every vCPU it runs.
        unsafe { kick::register_immediate_exit(vcpu.immediate_exit()) };
        Thread {
            proc,
            handle,
            vcpu,
            vcpu_id,
            altstack: StackT::disabled(),
            clear_child_tid: 0,
            robust_list: 0,
            saved_mask: None,
            fault: None,
            fpu_restore: None,
            probing: false,
        }
    }

    pub fn tid(&self) -> Tid {
        self.handle.tid
    }

    /// Starts a thread (clone with CLONE_THREAD) on an idle worker, else
    /// on a new vCPU in a new host thread, and returns its tid once it
    /// exists.
    pub fn spawn(proc: &Arc<Process>, start: Start) -> Result<Tid, Errno> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let mut job = (start, reply);
        while let Some(worker) = proc.idle_worker() {
            // A worker is gone only if its thread died with km ending.
            match worker.send(job) {
                Ok(()) => return answer.recv().map_err(|_| Errno::EAGAIN)?,
                Err(e) => job = e.0,
            }
        }
        let (id, mut vcpu) = proc.new_vcpu().map_err(|e| {
            tracing::warn!(target: "thread", "cannot create a vCPU: {e}");
            Errno::EAGAIN
        })?;
        if let Err(e) = cpu::init_vcpu(&mut *vcpu, id, &proc.model, proc.space().page_table_root(), (0, 0)) {
            tracing::warn!(target: "thread", "cannot set up vCPU {id}: {e}");
            return Err(Errno::EAGAIN);
        }
        let p = proc.clone();
        let spawned = std::thread::Builder::new().stack_size(256 << 10).spawn(move || worker(p, id, vcpu, Some(job)));
        match spawned {
            Ok(_) => answer.recv().map_err(|_| Errno::EAGAIN)?,
            Err(e) => {
                tracing::warn!(target: "thread", "cannot start a host thread: {e}");
                Err(Errno::EAGAIN)
            }
        }
    }

    /// Runs the payload thread until it exits (from `from` if given, else
    /// from the vCPU's registers); ends the process if it was the last one.
    pub fn run(mut self, from: Option<kvm_regs>) {
        let code = self.run_loop(from);
        drop(self.exit(code).0);
    }

    /// Runs from `user` if given, else from the vCPU's registers as they
    /// are; returns the thread's exit code.
    fn run_loop(&mut self, mut user: Option<kvm_regs>) -> i32 {
        // `user` is the state km must load before the next entry; `cpl0`
        // says the vCPU sits at CPL0 (the pad under VT-x/SVM, a fault stub).
        let mut cpl0 = false;
        loop {
            self.handle.attention.take();
            if user.is_none() && self.proc.signals().deliverable(self.tid()) {
                // Interrupted: deliver now unless the vCPU is inside km's
                // pad or a stub, which exit on their own in a moment (the
                // vDSO is payload code: it may never exit). Usually that is
                // the pad about to report a syscall: the signal came as the
                // call began, and the call, if it blocks, sees it first
                // (`Ctx::blocking`) as Linux's do.
                match self.vcpu.regs() {
                    Ok(r) if !monitor::in_code(r.rip) => user = Some(r),
                    Ok(_) => {}
                    Err(e) => end(broken(&e.to_string())),
                }
            }
            if let Some(u) = user.as_mut() {
                self.deliver(u);
            }
            if let Some(u) = user.take() {
                if let Err(e) = self.load(&u, cpl0) {
                    end(broken(&e.to_string()));
                }
                cpl0 = false;
            }
            if self.handle.attention.is_raised() {
                continue;
            }
            let exit = match self.vcpu.run() {
                Ok(exit) => exit,
                Err(e) => end(broken(&e.to_string())),
            };
            match exit {
                Exit::Syscall => {
                    self.end_probe();
                    let (mut u, how) = match self.syscall_entry() {
                        Ok(v) => v,
                        Err(e) => end(broken(&e.to_string())),
                    };
                    cpl0 = how == SyscallReturn::Sysret;
                    if let Some(code) = self.syscall(&mut u) {
                        return code;
                    }
                    user = Some(u);
                }
                Exit::Fault(f) => {
                    let mut u = match self.vcpu.regs() {
                        Ok(r) => r,
                        Err(e) => end(broken(&e.to_string())),
                    };
                    u.rip = f.rip;
                    u.rsp = f.rsp;
                    u.rflags = cpu::resume_rflags(f.rflags);
                    cpl0 = self.proc.hv.caps().faults_through_guest_idt;
                    let hidden = f.vector == 14 && self.proc.space().in_hidden_file(f.addr);
                    let probed = self.end_probe();
                    if (probed && hidden) || (!hidden && self.file_unbacked(&f)) {
                        self.past_eof(&f);
                    } else if !hidden {
                        self.fault(&f);
                    }
                    // Else another thread's probe hid the page: retry.
                    user = Some(u);
                }
                Exit::Unbacked => {
                    if self.probing || !self.proc.space().hide_files() {
                        self.end_probe();
                        end(ExitStatus::Signal(libc::SIGBUS, "guest access to memory km cannot back".into()));
                    }
                    self.probing = true;
                }
                // A host signal, or the vDSO clock due, with no forwarder yet.
                Exit::Interrupted => crate::signal::forward::start_deferred(&mut *self.vcpu),
                // `hlt` is privileged: at user level it is a #GP, so SIGSEGV.
                Exit::Halt => end(ExitStatus::Signal(libc::SIGSEGV, "hlt instruction".into())),
                Exit::Broken(why) => end(ExitStatus::Signal(libc::SIGSEGV, why)),
            }
        }
    }

    /// The payload's registers at a syscall exit, as the syscall returns
    /// to them: rip from rcx and rflags from r11, which syscall clobbers.
    /// Also says how the pad returns.
    fn syscall_entry(&mut self) -> crate::device::Result<(kvm_regs, SyscallReturn)> {
        let how = self.proc.syscall_return;
        let regs = self.vcpu.regs()?;
        let mut u = regs;
        u.rip = regs.rcx;
        u.rflags = cpu::resume_rflags(regs.r11);
        u.r11 = u.rflags;
        Ok((u, how))
    }

    /// Serves one syscall; Some(code) when the thread exits.
    fn syscall(&mut self, u: &mut kvm_regs) -> Option<i32> {
        // The kernel takes the number from eax alone (its syscall entry
        // reads an int): 0x1_0000_0027 is getpid there too.
        let (raw, nr) = (u.rax, u64::from(u.rax as u32));
        let args = [u.rdi, u.rsi, u.rdx, u.r10, u.r8, u.r9];
        let mut ctx = Ctx::new(self, u);
        let ret = syscall::dispatch(&mut ctx, nr, args);
        let (exit, thread_exit, interrupted) = (ctx.exit.take(), ctx.thread_exit, ctx.interrupted);
        if let Some(status) = exit {
            end(status);
        }
        if thread_exit.is_some() {
            return thread_exit;
        }
        let eintr = ret == -(libc::EINTR as i64) as u64;
        if interrupted.is_some_and(|how| eintr && self.restarts(how)) {
            // Back to the syscall instruction with the number in rax, as
            // Linux restarts: the frame of a handler run first saves this.
            u.rax = raw;
            u.rip = u.rip.wrapping_sub(2);
            u.rcx = u.rip;
        } else {
            u.rax = ret;
        }
        None
    }

    /// Whether a call interrupted by a kick starts again: always when no
    /// handler will run, else if it is restartable and SA_RESTART is set.
    fn restarts(&self, how: Restart) -> bool {
        match self.proc.signals().peek(self.tid()) {
            Some(Action::Handler(act)) => {
                how == Restart::Always || (how == Restart::IfSaRestart && act.flags & crate::signal::SA_RESTART != 0)
            }
            _ => true,
        }
    }

    /// Loads user state `u` into the vCPU. From CPL0 that is the pad's
    /// `sysretq` when rcx and r11 hold rip and rflags (every plain syscall
    /// return), else a switch of the segment registers from the host.
    fn load(&mut self, u: &kvm_regs, cpl0: bool) -> crate::device::Result<()> {
        if let Some(image) = self.fpu_restore.take() {
            if self.vcpu.load_fpu(&frame::fx::to_kvm_fpu(&image))? {
                return self.load(u, cpl0);
            }
            // The return stub loads the image, then iretq's to the state.
            let scratch = cpu::signal_scratch(self.vcpu_id);
            let iret = [u.rip, USER_CS.into(), u.rflags, u.rsp, USER_DS.into()];
            let mut staged = image.to_vec();
            staged.extend(iret.iter().flat_map(|v| v.to_le_bytes()));
            self.proc.space().write_monitor(scratch, &staged);
            let stub = kvm_regs { rip: cpu::SIGNAL_RETURN, rsp: scratch, ..*u };
            return self.load(&stub, cpl0);
        }
        if cpl0 {
            let sysret = self.proc.syscall_return == SyscallReturn::Sysret;
            if sysret && u.rcx == u.rip && u.r11 == u.rflags {
                let mut r = *u;
                r.rip = cpu::PAD_SYSRET;
                return self.vcpu.set_regs(&r);
            }
            cpu::enter_user_mode(&mut *self.vcpu)?;
        }
        self.vcpu.set_regs(u)
    }

    /// Acts on every signal the thread can take now: handlers get a frame
    /// each (stacked), default actions end or stop the process.
    fn deliver(&mut self, u: &mut kvm_regs) {
        let tid = self.tid();
        loop {
            let next = self.proc.signals().dequeue(tid);
            let Some((info, action)) = next else { break };
            let sig = info.signo();
            let fault = self.fault.take_if(|f| f.0 == sig);
            match action {
                Action::Ignore => {}
                Action::Terminate => {
                    end(ExitStatus::Signal(sig, fault.map(|f| f.2).unwrap_or_default()));
                }
                Action::Stop => stop(sig),
                Action::Handler(act) => {
                    let trap = fault.map(|f| f.1).unwrap_or_default();
                    if let Err(why) = self.setup_frame(u, &info, &act, trap) {
                        // Linux's force_sigsegv: SIGSEGV for the thread (its
                        // handler may run on an altstack); death if it was
                        // SIGSEGV's own frame that failed.
                        if sig == libc::SIGSEGV {
                            end(ExitStatus::Signal(libc::SIGSEGV, why));
                        }
                        self.force_sigsegv(why);
                    }
                }
            }
        }
        if let Some(m) = self.saved_mask.take() {
            self.proc.signals().set_mask(tid, m);
        }
    }

    /// Writes the frame and points the vCPU at the entry stub, which saves
    /// the FPU state into the frame and jumps to the handler.
    fn setup_frame(&mut self, u: &mut kvm_regs, info: &SigInfo, act: &KSigaction, trap: Trap) -> Result<(), String> {
        let sig = info.signo();
        let mask_now = self.proc.signals().thread(self.tid()).mask;
        let restore_mask = self.saved_mask.take().unwrap_or(mask_now);
        let mut f = frame::build(u, info, act, restore_mask, &self.altstack, trap);
        // Right after rt_sigreturn the interrupted FPU state is the image
        // km holds, not the vCPU's: it goes into the frame directly.
        let entry = match &self.fpu_restore {
            Some(image) => {
                let at = f.fpstate.wrapping_sub(f.sp) as usize;
                f.bytes[at..at + image.len()].copy_from_slice(image);
                cpu::SIGNAL_ENTRY_NO_SAVE
            }
            None => cpu::SIGNAL_ENTRY,
        };
        // Nothing changes until the frame is written: a failure leaves the
        // thread as it was for the SIGSEGV that follows.
        GuestRange::new(f.sp, f.bytes.len() as u64)
            .and_then(|r| copy::write_bytes(r, &f.bytes))
            .map_err(|_| format!("cannot write the frame for signal {sig} at {:#x}", f.sp))?;
        self.fpu_restore = None;
        let mut mask = mask_now | act.mask;
        if act.flags & SA_NODEFER == 0 {
            mask |= bit(sig);
        }
        self.proc.signals().set_mask(self.tid(), mask);
        if self.altstack.flags & SS_AUTODISARM != 0 && self.altstack.on_stack(f.sp) {
            self.altstack = StackT::disabled();
        }
        *u = kvm_regs { rip: entry, rax: f.fpstate, r11: f.regs.rip, ..f.regs };
        Ok(())
    }

    /// SIGSEGV for this thread, as Linux's force_sig(SIGSEGV) (si_code
    /// SI_KERNEL): a handler runs if there is one, blocked or ignored it
    /// kills; `why` is km's report if it kills.
    pub fn force_sigsegv(&mut self, why: String) {
        self.fault = Some((libc::SIGSEGV, Trap::default(), why));
        self.proc.signals().force(self.tid(), SigInfo::kernel(libc::SIGSEGV));
    }

    /// Puts hidden file mappings back; true if this thread was probing.
    fn end_probe(&mut self) -> bool {
        if !std::mem::take(&mut self.probing) {
            return false;
        }
        self.proc.space().show_files();
        true
    }

    /// A read or write of a file page past EOF: SIGBUS, BUS_ADRERR.
    fn past_eof(&mut self, f: &Fault) {
        let trap = Trap { trapno: 14, err: f.error_code, cr2: f.addr };
        let why = format!("bus error: access at {:#x} past the end of a mapped file at rip {:#x}", f.addr, f.rip);
        self.fault = Some((libc::SIGBUS, trap, why));
        self.proc.signals().force(self.tid(), SigInfo::fault(libc::SIGBUS, code::BUS_ADRERR, f.addr));
    }

    /// Whether `f` is a #PF on an access the payload's file mapping allows
    /// at a page the host cannot back (past the end of the file): kkm maps
    /// guest pages from km's own and reports a page it cannot get as the
    /// #PF itself (KVM fails KVM_RUN instead: `Exit::Unbacked`).
    fn file_unbacked(&self, f: &Fault) -> bool {
        let (write, fetch) = (f.error_code & 2 != 0, f.error_code & 0x10 != 0);
        if f.vector != 14 || !self.proc.space().file_allows(f.addr, write, fetch) {
            return false;
        }
        let mut byte = [0u8];
        GuestRange::new(f.addr, 1).and_then(|r| copy::read_bytes(r, &mut byte)).is_err()
    }

    /// Turns a CPU fault into its signal, forced as Linux forces it.
    fn fault(&mut self, f: &Fault) {
        let fpu = if matches!(f.vector, 16 | 19) { self.vcpu.fpu().ok() } else { None };
        // Linux says ACCERR where the payload has a mapping (even a
        // PROT_NONE page, absent from the guest tables) and MAPERR where it
        // has none, such as km's pages in the monitor area; the vDSO pages
        // are mappings of the payload's as on Linux.
        let page = f.addr & !0xfff;
        let mapped = f.vector == 14 && (monitor::in_vdso(page) || self.proc.space().prot_at(page).is_some());
        let (sig, code, addr) = fault_info(f, fpu.as_ref(), mapped);
        let trap = Trap { trapno: f.vector.into(), err: f.error_code, cr2: f.addr };
        self.fault = Some((sig, trap, describe(f)));
        self.proc.signals().force(self.tid(), SigInfo::fault(sig, code, addr));
    }

    /// The thread ends: its tid word is cleared and waiters woken, its
    /// robust futexes released. The last thread ends the process with its
    /// code; otherwise the vCPU comes back for the host thread to reuse,
    /// with true if the host thread must end first. That is so once the
    /// payload has used PI futexes: the host kernel may hold PI state owned
    /// by this host thread (a PI mutex it locked and a waiter blocked on),
    /// and hands such a lock to its waiter only when the owner exits, as
    /// Linux does for a dying thread (musl keeps private robust mutexes off
    /// the kernel's robust list, so no walk of km's would find them).
    fn exit(self, code: i32) -> (Box<dyn Vcpu>, bool) {
        let tid = self.tid();
        crate::futex::release_robust_list(tid, self.robust_list);
        // A stored pointer is checked again now; one that is not payload
        // memory is skipped, as Linux skips a failing put_user.
        let tid_word = GuestRange::of::<u32>(self.clear_child_tid);
        if self.clear_child_tid != 0 && tid_word.and_then(|r| copy::write_obj(r, &0u32)).is_ok() {
            crate::futex::wake(self.clear_child_tid, 1);
        }
        let last = {
            let mut s = self.proc.signals();
            s.threads.remove(&tid);
            // Its own pending signals go with it.
            s.sync_sigfds();
            s.threads.is_empty()
        };
        if last {
            end(ExitStatus::Code(code));
        }
        if tid == self.proc.pid {
            // km's main thread must not return: that would end km while
            // other payload threads still run. It waits for the end (so
            // PI futexes it owned pass to their waiters only then).
            drop(self);
            loop {
                std::thread::park();
            }
        }
        let end_host_thread = self.proc.pi_futexes_used();
        (self.vcpu, end_host_thread)
    }
}

type Job = (Start, std::sync::mpsc::SyncSender<Result<Tid, Errno>>);

/// A host thread running payload threads on vCPU `id`, one after another:
/// between them (and first, without a `job`) it waits, idle, for the next
/// clone.
fn worker(proc: Arc<Process>, id: u32, mut vcpu: Box<dyn Vcpu>, mut job: Option<Job>) {
    loop {
        let (start, reply) = match job.take() {
            Some(job) => job,
            None => {
                let (tx, rx) = std::sync::mpsc::sync_channel(0);
                proc.add_idle_worker(tx);
                match rx.recv() {
                    Ok(next) => next,
                    Err(_) => return,
                }
            }
        };
        // A reused vCPU keeps its tables, MSRs and CPUID; only the thread's
        // own state is new (its FPU is reset at the first entry, below).
        let ready = cpu::set_thread_state(&mut *vcpu, &start.regs, start.fs_base, start.gs_base);
        match ready {
            Ok(()) => {
                let handle = register(&proc, start.mask);
                let tid = handle.tid;
                for at in start.set_tid.into_iter().filter(|&a| a != 0) {
                    // A bad address is the payload's problem, as on Linux.
                    let _ = GuestRange::of::<Tid>(at).and_then(|r| copy::write_obj(r, &tid));
                }
                let mut t = Thread::new(proc.clone(), handle, id, vcpu);
                t.clear_child_tid = start.clear_child_tid;
                // The guest loads a clean FPU as it enters (KVM_SET_FPU
                // does not reach the payload's FPU on PVM).
                t.fpu_restore = Some(frame::fx::initial());
                let _ = reply.send(Ok(tid));
                let code = t.run_loop(Some(start.regs));
                let (v, end_host_thread) = t.exit(code);
                if end_host_thread {
                    // The vCPU waits for the next thread in a new host
                    // thread; this one ends, and its PI futexes with it.
                    let p = proc.clone();
                    let spawned =
                        std::thread::Builder::new().stack_size(256 << 10).spawn(move || worker(p, id, v, None));
                    if let Err(e) = spawned {
                        tracing::warn!(target: "thread", "cannot start a host thread for vCPU {id}: {e}");
                    }
                    return;
                }
                vcpu = v;
            }
            Err(e) => {
                tracing::warn!(target: "thread", "cannot set up vCPU {id}: {e}");
                let _ = reply.send(Err(Errno::EAGAIN));
            }
        }
    }
}

/// The signal, si_code and si_addr Linux gives a user-mode CPU exception;
/// `mapped` says a page fault's address lies in a mapping of the payload's.
pub fn fault_info(f: &Fault, fpu: Option<&kvm_fpu>, mapped: bool) -> (i32, i32, u64) {
    use code::*;
    match f.vector {
        0 => (libc::SIGFPE, FPE_INTDIV, f.rip),
        1 => (libc::SIGTRAP, TRAP_TRACE, f.rip),
        3 => (libc::SIGTRAP, SI_KERNEL, 0),
        6 => (libc::SIGILL, ILL_ILLOPN, f.rip),
        14 => (libc::SIGSEGV, if mapped { SEGV_ACCERR } else { SEGV_MAPERR }, f.addr),
        16 | 19 => {
            // The unmasked exception flags say which floating-point error.
            let status = match (f.vector, fpu) {
                (16, Some(p)) => u32::from(p.fsw & !p.fcw & 0x3f),
                (19, Some(p)) => p.mxcsr & !(p.mxcsr >> 7) & 0x3f,
                _ => 0,
            };
            let code = if status & 1 != 0 {
                FPE_FLTINV
            } else if status & 4 != 0 {
                FPE_FLTDIV
            } else if status & 8 != 0 {
                FPE_FLTOVF
            } else if status & 0x12 != 0 {
                FPE_FLTUND
            } else if status & 0x20 != 0 {
                FPE_FLTRES
            } else {
                SI_KERNEL
            };
            (libc::SIGFPE, code, f.rip)
        }
        17 => (libc::SIGBUS, BUS_ADRALN, f.addr),
        11 | 12 => (libc::SIGBUS, SI_KERNEL, 0),
        _ => (libc::SIGSEGV, SI_KERNEL, 0),
    }
}

/// The whole km stops by `sig`, as the payload's process would, so its
/// parent's wait reports that signal. Every km thread blocks the stop
/// signals for the forwarder; this one unblocks `sig` and sends it to
/// itself, so the kernel applies the default action (including dropping
/// it in an orphaned process group), then blocks it again.
fn stop(sig: i32) {
    // SAFETY: a local set for pthread_sigmask; tgkill sends to this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), sig);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn broken(why: &str) -> ExitStatus {
    ExitStatus::Signal(libc::SIGKILL, format!("vCPU failure: {why}"))
}

/// km's one-line description of a fault that kills the payload.
pub fn describe(f: &Fault) -> String {
    let what = match f.vector {
        0 => "divide error".to_string(),
        1 => "debug trap".to_string(),
        3 => "breakpoint".to_string(),
        6 => "invalid opcode".to_string(),
        13 => "general protection fault".to_string(),
        14 => {
            let access = if f.error_code & 0x10 != 0 {
                "execute"
            } else if f.error_code & 2 != 0 {
                "write"
            } else {
                "read"
            };
            let why = if f.error_code & 1 != 0 { "protection violation" } else { "unmapped address" };
            format!("page fault: {access} at {:#x} ({why})", f.addr)
        }
        v => format!("CPU exception {v} (error code {:#x})", f.error_code),
    };
    format!("{what} at rip {:#x}", f.rip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(vector: u8, error_code: u64) -> Fault {
        Fault { vector, error_code, addr: 0x1000, rip: 0x401000, rsp: 0, rflags: 0 }
    }

    #[test]
    fn faults_map_to_linux_siginfo() {
        assert_eq!(fault_info(&f(0, 0), None, false), (libc::SIGFPE, 1, 0x401000));
        assert_eq!(fault_info(&f(6, 0), None, false), (libc::SIGILL, 2, 0x401000));
        assert_eq!(fault_info(&f(13, 0), None, false), (libc::SIGSEGV, 0x80, 0));
        assert_eq!(fault_info(&f(14, 6), None, false), (libc::SIGSEGV, 1, 0x1000));
        assert_eq!(fault_info(&f(14, 7), None, true), (libc::SIGSEGV, 2, 0x1000));
        assert_eq!(fault_info(&f(14, 7), None, false), (libc::SIGSEGV, 1, 0x1000), "km's page, not the payload's");
        assert_eq!(fault_info(&f(14, 4), None, true), (libc::SIGSEGV, 2, 0x1000), "PROT_NONE page");
        assert_eq!(fault_info(&f(3, 0), None, false), (libc::SIGTRAP, 0x80, 0));
        assert_eq!(fault_info(&f(17, 0), None, false).0, libc::SIGBUS);
        let fpu = kvm_fpu { mxcsr: 0x1f80 & !(1 << 9) | 4, ..Default::default() };
        assert_eq!(fault_info(&f(19, 0), Some(&fpu), false).1, 3, "unmasked divide-by-zero");
    }

    #[test]
    fn page_fault_description() {
        assert_eq!(describe(&f(14, 6)), "page fault: write at 0x1000 (unmapped address) at rip 0x401000");
    }
}
