//! The virtual CPU the payload runs on: long mode, the payload at CPL3 as on
//! Linux, km's descriptor tables, the LSTAR landing pad, IDT stubs that
//! report faults on an IST stack, MSRs, FPU state and the CPUID it sees.
//!
//! Why CPL3 and not CPL0 under KVM: on PVM-backed KVM (what CI has) guest
//! supervisor mode cannot use the FPU at all — the first x87 or SSE
//! instruction at CPL0 ends in a KVM emulation failure — while at CPL3 it
//! works. PVM does not switch privilege on `syscall` (the pad runs at CPL3
//! and reaches the port through the TSS I/O bitmap), hardware KVM does
//! (the pad runs at CPL0 and returns with `sysretq`); `SyscallReturn`
//! tells the run loop which of the two it is on.

use kkm_uapi::{KM_FAULT_PORT, KM_SYSCALL_PORT};
use kvm_bindings::{kvm_dtable, kvm_regs, kvm_segment, kvm_sregs, CpuId};

use super::layout::{monitor, PAGE_SIZE};
use super::selectors::{FIRST_TSS, KERNEL_CS, SYSRET_BASE, USER_CS, USER_DS};
use crate::device::{self, Vcpu};
use crate::mem::{AddressSpace, MemError};

/// The LSTAR target: `out %al,$port; sysretq; ud2`. Neither path through
/// it touches the payload's stack (and its red zone): where `syscall` did
/// not leave CPL3, km resumes at rcx itself; where it did, km resumes at
/// the `sysretq`, which returns to rcx at CPL3 with rflags from r11.
const LANDING_PAD: [u8; 7] = [0xe6, KM_SYSCALL_PORT as u8, 0x48, 0x0f, 0x07, 0x0f, 0x0b];
/// Address of the pad's `sysretq`.
pub const PAD_SYSRET: u64 = monitor::CODE + 2;

// The FPU state of a signal frame is saved and restored by the guest
// itself: on PVM, KVM_GET/SET_FPU do not reach the state the payload runs
// with (measured: GET_FPU reads MXCSR 0 while the payload has 0x7f80, and
// SET_FPU changes nothing it sees). Both stubs run at CPL3. kkm's SET_FPU
// does reach the payload, so there km restores without the return stub
// (`Vcpu::load_fpu`), and no CPL3 iretq is needed: QEMU 7.2's TCG, where
// kkm is tested, reads iretq's frame with supervisor rights, which SMAP
// refuses on a user page.

/// Entered with the handler's registers, except rax = the frame's fxsave
/// area and r11 = the handler: `fxsave64 (%rax); fninit; ldmxcsr
/// DEFAULT_MXCSR(%rip); xor %eax,%eax; jmp *%r11`.
pub const SIGNAL_ENTRY: u64 = monitor::CODE + 0x10;
/// Past the fxsave: for a frame whose FPU image km wrote itself.
pub const SIGNAL_ENTRY_NO_SAVE: u64 = SIGNAL_ENTRY + 4;
const SIGNAL_ENTRY_CODE: [u8; 18] =
    [0x48, 0x0f, 0xae, 0x00, 0xdb, 0xe3, 0x0f, 0xae, 0x15, 0x23, 0, 0, 0, 0x31, 0xc0, 0x41, 0xff, 0xe3];
/// Entered with the restored registers, except rsp = this vCPU's signal
/// scratch, where km staged the FPU image and then an iretq frame:
/// `fxrstor64 (%rsp); add $512,%rsp; iretq` (iretq between CPL3 contexts
/// restores rip, rflags and rsp without touching another register).
pub const SIGNAL_RETURN: u64 = monitor::CODE + 0x30;
const SIGNAL_RETURN_CODE: [u8; 14] = [0x48, 0x0f, 0xae, 0x0c, 0x24, 0x48, 0x81, 0xc4, 0x00, 0x02, 0, 0, 0x48, 0xcf];
/// MXCSR as Linux gives a handler; ldmxcsr above reads it rip-relative.
const DEFAULT_MXCSR: u64 = monitor::CODE + 0x40;
const _: () = assert!(SIGNAL_ENTRY + 13 + 0x23 == DEFAULT_MXCSR);
/// `syscall; ud2`: km's own syscall, run once before the payload to find
/// out where `syscall` leaves the pad (see `probe_syscall_return`).
const PROBE: u64 = monitor::CODE + 0x48;
const PROBE_CODE: [u8; 4] = [0x0f, 0x05, 0x0f, 0x0b];

