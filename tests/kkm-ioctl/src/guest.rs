//! Guest mode: hand-assembled guests entered through KVM_RUN on /dev/kkm,
//! checked for the exits and registers km relies on.

use crate::{km_state, map, unmap, Report, PAGE};
use kkm_uapi as abi;
use kvm_bindings::{kvm_regs, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, SyncReg, VcpuExit, VcpuFd, VmFd};
use std::os::fd::AsRawFd;

/// Where the test guests live; guest virtual == guest physical.
pub(crate) const BASE: u64 = 0x40_0000;
const MEM_PAGES: usize = 8;
const STACK_TOP: u64 = BASE + (MEM_PAGES * PAGE) as u64;

/// A VM with one vCPU in km's CPL3 state and `code` at `BASE`.
pub(crate) struct Guest {
    pub(crate) _vm: VmFd,
    pub(crate) vcpu: VcpuFd,
    mem: *mut u8,
}

impl Drop for Guest {
    fn drop(&mut self) {
        unmap(self.mem, MEM_PAGES * PAGE);
    }
}

impl Guest {
    pub(crate) fn new(kvm: &Kvm, code: &[u8]) -> Result<Self, String> {
        let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
        // Executable: kkm gives the guest only what the host mapping allows
        // (the code runs from the first page), as km maps payload code.
        let rwx = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
        let mem = map(MEM_PAGES * PAGE, rwx, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
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
    let start = std::time::Instant::now();
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
    // Information only (TCG emulates the CPU: no statement about hardware).
    println!("info: 10^5 syscall exits (KVM_RUN + KVM_GET_REGS each) took {:?}", start.elapsed());
    t.check("10^5 syscall exits: KVM_EXIT_IO on km's port, exact registers", bad.is_none(), bad);
}

/// KVM_RUN with `errno` on failure, the exit's name on success.
fn run_named(vcpu: &mut VcpuFd) -> Result<String, i32> {
    vcpu.run().map(|e| format!("{e:?}")).map_err(|e| e.errno())
}

/// KVM_CAP_SYNC_REGS (general registers): 10^4 syscall exits with the
/// registers read from and written to `s.regs` as km does, what the dirty
/// and valid bits mean, and bits kkm does not sync refused.
fn sync_regs(t: &mut Report, kvm: &Kvm) {
    // inc %rbx; syscall; jmp back to the inc
    let code = [0x48, 0xff, 0xc3, 0x0f, 0x05, 0xeb, 0xf9];
    let after = BASE + 5;
    let mut g = match Guest::new(kvm, &code) {
        Ok(g) => g,
        Err(e) => return t.check("SYNC_REGS: set-up", false, e),
    };
    g.vcpu.set_sync_valid_reg(SyncReg::Register);
    const N: u64 = 10_000;
    let mut want = pattern(0);
    let mut bad: Option<String> = None;
    let start = std::time::Instant::now();
    for i in 0..N {
        if i % 1000 == 0 {
            // New values for every register, through s.regs only.
            want = pattern(i + 7);
        }
        g.vcpu.sync_regs_mut().regs = want;
        g.vcpu.set_sync_dirty_reg(SyncReg::Register);
        match g.vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) if port == abi::KM_SYSCALL_PORT && data == [want.rax as u8] => {}
            other => {
                bad = Some(format!("exit {i}: {other:?}"));
                break;
            }
        }
        let dirty = g.vcpu.get_kvm_run().kvm_dirty_regs;
        let got = g.vcpu.sync_regs().regs;
        want.rbx = want.rbx.wrapping_add(1);
        want.r11 = inc_flags(want.rbx);
        (want.rip, want.rcx, want.rflags) = (after, after, want.r11);
        if dirty != 0 || got != want {
            bad = Some(format!("after exit {i}: dirty {dirty:#x}, s.regs {got:?}, want {want:?}"));
            break;
        }
        // The ioctl agrees with s.regs, here and there.
        if i % 1000 == 999 && g.vcpu.get_regs().ok() != Some(got) {
            bad = Some(format!("after exit {i}: KVM_GET_REGS {:?} != s.regs {got:?}", g.vcpu.get_regs()));
            break;
        }
        // As km does before the next entry: return to RCX with R11's flags.
        want.rflags = want.r11;
    }
    // Information only (TCG emulates the CPU: no statement about hardware).
    println!("info: 10^4 syscall exits (KVM_RUN only, registers through SYNC_REGS) took {:?}", start.elapsed());
    t.check("SYNC_REGS: 10^4 syscall exits, s.regs in and out, dirty bit cleared each time", bad.is_none(), bad);

