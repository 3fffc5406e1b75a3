// SPDX-License-Identifier: GPL-2.0

//! Guest memory: the page tables kkm owns for a VM (the guest's CR3 is
//! ignored). GVA == GPA; entries are filled on guest page faults from the
//! VM's memory slots and removed by an mmu notifier on the creator's address
//! space, with KVM's invalidate-sequence technique closing the race between
//! the two. docs/kkm.md, "Guest memory", has the whole picture.

use crate::{
    abi::KvmTranslation,
    page_table::{
        direct_map_phys, entry_pfn, is_kernel_half, leaf_entry, no_exec_bit, Spare, Tables,
        ACCESSED, DIRTY, NO_EXEC, PRESENT, USER, WRITABLE,
    },
    vm::{self, MemSlot, Vm, USER_ADDR_END},
};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::{
    bindings,
    mm::{Mm, MmWithUser},
    new_spinlock,
    page::PAGE_SIZE,
    pr_warn_once,
    prelude::*,
    sync::{aref::ARef, SpinLock},
    types::Opaque,
};

const PAGE: u64 = PAGE_SIZE as u64;

// The x86 #PF error code.
const PF_WRITE: u32 = 1 << 1;
const PF_USER: u32 = 1 << 2;
const PF_RSVD: u32 = 1 << 3;
const PF_FETCH: u32 = 1 << 4;
const PF_PK: u32 = 1 << 5;
const PF_SHSTK: u32 = 1 << 6;
const PF_SGX: u32 = 1 << 15;
/// Faults no entry of ours can resolve: a reserved bit (a bug in these
/// tables), a protection key the payload's PKRU denies, a shadow-stack
/// access, SGX. km turns them into the payload's signal.
const PF_UNRESOLVABLE: u32 = PF_RSVD | PF_PK | PF_SHSTK | PF_SGX;

/// A fault at a page whose entry already allows the access made no progress
/// (the CPU drops the faulting translation before raising #PF, so a retry
/// walks our entry afresh). After this many in a row at one page with one
/// error code, `handle_fault` reports the fault to km instead of letting the
/// guest retry forever.
pub(crate) const MAX_REPEATED_FAULTS: u32 = 8;

/// Page frame numbers above this do not fit an entry (52 physical bits).
const MAX_PFN: u64 = (1 << 40) - 1;

/// What `mmu_notifier_register` gets: the notifier, or nothing on kernels
/// without CONFIG_MMU_NOTIFIER, where kkm maps no guest memory.
#[cfg(CONFIG_MMU_NOTIFIER)]
type NotifierSlot = bindings::mmu_notifier;
#[cfg(not(CONFIG_MMU_NOTIFIER))]
type NotifierSlot = ();

struct Inner {
    tables: Tables,
    /// The VM's slots sorted by guest address: the VM's own list is behind
    /// a mutex, and the notifier may not sleep.
    slots: KVec<MemSlot>,
    /// Invalidations between their start and end callbacks.
    in_progress: u32,
    /// The creator's address space has been torn down: nothing is mapped
    /// again.
    released: bool,
    /// The last fault whose access the entry in place already allowed:
    /// (page, error code, times in a row).
    repeated: (u64, u32, u32),
}

impl Inner {
    /// The host address behind guest page `gpa`, from the slot holding it.
    fn host_address(&self, gpa: u64) -> Option<u64> {
        let i = self.slots.partition_point(|s| s.gpa <= gpa);
        let s = self.slots.get(i.checked_sub(1)?)?;
        (gpa - s.gpa < s.size).then(|| s.uaddr + (gpa - s.gpa))
    }

    /// The present user entry for `gva`, if any.
    fn user_entry(&self, gva: u64) -> Option<u64> {
        if gva >= USER_ADDR_END {
            return None;
        }
        let e = self.tables.leaf(gva)?.load(Ordering::Relaxed);
        (e & (PRESENT | USER) == PRESENT | USER).then_some(e)
    }
}

