//! Dynamically linked programs: km maps the program's interpreter (musl's
//! or glibc's dynamic linker) as Linux's exec does and starts it, so the
//! host's own binaries run. Each case runs natively and under km.

#[allow(dead_code)]
mod support;

use std::path::PathBuf;

use support::{device_args, expect_error_line, km, km_half, native_only, payload, Case, Dir};

#[test]
fn musl_dynamic_hello() {
    let out = Case::new("hello-dyn", &["one", "two"]).check(0);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in ["argc=3", "argv[2]=two", "AT_ENTRY is _start: yes", "AT_PAGESZ=4096"] {
        assert!(text.lines().any(|l| l == line), "expected {line:?} in:\n{text}");
    }
}

/// glibc's pthreads (clone3 with glibc's argument layout, its TLS and
/// robust lists) in every mode of the threads payload.
#[test]
fn glibc_threads() {
    for mode in ["mutex", "condvar", "barrier", "tls", "cancel", "detached", "many", "exit-early", "main-exits"] {
        Case::new("threads-glibc", &[mode]).check(0);
    }
    Case::new("threads-glibc", &["exit-group"]).check(7);
}

/// Debian's own glibc programs. km may report calls it does not serve yet
/// (e.g. the socket glibc tries for nscd) on its stderr.
#[test]
fn debian_binaries() {
    let host = |p: &str, args: &[&str]| Case::program(PathBuf::from(p), args);
    host("/bin/ls", &["-la", "/usr"]).check_ignoring_km_warnings(0);
    host("/bin/ls", &["-l", "--full-time", "/etc/apt"]).check_ignoring_km_warnings(0);
    host("/bin/ls", &["/nonexistent"]).check_ignoring_km_warnings(2);
    host("/usr/bin/env", &[]).check_ignoring_km_warnings(0);
    host("/usr/bin/sort", &["-r"]).stdin(b"b\nc\na\n".to_vec()).check_ignoring_km_warnings(0);
    host("/usr/bin/md5sum", &[]).stdin(vec![7u8; 100_000]).check_ignoring_km_warnings(0);
    let script = "for i in 1 2 3; do echo $i; done; echo $((6 * 7)); printf '%s-%s\\n' a b; exit 3";
    host("/bin/sh", &["-c", script]).check_ignoring_km_warnings(3);
}

/// An interpreter that does not exist is what exec reports natively:
/// ENOENT, which a shell shows as status 127.
#[test]
fn missing_interpreter() {
    if native_only() {
        return;
    }
    let dir = Dir::new("no-interp");
    let mut elf = std::fs::read(payload("hello-dyn")).unwrap();
    let (from, to) = (&b"/lib/ld-musl-x86_64.so.1\0"[..], &b"/lib/ld-nope-x86_64.so.1\0"[..]);
    let at = elf.windows(from.len()).position(|w| w == from).expect("hello-dyn names ld-musl");
    elf[at..at + to.len()].copy_from_slice(to);
    let path = dir.path().join("no-interp");
    std::fs::write(&path, elf).unwrap();
    let mut args = device_args();
    args.push(path.to_str().unwrap().into());
    let Some(out) = km_half(|| km(&args)) else { return };
    assert_eq!(out.status, 127, "{out}");
    expect_error_line(&out, &["/lib/ld-nope-x86_64.so.1"]);
}
