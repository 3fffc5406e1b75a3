//! Harness for km/tests/payloads.rs: builds the payloads, runs a case
//! natively and under km, and compares the two runs.

use std::env;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{self, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;
use nix::unistd::Pid;

const KM: &str = env!("CARGO_BIN_EXE_km");

/// The whole environment of every run, native or under km.
const ENV: &[(&str, &str)] =
    &[("PATH", "/usr/bin:/bin"), ("HOME", "/nonexistent"), ("LANG", "C"), ("KM_PAYLOAD_TEST", "1")];

/// Generous: brk touches 64 Ki pages and a first touch is slow under km.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The stdout line with which a payload asks for the signal of
/// `Case::signal_when_ready`.
const READY: &str = "ready";

/// Prefix of km's warning for a syscall it does not implement.
const UNIMPLEMENTED: &str = "km: unimplemented syscall ";
/// km's one report of a request it does not serve (an ioctl, a flag).
const UNSUPPORTED: &str = "km: not implemented yet: ";

/// Path of a built payload; the first call builds them all.
pub fn payload(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let path = DIR.get_or_init(build_payloads).join(name);
    assert!(path.is_file(), "no payload {}", path.display());
    path
}

fn build_payloads() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // target/payloads, next to target/tmp, wherever the target dir is.
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("payloads");
    let result = Command::new(root.join("scripts/build-payloads"))
        .arg(&out)
        .output()
        .expect("cannot run scripts/build-payloads");
    assert!(
        result.status.success(),
        "scripts/build-payloads failed ({}):\n{}",
        result.status,
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

pub fn native_only() -> bool {
    env::var("KM_TEST_NATIVE_ONLY").as_deref() == Ok("1")
}

/// The device km is told to use: KM_DEVICE from the test's environment
/// (e.g. /dev/kkm), else km's own choice, which is /dev/kvm here.
fn device() -> Option<String> {
    env::var("KM_DEVICE").ok()
}

/// km's `--device` option for `device()`, if any.
pub fn device_args() -> Vec<String> {
    device().map(|dev| vec!["--device".into(), dev]).unwrap_or_default()
}

/// Runs the km half of a test if it can: `None` after a loud warning when
/// KM_TEST_NATIVE_ONLY=1, or when the device is unusable and
/// KM_SKIP_KVM_TESTS=1; a panic when the device is unusable otherwise.
pub fn km_half<T>(run: impl FnOnce() -> T) -> Option<T> {
    if native_only() {
        eprintln!("WARNING: KM_TEST_NATIVE_ONLY=1: the km half of this test was NOT run");
        return None;
    }
    let dev = device().unwrap_or_else(|| "/dev/kvm".into());
    if let Err(e) = OpenOptions::new().read(true).write(true).open(&dev) {
        if env::var("KM_SKIP_KVM_TESTS").as_deref() == Ok("1") {
            eprintln!(
                "WARNING: {dev} is not usable ({e}); KM_SKIP_KVM_TESTS=1, so the km half of this test was SKIPPED"
            );
            return None;
        }
        panic!(
            "{dev} is not usable ({e}): these tests run payloads under km and need it. \
             Give this user read/write access (e.g. group kvm), or set KM_SKIP_KVM_TESTS=1 to skip them."
        );
    }
    Some(run())
}

/// A fresh directory under target/tmp, removed on drop.
pub struct Dir(PathBuf);

impl Dir {
    pub fn new(label: &str) -> Dir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("payload-{label}-{}-{n}", process::id()));
        // A leftover from a killed run with a recycled pid is stale.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `name` in this directory, executable (a script).
    pub fn script(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

/// A path the tests know to be UTF-8, as a &str.
pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A payload invocation. The argument `{dir}` stands for the run's own
/// fresh directory, which is also its working directory.
pub struct Case {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    stdin: Vec<u8>,
    signal: Option<Signal>,
    stderr_lines: Option<usize>,
}

impl Case {
    pub fn new(name: &str, args: &[&str]) -> Case {
        Case::program(payload(name), args)
    }

    /// A case running `program` (e.g. one of the host's own binaries)
    /// rather than a payload of tests/payloads.
    pub fn program(program: PathBuf, args: &[&str]) -> Case {
        Case {
            name: program.file_name().map_or("program".into(), |n| n.to_string_lossy().into_owned()),
            program,
            args: args.iter().map(|a| a.to_string()).collect(),
            stdin: Vec::new(),
            signal: None,
            stderr_lines: None,
        }
    }

    pub fn stdin(mut self, data: Vec<u8>) -> Case {
        self.stdin = data;
        self
    }

    /// Sends `signal` to the spawned process (the payload natively, km
    /// under km) once the payload has printed the line "ready".
    pub fn signal_when_ready(mut self, signal: Signal) -> Case {
        self.signal = Some(signal);
        self
    }

    /// Compares only the first `n` lines of stderr, for reports that go on
    /// with run-dependent details (e.g. Go's goroutine numbers).
    pub fn stderr_lines(mut self, n: usize) -> Case {
        self.stderr_lines = Some(n);
        self
    }

    /// stderr as compared between the runs.
    fn compared_stderr(&self, out: &Outcome) -> String {
        let text = out.stderr_text();
        match self.stderr_lines {
            Some(n) => text.split_inclusive('\n').take(n).collect(),
            None => text,
        }
    }

    pub fn run_native(&self) -> Outcome {
        self.run(Command::new(&self.program))
    }

    /// Runs `km [--device D] OPTIONS PAYLOAD ARGS...`; km must give the
    /// payload the same argv[0] the native run gets.
    pub fn run_km(&self, options: &[&str]) -> Outcome {
        let mut cmd = Command::new(KM);
        cmd.args(device_args()).args(options).arg(&self.program);
        self.run(cmd)
    }

    fn run(&self, mut cmd: Command) -> Outcome {
        let dir = Dir::new(&self.name);
        let dir_str = dir.path().to_str().unwrap();
        cmd.args(self.args.iter().map(|a| a.replace("{dir}", dir_str))).current_dir(dir.path());
        run(cmd, &self.stdin, self.signal)
    }

    /// Runs natively, requires status `expect`, then requires the km run
    /// to match; returns the native outcome for further checks.
    pub fn check(&self, expect: i32) -> Outcome {
        self.check_with(expect, false)
    }

    /// Like `check`, but lines km adds to stderr about unimplemented
    /// syscalls and requests do not count as a difference.
    pub fn check_ignoring_km_warnings(&self, expect: i32) -> Outcome {
        self.check_with(expect, true)
    }

    fn check_with(&self, expect: i32, ignore_km_warnings: bool) -> Outcome {
        let native = self.run_native();
        assert_eq!(native.status, expect, "native run of {self}, unexpected status:\n{native}");
        if let Some(mut km) = km_half(|| self.run_km(&[])) {
            if ignore_km_warnings {
                km.stderr = km.stderr_split_km_lines().1.into_bytes();
            }
            if native.status > 128 {
                km.stderr = without_fault_report(&km).into_bytes();
            }
            assert_same(self, &native, &km);
        }
        native
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "`{}", self.name)?;
        for a in &self.args {
            write!(f, " {a:?}")?;
        }
        write!(f, "`")?;
        if let Some(signal) = self.signal {
            write!(f, " with {signal} when ready")?;
        }
        Ok(())
    }
}

/// What a run produced; `status` is shell-style (128+S for signal S).
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: i32,
}

impl Outcome {
    /// stderr as text, with the thread id in Rust's panic message
    /// ("thread 'main' (1234) panicked") masked as (TID): it is a pid.
    pub fn stderr_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            match mask_thread_id(line) {
                Some(masked) => out.push_str(&masked),
                None => out.push_str(line),
            }
        }
        out
    }

    /// Splits stderr into km's unimplemented-syscall warnings and the rest.
    pub fn stderr_split_km_lines(&self) -> (Vec<String>, String) {
        let (mut warnings, mut rest) = (Vec::new(), String::new());
        for line in self.stderr_text().split_inclusive('\n') {
            if line.starts_with(UNIMPLEMENTED) || line.starts_with(UNSUPPORTED) {
                warnings.push(line.trim_end().to_string());
            } else {
                rest.push_str(line);
            }
        }
        (warnings, rest)
    }
}

