//! Processes: fork, wait, exec, spawn, SIGCHLD, and shells running
//! pipelines. Each payload process under km is a km of its own (its
//! children too), so every case runs natively and under km and the two
//! must agree.

#[allow(dead_code)]
mod support;

use std::path::PathBuf;

use support::{km_half, path_str, payload, Case, Dir, Outcome};

fn procs(mode: &str) -> Case {
    Case::new("procs", &[mode])
}

/// Asserts that every line in `lines` appears in the native stdout, so a
/// payload that stopped checking what it should cannot pass unnoticed.
fn assert_lines(out: &Outcome, lines: &[&str]) {
    let text = String::from_utf8_lossy(&out.stdout);
    for line in lines {
        assert!(text.lines().any(|l| l == *line), "expected line {line:?} in native stdout:\n{text}");
    }
}

/// Exit codes and deaths by signal (a fault included) as the parent sees
/// them. The child km that dies of SIGSEGV reports it on stderr, as km
/// does for any payload it loses to a fault: that line is the only
/// difference allowed.
#[test]
fn wait_matrix() {
    let case = procs("wait");
    let native = case.run_native();
    assert_eq!(native.status, 0, "{native}");
    assert_lines(
        &native,
        &[
            "exit: exited 255",
            "raise: killed by SIGKILL",
            "raise: killed by SIGUSR1",
            "fault: killed by SIGSEGV",
            "sum of 5 children: 15",
            "wait with no children: -1 ECHILD",
        ],
    );
    let Some(km) = km_half(|| case.run_km(&[])) else { return };
    assert_eq!((km.status, &km.stdout), (native.status, &native.stdout), "{km}");
    let stderr = km.stderr_text();
    assert!(stderr.lines().all(|l| l.starts_with("km: payload killed by SIGSEGV: page fault")), "{km}");
}

#[test]
fn wnohang_zombies_and_groups() {
    let out = procs("wnohang").check(0);
    assert_lines(
        &out,
        &[
            "WNOHANG while running: 0",
            "waitid WNOWAIT: code CLD_EXITED status 17 pid ok yes",
            "reaped: exited 17",
            "again: -1 ECHILD",
            "waitid P_PGID: status 5",
            "waitid P_ALL: status 8 pid ok yes",
            "waitid bad pointer: -1 EFAULT",
        ],
    );
}

#[test]
fn sigchld_siginfo_and_ignored_sigchld() {
    let out = procs("sigchld").check(0);
    assert_lines(
        &out,
        &[
            "SIGCHLD: CLD_EXITED status 7 pid ok yes",
            "SIGCHLD: CLD_KILLED status 9 pid ok yes",
            "ignored SIGCHLD, wait: -1 ECHILD",
            "SA_NOCLDWAIT, wait: -1 ECHILD",
        ],
    );
}

/// Memory is the child's own copy; the FPU state (rounding mode, and the
/// vector registers across a raw fork syscall) goes with it.
#[test]
fn fork_copies_memory_and_fpu() {
    let out = procs("memory").check(0);
    assert_lines(
        &out,
        &[
            "child: global 2 heap 20 rounding upward yes same yes ppid ok yes",
            "parent: global 1 heap 10",
            "xmm0 across raw fork: yes",
        ],
    );
}

#[test]
fn pipes_between_parent_and_child() {
    let out = procs("pipes").check(0);
    assert_lines(&out, &["back: HELLO THROUGH TWO PIPES", "pipe child: exited 0"]);
}

/// vfork + exec, a vfork child's store seen by its parent, posix_spawn
/// with file actions and with a missing file (musl reports the child's
/// exec error through a pipe), popen/pclose.
#[test]
fn vfork_spawn_popen() {
    let out = procs("spawn").check(0);
    assert_lines(
        &out,
        &[
            "from vfork",
            "vfork+exec: exited 0",
            "vfork child's store seen by the parent: 42",
            "spawn output: spawned with args",
            "spawn of a missing file: ENOENT",
            "popen read: popen line",
            "pclose: exited 3",
        ],
    );
}

