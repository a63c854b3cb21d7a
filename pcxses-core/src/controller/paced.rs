//! Computations with a target, waiting for their turn to start a MORPH under the
//! configured pace: a queue, oldest first, with membership and removal in O(log n).

use alloc::collections::BTreeMap;

/// The queue of paced computations.
#[derive(Debug, Default)]
pub(super) struct Paced {
    /// Computations by arrival.
    order: BTreeMap<u64, u32>,
    /// Each queued computation's arrival.
    arrival: BTreeMap<u32, u64>,
    next: u64,
}

impl Paced {
    /// Queues computation `c` at the back, unless it is queued already.
    pub(super) fn push(&mut self, c: u32) {
        if self.arrival.contains_key(&c) {
            return;
        }
        self.order.insert(self.next, c);
        self.arrival.insert(c, self.next);
        self.next += 1;
    }

    /// Takes computation `c` out of the queue, wherever it is.
    pub(super) fn remove(&mut self, c: u32) {
        if let Some(at) = self.arrival.remove(&c) {
            self.order.remove(&at);
        }
    }

    /// The oldest queued computation.
    pub(super) fn front(&self) -> Option<u32> {
        self.order.first_key_value().map(|(_, &c)| c)
    }

    /// Takes the oldest queued computation out of the queue.
    pub(super) fn pop_front(&mut self) -> Option<u32> {
        let (_, c) = self.order.pop_first()?;
        self.arrival.remove(&c);
        Some(c)
    }

    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_first_each_once_and_removable_anywhere() {
        let mut p = Paced::default();
        for c in [5, 3, 5, 9, 1] {
            p.push(c);
        }
        assert_eq!(p.len(), 4);
        p.remove(9);
        p.remove(42);
        assert_eq!(p.front(), Some(5));
        assert_eq!(p.pop_front(), Some(5));
        p.push(5);
        let rest: alloc::vec::Vec<u32> = core::iter::from_fn(|| p.pop_front()).collect();
        assert_eq!(rest, [3, 1, 5]);
        assert!(p.is_empty());
    }
}