/// Whether an exit on the syscall port came from the pad's `out`: the
/// exit's rip is the `out` itself, or just past it where the device
/// completes port I/O before exiting (PVM here does).
pub fn is_pad_exit(rip: u64) -> bool {
    rip == monitor::CODE || rip == PAD_SYSRET
}

/// Entered with rax = a 64-byte aligned spot below the caller's red zone,
/// from a syscall exit: `fxsave64 (%rax); syscall; ud2`. The syscall comes
/// back through the pad like any other; km then reads the FPU image a
/// forked child is to start with and resumes the caller as after any
/// syscall (the signal scratch, read-only to user code, cannot take it).
pub const FPU_SAVE: u64 = monitor::CODE + 0x50;
const FPU_SAVE_CODE: [u8; 8] = [0x48, 0x0f, 0xae, 0x00, 0x0f, 0x05, 0x0f, 0x0b];
const _: () = assert!(DEFAULT_MXCSR + 4 <= FPU_SAVE);

/// vCPU `id`'s signal scratch.
pub fn signal_scratch(id: u32) -> u64 {
    monitor::SIGNAL_SCRATCH + u64::from(id) * monitor::SIGNAL_SCRATCH_STRIDE
}

const STUB_SIZE: u64 = 16;
const STUBS: u64 = monitor::CODE + PAGE_SIZE;

pub const MSR_STAR: u32 = 0xc000_0081;
pub const MSR_LSTAR: u32 = 0xc000_0082;
pub const MSR_CSTAR: u32 = 0xc000_0083;
pub const MSR_SFMASK: u32 = 0xc000_0084;

const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_OSXSAVE: u64 = 1 << 18;
const EFER_SCE: u64 = 1 << 0;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

/// RFLAGS bits the payload may carry across a syscall (like sysret):
/// arithmetic flags, TF, DF, OF, AC, ID. IF stays clear: nothing
/// interrupts the guest, and the bit 1 is reserved-one.
const USER_RFLAGS: u64 = 0x0004_0dd5 | (1 << 21);
const RFLAGS_RESERVED: u64 = 1 << 1;
/// Flags `syscall` clears in the pad: TF, IF, DF, NT, AC (as Linux).
const SFMASK: u64 = 0x0004_4700;

/// Vectors for which the CPU pushes an error code.
fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// One 16-byte stub per vector: push a dummy error code when the CPU did
/// not, push the vector, report on the fault port.
fn stub(vector: u8) -> [u8; STUB_SIZE as usize] {
    let mut code = Vec::with_capacity(STUB_SIZE as usize);
    if !has_error_code(vector) {
        code.extend_from_slice(&[0x6a, 0x00]); // push $0
    }
    code.extend_from_slice(&[0x68, vector, 0, 0, 0]); // push $vector
    code.extend_from_slice(&[0xe6, KM_FAULT_PORT as u8, 0x0f, 0x0b]); // out %al,$port; ud2
    code.resize(STUB_SIZE as usize, 0xcc);
    code.try_into().expect("stub fits its slot")
}

/// The vectors `int $n` may raise from CPL3: #BP and #OF, as on Linux.
pub fn user_gate(vector: u8) -> bool {
    vector == 3 || vector == 4
}

fn idt_gate(handler: u64, ist: u8, dpl: u8) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[0..2].copy_from_slice(&(handler as u16).to_le_bytes());
    g[2..4].copy_from_slice(&KERNEL_CS.to_le_bytes());
    g[4] = ist;
    g[5] = 0x80 | (dpl << 5) | 0x0e; // present, 64-bit interrupt gate
    g[6..8].copy_from_slice(&((handler >> 16) as u16).to_le_bytes());
    g[8..12].copy_from_slice(&((handler >> 32) as u32).to_le_bytes());
    g
}

