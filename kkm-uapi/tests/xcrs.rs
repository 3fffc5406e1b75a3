//! KVM_SET_XCRS's checks: each of KVM's XCR0 rules refuses what it names
//! and nothing it does not, whatever the vCPU supports.

use kkm_uapi::guest_state::*;
use kkm_uapi::{KvmXcr, KvmXcrs};

/// What a host with every user component kkm could meet supports.
const EVERYTHING: u64 = XFEATURE_X87 | XFEATURE_SSE | XFEATURE_AVX | XFEATURE_MPX | XFEATURE_AVX512 | XFEATURE_AMX;
/// kkm's features on a host with AVX-512 (x87, SSE, AVX, AVX-512).
const KKM: u64 = 0xe7;

fn xcrs(entries: &[(u32, u64)]) -> KvmXcrs {
    let mut x = KvmXcrs { nr_xcrs: entries.len() as u32, ..Default::default() };
    for (slot, &(xcr, value)) in x.xcrs.iter_mut().zip(entries) {
        *slot = KvmXcr { xcr, value, ..Default::default() };
    }
    x
}

#[test]
fn valid_values_pass() {
    for xcr0 in [0x1, 0x3, 0x7, 0xe7, 0x1b, 0x6_0003, EVERYTHING] {
        assert_eq!(check_xcr0(xcr0, EVERYTHING), Ok(()), "{xcr0:#x}");
    }
    // x87 alone and x87|SSE are valid on any XSAVE host.
    for xcr0 in [0x1, 0x3] {
        assert_eq!(check_xcr0(xcr0, 0x3), Ok(()), "{xcr0:#x}");
    }
}

#[test]
fn kvm_rules_refuse() {
    for (name, xcr0) in [
        ("x87 clear", 0x6),
        ("x87 clear, nothing else", 0x0),
        ("AVX without SSE", 0x5),
        ("AVX-512 opmask alone", 0x27),
        ("AVX-512 without Hi16_ZMM", 0x67),
        ("AVX-512 without AVX", 0xe3),
        ("MPX bound registers alone", 0x0b),
        ("MPX BNDCSR alone", 0x13),
        ("AMX tile data alone", 0x4_0003),
        ("AMX tile configuration alone", 0x2_0003),
    ] {
        assert_eq!(check_xcr0(xcr0, EVERYTHING), Err(Refusal::Xcr0), "{name}");
    }
}

#[test]
fn unsupported_and_supervisor_bits_refused() {
    for (name, xcr0) in [
        ("MPX", 0x1b),
        ("AMX", 0x6_0003),
        ("PKRU", 0x203),
        ("APX", 0x8_0003),
        ("bit 62", 0x3 | 1 << 62),
        ("bit 63", 0x3 | 1 << 63),
    ] {
        assert_eq!(check_xcr0(xcr0, KKM), Err(Refusal::Xcr0), "{name}");
    }
    // Supervisor components are refused even where a caller would list them.
    for bit in [8, 10, 11, 12, 13, 14, 15, 16] {
        assert_eq!(check_xcr0(0x3 | 1 << bit, u64::MAX), Err(Refusal::Xcr0), "bit {bit}");
    }
    // A host without AVX: AVX is refused although it is valid elsewhere.
    assert_eq!(check_xcr0(0x7, 0x3), Err(Refusal::Xcr0));
}

#[test]
fn set_xcrs_takes_xcr0_only() {
    assert_eq!(check_xcrs(&xcrs(&[(XCR0, 0x7)]), KKM), Ok(Some(0x7)));
    assert_eq!(check_xcrs(&xcrs(&[]), KKM), Ok(None), "no entry: nothing to set");
    // As KVM: the first entry wins; every entry must still be valid.
    assert_eq!(check_xcrs(&xcrs(&[(XCR0, 0x3), (XCR0, 0x7)]), KKM), Ok(Some(0x3)));
    assert_eq!(check_xcrs(&xcrs(&[(XCR0, 0x3), (XCR0, 0x5)]), KKM), Err(Refusal::Xcr0));
    assert_eq!(check_xcrs(&xcrs(&[(1, 0x3)]), KKM), Err(Refusal::Xcrs), "XCR1 (XINUSE) is not settable");
    assert_eq!(check_xcrs(&xcrs(&[(XCR0, 0x7), (1, 0)]), KKM), Err(Refusal::Xcrs));
    let flags = KvmXcrs { flags: 1, ..xcrs(&[(XCR0, 0x7)]) };
    assert_eq!(check_xcrs(&flags, KKM), Err(Refusal::Xcrs));
    let full = xcrs(&[(XCR0, 0x7); 16]);
    assert_eq!(check_xcrs(&full, KKM), Ok(Some(0x7)));
    let too_many = KvmXcrs { nr_xcrs: MAX_XCRS + 1, ..full };
    assert_eq!(check_xcrs(&too_many, KKM), Err(Refusal::Xcrs));
    let huge = KvmXcrs { nr_xcrs: u32::MAX, ..full };
    assert_eq!(check_xcrs(&huge, KKM), Err(Refusal::Xcrs));
    // Entries past nr_xcrs are not looked at.
    let mut tail = xcrs(&[(XCR0, 0x7)]);
    tail.xcrs[1] = KvmXcr { xcr: 5, value: 0, ..Default::default() };
    assert_eq!(check_xcrs(&tail, KKM), Ok(Some(0x7)));
}
