//! KVM_GET/SET_XCRS: the guest's XCR0, what KVM_SET_XCRS refuses, and that
//! the guest runs with it (XGETBV reads it, AVX faults without it) while
//! this program's own XCR0 and AVX registers stay its own.

use crate::guest::{exception, lanes, Guest, BASE};
use crate::{ioctl_ref, ioctl_val, Report};
use kkm_uapi as abi;
use kkm_uapi::guest_state as gs;
use kvm_bindings::{kvm_fpu, kvm_regs};
use kvm_ioctls::{Kvm, VcpuFd};
use std::os::fd::{AsRawFd, RawFd};

/// The user components kkm switches (x87, SSE, AVX, AVX-512).
const KKM_FEATURES: u64 = 0xe7;
const UD: u32 = 6;
/// AVX's YMM_Hi128 component: word offset in the XSAVE image.
fn avx_word() -> usize {
    std::arch::x86_64::__cpuid_count(0xd, 2).ebx as usize / 4
}
/// XSTATE_BV's word in the image.
const XSTATE_BV: usize = 128;

/// This program's XCR0.
fn xgetbv0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: XGETBV(0) reads XCR0; it exists at CPL3 when CR4.OSXSAVE is
    // set, which kkm requires to load.
    unsafe { std::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

fn get(fd: RawFd) -> Result<abi::KvmXcrs, i32> {
    let mut x = abi::KvmXcrs::default();
    ioctl_ref(fd, abi::KVM_GET_XCRS, &mut x).map(|_| x)
}

fn xcr0_of(fd: RawFd) -> Option<u64> {
    get(fd).ok().map(|x| x.xcrs[0].value)
}

fn xcrs(entries: &[(u32, u64)]) -> abi::KvmXcrs {
    let mut x = abi::KvmXcrs { nr_xcrs: entries.len() as u32, ..Default::default() };
    for (slot, &(xcr, value)) in x.xcrs.iter_mut().zip(entries) {
        *slot = abi::KvmXcr { xcr, value, ..Default::default() };
    }
    x
}

fn set(fd: RawFd, mut x: abi::KvmXcrs) -> Result<i64, i32> {
    ioctl_ref(fd, abi::KVM_SET_XCRS, &mut x)
}

fn set_xcr0(fd: RawFd, xcr0: u64) -> Result<i64, i32> {
    set(fd, xcrs(&[(gs::XCR0, xcr0)]))
}

fn get_xsave(fd: RawFd) -> Result<abi::KvmXsave, i32> {
    let mut x = abi::KvmXsave { region: [0; 1024] };
    ioctl_ref(fd, abi::KVM_GET_XSAVE, &mut x).map(|_| x)
}

fn set_xsave(fd: RawFd, mut x: abi::KvmXsave) -> Result<i64, i32> {
    ioctl_ref(fd, abi::KVM_SET_XSAVE, &mut x)
}

/// KVM_RUN from `rip`; the exit's name, or the errno.
fn run_from(vcpu: &mut VcpuFd, rip: u64) -> Result<String, i32> {
    let r = vcpu.get_regs().map_err(|e| e.errno())?;
    vcpu.set_regs(&kvm_regs { rip, ..r }).map_err(|e| e.errno())?;
    vcpu.run().map(|e| format!("{e:?}")).map_err(|e| e.errno())
}

/// As km after a syscall exit: on at RCX with R11's flags.
fn resume(vcpu: &mut VcpuFd) -> Result<String, i32> {
    let r = vcpu.get_regs().map_err(|e| e.errno())?;
    vcpu.set_regs(&kvm_regs { rip: r.rcx, rflags: r.r11, ..r }).map_err(|e| e.errno())?;
    vcpu.run().map(|e| format!("{e:?}")).map_err(|e| e.errno())
}

fn is_syscall(exit: &Result<String, i32>) -> bool {
    exit.as_ref().is_ok_and(|e| e.starts_with("IoOut(240"))
}

/// What XGETBV(0) gave the guest: EDX:EAX at its syscall exit.
fn guest_xgetbv(vcpu: &VcpuFd) -> Option<u64> {
    vcpu.get_regs().ok().map(|r| (r.rdx << 32) | (r.rax & 0xffff_ffff))
}

pub(crate) fn run(t: &mut Report, kvm: &Kvm) {
    let host = xgetbv0();
    let want = host & KKM_FEATURES;
    let avx = want & gs::XFEATURE_AVX != 0;
    // The rig's CPU (QEMU's `-cpu max`) has AVX; without it the #UD check
    // below would prove nothing.
    t.check("XCRS: the host's XCR0 has x87, SSE and AVX", host & 0x7 == 0x7, host);

    // xor %ecx,%ecx; xgetbv; syscall; vpxor %xmm0,%xmm0,%xmm0; syscall; jmp 0
    let code = [0x31, 0xc9, 0x0f, 0x01, 0xd0, 0x0f, 0x05, 0xc5, 0xf9, 0xef, 0xc0, 0x0f, 0x05, 0xeb, 0xf1];
    let vpxor = BASE + 7;
    let mut g = match Guest::new(kvm, &code) {
        Ok(g) => g,
        Err(e) => return t.check("XCRS: set-up", false, e),
    };
    let fd = g.vcpu.as_raw_fd();

    let x = get(fd);
    let mut expected = abi::KvmXcrs { nr_xcrs: 1, ..Default::default() };
    expected.xcrs[0].value = want;
    t.check(
        &format!("KVM_GET_XCRS of a new vCPU: XCR0 only, = {want:#x} (the host's x87..AVX-512)"),
        x == Ok(expected),
        x,
    );
    let kx = g.vcpu.get_xcrs().map(|x| (x.nr_xcrs, x.xcrs[0].xcr, x.xcrs[0].value));
    t.check("KVM_GET_XCRS through kvm-ioctls", kx.as_ref().is_ok_and(|&k| k == (1, 0, want)), kx);
    let leaf = kvm.get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES).ok().and_then(|c| {
        c.as_slice()
            .iter()
            .find(|e| e.function == 0xd && e.index == 0)
            .map(|e| (u64::from(e.edx) << 32) | u64::from(e.eax))
    });
    t.check("KVM_GET_SUPPORTED_CPUID leaf 0xD: the XCR0 bits KVM_SET_XCRS takes", leaf == Some(want), leaf);
    t.errno("KVM_GET_XCRS to a bad address", ioctl_val(fd, abi::KVM_GET_XCRS, 8), libc::EFAULT);
    t.errno("KVM_SET_XCRS from a bad address", ioctl_val(fd, abi::KVM_SET_XCRS, 8), libc::EFAULT);

    // Each refused value: EINVAL and XCR0 as it was.
    let with = |v: u64| xcrs(&[(gs::XCR0, v)]);
    let refused = [
        ("x87 clear", with(want & !gs::XFEATURE_X87)),
        ("AVX without SSE", with(gs::XFEATURE_X87 | gs::XFEATURE_AVX)),
        ("AVX-512 opmask alone", with(0x27)),
        ("AVX-512 without AVX", with(0xe3)),
        ("MPX bound registers alone", with(0x0b)),
        ("MPX (not switched by kkm)", with(0x1b)),
        ("PKRU (not switched by kkm)", with(0x203)),
        ("AMX (not switched by kkm)", with(0x6_0003)),
        ("bit 63", with(0x3 | 1 << 63)),
        ("supervisor bit 8 (PT)", with(0x3 | 1 << 8)),
        ("supervisor bit 11 (CET user)", with(0x3 | 1 << 11)),
        ("XCR1", xcrs(&[(1, 0x3)])),
        ("XCR0 and XCR1", xcrs(&[(gs::XCR0, 0x3), (1, 0)])),
        ("a valid and a refused XCR0", xcrs(&[(gs::XCR0, 0x3), (gs::XCR0, 0x5)])),
        ("flags", abi::KvmXcrs { flags: 1, ..with(0x3) }),
        ("17 entries", abi::KvmXcrs { nr_xcrs: 17, ..xcrs(&[(gs::XCR0, 0x3); 16]) }),
    ];
    for (name, x) in refused {
        let r = set(fd, x);
        let now = xcr0_of(fd);
        t.check(
            &format!("KVM_SET_XCRS with {name} -> EINVAL, XCR0 kept"),
            r == Err(libc::EINVAL) && now == Some(want),
            (r, now),
        );
    }
    let r = set(fd, xcrs(&[]));
    let now = xcr0_of(fd);
    t.check("KVM_SET_XCRS with no entry: nothing changed", r == Ok(0) && now == Some(want), (r, now));

    // The default XCR0 in the guest: XGETBV reads it, AVX runs.
    let first = run_from(&mut g.vcpu, BASE);
    let seen = guest_xgetbv(&g.vcpu);
    t.check("the guest's XGETBV(0) with the default XCR0", is_syscall(&first) && seen == Some(want), (first, seen));
    let second = resume(&mut g.vcpu);
    t.check("... and its AVX instruction runs", avx && is_syscall(&second), second);

    // YMM state in the image, then an XCR0 without AVX: the image drops it.
    if let Ok(mut image) = get_xsave(fd) {
        let w = avx_word();
        image.region[w..w + 4].copy_from_slice(&[1, 2, 3, 4]);
        image.region[XSTATE_BV] |= gs::XFEATURE_AVX as u32;
        let r = set_xsave(fd, image);
        t.check("KVM_SET_XSAVE with YMM state under the default XCR0", r.is_ok(), r);
    }
    let small = gs::XFEATURE_X87 | gs::XFEATURE_SSE;
    let r = g.vcpu.set_xcrs(&kvm_bindings::kvm_xcrs {
        nr_xcrs: 1,
        xcrs: [kvm_bindings::kvm_xcr { xcr: 0, value: small, ..Default::default() }; 16],
        ..Default::default()
    });
    let now = xcr0_of(fd);
    t.check("KVM_SET_XCRS x87|SSE (through kvm-ioctls)", r.is_ok() && now == Some(small), (r, now));
    let image = get_xsave(fd);
    let consistent = image.as_ref().is_ok_and(|x| {
        let w = avx_word();
        u64::from(x.region[XSTATE_BV]) & !small == 0 && x.region[w..w + 4] == [0; 4]
    });
    t.check(
        "KVM_GET_XSAVE after it: no AVX bit in XSTATE_BV, no YMM data",
        consistent,
        image.map(|x| x.region[XSTATE_BV]),
    );
    if let Ok(mut x) = get_xsave(fd) {
        x.region[XSTATE_BV] |= gs::XFEATURE_AVX as u32;
        t.errno("KVM_SET_XSAVE with AVX state outside the guest's XCR0", set_xsave(fd, x), libc::EINVAL);
    }

    // The guest runs with it: XGETBV sees it, AVX is #UD.
    let first = run_from(&mut g.vcpu, BASE);
    let seen = guest_xgetbv(&g.vcpu);
    t.check(
        "the guest's XGETBV(0) after KVM_SET_XCRS x87|SSE",
        is_syscall(&first) && seen == Some(small),
        (first, seen),
    );
    let second = resume(&mut g.vcpu);
    let (vector, _, rip, _) = exception(&mut g.vcpu);
    let ok = second.as_deref() == Ok("Exception") && vector == UD && rip == vpxor;
    t.check("... and its AVX instruction -> KVM_EXIT_EXCEPTION 6 (#UD)", ok, (second, vector, rip));
    let after = xgetbv0();
    t.check("this program's XCR0 after those runs is the host's", after == host, after);
    caller_ymm_kept(t, &mut g.vcpu, avx);
    let image = get_xsave(fd);
    let bv = image.map(|x| u64::from(x.region[XSTATE_BV]));
    t.check("KVM_GET_XSAVE after the guest ran: XSTATE_BV within x87|SSE", bv.is_ok_and(|b| b & !small == 0), bv);

    // XCR0 is per vCPU.
    let other = g._vm.create_vcpu(1).map(|v| xcr0_of(v.as_raw_fd()));
    t.check("another vCPU keeps the default XCR0", other.as_ref().is_ok_and(|&x| x == Some(want)), other);

    // Back to the default: AVX runs again.
    let r = set_xcr0(fd, want);
    let again = run_from(&mut g.vcpu, vpxor);
    t.check("KVM_SET_XCRS back to the default: the AVX instruction runs", r.is_ok() && is_syscall(&again), (r, again));

    x87_only(t, kvm);
}

