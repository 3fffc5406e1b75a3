//! Payload tests: each case runs a program from tests/payloads natively and
//! under km with the same argv, environment and stdin (each run in a fresh
//! temporary directory) and requires the same stdout, stderr and status.
//!
//! Statuses are compared the way a shell reports them: exit code N is N,
//! death by signal S is 128+S. km may either die of the payload's signal
//! or exit with 128+S; both read the same.
//!
//! The km half needs /dev/kvm. If it is missing or inaccessible the tests
//! fail, saying so, unless KM_SKIP_KVM_TESTS=1, which turns that into a loud
//! warning. KM_TEST_NATIVE_ONLY=1 runs only the native half: a check of the
//! payloads and of the expectations below, independent of km.

mod support;

use std::path::Path;

use support::{
    device_args, expect_error_line, fnv1a, km, km_half, native_only, payload, Case, Dir, Outcome,
};

/// Asserts that every line in `lines` appears in the native stdout, so a
/// payload that stopped checking what it should cannot pass unnoticed.
fn assert_lines(out: &Outcome, lines: &[&str]) {
    let text = String::from_utf8_lossy(&out.stdout);
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "expected line {line:?} in native stdout:\n{text}"
        );
    }
}

#[test]
fn hello_args_env() {
    for name in ["hello", "hello-pie"] {
        let case = Case::new(name, &["first", "with space", "", "ünïcode"]);
        let out = case.check(0);
        let path = payload(name);
        let path = path.to_str().unwrap();
        assert_lines(
            &out,
            &[
                "entry sp 16-aligned: yes",
                "argc=5",
                &format!("argv[0]={path}"),
                "argv[2]=with space",
                "argv[3]=",
                "argv[4]=ünïcode",
                "env LANG=C",
                "AT_PAGESZ=4096",
                "AT_PLATFORM=x86_64",
                &format!("AT_EXECFN={path}"),
                "AT_ENTRY is _start: yes",
                "AT_RANDOM non-NULL: yes, 16 bytes not all zero: yes",
            ],
        );
    }
}

#[test]
fn exit_codes() {
    for code in 0..=255 {
        Case::new("exitcode", &[&code.to_string()]).check(code);
    }
}

#[test]
fn file_roundtrip() {
    let out = Case::new("files", &["roundtrip", "{dir}"]).check(0);
    assert_lines(&out, &["first open fd: 3", "content: hello, world", "done"]);
}

#[test]
fn getdents_sorted() {
    let out = Case::new("files", &["getdents", "{dir}"]).check(0);
    assert_lines(
        &out,
        &["  link l", "  subdir d", "  f39 f", "count: 44", "done"],
    );
}

#[test]
fn mmap_family() {
    let out = Case::new("mem", &["mmap", "{dir}"]).check(0);
    assert_lines(
        &out,
        &[
            "DONTNEED zeroes: yes, rest kept: yes",
            "read() sees shared write: SHARED",
            "mapping sees write(): written",
            "done",
        ],
    );
}

#[test]
fn mmap_write_to_read_only_page_segfaults() {
    Case::new("mem", &["ro-write"]).check(139);
}

#[test]
fn mmap_touch_after_munmap_segfaults() {
    Case::new("mem", &["after-munmap"]).check(139);
}

#[test]
fn mprotect_after_write_segfaults() {
    let out = Case::new("mem", &["stale-tlb"]).check(139);
    assert_lines(&out, &["read after mprotect: 1"]);
}

#[test]
fn null_dereference_segfaults() {
    let out = Case::new("crash", &["null"]).check(139);
    let km = Case::new("crash", &["null"]).run_km(&[]);
    assert!(
        km.stderr_text().contains("km: payload killed by SIGSEGV: page fault: read at 0x0"),
        "km names the signal and the fault:\n{km}"
    );
    assert_lines(&out, &["crash null"]);
}

#[test]
fn ud2_is_sigill() {
    Case::new("crash", &["trap"]).check(132);
}

#[test]
fn divide_by_zero_is_sigfpe() {
    Case::new("crash", &["div0"]).check(136);
}

#[test]
fn brk_grow_and_shrink() {
    let out = Case::new("mem", &["brk"]).check(0);
    assert_lines(
        &out,
        &[
            "grew to 256 MiB, every page kept its value: yes",
            "regrown pages are zero: yes",
            "done",
        ],
    );
}

