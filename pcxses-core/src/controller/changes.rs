//! What changed in the AC's persisted state since its journal's last commit: which
//! devices and computations, and whether the MORPH counter moved. Each commit hands the
//! journal one small record per changed part (see [`super::Controller::restore`]) instead
//! of a whole snapshot.

use alloc::vec::Vec;

/// The parts changed since the last commit; nothing is tracked without a journal.
#[derive(Default)]
pub(super) struct Changes {
    on: bool,
    pub(super) devices: Marks,
    pub(super) comps: Marks,
    /// The MORPH counter moved.
    pub(super) morphs: bool,
}

/// A set of indices, each listed once, in the order first marked.
#[derive(Default)]
pub(super) struct Marks {
    seen: Vec<u64>,
    list: Vec<u32>,
}

impl Marks {
    fn mark(&mut self, i: u32) {
        let (word, bit) = (i as usize / 64, 1u64 << (i % 64));
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & bit == 0 {
            self.seen[word] |= bit;
            self.list.push(i);
        }
    }

    /// The marked indices, in the order first marked.
    pub(super) fn list(&self) -> &[u32] {
        &self.list
    }

    fn clear(&mut self) {
        for &i in &self.list {
            self.seen[i as usize / 64] &= !(1u64 << (i % 64));
        }
        self.list.clear();
    }
}

impl Changes {
    /// Starts tracking (a journal was attached).
    pub(super) fn start(&mut self) {
        self.on = true;
    }

    /// Device `d`'s persisted part changed.
    pub(super) fn device(&mut self, d: u32) {
        if self.on {
            self.devices.mark(d);
        }
    }

    /// Computation `c`'s persisted part changed.
    pub(super) fn comp(&mut self, c: u32) {
        if self.on {
            self.comps.mark(c);
        }
    }

    /// The MORPH counter moved.
    pub(super) fn morph_counter(&mut self) {
        self.morphs |= self.on;
    }

    /// Forgets every change: they were handed to the journal.
    pub(super) fn clear(&mut self) {
        self.devices.clear();
        self.comps.clear();
        self.morphs = false;
    }

    /// Whether anything changed since the last commit.
    pub(super) fn pending(&self) -> bool {
        self.morphs || !self.devices.list.is_empty() || !self.comps.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_list_each_index_once_until_cleared() {
        let mut c = Changes::default();
        c.device(3);
        assert!(!c.pending(), "nothing is tracked before a journal");
        c.start();
        for i in [3, 70, 3, 0, 70] {
            c.device(i);
        }
        c.comp(5);
        assert!(c.pending());
        assert_eq!(c.devices.list(), [3, 70, 0]);
        assert_eq!(c.comps.list(), [5]);
        c.clear();
        assert!(!c.pending());
        c.device(70);
        assert_eq!(c.devices.list(), [70]);
    }
}
