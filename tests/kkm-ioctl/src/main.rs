//! ioctl-level test of `/dev/kkm`, run as root inside the QEMU test guest by
//! `scripts/test-kkm` right after `insmod kkm.ko max_vcpus=V max_memslots=M`:
//!
//!     kkm-ioctl V M mmu-notifier|no-mmu-notifier
//!
//! The third argument says whether the kernel has CONFIG_MMU_NOTIFIER,
//! without which kkm maps no guest memory.
//!
//! `kkm-ioctl spin SECONDS` instead keeps one vCPU per CPU spinning in the
//! guest for that long (or until /tmp/kkm-spin-stop exists), for the test
//! script to inject NMIs meanwhile.
//!
//! Wherever it can, it drives the device through `kvm-ioctls` (opened with
//! `Kvm::new_with_path`), which shows that a KVM client works on kkm
//! unchanged; error cases that crate cannot express go through raw ioctls
//! with the numbers from `kkm-uapi`. Prints one line per check, then
//! `N passed, M failed` and `KKM-IOCTL: PASS` or `KKM-IOCTL: FAIL`.

mod guest;
mod guest_memory;
mod xcrs;

use kkm_uapi as abi;
use kkm_uapi::guest_state as gs;
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs, kvm_userspace_memory_region, KVM_MEM_READONLY};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use std::fmt::Debug;
use std::os::fd::{AsRawFd, RawFd};

const DEV: &std::ffi::CStr = c"/dev/kkm";
const PAGE: usize = 4096;
const MIB: u64 = 1 << 20;

/// Outcome of one system call: its value or the errno.
type Sys = Result<i64, i32>;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn sys(ret: i64) -> Sys {
    if ret < 0 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

/// `ioctl(fd, req, arg)` with an integer argument.
fn ioctl_val(fd: RawFd, req: u32, arg: u64) -> Sys {
    // SAFETY: an integer argument is never dereferenced as a pointer by the
    // kernel's KVM-style handlers tested here, except by ioctls that copy to
    // or from user memory, which fail with EFAULT on a bad address.
    sys(unsafe { libc::ioctl(fd, req as libc::Ioctl, arg) } as i64)
}

/// `ioctl(fd, req, &mut value)`: the kernel reads and/or writes `value`,
/// whose type is the one encoded in `req`.
fn ioctl_ref<T>(fd: RawFd, req: u32, value: &mut T) -> Sys {
    ioctl_val(fd, req, value as *mut T as u64)
}

fn kvm_err<T>(r: Result<T, kvm_ioctls::Error>) -> Result<T, i32> {
    r.map_err(|e| e.errno())
}

/// `mmap(NULL, len, prot, flags, fd, off)`; returns the address.
fn map(len: usize, prot: i32, flags: i32, fd: RawFd, off: i64) -> Result<*mut u8, i32> {
    // SAFETY: a new mapping at an address of the kernel's choosing cannot
    // overlap any memory this program uses.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, off) };
    if p == libc::MAP_FAILED {
        Err(errno())
    } else {
        Ok(p.cast())
    }
}

fn unmap(p: *mut u8, len: usize) {
    // SAFETY: `p` came from `map(len, ..)` and no reference into it outlives
    // this call.
    unsafe { libc::munmap(p.cast(), len) };
}

fn refcnt() -> i64 {
    std::fs::read_to_string("/sys/module/kkm/refcnt").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(-1)
}

/// Runs `child` in a forked process and returns its exit status; the child
/// uses only system calls, so forking this single-threaded program is sound.
fn in_child(child: impl FnOnce() -> bool) -> Option<i32> {
    // SAFETY: the program is single-threaded here, so the child may run
    // arbitrary code; it leaves with `_exit`, never returning into main.
    match unsafe { libc::fork() } {
        -1 => None,
        0 => {
            let ok = child();
            // SAFETY: `_exit` skips destructors that belong to the parent.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        pid => {
            let mut status = 0;
            // SAFETY: `pid` is our child; `status` is a valid out pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            (r == pid && libc::WIFEXITED(status)).then(|| libc::WEXITSTATUS(status))
        }
    }
}

#[derive(Default)]
struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, got: impl Debug) {
        if ok {
            self.passed += 1;
            println!("ok   {name}");
        } else {
            self.failed += 1;
            println!("FAIL {name}: got {got:?}");
        }
    }

    fn errno<T: Debug>(&mut self, name: &str, got: Result<T, i32>, want: i32) {
        let ok = matches!(got, Err(e) if e == want);
        self.check(&format!("{name} -> {}", errno_name(want)), ok, got);
    }

    fn ok<T: Debug>(&mut self, name: &str, got: Result<T, i32>) -> Option<T> {
        let ok = got.is_ok();
        self.check(name, ok, &got);
        got.ok()
    }
}

fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EINVAL => "EINVAL",
        libc::EEXIST => "EEXIST",
        libc::EFAULT => "EFAULT",
        libc::ENOTTY => "ENOTTY",
        libc::EBADF => "EBADF",
        libc::E2BIG => "E2BIG",
        libc::EIO => "EIO",
        libc::ENODEV => "ENODEV",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EWOULDBLOCK => "EWOULDBLOCK",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        _ => "errno",
    }
}

fn region(slot: u32, gpa: u64, size: u64, uaddr: u64, flags: u32) -> kvm_userspace_memory_region {
    kvm_userspace_memory_region { slot, flags, guest_phys_addr: gpa, memory_size: size, userspace_addr: uaddr }
}

fn set_region(vm: &VmFd, r: kvm_userspace_memory_region) -> Result<(), i32> {
    // SAFETY: kvm-ioctls requires the host range to stay mapped while the
    // guest may use it; this test never runs the guest, and the valid
    // regions point into `mem`, which outlives the VM.
    kvm_err(unsafe { vm.set_user_memory_region(r) })
}

fn system_ioctls(t: &mut Report, kvm: &Kvm, max_vcpus: u64, max_memslots: u64) {
    let fd = kvm.as_raw_fd();
    t.check("KVM_GET_API_VERSION = 12", kvm.get_api_version() == 12, kvm.get_api_version());
    t.errno("KVM_GET_API_VERSION with an argument", ioctl_val(fd, abi::KVM_GET_API_VERSION, 1), libc::EINVAL);

    let mut id = abi::KkmIdentity::default();
    let r = ioctl_ref(fd, abi::KKM_GET_IDENTITY, &mut id);
    let want = abi::KkmIdentity {
        magic: abi::KKM_IDENTITY_MAGIC,
        abi_version: abi::KKM_ABI_VERSION,
        max_vcpus: max_vcpus as u32,
        flags: 0,
    };
    t.check("KKM_GET_IDENTITY", r == Ok(0) && id == want, (r, id));
    t.errno("KKM_GET_IDENTITY to a bad address", ioctl_val(fd, abi::KKM_GET_IDENTITY, 8), libc::EFAULT);

    for (cap, want, name) in [
        (abi::KVM_CAP_USER_MEMORY, 1, "USER_MEMORY"),
        (abi::KVM_CAP_EXT_CPUID, 1, "EXT_CPUID"),
        (abi::KVM_CAP_NR_VCPUS, max_vcpus as i32, "NR_VCPUS"),
        (abi::KVM_CAP_MAX_VCPUS, max_vcpus as i32, "MAX_VCPUS"),
        (abi::KVM_CAP_NR_MEMSLOTS, max_memslots as i32, "NR_MEMSLOTS"),
        (abi::KVM_CAP_XSAVE, 1, "XSAVE"),
        (abi::KVM_CAP_XCRS, 1, "XCRS"),
        (abi::KVM_CAP_SYNC_REGS, abi::KVM_SYNC_X86_REGS as i32, "SYNC_REGS (general registers)"),
        (abi::KVM_CAP_IMMEDIATE_EXIT, 1, "IMMEDIATE_EXIT"),
        (0xdead, 0, "unknown"),
    ] {
        let got = kvm.check_extension_raw(cap.into());
        t.check(&format!("KVM_CHECK_EXTENSION {name} = {want}"), got == want, got);
    }

    t.check("KVM_GET_VCPU_MMAP_SIZE = 4096", kvm.get_vcpu_mmap_size() == Ok(PAGE), kvm.get_vcpu_mmap_size());
    t.errno("KVM_GET_VCPU_MMAP_SIZE with an argument", ioctl_val(fd, abi::KVM_GET_VCPU_MMAP_SIZE, 1), libc::EINVAL);

    match kvm.get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES) {
        Ok(cpuid) => {
            let entries = cpuid.as_slice();
            let host = std::arch::x86_64::__cpuid_count(0, 0);
            let leaf0 = entries.iter().find(|e| e.function == 0);
            let vendor_ok =
                leaf0.is_some_and(|e| (e.eax, e.ebx, e.ecx, e.edx) == (host.eax, host.ebx, host.ecx, host.edx));
            t.check("KVM_GET_SUPPORTED_CPUID leaf 0 = host's", vendor_ok, leaf0);
            let leaf7 = entries.iter().find(|e| e.function == 7 && e.index == 0);
            let indexed = leaf7.is_some_and(|e| e.flags == abi::KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
            t.check("KVM_GET_SUPPORTED_CPUID leaf 7 is indexed", indexed, leaf7);
        }
        Err(e) => t.check("KVM_GET_SUPPORTED_CPUID", false, e),
    }
    t.errno("KVM_GET_SUPPORTED_CPUID with room for 1", kvm_err(kvm.get_supported_cpuid(1)), libc::E2BIG);
    t.errno("KVM_GET_SUPPORTED_CPUID to a bad address", ioctl_val(fd, abi::KVM_GET_SUPPORTED_CPUID, 8), libc::EFAULT);

    t.errno("unknown ioctl on /dev/kkm", ioctl_val(fd, 0xae_ee, 0), libc::ENOTTY);
    t.errno("KVM_CREATE_VCPU on /dev/kkm (wrong fd)", ioctl_val(fd, abi::KVM_CREATE_VCPU, 0), libc::ENOTTY);
    t.errno("KVM_CREATE_VM of type 1", kvm_err(kvm.create_vm_with_type(1)).map(|_| ()), libc::EINVAL);
}

