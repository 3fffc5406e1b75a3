//! Payload tests: each case runs a program from tests/payloads natively and
//! under km with the same argv, environment and stdin (each run in a fresh
//! temporary directory) and requires the same stdout, stderr and status.
//!
//! Statuses are compared the way a shell reports them: exit code N is N,
//! death by signal S is 128+S. km may either die of the payload's signal
//! or exit with 128+S; both read the same.
//!
//! The km half needs /dev/kvm. If it is missing or inaccessible the tests
//! fail, saying so, unless KM_SKIP_KVM_TESTS=1, which turns that into a loud
//! warning. KM_TEST_NATIVE_ONLY=1 runs only the native half: a check of the
//! payloads and of the expectations below, independent of km.

#[allow(dead_code)]
mod support;

use std::path::Path;

use support::{device_args, expect_error_line, fnv1a, km, km_half, native_only, payload, Case, Dir, Outcome, Signal};

/// Asserts that every line in `lines` appears in the native stdout, so a
/// payload that stopped checking what it should cannot pass unnoticed.
fn assert_lines(out: &Outcome, lines: &[&str]) {
    let text = String::from_utf8_lossy(&out.stdout);
    for line in lines {
        assert!(text.lines().any(|l| l == *line), "expected line {line:?} in native stdout:\n{text}");
    }
}

#[test]
fn hello_args_env() {
    for name in ["hello", "hello-pie"] {
        let case = Case::new(name, &["first", "with space", "", "ünïcode"]);
        let out = case.check(0);
        let path = payload(name);
        let path = path.to_str().unwrap();
        assert_lines(
            &out,
            &[
                "entry sp 16-aligned: yes",
                "argc=5",
                &format!("argv[0]={path}"),
                "argv[2]=with space",
                "argv[3]=",
                "argv[4]=ünïcode",
                "env LANG=C",
                "AT_PAGESZ=4096",
                "AT_PLATFORM=x86_64",
                &format!("AT_EXECFN={path}"),
                "AT_ENTRY is _start: yes",
                "AT_RANDOM non-NULL: yes, 16 bytes not all zero: yes",
            ],
        );
    }
}

#[test]
fn exit_codes() {
    for code in 0..=255 {
        Case::new("exitcode", &[&code.to_string()]).check(code);
    }
}

#[test]
fn file_roundtrip() {
    let out = Case::new("files", &["roundtrip", "{dir}"]).check(0);
    assert_lines(&out, &["first open fd: 3", "content: hello, world", "done"]);
}

#[test]
fn getdents_sorted() {
    let out = Case::new("files", &["getdents", "{dir}"]).check(0);
    assert_lines(&out, &["  link l", "  subdir d", "  f39 f", "count: 44", "done"]);
}

#[test]
fn mmap_family() {
    let out = Case::new("mem", &["mmap", "{dir}"]).check(0);
    assert_lines(
        &out,
        &[
            "DONTNEED zeroes: yes, rest kept: yes",
            "read() sees shared write: SHARED",
            "mapping sees write(): written",
            "done",
        ],
    );
}

#[test]
fn mmap_write_to_read_only_page_segfaults() {
    Case::new("mem", &["ro-write"]).check(139);
}

#[test]
fn mmap_touch_after_munmap_segfaults() {
    Case::new("mem", &["after-munmap"]).check(139);
}

#[test]
fn mprotect_after_write_segfaults() {
    let out = Case::new("mem", &["stale-tlb"]).check(139);
    assert_lines(&out, &["read after mprotect: 1"]);
}

#[test]
fn null_dereference_segfaults() {
    let out = Case::new("crash", &["null"]).check(139);
    let km = Case::new("crash", &["null"]).run_km(&[]);
    assert!(
        km.stderr_text().contains("km: payload killed by SIGSEGV: page fault: read at 0x0"),
        "km names the signal and the fault:\n{km}"
    );
    assert_lines(&out, &["crash null"]);
}

#[test]
fn ud2_is_sigill() {
    Case::new("crash", &["trap"]).check(132);
}

#[test]
fn divide_by_zero_is_sigfpe() {
    Case::new("crash", &["div0"]).check(136);
}

#[test]
fn brk_grow_and_shrink() {
    let out = Case::new("mem", &["brk"]).check(0);
    assert_lines(&out, &["grew to 256 MiB, every page kept its value: yes", "regrown pages are zero: yes", "done"]);
}

