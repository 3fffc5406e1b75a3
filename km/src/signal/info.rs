//! `siginfo_t` as the x86-64 kernel lays it out: 128 bytes, the signal
//! number, errno and code first, then a union at offset 16 whose members
//! km fills are the kill, queue, timer and fault forms.

/// The si_code values km generates for faults and kernel signals (the
/// user-sent ones, SI_USER, SI_TKILL, SI_QUEUE, SI_TIMER, are libc's).
pub mod code {
    pub const SI_KERNEL: i32 = 0x80;
    pub const ILL_ILLOPN: i32 = 2;
    pub const FPE_INTDIV: i32 = 1;
    pub const FPE_FLTDIV: i32 = 3;
    pub const FPE_FLTOVF: i32 = 4;
    pub const FPE_FLTUND: i32 = 5;
    pub const FPE_FLTRES: i32 = 6;
    pub const FPE_FLTINV: i32 = 7;
    pub const SEGV_MAPERR: i32 = 1;
    pub const SEGV_ACCERR: i32 = 2;
    pub const BUS_ADRALN: i32 = 1;
    pub const BUS_ADRERR: i32 = 2;
    pub const TRAP_TRACE: i32 = 2;
}
use code::SI_KERNEL;

/// A raw kernel siginfo.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, align(8))]
pub struct SigInfo(pub [u8; 128]);

impl std::fmt::Debug for SigInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "SigInfo(signo {}, code {})", self.signo(), self.code())
    }
}

impl Default for SigInfo {
    fn default() -> Self {
        SigInfo([0; 128])
    }
}

// SAFETY: a byte array, any bit pattern is valid.
unsafe impl crate::mem::copy::Pod for SigInfo {}

impl SigInfo {
    fn put_i32(&mut self, at: usize, v: i32) {
        self.0[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn put_u64(&mut self, at: usize, v: u64) {
        self.0[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    fn get_i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.0[at..at + 4].try_into().expect("4 bytes"))
    }

    fn with_code(signo: i32, code: i32) -> SigInfo {
        let mut i = SigInfo::default();
        i.put_i32(0, signo);
        i.put_i32(8, code);
        i
    }

    /// Sent by a process (kill: SI_USER; tgkill: SI_TKILL).
    pub fn sent(signo: i32, code: i32, pid: i32, uid: u32) -> SigInfo {
        let mut i = SigInfo::with_code(signo, code);
        i.put_i32(16, pid);
        i.put_i32(20, uid as i32);
        i
    }

    /// kill(2)'s siginfo.
    pub fn user(signo: i32, pid: i32, uid: u32) -> SigInfo {
        SigInfo::sent(signo, libc::SI_USER, pid, uid)
    }

    /// A CPU fault's siginfo: si_addr is the faulting address (#PF) or
    /// instruction.
    pub fn fault(signo: i32, code: i32, addr: u64) -> SigInfo {
        let mut i = SigInfo::with_code(signo, code);
        i.put_u64(16, addr);
        i
    }

    /// A signal the kernel generates with no details (SI_KERNEL).
    pub fn kernel(signo: i32) -> SigInfo {
        SigInfo::with_code(signo, SI_KERNEL)
    }

    pub fn signo(&self) -> i32 {
        self.get_i32(0)
    }

    pub fn code(&self) -> i32 {
        self.get_i32(8)
    }

    /// si_timerid of a POSIX timer's signal.
    pub fn timer_id(&self) -> i32 {
        self.get_i32(16)
    }

    /// Replaces the signal number (a host timer signal retargeted).
    pub fn set_signo(&mut self, signo: i32) {
        self.put_i32(0, signo);
    }

    /// Takes the host's siginfo as the payload will see it.
    pub fn from_host(info: &libc::siginfo_t) -> SigInfo {
        let mut i = SigInfo::default();
        // SAFETY: siginfo_t is 128 bytes of plain data on x86-64.
        let raw: &[u8; 128] = unsafe { &*(info as *const libc::siginfo_t as *const [u8; 128]) };
        i.0.copy_from_slice(raw);
        i
    }
}

/// Forms only tests build.
#[cfg(test)]
impl SigInfo {
    /// sigqueue's siginfo, with its value.
    pub fn queued(signo: i32, code: i32, pid: i32, uid: u32, value: u64) -> SigInfo {
        let mut i = SigInfo::sent(signo, code, pid, uid);
        i.put_u64(24, value);
        i
    }

    /// sigval of a queued or timer signal.
    pub fn value(&self) -> u64 {
        u64::from_le_bytes(self.0[24..32].try_into().expect("8 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_kernel() {
        let i = SigInfo::queued(40, libc::SI_QUEUE, 1234, 1000, 0xdead_beef);
        // SAFETY: SigInfo has the size and alignment of siginfo_t.
        let host: &libc::siginfo_t = unsafe { &*(&i as *const SigInfo as *const libc::siginfo_t) };
        assert_eq!(std::mem::size_of::<libc::siginfo_t>(), 128);
        assert_eq!((host.si_signo, host.si_code), (40, libc::SI_QUEUE));
        // SAFETY: the queue form is the one filled in.
        unsafe {
            assert_eq!(host.si_pid(), 1234);
            assert_eq!(host.si_uid(), 1000);
            assert_eq!(host.si_value().sival_ptr as u64, 0xdead_beef);
        }
        let f = SigInfo::fault(libc::SIGSEGV, 1, 0x4000);
        // SAFETY: as above; the fault form is filled in.
        assert_eq!(unsafe { (*(&f as *const SigInfo as *const libc::siginfo_t)).si_addr() } as u64, 0x4000);
        assert_eq!(SigInfo::from_host(host), i);
    }
}
