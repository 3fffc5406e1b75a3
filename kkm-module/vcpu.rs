// SPDX-License-Identifier: GPL-2.0

//! A vCPU: its register state and the `kvm_run` page shared with user space.

use crate::{
    abi::{self, KvmFpu, KvmRegs, KvmSregs, KvmTranslation, KvmXcrs, KvmXsave},
    fd::FdObject,
    fpu::{self, GuestFpu},
    guest_mode::{self, page_pfn, pfn_to_virt, Exit, GuestCpu},
    guest_state::{self, RFLAGS_FIXED},
    vm::Vm,
};
use core::ptr;
use kernel::{
    bindings,
    mm::virt::VmaNew,
    new_mutex,
    page::{Page, PAGE_SIZE},
    prelude::*,
    sync::{Arc, ArcBorrow, Mutex},
};

/// Size of the vCPU mapping: one page holding `struct kvm_run`; exit data
/// (KVM_EXIT_IO) will live in the same page after the struct.
pub(crate) const MMAP_SIZE: usize = PAGE_SIZE;
const _: () = assert!(core::mem::size_of::<abi::KvmRun>() <= MMAP_SIZE);

struct Regs {
    regs: KvmRegs,
    sregs: KvmSregs,
    fpu: GuestFpu,
}

#[pin_data]
pub(crate) struct Vcpu {
    id: u32,
    vm: Arc<Vm>,
    /// `struct kvm_run`, zeroed at creation, mapped by user space.
    run: Page,
    #[pin]
    regs: Mutex<Regs>,
}

