//! Issue 9's remaining process behaviours: what supervisors, shells and
//! test harnesses use around their children, and Debian's own programs.

#[allow(dead_code)]
mod support;

use std::path::PathBuf;

use support::{km_half, Case, Outcome};

/// A child subreaper adopting an orphan (whose getppid then names it),
/// the children's resource use (getrusage RUSAGE_CHILDREN, times), pidfds
/// (pidfd_open, poll, pidfd_send_signal, waitid P_PIDFD, CLONE_PIDFD of
/// clone and clone3), clone3 with a flag no kernel knows, and the
/// credential and capability probes. km
/// reports the clone3 flag it does not serve on its stderr.
#[test]
fn subreaper_usage_pidfds_and_probes() {
    let case = Case::new("procaudit", &[]);
    let native = case.run_native();
    assert_eq!(native.status, 0, "{native}");
    let text = String::from_utf8_lossy(&native.stdout);
    for line in [
        "before: children's cpu zero yes, cutime zero yes",
        "after: children's cpu at least 40 ms yes, cutime+cstime set yes",
        "orphan's getppid is the subreaper: yes",
        "subreaper reaped the orphan: yes, exited 4",
        "pidfd_open: yes",
        "readable once it ended: yes",
        "waitid P_PIDFD: killed by signal 15, pid ok yes",
        "clone3 unknown flag: -1 EINVAL",
        "clone3 CLONE_PIDFD: cloexec yes, waitid P_PIDFD: status 5 pid ok yes",
        "clone CLONE_PIDFD: status 6 pid ok yes",
        "clone CLONE_PIDFD with CLONE_PARENT_SETTID: -1 EINVAL",
        "capset same: 0 ok",
    ] {
        assert!(text.lines().any(|l| l == line), "expected {line:?} in native stdout:\n{text}");
    }
    let Some(km) = km_half(|| case.run_km(&[])) else { return };
    assert_eq!((km.status, &km.stdout), (native.status, &native.stdout), "{km}");
    assert_eq!(km.stderr_text(), "km: not supported: clone of a process with namespace or other flags\n", "{km}");
}

/// `ls -la /` (Debian's, dynamic) as natively; entries whose times the
/// system changes while the test runs are left out of the comparison.
#[test]
fn debian_ls_of_the_root() {
    let case = Case::program(PathBuf::from("/bin/ls"), &["-la", "/"]);
    let native = case.run_native();
    assert_eq!(native.status, 0, "{native}");
    let Some(km) = km_half(|| case.run_km(&[])) else { return };
    let stable = |o: &Outcome| -> Vec<String> {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let volatile = [" tmp", " proc", " dev", " run", " sys"];
        text.lines().filter(|l| !volatile.iter().any(|v| l.ends_with(v))).map(str::to_string).collect()
    };
    assert_eq!((km.status, stable(&km)), (native.status, stable(&native)), "{km}");
    assert!(stable(&native).iter().any(|l| l.ends_with(" usr")), "{native}");
}
