//! km's own messages: one line each, prefixed "km: ", on a private copy of
//! the stderr km was started with, so the payload closing or redirecting
//! its fd 2 cannot swallow them or mix them into its files.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

static STREAM: OnceLock<Mutex<File>> = OnceLock::new();
/// The stream's fd, for reports written from a signal handler.
static RAW: AtomicI32 = AtomicI32::new(2);

/// Takes the private copy of fd 2. Call after `fds::init`.
pub fn init() -> std::io::Result<()> {
    // SAFETY: F_DUPFD_CLOEXEC creates a new fd; fd 2 is left as it is.
    let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, crate::fds::floor()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    RAW.store(fd, Ordering::Relaxed);
    // SAFETY: `fd` is new and owned only by this File.
    STREAM.set(Mutex::new(unsafe { File::from_raw_fd(fd) })).ok();
    Ok(())
}

/// The fd of km's private stderr (fd 2 before `init`), for writers that
/// cannot take the lock.
pub fn raw_fd() -> RawFd {
    RAW.load(Ordering::Relaxed)
}

/// A writer for tracing's output.
pub struct Writer;

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match STREAM.get() {
            Some(s) => s.lock().unwrap_or_else(|e| e.into_inner()).write(buf),
            None => std::io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes "km: <message>\n" in one write.
pub fn line(msg: std::fmt::Arguments) {
    let text = format!("km: {msg}\n");
    // Nothing sensible is left to do if km's own stderr is gone.
    let _ = Writer.write_all(text.as_bytes());
}

/// Runs `f` (a host fork) with the stream's lock held, so that the child
/// does not inherit it locked by a thread that is gone.
pub fn holding<R>(f: impl FnOnce() -> R) -> R {
    let _guard = STREAM.get().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()));
    f()
}

/// The stream's fd, which a forked child keeps.
pub fn fd() -> Option<std::os::fd::RawFd> {
    use std::os::fd::AsRawFd;
    STREAM.get().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).as_raw_fd())
}
