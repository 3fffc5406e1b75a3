//! The signal frame Linux builds on the user stack for a handler, byte for
//! byte (x86-64 `rt_sigframe`), so libc and language runtimes can read
//! and edit the interrupted context and return with rt_sigreturn:
//!
//! ```text
//! sp ->  pretcode (sa_restorer)             8
//!        ucontext: flags, link, stack_t    40
//!                  sigcontext             256
//!                  sigmask                  8
//!        siginfo                          128
//!        (pad)   fxsave area, 64-aligned  512
//! ```

use kvm_bindings::kvm_regs;

use super::{KSigaction, SigInfo, SA_ONSTACK};
use crate::guest::selectors::{USER_CS, USER_DS};

const UC_SIZE: u64 = 304;
const MCONTEXT: usize = 40;
const SIGMASK: usize = 296;
const FRAME_SIZE: u64 = 8 + UC_SIZE + 128;
pub const FXSAVE_SIZE: usize = 512;
const RED_ZONE: u64 = 128;
/// uc_flags: the saved SS is meaningful and restored strictly.
const UC_FLAGS: u64 = 0x2 | 0x4;
pub const SS_ONSTACK: i32 = 1;
pub const SS_DISABLE: i32 = 2;
pub const SS_AUTODISARM: i32 = 1 << 31;
/// Flags rt_sigreturn takes from the frame, Linux's FIX_EFLAGS: CF, PF,
/// AF, ZF, SF, TF, DF, OF, RF, AC. The rest (IF, IOPL, NT, VM, VIF, VIP,
/// ID) stay as they were.
const FIX_FLAGS: u64 = 0x0005_0dd5;
/// uc_flags bit: the frame's SS must be valid, not silently replaced.
const UC_STRICT_RESTORE_SS: u64 = 0x4;
const FLAGS_CLEARED_FOR_HANDLER: u64 = (1 << 8) | (1 << 10) | (1 << 16); // TF, DF, RF

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct StackT {
    pub sp: u64,
    pub flags: i32,
    pub pad: i32,
    pub size: u64,
}

// SAFETY: plain integers, any bit pattern is valid.
unsafe impl crate::mem::copy::Pod for StackT {}

impl StackT {
    pub fn disabled() -> StackT {
        StackT { flags: SS_DISABLE, ..Default::default() }
    }

    pub fn on_stack(&self, sp: u64) -> bool {
        self.flags & SS_DISABLE == 0 && sp > self.sp && sp - self.sp <= self.size
    }

    /// What sigaltstack and uc_stack report for a thread at `sp`.
    pub fn reported(&self, sp: u64) -> StackT {
        let flags = if self.flags & SS_DISABLE != 0 {
            SS_DISABLE
        } else if self.on_stack(sp) {
            SS_ONSTACK | (self.flags & SS_AUTODISARM)
        } else {
            self.flags & SS_AUTODISARM
        };
        StackT { flags, ..*self }
    }
}

/// The CPU fault behind a signal, saved in the frame as Linux does.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trap {
    pub trapno: u64,
    pub err: u64,
    pub cr2: u64,
}

/// A frame ready to be written at `sp`, and the registers that enter the
/// handler.
pub struct Frame {
    pub sp: u64,
    pub bytes: Vec<u8>,
    /// The fxsave area inside the frame, which the guest fills itself.
    pub fpstate: u64,
    pub regs: kvm_regs,
}

