//! The backend for KVM-compatible devices: /dev/kvm, and /dev/kkm, which
//! speaks the same ioctls. The two differ only in how faults come back:
//! under KVM km's IDT stubs report them on `KM_FAULT_PORT`; kkm reports
//! KVM_EXIT_EXCEPTION.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use kkm_uapi as uapi;
use kvm_bindings::{
    kvm_device_attr, kvm_fpu, kvm_msr_entry, kvm_regs, kvm_sregs, kvm_userspace_memory_region, kvm_xcrs, CpuId, Msrs,
};
use kvm_ioctls::{Cap, Kvm, SyncReg, VcpuExit, VcpuFd, VmFd};

use super::{port_io, Capabilities, DeviceError, Exit, Fault, GuestTsc, Hypervisor, Result, Vcpu};
use crate::fds;
use crate::guest::clock::host_tsc;
use crate::guest::cpu;
use crate::guest::layout::monitor;
use crate::mem::{copy, GuestRange};

/// Which device family is behind the fd (kkm answers its identity ioctl):
/// how this backend talks to it. The rest of km sees `Capabilities`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    Kvm,
    Kkm,
}

const MSR_IA32_TSC: u32 = 0x10;

// kvm-ioctls has no KVM_GET_DEVICE_ATTR for vCPU fds.
vmm_sys_util::ioctl_iow_nr!(KVM_GET_DEVICE_ATTR, kvm_bindings::KVMIO, 0xe2, kvm_device_attr);

/// KVM_GET_TSC_KHZ, _IO(KVMIO, 0xa3), which kvm-ioctls makes for us.
const KVM_GET_TSC_KHZ: u32 = 0xaea3;
// kvm-ioctls has no KVM_SET_SIGNAL_MASK; its argument is a kvm_signal_mask
// header (the set's length) followed by the set.
vmm_sys_util::ioctl_iow_nr!(KVM_SET_SIGNAL_MASK, kvm_bindings::KVMIO, 0x8b, kvm_bindings::kvm_signal_mask);

/// The kernel's sigset: 64 signals, what KVM_SET_SIGNAL_MASK requires.
const KERNEL_SIGSET_SIZE: u32 = 8;

/// A kvm_signal_mask with its set.
#[repr(C)]
struct SignalMask {
    len: u32,
    set: [u8; KERNEL_SIGSET_SIZE as usize],
}

/// Every ioctl request this backend makes once the VM exists (vCPUs,
/// memory slots, running and state), for km's seccomp filter; the device
/// and VM set-up before it needs no others later.
pub fn ioctls() -> Vec<u32> {
    vec![
        // First: the filter tries them in order, and this one is hot.
        uapi::KVM_RUN,
        uapi::KVM_GET_REGS,
        uapi::KVM_SET_REGS,
        uapi::KVM_GET_SREGS,
        uapi::KVM_SET_SREGS,
        uapi::KVM_GET_FPU,
        uapi::KVM_SET_FPU,
        uapi::KVM_GET_MSRS,
        uapi::KVM_SET_MSRS,
        uapi::KVM_SET_CPUID2,
        uapi::KVM_SET_XCRS,
        uapi::KVM_CREATE_VCPU,
        uapi::KVM_GET_VCPU_MMAP_SIZE,
        uapi::KVM_SET_USER_MEMORY_REGION,
        KVM_GET_TSC_KHZ,
        KVM_GET_DEVICE_ATTR() as u32,
        KVM_SET_SIGNAL_MASK() as u32,
        // Opening the device again: a forked child km builds its own VM
        // under the filter it inherited.
        uapi::KVM_GET_API_VERSION,
        uapi::KVM_CREATE_VM,
        uapi::KVM_CHECK_EXTENSION,
        uapi::KVM_GET_SUPPORTED_CPUID,
        uapi::KKM_GET_IDENTITY,
    ]
}

/// Enough for every leaf KVM reports on current CPUs.
const MAX_CPUID_ENTRIES: usize = 256;

pub struct KvmDevice {
    kvm: Kvm,
    vm: VmFd,
    flavor: Flavor,
    sync_regs: bool,
    xcrs: bool,
}

