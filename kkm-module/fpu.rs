// SPDX-License-Identifier: GPL-2.0

//! The guest's FPU: an XSAVE image (standard format) per vCPU, loaded with
//! XRSTOR right before the guest runs and saved with XSAVE right after, inside
//! a `kernel_fpu_begin_mask()` section, so the caller's own registers (saved
//! by that call, restored on its return to user space) are never touched.
//! The image holds the user features of XCR0 that kkm knows (x87, SSE, AVX,
//! AVX-512), never supervisor state. PKRU is switched by hand around the
//! guest, so the payload cannot change km's protection keys.
//!
//! Each vCPU has its own XCR0 (KVM_GET/SET_XCRS), a subset of those
//! features, by default all of them. The image is restored and saved under
//! the host's XCR0, with x87, SSE and the guest XCR0's components; the
//! guest's XCR0 is loaded with XSETBV after the restore and the host's put
//! back before the save, with interrupts off inside the `kernel_fpu` section,
//! as KVM does around VM entry.

use crate::abi::{KvmFpu, KvmXcrs, KvmXsave};
use crate::guest_mode::{page_pfn, pfn_to_virt, read_cr4};
use crate::guest_state;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::{bindings, page::Page, prelude::*};

/// x87, SSE, AVX, AVX-512 opmask, ZMM_Hi256, Hi16_ZMM.
const KNOWN_FEATURES: u64 = 0xe7;
const X87_SSE: u64 = 0x3;
const CR4_OSXSAVE: u64 = 1 << 18;
const CR4_PKE: u64 = 1 << 22;
/// Offsets in the image: legacy area, then the XSAVE header at 512.
const FCW: usize = 0;
const FSW: usize = 2;
const FTW: usize = 4;
const FOP: usize = 6;
const FIP: usize = 8;
const FDP: usize = 16;
const MXCSR: usize = 24;
const ST: usize = 32;
const XMM: usize = 160;
const XSTATE_BV: usize = 512;
const HEADER_END: usize = 576;
const IMAGE_SIZE: usize = 4096;

/// Features kkm saves and restores: XCR0 ∩ `KNOWN_FEATURES`, set at load.
static FEATURES: AtomicU64 = AtomicU64::new(0);
/// The host's XCR0, read at load: Linux sets it at boot, the same on every
/// CPU, and never changes it.
static HOST_XCR0: AtomicU64 = AtomicU64::new(0);
/// MXCSR bits the CPU accepts (FXSAVE's MXCSR_MASK), set at load.
static MXCSR_MASK: AtomicU32 = AtomicU32::new(0);

fn xgetbv0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: XGETBV(0) reads XCR0; the caller checked CR4.OSXSAVE.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi, options(nomem, nostack))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Checks the CPU at load: kkm needs XSAVE enabled by the host. Refuses
/// with one line otherwise.
pub(crate) fn init() -> Result {
    if read_cr4() & CR4_OSXSAVE == 0 {
        pr_err!("the host has XSAVE off (CR4.OSXSAVE): kkm cannot switch the FPU state\n");
        return Err(ENODEV);
    }
    let host = xgetbv0();
    let features = host & KNOWN_FEATURES;
    // The image must hold every saved component (CPUID leaf 0xD).
    for bit in 2..8 {
        if features & (1 << bit) != 0 {
            let r = core::arch::x86_64::__cpuid_count(0xd, bit);
            if (r.ebx + r.eax) as usize > IMAGE_SIZE {
                pr_err!("XSAVE component {} lies beyond 4 KiB\n", bit);
                return Err(ENODEV);
            }
        }
    }
    FEATURES.store(features, Ordering::Relaxed);
    HOST_XCR0.store(host, Ordering::Relaxed);
    let mut area = [0u8; 512 + 16];
    let p = ((area.as_mut_ptr() as usize + 15) & !15) as *mut u8;
    // SAFETY: FXSAVE stores 512 bytes at the 16-byte aligned `p` inside
    // `area`; it only reads the FPU state.
    unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) p, options(nostack)) };
    // SAFETY: inside `area`, written just above.
    let mask = unsafe { (p.add(28) as *const u32).read_unaligned() };
    // A zero mask means the architectural default.
    MXCSR_MASK.store(if mask == 0 { 0xffbf } else { mask }, Ordering::Relaxed);
    Ok(())
}

/// The XCR0 values a guest may have: the features kkm switches.
pub(crate) fn supported_xcr0() -> u64 {
    FEATURES.load(Ordering::Relaxed)
}

/// One vCPU's FPU: the XSAVE image, PKRU and XCR0.
pub(crate) struct GuestFpu {
    page: Page,
    pkru: u32,
    /// Always passes `guest_state::check_xcr0` against `FEATURES`.
    xcr0: u64,
}

