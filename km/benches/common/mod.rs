//! A minimal guest for the floor measurements: one 2 MiB slot identity
//! mapped by one user page, km's GDT and TSS, and a CPL3 loop of `syscall`s
//! that reach the host through the same landing pad as km's (`out; sysretq`)
//! on /dev/kvm, and through kkm's own syscall entry on /dev/kkm (which
//! ignores the guest's tables and reports the same port), then one last
//! `syscall` with another number that ends the loop. The host side does per
//! exit only what km's run loop does (read the registers, write them back
//! with the result and, where the pad stays at CPL3, rip/rflags), or, for
//! the exit cost alone, only what the guest needs to go on.

use kkm_uapi as uapi;
use kvm_bindings::{kvm_regs, kvm_segment, kvm_userspace_memory_region, CpuId};
use kvm_ioctls::{Cap, Kvm, SyncReg, VcpuExit, VcpuFd, VmFd};
use std::os::fd::AsRawFd;

const MEM: usize = 2 << 20;
const PML4: u64 = 0x2000;
/// The page directory of the first GiB; its first entry maps the first
/// 2 MiB (one large page).
pub const PD: u64 = 0x4000;
const GDT: u64 = 0x5000;
const TSS: u64 = 0x6000;
const CODE: u64 = 0x7000;
const PAD: u64 = 0x8000;
const PORT_SYSCALL: u8 = uapi::KM_SYSCALL_PORT as u8;
/// The loop's system call (getppid) and the one that ends it (exit); the
/// pad and kkm both report AL, the number's low byte.
const LOOP_CALL: u8 = 110;
pub const DONE_CALL: u8 = 60;

/// The guest's memory, written once; a forked child registers its copy.
pub struct Memory {
    base: *mut u8,
    size: usize,
}

impl Memory {
    /// The memory with tables, GDT, TSS, the pad and the loop.
    pub fn new() -> Memory {
        Memory::sized(1, false)
    }

    /// The same in `mib2` 2 MiB pages (the first holds the tables and the
    /// code), aligned to 2 MiB; the host backs it with transparent huge
    /// pages if `huge`, with small pages otherwise.
    pub fn sized(mib2: usize, huge: bool) -> Memory {
        let size = mib2 * MEM;
        // Executable: kkm lets the guest execute only what the host mapping
        // allows.
        // SAFETY: a fresh anonymous mapping owned by this program for its
        // life; one extra 2 MiB leaves room to align it.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size + MEM,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        } as *mut u8;
        assert!(raw as isize != -1);
        let base = raw.wrapping_add(raw.align_offset(MEM));
        let advice = if huge { libc::MADV_HUGEPAGE } else { libc::MADV_NOHUGEPAGE };
        // SAFETY: advice on part of the mapping just made. A kernel without
        // transparent huge pages (the kkm rig's) refuses it and has only
        // small pages anyway.
        unsafe { libc::madvise(base.cast(), size, advice) };
        let mem = Memory { base, size };
        let put = |addr: u64, bytes: &[u8]| mem.put(addr, bytes);
        // Identity map of the first 2 MiB, one user-accessible large page.
        put(PML4, &(0x3000u64 | 7).to_le_bytes());
        put(0x3000, &(PD | 7).to_le_bytes());
        put(PD, &(0x87u64).to_le_bytes());
        // GDT as km's: null, code, data, user data, user code, TSS.
        for (i, d) in [0u64, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff, 0x00cf_f300_0000_ffff, 0x00af_fb00_0000_ffff]
            .iter()
            .enumerate()
        {
            put(GDT + 8 * i as u64, &d.to_le_bytes());
        }
        let tss_desc = TSS_LIMIT | ((TSS & 0xff_ffff) << 16) | (0x8b << 40);
        put(GDT + 40, &tss_desc.to_le_bytes());
        let mut tss = vec![0u8; 137];
        tss[102..104].copy_from_slice(&104u16.to_le_bytes());
        tss[104..].fill(0xff);
        tss[104 + PORT_SYSCALL as usize / 8] &= !(1 << (PORT_SYSCALL % 8));
        put(TSS, &tss);
        // 1: mov $LOOP_CALL,%eax; syscall; dec %ebx; jnz 1b; mov $DONE_CALL,%eax;
        // syscall; ud2 (rbx: the count)
        put(
            CODE,
            &[
                0xb8, LOOP_CALL, 0, 0, 0, 0x0f, 0x05, 0xff, 0xcb, 0x75, 0xf5, 0xb8, DONE_CALL, 0, 0, 0, 0x0f, 0x05,
                0x0f, 0x0b,
            ],
        );
        put(PAD, &[0xe6, PORT_SYSCALL, 0x48, 0x0f, 0x07, 0x0f, 0x0b]);
        mem
    }