fn put(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The general registers in sigcontext order.
fn gregs(r: &kvm_regs) -> [u64; 18] {
    [
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx, r.rax, r.rcx, r.rsp,
        r.rip, r.rflags,
    ]
}

/// Lays out the frame for delivering `info` to `act` from state `regs`,
/// with `mask` the mask to restore afterwards. The fxsave area is left
/// zero for the guest to fill.
pub fn build(regs: &kvm_regs, info: &SigInfo, act: &KSigaction, mask: u64, altstack: &StackT, trap: Trap) -> Frame {
    let use_alt = act.flags & SA_ONSTACK != 0 && altstack.flags & SS_DISABLE == 0 && !altstack.on_stack(regs.rsp);
    let top = if use_alt { altstack.sp.wrapping_add(altstack.size) } else { regs.rsp.wrapping_sub(RED_ZONE) };
    let fpstate = (top.wrapping_sub(FXSAVE_SIZE as u64)) & !63;
    // Aligned as if a call had pushed the return address.
    let sp = ((fpstate.wrapping_sub(FRAME_SIZE) + 8) & !15).wrapping_sub(8);
    let mut b = vec![0u8; fpstate.wrapping_add(FXSAVE_SIZE as u64).wrapping_sub(sp) as usize];
    put(&mut b, 0, act.restorer);
    let uc = 8;
    put(&mut b, uc, UC_FLAGS);
    let stack = altstack.reported(regs.rsp);
    put(&mut b, uc + 16, stack.sp);
    b[uc + 24..uc + 28].copy_from_slice(&stack.flags.to_le_bytes());
    put(&mut b, uc + 32, stack.size);
    let mc = uc + MCONTEXT;
    for (i, v) in gregs(regs).iter().enumerate() {
        put(&mut b, mc + 8 * i, *v);
    }
    // cs, gs, fs, ss as four u16s.
    put(&mut b, mc + 144, u64::from(USER_CS) | (u64::from(USER_DS) << 48));
    put(&mut b, mc + 152, trap.err);
    put(&mut b, mc + 160, trap.trapno);
    put(&mut b, mc + 168, mask);
    put(&mut b, mc + 176, trap.cr2);
    put(&mut b, mc + 184, fpstate);
    put(&mut b, uc + SIGMASK, mask);
    let info_at = 8 + UC_SIZE as usize;
    b[info_at..info_at + 128].copy_from_slice(&info.0);

    let handler = kvm_regs {
        rip: act.handler,
        rsp: sp,
        rdi: info.signo() as u64,
        rsi: sp.wrapping_add(info_at as u64),
        rdx: sp.wrapping_add(uc as u64),
        rax: 0,
        rflags: regs.rflags & !FLAGS_CLEARED_FOR_HANDLER,
        ..*regs
    };
    Frame { sp, bytes: b, fpstate, regs: handler }
}

/// What rt_sigreturn takes back from a frame.
pub struct Restored {
    pub regs: kvm_regs,
    pub mask: u64,
    /// Where the saved FPU state is (0: none, reset it).
    pub fpstate: u64,
    pub stack: StackT,
    cs: u16,
    ss: u16,
    uc_flags: u64,
}

impl Restored {
    /// Whether the return to user mode can load the frame's selectors, as
    /// Linux's IRET does after ORing RPL 3 into them: CS must be the
    /// 64-bit user code segment (Linux's 32-bit one would switch to
    /// compatibility mode, which km cannot run), and SS the user data
    /// segment unless the frame lets the kernel replace a bad one.
    pub fn selectors_valid(&self) -> bool {
        let ss_ok = self.ss | 3 == USER_DS || self.uc_flags & UC_STRICT_RESTORE_SS == 0;
        self.cs | 3 == USER_CS && ss_ok
    }
}

/// Size of the ucontext rt_sigreturn reads.
pub const UCONTEXT_SIZE: usize = UC_SIZE as usize;

/// Parses the ucontext at the top of a frame (`uc`: UCONTEXT_SIZE bytes).
pub fn restore(uc: &[u8], rflags_now: u64) -> Restored {
    let mc = MCONTEXT;
    let g = |i: usize| get(uc, mc + 8 * i);
    let regs = kvm_regs {
        r8: g(0),
        r9: g(1),
        r10: g(2),
        r11: g(3),
        r12: g(4),
        r13: g(5),
        r14: g(6),
        r15: g(7),
        rdi: g(8),
        rsi: g(9),
        rbp: g(10),
        rbx: g(11),
        rdx: g(12),
        rax: g(13),
        rcx: g(14),
        rsp: g(15),
        rip: g(16),
        rflags: (rflags_now & !FIX_FLAGS) | (g(17) & FIX_FLAGS) | 2,
    };
    let stack = StackT {
        sp: get(uc, 16),
        flags: i32::from_le_bytes(uc[24..28].try_into().expect("4 bytes")),
        pad: 0,
        size: get(uc, 32),
    };
    let segments = get(uc, mc + 144);
    Restored {
        regs,
        mask: get(uc, SIGMASK),
        fpstate: get(uc, mc + 184),
        stack,
        cs: segments as u16,
        ss: (segments >> 48) as u16,
        uc_flags: get(uc, 0),
    }
}

/// The fxsave images km itself stages for the return stub.
pub mod fx {
    use std::sync::OnceLock;

    use super::FXSAVE_SIZE;

    /// The MXCSR bits this CPU lets FXRSTOR set (the mask its own FXSAVE
    /// reports; 0 there means the architectural default).
    fn mxcsr_mask() -> u32 {
        static MASK: OnceLock<u32> = OnceLock::new();
        *MASK.get_or_init(|| {
            #[repr(C, align(16))]
            struct Area([u8; FXSAVE_SIZE]);
            let mut area = Area([0; FXSAVE_SIZE]);
            // SAFETY: FXSAVE writes 512 bytes to a 16-byte aligned buffer,
            // which `area` is; every x86-64 CPU has FXSR.
            unsafe { std::arch::x86_64::_fxsave64(area.0.as_mut_ptr()) };
            match u32::from_le_bytes(area.0[28..32].try_into().expect("4 bytes")) {
                0 => 0xffbf,
                mask => mask,
            }
        })
    }

    /// The state after FNINIT with Linux's MXCSR (frames without fpstate).
    pub fn initial() -> [u8; FXSAVE_SIZE] {
        let mut b = [0u8; FXSAVE_SIZE];
        b[0..2].copy_from_slice(&0x37fu16.to_le_bytes());
        b[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        b
    }

    /// Whether FXRSTOR can load the image: a reserved MXCSR bit makes it
    /// fault, which on Linux fails rt_sigreturn with SIGSEGV.
    pub fn valid(b: &[u8; FXSAVE_SIZE]) -> bool {
        u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")) & !mxcsr_mask() == 0
    }

    /// The image's fields as KVM_SET_FPU takes them (64-bit FXSAVE layout:
    /// what FXRSTOR64 would load).
    pub fn to_kvm_fpu(b: &[u8; FXSAVE_SIZE]) -> kvm_bindings::kvm_fpu {
        let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().expect("2 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let mut f = kvm_bindings::kvm_fpu {
            fcw: u16_at(0),
            fsw: u16_at(2),
            ftwx: b[4],
            last_opcode: u16_at(6),
            last_ip: u64_at(8),
            last_dp: u64_at(16),
            mxcsr: u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")),
            ..Default::default()
        };
        for (i, r) in f.fpr.iter_mut().enumerate() {
            r.copy_from_slice(&b[32 + 16 * i..48 + 16 * i]);
        }
        for (i, r) in f.xmm.iter_mut().enumerate() {
            r.copy_from_slice(&b[160 + 16 * i..176 + 16 * i]);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs() -> kvm_regs {
        kvm_regs {
            rax: 1,
            rbx: 2,
            rcx: 3,
            rdx: 4,
            rsi: 5,
            rdi: 6,
            rsp: 0x7000_1000,
            rbp: 8,
            r8: 9,
            r15: 16,
            rip: 0x40_1234,
            rflags: 0x246 | (1 << 10),
            ..Default::default()
        }
    }

    #[test]
    fn frame_round_trips_and_matches_linux_offsets() {
        let act = KSigaction { handler: 0x40_2000, flags: 4, restorer: 0x40_3000, mask: 0 };
        let info = SigInfo::user(10, 7, 0);
        let f = build(&regs(), &info, &act, 0x1234, &StackT::disabled(), Trap::default());
        // Below the red zone, aligned like a call, fpstate 64-aligned above.
        assert!(f.sp + (f.bytes.len() as u64) <= 0x7000_1000 - 128);
        assert_eq!((f.sp + 8) % 16, 0);
        let b = &f.bytes;
        assert_eq!(get(b, 0), 0x40_3000);
        let mc = 8 + MCONTEXT;
        assert_eq!(get(b, mc + 16 * 8), 0x40_1234, "rip at REG_RIP (16)");
        assert_eq!(get(b, mc + 15 * 8), 0x7000_1000, "rsp at REG_RSP (15)");
        let fpstate = get(b, mc + 184);
        assert_eq!((fpstate % 64, fpstate), (0, f.fpstate));
        assert_eq!(f.sp + b.len() as u64, fpstate + FXSAVE_SIZE as u64);
        assert_eq!(i32::from_le_bytes(b[312..316].try_into().unwrap()), 10);
        assert_eq!((f.regs.rdi, f.regs.rsi, f.regs.rdx), (10, f.sp + 312, f.sp + 8));
        assert_eq!((f.regs.rip, f.regs.rsp), (0x40_2000, f.sp));
        assert_eq!(f.regs.rflags & (1 << 10), 0, "DF cleared for the handler");

        let r = restore(&b[8..8 + UCONTEXT_SIZE], 0x202);
        assert_eq!(r.regs, regs());
        assert_eq!((r.mask, r.fpstate), (0x1234, fpstate));
    }

    #[test]
    fn altstack_is_used_once() {
        let act = KSigaction { handler: 1, flags: SA_ONSTACK, restorer: 2, mask: 0 };
        let alt = StackT { sp: 0x10_0000, flags: 0, pad: 0, size: 0x4000 };
        let f = build(&regs(), &SigInfo::kernel(11), &act, 0, &alt, Trap::default());
        assert!(alt.on_stack(f.sp));
        assert_eq!(get(&f.bytes, 8 + 16), 0x10_0000);
        // A nested signal on the alternate stack stays below the first frame.
        let mut inner = regs();
        inner.rsp = f.sp;
        let g = build(&inner, &SigInfo::kernel(11), &act, 0, &alt, Trap::default());
        assert!(g.sp < f.sp && g.sp + g.bytes.len() as u64 <= f.sp - 128);
        assert_eq!(alt.reported(f.sp).flags, SS_ONSTACK);
    }

    #[test]
    fn wild_stack_pointers_do_not_overflow() {
        let act = KSigaction { handler: 1, flags: SA_ONSTACK, restorer: 2, mask: 0 };
        for rsp in [0, 100, u64::MAX] {
            let r = kvm_regs { rsp, ..regs() };
            let f = build(&r, &SigInfo::kernel(11), &act, 0, &StackT::disabled(), Trap::default());
            assert!(f.bytes.len() < 2048);
        }
        let alt = StackT { sp: u64::MAX - 10, flags: 0, pad: 0, size: u64::MAX };
        let f = build(&regs(), &SigInfo::kernel(11), &act, 0, &alt, Trap::default());
        assert!(f.bytes.len() < 2048);
    }

    #[test]
    fn sigreturn_cannot_raise_privileged_flags() {
        let f = build(&regs(), &SigInfo::kernel(10), &KSigaction::default(), 0, &StackT::disabled(), Trap::default());
        let mut uc = f.bytes[8..8 + UCONTEXT_SIZE].to_vec();
        put(&mut uc, MCONTEXT + 17 * 8, u64::MAX);
        let r = restore(&uc, 0x2);
        assert_eq!(r.regs.rflags & ((1 << 9) | (3 << 12) | (1 << 14) | (1 << 17)), 0, "IF, IOPL, NT, VM stay clear");
        assert_eq!(r.regs.rflags & (1 << 21), 0, "ID is not the frame's to set");
        assert_eq!(restore(&uc, 0x2 | (1 << 21)).regs.rflags & (1 << 21), 1 << 21, "nor to clear");
    }

    #[test]
    fn images_with_reserved_mxcsr_bits_are_refused() {
        let init = fx::initial();
        assert_eq!((init[0], init[1], init[25]), (0x7f, 0x03, 0x1f));
        assert!(fx::valid(&init));
        let mut bad = init;
        bad[26] = 1; // MXCSR bit 16
        assert!(!fx::valid(&bad));
    }

    #[test]
    fn fxsave_fields_go_where_set_fpu_takes_them() {
        // Each byte holds its offset, so every field shows where it was read.
        let mut b = [0u8; FXSAVE_SIZE];
        for (i, v) in b.iter_mut().enumerate() {
            *v = i as u8;
        }
        let f = fx::to_kvm_fpu(&b);
        assert_eq!((f.fcw, f.fsw, f.ftwx, f.last_opcode), (0x0100, 0x0302, 4, 0x0706));
        assert_eq!((f.last_ip, f.last_dp, f.mxcsr), (0x0f0e_0d0c_0b0a_0908, 0x1716_1514_1312_1110, 0x1b1a_1918));
        assert_eq!((f.fpr[0][0], f.fpr[7][15]), (32, 159));
        assert_eq!((f.xmm[0][0], f.xmm[15][15]), (160, (415 % 256) as u8));
    }

    #[test]
    fn sigreturn_checks_the_selectors() {
        let f = build(&regs(), &SigInfo::kernel(10), &KSigaction::default(), 0, &StackT::disabled(), Trap::default());
        let uc = f.bytes[8..8 + UCONTEXT_SIZE].to_vec();
        assert!(restore(&uc, 0x2).selectors_valid(), "the frame km wrote");
        let with = |cs: u64, ss: u64, flags: u64| {
            let mut uc = uc.clone();
            put(&mut uc, MCONTEXT + 144, cs | (ss << 48));
            put(&mut uc, 0, flags);
            restore(&uc, 0x2).selectors_valid()
        };
        assert!(with(0x30, 0x28, UC_FLAGS), "RPL 3 is ORed in");
        assert!(!with(0x10, 0x2b, UC_FLAGS), "kernel code");
        assert!(!with(0x23, 0x2b, UC_FLAGS), "32-bit user code");
        assert!(!with(0x2b, 0x2b, UC_FLAGS), "data as code");
        assert!(!with(0x33, 0x18, UC_FLAGS), "kernel data as SS, strict");
        assert!(with(0x33, 0x18, 0), "a bad SS is replaced when not strict");
    }
}
