//! Builds km's vDSO (vdso/) with the system C compiler; km embeds the
//! result and maps it into every guest.

use std::path::Path;
use std::process::Command;

fn main() {
    let src = Path::new("vdso");
    for file in ["vdso.c", "vvar.h", "vdso.lds"] {
        println!("cargo:rerun-if-changed=vdso/{file}");
    }
    println!("cargo:rerun-if-env-changed=CC");
    let out = Path::new(&std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("vdso.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-fPIC", "-O2", "-nostdlib", "-shared", "-ffreestanding", "-fno-builtin", "-fno-stack-protector"])
        .args(["-fno-asynchronous-unwind-tables", "-Wall", "-Wextra", "-s"])
        .arg(format!("-Wl,-T,{}", src.join("vdso.lds").display()))
        .args(["-Wl,--hash-style=both", "-Wl,-soname=linux-vdso.so.1", "-Wl,--no-undefined", "-Wl,--build-id=none"])
        .arg("-o")
        .arg(&out)
        .arg(src.join("vdso.c"))
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run the C compiler `{cc}` for km's vDSO: {e} (install gcc, e.g. build-essential)")
        });
    assert!(status.success(), "building km's vDSO with `{cc}` failed ({status})");
}
