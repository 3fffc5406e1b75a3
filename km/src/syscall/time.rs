//! Time: the host's clocks. CPU-time clocks measure km's process, which
//! includes the time the payload ran in the VM.

use libc::*;

use super::args::{obj, opt};
use super::{host, Ctx, Ret};

type A = [u64; 6];

pub fn clock_gettime(_: &mut Ctx, a: A) -> Ret {
    obj::<timespec>(a[1])?;
    host(SYS_clock_gettime, a)
}

pub fn clock_getres(_: &mut Ctx, a: A) -> Ret {
    opt::<timespec>(a[1])?;
    host(SYS_clock_getres, a)
}

pub fn gettimeofday(_: &mut Ctx, a: A) -> Ret {
    opt::<timeval>(a[0])?;
    opt::<timezone>(a[1])?;
    host(SYS_gettimeofday, a)
}

pub fn time(_: &mut Ctx, a: A) -> Ret {
    opt::<time_t>(a[0])?;
    host(SYS_time, a)
}

pub fn nanosleep(_: &mut Ctx, a: A) -> Ret {
    obj::<timespec>(a[0])?;
    opt::<timespec>(a[1])?;
    host(SYS_nanosleep, a)
}

pub fn clock_nanosleep(_: &mut Ctx, a: A) -> Ret {
    obj::<timespec>(a[2])?;
    opt::<timespec>(a[3])?;
    host(SYS_clock_nanosleep, a)
}

pub fn times(_: &mut Ctx, a: A) -> Ret {
    opt::<tms>(a[0])?;
    host(SYS_times, a)
}
