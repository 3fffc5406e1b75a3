//! Sockets. Socket fds are host fds like any other; what needs care are
//! the arguments the kernel would follow further: in/out lengths it reads
//! from payload memory (accept's addrlen, getsockopt's optlen), message
//! headers with their iovecs, names and control data, and socket options
//! that carry pointers or fds. km copies each of those into its own memory,
//! checks it, lets the host work on km's copy and copies the results back,
//! so the payload cannot change them between the check and the host call.
//! Received SCM_RIGHTS fds become payload fds or are closed.

use libc::*;
use nix::errno::Errno;

use super::args::{buf, fd, new_fd, new_fd_pair, obj, rw_buf};
use super::{host, unsupported, Ctx, Restart, Ret};
use crate::fds;
use crate::mem::copy::{self, Pod};
use crate::mem::GuestRange;

type A = [u64; 6];

/// sizeof(struct sockaddr_storage): the kernel never reads or writes a
/// longer address.
const ADDR_MAX: usize = 128;
/// UIO_MAXIOV, the most iovecs (and mmsghdrs) one call takes.
const IOV_MAX: u64 = 1024;
/// More control data than any socket accepts (optmem_max is far lower):
/// the host answers ENOBUFS for it too.
const CONTROL_MAX: u64 = 1 << 20;
/// The most option bytes km copies for getsockopt/setsockopt.
const OPT_MAX: u64 = 1 << 16;
const SCM_RIGHTS_TYPE: i32 = SCM_RIGHTS;

/// struct msghdr, as the x86-64 kernel lays it out.
#[derive(Clone, Copy, Default, Debug)]
#[repr(C)]
struct MsgHdr {
    name: u64,
    namelen: u32,
    _pad: u32,
    iov: u64,
    iovlen: u64,
    control: u64,
    controllen: u64,
    flags: i32,
    _pad2: u32,
}

// SAFETY: integers only, any bit pattern is valid.
unsafe impl Pod for MsgHdr {}

/// struct mmsghdr: a msghdr and the byte count of its message.
const MMSGHDR_SIZE: u64 = 64;
const MSG_LEN_OFFSET: u64 = 56;
const MSG_NAMELEN_OFFSET: u64 = 8;
const MSG_CONTROLLEN_OFFSET: u64 = 40;
const MSG_FLAGS_OFFSET: u64 = 48;

/// A blocking socket call. Linux restarts one a handler interrupted only
/// when the socket has no timeout in that direction (`timeout`:
/// SO_RCVTIMEO or SO_SNDTIMEO); with one it is EINTR (sock_intr_errno).
/// The timeout is asked only once the call was interrupted.
fn sock_blocking(ctx: &mut Ctx, nr: c_long, a: A, timeout: i32) -> Ret {
    let r = ctx.blocking(nr, a, Restart::IfSaRestart);
    if r == Err(Errno::EINTR) && ctx.interrupted == Some(Restart::IfSaRestart) {
        let mut tv = timeval { tv_sec: 0, tv_usec: 0 };
        let mut len = std::mem::size_of::<timeval>() as u32;
        let (tv_at, len_at) = (&mut tv as *mut timeval as u64, &mut len as *mut u32 as u64);
        let asked = host(SYS_getsockopt, [a[0], SOL_SOCKET as u64, timeout as u64, tv_at, len_at, 0]);
        if asked.is_ok() && (tv.tv_sec != 0 || tv.tv_usec != 0) {
            ctx.interrupted = Some(Restart::Never);
        }
    }
    r
}

pub fn socket(_: &mut Ctx, a: A) -> Ret {
    new_fd(host(SYS_socket, a))
}

pub fn socketpair(_: &mut Ctx, a: A) -> Ret {
    let out = obj::<[i32; 2]>(a[3])?;
    let mut pair = [-1i32; 2];
    host(SYS_socketpair, [a[0], a[1], a[2], pair.as_mut_ptr() as u64, 0, 0])?;
    new_fd_pair(pair, out)
}

/// An address the kernel reads: `len` bytes, never more than ADDR_MAX
/// (a longer one is EINVAL before the kernel reads it).
fn addr_in(ptr: u64, len: u64) -> Result<(), Errno> {
    if len as u32 as usize <= ADDR_MAX {
        buf(ptr, len as u32 as u64)?;
    }
    Ok(())
}

