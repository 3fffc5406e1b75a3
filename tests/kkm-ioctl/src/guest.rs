//! Guest mode: hand-assembled guests entered through KVM_RUN on /dev/kkm,
//! checked for the exits and registers km relies on.

use crate::{km_state, map, unmap, Report, PAGE};
use kkm_uapi as abi;
use kvm_bindings::{kvm_regs, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};

/// Where the test guests live; guest virtual == guest physical.
const BASE: u64 = 0x40_0000;
const MEM_PAGES: usize = 8;
const STACK_TOP: u64 = BASE + (MEM_PAGES * PAGE) as u64;

/// A VM with one vCPU in km's CPL3 state and `code` at `BASE`.
struct Guest {
    _vm: VmFd,
    vcpu: VcpuFd,
    mem: *mut u8,
}

impl Drop for Guest {
    fn drop(&mut self) {
        unmap(self.mem, MEM_PAGES * PAGE);
    }
}

impl Guest {
    fn new(kvm: &Kvm, code: &[u8]) -> Result<Self, String> {
        let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let mem = map(MEM_PAGES * PAGE, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
            .map_err(|e| format!("mmap: {e}"))?;
        // SAFETY: `mem` is a fresh mapping of MEM_PAGES pages; the code fits
        // in the first.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), mem, code.len().min(PAGE)) };
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: BASE,
            memory_size: (MEM_PAGES * PAGE) as u64,
            userspace_addr: mem as u64,
        };
        let guest = Self { vcpu: vm.create_vcpu(0).map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?, _vm: vm, mem };
        // SAFETY: the region is the mapping above, which outlives the VM.
        unsafe { guest._vm.set_user_memory_region(region) }.map_err(|e| format!("memory region: {e}"))?;
        let (mut regs, sregs) = km_state();
        (regs.rip, regs.rsp, regs.rflags) = (BASE, STACK_TOP, 0x2);
        guest
            .vcpu
            .set_sregs(&kvm_bindings::kvm_sregs { fs: kvm_bindings::kvm_segment { base: 0, ..sregs.fs }, ..sregs })
            .map_err(|e| format!("KVM_SET_SREGS: {e}"))?;
        guest.vcpu.set_regs(&regs).map_err(|e| format!("KVM_SET_REGS: {e}"))?;
        Ok(guest)
    }
}

/// RFLAGS after `inc` produced `v` from a state with CF clear, IF set.
fn inc_flags(v: u64) -> u64 {
    let mut f = 0x202;
    if (v as u8).count_ones().is_multiple_of(2) {
        f |= 0x4;
    }
    if v & 0xf == 0 {
        f |= 0x10;
    }
    if v == 0 {
        f |= 0x40;
    }
    if v >> 63 != 0 {
        f |= 0x80;
    }
    if v == 1 << 63 {
        f |= 0x800;
    }
    f
}

/// Register values that tell each register apart, varied by `seed`.
fn pattern(seed: u64) -> kvm_regs {
    let p = |i: u64| seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(i as u32 * 5) ^ i;
    kvm_regs {
        rax: p(1),
        rbx: p(2),
        rcx: p(3),
        rdx: p(4),
        rsi: p(5),
        rdi: p(6),
        rsp: STACK_TOP - 8 * (seed % 16),
        rbp: p(8),
        r8: p(9),
        r9: p(10),
        r10: p(11),
        r11: p(12),
        r12: p(13),
        r13: p(14),
        r14: p(15),
        r15: p(16),
        rip: BASE,
        rflags: 0x2,
    }
}

/// 10^5 `syscall` exits: each is KVM_EXIT_IO out of one byte (AL) on km's
/// syscall port, RIP and RCX hold the address after the syscall, R11 the
/// guest's RFLAGS, and every other register is the guest's.
fn syscall_round_trips(t: &mut Report, kvm: &Kvm) {
    // inc %rbx; syscall; jmp back to the inc
    let code = [0x48, 0xff, 0xc3, 0x0f, 0x05, 0xeb, 0xf9];
    let after = BASE + 5;
    let mut g = match Guest::new(kvm, &code) {
        Ok(g) => g,
        Err(e) => return t.check("syscall round trips: set-up", false, e),
    };
    const N: u64 = 100_000;
    let mut want = pattern(0);
    let mut bad: Option<String> = None;
    for i in 0..N {
        if i % 10_000 == 0 {
            want = pattern(i + 1);
            if let Err(e) = g.vcpu.set_regs(&want) {
                bad = Some(format!("KVM_SET_REGS at {i}: {e}"));
                break;
            }
        }
        match g.vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) if port == abi::KM_SYSCALL_PORT && data == [want.rax as u8] => {}
            other => {
                bad = Some(format!("exit {i}: {other:?}"));
                break;
            }
        }
        let got = match g.vcpu.get_regs() {
            Ok(r) => r,
            Err(e) => {
                bad = Some(format!("KVM_GET_REGS at {i}: {e}"));
                break;
            }
        };
        want.rbx = want.rbx.wrapping_add(1);
        want.r11 = inc_flags(want.rbx);
        (want.rip, want.rcx, want.rflags) = (after, after, want.r11);
        if got != want {
            bad = Some(format!("registers after exit {i}: got {got:?}, want {want:?}"));
            break;
        }
        // As km does before the next entry: return to RCX with R11's flags.
        want.rflags = want.r11;
    }
    t.check("10^5 syscall exits: KVM_EXIT_IO on km's port, exact registers", bad.is_none(), bad);
}

pub(crate) fn run_all(t: &mut Report, kvm: &Kvm) {
    syscall_round_trips(t, kvm);
}
