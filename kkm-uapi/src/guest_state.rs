// Which vCPU register values /dev/kkm accepts. Like abi.rs, this file is
// compiled twice: by cargo in kkm-uapi (tests/guest_state.rs tests it) and by
// kbuild inside the kkm module (via `#[path]`), so it may use `core` only.
//
// Under kkm the payload runs on the host CPU in ring 3, entered with `iretq`
// from the module, so a register value is not a guest's private business:
// some values would fault in ring 0 (a non-canonical RIP in the iretq frame,
// a non-canonical FS/GS base written to its MSR) or hand the payload host
// privileges (IOPL). Two levels:
// - `check_sregs`: what KVM_SET_SREGS refuses, as KVM refuses control
//   register values its vCPU model cannot hold. kkm's model is a 64-bit
//   user-mode CPU without a local APIC.
// - `check_entry`: the whole contract, checked on every entry (KVM_RUN), when
//   the state is final. KVM_SET_REGS refuses nothing, as in KVM: km stores
//   payload-chosen values there (a signal handler's address) and sets
//   registers and segments in separate calls, so only the state at entry
//   counts.
//
// `check_xcrs` holds KVM_SET_XCRS to KVM's rules for XCR0, which kkm loads
// with XSETBV while the payload runs: a value outside them would fault there.
//
// Deliberately not checked: RSP (iretq loads it without a canonical check,
// every exit switches to the module's own stacks, and a Linux process may
// hold any RSP too), CR3, GDT, IDT, LDT, TR and the DS/ES bases (kkm uses its
// own tables and flat user segments; km sets these for KVM).

use crate::abi::{KvmRegs, KvmSegment, KvmSregs, KvmXcrs};

pub const CR0_PE: u64 = 1 << 0;
pub const CR0_MP: u64 = 1 << 1;
pub const CR0_ET: u64 = 1 << 4;
pub const CR0_NE: u64 = 1 << 5;
pub const CR0_WP: u64 = 1 << 16;
pub const CR0_PG: u64 = 1 << 31;
pub const CR4_PAE: u64 = 1 << 5;
pub const CR4_OSFXSR: u64 = 1 << 9;
pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
pub const CR4_OSXSAVE: u64 = 1 << 18;
pub const EFER_SCE: u64 = 1 << 0;
pub const EFER_LME: u64 = 1 << 8;
pub const EFER_LMA: u64 = 1 << 10;
pub const EFER_NXE: u64 = 1 << 11;

/// CR0, CR4 and EFER bits kkm gives a meaning to: exactly those km's guest
/// model sets. The guest's copies are never loaded (the CPU keeps the host's
/// while the payload runs), so any other bit would be a promise kkm cannot
/// keep (CD, TS, VMXE, LA57, SVME, ...).
pub const CR0_ALLOWED: u64 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
pub const CR4_ALLOWED: u64 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE;
pub const EFER_ALLOWED: u64 = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;

pub const RFLAGS_TF: u64 = 1 << 8;
pub const RFLAGS_IF: u64 = 1 << 9;
pub const RFLAGS_IOPL: u64 = 3 << 12;
pub const RFLAGS_NT: u64 = 1 << 14;
pub const RFLAGS_RF: u64 = 1 << 16;
pub const RFLAGS_VM: u64 = 1 << 17;
pub const RFLAGS_AC: u64 = 1 << 18;
pub const RFLAGS_VIF: u64 = 1 << 19;
pub const RFLAGS_VIP: u64 = 1 << 20;
pub const RFLAGS_ID: u64 = 1 << 21;
/// Bit 1 of RFLAGS reads as one; KVM_SET_REGS sets it, as KVM does.
pub const RFLAGS_FIXED: u64 = 1 << 1;
/// RFLAGS a 64-bit Linux process can hold and kkm enters as given: the
/// arithmetic flags, TF, DF, RF, AC and ID. TF and AC matter to ring 0 only
/// until the exit path clears them (interrupt gates clear TF, `syscall` clears
/// TF and AC through FMASK, and the exit path starts with `clac`). IF is
/// accepted either way and forced to 1 at entry: host interrupts must reach
/// the host. Refused: IOPL (port I/O and `cli` for the payload), NT, VM, VIF,
/// VIP and the reserved bits.
pub const RFLAGS_ALLOWED: u64 = 0x0000_0cd5 | RFLAGS_FIXED | RFLAGS_TF | RFLAGS_IF | RFLAGS_RF | RFLAGS_AC | RFLAGS_ID;

