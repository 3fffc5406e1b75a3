//! The guest's clocks without exits: the data page ("vvar") km's vDSO reads.
//!
//! The vDSO computes a clock as `base_ns + (TSC - tsc_base) * mult / 2^shift`
//! from the guest TSC. km knows the guest TSC as host TSC + the vCPU's
//! offset (read once from the device), pairs it with the host's
//! CLOCK_MONOTONIC, and km's signal-forwarding thread re-bases the page every `REFRESH` (between
//! signals: one helper thread fewer to start per process), so the guest follows
//! the host's rate (NTP included) and steps of the other clocks. A re-base
//! continues from the later of the old formula and the host, and slews the
//! rate to close the gap: CLOCK_MONOTONIC never steps back.
//!
//! The page is a seqlock (seq odd while km writes). The pair the new
//! formula starts from is read after the odd seq is visible, so every
//! reading of the old formula is of an earlier TSC than the new base.

use std::arch::asm;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::device::{GuestTsc, Vcpu};

/// How often the page is re-based on the host's clocks.
const REFRESH: Duration = Duration::from_millis(200);
/// Fixed-point position of `mult`: ns per tick is mult / 2^SHIFT.
const SHIFT: u32 = 32;
/// Clock ids the page has room for (as km/vdso/vvar.h).
const CLOCKS: usize = 12;
/// Clocks the vDSO serves, with the host clock their base follows. The
/// coarse clocks read as their precise counterparts. The rest (CPU time,
/// MONOTONIC_RAW, unknown ids) are real syscalls.
const SERVED: [(libc::clockid_t, libc::clockid_t); 6] = [
    (libc::CLOCK_REALTIME, libc::CLOCK_REALTIME),
    (libc::CLOCK_MONOTONIC, libc::CLOCK_MONOTONIC),
    (libc::CLOCK_REALTIME_COARSE, libc::CLOCK_REALTIME),
    (libc::CLOCK_MONOTONIC_COARSE, libc::CLOCK_MONOTONIC),
    (libc::CLOCK_BOOTTIME, libc::CLOCK_BOOTTIME),
    (libc::CLOCK_TAI, libc::CLOCK_TAI),
];

// Byte offsets in the page, as asserted in km/vdso/vvar.h.
const SEQ: u64 = 0;
const MASK: u64 = 4;
const TSC_BASE: u64 = 8;
const MULT: u64 = 16;
const SHIFT_AT: u64 = 24;
const BASE_NS: u64 = 32;
const RES_NS: u64 = BASE_NS + 8 * CLOCKS as u64;

/// The host's TSC. `lfence` keeps it from being read ahead of earlier
/// loads; as an `asm!` that may touch memory, the compiler keeps it in
/// program order with the page's atomics.
pub fn host_tsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: lfence and rdtsc only read the time-stamp counter, which
    // user mode may read (Linux leaves CR4.TSD clear).
    unsafe { asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nostack, preserves_flags)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// The fixed-point rate of `ns` nanoseconds per `ticks` TSC ticks.
fn mult_for(ns: u64, ticks: u64) -> u64 {
    (((ns as u128) << SHIFT) / ticks.max(1) as u128).min(u64::MAX as u128) as u64
}

/// Nanoseconds in `ticks` at rate `mult`, as the vDSO computes them.
fn scale(ticks: u64, mult: u64) -> u64 {
    ((ticks as u128 * mult as u128) >> SHIFT) as u64
}

/// The formula for CLOCK_MONOTONIC; the other clocks add their offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Params {
    tsc_base: u64,
    mult: u64,
    mono_ns: u64,
}

impl Params {
    fn ns_at(&self, tsc: u64) -> u64 {
        self.mono_ns + scale(tsc.saturating_sub(self.tsc_base), self.mult)
    }
}

/// The guest TSC and host CLOCK_MONOTONIC at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sample {
    tsc: u64,
    mono: u64,
}

