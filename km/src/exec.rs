//! execve: a new program in the same process. km re-executes itself (the
//! host execve of its own binary) with the program, its arguments and
//! environment, and a hidden argument naming a memfd with the state Linux
//! keeps across exec (the signal mask, ignored signals, pending signals
//! with their siginfo, the limits km emulates, which inherited fds are
//! signalfds and their masks) and what km learned of the device. The
//! host then does what Linux does to the old image: other threads end,
//! km's own fds (all close-on-exec) close, payload fds without FD_CLOEXEC
//! stay; and the new km starts the program as the first one.
//!
//! The target is checked first (permissions, format, `#!` chain, the ELF
//! interpreter), so a failing exec returns Linux's errno to a caller that
//! keeps running.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kvm_bindings::kvm_cpuid_entry2;
use nix::errno::Errno;

use crate::device::DeviceChoice;
use crate::guest::cpu::SyscallReturn;
use crate::loader::elf::{self, LoadError};
use crate::signal::{bit, KSigaction, SigInfo, NSIG, SIG_IGN, UNBLOCKABLE};
use crate::thread::Thread;

/// How km was started: what a re-executed km needs again.
#[derive(Debug)]
pub struct Launch {
    pub device: DeviceChoice,
    pub strict: bool,
    /// The diagnostics filter in force.
    pub log: String,
}

static LAUNCH: OnceLock<Launch> = OnceLock::new();

pub fn set_launch(l: Launch) {
    let _ = LAUNCH.set(l);
}

pub fn launch() -> &'static Launch {
    LAUNCH.get().expect("main records the launch options first")
}

/// Linux reads this much of a file to recognise it (BINPRM_BUF_SIZE).
const HEAD: usize = 256;
/// Interpreters one exec may go through (Linux's exec_binprm).
const MAX_INTERPRETERS: usize = 5;

/// The program to load for `path` and the arguments it gets: a `#!`
/// script becomes its interpreter, with the optional argument and the
/// script's path in front of the arguments after argv[0], as Linux does.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolved {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

///
/// For an execve (`exec`), each file needs execute permission and the
/// final program and its ELF interpreter are validated. At start-up km is
/// the program's interpreter, as ld.so can be, so it needs only to read
/// it, and km's loader reports ELF errors in detail.
pub fn resolve(path: &Path, mut args: Vec<OsString>, exec: bool) -> Result<Resolved, Errno> {
    let mut program = path.to_path_buf();
    for _ in 0..=MAX_INTERPRETERS {
        let head = open_executable(&program, exec)?;
        let Some((interp, arg)) = shebang(&head)? else {
            if exec {
                loadable(&program)?;
            }
            return Ok(Resolved { program, args });
        };
        let mut new_args = vec![interp.clone()];
        new_args.extend(arg);
        new_args.push(program.into_os_string());
        new_args.extend(args.into_iter().skip(1));
        args = new_args;
        program = PathBuf::from(interp);
    }
    Err(Errno::ELOOP)
}

