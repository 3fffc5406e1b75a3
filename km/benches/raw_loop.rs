//! The floor for km's syscall round trip: the minimal guest of `common`
//! looping over `syscall`, the host doing per exit only what km's run loop
//! does. Prints nanoseconds per round trip. Run by scripts/bench.

mod common;

use kvm_ioctls::Kvm;

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let kvm = Kvm::new().expect("open /dev/kvm");
    let cpuid = kvm.get_supported_cpuid(256).expect("cpuid");
    let mut guest = common::Guest::new(&kvm, &cpuid, &common::Memory::new());
    let start = std::time::Instant::now();
    guest.run(n + 1);
    println!("{:.1}", start.elapsed().as_nanos() as f64 / n as f64);
}