fn ioctl_err(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> DeviceError {
    move |e| DeviceError::Ioctl { op, source: io::Error::from_raw_os_error(e.errno()) }
}

/// A raw ioctl that returns a new fd, which is moved into km's private range.
fn ioctl_new_fd(fd: RawFd, request: u32, arg: libc::c_ulong) -> io::Result<RawFd> {
    // SAFETY: CREATE_VM / CREATE_VCPU take an integer argument, not a
    // pointer, and return a new fd or -1.
    let new = unsafe { libc::ioctl(fd, request as libc::c_ulong, arg) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    fds::privatize(new)
}

/// The new vCPU's fd sat below the floor, at the number the kernel chose,
/// until `privatize` moved it. A payload thread that closed that number
/// and opened a file of its own there, or put there a vCPU fd it caught the
/// same way earlier, would have km adopt that file as this vCPU (and map it
/// as kvm_run). The fd km keeps must name this very vCPU: KVM names it
/// `kvm-vcpu:<id>`; kkm names it `kkm-vcpu`, without the id.
fn check_vcpu_file(fd: RawFd, id: u32, flavor: Flavor) -> Result<()> {
    let link = match std::fs::read_link(format!("/proc/self/fd/{fd}")) {
        Ok(link) => link,
        // No procfs for km: nothing can be checked, and the payload cannot
        // have taken it away either.
        Err(e) if e.kind() == io::ErrorKind::NotFound && !std::path::Path::new("/proc/self").exists() => return Ok(()),
        Err(source) => return Err(DeviceError::Ioctl { op: "KVM_CREATE_VCPU", source }),
    };
    let expected = match flavor {
        Flavor::Kvm => format!("anon_inode:kvm-vcpu:{id}"),
        Flavor::Kkm => "anon_inode:kkm-vcpu".to_string(),
    };
    if link.as_os_str() == expected.as_str() {
        Ok(())
    } else {
        let source = io::Error::other(format!("the new vCPU's fd was replaced by {}", link.display()));
        Err(DeviceError::Ioctl { op: "KVM_CREATE_VCPU", source })
    }
}

impl KvmDevice {
    /// Opens the device at `path` and creates the VM.
    pub fn open(path: &CStr) -> io::Result<KvmDevice> {
        let fd = fds::privatize(Kvm::open_with_cloexec_at(path, true).map_err(io::Error::from)?)?;
        // SAFETY: `fd` is a freshly opened device fd that we own.
        let kvm = unsafe { Kvm::from_raw_fd(fd) };
        let version = kvm.get_api_version();
        if version != uapi::KVM_API_VERSION {
            return Err(io::Error::other(format!("API version {version}, km needs {}", uapi::KVM_API_VERSION)));
        }
        let flavor = if identity(fd).is_some() { Flavor::Kkm } else { Flavor::Kvm };
        let vm_fd = ioctl_new_fd(fd, uapi::KVM_CREATE_VM, 0)?;
        // SAFETY: `vm_fd` was just returned by KVM_CREATE_VM on this device
        // and is owned by nobody else.
        let vm = unsafe { kvm.create_vmfd_from_rawfd(vm_fd) }.map_err(io::Error::from)?;
        let sync_regs = kvm.check_extension(Cap::SyncRegs);
        let xcrs = kvm.check_extension(Cap::Xcrs);
        Ok(KvmDevice { kvm, vm, flavor, sync_regs, xcrs })
    }
}

/// kkm's identity, or None for a device that does not know the ioctl (KVM).
fn identity(fd: RawFd) -> Option<uapi::KkmIdentity> {
    let mut id = uapi::KkmIdentity::default();
    // SAFETY: KKM_GET_IDENTITY writes at most size_of::<KkmIdentity>() bytes
    // (encoded in the request) into `id`; KVM rejects the unknown number.
    let r = unsafe { libc::ioctl(fd, uapi::KKM_GET_IDENTITY as libc::c_ulong, &mut id as *mut uapi::KkmIdentity) };
    (r == 0 && id.magic == uapi::KKM_IDENTITY_MAGIC).then_some(id)
}

impl Hypervisor for KvmDevice {
    fn caps(&self) -> Capabilities {
        Capabilities {
            faults_through_guest_idt: self.flavor == Flavor::Kvm,
            maps_slots_itself: self.flavor == Flavor::Kkm,
        }
    }

    fn supported_cpuid(&self) -> Result<CpuId> {
        self.kvm.get_supported_cpuid(MAX_CPUID_ENTRIES).map_err(ioctl_err("KVM_GET_SUPPORTED_CPUID"))
    }

    unsafe fn add_memory(&self, slot: u32, addr: u64, size: u64) -> Result<()> {
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: addr,
            memory_size: size,
            userspace_addr: addr,
        };
        // SAFETY: the caller guarantees [addr, addr+size) is km-mapped guest
        // memory for the life of the VM and holds nothing of km's.
        unsafe { self.vm.set_user_memory_region(region) }.map_err(ioctl_err("KVM_SET_USER_MEMORY_REGION"))
    }

    fn create_vcpu(&self, id: u32) -> Result<Box<dyn Vcpu>> {
        let fd = ioctl_new_fd(self.vm.as_raw_fd(), uapi::KVM_CREATE_VCPU, id.into())
            .map_err(|source| DeviceError::Ioctl { op: "KVM_CREATE_VCPU", source })?;
        if let Err(e) = check_vcpu_file(fd, id, self.flavor) {
            // SAFETY: `fd` is the one km just moved above the floor; whatever
            // file it holds, nothing else of km's refers to it.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        // SAFETY: `fd` was just returned by KVM_CREATE_VCPU on this VM and is
        // owned by nobody else. The call owns it at once, so a failed mmap
        // of kvm_run closes it.
        let mut fd = unsafe { self.vm.create_vcpu_from_rawfd(fd) }.map_err(ioctl_err("mmap kvm_run"))?;
        if self.sync_regs {
            fd.set_sync_valid_reg(SyncReg::Register);
        }
        // A forked km builds its own VM: the mapping must not go with it
        // and keep this vCPU, and with it this VM, alive in the child.
        let size = self.kvm.get_vcpu_mmap_size().map_err(ioctl_err("KVM_GET_VCPU_MMAP_SIZE"))?;
        let run = fd.get_kvm_run() as *mut kvm_bindings::kvm_run;
        // SAFETY: `run` starts the vCPU's kvm_run mapping of `size` bytes;
        // MADV_DONTFORK changes only what a fork copies.
        unsafe { libc::madvise(run.cast(), size, libc::MADV_DONTFORK) };
        Ok(Box::new(KvmVcpu { fd, flavor: self.flavor, sync_regs: self.sync_regs, xcrs: self.xcrs }))
    }
}

struct KvmVcpu {
    fd: VcpuFd,
    flavor: Flavor,
    sync_regs: bool,
    xcrs: bool,
}

impl KvmVcpu {
    /// A port exit. Only two are km's: the pad's `out` on the syscall port
    /// (told by its rip: a payload can reach that port on PVM) and a fault
    /// stub's `out` on the fault port (at CPL0, which the payload never
    /// reaches). Anything else is the payload's own port access.
    fn port_exit(&mut self, port: u16, size: usize, out: bool) -> Result<Exit> {
        let regs = self.regs()?;
        if out && port == uapi::KM_SYSCALL_PORT && (self.flavor == Flavor::Kkm || cpu::is_pad_exit(regs.rip)) {
            return Ok(Exit::Syscall);
        }
        if out && port == uapi::KM_FAULT_PORT && self.flavor == Flavor::Kvm {
            let sregs = self.sregs()?;
            if sregs.cs.selector & 3 == 0 {
                return self.fault_from_stub(regs.rsp, sregs.cr2);
            }
        }
        Ok(Exit::Fault(self.payload_port_access(&regs, port, size)?))
    }

    /// The #GP a payload's `in` or `out` raises natively. The device still
    /// holds the access as pending: it would complete it (an `in` writes
    /// rax, the instruction is skipped) at the next entry, on top of the
    /// signal km delivers. So it completes now, in a KVM_RUN that leaves
    /// at once, and the registers go back to what the payload had.
    fn payload_port_access(&mut self, regs: &kvm_regs, port: u16, size: usize) -> Result<Fault> {
        self.fd.set_kvm_immediate_exit(1);
        let _ = self.fd.run();
        self.set_regs(regs)?;
        let mut code = [0u8; 3];
        if GuestRange::new(regs.rip.wrapping_sub(3), 3).and_then(|r| copy::read_bytes(r, &mut code)).is_err() {
            code = [0; 3];
        }
        let rip = port_io::insn_start(code, regs.rip, port, size);
        Ok(Fault { vector: 13, error_code: 0, addr: 0, rip, rsp: regs.rsp, rflags: regs.rflags })
    }

    /// Decodes the frame an IDT stub left on its IST stack:
    /// [vector, error code, rip, cs, rflags, rsp, ss]. The stack pointer
    /// comes from the guest, so it must point into the IST area first.
    fn fault_from_stub(&mut self, rsp: u64, cr2: u64) -> Result<Exit> {
        let ist_end = monitor::IST + monitor::MAX_VCPUS * monitor::IST_STACK_SIZE;
        let mut frame = [0u64; 6];
        let on_ist = rsp >= monitor::IST && rsp.checked_add(48).is_some_and(|end| end <= ist_end);
        let read = GuestRange::monitor(rsp, 48).and_then(|r| copy::read_slice(r, &mut frame));
        if !on_ist || read.is_err() {
            return Ok(Exit::Broken(format!("fault report with a stack outside the IST area ({rsp:#x})")));
        }
        let [vector, error_code, rip, _cs, rflags, rsp] = frame;
        let fault = Fault { vector: vector as u8, error_code, addr: cr2, rip, rsp, rflags };
        Ok(Exit::Fault(software_interrupt(fault).unwrap_or(fault)))
    }

    /// The TSC offset KVM applies (Linux 5.16+), exact.
    fn tsc_offset_attr(&self) -> io::Result<i64> {
        let mut offset: u64 = 0;
        let attr = kvm_device_attr {
            flags: 0,
            group: kvm_bindings::KVM_VCPU_TSC_CTRL,
            attr: kvm_bindings::KVM_VCPU_TSC_OFFSET.into(),
            addr: &mut offset as *mut u64 as u64,
        };
        // SAFETY: KVM_GET_DEVICE_ATTR reads `attr` and writes one u64 to
        // attr.addr, which is `offset`, alive across the call.
        let r = unsafe { vmm_sys_util::ioctl::ioctl_with_ref(&self.fd, KVM_GET_DEVICE_ATTR(), &attr) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(offset as i64)
    }

    /// The TSC offset estimated from the guest's IA32_TSC read between two
    /// host TSC reads: the middle of the narrowest of a few brackets.
    fn tsc_offset_from_msr(&self) -> Result<i64> {
        let entry = kvm_msr_entry { index: MSR_IA32_TSC, ..Default::default() };
        let mut best = (u64::MAX, 0i64);
        for _ in 0..8 {
            let mut msrs =
                Msrs::from_entries(&[entry]).map_err(|e| DeviceError::Unsupported(format!("MSR list: {e:?}")))?;
            let before = host_tsc();
            let read = self.fd.get_msrs(&mut msrs).map_err(ioctl_err("KVM_GET_MSRS"))?;
            let after = host_tsc();
            if read != 1 {
                return Err(DeviceError::Unsupported("the device does not report IA32_TSC".into()));
            }
            let width = after.wrapping_sub(before);
            if width < best.0 {
                best = (width, msrs.as_slice()[0].data.wrapping_sub(before + width / 2) as i64);
            }
        }
        Ok(best.1)
    }

    fn run_once(&mut self) -> Result<Exit> {
        let exit = match self.fd.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                let size = data.len();
                return self.port_exit(port, size, true);
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                let size = data.len();
                return self.port_exit(port, size, false);
            }
            Ok(VcpuExit::Exception) if self.flavor == Flavor::Kkm => return self.fault_from_exception(),
            Ok(VcpuExit::Hlt) => Exit::Halt,
            Ok(VcpuExit::Intr) => Exit::Interrupted,
            Ok(VcpuExit::Shutdown) => Exit::Broken("triple fault".into()),
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                Exit::Broken(format!("VM entry failed (reason {reason:#x}, cpu {cpu})"))
            }
            Ok(VcpuExit::InternalError) => {
                // SAFETY: exit_reason is KVM_EXIT_INTERNAL_ERROR, so
                // `internal` is the member the device filled in.
                let suberror = unsafe { self.fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
                let rip = self.regs()?.rip;
                Exit::Broken(format!("internal error in the hypervisor (suberror {suberror}) at rip {rip:#x}"))
            }
            Ok(other) => Exit::Broken(format!("unexpected exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Exit::Interrupted,
            Err(e) if e.errno() == libc::EFAULT => Exit::Unbacked,
            Err(e) => return Err(ioctl_err("KVM_RUN")(e)),
        };
        Ok(exit)
    }

    fn fault_from_exception(&mut self) -> Result<Exit> {
        // SAFETY: exit_reason is KVM_EXIT_EXCEPTION, so `ex` is the union
        // member the device filled in.
        let ex = unsafe { self.fd.get_kvm_run().__bindgen_anon_1.ex };
        let addr = self.sregs()?.cr2;
        let regs = self.regs()?;
        Ok(Exit::Fault(Fault {
            vector: ex.exception as u8,
            error_code: ex.error_code.into(),
            addr,
            rip: regs.rip,
            rsp: regs.rsp,
            rflags: regs.rflags,
        }))
    }
}

/// `int $n` at CPL3 raises #UD on PVM here; the CPU (and Linux) make it
/// a #GP with error code n*8+2 for a gate the payload may not use, and the
/// gate's own trap (rip past the instruction) for a user gate (3 and 4,
/// as on Linux). None if `f` is not a #UD at an `int $n`.
fn software_interrupt(f: Fault) -> Option<Fault> {
    let mut insn = [0u8; 2];
    if f.vector != 6 || GuestRange::new(f.rip, 2).and_then(|r| copy::read_bytes(r, &mut insn)).is_err() {
        return None;
    }
    match insn {
        [0xcd, n] if cpu::user_gate(n) => Some(Fault { vector: n, error_code: 0, rip: f.rip + 2, ..f }),
        [0xcd, n] => Some(Fault { vector: 13, error_code: u64::from(n) * 8 + 2, ..f }),
        _ => None,
    }
}

impl Vcpu for KvmVcpu {
    fn run(&mut self) -> Result<Exit> {
        let exit = self.run_once();
        self.fd.set_kvm_immediate_exit(0);
        exit
    }

    fn regs(&mut self) -> Result<kvm_regs> {
        if self.sync_regs {
            return Ok(self.fd.sync_regs().regs);
        }
        self.fd.get_regs().map_err(ioctl_err("KVM_GET_REGS"))
    }

    fn set_regs(&mut self, regs: &kvm_regs) -> Result<()> {
        if self.sync_regs {
            self.fd.sync_regs_mut().regs = *regs;
            self.fd.set_sync_dirty_reg(SyncReg::Register);
            return Ok(());
        }
        self.fd.set_regs(regs).map_err(ioctl_err("KVM_SET_REGS"))
    }

    fn sregs(&mut self) -> Result<kvm_sregs> {
        self.fd.get_sregs().map_err(ioctl_err("KVM_GET_SREGS"))
    }

    fn set_sregs(&mut self, sregs: &kvm_sregs) -> Result<()> {
        self.fd.set_sregs(sregs).map_err(ioctl_err("KVM_SET_SREGS"))
    }

    fn set_cpuid(&mut self, cpuid: &CpuId) -> Result<()> {
        // kkm runs the payload on the host CPU, whose CPUID it cannot
        // intercept: there is no model to set, and the payload sees what
        // kkm's GET_SUPPORTED_CPUID (the model km built) reported.
        if self.flavor == Flavor::Kkm {
            return Ok(());
        }
        self.fd.set_cpuid2(cpuid).map_err(ioctl_err("KVM_SET_CPUID2"))
    }

    fn set_msrs(&mut self, msrs: &[(u32, u64)]) -> Result<()> {
        // The MSRs km sets are the syscall entry's (STAR, LSTAR, CSTAR,
        // SFMASK): under kkm the module's own entry catches `syscall`.
        if self.flavor == Flavor::Kkm {
            return Ok(());
        }
        let entries: Vec<kvm_msr_entry> =
            msrs.iter().map(|&(index, data)| kvm_msr_entry { index, data, ..Default::default() }).collect();
        let list = Msrs::from_entries(&entries).map_err(|e| DeviceError::Unsupported(format!("MSR list: {e:?}")))?;
        let set = self.fd.set_msrs(&list).map_err(ioctl_err("KVM_SET_MSRS"))?;
        if set != msrs.len() {
            let (index, _) = msrs[set];
            return Err(DeviceError::Unsupported(format!("the device refused MSR {index:#x}")));
        }
        Ok(())
    }

    fn init_fpu(&mut self, xcr0: u64) -> Result<()> {
        // x87 control word and MXCSR as after FNINIT / Linux's fpu init.
        let fpu = kvm_fpu { fcw: 0x37f, mxcsr: 0x1f80, ..Default::default() };
        self.fd.set_fpu(&fpu).map_err(ioctl_err("KVM_SET_FPU"))?;
        if self.xcrs && xcr0 != 0 {
            let mut xcrs = kvm_xcrs { nr_xcrs: 1, ..Default::default() };
            xcrs.xcrs[0].xcr = 0;
            xcrs.xcrs[0].value = xcr0;
            self.fd.set_xcrs(&xcrs).map_err(ioctl_err("KVM_SET_XCRS"))?;
        }
        Ok(())
    }

    fn fpu(&mut self) -> Result<kvm_fpu> {
        self.fd.get_fpu().map_err(ioctl_err("KVM_GET_FPU"))
    }

    fn load_fpu(&mut self, fpu: &kvm_fpu) -> Result<bool> {
        // kkm loads its vCPU's image with XRSTOR at every entry, so
        // KVM_SET_FPU is what the payload gets; on PVM it changes nothing
        // the payload sees (see guest/cpu.rs).
        if self.flavor != Flavor::Kkm {
            return Ok(false);
        }
        self.fd.set_fpu(fpu).map_err(ioctl_err("KVM_SET_FPU"))?;
        Ok(true)
    }

    fn immediate_exit(&mut self) -> *mut u8 {
        &mut self.fd.get_kvm_run().immediate_exit
    }

    fn guest_tsc(&mut self) -> Result<GuestTsc> {
        if self.flavor == Flavor::Kkm {
            return Err(DeviceError::Unsupported("/dev/kkm does not report the guest TSC".into()));
        }
        let khz = self.fd.get_tsc_khz().map_err(ioctl_err("KVM_GET_TSC_KHZ"))?;
        let offset = match self.tsc_offset_attr() {
            Ok(offset) => offset,
            Err(_) => self.tsc_offset_from_msr()?,
        };
        Ok(GuestTsc { offset, khz })
    }

    fn set_run_sigmask(&mut self, blocked: Option<&libc::sigset_t>) -> Result<bool> {
        if self.flavor == Flavor::Kkm {
            return Ok(false);
        }
        let mask = blocked.map(|set| {
            let mut mask = SignalMask { len: KERNEL_SIGSET_SIZE, set: [0; KERNEL_SIGSET_SIZE as usize] };
            // SAFETY: a sigset_t is at least the kernel's 8 bytes, which
            // come first (signal n is bit n-1 of the first word).
            let bytes =
                unsafe { std::slice::from_raw_parts((set as *const libc::sigset_t).cast::<u8>(), mask.set.len()) };
            mask.set.copy_from_slice(bytes);
            mask
        });
        let arg = mask.as_ref().map_or(std::ptr::null(), |m| m as *const SignalMask);
        // SAFETY: KVM_SET_SIGNAL_MASK reads a kvm_signal_mask and the `len`
        // bytes after its header, which `SignalMask` holds, or nothing (NULL).
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), KVM_SET_SIGNAL_MASK() as libc::c_ulong, arg) };
        match r {
            0 => Ok(true),
            _ => match io::Error::last_os_error() {
                e if e.raw_os_error() == Some(libc::ENOTTY) => Ok(false),
                e => Err(DeviceError::Ioctl { op: "KVM_SET_SIGNAL_MASK", source: e }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vcpu_fd_must_name_the_vcpu_km_asked_for() {
        crate::fds::init().expect("fd floor");
        let Ok(device) = KvmDevice::open(c"/dev/kvm") else {
            eprintln!("SKIPPED: /dev/kvm cannot be opened here; the vCPU fd check is not exercised");
            return;
        };
        let vcpu = ioctl_new_fd(device.vm.as_raw_fd(), uapi::KVM_CREATE_VCPU, 7).expect("KVM_CREATE_VCPU");
        assert!(check_vcpu_file(vcpu, 7, Flavor::Kvm).is_ok());
        // Another vCPU of the same VM is not this one.
        assert!(check_vcpu_file(vcpu, 6, Flavor::Kvm).is_err());
        // Nor is a file a payload could have put at the number.
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(check_vcpu_file(file.as_raw_fd(), 7, Flavor::Kvm).is_err());
        assert!(check_vcpu_file(file.as_raw_fd(), 7, Flavor::Kkm).is_err());
        // SAFETY: `vcpu` was created above and is used by nothing else.
        unsafe { libc::close(vcpu) };
    }
}
