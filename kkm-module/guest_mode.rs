// SPDX-License-Identifier: GPL-2.0

//! Guest mode: the per-CPU areas the switcher (switcher.S) works on, and the
//! one wrapper that enters the guest and returns with the host restored.
//!
//! Per-CPU area (`AREA_ORDER` pages, naturally aligned, direct-mapped):
//!
//! | offset  | what                                                    |
//! |---------|---------------------------------------------------------|
//! | 0x0000  | kkm's GDT (Linux's selectors, TSS at 0x40)              |
//! | 0x0100  | `Save`: host state, guest registers, the last exit      |
//! | 0x0800  | TSS: RSP0 and IST1-5; no I/O bitmap (every port closed) |
//! | 0x1000  | IDT (mapped read-only in guest roots)                   |
//! | 0x2000  | exit stack (IST1, also the syscall exit's stack)        |
//! | 0x3000  | NMI stack (IST2)                                        |
//! | 0x4000  | #DF stack (IST3)                                        |
//! | 0x5000  | #MC stack (IST4)                                        |
//! | 0x6000  | #DB stack (IST5)                                        |
//! | 0x7000  | unused, never mapped in a guest root                    |

use crate::abi::KvmRegs;
use crate::fpu::GuestFpu;
use crate::guest_state::{RFLAGS_AC, RFLAGS_IF, RFLAGS_NT, RFLAGS_TF};
use core::{
    mem::offset_of,
    ptr,
    sync::atomic::{AtomicPtr, AtomicU32, Ordering},
};
use kernel::{bindings, prelude::*};

const PAGE: usize = 4096;
pub(crate) const AREA_ORDER: u32 = 3;
const SAVE_OFF: usize = 0x100;
const TSS_OFF: usize = 0x800;
const IDT_OFF: usize = 0x1000;
const EXIT_STACK_TOP: usize = 0x3000;
const NMI_STACK_TOP: usize = 0x4000;
const DF_STACK_TOP: usize = 0x5000;
const MC_STACK_TOP: usize = 0x6000;
const DB_STACK_TOP: usize = 0x7000;
/// Pages of an area a guest root maps: all but the last.
const AREA_MAPPED_PAGES: usize = 7;

const KERNEL_CS: u16 = 0x10;
const TSS_SEL: usize = 0x40;
/// The exit frame's vector of a `syscall` (not an IDT vector).
const SYSCALL_VECTOR: u64 = 0x100;

const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_DEBUGCTL: u32 = 0x1d9;
/// Linux's STAR: syscall loads CS 0x10/SS 0x18; sysret (never used) 0x33/0x2b.
const STAR: u64 = (0x23 << 48) | (0x10 << 32);
/// What `syscall` clears: interrupts stay off into the switcher, and TF, AC,
/// DF, NT and IOPL do not reach ring 0.
const SYSCALL_MASK: u64 = RFLAGS_IF | RFLAGS_TF | RFLAGS_AC | RFLAGS_NT | (1 << 10) | (3 << 12);

extern "C" {
    static kkm_switcher_start: u8;
    static kkm_switcher_end: u8;
    static kkm_idt_stubs: u8;
    static gdt_page: u8;
    fn kkm_switcher_enter(area: *mut u8);
    fn kkm_syscall_entry();
    fn kkm_deliver_to_host(entry: u64);
}

/// An operand of `lgdt`/`lidt`/`sgdt`/`sidt`, aligned so that the base is.
#[repr(C)]
#[derive(Default)]
struct DtPtr {
    _pad: [u16; 3],
    limit: u16,
    base: u64,
}

/// The frame of an exit, as kkm_exit_common leaves it: the GPRs it pushed,
/// the vector and error code the stub pushed, then the CPU's iret frame.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ExitFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// The save area at `SAVE_OFF`; switcher.S repeats these offsets.
#[repr(C)]
struct Save {
    kkm_gdt: DtPtr,
    kkm_idt: DtPtr,
    host_gdt: DtPtr,
    host_idt: DtPtr,
    host_rsp: u64,
    host_cr3: u64,
    guest_cr3: u64,
    host_fs: u64,
    host_gs: u64,
    host_kgs: u64,
    _pad: u64,
    guest_fs: u64,
    guest_gs: u64,
    cr2: u64,
    nmi: u64,
    kfault: u64,
    self_addr: u64,
    scratch: u64,
    host_tr: u16,
    host_ds: u16,
    host_es: u16,
    host_fs_sel: u16,
    host_gs_sel: u16,
    /// A valid selector (kernel DS) for the buffer-clearing `verw`.
    verw_sel: u16,
    _pad_sel: [u16; 2],
    guest: KvmRegs,
    exit: ExitFrame,
    /// The host's writable GDT, for `ltr` (see `host_gdt_rw`).
    host_gdt_rw: DtPtr,
}

