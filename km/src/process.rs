//! The payload process: what its threads share (address space, signal
//! state, limits, the VM and its spare vCPUs), and how it ends.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;

use crate::device::{self, Hypervisor, Vcpu};
use crate::guest::cpu::{CpuModel, SyscallReturn};
use crate::guest::layout::monitor;
use crate::limits::Limits;
use crate::mem::{AddressSpace, SharedSpace};
use crate::procfs::Startup;
use crate::signal::{Posted, SigInfo, Signals, Tid};
use crate::thread::Start;

/// How the payload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    /// Killed by signal number n; the text says why, for km's one-line
    /// report (empty when the payload asked for it, e.g. by SIGPIPE).
    Signal(i32, String),
}

/// Locks a mutex, going on if another thread panicked while holding it:
/// km's state stays consistent between statements, and exiting cleanly
/// beats a second panic.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A host thread whose payload thread ended, waiting with its vCPU for
/// the next one. Reusing both beats a new vCPU (KVM cannot destroy one
/// short of the VM) and a vCPU moving threads (KVM_RUN from a new thread
/// waits for an RCU grace period).
pub type Worker = SyncSender<(Start, SyncSender<Result<Tid, Errno>>)>;

struct VcpuPool {
    idle: Vec<Worker>,
    next_id: u32,
}

pub struct Process {
    pub hv: Arc<dyn Hypervisor>,
    pub model: CpuModel,
    pub space: SharedSpace,
    pub signals: Mutex<Signals>,
    pub limits: Mutex<Limits>,
    /// The executable, for /proc/self/exe.
    pub exe: PathBuf,
    /// What the payload's /proc shows of its start.
    pub startup: Startup,
    pub strict: bool,
    pub pid: Tid,
    pub uid: u32,
    reported: Mutex<(HashSet<u64>, HashSet<String>)>,
    vcpus: Mutex<VcpuPool>,
    /// How syscalls return on this device, found out by km's own probe
    /// before the payload ran (see `cpu::probe_syscall_return`).
    pub syscall_return: SyscallReturn,
    /// The payload's POSIX timers that signal: on the host each signals
    /// km's forwarding thread with `TIMER_SIGNAL`, and the forwarder posts
    /// the payload's signal to the target recorded here.
    pub timers: Mutex<HashMap<i32, TimerTarget>>,
    /// Set at the payload's first PI futex call: from then on a payload
    /// thread's host thread ends with it (see `Thread::exit`).
    pi_futexes: AtomicBool,
}

/// Where a payload timer's signal goes: one thread or the process.
#[derive(Debug, Clone, Copy)]
pub struct TimerTarget {
    pub tid: Option<Tid>,
    pub signo: i32,
}

/// The host signal every payload timer uses, so that a payload signal
/// km cannot take on the host (glibc's 32 and 33, the kick) still works.
pub fn timer_signal() -> i32 {
    libc::SIGRTMAX() - 1
}

/// 0 until the forwarder runs; a forked child starts its own. An atomic:
/// km's SIGSYS handler reads it.
static FORWARDER_TID: AtomicI32 = AtomicI32::new(0);

pub fn set_forwarder_tid(tid: Tid) {
    FORWARDER_TID.store(tid, Ordering::Relaxed);
}

/// The thread that receives host signals, if it runs yet.
pub fn forwarder_tid() -> Option<Tid> {
    Some(FORWARDER_TID.load(Ordering::Relaxed)).filter(|&t| t != 0)
}

/// The thread that receives host signals (target of thread timers), once
/// it runs: started before the payload's first instruction, it may not
/// have been scheduled yet.
pub fn wait_for_forwarder() -> Tid {
    loop {
        if let Some(tid) = forwarder_tid() {
            return tid;
        }
        std::thread::yield_now();
    }
}

impl Process {
    /// The process of a VM whose vCPU 0 exists already (the first thread's).
    pub fn new(
        hv: Arc<dyn Hypervisor>,
        model: CpuModel,
        mut space: AddressSpace,
        exe: PathBuf,
        startup: Startup,
        strict: bool,
        syscall_return: SyscallReturn,
    ) -> Process {
        let pid = std::process::id() as Tid;
        let limits = Limits::new();
        space.set_limit(limits.get(libc::RLIMIT_AS).rlim_cur);
        Process {
            hv,
            model,
            space: SharedSpace::new(space),
            signals: Mutex::new(Signals::new(pid)),
            limits: Mutex::new(limits),
            exe,
            startup,
            strict,
            pid,
            // SAFETY: getuid cannot fail.
            uid: unsafe { libc::getuid() },
            reported: Mutex::new((HashSet::new(), HashSet::new())),
            vcpus: Mutex::new(VcpuPool { idle: Vec::new(), next_id: 1 }),
            syscall_return,
            timers: Mutex::new(HashMap::new()),
            pi_futexes: AtomicBool::new(false),
        }
    }