/// Opens a file exec may run and returns its first bytes: a regular file
/// (with execute permission, on a filesystem that allows it, if `exec`).
fn open_executable(path: &Path, exec: bool) -> Result<Vec<u8>, Errno> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::ENOENT)?;
    // SAFETY: faccessat reads the NUL-terminated path we own.
    if exec && unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::X_OK, libc::AT_EACCESS) } != 0 {
        return Err(Errno::last());
    }
    let file = File::open(path).map_err(io_errno)?;
    let meta = file.metadata().map_err(io_errno)?;
    if !meta.is_file() {
        return Err(Errno::EACCES);
    }
    let fs = nix::sys::statvfs::fstatvfs(&file)?;
    if exec && fs.flags().contains(nix::sys::statvfs::FsFlags::ST_NOEXEC) {
        return Err(Errno::EACCES);
    }
    let mut head = Vec::with_capacity(HEAD);
    file.take(HEAD as u64).read_to_end(&mut head).map_err(io_errno)?;
    Ok(head)
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The interpreter and optional argument of a `#!` line, None if `head`
/// is not a script. Like Linux: the line ends at a newline (or the end of
/// what was read, if the interpreter's name ends before it), surrounding
/// blanks go, the name ends at the first blank and the rest is one
/// argument.
fn shebang(head: &[u8]) -> Result<Option<(OsString, Option<OsString>)>, Errno> {
    let Some(rest) = head.strip_prefix(b"#!") else { return Ok(None) };
    let blank = |c: &u8| *c == b' ' || *c == b'\t';
    let (line, complete) = match rest.iter().position(|&c| c == b'\n') {
        Some(n) => (&rest[..n], true),
        None => (rest, false),
    };
    let line = &line[..line.iter().position(|&c| c == 0).unwrap_or(line.len())];
    let start = line.iter().position(|c| !blank(c)).ok_or(Errno::ENOEXEC)?;
    let end = line.iter().rposition(|c| !blank(c)).map_or(0, |e| e + 1);
    let line = &line[start..end];
    let name_end = line.iter().position(blank).unwrap_or(line.len());
    // Without a newline in a full buffer, a name running to its end may
    // have been cut off: that would be the wrong file.
    if !complete && head.len() >= HEAD && name_end == line.len() {
        return Err(Errno::ENOEXEC);
    }
    let name = OsStr::from_bytes(&line[..name_end]).to_os_string();
    let arg = line[name_end..].iter().position(|c| !blank(c)).map(|a| {
        let a = &line[name_end + a..];
        OsStr::from_bytes(a).to_os_string()
    });
    Ok(Some((name, arg)))
}

/// An x86-64 ELF executable km can load, whose interpreter (if any)
/// exists: what Linux would run, else its errno.
fn loadable(path: &Path) -> Result<(), Errno> {
    let image = elf::inspect(path).map_err(load_errno)?;
    if let Some(interp) = image.interp {
        let i = elf::inspect(&interp).map_err(load_errno)?;
        if i.interp.is_some() {
            return Err(Errno::ELIBBAD);
        }
    }
    Ok(())
}

fn load_errno(e: LoadError) -> Errno {
    match e {
        LoadError::Io(e) => io_errno(e),
        _ => Errno::ENOEXEC,
    }
}

/// Linux's bound on one argument or environment string (MAX_ARG_STRLEN).
const MAX_ARG_STRLEN: usize = 32 * 4096;

/// E2BIG as Linux judges it: a string over MAX_ARG_STRLEN, or strings and
/// pointers over a quarter of the stack limit (at least 128 KiB, at most
/// three quarters of 8 MiB).
pub fn check_size(args: &[OsString], env: &[OsString]) -> Result<(), Errno> {
    let mut total = (args.len() + env.len() + 2) * 8;
    for s in args.iter().chain(env) {
        let len = s.len() + 1;
        if len > MAX_ARG_STRLEN {
            return Err(Errno::E2BIG);
        }
        total += len;
    }
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut lim) };
    let limit = (lim.rlim_cur / 4).clamp(32 * 4096, 6 << 20);
    if total as u64 > limit {
        return Err(Errno::E2BIG);
    }
    Ok(())
}

/// What the new km restores (the first line of the `--exec-fd` memfd).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct State {
    pub mask: u64,
    /// Signals whose disposition is SIG_IGN (kept across exec).
    pub ignored: u64,
    pub nofile: (u64, u64),
    pub address_space: (u64, u64),
    /// Signalfds that stay open: each one's mask and payload fd numbers.
    pub signalfds: Vec<(u64, Vec<i32>)>,
    /// Pending signals: the calling thread's (true) or the process's.
    pub pending: Vec<(bool, SigInfo)>,
}