impl Vcpu {
    pub(crate) fn new(id: u32, vm: Arc<Vm>) -> Result<Arc<Self>> {
        let run = Page::alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO)?;
        let fpu = GuestFpu::new()?;
        // RFLAGS bit 1 is reserved and reads as one, as KVM's reset state.
        let regs = KvmRegs {
            rflags: 0x2,
            ..Default::default()
        };
        Arc::pin_init(
            pin_init!(Self {
                id,
                vm,
                run,
                regs <- new_mutex!(Regs { regs, sregs: KvmSregs::default(), fpu }),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }
}

/// KVM_SET_REGS and `kvm_dirty_regs` alike: any values, as in KVM (checked
/// at entry); RFLAGS bit 1 is set as KVM sets it.
fn set_regs(regs: &mut Regs, new: KvmRegs) {
    regs.regs = KvmRegs {
        rflags: new.rflags | RFLAGS_FIXED,
        ..new
    };
}

/// The register classes `kvm_valid_regs` and `kvm_dirty_regs` may name
/// (KVM_CAP_SYNC_REGS): the general registers only, all km syncs; special
/// registers and events go through their ioctls.
pub(crate) const SYNC_REGS_SUPPORTED: u64 = abi::KVM_SYNC_X86_REGS;

/// Where KVM_EXIT_IO's data byte goes: right after `struct kvm_run`.
const IO_DATA_OFFSET: usize = core::mem::size_of::<abi::KvmRun>();

impl Vcpu {
    fn run_page(&self) -> *mut abi::KvmRun {
        pfn_to_virt(page_pfn(self.run.as_ptr())) as *mut abi::KvmRun
    }

    /// KVM_RUN's start with KVM_CAP_SYNC_REGS: reads `kvm_valid_regs` and
    /// `kvm_dirty_regs` once each, refuses bits kkm does not sync (EINVAL,
    /// as KVM), and takes dirty general registers from `s.regs` into the
    /// kernel copy as KVM_SET_REGS would, clearing their dirty bit as KVM
    /// does. Returns `kvm_valid_regs` for the exit, with the outcome.
    fn sync_in(&self, regs: &mut Regs) -> (u64, Result) {
        let run = self.run_page();
        // SAFETY: `run` is this vCPU's kvm_run page, alive as long as
        // `self`; plain u64 fields, read once each, volatile as user space
        // may change them at any time.
        let (valid, dirty) = unsafe {
            (
                ptr::addr_of!((*run).kvm_valid_regs).read_volatile(),
                ptr::addr_of!((*run).kvm_dirty_regs).read_volatile(),
            )
        };
        if (valid | dirty) & !SYNC_REGS_SUPPORTED != 0 {
            return (valid, Err(EINVAL));
        }
        if dirty & abi::KVM_SYNC_X86_REGS != 0 {
            // SAFETY: as above; `s.regs` is a `KvmRegs` (integers only, any
            // bit pattern valid) at an 8-aligned offset of the page, copied
            // once into the kernel, which uses only the copy.
            let new = unsafe { ptr::addr_of!((*run).s.regs).read_volatile() };
            set_regs(regs, new);
            // SAFETY: as above.
            unsafe {
                ptr::addr_of_mut!((*run).kvm_dirty_regs)
                    .write_volatile(dirty & !abi::KVM_SYNC_X86_REGS)
            };
        }
        (valid, Ok(()))
    }

    /// KVM_RUN's end with `KVM_SYNC_X86_REGS` in `kvm_valid_regs`: the
    /// general registers to `s.regs`.
    fn sync_out(&self, regs: &KvmRegs) {
        let run = self.run_page();
        // SAFETY: `run` is this vCPU's kvm_run page, alive as long as
        // `self`; `s.regs` lies inside it (KvmRun fits the page, checked at
        // compile time) at an 8-aligned offset.
        unsafe { ptr::addr_of_mut!((*run).s.regs).write_volatile(*regs) };
    }

    /// KVM_RUN: enters the guest until an exit km must see. Host interrupts
    /// are handled and the guest re-entered; a pending signal or
    /// `immediate_exit` ends the run with KVM_EXIT_INTR and EINTR.
    fn run(&self, regs: &mut Regs) -> Result<isize> {
        let run = self.run_page();
        // Each field of the shared page is read or written once, volatile:
        // user space may change it at any time.
        let set_exit = move |reason: u32| {
            // SAFETY: `run` is this vCPU's kvm_run page, alive as long as `self`.
            unsafe { ptr::addr_of_mut!((*run).exit_reason).write_volatile(reason) }
        };
        loop {
            // SAFETY: as above.
            let immediate = unsafe { ptr::addr_of!((*run).immediate_exit).read_volatile() };
            // SAFETY: `current` is the running task.
            if immediate != 0 || unsafe { bindings::signal_pending(bindings::get_current()) } != 0 {
                set_exit(abi::KVM_EXIT_INTR);
                return Err(EINTR);
            }
            let Regs { regs, sregs, fpu } = regs;
            let mut cpu = GuestCpu {
                regs,
                fs_base: &mut sregs.fs.base,
                gs_base: &mut sregs.gs.base,
                fpu,
                root: self.vm.mmu.root_phys(),
                running: self.vm.running(),
            };
            match fpu::with_fpu(|| guest_mode::run(&mut cpu)) {
                Exit::Interrupt => {
                    // With CONFIG_PREEMPTION, turning interrupts back on in
                    // `run` was a preemption point already; elsewhere a busy
                    // guest must yield here.
                    #[cfg(any(not(CONFIG_PREEMPTION), CONFIG_PREEMPT_DYNAMIC))]
                    cond_resched();
                    continue;
                }
                Exit::Syscall => {
                    let io = abi::KvmRunIo {
                        direction: abi::KVM_EXIT_IO_OUT,
                        size: 1,
                        port: abi::KM_SYSCALL_PORT,
                        count: 1,
                        data_offset: IO_DATA_OFFSET as u64,
                    };
                    // SAFETY: as above; the data byte lies inside the page
                    // (checked at compile time below).
                    unsafe {
                        ptr::addr_of_mut!((*run).exit.io).write_volatile(io);
                        run.cast::<u8>()
                            .add(IO_DATA_OFFSET)
                            .write_volatile(regs.rax as u8);
                    }
                    set_exit(abi::KVM_EXIT_IO);
                }
                Exit::Exception { vector, error, cr2 } => {
                    // A fault on payload memory not mapped yet: map it and
                    // go on; anything else is km's.
                    if vector == PF_VECTOR && self.vm.mmu.handle_fault(&self.vm, cr2, error)? {
                        continue;
                    }
                    if vector == PF_VECTOR {
                        sregs.cr2 = cr2;
                    }
                    let ex = abi::KvmRunEx {
                        exception: vector.into(),
                        error_code: error,
                    };
                    // SAFETY: as above.
                    unsafe { ptr::addr_of_mut!((*run).exit.ex).write_volatile(ex) };
                    set_exit(abi::KVM_EXIT_EXCEPTION);
                }
                Exit::SwitcherFault { vector, rip } => {
                    pr_err!(
                        "switcher fault: vector {} at {:#x} (vcpu {})\n",
                        vector,
                        rip,
                        self.id
                    );
                    set_exit(abi::KVM_EXIT_INTERNAL_ERROR);
                }
            }
            return Ok(0);
        }
    }
}

/// `cond_resched()`, a macro in C: its function is exported where it does
/// anything.
#[cfg(any(not(CONFIG_PREEMPTION), CONFIG_PREEMPT_DYNAMIC))]
fn cond_resched() {
    extern "C" {
        fn __cond_resched() -> kernel::ffi::c_int;
    }
    // SAFETY: process context, no spinlock held, interrupts on: a scheduling
    // point.
    unsafe { __cond_resched() };
}

const PF_VECTOR: u8 = 14;
const _: () = assert!(IO_DATA_OFFSET < MMAP_SIZE);

impl FdObject for Vcpu {
    const NAME: &'static CStr = c"kkm-vcpu";

    fn ioctl(this: ArcBorrow<'_, Self>, cmd: u32, arg: usize) -> Result<isize> {
        this.vm.check_caller()?;
        match cmd {
            abi::KVM_RUN => {
                crate::no_arg(arg)?;
                let mut regs = this.regs.lock();
                let (valid, result) = this.sync_in(&mut regs);
                // The entry contract is checked on every entry, so registers
                // from KVM_SET_REGS and from s.regs are held to the same
                // rules.
                let result = result.and_then(|()| {
                    guest_state::check_entry(&regs.regs, &regs.sregs).map_err(|_| EINVAL)?;
                    this.run(&mut regs)
                });
                // As KVM: on every return, errors included, so that km
                // sees the registers of an interrupted run too.
                if valid & abi::KVM_SYNC_X86_REGS != 0 {
                    this.sync_out(&regs.regs);
                }
                result
            }
            abi::KVM_GET_REGS => {
                let regs = this.regs.lock().regs;
                crate::write_user(arg, &regs).map(|()| 0)
            }
            abi::KVM_SET_REGS => {
                let regs: KvmRegs = crate::read_user(arg)?;
                set_regs(&mut this.regs.lock(), regs);
                Ok(0)
            }
            abi::KVM_GET_SREGS => {
                let sregs = this.regs.lock().sregs;
                crate::write_user(arg, &sregs).map(|()| 0)
            }
            abi::KVM_SET_SREGS => {
                // Control registers are checked as KVM checks them against
                // its vCPU model; segments at entry. The guest's control
                // registers and descriptor tables are never loaded (the
                // module uses its own).
                let sregs: KvmSregs = crate::read_user(arg)?;
                guest_state::check_sregs(&sregs).map_err(|_| EINVAL)?;
                this.regs.lock().sregs = sregs;
                Ok(0)
            }
            abi::KVM_GET_FPU => {
                let fpu = this.regs.lock().fpu.get_fpu();
                crate::write_user(arg, &fpu).map(|()| 0)
            }
            abi::KVM_SET_FPU => {
                let fpu: KvmFpu = crate::read_user(arg)?;
                this.regs.lock().fpu.set_fpu(&fpu).map(|()| 0)
            }
            abi::KVM_GET_XSAVE => {
                let x = this.regs.lock().fpu.get_xsave();
                crate::write_user(arg, &x).map(|()| 0)
            }
            abi::KVM_SET_XSAVE => {
                let x: KvmXsave = crate::read_user(arg)?;
                this.regs.lock().fpu.set_xsave(&x).map(|()| 0)
            }
            abi::KVM_GET_XCRS => {
                let x = this.regs.lock().fpu.get_xcrs();
                crate::write_user(arg, &x).map(|()| 0)
            }
            abi::KVM_SET_XCRS => {
                let x: KvmXcrs = crate::read_user(arg)?;
                this.regs.lock().fpu.set_xcrs(&x).map(|()| 0)
            }
            abi::KVM_TRANSLATE => {
                // kkm's meaning (docs/kkm.md): the translation the guest
                // gets for a read, resolving a read fault if needed.
                let t: KvmTranslation = crate::read_user(arg)?;
                let t = this.vm.mmu.translate(&this.vm, t.linear_address)?;
                crate::write_user(arg, &t).map(|()| 0)
            }
            _ => Err(ENOTTY),
        }
    }

    fn mmap(&self, vma: &VmaNew) -> Result {
        // Only into the creator's address space, like the ioctls: kvm_run
        // is the vCPU's channel to km, not to a forked child or a process
        // that received the fd. (fork cannot copy it: VM_DONTCOPY below.)
        self.vm.check_mm(vma.mm())?;
        // SAFETY: `vma` is valid for this call (`VmaNew`'s invariant) and
        // `vm_pgoff` is set by mmap_region() before the driver is called and
        // not changed concurrently while the VMA is being created.
        let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff };
        if pgoff != 0 || vma.end() - vma.start() != MMAP_SIZE {
            return Err(EINVAL);
        }
        // Never executable: the anon-inode mount is noexec, so mmap() has
        // already refused PROT_EXEC and cleared VM_MAYEXEC. A fork()ed child
        // must not share the page.
        vma.set_dontcopy();
        vma.set_dontexpand();
        vma.set_mixedmap().vm_insert_page(vma.start(), &self.run)
    }
}