const _: () = {
    assert!(offset_of!(Save, kkm_idt) == 0x10);
    assert!(offset_of!(Save, host_gdt) == 0x20);
    assert!(offset_of!(Save, host_idt) == 0x30);
    assert!(offset_of!(Save, host_rsp) == 0x40);
    assert!(offset_of!(Save, guest_cr3) == 0x50);
    assert!(offset_of!(Save, host_gdt_rw) == 0x200);
    assert!(offset_of!(Save, guest_fs) == 0x78);
    assert!(offset_of!(Save, cr2) == 0x88);
    assert!(offset_of!(Save, nmi) == 0x90);
    assert!(offset_of!(Save, kfault) == 0x98);
    assert!(offset_of!(Save, self_addr) == 0xa0);
    assert!(offset_of!(Save, scratch) == 0xa8);
    assert!(offset_of!(Save, host_tr) == 0xb0);
    assert!(offset_of!(Save, host_gs_sel) == 0xb8);
    assert!(offset_of!(Save, verw_sel) == 0xba);
    assert!(offset_of!(Save, guest) == 0xc0);
    assert!(offset_of!(Save, exit) == 0x150);
    assert!(core::mem::size_of::<ExitFrame>() == 22 * 8);
    assert!(SAVE_OFF + core::mem::size_of::<Save>() <= TSS_OFF);
};

/// Physical page frame of a `struct page` (SPARSEMEM_VMEMMAP, as x86-64).
pub(crate) fn page_pfn(page: *mut bindings::page) -> u64 {
    // SAFETY: `vmemmap_base` is set once at boot and only read afterwards.
    let base = unsafe { bindings::vmemmap_base };
    ((page as usize - base) / core::mem::size_of::<bindings::page>()) as u64
}

/// The direct-map address of a page frame.
pub(crate) fn pfn_to_virt(pfn: u64) -> usize {
    // SAFETY: `page_offset_base` is set once at boot and only read afterwards.
    (unsafe { bindings::page_offset_base }) + ((pfn as usize) << 12)
}

/// One CPU's area: `1 << AREA_ORDER` pages.
struct Area {
    page: *mut bindings::page,
}

impl Area {
    fn base(&self) -> usize {
        pfn_to_virt(page_pfn(self.page))
    }

    fn save(&self) -> *mut Save {
        (self.base() + SAVE_OFF) as *mut Save
    }

    fn new() -> Result<Self> {
        // SAFETY: plain page allocation; a buddy block of order n is aligned
        // to its size, which the area's layout relies on.
        let page = unsafe {
            bindings::alloc_pages(bindings::GFP_KERNEL | bindings::__GFP_ZERO, AREA_ORDER)
        };
        if page.is_null() {
            return Err(ENOMEM);
        }
        let area = Self { page };
        // SAFETY: the area is ours, zeroed, and not used by anyone yet.
        unsafe { area.init() };
        Ok(area)
    }