    // Without the dirty bit, s.regs is not read: the guest goes on from
    // its own registers (and s.regs shows them after the exit).
    let before = g.vcpu.get_regs();
    g.vcpu.sync_regs_mut().regs = pattern(99);
    let r = run_named(&mut g.vcpu);
    let got = g.vcpu.sync_regs().regs;
    let ok = r.as_ref().is_ok_and(|e| e.starts_with("IoOut(240"))
        && before.as_ref().is_ok_and(|b| got.rbx == b.rbx.wrapping_add(1) && got.r12 == b.r12)
        && g.vcpu.get_regs().ok() == Some(got);
    t.check("SYNC_REGS: s.regs without the dirty bit is ignored, then holds the guest's", ok, (r, before, got));

    // Without the valid bit, s.regs is left alone at the exit.
    g.vcpu.clear_sync_valid_reg(SyncReg::Register);
    let mark = pattern(1234);
    g.vcpu.sync_regs_mut().regs = mark;
    let r = run_named(&mut g.vcpu);
    let ok = r.is_ok() && g.vcpu.sync_regs().regs == mark;
    t.check("SYNC_REGS: without the valid bit, s.regs is not written", ok, r);
    g.vcpu.set_sync_valid_reg(SyncReg::Register);

    // Bits outside the general registers: EINVAL before anything is taken.
    let good = g.vcpu.get_regs().unwrap_or_default();
    for (name, valid, dirty) in [
        ("valid SREGS", abi::KVM_SYNC_X86_REGS | abi::KVM_SYNC_X86_SREGS, 0),
        ("valid EVENTS (bit 2)", 1 << 2, 0),
        ("valid bit 63", 1 << 63, 0),
        ("dirty SREGS", abi::KVM_SYNC_X86_REGS, abi::KVM_SYNC_X86_SREGS),
        ("dirty REGS with SREGS", abi::KVM_SYNC_X86_REGS, abi::KVM_SYNC_X86_REGS | abi::KVM_SYNC_X86_SREGS),
        ("dirty bit 8", abi::KVM_SYNC_X86_REGS, abi::KVM_SYNC_X86_REGS | 1 << 8),
    ] {
        g.vcpu.sync_regs_mut().regs = pattern(5678);
        let run = g.vcpu.get_kvm_run();
        (run.kvm_valid_regs, run.kvm_dirty_regs) = (valid, dirty);
        let r = run_named(&mut g.vcpu);
        let run = g.vcpu.get_kvm_run();
        let kept = (run.kvm_valid_regs, run.kvm_dirty_regs) == (valid, dirty);
        let regs = g.vcpu.get_regs();
        // As KVM, s.regs is written on this error return too if REGS is valid.
        let out = if valid & abi::KVM_SYNC_X86_REGS != 0 { good } else { pattern(5678) };
        let stored = g.vcpu.sync_regs().regs == out;
        let ok = r == Err(libc::EINVAL) && kept && stored && regs.as_ref().is_ok_and(|r| *r == good);
        t.check(&format!("SYNC_REGS: KVM_RUN with {name} -> EINVAL, nothing taken"), ok, (r, regs));
    }
    let run = g.vcpu.get_kvm_run();
    (run.kvm_valid_regs, run.kvm_dirty_regs) = (abi::KVM_SYNC_X86_REGS, 0);

    // Hostile values: each is treated as KVM_SET_REGS + KVM_RUN treat it
    // (taken as given, RFLAGS bit 1 set, refused at entry if unsafe).
    let non_canonical = 0x0000_8000_0000_0000;
    // Bit 1 of RFLAGS left clear: it must come out set.
    let flags = |f: u64| kvm_regs { rflags: 0x200 | f, ..good };
    for (name, hostile, entered) in [
        ("RFLAGS.IOPL=3", flags(crate::gs::RFLAGS_IOPL), false),
        ("RFLAGS.NT", flags(crate::gs::RFLAGS_NT), false),
        ("RFLAGS.VM", flags(crate::gs::RFLAGS_VM), false),
        ("RFLAGS.VIF|VIP", flags(crate::gs::RFLAGS_VIF | crate::gs::RFLAGS_VIP), false),
        ("RFLAGS bit 15", flags(1 << 15), false),
        ("RFLAGS bit 63", flags(1 << 63), false),
        ("non-canonical RIP", kvm_regs { rip: non_canonical, ..flags(0) }, false),
        ("RFLAGS 0", kvm_regs { rflags: 0, ..good }, true),
        ("a non-canonical RSP", kvm_regs { rsp: non_canonical, ..good }, true),
    ] {
        let by_ioctl = g.vcpu.set_regs(&hostile).map_err(|e| e.errno()).and_then(|()| run_named(&mut g.vcpu));
        let ioctl_regs = g.vcpu.get_regs().ok();
        // Back to the good state, then the same through s.regs.
        let _ = g.vcpu.set_regs(&good);
        g.vcpu.sync_regs_mut().regs = hostile;
        g.vcpu.set_sync_dirty_reg(SyncReg::Register);
        let by_sync = run_named(&mut g.vcpu);
        let dirty = g.vcpu.get_kvm_run().kvm_dirty_regs;
        let sync_regs = g.vcpu.get_regs().ok();
        let synced_out = Some(g.vcpu.sync_regs().regs) == sync_regs;
        let outcome_ok = if entered {
            matches!(&by_sync, Ok(e) if e.starts_with("IoOut(240"))
        } else {
            by_sync == Err(libc::EINVAL) && sync_regs == Some(kvm_regs { rflags: hostile.rflags | 2, ..hostile })
        };
        let ok = by_ioctl == by_sync && ioctl_regs == sync_regs && dirty == 0 && synced_out && outcome_ok;
        t.check(
            &format!(
                "SYNC_REGS: dirty s.regs with {name} as KVM_SET_REGS ({})",
                if entered { "entered" } else { "EINVAL" }
            ),
            ok,
            (by_ioctl, by_sync, ioctl_regs, sync_regs, dirty),
        );
        let _ = g.vcpu.set_regs(&good);
    }

