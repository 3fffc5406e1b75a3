//! The ABI shared by `km` and the `kkm` kernel module.
//!
//! `/dev/kkm` speaks the subset of the KVM ioctl API that km uses, with the
//! same numbers and structs, plus one identity ioctl. The definitions live in
//! `abi.rs`, which the kernel module compiles as well (kbuild cannot use
//! cargo crates), so there is one copy of every number. `guest_state.rs`,
//! compiled by both as well, says which register values kkm accepts.
#![no_std]

mod abi;
pub use abi::*;
/// The register values `/dev/kkm` accepts (also compiled into the module).
pub mod guest_state;