    /// Writes `bytes` at guest-physical `addr`.
    pub fn put(&self, addr: u64, bytes: &[u8]) {
        assert!(addr as usize + bytes.len() <= self.size, "write past the guest's memory");
        // SAFETY: the range lies inside the mapping, checked above.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(addr as usize), bytes.len()) }
    }
}

const TSS_LIMIT: u64 = 104 + 32;

/// What the host does at each syscall exit before it resumes the guest.
#[derive(Clone, Copy)]
// Each bench program includes this module; only exit_roundtrip uses all.
#[allow(dead_code)]
pub enum HostWork {
    /// Only what the guest needs to go on: nothing where the exit left it
    /// on its way back (kkm: past its `syscall`; VT-x/SVM: at the pad's
    /// `sysretq`), rip and rflags through SYNC_REGS where the pad stays at
    /// CPL3 (PVM).
    Resume,
    /// What km's run loop does: read the registers and write them back with
    /// the call's result (and rip/rflags where the pad stays at CPL3),
    /// through SYNC_REGS where the device has it, else KVM_GET_REGS and
    /// KVM_SET_REGS.
    Registers,
}

/// kkm answers its identity ioctl; KVM does not know it.
pub fn is_kkm(kvm: &Kvm) -> bool {
    let mut id = uapi::KkmIdentity::default();
    // SAFETY: KKM_GET_IDENTITY writes at most size_of::<KkmIdentity>() bytes
    // (encoded in the request) into `id`; KVM refuses the unknown number.
    let r = unsafe { libc::ioctl(kvm.as_raw_fd(), uapi::KKM_GET_IDENTITY as libc::Ioctl, &mut id) };
    r == 0 && id.magic == uapi::KKM_IDENTITY_MAGIC
}

/// A VM over `mem` with one vCPU at the loop's start.
pub struct Guest {
    // Kept open for the vCPU's life.
    _vm: VmFd,
    vcpu: VcpuFd,
    kkm: bool,
    sync_regs: bool,
}