    // As in KVM, dirty registers are taken before immediate_exit is seen,
    // and s.regs is written on the EINTR return too.
    let mut spin = match Guest::new(kvm, &SPIN) {
        Ok(g) => g,
        Err(e) => return t.check("SYNC_REGS: spinning guest set-up", false, e),
    };
    spin.vcpu.set_sync_valid_reg(SyncReg::Register);
    let want = kvm_regs { rbx: 0x5157, rflags: 0x202, ..spin.vcpu.get_regs().unwrap_or_default() };
    spin.vcpu.sync_regs_mut().regs = want;
    spin.vcpu.set_sync_dirty_reg(SyncReg::Register);
    spin.vcpu.set_kvm_immediate_exit(1);
    let r = run_named(&mut spin.vcpu);
    let dirty = spin.vcpu.get_kvm_run().kvm_dirty_regs;
    let regs = spin.vcpu.get_regs().ok();
    let ok = r == Err(libc::EINTR) && dirty == 0 && regs == Some(want);
    t.check("SYNC_REGS: dirty registers taken on an immediate_exit run (EINTR)", ok, (r, dirty, regs));
    spin.vcpu.sync_regs_mut().regs = kvm_regs::default();
    let r = run_named(&mut spin.vcpu);
    spin.vcpu.set_kvm_immediate_exit(0);
    let got = spin.vcpu.sync_regs().regs;
    t.check("SYNC_REGS: s.regs written on an EINTR return", r == Err(libc::EINTR) && got == want, (r, got));
}

/// `syscall`, placed after each faulting instruction: the guest must go on
/// after an exception exit once RIP is moved past the instruction.
const SYSCALL: [u8; 2] = [0x0f, 0x05];

/// The exception exit of `vcpu`'s last run: vector, error code, RIP, CR2.
pub(crate) fn exception(vcpu: &mut VcpuFd) -> (u32, u32, u64, u64) {
    let run = vcpu.get_kvm_run();
    // SAFETY: the kernel filled `ex` for KVM_EXIT_EXCEPTION.
    let (v, e) = unsafe { (run.__bindgen_anon_1.ex.exception, run.__bindgen_anon_1.ex.error_code) };
    let rip = vcpu.get_regs().map_or(0, |r| r.rip);
    let cr2 = vcpu.get_sregs().map_or(0, |s| s.cr2);
    (v, e, rip, cr2)
}

/// One exception case: name, instruction bytes, the vectors it may raise,
/// error code, RIP offset of the exit, CR2.
type Case<'a> = (&'a str, &'a [u8], &'a [u32], u32, u64, Option<u64>);

