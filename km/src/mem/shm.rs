//! Where System V shared memory segments are attached: the pieces of the
//! payload's mappings that are a segment, each with the address its
//! attachment began at (as Linux keeps a mapping's offset into the
//! segment), so shmdt finds what it detaches as Linux does, also after
//! munmap or mprotect split an attachment.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Piece {
    end: u64,
    /// Where the attachment this piece is part of began.
    base: u64,
    /// The segment: its id, and its page-rounded size.
    id: i32,
    size: u64,
}

#[derive(Default, Debug, Clone)]
pub struct Attachments {
    map: BTreeMap<u64, Piece>,
}

impl Attachments {
    /// Records segment `id` of `size` bytes attached at `start`.
    pub fn attach(&mut self, start: u64, id: i32, size: u64) {
        self.forget(start, start + size);
        self.map.insert(start, Piece { end: start + size, base: start, id, size });
    }

    /// Forgets [start, end) (unmapped or mapped over), splitting pieces
    /// that straddle its ends.
    pub fn forget(&mut self, start: u64, end: u64) {
        let hit: Vec<(u64, Piece)> = self.overlapping(start, end).collect();
        for (s, p) in hit {
            self.map.remove(&s);
            if s < start {
                self.map.insert(s, Piece { end: start, ..p });
            }
            if p.end > end {
                self.map.insert(end, Piece { end: p.end, ..p });
            }
        }
    }

    /// The ranges shmdt(addr) detaches, in order, as Linux picks them: the
    /// first piece at or above `addr` of an attachment that began at
    /// `addr`, then the pieces of that same attachment that end within
    /// the segment's size from `addr`. Empty if there is none (EINVAL).
    pub fn detach(&self, addr: u64) -> Vec<(u64, u64)> {
        let mut pieces = self.map.range(addr..).skip_while(|(_, p)| p.base != addr);
        let Some((&s, &first)) = pieces.next() else { return Vec::new() };
        let mut out = vec![(s, first.end)];
        for (&s, p) in pieces.take_while(|(_, p)| p.end - addr <= first.size) {
            if p.base == addr && p.id == first.id {
                out.push((s, p.end));
            }
        }
        out
    }

    /// Moves the pieces in [old, old+len) to `dest` (mremap), keeping where
    /// their attachments began relative to them.
    pub fn relocate(&mut self, old: u64, len: u64, dest: u64) {
        let end = old + len;
        let moved: Vec<(u64, Piece)> = self.overlapping(old, end).collect();
        self.forget(old, end);
        let at = |a: u64| a.wrapping_sub(old).wrapping_add(dest);
        for (s, p) in moved {
            self.map.insert(at(s.max(old)), Piece { end: at(p.end.min(end)), base: at(p.base), ..p });
        }
    }

    fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, Piece)> + '_ {
        let first = self.map.range(..start).next_back().filter(|(_, p)| p.end > start).map(|(&s, &p)| (s, p));
        first.into_iter().chain(self.map.range(start..end).map(|(&s, &p)| (s, p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 4096;

    #[test]
    fn whole_attachment() {
        let mut a = Attachments::default();
        a.attach(10 * P, 1, 3 * P);
        assert_eq!(a.detach(10 * P), vec![(10 * P, 13 * P)]);
        assert!(a.detach(11 * P).is_empty());
        assert!(a.detach(9 * P).is_empty());
    }

    /// Linux detaches every piece of the attachment, also after a hole
    /// and when its first page is gone.
    #[test]
    fn split_attachment() {
        let mut a = Attachments::default();
        a.attach(10 * P, 1, 3 * P);
        a.forget(11 * P, 12 * P);
        assert_eq!(a.detach(10 * P), vec![(10 * P, 11 * P), (12 * P, 13 * P)]);
        a.forget(10 * P, 11 * P);
        assert_eq!(a.detach(10 * P), vec![(12 * P, 13 * P)]);
        a.forget(12 * P, 13 * P);
        assert!(a.detach(10 * P).is_empty());
    }

    /// An attachment over the start of another at the same address: shmdt
    /// takes the newer first, then the rest of the older.
    #[test]
    fn attachment_over_another() {
        let mut a = Attachments::default();
        a.attach(10 * P, 1, 3 * P);
        a.attach(10 * P, 2, P);
        assert_eq!(a.detach(10 * P), vec![(10 * P, 11 * P)]);
        a.forget(10 * P, 11 * P);
        assert_eq!(a.detach(10 * P), vec![(11 * P, 13 * P)]);
    }

    #[test]
    fn moved_attachment() {
        let mut a = Attachments::default();
        a.attach(10 * P, 1, 2 * P);
        a.relocate(10 * P, 2 * P, 40 * P);
        assert!(a.detach(10 * P).is_empty());
        assert_eq!(a.detach(40 * P), vec![(40 * P, 42 * P)]);
        // Its tail alone: the attachment still began a page before it.
        a.relocate(41 * P, P, 60 * P);
        assert_eq!(a.detach(40 * P), vec![(40 * P, 41 * P)]);
        assert_eq!(a.detach(59 * P), vec![(60 * P, 61 * P)]);
    }
}
