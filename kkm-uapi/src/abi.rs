// The ABI between km and /dev/kkm, and the guest exit ports of km's guest
// model. This file is compiled twice: by cargo as part of `kkm-uapi`, and by
// kbuild inside the kkm kernel module (via `#[path]`), so it may use `core`
// only, no macros, no other crates. Everything here equals the KVM uapi of
// the same name; `tests/kvm_compat.rs` checks that against `kvm-bindings`.

// ---- ioctl number encoding (asm-generic/ioctl.h) ----

const IOC_NRBITS: u32 = 8;
const IOC_TYPEBITS: u32 = 8;
const IOC_SIZEBITS: u32 = 14;
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_NONE: u32 = 0;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << IOC_DIRSHIFT) | ((size as u32) << IOC_SIZESHIFT) | (KVMIO << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT)
}
const fn io(nr: u32) -> u32 {
    ioc(IOC_NONE, nr, 0)
}
const fn ior(nr: u32, size: usize) -> u32 {
    ioc(IOC_READ, nr, size)
}
const fn iow(nr: u32, size: usize) -> u32 {
    ioc(IOC_WRITE, nr, size)
}
const fn iowr(nr: u32, size: usize) -> u32 {
    ioc(IOC_READ | IOC_WRITE, nr, size)
}

/// The ioctl type byte of KVM, used by kkm too.
pub const KVMIO: u32 = 0xAE;
/// The only KVM API version there is; kkm answers the same.
pub const KVM_API_VERSION: i32 = 12;

// ---- /dev/kvm, /dev/kkm ----
pub const KVM_GET_API_VERSION: u32 = io(0x00);
pub const KVM_CREATE_VM: u32 = io(0x01);
pub const KVM_CHECK_EXTENSION: u32 = io(0x03);
pub const KVM_GET_VCPU_MMAP_SIZE: u32 = io(0x04);
pub const KVM_GET_SUPPORTED_CPUID: u32 = iowr(0x05, core::mem::size_of::<KvmCpuid2>());

// ---- VM fd ----
pub const KVM_CREATE_VCPU: u32 = io(0x41);
pub const KVM_SET_USER_MEMORY_REGION: u32 = iow(0x46, core::mem::size_of::<KvmUserspaceMemoryRegion>());

// ---- vCPU fd ----
pub const KVM_RUN: u32 = io(0x80);
pub const KVM_GET_REGS: u32 = ior(0x81, core::mem::size_of::<KvmRegs>());
pub const KVM_SET_REGS: u32 = iow(0x82, core::mem::size_of::<KvmRegs>());
pub const KVM_GET_SREGS: u32 = ior(0x83, core::mem::size_of::<KvmSregs>());
pub const KVM_SET_SREGS: u32 = iow(0x84, core::mem::size_of::<KvmSregs>());
pub const KVM_TRANSLATE: u32 = iowr(0x85, core::mem::size_of::<KvmTranslation>());
pub const KVM_GET_MSRS: u32 = iowr(0x88, core::mem::size_of::<KvmMsrs>());
pub const KVM_SET_MSRS: u32 = iow(0x89, core::mem::size_of::<KvmMsrs>());
pub const KVM_GET_FPU: u32 = ior(0x8c, core::mem::size_of::<KvmFpu>());
pub const KVM_SET_FPU: u32 = iow(0x8d, core::mem::size_of::<KvmFpu>());
pub const KVM_SET_CPUID2: u32 = iow(0x90, core::mem::size_of::<KvmCpuid2>());
pub const KVM_SET_GUEST_DEBUG: u32 = iow(0x9b, core::mem::size_of::<KvmGuestDebug>());
pub const KVM_GET_XSAVE: u32 = ior(0xa4, core::mem::size_of::<KvmXsave>());
pub const KVM_SET_XSAVE: u32 = iow(0xa5, core::mem::size_of::<KvmXsave>());
pub const KVM_GET_XCRS: u32 = ior(0xa6, core::mem::size_of::<KvmXcrs>());
pub const KVM_SET_XCRS: u32 = iow(0xa7, core::mem::size_of::<KvmXcrs>());

// ---- kkm's own ioctl ----

/// Identifies /dev/kkm: KVM has no ioctl with this number and answers ENOTTY.
/// Number 0xe0 is far above any KVM system ioctl.
pub const KKM_GET_IDENTITY: u32 = ior(0xe0, core::mem::size_of::<KkmIdentity>());
/// `KkmIdentity::magic`: "KKM1" little-endian.
pub const KKM_IDENTITY_MAGIC: u32 = u32::from_le_bytes(*b"KKM1");
/// Version of this file's contract; bumped on any incompatible change.
pub const KKM_ABI_VERSION: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KkmIdentity {
    pub magic: u32,
    pub abi_version: u32,
    /// Highest vCPU count per VM the module accepts.
    pub max_vcpus: u32,
    /// Reserved for feature bits; zero today.
    pub flags: u32,
}

