//! signalfd: km's emulated signals read through an fd, natively and
//! under km (see tests/payloads/signalfd.c).

#[allow(dead_code)]
mod support;

use support::Case;

#[test]
fn signalfd_reads_the_payloads_signals() {
    let out = Case::new("signalfd", &[]).check(0);
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("done\n"));
}

/// A signalfd without FD_CLOEXEC is still one after exec (km re-executes
/// itself and takes it over), with its mask.
#[test]
fn signalfd_survives_exec() {
    let out = Case::new("signalfd", &["exec"]).check(0);
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("exec done\n"));
}
