//! Guest memory (kkm's page tables and mmu notifier), observed through
//! KVM_TRANSLATE, which on kkm means "the translation the guest gets for a
//! read at that address" (docs/kkm.md): a present entry is reported as it
//! is; a missing one is resolved as a read fault of the guest would be.
//!
//! That a notifier removed an entry shows in one of two ways: the address
//! no longer translates (its host memory is gone or inaccessible), or the
//! next translation has to fault the page in on the host again, which
//! counts as a minor fault of this process (/proc/self/stat); a stale entry
//! would be reported without any host fault.

use super::{in_child, kvm_err, map, region, set_region, unmap, Report, MIB, PAGE};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};

const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;
const ANON: i32 = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
/// Where the tests put their slot in guest memory; its host memory is
/// elsewhere (kkm does not need GVA == host address, only GVA == GPA).
const GPA: u64 = 64 * MIB;
const SLOT_LEN: usize = 4 * MIB as usize;
/// Pages per batch in the tests that count host faults: far more than the
/// faults the test program itself could take by accident in between.
const BATCH: usize = 128;

/// (valid, writeable, usermode, physical address) or the errno.
type Seen = Result<(u8, u8, u8, u64), i32>;

fn translate(vcpu: &VcpuFd, gva: u64) -> Seen {
    kvm_err(vcpu.translate_gva(gva)).map(|t| (t.valid, t.writeable, t.usermode, t.physical_address))
}

fn valid(vcpu: &VcpuFd, gva: u64) -> bool {
    matches!(translate(vcpu, gva), Ok((1, _, 1, _)))
}

/// Minor faults of this process so far (/proc/self/stat field 10).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_comm.split_whitespace().nth(7).and_then(|f| f.parse().ok()).unwrap_or(0)
}

/// Host faults taken while translating the first `BATCH` pages at `gpa`,
/// and whether they all were valid.
fn translate_batch(vcpu: &VcpuFd, gpa: u64) -> (u64, bool) {
    let before = minor_faults();
    let all = (0..BATCH as u64).all(|i| valid(vcpu, gpa + i * PAGE as u64));
    (minor_faults() - before, all)
}

fn madvise(p: *mut u8, len: usize, advice: i32) -> i32 {
    // SAFETY: `p` and `len` lie inside a mapping this test made and still
    // holds; no Rust reference points into it.
    unsafe { libc::madvise(p.cast(), len, advice) }
}

fn mprotect(p: *mut u8, len: usize, prot: i32) -> i32 {
    // SAFETY: as for `madvise`.
    unsafe { libc::mprotect(p.cast(), len, prot) }
}

/// The paging depth the kernel runs: 5 when /proc/cpuinfo lists la57.
fn kernel_levels() -> u32 {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = info.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    if flags.split_whitespace().any(|f| f == "la57") {
        5
    } else {
        4
    }
}

/// The depth the kernel should run: 5-level where the CPU offers LA57
/// (CPUID.7.0:ECX[16]) unless the command line says `no5lvl`.
fn expected_levels() -> u32 {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let la57 = std::arch::x86_64::__cpuid_count(7, 0).ecx & (1 << 16) != 0;
    if la57 && !cmdline.split_whitespace().any(|w| w == "no5lvl") {
        5
    } else {
        4
    }
}

pub(super) fn run(t: &mut Report, kvm: &Kvm, notifier: bool) {
    let levels = kernel_levels();
    let want = expected_levels();
    t.check(&format!("host paging is {want}-level (guest tables follow it)"), levels == want, levels);
    let (Some(vm), Some(mem)) = (
        t.ok("guest memory: KVM_CREATE_VM", kvm_err(kvm.create_vm())),
        t.ok("guest memory: backing", map(SLOT_LEN, RW, ANON, -1, 0)),
    ) else {
        return;
    };
    let r = set_region(&vm, region(0, GPA, SLOT_LEN as u64, mem as u64, 0));
    let vcpu = t.ok("guest memory: slot and vCPU", r.and_then(|()| kvm_err(vm.create_vcpu(0))));
    if let Some(vcpu) = vcpu {
        if notifier {
            translations(t, &vm, &vcpu, mem);
            notifier_zaps(t, &vcpu, mem);
            truncation(t, &vm, &vcpu);
            slot_changes(t, &vm, &vcpu, mem);
        } else {
            // Without CONFIG_MMU_NOTIFIER kkm cannot learn that a page
            // went away, so it maps nothing.
            t.errno("KVM_TRANSLATE without CONFIG_MMU_NOTIFIER", translate(&vcpu, GPA), libc::EOPNOTSUPP);
        }
    }
    drop(vm);
    unmap(mem, SLOT_LEN);
    if notifier {
        many_vms(t, kvm);
        exit_with_vm(t);
    }
}