    /// Writes the descriptor tables.
    ///
    /// # Safety
    ///
    /// The area must not be in use by any CPU.
    unsafe fn init(&self) {
        let base = self.base();
        let gdt = base as *mut u64;
        let tss = base + TSS_OFF;
        // Accessed bits preset, so the CPU never writes the GDT in a guest root.
        let entries: [(usize, u64); 4] = [
            (0x10, 0x00af_9b00_0000_ffff), // kernel code, 64-bit
            (0x18, 0x00cf_9300_0000_ffff), // kernel data
            (0x28, 0x00cf_f300_0000_ffff), // user data
            (0x30, 0x00af_fb00_0000_ffff), // user code, 64-bit (0x33)
        ];
        let tss_limit = 0x67u64;
        let t = tss as u64;
        let tss_low = tss_limit
            | ((t & 0xff_ffff) << 16)
            | (0x89 << 40) // present, available 64-bit TSS
            | (((t >> 24) & 0xff) << 56);
        // SAFETY: all writes are inside the area's first two pages, which
        // this function owns (see the caller's contract).
        unsafe {
            for (sel, d) in entries {
                gdt.add(sel / 8).write(d);
            }
            gdt.add(TSS_SEL / 8).write(tss_low);
            gdt.add(TSS_SEL / 8 + 1).write(t >> 32);
            // 64-bit TSS: RSP0 at 4, IST1..7 at 36, I/O map base at 102.
            let w = |off: usize, v: u64| ptr::write_unaligned((tss + off) as *mut u64, v);
            w(4, (base + EXIT_STACK_TOP) as u64);
            for (i, top) in [
                EXIT_STACK_TOP,
                NMI_STACK_TOP,
                DF_STACK_TOP,
                MC_STACK_TOP,
                DB_STACK_TOP,
            ]
            .iter()
            .enumerate()
            {
                w(36 + 8 * i, (base + top) as u64);
            }
            // The I/O map base lies past the limit: every port is closed.
            ptr::write_unaligned((tss + 102) as *mut u16, 104);

            let stubs = ptr::addr_of!(kkm_idt_stubs) as u64;
            let idt = (base + IDT_OFF) as *mut u64;
            for v in 0..256u64 {
                let ist: u64 = match v {
                    2 => 2,
                    8 => 3,
                    18 => 4,
                    1 => 5,
                    _ => 1,
                };
                // Interrupt gates (IF off); #BP also from ring 3, as on Linux.
                let attr: u64 = if v == 3 { 0xee } else { 0x8e };
                let off = stubs + 16 * v;
                let low = (off & 0xffff)
                    | (u64::from(KERNEL_CS) << 16)
                    | (ist << 32)
                    | (attr << 40)
                    | (((off >> 16) & 0xffff) << 48);
                idt.add(2 * v as usize).write(low);
                idt.add(2 * v as usize + 1).write(off >> 32);
            }
            let save = self.save();
            (*save).kkm_gdt = DtPtr {
                limit: (TSS_SEL + 15) as u16,
                base: base as u64,
                ..Default::default()
            };
            (*save).kkm_idt = DtPtr {
                limit: 0xfff,
                base: (base + IDT_OFF) as u64,
                ..Default::default()
            };
            (*save).self_addr = base as u64;
            (*save).verw_sel = 0x18;
        }
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this order; no CPU uses the area
        // any more (the module is going away, so no vCPU runs).
        unsafe { bindings::__free_pages(self.page, AREA_ORDER) };
    }
}

const CR4_FRED: u64 = 1 << 32;
const MSR_EFER: u32 = 0xc000_0080;
const EFER_NXE: u64 = 1 << 11;

/// Refuses to load where guest mode would not be safe, with one line why:
/// with FRED, events are not delivered through kkm's IDT and TSS; without
/// NX, the guest root could not map the per-CPU areas non-executable.
pub(crate) fn check_cpu() -> Result {
    if read_cr4() & CR4_FRED != 0 {
        pr_err!("FRED is enabled: kkm's IDT-based guest mode cannot run (boot with fred=off)\n");
        return Err(ENODEV);
    }
    if rdmsr(MSR_EFER) & EFER_NXE == 0 {
        pr_err!("the host runs without NX (EFER.NXE): kkm's guest roots need it\n");
        return Err(ENODEV);
    }
    Ok(())
}

/// The areas of all possible CPUs, indexed by CPU number.
pub(crate) struct Switcher {
    areas: KVec<Area>,
}

// SAFETY: an area is only touched by its own CPU with interrupts off (or
// before any CPU uses it); the raw page pointer is just an owned allocation.
unsafe impl Send for Switcher {}
// SAFETY: as for Send.
unsafe impl Sync for Switcher {}

static SWITCHER: AtomicPtr<Switcher> = AtomicPtr::new(ptr::null_mut());

/// Owns the global switcher from module load to unload.
pub(crate) struct Registration;

impl Registration {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: `nr_cpu_ids` is fixed after boot.
        let n = unsafe { bindings::nr_cpu_ids } as usize;
        let mut areas = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            areas.push(Area::new()?, GFP_KERNEL)?;
        }
        let sw = KBox::new(Switcher { areas }, GFP_KERNEL)?;
        SWITCHER.store(KBox::into_raw(sw), Ordering::Release);
        Ok(Self)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let p = SWITCHER.swap(ptr::null_mut(), Ordering::AcqRel);
        if !p.is_null() {
            // SAFETY: `p` came from `KBox::into_raw` in `new`, and no vCPU can
            // run once the module is unloading (every fd pins the module).
            drop(unsafe { KBox::from_raw(p) });
        }
    }
}