impl GuestFpu {
    /// The reset state, as KVM's: FCW 0x37f, MXCSR 0x1f80, the rest zero.
    pub(crate) fn new() -> Result<Self> {
        let page = Page::alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO)?;
        let mut fpu = Self {
            page,
            pkru: 0,
            xcr0: supported_xcr0(),
        };
        fpu.put::<u16>(FCW, 0x37f);
        fpu.put::<u32>(MXCSR, 0x1f80);
        fpu.put::<u64>(XSTATE_BV, X87_SSE);
        Ok(fpu)
    }

    /// The components in the image: x87, SSE and the guest XCR0's. SSE
    /// instructions work whatever XCR0 says (the host's CR4.OSFXSR enables
    /// them), so, as on hardware, their registers are the guest's even when
    /// its XCR0 leaves SSE out. Every XSTATE_BV bit is one of these.
    fn components(&self) -> u64 {
        self.xcr0 | X87_SSE
    }

    fn image(&self) -> *mut u8 {
        pfn_to_virt(page_pfn(self.page.as_ptr())) as *mut u8
    }

    fn get<T: Copy>(&self, off: usize) -> T {
        // SAFETY: every offset used is inside the one-page image.
        unsafe { self.image().add(off).cast::<T>().read_unaligned() }
    }

    fn put<T: Copy>(&mut self, off: usize, v: T) {
        // SAFETY: as in `get`; `&mut self` excludes other users.
        unsafe { self.image().add(off).cast::<T>().write_unaligned(v) }
    }

    pub(crate) fn get_fpu(&self) -> KvmFpu {
        let mut f = KvmFpu {
            fcw: self.get(FCW),
            fsw: self.get(FSW),
            ftwx: self.get(FTW),
            last_opcode: self.get(FOP),
            last_ip: self.get(FIP),
            last_dp: self.get(FDP),
            mxcsr: self.get(MXCSR),
            ..Default::default()
        };
        for (i, r) in f.fpr.iter_mut().enumerate() {
            *r = self.get(ST + 16 * i);
        }
        for (i, r) in f.xmm.iter_mut().enumerate() {
            *r = self.get(XMM + 16 * i);
        }
        f
    }

    /// KVM_SET_FPU: the x87 and SSE state; EINVAL for MXCSR bits the CPU
    /// does not have (XRSTOR would fault on them).
    pub(crate) fn set_fpu(&mut self, f: &KvmFpu) -> Result {
        if f.mxcsr & !MXCSR_MASK.load(Ordering::Relaxed) != 0 {
            return Err(EINVAL);
        }
        self.put(FCW, f.fcw);
        self.put(FSW, f.fsw);
        self.put(FTW, f.ftwx);
        self.put(FOP, f.last_opcode);
        self.put(FIP, f.last_ip);
        self.put(FDP, f.last_dp);
        self.put(MXCSR, f.mxcsr);
        for (i, r) in f.fpr.iter().enumerate() {
            self.put(ST + 16 * i, *r);
        }
        for (i, r) in f.xmm.iter().enumerate() {
            self.put(XMM + 16 * i, *r);
        }
        // The image now holds x87 and SSE values, not their init state.
        let bv: u64 = self.get(XSTATE_BV);
        self.put(XSTATE_BV, bv | X87_SSE);
        Ok(())
    }

    pub(crate) fn get_xsave(&self) -> KvmXsave {
        let mut x = KvmXsave { region: [0; 1024] };
        for (i, w) in x.region.iter_mut().enumerate() {
            *w = self.get(4 * i);
        }
        x
    }

    /// KVM_SET_XSAVE: EINVAL for an image XRSTOR would refuse: a feature
    /// kkm does not switch or outside the guest's XCR0 (see `components`),
    /// the compacted format, reserved header bits, or MXCSR bits the CPU
    /// does not have.
    pub(crate) fn set_xsave(&mut self, x: &KvmXsave) -> Result {
        let word =
            |off: usize| u64::from(x.region[off / 4]) | (u64::from(x.region[off / 4 + 1]) << 32);
        let bv = word(XSTATE_BV);
        let header_rest_zero = (XSTATE_BV + 8..HEADER_END)
            .step_by(8)
            .all(|off| word(off) == 0);
        let mxcsr = x.region[MXCSR / 4];
        if bv & !self.components() != 0
            || !header_rest_zero
            || mxcsr & !MXCSR_MASK.load(Ordering::Relaxed) != 0
        {
            return Err(EINVAL);
        }
        for (i, w) in x.region.iter().enumerate() {
            self.put(4 * i, *w);
        }
        Ok(())
    }

    /// KVM_GET_XCRS: XCR0 only, as KVM.
    pub(crate) fn get_xcrs(&self) -> KvmXcrs {
        let mut x = KvmXcrs {
            nr_xcrs: 1,
            ..Default::default()
        };
        x.xcrs[0].xcr = guest_state::XCR0;
        x.xcrs[0].value = self.xcr0;
        x
    }

    /// KVM_SET_XCRS: EINVAL, nothing changed, for what `check_xcrs`
    /// refuses. Components the new XCR0 drops leave the image: their
    /// XSTATE_BV bits and their data are cleared (their init state), so the
    /// image holds only what the guest can have.
    pub(crate) fn set_xcrs(&mut self, x: &KvmXcrs) -> Result {
        let Some(xcr0) = guest_state::check_xcrs(x, supported_xcr0()).map_err(|_| EINVAL)? else {
            return Ok(());
        };
        let dropped = self.components() & !(xcr0 | X87_SSE);
        for bit in 2..64 {
            if dropped & (1 << bit) != 0 {
                // Where the component lies (checked inside the image at load).
                let r = core::arch::x86_64::__cpuid_count(0xd, bit);
                let start = (r.ebx as usize).min(IMAGE_SIZE);
                let end = (r.ebx as usize + r.eax as usize).min(IMAGE_SIZE);
                for off in start..end {
                    self.put::<u8>(off, 0);
                }
            }
        }
        let bv: u64 = self.get(XSTATE_BV);
        self.put(XSTATE_BV, bv & !dropped);
        self.xcr0 = xcr0;
        Ok(())
    }

    /// Loads the guest's state and XCR0 and returns the host's PKRU.
    ///
    /// # Safety
    ///
    /// Inside a `kernel_fpu_begin_mask()` section, interrupts off; `save`
    /// follows before either ends.
    pub(crate) unsafe fn load(&self) -> Option<u32> {
        let rfbm = self.components();
        // SAFETY: the image is page-aligned and validated by every setter
        // (XRSTOR faults on nothing it holds: its XSTATE_BV bits are within
        // `rfbm`, hence within the host's XCR0, still in force); the caller
        // owns the FPU.
        unsafe {
            core::arch::asm!("xrstor64 [{}]", in(reg) self.image(), in("eax") rfbm as u32,
                in("edx") (rfbm >> 32) as u32, options(nostack));
        }
        if self.xcr0 != HOST_XCR0.load(Ordering::Relaxed) {
            // SAFETY: `xcr0` passed `check_xcr0` against features of the
            // host's XCR0, so XSETBV takes it; the caller's contract gives
            // the rest of `xsetbv0`'s, and `save` puts the host's back.
            unsafe { xsetbv0(self.xcr0) };
        }
        if read_cr4() & CR4_PKE == 0 {
            return None;
        }
        // SAFETY: CR4.PKE is set, so RDPKRU/WRPKRU exist; PKRU only limits
        // user-page accesses, and the host's value is put back by `save`.
        unsafe {
            let host = rdpkru();
            wrpkru(self.pkru);
            Some(host)
        }
    }

    /// Saves the guest's state and puts back the host's XCR0 and PKRU.
    ///
    /// # Safety
    ///
    /// As for `load`, which returned `host_pkru`.
    pub(crate) unsafe fn save(&mut self, host_pkru: Option<u32>) {
        let host = HOST_XCR0.load(Ordering::Relaxed);
        if self.xcr0 != host {
            // SAFETY: the host's own value; as in `load`.
            unsafe { xsetbv0(host) };
        }
        let rfbm = self.components();
        // SAFETY: as in `load`: under the host's XCR0 again, XSAVE stores
        // exactly `rfbm`'s components, inside the image.
        unsafe {
            core::arch::asm!("xsave64 [{}]", in(reg) self.image(), in("eax") rfbm as u32,
                in("edx") (rfbm >> 32) as u32, options(nostack));
            if let Some(host) = host_pkru {
                self.pkru = rdpkru();
                wrpkru(host);
            }
        }
    }
}