impl State {
    /// "mask,ignored,limits…" then ";mask:fd.fd" for each signalfd and
    /// ";Pt" or ";Ps" and the siginfo's bytes in hex, without the zeros
    /// that end it, for each pending signal (the thread's or the process's).
    pub fn encode(&self) -> String {
        let mut s = format!(
            "{:x},{:x},{:x},{:x},{:x},{:x}",
            self.mask, self.ignored, self.nofile.0, self.nofile.1, self.address_space.0, self.address_space.1
        );
        for (mask, fds) in &self.signalfds {
            let fds: Vec<String> = fds.iter().map(|f| f.to_string()).collect();
            s += &format!(";{mask:x}:{}", fds.join("."));
        }
        for (own, info) in &self.pending {
            let len = info.0.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            s += if *own { ";Pt" } else { ";Ps" };
            s.extend(info.0[..len].iter().map(|b| format!("{b:02x}")));
        }
        s
    }

    fn decode_pending(p: &str) -> Option<(bool, SigInfo)> {
        let own = match p.get(..2)? {
            "Pt" => true,
            "Ps" => false,
            _ => return None,
        };
        let hex = &p.as_bytes()[2..];
        if !hex.len().is_multiple_of(2) || hex.len() > 256 {
            return None;
        }
        let mut info = SigInfo::default();
        for (i, pair) in hex.chunks(2).enumerate() {
            info.0[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some((own, info))
    }

    pub fn decode(s: &str) -> Option<State> {
        let mut parts = s.split(';');
        let v: Vec<u64> =
            parts.next()?.split(',').map(|p| u64::from_str_radix(p, 16)).collect::<Result<_, _>>().ok()?;
        let [mask, ignored, nc, nm, ac, am] = v[..] else { return None };
        let (pending, fds): (Vec<&str>, Vec<&str>) = parts.partition(|p| p.starts_with('P'));
        let pending = pending.into_iter().map(State::decode_pending).collect::<Option<Vec<_>>>()?;
        let signalfds = fds
            .into_iter()
            .map(|p| {
                let (m, fds) = p.split_once(':')?;
                let fds = fds.split('.').map(|f| f.parse().ok()).collect::<Option<Vec<i32>>>()?;
                Some((u64::from_str_radix(m, 16).ok()?, fds))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(State { mask, ignored, nofile: (nc, nm), address_space: (ac, am), signalfds, pending })
    }
}

/// What the old km learned of the device, which the new one does not ask
/// again (same device, same CPU), the second line of the `--exec-fd` memfd:
/// the CPUID the payload gets (the device's, as km masks it; masking again
/// changes nothing) and how `syscall` returns (the old km probed it before
/// its payload ran). Spares every exec the device's CPUID enumeration
/// (~0.7 ms of host CPUID instructions here) and the probe's guest entry.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownDevice {
    pub cpuid: Vec<kvm_cpuid_entry2>,
    pub syscall_return: SyscallReturn,
}

impl KnownDevice {
    pub fn of(proc: &crate::process::Process) -> KnownDevice {
        KnownDevice { cpuid: proc.model.cpuid.as_slice().to_vec(), syscall_return: proc.syscall_return }
    }

    /// "d" (direct) or "s" (sysret), then ",function:index:flags:eax:ebx:ecx:edx"
    /// per CPUID entry, in hex.
    pub fn encode(&self) -> String {
        let mut s = String::from(match self.syscall_return {
            SyscallReturn::Direct => "d",
            SyscallReturn::Sysret => "s",
        });
        for e in &self.cpuid {
            s += &format!(
                ",{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
                e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx
            );
        }
        s
    }

    pub fn decode(s: &str) -> Option<KnownDevice> {
        let mut parts = s.split(',');
        let syscall_return = match parts.next()? {
            "d" => SyscallReturn::Direct,
            "s" => SyscallReturn::Sysret,
            _ => return None,
        };
        let cpuid = parts
            .map(|p| {
                let v: Vec<u32> = p.split(':').map(|f| u32::from_str_radix(f, 16)).collect::<Result<_, _>>().ok()?;
                let [function, index, flags, eax, ebx, ecx, edx] = v[..] else { return None };
                Some(kvm_cpuid_entry2 { function, index, flags, eax, ebx, ecx, edx, ..Default::default() })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(KnownDevice { cpuid, syscall_return })
    }
}

/// Gives the first thread of a re-executed km the state the old one kept
/// (none at a plain start), and the host's SIGCHLD disposition to match.
pub fn restore(state: Option<&State>, first: &Thread) {
    let proc = &first.proc;
    let mut signals = proc.signals();
    if let Some(s) = state {
        for sig in (1..=NSIG as i32).filter(|&sig| s.ignored & bit(sig) != 0 && bit(sig) & UNBLOCKABLE == 0) {
            signals.set_action(sig, KSigaction { handler: SIG_IGN, ..Default::default() });
        }
        signals.set_mask(first.tid(), s.mask);
        signals.restore_pending(first.tid(), &s.pending);
        for (mask, fds) in &s.signalfds {
            crate::syscall::adopt_signalfd(&mut signals, *mask, fds);
        }
        let mut limits = crate::process::lock(&proc.limits);
        limits.restore(s.nofile, s.address_space);
        proc.space().set_limit(limits.get(libc::RLIMIT_AS).rlim_cur);
    }
    crate::syscall::mirror_sigchld(&signals.action(libc::SIGCHLD));
}

/// Replaces km with a new km running `path` (the new km resolves it
/// again; `execfn` is its AT_EXECFN) with `args` and `env`. Returns only
/// on failure, with the host's errno.
pub fn replace(
    path: &Path,
    execfn: &OsStr,
    args: &[OsString],
    env: &[OsString],
    state: &State,
    device: &KnownDevice,
) -> Errno {
    let l = launch();
    let mut km: Vec<OsString> = vec!["km".into()];
    if let DeviceChoice::Explicit(p) = &l.device {
        km.push("--device".into());
        km.push(p.clone().into_os_string());
    }
    if l.strict {
        km.push("--strict".into());
    }
    km.push(format!("--log={}", l.log).into());
    // In a memfd, not in km's arguments: hundreds of queued signals would
    // pass MAX_ARG_STRLEN, and km's arguments share the payload's E2BIG
    // budget.
    let handoff = match Handoff::new(state, device) {
        Ok(h) => h,
        Err(e) => return e,
    };
    km.push(format!("--exec-fd={}", handoff.file.as_raw_fd()).into());
    if !crate::seccomp::active() {
        // km runs unconfined (--no-seccomp): so does the new one.
        km.push("--no-seccomp".into());
    }
    km.push("--exec-path".into());
    km.push(path.as_os_str().to_os_string());
    if execfn != path.as_os_str() {
        km.push("--exec-fn".into());
        km.push(execfn.to_os_string());
    }
    km.push("--".into());
    if args.is_empty() {
        // Linux gives a program started without arguments an empty argv[0].
        km.push(OsString::new());
    }
    km.extend(args.iter().cloned());
    let cstrings = |v: &[OsString]| -> Option<Vec<CString>> {
        v.iter().map(|s| CString::new(s.clone().into_vec()).ok()).collect()
    };
    let (Some(argv), Some(envp)) = (cstrings(&km), cstrings(env)) else { return Errno::EINVAL };
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    crate::kick::set_blocked(true);
    let e = match handoff.inherit() {
        Ok(()) => {
            // SAFETY: both arrays are NULL-terminated and point at CStrings
            // alive for the call; on success nothing of this process remains.
            unsafe { libc::execve(c"/proc/self/exe".as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
            Errno::last()
        }
        Err(e) => e,
    };
    crate::kick::set_blocked(false);
    // `handoff` closes here: the memfd is km's and the exec failed.
    e
}

/// The state and device facts for the new km, in a memfd in km's fd range
/// that only the execve inherits.
struct Handoff {
    file: File,
}

impl Handoff {
    fn new(state: &State, device: &KnownDevice) -> Result<Handoff, Errno> {
        // SAFETY: memfd_create takes a NUL-terminated name and creates a fd
        // we own at once.
        let raw = unsafe { libc::memfd_create(c"km-exec".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(Errno::last());
        }
        let high = crate::fds::privatize(raw).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EMFILE)))?;
        // SAFETY: `high` was just created by privatize and is ours alone.
        let mut file = unsafe { File::from_raw_fd(high) };
        let text = format!("{}\n{}\n", state.encode(), device.encode());
        file.write_all(text.as_bytes()).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        Ok(Handoff { file })
    }

    /// Lets the execve pass the memfd on (km's other fds close with the
    /// old image).
    fn inherit(&self) -> Result<(), Errno> {
        // SAFETY: clears FD_CLOEXEC on our own fd.
        if unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
            return Err(Errno::last());
        }
        Ok(())
    }
}

/// In the new km: reads and closes the old km's `--exec-fd` memfd; the
/// state and the device facts, or None if it is not what the old km
/// wrote.
pub fn take_handoff(fd: RawFd) -> Option<(State, KnownDevice)> {
    // SAFETY: the old km named this fd in our arguments and passed it open
    // across its execve; nothing else in this process uses it. It closes
    // when the File drops.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    let mut lines = text.lines();
    let state = State::decode(lines.next()?)?;
    let device = KnownDevice::decode(lines.next()?)?;
    Some((state, device))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(s: &[u8]) -> Result<Option<(OsString, Option<OsString>)>, Errno> {
        shebang(s)
    }

    #[test]
    fn shebang_lines_split_as_linux() {
        assert_eq!(sb(b"\x7fELF"), Ok(None));
        assert_eq!(sb(b"#!/bin/sh\necho"), Ok(Some(("/bin/sh".into(), None))));
        assert_eq!(sb(b"#! /bin/sh  \n"), Ok(Some(("/bin/sh".into(), None))));
        assert_eq!(sb(b"#!/usr/bin/env  a b \t\n"), Ok(Some(("/usr/bin/env".into(), Some("a b".into())))));
        assert_eq!(sb(b"#!\n"), Err(Errno::ENOEXEC));
        assert_eq!(sb(b"#!/bin/sh"), Ok(Some(("/bin/sh".into(), None))), "short file, no newline");
        let mut long = b"#!/".to_vec();
        long.resize(HEAD, b'a');
        assert_eq!(sb(&long), Err(Errno::ENOEXEC), "no newline: the name may be cut off");
        assert_eq!(sb(b"#!/bin/sh -e"), Ok(Some(("/bin/sh".into(), Some("-e".into())))));
    }

    #[test]
    fn known_device_round_trips() {
        let entry =
            |function, index, eax| kvm_cpuid_entry2 { function, index, eax, edx: u32::MAX, ..Default::default() };
        let known = KnownDevice {
            cpuid: vec![entry(0, 0, 0xd), entry(7, 1, 0x8000_0001), entry(0x8000_0001, 0, 0)],
            syscall_return: SyscallReturn::Sysret,
        };
        assert_eq!(KnownDevice::decode(&known.encode()), Some(known.clone()));
        let direct = KnownDevice { cpuid: vec![], syscall_return: SyscallReturn::Direct };
        assert_eq!(KnownDevice::decode(&direct.encode()), Some(direct));
        assert_eq!(KnownDevice::decode("x"), None);
        assert_eq!(KnownDevice::decode("d,1:2:3"), None);
        assert_eq!(KnownDevice::decode("s,1:2:3:4:5:6:g"), None);
    }

    #[test]
    fn state_round_trips() {
        let mut s = State {
            mask: 0x8000_0001,
            ignored: 1 << 16,
            nofile: (1024, 4096),
            address_space: (u64::MAX, 7),
            signalfds: vec![],
            pending: vec![],
        };
        assert_eq!(State::decode(&s.encode()), Some(State { signalfds: vec![], ..s.clone() }));
        s.signalfds = vec![(0x300, vec![3, 7]), (1, vec![4])];
        assert_eq!(State::decode(&s.encode()), Some(s.clone()));
        s.pending = vec![(false, SigInfo::user(10, 5, 0)), (true, SigInfo::queued(40, libc::SI_QUEUE, 5, 0, 0xab00))];
        assert_eq!(State::decode(&s.encode()), Some(s));
        assert_eq!(State::decode("1,2"), None);
    }
}