pub fn bind(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    addr_in(a[1], a[2])?;
    host(SYS_bind, a)
}

pub fn connect(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    addr_in(a[1], a[2])?;
    sock_blocking(ctx, SYS_connect, a, SO_SNDTIMEO)
}

pub fn listen(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    host(SYS_listen, a)
}

pub fn shutdown(_: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    host(SYS_shutdown, a)
}

/// An address the kernel writes, with its in/out length at `len_at`:
/// the host fills km's buffer, km copies back what fits the payload's.
struct AddrOut {
    user: Option<(GuestRange, GuestRange)>,
    user_len: u32,
    storage: [u8; ADDR_MAX],
    len: u32,
}

impl AddrOut {
    fn new(ptr: u64, len_at: u64) -> Result<AddrOut, Errno> {
        if ptr == 0 {
            return Ok(AddrOut { user: None, user_len: 0, storage: [0; ADDR_MAX], len: 0 });
        }
        let len_range = obj::<u32>(len_at)?;
        let user_len: u32 = copy::read_obj(len_range)?;
        if user_len as i32 <= -1 {
            return Err(Errno::EINVAL);
        }
        let addr = buf(ptr, u64::from(user_len).min(ADDR_MAX as u64))?;
        Ok(AddrOut { user: Some((addr, len_range)), user_len, storage: [0; ADDR_MAX], len: ADDR_MAX as u32 })
    }

    /// The (address, length pointer) pair for the host call.
    fn host_args(&mut self) -> (u64, u64) {
        match self.user {
            Some(_) => (self.storage.as_mut_ptr() as u64, &mut self.len as *mut u32 as u64),
            None => (0, 0),
        }
    }

    /// Copies the address back: as many bytes as the payload's buffer
    /// holds, and the full length, as the kernel does.
    fn finish(&self) -> Result<(), Errno> {
        let Some((addr, len_at)) = self.user else { return Ok(()) };
        let n = self.len.min(self.user_len).min(ADDR_MAX as u32) as usize;
        copy::write_bytes(addr, &self.storage[..n])?;
        copy::write_obj(len_at, &self.len)
    }
}

fn accept_common(ctx: &mut Ctx, listener: u64, addr: u64, len_at: u64, flags: u64) -> Ret {
    fd(listener)?;
    let mut out = AddrOut::new(addr, len_at)?;
    let (p, l) = out.host_args();
    let new = new_fd(sock_blocking(ctx, SYS_accept4, [listener, p, l, flags, 0, 0], SO_RCVTIMEO))?;
    if let Err(e) = out.finish() {
        // SAFETY: the fd was created by this call and is known to no one.
        unsafe { libc::close(new as i32) };
        return Err(e);
    }
    Ok(new)
}

pub fn accept(ctx: &mut Ctx, a: A) -> Ret {
    accept_common(ctx, a[0], a[1], a[2], 0)
}

pub fn accept4(ctx: &mut Ctx, a: A) -> Ret {
    accept_common(ctx, a[0], a[1], a[2], a[3])
}

fn name_common(nr: c_long, a: A) -> Ret {
    fd(a[0])?;
    // Both pointers are required here.
    if a[1] == 0 {
        return Err(Errno::EFAULT);
    }
    let mut out = AddrOut::new(a[1], a[2])?;
    let (p, l) = out.host_args();
    host(nr, [a[0], p, l, 0, 0, 0])?;
    out.finish()?;
    Ok(0)
}

pub fn getsockname(_: &mut Ctx, a: A) -> Ret {
    name_common(SYS_getsockname, a)
}

pub fn getpeername(_: &mut Ctx, a: A) -> Ret {
    name_common(SYS_getpeername, a)
}

pub fn sendto(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    ctx.no_sigpipe = a[3] & MSG_NOSIGNAL as u64 != 0;
    rw_buf(a[1], a[2])?;
    if a[4] != 0 {
        addr_in(a[4], a[5])?;
    }
    sock_blocking(ctx, SYS_sendto, a, SO_SNDTIMEO)
}

