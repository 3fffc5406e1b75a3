//! System V shared memory, natively and under km: segments attached into
//! the guest window at km's choice and at the payload's, read-only,
//! detached, shared with a forked child, removed while attached, and
//! shmctl with wild pointers.

#[allow(dead_code)]
mod support;

use support::{km_half, Case};

#[test]
fn shm_segments() {
    let out = Case::new("shm", &[]).check(0);
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("done\n"));
}

/// Natively an address in what is km's monitor area (or below its window)
/// is free memory a segment can be attached at; under km it is taken
/// (EINVAL, as for an address the payload already uses), SHM_REMAP cannot
/// force it, and an address SHM_RND takes down to 0 stays a fixed one.
#[test]
fn shm_only_inside_payload_memory() {
    let case = Case::new("shm", &["monitor"]);
    let Some(out) = km_half(|| case.run_km(&[])) else { return };
    assert_eq!(out.status, 0, "{out}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "in the monitor area: EINVAL\nwith SHM_REMAP: EINVAL\nacross the payload's end: EINVAL\n\
         below the window: EINVAL\nSHM_RND down to 0: EINVAL\n"
    );
    assert!(out.stderr.is_empty(), "{out}");
}