/// The guest page tables of one VM; a `Vm` holds one as its `mmu` field.
#[pin_data(PinnedDrop)]
pub(crate) struct GuestMmu {
    /// The creator's address space (`mmgrab`), where the slots' host
    /// addresses live.
    mm: ARef<Mm>,
    root_phys: u64,
    levels: u32,
    #[pin]
    inner: SpinLock<Inner>,
    /// KVM's `mmu_invalidate_seq`: bumped under `inner`'s lock when an
    /// invalidation ends and when a slot changes. A fault reads it before
    /// pinning its page and installs the entry only if it is unchanged and
    /// no invalidation is in progress, so a page that an invalidation is
    /// taking away never gets mapped.
    seq: AtomicU64,
    #[pin]
    notifier: Opaque<NotifierSlot>,
    /// The notifier is registered (so it must be unregistered).
    registered: AtomicBool,
}

// SAFETY: after `register` the notifier struct belongs to the mm core,
// which serializes its own use of it; `register` and `drop` run once each.
// Everything else is behind the spinlock or atomic.
unsafe impl Send for GuestMmu {}
// SAFETY: as for Send: no field is reachable from `&GuestMmu` without the
// spinlock, an atomic, or the mm core's locking.
unsafe impl Sync for GuestMmu {}

impl GuestMmu {
    /// Empty tables for the address space `mm`; `register` must follow once
    /// the VM is in place.
    pub(crate) fn new(mm: ARef<Mm>) -> Result<impl PinInit<Self, Error>> {
        let tables = Tables::new()?;
        Ok(try_pin_init!(Self {
            mm,
            root_phys: tables.root_phys(),
            levels: tables.levels(),
            inner <- new_spinlock!(Inner {
                tables,
                slots: KVec::new(),
                in_progress: 0,
                released: false,
                repeated: (0, 0, 0),
            }),
            seq: AtomicU64::new(0),
            notifier: notifier_init(),
            registered: AtomicBool::new(false),
        }))
    }

    /// Physical address of the top-level table, for CR3.
    pub(crate) fn root_phys(&self) -> u64 {
        self.root_phys
    }

    /// Starts following the creator's address space. Called by the creator
    /// (the address space has users) before any fd of the VM exists.
    #[cfg(CONFIG_MMU_NOTIFIER)]
    pub(crate) fn register(&self) -> Result {
        // SAFETY: `self.notifier` is initialized with `NOTIFIER_OPS` and
        // pinned (a GuestMmu only exists inside its pinned `Vm`, and is
        // `!Unpin`); `self.mm` is alive (mmgrab) and has users, as the
        // caller is one of its tasks. It stays registered until `drop`.
        kernel::error::to_result(unsafe {
            bindings::mmu_notifier_register(self.notifier.get(), self.mm.as_raw())
        })?;
        self.registered.store(true, Ordering::Release);
        Ok(())
    }

    /// Without CONFIG_MMU_NOTIFIER nothing could tell kkm that a page went
    /// away: no guest memory is mapped (`handle_fault` fails).
    #[cfg(not(CONFIG_MMU_NOTIFIER))]
    pub(crate) fn register(&self) -> Result {
        Ok(())
    }

    /// Makes every vCPU in guest mode leave it, so that none keeps a
    /// translation just removed from the tables.
    fn kick(&self) {
        Vm::of_mmu(self).kick_all_running();
    }

    /// Grows the slot copy so that `set_slot` can add one without
    /// allocating under the spinlock. The caller holds the VM's state mutex
    /// (no other writer).
    pub(crate) fn reserve_slot(&self) -> Result {
        let (len, cap) = {
            let g = self.inner.lock();
            (g.slots.len(), g.slots.capacity())
        };
        if len < cap {
            return Ok(());
        }
        let mut bigger = KVec::with_capacity((cap * 2).max(16), GFP_KERNEL_ACCOUNT)?;
        let old = {
            let mut g = self.inner.lock();
            // Within the new capacity: allocates nothing.
            bigger.extend_from_slice(&g.slots, GFP_ATOMIC)?;
            core::mem::replace(&mut g.slots, bigger)
        };
        drop(old);
        Ok(())
    }