/// A double-fork daemon in its own session; PR_SET_PDEATHSIG delivers
/// when the middle process (a km of its own) dies.
#[test]
fn double_fork_daemon() {
    let out = procs("daemon").check(0);
    assert_lines(&out, &["middle: exited 0", "grandchild: session leader yes, death signal SIGUSR1 received yes"]);
}

/// What exec keeps (ignored signals, the mask, fds without FD_CLOEXEC)
/// and what it resets (handlers, close-on-exec fds); AT_EXECFN and
/// /proc/self/exe name the new program.
#[test]
fn exec_keeps_and_resets() {
    let out = procs("exec-keeps").check(0);
    assert_lines(
        &out,
        &[
            "argv0: renamed-argv0",
            "SIGUSR1 still ignored: yes",
            "SIGTERM handler reset: yes",
            "SIGUSR2 still blocked: yes",
            "fd 10 kept: yes",
            "fd 11 (cloexec) closed: yes",
            "AT_EXECFN is exe: yes",
        ],
    );
}

#[test]
fn exec_failures_return_linux_errnos() {
    let out = procs("exec-errors").check(0);
    assert_lines(
        &out,
        &[
            "execve ./missing: ENOENT",
            "execve ./text: ENOEXEC",
            "execve ./noexec: EACCES",
            "execve ./loop: ELOOP",
            "execve ./badinterp: ENOENT",
            "execve ./dir: EACCES",
            "execve ./text/x: ENOTDIR",
            "execve bad path pointer: EFAULT",
            "execve bad argv: EFAULT",
            "execve huge argument: E2BIG",
            "still running",
        ],
    );
}

/// exec of static, static-pie and dynamic programs, by path and by fd:
/// hello prints its argv, environment and auxv facts.
#[test]
fn exec_targets() {
    for target in ["hello", "hello-pie", "hello-dyn"] {
        let t = payload(target);
        let out = Case::new("procs", &["exec", path_str(&t), "one", "two"]).check(0);
        assert_lines(&out, &["argc=3", "argv[2]=two"]);
        // fexecve of a close-on-exec fd: execveat with AT_EMPTY_PATH.
        let out = Case::new("procs", &["fexecve", path_str(&t), "three"]).check(0);
        assert_lines(&out, &["argc=2", "argv[1]=three"]);
    }
}

/// A `#!` script, exec'd and as the first program: the interpreter gets
/// its optional argument and the script's path ahead of the arguments.
#[test]
fn scripts_run_under_their_interpreter() {
    let dir = Dir::new("scripts");
    let hello = payload("hello");
    let script = dir.script("s", &format!("#!{} one  arg \n", path_str(&hello)));
    let out = Case::new("procs", &["exec", path_str(&script), "x", "y"]).check(0);
    assert_lines(&out, &["argc=5", "argv[1]=one  arg", "argv[4]=y"]);
    let out = Case::program(script.clone(), &["z"]).check(0);
    assert_lines(&out, &["argc=4", "argv[3]=z"]);
    // A script whose interpreter is a script.
    let outer = dir.script("outer", &format!("#!{}\n", path_str(&script)));
    let out = Case::program(outer, &["w"]).check(0);
    assert_lines(&out, &["argc=5", "argv[4]=w"]);
    let sh = dir.script("sh-script", "#!/bin/sh\necho \"sh: $0 $*\" | tr a-z A-Z\nexit 5\n");
    Case::program(sh, &["a", "b"]).check_ignoring_km_warnings(5);
}

/// Debian's dash: pipelines, loops, command substitution, subshells.
#[test]
fn dash_pipelines() {
    let sh = |script: &str| Case::program(PathBuf::from("/bin/sh"), &["-c", script]);
    sh("echo a | tr a b").check_ignoring_km_warnings(0);
    sh("for i in 1 2 3; do echo $i; done | wc -l").check_ignoring_km_warnings(0);
    sh("x=$(echo sub | tr a-z A-Z); echo $x; (cd / && pwd); (exit 3); echo $?; exec /bin/echo replaced")
        .check_ignoring_km_warnings(0);
}

