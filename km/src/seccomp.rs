//! km confines itself: once the VM is built, a seccomp filter lets km's
//! threads make only the host calls km performs, for the payload's
//! syscalls and for its own work (KVM, memory, threads, signals, clocks).
//! A bug that lets the payload steer km still cannot ptrace, mount, load
//! modules, use bpf or keyrings, read other processes' memory, fork or
//! exec.
//!
//! A refused call raises SIGSYS (SECCOMP_RET_TRAP) in the calling thread;
//! km's handler writes "km: seccomp: blocked host syscall N (name)" and km
//! dies of SIGSYS. Only the signal-forwarding thread, which keeps SIGSYS
//! blocked for sigwaitinfo, dies without the line. SIGSYS from elsewhere
//! (kill from outside) goes on to the forwarding thread and the payload.
//!
//! Arguments are restricted where that is sound and cheap: ioctl requests
//! (the KVM ones km makes and the terminal and socket ones it forwards;
//! the fd cannot be told apart), clone flags (threads, and the host fork
//! behind the payload's fork; clone3 fails with ENOSYS so the C library
//! falls back to clone, whose flags are visible), prctl options (km's
//! forwarded ones, thread names, and of PR_SET_MM only PR_SET_MM_MAP for
//! `host_cmdline`), personality (the query and PER_LINUX)
//! and prlimit64 (never km's pid: its own limits are set with pid 0, the
//! payload's are emulated). process_vm_readv/writev cannot be held to km's
//! own pid: the filter is inherited by every km a fork makes, whose pid
//! differs; execve is allowed for exec's re-execution of km itself.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use libc::c_long;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use crate::syscall::files::{IOCTLS, SIOCGIFCONF};

/// Host calls the payload's syscall handlers make (see `syscall/`; a test
/// checks the list against their sources).
const PAYLOAD_CALLS: &[c_long] = &[
    libc::SYS_accept4,
    libc::SYS_access,
    libc::SYS_alarm,
    libc::SYS_bind,
    libc::SYS_capget,
    libc::SYS_capset,
    libc::SYS_chdir,
    libc::SYS_chmod,
    libc::SYS_chown,
    libc::SYS_clock_getres,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_connect,
    libc::SYS_copy_file_range,
    libc::SYS_creat,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_wait,
    libc::SYS_eventfd2,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_fadvise64,
    libc::SYS_fallocate,
    libc::SYS_fchdir,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_fcntl,
    libc::SYS_fdatasync,
    libc::SYS_fgetxattr,
    libc::SYS_flistxattr,
    libc::SYS_flock,
    libc::SYS_fremovexattr,
    libc::SYS_fsetxattr,
    libc::SYS_fstat,
    libc::SYS_fstatfs,
    libc::SYS_fsync,
    libc::SYS_ftruncate,
    libc::SYS_futex,
    libc::SYS_getcpu,
    libc::SYS_getcwd,
    libc::SYS_getdents64,
    libc::SYS_getegid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getgroups,
    libc::SYS_getitimer,
    libc::SYS_getpeername,
    libc::SYS_getpgid,
    libc::SYS_getpgrp,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getpriority,
    libc::SYS_getrandom,
    libc::SYS_getresgid,
    libc::SYS_getresuid,
    libc::SYS_getrusage,
    libc::SYS_getsid,
    libc::SYS_getsockname,
    libc::SYS_getsockopt,
    libc::SYS_gettid,
    libc::SYS_gettimeofday,
    libc::SYS_getuid,
    libc::SYS_getxattr,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_rm_watch,
    libc::SYS_kill,
    libc::SYS_lchown,
    libc::SYS_lgetxattr,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_listen,
    libc::SYS_listxattr,
    libc::SYS_llistxattr,
    libc::SYS_lremovexattr,
    libc::SYS_lseek,
    libc::SYS_lsetxattr,
    libc::SYS_lstat,
    libc::SYS_madvise,
    libc::SYS_memfd_create,
    libc::SYS_mincore,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_mknod,
    libc::SYS_mknodat,
    libc::SYS_mlock,
    libc::SYS_msgctl,
    libc::SYS_msgget,
    libc::SYS_msgrcv,
    libc::SYS_msgsnd,
    libc::SYS_msync,
    libc::SYS_munlock,
    libc::SYS_nanosleep,
    libc::SYS_newfstatat,
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_pause,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_pipe2,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_preadv2,
    libc::SYS_pselect6,
    libc::SYS_pwrite64,
    libc::SYS_pwritev,
    libc::SYS_pwritev2,
    libc::SYS_read,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_readv,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_removexattr,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_rmdir,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_getparam,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_rr_get_interval,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_setparam,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_yield,
    libc::SYS_select,
    libc::SYS_semctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_sendfile,
    libc::SYS_sendmsg,
    libc::SYS_sendto,
    libc::SYS_setfsgid,
    libc::SYS_setfsuid,
    libc::SYS_setgid,
    libc::SYS_setgroups,
    libc::SYS_setitimer,
    libc::SYS_setpgid,
    libc::SYS_setpriority,
    libc::SYS_setregid,
    libc::SYS_setresgid,
    libc::SYS_setresuid,
    libc::SYS_setreuid,
    libc::SYS_setsid,
    libc::SYS_setsockopt,
    libc::SYS_setuid,
    libc::SYS_setxattr,
    libc::SYS_shmctl,
    libc::SYS_shmget,
    libc::SYS_shutdown,
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_splice,
    libc::SYS_stat,
    libc::SYS_statfs,
    libc::SYS_statx,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_sync,
    libc::SYS_sync_file_range,
    libc::SYS_syncfs,
    libc::SYS_sysinfo,
    libc::SYS_tee,
    libc::SYS_tgkill,
    libc::SYS_time,
    libc::SYS_timer_create,
    libc::SYS_timer_delete,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_gettime,
    libc::SYS_timer_settime,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_gettime,
    libc::SYS_timerfd_settime,
    libc::SYS_times,
    libc::SYS_truncate,
    libc::SYS_umask,
    libc::SYS_uname,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_utimensat,
    libc::SYS_vmsplice,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_write,
    libc::SYS_writev,
];