pub fn recvfrom(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    rw_buf(a[1], a[2])?;
    let mut out = AddrOut::new(a[4], a[5])?;
    let (p, l) = out.host_args();
    let n = sock_blocking(ctx, SYS_recvfrom, [a[0], a[1], a[2], a[3], p, l], SO_RCVTIMEO)?;
    out.finish()?;
    Ok(n)
}

/// Socket options km passes to the host: those whose values are plain
/// data. Options that carry pointers (BPF programs, netfilter tables,
/// TCP zero-copy receive) or install fds (SO_PEERPIDFD, SO_PASSPIDFD)
/// are refused, as is every option km does not know.
fn option_allowed(level: i32, opt: i32) -> bool {
    match level {
        SOL_SOCKET => matches!(opt, 1..=21 | 25 | 27..=49 | 53 | 56 | 57 | 59..=75),
        IPPROTO_TCP => matches!(opt, 1..=14 | 16..=18 | 23..=28 | 30 | 31 | 34 | 36 | 37),
        IPPROTO_IP => matches!(opt, 1..=15 | 18 | 19 | 21..=26 | 32..=51),
        IPPROTO_IPV6 => matches!(opt, 1..=31 | 36 | 42..=62 | 66 | 67 | 70 | 72..=78),
        IPPROTO_UDP => matches!(opt, 1 | 100..=104),
        SOL_NETLINK => matches!(opt, 1..=5 | 8..=12),
        _ => false,
    }
}

fn refuse_option(ctx: &mut Ctx, call: &str, level: i32, opt: i32) -> Ret {
    unsupported(ctx, &format!("{call} level {level} option {opt}"), Errno::ENOPROTOOPT)
}

pub fn setsockopt(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    let (level, opt, len) = (a[1] as i32, a[2] as i32, a[4] as u32);
    if !option_allowed(level, opt) {
        return refuse_option(ctx, "setsockopt", level, opt);
    }
    if len as i32 <= -1 {
        return Err(Errno::EINVAL);
    }
    // The host reads the value from km's copy.
    let mut value = vec![0u8; u64::from(len).min(OPT_MAX) as usize];
    if !value.is_empty() {
        copy::read_bytes(buf(a[3], value.len() as u64)?, &mut value)?;
    }
    host(SYS_setsockopt, [a[0], a[1], a[2], value.as_ptr() as u64, value.len() as u64, 0])
}

pub fn getsockopt(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    let (level, opt) = (a[1] as i32, a[2] as i32);
    if !option_allowed(level, opt) {
        return refuse_option(ctx, "getsockopt", level, opt);
    }
    let len_at = obj::<u32>(a[4])?;
    let user_len: u32 = copy::read_obj(len_at)?;
    if user_len as i32 <= -1 {
        return Err(Errno::EINVAL);
    }
    let mut value = vec![0u8; u64::from(user_len).min(OPT_MAX) as usize];
    let out = buf(a[3], value.len() as u64)?;
    let mut len = value.len() as u32;
    host(SYS_getsockopt, [a[0], a[1], a[2], value.as_mut_ptr() as u64, &mut len as *mut u32 as u64, 0])?;
    let n = (len as usize).min(value.len());
    copy::write_bytes(out, &value[..n])?;
    copy::write_obj(len_at, &len)?;
    Ok(0)
}

/// A message header copied into km, with its own copies of the iovec
/// array, the name and the control data, ready for the host.
struct Message {
    hdr: MsgHdr,
    user: MsgHdr,
    iov: Vec<iovec>,
    name: [u8; ADDR_MAX],
    control: Vec<u8>,
}

