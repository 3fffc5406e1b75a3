//! What the virtual files contain, generated when they are opened (as
//! procfs generates them), and the memfds that carry it.

use std::ffi::CString;
use std::fmt::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use nix::errno::Errno;

use super::node::{Leaf, Node, View};
use crate::guest::layout::monitor;
use crate::mem::{copy, GuestRange};
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

pub fn generate(proc: &Process, view: View, leaf: Leaf) -> Result<Vec<u8>, Errno> {
    let startup = &proc.startup;
    Ok(match leaf {
        Leaf::Maps => maps(proc)?,
        Leaf::Status => status(proc, view)?.into_bytes(),
        Leaf::Stat => stat(proc, view)?.into_bytes(),
        Leaf::Statm => {
            let u = Usage::of(proc)?;
            format!("{} {} {} {} 0 {} 0\n", u.size, u.resident, u.shared, u.text, u.data + u.stack).into_bytes()
        }
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
    match GuestRange::new(start, v.len() as u64).and_then(|r| copy::read_bytes(r, &mut v)) {
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

/// The payload's mappings: km's record of them, each piece with what the
/// host knows of it (file, offset, device, inode, shared or private)
/// taken from km's own maps, where payload memory is mapped at the same
/// addresses with the same protections; then the vDSO.
fn pieces<'a>(proc: &Process, host: &'a str) -> Vec<HostMap<'a>> {
    let (mappings, heap) = {
        let space = proc.space();
        (space.mappings(), space.heap())
    };
    let lines: Vec<HostMap> = host.lines().filter_map(parse_map).collect();
    let stack = proc.startup.stack;
    let mut out = Vec::new();
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
            out.push(HostMap { start: ps, end: pe, offset, name, ..*h });
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
    out.push(vdso(monitor::VVAR, monitor::VVAR_SIZE, "r--p", "[vvar]"));
    out.push(vdso(monitor::VDSO, monitor::VDSO_SIZE, "r-xp", "[vdso]"));
    out
}

fn own_maps() -> Result<String, Errno> {
    std::fs::read_to_string("/proc/self/maps").map_err(|_| Errno::EIO)
}

fn maps(proc: &Process) -> Result<Vec<u8>, Errno> {
    let host = own_maps()?;
    let mut out = String::new();
    for m in pieces(proc, &host) {
        map_line(&mut out, &m);
    }
    Ok(out.into_bytes())
}

/// The payload's memory use in pages, as statm counts it (and status in
/// kB): everything mapped, what is resident (of it, file-backed or
/// shared), the executable's code, private writable data, the stack.
struct Usage {
    size: u64,
    resident: u64,
    shared: u64,
    text: u64,
    /// Executable, not writable, not stack: code of any kind.
    exec: u64,
    data: u64,
    stack: u64,
    /// The executable's code and data segments, for stat.
    code: (u64, u64),
    data_segment: (u64, u64),
}

const PAGE: u64 = crate::guest::layout::PAGE_SIZE;

/// Pages of [start, end) in memory now, by mincore on km's own view of
/// them (the same pages).
fn resident(start: u64, end: u64) -> u64 {
    let pages = ((end - start) / PAGE) as usize;
    let mut vec = vec![0u8; pages];
    // SAFETY: mincore writes one byte per page of the range into `vec`,
    // which has that many; the range is payload memory (or the vDSO),
    // mapped in km's address space.
    if unsafe { libc::mincore(start as *mut libc::c_void, end as usize - start as usize, vec.as_mut_ptr()) } != 0 {
        return 0;
    }
    vec.iter().filter(|&&b| b & 1 != 0).count() as u64
}

impl Usage {
    fn of(proc: &Process) -> Result<Usage, Errno> {
        let host = own_maps()?;
        let exe = proc.exe.to_string_lossy();
        let mut u = Usage {
            size: 0,
            resident: 0,
            shared: 0,
            text: 0,
            exec: 0,
            data: 0,
            stack: 0,
            code: (0, 0),
            data_segment: (0, 0),
        };
        for m in pieces(proc, &host) {
            let pages = (m.end - m.start) / PAGE;
            u.size += pages;
            if m.name == "[vvar]" {
                continue;
            }
            let r = resident(m.start, m.end);
            u.resident += r;
            let perm = |i: usize, c: u8| m.perms.as_bytes().get(i) == Some(&c);
            let (write, exec, shared) = (perm(1, b'w'), perm(2, b'x'), perm(3, b's'));
            if m.inode != "0" || shared {
                u.shared += r;
            }
            if exec && !write {
                u.exec += pages;
            }
            if m.name == "[stack]" {
                u.stack += pages;
            } else if write && !shared {
                u.data += pages;
            }
            if m.name == exe {
                if exec && u.code == (0, 0) {
                    u.code = (m.start, m.end);
                    u.text += pages;
                } else if write {
                    if u.data_segment.0 == 0 {
                        u.data_segment.0 = m.start;
                    }
                    u.data_segment.1 = m.end;
                }
            }
        }
        Ok(u)
    }
}

/// Linux's fd table size for the highest fd open: 64 fds, then powers of
/// two times 128.
fn fd_table_size() -> Result<u64, Errno> {
    let top = super::node::payload_fds()?.last().copied().unwrap_or(0) as u64;
    if top < 64 {
        return Ok(64);
    }
    Ok((top / 128 + 1).next_power_of_two() * 128)
}

fn thread_of(proc: &Process, view: View) -> crate::signal::Tid {
    view.tid.unwrap_or(proc.pid)
}

/// km's own status of the same thread with what is km's replaced by the
/// payload's: memory, fd table, threads, signals. Lines about memory km
/// cannot count for the payload (peaks, locked, page tables, swap) are left
/// out.
fn status(proc: &Process, view: View) -> Result<String, Errno> {
    let host = std::fs::read_to_string(format!("{}/status", Node::Dir(view).path(proc))).map_err(|_| Errno::ESRCH)?;
    let u = Usage::of(proc)?;
    let [pending, shared, blocked, ignored, caught] = proc.signals().summary(thread_of(proc, view));
    let threads = proc.signals().threads.len();
    let kb = |pages: u64| format!("{:>8} kB", pages * PAGE / 1024);
    let mut out = String::new();
    for line in host.lines() {
        let key = line.split(':').next().unwrap_or("");
        let value = match key {
            "FDSize" => fd_table_size()?.to_string(),
            "VmSize" => kb(u.size),
            "VmRSS" => kb(u.resident),
            "RssAnon" => kb(u.resident.saturating_sub(u.shared)),
            "RssFile" => kb(u.shared),
            "RssShmem" => kb(0),
            "VmData" => kb(u.data),
            "VmStk" => kb(u.stack),
            "VmExe" => kb(u.text),
            "VmLib" => kb(u.exec.saturating_sub(u.text)),
            "Threads" => threads.to_string(),
            "SigPnd" => format!("{pending:016x}"),
            "ShdPnd" => format!("{shared:016x}"),
            "SigBlk" => format!("{blocked:016x}"),
            "SigIgn" => format!("{ignored:016x}"),
            "SigCgt" => format!("{caught:016x}"),
            k if k.starts_with("Vm") || k.starts_with("Hugetlb") => continue,
            _ => {
                out.push_str(line);
                out.push('\n');
                continue;
            }
        };
        let _ = writeln!(out, "{key}:\t{value}");
    }
    Ok(out)
}

/// km's own stat line of the same thread with the payload's thread count,
/// memory, code, data and stack addresses, argument and environment
/// areas and signal sets in place of km's.
fn stat(proc: &Process, view: View) -> Result<String, Errno> {
    let host = std::fs::read_to_string(format!("{}/stat", Node::Dir(view).path(proc))).map_err(|_| Errno::ESRCH)?;
    let close = host.rfind(')').ok_or(Errno::EIO)?;
    let (head, tail) = host.split_at(close + 1);
    let mut fields: Vec<String> = tail.split_whitespace().map(str::to_string).collect();
    let u = Usage::of(proc)?;
    let [pending, shared, blocked, ignored, caught] = proc.signals().summary(thread_of(proc, view));
    let heap = proc.space().heap();
    let st = &proc.startup;
    let threads = proc.signals().threads.len() as u64;
    // Field numbers as in proc(5); the state (3) is fields[0].
    let mut set = |n: usize, v: u64| {
        if let Some(f) = fields.get_mut(n - 3) {
            *f = v.to_string();
        }
    };
    set(20, threads);
    set(23, u.size * PAGE);
    set(24, u.resident);
    set(26, u.code.0);
    set(27, u.code.1);
    set(28, st.sp);
    set(31, pending | shared);
    set(32, blocked);
    set(33, ignored);
    set(34, caught);
    set(45, u.data_segment.0);
    set(46, u.data_segment.1);
    set(47, heap.0);
    set(48, st.args.0);
    set(49, st.args.1);
    set(50, st.env.0);
    set(51, st.env.1);
    Ok(format!("{head} {}\n", fields.join(" ")))
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
        let lim = if crate::limits::emulated(resource) {
            emulated.get(resource)
        } else {
            let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: getrlimit writes one rlimit into the struct we own.
            unsafe { libc::getrlimit(resource, &mut l) };
            l
        };
        let _ = write!(out, "{name:<25} {:<20} {:<20} ", value(lim.rlim_cur), value(lim.rlim_max));
        if unit.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{unit:<10}");
        }
    }
    out
}