    /// Replaces slot `id` by `new` (`None`: deletes it); the old slot's
    /// guest range is unmapped. The caller holds the VM's state mutex, has
    /// checked that `new` overlaps no other slot and, when adding a slot,
    /// called `reserve_slot`.
    pub(crate) fn set_slot(&self, id: u32, new: Option<MemSlot>) {
        let zapped = {
            let mut g = self.inner.lock();
            let mut zapped = false;
            if let Some(i) = g.slots.iter().position(|s| s.id == id) {
                if let Ok(old) = g.slots.remove(i) {
                    zapped = g.tables.zap(old.gpa, old.gpa + old.size);
                }
            }
            if let Some(new) = new {
                let i = g.slots.partition_point(|s| s.gpa < new.gpa);
                // Cannot fail: reserved by the caller, `i` <= len.
                let _ = g.slots.insert_within_capacity(i, new);
            }
            // A fault that looked up the old slot must not install.
            self.seq.fetch_add(1, Ordering::Release);
            zapped
        };
        if zapped {
            self.kick();
        }
    }

    /// Maps one page at kernel virtual `va` (the same address as in the
    /// host) supervisor-only, never global: the switcher's code and per-CPU
    /// pages. Idempotent; EEXIST if `va` already maps something else,
    /// EINVAL outside the kernel half or for an impossible `pfn`. May sleep.
    pub(crate) fn map_supervisor(&self, va: usize, pfn: u64, writable: bool, exec: bool) -> Result {
        let va = va as u64;
        if va % PAGE != 0 || !is_kernel_half(self.levels, va) || pfn > MAX_PFN {
            return Err(EINVAL);
        }
        let mut flags = PRESENT | ACCESSED | DIRTY;
        if writable {
            flags |= WRITABLE;
        }
        if !exec {
            flags |= no_exec_bit();
        }
        let entry = leaf_entry(pfn, flags);
        let mut spare = Spare::new();
        spare.fill(self.levels)?;
        let mut g = self.inner.lock();
        // A full walk's worth of tables is in `spare`.
        let slot = g
            .tables
            .leaf_or_create(va, WRITABLE, &mut spare)
            .ok_or(ENOMEM)?;
        match slot.load(Ordering::Relaxed) {
            0 => {
                slot.store(entry, Ordering::Release);
                Ok(())
            }
            old if old == entry => Ok(()),
            _ => Err(EEXIST),
        }
    }

