//! The payload's memory: one address space shared by km (host virtual),
//! the guest page tables (guest virtual) and the memory slots (guest
//! physical), all with the same addresses.

pub mod atomic;
pub mod copy;
mod pool;
mod range;
mod shared;
mod shm;
mod space;
mod vma;

pub use range::GuestRange;
pub use shared::{Exclusive, SharedSpace};
pub use space::{AddressSpace, MemError};