/// Instructions a CPL3 payload may not run, and faults: each gives
/// KVM_EXIT_EXCEPTION with the vector and error code the CPU raised (what
/// KVM would reflect into km's IDT), RIP at the instruction (after it for
/// the int3 trap), CR2 for #PF; the guest then resumes.
fn exceptions(t: &mut Report, kvm: &Kvm) {
    const GP: u32 = 13;
    const PF: u32 = 14;
    const UD: u32 = 6;
    // The error code of a gate the caller may not use: vector and IDT flag.
    const IDT: u32 = 2;
    let ro_page = BASE + 7 * PAGE as u64;
    let ro = ro_page.to_le_bytes();
    #[rustfmt::skip]
    let cases: [Case; 16] = [
        ("ud2", &[0x0f, 0x0b], &[UD], 0, 0, None),
        ("int3", &[0xcc], &[3], 0, 1, None),
        ("divide by zero", &[0x48, 0x31, 0xc9, 0x48, 0xf7, 0xf1], &[0], 0, 3, None),
        ("hlt", &[0xf4], &[GP], 0, 0, None),
        ("in $0x80", &[0xe4, 0x80], &[GP], 0, 0, None),
        ("out to km's syscall port", &[0xe6, abi::KM_SYSCALL_PORT as u8], &[GP], 0, 0, None),
        ("cli", &[0xfa], &[GP], 0, 0, None),
        // #GP on Intel (null SYSENTER_CS), #UD on AMD (no sysenter in long mode).
        ("sysenter", &[0x0f, 0x34], &[GP, UD], 0, 0, None),
        ("int $0x81", &[0xcd, 0x81], &[GP], 0x81 << 3 | IDT, 0, None),
        ("int $0x80", &[0xcd, 0x80], &[GP], 0x80 << 3 | IDT, 0, None),
        ("mov to CR3", &[0x0f, 0x22, 0xd8], &[GP], 0, 0, None),
        ("swapgs", &[0x0f, 0x01, 0xf8], &[GP], 0, 0, None),
        ("wrmsr", &[0x0f, 0x30], &[GP], 0, 0, None),
        ("lgdt", &[0x0f, 0x01, 0x14, 0x25, 0, 0, 0x40, 0], &[GP], 0, 0, None),
        // mov %al, ro_page: write, user; not present, since kkm fills the
        // guest's tables on demand and nothing touched the page before (km
        // tells MAPERR from ACCERR by its own record of mappings).
        ("write to a read-only page", &[0x88, 0x04, 0x25, ro[0], ro[1], ro[2], ro[3]], &[PF], 6, 0, Some(ro_page)),
        // mov 0x1000, %al: not present, read, user
        ("read of an unmapped address", &[0x8a, 0x04, 0x25, 0x00, 0x10, 0, 0], &[PF], 4, 0, Some(0x1000)),
    ];
    for (name, insn, vectors, error, rip_off, cr2) in cases {
        let code = [insn, &SYSCALL].concat();
        let mut g = match Guest::new(kvm, &code) {
            Ok(g) => g,
            Err(e) => {
                t.check(&format!("{name}: set-up"), false, e);
                continue;
            }
        };
        // SAFETY: the last page of the guest's mapping, which nothing here
        // holds a reference into.
        unsafe { libc::mprotect(g.mem.add(7 * PAGE).cast(), PAGE, libc::PROT_READ) };
        let exit = g.vcpu.run().map(|e| format!("{e:?}"));
        let got = exception(&mut g.vcpu);
        let (v, e, rip, c) = got;
        // QEMU's TCG counts IDT gates in 16-byte units in that error code,
        // the CPUs in vectors: accept both encodings of the same gate.
        let gate_err = |e: u32| e & IDT != 0 && e & 3 == IDT && (e >> 4) << 3 | IDT == error;
        let ok = exit.as_deref() == Ok("Exception")
            && vectors.contains(&v)
            && (e == error || gate_err(e))
            && rip == BASE + rip_off
            && cr2.is_none_or(|want| c == want);
        t.check(&format!("{name} -> KVM_EXIT_EXCEPTION {vectors:?} error {error:#x}"), ok, (exit, got));
        // Past the instruction, the guest runs on to its syscall.
        let resumed = g
            .vcpu
            .get_regs()
            .and_then(|r| g.vcpu.set_regs(&kvm_regs { rip: BASE + insn.len() as u64, ..r }))
            .map_err(|e| e.to_string())
            .and_then(|()| g.vcpu.run().map(|e| format!("{e:?}")).map_err(|e| e.to_string()));
        let want = format!("{:?}", VcpuExit::IoOut(abi::KM_SYSCALL_PORT, &[0]));
        let io = resumed.as_ref().is_ok_and(|e| e.starts_with("IoOut(240"));
        t.check(&format!("{name}: the guest resumes after it"), io, (resumed, want));
    }

    // Single steps (TF): the guest's nop traps with #DB after it; the
    // step into `syscall` lands in ring 0 on kkm's entry, is absorbed there,
    // and the exit is the syscall's.
    if let Ok(mut g) = Guest::new(kvm, &[0x90, 0x0f, 0x05]) {
        let set = g.vcpu.get_regs().and_then(|r| g.vcpu.set_regs(&kvm_regs { rflags: 0x102, ..r }));
        let exit = g.vcpu.run().map(|e| format!("{e:?}"));
        let got = exception(&mut g.vcpu);
        let ok = set.is_ok() && exit.as_deref() == Ok("Exception") && got.0 == 1 && got.2 == BASE + 1;
        t.check("TF: a single step -> KVM_EXIT_EXCEPTION 1 after the instruction", ok, (exit, got));
        let exit = g.vcpu.run().map(|e| format!("{e:?}"));
        let ok = exit.as_ref().is_ok_and(|e| e.starts_with("IoOut(240"));
        t.check("TF: syscall -> KVM_EXIT_IO (the step into kkm's entry is absorbed)", ok, exit);
    }
}

