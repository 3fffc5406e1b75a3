// SPDX-License-Identifier: GPL-2.0

//! Lets the kernel's user-copy helpers move the shared ABI structs. The
//! structs live in `abi.rs`, which may use only `core`, so the marker traits
//! are attached here.

use crate::abi::{
    KkmIdentity, KvmCpuid2, KvmCpuidEntry2, KvmFpu, KvmRegs, KvmSregs, KvmTranslation,
    KvmUserspaceMemoryRegion, KvmXcrs, KvmXsave,
};
use kernel::transmute::{AsBytes, FromBytes};

// Each type listed below is `#[repr(C)]`, built only from integers and arrays or
// structs of integers, so every bit pattern is a valid value and there is no
// interior mutability; `abi.rs` pins their sizes at compile time to the sum
// of their fields (KvmRegs 18*8, KvmSregs 8*24+2*16+7*8+32,
// KvmUserspaceMemoryRegion 2*4+3*8, KvmCpuidEntry2 10*4, KvmCpuid2 2*4,
// KkmIdentity 4*4, KvmTranslation 2*8+8*1; KvmFpu 8*16+2*2+2*1+2+2*8+16*16+2*4
// with its padding fields named; KvmXsave 1024*4; KvmXcrs 2*4+16*(2*4+8)+16*8
// with its padding fields named; KvmSegment 8+4+2+10*1,
// KvmDtable 8+2+3*2), so there are no padding bytes and every byte of a
// value is initialized.
macro_rules! plain_data {
    ($($t:ty),*) => {$(
        // SAFETY: plain `#[repr(C)]` integer data without padding, see above.
        unsafe impl FromBytes for $t {}
        // SAFETY: plain `#[repr(C)]` integer data without padding, see above.
        unsafe impl AsBytes for $t {}
    )*};
}

plain_data!(
    KkmIdentity,
    KvmCpuid2,
    KvmCpuidEntry2,
    KvmFpu,
    KvmRegs,
    KvmSregs,
    KvmTranslation,
    KvmUserspaceMemoryRegion,
    KvmXcrs,
    KvmXsave
);