fn memory_slots(t: &mut Report, vm: &VmFd, mem: u64, max_memslots: u32) {
    let ok = |t: &mut Report, name: &str, r| t.check(name, r == Ok(()), r);
    ok(t, "slot 0: 2 MiB at 2 MiB", set_region(vm, region(0, 2 * MIB, 2 * MIB, mem, 0)));
    let r = set_region(vm, region(1, 3 * MIB, MIB, mem + 2 * MIB, 0));
    t.errno("slot 1 overlapping slot 0", r, libc::EEXIST);
    ok(t, "slot 1: adjacent to slot 0", set_region(vm, region(1, 4 * MIB, 2 * MIB, mem + 2 * MIB, 0)));
    t.errno("slot id = max_memslots", set_region(vm, region(max_memslots, 8 * MIB, MIB, mem, 0)), libc::EINVAL);
    let top = max_memslots - 1;
    let r = set_region(vm, region(top, 64 * MIB, MIB, mem, 0)).and(set_region(vm, region(top, 0, 0, 0, 0)));
    ok(t, "slot id = max_memslots - 1 (added, deleted)", r);
    t.errno("slot in address space 1", set_region(vm, region(1 << 16, 8 * MIB, MIB, mem, 0)), libc::EINVAL);
    t.errno("misaligned guest address", set_region(vm, region(2, 8 * MIB + 0x800, MIB, mem, 0)), libc::EINVAL);
    t.errno("misaligned size", set_region(vm, region(2, 8 * MIB, 0x1800, mem, 0)), libc::EINVAL);
    t.errno("misaligned host address", set_region(vm, region(2, 8 * MIB, MIB, mem + 0x10, 0)), libc::EINVAL);
    t.errno("too big (16 TiB)", set_region(vm, region(2, 0, 1 << 44, mem, 0)), libc::EINVAL);
    let top = (1u64 << 47) - 0x1000;
    t.errno("guest range past user space", set_region(vm, region(2, top, 2 * MIB, mem, 0)), libc::EINVAL);
    let kernel_addr = 0xffff_8880_0000_0000;
    t.errno("host range in kernel space", set_region(vm, region(2, 8 * MIB, MIB, kernel_addr, 0)), libc::EINVAL);
    let r = set_region(vm, region(2, 8 * MIB, MIB, mem, KVM_MEM_READONLY));
    t.errno("read-only flag (unsupported)", r, libc::EINVAL);
    t.errno("resize of slot 0", set_region(vm, region(0, 2 * MIB, MIB, mem, 0)), libc::EINVAL);
    ok(t, "move slot 0 to 8 MiB", set_region(vm, region(0, 8 * MIB, 2 * MIB, mem, 0)));
    let r = set_region(vm, region(2, 2 * MIB, 2 * MIB, mem + 4 * MIB, 0));
    ok(t, "slot 2 where slot 0 was", r);
    ok(t, "delete slot 2", set_region(vm, region(2, 0, 0, 0, 0)));
    t.errno("delete slot 2 again", set_region(vm, region(2, 0, 0, 0, 0)), libc::EINVAL);
    t.errno("delete unused slot 3", set_region(vm, region(3, 0, 0, 0, 0)), libc::EINVAL);
    let r = ioctl_val(vm.as_raw_fd(), abi::KVM_SET_USER_MEMORY_REGION, 8);
    t.errno("KVM_SET_USER_MEMORY_REGION from a bad address", r, libc::EFAULT);
}