#[test]
fn wild_pointers_efault() {
    let out = Case::new("syscalls", &["efault"]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    // Every probe except the few labelled otherwise must report EFAULT.
    let efaults = text.lines().filter(|l| l.ends_with(": -1 EFAULT")).count();
    assert_eq!(efaults, 29, "EFAULT count in native output:\n{text}");
    assert_lines(&out, &["pipe data intact: 0123456789", "next fd: 5", "done"]);
}

/// km may warn about numbers it does not know; the payload's own output,
/// ENOSYS for each, must match.
#[test]
fn bogus_syscall_numbers_enosys() {
    let case = Case::new("syscalls", &["enosys"]);
    let out = case.check_ignoring_km_warnings(0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().filter(|l| l.ends_with(": -1 ENOSYS")).count(), 4, "{text}");
    assert_lines(&out, &["getpid with rax's upper half set is getpid: yes"]);
}

/// An unimplemented syscall returns ENOSYS to the payload (like the host
/// kernel does for create_module) and km says so once, not per call.
#[test]
fn unimplemented_syscall_warns_once() {
    let case = Case::new("syscalls", &["unimpl"]);
    let native = case.run_native();
    assert_eq!(native.status, 0, "{native}");
    assert_lines(&native, &["create_module: -1 ENOSYS", "create_module again: -1 ENOSYS"]);
    let Some(km) = km_half(|| case.run_km(&[])) else {
        return;
    };
    assert_eq!((&km.stdout, km.status), (&native.stdout, native.status), "{km}");
    let (warnings, rest) = km.stderr_split_km_lines();
    assert_eq!(warnings, ["km: unimplemented syscall 174 (create_module)"], "{km}");
    assert_eq!(rest, native.stderr_text(), "{km}");
}

#[test]
fn unimplemented_syscall_strict_fails() {
    let case = Case::new("syscalls", &["unimpl"]);
    let Some(km) = km_half(|| case.run_km(&["--strict"])) else {
        return;
    };
    assert_ne!(km.status, 0, "km --strict must fail on an unimplemented syscall:\n{km}");
    assert!(km.stderr_text().contains("174"), "--strict must name the syscall:\n{km}");
}

#[test]
fn big_write_64mib() {
    let out = Case::new("io", &["bigwrite"]).check(0);
    let expected: Vec<u8> = (0..64u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    assert_eq!(out.stdout.len(), expected.len(), "stdout byte count");
    assert_eq!(fnv1a(&out.stdout), fnv1a(&expected), "stdout checksum");
}

#[test]
fn stdin_piped() {
    // More than a pipe buffer and not a multiple of the payload's reads.
    let mut state = 0x9e3779b97f4a7c15u64;
    let data: Vec<u8> = (0..(1 << 20) + 17)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    for input in [data, Vec::new()] {
        let out = Case::new("io", &["cat"]).stdin(input.clone()).check(0);
        assert!(out.stdout == input, "cat changed {} bytes of input", input.len());
        assert_eq!(out.stderr_text(), format!("copied {}\n", input.len()));
    }
}

#[test]
fn time_clocks() {
    let out = Case::new("info", &["time"]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("FAIL"), "{text}");
    assert_eq!(text.lines().filter(|l| l.ends_with(": pass")).count(), 12, "{text}");
}

/// The vDSO's clocks: present, agreeing with the syscalls, monotonic.
#[test]
fn vdso_clocks() {
    let out = Case::new("clock", &[]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.lines().any(|l| l.ends_with(": no")), "{text}");
    assert_lines(
        &out,
        &[
            "vDSO present: yes",
            "exports clock_gettime gettimeofday time clock_getres getcpu: yes",
            "CLOCK_MONOTONIC never went back in 100000 calls: yes",
            "vDSO CLOCK_REALTIME agrees with the syscall: yes",
            "vDSO CLOCK_MONOTONIC agrees with the syscall: yes",
            "vDSO CLOCK_BOOTTIME agrees with the syscall: yes",
            "vDSO CLOCK_PROCESS_CPUTIME_ID agrees with the syscall: yes",
            "vDSO clock_gettime of an unknown clock: -22",
            "vDSO gettimeofday agrees with CLOCK_REALTIME: yes",
            "time() and vDSO time agree with the time syscall: yes",
            "CLOCK_REALTIME agrees with time(): yes",
            "vDSO clock_getres CLOCK_MONOTONIC agrees: yes",
            "CLOCK_MONOTONIC advanced at least 20 ms across a 20 ms sleep: yes",
            "done",
        ],
    );
}

/// Under KVM the vDSO serves the time calls inside the VM: km's syscall
/// trace shows none of them.
#[test]
fn vdso_clock_makes_no_exits() {
    let case = Case::new("clock", &["loop"]);
    let Some(km) = km_half(|| case.run_km(&["--log", "syscall=trace"])) else {
        return;
    };
    assert_eq!(km.status, 0, "{km}");
    let trace = strip_ansi(&km.stderr_text());
    assert!(trace.contains("exit_group("), "the trace is on:\n{trace}");
    let exits: Vec<&str> = trace
        .lines()
        .filter(|l| ["clock_gettime(", "gettimeofday(", "clock_getres(", ": time("].iter().any(|c| l.contains(c)))
        .collect();
    assert!(exits.is_empty(), "time calls left the VM:\n{}", exits.join("\n"));
}

/// km's diagnostics may be coloured; the escapes are not part of the text.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn process_info() {
    let ppid = std::process::id().to_string();
    let out = Case::new("info", &["proc", &ppid]).check(0);
    assert_lines(
        &out,
        &[
            "getpid > 0 and is /proc/self: yes",
            "getppid is the harness: yes",
            "gettid == getpid: yes",
            "sysname Linux machine x86_64",
            "release matches /proc: yes",
            "sysinfo sane: yes",
            "getrandom 32 bytes, non-zero: yes, calls differ: yes",
        ],
    );
}

#[test]
fn rust_hello() {
    for code in [0, 42] {
        let out = Case::new("rust-hello", &["{dir}", &code.to_string()]).check(code);
        assert_lines(&out, &["len 28", r#"dir ["renamed.txt"]"#, "missing: Err(NotFound)"]);
    }
}

/// The default panic hook names the thread's id, which differs per run;
/// the harness masks it (see `Outcome::stderr_text`).
#[test]
fn rust_panic() {
    let out = Case::new("rust-hello", &["panic"]).check(101);
    let err = out.stderr_text();
    assert!(
        err.contains("thread 'main' (TID) panicked at src/main.rs:")
            && err.contains("deliberate panic from the payload"),
        "{err}"
    );
}

// Threads (tests/payloads/threads.c).

#[test]
fn pthread_mutex() {
    let out = Case::new("threads", &["mutex"]).check(0);
    assert_lines(&out, &["counter 800000"]);
}

#[test]
fn pthread_condvar() {
    let out = Case::new("threads", &["condvar"]).check(0);
    assert_lines(&out, &["consumed 10000 items, sum 50005000"]);
}

#[test]
fn pthread_barrier() {
    let out = Case::new("threads", &["barrier"]).check(0);
    assert_lines(&out, &["rounds 10, serial threads 10, missing slots 0"]);
}

#[test]
fn pthread_tls() {
    let out = Case::new("threads", &["tls"]).check(0);
    assert_lines(&out, &["threads with a fresh, private TLS block: 8 of 8", "main's value untouched: yes"]);
}

/// musl cancels with a signal whose handler inspects the interrupted RIP.
#[test]
fn pthread_cancel() {
    let out = Case::new("threads", &["cancel"]).check(0);
    assert_lines(
        &out,
        &[
            "cancel in read: canceled, cleanup ran: yes",
            "cancel in nanosleep: canceled, cleanup ran: yes",
            "cancel in testcancel: canceled, cleanup ran: yes",
            "survived a cancellation point while disabled: yes",
        ],
    );
}

#[test]
fn pthread_detached() {
    let out = Case::new("threads", &["detached"]).check(0);
    assert_lines(&out, &["detached threads ran: 128"]);
}

#[test]
fn pthread_250_alive_at_once() {
    let out = Case::new("threads", &["many"]).check(0);
    assert_lines(&out, &["250 threads met at the barrier, sum 31375"]);
}

#[test]
fn pthread_exit_while_others_run() {
    let out = Case::new("threads", &["exit-early"]).check(0);
    assert_lines(&out, &["early thread's value: 7", "busy threads finished after it"]);
}

#[test]
fn pthread_main_exits_first() {
    let out = Case::new("threads", &["main-exits"]).check(0);
    assert_lines(&out, &["main calls pthread_exit", "worker finished after main"]);
}

/// clone3 for a thread, without libc: its own stack, the tid words set
/// and cleared (with a futex wake) as Linux does.
#[test]
fn clone3_thread() {
    let out = Case::new("threads", &["clone3"]).check(0);
    assert_lines(
        &out,
        &["clone3: parent tid word set: yes", "clone3: thread ran: yes, tid word cleared at its exit: yes"],
    );
}

/// exit() from one thread ends the others, blocked in read, a condvar
/// and nanosleep; only the harness's timeout bounds "promptly".
#[test]
fn exit_group_with_blocked_threads() {
    let out = Case::new("threads", &["exit-group"]).check(7);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "exiting with 7\n");
}

// Signals (tests/payloads/signals.c).

#[test]
fn signal_siginfo() {
    let out = Case::new("signals", &["siginfo"]).check(0);
    assert_lines(
        &out,
        &[
            "kill: SIGUSR1 SI_USER, pid is self: yes, uid is self: yes",
            "raise: SIGUSR1 SI_TKILL, pid is self: yes, uid is self: yes",
            "tgkill: SIGUSR1 SI_TKILL, pid is self: yes, uid is self: yes",
            "sigqueue: SIGUSR1 SI_QUEUE, pid is self: yes, uid is self: yes, value 1234",
            "handler ran 4 times",
        ],
    );
}

#[test]
fn signal_altstack() {
    let out = Case::new("signals", &["altstack"]).check(0);
    assert_lines(
        &out,
        &[
            "SA_ONSTACK handler on the alternate stack: yes",
            "sigaltstack in the handler says SS_ONSTACK: yes",
            "changing it from the handler: EPERM",
            "handler without SA_ONSTACK on the alternate stack: no",
            "afterwards: same stack yes, flags 0",
            "SS_AUTODISARM: handler on it yes, disarmed there yes",
            "SS_AUTODISARM: armed again afterwards yes",
            "SA_ONSTACK with the stack disabled on it: no",
        ],
    );
}

#[test]
fn signal_sa_restart() {
    let out = Case::new("signals", &["restart"]).check(0);
    assert_lines(
        &out,
        &[
            "read with SA_RESTART, timer signals: 1 't'",
            "timer handler ran at least 10 times: yes",
            "read with SA_RESTART, signals from a thread: 1 'p'",
        ],
    );
}

#[test]
fn signal_eintr_without_sa_restart() {
    let out = Case::new("signals", &["eintr"]).check(0);
    assert_lines(
        &out,
        &[
            "read without SA_RESTART, timer signals: -1 EINTR",
            "read without SA_RESTART, signals from a thread: -1 EINTR",
        ],
    );
}

#[test]
fn signal_nodefer() {
    let out = Case::new("signals", &["nodefer"]).check(0);
    assert_lines(&out, &["SA_NODEFER: [[]]", "default: [][]"]);
}

#[test]
fn signal_resethand() {
    let out = Case::new("signals", &["resethand"]).check(138);
    assert_lines(&out, &["handler ran 1 time", "disposition reset to SIG_DFL: yes", "raising SIGUSR1 again"]);
}

#[test]
fn signal_sa_mask() {
    let out = Case::new("signals", &["mask"]).check(0);
    assert_lines(
        &out,
        &[
            "in the handler: SIGUSR1 blocked yes, SIGUSR2 (sa_mask) blocked yes",
            "SIGUSR2 raised there: pending yes, handled at once no",
            "after return: SIGUSR2 handled yes, mask restored yes",
        ],
    );
}

#[test]
fn signal_per_thread_masks() {
    let out = Case::new("signals", &["thread-mask"]).check(0);
    assert_lines(
        &out,
        &[
            "kill() handled by the thread in sigsuspend: yes",
            "pending in main after pthread_kill of the blocker:",
            "blocker saw it pending: yes, handled it on unblock: yes",
        ],
    );
}

#[test]
fn signal_pending_until_unblocked() {
    let out = Case::new("signals", &["pending"]).check(0);
    assert_lines(
        &out,
        &[
            "pending while blocked: SIGUSR1 SIGUSR2",
            "delivered while blocked: 0",
            "delivered on unblock: SIGUSR1 SIGUSR2",
            "pending afterwards:",
        ],
    );
}

/// Real-time signals queue every instance with its value, lowest number
/// first; a standard signal keeps only its first instance.
#[test]
fn signal_rt_queue() {
    let out = Case::new("signals", &["rt-queue"]).check(0);
    assert_lines(
        &out,
        &[
            "pending: SIGUSR1 SIGRTMIN+1 SIGRTMIN+2",
            "delivered: SIGUSR1(10) SIGRTMIN+1(1) SIGRTMIN+1(2) SIGRTMIN+1(3) SIGRTMIN+2(40)",
        ],
    );
}

#[test]
fn signal_preserves_fpu_and_registers() {
    let out = Case::new("signals", &["fpu"]).check(0);
    assert_lines(
        &out,
        &[
            "FP results agree across ticks: yes",
            "general registers intact: yes",
            "xmm registers intact: yes",
            "handler started with round-to-nearest: yes",
            "rounding mode kept: yes",
        ],
    );
}

/// The handler's edits to the frame take effect: it has Linux's layout.
#[test]
fn signal_ucontext_edits() {
    let out = Case::new("signals", &["ucontext"]).check(0);
    assert_lines(
        &out,
        &[
            "SIGILL at the ud2 (si_addr and RIP): yes",
            "uc_sigmask is the interrupted mask: yes",
            "after the handler: rax 42, xmm7 0x1234",
            "SIGHUP added through uc_sigmask is blocked: yes",
            "tgkill's result as rewritten by the handler: 4242",
        ],
    );
}

#[test]
fn signal_sigsuspend() {
    let out = Case::new("signals", &["sigsuspend"]).check(0);
    assert_lines(
        &out,
        &[
            "sigsuspend with SIGUSR1 pending: -1 EINTR, handled 1",
            "sigsuspend until another thread's kill: -1 EINTR, handled 2",
            "SIGUSR1 blocked again: yes",
        ],
    );
}

#[test]
fn signal_sigwait() {
    let out = Case::new("signals", &["sigwait"]).check(0);
    assert_lines(
        &out,
        &[
            "sigtimedwait, nothing pending, zero timeout: -1 EAGAIN",
            "sigtimedwait, nothing pending, 20 ms: -1 EAGAIN",
            "sigwaitinfo: SIGUSR1 SI_QUEUE value 7",
            "sigwaitinfo, sent by a thread later: SIGUSR2 SI_USER",
            "sigwait: SIGRTMIN+3",
            "handlers ran: 0",
        ],
    );
}

#[test]
fn signal_tgkill() {
    let out = Case::new("signals", &["tgkill"]).check(0);
    assert_lines(
        &out,
        &[
            "pthread_kill, signal 0: 0",
            "tgkill: SI_TKILL handled by the target: yes",
            "tkill: SI_TKILL handled by the target: yes",
            "tgkill to self handled before it returned: yes",
            "tgkill to no such thread: -1 ESRCH",
            "tgkill, wrong signal number: -1 EINVAL",
        ],
    );
}

#[test]
fn signal_default_terminates() {
    for (signal, status) in [
        ("SIGHUP", 129),
        ("SIGQUIT", 131),
        ("SIGABRT", 134),
        ("SIGKILL", 137),
        ("SIGUSR1", 138),
        ("SIGTERM", 143),
        ("SIGRTMIN+5", 168),
    ] {
        let out = Case::new("signals", &["default", signal]).check(status);
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("raising {signal}\n"));
    }
}

#[test]
fn signal_default_ignored() {
    let out = Case::new("signals", &["ignored"]).check(0);
    assert_lines(
        &out,
        &[
            "alive after SIGCHLD",
            "alive after SIGURG",
            "alive after SIGWINCH",
            "alive after SIGCONT",
            "alive after SIGUSR1 with SIG_IGN",
            "blocked and ignored: SIGUSR1",
            "after unblocking:",
            "blocked with a handler: SIGUSR2",
            "after SIG_IGN:",
            "handler ran: 0",
        ],
    );
}

#[test]
fn sigpipe_kills() {
    let out = Case::new("signals", &["sigpipe-kill"]).check(141);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "writing to a pipe without readers\n");
}