fn mask_thread_id(line: &str) -> Option<String> {
    let rest = line.strip_prefix("thread '")?;
    let open = rest.find("' (")? + 3;
    let close = open + rest[open..].find(") panicked")?;
    let id = &rest[open..close];
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("thread '{}TID{}", &rest[..open], &rest[close..]))
}

/// Shows at most this much of each stream in a failure message.
const SHOW_BYTES: usize = 4000;

fn excerpt(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(SHOW_BYTES)];
    let text = String::from_utf8_lossy(head);
    // Binary output (e.g. the 64 MiB pattern) is summarised, not dumped.
    if text.chars().any(|c| c == '\u{fffd}' || (c.is_control() && !c.is_whitespace())) {
        return format!("[binary, fnv1a {:#018x}]", fnv1a(bytes));
    }
    if bytes.len() > SHOW_BYTES {
        format!("{text}\n[... {} more bytes]", bytes.len() - SHOW_BYTES)
    } else {
        text.into_owned()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(f, "status {}", self.status)?;
        writeln!(f, "--- stdout ({} bytes) ---\n{}", self.stdout.len(), excerpt(&self.stdout))?;
        write!(f, "--- stderr ---\n{}", self.stderr_text())
    }
}

/// The first line where two outputs differ, for a readable failure.
fn first_difference(native: &[u8], km: &[u8]) -> String {
    let (a, b) = (String::from_utf8_lossy(native), String::from_utf8_lossy(km));
    let mut lines = a.split_inclusive('\n').zip(b.split_inclusive('\n')).enumerate();
    match lines.find(|(_, (x, y))| x != y) {
        Some((i, (x, y))) => format!("line {}: native {x:?}, km {y:?}", i + 1),
        None => format!("lengths differ: native {} bytes, km {} bytes", native.len(), km.len()),
    }
}