fn tss_addr(vcpu: u32) -> u64 {
    monitor::TSS + vcpu as u64 * monitor::TSS_STRIDE
}

/// Top of vCPU `vcpu`'s IST stack.
fn ist_top(vcpu: u32) -> u64 {
    monitor::IST + (vcpu as u64 + 1) * monitor::IST_STACK_SIZE
}

/// The TSS proper (104 bytes), then an I/O permission bitmap for ports
/// 0..=255, then the 0xff byte that must end a bitmap.
const TSS_SIZE: usize = 104 + 32 + 1;
/// The bitmap byte that holds the syscall port's bit.
const SYSCALL_PORT_BYTE: usize = 104 + KM_SYSCALL_PORT as usize / 8;

/// A vCPU's TSS. Its I/O bitmap opens only the syscall port to CPL3, for
/// the pad where `syscall` stays at CPL3 (PVM); the fault stubs run at
/// CPL0, which the bitmap does not restrict. Every other `in`/`out` of
/// the payload is a #GP, as natively.
fn tss(vcpu: u32) -> [u8; TSS_SIZE] {
    let mut t = [0u8; TSS_SIZE];
    let top = ist_top(vcpu);
    t[4..12].copy_from_slice(&top.to_le_bytes()); // rsp0
    t[36..44].copy_from_slice(&top.to_le_bytes()); // ist1
    t[102..104].copy_from_slice(&104u16.to_le_bytes()); // I/O bitmap offset
    t[104..].fill(0xff);
    t[SYSCALL_PORT_BYTE] &= !(1 << (KM_SYSCALL_PORT % 8));
    t
}

/// Runs km's probe on a fresh vCPU (before any payload code) and returns
/// where `syscall` leaves the pad. Learning this from the payload's first
/// exit instead would let a payload whose first act is a jump into the pad
/// at CPL3 pass for the PVM case.
pub fn probe_syscall_return(vcpu: &mut dyn Vcpu) -> device::Result<SyscallReturn> {
    vcpu.set_regs(&kvm_regs { rip: PROBE, rflags: RFLAGS_RESERVED, ..Default::default() })?;
    match vcpu.run()? {
        device::Exit::Syscall => {}
        other => return Err(device::DeviceError::Unsupported(format!("km's syscall probe ended in {other:?}"))),
    }
    Ok(SyscallReturn::from_pad_cs(vcpu.sregs()?.cs.selector))
}

/// Fits the TSSs to how `syscall` returns: where it enters CPL0 the pad
/// needs no port access from CPL3, so the syscall port closes: every `in`
/// and `out` of the payload is then a #GP raised by the CPU itself.
pub fn set_syscall_return(how: SyscallReturn, space: &mut AddressSpace) {
    if how == SyscallReturn::Sysret {
        for i in 0..monitor::MAX_VCPUS as u32 {
            let closed = tss(i)[SYSCALL_PORT_BYTE] | (1 << (KM_SYSCALL_PORT % 8));
            space.write_monitor(tss_addr(i) + SYSCALL_PORT_BYTE as u64, &[closed]);
        }
    }
}

fn tss_descriptor(base: u64) -> [u8; 16] {
    let limit = TSS_SIZE as u64 - 1;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x8b << 40) // present, busy 64-bit TSS (km loads TR directly)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&low.to_le_bytes());
    d[8..12].copy_from_slice(&((base >> 32) as u32).to_le_bytes());
    d
}

