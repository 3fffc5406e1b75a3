//! What other processes see of a payload's command line and environment
//! (issue 9): /proc/<pid>/cmdline, environ and comm of another km process
//! are the payload's, as `ps`, `pidof` and `pgrep -f` read them, not km's
//! own (`km --exec-state ... PROGRAM ARGS`) and km's environment.
//! tests/payloads/cmdline.c runs natively and under km with the same output.

#[allow(dead_code)]
mod support;

use std::path::Path;

use support::{km_half, payload, Case};

fn stdout(out: &support::Outcome) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A forked child shows the parent's arguments and environment, which a
/// host fork of km keeps.
#[test]
fn forked_child_shows_the_parents() {
    let out = Case::new("cmdline", &["fork"]).check(0);
    let program = payload("cmdline");
    // Each "\\0" stands for one byte.
    let args = format!("{}\\0fork\\0", program.display());
    let text = stdout(&out);
    assert!(text.contains(&format!("\ncmdline ({}): {args}\n", args.len() - 2)), "{text}");
    assert!(text.contains("\nenviron ("), "{text}");
    assert!(text.contains("KM_PAYLOAD_TEST=1\\0"), "{text}");
}

/// After exec, the new program's arguments (an empty one among them) and
/// environment, exactly as exec laid them out, and its name.
#[test]
fn exec_shows_the_new_program() {
    let out = Case::new("cmdline", &["exec"]).check(0);
    assert_eq!(
        stdout(&out),
        "own cmdline (39): cmdline-child\\0waiter\\0arg one\\0\\0--flag=x\\0\n\
         cmdline (39): cmdline-child\\0waiter\\0arg one\\0\\0--flag=x\\0\n\
         environ (45): CMDLINE_TEST=distinctive value\\0EMPTY=\\0LAST=1\\0\n\
         comm (8): cmdline\n\n\
         child status 0\n"
    );
}

/// A second exec replaces what the first one showed.
#[test]
fn second_exec_shows_the_second_program() {
    let out = Case::new("cmdline", &["exec2"]).check(0);
    assert_eq!(
        stdout(&out),
        "own cmdline (30): second-name\\0waiter\\0after exec\\0\n\
         cmdline (30): second-name\\0waiter\\0after exec\\0\n\
         environ (18): SECOND=after exec\\0\n\
         comm (8): cmdline\n\n\
         child status 0\n"
    );
}

/// A shell finds a payload it started by name and by arguments: BusyBox's
/// `pidof` and `ps -o args`, and the host's `pgrep -f` where installed.
#[test]
fn shell_finds_the_payload_by_name_and_arguments() {
    let pgrep = Path::new("/usr/bin/pgrep").exists();
    let script = format!(
        "ln -s {} cmdline-holder\n\
         ./cmdline-holder hold 'distinctive arg' | {{\n\
           read line; echo \"$line\"\n\
           for p in $(pidof cmdline-holder); do tr '\\0' ' ' < /proc/$p/cmdline; echo; done\n\
           ps -o args | grep -x './cmdline-holder hold distinctive arg'\n\
           {}\n\
         }}\n",
        payload("cmdline").display(),
        if pgrep {
            "/usr/bin/pgrep -fx './cmdline-holder hold distinctive arg' >/dev/null && echo 'found by pgrep -f'"
        } else {
            ":"
        }
    );
    // The host's pgrep is a dynamic program whose C library asks for a
    // call km reports as unimplemented.
    let out = Case::program("/bin/busybox".into(), &["sh", "-c", &script]).check_ignoring_km_warnings(0);
    let mut expected = "ready\n\
                        ./cmdline-holder hold distinctive arg \n\
                        ./cmdline-holder hold distinctive arg\n"
        .to_string();
    if pgrep {
        expected.push_str("found by pgrep -f\n");
    }
    assert_eq!(stdout(&out), expected);
}

/// The payload cannot repoint what the host shows of it: km refuses every
/// PR_SET_MM operation with EPERM, where natively an unprivileged process
/// may set its own command line with PR_SET_MM_MAP (so only km's run is
/// held to exact output), and others still see the payload's arguments.
#[test]
fn payload_cannot_set_the_host_view() {
    let case = Case::new("cmdline", &["attack"]);
    assert_eq!(case.run_native().status, 0);
    let Some(out) = km_half(|| case.run_km(&[])) else { return };
    let args = format!("{}\\0attack\\0", payload("cmdline").display());
    let len = args.len() - 2; // each "\\0" stands for one byte
    assert_eq!(out.status, 0, "{out}");
    let text = stdout(&out);
    let expected_start = format!(
        "PR_SET_MM_MAP_SIZE: EPERM\n\
         PR_SET_MM_MAP: EPERM\n\
         PR_SET_MM_ARG_START: EPERM\n\
         own cmdline ({len}): {args}\n\
         cmdline ({len}): {args}\n\
         environ ("
    );
    assert!(text.starts_with(&expected_start), "{text}");
    assert!(text.ends_with("comm (8): cmdline\n\nchild status 0\n"), "{text}");
}

/// Where the kernel refuses PR_SET_MM_MAP (here a seccomp filter around km
/// answers EPERM), the payload runs as before, its own /proc/self/cmdline
/// is right, and others see km's command line instead.
#[test]
fn refused_by_the_kernel_changes_nothing_for_the_payload() {
    let mut args: Vec<String> = vec![env!("CARGO_BIN_EXE_km").into()];
    args.extend(support::device_args());
    args.extend([payload("cmdline").to_str().unwrap().into(), "exec".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(out) = km_half(|| Case::program(payload("deny-set-mm"), &args).run_native()) else { return };
    assert_eq!((out.status, out.stderr_text().as_str()), (0, ""), "{out}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "own cmdline (39): cmdline-child\\0waiter\\0arg one\\0\\0--flag=x\\0", "{text}");
    assert!(lines[1].starts_with("cmdline (") && lines[1].contains("\\0--exec-path\\0"), "{text}");
    assert!(text.ends_with("comm (8): cmdline\n\nchild status 0\n"), "{text}");
}
