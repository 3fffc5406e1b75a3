// SPDX-License-Identifier: GPL-2.0

//! A VM: its memory slots, its vCPU ids, its guest page tables and the
//! address space it belongs to.

use crate::{
    abi::{self, KvmUserspaceMemoryRegion},
    fd::{self, FdObject},
    guest_mode,
    mmu::GuestMmu,
    vcpu::Vcpu,
};
use core::{
    ptr::{self, NonNull},
    sync::atomic::{AtomicU32, Ordering},
};
use kernel::{
    bindings,
    ffi::c_void,
    mm::{virt::VmaNew, Mm, MmWithUser},
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{aref::ARef, Arc, ArcBorrow, Mutex},
};

const PAGE: u64 = PAGE_SIZE as u64;

/// Exclusive end of the addresses a slot may use, guest and host alike.
/// Under kkm the payload runs in ring 3 at its guest addresses (GVA == GPA),
/// so both must be user addresses of 4-level paging: TASK_SIZE_MAX.
pub(crate) const USER_ADDR_END: u64 = (1 << 47) - PAGE;

/// KVM's per-slot limit (KVM_MEM_MAX_NR_PAGES), kept so that a region KVM
/// refuses is refused here too.
const MAX_SLOT_PAGES: u64 = (1 << 31) - 1;

/// The caller's address space, `None` for a kernel thread.
///
/// Read by C (`get_task_mm`), not with the kernel crate's `Task::mm()`, which
/// reads `task_struct` through bindgen's view of its layout: on the test
/// kernel that view is 48 bytes off (`mm` at 0x360 instead of C's 0x390), so
/// `Task::mm()` returned a word inside the task itself, and a VM took
/// `mmgrab` on it.
pub(crate) fn current_mm() -> Option<ARef<MmWithUser>> {
    let task = kernel::current!().as_ptr();
    // SAFETY: `task` is the current task, alive for this call; get_task_mm
    // takes the task lock itself and returns its mm with one `mmget`
    // reference, or NULL (kernel thread, or a task past exit_mm).
    let mm = unsafe { bindings::get_task_mm(task) };
    // SAFETY: a non-NULL `mm` carries the `mmget` reference get_task_mm took
    // for us, which the `ARef` now owns and gives back with `mmput`.
    NonNull::new(mm).map(|mm| unsafe { ARef::from_raw(mm.cast()) })
}

/// One memory slot: guest range [gpa, gpa + size) backed by the creator's
/// memory at [uaddr, uaddr + size).
#[derive(Clone, Copy)]
pub(crate) struct MemSlot {
    pub(crate) id: u32,
    pub(crate) gpa: u64,
    pub(crate) size: u64,
    pub(crate) uaddr: u64,
}

impl MemSlot {
    fn overlaps(&self, gpa: u64, end: u64) -> bool {
        gpa < self.gpa + self.size && self.gpa < end
    }
}

struct VmState {
    slots: KVec<MemSlot>,
    vcpu_ids: KVec<u32>,
}

#[pin_data]
pub(crate) struct Vm {
    /// First field, so dropped first: it unregisters the mmu notifier,
    /// whose callbacks reach the rest of the VM (`of_mmu`).
    #[pin]
    pub(crate) mmu: GuestMmu,
    /// The address space of the creator. Held by `mmgrab` (not `mmget`), so
    /// a VM fd does not keep the address space alive, only identifiable.
    mm: ARef<Mm>,
    /// Per CPU: how many of this VM's vCPUs are in guest mode there.
    running: KVec<AtomicU32>,
    #[pin]
    state: Mutex<VmState>,
}

impl Vm {
    /// Everything a VM allocates is charged to the caller's memory cgroup
    /// (`GFP_KERNEL_ACCOUNT`), as KVM does.
    pub(crate) fn new() -> Result<Arc<Self>> {
        // A kernel thread has no user memory to give a VM.
        let mm: ARef<Mm> = ARef::from(&**current_mm().ok_or(EINVAL)?);
        let mmu = GuestMmu::new(mm.clone())?;
        // SAFETY: `nr_cpu_ids` is fixed after boot.
        let cpus = unsafe { bindings::nr_cpu_ids } as usize;
        let mut running = KVec::with_capacity(cpus, GFP_KERNEL_ACCOUNT)?;
        for _ in 0..cpus {
            running.push(AtomicU32::new(0), GFP_KERNEL_ACCOUNT)?;
        }
        let vm = Arc::pin_init(
            try_pin_init!(Self {
                mmu <- mmu,
                mm,
                running,
                state <- new_mutex!(VmState { slots: KVec::new(), vcpu_ids: KVec::new() }),
            }),
            GFP_KERNEL_ACCOUNT,
        )?;
        vm.mmu.register()?;
        // The switcher's pages and every CPU's area, as in every root.
        guest_mode::supervisor_pages(|va, pfn, w, x| vm.mmu.map_supervisor(va, pfn, w, x))?;
        Ok(vm)
    }

    /// The VM that holds `mmu`.
    pub(crate) fn of_mmu(mmu: &GuestMmu) -> &Self {
        let mmu = core::ptr::from_ref(mmu).cast_mut();
        // SAFETY: a GuestMmu is only ever created as the `mmu` field of a
        // `Vm` (in `Vm::new`), so the containing `Vm` lives at least as
        // long as the borrow of its field.
        unsafe { &*kernel::container_of!(mmu, Self, mmu) }
    }

    /// The per-CPU counts of this VM's vCPUs in guest mode, which
    /// `guest_mode::run` keeps.
    pub(crate) fn running(&self) -> &[AtomicU32] {
        &self.running
    }

