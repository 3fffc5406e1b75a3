//! Every item kkm-uapi shares with KVM must equal the KVM uapi as published by
//! `kvm-bindings`; ioctl numbers are recomputed with vmm-sys-util's macros.

use kkm_uapi as k;
use kvm_bindings as b;
use std::mem::{offset_of, size_of};
use vmm_sys_util::{ioctl_io_nr, ioctl_ior_nr, ioctl_iow_nr, ioctl_iowr_nr};

ioctl_io_nr!(GET_API_VERSION, b::KVMIO, 0x00);
ioctl_io_nr!(CREATE_VM, b::KVMIO, 0x01);
ioctl_io_nr!(CHECK_EXTENSION, b::KVMIO, 0x03);
ioctl_io_nr!(GET_VCPU_MMAP_SIZE, b::KVMIO, 0x04);
ioctl_iowr_nr!(GET_SUPPORTED_CPUID, b::KVMIO, 0x05, b::kvm_cpuid2);
ioctl_io_nr!(CREATE_VCPU, b::KVMIO, 0x41);
ioctl_iow_nr!(SET_USER_MEMORY_REGION, b::KVMIO, 0x46, b::kvm_userspace_memory_region);
ioctl_io_nr!(RUN, b::KVMIO, 0x80);
ioctl_iowr_nr!(TRANSLATE, b::KVMIO, 0x85, b::kvm_translation);
ioctl_ior_nr!(GET_REGS, b::KVMIO, 0x81, b::kvm_regs);
ioctl_iow_nr!(SET_REGS, b::KVMIO, 0x82, b::kvm_regs);
ioctl_ior_nr!(GET_SREGS, b::KVMIO, 0x83, b::kvm_sregs);
ioctl_iow_nr!(SET_SREGS, b::KVMIO, 0x84, b::kvm_sregs);
ioctl_iowr_nr!(GET_MSRS, b::KVMIO, 0x88, b::kvm_msrs);
ioctl_iow_nr!(SET_MSRS, b::KVMIO, 0x89, b::kvm_msrs);
ioctl_ior_nr!(GET_FPU, b::KVMIO, 0x8c, b::kvm_fpu);
ioctl_iow_nr!(SET_FPU, b::KVMIO, 0x8d, b::kvm_fpu);
ioctl_iow_nr!(SET_CPUID2, b::KVMIO, 0x90, b::kvm_cpuid2);
ioctl_iow_nr!(SET_GUEST_DEBUG, b::KVMIO, 0x9b, b::kvm_guest_debug);
ioctl_ior_nr!(GET_XSAVE, b::KVMIO, 0xa4, b::kvm_xsave);
ioctl_iow_nr!(SET_XSAVE, b::KVMIO, 0xa5, b::kvm_xsave);
ioctl_ior_nr!(GET_XCRS, b::KVMIO, 0xa6, b::kvm_xcrs);
ioctl_iow_nr!(SET_XCRS, b::KVMIO, 0xa7, b::kvm_xcrs);

#[test]
fn ioctl_numbers_equal_kvm() {
    let pairs = [
        (k::KVM_GET_API_VERSION, GET_API_VERSION(), "GET_API_VERSION"),
        (k::KVM_CREATE_VM, CREATE_VM(), "CREATE_VM"),
        (k::KVM_CHECK_EXTENSION, CHECK_EXTENSION(), "CHECK_EXTENSION"),
        (k::KVM_GET_VCPU_MMAP_SIZE, GET_VCPU_MMAP_SIZE(), "GET_VCPU_MMAP_SIZE"),
        (k::KVM_GET_SUPPORTED_CPUID, GET_SUPPORTED_CPUID(), "GET_SUPPORTED_CPUID"),
        (k::KVM_CREATE_VCPU, CREATE_VCPU(), "CREATE_VCPU"),
        (k::KVM_SET_USER_MEMORY_REGION, SET_USER_MEMORY_REGION(), "SET_USER_MEMORY_REGION"),
        (k::KVM_RUN, RUN(), "RUN"),
        (k::KVM_GET_REGS, GET_REGS(), "GET_REGS"),
        (k::KVM_SET_REGS, SET_REGS(), "SET_REGS"),
        (k::KVM_GET_SREGS, GET_SREGS(), "GET_SREGS"),
        (k::KVM_TRANSLATE, TRANSLATE(), "TRANSLATE"),
        (k::KVM_SET_SREGS, SET_SREGS(), "SET_SREGS"),
        (k::KVM_GET_MSRS, GET_MSRS(), "GET_MSRS"),
        (k::KVM_SET_MSRS, SET_MSRS(), "SET_MSRS"),
        (k::KVM_GET_FPU, GET_FPU(), "GET_FPU"),
        (k::KVM_SET_FPU, SET_FPU(), "SET_FPU"),
        (k::KVM_SET_CPUID2, SET_CPUID2(), "SET_CPUID2"),
        (k::KVM_SET_GUEST_DEBUG, SET_GUEST_DEBUG(), "SET_GUEST_DEBUG"),
        (k::KVM_GET_XSAVE, GET_XSAVE(), "GET_XSAVE"),
        (k::KVM_SET_XSAVE, SET_XSAVE(), "SET_XSAVE"),
        (k::KVM_GET_XCRS, GET_XCRS(), "GET_XCRS"),
        (k::KVM_SET_XCRS, SET_XCRS(), "SET_XCRS"),
    ];
    for (ours, kvm, name) in pairs {
        assert_eq!(u64::from(ours), kvm, "KVM_{name}");
    }
}

