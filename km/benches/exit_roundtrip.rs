//! The cost of one syscall exit per device: the minimal guest of `common`
//! loops over `syscall`, each one an exit to this program, which resumes it
//! with KVM_RUN. Run on every device given (default /dev/kvm and /dev/kkm),
//! so kkm can be set against KVM on the same host; a device that cannot be
//! opened is reported as absent, loudly, and the ratio needs both.
//!
//!     exit_roundtrip [ROUND_TRIPS [DEVICE...]]
//!
//! Two figures per device, in nanoseconds per exit (one entry and one exit):
//! `resume` (the host does only what the guest needs to go on) and
//! `registers` (the host also reads and writes the registers as km does at
//! each system call), and native `getppid` for scale. One line per figure,
//! its name first and its value second, for scripts/bench; the line says
//! how many of the round trips completed (scripts/test-kkm checks that in
//! QEMU, where an emulated CPU makes the times meaningless: the program
//! says so when it sees one).

mod common;

use common::HostWork;
use kvm_ioctls::Kvm;
use std::ffi::CString;
use std::time::Instant;

/// The CPU's brand string and the hypervisor's signature, if any.
fn cpu_identity() -> (String, Option<String>) {
    use std::arch::x86_64::__cpuid;
    let text = |regs: &[u32]| -> String {
        let bytes: Vec<u8> = regs.iter().flat_map(|r| r.to_le_bytes()).collect();
        String::from_utf8_lossy(&bytes).trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string()
    };
    let brand = if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
        let leaves: Vec<u32> =
            (0x8000_0002..=0x8000_0004).map(__cpuid).flat_map(|r| [r.eax, r.ebx, r.ecx, r.edx]).collect();
        text(&leaves)
    } else {
        "unknown".to_string()
    };
    // CPUID.1:ECX bit 31: running under a hypervisor, whose leaf 0x40000000
    // names it.
    let hypervisor = (__cpuid(1).ecx >> 31 != 0).then(|| {
        let r = __cpuid(0x4000_0000);
        text(&[r.ebx, r.ecx, r.edx])
    });
    (brand, hypervisor)
}

fn native_getppid(n: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        // SAFETY: getppid takes no argument and cannot fail.
        std::hint::black_box(unsafe { libc::syscall(libc::SYS_getppid) });
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

/// One device's figures: per-exit nanoseconds for `resume` and `registers`.
struct Figures {
    resume: f64,
    registers: f64,
}

/// Opens the device at `path` and checks that it speaks KVM's API, or says
/// why not.
fn open(path: &str) -> Result<Kvm, String> {
    let cpath = CString::new(path).map_err(|e| e.to_string())?;
    let kvm = Kvm::new_with_path(&cpath).map_err(|e| e.to_string())?;
    match kvm.get_api_version() {
        12 => Ok(kvm),
        v => Err(format!("not a KVM-style device (KVM_GET_API_VERSION gave {v})")),
    }
}

/// Builds the guest on `kvm`, warms it up (its pages mapped, the code
/// cached) and measures. Returns the device's flavor with its figures.
fn measure(kvm: &Kvm, path: &str, n: u32) -> Result<(&'static str, Figures), String> {
    let flavor = if common::is_kkm(kvm) { "kkm" } else { "kvm" };
    let cpuid = kvm.get_supported_cpuid(256).map_err(|e| format!("KVM_GET_SUPPORTED_CPUID: {e}"))?;
    let mut guest = common::Guest::new(kvm, &cpuid, &common::Memory::new());
    let warm = n.clamp(1, 1000);
    guest.run(warm + 1);
    let mut figures = Figures { resume: 0.0, registers: 0.0 };
    for (work, name, slot) in
        [(HostWork::Resume, "resume", &mut figures.resume), (HostWork::Registers, "registers", &mut figures.registers)]
    {
        let start = Instant::now();
        // n round trips, then the exit that ends the loop: n + 1 entries and exits.
        let calls = guest.run_with(n + 1, work);
        *slot = start.elapsed().as_nanos() as f64 / f64::from(n + 1);
        let how = match work {
            HostWork::Resume => {
                "host per exit: KVM_RUN only, plus rip/rflags through SYNC_REGS where the pad stays at CPL3"
            }
            HostWork::Registers if guest.uses_sync_regs() => {
                "host per exit: registers read and written back as km does, through SYNC_REGS"
            }
            HostWork::Registers => {
                "host per exit: registers read and written back as km does, with KVM_GET_REGS + KVM_SET_REGS"
            }
        };
        println!("{flavor}-{name:<10} {:>10.1} ns  {path}: {calls} of {n} round trips; {how}", *slot);
        if calls != n {
            return Err(format!("{path}: only {calls} of {n} round trips"));
        }
    }
    Ok((flavor, figures))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = match args.next().map(|s| s.parse()) {
        None => 100_000,
        Some(Ok(n)) if n > 0 && n < u32::MAX => n,
        Some(_) => {
            eprintln!("usage: exit_roundtrip [ROUND_TRIPS [DEVICE...]]");
            std::process::exit(2)
        }
    };
    let mut devices: Vec<String> = args.collect();
    if devices.is_empty() {
        devices = vec!["/dev/kvm".into(), "/dev/kkm".into()];
    }

    println!("exit_roundtrip: {n} syscall round trips per figure (guest syscall, exit to this program, KVM_RUN)");
    let (brand, hypervisor) = cpu_identity();
    match &hypervisor {
        Some(sig) => println!("cpu: {brand}; under a hypervisor ({sig}): exits may cost that hypervisor's work too"),
        None => println!("cpu: {brand}; no hypervisor (bare metal)"),
    }
    if brand.contains("TCG") || hypervisor.as_deref() == Some("TCGTCGTCGTCG") {
        println!("NOTE: the CPU is emulated (QEMU TCG): these times say nothing about hardware; this run checks only that the round trips complete");
    }
    println!("native-getppid   {:>10.1} ns", native_getppid(n));

    let mut measured = Vec::new();
    let mut failed = false;
    for path in &devices {
        match open(path).map(|kvm| measure(&kvm, path, n)) {
            Err(why) => println!("ABSENT {path}: {why}: nothing measured there"),
            Ok(Ok(m)) => measured.push(m),
            Ok(Err(why)) => {
                println!("FAILED {path}: {why}");
                failed = true;
            }
        }
    }
    let find = |flavor: &str| measured.iter().find(|(f, _)| *f == flavor).map(|(_, figures)| figures);
    match (find("kkm"), find("kvm")) {
        (Some(kkm), Some(kvm)) => {
            println!("ratio-resume     {:>10.2}    kkm / kvm", kkm.resume / kvm.resume);
            println!("ratio-registers  {:>10.2}    kkm / kvm", kkm.registers / kvm.registers);
        }
        (kkm, _) => {
            let missing = if kkm.is_none() { "kkm" } else { "kvm" };
            println!("no kkm / kvm ratio: no {missing} device measured here (it needs both)");
        }
    }
    if failed || measured.is_empty() {
        std::process::exit(1);
    }
}