    /// Resolves a guest #PF at `gva` (CR2) with x86 error code `error_code`
    /// from the VM's slots. Ok(true): mapped, the guest may retry. Ok(false):
    /// `gva` is in no slot, the backing VMA does not allow the access (write
    /// to read-only, fetch from non-exec, PROT_NONE, unmapped), the fault is
    /// of a kind no entry resolves, or the same fault came back
    /// `MAX_REPEATED_FAULTS` times though its entry allowed it: km gets the
    /// exception. Runs in the vCPU thread with host state restored; sleeps.
    pub(crate) fn handle_fault(&self, vm: &Vm, gva: u64, error_code: u32) -> Result<bool> {
        if !self.registered.load(Ordering::Acquire) {
            pr_warn_once!("this kernel lacks CONFIG_MMU_NOTIFIER: kkm cannot map guest memory\n");
            return Err(EOPNOTSUPP);
        }
        // Pinning reads current->mm: it must be the creator's.
        let mm = vm::current_mm().ok_or(EIO)?;
        vm.check_mm(&mm)?;
        if error_code & PF_USER == 0 || error_code & PF_UNRESOLVABLE != 0 {
            return Ok(false);
        }
        let write = error_code & PF_WRITE != 0;
        let fetch = error_code & PF_FETCH != 0;
        let page = gva & !(PAGE - 1);
        let allows = |e: u64| {
            e & PRESENT != 0 && (!write || e & WRITABLE != 0) && (!fetch || e & NO_EXEC == 0)
        };
        let mut spare = Spare::new();
        loop {
            let seq = self.seq.load(Ordering::Acquire);
            let uaddr = {
                let mut g = self.inner.lock();
                if g.released {
                    return Ok(false);
                }
                if let Some(e) = g.user_entry(page) {
                    if allows(e) {
                        return Ok(g.note_repeat(page, error_code));
                    }
                }
                match g.host_address(page) {
                    Some(uaddr) => uaddr,
                    None => return Ok(false),
                }
            };
            let pinned = match PinnedPage::new(uaddr, write) {
                Ok(p) => p,
                Err(e) if e == EFAULT => return Ok(false),
                Err(e) => return Err(e),
            };
            // Read after pinning: an mprotect from here on finds the page
            // present and invalidates it (bumping `seq`).
            let Some(exec) = vma_executable(&mm, uaddr) else {
                return Ok(false);
            };
            if fetch && !exec {
                return Ok(false);
            }
            // Write access only for write faults: a read maps read-only even
            // where the VMA is writable, so that copy-on-write stays km's.
            let mut flags = PRESENT | USER | ACCESSED;
            if write {
                flags |= WRITABLE | DIRTY;
            }
            if !exec {
                flags |= no_exec_bit();
            }
            let pfn = pinned.pfn();
            let mut g = self.inner.lock();
            if g.released {
                return Ok(false);
            }
            if g.in_progress != 0 || self.seq.load(Ordering::Relaxed) != seq {
                // An invalidation raced: `pinned` may be the page it takes
                // away. Unpin and look again.
                drop(g);
                drop(pinned);
                if kernel::current!().signal_pending() {
                    return Err(EINTR);
                }
                continue;
            }
            let Some(slot) = g.tables.leaf_or_create(page, USER | WRITABLE, &mut spare) else {
                drop(g);
                spare.fill(self.levels)?;
                continue;
            };
            let old = slot.load(Ordering::Relaxed);
            let mut new = leaf_entry(pfn, flags);
            let stale = old & PRESENT != 0 && entry_pfn(old) != pfn;
            if old & PRESENT != 0 && !stale {
                // Another fault raced to the same page: keep what it
                // granted.
                new |= old & (WRITABLE | DIRTY);
                new &= old | !NO_EXEC;
            }
            slot.store(new, Ordering::Release);
            if g.repeated.0 == page {
                g.repeated = (0, 0, 0);
            }
            drop(g);
            drop(pinned);
            if stale {
                // Unreachable while the notifier works (the old page's
                // entry is zapped before the page changes); if it ever
                // happens, no CPU may keep the old translation.
                self.kick();
            }
            return Ok(true);
        }
    }

    /// KVM_TRANSLATE on kkm: the translation the guest gets for a read of
    /// `gva`, resolving a read fault through `handle_fault` when nothing is
    /// mapped. `physical_address` is the guest-physical address (== `gva`):
    /// host physical addresses are never shown to user space.
    pub(crate) fn translate(&self, vm: &Vm, gva: u64) -> Result<KvmTranslation> {
        let mut t = KvmTranslation {
            linear_address: gva,
            ..Default::default()
        };
        let mut entry = self.inner.lock().user_entry(gva);
        if entry.is_none() && self.handle_fault(vm, gva, PF_USER)? {
            entry = self.inner.lock().user_entry(gva);
        }
        if let Some(e) = entry {
            t.physical_address = gva;
            t.valid = 1;
            t.writeable = u8::from(e & WRITABLE != 0);
            t.usermode = 1;
        }
        Ok(t)
    }
}