fn translations(t: &mut Report, vm: &VmFd, vcpu: &VcpuFd, mem: *mut u8) {
    let r = translate(vcpu, GPA);
    t.check("KVM_TRANSLATE in a slot: itself, valid, user, read-only after a read", r == Ok((1, 0, 1, GPA)), r);
    let r = translate(vcpu, GPA + 0x1234);
    t.check("KVM_TRANSLATE keeps the offset in the page", r == Ok((1, 0, 1, GPA + 0x1234)), r);
    // SAFETY: `mem` maps SLOT_LEN writable bytes; the write makes the page
    // present and writable on the host.
    unsafe { mem.add(2 * PAGE).write_volatile(7) };
    let r = translate(vcpu, GPA + 2 * PAGE as u64);
    t.check("a page written by km still maps read-only on a read", r == Ok((1, 0, 1, GPA + 2 * PAGE as u64)), r);
    let last = GPA + SLOT_LEN as u64 - PAGE as u64;
    t.check("KVM_TRANSLATE of the slot's last page", valid(vcpu, last), translate(vcpu, last));
    for (name, gva) in [
        ("below the slot", GPA - PAGE as u64),
        ("just past the slot", GPA + SLOT_LEN as u64),
        ("at 0", 0),
        ("at the top of the user half", (1 << 47) - PAGE as u64),
        ("in the kernel half", 0xffff_8880_0000_0000),
        ("non-canonical", 0x0000_8000_0000_0000),
    ] {
        let r = translate(vcpu, gva);
        t.check(&format!("KVM_TRANSLATE {name}: not valid"), matches!(r, Ok((0, 0, 0, _))), r);
    }
    // Another slot whose backing is PROT_NONE: in a slot, yet no access.
    if let Ok(p) = map(2 * PAGE, libc::PROT_NONE, ANON, -1, 0) {
        let r = set_region(vm, region(1, 2 * GPA, 2 * PAGE as u64, p as u64, 0));
        let seen = translate(vcpu, 2 * GPA);
        t.check("KVM_TRANSLATE of PROT_NONE backing: not valid", r.is_ok() && matches!(seen, Ok((0, ..))), seen);
        let _ = set_region(vm, region(1, 0, 0, 0, 0));
        unmap(p, 2 * PAGE);
    }
    let r = kvm_err(vcpu.translate_gva(GPA).map(|_| ()));
    let bad = super::ioctl_val(std::os::fd::AsRawFd::as_raw_fd(vcpu), kkm_uapi::KVM_TRANSLATE, 8);
    t.check("KVM_TRANSLATE through kvm-ioctls", r.is_ok(), r);
    t.errno("KVM_TRANSLATE from a bad address", bad, libc::EFAULT);
}

