//! Sessions and job control through a pseudo-terminal: an interactive
//! shell is driven by keystrokes written to the pty's master, natively and
//! under km, and the two transcripts must agree. Every step waits for an
//! observable state (a prompt, the terminal's foreground group, a stopped
//! process), never for a time.

#[allow(dead_code)]
mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use support::{device_args, km_half, Case};

const KM: &str = env!("CARGO_BIN_EXE_km");

/// Generous: every step of a km run starts a km or two.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

const PROMPT: &str = "PROMPT> ";

/// What the master side has read so far, and whether the slave side is gone.
#[derive(Default)]
struct Screen {
    bytes: Vec<u8>,
    closed: bool,
}

/// A program running with a pty's slave as its controlling terminal, in a
/// session of its own, driven through the master.
struct Pty {
    master: File,
    child: Child,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    /// Prompts seen so far.
    prompts: usize,
}

impl Pty {
    fn spawn(mut cmd: Command) -> Pty {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let slave: OwnedFd = pty.slave;
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        let master = File::from(pty.master);
        let master_fd = master.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and makes
        // only async-signal-safe calls (close, setsid, ioctl).
        unsafe {
            cmd.pre_exec(move || {
                libc::close(master_fd);
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn under a pty");
        let screen = Arc::new((Mutex::new(Screen::default()), Condvar::new()));
        let mut reader = master.try_clone().unwrap();
        let shared = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                // EIO once every slave fd is closed.
                let n = reader.read(&mut buf).unwrap_or(0);
                let (lock, cond) = &*shared;
                let mut s = lock.lock().unwrap();
                if n == 0 {
                    s.closed = true;
                } else {
                    s.bytes.extend_from_slice(&buf[..n]);
                }
                cond.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        Pty { master, child, screen, prompts: 0 }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.screen.0.lock().unwrap().bytes).into_owned()
    }

    /// Waits until `done` holds for the output read so far.
    fn wait_output(&self, what: &str, done: impl Fn(&str) -> bool) {
        let (lock, cond) = &*self.screen;
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut s = lock.lock().unwrap();
        loop {
            if done(&String::from_utf8_lossy(&s.bytes)) {
                return;
            }
            let now = Instant::now();
            if s.closed || now >= deadline {
                panic!(
                    "waiting for {what}; output so far:\n{}\n{}",
                    String::from_utf8_lossy(&s.bytes),
                    self.processes()
                );
            }
            s = cond.wait_timeout(s, deadline - now).unwrap().0;
        }
    }

    /// The session's processes, for a failure's report.
    fn processes(&self) -> String {
        let ps = Command::new("ps")
            .args(["-o", "pid,ppid,pgid,tpgid,stat,wchan:24,args", "-s", &self.child.id().to_string()])
            .output();
        ps.map_or_else(|e| format!("ps: {e}"), |o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Waits for the shell's next prompt.
    fn prompt(&mut self) {
        self.prompts += 1;
        let n = self.prompts;
        self.wait_output(&format!("prompt {n}"), |t| t.matches(PROMPT).count() >= n);
    }

    /// Types a command line and waits for the prompt after it.
    fn command(&mut self, line: &str) {
        self.send(&format!("{line}\n"));
        self.prompt();
    }

    fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }

    /// The terminal's foreground process group, as the master sees it.
    fn foreground(&self) -> i32 {
        nix::unistd::tcgetpgrp(&self.master).expect("tcgetpgrp on the master").as_raw()
    }

    /// Waits until a group other than the shell's owns the terminal (the
    /// shell has started a foreground job) and returns it.
    fn wait_foreground_job(&self) -> i32 {
        let shell = self.child.id() as i32;
        poll("a foreground job", || Some(self.foreground()).filter(|g| *g != shell))
    }

    /// Waits for the exit of the program and returns its wait status.
    fn finish(mut self) -> (String, std::process::ExitStatus) {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the shell did not exit; output:\n{}", self.text());
            std::thread::sleep(Duration::from_millis(20));
        };
        self.wait_output("the terminal to close", |_| true);
        (self.text(), status)
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // A failed step leaves the session running: end all of it.
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill sends SIGKILL to the session's process group, ours.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// Polls `probe` until it yields a value.
fn poll<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many processes of group `pgrp` wait in read, sendfile or a sleep
/// (for the thread whose tid is the pid: under km, the payload's first).
fn waiting(pgrp: i32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let group = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').nth(2).map(str::to_string));
            let call = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
            let nr = call.split(' ').next().unwrap_or("");
            group == Some(pgrp.to_string()) && ["0", "40", "35", "230"].contains(&nr)
        })
        .count()
}

/// True once every thread of `pid` is stopped: the group stop is then
/// complete and the parent's wait reports it (a km has threads of its
/// own, and the first to stop is not the last).
fn all_stopped(pid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    let tids: Vec<i32> = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    !tids.is_empty()
        && tids.iter().all(|tid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap_or_default();
            stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()) == Some('T')
        })
}

fn wait_stopped(pid: i32) {
    poll(&format!("process {pid} to stop"), || all_stopped(pid).then_some(()));
}

/// The shell's command line, natively or under km.
fn shell_command(shell: &Path, args: &[&str], under_km: bool) -> Command {
    let mut cmd = if under_km {
        let mut c = Command::new(KM);
        c.args(device_args()).arg(shell);
        c
    } else {
        Command::new(shell)
    };
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .env("LANG", "C")
        .env("TERM", "dumb")
        .env("PS1", PROMPT)
        .env("KM_PAYLOAD_TEST", "1");
    cmd
}