fn switcher() -> &'static Switcher {
    let p = SWITCHER.load(Ordering::Acquire);
    // SAFETY: set before /dev/kkm exists and cleared after it is gone; every
    // caller holds an fd, which pins the module.
    unsafe { &*p }
}

/// Every page a guest root must map supervisor-only, as
/// `(virtual address, pfn, writable, executable)`: the switcher's code and
/// each CPU's area (all but its IDT writable, nothing else executable).
pub(crate) fn supervisor_pages(mut f: impl FnMut(usize, u64, bool, bool) -> Result) -> Result {
    let start = ptr::addr_of!(kkm_switcher_start) as usize;
    let end = ptr::addr_of!(kkm_switcher_end) as usize;
    for va in (start..end).step_by(PAGE) {
        // SAFETY: `va` is in this module's text, mapped while it is loaded.
        let pfn = unsafe { bindings::vmalloc_to_pfn(va as *const _) } as u64;
        f(va, pfn, false, true)?;
    }
    for area in switcher().areas.iter() {
        let pfn = page_pfn(area.page);
        for i in 0..AREA_MAPPED_PAGES {
            f(
                area.base() + i * PAGE,
                pfn + i as u64,
                i * PAGE != IDT_OFF,
                false,
            )?;
        }
    }
    Ok(())
}

/// Why the guest stopped.
pub(crate) enum Exit {
    /// `syscall`; the registers are as the CPU left them (RIP = RCX).
    Syscall,
    /// An exception of the guest (vector 0-31).
    Exception { vector: u8, error: u32, cr2: u64 },
    /// A host interrupt or NMI, already handed to the host.
    Interrupt,
    /// A fault inside the switcher itself (a kkm bug), with host state back.
    SwitcherFault { vector: u64, rip: u64 },
}

/// The guest's registers that the switcher loads and saves.
pub(crate) struct GuestCpu<'a> {
    pub(crate) regs: &'a mut KvmRegs,
    pub(crate) fs_base: &'a mut u64,
    pub(crate) gs_base: &'a mut u64,
    pub(crate) fpu: &'a mut GuestFpu,
    /// Physical address of the guest root.
    pub(crate) root: u64,
    /// The VM's per-CPU counts of vCPUs in guest mode (`Vm::running`).
    pub(crate) running: &'a [AtomicU32],
}

/// Reads an architectural MSR that every x86-64 CPU has (callers check
/// the feature of any other first).
pub(crate) fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: per the function's contract the MSR exists; reading it has
    // no side effect.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// # Safety
///
/// Interrupts must be off, and the caller restores the host's value before
/// they are on again.
unsafe fn wrmsr(msr: u32, v: u64) {
    // SAFETY: per the contract, the changed MSR is seen only by kkm.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack))
    };
}

fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effect.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) v, options(nomem, nostack)) };
    v
}

pub(crate) fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effect.
    unsafe { core::arch::asm!("mov {}, cr4", out(reg) v, options(nomem, nostack)) };
    v
}

const CR4_PCIDE: u64 = 1 << 17;
const CR4_CET: u64 = 1 << 23;
const MSR_IA32_U_CET: u32 = 0x6a0;
const CR3_NOFLUSH: u64 = 1 << 63;

/// This CPU's writable GDT (Linux's `gdt_page`); GDTR holds a read-only alias,
/// through which `ltr` could not mark the TSS busy.
fn host_gdt_rw() -> u64 {
    let off: u64;
    // (The offset may be "negative": per-CPU symbols are linked above the
    // copies.)
    // SAFETY: `this_cpu_off` is the per-CPU offset of this CPU, read
    // through GS as Linux reads it; the caller has interrupts off.
    unsafe {
        core::arch::asm!("mov {}, qword ptr gs:[{}]", out(reg) off, sym bindings::this_cpu_off, options(nostack, readonly))
    };
    (ptr::addr_of!(gdt_page) as u64).wrapping_add(off)
}

