//! A hostile payload against km's signal and thread machinery
//! (tests/payloads/hostile-signals.c): signal frames aimed outside payload
//! memory (at addresses where a host process such as km keeps its image,
//! heap, mappings and stack, at km's monitor area, the kernel half, NULL),
//! forged sigreturn frames, tid and robust-list pointers aimed the same
//! way, and privileged instructions. Each case runs natively and under km
//! and must end the same way: km neither writes where the payload points
//! nor lets it leave the sandbox, and gives the signal Linux gives.

#[allow(dead_code)]
mod support;

use support::{km_half, Case, Outcome};

const WILD: usize = 15;

/// Asserts that `line` appears in the native stdout, so a payload that
/// stopped checking what it should cannot pass unnoticed.
fn assert_line(out: &Outcome, line: &str) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l == line), "expected line {line:?} in native stdout:\n{text}");
}

fn count(out: &Outcome, suffix: &str) -> usize {
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.ends_with(suffix)).count()
}

#[test]
fn frame_at_a_wild_rsp_is_a_caught_sigsegv() {
    let out = Case::new("hostile-signals", &["wild-rsp"]).check(0);
    let caught = ": SIGSEGV SI_KERNEL, si_addr 0, on the altstack yes, frame has the wild rsp yes and rip after the \
                  syscall yes, SIGUSR1 handler ran no";
    assert_eq!(count(&out, caught), WILD, "every wild rsp:\n{}", String::from_utf8_lossy(&out.stdout));
    for own in ["a read-only page", "a PROT_NONE page", "the code"] {
        assert_line(&out, &format!("rsp at {own}: SIGSEGV SI_KERNEL, on the altstack yes, SIGUSR1 handler ran no"));
    }
    assert_line(&out, "after all: SIGUSR1 handler ran yes");
}

#[test]
fn frame_at_a_wild_rsp_without_handler_kills() {
    for i in [0, 3, 4, 6, 10, 12] {
        let out = Case::new("hostile-signals", &["wild-rsp-fatal", &i.to_string()]).check(139);
        assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"));
    }
}

#[test]
fn forced_sigsegv_blocked_or_ignored_kills() {
    Case::new("hostile-signals", &["segv-blocked"]).check(139);
    Case::new("hostile-signals", &["segv-ignored"]).check(139);
}

#[test]
fn sigsegv_frame_that_cannot_be_written_kills() {
    Case::new("hostile-signals", &["segv-own-frame"]).check(139);
}

#[test]
fn altstack_outside_payload_memory() {
    let out = Case::new("hostile-signals", &["altstack-wild"]).check(0);
    let caught = ": SIGSEGV SI_KERNEL, on the altstack no, SIGUSR1 handler ran no";
    assert_eq!(count(&out, caught), WILD, "every wild altstack:\n{}", String::from_utf8_lossy(&out.stdout));
    assert_line(&out, "after all: SIGUSR1 handler ran yes");
    Case::new("hostile-signals", &["altstack-wild-fatal"]).check(139);
}

#[test]
fn nested_signal_on_the_altstack() {
    let out = Case::new("hostile-signals", &["nested-onstack"]).check(0);
    assert_line(&out, "nested: SIGUSR1 on the altstack yes, SIGUSR2 ran yes, at the altstack top yes, SIGSEGV no");
}

#[test]
fn autodisarmed_altstack_nested_wild_rsp_kills() {
    let out = Case::new("hostile-signals", &["autodisarm-nested"]).check(139);
    assert_line(&out, "in the handler: altstack disabled");
}

#[test]
fn sigreturn_refuses_what_linux_cannot_return_to() {
    let out = Case::new("hostile-signals", &["sigreturn"]).check(0);
    for line in [
        "nothing edited: returned, frame cs 0x33 ss 0x2b, now ss 0x2b, MXCSR 0x3f80",
        "cs 0x10 (kernel code): SIGSEGV SI_KERNEL, si_addr 0, on the altstack yes",
        "cs 0x2b (user data): SIGSEGV SI_KERNEL, si_addr 0, on the altstack yes",
        "cs 0 (null): SIGSEGV SI_KERNEL, si_addr 0, on the altstack yes",
        "cs 0x30 (user code, RPL 0): returned, frame cs 0x33 ss 0x2b, now ss 0x2b",
        "ss 0x18 (kernel data), strict: SIGSEGV SI_KERNEL, si_addr 0, on the altstack yes",
        "ss 0x18 (kernel data), not strict: returned, frame cs 0x33 ss 0x2b, now ss 0x2b",
        "MXCSR reserved bit: SIGSEGV SI_KERNEL, si_addr 0, on the altstack yes",
        "fpstate NULL: returned, frame cs 0x33 ss 0x2b, now ss 0x2b, MXCSR 0x1f80",
        "fpstate at host heap: SIGSEGV SI_KERNEL, si_addr 0, on the altstack yes",
        "fpstate misaligned: SIGSEGV SI_KERNEL, si_addr 0, on the altstack yes",
        "rflags IOPL NT VM VIF VIP AC DF CF, ID flipped: returned, frame cs 0x33 ss 0x2b, now ss 0x2b, IOPL 0 NT 0 \
         VM 0 VIF 0 VIP 0 AC 1 DF 1 CF 1, ID kept yes",
    ] {
        assert_line(&out, line);
    }
    assert_eq!(count(&out, ": SIGSEGV SI_KERNEL, frame has the wild rsp yes"), WILD);
}

