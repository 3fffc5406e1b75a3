//! Port I/O that km's own code did not do: the payload's `in`/`out`.
//!
//! Natively these are a #GP at CPL3 (SIGSEGV, SI_KERNEL). Under KVM the
//! CPU raises that #GP itself for every port the TSS bitmap closes; only
//! where the pad runs at CPL3 (PVM) is the syscall port open, and a
//! payload's access to it arrives as a port exit instead. The backend
//! turns that exit into the #GP the payload would have had, which needs
//! the address of the instruction: the device reports rip past it (PVM
//! here) or at it (KVM with a port exit still to complete).

/// Where the port instruction behind an exit at `rip` starts. `code` holds
/// the three bytes before `rip` (zero where unreadable);
/// `port` and `size` are the exit's. The only prefixes counted are the
/// ones these instructions need (0x66 for 16 bits, rep for the string
/// forms); a redundant one (REX, a segment override) is taken for the end
/// of the instruction before, which only moves the reported rip of an
/// already faulting instruction by a byte.
pub fn insn_start(code: [u8; 3], rip: u64, port: u16, size: usize) -> u64 {
    let [b3, b2, b1] = code;
    let imm = |op: u8| matches!(op, 0xe4..=0xe7);
    let via_dx = |op: u8| matches!(op, 0xec..=0xef | 0x6c..=0x6f);
    let string = |op: u8| matches!(op, 0x6c..=0x6f);
    // The operand-size prefix of a 16-bit access, or a rep prefix of a
    // string instruction, belongs to the instruction.
    let prefix = |p: u8, op: u8| (p == 0x66 && size == 2) || (matches!(p, 0xf2 | 0xf3) && string(op));
    if imm(b2) && b1 == port as u8 {
        rip - 2 - u64::from(prefix(b3, b2))
    } else if via_dx(b1) {
        rip - 1 - u64::from(prefix(b2, b1))
    } else {
        // Not completed yet: the exit's rip is the instruction.
        rip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RIP: u64 = 0x40_1000;

    #[test]
    fn instruction_before_rip() {
        // out %al,$0xf0
        assert_eq!(insn_start([0x90, 0xe6, 0xf0], RIP, 0xf0, 1), RIP - 2);
        // out %ax,$0xf0
        assert_eq!(insn_start([0x66, 0xe7, 0xf0], RIP, 0xf0, 2), RIP - 3);
        // out %eax,$0xf0 after an instruction ending in 0x66
        assert_eq!(insn_start([0x66, 0xe7, 0xf0], RIP, 0xf0, 4), RIP - 2);
        // out %al,(%dx); in (%dx),%al; rep outsb
        assert_eq!(insn_start([0, 0x90, 0xee], RIP, 0xf0, 1), RIP - 1);
        assert_eq!(insn_start([0, 0x90, 0xec], RIP, 0xf1, 1), RIP - 1);
        assert_eq!(insn_start([0, 0xf3, 0x6e], RIP, 0xf0, 1), RIP - 2);
    }

    #[test]
    fn instruction_at_rip() {
        assert_eq!(insn_start([0x48, 0x89, 0xc7], RIP, 0xf0, 1), RIP);
        assert_eq!(insn_start([0x0f, 0x1f, 0x00], RIP, 0xf0, 1), RIP);
    }
}