/// Writes the pad, stubs, GDT, IDT and TSSs into the monitor area and maps
/// them for the guest: code read-execute, tables read-only (accessed bits
/// preset so the CPU never writes them), IST stacks read-write.
pub fn install_tables(space: &mut AddressSpace) -> Result<(), MemError> {
    space.write_monitor(monitor::CODE, &LANDING_PAD);
    space.write_monitor(SIGNAL_ENTRY, &SIGNAL_ENTRY_CODE);
    space.write_monitor(SIGNAL_RETURN, &SIGNAL_RETURN_CODE);
    space.write_monitor(DEFAULT_MXCSR, &0x1f80u32.to_le_bytes());
    space.write_monitor(PROBE, &PROBE_CODE);
    space.write_monitor(FPU_SAVE, &FPU_SAVE_CODE);
    let mut idt = Vec::with_capacity(256 * 16);
    for v in 0..=255u8 {
        let handler = STUBS + v as u64 * STUB_SIZE;
        space.write_monitor(handler, &stub(v));
        idt.extend_from_slice(&idt_gate(handler, 1, if user_gate(v) { 3 } else { 0 }));
    }
    space.write_monitor(monitor::IDT, &idt);
    let mut gdt = Vec::with_capacity(monitor::GDT_SIZE as usize);
    // In selector order (see `selectors`); empty slots are not present.
    gdt.extend_from_slice(&0u64.to_le_bytes());
    gdt.extend_from_slice(&0u64.to_le_bytes());
    gdt.extend_from_slice(&0x00af_9b00_0000_ffffu64.to_le_bytes()); // 64-bit code, accessed
    gdt.extend_from_slice(&0x00cf_9300_0000_ffffu64.to_le_bytes()); // data, accessed
    gdt.extend_from_slice(&0u64.to_le_bytes());
    gdt.extend_from_slice(&0x00cf_f300_0000_ffffu64.to_le_bytes()); // user data, accessed
    gdt.extend_from_slice(&0x00af_fb00_0000_ffffu64.to_le_bytes()); // user 64-bit code, accessed
    for i in 0..monitor::MAX_VCPUS as u32 {
        gdt.extend_from_slice(&tss_descriptor(tss_addr(i)));
        space.write_monitor(tss_addr(i), &tss(i));
    }
    space.write_monitor(monitor::GDT, &gdt);
    let ro = libc::PROT_READ;
    // The pad may run at CPL3 (PVM), so its page is user-accessible.
    space.map_monitor(monitor::CODE, monitor::CODE + monitor::CODE_SIZE, ro | libc::PROT_EXEC, true)?;
    space.seal_monitor_code(monitor::CODE, monitor::CODE + monitor::CODE_SIZE)?;
    let scratch_end =
        monitor::SIGNAL_SCRATCH + (monitor::MAX_VCPUS * monitor::SIGNAL_SCRATCH_STRIDE).next_multiple_of(PAGE_SIZE);
    // The return stub only reads its scratch: no payload thread can change
    // what km staged for another.
    space.map_monitor(monitor::SIGNAL_SCRATCH, scratch_end, ro, true)?;
    space.map_monitor(monitor::GDT, monitor::IST, ro, false)?;
    let ist_end = monitor::IST + monitor::MAX_VCPUS * monitor::IST_STACK_SIZE;
    space.map_monitor(monitor::IST, ist_end, libc::PROT_READ | libc::PROT_WRITE, false)?;
    Ok(())
}

fn user_segment(selector: u16, code: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 0xb } else { 0x3 },
        present: 1,
        dpl: 3,
        db: u8::from(!code),
        s: 1,
        l: u8::from(code),
        g: 1,
        ..Default::default()
    }
}

/// What the payload may use of the device's CPUID, and the XCR0 to match.
#[derive(Clone)]
pub struct CpuModel {
    pub cpuid: CpuId,
    pub xcr0: u64,
    /// CPUID.1:EDX, which Linux reports as AT_HWCAP.
    pub hwcap: u64,
}

