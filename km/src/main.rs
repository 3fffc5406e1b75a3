//! km: runs an unmodified static x86-64 Linux program in its own minimal VM.

mod device;
mod diag;
mod fds;
mod guest;
mod kick;
mod limits;
mod loader;
mod mem;
mod process;
mod seccomp;
mod signal;
mod syscall;
mod thread;
mod vm;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Parser};

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

    /// Run without km's seccomp filter (for debugging km only: the filter
    /// keeps a km that the payload subverted from making other host calls)
    #[arg(long)]
    no_seccomp: bool,

    /// Diagnostics per subsystem, e.g. "syscall=trace,mem=debug"
    /// (subsystems: device, loader, mem, syscall, thread); overrides -V
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

fn main() {
    // Before any other thread exists, so that all of them inherit it: host
    // signals for the payload wait for the forwarding thread.
    signal::forward::block_in_this_thread();
    let cli = Cli::parse();
    if let Err(e) = fds::init().and_then(|_| diag::init().map_err(Into::into)) {
        eprintln!("km: {e}");
        std::process::exit(1);
    }
    init_tracing(&cli);
    // Writes to a closed pipe come back as EPIPE; km raises the payload's
    // own SIGPIPE (see syscall::dispatch).
    // SAFETY: setting a disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    if let Err(e) = kick::install().and_then(|_| seccomp::install_handler()) {
        diag::line(format_args!("cannot install km's signal handlers: {e}"));
        std::process::exit(1);
    }

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
    let first = match vm::start(&opts) {
        Ok(t) => t,
        Err(e) => {
            diag::line(format_args!("{e:#}"));
            std::process::exit(e.exit_code());
        }
    };
    if let Err(e) = signal::forward::start(first.proc.clone()) {
        diag::line(format_args!("cannot start the signal forwarding thread: {e}"));
        std::process::exit(1);
    }
    // Every km thread exists now but the vCPU threads, which inherit it.
    if !cli.no_seccomp {
        match seccomp::install() {
            Ok(true) => {}
            Ok(false) => tracing::info!(target: "device", "this kernel has no seccomp filters: km runs unconfined"),
            Err(e) => {
                diag::line(format_args!("cannot install the seccomp filter: {e}"));
                std::process::exit(1);
            }
        }
    }
    first.run();
}