/// km reports a payload killed by a CPU fault in one line on stderr (an
/// exit code above 128 has none); the rest must match the native run.
fn without_fault_report(km: &Outcome) -> String {
    const REPORT: &str = "km: payload killed by ";
    let text = km.stderr_text();
    let reports = text.lines().filter(|l| l.starts_with(REPORT)).count();
    assert!(reports <= 1, "km must report the fatal signal in one line:\n{km}");
    text.split_inclusive('\n').filter(|l| !l.starts_with(REPORT)).collect()
}

fn assert_same(case: &Case, native: &Outcome, km: &Outcome) {
    let mut diffs = Vec::new();
    if native.status != km.status {
        diffs.push(format!("status: native {}, km {}", native.status, km.status));
    }
    if native.stdout != km.stdout {
        diffs.push(format!("stdout: {}", first_difference(&native.stdout, &km.stdout)));
    }
    let (native_err, km_err) = (case.compared_stderr(native), case.compared_stderr(km));
    if native_err != km_err {
        diffs.push(format!("stderr: {}", first_difference(native_err.as_bytes(), km_err.as_bytes())));
    }
    assert!(
        diffs.is_empty(),
        "{case}: km differs from native\n{}\n===== native =====\n{native}\n===== km =====\n{km}",
        diffs.join("\n")
    );
}

/// Runs km with exactly `args` in a fresh directory, empty stdin.
pub fn km<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Outcome {
    let dir = Dir::new("km");
    let mut cmd = Command::new(KM);
    cmd.args(args).current_dir(dir.path());
    run(cmd, &[], None)
}

