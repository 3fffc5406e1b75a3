//! One payload in one VM: build it (device, memory, tables, image, stack,
//! vCPU), then run it, serving its system calls, until it ends.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use nix::sys::signal::Signal;

use crate::device::{self, DeviceChoice, Exit, Fault, Hypervisor, Vcpu};
use crate::guest::cpu::{self, CpuModel, SyscallReturn};
use crate::guest::layout::{page_up, GIB, MIB, STACK_TOP};
use crate::guest::{clock, vdso};
use crate::loader::{elf, stack};
use crate::mem::{copy, AddressSpace};
use crate::syscall::{self, Ctx, ExitStatus, Process};

/// What to run and how.
pub struct Options {
    pub device: DeviceChoice,
    pub program: PathBuf,
    /// The path as the user gave it (AT_EXECFN).
    pub execfn: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<OsString>,
    pub strict: bool,
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

/// Creates the VM with the payload loaded and its vCPU at the entry point.
pub fn start(opts: &Options) -> Result<(Process, Box<dyn Vcpu>), StartError> {
    let hv: Arc<dyn Hypervisor> = Arc::from(device::open(&opts.device)?);
    tracing::info!(target: "device", "using {:?} ({:?})", opts.device, hv.flavor());
    let model = CpuModel::new(hv.supported_cpuid().context("reading the device's CPUID")?);
    let mut space = AddressSpace::new(hv.clone()).context("setting up guest memory")?;
    cpu::install_tables(&mut space).context("writing the guest's descriptor tables")?;
    let vdso = vdso::install(&mut space).context("mapping the vDSO")?;
    let image = elf::load(&opts.program, &mut space).map_err(|e| StartError::Load(opts.program.clone(), e))?;
    tracing::debug!(target: "loader", "entry {:#x}, {} segments, end {:#x}", image.entry, image.segments.len(), image.end());

    let size = stack_size();
    let stack_base = STACK_TOP - size;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    space
        .map_fixed(stack_base, size, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0)
        .context("mapping the stack")?;
    let mut random = [0u8; 16];
    getrandom(&mut random).context("AT_RANDOM bytes")?;
    let (uid, euid, gid, egid) = aux_ids();
    let aux = stack::AuxValues {
        phdr: image.phdr,
        phent: image.phent,
        phnum: image.phnum,
        entry: image.entry,
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
    copy::write_bytes(initial.sp, &initial.bytes).context("writing the initial stack")?;
    // The mmap area starts a gap below the stack, as Linux leaves one.
    let brk_start = page_up(image.end()).expect("image end checked by the loader");
    space.set_layout(brk_start, stack_base - 128 * MIB);

    let mut vcpu = hv.create_vcpu(0).context("creating the vCPU")?;
    cpu::init_vcpu(&mut *vcpu, 0, &model, space.page_table_root(), image.entry, initial.sp)
        .context("setting up the vCPU")?;
    clock::start(vdso.vvar, &mut *vcpu);
    let exe = std::fs::canonicalize(&opts.program).unwrap_or_else(|_| opts.program.clone());
    Ok((Process::new(space, exe, opts.strict), vcpu))
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

/// Runs the payload to its end.
pub fn run(proc: &mut Process, vcpu: &mut dyn Vcpu) -> anyhow::Result<ExitStatus> {
    let mut syscall_return = None;
    loop {
        match vcpu.run()? {
            Exit::Syscall => {
                let how = match syscall_return {
                    Some(how) => how,
                    None => *syscall_return.insert(SyscallReturn::from_pad_cs(vcpu.sregs()?.cs.selector)),
                };
                let mut regs = vcpu.regs()?;
                let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
                let mut ctx = Ctx { proc: &mut *proc, vcpu: &mut *vcpu, exit: None };
                let ret = syscall::dispatch(&mut ctx, regs.rax, args);
                if let Some(status) = ctx.exit {
                    return Ok(status);
                }
                regs.rax = ret;
                match how {
                    SyscallReturn::Direct => {
                        regs.rip = regs.rcx;
                        regs.rflags = cpu::resume_rflags(regs.r11);
                    }
                    SyscallReturn::Sysret => {
                        regs.rip = cpu::PAD_SYSRET;
                        regs.r11 = cpu::resume_rflags(regs.r11);
                    }
                }
                vcpu.set_regs(&regs)?;
            }
            Exit::Fault(f) => return Ok(ExitStatus::Signal(fault_signal(f.vector), describe(&f))),
            Exit::Interrupted => {}
            // `hlt` is privileged: at user level it is a #GP, so SIGSEGV.
            Exit::Halt => return Ok(ExitStatus::Signal(Signal::SIGSEGV, "hlt instruction".into())),
            Exit::Broken(why) => return Ok(ExitStatus::Signal(Signal::SIGSEGV, why)),
        }
    }
}

/// The signal Linux sends for a CPU exception in user mode.
pub fn fault_signal(vector: u8) -> Signal {
    match vector {
        0 | 16 | 19 => Signal::SIGFPE,
        1 | 3 => Signal::SIGTRAP,
        6 => Signal::SIGILL,
        11 | 12 | 17 => Signal::SIGBUS,
        _ => Signal::SIGSEGV,
    }
}

fn describe(f: &Fault) -> String {
    let what = match f.vector {
        0 => "divide error".to_string(),
        1 => "debug trap".to_string(),
        3 => "breakpoint".to_string(),
        6 => "invalid opcode".to_string(),
        13 => "general protection fault".to_string(),
        14 => {
            let access = if f.error_code & 0x10 != 0 {
                "execute"
            } else if f.error_code & 2 != 0 {
                "write"
            } else {
                "read"
            };
            let why = if f.error_code & 1 != 0 { "protection violation" } else { "unmapped address" };
            format!("page fault: {access} at {:#x} ({why})", f.addr)
        }
        v => format!("CPU exception {v} (error code {:#x})", f.error_code),
    };
    format!("{what} at rip {:#x}", f.rip)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_map_to_linux_signals() {
        assert_eq!(fault_signal(0), Signal::SIGFPE);
        assert_eq!(fault_signal(6), Signal::SIGILL);
        assert_eq!(fault_signal(13), Signal::SIGSEGV);
        assert_eq!(fault_signal(14), Signal::SIGSEGV);
        assert_eq!(fault_signal(3), Signal::SIGTRAP);
        assert_eq!(fault_signal(17), Signal::SIGBUS);
    }

    #[test]
    fn page_fault_description() {
        let f = Fault { vector: 14, error_code: 6, addr: 0x1000, rip: 0x401000 };
        assert_eq!(describe(&f), "page fault: write at 0x1000 (unmapped address) at rip 0x401000");
    }
}