impl CpuModel {
    pub fn new(mut cpuid: CpuId) -> CpuModel {
        let mut xcr0 = 0;
        let mut hwcap = 0;
        for e in cpuid.as_mut_slice() {
            match (e.function, e.index) {
                (1, _) => {
                    // No VMX/SMX/MONITOR, no APIC timer or x2APIC: the guest
                    // has no kernel to use them.
                    e.ecx &= !((1 << 3) | (1 << 5) | (1 << 6) | (1 << 21) | (1 << 24));
                    hwcap = e.edx as u64;
                }
                (7, 0) => {
                    // No UMIP/PKU/OSPKE/WAITPKG/LA57; no AMX (Linux gates it
                    // behind arch_prctl permission).
                    e.ecx &= !((1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 16));
                    e.edx &= !((1 << 22) | (1 << 24) | (1 << 25));
                }
                (0xd, 0) => {
                    // x87, SSE, AVX and the AVX-512 states; not MPX, PKRU
                    // or AMX tiles.
                    let supported = e.eax as u64 | ((e.edx as u64) << 32);
                    xcr0 = supported & 0xe7;
                    e.eax &= xcr0 as u32;
                    e.edx = 0;
                }
                _ => {}
            }
        }
        CpuModel { cpuid, xcr0, hwcap }
    }

    fn has_xsave(&self) -> bool {
        self.cpuid.as_slice().iter().any(|e| e.function == 1 && e.ecx & (1 << 26) != 0)
    }
}

/// Puts a new vCPU `id` in long mode on km's tables at CPL3, with a clean
/// FPU and FS/GS bases `bases` (in the same KVM_SET_SREGS: every vCPU
/// ioctl costs ~15-20 us on PVM).
pub fn init_vcpu(vcpu: &mut dyn Vcpu, id: u32, model: &CpuModel, cr3: u64, bases: (u64, u64)) -> device::Result<()> {
    vcpu.set_cpuid(&model.cpuid)?;
    let mut sregs: kvm_sregs = vcpu.sregs()?;
    let code = user_segment(USER_CS, true);
    let data = user_segment(USER_DS, false);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = kvm_segment { base: bases.0, ..data };
    sregs.gs = kvm_segment { base: bases.1, ..data };
    sregs.ss = data;
    sregs.tr = kvm_segment {
        base: tss_addr(id),
        limit: TSS_SIZE as u32 - 1,
        selector: FIRST_TSS + 16 * id as u16,
        type_: 0xb,
        present: 1,
        ..Default::default()
    };
    sregs.ldt = kvm_segment { type_: 0x2, present: 1, unusable: 1, ..Default::default() };
    sregs.gdt = kvm_dtable { base: monitor::GDT, limit: (monitor::GDT_SIZE - 1) as u16, ..Default::default() };
    sregs.idt = kvm_dtable { base: monitor::IDT, limit: (256 * 16 - 1) as u16, ..Default::default() };
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    sregs.cr3 = cr3;
    sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | if model.has_xsave() { CR4_OSXSAVE } else { 0 };
    sregs.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
    vcpu.set_sregs(&sregs)?;
    vcpu.set_msrs(&[
        (MSR_STAR, ((SYSRET_BASE as u64) << 48) | ((KERNEL_CS as u64) << 32)),
        (MSR_LSTAR, monitor::CODE),
        (MSR_CSTAR, monitor::CODE),
        (MSR_SFMASK, SFMASK),
    ])?;
    vcpu.init_fpu(if model.has_xsave() { model.xcr0 } else { 0 })
}

/// Gives an initialised vCPU (new, or left by an ended thread, possibly at
/// CPL0) a thread's registers and FS/GS bases, at CPL3.
pub fn set_thread_state(vcpu: &mut dyn Vcpu, regs: &kvm_regs, fs_base: u64, gs_base: u64) -> device::Result<()> {
    let mut sregs = vcpu.sregs()?;
    sregs.cs = user_segment(USER_CS, true);
    sregs.ss = user_segment(USER_DS, false);
    sregs.fs = kvm_segment { base: fs_base, ..user_segment(USER_DS, false) };
    sregs.gs = kvm_segment { base: gs_base, ..user_segment(USER_DS, false) };
    vcpu.set_sregs(&sregs)?;
    set_user_regs(vcpu, regs)
}

/// Gives a vCPU that `init_vcpu` just set up (segments as the thread
/// needs them) the thread's registers.
pub fn set_user_regs(vcpu: &mut dyn Vcpu, regs: &kvm_regs) -> device::Result<()> {
    vcpu.set_regs(&kvm_regs { rflags: regs.rflags | RFLAGS_RESERVED, ..*regs })
}

