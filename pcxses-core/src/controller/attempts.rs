//! The MORPH attempts in flight, found by number and by target.

use alloc::collections::{BTreeMap, BTreeSet};
use core::ops::Deref;

use super::morph::Attempt;

/// Attempts by MORPH number, with the numbers of each target's: a target that dies or leaves
/// ends its own attempts without a walk over every attempt in flight.
#[derive(Default)]
pub(super) struct Attempts {
    by_morph: BTreeMap<u32, Attempt>,
    /// (target device, MORPH number) of each attempt.
    by_target: BTreeSet<(u32, u32)>,
}

impl Attempts {
    /// Adds attempt `m`.
    pub(super) fn insert(&mut self, m: u32, attempt: Attempt) {
        let target = attempt.target;
        if let Some(old) = self.by_morph.insert(m, attempt) {
            self.by_target.remove(&(old.target, m));
        }
        self.by_target.insert((target, m));
    }

    /// Removes attempt `m`.
    pub(super) fn remove(&mut self, m: u32) -> Option<Attempt> {
        let attempt = self.by_morph.remove(&m)?;
        self.by_target.remove(&(attempt.target, m));
        Some(attempt)
    }

    /// Attempt `m`, to change it.
    pub(super) fn get_mut(&mut self, m: u32) -> Option<&mut Attempt> {
        self.by_morph.get_mut(&m)
    }

    /// The attempts to device `t`, by number.
    pub(super) fn to(&self, t: u32) -> impl Iterator<Item = (u32, &Attempt)> + '_ {
        (self.by_target.range((t, 0)..=(t, u32::MAX)))
            .filter_map(|&(_, m)| Some((m, self.by_morph.get(&m)?)))
    }
}

impl Deref for Attempts {
    type Target = BTreeMap<u32, Attempt>;

    fn deref(&self) -> &Self::Target {
        &self.by_morph
    }
}