/// Runs the guest once on this CPU: enters it, and returns at its next exit
/// with the host state back and any host interrupt it took delivered. Must
/// be called inside `fpu::with_fpu`.
pub(crate) fn run(g: &mut GuestCpu<'_>) -> Exit {
    let _irqs = kernel::interrupt::local_interrupt_disable();
    // SAFETY: with interrupts off the CPU number is stable.
    let cpu = unsafe { bindings::raw_smp_processor_id() } as usize;
    let area = &switcher().areas[cpu];
    let save = area.save();
    let cr4 = read_cr4();
    let pcid = cr4 & CR4_PCIDE != 0;

    // SAFETY: the area belongs to this CPU and nothing else runs on it
    // (interrupts are off); the switcher restores every register it changes
    // before it returns (see switcher.S), and the MSRs changed here are put
    // back below before interrupts are on again.
    unsafe {
        (*save).guest = *g.regs;
        (*save).guest.rflags = sanitize_rflags(g.regs.rflags);
        (*save).guest_fs = *g.fs_base;
        (*save).guest_gs = *g.gs_base;
        // PCID 0 is never used by Linux (its PCIDs start at 1): loading the
        // root with PCID 0 and no NOFLUSH drops any stale guest translation.
        (*save).guest_cr3 = g.root;
        (*save).host_cr3 = read_cr3() | if pcid { CR3_NOFLUSH } else { 0 };
        // Linux's GDT limit (GDT_SIZE - 1); ltr reads only the TSS entry.
        (*save).host_gdt_rw = DtPtr {
            limit: 0x7f,
            base: host_gdt_rw(),
            ..Default::default()
        };
        ptr::write_volatile(ptr::addr_of_mut!((*save).nmi), 0);

        let host = [
            (MSR_LSTAR, rdmsr(MSR_LSTAR)),
            (MSR_CSTAR, rdmsr(MSR_CSTAR)),
            (MSR_STAR, rdmsr(MSR_STAR)),
            (MSR_SYSCALL_MASK, rdmsr(MSR_SYSCALL_MASK)),
            (MSR_IA32_SYSENTER_CS, rdmsr(MSR_IA32_SYSENTER_CS)),
        ];
        let entry = kkm_syscall_entry as *const () as u64;
        wrmsr(MSR_LSTAR, entry);
        // Compatibility mode is out of reach (no 32-bit code segment), but
        // its syscall must not find the host's entry either.
        wrmsr(MSR_CSTAR, entry);
        wrmsr(MSR_STAR, STAR);
        wrmsr(MSR_SYSCALL_MASK, SYSCALL_MASK);
        // A null SYSENTER_CS makes sysenter fault (#GP, or #UD on AMD).
        wrmsr(MSR_IA32_SYSENTER_CS, 0);
        let dr7 = read_dr7();
        if dr7 & 0xff != 0 {
            write_dr7(0x400);
        }
        let debugctl = rdmsr(MSR_IA32_DEBUGCTL);
        if debugctl != 0 {
            wrmsr(MSR_IA32_DEBUGCTL, 0);
        }
        // km's user CET state (shadow stack, IBT) is not the payload's.
        let u_cet = if cr4 & CR4_CET != 0 {
            rdmsr(MSR_IA32_U_CET)
        } else {
            0
        };
        if u_cet != 0 {
            wrmsr(MSR_IA32_U_CET, 0);
        }

        let host_pkru = g.fpu.load();
        // A locked increment (a full barrier) before CR3 is loaded: see
        // `Vm::kick_all_running`.
        g.running[cpu].fetch_add(1, Ordering::SeqCst);
        kkm_switcher_enter(area.base() as *mut u8);
        g.running[cpu].fetch_sub(1, Ordering::Release);
        g.fpu.save(host_pkru);
        if (*save).exit.vector == DB_VECTOR {
            // The guest's #DB left its status in DR6, which the host's
            // #DB handler would otherwise read as its own.
            write_dr6(DR6_RESET);
        }

        if u_cet != 0 {
            wrmsr(MSR_IA32_U_CET, u_cet);
        }
        if debugctl != 0 {
            wrmsr(MSR_IA32_DEBUGCTL, debugctl);
        }
        if dr7 & 0xff != 0 {
            write_dr7(dr7);
        }
        for (msr, v) in host {
            wrmsr(msr, v);
        }
    }

    // SAFETY: the switcher has returned; the area is again only ours.
    let (f, cr2, kfault, nmi, fs, gs, host_idt) = unsafe {
        (
            (*save).exit,
            (*save).cr2,
            (*save).kfault,
            ptr::read_volatile(ptr::addr_of!((*save).nmi)),
            (*save).guest_fs,
            (*save).guest_gs,
            (*save).host_idt.base,
        )
    };
    if nmi != 0 || f.vector == NMI_VECTOR {
        crate::nmi::raise_self(f.vector == NMI_VECTOR);
    }
    if f.vector == DF_VECTOR {
        // Host state is back (the #DF had its own stack): stop cleanly
        // rather than run on with state the CPU could not deliver.
        // SAFETY: a NUL-terminated format without conversions.
        unsafe { bindings::panic(c"kkm: double fault in guest mode\n".as_char_ptr()) };
    }
    if kfault != 0 {
        if f.vector == MC_VECTOR {
            deliver_to_host(host_idt, MC_VECTOR);
        }
        return Exit::SwitcherFault {
            vector: f.vector,
            rip: f.rip,
        };
    }
    *g.regs = KvmRegs {
        rax: f.rax,
        rbx: f.rbx,
        rcx: f.rcx,
        rdx: f.rdx,
        rsi: f.rsi,
        rdi: f.rdi,
        rsp: f.rsp,
        rbp: f.rbp,
        r8: f.r8,
        r9: f.r9,
        r10: f.r10,
        r11: f.r11,
        r12: f.r12,
        r13: f.r13,
        r14: f.r14,
        r15: f.r15,
        rip: f.rip,
        rflags: f.rflags,
    };
    (*g.fs_base, *g.gs_base) = (fs, gs);
    match f.vector {
        SYSCALL_VECTOR => Exit::Syscall,
        NMI_VECTOR => Exit::Interrupt,
        // The host's machine-check handler decides (it sees a kernel-mode
        // #MC here, as for KVM's guests); the guest then goes on.
        MC_VECTOR => {
            deliver_to_host(host_idt, MC_VECTOR);
            Exit::Interrupt
        }
        v @ 0..=31 => Exit::Exception {
            vector: v as u8,
            error: f.error as u32,
            cr2,
        },
        v => {
            deliver_to_host(host_idt, v);
            Exit::Interrupt
        }
    }
}

