// SPDX-License-Identifier: GPL-2.0

//! An NMI that arrives while kkm's IDT is loaded (in the guest or in the
//! switcher) is not the host's to lose: once the host's tables are back it is
//! raised again on this CPU as a self-IPI in NMI delivery mode, through the
//! local APIC in whichever mode (x2APIC or xAPIC) the host runs it.

use crate::guest_mode::rdmsr;
use core::{
    ptr,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{bindings, prelude::*};

const MSR_APIC_BASE: u32 = 0x1b;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const MSR_X2APIC_ID: u32 = 0x802;
const MSR_X2APIC_ICR: u32 = 0x830;
/// ICR low word: NMI delivery mode, level assert, physical destination.
const ICR_NMI: u32 = 0x4400;
const ICR_BUSY: u32 = 1 << 12;
const XAPIC_ID: usize = 0x20;
const XAPIC_ICR_LOW: usize = 0x300;
const XAPIC_ICR_HIGH: usize = 0x310;

extern "C" {
    fn kkm_unblock_nmi();
}

/// The xAPIC's registers, mapped at load when the host uses the xAPIC.
static XAPIC: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());

/// Maps the xAPIC if the host uses it; refuses a CPU whose local APIC is
/// off (an NMI could not be raised again).
pub(crate) struct Registration;

impl Registration {
    pub(crate) fn new() -> Result<Self> {
        let base = rdmsr(MSR_APIC_BASE);
        if base & APIC_BASE_ENABLE == 0 {
            pr_err!("the local APIC is disabled: NMIs taken in the guest could not be handed to the host\n");
            return Err(ENODEV);
        }
        if base & APIC_BASE_X2APIC == 0 {
            // SAFETY: maps the APIC's register page (not RAM) uncached.
            let p = unsafe { bindings::ioremap(base & !0xfff, 4096) };
            if p.is_null() {
                return Err(ENOMEM);
            }
            XAPIC.store(p.cast(), Ordering::Release);
        }
        Ok(Self)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let p = XAPIC.swap(ptr::null_mut(), Ordering::AcqRel);
        if !p.is_null() {
            // SAFETY: mapped by `new`; no vCPU can run any more.
            unsafe { bindings::iounmap(p.cast()) };
        }
    }
}

/// Raises an NMI on this CPU. Interrupts are off and the host's tables are
/// loaded. `blocked`: the CPU took the NMI itself and still blocks NMIs.
pub(crate) fn raise_self(blocked: bool) {
    if blocked {
        // SAFETY: an iret to the next instruction on the current stack,
        // with the current flags and the kernel's selectors.
        unsafe { kkm_unblock_nmi() };
    }
    let x = XAPIC.load(Ordering::Acquire);
    if x.is_null() {
        let id = rdmsr(MSR_X2APIC_ID);
        // SAFETY: in x2APIC mode (checked at load) the ICR MSR sends an IPI;
        // this one is an NMI to this CPU, which the host's handler takes.
        unsafe {
            core::arch::asm!("wrmsr", in("ecx") MSR_X2APIC_ICR, in("eax") ICR_NMI, in("edx") id as u32,
                options(nostack))
        };
        return;
    }
    let reg = |off: usize| x.wrapping_add(off).cast::<u32>();
    // SAFETY: `x` maps this CPU's xAPIC registers (the same physical page on
    // every CPU); interrupts are off, so no IPI of this CPU's is half-written.
    unsafe {
        while ptr::read_volatile(reg(XAPIC_ICR_LOW)) & ICR_BUSY != 0 {
            core::hint::spin_loop();
        }
        let id = ptr::read_volatile(reg(XAPIC_ID)) & 0xff00_0000;
        ptr::write_volatile(reg(XAPIC_ICR_HIGH), id);
        ptr::write_volatile(reg(XAPIC_ICR_LOW), ICR_NMI);
    }
}