/// Each host change km can make to slot memory removes the guest entries.
fn notifier_zaps(t: &mut Report, vcpu: &VcpuFd, mem: *mut u8) {
    let page = |i: usize| GPA + (i * PAGE) as u64;
    // SAFETY: inside the SLOT_LEN bytes of `mem`.
    let host = |i: usize| unsafe { mem.add(i * PAGE) };

    // munmap (then a new mapping at the same place: a stale entry would
    // still point at the old page; the new one is PROT_NONE, so the
    // address must stop translating).
    let i = 10;
    let before = valid(vcpu, page(i));
    unmap(host(i), PAGE);
    let gone = !valid(vcpu, page(i));
    // SAFETY: maps one page over the hole just made in our own mapping.
    let p = unsafe { libc::mmap(host(i).cast(), PAGE, libc::PROT_NONE, libc::MAP_FIXED | ANON, -1, 0) };
    let back = p == host(i).cast();
    let still_gone = !valid(vcpu, page(i));
    let again = mprotect(host(i), PAGE, RW) == 0 && valid(vcpu, page(i));
    t.check(
        "munmap of slot memory removes the entry; mapped again it translates",
        before && gone && back && still_gone && again,
        (before, gone, back, still_gone, again),
    );

    // mprotect: PROT_NONE removes the entry, read access brings it back.
    let i = 20;
    let before = valid(vcpu, page(i));
    let none = mprotect(host(i), PAGE, libc::PROT_NONE) == 0 && !valid(vcpu, page(i));
    let read = mprotect(host(i), PAGE, libc::PROT_READ) == 0 && valid(vcpu, page(i));
    let _ = mprotect(host(i), PAGE, RW);
    t.check("mprotect(PROT_NONE) of slot memory removes the entry", before && none && read, (before, none, read));

    // madvise(DONTNEED): the pages stay accessible, so the sign is that
    // every page has to be faulted in on the host again.
    let first = 64;
    // SAFETY: inside the SLOT_LEN bytes of `mem`.
    (0..BATCH).for_each(|i| unsafe { host(first + i).write_volatile(1) });
    let (_, mapped) = translate_batch(vcpu, page(first));
    let (faults_kept, kept) = translate_batch(vcpu, page(first));
    t.check(
        "entries stay without host faults while nothing changes",
        mapped && kept && faults_kept < BATCH as u64,
        (mapped, kept, faults_kept),
    );
    if madvise(host(first), BATCH * PAGE, libc::MADV_DONTNEED) == 0 {
        let (faults, valid_after) = translate_batch(vcpu, page(first));
        t.check(
            "madvise(DONTNEED) of slot memory removes the entries (each page faults in again)",
            valid_after && faults >= BATCH as u64,
            (valid_after, faults),
        );
    } else if super::errno() == libc::ENOSYS {
        // The rig's tiny kernel has no madvise (CONFIG_ADVISE_SYSCALLS).
        println!("skip madvise(DONTNEED): this kernel has no madvise");
    } else {
        t.check("madvise(DONTNEED) of slot memory", false, super::errno());
    }

    // fork write-protects the parent's private pages for copy-on-write;
    // the entries go, and while the child shares the pages the next read
    // unshares each one on the host.
    let first = 256;
    // SAFETY: inside the SLOT_LEN bytes of `mem`.
    (0..BATCH).for_each(|i| unsafe { host(first + i).write_volatile(2) });
    let (_, mapped) = translate_batch(vcpu, page(first));
    let mut fds = [0; 2];
    // SAFETY: `fds` is an array of two ints for the new pipe.
    let piped = unsafe { libc::pipe(fds.as_mut_ptr()) } == 0;
    // SAFETY: the child only blocks on the pipe and exits with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let mut b = 0u8;
        // SAFETY: closes the child's copy of the write end (so that the
        // parent's close ends the read), reads one byte into `b`, and
        // leaves at once.
        unsafe {
            libc::close(fds[1]);
            libc::read(fds[0], (&raw mut b).cast(), 1);
            libc::_exit(0);
        }
    }
    let (faults, valid_after) = translate_batch(vcpu, page(first));
    // SAFETY: closing our pipe ends ends the child's read; then reap it.
    unsafe {
        libc::close(fds[1]);
        libc::close(fds[0]);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    t.check(
        "fork (copy-on-write) removes the entries of private slot memory",
        piped && pid > 0 && mapped && valid_after && faults >= BATCH as u64,
        (piped, pid, mapped, valid_after, faults),
    );
}

/// Shrinking a shared file mapped into a slot removes its pages from every
/// mapping (the path of truncate and hole punching): the entries go, and
/// after the file grows back each page has to be faulted in again.
fn truncation(t: &mut Report, vm: &VmFd, vcpu: &VcpuFd) {
    let len = BATCH * PAGE;
    let Ok(file) = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open("kkm-shared")
    else {
        return t.check("shared file for a slot", false, super::errno());
    };
    let _ = std::fs::remove_file("kkm-shared");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let Some(p) = file.set_len(len as u64).ok().and_then(|()| map(len, RW, libc::MAP_SHARED, fd, 0).ok()) else {
        return t.check("shared file for a slot mapped", false, super::errno());
    };
    let gpa = 5 * GPA;
    // SAFETY: `p` maps `len` writable bytes of the file.
    (0..BATCH).for_each(|i| unsafe { p.add(i * PAGE).write_volatile(3) });
    let slot = set_region(vm, region(1, gpa, len as u64, p as u64, 0)).is_ok();
    let (_, mapped) = translate_batch(vcpu, gpa);
    let cut = file.set_len(0).is_ok();
    let gone = !valid(vcpu, gpa);
    let grown = file.set_len(len as u64).is_ok();
    let (faults, again) = translate_batch(vcpu, gpa);
    t.check(
        "truncating a shared file in a slot removes the entries",
        slot && mapped && cut && gone && grown && again && faults >= BATCH as u64,
        (slot, mapped, cut, gone, grown, again, faults),
    );
    let _ = set_region(vm, region(1, 0, 0, 0, 0));
    unmap(p, len);
}

