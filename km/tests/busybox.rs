//! BusyBox under km: its own testsuite (scripts/busybox-testsuite) run
//! natively and entirely under km, and small cases for each difference
//! that testsuite found.

#[allow(dead_code)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;

use support::{km_half, path_str, Case, Dir};

const BUSYBOX: &str = "/bin/busybox";

fn busybox() -> PathBuf {
    let path = PathBuf::from(BUSYBOX);
    assert!(path.exists(), "{BUSYBOX} missing: install busybox-static");
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
    let script = dir.script(
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

/// Applets whose tests the suite skips unless KM_BUSYBOX_FULL=1
/// (scripts/busybox-testsuite-full): each runs thousands of processes
/// (the checksum applets hash 1,000 inputs, a process pair per input) or
/// millions of one-line writes (bc), at a guest exit per call, minutes
/// each under km; together most of the full run's time.
const SLOW_APPLETS: &str = "bc,md5sum,sha1sum,sha256sum,sha3sum,sha512sum";

/// Fewer native passes than this means the testsuite did not really run.
const MIN_NATIVE_PASSES: usize = 600;

/// One run of scripts/busybox-testsuite; returns test name -> status and
/// the driver's log.
fn run_testsuite(km: Option<&str>, out: &Path, full: bool) -> (BTreeMap<String, String>, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut cmd = Command::new(root.join("scripts/busybox-testsuite"));
    if let Some(km) = km {
        // KM_DEVICE, if set, reaches km through the script.
        cmd.args(["--km", km]);
    }
    if !full {
        cmd.args(["--without", SLOW_APPLETS]);
    }
    let status = cmd.arg(out).status().expect("cannot run scripts/busybox-testsuite");
    let mut log = std::fs::read_to_string(out.join("log")).unwrap_or_default();
    // The watchdog's kills, so a test it ended is not mistaken for km's doing.
    let timeouts = std::fs::read_to_string(out.join("timeouts")).unwrap_or_default();
    if !timeouts.is_empty() {
        log.push_str(&format!("\n{timeouts}"));
    }
    let results = std::fs::read_to_string(out.join("results"))
        .unwrap_or_else(|e| panic!("scripts/busybox-testsuite ({status}) left no results: {e}\n{log}"));
    let map = results
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(status, name)| (name.to_string(), status.to_string()))
        .collect();
    (map, log)
}

/// tests/busybox-testsuite.exclude: "name<TAB>reason" lines, # comments.
fn exclusions() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let text = std::fs::read_to_string(root.join("tests/busybox-testsuite.exclude")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, reason) = l.split_once('\t').unwrap_or_else(|| panic!("exclusion without a reason: {l:?}"));
            assert!(!reason.trim().is_empty(), "exclusion without a reason: {l:?}");
            name.to_string()
        })
        .collect()
}

/// The log lines of `name`'s result and the verbose report before it.
fn excerpt(log: &str, name: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let at = lines.iter().position(|l| l.ends_with(&format!(": {name}")));
    match at {
        Some(i) => lines[i.saturating_sub(20)..=i].join("\n"),
        None => format!("(no result line for {name:?} in the km log)"),
    }
}

/// BusyBox's own testsuite passes under km wherever it passes natively
/// (less tests/busybox-testsuite.exclude): the driver, every applet and
/// every shell under km, natively and under km at the same time.
#[test]
fn busybox_testsuite() {
    busybox();
    let full = std::env::var("KM_BUSYBOX_FULL").as_deref() == Ok("1");
    let (native_dir, km_dir) = (Dir::new("bbts-native"), Dir::new("bbts-km"));
    let (native, km) = thread::scope(|s| {
        let km = s.spawn(|| km_half(|| run_testsuite(Some(env!("CARGO_BIN_EXE_km")), km_dir.path(), full)));
        let native = run_testsuite(None, native_dir.path(), full);
        (native, km.join().unwrap())
    });
    let (native, _) = native;
    let passed: BTreeSet<&String> = native.iter().filter(|(_, st)| *st == "PASS").map(|(n, _)| n).collect();
    assert!(passed.len() >= MIN_NATIVE_PASSES, "only {} tests passed natively", passed.len());
    let excluded = exclusions();
    if full {
        let stale: Vec<&String> = excluded.iter().filter(|n| !native.contains_key(*n)).collect();
        assert!(stale.is_empty(), "exclusions naming no test of the suite: {stale:?}");
    }
    let Some((km, km_log)) = km else { return };
    let lost: Vec<&&String> =
        passed.iter().filter(|n| km.get(**n).map(String::as_str) != Some("PASS") && !excluded.contains(**n)).collect();
    let mut report: Vec<String> = lost.iter().map(|n| format!("--- {n}\n{}", excerpt(&km_log, n))).collect();
    report.extend(km_log.lines().filter(|l| l.starts_with("busybox-testsuite: timeout")).map(String::from));
    assert!(
        lost.is_empty(),
        "{} of {} tests passing natively do not pass under km:\n{}",
        lost.len(),
        passed.len(),
        report.join("\n")
    );
}