/// Requires stdout empty and stderr exactly one line "km: ...", containing
/// one of `reasons` (case-insensitive).
pub fn expect_error_line(out: &Outcome, reasons: &[&str]) {
    let err = out.stderr_text();
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        out.stdout.is_empty() && lines.len() == 1 && lines[0].starts_with("km:"),
        "expected one line \"km: ...\" on stderr and nothing on stdout:\n{out}"
    );
    let line = lines[0].to_lowercase();
    assert!(
        reasons.iter().any(|r| line.contains(&r.to_lowercase())),
        "error line should mention one of {reasons:?}: {}",
        lines[0]
    );
}

/// Spawns `cmd` with the fixed environment, feeds it `stdin`, collects
/// its output and waits at most TIMEOUT. With `signal`, sends it to the
/// child when stdout has the line READY; a child that ends without that
/// line is left to fail its case by its output.
fn run(mut cmd: Command, stdin: &[u8], signal: Option<Signal>) -> Outcome {
    cmd.env_clear().envs(ENV.iter().copied()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: the hook runs in the forked child before exec and makes only
    // async-signal-safe calls (sigaction, sigprocmask) on the child's state.
    unsafe { cmd.pre_exec(clean_start) };
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));

    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    // A payload may exit without reading all its input; EPIPE is fine.
    let writer = thread::spawn(move || drop(input.write_all(&data)));
    let (ready_tx, ready_rx) = mpsc::channel();
    let stdout = read_all(child.stdout.take().unwrap(), signal.map(|_| ready_tx));
    let stderr = read_all(child.stderr.take().unwrap(), None);

    let deadline = Instant::now() + TIMEOUT;
    if let Some(signal) = signal {
        match ready_rx.recv_timeout(TIMEOUT) {
            // Not reaped yet, so the pid is still the child's.
            Ok(()) => nix::sys::signal::kill(Pid::from_raw(child.id() as i32), signal)
                .unwrap_or_else(|e| panic!("cannot send {signal} to {cmd:?}: {e}")),
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not print {READY:?} within {TIMEOUT:?}; killed it");
            }
        }
    }
    let mut pause = Duration::from_micros(100);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {TIMEOUT:?}; killed it");
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    };
    writer.join().unwrap();
    Outcome { stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap(), status: shell_status(status) }
}

/// Gives the payload Linux's defaults: every disposition SIG_DFL and an
/// empty mask, whatever the test runner inherited (`nohup` ignores SIGHUP,
/// a background job SIGINT and SIGQUIT), so native and km runs start alike.
/// In the child before exec: the state a payload starts with natively from
/// a clean shell, whatever the test runner leaked. Default dispositions, an
/// empty mask, and only fds 0-2 (a runner's inherited fds, such as an
/// open /dev/null, would otherwise be the payload's to chown or write).
fn clean_start() -> std::io::Result<()> {
    // SAFETY: closes only the child's inherited fds above stderr; the
    // child execs next and holds nothing else.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: resetting a disposition to SIG_DFL in the child before exec;
        // numbers the kernel refuses (32, 33 under glibc) just fail.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty set, written by sigemptyset, then installed as the mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    Ok(())
}

/// Reads `pipe` to its end; tells `ready` once a complete line READY is in.
fn read_all(mut pipe: impl Read + Send + 'static, mut ready: Option<mpsc::Sender<()>>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0; 64 * 1024];
        loop {
            let n = match pipe.read(&mut chunk) {
                Ok(0) => return buf,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("reading the child's output: {e}"),
            };
            buf.extend_from_slice(&chunk[..n]);
            if ready.is_some() && has_line(&buf, READY) {
                // The receiver is gone only if the harness stopped waiting.
                let _ = ready.take().unwrap().send(());
            }
        }
    })
}

/// Is `line` one of the newline-terminated lines in `buf`?
fn has_line(buf: &[u8], line: &str) -> bool {
    let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
        return false;
    };
    buf[..end].split(|&b| b == b'\n').any(|l| l == line.as_bytes())
}

fn shell_status(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        _ => unreachable!("a finished process has a code or a signal"),
    }
}

/// 64-bit FNV-1a, to compare big outputs without printing them.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}
