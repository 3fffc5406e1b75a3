//! What the host shows other processes of this one's arguments and
//! environment (/proc/<pid>/cmdline and environ, read by `ps`, `pidof`,
//! `pgrep -f`): the payload's, not km's.
//!
//! The kernel reads them from [arg_start, arg_end) and [env_start, env_end)
//! of the process's memory, which the host's exec pointed at km's own
//! command line. km points them, with prctl(PR_SET_MM, PR_SET_MM_MAP), at a
//! copy of the payload's strings, laid out as exec lays them out, on km's
//! heap: outside the guest's memory, so the payload can neither change nor
//! read it, and alive as long as km. (A payload that rewrites its own argv
//! strings, as setproctitle does, changes its /proc/self/cmdline, which km
//! serves from the payload's memory, but not what others see.) A host fork
//! keeps the fields and copies the heap; exec's new km sets its own.
//!
//! PR_SET_MM_MAP replaces every layout field of the process at once, so the
//! others get their current values (/proc/self/stat and brk(0)). It needs a
//! kernel with CONFIG_CHECKPOINT_RESTORE but no privilege; where it is
//! refused, the host keeps showing km's command line.

use std::sync::OnceLock;

/// The kernel's `struct prctl_mm_map` (<linux/prctl.h>).
#[repr(C)]
struct MmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: u64,
    auxv_size: u32,
    exe_fd: u32,
}

/// km's copy of the payload's strings, which the host's view points into.
static STRINGS: OnceLock<Box<[u8]>> = OnceLock::new();

/// Makes the host show `strings` as this process's command line and
/// environment: the argument strings (`args_len` bytes, each with its NUL)
/// followed by the environment strings, as in the payload's initial stack.
pub fn show(strings: &[u8], args_len: usize) {
    if let Err(e) = try_show(strings, args_len) {
        tracing::debug!(target: "loader", "the host keeps showing km's command line: {e}");
    }
}

fn try_show(strings: &[u8], args_len: usize) -> std::io::Result<()> {
    // A real allocation even when there is nothing to show: the kernel
    // refuses addresses below mmap_min_addr, such as an empty Vec's. The
    // heap is anonymous memory, the only kind the kernel reads these from.
    let mut copy = Vec::with_capacity(strings.len().max(1));
    copy.extend_from_slice(strings);
    if STRINGS.set(copy.into_boxed_slice()).is_err() {
        return Err(std::io::Error::other("shown already"));
    }
    let copy = STRINGS.get().expect("just set");
    let start = copy.as_ptr() as u64;
    let mut map = current_layout()?;
    map.arg_start = start;
    map.arg_end = start + args_len.min(copy.len()) as u64;
    map.env_start = map.arg_end;
    map.env_end = start + copy.len() as u64;
    // Read last and with nothing allocated after it, so no heap growth of
    // this (still only) thread comes between: the kernel sets brk too.
    // SAFETY: brk(0) changes nothing and returns the current break.
    map.brk = unsafe { libc::syscall(libc::SYS_brk, 0) } as u64;
    // SAFETY: the kernel reads a prctl_mm_map of the size given from
    // `map` and sets this process's layout fields from it: all to their
    // current values but the strings', which point into the copy, kept
    // as long as km lives.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            libc::PR_SET_MM_MAP as libc::c_ulong,
            &map as *const MmMap,
            std::mem::size_of::<MmMap>() as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The process's layout fields as they are, from /proc/self/stat (fields
/// 26-28 and 45-47: code, stack, data and heap start); brk is the caller's.
fn current_layout() -> std::io::Result<MmMap> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let bad = || std::io::Error::other("unexpected /proc/self/stat");
    // Fields from the third on follow the name's closing parenthesis.
    let rest = stat.rfind(')').map(|at| &stat[at + 1..]).ok_or_else(bad)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).ok_or_else(bad);
    Ok(MmMap {
        start_code: field(26)?,
        end_code: field(27)?,
        start_stack: field(28)?,
        start_data: field(45)?,
        end_data: field(46)?,
        start_brk: field(47)?,
        brk: 0,
        arg_start: 0,
        arg_end: 0,
        env_start: 0,
        env_end: 0,
        auxv: 0,
        auxv_size: 0,
        // Keeps /proc/<pid>/exe.
        exe_fd: u32::MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_is_the_kernels_size() {
        // PR_SET_MM_MAP_SIZE's answer on x86-64.
        assert_eq!(std::mem::size_of::<MmMap>(), 104);
    }

    #[test]
    fn layout_is_read() {
        let map = current_layout().expect("this process's stat");
        assert!(map.start_code < map.end_code);
        assert!(map.start_data <= map.end_data);
        assert!(map.start_stack > 0);
    }
}