#[test]
fn sigpipe_ignored_or_blocked_is_epipe() {
    let out = Case::new("signals", &["sigpipe-ignored"]).check(0);
    assert_lines(
        &out,
        &[
            "write with SIGPIPE ignored: -1 EPIPE",
            "pending:",
            "write with SIGPIPE blocked: -1 EPIPE",
            "pending: SIGPIPE",
        ],
    );
}

// CPU faults as signals (tests/payloads/faults.c).

#[test]
fn fault_sigsegv_codes_and_addresses() {
    let out = Case::new("faults", &["segv"]).check(0);
    assert_lines(
        &out,
        &[
            "read of an unmapped page: SIGSEGV SEGV_MAPERR, si_addr addr+0",
            "write to an unmapped page: SIGSEGV SEGV_MAPERR, si_addr addr+0",
            "write to a read-only page: SIGSEGV SEGV_ACCERR, si_addr addr+0",
            "read of a PROT_NONE page: SIGSEGV SEGV_ACCERR, si_addr addr+0",
            "call into a non-exec page: SIGSEGV SEGV_ACCERR, si_addr addr+0",
            "read through NULL+16: SIGSEGV SEGV_MAPERR, si_addr addr+0",
            "read of a non-canonical address: SIGSEGV SI_KERNEL, si_addr 0",
            "read of an unmapped page again: SIGSEGV SEGV_MAPERR, si_addr addr+0",
        ],
    );
}