const BUSYBOX_SCRIPT: &str = r#"
set -u
echo a | tr a b
words=$(printf 'one two three\n' | wc -w)
echo "words: $words"
( echo in a subshell; exit 4 ); echo "subshell status $?"
trap 'echo trapped USR1' USR1
kill -USR1 $$
sleep 0.05 & bg=$!
echo bg job started
wait $bg; echo "bg status $?"
sh -c 'exit 7' & wait $!; echo "child status $?"
for f in 1 2 3; do echo line $f; done | sort -r | head -2
case $(uname -s) in Linux) echo linux;; *) echo other;; esac
false || echo or-list
ls /nonexistent 2>/dev/null; echo "ls status $?"
trap 'echo bye' EXIT
exit 9
"#;

/// BusyBox's sh (static) with pipelines, subshells, command substitution,
/// traps, background jobs and wait; its applets run as re-executions of
/// /proc/self/exe, which must be BusyBox, not km.
#[test]
fn busybox_sh_script() {
    let busybox = PathBuf::from("/bin/busybox");
    if !busybox.exists() {
        panic!("/bin/busybox missing: install busybox-static");
    }
    let dir = Dir::new("bb");
    let script = dir.script("script.sh", BUSYBOX_SCRIPT);
    let out = Case::program(busybox, &["sh", path_str(&script)]).check(9);
    assert_lines(
        &out,
        &["b", "words: 3", "subshell status 4", "trapped USR1", "bg status 0", "child status 7", "line 3", "bye"],
    );
}

/// fork from a second thread while a third blocks (only the forking
/// thread lives on in the child), then exec from that thread.
#[test]
fn fork_and_exec_from_threads() {
    let out = procs("threads").check(0);
    assert_lines(&out, &["child of a thread: exited 3", "exec from a thread"]);
}

/// A SIGCHLD handler without SA_RESTART while children come and go (a
/// shell): opens and reads of regular files never fail with EINTR, even
/// when the kick for the signal lands just before km's host call.
#[test]
fn no_eintr_from_calls_that_do_not_block() {
    let out = Case::new("procs", &["no-eintr"]).check(0);
    assert_lines(&out, &["children: 150, EINTR from open/read: 0, SIGCHLD handled: yes"]);
}

/// Rust's std::process::Command: captured output, piped stdin, exit codes
/// and signals, a missing program, env and cwd.
#[test]
fn rust_command() {
    let out = Case::new("rust-command", &[]).check(0);
    assert_lines(&out, &["killed by signal: Some(15)", "missing program: NotFound", "done"]);
}

/// Go's os/exec (clone with CLONE_VM|CLONE_VFORK, exec errors through a
/// pipe) with pipes to and from the child.
#[test]
fn go_os_exec() {
    let out = Case::new("go-exec", &[]).check_ignoring_km_warnings(0);
    assert_lines(
        &out,
        &[
            r#"stdout "HELLO FROM GO\n" stderr "done\n""#,
            "exit code 3",
            r#"cat: "through cat\n" wait: <nil>"#,
            "missing: fork/exec /nonexistent/program: no such file or directory",
        ],
    );
}

/// Credential calls answered as the host allows (test harnesses and make
/// probe them), capget's version probe.
#[test]
fn credentials() {
    let out = procs("creds").check(0);
    assert_lines(&out, &["setresuid(-1, -1, -1): 0", "preferred version 0x20080522", "capget bad header: -1 EFAULT"]);
}

/// make runs its recipes through /bin/sh, after setting credentials.
#[test]
fn make_runs_recipes() {
    let dir = Dir::new("make");
    let makefile = dir.path().join("Makefile");
    std::fs::write(&makefile, "all: a b\n\t@echo all done\na:\n\t@echo a; echo $$(echo nested)\nb:\n\t@exit 0\n")
        .unwrap();
    let out =
        Case::program(PathBuf::from("/usr/bin/make"), &["-s", "-f", path_str(&makefile)]).check_ignoring_km_warnings(0);
    assert_lines(&out, &["a", "nested", "all done"]);
}

/// A child stopped by SIGTSTP, SIGSTOP or SIGTTIN is seen stopped by that
/// signal (WUNTRACED), continues on SIGCONT (WCONTINUED), then exits.
#[test]
fn stop_and_continue() {
    let out = procs("stop").check(0);
    assert_lines(&out, &["stop: stopped by SIGTSTP", "stop: stopped by SIGTTIN", "continued: yes", "then: exited 12"]);
}