/// The formula after sample `now`, given the one in force since `prev`:
/// from the later of the old formula and the host now, at the host's rate
/// over the last interval, less what closes any lead over the next one.
fn rebase(prev: &(Params, Sample), now: Sample) -> Params {
    let (old, last) = prev;
    let ticks = now.tsc.saturating_sub(last.tsc);
    let rate = if ticks > 0 && now.mono > last.mono { mult_for(now.mono - last.mono, ticks) } else { old.mult };
    let mono_ns = old.ns_at(now.tsc).max(now.mono);
    let lead = mono_ns - now.mono;
    let mult = rate.saturating_sub(mult_for(lead, ticks)).max(rate / 2);
    Params { tsc_base: now.tsc, mult, mono_ns }
}

/// Everything the page holds but the sequence number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Contents {
    mask: u32,
    tsc_base: u64,
    mult: u64,
    base_ns: [u64; CLOCKS],
    res_ns: [u64; CLOCKS],
}

impl Contents {
    /// `offsets[id]`: host clock `id` minus CLOCK_MONOTONIC, in ns. A clock
    /// whose base would be before its epoch is left to the syscall.
    fn new(p: &Params, offsets: &[i64; CLOCKS], res_ns: &[u64; CLOCKS]) -> Contents {
        let mut c = Contents { tsc_base: p.tsc_base, mult: p.mult, res_ns: *res_ns, ..Default::default() };
        for (id, follows) in SERVED {
            let base = p.mono_ns as i64 + offsets[follows as usize];
            if base > 0 {
                c.base_ns[id as usize] = base as u64;
                c.mask |= 1 << id;
            }
        }
        c
    }
}

/// The right to write the vDSO's data page; there is one, owned by the
/// signal-forwarding thread once it runs. Dropping it leaves the page unavailable
/// rather than frozen at a formula nobody refreshes.
pub struct Vvar {
    addr: u64,
    seq: u32,
}

impl Vvar {
    /// # Safety
    /// `addr` must be 8-aligned, start a page of km's memory that stays
    /// mapped for km's life, and no other `Vvar` may name it: the guest only
    /// reads it, so this is its one writer.
    pub unsafe fn new(addr: u64) -> Vvar {
        Vvar { addr, seq: 0 }
    }

    fn u32_at(&self, off: u64) -> &AtomicU32 {
        // SAFETY: `off` is one of the layout's aligned offsets inside the
        // page, which lives as long as km (see `new`).
        unsafe { &*((self.addr + off) as *const AtomicU32) }
    }

    fn u64_at(&self, off: u64) -> &AtomicU64 {
        // SAFETY: as in u32_at.
        unsafe { &*((self.addr + off) as *const AtomicU64) }
    }

