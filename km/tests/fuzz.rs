//! The syscall fuzzer (tests/payloads/fuzz.c) under km, and regression
//! cases for what it found (tests/payloads/fuzzfound.c).
//!
//! The fuzzer runs under km only: random system calls made natively as
//! root could harm the machine, and km is what is under test. Each run
//! must end with exit 0 and the fuzzer's summary line; km must not panic
//! or report anything but calls it does not implement. The harness's
//! timeout catches hangs.
//!
//! Runs are seeded: a failure names its seed, and KM_FUZZ_SEED=<n>
//! replays it (every case then uses that seed). With one thread a seed
//! replays the same calls exactly; the fuzzer's FUZZ_TRACE=1 (run it by
//! hand under km in an empty directory) prints each call.

#[allow(dead_code)]
mod support;

use support::{km_half, Case};

/// The seed for a case: KM_FUZZ_SEED if set, else the case's own.
fn seed(default: u64) -> u64 {
    match std::env::var("KM_FUZZ_SEED") {
        Ok(s) => s.parse().unwrap_or_else(|_| panic!("KM_FUZZ_SEED={s:?} is not a number")),
        Err(_) => default,
    }
}

/// Runs `calls` random calls on each of `threads` threads (0: the main
/// thread alone) under km.
fn fuzz(default_seed: u64, calls: u32, threads: u32) {
    let seed = seed(default_seed);
    let case = Case::new("fuzz", &[&seed.to_string(), &calls.to_string(), &threads.to_string()]);
    let Some(out) = km_half(|| case.run_km(&[])) else { return };
    let stderr = out.stderr_text();
    let replay = format!("fuzz seed {seed} ({threads} threads; replay with KM_FUZZ_SEED={seed})");
    assert!(!stderr.contains("panicked"), "km panicked, {replay}:\n{out}");
    assert_eq!(out.status, 0, "{replay} did not exit 0:\n{out}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with(&format!("fuzz: done seed {seed} "))),
        "{replay}: no summary line:\n{out}"
    );
    for line in stderr.lines() {
        assert!(
            line.starts_with("km: unimplemented syscall ") || line.starts_with("km: not implemented yet: "),
            "{replay}: unexpected line on stderr: {line:?}\n{out}"
        );
    }
}

#[test]
fn fuzz_one_thread() {
    for s in [1, 2] {
        fuzz(s, 25_000, 0);
    }
}

#[test]
fn fuzz_four_threads() {
    for s in [3, 4] {
        fuzz(s, 6_250, 4);
    }
}

/// km checked struct timezone as libc's opaque (empty) type, so the host
/// wrote it into km's landing pad at 511 GiB and the next syscall faulted.
/// (The guard page below the monitor area now stops such writes too.)
#[test]
fn gettimeofday_timezone_at_the_edge() {
    Case::new("fuzzfound", &["timezone"]).check(0);
}

/// km added the offset into the first page to mlock's length unchecked:
/// an overflow panic in km (a hang with threads). Linux wraps.
#[test]
fn mlock_length_overflow() {
    Case::new("fuzzfound", &["mlock"]).check(0);
}

/// A path at the top of payload memory: the host kernel scanned it on into
/// km's monitor area (ENOENT where Linux gives EFAULT); a guard page now
/// ends payload memory.
#[test]
fn path_running_off_the_top_of_payload_memory() {
    Case::new("fuzzfound", &["path-edge"]).check(0);
}

/// km mapped PROT_EXEC-only (PROT_WRITE-only) pages so on the host too,
/// which KVM cannot read: running or reading one killed the payload with
/// SIGBUS.
#[test]
fn exec_only_pages_are_readable() {
    Case::new("fuzzfound", &["exec-only"]).check(0);
}

/// A MAP_SHARED anonymous mapping grown by mremap reaches past its shmem
/// object: a touch there is SIGBUS on Linux, which km could not deliver
/// (it did not count shared anonymous memory as file-backed) and ended
/// the payload instead.
#[test]
fn grown_shared_anonymous_mapping_is_sigbus() {
    Case::new("fuzzfound", &["shared-grown"]).check(0);
}
