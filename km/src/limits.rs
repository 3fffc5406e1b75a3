//! The payload's resource limits.
//!
//! The payload shares km's host process, so a limit it sets on the host
//! would bind km too. Each resource is therefore either emulated (km keeps
//! the payload's value, enforces it where the payload's use is km's to
//! count, and never changes its own) or passed to the host, where it binds
//! km exactly as it would bind the payload:
//!
//! | resource | here | why |
//! | --- | --- | --- |
//! | NOFILE | emulated, enforced | km's own fds live above the payload's range (`fds`) |
//! | AS | emulated, enforced | km reserves the whole guest window; the payload's mappings are counted from km's record |
//! | DATA | emulated | km's heap and every payload page km maps count as km's data; a low limit would fail km's allocations |
//! | STACK | emulated | it bounds the growth of km's main-thread stack; the payload's stack is mapped whole at start |
//! | SIGPENDING | emulated, enforced | km's vCPU kicks are queued real-time signals; over the limit the host drops them. The payload's own queued signals count against it (per process, where Linux counts per user) |
//! | CPU | host | km's CPU time is the payload's plus km's; SIGXCPU is forwarded, the hard limit kills km like the payload |
//! | FSIZE | host | the payload's writes are km's host writes (EFBIG and SIGXFSZ as natively); km only writes its diagnostics |
//! | CORE | host | km sets its own to 0 before dying of the payload's signal |
//! | NPROC | host | it bounds km's thread creation, which is the payload's: a new thread fails with EAGAIN as natively |
//! | MEMLOCK | host | km locks nothing itself; the payload's mlock is km's, on the payload's pages |
//! | RSS, LOCKS | host | Linux ignores them |
//! | MSGQUEUE, NICE, RTPRIO, RTTIME | host | km makes no mqueue or priority calls, and forwards none |
//!
//! DATA and STACK are stored and reported but not enforced on the payload
//! (km maps its stack whole, and does not count data pages).

use libc::{rlimit, RLIMIT_AS, RLIMIT_DATA, RLIMIT_NOFILE, RLIMIT_SIGPENDING, RLIMIT_STACK, RLIM_INFINITY};
use nix::errno::Errno;

use crate::fds;

/// Number of resources Linux knows (RLIM_NLIMITS).
pub const COUNT: u32 = 16;

/// CAP_SYS_RESOURCE, which lets a process raise its hard limits.
const CAP_SYS_RESOURCE: u32 = 24;

/// True for the resources km keeps for the payload.
pub fn emulated(resource: u32) -> bool {
    matches!(resource, RLIMIT_NOFILE | RLIMIT_AS | RLIMIT_DATA | RLIMIT_STACK | RLIMIT_SIGPENDING)
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Indexed by resource; only the emulated entries are used.
    values: [rlimit; COUNT as usize],
}

impl Limits {
    /// The limits km was started with; RLIMIT_NOFILE as `fds` shows it.
    pub fn new() -> Limits {
        let mut values = [rlimit { rlim_cur: RLIM_INFINITY, rlim_max: RLIM_INFINITY }; COUNT as usize];
        for resource in (0..COUNT).filter(|&r| emulated(r)) {
            // SAFETY: getrlimit writes one rlimit into the array element.
            unsafe { libc::getrlimit(resource, &mut values[resource as usize]) };
        }
        let (cur, max) = fds::payload_nofile();
        values[RLIMIT_NOFILE as usize] = rlimit { rlim_cur: cur, rlim_max: max };
        Limits { values }
    }

    /// (soft, hard) of RLIMIT_NOFILE and RLIMIT_AS, which exec keeps.
    pub fn snapshot(&self) -> ((u64, u64), (u64, u64)) {
        let pair = |r: u32| (self.values[r as usize].rlim_cur, self.values[r as usize].rlim_max);
        (pair(RLIMIT_NOFILE), pair(RLIMIT_AS))
    }

    /// Takes the limits an exec kept; RLIMIT_NOFILE never above km's floor.
    pub fn restore(&mut self, nofile: (u64, u64), address_space: (u64, u64)) {
        let max = self.values[RLIMIT_NOFILE as usize].rlim_max;
        self.values[RLIMIT_NOFILE as usize] = rlimit { rlim_cur: nofile.0.min(max), rlim_max: nofile.1.min(max) };
        self.values[RLIMIT_AS as usize] = rlimit { rlim_cur: address_space.0, rlim_max: address_space.1 };
    }

    /// The payload's value of emulated `resource`.
    pub fn get(&self, resource: u32) -> rlimit {
        debug_assert!(emulated(resource));
        self.values[resource as usize]
    }

    /// Sets emulated `resource` as Linux's do_prlimit would (after the
    /// EINVAL checks, done by the caller); returns the previous value.
    pub fn set(&mut self, resource: u32, new: rlimit) -> Result<rlimit, Errno> {
        debug_assert!(emulated(resource) && new.rlim_cur <= new.rlim_max);
        let old = self.get(resource);
        // Above the floor the payload would name km's fds: that is its
        // sysctl nr_open.
        if resource == RLIMIT_NOFILE && new.rlim_max > fds::floor() as u64 {
            return Err(Errno::EPERM);
        }
        // Asked each time: the payload's set*id calls are km's, and drop
        // the capability as they would natively.
        if new.rlim_max > old.rlim_max && !has_cap_sys_resource() {
            return Err(Errno::EPERM);
        }
        self.values[resource as usize] = new;
        if resource == RLIMIT_NOFILE {
            fds::set_open_limit(new.rlim_cur);
        }
        Ok(old)
    }
}

/// Whether km's effective capabilities include CAP_SYS_RESOURCE.
fn has_cap_sys_resource() -> bool {
    // struct __user_cap_header_struct (version 3) and two data words.
    let mut header: [u32; 2] = [0x2008_0522, 0];
    let mut data = [0u32; 6];
    // SAFETY: capget reads the header and writes two
    // __user_cap_data_struct (three u32 each) into `data`.
    let r = unsafe { libc::syscall(libc::SYS_capget, header.as_mut_ptr(), data.as_mut_ptr()) };
    r == 0 && data[0] & (1 << CAP_SYS_RESOURCE) != 0
}