const DB_VECTOR: u64 = 1;
const NMI_VECTOR: u64 = 2;
/// DR6 with no status bit set.
const DR6_RESET: u64 = 0xffff_0ff0;
const DF_VECTOR: u64 = 8;
const MC_VECTOR: u64 = 18;

/// Runs the host's handler for `vector`, found in the host IDT at
/// `host_idt`, as if the event had hit the caller. Interrupts are off.
fn deliver_to_host(host_idt: u64, vector: u64) {
    // SAFETY: the host's IDT (its GDTR/IDTR are back) has a gate for every
    // vector; its handler returns here with iret, with interrupts still
    // off, as for an interrupt taken in this code.
    unsafe {
        let gate = (host_idt as usize + 16 * vector as usize) as *const u8;
        let lo = u64::from(ptr::read_unaligned(gate.cast::<u16>()));
        let mid = u64::from(ptr::read_unaligned(gate.add(6).cast::<u16>()));
        let hi = u64::from(ptr::read_unaligned(gate.add(8).cast::<u32>()));
        kkm_deliver_to_host(lo | (mid << 16) | (hi << 32));
    }
}

/// RFLAGS the guest is entered with: IF on, IOPL 0, and NT, VM, VIF, VIP
/// off whatever the caller stored (check_entry refused them already).
fn sanitize_rflags(rflags: u64) -> u64 {
    (rflags & crate::guest_state::RFLAGS_ALLOWED) | RFLAGS_IF | crate::guest_state::RFLAGS_FIXED
}

fn read_dr7() -> u64 {
    let v: u64;
    // SAFETY: reading DR7 has no side effect.
    unsafe { core::arch::asm!("mov {}, dr7", out(reg) v, options(nomem, nostack)) };
    v
}

/// # Safety
///
/// Interrupts off.
unsafe fn write_dr6(v: u64) {
    // SAFETY: DR6 only reports debug events; per the contract no host #DB
    // handler is between its read and this write.
    unsafe { core::arch::asm!("mov dr6, {}", in(reg) v, options(nomem, nostack)) };
}

/// # Safety
///
/// Interrupts off; the host's value is written back before they are on.
unsafe fn write_dr7(v: u64) {
    // SAFETY: per the contract only kkm runs with the changed value.
    unsafe { core::arch::asm!("mov dr7, {}", in(reg) v, options(nomem, nostack)) };
}