#[test]
fn tid_and_robust_list_pointers_outside_payload_memory() {
    let out = Case::new("hostile-signals", &["tid"]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    let threads = text.lines().filter(|l| l.contains(": child ran yes, gone yes")).count();
    assert_eq!(threads, 7 * 5, "every raw thread ran and ended:\n{text}");
    assert_eq!(count(&out, "child tid word cleared"), 7, "CLEARTID on a good word still works");
    assert_eq!(count(&out, "parent tid word yes"), 7);
    assert_eq!(count(&out, "set_robust_list(wild): 0"), 7);
    assert_eq!(count(&out, "head is the wild one yes, len 24"), 7);
    assert_eq!(count(&out, "wild): -1 EFAULT"), 14);
    assert_line(&out, "set_robust_list(size 23): -1 EINVAL");
}

#[test]
fn privileged_instructions_and_exit_ports_are_sigsegv() {
    let out = Case::new("hostile-signals", &["ports"]).check(0);
    for line in [
        // Each starts with eax = exit_group, edi = 42: an `out` taken for
        // a syscall would end the payload with status 42.
        "out_syscall_port: SIGSEGV SI_KERNEL, si_addr 0, rip at the instruction yes, trapno 13, err 0",
        "out_fault_port: SIGSEGV SI_KERNEL, si_addr 0, rip at the instruction yes, trapno 13, err 0",
        "out_dx_syscall_port: SIGSEGV SI_KERNEL, si_addr 0, rip at the instruction yes, trapno 13, err 0",
        "outsb_syscall_port: SIGSEGV SI_KERNEL, si_addr 0, rip at the instruction yes, trapno 13, err 0",
        "in_syscall_port: SIGSEGV SI_KERNEL, si_addr 0, rip at the instruction yes, trapno 13, err 0",
        "hlt_insn: SIGSEGV SI_KERNEL, si_addr 0, rip at the instruction yes, trapno 13, err 0",
        "int14_insn: SIGSEGV SI_KERNEL, si_addr 0, rip at the instruction yes, trapno 13, err 0x72",
        "int3_long_insn: SIGTRAP SI_KERNEL, si_addr 0, rip at the instruction no, trapno 3, err 0",
        "sysret_insn: SIGSEGV SI_KERNEL, si_addr 0, rip at the instruction yes, trapno 13, err 0",
        "iret_kernel_insn: SIGSEGV SI_KERNEL, si_addr 0, rip at the instruction no, trapno 13, err 0x10",
        "out_fault_port_ist: SIGSEGV SI_KERNEL, si_addr 0, rip at the instruction no, trapno 13, err 0",
        "IOPL after popf: 0",
        "syscall with forged rcx and r11: returned here yes, IOPL 0 NT 0",
    ] {
        assert_line(&out, line);
    }
}

/// The pad's page must be user-executable where `syscall` stays at CPL3
/// (PVM), so a jump to it is a syscall there: with the registers a real
/// `syscall` would have had, flags sanitized, nothing gained. Natively
/// nothing is mapped there; where the pad runs at CPL0 the CPU refuses
/// its `out` at CPL3 (#GP). docs/architecture.md says so.
#[test]
fn jump_into_the_landing_pad() {
    let case = Case::new("hostile-signals", &["pad"]);
    let native = case.run_native();
    assert_eq!(native.status, 0, "{native}");
    assert_line(&native, "jump into the pad: SIGSEGV SEGV_MAPERR, si_addr is the pad yes");
    km_half(|| {
        let km = case.run_km(&[]);
        let text = String::from_utf8_lossy(&km.stdout);
        assert!(
            km.status == 0
                && (text == "jump into the pad: returned to rcx, getpid yes, IOPL 0 NT 0\n"
                    || text == "jump into the pad: SIGSEGV SI_KERNEL, si_addr is the pad no\n"),
            "{km}"
        );
    });
}

/// A thread that never leaves the payload's own code and the vDSO takes
/// its signal: the vDSO lives in km's monitor area but is payload code.
#[test]
fn signal_reaches_a_thread_spinning_in_the_vdso() {
    let out = Case::new("hostile-signals", &["vdso-spin"]).check(0);
    assert_line(&out, "spinners stopped by a signal: 20");
}

/// Loads and stores at the wild addresses fault as natively, with Linux's
/// si_code (MAPERR: nothing of the payload's is there, even where km's
/// monitor pages are). Three loads are the documented exception on KVM:
/// km's two code pages (landing pad and stubs) and its (read-only) signal
/// scratch are user-readable, because on PVM the pad and the return stub
/// run at CPL3. (On kkm only the pad's page is: the rig runs `touch pad`.)
#[test]
fn loads_and_stores_outside_payload_memory() {
    const READABLE: [&str; 3] = ["load at monitor pad: ", "load at monitor IDT stubs: ", "load at monitor scratch: "];
    let case = Case::new("hostile-signals", &["touch"]);
    let native = case.run_native();
    assert_eq!(native.status, 0, "{native}");
    let text = String::from_utf8_lossy(&native.stdout).into_owned();
    // A non-canonical address is a #GP, not a page fault.
    assert_eq!(text.lines().filter(|l| l.ends_with(": SIGSEGV SEGV_MAPERR, si_addr exact")).count(), 2 * WILD - 2);
    assert_line(&native, "store at non-canonical: SIGSEGV SI_KERNEL, si_addr 0");
    let compared = |text: &str| -> Vec<String> {
        text.lines().filter(|l| !READABLE.iter().any(|r| l.starts_with(r))).map(String::from).collect()
    };
    km_half(|| {
        let km = case.run_km(&[]);
        let km_text = String::from_utf8_lossy(&km.stdout).into_owned();
        assert_eq!((km.status, compared(&km_text)), (0, compared(&text)), "{km}");
        for r in READABLE {
            assert!(km_text.lines().any(|l| l == format!("{r}no fault")), "{km}");
        }
    });
}