#[test]
fn identity_ioctl_does_not_collide_with_kvm() {
    // 0xe0 is not a KVM number in any direction or size.
    assert_eq!((k::KKM_GET_IDENTITY >> 8) & 0xff, b::KVMIO);
    assert_eq!(k::KKM_GET_IDENTITY & 0xff, 0xe0);
    assert_eq!(k::KKM_IDENTITY_MAGIC.to_le_bytes(), *b"KKM1");
}

#[test]
fn constants_equal_kvm() {
    assert_eq!(k::KVMIO, b::KVMIO);
    assert_eq!(k::KVM_API_VERSION as u32, b::KVM_API_VERSION);
    let caps = [
        (k::KVM_CAP_USER_MEMORY, b::KVM_CAP_USER_MEMORY),
        (k::KVM_CAP_EXT_CPUID, b::KVM_CAP_EXT_CPUID),
        (k::KVM_CAP_NR_VCPUS, b::KVM_CAP_NR_VCPUS),
        (k::KVM_CAP_NR_MEMSLOTS, b::KVM_CAP_NR_MEMSLOTS),
        (k::KVM_CAP_SET_GUEST_DEBUG, b::KVM_CAP_SET_GUEST_DEBUG),
        (k::KVM_CAP_XSAVE, b::KVM_CAP_XSAVE),
        (k::KVM_CAP_XCRS, b::KVM_CAP_XCRS),
        (k::KVM_CAP_MAX_VCPUS, b::KVM_CAP_MAX_VCPUS),
        (k::KVM_CAP_SYNC_REGS, b::KVM_CAP_SYNC_REGS),
        (k::KVM_CAP_IMMEDIATE_EXIT, b::KVM_CAP_IMMEDIATE_EXIT),
    ];
    for (ours, kvm) in caps {
        assert_eq!(ours, kvm);
    }
    let exits = [
        (k::KVM_EXIT_UNKNOWN, b::KVM_EXIT_UNKNOWN),
        (k::KVM_EXIT_EXCEPTION, b::KVM_EXIT_EXCEPTION),
        (k::KVM_EXIT_IO, b::KVM_EXIT_IO),
        (k::KVM_EXIT_DEBUG, b::KVM_EXIT_DEBUG),
        (k::KVM_EXIT_HLT, b::KVM_EXIT_HLT),
        (k::KVM_EXIT_SHUTDOWN, b::KVM_EXIT_SHUTDOWN),
        (k::KVM_EXIT_FAIL_ENTRY, b::KVM_EXIT_FAIL_ENTRY),
        (k::KVM_EXIT_INTR, b::KVM_EXIT_INTR),
        (k::KVM_EXIT_INTERNAL_ERROR, b::KVM_EXIT_INTERNAL_ERROR),
    ];
    for (ours, kvm) in exits {
        assert_eq!(ours, kvm);
    }
    assert_eq!(k::KVM_EXIT_IO_IN as u32, b::KVM_EXIT_IO_IN);
    assert_eq!(k::KVM_EXIT_IO_OUT as u32, b::KVM_EXIT_IO_OUT);
    assert_eq!(k::KVM_SYNC_X86_REGS, b::KVM_SYNC_X86_REGS as u64);
    assert_eq!(k::KVM_SYNC_X86_SREGS, b::KVM_SYNC_X86_SREGS as u64);
    assert_eq!(k::KVM_MEM_LOG_DIRTY_PAGES, b::KVM_MEM_LOG_DIRTY_PAGES);
    assert_eq!(k::KVM_MEM_READONLY, b::KVM_MEM_READONLY);
    assert_eq!(k::KVM_CPUID_FLAG_SIGNIFCANT_INDEX, b::KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
}

/// Size of each struct, then the offset of every field, against kvm-bindings.
macro_rules! same_layout {
    ($ours:ty, $kvm:ty { $($f:ident $(= $kf:ident)?),* $(,)? }) => {{
        assert_eq!(size_of::<$ours>(), size_of::<$kvm>(), stringify!($ours));
        $(
            same_layout!(@field $ours, $kvm, $f $(, $kf)?);
        )*
    }};
    (@field $ours:ty, $kvm:ty, $f:ident) => {
        assert_eq!(offset_of!($ours, $f), offset_of!($kvm, $f), concat!(stringify!($ours), ".", stringify!($f)));
    };
    (@field $ours:ty, $kvm:ty, $f:ident, $kf:ident) => {
        assert_eq!(offset_of!($ours, $f), offset_of!($kvm, $kf), concat!(stringify!($ours), ".", stringify!($f)));
    };
}

#[test]
fn struct_layouts_equal_kvm() {
    same_layout!(
        k::KvmRegs,
        b::kvm_regs { rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags }
    );
    same_layout!(
        k::KvmSegment,
        b::kvm_segment { base, limit, selector, type_, present, dpl, db, s, l, g, avl, unusable, padding }
    );
    same_layout!(k::KvmDtable, b::kvm_dtable { base, limit, padding });
    same_layout!(
        k::KvmSregs,
        b::kvm_sregs {
            cs,
            ds,
            es,
            fs,
            gs,
            ss,
            tr,
            ldt,
            gdt,
            idt,
            cr0,
            cr2,
            cr3,
            cr4,
            cr8,
            efer,
            apic_base,
            interrupt_bitmap
        }
    );
    same_layout!(
        k::KvmUserspaceMemoryRegion,
        b::kvm_userspace_memory_region { slot, flags, guest_phys_addr, memory_size, userspace_addr }
    );
    same_layout!(
        k::KvmTranslation,
        b::kvm_translation { linear_address, physical_address, valid, writeable, usermode, pad }
    );
    same_layout!(k::KvmCpuidEntry2, b::kvm_cpuid_entry2 { function, index, flags, eax, ebx, ecx, edx, padding });
    same_layout!(k::KvmCpuid2, b::kvm_cpuid2 { nent, padding });
    same_layout!(k::KvmMsrEntry, b::kvm_msr_entry { index, reserved, data });
    same_layout!(k::KvmMsrs, b::kvm_msrs { nmsrs, pad });
    same_layout!(k::KvmFpu, b::kvm_fpu { fpr, fcw, fsw, ftwx, pad1, last_opcode, last_ip, last_dp, xmm, mxcsr, pad2 });
    same_layout!(k::KvmGuestDebug, b::kvm_guest_debug { control, pad });
    assert_eq!(offset_of!(k::KvmGuestDebug, debugreg), offset_of!(b::kvm_guest_debug, arch));
    same_layout!(k::KvmXsave, b::kvm_xsave { region });
    same_layout!(k::KvmXcr, b::kvm_xcr { xcr, reserved, value });
    same_layout!(k::KvmXcrs, b::kvm_xcrs { nr_xcrs, flags, xcrs, padding });
    same_layout!(k::KvmRun, b::kvm_run {
        request_interrupt_window, immediate_exit, padding1, exit_reason,
        ready_for_interrupt_injection, if_flag, flags, cr8, apic_base,
        exit = __bindgen_anon_1, kvm_valid_regs, kvm_dirty_regs, s
    });
    same_layout!(k::KvmRunIo, b::kvm_run__bindgen_ty_1__bindgen_ty_4 { direction, size, port, count, data_offset });
    same_layout!(k::KvmRunEx, b::kvm_run__bindgen_ty_1__bindgen_ty_3 { exception, error_code });
    assert_eq!(size_of::<k::KvmRunExit>(), size_of::<b::kvm_run__bindgen_ty_1>());
    assert_eq!(size_of::<k::KvmSyncRegs>(), size_of::<b::kvm_run__bindgen_ty_2>());
}