impl Message {
    /// Reads and checks the payload's msghdr at `at`; for a send, the name
    /// and control data are copied in (and SCM_RIGHTS checked).
    fn new(at: GuestRange, send: bool) -> Result<Message, Errno> {
        let user: MsgHdr = copy::read_obj(at)?;
        if user.iovlen > IOV_MAX {
            return Err(Errno::EMSGSIZE);
        }
        let mut iov = vec![iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; user.iovlen as usize];
        if !iov.is_empty() {
            copy::read_slice(GuestRange::array::<iovec>(user.iov, user.iovlen)?, &mut iov)?;
        }
        for v in &iov {
            rw_buf(v.iov_base as u64, v.iov_len as u64)?;
        }
        let mut m = Message { hdr: MsgHdr::default(), user, iov, name: [0; ADDR_MAX], control: Vec::new() };
        // For a receive, the name and control buffers are only checked
        // when something is written there, as the kernel does.
        if user.name != 0 {
            if send && user.namelen as usize > ADDR_MAX {
                return Err(Errno::EINVAL);
            }
            let n = (user.namelen as usize).min(ADDR_MAX);
            if send {
                copy::read_bytes(buf(user.name, n as u64)?, &mut m.name[..n])?;
            }
            m.hdr.name = m.name.as_mut_ptr() as u64;
            m.hdr.namelen = if send { n as u32 } else { ADDR_MAX as u32 };
        }
        if user.control != 0 && user.controllen > 0 {
            if send && user.controllen > CONTROL_MAX {
                return Err(Errno::ENOBUFS);
            }
            m.control = vec![0u8; user.controllen.min(CONTROL_MAX) as usize];
            if send {
                copy::read_bytes(buf(user.control, user.controllen)?, &mut m.control)?;
                check_rights_sent(&m.control)?;
            }
            m.hdr.control = m.control.as_mut_ptr() as u64;
            m.hdr.controllen = m.control.len() as u64;
        }
        m.hdr.iov = m.iov.as_mut_ptr() as u64;
        m.hdr.iovlen = m.iov.len() as u64;
        m.hdr.flags = 0;
        Ok(m)
    }

    fn host_ptr(&mut self) -> u64 {
        &mut self.hdr as *mut MsgHdr as u64
    }

    /// After a receive: received fds checked, then name, control data and
    /// the lengths and flags copied back into the payload's msghdr at `at`.
    fn finish_recv(&mut self, at: u64) -> Result<(), Errno> {
        let mut flags = self.hdr.flags;
        let used = (self.hdr.controllen as usize).min(self.control.len());
        if keep_payload_fds(&mut self.control[..used]) {
            flags |= MSG_CTRUNC;
        }
        if self.user.name != 0 {
            let n = self.hdr.namelen.min(self.user.namelen).min(ADDR_MAX as u32) as usize;
            if n > 0 {
                copy::write_bytes(buf(self.user.name, n as u64)?, &self.name[..n])?;
            }
            copy::write_obj(GuestRange::of::<u32>(at + MSG_NAMELEN_OFFSET)?, &self.hdr.namelen)?;
        }
        if used > 0 {
            let written = buf(self.user.control, used as u64).and_then(|r| copy::write_bytes(r, &self.control[..used]));
            if let Err(e) = written {
                close_received_fds(&self.control[..used]);
                return Err(e);
            }
        }
        copy::write_obj(GuestRange::of::<u64>(at + MSG_CONTROLLEN_OFFSET)?, &(used as u64))?;
        copy::write_obj(GuestRange::of::<i32>(at + MSG_FLAGS_OFFSET)?, &flags)
    }
}

/// Walks control messages as the kernel does (CMSG_FIRSTHDR/NXTHDR):
/// calls `f` with each header's offset, level, type and data range.
/// Err(EINVAL) for a malformed one, which the kernel rejects as well.
fn each_cmsg(control: &[u8], mut f: impl FnMut(usize, i32, i32, std::ops::Range<usize>)) -> Result<(), Errno> {
    const HDR: usize = 16;
    let mut at = 0;
    while control.len().saturating_sub(at) >= HDR {
        let len = u64::from_le_bytes(control[at..at + 8].try_into().expect("8 bytes")) as usize;
        let level = i32::from_le_bytes(control[at + 8..at + 12].try_into().expect("4 bytes"));
        let kind = i32::from_le_bytes(control[at + 12..at + 16].try_into().expect("4 bytes"));
        if len < HDR || len > control.len() - at {
            return Err(Errno::EINVAL);
        }
        f(at, level, kind, at + HDR..at + len);
        at += len.next_multiple_of(8);
    }
    Ok(())
}

