//! Lists packed in one allocation, numbered from 0: a registry's small per-entry lists
//! (host lists, capability sets, object lists, native computations) without a heap
//! allocation and a slice header for each, and identical lists stored once when interned.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Lists of `T`, each named by its number.
#[derive(Debug)]
pub(super) struct Lists<T> {
    items: Vec<T>,
    /// Where each list ends in `items`; it starts where the one before ends.
    ends: Vec<u32>,
}

impl<T> Default for Lists<T> {
    fn default() -> Lists<T> {
        Lists {
            items: Vec::new(),
            ends: Vec::new(),
        }
    }
}

impl<T> Lists<T> {
    /// List `i`; empty if there is none.
    pub(super) fn get(&self, i: u32) -> &[T] {
        let i = i as usize;
        let (Some(&end), start) = (self.ends.get(i), i.checked_sub(1)) else {
            return &[];
        };
        let start = start.map_or(0, |s| self.ends[s]);
        &self.items[start as usize..end as usize]
    }

    /// Adds a list at the end; returns its number.
    pub(super) fn push(&mut self, list: impl IntoIterator<Item = T>) -> u32 {
        self.items.extend(list);
        self.ends.push(self.items.len() as u32);
        self.ends.len() as u32 - 1
    }

    /// How many lists there are.
    pub(super) fn len(&self) -> u32 {
        self.ends.len() as u32
    }

    /// Gives back the room kept for more lists.
    pub(super) fn shrink(&mut self) {
        self.items.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

/// Builds [`Lists`] in which equal lists (by `K`) share one number.
pub(super) struct Interner<K, T> {
    lists: Lists<T>,
    seen: BTreeMap<K, u32>,
}

impl<K: Ord, T> Interner<K, T> {
    /// Lists whose number 0 is the empty list, known by `empty`.
    pub(super) fn new(empty: K) -> Interner<K, T> {
        let mut lists = Lists::default();
        let mut seen = BTreeMap::new();
        seen.insert(empty, lists.push([]));
        Interner { lists, seen }
    }

    /// The number of the list known by `key`, made of `list()` if it is new.
    pub(super) fn intern<I: IntoIterator<Item = T>>(
        &mut self,
        key: K,
        list: impl FnOnce() -> I,
    ) -> u32 {
        if let Some(&i) = self.seen.get(&key) {
            return i;
        }
        let i = self.lists.push(list());
        self.seen.insert(key, i);
        i
    }

    /// The lists, as compact as they can be.
    pub(super) fn finish(self) -> Lists<T> {
        let mut lists = self.lists;
        lists.shrink();
        lists
    }
}

/// Whether sorted list `small` is part of sorted list `big`.
pub(super) fn is_subset<T: Ord>(small: &[T], big: &[T]) -> bool {
    let mut big = big.iter();
    small.iter().all(|s| big.any(|b| b == s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn lists_come_back_as_pushed_and_equal_ones_share_a_number() {
        let mut i = Interner::new(vec![]);
        let a = i.intern(vec![1, 2], || [1, 2]);
        let b = i.intern(vec![3], || [3]);
        assert_eq!(i.intern(vec![1, 2], || [9, 9]), a);
        assert_eq!(i.intern(vec![], || [9]), 0);
        let lists = i.finish();
        assert_eq!(
            (lists.get(0), lists.get(a), lists.get(b)),
            (&[][..], &[1, 2][..], &[3][..])
        );
        assert_eq!(lists.len(), 3);
        assert_eq!(lists.get(7), &[] as &[i32]);
    }

    #[test]
    fn subsets_of_sorted_lists() {
        assert!(is_subset(&[1, 3], &[1, 2, 3]));
        assert!(is_subset::<u32>(&[], &[]));
        assert!(!is_subset(&[1, 4], &[1, 2, 3]));
        assert!(!is_subset(&[2, 1], &[1, 2]));
    }
}
