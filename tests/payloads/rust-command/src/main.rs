//! std::process::Command under km: output captured through pipes, stdin
//! piped in, exit codes and signals, a missing program, env and cwd.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

fn main() {
    let out = Command::new("/bin/sh").args(["-c", "echo out; echo err >&2; exit 3"]).output().expect("sh");
    println!(
        "output: {:?} {:?} code {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code()
    );

    let mut child =
        Command::new("/usr/bin/sort").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn sort");
    child.stdin.take().expect("stdin").write_all(b"pear\napple\nfig\n").expect("write");
    let sorted = child.wait_with_output().expect("wait sort");
    println!("sorted: {:?}", String::from_utf8_lossy(&sorted.stdout));

    let killed = Command::new("/bin/sh").args(["-c", "kill -TERM $$"]).status().expect("status");
    println!("killed by signal: {:?}", killed.signal());

    match Command::new("/nonexistent/program").status() {
        Ok(s) => println!("missing program ran: {s}"),
        Err(e) => println!("missing program: {:?}", e.kind()),
    }

    let env = Command::new("/usr/bin/env").env_clear().env("ONLY", "this").current_dir("/").output().expect("env");
    println!("env: {:?}", String::from_utf8_lossy(&env.stdout));
    let pwd = Command::new("/bin/pwd").current_dir("/usr").output().expect("pwd");
    println!("cwd: {:?}", String::from_utf8_lossy(&pwd.stdout));
    println!("done");
}
