//! km: runs an unmodified static x86-64 Linux program in its own minimal VM.

mod device;
mod diag;
mod exec;
mod fds;
mod fork;
mod futex;
mod guest;
mod host_cmdline;
mod kick;
mod limits;
mod loader;
mod mem;
mod process;
mod procfs;
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

    /// Set by km re-executing itself for the payload's execve: a memfd
    /// with the state that survives exec and what the old km learned of
    /// the device (see exec.rs)
    #[arg(long, hide = true, value_name = "FD")]
    exec_fd: Option<i32>,

    /// Set by km re-executing itself: the file to run, the arguments
    /// starting with argv[0]
    #[arg(long, hide = true, value_name = "PATH")]
    exec_path: Option<PathBuf>,

    /// Set by km re-executing itself: AT_EXECFN, if not the path
    #[arg(long, hide = true, value_name = "NAME")]
    exec_fn: Option<std::ffi::OsString>,

    /// The program and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "PROGRAM [ARGS]")]
    command: Vec<OsString>,
}

/// The diagnostics filter: --log (or KM_LOG), else from -V.
fn log_filter(cli: &Cli) -> String {
    cli.log.clone().unwrap_or_else(|| {
        match cli.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
        .to_string()
    })
}

fn init_tracing(filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(|| diag::Writer)
        .without_time()
        .init();
}

/// A panic anywhere in km ends km at once (SIGABRT, no core), reported on
/// km's own stderr. By default it would end only the panicking thread (a
/// vCPU thread's payload thread would vanish and the payload hang) and be
/// reported on fd 2, which is the payload's.
fn report_panics() {
    std::panic::set_hook(Box::new(|info| {
        diag::line(format_args!("{info}"));
        process::end(process::ExitStatus::Signal(libc::SIGABRT, String::new()))
    }));
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
    let filter = log_filter(&cli);
    init_tracing(&filter);
    report_panics();
    if let Err(e) = procfs::init() {
        // Safe without it: what needs it is refused.
        tracing::warn!("the payload's /proc/self/mem and directories are unavailable: {e}");
    }
    // Writes to a closed pipe come back as EPIPE; km raises the payload's
    // own SIGPIPE (see syscall::dispatch).
    // SAFETY: setting a disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    if let Err(e) = kick::install().and_then(|_| seccomp::install_handler()) {
        diag::line(format_args!("cannot install km's signal handlers: {e}"));
        std::process::exit(1);
    }
    if let Err(e) = mem::atomic::install() {
        diag::line(format_args!("cannot install the payload-memory fault handler: {e}"));
        std::process::exit(1);
    }

    let device = device::DeviceChoice::from_args(cli.device.clone(), std::env::var_os("KM_DEVICE"));
    exec::set_launch(exec::Launch { device: device.clone(), strict: cli.strict, log: filter });
    let path = match &cli.exec_path {
        Some(p) => p.clone(),
        None => vm::find_program(&PathBuf::from(&cli.command[0])),
    };
    // A `#!` script runs under its interpreter, as exec would run it.
    let resolved = match exec::resolve(&path, cli.command.clone(), false) {
        Ok(r) => r,
        Err(e) => {
            diag::line(format_args!("{}: {}", path.display(), e.desc()));
            std::process::exit(if e == nix::errno::Errno::ENOENT { 127 } else { 126 });
        }
    };
    let (state, known) = match cli.exec_fd.map(exec::take_handoff) {
        Some(None) => {
            diag::line(format_args!("malformed --exec-fd state"));
            std::process::exit(1);
        }
        Some(Some((state, device))) => (Some(state), Some(device)),
        None => (None, None),
    };
    let opts = vm::Options {
        device,
        execfn: cli.exec_fn.clone().unwrap_or_else(|| path.into_os_string()),
        program: resolved.program,
        args: resolved.args,
        env: std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k;
                kv.push("=");
                kv.push(v);
                kv
            })
            .collect(),
        strict: cli.strict,
        known,
    };
    let (mut first, clock) = match vm::start(&opts) {
        Ok(started) => started,
        Err(e) => {
            diag::line(format_args!("{e:#}"));
            std::process::exit(e.exit_code());
        }
    };
    exec::restore(state.as_ref(), &first);
    if let Err(e) = signal::forward::start_later(first.proc.clone(), clock, &mut *first.vcpu) {
        diag::line(format_args!("cannot start the signal forwarding thread: {e}"));
        std::process::exit(1);
    }
    // Every km thread exists now but the vCPU threads, which inherit it. A
    // km started by exec without --no-seccomp runs under its predecessor's.
    if !cli.no_seccomp {
        match seccomp::install(cli.exec_fd.is_some()) {
            Ok(true) => {}
            Ok(false) => tracing::info!(target: "device", "this kernel has no seccomp filters: km runs unconfined"),
            Err(e) => {
                diag::line(format_args!("cannot install the seccomp filter: {e}"));
                std::process::exit(1);
            }
        }
    }
    first.run(None);
}