/// Why a register state was refused (KVM_SET_SREGS or KVM_RUN fail with
/// EINVAL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A CR0 bit outside `CR0_ALLOWED`, or PG without PE.
    Cr0,
    /// A CR4 bit outside `CR4_ALLOWED`.
    Cr4,
    /// An EFER bit outside `EFER_ALLOWED`.
    Efer,
    /// EFER.LMA that disagrees with LME and CR0.PG, or long mode paging
    /// without CR4.PAE (KVM's consistency rule).
    PagingMode,
    /// A task priority, APIC base or pending interrupt: kkm has no local APIC
    /// and injects no interrupts.
    Apic,
    /// At entry: not 64-bit long mode with paging.
    NotLongMode,
    /// At entry: CS is not a present 64-bit code segment of privilege 3.
    CodeSegment,
    /// At entry: SS is not a present writable data segment of privilege 3.
    StackSegment,
    /// At entry: an RFLAGS bit outside `RFLAGS_ALLOWED`.
    Rflags,
    /// At entry: RIP is not canonical.
    Rip,
    /// At entry: the FS or GS base is not canonical.
    SegmentBase,
    /// KVM_SET_XCRS: more than `MAX_XCRS` entries, flags, or a register
    /// other than XCR0.
    Xcrs,
    /// KVM_SET_XCRS: an XCR0 value XSETBV or KVM refuses (see `check_xcr0`).
    Xcr0,
}

/// Whether `addr` is canonical with 48 address bits (4-level paging, the
/// guest model's; on a 5-level host that is stricter than the CPU).
pub const fn is_canonical(addr: u64) -> bool {
    (((addr << 16) as i64) >> 16) as u64 == addr
}

/// The checks of KVM_SET_SREGS.
pub fn check_sregs(s: &KvmSregs) -> Result<(), Refusal> {
    if s.cr0 & !CR0_ALLOWED != 0 || (s.cr0 & CR0_PG != 0 && s.cr0 & CR0_PE == 0) {
        return Err(Refusal::Cr0);
    }
    if s.cr4 & !CR4_ALLOWED != 0 {
        return Err(Refusal::Cr4);
    }
    if s.efer & !EFER_ALLOWED != 0 {
        return Err(Refusal::Efer);
    }
    let long_paging = s.efer & EFER_LME != 0 && s.cr0 & CR0_PG != 0;
    let lma = s.efer & EFER_LMA != 0;
    if lma != long_paging || (long_paging && s.cr4 & CR4_PAE == 0) {
        return Err(Refusal::PagingMode);
    }
    if s.cr8 != 0 || s.apic_base != 0 || s.interrupt_bitmap != [0; 4] {
        return Err(Refusal::Apic);
    }
    Ok(())
}

/// The state KVM_RUN may enter: `check_sregs`, long mode, a 64-bit user code
/// segment and a user stack segment (kkm then loads its own selectors for
/// them), RFLAGS within `RFLAGS_ALLOWED`, a canonical RIP and canonical FS and
/// GS bases.
pub fn check_entry(r: &KvmRegs, s: &KvmSregs) -> Result<(), Refusal> {
    check_sregs(s)?;
    if s.cr0 & (CR0_PE | CR0_PG) != CR0_PE | CR0_PG || s.efer & EFER_LMA == 0 {
        return Err(Refusal::NotLongMode);
    }
    let user = |seg: &KvmSegment| seg.selector & 3 == 3 && seg.dpl == 3 && seg.s == 1 && seg.present == 1;
    let usable = |seg: &KvmSegment| user(seg) && seg.unusable == 0;
    // Type bit 3: code; with L = 1, D must be 0 (64-bit mode).
    if !usable(&s.cs) || s.cs.type_ & 0x8 == 0 || s.cs.l != 1 || s.cs.db != 0 {
        return Err(Refusal::CodeSegment);
    }
    // Type bits 3..1 = 0_1: writable data. A null SS cannot return to CPL3.
    if !usable(&s.ss) || s.ss.type_ & 0xa != 0x2 || s.ss.selector & !3 == 0 {
        return Err(Refusal::StackSegment);
    }
    if r.rflags & !RFLAGS_ALLOWED != 0 {
        return Err(Refusal::Rflags);
    }
    if !is_canonical(r.rip) {
        return Err(Refusal::Rip);
    }
    if !is_canonical(s.fs.base) || !is_canonical(s.gs.base) {
        return Err(Refusal::SegmentBase);
    }
    Ok(())
}