/// `jmp .`: a guest that never exits by itself.
const SPIN: [u8; 2] = [0xeb, 0xfe];

extern "C" fn on_alarm(_: libc::c_int) {}

/// A spinning guest leaves KVM_RUN for a signal (KVM_EXIT_INTR, EINTR) and
/// for `immediate_exit`, and can be killed.
fn interruptions(t: &mut Report, kvm: &Kvm) {
    let Ok(mut g) = Guest::new(kvm, &SPIN) else {
        return t.check("spinning guest: set-up", false, ());
    };
    // SAFETY: installs a handler that does nothing, without SA_RESTART, so
    // the alarm interrupts the ioctl; then a one-shot 50 ms timer.
    let armed = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as *const () as usize;
        libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
        let it = libc::itimerval {
            it_interval: libc::timeval { tv_sec: 0, tv_usec: 0 },
            it_value: libc::timeval { tv_sec: 0, tv_usec: 50_000 },
        };
        libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut())
    };
    let r = g.vcpu.run().map(|e| format!("{e:?}")).map_err(|e| e.errno());
    let reason = g.vcpu.get_kvm_run().exit_reason;
    let ok = armed == 0 && r == Err(libc::EINTR) && reason == abi::KVM_EXIT_INTR;
    t.check("jmp . interrupted by SIGALRM -> EINTR, KVM_EXIT_INTR", ok, (r, reason));
    let rip = g.vcpu.get_regs().map(|r| r.rip);
    t.check("... the guest's RIP is still its jmp", rip.as_ref().is_ok_and(|&r| r == BASE), rip);

    g.vcpu.set_kvm_immediate_exit(1);
    let r = g.vcpu.run().map(|e| format!("{e:?}")).map_err(|e| e.errno());
    let reason = g.vcpu.get_kvm_run().exit_reason;
    t.check("immediate_exit -> EINTR, KVM_EXIT_INTR", r == Err(libc::EINTR) && reason == abi::KVM_EXIT_INTR, r);
    g.vcpu.set_kvm_immediate_exit(0);

    // SIGKILL of a process whose vCPU spins.
    // SAFETY: the child only creates a VM and runs it; the parent waits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        if let Ok(kvm) = Kvm::new_with_path(crate::DEV) {
            if let Ok(mut g) = Guest::new(&kvm, &SPIN) {
                let _ = g.vcpu.run();
            }
        }
        // SAFETY: leaves the forked child at once.
        unsafe { libc::_exit(3) };
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: `pid` is our child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let mut status = 0;
    let mut waited = 0;
    for _ in 0..1000 {
        // SAFETY: waits for our own child without blocking.
        waited = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if waited != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let killed = waited == pid && libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL;
    t.check("SIGKILL of a process spinning in the guest", killed, (waited, status));
}