/// Puts the vCPU's code and stack segments back to the payload's (from a
/// fault stub, or the pad at CPL0), so the next entry runs at CPL3.
pub fn enter_user_mode(vcpu: &mut dyn Vcpu) -> device::Result<()> {
    let mut sregs = vcpu.sregs()?;
    sregs.cs = user_segment(USER_CS, true);
    sregs.ss = user_segment(USER_DS, false);
    vcpu.set_sregs(&sregs)
}

/// How the pad gets back to the payload, found out at the first syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallReturn {
    /// `syscall` stayed at CPL3 (PVM): km sets rip and rflags itself.
    Direct,
    /// `syscall` entered CPL0 (VT-x/SVM): the pad's `sysretq` returns.
    Sysret,
}

impl SyscallReturn {
    /// Judged from the code selector the vCPU has in the pad.
    pub fn from_pad_cs(cs: u16) -> SyscallReturn {
        if cs & 3 == 3 {
            SyscallReturn::Direct
        } else {
            SyscallReturn::Sysret
        }
    }
}

/// RFLAGS for resuming the payload with the value it had in r11.
pub fn resume_rflags(r11: u64) -> u64 {
    (r11 & USER_RFLAGS) | RFLAGS_RESERVED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_push_a_uniform_frame() {
        let s = stub(14); // #PF has an error code
        assert_eq!(&s[..5], &[0x68, 14, 0, 0, 0]);
        let s = stub(6); // #UD has none: a dummy 0 goes first
        assert_eq!(&s[..7], &[0x6a, 0, 0x68, 6, 0, 0, 0]);
        assert_eq!(&s[7..11], &[0xe6, KM_FAULT_PORT as u8, 0x0f, 0x0b]);
        assert_eq!(stub(255)[2..4], [0x68, 255]);
    }

    #[test]
    fn gate_encodes_handler_and_ist() {
        let g = idt_gate(0x7f_c000_1234, 1, 0);
        assert_eq!(u16::from_le_bytes([g[0], g[1]]), 0x1234);
        assert_eq!(u16::from_le_bytes([g[2], g[3]]), KERNEL_CS);
        assert_eq!(g[4], 1);
        assert_eq!(g[5], 0x8e);
        assert_eq!(u16::from_le_bytes([g[6], g[7]]), 0xc000);
        assert_eq!(u32::from_le_bytes([g[8], g[9], g[10], g[11]]), 0x7f);
    }

    #[test]
    fn tss_opens_only_the_syscall_port() {
        let t = tss(0);
        let open = |port: usize| t[104 + port / 8] & (1 << (port % 8)) == 0;
        assert!(open(KM_SYSCALL_PORT as usize) && !open(KM_FAULT_PORT as usize));
        assert_eq!((0..256).filter(|&p| open(p)).count(), 1);
        assert_eq!(t[TSS_SIZE - 1], 0xff);
        assert_eq!(u16::from_le_bytes([t[102], t[103]]), 104);
    }

    #[test]
    fn tss_descriptor_encodes_base() {
        let d = tss_descriptor(0x7f_c000_4080);
        let low = u64::from_le_bytes(d[..8].try_into().unwrap());
        assert_eq!(low & 0xffff, TSS_SIZE as u64 - 1);
        assert_eq!((low >> 16) & 0xff_ffff, 0x00_4080);
        assert_eq!((low >> 40) & 0xff, 0x8b);
        assert_eq!((low >> 56) & 0xff, 0xc0);
        assert_eq!(u32::from_le_bytes(d[8..12].try_into().unwrap()), 0x7f);
    }

    #[test]
    fn resume_flags_are_sanitized() {
        assert_eq!(resume_rflags(0), 2);
        // IF, IOPL, NT, RF and VM never reach the payload's flags.
        assert_eq!(resume_rflags(0x0003_7200 | 1), 3);
        assert_eq!(resume_rflags(0x0004_0400), 0x0004_0402); // AC, DF kept
    }
}