/// SCM_RIGHTS may carry only the payload's own fds: a number of km's is
/// EBADF, as an fd that is not open.
fn check_rights_sent(control: &[u8]) -> Result<(), Errno> {
    let mut bad = false;
    each_cmsg(control, |_, level, kind, data| {
        if level == SOL_SOCKET && kind == SCM_RIGHTS_TYPE {
            for f in control[data].chunks_exact(4) {
                bad |= !fds::payload_may_use(i32::from_le_bytes(f.try_into().expect("4 bytes")).into());
            }
        }
    })?;
    if bad {
        Err(Errno::EBADF)
    } else {
        Ok(())
    }
}

/// Received SCM_RIGHTS fds that landed in km's range (the payload's own
/// were all in use) are closed and cut from the message; true if any
/// were, for MSG_CTRUNC, as when the kernel cannot install them all.
fn keep_payload_fds(control: &mut [u8]) -> bool {
    let mut cuts = Vec::new();
    let _ = each_cmsg(control, |at, level, kind, data| {
        if level == SOL_SOCKET && kind == SCM_RIGHTS_TYPE {
            cuts.push((at, data));
        }
    });
    let mut truncated = false;
    for (at, data) in cuts {
        let fds_in: Vec<i32> =
            control[data.clone()].chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().expect("4"))).collect();
        let keep = fds_in.iter().take_while(|&&f| fds::within_open_limit(f.into())).count();
        if keep == fds_in.len() {
            continue;
        }
        truncated = true;
        for &f in &fds_in[keep..] {
            // SAFETY: the fd was just received by km's call and is not
            // handed to the payload.
            unsafe { libc::close(f) };
        }
        let len = (16 + 4 * keep) as u64;
        control[at..at + 8].copy_from_slice(&len.to_le_bytes());
        control[data.start + 4 * keep..data.end].fill(0);
    }
    truncated
}

/// Closes every fd a message received, when it cannot reach the payload.
fn close_received_fds(control: &[u8]) {
    let _ = each_cmsg(control, |_, level, kind, data| {
        if level == SOL_SOCKET && kind == SCM_RIGHTS_TYPE {
            for b in control[data].chunks_exact(4) {
                let f = i32::from_le_bytes(b.try_into().expect("4 bytes"));
                if fds::payload_may_use(f.into()) {
                    // SAFETY: the fd was received by km's call for a message
                    // the payload will not see.
                    unsafe { libc::close(f) };
                }
            }
        }
    });
}

pub fn sendmsg(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    ctx.no_sigpipe = a[2] & MSG_NOSIGNAL as u64 != 0;
    let mut m = Message::new(obj::<MsgHdr>(a[1])?, true)?;
    sock_blocking(ctx, SYS_sendmsg, [a[0], m.host_ptr(), a[2], 0, 0, 0], SO_SNDTIMEO)
}

pub fn recvmsg(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    let mut m = Message::new(obj::<MsgHdr>(a[1])?, false)?;
    let n = sock_blocking(ctx, SYS_recvmsg, [a[0], m.host_ptr(), a[2], 0, 0, 0], SO_RCVTIMEO)?;
    m.finish_recv(a[1])?;
    Ok(n)
}

/// The mmsghdr array: `n` entries at `at`.
fn mmsg_vector(at: u64, n: u64) -> Result<(u64, u64), Errno> {
    let n = n.min(IOV_MAX);
    buf(at, n * MMSGHDR_SIZE)?;
    Ok((at, n))
}

