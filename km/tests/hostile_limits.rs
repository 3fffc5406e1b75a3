//! A hostile payload against km's limits, fds and seccomp filter: limits
//! set through other threads' tids, pushed to their edges, given bad
//! pointers; every case compared with the native run. Then km's own
//! confinement: the filter is on (or off with --no-seccomp).

#[allow(dead_code)]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use support::{device_args, km_half, payload, Case, Outcome, Signal};

fn assert_lines(out: &Outcome, lines: &[&str]) {
    let text = String::from_utf8_lossy(&out.stdout);
    for line in lines {
        assert!(text.lines().any(|l| l == *line), "expected line {line:?} in stdout:\n{text}");
    }
}

/// Only the payload's own fds exist anywhere below km's fd floor.
const ONLY_STDIO: &str = "open fds: 0 1 2";

#[test]
fn prlimit_nofile_on_another_tid_binds_the_payload_only() {
    let out = Case::new("hostile-limits", &["tid-nofile"]).check(0);
    assert_lines(
        &out,
        &[
            "prlimit on the other tid: 0",
            "limit now: 10 10",
            "thread after: 0",
            "another thread: 0",
            "thread after join: 0",
            // 3 and 4: the payload's own pipe.
            "open fds: 0 1 2 3 4",
        ],
    );
}

#[test]
fn prlimit_as_on_another_tid_binds_the_payload_only() {
    let out = Case::new("hostile-limits", &["tid-as"]).check(0);
    assert_lines(&out, &["limit now: 268435456 268435456", "thread after: 0", "open fds: 0 1 2 3 4"]);
}

#[test]
fn nofile_limit_gives_emfile_exactly_at_the_limit() {
    for n in ["10", "64"] {
        let out = Case::new("hostile-limits", &["nofile", n]).check(0);
        assert_lines(
            &out,
            &[
                &format!("open stops with errno24 after {n} fds"),
                "last fd is limit - 1: yes",
                "dup: -1 errno24",
                "F_DUPFD_CLOEXEC from limit: -1 EINVAL",
                "dup2 onto limit: -1 EBADF",
                "pipe with one free: -1 errno24",
                "poll of limit + 1 entries: -1 EINVAL",
                "lower the limit to 5: 0",
                "write to fd limit - 2: 1",
                "open at limit 5: -1 errno24",
            ],
        );
    }
}

#[test]
fn address_space_limit_counts_the_payload_mappings() {
    let out = Case::new("hostile-limits", &["as"]).check(0);
    assert_lines(
        &out,
        &[
            "mmap 512 MiB: ok",
            "mmap 600 MiB more: ENOMEM",
            "MAP_FIXED over the 512 MiB: ok",
            "mremap to 1100 MiB: ENOMEM",
            "mmap 600 MiB now: ok",
            "brk up 256 MiB: refused",
            "brk up 64 MiB after munmap: ok",
            "thread under the limit: 0",
            "mmap one page: ENOMEM",
            "mmap one page again: ok",
        ],
    );
}

/// RLIMIT_SIGPENDING binds the signals the payload queues to itself:
/// sigqueue and tgkill of a real-time signal are EAGAIN at the limit, kill
/// and standard signals still arrive, and after a set*id call the payload
/// can no longer raise its hard limit (km asks for the capability each
/// time rather than remembering it had it).
#[test]
fn queued_signals_stop_at_the_pending_limit() {
    let out = Case::new("hostile-limits", &["sigpending"]).check(0);
    assert_lines(
        &out,
        &[
            "queued 8, then Resource temporarily unavailable",
            "kill with an RT signal: queued",
            "raising the hard limit as an unprivileged uid: Operation not permitted",
            "received 10",
        ],
    );
}

#[test]
fn limit_calls_with_bad_pointers() {
    let out = Case::new("hostile-limits", &["pointers"]).check(0);
    assert_lines(
        &out,
        &[
            "getrlimit(NOFILE, NULL): -1 EFAULT",
            "getrlimit(999, NULL): -1 EINVAL",
            "setrlimit(999, NULL): -1 EFAULT",
            "prlimit(0, NOFILE, NULL, NULL): 0",
            "prlimit(0, NOFILE, &50, bad): -1 EFAULT",
            "RLIMIT_NOFILE now: 50",
            "thread after the low limits: 0",
        ],
    );
}

/// Runs hostile-limits `tids` under `cmd`: once it is ready, hands it every
/// tid of the process (km's helper and idle threads too) to prlimit.
fn run_with_tids(mut cmd: Command) -> String {
    cmd.env_clear().env("PATH", "/usr/bin:/bin").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        })
    };
    let mut child = cmd.spawn().expect("start the payload");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let tids: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!tids.is_empty());
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", tids.join(" ")).unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{cmd:?}: {status}\n{rest}");
    rest
}

#[test]
fn prlimit_on_every_km_thread_leaves_km_alone() {
    let mut native = Command::new(payload("hostile-limits"));
    native.arg("tids");
    let native = run_with_tids(native);
    assert!(native.contains("RLIMIT_NOFILE: 10 10\n"), "{native}");
    assert!(native.contains(&format!("{ONLY_STDIO}\n")), "{native}");
    km_half(|| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_km"));
        cmd.args(device_args()).arg(payload("hostile-limits")).arg("tids");
        let km = run_with_tids(cmd);
        assert_eq!(km, native, "km differs from native");
    });
}

/// How km is started for `seccomp_of_km_threads`.
#[derive(Default)]
struct Start<'a> {
    options: &'a [&'a str],
    /// Under a seccomp filter of its own (deny-set-mm's), as in a container.
    outer_filter: bool,
    /// The payload reached by three execs (a km replaced by a km each time).
    by_exec: bool,
}