#[test]
fn fault_sigill() {
    let out = Case::new("faults", &["ill"]).check(0);
    assert_lines(&out, &["ud2: SIGILL ILL_ILLOPN, si_addr at the ud2 yes, rip there yes"]);
}

#[test]
fn fault_sigfpe() {
    let out = Case::new("faults", &["fpe"]).check(0);
    assert_lines(
        &out,
        &[
            "divide by zero: SIGFPE FPE_INTDIV, si_addr at the idiv yes",
            "INT_MIN / -1: SIGFPE FPE_INTDIV, si_addr at the idiv yes",
        ],
    );
}

#[test]
fn fault_sigtrap() {
    let out = Case::new("faults", &["trap"]).check(0);
    assert_lines(&out, &["int3: traps 1, SI_KERNEL, rip after the int3 yes, execution continued"]);
}

#[test]
fn fault_sigbus_past_eof() {
    let out = Case::new("faults", &["bus", "{dir}"]).check(0);
    assert_lines(
        &out,
        &["inside the file's last page: x", "past the file's last page: SIGBUS BUS_ADRERR, si_addr addr+0"],
    );
}

#[test]
fn fault_stack_overflow_on_altstack() {
    let out = Case::new("faults", &["overflow"]).check(0);
    assert_lines(&out, &["stack overflow: SIGSEGV, handled on the alternate stack: yes, deep: yes"]);
}