#[test]
fn wild_pointers_efault() {
    let out = Case::new("syscalls", &["efault"]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    // Every probe except the few labelled otherwise must report EFAULT.
    let efaults = text.lines().filter(|l| l.ends_with(": -1 EFAULT")).count();
    assert_eq!(efaults, 29, "EFAULT count in native output:\n{text}");
    assert_lines(
        &out,
        &["pipe data intact: 0123456789", "next fd: 5", "done"],
    );
}

/// km may warn about numbers it does not know; the payload's own output,
/// ENOSYS for each, must match.
#[test]
fn bogus_syscall_numbers_enosys() {
    let case = Case::new("syscalls", &["enosys"]);
    let out = case.check_ignoring_km_warnings(0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.ends_with(": -1 ENOSYS")).count(),
        4,
        "{text}"
    );
}

/// An unimplemented syscall returns ENOSYS to the payload (like the host
/// kernel does for create_module) and km says so once, not per call.
#[test]
fn unimplemented_syscall_warns_once() {
    let case = Case::new("syscalls", &["unimpl"]);
    let native = case.run_native();
    assert_eq!(native.status, 0, "{native}");
    assert_lines(
        &native,
        &["create_module: -1 ENOSYS", "create_module again: -1 ENOSYS"],
    );
    let Some(km) = km_half(|| case.run_km(&[])) else {
        return;
    };
    assert_eq!(
        (&km.stdout, km.status),
        (&native.stdout, native.status),
        "{km}"
    );
    let (warnings, rest) = km.stderr_split_km_lines();
    assert_eq!(
        warnings,
        ["km: unimplemented syscall 174 (create_module)"],
        "{km}"
    );
    assert_eq!(rest, native.stderr_text(), "{km}");
}

#[test]
fn unimplemented_syscall_strict_fails() {
    let case = Case::new("syscalls", &["unimpl"]);
    let Some(km) = km_half(|| case.run_km(&["--strict"])) else {
        return;
    };
    assert_ne!(
        km.status, 0,
        "km --strict must fail on an unimplemented syscall:\n{km}"
    );
    assert!(
        km.stderr_text().contains("174"),
        "--strict must name the syscall:\n{km}"
    );
}

#[test]
fn big_write_64mib() {
    let out = Case::new("io", &["bigwrite"]).check(0);
    let expected: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    assert_eq!(out.stdout.len(), expected.len(), "stdout byte count");
    assert_eq!(fnv1a(&out.stdout), fnv1a(&expected), "stdout checksum");
}

#[test]
fn stdin_piped() {
    // More than a pipe buffer and not a multiple of the payload's reads.
    let mut state = 0x9e3779b97f4a7c15u64;
    let data: Vec<u8> = (0..(1 << 20) + 17)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    for input in [data, Vec::new()] {
        let out = Case::new("io", &["cat"]).stdin(input.clone()).check(0);
        assert!(
            out.stdout == input,
            "cat changed {} bytes of input",
            input.len()
        );
        assert_eq!(out.stderr_text(), format!("copied {}\n", input.len()));
    }
}

#[test]
fn time_clocks() {
    let out = Case::new("info", &["time"]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("FAIL"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.ends_with(": pass")).count(),
        12,
        "{text}"
    );
}

/// The vDSO's clocks: present, agreeing with the syscalls, monotonic.
#[test]
fn vdso_clocks() {
    let out = Case::new("clock", &[]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.lines().any(|l| l.ends_with(": no")), "{text}");
    assert_lines(
        &out,
        &[
            "vDSO present: yes",
            "exports clock_gettime gettimeofday time clock_getres getcpu: yes",
            "CLOCK_MONOTONIC never went back in 100000 calls: yes",
            "vDSO CLOCK_REALTIME agrees with the syscall: yes",
            "vDSO CLOCK_MONOTONIC agrees with the syscall: yes",
            "vDSO CLOCK_BOOTTIME agrees with the syscall: yes",
            "vDSO CLOCK_PROCESS_CPUTIME_ID agrees with the syscall: yes",
            "vDSO clock_gettime of an unknown clock: -22",
            "vDSO gettimeofday agrees with CLOCK_REALTIME: yes",
            "time() and vDSO time agree with the time syscall: yes",
            "CLOCK_REALTIME agrees with time(): yes",
            "vDSO clock_getres CLOCK_MONOTONIC agrees: yes",
            "CLOCK_MONOTONIC advanced at least 20 ms across a 20 ms sleep: yes",
            "done",
        ],
    );
}

