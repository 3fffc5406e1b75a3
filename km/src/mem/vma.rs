//! km's record of the payload's mappings: page-aligned, non-overlapping
//! ranges with their protection. The host mappings and the guest page
//! tables follow this record; it is the only copy km trusts.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vma {
    pub end: u64,
    /// PROT_READ | PROT_WRITE | PROT_EXEC bits.
    pub prot: i32,
}

#[derive(Default, Debug, Clone)]
pub struct Vmas {
    map: BTreeMap<u64, Vma>,
}

impl Vmas {
    /// Iterates (start, vma) over mappings that overlap [start, end).
    pub fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, Vma)> + '_ {
        let first = self.map.range(..=start).next_back().filter(|(_, v)| v.end > start).map(|(&s, &v)| (s, v));
        first.into_iter().chain(self.map.range(start..end).filter(move |(&s, _)| s != start).map(|(&s, &v)| (s, v)))
    }

    pub fn is_free(&self, start: u64, end: u64) -> bool {
        self.overlapping(start, end).next().is_none()
    }

    /// True if [start, end) is covered by mappings without a gap.
    pub fn is_covered(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        for (s, v) in self.overlapping(start, end) {
            if s > at {
                return false;
            }
            at = v.end;
        }
        at >= end
    }

    /// The mapping containing `addr`.
    pub fn at(&self, addr: u64) -> Option<(u64, Vma)> {
        self.overlapping(addr, addr + 1).next()
    }

    /// The highest free gap of `len` bytes with start >= `low` and end <= `high`.
    pub fn find_free_below(&self, len: u64, low: u64, high: u64) -> Option<u64> {
        let mut top = high;
        for (&s, v) in self.map.range(..high).rev() {
            if v.end <= top && top - v.end >= len && top - len >= low {
                return Some(top - len);
            }
            top = top.min(s);
            if top < low.saturating_add(len) {
                return None;
            }
        }
        (top >= low.checked_add(len)?).then(|| top - len)
    }

    /// Records [start, end) as mapped with `prot`, replacing what was there.
    pub fn insert(&mut self, start: u64, end: u64, prot: i32) {
        self.remove(start, end);
        self.map.insert(start, Vma { end, prot });
    }

    /// Forgets [start, end), splitting mappings that straddle its ends.
    pub fn remove(&mut self, start: u64, end: u64) {
        let hit: Vec<(u64, Vma)> = self.overlapping(start, end).collect();
        for (s, v) in hit {
            self.map.remove(&s);
            if s < start {
                self.map.insert(s, Vma { end: start, prot: v.prot });
            }
            if v.end > end {
                self.map.insert(end, Vma { end: v.end, prot: v.prot });
            }
        }
    }

    /// Sets `prot` on [start, end), which must be covered.
    pub fn protect(&mut self, start: u64, end: u64, prot: i32) {
        debug_assert!(self.is_covered(start, end));
        self.insert(start, end, prot);
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, Vma)> + '_ {
        self.map.iter().map(|(&s, &v)| (s, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const R: i32 = libc::PROT_READ;
    const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;

    fn ranges(v: &Vmas) -> Vec<(u64, u64, i32)> {
        v.iter().map(|(s, m)| (s, m.end, m.prot)).collect()
    }

    #[test]
    fn insert_splits_and_replaces() {
        let mut v = Vmas::default();
        v.insert(0x1000, 0x9000, R);
        v.insert(0x3000, 0x5000, RW);
        assert_eq!(ranges(&v), vec![(0x1000, 0x3000, R), (0x3000, 0x5000, RW), (0x5000, 0x9000, R)]);
        v.remove(0x2000, 0x8000);
        assert_eq!(ranges(&v), vec![(0x1000, 0x2000, R), (0x8000, 0x9000, R)]);
    }

    #[test]
    fn coverage_and_freedom() {
        let mut v = Vmas::default();
        v.insert(0x1000, 0x3000, R);
        v.insert(0x3000, 0x4000, RW);
        v.insert(0x5000, 0x6000, RW);
        assert!(v.is_covered(0x1000, 0x4000));
        assert!(!v.is_covered(0x1000, 0x6000));
        assert!(v.is_free(0x4000, 0x5000));
        assert!(!v.is_free(0x3fff & !0xfff, 0x5000));
        assert_eq!(v.at(0x2fff).map(|(s, _)| s), Some(0x1000));
        assert_eq!(v.at(0x4000), None);
    }

    #[test]
    fn finds_highest_gap() {
        let mut v = Vmas::default();
        v.insert(0x8000, 0x9000, R);
        v.insert(0x5000, 0x6000, R);
        assert_eq!(v.find_free_below(0x1000, 0x1000, 0xa000), Some(0x9000));
        assert_eq!(v.find_free_below(0x2000, 0x1000, 0x9000), Some(0x6000));
        assert_eq!(v.find_free_below(0x3000, 0x1000, 0x9000), Some(0x2000));
        assert_eq!(v.find_free_below(0x5000, 0x1000, 0x9000), None);
        assert_eq!(v.find_free_below(0x1000, 0x1000, 0x6000), Some(0x4000));
    }

    #[test]
    fn protect_splits() {
        let mut v = Vmas::default();
        v.insert(0x1000, 0x4000, RW);
        v.protect(0x2000, 0x3000, R);
        assert_eq!(ranges(&v), vec![(0x1000, 0x2000, RW), (0x2000, 0x3000, R), (0x3000, 0x4000, RW)]);
    }
}