/// XCR0's state components (Intel SDM Vol. 1, "Enabling the XSAVE Feature
/// Set and XSAVE-Enabled Features").
pub const XFEATURE_X87: u64 = 1 << 0;
pub const XFEATURE_SSE: u64 = 1 << 1;
pub const XFEATURE_AVX: u64 = 1 << 2;
/// MPX's bound registers and BNDCSR: enabled together or not at all.
pub const XFEATURE_MPX: u64 = 3 << 3;
/// AVX-512's opmask, ZMM_Hi256 and Hi16_ZMM: all three or none.
pub const XFEATURE_AVX512: u64 = 7 << 5;
/// AMX's tile configuration and tile data: both or neither.
pub const XFEATURE_AMX: u64 = 3 << 17;
/// Supervisor components (PT, PASID, CET, HDC, UINTR, LBR, HWP): enabled
/// through IA32_XSS, reserved in XCR0.
pub const XFEATURE_SUPERVISOR: u64 = (1 << 8) | (0x7f << 10);
/// XCR0's number for XGETBV/XSETBV and in `KvmXcr::xcr`.
pub const XCR0: u32 = 0;
/// The most entries KVM_SET_XCRS takes (KVM's KVM_MAX_XCRS).
pub const MAX_XCRS: u32 = 16;

/// An XCR0 value as KVM checks it: x87 on, AVX only with SSE, AVX-512
/// all-or-none and only with AVX, the MPX and AMX pairs whole, and no bit
/// outside `supported` (the user components the vCPU can have; supervisor
/// bits never). XSETBV itself faults on what every rule but `supported`
/// refuses.
pub fn check_xcr0(xcr0: u64, supported: u64) -> Result<(), Refusal> {
    let whole = |group: u64| xcr0 & group == 0 || xcr0 & group == group;
    let has = |feature: u64| xcr0 & feature != 0;
    let valid = has(XFEATURE_X87)
        && xcr0 & !(supported & !XFEATURE_SUPERVISOR) == 0
        && (!has(XFEATURE_AVX) || has(XFEATURE_SSE))
        && whole(XFEATURE_AVX512)
        && (!has(XFEATURE_AVX512) || has(XFEATURE_AVX))
        && whole(XFEATURE_MPX)
        && whole(XFEATURE_AMX);
    if valid {
        Ok(())
    } else {
        Err(Refusal::Xcr0)
    }
}

/// KVM_SET_XCRS: at most `MAX_XCRS` entries, no flags, each naming XCR0
/// with a value `check_xcr0` accepts (KVM ignores entries for other
/// registers; kkm, which has no other, refuses them). Returns the new XCR0,
/// that of the first entry as in KVM, or `None` for no entry.
pub fn check_xcrs(x: &KvmXcrs, supported: u64) -> Result<Option<u64>, Refusal> {
    if x.nr_xcrs > MAX_XCRS || x.flags != 0 {
        return Err(Refusal::Xcrs);
    }
    let entries = x.xcrs.iter().take(x.nr_xcrs as usize);
    for e in entries.clone() {
        if e.xcr != XCR0 {
            return Err(Refusal::Xcrs);
        }
        check_xcr0(e.value, supported)?;
    }
    Ok(entries.map(|e| e.value).next())
}
