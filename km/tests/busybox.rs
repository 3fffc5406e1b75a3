//! BusyBox under km: its own testsuite (scripts/busybox-testsuite) run
//! natively and entirely under km, and small cases for each difference
//! that testsuite found.

#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};

use support::{Case, Dir};

const BUSYBOX: &str = "/bin/busybox";

fn busybox() -> PathBuf {
    let path = PathBuf::from(BUSYBOX);
    assert!(path.exists(), "{BUSYBOX} missing: install busybox-static");
    path
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write_script(dir: &Dir, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A process is named after the file exec ran (a script's name, not its
/// interpreter's; a link's, not its target's), which is how another
/// process finds it by name in /proc (BusyBox's `pidof this`).
#[test]
fn process_named_after_the_executed_file() {
    let dir = Dir::new("bb-comm");
    let ash = dir.path().join("ash");
    std::os::unix::fs::symlink(BUSYBOX, &ash).unwrap();
    let script = write_script(
        &dir,
        "named-script",
        &format!(
            "#!{BUSYBOX} sh\n\
             cat /proc/$$/comm\n\
             pidof named-script | grep -qw $$ && echo found by pidof\n\
             exec {} -c 'cat /proc/$$/comm; :'\n",
            path_str(&ash)
        ),
    );
    let out = Case::program(busybox(), &["sh", "-c", path_str(&script)]).check(0);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "named-script\nfound by pidof\nash\n");
}
