//! The guest side of km's VM: address layout, page tables, CPU state.

pub mod clock;
pub mod cpu;
pub mod layout;
pub mod paging;
pub mod selectors;
pub mod vdso;