    /// Makes every vCPU of this VM that is in guest mode leave it, and
    /// returns once each has, so that no CPU keeps a guest translation the
    /// caller has just removed: an IPI to each CPU counted in `running`,
    /// waiting for its handler, which runs on the host side of the exit. A
    /// vCPU that enters later sees the caller's change (every entry flushes
    /// the guest PCID). Does not sleep (it spins for the IPIs); interrupts
    /// must be on (mmu notifier callbacks call it).
    pub(crate) fn kick_all_running(&self) {
        for (cpu, n) in self.running.iter().enumerate() {
            // Pairs with the locked increment before entry: a vCPU not
            // seen here enters after the caller's changes are visible.
            if n.load(Ordering::SeqCst) != 0 {
                // SAFETY: `cpu` < nr_cpu_ids; `kick` ignores its argument;
                // the caller has interrupts on, so waiting cannot deadlock.
                unsafe {
                    bindings::smp_call_function_single(
                        cpu as i32,
                        Some(kick),
                        ptr::null_mut(),
                        true,
                    )
                };
            }
        }
    }

    /// Like KVM, VM and vCPU fds are usable only by the process that created
    /// the VM: slots name its addresses. Another process (e.g. a forked
    /// child) gets EIO.
    pub(crate) fn check_caller(&self) -> Result {
        let mm = current_mm().ok_or(EIO)?;
        self.check_mm(&mm)
    }

    /// EIO unless `mm` is the creator's address space.
    pub(crate) fn check_mm(&self, mm: &Mm) -> Result {
        if mm.as_raw() == self.mm.as_raw() {
            Ok(())
        } else {
            Err(EIO)
        }
    }

    fn set_memory_region(&self, r: &KvmUserspaceMemoryRegion) -> Result {
        // Upper 16 bits: address space id; x86 KVM has 2 (SMM), kkm one.
        let (as_id, id) = (r.slot >> 16, r.slot & 0xffff);
        if as_id != 0 || id >= crate::max_memslots() {
            return Err(EINVAL);
        }
        // Neither dirty logging nor read-only slots are implemented.
        if r.flags != 0 {
            return Err(EINVAL);
        }
        let mut st = self.state.lock();
        let existing = st.slots.iter().position(|s| s.id == id);

        if r.memory_size == 0 {
            // Deletion of a slot that does not exist is an error in KVM too.
            let i = existing.ok_or(EINVAL)?;
            st.slots.remove(i).map_err(|_| EINVAL)?;
            self.mmu.set_slot(id, None);
            return Ok(());
        }

        let aligned = [r.memory_size, r.guest_phys_addr, r.userspace_addr]
            .iter()
            .all(|v| v % PAGE == 0);
        if !aligned || r.memory_size / PAGE > MAX_SLOT_PAGES {
            return Err(EINVAL);
        }
        let end_ok =
            |start: u64| matches!(start.checked_add(r.memory_size), Some(e) if e <= USER_ADDR_END);
        if !end_ok(r.guest_phys_addr) || !end_ok(r.userspace_addr) {
            return Err(EINVAL);
        }
        let gpa_end = r.guest_phys_addr + r.memory_size;
        if let Some(i) = existing {
            // As in KVM, an existing slot may move in guest memory but keep
            // its backing and size.
            let old = st.slots[i];
            if old.uaddr != r.userspace_addr || old.size != r.memory_size {
                return Err(EINVAL);
            }
        }
        if st
            .slots
            .iter()
            .any(|s| s.id != id && s.overlaps(r.guest_phys_addr, gpa_end))
        {
            return Err(EEXIST);
        }
        let slot = MemSlot {
            id,
            gpa: r.guest_phys_addr,
            size: r.memory_size,
            uaddr: r.userspace_addr,
        };
        match existing {
            Some(i) => st.slots[i] = slot,
            None => {
                self.mmu.reserve_slot()?;
                st.slots.push(slot, GFP_KERNEL_ACCOUNT)?;
            }
        }
        self.mmu.set_slot(id, Some(slot));
        Ok(())
    }

    fn create_vcpu(this: ArcBorrow<'_, Self>, arg: usize) -> Result<isize> {
        let id = u32::try_from(arg).map_err(|_| EINVAL)?;
        if id >= crate::max_vcpus() {
            return Err(EINVAL);
        }
        // Held until the fd exists, so two callers cannot race on one id.
        let mut st = this.state.lock();
        if st.vcpu_ids.contains(&id) {
            return Err(EEXIST);
        }
        let vcpu = Vcpu::new(id, this.into())?;
        // vCPU ids stay taken for the VM's life, as in KVM.
        st.vcpu_ids.push(id, GFP_KERNEL_ACCOUNT)?;
        fd::install(vcpu).inspect_err(|_| {
            st.vcpu_ids.pop();
        })
    }
}

/// The IPI of `kick_all_running`: being taken is all it has to do.
extern "C" fn kick(_info: *mut c_void) {}

impl FdObject for Vm {
    const NAME: &'static CStr = c"kkm-vm";

    fn ioctl(this: ArcBorrow<'_, Self>, cmd: u32, arg: usize) -> Result<isize> {
        this.check_caller()?;
        match cmd {
            abi::KVM_SET_USER_MEMORY_REGION => {
                this.set_memory_region(&crate::read_user(arg)?).map(|()| 0)
            }
            abi::KVM_CREATE_VCPU => Self::create_vcpu(this, arg),
            abi::KVM_CHECK_EXTENSION => Ok(crate::check_extension(arg)),
            _ => Err(ENOTTY),
        }
    }

    fn mmap(&self, _vma: &VmaNew) -> Result {
        // A VM fd has nothing to map (KVM's has no mmap either).
        Err(ENODEV)
    }
}
