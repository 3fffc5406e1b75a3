//! The register checks of /dev/kkm: km's own guest state passes, each rule
//! refuses what it names and nothing it does not.

use kkm_uapi::guest_state::*;
use kkm_uapi::{KvmRegs, KvmSegment, KvmSregs};

fn user_segment(selector: u16, code: bool) -> KvmSegment {
    KvmSegment {
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

/// The state km's guest model gives a vCPU (km/src/guest/cpu.rs), with the
/// tables, CR3 and TR km sets for KVM that kkm ignores.
fn km_state() -> (KvmRegs, KvmSregs) {
    let mut s = KvmSregs {
        cs: user_segment(0x33, true),
        ss: user_segment(0x2b, false),
        ds: user_segment(0x2b, false),
        es: user_segment(0x2b, false),
        fs: KvmSegment { base: 0x7fff_f7ff_8000, ..user_segment(0x2b, false) },
        gs: user_segment(0x2b, false),
        cr0: CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG,
        cr3: 0x7f_c000_0000,
        cr4: CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE,
        efer: EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE,
        ..Default::default()
    };
    s.tr = KvmSegment { base: 0x7f_c000_3000, limit: 0x67, selector: 0x28, type_: 0xb, present: 1, ..s.tr };
    (s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit) = (0x7f_c000_1000, 0x2ff, 0x7f_c000_2000, 0xfff);
    let r = KvmRegs { rip: 0x40_1000, rsp: 0x7f_bfff_f000, rflags: 0x202, ..Default::default() };
    (r, s)
}

#[test]
fn km_state_is_accepted() {
    let (r, s) = km_state();
    assert_eq!(check_sregs(&s), Ok(()));
    assert_eq!(check_entry(&r, &s), Ok(()));
}

#[test]
fn reset_state_may_be_set_but_not_entered() {
    // GET_SREGS of a new vCPU returns zeros; setting them back must work.
    let s = KvmSregs::default();
    assert_eq!(check_sregs(&s), Ok(()));
    let r = KvmRegs { rflags: RFLAGS_FIXED, ..Default::default() };
    assert_eq!(check_entry(&r, &s), Err(Refusal::NotLongMode));
}

#[test]
fn control_registers() {
    let (_, good) = km_state();
    let cases = [
        (KvmSregs { cr0: good.cr0 | (1 << 30), ..good }, Refusal::Cr0), // CD
        (KvmSregs { cr0: good.cr0 | (1 << 3), ..good }, Refusal::Cr0),  // TS
        (KvmSregs { cr0: good.cr0 | (1 << 32), ..good }, Refusal::Cr0), // reserved
        (KvmSregs { cr0: CR0_PG, efer: 0, ..good }, Refusal::Cr0),      // PG without PE
        (KvmSregs { cr4: good.cr4 | (1 << 12), ..good }, Refusal::Cr4), // LA57
        (KvmSregs { cr4: good.cr4 | (1 << 13), ..good }, Refusal::Cr4), // VMXE
        (KvmSregs { cr4: good.cr4 | (1 << 7), ..good }, Refusal::Cr4),  // PGE
        (KvmSregs { efer: good.efer | (1 << 12), ..good }, Refusal::Efer), // SVME
        (KvmSregs { efer: good.efer & !EFER_LMA, ..good }, Refusal::PagingMode),
        (KvmSregs { cr4: good.cr4 & !CR4_PAE, ..good }, Refusal::PagingMode),
        (KvmSregs { cr0: 0, cr4: 0, efer: EFER_LMA, ..good }, Refusal::PagingMode),
        (KvmSregs { cr8: 1, ..good }, Refusal::Apic),
        (KvmSregs { apic_base: 0xfee0_0900, ..good }, Refusal::Apic),
        (KvmSregs { interrupt_bitmap: [0, 1 << 3, 0, 0], ..good }, Refusal::Apic),
    ];
    for (s, why) in cases {
        assert_eq!(check_sregs(&s), Err(why), "{s:x?}");
    }
    // LME set while paging is off is a legal step on the way to long mode.
    assert_eq!(check_sregs(&KvmSregs { cr0: CR0_PE, efer: EFER_LME, ..good }), Ok(()));
}

#[test]
fn entry_needs_long_mode_user_segments() {
    let (r, good) = km_state();
    let entry = |s: KvmSregs| check_entry(&r, &s);
    assert_eq!(entry(KvmSregs { cr0: CR0_PE, efer: EFER_LME, ..good }), Err(Refusal::NotLongMode));
    let kernel_cs = KvmSegment { selector: 0x08, dpl: 0, ..good.cs };
    assert_eq!(entry(KvmSregs { cs: kernel_cs, ..good }), Err(Refusal::CodeSegment));
    assert_eq!(entry(KvmSregs { cs: KvmSegment { selector: 0x20, ..good.cs }, ..good }), Err(Refusal::CodeSegment));
    let compat_cs = KvmSegment { l: 0, db: 1, ..good.cs };
    assert_eq!(entry(KvmSregs { cs: compat_cs, ..good }), Err(Refusal::CodeSegment));
    assert_eq!(entry(KvmSregs { cs: good.ss, ..good }), Err(Refusal::CodeSegment));
    assert_eq!(entry(KvmSregs { cs: KvmSegment { present: 0, ..good.cs }, ..good }), Err(Refusal::CodeSegment));
    assert_eq!(entry(KvmSregs { cs: KvmSegment { unusable: 1, ..good.cs }, ..good }), Err(Refusal::CodeSegment));
    assert_eq!(entry(KvmSregs { ss: KvmSegment { dpl: 0, ..good.ss }, ..good }), Err(Refusal::StackSegment));
    assert_eq!(entry(KvmSregs { ss: KvmSegment { selector: 3, ..good.ss }, ..good }), Err(Refusal::StackSegment));
    assert_eq!(entry(KvmSregs { ss: KvmSegment { type_: 0x1, ..good.ss }, ..good }), Err(Refusal::StackSegment));
    assert_eq!(entry(KvmSregs { ss: good.cs, ..good }), Err(Refusal::StackSegment));
    // A refusal of check_sregs is a refusal at entry too.
    assert_eq!(entry(KvmSregs { cr8: 2, ..good }), Err(Refusal::Apic));
}

#[test]
fn entry_rflags() {
    let (good, s) = km_state();
    for bit in
        [RFLAGS_IOPL, 1 << 12, RFLAGS_NT, RFLAGS_VM, RFLAGS_VIF, RFLAGS_VIP, 1 << 3, 1 << 5, 1 << 15, 1 << 22, 1 << 63]
    {
        let r = KvmRegs { rflags: good.rflags | bit, ..good };
        assert_eq!(check_entry(&r, &s), Err(Refusal::Rflags), "rflags {:#x}", r.rflags);
    }
    // What a Linux process may hold: arithmetic flags, TF, DF, RF, AC, ID,
    // with or without IF.
    for rflags in [0x2, 0x0cd7, 0x2 | RFLAGS_TF | RFLAGS_RF | RFLAGS_AC | RFLAGS_ID, RFLAGS_ALLOWED] {
        assert_eq!(check_entry(&KvmRegs { rflags, ..good }, &s), Ok(()), "rflags {rflags:#x}");
    }
}

#[test]
fn entry_addresses() {
    let (good, s) = km_state();
    for rip in [0x0000_8000_0000_0000, 0xffff_7fff_ffff_ffff, 0x0001_0000_0000_0000] {
        assert_eq!(check_entry(&KvmRegs { rip, ..good }, &s), Err(Refusal::Rip), "rip {rip:#x}");
    }
    // Canonical kernel-half and top addresses fault in ring 3 as a #PF.
    for rip in [0, 0x0000_7fff_ffff_ffff, 0xffff_8000_0000_0000, u64::MAX] {
        assert_eq!(check_entry(&KvmRegs { rip, ..good }, &s), Ok(()), "rip {rip:#x}");
    }
    // RSP is not checked: iretq loads it as it is, and so may a process.
    assert_eq!(check_entry(&KvmRegs { rsp: 0x8000_0000_0000_0000, ..good }, &s), Ok(()));
    let bad = 0x0000_8000_0000_0000;
    let fs = KvmSegment { base: bad, ..s.fs };
    assert_eq!(check_entry(&good, &KvmSregs { fs, ..s }), Err(Refusal::SegmentBase));
    let gs = KvmSegment { base: bad, ..s.gs };
    assert_eq!(check_entry(&good, &KvmSregs { gs, ..s }), Err(Refusal::SegmentBase));
    // DS/ES bases are ignored in 64-bit mode and never loaded.
    let ds = KvmSegment { base: bad, ..s.ds };
    assert_eq!(check_entry(&good, &KvmSregs { ds, ..s }), Ok(()));
}

#[test]
fn canonical() {
    assert!(is_canonical(0x0000_7fff_ffff_ffff));
    assert!(is_canonical(0xffff_8000_0000_0000));
    assert!(!is_canonical(0x0000_8000_0000_0000));
    assert!(!is_canonical(0xfff7_8000_0000_0000));
}