// ---- capabilities (KVM_CHECK_EXTENSION arguments) ----
pub const KVM_CAP_USER_MEMORY: u32 = 3;
pub const KVM_CAP_EXT_CPUID: u32 = 7;
pub const KVM_CAP_NR_VCPUS: u32 = 9;
pub const KVM_CAP_NR_MEMSLOTS: u32 = 10;
pub const KVM_CAP_SET_GUEST_DEBUG: u32 = 23;
pub const KVM_CAP_XSAVE: u32 = 55;
pub const KVM_CAP_XCRS: u32 = 56;
pub const KVM_CAP_MAX_VCPUS: u32 = 66;
pub const KVM_CAP_SYNC_REGS: u32 = 74;
pub const KVM_CAP_IMMEDIATE_EXIT: u32 = 136;

// ---- exit reasons (kvm_run::exit_reason) ----
pub const KVM_EXIT_UNKNOWN: u32 = 0;
pub const KVM_EXIT_EXCEPTION: u32 = 1;
pub const KVM_EXIT_IO: u32 = 2;
pub const KVM_EXIT_DEBUG: u32 = 4;
pub const KVM_EXIT_HLT: u32 = 5;
pub const KVM_EXIT_SHUTDOWN: u32 = 8;
pub const KVM_EXIT_FAIL_ENTRY: u32 = 9;
pub const KVM_EXIT_INTR: u32 = 10;
pub const KVM_EXIT_INTERNAL_ERROR: u32 = 17;

pub const KVM_EXIT_IO_IN: u8 = 0;
pub const KVM_EXIT_IO_OUT: u8 = 1;

/// kvm_run::kvm_valid_regs / kvm_dirty_regs bits.
pub const KVM_SYNC_X86_REGS: u64 = 1 << 0;
pub const KVM_SYNC_X86_SREGS: u64 = 1 << 1;

/// kvm_cpuid_entry2::flags: the entry applies only to this `index` (ECX).
/// KVM's spelling, typo included.
pub const KVM_CPUID_FLAG_SIGNIFCANT_INDEX: u32 = 1 << 0;

/// KVM_SET_USER_MEMORY_REGION flags.
pub const KVM_MEM_LOG_DIRTY_PAGES: u32 = 1 << 0;
pub const KVM_MEM_READONLY: u32 = 1 << 1;

// ---- km guest ABI: how the payload leaves the VM ----

/// `out %al, $KM_SYSCALL_PORT` from the LSTAR landing pad: the payload ran
/// `syscall`; rax = number, rdi, rsi, rdx, r10, r8, r9 = arguments,
/// rcx = return address, r11 = saved rflags. Before the next KVM_RUN, km
/// sets rax = result, rip = rcx, rflags = r11 (redirecting by changing
/// rcx/r11/rsp first). kkm reports a ring-3 `syscall` as the same exit.
pub const KM_SYSCALL_PORT: u16 = 0xf0;
/// `out %al, $KM_FAULT_PORT` from an IDT stub running on its IST stack, whose
/// top holds [vector, error code (0 if none), rip, cs, rflags, rsp, ss].
/// kkm reports faults as KVM_EXIT_EXCEPTION instead (vector and error code in
/// `kvm_run.ex`, the fault address in sregs.cr2).
pub const KM_FAULT_PORT: u16 = 0xf1;

