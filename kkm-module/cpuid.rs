// SPDX-License-Identifier: GPL-2.0

//! `KVM_GET_SUPPORTED_CPUID`. A kkm payload runs on the host CPU in ring 3,
//! where `cpuid` is not intercepted: it sees the host's values. So the
//! truthful answer is the host's leaves, unfiltered but for one: leaf 0xD's
//! first subleaf, whose XCR0 bits say, as in KVM, which XCR0 values
//! KVM_SET_XCRS takes (the CPU's own may list more: supervisor-managed
//! or disabled by the host kernel, or not switched by kkm).

use crate::abi::{KvmCpuid2, KvmCpuidEntry2, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};
use core::arch::x86_64::__cpuid_count;
use kernel::{
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

/// KVM's cap on entries (KVM_MAX_CPUID_ENTRIES); larger requests are
/// clamped, as KVM does.
const MAX_ENTRIES: usize = 256;
const INDEXED: u32 = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
/// Most subleaves read from one leaf; real CPUs stay far below.
const MAX_SUBLEAVES: u32 = 64;

/// How a leaf's subleaves are enumerated (Intel SDM / AMD APM, CPUID).
enum Subleaves {
    /// Only subleaf 0, and ECX is ignored by the CPU.
    None,
    /// 0..=EAX of subleaf 0 (leaves 7, 0x14, 0x17, 0x18, 0x1d, 0x20, 0x24).
    MaxInEax,
    /// Until the cache type in EAX[4:0] is 0 (leaves 4, 0x8000001d).
    UntilCacheType0,
    /// Until the level type in ECX[15:8] is 0 (leaves 0xb, 0x1f, 0x80000026).
    UntilLevelType0,
    /// XSAVE components: 0 and 1 always, then those with a nonzero size.
    Xsave,
    /// Subleaf 0 only, but ECX is significant (leaves 0xf, 0x10, 0x12...).
    FirstIndexed,
}

fn subleaves(leaf: u32) -> Subleaves {
    match leaf {
        0x7 | 0x14 | 0x17 | 0x18 | 0x1d | 0x20 | 0x24 => Subleaves::MaxInEax,
        0x4 | 0x8000_001d => Subleaves::UntilCacheType0,
        0xb | 0x1f | 0x8000_0026 => Subleaves::UntilLevelType0,
        0xd => Subleaves::Xsave,
        0xf | 0x10 | 0x12 | 0x1e | 0x23 | 0x8000_0020 => Subleaves::FirstIndexed,
        _ => Subleaves::None,
    }
}

fn entry(leaf: u32, index: u32, flags: u32) -> KvmCpuidEntry2 {
    let r = __cpuid_count(leaf, index);
    KvmCpuidEntry2 {
        function: leaf,
        index,
        flags,
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
        padding: [0; 3],
    }
}

fn push_leaf(out: &mut KVec<KvmCpuidEntry2>, leaf: u32) -> Result {
    match subleaves(leaf) {
        Subleaves::None => out.push(entry(leaf, 0, 0), GFP_KERNEL)?,
        Subleaves::FirstIndexed => out.push(entry(leaf, 0, INDEXED), GFP_KERNEL)?,
        Subleaves::MaxInEax => {
            let last = entry(leaf, 0, INDEXED).eax.min(MAX_SUBLEAVES - 1);
            for i in 0..=last {
                out.push(entry(leaf, i, INDEXED), GFP_KERNEL)?;
            }
        }
        Subleaves::UntilCacheType0 => push_until(out, leaf, |e| e.eax & 0x1f == 0)?,
        Subleaves::UntilLevelType0 => push_until(out, leaf, |e| (e.ecx >> 8) & 0xff == 0)?,
        Subleaves::Xsave => {
            out.push(xsave_features(), GFP_KERNEL)?;
            for i in 1..MAX_SUBLEAVES {
                let e = entry(leaf, i, INDEXED);
                if i < 2 || e.eax != 0 {
                    out.push(e, GFP_KERNEL)?;
                }
            }
        }
    }
    Ok(())
}

/// Leaf 0xD, subleaf 0: the XCR0 bits a vCPU supports (EDX:EAX) and the
/// size of an XSAVE image holding them all (EBX, ECX), as KVM reports them.
fn xsave_features() -> KvmCpuidEntry2 {
    let features = crate::fpu::supported_xcr0();
    // The legacy area and the header, then the last component's end.
    let size = (2..64)
        .filter(|&bit| features & (1 << bit) != 0)
        .map(|bit| {
            let r = __cpuid_count(0xd, bit);
            r.ebx.saturating_add(r.eax)
        })
        .fold(576, u32::max);
    KvmCpuidEntry2 {
        eax: features as u32,
        edx: (features >> 32) as u32,
        ebx: size,
        ecx: size,
        ..entry(0xd, 0, INDEXED)
    }
}

/// Subleaf 0 and those after it up to, not including, the first for which
/// `end` holds.
fn push_until(
    out: &mut KVec<KvmCpuidEntry2>,
    leaf: u32,
    end: impl Fn(&KvmCpuidEntry2) -> bool,
) -> Result {
    out.push(entry(leaf, 0, INDEXED), GFP_KERNEL)?;
    for i in 1..MAX_SUBLEAVES {
        let e = entry(leaf, i, INDEXED);
        if end(&e) {
            break;
        }
        out.push(e, GFP_KERNEL)?;
    }
    Ok(())
}

/// Basic leaves 0..=max and extended leaves 0x80000000..=max of the host.
fn host_entries() -> Result<KVec<KvmCpuidEntry2>> {
    let mut out = KVec::new();
    for base in [0u32, 0x8000_0000] {
        // Bounded: a hypervisor may report a huge maximum leaf.
        let max = __cpuid_count(base, 0).eax.clamp(base, base + 0x40);
        for leaf in base..=max {
            push_leaf(&mut out, leaf)?;
        }
    }
    Ok(out)
}

/// `arg` points at a `kvm_cpuid2` header whose `nent` is the capacity of
/// the entry array behind it. As in KVM: E2BIG if the entries do not fit,
/// else the entries are written and `nent` set to their number.
pub(crate) fn get_supported(arg: usize) -> Result {
    let header: KvmCpuid2 = crate::read_user(arg)?;
    let capacity = (header.nent as usize).min(MAX_ENTRIES);
    let entries = host_entries()?;
    if entries.len() > capacity {
        return Err(E2BIG);
    }
    let bytes = entries.len() * core::mem::size_of::<KvmCpuidEntry2>();
    let array = UserPtr::from_addr(arg).wrapping_byte_add(core::mem::size_of::<KvmCpuid2>());
    let mut writer = UserSlice::new(array, bytes).writer();
    for e in entries.iter() {
        writer.write(e)?;
    }
    let nent = entries.len() as u32; // at most MAX_ENTRIES
    crate::write_user(arg, &KvmCpuid2 { nent, padding: 0 })
}
