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
    /// its first number (see [`Names::repeats`]).
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

    /// The number of `name` (the first given, if it was given more than once).
    pub(super) fn find(&self, name: &str) -> Option<u32> {
        let at = (self.by_name).partition_point(|&i| self.get(i) < name);
        let &i = self.by_name.get(at)?;
        (self.get(i) == name).then_some(i)
    }

    /// The number of `name`, as [`Names::find`] finds it, tried first as `guess`.
    pub(super) fn find_from(&self, name: &str, guess: u32) -> Option<u32> {
        match self.get(guess) == name && guess < self.len() && !self.repeats(guess) {
            true => Some(guess),
            false => self.find(name),
        }
    }

    /// A [`Finder`] of these names.
    pub(super) fn finder(&self) -> Finder<'_> {
        Finder {
            names: self,
            next: 0,
        }
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

/// Finds names one after another: a name that comes right after the one found before, in
/// name order, is found with one comparison (a registry listing its references in name
/// order, as device groups do, is resolved without a search per name).
pub(super) struct Finder<'n> {
    names: &'n Names,
    /// The position in name order after the name found last.
    next: u32,
}

impl Finder<'_> {
    /// The number of `name`, as [`Names::find`] finds it.
    pub(super) fn find(&mut self, name: &str) -> Option<u32> {
        let names = self.names;
        let i = match names.by_name.get(self.next as usize) {
            Some(&i) if names.get(i) == name && !names.repeats(i) => i,
            _ => names.find(name)?,
        };
        self.next = names.rank(i) + 1;
        Some(i)
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
        assert_eq!((names.find("x"), names.find("a")), (Some(0), Some(3)));
    }

    #[test]
    fn a_name_is_found_where_it_is_guessed_or_anywhere() {
        let names = Names::new(["b", "a", "b", "c"].into_iter());
        for guess in 0..6 {
            assert_eq!(names.find_from("a", guess), Some(1));
            assert_eq!(names.find_from("b", guess), Some(0));
            assert_eq!(names.find_from("z", guess), None);
        }
        assert_eq!(names.find_from("", 9), None);
    }

    #[test]
    fn a_finder_finds_what_a_search_finds_in_any_order() {
        let list = ["b", "a", "ca", "c", "a", "d"];
        let names = Names::new(list.into_iter());
        let mut finder = names.finder();
        for name in ["a", "b", "c", "ca", "d", "zz", "a", "ca", "b", "", "d"] {
            assert_eq!(finder.find(name), names.find(name), "{name}");
        }
    }
}
