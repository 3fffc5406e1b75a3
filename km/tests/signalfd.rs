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