/// Loads XCR0.
///
/// # Safety
///
/// `xcr0` is a value XSETBV accepts; interrupts are off inside a
/// `kernel_fpu_begin_mask()` section, and the host's XCR0 is back before
/// either ends.
unsafe fn xsetbv0(xcr0: u64) {
    // SAFETY: per the contract XSETBV does not fault, and no host code that
    // uses the FPU runs before the host's XCR0 is back: interrupts are off
    // (only NMI and machine-check handlers can run, and Linux lets neither
    // touch FPU state), the FPU is the caller's and holds no host state.
    unsafe {
        core::arch::asm!("xsetbv", in("ecx") guest_state::XCR0, in("eax") xcr0 as u32,
            in("edx") (xcr0 >> 32) as u32, options(nomem, nostack));
    }
}

/// # Safety
///
/// CR4.PKE must be set.
unsafe fn rdpkru() -> u32 {
    let v: u32;
    // SAFETY: per the contract the instruction exists.
    unsafe {
        core::arch::asm!("rdpkru", in("ecx") 0, out("eax") v, out("edx") _, options(nomem, nostack))
    };
    v
}

/// # Safety
///
/// CR4.PKE must be set; the caller restores the host's value.
unsafe fn wrpkru(v: u32) {
    // SAFETY: per the contract.
    unsafe { core::arch::asm!("wrpkru", in("ecx") 0, in("edx") 0, in("eax") v, options(nostack)) };
}

/// `kernel_fpu_begin_mask(0)`/`kernel_fpu_end()` around a closure: the
/// caller's FPU state is saved for its return to user space and the FPU is
/// ours until the end.
pub(crate) fn with_fpu<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: called in process context with interrupts on (a vCPU ioctl).
    unsafe { bindings::kernel_fpu_begin_mask(0) };
    let r = f();
    // SAFETY: pairs with the begin above.
    unsafe { bindings::kernel_fpu_end() };
    r
}