fn vcpu_mmap(t: &mut Report, vm: &VmFd, vcpu: &mut VcpuFd) {
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let fd = vcpu.as_raw_fd();
    let run = vcpu.get_kvm_run();
    t.check("kvm_run starts zeroed", run.exit_reason == 0 && run.immediate_exit == 0, run.exit_reason);
    match map(PAGE, rw, libc::MAP_SHARED, fd, 0) {
        Ok(p) => {
            // Both mappings must show the one kvm_run page of the vCPU.
            vcpu.get_kvm_run().request_interrupt_window = 0x5a;
            // SAFETY: `p` maps one readable page; byte 0 is
            // request_interrupt_window, a plain u8 in kvm_run.
            let seen = unsafe { p.read_volatile() };
            vcpu.get_kvm_run().request_interrupt_window = 0;
            t.check("second mmap of kvm_run shares the page", seen == 0x5a, seen);
            unmap(p, PAGE);
        }
        Err(e) => t.check("second mmap of kvm_run", false, e),
    }
    t.errno("mmap of vCPU at offset 4096", map(PAGE, rw, libc::MAP_SHARED, fd, PAGE as i64), libc::EINVAL);
    t.errno("mmap of vCPU, 2 pages", map(2 * PAGE, rw, libc::MAP_SHARED, fd, 0), libc::EINVAL);
    let exec = libc::PROT_READ | libc::PROT_EXEC;
    // The anon-inode mount is noexec: mmap refuses PROT_EXEC and clears
    // VM_MAYEXEC, so the mapping can never become executable.
    t.errno("mmap of vCPU, executable", map(PAGE, exec, libc::MAP_SHARED, fd, 0), libc::EPERM);
    let run = std::ptr::from_mut(vcpu.get_kvm_run()).cast::<libc::c_void>();
    // SAFETY: asks to change the protection of kvm-ioctls' own kvm_run
    // mapping, which stays mapped either way.
    let r = sys(unsafe { libc::mprotect(run, PAGE, exec) }.into());
    t.errno("mprotect of kvm_run to executable", r, libc::EACCES);
    t.errno("mmap of VM fd", map(PAGE, rw, libc::MAP_SHARED, vm.as_raw_fd(), 0), libc::ENODEV);
}

fn vcpu_regs(t: &mut Report, vcpu: &mut VcpuFd) {
    let fd = vcpu.as_raw_fd();
    let regs = kvm_err(vcpu.get_regs());
    t.check("initial RFLAGS = 0x2", regs.is_ok_and(|r| r.rflags == 2), regs);

    let mut want =
        kvm_bindings::kvm_regs { rax: 1, rbx: 2, rcx: 3, rdx: 4, rsi: 5, rdi: 6, rsp: 7, rbp: 8, ..Default::default() };
    (want.r8, want.r15, want.rip, want.rflags) = (9, 16, 0x40_1000, 0x202);
    let set = kvm_err(vcpu.set_regs(&want));
    let got = kvm_err(vcpu.get_regs());
    t.check("KVM_SET_REGS/KVM_GET_REGS round trip", set.is_ok() && got == Ok(want), (set, got));

    if let Some(mut sregs) = t.ok("KVM_GET_SREGS", kvm_err(vcpu.get_sregs())) {
        (sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer) = (0x8000_0011, 0x1000, 0x20, 0x500);
        (sregs.cs.selector, sregs.cs.l, sregs.gdt.base, sregs.gdt.limit) = (0x8, 1, 0x2000, 0x17);
        let set = kvm_err(vcpu.set_sregs(&sregs));
        let got = kvm_err(vcpu.get_sregs());
        t.check("KVM_SET_SREGS/KVM_GET_SREGS round trip", set.is_ok() && got == Ok(sregs), (set, got));
    }
    t.errno("KVM_SET_REGS from a bad address", ioctl_val(fd, abi::KVM_SET_REGS, 8), libc::EFAULT);
    t.errno("KVM_GET_SREGS to a bad address", ioctl_val(fd, abi::KVM_GET_SREGS, 8), libc::EFAULT);
    t.errno("KVM_RUN with an argument", ioctl_val(fd, abi::KVM_RUN, 1), libc::EINVAL);
}

