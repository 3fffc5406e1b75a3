//! exec: the executable's segments and the initial stack.

pub mod elf;
pub mod stack;