/// Host calls of km's own: guest memory and km's heap, thread start and
/// end (the C library's and Rust's runtime), signals and kicks, clocks,
/// sleeps, diagnostics, the end of km.
const KM_CALLS: &[c_long] = &[
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_brk,
    // `mem::space` attaches the payload's shared memory (it detaches it
    // by mapping the reservation over it).
    libc::SYS_shmat,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sigaltstack,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigtimedwait,
    // The forwarder waits on a signalfd (`signal::forward`).
    libc::SYS_signalfd4,
    libc::SYS_restart_syscall,
    libc::SYS_exit,
    libc::SYS_exit_group,
    // exec re-executes km itself (see `exec`), and the new km starts (its
    // dynamic loader and C library included) under this filter.
    libc::SYS_execve,
    libc::SYS_arch_prctl,
    libc::SYS_set_tid_address,
    // `mem::copy`: any pid, see the module comment.
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
];

/// Thread flags the C library's pthread_create may pass to clone.
const THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM
    | libc::CLONE_SETTLS
    | libc::CLONE_PARENT_SETTID
    | libc::CLONE_CHILD_SETTID
    | libc::CLONE_CHILD_CLEARTID
    | libc::CLONE_DETACHED) as u64;
const FORK_FLAGS: u64 = (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u64;
const THREAD_NEEDS: u64 = (libc::CLONE_VM | libc::CLONE_SIGHAND | libc::CLONE_THREAD) as u64;

/// prctl options: those km forwards (see `syscall::process::prctl`) and
/// thread names set by the runtime.
const PRCTL_OPTIONS: [i32; 14] = [
    libc::PR_SET_NAME,
    libc::PR_GET_NAME,
    libc::PR_GET_DUMPABLE,
    libc::PR_SET_DUMPABLE,
    libc::PR_GET_NO_NEW_PRIVS,
    libc::PR_SET_NO_NEW_PRIVS,
    libc::PR_GET_TIMERSLACK,
    libc::PR_SET_TIMERSLACK,
    libc::PR_SET_VMA,
    libc::PR_SET_PDEATHSIG,
    libc::PR_GET_PDEATHSIG,
    libc::PR_SET_CHILD_SUBREAPER,
    libc::PR_GET_CHILD_SUBREAPER,
    libc::PR_GET_SECCOMP,
];

fn cond(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    SeccompCondition::new(arg, len, op, value).expect("argument index below 6")
}

fn rule(conditions: Vec<SeccompCondition>) -> SeccompRule {
    SeccompRule::new(conditions).expect("a rule has a condition")
}

/// One rule per value: argument `arg` (32 bits, as the kernel reads it)
/// equals one of `values`.
fn one_of(arg: u8, values: impl IntoIterator<Item = u64>) -> Vec<SeccompRule> {
    values.into_iter().map(|v| rule(vec![cond(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, v)])).collect()
}

/// The allow list: syscall number to rules (empty: any arguments).
fn allowed(pid: u32) -> BTreeMap<i64, Vec<SeccompRule>> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        PAYLOAD_CALLS.iter().chain(KM_CALLS).map(|&nr| (nr, Vec::new())).collect();
    let kvm = crate::device::ioctls().into_iter().map(u64::from);
    let forwarded = IOCTLS.iter().map(|&(request, _)| request).chain([SIOCGIFCONF]);
    let requests = kvm.chain(forwarded.map(|request| request & 0xffff_ffff));
    rules.insert(libc::SYS_ioctl, one_of(1, requests));
    let mut prctl = one_of(0, PRCTL_OPTIONS.iter().map(|&o| o as u64));
    // `host_cmdline`, in a km started by exec (under this filter): the one
    // PR_SET_MM operation that needs no privilege. Never the payload's
    // (see `syscall::process::prctl`).
    prctl.push(rule(vec![
        cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, libc::PR_SET_MM as u64),
        cond(1, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, libc::PR_SET_MM_MAP as u64),
    ]));
    rules.insert(libc::SYS_prctl, prctl);
    // The query and PER_LINUX, the only personalities km forwards.
    rules.insert(libc::SYS_personality, one_of(0, [0xffff_ffff, 0]));
    // process_vm_* stay unrestricted by pid: a forked child km inherits
    // this filter and copies with its own, different pid (and a vfork
    // child writes back to its parent's); km makes them only there.
    let _ = pid;
    rules.insert(
        libc::SYS_prlimit64,
        vec![rule(vec![cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, u64::from(pid))])],
    );
    let thread = cond(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(!THREAD_FLAGS | THREAD_NEEDS), THREAD_NEEDS);
    // A host fork (glibc's fork: the child's tid words and SIGCHLD), for
    // the payload's fork, vfork and clone of a process.
    let fork = cond(0, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, FORK_FLAGS);
    rules.insert(libc::SYS_clone, vec![rule(vec![thread]), rule(vec![fork])]);
    rules
}