#[test]
fn fault_with_sigsegv_blocked_kills() {
    let out = Case::new("faults", &["segv-blocked"]).check(139);
    assert_lines(&out, &["faulting with SIGSEGV blocked"]);
}

// Timers (tests/payloads/timers.c).

#[test]
fn timer_setitimer() {
    let out = Case::new("timers", &["itimer"]).check(0);
    assert_lines(
        &out,
        &[
            "previous timer: 0 us",
            "getitimer: interval 10000 us, value within it yes",
            "SIGALRM handled 5 times",
            "nanosleep interrupted: -1 EINTR, remaining under 10 s: yes",
            "disarming returns the interval: 10000 us",
            "after disarming: 0 us",
        ],
    );
}

#[test]
fn timer_alarm() {
    let out = Case::new("timers", &["alarm"]).check(0);
    assert_lines(
        &out,
        &[
            "alarm(100) returned 0",
            "alarm(1) returned 99 or 100: yes",
            "SIGALRM after alarm(1): 1",
            "alarm(0) afterwards returned 0",
        ],
    );
}

#[test]
fn timer_expiry_without_handler_kills() {
    let out = Case::new("timers", &["expire-default"]).check(142);
    assert_lines(&out, &["waiting for SIGALRM"]);
}

#[test]
fn timer_posix_sigev_signal() {
    let out = Case::new("timers", &["posix-timer"]).check(0);
    assert_lines(
        &out,
        &[
            "timer_gettime: interval 5000000 ns, value within it yes",
            "expiry 0: SIGRTMIN+2 SI_TIMER, value 77, timer id matches yes",
            "expiry 2: SIGRTMIN+2 SI_TIMER, value 77, timer id matches yes",
            "disarmed: 0 ns",
            "absolute one-shot: SIGRTMIN+4 value 78",
            "no second expiry: -1 EAGAIN",
        ],
    );
}

