//! What the virtual files contain, generated when they are opened (as
//! procfs generates them), and the memfds that carry it.

use std::ffi::CString;
use std::fmt::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use nix::errno::Errno;

use super::node::Leaf;
use crate::guest::layout::monitor;
use crate::mem::copy;
use crate::process::Process;

/// A new, empty memfd for the payload (close-on-exec if it asked).
pub fn memfd(flags: i32) -> Result<OwnedFd, Errno> {
    let cloexec = if flags & libc::O_CLOEXEC != 0 { libc::MFD_CLOEXEC } else { 0 };
    // SAFETY: memfd_create reads a NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"km-proc".as_ptr(), cloexec | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: just created, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A read-only fd on a sealed memfd holding `bytes`.
pub fn snapshot(bytes: &[u8], flags: i32) -> Result<OwnedFd, Errno> {
    // Above the payload's floor, so the fd the payload gets is the one
    // number a native open would give.
    let low = memfd(libc::O_CLOEXEC)?;
    let high = crate::fds::privatize(low.into_raw_fd()).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    // SAFETY: privatize returned a new fd that only we hold.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(high) });
    std::io::Write::write_all(&mut file, bytes).map_err(|_| Errno::ENOMEM)?;
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on the memfd owned by `file`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(Errno::last());
    }
    // A read-only open of its own, at position 0, so writes are EBADF as
    // on a read-only procfs file.
    let path = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).expect("no NUL");
    // SAFETY: opens km's own memfd again through procfs.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | (flags & libc::O_CLOEXEC)) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: just created, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn generate(proc: &Process, leaf: Leaf) -> Result<Vec<u8>, Errno> {
    let startup = &proc.startup;
    Ok(match leaf {
        Leaf::Maps => maps(proc)?,
        Leaf::Cmdline => live(startup.args),
        Leaf::Environ => live(startup.env),
        Leaf::Auxv => startup.auxv.clone(),
        Leaf::Limits => limits(proc).into_bytes(),
        Leaf::FdInfo(fd) => std::fs::read(format!("/proc/self/fdinfo/{fd}")).map_err(|_| Errno::ENOENT)?,
        Leaf::Mem => Vec::new(),
    })
}

/// Payload memory as it is now (cmdline and environ read the strings
/// where exec put them, as Linux does); nothing if it is gone.
fn live((start, end): (u64, u64)) -> Vec<u8> {
    let mut v = vec![0u8; (end - start) as usize];
    match copy::read_bytes(start, &mut v) {
        Ok(()) => v,
        Err(_) => Vec::new(),
    }
}

/// One line of maps.
#[derive(Clone, Copy)]
struct HostMap<'a> {
    start: u64,
    end: u64,
    perms: &'a str,
    offset: u64,
    dev: &'a str,
    inode: &'a str,
    name: &'a str,
}

fn parse_map(line: &str) -> Option<HostMap<'_>> {
    let mut f = line.splitn(6, ' ');
    let (range, perms, offset, dev, inode) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    let name = f.next().unwrap_or("").trim_start_matches(' ');
    let (s, e) = range.split_once('-')?;
    Some(HostMap {
        start: u64::from_str_radix(s, 16).ok()?,
        end: u64::from_str_radix(e, 16).ok()?,
        perms,
        offset: u64::from_str_radix(offset, 16).ok()?,
        dev,
        inode,
        name,
    })
}

fn map_line(out: &mut String, m: &HostMap) {
    let before = out.len();
    let _ = write!(out, "{:08x}-{:08x} {} {:08x} {} {} ", m.start, m.end, m.perms, m.offset, m.dev, m.inode);
    if !m.name.is_empty() {
        // Linux pads the name to column 73.
        let width = out.len() - before;
        out.extend(std::iter::repeat_n(' ', 73usize.saturating_sub(width)));
        out.push_str(m.name);
    }
    out.push('\n');
}