impl Inner {
    /// Counts a fault whose access the entry in place allows; false once it
    /// came `MAX_REPEATED_FAULTS` times in a row (then the count restarts).
    fn note_repeat(&mut self, page: u64, error_code: u32) -> bool {
        let (p, e, n) = self.repeated;
        let n = if (p, e) == (page, error_code) {
            n + 1
        } else {
            1
        };
        if n >= MAX_REPEATED_FAULTS {
            self.repeated = (0, 0, 0);
            return false;
        }
        self.repeated = (page, error_code, n);
        true
    }
}

#[pinned_drop]
impl PinnedDrop for GuestMmu {
    fn drop(self: Pin<&mut Self>) {
        #[cfg(CONFIG_MMU_NOTIFIER)]
        if self.registered.load(Ordering::Acquire) {
            // SAFETY: registered on `self.mm` by `register`; the mm_struct
            // is kept alive by our mmgrab reference. Unregistering waits
            // until no callback runs (SRCU), so none sees the fields this
            // drop then frees.
            unsafe { bindings::mmu_notifier_unregister(self.notifier.get(), self.mm.as_raw()) };
        }
    }
}

/// The VMA behind `uaddr` allows execution; `None` if there is no VMA.
fn vma_executable(mm: &MmWithUser, uaddr: u64) -> Option<bool> {
    let guard = mm.mmap_read_lock();
    let vma = guard.vma_lookup(uaddr as usize)?;
    Some(vma.flags() & bindings::VM_EXEC != 0)
}

/// One user page pinned (FOLL_PIN) from the current address space, for as
/// long as it takes to install its entry. The entry then lives without a
/// reference, like KVM's: the notifier removes it before the page can go.
/// Pinning (not a plain reference) also makes a read of a copy-on-write
/// shared anonymous page unshare it first, so a read-only guest entry never
/// points at a page a forked child still shares.
struct PinnedPage(*mut bindings::page);

impl PinnedPage {
    /// Faults the page in as a write would when `write`, as a read
    /// otherwise. EFAULT: no VMA, or it does not allow the access.
    fn new(uaddr: u64, write: bool) -> Result<Self> {
        let flags = if write { bindings::FOLL_WRITE } else { 0 };
        let mut page = core::ptr::null_mut();
        // SAFETY: asks for one page of the current address space at a user
        // address (slots are below USER_ADDR_END) into `page`, an array of
        // one; may sleep: process context, no lock held.
        let n = unsafe { bindings::pin_user_pages_fast(uaddr as _, 1, flags as _, &mut page) };
        match n {
            1 => Ok(Self(page)),
            n if n < 0 => Err(Error::from_errno(n)),
            _ => Err(EFAULT),
        }
    }

    fn pfn(&self) -> u64 {
        // SAFETY: the page is pinned, so it exists; on x86-64 (no highmem)
        // kmap_local_page returns its direct-map address, which
        // kunmap_local releases.
        let va = unsafe { bindings::kmap_local_page(self.0) };
        let pfn = direct_map_phys(va as usize) / PAGE;
        // SAFETY: `va` came from kmap_local_page just above.
        unsafe { bindings::kunmap_local(va) };
        pfn
    }
}

impl Drop for PinnedPage {
    fn drop(&mut self) {
        // SAFETY: pinned once by `new` and unpinned once here.
        unsafe { bindings::unpin_user_page(self.0) };
    }
}

#[cfg(CONFIG_MMU_NOTIFIER)]
fn notifier_init() -> Opaque<NotifierSlot> {
    Opaque::new(bindings::mmu_notifier {
        ops: &NOTIFIER_OPS,
        ..pin_init::zeroed()
    })
}

#[cfg(not(CONFIG_MMU_NOTIFIER))]
fn notifier_init() -> Opaque<NotifierSlot> {
    Opaque::new(())
}