/// sendmmsg: one sendmsg per entry; the count sent, or the first error if
/// none was, as Linux.
pub fn sendmmsg(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    ctx.no_sigpipe = a[3] & MSG_NOSIGNAL as u64 != 0;
    let (at, n) = mmsg_vector(a[1], a[2])?;
    let mut sent = 0;
    for i in 0..n {
        let entry = at + i * MMSGHDR_SIZE;
        let r = Message::new(obj::<MsgHdr>(entry)?, true).and_then(|mut m| {
            let flags = if i > 0 { a[3] | MSG_DONTWAIT as u64 } else { a[3] };
            let restart = if i > 0 { Restart::Never } else { Restart::IfSaRestart };
            ctx.blocking(SYS_sendmsg, [a[0], m.host_ptr(), flags, 0, 0, 0], restart)
        });
        match r {
            Ok(len) => copy::write_obj(GuestRange::of::<u32>(entry + MSG_LEN_OFFSET)?, &(len as u32))?,
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
        sent += 1;
    }
    Ok(sent)
}

/// recvmmsg: one recvmsg per entry. MSG_WAITFORONE makes every receive
/// after the first non-blocking; the timeout is checked after each.
pub fn recvmmsg(ctx: &mut Ctx, a: A) -> Ret {
    fd(a[0])?;
    let (at, n) = mmsg_vector(a[1], a[2])?;
    let deadline = match a[4] {
        0 => None,
        t => {
            let [s, ns]: [u64; 2] = copy::read_obj(obj::<timespec>(t)?)?;
            if (s as i64) < 0 || ns >= 1_000_000_000 {
                return Err(Errno::EINVAL);
            }
            let limit = std::time::Duration::new(s, ns as u32);
            Some(std::time::Instant::now().checked_add(limit).ok_or(Errno::EINVAL)?)
        }
    };
    let mut got = 0;
    for i in 0..n {
        let entry = at + i * MMSGHDR_SIZE;
        let wait_for_one = a[3] & MSG_WAITFORONE as u64 != 0 && i > 0;
        let flags = (a[3] & !(MSG_WAITFORONE as u64)) | if wait_for_one { MSG_DONTWAIT as u64 } else { 0 };
        let r = Message::new(obj::<MsgHdr>(entry)?, false).and_then(|mut m| {
            let restart = if i > 0 { Restart::Never } else { Restart::IfSaRestart };
            let len = ctx.blocking(SYS_recvmsg, [a[0], m.host_ptr(), flags, 0, 0, 0], restart)?;
            m.finish_recv(entry)?;
            Ok(len)
        });
        match r {
            Ok(len) => copy::write_obj(GuestRange::of::<u32>(entry + MSG_LEN_OFFSET)?, &(len as u32))?,
            Err(e) if got == 0 => return Err(e),
            Err(_) => break,
        }
        got += 1;
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let mut v = ((16 + data.len()) as u64).to_le_bytes().to_vec();
        v.extend_from_slice(&level.to_le_bytes());
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(data);
        v.resize(v.len().next_multiple_of(8), 0);
        v
    }

    #[test]
    fn control_messages_are_walked_like_the_kernel() {
        let mut c = cmsg(SOL_SOCKET, SCM_CREDENTIALS, &[0; 12]);
        c.extend(cmsg(SOL_SOCKET, SCM_RIGHTS, &[1, 0, 0, 0, 2, 0, 0, 0]));
        let mut seen = Vec::new();
        each_cmsg(&c, |at, level, kind, data| seen.push((at, level, kind, data.len()))).unwrap();
        assert_eq!(seen, vec![(0, SOL_SOCKET, SCM_CREDENTIALS, 12), (32, SOL_SOCKET, SCM_RIGHTS, 8)]);
        let mut short = c.clone();
        short[32..40].copy_from_slice(&8u64.to_le_bytes());
        assert_eq!(each_cmsg(&short, |_, _, _, _| {}), Err(Errno::EINVAL));
        let mut long = c;
        long[32..40].copy_from_slice(&100u64.to_le_bytes());
        assert_eq!(each_cmsg(&long, |_, _, _, _| {}), Err(Errno::EINVAL));
    }

    #[test]
    fn options_with_pointers_or_fds_are_refused() {
        assert!(option_allowed(SOL_SOCKET, SO_REUSEADDR));
        assert!(option_allowed(IPPROTO_TCP, TCP_NODELAY));
        assert!(option_allowed(IPPROTO_IPV6, IPV6_V6ONLY));
        for (level, opt) in [(SOL_SOCKET, 26), (SOL_SOCKET, 50), (SOL_SOCKET, 51), (SOL_SOCKET, 52), (SOL_SOCKET, 76)] {
            assert!(!option_allowed(level, opt), "{level} {opt}");
        }
        assert!(!option_allowed(SOL_SOCKET, 77));
        assert!(!option_allowed(IPPROTO_TCP, 35));
        assert!(!option_allowed(IPPROTO_IP, 64));
        assert!(!option_allowed(IPPROTO_IPV6, 64));
        assert!(!option_allowed(IPPROTO_IPV6, 65));
        assert!(!option_allowed(SOL_PACKET, 1));
    }
}
