//! The segment selectors of km's GDT: the one place that says which
//! selector is what. They are Linux's x86-64 values, so a signal frame
//! (sigcontext cs and ss) reads as it does natively and a payload may hand
//! rt_sigreturn the selectors it saw on Linux.
//!
//! `syscall` loads CS from STAR[47:32] and SS 8 above it; `sysretq` loads
//! CS 16 above STAR[63:48] and SS 8 above it (with RPL 3), which is why the
//! user data descriptor sits between the 32-bit and 64-bit user code slots.

/// Descriptor slots before the TSS descriptors: null, 0x08 (unused; Linux's
/// 32-bit kernel code), kernel code, kernel data, 0x20 (Linux's 32-bit
/// user code: left empty, km cannot run 32-bit code), user data, user code.
pub const FIXED_DESCRIPTORS: u64 = 7;

/// Kernel code: km's IDT stubs, and the pad after `syscall` on hardware KVM.
pub const KERNEL_CS: u16 = 0x10;
/// Kernel data, the stack segment `syscall` loads with KERNEL_CS.
pub const KERNEL_DS: u16 = 0x18;
/// STAR's sysret base: Linux's 32-bit user code selector.
pub const SYSRET_BASE: u16 = 0x20 | 3;
/// 64-bit user data and stack (Linux's __USER_DS).
pub const USER_DS: u16 = 0x28 | 3;
/// 64-bit user code (Linux's __USER_CS): the only code selector the
/// payload runs with.
pub const USER_CS: u16 = 0x30 | 3;
/// The first vCPU's TSS; each takes a 16-byte descriptor.
pub const FIRST_TSS: u16 = 0x38;

const _: () = assert!(SYSRET_BASE + 8 == USER_DS && SYSRET_BASE + 16 == USER_CS);
const _: () = assert!(KERNEL_CS + 8 == KERNEL_DS);
const _: () = assert!(FIRST_TSS as u64 == FIXED_DESCRIPTORS * 8);