#[test]
fn timer_posix_sigev_thread() {
    let out = Case::new("timers", &["timer-thread"]).check(0);
    assert_lines(&out, &["callback ran 3 times with value 88, in another thread: yes"]);
}

#[test]
fn timerfd() {
    let out = Case::new("timers", &["timerfd"]).check(0);
    assert_lines(
        &out,
        &[
            "read with a short buffer: -1 EINVAL",
            "timerfd_gettime: interval 5000000 ns, value within it yes",
            "blocking reads counted at least 3 expirations: yes",
            "read when disarmed, non-blocking: -1 EAGAIN",
            "disarmed: 0 ns",
        ],
    );
}

// Signals from the host to the spinning payload (tests/payloads/hostsig.c).

#[test]
fn host_signal_to_handler() {
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGUSR1, Signal::SIGHUP] {
        let out = Case::new("hostsig", &["handler", signal.as_str()]).signal_when_ready(signal).check(0);
        assert_lines(
            &out,
            &["ready", &format!("handled {signal}, from the parent: yes, SI_USER: yes, spin value kept: yes")],
        );
    }
}

#[test]
fn host_signal_default_kills() {
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGUSR1, Signal::SIGHUP] {
        let out =
            Case::new("hostsig", &["default", signal.as_str()]).signal_when_ready(signal).check(128 + signal as i32);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\n");
    }
}