/// An XCR0 of x87 alone (valid, as in KVM): the guest reads it, and its
/// SSE registers, which SSE instructions use whatever XCR0 says, are still
/// its own and in the image.
fn x87_only(t: &mut Report, kvm: &Kvm) {
    // xor %ecx,%ecx; xgetbv; paddd %xmm1,%xmm0; syscall
    let code = [0x31, 0xc9, 0x0f, 0x01, 0xd0, 0x66, 0x0f, 0xfe, 0xc1, 0x0f, 0x05];
    let mut g = match Guest::new(kvm, &code) {
        Ok(g) => g,
        Err(e) => return t.check("XCR0 = x87: set-up", false, e),
    };
    let fd = g.vcpu.as_raw_fd();
    let mut fpu = kvm_fpu { fcw: 0x37f, mxcsr: 0x1f80, ..Default::default() };
    fpu.xmm[0] = lanes([1, 2, 3, 4]);
    fpu.xmm[1] = lanes([10, 20, 30, 40]);
    let set = (set_xcr0(fd, gs::XFEATURE_X87), g.vcpu.set_fpu(&fpu).map_err(|e| e.errno()));
    let exit = g.vcpu.run().map(|e| format!("{e:?}")).map_err(|e| e.errno());
    let seen = guest_xgetbv(&g.vcpu);
    let ok = set.0.is_ok() && set.1.is_ok() && is_syscall(&exit) && seen == Some(gs::XFEATURE_X87);
    t.check("KVM_SET_XCRS x87 alone: the guest's XGETBV(0) reads 1", ok, (set, exit, seen));
    let xmm0 = g.vcpu.get_fpu().map(|f| f.xmm[0]);
    t.check(
        "... and its SSE result is in its FPU state",
        xmm0.as_ref().is_ok_and(|x| *x == lanes([11, 22, 33, 44])),
        xmm0,
    );
    if let Ok(x) = get_xsave(fd) {
        t.check("... KVM_SET_XSAVE of its image (x87 and SSE) is taken", set_xsave(fd, x).is_ok(), ());
    }
}