// ---- structs ----

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmRegs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmSegment {
    pub base: u64,
    pub limit: u32,
    pub selector: u16,
    pub type_: u8,
    pub present: u8,
    pub dpl: u8,
    pub db: u8,
    pub s: u8,
    pub l: u8,
    pub g: u8,
    pub avl: u8,
    pub unusable: u8,
    pub padding: u8,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmDtable {
    pub base: u64,
    pub limit: u16,
    pub padding: [u16; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmSregs {
    pub cs: KvmSegment,
    pub ds: KvmSegment,
    pub es: KvmSegment,
    pub fs: KvmSegment,
    pub gs: KvmSegment,
    pub ss: KvmSegment,
    pub tr: KvmSegment,
    pub ldt: KvmSegment,
    pub gdt: KvmDtable,
    pub idt: KvmDtable,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub cr8: u64,
    pub efer: u64,
    pub apic_base: u64,
    pub interrupt_bitmap: [u64; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmUserspaceMemoryRegion {
    pub slot: u32,
    pub flags: u32,
    pub guest_phys_addr: u64,
    pub memory_size: u64,
    pub userspace_addr: u64,
}

/// `KVM_TRANSLATE`: user space fills `linear_address`, the kernel the rest.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmTranslation {
    pub linear_address: u64,
    pub physical_address: u64,
    pub valid: u8,
    pub writeable: u8,
    pub usermode: u8,
    pub pad: [u8; 5],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmCpuidEntry2 {
    pub function: u32,
    pub index: u32,
    pub flags: u32,
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
    pub padding: [u32; 3],
}

/// Header of a variable-length array: `nent` `KvmCpuidEntry2` follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmCpuid2 {
    pub nent: u32,
    pub padding: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmMsrEntry {
    pub index: u32,
    pub reserved: u32,
    pub data: u64,
}

/// Header of a variable-length array: `nmsrs` `KvmMsrEntry` follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmMsrs {
    pub nmsrs: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmFpu {
    pub fpr: [[u8; 16]; 8],
    pub fcw: u16,
    pub fsw: u16,
    pub ftwx: u8,
    pub pad1: u8,
    pub last_opcode: u16,
    pub last_ip: u64,
    pub last_dp: u64,
    pub xmm: [[u8; 16]; 16],
    pub mxcsr: u32,
    pub pad2: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmGuestDebug {
    pub control: u32,
    pub pad: u32,
    pub debugreg: [u64; 8],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvmXsave {
    pub region: [u32; 1024],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmXcr {
    pub xcr: u32,
    pub reserved: u32,
    pub value: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmXcrs {
    pub nr_xcrs: u32,
    pub flags: u32,
    pub xcrs: [KvmXcr; 16],
    pub padding: [u64; 16],
}

/// kvm_run.io, valid when exit_reason == KVM_EXIT_IO.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmRunIo {
    pub direction: u8,
    pub size: u8,
    pub port: u16,
    pub count: u32,
    /// Offset of the data from the start of the kvm_run mapping.
    pub data_offset: u64,
}

/// kvm_run.ex, valid when exit_reason == KVM_EXIT_EXCEPTION.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmRunEx {
    pub exception: u32,
    pub error_code: u32,
}

/// The exit-specific union of kvm_run; only the members km and kkm use are
/// named, `padding` fixes its size.
#[repr(C)]
#[derive(Clone, Copy)]
pub union KvmRunExit {
    pub io: KvmRunIo,
    pub ex: KvmRunEx,
    pub padding: [u8; 256],
}

/// The union at the end of kvm_run that holds the synced registers.
#[repr(C)]
#[derive(Clone, Copy)]
pub union KvmSyncRegs {
    pub regs: KvmRegs,
    pub padding: [u8; 2048],
}

/// The shared page mapped from a vCPU fd at offset 0 (`struct kvm_run`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct KvmRun {
    pub request_interrupt_window: u8,
    pub immediate_exit: u8,
    pub padding1: [u8; 6],
    pub exit_reason: u32,
    pub ready_for_interrupt_injection: u8,
    pub if_flag: u8,
    pub flags: u16,
    pub cr8: u64,
    pub apic_base: u64,
    pub exit: KvmRunExit,
    pub kvm_valid_regs: u64,
    pub kvm_dirty_regs: u64,
    pub s: KvmSyncRegs,
}

// Layout pinned at compile time, for both builds of this file.
const _: () = {
    use core::mem::size_of;
    assert!(size_of::<KvmRegs>() == 144);
    assert!(size_of::<KvmSegment>() == 24);
    assert!(size_of::<KvmDtable>() == 16);
    assert!(size_of::<KvmSregs>() == 312);
    assert!(size_of::<KvmUserspaceMemoryRegion>() == 32);
    assert!(size_of::<KvmTranslation>() == 24);
    assert!(size_of::<KvmCpuidEntry2>() == 40);
    assert!(size_of::<KvmCpuid2>() == 8);
    assert!(size_of::<KvmMsrEntry>() == 16);
    assert!(size_of::<KvmMsrs>() == 8);
    assert!(size_of::<KvmFpu>() == 416);
    assert!(size_of::<KvmGuestDebug>() == 72);
    assert!(size_of::<KvmXsave>() == 4096);
    assert!(size_of::<KvmXcrs>() == 392);
    assert!(size_of::<KvmRunExit>() == 256);
    assert!(size_of::<KvmRun>() == 2352);
    assert!(core::mem::offset_of!(KvmRun, exit_reason) == 8);
    assert!(core::mem::offset_of!(KvmRun, exit) == 32);
    assert!(core::mem::offset_of!(KvmRun, kvm_valid_regs) == 288);
    assert!(core::mem::offset_of!(KvmRun, s) == 304);
    assert!(size_of::<KkmIdentity>() == 16);
};
