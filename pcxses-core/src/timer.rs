//! Per-key deadlines in O(log n): a min-heap with lazy re-arming.
//!
//! Pushing back a key's deadline (a HELLO resetting a dead timer) costs nothing here: the
//! owner just stores the new deadline. When the heap's entry for the key comes due, the
//! owner compares it with the stored deadline and re-arms it if it moved.

use alloc::collections::BinaryHeap;
use core::cmp::Reverse;

use crate::time::Instant;

/// A min-heap of `(deadline, key)` entries.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, u32)>>,
}

impl Deadlines {
    pub(crate) fn push(&mut self, at: Instant, key: u32) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest entry's deadline (maybe stale-early, never late).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns one entry due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, u32)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Entries in the heap, stale ones included.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Drops every stale entry: those for which `armed(key)` is not their instant. Owners
    /// call it when stale entries outnumber live ones, so that keys re-armed faster than
    /// their entries come due (sessions opened and closed in a loop) cannot grow the heap.
    pub(crate) fn compact(&mut self, mut armed: impl FnMut(u32) -> Option<Instant>) {
        let mut entries = core::mem::take(&mut self.heap).into_vec();
        entries.retain(|Reverse((at, key))| armed(*key) == Some(*at));
        // A key re-armed for the same instant left copies of its entry.
        entries.sort_unstable();
        entries.dedup();
        self.heap = BinaryHeap::from(entries);
    }

    /// Pops every due entry for which `armed(key)` equals its instant; the others are
    /// stale. Returns the live ones in order.
    pub(crate) fn pop_live(
        &mut self,
        now: Instant,
        mut armed: impl FnMut(u32) -> Option<Instant>,
    ) -> Option<u32> {
        while let Some((at, key)) = self.pop_due(now) {
            if armed(key) == Some(at) {
                return Some(key);
            }
        }
        None
    }
}

/// Arms `key`'s timer for `at` unless an entry at or before `at` is already armed.
/// `armed` is the owner's record of its earliest live heap entry; entries for the key at
/// any other instant are stale and are discarded when they come due.
pub(crate) fn arm(heap: &mut Deadlines, armed: &mut Instant, at: Instant, key: u32) {
    if at < *armed {
        heap.push(at, key);
        *armed = at;
    }
}