// Go programs (tests/payloads/go/*), static, GOMAXPROCS=2.

#[test]
fn go_goroutines() {
    let out = Case::new("go-goroutines", &[]).check(0);
    assert_lines(
        &out,
        &[
            "squares: 1000 results, sum 333833500",
            "mutex counter: 100000",
            "ping-pong: 10000, pong closed: true",
            "select: 125250 + 125250",
        ],
    );
}

#[test]
fn go_timers() {
    let out = Case::new("go-timers", &[]).check(0);
    assert_lines(
        &out,
        &[
            "slept at least 20ms: true",
            "timer fired after at least 30ms: true",
            "stopping a pending timer: true",
            "5 ticks took at least 25ms: true",
            "time.After won the select",
            "AfterFunc ran",
        ],
    );
}

#[test]
fn go_gc() {
    let out = Case::new("go-gc", &[]).check(0);
    assert_lines(
        &out,
        &[
            "totals: 1003000000 1012980000",
            "collections ran: true",
            "allocated over 100 MB: true",
            "heap shrank back below 64 MB: true",
        ],
    );
}

#[test]
fn go_signal_notify() {
    let out = Case::new("go-signal", &["notify"]).signal_when_ready(Signal::SIGUSR1).check(0);
    assert_lines(&out, &["ready", "received: user defined signal 1"]);
}

/// SIGTERM, not SIGINT: Go keeps SIGINT ignored if it started that way.
#[test]
fn go_signal_default_kills() {
    let out = Case::new("go-signal", &["default"]).signal_when_ready(Signal::SIGTERM).check(143);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\n");
}

/// The whole report of a panic in main is fixed by the binary.
#[test]
fn go_panic() {
    let out = Case::new("go-panic", &["main"]).check(2);
    assert!(
        out.stderr_text()
            .starts_with("panic: deliberate panic from the Go payload\n\ngoroutine 1 [running]:\nmain.main()\n"),
        "{out}"
    );
}

/// A goroutine's number depends on what the runtime started before it:
/// only the first line is compared.
#[test]
fn go_panic_in_goroutine() {
    let out = Case::new("go-panic", &["goroutine"]).stderr_lines(1).check(2);
    assert!(out.stderr_text().starts_with("panic: deliberate panic in a goroutine\n"), "{out}");
}

// Rust std threads (tests/payloads/rust-threads).