/// The two filters, in the order they are installed: clone3 made ENOSYS
/// (so threads are created with clone), then the allow list, which traps
/// everything else. The kernel applies the stricter answer of the two.
pub fn programs(pid: u32) -> Result<[BpfProgram; 2], seccompiler::Error> {
    let no_clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        TargetArch::x86_64,
    )?;
    let allow = SeccompFilter::new(allowed(pid), SeccompAction::Trap, SeccompAction::Allow, TargetArch::x86_64)?;
    Ok([no_clone3.try_into()?, allow.try_into()?])
}

/// Set once km runs under its own filter, installed or inherited; a host
/// fork copies it. Not PR_GET_SECCOMP: that also reports a filter around
/// km (a container runtime's, systemd's), which is not km's confinement.
static CONFINED: AtomicBool = AtomicBool::new(false);

/// True if km runs under its own seccomp filter (installed, or inherited
/// from the km that forked it or that it replaced by exec).
pub fn active() -> bool {
    CONFINED.load(Ordering::Relaxed)
}

/// Confines every km thread, present and future, even under another
/// filter. A km started by another km's exec (`inherited`) already runs
/// under that km's filter, which it keeps: filters cannot be loosened, only
/// stacked, and stacking one per exec would add nothing but cost, and
/// after about 20 execs pass the kernel's bound on a filter chain.
/// Ok(false) when the kernel has no seccomp filters at all (built without
/// CONFIG_SECCOMP_FILTER, like the minimal kkm test kernel): km then runs
/// unconfined.
pub fn install(inherited: bool) -> Result<bool, seccompiler::Error> {
    if inherited {
        CONFINED.store(true, Ordering::Relaxed);
        return Ok(true);
    }
    let [first, second] = programs(std::process::id())?;
    match seccompiler::apply_filter_all_threads(&first) {
        Err(seccompiler::Error::Seccomp(e)) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
            return Ok(false);
        }
        r => r?,
    }
    seccompiler::apply_filter_all_threads(&second)?;
    CONFINED.store(true, Ordering::Relaxed);
    Ok(true)
}

