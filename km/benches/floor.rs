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
//!
//! `floor spawn ROUNDS PARENT_EXITS CHILD_EXITS EXEC_EXITS`: the same, but
//! the child's guest then execs: the host execve of this program as
//! `floor start EXEC_EXITS` (a new VM in the new image), given the CPUID
//! through the environment as km hands it to an exec'd km. Prints
//! nanoseconds per round.

mod common;

use kvm_bindings::{kvm_cpuid_entry2, CpuId};
use kvm_ioctls::Kvm;

const USAGE: &str = "usage: floor start EXITS | floor fork ROUNDS PARENT_EXITS CHILD_EXITS \
                     | floor spawn ROUNDS PARENT_EXITS CHILD_EXITS EXEC_EXITS";
/// The CPUID a spawning parent hands its exec'd child.
const CPUID_ENV: &str = "FLOOR_CPUID";

fn arg(n: usize) -> u32 {
    std::env::args().nth(n).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        eprintln!("{USAGE}");
        std::process::exit(2)
    })
}

/// CPUID entries as text: "function index flags eax ebx ecx edx" per line.
fn cpuid_text(cpuid: &CpuId) -> String {
    cpuid
        .as_slice()
        .iter()
        .map(|e| format!("{} {} {} {} {} {} {}\n", e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx))
        .collect()
}

fn cpuid_from_text(text: &str) -> CpuId {
    let entries: Vec<kvm_cpuid_entry2> = text
        .lines()
        .map(|l| {
            let v: Vec<u32> = l.split(' ').map(|f| f.parse().expect("CPUID field")).collect();
            kvm_cpuid_entry2 {
                function: v[0],
                index: v[1],
                flags: v[2],
                eax: v[3],
                ebx: v[4],
                ecx: v[5],
                edx: v[6],
                ..Default::default()
            }
        })
        .collect();
    CpuId::from_entries(&entries).expect("CPUID entries")
}

/// Forks ROUNDS times; the child runs `child` and exits with the status it
/// returns, and the parent waits. Prints nanoseconds per round.
fn fork_rounds(guest: &mut common::Guest, rounds: u32, parent_exits: u32, child: impl Fn() -> i32) {
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        guest.run(parent_exits);
        // SAFETY: this program has one thread; the child only makes system
        // calls, then execs or exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let status = child();
            // SAFETY: _exit ends the child without running the parent's
            // destructors.
            unsafe { libc::_exit(status) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(waited == pid && status == 0, "child failed");
    }
    println!("{:.0}", start.elapsed().as_nanos() as f64 / f64::from(rounds));
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let kvm = Kvm::new().expect("open /dev/kvm");
    let cpuid = match std::env::var(CPUID_ENV) {
        Ok(text) => cpuid_from_text(&text),
        Err(_) => kvm.get_supported_cpuid(256).expect("cpuid"),
    };
    let mem = common::Memory::new();
    let mut guest = common::Guest::new(&kvm, &cpuid, &mem);
    // The child's own VM: the parent's device, VM and vCPU fds belong to
    // the parent's VM.
    let child_guest = |exits: u32| {
        let kvm = Kvm::new().expect("open /dev/kvm");
        common::Guest::new(&kvm, &cpuid, &mem).run(exits);
    };
    match mode.as_str() {
        "start" => guest.run(arg(2)),
        "fork" => fork_rounds(&mut guest, arg(2), arg(3), || {
            child_guest(arg(4));
            0
        }),
        "spawn" => {
            let exe = std::env::current_exe().expect("own path");
            let cpuid_env = cpuid_text(&cpuid);
            fork_rounds(&mut guest, arg(2), arg(3), || {
                use std::os::unix::process::CommandExt;
                child_guest(arg(4));
                let err = std::process::Command::new(&exe)
                    .args(["start", &arg(5).to_string()])
                    .env(CPUID_ENV, &cpuid_env)
                    .exec();
                eprintln!("floor: exec {}: {err}", exe.display());
                1
            })
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2)
        }
    }
}
