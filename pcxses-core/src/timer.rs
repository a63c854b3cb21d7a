//! Per-key deadlines in O(log n): a min-heap with lazy re-arming.
//!
//! Pushing back a key's deadline (a HELLO resetting a dead timer) costs nothing here: the
//! owner just stores the new deadline. When the heap's entry for the key comes due, the
//! owner compares it with the stored deadline and re-arms it if it moved.

use alloc::collections::BinaryHeap;
use core::cmp::Reverse;
use core::time::Duration;

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

    /// The earliest entry's deadline rounded up to a multiple of `grid` since the epoch
    /// (not rounded for a zero `grid`, nor where the multiple is past the last instant):
    /// every entry due by then is handled at once.
    pub(crate) fn next_on(&self, grid: Duration) -> Option<Instant> {
        let at = self.next()?;
        let step = u64::try_from(grid.as_micros()).unwrap_or(u64::MAX);
        if step == 0 {
            return Some(at);
        }
        let point = at.as_micros().div_ceil(step).checked_mul(step);
        Some(point.map_or(at, Instant::from_micros))
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

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    #[test]
    fn the_next_deadline_on_a_grid_is_the_first_point_at_or_after_it() {
        let mut heap = Deadlines::default();
        let grid = Duration::from_millis(10);
        assert_eq!(heap.next_on(grid), None);
        heap.push(Instant::from_micros(20_001), 1);
        heap.push(Instant::from_micros(25_000), 2);
        assert_eq!(heap.next_on(grid), Some(Instant::from_millis(30)));
        let first = Some(Instant::from_micros(20_001));
        assert_eq!(heap.next_on(Duration::ZERO), first);
        // A point past the last instant: not rounded.
        let mut last = Deadlines::default();
        last.push(Instant::from_micros(u64::MAX - 5), 1);
        let at = Some(Instant::from_micros(u64::MAX - 5));
        assert_eq!(last.next_on(grid), at);
        heap.push(Instant::from_millis(20), 3);
        assert_eq!(
            heap.next_on(grid),
            Some(Instant::from_millis(20)),
            "on a point"
        );
        // Both entries due by the point are handed out at it.
        let mut due = Vec::new();
        while let Some((_, key)) = heap.pop_due(Instant::from_millis(30)) {
            due.push(key);
        }
        assert_eq!(due, [3, 1, 2]);
    }
}