    pub fn space(&self) -> MutexGuard<'_, AddressSpace> {
        self.space.lock()
    }

    pub fn signals(&self) -> MutexGuard<'_, Signals> {
        lock(&self.signals)
    }

    /// True the first time syscall `nr` is reported.
    pub fn first_report(&self, nr: u64) -> bool {
        lock(&self.reported).0.insert(nr)
    }

    pub fn first_feature_report(&self, what: &str) -> bool {
        let mut reported = lock(&self.reported);
        !reported.1.contains(what) && reported.1.insert(what.to_string())
    }

    pub fn uses_pi_futexes(&self) {
        self.pi_futexes.store(true, Ordering::Relaxed);
    }

    /// True once the payload made a PI futex call.
    pub fn pi_futexes_used(&self) -> bool {
        self.pi_futexes.load(Ordering::Relaxed)
    }

    /// A new vCPU, while the descriptor tables have room for one. A
    /// failed attempt closed whatever it opened, but still uses up its id:
    /// KVM may have made the vCPU before a later step failed, and cannot
    /// make one with that id again.
    pub fn new_vcpu(&self) -> Result<(u32, Box<dyn Vcpu>), device::DeviceError> {
        let mut pool = lock(&self.vcpus);
        if u64::from(pool.next_id) >= monitor::MAX_VCPUS {
            return Err(device::DeviceError::Unsupported("no vCPU slot left".into()));
        }
        let id = pool.next_id;
        pool.next_id += 1;
        Ok((id, self.hv.create_vcpu(id)?))
    }

    pub fn idle_worker(&self) -> Option<Worker> {
        lock(&self.vcpus).idle.pop()
    }

    pub fn add_idle_worker(&self, w: Worker) {
        lock(&self.vcpus).idle.push(w);
    }

    /// Posts `info` to thread `tid`, or to the process; ESRCH if there is
    /// no such thread. SIGKILL ends km at once.
    pub fn post(&self, tid: Option<Tid>, info: SigInfo) -> Result<(), Errno> {
        let posted = match tid {
            Some(tid) => self.signals().post_thread(tid, info).ok_or(Errno::ESRCH)?,
            None => self.signals().post_process(info),
        };
        if posted == Posted::Kill {
            end(ExitStatus::Signal(libc::SIGKILL, String::new()));
        }
        Ok(())
    }

    /// A host signal for the payload.
    pub fn post_host(&self, mut info: SigInfo) {
        let timer = (info.code() == libc::SI_TIMER && info.signo() == timer_signal())
            .then(|| lock(&self.timers).get(&info.timer_id()).copied())
            .flatten();
        if let Some(t) = timer {
            info.set_signo(t.signo);
        }
        // A timer's thread may have ended; its signal is then dropped.
        let _ = self.post(timer.and_then(|t| t.tid), info);
    }
}

/// Taken for good by the thread that ends km.
static ENDING: Mutex<()> = Mutex::new(());

/// Runs `f` (a host fork) unless km is ending, so that a child never
/// inherits the end half done; while it ends, this waits for the end.
pub fn unless_ending<R>(f: impl FnOnce() -> R) -> R {
    let _guard = lock(&ENDING);
    f()
}

/// Ends km the way the payload ended: same exit code, or death by the same
/// signal (without a core dump of km itself). The first caller wins; other
/// threads that get here wait for the end.
pub fn end(status: ExitStatus) -> ! {
    let guard = lock(&ENDING);
    std::mem::forget(guard);
    crate::fork::write_back();
    match status {
        // SAFETY: _exit ends the whole process at once, as exit_group does,
        // without running km's atexit handlers while vCPU threads still run.
        ExitStatus::Code(code) => unsafe { libc::_exit(code) },
        ExitStatus::Signal(sig, why) => {
            if !why.is_empty() {
                crate::diag::line(format_args!("payload killed by {}: {why}", signal_name(sig)));
            }
            let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: plain libc calls on km's own process state, made as km
            // ends: no core, default action, signal unblocked, then raised
            // at this thread.
            unsafe {
                libc::setrlimit(libc::RLIMIT_CORE, &no_core);
                libc::signal(sig, libc::SIG_DFL);
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, sig);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), sig);
                // Only reached for a signal whose default action is not fatal.
                libc::_exit(128 + sig)
            }
        }
    }
}

/// "SIGSEGV", or "SIGRT5" style for real-time signals.
pub fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("SIGRT{}", sig - libc::SIGRTMIN()),
    }
}