/// Replaces each run of digits following `[N] ` (the pid a shell prints
/// for a background job) by `PID` and drops carriage returns. A job that
/// `bg` sends to read the terminal stops at a moment of its own: before or
/// after the shell prints its next prompt, so the shell's notice of it
/// before a prompt is dropped (`jobs` shows the state either way).
fn normalize(text: &str) -> String {
    let mut out = String::new();
    let text = text.replace('\r', "");
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).copied().unwrap_or("");
        if line.contains("Stopped (tty input)") && next.starts_with(PROMPT) {
            continue;
        }
        let mut line = line.to_string();
        if let Some(rest) = line.strip_prefix('[') {
            if let Some((job, pid)) = rest.split_once("] ") {
                if job.chars().all(|c| c.is_ascii_digit()) && !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit())
                {
                    line = format!("[{job}] PID");
                }
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The job-control session: a background job and `jobs`; a foreground
/// `cat`, then a pipeline of two, interrupted by Ctrl-C; one stopped by Ctrl-Z, resumed by `fg`,
/// stopped again and sent to the background by `bg`, where reading the
/// terminal stops it (SIGTTIN); SIGCONT and SIGTERM to it; `kill %1`,
/// `wait`, and the exit status.
fn session(shell: &Path, args: &[&str], under_km: bool) -> (String, i32) {
    let mut t = Pty::spawn(shell_command(shell, args, under_km));
    t.prompt();
    t.command("sleep 100 &");
    t.command("jobs");

    // Ctrl-C reaches the foreground job once it reads the terminal: the
    // line it echoes shows it does.
    t.send("cat\n");
    t.wait_foreground_job();
    t.send("first\n");
    t.wait_output("cat to echo", |s| s.matches("first").count() >= 2);
    t.send("\x03");
    t.prompt();
    t.command("echo interrupted status $?");

    // Ctrl-C reaches every process of a foreground pipeline.
    t.send("sleep 100 | cat\n");
    let pipeline = t.wait_foreground_job();
    // Both started (a shell's child interrupted before its exec would
    // not end): sleep sleeps, cat waits for its input.
    poll("the pipeline to start", || (waiting(pipeline) == 2).then_some(()));
    t.send("\x03");
    t.prompt();
    t.command("echo pipeline status $?");

    // Ctrl-Z stops it; fg resumes it in the foreground.
    t.send("cat\n");
    let cat = t.wait_foreground_job();
    t.send("second\n");
    t.wait_output("cat to echo", |s| s.matches("second").count() >= 2);
    t.send("\x1a");
    t.prompt();
    t.command("echo stopped status $?");
    t.send("fg\n");
    t.wait_foreground_job();
    t.send("third\n");
    t.wait_output("cat to echo", |s| s.matches("third").count() >= 2);
    t.send("\x1a");
    t.prompt();

    // In the background, reading the terminal stops it with SIGTTIN.
    t.command("bg");
    wait_stopped(cat);
    t.command("jobs");
    t.command("kill %2");
    // fg continues it (SIGCONT) and the pending SIGTERM ends it.
    t.command("fg; echo cat status $?");
    t.command("kill %1; wait; echo wait status $?");
    t.send("exit 3\n");
    let (text, status) = t.finish();
    (normalize(&text), status.code().unwrap_or(-1))
}

fn compare(shell: &Path, args: &[&str], expected: &[&str]) {
    let (native, status) = session(shell, args, false);
    for line in expected {
        assert!(native.lines().any(|l| l.contains(line)), "expected {line:?} in the native transcript:\n{native}");
    }
    assert_eq!(status, 3, "{native}");
    let Some((km, km_status)) = km_half(|| session(shell, args, true)) else { return };
    assert_eq!(km, native, "km's transcript differs from native:\n{km}\n===== native =====\n{native}");
    assert_eq!(km_status, status);
}

#[test]
fn busybox_interactive_job_control() {
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "/bin/busybox missing: install busybox-static");
    compare(
        busybox,
        &["sh", "-i"],
        &["interrupted status 130", "pipeline status 130", "stopped status 148", "cat status 143", "wait status 0"],
    );
}

/// TIOCSCTTY/TIOCNOTTY with their errors, and a background group's
/// terminal read and tcsetpgrp: stopped by SIGTTIN/SIGTTOU as the
/// parent's waitpid(WUNTRACED) sees, EIO and success when ignored (or
/// blocked, or the group orphaned), the job's own handler run with EINTR
/// or a restart per SA_RESTART.
#[test]
fn controlling_terminal_and_tty_stops() {
    let out = Case::new("jobctl", &[]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "sendfile from an empty socket, interrupted: -1 EINTR",
        "TIOCSCTTY, not a session leader: -1 EPERM",
        "TIOCSCTTY: 0 ok",
        "read: stopped by SIGTTIN",
        "tcsetpgrp: stopped by SIGTTOU",
        "tcsetpgrp, SIGTTOU ignored: exited 0",
        "TIOCNOTTY: 0 ok",
        // A handler of the job's own: EINTR, or a restart per SA_RESTART
        // (until the handler ignores the signal: EIO, or tcsetpgrp passes).
        "  read: -1 EINTR",
        "  handler ran 3 times",
        "  tcsetpgrp: -1 EINTR",
        "read, SIGTTIN blocked: exited 0",
        "read, orphaned group: -1 errno5",
    ] {
        assert!(text.lines().any(|l| l == line), "expected {line:?} in native stdout:\n{text}");
    }
}