/// SYS_SECCOMP: the si_code of a SIGSYS raised by a filter.
const SYS_SECCOMP: i32 = 1;
/// Offset of si_syscall in a SIGSYS siginfo (after signo, errno, code and
/// the call address).
const SI_SYSCALL: usize = 24;

/// Installs the SIGSYS handler (process-wide), with or without a filter.
pub fn install_handler() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is valid; the handler makes only
    // async-signal-safe calls.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigfillset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler;
    // a SIGSYS one has si_syscall at SI_SYSCALL.
    let (code, nr) = unsafe { ((*info).si_code, (info as *const u8).add(SI_SYSCALL).cast::<i32>().read_unaligned()) };
    if code != SYS_SECCOMP {
        crate::signal::forward::sigsys_from_outside();
        return;
    }
    let mut line = [0u8; 96];
    let len = report(&mut line, nr as u64);
    // SAFETY: write, sigaction, setrlimit, tgkill and sigprocmask are
    // async-signal-safe and touch only km's own state; SIGSYS with its
    // default action, unblocked, ends km.
    unsafe {
        libc::write(crate::diag::raw_fd(), line.as_ptr().cast(), len);
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(libc::SIGSYS, libc::SIG_DFL);
        libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), libc::SIGSYS);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGSYS);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::_exit(128 + libc::SIGSYS);
    }
}

