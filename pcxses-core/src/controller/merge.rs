//! Ascending ranges of one ordered set of keys, read as one sequence ordered by the keys'
//! low bits: the indexes keep one range per class of entry, and a search reads the
//! classes that qualify together, best first.

use alloc::collections::{btree_set, BinaryHeap};
use alloc::vec::Vec;
use core::cmp::Reverse;

/// The keys of several ranges, ordered by `key & mask`; a range's keys must be ascending
/// in those bits too.
pub(super) struct Merge<'a> {
    ranges: Vec<btree_set::Range<'a, u64>>,
    heads: BinaryHeap<Reverse<(u64, u64, usize)>>,
    mask: u64,
}

impl<'a> Merge<'a> {
    pub(super) fn new(ranges: impl Iterator<Item = btree_set::Range<'a, u64>>, mask: u64) -> Self {
        let mut merge = Merge {
            ranges: ranges.collect(),
            heads: BinaryHeap::new(),
            mask,
        };
        for i in 0..merge.ranges.len() {
            merge.advance(i);
        }
        merge
    }

    fn advance(&mut self, i: usize) {
        if let Some(&key) = self.ranges[i].next() {
            self.heads.push(Reverse((key & self.mask, key, i)));
        }
    }
}

impl Iterator for Merge<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let Reverse((_, key, i)) = self.heads.pop()?;
        self.advance(i);
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use alloc::collections::BTreeSet;
    use alloc::vec::Vec;

    use super::*;

    #[test]
    fn ranges_come_out_in_the_order_of_their_low_bits() {
        let set: BTreeSet<u64> = [0x1_03, 0x1_07, 0x2_01, 0x2_05, 0x3_02, 0x3_04].into();
        let ranges = [1u64, 2].map(|p| set.range(p << 8..(p + 1) << 8));
        let keys: Vec<u64> = Merge::new(ranges.into_iter(), 0xff).collect();
        assert_eq!(keys, [0x2_01, 0x1_03, 0x2_05, 0x1_07]);
        assert_eq!(Merge::new(core::iter::empty(), 0xff).next(), None);
    }
}
