//! Rust payload: exercises what Rust's std does at startup and in common
//! calls (args, files, hashing with random keys, formatting, exit, panic).
//!
//! Usage: `rust-hello DIR CODE` runs the checks in DIR and exits with CODE;
//! `rust-hello panic` panics (status 101, message on stderr).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::exit;

fn files(dir: &Path) -> std::io::Result<()> {
    let path = dir.join("rust.txt");
    fs::write(&path, "written by std::fs\n")?;
    let mut f = fs::OpenOptions::new().append(true).open(&path)?;
    f.write_all(b"appended\n")?;
    drop(f);
    print!("{}", fs::read_to_string(&path)?);
    println!("len {}", fs::metadata(&path)?.len());
    fs::rename(&path, dir.join("renamed.txt"))?;
    let mut names: Vec<String> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    println!("dir {names:?}");
    fs::remove_file(dir.join("renamed.txt"))?;
    println!("missing: {:?}", fs::read(&path).map_err(|e| e.kind()));
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("panic") {
        panic!("deliberate panic from the payload");
    }
    let [_, dir, code] = &args[..] else {
        eprintln!("usage: rust-hello DIR CODE | rust-hello panic");
        exit(2);
    };
    println!("args {}", args.len());

    if let Err(e) = files(Path::new(dir)) {
        eprintln!("file checks failed: {e}");
        exit(1);
    }

    // HashMap's keys come from getrandom; the order varies, so sort.
    let words = "the quick brown fox jumps over the lazy dog the end";
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in words.split(' ') {
        *counts.entry(w).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort();
    println!("counts {counts:?}");

    println!("fmt {:>8.3}|{:<6}|{:#x}|{:e}|{:?}", std::f64::consts::PI, "ab", 255, 1234.5, Some("x"));
    let code: i32 = code.parse().expect("CODE must be a number");
    println!("exiting with {code}");
    exit(code);
}
