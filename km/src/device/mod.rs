//! The hypervisor device behind km: `/dev/kvm` or `/dev/kkm`.
//!
//! The rest of km sees one VM (`Hypervisor`) and its vCPUs (`Vcpu`), and one
//! exit enum; what differs between the devices is decoded in the backend.

mod kvm;
mod port_io;
pub use kvm::ioctls;
pub mod select;

pub use kvm::KvmDevice;
pub use select::{open, DeviceChoice};

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs, CpuId};

/// How the device serves a guest where devices differ, found when it is
/// opened: the run loop asks these, never which device it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// A CPU fault reaches km through km's own handlers in the guest's IDT,
    /// so the vCPU is at CPL0 when km sees it (KVM); else the device
    /// reports the exception with the payload still at CPL3 (kkm).
    pub faults_through_guest_idt: bool,
    /// The device builds the guest's translations itself from the memory
    /// slots, with the access km's host mapping allows, and ignores km's
    /// guest page tables (kkm): whatever lies in a slot is the payload's to
    /// touch, so only the monitor pages the payload must reach go in slots.
    pub maps_slots_itself: bool,
}

/// Why the payload left the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The payload executed `syscall`; its registers hold the call.
    Syscall,
    /// A CPU exception the payload did not handle.
    Fault(Fault),
    /// KVM_RUN was interrupted (a host signal, or immediate_exit).
    Interrupted,
    /// The payload executed `hlt`.
    Halt,
    /// A guest access KVM could not back with host memory (a file page past
    /// EOF); the instruction has not run.
    Unbacked,
    /// The VM cannot go on (triple fault, failed entry, internal error).
    Broken(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub vector: u8,
    pub error_code: u64,
    /// CR2: the faulting address for #PF.
    pub addr: u64,
    /// Where the payload was when the fault hit: instruction, stack and
    /// flags.
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{op}: {source}")]
    Ioctl {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
}

pub type Result<T> = std::result::Result<T, DeviceError>;

/// How the guest's TSC relates to the host's: guest = host + `offset`, at
/// the host's rate (km never asks the device to scale the TSC); `khz` is
/// the rate the device reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestTsc {
    pub offset: i64,
    pub khz: u32,
}

/// One VM on a device.
pub trait Hypervisor: Send + Sync {
    fn caps(&self) -> Capabilities;
    /// The CPUID the device can offer a guest.
    fn supported_cpuid(&self) -> Result<CpuId>;
    /// Registers [addr, addr+size) of km's address space as guest memory
    /// at the same guest-physical address.
    ///
    /// # Safety
    /// The range must stay mapped in km for the life of the VM, and must
    /// hold nothing of km's own: the guest can read and write all of it.
    unsafe fn add_memory(&self, slot: u32, addr: u64, size: u64) -> Result<()>;
    fn create_vcpu(&self, id: u32) -> Result<Box<dyn Vcpu>>;
}

/// One virtual CPU; `run` blocks until the next exit.
pub trait Vcpu: Send {
    fn run(&mut self) -> Result<Exit>;
    fn regs(&mut self) -> Result<kvm_regs>;
    fn set_regs(&mut self, regs: &kvm_regs) -> Result<()>;
    fn sregs(&mut self) -> Result<kvm_sregs>;
    fn set_sregs(&mut self, sregs: &kvm_sregs) -> Result<()>;
    fn set_cpuid(&mut self, cpuid: &CpuId) -> Result<()>;
    fn set_msrs(&mut self, msrs: &[(u32, u64)]) -> Result<()>;
    /// Resets x87/SSE state to the values Linux gives a new process, and
    /// enables the XSAVE components in `xcr0`.
    fn init_fpu(&mut self, xcr0: u64) -> Result<()>;
    fn fpu(&mut self) -> Result<kvm_fpu>;
    /// Loads `fpu` as the payload's x87/SSE state, as FXRSTOR would, and
    /// returns true; false, changing nothing, where the device's FPU ioctls
    /// do not reach the state the payload runs with (PVM-backed KVM: km
    /// then loads it with a guest stub).
    fn load_fpu(&mut self, fpu: &kvm_fpu) -> Result<bool>;
    /// The kvm_run `immediate_exit` byte: set asynchronously (by a signal
    /// handler) to make the next or current `run` return `Interrupted`;
    /// `run` clears it.
    fn immediate_exit(&mut self) -> *mut u8;
    /// This vCPU's TSC relation, if the device can tell it.
    fn guest_tsc(&mut self) -> Result<GuestTsc>;
    /// The host signals blocked while `run` is in the device, instead of
    /// the thread's own mask (None: the thread's own again), as
    /// KVM_SET_SIGNAL_MASK sets them: a signal the set leaves open ends
    /// `run` with `Interrupted` and stays pending, blocked, for the thread
    /// to take. False, changing nothing, where the device has no such call.
    fn set_run_sigmask(&mut self, blocked: Option<&libc::sigset_t>) -> Result<bool>;
}