impl Guest {
    /// Creates the VM: one slot, one vCPU, segments and, on KVM, its CPUID
    /// (`cpuid`, as given by the device) and syscall MSRs. kkm has neither:
    /// the guest runs on the host CPU and its `syscall` goes to kkm.
    pub fn new(kvm: &Kvm, cpuid: &CpuId, mem: &Memory) -> Guest {
        let kkm = is_kkm(kvm);
        let vm = kvm.create_vm().expect("create VM");
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: mem.size as u64,
            userspace_addr: mem.base as u64,
        };
        // SAFETY: the region is our own mapping and stays mapped until exit.
        unsafe { vm.set_user_memory_region(region) }.expect("memory region");
        let vcpu = vm.create_vcpu(0).expect("vCPU");
        if !kkm {
            // The device checks long mode against the guest's CPUID.
            vcpu.set_cpuid2(cpuid).expect("set cpuid");
        }
        let mut s = vcpu.get_sregs().expect("sregs");
        let seg = |sel: u16, code: bool| kvm_segment {
            base: 0,
            limit: 0xffff_ffff,
            selector: sel,
            type_: if code { 0xb } else { 0x3 },
            present: 1,
            dpl: 3,
            db: u8::from(!code),
            s: 1,
            l: u8::from(code),
            g: 1,
            ..Default::default()
        };
        s.cs = seg(0x23, true);
        s.ss = seg(0x1b, false);
        s.ds = s.ss;
        s.es = s.ss;
        s.fs = s.ss;
        s.gs = s.ss;
        s.tr = kvm_segment {
            base: TSS,
            limit: TSS_LIMIT as u32,
            selector: 0x28,
            type_: 0xb,
            present: 1,
            ..Default::default()
        };
        s.gdt.base = GDT;
        s.gdt.limit = 55;
        // km's CR0: PE MP ET NE WP PG.
        s.cr0 = 0x8001_0033;
        s.cr3 = PML4;
        s.cr4 = 0x620;
        s.efer = 0xd01;
        vcpu.set_sregs(&s).expect("set sregs");
        if !kkm {
            let msrs = kvm_bindings::Msrs::from_entries(&[
                kvm_bindings::kvm_msr_entry {
                    index: 0xc000_0081,
                    data: (0x10 << 48) | (0x08 << 32),
                    ..Default::default()
                },
                kvm_bindings::kvm_msr_entry { index: 0xc000_0082, data: PAD, ..Default::default() },
                kvm_bindings::kvm_msr_entry { index: 0xc000_0084, data: 0x4_4700, ..Default::default() },
            ])
            .unwrap();
            vcpu.set_msrs(&msrs).expect("msrs");
        }
        let sync_regs = kvm.check_extension(Cap::SyncRegs);
        Guest { _vm: vm, vcpu, kkm, sync_regs }
    }

    /// Whether registers go through SYNC_REGS (the device reports it) rather
    /// than KVM_GET_REGS and KVM_SET_REGS.
    // Only exit_roundtrip reports it.
    #[allow(dead_code)]
    pub fn uses_sync_regs(&self) -> bool {
        self.sync_regs
    }

    /// Runs the loop from its start with km's work at each exit: `exits`
    /// exits, the last one the end (`exits` - 1 syscalls).
    pub fn run(&mut self, exits: u32) {
        self.run_with(exits, HostWork::Registers);
    }

    /// Runs the loop from its start, doing `work` at each exit: `exits`
    /// exits, the last one the end. Returns how many of the loop's syscalls
    /// reached the host (`exits` - 1: any other exit panics).
    pub fn run_with(&mut self, exits: u32, work: HostWork) -> u32 {
        assert!(exits >= 2, "the loop makes at least one syscall");
        self.run_at(CODE, u64::from(exits - 1), work)
    }

    /// Runs guest code at `rip` (with `rbx` as given) to its DONE_CALL
    /// syscall, doing `work` at each syscall exit before it; returns how
    /// many of those reached the host.
    pub fn run_at(&mut self, rip: u64, rbx: u64, work: HostWork) -> u32 {
        let vcpu = &mut self.vcpu;
        let regs = kvm_regs { rip, rsp: 0x1f_f000, rbx, rflags: 2, ..Default::default() };
        vcpu.set_regs(&regs).expect("regs");
        if self.sync_regs {
            vcpu.set_sync_valid_reg(SyncReg::Register);
        }
        let mut pad_at_cpl3 = None;
        let mut calls = 0;
        loop {
            match vcpu.run().expect("KVM_RUN") {
                VcpuExit::IoOut(port, [LOOP_CALL]) if port == PORT_SYSCALL.into() => calls += 1,
                VcpuExit::IoOut(port, [DONE_CALL]) if port == PORT_SYSCALL.into() => break,
                other => panic!("unexpected exit {other:?}"),
            }
            // kkm leaves the guest past its syscall; KVM in the pad, whose
            // sysretq returns where `syscall` entered CPL0 (VT-x/SVM), but
            // not where it stayed at CPL3 (PVM): the host returns for it.
            let return_for_pad =
                !self.kkm && *pad_at_cpl3.get_or_insert_with(|| vcpu.get_sregs().unwrap().cs.selector & 3 == 3);
            if matches!(work, HostWork::Resume) && !return_for_pad {
                continue;
            }
            let mut r = if self.sync_regs { vcpu.sync_regs().regs } else { vcpu.get_regs().expect("KVM_GET_REGS") };
            if matches!(work, HostWork::Registers) {
                r.rax = std::hint::black_box(1);
            }
            if return_for_pad {
                r.rip = r.rcx;
                r.rflags = (r.r11 & 0x24_0dd5) | 2;
            }
            if self.sync_regs {
                vcpu.sync_regs_mut().regs = r;
                vcpu.set_sync_dirty_reg(SyncReg::Register);
            } else {
                vcpu.set_regs(&r).expect("KVM_SET_REGS");
            }
        }
        calls
    }
}
