//! The names of a registry's devices or computations: one string holding them all, found
//! by name with a binary search, each with its rank in name order.

use alloc::string::String;
use alloc::vec::Vec;

/// Names numbered from 0, as registered.
#[derive(Debug)]
pub(super) struct Names {
    text: String,
    /// Where each name ends in `text`; it starts where the one before ends.
    ends: Vec<u32>,
    /// The numbers in name order.
    by_name: Vec<u32>,
    /// Each number's position in `by_name`.
    ranks: Vec<u32>,
}

impl Names {
    /// The names of `names`, numbered in order. A name given more than once is found as
    /// one of its numbers (see [`Names::repeats`]).
    pub(super) fn new<'a>(names: impl ExactSizeIterator<Item = &'a str> + Clone) -> Names {
        let len = names.clone().map(str::len).sum();
        let mut text = String::with_capacity(len);
        let mut ends = Vec::with_capacity(names.len());
        for name in names {
            text.push_str(name);
            ends.push(text.len() as u32);
        }
        let mut names = Names {
            text,
            ends,
            by_name: Vec::new(),
            ranks: Vec::new(),
        };
        let mut by_name: Vec<u32> = (0..names.len()).collect();
        by_name.sort_unstable_by(|&a, &b| names.get(a).cmp(names.get(b)).then(a.cmp(&b)));
        let mut ranks = alloc::vec![0; by_name.len()];
        for (rank, &i) in by_name.iter().enumerate() {
            ranks[i as usize] = rank as u32;
        }
        names.by_name = by_name;
        names.ranks = ranks;
        names
    }

    /// How many names there are.
    pub(super) fn len(&self) -> u32 {
        self.ends.len() as u32
    }

    /// Name `i`; empty if there is none.
    pub(super) fn get(&self, i: u32) -> &str {
        let i = i as usize;
        let Some(&end) = self.ends.get(i) else {
            return "";
        };
        let start = i.checked_sub(1).map_or(0, |s| self.ends[s]);
        &self.text[start as usize..end as usize]
    }

    /// The number of `name`.
    pub(super) fn find(&self, name: &str) -> Option<u32> {
        let at = (self.by_name)
            .binary_search_by(|&i| self.get(i).cmp(name))
            .ok()?;
        Some(self.by_name[at])
    }

    /// Name `i`'s position in name order.
    pub(super) fn rank(&self, i: u32) -> u32 {
        self.ranks[i as usize]
    }

    /// Whether a number before `i` has the same name.
    pub(super) fn repeats(&self, i: u32) -> bool {
        let rank = self.rank(i);
        rank > 0 && self.get(self.at_rank(rank - 1)) == self.get(i)
    }

    /// The name at position `rank` in name order.
    pub(super) fn at_rank(&self, rank: u32) -> u32 {
        self.by_name[rank as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_and_ranked_in_name_order() {
        let names = Names::new(["b", "a", "ca", "c"].into_iter());
        assert_eq!(names.len(), 4);
        assert_eq!((names.get(0), names.get(2), names.get(4)), ("b", "ca", ""));
        assert_eq!(names.find("ca"), Some(2));
        assert_eq!(names.find("a"), Some(1));
        assert_eq!(names.find("d"), None);
        let ranks: Vec<u32> = (0..4).map(|i| names.rank(i)).collect();
        assert_eq!(ranks, [1, 0, 3, 2]);
        assert_eq!(names.at_rank(3), 2);
        assert!(Names::new([].into_iter()).find("").is_none());
    }

    #[test]
    fn a_name_given_again_repeats_the_first_of_them() {
        let names = Names::new(["x", "y", "x", "a", "x"].into_iter());
        let repeats: Vec<bool> = (0..5).map(|i| names.repeats(i)).collect();
        assert_eq!(repeats, [false, false, true, false, true]);
        assert!(matches!(names.find("x"), Some(0 | 2 | 4)));
    }
}