/// The payload's mappings: km's record of them, with what the host knows
/// of each piece (file, offset, device, inode, shared or private) taken
/// from km's own maps, where payload memory is mapped at the same
/// addresses with the same protections; then the vDSO.
fn maps(proc: &Process) -> Result<Vec<u8>, Errno> {
    let (mappings, heap) = {
        let space = proc.space();
        (space.mappings(), space.heap())
    };
    let host = std::fs::read_to_string("/proc/self/maps").map_err(|_| Errno::EIO)?;
    let lines: Vec<HostMap> = host.lines().filter_map(parse_map).collect();
    let stack = proc.startup.stack;
    let mut out = String::new();
    for (s, e) in mappings {
        for h in lines.iter().filter(|h| h.start < e && h.end > s) {
            let (ps, pe) = (s.max(h.start), e.min(h.end));
            let file = h.inode != "0";
            let offset = if file { h.offset + (ps - h.start) } else { h.offset };
            let name = if !h.name.is_empty() {
                h.name
            } else if ps >= heap.0 && pe <= heap.1 {
                "[heap]"
            } else if ps >= stack.0 && pe <= stack.1 {
                "[stack]"
            } else {
                ""
            };
            map_line(&mut out, &HostMap { start: ps, end: pe, offset, name, ..*h });
        }
    }
    let vdso = |start, size, perms, name| HostMap {
        start,
        end: start + size,
        perms,
        offset: 0,
        dev: "00:00",
        inode: "0",
        name,
    };
    map_line(&mut out, &vdso(monitor::VVAR, monitor::VVAR_SIZE, "r--p", "[vvar]"));
    map_line(&mut out, &vdso(monitor::VDSO, monitor::VDSO_SIZE, "r-xp", "[vdso]"));
    Ok(out.into_bytes())
}

/// Linux's table: name, resource, unit.
const LIMITS: &[(&str, u32, &str)] = &[
    ("Max cpu time", libc::RLIMIT_CPU, "seconds"),
    ("Max file size", libc::RLIMIT_FSIZE, "bytes"),
    ("Max data size", libc::RLIMIT_DATA, "bytes"),
    ("Max stack size", libc::RLIMIT_STACK, "bytes"),
    ("Max core file size", libc::RLIMIT_CORE, "bytes"),
    ("Max resident set", libc::RLIMIT_RSS, "bytes"),
    ("Max processes", libc::RLIMIT_NPROC, "processes"),
    ("Max open files", libc::RLIMIT_NOFILE, "files"),
    ("Max locked memory", libc::RLIMIT_MEMLOCK, "bytes"),
    ("Max address space", libc::RLIMIT_AS, "bytes"),
    ("Max file locks", libc::RLIMIT_LOCKS, "locks"),
    ("Max pending signals", libc::RLIMIT_SIGPENDING, "signals"),
    ("Max msgqueue size", libc::RLIMIT_MSGQUEUE, "bytes"),
    ("Max nice priority", libc::RLIMIT_NICE, ""),
    ("Max realtime priority", libc::RLIMIT_RTPRIO, ""),
    ("Max realtime timeout", libc::RLIMIT_RTTIME, "us"),
];

/// The payload's limits: km's emulated ones where km keeps them, the
/// host's (which are the payload's) elsewhere.
fn limits(proc: &Process) -> String {
    let emulated = crate::process::lock(&proc.limits);
    let mut out = format!("{:<25} {:<20} {:<20} {:<10}\n", "Limit", "Soft Limit", "Hard Limit", "Units");
    let value = |v: u64| if v == libc::RLIM_INFINITY { "unlimited".to_string() } else { v.to_string() };
    for &(name, resource, unit) in LIMITS {
        let lim = emulated.get(resource).unwrap_or_else(|| {
            let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: getrlimit writes one rlimit into the struct we own.
            unsafe { libc::getrlimit(resource, &mut l) };
            l
        });
        let _ = write!(out, "{name:<25} {:<20} {:<20} ", value(lim.rlim_cur), value(lim.rlim_max));
        if unit.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{unit:<10}");
        }
    }
    out
}
