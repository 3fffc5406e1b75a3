//! km: runs an unmodified static x86-64 Linux program in its own minimal VM.

mod device;
mod diag;
mod fds;
mod guest;
mod loader;
mod mem;
mod syscall;
mod vm;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Parser};
use nix::sys::signal::Signal;

use syscall::ExitStatus;

/// Run an unmodified static x86-64 Linux program in its own minimal VM.
///
/// The program runs on bare virtual hardware through /dev/kvm or /dev/kkm;
/// its system calls leave the VM and km performs them on the host, so its
/// output, files and exit status are those of a native run.
#[derive(Parser, Debug)]
#[command(name = "km", version, disable_version_flag = true)]
struct Cli {
    /// Hypervisor device (default: $KM_DEVICE, else /dev/kvm, then /dev/kkm)
    #[arg(long, value_name = "PATH")]
    device: Option<PathBuf>,

    /// Make an unimplemented system call fatal (the payload dies of SIGSYS)
    #[arg(long)]
    strict: bool,

    /// More diagnostics on stderr: -V info, -VV debug, -VVV trace
    #[arg(short = 'V', long, action = ArgAction::Count)]
    verbose: u8,

    /// Diagnostics per subsystem, e.g. "syscall=trace,mem=debug"
    /// (subsystems: device, loader, mem, syscall); overrides -V
    #[arg(long, value_name = "FILTER", env = "KM_LOG")]
    log: Option<String>,

    /// Print version
    #[arg(long, action = ArgAction::Version)]
    version: Option<bool>,

    /// The program and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "PROGRAM [ARGS]")]
    command: Vec<OsString>,
}

fn init_tracing(cli: &Cli) {
    let filter = cli.log.clone().unwrap_or_else(|| {
        match cli.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
        .to_string()
    });
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(|| diag::Writer)
        .without_time()
        .init();
}

/// Ends km the way the payload ended: same exit code, or death by the
/// same signal (without a core dump of km itself).
fn finish(status: ExitStatus) -> ! {
    match status {
        ExitStatus::Code(code) => std::process::exit(code),
        ExitStatus::Signal(sig, why) => {
            if !why.is_empty() {
                diag::line(format_args!("payload killed by {}: {why}", sig.as_str()));
            }
            let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: plain libc calls on km's own process state, made as km
            // ends: no core, default action, signal unblocked, then raised.
            unsafe {
                libc::setrlimit(libc::RLIMIT_CORE, &no_core);
                libc::signal(sig as i32, libc::SIG_DFL);
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, sig as i32);
                libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                libc::raise(sig as i32);
            }
            // Only reached for a signal whose default action is not fatal.
            std::process::exit(128 + sig as i32)
        }
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = fds::init().and_then(|_| diag::init().map_err(Into::into)) {
        eprintln!("km: {e}");
        std::process::exit(1);
    }
    init_tracing(&cli);
    // Writes to a closed pipe come back as EPIPE; km applies the payload's
    // own SIGPIPE disposition (see syscall::dispatch).
    // SAFETY: setting a disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };

    let name = PathBuf::from(&cli.command[0]);
    let program = vm::find_program(&name);
    let opts = vm::Options {
        device: device::DeviceChoice::from_args(cli.device.clone(), std::env::var_os("KM_DEVICE")),
        execfn: program.clone().into_os_string(),
        program,
        args: cli.command.clone(),
        env: std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k;
                kv.push("=");
                kv.push(v);
                kv
            })
            .collect(),
        strict: cli.strict,
    };
    let (mut proc, mut vcpu) = match vm::start(&opts) {
        Ok(v) => v,
        Err(e) => {
            diag::line(format_args!("{e:#}"));
            std::process::exit(e.exit_code());
        }
    };
    match vm::run(&mut proc, &mut *vcpu) {
        Ok(status) => finish(status),
        Err(e) => {
            diag::line(format_args!("{e:#}"));
            finish(ExitStatus::Signal(Signal::SIGKILL, String::new()))
        }
    }
}