/// Writes "km: seccomp: blocked host syscall N (name)\n" into `out`
/// without allocating; returns its length.
fn report(out: &mut [u8; 96], nr: u64) -> usize {
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(out.len() - at);
        out[at..at + n].copy_from_slice(&bytes[..n]);
        at += n;
    };
    put(b"km: seccomp: blocked host syscall ");
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = nr;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(&digits[i..]);
    put(b" (");
    put(crate::syscall::names::name(nr).unwrap_or("unknown").as_bytes());
    put(b")\n");
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile() {
        let [no_clone3, allow] = programs(1234).expect("the filters compile");
        assert!(!no_clone3.is_empty() && allow.len() > PAYLOAD_CALLS.len());
    }

    #[test]
    fn report_line() {
        let mut out = [0u8; 96];
        let n = report(&mut out, 101);
        assert_eq!(&out[..n], b"km: seccomp: blocked host syscall 101 (ptrace)\n");
        let n = report(&mut out, 9999);
        assert_eq!(&out[..n], b"km: seccomp: blocked host syscall 9999 (unknown)\n");
    }

    /// The number of the x86-64 syscall called `name`.
    fn number(name: &str) -> Option<i64> {
        (0..512).find(|&nr| crate::syscall::names::name(nr) == Some(name)).map(|nr| nr as i64)
    }

    /// Every host call named in the syscall handlers (libc::SYS_x) is on
    /// the allow list: a handler added without it would be km's death.
    #[test]
    fn handlers_calls_are_allowed() {
        // Every handler family, read from the source tree, so a new one
        // cannot be forgotten here.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/syscall");
        let sources: Vec<String> = std::fs::read_dir(dir)
            .expect("the syscall sources")
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs") && !p.ends_with("names.rs") && !p.ends_with("mod.rs"))
            .map(|p| std::fs::read_to_string(p).expect("a source file"))
            .collect();
        let rules = allowed(1234);
        for source in &sources {
            for piece in source.split("SYS_").skip(1) {
                let name: String = piece.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                let nr = number(&name).unwrap_or_else(|| panic!("SYS_{name} is no x86-64 syscall"));
                assert!(rules.contains_key(&nr), "SYS_{name} is made by a handler but not allowed by the filter");
            }
        }
    }

    /// Every syscall the address space makes through a libc wrapper of
    /// the same name (mmap, shmat, ...) is on the allow list too.
    #[test]
    fn memory_calls_are_allowed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/mem");
        let rules = allowed(1234);
        for entry in std::fs::read_dir(dir).expect("the memory sources") {
            let source = std::fs::read_to_string(entry.expect("a directory entry").path()).expect("a source file");
            for piece in source.split("libc::").skip(1) {
                let name: String = piece.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !piece[name.len()..].starts_with('(') {
                    continue;
                }
                if let Some(nr) = number(&name) {
                    assert!(rules.contains_key(&nr), "libc::{name} is called in mem/ but not allowed by the filter");
                }
            }
        }
    }

    #[test]
    fn dangerous_calls_are_refused() {
        let rules = allowed(1234);
        for name in [
            "ptrace",
            "bpf",
            "mount",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "perf_event_open",
            "keyctl",
            "userfaultfd",
            "execveat",
            "fork",
            "vfork",
            "setns",
            "unshare",
        ] {
            assert!(!rules.contains_key(&number(name).unwrap()), "{name} must not be allowed");
        }
    }

    /// Runs `calls` in a forked child under the filter (and km's SIGSYS
    /// handler, reporting on a pipe); returns the child's wait status and
    /// what it reported. `calls` must make only raw system calls: the child
    /// of a threaded test process may not allocate or take locks.
    fn in_filtered_child(calls: impl Fn()) -> (i32, Vec<u8>) {
        // No real pid: the child needs no process_vm calls, and may set its
        // own limits with pid 0.
        let programs = programs(u32::MAX).expect("the filters compile");
        let mut pipe = [0i32; 2];
        // SAFETY: pipe writes two fds into the array.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: the child makes only raw system calls (no allocation, no
        // locks) before it exits or dies; the parent reads the pipe and
        // reaps it.
        unsafe {
            let child = libc::fork();
            assert!(child >= 0);
            if child == 0 {
                libc::dup2(pipe[1], 2);
                if install_handler().is_err() {
                    libc::_exit(2);
                }
                for p in &programs {
                    if seccompiler::apply_filter(p).is_err() {
                        libc::_exit(3);
                    }
                }
                calls();
                libc::_exit(4);
            }
            libc::close(pipe[1]);
            let mut status = 0;
            assert_eq!(libc::waitpid(child, &mut status, 0), child);
            let mut buf = [0u8; 200];
            let n = libc::read(pipe[0], buf.as_mut_ptr().cast(), buf.len());
            libc::close(pipe[0]);
            (status, buf[..n.max(0) as usize].to_vec())
        }
    }

    fn killed_by_sigsys(status: i32) -> bool {
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS
    }

    /// Of PR_SET_MM, the filter lets through only PR_SET_MM_MAP (which
    /// `host_cmdline` makes), not the single-field operations.
    #[test]
    fn only_pr_set_mm_map_passes() {
        let (status, report) = in_filtered_child(|| {
            let none = 0 as libc::c_ulong;
            // SAFETY: the allowed prctl has no map (a size of 0), so the
            // kernel refuses it with EINVAL and changes nothing; the second
            // is refused by the filter.
            unsafe {
                if libc::prctl(libc::PR_SET_MM, libc::PR_SET_MM_MAP as libc::c_ulong, none, none, none) != -1 {
                    libc::_exit(5);
                }
                libc::prctl(libc::PR_SET_MM, libc::PR_SET_MM_ARG_START as libc::c_ulong, none, none, none);
            }
        });
        assert!(killed_by_sigsys(status), "status {status:#x}");
        assert_eq!(report, b"km: seccomp: blocked host syscall 157 (prctl)\n");
    }

    /// Installs the filter in a child process, which then makes a refused
    /// call: it dies of SIGSYS after one report line.
    #[test]
    fn refused_call_kills_with_a_report() {
        let (status, report) = in_filtered_child(|| {
            // SAFETY: a refused call; the filter ends the child.
            unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) };
        });
        assert!(killed_by_sigsys(status), "status {status:#x}");
        assert_eq!(report, b"km: seccomp: blocked host syscall 101 (ptrace)\n");
    }
}