/// Under KVM the vDSO serves the time calls inside the VM: km's syscall
/// trace shows none of them.
#[test]
fn vdso_clock_makes_no_exits() {
    let case = Case::new("clock", &["loop"]);
    let Some(km) = km_half(|| case.run_km(&["--log", "syscall=trace"])) else {
        return;
    };
    assert_eq!(km.status, 0, "{km}");
    let trace = strip_ansi(&km.stderr_text());
    assert!(trace.contains("exit_group("), "the trace is on:\n{trace}");
    let exits: Vec<&str> = trace
        .lines()
        .filter(|l| ["clock_gettime(", "gettimeofday(", "clock_getres(", ": time("].iter().any(|c| l.contains(c)))
        .collect();
    assert!(exits.is_empty(), "time calls left the VM:\n{}", exits.join("\n"));
}

/// km's diagnostics may be coloured; the escapes are not part of the text.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn process_info() {
    let ppid = std::process::id().to_string();
    let out = Case::new("info", &["proc", &ppid]).check(0);
    assert_lines(
        &out,
        &[
            "getpid > 0 and is /proc/self: yes",
            "getppid is the harness: yes",
            "gettid == getpid: yes",
            "sysname Linux machine x86_64",
            "release matches /proc: yes",
            "sysinfo sane: yes",
            "getrandom 32 bytes, non-zero: yes, calls differ: yes",
        ],
    );
}

#[test]
fn rust_hello() {
    for code in [0, 42] {
        let out = Case::new("rust-hello", &["{dir}", &code.to_string()]).check(code);
        assert_lines(
            &out,
            &["len 28", r#"dir ["renamed.txt"]"#, "missing: Err(NotFound)"],
        );
    }
}

/// The default panic hook names the thread's id, which differs per run;
/// the harness masks it (see `Outcome::stderr_text`).
#[test]
fn rust_panic() {
    let out = Case::new("rust-hello", &["panic"]).check(101);
    let err = out.stderr_text();
    assert!(
        err.contains("thread 'main' (TID) panicked at src/main.rs:")
            && err.contains("deliberate panic from the payload"),
        "{err}"
    );
}

#[test]
fn missing_device_is_one_line() {
    if native_only() {
        return;
    }
    let out = km(&[
        "--device",
        "/nonexistent",
        payload("hello").to_str().unwrap(),
    ]);
    assert_eq!(out.status, 1, "{out}");
    expect_error_line(&out, &["/nonexistent"]);
}

#[test]
fn rejects_non_elf() {
    let dir = Dir::new("non-elf");
    let script = dir.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    make_executable(&script);
    reject(&script, &["not an elf"]);
}

#[test]
fn rejects_32bit_elf() {
    let dir = Dir::new("elf32");
    let path = dir.path().join("elf32");
    std::fs::write(&path, elf32_exit0()).unwrap();
    make_executable(&path);
    reject(&path, &["32-bit"]);
}

#[test]
fn rejects_dynamic_elf() {
    reject(Path::new("/bin/true"), &["interpreter", "dynamic"]);
}

/// km must refuse `program` with one "km: ..." line naming the reason.
fn reject(program: &Path, reasons: &[&str]) {
    if native_only() {
        return;
    }
    let mut args = device_args();
    args.push(program.to_str().unwrap().into());
    let Some(out) = km_half(|| km(&args)) else {
        return;
    };
    assert_ne!(out.status, 0, "{out}");
    expect_error_line(&out, reasons);
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A minimal i386 ELF executable: one PT_LOAD holding the headers and
/// `mov eax, 1; xor ebx, ebx; int 0x80` (exit(0)).
fn elf32_exit0() -> Vec<u8> {
    const BASE: u32 = 0x0804_8000;
    const HEADERS: u32 = 52 + 32;
    let code = [0xb8, 1, 0, 0, 0, 0x31, 0xdb, 0xcd, 0x80];
    let size = HEADERS + code.len() as u32;
    let mut elf = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0];
    elf.resize(16, 0);
    let u16s = |v: &mut Vec<u8>, xs: &[u16]| xs.iter().for_each(|x| v.extend(x.to_le_bytes()));
    let u32s = |v: &mut Vec<u8>, xs: &[u32]| xs.iter().for_each(|x| v.extend(x.to_le_bytes()));
    u16s(&mut elf, &[2, 3]); // ET_EXEC, EM_386
    u32s(&mut elf, &[1, BASE + HEADERS, 52, 0, 0]); // version, entry, phoff, shoff, flags
    u16s(&mut elf, &[52, 32, 1, 40, 0, 0]); // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    u32s(&mut elf, &[1, 0, BASE, BASE, size, size, 5, 0x1000]); // PT_LOAD, R+X
    elf.extend(code);
    elf
}