#[test]
fn rust_thread_spawn_join() {
    let out = Case::new("rust-threads", &["spawn"]).check(0);
    assert_lines(
        &out,
        &[
            "worker-0: sum 0, thread-local calls 1",
            "worker-7: sum 34999650000, thread-local calls 8",
            "main's thread-local calls: 0",
            "scoped sum: 1280800",
        ],
    );
}

#[test]
fn rust_thread_channels() {
    let out = Case::new("rust-threads", &["mpsc"]).check(0);
    assert_lines(&out, &["mpsc: 4000 messages, each exactly once: true", "sync_channel: 500 messages in order: true"]);
}

#[test]
fn rust_thread_locks() {
    let out = Case::new("rust-threads", &["condvar"]).check(0);
    assert_lines(
        &out,
        &[
            "mutex counter: 80000",
            "condvar turns: 300, strictly alternating: true",
            "rwlock: writes [10, 10, 10, 10], reads 360",
        ],
    );
}

#[test]
fn rust_thread_sleep() {
    let out = Case::new("rust-threads", &["sleep"]).check(0);
    assert_lines(&out, &["main slept at least 20ms: true", "thread slept at least 15ms: true", "park/unpark: woke"]);
}

#[test]
fn rust_panic_in_main() {
    let out = Case::new("rust-threads", &["panic-main"]).check(101);
    assert!(out.stderr_text().trim_start().starts_with("thread 'main' (TID) panicked at src/main.rs:"), "{out}");
}

#[test]
fn rust_panic_in_thread_caught_by_join() {
    let out = Case::new("rust-threads", &["panic-thread"]).check(0);
    assert!(out.stderr_text().trim_start().starts_with("thread 'doomed' (TID) panicked at src/main.rs:"), "{out}");
    assert_lines(&out, &[r#"join: error true, message Some("deliberate panic in a thread")"#, "main continues"]);
}

#[test]
fn missing_device_is_one_line() {
    if native_only() {
        return;
    }
    let out = km(&["--device", "/nonexistent", payload("hello").to_str().unwrap()]);
    assert_eq!(out.status, 1, "{out}");
    expect_error_line(&out, &["/nonexistent"]);
}

#[test]
fn rejects_non_elf() {
    let dir = Dir::new("non-elf");
    // Neither ELF nor a `#!` script (which km runs under its interpreter).
    let text = dir.path().join("text");
    std::fs::write(&text, "echo hi\n").unwrap();
    make_executable(&text);
    reject(&text, &["not an elf"]);
}

#[test]
fn rejects_32bit_elf() {
    let dir = Dir::new("elf32");
    let path = dir.path().join("elf32");
    std::fs::write(&path, elf32_exit0()).unwrap();
    make_executable(&path);
    reject(&path, &["32-bit"]);
}

/// km must refuse `program` with one "km: ..." line naming the reason.
fn reject(program: &Path, reasons: &[&str]) {
    if native_only() {
        return;
    }
    let mut args = device_args();
    args.push(program.to_str().unwrap().into());
    let Some(out) = km_half(|| km(&args)) else {
        return;
    };
    assert_ne!(out.status, 0, "{out}");
    expect_error_line(&out, reasons);
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A minimal i386 ELF executable: one PT_LOAD holding the headers and
/// `mov eax, 1; xor ebx, ebx; int 0x80` (exit(0)).
fn elf32_exit0() -> Vec<u8> {
    const BASE: u32 = 0x0804_8000;
    const HEADERS: u32 = 52 + 32;
    let code = [0xb8, 1, 0, 0, 0, 0x31, 0xdb, 0xcd, 0x80];
    let size = HEADERS + code.len() as u32;
    let mut elf = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0];
    elf.resize(16, 0);
    let u16s = |v: &mut Vec<u8>, xs: &[u16]| xs.iter().for_each(|x| v.extend(x.to_le_bytes()));
    let u32s = |v: &mut Vec<u8>, xs: &[u32]| xs.iter().for_each(|x| v.extend(x.to_le_bytes()));
    u16s(&mut elf, &[2, 3]); // ET_EXEC, EM_386
    u32s(&mut elf, &[1, BASE + HEADERS, 52, 0, 0]); // version, entry, phoff, shoff, flags
    u16s(&mut elf, &[52, 32, 1, 40, 0, 0]); // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    u32s(&mut elf, &[1, 0, BASE, BASE, size, size, 5, 0x1000]); // PT_LOAD, R+X
    elf.extend(code);
    elf
}
