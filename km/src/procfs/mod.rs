//! The payload's own /proc.
//!
//! km shares its host process with the payload, so km's procfs directory
//! (`/proc/<pid>`, its tasks, `/proc/self`, `/proc/thread-self`) is the
//! payload's too. Every path the payload names is resolved here, one
//! component at a time (`walk`), and once the walk enters km's directory
//! the rest resolves against a virtual tree (`node`) that shows only the
//! payload: its memory (`mem`), mappings, fds, threads, executable,
//! arguments, environment, auxiliary vector, limits and status
//! (`content`).
//!
//! What the payload opens there is a file that carries none of km's data:
//! generated text is a sealed memfd snapshot, `mem` is an empty memfd whose
//! reads and writes km serves from the guest window, and a directory is an
//! empty, deleted one whose listing km serves. Such fds are tracked
//! (`fdtab`) so km knows what they stand for.

mod content;
pub mod fdtab;
pub mod mem;
pub mod node;
mod path;
pub mod walk;

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock};

use nix::errno::Errno;

pub use node::Node;
pub use path::read_path;

/// km's private fds (above the payload's floor) that the virtual tree
/// works from.
struct Host {
    /// km's own /proc/self/mem: the guest window's bytes, read and written
    /// after km checked the range is the payload's.
    mem: RawFd,
    /// An empty directory that no longer exists: what a virtual directory
    /// fd really is, so a call km does not intercept sees nothing.
    empty_dir: RawFd,
    /// "/", where absolute paths start (km supports no chroot), and its
    /// device and mount.
    root: RawFd,
    root_dev: u64,
    root_mnt: u64,
}

static HOST: OnceLock<Host> = OnceLock::new();

/// The payload's working directory when it is inside the virtual tree
/// (the host's is then the empty directory).
static VIRTUAL_CWD: Mutex<Option<Node>> = Mutex::new(None);

fn host() -> Result<&'static Host, Errno> {
    HOST.get().ok_or(Errno::EACCES)
}

fn open_private(path: &str, flags: i32) -> std::io::Result<RawFd> {
    let c = CString::new(path).expect("no NUL in km's own paths");
    // SAFETY: a plain open of a NUL-terminated path km owns.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    crate::fds::privatize(fd)
}

/// Opens what the virtual tree needs. Without it `mem` and the virtual
/// directories are refused (EACCES), which is safe.
pub fn init() -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let mem = open_private("/proc/self/mem", libc::O_RDWR)?;
    let tmp = std::env::temp_dir().join(format!("km-empty-{}", std::process::id()));
    let mut builder = std::fs::DirBuilder::new();
    builder.mode(0o700);
    // A leftover of a km that had this pid and was killed is removed.
    builder.create(&tmp).or_else(|_| {
        let _ = std::fs::remove_dir(&tmp);
        builder.create(&tmp)
    })?;
    let empty = open_private(tmp.to_str().unwrap_or("/nonexistent"), libc::O_RDONLY | libc::O_DIRECTORY);
    std::fs::remove_dir(&tmp)?;
    let empty_dir = empty?;
    let root = open_private("/", libc::O_PATH)?;
    let (root_dev, root_mnt) = walk::dev_and_mount(root)?;
    let _ = HOST.set(Host { mem, empty_dir, root, root_dev, root_mnt });
    Ok(())
}

/// km's fds the virtual tree keeps, which a forked child km must keep too.
pub fn host_fds() -> Vec<RawFd> {
    HOST.get().map(|h| vec![h.mem, h.empty_dir, h.root]).unwrap_or_default()
}

/// In a child km just forked: the inherited /proc/self/mem fd still reads
/// the parent's memory, so the same number is pointed at the child's own.
pub fn after_fork() -> std::io::Result<()> {
    let Some(h) = HOST.get() else { return Ok(()) };
    let own = open_private("/proc/self/mem", libc::O_RDWR)?;
    // SAFETY: dup3 replaces km's private mem fd (never the payload's) with
    // the new one; `own` was just opened here and is closed right after.
    let r = unsafe { libc::dup3(own, h.mem, libc::O_CLOEXEC) };
    let err = std::io::Error::last_os_error();
    // SAFETY: `own` is ours alone.
    unsafe { libc::close(own) };
    if r < 0 {
        return Err(err);
    }
    Ok(())
}

/// Names km's main thread, which is the payload's first thread, after the
/// file exec ran, as exec names a process (threads it creates inherit the
/// name).
pub fn set_comm(file: &std::path::Path) {
    let Some(base) = file.file_name() else { return };
    let mut name = [0u8; 16];
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(base);
    let n = bytes.len().min(15);
    name[..n].copy_from_slice(&bytes[..n]);
    // SAFETY: PR_SET_NAME reads a 16-byte buffer, NUL-terminated here.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

/// A new fd on the empty directory, with its own position, for a virtual
/// directory opened with `flags` (only O_CLOEXEC matters).
fn empty_dir_fd(flags: i32) -> Result<OwnedFd, Errno> {
    let path = format!("/proc/self/fd/{}", host()?.empty_dir);
    let c = CString::new(path).expect("no NUL");
    let cloexec = flags & libc::O_CLOEXEC;
    // SAFETY: opens km's own fd's file again through procfs.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | cloexec) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: just created, owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets or clears the virtual working directory.
pub fn set_virtual_cwd(node: Option<Node>) {
    *crate::process::lock(&VIRTUAL_CWD) = node;
}

pub fn virtual_cwd() -> Option<Node> {
    *crate::process::lock(&VIRTUAL_CWD)
}

/// Makes the host's working directory the empty one, for a virtual cwd.
pub fn chdir_empty() -> Result<(), Errno> {
    // SAFETY: fchdir to km's own directory fd.
    if unsafe { libc::fchdir(host()?.empty_dir) } != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// What exec left for /proc to show: where the argument and environment
/// strings are, the auxiliary vector, and the initial stack's mapping.
#[derive(Debug, Default, Clone)]
pub struct Startup {
    /// The stack pointer exec left (/proc/<pid>/stat's startstack).
    pub sp: u64,
    pub args: (u64, u64),
    pub env: (u64, u64),
    pub auxv: Vec<u8>,
    pub stack: (u64, u64),
}