#[cfg(CONFIG_MMU_NOTIFIER)]
static NOTIFIER_OPS: bindings::mmu_notifier_ops = bindings::mmu_notifier_ops {
    release: Some(notifier::release),
    invalidate_range_start: Some(notifier::invalidate_range_start),
    invalidate_range_end: Some(notifier::invalidate_range_end),
    ..pin_init::zeroed()
};

/// The mmu notifier callbacks. None sleeps: they take only the mmu
/// spinlock, and the kick waits without sleeping; so they also serve
/// non-blockable invalidations (the OOM reaper).
#[cfg(CONFIG_MMU_NOTIFIER)]
mod notifier {
    use super::*;
    use kernel::ffi::c_int;

    /// # Safety
    ///
    /// `n` is the `notifier` field of a registered `GuestMmu`: callbacks
    /// run only while it is registered, and `drop` unregisters it (waiting
    /// for running callbacks) before the GuestMmu goes.
    unsafe fn mmu<'a>(n: *mut bindings::mmu_notifier) -> &'a GuestMmu {
        // SAFETY: per the contract, `n` points into a live GuestMmu, whose
        // `notifier` field it is (`Opaque` is transparent).
        unsafe { &*kernel::container_of!(n.cast::<Opaque<NotifierSlot>>(), GuestMmu, notifier) }
    }

    /// Called on munmap, mprotect, madvise(DONTNEED), copy-on-write for
    /// fork, reclaim, migration...: zaps the guest entries of every slot
    /// page in the host range, then kicks the vCPUs in guest mode.
    pub(super) unsafe extern "C" fn invalidate_range_start(
        n: *mut bindings::mmu_notifier,
        range: *const bindings::mmu_notifier_range,
    ) -> c_int {
        // SAFETY: called by the mm core for a registered notifier.
        let mmu = unsafe { mmu(n) };
        // SAFETY: the mm core passes a valid range for this call.
        let (start, end) = unsafe { ((*range).start as u64, (*range).end as u64) };
        let zapped = {
            let mut g = mmu.inner.lock();
            g.in_progress += 1;
            let Inner { tables, slots, .. } = &mut *g;
            let mut zapped = false;
            for s in slots.iter() {
                let (from, to) = (start.max(s.uaddr), end.min(s.uaddr + s.size));
                if from < to {
                    zapped |= tables.zap(s.gpa + (from - s.uaddr), s.gpa + (to - s.uaddr));
                }
            }
            zapped
        };
        if zapped {
            mmu.kick();
        }
        0
    }

    pub(super) unsafe extern "C" fn invalidate_range_end(
        n: *mut bindings::mmu_notifier,
        _range: *const bindings::mmu_notifier_range,
    ) {
        // SAFETY: called by the mm core for a registered notifier.
        let mmu = unsafe { mmu(n) };
        let mut g = mmu.inner.lock();
        // The bump comes before the end of `in_progress`, both under the
        // lock: a fault sees one or the other.
        mmu.seq.fetch_add(1, Ordering::Release);
        // Registration excludes running invalidations (mm_take_all_locks),
        // so every end has its start; saturating keeps a broken pairing
        // from becoming an overflow panic.
        g.in_progress = g.in_progress.saturating_sub(1);
    }

    /// The creator's address space is being torn down (exit, or the
    /// unregistering in `drop`): every user entry goes, none comes back.
    pub(super) unsafe extern "C" fn release(
        n: *mut bindings::mmu_notifier,
        _mm: *mut bindings::mm_struct,
    ) {
        // SAFETY: called by the mm core for a registered notifier.
        let mmu = unsafe { mmu(n) };
        let zapped = {
            let mut g = mmu.inner.lock();
            g.released = true;
            g.tables.zap(0, USER_ADDR_END)
        };
        if zapped {
            mmu.kick();
        }
    }
}