/// KVM_RUN of a guest whose XCR0 lacks AVX, 1000 times, with this
/// program's ymm8-15 set: they keep their values, and XCR0 is the host's.
fn caller_ymm_kept(t: &mut Report, vcpu: &mut VcpuFd, avx: bool) {
    if !avx {
        return t.check("the caller's YMM registers across runs (no AVX here)", false, ());
    }
    let mut pat = [0u8; 256];
    for (i, b) in pat.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(53) | 0x80;
    }
    let host = xgetbv0();
    let mut bad = None;
    for i in 0..1000 {
        if let Err(e) = vcpu.get_regs().and_then(|r| vcpu.set_regs(&kvm_regs { rip: BASE, ..r })) {
            bad = Some(format!("regs at {i}: {e}"));
            break;
        }
        // SAFETY: AVX is present (`avx` comes from XCR0, checked by the caller).
        let (ret, out) = unsafe { run_keeping_ymm(vcpu.as_raw_fd(), &pat) };
        let xcr0 = xgetbv0();
        if ret != 0 || out != pat || xcr0 != host {
            bad = Some(format!("run {i}: ioctl {ret}, XCR0 {xcr0:#x}, ymm8-15 after it {out:?}"));
            break;
        }
    }
    t.check("1000 runs of an x87|SSE guest: the caller's ymm8-15 and XCR0 are its own after each", bad.is_none(), bad);
}