fn user_segment(selector: u16, code: bool) -> kvm_segment {
    kvm_segment {
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

/// The long-mode CPL3 state km's guest model gives a vCPU.
fn km_state() -> (kvm_regs, kvm_sregs) {
    let data = user_segment(0x2b, false);
    let sregs = kvm_sregs {
        cs: user_segment(0x33, true),
        ss: data,
        ds: data,
        es: data,
        fs: kvm_segment { base: 0x7fff_f7ff_8000, ..data },
        gs: data,
        cr0: gs::CR0_PE | gs::CR0_MP | gs::CR0_ET | gs::CR0_NE | gs::CR0_WP | gs::CR0_PG,
        cr3: 0x7f_c000_0000,
        cr4: gs::CR4_PAE | gs::CR4_OSFXSR | gs::CR4_OSXMMEXCPT,
        efer: gs::EFER_SCE | gs::EFER_LME | gs::EFER_LMA | gs::EFER_NXE,
        ..Default::default()
    };
    (kvm_regs { rip: 0x40_1000, rsp: 0x7f_bfff_f000, rflags: 0x202, ..Default::default() }, sregs)
}

/// The register checks of kkm-uapi's guest_state: KVM_SET_SREGS refuses
/// control registers kkm's vCPU model cannot hold, KVM_RUN a state that
/// could not be entered safely (and enters the others).
fn guest_state(t: &mut Report, vcpu: &mut VcpuFd) {
    let run = |vcpu: &mut VcpuFd| kvm_err(vcpu.run()).map(|_| ());
    let reset = kvm_sregs::default();
    let set = kvm_err(vcpu.set_sregs(&reset));
    let r = run(vcpu);
    t.check("KVM_SET_SREGS of the reset state; KVM_RUN of it -> EINVAL", set.is_ok() && r == Err(libc::EINVAL), r);

    let (regs, sregs) = km_state();
    let set = (kvm_err(vcpu.set_regs(&regs)), kvm_err(vcpu.set_sregs(&sregs)));
    let r = run(vcpu);
    t.check("KVM_RUN of km's state: entered, an exit", r.is_ok(), (set, r));

    let with_regs = kvm_err(vcpu.set_regs(&kvm_regs { rflags: 0, ..regs })).and(kvm_err(vcpu.get_regs()));
    t.check("KVM_SET_REGS sets RFLAGS bit 1 (as KVM)", with_regs.is_ok_and(|r| r.rflags == 2), with_regs);

    let cr = |f: fn(&mut kvm_sregs)| {
        let mut s = sregs;
        f(&mut s);
        s
    };
    for (name, bad) in [
        ("CR0.CD", cr(|s| s.cr0 |= 1 << 30)),
        ("CR0.TS", cr(|s| s.cr0 |= 1 << 3)),
        ("CR0 bit 32", cr(|s| s.cr0 |= 1 << 32)),
        ("CR0.PG without PE", cr(|s| (s.cr0, s.efer) = (gs::CR0_PG, 0))),
        ("CR4.VMXE", cr(|s| s.cr4 |= 1 << 13)),
        ("CR4.LA57", cr(|s| s.cr4 |= 1 << 12)),
        ("EFER.SVME", cr(|s| s.efer |= 1 << 12)),
        ("EFER.LMA without LME", cr(|s| s.efer &= !gs::EFER_LME)),
        ("long mode without CR4.PAE", cr(|s| s.cr4 &= !gs::CR4_PAE)),
        ("CR8 (no APIC)", cr(|s| s.cr8 = 1)),
        ("APIC base", cr(|s| s.apic_base = 0xfee0_0900)),
        ("pending interrupt", cr(|s| s.interrupt_bitmap[1] = 1)),
    ] {
        let r = kvm_err(vcpu.set_sregs(&bad));
        let kept = kvm_err(vcpu.get_sregs()).is_ok_and(|s| s.cr0 == sregs.cr0 && s.cr8 == 0 && s.efer == sregs.efer);
        t.check(&format!("KVM_SET_SREGS with {name} -> EINVAL, state kept"), r == Err(libc::EINVAL) && kept, r);
    }

    // Accepted by KVM_SET_SREGS (as KVM does), refused at entry.
    let non_canonical = 0x0000_8000_0000_0000;
    for (name, bad) in [
        ("CS of CPL0", cr(|s| (s.cs.selector, s.cs.dpl) = (0x08, 0))),
        ("CS of 32-bit code", cr(|s| (s.cs.l, s.cs.db) = (0, 1))),
        ("a data segment in CS", cr(|s| s.cs.type_ = 0x3)),
        ("a null SS", cr(|s| s.ss.selector = 3)),
        ("SS of CPL0", cr(|s| (s.ss.selector, s.ss.dpl) = (0x10, 0))),
        ("non-canonical FS base", cr(|s| s.fs.base = 0x0000_8000_0000_0000)),
        ("non-canonical GS base", cr(|s| s.gs.base = 0xfff0_0000_0000_0000)),
        ("real mode", cr(|s| (s.cr0, s.cr4, s.efer) = (0, 0, 0))),
    ] {
        let set = kvm_err(vcpu.set_sregs(&bad));
        let r = run(vcpu);
        t.check(&format!("KVM_RUN with {name} -> EINVAL"), set.is_ok() && r == Err(libc::EINVAL), (set, r));
    }
    let _ = vcpu.set_sregs(&sregs);
    for (name, bad) in [
        ("RFLAGS.IOPL=3", kvm_regs { rflags: regs.rflags | gs::RFLAGS_IOPL, ..regs }),
        ("RFLAGS.IOPL=1", kvm_regs { rflags: regs.rflags | 1 << 12, ..regs }),
        ("RFLAGS.NT", kvm_regs { rflags: regs.rflags | gs::RFLAGS_NT, ..regs }),
        ("RFLAGS.VM", kvm_regs { rflags: regs.rflags | gs::RFLAGS_VM, ..regs }),
        ("RFLAGS.VIF", kvm_regs { rflags: regs.rflags | gs::RFLAGS_VIF, ..regs }),
        ("RFLAGS.VIP", kvm_regs { rflags: regs.rflags | gs::RFLAGS_VIP, ..regs }),
        ("RFLAGS bit 15", kvm_regs { rflags: regs.rflags | 1 << 15, ..regs }),
        ("non-canonical RIP", kvm_regs { rip: non_canonical, ..regs }),
    ] {
        let set = kvm_err(vcpu.set_regs(&bad));
        let r = run(vcpu);
        t.check(&format!("KVM_RUN with {name} -> EINVAL"), set.is_ok() && r == Err(libc::EINVAL), (set, r));
    }
    for (name, fine) in [
        (
            "TF, AC, RF and ID",
            kvm_regs { rflags: regs.rflags | gs::RFLAGS_TF | gs::RFLAGS_AC | gs::RFLAGS_RF | gs::RFLAGS_ID, ..regs },
        ),
        ("IF clear", kvm_regs { rflags: 0x2, ..regs }),
        ("a non-canonical RSP", kvm_regs { rsp: non_canonical, ..regs }),
        ("a kernel-half RIP", kvm_regs { rip: 0xffff_8000_0000_0000, ..regs }),
    ] {
        let set = kvm_err(vcpu.set_regs(&fine));
        let r = run(vcpu);
        t.check(&format!("KVM_RUN with {name}: entered, an exit"), set.is_ok() && r.is_ok(), (set, r));
    }
}

fn wrong_fds(t: &mut Report, vm: &VmFd, vcpu: &VcpuFd) {
    let (vmfd, vcpufd) = (vm.as_raw_fd(), vcpu.as_raw_fd());
    t.errno("unknown ioctl on VM fd", ioctl_val(vmfd, 0xae_ee, 0), libc::ENOTTY);
    t.errno("unknown ioctl on vCPU fd", ioctl_val(vcpufd, 0xae_ee, 0), libc::ENOTTY);
    let mut regs = abi::KvmRegs::default();
    t.errno("KVM_GET_REGS on VM fd", ioctl_ref(vmfd, abi::KVM_GET_REGS, &mut regs), libc::ENOTTY);
    let mut r = abi::KvmUserspaceMemoryRegion::default();
    t.errno(
        "KVM_SET_USER_MEMORY_REGION on vCPU fd",
        ioctl_ref(vcpufd, abi::KVM_SET_USER_MEMORY_REGION, &mut r),
        libc::ENOTTY,
    );
    t.errno("KVM_GET_REGS on fd -1", ioctl_ref(-1, abi::KVM_GET_REGS, &mut regs), libc::EBADF);
}

/// A forked child shares the fds but not the address space: KVM answers
/// EIO there, and the kvm_run mapping is not inherited.
fn forked_child(t: &mut Report, vm: &VmFd, vcpu: &mut VcpuFd) {
    let (vmfd, vcpufd) = (vm.as_raw_fd(), vcpu.as_raw_fd());
    let run = std::ptr::from_mut(vcpu.get_kvm_run()).cast::<libc::c_void>();
    let status = in_child(|| {
        let mut regs = abi::KvmRegs::default();
        let regs_eio = ioctl_ref(vcpufd, abi::KVM_GET_REGS, &mut regs) == Err(libc::EIO);
        let vcpu_eio = ioctl_val(vmfd, abi::KVM_CREATE_VCPU, 5) == Err(libc::EIO);
        // SAFETY: msync only inspects the mapping state of the range.
        let unmapped = unsafe { libc::msync(run, PAGE, libc::MS_ASYNC) } == -1 && errno() == libc::ENOMEM;
        regs_eio && vcpu_eio && unmapped
    });
    t.check("forked child: EIO on VM and vCPU fds, no kvm_run mapping", status == Some(0), status);
    let status = in_child(|| {
        let r = map(PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, vcpufd, 0);
        r == Err(libc::EIO)
    });
    t.check("forked child: mmap of the inherited vCPU fd -> EIO", status == Some(0), status);
}

/// Another thread of the creator shares its address space, so the fds and
/// the kvm_run mapping work there: KVM's rule is per address space.
fn other_thread(t: &mut Report, vm: &VmFd, vcpu: &VcpuFd) {
    let (vmfd, vcpufd) = (vm.as_raw_fd(), vcpu.as_raw_fd());
    let got = std::thread::spawn(move || {
        let mut regs = abi::KvmRegs::default();
        let regs = ioctl_ref(vcpufd, abi::KVM_GET_REGS, &mut regs);
        let created = ioctl_val(vmfd, abi::KVM_CREATE_VCPU, 6);
        if let Ok(fd) = created {
            // SAFETY: the fd was just created here and is closed once.
            unsafe { libc::close(fd as RawFd) };
        }
        let mapped = map(PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, vcpufd, 0).map(|p| unmap(p, PAGE));
        (regs, created.map(|_| ()), mapped)
    })
    .join();
    let ok = matches!(got, Ok((Ok(_), Ok(()), Ok(()))));
    t.check("another thread: KVM_GET_REGS, KVM_CREATE_VCPU and mmap of kvm_run work", ok, got);
}

fn vm_and_vcpus(t: &mut Report, kvm: &Kvm, max_vcpus: u64, max_memslots: u32) {
    let Some(vm) = t.ok("KVM_CREATE_VM", kvm_err(kvm.create_vm())) else {
        return;
    };
    let got = vm.check_extension_raw(abi::KVM_CAP_NR_MEMSLOTS.into());
    t.check("KVM_CHECK_EXTENSION on VM fd", got == max_memslots as i32, got);

    let mem_len = 6 * MIB as usize;
    let Some(mem) = t.ok(
        "guest memory",
        map(mem_len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0),
    ) else {
        return;
    };
    memory_slots(t, &vm, mem as u64, max_memslots);

    if let Some(mut vcpu) = t.ok("KVM_CREATE_VCPU 0 (with kvm_run mmap)", kvm_err(vm.create_vcpu(0))) {
        t.errno("KVM_CREATE_VCPU 0 again", kvm_err(vm.create_vcpu(0)).map(|_| ()), libc::EEXIST);
        let r = kvm_err(vm.create_vcpu(max_vcpus)).map(|_| ());
        t.errno("KVM_CREATE_VCPU id = max_vcpus", r, libc::EINVAL);
        let r = kvm_err(vm.create_vcpu(max_vcpus - 1)).map(|_| ());
        t.check("KVM_CREATE_VCPU id = max_vcpus - 1", r.is_ok(), r);
        vcpu_mmap(t, &vm, &mut vcpu);
        vcpu_regs(t, &mut vcpu);
        guest_state(t, &mut vcpu);
        wrong_fds(t, &vm, &vcpu);
        forked_child(t, &vm, &mut vcpu);
        other_thread(t, &vm, &vcpu);
    }
    drop(vm);
    unmap(mem, mem_len);
}

fn module_lifetime(t: &mut Report, kvm: Kvm) {
    let busy = refcnt();
    t.check("module refcount > 0 while /dev/kkm is open", busy > 0, busy);
    // SAFETY: delete_module takes a NUL-terminated name and flags.
    let r = sys(unsafe { libc::syscall(libc::SYS_delete_module, c"kkm".as_ptr(), libc::O_NONBLOCK) });
    t.errno("rmmod while an fd is open", r, libc::EWOULDBLOCK);

    // A kvm_run mapping keeps its vCPU file, hence the module, alive.
    let (rw, shared) = (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED);
    let vm = kvm.create_vm().expect("KVM_CREATE_VM");
    let vcpufd = ioctl_val(vm.as_raw_fd(), abi::KVM_CREATE_VCPU, 0).expect("KVM_CREATE_VCPU") as RawFd;
    let run = map(PAGE, rw, shared, vcpufd, 0);
    // SAFETY: `vcpufd` is ours and closed once.
    unsafe { libc::close(vcpufd) };
    drop(vm);
    drop(kvm);
    let held = refcnt();
    t.check("an mmap of kvm_run holds the module after close", run.is_ok() && held > 0, (run, held));
    if let Ok(p) = run {
        unmap(p, PAGE);
    }
    let idle = refcnt();
    t.check("module refcount 0 after every fd and mapping is gone", idle == 0, idle);

    // Process exit must free whatever the process left open.
    let status = in_child(|| {
        let Ok(kvm) = Kvm::new_with_path(DEV) else {
            return false;
        };
        let Ok(vm) = kvm.create_vm() else {
            return false;
        };
        let Ok(vcpu) = vm.create_vcpu(0) else {
            return false;
        };
        std::mem::forget((kvm, vm, vcpu));
        true
    });
    let after = refcnt();
    t.check("exit with fds and kvm_run mapped open releases them", status == Some(0) && after == 0, (status, after));
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("spin") {
        // `kkm-ioctl spin SECONDS`: see guest::spin.
        let secs = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(1);
        std::process::exit(i32::from(!guest::spin(secs)));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match &args[..] {
        [v, m, n] => v.parse().ok().zip(m.parse().ok()).zip(match n.as_str() {
            "mmu-notifier" => Some(true),
            "no-mmu-notifier" => Some(false),
            _ => None,
        }),
        _ => None,
    };
    let Some(((max_vcpus, max_memslots), notifier)) = parsed else {
        eprintln!(
            "usage: kkm-ioctl MAX_VCPUS MAX_MEMSLOTS mmu-notifier|no-mmu-notifier \
             (the module parameters it was loaded with; whether the kernel has CONFIG_MMU_NOTIFIER)"
        );
        std::process::exit(2);
    };
    let mut t = Report::default();
    match Kvm::new_with_path(DEV) {
        Ok(kvm) => {
            t.check("open /dev/kkm with kvm-ioctls", true, ());
            system_ioctls(&mut t, &kvm, max_vcpus, max_memslots);
            vm_and_vcpus(&mut t, &kvm, max_vcpus, max_memslots as u32);
            guest::run_all(&mut t, &kvm);
            xcrs::run(&mut t, &kvm);
            guest_memory::run(&mut t, &kvm, notifier);
            module_lifetime(&mut t, kvm);
        }
        Err(e) => t.check("open /dev/kkm with kvm-ioctls", false, e),
    }
    println!("{} passed, {} failed", t.passed, t.failed);
    println!("KKM-IOCTL: {}", if t.failed == 0 { "PASS" } else { "FAIL" });
    std::process::exit(i32::from(t.failed != 0));
}
