//! What a guest's first touch of a page costs on this device, with the
//! payload's memory mapped by 4 KiB guest pages (as km maps it) against one
//! 2 MiB guest page, over host memory with and without transparent huge
//! pages. Each round is a new VM over the same host memory (already
//! faulted in on the host, as a cached binary is), whose guest writes a
//! byte to each of the 512 pages of its second 2 MiB. Prints microseconds
//! per page, the one exit of an empty round subtracted.

// Shared with the other benchmarks; this one starts no syscall loop.
#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use kvm_ioctls::Kvm;

/// The touched region: guest-physical 2 MiB to 4 MiB.
const REGION: u64 = 2 << 20;
const PAGES: u64 = 512;
/// Where the region's page table goes when it has 4 KiB pages.
const PT: u64 = 0x9000;
const TOUCH: u64 = 0xa000;
/// Present, writable, user; PS for a 2 MiB leaf.
const LEAF: u64 = 7;
const LARGE: u64 = 0x80;

/// The guest: rbx pages from REGION on get a byte each, then the done call.
fn touch_code() -> Vec<u8> {
    let mut code = vec![0xbf]; // mov $REGION, %edi
    code.extend_from_slice(&(REGION as u32).to_le_bytes());
    code.extend_from_slice(&[0x85, 0xdb, 0x74, 0x0e]); // test %ebx,%ebx; jz done
    code.extend_from_slice(&[0xc6, 0x07, 0x01]); // 1: movb $1,(%rdi)
    code.extend_from_slice(&[0x48, 0x81, 0xc7, 0x00, 0x10, 0x00, 0x00]); // add $4096,%rdi
    code.extend_from_slice(&[0xff, 0xcb, 0x75, 0xf2]); // dec %ebx; jnz 1b
    code.extend_from_slice(&[0xb8, common::DONE_CALL, 0, 0, 0, 0x0f, 0x05]); // done: mov $DONE,%eax; syscall
    code
}

fn main() {
    let rounds: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let kvm = Kvm::new().expect("open /dev/kvm");
    let cpuid = kvm.get_supported_cpuid(256).expect("cpuid");
    for (name, large, huge) in [
        ("4k guest pages, small host pages", false, false),
        ("4k guest pages, host THP", false, true),
        ("2M guest page, small host pages", true, false),
        ("2M guest page, host THP", true, true),
    ] {
        let mem = common::Memory::sized(2, huge);
        if large {
            mem.put(common::PD + 8, &(REGION | LARGE | LEAF).to_le_bytes());
        } else {
            mem.put(common::PD + 8, &(PT | LEAF).to_le_bytes());
            for i in 0..PAGES {
                mem.put(PT + 8 * i, &((REGION + i * 4096) | LEAF).to_le_bytes());
            }
        }
        mem.put(TOUCH, &touch_code());
        for i in 0..PAGES {
            mem.put(REGION + i * 4096, &[0]);
        }
        let timed = |pages: u64| {
            let mut total = Duration::ZERO;
            for _ in 0..rounds {
                let mut guest = common::Guest::new(&kvm, &cpuid, &mem);
                let start = Instant::now();
                guest.run_at(TOUCH, pages, common::HostWork::Registers);
                total += start.elapsed();
            }
            total.as_secs_f64() * 1e6 / f64::from(rounds)
        };
        let (empty, full) = (timed(0), timed(PAGES));
        println!("{name:34} {:8.2} us/page", (full - empty) / PAGES as f64);
    }
}
