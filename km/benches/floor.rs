//! The floor of any VM-per-process design on this device: what km's
//! start-up and fork cannot go below, for scripts/bench to set against
//! native runs.
//!
//! `floor start EXITS`: one process opens the device, learns its CPUID,
//! creates a VM with one memory slot and one vCPU, takes EXITS guest exits
//! (as many as the payload's system calls) and exits. Timed from outside,
//! as a native program's start is.
//!
//! `floor fork ROUNDS PARENT_EXITS CHILD_EXITS`: a process with such a VM
//! repeats ROUNDS times: its guest takes PARENT_EXITS exits (the payload's
//! calls around a fork and its wait), the host forks, the child creates a
//! new VM (one slot over its copy of the memory, one vCPU, the parent's
//! CPUID), takes CHILD_EXITS exits and exits; the parent waits. Prints
//! nanoseconds per round.

mod common;

use kvm_ioctls::Kvm;

fn arg(n: usize) -> u32 {
    std::env::args().nth(n).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: floor start EXITS | floor fork ROUNDS PARENT_EXITS CHILD_EXITS");
        std::process::exit(2)
    })
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let kvm = Kvm::new().expect("open /dev/kvm");
    let cpuid = kvm.get_supported_cpuid(256).expect("cpuid");
    let mem = common::Memory::new();
    let mut guest = common::Guest::new(&kvm, &cpuid, &mem);
    match mode.as_str() {
        "start" => guest.run(arg(2)),
        "fork" => {
            let (rounds, parent_exits, child_exits) = (arg(2), arg(3), arg(4));
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                guest.run(parent_exits);
                // SAFETY: this program has one thread; the child only makes
                // system calls and exits.
                let pid = unsafe { libc::fork() };
                assert!(pid >= 0, "fork");
                if pid == 0 {
                    // The parent's device, VM and vCPU fds belong to its VM;
                    // the child opens its own.
                    let kvm = Kvm::new().expect("open /dev/kvm");
                    common::Guest::new(&kvm, &cpuid, &mem).run(child_exits);
                    // SAFETY: _exit ends the child without running the
                    // parent's destructors.
                    unsafe { libc::_exit(0) };
                }
                let mut status = 0;
                // SAFETY: waits for the child just forked.
                let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
                assert!(waited == pid && status == 0, "child failed");
            }
            println!("{:.0}", start.elapsed().as_nanos() as f64 / f64::from(rounds));
        }
        _ => {
            eprintln!("usage: floor start EXITS | floor fork ROUNDS PARENT_EXITS CHILD_EXITS");
            std::process::exit(2)
        }
    }
}