    /// Makes readers wait (odd seq), and makes sure they see it before the
    /// TSC is read for the new formula (mfence).
    fn begin(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        self.u32_at(SEQ).store(self.seq, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    fn end(&mut self, c: &Contents) {
        self.u32_at(MASK).store(c.mask, Ordering::Relaxed);
        self.u64_at(TSC_BASE).store(c.tsc_base, Ordering::Relaxed);
        self.u64_at(MULT).store(c.mult, Ordering::Relaxed);
        self.u64_at(SHIFT_AT).store(SHIFT.into(), Ordering::Relaxed);
        for i in 0..CLOCKS {
            self.u64_at(BASE_NS + 8 * i as u64).store(c.base_ns[i], Ordering::Relaxed);
            self.u64_at(RES_NS + 8 * i as u64).store(c.res_ns[i], Ordering::Relaxed);
        }
        self.seq = self.seq.wrapping_add(1);
        self.u32_at(SEQ).store(self.seq, Ordering::Release);
    }
}

impl Drop for Vvar {
    fn drop(&mut self) {
        self.begin();
        self.end(&Contents::default());
    }
}

fn host_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own; every clock km
    // asks for exists on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Where host clock `clock` minus CLOCK_MONOTONIC lies, in ns: between the
/// clock's reading less the CLOCK_MONOTONIC readings after and before it.
fn host_offset(clock: libc::clockid_t) -> (i64, i64) {
    let before = host_ns(libc::CLOCK_MONOTONIC);
    let value = host_ns(clock);
    let after = host_ns(libc::CLOCK_MONOTONIC);
    (value - after, value - before)
}

/// Each served clock minus CLOCK_MONOTONIC, in ns, from the brackets of
/// REALTIME's and BOOTTIME's offsets and TAI - REALTIME. The host changes
/// these only in steps (settimeofday, suspend, a new TAI offset), so an
/// offset in `prev` is kept while its bracket holds it: the guest's
/// REALTIME does not jitter by the bracket's width at every update. As on
/// the host, BOOTTIME never runs behind MONOTONIC, and TAI is REALTIME
/// plus whole seconds.
fn offsets(prev: &[i64; CLOCKS], real: (i64, i64), boot: (i64, i64), tai_minus_real: i64) -> [i64; CLOCKS] {
    let settle = |prev: i64, (low, high): (i64, i64)| {
        if (low..=high).contains(&prev) {
            prev
        } else {
            low + (high - low) / 2
        }
    };
    let mut out = [0; CLOCKS];
    let (realtime, boottime) = (libc::CLOCK_REALTIME as usize, libc::CLOCK_BOOTTIME as usize);
    out[realtime] = settle(prev[realtime], real);
    out[boottime] = settle(prev[boottime], boot).max(0);
    let secs = (tai_minus_real + 500_000_000).div_euclid(1_000_000_000);
    out[libc::CLOCK_TAI as usize] = out[realtime] + secs * 1_000_000_000;
    out
}

fn host_offsets(prev: &[i64; CLOCKS]) -> [i64; CLOCKS] {
    let tai_minus_real = host_ns(libc::CLOCK_TAI) - host_ns(libc::CLOCK_REALTIME);
    offsets(prev, host_offset(libc::CLOCK_REALTIME), host_offset(libc::CLOCK_BOOTTIME), tai_minus_real)
}

/// The guest TSC at a host CLOCK_MONOTONIC reading: the narrowest of a few
/// TSC brackets around it, in case one was interrupted.
fn sample(tsc: &GuestTsc) -> Sample {
    let mut best = (u64::MAX, Sample { tsc: 0, mono: 0 });
    for _ in 0..3 {
        let before = host_tsc();
        let mono = host_ns(libc::CLOCK_MONOTONIC) as u64;
        let after = host_tsc();
        let width = after.wrapping_sub(before);
        if width < best.0 {
            let guest = (before + width / 2).wrapping_add_signed(tsc.offset);
            best = (width, Sample { tsc: guest, mono });
        }
    }
    best.1
}

fn resolutions() -> [u64; CLOCKS] {
    let mut res = [0; CLOCKS];
    for (id, _) in SERVED {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_getres writes one timespec we own.
        unsafe { libc::clock_getres(id, &mut ts) };
        res[id as usize] = ts.tv_nsec as u64;
    }
    res
}

/// The published clock, re-based by whichever thread owns it.
pub struct Clock {
    vvar: Vvar,
    tsc: GuestTsc,
    res_ns: [u64; CLOCKS],
    offsets: [i64; CLOCKS],
    last: (Params, Sample),
    due: Instant,
}

impl Clock {
    /// Publishes the first formula, at the device's nominal TSC rate.
    fn first(mut vvar: Vvar, tsc: GuestTsc) -> Clock {
        let res_ns = resolutions();
        let offsets = host_offsets(&[i64::MIN; CLOCKS]);
        vvar.begin();
        let now = sample(&tsc);
        let params = Params { tsc_base: now.tsc, mult: mult_for(1_000_000, tsc.khz.into()), mono_ns: now.mono };
        vvar.end(&Contents::new(&params, &offsets, &res_ns));
        Clock { vvar, tsc, res_ns, offsets, last: (params, now), due: Instant::now() + REFRESH }
    }

    /// How long until the next re-base is due.
    pub fn until_due(&self) -> Duration {
        self.due.saturating_duration_since(Instant::now())
    }

    /// Re-bases the page if that is due.
    pub fn refresh_if_due(&mut self) {
        if Instant::now() >= self.due {
            self.refresh();
            self.due = Instant::now() + REFRESH;
        }
    }

    fn refresh(&mut self) {
        self.offsets = host_offsets(&self.offsets);
        self.vvar.begin();
        let now = sample(&self.tsc);
        let params = rebase(&self.last, now);
        self.vvar.end(&Contents::new(&params, &self.offsets, &self.res_ns));
        let error = self.last.0.ns_at(now.tsc) as i64 - now.mono as i64;
        tracing::trace!(target: "device", "vDSO clock re-based: it was {error:+} ns off the host");
        self.last = (params, now);
    }
}

/// Serves the guest's clocks from the page if the device tells the guest
/// TSC (from vCPU `vcpu`; KVM gives every vCPU of a VM the same offset):
/// publishes the first formula and returns the clock to re-base (see
/// `signal::forward::start`). Otherwise the page stays "unavailable" and
/// every call is a syscall.
pub fn start(vvar: Vvar, vcpu: &mut dyn Vcpu) -> Option<Clock> {
    let tsc = match vcpu.guest_tsc() {
        Ok(tsc) if tsc.khz > 0 => tsc,
        Ok(_) => {
            tracing::info!(target: "device", "vDSO clock off: the device reports no TSC rate");
            return None;
        }
        Err(e) => {
            tracing::info!(target: "device", "vDSO clock off: {e}");
            return None;
        }
    };
    tracing::info!(target: "device", "guest TSC = host TSC {:+}, {} kHz; vDSO clock on", tsc.offset, tsc.khz);
    Some(Clock::first(vvar, tsc))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GHZ: u64 = 1 << 32; // one ns per tick

    #[test]
    fn fixed_point_rate() {
        assert_eq!(mult_for(1_000_000, 1_000_000), GHZ);
        // 2.6 GHz: 1e6 ns per 2.6e6 ticks.
        let m = mult_for(1_000_000, 2_600_000);
        assert_eq!(scale(2_600_000_000, m), 999_999_999);
        assert_eq!(scale(0, m), 0);
        // Hours of ticks neither overflow nor lose the rate.
        assert_eq!(scale(3600 * 2_600_000_000, m) / 1_000_000_000, 3599);
        assert_eq!(scale(u64::MAX, GHZ), u64::MAX);
        assert_eq!(mult_for(5, 0), 5 << SHIFT);
    }

    #[test]
    fn formula_clamps_a_tsc_below_its_base() {
        let p = Params { tsc_base: 1000, mult: GHZ, mono_ns: 50 };
        assert_eq!(p.ns_at(900), 50);
        assert_eq!(p.ns_at(1010), 60);
    }

    #[test]
    fn rebase_follows_the_host_rate() {
        let first = Sample { tsc: 1_000, mono: 5_000 };
        let old = Params { tsc_base: 1_000, mult: GHZ, mono_ns: 5_000 };
        // The host ran 2 ns per tick; the old formula is behind: jump to
        // the host, take its rate.
        let now = Sample { tsc: 101_000, mono: 205_000 };
        let p = rebase(&(old, first), now);
        assert_eq!(p, Params { tsc_base: 101_000, mult: 2 * GHZ, mono_ns: 205_000 });
    }

    #[test]
    fn rebase_never_steps_back_and_slews_a_lead_away() {
        let first = Sample { tsc: 0, mono: 0 };
        let old = Params { tsc_base: 0, mult: GHZ + GHZ / 64, mono_ns: 0 };
        // The host ran 1 ns per tick; the old formula leads it by 1000 ns.
        let now = Sample { tsc: 64_000, mono: 64_000 };
        let p = rebase(&(old, first), now);
        assert_eq!(p.mono_ns, old.ns_at(now.tsc));
        assert_eq!(p.mono_ns, 65_000);
        assert!(p.mult < GHZ);
        // Another interval at the host's rate closes the lead.
        let next = Sample { tsc: 128_000, mono: 128_000 };
        assert!(p.ns_at(next.tsc).abs_diff(next.mono) <= 1);
        let q = rebase(&(p, now), next);
        assert!(q.mono_ns >= p.ns_at(next.tsc) && q.mono_ns.abs_diff(next.mono) <= 1);
    }

    #[test]
    fn rebase_bounds_the_slew() {
        let first = Sample { tsc: 0, mono: 0 };
        let old = Params { tsc_base: 0, mult: 10 * GHZ, mono_ns: 0 };
        let now = Sample { tsc: 1_000, mono: 1_000 };
        let p = rebase(&(old, first), now);
        assert_eq!((p.mono_ns, p.mult), (10_000, GHZ / 2));
    }

    #[test]
    fn contents_serve_clocks_from_their_offsets() {
        let p = Params { tsc_base: 7, mult: 3 * GHZ, mono_ns: 1_000 };
        let mut offsets = [0i64; CLOCKS];
        offsets[libc::CLOCK_REALTIME as usize] = 1_700_000_000_000_000_000;
        offsets[libc::CLOCK_BOOTTIME as usize] = 25;
        offsets[libc::CLOCK_TAI as usize] = -5_000; // before its epoch
        let res = [1; CLOCKS];
        let c = Contents::new(&p, &offsets, &res);
        assert_eq!((c.tsc_base, c.mult, c.res_ns), (7, 3 * GHZ, res));
        let served = |id: libc::clockid_t| c.mask & (1 << id) != 0;
        assert!(served(libc::CLOCK_REALTIME) && served(libc::CLOCK_MONOTONIC) && served(libc::CLOCK_BOOTTIME));
        assert!(served(libc::CLOCK_REALTIME_COARSE) && served(libc::CLOCK_MONOTONIC_COARSE));
        assert!(!served(libc::CLOCK_TAI) && !served(libc::CLOCK_MONOTONIC_RAW));
        assert!(!served(libc::CLOCK_PROCESS_CPUTIME_ID) && !served(libc::CLOCK_THREAD_CPUTIME_ID));
        assert_eq!(c.base_ns[libc::CLOCK_REALTIME as usize], 1_700_000_000_000_001_000);
        assert_eq!(c.base_ns[libc::CLOCK_REALTIME_COARSE as usize], 1_700_000_000_000_001_000);
        assert_eq!(c.base_ns[libc::CLOCK_MONOTONIC as usize], 1_000);
        assert_eq!(c.base_ns[libc::CLOCK_BOOTTIME as usize], 1_025);
        assert_eq!(c.base_ns[libc::CLOCK_TAI as usize], 0);
    }

    #[test]
    fn offsets_settle_and_keep_host_relations() {
        let (real, boot, tai) =
            (libc::CLOCK_REALTIME as usize, libc::CLOCK_BOOTTIME as usize, libc::CLOCK_TAI as usize);
        let none = [i64::MIN; CLOCKS];
        // No suspend: BOOTTIME's bracket straddles 0, its offset is not
        // allowed below it.
        let o = offsets(&none, (1_000, 1_040), (-30, 10), 37_000_000_020);
        assert_eq!((o[real], o[boot], o[tai]), (1_020, 0, 37_000_001_020));
        assert_eq!(o[libc::CLOCK_MONOTONIC as usize], 0);
        // A later bracket that still holds the offsets keeps them.
        let p = offsets(&o, (1_005, 1_060), (-5, 40), 36_999_999_990);
        assert_eq!(p, o);
        // settimeofday or a suspend moved them.
        let q = offsets(&p, (5_000, 5_020), (900, 960), 37_000_000_000);
        assert_eq!((q[real], q[boot], q[tai]), (5_010, 930, 37_000_005_010));
    }

    /// The page as the vDSO reads it: layout of vvar.h, even seq after
    /// each update, zeroed ("unavailable") when the writer goes away.
    #[test]
    fn page_layout_and_seqlock() {
        let page = vec![0u64; 512].into_boxed_slice();
        let addr = page.as_ptr() as u64;
        let word = |i: usize| {
            // SAFETY: i < 512 words of `page`, alive for the whole test;
            // the writer is done before each read.
            unsafe { std::ptr::read_volatile((addr as *const u64).add(i)) }
        };
        {
            // SAFETY: `page` is 8-aligned, outlives `v`, and has one writer.
            let mut v = unsafe { Vvar::new(addr) };
            let mut c = Contents { mask: 0b11, tsc_base: 10, mult: 20, ..Default::default() };
            c.base_ns[1] = 30;
            c.res_ns[1] = 1;
            v.begin();
            assert_eq!(word(0) & 0xffff_ffff, 1, "odd while writing");
            v.end(&c);
            assert_eq!(word(0), 2 | (0b11 << 32));
            assert_eq!([word(1), word(2), word(3)], [10, 20, SHIFT as u64]);
            assert_eq!(word(4 + 1), 30);
            assert_eq!(word(4 + CLOCKS + 1), 1);
            v.begin();
            v.end(&c);
            assert_eq!(word(0) & 0xffff_ffff, 4);
        }
        assert_eq!(word(0), 6, "mask 0 after the writer is dropped");
        assert_eq!(word(4 + 1), 0);
    }
}