/// Two vCPUs of one VM in two threads at once, each with its own registers.
fn two_vcpus(t: &mut Report, kvm: &Kvm) {
    // inc %rbx; syscall; jmp back
    let Ok(mut g) = Guest::new(kvm, &[0x48, 0xff, 0xc3, 0x0f, 0x05, 0xeb, 0xf9]) else {
        return t.check("two vCPUs: set-up", false, ());
    };
    let Ok(mut second) = g._vm.create_vcpu(1) else {
        return t.check("two vCPUs: KVM_CREATE_VCPU 1", false, ());
    };
    let set = g
        .vcpu
        .get_sregs()
        .and_then(|s| second.set_sregs(&s))
        .and_then(|()| g.vcpu.get_regs())
        .and_then(|r| second.set_regs(&kvm_regs { rbx: 1 << 40, rsp: STACK_TOP - 0x800, ..r }));
    let first = &mut g.vcpu;
    let spin = |vcpu: &mut VcpuFd, start: u64| -> Result<(), String> {
        for i in 1..=10_000u64 {
            match vcpu.run() {
                Ok(VcpuExit::IoOut(port, _)) if port == abi::KM_SYSCALL_PORT => {}
                other => return Err(format!("exit {i}: {other:?}")),
            }
            let r = vcpu.get_regs().map_err(|e| e.to_string())?;
            if r.rbx != start + i || r.rip != BASE + 5 {
                return Err(format!("exit {i}: rbx {:#x} rip {:#x}", r.rbx, r.rip));
            }
            vcpu.set_regs(&kvm_regs { rflags: r.r11, ..r }).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    let results = std::thread::scope(|s| {
        let a = s.spawn(|| spin(first, 0));
        let b = s.spawn(|| spin(&mut second, 1 << 40));
        (a.join(), b.join())
    });
    let ok = set.is_ok() && matches!(results, (Ok(Ok(())), Ok(Ok(()))));
    t.check("two vCPUs in two threads at once, 10^4 exits each", ok, (set, results));
}

/// KVM_RUN through a raw `syscall` with xmm8-xmm15 set to `pat`: returns the
/// ioctl's result and what those registers held right after it.
fn run_keeping_xmm(vcpu: &VcpuFd, pat: &[u8; 128]) -> (i64, [u8; 128]) {
    let mut out = [0u8; 128];
    let ret: i64;
    // SAFETY: the ioctl takes no argument and writes only kkm's kvm_run page;
    // the asm reads `pat` and writes `out`, both 128 bytes, and declares
    // every register it or the syscall changes.
    unsafe {
        std::arch::asm!(
            "movdqu xmm8, [{p}]", "movdqu xmm9, [{p} + 16]", "movdqu xmm10, [{p} + 32]",
            "movdqu xmm11, [{p} + 48]", "movdqu xmm12, [{p} + 64]", "movdqu xmm13, [{p} + 80]",
            "movdqu xmm14, [{p} + 96]", "movdqu xmm15, [{p} + 112]",
            "syscall",
            "movdqu [{o}], xmm8", "movdqu [{o} + 16], xmm9", "movdqu [{o} + 32], xmm10",
            "movdqu [{o} + 48], xmm11", "movdqu [{o} + 64], xmm12", "movdqu [{o} + 80], xmm13",
            "movdqu [{o} + 96], xmm14", "movdqu [{o} + 112], xmm15",
            p = in(reg) pat.as_ptr(),
            o = in(reg) out.as_mut_ptr(),
            inlateout("rax") libc::SYS_ioctl => ret,
            in("rdi") vcpu.as_raw_fd(),
            in("rsi") u64::from(abi::KVM_RUN),
            in("rdx") 0u64,
            out("rcx") _, out("r11") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
        );
    }
    (ret, out)
}

pub(crate) fn lanes(v: [u32; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (i, x) in v.iter().enumerate() {
        b[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
    b
}

/// The guest's FPU: KVM_GET/SET_FPU and XSAVE, their validation, and the
/// guest's XMM (and YMM, with AVX) values across 10^4 exits while the
/// caller's own XMM registers stay its own.
fn fpu(t: &mut Report, kvm: &Kvm) {
    let avx = std::arch::is_x86_feature_detected!("avx");
    // paddd %xmm1,%xmm0; pxor %xmm8,%xmm8; [vpaddd %ymm3,%ymm2,%ymm2;]
    // syscall; jmp back
    let mut code = vec![0x66, 0x0f, 0xfe, 0xc1, 0x66, 0x45, 0x0f, 0xef, 0xc0];
    if avx {
        code.extend([0xc5, 0xed, 0xfe, 0xd3]);
    }
    code.extend(SYSCALL);
    code.extend([0xeb, (-(code.len() as i8) - 2) as u8]);
    let Ok(g) = Guest::new(kvm, &code) else {
        return t.check("FPU guest: set-up", false, ());
    };
    let f = g.vcpu.get_fpu();
    t.check(
        "KVM_GET_FPU of a new vCPU: FCW 0x37f, MXCSR 0x1f80",
        f.as_ref().is_ok_and(|f| f.fcw == 0x37f && f.mxcsr == 0x1f80),
        f,
    );

    let fd = g.vcpu.as_raw_fd();
    let mut bad = kvm_bindings::kvm_fpu { fcw: 0x37f, mxcsr: 0x1f80 | 1 << 16, ..Default::default() };
    t.errno("KVM_SET_FPU with a reserved MXCSR bit", crate::ioctl_ref(fd, abi::KVM_SET_FPU, &mut bad), libc::EINVAL);
    let mut x = abi::KvmXsave { region: [0; 1024] };
    let got = crate::ioctl_ref(fd, abi::KVM_GET_XSAVE, &mut x);
    t.check("KVM_GET_XSAVE", got.is_ok(), got);
    for (name, word, bit) in
        [("an unknown feature", 128, 62), ("the compacted format", 131, 31), ("a reserved MXCSR bit", 6, 16)]
    {
        let mut y = abi::KvmXsave { region: x.region };
        y.region[word] |= 1 << bit;
        t.errno(&format!("KVM_SET_XSAVE with {name}"), crate::ioctl_ref(fd, abi::KVM_SET_XSAVE, &mut y), libc::EINVAL);
    }

    const N: u32 = 10_000;
    let mut fpu = kvm_bindings::kvm_fpu { fcw: 0x37f, mxcsr: 0x1f80, ..Default::default() };
    fpu.xmm[0] = lanes([1, 2, 3, 4]);
    fpu.xmm[1] = lanes([1, 1, 1, 1]);
    fpu.xmm[8] = lanes([7; 4]);
    let set = g.vcpu.set_fpu(&fpu);
    let got = g.vcpu.get_fpu();
    t.check("KVM_SET_FPU/KVM_GET_FPU round trip", set.is_ok() && got.as_ref().is_ok_and(|f| f.xmm == fpu.xmm), got);
    let avx_off = std::arch::x86_64::__cpuid_count(0xd, 2).ebx as usize / 4;
    if avx {
        // ymm2 = [10, 20, 30, 40 | 50, 60, 70, 80], ymm3 = [1, 2, 3, 4 | 5, 6, 7, 8]
        let mut y = abi::KvmXsave { region: [0; 1024] };
        let r = crate::ioctl_ref(fd, abi::KVM_GET_XSAVE, &mut y);
        y.region[40 + 8..40 + 12].copy_from_slice(&[10, 20, 30, 40]);
        y.region[40 + 12..40 + 16].copy_from_slice(&[1, 2, 3, 4]);
        y.region[avx_off + 8..avx_off + 12].copy_from_slice(&[50, 60, 70, 80]);
        y.region[avx_off + 12..avx_off + 16].copy_from_slice(&[5, 6, 7, 8]);
        y.region[128] |= 4;
        let r = r.and_then(|_| crate::ioctl_ref(fd, abi::KVM_SET_XSAVE, &mut y));
        t.check("KVM_SET_XSAVE of YMM values", r.is_ok(), r);
    }
    let mut pat = [0u8; 128];
    for (i, b) in pat.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) | 1;
    }
    let mut bad: Option<String> = None;
    for i in 0..N {
        let (ret, out) = run_keeping_xmm(&g.vcpu, &pat);
        if ret != 0 || out != pat {
            bad = Some(format!("exit {i}: ioctl {ret}, xmm8-15 after it {out:?}"));
            break;
        }
        // As km: return to RCX with R11's flags.
        if let Err(e) = g.vcpu.get_regs().and_then(|r| g.vcpu.set_regs(&kvm_regs { rip: r.rcx, rflags: r.r11, ..r })) {
            bad = Some(format!("regs at {i}: {e}"));
            break;
        }
    }
    t.check("10^4 exits with the caller's xmm8-15 set: its own values after each KVM_RUN", bad.is_none(), bad);
    let f = g.vcpu.get_fpu();
    let want0 = lanes([1 + N, 2 + N, 3 + N, 4 + N]);
    let ok = f.as_ref().is_ok_and(|f| f.xmm[0] == want0 && f.xmm[8] == [0; 16] && f.xmm[1] == fpu.xmm[1]);
    t.check("the guest's XMM values after 10^4 exits (xmm0 += xmm1 each time)", ok, f.map(|f| (f.xmm[0], f.xmm[8])));
    if avx {
        let mut y = abi::KvmXsave { region: [0; 1024] };
        let r = crate::ioctl_ref(fd, abi::KVM_GET_XSAVE, &mut y);
        let low = &y.region[40 + 8..40 + 12];
        let high = &y.region[avx_off + 8..avx_off + 12];
        let ok = r.is_ok()
            && low == [10 + N, 20 + 2 * N, 30 + 3 * N, 40 + 4 * N]
            && high == [50 + 5 * N, 60 + 6 * N, 70 + 7 * N, 80 + 8 * N];
        t.check(
            "the guest's YMM values after 10^4 exits (ymm2 += ymm3 each time)",
            ok,
            (r, low.to_vec(), high.to_vec()),
        );
    }
}

/// A slot change reaches a vCPU that is in the guest: it spins until a flag
/// in another slot's memory is set; the flag is set in a new page that only
/// a memory-region change makes the guest see (the old page stays pinned
/// for the old root).
fn slot_change_while_running(t: &mut Report, kvm: &Kvm) {
    const FLAG: u64 = BASE + 0x10_0000;
    let f = (FLAG as u32).to_le_bytes();
    // 1: cmpb $0, FLAG; je 1b; syscall
    let code = [0x80, 0x3c, 0x25, f[0], f[1], f[2], f[3], 0x00, 0x74, 0xf6, 0x0f, 0x05];
    let Ok(mut g) = Guest::new(kvm, &code) else {
        return t.check("slot change: set-up", false, ());
    };
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let (Ok(flag), Ok(other)) = (map(PAGE, rw, anon, -1, 0), map(PAGE, rw, anon, -1, 0)) else {
        return t.check("slot change: mmap", false, ());
    };
    let region = |slot, gpa, mem: *mut u8| kvm_userspace_memory_region {
        slot,
        flags: 0,
        guest_phys_addr: gpa,
        memory_size: PAGE as u64,
        userspace_addr: mem as u64,
    };
    // SAFETY: the regions are the mappings above, unmapped after the VM.
    let set = unsafe { g._vm.set_user_memory_region(region(1, FLAG, flag)) };
    let immediate = &mut g.vcpu.get_kvm_run().immediate_exit as *mut u8 as usize;
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::scope(|s| {
        let vcpu = &mut g.vcpu;
        let h = s.spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            // (As an integer: pthread_t is a pointer on musl.)
            tx.send(unsafe { libc::pthread_self() } as usize).ok();
            vcpu.run().map(|e| format!("{e:?}")).map_err(|e| e.errno())
        });
        let thread = rx.recv().ok();
        std::thread::sleep(std::time::Duration::from_millis(100));
        // A new page with the flag set, at the same host address.
        // SAFETY: replaces the page at `flag`, which only the guest (through
        // its pinned old page) and nothing here references.
        let p = unsafe { libc::mmap(flag.cast(), PAGE, rw, libc::MAP_FIXED | anon, -1, 0) };
        let remapped = if p == flag.cast() {
            // SAFETY: `p` is the fresh page just mapped at `flag`.
            unsafe { *flag = 1 };
            Ok(())
        } else {
            Err(crate::errno())
        };
        // SAFETY: as above.
        let added = unsafe { g._vm.set_user_memory_region(region(2, BASE + 0x20_0000, other)) };
        for _ in 0..1000 {
            if h.is_finished() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if !h.is_finished() {
            // Fail rather than hang: stop the vCPU.
            // SAFETY: `immediate` points into the vCPU's kvm_run mapping,
            // alive until `g` drops; the signal's handler does nothing.
            unsafe {
                *(immediate as *mut u8) = 1;
                if let Some(th) = thread {
                    libc::pthread_kill(th as libc::pthread_t, libc::SIGALRM);
                }
            }
        }
        (remapped, added, h.join())
    });
    let ok = set.is_ok()
        && result.0.is_ok()
        && result.1.is_ok()
        && matches!(&result.2, Ok(Ok(e)) if e.starts_with("IoOut(240"));
    t.check("a slot change while a vCPU spins reaches it (the guest sees the new page)", ok, (set, result));
    drop(g);
    unmap(flag, PAGE);
    unmap(other, PAGE);
}

/// A file whose creation ends `spin` early.
const SPIN_STOP: &str = "/tmp/kkm-spin-stop";

/// One vCPU per CPU spins in `jmp .` for `secs` seconds or until
/// `SPIN_STOP` exists, then each is stopped (immediate_exit and a signal).
/// Prints `KKM-SPINNING` once they run, and returns whether each ended with
/// EINTR at its `jmp`, the guest intact.
pub(crate) fn spin(secs: u64) -> bool {
    // SAFETY: installs a no-op SIGALRM handler without SA_RESTART.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as *const () as usize;
        libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
    }
    let Ok(kvm) = Kvm::new_with_path(crate::DEV) else {
        return false;
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut guests: Vec<Guest> = (0..cpus).filter_map(|_| Guest::new(&kvm, &SPIN).ok()).collect();
    if guests.len() != cpus {
        return false;
    }
    let stops: Vec<usize> =
        guests.iter_mut().map(|g| &mut g.vcpu.get_kvm_run().immediate_exit as *mut u8 as usize).collect();
    let (tx, rx) = std::sync::mpsc::channel();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = guests
            .iter_mut()
            .map(|g| {
                let tx = tx.clone();
                let vcpu = &mut g.vcpu;
                s.spawn(move || {
                    // SAFETY: pthread_self has no preconditions. (As an
                    // integer: pthread_t is a pointer on musl.)
                    tx.send(unsafe { libc::pthread_self() } as usize).ok();
                    let r = vcpu.run().map(|e| format!("{e:?}")).map_err(|e| e.errno());
                    let rip = vcpu.get_regs().map(|r| r.rip).ok();
                    (r, rip)
                })
            })
            .collect();
        let threads: Vec<usize> = (0..cpus).filter_map(|_| rx.recv().ok()).collect();
        std::thread::sleep(std::time::Duration::from_millis(200));
        println!("KKM-SPINNING");
        for _ in 0..secs * 10 {
            if std::path::Path::new(SPIN_STOP).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        for (stop, th) in stops.iter().zip(&threads) {
            // SAFETY: `stop` points into a vCPU's kvm_run mapping, alive
            // until `guests` drops; the signal's handler does nothing.
            unsafe {
                *(*stop as *mut u8) = 1;
                libc::pthread_kill(*th as libc::pthread_t, libc::SIGALRM);
            }
        }
        handles.into_iter().map(|h| h.join().ok()).collect::<Vec<_>>()
    });
    println!("spin results: {results:?}");
    results.iter().all(|r| matches!(r, Some((Err(libc::EINTR), Some(BASE)))))
}

pub(crate) fn run_all(t: &mut Report, kvm: &Kvm) {
    syscall_round_trips(t, kvm);
    sync_regs(t, kvm);
    exceptions(t, kvm);
    interruptions(t, kvm);
    two_vcpus(t, kvm);
    slot_change_while_running(t, kvm);
    fpu(t, kvm);
}