/// KVM_RUN through a raw `syscall` with ymm8-ymm15 set to `pat`: the
/// ioctl's result and what those registers held right after it.
///
/// # Safety
///
/// The CPU has AVX and the OS has it enabled.
#[target_feature(enable = "avx")]
unsafe fn run_keeping_ymm(fd: RawFd, pat: &[u8; 256]) -> (i64, [u8; 256]) {
    let mut out = [0u8; 256];
    let ret: i64;
    // SAFETY: the ioctl takes no argument and writes only kkm's kvm_run page;
    // the asm reads `pat` and writes `out`, 256 bytes each, and declares
    // every register it or the syscall changes.
    unsafe {
        std::arch::asm!(
            "vmovdqu ymm8, [{p}]", "vmovdqu ymm9, [{p} + 32]", "vmovdqu ymm10, [{p} + 64]",
            "vmovdqu ymm11, [{p} + 96]", "vmovdqu ymm12, [{p} + 128]", "vmovdqu ymm13, [{p} + 160]",
            "vmovdqu ymm14, [{p} + 192]", "vmovdqu ymm15, [{p} + 224]",
            "syscall",
            "vmovdqu [{o}], ymm8", "vmovdqu [{o} + 32], ymm9", "vmovdqu [{o} + 64], ymm10",
            "vmovdqu [{o} + 96], ymm11", "vmovdqu [{o} + 128], ymm12", "vmovdqu [{o} + 160], ymm13",
            "vmovdqu [{o} + 192], ymm14", "vmovdqu [{o} + 224], ymm15",
            p = in(reg) pat.as_ptr(),
            o = in(reg) out.as_mut_ptr(),
            inlateout("rax") libc::SYS_ioctl => ret,
            in("rdi") fd,
            in("rsi") u64::from(abi::KVM_RUN),
            in("rdx") 0u64,
            out("rcx") _, out("r11") _,
            out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
        );
    }
    (ret, out)
}