/// The Seccomp and Seccomp_filters fields of every thread of km, read while
/// the payload (with a second thread, so a vCPU thread started after the
/// filter) waits; then the payload's output.
fn seccomp_of_km_threads(start: Start) -> (Vec<String>, String) {
    let km = env!("CARGO_BIN_EXE_km");
    let mut cmd = if start.outer_filter {
        let mut c = Command::new(payload("deny-set-mm"));
        c.arg(km);
        c
    } else {
        Command::new(km)
    };
    cmd.args(device_args()).args(start.options);
    if start.by_exec {
        let target = payload("hostile-limits");
        let script = format!("exec {0} sh -c 'exec {0} sh -c \"exec {1} wait\"'", "/bin/busybox", target.display());
        cmd.args(["/bin/busybox", "sh", "-c", &script]);
    } else {
        cmd.arg(payload("hostile-limits")).arg("wait");
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("start km");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let mut fields = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let seccomp: Vec<&str> = status.lines().filter(|l| l.starts_with("Seccomp")).collect();
        fields.push(seccomp.join(" "));
    }
    drop(child.stdin.take());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    (fields, rest)
}

#[test]
fn seccomp_filter_confines_every_km_thread() {
    km_half(|| {
        let (fields, rest) = seccomp_of_km_threads(Start::default());
        // main, signal forwarding, the payload's second thread (and the
        // clock thread where the device reports the guest TSC)
        assert!(fields.len() >= 3, "{fields:?}");
        for f in &fields {
            assert_eq!(f, "Seccomp:\t2 Seccomp_filters:\t2", "every thread is filtered: {fields:?}");
        }
        assert_eq!(rest, "done\n");
    });
}

/// Under a filter of its own (a container runtime's), km still installs
/// its own: the outer one is not km's confinement.
#[test]
fn seccomp_filter_confines_km_under_an_outer_filter() {
    km_half(|| {
        let (fields, rest) = seccomp_of_km_threads(Start { outer_filter: true, ..Start::default() });
        assert!(fields.len() >= 3, "{fields:?}");
        for f in &fields {
            assert_eq!(f, "Seccomp:\t2 Seccomp_filters:\t3", "the outer filter and km's two: {fields:?}");
        }
        assert_eq!(rest, "done\n");
    });
}

/// A km started by exec keeps its predecessor's filter without stacking
/// another copy, with or without a filter around the first km.
#[test]
fn exec_keeps_one_copy_of_the_filter() {
    km_half(|| {
        for (outer_filter, filters) in [(false, 2), (true, 3)] {
            let (fields, rest) = seccomp_of_km_threads(Start { outer_filter, by_exec: true, ..Start::default() });
            for f in &fields {
                assert_eq!(f, &format!("Seccomp:\t2 Seccomp_filters:\t{filters}"), "{fields:?}");
            }
            assert_eq!(rest, "done\n");
        }
    });
}

/// km keeps SIGSYS open for its filter's reports; one sent from outside
/// still reaches the payload, whose default action ends it.
#[test]
fn sigsys_from_outside_is_the_payloads() {
    Case::new("hostile-limits", &["pause"]).signal_when_ready(Signal::SIGSYS).check(128 + libc::SIGSYS);
}

#[test]
fn no_seccomp_runs_unconfined() {
    km_half(|| {
        let (fields, rest) = seccomp_of_km_threads(Start { options: &["--no-seccomp"], ..Start::default() });
        for f in &fields {
            assert_eq!(f, "Seccomp:\t0 Seccomp_filters:\t0", "{fields:?}");
        }
        assert_eq!(rest, "done\n");
        let case = Case::new("hostile-limits", &["pointers"]);
        let (native, km) = (case.run_native(), case.run_km(&["--no-seccomp"]));
        assert_eq!((native.status, &native.stdout), (km.status, &km.stdout), "--no-seccomp changes nothing else");
    });
}

/// Files without a type (eventfd, epoll, timerfd, signalfd; and km's VM and
/// vCPU fds, which are of the same kind) cannot be mapped, as natively.
#[test]
fn mmap_of_anonymous_inodes_is_enodev() {
    Case::new("fd-window", &["mmap-anon"]).check(0);
}

/// The moment a new vCPU's fd sits below km's floor, raced by payload
/// threads that dup, map and ioctl the numbers it gets, or close one and
/// put a memfd there: nothing caught is ever mapped or answers a KVM ioctl,
/// and km never adopts a payload file as its vCPU (thread creation is
/// refused with EAGAIN then, and the payload retries). km reports the
/// payload's KVM ioctl request once, as any request it does not serve, and
/// says why a vCPU could not be made when the payload won the race.
#[test]
fn vcpu_fds_caught_below_the_floor_are_useless() {
    for mode in ["race", "replace"] {
        let case = Case::new("fd-window", &[mode]);
        let native = case.run_native();
        assert_eq!(native.status, 0, "{native}");
        assert_lines(&native, &["threads joined: 24", "km fds mapped: 0", "vCPU ioctls that worked: 0"]);
        km_half(|| {
            let km = case.run_km(&[]);
            assert_eq!((km.status, &km.stdout), (native.status, &native.stdout), "{km}");
            for line in km.stderr_split_km_lines().1.lines() {
                assert!(
                    line.contains("cannot create a vCPU: KVM_CREATE_VCPU"),
                    "unexpected stderr line {line:?}:\n{km}"
                );
            }
        });
    }
}
