//! One payload in one VM: build it (device, memory, tables, image, stack,
//! first vCPU), ready for its first thread to run.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use kvm_bindings::{kvm_regs, CpuId};

use crate::device::{self, DeviceChoice, Hypervisor};
use crate::guest::cpu::{self, CpuModel};
use crate::guest::layout::{page_up, GIB, MIB, STACK_TOP};
use crate::guest::{clock, vdso};
use crate::loader::{elf, stack};
use crate::mem::{copy, AddressSpace, GuestRange};
use crate::process::Process;
use crate::thread::Thread;

/// What to run and how.
pub struct Options {
    pub device: DeviceChoice,
    pub program: PathBuf,
    /// The path as the user gave it (AT_EXECFN).
    pub execfn: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<OsString>,
    pub strict: bool,
    /// What an exec's old km learned of the device, if this km is one.
    pub known: Option<crate::exec::KnownDevice>,
}

/// Why km could not start the payload; each maps to a shell-like status.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Device(#[from] device::select::OpenError),
    #[error("{0}: {1}")]
    Load(PathBuf, elf::LoadError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl StartError {
    /// 1 for km's own trouble, 126/127 where a shell would use them.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Load(_, elf::LoadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => 127,
            StartError::Load(..) => 126,
            _ => 1,
        }
    }
}

/// The initial stack's size: RLIMIT_STACK like Linux, 8 MiB if unlimited,
/// never more than 1 GiB.
fn stack_size() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut lim) };
    match lim.rlim_cur {
        libc::RLIM_INFINITY | 0 => 8 * MIB,
        n => page_up(n.min(GIB)).unwrap_or(GIB),
    }
}

fn aux_ids() -> (u64, u64, u64, u64) {
    // SAFETY: these calls take no arguments and cannot fail.
    unsafe { (libc::getuid().into(), libc::geteuid().into(), libc::getgid().into(), libc::getegid().into()) }
}

/// Creates the VM with the payload loaded and its first thread's vCPU at
/// the entry point; and the vDSO clock, if on, for the forwarding thread.
pub fn start(opts: &Options) -> Result<(Thread, Option<clock::Clock>), StartError> {
    let hv: Arc<dyn Hypervisor> = Arc::from(device::open(&opts.device)?);
    tracing::info!(target: "device", "using {:?} ({:?})", opts.device, hv.caps());
    let cpuid = match &opts.known {
        Some(k) => CpuId::from_entries(&k.cpuid).map_err(|e| anyhow::anyhow!("the old km's CPUID: {e:?}"))?,
        None => hv.supported_cpuid().context("reading the device's CPUID")?,
    };
    let model = CpuModel::new(cpuid);
    let mut space = AddressSpace::new(hv.clone()).context("setting up guest memory")?;
    cpu::install_tables(&mut space).context("writing the guest's descriptor tables")?;
    let vdso = vdso::install(&mut space).context("mapping the vDSO")?;
    let image = elf::load(&opts.program, &mut space).map_err(|e| StartError::Load(opts.program.clone(), e))?;
    tracing::debug!(target: "loader", "entry {:#x}, {} segments, end {:#x}", image.entry, image.segments.len(), image.end());

    let size = stack_size();
    let stack_base = STACK_TOP - size;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    let exec = if image.exec_stack { libc::PROT_EXEC } else { 0 };
    space
        .map_fixed(stack_base, size, libc::PROT_READ | libc::PROT_WRITE | exec, flags, -1, 0)
        .context("mapping the stack")?;
    // The mmap area starts a gap below the stack, as Linux leaves one.
    let brk_start = page_up(image.end()).expect("image end checked by the loader");
    space.set_layout(brk_start, stack_base - 128 * MIB);
    let interp = match &image.interp {
        Some(path) => {
            let i = elf::load_interp(path, &mut space).map_err(|e| StartError::Load(path.clone(), e))?;
            tracing::debug!(target: "loader", "interpreter {} at {:#x}, entry {:#x}", path.display(), i.bias, i.entry);
            Some(i)
        }
        None => None,
    };
    let mut random = [0u8; 16];
    getrandom(&mut random).context("AT_RANDOM bytes")?;
    let (uid, euid, gid, egid) = aux_ids();
    let aux = stack::AuxValues {
        phdr: image.phdr,
        phent: image.phent,
        phnum: image.phnum,
        entry: image.entry,
        base: interp.as_ref().map_or(0, |i| i.bias),
        hwcap: model.hwcap,
        uid,
        euid,
        gid,
        egid,
        // SAFETY: sysconf only reads a configuration value.
        clktck: unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64,
        sysinfo_ehdr: vdso.base,
    };
    // Linux caps arguments plus environment at a quarter of the stack.
    let initial = stack::build(STACK_TOP, &opts.args, &opts.env, &opts.execfn, random, &aux, (size / 4) as usize)
        .map_err(|e| anyhow::anyhow!("{}: {e}", opts.program.display()))?;
    GuestRange::new(initial.sp, initial.bytes.len() as u64)
        .and_then(|r| copy::write_bytes(r, &initial.bytes))
        .context("writing the initial stack")?;

    let exe = std::fs::canonicalize(&opts.program).unwrap_or_else(|_| opts.program.clone());
    // Linux names the process after the file exec was given (a script's,
    // not its interpreter's): AT_EXECFN's last component.
    crate::procfs::set_comm(Path::new(&opts.execfn));
    // Others reading this process's command line see the payload's.
    let strings = (initial.args.0 - initial.sp) as usize..(initial.env.1 - initial.sp) as usize;
    crate::host_cmdline::show(&initial.bytes[strings], (initial.args.1 - initial.args.0) as usize);
    let startup = crate::procfs::Startup {
        sp: initial.sp,
        args: initial.args,
        env: initial.env,
        auxv: initial.auxv,
        stack: (stack_base, STACK_TOP),
    };
    let mut vcpu = hv.create_vcpu(0).context("creating the vCPU")?;
    cpu::init_vcpu(&mut *vcpu, 0, &model, space.page_table_root(), (0, 0)).context("setting up the vCPU")?;
    let (how, probed) = match &opts.known {
        Some(k) => (k.syscall_return, false),
        None => (cpu::probe_syscall_return(&mut *vcpu).context("probing the syscall path")?, true),
    };
    cpu::set_syscall_return(how, &mut space);
    tracing::debug!(target: "device", "syscall returns: {how:?}");
    let entry = interp.as_ref().map_or(image.entry, |i| i.entry);
    let regs = kvm_regs { rip: entry, rsp: initial.sp, ..Default::default() };
    // The probe ran the guest (which may have left it at CPL0).
    let ready =
        if probed { cpu::set_thread_state(&mut *vcpu, &regs, 0, 0) } else { cpu::set_user_regs(&mut *vcpu, &regs) };
    ready.context("setting up the vCPU")?;
    let proc = Arc::new(Process::new(hv, model, space, exe, startup, opts.strict, how));
    let clock = clock::start(vdso.vvar, &mut *vcpu);
    Ok((Thread::first(proc, 0, vcpu), clock))
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n as usize == buf.len() {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Resolves PROGRAM as execvp would: a name without '/' is looked up in
/// PATH.
pub fn find_program(name: &Path) -> PathBuf {
    if name.as_os_str().as_bytes().contains(&b'/') {
        return name.to_path_buf();
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| name.to_path_buf())
}