/// Deleting or moving a slot removes what it mapped.
fn slot_changes(t: &mut Report, vm: &VmFd, vcpu: &VcpuFd, mem: *mut u8) {
    let (a, b) = (3 * GPA, 4 * GPA);
    let len = 16 * PAGE as u64;
    let added = set_region(vm, region(2, a, len, mem as u64, 0)).is_ok() && valid(vcpu, a + PAGE as u64);
    let moved = set_region(vm, region(2, b, len, mem as u64, 0)).is_ok();
    let (old, new) = (valid(vcpu, a + PAGE as u64), valid(vcpu, b + PAGE as u64));
    t.check("moving a slot unmaps its old guest range", added && moved && !old && new, (added, moved, old, new));
    let deleted = set_region(vm, region(2, 0, 0, 0, 0)).is_ok();
    let r = translate(vcpu, b + PAGE as u64);
    t.check("deleting a slot unmaps it", deleted && matches!(r, Ok((0, ..))), (deleted, r));
}

fn mem_free_kib() -> i64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let line = info.lines().find(|l| l.starts_with("MemFree:")).unwrap_or("");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(-1)
}

/// VMs that map pages spread over many page tables, created and destroyed
/// over and over: every table page must be freed.
fn many_vms(t: &mut Report, kvm: &Kvm) {
    const VMS: usize = 200;
    /// One page every 2 MiB: a page table each, ~34 table pages a VM.
    const SPREAD: usize = 32;
    let len = SPREAD * 2 * MIB as usize;
    let flags = ANON | libc::MAP_NORESERVE;
    let Some(mem) = t.ok("many VMs: backing", map(len, libc::PROT_READ, flags, -1, 0)) else {
        return;
    };
    let run = |n: usize| -> bool {
        (0..n).all(|_| {
            let Ok(vm) = kvm.create_vm() else {
                return false;
            };
            let Ok(vcpu) =
                set_region(&vm, region(0, GPA, len as u64, mem as u64, 0)).and_then(|()| kvm_err(vm.create_vcpu(0)))
            else {
                return false;
            };
            (0..SPREAD).all(|i| valid(&vcpu, GPA + (i as u64) * 2 * MIB))
        })
    };
    // A first round warms the allocator's caches.
    let warm = run(10);
    let before = mem_free_kib();
    let ok = run(VMS);
    let lost = before - mem_free_kib();
    // A leak of the tables would be about 200 * 34 pages = 27 MiB.
    t.check(
        &format!("{VMS} VMs with {SPREAD} page tables each created and destroyed: no memory lost"),
        warm && ok && lost < 4096,
        (warm, ok, lost),
    );
    unmap(mem, len);
}

/// A process that exits with a VM whose tables hold entries: the notifier's
/// release empties them before the VM itself goes.
fn exit_with_vm(t: &mut Report) {
    let status = in_child(|| {
        let Ok(kvm) = Kvm::new_with_path(super::DEV) else {
            return false;
        };
        let Ok(mem) = map(SLOT_LEN, RW, ANON, -1, 0) else {
            return false;
        };
        let Ok(vm) = kvm.create_vm() else {
            return false;
        };
        let Ok(vcpu) =
            set_region(&vm, region(0, GPA, SLOT_LEN as u64, mem as u64, 0)).and_then(|()| kvm_err(vm.create_vcpu(0)))
        else {
            return false;
        };
        let mapped = valid(&vcpu, GPA);
        std::mem::forget((kvm, vm, vcpu));
        mapped
    });
    t.check("exit with a VM that maps memory", status == Some(0), status);
}
